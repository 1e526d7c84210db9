"""The values the server returns, as frozen dataclasses read explicitly from its JSON.

Each value has ``from_json`` (the API's JSON object -> value; a malformed object raises
``IsthmusError``) and ``to_json`` (value -> the same JSON object, for ``--json`` output and
for storing), so ``Job.from_json(data).to_json() == data``.

Example::

    job = client.get("j01hzy...")
    if job.state.is_terminal():
        print(job.name, job.state.value, job.site, job.spec.allowed_types)
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from scheduler.sdk.errors import IsthmusError


class JobState(enum.StrEnum):
    """Where a job is in its life. ``SUCCEEDED``, ``FAILED`` and ``CANCELLED`` are final.

    Example::

        JobState("RUNNING").is_terminal()   # False
    """

    PENDING = "PENDING"
    PLACED = "PLACED"
    DISPATCHED = "DISPATCHED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    def is_terminal(self) -> bool:
        """True for a state the job never leaves."""
        return self in _TERMINAL


_TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


@contextmanager
def _reading(kind: str) -> Iterator[None]:
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise IsthmusError(f"unexpected {kind} from the server: {type(err).__name__}: {err}") \
            from err


def _time(text: str | None) -> datetime | None:
    if text is None or text == "":
        return None
    t = datetime.fromisoformat(text)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What was asked for: the submitted job, as the server stored it.

    ``runtime_h`` maps each accelerator type the estimate is for to hours; ``deadline`` is
    timezone-aware (UTC) or None.
    """

    name: str
    entrypoint: str
    workers: int
    accelerators_per_worker: int
    allowed_types: tuple[str, ...]
    runtime_h: Mapping[str, float] = field(hash=False)
    min_memory_gb: float = 0.0
    priority: int = 0
    deadline: datetime | None = None
    datasets: tuple[str, ...] = ()
    user_location: str | None = None
    max_latency_ms: float | None = None
    preemptible: bool = False
    checkpointable: bool = False
    home_region: str | None = None
    max_runtime_h: float | None = None
    runtime_env: Mapping[str, Any] = field(default_factory=dict, hash=False)
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def accelerators(self) -> int:
        """Accelerators of the whole gang."""
        return self.workers * self.accelerators_per_worker

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobSpec:
        with _reading("job spec"):
            deadline = data.get("deadline")
            return cls(
                name=str(data["name"]),
                entrypoint=str(data["entrypoint"]),
                workers=int(data["workers"]),
                accelerators_per_worker=int(data["accelerators_per_worker"]),
                allowed_types=tuple(str(t) for t in data["allowed_types"]),
                runtime_h={str(k): float(v) for k, v in data["runtime_h"].items()},
                min_memory_gb=float(data.get("min_memory_gb", 0.0)),
                priority=int(data.get("priority", 0)),
                deadline=None if deadline is None else datetime.fromtimestamp(deadline, UTC),
                datasets=tuple(str(d) for d in data.get("datasets", ())),
                user_location=data.get("user_location"),
                max_latency_ms=_opt_float(data.get("max_latency_ms")),
                preemptible=bool(data.get("preemptible", False)),
                checkpointable=bool(data.get("checkpointable", False)),
                home_region=data.get("home_region"),
                max_runtime_h=_opt_float(data.get("max_runtime_h")),
                runtime_env=dict(data.get("runtime_env") or {}),
                labels={str(k): str(v) for k, v in (data.get("labels") or {}).items()},
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "entrypoint": self.entrypoint,
            "workers": self.workers,
            "accelerators_per_worker": self.accelerators_per_worker,
            "allowed_types": list(self.allowed_types),
            "runtime_h": dict(self.runtime_h),
            "min_memory_gb": self.min_memory_gb,
            "priority": self.priority,
            "deadline": None if self.deadline is None else self.deadline.timestamp(),
            "datasets": list(self.datasets),
            "user_location": self.user_location,
            "max_latency_ms": self.max_latency_ms,
            "preemptible": self.preemptible,
            "checkpointable": self.checkpointable,
            "home_region": self.home_region,
            "max_runtime_h": self.max_runtime_h,
            "runtime_env": dict(self.runtime_env),
            "labels": dict(self.labels),
        }


@dataclass(frozen=True, slots=True)
class Job:
    """A job as the server sees it now.

    ``site`` and ``accelerator`` say where the current attempt runs (None while it waits);
    ``reason`` and ``message`` say why it is in its state; ``attempt`` counts placements (a
    site loss gives a job a new attempt elsewhere). Times are timezone-aware (UTC).

    Example::

        job = client.get(job_id)
        print(f"{job.id} {job.state} at {job.site or '-'}: {job.message}")
    """

    id: str
    tenant: str
    name: str
    state: JobState
    attempt: int
    site: str | None
    accelerator: str | None
    accelerators: int
    dispatch_name: str | None
    reason: str
    message: str
    cancel_requested: bool
    submitted_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    estimated_cost_cny: float | None
    spec: JobSpec = field(hash=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Job:
        with _reading("job"):
            submitted, updated = _time(data["submitted_at"]), _time(data["updated_at"])
            if submitted is None or updated is None:
                raise ValueError("submitted_at and updated_at are required")
            return cls(
                id=str(data["id"]),
                tenant=str(data["tenant"]),
                name=str(data["name"]),
                state=JobState(data["state"]),
                attempt=int(data["attempt"]),
                site=data.get("site"),
                accelerator=data.get("accelerator"),
                accelerators=int(data["accelerators"]),
                dispatch_name=data.get("dispatch_name"),
                reason=str(data.get("reason") or ""),
                message=str(data.get("message") or ""),
                cancel_requested=bool(data.get("cancel_requested", False)),
                submitted_at=submitted,
                updated_at=updated,
                started_at=_time(data.get("started_at")),
                finished_at=_time(data.get("finished_at")),
                estimated_cost_cny=_opt_float(data.get("estimated_cost_cny")),
                spec=JobSpec.from_json(data["spec"]),
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "name": self.name,
            "state": self.state.value,
            "attempt": self.attempt,
            "site": self.site,
            "accelerator": self.accelerator,
            "accelerators": self.accelerators,
            "dispatch_name": self.dispatch_name,
            "reason": self.reason,
            "message": self.message,
            "cancel_requested": self.cancel_requested,
            "submitted_at": _iso(self.submitted_at),
            "updated_at": _iso(self.updated_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "estimated_cost_cny": self.estimated_cost_cny,
            "spec": self.spec.to_json(),
        }


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One entry of a job's history: ``at`` (UTC), ``kind`` (e.g. "placed") and a message."""

    at: datetime
    kind: str
    message: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobEvent:
        with _reading("job event"):
            return cls(at=datetime.fromtimestamp(float(data["at"]), UTC),
                       kind=str(data["kind"]), message=str(data.get("message") or ""))

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at.timestamp(), "kind": self.kind, "message": self.message}


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a job is where it is, or why it waits: the last plan's account of it.

    ``summary`` is one sentence for people; ``options_considered`` counts the (site,
    accelerator) options the planner weighed; ``eliminated`` counts options ruled out, by
    reason (e.g. ``{"residency": 6, "capacity": 2}``); ``runner_up`` is the next-best option.

    Example::

        why = client.explain(job_id)
        print(why.summary)
        for reason, n in why.eliminated.items():
            print(f"  {n} options ruled out: {reason}")
    """

    job: str
    state: JobState
    site: str | None
    accelerator: str | None
    reason: str
    message: str
    summary: str | None
    options_considered: int | None
    eliminated: Mapping[str, int] = field(hash=False)
    runner_up: str | None
    planner: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Explanation:
        with _reading("explanation"):
            considered = data.get("options_considered")
            return cls(
                job=str(data["job"]),
                state=JobState(data["state"]),
                site=data.get("site"),
                accelerator=data.get("accelerator"),
                reason=str(data.get("reason") or ""),
                message=str(data.get("message") or ""),
                summary=data.get("summary"),
                options_considered=None if considered is None else int(considered),
                eliminated={str(k): int(v) for k, v in (data.get("eliminated") or {}).items()},
                runner_up=data.get("runner_up"),
                planner=data.get("planner"),
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "state": self.state.value,
            "site": self.site,
            "accelerator": self.accelerator,
            "reason": self.reason,
            "message": self.message,
            "summary": self.summary,
            "options_considered": self.options_considered,
            "eliminated": dict(self.eliminated),
            "runner_up": self.runner_up,
            "planner": self.planner,
        }


@dataclass(frozen=True, slots=True)
class SitePool:
    """One accelerator type at a site: how many, how many free, the hourly price of one."""

    type: str
    count: int
    available: int
    price_cny_per_hour: float

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SitePool:
        with _reading("site pool"):
            return cls(type=str(data["type"]), count=int(data["count"]),
                       available=int(data["available"]),
                       price_cny_per_hour=float(data["price_cny_per_hour"]))

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "count": self.count, "available": self.available,
                "price_cny_per_hour": self.price_cny_per_hour}


@dataclass(frozen=True, slots=True)
class SiteInfo:
    """A site now: up or down (and why), its inventory and utilisation, jobs held there.

    Example::

        for site in client.sites():
            print(f"{site.name:12} {site.region:10} {site.utilisation:5.0%} "
                  f"{'up' if site.up else 'DOWN: ' + site.reason}")
    """

    name: str
    region: str
    hub: str | None
    side: str | None
    adapter: str
    up: bool
    healthy: bool
    reason: str
    accelerators: int
    available: int
    utilisation: float
    jobs: int
    held_by_isthmus: int
    pools: tuple[SitePool, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SiteInfo:
        with _reading("site"):
            return cls(
                name=str(data["name"]),
                region=str(data["region"]),
                hub=data.get("hub"),
                side=data.get("side"),
                adapter=str(data.get("adapter") or ""),
                up=bool(data["up"]),
                healthy=bool(data.get("healthy", data["up"])),
                reason=str(data.get("reason") or ""),
                accelerators=int(data["accelerators"]),
                available=int(data["available"]),
                utilisation=float(data["utilisation"]),
                jobs=int(data.get("jobs", 0)),
                held_by_isthmus=int(data.get("held_by_isthmus", 0)),
                pools=tuple(SitePool.from_json(p) for p in data.get("pools") or ()),
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "region": self.region,
            "hub": self.hub,
            "side": self.side,
            "adapter": self.adapter,
            "up": self.up,
            "healthy": self.healthy,
            "reason": self.reason,
            "accelerators": self.accelerators,
            "available": self.available,
            "utilisation": self.utilisation,
            "jobs": self.jobs,
            "held_by_isthmus": self.held_by_isthmus,
            "pools": [p.to_json() for p in self.pools],
        }


__all__ = ["Explanation", "Job", "JobEvent", "JobSpec", "JobState", "SiteInfo", "SitePool"]
