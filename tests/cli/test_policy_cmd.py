"""``isthmus policy``: validate, show and schema, through the real command line app."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from scheduler.cli.main import app
from scheduler.core.policy.load import parse_policy
from scheduler.core.policy.model import Policy

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = [
    ROOT / "policies" / "default.yaml",
    *sorted((ROOT / "policies" / "examples").glob("*.yaml")),
]

BROKEN = """\
name: broken
objective:
  energy: -1
  enrgy: 2
"""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_valid_files_exit_0_with_ok_per_file(runner: CliRunner) -> None:
    result = runner.invoke(app, ["policy", "validate", *map(str, SHIPPED)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"{path}: ok" for path in SHIPPED]


def test_broken_file_exits_2_with_located_problems(runner: CliRunner, tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.yaml", BROKEN)
    result = runner.invoke(app, ["policy", "validate", str(path)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{path}:3:11: objective.energy: must be >= 0, got -1",
        f"{path}:4:3: objective.enrgy: unknown key 'enrgy' (did you mean 'energy'?); allowed "
        "keys: energy, rental, transfer, queue, latency, queue_cny_per_accelerator_hour, "
        "wait_horizon_h, latency_cny_per_ms_hour",
    ]
    assert "ok" not in result.stdout
    assert "Traceback" not in result.output


def test_yaml_syntax_error_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    path = _write(tmp_path, "syntax.yaml", "objective:\n  energy: 1\n   rental: 2\n")
    result = runner.invoke(app, ["policy", "validate", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{path}:3:10: YAML syntax error: ")
    assert "Traceback" not in result.output


def test_one_bad_file_fails_the_run_but_all_are_checked(
    runner: CliRunner, tmp_path: Path
) -> None:
    good = _write(tmp_path, "good.yaml", "name: good\n")
    bad = _write(tmp_path, "bad.yaml", BROKEN)
    result = runner.invoke(app, ["policy", "validate", str(bad), str(good)])
    assert result.exit_code == 2
    assert f"{good}: ok" in result.stdout
    assert f"{bad}:3:11: objective.energy:" in result.stderr


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing.yaml", "cannot read: No such file or directory"),
        (lambda tmp: tmp, "cannot read: Is a directory"),
        (lambda tmp: _write(tmp, "latin1.yaml", "name: caf\xe9\n".encode("latin-1")),
         "cannot read: not UTF-8 text"),
    ],
    ids=["missing", "directory", "not-utf8"],
)
def test_unreadable_file_exits_2_with_one_line(
    runner: CliRunner, tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    path = make(tmp_path)
    result = runner.invoke(app, ["policy", "validate", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{path}: {message}")
    assert len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_show_prints_the_effective_policy_as_yaml(runner: CliRunner, tmp_path: Path) -> None:
    path = _write(tmp_path, "p.yaml", "name: mine\nobjective: {energy: 2}\n")
    result = runner.invoke(app, ["policy", "show", str(path)])
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(result.stdout)
    assert data["name"] == "mine"
    assert data["objective"]["energy"] == 2.0
    assert data["objective"]["rental"] == 1.0  # defaults filled in
    assert data["solver"]["seed"] == Policy().solver.seed
    assert parse_policy(result.stdout, "shown.yaml") == parse_policy(path.read_text(), "p")


def test_show_json(runner: CliRunner) -> None:
    path = ROOT / "policies" / "examples" / "strict-residency.yaml"
    result = runner.invoke(app, ["policy", "show", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["name"] == "strict-residency"
    assert data["spillover"][0]["from"]["labels"] == {"side": "east"}
    assert data["preemption"] == {
        "enabled": False, "min_priority_gap": 1, "only_checkpointable": True,
    }


def test_show_broken_file_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.yaml", BROKEN)
    result = runner.invoke(app, ["policy", "show", str(path)])
    assert result.exit_code == 2
    assert f"{path}:3:11: objective.energy: must be >= 0, got -1" in result.stderr
    assert result.stdout == ""


def test_schema_prints_json_schema(runner: CliRunner) -> None:
    result = runner.invoke(app, ["policy", "schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert schema["additionalProperties"] is False
    assert "objective" in schema["properties"]
