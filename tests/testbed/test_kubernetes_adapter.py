"""The kubernetes adapter against a real kube-apiserver with KubeRay's real CRDs (issue 4)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from adapters.kubernetes import DispatchConflictError, KubernetesSite
from adapters.kubernetes.manifest import GROUP, PLURAL, VERSION, namespace_for
from scheduler.core.adapter import Dispatch, DispatchState, SiteAdapter
from scheduler.core.ids import AcceleratorType, JobId, SiteId, TenantId
from scheduler.core.model import Gang, Job
from scheduler.core.plan import CostBreakdown, Placement
from scheduler.testbed.site import ACCELERATOR_LABEL, DEFAULT_INVENTORY, Site, free_port
from tests.testbed.helpers import accelerator_pod, wait_for

pytestmark = [
    pytest.mark.testbed,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]


def _dispatch(job_id: str, tenant: str = "acme", accelerator: str = "H20-96G") -> Dispatch:
    acc = AcceleratorType(accelerator)
    job = Job(JobId(job_id), TenantId(tenant), Gang(2, 8, frozenset({acc})), {acc: 1.0}, 0.0)
    placement = Placement(job.id, SiteId("test-a"), acc, 16, 1.0, CostBreakdown())
    return Dispatch.for_attempt(job, placement, 0)


@pytest.fixture(scope="module")
def adapter(site: Site) -> Iterator[KubernetesSite]:
    k8s = KubernetesSite(site.name, site.kubeconfig)
    yield k8s
    k8s.close()


def _with_kubeconfig(site: Site, tmp_path: Path, **changes: str) -> Path:
    config = yaml.safe_load(site.kubeconfig.read_text())
    if "token" in changes:
        config["users"][0]["user"]["token"] = changes["token"]
    if "server" in changes:
        config["clusters"][0]["cluster"]["server"] = changes["server"]
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_conforms_to_the_protocol(adapter: KubernetesSite) -> None:
    assert isinstance(adapter, SiteAdapter)


def test_inventory_equals_the_kwok_nodes(adapter: KubernetesSite) -> None:
    pools = {p.type: p for p in adapter.inventory()}
    expected = {pool.product: pool.count * pool.per_node for pool in DEFAULT_INVENTORY}
    assert {t: p.count for t, p in pools.items()} == expected


def test_inventory_subtracts_requests_of_running_pods(
    adapter: KubernetesSite, kube: ApiClient
) -> None:
    core = client.CoreV1Api(kube)

    def available() -> int:
        pools = {p.type: p for p in adapter.inventory()}
        return pools[AcceleratorType("Ascend910B-64G")].available

    before = available()
    pod = accelerator_pod("holds-ascend", "Ascend910B-64G", "huawei.com/Ascend910", 3)
    core.create_namespaced_pod("default", pod)
    try:
        wait_for("the pod to be bound", lambda: available() == before - 3)
    finally:
        core.delete_namespaced_pod("holds-ascend", "default", grace_period_seconds=0)
    wait_for("the accelerators to come back", lambda: available() == before)


def test_submit_creates_one_rayjob_accepted_by_the_crd(
    adapter: KubernetesSite, kube: ApiClient
) -> None:
    custom = client.CustomObjectsApi(kube)
    dispatch = _dispatch("submit-twice", tenant="Tenant_One")
    namespace = namespace_for("Tenant_One")
    adapter.submit(dispatch)
    adapter.submit(dispatch)  # a retry: no error, no second object
    try:
        got = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, dispatch.name)
        assert got["metadata"]["labels"]["isthmus.io/job"] == "submit-twice"
        assert got["metadata"]["labels"]["isthmus.io/attempt"] == "0"
        workers = got["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
        assert workers["replicas"] == 2
        assert workers["template"]["spec"]["nodeSelector"] == {ACCELERATOR_LABEL: "H20-96G"}
        listed = custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, label_selector="isthmus.io/job=submit-twice"
        )
        assert len(listed["items"]) == 1
        assert adapter.status(dispatch.name).state is DispatchState.PENDING

        # Same name, another job: refused loudly, the existing object untouched.
        impostor = Dispatch(
            dispatch.name, _dispatch("someone-else").job, dispatch.placement, dispatch.tenant, 0
        )
        with pytest.raises(DispatchConflictError, match="someone-else"):
            adapter.submit(impostor)
    finally:
        adapter.cancel(dispatch.name)


@pytest.mark.parametrize(
    ("written", "state"),
    [
        ({"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}, DispatchState.RUNNING),
        ({"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}, DispatchState.SUCCEEDED),
        (
            {"jobDeploymentStatus": "Failed", "reason": "DeadlineExceeded", "message": "late"},
            DispatchState.FAILED,
        ),
    ],
)
def test_status_follows_what_kuberay_writes(
    adapter: KubernetesSite, kube: ApiClient, written: dict[str, str], state: DispatchState
) -> None:
    dispatch = _dispatch(f"status-{state.value.lower()}")
    adapter.submit(dispatch)
    try:
        client.CustomObjectsApi(kube).patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            namespace_for("acme"),
            PLURAL,
            dispatch.name,
            {"status": written},
        )
        status = adapter.status(dispatch.name)
        assert status.state is state
        if "reason" in written:
            assert (status.reason, status.message) == (written["reason"], written["message"])
    finally:
        adapter.cancel(dispatch.name)


def test_cancel_deletes_and_is_idempotent(
    site: Site, adapter: KubernetesSite, kube: ApiClient
) -> None:
    dispatch = _dispatch("to-cancel")
    adapter.submit(dispatch)
    fresh = KubernetesSite("fresh", site.kubeconfig)  # as after a restart: no namespace cache
    try:
        fresh.cancel(dispatch.name)
    finally:
        fresh.close()
    with pytest.raises(ApiException) as err:
        client.CustomObjectsApi(kube).get_namespaced_custom_object(
            GROUP, VERSION, namespace_for("acme"), PLURAL, dispatch.name
        )
    assert err.value.status == 404
    adapter.cancel(dispatch.name)  # already gone: no error
    status = adapter.status(dispatch.name)
    assert (status.state, status.reason) == (DispatchState.UNKNOWN, "NotFound")


def test_health_ok(adapter: KubernetesSite) -> None:
    assert adapter.health().ok


def test_health_with_a_bogus_token_says_unauthorized(site: Site, tmp_path: Path) -> None:
    bad = KubernetesSite("bad", _with_kubeconfig(site, tmp_path, token="bogus"))
    try:
        health = bad.health()
    finally:
        bad.close()
    assert not health.ok
    assert "401" in health.reason and "unauthorized" in health.reason


def test_health_with_no_apiserver_says_unreachable(site: Site, tmp_path: Path) -> None:
    gone = KubernetesSite(
        "gone", _with_kubeconfig(site, tmp_path, server=f"https://127.0.0.1:{free_port()}")
    )
    try:
        health = gone.health()
    finally:
        gone.close()
    assert not health.ok and "unreachable" in health.reason
