"""Fixtures of the adapter tests: one real local Ray head for the whole session.

The head (tests/ray_head.py) carries two custom resources that count accelerators the way a
site operator would declare them: ``RTX4090-48G`` (named like the core catalog's type) and
``gpu_l40s`` (a site's own name, mapped to ``L40S-48G`` in the adapter's configuration).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scheduler.demo.ray_head import RayHead, start_ray_head

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
