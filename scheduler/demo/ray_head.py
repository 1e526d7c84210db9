"""A real local Ray head, started with the venv's ``ray`` CLI and stopped completely.

Why a module of its own: ``isthmus demo``, the ``ray`` adapter tests and the service tests all
need a real head (Job Submission API, dashboard, state API), cheap enough for a 2-core
machine, and gone afterwards without touching any other Ray on the machine (``ray stop`` would
kill them all). Self-contained: standard library only, nothing else from the project.

    head = start_ray_head(tmp_dir, {"RTX4090-48G": 8})
    try:
        JobSubmissionClient(head.dashboard_url).list_jobs()
    finally:
        head.stop()

How the head is found again: ``ray start --block`` runs in a session of its own
(``start_new_session``), and every process of the head (GCS, raylet, dashboard, agents,
workers) inherits that session. Job entrypoints run in sessions of their own, as children of
their job's supervisor, so :meth:`RayHead.stop` takes the session's processes and all their
descendants, SIGKILLs ``ray start`` first (on SIGTERM it drains for 30 s), SIGTERMs the rest,
then SIGKILLs what is left, until nothing of the head remains.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0
TERM_GRACE_S = 1.0
OBJECT_STORE_BYTES = 80 * 1024 * 1024
# Ray puts Unix sockets under <temp dir>/session_<date>_<time>_<usec>_<pid>/sockets/..., and
# a socket path may not exceed 107 bytes: a longer temp dir is replaced by a short one.
MAX_TEMP_DIR_CHARS = 40


def ray_cli() -> Path:
    """The ``ray`` CLI next to this Python (the venv's)."""
    return Path(sys.executable).parent / "ray"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get_json(url: str, timeout_s: float = 2.0) -> object:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return json.loads(response.read().decode())


def _processes(*, zombies: bool = False) -> dict[int, tuple[int, int]]:
    """Every process on the machine: pid -> (parent pid, session id), from /proc."""
    out: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid pgrp session ...": comm may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] == "Z" and not zombies:
            continue  # a zombie holds nothing but its pid, until its parent reaps it
        out[int(entry.name)] = (int(fields[1]), int(fields[3]))
    return out


@dataclass
class RayHead:
    """One running head: where to reach it, and how to stop it."""

    dashboard_url: str
    gcs_address: str
    temp_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    own_temp_dir: bool = False
    stopped: bool = field(default=False, init=False)

    @property
    def session(self) -> int:
        return self.process.pid  # start_new_session: the session leader is ``ray start``

    def processes(self, *, zombies: bool = False) -> set[int]:
        """The head's live processes: its session, plus their descendants in other sessions."""
        table = _processes(zombies=zombies)
        children: dict[int, list[int]] = defaultdict(list)
        for pid, (ppid, _) in table.items():
            children[ppid].append(pid)
        found = {pid for pid, (_, sid) in table.items() if sid == self.session}
        stack = list(found)
        while stack:
            for child in children[stack.pop()]:
                if child not in found:
                    found.add(child)
                    stack.append(child)
        return found

    def stop(self) -> None:
        """Kill every process of this head; raise if any survives ``STOP_TIMEOUT_S``."""
        if self.stopped:
            return
        deadline = time.monotonic() + STOP_TIMEOUT_S
        self._signal({self.process.pid}, signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT_S)
        term_sent = False
        while True:
            alive = self.processes()
            if not alive:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"Ray head processes survived stop(): {sorted(alive)}")
            if not term_sent:
                self._signal(alive, signal.SIGTERM)
                term_sent = True
                grace_end = time.monotonic() + TERM_GRACE_S
                while self.processes() and time.monotonic() < grace_end:
                    time.sleep(0.1)
                continue
            self._signal(alive, signal.SIGKILL)
            time.sleep(0.1)
        # Orphans are reaped by PID 1, not always at once: wait a little so that a ``pgrep``
        # right after shows nothing (a zombie that stays holds no resource, only its pid).
        while self.processes(zombies=True) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.stopped = True
        if self.own_temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    @staticmethod
    def _signal(pids: set[int], sig: signal.Signals) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def __enter__(self) -> RayHead:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _stop_quietly(head: RayHead) -> None:
    with contextlib.suppress(Exception):
        head.stop()


def _head_env() -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in {"RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"}
    }
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    # Entrypoints run `python ...` from the head's PATH: make that the venv's (it has ray).
    env["PATH"] = f"{ray_cli().parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _wait_ready(head: RayHead, deadline: float) -> None:
    """Until the job API answers and the head node is ALIVE in the state API."""
    url = head.dashboard_url
    while True:
        if head.process.poll() is not None:
            raise RuntimeError(
                f"ray start exited with {head.process.returncode}; see {head.log_path}:\n"
                + head.log_path.read_text()[-3000:]
            )
        try:
            _get_json(f"{url}/api/jobs/")
            nodes = _get_json(f"{url}/api/v0/nodes?limit=10&detail=false")
            rows = nodes["data"]["result"]["result"]  # type: ignore[index]
            if any(row.get("state") == "ALIVE" for row in rows):
                return
        except (OSError, ValueError, KeyError, TypeError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"Ray head not ready in {START_TIMEOUT_S} s; see {head.log_path}")
        time.sleep(0.25)


def start_ray_head(
    tmp_dir: Path,
    resources: Mapping[str, float],
    *,
    num_cpus: int = 2,
) -> RayHead:
    """Start a head on 127.0.0.1 with custom ``resources``; return once its job API answers.

    Logs go to ``tmp_dir/ray-start.log``; Ray's own files to ``tmp_dir/ray`` (or, when that
    path is too long for Ray's Unix sockets, to a short temporary directory removed at stop).
    """
    cli = ray_cli()
    if not cli.exists():
        raise FileNotFoundError(f"no ray CLI at {cli}: pip install 'ray[default]'")
    tmp_dir.mkdir(parents=True, exist_ok=True)
    temp_dir, own = tmp_dir / "ray", False
    if len(str(temp_dir)) > MAX_TEMP_DIR_CHARS:
        temp_dir, own = Path(tempfile.mkdtemp(prefix="rayh-")), True
    temp_dir.mkdir(parents=True, exist_ok=True)
    gcs_port, dashboard_port = _free_port(), _free_port()
    args = [
        str(cli),
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--port={gcs_port}",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard_port}",
        # Every port Ray would otherwise take at a fixed default (52365, 10001, ...), so two
        # heads on one machine do not collide.
        f"--dashboard-agent-listen-port={_free_port()}",
        f"--dashboard-agent-grpc-port={_free_port()}",
        f"--runtime-env-agent-port={_free_port()}",
        f"--ray-client-server-port={_free_port()}",
        f"--metrics-export-port={_free_port()}",
        f"--node-manager-port={_free_port()}",
        f"--object-manager-port={_free_port()}",
        f"--num-cpus={num_cpus}",
        "--num-gpus=0",
        f"--resources={json.dumps(dict(resources))}",
        f"--object-store-memory={OBJECT_STORE_BYTES}",
        f"--temp-dir={temp_dir}",
        "--include-log-monitor=false",
        "--disable-usage-stats",
    ]
    log_path = tmp_dir / "ray-start.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_head_env(),
            start_new_session=True,
        )
    head = RayHead(
        dashboard_url=f"http://127.0.0.1:{dashboard_port}",
        gcs_address=f"127.0.0.1:{gcs_port}",
        temp_dir=temp_dir,
        log_path=log_path,
        process=process,
        own_temp_dir=own,
    )
    atexit.register(_stop_quietly, head)  # a backstop when the caller never gets to stop()
    try:
        _wait_ready(head, time.monotonic() + START_TIMEOUT_S)
        # Ray replaces 127.0.0.1 with the machine's address for the GCS; it writes the real one.
        written = temp_dir / "ray_current_cluster"
        if written.exists() and written.read_text().strip():
            head.gcs_address = written.read_text().strip()
    except BaseException:
        head.stop()
        raise
    return head


__all__ = ["RayHead", "ray_cli", "start_ray_head"]
