"""Run several planners over one scenario side by side: one planner per process.

``run_policies(scenario, names, workers=2, progress=cb)`` returns ``{name: summary}`` (the
figures of ``scheduler.sim.report.summarize``) in the order of ``names``. Each planner runs
in its own worker process, forked from this one, so the scenario (its ~100k jobs) is shared
copy-on-write and not pickled; only the summaries travel back. Planners start slowest first
(longest-processing-time order: the optimizer, then the baselines whose windows stay fullest),
so that two workers finish close together. Every planner sees the same scenario object: the
same jobs, the same events.

Progress: workers report ``(name, fraction)`` on a queue; this process calls ``progress``
from its own thread only (no other thread runs here while the workers are forked). Without
``fork`` (or with one worker) the planners run one after the other in this process.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import queue as queue_mod
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from scheduler.sim.engine import simulate, warm_floors
from scheduler.sim.report import summarize
from scheduler.sim.scenario import Scenario

# Measured on the default week: optimizer ~150 s CPU, local-only ~115, greedy-cheapest ~100,
# first-fit ~75, spread-by-capacity ~30. On two workers this order pairs the optimizer with
# greedy-cheapest (~250 s) and runs the other three together (~220 s).
SLOWEST_FIRST: tuple[str, ...] = (
    "optimizer", "local-only", "first-fit", "greedy-cheapest", "spread-by-capacity")
Progress = Callable[[str, float], None]

_scenario: Scenario | None = None  # set in this process before the workers fork
_progress: Any = None  # the workers' end of the progress queue


def _init(progress_queue: Any) -> None:
    global _progress
    _progress = progress_queue


def _run_one(name: str) -> dict[str, Any]:
    if _scenario is None:
        raise RuntimeError("the scenario was not inherited (not a forked worker)")
    # The inherited scenario (~100k jobs) lives as long as the worker: keep it out of the
    # collector's scans, and collect the young generation less often (the simulation makes
    # many short-lived objects and few cycles): ~5% of a planner's time, measured.
    gc.collect()  # what a previous planner left in this worker is not frozen with it
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    out = _progress
    last = [-1.0]

    def report(fraction: float) -> None:
        if out is not None and (fraction >= 1.0 or fraction - last[0] >= 0.004):
            last[0] = fraction
            out.put((name, fraction))

    return summarize(simulate(_scenario, name, progress=report))


def default_workers(planners: int) -> int:
    return max(1, min(planners, os.cpu_count() or 1))


def run_policies(
    scenario: Scenario,
    names: Sequence[str],
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    poll_s: float = 0.2,
) -> dict[str, dict[str, Any]]:
    """Simulate every planner of ``names`` over ``scenario``; summaries by name."""
    names = list(dict.fromkeys(names))
    n_workers = default_workers(len(names)) if workers is None else max(1, workers)
    n_workers = min(n_workers, len(names))
    if n_workers == 1 or "fork" not in mp.get_all_start_methods():
        results: dict[str, dict[str, Any]] = {}
        for name in names:
            def one(fraction: float, name: str = name) -> None:
                if progress is not None:
                    progress(name, fraction)
            results[name] = summarize(simulate(scenario, name, progress=one))
        return results

    global _scenario
    warm_floors(scenario)  # computed once here, inherited by every worker
    ctx = mp.get_context("fork")
    progress_queue = ctx.Queue()
    rank = {n: i for i, n in enumerate(SLOWEST_FIRST)}
    order = sorted(names, key=lambda n: rank.get(n, len(rank)))
    _scenario = scenario
    try:
        with ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_init,
                                 initargs=(progress_queue,)) as pool:
            futures: dict[Future[dict[str, Any]], str] = {
                pool.submit(_run_one, name): name for name in order}
            pending = set(futures)
            while pending:
                _, pending = wait(pending, timeout=poll_s, return_when=FIRST_COMPLETED)
                _drain(progress_queue, progress)
            _drain(progress_queue, progress)
            done = {futures[f]: f.result() for f in futures}
    finally:
        _scenario = None
        progress_queue.close()
    if progress is not None:
        for name in names:
            progress(name, 1.0)
    return {name: done[name] for name in names}


def _drain(source: Any, progress: Progress | None) -> None:
    while True:
        try:
            name, fraction = source.get_nowait()
        except queue_mod.Empty:
            return
        if progress is not None:
            progress(name, fraction)


__all__ = ["SLOWEST_FIRST", "default_workers", "run_policies"]
