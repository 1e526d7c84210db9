"""The one place where the testbed's upstream versions are pinned.

Chosen as the newest releases whose go.mod ``go`` directive Go 1.26 satisfies and that the Go
module proxy serves (see docs/testbed.md for why each one). Changing any of them changes
:func:`version_key`, so a new set of binaries is built next to the old one, never over it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

KUBERNETES = "v1.36.3"
# The staging modules (k8s.io/api, ...) are released as v0.<minor>.<patch>.
KUBERNETES_STAGING = "v0." + KUBERNETES.removeprefix("v1.")
ETCD = "v3.6.16"
KWOK = "v0.8.0"
KUBERAY = "v1.6.0"
HELM = "v3.22.0"

PINS: dict[str, str] = {
    "kubernetes": KUBERNETES,
    "etcd": ETCD,
    "kwok": KWOK,
    "kuberay": KUBERAY,
    "helm": HELM,
}

# Modules (path, version) whose files the runner reads from the Go module cache.
KWOK_MODULE = ("sigs.k8s.io/kwok", KWOK)
KUBERAY_MODULE = ("github.com/ray-project/kuberay/ray-operator", KUBERAY)

BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "ray-operator",
    "helm",
)


def version_key() -> str:
    """A short, readable name for this set of pins, e.g. ``k8s1.36.3-etcd3.6.16-1a2b3c4d``."""
    digest = hashlib.sha256(repr(sorted(PINS.items())).encode()).hexdigest()[:8]
    return f"k8s{KUBERNETES[1:]}-etcd{ETCD[1:]}-{digest}"


def cache_root() -> Path:
    """Everything the testbed downloads or builds lives here, outside the repository."""
    override = os.environ.get("ISTHMUS_TESTBED_CACHE")
    if override:
        return Path(override)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "isthmus" / "testbed"


def bin_dir() -> Path:
    return cache_root() / version_key() / "bin"


def gomodcache() -> Path:
    """The Go module cache the build fills; the runner reads CRDs and stages from it."""
    return cache_root() / "gomodcache"


def module_dir(module: tuple[str, str]) -> Path:
    """Directory of ``module`` (path, version) inside the module cache (Go's case-encoding)."""
    path, version = module
    encoded = "".join("!" + c.lower() if c.isupper() else c for c in path)
    return gomodcache() / f"{encoded}@{version}"


def missing_binaries() -> list[str]:
    return [name for name in BINARIES if not os.access(bin_dir() / name, os.X_OK)]
