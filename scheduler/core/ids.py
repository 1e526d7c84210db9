"""Typed identifiers. Plain strings at runtime, distinct types for mypy."""

from typing import NewType

SiteId = NewType("SiteId", str)
JobId = NewType("JobId", str)
TenantId = NewType("TenantId", str)
DatasetId = NewType("DatasetId", str)
LocationId = NewType("LocationId", str)
AcceleratorType = NewType("AcceleratorType", str)

__all__ = ["AcceleratorType", "DatasetId", "JobId", "LocationId", "SiteId", "TenantId"]
