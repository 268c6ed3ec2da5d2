"""Sync runs in a worker process per link, so a long migration never competes with the API
for the interpreter lock: reads stay fast while 100,000 records arrive.

``ProcessSync`` has ``sync_link``'s signature; the scheduler calls it from the link's thread
exactly as it would call the engine. The worker is started on first use (spawned, not
forked: the service is multi-threaded) and kept for the next runs. Errors come back by
class name and are raised again here, so the scheduler treats them alike.

The worker is not a daemonic process, so it may start processes of its own (the vdir
connector parses a large folder on a pool of them). It still never outlives the service:
``close`` stops it (also at interpreter exit), and a worker whose service has gone (its
pipe closed) stops by itself.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing as mp
import os
import threading
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from concord.errors import ConcordError
from concord.link.retry import error_again, error_parts

#: How much lower the sync workers' CPU priority is than the API's.
NICENESS = 10


@dataclass
class WorkerResult:
    link: str
    status: str
    counts: dict[str, int] = field(default_factory=dict)
    message: str = ""


def _serve(conn: Connection, hub_url: str, tenant: str, link_dump: dict[str, Any],
           registry: dict[str, str]) -> None:  # pragma: no cover - runs in the child
    from concord.config import LinkConfig
    from concord.connectors.base import REGISTRY
    from concord.engine import sync_link
    from concord.hub.store import Hub
    REGISTRY.update(registry)
    # Background work yields the CPU to the API: people waiting on a page come first.
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    hub = Hub(hub_url, tenant, migrate=False)
    link = LinkConfig.model_validate(link_dump)
    try:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):  # the service has gone: nothing more to do
                return
            if msg is None:
                return
            entities, trigger, by = msg
            try:
                r = sync_link(hub, link, entities=entities, trigger=trigger, requested_by=by)
                conn.send(("ok", r.status, dict(r.counts), r.message))
            except Exception as exc:  # classed here, where the driver's error is at hand
                conn.send(("raise", *error_parts(exc)))
    finally:
        hub.close()
        from concord.connectors import vdir

        vdir.shutdown_pool()


class ProcessSync:
    def __init__(self) -> None:
        self.ctx = mp.get_context("spawn")
        self.workers: dict[str, tuple[Any, Connection]] = {}
        self.lock = threading.Lock()
        # before multiprocessing's own exit handler, which would wait for the workers
        atexit.register(self.close)

    def _worker(self, hub: Any, link: Any) -> tuple[Any, Connection]:
        from concord.connectors.base import REGISTRY

        with self.lock:
            got = self.workers.get(link.name)
            if got is not None and got[0].is_alive():
                return got
            parent, child = self.ctx.Pipe()
            proc = self.ctx.Process(
                target=_serve, name=f"concord-sync-{link.name}", daemon=False,
                args=(child, hub.url, hub.tenant, link.model_dump(), dict(REGISTRY)))
            proc.start()
            child.close()
            self.workers[link.name] = (proc, parent)
            return proc, parent

    def __call__(self, hub: Any, link: Any, connector: Any = None, *,
                 entities: list[str] | None = None, trigger: str = "schedule",
                 requested_by: str | None = None, **_: Any) -> WorkerResult:
        proc, conn = self._worker(hub, link)
        try:
            conn.send((entities, trigger, requested_by))
            reply = conn.recv()
        except (EOFError, OSError) as exc:
            with self.lock:
                self.workers.pop(link.name, None)
            raise ConcordError(f"the sync worker of link {link.name!r} stopped unexpectedly "
                               f"(exit code {proc.exitcode}); the next run starts a new one "
                               f"and resumes from the last checkpoint") from exc
        if reply[0] == "ok":
            return WorkerResult(link.name, reply[1], reply[2], reply[3])
        raise error_again(reply[1], reply[2])

    def close(self, timeout: float = 5.0) -> None:
        with self.lock:
            workers, self.workers = self.workers, {}
        for proc, conn in workers.values():
            with contextlib.suppress(OSError):
                conn.send(None)
            proc.join(timeout)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout)
            conn.close()
        atexit.unregister(self.close)
