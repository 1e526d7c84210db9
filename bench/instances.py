"""Seeded, realistic placement instances for benchmarks.

``make_instance(jobs, sites, seed)`` returns ``(snapshot, policy, now)``. The same arguments
always give the same instance (one ``numpy.random.Generator`` seeded with ``seed``).

What an instance looks like, and where each choice comes from (``/work/shared/data``):

- **Sites** are spread around the ten national computing clusters of "East Data, West
  Computing" (hubs.yaml), coordinates jittered by ~50 km; each site takes the region, hub and
  side of its nearest cluster. ~40% of sites are west, with larger inventories, power ~30-45%
  cheaper (the cluster's price, jittered) and a lower PUE (targets 1.25 east, 1.20 west).
- **Inventory**: 2-4 pools per site of 8-accelerator nodes, drawn from exactly eight catalog
  types (``TYPES``); consumer cards lean east, NVLink racks lean west. Pools are sized so that
  the pending demand is ``overload`` (1.3) times the free accelerators of each type; eastern
  pools are 45-80% busy already, western ones 10-40% (national utilisation is ~32%). The busy
  accelerators are held by ``RunningJob`` entries (one per busy node).
- **Power**: a base price per kWh with Guangdong-2021-style time of use in the east
  (peak 1.7 / valley 0.38, critical peak +25% in July-September) and a 3:1 schedule in the
  west; ``now`` is a seeded hour of 15 July 2026 (Beijing time), in the critical-peak season.
- **Network**: each site linked to its four nearest sites, plus a backbone mesh between one
  gateway site per cluster; latency from coordinates (``scheduler.core.geo.rtt_ms``),
  10-100 Gbit/s, egress priced per GB.
- **Tenants** (30): most with an eastern home region (demand sits east of the Hu Line), a
  Zipf-like spread of demand, three with accelerator quotas, two with a higher priority weight;
  western sites subsidise some local tenants.
- **Datasets** (300): lognormal sizes, one to three replicas near their owner; 30% carry a
  residency selector pinning them to their region or hub.
- **Jobs** follow the Gavel/POP generator (workloads.md): 1/2/4/8 accelerators with
  probabilities 70/10/15/5%, plus 2% multi-node gangs (2-8 workers x 8) on NVLink types;
  runtimes mix a short-job mode (Helios/Philly are full of short debugging runs) with Gavel's
  10^U(1.5,3) / 10^U(3,4) minutes; ~30% are inference jobs on consumer cards serving users in
  an eastern city under a latency SLO; ~20% read a residency-pinned dataset. Each job gives its
  runtime for one type; others are derived with the policy's speed factors.
- **Shapes come from workloads**: like real users, jobs are drawn from a moderate number of
  recurring workloads (40-200: a tenant, a gang shape, 1-3 allowed types, datasets, users and
  SLO), while each job's runtime is its own (lognormal around the workload's median). This is
  what lets the optimizer group jobs into classes.

Every figure above is an input of the generator, not a measurement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np

from scheduler.core.catalog import BUILTIN_ACCELERATORS
from scheduler.core.geo import rtt_ms
from scheduler.core.ids import AcceleratorType, DatasetId, JobId, LocationId, SiteId, TenantId
from scheduler.core.model import (
    AcceleratorPool,
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
    Policy,
    SpilloverRule,
    TenantPolicy,
)

# --------------------------------------------------------------------------- facts

# (cluster, hub, side, region, lat, lon, CNY/kWh) from hubs.yaml; region = the province.
CLUSTERS: tuple[tuple[str, str, str, str, float, float, float], ...] = (
    ("Zhangjiakou", "Beijing-Tianjin-Hebei", "east", "Hebei", 40.77, 114.88, 0.65),
    ("Qingpu", "Yangtze River Delta", "east", "Shanghai", 31.15, 121.12, 0.75),
    ("Wuhu", "Yangtze River Delta", "east", "Anhui", 31.35, 118.43, 0.70),
    ("Shaoguan", "Greater Bay Area", "east", "Guangdong", 24.81, 113.60, 0.75),
    ("Tianfu", "Chengdu-Chongqing", "east", "Sichuan", 30.40, 104.07, 0.55),
    ("Chongqing", "Chengdu-Chongqing", "east", "Chongqing", 29.56, 106.55, 0.55),
    ("Horinger", "Inner Mongolia", "west", "Inner Mongolia", 40.38, 111.82, 0.38),
    ("Guian", "Guizhou", "west", "Guizhou", 26.40, 106.40, 0.40),
    ("Qingyang", "Gansu", "west", "Gansu", 35.71, 107.64, 0.40),
    ("Zhongwei", "Ningxia", "west", "Ningxia", 37.51, 105.19, 0.36),
)
# relative share of sites per cluster within its side (estimates: bigger hubs, more sites)
CLUSTER_SITE_WEIGHT = (1.0, 1.2, 0.8, 1.0, 0.8, 0.6, 1.0, 1.0, 1.0, 1.0)
WEST_SITE_SHARE = 0.4
WEST_SIZE_FACTOR = 2.5  # western pools are larger (idle racks sit west)

# Eastern cities where inference users are (lat, lon, weight).
CITIES: tuple[tuple[str, float, float, float], ...] = (
    ("Beijing", 39.90, 116.41, 3.0),
    ("Shanghai", 31.23, 121.47, 3.0),
    ("Shenzhen", 22.54, 114.06, 2.0),
    ("Guangzhou", 23.13, 113.26, 1.5),
    ("Hangzhou", 30.27, 120.16, 2.0),
    ("Nanjing", 32.06, 118.80, 1.0),
    ("Suzhou", 31.30, 120.59, 1.0),
    ("Wuhan", 30.59, 114.31, 1.0),
    ("Chengdu", 30.57, 104.07, 1.0),
    ("Tianjin", 39.13, 117.20, 1.0),
)

A = AcceleratorType
TYPES: tuple[AcceleratorType, ...] = (
    A("RTX4090-24G"), A("RTX4090-48G"), A("RTX5090-32G"), A("L40S-48G"),
    A("A100-80G"), A("H100-80G"), A("H800-80G"), A("H20-96G"),
)
CONSUMER = TYPES[:4]
NVLINK = TYPES[4:]
# Eastern rental price per accelerator-hour (CNY; estimates inside the published USD ranges
# of accelerators.yaml at ~7.2 CNY/USD); western sites rent ~15% cheaper.
PRICE_CNY_PER_HOUR = dict(zip(TYPES, (2.0, 2.8, 3.2, 5.5, 9.0, 22.0, 20.0, 8.0), strict=True))
WEST_PRICE_FACTOR = 0.85
# Relative training throughput (A100 = 1; estimates, not the TFLOPS ratios of the catalog).
SPEED = dict(zip(TYPES, (0.55, 0.55, 0.75, 0.8, 1.0, 2.2, 2.0, 0.75), strict=True))
# Weight of each type when a site picks its pools.
POOL_WEIGHT = {
    "east": (1.5, 1.5, 1.2, 1.0, 0.8, 0.6, 0.8, 0.8),
    "west": (0.6, 0.8, 0.6, 0.8, 1.2, 1.0, 1.2, 1.4),
}
NODE = 8  # accelerators per node

# Job mix (workloads.md: Gavel/POP generator plus a short-job mode, ~30% inference).
KINDS = ("inference", "batch", "gang")
KIND_SHARE = (0.30, 0.68, 0.02)
SIZES = (1, 2, 4, 8)
SIZE_SHARE = (0.70, 0.10, 0.15, 0.05)
RESIDENCY_SHARE = 0.20
UNIVERSE: dict[str, tuple[tuple[AcceleratorType, ...], tuple[float, ...]]] = {
    "inference": (CONSUMER, (1.2, 1.5, 1.2, 0.8)),
    "batch": (TYPES, (1.0, 1.0, 0.8, 0.8, 1.2, 0.8, 0.8, 0.8)),
    "gang": (NVLINK, (1.0, 1.0, 1.2, 0.8)),
}
SLO_TIERS_MS = (15.0, 20.0, 30.0, 50.0)

TENANTS = 30
WEST_TENANTS = 4
DATASETS = 300
PINNED_DATASET_SHARE = 0.3


def _start_of_day() -> float:
    """15 July 2026, 00:00 Beijing time, as POSIX seconds."""
    return datetime(2026, 7, 15, tzinfo=timezone(timedelta(hours=8))).timestamp()


# --------------------------------------------------------------------------- drafts


@dataclass(slots=True)
class _SiteDraft:
    id: SiteId
    cluster: int
    lat: float
    lon: float
    side: str
    region: str
    hub: str
    weight: float
    busy: float
    types: list[AcceleratorType]
    prices: dict[AcceleratorType, float] = field(default_factory=dict)
    count: dict[AcceleratorType, int] = field(default_factory=dict)
    available: dict[AcceleratorType, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Workload:
    """A recurring job shape of one tenant."""

    kind: str
    tenant: TenantId
    gang: Gang
    reference: AcceleratorType  # the type the runtime estimate is given for
    median_h: float
    datasets: tuple[DatasetId, ...]
    location: LocationId | None
    slo_ms: float | None
    pinned: bool
    usable: tuple[AcceleratorType, ...]  # allowed types with enough memory, present somewhere


def _draw_sites(rng: np.random.Generator, n: int) -> list[_SiteDraft]:
    n_west = round(WEST_SITE_SHARE * n)
    counts = np.zeros(len(CLUSTERS), dtype=np.int64)
    for side, total in (("east", n - n_west), ("west", n_west)):
        idx = [i for i, c in enumerate(CLUSTERS) if c[2] == side]
        w = np.array([CLUSTER_SITE_WEIGHT[i] for i in idx])
        if total >= len(idx):  # every cluster gets a site, the rest by weight
            counts[idx] += 1
            extra = rng.choice(len(idx), size=total - len(idx), p=w / w.sum())
            np.add.at(counts, np.array(idx)[extra], 1)
        else:
            chosen = rng.choice(len(idx), size=total, replace=False, p=w / w.sum())
            counts[np.array(idx)[chosen]] += 1
    centres = np.array([(c[4], c[5]) for c in CLUSTERS])
    drafts: list[_SiteDraft] = []
    seq = dict.fromkeys(range(len(CLUSTERS)), 0)
    for home, k in enumerate(counts):
        for _ in range(int(k)):
            lat = CLUSTERS[home][4] + rng.normal(0.0, 0.45)
            lon = CLUSTERS[home][5] + rng.normal(0.0, 0.45)
            nearest = int(np.argmin(np.hypot(centres[:, 0] - lat,
                                             (centres[:, 1] - lon) * math.cos(math.radians(lat)))))
            name, hub, side, region = CLUSTERS[nearest][:4]
            seq[nearest] += 1
            weight = rng.lognormal(0.0, 0.5) * (WEST_SIZE_FACTOR if side == "west" else 1.0)
            busy = rng.uniform(0.45, 0.80) if side == "east" else rng.uniform(0.10, 0.40)
            n_types = int(rng.integers(2, 5))
            pw = np.array(POOL_WEIGHT[side])
            types = sorted(TYPES[i] for i in rng.choice(len(TYPES), size=n_types, replace=False,
                                                        p=pw / pw.sum()))
            drafts.append(_SiteDraft(
                id=SiteId(f"{name.lower()}-{seq[nearest]:02d}"), cluster=nearest, lat=lat,
                lon=lon, side=side, region=region, hub=hub, weight=weight, busy=busy,
                types=types,
            ))
    _cover_all_types(rng, drafts)
    for d in drafts:
        factor = WEST_PRICE_FACTOR if d.side == "west" else 1.0
        d.prices = {t: round(PRICE_CNY_PER_HOUR[t] * factor * rng.lognormal(0.0, 0.12), 2)
                    for t in d.types}
    return drafts


def _cover_all_types(rng: np.random.Generator, drafts: list[_SiteDraft]) -> None:
    """Make every one of the eight types present at some site (small instances)."""
    for t in TYPES:
        if any(t in d.types for d in drafts):
            continue
        counts = {x: sum(x in d.types for d in drafts) for x in TYPES}
        # add to a site with room, else replace the most common type at some site
        roomy = [d for d in drafts if len(d.types) < 4]
        if roomy:
            d = roomy[int(rng.integers(len(roomy)))]
        else:
            candidates = [d for d in drafts if any(counts[x] > 1 for x in d.types)]
            d = candidates[int(rng.integers(len(candidates)))]
            d.types.remove(max(d.types, key=lambda x: counts[x]))
        d.types = sorted([*d.types, t])


def _draw_links(rng: np.random.Generator, drafts: list[_SiteDraft]) -> tuple[Link, ...]:
    n = len(drafts)
    lat = np.radians([d.lat for d in drafts])
    lon = np.radians([d.lon for d in drafts])
    h = (np.sin((lat[:, None] - lat[None, :]) / 2) ** 2 + np.cos(lat[:, None])
         * np.cos(lat[None, :]) * np.sin((lon[:, None] - lon[None, :]) / 2) ** 2)
    dist = 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    np.fill_diagonal(dist, np.inf)
    edges: dict[tuple[int, int], str] = {}
    for i in range(n):
        for k in np.argsort(dist[i], kind="stable")[: min(4, n - 1)]:
            edges.setdefault((min(i, int(k)), max(i, int(k))), "local")
    # backbone: the site nearest each cluster centre is its gateway; gateways form a mesh
    gateways = []
    for c, cluster in enumerate(CLUSTERS):
        members = [i for i, d in enumerate(drafts) if d.cluster == c]
        if members:
            gateways.append(min(members, key=lambda i: (drafts[i].lat - cluster[4]) ** 2
                                + (drafts[i].lon - cluster[5]) ** 2))
    for x, a in enumerate(gateways):
        for b in gateways[x + 1:]:
            edges[(min(a, b), max(a, b))] = "backbone"
    # join whatever the two rules left disconnected, by the shortest bridge
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in edges:
        parent[find(a)] = find(b)
    while len({find(i) for i in range(n)}) > 1:
        roots = np.array([find(i) for i in range(n)])
        cross = np.where(roots[:, None] != roots[None, :], dist, np.inf)
        x, y = (int(v) for v in np.unravel_index(int(np.argmin(cross)), cross.shape))
        edges[(min(x, y), max(x, y))] = "local"
        parent[find(x)] = find(y)
    links = []
    for (a, b), kind in sorted(edges.items()):
        da, db = drafts[a], drafts[b]
        if kind == "backbone":
            gbps = float(rng.choice([40.0, 100.0], p=[0.4, 0.6]))
            egress = rng.uniform(0.05, 0.15)
        else:
            gbps = float(rng.choice([10.0, 25.0, 40.0, 100.0], p=[0.3, 0.3, 0.2, 0.2]))
            egress = rng.uniform(0.02, 0.08)
        links.append(Link(da.id, db.id, round(rtt_ms(da.lat, da.lon, db.lat, db.lon), 3), gbps,
                          round(egress, 4)))
    return tuple(links)


def _draw_tenants(
    rng: np.random.Generator, drafts: list[_SiteDraft]
) -> tuple[list[Tenant], np.ndarray]:
    east = sorted({d.region for d in drafts if d.side == "east"})
    west = sorted({d.region for d in drafts if d.side == "west"})
    n_west = WEST_TENANTS if west else 0
    tenants = []
    demand = np.empty(TENANTS)
    for i in range(TENANTS):
        is_west = i >= TENANTS - n_west or not east
        regions = west if is_west else east
        home = regions[int(rng.integers(len(regions)))]
        tenants.append(Tenant(TenantId(f"tenant-{i:02d}"), home))
        demand[i] = rng.lognormal(0.0, 1.0) * (0.3 if is_west else 1.0)
    return tenants, demand / demand.sum()


def _draw_datasets(
    rng: np.random.Generator, drafts: list[_SiteDraft], tenants: list[Tenant],
    tenant_p: np.ndarray,
) -> tuple[list[Dataset], list[int]]:
    """Datasets and the tenant index owning each."""
    datasets, owners = [], []
    for i in range(DATASETS):
        owner = int(rng.choice(len(tenants), p=tenant_p))
        local = [k for k, d in enumerate(drafts) if d.region == tenants[owner].home_region]
        primary = local[int(rng.integers(len(local)))] if local else int(rng.integers(len(drafts)))
        extra = rng.choice(len(drafts), size=int(rng.integers(0, 3)), replace=True)
        replicas = frozenset(drafts[k].id for k in {primary, *map(int, extra)})
        residency = None
        if rng.random() < PINNED_DATASET_SHARE:
            p = drafts[primary]
            residency = (SiteSelector(regions=frozenset({p.region})) if rng.random() < 0.6
                         else SiteSelector(hubs=frozenset({p.hub})))
            replicas = frozenset(drafts[k].id for k in {primary, *map(int, extra)}
                                 if residency.regions & {drafts[k].region}
                                 or residency.hubs & {drafts[k].hub})
        size = float(np.clip(rng.lognormal(math.log(80.0), 1.4), 0.5, 20_000.0))
        datasets.append(Dataset(DatasetId(f"ds-{i:03d}"), round(size, 1), replicas, residency))
        owners.append(owner)
    return datasets, owners


# --------------------------------------------------------------------------- workloads


def _median_hours(rng: np.random.Generator, kind: str) -> float:
    if kind == "inference":  # served in blocks of card-hours, 1-24 h
        return float(10 ** rng.uniform(0.0, math.log10(24.0)))
    if kind == "batch" and rng.random() < 0.35:  # short debugging runs, ~1-20 minutes
        return float(10 ** rng.uniform(-1.8, -0.5))
    minutes = 10 ** (rng.uniform(1.5, 3.0) if rng.random() < 0.8 else rng.uniform(3.0, 4.0))
    return float(minutes / 60.0)


def _cells() -> list[tuple[str, int, bool, float]]:
    """(kind, size, pinned, probability); size is workers for gangs, accelerators otherwise."""
    cells = []
    for kind, share in zip(KINDS, KIND_SHARE, strict=True):
        sizes = (2, 4, 8) if kind == "gang" else SIZES
        size_p = (0.5, 0.35, 0.15) if kind == "gang" else SIZE_SHARE
        for size, sp in zip(sizes, size_p, strict=True):
            for pinned in (False, True):
                rp = RESIDENCY_SHARE if pinned else 1.0 - RESIDENCY_SHARE
                cells.append((kind, size, pinned, share * sp * rp))
    return cells


def _draw_workloads(
    rng: np.random.Generator,
    n_workloads: int,
    drafts: list[_SiteDraft],
    tenants: list[Tenant],
    tenant_p: np.ndarray,
    datasets: list[Dataset],
    owners: list[int],
    spill: SpilloverRule | None,
) -> tuple[list[list[_Workload]], np.ndarray, list[np.ndarray]]:
    """Workloads per cell, the cell probabilities, and each cell's workload popularity."""
    cells = _cells()
    p = np.array([c[3] for c in cells])
    p /= p.sum()
    # one workload per cell, the rest by largest remainder on the cells' shares
    share = p * max(0, n_workloads - len(cells))
    per_cell = 1 + np.floor(share).astype(np.int64)
    rest = n_workloads - int(per_cell.sum())
    if rest > 0:
        per_cell[np.argsort(-(share - np.floor(share)), kind="stable")[:rest]] += 1

    site_types = [set(d.types) for d in drafts]
    present = set().union(*site_types)
    city_w = np.array([c[3] for c in CITIES])
    lat_to: dict[int, np.ndarray] = {
        i: np.array([rtt_ms(c[1], c[2], d.lat, d.lon) for d in drafts])
        for i, c in enumerate(CITIES)
    }
    pinned_ds = [i for i, ds in enumerate(datasets) if ds.residency is not None]
    free_ds = [i for i, ds in enumerate(datasets) if ds.residency is None]
    home_of = {t.id: t.home_region for t in tenants}

    stubs = [_site_stub(d) for d in drafts]
    source = target = np.zeros(len(drafts), dtype=bool)
    if spill is not None:
        source = np.array([spill.source.selects(s) for s in stubs])
        target = np.array([spill.target.selects(s) for s in stubs])
    pinned_sites = {i: np.array([_selects(datasets[i], s) for s in stubs]) for i in pinned_ds}
    type_sites = {t: np.array([t in st for st in site_types]) for t in TYPES}

    def spill_ok(tenant: TenantId) -> np.ndarray:
        home = np.array([d.region == home_of[tenant] for d in drafts])
        if spill is not None and (source & home).any():
            return np.asarray(source | target)
        return np.ones(len(drafts), dtype=bool)

    def has_type(types: list[AcceleratorType] | tuple[AcceleratorType, ...]) -> np.ndarray:
        mask = np.zeros(len(drafts), dtype=bool)
        for t in types:
            mask |= type_sites[t]
        return mask

    out: list[list[_Workload]] = []
    pops: list[np.ndarray] = []
    for (kind, size, pinned, _), n in zip(cells, per_cell, strict=True):
        universe, uw = UNIVERSE[kind]
        uni = [t for t in universe if t in present]
        uwp = np.array([w for t, w in zip(universe, uw, strict=True) if t in present])
        workloads = []
        for _ in range(int(n)):
            ti = int(rng.choice(len(tenants), p=tenant_p))
            tenant = tenants[ti].id
            k = min(len(uni), int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2])))
            allowed = [uni[i] for i in rng.choice(len(uni), size=k, replace=False,
                                                   p=uwp / uwp.sum())]
            ok = spill_ok(tenant)
            reads: list[int] = []
            if pinned:
                order = list(rng.permutation(pinned_ds))
                order.sort(key=lambda i: owners[i] != ti)  # the tenant's own data first
                chosen = None
                for i in order:  # a pinned dataset whose sites have an allowed type
                    if (pinned_sites[i] & ok & has_type(allowed)).any():
                        chosen = i
                        break
                if chosen is None:  # else swap in a type that one of them has
                    for i in order:
                        there = set().union(*(site_types[s] for s in
                                              np.flatnonzero(pinned_sites[i] & ok)))
                        fits = [t for t in uni if t in there]
                        if fits:
                            allowed[-1] = fits[int(rng.integers(len(fits)))]
                            allowed = sorted(set(allowed))
                            chosen = i
                            break
                if chosen is not None:
                    reads.append(chosen)
                    ok = ok & pinned_sites[chosen]
            if free_ds and rng.random() < (0.2 if reads else 0.8):
                mine = [i for i in free_ds if owners[i] == ti]
                pool = mine if mine and rng.random() < 0.7 else free_ds
                reads.append(pool[int(rng.integers(len(pool)))])
            memory = 0.0
            if kind == "inference":  # per-card memory the model needs
                top = max(BUILTIN_ACCELERATORS[t].memory_gb for t in allowed)
                memory = float(rng.choice([m for m in (0.0, 16.0, 24.0, 32.0, 40.0) if m <= top]))
            usable = tuple(sorted(t for t in allowed
                                  if BUILTIN_ACCELERATORS[t].memory_gb >= memory))
            location: LocationId | None = None
            slo: float | None = None
            if kind == "inference":
                city = int(rng.choice(len(CITIES), p=city_w / city_w.sum()))
                location = LocationId(CITIES[city][0])
                slo = float(rng.choice(SLO_TIERS_MS, p=[0.2, 0.3, 0.3, 0.2]))
                reach = ok & has_type(usable)
                if reach.any():  # the SLO must leave some site (users ask for what exists)
                    nearest = float(lat_to[city][reach].min())
                    if nearest > slo:
                        slo = next((s for s in SLO_TIERS_MS if s >= nearest),
                                   float(math.ceil(nearest + 5.0)))
            gang = (Gang(size, NODE, frozenset(allowed)) if kind == "gang"
                    else Gang(1, size, frozenset(allowed), min_memory_gb=memory))
            workloads.append(_Workload(
                kind=kind, tenant=tenant, gang=gang,
                reference=usable[int(rng.integers(len(usable)))],
                median_h=_median_hours(rng, kind),
                datasets=tuple(datasets[i].id for i in reads),
                location=location, slo_ms=slo,
                pinned=any(datasets[i].residency is not None for i in reads),
                usable=usable,
            ))
        out.append(workloads)
        pop = rng.lognormal(0.0, 1.0, size=len(workloads))
        pops.append(pop / pop.sum())
    return out, p, pops


def _selects(ds: Dataset, site: Site) -> bool:
    return ds.residency is not None and ds.residency.selects(site)


def _site_stub(d: _SiteDraft) -> Site:
    """A pool-less Site with a draft's identity, for selector checks."""
    return Site(id=d.id, region=d.region, hub=d.hub, lat=d.lat, lon=d.lon, pools=(),
                tariff=Tariff(0.0), pue=1.0, labels={"side": d.side})


# --------------------------------------------------------------------------- jobs


def _draw_jobs(
    rng: np.random.Generator, n: int, cells: list[list[_Workload]], cell_p: np.ndarray,
    pops: list[np.ndarray], now: float,
) -> tuple[list[Job], list[_Workload]]:
    cell_of = rng.choice(len(cells), size=n, p=cell_p)
    chosen: list[_Workload | None] = [None] * n
    for c, workloads in enumerate(cells):
        idx = np.flatnonzero(cell_of == c)
        picks = rng.choice(len(workloads), size=idx.size, p=pops[c])
        for j, w in zip(idx.tolist(), picks.tolist(), strict=True):
            chosen[j] = workloads[w]
    spread = rng.lognormal(0.0, 0.5, size=n)
    age_s = rng.exponential(3.0 * 3600.0, size=n)
    priority = rng.choice([0, 1, 2], size=n, p=[0.80, 0.15, 0.05])
    with_deadline = rng.random(n) < 0.08
    slack = rng.uniform(1.5, 5.0, size=n)
    flags = rng.random((n, 2))
    jobs: list[Job] = []
    picked: list[_Workload] = []
    for j in range(n):
        w = chosen[j]
        assert w is not None
        hours = max(1.0 / 120.0, w.median_h * float(spread[j]))
        deadline = None
        if with_deadline[j] and w.kind != "inference":
            deadline = now + hours * float(slack[j]) * 3600.0
        batch = w.kind != "inference"
        jobs.append(Job(
            id=JobId(f"job-{j:06d}"), tenant=w.tenant, gang=w.gang,
            runtime_h={w.reference: round(hours, 5)},
            submitted_at=now - float(age_s[j]), priority=int(priority[j]), deadline=deadline,
            datasets=w.datasets, user_location=w.location, max_latency_ms=w.slo_ms,
            preemptible=batch and bool(flags[j, 0] < 0.3),
            checkpointable=batch and bool(flags[j, 1] < 0.5),
        ))
        picked.append(w)
    return jobs, picked


def _size_pools(
    rng: np.random.Generator, drafts: list[_SiteDraft], workloads: list[_Workload],
    overload: float,
) -> None:
    """Free accelerators per type = pending demand / overload, spread over the type's pools."""
    demand = dict.fromkeys(TYPES, 0.0)
    for w in workloads:
        usable = [t for t in w.usable if any(t in d.types for d in drafts)]
        for t in usable:
            demand[t] += w.gang.accelerators / len(usable)
    for t in TYPES:
        holders = [d for d in drafts if t in d.types]
        if not holders:
            continue
        weight = np.array([d.weight for d in holders]) * rng.lognormal(0.0, 0.4, len(holders))
        free = demand[t] / overload * weight / weight.sum()
        for d, f in zip(holders, free, strict=True):
            busy = float(np.clip(d.busy + rng.normal(0.0, 0.05), 0.02, 0.95))
            nodes = max(1, math.ceil(f / (1.0 - busy) / NODE))
            d.count[t] = nodes * NODE
            d.available[t] = min(d.count[t], round(f))


def _tariff(rng: np.random.Generator, d: _SiteDraft) -> Tariff:
    base = round(CLUSTERS[d.cluster][6] * rng.lognormal(0.0, 0.06), 4)
    periods: tuple[tuple[int, int, float], ...]
    if d.side == "east":  # Guangdong 2021: peak 1.7, valley 0.38, critical peak +25% Jul-Sep
        peak, crit, valley = 1.7, 1.7 * 1.25, 0.38
        periods = ((0, 8, valley), (10, 11, peak), (11, 12, crit), (14, 15, peak),
                   (15, 17, crit), (17, 19, peak))
    else:  # 3:1 where the load gap is smaller (NDRC 2021)
        peak, valley = 1.5, 0.5
        periods = ((0, 8, valley), (10, 12, peak), (14, 19, peak))
    return Tariff(base, tuple(TouPeriod(float(a), float(b), m) for a, b, m in periods))


# --------------------------------------------------------------------------- instance


def make_instance(
    jobs: int, sites: int, seed: int, *, overload: float = 1.3, workloads: int | None = None,
) -> tuple[Snapshot, Policy, float]:
    """A seeded instance: ``(snapshot, policy, now)`` with ``jobs`` pending jobs on ``sites``
    sites. ``overload`` is pending accelerator demand over free accelerators (per type);
    ``workloads`` the number of recurring job shapes (default: jobs / 50 within [40, 200])."""
    if jobs < 1 or sites < 2:
        raise ValueError("need at least one job and two sites")
    rng = np.random.default_rng(seed)
    now = _start_of_day() + float(rng.uniform(0.0, 24.0)) * 3600.0

    # 1. Sites, network, tenants, data.
    drafts = _draw_sites(rng, sites)
    links = _draw_links(rng, drafts)
    tenants, tenant_p = _draw_tenants(rng, drafts)
    datasets, owners = _draw_datasets(rng, drafts, tenants, tenant_p)
    hubs = {d.hub for d in drafts}
    spill = None
    if "Yangtze River Delta" in hubs and any(d.side == "west" for d in drafts):
        spill = SpilloverRule(
            name="yrd-overflow-goes-west",
            source=SiteSelector(hubs=frozenset({"Yangtze River Delta"})),
            target=SiteSelector(labels={"side": "west"}),
            above=0.4,
        )

    # 2. Workloads and the pending jobs drawn from them.
    n_workloads = workloads if workloads is not None else min(200, max(40, jobs // 50))
    cells, cell_p, pops = _draw_workloads(rng, n_workloads, drafts, tenants, tenant_p,
                                          datasets, owners, spill)
    pending, picked = _draw_jobs(rng, jobs, cells, cell_p, pops, now)

    # 3. Inventory sized against the demand; busy accelerators held by running jobs.
    _size_pools(rng, drafts, picked, overload)
    tenant_ids = [t.id for t in tenants]
    running: list[RunningJob] = []
    gangs: dict[tuple[int, AcceleratorType], Gang] = {}
    for d in drafts:
        for t in d.types:
            busy = d.count[t] - d.available[t]
            chunks = [NODE] * (busy // NODE) + ([busy % NODE] if busy % NODE else [])
            owner = rng.choice(len(tenants), size=len(chunks), p=tenant_p)
            hours = rng.uniform(1.0, 48.0, size=len(chunks))
            started = rng.uniform(0.0, 24.0, size=len(chunks))
            for k, size in enumerate(chunks):
                gang = gangs.setdefault((size, t), Gang(1, size, frozenset({t})))
                job = Job(id=JobId(f"run-{d.id}-{t}-{k:04d}"), tenant=tenant_ids[int(owner[k])],
                          gang=gang, runtime_h={t: round(float(hours[k]), 3)},
                          submitted_at=now - float(started[k]) * 3600.0 - 600.0)
                running.append(RunningJob(job, d.id, t, now - float(started[k]) * 3600.0))

    # 4. Sites as the solver sees them (subsidies for local tenants at some western sites).
    site_objs = []
    for d in drafts:
        pue = rng.uniform(1.15, 1.35) if d.side == "east" else rng.uniform(1.10, 1.25)
        local = frozenset(t.id for t in tenants if t.home_region == d.region)
        subsidised = d.side == "west" and bool(local) and rng.random() < 0.3
        site_objs.append(Site(
            id=d.id, region=d.region, hub=d.hub, lat=round(d.lat, 4), lon=round(d.lon, 4),
            pools=tuple(AcceleratorPool(t, d.count[t], d.available[t], d.prices[t])
                        for t in d.types),
            tariff=_tariff(rng, d), pue=round(pue, 3),
            labels={"side": d.side, "cluster": CLUSTERS[d.cluster][0]},
            subsidy_tenants=local if subsidised else frozenset(),
            subsidy_discount=0.15 if subsidised else 0.0,
        ))

    # 5. Policy: quotas for three big tenants, two premium tenants, power caps in the east.
    pending_acc = dict.fromkeys(tenant_ids, 0)
    largest = dict.fromkeys(tenant_ids, 0)
    for job in pending:
        pending_acc[job.tenant] += job.gang.accelerators
        largest[job.tenant] = max(largest[job.tenant], job.gang.accelerators)
    running_acc = dict.fromkeys(tenant_ids, 0)
    for run in running:
        running_acc[run.job.tenant] += run.job.gang.accelerators
    by_demand = sorted(tenant_ids, key=lambda t: (-pending_acc[t], t))
    policies: dict[TenantId, TenantPolicy] = {}
    for tid in by_demand[:3]:
        quota = running_acc[tid] + max(largest[tid], round(0.5 * pending_acc[tid]))
        policies[tid] = TenantPolicy(quota_accelerators=quota)
    for i in rng.choice(len(by_demand) - 3, size=2, replace=False):
        policies[by_demand[3 + int(i)]] = TenantPolicy(priority_weight=2.0)
    east_sites = sorted((s for s in site_objs if s.labels["side"] == "east"),
                        key=lambda s: -sum(p.count for p in s.pools))
    caps: dict[SiteId, float] = {}
    for s in east_sites[: 1 if sites < 20 else 2]:
        kw = {p.type: BUILTIN_ACCELERATORS[p.type].tdp_w / 1000.0 * s.pue for p in s.pools}
        busy_kw = sum((p.count - p.available) * kw[p.type] for p in s.pools)
        free_kw = sum(p.available * kw[p.type] for p in s.pools)
        caps[s.id] = round(busy_kw + 0.5 * free_kw, 1)
    policy = Policy(
        name="bench",
        tenants=policies,
        power_caps_kw=caps,
        spillover=(spill,) if spill is not None else (),
        accelerators=AcceleratorRules(speed=dict(SPEED)),
    )
    snapshot = Snapshot(
        sites=tuple(site_objs),
        links=links,
        datasets=tuple(datasets),
        locations=tuple(Location(LocationId(c[0]), c[1], c[2]) for c in CITIES),
        tenants=tuple(tenants),
        accelerators={t: BUILTIN_ACCELERATORS[t] for t in TYPES},
        pending=tuple(pending),
        running=tuple(running),
    )
    return snapshot, policy, now


def residency_bound(snapshot: Snapshot) -> int:
    """How many pending jobs read a dataset with a residency selector."""
    pinned = {d.id for d in snapshot.datasets if d.residency is not None}
    return sum(1 for job in snapshot.pending if pinned.intersection(job.datasets))


__all__ = ["TYPES", "make_instance", "residency_bound"]
