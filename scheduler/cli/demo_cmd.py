"""``isthmus demo``: the optimizer against every baseline on the example snapshot.

    isthmus demo                                  # docs/examples/snapshot-china.json
    isthmus demo --snapshot s.json --policy p.yaml

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
    app.command("demo")(demo)


@dataclass(frozen=True, slots=True)
class Run:
    name: str
    plan: Plan | None
    seconds: float
    error: str = ""


def demo(
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
    best = min((r for r in runs if r.plan is not None),
               key=lambda r: r.plan.objective if r.plan else 0.0, default=None)
    if best is not None and best.plan is not None:
        _examples(console, best.plan, snap)
    if any(r.error for r in runs):
        raise typer.Exit(EXIT_FAILED)


def _run(name: str, planner: Planner, snap: Snapshot, pol: Policy, now: float) -> Run:
    started = time.perf_counter()
    try:
        plan = planner(snap, pol, now)
    except NotImplementedError:
        return Run(name, None, 0.0, "not implemented yet")
    except Exception as err:  # a planner bug: show it in its row, fail the demo at the end
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
        f"[bold]Isthmus demo[/bold]: {escape(str(path))}\n"
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
                  caption=f"gap: to the best proven lower bound, {bound:,.2f} CNY",
                  caption_justify="left")
    table.add_column("planner", no_wrap=True)
    for column in ("cost (CNY)", "placed", "waiting", "gap", "east", "west", "time (s)"):
        table.add_column(column, justify="right")
    for r in runs:
        if r.plan is None:
            table.add_row(escape(r.name), f"[red]error: {escape(r.error)}[/red]",
                          "", "", "", "", "", "")
            continue
        p = r.plan
        gap = (p.objective - bound) / p.objective if p.objective > 0 else 0.0
        sides = _side(snap, p)
        table.add_row(escape(r.name), f"{p.objective:,.2f}", str(len(p.placements)),
                      str(len(p.waits)), f"{max(0.0, gap):.2%}", str(sides.get("east", 0)),
                      str(sides.get("west", 0)), f"{r.seconds:.3f}")
    return table


def _verdict(console: Console, runs: list[Run]) -> None:
    done = {r.name: r.plan for r in runs if r.plan is not None}
    opt = done.get("optimizer")
    if opt is None:
        return
    others = {name: p for name, p in done.items() if name != "optimizer"}
    if not others:
        return
    best_name = min(others, key=lambda n: others[n].objective)
    best = others[best_name]
    saving = best.objective - opt.objective
    console.print(
        f"optimizer vs the best baseline ({best_name}): {saving:,.2f} CNY lower "
        f"({saving / best.objective:.2%}), {len(opt.placements) - len(best.placements):+d} "
        "jobs placed"
    )
    local = others.get("local-only")
    if local is not None:
        saving = local.objective - opt.objective
        console.print(
            f"optimizer vs local-only (today's compute islands): {saving:,.2f} CNY lower "
            f"({saving / local.objective:.2%}), "
            f"{len(opt.placements) - len(local.placements):+d} jobs placed"
        )


def _examples(console: Console, plan: Plan, snap: Snapshot) -> None:
    """A few answers to "why here / why waiting" from the cheapest plan."""
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
