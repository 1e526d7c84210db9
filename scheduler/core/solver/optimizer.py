r"""The optimizer: place the whole queue at once, by job class, with a proven bound.

Estimate, formulate, solve, extract:

1. **Estimate** (``scheduler.core.options``): pending jobs are grouped into classes ``c`` of
   ``n_c`` jobs that share options and prices up to a runtime scale ``d_j``. Option ``o`` is a
   (site, accelerator type) pair; a gang of class ``c`` holds ``g_c`` accelerators of the
   pool ``p(o)``, draws ``k_c(o)`` kW at site ``s(o)`` and counts ``g_c`` against its
   tenant's quota ``q(c)``. Job ``j`` costs ``d_j a_c(o) + b_c(o)`` at ``o`` and ``W_j`` if
   it waits (one horizon of delay plus its cheapest option, since it will run eventually).

2. **Formulate** the aggregated LP. Each LP row ``r`` is a class (or, for queues of at most
   ``EXACT_JOBS`` jobs, a single job, so that every job has its exact costs); its jobs are
   split into wait tiers ``t`` by cost of delay. With ``\bar d_r`` the mean runtime scale and
   ``\bar W_{rt}`` the mean wait cost of a tier:

   .. math::

       \min \sum_{r,o} (\bar d_r a_r(o) + b_r(o))\, x_{ro} + \sum_{r,t} \bar W_{rt}\, w_{rt}
       \text{ s.t. }
       \sum_o x_{ro} + \sum_t w_{rt} = n_r                \quad \forall r        \; (\sigma_r)
       0 \le w_{rt} \le n_{rt}
       \sum_{r,o: p(o)=p} g_r x_{ro} \le A_p              \quad \forall p        \; (\pi_p)
       \sum_{r,o: s(o)=s} k_r(o) x_{ro} \le P_s           \quad \forall s \text{ capped}
       \sum_{r: q(r)=q,\,o} g_r x_{ro} \le Q_q             \quad \forall q
       x \ge 0

   ``A_p`` free accelerators, ``P_s`` power headroom, ``Q_q`` quota headroom. Its size grows
   with classes and options, not jobs. It is solved with GLOP by **column generation**: the
   first round has the ``K`` cheapest options of each row plus the options a greedy pass
   uses (the greedy pass routes the overflow, so the first LP is already close); each round
   prices every option with the duals (reduced cost
   ``\bar d_r a + b - \sigma_r + g_r \pi_p + k_r \pi_s + g_r \pi_q``) and adds the most
   negative ones, until none is left, or ``LP + \sum_r n_r \min(0, \min_o rc_{ro})`` (a bound
   on the full LP) is within ``LP_TOLERANCE``, or the round or time limit.

3. **Round, repair, improve**: ``floor(x)`` gangs of each row go to each option, the most
   urgent jobs first, the longest of them on the options with the lowest ``a(o)``. Every job
   still waiting is then offered the cheapest option that still has room, if that beats
   waiting; then placed jobs move to a cheaper option that has room. Every placement is
   charged against the remaining pool, power and quota before it is made, so the result
   never breaks a hard constraint. The greedy pass's plan is kept instead on the rare
   instance where it is cheaper.

4. **Bound**: the Lagrangian bound of ``scheduler.core.solver.bound`` with the LP's duals,
   evaluated with every job's exact runtime, is a proven lower bound on any plan; the gap
   ``(objective - bound) / objective`` is reported with the plan.

5. **Polish** (queues of at most ``POLISH_LITERALS`` job-option pairs): the exact integer
   model in CP-SAT, warm-started from this plan (``scheduler.core.solver.polish``); its plan
   replaces ours when cheaper and its proven bound replaces ours when higher. Under a time
   limit shorter than ``QUICK_PLAN_S`` it is skipped when the plan is already within
   ``LP_TOLERANCE`` of its bound (as close as column generation is asked to get).

Determinism: the model is built in a fixed order, GLOP is deterministic and CP-SAT runs one
worker under a deterministic time limit with the policy's seed. The only clock is the one a
caller injects for timings and ``policy.solver.time_limit_s``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from ortools.linear_solver.python import model_builder_helper as mbh

from scheduler.core.assemble import Usage, assemble, initial_usage, job_costs, room, take
from scheduler.core.model import Snapshot
from scheduler.core.options import FloatArray, IntArray, JobClass, Options, estimate
from scheduler.core.plan import Plan
from scheduler.core.policy.model import Policy
from scheduler.core.solver.bound import Prices, lagrangian_bound
from scheduler.core.solver.polish import literals, polish

_MAX_ROUNDS = 12
_ENTERING_PER_ROUND = 16
LP_TOLERANCE = 0.002  # column generation stops within 0.2% of the full LP
POLISH_LITERALS = 20_000  # exact CP-SAT polish up to this many (job, option) booleans
POLISH_DETERMINISTIC_S = 1.0  # CP-SAT deterministic time units at most (~2.5 s wall here)
PROVEN_GAP = 1e-9  # relative: a plan this close to its bound is optimal (float noise aside)
POLISH_SHARE = 0.1  # ... and at most this share of policy.solver.time_limit_s
QUICK_PLAN_S = 2.0  # under this time limit, no polish for plans within LP_TOLERANCE


@dataclass(frozen=True, slots=True)
class Group:
    """Jobs of one class solved as one LP row: the whole class, or a single job when the
    queue is small enough to give every job its exact costs. Its jobs are split into wait
    tiers by cost of delay so that the LP chooses which of them wait."""

    index: int
    cls: JobClass
    members: IntArray  # positions inside the class
    jobs: IntArray  # global job indices
    delay: FloatArray
    scale: FloatArray
    tier_size: FloatArray
    tier_cost: FloatArray  # mean wait cost per tier
    cost: FloatArray  # per option: mean cost of one job of the group

    @staticmethod
    def build(index: int, cls: JobClass, members: IntArray) -> Group:
        scale = cls.scale[members]
        delay = cls.delay[members]
        cost = float(scale.mean()) * cls.per_scale + cls.transfer
        per_accel = np.maximum(delay, 1e-9) / max(1, cls.accelerators)
        raw_tier = np.round(np.log2(per_accel) * 2.0).astype(np.int64)
        tiers, tier = np.unique(raw_tier, return_inverse=True)
        tier_size = np.bincount(tier, minlength=tiers.size).astype(np.float64)
        tier_cost = np.bincount(tier, weights=cls.wait[members], minlength=tiers.size)
        return Group(
            index=index, cls=cls, members=members, jobs=cls.jobs[members], delay=delay,
            scale=scale, tier_size=tier_size, tier_cost=tier_cost / tier_size, cost=cost,
        )


EXACT_JOBS = 4000  # queues up to this size get one LP row per job (exact costs)


def _groups(options: Options, jobs: int) -> list[Group]:
    groups: list[Group] = []
    for cls in options.classes:
        if cls.options.size == 0:
            continue
        if jobs <= EXACT_JOBS:
            for k in range(cls.jobs.size):
                groups.append(Group.build(len(groups), cls, np.array([k])))
        else:
            groups.append(Group.build(len(groups), cls, np.arange(cls.jobs.size)))
    return groups


@dataclass(frozen=True, slots=True)
class Columns:
    """Every (group, option) pair of the problem as flat arrays (the column universe)."""

    grp: IntArray  # group index
    pos: IntArray  # position in the group's options
    flat: IntArray  # option (site * T + type)
    site: IntArray
    cost: FloatArray  # mean cost of one job of the group at the option
    g: FloatArray  # accelerators
    kw: FloatArray  # power of one gang
    quota: IntArray  # quota row or -1
    start: IntArray  # (G+1,) columns of group k are start[k]:start[k+1]

    @staticmethod
    def build(groups: list[Group], options: Options) -> Columns:
        t_n = len(options.grid.types)
        sizes = [gr.cls.options.size for gr in groups]
        start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        grp = np.repeat(np.arange(len(groups), dtype=np.int64), sizes)

        def cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

        flat = cat([gr.cls.options for gr in groups], np.int64)
        return Columns(
            grp=grp,
            pos=np.arange(flat.size, dtype=np.int64) - start[grp],
            flat=flat,
            site=flat // t_n,
            cost=cat([gr.cost for gr in groups], np.float64),
            g=np.repeat(np.array([float(gr.cls.accelerators) for gr in groups]), sizes),
            kw=cat([gr.cls.power(options.grid) for gr in groups], np.float64),
            quota=np.repeat(np.array([gr.cls.quota for gr in groups], dtype=np.int64), sizes),
            start=start,
        )

    def cheapest_per_group(self, k: int) -> IntArray:
        """Indices of the k cheapest columns of every group."""
        order = np.lexsort((self.cost, self.grp))
        rank = np.arange(order.size) - self.start[self.grp[order]]
        return np.sort(order[rank < k])


@dataclass(frozen=True, slots=True)
class LPResult:
    x: FloatArray  # per selected column
    prices: Prices
    sigma: FloatArray  # per group
    value: float


def _no_clock() -> float:
    return 0.0


def plan(
    snapshot: Snapshot, policy: Policy, now: float, *, clock: Callable[[], float] | None = None
) -> Plan:
    """Place every pending job of ``snapshot`` under ``policy`` at instant ``now``.

    Pure: ``clock`` (monotonic seconds, e.g. ``time.perf_counter``) is injected by the
    caller to report phase times and to enforce ``policy.solver.time_limit_s`` across LP
    rounds; without it no round is cut short for time, each LP solve is bounded in GLOP's
    deterministic work units instead of seconds, and every time reads 0.
    """
    tick = clock or _no_clock
    started = tick()
    deadline = started + policy.solver.time_limit_s
    # 1. Estimate: classes and their priced options.
    options = estimate(snapshot, policy, now)
    estimated = tick()
    groups = _groups(options, len(snapshot.pending))
    columns = Columns.build(groups, options)
    group_sizes = np.array([float(gr.jobs.size) for gr in groups])

    # 2. Formulate and solve the aggregated LP by column generation.
    k = policy.solver.initial_columns
    # Seed the LP with the k cheapest options of each group and the options a greedy pass
    # uses: the greedy pass routes the overflow, so the first LP is already close.
    greedy = np.full(len(snapshot.pending), -1, dtype=np.int64)
    _repair(options, greedy, initial_usage(options))
    active = np.union1d(columns.cheapest_per_group(k), _columns_of(greedy, groups, columns))
    result: LPResult | None = None
    result_active = active
    round_s: list[float] = []
    rounds = 0
    lp_s = 0.0
    while columns.grp.size and rounds < _MAX_ROUNDS:
        rounds += 1
        remaining = deadline - tick() if clock else policy.solver.time_limit_s
        if remaining <= 0:
            break
        t0 = tick()
        attempt = _solve_lp(options, groups, columns, active, remaining, policy.solver.seed,
                            wall_clock=clock is not None)
        lp_s += tick() - t0
        if attempt is None:
            break
        result, result_active = attempt, active
        round_s.append(tick() - t0)
        reduced = _reduced_costs(columns, result)
        in_model = np.zeros(columns.grp.size, dtype=bool)
        in_model[active] = True
        negative = (reduced < -1e-7 * np.maximum(1.0, np.abs(columns.cost))) & ~in_model
        entering = np.flatnonzero(negative)
        if entering.size == 0:
            break
        # Each group can move at most all of its jobs onto its most negative column, so
        # LP + sum_k n_k min(0, min rc_k) bounds the full LP from below: stop when close.
        most_negative = np.zeros(len(groups))
        np.minimum.at(most_negative, columns.grp[entering], reduced[entering])
        full_lp_bound = result.value + float(most_negative @ group_sizes)
        if result.value - full_lp_bound <= LP_TOLERANCE * max(1.0, abs(result.value)):
            break
        # most negative first, a few per group per round
        order = entering[np.lexsort((reduced[entering], columns.grp[entering]))]
        first = np.searchsorted(columns.grp[order], columns.grp[order], side="left")
        rank = np.arange(order.size) - first
        active = np.union1d(active, order[rank < _ENTERING_PER_ROUND])

    # 3. Round and repair.
    choice = np.full(len(snapshot.pending), -1, dtype=np.int64)
    usage = initial_usage(options)
    if result is not None:
        _round(options, groups, columns, result_active, result, choice, usage)
    rounded = tick()
    _repair(options, choice, usage)
    _improve(options, choice, usage)
    # The greedy seed is a complete plan too: keep it on the rare instance where it is better.
    if _total(options, greedy) < _total(options, choice):
        choice = greedy

    # 4. Bound.
    repaired = tick()
    bound = lagrangian_bound(options)
    if result is not None:
        bound = max(bound, lagrangian_bound(options, result.prices))

    # 5. Small queues: the exact integer model, warm-started from this plan.
    polish_status = "skipped"
    gap = _total(options, choice) - bound
    proven = gap <= PROVEN_GAP * max(1.0, abs(bound))
    if proven:
        polish_status = "OPTIMAL"  # the bound already meets the plan: nothing to polish
    elif (policy.solver.time_limit_s < QUICK_PLAN_S
          and gap <= LP_TOLERANCE * max(1.0, abs(bound))):
        # a short time limit asks for a quick plan: this one is as close to its bound as
        # column generation is asked to get
        polish_status = "WITHIN_TOLERANCE"
    elif 0 < literals(options) <= POLISH_LITERALS:
        # bounded by the policy's time limit too: a simulator or a fast control loop asks
        # for short cycles (deterministic units, so the result stays reproducible)
        effort = min(POLISH_DETERMINISTIC_S, POLISH_SHARE * policy.solver.time_limit_s)
        polished = polish(options, choice, deterministic_s=effort, seed=policy.solver.seed)
        if polished is not None:
            polish_status = polished.status
            bound = max(bound, polished.bound)
            if _total(options, polished.choice) < _total(options, choice):
                choice = polished.choice
    finished = tick()
    stats = {
        "classes": float(len(options.classes)),
        "groups": float(len(groups)),
        "columns": float(columns.grp.size),
        "lp_columns": float(result_active.size),
        "lp_first_s": round_s[0] if round_s else 0.0,
        "lp_rounds": float(rounds),
        "lp_value": result.value if result is not None else float("nan"),
        "estimate_s": estimated - started,
        "lp_s": lp_s,
        "repair_s": repaired - rounded,
        "bound_s": finished - repaired,
        "polished": 1.0 if polish_status in ("OPTIMAL", "FEASIBLE") else 0.0,
        "polish_optimal": 1.0 if polish_status == "OPTIMAL" else 0.0,
    }
    return assemble(snapshot, options, choice, planner="optimizer",
                    solve_s=finished - started, lower_bound=bound, stats=stats)


def _solve_lp(
    options: Options,
    groups: list[Group],
    columns: Columns,
    active: IntArray,
    time_limit_s: float,
    seed: int,
    *,
    wall_clock: bool,
) -> LPResult | None:
    grid = options.grid
    n_groups = len(groups)
    n_pools = grid.available.size
    capped = np.flatnonzero(np.isfinite(grid.power_headroom_kw))
    power_row = np.full(grid.power_headroom_kw.size, -1, dtype=np.int64)
    power_row[capped] = np.arange(capped.size)
    n_quota = len(options.quotas)
    n_cols = active.size
    # rows: groups | pools | capped sites | quotas
    r_pool = n_groups
    r_power = r_pool + n_pools
    r_quota = r_power + capped.size
    n_rows = r_quota + n_quota
    var = np.arange(n_cols)
    rows = [columns.grp[active], r_pool + columns.flat[active]]
    cols = [var, var]
    vals = [np.ones(n_cols), columns.g[active]]
    has_power = power_row[columns.site[active]] >= 0
    rows.append(r_power + power_row[columns.site[active][has_power]])
    cols.append(var[has_power])
    vals.append(columns.kw[active][has_power])
    has_quota = columns.quota[active] >= 0
    rows.append(r_quota + columns.quota[active][has_quota])
    cols.append(var[has_quota])
    vals.append(columns.g[active][has_quota])
    # wait variables: one per (group, tier), bounded by the tier's size
    tiers = [gr.tier_size.size for gr in groups]
    n_wait = int(sum(tiers))
    rows.append(np.repeat(np.arange(n_groups), tiers))
    cols.append(n_cols + np.arange(n_wait))
    vals.append(np.ones(n_wait))
    matrix = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_rows, n_cols + n_wait),
    )
    counts = np.array([float(gr.jobs.size) for gr in groups])
    lower_rows = np.concatenate([counts, np.full(n_rows - n_groups, -np.inf)])
    upper_rows = np.concatenate([
        counts,
        grid.available.reshape(-1).astype(np.float64),
        np.maximum(0.0, grid.power_headroom_kw[capped]),  # over cap already: nothing new
        np.array([max(0.0, float(q.headroom)) for q in options.quotas]),
    ])
    wait_cost = np.concatenate([gr.tier_cost for gr in groups]) if groups else np.zeros(0)
    wait_size = np.concatenate([gr.tier_size for gr in groups]) if groups else np.zeros(0)
    objective = np.concatenate([columns.cost[active], wait_cost])
    model = mbh.ModelBuilderHelper()
    fill: Any = model.fill_model_from_sparse_data  # its stubs mistype the numpy arguments
    fill(
        np.zeros(n_cols + n_wait), np.concatenate([np.full(n_cols, np.inf), wait_size]),
        objective, lower_rows, upper_rows, matrix,
    )
    solver = mbh.ModelSolverHelper("glop")
    limit = max(0.05, time_limit_s)
    params = f"random_seed: {int(seed) % (2**31)}"
    if wall_clock:
        solver.set_time_limit_in_seconds(limit)
    else:
        # No clock: the caller wants a result that does not depend on the machine's speed or
        # load (the simulator), so the limit is in GLOP's deterministic work units instead.
        params += f" max_deterministic_time: {limit}"
    solver.set_solver_specific_parameters(params)
    solver.solve(model)
    if solver.status() != mbh.SolveStatus.OPTIMAL:
        return None
    values = np.asarray(solver.variable_values())
    duals = np.asarray(solver.dual_values())
    # For a minimisation, duals of <= rows are <= 0: the price of a unit of capacity is -dual.
    pool_price = np.maximum(0.0, -duals[r_pool:r_power])
    power_price = np.zeros(grid.power_headroom_kw.size)
    power_price[capped] = np.maximum(0.0, -duals[r_power:r_quota])
    quota_price = np.maximum(0.0, -duals[r_quota:n_rows])
    return LPResult(
        x=values[:n_cols],
        prices=Prices(pool=pool_price, power=power_price, quota=quota_price),
        sigma=duals[:n_groups],
        value=float(solver.objective_value()),
    )


def _columns_of(choice: IntArray, groups: list[Group], columns: Columns) -> IntArray:
    """The columns a per-job choice uses."""
    used = []
    for k, group in enumerate(groups):
        picked = choice[group.jobs]
        picked = picked[picked >= 0]
        if picked.size:
            used.append(columns.start[k] + np.unique(picked))
    return np.concatenate(used) if used else np.zeros(0, dtype=np.int64)


def _reduced_costs(columns: Columns, result: LPResult) -> FloatArray:
    p = result.prices
    reduced = columns.cost - result.sigma[columns.grp] + columns.g * p.pool[columns.flat]
    reduced = reduced + columns.kw * p.power[columns.site]
    if p.quota.size:
        reduced = reduced + np.where(columns.quota >= 0,
                                     columns.g * p.quota[np.maximum(columns.quota, 0)], 0.0)
    return np.asarray(reduced, dtype=np.float64)


def _round(
    options: Options,
    groups: list[Group],
    columns: Columns,
    active: IntArray,
    result: LPResult,
    choice: IntArray,
    usage: Usage,
) -> None:
    """Give floor(x) gangs of each group to each option: the group's most urgent jobs, the
    longest of them on the options with the lowest cost per unit of runtime.

    Floors never exceed what the LP assigned, and every constraint has non-negative
    coefficients, so the rounded assignment fits without further checks.
    """
    whole = np.floor(result.x + 1e-6).astype(np.int64)
    keep = whole > 0
    sel, n_sel = active[keep], whole[keep]
    by_group: dict[int, list[tuple[int, int]]] = {}
    for col, n in zip(sel.tolist(), n_sel.tolist(), strict=True):
        by_group.setdefault(int(columns.grp[col]), []).append((int(columns.pos[col]), n))
    for k, taken in by_group.items():
        group = groups[k]
        cls = group.cls
        total = sum(n for _, n in taken)
        chosen = np.argsort(-group.delay, kind="stable")[:total]
        chosen = chosen[np.argsort(-group.scale[chosen], kind="stable")]
        taken.sort(key=lambda pn: (float(cls.per_scale[pn[0]]), pn[0]))
        at = 0
        for pos, n in taken:
            choice[group.jobs[chosen[at:at + n]]] = pos
            take(cls, pos, usage, options, n)
            at += n


def _total(options: Options, choice: IntArray) -> float:
    return float(sum(job_costs(cls, choice[cls.jobs]).sum() for cls in options.classes))


def _improve(options: Options, choice: IntArray, usage: Usage) -> None:
    """Move placed jobs to a cheaper option that still has room (largest saving first).

    Rounding leaves capacity here and there; a job that could run cheaper in it moves. Each
    move frees the old option, so it is re-checked against what is left.
    """
    for cls in options.classes:
        placed = np.flatnonzero(choice[cls.jobs] >= 0)
        if placed.size == 0:
            continue
        can = room(cls, usage, options) > 0
        if not can.any():
            continue
        current = choice[cls.jobs[placed]]
        cost_now = cls.scale[placed] * cls.per_scale[current] + cls.transfer[current]
        free = np.flatnonzero(can)
        best = (cls.scale[placed, None] * cls.per_scale[None, free]
                + cls.transfer[None, free]).min(axis=1)
        saving = cost_now - best
        for i in np.argsort(-saving, kind="stable").tolist():
            if saving[i] <= 1e-9:
                break
            local = int(placed[i])
            costs = cls.scale[local] * cls.per_scale + cls.transfer
            while True:
                # ``can`` may be stale: check the pick, refresh only when it does not fit
                pos = int(np.argmin(np.where(can, costs, np.inf)))
                if not can[pos] or costs[pos] >= cost_now[i] - 1e-9:
                    break
                if room(cls, usage, options, pos)[0] > 0:
                    old = int(choice[cls.jobs[local]])
                    take(cls, pos, usage, options)
                    take(cls, old, usage, options, -1)
                    choice[cls.jobs[local]] = pos
                    can[old] = True
                    break
                can = room(cls, usage, options) > 0


def _repair(options: Options, choice: IntArray, usage: Usage) -> None:
    """Offer waiting jobs the cheapest option that still has room, when that beats waiting.

    Classes go in order of their most urgent waiting job; inside a class, jobs go most
    urgent first, in batches: all the jobs that gain from the cheapest option with room take
    it, as many as fit, then the next option. Usage only grows, so a class that finds no
    room is done.
    """
    todo: list[tuple[float, int]] = []
    for cls in options.classes:
        if cls.options.size == 0:
            continue
        idle = choice[cls.jobs] < 0
        if idle.any():
            todo.append((-float(cls.delay[idle].max()) / cls.accelerators, cls.index))
    todo.sort()
    for _, c in todo:
        cls = options.classes[c]
        waiting = np.flatnonzero(choice[cls.jobs] < 0)
        waiting = waiting[np.argsort(-cls.delay[waiting], kind="stable")]
        while waiting.size:
            count = room(cls, usage, options)
            if not count.any():
                break
            lead = int(waiting[0])
            lead_cost = np.where(count > 0, cls.scale[lead] * cls.per_scale + cls.transfer,
                                 np.inf)
            pos = int(np.argmin(lead_cost))
            cost = cls.scale[waiting] * cls.per_scale[pos] + cls.transfer[pos]
            gaining = waiting[cost < cls.wait[waiting]]
            if gaining.size == 0:
                break
            chosen = gaining[:int(count[pos])]
            choice[cls.jobs[chosen]] = pos
            take(cls, pos, usage, options, int(chosen.size))
            waiting = waiting[~np.isin(waiting, chosen)]


__all__ = ["plan"]
