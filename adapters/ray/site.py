"""``RaySite``: a bare Ray cluster, driven through the Ray Job Submission API.

A dispatch becomes one Ray job whose ``submission_id`` is the dispatch name. The job reserves
its whole gang through ``entrypoint_resources={resource: accelerators}``, so Ray itself holds
it PENDING until the accelerators are free; its ``metadata`` names the Isthmus job, tenant,
attempt and reservation, because Ray's job listing does not return ``entrypoint_resources``
(``JobDetails`` in ``ray/dashboard/modules/job/pydantic_models.py`` lacks the field).

Inventory: ``count`` is the cluster's total of each accelerator's Ray resource over its live
nodes (the state API, at the dashboard address: no ``ray.init()`` in the scheduler);
``available`` is ``count`` minus what non-terminal Isthmus jobs reserve, queued ones included.

Ray behaviours this module relies on (read in ``ray/dashboard/modules/job/`` of Ray 2.60):
- a second submit with a used ``submission_id`` is refused (``job_manager.submit_job``: the
  id is written with ``overwrite=False``), answered as HTTP 500 "already exists";
- ``stop_job`` is asynchronous; a running job ends STOPPED shortly after. A job still
  PENDING for its resources cannot be stopped before it starts: the stop is a call queued on
  its supervisor actor, which is itself waiting for the resources, so the job stays PENDING
  (reservation included) until they free up, then launches its entrypoint and kills it at
  once (``job_supervisor.py: run``). It ends STOPPED, or FAILED
  (``JOB_ENTRYPOINT_COMMAND_START_ERROR``) when the entrypoint was already gone;
- a job that waits for its resources longer than ``RAY_JOB_START_TIMEOUT_SECONDS`` (head's
  environment, default 900 s) is FAILED with ``JOB_SUPERVISOR_ACTOR_START_TIMEOUT``;
- ``entrypoint_resources`` are reserved by one actor, on one node: a gang larger than any
  single node's share of a resource never starts.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Self, TypeVar

from ray.job_submission import JobStatus
from ray.util.state import StateApiClient
from ray.util.state.common import ListApiOptions, StateResource

from adapters.ray import follow
from adapters.ray.client import JobsClient, RayHttpError, address_override
from adapters.ray.config import RayConfig, parse_config
from adapters.ray.retry import Backoff, describe, is_transient, with_retries
from scheduler.core.adapter import (
    AdapterError,
    Dispatch,
    DispatchConflict,
    DispatchState,
    DispatchStatus,
    Health,
    LogsUnavailable,
    SiteUnreachable,
)
from scheduler.core.ids import AcceleratorType
from scheduler.core.model import AcceleratorPool

T = TypeVar("T")

JOB_KEY = "isthmus.io/job"
TENANT_KEY = "isthmus.io/tenant"
ATTEMPT_KEY = "isthmus.io/attempt"
ACCELERATOR_KEY = "isthmus.io/accelerator"
ACCELERATORS_KEY = "isthmus.io/accelerators"

HEALTH_TIMEOUT_S = 3.0
NODE_LIST_LIMIT = 10_000

_STATES = {
    JobStatus.PENDING: DispatchState.PENDING,
    JobStatus.RUNNING: DispatchState.RUNNING,
    JobStatus.SUCCEEDED: DispatchState.SUCCEEDED,
    JobStatus.FAILED: DispatchState.FAILED,
    JobStatus.STOPPED: DispatchState.STOPPED,
}


def map_status(info: Any) -> DispatchStatus:
    """A Ray ``JobDetails`` as a ``DispatchStatus``: reason is Ray's error type, else status."""
    status = str(info.status)
    state = _STATES.get(info.status, DispatchState.UNKNOWN)
    message = info.message or ""
    if state is DispatchState.UNKNOWN:
        message = message or f"unmapped Ray job status {status!r}"
    return DispatchStatus(state, str(info.error_type or status), message)


def _already_exists(err: BaseException) -> bool:
    return isinstance(err, RayHttpError) and "already exists" in err.text


class RaySite:
    """A ``SiteAdapter`` (with logs) for one Ray cluster reached at its dashboard URL."""

    def __init__(self, name: str, config: RayConfig, *, backoff: Backoff | None = None) -> None:
        self.name = name
        self._config = config
        self._backoff = backoff or Backoff()
        self._lock = threading.Lock()
        self._jobs: JobsClient | None = None  # made on first use: making it needs the site
        self._state: StateApiClient | None = None

    @classmethod
    def from_config(cls, name: str, config: Mapping[str, Any]) -> Self:
        """The site from its YAML section (see ``adapters.ray.config``); no connection yet."""
        return cls(name, parse_config(config))

    @property
    def address(self) -> str:
        return self._config.address

    # -- inventory -------------------------------------------------------------------------

    def inventory(self) -> tuple[AcceleratorPool, ...]:
        totals = self._call("list nodes", self._resource_totals)
        jobs = self._call("list jobs", lambda: self._client().list_jobs())
        held: dict[str, int] = defaultdict(int)
        for job in jobs:
            metadata = job.metadata or {}
            if JOB_KEY not in metadata or job.status.is_terminal():
                continue
            try:
                held[metadata.get(ACCELERATOR_KEY, "")] += int(metadata.get(ACCELERATORS_KEY, 0))
            except ValueError:
                continue  # not written by this adapter: nothing to count
        pools = []
        for kind, resource in self._config.accelerators.items():
            count = int(totals.get(resource, 0.0))
            if count == 0 and not self._config.explicit:
                continue  # a catalog type this cluster does not have
            pools.append(
                AcceleratorPool(
                    kind,
                    count,
                    max(0, count - held[kind]),
                    self._config.prices.get(kind, 0.0),
                )
            )
        return tuple(pools)

    def _resource_totals(self) -> dict[str, float]:
        options = ListApiOptions(
            limit=NODE_LIST_LIMIT,
            timeout=max(1, round(self._config.timeout_s)),
            filters=[("state", "=", "ALIVE")],
        )
        nodes: Any = self._state_client().list(
            StateResource.NODES, options=options, raise_on_missing_output=False
        )
        totals: dict[str, float] = defaultdict(float)
        for node in nodes:
            for resource, amount in (node.resources_total or {}).items():
                totals[resource] += float(amount)
        return totals

    # -- dispatch --------------------------------------------------------------------------

    def submit(self, dispatch: Dispatch) -> None:
        placement = dispatch.placement
        resource = self._resource(placement.accelerator)
        existing = self._info(dispatch.name)
        if existing is not None:
            self._check_owner(existing, dispatch)
            return
        metadata = {
            JOB_KEY: str(dispatch.job.id),
            TENANT_KEY: str(dispatch.tenant),
            ATTEMPT_KEY: str(dispatch.attempt),
            ACCELERATOR_KEY: str(placement.accelerator),
            ACCELERATORS_KEY: str(placement.accelerators),
        }
        reserve = {resource: float(placement.accelerators)} if placement.accelerators else None
        try:
            with_retries(
                f"site {self.name}: submit {dispatch.name}",
                lambda: self._client().submit_job(
                    entrypoint=dispatch.entrypoint,
                    submission_id=dispatch.name,
                    metadata=metadata,
                    entrypoint_resources=reserve,
                    runtime_env=dict(self._config.runtime_env) or None,
                ),
                self._backoff,
                transient=lambda err: is_transient(err) and not _already_exists(err),
            )
        except Exception as err:
            # The job may exist after all: an answer lost on the way back, or a concurrent
            # submit of the same dispatch (Ray refuses the second with "already exists").
            existing = self._info(dispatch.name)
            if existing is None:
                if isinstance(err, SiteUnreachable):
                    raise
                raise AdapterError(
                    f"site {self.name}: submit {dispatch.name}: {describe(err)}"
                ) from err
            self._check_owner(existing, dispatch)

    def status(self, dispatch_name: str) -> DispatchStatus:
        info = self._info(dispatch_name)
        if info is None:
            return DispatchStatus(
                DispatchState.UNKNOWN, "NotFound", f"site {self.name}: no Ray job {dispatch_name}"
            )
        return map_status(info)

    def cancel(self, dispatch_name: str) -> None:
        """Ask Ray to stop the job (Ray keeps it, STOPPED); a job gone or ended is left alone.

        Ray stops asynchronously, and a job it still holds PENDING for resources stays so
        (its reservation too) until they free up: its supervisor then starts, launches the
        entrypoint and kills it at once (see the module docstring).
        """
        info = self._info(dispatch_name)
        if info is None or info.status.is_terminal():
            return
        try:
            self._call(f"stop {dispatch_name}", lambda: self._client().stop_job(dispatch_name))
        except RayHttpError as err:
            if err.status != 404:  # 404: deleted meanwhile, nothing left to stop
                raise AdapterError(
                    f"site {self.name}: stop {dispatch_name}: {describe(err)}"
                ) from err

    # -- logs ------------------------------------------------------------------------------

    def logs(self, dispatch_name: str, *, follow: bool = False) -> Iterator[str]:
        """The job's driver log; with ``follow``, streamed until the job ends.

        Raises ``LogsUnavailable`` when Ray has no such job, or (without ``follow``) when it
        has not started and so has no log yet.
        """
        info = self._info(dispatch_name)
        if info is None:
            raise LogsUnavailable(f"site {self.name}: no Ray job {dispatch_name}")
        if follow:
            return self._follow(dispatch_name)
        text = self._call(
            f"logs of {dispatch_name}", lambda: self._client().get_job_logs(dispatch_name)
        )
        if not text and info.status == JobStatus.PENDING:
            raise LogsUnavailable(
                f"site {self.name}: {dispatch_name} has not started: {info.message or ''}"
            )
        return iter([text] if text else [])

    def _follow(self, dispatch_name: str) -> Iterator[str]:
        client = self._client()
        try:
            yield from follow.iterate(
                lambda: client.tail_job_logs(dispatch_name), name=f"logs-{dispatch_name}"
            )
        except Exception as err:  # aiohttp errors, or Ray's RuntimeError on an abnormal close
            raise SiteUnreachable(
                f"site {self.name}: log stream of {dispatch_name} broke: "
                f"{type(err).__name__}: {err}"
            ) from err

    # -- health ----------------------------------------------------------------------------

    def health(self) -> Health:
        """One cheap call, once, with a short timeout: the dashboard's version."""
        try:
            self._client(timeout_s=HEALTH_TIMEOUT_S).version(timeout_s=HEALTH_TIMEOUT_S)
        except Exception as err:
            reason = str(err) if isinstance(err, AdapterError) else describe(err)
            return Health(False, f"site {self.name}: {reason}")
        return Health(True)

    # -- helpers ---------------------------------------------------------------------------

    def _client(self, *, timeout_s: float | None = None) -> JobsClient:
        """The job client, made on first use (Ray's constructor calls the site)."""
        with self._lock:
            if self._jobs is None:
                self._refuse_address_override()
                first = min(timeout_s or self._config.timeout_s, self._config.timeout_s)
                jobs = JobsClient(self.address, timeout_s=first)
                jobs.timeout_s = self._config.timeout_s
                self._jobs = jobs
            return self._jobs

    def _state_client(self) -> StateApiClient:
        with self._lock:
            if self._state is None:
                self._refuse_address_override()
                self._state = StateApiClient(address=self.address)
            return self._state

    def _refuse_address_override(self) -> None:
        override = address_override(self.address)
        if override is not None:
            raise AdapterError(
                f"site {self.name}: {override} in the environment would make Ray's client use "
                f"it instead of ray.address={self.address}; unset it"
            )

    def _call(self, what: str, call: Callable[[], T]) -> T:
        """``call()`` with retries; every error out of it is an ``AdapterError``.

        ``SiteUnreachable`` when the retries ran out; ``RayHttpError`` (with its status) for
        an HTTP answer the caller may expect, such as 404.
        """
        try:
            return with_retries(f"site {self.name}: {what}", call, self._backoff)
        except AdapterError:
            raise
        except Exception as err:  # an authentication error, a malformed answer, ...
            raise AdapterError(f"site {self.name}: {what}: {describe(err)}") from err

    def _info(self, dispatch_name: str) -> Any:
        """Ray's ``JobDetails`` for the dispatch, or None when Ray has no such job."""
        try:
            return self._call(
                f"get {dispatch_name}", lambda: self._client().get_job_info(dispatch_name)
            )
        except RayHttpError as err:
            if err.status == 404:
                return None
            raise AdapterError(
                f"site {self.name}: get {dispatch_name}: {describe(err)}"
            ) from err

    def _resource(self, kind: AcceleratorType) -> str:
        resource = self._config.accelerators.get(kind)
        if resource is None:
            raise AdapterError(
                f"site {self.name}: no Ray resource for accelerator type {kind!r} "
                f"(ray.accelerators: {', '.join(self._config.accelerators)})"
            )
        return resource

    def _check_owner(self, info: Any, dispatch: Dispatch) -> None:
        owner = (info.metadata or {}).get(JOB_KEY)
        if owner != dispatch.job.id:
            raise DispatchConflict(
                f"site {self.name}: Ray job {dispatch.name} exists for job {owner!r}, "
                f"not {dispatch.job.id!r}"
            )


__all__ = ["RaySite", "map_status"]
