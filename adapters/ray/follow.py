"""An async iterator read as a plain iterator, on a private event loop in its own thread.

Why: Ray's ``JobSubmissionClient.tail_job_logs`` is an async generator (a websocket), while
``SupportsLogs.logs`` is a plain iterator. Running the generator on a private loop in a thread
of its own works whatever the caller is: plain code, or code already inside a running event
loop (where ``loop.run_until_complete`` would refuse to run).

Nothing starts until the first ``next()``. Closing the iterator early (``close()``, ``break``
out of a for loop, garbage collection) cancels the async generator, lets it clean up (close
its websocket) and ends the thread; errors raised by the async generator come out of the
iterator unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar, cast

T = TypeVar("T")

JOIN_TIMEOUT_S = 5.0

_END = object()


def iterate(make: Callable[[], AsyncIterator[T]], *, name: str = "follow") -> Iterator[T]:
    """Yield what ``make()`` yields; nothing starts until the first ``next()``."""
    items: queue.SimpleQueue[object] = queue.SimpleQueue()
    loop = asyncio.new_event_loop()

    async def pump() -> None:
        try:
            async for item in make():
                items.put((item,))
        except asyncio.CancelledError:
            raise
        except BaseException as err:  # handed to the consumer, raised there
            items.put(err)
        finally:
            items.put(_END)

    task = loop.create_task(pump())  # the loop runs only in the thread below

    def run() -> None:
        try:
            loop.run_until_complete(task)
        except asyncio.CancelledError:
            pass
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        while True:
            got = items.get()
            if got is _END:
                return
            if isinstance(got, BaseException):
                raise got
            yield cast("tuple[T]", got)[0]
    finally:
        # RuntimeError: the loop closed between the check and the call.
        with contextlib.suppress(RuntimeError):
            if thread.is_alive():
                loop.call_soon_threadsafe(task.cancel)
        thread.join(JOIN_TIMEOUT_S)


__all__ = ["iterate"]
