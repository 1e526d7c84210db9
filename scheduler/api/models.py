"""Request and response bodies. Limits are generous for real jobs and refuse absurd ones."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from scheduler.service.jobs import JobRecord, JobSpec

MAX_ACCELERATORS = 65_536  # per job: far above any real gang, far below an overflow
Name = Annotated[str, StringConstraints(min_length=1, max_length=253,
                                        pattern=r"^[A-Za-z0-9][-A-Za-z0-9_.]*$")]
Ref = Annotated[str, StringConstraints(min_length=1, max_length=63,
                                       pattern=r"^[A-Za-z0-9][-A-Za-z0-9_.]*$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GangIn(_Body):
    workers: int = Field(ge=1, le=4096, description="workers in the gang (all start together)")
    accelerators_per_worker: int = Field(ge=1, le=64)
    allowed_types: list[Ref] = Field(min_length=1, max_length=32,
                                     description="accelerator types the job can use")
    min_memory_gb: float = Field(default=0.0, ge=0, le=4096, description="per accelerator")


class JobSubmit(_Body):
    """A job to run: an entrypoint, a gang of accelerators, and what constrains it."""

    name: Name
    entrypoint: str = Field(min_length=1, max_length=16_384,
                            description="the shell command the Ray job runs")
    gang: GangIn
    runtime_h: float | dict[Ref, float] = Field(
        description="estimated hours: one number (on the first allowed type) or per type")
    priority: int = Field(default=0, ge=0, le=10)
    deadline: datetime | None = Field(default=None, description="ISO 8601; naive means UTC")
    datasets: list[Ref] = Field(default=[], max_length=64)
    user_location: Ref | None = None
    max_latency_ms: float | None = Field(default=None, gt=0, le=10_000)
    preemptible: bool = False
    checkpointable: bool = False
    home_region: Name | None = None
    max_runtime_h: float | None = Field(default=None, gt=0, le=24 * 366)
    runtime_env: dict[str, Any] = Field(default={}, description="passed to Ray as is")
    labels: dict[Ref, Annotated[str, StringConstraints(max_length=253)]] = Field(
        default={}, max_length=64)

    @model_validator(mode="after")
    def _check(self) -> JobSubmit:
        total = self.gang.workers * self.gang.accelerators_per_worker
        if total > MAX_ACCELERATORS:
            raise ValueError(
                f"gang: asks for {total} accelerators; the limit is {MAX_ACCELERATORS}")
        runtimes = self.runtime_h if isinstance(self.runtime_h, dict) else {"_": self.runtime_h}
        for key, hours in runtimes.items():
            if not 0 < hours <= 24 * 366:
                where = "runtime_h" if key == "_" else f"runtime_h.{key}"
                raise ValueError(f"{where}: must be > 0 and at most a year of hours, got {hours}")
        if isinstance(self.runtime_h, dict) and not self.runtime_h:
            raise ValueError("runtime_h: give at least one accelerator type's hours")
        return self

    def to_spec(self) -> JobSpec:
        runtime = (self.runtime_h if isinstance(self.runtime_h, dict)
                   else {self.gang.allowed_types[0]: self.runtime_h})
        deadline = None
        if self.deadline is not None:
            d = self.deadline if self.deadline.tzinfo else self.deadline.replace(tzinfo=UTC)
            deadline = d.timestamp()
        return JobSpec(
            name=self.name,
            entrypoint=self.entrypoint,
            workers=self.gang.workers,
            accelerators_per_worker=self.gang.accelerators_per_worker,
            allowed_types=tuple(self.gang.allowed_types),
            runtime_h=dict(runtime),
            min_memory_gb=self.gang.min_memory_gb,
            priority=self.priority,
            deadline=deadline,
            datasets=tuple(self.datasets),
            user_location=self.user_location,
            max_latency_ms=self.max_latency_ms,
            preemptible=self.preemptible,
            checkpointable=self.checkpointable,
            home_region=self.home_region,
            max_runtime_h=self.max_runtime_h,
            runtime_env=self.runtime_env,
            labels=self.labels,
        )


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat()


class JobOut(BaseModel):
    id: str
    tenant: str
    name: str
    state: str
    attempt: int
    site: str | None
    accelerator: str | None
    accelerators: int
    dispatch_name: str | None
    reason: str
    message: str
    cancel_requested: bool
    submitted_at: str
    updated_at: str
    started_at: str | None
    finished_at: str | None
    estimated_cost_cny: float | None
    spec: dict[str, Any]

    @classmethod
    def of(cls, job: JobRecord) -> JobOut:
        return cls(
            id=job.id, tenant=job.tenant, name=job.spec.name, state=job.state.value,
            attempt=job.attempt, site=job.site, accelerator=job.accelerator,
            accelerators=job.spec.accelerators, dispatch_name=job.dispatch_name,
            reason=job.reason, message=job.message, cancel_requested=job.cancel_requested,
            submitted_at=_iso(job.submitted_at) or "", updated_at=_iso(job.updated_at) or "",
            started_at=_iso(job.started_at), finished_at=_iso(job.finished_at),
            estimated_cost_cny=job.estimated_cost, spec=job.spec.to_json(),
        )


class JobPage(BaseModel):
    items: list[JobOut]
    next: str | None = Field(description="pass as `after` for the next page; null at the end")


class PolicyIn(_Body):
    policy: str = Field(max_length=1_000_000, description="the policy file's YAML text")


class ErrorOut(BaseModel):
    message: str
    field: str | None = None
    problems: list[dict[str, str]] = []
