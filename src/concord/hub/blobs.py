"""The hub's content-addressed blob store (``schema.blobs``): e-mail attachments and raw
messages, stored once however many e-mails hold them. A mixin of ``Hub``.

A blob is named by the SHA-256 of its content and kept in chunks of ``BLOB_CHUNK`` bytes:
writing and reading go a chunk at a time, so a large attachment never has to be one value in
one row. Storing a blob that is there already writes nothing.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError

from concord.errors import HubError
from concord.hub import schema as s

BLOB_CHUNK = 1 << 20


class BlobsMixin:
    engine: Engine
    tenant: str

    def has_blobs(self, shas: Iterable[str], *, conn: Connection | None = None) -> set[str]:
        wanted = sorted(set(shas))
        if not wanted:
            return set()
        t = s.blobs
        found: set[str] = set()
        with self.engine.connect() if conn is None else _nullctx(conn) as c:
            for i in range(0, len(wanted), 500):
                q = select(t.c.sha256).where(t.c.tenant == self.tenant,
                                             t.c.sha256.in_(wanted[i:i + 500]))
                found.update(r[0] for r in c.execute(q))
        return found

    def put_blobs(self, blobs: dict[str, bytes]) -> int:
        """Store each (sha256 -> content) not stored yet, in one transaction; returns how
        many were new. A content whose hash is not its name is refused (HubError)."""
        if not blobs:
            return 0
        have = self.has_blobs(blobs)
        new = {k: v for k, v in blobs.items() if k not in have}
        if not new:
            return 0
        for sha, data in new.items():
            if hashlib.sha256(data).hexdigest() != sha:
                raise HubError(f"blob {sha}: its content does not have that SHA-256")
        now = time.time()
        try:
            with self.engine.connect().execution_options(concord_write=True) as conn, \
                    conn.begin():
                for sha, data in new.items():
                    rows = [{"tenant": self.tenant, "sha256": sha, "n": n,
                             "data": data[off:off + BLOB_CHUNK]}
                            for n, off in enumerate(range(0, max(len(data), 1), BLOB_CHUNK))]
                    conn.execute(s.blob_chunks.insert(), rows)
                    conn.execute(s.blobs.insert().values(tenant=self.tenant, sha256=sha,
                                                         size=len(data), at=now))
        except IntegrityError:  # stored concurrently by another run: store one at a time
            if len(new) == 1:
                return 0
            return sum(self.put_blobs({k: v}) for k, v in new.items())
        return len(new)

    def blob_chunks(self, sha: str) -> Iterator[bytes]:
        """The content of blob ``sha``, chunk by chunk from one query (HubError when it is
        not stored)."""
        t = s.blob_chunks
        q = (select(t.c.data).where(t.c.tenant == self.tenant, t.c.sha256 == sha)
             .order_by(t.c.n))
        found = False
        with self.engine.connect() as c:
            for row in c.execution_options(yield_per=4).execute(q):
                found = True
                yield bytes(row[0])
        if not found:
            raise HubError(f"blob {sha} is not in the hub (fix: sync the e-mail that holds it "
                           "again from its folder)")

    def blob(self, sha: str) -> bytes:
        return b"".join(self.blob_chunks(sha))


class _nullctx:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def __enter__(self) -> Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        return None
