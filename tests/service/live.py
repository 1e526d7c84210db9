"""A real Isthmus server for client tests: the service on the default topology (every site
simulated, fast), its control loop running, the API served by uvicorn on 127.0.0.1.

    with live_service(tmp_path, simulated_speedup=3600) as live:
        client = Client(live.url, live.acme_token)

``config_overrides`` replace keys of the service configuration (policies/service/local.yaml,
with its paths made absolute); by default an hour of simulated work takes 0.1 s and the loop
runs every 0.2 s.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml

from scheduler.api import create_app
from scheduler.service.config import load_config
from scheduler.service.service import Service

ROOT = Path(__file__).resolve().parents[2]
LOCAL_CONFIG = ROOT / "policies" / "service" / "local.yaml"

OPERATOR_TOKEN = "local-operator-token-0001"
ACME_TOKEN = "local-acme-token-000000001"
BETA_TOKEN = "local-beta-token-000000001"

FAST: dict[str, Any] = {"simulated_speedup": 36_000, "cycle_s": 0.2}


@dataclass(frozen=True)
class LiveService:
    url: str
    service: Service
    config_path: Path
    operator_token: str = OPERATOR_TOKEN
    acme_token: str = ACME_TOKEN
    beta_token: str = BETA_TOKEN


def write_config(tmp_path: Path, **overrides: Any) -> Path:
    """The local configuration with absolute paths, a database in ``tmp_path`` and
    ``overrides`` applied; returns the file written."""
    doc = yaml.safe_load(LOCAL_CONFIG.read_text())
    for key in ("topology", "policy"):
        doc[key] = str((LOCAL_CONFIG.parent / doc[key]).resolve())
    doc["database"] = f"sqlite:///{tmp_path / 'isthmus.db'}"
    doc.update(FAST)
    doc.update(overrides)
    path = tmp_path / "isthmus.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def live_service(tmp_path: Path, **config_overrides: Any) -> Iterator[LiveService]:
    """Start the service and its API; stop both (and the loop thread) on exit."""
    config_path = write_config(tmp_path, **config_overrides)
    service = Service.from_config(load_config(config_path))
    sock = _listening_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(service), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name=f"uvicorn-{port}", daemon=True)
    url = f"http://127.0.0.1:{port}"
    service.start()
    thread.start()
    try:
        _wait_until_up(url, thread)
        yield LiveService(url=url, service=service, config_path=config_path)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        service.stop()


def _wait_until_up(url: str, thread: threading.Thread, timeout_s: float = 15.0) -> None:
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        if not thread.is_alive():
            raise RuntimeError("the API server thread exited during start-up")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"the API server at {url} did not answer /healthz in {timeout_s} s")


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (a port bound then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


__all__ = [
    "ACME_TOKEN",
    "BETA_TOKEN",
    "OPERATOR_TOKEN",
    "LiveService",
    "closed_port_url",
    "live_service",
    "write_config",
]
