"""``isthmus testbed up|status|down`` against real processes, in a temporary directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scheduler.cli.main import app
from scheduler.testbed.site import Site

pytestmark = pytest.mark.testbed


def test_up_status_down(tmp_path: Path) -> None:
    runner = CliRunner()
    directory = str(tmp_path / "sites")
    up = runner.invoke(app, ["testbed", "up", "--sites", "1", "--dir", directory])
    try:
        assert up.exit_code == 0, up.output
        state = json.loads((tmp_path / "sites" / "state.json").read_text())
        assert [s["name"] for s in state["sites"]] == ["site-a"]
        assert Path(state["sites"][0]["kubeconfig"]).exists()

        status = runner.invoke(app, ["testbed", "status", "--dir", directory])
        assert status.exit_code == 0, status.output
        assert "kube-apiserver=up" in status.output
    finally:
        down = runner.invoke(app, ["testbed", "down", "--dir", directory])
    assert down.exit_code == 0, down.output
    site = Site.from_state(state["sites"][0])
    assert not any(site.alive().values())
    after = runner.invoke(app, ["testbed", "status", "--dir", directory])
    assert after.exit_code == 1 and "no sites" in after.output
