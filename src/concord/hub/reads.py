"""The hub's read API for the service, the status light, the metrics and conflict
resolution: what is pending for a link, what a link leaves out, one conflict, the counts the
metrics export. A mixin of ``Hub``, so no module outside ``hub/`` writes SQL on hub tables.

"Pending" is derived, never stored: a hub record is pending for a link when the hub holds
content the spoke has not received (hub hash differs from the link's archive hash, or a
push/two-way link has no archive row for it yet), unless the link's selection left it out on
purpose and that note still holds (``hub/exclusions.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, or_, select

from concord.hub import schema as s

SENDING = ("push", "two-way")


def _pending_clause(direction: str, selection: str | None) -> Any:
    r, a, e = s.records.c, s.archive.c, s.exclusions.c
    # the hub record changed since the link last synced it (rows from before revision 0004
    # hold no hub_hash: their content hash is the record's when the link carries all of it)
    changed = and_(a.hub_id.is_not(None),
                   or_(func.coalesce(a.hub_hash, a.hash) != r.hash, r.deleted.is_(True)))
    clause = changed
    if direction in SENDING:
        clause = or_(changed, and_(a.hub_id.is_(None), r.deleted.is_(False)))
    if selection is not None:  # not left out on purpose at this content and selection
        clause = and_(clause, e.hub_id.is_(None))
    return clause


def _excluded_on(link: str, selection: str) -> Any:
    """A record's note 'left out by this link' that still holds: not written since (same
    seq; a delete writes too), same selection."""
    r, e = s.records.c, s.exclusions.c
    return and_(e.tenant == r.tenant, e.link == link, e.entity == r.entity, e.hub_id == r.id,
                e.seq == r.seq, e.selection == selection, r.deleted.is_(False))


def _joined(link: str, selection: str | None) -> Any:
    r, a = s.records.c, s.archive.c
    j = s.records.outerjoin(s.archive, and_(
        a.tenant == r.tenant, a.link == link, a.entity == r.entity, a.hub_id == r.id))
    if selection is not None:
        j = j.outerjoin(s.exclusions, _excluded_on(link, selection))
    return j


@dataclass
class MetricsCounts:
    """What ``/metrics`` exports from the hub, read in one connection."""

    runs: list[tuple[str, str | None, str, int]] = field(default_factory=list)
    run_counts: list[tuple[str, str | None, str]] = field(default_factory=list)
    open_conflicts: list[tuple[str, int]] = field(default_factory=list)
    quarantined: list[tuple[str, str, int]] = field(default_factory=list)
    checkpoints: dict[tuple[str, str], int] = field(default_factory=dict)


class ReadsMixin:
    engine: Engine
    tenant: str

    # -- pending and left out ---------------------------------------------------------
    def pending_count(self, link: str, entity: str, direction: str,
                      selection: str | None = None) -> int:
        """Records waiting to be sent over ``link``. ``selection`` (the link's selection
        fingerprint) leaves out the records its filters and value maps exclude on purpose;
        None counts them."""
        r = s.records.c
        q = (select(func.count()).select_from(_joined(link, selection))
             .where(r.tenant == self.tenant, r.entity == entity,
                    _pending_clause(direction, selection)))
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def pending_oldest(self, link: str, entity: str, direction: str,
                       selection: str | None = None) -> float | None:
        """When the oldest change still waiting for this link was made (None: nothing)."""
        r = s.records.c
        q = (select(func.min(r.updated_at)).select_from(_joined(link, selection))
             .where(r.tenant == self.tenant, r.entity == entity,
                    _pending_clause(direction, selection)))
        with self.engine.connect() as conn:
            got = conn.execute(q).scalar()
        return float(got) if got is not None else None

    def excluded_count(self, link: str, entity: str, selection: str) -> int:
        """Hub records this link leaves out on purpose (filters, value maps, remove_when)."""
        r = s.records.c
        q = (select(func.count())
             .select_from(s.records.join(s.exclusions, _excluded_on(link, selection)))
             .where(r.tenant == self.tenant, r.entity == entity))
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def pending_among(self, link: str, entity: str, direction: str, selection: str | None,
                      ids: Iterable[str]) -> set[str]:
        """Which of ``ids`` are pending for ``link``."""
        ids = list(ids)
        if not ids:
            return set()
        r = s.records.c
        q = select(r.id).select_from(_joined(link, selection)).where(
            r.tenant == self.tenant, r.entity == entity, r.id.in_(ids),
            _pending_clause(direction, selection))
        with self.engine.connect() as conn:
            return {row.id for row in conn.execute(q)}

    # -- conflicts --------------------------------------------------------------------
    def conflict(self, cid: int, *, conn: Connection | None = None) -> dict[str, Any] | None:
        """One conflict of this practice, or None."""
        c = s.conflicts.c
        q = select(s.conflicts).where(c.id == cid, c.tenant == self.tenant)
        if conn is not None:
            row = conn.execute(q).first()
        else:
            with self.engine.connect() as cn:
                row = cn.execute(q).first()
        return dict(row._mapping) if row is not None else None

    # -- quarantine -------------------------------------------------------------------
    def quarantine_list(self, link: str) -> list[dict[str, Any]]:
        """``link``'s quarantined records, oldest first: entity, side, spoke ref, error, since,
        attempts, next retry, and the hub record's id and fields when the hub holds it (a hub
        side ref is the hub id; a spoke ref is found through the link's archive)."""
        q, a, r = s.quarantine.c, s.archive.c, s.records.c
        hub_id = func.coalesce(a.hub_id, r.id)
        j = (s.quarantine
             .outerjoin(s.archive, and_(a.tenant == q.tenant, a.link == q.link,
                                        a.entity == q.entity, q.side == "spoke",
                                        a.spoke_ref == q.ref))
             .outerjoin(s.records, and_(r.tenant == q.tenant, r.entity == q.entity,
                                        or_(r.id == a.hub_id,
                                            and_(q.side == "hub", r.id == q.ref)))))
        sel = (select(q.entity, q.side, q.ref, q.error, q.at, q.attempts, q.retry_at,
                      hub_id.label("hub_id"), r.data)
               .select_from(j)
               .where(q.tenant == self.tenant, q.link == link, q.resolved_at.is_(None))
               .order_by(q.at, q.id))
        out = []
        with self.engine.connect() as conn:
            for row in conn.execute(sel):
                fields = json.loads(row.data).get("f", {}) if row.data else {}
                out.append({"entity": row.entity, "side": row.side, "ref": row.ref,
                            "error": row.error, "since": float(row.at),
                            "attempts": int(row.attempts or 1),
                            "retry_at": float(row.retry_at) if row.retry_at is not None
                            else None,
                            "hub_id": row.hub_id if row.data else None, "fields": fields})
        return out

    # -- metrics ----------------------------------------------------------------------
    def metrics_counts(self) -> MetricsCounts:
        t = self.tenant
        r, c, q, cp = s.runs.c, s.conflicts.c, s.quarantine.c, s.checkpoints.c
        with self.engine.connect() as conn:
            runs = conn.execute(select(r.link, r.entity, r.status, func.count())
                                .where(r.tenant == t).group_by(r.link, r.entity, r.status)).all()
            counts = conn.execute(select(r.link, r.entity, r.counts)
                                  .where(r.tenant == t, r.counts.is_not(None))).all()
            conf = conn.execute(select(c.link, func.count())
                                .where(c.tenant == t, c.resolved_at.is_(None))
                                .group_by(c.link)).all()
            quar = conn.execute(select(q.link, q.entity, func.count())
                                .where(q.tenant == t, q.resolved_at.is_(None))
                                .group_by(q.link, q.entity)).all()
            cps = {(row.link, row.entity): int(row.hub_seq) for row in conn.execute(
                select(cp.link, cp.entity, cp.hub_seq).where(cp.tenant == t))}
        return MetricsCounts(
            runs=[(a, b, st, int(n)) for a, b, st, n in runs],
            run_counts=[(a, b, js) for a, b, js in counts],
            open_conflicts=[(a, int(n)) for a, n in conf],
            quarantined=[(a, b, int(n)) for a, b, n in quar],
            checkpoints=cps)
