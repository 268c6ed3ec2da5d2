"""Radicale and Xandikos test server fixtures (session-scoped, loopback).

Each server is started once per session on 127.0.0.1 and a free port, from the
Python that runs the tests, and stopped by PID at the end. Radicale runs with
htpasswd auth so Basic auth is exercised; Xandikos runs without auth. Tests get a
fresh, empty collection each (a new MKCOL'd path), never a shared one.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest


@dataclass(frozen=True)
class DavServer:
    """A running DAV server: its base URL, credentials and where its collections live."""

    kind: str  # "radicale" | "xandikos"
    url: str  # base URL, no trailing slash
    username: str | None
    password: str | None
    principal: str  # path of the user's principal, e.g. "/alice/"
    home: str  # path under which tests make their collections
    pid: int
    data_dir: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def auth(self) -> tuple[str, str] | None:
        if self.username is None or self.password is None:
            return None
        return (self.username, self.password)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=self.auth, timeout=30.0)

    def new_collection(self, kind: str) -> str:
        """Create an empty address book (``kind="addressbook"``) or calendar
        (``kind="calendar"``) with extended MKCOL; returns its absolute URL."""
        home = self.extra.get(f"{kind}_home", self.home)
        path = f"{home}{kind}-{uuid.uuid4().hex[:12]}/"
        if kind == "addressbook":
            rtype = '<resourcetype><collection/><CR:addressbook/></resourcetype>'
            comps = ""
        else:
            rtype = '<resourcetype><collection/><C:calendar/></resourcetype>'
            comps = ('<C:supported-calendar-component-set><C:comp name="VTODO"/>'
                     '<C:comp name="VEVENT"/></C:supported-calendar-component-set>')
        body = ('<?xml version="1.0" encoding="utf-8"?>'
                '<mkcol xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" '
                'xmlns:CR="urn:ietf:params:xml:ns:carddav"><set><prop>'
                f'{rtype}<displayname>test {kind}</displayname>{comps}'
                '</prop></set></mkcol>')
        with self.client() as c:
            r = c.request("MKCOL", path, content=body,
                          headers={"Content-Type": "application/xml; charset=utf-8"})
            assert r.status_code in (201, 200), f"MKCOL {path}: {r.status_code} {r.text[:300]}"
        return self.url + path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start: {log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


S = TypeVar("S")


@contextmanager
def served(prefix: str, start: Callable[..., tuple[subprocess.Popen[bytes], S]],
           **options: Any) -> Iterator[S]:
    """A server started in a fresh temporary folder, stopped by PID and its folder removed
    afterwards."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    proc, server = start(base, **options)
    try:
        yield server
    finally:
        stop(proc)
        shutil.rmtree(base, ignore_errors=True)


def start_radicale(base: Path, user: str = "alice", password: str = "secret") -> tuple[
        subprocess.Popen[bytes], DavServer]:
    port = free_port()
    (base / "collections").mkdir(parents=True, exist_ok=True)
    (base / "users").write_text(f"{user}:{password}\n")
    (base / "config").write_text(
        "[server]\n"
        f"hosts = 127.0.0.1:{port}\n"
        "max_content_length = 1000000000\n"
        "[auth]\ntype = htpasswd\n"
        f"htpasswd_filename = {base / 'users'}\n"
        "htpasswd_encryption = plain\n"
        "[storage]\n"
        f"filesystem_folder = {base / 'collections'}\n"
        "[rights]\ntype = owner_only\n"
        "[logging]\nlevel = warning\n"
    )
    log = base / "log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "radicale", "--config", str(base / "config")],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    wait_for_port(port, proc, log)
    server = DavServer("radicale", f"http://127.0.0.1:{port}", user, password,
                       f"/{user}/", f"/{user}/", proc.pid, base)
    return proc, server


def start_xandikos(base: Path) -> tuple[subprocess.Popen[bytes], DavServer]:
    port = free_port()
    exe = shutil.which("xandikos", path=os.path.dirname(sys.executable)) or "xandikos"
    log = base / "log"
    proc = subprocess.Popen(
        [exe, "serve", "-d", str(base / "data"), "--defaults", "-l", "127.0.0.1",
         "-p", str(port), "--state-dir", str(base / "state")],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    wait_for_port(port, proc, log)
    server = DavServer("xandikos", f"http://127.0.0.1:{port}", None, None,
                       "/user/", "/user/calendars/", proc.pid, base,
                       {"addressbook_home": "/user/contacts/"})
    return proc, server


@pytest.fixture(scope="session")
def radicale_server() -> Iterator[DavServer]:
    with served("concord-radicale-", start_radicale) as server:
        yield server


@pytest.fixture(scope="session")
def xandikos_server() -> Iterator[DavServer]:
    with served("concord-xandikos-", start_xandikos) as server:
        yield server


@pytest.fixture(params=["radicale", "xandikos"])
def dav_server(request: pytest.FixtureRequest) -> DavServer:
    """Each DAV server in turn."""
    server: DavServer = request.getfixturevalue(f"{request.param}_server")
    return server


@pytest.fixture
def radicale_addressbook(radicale_server: DavServer) -> str:
    return radicale_server.new_collection("addressbook")


@pytest.fixture
def radicale_calendar(radicale_server: DavServer) -> str:
    return radicale_server.new_collection("calendar")


@pytest.fixture
def xandikos_addressbook(xandikos_server: DavServer) -> str:
    return xandikos_server.new_collection("addressbook")


@pytest.fixture
def xandikos_calendar(xandikos_server: DavServer) -> str:
    return xandikos_server.new_collection("calendar")
