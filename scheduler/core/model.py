"""The domain model: sites, links, datasets, jobs and the snapshot the solver reads.

Everything here is a frozen dataclass with typed ids. Files and HTTP bodies are parsed by
pydantic models elsewhere (``scheduler.core.snapshot_file``, ``scheduler.core.policy.schema``)
and converted into these explicitly.

Units, everywhere in the core:
- time in hours for durations, POSIX seconds (UTC) for instants;
- money in CNY; energy in kWh; power in kW; sizes in GB (10^9 bytes); bandwidth in Gbit/s;
- latency as round-trip milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from scheduler.core.ids import (
    AcceleratorType,
    DatasetId,
    JobId,
    LocationId,
    SiteId,
    TenantId,
)


@dataclass(frozen=True, slots=True)
class AcceleratorSpec:
    """Published facts about one accelerator type (see ``scheduler.core.catalog``)."""

    name: AcceleratorType
    memory_gb: float
    bf16_tflops: float
    tdp_w: float
    interconnect: bool  # NVLink-class card-to-card link, needed by large training gangs
    software_stack: str = "CUDA"


@dataclass(frozen=True, slots=True)
class AcceleratorPool:
    """Accelerators of one type at one site.

    ``available`` is what the site reports free right now; it already excludes running jobs.
    """

    type: AcceleratorType
    count: int
    available: int
    price_cny_per_hour: float  # rental price of one accelerator for one hour


@dataclass(frozen=True, slots=True)
class TouPeriod:
    """A time-of-use period in local hours [start_h, end_h) with a price multiplier."""

    start_h: float
    end_h: float
    multiplier: float


@dataclass(frozen=True, slots=True)
class Tariff:
    """A site's power price: a base price and time-of-use multipliers (flat = 1.0 elsewhere)."""

    base_cny_per_kwh: float
    periods: tuple[TouPeriod, ...] = ()
    utc_offset_h: float = 8.0

    def multiplier_at(self, local_hour: float) -> float:
        for period in self.periods:
            if period.start_h <= local_hour < period.end_h:
                return period.multiplier
        return 1.0


@dataclass(frozen=True, slots=True)
class Site:
    """A data-centre site: one place jobs can run, with pools of accelerators."""

    id: SiteId
    region: str  # administrative region (province / municipality)
    hub: str  # national computing hub
    lat: float
    lon: float
    pools: tuple[AcceleratorPool, ...]
    tariff: Tariff
    pue: float
    labels: Mapping[str, str] = field(default_factory=dict)
    subsidy_tenants: frozenset[TenantId] = frozenset()
    subsidy_discount: float = 0.0  # fraction off the rental price for subsidised tenants
    adapter: str = "simulated"

    def pool(self, accelerator: AcceleratorType) -> AcceleratorPool | None:
        for pool in self.pools:
            if pool.type == accelerator:
                return pool
        return None


@dataclass(frozen=True, slots=True)
class Link:
    """A network link between two sites (undirected)."""

    a: SiteId
    b: SiteId
    latency_ms: float
    bandwidth_gbps: float
    egress_cny_per_gb: float


@dataclass(frozen=True, slots=True)
class Location:
    """A place users are (for latency SLOs), e.g. a city."""

    id: LocationId
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class SiteSelector:
    """A set of sites by id, region, hub or label. Empty selector selects nothing.

    A site is selected when it matches any listed site, region or hub, or all listed labels.
    """

    sites: frozenset[SiteId] = frozenset()
    regions: frozenset[str] = frozenset()
    hubs: frozenset[str] = frozenset()
    labels: Mapping[str, str] = field(default_factory=dict)

    def selects(self, site: Site) -> bool:
        if site.id in self.sites or site.region in self.regions or site.hub in self.hubs:
            return True
        if self.labels:
            return all(site.labels.get(k) == v for k, v in self.labels.items())
        return False


@dataclass(frozen=True, slots=True)
class Dataset:
    """Data a job reads. ``residency`` (when set) is where the data may be processed."""

    id: DatasetId
    size_gb: float
    replicas: frozenset[SiteId]
    residency: SiteSelector | None = None


@dataclass(frozen=True, slots=True)
class Tenant:
    id: TenantId
    home_region: str


@dataclass(frozen=True, slots=True)
class Gang:
    """N identical workers, each needing k accelerators of one type from an allowed set.

    The whole gang runs at one site on one accelerator type.
    """

    workers: int
    accelerators_per_worker: int
    allowed_types: frozenset[AcceleratorType]
    min_memory_gb: float = 0.0

    @property
    def accelerators(self) -> int:
        return self.workers * self.accelerators_per_worker


@dataclass(frozen=True, slots=True)
class Job:
    """A job waiting for placement.

    ``runtime_h`` gives the estimated runtime on some accelerator types; runtimes on other
    allowed types are derived with the policy's speed factors.
    """

    id: JobId
    tenant: TenantId
    gang: Gang
    runtime_h: Mapping[AcceleratorType, float]
    submitted_at: float
    priority: int = 0
    deadline: float | None = None
    datasets: tuple[DatasetId, ...] = ()
    user_location: LocationId | None = None
    max_latency_ms: float | None = None
    preemptible: bool = False
    checkpointable: bool = False
    home_region: str | None = None  # defaults to the tenant's home region


@dataclass(frozen=True, slots=True)
class RunningJob:
    """A job already placed; it holds accelerators (already out of ``available``)."""

    job: Job
    site: SiteId
    accelerator: AcceleratorType
    started_at: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the solver knows at one instant. Immutable; taken once per cycle."""

    sites: tuple[Site, ...]
    links: tuple[Link, ...] = ()
    datasets: tuple[Dataset, ...] = ()
    locations: tuple[Location, ...] = ()
    tenants: tuple[Tenant, ...] = ()
    accelerators: Mapping[AcceleratorType, AcceleratorSpec] = field(default_factory=dict)
    pending: tuple[Job, ...] = ()
    running: tuple[RunningJob, ...] = ()

    def site(self, site_id: SiteId) -> Site:
        for site in self.sites:
            if site.id == site_id:
                return site
        raise KeyError(site_id)

    def home_region(self, job: Job) -> str | None:
        if job.home_region is not None:
            return job.home_region
        for tenant in self.tenants:
            if tenant.id == job.tenant:
                return tenant.home_region
        return None


__all__ = [
    "AcceleratorPool",
    "AcceleratorSpec",
    "Dataset",
    "Gang",
    "Job",
    "Link",
    "Location",
    "RunningJob",
    "Site",
    "SiteSelector",
    "Snapshot",
    "Tariff",
    "Tenant",
    "TouPeriod",
]
