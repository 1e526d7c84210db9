"""The Isthmus Python SDK: submit jobs, watch them, read their logs, ask why.

Layer: an edge that stands alone. It imports nothing else of Isthmus (an import-linter
contract keeps it so), only ``httpx`` and, for ``wait(progress=True)``, ``rich`` if present.

Example::

    from scheduler.sdk import Client, JobState

    with Client("http://127.0.0.1:8000", "local-acme-token-000000001") as isthmus:
        job = isthmus.submit(name="finetune", entrypoint="python train.py",
                             accelerators_per_worker=8, allowed_types=["H20-96G"],
                             runtime_h=6.0)
        job = isthmus.wait(job.id, progress=True)
        assert job.state is JobState.SUCCEEDED, isthmus.explain(job.id).summary

See docs/sdk.md for a tour.
"""

from scheduler.sdk.client import AsyncClient, Client
from scheduler.sdk.errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    IsthmusError,
    NotFound,
    Timeout,
    TransportError,
    Unauthorized,
)
from scheduler.sdk.values import Explanation, Job, JobEvent, JobSpec, JobState, SiteInfo, SitePool

__version__ = "0.1.0"

__all__ = [
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
