"""What a failed run of a link leads to, the same for the service's scheduler and for
``concord sync --watch``: after a transient error (a server away, a timeout) the link is tried
again after an exponential backoff (5 s doubling to 15 min) and shows "retrying at …"; after a
terminal one (a wrong password, a bad configuration) it stops, red with the reason, until a
person syncs it or corrects the cause. Both are kept in the hub's link row, so ``concord
status``, the API and the dashboard tell the same story whichever process ran the link."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from concord import errors
from concord.errors import ConcordError, ConfigError, TerminalError
from concord.hub.store import Hub

#: the first wait after a transient failure, doubled per failure up to BACKOFF_MAX (seconds)
BACKOFF_FIRST = 5.0
BACKOFF_MAX = 900.0

#: a database refusing who connects: retrying with the same settings cannot succeed.
#: SQLSTATE 28P01 invalid_password, 28000 invalid_authorization_specification (an unknown
#: role, no pg_hba entry), 3D000 invalid_catalog_name (no such database)
_REFUSED_STATES = {"28P01", "28000", "3D000"}
_REFUSED_TEXT = re.compile(r"password authentication failed|authentication failed for user|"
                           r"no password supplied|role \S+ does not exist|"
                           r"database \S+ does not exist|Access denied for user", re.I)


def is_terminal(exc: BaseException) -> bool:
    """Whether a failed run's error is one retrying will not fix: a terminal or configuration
    error, or anywhere in its causes a database (hub or practice) refusing the credentials,
    which a driver reports like a server away (an OperationalError)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, TerminalError | ConfigError):
            return True
        if getattr(cur, "sqlstate", None) in _REFUSED_STATES or (
                type(cur).__module__.split(".")[0] in ("psycopg", "psycopg2", "sqlalchemy",
                                                       "pymysql", "MySQLdb")
                and _REFUSED_TEXT.search(str(cur))):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def backoff_delay(failures: int, first: float = BACKOFF_FIRST, cap: float = BACKOFF_MAX) -> float:
    """The wait before attempt ``failures + 1``: first, 2x first, 4x first, … at most cap."""
    return float(min(cap, first * 2 ** max(0, failures - 1)))


@dataclass(frozen=True)
class Failure:
    """What a failed run led to: stopped (terminal), or the time of the next attempt."""

    stopped: bool
    retry_at: float | None
    failures: int


def record_failure(hub: Hub, name: str, exc: BaseException, message: str, *,
                   first: float = BACKOFF_FIRST, cap: float = BACKOFF_MAX) -> Failure:
    """Keep in the link's row that its run failed with ``exc``: stop it or back it off."""
    if is_terminal(exc):
        hub.set_link(name, parked=message, retry_at=None)
        return Failure(True, None, 0)
    row = hub.link_row(name) or {}
    failures = int(row.get("failures") or 0) + 1
    at = time.time() + backoff_delay(failures, first, cap)
    hub.set_link(name, failures=failures, retry_at=at, parked=None)
    return Failure(False, at, failures)


def error_parts(exc: BaseException) -> tuple[str, str]:
    """An error of another process as (class name, message) to send over a pipe: a terminal
    one (is_terminal) as TerminalError, anything not Concord's own as an internal error."""
    own = isinstance(exc, ConcordError)
    name = "TerminalError" if is_terminal(exc) else type(exc).__name__ if own else "Exception"
    return name, str(exc) if own else f"internal error: {exc!r}"


#: the errors whose constructor takes just a message: they come back as themselves
_SIMPLE: dict[str, type[ConcordError]] = {
    "LinkLocked": errors.LinkLocked, "LinkUnavailable": errors.LinkUnavailable,
    "HubError": errors.HubError, "ConfigError": errors.ConfigError,
    "TransientError": errors.TransientError, "TerminalError": errors.TerminalError,
    "ConnectorError": errors.ConnectorError}


def error_again(name: str, message: str) -> ConcordError:
    """The error ``error_parts`` sent; one that needs more than a message (RateLimited,
    PreconditionFailed...) comes back as ConcordError, message intact."""
    return _SIMPLE.get(name, ConcordError)(message)
