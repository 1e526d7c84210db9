"""Scenario files: the shipped ones load; broken ones give one clear line per problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from scheduler.cli.main import app
from scheduler.sim.scenario import ScenarioError, load_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "policies" / "scenarios"
TOPOLOGY = (ROOT / "policies" / "topology" / "china-hubs.yaml").as_posix()

BASE = f"""name: t
topology: {TOPOLOGY}
start: 2026-07-13T00:00:00+08:00
duration_h: 2
sites: [qingpu, zhongwei]
workload: {{jobs_per_hour: 5}}
"""


def test_shipped_scenarios_load() -> None:
    small = load_scenario(SCENARIOS / "small.yaml")
    assert 200 <= len(small.workload.jobs) <= 600
    assert [s.id for s in small.sites] == ["qingpu", "wuhu", "tianfu", "zhongwei"]
    assert small.outages and small.power_caps
    default = load_scenario(SCENARIOS / "default.yaml")
    assert len(default.sites) == 10 and default.duration_h == 168
    assert 90_000 < len(default.workload.jobs) < 110_000


@pytest.mark.parametrize(("extra", "message"), [
    ("colour: blue\n", "colour: unknown field"),
    ("events:\n  - {kind: site-down, site: atlantis, at_h: 1, for_h: 1}\n",
     "events[0].site: unknown site 'atlantis'"),
    ("events:\n  - {kind: site-down, site: qingpu, at_h: -1, for_h: 1}\n",
     "events[0].at_h: Input should be greater than or equal to 0"),
    ("events:\n  - {kind: power-cap, sites: {hubs: [Mars]}, fraction: 0.5}\n",
     "events[0].sites: selects no site"),
    ("events:\n  - {kind: power-cap, sites: {sites: [qingpu]}}\n",
     "events[0]: give exactly one of fraction and kw"),
    ("policies: [optimizer, random]\n", "policies[1]: unknown planner 'random'"),
    ("overrides: {qingpu: {pools: {H100-80G: {count: many}}}}\n",
     "overrides.qingpu.pools.H100-80G.count: Input should be a valid integer"),
    ("planning_period_min: 0\n", "planning_period_min: Input should be greater than 0"),
])
def test_broken_scenario_names_the_field(tmp_path: Path, extra: str, message: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(BASE + extra)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert any(message in p for p in err.value.problems), err.value.problems
    assert str(path) in str(err.value)


def test_missing_topology_and_bad_yaml(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(BASE.replace(TOPOLOGY, "nowhere.yaml"))
    with pytest.raises(ScenarioError, match="topology: cannot read"):
        load_scenario(path)
    path.write_text("name: [unclosed\n")
    with pytest.raises(ScenarioError, match="invalid YAML"):
        load_scenario(path)


def test_cli_bad_scenario_exits_2_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(BASE + "colour: blue\n")
    result = CliRunner().invoke(app, ["simulate", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert lines == [f"{path}: colour: unknown field"]


def test_cli_writes_report(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(BASE)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["simulate", str(path), "--out", str(out),
                                      "--policies", "greedy-cheapest,local-only"])
    assert result.exit_code == 0, result.output
    import json

    report = json.loads((out / "report.json").read_text())
    assert [r["policy"] for r in report["headline"]] == ["greedy-cheapest", "local-only"]
    assert (out / "report.html").exists()
    for png in ("utilisation.png", "cost_wait.png", "flows.png", "overview.png"):
        assert (out / png).exists(), png
    table = (out / "headline.md").read_text().splitlines()
    assert table[0].startswith("| policy | cost CNY |") and len(table) == 4
    assert report["run"]["workers"] >= 1 and report["run"]["wall_s"] > 0
    assert "vs_best_heuristic" not in report["comparison"]  # no optimizer in this run


def test_cli_unknown_policy_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(BASE)
    result = CliRunner().invoke(app, ["simulate", str(path), "--out", str(tmp_path / "o"),
                                      "--policies", "magic"])
    assert result.exit_code == 2
    assert "unknown planner(s) magic" in result.output


def test_overrides_change_keys_before_checking(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(BASE + "events:\n  - {kind: site-down, site: qingpu, at_h: 1, for_h: 1}\n")
    plain = load_scenario(path)
    changed = load_scenario(path, ["workload.jobs_per_hour=50", "duration_h=3",
                                   "events.0.for_h=0.5", "workload.seed=7"])
    assert changed.duration_h == 3.0
    assert len(changed.workload.jobs) > 3 * len(plain.workload.jobs)
    assert changed.outages[0].end_s - changed.outages[0].start_s == 1800.0


@pytest.mark.parametrize(("override", "message"), [
    ("workload.jobs_per_hour=-1", "workload.jobs_per_hour: Input should be greater than 0"),
    ("workload.colour=blue", "workload.colour: unknown field"),
    ("events.3.for_h=1", "--set events.3.for_h: events.3 is not an index of the list"),
    ("name.first=x", "--set name.first: name is a single value"),
    ("duration_h", "--set 'duration_h': expected KEY=VALUE"),
    ("workload.seed=[1", "--set workload.seed: the value '[1' is not valid YAML"),
])
def test_cli_bad_override_exits_2_naming_it(tmp_path: Path, override: str, message: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(BASE + "events:\n  - {kind: site-down, site: qingpu, at_h: 1, for_h: 1}\n")
    result = CliRunner().invoke(app, ["simulate", str(path), "--out", str(tmp_path / "o"),
                                      "--set", override])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
