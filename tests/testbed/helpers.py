"""Shared pieces of the testbed tests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from scheduler.core.adapter import Dispatch
from scheduler.core.ids import AcceleratorType, JobId, SiteId, TenantId
from scheduler.core.model import Gang, Job
from scheduler.core.plan import CostBreakdown, Placement
from scheduler.testbed.site import ACCELERATOR_LABEL, Site

# The namespaces the session's KubeRay operator watches (see conftest.operator); tests that write
# RayJob status themselves use other tenants, so that the operator never fights them.
OPERATED_TENANT = "operated"


def wait_for(what: str, check: Any, timeout: float = 30.0, interval: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def accelerator_pod(name: str, product: str, resource: str, count: int) -> dict[str, Any]:
    """A pod that holds ``count`` of ``resource`` on a node labelled with ``product``."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {ACCELERATOR_LABEL: product},
            "containers": [
                {
                    "name": "c",
                    "image": "example.invalid/none",
                    "resources": {"limits": {resource: str(count)}},
                }
            ],
        },
    }


def make_dispatch(
    job_id: str,
    tenant: str = "acme",
    accelerator: str = "H20-96G",
    *,
    workers: int = 2,
    per_worker: int = 8,
    site: str = "test-a",
    attempt: int = 0,
) -> Dispatch:
    """The dispatch of one placed job: ``workers`` x ``per_worker`` of ``accelerator``."""
    acc = AcceleratorType(accelerator)
    job = Job(
        JobId(job_id),
        TenantId(tenant),
        Gang(workers, per_worker, frozenset({acc})),
        {acc: 1.0},
        0.0,
    )
    placement = Placement(job.id, SiteId(site), acc, workers * per_worker, 1.0, CostBreakdown())
    return Dispatch.for_attempt(job, placement, attempt)


def kubeconfig_with(
    site: Site, path: Path, *, token: str | None = None, server: str | None = None
) -> Path:
    """A copy of the site's admin kubeconfig at ``path`` with another token or server."""
    config = yaml.safe_load(site.kubeconfig.read_text())
    if token is not None:
        config["users"][0]["user"]["token"] = token
    if server is not None:
        config["clusters"][0]["cluster"]["server"] = server
    path.write_text(yaml.safe_dump(config))
    return path
