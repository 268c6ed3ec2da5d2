"""Fixtures for the service tests: a real hub (SQLite file, or PostgreSQL through the
``pg_database`` fixture), and the real service served by uvicorn on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from concord.config import from_dict
from concord.connectors.base import REGISTRY
from concord.hub.store import Hub
from concord.service.app import create_app
from concord.service.auth import create_token

REGISTRY.setdefault("test-rest", "tests.service.restspoke:RestConnector")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """A running service: its base URL, hub, app and tokens by role."""

    def __init__(self, app: Any, hub: Hub, cfg: Any) -> None:
        self.app, self.hub, self.cfg = app, hub, cfg
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.tokens: dict[str, str] = {}

    def start(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the service did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)

    @property
    def scheduler(self) -> Any:
        return self.app.state.concord.scheduler

    def token(self, *scopes: str) -> str:
        key = " ".join(scopes)
        if key not in self.tokens:
            self.tokens[key] = create_token(self.hub, f"user-{len(self.tokens)}", scopes)[1]
        return self.tokens[key]

    def client(self, *scopes: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token(*scopes)}"} if scopes else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def assert_backed_off(runs: list[dict[str, Any]], first: float) -> None:
    """Each failed run in ``runs`` (the journal's) started no sooner than its backoff
    (``first``, twice that, ...) after the failure before it: a lower bound, which a busy
    machine can only lengthen."""
    from concord.link.retry import backoff_delay

    spans = sorted((r["started_at"], r["finished_at"]) for r in runs)
    for k in range(1, len(spans)):
        waited = spans[k][0] - spans[k - 1][1]
        assert waited >= backoff_delay(k, first) - 0.005, (k, waited, spans)


def wait_for(pred: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def hub_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    return str(request.getfixturevalue("pg_database"))


def vdir_config(hub_url: str, folder: Path, **extra_links: Any) -> Any:
    folder.mkdir(parents=True, exist_ok=True)
    links = {"office": {"connector": "vdir", "options": {"path": str(folder)},
                        "entities": {"client": {"direction": "two-way"}}, "interval": 3600},
             **extra_links}
    return from_dict({"hub": {"url": hub_url}, "links": links})


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def make(cfg: Any, **kw: Any) -> Served:
        hub = Hub(cfg.hub.url, cfg.hub.tenant)
        app = create_app(cfg, hub=hub, **kw)
        s = Served(app, hub, cfg).start()
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()
        s.hub.close()


@pytest.fixture
def service(hub_url: str, make_service: Callable[..., Served], tmp_path: Path) -> Served:
    # hub_url first: its database outlives the service (fixtures are torn down in reverse).
    return make_service(vdir_config(hub_url, tmp_path / "office"))


def write_vcard(folder: Path, uid: str, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"{uid}.vcf"
    p.write_text(f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nEND:VCARD\r\n")
    return p
