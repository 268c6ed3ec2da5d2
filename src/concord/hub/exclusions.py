"""Records a link leaves out on purpose (see ``schema.exclusions``), and spoke items it leaves
out (``schema.spoke_left``). A mixin of ``Hub``.

A row says: when this record was at feed position ``seq``, the link's selection (filters,
value maps, ``remove_when``; fingerprint ``selection``) left it out. The status light does
not count such a record as pending while both still hold (any write to the record gives it a
new seq); the engine writes the rows as it plans, and revisits the rows of an older
selection when the link's configuration changes.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, delete, exists, func, or_, select

from concord.hub import schema as s


def selection_key(entity_config: Any, parts: tuple[str, ...] = ("filter", "values",
                                                                 "remove_when")) -> str:
    """The fingerprint of what decides whether a link carries a record: its filters, value
    maps (a value with no entry is not synced) and ``remove_when``."""
    doc = {k: getattr(entity_config, k, None) or {} for k in parts}
    text = json.dumps(doc, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def spoke_selection_key(entity_config: Any) -> str:
    """The same for a spoke item, whose filtered and value-mapped hub fields come out of the
    link's field map as well: a changed field map reads the items it left out again."""
    return selection_key(entity_config, ("filter", "values", "remove_when", "fields"))


class ExclusionsMixin:
    engine: Engine
    tenant: str

    def _save_notes(self, conn: Connection, table: Any, cols: tuple[str, ...], link: str,
                    entity: str, rows: Sequence[tuple[Any, ...]], selection: str) -> None:
        """Notes (``cols``, the key first) taken under ``selection``, in ``exclusions`` or
        ``spoke_left``."""
        if not rows:
            return
        from concord.hub.store import upsert_rows

        now = time.time()
        upsert_rows(conn, table, ("tenant", "link", "entity", *cols, "selection", "at"),
                    [(self.tenant, link, entity, *r, selection, now) for r in rows],
                    ("tenant", "link", "entity", cols[0]))

    def _drop_notes(self, conn: Connection, table: Any, key: str, link: str, entity: str,
                    keys: Sequence[str]) -> None:
        c = table.c
        for i in range(0, len(keys), 500):
            conn.execute(delete(table).where(
                c.tenant == self.tenant, c.link == link, c.entity == entity,
                c[key].in_(keys[i:i + 500])))

    def save_exclusions(self, conn: Connection, link: str, entity: str,
                        rows: Sequence[tuple[str, int]], selection: str) -> None:
        """rows: (hub_id, the record's seq when planned) left out under ``selection``."""
        self._save_notes(conn, s.exclusions, ("hub_id", "seq"), link, entity, rows, selection)

    def drop_exclusions(self, conn: Connection, link: str, entity: str, hub_ids: Sequence[str]) -> None:
        self._drop_notes(conn, s.exclusions, "hub_id", link, entity, hub_ids)

    def has_exclusions(self, link: str, entity: str) -> bool:
        c = s.exclusions.c
        with self.engine.connect() as conn:
            return conn.execute(select(c.hub_id).where(
                c.tenant == self.tenant, c.link == link, c.entity == entity).limit(1)).first() is not None

    def stale_exclusions(self, link: str, entity: str, selection: str) -> list[str]:
        """Records left out under another selection than ``selection``: the link's
        configuration changed since, so they must be planned again. Two index range scans
        (below and above the current key), so this costs nothing when there are none."""
        c = s.exclusions.c
        q = select(c.hub_id).where(c.tenant == self.tenant, c.link == link, c.entity == entity,
                                   or_(c.selection < selection, c.selection > selection))
        with self.engine.connect() as conn:
            return [r.hub_id for r in conn.execute(q)]

    # -- spoke items left out -----------------------------------------------------------
    def save_spoke_left(self, conn: Connection, link: str, entity: str,
                        rows: Sequence[tuple[str, str, str | None, str]], selection: str) -> None:
        """rows: (spoke ref, the version read, its identity, its content's hash) of items
        ``selection`` leaves out."""
        self._save_notes(conn, s.spoke_left, ("ref", "version", "ident", "hash"), link, entity,
                         rows, selection)

    def drop_spoke_left(self, conn: Connection, link: str, entity: str, refs: Sequence[str]) -> None:
        self._drop_notes(conn, s.spoke_left, "ref", link, entity, refs)

    def spoke_left_count(self, link: str, entity: str, selection: str) -> int:
        """Spoke items left out under ``selection`` (the link's current one) that are not
        counted with the hub's records left out already: linked to one, or holding the
        identity of one the link leaves out for that reason."""
        c, a, x = s.spoke_left.c, s.archive.c, s.exclusions.c
        linked = exists().where(a.tenant == c.tenant, a.link == c.link, a.entity == c.entity,
                                a.spoke_ref == c.ref)
        held = exists().where(x.tenant == c.tenant, x.link == c.link, x.entity == c.entity,
                              x.hub_id == c.ident)
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).where(
                c.tenant == self.tenant, c.link == link, c.entity == entity,
                c.selection == selection, ~linked, ~held)).scalar_one())

    def spoke_left_among(self, link: str, entity: str, key: str, keys: Sequence[str],
                         selection: str) -> set[str]:
        """Which of ``keys`` (of column ``key``: ``ref`` or ``ident``) name spoke items
        ``selection`` leaves out."""
        if not keys:
            return set()
        from concord.hub.store import _select_in

        with self.engine.connect() as conn:
            rows = _select_in(conn, s.spoke_left, (key, "selection"),
                              {"tenant": self.tenant, "link": link, "entity": entity}, key,
                              list(keys))
        return {k for k, sel in rows if sel == selection}

    def spoke_left(self, link: str, entity: str, refs: Sequence[str] | None = None
                   ) -> dict[str, tuple[str, str, str | None, str | None]]:
        """spoke ref -> (version, selection, content hash, identity) of the items left out:
        all of the link's entity, or those of ``refs``."""
        from concord.hub.store import _select_in

        c = s.spoke_left.c
        cols = ("ref", "version", "selection", "hash", "ident")
        with self.engine.connect() as conn:
            if refs is None:
                rows: Any = conn.execute(select(*(c[k] for k in cols)).where(
                    c.tenant == self.tenant, c.link == link, c.entity == entity)).all()
            else:
                rows = _select_in(conn, s.spoke_left, cols,
                                  {"tenant": self.tenant, "link": link, "entity": entity},
                                  "ref", list(refs))
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}
