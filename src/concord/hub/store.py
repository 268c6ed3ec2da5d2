"""The hub store: records with a change feed, link state, conflicts, quarantine, journal.

Same code on SQLite (the embedded default) and PostgreSQL. Functions that must share a
transaction with the engine's other writes take a ``Connection``; the rest open their own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from concord.errors import HubError
from concord.hub import schema as s
from concord.hub.blobs import BlobsMixin
from concord.hub.candidates import CandidatesMixin
from concord.hub.exclusions import ExclusionsMixin
from concord.hub.journal import JournalMixin
from concord.hub.reads import ReadsMixin
from concord.hub.spokestate import SpokeStateMixin
from concord.hub.tokens import TokensMixin
from concord.model import normalize
from concord.records import Record, canonical, hash_text

if TYPE_CHECKING:
    from concord.hub.batch import Batch, BatchOutcome

DEFAULT_URL = "sqlite:///concord.db"
_RECORD_COLS = ("tenant", "entity", "id", "seq", "hash", "deleted", "data", "updated_at", "updated_by")
_ARCHIVE_COLS = ("tenant", "link", "entity", "hub_id", "spoke_ref", "spoke_version", "hash", "base",
                 "synced_at", "hub_hash")


def make_engine(url: str, *, cache_mib: int = 16) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
            # Let SQLAlchemy's BEGIN be the real BEGIN (pysqlite's default defers it).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            # 16 MiB by default: a chunk's writes (a few MiB for 2,000 records with their
            # link state) stay in memory until it commits; more buys nothing measurable (the
            # operating system caches the file as well) and costs memory: a migration of 1M
            # rows of every type peaked at 146 MB with 64 MiB, at 93 MB with 16 MiB, as fast
            cur.execute(f"PRAGMA cache_size={-1024 * int(cache_mib)}")
            cur.execute("PRAGMA temp_store=MEMORY")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # Writers (Hub.begin) BEGIN IMMEDIATE: the write lock is taken up front, so two
            # writers that both read first cannot deadlock. Readers take no lock (WAL).
            if conn.get_execution_options().get("concord_write"):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("BEGIN")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return create_engine(url, pool_pre_ping=True)


def _insert(conn: Connection, table: Any) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def upsert(conn: Connection, table: Any, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """INSERT ... ON CONFLICT DO UPDATE for many rows (dicts with the same keys)."""
    if not rows:
        return
    cols = list(rows[0])
    upsert_rows(conn, table, cols, [tuple(r[c] for c in cols) for r in rows], keys)


def upsert_rows(conn: Connection, table: Any, cols: Sequence[str], rows: Sequence[tuple[Any, ...]],
                keys: Sequence[str]) -> None:
    """The same for rows as tuples in ``cols`` order. On SQLite and PostgreSQL this goes
    straight to the driver's executemany: SQLAlchemy's per-row parameter processing costs more
    than the database's own work for the hub's plain columns."""
    if not rows:
        return
    if conn.dialect.name in ("sqlite", "postgresql"):
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        sets = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in keys)
        sql = (f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))}) "
               f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}")
        conn.exec_driver_sql(sql, list(rows))
        return
    stmt = _insert(conn, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={c: stmt.excluded[c] for c in cols if c not in keys})
    conn.execute(stmt, [dict(zip(cols, r, strict=True)) for r in rows])


def _select_in(conn: Connection, table: Any, cols: Sequence[str], fixed: dict[str, Any],
               key: str, keys: Sequence[Any]) -> list[tuple[Any, ...]]:
    """``cols`` of the rows of ``table`` matching ``fixed`` whose ``key`` is one of ``keys``,
    500 keys a query. The hub's look-ups by key run for every chunk of a run, so on SQLite
    and PostgreSQL the text goes to the driver as it is and the rows come back whole
    (SQLAlchemy's statement building and row iteration cost more than the look-up itself)."""
    out: list[tuple[Any, ...]] = []
    if not keys:
        return out
    if conn.dialect.name in ("sqlite", "postgresql"):
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        where = " AND ".join(f"{c} = {mark}" for c in fixed)
        head = f"SELECT {', '.join(cols)} FROM {table.name} WHERE {where} AND {key} IN "
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            for i in range(0, len(keys), 500):
                part = keys[i:i + 500]
                cursor.execute(head + f"({', '.join([mark] * len(part))})",
                               (*fixed.values(), *part))
                out.extend(cursor.fetchall())
        finally:
            cursor.close()
        return out
    c = table.c
    for i in range(0, len(keys), 500):
        out.extend(tuple(r) for r in conn.execute(select(*(c[n] for n in cols)).where(
            *(c[k] == v for k, v in fixed.items()), c[key].in_(keys[i:i + 500]))))
    return out


def load_content(data: str) -> tuple[dict[str, Any], dict[str, str | None]]:
    doc = orjson.loads(data)
    return doc.get("f", {}), doc.get("r", {})


@dataclass(slots=True)
class ArchiveRow:
    hub_id: str
    spoke_ref: str
    spoke_version: str | None
    hash: str  # of the content last synced: the part of the record the link carries
    base: str  # canonical JSON
    hub_hash: str | None = None  # the whole hub record's hash when last synced

    def content(self) -> tuple[dict[str, Any], dict[str, str | None]]:
        return load_content(self.base)


@dataclass(slots=True)
class Checkpoint:
    hub_seq: int = 0
    spoke_token: str | None = None
    progress: dict[str, Any] | None = None
    #: read from the hub (a run has saved it), not the default of a link + entity never run
    stored: bool = field(default=False, compare=False)


#: a new record of a first sync: (hub id, spoke ref, spoke version, canonical text, hash,
#: whether the hub id is the item's UID: checked to be free at commit)
FreshRow = tuple[str, str, str, str, str, bool]


@dataclass(slots=True)
class RecordWrite:
    """A write to the hub: new content, or a delete (tombstone keeps last content)."""

    entity: str
    id: str
    fields: dict[str, Any]
    refs: dict[str, str | None]
    deleted: bool = False
    data: str | None = None  # canonical JSON, when the caller has it already
    hash: str | None = None


class Hub(JournalMixin, ExclusionsMixin, BlobsMixin, CandidatesMixin, ReadsMixin, TokensMixin,
          SpokeStateMixin):
    """One practice's view of the hub store."""

    def __init__(self, url: str = DEFAULT_URL, tenant: str = "default", *, migrate: bool = True,
                 engine: Engine | None = None, cache_mib: int = 16) -> None:
        """``cache_mib``: SQLite's page cache per connection (a process that only reads a
        little, such as one preparing a migration, takes a small one)."""
        self.url = url
        self.tenant = tenant
        self.engine = engine or make_engine(url, cache_mib=cache_mib)
        if migrate:
            self.migrate()

    # -- setup ----------------------------------------------------------------------
    def migrate(self) -> None:
        from concord.hub.migrations import upgrade

        try:
            upgrade(self.engine)
        except SQLAlchemyError as exc:
            raise HubError(f"cannot open or upgrade the hub at {self.safe_url}: {exc}") from exc
        with self.begin() as conn:
            exists = conn.execute(select(s.tenants.c.id).where(s.tenants.c.id == self.tenant)).first()
            if not exists:
                try:
                    conn.execute(s.tenants.insert().values(id=self.tenant, last_seq=0,
                                                           created_at=time.time()))
                except IntegrityError:  # created concurrently
                    pass

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction (committed on exit, rolled back on error)."""
        with self.engine.connect().execution_options(concord_write=True) as conn, conn.begin():
            yield conn

    def close(self) -> None:
        self.engine.dispose()

    # -- change feed ----------------------------------------------------------------
    def _take_seqs(self, conn: Connection, n: int) -> int:
        """Reserve ``n`` sequence numbers; returns the first. The UPDATE locks the tenant
        row until commit, serialising this practice's writers (no out-of-order commits)."""
        conn.execute(
            update(s.tenants).where(s.tenants.c.id == self.tenant)
            .values(last_seq=s.tenants.c.last_seq + n)
        )
        last = conn.execute(select(s.tenants.c.last_seq).where(s.tenants.c.id == self.tenant)).scalar_one()
        return int(last) - n + 1

    def write(self, conn: Connection, writes: Sequence[RecordWrite], by: str = "", *,
              validated: bool = False, returning: bool = True) -> list[Record]:
        """Write records (upsert) and tombstones in the caller's transaction. Each record's
        fields are checked against its entity's model (``model.ModelError`` names the field);
        ``validated`` says the caller has done so already (the engine normalizes everything it
        reads from a spoke). The records as written are returned unless ``returning`` is off
        (a batch commit, which has no use for them)."""
        if not writes:
            return []
        if not validated:
            for w in writes:
                if not w.deleted:
                    fields = normalize(w.entity, w.fields, record=w.id)
                    if fields != w.fields:
                        w.fields, w.data, w.hash = fields, None, None
        first = self._take_seqs(conn, len(writes))
        now = time.time()
        rows = []
        out = []
        tombstones: list[RecordWrite] = []
        tenant = self.tenant
        for i, w in enumerate(writes):
            if w.deleted:
                tombstones.append(w)
                continue
            if w.data is None or w.hash is None:
                w.data = canonical(w.fields, w.refs)
                w.hash = hash_text(w.data)
            rows.append((tenant, w.entity, w.id, first + i, w.hash, False, w.data, now, by))
            if returning:
                out.append(Record(w.entity, w.id, w.fields, w.refs, False, first + i, now))
        upsert_rows(conn, s.records, _RECORD_COLS, rows, ("tenant", "entity", "id"))
        if tombstones:
            seq_of = {(w.entity, w.id): first + i for i, w in enumerate(writes) if w.deleted}
            conn.execute(
                update(s.records)
                .where(and_(s.records.c.tenant == self.tenant,
                            s.records.c.entity == bindparam("b_entity"), s.records.c.id == bindparam("rid")))
                .values(deleted=True, seq=bindparam("nseq"), updated_at=now, updated_by=by),
                [{"b_entity": w.entity, "rid": w.id, "nseq": seq_of[(w.entity, w.id)]}
                 for w in tombstones],
            )
            for w in tombstones if returning else ():
                out.append(Record(w.entity, w.id, w.fields, w.refs, True, seq_of[(w.entity, w.id)], now))
        return out

    def lock_feed(self, conn: Connection) -> None:
        """Take this practice's writer lock now (before reading what we are about to write)."""
        conn.execute(update(s.tenants).where(s.tenants.c.id == self.tenant)
                     .values(last_seq=s.tenants.c.last_seq))

    def put(self, entity: str, id: str, fields: dict[str, Any], refs: dict[str, str | None] | None = None,
            *, by: str = "") -> Record:
        with self.begin() as conn:
            return self.write(conn, [RecordWrite(entity, id, fields, refs or {})], by)[0]

    def remove(self, entity: str, id: str, *, by: str = "") -> Record | None:
        with self.begin() as conn:
            cur = self.get(entity, id, conn=conn)
            if cur is None or cur.deleted:
                return None
            return self.write(conn, [RecordWrite(entity, id, cur.fields, cur.refs, True)], by)[0]

    def last_seq_in(self, conn: Connection) -> int:
        return int(conn.execute(select(s.tenants.c.last_seq)
                                .where(s.tenants.c.id == self.tenant)).scalar_one())

    def last_seq(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(s.tenants.c.last_seq)
                                    .where(s.tenants.c.id == self.tenant)).scalar_one())

    @staticmethod
    def _row_record(row: Any) -> Record:
        return Hub._record(row.entity, row.id, row.seq, row.deleted, row.data, row.updated_at)

    @staticmethod
    def _record(entity: str, id: str, seq: Any, deleted: Any, data: str, at: Any) -> Record:
        fields, refs = load_content(data)
        return Record(entity, id, fields, refs, bool(deleted), int(seq), float(at))

    def get(self, entity: str, id: str, *, conn: Connection | None = None) -> Record | None:
        got = self.get_many(entity, [id], conn=conn)
        return got.get(id)

    def get_many(self, entity: str, ids: Iterable[str], *, conn: Connection | None = None
                 ) -> dict[str, Record]:
        ids = list(ids)
        out: dict[str, Record] = {}
        if not ids:
            return out
        def run(c: Connection) -> None:
            for id_, seq, deleted, data, at in _select_in(
                    c, s.records, ("id", "seq", "deleted", "data", "updated_at"),
                    {"tenant": self.tenant, "entity": entity}, "id", ids):
                out[id_] = self._record(entity, id_, seq, deleted, data, at)
        if conn is not None:
            run(conn)
        else:
            with self.engine.connect() as c:
                run(c)
        return out

    def feed(self, entity: str, after_seq: int, limit: int | None = None) -> list[Record]:
        """Records of ``entity`` written after ``after_seq`` (tombstones included), by seq."""
        q = (select(s.records).where(s.records.c.tenant == self.tenant,
                                     s.records.c.entity == entity, s.records.c.seq > after_seq)
             .order_by(s.records.c.seq))
        if limit:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            return [self._row_record(r) for r in conn.execute(q)]

    def feed_head(self, entity: str, after_seq: int, upto_seq: int | None = None,
                  page: int = 5000, skip: tuple[int, int] | None = None
                  ) -> Iterator[list[tuple[str, int, bool]]]:
        """Pages of (id, seq, deleted) written after ``after_seq``, by seq: no content, bounded
        memory however large the feed. ``skip`` = (a, b) leaves out seqs in (a, b]."""
        c = s.records.c
        cursor = after_seq
        while True:
            q = (select(c.id, c.seq, c.deleted)
                 .where(c.tenant == self.tenant, c.entity == entity, c.seq > cursor))
            if upto_seq is not None:
                q = q.where(c.seq <= upto_seq)
            if skip is not None:
                q = q.where(or_(c.seq <= skip[0], c.seq > skip[1]))
            q = q.order_by(c.seq).limit(page)
            with self.engine.connect() as conn:
                rows = [(r.id, int(r.seq), bool(r.deleted)) for r in conn.execute(q)]
            if not rows:
                return
            yield rows
            if len(rows) < page:
                return
            cursor = rows[-1][1]

    def count_deleted_linked(self, link: str, entity: str, after_seq: int) -> int:
        """Tombstones written after ``after_seq`` that this link carries: deletes it would send."""
        r, a = s.records.c, s.archive.c
        q = (select(func.count()).select_from(s.records.join(
            s.archive, and_(a.tenant == r.tenant, a.entity == r.entity, a.hub_id == r.id)))
            .where(r.tenant == self.tenant, r.entity == entity, r.deleted.is_(True),
                   r.seq > after_seq, a.link == link))
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def list_records(self, entity: str, *, include_deleted: bool = False, offset: int = 0,
                     limit: int = 100) -> list[Record]:
        c = s.records.c
        q = select(s.records).where(c.tenant == self.tenant, c.entity == entity)
        if not include_deleted:
            q = q.where(c.deleted.is_(False))
        q = q.order_by(c.id).offset(offset).limit(limit)
        with self.engine.connect() as conn:
            return [self._row_record(r) for r in conn.execute(q)]

    def count(self, entity: str, *, include_deleted: bool = False) -> int:
        c = s.records.c
        q = select(func.count()).select_from(s.records).where(c.tenant == self.tenant, c.entity == entity)
        if not include_deleted:
            q = q.where(c.deleted.is_(False))
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    # -- link state -----------------------------------------------------------------
    def archive(self, link: str, entity: str, *, conn: Connection | None = None) -> dict[str, ArchiveRow]:
        c = s.archive.c
        q = select(c.hub_id, c.spoke_ref, c.spoke_version, c.hash, c.base, c.hub_hash).where(
            c.tenant == self.tenant, c.link == link, c.entity == entity)
        def run(cn: Connection) -> dict[str, ArchiveRow]:
            return {r.hub_id: ArchiveRow(r.hub_id, r.spoke_ref, r.spoke_version, r.hash, r.base,
                                       r.hub_hash)
                    for r in cn.execute(q)}
        if conn is not None:
            return run(conn)
        with self.engine.connect() as cn:
            return run(cn)

    def archive_versions(self, link: str, entity: str) -> dict[str, str | None]:
        """spoke ref -> spoke version of every record the link holds: what a full listing
        is compared with (without the bases, which are the bulk of the link state's bytes)."""
        c = s.archive.c
        with self.engine.connect() as conn:
            if conn.dialect.name in ("sqlite", "postgresql"):
                mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
                rows = conn.exec_driver_sql(
                    f"SELECT spoke_ref, spoke_version FROM archive WHERE tenant = {mark} "
                    f"AND link = {mark} AND entity = {mark}", (self.tenant, link, entity))
            else:
                rows = conn.execute(select(c.spoke_ref, c.spoke_version).where(
                    c.tenant == self.tenant, c.link == link, c.entity == entity))
            return dict(rows.fetchall())  # type: ignore[arg-type]

    def _archive_named(self, link: str, entity: str, cols: Sequence[str], hub_ids: Iterable[str],
                       spoke_refs: Iterable[str]) -> list[Any]:
        """``cols`` of the link-state rows named by hub id or spoke ref, 500 keys a query (a
        reference look-up runs this for every chunk, so on SQLite and PostgreSQL the text is
        built once and goes to the driver as it is)."""
        out: list[Any] = []
        fixed = {"tenant": self.tenant, "link": link, "entity": entity}
        with self.engine.connect() as conn:
            for key, keys in (("hub_id", list(hub_ids)), ("spoke_ref", list(spoke_refs))):
                out.extend(_select_in(conn, s.archive, cols, fixed, key, keys))
        return out

    def archive_select(self, link: str, entity: str, *, hub_ids: Iterable[str] = (),
                       spoke_refs: Iterable[str] = ()) -> list[ArchiveRow]:
        return [ArchiveRow(*r) for r in self._archive_named(
            link, entity, ("hub_id", "spoke_ref", "spoke_version", "hash", "base", "hub_hash"),
            hub_ids, spoke_refs)]

    def linked_ids(self, link: str, entity: str, *, hub_ids: Iterable[str] = (),
                   spoke_refs: Iterable[str] = ()) -> list[tuple[str, str]]:
        """(hub id, spoke ref) of the linked records named: reference translation needs no
        more than that, and the base each link-state row holds is the bulk of its bytes."""
        return [(r[0], r[1]) for r in self._archive_named(link, entity, ("hub_id", "spoke_ref"),
                                                          hub_ids, spoke_refs)]

    def archive_count(self, link: str, entity: str) -> int:
        c = s.archive.c
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(s.archive).where(
                c.tenant == self.tenant, c.link == link, c.entity == entity)).scalar_one())

    def save_archive(self, conn: Connection, link: str, entity: str, rows: Sequence[ArchiveRow]) -> None:
        if not rows:
            return
        now = time.time()
        t = self.tenant
        upsert_rows(conn, s.archive, _ARCHIVE_COLS, [
            (t, link, entity, r.hub_id, r.spoke_ref, r.spoke_version, r.hash, r.base, now,
             r.hub_hash) for r in rows], ("tenant", "link", "entity", "hub_id"))

    def drop_archive(self, conn: Connection, link: str, entity: str, hub_ids: Sequence[str]) -> None:
        c = s.archive.c
        for i in range(0, len(hub_ids), 500):
            conn.execute(delete(s.archive).where(c.tenant == self.tenant, c.link == link,
                                                 c.entity == entity, c.hub_id.in_(hub_ids[i:i + 500])))

    # -- write intents (see schema.intents) -----------------------------------------------
    def save_intents(self, link: str, entity: str, rows: Sequence[tuple[str, str, str]]) -> None:
        """rows: (hub_id, hash, canonical base), committed before the spoke write."""
        if not rows:
            return
        now = time.time()
        with self.begin() as conn:
            upsert_rows(conn, s.intents, ("tenant", "link", "entity", "hub_id", "hash", "base", "at"),
                        [(self.tenant, link, entity, h, hh, b, now) for h, hh, b in rows],
                        ("tenant", "link", "entity", "hub_id"))

    def intents_for(self, link: str, entity: str, hub_ids: Iterable[str]) -> dict[str, ArchiveRow]:
        c = s.intents.c
        ids = list(hub_ids)
        out: dict[str, ArchiveRow] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(ids), 500):
                for r in conn.execute(select(c.hub_id, c.hash, c.base).where(
                        c.tenant == self.tenant, c.link == link, c.entity == entity,
                        c.hub_id.in_(ids[i:i + 500]))):
                    out[r.hub_id] = ArchiveRow(r.hub_id, "", None, r.hash, r.base)
        return out

    def has_intents(self, link: str, entity: str) -> bool:
        c = s.intents.c
        with self.engine.connect() as conn:
            return conn.execute(select(c.hub_id).where(
                c.tenant == self.tenant, c.link == link, c.entity == entity).limit(1)).first() is not None

    def drop_intents(self, conn: Connection, link: str, entity: str, hub_ids: Sequence[str]) -> None:
        c = s.intents.c
        for i in range(0, len(hub_ids), 500):
            conn.execute(delete(s.intents).where(c.tenant == self.tenant, c.link == link,
                                                 c.entity == entity, c.hub_id.in_(hub_ids[i:i + 500])))

    def checkpoint(self, link: str, entity: str) -> Checkpoint:
        c = s.checkpoints.c
        with self.engine.connect() as conn:
            row = conn.execute(select(s.checkpoints).where(
                c.tenant == self.tenant, c.link == link, c.entity == entity)).first()
        if row is None:
            return Checkpoint()
        return Checkpoint(int(row.hub_seq), row.spoke_token,
                          json.loads(row.progress) if row.progress else None, stored=True)

    def has_synced(self, link: str, entity: str) -> bool:
        """Has ``entity`` finished a first run over ``link`` (checkpoint saved, no migration
        in progress)?"""
        c = s.checkpoints.c
        with self.engine.connect() as conn:
            row = conn.execute(select(c.progress).where(
                c.tenant == self.tenant, c.link == link, c.entity == entity)).first()
        return row is not None and row.progress is None

    def save_checkpoint(self, conn: Connection, link: str, entity: str, cp: Checkpoint) -> None:
        upsert(conn, s.checkpoints, [{
            "tenant": self.tenant, "link": link, "entity": entity, "hub_seq": cp.hub_seq,
            "spoke_token": cp.spoke_token,
            "progress": json.dumps(cp.progress) if cp.progress is not None else None,
        }], ("tenant", "link", "entity"))

    def reset_link(self, link: str) -> None:
        """Forget a link's state (deactivation): archive, checkpoints, quarantine."""
        with self.begin() as conn:
            for t in (s.archive, s.checkpoints, s.quarantine, s.intents, s.exclusions,
                      s.spoke_left):
                conn.execute(delete(t).where(t.c.tenant == self.tenant, t.c.link == link))

    # -- link rows ------------------------------------------------------------------
    def link_row(self, name: str) -> dict[str, Any] | None:
        c = s.links.c
        with self.engine.connect() as conn:
            row = conn.execute(select(s.links).where(c.tenant == self.tenant, c.name == name)).first()
        return dict(row._mapping) if row else None

    def link_rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(s.links).where(s.links.c.tenant == self.tenant).order_by(s.links.c.name))]

    def set_link(self, name: str, connector: str | None = None, **values: Any) -> None:
        with self.begin() as conn:
            c = s.links.c
            exists = conn.execute(select(c.name).where(c.tenant == self.tenant, c.name == name)).first()
            values["updated_at"] = time.time()
            if exists:
                if connector:
                    values["connector"] = connector
                conn.execute(update(s.links).where(c.tenant == self.tenant, c.name == name).values(**values))
            else:
                conn.execute(s.links.insert().values(tenant=self.tenant, name=name,
                                                     connector=connector or "", **values))

    # -- a run's chunk, committed whole (see hub/batch.py) ---------------------------
    def commit_batch(self, batch: Batch) -> BatchOutcome:
        """Commit one chunk of a run in one transaction: the hub records (each only if still
        at the seq it was planned against), their link state, conflicts, quarantine and
        left-out notes, and the checkpoint. A migration's position (``checkpoint.progress``
        with ``written``) counts the hub writes committed with it."""
        from concord.hub.batch import BatchOutcome

        link, entity = batch.link, batch.entity
        with self.begin() as conn:
            self.lock_feed(conn)
            changed: set[str] = set()
            if batch.expected:
                now = self._seqs(conn, entity, list(batch.expected))
                changed = {i for i, seq in batch.expected.items() if now.get(i) != seq}

            def keep(hub_id: str) -> bool:
                return hub_id not in changed

            writes = [w for w in batch.records if keep(w.id)]
            archive = [a for a in batch.archive if keep(a.hub_id)]
            fresh = [r for r in batch.fresh if keep(r[0])] if changed else batch.fresh
            forget = [i for i in batch.forget if keep(i)]
            left_out = [(i, q) for i, q in batch.left_out if keep(i)]
            conflicts = [c for c in batch.conflicts if keep(c.hub_id)]
            self.write(conn, writes, by=batch.by, validated=True, returning=False)
            # each archive row notes the whole hub record's hash as of this commit, so the
            # record is pending for this link again only when the hub changes it
            written = {w.id: w.hash for w in writes if not w.deleted}
            for a in archive:
                a.hub_hash = written.get(a.hub_id) or a.hub_hash
            self.save_archive(conn, link, entity, archive)
            self._write_fresh(conn, link, entity, batch.by, fresh)
            linked = [*((a.hub_id, a.spoke_ref) for a in archive), *((r[0], r[1]) for r in fresh)]
            self.drop_archive(conn, link, entity, forget)
            if batch.has_exclusions:
                self.drop_exclusions(conn, link, entity,
                                     [*batch.drop_exclusions, *(i for i, _ in linked)])
            if left_out:
                self.save_exclusions(conn, link, entity, left_out, batch.selection)
            if batch.spoke_left:
                self.save_spoke_left(conn, link, entity, batch.spoke_left, batch.spoke_selection)
            if batch.has_left and (linked or batch.quarantine):
                # linked now, or quarantined: no longer an item the selection leaves out
                self.drop_spoke_left(conn, link, entity, [
                    *(r for _, r in linked),
                    *(ref for side, ref, *_ in batch.quarantine if side == "spoke")])
            if batch.drop_intents and batch.has_intents:
                self.drop_intents(conn, link, entity, batch.drop_intents)
            self.add_conflicts(conn, [c.row(link, entity) for c in conflicts])
            news = self.quarantine_items(conn, link, entity, batch.quarantine, batch.versions,
                                         retry_now=set(batch.retry_now))
            if (batch.has_quarantine or batch.quarantine) and (linked or left_out):
                # done with: linked, or (a removal, a record edited out of the selection)
                # left out on purpose
                self.release_quarantine(conn, link, entity, "spoke", [r for _, r in linked])
                self.release_quarantine(conn, link, entity, "hub",
                                        [*(i for i, _ in linked), *(i for i, _ in left_out)])
            cp = batch.checkpoint
            n = len(writes) + len(fresh)
            if cp is not None:
                if cp.progress is not None and "written" in cp.progress:
                    cp.progress["written"] = int(cp.progress["written"]) + n
                self.save_checkpoint(conn, link, entity, cp)
        return BatchOutcome(changed, n, len(conflicts), news)

    def _write_fresh(self, conn: Connection, link: str, entity: str, by: str,
                     rows: Sequence[FreshRow]) -> None:
        """New hub records and their link state, straight from a first sync's rows (the
        record's canonical text is its link-state base, its hash both hashes)."""
        if not rows:
            return
        first = self._take_seqs(conn, len(rows))
        now, t = time.time(), self.tenant
        upsert_rows(conn, s.records, _RECORD_COLS,
                    [(t, entity, r[0], first + i, r[4], False, r[3], now, by)
                     for i, r in enumerate(rows)], ("tenant", "entity", "id"))
        upsert_rows(conn, s.archive, _ARCHIVE_COLS,
                    [(t, link, entity, r[0], r[1], r[2], r[4], r[3], now, r[4]) for r in rows],
                    ("tenant", "link", "entity", "hub_id"))

    def set_checkpoint(self, link: str, entity: str, cp: Checkpoint) -> None:
        with self.begin() as conn:
            self.save_checkpoint(conn, link, entity, cp)

    def checkpoint_at_head(self, link: str, entity: str,
                           make: Callable[[int], Checkpoint]) -> None:
        """Save the checkpoint ``make(last seq)`` under the practice's write lock, so no
        writer takes a seq between reading the feed's head and saving what it implies."""
        with self.begin() as conn:
            self.lock_feed(conn)
            self.save_checkpoint(conn, link, entity, make(self.last_seq_in(conn)))

    def refresh_archive(self, link: str, entity: str, rows: Sequence[ArchiveRow]) -> None:
        """Save link-state rows whose hub hash moved on (a hub change the link does not
        carry), so those records are no longer pending for it."""
        with self.begin() as conn:
            self.save_archive(conn, link, entity, rows)

    def _seqs(self, conn: Connection, entity: str, ids: list[str]) -> dict[str, int]:
        return {i: int(seq) for i, seq in _select_in(
            conn, s.records, ("id", "seq"), {"tenant": self.tenant, "entity": entity}, "id", ids)}

    # -- conflicts, quarantine ------------------------------------------------------
    def add_conflicts(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            now = time.time()
            conn.execute(s.conflicts.insert(), [{"tenant": self.tenant, "at": now, **r} for r in rows])

    def conflicts(self, *, open_only: bool = True, link: str | None = None,
                  limit: int = 1000) -> list[dict[str, Any]]:
        c = s.conflicts.c
        q = select(s.conflicts).where(c.tenant == self.tenant)
        if open_only:
            q = q.where(c.resolved_at.is_(None))
        if link:
            q = q.where(c.link == link)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q.order_by(c.id.desc()).limit(limit))]

    def resolve_conflict_row(self, conn: Connection, cid: int, by: str, resolution: str) -> None:
        conn.execute(update(s.conflicts).where(s.conflicts.c.id == cid, s.conflicts.c.tenant == self.tenant)
                     .values(resolved_at=time.time(), resolved_by=by, resolution=resolution))

    def quarantine_items(self, conn: Connection, link: str, entity: str,
                         rows: Sequence[tuple[str, str, str, str | None]],
                         versions: Mapping[str, str] | None = None, *,
                         retry_now: set[str] | None = None) -> int:
        """rows: (side, ref, error, payload); ``versions``: spoke ref -> its version now.
        Re-quarantining a ref replaces its error and backs its next retry off (doubling from
        a minute up to an hour, see ``retry_backoff``). Returns how many are newly
        quarantined or failed with another error (a retry that fails alike is not news)."""
        if not rows:
            return 0
        now = time.time()
        c = s.quarantine.c
        before: dict[tuple[str, str], Any] = {}
        refs = [r[1] for r in rows]
        for i in range(0, len(refs), 500):
            for r in conn.execute(select(c.side, c.ref, c.error, c.attempts, c.resolved_at).where(
                    c.tenant == self.tenant, c.link == link, c.entity == entity,
                    c.ref.in_(refs[i:i + 500]))):
                before[(r.side, r.ref)] = r
        seq = self.last_seq_in(conn)
        out, news = [], 0
        for side, ref, err, payload in rows:
            old = before.get((side, ref))
            if old is not None and old.resolved_at is None:  # tried again, failed again
                attempts = int(old.attempts or 1) + 1
                news += old.error != err
            else:
                attempts = 1
                news += 1
            out.append({"tenant": self.tenant, "link": link, "entity": entity, "side": side,
                        "ref": ref, "error": _text(err), "payload": _text(payload), "at": now,
                        "resolved_at": None,
                        "version": (versions or {}).get(ref) if side == "spoke" else None,
                        "seq": seq, "attempts": attempts,
                        "retry_at": now if ref in (retry_now or ())
                        else now + retry_backoff(attempts)})
        upsert(conn, s.quarantine, out, ("tenant", "link", "entity", "side", "ref"))
        return news

    def retry_quarantined_now(self, link: str, entity: str | None = None) -> int:
        """End the backoff of ``link``'s quarantined records (the cause was fixed outside
        any record: a server back, a mapping corrected): the next run tries them again."""
        c = s.quarantine.c
        q = update(s.quarantine).where(c.tenant == self.tenant, c.link == link,
                                       c.resolved_at.is_(None))
        if entity is not None:
            q = q.where(c.entity == entity)
        with self.begin() as conn:
            return int(conn.execute(q.values(retry_at=None)).rowcount or 0)

    def parents_last_seq(self, entities: Sequence[str]) -> int | None:
        """The seq of the last write to a record of one of ``entities`` (None: none)."""
        r = s.records.c
        best: int | None = None
        with self.engine.connect() as conn:
            for e in entities:  # one index look-up each (ix_records_feed)
                got = conn.execute(select(func.max(r.seq)).where(
                    r.tenant == self.tenant, r.entity == e)).scalar()
                if got is not None and (best is None or int(got) > best):
                    best = int(got)
        return best

    def release_quarantine(self, conn: Connection, link: str, entity: str, side: str,
                           refs: Sequence[str]) -> None:
        c = s.quarantine.c
        for i in range(0, len(refs), 500):
            conn.execute(update(s.quarantine).where(
                c.tenant == self.tenant, c.link == link, c.entity == entity, c.side == side,
                c.resolved_at.is_(None), c.ref.in_(refs[i:i + 500])).values(resolved_at=time.time()))

    def entity_flags(self, link: str, entity: str) -> tuple[bool, bool, bool, bool, bool]:
        """(the hub holds records of ``entity``, the link has quarantined items, intents of
        the link's entity are pending, records are left out by its selection, spoke items
        are): what a run needs to know before it starts, in one query of five index probes."""
        t = self.tenant
        r, q, i, x = s.records.c, s.quarantine.c, s.intents.c, s.exclusions.c
        sl = s.spoke_left.c
        stmt = select(
            exists().where(r.tenant == t, r.entity == entity),
            exists().where(q.tenant == t, q.resolved_at.is_(None), q.link == link),
            exists().where(i.tenant == t, i.link == link, i.entity == entity),
            exists().where(x.tenant == t, x.link == link, x.entity == entity),
            exists().where(sl.tenant == t, sl.link == link, sl.entity == entity))
        with self.engine.connect() as conn:
            row = conn.execute(stmt).one()
        return bool(row[0]), bool(row[1]), bool(row[2]), bool(row[3]), bool(row[4])

    def has_quarantined(self, link: str, entity: str) -> bool:
        """Does the link hold quarantined items of ``entity``? (One index probe.)"""
        c = s.quarantine.c
        with self.engine.connect() as conn:
            return bool(conn.execute(select(exists().where(
                c.tenant == self.tenant, c.link == link, c.entity == entity,
                c.resolved_at.is_(None)))).scalar())

    def quarantined(self, link: str | None = None, entity: str | None = None
                    ) -> list[dict[str, Any]]:
        c = s.quarantine.c
        q = select(s.quarantine).where(c.tenant == self.tenant, c.resolved_at.is_(None))
        if link:
            q = q.where(c.link == link)
        if entity:
            q = q.where(c.entity == entity)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q.order_by(c.id))]


def _text(value: str | None) -> str | None:
    """A quarantined item's text as every hub stores it: PostgreSQL refuses a NUL character in
    text, and a broken item may hold one, so it is kept as the escape ``\\x00``."""
    return value.replace("\x00", "\\x00") if value is not None else None


#: a quarantined record is tried again after this long, doubling with each failed attempt
RETRY_FIRST_S = 60.0
RETRY_MAX_S = 3600.0


def retry_backoff(attempts: int) -> float:
    """Seconds before the next retry of a record quarantined ``attempts`` times."""
    return float(min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** max(0, attempts - 1)))
