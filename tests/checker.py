"""An independent plan checker: re-derives every hard constraint from the raw snapshot and policy.

It deliberately does not import ``scheduler.core.options``, ``assemble`` or ``solver``: a
checker that shared the planners' estimate would share their bugs. It reads the domain model,
the catalog, the latency estimate (``scheduler.core.geo``) and the policy, and walks the
links itself.

``check_plan`` returns violations as readable strings, each starting with a tag naming the
constraint ("capacity: ...", "residency: ..."), so tests can tell which rule was broken.
An empty list means the plan is feasible.

Where the snapshot leaves a rule unverifiable (a latency SLO or a ``within`` rule naming an
unknown location, a job reading an unknown dataset) the checker fails closed: placing such a
job is reported, because nobody can show that the rule holds.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field

from scheduler.core.catalog import BUILTIN_ACCELERATORS
from scheduler.core.geo import rtt_ms
from scheduler.core.ids import AcceleratorType, DatasetId, LocationId, SiteId, TenantId
from scheduler.core.model import AcceleratorSpec, Dataset, Job, Location, Site, Snapshot
from scheduler.core.plan import Placement, Plan
from scheduler.core.policy.model import Policy

TAGS = (
    "missing", "duplicate", "unknown-job", "site", "type", "memory", "pool", "gang",
    "capacity", "power", "quota", "residency", "latency", "data", "spillover",
    "objective", "bound", "cost",
)

# Relative slack for float sums: charging power one gang at a time and summing it at once
# differ in the last bits.
_REL = 1e-6


@dataclass
class _World:
    """The snapshot and policy indexed for lookups."""

    snapshot: Snapshot
    policy: Policy
    sites: dict[SiteId, Site] = field(init=False)
    datasets: dict[DatasetId, Dataset] = field(init=False)
    locations: dict[LocationId, Location] = field(init=False)
    catalog: dict[AcceleratorType, AcceleratorSpec] = field(init=False)
    neighbours: dict[SiteId, set[SiteId]] = field(init=False)
    _reach: dict[frozenset[SiteId], set[SiteId]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        snap = self.snapshot
        self.sites = {site.id: site for site in snap.sites}
        self.datasets = {d.id: d for d in snap.datasets}
        self.locations = {loc.id: loc for loc in snap.locations}
        self.catalog = dict(BUILTIN_ACCELERATORS)
        self.catalog.update(snap.accelerators)
        self.neighbours = defaultdict(set)
        for link in snap.links:
            if link.a in self.sites and link.b in self.sites:
                self.neighbours[link.a].add(link.b)
                self.neighbours[link.b].add(link.a)

    def reachable(self, sources: frozenset[SiteId]) -> set[SiteId]:
        """Sites connected by links to any of ``sources`` that is a known site."""
        found = self._reach.get(sources)
        if found is None:
            found = {s for s in sources if s in self.sites}
            queue = deque(found)
            while queue:
                for nxt in self.neighbours[queue.popleft()]:
                    if nxt not in found:
                        found.add(nxt)
                        queue.append(nxt)
            self._reach[sources] = found
        return found

    def kw(self, site: Site, accelerator: AcceleratorType) -> float:
        """Facility power of one busy accelerator: TDP * PUE."""
        spec = self.catalog.get(accelerator)
        return (spec.tdp_w if spec is not None else 0.0) / 1000.0 * site.pue


def check_plan(snapshot: Snapshot, policy: Policy, now: float, plan: Plan) -> list[str]:
    """Every hard constraint ``plan`` breaks, as readable strings (empty when feasible)."""
    del now  # the hard constraints do not depend on the time; kept for the planner signature
    out: list[str] = []
    world = _World(snapshot, policy)
    jobs = {job.id: job for job in snapshot.pending}

    # 1. Every pending job exactly once, nothing else.
    seen = Counter([p.job for p in plan.placements] + [w.job for w in plan.waits])
    for job_id in jobs:
        if seen[job_id] == 0:
            out.append(f"missing: job {job_id} is neither placed nor waiting")
        elif seen[job_id] > 1:
            out.append(f"duplicate: job {job_id} appears {seen[job_id]} times")
    for job_id in seen:
        if job_id not in jobs:
            out.append(f"unknown-job: the plan names {job_id}, which is not pending")

    # 2. Each placement on its own.
    valid: list[tuple[Placement, Job, Site]] = []
    for p in plan.placements:
        job = jobs.get(p.job)
        if job is None:
            continue
        site = world.sites.get(p.site)
        if site is None:
            out.append(f"site: job {p.job} is placed on unknown site {p.site}")
            continue
        out.extend(_check_hardware(p, job, site, world))
        out.extend(_check_residency(p, job, site, world))
        out.extend(_check_latency(p, job, site, world))
        out.extend(_check_data(p, job, world))
        out.extend(_check_spillover(p, job, site, world))
        valid.append((p, job, site))

    # 3. Shared capacity: pools, site power caps, tenant quotas.
    out.extend(_check_shared(valid, world))

    # 4. The plan's numbers.
    out.extend(_check_numbers(plan))
    return out


# --------------------------------------------------------------------------- per placement


def _allowed_types(job: Job, policy: Policy) -> set[AcceleratorType]:
    allowed = set(job.gang.allowed_types)
    for group in policy.accelerators.equivalences:
        if job.gang.allowed_types & group:
            allowed |= group
    return allowed


def _check_hardware(p: Placement, job: Job, site: Site, world: _World) -> list[str]:
    out = []
    if p.accelerator not in _allowed_types(job, world.policy):
        out.append(f"type: job {p.job} does not allow {p.accelerator} "
                   f"(allows {', '.join(sorted(job.gang.allowed_types))})")
    spec = world.catalog.get(p.accelerator)
    memory = spec.memory_gb if spec is not None else 0.0
    if memory < job.gang.min_memory_gb:
        out.append(f"memory: job {p.job} needs {job.gang.min_memory_gb:g} GB, "
                   f"{p.accelerator} has {memory:g} GB")
    pool = site.pool(p.accelerator)
    if pool is None or pool.count <= 0:
        out.append(f"pool: site {site.id} has no {p.accelerator} pool (job {p.job})")
    wanted = job.gang.workers * job.gang.accelerators_per_worker
    if p.accelerators != wanted:
        out.append(f"gang: job {p.job} holds {p.accelerators} accelerators, its gang needs "
                   f"{wanted}")
    return out


def _rtt(loc: Location, site: Site) -> float:
    return rtt_ms(loc.lat, loc.lon, site.lat, site.lon)


def _check_residency(p: Placement, job: Job, site: Site, world: _World) -> list[str]:
    out = []
    for ds_id in job.datasets:
        ds = world.datasets.get(ds_id)
        if ds is not None and ds.residency is not None and not ds.residency.selects(site):
            out.append(f"residency: dataset {ds_id} of job {p.job} may not be processed on "
                       f"{site.id}")
    for rule in world.policy.residency:
        if not (rule.datasets & set(job.datasets) or job.tenant in rule.tenants):
            continue
        if rule.allow is not None and not rule.allow.selects(site):
            out.append(f"residency: rule '{rule.name}' does not allow job {p.job} on {site.id}")
        if rule.within is not None:
            loc = world.locations.get(rule.within.location)
            if loc is None:
                out.append(f"residency: rule '{rule.name}' names unknown location "
                           f"{rule.within.location}; job {p.job} cannot be shown within it")
            elif _rtt(loc, site) > rule.within.max_ms:
                out.append(f"residency: rule '{rule.name}' needs <= {rule.within.max_ms:g} ms "
                           f"from {loc.id}; {site.id} is {_rtt(loc, site):.2f} ms away "
                           f"(job {p.job})")
    return out


def _check_latency(p: Placement, job: Job, site: Site, world: _World) -> list[str]:
    if job.user_location is None or job.max_latency_ms is None:
        return []
    loc = world.locations.get(job.user_location)
    if loc is None:
        return [f"latency: job {p.job} has an SLO from unknown location {job.user_location}"]
    if _rtt(loc, site) > job.max_latency_ms:
        return [f"latency: job {p.job} allows {job.max_latency_ms:g} ms from {loc.id}; "
                f"{site.id} is {_rtt(loc, site):.2f} ms away"]
    return []


def _check_data(p: Placement, job: Job, world: _World) -> list[str]:
    out = []
    for ds_id in job.datasets:
        ds = world.datasets.get(ds_id)
        if ds is None:
            out.append(f"data: job {p.job} reads unknown dataset {ds_id}")
        elif p.site not in world.reachable(ds.replicas):
            out.append(f"data: dataset {ds_id} cannot reach {p.site} from its replicas "
                       f"{', '.join(sorted(ds.replicas))} (job {p.job})")
    return out


def _utilisation(sites: list[Site]) -> float:
    total = sum(pool.count for site in sites for pool in site.pools)
    busy = sum(pool.count - max(0, pool.available) for site in sites for pool in site.pools)
    return busy / total if total else 0.0


def _check_spillover(p: Placement, job: Job, site: Site, world: _World) -> list[str]:
    home = world.snapshot.home_region(job)
    if home is None:
        return []
    out = []
    for rule in world.policy.spillover:
        source = [s for s in world.snapshot.sites if rule.source.selects(s)]
        if home not in {s.region for s in source} or rule.source.selects(site):
            continue
        util = _utilisation(source)
        if not rule.target.selects(site):
            out.append(f"spillover: rule '{rule.name}' lets job {p.job} leave its source sites "
                       f"only for target sites; {site.id} is not one")
        elif util < rule.above:
            out.append(f"spillover: rule '{rule.name}' lets job {p.job} spill to {site.id} only "
                       f"at source utilisation >= {rule.above:.3f}; it is {util:.3f}")
    return out


# --------------------------------------------------------------------------- shared capacity


def _check_shared(placed: list[tuple[Placement, Job, Site]], world: _World) -> list[str]:
    out = []
    pool_use: dict[tuple[SiteId, AcceleratorType], int] = defaultdict(int)
    site_kw: dict[SiteId, float] = defaultdict(float)
    tenant_use: dict[TenantId, int] = defaultdict(int)
    for p, job, site in placed:
        pool_use[(site.id, p.accelerator)] += p.accelerators
        site_kw[site.id] += p.accelerators * world.kw(site, p.accelerator)
        tenant_use[job.tenant] += p.accelerators

    sites, policy = world.sites, world.policy
    for (site_id, accelerator), used in sorted(pool_use.items()):
        pool = sites[site_id].pool(accelerator)
        free = max(0, pool.available) if pool is not None else 0
        if used > free:
            out.append(f"capacity: {used} {accelerator} placed on {site_id}, {free} free")
    for site_id, placed_kw in sorted(site_kw.items()):
        cap = policy.power_caps_kw.get(site_id)
        if cap is None:
            continue
        site = sites[site_id]
        busy_kw = sum((pool.count - max(0, pool.available)) * world.kw(site, pool.type)
                      for pool in site.pools)
        if busy_kw + placed_kw > cap + _REL * max(1.0, abs(cap)):
            out.append(f"power: {site_id} would draw {busy_kw:.3f} kW busy + {placed_kw:.3f} kW "
                       f"placed > cap {cap:g} kW")
    running: dict[TenantId, int] = defaultdict(int)
    for run in world.snapshot.running:
        running[run.job.tenant] += run.job.gang.workers * run.job.gang.accelerators_per_worker
    for tenant, used in sorted(tenant_use.items()):
        quota = policy.tenant(tenant).quota_accelerators
        if quota is not None and running[tenant] + used > quota:
            out.append(f"quota: tenant {tenant} would hold {running[tenant]} running + {used} "
                       f"placed accelerators > quota {quota}")
    return out


# --------------------------------------------------------------------------- numbers


def _check_numbers(plan: Plan) -> list[str]:
    out = []
    parts = [p.cost.total for p in plan.placements] + [w.cost.total for w in plan.waits]
    total = sum(parts)
    scale = max(1.0, abs(plan.objective))
    for job_id, value in zip([p.job for p in plan.placements] + [w.job for w in plan.waits],
                             parts, strict=True):
        if value != value or value in (float("inf"), float("-inf")):
            out.append(f"cost: job {job_id} has a non-finite cost {value}")
    if abs(total - plan.objective) > 1e-6 * max(scale, abs(total)):
        out.append(f"objective: {plan.objective:.6f} is not the sum of placement and wait "
                   f"costs {total:.6f}")
    if plan.lower_bound > plan.objective + 1e-6 * scale:
        out.append(f"bound: lower bound {plan.lower_bound:.6f} exceeds the objective "
                   f"{plan.objective:.6f}")
    return out


__all__ = ["TAGS", "check_plan"]
