"""The progress line ``wait(..., progress=True)`` draws on stderr while a job runs.

A job has no percentage, but it has a life: PENDING → PLACED → DISPATCHED → RUNNING → an end.
The bar counts those steps and the text says where the job is and why. With ``rich`` installed
the line redraws in place; without it, one plain line is printed per change of state.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from scheduler.sdk.values import Job, JobState

_STEP = {
    JobState.PENDING: 0,
    JobState.PLACED: 1,
    JobState.DISPATCHED: 2,
    JobState.RUNNING: 3,
}
STEPS = 4

Show = Callable[[Job], None]


def describe(job: Job) -> str:
    """One line: id, state, where, and the server's message."""
    where = f" at {job.site}/{job.accelerator}" if job.site else ""
    why = f": {job.message}" if job.message else ""
    return f"{job.id} {job.state.value}{where}{why}"


@contextmanager
def watching(job_id: str, *, enabled: bool) -> Iterator[Show]:
    """Yield a function to call with each new view of the job."""
    if not enabled:
        yield lambda job: None
        return
    try:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    except ImportError:  # rich is optional for the SDK
        yield _plain()
        return
    with Progress(
        SpinnerColumn(),
        BarColumn(bar_width=12),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task(f"{job_id} waiting for the server", total=STEPS)

        def show(job: Job) -> None:
            bar.update(task, completed=_STEP.get(job.state, STEPS), description=describe(job))

        yield show


def _plain() -> Show:
    last: list[JobState] = []

    def show(job: Job) -> None:
        if not last or last[-1] is not job.state:
            last.append(job.state)
            print(describe(job), file=sys.stderr, flush=True)

    return show


__all__ = ["describe", "watching"]
