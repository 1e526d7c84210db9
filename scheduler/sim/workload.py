"""Workloads for the simulator: a seeded generator from published trace statistics, or a CSV
trace.

``generate(params, sites, locations, start_s, duration_h)`` draws a week (or any horizon) of
jobs. Every figure is an input (``WorkloadParams``), defaulted from ``/work/shared/data``
(``workloads.md``, ``hubs.yaml``, ``accelerators.yaml``); where the data gives no number the
default is marked ASSUMPTION:

- **Training sizes** (Gavel/POP, Philly-derived): accelerators per job 1: 70%, 2: 10%,
  4: 15%, 8: 5%; plus ``gang_share`` multi-node training gangs of 2/4/8 workers x 8
  accelerators on NVLink-class types (A100/H100/H800/H20).
- **Training durations**: Gavel's 80% at 10^U(1.5,3) minutes and 20% at 10^U(3,4) minutes,
  mixed with a short-job mode (1-20 minutes, log-uniform) because "the real traces are full of
  short debugging runs". ``short_job_share`` = 0.72 is fitted to Philly's "76% of jobs
  <= 1 h"; the mixture then has a median of ~8 min (Helios 3.4 min, Philly 20 min), ~95%
  <= 1 day (Philly 96.5%) and a p99 at the ``max_runtime_h`` cap of 72 h (Philly 80 h).
  Gangs draw from the same distribution (the traces' durations are over all job sizes).
- **Inference** ("inference demand now far exceeds training demand; inference is sold in
  card-hours"): serving blocks of 1/2/4/8 cards (60/25/10/5%, ASSUMPTION) for a lognormal
  number of hours (median ``inference_median_h`` = 4, sigma 1, 15 min to 24 h, ASSUMPTION),
  with a latency SLO to an eastern city. With ``inference_scaling`` = "fixed" (the default) a
  block lasts as long on every card (it serves traffic for a time, it is not a fixed amount
  of work). With "bandwidth" its card-hours scale with memory bandwidth instead (decoding is
  bound by it, accelerators.yaml): the stated hours are on the slowest allowed card and a card
  with k times its bandwidth serves the same traffic in 1/k of the card-hours (the core keeps
  a job's card count on every type, so a shorter run stands in for fewer cards). Hardware by
  model size (the 70B
  memory figures of accelerators.yaml): consumer cards are always allowed when they hold the
  model, and so are the data-centre cards that serve it (H20, A100, Ascend 910B after a CANN
  port, H800/H100 for the largest). ``inference_share`` = 0.65 of jobs makes inference ~2x
  the training card-hours (ASSUMPTION: "far exceeds" has no figure).
- **Arrivals**: Poisson, with a diurnal rate ``rate * (1 + A cos(2 pi (h - peak) / 24))`` in
  local time (Alibaba PAI shows a strong time-of-day pattern).
- **Geography**: every tenant has a home region; jobs come from eastern tenants ``east_west``
  times as often as from western ones (~600,000 vs ~10,000 AI companies either side of the
  Hu Line: 60:1). Inference users are in eastern cities: ``local_users_share`` = 0.7 of an
  inference job's users are in its tenant's own city (the eastern city nearest to its home
  sites), the rest anywhere in the east (ASSUMPTION).
- **Residency**: ``residency_share`` of jobs read a residency-bound dataset (pinned to the
  tenant's home region); their hardware is chosen among what that region has, and an
  inference SLO is at least the round trip to the nearest site that could serve it, so every
  job can run somewhere.

``load_trace(text, source, ...)`` reads a CSV trace instead (columns in docs/simulation.md).
The same parameters and seed always give the same jobs (one ``numpy.random.Generator``; all
per-job draws are made as arrays up front).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from scheduler.core.catalog import BUILTIN_ACCELERATORS
from scheduler.core.geo import rtt_ms
from scheduler.core.ids import AcceleratorType, DatasetId, JobId, LocationId, TenantId
from scheduler.core.model import Dataset, Gang, Job, Location, Site, SiteSelector, Tenant

A = AcceleratorType
CONSUMER: tuple[AcceleratorType, ...] = (
    A("RTX4090-24G"), A("RTX4090-48G"), A("RTX5090-32G"), A("L40S-48G"))
NVLINK: tuple[AcceleratorType, ...] = (A("A100-80G"), A("H100-80G"), A("H800-80G"), A("H20-96G"))

# Allowed-type menus (a job allows one of these sets), with weights.
TRAINING_MENU: tuple[tuple[frozenset[AcceleratorType], float], ...] = (
    (frozenset({A("A100-80G"), A("H800-80G"), A("H100-80G")}), 0.30),
    (frozenset({A("A100-80G"), A("H20-96G")}), 0.20),
    (frozenset({A("H800-80G"), A("H100-80G")}), 0.15),
    (frozenset({A("RTX4090-48G"), A("L40S-48G"), A("A100-80G")}), 0.20),  # small fine-tunes
    (frozenset({A("Ascend910B-64G")}), 0.15),  # ported to CANN
)
GANG_MENU: tuple[tuple[frozenset[AcceleratorType], float], ...] = (
    (frozenset({A("A100-80G"), A("H800-80G"), A("H100-80G")}), 0.5),
    (frozenset({A("H800-80G"), A("H100-80G")}), 0.3),
    (frozenset({A("H20-96G"), A("A100-80G")}), 0.2),
)
# Inference by model size: (allowed types, per-card memory GB, weight). 7-13B models fit any
# card; 30B-class needs >= 32 GB; a 70B model at INT4 ~35-40 GB, at FP8 ~70 GB
# (accelerators.yaml). Consumer cards are allowed wherever they hold the model.
INFERENCE_MENU: tuple[tuple[frozenset[AcceleratorType], float, float], ...] = (
    (frozenset({*CONSUMER, A("A100-80G"), A("H20-96G")}), 0.0, 0.40),
    (frozenset({A("RTX4090-48G"), A("RTX5090-32G"), A("L40S-48G"), A("A100-80G"),
                A("H20-96G")}), 32.0, 0.25),
    (frozenset({A("RTX4090-48G"), A("L40S-48G"), A("A100-80G"), A("H20-96G"),
                A("Ascend910B-64G")}), 40.0, 0.25),
    (frozenset({A("A100-80G"), A("H20-96G"), A("H800-80G"), A("H100-80G")}), 70.0, 0.10),
)
SLO_TIERS_MS: tuple[float, ...] = (15.0, 20.0, 30.0, 50.0)
SLO_TIER_SHARE: tuple[float, ...] = (0.2, 0.3, 0.3, 0.2)
NODE = 8  # accelerators per node of a multi-node gang
DATASETS_PER_TENANT = 2  # one free, one residency-bound
KINDS = ("inference", "training", "gang")


@dataclass(frozen=True, slots=True)
class WorkloadParams:
    """Inputs of the generator (all rates per simulated hour; shares are fractions)."""

    seed: int = 0
    jobs_per_hour: float = 600.0
    diurnal_amplitude: float = 0.5
    peak_local_hour: float = 15.0
    utc_offset_h: float = 8.0
    sizes: tuple[int, ...] = (1, 2, 4, 8)
    size_shares: tuple[float, ...] = (0.70, 0.10, 0.15, 0.05)
    gang_share: float = 0.02
    gang_workers: tuple[int, ...] = (2, 4, 8)
    gang_worker_shares: tuple[float, ...] = (0.5, 0.35, 0.15)
    short_job_share: float = 0.72
    inference_share: float = 0.65
    inference_sizes: tuple[int, ...] = (1, 2, 4, 8)
    inference_size_shares: tuple[float, ...] = (0.60, 0.25, 0.10, 0.05)
    inference_median_h: float = 4.0
    local_users_share: float = 0.7
    residency_share: float = 0.20
    east_west: float = 60.0
    deadline_share: float = 0.10
    tenants: int = 40
    max_runtime_h: float = 72.0
    inference_scaling: str = "fixed"  # or "bandwidth" (see the module docstring)


@dataclass(frozen=True, slots=True)
class Workload:
    """Jobs sorted by submission time, and what they refer to."""

    jobs: tuple[Job, ...]
    datasets: tuple[Dataset, ...] = ()
    tenants: tuple[Tenant, ...] = ()
    kinds: Mapping[JobId, str] = field(default_factory=dict)  # inference | training | gang


class TraceError(ValueError):
    """A CSV trace that cannot be used; the message names the file, row and column."""


# Memory bandwidth, GB/s (data/accelerators.yaml: vendor datasheets; the Ascend 910B figure is
# low confidence, sources give 0.4-1.2 TB/s). Only inference_scaling="bandwidth" reads it.
BANDWIDTH_GBS: Mapping[AcceleratorType, float] = {
    A("RTX4090-24G"): 1008.0, A("RTX4090-48G"): 1008.0, A("RTX5090-32G"): 1792.0,
    A("L40S-48G"): 864.0, A("A100-80G"): 2039.0, A("H100-80G"): 3350.0, A("H800-80G"): 3350.0,
    A("H20-96G"): 4000.0, A("Ascend910B-64G"): 1200.0,
}
INFERENCE_SCALINGS = ("fixed", "bandwidth")


def _bandwidth_runtimes(
    allowed: frozenset[AcceleratorType], hours: float
) -> dict[AcceleratorType, float]:
    """Runtimes of a serving block whose card-hours scale with memory bandwidth: ``hours`` on
    the slowest allowed card (listed first: the simulator reads the first entry as the hours
    the job asked for), proportionally less on faster ones."""
    ordered = sorted(allowed, key=lambda t: (BANDWIDTH_GBS.get(t, 0.0), t))
    slowest = BANDWIDTH_GBS.get(ordered[0], 0.0)
    if slowest <= 0:
        return dict.fromkeys(ordered, hours)
    return {t: round(hours * slowest / BANDWIDTH_GBS.get(t, slowest), 4) for t in ordered}


# --------------------------------------------------------------------------- generator


def _side(site: Site) -> str:
    return site.labels.get("side", "east")


def _picks(rng: np.random.Generator, weights: Sequence[float], n: int) -> np.ndarray:
    """``n`` indices drawn with the given weights (inverse CDF of one uniform each)."""
    cdf = np.cumsum(np.asarray(weights, dtype=np.float64))
    return np.minimum(np.searchsorted(cdf / cdf[-1], rng.random(n), side="right"), cdf.size - 1)


def arrival_times(
    rng: np.random.Generator, params: WorkloadParams, start_s: float, duration_h: float
) -> np.ndarray:
    """Sorted arrival instants (POSIX s) of a Poisson process with a diurnal rate."""
    step_h = 1.0 / 12.0  # the rate is constant within 5-minute bins
    bins = max(1, math.ceil(duration_h / step_h))
    lo = start_s + np.arange(bins) * step_h * 3600.0
    local_h = ((lo / 3600.0) + params.utc_offset_h) % 24.0
    rate = params.jobs_per_hour * (
        1.0 + params.diurnal_amplitude
        * np.cos(2.0 * np.pi * (local_h - params.peak_local_hour) / 24.0))
    width_h = np.minimum(step_h, duration_h - np.arange(bins) * step_h)
    counts = rng.poisson(np.maximum(rate, 0.0) * width_h)
    offsets = rng.random(int(counts.sum())) * np.repeat(width_h, counts) * 3600.0
    return np.sort(np.repeat(lo, counts) + offsets)


def training_hours(rng: np.random.Generator, short_share: float, n: int) -> np.ndarray:
    """``n`` training runtimes (hours): the short-job mode (1-20 min, log-uniform) with
    probability ``short_share``, else Gavel's 80% at 10^U(1.5,3) min, 20% at 10^U(3,4) min."""
    short = rng.random(n) < short_share
    low = rng.random(n) < 0.8
    u = rng.random(n)
    log_min = np.where(
        short, np.log10(1.0) + u * (np.log10(20.0) - np.log10(1.0)),
        np.where(low, 1.5 + 1.5 * u, 3.0 + u))
    return np.asarray(10.0 ** log_min / 60.0, dtype=np.float64)


@dataclass(slots=True)
class _Tenant:
    tenant: Tenant
    side: str
    weight: float
    free: list[Dataset]
    pinned: list[Dataset]
    home_types: frozenset[AcceleratorType]  # types present in the home region
    home_sites: list[Site]


def _tenants(
    rng: np.random.Generator, params: WorkloadParams, sites: Sequence[Site]
) -> list[_Tenant]:
    regions = {side: sorted({s.region for s in sites if _side(s) == side})
               for side in ("east", "west")}
    n_west = 0 if not regions["west"] else max(1, round(params.tenants / 10))
    if not regions["east"]:
        n_west = params.tenants
    out: list[_Tenant] = []
    for i in range(params.tenants):
        side = "west" if i >= params.tenants - n_west else "east"
        home = regions[side][int(rng.integers(len(regions[side])))]
        tid = TenantId(f"tenant-{i:02d}")
        home_sites = [s for s in sites if s.region == home]
        free: list[Dataset] = []
        pinned: list[Dataset] = []
        for k in range(DATASETS_PER_TENANT):
            size = float(np.clip(rng.lognormal(math.log(50.0), 1.2), 1.0, 5000.0))
            replica = home_sites[int(rng.integers(len(home_sites)))].id
            bound = k % 2 == 1
            ds = Dataset(
                id=DatasetId(f"{tid}-ds{k}"), size_gb=round(size, 1), replicas=frozenset({replica}),
                residency=SiteSelector(regions=frozenset({home})) if bound else None)
            (pinned if bound else free).append(ds)
        out.append(_Tenant(
            tenant=Tenant(tid, home), side=side, weight=float(rng.lognormal(0.0, 1.0)),
            free=free, pinned=pinned,
            home_types=frozenset(p.type for s in home_sites for p in s.pools if p.count > 0),
            home_sites=home_sites,
        ))
    # east:west demand ratio by job count
    for side, share in (("east", params.east_west), ("west", 1.0)):
        members = [t for t in out if t.side == side]
        total = sum(t.weight for t in members)
        for t in members:
            t.weight = t.weight / total * share if total else 0.0
    return out


def generate(
    params: WorkloadParams,
    sites: Sequence[Site],
    locations: Sequence[Location],
    start_s: float,
    duration_h: float,
) -> Workload:
    """Draw the jobs arriving over ``duration_h`` hours from ``start_s``. Deterministic in
    ``params.seed``."""
    rng = np.random.default_rng(params.seed)
    tenants = _tenants(rng, params, sites)
    present = frozenset(p.type for s in sites for p in s.pools if p.count > 0)
    eastern = [loc for loc in locations if _side(min(
        sites, key=lambda s: rtt_ms(loc.lat, loc.lon, s.lat, s.lon))) == "east"] or list(locations)
    arrivals = arrival_times(rng, params, start_s, duration_h)
    n = int(arrivals.size)
    # every per-job draw, as arrays (each job uses the ones its kind needs)
    owner_of = _picks(rng, [t.weight for t in tenants], n).tolist()
    kind_roll = rng.random(n)
    bound_roll = (rng.random(n) < params.residency_share).tolist()
    inference_menu = _picks(rng, [m[2] for m in INFERENCE_MENU], n).tolist()
    training_menu = _picks(rng, [m[1] for m in TRAINING_MENU], n).tolist()
    gang_menu = _picks(rng, [m[1] for m in GANG_MENU], n).tolist()
    gang_workers = np.asarray(params.gang_workers)[
        _picks(rng, params.gang_worker_shares, n)].tolist()
    sizes = np.asarray(params.sizes)[_picks(rng, params.size_shares, n)].tolist()
    inference_sizes = np.asarray(params.inference_sizes)[
        _picks(rng, params.inference_size_shares, n)].tolist()
    train_h = np.minimum(training_hours(rng, params.short_job_share, n), params.max_runtime_h)
    serve_h = np.minimum(np.clip(rng.lognormal(math.log(params.inference_median_h), 1.0, n),
                                 0.25, 24.0), params.max_runtime_h)
    users = rng.integers(max(1, len(eastern)), size=n).tolist()
    users_near = (rng.random(n) < params.local_users_share).tolist()
    # each tenant's own city: the eastern location nearest to its home sites
    near_home = [_nearest(eastern, t.home_sites) for t in tenants]
    slo_tier = _picks(rng, SLO_TIER_SHARE, n).tolist()
    dataset_u = rng.random(n).tolist()
    dataset_pick = rng.random(n).tolist()
    deadline_roll = (rng.random(n) < params.deadline_share).tolist()
    slack_factor = rng.uniform(1.5, 4.0, n).tolist()
    slack_h = rng.uniform(1.0, 12.0, n).tolist()
    priorities = _picks(rng, (0.8, 0.15, 0.05), n).tolist()
    checkpoint_roll = (rng.random(n) < 0.5).tolist()
    kinds_of = np.where(
        kind_roll < params.inference_share, 0,
        np.where(kind_roll < params.inference_share + params.gang_share, 2, 1)).tolist()
    nearest_cache: dict[tuple[int, int, frozenset[AcceleratorType], float, bool], float] = {}

    jobs: list[Job] = []
    kinds: dict[JobId, str] = {}
    for i, submitted in enumerate(arrivals.tolist()):
        owner = tenants[owner_of[i]]
        kind = KINDS[kinds_of[i]]
        if kind == "inference" and not eastern:
            kind = "training"
        bound = bound_roll[i] and bool(owner.pinned)
        reach = owner.home_types if bound else present
        memory = 0.0
        allowed: frozenset[AcceleratorType] = frozenset()
        if kind == "inference":
            types, memory, _ = INFERENCE_MENU[inference_menu[i]]
            allowed = _fit(types, memory) & reach
            if not allowed:
                allowed, memory = frozenset(CONSUMER) & reach, 0.0
            if not allowed:  # the home region has no card for it: a training job
                kind = "training"
        if kind == "gang":
            allowed = GANG_MENU[gang_menu[i]][0] & reach
            if not allowed:
                kind = "training"
        if kind == "training":
            allowed = TRAINING_MENU[training_menu[i]][0] & reach
            if not allowed:
                allowed = reach - {A("Ascend910B-64G")} or reach
        user: Location | None = None
        slo: float | None = None
        if kind == "inference":
            hours = round(float(serve_h[i]), 4)
            gang = Gang(1, inference_sizes[i], allowed, min_memory_gb=memory)
            if params.inference_scaling == "bandwidth":
                runtime = _bandwidth_runtimes(allowed, hours)
            else:
                runtime = dict.fromkeys(sorted(allowed), hours)  # a block: as long on any card
            where = near_home[owner_of[i]] if users_near[i] else users[i]
            user = eastern[where]
            key = (where, owner_of[i], allowed, memory, bound)
            nearest = nearest_cache.get(key)
            if nearest is None:
                candidates = owner.home_sites if bound else list(sites)
                usable = [s for s in candidates if any(
                    p.type in allowed and p.count >= gang.accelerators for p in s.pools)]
                nearest = nearest_cache[key] = min(
                    (rtt_ms(user.lat, user.lon, s.lat, s.lon) for s in usable), default=0.0)
            slo = SLO_TIERS_MS[slo_tier[i]]
            if nearest > slo:  # users ask for what exists
                slo = next((t for t in SLO_TIERS_MS if t >= nearest), math.ceil(nearest + 5.0))
        else:
            hours = round(float(train_h[i]), 4)
            if kind == "gang":
                gang = Gang(gang_workers[i], NODE, allowed)
            else:
                gang = Gang(1, sizes[i], allowed)
            # runtimes on the other types follow from speed factors
            runtime = {sorted(allowed)[0]: hours}
        datasets: tuple[DatasetId, ...] = ()
        if bound:
            datasets = (owner.pinned[int(dataset_pick[i] * len(owner.pinned))].id,)
        elif owner.free and dataset_u[i] < 0.6:
            datasets = (owner.free[int(dataset_pick[i] * len(owner.free))].id,)
        deadline = None
        if kind != "inference" and deadline_roll[i]:
            deadline = submitted + 3600.0 * (hours * slack_factor[i] + slack_h[i])
        job_id = JobId(f"j{i:06d}")
        jobs.append(Job(
            id=job_id, tenant=owner.tenant.id, gang=gang, runtime_h=runtime,
            submitted_at=submitted, priority=priorities[i], deadline=deadline,
            datasets=datasets, user_location=user.id if user is not None else None,
            max_latency_ms=slo, checkpointable=kind != "inference" and checkpoint_roll[i],
            home_region=owner.tenant.home_region,
        ))
        kinds[job_id] = kind
    return Workload(
        jobs=tuple(jobs),
        datasets=tuple(d for t in tenants for d in (*t.free, *t.pinned)),
        tenants=tuple(t.tenant for t in tenants),
        kinds=kinds,
    )


def _nearest(places: Sequence[Location], sites: Sequence[Site]) -> int:
    """Index of the location in ``places`` nearest to any of ``sites`` (0 when none)."""
    def distance(k: int) -> float:
        return min((rtt_ms(places[k].lat, places[k].lon, s.lat, s.lon) for s in sites),
                   default=0.0)

    return min(range(len(places)), key=distance) if places else 0


def _fit(types: frozenset[AcceleratorType], memory_gb: float) -> frozenset[AcceleratorType]:
    """The types of ``types`` whose cards hold ``memory_gb``."""
    return frozenset(t for t in types
                     if t not in BUILTIN_ACCELERATORS
                     or BUILTIN_ACCELERATORS[t].memory_gb >= memory_gb)



# --------------------------------------------------------------------------- CSV traces

TRACE_COLUMNS: tuple[str, ...] = (
    "job_id", "submit_h", "tenant", "home_region", "workers", "accelerators_per_worker",
    "accelerator_types", "runtime_h", "runtime_type", "priority", "deadline_h", "datasets",
    "user_location", "max_latency_ms", "min_memory_gb", "kind",
)
REQUIRED_COLUMNS: tuple[str, ...] = (
    "job_id", "submit_h", "tenant", "accelerators_per_worker", "accelerator_types", "runtime_h",
)


def load_trace(
    text: str, source: str, start_s: float, datasets: Sequence[Dataset] = ()
) -> Workload:
    """Jobs from a CSV trace (columns in ``TRACE_COLUMNS``; see docs/simulation.md).

    ``submit_h`` is hours after the scenario start; lists (``accelerator_types``,
    ``datasets``) are separated by ``;``. Raises ``TraceError`` naming the row and column.
    """
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise TraceError(f"{source}: missing column(s) {', '.join(missing)}")
    unknown = [c for c in header if c not in TRACE_COLUMNS]
    if unknown:
        raise TraceError(f"{source}: unknown column(s) {', '.join(unknown)}; "
                         f"known: {', '.join(TRACE_COLUMNS)}")
    known_ds = {d.id for d in datasets}
    jobs: list[Job] = []
    kinds: dict[JobId, str] = {}
    homes: dict[TenantId, str] = {}
    seen: set[str] = set()
    for row_no, row in enumerate(reader, start=2):
        def cell(name: str, row: dict[str, str] = row) -> str:
            return (row.get(name) or "").strip()

        def number(name: str, default: float | None = None, *, row_no: int = row_no) -> float:
            raw = cell(name)
            if not raw:
                if default is None:
                    raise TraceError(f"{source}:{row_no}: {name}: required value is missing")
                return default
            try:
                value = float(raw)
            except ValueError:
                raise TraceError(f"{source}:{row_no}: {name}: not a number: {raw!r}") from None
            if not math.isfinite(value) or value < 0:
                raise TraceError(f"{source}:{row_no}: {name}: must be >= 0, got {raw}")
            return value

        job_id = cell("job_id")
        if not job_id or job_id in seen:
            raise TraceError(f"{source}:{row_no}: job_id: missing or duplicate {job_id!r}")
        seen.add(job_id)
        types = [AcceleratorType(t.strip()) for t in cell("accelerator_types").split(";")
                 if t.strip()]
        if not types:
            raise TraceError(f"{source}:{row_no}: accelerator_types: at least one type")
        reference = AcceleratorType(cell("runtime_type")) if cell("runtime_type") else types[0]
        ds = tuple(DatasetId(d.strip()) for d in cell("datasets").split(";") if d.strip())
        for d in ds:
            if d not in known_ds:
                raise TraceError(f"{source}:{row_no}: datasets: unknown dataset {d!r} (define it "
                                 "under workload.datasets in the scenario)")
        submitted = start_s + 3600.0 * number("submit_h")
        deadline_h = cell("deadline_h")
        latency = cell("max_latency_ms")
        tenant = TenantId(cell("tenant"))
        home = cell("home_region") or None
        if home is not None:
            homes.setdefault(tenant, home)
        per_worker = int(number("accelerators_per_worker"))
        workers = int(number("workers", 1.0))
        if per_worker < 1 or workers < 1:
            raise TraceError(f"{source}:{row_no}: workers and accelerators_per_worker must be >= 1")
        job = Job(
            id=JobId(job_id), tenant=tenant,
            gang=Gang(workers, per_worker, frozenset(types), number("min_memory_gb", 0.0)),
            runtime_h={reference: number("runtime_h")},
            submitted_at=submitted, priority=int(number("priority", 0.0)),
            deadline=submitted + 3600.0 * number("deadline_h") if deadline_h else None,
            datasets=ds,
            user_location=LocationId(cell("user_location")) if cell("user_location") else None,
            max_latency_ms=number("max_latency_ms") if latency else None,
            home_region=home,
        )
        jobs.append(job)
        kinds[job.id] = cell("kind") or ("gang" if workers > 1 else
                                         "inference" if job.max_latency_ms else "training")
    jobs.sort(key=lambda j: (j.submitted_at, j.id))
    return Workload(
        jobs=tuple(jobs), datasets=tuple(datasets),
        tenants=tuple(Tenant(t, h) for t, h in sorted(homes.items())), kinds=kinds)


__all__ = [
    "KINDS",
    "TRACE_COLUMNS",
    "TraceError",
    "Workload",
    "WorkloadParams",
    "arrival_times",
    "generate",
    "load_trace",
]
