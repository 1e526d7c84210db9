"""Every planner, on random snapshots and policies, returns a plan that the independent
checker accepts, and no baseline beats the optimizer's lower bound."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from scheduler.core.assemble import fits, initial_usage, take
from scheduler.core.baselines import (
    FIRST_FIT,
    GREEDY_CHEAPEST,
    LOCAL_ONLY,
    SPREAD_BY_CAPACITY,
    Rule,
    queue_order,
)
from scheduler.core.options import estimate
from scheduler.core.plan import BlockReason, Plan
from scheduler.core.planners import BASELINES, PLANNERS
from scheduler.core.solver.bound import lagrangian_bound
from tests.checker import check_plan
from tests.strategies import Case, cases

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def run(name: str, case: Case) -> Plan:
    """The plan of planner ``name``; skips while that planner is not written yet."""
    try:
        return PLANNERS[name](case.snapshot, case.policy, case.now)
    except NotImplementedError as exc:
        pytest.skip(f"{name} raises NotImplementedError: {exc}")


def slack(plan: Plan) -> float:
    return 1e-6 * max(1.0, abs(plan.objective))


@pytest.mark.parametrize("name", list(PLANNERS))
@SETTINGS
@given(case=cases())
def test_every_plan_passes_the_checker(name: str, case: Case) -> None:
    plan = run(name, case)
    assert plan.planner == name
    assert check_plan(case.snapshot, case.policy, case.now, plan) == []


@SETTINGS
@given(case=cases())
def test_no_baseline_beats_the_optimizer_bound(case: Case) -> None:
    plans = {name: run(name, case) for name in BASELINES}
    # The zero-price Lagrangian bound as computed, not as a plan reports it: ``assemble``
    # clamps a plan's bound to the plan's own objective, which would hide a bound too high.
    bound = lagrangian_bound(estimate(case.snapshot, case.policy, case.now))
    for name, plan in plans.items():
        assert bound <= plan.objective + slack(plan), name
    try:
        optimized = PLANNERS["optimizer"](case.snapshot, case.policy, case.now)
    except NotImplementedError as exc:
        pytest.skip(f"the optimizer raises NotImplementedError: {exc}")
    for name, plan in plans.items():
        assert optimized.lower_bound <= plan.objective + slack(plan), name


@SETTINGS
@given(case=cases())
def test_baselines_follow_their_rules(case: Case) -> None:
    snapshot, policy, now = case.snapshot, case.policy, case.now
    options = estimate(snapshot, policy, now)
    index = {job.id: j for j, job in enumerate(snapshot.pending)}

    def wait_cost(job_id: str) -> float:
        j = index[job_id]
        return float(options.classes[int(options.job_class[j])].wait[
            int(options.job_position[j])])

    for name in BASELINES:
        plan = run(name, case)
        again = run(name, case)
        assert (plan.placements, plan.waits) == (again.placements, again.waits), name
        reasons = {w.reason for w in plan.waits}
        if name == "greedy-cheapest":
            for p in plan.placements:
                assert p.cost.total < wait_cost(p.job), p
        else:  # the others place whenever something fits, whatever waiting costs
            assert BlockReason.COST not in reasons, name
        if name == "local-only":
            for p in plan.placements:
                home = snapshot.home_region(snapshot.pending[index[p.job]])
                assert home is None or snapshot.site(p.site).region == home, p

    pending = snapshot.pending
    keys = [(-pending[j].priority, pending[j].submitted_at, pending[j].id)
            for j in queue_order(pending)]
    assert keys == sorted(keys)


def reference(case: Case, rule: Rule) -> dict[str, tuple[str, str]]:
    """The baseline rule written plainly, one job at a time, without the shortcuts
    ``baselines`` takes for speed: job -> (site, accelerator type)."""
    snapshot = case.snapshot
    options = estimate(snapshot, case.policy, case.now)
    grid = options.grid
    usage = initial_usage(options)
    out: dict[str, tuple[str, str]] = {}
    for j in queue_order(snapshot.pending):
        job = snapshot.pending[j]
        cls = options.classes[int(options.job_class[j])]
        k = int(options.job_position[j])
        ok = fits(cls, usage, options)
        home = snapshot.home_region(job)
        if rule.home_only and home is not None:
            ok &= np.array([grid.regions[int(o) // len(grid.types)] == home
                            for o in cls.options], dtype=bool)
        if not ok.any():
            continue
        cost = cls.scale[k] * cls.per_scale + cls.transfer
        if rule.pick == "first":
            pos = int(np.flatnonzero(ok)[0])
        elif rule.pick == "emptiest":
            free = usage.pool.reshape(-1)[cls.options]
            candidates = np.flatnonzero(ok)
            pos = int(candidates[np.argmax(free[candidates])])
        else:
            candidates = np.flatnonzero(ok)
            pos = int(candidates[np.argmin(cost[candidates])])
            if rule.below_wait and not cost[pos] < cls.wait[k]:
                continue
        take(cls, pos, usage, options)
        out[job.id] = grid.option(int(cls.options[pos]))
    return out


@SETTINGS
@given(case=cases())
def test_baselines_match_their_plain_reference(case: Case) -> None:
    for rule in (LOCAL_ONLY, FIRST_FIT, GREEDY_CHEAPEST, SPREAD_BY_CAPACITY):
        plan = run(rule.name, case)
        got = {p.job: (p.site, p.accelerator) for p in plan.placements}
        assert got == reference(case, rule), rule.name
