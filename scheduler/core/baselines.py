"""The baselines: what multi-cluster schedulers do today, as planners on Isthmus's own model.

Each baseline is a pure function ``(snapshot, policy, now) -> Plan`` and runs the same phases
as the optimizer, so that a comparison measures the assignment rule and nothing else:

1. Estimate (``scheduler.core.options.estimate``): the same job classes, hard constraints and
   prices the optimizer sees.
2. Order the queue: priority descending, then submission time, then job id.
3. Assign one job at a time: among the job's options that still have room
   (``assemble.fits``), pick one by the baseline's rule and charge it (``assemble.take``).
   Room only ever shrinks, so a class (or, for local-only, a class within one home region)
   found with no room once is skipped for the rest of the queue.
4. Extract (``assemble.assemble``) with the zero-price Lagrangian bound.

The rules:

- ``local-only``: today's compute islands. A job may use only sites in its home region (any
  site when it has none) and takes the cheapest one there that fits.
- ``first-fit``: the first option that fits in grid order (sites as listed in the snapshot,
  then accelerator types by name), as a race between clusters would end.
- ``greedy-cheapest``: per job the cheapest option that fits, by that job's exact cost, and
  only when it costs less than waiting (SkyPilot-style per-workload optimisation).
- ``spread-by-capacity``: Karmada-style static weighting: among the options that fit, the one
  with the most free accelerators of its type (ties by grid order).

All but greedy-cheapest place a job whenever something fits: that is what those systems do.
Plans carry ``solve_s = 0.0``: the core has no clock; callers time the call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from scheduler.core.assemble import Usage, assemble, fits, initial_usage, take
from scheduler.core.model import Job, Snapshot
from scheduler.core.options import BoolArray, FloatArray, IntArray, JobClass, Options, estimate
from scheduler.core.plan import BlockReason, Plan, Wait
from scheduler.core.policy.model import Policy
from scheduler.core.solver.bound import lagrangian_bound


@dataclass(frozen=True, slots=True)
class Rule:
    """How a baseline picks among the options of a job that still fit.

    ``pick``: "first" in grid order, "cheapest" by the job's exact cost, or "emptiest" (most
    free accelerators of the option's type); ties go to grid order. ``home_only`` keeps jobs
    in their home region; ``below_wait`` places a job only when that costs less than waiting.
    """

    name: str
    pick: Literal["first", "cheapest", "emptiest"]
    home_only: bool = False
    below_wait: bool = False


LOCAL_ONLY = Rule("local-only", "cheapest", home_only=True)
FIRST_FIT = Rule("first-fit", "first")
GREEDY_CHEAPEST = Rule("greedy-cheapest", "cheapest", below_wait=True)
SPREAD_BY_CAPACITY = Rule("spread-by-capacity", "emptiest")


def local_only(snapshot: Snapshot, policy: Policy, now: float) -> Plan:
    """Compute islands: the cheapest fitting site in the job's home region."""
    return _run(snapshot, policy, now, LOCAL_ONLY)


def first_fit(snapshot: Snapshot, policy: Policy, now: float) -> Plan:
    """The first fitting option in grid order."""
    return _run(snapshot, policy, now, FIRST_FIT)


def greedy_cheapest(snapshot: Snapshot, policy: Policy, now: float) -> Plan:
    """The cheapest fitting option, when it is cheaper than waiting."""
    return _run(snapshot, policy, now, GREEDY_CHEAPEST)


def spread_by_capacity(snapshot: Snapshot, policy: Policy, now: float) -> Plan:
    """The fitting option with the most free accelerators of its type."""
    return _run(snapshot, policy, now, SPREAD_BY_CAPACITY)


# --------------------------------------------------------------------------- phases


def queue_order(pending: Sequence[Job]) -> list[int]:
    """Indices of ``pending`` by priority (highest first), then submission time, then id."""
    return sorted(range(len(pending)),
                  key=lambda j: (-pending[j].priority, pending[j].submitted_at, pending[j].id))


def _homes(snapshot: Snapshot) -> list[str | None]:
    """Every pending job's home region (``Snapshot.home_region`` without its per-job scan)."""
    tenant_home: dict[str, str] = {}
    for tenant in snapshot.tenants:
        tenant_home.setdefault(tenant.id, tenant.home_region)
    return [job.home_region if job.home_region is not None else tenant_home.get(job.tenant)
            for job in snapshot.pending]


def _run(snapshot: Snapshot, policy: Policy, now: float, rule: Rule) -> Plan:
    # 1. Estimate: the optimizer's classes, constraints and prices.
    options = estimate(snapshot, policy, now)
    # 2. Order the queue.
    order = queue_order(snapshot.pending)
    homes = _homes(snapshot) if rule.home_only else [None] * len(snapshot.pending)
    in_home = _HomeMasks(options)
    # 3. Assign one job at a time.
    choice, usage = _assign(options, order, homes, in_home, rule)
    # 4. Extract, and say why jobs wait in the baseline's own terms.
    plan = assemble(snapshot, options, choice, planner=rule.name, solve_s=0.0,
                    lower_bound=lagrangian_bound(options),
                    stats={"classes": float(len(options.classes))})
    return _queue_reasons(plan, snapshot, options, usage, homes, in_home)


class _HomeMasks:
    """Which options of a class lie in a region, cached per region and per class."""

    def __init__(self, options: Options) -> None:
        self._options = options
        self._sites: dict[str, BoolArray] = {}
        self._masks: dict[tuple[int, str], BoolArray] = {}

    def __call__(self, c: int, region: str) -> BoolArray:
        mask = self._masks.get((c, region))
        if mask is None:
            options = self._options.classes[c].options
            sites = self.sites(region)
            mask = self._masks[(c, region)] = sites[options // len(self._options.grid.types)]
        return mask

    def sites(self, region: str) -> BoolArray:
        """(S,) which sites lie in ``region``."""
        sites = self._sites.get(region)
        if sites is None:
            regions = self._options.grid.regions
            sites = self._sites[region] = np.array([r == region for r in regions], dtype=bool)
        return sites


def _assign(
    options: Options,
    order: Sequence[int],
    homes: Sequence[str | None],
    in_home: _HomeMasks,
    rule: Rule,
) -> tuple[IntArray, Usage]:
    """Each job's chosen option position (-1 = wait) and the capacity left afterwards.

    Room only ever shrinks, which gives two shortcuts: a (class, home) pair found with no
    room stays without room, and the options a class last found with room are a superset of
    those it has now, so a job whose cheapest option among them is no cheaper than waiting
    is skipped without looking again (greedy-cheapest).
    """
    usage = initial_usage(options)
    free = usage.pool.reshape(-1)  # a view: take() updates it
    choice = np.full(len(order), -1, dtype=np.int64)
    job_class = options.job_class.tolist()
    job_position = options.job_position.tolist()
    full: set[tuple[int, str | None]] = set()
    per_scale: dict[int, FloatArray] = {}
    last_room: dict[int, BoolArray] = {}
    for j in order:
        c, k, home = job_class[j], job_position[j], homes[j]
        if (c, home) in full:
            continue
        cls = options.classes[c]
        if cls.options.size == 0:
            full.add((c, home))
            continue
        cost: FloatArray | None = None
        if rule.pick == "cheapest":
            a = per_scale.get(c)
            if a is None:
                a = per_scale[c] = cls.per_scale
            cost = cls.scale[k] * a + cls.transfer
            if rule.below_wait:
                room = last_room.get(c)
                masked = cost if room is None else np.where(room, cost, np.inf)
                if not masked[masked.argmin()] < cls.wait[k]:
                    continue
        ok = fits(cls, usage, options)
        if home is not None:
            ok &= in_home(c, home)
        if rule.below_wait:
            last_room[c] = ok
        if not ok.any():
            full.add((c, home))
            continue
        if cost is not None:
            masked = np.where(ok, cost, np.inf)
            pos = int(masked.argmin())
            if rule.below_wait and not masked[pos] < cls.wait[k]:
                continue
        elif rule.pick == "emptiest":
            pos = int(np.where(ok, free[cls.options], -1).argmax())
        else:
            pos = int(ok.argmax())  # options are in grid order: the first that fits
        take(cls, pos, usage, options)
        choice[j] = pos
    return choice, usage


def _queue_reasons(
    plan: Plan,
    snapshot: Snapshot,
    options: Options,
    final: Usage,
    homes: Sequence[str | None],
    in_home: _HomeMasks,
) -> Plan:
    """Restate why jobs wait in a baseline's terms.

    ``assemble`` explains a job left without room as the optimizer would ("jobs with a higher
    cost of waiting"); a baseline hands capacity out in queue order instead. Local-only never
    looks past the home region, so its waits are explained against the home region's sites.
    """
    index = {job.id: j for j, job in enumerate(snapshot.pending)}
    job_class = options.job_class
    start = initial_usage(options)
    rooms: dict[int, tuple[BoolArray, BoolArray, BoolArray]] = {}
    reasons: dict[tuple[int, str], tuple[BlockReason, str]] = {}
    waits: list[Wait] = []
    for wait in plan.waits:
        j = index[wait.job]
        c = int(job_class[j])
        cls = options.classes[c]
        home = homes[j]
        if cls.blocked is None and home is not None:
            found = reasons.get((c, home))
            if found is None:
                room = rooms.get(c)
                if room is None:
                    room = rooms[c] = (
                        fits(cls, start, options), fits(cls, final, options),
                        final.pool.reshape(-1)[cls.options] >= cls.accelerators)
                found = reasons[(c, home)] = _home_reason(
                    options, cls, home, in_home.sites(home), in_home(c, home), *room, final)
            wait = Wait(wait.job, found[0], found[1], wait.cost)
        elif wait.reason is BlockReason.OUTBID:
            wait = Wait(wait.job, wait.reason, (
                f"all {cls.options.size} feasible options are full after placing the jobs "
                "ahead in the queue (priority, then submission time)"), wait.cost)
        waits.append(wait)
    return dataclasses.replace(plan, waits=tuple(waits))


def _home_reason(
    options: Options,
    cls: JobClass,
    home: str,
    at_home: BoolArray,
    mask: BoolArray,
    fit_before: BoolArray,
    fit_after: BoolArray,
    free_after: BoolArray,
    final: Usage,
) -> tuple[BlockReason, str]:
    """Why a job of ``cls`` waits under local-only: ``at_home`` marks the home region's
    sites, ``mask`` the class's options there, ``fit_*`` which options had room before and
    after the assignment, ``free_after`` which had free accelerators after it."""
    g = cls.accelerators
    elsewhere = f"local-only does not use the {int((~mask).sum())} feasible options elsewhere"
    if not mask.any():
        # The estimate left no option at home. Tell "home is full" from "home cannot run it".
        grid = options.grid
        usable = np.zeros(len(grid.types), dtype=bool)
        usable[cls.options % len(grid.types)] = True
        pools = np.ix_(at_home, usable)
        installed = grid.count[pools] >= g
        if not installed.any():
            return BlockReason.NO_ACCELERATOR, (
                f"no site in home region {home} has room for a gang of {g} of a type this "
                f"job can use; {elsewhere}")
        if (installed & (grid.available[pools] < g)).any():
            return BlockReason.CAPACITY, (
                f"no site in home region {home} has free accelerators for the gang; "
                f"{elsewhere}")
        return BlockReason.SPILLOVER, (
            f"local-only keeps the job in its home region {home}, where residency, data, "
            f"latency or power rules exclude every site with the hardware; {elsewhere}")
    if cls.quota >= 0 and final.quota[cls.quota] < g:
        tenant = options.quotas[cls.quota].tenant
        return BlockReason.QUOTA, f"tenant {tenant} quota is used up by running and placed jobs"
    if (free_after & mask).any() and not (fit_after & mask).any():
        return BlockReason.POWER_CAP, (
            f"the sites in home region {home} with free accelerators are at their power cap")
    if (fit_before & mask).any():
        return BlockReason.OUTBID, (
            f"the free accelerators in home region {home} went to jobs ahead in the queue")
    return BlockReason.CAPACITY, (
        f"no site in home region {home} has room for the gang; {elsewhere}")


__all__ = [
    "FIRST_FIT",
    "GREEDY_CHEAPEST",
    "LOCAL_ONLY",
    "SPREAD_BY_CAPACITY",
    "Rule",
    "first_fit",
    "greedy_cheapest",
    "local_only",
    "queue_order",
    "spread_by_capacity",
]
