"""Fixtures shared by the whole suite.

``ray_head``: a real local Ray head for the session (scheduler/demo/ray_head.py).
``postgres``: a private PostgreSQL server for the session (tests/postgres.py). ``make test``
installs the server binaries first (``make postgres``); when they are absent the tests that use
it are skipped with that reason, except under CI=true, where they fail instead.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterator

import pytest

from scheduler.demo.ray_head import RayHead, start_ray_head
from tests.postgres import (
    PostgresServer,
    find_bin_dir,
    is_root,
    start_postgres,
    traversable_tmp_dir,
)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A running private server (127.0.0.1, free port, trust auth) with an empty
    ``isthmus_test`` database at ``.url``; ``.create_database(name)`` makes more."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        reason = (
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: run `make postgres`"
        )
        if _in_ci():
            pytest.fail(f"{reason} (CI=true: the PostgreSQL tests must run)", pytrace=False)
        pytest.skip(reason)
    # As root the server runs as the postgres user, who cannot enter /tmp/pytest-of-root (0700).
    owned = is_root()
    base = traversable_tmp_dir() if owned else tmp_path_factory.mktemp("postgres")
    try:
        server = start_postgres(base, bin_dir)
        try:
            yield server
        finally:
            server.stop()
    finally:
        if owned:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_url(postgres: PostgresServer, request: pytest.FixtureRequest) -> str:
    """SQLAlchemy URL of a fresh, empty database for the requesting test module, so modules
    never see each other's rows."""
    module = request.module.__name__
    digest = hashlib.sha1(module.encode()).hexdigest()[:8]
    slug = re.sub(r"[^a-z0-9_]+", "_", module.lower())
    return postgres.create_database(f"m{digest}_{slug}"[:63])


# One real local Ray head for the session (scheduler/demo/ray_head.py), with two custom
# resources that count accelerators the way a site operator declares them: ``RTX4090-48G``
# (named like the core catalog's type) and ``gpu_l40s`` (a site's own name, mapped to
# ``L40S-48G`` in the adapter's configuration).
RAY_HEAD_RESOURCES = {"RTX4090-48G": 8.0, "gpu_l40s": 4.0}


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayHead]:
    """A running Ray head (dashboard at ``.dashboard_url``), stopped to its last process."""
    pytest.importorskip(
        "ray.job_submission", reason="ray is not installed: pip install 'ray[default]'"
    )
    head = start_ray_head(tmp_path_factory.mktemp("ray-head"), RAY_HEAD_RESOURCES)
    try:
        yield head
    finally:
        head.stop()
