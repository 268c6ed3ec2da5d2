"""PostgreSQL test server fixtures: one throwaway cluster per test session on 127.0.0.1.

The cluster lives in a temporary directory owned by the ``postgres`` system user (initdb
refuses to run as root), listens on a free loopback port with its socket in the same
directory, trusts local connections, and is stopped by ``pg_ctl stop`` (then by PID) at
the end of the session. ``pg_database`` gives each test its own fresh database.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SETUP_HINT = "run scripts/setup.sh (as root it installs the Debian package 'postgresql')"


def _pg_bin() -> Path:
    env = os.environ.get("CONCORD_PG_BIN")
    candidates = [env] if env else sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for cand in candidates:
        if cand and (Path(cand) / "initdb").exists() and (Path(cand) / "pg_ctl").exists():
            return Path(cand)
    pytest.fail(f"PostgreSQL server binaries (initdb, pg_ctl) not found: {SETUP_HINT}",
                pytrace=False)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(cmd: list[str]) -> list[str]:
    """Run as the ``postgres`` user when we are root; as ourselves otherwise."""
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail(f"no 'postgres' system user to run the test cluster: {SETUP_HINT}",
                        pytrace=False)
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def _run(cmd: list[str], what: str, log: Path | None = None) -> None:
    proc = subprocess.run(_as_postgres(cmd), capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        tail = log.read_text()[-2000:] if log and log.exists() else ""
        pytest.fail(f"PostgreSQL {what} failed ({proc.returncode}): {proc.stderr.strip()}\n{tail}",
                    pytrace=False)


@contextlib.contextmanager
def pg_cluster() -> Iterator[str]:
    """Start a throwaway cluster; yield its URL; stop it (also used by the benchmarks)."""
    bindir = _pg_bin()
    root = Path(tempfile.mkdtemp(prefix="concord-pg-"))
    data, log = root / "data", root / "log"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    _run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
          "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], "initdb")
    port = _free_port()
    opts = (f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
    _run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "start"],
         "start", log)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        stopped = subprocess.run(
            _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
            capture_output=True, timeout=60,
        ).returncode == 0
        pidfile = data / "postmaster.pid"
        if not stopped and pidfile.exists():
            with contextlib.suppress(ValueError, OSError):
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """``postgresql://postgres@127.0.0.1:PORT/postgres`` of a throwaway cluster."""
    with pg_cluster() as url:
        yield url


@pytest.fixture
def pg_database(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database per test; its URL. Dropped afterwards."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
