"""Writing items back to the practice database through the link's mapping.

Every update and delete re-reads the row under a lock and compares its version with the one
the engine expects: a row edited meanwhile is a ``PreconditionFailed``, never an overwrite.
A create records the ident Concord chose in ``concord_ids`` in the same transaction, so a
create whose answer was lost is found again rather than inserted twice.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from concord.connectors.base import Item, WriteOp, WriteResult
from concord.connectors.sql.capture import IDS
from concord.connectors.sql.options import CUSTOM_PREFIX
from concord.connectors.sql.rows import BadValue, check_email, to_column, to_field
from concord.connectors.sql.schema import Resolved
from concord.errors import ItemInvalid, PreconditionFailed

if TYPE_CHECKING:
    from concord.connectors.sql.connector import SQLConnector

_ids = sa.table(IDS, sa.column("entity"), sa.column("ident"), sa.column("row_key"))


class Writer:
    def __init__(self, conn_owner: SQLConnector, res: Resolved) -> None:
        self.owner = conn_owner
        self.res = res
        self.rd = conn_owner.reader(res.entity)
        self.capture = conn_owner.has_capture()
        self.dialect = conn_owner.engine.dialect.name
        self._defs: dict[str, Any] | None = None

    def apply_one(self, conn: Connection, op: WriteOp) -> WriteResult:
        if op.kind == "create":
            assert op.item is not None
            ref, version = self.create(conn, op.item, op.ident)
            return WriteResult(ref=ref, version=version)
        assert op.ref is not None
        if op.kind == "update":
            assert op.item is not None
            return WriteResult(ref=op.ref, version=self.update(conn, op.ref, op.item,
                                                               op.expected_version))
        self.delete(conn, op.ref, op.expected_version)
        return WriteResult(ref=op.ref)

    # -- the three writes ----------------------------------------------------------
    def create(self, conn: Connection, item: Item, ident: str | None) -> tuple[str, str]:
        ent = self.res.entity
        if ident and self.capture:
            known = conn.execute(sa.select(_ids.c.row_key).where(
                _ids.c.entity == ent, _ids.c.ident == ident)).scalar()
            if known is not None:
                current = self._current(conn, known)
                if current is not None:
                    return known, current.version
                conn.execute(sa.delete(_ids).where(_ids.c.entity == ent, _ids.c.ident == ident))
        values = self._values(item, ident or "new row")
        result = conn.execute(sa.insert(self.res.table).values(**values))
        key = result.inserted_primary_key[0] if result.inserted_primary_key else values.get(self.res.key)
        ref = str(key)
        self._children(conn, key, item, ref)
        if ident and self.capture:
            conn.execute(sa.insert(_ids).values(entity=ent, ident=ident, row_key=ref))
        return ref, self._version(conn, ref)

    def update(self, conn: Connection, ref: str, item: Item, expected: str | None) -> str:
        current = self._current(conn, ref, lock=True)
        if current is None or (expected is not None and current.version != expected):
            raise PreconditionFailed(ref, expected, current.version if current else None)
        values = self._values(item, ref)
        if values:
            t = self.res.table
            conn.execute(sa.update(t).where(t.c[self.res.key] == self.res.key_value(ref))
                         .values(**values))
        self._children(conn, self.res.key_value(ref), item, ref)
        return self._version(conn, ref)

    def delete(self, conn: Connection, ref: str, expected: str | None) -> None:
        current = self._current(conn, ref, lock=True)
        if current is None:
            return  # already gone: deleting is idempotent
        if expected is not None and current.version != expected:
            raise PreconditionFailed(ref, expected, current.version)
        key = self.res.key_value(ref)
        if self.res.custom is not None and self.res.custom_table is not None:
            ct = self.res.custom_table
            conn.execute(sa.delete(ct).where(ct.c[self.res.custom.owner] == key))
        for lm, lt in self.res.lists.values():
            conn.execute(sa.delete(lt).where(lt.c[lm.owner] == key))
        t = self.res.table
        conn.execute(sa.delete(t).where(t.c[self.res.key] == key))
        if self.capture:
            conn.execute(sa.delete(_ids).where(_ids.c.entity == self.res.entity,
                                               _ids.c.row_key == ref))

    # -- helpers -------------------------------------------------------------------
    def _current(self, conn: Connection, ref: str, *, lock: bool = False) -> Item | None:
        try:
            key = self.res.key_value(ref)
        except ValueError:
            return None
        got = self.rd.by_keys(conn, [key], lock=lock)
        if not got:
            return None
        it = got[0]
        if isinstance(it, Item):
            return it
        # an unreadable row still has a version: its raw content
        return Item(it.ref, "invalid")

    def _version(self, conn: Connection, ref: str) -> str:
        cur = self._current(conn, ref)
        assert cur is not None
        return cur.version

    def _invalid(self, ref: str, exc: Exception) -> ItemInvalid:
        if isinstance(exc, BadValue):
            return ItemInvalid(f"table {self.res.spec.table}, row {ref}",
                               f"{exc.column}: {exc.problem}", fix=exc.fix)
        return ItemInvalid(f"table {self.res.spec.table}, row {ref}", str(exc),
                           fix="correct the value so it fits the column's type")

    def _values(self, item: Item, ref: str) -> dict[str, Any]:
        """Column values for the fields and refs the item carries (absent ones untouched)."""
        out: dict[str, Any] = {}
        emails = set(self.res.spec.emails)
        try:
            for fname, (col, kind) in self.res.cols.items():
                if fname not in item.fields:
                    continue
                value = to_column(item.fields[fname], kind, "python")
                to_field(value, kind, col)  # the same rules as reading: type, length
                if fname in emails:
                    check_email(value, col)
                out[col] = value
            for fname, rc in self.res.refs.items():
                if fname in item.refs:
                    out[rc.column] = to_column(item.refs[fname], rc.kind, "python")
        except (BadValue, ValueError, TypeError) as exc:
            raise self._invalid(ref, exc) from exc
        wm = self.res.spec.watermark
        if wm and wm in self.res.table.c:  # the practice's own updated-at moves with our writes
            out[wm] = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        return out

    def _children(self, conn: Connection, key: Any, item: Item, ref: str) -> None:
        cf, ct = self.res.custom, self.res.custom_table
        if cf is not None and ct is not None:
            for fname, value in item.fields.items():
                if not fname.startswith(CUSTOM_PREFIX):
                    continue
                name = fname[len(CUSTOM_PREFIX):]
                defs = self._definitions(conn)
                if name not in defs:
                    raise ItemInvalid(f"table {self.res.spec.table}, row {ref}",
                                      f"custom field {name!r} is not defined in {cf.definitions}",
                                      fix=f"define it in {cf.definitions} or unmap the field")
                if value is not None and self.res.custom_length and len(str(value)) > self.res.custom_length:
                    raise ItemInvalid(f"table {self.res.spec.table}, row {ref}",
                                      f"custom field {name!r} is over {self.res.custom_length} characters",
                                      fix="shorten it")
                conn.execute(sa.delete(ct).where(ct.c[cf.owner] == key,
                                                 ct.c[cf.definition] == defs[name]))
                if value is not None:
                    conn.execute(sa.insert(ct).values(**{cf.owner: key, cf.definition: defs[name],
                                                         cf.value: str(value)}))
        for fname, (lm, lt) in self.res.lists.items():
            if fname not in item.fields:
                continue
            conn.execute(sa.delete(lt).where(lt.c[lm.owner] == key))
            for value in item.fields[fname] or []:
                stored: Any = value
                if lm.lookup_table and lm.lookup_key and lm.lookup_column:
                    stored = conn.execute(sa.text(
                        f'SELECT "{lm.lookup_key}" FROM "{lm.lookup_table}" '
                        f'WHERE "{lm.lookup_column}" = :v'), {"v": value}).scalar()
                    if stored is None:
                        raise ItemInvalid(f"table {self.res.spec.table}, row {ref}",
                                          f"{fname}: {value!r} is not in {lm.lookup_table}",
                                          fix=f"add it to {lm.lookup_table} first")
                elif isinstance(lt.c[lm.value].type, sa.Integer):
                    stored = int(value)
                conn.execute(sa.insert(lt).values(**{lm.owner: key, lm.value: stored}))

    def _definitions(self, conn: Connection) -> dict[str, Any]:
        if self._defs is None:
            cf = self.res.custom
            assert cf is not None
            rows = conn.execute(sa.text(
                f'SELECT "{cf.definition_key}", "{cf.definition_name}" FROM "{cf.definitions}"'))
            self._defs = {str(n): k for k, n in rows}
        return self._defs
