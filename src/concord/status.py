"""A link's status light: green / blue / red, always with the reason and, when red, the fix.

One function serves the CLI (`concord status`), the API and the dashboard, so they never
disagree.

- green: the first migration is done, the last run succeeded, nothing is pending;
- blue: a run (or the first migration) is in progress or queued, with progress and ETA,
  or records are waiting to be sent by the next run;
- red: error, inactive, paused (by an administrator, or by a rate limit "until …"), or held
  by the delete guard.

"Pending" is derived, never stored: a hub record is pending for a link when the hub holds
content the spoke has not received (hub hash differs from the link's archive hash, or a
push/two-way link has no archive row for it yet).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import and_, func, or_, select

from concord.hub import schema as s
from concord.hub.store import Hub

SENDING = ("push", "two-way")


@dataclass
class Status:
    link: str
    color: str  # green | blue | red
    reason: str
    fix: str = ""
    progress_done: int | None = None
    progress_total: int | None = None
    eta_s: float | None = None
    paused_until: float | None = None
    quarantined: int = 0
    conflicts: int = 0
    last_run_at: float | None = None
    state: str = "unknown"
    running: list[str] = field(default_factory=list)  # entities syncing now
    queued: list[str] = field(default_factory=list)  # entities waiting in a scheduler queue
    pending: int = 0  # records the hub holds that this link has not sent

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def directions(link_config: Any) -> dict[str, str]:
    """entity -> direction of a link config (``pull``, ``push`` or ``two-way``)."""
    if link_config is None:
        return {}
    ents = getattr(link_config, "entities", None) or {}
    return {name: str(getattr(ec, "direction", "two-way")) for name, ec in ents.items()}


def _pending_clause(direction: str) -> Any:
    r, a = s.records.c, s.archive.c
    changed = and_(a.hub_id.is_not(None), or_(a.hash != r.hash, r.deleted.is_(True)))
    if direction in SENDING:
        return or_(changed, and_(a.hub_id.is_(None), r.deleted.is_(False)))
    return changed


def _joined(link: str) -> Any:
    r, a = s.records.c, s.archive.c
    return s.records.outerjoin(s.archive, and_(
        a.tenant == r.tenant, a.link == link, a.entity == r.entity, a.hub_id == r.id))


def pending_count(hub: Hub, link: str, entity: str, direction: str) -> int:
    r = s.records.c
    q = (select(func.count()).select_from(_joined(link))
         .where(r.tenant == hub.tenant, r.entity == entity, _pending_clause(direction)))
    with hub.engine.connect() as conn:
        return int(conn.execute(q).scalar_one())


def pending_ids(hub: Hub, links: Mapping[str, Any], entity: str,
                ids: Iterable[str]) -> dict[str, list[str]]:
    """For the given record ids: id -> names of the links it is pending for."""
    ids = list(ids)
    out: dict[str, list[str]] = {}
    if not ids:
        return out
    r = s.records.c
    for name, cfg in links.items():
        direction = directions(cfg).get(entity)
        if direction is None:
            continue
        q = select(r.id).select_from(_joined(name)).where(
            r.tenant == hub.tenant, r.entity == entity, r.id.in_(ids), _pending_clause(direction))
        with hub.engine.connect() as conn:
            for row in conn.execute(q):
                out.setdefault(row.id, []).append(name)
    return out


def link_status(hub: Hub, name: str, link_config: Any = None, *, queued: Iterable[str] = (),
                now: float | None = None) -> Status:
    """The light of ``name``. With ``link_config`` it also counts pending records; ``queued``
    names entities waiting in a scheduler's queue (the service knows them, the CLI does not)."""
    now = time.time() if now is None else now
    queued = sorted(set(queued))
    row = hub.link_row(name)
    if row is None:
        if queued:
            return Status(name, "blue", f"first sync queued: {', '.join(queued)}", queued=queued)
        return Status(name, "red", "not activated yet",
                      f"run `concord sync {name}` or `concord link activate {name}`")
    pending = sum(pending_count(hub, name, e, d) for e, d in directions(link_config).items())
    runs = hub.runs(name, limit=10)
    running = [r for r in runs if r["status"] == "running"]
    base: dict[str, Any] = {
        "quarantined": len(hub.quarantined(name)), "conflicts": len(hub.conflicts(link=name)),
        "last_run_at": row.get("last_run_at"), "state": row["state"], "queued": queued,
        "pending": pending, "paused_until": row["paused_until"],
        "running": sorted({r["entity"] or "all" for r in running})}
    if running and hub.is_any_locked(name):
        last = running[0]
        done, total = last.get("progress_done"), last.get("progress_total")
        eta = None
        if done and total and last.get("started_at"):
            rate = done / max(1e-6, now - last["started_at"])
            eta = (total - done) / rate if rate else None
        what = "first migration" if not row["migrated"] else "sync"
        pct = f" ({done:,} of {total:,})" if done is not None and total else ""
        return Status(name, "blue", f"{what} in progress{pct}: {', '.join(base['running'])}",
                      progress_done=done, progress_total=total, eta_s=eta, **base)
    base["running"] = []
    if row["state"] == "inactive":
        return Status(name, "red", "sync is inactive", f"run `concord link activate {name}`", **base)
    if row["state"] == "paused":
        return Status(name, "red", "sync is paused by an administrator",
                      f"run `concord link resume {name}`", **base)
    if row["paused_until"] and row["paused_until"] > now:
        until = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["paused_until"]))
        return Status(name, "red", f"Sync paused until {until}: {row['pause_reason'] or 'rate limit'}",
                      "nothing to do: it resumes by itself", **base)
    if row["held_reason"]:
        return Status(name, "red", f"held by the delete guard: {row['held_reason']}",
                      f"check the spoke, then `concord sync {name} --confirm-deletes`", **base)
    if queued:
        return Status(name, "blue", f"sync queued: {', '.join(queued)}", **base)
    if row["last_error"]:
        return Status(name, "red", f"last run failed: {row['last_error']}",
                      "correct the cause named above, then sync again", **base)
    if not row["migrated"]:
        return Status(name, "red", "the first migration has not completed",
                      f"run `concord sync {name}`", **base)
    if pending:
        return Status(name, "blue", f"{pending} record(s) pending sync; the next run sends them",
                      "press Sync to send them now", **base)
    if base["quarantined"]:
        return Status(name, "green", f"in sync; {base['quarantined']} record(s) quarantined",
                      f"see `concord status {name} --details`", **base)
    return Status(name, "green", "in sync", **base)
