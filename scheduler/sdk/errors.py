"""What the SDK raises. Every exception is an ``IsthmusError``::

    IsthmusError                    anything this SDK raises
    ├── ApiError(status, message, field, problems)
    │   │                           the server answered with an error (a 5xx, or a 502/503/504
    │   │                           that outlived the retries, is a plain ApiError)
    │   ├── BadRequest              400, 413, 422: the request is invalid; ``field`` names the
    │   │                           part of the body at fault, e.g. "gang.workers"
    │   ├── Unauthorized            401: no token, or a token the server does not know
    │   ├── Forbidden               403: the token may not do this (operators only, other tenant)
    │   ├── NotFound                404: no such job, or another tenant's job
    │   └── Conflict                409: an idempotency key reused with another spec; no logs yet
    ├── TransportError              the server could not be reached (after the retries)
    └── Timeout                     ``wait`` gave up before the job ended (also a TimeoutError)

Example::

    from scheduler.sdk import BadRequest, Client, TransportError

    try:
        job = client.submit(name="t", entrypoint="python t.py", accelerators_per_worker=8,
                            allowed_types=["H20-96G"], runtime_h=2.0, workers=0)
    except BadRequest as err:
        print(err.field, err.message)   # gang.workers  gang.workers: Input should be ...
    except TransportError as err:
        print("server unreachable:", err)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scheduler.sdk.values import Job


class IsthmusError(Exception):
    """The root of every exception the SDK raises."""


class ApiError(IsthmusError):
    """The server answered with an error status.

    ``status`` is the HTTP status, ``message`` the server's one-line explanation, ``field``
    the request field at fault (a dotted path such as ``gang.allowed_types[0]``, or None) and
    ``problems`` every problem found, each ``{"field": ..., "message": ...}``.
    """

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        problems: tuple[dict[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.problems = problems

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(status={self.status}, message={self.message!r}, "
                f"field={self.field!r})")


class BadRequest(ApiError):
    """400, 413 or 422: the request is malformed, too large, or names something unknown."""


class Unauthorized(ApiError):
    """401: the token is missing or unknown."""


class Forbidden(ApiError):
    """403: the token is valid but may not do this."""


class NotFound(ApiError):
    """404: no such job, or a job of another tenant (ids do not leak between tenants)."""


class Conflict(ApiError):
    """409: the request conflicts with the server's state (an idempotency key reused with
    another spec, or logs asked of a job that has none yet)."""


class TransportError(IsthmusError):
    """The server could not be reached, or the connection broke, after every retry."""


class Timeout(IsthmusError, TimeoutError):
    """``wait`` gave up before the job reached a terminal state. ``job`` is its last view."""

    def __init__(self, message: str, job: Job | None = None) -> None:
        super().__init__(message)
        self.job = job


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: BadRequest,
    422: BadRequest,
}


def error_for(
    status: int,
    message: str,
    field: str | None = None,
    problems: tuple[dict[str, str], ...] = (),
) -> ApiError:
    """The exception for an error response with ``status``."""
    return _BY_STATUS.get(status, ApiError)(status, message, field, problems)


__all__ = [
    "ApiError",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "IsthmusError",
    "NotFound",
    "Timeout",
    "TransportError",
    "Unauthorized",
    "error_for",
]
