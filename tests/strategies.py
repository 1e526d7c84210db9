"""Hypothesis strategies: small random snapshots and policies that exercise every hard rule.

``cases()`` draws a ``Case``: 2-6 sites in a few regions of the east/west hubs with pools of a
few catalog types (some partly busy), links that may leave sites disconnected, datasets with
replicas and sometimes residency, running jobs, 1-30 pending jobs with random gangs, allowed
types, memory needs, runtimes, datasets, users and latency SLOs, and a policy with random
weights, quotas, power caps, residency rules (some with ``within``), spillover and
accelerator equivalences. Capacity is kept small next to demand so that jobs compete. Now and
then a job or a rule names a dataset or location the snapshot lacks (planners fail closed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from hypothesis import strategies as st

from scheduler.core.catalog import BUILTIN_ACCELERATORS
from scheduler.core.ids import (
    AcceleratorType,
    DatasetId,
    JobId,
    LocationId,
    SiteId,
    TenantId,
)
from scheduler.core.model import (
    AcceleratorPool,
    AcceleratorSpec,
    Dataset,
    Gang,
    Job,
    Link,
    Location,
    RunningJob,
    Site,
    SiteSelector,
    Snapshot,
    Tariff,
    Tenant,
    TouPeriod,
)
from scheduler.core.policy.model import (
    AcceleratorRules,
    LatencyBound,
    ObjectiveWeights,
    Policy,
    ResidencyRule,
    SpilloverRule,
    TenantPolicy,
)

NOW = 1_750_000_000.0  # a fixed instant; cases shift it by up to two days

# region -> (lat, lon, hub); "xizang" has no sites, so its tenants have an empty home
REGIONS: dict[str, tuple[float, float, str]] = {
    "beijing": (39.9, 116.4, "jjj"),
    "shanghai": (31.2, 121.5, "yrd"),
    "anhui": (31.35, 118.4, "yrd"),
    "ningxia": (37.5, 105.2, "ningxia"),
    "guizhou": (26.6, 106.7, "guizhou"),
}
EMPTY_REGION = "xizang"
UNKNOWN_LOCATION = LocationId("atlantis")
EAST_HUBS = frozenset({"jjj", "yrd"})
WEST_HUBS = frozenset({"ningxia", "guizhou"})
LOCATIONS = (
    Location(LocationId("bj-users"), 39.9, 116.4),
    Location(LocationId("sh-users"), 31.2, 121.5),
    Location(LocationId("nx-users"), 37.5, 105.2),
)

# A snapshot-only type (not in the built-in catalog) and one that has no speed figure, so
# its runtime can only come from the job's own estimate.
CUSTOM = AcceleratorSpec(AcceleratorType("X1-16G"), 16.0, 120.0, 250.0, False, "XLA")
NO_SPEED = AcceleratorSpec(AcceleratorType("Y2-32G"), 32.0, 0.0, 300.0, False, "XLA")
TYPES: tuple[AcceleratorType, ...] = (
    *(AcceleratorType(t) for t in ("RTX4090-24G", "L40S-48G", "A100-80G", "H100-80G",
                                   "H800-80G", "Ascend910B-64G")),
    CUSTOM.name,
    NO_SPEED.name,
)
MEMORY_NEEDS = (0.0, 0.0, 0.0, 0.0, 20.0, 24.0, 40.0, 80.0)


@dataclass(frozen=True)
class Case:
    snapshot: Snapshot
    policy: Policy
    now: float


def _money(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


def _subset(
    draw: st.DrawFn, items: Sequence[str], lo: int = 0, hi: int | None = None
) -> list[str]:
    hi = len(items) if hi is None else min(hi, len(items))
    if not items or hi < lo:
        return []
    return draw(st.lists(st.sampled_from(sorted(items)), min_size=lo, max_size=hi, unique=True))


def _selector(draw: st.DrawFn, sites: list[Site]) -> SiteSelector:
    kind = draw(st.sampled_from(["regions", "hubs", "sites", "labels"]))
    if kind == "regions":
        return SiteSelector(regions=frozenset(_subset(draw, list(REGIONS), 1, 2)))
    if kind == "hubs":
        return SiteSelector(hubs=frozenset(_subset(draw, sorted({h for *_, h in
                                                                  REGIONS.values()}), 1, 2)))
    if kind == "sites":
        return SiteSelector(sites=frozenset(SiteId(s) for s in
                                            _subset(draw, [s.id for s in sites], 1, 3)))
    return SiteSelector(labels={"tier": draw(st.sampled_from(["gold", "std"]))})


def _site(draw: st.DrawFn, i: int, types: list[AcceleratorType], tenants: list[str]) -> Site:
    region = draw(st.sampled_from(sorted(REGIONS)))
    lat, lon, hub = REGIONS[region]
    pools = []
    for t in _subset(draw, types, 1, 3):
        count = draw(st.integers(1, 16))
        available = draw(st.one_of(st.just(count), st.integers(0, count)))
        pools.append(AcceleratorPool(AcceleratorType(t), count, available, draw(_money(0.5, 40))))
    periods: tuple[TouPeriod, ...] = ()
    if draw(st.booleans()):
        periods = (TouPeriod(0.0, 8.0, 0.38), TouPeriod(10.0, 12.0, 1.7),
                   TouPeriod(14.0, 19.0, 1.7))
    subsidised = _subset(draw, tenants, 0, 2)
    return Site(
        id=SiteId(f"s{i}"),
        region=region,
        hub=hub,
        lat=lat + draw(st.floats(-0.3, 0.3)),
        lon=lon + draw(st.floats(-0.3, 0.3)),
        pools=tuple(pools),
        tariff=Tariff(draw(_money(0.3, 1.0)), periods),
        pue=draw(st.floats(1.1, 1.5)),
        labels={"tier": draw(st.sampled_from(["gold", "std"]))} if draw(st.booleans()) else {},
        subsidy_tenants=frozenset(TenantId(t) for t in subsidised),
        subsidy_discount=draw(st.floats(0.0, 0.5)) if subsidised else 0.0,
    )


def _gang(draw: st.DrawFn, types: list[AcceleratorType]) -> Gang:
    return Gang(
        workers=draw(st.integers(1, 3)),
        accelerators_per_worker=draw(st.sampled_from([1, 1, 2, 4, 8])),
        allowed_types=frozenset(AcceleratorType(t) for t in _subset(draw, types, 1, 3)),
        min_memory_gb=draw(st.sampled_from(MEMORY_NEEDS)),
    )


def _job(
    draw: st.DrawFn, job_id: str, now: float, types: list[AcceleratorType],
    tenants: list[str], datasets: list[str],
) -> Job:
    # mostly types some site has; sometimes any type, which may exist nowhere
    gang = _gang(draw, types if draw(st.integers(0, 4)) else list(TYPES))
    # estimates usually for an allowed type, sometimes only for another one
    estimated = _subset(draw, sorted(gang.allowed_types), 1, 2)
    if draw(st.integers(0, 4)) == 0:
        estimated = [draw(st.sampled_from(TYPES))]
    runtime = {AcceleratorType(t): draw(st.floats(0.05, 72.0)) for t in estimated}
    user = draw(st.one_of(st.none(), st.sampled_from([loc.id for loc in LOCATIONS])))
    if draw(st.integers(0, 20)) == 0:  # references the snapshot lacks: planners fail closed
        user = UNKNOWN_LOCATION
        datasets = [*datasets, "d-missing"]
    return Job(
        id=JobId(job_id),
        tenant=TenantId(draw(st.sampled_from(tenants))),
        gang=gang,
        runtime_h=runtime,
        submitted_at=now - draw(st.floats(0.0, 3 * 86400.0)),
        priority=draw(st.integers(0, 3)),
        deadline=draw(st.one_of(st.none(), st.floats(now - 3600.0, now + 2 * 86400.0))),
        datasets=tuple(DatasetId(d) for d in _subset(draw, datasets, 0, 2)),
        user_location=user,
        max_latency_ms=(draw(st.one_of(st.none(), st.floats(2.0, 40.0)))
                        if user is not None else None),
        home_region=draw(st.one_of(st.none(), st.none(), st.sampled_from(sorted(REGIONS)))),
    )


@st.composite
def snapshots(draw: st.DrawFn, now: float = NOW) -> Snapshot:
    tenants = [f"t{i}" for i in range(draw(st.integers(1, 3)))]
    types = sorted(_subset(draw, list(TYPES), 2, 5))
    sites = [_site(draw, i, [AcceleratorType(t) for t in types], tenants)
             for i in range(draw(st.integers(2, 6)))]
    links = []
    for i, a in enumerate(sites):
        for b in sites[i + 1:]:
            if draw(st.integers(0, 2)) > 0:
                links.append(Link(a.id, b.id, draw(st.floats(1.0, 30.0)),
                                  draw(st.floats(1.0, 100.0)), draw(_money(0.0, 1.0))))
    datasets = []
    for d in range(draw(st.integers(0, 3))):
        replicas = _subset(draw, [s.id for s in sites], 1, 2)
        residency = _selector(draw, sites) if draw(st.integers(0, 2)) == 0 else None
        datasets.append(Dataset(DatasetId(f"d{d}"), draw(st.floats(0.0, 2000.0)),
                                frozenset(SiteId(r) for r in replicas), residency))
    homes = [*sorted(REGIONS), EMPTY_REGION]
    tenant_objs = tuple(Tenant(TenantId(t), draw(st.sampled_from(homes))) for t in tenants)
    running = []
    for r in range(draw(st.integers(0, 3))):
        site = draw(st.sampled_from(sites))
        pool = draw(st.sampled_from(site.pools))
        job = Job(JobId(f"r{r}"), TenantId(draw(st.sampled_from(tenants))),
                  Gang(1, draw(st.integers(1, 8)), frozenset({pool.type})), {pool.type: 4.0},
                  submitted_at=now - 7200.0)
        running.append(RunningJob(job, site.id, pool.type, now - 3600.0))
    site_types = [AcceleratorType(t) for t in types]
    pending: list[Job] = []
    for j in range(draw(st.integers(1, 30))):
        if pending and draw(st.integers(0, 2)) == 0:
            # a sibling of an earlier job: same class but for runtime, age and urgency
            sibling = draw(st.sampled_from(pending))
            factor = draw(st.floats(0.7, 1.4))
            pending.append(dataclasses.replace(
                sibling, id=JobId(f"j{j:02d}"),
                runtime_h={t: h * factor for t, h in sibling.runtime_h.items()},
                submitted_at=now - draw(st.floats(0.0, 3 * 86400.0)),
                deadline=draw(st.one_of(st.none(), st.floats(now, now + 86400.0)))))
        else:
            pending.append(_job(draw, f"j{j:02d}", now, site_types, tenants,
                                [d.id for d in datasets]))
    overrides = {CUSTOM.name: CUSTOM, NO_SPEED.name: NO_SPEED}
    if draw(st.booleans()):  # a snapshot may correct the built-in catalog
        rtx = BUILTIN_ACCELERATORS[AcceleratorType("RTX4090-24G")]
        overrides[rtx.name] = AcceleratorSpec(rtx.name, 20.0, rtx.bf16_tflops, 500.0, False)
    return Snapshot(
        sites=tuple(sites),
        links=tuple(links),
        datasets=tuple(datasets),
        locations=LOCATIONS,
        tenants=tenant_objs,
        accelerators=overrides,
        pending=tuple(pending),
        running=tuple(running),
    )


@st.composite
def policies(draw: st.DrawFn, snapshot: Snapshot) -> Policy:
    weight = st.sampled_from([0.0, 0.5, 1.0, 1.0, 2.0])
    objective = ObjectiveWeights(
        energy=draw(weight), rental=draw(weight), transfer=draw(weight), queue=draw(weight),
        latency=draw(weight),
        queue_cny_per_accelerator_hour=draw(_money(0.0, 60.0)),
        wait_horizon_h=draw(st.floats(0.25, 4.0)),
        latency_cny_per_ms_hour=draw(_money(0.0, 0.05)),
    )
    tenant_ids = sorted({t.id for t in snapshot.tenants})
    tenants = {
        TenantId(t): TenantPolicy(
            quota_accelerators=draw(st.one_of(st.none(), st.integers(0, 12), st.integers(0, 40))),
            priority_weight=draw(st.floats(0.5, 3.0)),
        )
        for t in _subset(draw, tenant_ids, 0 if len(tenant_ids) < 2 else 1)
    }
    sites = list(snapshot.sites)
    caps = {SiteId(s): draw(st.floats(0.0, 30.0)) for s in _subset(draw, [s.id for s in sites])}
    datasets = [d.id for d in snapshot.datasets]
    residency = []
    for r in range(draw(st.integers(0, 2))):
        by_data = bool(datasets) and draw(st.booleans())
        allow = _selector(draw, sites) if draw(st.booleans()) else None
        within = None
        if allow is None or draw(st.booleans()):
            near = [loc.id for loc in LOCATIONS] * 5 + [UNKNOWN_LOCATION]
            within = LatencyBound(draw(st.sampled_from(near)), draw(st.floats(1.0, 30.0)))
        residency.append(ResidencyRule(
            name=f"rule{r}",
            datasets=frozenset(DatasetId(d) for d in _subset(draw, datasets, 1, 2))
            if by_data else frozenset(),
            tenants=frozenset() if by_data else frozenset(
                TenantId(t) for t in _subset(draw, tenant_ids, 1, 2)),
            allow=allow,
            within=within,
        ))
    spillover = []
    if draw(st.integers(0, 2)):
        spillover.append(SpilloverRule(
            name="east-to-west",
            source=SiteSelector(hubs=EAST_HUBS),
            target=draw(st.sampled_from([SiteSelector(hubs=WEST_HUBS),
                                         SiteSelector(regions=frozenset({"ningxia"}))])),
            above=draw(st.sampled_from([0.0, 0.3, 0.6, 0.9, 1.0])),
        ))
    groups = [frozenset({AcceleratorType("H100-80G"), AcceleratorType("H800-80G")}),
              frozenset({AcceleratorType("RTX4090-24G"), AcceleratorType("L40S-48G")}),
              frozenset({AcceleratorType("A100-80G"), AcceleratorType("Ascend910B-64G")}),
              frozenset({CUSTOM.name, AcceleratorType("RTX4090-24G")})]
    equivalences = tuple(draw(st.lists(st.sampled_from(groups), max_size=2, unique=True)))
    return Policy(
        objective=objective,
        residency=tuple(residency),
        tenants=tenants,
        power_caps_kw=caps,
        spillover=tuple(spillover),
        accelerators=AcceleratorRules(equivalences=equivalences),
    )


@st.composite
def cases(draw: st.DrawFn) -> Case:
    now = NOW + draw(st.floats(0.0, 48.0)) * 3600.0
    snapshot = draw(snapshots(now))
    return Case(snapshot, draw(policies(snapshot)), now)


__all__ = ["LOCATIONS", "NOW", "REGIONS", "TYPES", "Case", "cases", "policies", "snapshots"]
