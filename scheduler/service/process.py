"""The control loop in a process of its own, beside the API's (``isthmus serve --loop process``).

Why: Python runs one thread at a time per process, and under load the API (parsing,
validating, answering) and the loop (planning, dispatching, following) each want a core. In
two processes they get two. They share nothing but the store — which is all they need: the loop
writes what the API shows (explanations, site views, the plan summary), and the API wakes the
loop through a ``multiprocessing`` event when a job arrives.

The loop process dies with its parent (``PR_SET_PDEATHSIG`` and a watchdog), so a ``kill -9``
of ``isthmus serve`` never leaves an orphan loop dispatching on its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import threading
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path

log = logging.getLogger("isthmus.loop-process")
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            threading.Event().wait(0.5)

    threading.Thread(target=watch, name="isthmus-parent-watch", daemon=True).start()


def _run(config: Path, database: str | None, parent: int, wake: MpEvent, stop: MpEvent,
         log_level: str) -> None:
    from scheduler.service.config import load_config
    from scheduler.service.service import Service

    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    service = Service.from_config(load_config(config, database=database))

    def relay() -> None:
        while not stop.is_set():
            if wake.wait(0.5):
                wake.clear()
                service.loop.wake()

    threading.Thread(target=relay, name="isthmus-wake", daemon=True).start()
    service.start()
    try:
        stop.wait()
    finally:
        service.stop()


class LoopProcess:
    """Start, wake and stop the loop process."""

    def __init__(self, config: Path, database: str | None, log_level: str = "info") -> None:
        ctx = multiprocessing.get_context("spawn")
        self._wake = ctx.Event()
        self._stop = ctx.Event()
        self.process = ctx.Process(
            target=_run, name="isthmus-loop",
            args=(config, database, os.getpid(), self._wake, self._stop, log_level),
        )

    def start(self) -> None:
        self.process.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        self.process.join(timeout_s)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


__all__ = ["LoopProcess"]
