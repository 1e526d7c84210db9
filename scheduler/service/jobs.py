"""Jobs as the service keeps them: the lifecycle, the submitted spec and the stored records.

Lifecycle (every arrow is a compare-and-set in the store, written before it is acted on)::

    PENDING ──plan──▶ PLACED ──adapter.submit──▶ DISPATCHED ──site──▶ RUNNING ──▶ SUCCEEDED
       ▲                 │                           │                    │        FAILED
       └──── requeue (site down, dispatch lost, refused by the site) ─────┘
    any non-terminal ──cancel──▶ CANCELLED (after the site stopped the attempt, if any)

A job's ``attempt`` counts placements; the dispatch name of an attempt is
``dispatch_name(job_id, attempt)``, so a retry or a restart can only ever address the same
copy at the site.
"""

from __future__ import annotations

import enum
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scheduler.core.ids import AcceleratorType, DatasetId, JobId, LocationId, TenantId
from scheduler.core.model import Gang, Job

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


class JobState(enum.StrEnum):
    PENDING = "PENDING"
    PLACED = "PLACED"
    DISPATCHED = "DISPATCHED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    def is_terminal(self) -> bool:
        return self in TERMINAL

    def is_active(self) -> bool:
        """Placed at a site (the site may hold a copy)."""
        return self in ACTIVE


TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
ACTIVE = frozenset({JobState.PLACED, JobState.DISPATCHED, JobState.RUNNING})


class AttemptState(enum.StrEnum):
    PLACED = "PLACED"
    DISPATCHED = "DISPATCHED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"  # cancelled at the site
    ABANDONED = "ABANDONED"  # superseded by a new attempt (site down, dispatch lost, refused)


class _IdSource:
    """Monotonic within a process (like a ULID): ids made in the same millisecond continue
    from the last one, so id order is submission order; a random tail keeps processes apart."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = (0, 0)

    def next(self, now: float | None) -> str:
        ms = int((time.time() if now is None else now) * 1000)
        with self._lock:
            last_ms, last_rand = self._last
            if ms <= last_ms:
                ms, rand = last_ms, (last_rand + 1) % (1 << 40)
            else:
                rand = int.from_bytes(os.urandom(5), "big") >> 1  # room to count up
            self._last = (ms, rand)
        stamp = "".join(_CROCKFORD[(ms >> (5 * i)) & 31] for i in reversed(range(10)))
        tail = "".join(_CROCKFORD[(rand >> (5 * i)) & 31] for i in reversed(range(8)))
        return f"j{stamp}{tail}"


_IDS = _IdSource()


def new_job_id(now: float | None = None) -> str:
    """A time-ordered, lower-case, DNS-safe job id: ``j`` + 10 chars of ms time + 8 more."""
    return _IDS.next(now)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a user asked for, validated at the edge (the API) and stored as JSON."""

    name: str
    entrypoint: str
    workers: int
    accelerators_per_worker: int
    allowed_types: tuple[str, ...]
    runtime_h: Mapping[str, float]
    min_memory_gb: float = 0.0
    priority: int = 0
    deadline: float | None = None  # POSIX seconds
    datasets: tuple[str, ...] = ()
    user_location: str | None = None
    max_latency_ms: float | None = None
    preemptible: bool = False
    checkpointable: bool = False
    home_region: str | None = None
    max_runtime_h: float | None = None  # a hard limit at the site (activeDeadlineSeconds)
    runtime_env: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def accelerators(self) -> int:
        return self.workers * self.accelerators_per_worker

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
            "deadline": self.deadline,
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

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobSpec:
        return cls(
            name=data["name"],
            entrypoint=data["entrypoint"],
            workers=int(data["workers"]),
            accelerators_per_worker=int(data["accelerators_per_worker"]),
            allowed_types=tuple(data["allowed_types"]),
            runtime_h={str(k): float(v) for k, v in data["runtime_h"].items()},
            min_memory_gb=float(data.get("min_memory_gb", 0.0)),
            priority=int(data.get("priority", 0)),
            deadline=data.get("deadline"),
            datasets=tuple(data.get("datasets", ())),
            user_location=data.get("user_location"),
            max_latency_ms=data.get("max_latency_ms"),
            preemptible=bool(data.get("preemptible", False)),
            checkpointable=bool(data.get("checkpointable", False)),
            home_region=data.get("home_region"),
            max_runtime_h=data.get("max_runtime_h"),
            runtime_env=dict(data.get("runtime_env") or {}),
            labels=dict(data.get("labels") or {}),
        )

    def to_core(self, job_id: str, tenant: str, submitted_at: float) -> Job:
        """The core's view of this job, for a snapshot."""
        return Job(
            id=JobId(job_id),
            tenant=TenantId(tenant),
            gang=Gang(
                workers=self.workers,
                accelerators_per_worker=self.accelerators_per_worker,
                allowed_types=frozenset(AcceleratorType(t) for t in self.allowed_types),
                min_memory_gb=self.min_memory_gb,
            ),
            runtime_h={AcceleratorType(t): h for t, h in self.runtime_h.items()},
            submitted_at=submitted_at,
            priority=self.priority,
            deadline=self.deadline,
            datasets=tuple(DatasetId(d) for d in self.datasets),
            user_location=LocationId(self.user_location) if self.user_location else None,
            max_latency_ms=self.max_latency_ms,
            preemptible=self.preemptible,
            checkpointable=self.checkpointable,
            home_region=self.home_region,
        )


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job as stored: its spec, where it stands, and its current attempt."""

    id: str
    tenant: str
    spec: JobSpec
    state: JobState
    submitted_at: float
    updated_at: float
    attempt: int = 0
    site: str | None = None
    accelerator: str | None = None
    dispatch_name: str | None = None
    reason: str = ""
    message: str = ""
    cancel_requested: bool = False
    started_at: float | None = None
    finished_at: float | None = None
    idempotency_key: str | None = None
    estimated_cost: float | None = None  # CNY, from the placement's cost breakdown
    version: int = 1
    explanation: Mapping[str, Any] | None = None  # the last plan's, as JSON values

    def to_core(self) -> Job:
        return self.spec.to_core(self.id, self.tenant, self.submitted_at)


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    job_id: str
    attempt: int
    site: str
    accelerator: str
    accelerators: int
    dispatch_name: str
    state: AttemptState
    created_at: float
    ended_at: float | None = None
    cleanup_pending: bool = False  # cancel this copy at the site when the site answers again
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Event:
    job_id: str
    at: float
    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class SiteRecord:
    """The service's view of a site's health: consecutive failed checks, down after N."""

    name: str
    down: bool
    failures: int
    reason: str
    updated_at: float
    healthy: bool | None = None  # the last check (None: never written)
    inventory: tuple[Mapping[str, Any], ...] = ()  # [{type, count, available, price...}]


__all__ = [
    "ACTIVE",
    "TERMINAL",
    "AttemptRecord",
    "AttemptState",
    "Event",
    "JobRecord",
    "JobSpec",
    "JobState",
    "SiteRecord",
    "new_job_id",
]
