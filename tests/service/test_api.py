"""The HTTP API in process (ASGI): auth, tenant isolation, validation, every endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.api import create_app
from scheduler.service.service import Service
from tests.service.harness import Harness

OPERATOR = {"Authorization": "Bearer operator-token-0000001"}
ACME = {"Authorization": "Bearer acme-token-00000000001"}
BETA = {"Authorization": "Bearer beta-token-00000000001"}


def job_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "train-1",
        "entrypoint": "python train.py",
        "gang": {"workers": 1, "accelerators_per_worker": 8, "allowed_types": ["H20-96G"]},
        "runtime_h": 1.0,
    }
    body.update(over)
    return body


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TestClient, Service, Harness]]:
    harness = Harness(tmp_path)
    service = harness.service()
    with TestClient(create_app(service)) as client:
        yield client, service, harness
    service.stop()


@pytest.fixture
def client(served: tuple[TestClient, Service, Harness]) -> TestClient:
    return served[0]


def test_no_token_or_an_unknown_token_is_401(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        r = client.get("/v1/jobs", headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["www-authenticate"] == "Bearer"
        assert "token" in r.json()["message"]


def test_submit_then_get(client: TestClient) -> None:
    r = client.post("/v1/jobs", json=job_body(), headers=ACME)
    assert r.status_code == 201, r.text
    job = r.json()
    assert (job["state"], job["tenant"], job["accelerators"]) == ("PENDING", "acme", 8)
    assert job["spec"]["runtime_h"] == {"H20-96G": 1.0}
    got = client.get(f"/v1/jobs/{job['id']}", headers=ACME)
    assert got.status_code == 200 and got.json()["id"] == job["id"]


def test_an_idempotency_key_makes_a_retry_return_the_same_job(client: TestClient) -> None:
    headers = {**ACME, "Idempotency-Key": "req-42"}
    first = client.post("/v1/jobs", json=job_body(), headers=headers)
    again = client.post("/v1/jobs", json=job_body(), headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    other = client.post("/v1/jobs", json=job_body(name="other"), headers=headers)
    assert other.status_code == 409 and "req-42" in other.json()["message"]
    assert len(client.get("/v1/jobs", headers=ACME).json()["items"]) == 1


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (job_body(gang={"workers": 0, "accelerators_per_worker": 8,
                        "allowed_types": ["H20-96G"]}), "gang.workers", "greater than"),
        (job_body(gang={"workers": "many", "accelerators_per_worker": 8,
                        "allowed_types": ["H20-96G"]}), "gang.workers", "integer"),
        (job_body(gang={"workers": 1, "accelerators_per_worker": -8,
                        "allowed_types": ["H20-96G"]}), "gang.accelerators_per_worker",
         "greater than"),
        (job_body(gang={"workers": 4096, "accelerators_per_worker": 64,
                        "allowed_types": ["H20-96G"]}), "gang", "limit is 65536"),
        (job_body(gang={"workers": 1, "accelerators_per_worker": 8,
                        "allowed_types": ["B200"]}), "gang.allowed_types[0]",
         "unknown accelerator type"),
        (job_body(datasets=["nowhere"]), "datasets[0]", "unknown dataset"),
        (job_body(user_location="mars"), "user_location", "unknown location"),
        (job_body(runtime_h=-1), "runtime_h", "must be > 0"),
        (job_body(runtime_h="abc"), "runtime_h", "valid number"),
        (job_body(colour="blue"), "colour", "Extra inputs"),
        ({"name": "x"}, "entrypoint", "required"),
        (job_body(deadline="next tuesday"), "deadline", "datetime"),
    ],
)
def test_bad_jobs_are_422_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str, words: str
) -> None:
    r = client.post("/v1/jobs", json=body, headers=ACME)
    assert r.status_code == 422, r.text
    error = r.json()
    assert words.lower() in error["message"].lower()
    if field:
        assert error["field"] == field or any(p["field"] == field for p in error["problems"])
    assert client.get("/v1/jobs", headers=ACME).json()["items"] == []


def test_broken_json_is_422(client: TestClient) -> None:
    r = client.post("/v1/jobs", content=b'{"name": "x",', headers={
        **ACME, "Content-Type": "application/json"})
    assert r.status_code == 422
    assert "invalid json" in r.json()["message"].lower()


def test_a_ten_megabyte_body_is_413(client: TestClient) -> None:
    big = json.dumps(job_body(entrypoint="x" * 10_000_000)).encode()
    r = client.post("/v1/jobs", content=big, headers={**ACME, "Content-Type": "application/json"})
    assert r.status_code == 413
    assert "larger than" in r.json()["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    r = client.post("/v1/jobs", content=chunks(), headers={
        **ACME, "Content-Type": "application/json"})
    assert r.status_code == 413


def test_a_tenant_neither_sees_nor_cancels_another_tenants_job(client: TestClient) -> None:
    job = client.post("/v1/jobs", json=job_body(), headers=ACME).json()
    for method, path in [("GET", ""), ("POST", "/cancel"), ("GET", "/explain"),
                         ("GET", "/logs"), ("GET", "/events")]:
        r = client.request(method, f"/v1/jobs/{job['id']}{path}", headers=BETA)
        assert r.status_code == 404, (method, path, r.text)
    assert client.get("/v1/jobs", headers=BETA).json()["items"] == []
    assert client.get("/v1/jobs?tenant=acme", headers=BETA).status_code == 403
    assert client.get(f"/v1/jobs/{job['id']}", headers=ACME).json()["state"] == "PENDING"
    # The operator sees every tenant's jobs.
    assert len(client.get("/v1/jobs", headers=OPERATOR).json()["items"]) == 1


def test_an_operator_submits_on_behalf_of_a_named_tenant(client: TestClient) -> None:
    assert client.post("/v1/jobs", json=job_body(), headers=OPERATOR).status_code == 422
    r = client.post("/v1/jobs?tenant=beta", json=job_body(), headers=OPERATOR)
    assert r.status_code == 201 and r.json()["tenant"] == "beta"
    assert client.post("/v1/jobs?tenant=beta", json=job_body(), headers=ACME).status_code == 403


def test_list_pages_with_next_and_filters_by_state(client: TestClient) -> None:
    ids = [client.post("/v1/jobs", json=job_body(name=f"j{i}"), headers=ACME).json()["id"]
           for i in range(5)]
    seen: list[str] = []
    after = None
    while True:
        params = {"limit": 2, **({"after": after} if after else {})}
        page = client.get("/v1/jobs", params=params, headers=ACME).json()
        seen += [j["id"] for j in page["items"]]
        after = page["next"]
        if after is None:
            break
    assert seen == ids
    assert client.get("/v1/jobs?state=RUNNING", headers=ACME).json()["items"] == []
    assert client.get("/v1/jobs?state=BOGUS", headers=ACME).status_code == 422
    assert client.get("/v1/jobs?limit=0", headers=ACME).status_code == 422


def test_a_job_runs_and_every_view_of_it_agrees(
    served: tuple[TestClient, Service, Harness],
) -> None:
    client, service, harness = served
    assert client.get("/readyz").status_code == 503  # no cycle yet
    job = client.post("/v1/jobs", json=job_body(), headers=ACME).json()
    r = client.get(f"/v1/jobs/{job['id']}/logs", headers=ACME)
    assert r.status_code == 409 and "not been dispatched" in r.json()["message"]
    service.loop.cycle()
    assert client.get("/readyz").status_code == 200
    service.loop.cycle()  # followed from the cycle after its dispatch
    running = client.get(f"/v1/jobs/{job['id']}", headers=ACME).json()
    assert running["state"] == "RUNNING" and running["site"] in {"east-a", "west-b", "west-c"}
    explained = client.get(f"/v1/jobs/{job['id']}/explain", headers=ACME).json()
    assert running["site"] in explained["summary"] and explained["options_considered"] >= 1
    harness.clock.advance(3601)
    service.loop.cycle()
    logs = client.get(f"/v1/jobs/{job['id']}/logs", headers=ACME)
    assert logs.status_code == 200 and logs.text
    assert client.get(f"/v1/jobs/{job['id']}", headers=ACME).json()["state"] == "SUCCEEDED"
    kinds = [e["kind"] for e in client.get(f"/v1/jobs/{job['id']}/events", headers=ACME).json()]
    assert kinds[0] == "submitted" and kinds[-1] == "succeeded"
    sites = client.get("/v1/sites", headers=ACME).json()
    assert {s["name"] for s in sites} == {"east-a", "west-b", "west-c"}
    assert all(s["up"] for s in sites)
    plan = client.get("/v1/plan", headers=ACME).json()
    assert plan["cycles"] == 3 and plan["jobs_by_state"] == {"SUCCEEDED": 1}
    metrics = client.get("/metrics").text
    assert 'isthmus_jobs{state="SUCCEEDED"} 1.0' in metrics
    assert "isthmus_site_up" in metrics


def test_cancel_a_waiting_job(client: TestClient) -> None:
    job = client.post("/v1/jobs", json=job_body(), headers=ACME).json()
    r = client.post(f"/v1/jobs/{job['id']}/cancel", headers=ACME)
    assert r.status_code == 202 and r.json()["state"] == "CANCELLED"
    assert client.post("/v1/jobs/j-unknown/cancel", headers=ACME).status_code == 404


def test_policy_dry_run_and_update_are_for_operators(
    served: tuple[TestClient, Service, Harness],
) -> None:
    client, service, _ = served
    for i in range(3):
        client.post("/v1/jobs", json=job_body(name=f"j{i}"), headers=ACME)
    strict = "residency:\n  - name: stay-east\n    tenants: [acme]\n    allow: {sites: [east-a]}\n"
    assert client.post("/v1/policy/dry-run", json={"policy": strict},
                       headers=ACME).status_code == 403
    r = client.post("/v1/policy/dry-run", json={"policy": strict}, headers=OPERATOR)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["queue"] == 3
    assert report["proposed"]["placed"] <= 2  # east-a holds two 8-GPU jobs
    assert client.get("/v1/jobs?state=PLACED", headers=ACME).json()["items"] == []  # no change
    bad = client.post("/v1/policy/dry-run", json={"policy": "objective: {energy: -1}\n"},
                      headers=OPERATOR)
    assert bad.status_code == 422 and "objective.energy" in bad.json()["message"]
    put = client.put("/v1/policy", json={"policy": strict}, headers=OPERATOR)
    assert put.status_code == 200 and put.json()["source"] == "api"
    assert service.store.get_setting("policy") == strict
    assert client.get("/v1/policy", headers=ACME).json()["policy"] == strict
    service.loop.cycle()
    placed = client.get("/v1/jobs", headers=ACME).json()["items"]
    assert {j["site"] for j in placed if j["site"]} == {"east-a"}


def test_health_is_open_and_metrics_need_no_token(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/metrics").status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "Isthmus"


values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=8,
)


FIELDS = ["name", "entrypoint", "gang", "runtime_h", "priority", "deadline", "datasets",
          "max_latency_ms", "labels", "runtime_env"]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(FIELDS), value=values)
def test_no_body_makes_a_500(client: TestClient, field: str, value: Any) -> None:
    r = client.post("/v1/jobs", json=job_body(**{field: value}), headers=ACME)
    assert r.status_code in {201, 422}, r.text
    assert "message" in r.json()
