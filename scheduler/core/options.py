"""Estimate: group pending jobs into classes and price every option each class has.

This is the first phase of every planner (the optimizer and the baselines alike): it turns a
snapshot and a policy into numbers, so that all planners see the same hard constraints and
the same cost model.

An *option* is a (site, accelerator type) pair, flattened as ``site_index * T + type_index``.
A *job class* is a set of pending jobs that have the same options at the same prices up to a
per-job runtime scale ``d_j``: for job ``j`` of class ``c`` at option ``o``

    runtime_j(o) = d_j * f_c(o)
    cost_j(o)    = d_j * a_c(o) + b_c(o)          (a: energy + rental + latency, b: transfer)
    wait_j       = queue price of leaving j waiting for one horizon

so model size grows with classes, not jobs.

Cost model (every term in CNY, multiplied by the policy's weight for that term):
- energy:   runtime * accelerators * TDP(kW) * PUE * tariff, where the tariff is the site's
            mean time-of-use price over [now, now + runtime], the runtime for that mean being
            rounded to a power of two hours (so that the price is a property of the class);
- rental:   runtime * accelerators * price per accelerator-hour (less the site's subsidy for
            eligible tenants);
- latency:  for jobs with users somewhere: runtime * accelerators * RTT(ms) * latency price;
- transfer: egress of every dataset not replicated at the site, from its cheapest replica,
            plus the queue price of the accelerators held idle while the data moves;
- waiting:  queue price * accelerators * horizon * priority factor, where the priority factor
            is tenant weight * (1 + priority) * (1 + age in days) * deadline urgency.

Hard constraints applied here, in this order (each option removed is counted against the
first constraint that removes it, which is what explanations report): accelerator type and
memory, residency, data reachability, latency SLO, spillover, quota, power cap, capacity.
Capacity, power and quota *shared between jobs* are the planners' business; this phase only
removes options a single gang could never use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from scheduler.core.catalog import merged_catalog
from scheduler.core.graph import SiteGraph
from scheduler.core.ids import AcceleratorType, DatasetId, LocationId, SiteId, TenantId
from scheduler.core.model import Job, Site, Snapshot
from scheduler.core.plan import BlockReason, CostBreakdown
from scheduler.core.policy.model import Policy
from scheduler.core.speed import derive_runtimes, expand_allowed, runtime_per_type, speed_factors
from scheduler.core.tariff import SECONDS_PER_HOUR, mean_tariff_multiplier

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]



@dataclass(frozen=True, slots=True)
class Grid:
    """The (site, accelerator type) grid shared by all classes of one snapshot."""

    sites: tuple[SiteId, ...]
    types: tuple[AcceleratorType, ...]
    available: IntArray  # (S, T) free accelerators now; 0 where the site has no such pool
    count: IntArray  # (S, T) installed accelerators
    kw: FloatArray  # (S, T) facility power of one busy accelerator: TDP * PUE / 1000
    power_headroom_kw: FloatArray  # (S,) cap minus current load; inf when uncapped
    regions: tuple[str, ...]  # per site

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.sites), len(self.types)

    def option(self, flat: int) -> tuple[SiteId, AcceleratorType]:
        s, t = divmod(flat, len(self.types))
        return self.sites[s], self.types[t]


@dataclass(frozen=True, slots=True)
class QuotaRow:
    tenant: TenantId
    headroom: int  # accelerators the tenant may still take


@dataclass(frozen=True, slots=True)
class JobClass:
    """Jobs with identical options and prices up to the runtime scale ``scale``."""

    index: int
    jobs: IntArray  # indices into snapshot.pending
    scale: FloatArray  # d_j, hours on the fastest allowed type (per job)
    wait: FloatArray  # wait_j: delay plus the job's reference cost (per job)
    delay: FloatArray  # weighted cost of one horizon of delay (per job)
    reference: tuple[float, float, float, float]  # (energy, rental, latency) per scale, transfer
    accelerators: int  # g: accelerators the gang holds
    quota: int  # index into Options.quotas, or -1
    options: IntArray  # (O,) feasible flat options
    runtime_factor: FloatArray  # (O,) f_c(o)
    energy: FloatArray  # (O,) weighted CNY per unit of scale
    rental: FloatArray
    latency: FloatArray
    transfer: FloatArray  # (O,) weighted CNY, independent of runtime
    eliminated: Mapping[BlockReason, int] = field(default_factory=dict)
    blocked: BlockReason | None = None  # why no option is left, when none is
    blocked_message: str = ""

    @property
    def per_scale(self) -> FloatArray:
        """a_c(o): cost per unit of runtime scale."""
        return self.energy + self.rental + self.latency

    def power(self, grid: Grid) -> FloatArray:
        """kW drawn by one gang of this class at each option."""
        return self.accelerators * grid.kw.reshape(-1)[self.options]

    def wait_breakdown(self, k: int) -> CostBreakdown:
        """Cost of job k of this class waiting: its delay plus its reference option."""
        d = float(self.scale[k])
        return CostBreakdown(energy=d * self.reference[0], rental=d * self.reference[1],
                             latency=d * self.reference[2], transfer=self.reference[3],
                             queue=float(self.delay[k]))

    def breakdown(self, option_pos: int, scale: float) -> CostBreakdown:
        return CostBreakdown(
            energy=scale * float(self.energy[option_pos]),
            rental=scale * float(self.rental[option_pos]),
            transfer=float(self.transfer[option_pos]),
            latency=scale * float(self.latency[option_pos]),
        )


@dataclass(frozen=True, slots=True)
class Options:
    """The outcome of the estimate phase."""

    grid: Grid
    classes: tuple[JobClass, ...]
    quotas: tuple[QuotaRow, ...]
    job_class: IntArray  # (J,) class index of each pending job
    job_position: IntArray  # (J,) position of each job inside its class


# --------------------------------------------------------------------------- grid


def build_grid(snapshot: Snapshot, policy: Policy) -> Grid:
    sites = snapshot.sites
    types = sorted({pool.type for site in sites for pool in site.pools})
    catalog = merged_catalog(snapshot.accelerators)
    s_n, t_n = len(sites), len(types)
    t_index = {t: i for i, t in enumerate(types)}
    available = np.zeros((s_n, t_n), dtype=np.int64)
    count = np.zeros((s_n, t_n), dtype=np.int64)
    kw = np.zeros((s_n, t_n))
    headroom = np.full(s_n, np.inf)
    for s, site in enumerate(sites):
        busy_kw = 0.0
        for pool in site.pools:
            t = t_index[pool.type]
            spec = catalog.get(pool.type)
            tdp_kw = (spec.tdp_w if spec else 0.0) / 1000.0
            available[s, t] = max(0, pool.available)
            count[s, t] = pool.count
            kw[s, t] = tdp_kw * site.pue
            busy_kw += (pool.count - max(0, pool.available)) * kw[s, t]
        cap = policy.power_caps_kw.get(site.id)
        if cap is not None:
            headroom[s] = cap - busy_kw
    return Grid(
        sites=tuple(site.id for site in sites),
        types=tuple(types),
        available=available,
        count=count,
        kw=kw,
        power_headroom_kw=headroom,
        regions=tuple(site.region for site in sites),
    )


# --------------------------------------------------------------------------- classes


@dataclass(slots=True)
class _Shape:
    """Hardware view of a job: which types, at what runtime factor."""

    type_ok: BoolArray  # (T,)
    best: float  # runtime on the fastest allowed type, in units of the job's smallest estimate
    factor: FloatArray  # (T,) runtime / d_j, inf where not allowed
    no_hw_message: str


@dataclass(slots=True)
class _Place:
    """Site view of a job: which sites, at what fixed transfer cost, per-site latency."""

    stage: IntArray  # (S,) 0 = allowed, else BlockReason ordinal that removed the site
    transfer: FloatArray  # (S,) weighted CNY
    delay_h: FloatArray  # (S,) hours the data takes to arrive
    latency_ms: FloatArray  # (S,) RTT to the job's users, 0 when none
    messages: dict[BlockReason, str]


_STAGES: tuple[BlockReason, ...] = (
    BlockReason.NO_ACCELERATOR,
    BlockReason.RESIDENCY,
    BlockReason.DATA,
    BlockReason.LATENCY,
    BlockReason.SPILLOVER,
    BlockReason.QUOTA,
    BlockReason.POWER_CAP,
    BlockReason.CAPACITY,
)


class _Estimator:
    """Computes shapes and places once per distinct key, then assembles classes."""

    def __init__(self, snapshot: Snapshot, policy: Policy, now: float) -> None:
        self.snapshot = snapshot
        self.policy = policy
        self.now = now
        self.grid = build_grid(snapshot, policy)
        self.catalog = merged_catalog(snapshot.accelerators)
        self.speed = speed_factors(policy, self.catalog)
        self.graph = SiteGraph(snapshot.sites, snapshot.links)
        self.datasets = {d.id: d for d in snapshot.datasets}
        self.locations = {loc.id: loc for loc in snapshot.locations}
        self.site_objs: tuple[Site, ...] = snapshot.sites
        self._shapes: dict[object, _Shape] = {}
        self._places: dict[object, _Place] = {}
        self._tariff_cache: dict[float, FloatArray] = {}
        self._subsidy_cache: dict[object, FloatArray] = {}
        self._latency_cache: dict[LocationId, FloatArray] = {}
        self._dataset_cache: dict[DatasetId, tuple[FloatArray, FloatArray, BoolArray]] = {}
        # tenant matters for the class only if some rule or price depends on it
        self.quota_tenants = {
            t for t, tp in policy.tenants.items() if tp.quota_accelerators is not None
        }
        self.rule_tenants = {t for rule in policy.residency for t in rule.tenants}
        self.subsidy_tenants = {t for site in snapshot.sites for t in site.subsidy_tenants}
        self.tenant_weight = {t: tp.priority_weight for t, tp in policy.tenants.items()}
        self.tenant_home = {t.id: t.home_region for t in snapshot.tenants}
        self.spillover_util = self._spillover_utilisation()
        self.running_by_tenant: dict[TenantId, int] = {}
        for run in snapshot.running:
            self.running_by_tenant[run.job.tenant] = (
                self.running_by_tenant.get(run.job.tenant, 0) + run.job.gang.accelerators
            )

    # ---- per-key computations

    def shape(self, job: Job, signature: tuple[tuple[AcceleratorType, float], ...]) -> _Shape:
        """Hardware view of ``job``; ``signature`` is its runtime estimates divided by the
        smallest one (jobs that differ only in runtime scale share a shape)."""
        gang = job.gang
        key = (gang.allowed_types, gang.min_memory_gb, signature)
        cached = self._shapes.get(key)
        if cached is not None:
            return cached
        allowed = expand_allowed(gang.allowed_types, self.policy)
        types = self.grid.types
        runtimes = derive_runtimes(dict(signature), types, self.speed)
        type_ok = np.zeros(len(types), dtype=bool)
        runtime = np.full(len(types), np.inf)
        unpriced = []  # types the job could use but whose runtime nothing tells
        for i, t in enumerate(types):
            spec = self.catalog.get(t)
            memory = spec.memory_gb if spec else 0.0
            if t in allowed and memory >= gang.min_memory_gb:
                if t in runtimes:
                    type_ok[i] = True
                    runtime[i] = runtimes[t]
                else:
                    unpriced.append(t)
        best = float(runtime[type_ok].min()) if type_ok.any() else 1.0
        no_hw_message = (
            f"no site has {', '.join(sorted(allowed))} with >= {gang.min_memory_gb:g} GB")
        if unpriced and not type_ok.any():
            no_hw_message = (f"no runtime estimate for {', '.join(unpriced)} and no speed "
                             "factor to derive one from the job's estimates")
        shape = _Shape(
            type_ok=type_ok,
            best=best,
            factor=np.where(type_ok, runtime / best, np.inf),
            no_hw_message=no_hw_message,
        )
        self._shapes[key] = shape
        return shape

    def place(self, job: Job, tenant: TenantId | None, home: str | None) -> _Place:
        key = (job.datasets, job.user_location, job.max_latency_ms, tenant, home)
        cached = self._places.get(key)
        if cached is not None:
            return cached
        s_n = len(self.grid.sites)
        stage = np.zeros(s_n, dtype=np.int64)
        messages: dict[BlockReason, str] = {}

        def cut(mask: BoolArray, reason: BlockReason, message: str) -> None:
            newly = (stage == 0) & ~mask
            if newly.any():
                stage[newly] = _STAGES.index(reason) + 1
                messages.setdefault(reason, message)

        # residency: datasets' own rules, then the policy's rules
        for ds_id in job.datasets:
            ds = self.datasets.get(ds_id)
            if ds is not None and ds.residency is not None:
                pinned = ds.residency
                cut(np.array([pinned.selects(s) for s in self.site_objs]), BlockReason.RESIDENCY,
                    f"dataset {ds_id} must stay on {_describe(pinned)}")
        for rule in self.policy.residency:
            if not ((rule.datasets & set(job.datasets)) or job.tenant in rule.tenants):
                continue
            if rule.allow is not None:
                allow = rule.allow
                cut(np.array([allow.selects(s) for s in self.site_objs]), BlockReason.RESIDENCY,
                    f"residency rule '{rule.name}' allows only {_describe(allow)}")
            if rule.within is not None:
                # an unknown location is infinitely far: the rule fails closed
                lat = self._latency(rule.within.location)
                unknown = "" if rule.within.location in self.locations else " (unknown location)"
                cut(lat <= rule.within.max_ms, BlockReason.RESIDENCY,
                    f"residency rule '{rule.name}' requires <= {rule.within.max_ms:g} ms "
                    f"from {rule.within.location}{unknown}")
        # data: every dataset must reach the site
        transfer = np.zeros(s_n)
        delay = np.zeros(s_n)
        for ds_id in job.datasets:
            if ds_id not in self.datasets:  # nothing shows where it is or where it may go
                cut(np.zeros(s_n, dtype=bool), BlockReason.DATA,
                    f"dataset {ds_id} is not in the snapshot")
                continue
            cny, hours, ok = self._dataset(ds_id)
            cut(ok, BlockReason.DATA, f"dataset {ds_id} has no route to the remaining sites")
            transfer += np.where(ok, cny, 0.0)
            delay += np.where(ok, hours, 0.0)
        # latency SLO
        latency = np.zeros(s_n)
        if job.user_location is not None and job.user_location in self.locations:
            latency = self._latency(job.user_location)
            if job.max_latency_ms is not None:
                cut(latency <= job.max_latency_ms, BlockReason.LATENCY,
                    f"latency SLO {job.max_latency_ms:g} ms from {job.user_location}")
        elif job.user_location is not None and job.max_latency_ms is not None:
            cut(np.zeros(s_n, dtype=bool), BlockReason.LATENCY,
                f"latency SLO from unknown location {job.user_location}")
        # spillover
        if home is not None:
            for spill, util in zip(self.policy.spillover, self.spillover_util, strict=True):
                source = np.array([spill.source.selects(s) for s in self.site_objs])
                home_sites = np.array([s.region == home for s in self.site_objs])
                if not (source & home_sites).any():
                    continue
                target = np.array([spill.target.selects(s) for s in self.site_objs])
                allowed = source | target if util >= spill.above else source
                cut(allowed, BlockReason.SPILLOVER,
                    f"spillover rule '{spill.name}': source utilisation {util:.0%} "
                    f"{'>=' if util >= spill.above else '<'} {spill.above:.0%}")
        weights = self.policy.objective
        place = _Place(
            stage=stage,
            transfer=weights.transfer * transfer,
            delay_h=delay,
            latency_ms=latency,
            messages=messages,
        )
        self._places[key] = place
        return place

    def _latency(self, location: LocationId) -> FloatArray:
        cached = self._latency_cache.get(location)
        if cached is None:
            loc = self.locations.get(location)
            cached = (np.full(len(self.grid.sites), np.inf) if loc is None else
                      np.array([self.graph.user_latency_ms(loc, s) for s in self.grid.sites]))
            self._latency_cache[location] = cached
        return cached

    def _dataset(self, ds_id: DatasetId) -> tuple[FloatArray, FloatArray, BoolArray]:
        cached = self._dataset_cache.get(ds_id)
        if cached is None:
            # from the cheapest replica (ties: fastest, then by name), as SiteGraph.transfer
            ds = self.datasets[ds_id]
            n = len(self.grid.sites)
            cny, hours = np.full(n, np.inf), np.full(n, np.inf)
            for replica in sorted(ds.replicas):
                if replica not in self.graph.sites:
                    continue
                egress, bottleneck, reach = self.graph.route_arrays(replica, self.grid.sites)
                r_cny = np.where(reach, ds.size_gb * egress, np.inf)
                moving = (ds.size_gb > 0) & np.isfinite(bottleneck)
                r_hours = np.where(
                    reach,
                    np.where(moving, ds.size_gb * 8.0 / np.where(moving, bottleneck, 1.0)
                             / 3600.0, 0.0),
                    np.inf)
                better = (r_cny < cny) | ((r_cny == cny) & (r_hours < hours))
                cny = np.where(better, r_cny, cny)
                hours = np.where(better, r_hours, hours)
            ok = np.isfinite(cny)
            cached = (np.where(ok, cny, 0.0), np.where(ok, hours, 0.0), ok)
            self._dataset_cache[ds_id] = cached
        return cached

    def tariff(self, hours: float) -> FloatArray:
        """(S,) mean CNY/kWh over [now, now + hours] at every site."""
        cached = self._tariff_cache.get(hours)
        if cached is None:
            cached = np.array([
                s.tariff.base_cny_per_kwh * mean_tariff_multiplier(s.tariff, self.now, hours)
                for s in self.site_objs
            ])
            self._tariff_cache[hours] = cached
        return cached

    def _spillover_utilisation(self) -> list[float]:
        out = []
        for rule in self.policy.spillover:
            total = used = 0
            for site in self.snapshot.sites:
                if rule.source.selects(site):
                    for pool in site.pools:
                        total += pool.count
                        used += pool.count - max(0, pool.available)
            out.append(used / total if total else 0.0)
        return out

    def subsidy(self, tenant: object) -> FloatArray:
        """(S,) fraction off the rental price for ``tenant`` at each site."""
        cached = self._subsidy_cache.get(tenant)
        if cached is None:
            cached = np.array([s.subsidy_discount if tenant in s.subsidy_tenants else 0.0
                               for s in self.site_objs])
            self._subsidy_cache[tenant] = cached
        return cached



def _delay_costs(
    policy: Policy,
    now: float,
    priority: FloatArray,
    submitted: FloatArray,
    deadline: FloatArray,
    weight: FloatArray,
    accelerators: FloatArray,
    fastest_h: FloatArray,
) -> FloatArray:
    """Weighted cost of leaving each job waiting for one planning horizon:
    queue price * accelerators * horizon * tenant weight * (1 + priority) * (1 + age in days)
    * (1 + 3 * deadline urgency), urgency growing from 0 to 1 as the slack left after the
    job's runtime falls from 24 h to 0."""
    w = policy.objective
    factor = weight * (1.0 + np.maximum(priority, 0.0))
    factor = factor * (1.0 + np.maximum(0.0, now - submitted) / 86400.0)
    slack_h = (deadline - now) / SECONDS_PER_HOUR - fastest_h
    urgency = np.where(np.isnan(deadline), 0.0,
                       np.clip(1.0 - np.nan_to_num(slack_h, nan=24.0) / 24.0, 0.0, 1.0))
    factor = factor * (1.0 + 3.0 * urgency)
    return np.asarray(w.queue * w.queue_cny_per_accelerator_hour * accelerators
                      * w.wait_horizon_h * factor, dtype=np.float64)


def _describe(selector: object) -> str:
    parts = []
    for name in ("sites", "regions", "hubs"):
        values = getattr(selector, name)
        if values:
            parts.append(f"{name} {', '.join(sorted(values))}")
    labels = selector.labels  # type: ignore[attr-defined]
    if labels:
        parts.append("labels " + ", ".join(f"{k}={v}" for k, v in sorted(labels.items())))
    return "; ".join(parts) or "no site"


def estimate(snapshot: Snapshot, policy: Policy, now: float) -> Options:
    """Group ``snapshot.pending`` into classes and price their options. Pure."""
    est = _Estimator(snapshot, policy, now)
    grid = est.grid
    s_n, t_n = grid.shape

    # 1. Key every job. Jobs that share a key share options and prices up to d_j. This
    #    loop is the only per-job Python work; everything after it is per class or numpy.
    n_jobs = len(snapshot.pending)
    relevant_tenants = est.quota_tenants | est.rule_tenants | est.subsidy_tenants
    shape_ids: dict[int, int] = {}
    shapes: list[_Shape] = []
    base_keys: dict[tuple[int, int, int, TenantId | None], int] = {}
    seen: dict[tuple[object, ...], tuple[int, int]] = {}
    base_of = np.empty(n_jobs, dtype=np.int64)
    shape_of = np.empty(n_jobs, dtype=np.int64)
    smallest = np.empty(n_jobs)
    priority = np.empty(n_jobs)
    submitted = np.empty(n_jobs)
    deadline = np.full(n_jobs, np.nan)
    weight = np.empty(n_jobs)
    gang_size = np.empty(n_jobs)
    tenant_weight = est.tenant_weight
    spill = bool(policy.spillover)
    for j, job in enumerate(snapshot.pending):
        runtime = job.runtime_h
        if len(runtime) == 1:
            ((t, h),) = runtime.items()
            low = h if h > 0 else 1.0
            signature: tuple[tuple[AcceleratorType, float], ...] = ((t, 1.0),) if h > 0 else ()
        else:
            low = min((h for h in runtime.values() if h > 0), default=1.0)
            signature = tuple(sorted((t, round(h / low, 9)) for t, h in runtime.items() if h > 0))
        tenant = job.tenant if job.tenant in relevant_tenants else None
        home = (job.home_region or est.tenant_home.get(job.tenant)) if spill else None
        # one lookup per job in the common case: everything the base depends on
        job_key = (job.gang, signature, job.datasets, job.user_location, job.max_latency_ms,
                   tenant, home)
        hit = seen.get(job_key)
        if hit is None:
            shape = est.shape(job, signature)
            sid = shape_ids.get(id(shape))
            if sid is None:
                sid = shape_ids[id(shape)] = len(shapes)
                shapes.append(shape)
            place = est.place(job, tenant, home)
            key = (sid, id(place), job.gang.accelerators, tenant)
            b = base_keys.get(key)
            if b is None:
                b = base_keys[key] = len(base_keys)
            hit = seen[job_key] = (b, sid)
        b, sid = hit
        base_of[j] = b
        shape_of[j] = sid
        smallest[j] = low
        priority[j] = job.priority
        submitted[j] = job.submitted_at
        if job.deadline is not None:
            deadline[j] = job.deadline
        weight[j] = tenant_weight.get(job.tenant, 1.0)
        gang_size[j] = job.gang.accelerators
    best = np.array([sh.best for sh in shapes]) if shapes else np.zeros(0)
    scale_arr = smallest * best[shape_of] if n_jobs else np.zeros(0)
    delay_arr = _delay_costs(policy, now, priority, submitted, deadline, weight, gang_size,
                             smallest)
    window_exp = np.round(np.log2(np.maximum(scale_arr, 1e-6))).astype(np.int64)
    class_key = base_of * 4096 + (window_exp + 2048)
    keys, first_seen, inverse = np.unique(class_key, return_index=True, return_inverse=True)
    order = np.argsort(first_seen, kind="stable")  # classes in order of their first job
    members_of = np.argsort(inverse, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(inverse, minlength=keys.size))])
    base_list = list(base_keys)

    # 2. Price each class on the grid.
    quota_rows: list[QuotaRow] = []
    quota_index: dict[TenantId, int] = {}
    for tenant_id in sorted(est.quota_tenants):
        quota = policy.tenants[tenant_id].quota_accelerators
        assert quota is not None
        quota_index[tenant_id] = len(quota_rows)
        quota_rows.append(QuotaRow(tenant_id, quota - est.running_by_tenant.get(tenant_id, 0)))

    classes: list[JobClass] = []
    job_class = np.zeros(len(snapshot.pending), dtype=np.int64)
    job_position = np.zeros(len(snapshot.pending), dtype=np.int64)
    rental_grid = np.zeros((s_n, t_n))
    t_index = {t: i for i, t in enumerate(grid.types)}
    for s, site in enumerate(snapshot.sites):
        for pool in site.pools:
            rental_grid[s, t_index[pool.type]] = pool.price_cny_per_hour
    bases: dict[int, _Base] = {}
    places_by_id = {id(p): p for p in est._places.values()}
    base_places = [places_by_id[place_id] for _, place_id, _, _ in base_list]
    quota_of = [quota_index.get(tenant, -1) if tenant is not None else -1
                for _, _, _, tenant in base_list]
    table = _BaseTable.build(base_list, shapes, base_places, quota_of, quota_rows, est,
                             rental_grid)
    for u in order.tolist():
        members = members_of[bounds[u]:bounds[u + 1]]
        b = int(keys[u] // 4096)
        base = bases.get(b)
        if base is None:
            shape_id, _, gang, tenant = base_list[b]
            base = table.base(b, shapes[shape_id], base_places[b], gang, tenant, quota_of[b],
                              len(bases))
            bases[b] = base
        window = float(2.0 ** (int(keys[u] % 4096) - 2048))
        c = len(classes)
        job_class[members] = c
        job_position[members] = np.arange(len(members))
        tariff = est.tariff(window)
        energy = base.energy_per_tariff * tariff[base.sites]
        # the reference option: the cheapest the job could ever get, capacity aside; a
        # waiting job is charged it (it will run eventually) plus the cost of the delay
        if base.ref_sites.size:
            ref_energy = base.ref_energy_per_tariff * tariff[base.ref_sites]
            ref_total = window * (ref_energy + base.ref_rental + base.ref_latency) \
                + base.ref_transfer
            r = int(np.argmin(ref_total))
            ref_terms = (float(ref_energy[r]), float(base.ref_rental[r]),
                         float(base.ref_latency[r]), float(base.ref_transfer[r]))
        else:
            ref_terms = (0.0, 0.0, 0.0, 0.0)
        scale = scale_arr[members]
        delay = delay_arr[members]
        wait = delay + scale * (ref_terms[0] + ref_terms[1] + ref_terms[2]) + ref_terms[3]
        classes.append(JobClass(
            index=c,
            jobs=members,
            scale=scale,
            wait=wait,
            delay=delay,
            reference=ref_terms,
            accelerators=base.accelerators,
            quota=base.quota,
            options=base.options,
            runtime_factor=base.runtime_factor,
            energy=energy,
            rental=base.rental,
            latency=base.latency,
            transfer=base.transfer,
            eliminated=base.eliminated,
            blocked=base.blocked,
            blocked_message=base.blocked_message,
        ))
    return Options(grid, tuple(classes), tuple(quota_rows), job_class, job_position)


@dataclass(frozen=True, slots=True)
class _Base:
    """What classes differing only in runtime window share: options and window-free prices."""

    index: int
    accelerators: int
    quota: int
    options: IntArray
    sites: IntArray
    runtime_factor: FloatArray
    energy_per_tariff: FloatArray  # weighted energy per unit of scale per CNY/kWh
    rental: FloatArray
    latency: FloatArray
    transfer: FloatArray
    ref_sites: IntArray
    ref_energy_per_tariff: FloatArray
    ref_rental: FloatArray
    ref_latency: FloatArray
    ref_transfer: FloatArray
    eliminated: Mapping[BlockReason, int]
    blocked: BlockReason | None
    blocked_message: str


@dataclass(frozen=True, slots=True)
class _BaseTable:
    """Every base's stages and window-free prices on the whole grid, computed for all bases
    of a snapshot at once: a few numpy operations on (bases, S*T) arrays instead of dozens
    per base. ``base`` then slices one base's options out. Each element is computed with the
    same operations in the same order as one base at a time would, so the figures are
    identical."""

    stage: IntArray  # (B, S*T) 0 = feasible, else 1 + index into _STAGES
    counts: IntArray  # (B, len(_STAGES) + 1) cells per stage
    feasible_rows: IntArray  # row starts into feasible_cols, (B + 1,)
    feasible_cols: IntArray
    conceivable_rows: IntArray
    conceivable_cols: IntArray
    hw_any: BoolArray  # (B,) some site has a type the job can use
    hw_max_stage: IntArray  # (B,) the last stage that removed a hardware-capable option
    energy: FloatArray  # (B, S*T) weighted energy per unit of scale per CNY/kWh
    rental: FloatArray  # (B, S*T) per unit of scale
    latency: FloatArray  # (B, S*T) per unit of scale
    transfer: FloatArray  # (B, S*T) CNY, data transfer plus its delay

    @classmethod
    def build(
        cls,
        base_list: Sequence[tuple[int, int, int, TenantId | None]],
        shapes: Sequence[_Shape],
        places: Sequence[_Place],
        quota_of: Sequence[int],
        quota_rows: Sequence[QuotaRow],
        est: _Estimator,
        rental_grid: FloatArray,
    ) -> _BaseTable:
        grid, weights = est.grid, est.policy.objective
        s_n, t_n = grid.shape
        n = len(base_list)
        cells = s_n * t_n
        type_ok = np.array([shapes[sid].type_ok for sid, _, _, _ in base_list],
                           dtype=bool).reshape(n, t_n)
        factor = np.array([shapes[sid].factor for sid, _, _, _ in base_list],
                          dtype=np.float64).reshape(n, t_n)
        place_stage = np.array([p.stage for p in places], dtype=np.int64).reshape(n, s_n)
        g = np.array([gang for _, _, gang, _ in base_list], dtype=np.int64)
        g3 = g[:, None, None]
        hw_ok = (grid.count > 0)[None, :, :] & type_ok[:, None, :]
        stage = np.where(hw_ok, place_stage[:, :, None], 1)
        over_quota = np.array([q >= 0 and quota_rows[q].headroom < gang
                               for q, (_, _, gang, _) in zip(quota_of, base_list, strict=True)],
                              dtype=bool).reshape(n)
        stage[(stage == 0) & over_quota[:, None, None]] = _STAGES.index(BlockReason.QUOTA) + 1
        stage[(stage == 0) & (g3 * grid.kw[None, :, :] > grid.power_headroom_kw[None, :, None]
                              + 1e-9)] = _STAGES.index(BlockReason.POWER_CAP) + 1
        stage[(stage == 0) & (grid.available[None, :, :] < g3)] = (
            _STAGES.index(BlockReason.CAPACITY) + 1)
        k = len(_STAGES) + 1
        flat_stage = stage.reshape(n, cells)
        counts = np.bincount((flat_stage + k * np.arange(n)[:, None]).reshape(-1),
                             minlength=n * k).reshape(n, k)
        hw_flat = hw_ok.reshape(n, cells)
        f_rows, f_cols = np.nonzero(flat_stage == 0)
        c_rows, c_cols = np.nonzero(
            (flat_stage == 0) | (flat_stage > _STAGES.index(BlockReason.QUOTA)))
        starts = np.arange(n + 1)
        # prices on every cell (the same expressions as one base at a time; cells a job
        # cannot use hold inf or nan and are never selected)
        kw = grid.kw.reshape(1, cells)
        f = np.broadcast_to(factor[:, None, :], (n, s_n, t_n)).reshape(n, cells)
        gc = g[:, None]
        discount = np.repeat(np.array([est.subsidy(tenant) for _, _, _, tenant in base_list],
                                      dtype=np.float64).reshape(n, s_n), t_n, axis=1)
        latency_ms = np.repeat(np.array([p.latency_ms for p in places],
                                        dtype=np.float64).reshape(n, s_n), t_n, axis=1)
        delay_h = np.repeat(np.array([p.delay_h for p in places],
                                     dtype=np.float64).reshape(n, s_n), t_n, axis=1)
        transfer = np.repeat(np.array([p.transfer for p in places],
                                      dtype=np.float64).reshape(n, s_n), t_n, axis=1)
        queue_coef = np.array([weights.queue * weights.queue_cny_per_accelerator_hour * gang
                               for _, _, gang, _ in base_list], dtype=np.float64).reshape(n, 1)
        with np.errstate(invalid="ignore", over="ignore"):
            energy = weights.energy * f * gc * kw
            rental = (weights.rental * f * gc * rental_grid.reshape(1, cells)
                      * (1.0 - discount))
            latency = (weights.latency * weights.latency_cny_per_ms_hour * f * gc
                       * latency_ms)
            moved = transfer + queue_coef * delay_h
        return cls(
            stage=flat_stage, counts=counts,
            feasible_rows=np.searchsorted(f_rows, starts), feasible_cols=f_cols.astype(np.int64),
            conceivable_rows=np.searchsorted(c_rows, starts),
            conceivable_cols=c_cols.astype(np.int64),
            hw_any=hw_flat.any(axis=1),
            hw_max_stage=np.where(hw_flat, flat_stage, 0).max(axis=1, initial=0),
            energy=energy, rental=rental, latency=latency, transfer=moved,
        )

    def base(
        self, b: int, shape: _Shape, place: _Place, g: int, tenant: object, q: int, index: int
    ) -> _Base:
        """Base ``b`` (a row of the table) as one ``_Base``."""
        t_n = shape.type_ok.size
        flat = self.feasible_cols[self.feasible_rows[b]:self.feasible_rows[b + 1]]
        conceivable = self.conceivable_cols[
            self.conceivable_rows[b]:self.conceivable_rows[b + 1]]
        counts = self.counts[b]
        eliminated = {reason: int(counts[i + 1]) for i, reason in enumerate(_STAGES)
                      if counts[i + 1]}
        blocked: BlockReason | None = None
        message = ""
        if flat.size == 0:
            if not self.hw_any[b]:
                blocked, message = BlockReason.NO_ACCELERATOR, shape.no_hw_message
            else:
                # the last stage that removed a hardware-capable option is what blocks the job
                blocked = _STAGES[int(self.hw_max_stage[b]) - 1]
                message = place.messages.get(blocked) or _transient_message(blocked, tenant)
        return _Base(
            index=index, accelerators=g, quota=q, options=flat, sites=flat // t_n,
            runtime_factor=shape.factor[flat % t_n],
            energy_per_tariff=self.energy[b, flat], rental=self.rental[b, flat],
            latency=self.latency[b, flat], transfer=self.transfer[b, flat],
            ref_sites=conceivable // t_n, ref_energy_per_tariff=self.energy[b, conceivable],
            ref_rental=self.rental[b, conceivable], ref_latency=self.latency[b, conceivable],
            ref_transfer=self.transfer[b, conceivable],
            eliminated=eliminated, blocked=blocked, blocked_message=message,
        )


def _transient_message(reason: BlockReason, tenant: object) -> str:
    if reason is BlockReason.QUOTA:
        return f"tenant {tenant} has used its accelerator quota"
    if reason is BlockReason.POWER_CAP:
        return "every remaining site is at its power cap"
    if reason is BlockReason.CAPACITY:
        return "no remaining site has enough free accelerators of an allowed type"
    return str(reason.value)


__all__ = [
    "Grid",
    "JobClass",
    "Options",
    "QuotaRow",
    "build_grid",
    "estimate",
    "expand_allowed",
    "mean_tariff_multiplier",
    "runtime_per_type",
    "speed_factors",
]
