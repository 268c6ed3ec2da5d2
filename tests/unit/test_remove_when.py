"""``remove_when`` (a cancelled event leaves the calendar, the hub keeps it) and ``settle``
(the value last synced survives a many-to-one value map)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from concord.config import EntityConfig, LinkConfig
from concord.connectors.base import Capabilities, Connector, ConnectorOptions, Item, ItemError
from concord.engine import sync_link
from concord.engine.decide import decide_removed
from concord.engine.mapping import Mapping
from concord.errors import PreconditionFailed, TerminalError
from concord.hub.store import Hub
from concord.link.status import link_status, pending_ids

STATUS = {"Confirmed": "CONFIRMED", "Completed": "CONFIRMED"}


def mapping(**cfg: object) -> Mapping:
    return Mapping(EntityConfig.model_validate(cfg), ("summary", "status"), {})


def test_removed_records_do_not_pass_and_are_named_removed() -> None:
    m = mapping(values={"status": {**STATUS, "Cancelled": "CANCELLED"}},
                remove_when={"status": ["Cancelled"]})
    assert m.removed({"status": "Cancelled"}) and not m.passes({"status": "Cancelled"})
    assert not m.removed({"status": "Confirmed"}) and m.passes({"status": "Confirmed"})
    assert not m.removed({})


def test_removal_deletes_at_the_spoke_and_forgets_the_link() -> None:
    d = decide_removed("unchanged", None, direction="two-way")
    assert d.spoke_delete and d.forget and d.hub_put is None and not d.hub_delete
    assert not d.conflicts


def test_a_spoke_edit_lost_to_a_removal_is_kept_in_the_conflicts_log() -> None:
    d = decide_removed("changed", ({"summary": "moved to 3pm"}, {}), direction="two-way")
    assert d.spoke_delete and d.forget
    assert d.conflicts and d.conflicts[0].kept == {"summary": "moved to 3pm"}


def test_removal_is_not_carried_by_a_pull_link_and_a_spoke_delete_is_forgotten() -> None:
    assert decide_removed("unchanged", None, direction="pull").pending
    d = decide_removed("deleted", None, direction="two-way")
    assert d.forget and not d.spoke_delete


def test_settle_keeps_the_synced_value_when_the_spoke_shows_the_same() -> None:
    m = mapping(values={"status": STATUS})
    back = m.to_hub({"status": "CONFIRMED", "summary": "Review"})
    assert back == {"status": "Confirmed", "summary": "Review"}
    assert m.settle(back, {"status": "Completed"})["status"] == "Completed"
    # a real change at the spoke is not undone
    m2 = mapping(values={"status": {**STATUS, "Tentative": "TENTATIVE"}})
    tentative = m2.to_hub({"status": "TENTATIVE"})
    assert tentative is not None and m2.settle(tentative, {"status": "Completed"}) == tentative


# -- through the engine: the spoke copy goes, the hub keeps the event, the light turns green --

class Calendar(Connector):
    """An in-memory calendar spoke: href -> (etag, fields)."""

    name = "calendar"
    capabilities = Capabilities(entities=("event",))

    def __init__(self) -> None:
        super().__init__(ConnectorOptions())
        self.items: dict[str, tuple[str, dict[str, Any]]] = {}
        self.n = 0
        self.refuse_deletes = False

    def _tag(self) -> str:
        self.n += 1
        return f"e{self.n}"

    def fields(self, entity: str) -> tuple[str, ...]:
        return ("summary", "status")

    def list(self, entity: str) -> list[tuple[str, str]]:
        return [(ref, v) for ref, (v, _) in self.items.items()]

    def get(self, entity: str, refs: Sequence[str]) -> list[Item | ItemError]:
        return [Item(r, self.items[r][0], dict(self.items[r][1]), {}, r.removesuffix(".ics"))
                for r in refs if r in self.items]

    def create(self, entity: str, item: Item, ident: str) -> tuple[str, str]:
        ref = f"{ident}.ics"
        self.items[ref] = (tag := self._tag(), dict(item.fields))
        return ref, tag

    def update(self, entity: str, ref: str, item: Item, expected_version: str | None) -> str:
        if ref not in self.items or self.items[ref][0] != expected_version:
            raise PreconditionFailed(ref, expected_version, None)
        self.items[ref] = (tag := self._tag(), dict(item.fields))
        return tag

    def delete(self, entity: str, ref: str, expected_version: str | None) -> None:
        if self.refuse_deletes:
            raise TerminalError(f"{ref}: the server refused the delete")
        if ref not in self.items or self.items[ref][0] != expected_version:
            raise PreconditionFailed(ref, expected_version, None)
        del self.items[ref]


def test_a_cancelled_event_leaves_the_calendar_and_the_light_turns_green(tmp_path: Path) -> None:
    hub = Hub(f"sqlite:///{tmp_path / 'hub.db'}")
    link = LinkConfig.model_validate({
        "name": "cal", "connector": "calendar", "entities": {"event": {
            "values": {"status": {**STATUS, "Cancelled": "CANCELLED"}},
            "remove_when": {"status": ["Cancelled"]}}}})
    cal = Calendar()
    for eid in ("e1", "e2"):
        hub.put("event", eid, {"summary": f"Meeting {eid}", "status": "Confirmed"})
    hub.put("event", "e3", {"summary": "Called off before it was synced", "status": "Cancelled"})
    assert sync_link(hub, link, cal).ok
    assert set(cal.items) == {"e1.ics", "e2.ics"}
    assert link_status(hub, "cal", link).color == "green"

    for eid in ("e1", "e2"):
        rec = hub.get("event", eid)
        assert rec is not None
        hub.put("event", eid, {**rec.fields, "status": "Cancelled"})
    assert link_status(hub, "cal", link).pending == 2  # the deletes have not reached the spoke
    cal.refuse_deletes = True
    sync_link(hub, link, cal)
    st = link_status(hub, "cal", link)
    assert set(cal.items) == {"e1.ics", "e2.ics"}
    assert st.color == "blue" and st.pending == 2, st.reason  # still on the calendar: pending

    cal.refuse_deletes = False
    # refused writes are retried when their backoff ends (here: ended at once)
    assert sync_link(hub, link, cal).counts == {} and len(cal.items) == 2
    assert hub.retry_quarantined_now("cal") == 2
    r = sync_link(hub, link, cal)
    assert r.ok and r.counts["remove from spoke"] == 2, r.counts
    assert cal.items == {}
    for eid in ("e1", "e2", "e3"):
        rec = hub.get("event", eid)
        assert rec is not None and not rec.deleted and rec.fields["status"] == "Cancelled"
    st = link_status(hub, "cal", link)
    assert (st.color, st.pending, st.excluded) == ("green", 0, 3), st.reason
    assert hub.quarantined("cal") == []  # the refused deletes went through: released
    assert pending_ids(hub, {"cal": link}, "event", ["e1", "e2", "e3"]) == {}
    # the next runs neither re-create the events nor count them again
    assert sync_link(hub, link, cal).counts == {} and cal.items == {}
    # re-confirmed: back on the calendar
    rec = hub.get("event", "e1")
    assert rec is not None
    hub.put("event", "e1", {**rec.fields, "status": "Confirmed"})
    assert link_status(hub, "cal", link).pending == 1
    assert sync_link(hub, link, cal).counts["create in spoke"] == 1 and set(cal.items) == {"e1.ics"}
    assert link_status(hub, "cal", link).color == "green"
    hub.close()
