"""The plan checker catches every kind of violation (a checker that cannot fail is worthless).

Each case hand-builds a plan on one small world and names the violation tags the checker
must report: exactly those, so that a case also proves the checker does not cry wolf.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from scheduler.core.ids import AcceleratorType, DatasetId, JobId, LocationId, SiteId, TenantId
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
)
from scheduler.core.plan import BlockReason, CostBreakdown, Placement, Plan, Wait
from scheduler.core.policy.model import (
    AcceleratorRules,
    LatencyBound,
    Policy,
    ResidencyRule,
    SpilloverRule,
    TenantPolicy,
)
from tests.checker import TAGS, check_plan

A100 = AcceleratorType("A100-80G")
H100 = AcceleratorType("H100-80G")
RTX = AcceleratorType("RTX4090-24G")
NOW = 1_750_000_000.0
T0 = TenantId("t0")


def _site(name: str, region: str, hub: str, lat: float, lon: float,
          pools: tuple[AcceleratorPool, ...]) -> Site:
    return Site(SiteId(name), region, hub, lat, lon, pools, Tariff(0.5), pue=1.25)


# bj1: A100 half busy (4 of 8 free, 4 x 0.5 kW = 2 kW busy), H100 all free.
# nx1: linked to bj1, ~16 ms away.  gz1: no links at all.
SITES = (
    _site("bj1", "beijing", "jjj", 39.9, 116.4,
          (AcceleratorPool(A100, 8, 4, 10.0), AcceleratorPool(H100, 8, 8, 20.0))),
    _site("nx1", "ningxia", "ningxia", 37.5, 105.2,
          (AcceleratorPool(A100, 16, 16, 8.0), AcceleratorPool(RTX, 8, 8, 2.0))),
    _site("gz1", "guizhou", "guizhou", 26.6, 106.7, (AcceleratorPool(A100, 4, 4, 8.0),)),
)
DATASETS = (
    Dataset(DatasetId("d-bj"), 100.0, frozenset({SiteId("bj1")}),
            SiteSelector(regions=frozenset({"beijing"}))),
    Dataset(DatasetId("d-nx"), 100.0, frozenset({SiteId("nx1")})),
    Dataset(DatasetId("d-gz"), 100.0, frozenset({SiteId("gz1")})),
)
BJ_USERS = Location(LocationId("bj-users"), 39.9, 116.4)


def job(name: str = "j1", *, workers: int = 1, per_worker: int = 2,
        allowed: tuple[AcceleratorType, ...] = (A100,), memory: float = 0.0,
        datasets: tuple[str, ...] = (), user: str | None = None,
        max_latency_ms: float | None = None) -> Job:
    return Job(
        id=JobId(name), tenant=T0,
        gang=Gang(workers, per_worker, frozenset(allowed), memory),
        runtime_h={allowed[0]: 2.0}, submitted_at=NOW - 60.0,
        datasets=tuple(DatasetId(d) for d in datasets),
        user_location=LocationId(user) if user is not None else None,
        max_latency_ms=max_latency_ms,
    )


@dataclass(frozen=True)
class Case:
    name: str
    jobs: tuple[Job, ...]
    placed: tuple[tuple[str, str, AcceleratorType, int], ...]  # job, site, type, accelerators
    waiting: tuple[str, ...] = ()
    want: frozenset[str] = frozenset()  # violation tags, exactly
    policy: Policy = field(default_factory=Policy)
    snapshot: dict[str, object] = field(default_factory=dict)  # Snapshot field overrides
    objective_delta: float = 0.0
    lower_bound: float = 0.0


def world(case: Case) -> Snapshot:
    base = Snapshot(
        sites=SITES,
        links=(Link(SiteId("bj1"), SiteId("nx1"), 16.0, 10.0, 0.1),),
        datasets=DATASETS,
        locations=(BJ_USERS,),
        tenants=(Tenant(T0, "beijing"),),
        pending=case.jobs,
    )
    return dataclasses.replace(base, **case.snapshot)  # type: ignore[arg-type]


def plan_of(case: Case) -> Plan:
    placements = tuple(
        Placement(JobId(j), SiteId(s), t, n, 2.0, CostBreakdown(energy=1.0, rental=2.0))
        for j, s, t, n in case.placed)
    waits = tuple(Wait(JobId(j), BlockReason.CAPACITY, "full", CostBreakdown(queue=5.0))
                  for j in case.waiting)
    total = sum(p.cost.total for p in placements) + sum(w.cost.total for w in waits)
    return Plan("hand", placements, waits, total + case.objective_delta, case.lower_bound, 0.0)


ONE = (job(),)
RUNNING_2 = RunningJob(job("r1"), SiteId("bj1"), A100, NOW - 600.0)
SPILL = SpilloverRule("east-to-gz", SiteSelector(hubs=frozenset({"jjj"})),
                      SiteSelector(regions=frozenset({"guizhou"})), above=0.9)

CASES = [
    # feasible plans: the checker must stay silent
    Case("valid placement", ONE, (("j1", "bj1", A100, 2),)),
    Case("valid wait", ONE, (), ("j1",)),
    Case("equivalent type", (job(allowed=(A100,)),), (("j1", "bj1", H100, 2),),
         policy=Policy(accelerators=AcceleratorRules(equivalences=(frozenset({A100, H100}),)))),
    Case("dataset reaches over a link", (job(datasets=("d-nx",)),), (("j1", "bj1", A100, 2),)),
    Case("power exactly at the cap", ONE, (("j1", "bj1", A100, 2),),
         policy=Policy(power_caps_kw={SiteId("bj1"): 3.0})),
    Case("quota exactly used", ONE, (("j1", "bj1", A100, 2),),
         policy=Policy(tenants={T0: TenantPolicy(quota_accelerators=4)}),
         snapshot={"running": (RUNNING_2,)}),
    Case("spillover to a target above the threshold", ONE, (("j1", "gz1", A100, 2),),
         policy=Policy(spillover=(dataclasses.replace(SPILL, above=0.2),))),
    Case("spillover inside the source", ONE, (("j1", "bj1", A100, 2),),
         policy=Policy(spillover=(SPILL,))),
    # one violation each
    Case("capacity overrun", (job(workers=4),), (("j1", "bj1", A100, 8),),
         want=frozenset({"capacity"})),
    Case("capacity overrun by two jobs", (job("j1"), job("j2"), job("j3")),
         tuple((j, "bj1", A100, 2) for j in ("j1", "j2", "j3")), want=frozenset({"capacity"})),
    Case("dataset residency breach", (job(datasets=("d-bj",)),), (("j1", "nx1", A100, 2),),
         want=frozenset({"residency"})),
    Case("residency rule breach", ONE, (("j1", "nx1", A100, 2),),
         policy=Policy(residency=(ResidencyRule(
             "stay", tenants=frozenset({T0}),
             allow=SiteSelector(regions=frozenset({"beijing"}))),)),
         want=frozenset({"residency"})),
    Case("residency within breach", (job(datasets=("d-nx",)),), (("j1", "nx1", A100, 2),),
         policy=Policy(residency=(ResidencyRule(
             "golden-10km", datasets=frozenset({DatasetId("d-nx")}),
             within=LatencyBound(BJ_USERS.id, 5.0)),)),
         want=frozenset({"residency"})),
    Case("residency within an unknown location", ONE, (("j1", "bj1", A100, 2),),
         policy=Policy(residency=(ResidencyRule(
             "nowhere", tenants=frozenset({T0}),
             within=LatencyBound(LocationId("atlantis"), 50.0)),)),
         want=frozenset({"residency"})),
    Case("wrong type", ONE, (("j1", "bj1", H100, 2),), want=frozenset({"type"})),
    Case("too little memory", (job(allowed=(RTX,), memory=40.0),), (("j1", "nx1", RTX, 2),),
         want=frozenset({"memory"})),
    Case("memory per the snapshot's catalog", (job(memory=80.0),), (("j1", "bj1", A100, 2),),
         snapshot={"accelerators": {A100: AcceleratorSpec(A100, 40.0, 312.0, 400.0, True)}},
         want=frozenset({"memory"})),
    Case("no such pool", (job(allowed=(H100,)),), (("j1", "nx1", H100, 2),),
         want=frozenset({"pool", "capacity"})),
    Case("gang size", ONE, (("j1", "bj1", A100, 3),), want=frozenset({"gang"})),
    Case("unknown site", ONE, (("j1", "sh9", A100, 2),), want=frozenset({"site"})),
    Case("missing job", (job("j1"), job("j2")), (("j1", "bj1", A100, 2),),
         want=frozenset({"missing"})),
    Case("duplicated job", ONE, (("j1", "bj1", A100, 2),), ("j1",),
         want=frozenset({"duplicate"})),
    Case("job placed twice", ONE, (("j1", "bj1", A100, 2), ("j1", "nx1", A100, 2)),
         want=frozenset({"duplicate"})),
    Case("job not pending", ONE, (("j1", "bj1", A100, 2), ("ghost", "bj1", A100, 2)),
         want=frozenset({"unknown-job"})),
    Case("power cap breach", (job(workers=2),), (("j1", "bj1", A100, 4),),
         policy=Policy(power_caps_kw={SiteId("bj1"): 3.0}), want=frozenset({"power"})),
    Case("quota breach", (job(workers=2),), (("j1", "bj1", A100, 4),),
         policy=Policy(tenants={T0: TenantPolicy(quota_accelerators=4)}),
         snapshot={"running": (RUNNING_2,)}, want=frozenset({"quota"})),
    Case("latency breach", (job(user="bj-users", max_latency_ms=10.0),),
         (("j1", "nx1", A100, 2),), want=frozenset({"latency"})),
    Case("latency from an unknown location", (job(user="atlantis", max_latency_ms=10.0),),
         (("j1", "bj1", A100, 2),), want=frozenset({"latency"})),
    Case("dataset unreachable", (job(datasets=("d-gz",)),), (("j1", "bj1", A100, 2),),
         want=frozenset({"data"})),
    Case("unknown dataset", (job(datasets=("d-xx",)),), (("j1", "bj1", A100, 2),),
         want=frozenset({"data"})),
    Case("spillover outside the target", ONE, (("j1", "nx1", A100, 2),),
         policy=Policy(spillover=(SPILL,)), want=frozenset({"spillover"})),
    Case("spillover below the threshold", ONE, (("j1", "gz1", A100, 2),),
         policy=Policy(spillover=(SPILL,)), want=frozenset({"spillover"})),
    Case("objective is not the sum of costs", ONE, (("j1", "bj1", A100, 2),),
         objective_delta=1.0, want=frozenset({"objective"})),
    Case("bound above the objective", ONE, (("j1", "bj1", A100, 2),), lower_bound=100.0,
         want=frozenset({"bound"})),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_checker_reports_exactly_the_violation(case: Case) -> None:
    violations = check_plan(world(case), case.policy, NOW, plan_of(case))
    tags = {v.split(":", 1)[0] for v in violations}
    assert tags == case.want, violations
    assert tags <= set(TAGS)


def test_every_tag_but_cost_has_a_case() -> None:
    covered = set().union(*(c.want for c in CASES))
    assert covered == set(TAGS) - {"cost"}


def test_checker_reports_a_non_finite_cost() -> None:
    case = Case("nan", ONE, (("j1", "bj1", A100, 2),))
    plan = plan_of(case)
    bad = dataclasses.replace(plan.placements[0], cost=CostBreakdown(energy=float("nan")))
    plan = dataclasses.replace(plan, placements=(bad,))
    tags = {v.split(":", 1)[0] for v in check_plan(world(case), case.policy, NOW, plan)}
    assert "cost" in tags
