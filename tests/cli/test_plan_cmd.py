"""``isthmus plan`` and ``isthmus compare`` through the real command line (CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from scheduler.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "snapshot-china.json"
# policy files: the top level and the examples (topologies and scenarios are other formats)
POLICY_FILES = sorted([*(ROOT / "policies").glob("*.yaml"),
                       *(ROOT / "policies" / "examples").glob("*.yaml")])

runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


def example() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    return data


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def assert_bad_input(result: Any, *words: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    for word in words:
        assert word in result.stderr, result.stderr


# --------------------------------------------------------------------------- schema


def test_print_schema_outputs_json() -> None:
    result = invoke("plan", "--print-schema")
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert {"now", "sites", "pending", "running"} <= set(schema["properties"])


# --------------------------------------------------------------------------- bad input


def test_missing_snapshot_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    assert_bad_input(invoke("plan", "--snapshot", str(missing)), str(missing), "not found")


def test_snapshot_option_is_required() -> None:
    assert_bad_input(invoke("plan"), "--snapshot")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('{"now": 1, "sites": [', ("invalid JSON",)),
        ("", ("invalid JSON",)),
        ("[]", ("one object",)),
        ("\x00\x01", ("invalid JSON",)),
    ],
    ids=["truncated", "empty", "array", "binary"],
)
def test_broken_json(tmp_path: Path, content: str, words: tuple[str, ...]) -> None:
    path = write(tmp_path, "broken.json", content)
    assert_bad_input(invoke("plan", "-s", str(path)), str(path), *words)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"now": "\xe9"}')
    assert_bad_input(invoke("plan", "-s", str(path)), str(path), "UTF-8")


def test_schema_error_names_file_path_and_line(tmp_path: Path) -> None:
    data = example()
    data["pending"][3]["gang"]["workers"] = 0
    data["pending"][5]["datasets"] = ["no-such-dataset"]
    path = write(tmp_path, "bad.json", json.dumps(data, indent=2))
    result = invoke("plan", "-s", str(path))
    assert_bad_input(result, f"{path}:", "pending[3].gang.workers")
    data["pending"][3]["gang"]["workers"] = 1
    path = write(tmp_path, "bad.json", json.dumps(data, indent=2))
    result = invoke("plan", "-s", str(path))
    assert_bad_input(result, "pending[5].datasets[0]", "unknown dataset 'no-such-dataset'")


def test_unknown_baseline() -> None:
    result = invoke("plan", "-s", str(EXAMPLE), "--baseline", "round-robin")
    assert_bad_input(result, "unknown planner 'round-robin'", "greedy-cheapest")


def test_bad_policy(tmp_path: Path) -> None:
    policy = write(tmp_path, "policy.yaml", "objective: {energy: -1}\nnonsense: 1\n")
    result = invoke("plan", "-s", str(EXAMPLE), "--policy", str(policy))
    assert_bad_input(result, str(policy), "objective.energy", "nonsense")


def test_missing_policy(tmp_path: Path) -> None:
    policy = tmp_path / "absent.yaml"
    assert_bad_input(invoke("plan", "-s", str(EXAMPLE), "-p", str(policy)), str(policy))


def test_policy_naming_an_unknown_planner(tmp_path: Path) -> None:
    policy = write(tmp_path, "policy.yaml", "planner: round-robin\n")
    result = invoke("plan", "-s", str(EXAMPLE), "-p", str(policy))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_explain_unknown_job() -> None:
    result = invoke("plan", "-s", str(EXAMPLE), "-b", "first-fit", "--explain", "ghost-job")
    assert_bad_input(result, "ghost-job")


def test_unwritable_out(tmp_path: Path) -> None:
    out = tmp_path / "missing-dir" / "plan.json"
    result = invoke("plan", "-s", str(EXAMPLE), "-b", "first-fit", "--out", str(out))
    assert_bad_input(result, str(out), "cannot write")


# --------------------------------------------------------------------------- valid runs


def test_greedy_json_plan_covers_every_pending_job() -> None:
    result = invoke("plan", "-s", str(EXAMPLE), "--baseline", "greedy-cheapest", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)  # stdout is the plan alone; the summary is on stderr
    assert plan["planner"] == "greedy-cheapest"
    placed = [p["job"] for p in plan["placements"]]
    waiting = [w["job"] for w in plan["waits"]]
    pending = [job["id"] for job in example()["pending"]]
    assert sorted(placed + waiting) == sorted(pending)
    assert plan["placed"] == len(placed) and plan["waiting"] == len(waiting)
    assert plan["objective"] >= plan["lower_bound"] - 1e-6
    assert 0.0 <= plan["gap"] <= 1.0
    for w in plan["waits"]:
        assert w["reason"] and w["message"] and "total" in w["cost"]
    assert "explanations" not in plan
    assert "greedy-cheapest" in result.stderr


def test_summary_and_out_file(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    result = invoke("plan", "-s", str(EXAMPLE), "-b", "first-fit", "--out", str(out),
                    "--explain", "infer-01", "-e", "batch-07")
    assert result.exit_code == 0, result.output
    for words in ("first-fit", "objective", "CNY", "placed", "waiting", "lower bound", "gap",
                  "solve time", "jobs per site", "waits per reason", "why infer-01",
                  "why batch-07", "no-accelerator"):
        assert words in result.stdout, words
    plan = json.loads(out.read_text(encoding="utf-8"))
    assert set(plan["explanations"]) == {"infer-01", "batch-07"}
    assert plan["explanations"]["batch-07"]["summary"].startswith("waiting")


@pytest.mark.parametrize("planner", ["local-only", "first-fit", "greedy-cheapest",
                                     "spread-by-capacity", "optimizer"])
def test_every_planner_runs(planner: str) -> None:
    result = invoke("plan", "-s", str(EXAMPLE), "-b", planner, "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["placed"] + plan["waiting"] == len(example()["pending"])


@pytest.mark.parametrize("policy", POLICY_FILES, ids=[p.name for p in POLICY_FILES])
def test_shipped_policies_plan_the_example(policy: Path) -> None:
    result = invoke("plan", "-s", str(EXAMPLE), "-p", str(policy), "-b", "greedy-cheapest",
                    "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["planner"] == "greedy-cheapest"


def test_policy_picks_the_planner(tmp_path: Path) -> None:
    policy = write(tmp_path, "policy.yaml", "planner: spread-by-capacity\n")
    result = invoke("plan", "-s", str(EXAMPLE), "-p", str(policy), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["planner"] == "spread-by-capacity"
    result = invoke("plan", "-s", str(EXAMPLE), "-p", str(policy), "-b", "first-fit", "--json")
    assert json.loads(result.stdout)["planner"] == "first-fit"  # --baseline wins


# --------------------------------------------------------------------------- compare


def test_compare_runs_every_planner() -> None:
    result = invoke("compare")
    assert result.exit_code == 0, result.output
    for name in ("optimizer", "local-only", "first-fit", "greedy-cheapest",
                 "spread-by-capacity", "east", "west", "gap"):
        assert name in result.stdout, name


def test_compare_with_a_missing_snapshot(tmp_path: Path) -> None:
    assert_bad_input(invoke("compare", "--snapshot", str(tmp_path / "x.json")), "not found")
