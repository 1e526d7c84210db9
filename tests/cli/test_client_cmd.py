"""``isthmus submit | jobs | job | logs | cancel | explain | sites | policy dry-run`` against a
live server (tests/service/live.py), through the real command line app."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from scheduler.cli.main import app
from tests.service.live import LiveService, closed_port_url, live_service

FLAGS = ["--entrypoint", "python -c 'print(1)'", "--gpus", "8", "--type", "H20-96G",
         "--runtime-h", "1"]

JOB_YAML = """\
# a training job
name: from-file
entrypoint: python train.py --epochs 3
gang:
  workers: 2
  accelerators_per_worker: 8
  allowed_types: [H20-96G, A100-80G]
runtime_h: {H20-96G: 1.0, A100-80G: 1.5}
priority: 3
labels: {team: vision}
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    with live_service(tmp_path_factory.mktemp("isthmus")) as server:
        yield server


class Isthmus:
    def __init__(self, live: LiveService) -> None:
        self.live = live
        self.runner = CliRunner()

    def __call__(self, *args: str, token: str | None = None, url: str | None = None) -> Result:
        env = {"ISTHMUS_URL": url or self.live.url,
               "ISTHMUS_TOKEN": token or self.live.acme_token, "COLUMNS": "200"}
        return self.runner.invoke(app, list(args), env=env)

    def json(self, *args: str, **kw: Any) -> Any:
        result = self(*args, "--json", **kw)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)


@pytest.fixture
def isthmus(live: LiveService) -> Isthmus:
    return Isthmus(live)


def write(tmp_path: Path, text: str, name: str = "job.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def one_line_error(result: Result, code: int) -> str:
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_submit_with_flags_then_see_it_in_jobs_and_job(isthmus: Isthmus) -> None:
    job = isthmus.json("submit", "--name", "from-flags", *FLAGS, "--label", "team=nlp",
                       "--priority", "2", "--deadline", "2030-01-01T08:00:00+08:00")
    assert (job["state"], job["tenant"], job["name"]) == ("PENDING", "acme", "from-flags")
    assert job["spec"]["deadline"] == datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    assert job["spec"]["labels"] == {"team": "nlp"} and job["spec"]["priority"] == 2
    table = isthmus("jobs")
    assert table.exit_code == 0, table.output
    row = next(line for line in table.stdout.splitlines() if job["id"] in line)
    assert "from-flags" in row and "1x8" in row
    assert job["id"] in {j["id"] for j in isthmus.json("jobs")}
    assert isthmus.json("job", job["id"])["id"] == job["id"]
    human = isthmus("job", job["id"])
    assert human.exit_code == 0 and "submitted" in human.stdout and "events" in human.stdout


def test_submit_from_a_job_file_and_wait(isthmus: Isthmus, tmp_path: Path) -> None:
    path = write(tmp_path, JOB_YAML)
    result = isthmus("submit", "-f", str(path), "--name", "overridden", "--wait")
    assert result.exit_code == 0, result.output
    assert "SUCCEEDED" in result.stdout and "overridden" in result.stdout
    job = isthmus.json("jobs", "--limit", "1")[0]
    assert job["name"] == "overridden" and job["state"] == "SUCCEEDED"
    assert job["spec"]["runtime_h"] == {"H20-96G": 1.0, "A100-80G": 1.5}
    assert (job["spec"]["workers"], job["spec"]["labels"]) == (2, {"team": "vision"})
    logs = isthmus("logs", job["id"])
    assert logs.exit_code == 0 and "finished: SUCCEEDED" in logs.stdout
    lines = [json.loads(x) for x in isthmus("logs", job["id"], "--json").stdout.splitlines()]
    assert lines[-1] == {"job": job["id"], "line": lines[-1]["line"]}
    why = isthmus.json("explain", job["id"])
    assert why["site"] == job["site"]
    assert job["site"] in isthmus("explain", job["id"]).stdout


def test_a_broken_yaml_file_names_the_file_and_line(isthmus: Isthmus, tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nentrypoint: [python t.py\ngang:\n")
    line = one_line_error(isthmus("submit", "-f", str(path)), 2)
    assert f"{path}:3:" in line and "invalid YAML" in line


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        (JOB_YAML.replace("workers: 2", "workers: 0"), ":5:3: gang.workers:", "greater than"),
        (JOB_YAML.replace("  workers: 2", "  workers: 2\n  gpus: 8"), ":6:3: gang.gpus:",
         "unknown field"),
        (JOB_YAML.replace("priority: 3", "priority: high"), ":9:1: priority:", "integer"),
        ("- name: x\n", ":1:1:", "mapping"),
    ],
)
def test_an_invalid_job_file_names_the_file_line_and_field(
    isthmus: Isthmus, tmp_path: Path, text: str, where: str, words: str,
) -> None:
    path = write(tmp_path, text)
    line = one_line_error(isthmus("submit", "-f", str(path)), 2)
    assert f"{path}{where}" in line and words in line


def test_a_missing_job_file(isthmus: Isthmus, tmp_path: Path) -> None:
    line = one_line_error(isthmus("submit", "-f", str(tmp_path / "nope.yaml")), 2)
    assert "nope.yaml: cannot read" in line


def test_an_unknown_accelerator_type_names_the_field(isthmus: Isthmus, tmp_path: Path) -> None:
    line = one_line_error(isthmus("submit", "--name", "x", *FLAGS, "--type", "TPU-v9"), 2)
    assert "gang.allowed_types[1] (--type)" in line and "TPU-v9" in line
    path = write(tmp_path, JOB_YAML.replace("A100-80G]", "TPU-v9]"))
    line = one_line_error(isthmus("submit", "-f", str(path)), 2)
    assert f"{path}:7:" in line and "gang.allowed_types[1]" in line


def test_missing_and_invalid_flags(isthmus: Isthmus) -> None:
    line = one_line_error(isthmus("submit", "--name", "x"), 2)
    assert "required; give --entrypoint" in line
    line = one_line_error(isthmus("submit", "--name", "x", *FLAGS, "--workers", "0"), 2)
    assert "gang.workers (--workers)" in line
    line = one_line_error(isthmus("jobs", "--state", "LOST"), 2)
    assert "unknown state 'LOST'" in line


def test_server_refusals_exit_2(isthmus: Isthmus, live: LiveService) -> None:
    job = isthmus.json("submit", "--name", "mine", *FLAGS)
    line = one_line_error(isthmus("job", job["id"], token=live.beta_token), 2)
    assert "no job" in line
    line = one_line_error(isthmus("jobs", token="not-a-known-token-000"), 2)
    assert "bearer token" in line


def test_an_unreachable_server_exits_1(isthmus: Isthmus) -> None:
    line = one_line_error(isthmus("jobs", url=closed_port_url()), 1)
    assert "cannot reach Isthmus" in line


def test_cancel_and_sites(isthmus: Isthmus) -> None:
    job = isthmus.json("submit", "--name", "long", *FLAGS[:-1], "5000")
    result = isthmus("cancel", job["id"])
    assert result.exit_code == 0 and job["id"] in result.stdout
    assert isthmus.json("cancel", job["id"])["cancel_requested"] is True
    sites = isthmus.json("sites")
    assert {"zhongwei", "zhangjiakou"} <= {s["name"] for s in sites}
    table = isthmus("sites")
    assert table.exit_code == 0 and "zhongwei" in table.stdout and "H20-96G" in table.stdout


def test_policy_dry_run(isthmus: Isthmus, live: LiveService, tmp_path: Path) -> None:
    policy = Path(__file__).resolve().parents[2] / "policies" / "examples" / "cost-first.yaml"
    change = isthmus.json("policy", "dry-run", str(policy), token=live.operator_token)
    assert {"moved", "current", "proposed"} <= set(change)
    human = isthmus("policy", "dry-run", str(policy), token=live.operator_token)
    assert human.exit_code == 0 and "would move" in human.stdout
    line = one_line_error(isthmus("policy", "dry-run", str(policy)), 2)
    assert "operators only" in line
    bad = write(tmp_path, "name: bad\nobjective:\n  energy: -1\n", "policy.yaml")
    result = isthmus("policy", "dry-run", str(bad), token=live.operator_token)
    assert result.exit_code == 2 and f"{bad}:3:" in result.stderr
