"""Concord against its peers on the same practice database, in one process, interleaved.

The contenders, each on its own copy of one generated SQLite practice database (clients,
their contacts and the staff; about ``--rows`` rows in all):

  copy     a raw sqlite3 copy of the three tables into another SQLite file (the floor);
  dlt      dlt's ``sql_database`` source, pyarrow backend, into a duckdb file: clients and
           contacts incremental on ``updated_at`` with merge on the primary key (as dlt's docs
           set up an ongoing load), staff replaced each run;
  concord  a pull link from the practice database into a fresh SQLite hub.

Each round runs A B C in turn (the order rotates every round), so a noisy neighbour on this
shared machine costs every contender alike; the table shows each contender's best round and
the median. Phases per contender and round:

  first load   everything into an empty destination;
  no-op        the same again with nothing changed;
  edit         100 client edits (name + updated_at) and 10 contact deletes committed in the
               practice database, then one run; the bench checks that every edit arrived and
               whether the deletes did (dlt's incremental merge cannot see a hard delete: its
               figure is shown, never hidden).

Writes bench/results/peer.json. A contender whose run fails stops the bench with its error.

Usage: python bench/peer_bench.py [--rows 200000] [--rounds 2]
Needs the bench extra: pip install -e '.[bench]'
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from bench import write_results  # noqa: E402

TABLES = ("staff", "clients", "contacts")
EDITS, DELETES = 100, 10


def fail(message: str) -> None:
    print(f"peer_bench: {message}", file=sys.stderr)
    raise SystemExit(2)


def make_source(path: Path, rows: int) -> dict[str, int]:
    """The sample practice schema, with clients and contacts only (about one contact per
    client), written with sqlite3 from the sample generator's rows."""
    import sqlalchemy as sa

    from concord.demo.sample import generate_rows, metadata

    engine = sa.create_engine(f"sqlite:///{path}")
    metadata.create_all(engine, tables=[metadata.tables[t] for t in TABLES])
    counts = dict.fromkeys(TABLES, 0)
    clients_n = max(10, rows // 2)
    with engine.begin() as c:
        for table, chunk in generate_rows(clients_n):
            if table.name in TABLES and chunk:
                c.execute(table.insert(), chunk)
                counts[table.name] += len(chunk)
    engine.dispose()
    return counts


def edit_source(path: Path, round_no: int) -> tuple[list[int], list[int]]:
    """100 client edits and 10 contact deletes, committed; returns (client ids, contact ids)."""
    db = sqlite3.connect(path)
    try:
        clients = [r[0] for r in db.execute(
            "SELECT client_id FROM clients ORDER BY client_id LIMIT ? OFFSET ?",
            (EDITS, 1000 + round_no * EDITS))]
        contacts = [r[0] for r in db.execute(
            "SELECT contact_id FROM contacts ORDER BY contact_id DESC LIMIT ? OFFSET ?",
            (DELETES, round_no * DELETES))]
        db.executemany("UPDATE clients SET name = ?, updated_at = datetime('now') "
                       "WHERE client_id = ?", [(f"Peer edit {i}", i) for i in clients])
        db.executemany("DELETE FROM contacts WHERE contact_id = ?", [(i,) for i in contacts])
        db.commit()
    finally:
        db.close()
    return clients, contacts


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


# --- contenders --------------------------------------------------------------------------


def run_copy(src: Path, work: Path, round_no: int) -> dict[str, Any]:
    from bench.sql_bench import sqlite_copy  # the same baseline sql_bench measures

    return {"first_load_s": sqlite_copy(src, work / "copy.db", list(TABLES))}


def run_dlt(src: Path, work: Path, round_no: int) -> dict[str, Any]:
    # dlt's anonymous usage telemetry would send events to dltHub (and leaves a thread
    # running that does so): off, so the bench talks to nothing but local files
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    try:
        import dlt
        from dlt.sources.sql_database import sql_database
    except ImportError as e:
        fail(f"dlt is not installed ({e}); fix: pip install -e '.[bench]'")
    import duckdb

    pipe_dir, db_file = work / "dlt-pipelines", work / "dlt.duckdb"
    shutil.rmtree(pipe_dir, ignore_errors=True)
    db_file.unlink(missing_ok=True)
    pipeline = dlt.pipeline(pipeline_name=f"peer{round_no}", pipelines_dir=str(pipe_dir),
                            destination=dlt.destinations.duckdb(str(db_file)),
                            dataset_name="practice")

    def source() -> Any:
        s = sql_database(f"sqlite:///{src}", table_names=list(TABLES), backend="pyarrow")
        for table in ("clients", "contacts"):
            s.resources[table].apply_hints(
                incremental=dlt.sources.incremental("updated_at"),
                write_disposition="merge", primary_key=f"{table[:-1]}_id")
        s.resources["staff"].apply_hints(write_disposition="replace")
        return s

    def load() -> None:
        info = pipeline.run(source())
        if info.has_failed_jobs:
            fail(f"dlt load failed: {info}")

    first, _ = timed(load)
    noop, _ = timed(load)
    clients, contacts = edit_source(src, round_no)
    edit, _ = timed(load)
    con = duckdb.connect(str(db_file), read_only=True)
    try:
        names = dict(con.execute(
            "SELECT client_id, name FROM practice.clients WHERE client_id IN "
            f"({','.join(map(str, clients))})").fetchall())
        left = con.execute("SELECT count(*) FROM practice.contacts WHERE contact_id IN "
                           f"({','.join(map(str, contacts))})").fetchone()
    finally:
        con.close()
    missing = [i for i in clients if names.get(i) != f"Peer edit {i}"]
    if missing:
        fail(f"dlt: {len(missing)} of {EDITS} edits did not arrive (first: client {missing[0]})")
    return {"first_load_s": first, "noop_s": noop, "edit_s": edit,
            "deletes_arrived": left is not None and left[0] == 0}


def run_concord(src: Path, work: Path, round_no: int) -> dict[str, Any]:
    from concord.config import LinkConfig
    from concord.connectors.base import make_connector
    from concord.demo.sample import ADMIN_EMAIL, default_entities, default_mapping
    from concord.engine import sync_link
    from concord.hub.store import Hub
    from concord.link.activation import activate

    hub_file = work / "hub.db"
    for p in work.glob("hub.db*"):
        p.unlink()
    # the same three tables dlt and the copy read (the sample's custom-field tables are left
    # out of the source, so the client mapping carries no custom fields here)
    mapping = {e: {k: v for k, v in m.items() if k != "custom_fields"}
               for e, m in default_mapping().items() if m["table"] in TABLES}
    link = LinkConfig(name="practice", connector="sql", admin=ADMIN_EMAIL,
                      options={"url": f"sqlite:///{src}", "mapping": mapping},
                      entities={e: c for e, c in default_entities("pull").items() if e in mapping})
    hub = Hub(f"sqlite:///{hub_file}")
    activate(hub, link, by=ADMIN_EMAIL)

    def run(conn: Any = None) -> Any:
        r = sync_link(hub, link, conn)
        if r.status != "ok":
            fail(f"concord run failed: {r.status}: {r.message}")
        return r

    from concord.engine import aside

    # was the first load prepared in second processes (engine/aside.py)? Shown, not assumed:
    # a thread left running in this process turns it off
    prepared = 0
    real_init = aside.Aside.__init__

    def counting(self: Any, *a: Any, **kw: Any) -> None:
        nonlocal prepared
        prepared += 1
        real_init(self, *a, **kw)

    aside.Aside.__init__ = counting  # type: ignore[method-assign]
    try:
        first, _ = timed(run)
    finally:
        aside.Aside.__init__ = real_init  # type: ignore[method-assign]
    # each later phase as a running link does it: one connector kept open
    live = make_connector(link.connector, link.options, link=link.name)
    try:
        noop, r = timed(lambda: run(live))
        if r.counts:
            fail(f"concord no-op changed something: {r.counts}")
        clients, contacts = edit_source(src, round_no)
        edit, _ = timed(lambda: run(live))
    finally:
        live.close()
    ids = {a.spoke_ref: a.hub_id for a in hub.archive_select(
        "practice", "client", spoke_refs=[str(i) for i in clients])}
    got = hub.get_many("client", ids.values())
    missing = [i for i in clients if (rec := got.get(ids.get(str(i), ""))) is None
               or rec.fields.get("name") != f"Peer edit {i}"]
    if missing:
        fail(f"concord: {len(missing)} of {EDITS} edits did not arrive (first: client {missing[0]})")
    contact_ids = [a.hub_id for a in hub.archive_select(
        "practice", "contact", spoke_refs=[str(i) for i in contacts])]
    # a delete carried removes the link's archive row and marks the hub record deleted
    alive = [r for r in hub.get_many("contact", contact_ids).values() if not r.deleted]
    hub.engine.dispose()
    return {"first_load_s": first, "noop_s": noop, "edit_s": edit,
            "deletes_arrived": not alive, "prepared_aside": prepared}


CONTENDERS: dict[str, Callable[[Path, Path, int], dict[str, Any]]] = {
    "copy": run_copy, "dlt": run_dlt, "concord": run_concord}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    results: dict[str, list[dict[str, Any]]] = {n: [] for n in CONTENDERS}
    with tempfile.TemporaryDirectory(prefix="concord-peer-bench-") as d:
        tmp = Path(d)
        source = tmp / "practice.db"
        t, counts = timed(lambda: make_source(source, args.rows))
        total = sum(counts.values())
        print(f"source: {total:,} rows ({', '.join(f'{k} {v:,}' for k, v in counts.items())}),"
              f" generated in {t:.1f} s")
        names = list(CONTENDERS)
        for round_no in range(args.rounds):
            order = names[round_no % len(names):] + names[:round_no % len(names)]
            for name in order:
                work = tmp / name
                work.mkdir(exist_ok=True)
                src = work / "practice.db"
                shutil.copyfile(source, src)
                out = CONTENDERS[name](src, work, round_no)
                results[name].append(out)
                print(f"round {round_no + 1} {name:<8} "
                      + "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                  for k, v in out.items()), flush=True)

    def best(name: str, key: str) -> float:
        return min(r[key] for r in results[name])

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    print()
    print(f"{'phase':<12}{'contender':<10}{'best s':>10}{'median s':>10}{'rec/s':>12}"
          f"{'x copy':>9}{'x dlt':>8}")
    copy_best, dlt_first = best("copy", "first_load_s"), best("dlt", "first_load_s")
    for phase in ("first_load_s", "noop_s", "edit_s"):
        for name in names:
            if phase not in results[name][0]:
                continue
            b = best(name, phase)
            rate = f"{total / b:>12,.0f}" if phase == "first_load_s" else f"{'':>12}"
            xc = f"{b / copy_best:>9.1f}" if phase == "first_load_s" else f"{'':>9}"
            xd = f"{b / best('dlt', phase):>8.2f}"
            print(f"{phase[:-2]:<12}{name:<10}{b:>10.3f}{med(name, phase):>10.3f}{rate}{xc}{xd}")
    deletes = {n: all(r["deletes_arrived"] for r in results[n]) for n in ("dlt", "concord")}
    print(f"deletes arrived: concord {deletes['concord']}, dlt {deletes['dlt']}")
    aside_types = min(r["prepared_aside"] for r in results["concord"])
    print(f"concord first load prepared aside (second processes): {aside_types} entity types")
    out = {
        "rows": total, "rounds": args.rounds,
        "concord_first_load_s": best("concord", "first_load_s"),
        "dlt_first_load_s": dlt_first, "copy_first_load_s": copy_best,
        "concord_noop_s": best("concord", "noop_s"), "dlt_noop_s": best("dlt", "noop_s"),
        "concord_edit_s": best("concord", "edit_s"), "dlt_edit_s": best("dlt", "edit_s"),
        "deletes_arrived": deletes["concord"], "dlt_deletes_arrived": deletes["dlt"],
        "concord_vs_dlt_first_load": best("concord", "first_load_s") / dlt_first,
        "concord_vs_copy_first_load": best("concord", "first_load_s") / copy_best,
        "concord_first_load_prepared_aside": aside_types,
    }
    write_results("peer", out, digits=4)


if __name__ == "__main__":
    main()
