"""The PostgreSQL fixtures give a reachable server and an isolated database per test."""

from __future__ import annotations

import psycopg


def test_pg_database_is_fresh_and_writable(pg_database: str) -> None:
    assert "127.0.0.1" in pg_database
    with psycopg.connect(pg_database, autocommit=True) as conn:
        n = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        assert n is not None and n[0] == 0
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
        row = conn.execute("SELECT x FROM t").fetchone()
        assert row == (1,)
