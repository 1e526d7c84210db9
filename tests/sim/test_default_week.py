"""The README's headline table is what `isthmus simulate default` produces.

The issue's "done when": the default scenario reproduces the README table on a fresh machine.
This runs the real command (five planners over a simulated week of ~100k jobs, a few minutes
on two cores) and compares every column of every row with the README, except the solver's
wall time per cycle, which depends on the machine.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEADER = "| policy | cost CNY |"
TIMING_COLUMNS = {"solver s/cycle"}

pytestmark = pytest.mark.slow


def _table(text: str, source: str) -> dict[str, dict[str, str]]:
    """The first markdown table whose header starts with ``HEADER``, as rows by policy."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(HEADER)]
    assert starts, f"{source}: no table starting with {HEADER!r}"
    start = starts[0]
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows: dict[str, dict[str, str]] = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert len(cells) == len(header), f"{source}: row {line!r} has {len(cells)} cells"
        rows[cells[0]] = dict(zip(header, cells, strict=True))
    return rows


def test_table_parser_reads_rows_and_rejects_ragged_ones() -> None:
    text = f"intro\n{HEADER} x |\n|:--|--:|--:|\n| a | 1 | 2 |\n| b | 3 | 4 |\n\nafter | 5 |\n"
    assert _table(text, "t") == {
        "a": {"policy": "a", "cost CNY": "1", "x": "2"},
        "b": {"policy": "b", "cost CNY": "3", "x": "4"},
    }
    with pytest.raises(AssertionError, match="has 2 cells"):
        _table(f"{HEADER} x |\n|--|--|--|\n| a | 1 |\n", "t")


def test_default_week_reproduces_the_readme_table(tmp_path: Path) -> None:
    readme = _table((ROOT / "README.md").read_text(encoding="utf-8"), "README.md")
    assert set(readme) == {
        "local-only", "first-fit", "greedy-cheapest", "spread-by-capacity", "optimizer"}
    isthmus = Path(sys.executable).with_name("isthmus")
    done = subprocess.run(
        [str(isthmus), "simulate", "default", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=1800, check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    fresh = _table((tmp_path / "headline.md").read_text(encoding="utf-8"), "headline.md")
    assert set(fresh) == set(readme)
    for policy, row in readme.items():
        assert set(fresh[policy]) == set(row), policy
        differ = {
            column: (row[column], fresh[policy][column])
            for column in row
            if column not in TIMING_COLUMNS and row[column] != fresh[policy][column]
        }
        assert not differ, f"{policy}: README vs fresh run {differ}"
