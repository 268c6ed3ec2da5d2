"""A large first migration prepared in a second process while this one commits.

A first migration into an empty hub is per-record Python from end to end: reading and
checking each row, mapping it into the model, its canonical text and hash, then the hub's
inserts and the WAL write at commit. The second core of the machine can take the first part:
a child process scans the spoke, maps each chunk and takes the texts and hashes
(``EntitySync._map_chunk`` and ``_fresh_rows``, the same code as in one process), and sends
the finished rows over a pipe; this process commits chunk after chunk, each with its
checkpoint, while the child prepares the next. (Threads cannot share this work: both halves
are Python and hold the interpreter lock; measured, a commit thread was slower than none.)

What stays as it was:
- the change token is taken here, before the child starts: edits made during the migration
  are caught by the next pass;
- every chunk commits here with its own checkpoint, in scan order; a run killed at any
  instant resumes after its last committed chunk (the child dies with its pipe);
- bad rows are quarantined exactly as in one process; memory stays flat (the pipe holds at
  most the chunk being sent, the child at most the one it is preparing);
- the child reads references from the hub through its own connection: they point to
  entity types migrated before this one, which are committed (an entity that refers to its
  own type is migrated in one process: its parents may still be in flight).

Used when it can pay and is safe: two cores or more, at least ``ASIDE_FROM`` rows, a hub in
a file or a server (not in memory), a connector the run made from the link's configuration (so the child can make its twin), and a
process free to fork one (no other thread running: the CLI's progress display refreshes
from its callback for this reason; the service runs each link's syncs in a worker process of
its own). Otherwise, and for a dry run, the migration runs in one process.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from concord.errors import ConcordError

if TYPE_CHECKING:
    from concord.engine.run import Bad, EntitySync, FreshRow

#: a migration of fewer rows runs in one process: starting the child costs more than it wins
ASIDE_FROM = 20_000

#: what a chunk prepared aside carries: (last ref scanned, items scanned, rows, items the link
#: does not carry, quarantine rows, error messages)
Prepared = tuple[str, int, "list[FreshRow]", int, "list[Bad]", list[str]]


def usable(sync: EntitySync) -> bool:
    """Can this migration be prepared in a second process?"""
    from concord.connectors.base import connector_class

    if ((os.cpu_count() or 1) < 2 or mp.current_process().daemon
            or threading.active_count() > 1 or "fork" not in mp.get_all_start_methods()):
        return False
    if sync.total < ASIDE_FROM or sync.entity in sync.map.refs.values():
        return False
    url = sync.hub.engine.url
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        return False
    try:
        return sync.own_connector and type(sync.conn) is connector_class(sync.link.connector)
    except ConcordError:
        return False


class Aside:
    """The child process of one entity's migration, iterated for its prepared chunks."""

    def __init__(self, sync: EntitySync, after: str | None) -> None:
        from concord.connectors.base import REGISTRY

        # forked: it starts at once with everything imported, and nothing runs a script's
        # main module again (``usable`` made sure no other thread runs here: forking beside
        # one is not safe)
        ctx = mp.get_context("fork")
        self._pipe, child = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(
            target=_prepare, name=f"concord-migrate-{sync.link.name}-{sync.entity}", daemon=True,
            args=(child, self._pipe, sync.hub.url, sync.hub.tenant, sync.link.model_dump(), dict(REGISTRY),
                  sync.entity, after, sync.batch))
        self._proc.start()
        child.close()

    def __iter__(self) -> Iterator[Prepared]:
        while True:
            try:
                msg = self._pipe.recv()
            except (EOFError, OSError) as exc:
                self._proc.join(5)
                raise ConcordError(
                    f"the process preparing the migration stopped unexpectedly (exit code "
                    f"{self._proc.exitcode}); the next run resumes after the last committed "
                    "chunk") from exc
            kind = msg[0]
            if kind == "chunk":
                yield msg[1:]
            elif kind == "end":
                return
            else:
                from concord.link.retry import error_again

                raise error_again(msg[1], msg[2])

    def close(self) -> None:
        self._pipe.close()  # a child still sending gets a broken pipe and stops
        self._proc.join(5)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)

    def __enter__(self) -> Aside:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _prepare(pipe: Connection, theirs: Connection, hub_url: str, tenant: str, link_dump: dict[str, Any],
             registry: dict[str, str], entity: str, after: str | None,
             batch: int) -> None:  # pragma: no cover - runs in the child
    from concord.config import LinkConfig
    from concord.connectors.base import REGISTRY, make_connector
    from concord.engine.run import EntitySync
    from concord.hub.store import Hub
    from concord.link.retry import error_parts

    # the parent's end, inherited by the fork: closed here, so the pipe breaks as soon as
    # the parent has gone (a run killed with SIGKILL) instead of waiting for this process
    theirs.close()
    REGISTRY.update(registry)
    hub = Hub(hub_url, tenant, migrate=False)
    conn = None
    try:
        link = LinkConfig.model_validate(link_dump)
        conn = make_connector(link.connector, link.options, link=link.name)
        streamed = conn.streamed_migration()
        assert streamed is not None
        sync = EntitySync(hub, link, conn, entity)
        for items in streamed.scan(entity, after, batch):
            if not items:
                continue
            mapped, bad = sync._map_chunk(items)
            rows, not_synced = sync._fresh_rows(mapped, bad)
            pipe.send(("chunk", items[-1].ref, len(items), rows, not_synced, bad,
                       sync.result.errors))
            sync.result.errors = []
            sync._claimed.clear()  # as in one process: a chunk's UIDs, then forgotten
            sync.refs.forget(entity)
        pipe.send(("end",))
    except (BrokenPipeError, EOFError):
        pass  # this process's parent has gone (or stopped reading): nothing to send to
    except BaseException as exc:
        with contextlib.suppress(OSError):
            pipe.send(("raise", *error_parts(exc)))
    finally:
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
        hub.close()
        pipe.close()
