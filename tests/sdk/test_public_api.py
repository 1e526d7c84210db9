"""The SDK's public surface is pinned, and the SDK stands alone (a user installs a client)."""

from __future__ import annotations

import subprocess
import sys

import scheduler.sdk
from scheduler.sdk import errors

PUBLIC = [
    "ApiError",
    "AsyncClient",
    "BadRequest",
    "Client",
    "Conflict",
    "Explanation",
    "Forbidden",
    "IsthmusError",
    "Job",
    "JobEvent",
    "JobSpec",
    "JobState",
    "NotFound",
    "SiteInfo",
    "SitePool",
    "Timeout",
    "TransportError",
    "Unauthorized",
    "__version__",
]


def test_all_is_pinned() -> None:
    assert sorted(scheduler.sdk.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert hasattr(scheduler.sdk, name), name


def test_public_names_are_documented_with_an_example() -> None:
    for name in PUBLIC:
        obj = getattr(scheduler.sdk, name)
        if isinstance(obj, str) or issubclass(obj, Exception):
            continue
        assert obj.__doc__, name
    for cls in (scheduler.sdk.Client, scheduler.sdk.AsyncClient):
        for attr, member in vars(cls).items():
            if attr.startswith("_") or not callable(member):
                continue
            assert member.__doc__ and "Example" in member.__doc__, f"{cls.__name__}.{attr}"


def test_the_exception_tree_is_as_drawn() -> None:
    tree = {
        errors.ApiError: errors.IsthmusError,
        errors.TransportError: errors.IsthmusError,
        errors.Timeout: errors.IsthmusError,
        errors.BadRequest: errors.ApiError,
        errors.Unauthorized: errors.ApiError,
        errors.Forbidden: errors.ApiError,
        errors.NotFound: errors.ApiError,
        errors.Conflict: errors.ApiError,
    }
    for child, parent in tree.items():
        assert issubclass(child, parent), child
        assert child.__name__ in (errors.__doc__ or ""), child
    assert issubclass(errors.Timeout, TimeoutError)
    wanted = {400: errors.BadRequest, 401: errors.Unauthorized, 403: errors.Forbidden,
              404: errors.NotFound, 409: errors.Conflict, 413: errors.BadRequest,
              422: errors.BadRequest, 500: errors.ApiError, 503: errors.ApiError}
    for status, kind in wanted.items():
        assert type(errors.error_for(status, "m")) is kind, status


def test_importing_the_sdk_loads_nothing_of_the_scheduler() -> None:
    # (rich may load: httpx imports it for its own command line when it is installed)
    code = (
        "import sys, scheduler.sdk\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('scheduler.core', "
        "'scheduler.service', 'scheduler.api', 'scheduler.cli', 'adapters', 'fastapi', "
        "'sqlalchemy', 'pydantic', 'yaml')))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
