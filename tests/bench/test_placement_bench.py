"""The placement benchmark end to end on a tiny size, and the instance generator."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bench.instances import TYPES, make_instance, residency_bound

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"jobs", "sites", "wall_s", "peak_rss_mb", "objective", "lower_bound", "gap",
        "naive_wall_s", "naive_gap", "baselines"}
BASELINES = {"local-only", "first-fit", "greedy-cheapest", "spread-by-capacity"}


@pytest.fixture(scope="module")
def bench_row() -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "placement.py"), "--sizes", "200x8",
         "--naive-time-limit", "2", "--json"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, check=False,
    )
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"stdout: {out.stdout!r}\nstderr: {out.stderr}"
    row: dict[str, Any] = json.loads(lines[0])
    assert out.returncode == 0, f"errors: {row.get('errors')}\nstderr: {out.stderr}"
    return row


def test_bench_reports_every_key(bench_row: dict[str, Any]) -> None:
    assert set(bench_row) >= KEYS
    assert (bench_row["jobs"], bench_row["sites"]) == (200, 8)
    assert "errors" not in bench_row


def test_bench_figures_are_consistent(bench_row: dict[str, Any]) -> None:
    objective, lower = bench_row["objective"], bench_row["lower_bound"]
    assert isinstance(objective, float) and isinstance(lower, float)
    assert lower <= objective + 1e-6
    assert isinstance(bench_row["gap"], float) and bench_row["gap"] >= -1e-9
    assert isinstance(bench_row["wall_s"], float) and bench_row["wall_s"] > 0
    assert isinstance(bench_row["peak_rss_mb"], float) and bench_row["peak_rss_mb"] > 0
    assert isinstance(bench_row["naive_wall_s"], float) and bench_row["naive_wall_s"] > 0
    naive_gap = bench_row["naive_gap"]
    if naive_gap is None:  # no feasible naive solution within 2 s: the status says so
        assert bench_row["naive_status"] in {"UNKNOWN", "MODEL_INVALID", "INFEASIBLE"}
    else:
        assert naive_gap >= -1e-9
        assert bench_row["naive_violations"] == 0


def test_bench_runs_every_baseline(bench_row: dict[str, Any]) -> None:
    baselines = bench_row["baselines"]
    assert isinstance(baselines, dict) and set(baselines) == BASELINES
    for name, figures in baselines.items():
        assert figures["objective"] is not None, name
        assert figures["gap"] >= -1e-9, name


def test_make_instance_is_deterministic_per_seed() -> None:
    a = make_instance(300, 10, seed=7)
    b = make_instance(300, 10, seed=7)
    c = make_instance(300, 10, seed=8)
    assert a == b
    assert a[0].pending != c[0].pending


@pytest.mark.parametrize(("jobs", "sites"), [(200, 8), (2000, 30)])
def test_make_instance_shape(jobs: int, sites: int) -> None:
    snapshot, policy, now = make_instance(jobs, sites, seed=1)
    assert len(snapshot.pending) == jobs
    assert len(snapshot.sites) == sites
    assert {p.type for s in snapshot.sites for p in s.pools} == set(TYPES)
    assert all(2 <= len(s.pools) <= 4 for s in snapshot.sites)
    assert all(p.count % 8 == 0 and 0 <= p.available <= p.count
               for s in snapshot.sites for p in s.pools)
    assert all(1 <= len(j.gang.allowed_types) <= 3 and len(j.runtime_h) == 1
               for j in snapshot.pending)
    # ~20% of jobs read a residency-pinned dataset
    assert 0.12 <= residency_bound(snapshot) / jobs <= 0.28
    # demand exceeds free capacity moderately
    demand = sum(j.gang.accelerators for j in snapshot.pending)
    free = sum(p.available for s in snapshot.sites for p in s.pools)
    assert 1.1 <= demand / free <= 1.6
    # ~40% of sites west; ~30% inference with users in a city and an SLO
    sides = Counter(s.labels["side"] for s in snapshot.sites)
    assert sides["west"] == round(0.4 * sites)
    inference = [j for j in snapshot.pending if j.user_location is not None]
    assert 0.2 <= len(inference) / jobs <= 0.4
    assert all(j.max_latency_ms is not None for j in inference)
    assert any(t.quota_accelerators for t in policy.tenants.values())
    assert policy.power_caps_kw
    assert now > 0


def test_jobs_come_from_a_moderate_number_of_shapes() -> None:
    snapshot, _, _ = make_instance(5000, 40, seed=2)
    shapes = {(j.tenant, j.gang, j.datasets, j.user_location, j.max_latency_ms,
               tuple(j.runtime_h)) for j in snapshot.pending}
    assert len(shapes) <= 200
    runtimes = {h for j in snapshot.pending for h in j.runtime_h.values()}
    assert len(runtimes) > 0.9 * len(snapshot.pending)
