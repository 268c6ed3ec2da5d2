"""Groupware over the open standards: CardDAV (clients, contacts) and CalDAV (tasks, events).

``DEFAULT_TASK_STATUS_MAP`` is the practice → groupware task status table (after the seed's
Exchange table); a link uses it as the ``values`` map of the task ``status`` field. A status
missing from it (Draft, Rejected; Deferred on the groupware side) means the task is not synced.
"""

from concord.connectors.dav.caldav import CalDAVConnector
from concord.connectors.dav.carddav import CardDAVConnector
from concord.connectors.dav.connector import DavConnector, DavOptions

#: practice task status -> groupware task status
DEFAULT_TASK_STATUS_MAP: dict[str, str] = {
    "Open": "Not Started",
    "In Process": "In Progress",
    "Completed": "Completed",  # listed before Canceled: the way back takes the first
    "Canceled": "Completed",
    "Approved": "In Progress",
    "Pending Approval": "Waiting on Others",
}

__all__ = [
    "DEFAULT_TASK_STATUS_MAP",
    "CalDAVConnector",
    "CardDAVConnector",
    "DavConnector",
    "DavOptions",
]
