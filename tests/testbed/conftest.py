"""A real local Kubernetes site (etcd, kube-apiserver, controller-manager, scheduler, kwok).

The binaries come from ``make testbed`` (tools/testbed/build.py), which ``make test`` runs
first; when they are absent these tests are skipped with that reason rather than failing, so a
plain ``pytest`` on a machine without Go still passes.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from adapters.kubernetes.manifest import namespace_for
from scheduler.testbed import versions
from scheduler.testbed.site import DEFAULT_INVENTORY, Site, start_site
from tests.testbed.helpers import OPERATED_TENANT

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = versions.missing_binaries()
    if not missing:
        return
    skip = pytest.mark.skip(
        reason=f"testbed binaries missing in {versions.bin_dir()} ({', '.join(missing)}): "
        "run `make testbed`"
    )
    for item in items:
        if item.get_closest_marker("testbed") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def site() -> Iterator[Site]:
    started = start_site("test-a", DEFAULT_INVENTORY)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(autouse=True)
def controllers_running(request: pytest.FixtureRequest) -> None:
    """Before each test on the session's site: a controller that has exited is started again
    (a real control plane's kubelet would), with a warning carrying its last log lines, so
    one crash on a starved machine neither hides its cause nor fails every later test."""
    if "site" not in request.fixturenames:
        return
    site: Site = request.getfixturevalue("site")
    for name, tail in site.restart_exited().items():
        warnings.warn(f"testbed site {site.name}: {name} had exited and was started again; "
                      f"its last log lines:\n{tail}", RuntimeWarning, stacklevel=1)


@pytest.fixture(scope="session")
def kube(site: Site) -> Iterator[ApiClient]:
    """An official ``kubernetes`` client for the site, configured from its kubeconfig file."""
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=str(site.kubeconfig), client_configuration=configuration)
    with client.ApiClient(configuration) as api_client:
        yield api_client


@pytest.fixture(scope="session")
def operator(site: Site) -> list[str]:
    """The real KubeRay operator on the session's site, watching only the namespaces returned.

    Tests that write a RayJob's status themselves (as the operator would) use other namespaces,
    so the operator never overwrites them. It runs until the site stops.
    """
    namespaces = ["default", namespace_for(OPERATED_TENANT)]
    site.start_kuberay_operator(watch_namespaces=namespaces)
    return namespaces
