"""API tokens: OAuth2 bearer tokens with scopes, kept in the hub's ``tokens`` table.

Only a SHA-256 of each token is stored: the secret is shown once, at creation, and a stolen
hub file cannot be replayed against the API. ``admin`` implies every other scope, so an
administrator activates, configures and syncs every entity type, while a standard user
(``records:read sync:run``) reads records and may sync the client list.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

from concord.errors import ConfigError
from concord.hub.store import Hub

SCOPES: dict[str, str] = {
    "records:read": "read records, links, runs, conflicts and the activity log",
    "records:write": "create, update and delete records; resolve conflicts",
    "sync:run": "request a manual sync of the client list or of one record",
    "admin": "everything: activate, pause and resume links, sync every entity type, metrics",
}

ROLES: dict[str, tuple[str, ...]] = {
    "admin": ("admin",),
    "standard": ("records:read", "sync:run"),
    "editor": ("records:read", "records:write", "sync:run"),
    "reader": ("records:read",),
}

PREFIX = "cct_"
#: last_used_at is written at most this often per token, so reads never queue behind writes.
TOUCH_EVERY = 60.0


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's id and name, and what it may do."""

    token_id: str
    name: str
    scopes: frozenset[str]

    def has(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    @property
    def actor(self) -> str:
        return f"{self.name} (token {self.token_id})"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_scopes(scopes: list[str] | tuple[str, ...] | None, role: str | None) -> tuple[str, ...]:
    chosen: list[str] = []
    if role:
        if role not in ROLES:
            raise ConfigError(f"unknown role {role!r}", key="role",
                              fix=f"use one of: {', '.join(ROLES)}")
        chosen.extend(ROLES[role])
    for sc in scopes or ():
        for part in sc.replace(",", " ").split():
            if part not in SCOPES:
                raise ConfigError(f"unknown scope {part!r}", key="scope",
                                  fix=f"use one of: {', '.join(SCOPES)}")
            if part not in chosen:
                chosen.append(part)
    if not chosen:
        raise ConfigError("a token needs at least one scope", key="scope",
                          fix="pass --role standard|admin or --scope records:read ...")
    return tuple(chosen)


def create_token(hub: Hub, name: str, scopes: tuple[str, ...]) -> tuple[str, str]:
    """Create a token; returns (id, secret token). The secret is not stored."""
    tid = secrets.token_hex(6)
    token = f"{PREFIX}{tid}_{secrets.token_urlsafe(32)}"
    hub.add_token(tid, name, token_hash(token), " ".join(scopes))
    return tid, token


def list_tokens(hub: Hub) -> list[dict[str, Any]]:
    return hub.token_rows()


def revoke_token(hub: Hub, token_id: str) -> bool:
    return hub.revoke_token(token_id)


class TokenVerifier:
    """Checks bearer tokens against the hub, with a short cache so a busy API does not
    read the tokens table on every request (a revocation takes effect within ``ttl``)."""

    def __init__(self, hub: Hub, ttl: float = 5.0) -> None:
        self.hub = hub
        self.ttl = ttl
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._touched: dict[str, float] = {}

    def verify(self, token: str) -> Principal | None:
        if not token.startswith(PREFIX) or len(token) > 200:
            return None
        h = token_hash(token)
        now = time.monotonic()
        hit = self._cache.get(h)
        if hit is not None and now - hit[0] < self.ttl:
            principal = hit[1]
        else:
            principal = self._load(h)
            self._cache[h] = (now, principal)
        if principal is not None and now - self._touched.get(h, -TOUCH_EVERY) >= TOUCH_EVERY:
            self._touched[h] = now
            self.hub.touch_token(h)
        return principal

    def _load(self, h: str) -> Principal | None:
        row = self.hub.active_token(h)
        if row is None:
            return None
        return Principal(row["id"], row["name"], frozenset(row["scopes"].split()))

    def forget(self) -> None:
        self._cache.clear()
