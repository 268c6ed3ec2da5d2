"""The status light of a link, and what is pending: one computation for the CLI and the service.

- green: the first migration is done, the last run succeeded, nothing is pending;
- blue: a run (or the first migration) is in progress or queued, with progress and ETA;
  or changes are waiting for the next run;
- red: error, inactive, paused (by a user, or by a rate limit "until …"), held by the
  delete guard, or records quarantined. Red always carries the reason and the fix.

"Pending" is derived, never stored: a hub record is pending for a link when the hub holds
content the spoke has not received (hub hash differs from the link's archive hash, or a
push/two-way link has no archive row for it yet).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, or_, select

from concord.hub import schema as s
from concord.hub.store import Hub

SENDING = ("push", "two-way")


@dataclass(slots=True)
class Status:
    link: str
    color: str  # green | blue | red
    reason: str
    fix: str | None = None
    state: str = "unknown"
    running: list[str] = field(default_factory=list)  # entities syncing now
    queued: list[str] = field(default_factory=list)
    progress_done: int | None = None
    progress_total: int | None = None
    eta_seconds: float | None = None
    paused_until: float | None = None
    pending: int = 0
    quarantined: int = 0
    last_run: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]


def directions(link_config: Any) -> dict[str, str]:
    """entity -> direction of a link config (``pull``, ``push`` or ``two-way``)."""
    if link_config is None:
        return {}
    ents = getattr(link_config, "entities", None) or {}
    return {name: str(getattr(ec, "direction", "two-way")) for name, ec in ents.items()}


def _pending_clause(link: str, direction: str) -> Any:
    r, a = s.records.c, s.archive.c
    changed = and_(a.hub_id.is_not(None), or_(a.hash != r.hash, r.deleted.is_(True)))
    if direction in SENDING:
        return or_(changed, and_(a.hub_id.is_(None), r.deleted.is_(False)))
    return changed


def _joined(hub: Hub, link: str, entity: str) -> Any:
    r, a = s.records.c, s.archive.c
    return s.records.outerjoin(s.archive, and_(
        a.tenant == r.tenant, a.link == link, a.entity == r.entity, a.hub_id == r.id)), r


def pending_count(hub: Hub, link: str, entity: str, direction: str) -> int:
    j, r = _joined(hub, link, entity)
    q = (select(func.count()).select_from(j)
         .where(r.tenant == hub.tenant, r.entity == entity, _pending_clause(link, direction)))
    with hub.engine.connect() as conn:
        return int(conn.execute(q).scalar_one())


def pending_ids(hub: Hub, links: Mapping[str, Any], entity: str, ids: Iterable[str]) -> dict[str, list[str]]:
    """For the given record ids: id -> names of the links it is pending for."""
    ids = list(ids)
    out: dict[str, list[str]] = {}
    if not ids:
        return out
    for name, cfg in links.items():
        direction = directions(cfg).get(entity)
        if direction is None:
            continue
        j, r = _joined(hub, name, entity)
        q = select(r.id).select_from(j).where(
            r.tenant == hub.tenant, r.entity == entity, r.id.in_(ids),
            _pending_clause(name, direction))
        with hub.engine.connect() as conn:
            for row in conn.execute(q):
                out.setdefault(row.id, []).append(name)
    return out


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def link_status(hub: Hub, link: str, link_config: Any = None, *, queued: Iterable[str] = (),
                now: float | None = None) -> Status:
    """The light for ``link``. ``queued`` names entities waiting in a scheduler's queue."""
    now = time.time() if now is None else now
    row = hub.link_row(link)
    st = Status(link=link, color="red", reason="", queued=sorted(set(queued)))
    if row is None:
        st.reason = "this link has never been activated or run"
        st.fix = f"activate it (dashboard, or `concord sync {link}`)"
        if st.queued:
            st.color, st.reason, st.fix = "blue", "first sync queued", None
        return st
    st.state = row["state"]
    st.paused_until = row.get("paused_until")
    runs = hub.runs(link, limit=20)
    running = [r for r in runs if r["status"] == "running"]
    st.running = sorted({r["entity"] or "all" for r in running})
    finished = [r for r in runs if r["status"] not in ("running", "queued")]
    st.last_run = finished[0] if finished else None
    st.quarantined = len(hub.quarantined(link))
    st.pending = sum(pending_count(hub, link, e, d) for e, d in directions(link_config).items())

    if row["state"] == "inactive":
        st.reason, st.fix = "the link is inactive", "activate it from the dashboard (admin)"
    elif row["state"] == "paused":
        st.reason = "paused by an administrator"
        st.fix = "press Resume (admin) to sync again"
    elif st.paused_until and st.paused_until > now:
        st.reason = f"Sync paused until {_when(st.paused_until)}"
        st.fix = (f"the spoke's rate limit resets then and the sync resumes by itself; "
                  f"reason: {row.get('pause_reason') or 'rate limited'}")
    elif row.get("held_reason"):
        st.reason = f"held by the delete guard: {row['held_reason']}"
        st.fix = "review the deletes, then sync with --confirm-deletes (or restore the spoke)"
    elif running or st.queued:
        st.color = "blue"
        if running:
            r = running[0]
            done, total = r.get("progress_done"), r.get("progress_total")
            st.progress_done, st.progress_total = done, total
            what = "migration" if not row.get("migrated") else "sync"
            st.reason = f"{what} in progress: {', '.join(st.running)}"
            if done is not None and total:
                st.reason += f" ({done:,} of {total:,})"
                elapsed = now - (r.get("started_at") or now)
                if done > 0 and elapsed > 0:
                    st.eta_seconds = (total - done) * elapsed / done
        else:
            st.reason = f"sync queued: {', '.join(st.queued)}"
    elif st.last_run is not None and st.last_run["status"] not in ("ok",):
        msg = st.last_run.get("message") or row.get("last_error") or st.last_run["status"]
        st.reason = f"the last run failed: {msg}"
        st.fix = "fix the cause named above, then press Sync"
    elif row.get("last_error") and st.last_run is None:
        st.reason, st.fix = f"error: {row['last_error']}", "fix the cause, then press Sync"
    elif st.quarantined:
        st.reason = f"{st.quarantined} record(s) could not be synced and are quarantined"
        st.fix = "see `concord log` for each record's error, fix it at its source, and sync again"
    elif not row.get("migrated") and st.last_run is None:
        st.reason = "the first migration has not run yet"
        st.fix = "press Sync to start it"
    elif st.pending:
        st.color = "blue"
        st.reason = f"{st.pending} record(s) pending sync; the next run sends them"
        st.fix = "press Sync to send them now"
    else:
        st.color = "green"
        st.reason = "up to date"
        if st.last_run and st.last_run.get("finished_at"):
            st.reason += f" (last run {_when(st.last_run['finished_at'])})"
    return st
