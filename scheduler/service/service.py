"""``Service``: the store, the sites, the policy and the control loop, wired from a config.

The API (and the demo, and the tests) talk to this object; it checks what only the service can
know (does this accelerator type, dataset, location exist?) and wakes the loop on a change.
Authorization is the API's job: methods here trust their caller.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scheduler.core.adapter import LogsUnavailable, SupportsLogs
from scheduler.core.catalog import merged_catalog
from scheduler.core.plan import Plan
from scheduler.core.policy.load import parse_policy
from scheduler.core.snapshot_file import Topology, parse_topology
from scheduler.service.config import ServiceConfig
from scheduler.service.jobs import ACTIVE, JobRecord, JobSpec, JobState
from scheduler.service.leader import LeaseElector
from scheduler.service.loop import PLAN_SUMMARY_KEY, ControlLoop, LoopSettings, summary_json
from scheduler.service.policy_state import PolicyState, PolicyVersion
from scheduler.service.sites import SiteRuntime, build_sites
from scheduler.service.store import NewJob, Store, Submitted


@dataclass(frozen=True, slots=True)
class SpecProblem:
    """A submitted spec names something the service does not know; ``field`` is its path."""

    field: str
    message: str


class Service:
    def __init__(
        self,
        config: ServiceConfig,
        store: Store,
        topology: Topology,
        sites: Mapping[str, SiteRuntime],
        policy: PolicyState,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.topology = topology
        self.sites = dict(sites)
        self.policy = policy
        self.clock = clock
        self.loop = ControlLoop(
            store, sites, topology, policy,
            datasets=config.datasets, tenants=config.tenants,
            settings=LoopSettings(
                cycle_s=config.cycle_s, down_after=config.down_after,
                refused_backoff_s=config.refused_backoff_s, planner=config.planner,
            ),
            clock=clock,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.elector: LeaseElector | None = None
        # Set when the loop runs in another process (`isthmus serve --loop process`).
        self.wake_hook: Callable[[], None] | None = None
        self.catalog = merged_catalog(topology.accelerators)
        self._datasets = {str(d.id) for d in config.datasets}
        self._locations = {str(loc.id) for loc in topology.locations}

    @classmethod
    def from_config(cls, config: ServiceConfig, *, factories: Mapping[str, Any] | None = None,
                    clock: Callable[[], float] = time.time) -> Service:
        """Open the store (migrating it), read topology and policy, build every site."""
        topology = parse_topology(config.topology_path.read_text(), str(config.topology_path))
        store = Store.open(config.database_url)
        try:
            policy = PolicyState.load(config.policy_path, store)
            sites = build_sites(config, topology.sites, factories)
        except BaseException:
            store.close()
            raise
        return cls(config, store, topology, sites, policy, clock=clock)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Run the control loop in a background thread (with leader election: only while this
        replica holds the Lease)."""
        if self._thread is not None:
            return
        if self.config.leader_election is not None and self.elector is None:
            self.elector = LeaseElector(self.config.leader_election)
            self.elector.start()
        self._thread = threading.Thread(
            target=self.loop.run, args=(self._stop,), kwargs={"is_leader": self.is_leader},
            name="isthmus-loop", daemon=True,
        )
        self._thread.start()

    def wake(self) -> None:
        """Tell the control loop (in this process, or the loop process) that work arrived."""
        (self.wake_hook or self.loop.wake)()

    def is_leader(self) -> bool:
        return self.elector is None or self.elector.is_leader()

    def stop(self) -> None:
        self._stop.set()
        self.loop.wake()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self.elector is not None:
            self.elector.stop()  # releases the Lease: a follower takes over at once
        self.loop.close()
        for runtime in self.sites.values():
            close = getattr(runtime.adapter, "close", None)
            if callable(close):
                close()
        self.store.close()

    @property
    def ready(self) -> bool:
        """Ready once the loop has completed a cycle (sites checked, queue planned); a
        follower replica (not holding the Lease) is ready at once: it serves the API."""
        if self.loop.cycles > 0 or not self.is_leader():
            return True
        stored = self.store.get_setting(PLAN_SUMMARY_KEY)  # a loop in another process
        return stored is not None and json.loads(stored).get("cycles", 0) > 0

    # ------------------------------------------------------------------ jobs

    def check_spec(self, spec: JobSpec) -> list[SpecProblem]:
        """What in ``spec`` names an unknown accelerator type, dataset or user location."""
        problems = []
        for i, t in enumerate(spec.allowed_types):
            if t not in self.catalog:
                problems.append(SpecProblem(
                    f"gang.allowed_types[{i}]",
                    f"unknown accelerator type {t!r}; known: {', '.join(sorted(self.catalog))}",
                ))
        for t in spec.runtime_h:
            if t not in self.catalog:
                problems.append(SpecProblem(f"runtime_h.{t}", f"unknown accelerator type {t!r}"))
        for i, d in enumerate(spec.datasets):
            if d not in self._datasets:
                problems.append(SpecProblem(f"datasets[{i}]", f"unknown dataset {d!r}"))
        if spec.user_location is not None and spec.user_location not in self._locations:
            problems.append(SpecProblem(
                "user_location",
                f"unknown location {spec.user_location!r}; known: "
                f"{', '.join(sorted(self._locations))}",
            ))
        return problems

    def submit_many(self, batch: Sequence[NewJob]) -> list[Submitted]:
        """Persist new jobs (PENDING) and wake the loop. Specs must have passed check_spec."""
        out = self.store.submit_many(batch, self.clock())
        self.wake()
        return out

    def submit(self, new: NewJob) -> Submitted:
        return self.submit_many([new])[0]

    def cancel(self, job_id: str) -> JobRecord | None:
        job = self.store.request_cancel(job_id, self.clock())
        self.wake()
        return job

    def logs(self, job: JobRecord, *, follow: bool) -> Iterator[str]:
        """The log of the job's current attempt, from its site. Raises ``LogsUnavailable``."""
        if job.dispatch_name is None or job.site is None:
            raise LogsUnavailable(f"job {job.id} is {job.state.value}: it has not been dispatched")
        if job.state is JobState.PLACED:
            raise LogsUnavailable(f"job {job.id} is placed at {job.site}, not dispatched yet")
        runtime = self.sites.get(job.site)
        if runtime is None:
            raise LogsUnavailable(f"site {job.site} is no longer configured")
        if not isinstance(runtime.adapter, SupportsLogs):
            raise LogsUnavailable(f"the adapter of site {job.site} cannot read logs")
        return runtime.adapter.logs(job.dispatch_name, follow=follow)

    def explain(self, job: JobRecord) -> dict[str, Any]:
        """Why the job is where it is, or why it waits: the plan's explanation, as stored by
        the loop (so every replica answers the same)."""
        out: dict[str, Any] = {
            "job": job.id,
            "state": job.state.value,
            "site": job.site,
            "accelerator": job.accelerator,
            "reason": job.reason,
            "message": job.message,
            "summary": None,
            "options_considered": None,
            "eliminated": {},
            "runner_up": None,
            "planner": None,
        }
        if job.explanation:
            out.update({k: v for k, v in job.explanation.items() if k in out})
        elif job.state is JobState.PENDING and job.message:
            out["summary"] = f"waiting: {job.message}"
        elif job.site is not None:
            out["summary"] = f"placed at {job.site} on {job.accelerator} (attempt {job.attempt})"
        else:
            out["summary"] = f"{job.state.value.lower()}; not planned yet"
        return out

    # ------------------------------------------------------------------ sites, plan, policy

    def site_views(self) -> list[dict[str, Any]]:
        """Every site as the loop (of whichever replica leads) last saw it."""
        active = self.store.jobs_in(ACTIVE)
        held: Counter[str] = Counter()
        jobs_at: Counter[str] = Counter()
        for job in active:
            if job.site is not None:
                held[job.site] += job.spec.accelerators
                jobs_at[job.site] += 1
        records = self.store.site_records()
        out = []
        for name, runtime in self.sites.items():
            record = records.get(name)
            pools: list[dict[str, Any]] = [
                dict(p) for p in record.inventory] if record is not None and record.inventory else [
                {"type": p.type, "count": p.count, "available": p.available,
                 "price_cny_per_hour": p.price_cny_per_hour} for p in runtime.site.pools]
            total = sum(int(p["count"]) for p in pools)
            available = sum(int(p["available"]) for p in pools)
            section = self.config.sites.get(name) or {}
            out.append({
                "name": name,
                "region": runtime.site.region,
                "hub": runtime.site.hub,
                "side": runtime.site.labels.get("side"),
                "adapter": str(section.get("adapter", "simulated")),
                "up": not (record.down if record is not None else False),
                "healthy": bool(record.healthy) if record is not None else False,
                "reason": record.reason if record is not None else "not checked yet",
                "accelerators": total,
                "available": available,
                "utilisation": (total - available) / total if total else 0.0,
                "jobs": jobs_at[name],
                "held_by_isthmus": held[name],
                "pools": pools,
            })
        return out

    def plan_summary(self) -> dict[str, Any]:
        """The last plan and cycle of the leading replica's loop, and jobs by state."""
        stored = self.store.get_setting(PLAN_SUMMARY_KEY)
        summary: dict[str, Any] = json.loads(stored) if stored else summary_json(0, None, None)
        summary["policy_source"] = self.policy.version.source
        summary["jobs_by_state"] = {s.value: n for s, n in self.store.count_by_state().items()}
        return summary

    def dry_run(self, text: str) -> dict[str, Any]:
        """What would change if ``text`` were the policy now: moves, newly placed, newly
        waiting, objective. Raises ``PolicyError`` for an invalid policy. Changes nothing."""
        candidate = parse_policy(text, "dry-run")
        now = self.clock()
        current, _ = self.loop.plan_with(self.policy.current, now)
        proposed, _ = self.loop.plan_with(candidate, now)
        return _compare(current, proposed)

    def update_policy(self, text: str) -> PolicyVersion:
        path = self.config.policy_path
        file_text = path.read_text() if path is not None else ""
        version = self.policy.update(text, self.store, self.clock(), file_text)
        self.wake()
        return version


def _compare(current: Plan, proposed: Plan) -> dict[str, Any]:
    where_now = {p.job: (p.site, p.accelerator) for p in current.placements}
    where_then = {p.job: (p.site, p.accelerator) for p in proposed.placements}
    moved = [
        {"job": j, "from": f"{a[0]}/{a[1]}", "to": f"{b[0]}/{b[1]}"}
        for j, b in where_then.items()
        if (a := where_now.get(j)) is not None and a != b
    ]
    return {
        "queue": len(current.placements) + len(current.waits),
        "current": {"placed": len(current.placements), "waiting": len(current.waits),
                    "objective": current.objective},
        "proposed": {"placed": len(proposed.placements), "waiting": len(proposed.waits),
                     "objective": proposed.objective},
        "moved": moved,
        "newly_placed": sorted(set(where_then) - set(where_now)),
        "newly_waiting": sorted(set(where_now) - set(where_then)),
    }


__all__ = ["Service", "SpecProblem"]
