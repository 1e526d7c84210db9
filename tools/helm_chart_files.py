"""Copy the repository's default policy and topology into the Helm chart's ``files/``.

    .venv/bin/python tools/helm_chart_files.py            # rewrite the chart's copies
    .venv/bin/python tools/helm_chart_files.py --check    # exit 1 if a copy is out of date

Helm reads only files inside the chart directory (``.Files.Get``), and a chart is packaged and
installed on its own, without the repository around it. So the chart keeps byte-for-byte copies
of the files the service uses by default, and tests/helm/test_chart.py fails when they drift
from the originals: change ``policies/``, then run this script.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "helm" / "isthmus"

# chart file -> the repository file it copies
COPIES: dict[str, Path] = {
    "files/policy.yaml": ROOT / "policies" / "default.yaml",
    "files/topology.yaml": ROOT / "policies" / "topology" / "china-hubs.yaml",
}


def stale(chart: Path = CHART) -> list[str]:
    """The chart files that differ from (or lack) their original."""
    return [
        name
        for name, source in COPIES.items()
        if not (chart / name).is_file() or (chart / name).read_bytes() != source.read_bytes()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
    args = parser.parse_args(argv)
    out_of_date = stale()
    if args.check:
        for name in out_of_date:
            print(f"{CHART / name} differs from {COPIES[name]}: run tools/helm_chart_files.py")
        return 1 if out_of_date else 0
    for name in out_of_date:
        target = CHART / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(COPIES[name].read_bytes())
        print(f"wrote {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
