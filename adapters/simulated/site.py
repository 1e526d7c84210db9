"""``SimulatedSite``: a site whose work runs in virtual time, with no cluster behind it.

Why: the demo, the large tests and the benchmarks need sites that behave like real ones
(gang capacity, FIFO queueing, preemption, outages, failures) thousands of times per second,
deterministically under an injected clock.

How: nothing runs in the background. Every call first replays, in time order, what happened
since the previous call: a heap of running dispatches keyed by end time, and a FIFO queue per
accelerator type. A dispatch that ends frees its accelerators at its end instant and the head of
its queue starts at that same instant, so start and end times are exact, not sampled. A call
costs O(log n) per event it replays and never rescans the dispatches; stale heap and queue
entries (cancelled, suspended, restarted) carry an old ticket and are skipped when reached.

Time: ``clock`` gives seconds; ``speedup`` is simulated seconds per clock second, so a placement
of ``runtime_h`` hours runs ``runtime_h * 3600 / speedup`` seconds of ``clock``.
"""

from __future__ import annotations

import enum
import heapq
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from adapters.simulated.config import parse_config
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
from scheduler.core.ids import AcceleratorType, JobId
from scheduler.core.model import AcceleratorPool

# How long ``logs(follow=True)`` sleeps between looks when no end time is known yet (clock s).
FOLLOW_POLL_S = 0.1


class _Phase(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUSPENDED = "suspended"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"


_TERMINAL = frozenset({_Phase.SUCCEEDED, _Phase.FAILED, _Phase.STOPPED})


@dataclass(slots=True)
class _Run:
    """One dispatch at the site. ``remaining_s`` is clock seconds of work left when not running."""

    name: str
    job: JobId
    accelerator: AcceleratorType
    accelerators: int
    remaining_s: float
    phase: _Phase = _Phase.QUEUED
    ticket: int = 0  # the heap or queue entry that is current; older entries are stale
    ends_at: float = math.inf
    message: str = ""
    events: list[tuple[float, str]] = field(default_factory=list)  # (clock time, log text)


@dataclass(slots=True)
class _Pool:
    type: AcceleratorType
    count: int
    price_cny_per_hour: float
    free: int
    queue: deque[tuple[int, str]] = field(default_factory=deque)  # (ticket, dispatch name)


class SimulatedSite:
    """A ``SiteAdapter`` (with logs and preemption) for one virtual site.

    ``pools`` give each accelerator type's ``count`` and price; their ``available`` is ignored
    (the site starts empty). Test hooks: :meth:`set_health` and :meth:`fail`.
    """

    def __init__(
        self,
        name: str,
        pools: Sequence[AcceleratorPool],
        *,
        clock: Callable[[], float] = time.monotonic,
        speedup: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not (math.isfinite(speedup) and speedup > 0):
            raise ValueError(f"speedup must be a finite number > 0, got {speedup!r}")
        self.name = name
        self._clock = clock
        self._sleep = sleep
        self._speedup = speedup
        self._pools: dict[AcceleratorType, _Pool] = {}
        for pool in pools:
            if pool.type in self._pools:
                raise ValueError(f"duplicate pool for accelerator type {pool.type!r}")
            if pool.count < 0:
                raise ValueError(f"pool {pool.type!r}: count must be >= 0, got {pool.count}")
            self._pools[pool.type] = _Pool(
                pool.type, pool.count, pool.price_cny_per_hour, pool.count
            )
        self._runs: dict[str, _Run] = {}
        self._ends: list[tuple[float, int, str]] = []  # (ends_at, ticket, name) of running work
        self._tickets = 0
        self._lock = threading.Lock()
        self._health = Health(True)
        self._origin = clock()

    @classmethod
    def from_config(cls, name: str, config: Mapping[str, Any]) -> Self:
        """The site from its YAML section: ``pools`` (list of {type, count,
        price_cny_per_hour}) and optional ``speedup``; a bad key raises ``ValueError``."""
        pools, speedup = parse_config(config)
        return cls(name, pools, speedup=speedup)

    # -- SiteAdapter -----------------------------------------------------------------------

    def inventory(self) -> tuple[AcceleratorPool, ...]:
        with self._lock:
            self._advance_to_now()
            return tuple(
                AcceleratorPool(p.type, p.count, p.free, p.price_cny_per_hour)
                for p in self._pools.values()
            )

    def submit(self, dispatch: Dispatch) -> None:
        with self._lock:
            now = self._advance_to_now()
            existing = self._runs.get(dispatch.name)
            if existing is not None:
                if existing.job != dispatch.job.id:
                    raise DispatchConflict(
                        f"site {self.name}: dispatch {dispatch.name} exists for job "
                        f"{existing.job!r}, not {dispatch.job.id!r}"
                    )
                return
            placement = dispatch.placement
            pool = self._pools.get(placement.accelerator)
            if pool is None:
                raise AdapterError(
                    f"site {self.name}: no {placement.accelerator} accelerators "
                    f"(has {', '.join(self._pools) or 'none'})"
                )
            if placement.accelerators > pool.count:
                raise AdapterError(
                    f"site {self.name}: dispatch {dispatch.name} needs {placement.accelerators}"
                    f" x {pool.type}, the site has {pool.count}"
                )
            run = _Run(
                dispatch.name,
                dispatch.job.id,
                pool.type,
                placement.accelerators,
                max(0.0, placement.runtime_h) * 3600.0 / self._speedup,
            )
            self._runs[run.name] = run
            self._log(
                run,
                now,
                f"queued: {run.accelerators} x {run.accelerator} for job {run.job} "
                f"(tenant {dispatch.tenant}, attempt {dispatch.attempt})",
            )
            self._enqueue(run, pool)
            self._start_queued(pool, now)

    def status(self, dispatch_name: str) -> DispatchStatus:
        with self._lock:
            self._advance_to_now()
            run = self._runs.get(dispatch_name)
            if run is None:
                return DispatchStatus(
                    DispatchState.UNKNOWN, "NotFound", f"site {self.name}: no {dispatch_name}"
                )
            return self._status_of(run)

    def cancel(self, dispatch_name: str) -> None:
        with self._lock:
            now = self._advance_to_now()
            run = self._runs.get(dispatch_name)
            if run is None or run.phase in _TERMINAL:
                return
            self._finish(run, now, _Phase.STOPPED, "cancelled")

    def health(self) -> Health:
        with self._lock:
            return self._health

    # -- SupportsPreemption ----------------------------------------------------------------

    def suspend(self, dispatch_name: str) -> None:
        """Stop the dispatch and free its accelerators; it keeps its remaining work.

        A no-op for a dispatch already suspended or ended.
        """
        with self._lock:
            now = self._advance_to_now()
            run = self._get(dispatch_name)
            if run.phase is _Phase.RUNNING:
                run.remaining_s = max(0.0, run.ends_at - now)
                pool = self._pools[run.accelerator]
                pool.free += run.accelerators
                run.phase = _Phase.SUSPENDED
                run.ends_at = math.inf
                self._log(run, now, f"suspended: {self._hours(run.remaining_s)} h of work left")
                self._start_queued(pool, now)
            elif run.phase is _Phase.QUEUED:
                run.phase = _Phase.SUSPENDED  # its queue entry is now stale
                self._log(run, now, "suspended while queued")

    def resume(self, dispatch_name: str) -> None:
        """Queue a suspended dispatch again, behind the work already queued."""
        with self._lock:
            now = self._advance_to_now()
            run = self._get(dispatch_name)
            if run.phase is not _Phase.SUSPENDED:
                return
            pool = self._pools[run.accelerator]
            self._log(run, now, f"resumed: queued with {self._hours(run.remaining_s)} h left")
            self._enqueue(run, pool)
            self._start_queued(pool, now)

    # -- SupportsLogs ----------------------------------------------------------------------

    def logs(self, dispatch_name: str, *, follow: bool = False) -> Iterator[str]:
        """Synthetic lines (queued, started, suspended, finished, ...) with virtual times.

        With ``follow``, keeps yielding until the dispatch ends, sleeping with the injected
        ``sleep`` in between. Raises ``LogsUnavailable`` for an unknown dispatch.
        """
        with self._lock:
            self._advance_to_now()
            run = self._runs.get(dispatch_name)
            if run is None:
                raise LogsUnavailable(f"site {self.name}: no dispatch {dispatch_name}")
            lines = [self._line(at, text) for at, text in run.events]
            ended = run.phase in _TERMINAL
        if not follow or ended:
            return iter(lines)
        return self._follow(run, lines)

    def _follow(self, run: _Run, first: list[str]) -> Iterator[str]:
        yield from first
        seen = len(first)
        while True:
            with self._lock:
                now = self._advance_to_now()
                fresh = [self._line(at, text) for at, text in run.events[seen:]]
                seen = len(run.events)
                ended = run.phase in _TERMINAL
                wait = run.ends_at - now if run.phase is _Phase.RUNNING else FOLLOW_POLL_S
            yield from fresh
            if ended:
                return
            self._sleep(min(max(wait, 1e-3), 1.0))

    # -- test hooks ------------------------------------------------------------------------

    def set_health(self, ok: bool, reason: str = "") -> None:
        """Make the site (un)reachable: when not ok, every site call raises ``SiteUnreachable``
        and ``health()`` says ``reason``. Work keeps running underneath in virtual time."""
        with self._lock:
            self._health = Health(True) if ok else Health(False, reason or "unreachable")

    def fail(self, dispatch_name: str, message: str) -> None:
        """Force a dispatch that has not ended to FAILED with ``message``, freeing its share."""
        with self._lock:
            now = self._advance(self._clock())
            run = self._runs.get(dispatch_name)
            if run is None:
                raise AdapterError(f"site {self.name}: no dispatch {dispatch_name}")
            if run.phase not in _TERMINAL:
                self._finish(run, now, _Phase.FAILED, message)

    # -- the replay ------------------------------------------------------------------------

    def _advance_to_now(self) -> float:
        """Refuse when unreachable; else replay events up to now and return now."""
        if not self._health.ok:
            raise SiteUnreachable(f"site {self.name}: {self._health.reason}")
        return self._advance(self._clock())

    def _advance(self, now: float) -> float:
        ends = self._ends
        while ends and ends[0][0] <= now:
            end, ticket, name = heapq.heappop(ends)
            run = self._runs[name]
            if run.ticket == ticket and run.phase is _Phase.RUNNING:
                self._finish(run, end, _Phase.SUCCEEDED, "finished: SUCCEEDED")
        return now

    def _enqueue(self, run: _Run, pool: _Pool) -> None:
        run.phase = _Phase.QUEUED
        run.ticket = self._next_ticket()
        pool.queue.append((run.ticket, run.name))

    def _start_queued(self, pool: _Pool, at: float) -> None:
        """Start the queue's head while it fits, at instant ``at`` (strict FIFO, no backfill)."""
        queue = pool.queue
        while queue:
            ticket, name = queue[0]
            run = self._runs[name]
            if run.ticket != ticket or run.phase is not _Phase.QUEUED:
                queue.popleft()
                continue
            if run.accelerators > pool.free:
                return
            queue.popleft()
            pool.free -= run.accelerators
            run.phase = _Phase.RUNNING
            run.ticket = self._next_ticket()
            run.ends_at = at + run.remaining_s
            heapq.heappush(self._ends, (run.ends_at, run.ticket, run.name))
            self._log(run, at, f"started: {self._hours(run.remaining_s)} h of work")

    def _finish(self, run: _Run, at: float, phase: _Phase, message: str) -> None:
        pool = self._pools[run.accelerator]
        was_running = run.phase is _Phase.RUNNING
        if was_running:
            pool.free += run.accelerators
            run.remaining_s = max(0.0, run.ends_at - at)
        run.phase = phase
        run.ends_at = math.inf
        run.message = message
        self._log(run, at, message if phase is not _Phase.FAILED else f"failed: {message}")
        if was_running or pool.queue:
            self._start_queued(pool, at)

    # -- small helpers ---------------------------------------------------------------------

    def _status_of(self, run: _Run) -> DispatchStatus:
        phase = run.phase
        if phase is _Phase.QUEUED:
            return DispatchStatus(
                DispatchState.PENDING,
                "Queued",
                f"waiting for {run.accelerators} x {run.accelerator}",
            )
        if phase is _Phase.SUSPENDED:
            return DispatchStatus(
                DispatchState.PENDING,
                "Suspended",
                f"{self._hours(run.remaining_s)} h of work left",
            )
        if phase is _Phase.RUNNING:
            return DispatchStatus(DispatchState.RUNNING, "Running")
        if phase is _Phase.SUCCEEDED:
            return DispatchStatus(DispatchState.SUCCEEDED, "Completed")
        if phase is _Phase.FAILED:
            return DispatchStatus(DispatchState.FAILED, "Failed", run.message)
        return DispatchStatus(DispatchState.STOPPED, "Cancelled", run.message)

    def _get(self, dispatch_name: str) -> _Run:
        run = self._runs.get(dispatch_name)
        if run is None:
            raise AdapterError(f"site {self.name}: no dispatch {dispatch_name}")
        return run

    def _next_ticket(self) -> int:
        self._tickets += 1
        return self._tickets

    def _log(self, run: _Run, at: float, text: str) -> None:
        run.events.append((at, text))

    def _line(self, at: float, text: str) -> str:
        one_line = " ".join(text.split())  # a failure message may span several lines
        return f"[t+{(at - self._origin) * self._speedup:.0f}s] {one_line}\n"

    def _hours(self, clock_s: float) -> str:
        return f"{clock_s * self._speedup / 3600.0:.2f}"


__all__ = ["SimulatedSite"]
