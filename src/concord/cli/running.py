"""Running links from the command line: one run with a progress bar, the printed result,
and watch mode."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from concord.cli.options import console, err
from concord.config import LinkConfig
from concord.connectors.base import Connector, make_connector
from concord.engine import RunResult, sync_link
from concord.errors import ConcordError, LinkLocked, LinkUnavailable
from concord.hub.store import Hub
from concord.link.retry import BACKOFF_FIRST, BACKOFF_MAX, record_failure
from concord.link.status import local_time
from concord.records import ENTITY_ORDER


def print_result(r: RunResult, dry_run: bool) -> None:
    color = {"ok": "green", "dry-run": "cyan", "held": "red", "paused": "yellow"}.get(r.status, "red")
    counts = ", ".join(f"{v} {k}" for k, v in sorted(r.counts.items()) if v) or "nothing to do"
    console.print(f"[{color}]{r.link}: {r.status}[/] — {counts}")
    if r.message and r.status != "ok":
        console.print(f"  {r.message}")
    for er in r.entities.values():
        for e in er.errors[:20]:
            console.print(f"  [yellow]quarantined[/] {e}")
        if len(er.errors) > 20:
            where = (f"a real run quarantines them; `concord status {r.link} --details` then "
                     "lists them all" if dry_run else
                     f"`concord status {r.link} --details` lists them all")
            console.print(f"  … and {len(er.errors) - 20} more ({where})")
        if dry_run:
            for line in er.plan[:200]:
                console.print(f"  {er.entity:<10} {line.label:<40} hub={line.hub_id} spoke={line.spoke_ref}")
            if len(er.plan) > 200:
                console.print(f"  … {len(er.plan) - 200} more actions")


class RunProgress:
    """The progress of one run of a link over all its entity types: one named row per type
    from the start (waiting, running, done) and a row for the whole run, so the bar does not
    start again at each type. A rate and an ETA appear only once a type has run for
    ``SETTLE_SECONDS`` and done ``SETTLE_RECORDS`` records (a first batch read from a cache
    would otherwise show billions of records a second)."""

    SETTLE_SECONDS = 2.0
    SETTLE_RECORDS = 100

    def __init__(self, link: str, entities: list[str], progress: Progress,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.link, self.entities, self.bar, self.clock = link, entities, progress, clock
        self.width = max((len(e) for e in entities), default=0)
        self.whole = progress.add_task(self._name("all"), total=None, rate="", eta="")
        self.rows = {e: progress.add_task(self._name(e), total=None, rate="", eta="waiting")
                     for e in entities}
        self.done: dict[str, int] = {}
        self.totals: dict[str, int] = {}
        self.current: str | None = None
        self.began = self.last = clock()  # a type begins when the one before it ended

    def _name(self, entity: str) -> str:
        return f"{self.link}/{entity:<{self.width}}"

    def __call__(self, entity: str, done: int, total: int) -> None:
        now = self.clock()
        if entity != self.current:
            if self.current is not None:
                self._finish(self.current)
            self.current, self.began = entity, self.last
        if entity not in self.rows:  # a type the link carries but the list did not name
            self.rows[entity] = self.bar.add_task(self._name(entity), total=None, rate="", eta="")
        self.last = now
        self.done[entity], self.totals[entity] = done, max(total, done)
        rate, eta = self.rate_eta(done, total, now - self.began)
        self.bar.update(self.rows[entity], completed=done, total=total or None, rate=rate, eta=eta)
        self._whole()
        self.bar.refresh()

    def rate_eta(self, done: int, total: int, elapsed: float) -> tuple[str, str]:
        """('1,234 rec/s', '~0:01:05 left'), or blanks while too little has run."""
        if elapsed < self.SETTLE_SECONDS or done < self.SETTLE_RECORDS:
            return "", ""
        rate = done / elapsed
        left = max(0, total - done) / rate if total else None
        return f"{rate:,.0f} rec/s", ("" if left is None else f"~{_clock(left)} left")

    def _finish(self, entity: str) -> None:
        self.bar.update(self.rows[entity], completed=self.done.get(entity, 0),
                        total=self.totals.get(entity) or None, eta="done")

    def _whole(self) -> None:
        n = len(self.entities)
        at = self.entities.index(self.current) + 1 if self.current in self.entities else n
        done = sum(self.done.values())
        self.bar.update(self.whole, completed=done, total=None,
                        eta=f"type {at} of {n}: {self.current}")

    def close(self) -> None:
        if self.current is not None:
            self._finish(self.current)


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def run_one(hub: Hub, link: LinkConfig, *, entities: list[str] | None = None, dry_run: bool = False,
            confirm_deletes: bool = False, trigger: str = "cli", show_progress: bool = True,
            connector: Any = None) -> RunResult:
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[eta]}"),
                        console=console, transient=True, disable=not show_progress,
                        # drawn by the run's own progress calls: no refresh thread, so a large
                        # migration may fork its preparing process (engine/aside.py)
                        auto_refresh=False)
    wanted = sorted((e for e in link.entities if entities is None or e in entities),
                    key=lambda e: ENTITY_ORDER.get(e, len(ENTITY_ORDER)))
    on_progress = RunProgress(link.name, wanted, progress)
    with progress:
        try:
            return sync_link(hub, link, connector, entities=entities, dry_run=dry_run,
                             confirm_deletes=confirm_deletes, trigger=trigger,
                             requested_by=os.environ.get("USER", "cli"), progress=on_progress)
        finally:
            on_progress.close()


def watch_links(hub: Hub, links: list[LinkConfig], entities: list[str] | None, *,
                backoff_first: float = BACKOFF_FIRST, backoff_max: float = BACKOFF_MAX,
                stop: threading.Event | None = None) -> None:
    """Run each link whenever its spoke signals a change (or its interval passes), until
    Ctrl-C (or ``stop``). A failed run is handled as the service's scheduler does
    (``concord.link.retry``): after a transient error the link waits out an exponential
    backoff, told once per attempt with "retrying at …"; after a terminal one it stops, told
    once, until a person's ``concord sync LINK`` succeeds (the other links go on)."""
    conns: dict[str, Connector] = {}
    said: dict[str, str] = {}  # what was last told of a link, so a standing state is told once

    def tell(name: str, text: str) -> None:
        if said.get(name) != text:
            err.print(text)
            said[name] = text

    console.print("watching for changes; Ctrl-C to stop")
    try:
        while stop is None or not stop.is_set():
            for lk in links:
                wait = lk.interval / max(1, len(links))
                row = hub.link_row(lk.name) or {}
                now = time.time()
                if row.get("parked"):
                    tell(lk.name, f"[red]{lk.name}: stopped[/] — {row['parked']} (fix: correct "
                                  f"the cause, then run `concord sync {lk.name}`)")
                    time.sleep(wait)
                    continue
                if row.get("retry_at") and row["retry_at"] > now:
                    time.sleep(min(wait, row["retry_at"] - now))
                    continue
                try:
                    conn = conns.get(lk.name)
                    if conn is None:
                        conn = conns[lk.name] = make_connector(lk.connector, lk.options,
                                                               link=lk.name)
                    conn.wait_for_change(wait)
                    r = sync_link(hub, lk, conn, entities=entities, trigger="watch")
                except LinkLocked:
                    continue
                except LinkUnavailable as exc:  # paused or deactivated by a person: told once
                    tell(lk.name, f"[yellow]{lk.name}[/]: {exc}")
                    time.sleep(wait)
                    continue
                except Exception as exc:
                    message = str(exc) if isinstance(exc, ConcordError) else f"internal error: {exc!r}"
                    failure = record_failure(hub, lk.name, exc, message, first=backoff_first,
                                             cap=backoff_max)
                    if failure.stopped:
                        # the connector may hold the cause (a password): made anew on the next run
                        stale = conns.pop(lk.name, None)
                        if stale is not None:
                            stale.close()
                        tell(lk.name, f"[red]{lk.name}: stopped[/] — {message} (fix: correct "
                                      f"the cause, then run `concord sync {lk.name}`)")
                    else:
                        assert failure.retry_at is not None
                        said[lk.name] = (f"[red]{lk.name}: error[/] — {message}; retrying at "
                                         f"{local_time(failure.retry_at)}")
                        err.print(said[lk.name])  # each attempt told: they are backed off
                    continue
                said.pop(lk.name, None)
                if r.counts or r.status != "ok":
                    print_result(r, False)
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        for c in conns.values():
            c.close()
