"""``isthmus demo`` end to end: the service, a real Ray head, simulated sites; nothing left."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _demo_processes() -> list[str]:
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "isthmus-demo-" in cmdline:
            out.append(f"{proc.name}: {cmdline[:120]}")
    return out


def test_the_demo_runs_every_job_to_the_end_and_leaves_no_process() -> None:
    pytest.importorskip("ray.job_submission", reason="ray is not installed")
    result = subprocess.run(
        [sys.executable, "-m", "scheduler.cli.main", "demo", "--jobs", "10", "--spread", "2",
         "--speedup", "5000", "--timeout", "240"],
        capture_output=True, text=True, timeout=400,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "every job reached an end state" in result.stdout
    assert "ray" in result.stdout  # the Shanghai site's adapter column
    assert "succeeded 10" in result.stdout
    assert _demo_processes() == []
