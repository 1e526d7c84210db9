"""``isthmus demo``: the whole system on this machine, live.

    isthmus demo                 # 40 jobs over 20 s; a real Ray head as the Shanghai site
    isthmus demo --jobs 100 --speedup 600
    isthmus demo --no-ray        # every site simulated (no Ray head)

Starts the service on 127.0.0.1 (SQLite in a temporary directory, the default China topology
and policy), one real local Ray head as the ``qingpu`` (Shanghai) site running real Ray jobs,
simulated sites for the other nine, submits a mixed workload through the HTTP API and shows
jobs per site, utilisation east vs west and cost against the local-only baseline. It ends when
every job has ended (exit 0), at ``--timeout`` (exit 1), or at Ctrl-C (exit 130), and stops
everything it started on the way out. (``isthmus compare`` is the offline planner comparison.)
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    jobs: Annotated[int, typer.Option(min=1, max=2000, help="Jobs to submit.")] = 40,
    spread: Annotated[float, typer.Option(min=0, help="Seconds over which they arrive.")] = 20.0,
    speedup: Annotated[float, typer.Option(
        min=1, help="Simulated sites run this many seconds of work per second.")] = 240.0,
    seed: Annotated[int, typer.Option(help="Workload seed.")] = 7,
    ray: Annotated[bool, typer.Option("--ray/--no-ray",
                                      help="Run a local Ray head as the Shanghai site.")] = True,
    port: Annotated[int, typer.Option(help="API port (0: a free one).")] = 0,
    timeout: Annotated[float, typer.Option(min=1, help="Give up after this many seconds.")] = 600,
) -> None:
    """Run the scheduler service with a real Ray site and simulated others, live."""
    from scheduler.demo.run import DemoOptions, run_demo

    console = Console(highlight=False)
    options = DemoOptions(jobs=jobs, spread_s=spread, speedup=speedup, seed=seed, ray=ray,
                          port=port, timeout_s=timeout)
    raise typer.Exit(run_demo(options, console))
