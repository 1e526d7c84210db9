"""What goes over the wire, with no I/O: request descriptions, error bodies, the retry rule.

``Client`` and ``AsyncClient`` differ only in how they send a ``Call`` and how they sleep;
everything they agree on lives here, once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from scheduler.sdk.errors import ApiError, IsthmusError, TransportError, error_for
from scheduler.sdk.values import JobState

RETRY_STATUSES = frozenset({502, 503, 504})
MAX_BACKOFF_S = 10.0
USER_AGENT = "isthmus-sdk/0.1.0"


@dataclass(frozen=True, slots=True)
class Call:
    """One API request: method, path, query parameters, JSON body, extra headers."""

    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


def backoff_s(base_s: float, attempt: int) -> float:
    """Seconds to sleep after failed attempt ``attempt`` (0-based): base, 2x base, 4x base..."""
    return float(min(base_s * (2 ** attempt), MAX_BACKOFF_S))


def is_retryable(err: httpx.HTTPError) -> bool:
    """A connection that failed or broke (the request may or may not have arrived): worth
    another try. Every request the SDK sends is safe to repeat (submissions carry an
    idempotency key)."""
    return isinstance(err, httpx.NetworkError | httpx.TimeoutException
                      | httpx.RemoteProtocolError)


def unreachable(base_url: str, err: httpx.HTTPError, attempts: int) -> TransportError:
    what = str(err) or type(err).__name__
    tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
    return TransportError(f"cannot reach Isthmus at {base_url}: {what} ({tries})")


def error_of(response: httpx.Response) -> ApiError:
    """The exception for an error response (its body must have been read)."""
    message, where = "", None
    problems: tuple[dict[str, str], ...] = ()
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = str(body.get("message") or body.get("detail") or "")
        raw_field = body.get("field")
        where = str(raw_field) if raw_field else None
        raw = body.get("problems") or ()
        if isinstance(raw, list):
            problems = tuple({str(k): str(v) for k, v in p.items()}
                             for p in raw if isinstance(p, dict))
    if not message:
        text = response.text.strip().splitlines()
        message = text[0][:300] if text else response.reason_phrase or "error"
    return error_for(response.status_code, message, where, problems)


def json_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as err:
        raise IsthmusError(f"{response.request.method} {response.request.url.path}: the "
                           f"server answered {response.status_code} with no JSON") from err


def _ref(job_id: str) -> str:
    if not job_id or "/" in job_id or job_id in {".", ".."}:
        raise ValueError(f"not a job id: {job_id!r}")
    return job_id


# ---------------------------------------------------------------------- requests


def submit(
    *,
    name: str,
    entrypoint: str,
    accelerators_per_worker: int,
    allowed_types: Sequence[str],
    runtime_h: float | Mapping[str, float],
    workers: int,
    min_memory_gb: float,
    priority: int,
    deadline: datetime | None,
    datasets: Iterable[str],
    user_location: str | None,
    max_latency_ms: float | None,
    preemptible: bool,
    checkpointable: bool,
    home_region: str | None,
    max_runtime_h: float | None,
    runtime_env: Mapping[str, Any] | None,
    labels: Mapping[str, str] | None,
    idempotency_key: str | None,
    tenant: str | None,
) -> Call:
    if isinstance(allowed_types, str):
        allowed_types = [allowed_types]  # a lone type, not its characters
    body: dict[str, Any] = {
        "name": name,
        "entrypoint": entrypoint,
        "gang": {
            "workers": workers,
            "accelerators_per_worker": accelerators_per_worker,
            "allowed_types": list(allowed_types),
            "min_memory_gb": min_memory_gb,
        },
        "runtime_h": dict(runtime_h) if isinstance(runtime_h, Mapping) else runtime_h,
        "priority": priority,
        "datasets": list(datasets),
        "preemptible": preemptible,
        "checkpointable": checkpointable,
        "runtime_env": dict(runtime_env or {}),
        "labels": dict(labels or {}),
    }
    optional = {
        "deadline": None if deadline is None else _aware(deadline).isoformat(),
        "user_location": user_location,
        "max_latency_ms": max_latency_ms,
        "home_region": home_region,
        "max_runtime_h": max_runtime_h,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    key = idempotency_key if idempotency_key is not None else str(uuid.uuid4())
    return Call("POST", "/v1/jobs", params=_tenant(tenant), json=body,
                headers={"Idempotency-Key": key})


def _aware(t: datetime) -> datetime:
    """A naive datetime means local time to a Python user; send it with its offset."""
    return t if t.tzinfo is not None else t.astimezone().astimezone(UTC)


def _tenant(tenant: str | None) -> tuple[tuple[str, str], ...]:
    return () if tenant is None else (("tenant", tenant),)


def get(job_id: str) -> Call:
    return Call("GET", f"/v1/jobs/{_ref(job_id)}")


def list_page(
    *,
    states: Iterable[JobState | str] | None,
    site: str | None,
    tenant: str | None,
    after: str | None,
    limit: int,
) -> Call:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    params: list[tuple[str, str]] = [("state", JobState(s).value) for s in states or ()]
    for key, value in (("site", site), ("tenant", tenant), ("after", after)):
        if value is not None:
            params.append((key, value))
    params.append(("limit", str(limit)))
    return Call("GET", "/v1/jobs", params=tuple(params))


def cancel(job_id: str) -> Call:
    return Call("POST", f"/v1/jobs/{_ref(job_id)}/cancel")


def explain(job_id: str) -> Call:
    return Call("GET", f"/v1/jobs/{_ref(job_id)}/explain")


def events(job_id: str) -> Call:
    return Call("GET", f"/v1/jobs/{_ref(job_id)}/events")


def logs(job_id: str, *, follow: bool) -> Call:
    return Call("GET", f"/v1/jobs/{_ref(job_id)}/logs",
                params=(("follow", "true" if follow else "false"),))


def sites() -> Call:
    return Call("GET", "/v1/sites")


def plan() -> Call:
    return Call("GET", "/v1/plan")


def policy() -> Call:
    return Call("GET", "/v1/policy")


def dry_run_policy(text: str) -> Call:
    return Call("POST", "/v1/policy/dry-run", json={"policy": text})


def update_policy(text: str) -> Call:
    return Call("PUT", "/v1/policy", json={"policy": text})


def health() -> Call:
    return Call("GET", "/healthz")


def headers(token: str | None) -> dict[str, str]:
    out = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if token:
        out["Authorization"] = f"Bearer {token}"
    return out


def page_of(data: Any) -> tuple[list[Any], str | None]:
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise IsthmusError("unexpected job page from the server: no `items` list")
    nxt = data.get("next")
    return data["items"], None if nxt is None else str(nxt)
