"""The review list of addresses that match no contact (the e-mail link's ``review`` mode)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, update
from sqlalchemy.exc import IntegrityError

from concord.hub import schema as s


class CandidatesMixin:
    engine: Engine
    tenant: str

    def begin(self) -> AbstractContextManager[Connection]:  # pragma: no cover - Hub's
        raise NotImplementedError

    def list_candidates(self, conn: Connection, link: str,
                        found: Mapping[str, tuple[str | None, str]]) -> int:
        """List addresses (address -> (name, e-mail id)) not listed yet, dismissed ones
        included; returns how many were new."""
        t = s.contact_candidates
        have = {r[0] for r in conn.execute(select(t.c.address).where(
            t.c.tenant == self.tenant, t.c.address.in_(list(found))))}
        rows = [{"tenant": self.tenant, "address": a, "name": n, "link": link,
                 "email_id": e, "at": time.time(), "status": "open"}
                for a, (n, e) in found.items() if a not in have]
        if rows:
            try:
                with conn.begin_nested():
                    conn.execute(t.insert(), rows)
            except IntegrityError:  # listed meanwhile by another run
                return 0
        return len(rows)

    def open_candidates(self) -> list[dict[str, Any]]:
        """Addresses waiting for review (not dismissed), oldest first."""
        t = s.contact_candidates
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.tenant == self.tenant, t.c.status == "open")
                                .order_by(t.c.at))
            return [dict(r._mapping) for r in rows]

    def candidates_named(self, conn: Connection, addresses: Sequence[str]
                         ) -> dict[str, dict[str, Any]]:
        t = s.contact_candidates
        return {r.address: dict(r._mapping) for r in conn.execute(select(t).where(
            t.c.tenant == self.tenant, t.c.address.in_(list(addresses))))}

    def take_candidates(self, conn: Connection, addresses: Sequence[str]) -> None:
        """Off the list (accepted), and every mail link's address checkpoint dropped so its
        next run links the e-mails already synced from those addresses."""
        t = s.contact_candidates
        conn.execute(delete(t).where(t.c.tenant == self.tenant,
                                     t.c.address.in_(list(addresses))))
        c = s.checkpoints.c
        conn.execute(delete(s.checkpoints).where(c.tenant == self.tenant,
                                                 c.entity.like("%+contacts")))

    def dismiss_candidates(self, addresses: Sequence[str]) -> int:
        t = s.contact_candidates
        with self.begin() as conn:
            n = conn.execute(update(t).where(
                t.c.tenant == self.tenant, t.c.address.in_(list(addresses)),
                t.c.status == "open").values(status="dismissed")).rowcount
        return int(n or 0)
