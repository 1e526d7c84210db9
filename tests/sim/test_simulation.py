"""The small scenario under every planner: invariants the simulator must keep."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.core.planners import PLANNERS
from scheduler.sim.engine import SimResult, residency_allows, simulate
from scheduler.sim.report import build_report, summarize
from scheduler.sim.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[2]
SMALL = ROOT / "policies" / "scenarios" / "small.yaml"


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load_scenario(SMALL)


@pytest.fixture(scope="module")
def results(scenario: Scenario) -> dict[str, SimResult]:
    return {name: simulate(scenario, name) for name in PLANNERS}


@pytest.mark.parametrize("planner", list(PLANNERS))
def test_no_capacity_overrun_at_any_instant(results: dict[str, SimResult], planner: str) -> None:
    """Replay every run as +/- events: usage of each pool never exceeds its count."""
    result = results[planner]
    assert result.counters.capacity_overruns == 0
    counts = {(s.id, p.type): p.count for s in result.scenario.sites for p in s.pools}
    events = []
    for run in result.runs:
        events.append((run.start_s, 1, run.site, run.accelerator, run.accelerators))
        events.append((run.end_s, 0, run.site, run.accelerator, -run.accelerators))
    used: dict[tuple[str, str], int] = {}
    for _, _, site, acc, delta in sorted(events):  # ends before starts at the same instant
        used[(site, acc)] = used.get((site, acc), 0) + delta
        assert 0 <= used[(site, acc)] <= counts[(site, acc)], (planner, site, acc)


@pytest.mark.parametrize("planner", list(PLANNERS))
def test_no_run_on_a_site_while_it_is_down(results: dict[str, SimResult], planner: str) -> None:
    result = results[planner]
    for outage in result.scenario.outages:
        for run in result.runs:
            if run.site == outage.site:
                assert run.end_s <= outage.start_s or run.start_s >= outage.end_s


@pytest.mark.parametrize("planner", list(PLANNERS))
def test_no_residency_violation(results: dict[str, SimResult], planner: str) -> None:
    result = results[planner]
    sc = result.scenario
    assert result.counters.residency_violations == 0
    sites = {s.id: s for s in sc.sites}
    datasets = {d.id: d for d in sc.workload.datasets}
    locations = {loc.id: (loc.lat, loc.lon) for loc in sc.locations}
    for state in result.jobs.values():
        for run in state.runs:
            assert residency_allows(state.job, sites[run.site], datasets, sc.policy, locations)


@pytest.mark.parametrize("planner", list(PLANNERS))
def test_every_job_accounted_for(results: dict[str, SimResult], planner: str) -> None:
    result = results[planner]
    sc = result.scenario
    assert set(result.jobs) == {j.id for j in sc.workload.jobs}
    m = summarize(result)["jobs"]
    assert m["finished"] + m["running"] + m["waiting"] == m["total"] == len(sc.workload.jobs)
    assert m["future"] == 0  # every generated job arrives within the horizon
    for state in result.jobs.values():
        if state.state == "finished":
            assert state.runs and not state.runs[-1].stopped
            assert state.runs[-1].end_s <= sc.end_s
        elif state.state == "running":
            assert state.runs[-1].end_s > sc.end_s
        assert all(r.start_s >= state.job.submitted_at for r in state.runs)


def test_jobs_move_west_when_allowed(results: dict[str, SimResult]) -> None:
    west = {s.id for s in results["optimizer"].scenario.sites if s.labels.get("side") == "west"}
    assert any(r.site in west for r in results["optimizer"].runs)
    local = results["local-only"]
    homes = {s.id: s.region for s in local.scenario.sites}
    for state in local.jobs.values():
        for run in state.runs:
            assert homes[run.site] == state.job.home_region


def test_outage_requeues_jobs(results: dict[str, SimResult]) -> None:
    assert any(r.counters.requeued_after_outage > 0 for r in results.values())


def test_same_seed_same_report(scenario: Scenario, results: dict[str, SimResult]) -> None:
    again = simulate(load_scenario(SMALL), "greedy-cheapest")
    first, second = build_report([results["greedy-cheapest"]]), build_report([again])
    for report in (first, second):
        for m in report["policies"].values():
            m.pop("wall_s")
            m.pop("solver_s_per_cycle")
        for row in report["headline"]:
            row.pop("solver_s_mean")
    assert first == second


def test_report_has_every_policy(results: dict[str, SimResult]) -> None:
    report = build_report(list(results.values()))
    assert [row["policy"] for row in report["headline"]] == list(PLANNERS)
    for m in report["policies"].values():
        assert m["cost_cny"]["total"] > 0
        assert set(m["utilisation"]["by_side"]) == {"east", "west"}
        assert m["solver_s_per_cycle"]["cycles"] > 0
