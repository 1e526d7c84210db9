"""``isthmus simulate``: run a scenario for several policies and write the evaluation report.

    isthmus simulate policies/scenarios/small.yaml --out /tmp/small
    isthmus simulate default --policies optimizer,local-only --out report/
    isthmus simulate small --out /tmp/small --json > report.json   # table goes to stderr

SCENARIO is a scenario file, or the name of one shipped in ``policies/scenarios/``. Writes
``OUT/report.json`` (every figure) and ``OUT/report.html`` (with PNG plots when matplotlib is
installed). The planners run in parallel, one per worker process (``--workers``, default: one
per core, at most one per planner). A bad scenario file exits with status 2 and one line per
problem on stderr.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from scheduler.core.planners import PLANNERS
from scheduler.sim.parallel import default_workers, run_policies
from scheduler.sim.report import (
    COLUMNS,
    comparison_lines,
    markdown_table,
    report_from,
    table_rows,
    write_html,
)
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
    workers: Annotated[
        int | None,
        typer.Option("--workers", "-j", min=1, metavar="N",
                     help="Worker processes, one planner each (default: one per core).",
                     show_default=False),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE",
                     help="Change one key of the scenario before it is checked, e.g. "
                     "workload.jobs_per_hour=800 (repeatable; lists by index: events.0.for_h=12).",
                     show_default=False),
    ] = None,
) -> None:
    """Simulate a scenario in virtual time for each policy and write the report."""
    started = time.perf_counter()
    try:
        sc = load_scenario(_resolve(scenario), overrides or ())
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
        names = list(dict.fromkeys(names))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        typer.echo(f"{out}: cannot create: {err.strerror or err}", err=True)
        raise typer.Exit(EXIT_INVALID) from None

    console = Console(stderr=True, highlight=False)
    n_workers = min(workers or default_workers(len(names)), len(names))
    console.print(f"{sc.name}: {len(sc.workload.jobs)} jobs, {sc.duration_h:g} h, "
                  f"{len(names)} planner(s) on {n_workers} worker(s)")
    # no refresh thread: the workers are forked from this process, which then redraws the
    # bars itself whenever a worker reports
    with Progress(TextColumn("{task.description:<20}"), BarColumn(), TextColumn(
            "{task.percentage:>3.0f}%"), TimeElapsedColumn(), console=console,
            auto_refresh=False, transient=False) as progress:
        tasks = {name: progress.add_task(name, total=1.0) for name in names}

        def advance(name: str, fraction: float) -> None:
            progress.update(tasks[name], completed=fraction)
            progress.refresh()

        summaries = run_policies(sc, names, workers=n_workers, progress=advance)
    report = report_from(sc, summaries)
    report["run"] = {"wall_s": round(time.perf_counter() - started, 1), "workers": n_workers}
    text = json.dumps(report, indent=1, ensure_ascii=False)
    (out / "report.json").write_text(text + "\n", encoding="utf-8")
    (out / "headline.md").write_text(markdown_table(report), encoding="utf-8")
    plotted = write_html(report, out)
    if as_json:
        typer.echo(text)
    _table(console, report)
    cpu = sum(m.get("cpu_s", 0.0) for m in report["policies"].values())
    console.print(f"wall time {time.perf_counter() - started:.0f} s on {n_workers} worker(s) "
                  f"(planners' CPU {cpu:.0f} s); report in {out}: report.json, report.html, "
                  "headline.md" + ("" if plotted else " (no plots: matplotlib is not installed)"))


def _table(console: Console, report: dict[str, Any]) -> None:
    sc = report["scenario"]
    table = Table(title=f"{sc['name']}: {sc['jobs']} jobs, {sc['duration_h']:g} h, "
                        f"planning every {sc['planning_period_min']:g} min")
    for title, _, _ in COLUMNS:
        table.add_column(title, justify="left" if title == "policy" else "right")
    for cells in table_rows(report):
        table.add_row(*cells)
    # a pipe or a file gets the whole table, not one squeezed to 80 columns
    wide = console if console.is_terminal else Console(stderr=True, highlight=False, width=220)
    wide.print(table)
    for line in comparison_lines(report):
        wide.print(line)
