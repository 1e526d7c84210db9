"""A Plan as JSON-ready data: what ``isthmus plan --json`` prints and ``--out`` writes.

Money is in CNY, times in hours (``runtime_h``) or seconds (``solve_s``). Explanations are
built lazily by the planners, and a plan for 100k jobs should not pay for 100k strings nobody
reads, so they are included only for the jobs asked for (or all, on request).

Non-finite numbers (which JSON cannot carry) are written as ``null``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

from scheduler.core.ids import JobId, SiteId
from scheduler.core.plan import CostBreakdown, Explanation, Plan


def plan_to_dict(
    plan: Plan, *, explain: Iterable[JobId] = (), explain_all: bool = False
) -> dict[str, Any]:
    """``plan`` as a dict of JSON types.

    ``explain`` names jobs whose explanation is included (``KeyError`` for a job the plan
    does not know); ``explain_all`` includes every job's.
    """
    out: dict[str, Any] = {
        "planner": plan.planner,
        "objective": _num(plan.objective),
        "lower_bound": _num(plan.lower_bound),
        "gap": _num(plan.gap),
        "solve_s": _num(plan.solve_s),
        "placed": len(plan.placements),
        "waiting": len(plan.waits),
        "placements": [
            {
                "job": p.job,
                "site": p.site,
                "accelerator": p.accelerator,
                "accelerators": p.accelerators,
                "runtime_h": _num(p.runtime_h),
                "cost": _cost(p.cost),
            }
            for p in plan.placements
        ],
        "waits": [
            {"job": w.job, "reason": w.reason.value, "message": w.message, "cost": _cost(w.cost)}
            for w in plan.waits
        ],
        "stats": {k: _num(v) for k, v in plan.stats.items()},
    }
    jobs = list(plan.explanations) if explain_all else list(dict.fromkeys(explain))
    if jobs:
        out["explanations"] = {j: explanation_to_dict(plan.explanations[j]) for j in jobs}
    return out


def explanation_to_dict(explanation: Explanation) -> dict[str, Any]:
    return {
        "job": explanation.job,
        "summary": explanation.summary,
        "options_considered": explanation.options_considered,
        "eliminated": {reason.value: n for reason, n in explanation.eliminated.items()},
        "runner_up": explanation.runner_up,
    }


def jobs_per_site(plan: Plan) -> dict[SiteId, int]:
    """Placed jobs per site, most first (ties by site id)."""
    counts = Counter(p.site for p in plan.placements)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def waits_per_reason(plan: Plan) -> dict[str, int]:
    """Waiting jobs per reason, most first (ties by reason)."""
    counts = Counter(w.reason.value for w in plan.waits)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _cost(cost: CostBreakdown) -> dict[str, float | None]:
    return {k: _num(v) for k, v in cost.as_dict().items()}


def _num(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


__all__ = ["explanation_to_dict", "jobs_per_site", "plan_to_dict", "waits_per_reason"]
