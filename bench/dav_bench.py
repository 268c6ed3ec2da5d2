"""CardDAV benchmark: Concord against vdirsyncer, same contacts, same fresh Radicale.

Each tool syncs generated contacts to a fresh Radicale collection (first upload), then runs
a sync with nothing to do (no-op) and one after 10 edits. vdirsyncer is the baseline, run in
this same process tree on this machine. Its 10,000-contact first upload is not run (measured
before at > 8 minutes for 4,036 items); for its 10,000 no-op its collection is seeded with
Concord's bulk upload and vdirsyncer downloads it once before the measured run.

Concord's first upload sends a new collection's cards in one bulk request where the server
takes it; vdirsyncer sends one PUT per card. So the small first upload is also run with the
bulk upload off (``bulk_upload = false``: one PUT per card, as vdirsyncer does), right before
vdirsyncer's on the same server, and that pair is the like-for-like ratio.

    python bench/dav_bench.py [--small]     # --small: 200 / 1,000 contacts, a quick check
    VDIRSYNCER=/path/to/vdirsyncer python bench/dav_bench.py   # vdirsyncer in another venv

Prints a table and writes bench/results/dav.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers.dav import DavServer, start_radicale, stop  # noqa: E402

from bench import write_results  # noqa: E402
from concord.config import EntityConfig, LinkConfig  # noqa: E402
from concord.engine import sync_link  # noqa: E402
from concord.formats import vcard  # noqa: E402
from concord.hub.store import Hub  # noqa: E402

FIRSTS = ["Ada", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jo"]
LASTS = ["Smith", "Jones", "Patel", "Nguyen", "Okafor", "Rossi", "Kowalski", "Silva"]


def contact_fields(n: int) -> dict[str, Any]:
    first, last = FIRSTS[n % len(FIRSTS)], LASTS[(n // 10) % len(LASTS)]
    return {"name": f"{first} {last} {n}", "given_name": first, "family_name": f"{last} {n}",
            "emails": [{"address": f"{first.lower()}.{n}@client{n % 97}.example"}],
            "phones": [{"number": f"+44 20 7{n % 1000:03d} {n % 10000:04d}"}],
            "org": f"Client {n % 500} Ltd", "title": "Director",
            "addresses": [{"street": f"{n} High Street", "locality": "Leeds",
                           "postcode": f"LS{n % 30} {n % 9}AB"}]}


def timed(fn: Callable[[], Any], label: str = "") -> float:
    t = time.perf_counter()
    fn()
    took = time.perf_counter() - t
    print(f"  {label or getattr(fn, '__qualname__', '')}: {took:.2f} s", flush=True)
    return took


class ConcordSide:
    """A SQLite hub holding ``n`` contacts, linked to a fresh Radicale address book."""

    def __init__(self, server: DavServer, work: Path, n: int, *, bulk: bool = True) -> None:
        self.server, self.n = server, n
        self.coll = server.new_collection("addressbook")
        self.hub = Hub(f"sqlite:///{work / f'hub-{n}-{uuid.uuid4().hex[:8]}.db'}")
        from concord.hub.store import RecordWrite

        with self.hub.begin() as conn:
            self.hub.write(conn, [RecordWrite("contact", f"bench{i:06d}", contact_fields(i), {})
                                  for i in range(n)])
        self.link = LinkConfig(name=f"bench-{n}", connector="carddav", options={
            "url": self.coll, "username": server.username, "password": server.password,
            "collections": {"contact": self.coll}, "bulk_upload": bulk},
            entities={"contact": EntityConfig()},
            batch_size=max(n, 1000))

    def sync(self) -> dict[str, int]:
        r = sync_link(self.hub, self.link)
        if not r.ok:
            fail(f"Concord sync of {self.n:,} contacts failed: {r.message}")
        return dict(r.counts)

    def check_listed(self) -> None:
        got = self.listed()
        if got != self.n:
            fail(f"Concord uploaded {got:,} of {self.n:,} contacts to {self.coll}")

    def edit(self, k: int) -> None:
        for i in range(k):
            rec = self.hub.get("contact", f"bench{i * 7:06d}")
            assert rec is not None
            self.hub.put("contact", rec.id, {**rec.fields, "title": f"Partner {time.time()}"})

    def listed(self) -> int:
        from concord.connectors.dav.client import DavClient

        c = DavClient(self.coll, username=self.server.username, password=self.server.password)
        try:
            return len(c.list_etags(c.url))
        finally:
            c.close()


class VdirsyncerSide:
    """vdirsyncer pairing a local vdir of ``n`` cards with a fresh Radicale address book."""

    def __init__(self, server: DavServer, work: Path, n: int, *, seed_remote: bool = False) -> None:
        self.dir = work / f"vds-{n}"
        self.local = self.dir / "local"
        self.local.mkdir(parents=True)
        (self.dir / "status").mkdir()
        if seed_remote:  # remote holds the cards (Concord's bulk path), local starts empty
            side = ConcordSide(server, work, n)
            side.sync()
            self.coll = side.coll
            side.hub.close()
        else:
            self.coll = server.new_collection("addressbook")
            for i in range(n):
                (self.local / f"bench{i:06d}.vcf").write_text(
                    vcard.build(contact_fields(i), f"bench{i:06d}"))
        (self.dir / "config").write_text(f"""
[general]
status_path = "{self.dir / 'status'}/"

[pair bench]
a = "bench_local"
b = "bench_remote"
collections = null
conflict_resolution = "a wins"

[storage bench_local]
type = "filesystem"
path = "{self.local}/"
fileext = ".vcf"

[storage bench_remote]
type = "carddav"
url = "{self.coll}"
username = "{server.username}"
password = "{server.password}"
""")
        self.exe = vdirsyncer_exe() or "vdirsyncer"
        self.run("discover", "bench")  # not timed: vdirsyncer's one-off setup step

    def run(self, *argv: str) -> None:
        try:
            r = subprocess.run([self.exe, "-c", str(self.dir / "config"), *argv],
                               capture_output=True, text=True, input="y\n" * 4, timeout=1800)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"vdirsyncer {argv[0]} did not finish in 30 min") from exc
        if r.returncode != 0:
            fail(f"vdirsyncer {argv[0]} failed: {r.stdout[-1500:]}{r.stderr[-1500:]}")

    def sync(self) -> None:
        self.run("sync")


def vdirsyncer_exe() -> str | None:
    """vdirsyncer beside this Python, else $VDIRSYNCER, else on the PATH."""
    return (shutil.which("vdirsyncer", path=os.path.dirname(sys.executable))
            or os.environ.get("VDIRSYNCER") or shutil.which("vdirsyncer"))


def fail(message: str) -> None:
    print(f"dav_bench: {message}", file=sys.stderr)
    raise SystemExit(2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true", help="200 / 1,000 contacts")
    ap.add_argument("--no-vdirsyncer", action="store_true")
    args = ap.parse_args()
    small_n, big_n = (200, 1000) if args.small else (2000, 10_000)
    work = Path(tempfile.mkdtemp(prefix="concord-davbench-"))
    proc, server = start_radicale(work / "radicale")
    res: dict[str, Any] = {}
    try:
        c_small = ConcordSide(server, work, small_n)
        res["first_upload_2k_s"] = timed(c_small.sync)
        c_small.check_listed()

        c_big = ConcordSide(server, work, big_n)
        res["first_upload_10k_s"] = timed(c_big.sync)
        c_big.check_listed()
        res["noop_10k_s"] = timed(c_big.sync)
        c_big.edit(10)
        res["edit10_10k_s"] = timed(c_big.sync)

        # like for like: one PUT per card, Concord then vdirsyncer, on the same server
        c_put = ConcordSide(server, work, small_n, bulk=False)
        res["first_upload_2k_no_bulk_s"] = timed(c_put.sync)
        c_put.check_listed()
        if not args.no_vdirsyncer and vdirsyncer_exe():
            v_small = VdirsyncerSide(server, work, small_n)
            res["first_upload_2k_vdirsyncer_s"] = timed(v_small.sync)
            v_big = VdirsyncerSide(server, work, big_n, seed_remote=True)
            v_big.sync()  # download once: vdirsyncer's own first sync of a full collection
            res["noop_10k_vdirsyncer_s"] = timed(v_big.sync)
    finally:
        stop(proc)
        shutil.rmtree(work, ignore_errors=True)

    res = {k: round(v, 3) for k, v in res.items()}
    for key, base, ours in (("first_upload_ratio_vs_vdirsyncer", "first_upload_2k_vdirsyncer_s",
                             "first_upload_2k_s"),
                            ("first_upload_no_bulk_ratio_vs_vdirsyncer",
                             "first_upload_2k_vdirsyncer_s", "first_upload_2k_no_bulk_s"),
                            ("noop_ratio_vs_vdirsyncer", "noop_10k_vdirsyncer_s", "noop_10k_s")):
        if res.get(base) and res.get(ours):
            res[key] = round(res[base] / res[ours], 1)
    rows = [("first upload", small_n, "first_upload_2k_s", "first_upload_2k_vdirsyncer_s"),
            ("  bulk off", small_n, "first_upload_2k_no_bulk_s", "first_upload_2k_vdirsyncer_s"),
            ("first upload", big_n, "first_upload_10k_s", None),
            ("no-op sync", big_n, "noop_10k_s", "noop_10k_vdirsyncer_s"),
            ("10 edits", big_n, "edit10_10k_s", None)]
    print(f"\n{'sync':<14}{'contacts':>10}{'Concord s':>12}{'vdirsyncer s':>14}{'ratio':>9}")
    for label, n, ck, vk in rows:
        c = res.get(ck)
        v = res.get(vk) if vk else None
        ratio = f"{v / c:.1f}x" if c and v else "-"
        print(f"{label:<14}{n:>10,}{c if c is not None else '-':>12}"
              f"{v if v is not None else '-':>14}{ratio:>9}")
    write_results("dav", {**res, "contacts": [small_n, big_n], "small": args.small},
                  machine=True)


if __name__ == "__main__":
    main()
