"""Leader election on a Kubernetes ``coordination.k8s.io/v1`` Lease: one control loop at a time.

Every replica serves the API; only the holder of the Lease runs the control loop. The holder
renews the Lease every ``renew_every_s``; a replica takes an expired Lease over (its
``renewTime`` older than ``lease_duration_s`` by the taker's clock), writing with the Lease's
``resourceVersion`` so that of two takers exactly one wins.

A holder that cannot renew stops acting as leader after ``renew_deadline_s`` (less than the
lease duration), before anyone else may take over. Even so, two loops may briefly overlap
(clocks, a paused process): the store's compare-and-set transitions and the adapters'
idempotent, deterministically named dispatches keep that from losing or duplicating a job.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger("isthmus.leader")
IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True, slots=True)
class LeaseSettings:
    lease: str = "isthmus-leader"
    namespace: str = "default"
    identity: str = ""
    lease_duration_s: float = 10.0
    renew_every_s: float = 2.0
    kubeconfig: str | None = None  # default: the in-cluster service account

    @property
    def renew_deadline_s(self) -> float:
        return max(self.renew_every_s, 0.7 * self.lease_duration_s)


def default_identity() -> str:
    return os.environ.get("ISTHMUS_POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def default_namespace() -> str:
    env = os.environ.get("ISTHMUS_NAMESPACE")
    if env:
        return env
    if IN_CLUSTER_NAMESPACE.exists():
        return IN_CLUSTER_NAMESPACE.read_text().strip()
    return "default"


def _api(kubeconfig: str | None) -> Any:
    from kubernetes import client, config

    configuration = client.Configuration()
    load: Any = config.load_kube_config if kubeconfig else config.load_incluster_config
    if kubeconfig:
        load(config_file=kubeconfig, client_configuration=configuration)
    else:
        load(client_configuration=configuration)
    return client.CoordinationV1Api(client.ApiClient(configuration))


class LeaseElector:
    """Holds (or waits for) the Lease in a background thread; ``is_leader()`` is cheap."""

    def __init__(
        self,
        settings: LeaseSettings,
        *,
        api: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.identity = settings.identity or default_identity()
        self._api = api if api is not None else _api(settings.kubeconfig)
        self._clock = clock
        self._renewed_at: float | None = None  # our clock, last successful acquire/renew
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.transitions = 0  # how often this replica became leader

    def is_leader(self) -> bool:
        renewed = self._renewed_at
        return renewed is not None and self._clock() - renewed < self.settings.renew_deadline_s

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="isthmus-lease", daemon=True)
        self._thread.start()

    def stop(self, *, release: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if release and self.is_leader():
            self._release()
        self._renewed_at = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.try_acquire_or_renew()
            except Exception as err:  # an unreachable apiserver: keep trying
                log.warning("lease %s: %s", self.settings.lease, err)
            self._stop.wait(self.settings.renew_every_s)

    def try_acquire_or_renew(self) -> bool:
        """One round: create, renew or take over the Lease; True when we hold it after."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        s = self.settings
        now = datetime.now(UTC)
        started = self._clock()
        try:
            lease = self._api.read_namespaced_lease(s.lease, s.namespace)
        except ApiException as err:
            if err.status != 404:
                raise
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=s.lease, namespace=s.namespace),
                spec=client.V1LeaseSpec(
                    holder_identity=self.identity, acquire_time=now, renew_time=now,
                    lease_duration_seconds=int(s.lease_duration_s), lease_transitions=0),
            )
            try:
                self._api.create_namespaced_lease(s.namespace, body)
            except ApiException as create_err:
                if create_err.status == 409:  # another replica created it first
                    return self._lost()
                raise
            return self._won(started, new=True)
        spec = lease.spec
        holder = spec.holder_identity
        if holder != self.identity:
            renewed = spec.renew_time or spec.acquire_time
            duration = timedelta(seconds=spec.lease_duration_seconds or s.lease_duration_s)
            if holder and renewed is not None and renewed + duration > now:
                return self._lost()
            spec.holder_identity = self.identity
            spec.acquire_time = now
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
        spec.renew_time = now
        spec.lease_duration_seconds = int(s.lease_duration_s)
        try:
            self._api.replace_namespaced_lease(s.lease, s.namespace, lease)
        except ApiException as err:
            if err.status == 409:  # someone wrote the Lease since we read it
                return self._lost()
            raise
        return self._won(started, new=holder != self.identity)

    def _won(self, started: float, *, new: bool) -> bool:
        if new or self._renewed_at is None:
            self.transitions += 1
            log.info("%s now leads (lease %s)", self.identity, self.settings.lease)
        self._renewed_at = started
        return True

    def _lost(self) -> bool:
        if self._renewed_at is not None:
            log.warning("%s no longer leads (lease %s)", self.identity, self.settings.lease)
        self._renewed_at = None
        return False

    def _release(self) -> None:
        """Give the Lease up on a clean stop so a follower need not wait for it to expire."""
        s = self.settings
        try:
            lease = self._api.read_namespaced_lease(s.lease, s.namespace)
            if lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                lease.spec.renew_time = None
                self._api.replace_namespaced_lease(s.lease, s.namespace, lease)
        except Exception as err:  # best effort: the Lease expires anyway
            log.info("lease %s not released: %s", s.lease, err)


__all__ = ["LeaseElector", "LeaseSettings", "default_identity", "default_namespace"]
