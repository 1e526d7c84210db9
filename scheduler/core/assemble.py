"""Extract: turn a per-job choice of option into a Plan with costs, reasons and explanations.

Every planner (the optimizer and each baseline) ends here, so all plans are priced and
explained the same way. ``choice[j]`` is the position of the chosen option inside job j's
class (``JobClass.options``), or -1 for "wait".
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from scheduler.core.ids import JobId
from scheduler.core.model import Snapshot
from scheduler.core.options import FloatArray, IntArray, JobClass, Options
from scheduler.core.plan import (
    BlockReason,
    CostBreakdown,
    Explanation,
    Placement,
    Plan,
    Wait,
)


@dataclass(frozen=True, slots=True)
class Usage:
    """Capacity left after a set of placements."""

    pool: IntArray  # (S, T) free accelerators
    power_kw: FloatArray  # (S,) power headroom
    quota: IntArray  # (Q,) accelerators each quota row still allows


def initial_usage(options: Options) -> Usage:
    return Usage(
        pool=options.grid.available.copy(),
        power_kw=options.grid.power_headroom_kw.copy(),
        quota=np.array([q.headroom for q in options.quotas], dtype=np.int64),
    )


def fits(
    cls: JobClass, usage: Usage, options: Options, pos: int | None = None
) -> np.ndarray:
    """Which of the class's options have room for one more gang: (O,), or (1,) for ``pos``."""
    g = cls.accelerators
    t_n = len(options.grid.types)
    flat = cls.options if pos is None else cls.options[pos:pos + 1]
    s_idx = flat // t_n
    ok = usage.pool.reshape(-1)[flat] >= g
    ok &= g * options.grid.kw.reshape(-1)[flat] <= usage.power_kw[s_idx] + 1e-9
    if cls.quota >= 0:
        ok &= usage.quota[cls.quota] >= g
    return np.asarray(ok, dtype=bool)


def room(
    cls: JobClass, usage: Usage, options: Options, pos: int | None = None
) -> IntArray:
    """How many more gangs of ``cls`` fit at each of its options: (O,), or (1,) for ``pos``."""
    g = cls.accelerators
    t_n = len(options.grid.types)
    flat = cls.options if pos is None else cls.options[pos:pos + 1]
    count = usage.pool.reshape(-1)[flat] // g
    kw = g * options.grid.kw.reshape(-1)[flat]
    headroom = usage.power_kw[flat // t_n]
    capped = np.isfinite(headroom) & (kw > 0)
    if capped.any():
        by_power = np.floor((np.maximum(headroom, 0.0) + 1e-9) / np.where(kw > 0, kw, 1.0))
        by_power = np.where(capped, by_power, 0.0).astype(np.int64)
        count = np.where(capped, np.minimum(count, by_power), count)
    if cls.quota >= 0:
        count = np.minimum(count, max(0, int(usage.quota[cls.quota])) // g)
    return np.maximum(count, 0).astype(np.int64)


def take(cls: JobClass, pos: int, usage: Usage, options: Options, count: int = 1) -> None:
    """Charge ``count`` gangs of ``cls`` at option position ``pos`` to ``usage`` (in place)."""
    flat = int(cls.options[pos])
    t_n = len(options.grid.types)
    g = cls.accelerators * count
    usage.pool.reshape(-1)[flat] -= g
    usage.power_kw[flat // t_n] -= float(cls.power(options.grid)[pos]) * count
    if cls.quota >= 0:
        usage.quota[cls.quota] -= g


def job_costs(cls: JobClass, choice: IntArray) -> FloatArray:
    """Exact cost of each job of ``cls`` under ``choice`` (wait cost where choice is -1)."""
    placed = choice >= 0
    pos = np.where(placed, choice, 0)
    if cls.options.size == 0:
        return cls.wait.copy()
    cost = cls.scale * cls.per_scale[pos] + cls.transfer[pos]
    return np.where(placed, cost, cls.wait)


def assemble(
    snapshot: Snapshot,
    options: Options,
    choice: IntArray,
    *,
    planner: str,
    solve_s: float,
    lower_bound: float,
    stats: Mapping[str, float] | None = None,
) -> Plan:
    with _gc_paused():
        return _assemble(snapshot, options, choice, planner, solve_s, lower_bound, stats)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Building 100k result objects triggers generational GC passes that find nothing to
    free (every object is live); pausing the collector halves this phase."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _assemble(
    snapshot: Snapshot,
    options: Options,
    choice: IntArray,
    planner: str,
    solve_s: float,
    lower_bound: float,
    stats: Mapping[str, float] | None,
) -> Plan:
    grid = options.grid
    t_n = len(grid.types)
    ids = [job.id for job in snapshot.pending]
    usage = initial_usage(options)
    placed: list[tuple[int, Placement]] = []
    waiting: list[tuple[int, Wait]] = []
    objective = 0.0
    # charge placements first so that wait reasons see what is left
    for cls in options.classes:
        own = choice[cls.jobs]
        for pos, n in zip(*np.unique(own[own >= 0], return_counts=True), strict=True):
            take(cls, int(pos), usage, options, int(n))
    for cls in options.classes:
        own = choice[cls.jobs]
        objective += float(job_costs(cls, own).sum())
        local = np.flatnonzero(own >= 0)
        if local.size:
            pos = own[local]
            flat = cls.options[pos]
            scale = cls.scale[local]
            g = cls.accelerators
            rows = zip(
                cls.jobs[local].tolist(), (flat // t_n).tolist(), (flat % t_n).tolist(),
                (scale * cls.runtime_factor[pos]).tolist(), (scale * cls.energy[pos]).tolist(),
                (scale * cls.rental[pos]).tolist(), cls.transfer[pos].tolist(),
                (scale * cls.latency[pos]).tolist(), strict=True)
            placed.extend(
                (j, Placement(ids[j], grid.sites[s], grid.types[t], g, rt,
                              CostBreakdown(energy=e, rental=r, transfer=x, latency=lat)))
                for j, s, t, rt, e, r, x, lat in rows)
        local = np.flatnonzero(own < 0)
        if local.size:
            reasons = _wait_reasons(cls, local, usage, options)
            for k, (reason, message) in zip(local.tolist(), reasons, strict=True):
                j = int(cls.jobs[k])
                waiting.append((j, Wait(ids[j], reason, message, cls.wait_breakdown(k))))
    placed.sort(key=lambda item: item[0])
    waiting.sort(key=lambda item: item[0])
    return Plan(
        planner=planner,
        placements=tuple(p for _, p in placed),
        waits=tuple(w for _, w in waiting),
        objective=objective,
        lower_bound=lower_bound,
        solve_s=solve_s,
        explanations=Explanations(snapshot, options, choice),
        stats=dict(stats or {}),
    )


def _wait_reasons(
    cls: JobClass, local: IntArray, usage: Usage, options: Options
) -> list[tuple[BlockReason, str]]:
    """Why each of the class's jobs at ``local`` waits, given what the plan left free."""
    if cls.blocked is not None:
        return [(cls.blocked, cls.blocked_message)] * local.size
    room = fits(cls, usage, options)
    if room.any():
        free = np.flatnonzero(room)
        best = (cls.scale[local, None] * cls.per_scale[None, free]
                + cls.transfer[None, free]).min(axis=1)
        out: list[tuple[BlockReason, str]] = []
        for b, w in zip(best.tolist(), cls.wait[local].tolist(), strict=True):
            if b >= w:
                out.append((BlockReason.COST, (
                    f"waiting ({w:.2f} CNY: one horizon of delay plus the best option later) "
                    f"is cheaper than the best free option now ({b:.2f} CNY)")))
            else:
                out.append((BlockReason.OUTBID,
                            "left waiting by this planner although an option had room"))
        return out
    g = cls.accelerators
    t_n = len(options.grid.types)
    if cls.quota >= 0 and usage.quota[cls.quota] < g:
        tenant = options.quotas[cls.quota].tenant
        reason = (BlockReason.QUOTA,
                  f"tenant {tenant} quota is used up by running and placed jobs")
    elif (pool_ok := usage.pool.reshape(-1)[cls.options] >= g).any():
        reason = (BlockReason.POWER_CAP,
                  f"the {int(pool_ok.sum())} options with free accelerators are at their "
                  "site's power cap")
    else:
        sites = len(set((cls.options // t_n).tolist()))
        reason = (BlockReason.OUTBID,
                  f"all {cls.options.size} feasible options on {sites} sites are full after "
                  "placing jobs with a higher cost of waiting")
    return [reason] * local.size


class Explanations(Mapping[JobId, Explanation]):
    """Explanations built on demand: a plan for 100k jobs should not pay for 100k strings
    nobody reads."""

    def __init__(self, snapshot: Snapshot, options: Options, choice: IntArray) -> None:
        self._snapshot = snapshot
        self._options = options
        self._choice = choice
        self._index = {job.id: j for j, job in enumerate(snapshot.pending)}

    def __len__(self) -> int:
        return len(self._index)

    def __iter__(self) -> Iterator[JobId]:
        return iter(self._index)

    def __getitem__(self, job_id: JobId) -> Explanation:
        j = self._index[job_id]
        options = self._options
        cls = options.classes[int(options.job_class[j])]
        k = int(options.job_position[j])
        pos = int(self._choice[j])
        grid = options.grid
        t_n = len(grid.types)
        costs = cls.scale[k] * cls.per_scale + cls.transfer
        order = np.argsort(costs, kind="stable")
        runner_up = None
        for p in order:
            if int(p) != pos:
                site, acc = grid.option(int(cls.options[p]))
                runner_up = f"{site} on {acc}: {float(costs[p]):.2f} CNY"
                break
        if pos >= 0:
            flat = int(cls.options[pos])
            br = cls.breakdown(pos, float(cls.scale[k]))
            summary = (
                f"placed on {grid.sites[flat // t_n]} ({grid.types[flat % t_n]} x "
                f"{cls.accelerators}) for {br.total:.2f} CNY: energy {br.energy:.2f}, rental "
                f"{br.rental:.2f}, transfer {br.transfer:.2f}, latency {br.latency:.2f}; "
                f"waiting would cost {float(cls.wait[k]):.2f}"
            )
        elif cls.blocked is not None:
            summary = f"waiting: {cls.blocked.value}: {cls.blocked_message}"
        else:
            summary = (f"waiting: {cls.options.size} feasible options, none chosen this cycle; "
                       f"cost of waiting {float(cls.wait[k]):.2f} CNY per horizon")
        return Explanation(
            job=job_id,
            summary=summary,
            options_considered=grid.sites.__len__() * t_n,
            eliminated=dict(cls.eliminated),
            runner_up=runner_up,
        )


__all__ = [
    "Explanations", "Usage", "assemble", "fits", "initial_usage", "job_costs", "room", "take",
]
