"""``remove_when`` (a cancelled event leaves the calendar, the hub keeps it) and ``settle``
(the value last synced survives a many-to-one value map)."""

from __future__ import annotations

from concord.config import EntityConfig
from concord.engine.decide import decide_removed
from concord.engine.mapping import Mapping

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
