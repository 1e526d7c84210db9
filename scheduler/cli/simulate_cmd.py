"""``isthmus simulate``: run a scenario for several policies and write the evaluation report.

    isthmus simulate policies/scenarios/small.yaml --out /tmp/small
    isthmus simulate default --policies optimizer,local-only --out report/
    isthmus simulate small --out /tmp/small --json > report.json   # table goes to stderr

SCENARIO is a scenario file, or the name of one shipped in ``policies/scenarios/``. Writes
``OUT/report.json`` (every figure) and ``OUT/report.html`` (with PNG plots when matplotlib is
installed). A bad scenario file exits with status 2 and one line per problem on stderr.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from scheduler.core.planners import PLANNERS
from scheduler.sim.engine import simulate
from scheduler.sim.report import build_report, write_html
from scheduler.sim.scenario import ScenarioError, load_scenario

EXIT_INVALID = 2
SHIPPED = Path(__file__).resolve().parents[2] / "policies" / "scenarios"


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_cmd)


def _resolve(scenario: str) -> Path:
    path = Path(scenario)
    if not path.exists() and path.suffix == "" and (SHIPPED / f"{scenario}.yaml").exists():
        return SHIPPED / f"{scenario}.yaml"
    return path


def simulate_cmd(
    scenario: Annotated[str, typer.Argument(
        metavar="SCENARIO", help="Scenario file (YAML), or a shipped name: default, small.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for report.json and "
                                      "report.html.", file_okay=False)],
    policies: Annotated[
        str | None,
        typer.Option("--policies", "-p", metavar="A,B,...",
                     help=f"Planners to compare (default: the scenario's): {', '.join(PLANNERS)}.",
                     show_default=False),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Also print report.json on stdout (table on stderr).")
    ] = False,
) -> None:
    """Simulate a scenario in virtual time for each policy and write the report."""
    try:
        sc = load_scenario(_resolve(scenario))
    except ScenarioError as err:
        for problem in err.problems:
            typer.echo(f"{err.source}: {problem}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    names = list(sc.policies)
    if policies is not None:
        names = [p.strip() for p in policies.split(",") if p.strip()]
        unknown = [p for p in names if p not in PLANNERS]
        if unknown or not names:
            typer.echo(f"--policies: unknown planner(s) {', '.join(unknown) or '(none given)'}; "
                       f"choose from {', '.join(PLANNERS)}", err=True)
            raise typer.Exit(EXIT_INVALID)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        typer.echo(f"{out}: cannot create: {err.strerror or err}", err=True)
        raise typer.Exit(EXIT_INVALID) from None

    console = Console(stderr=True, highlight=False)
    results = []
    with Progress(TextColumn("{task.description:<20}"), BarColumn(), TextColumn(
            "{task.percentage:>3.0f}%"), TimeElapsedColumn(), console=console,
            transient=False) as progress:
        for name in names:
            task = progress.add_task(name, total=1.0)

            def advance(fraction: float, task: TaskID = task) -> None:
                progress.update(task, completed=fraction)

            results.append(simulate(sc, name, progress=advance))
    report = build_report(results)
    text = json.dumps(report, indent=1, ensure_ascii=False)
    (out / "report.json").write_text(text + "\n", encoding="utf-8")
    plotted = write_html(report, out)
    if as_json:
        typer.echo(text)
    _table(console, report)
    console.print(f"report written to {out / 'report.json'} and {out / 'report.html'}"
                  + ("" if plotted else " (no plots: matplotlib is not installed)"))


def _table(console: Console, report: dict[str, Any]) -> None:
    sc = report["scenario"]
    table = Table(title=f"{sc['name']}: {sc['jobs']} jobs, {sc['duration_h']:g} h, "
                        f"planning every {sc['planning_period_min']:g} min")
    columns = [("policy", "policy"), ("cost CNY", "cost_cny"), ("CNY/acc-h", "cny_per_acc_h"),
               ("util E", "util_east"), ("util W", "util_west"), ("wait p50 h", "wait_p50_h"),
               ("wait p99 h", "wait_p99_h"), ("waiting", "waiting"),
               ("deadline miss", "deadline_missed"), ("SLO miss", "slo_misses"),
               ("residency viol.", "residency_violations"), ("moved TB", "moved_tb"),
               ("solver s/cycle", "solver_s_mean")]
    for title, _ in columns:
        table.add_column(title, justify="left" if title == "policy" else "right")
    for row in report["headline"]:
        cells = []
        for _, key in columns:
            v = row[key]
            if key.startswith("util_"):
                cells.append(f"{v:.0%}")
            elif key == "cost_cny":
                cells.append(f"{v:,.0f}")
            else:
                cells.append(str(v))
        table.add_row(*cells)
    console.print(table)
