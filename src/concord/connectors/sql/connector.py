"""The practice-database connector: any SQLAlchemy database, described by a mapping.

Reads stream in key order (``scan``) so a first migration of a million rows holds one
batch in memory and resumes after the last committed key. Incremental reads come from the
trigger-filled changelog (``changes``), or, where triggers cannot be installed, from a
watermark column plus a key scan. Writes go through the same mapping, compare the row's
version under a row lock, and are invisible to the changelog, so they are not echoed back.
"""

from __future__ import annotations

import builtins
import contextlib
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError

from concord.connectors.base import (
    ActivationHooks,
    Capabilities,
    ChangeCapture,
    Changes,
    Connector,
    Item,
    ItemError,
    StreamedMigration,
    WriteOp,
    WriteResult,
    iter_chunks,
)
from concord.connectors.sql.capture import IDS, WRITER, Capture, capture_for, capture_tables
from concord.connectors.sql.options import CUSTOM_PREFIX, SQLOptions, sql_url
from concord.connectors.sql.reader import Reader
from concord.connectors.sql.rows import BadValue, Kind, to_field
from concord.connectors.sql.schema import Problems, Resolved, resolve
from concord.errors import (
    ConcordError,
    ConfigError,
    ItemInvalid,
    TerminalError,
    TransientError,
)
from concord.records import ENTITY_TYPES

_BOOL = Kind("bool")


def make_engine(url: str, *, immediate: bool = False) -> Engine:
    """An engine for the practice database. On SQLite, ``immediate`` takes the write lock
    at BEGIN, so a version check and the write that follows it cannot be interleaved."""
    url = sql_url(url)
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _rec: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (savepoints work)
        dbapi_conn.execute("PRAGMA busy_timeout = 30000")

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


URL_FIX = ("give a SQLAlchemy database URL, e.g. sqlite:///practice.db (a path relative to "
           "concord.toml) or postgresql://user@host/practice")

#: drivers for the dialects a practice database is likely to use, and how to install them
DRIVERS = {"mysql": "pip install pymysql and write mysql+pymysql://…",
           "mariadb": "pip install pymysql and write mariadb+pymysql://…",
           "mssql": "pip install pyodbc and write mssql+pyodbc://…",
           "oracle": "pip install oracledb and write oracle+oracledb://…",
           "postgresql": "pip install 'psycopg[binary]' (postgresql:// uses psycopg 3)"}


def _shown(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def _bad_url(url: str, link: str, why: str, fix: str = URL_FIX) -> ConfigError:
    return ConfigError(f"the practice database URL {_shown(url)!r}: {why}",
                       source=f"link {link!r}", key="options.url", fix=fix)


def check_url(url: str, link: str = "") -> None:
    """Refuse a practice-database URL that cannot work, before anything is opened: one
    clear error naming the key, the value and the fix. A SQLite file that does not exist is
    refused too: Concord never creates the practice database."""
    try:
        parsed = sa.engine.make_url(sql_url(url))
    except sa.exc.ArgumentError:
        raise _bad_url(url, link, "this is not a database URL") from None
    try:
        dialect = parsed.get_dialect()
    except sa.exc.NoSuchModuleError:
        raise _bad_url(url, link, f"no database kind {parsed.get_backend_name()!r} is known"
                       ) from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        backend = parsed.get_backend_name()
        raise _bad_url(url, link, f"the driver for {backend} is not installed ({exc})",
                       DRIVERS.get(backend, f"install the Python driver for {backend}, "
                                            "or name one in the URL (dialect+driver://…)")
                       ) from None
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database or ""
        if db in ("", ":memory:") or db.startswith("file:"):  # in memory, or a URI's options
            return
        from pathlib import Path

        if not Path(db).is_file():
            raise _bad_url(url, link, f"the file {str(Path(db).absolute())!r} does not exist "
                           "(Concord never creates the practice database)",
                           "correct the path (a relative path in concord.toml is taken from "
                           "the directory of concord.toml)")

#: seconds between two prunings of one entity's changelog entries by a connector kept open
PRUNE_EVERY = 60.0
#: the items a change read keeps for the run's read of them (about a MB per thousand)
RECENT = 2000


class SQLConnector(Connector, StreamedMigration, ChangeCapture, ActivationHooks):
    name = "sql"
    capabilities: ClassVar[Capabilities] = Capabilities(
        entities=ENTITY_TYPES, notifies=True, concurrent_reads=True)
    Options = SQLOptions

    def __init__(self, options: SQLOptions, *, link: str = "") -> None:  # type: ignore[override]
        super().__init__(options, link=link)
        self.opts = options
        url = options.url.get_secret_value()
        check_url(url, link)
        try:
            self.engine = make_engine(url)
        except (ImportError, sa.exc.ArgumentError) as exc:  # checked above; in case
            raise _bad_url(url, link, f"it cannot be opened ({exc})") from exc
        self.wengine = make_engine(url, immediate=True) if self.engine.dialect.name == "sqlite" \
            else self.engine
        self.capture: Capture = capture_for(self.engine, options.poll_interval)
        self._resolved: dict[str, Resolved] | None = None
        self._readers: dict[str, Reader] = {}
        self._pruned_at: dict[str, float] = {}  # entity -> when its changelog was last pruned
        self._has_capture: bool | None = None
        #: (entity, ref) -> the item ``changes`` read for its version, for the ``get`` of
        #: the run that follows (each served once; at most RECENT kept)
        self._recent: dict[tuple[str, str], Item | ItemError] = {}

    # -- plumbing ------------------------------------------------------------------
    @property
    def read_only(self) -> bool:
        """Read-only by option, and always in watermark mode: without the changelog's
        writer marker Concord's own writes would come back as changes."""
        return self.opts.read_only or self.opts.capture == "watermark"

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def resolved(self) -> dict[str, Resolved]:
        if self._resolved is None:
            try:
                self._resolved = resolve(self.engine, self.opts)
            except Problems as exc:
                raise ConfigError("; ".join(exc.problems), source=f"link {self.link!r}",
                                  key="options.mapping") from exc
            except (OperationalError, DBAPIError) as exc:
                raise TransientError(f"cannot reach the practice database {self.safe_url}: "
                                     f"{exc.orig}") from exc
        return self._resolved

    def _res(self, entity: str) -> Resolved:
        try:
            return self.resolved()[entity]
        except KeyError:
            raise ConfigError(f"entity {entity!r} is not mapped", source=f"link {self.link!r}",
                              key=f"options.mapping.{entity}",
                              fix="add a table mapping for it or remove it from the link") from None

    def has_capture(self) -> bool:
        if self._has_capture is None:
            self._has_capture = sa.inspect(self.engine).has_table(IDS)
        return self._has_capture

    def reader(self, entity: str) -> Reader:
        if entity not in self._readers:
            self._readers[entity] = Reader(
                self._res(entity), watermark_versions=self.opts.capture == "watermark",
                has_ids=self.has_capture())
        return self._readers[entity]

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except (OperationalError, DBAPIError) as exc:
            raise TransientError(f"practice database {self.safe_url}: {exc.orig}") from exc

    # -- reading -------------------------------------------------------------------
    def fields(self, entity: str) -> tuple[str, ...]:
        res = self._res(entity)
        names = list(res.cols) + list(res.lists)
        if res.custom is not None:
            cf = res.custom
            with self._read() as conn:
                rows = conn.execute(sa.text(
                    f'SELECT "{cf.definition_name}" FROM "{cf.definitions}" '
                    f'ORDER BY "{cf.definition_name}"')).all()
            names += [CUSTOM_PREFIX + str(r[0]) for r in rows]
        return tuple(names)

    def field_shapes(self, entity: str) -> dict[str, str]:
        res = self._res(entity)
        out = {f: kind.name for f, (_col, kind) in res.cols.items()}
        out.update({f: "list" for f in res.lists})
        out.update({f: "custom" for f in self.fields(entity) if f.startswith(CUSTOM_PREFIX)})
        return out

    def ref_fields(self, entity: str) -> dict[str, str]:
        return {f: r.entity for f, r in self._res(entity).refs.items()}

    def scan(self, entity: str, after: str | None = None,
             batch: int = 2000) -> Iterator[list[Item | ItemError]]:
        """Every item in key order, ``batch`` at a time, starting after key ``after``."""
        rd = self.reader(entity)
        pos = rd.res.key_value(after) if after is not None else None
        while True:
            with self._read() as conn:
                items = rd.after(conn, pos, batch)
            if not items:
                return
            yield items
            if len(items) < batch:
                return
            pos = rd.res.key_value(items[-1].ref)

    def bounds(self, entity: str, after: str | None, batch: int) -> Iterator[str]:
        """Every ``batch``-th key after ``after``: one keys-only pass over the key's index,
        numbered by the database (a window function), so only the cuts come back."""
        rd = self.reader(entity)
        pos = rd.res.key_value(after) if after is not None else None
        with self._read() as conn:
            cuts = [str(k) for k in rd.every(conn, pos, batch)]
        yield from cuts

    def scan_range(self, entity: str, after: str | None,
                   upto: str | None) -> builtins.list[Item | ItemError]:
        rd = self.reader(entity)
        lo = rd.res.key_value(after) if after is not None else None
        hi = rd.res.key_value(upto) if upto is not None else None
        with self._read() as conn:
            return rd.between(conn, lo, hi)

    def count(self, entity: str) -> int:
        """Rows to migrate: the progress bar's total and its ETA."""
        res = self._res(entity)
        with self._read() as conn:
            n = conn.execute(sa.select(sa.func.count()).select_from(
                sa.table(res.spec.table))).scalar()
        return int(n or 0)

    def list(self, entity: str) -> Iterable[tuple[str, str]]:
        rd = self.reader(entity)
        if self.opts.capture == "watermark":
            pos: Any = None
            while True:
                with self._read() as conn:
                    page = rd.versions(conn, pos, 20000)
                yield from page
                if len(page) < 20000:
                    return
                pos = rd.res.key_value(page[-1][0])
        for items in self.scan(entity, batch=5000):
            for it in items:
                yield (it.ref, it.version if isinstance(it, Item) else "invalid")

    def get(self, entity: str, refs: Sequence[str]) -> Iterable[Item | ItemError]:
        recent = self._recent
        kept = {r: it for r in refs if (it := recent.pop((entity, r), None)) is not None} \
            if recent else {}
        if not kept:
            yield from self._get(entity, refs)
            return
        # read by ``changes`` just now (after its change token was taken: a later edit is the
        # next run's); the rest is read, and every item comes out in the order asked for
        read = {it.ref: it for it in self._get(entity, [r for r in refs if r not in kept])}
        for r in refs:
            it = kept.get(r) or read.get(r)
            if it is not None:
                yield it

    def _get(self, entity: str, refs: Sequence[str]) -> Iterable[Item | ItemError]:
        rd = self.reader(entity)
        keys = []
        for r in refs:
            with contextlib.suppress(ValueError):
                keys.append(rd.res.key_value(r))
        for chunk in iter_chunks(keys, 500):
            with self._read() as conn:
                yield from rd.by_keys(conn, chunk)

    def current_token(self, entity: str) -> str | None:
        """The change token as of now; taken before a first migration's scan, so edits
        made while it runs are read afterwards."""
        if self.opts.capture == "watermark":
            return None
        self._require_capture()
        with self._read() as conn:
            token: str = self.capture.current_token(conn, entity)
            return token

    def changes(self, entity: str, token: str | None) -> Changes:
        if self.opts.capture == "watermark" or token is None:
            start = self.current_token(entity)
            return Changes(changed=dict(self.list(entity)), token=start, complete=True)
        self._require_capture()
        rd = self.reader(entity)
        # pruning is a write transaction in the practice database (a commit, an fsync): a
        # live link does it at most every PRUNE_EVERY seconds per entity, not on the path of
        # every change it reads
        now = time.monotonic()
        due = self.opts.prune_changelog and now - self._pruned_at.get(entity, -PRUNE_EVERY) \
            >= PRUNE_EVERY
        with self._read() as conn, conn.begin():
            keys, new_token = self.capture.read(conn, entity, token)
            prune = due and self.capture.prunable(conn, entity, token)
        if prune:
            self._prune(entity, token)
            self._pruned_at[entity] = now
        changed: dict[str, str] = {}
        # the items are kept for the engine's read of them that follows, up to RECENT (a
        # larger change set is read again chunk by chunk: memory stays flat)
        recent = self._recent = {}
        for it in self._get(entity, sorted(keys)):
            changed[it.ref] = it.version if isinstance(it, Item) else "invalid"
            if len(recent) < RECENT:
                recent[(entity, it.ref)] = it
        deleted = {k for k in keys if k not in changed}
        del rd
        return Changes(changed=changed, deleted=deleted, token=new_token, complete=False)

    def _prune(self, entity: str, token: str) -> None:
        """The engine passes the token of its last *committed* checkpoint, so what lies
        before it has been read for good. A failure here only postpones the pruning."""
        try:
            with self.wengine.begin() as conn:
                self.capture.prune(conn, entity, token)
        except SQLAlchemyError:
            pass

    def wait_for_change(self, timeout: float) -> bool:
        if self.opts.capture == "watermark":
            return super().wait_for_change(timeout)
        try:
            return self.capture.wait(timeout)
        except (SQLAlchemyError, OSError) as exc:
            raise TransientError(f"waiting for changes in {self.safe_url}: {exc}") from exc

    # -- writing -------------------------------------------------------------------
    def create(self, entity: str, item: Item, ident: str) -> tuple[str, str]:
        r = self.apply(entity, [WriteOp("create", None, item, ident=ident)])[0]
        if r.error is not None:
            raise r.error
        assert r.ref is not None and r.version is not None
        return r.ref, r.version

    def update(self, entity: str, ref: str, item: Item, expected_version: str | None) -> str:
        r = self.apply(entity, [WriteOp("update", ref, item, expected_version)])[0]
        if r.error is not None:
            raise r.error
        assert r.version is not None
        return r.version

    def delete(self, entity: str, ref: str, expected_version: str | None) -> None:
        r = self.apply(entity, [WriteOp("delete", ref, None, expected_version)])[0]
        if r.error is not None:
            raise r.error

    def apply(self, entity: str, ops: Sequence[WriteOp]) -> builtins.list[WriteResult]:
        """One transaction per batch, a savepoint per write: a failed write is undone
        alone and reported alone; the batch's changelog entries are suppressed."""
        from concord.connectors.sql.writer import Writer

        wr = Writer(self, self._res(entity))
        results: builtins.list[WriteResult] = []
        marker = uuid.uuid4().hex
        capture = self.has_capture()
        try:
            with self.wengine.connect() as conn, conn.begin():
                if capture:
                    conn.execute(sa.text(f"INSERT INTO {WRITER}(marker) VALUES (:m)"), {"m": marker})
                for op in ops:
                    try:
                        with conn.begin_nested():
                            results.append(wr.apply_one(conn, op))
                    except ConcordError as exc:
                        results.append(WriteResult(ref=op.ref, error=exc))
                    except IntegrityError as exc:
                        results.append(WriteResult(ref=op.ref, error=ItemInvalid(
                            op.ref or op.ident or "new row", f"the practice database refused it: "
                            f"{exc.orig}", fix="correct the record so it meets the table's rules")))
                if capture:
                    conn.execute(sa.text(f"DELETE FROM {WRITER} WHERE marker = :m"), {"m": marker})
        except (OperationalError, DBAPIError) as exc:
            failed = TransientError(f"practice database {self.safe_url}: {exc.orig}")
            return [WriteResult(ref=op.ref, error=failed) for op in ops]
        return results

    # -- change capture ------------------------------------------------------------
    def _capture_targets(self) -> builtins.list[tuple[str, str, str]]:
        """(table, entity, key column to log) for every table whose change changes a record."""
        out: builtins.list[tuple[str, str, str]] = []
        for entity, res in self.resolved().items():
            out.append((res.spec.table, entity, res.key))
            if res.custom is not None:
                out.append((res.custom.table, entity, res.custom.owner))
            for lm, _ in res.lists.values():
                out.append((lm.table, entity, lm.owner))
        return out

    def install(self) -> None:
        """Create the changelog and its triggers (idempotent: triggers are recreated)."""
        md, *_ = capture_tables(self.engine.dialect.name)
        with self.engine.begin() as conn:
            md.create_all(conn)
            for table, entity, key in self._capture_targets():
                self.capture.drop_triggers(conn, table, entity)
                self.capture.create_triggers(conn, table, entity, key)
        self._has_capture = None
        self._readers.clear()

    def uninstall(self) -> None:
        """Remove every trigger, function and table Concord added; the practice's own
        tables are untouched."""
        md, *_ = capture_tables(self.engine.dialect.name)
        with self.engine.begin() as conn:
            for table, entity, _key in self._capture_targets():
                self.capture.drop_triggers(conn, table, entity)
            md.drop_all(conn, checkfirst=True)
        self._has_capture = None
        self._readers.clear()

    def capture_installed(self) -> bool:
        if not self.has_capture():
            return False
        with self._read() as conn:
            present = self.capture.installed_triggers(conn)
        return all(self.capture.trigger_name(t, e) in present for t, e, _ in self._capture_targets())

    def _require_capture(self) -> None:
        if not self.has_capture():
            raise TerminalError(f"change capture is not installed in {self.safe_url}: activate "
                                f"the link (concord link activate {self.link or 'NAME'})")

    # -- prerequisites -------------------------------------------------------------
    def check(self) -> builtins.list[str]:
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except (OperationalError, DBAPIError) as exc:
            return [f"the practice database {self.safe_url} cannot be reached ({exc.orig}): "
                    "check that its server is running and the link's url is right"]
        try:
            resolve(self.engine, self.opts)
        except Problems as exc:
            return exc.problems
        return []

    def admin_problem(self, email: str | None) -> str | None:
        """Why ``email`` is not an active administrator in the practice database (None: it is)."""
        if not email:
            return ("no admin contact is configured: set the link's admin_email to the e-mail "
                    "of an active administrator employee")
        chk = self.opts.admin
        res = self._res(chk.entity)
        cols = res.spec.column_map()
        col = {k: cols.get(k, k) for k in (chk.email, chk.active, chk.role)}
        q = sa.text(f'SELECT "{col[chk.active]}", "{col[chk.role]}" FROM "{res.spec.table}" '
                    f'WHERE lower("{col[chk.email]}") = lower(:e)')
        with self._read() as conn:
            rows = conn.execute(q, {"e": email}).all()
        if not rows:
            return (f"the admin contact {email} is not an employee in the practice database: "
                    f"add them to table {res.spec.table} or configure another admin_email")
        roles = {r.lower() for r in chk.admin_roles}
        for active, role in rows:
            with contextlib.suppress(BadValue):
                active = to_field(active, res.cols.get(chk.active, ("", _BOOL))[1], chk.active)
            if active and str(role or "").lower() in roles:
                return None
        return (f"the admin contact {email} is not an active administrator "
                f"(role one of {', '.join(chk.admin_roles)}): make them active with an admin role, "
                "or use the Practice Disbursement employee")

    def close(self) -> None:
        self._recent = {}
        self.capture.close()
        self.engine.dispose()
        if self.wengine is not self.engine:
            self.wengine.dispose()

