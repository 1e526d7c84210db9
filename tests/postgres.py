"""A private, throw-away PostgreSQL server for tests.

    server = start_postgres(Path("/tmp/some-empty-dir"))
    server.url                          # postgresql+psycopg://postgres@127.0.0.1:<port>/isthmus_test
    url = server.create_database("store_tests")   # a fresh, empty database
    server.stop()

The server runs from the machine's PostgreSQL binaries (``find_bin_dir()``:
$ISTHMUS_POSTGRES_BIN_DIR when set, else ``pg_config --bindir``, the newest
/usr/lib/postgresql/<major>/bin, ``initdb`` on PATH; ``make postgres`` / tools/postgres.py
installs Debian's ``postgresql`` package when they are missing). See docs/postgres.md.
It never touches the Debian-managed cluster: initdb writes a new cluster into ``base_dir/data``,
the server listens on 127.0.0.1 only on a free port, with trust authentication, its unix socket
in ``base_dir/socket``, fsync off and small shared_buffers. PostgreSQL refuses to run as root,
so when we are root every server command runs as the ``postgres`` system user (``runuser``)
and ``base_dir`` is handed to that user: ``base_dir`` and its parents must be traversable by it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
SUPERUSER = "postgres"
SYSTEM_USER = "postgres"  # the OS user the server runs as when we are root
DEFAULT_DATABASE = "isthmus_test"
REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres")
BIN_DIR_ENV = "ISTHMUS_POSTGRES_BIN_DIR"
DEBIAN_ROOT = Path("/usr/lib/postgresql")
START_TIMEOUT = 60  # seconds, for pg_ctl -w
PORT_ATTEMPTS = 3  # a free port can be taken by someone else before the server binds it
_DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes on Linux, with the trailing NUL


class PostgresError(RuntimeError):
    """The server could not be set up, started or stopped; the message says why."""


def find_bin_dir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, or None when they are absent.

    ``ISTHMUS_POSTGRES_BIN_DIR``, when set, is the only place looked at.
    """
    override = os.environ.get(BIN_DIR_ENV)
    candidates: list[Path] = [Path(override)] if override else _default_candidates()
    for bin_dir in candidates:
        if all(os.access(bin_dir / name, os.X_OK) for name in REQUIRED_BINARIES):
            return bin_dir
    return None


def _default_candidates() -> list[Path]:
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out:
                candidates.append(Path(out))
    if DEBIAN_ROOT.is_dir():
        majors = [p for p in DEBIAN_ROOT.iterdir() if re.fullmatch(r"\d+(\.\d+)?", p.name)]
        majors.sort(key=lambda p: tuple(int(x) for x in p.name.split(".")), reverse=True)
        candidates += [p / "bin" for p in majors]
    initdb = shutil.which("initdb")
    if initdb is not None:
        candidates.append(Path(initdb).resolve().parent)
    return candidates


def is_root() -> bool:
    return os.geteuid() == 0


def traversable_tmp_dir(prefix: str = "isthmus-pg-") -> Path:
    """A new directory under the system temp dir with mode 0755, for a server run as the
    postgres user (pytest's own temp dirs sit under a 0700 /tmp/pytest-of-root when we are
    root). The caller removes it."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _clean_env() -> dict[str, str]:
    """Our environment without PG* variables (PGDATA, PGHOST, PGOPTIONS... would leak in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


@dataclass
class PostgresServer:
    """A running private server; ``stop()`` ends it (also at interpreter exit, as a backstop)."""

    base_dir: Path
    bin_dir: Path
    port: int
    as_root: bool = field(repr=False)
    _stopped: bool = field(default=False, init=False, repr=False)

    host: str = HOST
    user: str = SUPERUSER
    database: str = DEFAULT_DATABASE

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "socket"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "postgres.log"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``isthmus_test`` database."""
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database ``name`` (lower-case letters, digits, _; at most 63
        characters; it must not exist yet) and return its SQLAlchemy URL."""
        if not _DB_NAME.fullmatch(name):
            raise ValueError(
                f"database name {name!r}: use lower-case letters, digits and _, at most 63"
            )
        import psycopg  # only the callers that create databases need the driver

        with psycopg.connect(
            host=self.host, port=self.port, user=self.user, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # name checked above
        return self.url_for(name)

    def stop(self) -> None:
        """``pg_ctl stop -m fast`` and wait; kill the postmaster if that did not end it.
        Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        pid = self._postmaster_pid()
        if pid is None:
            return
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            _run(
                self.as_root,
                [
                    str(self.bin_dir / "pg_ctl"),
                    "stop",
                    "-D",
                    str(self.data_dir),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    "30",
                ],
                cwd=self.base_dir,
                timeout=60,
            )
        if _alive(pid):  # pg_ctl failed or timed out: end it ourselves
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGQUIT)  # immediate shutdown
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                time.sleep(0.5)
        if _alive(pid):
            raise PostgresError(f"postgres (pid {pid}) in {self.data_dir} is still running")

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().splitlines()[0]
            return int(first)
        except (OSError, IndexError, ValueError):
            return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # An exited postmaster not reaped yet (a zombie, reparented to init) counts as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _run(
    as_root: bool, cmd: Sequence[str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a server command, as the postgres system user when we are root."""
    full = ["runuser", "-u", SYSTEM_USER, "--", *cmd] if as_root else list(cmd)
    return subprocess.run(
        full,
        cwd=cwd,
        env=_clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _check(proc: subprocess.CompletedProcess[str], what: str) -> None:
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip()
        raise PostgresError(f"{what} failed (exit {proc.returncode}): {output}")


def _write(path: Path, text: str, owner: tuple[int, int] | None) -> None:
    path.write_text(text)
    if owner is not None:
        os.chown(path, *owner)


def _config(port: int, socket_dir: Path) -> str:
    return "\n".join(
        [
            "# written by tests/postgres.py: a throw-away test server",
            f"listen_addresses = '{HOST}'",
            f"port = {port}",
            f"unix_socket_directories = '{socket_dir}'",
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
            "shared_buffers = 16MB",
            "max_connections = 50",
            "timezone = 'UTC'",
            "",
        ]
    )


HBA = f"""# written by tests/postgres.py: trust, on the unix socket and 127.0.0.1 only
local all         all               trust
host  all         all  {HOST}/32    trust
local replication all               trust
host  replication all  {HOST}/32    trust
"""


def _log_tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _start_on_free_port(
    base_dir: Path, bin_dir: Path, as_root: bool, owner: tuple[int, int] | None
) -> PostgresServer:
    data_dir, log_file = base_dir / "data", base_dir / "postgres.log"
    for attempt in range(1, PORT_ATTEMPTS + 1):
        port = free_port()
        _write(data_dir / "isthmus.conf", _config(port, base_dir / "socket"), owner)
        log_file.unlink(missing_ok=True)
        proc = _run(
            as_root,
            [
                str(bin_dir / "pg_ctl"),
                "start",
                "-D",
                str(data_dir),
                "-l",
                str(log_file),
                "-w",
                "-t",
                str(START_TIMEOUT),
            ],
            cwd=base_dir,
            timeout=START_TIMEOUT + 30,
        )
        server = PostgresServer(base_dir=base_dir, bin_dir=bin_dir, port=port, as_root=as_root)
        if proc.returncode == 0:
            return server
        server.stop()  # pg_ctl -w may give up while a postmaster still runs
        log = _log_tail(log_file)
        if "could not bind" not in log or attempt == PORT_ATTEMPTS:
            raise PostgresError(
                f"pg_ctl start failed (exit {proc.returncode}): "
                f"{(proc.stdout + proc.stderr).strip()}\n--- {log_file} ---\n{log}"
            )
        # somebody took the port between free_port() and the server binding it: try another
    raise AssertionError("unreachable")


def start_postgres(base_dir: Path, bin_dir: Path | None = None) -> PostgresServer:
    """initdb a new cluster into ``base_dir/data``, start it, create ``isthmus_test``.

    ``base_dir`` is created when missing and must not hold a ``data`` directory yet. Raises
    PostgresError (with the command's output or the server log) when anything fails; a server
    that was started is stopped again before raising.
    """
    bin_dir = bin_dir or find_bin_dir()
    if bin_dir is None:
        raise PostgresError(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: run `make postgres`"
        )
    base_dir = base_dir.resolve()
    as_root = is_root()
    base_dir.mkdir(parents=True, exist_ok=True)
    data_dir, socket_dir = base_dir / "data", base_dir / "socket"
    if data_dir.exists():
        raise PostgresError(f"{data_dir} exists already: give start_postgres an empty directory")
    if len(str(socket_dir / ".s.PGSQL.65535")) > _SOCKET_PATH_MAX:
        raise PostgresError(f"{base_dir} is too long for a unix socket path: use a shorter one")
    socket_dir.mkdir(exist_ok=True)

    owner: tuple[int, int] | None = None
    if as_root:
        try:
            entry = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise PostgresError(
                f"running as root but there is no {SYSTEM_USER!r} system user to run the server "
                "as (Debian's postgresql package creates it: run `make postgres`)"
            ) from None
        owner = (entry.pw_uid, entry.pw_gid)
        for path in (base_dir, socket_dir):
            os.chown(path, *owner)
        os.chmod(base_dir, 0o755)
        reach = _run(True, ["test", "-w", str(base_dir), "-a", "-x", str(base_dir)], cwd=Path("/"))
        if reach.returncode != 0:
            raise PostgresError(
                f"the {SYSTEM_USER} user cannot reach {base_dir}: a parent directory is not "
                "traversable by others (use a directory under /tmp created with mode 0755)"
            )

    _check(
        _run(
            as_root,
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            cwd=base_dir,
        ),
        "initdb",
    )
    _write(data_dir / "pg_hba.conf", HBA, owner)
    with (data_dir / "postgresql.conf").open("a") as conf:
        conf.write("\ninclude 'isthmus.conf'\n")

    server = _start_on_free_port(base_dir, bin_dir, as_root, owner)
    atexit.register(server.stop)
    try:
        server.create_database(DEFAULT_DATABASE)
    except Exception as exc:
        server.stop()
        raise PostgresError(f"creating {DEFAULT_DATABASE} failed: {exc}") from exc
    return server
