"""What a spoke's connector keeps in the hub beyond records: the practice's OAuth2 token set
(``oauth_tokens``, one row per practice and provider, encrypted by the caller) and the ids of
records it created at a spoke without client-chosen ids (``spoke_idents``)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, Engine, select

from concord.hub import schema as s


class SpokeStateMixin:
    engine: Engine
    tenant: str

    def begin(self) -> AbstractContextManager[Connection]:  # pragma: no cover - Hub's
        raise NotImplementedError

    # -- OAuth2 token sets ----------------------------------------------------------------
    def _oauth_where(self, provider: str) -> Any:
        c = s.oauth_tokens.c
        return (c.tenant == self.tenant) & (c.provider == provider)

    def oauth_row(self, provider: str, conn: Connection | None = None) -> Any:
        """The practice's token set row; inside ``conn`` it is locked until commit."""
        q = select(s.oauth_tokens).where(self._oauth_where(provider))
        if conn is None:
            with self.engine.connect() as c:
                return c.execute(q).first()
        return conn.execute(q.with_for_update()).first()

    def save_oauth_row(self, conn: Connection, provider: str, values: dict[str, Any]) -> int:
        """Replace the practice's one token set (insert the first); returns its generation."""
        row = conn.execute(select(s.oauth_tokens.c.generation)
                           .where(self._oauth_where(provider))).first()
        if row is None:
            conn.execute(s.oauth_tokens.insert().values(
                tenant=self.tenant, provider=provider, generation=1, **values))
            return 1
        gen = int(row.generation) + 1
        conn.execute(s.oauth_tokens.update().where(self._oauth_where(provider))
                     .values(generation=gen, **values))
        return gen

    def forget_oauth(self, provider: str) -> None:
        with self.begin() as conn:
            conn.execute(s.oauth_tokens.delete().where(self._oauth_where(provider)))

    # -- ids of records Concord created at a spoke ------------------------------------------
    def _ident_where(self, link: str, entity: str) -> Any:
        c = s.spoke_idents.c
        return (c.tenant == self.tenant) & (c.link == link) & (c.entity == entity)

    def spoke_idents(self, link: str, entity: str) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(s.spoke_idents).where(self._ident_where(link, entity))))

    def spoke_ident_of(self, link: str, entity: str, ref: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(s.spoke_idents.c.ident).where(
                self._ident_where(link, entity), s.spoke_idents.c.ref == ref)).first()
        return None if row is None else str(row.ident)

    def spoke_ident_row(self, link: str, entity: str, ident: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(s.spoke_idents).where(
                self._ident_where(link, entity), s.spoke_idents.c.ident == ident)).first()

    def note_spoke_ident(self, link: str, entity: str, ident: str, at: float,
                         values: dict[str, Any]) -> None:
        with self.begin() as conn:
            done = conn.execute(s.spoke_idents.update().where(
                self._ident_where(link, entity), s.spoke_idents.c.ident == ident).values(**values))
            if done.rowcount == 0:
                conn.execute(s.spoke_idents.insert().values(
                    tenant=self.tenant, link=link, entity=entity, ident=ident,
                    attempted_at=at, **values))
