"""The adapter's RayJobs under the real KubeRay operator: tolerations, placement, suspend/resume.

Two extra KWOK nodes carry the taints real accelerator nodes carry (``nvidia.com/gpu`` and
KWOK's own ``kwok.x-k8s.io/node``, both NoSchedule). A pod without tolerations stays off them;
the adapter's RayJob, planned on their accelerator type, lands there and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from adapters.kubernetes import KubernetesSite
from adapters.kubernetes.manifest import GROUP, PLURAL, VERSION, namespace_for
from scheduler.core.adapter import DispatchState
from scheduler.core.ids import AcceleratorType
from scheduler.testbed.site import ACCELERATOR_LABEL, NodePool, Site, node_manifests
from tests.testbed.helpers import OPERATED_TENANT, accelerator_pod, make_dispatch, wait_for

pytestmark = [
    pytest.mark.testbed,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

H100 = "H100-80G"
TAINTED = NodePool(
    2,
    H100,
    taints=(
        ("nvidia.com/gpu", "present", "NoSchedule"),
        ("kwok.x-k8s.io/node", "fake", "NoSchedule"),
    ),
)
NAMESPACE = namespace_for(OPERATED_TENANT)


@pytest.fixture(scope="module")
def h100_nodes(site: Site, kube: ApiClient) -> Iterator[list[str]]:
    core = client.CoreV1Api(kube)
    nodes = node_manifests(site.name, [TAINTED])
    for node in nodes:
        core.create_node(node)
    names = [n["metadata"]["name"] for n in nodes]

    def ready() -> bool:
        return all(
            any(
                c.type == "Ready" and c.status == "True"
                for c in core.read_node(n).status.conditions or ()
            )
            for n in names
        )

    try:
        wait_for("the tainted H100 nodes to be Ready", ready)
        yield names
    finally:
        for name in names:
            core.delete_node(name)


@pytest.fixture(scope="module")
def adapter(site: Site) -> Iterator[KubernetesSite]:
    k8s = KubernetesSite(site.name, site.kubeconfig)
    yield k8s
    k8s.close()


def test_a_pod_without_tolerations_stays_off_the_tainted_nodes(
    h100_nodes: list[str], kube: ApiClient
) -> None:
    core = client.CoreV1Api(kube)
    core.create_namespaced_pod("default", accelerator_pod("untolerated", H100, "nvidia.com/gpu", 1))
    try:

        def unschedulable() -> str:
            # kube-scheduler may first judge the pod before its cache has the new nodes ("8
            # node(s) didn't match ... selector"); it judges again when they arrive.
            pod = core.read_namespaced_pod("untolerated", "default")
            for condition in pod.status.conditions or ():
                if condition.type == "PodScheduled" and condition.reason == "Unschedulable":
                    message = str(condition.message)
                    return message if "taint" in message else ""
            return ""

        message = wait_for("kube-scheduler to refuse the pod for its taints", unschedulable,
                           timeout=60)
        assert "untolerated taint" in message, message
        assert not core.read_namespaced_pod("untolerated", "default").spec.node_name
    finally:
        core.delete_namespaced_pod("untolerated", "default", grace_period_seconds=0)


def test_rayjob_lands_on_the_tainted_planned_nodes_and_suspends_and_resumes(
    operator: list[str], h100_nodes: list[str], adapter: KubernetesSite, kube: ApiClient
) -> None:
    assert NAMESPACE in operator
    core = client.CoreV1Api(kube)
    custom = client.CustomObjectsApi(kube)
    # Three workers of 8 where two nodes of 8 exist: one worker stays Pending, so the RayCluster
    # never becomes ready and the RayJob stays Initializing. (Under KWOK no Ray runs: a ready
    # cluster would go on to fail for want of a Ray dashboard.) Steady ground for suspend.
    dispatch = make_dispatch("on-h100", tenant=OPERATED_TENANT, accelerator=H100, workers=3)
    h100 = AcceleratorType(H100)

    def rayjob() -> dict[str, Any]:
        got: dict[str, Any] = custom.get_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, dispatch.name
        )
        return got

    def cluster_pods() -> list[Any]:
        name = (rayjob().get("status") or {}).get("rayClusterName")
        if not name:
            return []
        selector = f"ray.io/cluster={name}"
        return list(core.list_namespaced_pod(NAMESPACE, label_selector=selector).items)

    def placed() -> list[Any]:
        pods = cluster_pods()
        bound = [p for p in pods if p.spec.node_name and not p.metadata.deletion_timestamp]
        return bound if len(pods) == 4 and len(bound) == 3 else []  # head + 2 of 3 workers

    def available() -> int:
        return {p.type: p for p in adapter.inventory()}[h100].available

    adapter.submit(dispatch)
    try:
        for pod in wait_for("the operator's pods to be placed", placed, timeout=90):
            node = core.read_node(pod.spec.node_name)
            assert node.metadata.labels[ACCELERATOR_LABEL] == H100, pod.metadata.name
            assert pod.spec.node_name in h100_nodes
        status = adapter.status(dispatch.name)
        assert (status.state, status.reason) == (DispatchState.PENDING, "Initializing")
        wait_for("the workers' accelerators to be used", lambda: available() == 0)

        adapter.suspend(dispatch.name)
        wait_for(
            "the operator to suspend the RayJob",
            lambda: adapter.status(dispatch.name).reason == "Suspended",
            timeout=90,
        )
        assert adapter.status(dispatch.name).state is DispatchState.PENDING
        wait_for("the RayCluster's pods to go", lambda: not cluster_pods(), timeout=90)
        wait_for("the accelerators to come back", lambda: available() == 16)

        adapter.resume(dispatch.name)
        wait_for("the operator to place the pods again", placed, timeout=90)
        assert adapter.status(dispatch.name).reason == "Initializing"
    finally:
        adapter.cancel(dispatch.name)

    def gone() -> bool:
        try:
            rayjob()
        except ApiException as err:
            return err.status == 404
        return False

    wait_for("the operator to let the RayJob go", gone, timeout=90)
    wait_for("the accelerators to come back after cancel", lambda: available() == 16, timeout=90)
