"""The control loop: one cycle is six named phases, each its own method, read top to bottom.

1. refresh   -- health and inventory of every site (in parallel, each bounded by its adapter);
                N failed checks in a row mark a site down and give its jobs new attempts.
2. snapshot  -- the queue (PENDING jobs) and the sites that are up, with their inventory less
                what this loop reserved there and the site may not count yet.
3. plan      -- the policy's planner (the optimizer, or a baseline) on that snapshot.
4. reserve   -- PENDING -> PLACED in the store, one transaction, before anything is dispatched.
5. dispatch  -- every PLACED job (new ones, and any a crash left behind) is submitted to its
                site under its attempt's deterministic dispatch name; PLACED -> DISPATCHED.
6. reconcile -- the site's word on every dispatched job (RUNNING, SUCCEEDED, FAILED, lost);
                cancellations; copies left at a site that was down are stopped when it is back.

Every state change is written before it is acted on, and adapters' ``submit`` is idempotent,
so a crash anywhere in a cycle resumes in the next one without losing or duplicating a job.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from scheduler.core.adapter import (
    Dispatch,
    DispatchConflict,
    DispatchState,
    DispatchStatus,
    Health,
    SiteUnreachable,
    SupportsWatch,
)
from scheduler.core.ids import AcceleratorType, JobId, SiteId
from scheduler.core.model import AcceleratorPool, Dataset, Job, RunningJob, Site, Snapshot, Tenant
from scheduler.core.plan import CostBreakdown, Placement, Plan
from scheduler.core.planners import get_planner
from scheduler.core.policy.model import Policy
from scheduler.core.snapshot_file import Topology
from scheduler.core.solver import plan as optimize
from scheduler.service.jobs import ACTIVE, JobRecord, JobState
from scheduler.service.policy_state import PolicyState
from scheduler.service.sites import SiteRuntime
from scheduler.service.store import NewPlacement, Store, Transition

log = logging.getLogger("isthmus.loop")
T = TypeVar("T")
R = TypeVar("R")

# Reasons written on jobs (short, CamelCase, like Kubernetes condition reasons).
SITE_DOWN = "SiteDown"
DISPATCH_LOST = "DispatchLost"
REFUSED = "RefusedBySite"
STOPPED_AT_SITE = "StoppedAtSite"
UNREACHABLE = "SiteUnreachable"

_PLACED = frozenset({JobState.PLACED})
_ACTIVE = frozenset(ACTIVE)


@dataclass
class CycleReport:
    """What one cycle did, for logs, /metrics and tests."""

    started_at: float
    phase_s: dict[str, float] = field(default_factory=dict)
    queued: int = 0
    placed: int = 0
    dispatched: int = 0
    finished: int = 0
    requeued: int = 0
    cancelled: int = 0
    errors: list[str] = field(default_factory=list)
    plan: Plan | None = None


@dataclass(frozen=True, slots=True)
class LoopSettings:
    cycle_s: float = 2.0
    down_after: int = 3
    refused_backoff_s: float = 30.0
    planner: str | None = None  # overrides the policy's planner
    workers: int = 8  # threads for adapter calls (refresh, dispatch, reconcile)
    min_gap_s: float = 0.1  # shortest time from one cycle's start to the next


class ControlLoop:
    """Drives jobs from PENDING to the end. ``cycle()`` is one pass; ``run()`` repeats it."""

    def __init__(
        self,
        store: Store,
        sites: Mapping[str, SiteRuntime],
        topology: Topology,
        policy: PolicyState,
        *,
        datasets: Sequence[Dataset] = (),
        tenants: Sequence[Tenant] = (),
        settings: LoopSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.sites = dict(sites)
        self.topology = topology
        self.policy = policy
        self.datasets = tuple(datasets)
        self.tenants = tuple(tenants)
        self.settings = settings or LoopSettings()
        self.clock = clock
        self.last_plan: Plan | None = None
        self.last_report: CycleReport | None = None
        self.cycles = 0
        self._wake = threading.Event()
        self._pool = ThreadPoolExecutor(self.settings.workers, thread_name_prefix="isthmus-site")
        self._jobs: dict[str, Job] = {}  # core Job per id: specs never change, parse once
        self._backoff: dict[str, float] = {}  # job id -> not planned again before this instant
        self._noted: dict[str, tuple[str, str]] = {}  # last wait reason written per job
        self._site_views: dict[str, tuple[bool, str, tuple[AcceleratorPool, ...]]] = {}
        self._just_dispatched: set[str] = set()
        # Site health as stored (a restart resumes it): failed checks in a row, down or not.
        self._failures: dict[str, int] = {}
        for name, record in store.site_records().items():
            if name in self.sites:
                self.sites[name].down = record.down
                self._failures[name] = record.failures
        # Adapters that watch their site wake the loop when it changes.
        for runtime in self.sites.values():
            if isinstance(runtime.adapter, SupportsWatch):
                runtime.adapter.on_change(self.wake)
        # Sites that may hold copies of abandoned attempts, to stop when they answer.
        self._cleanup_sites: set[str] = set(store.sites_with_cleanups())

    # ------------------------------------------------------------------ running

    def wake(self) -> None:
        """Start the next cycle now (a submission, a cancel or a site change)."""
        self._wake.set()

    def run(self, stop: threading.Event, *, is_leader: Callable[[], bool] = lambda: True) -> None:
        """Cycle until ``stop`` is set; only while ``is_leader()`` (see the HA notes)."""
        while not stop.is_set():
            began = time.monotonic()
            if is_leader():
                try:
                    self.cycle()
                except Exception:  # a bug or a broken store: log it, keep the service alive
                    log.exception("control loop cycle failed")
            # Woken early by a submission, but never more often than every min_gap_s: under a
            # stream of submissions each cycle takes a batch instead of one job at a time.
            rest = self.settings.min_gap_s - (time.monotonic() - began)
            if rest > 0:
                stop.wait(rest)
            self._wake.wait(self.settings.cycle_s)
            self._wake.clear()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def cycle(self) -> CycleReport:
        now = self.clock()
        report = CycleReport(started_at=now)
        timed = self._timed(report)
        with timed("refresh"):
            self.policy.refresh(self.store)
            self.refresh(now, report)
        with timed("snapshot"):
            snapshot, queue = self.snapshot(now)
            report.queued = len(queue)
        with timed("plan"):
            plan = self.plan(snapshot, now) if queue else None
            report.plan = plan
            if plan is not None:
                self.last_plan = plan
        with timed("reserve"):
            if plan is not None:
                self.reserve(plan, queue, now, report)
        with timed("dispatch"):
            self.dispatch(now, report)
        with timed("reconcile"):
            self.reconcile(now, report)
        self.cycles += 1
        self.last_report = report
        self.store.put_setting(PLAN_SUMMARY_KEY, json.dumps(summary_json(
            self.cycles, self.last_plan, report)), now)
        return report

    def _timed(self, report: CycleReport) -> Callable[[str], _Phase]:
        return lambda name: _Phase(report, name)

    # ------------------------------------------------------------------ 1. refresh

    def refresh(self, now: float, report: CycleReport) -> None:
        runtimes = list(self.sites.values())
        results = self._map(self._check, runtimes)
        for runtime, result in zip(runtimes, results, strict=True):
            health: Health
            pools: tuple[AcceleratorPool, ...] | None
            if isinstance(result, Exception):
                health, pools = Health(False, f"health check failed: {result}"), None
            else:
                health, pools = result
            was_down = runtime.down
            if health.ok and not was_down and not self._failures.get(runtime.name):
                down = False  # healthy and was healthy: nothing to write
            else:
                record = self.store.record_health(
                    runtime.name, ok=health.ok, reason=health.reason, now=now,
                    down_after=self.settings.down_after,
                )
                self._failures[runtime.name] = record.failures
                down = record.down
            runtime.health, runtime.down = health, down
            if pools is not None:
                runtime.pools = pools
            view = (health.ok, health.reason, runtime.pools)
            if self._site_views.get(runtime.name) != view:
                self.store.save_site_view(
                    runtime.name, healthy=health.ok, reason=health.reason, now=now,
                    inventory=[{"type": p.type, "count": p.count, "available": p.available,
                                "price_cny_per_hour": p.price_cny_per_hour}
                               for p in runtime.pools],
                )
                self._site_views[runtime.name] = view
            if down and not was_down:
                log.warning("site %s is down: %s", runtime.name, health.reason)
                report.requeued += self._site_lost(runtime, now, health.reason)
            elif was_down and not down:
                log.info("site %s is back", runtime.name)
                self._cleanup_sites.add(runtime.name)

    @staticmethod
    def _check(runtime: SiteRuntime) -> tuple[Health, tuple[AcceleratorPool, ...] | None]:
        health = runtime.adapter.health()
        if not health.ok:
            return health, None
        try:
            return health, tuple(runtime.adapter.inventory())
        except SiteUnreachable as err:
            return Health(False, str(err)), None

    def _site_lost(self, runtime: SiteRuntime, now: float, reason: str) -> int:
        """Every unfinished job at a down site gets a new attempt; the old copy is stopped
        when the site answers again."""
        count = 0
        for job in self.store.list_jobs(site=runtime.name, states=ACTIVE, limit=1_000_000):
            if job.cancel_requested:
                # Nothing to re-place; the copy is stopped when the site is back.
                done = self.store.advance(
                    job.id, job.attempt, expect=ACTIVE, to=JobState.CANCELLED, now=now,
                    reason="Cancelled", message=f"site {runtime.name} down; stopped when back",
                )
                if done is not None:
                    self.store.requeue_cleanup(job.id, job.attempt)
                continue
            self._cleanup_sites.add(runtime.name)
            if self.store.requeue(
                job.id, job.attempt, now=now, reason=SITE_DOWN,
                message=f"site {runtime.name} is down ({reason}); placing a new attempt",
                cleanup=True,
            ):
                count += 1
        return count

    # ------------------------------------------------------------------ 2. snapshot

    def snapshot(self, now: float) -> tuple[Snapshot, list[JobRecord]]:
        queue = [
            j for j in self.store.jobs_in({JobState.PENDING})
            if not j.cancel_requested and self._backoff.get(j.id, 0.0) <= now
        ]
        active = self.store.jobs_in(ACTIVE)
        reserved: dict[tuple[str, str], int] = {}
        for job in active:
            # Reserved by us but possibly not yet visible in the site's own inventory.
            if job.state in {JobState.PLACED, JobState.DISPATCHED} and job.site and job.accelerator:
                key = (job.site, job.accelerator)
                reserved[key] = reserved.get(key, 0) + job.spec.accelerators
        # A down site stays in the snapshot with nothing available: links through it and the
        # dataset replicas it holds stay known, and nothing is placed there.
        sites = tuple(self._site_now(runtime, reserved) for runtime in self.sites.values())
        running = tuple(
            RunningJob(
                job=self._core(j), site=SiteId(j.site), accelerator=AcceleratorType(j.accelerator),
                started_at=j.started_at or j.updated_at,
            )
            for j in active if j.site and j.accelerator
        )
        snapshot = Snapshot(
            sites=sites,
            links=self.topology.links,
            datasets=self.datasets,
            locations=self.topology.locations,
            tenants=self.tenants,
            accelerators=self.topology.accelerators,
            pending=tuple(self._core(j) for j in queue),
            running=running,
        )
        return snapshot, queue

    def _site_now(self, runtime: SiteRuntime, reserved: Mapping[tuple[str, str], int]) -> Site:
        pools = tuple(
            replace(p, available=0 if runtime.down else
                    max(0, p.available - reserved.get((runtime.name, p.type), 0)))
            for p in runtime.pools
        )
        return replace(runtime.site, pools=pools)

    def _core(self, job: JobRecord) -> Job:
        core = self._jobs.get(job.id)
        if core is None:
            core = self._jobs[job.id] = job.to_core()
        return core

    # ------------------------------------------------------------------ 3. plan

    def plan(self, snapshot: Snapshot, now: float) -> Plan:
        policy = self.policy.current
        name = self.settings.planner or policy.planner
        if name == "optimizer":
            return optimize(snapshot, policy, now, clock=time.perf_counter)
        return get_planner(name)(snapshot, policy, now)

    def plan_with(self, policy: Policy, now: float | None = None) -> tuple[Plan, Snapshot]:
        """A plan of the current queue under ``policy``, changing nothing (policy dry-run)."""
        now = self.clock() if now is None else now
        snapshot, _ = self.snapshot(now)
        name = self.settings.planner or policy.planner
        if name == "optimizer":
            return optimize(snapshot, policy, now, clock=time.perf_counter), snapshot
        return get_planner(name)(snapshot, policy, now), snapshot

    # ------------------------------------------------------------------ 4. reserve

    def reserve(
        self, plan: Plan, queue: Sequence[JobRecord], now: float, report: CycleReport
    ) -> None:
        placed = self.store.place(
            (
                NewPlacement(
                    job_id=p.job, site=p.site, accelerator=p.accelerator,
                    accelerators=p.accelerators, estimated_cost=p.cost.total,
                    explanation=explanation_json(plan, p.job),
                )
                for p in plan.placements
            ),
            now,
        )
        report.placed = len(placed)
        for job in placed:
            self._noted.pop(job.id, None)
        notes: dict[str, tuple[str, str, dict[str, Any] | None]] = {}
        for wait in plan.waits:
            note = (wait.reason.value, wait.message)
            if self._noted.get(wait.job) != note:
                notes[str(wait.job)] = (*note, explanation_json(plan, wait.job))
                self._noted[wait.job] = note
        self.store.note_many(notes, now)

    # ------------------------------------------------------------------ 5. dispatch

    def dispatch(self, now: float, report: CycleReport) -> None:
        todo = [
            j for j in self.store.jobs_in({JobState.PLACED})
            if not j.cancel_requested and j.site in self.sites and not self.sites[j.site].down
        ]
        results = self._map(self._submit, todo)
        done: list[Transition] = []
        for job, result in zip(todo, results, strict=True):
            if result is None:
                done.append(Transition(job.id, job.attempt, _PLACED, JobState.DISPATCHED,
                                       message=f"dispatched to {job.site} as {job.dispatch_name}"))
            elif isinstance(result, SiteUnreachable):
                self.store.note(job.id, reason=UNREACHABLE, message=str(result), now=now)
            elif isinstance(result, DispatchConflict):
                self.store.advance(job.id, job.attempt, expect={JobState.PLACED},
                                   to=JobState.FAILED, now=now, reason="DispatchConflict",
                                   message=str(result))
            else:
                # The site refused it (quota, validation, ...): plan it again after a pause.
                report.errors.append(f"{job.id}: {result}")
                self._backoff[job.id] = now + self.settings.refused_backoff_s
                if self.store.requeue(job.id, job.attempt, now=now, reason=REFUSED,
                                      message=f"{job.site} refused the dispatch: {result}",
                                      cleanup=False):
                    report.requeued += 1
        records = self.store.advance_many(done, now)
        report.dispatched = sum(r is not None for r in records)
        # Followed from the next cycle on: a site rarely has news about a dispatch it took
        # a moment ago, and asking costs a call per job.
        self._just_dispatched = {r.id for r in records if r is not None}

    def _submit(self, job: JobRecord) -> None:
        assert job.site is not None and job.accelerator is not None
        core = self._core(job)
        accelerator = AcceleratorType(job.accelerator)
        runtime_h = job.spec.runtime_h.get(job.accelerator) or max(job.spec.runtime_h.values())
        placement = Placement(
            job=JobId(job.id), site=SiteId(job.site), accelerator=accelerator,
            accelerators=job.spec.accelerators, runtime_h=runtime_h,
            cost=CostBreakdown(rental=job.estimated_cost or 0.0),
        )
        dispatch = Dispatch.for_attempt(core, placement, job.attempt, job.spec.entrypoint)
        assert dispatch.name == job.dispatch_name, (dispatch.name, job.dispatch_name)
        self.sites[job.site].adapter.submit(dispatch)

    # ------------------------------------------------------------------ 6. reconcile

    def reconcile(self, now: float, report: CycleReport) -> None:
        active = [
            j for j in self.store.jobs_in(ACTIVE)
            if j.site in self.sites and not self.sites[j.site].down
            and (j.state is not JobState.PLACED or j.cancel_requested)
            and (j.id not in self._just_dispatched or j.cancel_requested)
        ]
        results = self._map(self._observe, active)
        moves: list[Transition] = []
        for job, result in zip(active, results, strict=True):
            if isinstance(result, Exception):
                self.store.note(job.id, reason=UNREACHABLE, message=str(result), now=now)
                continue
            move = self._follow(job, result, now, report)
            if move is not None:
                moves.append(move)
        for move, record in zip(moves, self.store.advance_many(moves, now), strict=True):
            if record is None:
                continue
            if move.to is JobState.CANCELLED:
                report.cancelled += 1
            elif move.to.is_terminal():
                report.finished += 1
                self._forget(move.job_id)
        for name in sorted(self._cleanup_sites):
            runtime = self.sites.get(name)
            if runtime is None or runtime.down:
                continue
            left = self.store.cleanups(name)
            if not left:
                self._cleanup_sites.discard(name)
            for attempt in left:
                try:
                    runtime.adapter.cancel(attempt.dispatch_name)
                except Exception as err:  # retried next cycle
                    log.info("cleanup of %s at %s failed: %s", attempt.dispatch_name,
                             runtime.name, err)
                else:
                    self.store.cleanup_done(attempt.job_id, attempt.attempt)

    def _observe(self, job: JobRecord) -> DispatchStatus | None:
        """Cancel at the site if asked (returns None), else the site's status."""
        assert job.site is not None and job.dispatch_name is not None
        adapter = self.sites[job.site].adapter
        if job.cancel_requested:
            adapter.cancel(job.dispatch_name)
            return None
        return adapter.status(job.dispatch_name)

    def _follow(
        self, job: JobRecord, status: DispatchStatus | None, now: float, report: CycleReport
    ) -> Transition | None:
        """The transition the site's status calls for (requeues are done here, one by one)."""

        def to(state: JobState, reason: str = "", message: str = "") -> Transition:
            return Transition(job.id, job.attempt, _ACTIVE, state, reason, message)

        if status is None:  # cancelled at the site
            return to(JobState.CANCELLED, "Cancelled", f"stopped at {job.site}")
        state = status.state
        if state is DispatchState.RUNNING and job.state is not JobState.RUNNING:
            return to(JobState.RUNNING, status.reason, status.message)
        if state is DispatchState.SUCCEEDED:
            return to(JobState.SUCCEEDED, status.reason or "Succeeded", status.message)
        if state is DispatchState.FAILED:
            return to(JobState.FAILED, status.reason or "Failed", status.message)
        if state is DispatchState.STOPPED:
            # Stopped at the site by someone else (an admin, a preemption): try again.
            if self.store.requeue(job.id, job.attempt, now=now, reason=STOPPED_AT_SITE,
                                  message=status.message or f"stopped at {job.site}",
                                  cleanup=False):
                report.requeued += 1
        elif (
            state is DispatchState.UNKNOWN
            and status.reason == "NotFound"
            and self.store.requeue(job.id, job.attempt, now=now, reason=DISPATCH_LOST,
                                   message=f"{job.site} has no dispatch {job.dispatch_name}",
                                   cleanup=False)
        ):
            report.requeued += 1
        return None

    def _forget(self, job_id: str) -> None:
        self._jobs.pop(job_id, None)
        self._noted.pop(job_id, None)
        self._backoff.pop(job_id, None)

    # ------------------------------------------------------------------ helpers

    def _map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R | Exception]:
        """``fn`` over ``items`` on the site threads; a raised exception becomes the result."""

        def one(item: T) -> R | Exception:
            try:
                return fn(item)
            except Exception as err:  # an adapter's failure is a value here
                return err

        batch = list(items)
        if len(batch) <= 1:
            return [one(i) for i in batch]
        return list(self._pool.map(one, batch))


PLAN_SUMMARY_KEY = "plan.last"


def explanation_json(plan: Plan, job: str) -> dict[str, Any] | None:
    """The plan's explanation of ``job`` as JSON values, as the store keeps it."""
    explanation = plan.explanations.get(JobId(job))
    if explanation is None:
        return None
    return {
        "summary": explanation.summary,
        "options_considered": explanation.options_considered,
        "eliminated": {k.value: v for k, v in explanation.eliminated.items()},
        "runner_up": explanation.runner_up,
        "planner": plan.planner,
    }


def summary_json(
    cycles: int, plan: Plan | None, report: CycleReport | None
) -> dict[str, Any]:
    """The last plan and cycle, as every replica's /v1/plan and /metrics show them."""
    return {
        "cycles": cycles,
        "planner": plan.planner if plan else None,
        "placements": len(plan.placements) if plan else 0,
        "waiting": len(plan.waits) if plan else 0,
        "objective": plan.objective if plan else None,
        "lower_bound": plan.lower_bound if plan else None,
        "gap": plan.gap if plan else None,
        "solve_s": plan.solve_s if plan else None,
        "last_cycle": None if report is None else {
            "started_at": report.started_at,
            "phase_s": report.phase_s,
            "queued": report.queued,
            "placed": report.placed,
            "dispatched": report.dispatched,
            "finished": report.finished,
            "requeued": report.requeued,
        },
    }


class _Phase:
    def __init__(self, report: CycleReport, name: str) -> None:
        self.report, self.name = report, name

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.report.phase_s[self.name] = time.perf_counter() - self.t0


__all__ = ["ControlLoop", "CycleReport", "LoopSettings"]
