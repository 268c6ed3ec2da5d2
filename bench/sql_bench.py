"""Practice-database link benchmark: first migration, no-op sync, change latency, memory.

Prints a table and writes bench/results/sql.json. Figures against targets, not tests:
  migration_100k_s / migration_records_per_s   (target >= 25,000 records/s)
  sqlite_copy_100k_s, migration_vs_copy_ratio  (a plain sqlite3 copy of the same rows,
                                                measured in the same run; target <= 3)
  noop_100k_ms                                 (target < 50 ms: cost follows changes)
  latency_p50_ms_sqlite, latency_p95_ms_sqlite, latency_p95_ms_postgres
                                               (committed change -> hub, over 100 edits
                                                spaced by random 0.2-0.6 s gaps, so each
                                                edit meets the watcher idle and waiting, as
                                                a person's edits do; back-to-back edits
                                                would hide the poll; target p95 < 150 ms)
  peak_rss_mb_1m                               (peak memory of a 1,000,000-row migration of
                                                clients, in a subprocess; target < 300 MB)
  peak_rss_mb_1m_all_entities, per_row_us_1m_all_entities, per_row_ratio_1m_vs_100k
                                               (the same for 1,000,000 rows of every entity
                                                type the sample maps, and its cost a row
                                                against the 100k migration of this run;
                                                targets < 200 MB, ratio <= 1.2)
  peak_tree_pss_mb_1m, peak_tree_pss_mb_1m_all_entities
                                               (the same migrations' peak memory with the
                                                processes that prepare them (engine/aside.py):
                                                the sum of the tree's proportional set sizes,
                                                sampled every 50 ms; same targets)

A run that fails (a migration that does not finish, an edit that never arrives) stops the
bench at once with its error.

Usage: python bench/sql_bench.py [--records 100000] [--rss-rows 1000000]
       [--all-rows 1000000] [--edits 100] [--no-postgres]
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import write_results  # noqa: E402
from concord.config import LinkConfig  # noqa: E402
from concord.connectors.base import make_connector  # noqa: E402
from concord.demo.sample import (  # noqa: E402
    ADMIN_EMAIL,
    create_sample,
    default_entities,
    default_mapping,
)
from concord.engine import sync_link  # noqa: E402
from concord.hub.store import Hub  # noqa: E402

RECORDS_PER_CLIENT = 5.39  # the sample's mapped records per client (measured: 53,888 / 10,000)


def link_for(url: str, entities: list[str] | None = None, batch: int = 2000) -> LinkConfig:
    mapping = default_mapping()
    if entities:
        mapping = {e: m for e, m in mapping.items() if e in entities}
    return LinkConfig(name="practice", connector="sql", batch_size=batch, admin=ADMIN_EMAIL,
                      options={"url": url, "mapping": mapping},
                      entities={e: ec for e, ec in default_entities("pull").items()
                                if e in mapping})


def activate(url: str, hub: Hub, link: LinkConfig) -> None:
    from concord.link.activation import activate as do

    do(hub, link, by=ADMIN_EMAIL)


def sqlite_copy(src: Path, dst: Path, tables: list[str]) -> float:
    """The baseline: read every mapped row and write it to another SQLite file, plain sqlite3."""
    dst.unlink(missing_ok=True)
    t0 = time.perf_counter()
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    for table in tables:
        ddl = a.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
        b.execute(ddl)
        cur = a.execute(f"SELECT * FROM {table}")
        marks = ",".join("?" * len(cur.description))
        while rows := cur.fetchmany(5000):
            b.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        b.commit()
    a.close()
    b.close()
    return time.perf_counter() - t0


def bench_migration(tmp: Path, records: int) -> dict[str, Any]:
    practice = tmp / "practice.db"
    clients = max(10, round(records / RECORDS_PER_CLIENT))
    create_sample(f"sqlite:///{practice}", clients_n=clients)
    url = f"sqlite:///{practice}"
    link = link_for(url)
    hub = Hub(f"sqlite:///{tmp / 'hub.db'}")
    activate(url, hub, link)
    t0 = time.perf_counter()
    r = sync_link(hub, link)
    took = time.perf_counter() - t0
    if r.status != "ok":
        fail(f"the {records:,}-record migration ended {r.status}: {r.message}")
    migrated = sum(er.counts.get("migrated", 0) for er in r.entities.values())
    tables = sorted({m["table"] for m in default_mapping().values()}
                    | {"custom_field_values", "custom_field_definitions", "event_attendees"})
    copy_s = sqlite_copy(practice, tmp / "copy.db", tables)
    noops = []
    # as a running link does it (`sync --watch`, `serve`): one connector kept open, so the
    # figure is the sync's own cost, not the start-up reflection of the practice schema
    live = make_connector(link.connector, link.options, link=link.name)
    try:
        for _ in range(5):
            t0 = time.perf_counter()
            r = sync_link(hub, link, live)
            noops.append((time.perf_counter() - t0) * 1000)
            if r.counts:
                fail(f"a no-op sync changed something: {dict(r.counts)}")
    finally:
        live.close()
    scale = 100_000 / migrated
    return {"records_migrated": migrated, "migration_100k_s": took * scale,
            "migration_records_per_s": migrated / took, "sqlite_copy_100k_s": copy_s * scale,
            "migration_vs_copy_ratio": took / copy_s, "noop_100k_ms": statistics.median(noops)}


WATCHER = """
import sys
sys.path.insert(0, {root!r})
from bench.sql_bench import link_for
from concord.connectors.sql import SQLConnector, SQLOptions
from concord.engine import sync_link
from concord.hub.store import Hub
link = link_for({url!r})
hub = Hub({hub!r})
conn = SQLConnector(SQLOptions.model_validate(link.options), link="practice")
print("ready", flush=True)
while True:
    conn.wait_for_change(1.0)
    sync_link(hub, link, conn, trigger="watch")
"""


def bench_latency(tmp: Path, url: str, edits: int, name: str) -> list[float]:
    """Edits committed in the practice database; time until each is in the hub, as seen by
    a separate process running the live sync loop (as `concord sync --watch` does). Between
    edits a random 0.2-0.6 s gap (seeded, the same every run), so the watcher is idle when
    each edit lands."""
    gaps = random.Random(10)
    import sqlalchemy as sa

    from concord.connectors.sql.options import sql_url

    create_sample(url, clients_n=2000)
    hub_url = f"sqlite:///{tmp / f'hub-{name}.db'}"
    link = link_for(url)
    hub = Hub(hub_url)
    activate(url, hub, link)
    r = sync_link(hub, link)
    if r.status != "ok":
        fail(f"the {name} latency setup sync ended {r.status}: {r.message}")
    ids = {a.spoke_ref: a.hub_id for a in hub.archive_select("practice", "client",
                                                              spoke_refs=[str(i) for i in range(1, 201)])}
    proc = subprocess.Popen([sys.executable, "-c", WATCHER.format(root=str(ROOT), url=url, hub=hub_url)],
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    try:
        if proc.stdout is None or proc.stdout.readline().strip() != "ready":
            fail(f"the {name} watcher did not start (exit {proc.poll()})")
        time.sleep(1.5)  # the watcher's first pass
        engine = sa.create_engine(sql_url(url))
        out: list[float] = []
        for n in range(edits):
            time.sleep(gaps.uniform(0.2, 0.6))  # the gap between two people's edits
            key = 1 + n % 200
            name_ = f"Latency edit {name} {n}"
            with engine.begin() as c:
                c.execute(sa.text("UPDATE clients SET name = :n WHERE client_id = :k"), {"n": name_, "k": key})
            t0 = time.perf_counter()
            while True:
                rec = hub.get("client", ids[str(key)])
                if rec is not None and rec.fields.get("name") == name_:
                    break
                if time.perf_counter() - t0 > 10:
                    fail(f"{name}: edit {n} did not reach the hub in 10 s (watcher exit "
                         f"{proc.poll()})")
                time.sleep(0.002)
            out.append((time.perf_counter() - t0) * 1000)
        engine.dispose()
        return out
    finally:
        proc.terminate()
        proc.wait(10)


RSS = """
import resource, sys, time
sys.path.insert(0, {root!r})
from bench.sql_bench import link_for, activate
from concord.engine import sync_link
from concord.hub.store import Hub
link = link_for({url!r}, entities={entities!r}, batch=2000)
hub = Hub({hub!r})
activate({url!r}, hub, link)
t0 = time.perf_counter()
r = sync_link(hub, link)
took = time.perf_counter() - t0
n = sum(er.counts.get("migrated", 0) for er in r.entities.values())
print(r.status, n, took, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, flush=True)
"""


def bench_rss(tmp: Path, rows: int, *, all_entities: bool = False) -> dict[str, Any]:
    """Peak memory of a ``rows``-row migration in a fresh process: clients alone, or (with
    ``all_entities``) every entity type the sample maps, about ``rows`` rows in all."""
    practice = tmp / ("big-all.db" if all_entities else "big.db")
    if all_entities:
        create_sample(f"sqlite:///{practice}", clients_n=max(10, round(rows / RECORDS_PER_CLIENT)))
    else:
        create_sample(f"sqlite:///{practice}", clients_n=rows, children=False)
    hub_db = tmp / ("bighub-all.db" if all_entities else "bighub.db")
    script = RSS.format(root=str(ROOT), url=f"sqlite:///{practice}", hub=f"sqlite:///{hub_db}",
                        entities=None if all_entities else ["staff", "client"])
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")}) as proc:
        tree_peak, began = 0.0, time.monotonic()
        while proc.poll() is None:
            if time.monotonic() - began > 3600:
                proc.kill()
                fail(f"the {rows:,}-row migration did not finish in an hour")
            tree_peak = max(tree_peak, tree_pss_mb(proc.pid))
            time.sleep(0.05)
        stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        fail(f"the {rows:,}-row migration failed:\n{stderr[-3000:]}")
    status, n, took, rss = stdout.split()
    if status != "ok":
        fail(f"the {rows:,}-row migration ended {status}:\n{stdout}{stderr[-3000:]}")
    practice.unlink()
    hub_db.unlink()
    size = "1m" if rows >= 1_000_000 else str(rows)
    if all_entities:
        return {f"rss_rows_{size}_all_entities": int(n), f"rss_migration_s_{size}_all_entities":
                float(took), f"per_row_us_{size}_all_entities": float(took) / int(n) * 1e6,
                f"peak_rss_mb_{size}_all_entities": float(rss),
                f"peak_tree_pss_mb_{size}_all_entities": tree_peak}
    return {"rss_rows": int(n), "rss_migration_s": float(took), "rss_records_per_s": int(n) / float(took),
            f"peak_rss_mb_{size}": float(rss), f"peak_tree_pss_mb_{size}": tree_peak}


def tree_pss_mb(pid: int) -> float:
    """The memory of a process and every process below it now (the processes a migration
    prepares in, engine/aside.py, included): the sum of their proportional set sizes, which
    counts a page shared after a fork once across the processes sharing it."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
    return total / 1024


def fail(message: str) -> None:
    print(f"sql_bench: {message}", file=sys.stderr)
    raise SystemExit(2)


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--rss-rows", type=int, default=1_000_000)
    ap.add_argument("--all-rows", type=int, default=1_000_000,
                    help="rows of every entity type for the second memory run (0: skip)")
    ap.add_argument("--edits", type=int, default=100)
    ap.add_argument("--no-postgres", action="store_true")
    args = ap.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="concord-sql-bench-") as d:
        tmp = Path(d)
        results.update(bench_migration(tmp, args.records))
        lat = bench_latency(tmp, f"sqlite:///{tmp / 'lat.db'}", args.edits, "sqlite")
        results["latency_p50_ms_sqlite"] = pct(lat, 50)
        results["latency_p95_ms_sqlite"] = pct(lat, 95)
        if not args.no_postgres:
            from tests.servers.postgres import pg_cluster

            with pg_cluster() as pg:
                lat = bench_latency(tmp, pg, args.edits, "postgres")
            results["latency_p50_ms_postgres"] = pct(lat, 50)
            results["latency_p95_ms_postgres"] = pct(lat, 95)
        if args.rss_rows:
            results.update(bench_rss(tmp, args.rss_rows))
        if args.all_rows:
            got = bench_rss(tmp, args.all_rows, all_entities=True)
            results.update(got)
            size = "1m" if args.all_rows >= 1_000_000 else str(args.all_rows)
            per_100k = results["migration_100k_s"] / 100_000 * 1e6
            results["per_row_us_100k"] = per_100k
            results[f"per_row_ratio_{size}_vs_100k"] = got[f"per_row_us_{size}_all_entities"] / per_100k
    targets = {"migration_records_per_s": (">=", 25_000), "migration_vs_copy_ratio": ("<=", 3),
               "noop_100k_ms": ("<", 20), "latency_p95_ms_sqlite": ("<", 150),
               "latency_p95_ms_postgres": ("<", 150), "peak_rss_mb_1m": ("<", 300),
               "peak_rss_mb_1m_all_entities": ("<", 200), "per_row_ratio_1m_vs_100k": ("<=", 1.2),
               "peak_tree_pss_mb_1m": ("<", 300), "peak_tree_pss_mb_1m_all_entities": ("<", 200)}
    print(f"{'figure':<36}{'value':>14}  target")
    for k, v in results.items():
        t = targets.get(k)
        mark = ""
        if t:
            ok = {">=": v >= t[1], "<=": v <= t[1], "<": v < t[1]}[t[0]]
            mark = f"{t[0]} {t[1]:,}  {'met' if ok else 'NOT met'}"
        print(f"{k:<36}{v:>14,.2f}  {mark}")
    write_results("sql", results, digits=3)


if __name__ == "__main__":
    main()
