"""Activating, pausing, resuming and deactivating a link to the practice database.

As in the practice systems this follows, only an administrator activates, and the link's
admin contact must be an active administrator employee in the practice database (the link
stops being trusted when they leave). Unlike them, every prerequisite is checked up front and
reported together, each with its fix; activating twice says so instead of starting over; and
a link can be paused, resumed and deactivated safely. Deactivation removes the triggers and
forgets the change token but keeps the hub's records and the link state, so a later
activation compares everything once and goes on, with no duplicates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from concord.config import LinkConfig
from concord.connectors.base import Connector, make_connector
from concord.errors import ConcordError
from concord.hub.store import Checkpoint, Hub


class ActivationRefused(ConcordError):
    def __init__(self, link: str, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"link {link!r} cannot be activated:\n{lines}")


@dataclass
class Outcome:
    changed: bool  # False: nothing to do (e.g. already activated)
    message: str


def _connector(link: LinkConfig, connector: Connector | None) -> Connector:
    return connector or make_connector(link.connector, link.options, link=link.name)


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "an earlier date"


def needs_activation(connector: str | Connector) -> bool:
    """Does a link over this connector start only when an administrator activates it? True
    for spokes that install change capture or check the administrator (the practice
    database); a folder or a DAV collection has nothing to install, and its first sync
    starts it."""
    from concord.connectors.base import ActivationHooks, connector_class

    klass = connector_class(connector) if isinstance(connector, str) else type(connector)
    return issubclass(klass, ActivationHooks)


def not_activated(name: str) -> str:
    return (f"link {name!r} has not been activated: an administrator activates it with "
            f"`concord link activate {name} --as EMAIL` (a sync never activates a link)")


def admin_contact(link: LinkConfig) -> str | None:
    return link.admin or link.options.get("admin_email")


def activate(hub: Hub, link: LinkConfig, *, by: str | None, connector: Connector | None = None) -> Outcome:
    """Check every prerequisite, install change capture, mark the link active.
    ``by`` is the e-mail of the person activating: they must be an active administrator."""
    row = hub.link_row(link.name)
    if row is not None and row["state"] in ("active", "paused") and row.get("activated_at"):
        state = "and is paused (resume it with `concord link resume " + link.name + "`)" \
            if row["state"] == "paused" else "and is syncing"
        return Outcome(False, f"Link {link.name!r} has already been activated "
                              f"(on {_when(row['activated_at'])} by {row['activated_by']}) {state}.")
    conn = _connector(link, connector)
    try:
        problems: list[str] = list(conn.check())
        hooks = conn.activation_hooks()
        admin_check = hooks.admin_problem if hooks is not None else None
        if not problems and admin_check is not None:
            contact = admin_contact(link)
            p = admin_check(contact)
            if p:
                problems.append(p)
            if not by:
                problems.append("the person activating is not known: pass --as EMAIL "
                                "(an active administrator)")
            elif by != contact:
                p = admin_check(by)
                if p:
                    problems.append(f"only an administrator can activate a link: {p}")
        if problems:
            hub.log_activity(by or "unknown", "activate", link=link.name,
                             detail="; ".join(problems), outcome="refused")
            raise ActivationRefused(link.name, problems)
        if hooks is not None and link.options.get("capture", "triggers") == "triggers":
            hooks.install()
    finally:
        if connector is None:
            conn.close()
    hub.set_link(link.name, link.connector, state="active", activated_at=time.time(),
                 activated_by=by, last_error=None, paused_until=None, pause_reason=None,
                 parked=None, retry_at=None, failures=None)
    hub.log_activity(by or "unknown", "activate", link=link.name, outcome="ok",
                     detail="change capture installed; first migration starts with the next sync")
    return Outcome(True, f"Link {link.name!r} activated: change capture is installed in the practice "
                         "database; the first migration runs with the next sync.")


def pause(hub: Hub, name: str, *, by: str | None, reason: str | None = None) -> Outcome:
    row = hub.link_row(name)
    if row is None or row["state"] == "inactive":
        return Outcome(False, f"Link {name!r} is not active; nothing to pause.")
    if row["state"] == "paused":
        return Outcome(False, f"Link {name!r} is already paused.")
    hub.set_link(name, state="paused", pause_reason=reason or f"paused by {by or 'an administrator'}")
    hub.log_activity(by or "unknown", "pause", link=name, detail=reason, outcome="ok")
    return Outcome(True, f"Link {name!r} paused. Changes keep being recorded in the practice "
                         f"database and are synced on `concord link resume {name}`.")


def resume(hub: Hub, name: str, *, by: str | None) -> Outcome:
    row = hub.link_row(name)
    if row is None or row["state"] == "inactive":
        return Outcome(False, f"Link {name!r} is not active: activate it with "
                              f"`concord link activate {name}`.")
    if row["state"] != "paused":
        return Outcome(False, f"Link {name!r} is not paused.")
    hub.set_link(name, state="active", pause_reason=None, parked=None, retry_at=None)
    hub.log_activity(by or "unknown", "resume", link=name, outcome="ok")
    return Outcome(True, f"Link {name!r} resumed; the next sync catches up on what changed.")


def deactivate(hub: Hub, link: LinkConfig, *, by: str | None,
               connector: Connector | None = None) -> Outcome:
    """Remove the triggers and changelog; keep the hub's records and the link state."""
    row = hub.link_row(link.name)
    if row is None or row["state"] == "inactive":
        return Outcome(False, f"Link {link.name!r} is not active; nothing to deactivate.")
    hub.set_link(link.name, state="inactive", pause_reason=None)  # no new run starts
    for entity in link.entities:
        with hub.lock(f"sync:{link.name}:{entity}"):  # waits for a running one
            cp = hub.checkpoint(link.name, entity)
            hub.set_checkpoint(link.name, entity, Checkpoint(cp.hub_seq, None, None))
    conn = _connector(link, connector)
    try:
        hooks = conn.activation_hooks()
        if hooks is not None:
            hooks.uninstall()
    finally:
        if connector is None:
            conn.close()
    hub.log_activity(by or "unknown", "deactivate", link=link.name, outcome="ok",
                     detail="triggers and changelog removed from the practice database")
    return Outcome(True, f"Link {link.name!r} deactivated: Concord's triggers and changelog were "
                         "removed from the practice database; the hub keeps every record.")
