"""The engine: runs a link (hub <-> one spoke) for its entity types, parents first.

``sync_link`` is the one entry point the CLI, the service and the scheduler call. It takes the
link+entity lock (so the same sync never runs twice at once), journals the run, honours a
paused or held link, turns a spoke's rate limit into "paused until ..." and records the outcome.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from concord.config import LinkConfig
from concord.connectors.base import Connector, make_connector
from concord.engine.run import EntityResult, EntitySync, PlanLine, Progress
from concord.errors import ConcordError, LinkUnavailable, RateLimited
from concord.hub.store import Hub
from concord.records import ENTITY_ORDER

__all__ = ["EntityResult", "PlanLine", "RunResult", "sync_link"]


@dataclass
class RunResult:
    link: str
    status: str  # ok | error | held | paused | dry-run
    entities: dict[str, EntityResult] = field(default_factory=dict)
    message: str = ""
    run_id: int | None = None

    @property
    def counts(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for r in self.entities.values():
            total.update({k: v for k, v in r.counts.items() if v})
        return total

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "dry-run")


def sync_link(hub: Hub, link: LinkConfig, connector: Connector | None = None, *,
              entities: list[str] | None = None, dry_run: bool = False,
              confirm_deletes: bool = False, trigger: str = "cli", requested_by: str | None = None,
              progress: Progress | None = None) -> RunResult:
    from concord.link.activation import needs_activation, not_activated

    name = link.name
    row = hub.link_row(name)
    if row is None:
        # Only activation activates a link that needs it (the practice database); a dry run
        # changes nothing at all, so it plans against a link that is not there yet.
        if needs_activation(connector if connector is not None else link.connector):
            raise LinkUnavailable(not_activated(name))
        if dry_run:
            row = {"state": "active", "paused_until": None, "pause_reason": None}
        else:
            hub.set_link(name, link.connector, state="active", activated_at=time.time(),
                         activated_by=requested_by or trigger)
            row = hub.link_row(name)
    assert row is not None
    if row["state"] == "inactive":
        raise LinkUnavailable(f"link {name!r} is not active (fix: `concord link activate {name}`)")
    if row["state"] == "paused":
        raise LinkUnavailable(f"link {name!r} is paused (fix: `concord link resume {name}`)")
    now = time.time()
    if row["paused_until"] and row["paused_until"] > now:
        until = time.strftime("%H:%M:%S", time.localtime(row["paused_until"]))
        return RunResult(name, "paused", message=f"Sync paused until {until}: {row['pause_reason']}")
    if row["paused_until"]:
        hub.set_link(name, paused_until=None, pause_reason=None)  # resumes by itself

    wanted = [e for e in link.entities if entities is None or e in entities]
    unknown = [e for e in (entities or []) if e not in link.entities]
    if unknown:
        raise LinkUnavailable(f"link {name!r} does not carry {', '.join(unknown)} "
                              f"(it carries {', '.join(link.entities)})")
    wanted.sort(key=ENTITY_ORDER.__getitem__)
    if not dry_run:
        hub.interrupt_dead_runs(name)  # a killed run is not left "running" for ever
    run_id = None if dry_run else hub.start_run(
        name, wanted[0] if len(wanted) == 1 else None, trigger, requested_by)
    result = RunResult(name, "dry-run" if dry_run else "ok", run_id=run_id)
    own = connector is None
    conn: Connector | None = connector
    bound = None
    held: list[str] = []
    planned: dict[str, dict[str, str]] = {}  # a dry run's would-be links, parents first

    journalled = 0.0  # when the run's progress was last written to the journal

    def report(entity: str, done: int, total: int) -> None:
        # the journal (read by the API and the dashboard) twice a second at most, and at
        # the end of each entity type, not one write transaction per chunk
        nonlocal journalled
        now = time.monotonic()
        if run_id is not None and (now - journalled >= 0.5 or done >= total):
            journalled = now
            hub.update_run(run_id, progress_done=done, progress_total=total)
        if progress is not None:
            progress(entity, done, total)

    try:
        if conn is None:
            conn = make_connector(link.connector, link.options, link=name)
        bound = conn.hub_binding()
        if bound is not None:
            bound.bind_hub(hub)
        for entity in wanted:
            with hub.lock(f"sync:{name}:{entity}"):
                es = EntitySync(hub, link, conn, entity, dry_run=dry_run,
                                confirm_deletes=confirm_deletes, progress=report, run_id=run_id,
                                planned=planned, own_connector=own and bound is None)
                result.entities[entity] = er = es.run()
                if bound is not None and not dry_run and not er.held:
                    er.counts.update(bound.after_sync(hub, entity))
            if er.held:
                held.append(er.held)
    except RateLimited as exc:
        until = time.strftime("%H:%M:%S", time.localtime(exc.until))
        hub.set_link(name, paused_until=exc.until, pause_reason=str(exc))
        result.status, result.message = "paused", f"Sync paused until {until}: {exc}"
    except Exception as exc:  # journalled, whatever it was: a run never stays "running"
        result.status = "error"
        result.message = str(exc) if isinstance(exc, ConcordError) else f"internal error: {exc!r}"
        if not dry_run:
            hub.set_link(name, last_error=result.message, last_run_at=time.time())
        if run_id is not None:
            _finish(hub, run_id, result)
        raise
    finally:
        if own and conn is not None:
            conn.close()
    if held and result.status == "ok":
        result.status, result.message = "held", " ".join(held)
    if not dry_run:
        values: dict[str, Any] = {"last_run_at": time.time(),
                                     "held_reason": " ".join(held) or None}
        if result.status == "ok":
            values.update(last_error=None, retry_at=None, failures=None, parked=None)
            # migrated once every entity of the link has finished a first run, whether in
            # one run of them all or entity by entity (manual syncs per entity type)
            if not row.get("migrated") and all(hub.has_synced(name, e) for e in link.entities):
                values["migrated"] = True
        hub.set_link(name, **values)
    if run_id is not None:
        if trigger in QUIET_TRIGGERS and result.status == "ok" and not result.counts:
            hub.delete_run(run_id)  # a background run that found nothing leaves no journal row
            result.run_id = None
        else:
            _finish(hub, run_id, result)
    return result


#: triggers whose no-op runs are not journalled (they run every second or so)
QUIET_TRIGGERS = frozenset({"schedule", "watch", "notify"})


def _finish(hub: Hub, run_id: int, result: RunResult) -> None:
    counts = dict(result.counts)
    hub.update_run(run_id, status=result.status, finished_at=time.time(), counts=counts,
                   message=result.message or _summary(counts))


def _summary(counts: dict[str, int]) -> str:
    parts = [f"{v} {k}" for k, v in sorted(counts.items()) if v]
    return ", ".join(parts) if parts else "nothing to do"
