"""``isthmus plan``: plan one snapshot file and show (or write) the plan.

    isthmus plan --snapshot docs/examples/snapshot-china.json
    isthmus plan --snapshot s.json --policy policies/prod.yaml --baseline greedy-cheapest
    isthmus plan --snapshot s.json --json > plan.json       # summary goes to stderr
    isthmus plan --snapshot s.json --out plan.json --explain job-0007
    isthmus plan --print-schema > snapshot.schema.json

Bad input (a missing or unreadable file, broken JSON, a schema error, a bad policy, an unknown
planner, an unknown job for --explain) exits with status 2 and one line per problem on stderr,
``FILE:LINE:COL: path: message`` where the position is known. A planner that cannot run
(the optimizer before it exists) exits with status 1.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from scheduler.core.ids import JobId
from scheduler.core.model import Snapshot
from scheduler.core.plan import Plan
from scheduler.core.plan_json import jobs_per_site, plan_to_dict, waits_per_reason
from scheduler.core.policy.model import Policy
from scheduler.core.snapshot_file import SnapshotError, json_schema, parse_snapshot

if TYPE_CHECKING:
    from scheduler.core.planners import Planner

EXIT_INVALID = 2  # bad input: nothing was planned
EXIT_FAILED = 1  # the planner could not run


class InputError(Exception):
    """Bad input, already phrased for the user (one line per problem)."""


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)


def plan(
    snapshot: Annotated[
        Path | None,
        typer.Option("--snapshot", "-s", help="Snapshot file (JSON) to plan.",
                     show_default=False, dir_okay=False),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option("--policy", "-p", help="Policy file (YAML); default: the default policy.",
                     show_default=False, dir_okay=False),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option("--baseline", "-b", metavar="NAME",
                     help="Planner to use instead of the policy's: optimizer, local-only, "
                          "first-fit, greedy-cheapest or spread-by-capacity.",
                     show_default=False),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the plan as JSON on stdout (summary on stderr).")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the plan as JSON to this file.",
                     show_default=False, dir_okay=False),
    ] = None,
    explain: Annotated[
        list[str] | None,
        typer.Option("--explain", "-e", metavar="JOB",
                     help="Explain why JOB is placed where it is or waits (repeatable).",
                     show_default=False),
    ] = None,
    print_schema: Annotated[
        bool, typer.Option("--print-schema", help="Print the snapshot JSON Schema and exit.")
    ] = False,
) -> None:
    """Plan a snapshot: where every pending job runs, or why it waits."""
    if print_schema:
        typer.echo(json.dumps(json_schema(), indent=2, ensure_ascii=False))
        return
    try:
        if snapshot is None:
            raise InputError("--snapshot FILE is required (or --print-schema)")
        snap, now = load_snapshot(snapshot)
        pol = load_policy(policy)
        name = baseline if baseline is not None else pol.planner
        planner = _planner(name, baseline is not None)
        explained = _explained(explain or [], snap, snapshot)
    except InputError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(EXIT_INVALID) from None

    started = time.perf_counter()
    try:
        result = planner(snap, pol, now)
    except NotImplementedError:
        typer.echo(f"error: planner {name!r} is not available yet (not implemented); "
                   "try --baseline greedy-cheapest", err=True)
        raise typer.Exit(EXIT_FAILED) from None
    elapsed = time.perf_counter() - started

    data = plan_to_dict(result, explain=explained)
    if not result.solve_s:  # baselines leave timing to the caller (the core has no clock)
        data["solve_s"] = elapsed
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if out is not None:
        try:
            out.write_text(text + "\n", encoding="utf-8")
        except OSError as err:
            typer.echo(f"{out}: cannot write: {err.strerror or err}", err=True)
            raise typer.Exit(EXIT_INVALID) from None
    if as_json:
        typer.echo(text)
    console = Console(stderr=as_json, highlight=False, soft_wrap=False)
    print_summary(console, result, snap, data["solve_s"], explained)
    if out is not None:
        console.print(f"plan written to {escape(str(out))}")


# --------------------------------------------------------------------------- inputs


def read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: {what} file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a {what} file") from None
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: cannot read {what}: not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read {what}: {err.strerror or err}") from None


def load_snapshot(path: Path) -> tuple[Snapshot, float]:
    text = read_text(path, "snapshot")
    try:
        return parse_snapshot(text, str(path))
    except SnapshotError as err:
        raise InputError(str(err)) from None


def load_policy(path: Path | None) -> Policy:
    if path is None:
        return Policy()
    text = read_text(path, "policy")
    from scheduler.core.policy.load import PolicyError, parse_policy

    try:
        return parse_policy(text, str(path))
    except PolicyError as err:
        raise InputError("\n".join(str(p) for p in err.problems)) from None


def _planner(name: str, from_flag: bool) -> Planner:
    from scheduler.core.planners import UnknownPlanner, get_planner  # imports the solvers

    try:
        return get_planner(name)
    except UnknownPlanner as err:
        where = "--baseline" if from_flag else "the policy's planner"
        raise InputError(f"{where}: {err}") from None


def _explained(jobs: list[str], snapshot: Snapshot, path: Path) -> list[JobId]:
    known = {job.id for job in snapshot.pending}
    unknown = [j for j in jobs if j not in known]
    if unknown:
        raise InputError("\n".join(f"--explain: job {j!r} is not pending in {path}"
                                   for j in unknown))
    return [JobId(j) for j in jobs]


# --------------------------------------------------------------------------- summary


def print_summary(
    console: Console,
    plan: Plan,
    snapshot: Snapshot,
    solve_s: float,
    explained: list[JobId],
) -> None:
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("planner", escape(plan.planner))
    head.add_row("objective", f"{plan.objective:,.2f} CNY")
    head.add_row("placed", f"{len(plan.placements)} of {len(snapshot.pending)} pending")
    head.add_row("waiting", str(len(plan.waits)))
    head.add_row("lower bound", f"{plan.lower_bound:,.2f} CNY")
    head.add_row("gap", f"{plan.gap:.2%}")
    head.add_row("solve time", f"{solve_s:.3f} s")
    console.print(head)

    per_site = jobs_per_site(plan)
    if per_site:
        sites = {s.id: s for s in snapshot.sites}
        table = Table(title="jobs per site", title_justify="left")
        table.add_column("site")
        table.add_column("side")
        table.add_column("jobs", justify="right")
        table.add_column("accelerators", justify="right")
        gpus: dict[str, int] = {}
        for p in plan.placements:
            gpus[p.site] = gpus.get(p.site, 0) + p.accelerators
        for site, n in per_site.items():
            side = sites[site].labels.get("side", "") if site in sites else ""
            table.add_row(escape(site), escape(side), str(n), str(gpus.get(site, 0)))
        console.print(table)

    per_reason = waits_per_reason(plan)
    if per_reason:
        table = Table(title="waits per reason", title_justify="left")
        table.add_column("reason")
        table.add_column("jobs", justify="right")
        table.add_column("example")
        examples: dict[str, str] = {}
        for w in plan.waits:
            examples.setdefault(w.reason.value, f"{w.job}: {w.message}")
        for reason, n in per_reason.items():
            table.add_row(escape(reason), str(n), escape(examples[reason]))
        console.print(table)

    for job in explained:
        explanation = plan.explanations[job]
        console.print(f"[bold]why {escape(job)}[/bold]: {escape(explanation.summary)}")
        if explanation.eliminated:
            ruled_out = ", ".join(f"{r.value} {n}" for r, n in explanation.eliminated.items())
            console.print(f"  options ruled out (of {explanation.options_considered}): "
                          f"{escape(ruled_out)}")
        if explanation.runner_up:
            console.print(f"  next best: {escape(explanation.runner_up)}")


__all__ = ["load_policy", "load_snapshot", "print_summary", "read_text", "register"]
