"""A link's status light: green / amber / blue / red, always with the reason and, unless green, the fix.

One function serves the CLI (`concord status`), the API and the dashboard, so they never
disagree.

- green: the first migration is done, the last run succeeded, nothing is pending;
- blue: a run (or the first migration) is in progress or queued, with progress and ETA,
  or records are waiting to be sent by the next run; beside that it counts what will hold
  the light at amber when the run ends ("…; also 3 records quarantined"), fix included;
- amber: in sync, but records are quarantined or conflicts are open: the reason counts them
  ("3 records quarantined, 1 open conflict"), the fix says what a person does;
- red: error, inactive, paused (by an administrator, or by a rate limit "until …"), or held
  by the delete guard.

"Pending" is derived, never stored (the queries are the hub's: ``hub/reads.py``): a hub record
is pending for a link when the hub holds content the spoke has not received (hub hash differs
from the link's archive hash, or a push/two-way link has no archive row for it yet). A record the link's own selection leaves out
on purpose (a value map with no entry for its value, a filter it fails, ``remove_when``) is not
pending while the engine's note of that decision still holds: the record unwritten since
(same seq), the same selection (see ``hub/exclusions.py``). Such records are counted apart
(``excluded``), so none looks silently dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from concord.errors import ConfigError
from concord.hub.exclusions import selection_key, spoke_selection_key
from concord.hub.reads import SENDING
from concord.hub.store import Hub

__all__ = ["SENDING", "Status", "attention", "attention_fix", "directions", "link_status", "pending_count", "pending_ids",
           "pending_oldest", "quarantine_entry", "selections"]


def local_time(t: float) -> str:
    """A moment as people read it here: today's time, or the date and time."""
    same_day = time.strftime("%Y%m%d", time.localtime(t)) == time.strftime("%Y%m%d")
    return time.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S", time.localtime(t))


@dataclass
class Status:
    link: str
    color: str  # green | amber | blue | red
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
    excluded: int = 0  # records this link's filters / value maps / remove_when leave out
    spoke_excluded: int = 0  # spoke items they leave out (not taken into the hub)
    retry_at: float | None = None  # after a transient error: when the scheduler tries again
    stopped: str | None = None  # after a terminal error: why the scheduler stopped

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def directions(link_config: Any) -> dict[str, str]:
    """entity -> direction of a link config (``pull``, ``push`` or ``two-way``)."""
    if link_config is None:
        return {}
    ents = getattr(link_config, "entities", None) or {}
    return {name: str(getattr(ec, "direction", "two-way")) for name, ec in ents.items()}


def selections(link_config: Any, key: Callable[[Any], str] = selection_key) -> dict[str, str]:
    """entity -> fingerprint of a link config's selection (see ``hub.exclusions.selection_key``;
    ``spoke_selection_key`` for its spoke items)."""
    ents = getattr(link_config, "entities", None) or {}
    return {name: key(ec) for name, ec in ents.items()}


def pending_count(hub: Hub, link: str, entity: str, direction: str,
                  selection: str | None = None) -> int:
    """Records waiting to be sent over ``link`` (see ``Hub.pending_count``)."""
    return hub.pending_count(link, entity, direction, selection)


def pending_oldest(hub: Hub, link: str, entity: str, direction: str,
                   selection: str | None = None) -> float | None:
    """When the oldest change still waiting for this link was made (None: nothing waits)."""
    return hub.pending_oldest(link, entity, direction, selection)


def excluded_count(hub: Hub, link: str, entity: str, selection: str) -> int:
    """Hub records this link leaves out on purpose (its filters, value maps, remove_when)."""
    return hub.excluded_count(link, entity, selection)


def pending_ids(hub: Hub, links: Mapping[str, Any], entity: str,
                ids: Iterable[str]) -> dict[str, list[str]]:
    """For the given record ids: id -> names of the links it is pending for."""
    ids = list(ids)
    out: dict[str, list[str]] = {}
    if not ids:
        return out
    for name, cfg in links.items():
        direction = directions(cfg).get(entity)
        if direction is None:
            continue
        for hub_id in hub.pending_among(name, entity, direction, selections(cfg).get(entity), ids):
            out.setdefault(hub_id, []).append(name)
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
        from concord.link.activation import needs_activation

        try:
            admin = needs_activation(str(link_config.connector)) if link_config else True
        except (ConfigError, ImportError):  # an unknown connector: the config names it
            admin = True
        return Status(name, "red", "not activated yet",
                      f"an administrator runs `concord link activate {name} --as EMAIL`"
                      if admin else f"run `concord sync {name}`")
    sels = selections(link_config)
    pending = sum(pending_count(hub, name, e, d, sels[e])
                  for e, d in directions(link_config).items())
    excluded = sum(excluded_count(hub, name, e, sel) for e, sel in sels.items())
    spoke_excluded = sum(hub.spoke_left_count(name, e, sel)
                         for e, sel in selections(link_config, spoke_selection_key).items())
    runs = hub.runs(name, limit=10)
    running = [r for r in runs if r["status"] == "running"]
    base: dict[str, Any] = {
        "quarantined": len(hub.quarantined(name)), "conflicts": len(hub.conflicts(link=name)),
        "last_run_at": row.get("last_run_at"), "state": row["state"], "queued": queued,
        "pending": pending, "excluded": excluded, "spoke_excluded": spoke_excluded,
        "paused_until": row["paused_until"],
        "running": sorted({r["entity"] or "all" for r in running}),
        "retry_at": row.get("retry_at"), "stopped": row.get("parked")}
    if running and hub.is_any_locked(name):
        last = running[0]
        done, total = last.get("progress_done"), last.get("progress_total")
        eta = None
        if done and total and last.get("started_at"):
            rate = done / max(1e-6, now - last["started_at"])
            eta = (total - done) / rate if rate else None
        what = "first migration" if not row["migrated"] else "sync"
        pct = f" ({done:,} of {total:,})" if done is not None and total else ""
        return Status(name, "blue", f"{what} in progress{pct}: {', '.join(base['running'])}"
                      f"{also(base)}", attention_fix(name, base), progress_done=done,
                      progress_total=total, eta_s=eta, **base)
    base["running"] = []
    if row["state"] == "inactive":
        return Status(name, "red", "sync is inactive", f"run `concord link activate {name}`", **base)
    if row["state"] == "paused":
        return Status(name, "red", f"sync is paused: {row['pause_reason'] or 'by an administrator'}",
                      f"run `concord link resume {name}`", **base)
    if row["paused_until"] and row["paused_until"] > now:
        until = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["paused_until"]))
        return Status(name, "red", f"Sync paused until {until}: {row['pause_reason'] or 'rate limit'}",
                      "nothing to do: it resumes by itself", **base)
    if row["held_reason"]:
        return Status(name, "red", f"held by the delete guard: {row['held_reason']}",
                      f"check the spoke, then `concord sync {name} --confirm-deletes`", **base)
    if queued:
        return Status(name, "blue", f"sync queued: {', '.join(queued)}{also(base)}",
                      attention_fix(name, base), **base)
    if row.get("parked"):
        return Status(name, "red", f"stopped after an error retrying will not fix: "
                      f"{row['parked']}", "correct the cause named above (a password, a URL, "
                      f"a collection), then press Sync or run `concord sync {name}`", **base)
    if row["last_error"] and row.get("retry_at") and row["retry_at"] > now:
        return Status(name, "red", f"last run failed: {row['last_error']}; retrying at "
                      f"{local_time(row['retry_at'])}", "nothing to do if the cause passes by "
                      "itself (a server away); otherwise correct it and press Sync", **base)
    if row["last_error"]:
        return Status(name, "red", f"last run failed: {row['last_error']}",
                      "correct the cause named above, then sync again", **base)
    if not row["migrated"]:
        return Status(name, "red", "the first migration has not completed",
                      f"run `concord sync {name}`", **base)
    left_out = (f"; not synced (by the link's filters/value maps): {excluded}"
                if excluded else "")
    if spoke_excluded:
        left_out += (f"; spoke items not taken in (by the link's filters/value maps): "
                     f"{spoke_excluded}")
    if pending:
        return Status(name, "blue", f"{pending} record(s) pending sync; the next run sends them"
                      f"{left_out}{also(base)}",
                      "; ".join(f for f in ("press Sync to send them now",
                                            attention_fix(name, base)) if f), **base)
    if base["quarantined"] or base["conflicts"]:
        return Status(name, "amber", f"in sync but {attention(base)}{left_out}",
                      attention_fix(name, base), **base)
    return Status(name, "green", f"in sync{left_out}", **base)


def quarantine_entry(q: Mapping[str, Any]) -> dict[str, Any]:
    """One quarantined record as the CLI, the API and the dashboard list it (from
    ``Hub.quarantine_list``): its name when the hub holds the record, else None."""
    from concord.service.render import title

    hub_id = q.get("hub_id")
    return {"entity": q["entity"], "side": q["side"], "ref": q["ref"], "hub_id": hub_id,
            "record": title(q["fields"], str(hub_id)) if hub_id else None,
            "error": q["error"], "since": q["since"], "attempts": q["attempts"],
            "retry_at": q["retry_at"]}


def attention(base: Mapping[str, Any]) -> str:
    """What holds an otherwise green link at amber: "3 records quarantined, 1 open conflict"."""
    parts = []
    if base["quarantined"]:
        q = base["quarantined"]
        parts.append(f"{q} record{'s' if q != 1 else ''} quarantined")
    if base["conflicts"]:
        c = base["conflicts"]
        parts.append(f"{c} open conflict{'s' if c != 1 else ''}")
    return ", ".join(parts)


def also(base: Mapping[str, Any]) -> str:
    """What a blue light says beside its run or its queue: a light that turns green-or-amber
    when the run ends should not hide, meanwhile, what will hold it at amber."""
    what = attention(base)
    return f"; also {what}" if what else ""


def attention_fix(name: str, base: Mapping[str, Any]) -> str:
    """The fix for amber: correct the source record, resolve the conflict."""
    fixes = []
    if base["quarantined"]:
        fixes.append(f"correct each quarantined record where it comes from (its error names the "
                     f"field; list them with `concord status {name} --details` or the "
                     f"dashboard's Quarantined panel); the next run retries it")
    if base["conflicts"]:
        fixes.append("review each open conflict with `concord conflicts` and settle it with "
                     "`concord conflicts resolve ID` or on the dashboard's Conflicts page")
    return "; ".join(fixes)
