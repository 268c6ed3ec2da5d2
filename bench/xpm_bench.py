"""Xero Practice Manager benchmark: what a sync costs under XPM's limits.

A generated practice of 5,000 clients (each with a contact and values in the practice's
client custom fields), 25 staff and 2,000 jobs lives in the in-process XPM fake
(``tests/servers/xpm.py``) with its real limits: 60 calls a minute, 5,000 a day (rolling),
5 in flight. Time is the fake's simulated clock: what the limits make a sync take, without
waiting for it. Two ways of syncing are measured in the same run:

- Concord: the ``xpm`` connector through the engine into a fresh hub (listings, custom field
  values only for what changed, the day's budget kept, deferred records taken next run);
- naive (the baseline): one call per record, as a sync without listings or change
  detection would do (a client listing for ids, then each client, its custom field values,
  each contact, each job read one at a time), waiting out the limits the same way.

Each is run for the first sync and for an incremental sync after 50 clients changed in XPM.

    python bench/xpm_bench.py [--small]   # --small: 500 clients, a quick check

Prints a table and writes bench/results/xpm.json. Fails fast, naming the step, when a sync
does not finish or leaves records out.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers.xpm import XpmFake, connect, connector, options  # noqa: E402

from concord.config import from_dict  # noqa: E402
from concord.engine import sync_link  # noqa: E402
from concord.errors import RateLimited  # noqa: E402
from concord.hub.store import Hub  # noqa: E402

ENTITIES = ["staff", "client", "contact", "custom_field", "job"]


def practice(fake: XpmFake, clients: int, jobs: int) -> list[str]:
    for name in ("Year End", "Entity Type", "Engagement Letter", "Fee Band", "Portal Invited"):
        fake.add_definition(name=name, type="Text", useClient=True)
    staff = [fake.add_staff(name=f"Staff {n}", email=f"s{n}@practice.example") for n in range(25)]
    uids = []
    for n in range(clients):
        uid = fake.add_client(
            name=f"Client {n:05d} Ltd", email=f"office@c{n}.example", phone=f"09 {n:06d}",
            address=f"{n} Queen St", city="Auckland", clientCode=f"C{n:05d}",
            accountManager={"uuid": staff[n % 25], "name": f"Staff {n % 25}"},
            contacts=[{"name": f"Owner {n}", "email": f"owner@c{n}.example", "isPrimary": "Yes"}])
        fake.set_value("client", uid, "Year End", text="31 March")
        fake.set_value("client", uid, "Fee Band", text="ABC"[n % 3])
        uids.append(uid)
    for n in range(jobs):
        fake.add_job(uids[n % clients], name=f"Job {n}", startDate="2026-04-01")
    return uids


def elapsed(fake: XpmFake, since: float) -> float:
    return fake.clock.time() - since


class ConcordRun:
    def __init__(self, fake: XpmFake, root: Path) -> None:
        self.fake = fake
        self.hub = Hub(f"sqlite:///{root / 'hub.db'}")
        connect(fake, self.hub)
        self.cfg = from_dict({"hub": {"url": self.hub.url}, "links": {"xpm": {
            "connector": "xpm", "options": options(), "batch_size": 1000,
            "entities": {e: {} for e in ENTITIES}}}}, base=root)
        self.conn = connector(fake, self.hub)

    def until_complete(self, want_clients: int, check: Any = None, max_runs: int = 60) -> int:
        """Run the link until every client is in the hub (and ``check`` holds): the runs
        a scheduler would make, each after the link's pause (if any) ran out."""
        runs = 0
        while True:
            runs += 1
            row = self.hub.link_row("xpm")
            if row and row.get("paused_until"):  # the scheduler waits out the pause
                self.fake.clock.advance(max(0.0, row["paused_until"] - time.time()) + 1)
                self.hub.set_link("xpm", paused_until=None, pause_reason=None)
            res = sync_link(self.hub, self.cfg.link("xpm"), self.conn, trigger="schedule")
            if res.status not in ("ok", "paused"):
                raise SystemExit(f"Concord run {runs} failed: {res.status} {res.message}")
            done = self.hub.count("client") >= want_clients and (check is None or check())
            if done and res.status == "ok":
                return runs
            if res.status == "ok":  # records deferred for the day's budget: the next run, an hour on
                self.fake.clock.advance(3600)
            if runs >= max_runs:
                raise SystemExit(f"Concord did not finish in {max_runs} runs "
                                 f"({self.hub.count('client')} of {want_clients} clients)")


def naive(fake: XpmFake, conn: Any) -> None:
    """One call per record (the baseline), waiting out the limits like the connector."""
    def call(path: str) -> Any:
        while True:
            try:
                return conn.call("GET", path)
            except RateLimited as exc:  # wait for the window, as a scheduler would
                fake.clock.advance(max(1.0, exc.until - time.time()))
                conn.gate.day_retry_at = 0.0

    clients = call("client.api/list").get("clients") or []
    for c in clients:
        call(f"client.api/get/{c['uuid']}")
        call(f"client.api/get/{c['uuid']}/customfield")
        for contact in c.get("contacts") or []:
            call(f"client.api/contact/{contact['uuid']}")
    for s in call("staff.api/list").get("staffList") or []:
        call(f"staff.api/get/{s['uuid']}")
    for j in call("job.api/list").get("jobs") or []:
        call(f"job.api/get/{j['id']}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true")
    args = ap.parse_args()
    n_clients, n_jobs = (500, 200) if args.small else (5000, 2000)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # -- Concord --------------------------------------------------------------------
        fake = XpmFake()
        uids = practice(fake, n_clients, n_jobs)
        fake.clock.advance(60)
        run = ConcordRun(fake, root)
        t0, c0, cpu = fake.clock.time(), fake.api_calls, time.perf_counter()
        runs = run.until_complete(n_clients)
        rows.append({"sync": "first", "tool": "Concord", "calls": fake.api_calls - c0,
                     "simulated_s": elapsed(fake, t0), "runs": runs,
                     "cpu_s": time.perf_counter() - cpu})
        print(f"  Concord first sync: {rows[-1]}", flush=True)
        fake.clock.advance(86400)  # a new day
        for uid in uids[:50]:
            fake.edit_client(uid, phone="021 000 000")
        fake.clock.advance(60)
        t0, c0, cpu = fake.clock.time(), fake.api_calls, time.perf_counter()

        def edits_arrived() -> bool:
            got = [r for r in run.hub.list_records("client", limit=n_clients)
                   if r.fields.get("phones") == [{"number": "021 000 000", "types": ["work"]}]]
            return len(got) == 50

        runs = run.until_complete(n_clients, edits_arrived)
        rows.append({"sync": "50 changes", "tool": "Concord", "calls": fake.api_calls - c0,
                     "simulated_s": elapsed(fake, t0), "runs": runs,
                     "cpu_s": time.perf_counter() - cpu})
        print(f"  Concord incremental: {rows[-1]}", flush=True)
        run.conn.close()
        # -- naive baseline, same practice, same limits -----------------------------------
        fake = XpmFake()
        uids = practice(fake, n_clients, n_jobs)
        fake.clock.advance(60)
        hub = Hub(f"sqlite:///{root / 'naive.db'}")
        connect(fake, hub)
        conn = connector(fake, hub)
        t0, c0, cpu = fake.clock.time(), fake.api_calls, time.perf_counter()
        naive(fake, conn)
        rows.append({"sync": "first", "tool": "naive", "calls": fake.api_calls - c0,
                     "simulated_s": elapsed(fake, t0), "runs": 1,
                     "cpu_s": time.perf_counter() - cpu})
        print(f"  naive first sync: {rows[-1]}", flush=True)
        fake.clock.advance(86400)
        for uid in uids[:50]:
            fake.edit_client(uid, phone="021 000 000")
        t0, c0, cpu = fake.clock.time(), fake.api_calls, time.perf_counter()
        naive(fake, conn)  # without change detection it reads everything again
        rows.append({"sync": "50 changes", "tool": "naive", "calls": fake.api_calls - c0,
                     "simulated_s": elapsed(fake, t0), "runs": 1,
                     "cpu_s": time.perf_counter() - cpu})
        print(f"  naive incremental: {rows[-1]}", flush=True)
        conn.close()
    base = {r["sync"]: r for r in rows if r["tool"] == "naive"}
    print(f"\n{n_clients:,} clients, {n_jobs:,} jobs; XPM limits 60/min, 5,000/day, 5 in flight; "
          "time simulated under those limits")
    print(f"{'sync':<12}{'tool':<9}{'calls':>8}{'sim. time':>12}{'runs':>6}{'CPU s':>8}"
          f"{'calls vs naive':>16}{'time vs naive':>15}")
    for r in rows:
        b = base[r["sync"]]
        print(f"{r['sync']:<12}{r['tool']:<9}{r['calls']:>8,}{_dur(r['simulated_s']):>12}"
              f"{r['runs']:>6}{r['cpu_s']:>8.1f}{r['calls'] / b['calls']:>16.3f}"
              f"{r['simulated_s'] / max(1.0, b['simulated_s']):>15.3f}")
    out = ROOT / "bench" / "results" / ("xpm-small.json" if args.small else "xpm.json")
    out.write_text(json.dumps({"clients": n_clients, "jobs": n_jobs, "rows": rows,
                               "machine": platform.platform(), "python": sys.version.split()[0]},
                              indent=2) + "\n")
    print(f"\nwritten to {out.relative_to(ROOT)}")


def _dur(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


if __name__ == "__main__":
    main()
