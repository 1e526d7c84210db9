"""The contract between the scheduler and a site: the ``SiteAdapter`` protocol and its values.

A site adapter (``adapters.kubernetes``, later ``ray`` and ``simulated``) turns a placement into
work at one site and reports back. The service finds adapters by name through the
``isthmus.adapters`` entry-point group; core never imports one.

Rules every adapter keeps:
- ``submit`` is idempotent: submitting the same ``Dispatch`` again (a retry, a restart) never
  creates a second copy at the site.
- ``status`` and ``cancel`` take only the dispatch name, so they work after a restart that lost
  every in-memory cache.
- ``health`` is cheap and says why a site is unusable (unreachable, unauthorized, ...).

Pure: values and a protocol, no I/O.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from scheduler.core.ids import JobId, TenantId
from scheduler.core.model import AcceleratorPool, Job
from scheduler.core.plan import Placement

# KubeRay refuses RayJob names longer than 47 characters; stay well below, for every backend.
MAX_DISPATCH_NAME = 40
_UNSAFE = re.compile(r"[^a-z0-9-]+")


def dispatch_name(job: JobId, attempt: int) -> str:
    """A deterministic DNS-1035 label naming one attempt of one job at a site.

    The job id is lower-cased and reduced to ``[a-z0-9-]``; when that changes it (or it is too
    long), a short hash of the original id keeps distinct jobs distinct.
    """
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    suffix = f"-{attempt}"
    slug = _UNSAFE.sub("-", job.lower()).strip("-")
    if not slug or not slug[0].isalpha():
        slug = f"j-{slug}".rstrip("-")
    room = MAX_DISPATCH_NAME - len(suffix)
    if slug != job or len(slug) > room:
        digest = hashlib.sha256(job.encode()).hexdigest()[:8]
        slug = f"{slug[: room - 9].rstrip('-')}-{digest}"
    return f"{slug}{suffix}"


@dataclass(frozen=True, slots=True)
class Dispatch:
    """One attempt of one placed job, as handed to the site's adapter."""

    name: str
    job: Job
    placement: Placement
    tenant: TenantId
    attempt: int
    # The command the job runs. The core ``Job`` has no entrypoint yet; the API will fill it.
    entrypoint: str = "python -c 'import ray; ray.init()'"

    @classmethod
    def for_attempt(
        cls, job: Job, placement: Placement, attempt: int, entrypoint: str | None = None
    ) -> Dispatch:
        """The dispatch of ``attempt`` of ``job``, named by :func:`dispatch_name`."""
        if placement.job != job.id:
            raise ValueError(f"placement is for {placement.job}, not {job.id}")
        extra = {} if entrypoint is None else {"entrypoint": entrypoint}
        return cls(dispatch_name(job.id, attempt), job, placement, job.tenant, attempt, **extra)


class DispatchState(enum.StrEnum):
    PENDING = "PENDING"  # accepted by the site, not running yet (incl. suspended)
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"  # stopped before the end (cancelled at the site)
    UNKNOWN = "UNKNOWN"  # not found, or a state the adapter cannot map

    def is_terminal(self) -> bool:
        return self in {DispatchState.SUCCEEDED, DispatchState.FAILED, DispatchState.STOPPED}


@dataclass(frozen=True, slots=True)
class DispatchStatus:
    """What the site says about one dispatch, with the site's own reason and message."""

    state: DispatchState
    reason: str = ""
    message: str = ""

    def is_terminal(self) -> bool:
        return self.state.is_terminal()


@dataclass(frozen=True, slots=True)
class Health:
    """Whether the site can be used now; ``reason`` says why not (empty when ok)."""

    ok: bool
    reason: str = ""


@runtime_checkable
class SiteAdapter(Protocol):
    """One site, as the scheduler drives it."""

    name: str

    def inventory(self) -> tuple[AcceleratorPool, ...]:
        """Allocatable accelerators per type, ``available`` net of non-terminal workloads."""
        ...

    def submit(self, dispatch: Dispatch) -> None:
        """Start ``dispatch`` at the site; a second call for the same dispatch is a no-op."""
        ...

    def status(self, dispatch_name: str) -> DispatchStatus:
        """The dispatch's state at the site (``UNKNOWN`` with a reason when not found)."""
        ...

    def cancel(self, dispatch_name: str) -> None:
        """Stop and remove the dispatch; cancelling one already gone is a no-op."""
        ...

    def health(self) -> Health:
        """Whether the site is reachable and accepts our credentials."""
        ...


class AdapterError(RuntimeError):
    """A site operation failed; the message says what and why."""


class SiteUnreachable(AdapterError):
    """The site did not answer (or answered 5xx) after the adapter's own retries: transient."""


class DispatchConflict(AdapterError):
    """A dispatch with this name exists at the site but belongs to another job: never adopt it."""


class LogsUnavailable(LookupError):
    """The site has no logs for a dispatch; the message says why (not started, deleted, ...)."""


@runtime_checkable
class SupportsLogs(Protocol):
    """An adapter that can read a dispatch's driver log."""

    def logs(self, dispatch_name: str, *, follow: bool = False) -> Iterator[str]:
        """The log as chunks of text; with ``follow``, keeps yielding until the dispatch ends.

        Raises ``LogsUnavailable`` with the reason when there is nothing to read.
        """
        ...


@runtime_checkable
class SupportsPreemption(Protocol):
    """An adapter that can suspend a dispatch (freeing its accelerators) and resume it."""

    def suspend(self, dispatch_name: str) -> None: ...

    def resume(self, dispatch_name: str) -> None: ...


@runtime_checkable
class SupportsWatch(Protocol):
    """An adapter that notices site changes itself (watches) and can wake the control loop."""

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (cheap, thread-safe) after the site's inventory changed."""
        ...


class AdapterFactory(Protocol):
    """What the ``isthmus.adapters`` entry point of an adapter resolves to.

    ``config`` is the site's adapter section of the service configuration (plain YAML values);
    a bad value raises ``ValueError`` naming the key.
    """

    def __call__(self, name: str, config: Mapping[str, Any]) -> SiteAdapter: ...


__all__ = [
    "MAX_DISPATCH_NAME",
    "AdapterError",
    "AdapterFactory",
    "Dispatch",
    "DispatchConflict",
    "DispatchState",
    "DispatchStatus",
    "Health",
    "LogsUnavailable",
    "SiteAdapter",
    "SiteUnreachable",
    "SupportsLogs",
    "SupportsPreemption",
    "SupportsWatch",
    "dispatch_name",
]
