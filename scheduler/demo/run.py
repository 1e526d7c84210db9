"""The demo run: start everything on 127.0.0.1, submit a workload through the API, watch it.

Everything started here is stopped on the way out (normal end, Ctrl-C or an error): the HTTP
server, the control loop, the Ray head and every process it spawned, the temporary directory.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from scheduler.api import create_app
from scheduler.core.baselines import local_only
from scheduler.core.ids import JobId
from scheduler.core.model import Snapshot
from scheduler.core.plan import Plan
from scheduler.core.solver import plan as optimize
from scheduler.demo.ray_head import RayHead, start_ray_head
from scheduler.demo.workload import RESIDENT_DATASET, TENANTS, demo_jobs
from scheduler.sdk import Client, IsthmusError
from scheduler.service.config import load_config
from scheduler.service.service import Service

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = ROOT / "policies" / "topology" / "china-hubs.yaml"
POLICY = ROOT / "policies" / "default.yaml"
RAY_SITE = "qingpu"  # Shanghai: the real Ray site is an eastern one, where the users are
RAY_ACCELERATORS = {"RTX4090-48G": 4}
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}


@dataclass
class DemoOptions:
    jobs: int = 40
    spread_s: float = 20.0
    speedup: float = 240.0
    seed: int = 7
    ray: bool = True
    port: int = 0
    timeout_s: float = 600.0


@dataclass
class Stack:
    """What the demo started, to stop in reverse order."""

    tmp: Path
    url: str = ""
    operator_token: str = ""
    tokens: dict[str, str] = field(default_factory=dict)
    service: Service | None = None
    server: uvicorn.Server | None = None
    server_thread: threading.Thread | None = None
    ray: RayHead | None = None

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self.server_thread is not None:
            self.server_thread.join(timeout=10)
        if self.service is not None:
            self.service.stop()
        if self.ray is not None:
            self.ray.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_config(stack: Stack, options: DemoOptions) -> Path:
    tokens = [f"  - {{token: {stack.operator_token}, role: operator}}"]
    tokens += [f"  - {{token: {tok}, tenant: {tenant}}}" for tenant, tok in stack.tokens.items()]
    tenants = [f"  - {{id: {t}, home_region: {region}}}" for t, region in TENANTS.items()]
    lines = [
        f"topology: {TOPOLOGY}",
        f"policy: {POLICY}",
        f"database: sqlite:///{stack.tmp}/isthmus.db",
        "cycle_s: 1.0",
        f"simulated_speedup: {options.speedup}",
        "tokens:", *tokens,
        "tenants:", *tenants,
        "datasets:",
        f"  - {{id: {RESIDENT_DATASET}, size_gb: 50, replicas: [{RAY_SITE}],"
        " residency: {regions: [Shanghai]}}",
    ]
    if stack.ray is not None:
        accelerators = ", ".join(f"{t}: {t}" for t in RAY_ACCELERATORS)
        lines += [
            "sites:",
            f"  {RAY_SITE}:",
            "    adapter: ray",
            f"    address: {stack.ray.dashboard_url}",
            f"    accelerators: {{{accelerators}}}",
            "    prices: {RTX4090-48G: 2.4}",
        ]
    path = stack.tmp / "isthmus.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@contextlib.contextmanager
def started(options: DemoOptions, console: Console) -> Iterator[Stack]:
    stack = Stack(tmp=Path(tempfile.mkdtemp(prefix="isthmus-demo-")))
    stack.operator_token = secrets.token_urlsafe(24)
    stack.tokens = {t: secrets.token_urlsafe(24) for t in TENANTS}
    try:
        if options.ray:
            with console.status("starting a local Ray head (the real site)..."):
                stack.ray = start_ray_head(stack.tmp / "ray", RAY_ACCELERATORS)
        config = load_config(_write_config(stack, options))
        stack.service = Service.from_config(config)
        stack.service.start()
        port = options.port or _free_port()
        stack.url = f"http://127.0.0.1:{port}"
        stack.server = uvicorn.Server(uvicorn.Config(
            create_app(stack.service), host="127.0.0.1", port=port, log_level="warning",
            access_log=False))
        stack.server_thread = threading.Thread(target=stack.server.run, daemon=True,
                                               name="isthmus-http")
        stack.server_thread.start()
        deadline = time.monotonic() + 30
        while not stack.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the HTTP server did not start in 30 s")
            time.sleep(0.05)
        yield stack
    finally:
        with console.status("stopping the service and the Ray head..."):
            stack.stop()


def _baselines(service: Service, bodies: list[tuple[str, dict[str, Any]]],
               ids: list[str]) -> tuple[Plan, Plan]:
    """The whole workload planned at once on empty sites, by the optimizer and local-only."""
    jobs = []
    for job_id in ids:
        record = service.store.get(job_id)
        if record is not None:
            jobs.append(record.to_core())
    topology = service.topology
    snapshot = Snapshot(
        sites=topology.sites, links=topology.links, datasets=service.config.datasets,
        locations=topology.locations, tenants=service.config.tenants,
        accelerators=topology.accelerators, pending=tuple(jobs),
    )
    now = time.time()
    policy = service.policy.current
    return optimize(snapshot, policy, now), local_only(snapshot, policy, now)


def _submitter(stack: Stack, bodies: list[tuple[str, dict[str, Any]]], spread_s: float,
               ids: list[str], errors: list[str], stop: threading.Event) -> None:
    """Each tenant submits its jobs with the Python SDK, as a user would."""
    clients = {t: Client(stack.url, tok) for t, tok in stack.tokens.items()}
    try:
        for n, (tenant, body) in enumerate(bodies):
            if stop.is_set():
                return
            gang = body["gang"]
            try:
                job = clients[tenant].submit(
                    name=body["name"], entrypoint=body["entrypoint"],
                    workers=gang["workers"],
                    accelerators_per_worker=gang["accelerators_per_worker"],
                    allowed_types=gang["allowed_types"], runtime_h=body["runtime_h"],
                    priority=body.get("priority", 0), datasets=body.get("datasets", ()),
                    user_location=body.get("user_location"),
                    max_latency_ms=body.get("max_latency_ms"),
                    checkpointable=body.get("checkpointable", False),
                    idempotency_key=f"demo-{n}",
                )
                ids.append(job.id)
            except IsthmusError as err:
                errors.append(f"{body['name']}: {err}")
            stop.wait(spread_s / max(1, len(bodies)))
    finally:
        for client in clients.values():
            client.close()


def _view(stack: Stack, client: httpx.Client, ids: list[str], total: int,
          plans: tuple[Plan, Plan] | None, started_at: float) -> tuple[Group, bool]:
    headers = {"Authorization": f"Bearer {stack.operator_token}"}
    sites = client.get("/v1/sites", headers=headers).json()
    jobs: list[dict[str, Any]] = []
    after = None
    while True:
        page = client.get("/v1/jobs", params={"limit": 1000, **({"after": after} if after
                                                                  else {})},
                          headers=headers).json()
        jobs += page["items"]
        after = page["next"]
        if after is None:
            break
    states = Counter(j["state"] for j in jobs)
    at_site: dict[str, Counter[str]] = {}
    for j in jobs:
        if j["site"]:
            at_site.setdefault(j["site"], Counter())[j["state"]] += 1

    table = Table(title="sites", expand=True)
    for col in ("site", "side", "adapter", "up", "running", "done", "utilisation"):
        table.add_column(col, justify="right" if col in {"running", "done", "utilisation"}
                         else "left")
    side_busy: Counter[str] = Counter()
    side_total: Counter[str] = Counter()
    for s in sites:
        c = at_site.get(s["name"], Counter())
        side = s["side"] or "?"
        side_total[side] += s["accelerators"]
        side_busy[side] += s["accelerators"] - s["available"]
        table.add_row(s["name"], side, s["adapter"].removesuffix("Site").lower(),
                      "yes" if s["up"] else f"[red]no[/red] {s['reason']}",
                      str(c["RUNNING"] + c["DISPATCHED"]), str(c["SUCCEEDED"]),
                      f"{100 * s['utilisation']:.0f}%")

    def util(side: str) -> str:
        return f"{100 * side_busy[side] / side_total[side]:.0f}%" if side_total[side] else "-"

    lines = [
        f"jobs: {len(ids)}/{total} submitted · " + " · ".join(
            f"{k.lower()} {v}" for k, v in sorted(states.items())),
        f"utilisation: east {util('east')} · west {util('west')} "
        f"(elapsed {time.monotonic() - started_at:.0f} s)",
    ]
    if plans is not None:
        opt, local = plans
        local_cost = {p.job: p.cost.total for p in local.placements}
        ours = {JobId(j["id"]): j["estimated_cost_cny"] or 0.0 for j in jobs
                if j["estimated_cost_cny"] is not None}
        both = [j for j in ours if j in local_cost]
        only_ours = [j for j in ours if j not in local_cost]
        if both:
            a, b = sum(ours[j] for j in both), sum(local_cost[j] for j in both)
            lines.append(f"placed so far: {len(ours)} jobs, {sum(ours.values()):,.0f} CNY. On the "
                         f"{len(both)} of them local-only could also place: Isthmus {a:,.0f} vs "
                         f"local-only {b:,.0f} CNY ({100 * (a - b) / b:+.0f}%)")
        if only_ours:
            lines.append(f"{len(only_ours)} placed jobs local-only could not place at all "
                         "(their home region has no fitting capacity): they would wait")
        lines.append(
            f"whole workload planned at once: optimizer {opt.objective:,.0f} vs local-only "
            f"{local.objective:,.0f} CNY objective (incl. waiting); local-only leaves "
            f"{len(local.waits)} waiting, the optimizer {len(opt.waits)}")
    done = len(ids) == total and all(j["state"] in TERMINAL for j in jobs) and bool(jobs)
    return Group(table, Panel("\n".join(lines), title="Isthmus demo")), done


def run_demo(options: DemoOptions, console: Console) -> int:
    """Run the demo; returns the exit status (0: every job reached an end state)."""
    bodies = demo_jobs(options.jobs, options.seed)
    with started(options, console) as stack:
        assert stack.service is not None
        console.print(f"Isthmus API at {stack.url} (OpenAPI at {stack.url}/docs)"
                      + (f"; Ray dashboard at {stack.ray.dashboard_url}" if stack.ray else ""))
        console.print(f"operator token for this run: {stack.operator_token}")
        ids: list[str] = []
        errors: list[str] = []
        stop = threading.Event()
        submitter = threading.Thread(target=_submitter, daemon=True, args=(
            stack, bodies, options.spread_s, ids, errors, stop))
        started_at = time.monotonic()
        submitter.start()
        plans: tuple[Plan, Plan] | None = None
        done = False
        try:
            with httpx.Client(base_url=stack.url, timeout=30) as client, Live(
                console=console, refresh_per_second=2) as live:
                while time.monotonic() - started_at < options.timeout_s:
                    if plans is None and not submitter.is_alive():
                        plans = _baselines(stack.service, bodies, ids)
                    view, done = _view(stack, client, ids, len(bodies), plans, started_at)
                    live.update(view)
                    if done:
                        break
                    time.sleep(0.5)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted: stopping everything[/yellow]")
            stop.set()
            return 130
        finally:
            stop.set()
            submitter.join(timeout=10)
        console.print()
        for error in errors:
            console.print(f"[red]refused:[/red] {error}")
        if not done:
            console.print(f"[red]not every job finished within {options.timeout_s:.0f} s[/red]")
            return 1
        console.print(f"[green]every job reached an end state in "
                      f"{time.monotonic() - started_at:.0f} s[/green]")
        return 0 if not errors else 1


__all__ = ["DemoOptions", "run_demo"]
