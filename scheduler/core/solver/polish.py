r"""CP-SAT polish for small queues: the exact per-job model, warm-started from the LP plan.

When the whole problem has few enough (job, option) pairs, the integer model is solved
directly: one boolean ``y_jo`` per job and option plus ``w_j`` for waiting,

.. math::

    \min \sum_{j,o} \lfloor s\,cost_j(o) \rfloor y_{jo} + \sum_j \lfloor s\,W_j \rfloor w_j
    \text{ s.t. } \sum_o y_{jo} + w_j = 1,\;
    \sum g_j y_{jo} \le A_p,\; \sum \lceil s' k_j(o) \rceil y_{jo} \le \lfloor s' P_s \rfloor,\;
    \sum_{j \in q} g_j y_{jo} \le Q_q

with costs scaled to integers by ``s`` (hundredths of a CNY) and *floored*, so that CP-SAT's
proven bound divided by ``s`` is also a bound on the true problem; power is scaled by ``s'``
(watts) and rounded against the job, so every solution is feasible for the true problem.
The LP plan is the hint, so the result is never worse. One worker and a deterministic time
limit keep it reproducible for a given seed. Large instances skip this: their LP bound is
already tight, and it is the small, lumpy ones (big gangs on few pools) where integrality
matters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from scheduler.core.options import IntArray, Options

COST_SCALE = 100.0  # hundredths of a CNY
POWER_SCALE = 1000.0  # watts


@dataclass(frozen=True, slots=True)
class Polished:
    choice: IntArray
    bound: float  # proven lower bound on the true objective (CNY)
    status: str


def literals(options: Options) -> int:
    """Booleans the exact model would need."""
    return sum(cls.jobs.size * (cls.options.size + 1) for cls in options.classes)


def polish(
    options: Options, hint: IntArray, *, deterministic_s: float, seed: int
) -> Polished | None:
    grid = options.grid
    t_n = len(grid.types)
    model = cp_model.CpModel()
    pool_terms: dict[int, list[tuple[cp_model.IntVar, int]]] = {}
    power_terms: dict[int, list[tuple[cp_model.IntVar, int]]] = {}
    quota_terms: dict[int, list[tuple[cp_model.IntVar, int]]] = {}
    objective: list[tuple[cp_model.IntVar, int]] = []
    picks: list[tuple[int, list[cp_model.IntVar]]] = []
    for cls in options.classes:
        g = cls.accelerators
        kw = cls.power(grid)
        for k, j in enumerate(cls.jobs.tolist()):
            wait = model.new_bool_var("")
            objective.append((wait, math.floor(float(cls.wait[k]) * COST_SCALE)))
            row = [wait]
            costs = cls.scale[k] * cls.per_scale + cls.transfer
            for pos, flat in enumerate(cls.options.tolist()):
                y = model.new_bool_var("")
                row.append(y)
                objective.append((y, math.floor(float(costs[pos]) * COST_SCALE)))
                pool_terms.setdefault(flat, []).append((y, g))
                site = flat // t_n
                if math.isfinite(float(grid.power_headroom_kw[site])):
                    power_terms.setdefault(site, []).append(
                        (y, math.ceil(float(kw[pos]) * POWER_SCALE)))
                if cls.quota >= 0:
                    quota_terms.setdefault(cls.quota, []).append((y, g))
            model.add_exactly_one(row)
            picks.append((j, row))
            start = int(hint[j])
            for i, var in enumerate(row):
                model.add_hint(var, i == start + 1)
    available = grid.available.reshape(-1)
    for flat, terms in pool_terms.items():
        model.add(sum(c * v for v, c in terms) <= int(available[flat]))
    for site, terms in power_terms.items():
        cap = math.floor(max(0.0, float(grid.power_headroom_kw[site])) * POWER_SCALE)
        model.add(sum(c * v for v, c in terms) <= cap)
    for q, terms in quota_terms.items():
        model.add(sum(c * v for v, c in terms) <= max(0, options.quotas[q].headroom))
    model.minimize(sum(c * v for v, c in objective))
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.max_deterministic_time = deterministic_s
    solver.parameters.random_seed = seed % (2**31)
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    choice = np.full(hint.shape, -1, dtype=np.int64)
    for j, row in picks:
        for i, var in enumerate(row):
            if solver.boolean_value(var):
                choice[j] = i - 1
                break
    return Polished(choice=choice, bound=solver.best_objective_bound / COST_SCALE,
                    status=solver.status_name(status))


__all__ = ["Polished", "literals", "polish"]
