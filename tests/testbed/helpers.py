"""Shared pieces of the testbed tests."""

from __future__ import annotations

import time
from typing import Any

from scheduler.testbed.site import ACCELERATOR_LABEL


def wait_for(what: str, check: Any, timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
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
