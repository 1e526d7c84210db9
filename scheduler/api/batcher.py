"""``SubmitBatcher``: many concurrent submissions, one store transaction.

Requests put their job on a queue and await a future; one writer thread takes whatever has
queued up (up to ``max_batch``) and persists it in a single transaction. Under load this turns
a thousand commits a second into tens, and a lone request still commits at once.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any

from scheduler.service.service import Service
from scheduler.service.store import IdempotencyConflict, NewJob, Submitted

_STOP = object()
_Item = tuple[NewJob, "asyncio.Future[Submitted]", asyncio.AbstractEventLoop]


class SubmitBatcher:
    def __init__(self, service: Service, *, max_batch: int = 512) -> None:
        self.service = service
        self.max_batch = max_batch
        self.batches = 0
        self.submitted = 0
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name="isthmus-submit", daemon=True)
        self._thread.start()

    async def submit(self, new: NewJob) -> Submitted:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Submitted] = loop.create_future()
        self._queue.put((new, future, loop))
        return await future

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=10)

    def _write(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    self._flush(batch)  # type: ignore[arg-type]
                    return
                batch.append(more)
            self._flush(batch)  # type: ignore[arg-type]

    def _flush(self, batch: list[_Item]) -> None:
        outcomes: list[Submitted | BaseException]
        try:
            outcomes = list(self.service.submit_many([new for new, _, _ in batch]))
        except IdempotencyConflict:
            # One request's key clashes: commit the others, fail only that one.
            outcomes = []
            for new, _, _ in batch:
                try:
                    outcomes.append(self.service.submit(new))
                except Exception as err:
                    outcomes.append(err)
        except Exception as err:
            outcomes = [err] * len(batch)
        else:
            self.batches += 1
            self.submitted += len(batch)
        # One hop to each event loop per batch, not one per request.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any]]] = {}
        for (_, future, loop), outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(loop, []).append((future, outcome))
        for loop, pairs in by_loop.items():
            loop.call_soon_threadsafe(_resolve, pairs)


def _resolve(pairs: list[tuple[Any, Any]]) -> None:
    for future, outcome in pairs:
        if future.done():  # the request was cancelled (client went away)
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


__all__ = ["SubmitBatcher"]
