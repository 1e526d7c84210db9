"""Two sites, two adapters: each sees only its own cluster.

That a job residency-bound to site A is never *placed* on B is the planner's and the service's
property; what the adapters owe it is independence: a RayJob created through A's adapter exists
at A only, and each inventory is its own site's nodes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.kubernetes import KubernetesSite
from adapters.kubernetes.manifest import GROUP, PLURAL, VERSION
from scheduler.core.adapter import DispatchState
from scheduler.testbed.site import NodePool, Site, start_site
from tests.testbed.helpers import make_dispatch

pytestmark = [
    pytest.mark.testbed,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]


@pytest.fixture(scope="module")
def site_b() -> Iterator[Site]:
    other = start_site("test-b", [NodePool(2, "RTX4090-48G")])
    try:
        yield other
    finally:
        other.stop()


@pytest.fixture(scope="module")
def adapters(site: Site, site_b: Site) -> Iterator[tuple[KubernetesSite, KubernetesSite]]:
    a = KubernetesSite(site.name, site.kubeconfig)
    b = KubernetesSite(site_b.name, site_b.kubeconfig)
    yield a, b
    a.close()
    b.close()


def _rayjobs(site: Site) -> list[str]:
    items = site.api().request("GET", f"/apis/{GROUP}/{VERSION}/{PLURAL}")["items"]
    return [i["metadata"]["name"] for i in items]


def test_a_rayjob_dispatched_to_a_never_appears_on_b(
    site: Site, site_b: Site, adapters: tuple[KubernetesSite, KubernetesSite]
) -> None:
    a, b = adapters
    dispatch = make_dispatch("resident-in-a", accelerator="H20-96G")
    a.submit(dispatch)
    try:
        assert dispatch.name in _rayjobs(site)
        assert dispatch.name not in _rayjobs(site_b)
        assert a.status(dispatch.name).state is DispatchState.PENDING
        assert (b.status(dispatch.name).state, b.status(dispatch.name).reason) == (
            DispatchState.UNKNOWN,
            "NotFound",
        )
        b.cancel(dispatch.name)  # nothing there: a no-op, and A's RayJob is untouched
        assert dispatch.name in _rayjobs(site)
    finally:
        a.cancel(dispatch.name)
    assert dispatch.name not in _rayjobs(site)


def test_each_inventory_is_its_own_sites(adapters: tuple[KubernetesSite, KubernetesSite]) -> None:
    a, b = adapters
    assert {p.type: p.count for p in b.inventory()} == {"RTX4090-48G": 16}
    assert {p.type: p.count for p in a.inventory()} == {
        "RTX4090-48G": 32,
        "H20-96G": 16,
        "Ascend910B-64G": 16,
    }


def test_second_site_is_independent_and_stop_leaves_nothing(
    site: Site, site_b: Site, adapters: tuple[KubernetesSite, KubernetesSite]
) -> None:
    """Runs last here: it stops site B (the fixture's stop is then a no-op)."""
    adapters[1].close()  # its open watches would hold kube-apiserver's graceful shutdown
    assert site_b.server != site.server and site_b.etcd_url != site.etcd_url
    names = [n["metadata"]["name"] for n in site_b.api().request("GET", "/api/v1/nodes")["items"]]
    assert sorted(names) == ["test-b-rtx4090-48g-0", "test-b-rtx4090-48g-1"]
    site_b.stop()
    assert not any(site_b.alive().values())
    assert not site_b.workdir.exists()
    assert all(site.alive().values())
