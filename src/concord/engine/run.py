"""One run of a link for one entity type: read -> plan -> guard -> apply -> checkpoint.

Memory stays bounded: the spoke's dirty references and the hub's feed are processed in
chunks of ``batch_size``; each chunk is planned (decide.py), written to the spoke, then its hub
changes, archive rows, conflicts and quarantine rows are committed in one transaction.
Checkpoints move only after everything they cover is committed, and never past a record that
was left for later, so a run killed at any instant is finished by the next one.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from concord.config import LinkConfig
from concord.connectors.base import (
    Connector,
    Item,
    ItemError,
    StreamedMigration,
    WriteResult,
)
from concord.engine import aside
from concord.engine.apply import Case, hub_batch, spoke_writes
from concord.engine.decide import (
    Content,
    Decision,
    State,
    decide,
    decide_new_both,
    decide_removed,
    out_of_selection,
)
from concord.engine.mapping import Mapping
from concord.engine.refs import References, RefMissing
from concord.errors import ConcordError, TransientError
from concord.hub.batch import Batch, BatchOutcome, SpokeLeft
from concord.hub.exclusions import selection_key, spoke_selection_key
from concord.hub.store import ArchiveRow, Checkpoint, FreshRow, Hub, load_content
from concord.model import ModelError
from concord.records import (
    ENTITY_ORDER,
    ENTITY_TYPES,
    Record,
    canonical,
    content_hash,
    hash_text,
    new_id,
    usable_id,
)

Progress = Callable[[str, int, int], None]
#: a quarantine row: (side, ref, error, payload)
Bad = tuple[str, str, str, str | None]


@dataclass(slots=True)
class PlanLine:
    label: str
    hub_id: str | None
    spoke_ref: str | None


@dataclass
class EntityResult:
    entity: str
    counts: Counter[str] = field(default_factory=Counter)
    plan: list[PlanLine] = field(default_factory=list)
    held: str | None = None
    errors: list[str] = field(default_factory=list)


def _canon(c: Content) -> tuple[str, str]:
    text = canonical(c[0], c[1])
    return text, hash_text(text)


class EntitySync:
    PLAN_LINES_KEPT = 2000
    #: a first migration into a hub holding nothing of the entity takes the fresh path
    #: (``_create_fresh``); tests turn it off to compare it with the general path
    FRESH_PATH = True
    #: a large first migration is prepared in a second process (engine/aside.py); tests
    #: turn it off to compare it with one process
    ASIDE = True

    def __init__(self, hub: Hub, link: LinkConfig, connector: Connector, entity: str, *,
                 dry_run: bool = False, confirm_deletes: bool = False,
                 progress: Progress | None = None, run_id: int | None = None,
                 planned: dict[str, dict[str, str]] | None = None,
                 own_connector: bool = False) -> None:
        self.hub, self.link, self.conn, self.entity = hub, link, connector, entity
        #: the connector was made from the link's configuration (not handed in): another
        #: process can make its twin (engine/aside.py)
        self.own_connector = own_connector
        self.cfg = link.entities[entity]
        self.map = Mapping(self.cfg, connector.fields(entity), connector.ref_fields(entity),
                           entity=entity, spoke_shapes=connector.field_shapes(entity),
                           link=link.name)
        self.dry_run, self.confirm = dry_run, confirm_deletes
        self.progress, self.run_id = progress, run_id
        self.result = EntityResult(entity)
        self.batch = link.batch_size
        self.planned = planned if dry_run else None
        self.refs = References(hub, link.name, entity, self.map, self.planned)
        self.unfinished_hub_seq: int | None = None
        self.unfinished_spoke = False
        self.done = 0
        self.total = 0
        self.handled: set[str] = set()
        self._claimed: dict[str, str] = {}  # hub id (a UID) -> the spoke ref that holds it
        # id(content) -> (content, canonical, hash) for this chunk; holding the content keeps
        # its id from being reused while the entry exists
        self._memo: dict[int, tuple[Content, str, str]] = {}
        self.hub_written = 0  # hub records this run wrote
        self.spoke_written: dict[str, str | None] = {}  # spoke ref -> version we wrote (None: deleted)
        # an empty hub skips look-ups that cannot find anything (a first sync); records the
        # link's selection leaves out on purpose are noted (hub/exclusions.py), so they are
        # not counted as pending, and a changed selection plans them again
        (self.hub_has_entity, self.has_quarantine, self.has_intents,
         self.has_exclusions, self.has_left) = hub.entity_flags(link.name, entity)
        self.selection = selection_key(self.cfg)
        self.spoke_selection = spoke_selection_key(self.cfg)  # of spoke items left out
        self._seqs: dict[str, int] = {}  # hub id -> feed seq, for the hub chunk being applied
        self.own_range: tuple[int, int] | None = None  # seqs of this run's own migration writes
        self._versions: dict[str, str] = {}  # spoke ref -> version, as listed by this run
        # the hub writes a migration has committed so far (its checkpoints count them)
        self._mig_written = 0
        #: during and right after a migration from a spoke that lists in full: the refs it
        #: read that left no link state (not synced, quarantined), with the version read
        #: (None: unknown); the run's listing after it does not try them a second time, and
        #: a chunk prepared aside quarantines its items at these versions
        self._left: dict[str, str | None] | None = None
        #: during a migration: do its fresh chunks release quarantine rows (``_migrate``)
        self._release: bool | None = None
        #: spoke ref -> (version, fingerprint, content hash, identity) of the items this
        #: run's listing found noted as left out (``spoke_left``)
        self._noted: dict[str, tuple[str, str, str | None, str | None]] = {}

    def _canon(self, c: Content) -> tuple[str, str]:
        got = self._memo.get(id(c))
        if got is None or got[0] is not c:
            got = self._memo[id(c)] = (c, *_canon(c))
        return got[1], got[2]

    def _hash(self, c: Content) -> str:
        return self._canon(c)[1]

    # ------------------------------------------------------------------ entry point
    def run(self) -> EntityResult:
        hub, name, entity = self.hub, self.link.name, self.entity
        cp = hub.checkpoint(name, entity)
        streamed = self.conn.streamed_migration()
        # a first migration, or one resumed; or a spoke that linked nothing yet (an empty
        # folder filled since): streamed again, unless what it holds was read and left out
        # (noted, or quarantined), which the listing below skips instead of reading again
        if (streamed is not None and not self.dry_run and cp.spoke_token is None
                and self.cfg.direction != "push"
                and (cp.progress is not None or not cp.stored
                     or (not self.has_left and hub.archive_count(name, entity) == 0
                         and not (self.has_quarantine and hub.has_quarantined(name, entity))))):
            self._migrate(cp, streamed)
            cp = hub.checkpoint(name, entity)
            self.handled.clear()  # rows edited during the migration must be read again now
            # the hub holds the migrated records now: the rest of the run looks them up
            # (a second item with a migrated one's UID is a duplicate, not a new record)
            (self.hub_has_entity, self.has_quarantine, self.has_intents,
             self.has_exclusions, self.has_left) = hub.entity_flags(name, entity)
        hub_seq_now = hub.last_seq()
        ch = self.conn.changes(entity, cp.spoke_token)
        left, self._left = self._left, None
        if ch.idents and not self.dry_run:
            self._relink(ch.idents)

        # A. the spoke side: which refs changed, which vanished
        linked: int | None = None  # how many refs the link holds, where the listing is full
        if ch.complete:
            # a full listing is compared with the link's refs and versions alone; the whole
            # link state (its bases are the bulk of its bytes) is read for what differs
            known = hub.archive_versions(name, entity)
            linked = len(known)
            deleted_refs = set(known) - set(ch.changed)
            dirty = [ref for ref, v in ch.changed.items() if ref not in known or known[ref] != v]
            stale = [ref for ref in dirty if ref in known]
            del known
            by_ref = {a.spoke_ref: a for a in hub.archive_select(
                name, entity, spoke_refs=[*stale, *deleted_refs])}
        else:
            touched = list(set(ch.changed) | ch.deleted)
            by_ref = {a.spoke_ref: a for a in hub.archive_select(name, entity, spoke_refs=touched)}
            deleted_refs = {r for r in ch.deleted if r in by_ref and r not in ch.changed}
            dirty = [ref for ref, v in ch.changed.items()
                     if (a := by_ref.get(ref)) is None or a.spoke_version != v]
        arch_by_id = {a.hub_id: a for a in by_ref.values()}
        if left:
            # read by this run's migration and left out: once per run is enough. (Not by
            # version: a folder's version of a file just written changes by itself once the
            # racy window has passed. One changed meanwhile is read by the next run: it has
            # no link state, or it is quarantined at the version read.)
            dirty = [ref for ref in dirty if ref not in left]
        if self.has_left:
            # items the link's selection left out at the version listed now, under the
            # selection it has now, are not read again; the notes of items gone are dropped
            noted = hub.spoke_left(name, entity, None if ch.complete
                                   else [*ch.changed, *ch.deleted])
            sel = self.spoke_selection
            dirty = [ref for ref in dirty if (n := noted.get(ref)) is None or not n[0]
                     or n[:2] != (ch.changed.get(ref), sel)]
            self._noted = noted
            gone = [ref for ref in noted if ref not in ch.changed]
            if gone and not self.dry_run:
                with hub.begin() as conn:
                    hub.drop_spoke_left(conn, name, entity, gone)
            # the hub records whose identity an item gone held: the hub pass plans them again
            # (created at the spoke); so too, after the spoke pass, for an item read again
            # that no longer holds it (linked, quarantined, another UID)
            released = [n[3] for ref, n in noted.items() if ref in gone and n[3]]
            reread = {ref: n[3] for ref in dirty if (n := noted.get(ref)) is not None and n[3]}
        else:
            released, reread = [], {}
        # quarantined records are tried again when they change, when a record of a parent
        # type changes (the parent they waited for may have arrived), or when their backoff
        # ends (the cause may be gone without anything changing: a value mapped, a server
        # back); not on every run, which would fill the log with the same failure
        retry_ids: list[str] = list(released)
        self._versions = ch.changed
        if self.has_quarantine:
            q = hub.quarantined(name, entity)
            due = self._retry_due(q)
            spoke_q = {r["ref"]: r for r in q if r["side"] == "spoke"}
            # a full listing names every file again: one quarantined at the version it
            # still has waits for its retry (a change feed names only what changed)
            if ch.complete:
                dirty = [ref for ref in dirty if (r := spoke_q.get(ref)) is None or ref in due
                         or r["version"] is None or r["version"] != ch.changed.get(ref)]
            seen = set(dirty)
            dirty += [ref for ref in spoke_q if ref in due and ref not in seen
                      and (not ch.complete or ref in ch.changed)]
            retry_ids += [r["ref"] for r in q if r["side"] == "hub" and r["ref"] in due]
        if self.has_exclusions:  # left out under another selection: the config changed since
            retry_ids += hub.stale_exclusions(name, entity, self.selection)

        # Guard: a plan deleting too much of a side, or a spoke that suddenly lists empty.
        # (no hub write since the checkpoint: no tombstone to send; the size is counted only
        # when there is something to compare with it, which a no-op run never has)
        held = self._guard(ch.complete and not ch.changed, len(deleted_refs),
                           0 if hub_seq_now <= cp.hub_seq else
                           hub.count_deleted_linked(name, entity, cp.hub_seq),
                           (lambda: linked) if linked is not None else
                           (lambda: hub.archive_count(name, entity)))
        if held:
            self.result.held = held
            return self.result

        self.total = len(dirty) + len(deleted_refs)
        has_linked = None if linked is None else linked > 0
        # C. spoke-side changes, chunk by chunk; where the connector allows, the next chunk
        # is read while this one is written
        chunks = [dirty[i:i + self.batch] for i in range(0, len(dirty), self.batch)]
        if self.conn.capabilities.concurrent_reads and len(chunks) > 1:
            with ThreadPoolExecutor(1, thread_name_prefix="concord-read") as ex:
                fut = ex.submit(self._read, chunks[0])
                for i in range(len(chunks)):
                    got = fut.result()
                    if i + 1 < len(chunks):
                        fut = ex.submit(self._read, chunks[i + 1])
                    self._spoke_items(got, by_ref, ch.changed, linked=has_linked)
        else:
            for chunk in chunks:
                self._spoke_items(self._read(chunk), by_ref, ch.changed, linked=has_linked)
        if reread:
            now = hub.spoke_left(name, entity, list(reread))
            retry_ids += [i for ref, i in reread.items() if ref not in now or now[ref][3] != i]
        # D. hub-side changes and spoke deletes
        deleted_ids = {by_ref[r].hub_id for r in deleted_refs}
        pending_deleted = set(deleted_ids)
        for page in hub.feed_head(entity, cp.hub_seq, upto_seq=hub_seq_now, page=self.batch,
                                  skip=self.own_range):
            ids = [i for i, _, _ in page if i not in self.handled]
            seqs = {i: s for i, s, _ in page}
            for a in hub.archive_select(name, entity, hub_ids=[i for i in ids if i not in arch_by_id]):
                arch_by_id[a.hub_id] = a
            self._hub_chunk(ids, arch_by_id, deleted_ids, seqs)
            pending_deleted -= set(ids)
        rest = [i for i in pending_deleted | set(retry_ids) if i not in self.handled]
        if rest:
            for a in hub.archive_select(name, entity, hub_ids=[i for i in rest if i not in arch_by_id]):
                arch_by_id[a.hub_id] = a
        for i in range(0, len(rest), self.batch):
            self._hub_chunk(rest[i:i + self.batch], arch_by_id, deleted_ids, {})

        if not self.dry_run:
            new_seq = hub_seq_now
            if self.unfinished_hub_seq is not None:
                new_seq = min(new_seq, self.unfinished_hub_seq - 1)
            token = cp.spoke_token if self.unfinished_spoke else ch.token
            capture = self.conn.change_capture()
            if (capture is not None and token is not None and self.spoke_written
                    and not self.unfinished_spoke):
                # move the token past our own writes, so an item we created and someone
                # then deleted is not lost by servers that omit it from the next diff
                token = capture.token_after_writes(entity, token, self.spoke_written)
            unchanged = (not self.hub_written and max(new_seq, cp.hub_seq) == cp.hub_seq
                         and token == cp.spoke_token and cp.progress is None)
            # a no-op run writes nothing, not even its checkpoint; but a first run writes it
            # (an empty spoke whose first run succeeded has finished its first migration)
            if unchanged and cp.stored:  # (has_synced: stored, no migration in progress)
                return self.result
            own_only = self.unfinished_hub_seq is None and self.hub_written > 0

            def at_head(last: int) -> Checkpoint:
                # When every seq taken since the run began is one of ours, nobody else
                # wrote meanwhile: skip our own echoes instead of re-reading them next run.
                seq = last if own_only and last - hub_seq_now == self.hub_written else new_seq
                return Checkpoint(max(seq, cp.hub_seq), token)

            hub.checkpoint_at_head(name, entity, at_head)
        return self.result

    def _relink(self, idents: dict[str, str]) -> None:
        """Every reference of the spoke changed at once (a new IMAP UIDVALIDITY): a linked
        record whose hub id is an item's identity moves to that item's new reference, its
        version unknown, so the item is read once more and compared with the base instead of
        being taken for a delete and a create."""
        hub, name, entity = self.hub, self.link.name, self.entity
        arch = hub.archive(name, entity)
        moved: list[ArchiveRow] = []
        taken: set[str] = set()
        for ref, ident in idents.items():
            a = arch.get(ident)
            if a is not None and a.spoke_ref != ref and ident not in taken:
                taken.add(ident)
                moved.append(ArchiveRow(a.hub_id, ref, None, a.hash, a.base, a.hub_hash))
        if moved:
            with hub.begin() as conn:
                hub.drop_archive(conn, name, entity, [a.hub_id for a in moved])
                hub.save_archive(conn, name, entity, moved)
            self.result.counts["relinked (new UIDVALIDITY)"] += len(moved)

    # ------------------------------------------------------------------ first migration
    def _migrate(self, cp: Checkpoint, streamed: StreamedMigration) -> None:
        """Stream every spoke item into the hub in committed batches. The change token is
        taken before the scan (so edits made during it are caught by the next pass) and saved
        with the position, so a killed migration resumes after its last committed batch."""
        hub, name, entity = self.hub, self.link.name, self.entity
        progress = cp.progress or {}
        if not progress:
            capture = self.conn.change_capture()
            token = capture.current_token(entity) if capture is not None else None
            progress = {"after": None, "token": token, "done": 0, "start_seq": hub.last_seq(),
                        "written": 0}
            hub.set_checkpoint(name, entity, Checkpoint(cp.hub_seq, None, progress))
        self.total = int(progress.get("total") or 0)
        counted = streamed.count(entity)
        if counted is not None:
            self.total = int(counted)
        self.done = int(progress.get("done") or 0)
        self._mig_written = int(progress.get("written") or 0)
        if self.conn.change_capture() is None:  # the run's listing follows: see _left
            self._left = {}
        # a scan yields each ref once, so what one chunk quarantines is never linked by a
        # later one: the chunks release quarantine rows only if the entity had some already
        # (a chunk's commit looks up each ref it links otherwise, for nothing)
        self._release = self.has_quarantine and hub.has_quarantined(name, entity)
        # Each chunk commits before the next is read. (Committing on a background thread
        # while the next chunk is built was measured slower: the two threads share the GIL
        # and the handover cost more CPU than the overlap won.)
        if self.ASIDE and self._fresh() and aside.usable(self):
            # a large first migration: a second process prepares the chunks (engine/aside.py)
            with aside.Aside(self, progress["after"]) as prepared:
                for last, n, rows, not_synced, bad, errors, left, spoke_left in prepared:
                    progress = {**progress, "after": last, "done": self.done + n}
                    self.result.errors.extend(errors)
                    if self._left is not None:
                        self._left.update(left)
                    self._versions = {r: v for r, v in left.items() if v is not None}
                    self._commit_fresh(rows, not_synced, bad,
                                       Checkpoint(cp.hub_seq, None, progress), spoke_left)
                    self.handled.clear()
        else:
            for batch in streamed.scan(entity, progress["after"], self.batch):
                if not batch:
                    continue
                progress = {**progress, "after": batch[-1].ref, "done": self.done + len(batch)}
                # quarantined at the version read: not tried again until it changes
                self._versions = {g.ref: g.version for g in batch if g.version is not None}
                self._spoke_items(batch, {}, {}, checkpoint=Checkpoint(cp.hub_seq, None, progress))
                # bounded memory: a scan yields each row once, so nothing of this batch is
                # needed again (children look their parents up in the archive)
                self.handled.clear()
                self._claimed.clear()
                self.refs.forget(entity)
        start = progress.get("start_seq")
        written = self._mig_written

        def at_head(last: int) -> Checkpoint:
            if start is not None and written and last - int(start) == written:
                # every seq taken since the migration began is one of its own writes: the
                # hub pass of this run skips them (bounded memory, no wasted reads), but
                # still walks what the hub held before the migration began
                self.own_range = (int(start), last)
            return Checkpoint(cp.hub_seq, progress.get("token"), None)

        hub.checkpoint_at_head(name, entity, at_head)
        self.hub_written = 0
        self._release = None
        self.result.counts["migrated"] = self.done

    # ------------------------------------------------------------------ planning
    def _guard(self, listed_empty: bool, hub_deletes: int, spoke_deletes: int,
               count: Callable[[], int]) -> str | None:
        least = self.cfg.delete_min
        if self.confirm or not (listed_empty or hub_deletes > least or spoke_deletes > least):
            return None
        size = count()
        if size == 0:
            return None
        thr = self.cfg.delete_threshold
        side = "the spoke" if self.cfg.direction != "push" else "the hub"
        if listed_empty and self.cfg.direction != "push":
            return (f"{self.link.name}/{self.entity}: the spoke suddenly lists no records "
                    f"(it held {size}); nothing was deleted. If this is intended, run "
                    f"`concord sync {self.link.name} --entity {self.entity} --confirm-deletes`; "
                    "otherwise check the spoke (wrong folder, unmounted drive, empty collection).")
        for n, where in ((hub_deletes, "the hub"), (spoke_deletes, side if side != "the hub" else "the spoke")):
            if n > least and n > thr * size:
                return (f"{self.link.name}/{self.entity}: the plan deletes {n} of {size} records "
                        f"in {where} (more than {thr:.0%} and {least}); held, nothing applied. "
                        f"Check the other side, then run `concord sync {self.link.name} --entity "
                        f"{self.entity} --confirm-deletes` to apply.")
        return None

    def _hub_state(self, rec: Record | None, arch: ArchiveRow | None
                   ) -> tuple[State | Literal["removed"], Content | None]:
        if rec is None or rec.deleted:
            return ("deleted" if arch is not None else "absent"), None
        if not self.map.passes(rec.fields):
            # a linked record the hub moved out of the link's selection (remove_when, a
            # filter, an unmapped value) leaves the spoke; a spoke edit made meanwhile is kept
            # in the conflicts log, never written back over the hub's edit
            return ("absent" if arch is None else "removed"), None
        proj = self.map.project(rec.fields, rec.refs)
        if arch is None:
            return "changed", proj
        return ("unchanged" if content_hash(*proj) == arch.hash else "changed"), proj

    def _retry_due(self, rows: list[dict[str, Any]]) -> set[str]:
        """Refs of quarantined rows to try again now: backoff over, or a record of a type
        before this one (a parent) written since the row was quarantined."""
        now = time.time()
        parents = ENTITY_TYPES[:ENTITY_ORDER[self.entity]]
        oldest = min((int(r["seq"]) for r in rows if r.get("seq") is not None), default=None)
        moved = None
        if oldest is not None and parents:
            moved = self.hub.parents_last_seq(parents)
        return {r["ref"] for r in rows
                if r.get("retry_at") is None or r["retry_at"] <= now
                or (moved is not None and r.get("seq") is not None and moved > int(r["seq"]))}

    def _read(self, refs: list[str]) -> list[Item | ItemError]:
        # a ref that vanished between list and get is simply absent here; the next
        # listing reports it as deleted
        return list(self.conn.get(self.entity, refs))

    def _fresh(self) -> bool:
        """Does a spoke chunk of this run take the direct first-sync path (_create_fresh)?"""
        return (self.FRESH_PATH and not self.dry_run and not self.hub_has_entity
                and not self.has_intents and self.cfg.direction != "push")

    def _map_chunk(self, got: list[Item | ItemError]
                   ) -> tuple[list[tuple[Item, Content | None]], list[Bad]]:
        """A chunk of spoke items in hub space (None: not synced over this link), with its
        references translated in one query per target; what cannot be read or mapped is
        returned as quarantine rows."""
        items: list[Item] = []
        bad: list[Bad] = []
        for g in got:
            if isinstance(g, ItemError):
                bad.append(("spoke", g.ref, g.error, g.payload))
                self.result.errors.append(g.error)
            else:
                items.append(g)
        wanted: dict[str, set[str]] = {}  # translate the batch's references in one query each
        for it in items:
            for rf, target in self.map.refs.items():
                sref = it.refs.get(rf)
                if sref is not None:
                    wanted.setdefault(target, set()).add(str(sref))
        for target, srefs in wanted.items():
            self.refs.look_up(target, refs=sorted(srefs))
        mapped: list[tuple[Item, Content | None]] = []
        for it in items:
            try:
                mapped.append((it, self.refs.to_hub(it)))
            except (RefMissing, ModelError) as exc:
                bad.append(("spoke", it.ref, str(exc), None))
                self.result.errors.append(str(exc))
        return mapped, bad

    def _spoke_items(self, got: list[Item | ItemError], by_ref: dict[str, ArchiveRow],
                     listed: dict[str, str], checkpoint: Checkpoint | None = None, *,
                     linked: bool | None = None) -> None:
        """``by_ref``: the link state of (at least) these items' refs; ``linked``: does the
        link hold any ref (None: as ``by_ref`` says, which then holds the link's all)."""
        mapped, bad = self._map_chunk(got)
        if not (by_ref if linked is None else linked) and self._fresh():
            self._create_fresh(mapped, bad, checkpoint)
            self._note_left(got, mapped, bad)
            return
        idents = [it.ident for it, _ in mapped
                  if by_ref.get(it.ref) is None and it.ident] if self.hub_has_entity else []
        ids = [by_ref[it.ref].hub_id for it, _ in mapped if it.ref in by_ref] + idents
        recs = self.hub.get_many(self.entity, ids)
        linked_elsewhere = {a.hub_id: a for a in self.hub.archive_select(
            self.link.name, self.entity, hub_ids=idents)} if idents else {}
        intents = self.hub.intents_for(self.link.name, self.entity, ids) if self.has_intents else {}
        cases: list[Case] = []
        left_out: list[tuple[str, int]] = []  # linked records whose spoke copy is left out
        spoke_left = _not_synced(mapped)
        # read again (its version moved on: a touch, a folder's racy window passing) and
        # found as it was when noted: not counted, nor noted as left out, a second time
        sel, noted = self.spoke_selection, self._noted
        same = {ref for ref, _, _, h in spoke_left
                if (n := noted.get(ref)) is not None and n[1] == sel and n[2] == h}
        # hub id (a UID) -> the spoke ref holding it, in this run (a migration: this chunk)
        claimed = self._claimed
        claimed.update({by_ref[it.ref].hub_id: it.ref for it, _ in mapped if it.ref in by_ref})
        for it, content in mapped:
            arch = by_ref.get(it.ref)
            if content is None:  # not synced over this link (value map / filter)
                if it.ref in same:
                    continue
                rec = recs.get(arch.hub_id) if arch is not None else None
                if arch is not None and rec is not None and not rec.deleted:
                    # a linked item edited out of the selection: not synced either way while
                    # it stays out (the hub's record is noted as left out, so it is not
                    # pending and not written to the spoke: see _hub_chunk)
                    left_out.append((arch.hub_id, rec.seq))  # counted by _apply
                else:
                    self.result.counts["not synced"] += 1
                continue
            if intents:
                arch = self._own_write(it, content, arch, intents, linked_elsewhere)
            if arch is not None:
                hub_id = arch.hub_id
                if hub_id in self.handled:
                    continue
                rec = recs.get(hub_id)
                hs, hub_c = self._hub_state(rec, arch)
                base = load_content(arch.base)
                content = (self.map.settle(content[0], base[0]), content[1])
                ss: State = "unchanged" if self._hash(content) == arch.hash else "changed"
                removed_at = None
                if hs == "removed":
                    d = decide_removed(ss, content, direction=self.cfg.direction)
                    removed_at = rec.seq if rec is not None else None
                elif hs == "unchanged" and ss == "unchanged":
                    if arch is by_ref.get(it.ref):  # touched, not changed
                        d = Decision("version only", base=base)
                    else:
                        d = Decision("own write found again: synced", base=base)
                else:
                    d = decide(hs, ss, hub=hub_c, spoke=content, base=base,
                               direction=self.cfg.direction, authority=self.cfg.authority,
                               hub_newer=_newer(rec, it))
                    d = self._carried(d, content)
                cases.append(Case(hub_id, arch, rec, it, it.version, d, removed_at=removed_at))
                continue
            ident = it.ident
            # the UID is linked to another ref already, or claimed by another new item of
            # this chunk (two files with one UID): the later one is quarantined
            other = (linked_elsewhere[ident].spoke_ref if ident in linked_elsewhere
                     else claimed.get(ident)) if ident else None
            if other is not None and other != it.ref:
                msg = (f"{it.ref}: UID {ident} is already used by {other} at this spoke "
                       "(fix: give one of them a new UID, or remove the duplicate)")
                bad.append(("spoke", it.ref, msg, None))
                self.result.errors.append(msg)
                continue
            rec = recs.get(ident) if ident else None
            if rec is not None and not rec.deleted and ident not in self.handled:
                _, hub_c = self._hub_state(rec, None)
                if hub_c is None:
                    hub_c = self.map.project(rec.fields, rec.refs)
                d = decide_new_both(hub_c, content, direction=self.cfg.direction,
                                    authority=self.cfg.authority, hub_newer=_newer(rec, it))
                d = self._carried(d, content)
                cases.append(Case(rec.id, None, rec, it, it.version, d))
            else:
                chosen = (ident if ident and usable_id(ident)
                          and ident not in self.handled else None)
                new = chosen is None
                d = decide("absent", "changed", hub=None, spoke=content, base=None,
                           direction=self.cfg.direction, authority=self.cfg.authority)
                cases.append(Case(chosen or new_id(), None, rec, it, it.version, d, new_hub_id=new))
            claimed[cases[-1].hub_id] = it.ref
        self.handled.update(c.hub_id for c in cases)
        self._apply(cases, bad, checkpoint, left_out=left_out, spoke_left=spoke_left)
        self._note_left(got, mapped, bad)

    def _carried(self, d: Decision, spoke: Content) -> Decision:
        """``d``, or where its spoke write falls outside the link's selection (a merge kept
        the hub's value of a filtered field), ``decide.out_of_selection`` of it."""
        if d.spoke_put is not None and not self.map.passes(d.spoke_put[0]):
            return out_of_selection(d, spoke)
        return d

    def _note_left(self, got: list[Item | ItemError], mapped: list[tuple[Item, Content | None]],
                   bad: list[Bad]) -> None:
        """Note a migration chunk's items that left no link state (``_left``), with the
        version read (None where the spoke gave none)."""
        left = self._left
        if left is None:
            return
        for it, content in mapped:
            if content is None:
                left[it.ref] = it.version
        refs = {ref for side, ref, *_ in bad if side == "spoke"}
        if refs:
            left.update((g.ref, g.version) for g in got if g.ref in refs)

    def _create_fresh(self, mapped: list[tuple[Item, Content | None]], bad: list[Bad],
                      checkpoint: Checkpoint | None) -> None:
        """A chunk of a first sync (a streamed migration, or the first listing of a spoke
        that cannot stream) into a hub that held nothing of this entity when the run began
        (and has no intents: no spoke write of ours can be pending): every item is a
        create in the hub, so the decision table's answer is known without planning a
        case per record. The result is the general path's
        (tests/integration/test_fresh_migration.py)."""
        rows, not_synced = self._fresh_rows(mapped, bad)
        self._commit_fresh(rows, not_synced, bad, checkpoint, _not_synced(mapped))

    def _fresh_rows(self, mapped: list[tuple[Item, Content | None]], bad: list[Bad]
                    ) -> tuple[list[FreshRow], int]:
        """The hub records of a fresh chunk, and how many items the link does not carry.
        Each record's canonical text and hash are taken once and serve as its hub content
        and its link-state base. An item whose UID names a hub id keeps it (checked at
        commit: a record someone else wrote under that id meanwhile is left for the next
        run); two new items with one UID quarantine the later (within a chunk of a
        migration, which forgets each chunk to keep its memory flat; within the run
        otherwise). Pure work on the chunk: a migration may run it in another process
        (engine/aside.py)."""
        claimed = self._claimed
        rows: list[FreshRow] = []
        not_synced = 0
        for it, content in mapped:
            if content is None:  # not synced over this link (value map / filter)
                not_synced += 1
                continue
            ident = it.ident
            by_uid = bool(ident) and usable_id(ident or "")
            if by_uid:
                assert ident is not None
                other = claimed.get(ident)
                if other is not None:
                    msg = (f"{it.ref}: UID {ident} is already used by {other} at this spoke "
                           "(fix: give one of them a new UID, or remove the duplicate)")
                    bad.append(("spoke", it.ref, msg, None))
                    self.result.errors.append(msg)
                    continue
                hub_id = ident
            else:
                hub_id = new_id()
            claimed[hub_id] = it.ref
            fields, refs = content
            text = canonical(fields, refs)
            rows.append((hub_id, it.ref, it.version, text, hash_text(text), by_uid))
        return rows, not_synced

    def _commit_fresh(self, rows: list[FreshRow], not_synced: int, bad: list[Bad],
                      checkpoint: Checkpoint | None, spoke_left: list[SpokeLeft]) -> None:
        """Commit a fresh chunk (``_fresh_rows``) with its quarantine and checkpoint, and
        the notes of the items the link leaves out (``spoke_left``)."""
        entity, label = self.entity, "create in hub"
        batch = Batch(self.link.name, entity, f"link:{self.link.name}", quarantine=bad,
                      selection=self.selection, has_exclusions=self.has_exclusions,
                      has_quarantine=(self.has_quarantine if self._release is None
                                      else self._release),
                      spoke_left=spoke_left, spoke_selection=self.spoke_selection,
                      has_left=self.has_left, checkpoint=checkpoint, versions=self._versions)
        batch.fresh = rows
        # a UID-named record must still not exist when the batch commits
        batch.expected.update((r[0], None) for r in rows if r[5])
        plan = self.result.plan
        room = self.PLAN_LINES_KEPT - len(plan)
        if room > 0:
            plan.extend(PlanLine(label, r[0], r[1]) for r in rows[:room])
        if not_synced:
            self.result.counts["not synced"] += not_synced
        if bad:
            self.has_quarantine = True  # the next chunk's commit releases what it links
        if spoke_left:
            self.has_left = True
        self.handled.update(r[0] for r in rows)
        self._count(self._commit(batch))
        self.done += len(rows) + len(bad)
        if self.progress is not None:
            self.progress(entity, self.done, max(self.total, self.done))

    def _commit(self, batch: Batch) -> BatchOutcome:
        """Commit a batch; a migration's position counts the hub writes committed so far
        (``progress['written']``), this batch's included."""
        cp = batch.checkpoint
        counted = cp is not None and cp.progress is not None and "written" in cp.progress
        if counted:
            assert cp is not None and cp.progress is not None
            cp.progress["written"] = self._mig_written
        outcome = self.hub.commit_batch(batch)
        if counted:
            assert cp is not None and cp.progress is not None
            self._mig_written = int(cp.progress["written"])
        return outcome

    def _count(self, outcome: BatchOutcome) -> None:
        """Count what a direct-path chunk's commit did."""
        res = self.result
        res.counts["create in hub"] += outcome.written
        if outcome.changed:
            res.counts["left for next run (changed in the hub meanwhile)"] += len(outcome.changed)
            self.unfinished_spoke = True
        self.hub_written += outcome.written
        if outcome.quarantined:
            res.counts["quarantined"] += outcome.quarantined
            self.has_quarantine = True

    def _own_write(self, it: Item, content: Content, arch: ArchiveRow | None,
                   intents: dict[str, ArchiveRow], linked: dict[str, ArchiveRow]) -> ArchiveRow | None:
        """A spoke item holding exactly what Concord meant to write (a run died between the
        spoke write and the hub commit) is Concord's own write: its intent becomes the base,
        so a newer hub edit is sent on instead of being taken for a conflict."""
        hub_id = arch.hub_id if arch is not None else it.ident
        if hub_id is None or (arch is None and hub_id in linked):
            return arch
        intent = intents.get(hub_id)
        if intent is None or (arch is not None and intent.hash == arch.hash):
            return arch
        ibase = load_content(intent.base)
        if self._hash((self.map.settle(content[0], ibase[0]), content[1])) != intent.hash:
            return arch
        ref = arch.spoke_ref if arch is not None else it.ref
        version = arch.spoke_version if arch is not None else None
        return ArchiveRow(hub_id, ref, version, intent.hash, intent.base)

    def _hub_chunk(self, ids: list[str], arch_by_id: dict[str, ArchiveRow], deleted_ids: set[str],
                   seqs: dict[str, int]) -> None:
        if not ids:
            return
        recs = self.hub.get_many(self.entity, ids)
        cases: list[Case] = []
        left_out: list[tuple[str, int]] = []  # (hub id, seq): the link's selection leaves it out
        seen_again: list[ArchiveRow] = []  # linked records whose change this link does not carry
        planned: list[str] = []
        # linked records whose spoke items the selection leaves out; and records the link
        # would create at the spoke, whose identity the spoke holds in such an item (made
        # there on its own, or edited out before it was ever linked): not synced either way
        # while that item stays out
        held = self._held("ref", [a.spoke_ref for i in ids if (a := arch_by_id.get(i))])
        held_ids = self._held("ident", [i for i in ids if i not in arch_by_id
                                        and i not in self.handled])
        for hub_id in ids:
            if hub_id in self.handled:
                continue
            planned.append(hub_id)
            arch = arch_by_id.get(hub_id)
            rec = recs.get(hub_id)
            if hub_id in held_ids and rec is not None and not rec.deleted:
                left_out.append((hub_id, rec.seq))
                continue
            if arch is not None and arch.spoke_ref in held:
                # its spoke copy holds a value the link does not carry: not synced while it
                # does. A hub edit waits (noted as left out, not pending); a hub delete
                # unlinks it, the spoke keeping its item
                if rec is not None and not rec.deleted:
                    left_out.append((hub_id, rec.seq))
                else:
                    cases.append(Case(hub_id, arch, rec, None, arch.spoke_version, Decision(
                        "unlinked (deleted in the hub, not synced at the spoke)", forget=True)))
                continue
            hs, hub_c = self._hub_state(rec, arch)
            ss: State = "deleted" if hub_id in deleted_ids else ("unchanged" if arch else "absent")
            if hs in ("unchanged", "absent") and ss in ("unchanged", "absent"):
                if hub_c is None and rec is not None and not rec.deleted:
                    left_out.append((hub_id, rec.seq))
                elif arch is not None and rec is not None and not rec.deleted:
                    # the hub changed a part this link does not carry: nothing to send, and
                    # no longer pending for this link
                    h = rec.hash
                    if arch.hub_hash != h:
                        arch.hub_hash = h
                        seen_again.append(arch)
                continue
            base = load_content(arch.base) if arch else None
            removed_at = None
            if hs == "removed":
                d = decide_removed(ss, None, direction=self.cfg.direction)
                removed_at = rec.seq if rec is not None else None
            else:
                d = decide(hs, ss, hub=hub_c, spoke=None, base=base,
                           direction=self.cfg.direction, authority=self.cfg.authority)
            cases.append(Case(hub_id, arch, rec, None, arch.spoke_version if arch else None, d,
                               removed_at=removed_at))
        self.handled.update(ids)
        self._seqs = seqs
        if seen_again and not self.dry_run:
            self.hub.refresh_archive(self.link.name, self.entity, seen_again)
        self._apply(cases, [], None, left_out=left_out,
                    replanned=planned if self.has_exclusions else [])

    def _held(self, key: str, keys: list[str]) -> set[str]:
        """Which of ``keys`` (spoke refs, or identities) name items the link's current
        selection left out (``spoke_left``)."""
        if not self.has_left or not keys:
            return set()
        return self.hub.spoke_left_among(self.link.name, self.entity, key, keys,
                                         self.spoke_selection)

    # ------------------------------------------------------------------ applying
    def _apply(self, cases: list[Case], bad: list[tuple[str, str, str, str | None]],
               checkpoint: Checkpoint | None, *, left_out: list[tuple[str, int]] | None = None,
               replanned: list[str] | None = None,
               spoke_left: list[SpokeLeft] | None = None) -> None:
        """``left_out``: (hub id, seq) of records the link's selection leaves out, noted so
        they are not pending; ``replanned``: ids whose older such notes are dropped first;
        ``spoke_left``: the spoke items it leaves out (``hub.batch.SpokeLeft``), noted so a
        listing does not read them again until they change."""
        res = self.result
        left_out = left_out or []
        if left_out:
            res.counts["not synced"] += len(left_out)
        for c in cases:
            if not c.decision.is_noop and len(res.plan) < self.PLAN_LINES_KEPT:
                res.plan.append(PlanLine(c.decision.label, c.hub_id, c.spoke_ref))
        if self.dry_run:
            planned = self.planned.setdefault(self.entity, {}) if self.planned is not None else {}
            for c in cases:
                if not c.decision.is_noop:
                    res.counts[c.decision.label] += 1
                if c.item is not None:  # linked after the real run: its children resolve
                    planned[c.item.ref] = c.hub_id
            res.counts["quarantined"] += len(bad)
            self.done += len(cases) + len(bad)
            if self.progress is not None:
                self.progress(self.entity, self.done, max(self.total, self.done))
            return
        # 1. spoke writes, each after its intent is committed
        writes = spoke_writes(cases, self.refs.to_spoke, self._canon)
        results: dict[int, WriteResult] = {}
        if writes.ops:
            if writes.intents:
                self.hub.save_intents(self.link.name, self.entity, writes.intents)
                self.has_intents = True
            try:
                out = self.conn.apply(self.entity, writes.ops)
            except TransientError:
                raise
            except ConcordError as exc:  # a connector that failed the whole batch
                out = [WriteResult(error=exc) for _ in writes.ops]
            for n, op, wr in zip(writes.op_case, writes.ops, out, strict=True):
                results[n] = wr
                ref = wr.ref or op.ref
                if wr.error is None and ref:
                    self.spoke_written[ref] = None if op.kind == "delete" else wr.version
        # 2. hub records, archive, conflicts, quarantine, notes and checkpoint: one batch
        batch = Batch(self.link.name, self.entity, f"link:{self.link.name}",
                      quarantine=list(bad), left_out=left_out, selection=self.selection,
                      drop_exclusions=list(replanned or ()),
                      drop_intents=[cases[n].hub_id for n in writes.op_case],
                      has_exclusions=self.has_exclusions, has_intents=self.has_intents,
                      has_quarantine=self.has_quarantine, checkpoint=checkpoint,
                      spoke_left=list(spoke_left or ()), spoke_selection=self.spoke_selection,
                      has_left=self.has_left,
                      versions=self._versions)
        tally = hub_batch(batch, cases, writes, results, self.map, self._canon, self.entity)
        outcome = self._commit(batch)
        res.errors.extend(tally.errors)
        for n in tally.spoke_changed:
            res.counts["left for next run (changed at the spoke meanwhile)"] += 1
            self._leave(cases[n])
        for n in tally.counted:
            c = cases[n]
            if c.hub_id in outcome.changed:
                res.counts["left for next run (changed in the hub meanwhile)"] += 1
                self._leave(c)
                continue
            d = c.decision
            if d.label != "version only" and not d.is_noop:
                res.counts[d.label] += 1
            if d.pending:
                res.counts["pending"] += 1
        self.hub_written += outcome.written
        if batch.left_out:
            self.has_exclusions = True
        if batch.quarantine:
            self.has_quarantine = True
        if batch.spoke_left:
            self.has_left = True
        res.counts["conflicts"] += outcome.conflicts
        if outcome.quarantined:  # a retry that failed alike again is not counted (nor logged)
            res.counts["quarantined"] += outcome.quarantined
        self._memo.clear()
        self.done += len(cases) + len(bad)
        for a in batch.archive:
            if a.hub_id not in outcome.changed:
                self.refs.remember(self.entity, a.spoke_ref, a.hub_id)
        if self.progress is not None:
            self.progress(self.entity, self.done, max(self.total, self.done))

    def _leave(self, c: Case) -> None:
        """A record not finished this run: keep the checkpoints from moving past it."""
        if c.item is not None:
            self.unfinished_spoke = True
        seq = self._seqs.get(c.hub_id)
        if seq is not None:
            self.unfinished_hub_seq = seq if self.unfinished_hub_seq is None else min(
                self.unfinished_hub_seq, seq)
        elif c.item is None:
            self.unfinished_spoke = True


def _not_synced(mapped: list[tuple[Item, Content | None]]) -> list[SpokeLeft]:
    """(ref, version, identity, content hash) of a chunk's items the link does not carry (the
    version "" where the spoke gives none: such an item cannot be known unchanged, and is
    read again). The hash is of the item as read, in spoke space."""
    return [(it.ref, it.version or "", it.ident, content_hash(it.fields, it.refs))
            for it, content in mapped if content is None]


def _newer(rec: Record | None, it: Item | None) -> bool:
    """Is the hub's version newer than the spoke's? (authority = newest)"""
    if rec is None:
        return False
    if it is None or it.modified is None:
        return True
    return rec.updated_at >= it.modified
