"""Core benchmark: a vdir folder of contacts into an empty SQLite hub, and a no-op re-sync.

Baseline, measured in the same run on the same files: plain Python listing, reading and
hashing every file (what any sync must at least do). The 100k sync should stay within 5x of it.
The two are paired: each round runs the baseline and then the sync (A B A B …), so a noisy
neighbour on a shared machine weighs on both alike; the table gives each one's best round,
and the ratio is also given per round (its median), not only best against best.

    .venv/bin/python bench/core_bench.py [--sizes 10000 100000] [--rounds 3]

Prints a table and writes bench/results/core.json. A sync that fails, or a no-op that
rewrites anything, stops the bench with its error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from concord.config import from_dict
from concord.engine import sync_link
from concord.formats import vcard
from concord.hub.store import Hub

RESULTS = Path(__file__).parent / "results"


def make_folder(path: Path, n: int) -> None:
    path.mkdir(parents=True)
    for i in range(n):
        fields = {
            "name": f"Client Contact {i}", "given_name": "Client", "family_name": f"Contact {i}",
            "org": f"Practice Client {i % 997} Pty Ltd", "title": "Director",
            "emails": [{"address": f"contact{i}@example.com", "types": ["work"]}],
            "phones": [{"number": f"+61 2 5550 {i % 10000:04d}", "types": ["work"]}],
            "addresses": [{"street": f"{i} George Street", "locality": "Sydney",
                           "region": "NSW", "postcode": "2000", "country": "Australia"}],
            "note": "Prefers e-mail.",
        }
        (path / f"c{i:07d}.vcf").write_text(vcard.build(fields, f"uid-{i:07d}"))


def baseline_read_hash(path: Path) -> float:
    t = time.perf_counter()
    digests = []
    with os.scandir(path) as it:
        for e in it:
            st = e.stat()
            with open(e.path, "rb") as f:
                digests.append((e.name, st.st_mtime_ns, hashlib.blake2b(f.read(), digest_size=16).hexdigest()))
    assert digests
    return time.perf_counter() - t


def drop_caches_hint(path: Path) -> None:
    # warm the page cache for both measurements alike: read everything once
    for p in path.iterdir():
        p.read_bytes()


def run_sync(work: Path, folder: Path) -> tuple[float, float, int]:
    db = work / "hub.db"
    if db.exists():
        db.unlink()
    cfg = from_dict({"hub": {"url": f"sqlite:///{db}"}, "links": {"folder": {
        "connector": "vdir", "options": {"path": str(folder)},
        "entities": {"contact": {"direction": "pull"}}, "batch_size": 2000}}})
    hub = Hub(cfg.hub.url)
    t = time.perf_counter()
    r = sync_link(hub, cfg.link("folder"))
    first = time.perf_counter() - t
    if not r.ok:
        fail(f"the first sync of {folder} failed: {r.message}")
    migrated = hub.count("contact")
    expected = sum(1 for _ in folder.iterdir())
    if migrated != expected:
        fail(f"the first sync of {folder} brought {migrated} of {expected} contacts")
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    seq_before = hub.last_seq()
    t = time.perf_counter()
    r2 = sync_link(hub, cfg.link("folder"))
    noop = time.perf_counter() - t
    after = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    rewrites = sum(1 for k in before if before[k] != after.get(k)) + (hub.last_seq() - seq_before)
    if not r2.ok:
        fail(f"the no-op sync of {folder} failed: {r2.message}")
    hub.close()
    return first, noop, rewrites


def fail(message: str) -> None:
    print(f"core_bench: {message}", file=sys.stderr)
    raise SystemExit(2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="concord-bench-"))
    rows = []
    out: dict[str, float] = {}
    try:
        for n in args.sizes:
            folder = work / f"vdir{n}"
            make_folder(folder, n)
            drop_caches_hint(folder)
            bases, firsts, noops, ratios = [], [], [], []
            rewrites = 0
            for rnd in range(args.rounds):  # paired: baseline, then sync, every round
                base = baseline_read_hash(folder)
                first, noop, rw = run_sync(work, folder)
                bases.append(base)
                firsts.append(first)
                noops.append(noop)
                ratios.append(first / base)
                rewrites += rw
                print(f"{n:,} round {rnd + 1}: read+hash {base:.3f} s, sync {first:.3f} s "
                      f"({first / base:.1f}x), no-op {noop:.3f} s", file=sys.stderr, flush=True)
            if rewrites:
                fail(f"a no-op sync of {n:,} contacts rewrote {rewrites} files or hub records")
            base, first, noop = min(bases), min(firsts), min(noops)
            ratio_median = statistics.median(ratios)
            rows.append((n, first, base, first / base, ratio_median, noop, rewrites))
            key = "10k" if n == 10_000 else ("100k" if n == 100_000 else str(n))
            out[f"vdir_to_hub_{key}_s"] = round(first, 3)
            out[f"baseline_read_hash_{key}_s"] = round(base, 3)
            out[f"ratio_{key}_paired_median"] = round(ratio_median, 2)
            out[f"noop_{key}_s"] = round(noop, 3)
            out["records_per_s"] = round(n / first, 1)
            out["noop_rewrites"] = out.get("noop_rewrites", 0) + rewrites
            shutil.rmtree(folder)
        if len(rows) > 0:
            n, first, base, *_ = rows[-1]
            out["ratio_vs_baseline"] = round(first / base, 2)
        out["rounds"] = args.rounds
    finally:
        shutil.rmtree(work, ignore_errors=True)
    t = Table("records", "vdir → hub (s)", "baseline read+hash (s)", "ratio (best)",
              "ratio (paired median)", "no-op (s)", "no-op rewrites",
              title=f"Concord core: vdir → SQLite hub (best of {args.rounds} paired rounds)")
    for n, first, base, ratio, ratio_median, noop, rewrites in rows:
        t.add_row(f"{n:,}", f"{first:.2f}", f"{base:.2f}", f"{ratio:.1f}x", f"{ratio_median:.1f}x",
                  f"{noop:.2f}", str(rewrites))
    Console(width=120).print(t)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "core.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS / 'core.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
