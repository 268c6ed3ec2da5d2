"""Integration fixtures: the hub on SQLite or PostgreSQL (``hub_url``), vdir environments."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.vdirenv import VdirEnv


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def hub_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same scenario on the embedded SQLite hub and on a PostgreSQL hub."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    url: str = request.getfixturevalue("pg_database")
    return url


@pytest.fixture
def make_env(tmp_path: Path, hub_url: str) -> Iterator[Callable[..., VdirEnv]]:
    envs: list[VdirEnv] = []

    def make(links: dict[str, dict[str, Any]] | None = None) -> VdirEnv:
        root = tmp_path / f"env{len(envs)}"
        root.mkdir()
        env = VdirEnv(root, hub_url, links)
        envs.append(env)
        return env

    yield make
    for e in envs:
        e.close()


@pytest.fixture
def env(make_env: Callable[..., VdirEnv]) -> VdirEnv:
    """Folders ``a`` and ``b`` linked two-way through the hub (authority hub)."""
    return make_env()
