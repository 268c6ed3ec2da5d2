"""API tokens in the hub: only a token's hash is stored. A mixin of ``Hub``; the service's
``auth.py`` makes and checks tokens through it."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from concord.hub import schema as s


class TokensMixin:
    engine: Engine
    tenant: str

    def begin(self) -> AbstractContextManager[Connection]:  # pragma: no cover - Hub's
        raise NotImplementedError

    def add_token(self, tid: str, name: str, token_hash: str, scopes: str) -> None:
        with self.begin() as conn:
            conn.execute(s.tokens.insert().values(
                id=tid, tenant=self.tenant, name=name, hash=token_hash, scopes=scopes,
                created_at=time.time()))

    def token_rows(self) -> list[dict[str, Any]]:
        c = s.tokens.c
        q = (select(c.id, c.name, c.scopes, c.created_at, c.revoked_at, c.last_used_at)
             .where(c.tenant == self.tenant).order_by(c.created_at))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def revoke_token(self, tid: str) -> bool:
        """Revoke an active token; False when there is none with that id."""
        c = s.tokens.c
        with self.begin() as conn:
            res = conn.execute(update(s.tokens).where(
                c.tenant == self.tenant, c.id == tid, c.revoked_at.is_(None))
                .values(revoked_at=time.time()))
            return bool(res.rowcount)

    def active_token(self, token_hash: str) -> dict[str, Any] | None:
        """id, name and scopes of the active token with this hash, or None."""
        c = s.tokens.c
        with self.engine.connect() as conn:
            row = conn.execute(select(c.id, c.name, c.scopes).where(
                c.tenant == self.tenant, c.hash == token_hash, c.revoked_at.is_(None))).first()
        return dict(row._mapping) if row is not None else None

    def touch_token(self, token_hash: str) -> None:
        c = s.tokens.c
        with self.begin() as conn:
            conn.execute(update(s.tokens).where(c.hash == token_hash)
                         .values(last_used_at=time.time()))
