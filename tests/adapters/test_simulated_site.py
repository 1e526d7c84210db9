"""The simulated site under an injected clock: queueing, timing, capacity, preemption, outages."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

import pytest

from adapters.simulated import SimulatedSite
from scheduler.core.adapter import (
    AdapterError,
    Dispatch,
    DispatchConflict,
    DispatchState,
    LogsUnavailable,
    SiteAdapter,
    SiteUnreachable,
    SupportsLogs,
    SupportsPreemption,
)
from scheduler.core.ids import AcceleratorType, JobId, SiteId, TenantId
from scheduler.core.model import AcceleratorPool, Gang, Job
from scheduler.core.plan import CostBreakdown, Placement

H20 = AcceleratorType("H20-96G")
L40S = AcceleratorType("L40S-48G")
PENDING, RUNNING = DispatchState.PENDING, DispatchState.RUNNING
SUCCEEDED, FAILED, STOPPED = DispatchState.SUCCEEDED, DispatchState.FAILED, DispatchState.STOPPED
UNKNOWN = DispatchState.UNKNOWN


class FakeClock:
    """Seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def at(self, seconds: float) -> None:
        """Jump to ``seconds`` after the start."""
        self.now = 1000.0 + seconds


def dispatch(
    job: str,
    accelerators: int,
    runtime_h: float,
    accelerator: AcceleratorType = H20,
    attempt: int = 0,
) -> Dispatch:
    job_id = JobId(job)
    gang = Gang(1, accelerators, frozenset({accelerator}))
    the_job = Job(job_id, TenantId("acme"), gang, {accelerator: runtime_h}, submitted_at=0.0)
    placement = Placement(
        job_id, SiteId("sim"), accelerator, accelerators, runtime_h, CostBreakdown()
    )
    return Dispatch.for_attempt(the_job, placement, attempt)


def site(
    clock: FakeClock, h20: int = 8, l40s: int = 0, speedup: float = 3600.0
) -> SimulatedSite:
    """A site where one hour of work takes one clock second (speedup 3600)."""
    pools = [AcceleratorPool(H20, h20, h20, 9.5)]
    if l40s:
        pools.append(AcceleratorPool(L40S, l40s, l40s, 4.0))
    return SimulatedSite("sim", pools, clock=clock, speedup=speedup, sleep=clock.advance)


def states(s: SimulatedSite, *names: str) -> dict[str, DispatchState]:
    return {n: s.status(dispatch_name(n)).state for n in names}


def dispatch_name(job: str) -> str:
    return f"{job}-0"


def free(s: SimulatedSite, kind: AcceleratorType = H20) -> int:
    return next(p.available for p in s.inventory() if p.type == kind)


# -- timing and FIFO, table-driven ---------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    capacity: int
    submit: list[tuple[str, int, float]]  # (job, accelerators, runtime_h), all at t=0
    checks: list[tuple[float, dict[str, DispatchState]]]  # (clock seconds, wanted states)


CASES = [
    Case(
        "fits at once, ends exactly at its runtime",
        8,
        [("a", 8, 1.0)],
        [(0.0, {"a": RUNNING}), (0.999, {"a": RUNNING}), (1.0, {"a": SUCCEEDED})],
    ),
    Case(
        "the second gang waits until the first frees its accelerators",
        8,
        [("a", 6, 1.0), ("b", 4, 1.0)],
        [
            (0.0, {"a": RUNNING, "b": PENDING}),
            (0.99, {"a": RUNNING, "b": PENDING}),
            (1.0, {"a": SUCCEEDED, "b": RUNNING}),
            (1.99, {"b": RUNNING}),
            (2.0, {"b": SUCCEEDED}),
        ],
    ),
    Case(
        "strict FIFO: a small gang that would fit waits behind the blocked head",
        8,
        [("a", 6, 1.0), ("b", 4, 0.5), ("c", 2, 0.5)],
        [
            (0.0, {"a": RUNNING, "b": PENDING, "c": PENDING}),
            (1.0, {"a": SUCCEEDED, "b": RUNNING, "c": RUNNING}),
            (1.5, {"b": SUCCEEDED, "c": SUCCEEDED}),
        ],
    ),
    Case(
        "a chain of queued work replays in one call, each starting when the previous ends",
        4,
        [("a", 4, 1.0), ("b", 4, 2.0), ("c", 4, 0.5)],
        [
            (3.4, {"a": SUCCEEDED, "b": SUCCEEDED, "c": RUNNING}),
            (3.5, {"c": SUCCEEDED}),
        ],
    ),
    Case(
        "zero runtime succeeds as soon as it starts",
        8,
        [("a", 8, 1.0), ("b", 2, 0.0)],
        [(0.5, {"a": RUNNING, "b": PENDING}), (1.0, {"a": SUCCEEDED, "b": SUCCEEDED})],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_dispatches_start_fifo_and_end_at_their_runtime(case: Case) -> None:
    clock = FakeClock()
    s = site(clock, h20=case.capacity)
    for job, accelerators, runtime_h in case.submit:
        s.submit(dispatch(job, accelerators, runtime_h))
    for t, wanted in case.checks:
        clock.at(t)
        assert states(s, *wanted) == wanted, f"at t={t}"


def test_speedup_scales_runtime_to_clock_seconds() -> None:
    clock = FakeClock()
    s = site(clock, speedup=60.0)  # an hour of work in a clock minute
    s.submit(dispatch("a", 1, 2.0))
    clock.advance(119.9)
    assert s.status("a-0").state is RUNNING
    clock.advance(0.1)
    assert s.status("a-0").state is SUCCEEDED


def _virtual_times(s: SimulatedSite, name: str) -> dict[str, float]:
    """Virtual seconds of each event word in a dispatch's log (``started``, ``finished``...)."""
    times = {}
    for line in s.logs(name):
        stamp, text = line.split("] ", 1)
        times[text.split(":")[0]] = float(stamp.removeprefix("[t+").removesuffix("s"))
    return times


def test_capacity_is_never_exceeded_and_every_dispatch_runs_exactly_its_runtime() -> None:
    rng = random.Random(7)
    clock = FakeClock()
    s = site(clock, h20=16, l40s=8)
    capacity = {H20: 16, L40S: 8}
    wanted: dict[str, tuple[AcceleratorType, int, float]] = {}
    step = 0
    while step < 60 or any(not s.status(n).is_terminal() for n in wanted):
        if step < 60:
            for _ in range(rng.randint(0, 3)):
                kind = rng.choice([H20, L40S])
                job = f"j{len(wanted)}"
                n = rng.randint(1, capacity[kind])
                runtime = rng.choice([0.1, 0.25, 0.5, 1.0, 2.5])
                s.submit(dispatch(job, n, runtime, kind))
                wanted[dispatch_name(job)] = (kind, n, runtime)
        # What runs at this instant must fit its pool, and match what inventory reports.
        used = {H20: 0, L40S: 0}
        for name, (kind, n, _) in wanted.items():
            if s.status(name).state is RUNNING:
                used[kind] += n
        for pool in s.inventory():
            assert used[pool.type] <= capacity[pool.type], f"step {step}"
            assert pool.available == pool.count - used[pool.type], f"step {step}"
        clock.advance(0.2)
        step += 1
        assert step < 2000, "the workload never drained"
    assert len(wanted) > 50
    last_start = {H20: -1.0, L40S: -1.0}
    for name, (kind, _, runtime) in wanted.items():  # in submission order
        times = _virtual_times(s, name)
        assert s.status(name).state is SUCCEEDED
        # Log times are whole virtual seconds.
        assert times["finished"] - times["started"] == pytest.approx(runtime * 3600, abs=1), name
        assert times["started"] >= last_start[kind], f"{name} overtook an earlier dispatch"
        last_start[kind] = times["started"]


# -- idempotency and conflicts ---------------------------------------------------------------


def test_a_second_submit_of_the_same_dispatch_is_a_no_op() -> None:
    clock = FakeClock()
    s = site(clock)
    d = dispatch("a", 4, 1.0)
    s.submit(d)
    clock.advance(0.5)
    s.submit(d)  # a retry after a restart: must not queue a second copy nor restart it
    assert free(s) == 4
    clock.advance(0.5)
    assert s.status(d.name).state is SUCCEEDED
    s.submit(d)  # also after it ended
    assert s.status(d.name).state is SUCCEEDED
    assert free(s) == 8


def test_the_same_name_for_another_job_is_a_conflict() -> None:
    s = site(FakeClock())
    s.submit(dispatch("a", 4, 1.0))
    other = dispatch("b", 4, 1.0)
    impostor = Dispatch("a-0", other.job, other.placement, other.tenant, 0)
    with pytest.raises(DispatchConflict, match="job 'a'"):
        s.submit(impostor)
    assert free(s) == 4


@pytest.mark.parametrize(
    ("accelerator", "accelerators", "match"),
    [(L40S, 1, "no L40S-48G"), (H20, 9, "needs 9 x H20-96G, the site has 8")],
)
def test_a_dispatch_the_site_can_never_run_is_refused(
    accelerator: AcceleratorType, accelerators: int, match: str
) -> None:
    s = site(FakeClock())
    with pytest.raises(AdapterError, match=match):
        s.submit(dispatch("a", accelerators, 1.0, accelerator))
    assert s.status("a-0").state is UNKNOWN


# -- cancel, fail, unknown -------------------------------------------------------------------


def test_cancel_stops_running_work_frees_it_and_starts_the_queue() -> None:
    clock = FakeClock()
    s = site(clock)
    s.submit(dispatch("a", 8, 1.0))
    s.submit(dispatch("b", 8, 1.0))
    clock.advance(0.25)
    s.cancel("a-0")
    assert states(s, "a", "b") == {"a": STOPPED, "b": RUNNING}
    assert s.status("a-0").reason == "Cancelled"
    clock.advance(0.99)
    assert s.status("b-0").state is RUNNING  # b started at the cancel, not at a's planned end
    clock.advance(0.01)
    assert s.status("b-0").state is SUCCEEDED


def test_cancel_of_queued_work_means_it_never_starts() -> None:
    clock = FakeClock()
    s = site(clock)
    for job in ("a", "b", "c"):
        s.submit(dispatch(job, 8, 1.0))
    s.cancel("b-0")
    clock.at(1.0)
    assert states(s, "a", "b", "c") == {"a": SUCCEEDED, "b": STOPPED, "c": RUNNING}


def test_cancel_of_unknown_or_ended_dispatches_is_a_no_op() -> None:
    clock = FakeClock()
    s = site(clock)
    s.cancel("nope-0")
    s.submit(dispatch("a", 1, 1.0))
    clock.advance(1.0)
    s.cancel("a-0")
    assert s.status("a-0").state is SUCCEEDED


def test_unknown_names_are_unknown_with_a_reason() -> None:
    status = site(FakeClock()).status("nope-0")
    assert (status.state, status.reason) == (UNKNOWN, "NotFound")


def test_fail_forces_failed_with_the_message_and_frees_the_accelerators() -> None:
    clock = FakeClock()
    s = site(clock)
    s.submit(dispatch("a", 8, 1.0))
    s.submit(dispatch("b", 8, 1.0))
    s.fail("a-0", "NCCL timeout on rank 3")
    status = s.status("a-0")
    assert (status.state, status.message) == (FAILED, "NCCL timeout on rank 3")
    assert s.status("b-0").state is RUNNING
    with pytest.raises(AdapterError):
        s.fail("nope-0", "x")


# -- suspend and resume ----------------------------------------------------------------------


def test_suspend_frees_capacity_and_resume_keeps_the_remaining_work() -> None:
    clock = FakeClock()
    s = site(clock)
    s.submit(dispatch("a", 8, 2.0))
    clock.at(0.5)
    s.suspend("a-0")
    status = s.status("a-0")
    assert (status.state, status.reason) == (PENDING, "Suspended")
    assert "1.50 h" in status.message
    assert free(s) == 8
    s.submit(dispatch("b", 8, 1.0))
    assert s.status("b-0").state is RUNNING
    clock.at(0.75)
    s.resume("a-0")  # queued behind b, which holds every accelerator
    assert s.status("a-0").state is PENDING
    clock.at(1.5)
    assert states(s, "a", "b") == {"a": RUNNING, "b": SUCCEEDED}
    clock.at(2.999)
    assert s.status("a-0").state is RUNNING
    clock.at(3.0)  # 1.5 h left at t=0.5, restarted at t=1.5
    assert s.status("a-0").state is SUCCEEDED


def test_suspending_queued_work_takes_it_out_of_the_queue_until_resumed() -> None:
    clock = FakeClock()
    s = site(clock)
    s.submit(dispatch("a", 8, 1.0))
    s.submit(dispatch("b", 8, 1.0))
    s.submit(dispatch("c", 8, 1.0))
    s.suspend("b-0")
    s.resume("b-0")  # back in the queue, now behind c
    s.suspend("b-0")
    s.resume("b-0")
    clock.at(1.0)
    assert states(s, "b", "c") == {"b": PENDING, "c": RUNNING}
    clock.at(2.0)
    assert states(s, "b", "c") == {"b": RUNNING, "c": SUCCEEDED}
    clock.at(3.0)
    assert s.status("b-0").state is SUCCEEDED
    s.suspend("b-0")  # ended: a no-op
    assert s.status("b-0").state is SUCCEEDED
    with pytest.raises(AdapterError):
        s.suspend("nope-0")


# -- outages ---------------------------------------------------------------------------------


def test_an_unhealthy_site_refuses_calls_while_work_runs_on_underneath() -> None:
    clock = FakeClock()
    s = site(clock)
    s.submit(dispatch("a", 8, 1.0))
    s.set_health(False, "unreachable: link to Ningxia down")
    assert s.health().ok is False
    assert s.health().reason == "unreachable: link to Ningxia down"
    calls: list[Any] = [
        lambda: s.submit(dispatch("b", 1, 1.0)),
        lambda: s.status("a-0"),
        lambda: s.cancel("a-0"),
        lambda: s.inventory(),
        lambda: s.suspend("a-0"),
        lambda: s.logs("a-0"),
    ]
    for call in calls:
        with pytest.raises(SiteUnreachable, match="link to Ningxia down"):
            call()
    clock.advance(1.0)
    s.set_health(True)
    assert s.health().ok is True
    assert s.status("a-0").state is SUCCEEDED  # it kept running during the outage
    assert s.status("b-0").state is UNKNOWN  # the refused submit left nothing behind


# -- logs ------------------------------------------------------------------------------------


def test_logs_tell_queued_started_and_finished_with_virtual_times() -> None:
    clock = FakeClock()
    s = site(clock)
    s.submit(dispatch("a", 8, 1.0))
    s.submit(dispatch("b", 8, 0.5))
    clock.at(2.0)
    lines = list(s.logs("b-0"))
    assert len(lines) == 3
    assert lines[0].startswith("[t+0s] queued: 8 x H20-96G for job b")
    assert lines[1].startswith("[t+3600s] started")
    assert lines[2] == "[t+5400s] finished: SUCCEEDED\n"


def test_follow_yields_until_the_dispatch_ends() -> None:
    clock = FakeClock()
    s = site(clock)  # sleep advances the fake clock
    s.submit(dispatch("a", 8, 1.0))
    s.submit(dispatch("b", 8, 1.0))
    followed = "".join(s.logs("b-0", follow=True))
    assert "started" in followed
    assert followed.endswith("finished: SUCCEEDED\n")
    assert s.status("b-0").state is SUCCEEDED
    assert clock.now == pytest.approx(1002.0)


def test_logs_of_an_unknown_dispatch_are_unavailable() -> None:
    with pytest.raises(LogsUnavailable, match="nope-0"):
        site(FakeClock()).logs("nope-0")


# -- configuration and registration ----------------------------------------------------------

GOOD: dict[str, Any] = {
    "pools": [
        {"type": "H20-96G", "count": 16, "price_cny_per_hour": 9.5},
        {"type": "L40S-48G", "count": 8},
    ],
    "speedup": 3600,
}


def test_from_config_builds_the_pools() -> None:
    s = SimulatedSite.from_config("west-1", GOOD)
    assert s.name == "west-1"
    assert s.inventory() == (
        AcceleratorPool(H20, 16, 16, 9.5),
        AcceleratorPool(L40S, 8, 8, 0.0),
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "simulated.pools: required"),
        ({"pools": []}, "simulated.pools: must be a non-empty list"),
        ({"pools": ["H20"]}, "simulated.pools[0]: must be a mapping"),
        ({"pools": [{"count": 1}]}, "simulated.pools[0].type: required"),
        ({"pools": [{"type": "H20-96G"}]}, "simulated.pools[0].count: required"),
        ({"pools": [{"type": "H20-96G", "count": -1}]}, "simulated.pools[0].count: must be"),
        ({"pools": [{"type": "H20-96G", "count": 1.5}]}, "simulated.pools[0].count: must be"),
        (
            {"pools": [{"type": "H20-96G", "count": 1, "price_cny_per_hour": "x"}]},
            "simulated.pools[0].price_cny_per_hour: must be a number",
        ),
        (
            {"pools": [{"type": "H20-96G", "count": 1, "cards": 2}]},
            "simulated.pools[0].cards: unknown key",
        ),
        (
            {"pools": [{"type": "H20-96G", "count": 1}, {"type": "H20-96G", "count": 2}]},
            "simulated.pools[1].type: duplicate 'H20-96G'",
        ),
        ({**GOOD, "speedup": 0}, "simulated.speedup: must be > 0"),
        ({**GOOD, "speedup": "fast"}, "simulated.speedup: must be a number"),
        ({**GOOD, "speed": 2}, "simulated.speed: unknown key"),
    ],
)
def test_from_config_names_the_bad_key(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        SimulatedSite.from_config("s", config)
    assert str(raised.value).startswith(message)


def test_it_implements_the_protocols_and_is_registered() -> None:
    from importlib.metadata import entry_points

    s = site(FakeClock())
    assert isinstance(s, SiteAdapter)
    assert isinstance(s, SupportsLogs)
    assert isinstance(s, SupportsPreemption)
    found = {e.name: e for e in entry_points(group="isthmus.adapters")}
    factory = found["simulated"].load()
    built = factory("s", GOOD)
    assert isinstance(built, SimulatedSite)


# -- speed -----------------------------------------------------------------------------------


def test_calls_stay_cheap_with_many_dispatches_queued() -> None:
    """20,000 queued dispatches, then 20,000 more calls: no call rescans the others."""
    clock = FakeClock()
    s = site(clock, h20=8)
    for i in range(20_000):
        s.submit(dispatch(f"j{i}", 8, 1.0))
    began = time.perf_counter()
    for i in range(20_000):
        s.status(f"j{i}-0")
        s.inventory()
    spent = time.perf_counter() - began
    clock.advance(100.0)  # replays 100 completions and starts
    assert s.status("j99-0").state is SUCCEEDED
    assert s.status("j100-0").state is RUNNING
    assert spent < 2.0, f"40,000 calls took {spent:.2f} s"
