"""The testbed is a real control plane: nodes, CRD validation and scheduling all happen."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from scheduler.testbed import versions
from scheduler.testbed.site import ACCELERATOR_LABEL, SITE_LABEL, Site
from tests.testbed.helpers import accelerator_pod, wait_for

pytestmark = [
    pytest.mark.testbed,
    # The testbed's serving certificate is self-signed; its kubeconfig says so.
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]


def _rayjob(name: str) -> dict[str, Any]:
    pod = {
        "containers": [
            {
                "name": "ray",
                "image": "rayproject/ray:2.49.0",
                "resources": {"limits": {"nvidia.com/gpu": "8"}},
            }
        ],
        "nodeSelector": {ACCELERATOR_LABEL: "H20-96G"},
    }
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": name, "labels": {"isthmus.io/job": name}},
        "spec": {
            "entrypoint": "python train.py",
            "shutdownAfterJobFinishes": True,
            "activeDeadlineSeconds": 3600,
            "rayClusterSpec": {
                "headGroupSpec": {"rayStartParams": {}, "template": {"spec": pod}},
                "workerGroupSpecs": [
                    {
                        "groupName": "h20",
                        "replicas": 1,
                        "minReplicas": 1,
                        "maxReplicas": 1,
                        "rayStartParams": {},
                        "template": {"spec": pod},
                    }
                ],
            },
        },
    }


def test_nodes_are_the_inventory(site: Site, kube: ApiClient) -> None:
    nodes = client.CoreV1Api(kube).list_node(label_selector=f"{SITE_LABEL}={site.name}").items
    products = Counter(n.metadata.labels[ACCELERATOR_LABEL] for n in nodes)
    assert products == {"RTX4090-48G": 4, "H20-96G": 2, "Ascend910B-64G": 2}
    for node in nodes:
        product = node.metadata.labels[ACCELERATOR_LABEL]
        resource = "huawei.com/Ascend910" if product == "Ascend910B-64G" else "nvidia.com/gpu"
        assert node.status.allocatable[resource] == "8"
        assert node.metadata.annotations["kwok.x-k8s.io/node"] == "fake"
        ready = [c for c in node.status.conditions if c.type == "Ready"]
        assert ready and ready[0].status == "True"


def test_rayjob_accepted_against_the_real_crd(kube: ApiClient) -> None:
    api = client.CustomObjectsApi(kube)
    created = api.create_namespaced_custom_object(
        "ray.io", "v1", "default", "rayjobs", _rayjob("ok")
    )
    assert created["metadata"]["uid"]
    got = api.get_namespaced_custom_object("ray.io", "v1", "default", "rayjobs", "ok")
    assert got["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["groupName"] == "h20"
    api.delete_namespaced_custom_object("ray.io", "v1", "default", "rayjobs", "ok")


@pytest.mark.parametrize(
    ("case", "mutate"),
    [
        ("entrypoint not a string", lambda s: s.update(entrypoint=42)),
        (
            "worker group without groupName",
            lambda s: s["rayClusterSpec"]["workerGroupSpecs"][0].pop("groupName"),
        ),
        (
            "head group without template",
            lambda s: s["rayClusterSpec"]["headGroupSpec"].pop("template"),
        ),
    ],
)
def test_malformed_rayjob_rejected(kube: ApiClient, case: str, mutate: Any) -> None:
    body = _rayjob("bad")
    mutate(body["spec"])
    with pytest.raises(ApiException) as err:
        client.CustomObjectsApi(kube).create_namespaced_custom_object(
            "ray.io", "v1", "default", "rayjobs", body
        )
    assert err.value.status == 422, case


def test_pod_scheduled_onto_a_kwok_node_of_the_requested_accelerator(
    site: Site, kube: ApiClient
) -> None:
    core = client.CoreV1Api(kube)
    pod = accelerator_pod("on-ascend", "Ascend910B-64G", "huawei.com/Ascend910", 8)
    core.create_namespaced_pod("default", pod)
    try:
        running = wait_for(
            "the pod to be scheduled and Running",
            lambda: (
                (p := core.read_namespaced_pod("on-ascend", "default")).status.phase == "Running"
                and p
            ),
        )
        node = core.read_node(running.spec.node_name)
        assert node.metadata.labels[ACCELERATOR_LABEL] == "Ascend910B-64G"
        assert node.metadata.labels[SITE_LABEL] == site.name
    finally:
        core.delete_namespaced_pod("on-ascend", "default", grace_period_seconds=0)


def test_kuberay_operator_places_the_rayclusters_pods_on_the_planned_accelerator(
    operator: list[str], kube: ApiClient
) -> None:
    assert "default" in operator
    custom = client.CustomObjectsApi(kube)
    core = client.CoreV1Api(kube)
    custom.create_namespaced_custom_object(
        "ray.io", "v1", "default", "rayjobs", _rayjob("with-operator")
    )
    try:
        cluster = wait_for(
            "the operator to create the RayCluster",
            lambda: (
                custom.get_namespaced_custom_object(
                    "ray.io", "v1", "default", "rayjobs", "with-operator"
                )
                .get("status", {})
                .get("rayClusterName")
            ),
            timeout=60,
        )

        def placed() -> list[Any]:
            pods = core.list_namespaced_pod("default", label_selector=f"ray.io/cluster={cluster}")
            bound = [p for p in pods.items if p.spec.node_name]
            return bound if len(bound) == 2 else []  # the head and one worker

        for pod in wait_for("the head and worker pods to be scheduled", placed, timeout=60):
            node = core.read_node(pod.spec.node_name)
            assert node.metadata.labels[ACCELERATOR_LABEL] == "H20-96G", pod.metadata.name
    finally:
        custom.delete_namespaced_custom_object(
            "ray.io", "v1", "default", "rayjobs", "with-operator"
        )


def test_binaries_report_the_pinned_version() -> None:
    import subprocess

    out = subprocess.run(
        [str(versions.bin_dir() / "kube-apiserver"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == f"Kubernetes {versions.KUBERNETES}"


def test_an_exited_controller_is_started_again_and_works(site: Site, kube: ApiClient) -> None:
    crashed = site.process("kube-scheduler")
    crashed.stop(kill=True)
    assert not crashed.alive()
    restarted = site.restart_exited()
    assert list(restarted) == ["kube-scheduler"]
    again = site.process("kube-scheduler")
    assert again.alive() and again.pid != crashed.pid
    assert site.restart_exited() == {}
    site.stop_apiserver()
    try:
        assert site.restart_exited() == {}  # tests stop the apiserver on purpose: left alone
    finally:
        site.start_apiserver()
    # the new scheduler schedules
    core = client.CoreV1Api(kube)
    pod = accelerator_pod("after-restart", "H20-96G", "nvidia.com/gpu", 1)
    core.create_namespaced_pod("default", pod)
    try:
        bound = wait_for(
            "the pod to be bound by the restarted scheduler",
            lambda: core.read_namespaced_pod("after-restart", "default").spec.node_name,
        )
        assert core.read_node(bound).metadata.labels[ACCELERATOR_LABEL] == "H20-96G"
    finally:
        core.delete_namespaced_pod("after-restart", "default", grace_period_seconds=0)
