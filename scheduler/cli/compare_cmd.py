"""``isthmus compare``: the optimizer against every baseline on the example snapshot.

    isthmus compare                               # docs/examples/snapshot-china.json
    isthmus compare --snapshot s.json --policy p.yaml

The example is the default topology (the ten national computing clusters,
``policies/topology/china-hubs.yaml``) with an illustrative queue of ~40 jobs made by
``tools/make_example_snapshot.py``. Each planner runs on the same snapshot and policy; the
table compares total cost, placements, waits, the gap to the best proven lower bound, and how
many jobs land east and west. Exit status 1 when a planner fails, 2 on bad input.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from scheduler.cli.plan_cmd import EXIT_FAILED, EXIT_INVALID, InputError, load_policy, load_snapshot
from scheduler.core.model import Snapshot
from scheduler.core.plan import Plan
from scheduler.core.policy.model import Policy

if TYPE_CHECKING:
    from scheduler.core.planners import Planner

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "snapshot-china.json"


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)


@dataclass(frozen=True, slots=True)
class Run:
    name: str
    plan: Plan | None
    seconds: float
    error: str = ""


def compare(
    snapshot: Annotated[
        Path | None,
        typer.Option("--snapshot", "-s", help="Snapshot file; default: the shipped example.",
                     show_default=False, dir_okay=False),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option("--policy", "-p", help="Policy file (YAML); default: the default policy.",
                     show_default=False, dir_okay=False),
    ] = None,
) -> None:
    """Compare the optimizer with every baseline on one snapshot."""
    path = snapshot if snapshot is not None else EXAMPLE
    try:
        snap, now = load_snapshot(path)
        pol = load_policy(policy)
    except InputError as err:
        typer.echo(str(err), err=True)
        if snapshot is None:
            typer.echo("(the example ships with the source tree; pass --snapshot FILE)", err=True)
        raise typer.Exit(EXIT_INVALID) from None

    from scheduler.core.planners import PLANNERS  # imports the solvers

    console = Console(highlight=False)
    console.print(_describe(snap, now, path))
    runs = [_run(name, planner, snap, pol, now) for name, planner in PLANNERS.items()]
    console.print(_table(runs, snap))
    _verdict(console, runs)
    # answers to "why" from the optimizer's plan, or the cheapest plan when it failed
    plans = {r.name: r.plan for r in runs if r.plan is not None}
    shown = plans.get("optimizer") or min(plans.values(), key=lambda p: p.objective, default=None)
    if shown is not None:
        _examples(console, shown, snap)
    if any(r.error for r in runs):
        raise typer.Exit(EXIT_FAILED)


def _run(name: str, planner: Planner, snap: Snapshot, pol: Policy, now: float) -> Run:
    started = time.perf_counter()
    try:
        plan = planner(snap, pol, now)
    except NotImplementedError:
        return Run(name, None, 0.0, "not implemented yet")
    except Exception as err:  # a planner bug: show it in its row, fail the command at the end
        return Run(name, None, 0.0, f"{type(err).__name__}: {err}")
    elapsed = time.perf_counter() - started
    return Run(name, plan, plan.solve_s or elapsed)


def _describe(snap: Snapshot, now: float, path: Path) -> str:
    sides = Counter(s.labels.get("side", "?") for s in snap.sites)
    side_text = ", ".join(f"{n} {side}" for side, n in sorted(sides.items()))
    accelerators = sum(j.gang.accelerators for j in snap.pending)
    free = sum(p.available for s in snap.sites for p in s.pools)
    offset = snap.sites[0].tariff.utc_offset_h if snap.sites else 0.0
    zone = UTC if offset == 0 else timezone(timedelta(hours=offset))
    when = datetime.fromtimestamp(now, tz=zone).strftime("%Y-%m-%d %H:%M %z")
    return (
        f"[bold]Isthmus compare[/bold]: {escape(str(path))}\n"
        f"{len(snap.sites)} sites ({side_text}), {free:,} accelerators free; "
        f"{len(snap.pending)} pending jobs asking for {accelerators:,} accelerators, "
        f"{len(snap.running)} running; now {when}\n"
    )


def _side(snap: Snapshot, plan: Plan) -> Counter[str]:
    side = {s.id: s.labels.get("side", "?") for s in snap.sites}
    return Counter(side.get(p.site, "?") for p in plan.placements)


def _table(runs: list[Run], snap: Snapshot) -> Table:
    bounds = [r.plan.lower_bound for r in runs if r.plan is not None]
    bound = max(bounds) if bounds else 0.0
    table = Table(title="planners on the same snapshot and policy", title_justify="left",
                  caption=f"gap: to the best proven lower bound, {bound:,.2f} CNY; east/west: "
                          "jobs placed on each side", caption_justify="left",
                  box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True, show_edge=False)
    table.add_column("planner", no_wrap=True)
    for column in ("cost CNY", "placed", "waiting", "gap", "east", "west", "time s"):
        table.add_column(column, justify="right", no_wrap=True)
    for r in runs:
        if r.plan is None:
            table.add_row(escape(r.name), f"[red]error: {escape(r.error)}[/red]",
                          "", "", "", "", "", "")
            continue
        p = r.plan
        gap = (p.objective - bound) / p.objective if p.objective > 0 else 0.0
        sides = _side(snap, p)
        table.add_row(escape(r.name), f"{p.objective:,.0f}", str(len(p.placements)),
                      str(len(p.waits)), f"{max(0.0, gap):.2%}", str(sides.get("east", 0)),
                      str(sides.get("west", 0)), f"{r.seconds:.3f}")
    return table


def _verdict(console: Console, runs: list[Run]) -> None:
    done = {r.name: r.plan for r in runs if r.plan is not None}
    opt = done.get("optimizer")
    others = {name: p for name, p in done.items() if name != "optimizer"}
    if opt is None or not others:
        return
    best = min(others, key=lambda n: others[n].objective)
    console.print(f"optimizer vs the best baseline ({best}): {_compare(opt, others[best])}")
    if "local-only" in others:
        console.print("optimizer vs local-only (today's compute islands): "
                      f"{_compare(opt, others['local-only'])}")


def _compare(plan: Plan, other: Plan) -> str:
    diff = plan.objective - other.objective
    cost = (f"{abs(diff):,.2f} CNY {'less' if diff <= 0 else 'more'} "
            f"({diff / other.objective:+.2%})" if other.objective > 0 else f"{diff:+,.2f} CNY")
    jobs = len(plan.placements) - len(other.placements)
    placed = (f"{abs(jobs)} {'more' if jobs > 0 else 'fewer'} job{'s' if abs(jobs) != 1 else ''}"
              " placed" if jobs else "as many jobs placed")
    return f"{cost}, {placed}"


def _examples(console: Console, plan: Plan, snap: Snapshot) -> None:
    """A few answers to "why here / why waiting": a job placed west, one placed east, and
    the first two that wait."""
    side = {s.id: s.labels.get("side") for s in snap.sites}
    picks = []
    west = next((p.job for p in plan.placements if side.get(p.site) == "west"), None)
    east = next((p.job for p in plan.placements if side.get(p.site) == "east"), None)
    picks += [j for j in (west, east) if j is not None]
    picks += [w.job for w in plan.waits[:2]]
    if not picks:
        return
    console.print(f"\n[bold]why ({escape(plan.planner)})[/bold]")
    for job in picks:
        console.print(f"  {escape(job)}: {escape(plan.explanations[job].summary)}")


__all__ = ["register"]
