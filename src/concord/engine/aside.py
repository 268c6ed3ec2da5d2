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
its own; a connector's own helpers, such as a folder's parsing pool, are stopped first:
``StreamedMigration.before_fork``). Otherwise, and for a dry run, the migration runs in one
process.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing as mp
import os
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from concord.connectors.base import Item, ItemError, StreamedMigration
from concord.errors import ConcordError

if TYPE_CHECKING:
    from concord.engine.run import Bad, EntitySync
    from concord.hub.batch import SpokeLeft
    from concord.hub.store import FreshRow

#: a migration of fewer rows runs in one process: starting the children costs about what they
#: win (measured on two cores: at 10,000 rows, 0.49 s aside against 0.56 s in one process from
#: a practice database, 0.8 s against 1.2 s from a folder; at 3,000 rows one process wins)
ASIDE_FROM = 10_000

#: what a chunk prepared aside carries: (last ref scanned, items scanned, rows, items the link
#: does not carry, quarantine rows, error messages, refs left out with their versions:
#: ``EntitySync._left``, the notes of the items the link does not carry)
Prepared = tuple[str, int, "list[FreshRow]", int, "list[Bad]", list[str],
                 dict[str, str | None], "list[SpokeLeft]"]


def usable(sync: EntitySync) -> bool:
    """Can this migration be prepared in a second process?"""
    from concord.connectors.base import connector_class

    if ((os.cpu_count() or 1) < 2 or mp.current_process().daemon
            or "fork" not in mp.get_all_start_methods()):
        return False
    if (not sync.link.prepare_aside or sync.total < ASIDE_FROM
            or sync.entity in sync.map.refs.values()):
        return False
    url = sync.hub.engine.url
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        return False
    try:
        if not (sync.own_connector and type(sync.conn) is connector_class(sync.link.connector)):
            return False
    except ConcordError:
        return False
    streamed = sync.conn.streamed_migration()
    if streamed is not None and threading.active_count() > 1:
        streamed.before_fork()  # the connector's own helpers (vdir's parsing pool) stop
    return threading.active_count() == 1


#: how many processes prepare side by side when the spoke cuts its items into ranges
#: (``StreamedMigration.bounds``): on two cores, two of them and this one share the cores,
#: which keeps both busy (this process's commits take about half the preparing time)
CHILDREN = max(2, min(3, (os.cpu_count() or 2) - 1))

#: (after, upto): a chunk's ref range, after < ref <= upto (None: unbounded)
Span = tuple[str | None, str | None]


class Aside:
    """The child processes of one entity's migration, iterated for their prepared chunks in
    ref order. Where the spoke cuts its items into ranges (keys only), the ranges are dealt
    out in turn to ``CHILDREN`` processes and read back in the same turn; otherwise one
    child scans."""

    def __init__(self, sync: EntitySync, after: str | None) -> None:
        from concord.connectors.base import REGISTRY

        streamed = sync.conn.streamed_migration()
        assert streamed is not None
        cuts = streamed.bounds(sync.entity, after, sync.batch)
        spans: list[Span] | None = None
        if cuts is not None:
            ends = list(cuts)
            spans = list(zip([after, *ends], [*ends, None], strict=True))
        n = min(CHILDREN, len(spans)) if spans is not None else 1
        # forked: it starts at once with everything imported, and nothing runs a script's
        # main module again (``usable`` made sure no other thread runs here: forking beside
        # one is not safe)
        ctx = mp.get_context("fork")
        self._pipes: list[Connection] = []
        self._procs: list[Any] = []
        self._spans = spans
        # the parent's objects move to the collector's permanent generation while the
        # children are forked: a child's collections then never write to their headers,
        # so the pages stay shared instead of being copied into each child
        gc.freeze()
        try:
            for i in range(n):
                mine, child = ctx.Pipe(duplex=False)
                self._pipes.append(mine)
                proc = ctx.Process(
                    target=_prepare, daemon=True,
                    name=f"concord-migrate-{sync.link.name}-{sync.entity}-{i}",
                    args=(child, self._pipes, sync.hub.url, sync.hub.tenant,
                          sync.link.model_dump(), dict(REGISTRY), sync.entity, after,
                          sync.batch, spans[i::n] if spans is not None else None))
                proc.start()
                self._procs.append(proc)
                child.close()
        except BaseException:
            self.close()
            raise
        finally:
            gc.unfreeze()

    def __iter__(self) -> Iterator[Prepared]:
        from concord.link.retry import error_again

        k = 0
        while True:
            i = k % len(self._pipes)
            try:
                msg = self._pipes[i].recv()
            except (EOFError, OSError) as exc:
                self._procs[i].join(5)
                raise ConcordError(
                    f"the process preparing the migration stopped unexpectedly (exit code "
                    f"{self._procs[i].exitcode}); the next run resumes after the last "
                    "committed chunk") from exc
            kind = msg[0]
            if kind == "chunk":
                k += 1
                yield msg[1:]
                if self._spans is not None and k == len(self._spans):
                    return
            elif kind == "end":
                return
            else:
                raise error_again(msg[1], msg[2])

    def close(self) -> None:
        for pipe in self._pipes:
            pipe.close()  # a child still sending gets a broken pipe and stops
        for proc in self._procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)

    def __enter__(self) -> Aside:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _prepare(pipe: Connection, theirs: list[Connection], hub_url: str, tenant: str,
             link_dump: dict[str, Any], registry: dict[str, str], entity: str,
             after: str | None, batch: int,
             spans: list[Span] | None) -> None:  # pragma: no cover - runs in the child
    from concord.config import LinkConfig
    from concord.connectors.base import REGISTRY, make_connector
    from concord.engine.run import EntitySync, _not_synced
    from concord.hub.store import Hub
    from concord.link.retry import error_parts

    # the parent's ends, inherited by the fork: closed here, so the pipe breaks as soon as
    # the parent has gone (a run killed with SIGKILL) instead of waiting for this process
    for end in theirs:
        end.close()
    REGISTRY.update(registry)
    # reference look-ups only: a small page cache (memory is counted for all processes)
    hub = Hub(hub_url, tenant, migrate=False, cache_mib=4)
    conn = None
    try:
        link = LinkConfig.model_validate(link_dump)
        conn = make_connector(link.connector, link.options, link=link.name)
        streamed = conn.streamed_migration()
        assert streamed is not None
        sync = EntitySync(hub, link, conn, entity)
        for last, items in _chunks(streamed, entity, after, batch, spans):
            mapped, bad = sync._map_chunk(items)
            rows, not_synced = sync._fresh_rows(mapped, bad)
            sync._left = {}  # the chunk's items left out, with their versions
            sync._note_left(items, mapped, bad)
            pipe.send(("chunk", last, len(items), rows, not_synced, bad, sync.result.errors,
                       sync._left, _not_synced(mapped)))
            sync.result.errors = []
            sync._claimed.clear()  # as in one process: a chunk's UIDs, then forgotten
            # and the chunk's reference translations: each process would keep its own
            # copy of every parent's, growing with the migration
            sync.refs.clear()
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


def _chunks(streamed: StreamedMigration, entity: str, after: str | None, batch: int,
            spans: list[Span] | None) -> Iterator[tuple[str | None, list[Item | ItemError]]]:
    """(the position a chunk's commit moves the migration to, its items): each span of this
    process (an empty one too, so the turns stay in step), or else the spoke's own scan."""
    if spans is None:
        for got in streamed.scan(entity, after, batch):
            if got:
                yield got[-1].ref, got
        return
    for lo, hi in spans:
        got = streamed.scan_range(entity, lo, hi)
        yield (hi if hi is not None else got[-1].ref if got else lo), got
