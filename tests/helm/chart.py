"""Running the testbed's ``helm`` on the chart, and reading what it renders.

    docs = render({"replicaCount": 1, "database": {"existingSecret": ""}})
    deployment = one(docs, "Deployment")

Values go to helm as a YAML file (``-f``), so types are exactly what a user's values file would
give. ``helm`` is the binary the testbed build puts in ``versions.bin_dir()``.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from scheduler.testbed import versions

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "isthmus"
RELEASE = "isthmus"
NAMESPACE = "isthmus"
# The Kubernetes version helm renders for and the schemas check against (the target).
KUBE_VERSION = "1.34.0"


def helm_binary() -> Path:
    return versions.bin_dir() / "helm"


def have_helm() -> bool:
    return os.access(helm_binary(), os.X_OK)


def helm(
    *args: str, values: Mapping[str, Any] | None = None, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``helm args... [-f values.yaml]`` with a private HOME for its caches."""
    with tempfile.TemporaryDirectory(prefix="isthmus-helm-") as tmp:
        argv = [str(helm_binary()), *args]
        if values is not None:
            path = Path(tmp) / "values.yaml"
            path.write_text(yaml.safe_dump(dict(values)))
            argv += ["-f", str(path)]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": tmp,
            "HELM_CACHE_HOME": f"{tmp}/cache",
            "HELM_CONFIG_HOME": f"{tmp}/config",
            "HELM_DATA_HOME": f"{tmp}/data",
        }
        result = subprocess.run(
            argv, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stderr}{result.stdout}")
    return result


def render(
    values: Mapping[str, Any] | None = None, *, extra: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """The chart's objects for ``values``, as ``helm template`` renders them for 1.34."""
    out = helm(
        "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
        "--kube-version", KUBE_VERSION, *extra, values=values,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def kinds(docs: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted(str(doc["kind"]) for doc in docs)


def one(docs: Sequence[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [doc for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}: {kinds(docs)}"
    return found[0]


def config_files(docs: Sequence[dict[str, Any]]) -> dict[str, str]:
    """The ConfigMap's files: isthmus.yaml, policy.yaml, topology.yaml."""
    return dict(one(docs, "ConfigMap")["data"])


def container(docs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    (only,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env(docs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The container's environment: name -> value, or the valueFrom mapping."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(docs)["env"]}


def wait_for(what: str, check: Any, timeout: float = 60.0, interval: float = 0.3) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
