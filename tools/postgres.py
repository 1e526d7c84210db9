#!/usr/bin/env python3
"""Make sure the PostgreSQL server binaries the store tests need are on this machine.

    python tools/postgres.py install    # find initdb/pg_ctl/postgres; apt-get install when absent
    python tools/postgres.py bin-dir    # print the directory holding them (exit 1 when absent)

``install`` is idempotent: when the binaries are found (tests/postgres.py ``find_bin_dir``) it
only prints where. Otherwise, as root on a Debian machine, it runs ``apt-get update`` and
``apt-get install -y --no-install-recommends postgresql`` (postgresql-common first, so that the
package's automatic "main" cluster can be switched off: the tests start their own private server
and never use the Debian cluster service). Not root: one line saying what to run, exit 2.
ISTHMUS_SKIP_POSTGRES=1 makes ``install`` a no-op.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.postgres import find_bin_dir, is_root  # noqa: E402

SKIP_ENV = "ISTHMUS_SKIP_POSTGRES"
APT_INSTALL = "apt-get update && apt-get install -y --no-install-recommends postgresql"
CREATECLUSTER_CONF = Path("/etc/postgresql-common/createcluster.conf")
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
APT_OPTIONS = ["-o", "DPkg::Lock::Timeout=300"]  # wait for a concurrent apt/dpkg, not fail


def fail(message: str, code: int) -> int:
    print(f"postgres: {message}", file=sys.stderr, flush=True)
    return code


def run(cmd: Sequence[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, env={**os.environ, **APT_ENV}, stdin=subprocess.DEVNULL, check=True)


def disable_main_cluster() -> None:
    """``create_main_cluster = false`` in postgresql-common's createcluster.conf, so installing
    the server package does not initdb (and, without a policy-rc.d, start) a cluster on :5432."""
    if not CREATECLUSTER_CONF.exists():
        return
    conf = CREATECLUSTER_CONF.read_text()
    setting = re.compile(r"^\s*#?\s*create_main_cluster\s*=.*$", re.M)
    line = "create_main_cluster = false"
    new = setting.sub(line, conf, count=1) if setting.search(conf) else f"{conf}\n{line}\n"
    if new != conf:
        CREATECLUSTER_CONF.write_text(new)
        print(f"postgres: {line} in {CREATECLUSTER_CONF}", flush=True)


def install() -> int:
    if os.environ.get(SKIP_ENV):
        print(f"postgres: skipped ({SKIP_ENV})", flush=True)
        return 0
    found = find_bin_dir()
    if found is not None:
        print(f"postgres: server binaries in {found}", flush=True)
        return 0
    if not is_root():
        return fail(
            f"PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; as root run "
            f"`{APT_INSTALL}` (or `sudo make postgres`)",
            2,
        )
    if shutil.which("apt-get") is None:
        return fail(
            "PostgreSQL server binaries not found and there is no apt-get here: install the "
            "PostgreSQL server (initdb, pg_ctl, postgres) and set ISTHMUS_POSTGRES_BIN_DIR "
            "if pg_config cannot find it",
            2,
        )
    started = time.monotonic()
    try:
        run(["apt-get", *APT_OPTIONS, "update"])
        install_cmd = ["apt-get", *APT_OPTIONS, "install", "-y", "--no-install-recommends"]
        run([*install_cmd, "postgresql-common"])
        disable_main_cluster()
        run([*install_cmd, "postgresql"])
    except (OSError, subprocess.CalledProcessError) as exc:
        return fail(f"installing Debian's postgresql package failed: {exc}", 1)
    found = find_bin_dir()
    if found is None:
        return fail("postgresql is installed but initdb, pg_ctl, postgres are still not found", 1)
    print(
        f"postgres: installed in {time.monotonic() - started:.0f}s; server binaries in {found}",
        flush=True,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="PostgreSQL server binaries for the tests")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("install", help="find the server binaries, apt-get install them when absent")
    sub.add_parser("bin-dir", help="print the directory holding the server binaries")
    args = parser.parse_args(argv)
    if args.command == "install":
        return install()
    found = find_bin_dir()
    if found is None:
        return fail("PostgreSQL server binaries not found: run `make postgres`", 1)
    print(found)
    return 0


if __name__ == "__main__":
    sys.exit(main())
