"""vCard codec benchmark: Concord's own codec against vobject on the same cards, in one run.

The cards are the corpus's vCards 3.0/4.0 (``tests/corpus/vcard``: Apple, Google, Outlook,
RFC shapes, photos) and a typical practice contact. Reading is what a sync does for every
card it lists; vobject is asked for the same work (parse, then read every property's value).
A/B rounds are interleaved so machine noise hits both alike.

    .venv/bin/python bench/vcard_bench.py [--rounds 5] [--copies 40]

Prints a table and writes bench/results/vcard.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import vobject
from rich.console import Console
from rich.table import Table

from concord.formats import vcard

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"


def cards() -> list[str]:
    out = []
    for p in sorted((ROOT / "tests" / "corpus" / "vcard").glob("*.vcf")):
        text = vcard.decode_bytes(p.read_bytes(), name=p.name)
        if "VERSION:2.1" not in text.upper():
            out.append(text.lstrip("\ufeff"))
    return out


TYPICAL = vcard.build({
    "name": "Ada Client", "given_name": "Ada", "family_name": "Client", "org": "Client Pty Ltd",
    "title": "Director", "emails": [{"address": "ada@client.example", "types": ["work"]}],
    "phones": [{"number": "+61 2 5550 0101", "types": ["work"]}],
    "addresses": [{"street": "1 George St", "locality": "Sydney", "postcode": "2000"}],
    "note": "Prefers e-mail."}, "typical-1")


def concord_read(texts: list[str]) -> float:
    t = time.perf_counter()
    for text in texts:
        vcard.read(text)
    return time.perf_counter() - t


def vobject_read(texts: list[str]) -> float:
    t = time.perf_counter()
    for text in texts:
        card = vobject.readOne(text)
        for lines in card.contents.values():
            for ln in lines:
                _ = ln.value
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--copies", type=int, default=40)
    args = ap.parse_args()
    sets = {"corpus (3.0/4.0)": cards() * args.copies, "typical contact": [TYPICAL] * 2000}
    table = Table("cards", "n", "Concord µs/card", "vobject µs/card", "vobject / Concord")
    results: dict[str, float] = {}
    for label, texts in sets.items():
        ours, theirs = [], []
        for _ in range(args.rounds):  # A B A B
            ours.append(concord_read(texts))
            theirs.append(vobject_read(texts))
        a = statistics.median(ours) / len(texts) * 1e6
        b = statistics.median(theirs) / len(texts) * 1e6
        table.add_row(label, f"{len(texts):,}", f"{a:.1f}", f"{b:.1f}", f"{b / a:.1f}x")
        key = "corpus" if label.startswith("corpus") else "typical"
        results[f"{key}_concord_us"] = round(a, 1)
        results[f"{key}_vobject_us"] = round(b, 1)
        results[f"{key}_ratio"] = round(b / a, 2)
    Console().print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "vcard.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
