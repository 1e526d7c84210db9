"""Bounded exponential backoff around Kubernetes API calls, and what counts as transient.

    policy = Backoff(attempts=6, first_s=0.2, max_s=2.0, budget_s=20.0)
    created = with_retries("create RayJob ns/x", lambda: api.create(...), policy)

Transient (retried): no answer at all (connection refused or reset, a timeout, a TLS EOF — the
client raises these as urllib3 errors, ``OSError`` or ``ApiException`` with status 0), 429 Too
Many Requests (its ``Retry-After`` is honoured, capped at ``max_s``) and 5xx other than 501.
Everything else (401, 403, 404, 409, 422, ...) is an answer: raised at once, never retried.

When the tries run out, or the next wait would cross ``budget_s``, :func:`with_retries` raises
``SiteUnreachable`` naming the operation, the tries, the time spent and the last error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from scheduler.core.adapter import SiteUnreachable

T = TypeVar("T")

RETRIED_STATUSES = frozenset({0, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits of ``first_s``, 2x, 4x, ... capped at ``max_s``; at most ``attempts`` tries in all,
    and never a wait that would end past ``budget_s`` after the first try began."""

    attempts: int = 6
    first_s: float = 0.2
    max_s: float = 2.0
    budget_s: float = 20.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.first_s < 0 or self.max_s < self.first_s:
            raise ValueError(f"invalid backoff {self}")

    def delay(self, attempt: int) -> float:
        """The wait after the ``attempt``-th failed try (1-based)."""
        return float(min(self.max_s, self.first_s * 2 ** (attempt - 1)))

    def delays(self) -> Iterator[float]:
        """Every wait, forever (for loops without an attempt limit, such as a watch's relist)."""
        attempt = 1
        while True:
            yield self.delay(attempt)
            attempt += 1


def status_of(err: BaseException) -> int | None:
    """The HTTP status of an API error (0: no response), None when it is not an API error."""
    if isinstance(err, ApiException):
        return int(err.status or 0)
    return None


def is_transient(err: BaseException) -> bool:
    """Whether ``err`` may go away by itself: no answer, throttling or a server-side error."""
    status = status_of(err)
    if status is not None:
        return status in RETRIED_STATUSES
    return isinstance(err, HTTPError | OSError)


def retry_after(err: BaseException) -> float | None:
    """The server's ``Retry-After`` in seconds, when it sent one (429 and some 503s)."""
    headers = getattr(err, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None


def api_message(err: ApiException) -> str:
    """The apiserver's own message (the ``Status`` body), else the HTTP reason phrase."""
    try:
        body = json.loads(err.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(err.reason or "")


def describe(err: BaseException) -> str:
    """A short reason for people: ``unauthorized (401): ...``, ``unreachable: ...``."""
    status = status_of(err)
    if status is None or status == 0:
        detail = str(getattr(err, "reason", "") or err) if status == 0 else str(err)
        return f"unreachable: {type(err).__name__}: {detail}".rstrip(": ")
    meaning = {
        401: "unauthorized",
        403: "forbidden",
        404: "not found",
        409: "conflict",
        422: "invalid",
        429: "throttled",
    }.get(status, "server error" if status >= 500 else "API error")
    assert isinstance(err, ApiException)
    return f"{meaning} ({status}): {api_message(err)}"


def with_retries(
    what: str,
    call: Callable[[], T],
    backoff: Backoff,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``call()``, retried on transient errors as ``backoff`` allows.

    Raises ``SiteUnreachable`` when the budget is spent; any other error at once, unchanged.
    """
    start = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except Exception as err:
            if not is_transient(err):
                raise
            wait = backoff.delay(attempt)
            hinted = retry_after(err)
            if hinted is not None:
                wait = min(backoff.max_s, max(wait, hinted))
            spent = clock() - start
            if attempt >= backoff.attempts or spent + wait > backoff.budget_s:
                raise SiteUnreachable(
                    f"{what}: no usable answer after {attempt} "
                    f"{'try' if attempt == 1 else 'tries'} in {spent:.1f} s: {describe(err)}"
                ) from err
            sleep(wait)


__all__ = [
    "Backoff",
    "api_message",
    "describe",
    "is_transient",
    "retry_after",
    "status_of",
    "with_retries",
]
