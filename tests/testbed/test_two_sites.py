"""Two sites, two adapters: each sees only its own cluster.

What the adapters owe residency is independence: a RayJob created through A's adapter exists at
A only, and each inventory is its own site's nodes. That a job residency-bound to site A is
never *placed* on B is the planner's and the service's part: the last test runs the service
with both sites.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.kubernetes import KubernetesSite
from adapters.kubernetes.manifest import GROUP, PLURAL, VERSION
from scheduler.core.adapter import DispatchState
from scheduler.service.config import load_config
from scheduler.service.jobs import JobSpec
from scheduler.service.service import Service
from scheduler.service.store import NewJob
from scheduler.testbed.site import NodePool, Site, start_site
from tests.service.harness import TOPOLOGY
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


def test_the_service_never_places_a_job_bound_to_a_on_b(
    site: Site, site_b: Site, tmp_path: Path
) -> None:
    """Two Kubernetes sites under one service: jobs reading a dataset that must stay in
    Shanghai (site A) become RayJobs at A only; unbound jobs may go anywhere."""
    config = tmp_path / "isthmus.yaml"
    config.write_text(f"""\
topology: {TOPOLOGY}
database: sqlite:///{tmp_path}/isthmus.db
tokens: [{{token: two-sites-token-000001, tenant: acme}}]
tenants: [{{id: acme, home_region: Shanghai}}]
datasets:
  - {{id: scans, size_gb: 1, replicas: [east-a], residency: {{regions: [Shanghai]}}}}
sites:
  east-a: {{adapter: kubernetes, kubeconfig: {site.kubeconfig}}}
  west-b: {{adapter: kubernetes, kubeconfig: {site_b.kubeconfig}}}
""")
    service = Service.from_config(load_config(config))
    try:
        def job(name: str, datasets: tuple[str, ...]) -> JobSpec:
            return JobSpec(name=name, entrypoint="python train.py", workers=1,
                           accelerators_per_worker=8, allowed_types=("RTX4090-48G",),
                           runtime_h={"RTX4090-48G": 1.0}, datasets=datasets)

        bound = [s.job.id for s in service.submit_many(
            [NewJob("acme", job(f"bound-{i}", ("scans",))) for i in range(3)])]
        free = [s.job.id for s in service.submit_many(
            [NewJob("acme", job(f"free-{i}", ())) for i in range(3)])]
        service.loop.cycle()
        records = {i: service.store.get(i) for i in bound + free}
        at_a, at_b = set(_rayjobs(site)), set(_rayjobs(site_b))
        for job_id in bound:
            record = records[job_id]
            assert record is not None and record.site == "east-a", record
            assert record.dispatch_name in at_a and record.dispatch_name not in at_b
        placed_free = [r for i in free if (r := records[i]) is not None and r.dispatch_name]
        assert placed_free, "the unbound jobs were placed somewhere"
        for record in placed_free:
            assert record.dispatch_name in (at_a if record.site == "east-a" else at_b)
    finally:
        for job_id in [*bound, *free]:
            service.cancel(job_id)
        service.loop.cycle()
        service.stop()


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
