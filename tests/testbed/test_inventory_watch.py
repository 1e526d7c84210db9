"""The adapter's inventory is fed by watches: a node change shows within a second."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from adapters.kubernetes import KubernetesSite
from scheduler.core.ids import AcceleratorType
from scheduler.core.model import AcceleratorPool
from scheduler.testbed.site import NodePool, Site, node_manifests

pytestmark = [
    pytest.mark.testbed,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

MAX_DELAY_S = 1.0
L40S = AcceleratorType("L40S-48G")
H20 = AcceleratorType("H20-96G")


@pytest.fixture(scope="module")
def adapter(site: Site) -> Iterator[KubernetesSite]:
    k8s = KubernetesSite(site.name, site.kubeconfig)
    k8s.inventory()  # listed once; from here on only watch events
    yield k8s
    k8s.close()


def _delay(
    adapter: KubernetesSite,
    change: Callable[[], Any],
    seen: Callable[[dict[AcceleratorType, AcceleratorPool]], bool],
) -> float:
    """Seconds from just before ``change()`` is sent until ``inventory()`` satisfies ``seen``."""
    start = time.monotonic()
    change()
    while time.monotonic() - start < 10 * MAX_DELAY_S:
        if seen({p.type: p for p in adapter.inventory()}):
            return time.monotonic() - start
        time.sleep(0.005)
    raise AssertionError("the change never showed in the inventory")


def test_node_added_cordoned_uncordoned_and_removed_show_within_a_second(
    adapter: KubernetesSite, kube: ApiClient, site: Site
) -> None:
    core = client.CoreV1Api(kube)
    node = node_manifests(site.name, [NodePool(1, "L40S-48G", per_node=4)])[0]
    name = node["metadata"]["name"]
    h20_before = {p.type: p for p in adapter.inventory()}[H20].count
    delays: dict[str, float] = {}
    try:
        # Added: kwok must also mark it Ready — that is part of the measured delay.
        delays["added"] = _delay(
            adapter,
            lambda: core.create_node(node),
            lambda pools: L40S in pools and pools[L40S].count == 4,
        )
        delays["cordoned"] = _delay(
            adapter,
            lambda: core.patch_node(name, {"spec": {"unschedulable": True}}),
            lambda pools: L40S not in pools,
        )
        delays["uncordoned"] = _delay(
            adapter,
            lambda: core.patch_node(name, {"spec": {"unschedulable": False}}),
            lambda pools: L40S in pools and pools[L40S].count == 4,
        )
        delays["removed"] = _delay(
            adapter,
            lambda: core.delete_node(name),
            lambda pools: L40S not in pools,
        )
    finally:
        if "removed" not in delays:
            core.delete_node(name)
    assert all(d <= MAX_DELAY_S for d in delays.values()), delays
    assert {p.type: p for p in adapter.inventory()}[H20].count == h20_before


def test_an_existing_node_cordoned_shrinks_its_pool(
    adapter: KubernetesSite, kube: ApiClient, site: Site
) -> None:
    core = client.CoreV1Api(kube)
    name = f"{site.name}-h20-96g-0"
    before = {p.type: p for p in adapter.inventory()}[H20].count
    try:
        delay = _delay(
            adapter,
            lambda: core.patch_node(name, {"spec": {"unschedulable": True}}),
            lambda pools: pools[H20].count == before - 8,
        )
    finally:
        core.patch_node(name, {"spec": {"unschedulable": False}})
    assert delay <= MAX_DELAY_S
    deadline = time.monotonic() + 5
    while {p.type: p for p in adapter.inventory()}[H20].count != before:
        assert time.monotonic() < deadline, "the node never came back"
        time.sleep(0.01)


def test_inventory_is_read_from_memory(adapter: KubernetesSite) -> None:
    """After the first list, ``inventory()`` sends no request: a thousand calls are cheap and
    list nothing again (the watches keep the copy current)."""
    cache = adapter.inventory_cache
    lists = cache.lists
    assert lists >= 2  # nodes and pods, once each
    start = time.monotonic()
    for _ in range(1000):
        adapter.inventory()
    assert time.monotonic() - start < 2.0
    assert cache.lists == lists
