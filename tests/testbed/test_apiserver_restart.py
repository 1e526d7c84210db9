"""kube-apiserver killed in the middle of a dispatch and started again: the adapter retries, the
site ends with exactly one RayJob, and the inventory's watches recover by themselves."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient
from urllib3.exceptions import ProtocolError

from adapters.kubernetes import KubernetesSite
from adapters.kubernetes.manifest import GROUP, PLURAL, VERSION, namespace_for
from adapters.kubernetes.retry import Backoff
from scheduler.core.adapter import DispatchState
from scheduler.core.ids import AcceleratorType
from scheduler.testbed.site import Site
from tests.testbed.helpers import make_dispatch, wait_for

pytestmark = [
    pytest.mark.testbed,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

# Long enough to outlast a restart of kube-apiserver on a busy 2-core machine.
PATIENT = Backoff(attempts=200, first_s=0.2, max_s=1.0, budget_s=120.0)
H20 = AcceleratorType("H20-96G")


@pytest.fixture
def adapter(site: Site) -> Iterator[KubernetesSite]:
    k8s = KubernetesSite(site.name, site.kubeconfig, backoff=PATIENT)
    yield k8s
    k8s.close()


@pytest.fixture(autouse=True)
def apiserver_back(site: Site) -> Iterator[None]:
    """Whatever happens in a test, the session's site has its apiserver again afterwards."""
    yield
    site.start_apiserver()


def _rayjobs(kube: ApiClient, job: str) -> list[dict[str, Any]]:
    listed = client.CustomObjectsApi(kube).list_cluster_custom_object(
        GROUP, VERSION, PLURAL, label_selector=f"isthmus.io/job={job}"
    )
    items: list[dict[str, Any]] = listed["items"]
    return items


def _restart_later(site: Site, delay_s: float) -> threading.Thread:
    def restart() -> None:
        time.sleep(delay_s)
        site.start_apiserver()

    thread = threading.Thread(target=restart, daemon=True)
    thread.start()
    return thread


def test_killed_before_the_request_the_submit_waits_and_creates_one(
    site: Site, adapter: KubernetesSite, kube: ApiClient
) -> None:
    adapter.inventory()  # the watches are running when the apiserver dies
    lists_before = adapter.inventory_cache.lists
    dispatch = make_dispatch("restart-before")
    site.stop_apiserver()
    restarter = _restart_later(site, 1.0)
    started = time.monotonic()
    adapter.submit(dispatch)  # retried through the outage
    took = time.monotonic() - started
    restarter.join()
    try:
        assert took >= 1.0  # it really waited for the restart
        assert len(_rayjobs(kube, "restart-before")) == 1
        assert adapter.status(dispatch.name).state is DispatchState.PENDING
        # The watches broke and came back by relisting; the inventory is current again.
        wait_for("a relist", lambda: adapter.inventory_cache.lists > lists_before, timeout=60)
        core = client.CoreV1Api(kube)
        name = f"{site.name}-h20-96g-1"
        before = {p.type: p for p in adapter.inventory()}[H20].count
        core.patch_node(name, {"spec": {"unschedulable": True}})
        try:
            wait_for(
                "the cordon to show",
                lambda: {p.type: p for p in adapter.inventory()}[H20].count == before - 8,
                timeout=5,
                interval=0.01,
            )
        finally:
            core.patch_node(name, {"spec": {"unschedulable": False}})
    finally:
        adapter.cancel(dispatch.name)


def test_killed_after_the_create_landed_the_retry_adopts_it(
    site: Site, adapter: KubernetesSite, kube: ApiClient
) -> None:
    """The worst moment: the RayJob is stored but the answer never comes back. The apiserver is
    really killed right after the create reached it; the adapter sees the connection drop, as
    it would, retries through the outage, gets 409 and adopts its own RayJob."""
    dispatch = make_dispatch("restart-after")
    real_create = adapter._custom.create_namespaced_custom_object
    calls: list[str] = []
    restarters: list[threading.Thread] = []

    def create_then_crash(*args: Any, **kwargs: Any) -> Any:
        calls.append("create")
        if len(calls) > 1:
            return real_create(*args, **kwargs)
        real_create(*args, **kwargs)  # stored in etcd ...
        site.stop_apiserver()  # ... and the apiserver dies before answering
        restarters.append(_restart_later(site, 1.0))
        raise ProtocolError("Connection aborted.", ConnectionResetError(104, "reset by peer"))

    adapter._custom.create_namespaced_custom_object = create_then_crash
    try:
        adapter.submit(dispatch)
        for restarter in restarters:
            restarter.join()
        assert len(calls) >= 2  # retried: refused while down, then 409 AlreadyExists
        items = _rayjobs(kube, "restart-after")
        assert [i["metadata"]["name"] for i in items] == [dispatch.name]
        assert items[0]["metadata"]["namespace"] == namespace_for("acme")
        adapter.submit(dispatch)  # and once more, after the fact: still one
        assert len(_rayjobs(kube, "restart-after")) == 1
    finally:
        adapter._custom.create_namespaced_custom_object = real_create
        adapter.cancel(dispatch.name)
