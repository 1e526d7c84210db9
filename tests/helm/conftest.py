"""The Helm chart's tests: helm from the testbed build, and (for ``testbed`` tests) one site.

Every test here needs the ``helm`` binary that ``make testbed`` builds; without it they are
skipped with that reason, like the testbed tests (tests/testbed/conftest.py). The install tests
share one site for their module: two KWOK nodes, no KubeRay operator.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

from scheduler.testbed import versions
from scheduler.testbed.site import NodePool, Site, start_site
from tests.helm.chart import have_helm, helm_binary

HERE = Path(__file__).resolve().parent
# Enough for two replicas on two nodes; the smallest site that shows anti-affinity working.
INVENTORY = (NodePool(2, "RTX4090-48G", per_node=8),)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mine = [item for item in items if HERE in Path(str(item.path)).resolve().parents]
    no_helm = pytest.mark.skip(
        reason=f"{helm_binary()} missing: run `make testbed` (it builds helm)")
    missing = versions.missing_binaries()
    no_testbed = pytest.mark.skip(
        reason=f"testbed binaries missing in {versions.bin_dir()} ({', '.join(missing)}): "
        "run `make testbed`")
    for item in mine:
        if not have_helm():
            item.add_marker(no_helm)
        elif missing and item.get_closest_marker("testbed") is not None:
            item.add_marker(no_testbed)


def missing_dev_dependency(what: str, requirement: str) -> NoReturn:
    """Skip for want of a test-only dependency; under CI=true fail, so that CI never passes
    without these checks."""
    reason = f"{what} is not installed: pip install '{requirement}'"
    if _in_ci():
        pytest.fail(f"{reason} (CI=true: these checks must run)", pytrace=False)
    pytest.skip(reason)


def dev_module(name: str, requirement: str) -> ModuleType:
    """Import a test-only dependency (see missing_dev_dependency)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        missing_dev_dependency(name, requirement)


@pytest.fixture(scope="module")
def helm_site() -> Iterator[Site]:
    """A Kubernetes site (etcd, apiserver, controller-manager, scheduler, kwok) for the module."""
    site = start_site("helm", INVENTORY)
    try:
        yield site
    finally:
        site.stop()
