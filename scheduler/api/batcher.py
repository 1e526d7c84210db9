"""``SubmitBatcher``: many concurrent submissions, one store transaction.

Requests put their job on a queue and await a future; one writer thread takes whatever has
queued up (up to ``max_batch``) and persists it in a single transaction. Under load this turns
a thousand commits a second into tens, and a lone request still commits at once.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from concurrent.futures import Future

from scheduler.service.service import Service
from scheduler.service.store import IdempotencyConflict, NewJob, Submitted

_STOP = object()


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
        future: Future[Submitted] = Future()
        self._queue.put((new, future))
        return await asyncio.wrap_future(future)

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

    def _flush(self, batch: list[tuple[NewJob, Future[Submitted]]]) -> None:
        try:
            results = self.service.submit_many([new for new, _ in batch])
        except IdempotencyConflict:
            # One request's key clashes: commit the others, fail only that one.
            for new, future in batch:
                try:
                    future.set_result(self.service.submit(new))
                except Exception as err:
                    future.set_exception(err)
            return
        except Exception as err:
            for _, future in batch:
                future.set_exception(err)
            return
        self.batches += 1
        self.submitted += len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)


__all__ = ["SubmitBatcher"]
