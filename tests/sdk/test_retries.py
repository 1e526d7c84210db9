"""Retries and error mapping, without a server: an ``httpx.MockTransport`` answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from scheduler.sdk import (
    ApiError,
    AsyncClient,
    BadRequest,
    Client,
    Conflict,
    NotFound,
    TransportError,
)
from tests.sdk.test_values import JOB

Handler = Callable[[httpx.Request], httpx.Response]


class Script:
    """Answers requests from a list, one entry per attempt: a status (with an error body),
    an exception to raise, or a JSON body for 200."""

    def __init__(self, *steps: Any) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        if isinstance(step, int):
            return httpx.Response(step, json={"message": f"status {step}", "field": "x.y",
                                              "problems": [{"field": "x.y", "message": "m"}]})
        return httpx.Response(200, json=step)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr("scheduler.sdk.client.time.sleep", slept.append)
    return slept


def client(script: Handler, retries: int = 3) -> Client:
    return Client("http://isthmus.test", "token-0123456789abcdef", retries=retries,
                  transport=httpx.MockTransport(script))


def test_502_503_504_are_retried_with_exponential_backoff(sleeps: list[float]) -> None:
    script = Script(503, 502, 504, JOB)
    job = client(script).get(JOB["id"])
    assert job.id == JOB["id"]
    assert len(script.requests) == 4
    assert sleeps == [0.2, 0.4, 0.8]


def test_connection_errors_are_retried_then_a_transport_error(sleeps: list[float]) -> None:
    script = Script(*[httpx.ConnectError("Connection refused")] * 4)
    with pytest.raises(TransportError, match=r"isthmus.test: Connection refused \(4 attempts\)"):
        client(script).get("j1")
    assert sleeps == [0.2, 0.4, 0.8]


def test_a_broken_connection_then_success(sleeps: list[float]) -> None:
    script = Script(httpx.ReadError("reset"), httpx.RemoteProtocolError("eof"), JOB)
    assert client(script).get("j1").id == JOB["id"]
    assert sleeps == [0.2, 0.4]


@pytest.mark.parametrize(
    ("status", "kind"), [(400, BadRequest), (404, NotFound), (409, Conflict), (422, BadRequest)]
)
def test_a_4xx_is_never_retried(sleeps: list[float], status: int, kind: type[ApiError]) -> None:
    script = Script(status, JOB)
    with pytest.raises(kind) as err:
        client(script).get("j1")
    assert (err.value.status, err.value.field, err.value.message) == (status, "x.y",
                                                                     f"status {status}")
    assert err.value.problems == ({"field": "x.y", "message": "m"},)
    assert len(script.requests) == 1 and sleeps == []


def test_a_5xx_that_outlives_the_retries_is_an_api_error(sleeps: list[float]) -> None:
    script = Script(503, 503)
    with pytest.raises(ApiError) as err:
        client(script, retries=1).plan()
    assert type(err.value) is ApiError and err.value.status == 503


def test_an_error_without_a_json_body_keeps_the_text() -> None:
    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(500, text="Internal Server Error\ntrace...")

    with pytest.raises(ApiError, match=r"500: Internal Server Error$"):
        client(handler).sites()


def test_every_attempt_of_a_submission_carries_the_same_idempotency_key(
    sleeps: list[float],
) -> None:
    script = Script(httpx.ReadError("reset after send"), 503, JOB)
    c = client(script)
    c.submit(name="t", entrypoint="true", accelerators_per_worker=1,
             allowed_types=["L40S-48G"], runtime_h=1.0)
    keys = {r.headers["idempotency-key"] for r in script.requests}
    assert len(script.requests) == 3 and len(keys) == 1
    body = json.loads(script.requests[0].content)
    assert body["gang"] == {"workers": 1, "accelerators_per_worker": 1,
                            "allowed_types": ["L40S-48G"], "min_memory_gb": 0.0}
    assert "deadline" not in body and "user_location" not in body
    assert script.requests[0].headers["authorization"] == "Bearer token-0123456789abcdef"

    again = Script(JOB)
    client(again).submit(name="t", entrypoint="true", accelerators_per_worker=1,
                         allowed_types=["L40S-48G"], runtime_h=1.0)
    assert again.requests[0].headers["idempotency-key"] not in keys  # a fresh key per call


def test_deadlines_are_sent_with_their_offset() -> None:
    script = Script(JOB, JOB)
    c = client(script)
    args: dict[str, Any] = {"name": "t", "entrypoint": "true", "accelerators_per_worker": 1,
                            "allowed_types": "L40S-48G", "runtime_h": {"L40S-48G": 2.0}}
    aware = datetime(2030, 1, 1, 8, tzinfo=timezone(timedelta(hours=8)))
    c.submit(**args, deadline=aware)
    naive = datetime(2030, 1, 1, 8)  # local time, as datetime.now() gives
    c.submit(**args, deadline=naive, tenant="beta", datasets=iter(["scans"]))
    first, second = (json.loads(r.content) for r in script.requests)
    assert datetime.fromisoformat(first["deadline"]) == aware
    assert datetime.fromisoformat(second["deadline"]) == naive.astimezone()
    assert first["gang"]["allowed_types"] == ["L40S-48G"]  # a lone type, not its letters
    assert first["runtime_h"] == {"L40S-48G": 2.0} and second["datasets"] == ["scans"]
    assert script.requests[1].url.params["tenant"] == "beta"


def test_list_follows_the_pages() -> None:
    pages = {None: ["a", "b"], "b": ["c", "d"], "d": ["e"]}

    def handler(request: httpx.Request) -> httpx.Response:
        after = request.url.params.get("after")
        ids = pages[after]
        nxt = ids[-1] if ids[-1] in pages else None
        assert request.url.params.get_list("state") == ["PENDING", "RUNNING"]
        return httpx.Response(200, json={"items": [{**JOB, "id": i} for i in ids], "next": nxt})

    got = [j.id for j in client(handler).list(states=["PENDING", "RUNNING"], limit=2)]
    assert got == ["a", "b", "c", "d", "e"]


def test_the_async_client_retries_too(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    monkeypatch.setattr("scheduler.sdk.client.asyncio.sleep", sleep)
    script = Script(httpx.ConnectError("refused"), 503, JOB)

    async def main() -> str:
        async with AsyncClient("http://isthmus.test", "t" * 16,
                               transport=httpx.MockTransport(script)) as c:
            return (await c.get("j1")).id

    assert asyncio.run(main()) == JOB["id"]
    assert slept == [0.2, 0.4]
