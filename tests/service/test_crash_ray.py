"""kill -9 of ``isthmus serve`` while it dispatches to a real Ray site, then a restart.

Every accepted job must still be there and each must run exactly once — counted in the Ray
cluster's own job list, not in our store.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from scheduler.demo.ray_head import RayHead
from tests.service.harness import TOPOLOGY

TOKEN = "crash-tenant-token-000001"
JOBS = 12


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SUBMIT_DELAY_S = 0.5
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class SlowSubmissions:
    """An HTTP proxy in front of the Ray dashboard that holds every job submission for
    ``SUBMIT_DELAY_S``: the service's dispatch phase then takes seconds, so the kill below
    lands inside it however fast the machine is (and nothing else about Ray changes)."""

    def __init__(self, upstream: str) -> None:
        upstream = upstream.rstrip("/")

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if self.command == "POST" and self.path.rstrip("/") == "/api/jobs":
                    time.sleep(SUBMIT_DELAY_S)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                reply = httpx.request(self.command, upstream + self.path, content=body,
                                      headers=headers, timeout=60)
                self.send_response(reply.status_code)
                for key, value in reply.headers.items():
                    if key.lower() not in HOP_BY_HOP and key.lower() != "content-encoding":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(reply.content)))
                self.end_headers()
                self.wfile.write(reply.content)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _config(tmp: Path, address: str) -> Path:
    path = tmp / "isthmus.yaml"
    path.write_text(f"""\
topology: {TOPOLOGY}
database: sqlite:///{tmp}/isthmus.db
cycle_s: 0.5
tokens: [{{token: {TOKEN}, tenant: acme}}]
tenants: [{{id: acme, home_region: Shanghai}}]
datasets:
  - {{id: scans, size_gb: 1, replicas: [east-a], residency: {{regions: [Shanghai]}}}}
sites:
  east-a:
    adapter: ray
    address: {address}
    accelerators: [RTX4090-48G]
""")
    return path


class Serve:
    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = log.open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "scheduler.cli.main", "serve", "--config", str(config),
             "--port", str(port), "--log-level", "warning"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None, f"serve exited; see {log}"
            assert time.monotonic() < deadline, "serve did not answer in 60 s"
            time.sleep(0.1)

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


@pytest.fixture
def ray_jobs(ray_head: RayHead) -> Iterator[object]:
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(ray_head.dashboard_url)
    yield client
    for job in client.list_jobs():  # leave the shared head as we found it
        if not job.status.is_terminal():
            client.stop_job(job.submission_id)


def _ours(client: object, job_ids: set[str]) -> list[str]:
    """Submission ids of the Ray jobs that belong to our jobs."""
    return [j.submission_id for j in client.list_jobs()  # type: ignore[attr-defined]
            if (j.metadata or {}).get("isthmus.io/job") in job_ids]


def test_kill_9_during_dispatch_then_restart_runs_every_job_exactly_once(
    tmp_path: Path, ray_head: RayHead, ray_jobs: object
) -> None:
    proxy = SlowSubmissions(ray_head.dashboard_url)
    config = _config(tmp_path, proxy.url)
    port = _free_port()
    serve = Serve(config, port, tmp_path / "serve.log")
    engine = create_engine(f"sqlite:///{tmp_path}/isthmus.db")
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        body = {
            "name": "crash", "entrypoint": "python -c \"import time; time.sleep(2)\"",
            "gang": {"workers": 1, "accelerators_per_worker": 1,
                     "allowed_types": ["RTX4090-48G"]},
            "runtime_h": 0.001, "datasets": ["scans"],
        }
        accepted: set[str] = set()
        for i in range(JOBS):
            r = httpx.post(f"{serve.url}/v1/jobs", json=body, timeout=10,
                           headers={**headers, "Idempotency-Key": f"crash-{i}"})
            assert r.status_code == 201, r.text
            accepted.add(r.json()["id"])

        # Kill the moment the first copy reaches Ray: the loop is then mid-dispatch.
        deadline = time.monotonic() + 60
        while not _ours(ray_jobs, accepted):
            assert time.monotonic() < deadline, "nothing reached Ray in 60 s"
            time.sleep(0.02)
        serve.kill9()
        at_ray = set(_ours(ray_jobs, accepted))
        with engine.connect() as conn:
            placed = {r[0] for r in conn.execute(text(
                "SELECT dispatch_name FROM jobs WHERE state = 'PLACED'"))}
        in_flight = at_ray & placed
        assert in_flight, (
            f"the kill came after the dispatch phase (at Ray {sorted(at_ray)}, "
            f"PLACED {sorted(placed)})")

        serve = Serve(config, port, tmp_path / "serve.log")
        deadline = time.monotonic() + 180
        while True:
            jobs = httpx.get(f"{serve.url}/v1/jobs", headers=headers, params={"limit": 100},
                             timeout=10).json()["items"]
            states = Counter(j["state"] for j in jobs)
            if states["SUCCEEDED"] == JOBS:
                break
            assert not states["FAILED"], [j["message"] for j in jobs if j["state"] == "FAILED"]
            assert time.monotonic() < deadline, f"not all done in 180 s: {states}"
            time.sleep(0.5)

        assert {j["id"] for j in jobs} == accepted  # every accepted job is still there
        assert all(j["attempt"] == 1 for j in jobs)
        runs = Counter(_ours(ray_jobs, accepted))
        assert len(runs) == JOBS and set(runs.values()) == {1}, runs  # none ran twice
        assert set(runs) == {f"{job_id}-1" for job_id in accepted}
    finally:
        serve.stop()
        engine.dispose()
        proxy.close()
