"""The control loop over simulated sites, cycle by cycle, on a hand-driven clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.simulated import SimulatedSite
from scheduler.core.adapter import DispatchState
from scheduler.service.jobs import JobState
from tests.service.harness import Harness, Refusing, spec, submit


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def sim(h: Harness, name: str) -> SimulatedSite:
    site = h.sites[name]
    assert isinstance(site, SimulatedSite)
    return site


def busy(h: Harness, name: str) -> int:
    return sum(p.count - p.available for p in h.sites[name].inventory())


def test_a_job_goes_from_pending_to_succeeded(harness: Harness) -> None:
    service = harness.service()
    [job_id] = submit(service, spec(hours=1.0))
    first = service.loop.cycle()
    assert (first.placed, first.dispatched) == (1, 1)
    job = service.store.get(job_id)
    assert job is not None and job.state is JobState.DISPATCHED
    service.loop.cycle()  # dispatches are followed from the next cycle on
    job = service.store.get(job_id)
    assert job is not None and job.state is JobState.RUNNING
    assert busy(harness, job.site or "") == 8
    harness.clock.advance(3601)
    service.loop.cycle()
    done = service.store.get(job_id)
    assert done is not None and done.state is JobState.SUCCEEDED
    kinds = [e.kind for e in service.store.events(job_id)]
    assert kinds == ["submitted", "placed", "dispatched", "running", "succeeded"]
    assert busy(harness, job.site or "") == 0
    service.stop()


def test_the_queue_never_overruns_a_site(harness: Harness) -> None:
    service = harness.service()
    ids = submit(service, *[spec(f"j{i}", gpus=8) for i in range(10)])  # 80 GPUs, 48 exist
    service.loop.cycle()
    jobs = [service.store.get(i) for i in ids]
    placed = [j for j in jobs if j is not None and j.state is not JobState.PENDING]
    assert len(placed) == 6
    for name in harness.sites:
        assert all(p.available >= 0 for p in harness.sites[name].inventory())
    waiting = next(j for j in jobs if j is not None and j.state is JobState.PENDING)
    assert waiting.reason  # the plan's reason for waiting is on the job
    assert "wait" in service.explain(waiting)["summary"].lower() or waiting.message
    service.stop()


def test_cancel_before_placement_and_while_running(harness: Harness) -> None:
    service = harness.service()
    running, = submit(service, spec("r"))
    service.loop.cycle()
    waiting, = submit(service, spec("w"))
    assert service.cancel(waiting).state is JobState.CANCELLED  # type: ignore[union-attr]
    flagged = service.cancel(running)
    assert flagged is not None and flagged.cancel_requested
    report = service.loop.cycle()
    assert report.cancelled == 1
    job = service.store.get(running)
    assert job is not None and job.state is JobState.CANCELLED
    assert sim(harness, job.site or "").status(job.dispatch_name or "").state is (
        DispatchState.STOPPED)
    assert busy(harness, job.site or "") == 0
    service.stop()


def test_a_site_that_stops_answering_has_its_jobs_replaced_within_residency(
    harness: Harness,
) -> None:
    service = harness.service()
    bound = submit(service, *[spec(f"scan{i}", gpus=4, datasets=("scans",)) for i in range(3)])
    service.loop.cycle()
    first = {i: service.store.get(i) for i in bound}
    sites = {j.site for j in first.values() if j is not None}
    assert sites <= {"east-a", "west-b"}, "residency allows Shanghai and Guizhou only"
    lost = sites.pop()
    sim(harness, lost).set_health(False, "connection refused")
    service.loop.cycle()  # one failed check: not down yet (down_after: 2)
    assert all(service.store.get(i).attempt == 1 for i in bound)  # type: ignore[union-attr]
    service.loop.cycle()  # down: re-placed at once on the other allowed site
    for job_id in bound:
        job = service.store.get(job_id)
        assert job is not None and job.state in {JobState.DISPATCHED, JobState.RUNNING}
        assert job.site in {"east-a", "west-b"} and job.site != "west-c"
        if first[job_id].site == lost:  # type: ignore[union-attr]
            assert job.attempt == 2 and job.site != lost
    old = [a for i in bound for a in service.store.attempts(i) if a.site == lost]
    assert old and all(a.cleanup_pending for a in old)
    # The site comes back: the copies it still runs are stopped, once.
    sim(harness, lost).set_health(True)
    service.loop.cycle()
    for attempt in old:
        assert sim(harness, lost).status(attempt.dispatch_name).state is DispatchState.STOPPED
    assert service.store.cleanups(lost) == []
    assert busy(harness, lost) == 0
    service.stop()


def test_a_restart_between_reserve_and_dispatch_starts_each_job_once(harness: Harness) -> None:
    service = harness.service()
    ids = submit(service, spec("a"), spec("b"))
    now = harness.clock()
    snapshot, queue = service.loop.snapshot(now)
    plan = service.loop.plan(snapshot, now)
    service.loop.reserve(plan, queue, now, report=_report(now))
    # Half-dispatched: one job reached its site, the crash came before DISPATCHED was written.
    placed = [service.store.get(i) for i in ids]
    service.loop._submit(placed[0])  # type: ignore[arg-type]
    service.loop.close()
    service.store.close()  # the process dies here

    restarted = harness.service()
    restarted.loop.cycle()
    restarted.loop.cycle()
    total_busy = sum(busy(harness, name) for name in harness.sites)
    assert total_busy == 16, "two jobs of 8, each started once"
    for job_id in ids:
        job = restarted.store.get(job_id)
        assert job is not None and job.state is JobState.RUNNING and job.attempt == 1
    restarted.stop()


def test_a_refused_dispatch_waits_with_the_sites_reason_and_backs_off(tmp_path: Path) -> None:
    refusals: dict[str, Refusing] = {}

    def refuse(site):  # type: ignore[no-untyped-def]
        refusals[site.name] = Refusing(site, "exceeded quota: requests.nvidia.com/gpu")
        return refusals[site.name]

    harness = Harness(tmp_path, wrap={n: refuse for n in ("east-a", "west-b", "west-c")})
    service = harness.service()
    [job_id] = submit(service, spec())
    report = service.loop.cycle()
    job = service.store.get(job_id)
    assert job is not None and job.state is JobState.PENDING and job.attempt == 1
    assert job.reason == "RefusedBySite" and "exceeded quota" in job.message
    assert report.requeued == 1
    service.loop.cycle()  # within the back-off: not planned again
    assert sum(r.refused for r in refusals.values()) == 1
    harness.clock.advance(61)
    service.loop.cycle()
    assert sum(r.refused for r in refusals.values()) == 2
    service.stop()


def test_a_job_stopped_at_the_site_by_someone_else_gets_a_new_attempt(
    harness: Harness,
) -> None:
    service = harness.service()
    [job_id] = submit(service, spec())
    service.loop.cycle()
    job = service.store.get(job_id)
    assert job is not None
    sim(harness, job.site or "").cancel(job.dispatch_name or "")  # behind our back
    service.loop.cycle()
    requeued = service.store.get(job_id)
    assert requeued is not None and requeued.state is JobState.PENDING
    assert requeued.reason == "StoppedAtSite"
    service.loop.cycle()
    service.loop.cycle()
    again = service.store.get(job_id)
    assert again is not None and again.attempt == 2 and again.state is JobState.RUNNING
    assert [a.state.value for a in service.store.attempts(job_id)] == ["ABANDONED", "RUNNING"]
    service.stop()


def _report(now: float):  # type: ignore[no-untyped-def]
    from scheduler.service.loop import CycleReport

    return CycleReport(started_at=now)
