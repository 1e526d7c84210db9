"""The Kubernetes site benchmark end to end at a tiny size (one real testbed site)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scheduler.testbed import versions

ROOT = Path(__file__).resolve().parents[2]
KEYS = {
    "nodes",
    "node_lease_s",
    "rayjobs",
    "threads",
    "site_start_s",
    "inventory_sync_s",
    "cpu_ms_per_rayjob",
    "submit_wall_s",
    "rayjobs_per_s",
    "submit_p50_ms",
    "submit_p99_ms",
    "rayjobs_at_site",
    "node_changes",
    "inventory_latency_p50_ms",
    "inventory_latency_max_ms",
    "meets_targets",
    "targets",
    "load_avg",
}

pytestmark = [
    pytest.mark.testbed,
    pytest.mark.skipif(
        bool(versions.missing_binaries()),
        reason=f"testbed binaries missing in {versions.bin_dir()}: run `make testbed`",
    ),
]


@pytest.fixture(scope="module")
def row() -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "kubernetes.py"),
            "--nodes", "20",
            "--rayjobs", "50",
            "--changes", "4",
            "--threads", "4",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        check=False,
    )
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"stdout: {out.stdout!r}\nstderr: {out.stderr}"
    parsed: dict[str, Any] = json.loads(lines[0])
    assert out.returncode == 0, f"errors: {parsed.get('errors')}\nstderr: {out.stderr}"
    return parsed


def test_every_figure_is_reported(row: dict[str, Any]) -> None:
    assert set(row) >= KEYS
    assert "errors" not in row
    assert (row["nodes"], row["rayjobs"], row["node_changes"]) == (20, 50, 4)


def test_figures_are_consistent(row: dict[str, Any]) -> None:
    assert row["rayjobs_at_site"] == 50
    assert row["rayjobs_per_s"] == pytest.approx(50 / row["submit_wall_s"], rel=0.01)
    assert 0 < row["submit_p50_ms"] <= row["submit_p99_ms"]
    assert 0 < row["inventory_latency_p50_ms"] <= row["inventory_latency_max_ms"]
    assert row["inventory_latency_max_ms"] <= 1000  # the target holds even at this size
    assert row["meets_targets"] == (
        row["rayjobs_per_s"] >= 200 and row["inventory_latency_max_ms"] <= 1000
    )
    assert {"kube-apiserver", "etcd", "isthmus (this process)"} <= set(row["cpu_ms_per_rayjob"])
