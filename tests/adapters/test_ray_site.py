"""The ``ray`` adapter against a real local Ray head (tests/ray_head.py): no mocks.

One head serves the whole session; every test uses job names of its own and leaves no job
running, so the inventory checks see only their own work.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

pytest.importorskip("ray.job_submission", reason="ray is not installed: pip install 'ray[default]'")

from ray.job_submission import JobSubmissionClient

from adapters.ray import RaySite
from adapters.ray.config import parse_config
from adapters.ray.retry import Backoff
from scheduler.core.adapter import (
    AdapterError,
    Dispatch,
    DispatchConflict,
    DispatchState,
    DispatchStatus,
    LogsUnavailable,
    SiteAdapter,
    SiteUnreachable,
    SupportsLogs,
    SupportsPreemption,
)
from scheduler.core.ids import AcceleratorType, JobId, SiteId, TenantId
from scheduler.core.model import AcceleratorPool, Gang, Job
from scheduler.core.plan import CostBreakdown, Placement
from scheduler.demo.ray_head import RayHead

RTX = AcceleratorType("RTX4090-48G")
L40S = AcceleratorType("L40S-48G")
SLEEP_60 = 'python -c "import time; time.sleep(60)"'
JOB_TIMEOUT_S = 30.0
TERMINAL = (DispatchState.SUCCEEDED, DispatchState.FAILED, DispatchState.STOPPED)


def config(address: str) -> dict[str, Any]:
    return {
        "address": address,
        "accelerators": {"RTX4090-48G": None, "L40S-48G": "gpu_l40s"},
        "prices": {"RTX4090-48G": 2.1},
    }


@pytest.fixture(scope="module")
def site(ray_head: RayHead) -> RaySite:
    return RaySite.from_config("ray-east", config(ray_head.dashboard_url))


@pytest.fixture(scope="module")
def client(ray_head: RayHead) -> JobSubmissionClient:
    """Ray's own client, to check what the adapter did from outside it."""
    return JobSubmissionClient(ray_head.dashboard_url)


def dispatch(
    job: str,
    entrypoint: str,
    accelerators: int = 1,
    accelerator: AcceleratorType = RTX,
    attempt: int = 0,
) -> Dispatch:
    job_id = JobId(job)
    the_job = Job(
        job_id,
        TenantId("acme"),
        Gang(1, accelerators, frozenset({accelerator})),
        {accelerator: 0.01},
        submitted_at=0.0,
    )
    placement = Placement(
        job_id, SiteId("ray-east"), accelerator, accelerators, 0.01, CostBreakdown()
    )
    return Dispatch.for_attempt(the_job, placement, attempt, entrypoint=entrypoint)


def wait_for(site: RaySite, name: str, *states: DispatchState) -> DispatchStatus:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        status = site.status(name)
        if status.state in states:
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} still {status} after {JOB_TIMEOUT_S} s")
        time.sleep(0.2)


def jobs_named(client: JobSubmissionClient, name: str) -> int:
    return sum(1 for job in client.list_jobs() if job.submission_id == name)


def free(site: RaySite, kind: AcceleratorType = RTX) -> int:
    return next(p.available for p in site.inventory() if p.type == kind)


@pytest.fixture
def cleanup(site: RaySite) -> Iterator[list[str]]:
    """Names to cancel after the test, pass or fail, so no job outlives its test."""
    names: list[str] = []
    yield names
    for name in names:
        site.cancel(name)
    for name in names:
        wait_for(site, name, *TERMINAL)


# -- inventory -------------------------------------------------------------------------------


def test_inventory_counts_the_clusters_accelerators(site: RaySite, ray_head: RayHead) -> None:
    assert site.inventory() == (
        AcceleratorPool(RTX, 8, 8, 2.1),
        AcceleratorPool(L40S, 4, 4, 0.0),
    )
    # Without ``accelerators``: every catalog type counted by a resource of its own name.
    by_catalog = RaySite.from_config("r", {"address": ray_head.dashboard_url})
    assert by_catalog.inventory() == (AcceleratorPool(RTX, 8, 8, 0.0),)


# -- a job's life ----------------------------------------------------------------------------


def test_a_job_runs_for_real_and_its_log_has_its_output(
    site: RaySite, client: JobSubmissionClient
) -> None:
    d = dispatch(
        "hello",
        "python -c \"import time; print('first', flush=True); time.sleep(1); print('second')\"",
        accelerators=2,
    )
    site.submit(d)
    assert site.status(d.name).state in {DispatchState.PENDING, DispatchState.RUNNING}
    followed = "".join(site.logs(d.name, follow=True))  # returns once the job has ended
    assert "first" in followed and "second" in followed
    status = wait_for(site, d.name, *TERMINAL)
    assert status == DispatchStatus(DispatchState.SUCCEEDED, "SUCCEEDED", status.message)
    assert status.message  # Ray's own words ("Job finished successfully.")
    log = "".join(site.logs(d.name))
    assert log.index("first") < log.index("second")
    info = client.get_job_info(d.name)
    assert info.metadata == {
        "isthmus.io/job": "hello",
        "isthmus.io/tenant": "acme",
        "isthmus.io/attempt": "0",
        "isthmus.io/accelerator": "RTX4090-48G",
        "isthmus.io/accelerators": "2",
    }
    assert free(site) == 8  # an ended job holds nothing


def test_a_failing_job_is_failed_with_rays_message(site: RaySite) -> None:
    d = dispatch("crash", 'python -c "import sys; sys.exit(3)"')
    site.submit(d)
    status = wait_for(site, d.name, *TERMINAL)
    assert status.state is DispatchState.FAILED
    assert "3" in status.message  # Ray names the exit code


# -- idempotency and conflicts ---------------------------------------------------------------


def test_a_second_submit_creates_no_second_job(
    site: RaySite, client: JobSubmissionClient
) -> None:
    d = dispatch("twice", "echo once")
    with ThreadPoolExecutor(max_workers=2) as pool:  # two replicas racing on one dispatch
        for result in [pool.submit(site.submit, d) for _ in range(2)]:
            result.result()
    site.submit(d)
    assert jobs_named(client, d.name) == 1
    assert wait_for(site, d.name, *TERMINAL).state is DispatchState.SUCCEEDED
    site.submit(d)  # a retry after the job ended: still the same job
    assert jobs_named(client, d.name) == 1
    assert site.status(d.name).state is DispatchState.SUCCEEDED


def test_the_same_name_for_another_job_is_a_conflict(
    site: RaySite, client: JobSubmissionClient
) -> None:
    d = dispatch("owner", "echo mine")
    site.submit(d)
    other = dispatch("intruder", "echo theirs")
    impostor = Dispatch(d.name, other.job, other.placement, other.tenant, 0, other.entrypoint)
    with pytest.raises(DispatchConflict, match="'owner'"):
        site.submit(impostor)
    assert jobs_named(client, d.name) == 1
    assert wait_for(site, d.name, *TERMINAL).state is DispatchState.SUCCEEDED


class RacingSite(RaySite):
    """A site whose first look finds no job, as when another replica submits just after it."""

    looks_blind = 1

    def _info(self, dispatch_name: str) -> Any:
        if self.looks_blind:
            self.looks_blind -= 1
            return None
        return super()._info(dispatch_name)


def test_a_submit_that_loses_the_race_adopts_its_own_job_and_refuses_another(
    site: RaySite, client: JobSubmissionClient, ray_head: RayHead
) -> None:
    d = dispatch("race", "echo race")
    site.submit(d)
    late = RacingSite.from_config("ray-east", config(ray_head.dashboard_url))
    began = time.monotonic()
    late.submit(d)  # Ray refuses the duplicate ("already exists"): same job, so a no-op
    assert time.monotonic() - began < 1.0, "the refusal is an answer, not retried"
    assert jobs_named(client, d.name) == 1
    other = dispatch("race-intruder", "echo theirs")
    impostor = Dispatch(d.name, other.job, other.placement, other.tenant, 0, other.entrypoint)
    with pytest.raises(DispatchConflict, match="'race'"):
        RacingSite.from_config("ray-east", config(ray_head.dashboard_url)).submit(impostor)
    assert wait_for(site, d.name, *TERMINAL).state is DispatchState.SUCCEEDED


# -- holding, queueing, cancelling -----------------------------------------------------------


def test_held_accelerators_leave_the_inventory_until_cancelled(
    site: RaySite, cleanup: list[str]
) -> None:
    long = dispatch("long", SLEEP_60, accelerators=6)
    queued = dispatch("queued", SLEEP_60, accelerators=4)
    cleanup.extend([queued.name, long.name])
    site.submit(long)
    running = wait_for(site, long.name, DispatchState.RUNNING, *TERMINAL)
    assert running.state is DispatchState.RUNNING
    assert free(site) == 2
    assert free(site, L40S) == 4

    site.submit(queued)  # 4 > 2 free: Ray itself keeps it waiting
    time.sleep(1.0)
    status = site.status(queued.name)
    assert status.state is DispatchState.PENDING, status
    assert "waiting for resources" in status.message  # Ray's own words
    assert free(site) == 0  # its reservation counts while it waits
    with pytest.raises(LogsUnavailable, match="has not started"):
        site.logs(queued.name)

    # Following a running job's log and leaving early ends the stream's thread.
    stream = site.logs(long.name, follow=True)
    assert "Running entrypoint" in next(stream)  # the supervisor's line, before the sleep
    stream.close()  # type: ignore[attr-defined]
    assert not [t for t in threading.enumerate() if t.name == f"logs-{long.name}"]

    # Ray cannot stop a job whose supervisor has not started: the stop waits for it, so the
    # job stays PENDING (and keeps its reservation) until the accelerators free up.
    site.cancel(queued.name)
    time.sleep(0.5)
    assert site.status(queued.name).state is DispatchState.PENDING
    assert free(site) == 0

    began = time.monotonic()
    site.cancel(long.name)
    assert wait_for(site, long.name, *TERMINAL).state is DispatchState.STOPPED
    assert time.monotonic() - began < 15, "stopped long before its 60 s"
    # Now the queued job gets its accelerators, and the stop waiting for it ends it at once.
    assert wait_for(site, queued.name, *TERMINAL).state is DispatchState.STOPPED
    assert free(site) == 8
    site.cancel(long.name)  # already stopped: a no-op
    assert site.status(long.name).state is DispatchState.STOPPED


# -- names Ray does not know -----------------------------------------------------------------


def test_unknown_names(site: RaySite) -> None:
    status = site.status("nobody-0")
    assert (status.state, status.reason) == (DispatchState.UNKNOWN, "NotFound")
    site.cancel("nobody-0")  # a no-op
    with pytest.raises(LogsUnavailable, match="nobody-0"):
        site.logs("nobody-0")
    with pytest.raises(LogsUnavailable, match="nobody-0"):
        site.logs("nobody-0", follow=True)


def test_a_dispatch_for_a_type_the_site_does_not_map_is_refused(site: RaySite) -> None:
    with pytest.raises(AdapterError, match="H20-96G"):
        site.submit(dispatch("h20", "echo", accelerator=AcceleratorType("H20-96G")))


# -- health and unreachable sites ------------------------------------------------------------


def _dead_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once closed


def test_health(site: RaySite) -> None:
    assert site.health().ok is True
    began = time.monotonic()
    dead = RaySite.from_config("ray-gone", {"address": _dead_address()}).health()
    assert dead.ok is False
    assert "ray-gone" in dead.reason and "unreachable" in dead.reason
    assert time.monotonic() - began < 5


def test_calls_to_an_unreachable_site_fail_after_bounded_retries() -> None:
    fast = Backoff(attempts=3, first_s=0.05, max_s=0.1)
    gone = RaySite("ray-gone", parse_config({"address": _dead_address()}), backoff=fast)
    began = time.monotonic()
    with pytest.raises(SiteUnreachable, match="after 3 tries"):
        gone.status("x-0")
    assert time.monotonic() - began >= 0.15  # it waited 0.05 + 0.1 between the tries
    with pytest.raises(SiteUnreachable):
        gone.submit(dispatch("x", "echo"))
    with pytest.raises(SiteUnreachable):
        gone.inventory()


def test_a_ray_address_in_the_environment_is_refused_not_followed(
    ray_head: RayHead, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "http://10.255.0.1:8265")
    health = RaySite.from_config("r", {"address": ray_head.dashboard_url}).health()
    assert health.ok is False
    assert "RAY_ADDRESS=http://10.255.0.1:8265" in health.reason


# -- configuration and registration ----------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({}, "ray.address: required"),
        ({"address": 8265}, "ray.address: must be a non-empty string"),
        ({"address": "10.0.0.1:6379"}, "ray.address: must be the dashboard URL"),
        ({"address": "http://h:8265", "accelerators": {}}, "ray.accelerators: must be"),
        (
            {"address": "http://h:8265", "accelerators": {"RTX4090-48G": 4}},
            "ray.accelerators.RTX4090-48G: must be a non-empty string",
        ),
        (
            {"address": "http://h:8265", "accelerators": ["RTX4090-48G"], "prices": {"H20": 1}},
            "ray.prices.H20: not one of ray.accelerators",
        ),
        (
            {"address": "http://h:8265", "prices": {"RTX4090-48G": -1}},
            "ray.prices.RTX4090-48G: must be >= 0",
        ),
        (
            {"address": "http://h:8265", "prices": {"RTX4090-48G": "cheap"}},
            "ray.prices.RTX4090-48G: must be a number",
        ),
        ({"address": "http://h:8265", "runtime_env": "conda"}, "ray.runtime_env: must be"),
        ({"address": "http://h:8265", "timeout_s": 0}, "ray.timeout_s: must be a number > 0"),
        ({"address": "http://h:8265", "adress": "x"}, "ray.adress: unknown key"),
    ],
)
def test_from_config_names_the_bad_key(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        RaySite.from_config("r", section)
    assert str(raised.value).startswith(message)


def test_from_config_reads_the_keys() -> None:
    parsed = parse_config(
        {
            "address": "http://10.0.3.7:8265/",
            "accelerators": ["RTX4090-48G"],
            "runtime_env": {"env_vars": {"A": "1"}},
            "timeout_s": 4,
        }
    )
    assert parsed.address == "http://10.0.3.7:8265"
    assert dict(parsed.accelerators) == {RTX: "RTX4090-48G"}
    assert parsed.runtime_env == {"env_vars": {"A": "1"}}
    assert parsed.timeout_s == 4.0


def test_it_implements_the_protocols_and_is_registered(ray_head: RayHead) -> None:
    from importlib.metadata import entry_points

    found = {e.name: e for e in entry_points(group="isthmus.adapters")}
    built = found["ray"].load()("r", {"address": ray_head.dashboard_url})
    assert isinstance(built, RaySite)
    assert isinstance(built, SiteAdapter)
    assert isinstance(built, SupportsLogs)
    assert not isinstance(built, SupportsPreemption)


# -- the async-to-sync bridge under the log stream -------------------------------------------


def test_iterate_yields_raises_and_cleans_up_on_early_close() -> None:
    import asyncio

    from adapters.ray.follow import iterate

    closed: list[str] = []

    async def numbers(fail_at: int | None = None) -> AsyncIterator[int]:
        try:
            for i in range(5):
                if i == fail_at:
                    raise RuntimeError("stream broke")
                await asyncio.sleep(0)
                yield i
        finally:
            closed.append("closed")

    assert list(iterate(numbers)) == [0, 1, 2, 3, 4]
    with pytest.raises(RuntimeError, match="stream broke"):
        list(iterate(lambda: numbers(fail_at=2)))
    early = iterate(numbers, name="early")
    assert next(early) == 0
    early.close()  # type: ignore[attr-defined]
    assert closed == ["closed"] * 3
    assert not [t for t in threading.enumerate() if t.name == "early"]

    async def inside_a_running_loop() -> list[int]:
        return list(iterate(numbers))  # the caller's own loop is running here

    assert asyncio.run(inside_a_running_loop()) == [0, 1, 2, 3, 4]
