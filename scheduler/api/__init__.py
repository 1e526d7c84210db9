"""The HTTP API (FastAPI): jobs, sites, plan, policy, metrics; bearer tokens per tenant.

Layer: an edge. Imports ``scheduler.service`` and ``scheduler.core``; pydantic models here are
the API's bodies, converted explicitly to the service's values.
"""

from scheduler.api.app import create_app

__all__ = ["create_app"]
