"""Entity types, the hub's Record, and the canonical content hash.

A record's content is its plain JSON-able fields plus its references to other
records (stored as hub ids in the hub, as spoke references at a spoke). The
hash is taken over a canonical JSON form, so two systems that hold the same
content always agree on the hash, whatever order they wrote the keys in.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

#: Entity types in dependency order: parents before children. The engine
#: applies changes in this order so a job's client exists before the job.
ENTITY_TYPES: tuple[str, ...] = (
    "staff",
    "client",
    "contact",
    "custom_field",
    "job",
    "tax_return",
    "task",
    "event",
    "email",
)

ENTITY_ORDER: dict[str, int] = {name: i for i, name in enumerate(ENTITY_TYPES)}

Fields = dict[str, Any]
Refs = dict[str, str | None]


def check_entity(entity: str) -> str:
    if entity not in ENTITY_ORDER:
        raise ValueError(
            f"unknown entity type {entity!r}; use one of: {', '.join(ENTITY_TYPES)}"
        )
    return entity


_rng = random.Random()  # seeded from the OS; not the shared generator tests may seed
os.register_at_fork(after_in_child=_rng.seed)
_last = 0  # the last id's 48-bit millisecond time and 12-bit counter, as one number


def new_id() -> str:
    """A fresh hub id (also used as the UID of records Concord creates at a spoke): a UUID
    version 7 (RFC 9562) in hex, so ids taken one after another sort in the order they were
    taken and a migration's inserts append to the hub's indexes instead of landing all over
    them. 48 bits of Unix time in milliseconds, a 12-bit counter within the millisecond
    (method 1 of the RFC: ids from one process never go backwards, even when the clock does)
    and 62 random bits (two threads taking an id at once may share a counter value; the
    random bits still tell them apart)."""
    global _last
    n = max(time.time_ns() // 1_000_000 << 12, _last + 1)
    _last = n
    tail = _rng.getrandbits(62) | 0x8000_0000_0000_0000  # the RFC 4122 variant bits
    return f"{n >> 12:012x}7{n & 0xFFF:03x}{tail:016x}"


def usable_id(ident: str) -> bool:
    """Can a spoke's own identity (a UID) serve as the hub id? Short ones without '/' can;
    a longer one (Outlook's 100-character UIDs) travels in the record's ``uid`` field."""
    return 0 < len(ident) <= 64 and "/" not in ident


def canonical(fields: Fields, refs: Refs | None = None) -> str:
    """The canonical JSON text of a record's content: sorted keys, no spaces, UTF-8,
    ``None`` values dropped (absent and empty mean the same thing everywhere). orjson: the
    hash is taken for every record read, so this is on the hot path."""
    if None in fields.values():
        fields = {k: v for k, v in fields.items() if v is not None}
    doc: dict[str, Any] = {"f": fields}
    if refs:
        r = refs if None not in refs.values() else {k: v for k, v in refs.items() if v is not None}
        if r:
            doc["r"] = r
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
                        default=str).decode()


def content_hash(fields: Fields, refs: Refs | None = None) -> str:
    return hash_text(canonical(fields, refs))


def hash_text(text: str) -> str:
    """The content hash of a canonical text (see ``canonical``)."""
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@dataclass(slots=True)
class Record:
    """One record in the hub."""

    entity: str
    id: str
    fields: Fields = field(default_factory=dict)
    refs: Refs = field(default_factory=dict)
    deleted: bool = False
    seq: int = 0
    updated_at: float = 0.0

    @property
    def hash(self) -> str:
        return content_hash(self.fields, self.refs)
