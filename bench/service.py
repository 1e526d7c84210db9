"""The service benchmark: submissions through the HTTP API, persisted, placed and dispatched.

    python bench/service.py [--jobs 20000] [--concurrency 64] [--rate 100] [--rate-seconds 30]
                            [--db sqlite|URL] [--json]

A real ``isthmus serve`` runs in its own process (uvicorn, SQLite in a temporary directory,
the default China topology with every site ``simulated`` at 3,600x speed, the default policy).
The load generator is ``--clients`` processes speaking HTTP/1.1 over keep-alive asyncio streams
(spawned, so process start-up is counted in the burst's time).

1. **Throughput.** ``--jobs`` submissions as fast as ``--concurrency`` connections allow.
   ``submit_per_s`` = jobs / (last response - first request): every accepted job was committed
   to the store before its 201. ``dispatched_per_s`` = jobs / (last ``dispatched`` event - first
   request), read from the store afterwards: each job persisted, placed and dispatched.
2. **Latency.** An open loop at ``--rate`` jobs/s for ``--rate-seconds``; for every job the
   time from its submission (``submitted_at``) to its ``dispatched`` event, p50/p90/p99/max.

Jobs are one accelerator for 36 s of simulated time (0.01 s real), so capacity frees as fast
as the loop can hand it out and no job waits for a free card. Figures are measured by this
run; nothing printed is a constant. Exit status 1 when a job was lost or dispatched twice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-tenant-token-000001"
JOB = {
    "name": "bench",
    "entrypoint": "python -c 'pass'",
    "gang": {"workers": 1, "accelerators_per_worker": 1,
             "allowed_types": ["RTX4090-48G", "L40S-48G", "A100-80G", "H20-96G"]},
    "runtime_h": 0.01,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(tmp: Path, db: str) -> Path:
    path = tmp / "isthmus.yaml"
    path.write_text(
        f"topology: {ROOT / 'policies/topology/china-hubs.yaml'}\n"
        f"policy: {ROOT / 'policies/default.yaml'}\n"
        f"database: {db}\n"
        "cycle_s: 0.5\n"
        "simulated_speedup: 3600\n"
        f"tokens: [{{token: {TOKEN}, tenant: bench}}]\n"
        "tenants: [{id: bench, home_region: Shanghai}]\n"
    )
    return path


class Server:
    def __init__(self, tmp: Path, db: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (tmp / "server.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "scheduler.cli.main", "serve", "--config",
             str(_config(tmp, db)), "--port", str(self.port), "--log-level", "warning"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: see {self.log.name}")
            time.sleep(0.2)
        raise RuntimeError("server not ready in 60 s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


async def _burst_client(url: str, first: int, count: int, connections: int) -> list[str]:
    """Keep-alive HTTP/1.1 over raw asyncio streams: the load generator must cost far less
    than the server it measures (a general client such as httpx or aiohttp costs about as
    much CPU per request as the server's own work)."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps(JOB).encode()
    ids: list[str] = []
    todo = iter(range(first, first + count))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for i in todo:
                writer.write(
                    b"POST /v1/jobs HTTP/1.1\r\nHost: bench\r\n"
                    b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
                    b"Idempotency-Key: burst-" + str(i).encode() + b"\r\n"
                    b"Content-Type: application/json\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                payload = await reader.readexactly(length)
                if status != 201:
                    raise RuntimeError(f"submit: {status} {payload[:300]!r}")
                ids.append(json.loads(payload)["id"])
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return ids


def _burst_process(url: str, first: int, count: int, connections: int, out: Any) -> None:
    out.send(asyncio.run(_burst_client(url, first, count, connections)))


def _burst(url: str, jobs: int, concurrency: int, clients: int) -> tuple[float, float, list[str]]:
    """``clients`` processes, ``concurrency`` connections in all, submit ``jobs`` together."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    share = [jobs // clients + (1 if k < jobs % clients else 0) for k in range(clients)]
    pipes, procs = [], []
    started = time.time()
    first = 0
    for count in share:
        mine, theirs = ctx.Pipe()
        proc = ctx.Process(target=_burst_process,
                           args=(url, first, count, max(1, concurrency // clients), theirs))
        proc.start()
        pipes.append(mine)
        procs.append(proc)
        first += count
    ids: list[str] = []
    for pipe in pipes:
        ids += pipe.recv()
    ended = time.time()
    for proc in procs:
        proc.join()
    return started, ended, ids


async def _open_loop(url: str, rate: float, seconds: float) -> list[str]:
    ids: list[str] = []
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        tasks = []
        start = time.monotonic()
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))

            async def one(i: int = i) -> None:
                r = await client.post("/v1/jobs", json=JOB,
                                      headers={"Idempotency-Key": f"rate-{i}"})
                r.raise_for_status()
                ids.append(r.json()["id"])

            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return ids


def _wait_dispatched(db: str, ids: list[str], timeout_s: float) -> dict[str, float]:
    """Job id -> time of its ``dispatched`` event, once every job has one (or timeout)."""
    engine = create_engine(db)
    wanted = set(ids)
    deadline = time.monotonic() + timeout_s
    out: dict[str, float] = {}
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                rows = conn.execute(text(
                    "SELECT job_id, MIN(at) FROM events WHERE kind = 'dispatched' GROUP BY job_id"
                )).all()
            out = {r[0]: r[1] for r in rows if r[0] in wanted}
            if len(out) == len(wanted):
                break
            time.sleep(0.5)
    finally:
        engine.dispose()
    return out


def _integrity(db: str) -> dict[str, int]:
    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            jobs = conn.execute(text("SELECT COUNT(*) FROM jobs")).scalar_one()
            twice = conn.execute(text(
                "SELECT COUNT(*) FROM (SELECT job_id FROM events WHERE kind = 'dispatched' "
                "GROUP BY job_id, message HAVING COUNT(*) > 1) t")).scalar_one()
            multi = conn.execute(text(
                "SELECT COUNT(*) FROM (SELECT job_id FROM attempts GROUP BY job_id "
                "HAVING COUNT(*) > 1) t")).scalar_one()
    finally:
        engine.dispose()
    return {"jobs_in_store": int(jobs), "dispatched_twice": int(twice),
            "jobs_with_several_attempts": int(multi)}


def _submitted_at(db: str, ids: list[str]) -> dict[str, float]:
    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, submitted_at FROM jobs")).all()
    finally:
        engine.dispose()
    wanted = set(ids)
    return {r[0]: r[1] for r in rows if r[0] in wanted}


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds so far of a process and its children (the loop process)."""
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="isthmus-bench-") as tmp_name:
        tmp = Path(tmp_name)
        db = f"sqlite:///{tmp}/isthmus.db" if args.db == "sqlite" else args.db
        server = Server(tmp, db)
        try:
            cpu0 = _cpu_s(server.proc.pid)
            started, ended, ids = _burst(server.url, args.jobs, args.concurrency, args.clients)
            dispatched = _wait_dispatched(db, ids, timeout_s=max(120.0, args.jobs / 50))
            server_cpu_s = _cpu_s(server.proc.pid) - cpu0
            burst: dict[str, Any] = {
                "jobs": args.jobs,
                "concurrency": args.concurrency,
                "clients": args.clients,
                "submit_s": round(ended - started, 3),
                "submit_per_s": round(args.jobs / (ended - started), 1),
                "dispatched": len(dispatched),
                "dispatched_per_s": round(len(dispatched) / (max(dispatched.values()) - started),
                                          1) if dispatched else 0.0,
                "server_cpu_ms_per_job": round(1000 * server_cpu_s / args.jobs, 3),
            }
            ids2 = asyncio.run(_open_loop(server.url, args.rate, args.rate_seconds))
            dispatched2 = _wait_dispatched(db, ids2, timeout_s=120.0)
            submitted = _submitted_at(db, ids2)
            latency = [dispatched2[i] - submitted[i] for i in ids2 if i in dispatched2]
            rate: dict[str, Any] = {
                "rate_per_s": args.rate,
                "seconds": args.rate_seconds,
                "jobs": len(ids2),
                "dispatched": len(dispatched2),
                "p50_ms": round(1000 * statistics.median(latency), 1) if latency else None,
                "p90_ms": round(1000 * _pct(latency, 0.90), 1) if latency else None,
                "p99_ms": round(1000 * _pct(latency, 0.99), 1) if latency else None,
                "max_ms": round(1000 * max(latency), 1) if latency else None,
            }
            integrity = _integrity(db)
        finally:
            server.stop()
    return {"burst": burst, "rate": rate, "integrity": integrity,
            "database": "sqlite" if args.db == "sqlite" else "postgresql",
            "cpus": os.cpu_count()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--clients", type=int, default=2, help="load-generator processes")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--rate-seconds", type=float, default=30.0)
    parser.add_argument("--db", default="sqlite", help="sqlite, or a postgresql+psycopg:// URL")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args)
    lost = (result["burst"]["dispatched"] < result["burst"]["jobs"]
            or result["rate"]["dispatched"] < result["rate"]["jobs"])
    twice = result["integrity"]["dispatched_twice"] > 0
    if args.json:
        print(json.dumps(result))
    else:
        b, r = result["burst"], result["rate"]
        print(f"burst: {b['jobs']} jobs, {b['concurrency']} connections: "
              f"{b['submit_per_s']} submissions/s accepted, {b['dispatched_per_s']} jobs/s "
              f"persisted+placed+dispatched ({b['dispatched']}/{b['jobs']} dispatched); "
              f"server CPU {b['server_cpu_ms_per_job']} ms per job")
        print(f"open loop: {r['rate_per_s']} jobs/s for {r['seconds']} s: submit -> dispatched "
              f"p50 {r['p50_ms']} ms, p90 {r['p90_ms']} ms, p99 {r['p99_ms']} ms, "
              f"max {r['max_ms']} ms ({r['dispatched']}/{r['jobs']} dispatched)")
        print(f"integrity: {result['integrity']}")
    return 1 if lost or twice else 0


if __name__ == "__main__":
    sys.exit(main())
