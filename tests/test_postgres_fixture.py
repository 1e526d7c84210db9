"""The private PostgreSQL server the store tests run against (tests/postgres.py, conftest)."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.postgres import HOST, PostgresServer, is_root, start_postgres, traversable_tmp_dir


def _scalar(url: str, sql: str) -> object:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar_one()
    finally:
        engine.dispose()


def test_round_trip_through_sqlalchemy(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE jobs (id serial PRIMARY KEY, name text NOT NULL)"))
            conn.execute(
                text("INSERT INTO jobs (name) VALUES (:name)"),
                [{"name": "train-a"}, {"name": "train-b"}, {"name": "infer-c"}],
            )
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, name FROM jobs ORDER BY id")).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [(1, "train-a"), (2, "train-b"), (3, "infer-c")]


def test_default_database_and_url(postgres: PostgresServer) -> None:
    assert postgres.url == f"postgresql+psycopg://postgres@127.0.0.1:{postgres.port}/isthmus_test"
    assert _scalar(postgres.url, "SELECT current_database()") == "isthmus_test"
    assert _scalar(postgres.url, "SELECT current_user") == "postgres"


def test_it_is_postgresql(postgres: PostgresServer) -> None:
    version = _scalar(postgres.url, "SELECT version()")
    assert isinstance(version, str) and version.startswith("PostgreSQL "), version


def test_listens_on_loopback_only(postgres: PostgresServer) -> None:
    assert _scalar(postgres.url, "SHOW listen_addresses") == "127.0.0.1"
    assert _scalar(postgres.url, "SELECT host(inet_server_addr())") == "127.0.0.1"
    # The kernel's view: every listening TCP socket on the port is bound to 127.0.0.1.
    listening = _listening_addresses(postgres.port)
    if listening is not None:
        assert listening == {"127.0.0.1"}, listening


def test_test_server_settings(postgres: PostgresServer) -> None:
    assert _scalar(postgres.url, "SHOW fsync") == "off"
    socket_dir = _scalar(postgres.url, "SHOW unix_socket_directories")
    assert socket_dir == str(postgres.base_dir / "socket")


def test_databases_are_separate(postgres: PostgresServer) -> None:
    first = postgres.create_database("separate_a")
    second = postgres.create_database("separate_b")
    engine = create_engine(first)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE only_in_a (x int)"))
    finally:
        engine.dispose()
    assert _scalar(first, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'") == 1
    assert _scalar(second, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'") == 0


@pytest.mark.parametrize("name", ["", "Upper", "has-dash", "1digit", "x" * 64, 'a"; drop'])
def test_create_database_rejects_odd_names(postgres: PostgresServer, name: str) -> None:
    with pytest.raises(ValueError):
        postgres.create_database(name)


def test_stop_leaves_no_server(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    base = traversable_tmp_dir() if is_root() else tmp_path_factory.mktemp("pg-stop")
    try:
        server = start_postgres(base, postgres.bin_dir)
        pid = int((server.data_dir / "postmaster.pid").read_text().splitlines()[0])
        assert _scalar(server.url, "SELECT 1") == 1
        server.stop()
        server.stop()  # idempotent
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid)
        assert not (server.data_dir / "postmaster.pid").exists()
        assert not _accepts(server.port)
    finally:
        if is_root():
            shutil.rmtree(base, ignore_errors=True)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


def _listening_addresses(port: int) -> set[str] | None:
    """Local addresses of the sockets listening on ``port``, from /proc/net/tcp{,6}."""
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        return None
    found: set[str] = set()
    for table in tables:
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            address, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:  # 0A: LISTEN
                continue
            if len(address) == 8:  # IPv4, little-endian hex
                found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
            else:
                found.add(f"ipv6:{address}")
    return found
