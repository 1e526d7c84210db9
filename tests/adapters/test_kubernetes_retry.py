"""Bounded exponential backoff and what counts as transient (no cluster: a fake clock)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import NewConnectionError, ProtocolError, ReadTimeoutError

from adapters.kubernetes.retry import Backoff, describe, is_transient, with_retries
from scheduler.core.adapter import SiteUnreachable


def _api(status: int, message: str = "", headers: dict[str, str] | None = None) -> ApiException:
    err = ApiException(status=status, reason="Reason")
    err.body = json.dumps({"kind": "Status", "message": message}) if message else None
    err.headers = headers or {}
    return err


@pytest.mark.parametrize(
    ("name", "err", "transient"),
    [
        ("connection refused", ConnectionRefusedError(111, "refused"), True),
        ("urllib3 new connection", NewConnectionError(None, "refused"), True),  # type: ignore[arg-type]
        ("connection reset", ProtocolError("aborted"), True),
        ("read timeout", ReadTimeoutError(None, "/", "timed out"), True),  # type: ignore[arg-type]
        ("no response", _api(0), True),
        ("throttled", _api(429), True),
        ("internal error", _api(500), True),
        ("unavailable", _api(503), True),
        ("gateway timeout", _api(504), True),
        ("not implemented", _api(501), False),
        ("unauthorized", _api(401), False),
        ("forbidden", _api(403), False),
        ("not found", _api(404), False),
        ("conflict", _api(409), False),
        ("invalid", _api(422), False),
        ("a bug", KeyError("x"), False),
    ],
)
def test_transient(name: str, err: BaseException, transient: bool) -> None:
    assert is_transient(err) is transient, name


def test_backoff_doubles_up_to_the_cap() -> None:
    backoff = Backoff(attempts=10, first_s=0.1, max_s=1.0)
    assert [backoff.delay(i) for i in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _failing(errors: list[BaseException], result: Any = "ok") -> Any:
    def call() -> Any:
        if errors:
            raise errors.pop(0)
        return result

    return call


def test_transient_errors_are_retried_until_an_answer() -> None:
    time = FakeTime()
    call = _failing([ConnectionRefusedError(), _api(503), _api(429)])
    result = with_retries(
        "op", call, Backoff(5, 0.1, 1.0, 10.0), sleep=time.sleep, clock=time.clock
    )
    assert result == "ok"
    assert time.slept == [0.1, 0.2, 0.4]


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    time = FakeTime()
    call = _failing(
        [_api(429, headers={"Retry-After": "0.7"}), _api(429, headers={"Retry-After": "60"})]
    )
    with_retries("op", call, Backoff(5, 0.1, 2.0, 10.0), sleep=time.sleep, clock=time.clock)
    assert time.slept == [0.7, 2.0]


def test_the_budget_ends_in_site_unreachable() -> None:
    time = FakeTime()
    call = _failing([ConnectionRefusedError(111, "refused")] * 10)
    with pytest.raises(SiteUnreachable, match=r"^create x: no usable answer after 4 tries") as err:
        with_retries(
            "create x", call, Backoff(4, 0.1, 1.0, 10.0), sleep=time.sleep, clock=time.clock
        )
    assert "unreachable: ConnectionRefusedError" in str(err.value)
    assert time.slept == [0.1, 0.2, 0.4]


def test_the_time_budget_stops_before_the_attempts_do() -> None:
    time = FakeTime()
    call = _failing([_api(503, "etcd leader changed")] * 10)
    with pytest.raises(SiteUnreachable, match=r"server error \(503\): etcd leader changed"):
        with_retries("op", call, Backoff(10, 1.0, 1.0, 2.5), sleep=time.sleep, clock=time.clock)
    assert time.slept == [1.0, 1.0]  # a third wait would end past 2.5 s


def test_answers_are_raised_at_once() -> None:
    time = FakeTime()
    with pytest.raises(ApiException) as err:
        with_retries("op", _failing([_api(409)]), Backoff(), sleep=time.sleep, clock=time.clock)
    assert err.value.status == 409 and time.slept == []


@pytest.mark.parametrize(
    ("err", "text"),
    [
        (_api(401, "Unauthorized"), "unauthorized (401): Unauthorized"),
        (
            _api(403, 'rayjobs is forbidden: User "x"'),
            'forbidden (403): rayjobs is forbidden: User "x"',
        ),
        (_api(500), "server error (500): Reason"),
        (
            ConnectionRefusedError(111, "Connection refused"),
            "unreachable: ConnectionRefusedError: [Errno 111] Connection refused",
        ),
    ],
)
def test_describe(err: BaseException, text: str) -> None:
    assert describe(err) == text
