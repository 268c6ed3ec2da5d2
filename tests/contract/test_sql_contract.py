"""The connector contract for the practice-database link, on a real SQLite file and on the
real PostgreSQL server started by the test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from concord.connectors.base import Item
from concord.connectors.sql import SQLConnector, SQLOptions
from concord.demo.sample import create_sample, default_mapping
from tests.contract.base import ConnectorContract


def _empty_practice(url: str) -> SQLConnector:
    create_sample(url, clients_n=0)
    conn = SQLConnector(SQLOptions(url=url, mapping=default_mapping()), link="practice")
    conn.install()
    return conn


def _contact(n: int) -> Item:
    return Item(ref="", version="", fields={
        "first_name": f"Ada{n}", "last_name": f"Lovelace{n}", "email": f"ada{n}@example.com",
        "phone": f"+61 2 9000 {n:04d}", "position": "Director" if n % 2 else None,
    }, refs={"client": None})


class _Base(ConnectorContract):
    @pytest.fixture
    def entity(self) -> str:
        return "contact"

    @pytest.fixture
    def make_item(self):  # type: ignore[no-untyped-def]
        return _contact


class TestSQLiteContract(_Base):
    @pytest.fixture
    def connector(self, tmp_path) -> Iterator[SQLConnector]:  # type: ignore[no-untyped-def]
        conn = _empty_practice(f"sqlite:///{tmp_path / 'practice.db'}")
        yield conn
        conn.close()


@pytest.mark.postgres
class TestPostgresContract(_Base):
    @pytest.fixture
    def connector(self, pg_database: str) -> Iterator[SQLConnector]:
        conn = _empty_practice(pg_database)
        yield conn
        conn.close()
