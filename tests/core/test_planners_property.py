"""Every planner, on random snapshots and policies, returns a plan the independent checker
accepts; and no baseline beats the optimizer's lower bound."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from scheduler.core.baselines import queue_order
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
    # The zero-price Lagrangian bound, unclamped (``assemble`` clamps a plan's bound to its
    # own objective, which would hide a bound that is too high).
    bound = lagrangian_bound(estimate(case.snapshot, case.policy, case.now))
    for name, plan in plans.items():
        slack = 1e-6 * max(1.0, abs(plan.objective))
        assert bound <= plan.objective + slack, name
    try:
        optimized = PLANNERS["optimizer"](case.snapshot, case.policy, case.now)
    except NotImplementedError as exc:
        pytest.skip(f"the optimizer raises NotImplementedError: {exc}")
    for name, plan in plans.items():
        slack = 1e-6 * max(1.0, abs(plan.objective))
        assert optimized.lower_bound <= plan.objective + slack, name


@pytest.mark.parametrize("name", BASELINES)
@SETTINGS
@given(case=cases())
def test_baselines_are_deterministic(name: str, case: Case) -> None:
    first, second = run(name, case), run(name, case)
    assert first.placements == second.placements
    assert first.waits == second.waits


@pytest.mark.parametrize("name", ["first-fit", "spread-by-capacity", "local-only"])
@SETTINGS
@given(case=cases())
def test_baselines_that_always_place_leave_no_job_waiting_on_cost(name: str, case: Case) -> None:
    plan = run(name, case)
    assert BlockReason.COST not in {w.reason for w in plan.waits}


@SETTINGS
@given(case=cases())
def test_greedy_cheapest_places_only_below_the_cost_of_waiting(case: Case) -> None:
    plan = run("greedy-cheapest", case)
    options = estimate(case.snapshot, case.policy, case.now)
    index = {job.id: j for j, job in enumerate(case.snapshot.pending)}
    for p in plan.placements:
        j = index[p.job]
        cls = options.classes[int(options.job_class[j])]
        assert p.cost.total < cls.wait[int(options.job_position[j])]


@SETTINGS
@given(case=cases())
def test_queue_order_is_priority_then_submission_then_id(case: Case) -> None:
    pending = case.snapshot.pending
    keys = [(-pending[j].priority, pending[j].submitted_at, pending[j].id)
            for j in queue_order(pending)]
    assert keys == sorted(keys)
