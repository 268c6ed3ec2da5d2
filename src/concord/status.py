"""A link's status light: green / blue / red, always with the reason and, when red, the fix.

One function serves the CLI (`concord status`), the API and the dashboard, so they never
disagree.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from concord.hub.store import Hub


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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def link_status(hub: Hub, name: str) -> Status:
    row = hub.link_row(name)
    if row is None:
        return Status(name, "red", "not activated yet", f"run `concord sync {name}` or `concord link activate {name}`")
    quarantined = len(hub.quarantined(name))
    conflicts = len(hub.conflicts(link=name))
    runs = hub.runs(name, limit=1)
    last = runs[0] if runs else None
    base: dict[str, Any] = {"quarantined": quarantined, "conflicts": conflicts,
                            "last_run_at": row.get("last_run_at")}
    if last is not None and last["status"] == "running" and hub.is_any_locked(name):
        done, total = last.get("progress_done"), last.get("progress_total")
        eta = None
        if done and total and last.get("started_at"):
            rate = done / max(1e-6, time.time() - last["started_at"])
            eta = (total - done) / rate if rate else None
        what = "first migration" if not row["migrated"] else "sync"
        pct = f" ({done:,} of {total:,})" if done is not None and total else ""
        return Status(name, "blue", f"{what} in progress{pct}", progress_done=done,
                      progress_total=total, eta_s=eta, **base)
    if row["state"] == "inactive":
        return Status(name, "red", "sync is inactive", f"run `concord link activate {name}`", **base)
    if row["state"] == "paused":
        return Status(name, "red", "sync is paused by an administrator",
                      f"run `concord link resume {name}`", **base)
    if row["paused_until"] and row["paused_until"] > time.time():
        until = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["paused_until"]))
        return Status(name, "red", f"Sync paused until {until}: {row['pause_reason'] or 'rate limit'}",
                      "nothing to do: it resumes by itself", paused_until=row["paused_until"], **base)
    if row["held_reason"]:
        return Status(name, "red", f"held by the delete guard: {row['held_reason']}",
                      f"check the spoke, then `concord sync {name} --confirm-deletes`", **base)
    if row["last_error"]:
        return Status(name, "red", f"last run failed: {row['last_error']}",
                      "correct the cause named above, then sync again", **base)
    if not row["migrated"]:
        return Status(name, "red", "the first migration has not completed",
                      f"run `concord sync {name}`", **base)
    if quarantined:
        return Status(name, "green", f"in sync; {quarantined} record(s) quarantined",
                      f"see `concord status {name} --details`", **base)
    return Status(name, "green", "in sync", **base)
