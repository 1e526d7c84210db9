"""The ``ray`` site adapter: a bare Ray cluster, through the Ray Job Submission API."""

from adapters.ray.config import RayConfig
from adapters.ray.site import RaySite

__all__ = ["RayConfig", "RaySite"]
