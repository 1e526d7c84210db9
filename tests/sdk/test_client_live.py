"""The SDK against a real server: the service with its loop, the API under uvicorn."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest

from scheduler.sdk import (
    AsyncClient,
    BadRequest,
    Client,
    Conflict,
    Forbidden,
    Job,
    JobState,
    NotFound,
    Timeout,
    TransportError,
    Unauthorized,
)
from tests.service.live import LiveService, closed_port_url


def small(**over: Any) -> dict[str, Any]:
    """A job that fits anywhere with H20s and takes one (simulated) hour: 0.1 s here."""
    args: dict[str, Any] = {
        "name": f"t-{uuid.uuid4().hex[:8]}",
        "entrypoint": "python -c 'print(1)'",
        "accelerators_per_worker": 8,
        "allowed_types": ["H20-96G"],
        "runtime_h": 1.0,
    }
    args.update(over)
    return args


def running(client: Client, job: Job, timeout_s: float = 10.0) -> Job:
    give_up = time.monotonic() + timeout_s
    while (job := client.get(job.id)).state is not JobState.RUNNING:
        assert not job.state.is_terminal(), job
        assert time.monotonic() < give_up, job
        time.sleep(0.05)
    return job


def test_submit_then_wait_until_succeeded(acme: Client, capsys: pytest.CaptureFixture[str],
                                          ) -> None:
    job = acme.submit(**small(labels={"team": "vision"}, priority=2))
    assert (job.state, job.tenant, job.accelerators) == (JobState.PENDING, "acme", 8)
    assert job.spec.labels == {"team": "vision"} and job.spec.priority == 2
    done = acme.wait(job.id, timeout=20, poll_s=0.05, progress=True)
    assert done.state is JobState.SUCCEEDED
    assert done.site is not None and done.accelerator == "H20-96G"
    assert done.finished_at is not None and done.finished_at >= done.submitted_at
    assert job.id in capsys.readouterr().err  # the progress line
    assert acme.get(job.id) == done
    kinds = [e.kind for e in acme.events(job.id)]
    assert kinds[0] == "submitted" and kinds[-1] == "succeeded"
    lines = list(acme.logs(job.id))
    assert lines and "SUCCEEDED" in lines[-1]


def test_the_same_idempotency_key_returns_the_same_job(acme: Client) -> None:
    key = f"req-{uuid.uuid4()}"
    spec = small()
    first = acme.submit(**spec, idempotency_key=key)
    again = acme.submit(**spec, idempotency_key=key)
    assert again.id == first.id
    with pytest.raises(Conflict) as err:
        acme.submit(**{**spec, "name": "other"}, idempotency_key=key)
    assert err.value.field == "Idempotency-Key" and key in err.value.message


class LoseFirstResponse(httpx.BaseTransport):
    """Sends every request to the server, but for the first one the connection 'breaks'
    after the server has acted: the client sees a ReadError, as after a network cut."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.sent = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        response = self.inner.handle_request(request)
        if self.sent == 1:
            response.read()
            response.close()
            raise httpx.ReadError("connection reset by peer", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


def test_a_submission_retried_after_a_lost_response_creates_one_job(live: LiveService) -> None:
    transport = LoseFirstResponse()
    spec = small()
    with Client(live.url, live.acme_token, backoff_s=0.01, transport=transport) as client:
        job = client.submit(**spec)
        assert transport.sent == 2  # the server saw the submission twice...
        same = [j for j in client.list() if j.name == spec["name"]]
        assert [j.id for j in same] == [job.id]  # ...and created one job


def test_list_follows_pages(acme: Client) -> None:
    for _ in range(5):
        acme.submit(**small())
    every = [j.id for j in acme.list(limit=1000)]
    paged = [j.id for j in acme.list(limit=2)]
    assert len(every) >= 5 and paged == every
    assert len(set(paged)) == len(paged)
    done = list(acme.list(states=[JobState.SUCCEEDED, "FAILED"], limit=2))
    assert all(j.state in {JobState.SUCCEEDED, JobState.FAILED} for j in done)


def test_list_by_site(acme: Client) -> None:
    job = acme.wait(acme.submit(**small()).id, poll_s=0.05, timeout=20)
    assert job.site is not None
    at_site = {j.id for j in acme.list(site=job.site)}
    assert job.id in at_site
    assert all(j.site == job.site for j in acme.list(site=job.site))


def test_cancel_a_running_job(acme: Client) -> None:
    job = running(acme, acme.submit(**small(runtime_h=2000.0)))  # ~200 s here
    asked = acme.cancel(job.id)
    assert asked.cancel_requested
    assert acme.wait(job.id, timeout=20, poll_s=0.05).state is JobState.CANCELLED


def test_wait_times_out_with_the_last_view(acme: Client) -> None:
    job = acme.submit(**small(runtime_h=2000.0))
    with pytest.raises(Timeout) as err:
        acme.wait(job.id, timeout=0.3, poll_s=0.05)
    assert isinstance(err.value.job, Job) and not err.value.job.state.is_terminal()
    acme.cancel(job.id)


def test_follow_the_log_of_a_running_job_to_its_end(acme: Client) -> None:
    job = running(acme, acme.submit(**small(runtime_h=10.0)))  # ~1 s here
    lines = list(acme.logs(job.id, follow=True))
    assert any("started" in line for line in lines)
    assert "finished: SUCCEEDED" in lines[-1]
    assert acme.get(job.id).state in {JobState.RUNNING, JobState.SUCCEEDED}


def test_explain_why_here_and_why_waiting(acme: Client) -> None:
    done = acme.wait(acme.submit(**small()).id, poll_s=0.05, timeout=20)
    why = acme.explain(done.id)
    assert why.job == done.id and why.site == done.site
    assert why.summary and done.site in why.summary
    # More H20s than the whole country has: it waits, and says why.
    huge = acme.submit(**small(workers=512))
    time.sleep(0.5)
    waiting = acme.explain(huge.id)
    assert waiting.state is JobState.PENDING and waiting.site is None
    assert waiting.summary
    with pytest.raises(Conflict, match="not been dispatched"):
        list(acme.logs(huge.id))
    acme.cancel(huge.id)
    assert acme.wait(huge.id, timeout=10, poll_s=0.05).state is JobState.CANCELLED


@pytest.mark.parametrize(
    ("over", "field", "words"),
    [
        ({"workers": 0}, "gang.workers", "greater than or equal to 1"),
        ({"allowed_types": ["H20-96G", "TPU-v9"]}, "gang.allowed_types[1]", "TPU-v9"),
        ({"datasets": ["nope"]}, "datasets[0]", "unknown dataset"),
        ({"name": "has space"}, "name", "pattern"),
        ({"runtime_h": -1.0}, None, "runtime_h"),
    ],
)
def test_invalid_submissions_are_bad_requests_naming_the_field(
    acme: Client, over: dict[str, Any], field: str | None, words: str,
) -> None:
    with pytest.raises(BadRequest) as err:
        acme.submit(**small(**over))
    assert err.value.status == 422
    if field is not None:
        assert err.value.field == field
    assert words in err.value.message


def test_auth_errors(live: LiveService, acme: Client) -> None:
    job = acme.submit(**small())
    with Client(live.url, "not-a-token-at-all") as stranger, pytest.raises(Unauthorized):
        stranger.get(job.id)
    with Client(live.url, live.beta_token) as beta:
        with pytest.raises(NotFound) as err:
            beta.get(job.id)
        assert err.value.field == "job_id"
        with pytest.raises(NotFound):
            beta.cancel(job.id)
        assert job.id not in {j.id for j in beta.list()}
        with pytest.raises(Forbidden):
            beta.dry_run_policy("name: x\n")
        with pytest.raises(Forbidden):
            beta.submit(**small(), tenant="acme")
    with Client(live.url, live.operator_token) as operator:
        assert operator.get(job.id).id == job.id
        with pytest.raises(BadRequest) as missing:
            operator.submit(**small())
        assert missing.value.field == "tenant"
        assert operator.submit(**small(), tenant="beta").tenant == "beta"


def test_sites_plan_and_policy(live: LiveService, acme: Client) -> None:
    sites = acme.sites()
    assert {"zhongwei", "zhangjiakou"} <= {s.name for s in sites}
    assert all(s.up and s.accelerators >= s.available >= 0 for s in sites)
    assert all(s.pools for s in sites)
    assert "jobs_by_state" in acme.plan()
    text = acme.policy()["policy"]
    with Client(live.url, live.operator_token) as operator:
        change = operator.dry_run_policy(text)
        assert {"moved", "newly_placed", "newly_waiting", "current", "proposed"} <= set(change)
        with pytest.raises(BadRequest) as err:
            operator.dry_run_policy("objective: {energy: -1}\n")
        assert err.value.field == "policy" and err.value.problems
        assert operator.update_policy(text)["policy"] == text
    assert acme.health()


def test_an_unreachable_server_is_a_transport_error() -> None:
    url = closed_port_url()
    started = time.monotonic()
    with Client(url, "t" * 16, retries=1, backoff_s=0.01) as client, \
            pytest.raises(TransportError, match=r"cannot reach Isthmus at .*\(2 attempts\)"):
        client.get("j1")
    assert time.monotonic() - started < 5


def test_the_async_client(live: LiveService) -> None:
    async def main() -> tuple[Job, Job, list[str], list[str]]:
        async with AsyncClient(live.url, live.acme_token) as client:
            job = await client.submit(**small())
            got = await client.get(job.id)
            assert got.id == job.id
            done = await client.wait(job.id, timeout=20, poll_s=0.05)
            ids = [j.id async for j in client.list(limit=2)]
            lines = [line async for line in client.logs(job.id)]
            assert (await client.explain(job.id)).site == done.site
            assert await client.sites()
            with pytest.raises(NotFound):
                await client.get("j-none")
            return job, done, ids, lines

    job, done, ids, lines = asyncio.run(main())
    assert done.state is JobState.SUCCEEDED and job.id in ids
    assert "SUCCEEDED" in lines[-1]
