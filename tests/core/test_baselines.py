"""The baselines on tiny hand-built snapshots: where each puts a job, and why a job waits."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from scheduler.core.ids import AcceleratorType, DatasetId, JobId, LocationId, SiteId, TenantId
from scheduler.core.model import (
    AcceleratorPool,
    Dataset,
    Gang,
    Job,
    Site,
    SiteSelector,
    Snapshot,
    Tariff,
    Tenant,
)
from scheduler.core.plan import BlockReason, Plan
from scheduler.core.planners import BASELINES, PLANNERS
from scheduler.core.policy.model import (
    LatencyBound,
    ObjectiveWeights,
    Policy,
    ResidencyRule,
    TenantPolicy,
)
from tests.checker import check_plan

A100 = AcceleratorType("A100-80G")
H100 = AcceleratorType("H100-80G")
H800 = AcceleratorType("H800-80G")
NOW = 1_750_000_000.0
BJ = TenantId("t-bj")  # home region beijing
NOBODY = TenantId("t-none")  # no tenant record: no home region

# Grid order bj1, sh1, nx1; price order nx1 < sh1 < bj1. Only sh1 has H100.
#          region      hub        lat    lon    A100 count, CNY/h  kWh price  H100 count
SITES = {
    "bj1": ("beijing", "jjj", 39.9, 116.4, 4, 20.0, 0.80, 0),
    "sh1": ("shanghai", "yrd", 31.2, 121.5, 8, 15.0, 0.75, 4),
    "nx1": ("ningxia", "ningxia", 37.5, 105.2, 16, 8.0, 0.36, 0),
}


def world(free: dict[str, int] | None = None, jobs: tuple[Job, ...] = (),
          datasets: tuple[Dataset, ...] = ()) -> Snapshot:
    """The three sites with ``free[site]`` A100s free (all of them when not given)."""
    free = free or {}
    sites = []
    for name, (region, hub, lat, lon, count, price, kwh, h100) in SITES.items():
        pools = [AcceleratorPool(A100, count, free.get(name, count), price)]
        if h100:
            pools.append(AcceleratorPool(H100, h100, h100, 30.0))
        sites.append(Site(SiteId(name), region, hub, lat, lon, tuple(pools), Tariff(kwh), 1.2))
    return Snapshot(sites=tuple(sites), datasets=datasets, tenants=(Tenant(BJ, "beijing"),),
                    pending=jobs)


def job(name: str, *, tenant: TenantId = BJ, accelerators: int = 2,
        allowed: AcceleratorType = A100, priority: int = 0, age_s: float = 60.0,
        datasets: tuple[str, ...] = (), hours: float = 4.0,
        deadline: float | None = None) -> Job:
    return Job(JobId(name), tenant, Gang(1, accelerators, frozenset({allowed})),
               {allowed: hours}, submitted_at=NOW - age_s, priority=priority,
               deadline=deadline, datasets=tuple(DatasetId(d) for d in datasets))


IN_NINGXIA = Dataset(DatasetId("d-nx"), 10.0, frozenset({SiteId("nx1")}),
                     SiteSelector(regions=frozenset({"ningxia"})))
IN_TIBET = Dataset(DatasetId("d-xz"), 10.0, frozenset({SiteId("nx1")}),
                   SiteSelector(regions=frozenset({"xizang"})))
NO_QUEUE_PRICE = Policy(objective=ObjectiveWeights(queue_cny_per_accelerator_hour=0.0))
# waiting costs more than the dearest site's premium over the cheapest
HIGH_QUEUE_PRICE = Policy(objective=ObjectiveWeights(queue_cny_per_accelerator_hour=100.0))


@dataclass(frozen=True)
class Case:
    name: str
    planner: str
    snapshot: Snapshot
    want: dict[str, str | None]  # job -> site, or None for waiting
    reasons: dict[str, BlockReason] = field(default_factory=dict)
    policy: Policy = field(default_factory=Policy)


CASES = [
    # where jobs go
    Case("first-fit takes the first site in grid order", "first-fit",
         world(jobs=(job("j1"),)), {"j1": "bj1"}),
    Case("first-fit skips a full site", "first-fit",
         world({"bj1": 0}, (job("j1"),)), {"j1": "sh1"}),
    Case("greedy-cheapest takes the cheapest site", "greedy-cheapest",
         world(jobs=(job("j1"),)), {"j1": "nx1"}),
    Case("greedy-cheapest takes the next cheapest when the cheapest is full",
         "greedy-cheapest", world({"nx1": 2}, (job("j1"), job("j2", age_s=30.0))),
         {"j1": "nx1", "j2": "sh1"}, policy=HIGH_QUEUE_PRICE),
    Case("greedy-cheapest leaves a job waiting rather than pay the premium",
         "greedy-cheapest", world({"nx1": 2}, (job("j1"), job("j2", age_s=30.0))),
         {"j1": "nx1", "j2": None}, {"j2": BlockReason.COST}),
    Case("spread-by-capacity picks the emptiest site", "spread-by-capacity",
         world({"bj1": 4, "sh1": 8, "nx1": 6}, (job("j1"),)), {"j1": "sh1"}),
    Case("spread-by-capacity spreads, ties in grid order", "spread-by-capacity",
         world({"bj1": 4, "sh1": 6, "nx1": 4},
               (job("j1", age_s=90.0), job("j2", age_s=60.0), job("j3", age_s=30.0))),
         {"j1": "sh1", "j2": "bj1", "j3": "sh1"}),
    Case("local-only keeps a job home though elsewhere is cheaper", "local-only",
         world(jobs=(job("j1"),)), {"j1": "bj1"}),
    Case("local-only lets a job without a home go anywhere, cheapest first", "local-only",
         world(jobs=(job("j1", tenant=NOBODY),)), {"j1": "nx1"}),
    Case("priority goes first, then submission time", "first-fit",
         world({"bj1": 2, "sh1": 0, "nx1": 0},
               (job("old", age_s=900.0), job("urgent", priority=2, age_s=10.0))),
         {"old": None, "urgent": "bj1"}, {"old": BlockReason.OUTBID}),
    Case("submission time breaks a priority tie", "first-fit",
         world({"bj1": 2, "sh1": 0, "nx1": 0}, (job("new", age_s=10.0), job("old"))),
         {"old": "bj1", "new": None}, {"new": BlockReason.OUTBID}),
    # why jobs wait
    Case("local-only waits when home is full while another region is free", "local-only",
         world({"bj1": 0}, (job("j1"),)), {"j1": None}, {"j1": BlockReason.CAPACITY}),
    Case("local-only: home taken by a job ahead", "local-only",
         world({"bj1": 2}, (job("j1", age_s=90.0), job("j2"))),
         {"j1": "bj1", "j2": None}, {"j2": BlockReason.OUTBID}),
    Case("local-only: no hardware at home", "local-only",
         world(jobs=(job("j1", allowed=H100),)), {"j1": None},
         {"j1": BlockReason.NO_ACCELERATOR}),
    Case("local-only: residency keeps the job out of home", "local-only",
         world(jobs=(job("j1", datasets=("d-nx",)),), datasets=(IN_NINGXIA,)),
         {"j1": None}, {"j1": BlockReason.SPILLOVER}),
    Case("residency leaves one site", "first-fit",
         world(jobs=(job("j1", datasets=("d-nx",)),), datasets=(IN_NINGXIA,)),
         {"j1": "nx1"}),
    Case("residency excludes every site", "first-fit",
         world(jobs=(job("j1", datasets=("d-xz",)),), datasets=(IN_TIBET,)),
         {"j1": None}, {"j1": BlockReason.RESIDENCY}),
    Case("a dataset missing from the snapshot fails closed", "first-fit",
         world(jobs=(job("j1", datasets=("d-missing",)),)), {"j1": None},
         {"j1": BlockReason.DATA}),
    Case("an SLO from an unknown location fails closed", "first-fit",
         world(jobs=(dataclasses.replace(job("j1"), user_location=LocationId("atlantis"),
                                         max_latency_ms=50.0),)),
         {"j1": None}, {"j1": BlockReason.LATENCY}),
    Case("a residency rule near an unknown location fails closed", "greedy-cheapest",
         world(jobs=(job("j1"),)), {"j1": None}, {"j1": BlockReason.RESIDENCY},
         policy=Policy(residency=(ResidencyRule("near", tenants=frozenset({BJ}),
                                                within=LatencyBound(LocationId("atlantis"),
                                                                    50.0)),))),
    Case("no site has the accelerator", "spread-by-capacity",
         world(jobs=(job("j1", allowed=H800),)), {"j1": None},
         {"j1": BlockReason.NO_ACCELERATOR}),
    Case("every site full from the start", "first-fit",
         world({"bj1": 0, "sh1": 1, "nx1": 0}, (job("j1"),)), {"j1": None},
         {"j1": BlockReason.CAPACITY}),
    Case("full after the jobs ahead", "spread-by-capacity",
         world({"bj1": 0, "sh1": 2, "nx1": 0}, (job("j1", age_s=90.0), job("j2"))),
         {"j1": "sh1", "j2": None}, {"j2": BlockReason.OUTBID}),
    Case("greedy-cheapest waits when waiting is cheaper", "greedy-cheapest",
         world({"nx1": 0}, (job("j1"),)), {"j1": None}, {"j1": BlockReason.COST},
         policy=NO_QUEUE_PRICE),
    Case("greedy-cheapest: a job that waits on cost does not stop the next of its class",
         # same class (gang, rules, runtime window); the second job's deadline makes its
         # waiting dear enough to pay sh1's premium over the full nx1, the first's is not
         "greedy-cheapest",
         world({"nx1": 0}, (job("j1", hours=5.0, age_s=90.0),
                            job("j2", hours=3.0, deadline=NOW + 3 * 3600.0))),
         {"j1": None, "j2": "sh1"}, {"j1": BlockReason.COST}),
    Case("first-fit places even when waiting is cheaper", "first-fit",
         world({"nx1": 0}, (job("j1"),)), {"j1": "bj1"}, policy=NO_QUEUE_PRICE),
    Case("quota", "greedy-cheapest",
         world(jobs=(job("j1", age_s=90.0), job("j2"))), {"j1": "nx1", "j2": None},
         {"j2": BlockReason.QUOTA},
         policy=Policy(tenants={BJ: TenantPolicy(quota_accelerators=3)})),
    Case("power cap", "greedy-cheapest",
         # one A100 draws 0.4 kW x 1.2 PUE = 0.48 kW: 1 kW at nx1 holds one gang of two
         world(jobs=(job("j1", age_s=90.0), job("j2"))), {"j1": "nx1", "j2": "sh1"},
         policy=Policy(objective=HIGH_QUEUE_PRICE.objective,
                       power_caps_kw={SiteId("nx1"): 1.0})),
    Case("local-only: power cap at home", "local-only",
         world(jobs=(job("j1", age_s=90.0), job("j2"))), {"j1": "bj1", "j2": None},
         {"j2": BlockReason.POWER_CAP},
         policy=Policy(power_caps_kw={SiteId("bj1"): 1.0})),
]


def where(plan: Plan) -> dict[str, str | None]:
    out: dict[str, str | None] = {p.job: p.site for p in plan.placements}
    out.update({w.job: None for w in plan.waits})
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_baseline(case: Case) -> None:
    plan = PLANNERS[case.planner](case.snapshot, case.policy, NOW)
    assert plan.planner == case.planner
    assert where(plan) == case.want
    assert {w.job: w.reason for w in plan.waits if w.job in case.reasons} == case.reasons
    assert check_plan(case.snapshot, case.policy, NOW, plan) == []


def test_wait_messages_speak_the_baselines_terms() -> None:
    full_home = world({"bj1": 0}, (job("j1"),))
    (wait,) = PLANNERS["local-only"](full_home, Policy(), NOW).waits
    assert "home region beijing" in wait.message
    behind = world({"bj1": 2, "sh1": 0, "nx1": 0}, (job("j1", age_s=90.0), job("j2")))
    (wait,) = PLANNERS["first-fit"](behind, Policy(), NOW).waits
    assert "ahead in the queue" in wait.message
    no_estimate = world(jobs=(dataclasses.replace(job("j1"), runtime_h={}),))
    (wait,) = PLANNERS["first-fit"](no_estimate, Policy(), NOW).waits
    assert wait.reason is BlockReason.NO_ACCELERATOR
    assert "no runtime estimate for A100-80G" in wait.message


@pytest.mark.parametrize("name", BASELINES)
def test_empty_queue(name: str) -> None:
    plan = PLANNERS[name](world(), Policy(), NOW)
    assert (plan.placements, plan.waits, plan.objective) == ((), (), 0.0)
