"""Bounded exponential backoff around Ray dashboard calls, and what counts as transient.

    with_retries("site s: status x", lambda: client.get_job_info("x"), Backoff())

Transient (retried): no answer at all (connection refused or reset, a timeout: ``requests``
raises these as ``OSError`` subclasses, and Ray's client turns a refused version check into
the built-in ``ConnectionError``), an HTTP 5xx from the dashboard (Ray answers 500 while its
job agent is not ready: "No available agent to submit job, please try again later"), and the
state API's ``RayStateApiException`` (its "server unavailable" and "internal error").
Everything else (404, 400, an authentication error, ...) is an answer: raised at once.

When the tries run out :func:`with_retries` raises ``SiteUnreachable`` naming the operation,
the tries, the time spent and the last error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ray.util.state.exception import RayStateApiException

from adapters.ray.client import RayHttpError
from scheduler.core.adapter import SiteUnreachable

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """At most ``attempts`` tries, waiting ``first_s``, 2x, 4x, ... (capped at ``max_s``)."""

    attempts: int = 4  # the first try and three retries, after 0.2, 0.4 and 0.8 s
    first_s: float = 0.2
    max_s: float = 0.8

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.first_s < 0 or self.max_s < self.first_s:
            raise ValueError(f"invalid backoff {self}")

    def delay(self, attempt: int) -> float:
        """The wait after the ``attempt``-th failed try (1-based)."""
        return float(min(self.max_s, self.first_s * 2 ** (attempt - 1)))


def http_status(err: BaseException) -> int | None:
    """The HTTP status of an answered request, None when there was no answer."""
    if isinstance(err, RayHttpError):
        return err.status
    response = getattr(err, "response", None)  # requests.HTTPError from raise_for_status()
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def is_transient(err: BaseException) -> bool:
    """Whether ``err`` may go away by itself: no answer, or a server-side error."""
    status = http_status(err)
    if status is not None:
        return status >= 500
    return isinstance(err, OSError | RayStateApiException)


def describe(err: BaseException) -> str:
    """A short reason for people: ``unreachable: ConnectionError: ...``, ``HTTP 404: ...``."""
    if isinstance(err, RayHttpError):
        return str(err)
    status = http_status(err)
    if status is not None:
        return f"HTTP {status}: {err}"
    if is_transient(err):
        return f"unreachable: {type(err).__name__}: {err}"
    return f"{type(err).__name__}: {err}"


def with_retries(
    what: str,
    call: Callable[[], T],
    backoff: Backoff,
    *,
    transient: Callable[[BaseException], bool] = is_transient,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``call()``, retried on ``transient`` errors as ``backoff`` allows.

    Raises ``SiteUnreachable`` when the tries run out; any other error at once, unchanged.
    """
    start = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except Exception as err:
            if not transient(err):
                raise
            if attempt >= backoff.attempts:
                spent = time.monotonic() - start
                raise SiteUnreachable(
                    f"{what}: no usable answer after {attempt} "
                    f"{'try' if attempt == 1 else 'tries'} in {spent:.1f} s: {describe(err)}"
                ) from err
            sleep(backoff.delay(attempt))


__all__ = ["Backoff", "describe", "http_status", "is_transient", "with_retries"]
