"""The contract every connector keeps. Each connector's test module subclasses
``ConnectorContract`` and provides three fixtures:

- ``connector``: a fresh, empty connector on a real backend (writable as far as its
  capabilities say);
- ``entity``: the entity type to exercise;
- ``make_item``: a function ``(n: int) -> Item`` giving distinct valid content
  (spoke-native fields) for the n-th record.

A test that needs a capability the connector does not declare is skipped, saying which
(a read-only spoke skips every write test, a spoke without deletes the delete tests); the
writes a connector does not declare are checked to be refused instead. A read-only
connector starts empty, so its module provides ``seed``: ``(connector, items) -> refs``,
putting items into the backend behind the connector's back.

``spoke_assigned`` names fields the spoke fills in itself (XPM's job number): they are left
out when what was written is compared with what is read back.
"""

from __future__ import annotations

import pytest

from concord import model
from concord.connectors.base import Connector, Item, ItemError, WriteKind, WriteOp
from concord.errors import PreconditionFailed, TerminalError
from concord.records import content_hash, new_id


def _content(item: Item, names: tuple[str, ...] | None, skip: tuple[str, ...] = ()) -> str:
    fields = item.fields if names is None else {k: item.fields.get(k) for k in names}
    return content_hash({k: v for k, v in fields.items() if k not in skip}, item.refs)


def needs(connector: Connector, *kinds: WriteKind) -> None:
    """Skip the test unless ``connector`` accepts every write in ``kinds``."""
    if connector.read_only:
        pytest.skip(f"{connector.name} is read-only")
    missing = [k for k in kinds if k not in connector.capabilities.writes]
    if missing:
        pytest.skip(f"{connector.name} does not accept {', '.join(missing)}")


class ConnectorContract:
    spoke_assigned: tuple[str, ...] = ()

    def _get_one(self, connector: Connector, entity: str, ref: str) -> Item:
        got = [i for i in connector.get(entity, [ref]) if isinstance(i, Item)]
        assert len(got) == 1, f"get({ref!r}) returned {got!r}"
        return got[0]

    def test_empty_lists_nothing(self, connector: Connector, entity: str) -> None:
        assert list(connector.list(entity)) == []

    def test_create_then_list_and_get(self, connector, entity, make_item) -> None:
        needs(connector, "create")
        item = make_item(1)
        if connector.field_shapes(entity) is None:  # the connector speaks the model itself
            assert model.normalize(entity, item.fields) == item.fields
        ident = new_id()
        ref, version = connector.create(entity, item, ident)
        listed = dict(connector.list(entity))
        assert listed == {ref: version}
        got = self._get_one(connector, entity, ref)
        assert got.version == version
        names = connector.fields(entity)
        assert _content(got, names, self.spoke_assigned) == _content(item, names, self.spoke_assigned)

    def test_get_missing_yields_nothing(self, connector, entity) -> None:
        assert [i for i in connector.get(entity, ["does-not-exist"]) if isinstance(i, Item)] == []

    def test_update_with_current_version(self, connector, entity, make_item) -> None:
        needs(connector, "create", "update")
        ref, v1 = connector.create(entity, make_item(1), new_id())
        v2 = connector.update(entity, ref, make_item(2), v1)
        assert v2 != v1
        assert dict(connector.list(entity))[ref] == v2
        names = connector.fields(entity)
        assert _content(self._get_one(connector, entity, ref), names, self.spoke_assigned) == _content(make_item(2), names, self.spoke_assigned)

    def test_update_with_stale_version_is_a_conflict(self, connector, entity, make_item) -> None:
        needs(connector, "create", "update")
        ref, v1 = connector.create(entity, make_item(1), new_id())
        connector.update(entity, ref, make_item(2), v1)
        with pytest.raises(PreconditionFailed):
            connector.update(entity, ref, make_item(3), v1)
        names = connector.fields(entity)
        # the newer content survived
        assert _content(self._get_one(connector, entity, ref), names, self.spoke_assigned) == _content(make_item(2), names, self.spoke_assigned)

    def test_delete_with_stale_version_is_a_conflict(self, connector, entity, make_item) -> None:
        needs(connector, "create", "update", "delete")
        ref, v1 = connector.create(entity, make_item(1), new_id())
        connector.update(entity, ref, make_item(2), v1)
        with pytest.raises(PreconditionFailed):
            connector.delete(entity, ref, v1)
        assert ref in dict(connector.list(entity))

    def test_delete(self, connector, entity, make_item) -> None:
        needs(connector, "create", "delete")
        ref, v1 = connector.create(entity, make_item(1), new_id())
        connector.delete(entity, ref, v1)
        assert ref not in dict(connector.list(entity))

    def test_create_with_taken_ident_does_not_duplicate(self, connector, entity, make_item) -> None:
        """A create whose answer was lost is retried with the same ident: there must
        still be one record, found again rather than duplicated."""
        needs(connector, "create")
        ident = new_id()
        ref1, _ = connector.create(entity, make_item(1), ident)
        try:
            ref2, _ = connector.create(entity, make_item(1), ident)
        except PreconditionFailed:
            ref2 = ref1
        assert ref2 == ref1
        assert len(list(connector.list(entity))) == 1

    def test_ident_is_reported(self, connector, entity, make_item) -> None:
        needs(connector, "create")
        ident = new_id()
        ref, _ = connector.create(entity, make_item(1), ident)
        assert self._get_one(connector, entity, ref).ident == ident

    def test_changes_report_new_changed_and_deleted(self, connector, entity, make_item) -> None:
        needs(connector, "create", "update", "delete")
        first = connector.changes(entity, None)
        token = first.token
        ref_a, va = connector.create(entity, make_item(1), new_id())
        ref_b, vb = connector.create(entity, make_item(2), new_id())
        ch = connector.changes(entity, token)
        assert {ref_a, ref_b} <= set(ch.changed)
        token = ch.token
        connector.update(entity, ref_a, make_item(3), va)
        connector.delete(entity, ref_b, vb)
        ch = connector.changes(entity, token)
        assert ref_a in ch.changed
        if ch.complete:
            assert ref_b not in ch.changed
        else:
            assert ref_b in ch.deleted

    def test_batch_apply_reports_each_result(self, connector, entity, make_item) -> None:
        needs(connector, "create", "update")
        ops = [WriteOp("create", None, make_item(i), ident=new_id()) for i in range(5)]
        results = connector.apply(entity, ops)
        assert len(results) == 5 and all(r.error is None and r.ref for r in results)
        assert len(set(dict(connector.list(entity)))) == 5
        # a stale update in a batch fails alone
        good = results[0]
        ops2 = [
            WriteOp("update", good.ref, make_item(10), expected_version="stale-version"),
            WriteOp("update", results[1].ref, make_item(11), expected_version=results[1].version),
        ]
        r2 = connector.apply(entity, ops2)
        assert isinstance(r2[0].error, PreconditionFailed)
        assert r2[1].error is None

    def test_items_are_items_or_errors(self, connector, entity, make_item) -> None:
        needs(connector, "create")
        ref, _ = connector.create(entity, make_item(1), new_id())
        for got in connector.get(entity, [ref]):
            assert isinstance(got, Item | ItemError)

    # -- what the capabilities declare ------------------------------------------------
    def test_undeclared_writes_are_refused_on_every_path(self, connector, entity,
                                                         make_item) -> None:
        """A write the capabilities do not allow is refused, directly and in a batch,
        and nothing reaches the spoke."""
        refused = [k for k in ("create", "update", "delete")
                   if connector.refusal(k, entity) is not None]
        if not refused:
            pytest.skip(f"{connector.name} accepts every write")
        before = dict(connector.list(entity))
        ref = next(iter(before), "no-such-ref")
        direct = {
            "create": lambda: connector.create(entity, make_item(1), new_id()),
            "update": lambda: connector.update(entity, ref, make_item(2), before.get(ref)),
            "delete": lambda: connector.delete(entity, ref, before.get(ref)),
        }
        ops = {
            "create": WriteOp("create", None, make_item(3), ident=new_id()),
            "update": WriteOp("update", ref, make_item(4), expected_version=before.get(ref)),
            "delete": WriteOp("delete", ref, None, expected_version=before.get(ref)),
        }
        for kind in refused:
            with pytest.raises(TerminalError, match=kind):
                direct[kind]()
        results = connector.apply(entity, [ops[k] for k in refused])
        assert len(results) == len(refused)
        assert all(isinstance(r.error, TerminalError) for r in results)
        assert dict(connector.list(entity)) == before

    def test_streamed_migration_yields_each_item_once_and_resumes(self, connector, entity,
                                                                   make_item) -> None:
        streamed = connector.streamed_migration()
        if streamed is None:
            pytest.skip(f"{connector.name} does not declare StreamedMigration")
        refs = self._fill(connector, entity, make_item, 5)
        batches = list(streamed.scan(entity, None, 2))
        assert all(0 < len(b) <= 2 for b in batches)
        seen = [i.ref for b in batches for i in b]
        assert sorted(seen) == sorted(refs)
        assert streamed.count(entity) in (None, 5)
        # resuming after the second ref yields exactly the rest, in the same order
        rest = [i.ref for b in streamed.scan(entity, seen[1], 2) for i in b]
        assert rest == seen[2:]
        # where the spoke cuts its items into ranges (for several processes to prepare a
        # migration side by side), the ranges hold the scan's items, each once, in order
        cuts = streamed.bounds(entity, None, 2)
        if cuts is not None:
            ends = list(cuts)
            assert len(ends) == 2  # every second ref of five
            spans = list(zip([None, *ends], [*ends, None], strict=True))
            assert [i.ref for lo, hi in spans for i in streamed.scan_range(entity, lo, hi)] == seen
            after = list(streamed.bounds(entity, seen[1], 2) or [])
            assert after == [seen[3]]

    def test_change_capture_token_catches_later_edits(self, connector, entity,
                                                      make_item) -> None:
        capture = connector.change_capture()
        if capture is None:
            pytest.skip(f"{connector.name} does not declare ChangeCapture")
        needs(connector, "create", "update")
        ref, v1 = connector.create(entity, make_item(1), new_id())
        token = capture.current_token(entity)
        connector.update(entity, ref, make_item(2), v1)
        ch = connector.changes(entity, token)
        assert ref in ch.changed
        # a token moved past only our own writes still catches the next edit
        new = ch.token
        if new is not None:
            v3 = connector.update(entity, ref, make_item(3), ch.changed[ref])
            settled = capture.token_after_writes(entity, new, {ref: v3})
            v4 = connector.update(entity, ref, make_item(4), v3)
            assert connector.changes(entity, settled).changed.get(ref) == v4

    def _fill(self, connector: Connector, entity: str, make_item, n: int) -> list[str]:
        """``n`` items in the spoke: written through the connector, or seeded behind its
        back when it is read-only."""
        if connector.refusal("create", entity) is None:
            return [connector.create(entity, make_item(i), new_id())[0] for i in range(n)]
        seed = getattr(self, "seed", None)
        if seed is None:
            pytest.skip(f"{connector.name} is read-only and its module gives no seed")
        return list(seed(connector, [make_item(i) for i in range(n)]))
