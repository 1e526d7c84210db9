"""A site's accelerator inventory, kept current by watches: an informer-style cache.

    cache = InventoryCache("site-a", configuration, prices={"H20-96G": 9.5})
    cache.start()                 # two daemon threads: one for Nodes, one for Pods
    cache.pools(sync_timeout=10)  # from memory: total and available per accelerator type
    cache.stop()

Each of the two resources has a reflector thread that keeps an in-memory copy current:

1. **List** (paged, 500 a page) and remember the list's ``resourceVersion``.
2. **Watch** from that version, with bookmarks, applying ADDED / MODIFIED / DELETED to the copy.
   When the server ends the watch (its ``timeoutSeconds``), watch again from the last version.
3. On ``410 Gone`` (the version was compacted away) list again at once; on any other error
   (the apiserver down, 5xx, 401 ...) wait a backoff (0.2 s doubling to 10 s) and list again.

Only what the inventory needs is kept. Nodes are watched with a label selector on the
accelerator label; per node: its accelerator type, extended resource, allocatable units and
whether it takes pods (Ready and not cordoned). Pods are watched with a field selector — bound
to a node and not Succeeded/Failed — so a pod that finishes arrives as DELETED; per pod: its
node and accelerator requests.

``pools()`` reads memory only. It raises ``SiteUnreachable`` before the first list completes
(after waiting up to ``sync_timeout``) and when the watches have been broken for longer than
``stale_after_s``: an inventory that old is not the site's any more.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kubernetes import client
from kubernetes.utils import quantity
from kubernetes.watch import watch as _watch

from adapters.kubernetes.manifest import ACCELERATOR_LABEL, ACCELERATOR_RESOURCES
from adapters.kubernetes.retry import Backoff, describe, status_of
from scheduler.core.adapter import SiteUnreachable
from scheduler.core.ids import AcceleratorType
from scheduler.core.model import AcceleratorPool

PAGE = 500
WATCH_S = 240  # the server ends each watch after this long; we resume from the last version
CONNECT_TIMEOUT_S = 5.0
LIST_TIMEOUT_S = 60.0
RELIST = Backoff(attempts=1_000_000, first_s=0.2, max_s=10.0, budget_s=float("inf"))
STALE_AFTER_S = 30.0
# Bound to a node and not finished: the pods that hold accelerators.
POD_FIELD_SELECTOR = "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"

_parse_quantity: Any = quantity.parse_quantity
_iter_resp_lines: Any = _watch.iter_resp_lines  # splits a chunked watch response into lines

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class NodeRecord:
    accelerator: str
    resource: str
    allocatable: int
    usable: bool  # Ready and not cordoned


@dataclass(frozen=True, slots=True)
class PodRecord:
    node: str
    requests: Mapping[str, int]  # accelerator resource -> units


def _units(value: Any) -> int:
    return int(_parse_quantity(value))


def node_record(obj: Mapping[str, Any]) -> NodeRecord | None:
    """What the inventory needs of a Node (a JSON dict); None when it has no accelerators."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    accelerator = labels.get(ACCELERATOR_LABEL)
    status = obj.get("status") or {}
    allocatable = status.get("allocatable") or {}
    resource = next((r for r in ACCELERATOR_RESOURCES if r in allocatable), None)
    if accelerator is None or resource is None:
        return None
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or ()
    )
    cordoned = bool((obj.get("spec") or {}).get("unschedulable"))
    return NodeRecord(accelerator, resource, _units(allocatable[resource]), ready and not cordoned)


def _requests(container: Mapping[str, Any]) -> dict[str, int]:
    resources = container.get("resources") or {}
    # The apiserver defaults requests to limits for extended resources; read limits if not.
    declared = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    return {r: _units(declared[r]) for r in ACCELERATOR_RESOURCES if r in declared}


def pod_record(obj: Mapping[str, Any]) -> PodRecord | None:
    """A bound, unfinished pod's accelerator requests: max(sum of containers, largest init
    container), as kube-scheduler counts them; None when it holds nothing."""
    spec = obj.get("spec") or {}
    node = spec.get("nodeName")
    phase = (obj.get("status") or {}).get("phase")
    if not node or phase in ("Succeeded", "Failed"):
        return None
    total: dict[str, int] = defaultdict(int)
    for container in spec.get("containers") or ():
        for resource, units in _requests(container).items():
            total[resource] += units
    for container in spec.get("initContainers") or ():
        for resource, units in _requests(container).items():
            total[resource] = max(total[resource], units)
    held = {r: u for r, u in total.items() if u > 0}
    return PodRecord(node, held) if held else None


def pools_from(
    nodes: Mapping[str, NodeRecord],
    pods: Mapping[str, PodRecord],
    prices: Mapping[str, float],
) -> tuple[AcceleratorPool, ...]:
    """Allocatable accelerators per type on usable nodes, net of the pods placed on them."""
    total: dict[str, int] = defaultdict(int)
    for node in nodes.values():
        if node.usable:
            total[node.accelerator] += node.allocatable
    used: dict[str, int] = defaultdict(int)
    for pod in pods.values():
        host = nodes.get(pod.node)
        if host is not None and host.usable:
            used[host.accelerator] += pod.requests.get(host.resource, 0)
    return tuple(
        AcceleratorPool(
            AcceleratorType(accelerator),
            count,
            max(0, count - used[accelerator]),
            prices.get(accelerator, 0.0),
        )
        for accelerator, count in sorted(total.items())
    )


class _Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


class _Reflector(Generic[R]):
    """Keeps ``items`` equal to one kind of object at the site (see the module docstring)."""

    def __init__(
        self,
        kind: str,
        call: Callable[..., Any],
        selector: Mapping[str, str],
        convert: Callable[[Mapping[str, Any]], R | None],
        owner: InventoryCache,
    ) -> None:
        self.kind = kind
        self.items: dict[str, R] = {}
        self.synced = False
        self.lists = 0  # complete lists done (the first, then one per relist)
        self._call = call
        self._selector = dict(selector)
        self._convert = convert
        self._owner = owner
        self._response: Any = None

    @staticmethod
    def _key(obj: Mapping[str, Any]) -> str:
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace")
        return f"{namespace}/{meta['name']}" if namespace else str(meta["name"])

    def run(self) -> None:
        owner = self._owner
        delays = RELIST.delays()
        while not owner.stopping.is_set():
            try:
                version = self._list()
                delays = RELIST.delays()  # a list that succeeds resets the backoff
                owner.mark_up(self)
                while not owner.stopping.is_set():
                    version = self._watch(version)
            except _Gone:
                continue
            except Exception as err:
                if owner.stopping.is_set():
                    return
                owner.mark_down(self, f"{self.kind}: {describe(err)}")
                owner.stopping.wait(next(delays))

    def _list(self) -> str:
        items: dict[str, R] = {}
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = dict(self._selector, limit=PAGE)
            if token:
                kwargs["_continue"] = token
            response = self._call(
                _preload_content=False,
                _request_timeout=(CONNECT_TIMEOUT_S, LIST_TIMEOUT_S),
                **kwargs,
            )
            page = json.loads(response.data)
            for obj in page.get("items") or ():
                record = self._convert(obj)
                if record is not None:
                    items[self._key(obj)] = record
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                version = str(page["metadata"]["resourceVersion"])
                break
        with self._owner.lock:
            self.items = items
            self.synced = True
            self.lists += 1
            self._owner.changed()
        return version

    def _watch(self, version: str) -> str:
        """Apply events from ``version`` until the server ends the watch; the last version."""
        response = self._call(
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_S,
            _preload_content=False,
            _request_timeout=(CONNECT_TIMEOUT_S, WATCH_S + 30),
            **self._selector,
        )
        self._response = response
        try:
            for line in _iter_resp_lines(response):
                if not line:
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Gone()
                    raise RuntimeError(f"watch error {obj.get('code')}: {obj.get('message')}")
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if kind == "BOOKMARK":
                    continue
                key = self._key(obj)
                record = None if kind == "DELETED" else self._convert(obj)
                with self._owner.lock:
                    if record is None:
                        self.items.pop(key, None)
                    else:
                        self.items[key] = record
                    self._owner.changed()
        except Exception as err:
            if status_of(err) == 410:
                raise _Gone() from err
            raise
        finally:
            self._response = None
            # Close before releasing: a connection with unread data must never go back to the
            # pool (the next request would read this stream's leftovers).
            with contextlib.suppress(Exception):
                response.close()
                response.release_conn()
        return version

    def interrupt(self) -> None:
        """Unblock a watch waiting on the socket (called from another thread by ``stop``)."""
        response = self._response
        if response is None:
            return
        sock = getattr(getattr(response, "connection", None), "sock", None)
        with contextlib.suppress(Exception):
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
            else:
                response.shutdown()


class InventoryCache:
    """Nodes and Pods of one site in memory, kept current by two reflector threads."""

    def __init__(
        self,
        site: str,
        configuration: client.Configuration,
        *,
        prices: Mapping[str, float] | None = None,
        stale_after_s: float = STALE_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.site = site
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.generation = 0  # bumped on every applied change; waiters use ``_changed``
        self._changed = threading.Condition(self.lock)
        self._prices = dict(prices or {})
        self._stale_after_s = stale_after_s
        self._clock = clock
        self._api: Any = client.ApiClient(configuration)
        core: Any = client.CoreV1Api(self._api)
        self._nodes: _Reflector[NodeRecord] = _Reflector(
            "nodes", core.list_node, {"label_selector": ACCELERATOR_LABEL}, node_record, self
        )
        self._pods: _Reflector[PodRecord] = _Reflector(
            "pods",
            core.list_pod_for_all_namespaces,
            {"field_selector": POD_FIELD_SELECTOR},
            pod_record,
            self,
        )
        self._threads: list[threading.Thread] = []
        self._down: dict[str, tuple[float, str]] = {}  # reflector kind -> (since, reason)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the reflector threads (once; later calls do nothing)."""
        with self.lock:
            if self._threads or self.stopping.is_set():
                return
            for reflector in (self._nodes, self._pods):
                thread = threading.Thread(
                    target=reflector.run,
                    name=f"isthmus-{self.site}-{reflector.kind}-watch",
                    daemon=True,
                )
                self._threads.append(thread)
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        for reflector in (self._nodes, self._pods):
            reflector.interrupt()
        for thread in self._threads:
            thread.join(timeout)
        self._api.close()

    # -- reflector callbacks (called with or without the lock as noted) --------------------

    def changed(self) -> None:
        """An item changed (called with ``lock`` held)."""
        self.generation += 1
        self._changed.notify_all()

    def mark_up(self, reflector: _Reflector[Any]) -> None:
        with self.lock:
            self._down.pop(reflector.kind, None)

    def mark_down(self, reflector: _Reflector[Any], reason: str) -> None:
        with self.lock:
            since = self._down.get(reflector.kind, (self._clock(), ""))[0]
            self._down[reflector.kind] = (since, reason)

    # -- reading -------------------------------------------------------------------------

    @property
    def lists(self) -> int:
        """Complete lists done so far (nodes and pods): 2 after the first sync, more after
        relists; ``inventory()`` itself never lists."""
        return self._nodes.lists + self._pods.lists

    @property
    def synced(self) -> bool:
        return self._nodes.synced and self._pods.synced

    def wait_synced(self, timeout: float) -> bool:
        """Wait until both resources have been listed once; whether they have."""
        deadline = self._clock() + timeout
        with self._changed:
            while not self.synced:
                left = deadline - self._clock()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.1))
        return True

    def wait_changed(self, generation: int, timeout: float) -> int:
        """Wait until ``generation`` has moved on (or ``timeout``); the current generation."""
        with self._changed:
            self._changed.wait_for(lambda: self.generation != generation, timeout)
            return self.generation

    def problem(self) -> str | None:
        """Why the watches are broken now, or None when they are running."""
        with self.lock:
            reasons = [reason for _, reason in self._down.values()]
        return "; ".join(reasons) or None

    def pools(self, sync_timeout: float = 10.0) -> tuple[AcceleratorPool, ...]:
        """The inventory from memory (see the module docstring for when it raises)."""
        self.start()
        if not self.wait_synced(sync_timeout):
            raise SiteUnreachable(
                f"site {self.site}: inventory not listed within {sync_timeout:.0f} s"
                f" ({self.problem() or 'no answer yet'})"
            )
        with self.lock:
            now = self._clock()
            stale = [(since, reason) for since, reason in self._down.values()]
            if stale and now - min(s for s, _ in stale) > self._stale_after_s:
                raise SiteUnreachable(
                    f"site {self.site}: inventory stale, watches broken for "
                    f"{now - min(s for s, _ in stale):.0f} s: "
                    + "; ".join(reason for _, reason in stale)
                )
            nodes, pods = dict(self._nodes.items), dict(self._pods.items)
        return pools_from(nodes, pods, self._prices)


__all__ = [
    "POD_FIELD_SELECTOR",
    "InventoryCache",
    "NodeRecord",
    "PodRecord",
    "node_record",
    "pod_record",
    "pools_from",
]
