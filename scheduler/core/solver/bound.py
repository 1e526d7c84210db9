"""Lagrangian lower bound on the objective of any plan.

For prices ``pi >= 0`` on the shared constraints (pool capacity, site power, tenant quota),
relaxing them gives a problem that separates by job:

    L(pi) = sum_j min( wait_j, min_o [ cost_j(o) + g_j * (pi_pool(o) + kw(o) pi_power(s(o))
                                                      + pi_quota(tenant_j)) ] )
            - sum_pool pi_pool * available - sum_site pi_power * headroom
            - sum_tenant pi_quota * quota headroom

By weak duality ``L(pi) <= OPT`` for every ``pi >= 0``; with ``pi = 0`` it is the sum of each
job's best option. The optimizer passes the LP's duals, which makes the bound tight.
It is evaluated per job with that job's exact runtime, so it is a bound on the true problem,
not only on the class-aggregated LP.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scheduler.core.options import FloatArray, JobClass, Options


@dataclass(frozen=True, slots=True)
class Prices:
    """Non-negative prices on the shared constraints (CNY per unit of each)."""

    pool: FloatArray  # (S*T,) per accelerator
    power: FloatArray  # (S,) per kW
    quota: FloatArray  # (Q,) per accelerator

    @staticmethod
    def zero(options: Options) -> Prices:
        s_n, t_n = options.grid.shape
        return Prices(np.zeros(s_n * t_n), np.zeros(s_n), np.zeros(len(options.quotas)))


def option_penalty(cls: JobClass, prices: Prices, options: Options) -> FloatArray:
    """g * (price of the resources one gang of ``cls`` uses) at each of its options."""
    t_n = len(options.grid.types)
    pen = cls.accelerators * prices.pool[cls.options]
    pen = pen + cls.power(options.grid) * prices.power[cls.options // t_n]
    if cls.quota >= 0:
        pen = pen + cls.accelerators * prices.quota[cls.quota]
    return np.asarray(pen, dtype=np.float64)


def best_per_job(cls: JobClass, extra: FloatArray) -> FloatArray:
    """min_o (d_j a(o) + b(o) + extra(o)) for every job j of the class, exactly.

    Only lines that can be lowest somewhere in [min d, max d] are evaluated: a line that is
    above the lowest line at both ends of the range is never the minimum inside it.
    """
    if cls.options.size == 0:
        return np.full(cls.scale.shape, np.inf)
    a = cls.per_scale
    b = cls.transfer + extra
    lo, hi = float(cls.scale.min()), float(cls.scale.max())
    at_lo, at_hi = lo * a + b, hi * a + b
    keep = (at_lo <= at_lo.min() + 1e-9) | (at_hi <= at_hi.min() + 1e-9)
    keep |= (at_lo < at_lo[np.argmin(at_hi)]) & (at_hi < at_hi[np.argmin(at_lo)])
    a_k, b_k = a[keep], b[keep]
    out = np.empty(cls.scale.shape)
    step = max(1, 2_000_000 // max(1, a_k.size))
    for start in range(0, cls.scale.size, step):
        d = cls.scale[start:start + step]
        out[start:start + step] = (d[:, None] * a_k[None, :] + b_k[None, :]).min(axis=1)
    return out


def lagrangian_bound(options: Options, prices: Prices | None = None) -> float:
    """L(prices): a proven lower bound on the objective of every feasible plan."""
    p = prices if prices is not None else Prices.zero(options)
    total = 0.0
    for cls in options.classes:
        best = best_per_job(cls, option_penalty(cls, p, options))
        total += float(np.minimum(cls.wait, best).sum())
    grid = options.grid
    total -= float(p.pool @ grid.available.reshape(-1).astype(np.float64))
    finite = np.isfinite(grid.power_headroom_kw)
    total -= float(p.power[finite] @ grid.power_headroom_kw[finite])
    if options.quotas:
        total -= float(p.quota @ np.array([q.headroom for q in options.quotas], dtype=float))
    return total


__all__ = ["Prices", "best_per_job", "lagrangian_bound", "option_penalty"]
