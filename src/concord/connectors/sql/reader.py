"""Reading mapped rows as items: one query per batch for the rows (with their parents'
keys, to catch broken references), one for their custom fields, one per list table,
one for the idents Concord gave the rows it created."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from concord.connectors.base import Item, ItemError
from concord.connectors.sql.capture import IDS
from concord.connectors.sql.options import CUSTOM_PREFIX
from concord.connectors.sql.rows import (
    BadValue,
    Kind,
    check_email,
    sorted_version,
    to_field,
    version_of,
)
from concord.connectors.sql.schema import Resolved


def _raw(table: str, *cols: str) -> Any:
    """An untyped table: values come back exactly as the driver gives them."""
    return sa.table(table, *(sa.column(c) for c in cols))


class Reader:
    def __init__(self, res: Resolved, *, watermark_versions: bool, has_ids: bool) -> None:
        self.res = res
        self.watermark_versions = watermark_versions
        self.has_ids = has_ids
        spec = res.spec
        cols = [res.key] + [c for c, _ in res.cols.values()] + [r.column for r in res.refs.values()]
        if spec.watermark:
            cols.append(spec.watermark)
        cols = list(dict.fromkeys(cols))
        self.t = _raw(spec.table, *cols)
        self.idx = {c: i for i, c in enumerate(cols)}
        select_cols: list[Any] = [self.t.c[c] for c in cols]
        joined: Any = self.t
        self.parent_idx: dict[str, int] = {}
        for fname, ref in res.refs.items():
            if ref.parent_table is None or ref.parent_key is None:
                continue
            p = _raw(ref.parent_table, ref.parent_key).alias(f"p_{fname}")
            joined = joined.outerjoin(p, p.c[ref.parent_key] == self.t.c[ref.column])
            self.parent_idx[fname] = len(select_cols)
            select_cols.append(p.c[ref.parent_key])
        self.base = sa.select(*select_cols).select_from(joined)
        self.key = self.t.c[res.key]
        emails = set(spec.emails)
        # per mapped column, worked out once: (field, position, kind, column, is an e-mail,
        # the Python type taken as it is, the length a text may have)
        # (in field-name order, as the references' plan: a row's fields and references come
        # out sorted, as its version wants them)
        self.plan: list[tuple[str, int, Kind, str, bool, Any, int | None]] = [
            (fname, self.idx[col], kind, col, fname in emails, _AS_IS.get(kind.name),
             kind.length if kind.name == "text" else None)
            for fname, (col, kind) in sorted(res.cols.items())]
        self.ref_plan = [(fname, self.idx[rc.column], rc, self.parent_idx.get(fname),
                          _AS_IS.get(rc.kind.name)) for fname, rc in sorted(res.refs.items())]

    # -- queries -------------------------------------------------------------------
    def by_keys(self, conn: Connection, keys: Sequence[Any], *, lock: bool = False) -> list[Item | ItemError]:
        q = self.base.where(self.key.in_(list(keys)))
        if lock:
            q = q.with_for_update(of=self.t)
        return self.build(conn, conn.execute(q).all())

    def after(self, conn: Connection, after: Any, limit: int) -> list[Item | ItemError]:
        q = self.base.order_by(self.key).limit(limit)
        if after is not None:
            q = q.where(self.key > after)
        return self.build(conn, conn.execute(q).all())

    def between(self, conn: Connection, after: Any, upto: Any) -> list[Item | ItemError]:
        """The rows with ``after`` < key <= ``upto`` (either bound None: none), in key order."""
        q = self.base.order_by(self.key)
        if after is not None:
            q = q.where(self.key > after)
        if upto is not None:
            q = q.where(self.key <= upto)
        return self.build(conn, conn.execute(q).all())

    def every(self, conn: Connection, after: Any, step: int) -> list[Any]:
        """Every ``step``-th key after ``after``, in order."""
        inner = sa.select(self.key.label("k"),
                          sa.func.row_number().over(order_by=self.key).label("n"))
        if after is not None:
            inner = inner.where(self.key > after)
        sub = inner.subquery()
        return list(conn.execute(sa.select(sub.c.k).where(sub.c.n % step == 0)
                                 .order_by(sub.c.k)).scalars())

    def versions(self, conn: Connection, after: Any, limit: int) -> list[tuple[str, str]]:
        """(ref, version) by watermark: the cheap listing of the read-only fallback."""
        wm = self.res.spec.watermark
        assert wm is not None
        q = sa.select(self.key, self.t.c[wm]).order_by(self.key).limit(limit)
        if after is not None:
            q = q.where(self.key > after)
        return [(str(k), str(w)) for k, w in conn.execute(q).all()]

    # -- building ------------------------------------------------------------------
    def build(self, conn: Connection, rows: Sequence[Any]) -> list[Item | ItemError]:
        if not rows:
            return []
        res, ki = self.res, self.idx[self.res.key]
        keys = [r[ki] for r in rows]
        custom = self._custom(conn, keys)
        lists = {f: self._list(conn, f, keys) for f in res.lists}
        idents = self._idents(conn, keys)
        wm_i = self.idx.get(res.spec.watermark) if res.spec.watermark else None
        plan = self.plan
        ref_plan = self.ref_plan
        custom_length = res.custom_length
        list_items = list(lists.items())
        stamp_versions = self.watermark_versions and wm_i is not None
        # custom fields and lists are added after the plan's fields: then sort again
        resort = bool(custom or list_items)
        out: list[Item | ItemError] = []
        for row in rows:
            ref = str(row[ki])
            try:
                fields: dict[str, Any] = {}
                for fname, i, kind, col, is_email, as_is, length in plan:
                    v = row[i]
                    # the common case (a text that fits, a whole number) is taken as it is;
                    # anything else goes through the full check
                    if v is not None and (type(v) is not as_is
                                          or (length is not None and len(v) > length)):
                        v = to_field(v, kind, col)
                    if is_email and v:
                        check_email(v, col)
                    fields[fname] = v
                refs: dict[str, str | None] = {}
                for fname, i, rc, pi, as_is in ref_plan:
                    v = row[i]
                    if v is None:
                        refs[fname] = None
                        continue
                    if type(v) is not as_is:
                        v = to_field(v, rc.kind, rc.column)
                    if pi is not None and row[pi] is None:
                        raise BadValue(rc.column, f"refers to {rc.entity} {v}, which does not exist "
                                       f"in table {rc.parent_table}",
                                       f"correct {rc.column} or create that {rc.entity}")
                    refs[fname] = v if type(v) is str else str(v)
                if custom:
                    for name, value in custom.get(row[ki], _NONE).items():
                        if custom_length is not None and value is not None and len(value) > custom_length:
                            raise BadValue(f"{res.custom.value} (custom field {name!r})" if res.custom
                                           else name, f"is {len(value)} characters long",
                                           f"shorten it to at most {custom_length} characters")
                        fields[CUSTOM_PREFIX + name] = value
                for fname, per_key in list_items:
                    fields[fname] = per_key.get(row[ki], [])
                modified = _stamp(row[wm_i]) if wm_i is not None else None
            except BadValue as exc:
                out.append(ItemError(ref, f"table {res.spec.table}, row {res.key}={ref}, column {exc.column}: "
                                          f"{exc.problem} (fix: {exc.fix})",
                                     payload=repr(tuple(row))))
                continue
            version = (str(row[wm_i]) if stamp_versions else version_of(fields, refs) if resort
                       else sorted_version(fields, refs))
            out.append(Item(ref, version, fields, refs, ident=idents.get(ref), modified=modified))
        return out

    def _custom(self, conn: Connection, keys: list[Any]) -> dict[Any, dict[str, Any]]:
        cf = self.res.custom
        if cf is None:
            return {}
        v = _raw(cf.table, cf.owner, cf.definition, cf.value)
        d = _raw(cf.definitions, cf.definition_key, cf.definition_name)
        q = (sa.select(v.c[cf.owner], d.c[cf.definition_name], v.c[cf.value])
             .select_from(v.join(d, d.c[cf.definition_key] == v.c[cf.definition]))
             .where(v.c[cf.owner].in_(keys)))
        out: dict[Any, dict[str, Any]] = defaultdict(dict)
        for owner, name, value in conn.execute(q):
            out[owner][name] = value if value is None or isinstance(value, str) else str(value)
        return out

    def _list(self, conn: Connection, fname: str, keys: list[Any]) -> dict[Any, list[str]]:
        lm, _ = self.res.lists[fname]
        lt = _raw(lm.table, lm.owner, lm.value)
        if lm.lookup_table and lm.lookup_key and lm.lookup_column:
            lk = _raw(lm.lookup_table, lm.lookup_key, lm.lookup_column)
            q = (sa.select(lt.c[lm.owner], lk.c[lm.lookup_column])
                 .select_from(lt.join(lk, lk.c[lm.lookup_key] == lt.c[lm.value])))
        else:
            q = sa.select(lt.c[lm.owner], lt.c[lm.value])
        out: dict[Any, list[str]] = defaultdict(list)
        for owner, value in conn.execute(q.where(lt.c[lm.owner].in_(keys))):
            if value is not None:
                out[owner].append(str(value))
        for vals in out.values():
            vals.sort()
        return out

    def _idents(self, conn: Connection, keys: list[Any]) -> dict[str, str]:
        if not self.has_ids:
            return {}
        ids = _raw(IDS, "entity", "ident", "row_key")
        # most practice databases hold no row Concord created (a first migration never
        # does): one index probe spares the look-up of every key of the batch
        if conn.execute(sa.select(sa.literal(1)).select_from(ids).where(
                ids.c.entity == self.res.entity).limit(1)).first() is None:
            return {}
        q = sa.select(ids.c.row_key, ids.c.ident).where(
            ids.c.entity == self.res.entity, ids.c.row_key.in_([str(k) for k in keys]))
        return {r: i for r, i in conn.execute(q)}


_NONE: dict[str, Any] = {}

#: per column kind, the driver's Python type that ``to_field`` would return unchanged
_AS_IS: dict[str, type] = {"text": str, "int": int}


_EPOCH = dt.datetime(1970, 1, 1)


def _stamp(value: Any) -> float | None:
    """A watermark value as a POSIX time (a time without a zone is UTC)."""
    if value is None:
        return None
    try:
        t = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(
            value if type(value) is str else str(value))
    except ValueError:
        return None
    if t.tzinfo is None:  # what timestamp() does for an aware time, without building one
        return (t - _EPOCH).total_seconds()
    return t.timestamp()


def key_kind_value(kind: Kind, ref: str) -> Any:
    return int(ref) if kind.name == "int" else ref
