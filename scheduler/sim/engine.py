"""The discrete-event simulator: the real planners, driven in virtual time.

``simulate(scenario, planner_name)`` runs one planner over the scenario's horizon and returns
a ``SimResult`` (every run, every job's fate, and the samples the report is built from).

Virtual time advances event by event between planning ticks (every ``period_s``):

1. **Events up to the tick**, in time order: runs that finish; sites that go down (their
   running jobs are stopped at that instant and re-queued: checkpointable jobs keep their
   progress, others start over) and come back up.
2. **Arrivals**: jobs submitted up to the tick join their home region's queue.
3. **Snapshot**: every up site with ``available = count - running``; links between up
   sites; the queue's heads (at most ``max_pending_per_cycle``, shared equally between the
   home regions' queues; in each, by priority, then re-queued jobs, then submission); the
   running jobs; the policy with the power caps in force at this instant (the scenario's
   events, tightest cap wins). Links and capped policies are built once per distinct state.
4. **Plan**: ``PLANNERS[name](snapshot, policy, now)``, timed on the wall clock.
5. **Start** every placement, checking it independently first: a placement on a down site
   or beyond a pool's free accelerators is refused and counted (``capacity_overruns``; the
   job stays queued); residency (datasets' selectors and the policy's rules, re-derived
   here), latency SLOs and power caps are checked and violations counted. A started job
   runs for the placement's ``runtime_h`` and is charged the plan's energy and rental cost
   (unweighted), pro rata if an outage stops it.
6. **Park** jobs the plan says no site up now can run (``PARK_REASONS``): they leave the
   window, still waiting, until a site comes up, the power caps in force change, or the
   resync every ``RESYNC_H`` hours.
7. **Sample** busy accelerators per site.

Each run also carries its *floor*: the cheapest energy + rental the same run could have had
anywhere its hard rules allow, capacity aside (``_Sim._floor``), which the report compares
costs against. The simulator never reads the wall clock except to time the planner.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from scheduler.core.catalog import merged_catalog
from scheduler.core.geo import rtt_ms
from scheduler.core.ids import AcceleratorType, JobId, LocationId, SiteId
from scheduler.core.model import (
    AcceleratorPool,
    Dataset,
    Job,
    Link,
    RunningJob,
    Site,
    Snapshot,
)
from scheduler.core.options import mean_tariff_multiplier
from scheduler.core.plan import BlockReason, Placement, Plan
from scheduler.core.planners import Planner, get_planner
from scheduler.core.policy.model import Policy
from scheduler.core.speed import derive_runtimes, expand_allowed, speed_factors
from scheduler.sim.scenario import Scenario

EPS = 1e-9


@dataclass(slots=True)
class Run:
    """One start of one job. ``end_s`` is when it ended (or will end); ``stopped`` when an
    outage cut it short."""

    job: JobId
    site: SiteId
    accelerator: AcceleratorType
    accelerators: int
    start_s: float
    end_s: float
    planned_end_s: float
    energy_cny: float
    rental_cny: float
    kw: float
    moved_gb: float = 0.0
    stopped: bool = False
    # demand served per hour of this run: the job's runtime as submitted (on the type it was
    # stated for) over its runtime here; 1.0 on the stated type, 3.2 on an H800 for a job
    # stated on an A100
    work_rate: float = 1.0
    # the cheapest this run could have cost anywhere its rules allow, capacity aside (see
    # ``_Sim._floor``): what no planner can beat for the same work
    floor_cny: float = 0.0


@dataclass(slots=True)
class JobState:
    """What happened to one job."""

    job: Job  # as submitted
    kind: str
    state: str = "future"  # future | waiting | running | finished
    queued_since: float = 0.0
    wait_s: float = 0.0  # total time queued over all attempts (until the end if waiting)
    runs: list[Run] = field(default_factory=list)
    requeued: int = 0  # times an outage sent it back to the queue
    current: Job | None = None  # the job as queued now (remaining runtime after a stop)

    @property
    def finished_at(self) -> float | None:
        return self.runs[-1].end_s if self.state == "finished" else None


@dataclass(slots=True)
class Counters:
    cycles: int = 0
    solve_s: list[float] = field(default_factory=list)
    capacity_overruns: int = 0
    residency_violations: int = 0
    slo_misses: int = 0
    power_cap_excess: int = 0  # starts that took a capped site over its cap
    requeued_after_outage: int = 0
    replaced_after_outage: int = 0
    flows_gb: dict[tuple[SiteId, SiteId], float] = field(default_factory=dict)
    moved_gb: float = 0.0
    moved_cross_region_gb: float = 0.0


@dataclass(frozen=True, slots=True)
class SimResult:
    planner: str
    scenario: Scenario
    jobs: dict[JobId, JobState]
    runs: list[Run]
    counters: Counters
    sample_times: np.ndarray  # (K,) tick instants
    busy: np.ndarray  # (K, S) busy accelerators per site after each tick's starts
    capacity: np.ndarray  # (S,) installed accelerators per site
    wall_s: float
    cpu_s: float = 0.0  # CPU seconds of this process during the run


# --------------------------------------------------------------------------- checks


def residency_allows(
    job: Job, site: Site, datasets: dict[object, Dataset], policy: Policy,
    locations: dict[LocationId, tuple[float, float]],
) -> bool:
    """Independent residency check: every dataset's selector and every policy rule that
    applies to the job (by dataset or tenant) must allow ``site``."""
    for ds_id in job.datasets:
        ds = datasets.get(ds_id)
        if ds is not None and ds.residency is not None and not ds.residency.selects(site):
            return False
    for rule in policy.residency:
        if not (rule.datasets.intersection(job.datasets) or job.tenant in rule.tenants):
            continue
        if rule.allow is not None and not rule.allow.selects(site):
            return False
        if rule.within is not None:
            where = locations.get(rule.within.location)
            if where is None or rtt_ms(where[0], where[1], site.lat, site.lon) > rule.within.max_ms:
                return False
    return True


# --------------------------------------------------------------------------- engine


_FINISH, _UP, _DOWN = 0, 1, 2  # order of events at the same instant
# Floors per hour of stated runtime depend only on a job's rules and the scenario, so every
# planner run on a scenario shares one table (filled before the workers fork, see
# ``warm_floors``); the last few scenarios are kept.
_FLOORS: dict[int, tuple[Scenario, dict[object, float]]] = {}
_FLOOR_SCENARIOS = 4


def _floor_cache(scenario: Scenario) -> dict[object, float]:
    hit = _FLOORS.get(id(scenario))
    if hit is not None and hit[0] is scenario:
        return hit[1]
    while len(_FLOORS) >= _FLOOR_SCENARIOS:
        del _FLOORS[next(iter(_FLOORS))]
    table: dict[object, float] = {}
    _FLOORS[id(scenario)] = (scenario, table)
    return table
# Wait reasons that only a change of the sites up can lift: the job is parked until then (or
# until the next resync, every RESYNC_H hours, in case a planner's reason was too strong).
PARK_REASONS = frozenset({BlockReason.NO_ACCELERATOR, BlockReason.RESIDENCY, BlockReason.DATA,
                          BlockReason.LATENCY})
# Without spillover rules a SPILLOVER wait is local-only's "no usable site at home" (rules,
# latency, or a power cap: parked jobs come back when the caps in force change).
PARK_REASONS_NO_SPILLOVER = PARK_REASONS | {BlockReason.SPILLOVER}
RESYNC_H = 6.0


class _Sim:
    def __init__(self, scenario: Scenario, name: str, planner: Planner) -> None:
        self.sc = scenario
        self.name = name
        self.planner = planner
        self.policy = scenario.policy
        self.sites = {s.id: s for s in scenario.sites}
        self.site_index = {s.id: i for i, s in enumerate(scenario.sites)}
        self.used: dict[tuple[SiteId, AcceleratorType], int] = {}
        self.load_kw: dict[SiteId, float] = dict.fromkeys(self.sites, 0.0)
        self.down: set[SiteId] = set()
        self.catalog = merged_catalog(scenario.accelerators)
        self.speed = speed_factors(scenario.policy, self.catalog)
        self._floors = _floor_cache(scenario)
        self._tenant_matters = (any(r.tenants for r in scenario.policy.residency)
                                or any(s.subsidy_tenants for s in scenario.sites))
        self.datasets: dict[object, Dataset] = {d.id: d for d in scenario.workload.datasets}
        self.locations = {loc.id: (loc.lat, loc.lon) for loc in scenario.locations}
        self.jobs = {j.id: JobState(j, scenario.workload.kinds.get(j.id, "training"))
                     for j in scenario.workload.jobs}
        # the queue, per home region (each region's own queue, as islands have today): per
        # priority (high first), re-queued jobs ahead of new ones, each in insertion order
        # (dicts keep it)
        self.queue: dict[str, dict[tuple[int, int], dict[JobId, Job]]] = {}
        self.queued: dict[str, int] = {}
        # jobs the last plan said cannot run on the sites up now (a non-transient wait reason:
        # no such hardware, residency, latency, ...): kept out of the window, as a control loop
        # marks them unschedulable, until the set of up sites changes. Still waiting.
        self.parked: dict[JobId, Job] = {}
        tenant_home = {t.id: t.home_region for t in scenario.workload.tenants}
        self.home = {j.id: j.home_region or tenant_home.get(j.tenant, "") for j in
                     scenario.workload.jobs}
        # static parts of the snapshot, rebuilt only when what they depend on changes
        self._links: dict[frozenset[SiteId], tuple[Link, ...]] = {}
        self._policies: dict[tuple[tuple[SiteId, float], ...], Policy] = {}
        self._caps_key: tuple[tuple[SiteId, float], ...] = ()
        self.running: dict[JobId, tuple[Run, RunningJob]] = {}
        self.events: list[tuple[float, int, int, str]] = []
        self.seq = 0
        self.counters = Counters()
        self.runs: list[Run] = []
        self.full_kw = {s.id: sum(p.count * self._kw(s, p.type) for p in s.pools)
                        for s in scenario.sites}
        for o in scenario.outages:
            self._push(o.start_s, _DOWN, o.site)
            self._push(o.end_s, _UP, o.site)

    def _kw(self, site: Site, accelerator: AcceleratorType) -> float:
        spec = self.catalog.get(accelerator)
        return (spec.tdp_w if spec else 0.0) / 1000.0 * site.pue

    def _push(self, t: float, kind: int, payload: str) -> None:
        self.seq += 1
        heapq.heappush(self.events, (t, kind, self.seq, payload))

    # ---- queue

    def _enqueue(self, job: Job, now: float, *, front: bool = False) -> None:
        state = self.jobs[job.id]
        state.state, state.queued_since, state.current = "waiting", now, job
        home = self.home[job.id]
        self.queue.setdefault(home, {}).setdefault(
            (-job.priority, 0 if front else 1), {})[job.id] = job
        self.queued[home] = self.queued.get(home, 0) + 1

    def _heads(self, limit: int) -> tuple[Job, ...]:
        """The queue's heads, at most ``limit``: every home region's queue gets an equal
        share of the window (a share it does not fill goes to the others), so that a long
        queue in one region never hides another region's jobs from the planner. Within a
        region: priority, then re-queued jobs, then submission order."""
        counts = {r: n for r, n in self.queued.items() if n > 0}
        take = dict.fromkeys(counts, 0)
        left = limit
        while left > 0 and counts:
            share = max(1, left // len(counts))
            for region in sorted(counts):
                extra = min(share, counts[region] - take[region], left)
                take[region] += extra
                left -= extra
            counts = {r: n for r, n in counts.items() if take[r] < n}
        out: list[Job] = []
        for region, n in take.items():
            got = 0
            for key in sorted(self.queue[region]):
                for job in self.queue[region][key].values():
                    if got >= n:
                        break
                    out.append(job)
                    got += 1
                if got >= n:
                    break
        jobs = self.jobs
        out.sort(key=lambda j: (-j.priority, 0 if jobs[j.id].requeued else 1, j.submitted_at,
                                j.id))
        return tuple(out)

    def _park(self, job_id: JobId) -> None:
        state = self.jobs[job_id]
        if state.state == "waiting" and state.current is not None:
            self._dequeue(state.current)
            self.parked[job_id] = state.current

    def _unpark(self) -> None:
        if not self.parked:
            return
        touched = set()
        for job in self.parked.values():
            home = self.home[job.id]
            front = self.jobs[job.id].requeued > 0
            self.queue.setdefault(home, {}).setdefault(
                (-job.priority, 0 if front else 1), {})[job.id] = job
            self.queued[home] = self.queued.get(home, 0) + 1
            touched.add(home)
        self.parked.clear()
        for home in touched:  # back in submission order
            for key, bucket in self.queue[home].items():
                self.queue[home][key] = dict(sorted(
                    bucket.items(), key=lambda item: (item[1].submitted_at, item[0])))

    def _dequeue(self, job: Job) -> None:
        home = self.home[job.id]
        buckets = self.queue.get(home, {})
        for key in ((-job.priority, 0), (-job.priority, 1)):
            bucket = buckets.get(key)
            if bucket is not None and bucket.pop(job.id, None) is not None:
                self.queued[home] -= 1
                return

    # ---- events

    def _advance(self, until: float) -> None:
        while self.events and self.events[0][0] <= until:
            t, kind, _, payload = heapq.heappop(self.events)
            if kind == _FINISH:
                entry = self.running.get(JobId(payload))
                if entry is None or entry[0].end_s != t:
                    continue  # stopped by an outage earlier
                self._release(entry[0])
                del self.running[JobId(payload)]
                self.jobs[JobId(payload)].state = "finished"
            elif kind == _DOWN:
                self._site_down(SiteId(payload), t)
            else:
                self.down.discard(SiteId(payload))
                self._unpark()  # a site is back: parked jobs may run there

    def _release(self, run: Run) -> None:
        self.used[(run.site, run.accelerator)] -= run.accelerators
        self.load_kw[run.site] -= run.kw

    def _site_down(self, site: SiteId, t: float) -> None:
        self.down.add(site)
        stopped = [jid for jid, (run, _) in self.running.items() if run.site == site]
        for jid in stopped:
            run, _ = self.running.pop(jid)
            self._release(run)
            done = (t - run.start_s) / max(run.planned_end_s - run.start_s, EPS)
            run.energy_cny *= done
            run.rental_cny *= done
            run.floor_cny *= done
            run.end_s, run.stopped = t, True
            state = self.jobs[jid]
            state.requeued += 1
            self.counters.requeued_after_outage += 1
            job = state.current or state.job
            if job.checkpointable:
                left = max(0.0, 1.0 - done)
                job = dataclasses.replace(job, runtime_h={
                    k: max(v * left, 1.0 / 3600.0) for k, v in job.runtime_h.items()})
            self._enqueue(job, t, front=True)

    # ---- one tick

    def _snapshot(self, now: float) -> tuple[Snapshot, Policy]:
        sites = []
        for s in self.sc.sites:
            if s.id in self.down:
                continue
            pools = tuple(
                AcceleratorPool(p.type, p.count, p.count - self.used.get((s.id, p.type), 0),
                                p.price_cny_per_hour)
                for p in s.pools)
            sites.append(dataclasses.replace(s, pools=pools))
        up = frozenset(s.id for s in sites)
        links = self._links.get(up)
        if links is None:
            links = self._links[up] = tuple(
                x for x in self.sc.links if x.a in up and x.b in up)
        caps = dict(self.policy.power_caps_kw)
        for cap in self.sc.power_caps:
            if cap.active(now):
                for sid in cap.sites:
                    kw = cap.cap_kw(self.full_kw[sid])
                    caps[sid] = min(caps.get(sid, math.inf), kw)
        key = tuple(sorted(caps.items()))
        if key != self._caps_key:  # other caps in force: parked jobs may fit now
            self._caps_key = key
            self._unpark()
        policy = self._policies.get(key)
        if policy is None:
            policy = self._policies[key] = (
                self.policy if caps == self.policy.power_caps_kw
                else dataclasses.replace(self.policy, power_caps_kw=caps))
        snapshot = Snapshot(
            sites=tuple(sites),
            links=links,
            datasets=self.sc.workload.datasets,
            locations=self.sc.locations,
            tenants=self.sc.workload.tenants,
            accelerators=self.sc.accelerators,
            pending=self._heads(self.sc.max_pending_per_cycle),
            running=tuple(r for _, r in self.running.values()),
        )
        return snapshot, policy

    def _start(self, p: Placement, now: float, policy: Policy) -> None:
        state = self.jobs.get(p.job)
        if state is None or state.state != "waiting" or state.current is None:
            self.counters.capacity_overruns += 1  # a placement for no waiting job
            return
        job = state.current
        site = self.sites.get(p.site)
        pool = site.pool(p.accelerator) if site is not None else None
        used = self.used.get((p.site, p.accelerator), 0)
        if (site is None or pool is None or p.site in self.down
                or used + p.accelerators > pool.count or p.accelerators != job.gang.accelerators):
            self.counters.capacity_overruns += 1
            return
        c = self.counters
        if not residency_allows(job, site, self.datasets, policy, self.locations):
            c.residency_violations += 1
        if job.user_location is not None and job.max_latency_ms is not None:
            where = self.locations.get(job.user_location)
            if where is None or rtt_ms(where[0], where[1], site.lat, site.lon) > \
                    job.max_latency_ms + EPS:
                c.slo_misses += 1
        kw = p.accelerators * self._kw(site, p.accelerator)
        cap = policy.power_caps_kw.get(site.id)
        if cap is not None and self.load_kw[site.id] + kw > cap + 1e-6:
            c.power_cap_excess += 1
        w = policy.objective
        energy = (p.cost.energy / w.energy if w.energy > 0 else
                  p.runtime_h * kw * site.tariff.base_cny_per_kwh
                  * mean_tariff_multiplier(site.tariff, now, p.runtime_h))
        rental = (p.cost.rental / w.rental if w.rental > 0 else
                  p.runtime_h * p.accelerators * (pool.price_cny_per_hour if pool else 0.0))
        end = now + p.runtime_h * 3600.0
        stated = next(iter(job.runtime_h.values()), p.runtime_h)
        run = Run(job.id, site.id, p.accelerator, p.accelerators, now, end, end, energy, rental,
                  kw, work_rate=stated / p.runtime_h if p.runtime_h > 0 else 1.0,
                  floor_cny=stated * self._floor(job, policy))
        for ds_id in job.datasets:
            ds = self.datasets.get(ds_id)
            if ds is None or site.id in ds.replicas or not ds.replicas:
                continue
            src = min(sorted(ds.replicas), key=lambda r: self._distance(r, site))
            run.moved_gb += ds.size_gb
            c.moved_gb += ds.size_gb
            c.flows_gb[(src, site.id)] = c.flows_gb.get((src, site.id), 0.0) + ds.size_gb
            if src not in self.sites or self.sites[src].region != site.region:
                c.moved_cross_region_gb += ds.size_gb
        self.used[(p.site, p.accelerator)] = used + p.accelerators
        self.load_kw[site.id] += kw
        self._dequeue(job)
        state.wait_s += now - state.queued_since
        if state.requeued and state.runs:
            c.replaced_after_outage += 1
        state.state = "running"
        state.runs.append(run)
        self.runs.append(run)
        self.running[job.id] = (run, RunningJob(job, site.id, p.accelerator, now))
        self._push(end, _FINISH, job.id)

    def _floor(self, job: Job, policy: Policy) -> float:
        """Cheapest energy + rental per hour of ``job``'s stated runtime over every site and
        type its hard rules allow (type, memory, residency, latency SLO), capacity, power caps
        and outages aside, with power at each site's lowest time-of-use price: a lower bound
        on what any planner pays for this run. 0 when nothing qualifies."""
        stated = next(iter(job.runtime_h.values()), 0.0)
        if stated <= 0:
            return 0.0
        ratios = tuple(sorted((t, h / stated) for t, h in job.runtime_h.items()))
        key = (job.gang, ratios, job.datasets, job.user_location, job.max_latency_ms,
               job.tenant if self._tenant_matters else None,
               id(policy.residency))
        hit = self._floors.get(key)
        if hit is not None:
            return hit
        allowed = expand_allowed(job.gang.allowed_types, policy)
        best = math.inf
        for site in self.sc.sites:
            if not residency_allows(job, site, self.datasets, policy, self.locations):
                continue
            if job.user_location is not None and job.max_latency_ms is not None:
                where = self.locations.get(job.user_location)
                if where is None or rtt_ms(where[0], where[1], site.lat, site.lon) > \
                        job.max_latency_ms + EPS:
                    continue
            low = min((pr.multiplier for pr in site.tariff.periods), default=1.0)
            low = min(low, 1.0) * site.tariff.base_cny_per_kwh
            runtimes = derive_runtimes(dict(ratios), [p.type for p in site.pools], self.speed)
            for pool in site.pools:
                spec = self.catalog.get(pool.type)
                if (pool.type not in allowed or pool.type not in runtimes or pool.count <
                        job.gang.accelerators
                        or (spec is not None and spec.memory_gb < job.gang.min_memory_gb)):
                    continue
                discount = site.subsidy_discount if job.tenant in site.subsidy_tenants else 0.0
                hourly = job.gang.accelerators * (
                    pool.price_cny_per_hour * (1.0 - discount) + self._kw(site, pool.type) * low)
                best = min(best, runtimes[pool.type] * hourly)
        value = best if math.isfinite(best) else 0.0
        self._floors[key] = value
        return value

    def _distance(self, replica: SiteId, site: Site) -> float:
        src = self.sites.get(replica)
        return math.inf if src is None else rtt_ms(src.lat, src.lon, site.lat, site.lon)

    # ---- the loop

    def run(self, progress: Callable[[float], None] | None = None) -> SimResult:
        sc = self.sc
        started = time.perf_counter()
        cpu_started = time.process_time()
        arrivals = sc.workload.jobs
        next_arrival = 0
        ticks = np.arange(sc.start_s, sc.end_s - EPS, sc.period_s)
        busy = np.zeros((ticks.size, len(sc.sites)))
        next_resync = sc.start_s + RESYNC_H * 3600.0
        for k, now in enumerate(ticks.tolist()):
            # 1. events up to now
            self._advance(now)
            if now >= next_resync:
                self._unpark()
                next_resync += RESYNC_H * 3600.0
            # 2. arrivals
            while next_arrival < len(arrivals) and arrivals[next_arrival].submitted_at <= now:
                job = arrivals[next_arrival]
                self._enqueue(job, job.submitted_at)
                next_arrival += 1
            # 3-5. snapshot, plan, start
            if any(self.queued.values()) or self.parked:
                snapshot, policy = self._snapshot(now)
                if snapshot.pending and snapshot.sites:
                    t0 = time.perf_counter()
                    plan: Plan = self.planner(snapshot, policy, now)
                    self.counters.solve_s.append(time.perf_counter() - t0)
                    self.counters.cycles += 1
                    for placement in plan.placements:
                        self._start(placement, now, policy)
                    park = PARK_REASONS if policy.spillover else PARK_REASONS_NO_SPILLOVER
                    for wait in plan.waits:
                        if wait.reason in park:
                            self._park(wait.job)
            # 6. sample
            for (sid, _), n in self.used.items():
                busy[k, self.site_index[sid]] += n
            if progress is not None:
                progress((now - sc.start_s) / (sc.end_s - sc.start_s))
        self._advance(sc.end_s)
        for job in arrivals[next_arrival:]:  # arrived after the last tick: still waiting
            if job.submitted_at <= sc.end_s:
                self._enqueue(job, job.submitted_at)
        for state in self.jobs.values():
            if state.state == "waiting":
                state.wait_s += sc.end_s - state.queued_since
        if progress is not None:
            progress(1.0)
        capacity = np.array([sum(p.count for p in s.pools) for s in sc.sites], dtype=np.float64)
        return SimResult(
            planner=self.name, scenario=sc, jobs=self.jobs, runs=self.runs,
            counters=self.counters, sample_times=ticks, busy=busy, capacity=capacity,
            wall_s=time.perf_counter() - started, cpu_s=time.process_time() - cpu_started)


def simulate(
    scenario: Scenario, planner: str, *, progress: Callable[[float], None] | None = None
) -> SimResult:
    """Run ``planner`` (a name in ``PLANNERS``) over ``scenario``."""
    # The optimizer gets no clock: its LP rounds are then bounded by count (12) and each LP
    # solve and its CP-SAT polish by ``solver_time_limit_s`` (the polish in deterministic
    # time), never cut short by the wall clock. So a run does not depend on the machine or its
    # load: every figure but the timings reproduces exactly.
    return _Sim(scenario, planner, get_planner(planner)).run(progress)


def warm_floors(scenario: Scenario) -> None:
    """Fill the scenario's floor table for every job (so that forked workers share it)."""
    sim = _Sim(scenario, "", get_planner("first-fit"))
    for job in scenario.workload.jobs:
        sim._floor(job, scenario.policy)


def simulate_all(
    scenario: Scenario, planners: Iterable[str] | None = None,
    *, progress: Callable[[str, float], None] | None = None,
) -> list[SimResult]:
    out = []
    for name in planners if planners is not None else scenario.policies:
        cb = partial(progress, name) if progress is not None else None
        out.append(simulate(scenario, name, progress=cb))
    return out


__all__ = [
    "JobState",
    "Run",
    "SimResult",
    "residency_allows",
    "simulate",
    "simulate_all",
    "warm_floors",
]
