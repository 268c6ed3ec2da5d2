"""The in-process scheduler of ``concord serve``: one worker thread per link.

A link runs on its schedule, when its connector's ``wait_for_change`` fires (connectors that
really notify), and on manual requests. A request for a link + entity that is already queued
or running is not queued twice: the caller is told, and the dashboard keeps its button
disabled ("Syncing…") until the run is done; one entity type asked for while the whole link
runs is queued behind that run ("Queued…"). A spoke that answers "rate limited" pauses the
link until the time it names ("Sync paused until …"); the worker resumes it by itself.
Other errors are told apart: after a transient one (a server away, a timeout) the link
retries with exponential backoff (5 s doubling to 15 min, "retrying at …"); after a terminal
one (a wrong password, a bad configuration) it stops, red with the reason, until a person
syncs it (which clears the state when it succeeds), resumes it or corrects the cause.
Every request and every run is written to the activity log: who, what, when, outcome, counts.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from concord.errors import (
    ConcordError,
    LinkLocked,
    LinkUnavailable,
    RateLimited,
)
from concord.hub.store import Hub
from concord.link.retry import record_failure
from concord.link.status import local_time

log = logging.getLogger("concord.scheduler")

SyncFn = Callable[..., Any]

def default_sync_fn(isolate: bool = True) -> SyncFn:
    """The engine: in a worker process per link (``isolate``), or in the link's thread."""
    if isolate:
        from concord.service.worker import ProcessSync

        return ProcessSync()
    from concord.engine import sync_link

    return sync_link


def parse_schedule(value: Any) -> float | None:
    """Seconds between runs: ``300``, ``"300"``, ``"5m"``, ``"every 1h"``; None/"manual": never."""
    if value is None or value in ("", "manual", "never"):
        return None
    if isinstance(value, int | float):
        return float(value) if value > 0 else None
    m = re.fullmatch(r"\s*(?:every\s+)?(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(value))
    if not m:
        return None
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


@dataclass(slots=True)
class Request:
    entity: str | None  # None: every entity of the link
    trigger: str
    requested_by: str | None
    records: set[str] = field(default_factory=set)
    at: float = field(default_factory=time.time)


@dataclass(slots=True)
class RequestOutcome:
    accepted: bool  # False: already queued or running, nothing new started
    state: str  # queued | running
    message: str


class _LinkWorker:
    def __init__(self, sched: Scheduler, name: str, cfg: Any) -> None:
        self.sched, self.name, self.cfg = sched, name, cfg
        self.queue: list[Request] = []
        self.running: Request | None = None
        self.interval = parse_schedule(getattr(cfg, "schedule", None)
                                       or getattr(cfg, "interval", None))
        self.next_due = time.time() + self.interval if self.interval else None
        self.thread = threading.Thread(target=self.loop, name=f"concord-link-{name}", daemon=True)
        self.watcher: threading.Thread | None = None

    # -- the loop -----------------------------------------------------------------
    def loop(self) -> None:
        sched = self.sched
        while not sched.stopping.is_set():
            req = None
            with sched.cond:
                wait = self._next_wait()
                if wait > 0:
                    sched.cond.wait(timeout=min(wait, 1.0))
                    continue
                if self.queue and self._resume_if_due():
                    req = self.queue.pop(0)
                    if req.trigger != "manual" and self._held_back():
                        continue  # backing off or stopped: only a person's request runs now
                    self.running = req
                elif self.next_due is not None and time.time() >= self.next_due:
                    self.next_due = time.time() + self.interval if self.interval else None
                    if self._active() and not self._held_back():
                        req = Request(None, "schedule", "scheduler")
                        self.running = req
            if req is None:
                continue
            try:
                self.run(req)
            except Exception:  # the hub itself failed (e.g. the database went away)
                log.exception("link %s: the run could not be journalled", self.name)
            finally:
                with sched.cond:
                    self.running = None
                    sched.cond.notify_all()

    def _next_wait(self) -> float:
        now = time.time()
        row_until = self.sched.paused_until(self.name)
        if self.queue:
            return max(0.0, (row_until or 0) - now)
        if self.next_due is not None:
            return max(0.0, self.next_due - now)
        return 1.0

    def _held_back(self) -> bool:
        """Stopped after a terminal error, or waiting out a transient one's backoff."""
        row = self.sched.hub.link_row(self.name)
        if row is None:
            return False
        return bool(row.get("parked")) or bool(row.get("retry_at") and row["retry_at"] > time.time())

    def _failed(self, req: Request, exc: BaseException, message: str) -> None:
        """A failed run: back off (transient) or stop (terminal), logged once with when."""
        hub = self.sched.hub
        what = req.entity or "all entities"
        failure = record_failure(hub, self.name, exc, message,
                                 first=self.sched.backoff_first, cap=self.sched.backoff_max)
        if failure.stopped:
            detail = (f"{what}: {message}; stopped: retrying will not help until the cause is "
                      f"corrected (then press Sync or run `concord sync {self.name}`)")
            outcome = "stopped"
        else:
            at = failure.retry_at
            assert at is not None
            with self.sched.cond:
                self.next_due = at if self.next_due is None else min(self.next_due, at)
            detail = f"{what}: {message}; retrying at {local_time(at)}"
            outcome = "error"
        hub.log_activity(req.requested_by or "scheduler", "sync run", link=self.name,
                         entity=req.entity, outcome=outcome, detail=detail)

    def _active(self) -> bool:
        """Scheduled runs are for activated links only: activating is an administrator's act."""
        row = self.sched.hub.link_row(self.name)
        return row is not None and row["state"] == "active"

    def _resume_if_due(self) -> bool:
        """Clear an expired rate-limit pause (logged); False while still paused."""
        row = self.sched.hub.link_row(self.name)
        until = row.get("paused_until") if row else None
        if until:
            if until > time.time():
                return False
            self.sched.hub.set_link(self.name, paused_until=None, pause_reason=None)
            self.sched.hub.log_activity("scheduler", "sync resumed", link=self.name,
                                        detail="the rate limit pause has ended", outcome="ok")
        return True

    def run(self, req: Request) -> None:
        hub = self.sched.hub
        what = req.entity or "all entities"
        entities = [req.entity] if req.entity else None
        try:
            result = self.sched.sync_fn(hub, self.cfg, entities=entities, trigger=req.trigger,
                                        requested_by=req.requested_by)
        except RateLimited as exc:  # the engine turns this into a "paused" result; in case not
            hub.set_link(self.name, paused_until=exc.until, pause_reason=str(exc))
            result = None
            status, message = "paused", str(exc)
        except LinkLocked as exc:
            hub.log_activity(req.requested_by or "scheduler", "sync run", link=self.name,
                             entity=req.entity, outcome="skipped", detail=f"{what}: {exc}")
            return
        except ConcordError as exc:  # the engine has journalled the run and the link's error
            self._failed(req, exc, str(exc))
            return
        except Exception as exc:  # a bug must not kill the worker; it is logged and shown
            log.exception("sync of %s failed", self.name)
            hub.set_link(self.name, last_error=f"internal error: {exc!r}")
            self._failed(req, exc, f"internal error: {exc!r}")
            return
        else:
            status = str(getattr(result, "status", "ok"))
            message = str(getattr(result, "message", "") or "")
        if status == "paused":
            # Rate limited: "Sync paused until …"; run this request again once it is over.
            with self.sched.cond:
                if not any(q.entity == req.entity for q in self.queue):
                    self.queue.insert(0, req)
            hub.log_activity(req.requested_by or "scheduler", "sync run", link=self.name,
                             entity=req.entity, outcome="paused",
                             detail=f"{what}: {message or 'rate limited'}; it resumes by itself")
            return
        counts = dict(getattr(result, "counts", None) or {})
        detail = f"{what}: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v)
                               or "no changes")
        if status != "ok" and message:
            detail += f" ({message})"
        if req.records:
            detail += f"; records: {', '.join(sorted(req.records))}"
        if req.trigger in ("schedule", "watch") and status == "ok" and not counts:
            return  # an idle scheduled run is in the runs journal; the log keeps what happened
        hub.log_activity(req.requested_by or "scheduler", "sync run", link=self.name,
                         entity=req.entity, outcome=status, detail=detail)

    def watch(self) -> None:
        """Wake the link when its spoke notifies a change (PostgreSQL NOTIFY, IMAP IDLE…)."""
        try:
            conn = self.sched.connector_for(self.name, self.cfg)
        except ConcordError as exc:
            log.warning("link %s: no change notifications: %s", self.name, exc)
            return
        try:
            while not self.sched.stopping.is_set():
                try:
                    changed = conn.wait_for_change(2.0)
                except ConcordError as exc:  # the spoke is away: try again shortly
                    log.warning("link %s: waiting for changes: %s", self.name, exc)
                    self.sched.stopping.wait(5.0)
                    continue
                if changed and not self.sched.stopping.is_set():
                    # Never activates a link, and queues behind a run already reading.
                    with contextlib.suppress(LinkUnavailable):
                        self.sched.request(self.name, None, trigger="watch", by="scheduler",
                                           log_request=False, after_running=True,
                                           may_activate=False)
        finally:
            conn.close()


class Scheduler:
    def __init__(self, hub: Hub, links: Mapping[str, Any], sync_fn: SyncFn | None = None,
                 *, watch: bool = True, isolate: bool = True, backoff_first: float = 5.0,
                 backoff_max: float = 900.0) -> None:
        self.hub = hub
        #: after a transient error the next run waits this long, doubling up to the cap
        self.backoff_first, self.backoff_max = backoff_first, backoff_max
        self.links = dict(links)
        self.sync_fn = sync_fn or default_sync_fn(isolate)
        self.cond = threading.Condition()
        self.stopping = threading.Event()
        self.workers = {name: _LinkWorker(self, name, cfg) for name, cfg in self.links.items()}
        self.watch = watch

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        try:  # runs a killed process left "running" are marked interrupted
            self.hub.interrupt_dead_runs()
        except Exception:  # the hub is away: the first run of each link does it
            log.exception("marking interrupted runs failed")
        for w in self.workers.values():
            w.thread.start()
            if self.watch and self._notifies(w.cfg):
                w.watcher = threading.Thread(target=w.watch, name=f"concord-watch-{w.name}",
                                             daemon=True)
                w.watcher.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        with self.cond:
            self.cond.notify_all()
        for w in self.workers.values():
            if w.thread.is_alive():
                w.thread.join(timeout)
            if w.watcher is not None and w.watcher.is_alive():
                w.watcher.join(timeout)  # it checks ``stopping`` every couple of seconds
        close = getattr(self.sync_fn, "close", None)
        if close is not None:
            close()

    def _notifies(self, cfg: Any) -> bool:
        from concord.connectors.base import connector_class

        try:
            return bool(connector_class(cfg.connector).capabilities.notifies)
        except (ConcordError, ImportError, AttributeError):
            return False

    def _needs_activation(self, cfg: Any) -> bool:
        from concord.link.activation import needs_activation

        try:
            return needs_activation(str(cfg.connector))
        except (ConcordError, ImportError, AttributeError):
            return False

    def connector_for(self, name: str, cfg: Any) -> Any:
        from concord.connectors.base import make_connector

        opts = cfg.options
        if hasattr(opts, "model_dump"):
            opts = opts.model_dump()
        return make_connector(cfg.connector, dict(opts or {}), link=name)

    def paused_until(self, link: str) -> float | None:
        row = self.hub.link_row(link)
        until = row.get("paused_until") if row else None
        return float(until) if until else None

    # -- requests --------------------------------------------------------------------
    def request(self, link: str, entity: str | None, *, record: str | None = None,
                trigger: str = "manual", by: str | None = None,
                log_request: bool = True, after_running: bool = False,
                may_activate: bool = True) -> RequestOutcome:
        """Queue a sync of ``link`` (one entity, or all), unless one is already queued or
        running. ``after_running``: a run already under way may have read too early, so
        queue one more after it (a record write, a per-record sync). Raises LinkUnavailable
        for an unknown, inactive or user-paused link."""
        worker = self.workers.get(link)
        if worker is None:
            raise LinkUnavailable(f"no link named {link!r} in this configuration")
        row = self.hub.link_row(link)
        if row is None and self._needs_activation(worker.cfg):
            from concord.link.activation import not_activated

            raise LinkUnavailable(not_activated(link))
        if row is None and not may_activate:
            raise LinkUnavailable(f"link {link!r} is not activated yet; an administrator must "
                                  f"activate it first (its first sync is the migration)")
        if row is not None and row["state"] != "active":
            raise LinkUnavailable(f"link {link!r} is {row['state']}; an administrator must "
                                  f"{'resume' if row['state'] == 'paused' else 'activate'} it first")
        with self.cond:
            busy = worker.running
            # a run of one entity type asked for while a run of every type is under way is
            # queued behind it (that run may have read the type already), not refused
            if busy is not None and busy.entity == entity and not after_running:
                if record:
                    busy.records.add(record)
                out = RequestOutcome(False, "running", "a sync of this link and entity is "
                                     "already running; it was not started twice")
            else:
                queued = next((q for q in worker.queue if q.entity in (entity, None)), None)
                if queued is not None:
                    if record:
                        queued.records.add(record)
                    out = RequestOutcome(False, "queued", "a sync of this link and entity is "
                                         "already queued; it was not queued twice")
                else:
                    worker.queue.append(Request(entity, trigger, by, {record} if record else set()))
                    out = RequestOutcome(True, "queued", "sync queued")
                    self.cond.notify_all()
        if log_request:
            what = f"{entity or 'all entities'}" + (f" record {record}" if record else "")
            self.hub.log_activity(by or "anonymous", "sync requested", link=link, entity=entity,
                                  detail=f"{what}: {out.message}",
                                  outcome="queued" if out.accepted else f"already {out.state}")
        return out

    def busy(self, link: str) -> dict[str, str]:
        """entity ("all" for a whole-link run) -> "running" | "queued"."""
        worker = self.workers.get(link)
        out: dict[str, str] = {}
        if worker is None:
            return out
        with self.cond:
            for q in worker.queue:
                out.setdefault(q.entity or "all", "queued")
            if worker.running is not None:
                out[worker.running.entity or "all"] = "running"
        return out

    def requested_records(self, entity: str) -> set[str]:
        """Records with a per-record sync queued or running: shown as Pending Sync."""
        out: set[str] = set()
        with self.cond:
            for w in self.workers.values():
                reqs = [*w.queue, *([w.running] if w.running else [])]
                for q in reqs:
                    if q.entity in (entity, None):
                        out |= q.records
        return out

    def idle(self) -> bool:
        with self.cond:
            return all(not w.queue and w.running is None for w in self.workers.values())

    def links_for(self, entity: str) -> list[str]:
        """Links that carry ``entity`` from the hub to their spoke (push or two-way)."""
        from concord.link.status import SENDING, directions

        return [n for n, cfg in self.links.items() if directions(cfg).get(entity) in SENDING]
