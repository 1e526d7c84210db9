"""The kubernetes adapter against a real kube-apiserver with KubeRay's real CRDs (issue 4)."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from adapters.kubernetes import KubernetesSite, QuotaExhausted
from adapters.kubernetes.manifest import GROUP, PLURAL, VERSION, namespace_for
from adapters.kubernetes.retry import Backoff
from scheduler.core.adapter import (
    AdapterError,
    Dispatch,
    DispatchConflict,
    DispatchState,
    LogsUnavailable,
    SiteAdapter,
    SiteUnreachable,
    SupportsLogs,
    SupportsPreemption,
)
from scheduler.core.ids import AcceleratorType
from scheduler.testbed.site import ACCELERATOR_LABEL, DEFAULT_INVENTORY, Site, free_port
from tests.testbed.helpers import accelerator_pod, kubeconfig_with, make_dispatch, wait_for

pytestmark = [
    pytest.mark.testbed,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

FAST = Backoff(attempts=3, first_s=0.05, max_s=0.1, budget_s=2.0)


@pytest.fixture(scope="module")
def adapter(site: Site) -> Iterator[KubernetesSite]:
    k8s = KubernetesSite(site.name, site.kubeconfig)
    yield k8s
    k8s.close()


@pytest.fixture
def custom(kube: ApiClient) -> Any:
    return client.CustomObjectsApi(kube)


@pytest.fixture
def core(kube: ApiClient) -> Any:
    return client.CoreV1Api(kube)


def _write_status(custom: Any, dispatch: Dispatch, status: dict[str, str]) -> None:
    """Patch the status subresource, as the KubeRay operator does."""
    custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace_for(dispatch.tenant),
        PLURAL,
        dispatch.name,
        {"status": status},
    )


def test_conforms_to_the_protocols(adapter: KubernetesSite) -> None:
    assert isinstance(adapter, SiteAdapter)
    assert isinstance(adapter, SupportsLogs)
    assert isinstance(adapter, SupportsPreemption)


def test_inventory_equals_the_kwok_nodes(adapter: KubernetesSite) -> None:
    pools = {p.type: p for p in adapter.inventory()}
    expected = {pool.product: pool.count * pool.per_node for pool in DEFAULT_INVENTORY}
    assert {t: p.count for t, p in pools.items()} == expected
    assert all(p.available <= p.count for p in pools.values())


def test_inventory_subtracts_requests_of_running_pods(adapter: KubernetesSite, core: Any) -> None:
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
    adapter: KubernetesSite, custom: Any
) -> None:
    dispatch = make_dispatch("submit-twice", tenant="Tenant_One")
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
        # The CRD's schema keeps the tolerations (an unknown field would have been pruned).
        keys = {t["key"] for t in workers["template"]["spec"]["tolerations"]}
        assert keys == {"nvidia.com/gpu", "kwok.x-k8s.io/node"}
        listed = custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, label_selector="isthmus.io/job=submit-twice"
        )
        assert len(listed["items"]) == 1
        assert adapter.status(dispatch.name).state is DispatchState.PENDING

        # Same name, another job: refused loudly, the existing object untouched.
        impostor = Dispatch(
            dispatch.name, make_dispatch("someone-else").job, dispatch.placement, dispatch.tenant, 0
        )
        with pytest.raises(DispatchConflict, match="someone-else"):
            adapter.submit(impostor)
    finally:
        adapter.cancel(dispatch.name)


@pytest.mark.parametrize(
    ("written", "state"),
    [
        ({"jobDeploymentStatus": "Initializing", "jobStatus": ""}, DispatchState.PENDING),
        ({"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}, DispatchState.RUNNING),
        ({"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}, DispatchState.SUCCEEDED),
        (
            {"jobDeploymentStatus": "Complete", "jobStatus": "FAILED", "message": "exit 1"},
            DispatchState.FAILED,
        ),
        (
            {"jobDeploymentStatus": "Failed", "reason": "DeadlineExceeded", "message": "late"},
            DispatchState.FAILED,
        ),
    ],
)
def test_status_follows_what_kuberay_writes(
    adapter: KubernetesSite, custom: Any, written: dict[str, str], state: DispatchState
) -> None:
    dispatch = make_dispatch(f"status-{state.value.lower()}-{len(written)}")
    adapter.submit(dispatch)
    try:
        _write_status(custom, dispatch, written)
        status = adapter.status(dispatch.name)
        assert status.state is state
        assert status.is_terminal() == (state in {DispatchState.SUCCEEDED, DispatchState.FAILED})
        if "reason" in written:
            assert (status.reason, status.message) == (written["reason"], written["message"])
        if "message" in written:
            assert status.message == written["message"]
    finally:
        adapter.cancel(dispatch.name)


def test_the_lifecycle_as_kuberay_writes_it(site: Site, custom: Any) -> None:
    """Pending -> running -> succeeded, read by an adapter that never saw the submit."""
    first = KubernetesSite(site.name, site.kubeconfig)
    dispatch = make_dispatch("lifecycle")
    first.submit(dispatch)
    first.close()
    fresh = KubernetesSite(site.name, site.kubeconfig)  # as after a restart: no caches
    try:
        assert fresh.status(dispatch.name).state is DispatchState.PENDING
        _write_status(custom, dispatch, {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"})
        assert fresh.status(dispatch.name).state is DispatchState.RUNNING
        _write_status(
            custom, dispatch, {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}
        )
        assert fresh.status(dispatch.name).state is DispatchState.SUCCEEDED
    finally:
        fresh.cancel(dispatch.name)
        fresh.close()


def test_cancel_deletes_and_is_idempotent(site: Site, adapter: KubernetesSite, custom: Any) -> None:
    dispatch = make_dispatch("to-cancel")
    adapter.submit(dispatch)
    fresh = KubernetesSite("fresh", site.kubeconfig)  # as after a restart: no namespace cache
    try:
        fresh.cancel(dispatch.name)
    finally:
        fresh.close()
    with pytest.raises(ApiException) as err:
        custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace_for("acme"), PLURAL, dispatch.name
        )
    assert err.value.status == 404
    adapter.cancel(dispatch.name)  # already gone: no error
    status = adapter.status(dispatch.name)
    assert (status.state, status.reason) == (DispatchState.UNKNOWN, "NotFound")


def test_suspend_and_resume_flip_spec_suspend(adapter: KubernetesSite, custom: Any) -> None:
    """Without the operator here: the adapter's part is the patch (the operator's reaction is
    tested with the real operator in test_kubernetes_operator.py)."""
    dispatch = make_dispatch("to-suspend")
    adapter.submit(dispatch)

    def suspended() -> bool | None:
        got = custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace_for("acme"), PLURAL, dispatch.name
        )
        value: bool | None = got["spec"].get("suspend")
        return value

    try:
        adapter.suspend(dispatch.name)
        adapter.suspend(dispatch.name)  # idempotent
        assert suspended() is True
        _write_status(custom, dispatch, {"jobDeploymentStatus": "Suspended", "jobStatus": ""})
        status = adapter.status(dispatch.name)
        assert (status.state, status.reason) == (DispatchState.PENDING, "Suspended")
        adapter.resume(dispatch.name)
        assert suspended() is False
    finally:
        adapter.cancel(dispatch.name)
    with pytest.raises(AdapterError, match="no such RayJob"):
        adapter.suspend(dispatch.name)


def test_logs_say_why_there_are_none(adapter: KubernetesSite, core: Any) -> None:
    with pytest.raises(LogsUnavailable, match="no RayJob never-submitted-0"):
        adapter.logs("never-submitted-0")

    dispatch = make_dispatch("with-logs")
    namespace = namespace_for("acme")
    adapter.submit(dispatch)
    where = f"RayJob {namespace}/{dispatch.name}"
    try:
        with pytest.raises(LogsUnavailable, match=f"no submitter pod found for {where}"):
            adapter.logs(dispatch.name)

        # A submitter pod as KubeRay's Job makes it, that cannot be scheduled: not started.
        def submitter(name: str, node_selector: dict[str, str]) -> dict[str, Any]:
            return {
                "metadata": {
                    "name": name,
                    "labels": {"batch.kubernetes.io/job-name": dispatch.name},
                },
                "spec": {
                    "nodeSelector": node_selector,
                    "restartPolicy": "Never",
                    "containers": [{"name": "ray-job-submitter", "image": "ray"}],
                },
            }

        core.create_namespaced_pod(namespace, submitter("sub-1", {"nowhere": "true"}))
        with pytest.raises(LogsUnavailable, match=r"submitter pod .*/sub-1 .* has not started"):
            adapter.logs(dispatch.name)

        # A newer one, running on a KWOK node: there is no kubelet to serve the log.
        core.create_namespaced_pod(namespace, submitter("sub-2", {}))
        wait_for(
            "the submitter pod to run",
            lambda: core.read_namespaced_pod("sub-2", namespace).status.phase == "Running",
        )
        with pytest.raises(LogsUnavailable, match=r"could not serve the log .*/sub-2"):
            adapter.logs(dispatch.name)
    finally:
        for name in ("sub-1", "sub-2"):
            with contextlib.suppress(ApiException):
                core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
        adapter.cancel(dispatch.name)


def test_exhausted_quota_refuses_with_the_reason(
    adapter: KubernetesSite, core: Any, custom: Any
) -> None:
    namespace = namespace_for("quota-t")
    core.create_namespace({"metadata": {"name": namespace}})
    quota = {"metadata": {"name": "rayjobs"}, "spec": {"hard": {"count/rayjobs.ray.io": "0"}}}
    core.create_namespaced_resource_quota(namespace, quota)
    try:
        # The quota controller must have counted the namespace before admission enforces it.
        wait_for(
            "the quota controller to count the namespace",
            lambda: core.read_namespaced_resource_quota("rayjobs", namespace).status.hard or {},
        )
        dispatch = make_dispatch("over-quota", tenant="quota-t")
        with pytest.raises(QuotaExhausted, match="quota exhausted") as err:
            adapter.submit(dispatch)
        assert isinstance(err.value, AdapterError)
        assert f"namespace {namespace}" in str(err.value)
        assert "count/rayjobs.ray.io" in str(err.value)
        listed = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        assert listed["items"] == []
    finally:
        core.delete_namespaced_resource_quota("rayjobs", namespace)


def test_health_ok(adapter: KubernetesSite) -> None:
    assert adapter.health().ok


def test_a_bogus_token_is_unhealthy_and_unauthorized(site: Site, tmp_path: Path) -> None:
    bad = KubernetesSite("bad", kubeconfig_with(site, tmp_path / "kc", token="bogus"), backoff=FAST)
    try:
        health = bad.health()
        assert not health.ok
        assert health.reason.startswith("unauthorized (401)"), health.reason
        # Not transient: submit refuses at once with the same reason, without retrying.
        with pytest.raises(AdapterError, match=r"unauthorized \(401\)") as err:
            bad.submit(make_dispatch("never"))
        assert not isinstance(err.value, SiteUnreachable)
    finally:
        bad.close()


def test_no_apiserver_is_unhealthy_and_unreachable(site: Site, tmp_path: Path) -> None:
    server = f"https://127.0.0.1:{free_port()}"
    gone = KubernetesSite(
        "gone",
        kubeconfig_with(site, tmp_path / "kc", server=server),
        backoff=FAST,
        sync_timeout_s=0.5,
    )
    try:
        health = gone.health()
        assert not health.ok and health.reason.startswith("unreachable"), health.reason
        with pytest.raises(SiteUnreachable, match=r"create namespace .* after 3 tries"):
            gone.submit(make_dispatch("nowhere"))
        with pytest.raises(SiteUnreachable, match="inventory not listed"):
            gone.inventory()
    finally:
        gone.close()


def test_from_config_with_a_kubeconfig_file(site: Site) -> None:
    built = KubernetesSite.from_config(
        site.name,
        {"kubeconfig": str(site.kubeconfig), "prices": {"H20-96G": 9.5}, "namespace_prefix": "p-"},
    )
    try:
        assert built.health().ok
        pools = {p.type: p for p in built.inventory()}
        assert pools[AcceleratorType("H20-96G")].price_cny_per_hour == 9.5
        assert pools[AcceleratorType("RTX4090-48G")].price_cny_per_hour == 0.0
        dispatch = make_dispatch("prefixed", tenant="acme")
        built.submit(dispatch)
        assert built.status(dispatch.name).state is DispatchState.PENDING
        built.cancel(dispatch.name)
    finally:
        built.close()


def test_from_config_with_a_kubeconfig_secret_on_the_hub(
    site: Site, core: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The testbed plays both the hub (holding the Secret) and the site."""
    data = {"kubeconfig": base64.b64encode(site.kubeconfig.read_bytes()).decode()}
    core.create_namespaced_secret(
        "default", {"metadata": {"name": "site-a-kubeconfig"}, "data": data}
    )
    try:
        ref = {"namespace": "default", "name": "site-a-kubeconfig", "key": "kubeconfig"}
        via_hub = KubernetesSite.from_config(
            "a", {"kubeconfig_secret": ref, "hub_kubeconfig": str(site.kubeconfig)}
        )
        try:
            assert via_hub.health().ok
        finally:
            via_hub.close()

        # No hub_kubeconfig and not in a pod: the ambient kubeconfig ($KUBECONFIG).
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        monkeypatch.setenv("KUBECONFIG", str(site.kubeconfig))
        ambient = KubernetesSite.from_config("a", {"kubeconfig_secret": ref})
        try:
            assert ambient.health().ok
        finally:
            ambient.close()

        with pytest.raises(ValueError, match="kubeconfig_secret: secret default/missing"):
            KubernetesSite.from_config("a", {"kubeconfig_secret": {**ref, "name": "missing"}})
        with pytest.raises(ValueError, match=r"kubeconfig_secret\.key: .* no key 'nope'"):
            KubernetesSite.from_config("a", {"kubeconfig_secret": {**ref, "key": "nope"}})
    finally:
        core.delete_namespaced_secret("site-a-kubeconfig", "default")
