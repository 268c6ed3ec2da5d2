"""Concord's exceptions: one root, driver errors translated at the connector boundary.

    ConcordError
    ├── ConfigError              bad configuration: names the file, the key and the fix
    ├── HubError                 the hub store could not be read or written
    ├── LinkLocked               the same link + entity is already being synced
    ├── LinkUnavailable          link paused, inactive, or held (reason given)
    └── ConnectorError           anything a spoke did wrong (raise ... from exc)
        ├── TransientError       worth retrying later (network, 5xx, timeouts)
        │   └── RateLimited      the spoke asked us to wait until ``until``
        ├── TerminalError        retrying will not help (auth, 4xx, missing collection)
        ├── PreconditionFailed   the item changed since we read it: a conflict, never an overwrite
        └── ItemInvalid          one item cannot be parsed or written: quarantine it, go on
"""

from __future__ import annotations

import time


class ConcordError(Exception):
    """Root of every error Concord raises on purpose."""


class ConfigError(ConcordError):
    def __init__(self, message: str, *, source: str | None = None, key: str | None = None,
                 fix: str | None = None) -> None:
        self.source, self.key, self.fix = source, key, fix
        parts = []
        if source:
            parts.append(str(source))
        if key:
            parts.append(f"key {key!r}")
        where = ": ".join(parts)
        text = f"{where}: {message}" if where else message
        if fix:
            text += f" (fix: {fix})"
        super().__init__(text)


class HubError(ConcordError):
    pass


class LinkLocked(ConcordError):
    pass


class LinkUnavailable(ConcordError):
    pass


class ConnectorError(ConcordError):
    pass


class TransientError(ConnectorError):
    pass


class RateLimited(TransientError):
    def __init__(self, message: str, *, retry_after: float) -> None:
        self.until = time.time() + max(0.0, retry_after)
        super().__init__(message)


class TerminalError(ConnectorError):
    pass


class PreconditionFailed(ConnectorError):
    """The spoke's item is no longer at the version we expected."""

    def __init__(self, ref: str, expected: str | None, actual: str | None = None) -> None:
        self.ref, self.expected, self.actual = ref, expected, actual
        super().__init__(f"{ref}: changed on the spoke since it was read "
                         f"(expected version {expected!r}, found {actual!r})")


class ItemInvalid(ConnectorError):
    def __init__(self, ref: str, message: str, *, fix: str | None = None) -> None:
        self.ref, self.fix = ref, fix
        super().__init__(f"{ref}: {message}" + (f" (fix: {fix})" if fix else ""))
