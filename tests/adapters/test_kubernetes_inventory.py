"""The inventory cache's pure parts: what it keeps of a Node and a Pod, and the pools."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.kubernetes.inventory import NodeRecord, PodRecord, node_record, pod_record, pools_from
from scheduler.core.ids import AcceleratorType
from scheduler.core.model import AcceleratorPool


def _node(
    product: str | None = "H20-96G",
    allocatable: dict[str, str] | None = None,
    ready: str = "True",
    cordoned: bool = False,
) -> dict[str, Any]:
    labels = {} if product is None else {"isthmus.io/accelerator": product}
    return {
        "metadata": {"name": "n", "labels": labels},
        "spec": {"unschedulable": True} if cordoned else {},
        "status": {
            "allocatable": {"cpu": "64", "nvidia.com/gpu": "8"}
            if allocatable is None
            else allocatable,
            "conditions": [{"type": "Ready", "status": ready}],
        },
    }


@pytest.mark.parametrize(
    ("name", "node", "record"),
    [
        ("gpu node", _node(), NodeRecord("H20-96G", "nvidia.com/gpu", 8, True)),
        (
            "ascend node",
            _node("Ascend910B-64G", {"huawei.com/Ascend910": "8"}),
            NodeRecord("Ascend910B-64G", "huawei.com/Ascend910", 8, True),
        ),
        ("not ready", _node(ready="False"), NodeRecord("H20-96G", "nvidia.com/gpu", 8, False)),
        ("cordoned", _node(cordoned=True), NodeRecord("H20-96G", "nvidia.com/gpu", 8, False)),
        ("no label", _node(product=None), None),
        ("no accelerators", _node(allocatable={"cpu": "64"}), None),
    ],
)
def test_node_record(name: str, node: dict[str, Any], record: NodeRecord | None) -> None:
    assert node_record(node) == record, name


def _pod(node: str | None = "n", phase: str = "Running", **containers: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"nodeName": node, **containers},
        "status": {"phase": phase},
    }


def _c(**resources: Any) -> dict[str, Any]:
    return {"name": "c", "resources": resources}


@pytest.mark.parametrize(
    ("name", "pod", "record"),
    [
        (
            "requests",
            _pod(
                containers=[
                    _c(requests={"nvidia.com/gpu": "2"}),
                    _c(requests={"nvidia.com/gpu": "1"}),
                ]
            ),
            PodRecord("n", {"nvidia.com/gpu": 3}),
        ),
        (
            "limits only",
            _pod(containers=[_c(limits={"huawei.com/Ascend910": "4"})]),
            PodRecord("n", {"huawei.com/Ascend910": 4}),
        ),
        (
            "init container larger",
            _pod(
                containers=[_c(requests={"nvidia.com/gpu": "1"})],
                initContainers=[_c(requests={"nvidia.com/gpu": "4"})],
            ),
            PodRecord("n", {"nvidia.com/gpu": 4}),
        ),
        ("unbound", _pod(node=None, containers=[_c(requests={"nvidia.com/gpu": "1"})]), None),
        (
            "succeeded",
            _pod(phase="Succeeded", containers=[_c(requests={"nvidia.com/gpu": "1"})]),
            None,
        ),
        ("cpu only", _pod(containers=[_c(requests={"cpu": "1"})]), None),
    ],
)
def test_pod_record(name: str, pod: dict[str, Any], record: PodRecord | None) -> None:
    assert pod_record(pod) == record, name


def test_pools_count_usable_nodes_net_of_their_pods() -> None:
    nodes = {
        "a": NodeRecord("H20-96G", "nvidia.com/gpu", 8, True),
        "b": NodeRecord("H20-96G", "nvidia.com/gpu", 8, True),
        "c": NodeRecord("H20-96G", "nvidia.com/gpu", 8, False),  # cordoned: not counted
        "d": NodeRecord("Ascend910B-64G", "huawei.com/Ascend910", 8, True),
    }
    pods = {
        "ns/1": PodRecord("a", {"nvidia.com/gpu": 6}),
        "ns/2": PodRecord("b", {"nvidia.com/gpu": 8}),
        "ns/3": PodRecord("c", {"nvidia.com/gpu": 8}),  # on the cordoned node
        "ns/4": PodRecord("gone", {"nvidia.com/gpu": 8}),  # on a node not in the cache
        "ns/5": PodRecord("d", {"nvidia.com/gpu": 8}),  # another resource than the node's
    }
    assert pools_from(nodes, pods, {"H20-96G": 9.5}) == (
        AcceleratorPool(AcceleratorType("Ascend910B-64G"), 8, 8, 0.0),
        AcceleratorPool(AcceleratorType("H20-96G"), 16, 2, 9.5),
    )
