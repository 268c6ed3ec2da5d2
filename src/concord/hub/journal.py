"""The hub's journal: runs, the activity log, and the cross-process locks that keep one
link + entity from syncing twice at once. A mixin of ``Hub`` (see store.py)."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from concord.errors import LinkLocked
from concord.hub import schema as s


class JournalMixin:
    engine: Engine
    tenant: str

    def begin(self) -> AbstractContextManager[Connection]:  # pragma: no cover - Hub's
        raise NotImplementedError

    def start_run(self, link: str, entity: str | None, trigger: str, requested_by: str | None = None,
                  record: str | None = None, status: str = "running") -> int:
        with self.begin() as conn:
            res = conn.execute(s.runs.insert().values(
                tenant=self.tenant, link=link, entity=entity, record=record, trigger=trigger,
                requested_by=requested_by, status=status, owner=_process(),
                started_at=time.time() if status == "running" else None))
            pk = res.inserted_primary_key
            assert pk is not None
            return int(pk[0])

    def interrupt_dead_runs(self, link: str | None = None, *, stale_after: float = 120.0) -> int:
        """Mark as ``interrupted`` the runs still ``running`` whose process is gone: on this
        host, its pid no longer exists; elsewhere (or from before owners were noted), it
        started over ``stale_after`` seconds ago and no live lock of its link is held.
        Returns how many were marked; each is noted in the activity log."""
        c = s.runs.c
        q = select(c.id, c.link, c.entity, c.owner, c.started_at).where(
            c.tenant == self.tenant, c.status == "running")
        if link:
            q = q.where(c.link == link)
        now = time.time()
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        dead = []
        for r in rows:
            gone = _owner_gone(r.owner)
            if gone is None:  # cannot tell from here
                gone = (now - (r.started_at or 0) > stale_after
                        and not self.is_any_locked(r.link))
            if gone:
                dead.append(r)
        for r in dead:
            who = f" (process {r.owner})" if r.owner else ""
            msg = (f"interrupted: the process running it{who} stopped before it finished; "
                   "the next run resumes from the last checkpoint")
            with self.begin() as conn:
                conn.execute(update(s.runs).where(s.runs.c.id == r.id,
                                                  s.runs.c.status == "running")
                             .values(status="interrupted", finished_at=now, message=msg))
            self.log_activity("concord", "run interrupted", link=r.link, entity=r.entity,
                              outcome="interrupted", detail=f"run {r.id}: {msg}")
        return len(dead)

    def update_run(self, run_id: int, **values: Any) -> None:
        if "counts" in values and not isinstance(values["counts"], str | None):
            values["counts"] = json.dumps(values["counts"])
        with self.begin() as conn:
            conn.execute(update(s.runs).where(s.runs.c.id == run_id).values(**values))

    def delete_run(self, run_id: int) -> None:
        with self.begin() as conn:
            conn.execute(delete(s.runs).where(s.runs.c.id == run_id))

    def runs(self, link: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        c = s.runs.c
        q = select(s.runs).where(c.tenant == self.tenant)
        if link:
            q = q.where(c.link == link)
        with self.engine.connect() as conn:
            out = [dict(r._mapping) for r in conn.execute(q.order_by(c.id.desc()).limit(limit))]
        for r in out:
            r["counts"] = json.loads(r["counts"]) if r["counts"] else {}
        return out

    def log_activity(self, actor: str, action: str, *, link: str | None = None,
                     entity: str | None = None, detail: str | None = None,
                     outcome: str | None = None) -> None:
        with self.begin() as conn:
            conn.execute(s.activity.insert().values(
                tenant=self.tenant, at=time.time(), actor=actor, action=action, link=link,
                entity=entity, detail=detail, outcome=outcome))

    def activity(self, limit: int = 100) -> list[dict[str, Any]]:
        c = s.activity.c
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(s.activity).where(c.tenant == self.tenant).order_by(c.id.desc()).limit(limit))]

    # -- locks --------------------------------------------------------------------------
    @contextmanager
    def lock(self, name: str, *, stale_after: float = 120.0) -> Iterator[None]:
        """A cross-process lock row: the same link + entity never syncs twice at once.
        A lock whose holder died (same host, pid gone) or stopped beating is taken over."""
        key = f"{self.tenant}:{name}"
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        now = time.time()
        try:
            with self.begin() as conn:
                row = conn.execute(select(s.locks).where(s.locks.c.name == key)).first()
                if row is not None:
                    if row.owner != owner and not _lock_is_stale(row, now, stale_after):
                        raise LinkLocked(f"{name} is already being synced (by {row.owner} since "
                                         f"{time.strftime('%H:%M:%S', time.localtime(row.acquired_at))})")
                    conn.execute(delete(s.locks).where(s.locks.c.name == key))
                conn.execute(s.locks.insert().values(name=key, owner=owner, acquired_at=now,
                                                     heartbeat=now))
        except IntegrityError:
            # another worker saw no lock row at the same instant and inserted first
            raise LinkLocked(f"{name} is already being synced (taken by another worker "
                             "at the same moment)") from None
        try:
            yield
        finally:
            try:
                with self.begin() as conn:
                    conn.execute(delete(s.locks).where(s.locks.c.name == key, s.locks.c.owner == owner))
            except OperationalError:
                pass

    def heartbeat(self, name: str) -> None:
        with self.begin() as conn:
            conn.execute(update(s.locks).where(s.locks.c.name == f"{self.tenant}:{name}")
                         .values(heartbeat=time.time()))

    def is_any_locked(self, link: str) -> bool:
        """Is any entity of ``link`` syncing right now?"""
        prefix = f"{self.tenant}:sync:{link}:"
        with self.engine.connect() as conn:
            rows = conn.execute(select(s.locks).where(s.locks.c.name.startswith(prefix))).all()
        now = time.time()
        return any(not _lock_is_stale(r, now, 120.0) for r in rows)

    def is_locked(self, name: str) -> bool:
        with self.engine.connect() as conn:
            row = conn.execute(select(s.locks).where(s.locks.c.name == f"{self.tenant}:{name}")).first()
        return row is not None and not _lock_is_stale(row, time.time(), 120.0)


def _process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_gone(owner: str | None) -> bool | None:
    """Has the process ``host:pid`` ended? None: it runs on another host (or is unknown)."""
    host, pid = [*str(owner or "").split(":"), "", ""][:2]
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _lock_is_stale(row: Any, now: float, stale_after: float) -> bool:
    gone = _owner_gone(row.owner)
    if gone is not None:  # a process of this host: stale exactly when it has ended
        return gone
    return bool(now - row.heartbeat > stale_after)
