"""High availability: two ``isthmus serve`` replicas, one PostgreSQL, one Lease on a real
kube-apiserver (the testbed), one real Ray site. The leader is killed (SIGKILL) mid-cycle; the
other takes the Lease over within 15 s and every job runs exactly once (by Ray's own list)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scheduler.demo.ray_head import RayHead
from scheduler.testbed import versions
from scheduler.testbed.site import NodePool, Site, start_site
from tests.service.harness import TOPOLOGY
from tests.service.test_crash_ray import Serve, _free_port, _ours

pytestmark = pytest.mark.testbed
TOKEN = "ha-tenant-token-00000001"
JOBS = 10
TAKEOVER_LIMIT_S = 15.0


@pytest.fixture(scope="module")
def apiserver() -> Iterator[Site]:
    missing = versions.missing_binaries()
    if missing:
        pytest.skip(f"testbed binaries missing ({', '.join(missing)}): run `make testbed`")
    site = start_site("ha", (NodePool(1, "RTX4090-48G"),))
    try:
        yield site
    finally:
        site.stop()


def _config(tmp: Path, head: RayHead, db: str, site: Site) -> Path:
    path = tmp / "isthmus.yaml"
    path.write_text(f"""\
topology: {TOPOLOGY}
database: {db}
cycle_s: 0.5
tokens: [{{token: {TOKEN}, tenant: acme}}]
tenants: [{{id: acme, home_region: Shanghai}}]
datasets:
  - {{id: scans, size_gb: 1, replicas: [east-a], residency: {{regions: [Shanghai]}}}}
leader_election:
  lease: isthmus-leader
  namespace: default
  kubeconfig: {site.kubeconfig}
  lease_duration_s: 10
  renew_every_s: 2
sites:
  east-a:
    adapter: ray
    address: {head.dashboard_url}
    accelerators: [RTX4090-48G]
""")
    return path


def _holder(site: Site) -> str | None:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    configuration = client.Configuration()
    config.load_kube_config(config_file=str(site.kubeconfig),
                            client_configuration=configuration)
    with client.ApiClient(configuration) as api:
        try:
            lease = client.CoordinationV1Api(api).read_namespaced_lease("isthmus-leader",
                                                                        "default")
        except ApiException as err:
            if err.status == 404:
                return None
            raise
    return lease.spec.holder_identity


@pytest.fixture
def ray_jobs(ray_head: RayHead) -> Iterator[object]:
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(ray_head.dashboard_url)
    yield client
    for job in client.list_jobs():
        if not job.status.is_terminal():
            client.stop_job(job.submission_id)


def test_the_leaders_loss_is_taken_over_without_losing_or_repeating_a_job(
    tmp_path: Path, apiserver: Site, postgres_url: str, ray_head: RayHead, ray_jobs: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _config(tmp_path, ray_head, postgres_url, apiserver)
    replicas: dict[str, Serve] = {}
    try:
        for name in ("replica-a", "replica-b"):
            monkeypatch.setenv("ISTHMUS_POD_NAME", name)
            replicas[name] = Serve(config, _free_port(), tmp_path / f"{name}.log")
        deadline = time.monotonic() + 30
        while (leader := _holder(apiserver)) not in replicas:
            assert time.monotonic() < deadline, "no replica took the Lease in 30 s"
            time.sleep(0.2)
        follower = next(n for n in replicas if n != leader)
        # Both serve the API: submit through the follower, read through the leader.
        headers = {"Authorization": f"Bearer {TOKEN}"}
        body = {
            "name": "ha", "entrypoint": "python -c \"import time; time.sleep(3)\"",
            "gang": {"workers": 1, "accelerators_per_worker": 1,
                     "allowed_types": ["RTX4090-48G"]},
            "runtime_h": 0.001, "datasets": ["scans"],
        }
        accepted = set()
        for i in range(JOBS):
            r = httpx.post(f"{replicas[follower].url}/v1/jobs", json=body, timeout=10,
                           headers={**headers, "Idempotency-Key": f"ha-{i}"})
            assert r.status_code == 201, r.text
            accepted.add(r.json()["id"])
        r = httpx.get(f"{replicas[leader].url}/v1/jobs", headers=headers, timeout=10)
        assert {j["id"] for j in r.json()["items"]} == accepted

        deadline = time.monotonic() + 60
        while not _ours(ray_jobs, accepted):  # the leader is dispatching: kill it now
            assert time.monotonic() < deadline, "the leader dispatched nothing in 60 s"
            time.sleep(0.02)
        replicas[leader].kill9()
        killed_at = time.monotonic()
        while _holder(apiserver) != follower:
            assert time.monotonic() - killed_at < TAKEOVER_LIMIT_S + 5, "no takeover"
            time.sleep(0.1)
        takeover_s = time.monotonic() - killed_at
        assert takeover_s <= TAKEOVER_LIMIT_S, f"takeover took {takeover_s:.1f} s"
        print(f"leader {leader} killed; {follower} took the Lease over in {takeover_s:.1f} s")

        survivor = replicas[follower]
        deadline = time.monotonic() + 180
        while True:
            jobs = httpx.get(f"{survivor.url}/v1/jobs", headers=headers, timeout=10,
                             params={"limit": 100}).json()["items"]
            states = Counter(j["state"] for j in jobs)
            if states["SUCCEEDED"] == JOBS:
                break
            assert not states["FAILED"], [j["message"] for j in jobs if j["state"] == "FAILED"]
            assert time.monotonic() < deadline, f"not all done in 180 s: {states}"
            time.sleep(0.5)
        assert {j["id"] for j in jobs} == accepted
        runs = Counter(_ours(ray_jobs, accepted))
        assert len(runs) == JOBS and set(runs.values()) == {1}, runs
    finally:
        for serve in replicas.values():
            serve.stop()
