"""Change capture in the practice database: a changelog table filled by triggers.

Every insert, update and delete on a mapped table (and on its custom-field and list tables,
logged under the owner's key) writes ``(entity, row key, op)`` into ``concord_changelog``,
including edits made while the first migration runs. Concord's own writes are logged too
(the changelog tells the truth), but come back at exactly the version Concord recorded for
them, so the engine sees nothing to do: they are not echoed back. While Concord writes, its
transaction holds a row in ``concord_writer`` that only it can see; PostgreSQL's triggers
send no NOTIFY while it is visible, so Concord's own writes do not wake it. ``concord_ids`` remembers the ident
Concord chose for each row it created, so a create whose answer was lost is found again.

The dialect-specific parts (trigger DDL, the change token, the wake-up) live here and only
here. PostgreSQL reads below the oldest running transaction (``txid_snapshot_xmin``), so a
change committed out of order is never skipped. SQLite has one writer at a time, so the
changelog's sequence is in commit order. ``MSSQLCapture`` is the path SQL Server takes.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

CHANNEL = "concord_changes"
CHANGELOG, WRITER, IDS = "concord_changelog", "concord_writer", "concord_ids"


def capture_tables(dialect: str) -> tuple[sa.MetaData, sa.Table, sa.Table, sa.Table]:
    md = sa.MetaData()
    cols: list[Any] = [
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("row_key", sa.String(400)),
        sa.Column("op", sa.String(1), nullable=False),
    ]
    if dialect == "postgresql":
        cols.append(sa.Column("txid", sa.BigInteger, nullable=False,
                              server_default=sa.text("txid_current()")))
    # AUTOINCREMENT: SQLite must never hand out a pruned sequence number again
    changelog = sa.Table(CHANGELOG, md, *cols, sa.Index("concord_changelog_entity", "entity",
                                                        "txid" if dialect == "postgresql" else "seq"),
                         sqlite_autoincrement=True)
    writer = sa.Table(WRITER, md, sa.Column("marker", sa.String(32), primary_key=True))
    ids = sa.Table(IDS, md,
                   sa.Column("entity", sa.String(32), primary_key=True),
                   sa.Column("ident", sa.String(128), primary_key=True),
                   sa.Column("row_key", sa.String(400), nullable=False),
                   sa.Index("concord_ids_row", "entity", "row_key"))
    return md, changelog, writer, ids


def _q(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unsupported SQL identifier {name!r}: use letters, digits and _")
    return f'"{name}"'


class Capture:
    """Base: the changelog is read by sequence. Subclasses give trigger DDL and wake-ups."""

    dialect = "generic"
    #: seconds between wake-up polls unless the link sets ``poll_interval``
    default_poll = 0.1

    def __init__(self, engine: Engine, poll_interval: float = 0.1) -> None:
        self.engine = engine
        self.poll_interval = poll_interval
        self._last_seen: Any = None

    def trigger_name(self, table: str, entity: str) -> str:
        return f"concord_cap_{table}_{entity}"

    def create_triggers(self, conn: Connection, table: str, entity: str, key: str) -> None:
        raise NotImplementedError

    def drop_triggers(self, conn: Connection, table: str, entity: str) -> None:
        raise NotImplementedError

    def installed_triggers(self, conn: Connection) -> set[str]:
        raise NotImplementedError

    # -- tokens ------------------------------------------------------------------
    def current_token(self, conn: Connection, entity: str) -> str:
        n = conn.execute(sa.text(f"SELECT max(seq) FROM {CHANGELOG}")).scalar()
        return str(n or 0)

    def read(self, conn: Connection, entity: str, token: str) -> tuple[set[str], str]:
        rows = conn.execute(
            sa.text(f"SELECT seq, row_key FROM {CHANGELOG} WHERE entity = :e AND seq > :s"),
            {"e": entity, "s": int(token)},
        ).all()
        last = max((r[0] for r in rows), default=int(token))
        return {r[1] for r in rows if r[1] is not None}, str(last)

    covered = "seq <= :t"  # the changelog entries a token has covered

    def prunable(self, conn: Connection, entity: str, token: str) -> bool:
        return conn.execute(sa.text(
            f"SELECT 1 FROM {CHANGELOG} WHERE entity = :e AND {self.covered} LIMIT 1"),
            {"e": entity, "t": int(token)}).first() is not None

    def prune(self, conn: Connection, entity: str, token: str) -> int:
        """Drop the entries a committed checkpoint has covered; returns how many."""
        res = conn.execute(sa.text(f"DELETE FROM {CHANGELOG} WHERE entity = :e AND {self.covered}"),
                           {"e": entity, "t": int(token)})
        return int(res.rowcount or 0)

    # -- waking ------------------------------------------------------------------
    def wait(self, timeout: float) -> bool:
        """Poll the changelog's head: the generic wake-up for databases with no notification."""
        deadline = time.monotonic() + timeout
        while True:
            with self.engine.connect() as conn:
                head = conn.execute(sa.text(f"SELECT max(seq) FROM {CHANGELOG}")).scalar()
            if self._last_seen is not None and head != self._last_seen:
                self._last_seen = head
                return True
            self._last_seen = head
            if time.monotonic() >= deadline:
                return False
            time.sleep(self.poll_interval)

    def close(self) -> None:
        pass


class SQLiteCapture(Capture):
    dialect = "sqlite"
    # ``PRAGMA data_version`` reads the file's change counter (no query plan, no table): at
    # 50 polls a second a committed change waits 10 ms on average instead of 50
    default_poll = 0.02

    def __init__(self, engine: Engine, poll_interval: float = 0.1) -> None:
        super().__init__(engine, poll_interval)
        self._watch: sqlite3.Connection | None = None

    def create_triggers(self, conn: Connection, table: str, entity: str, key: str) -> None:
        t, k, name = _q(table), _q(key), self.trigger_name(table, entity)
        log = f"INSERT INTO {CHANGELOG}(entity, row_key, op) VALUES ('{entity}', "
        conn.execute(sa.text(
            f"CREATE TRIGGER {name}_i AFTER INSERT ON {t} "
            f"BEGIN {log}NEW.{k}, 'I'); END"))
        conn.execute(sa.text(
            f"CREATE TRIGGER {name}_u AFTER UPDATE ON {t} "
            f"BEGIN {log}NEW.{k}, 'U'); "
            f"INSERT INTO {CHANGELOG}(entity, row_key, op) SELECT '{entity}', OLD.{k}, 'U' "
            f"WHERE OLD.{k} IS NOT NEW.{k}; END"))
        conn.execute(sa.text(
            f"CREATE TRIGGER {name}_d AFTER DELETE ON {t} "
            f"BEGIN {log}OLD.{k}, 'D'); END"))

    def drop_triggers(self, conn: Connection, table: str, entity: str) -> None:
        name = self.trigger_name(table, entity)
        for op in "iud":
            conn.execute(sa.text(f"DROP TRIGGER IF EXISTS {name}_{op}"))

    def installed_triggers(self, conn: Connection) -> set[str]:
        rows = conn.execute(sa.text(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'concord_cap_%'"))
        return {r[0].rsplit("_", 1)[0] for r in rows}

    def wait(self, timeout: float) -> bool:
        """Poll ``PRAGMA data_version``: it moves when another connection commits."""
        if self._watch is None:
            path = self.engine.url.database or ""
            self._watch = sqlite3.connect(path, check_same_thread=False)
            self._last_seen = self._watch.execute("PRAGMA data_version").fetchone()[0]
        deadline = time.monotonic() + timeout
        while True:
            now = self._watch.execute("PRAGMA data_version").fetchone()[0]
            if now != self._last_seen:
                self._last_seen = now
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None


class PostgresCapture(Capture):
    dialect = "postgresql"

    def __init__(self, engine: Engine, poll_interval: float = 0.1) -> None:
        super().__init__(engine, poll_interval)
        self._listen: Any = None

    def create_triggers(self, conn: Connection, table: str, entity: str, key: str) -> None:
        t, k, name = _q(table), _q(key), self.trigger_name(table, entity)
        conn.execute(sa.text(f"""
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $concord$
BEGIN
  IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.{k} IS DISTINCT FROM NEW.{k}) THEN
    INSERT INTO {CHANGELOG}(entity, row_key, op) VALUES ('{entity}', OLD.{k}::text, left(TG_OP, 1));
  END IF;
  IF TG_OP <> 'DELETE' THEN
    INSERT INTO {CHANGELOG}(entity, row_key, op) VALUES ('{entity}', NEW.{k}::text, left(TG_OP, 1));
  END IF;
  IF NOT EXISTS (SELECT 1 FROM {WRITER}) THEN
    PERFORM pg_notify('{CHANNEL}', '{entity}');
  END IF;
  RETURN NULL;
END $concord$"""))
        conn.execute(sa.text(
            f"CREATE TRIGGER {name} AFTER INSERT OR UPDATE OR DELETE ON {t} "
            f"FOR EACH ROW EXECUTE FUNCTION {name}()"))

    def drop_triggers(self, conn: Connection, table: str, entity: str) -> None:
        name = self.trigger_name(table, entity)
        conn.execute(sa.text(f"DROP TRIGGER IF EXISTS {name} ON {_q(table)}"))
        conn.execute(sa.text(f"DROP FUNCTION IF EXISTS {name}()"))

    def installed_triggers(self, conn: Connection) -> set[str]:
        rows = conn.execute(sa.text(
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgname LIKE 'concord_cap_%'"))
        return {r[0] for r in rows}

    def current_token(self, conn: Connection, entity: str) -> str:
        return str(conn.execute(sa.text("SELECT txid_snapshot_xmin(txid_current_snapshot())")).scalar())

    def read(self, conn: Connection, entity: str, token: str) -> tuple[set[str], str]:
        """Everything logged by transactions at or above the previous horizon; the new
        token is this snapshot's horizon, so a transaction still running now (whatever
        its sequence) is read next time."""
        conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        horizon = self.current_token(conn, entity)
        rows = conn.execute(
            sa.text(f"SELECT DISTINCT row_key FROM {CHANGELOG} WHERE entity = :e AND txid >= :x"),
            {"e": entity, "x": int(token)},
        ).all()
        return {r[0] for r in rows if r[0] is not None}, horizon

    covered = "txid < :t"

    def wait(self, timeout: float) -> bool:
        """LISTEN on the channel the triggers NOTIFY: wakes as soon as a change commits."""
        import psycopg

        if self._listen is None:
            url = self.engine.url.set(drivername="postgresql")
            self._listen = psycopg.connect(url.render_as_string(hide_password=False),
                                           autocommit=True)
            self._listen.execute(f"LISTEN {CHANNEL}")
        woke = False
        for _ in self._listen.notifies(timeout=timeout, stop_after=1):
            woke = True
        if woke:  # drain what else is queued: one wake-up per burst
            for _ in self._listen.notifies(timeout=0.01):
                pass
        return woke

    def close(self) -> None:
        if self._listen is not None:
            with contextlib.suppress(Exception):
                self._listen.close()
            self._listen = None


class MSSQLCapture(Capture):
    """SQL Server: statement triggers over ``inserted``/``deleted``; polled wake-up.
    Readers should add a short settle window for concurrent writers (not yet tuned)."""

    dialect = "mssql"

    def create_triggers(self, conn: Connection, table: str, entity: str, key: str) -> None:
        name = self.trigger_name(table, entity)
        conn.execute(sa.text(f"""
CREATE TRIGGER {name} ON [{table}] AFTER INSERT, UPDATE, DELETE AS
BEGIN
  SET NOCOUNT ON;
  INSERT INTO {CHANGELOG}(entity, row_key, op) SELECT '{entity}', CAST([{key}] AS NVARCHAR(400)), 'U' FROM inserted;
  INSERT INTO {CHANGELOG}(entity, row_key, op) SELECT '{entity}', CAST([{key}] AS NVARCHAR(400)), 'D' FROM deleted;
END"""))

    def drop_triggers(self, conn: Connection, table: str, entity: str) -> None:
        name = self.trigger_name(table, entity)
        conn.execute(sa.text(f"DROP TRIGGER IF EXISTS {name}"))

    def installed_triggers(self, conn: Connection) -> set[str]:
        rows = conn.execute(sa.text("SELECT name FROM sys.triggers WHERE name LIKE 'concord_cap_%'"))
        return {r[0] for r in rows}


def capture_for(engine: Engine, poll_interval: float | None = None) -> Capture:
    kinds: dict[str, type[Capture]] = {"sqlite": SQLiteCapture, "postgresql": PostgresCapture,
                                       "mssql": MSSQLCapture}
    kind = kinds.get(engine.dialect.name, Capture)
    return kind(engine, poll_interval if poll_interval is not None else kind.default_poll)
