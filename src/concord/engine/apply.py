"""Applying a planned chunk: the spoke writes it needs, then the one hub batch that commits
the rest (``hub/batch.py``).

Planning (``run.py``) turns what each side holds into a ``Case`` per record with its
``Decision`` (``decide.py``). This module turns cases into spoke write operations, and the
cases with the spoke's answers into a ``Batch``: hub record writes (each against the feed
position it was planned from), archive rows, conflicts, quarantine rows and left-out notes.
Both steps are plain functions of their inputs; ``EntitySync._apply`` runs them in order and
tallies the outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from concord.connectors.base import Item, WriteOp, WriteResult
from concord.engine.decide import Content, Decision
from concord.engine.mapping import Mapping
from concord.errors import PreconditionFailed, TransientError
from concord.hub.batch import Batch, Conflict
from concord.hub.store import ArchiveRow, RecordWrite
from concord.records import Record, canonical

Canon = Callable[[Content], tuple[str, str]]  # content -> (canonical JSON, hash)


@dataclass(slots=True)
class Case:
    """One record's situation in this run."""

    hub_id: str
    arch: ArchiveRow | None
    rec: Record | None
    item: Item | None
    spoke_version: str | None  # the spoke's current version where known
    decision: Decision
    new_hub_id: bool = False
    removed_at: int | None = None  # taken off the spoke by remove_when: the record's seq

    @property
    def spoke_ref(self) -> str | None:
        return self.arch.spoke_ref if self.arch else (self.item.ref if self.item else None)


@dataclass
class SpokeWrites:
    ops: list[WriteOp] = field(default_factory=list)
    op_case: list[int] = field(default_factory=list)  # index of each op's case
    failed: dict[int, str] = field(default_factory=dict)  # case index -> why no op was made
    intents: list[tuple[str, str, str]] = field(default_factory=list)  # (hub id, hash, text)


def spoke_writes(cases: list[Case], to_spoke: Callable[[str, Content], Item | str],
                 canon: Canon) -> SpokeWrites:
    """The spoke write each case needs, and the intent (content about to be written) to
    commit before it, so a crash between the two is recognised as Concord's own write."""
    out = SpokeWrites()
    for n, c in enumerate(cases):
        d = c.decision
        ref = c.spoke_ref
        if d.spoke_put is not None:
            item = to_spoke(c.hub_id, d.spoke_put)
            if isinstance(item, str):
                out.failed[n] = item
                continue
            if ref is None or d.recreate:  # the old ref is gone: update would never apply
                out.ops.append(WriteOp("create", None, item, ident=c.hub_id))
            else:
                out.ops.append(WriteOp("update", ref, item, expected_version=c.spoke_version))
            out.op_case.append(n)
        elif d.spoke_delete and ref is not None:
            out.ops.append(WriteOp("delete", ref, None, expected_version=c.spoke_version))
            out.op_case.append(n)
    for n, op in zip(out.op_case, out.ops, strict=True):
        base = cases[n].decision.base
        if op.kind != "delete" and base is not None:
            text, h = canon(base)
            out.intents.append((cases[n].hub_id, h, text))
    return out


@dataclass
class Tally:
    """Per case of a batch, what the engine counts once the batch is committed."""

    errors: list[str] = field(default_factory=list)
    spoke_changed: list[int] = field(default_factory=list)  # PreconditionFailed: left
    counted: list[int] = field(default_factory=list)  # cases whose decision is committed


def hub_batch(batch: Batch, cases: list[Case], writes: SpokeWrites,
              results: dict[int, WriteResult], mapping: Mapping, canon: Canon,
              entity: str) -> Tally:
    """Fill ``batch`` from the cases and the spoke's answers."""
    tally = Tally()
    for n, c in enumerate(cases):
        d = c.decision
        if n in writes.failed:
            batch.quarantine.append(("hub", c.hub_id, writes.failed[n], None))
            tally.errors.append(writes.failed[n])
            continue
        r = results.get(n)
        if r is not None and r.error is not None:
            if isinstance(r.error, PreconditionFailed):
                tally.spoke_changed.append(n)
            else:
                msg = f"{entity} {c.hub_id}: {r.error}"
                batch.quarantine.append(("hub", c.hub_id, msg, None))
                if isinstance(r.error, TransientError):  # a server's hiccup: due next run
                    batch.retry_now.append(c.hub_id)
                tally.errors.append(msg)
            continue
        writes_hub = d.hub_put is not None or d.hub_delete
        if writes_hub and not c.new_hub_id:
            # a fresh id cannot have been written by anyone else: nothing to compare
            batch.expected[c.hub_id] = c.rec.seq if c.rec is not None else None
        # the record as planned is the record written over: the hub commits this write
        # only while the record is still at the planned seq
        cur = None if c.new_hub_id else c.rec
        if d.hub_put is not None:
            fields = mapping.overlay(cur.fields if cur is not None else {}, d.hub_put[0])
            refs = dict(cur.refs) if cur is not None else {}
            for k in mapping.refs:
                refs.pop(k, None)
            refs.update(d.hub_put[1])
            w = RecordWrite(entity, c.hub_id, fields, refs)
            if fields == d.hub_put[0] and refs == d.hub_put[1]:
                w.data, w.hash = canon(d.hub_put)
            batch.records.append(w)
        elif d.hub_delete and cur is not None and not cur.deleted:
            batch.records.append(RecordWrite(entity, c.hub_id, cur.fields, cur.refs, True))
        if d.forget:
            batch.forget.append(c.hub_id)
            if c.removed_at is not None:  # off the spoke now, kept in the hub on purpose
                batch.left_out.append((c.hub_id, c.removed_at))
        elif d.base is not None:
            ref = r.ref if r is not None and r.ref else c.spoke_ref
            version = r.version if r is not None and r.version else c.spoke_version
            if ref is not None:
                data, h = canon(d.base)
                unwritten = c.rec.hash if c.rec is not None and not c.rec.deleted else None
                batch.archive.append(ArchiveRow(c.hub_id, ref, version, h, data, unwritten))
        for note in d.conflicts:
            batch.conflicts.append(Conflict(
                c.hub_id, note.kind, note.fields, note.winner, note.kept,
                hub_content=_content_json(c.rec, mapping), spoke_content=_item_json(c.item),
                base_content=c.arch.base if c.arch else None))
        tally.counted.append(n)
    return tally


def _content_json(rec: Record | None, m: Mapping) -> str | None:
    if rec is None:
        return None
    return canonical(*m.project(rec.fields, rec.refs))


def _item_json(it: Item | None) -> str | None:
    if it is None:
        return None
    return canonical(it.fields, it.refs)
