"""The small scenario under every planner: invariants the simulator must keep."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.core.planners import PLANNERS
from scheduler.sim.engine import SimResult, residency_allows, simulate
from scheduler.sim.parallel import run_policies
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


@pytest.mark.parametrize("planner", ["greedy-cheapest", "optimizer"])
def test_same_seed_same_report(scenario: Scenario, results: dict[str, SimResult],
                               planner: str) -> None:
    """Every figure but the timings reproduces, the optimizer's included (it gets no clock)."""
    again = simulate(load_scenario(SMALL), planner)
    first, second = build_report([results[planner]]), build_report([again])
    for report in (first, second):
        for m in report["policies"].values():
            m.pop("wall_s")
            m.pop("cpu_s")
            m.pop("solver_s_per_cycle")
        for row in report["headline"]:
            row.pop("solver_s_mean")
    assert first == second


def test_report_has_every_policy(results: dict[str, SimResult]) -> None:
    report = build_report(list(results.values()))
    assert [row["policy"] for row in report["headline"]] == list(PLANNERS)
    assert set(report["comparison"]) == {"vs_local_only", "vs_best_heuristic"}
    assert report["comparison"]["vs_best_heuristic"]["heuristic"] not in ("optimizer",
                                                                          "local-only")
    for m in report["policies"].values():
        assert m["cost_cny"]["total"] > 0
        assert set(m["utilisation"]["by_side"]) == {"east", "west"}
        assert m["solver_s_per_cycle"]["cycles"] > 0


@pytest.mark.parametrize("planner", list(PLANNERS))
def test_no_run_costs_less_than_its_floor(results: dict[str, SimResult], planner: str) -> None:
    """The floor (cheapest allowed site and card, capacity aside, lowest tariff) bounds every
    run's energy + rental from below, so ``over_floor`` is never negative."""
    result = results[planner]
    for run in result.runs:
        assert run.floor_cny > 0
        assert run.energy_cny + run.rental_cny >= run.floor_cny * (1 - 1e-9) - 1e-9, run
    assert summarize(result)["cost_cny"]["over_floor"] >= 0


def test_parallel_run_matches_one_by_one(scenario: Scenario,
                                         results: dict[str, SimResult]) -> None:
    """Every planner sees the same jobs and events whether it runs in a worker or here."""
    names = ["greedy-cheapest", "local-only", "first-fit"]
    seen: list[tuple[str, float]] = []
    parallel = run_policies(scenario, names, workers=2,
                            progress=lambda name, f: seen.append((name, f)))
    assert list(parallel) == names
    for name in names:
        mine, theirs = summarize(results[name]), parallel[name]
        for m in (mine, theirs):
            for volatile in ("wall_s", "cpu_s", "solver_s_per_cycle"):
                m.pop(volatile)
        assert mine == theirs, name
    assert {name for name, f in seen if f == 1.0} == set(names)


def test_jobs_no_site_can_run_are_parked_not_lost(scenario: Scenario) -> None:
    """Local-only cannot run a job whose home region lacks its hardware: such jobs leave the
    planner's window (so they cannot crowd out runnable ones) but stay waiting."""
    result = simulate(scenario, "local-only")
    m = summarize(result)["jobs"]
    assert m["finished"] + m["running"] + m["waiting"] == len(scenario.workload.jobs)
    homes = {s.region for s in scenario.sites}
    types_at = {r: {p.type for s in scenario.sites if s.region == r for p in s.pools}
                for r in homes}
    stranded = [st for st in result.jobs.values()
                if st.job.home_region in types_at
                and not (st.job.gang.allowed_types & types_at[st.job.home_region])]
    assert all(st.state == "waiting" and not st.runs for st in stranded)
