"""The optimizer against hand-built cases and against brute force on tiny instances."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from scheduler.core.assemble import initial_usage, job_costs
from scheduler.core.ids import AcceleratorType, JobId, SiteId, TenantId
from scheduler.core.model import (
    AcceleratorPool,
    Dataset,
    Gang,
    Job,
    Site,
    SiteSelector,
    Snapshot,
    Tariff,
)
from scheduler.core.options import estimate
from scheduler.core.plan import BlockReason
from scheduler.core.policy.model import Policy, SolverOptions, TenantPolicy
from scheduler.core.solver import plan
from scheduler.core.solver.optimizer import LP_TOLERANCE

H100 = AcceleratorType("H100-80G")
R4090 = AcceleratorType("RTX4090-48G")
A100 = AcceleratorType("A100-80G")


def site(name: str, region: str, price_kwh: float, pools: dict[AcceleratorType, tuple[int, float]],
         side: str = "east") -> Site:
    return Site(
        id=SiteId(name), region=region, hub=region, lat=31.0 if side == "east" else 37.0,
        lon=121.0 if side == "east" else 105.0,
        pools=tuple(AcceleratorPool(t, n, n, price) for t, (n, price) in pools.items()),
        tariff=Tariff(price_kwh), pue=1.25 if side == "east" else 1.2, labels={"side": side},
    )


def job(i: int, types: set[AcceleratorType], hours: float, workers: int = 1, per: int = 8,
        priority: int = 0, datasets: tuple[str, ...] = (), tenant: str = "t") -> Job:
    return Job(
        id=JobId(f"j{i}"), tenant=TenantId(tenant),
        gang=Gang(workers, per, frozenset(types)),
        runtime_h={next(iter(sorted(types))): hours}, submitted_at=0.0, priority=priority,
        datasets=tuple(d for d in datasets),  # type: ignore[misc]
    )


EAST = site("east", "Shanghai", 0.75, {H100: (16, 20.0), R4090: (16, 3.0)})
WEST = site("west", "Ningxia", 0.36, {H100: (16, 16.0), A100: (16, 8.0)}, side="west")


def test_prefers_the_cheaper_site_when_both_fit() -> None:
    snap = Snapshot(sites=(EAST, WEST), pending=(job(0, {H100}, 4.0),))
    result = plan(snap, Policy(), 0.0)
    assert [(p.job, p.site) for p in result.placements] == [("j0", "west")]
    assert result.lower_bound <= result.objective + 1e-6
    assert result.gap == pytest.approx(0.0, abs=1e-9)


def test_capacity_is_never_exceeded_and_the_rest_wait() -> None:
    jobs = tuple(job(i, {H100}, 2.0 + i) for i in range(6))  # 48 GPUs wanted, 32 free
    result = plan(Snapshot(sites=(EAST, WEST), pending=jobs), Policy(), 0.0)
    used: dict[str, int] = {}
    for p in result.placements:
        used[p.site] = used.get(p.site, 0) + p.accelerators
    assert used == {"east": 16, "west": 16}
    assert len(result.waits) == 2
    assert {w.reason for w in result.waits} == {BlockReason.OUTBID}


def test_residency_keeps_a_job_on_its_allowed_site() -> None:
    pinned = Dataset(id="ds", size_gb=10, replicas=frozenset({SiteId("east")}),  # type: ignore[arg-type]
                     residency=SiteSelector(regions=frozenset({"Shanghai"})))
    snap = Snapshot(sites=(EAST, WEST), datasets=(pinned,),
                    pending=(job(0, {H100}, 4.0, datasets=("ds",)),))
    result = plan(snap, Policy(), 0.0)
    assert [p.site for p in result.placements] == ["east"]
    explanation = result.explanations[JobId("j0")]
    assert explanation.eliminated == {BlockReason.NO_ACCELERATOR: 4, BlockReason.RESIDENCY: 1}


def test_quota_limits_a_tenant() -> None:
    jobs = tuple(job(i, {H100}, 2.0) for i in range(3))
    policy = Policy(tenants={TenantId("t"): TenantPolicy(quota_accelerators=16)})
    result = plan(Snapshot(sites=(EAST, WEST), pending=jobs), policy, 0.0)
    assert sum(p.accelerators for p in result.placements) == 16
    assert {w.reason for w in result.waits} == {BlockReason.QUOTA}


def test_no_allowed_accelerator_is_explained() -> None:
    snap = Snapshot(sites=(EAST, WEST),
                    pending=(job(0, {AcceleratorType("Ascend910B-64G")}, 1.0),))
    result = plan(snap, Policy(), 0.0)
    assert not result.placements
    assert result.waits[0].reason is BlockReason.NO_ACCELERATOR


def test_column_generation_reaches_the_full_lp() -> None:
    rng = np.random.default_rng(3)
    sites = tuple(site(f"s{i}", f"r{i}", float(rng.uniform(0.3, 0.8)),
                       {H100: (8 * int(rng.integers(1, 4)), float(rng.uniform(12, 24)))})
                  for i in range(12))
    jobs = tuple(job(i, {H100}, float(rng.uniform(1, 30)), per=8) for i in range(40))
    snap = Snapshot(sites=sites, pending=jobs)
    narrow = plan(snap, Policy(solver=SolverOptions(initial_columns=1)), 0.0)
    wide = plan(snap, Policy(solver=SolverOptions(initial_columns=100)), 0.0)
    assert narrow.stats["lp_rounds"] > 1
    # column generation stops once the full LP is provably within LP_TOLERANCE
    assert wide.stats["lp_value"] <= narrow.stats["lp_value"] + 1e-6
    assert narrow.stats["lp_value"] <= wide.stats["lp_value"] * (1 + LP_TOLERANCE) + 1e-6


def test_the_same_input_gives_the_same_plan() -> None:
    jobs = tuple(job(i, {H100, A100, R4090}, 1.0 + i % 5, priority=i % 3) for i in range(30))
    snap = Snapshot(sites=(EAST, WEST), pending=jobs)
    first, second = plan(snap, Policy(), 0.0), plan(snap, Policy(), 0.0)
    assert [(p.job, p.site, p.accelerator) for p in first.placements] == \
        [(p.job, p.site, p.accelerator) for p in second.placements]
    assert first.objective == second.objective


def _brute_force(snap: Snapshot, policy: Policy) -> float:
    """The exact optimum by enumeration (tiny instances only)."""
    options = estimate(snap, policy, 0.0)
    per_job = []
    for j in range(len(snap.pending)):
        cls = options.classes[int(options.job_class[j])]
        per_job.append([-1, *range(cls.options.size)])
    best = float("inf")
    for combo in itertools.product(*per_job):
        usage = initial_usage(options)
        pool = usage.pool.reshape(-1)
        ok = True
        total = 0.0
        for j, pos in enumerate(combo):
            cls = options.classes[int(options.job_class[j])]
            k = int(options.job_position[j])
            choice = np.full(cls.jobs.size, -1)
            choice[k] = pos
            total += float(job_costs(cls, choice)[k])
            if pos >= 0:
                pool[cls.options[pos]] -= cls.accelerators
                if pool[cls.options[pos]] < 0:
                    ok = False
                    break
        if ok:
            best = min(best, total)
    return best


@pytest.mark.parametrize("seed", range(12))
def test_bound_and_plan_bracket_the_brute_force_optimum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sites = tuple(
        site(f"s{i}", f"r{i}", float(rng.uniform(0.3, 0.8)),
             {t: (8 * int(rng.integers(0, 3)), float(rng.uniform(2, 24)))
              for t in rng.choice([H100, A100, R4090], size=2, replace=False)})
        for i in range(3)
    )
    jobs = tuple(
        job(i, set(rng.choice([H100, A100, R4090], size=int(rng.integers(1, 3)), replace=False)),
            float(rng.uniform(0.5, 40)), per=int(rng.choice([4, 8])),
            priority=int(rng.integers(0, 3)))
        for i in range(5)
    )
    snap = Snapshot(sites=sites, pending=jobs)
    result = plan(snap, Policy(), 0.0)
    optimum = _brute_force(snap, Policy())
    assert result.lower_bound <= optimum + 1e-6
    assert optimum <= result.objective + 1e-6


def test_route_arrays_agree_with_networkx_routes() -> None:
    from scheduler.core.graph import SiteGraph
    from scheduler.core.model import Link

    rng = np.random.default_rng(11)
    sites = tuple(site(f"s{i}", f"r{i}", 0.5, {H100: (8, 10.0)}) for i in range(9))
    links = []
    for i in range(9):
        for k in rng.choice(9, size=2, replace=False).tolist():
            if k != i:
                links.append(Link(sites[i].id, sites[k].id, float(rng.uniform(1, 30)),
                                  float(rng.uniform(1, 100)), float(rng.uniform(0, 1))))
    graph = SiteGraph(sites, tuple(links))
    order = tuple(s.id for s in sites)
    for source in order:
        egress, bottleneck, reachable = graph.route_arrays(source, order)
        routes = graph.routes_from(source)
        for i, target in enumerate(order):
            route = routes.get(target)
            assert reachable[i] == (route is not None)
            if route is not None:
                assert egress[i] == pytest.approx(route.egress_cny_per_gb)
                assert bottleneck[i] == pytest.approx(route.bottleneck_gbps)
