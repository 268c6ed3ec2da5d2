"""Every cell of the three-way decision table, for each direction and authority.

States are relative to the archive (the content last synced): "changed" means the content
hash differs from it. Contents are (fields, refs) in hub space.
"""

from __future__ import annotations

import itertools

import pytest

from concord.engine.decide import Decision, decide, decide_new_both, merge, same

DIRECTIONS = ("two-way", "pull", "push")
AUTHORITIES = ("hub", "spoke", "newest")
STATES = ("unchanged", "changed", "deleted", "absent")

BASE = ({"name": "Ann Base", "phones": ["1"]}, {"client": "c-base"})
HUB = ({"name": "Ann Hub", "phones": ["1"]}, {"client": "c-base"})
SPOKE = ({"name": "Ann Spoke", "phones": ["1"]}, {"client": "c-base"})


def run(hs: str, ss: str, direction: str, authority: str = "hub", *, hub=HUB, spoke=SPOKE,
        base=BASE, hub_newer: bool = False) -> Decision:
    return decide(hs, ss,
                  hub=None if hs in ("deleted", "absent") else (BASE if hs == "unchanged" else hub),
                  spoke=None if ss in ("deleted", "absent") else (BASE if ss == "unchanged" else spoke),
                  base=None if "absent" in (hs, ss) else base,
                  direction=direction, authority=authority, hub_newer=hub_newer)


def writes(d: Decision) -> dict[str, object]:
    """The effect of a decision as comparable data."""
    return {"hub_put": d.hub_put, "hub_delete": d.hub_delete, "spoke_put": d.spoke_put,
            "spoke_delete": d.spoke_delete, "base": d.base, "forget": d.forget,
            "pending": d.pending}


NONE = {"hub_put": None, "hub_delete": False, "spoke_put": None, "spoke_delete": False,
        "base": None, "forget": False, "pending": False}


def eff(**kw: object) -> dict[str, object]:
    return {**NONE, **kw}


# -- the whole grid: invariants that hold in every cell ---------------------------------

@pytest.mark.parametrize(("hs", "ss", "direction", "authority"),
                         list(itertools.product(STATES, STATES, DIRECTIONS, AUTHORITIES)))
def test_every_cell_is_consistent(hs: str, ss: str, direction: str, authority: str) -> None:
    hubc = None if hs in ("deleted", "absent") else HUB
    spokec = None if ss in ("deleted", "absent") else SPOKE
    d = decide(hs, ss, hub=hubc, spoke=spokec, base=None if "absent" in (hs, ss) else BASE,
               direction=direction, authority=authority)
    assert not (d.hub_put is not None and d.hub_delete)
    assert not (d.spoke_put is not None and d.spoke_delete)
    if direction == "pull":  # a pull link never writes to the spoke
        assert d.spoke_put is None and not d.spoke_delete
    if direction == "push":  # a push link never writes to the hub
        assert d.hub_put is None and not d.hub_delete
    for note in d.conflicts:  # a conflict always says what lost
        assert note.kept and note.winner in ("hub", "spoke")
    # a side that holds an edit is never deleted
    if ss == "changed":
        assert not d.spoke_delete or direction == "push"
    if hs == "changed":
        assert not d.hub_delete


# -- row by row ----------------------------------------------------------------------

@pytest.mark.parametrize("direction", DIRECTIONS)
def test_unchanged_unchanged_is_nothing(direction: str) -> None:
    d = run("unchanged", "unchanged", direction)
    assert d.is_noop and d.label == "nothing"


@pytest.mark.parametrize("direction", ["two-way", "pull"])
def test_spoke_edit_goes_to_hub(direction: str) -> None:
    d = run("unchanged", "changed", direction)
    assert writes(d) == eff(hub_put=SPOKE, base=SPOKE)
    assert d.conflicts == []


def test_spoke_edit_on_push_link_is_overwritten_and_kept() -> None:
    d = run("unchanged", "changed", "push")
    assert writes(d) == eff(spoke_put=BASE, base=BASE)
    [note] = d.conflicts
    assert note.kind == "overwrite" and note.winner == "hub"
    assert note.fields == ["name"]
    assert note.kept["name"] == "Ann Spoke"


@pytest.mark.parametrize("direction", ["two-way", "pull"])
def test_spoke_delete_deletes_in_hub(direction: str) -> None:
    d = run("unchanged", "deleted", direction)
    assert writes(d) == eff(hub_delete=True, forget=True)
    assert d.conflicts == []


def test_spoke_delete_on_push_link_recreates_in_spoke() -> None:
    d = run("unchanged", "deleted", "push")
    assert writes(d) == eff(spoke_put=BASE, base=BASE)
    assert d.recreate  # a create, not an update of the vanished item


@pytest.mark.parametrize("direction", ["two-way", "push"])
def test_hub_edit_goes_to_spoke(direction: str) -> None:
    d = run("changed", "unchanged", direction)
    assert writes(d) == eff(spoke_put=HUB, base=HUB)
    assert d.conflicts == []


def test_hub_edit_on_pull_link_is_pending() -> None:
    d = run("changed", "unchanged", "pull")
    assert writes(d) == eff(pending=True)
    assert "pending" in d.label


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("authority", AUTHORITIES)
def test_equal_edits_on_both_sides_mark_synced(direction: str, authority: str) -> None:
    same_edit = ({"name": "Ann New", "phones": ["1"]}, {"client": "c-base"})
    d = run("changed", "changed", direction, authority, hub=same_edit, spoke=same_edit)
    assert writes(d) == eff(base=same_edit)
    assert d.conflicts == []


def _two_field_edit() -> tuple[tuple, tuple, tuple]:
    base = ({"name": "Ann", "phones": ["1"], "title": "Clerk"}, {})
    hub = ({"name": "Ann Smith", "phones": ["1"], "title": "Clerk"}, {})  # name changed
    spoke = ({"name": "Ann", "phones": ["2"], "title": "Clerk"}, {})  # phone changed
    return base, hub, spoke


@pytest.mark.parametrize("authority", AUTHORITIES)
def test_different_fields_changed_are_merged_without_conflict(authority: str) -> None:
    base, hub, spoke = _two_field_edit()
    merged = ({"name": "Ann Smith", "phones": ["2"], "title": "Clerk"}, {})
    d = run("changed", "changed", "two-way", authority, hub=hub, spoke=spoke, base=base)
    assert d.conflicts == []
    assert writes(d) == eff(hub_put=merged, spoke_put=merged, base=merged)
    assert d.label == "merge fields"


def test_merge_on_pull_link_takes_spoke_fields_and_leaves_hub_fields_pending() -> None:
    base, hub, spoke = _two_field_edit()
    merged = ({"name": "Ann Smith", "phones": ["2"], "title": "Clerk"}, {})
    d = run("changed", "changed", "pull", hub=hub, spoke=spoke, base=base)
    assert d.conflicts == []
    assert writes(d) == eff(hub_put=merged, base=spoke, pending=True)


def test_field_removed_on_one_side_is_merged_as_a_change() -> None:
    base = ({"name": "Ann", "title": "Clerk", "note": "x"}, {})
    hub = ({"name": "Ann", "note": "x"}, {})  # title cleared
    spoke = ({"name": "Ann", "title": "Clerk", "note": "y"}, {})  # note edited
    d = run("changed", "changed", "two-way", hub=hub, spoke=spoke, base=base)
    assert d.conflicts == []
    assert d.base == ({"name": "Ann", "note": "y"}, {})


@pytest.mark.parametrize(("authority", "hub_newer", "winner"), [
    ("hub", False, "hub"), ("hub", True, "hub"),
    ("spoke", False, "spoke"), ("spoke", True, "spoke"),
    ("newest", True, "hub"), ("newest", False, "spoke"),
])
def test_true_conflict_authority_decides_and_loser_is_kept(authority: str, hub_newer: bool,
                                                          winner: str) -> None:
    d = run("changed", "changed", "two-way", authority, hub_newer=hub_newer)
    [note] = d.conflicts
    assert note.kind == "field" and note.fields == ["name"] and note.winner == winner
    won, lost = (HUB, SPOKE) if winner == "hub" else (SPOKE, HUB)
    assert note.kept == {"name": lost[0]["name"]}
    assert d.base == won
    # the winner is written to whichever side does not already hold it
    assert (d.hub_put, d.spoke_put) == ((None, won) if winner == "hub" else (won, None))


def test_true_conflict_and_merge_in_one_record() -> None:
    base = ({"name": "Ann", "phones": ["1"], "title": "Clerk"}, {})
    hub = ({"name": "Ann H", "phones": ["1"], "title": "Partner"}, {})
    spoke = ({"name": "Ann S", "phones": ["2"], "title": "Clerk"}, {})
    d = run("changed", "changed", "two-way", "spoke", hub=hub, spoke=spoke, base=base)
    [note] = d.conflicts
    assert note.fields == ["name"] and note.kept == {"name": "Ann H"}
    assert d.base == ({"name": "Ann S", "phones": ["2"], "title": "Partner"}, {})


@pytest.mark.parametrize("authority", AUTHORITIES)
def test_both_changed_on_push_link_hub_overwrites_and_spoke_values_kept(authority: str) -> None:
    d = run("changed", "changed", "push", authority)
    assert writes(d) == eff(spoke_put=HUB, base=HUB)
    [note] = d.conflicts
    assert note.kind == "overwrite" and note.kept["name"] == "Ann Spoke"


def test_true_conflict_on_pull_link_hub_authority_keeps_spoke_value() -> None:
    d = run("changed", "changed", "pull", "hub")
    [note] = d.conflicts
    assert note.winner == "hub" and note.kept == {"name": "Ann Spoke"}
    # the hub keeps its value; the spoke is not written; the difference stays pending
    assert writes(d) == eff(base=SPOKE, pending=True)


def test_true_conflict_on_pull_link_spoke_authority_updates_hub() -> None:
    d = run("changed", "changed", "pull", "spoke")
    [note] = d.conflicts
    assert note.winner == "spoke" and note.kept == {"name": "Ann Hub"}
    assert writes(d) == eff(hub_put=SPOKE, base=SPOKE)


@pytest.mark.parametrize("direction", ["two-way", "push"])
def test_hub_edit_wins_over_spoke_delete_and_recreates(direction: str) -> None:
    d = run("changed", "deleted", direction)
    assert writes(d) == eff(spoke_put=HUB, base=HUB)
    assert d.recreate
    [note] = d.conflicts
    assert note.kind == "delete-vs-edit" and note.winner == "hub"


def test_hub_edit_vs_spoke_delete_on_pull_link_keeps_hub_record() -> None:
    d = run("changed", "deleted", "pull")
    assert writes(d) == eff(forget=True, pending=True)
    [note] = d.conflicts
    assert note.kind == "delete-vs-edit"


@pytest.mark.parametrize("direction", ["two-way", "push"])
def test_hub_delete_deletes_in_spoke(direction: str) -> None:
    d = run("deleted", "unchanged", direction)
    assert writes(d) == eff(spoke_delete=True, forget=True)


def test_hub_delete_on_pull_link_is_pending() -> None:
    d = run("deleted", "unchanged", "pull")
    assert writes(d) == eff(pending=True)


@pytest.mark.parametrize("direction", ["two-way", "pull"])
def test_spoke_edit_wins_over_hub_delete_and_restores(direction: str) -> None:
    d = run("deleted", "changed", direction)
    assert writes(d) == eff(hub_put=SPOKE, base=SPOKE)
    [note] = d.conflicts
    assert note.kind == "delete-vs-edit" and note.winner == "spoke"


def test_spoke_edit_vs_hub_delete_on_push_link_deletes_and_keeps_values() -> None:
    d = run("deleted", "changed", "push")
    assert writes(d) == eff(spoke_delete=True, forget=True)
    [note] = d.conflicts
    assert note.kept["name"] == "Ann Spoke"


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_deleted_on_both_sides_forgets(direction: str) -> None:
    assert writes(run("deleted", "deleted", direction)) == eff(forget=True)


@pytest.mark.parametrize("direction", ["two-way", "pull"])
@pytest.mark.parametrize("ss", ["changed", "unchanged"])
def test_new_at_spoke_is_created_in_hub(direction: str, ss: str) -> None:
    d = decide("absent", ss, hub=None, spoke=SPOKE, base=None, direction=direction, authority="hub")
    assert writes(d) == eff(hub_put=SPOKE, base=SPOKE)


def test_new_at_spoke_on_push_link_is_not_carried() -> None:
    d = decide("absent", "changed", hub=None, spoke=SPOKE, base=None, direction="push",
               authority="hub")
    assert writes(d) == NONE


@pytest.mark.parametrize("direction", ["two-way", "push"])
def test_new_in_hub_is_created_at_spoke(direction: str) -> None:
    d = decide("changed", "absent", hub=HUB, spoke=None, base=None, direction=direction,
               authority="hub")
    assert writes(d) == eff(spoke_put=HUB, base=HUB)


def test_new_in_hub_on_pull_link_is_pending() -> None:
    d = decide("changed", "absent", hub=HUB, spoke=None, base=None, direction="pull",
               authority="hub")
    assert writes(d) == eff(pending=True)


@pytest.mark.parametrize(("hs", "ss"), [("absent", "absent"), ("deleted", "absent"),
                                        ("absent", "deleted")])
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_nothing_on_either_side_does_nothing(hs: str, ss: str, direction: str) -> None:
    d = decide(hs, ss, hub=None, spoke=None, base=None, direction=direction, authority="hub")
    assert d.is_noop


# -- new on both sides with the same identity --------------------------------------------

@pytest.mark.parametrize("direction", DIRECTIONS)
def test_new_on_both_equal_links_them(direction: str) -> None:
    c = ({"name": "Ann", "emails": ["a@x.com"]}, {})
    d = decide_new_both(c, ({"name": "Ann", "emails": ["a@x.com"], "note": None}, {}),
                        direction=direction, authority="hub")
    assert writes(d) == eff(base=c)
    assert d.conflicts == []


@pytest.mark.parametrize(("authority", "hub_newer", "winner"), [
    ("hub", False, "hub"), ("spoke", True, "spoke"), ("newest", True, "hub"),
    ("newest", False, "spoke"),
])
def test_new_on_both_different_authority_decides_loser_kept(authority: str, hub_newer: bool,
                                                           winner: str) -> None:
    hub = ({"name": "Ann H", "emails": ["a@x.com"]}, {})
    spoke = ({"name": "Ann S", "emails": ["a@x.com"]}, {})
    d = decide_new_both(hub, spoke, direction="two-way", authority=authority, hub_newer=hub_newer)
    [note] = d.conflicts
    assert note.kind == "create" and note.fields == ["name"] and note.winner == winner
    won, lost = (hub, spoke) if winner == "hub" else (spoke, hub)
    assert note.kept == {"name": lost[0]["name"]}
    assert d.base == won
    assert d.label.startswith("same identity, different")


def test_new_on_both_field_missing_on_one_side_is_kept_when_it_loses() -> None:
    hub = ({"name": "Ann", "phones": ["1"]}, {})
    spoke = ({"name": "Ann", "emails": ["a@x.com"]}, {})
    d = decide_new_both(hub, spoke, direction="two-way", authority="hub")
    [note] = d.conflicts
    # with no base, each differing field is decided by authority; what lost is kept
    assert sorted(note.fields) == ["emails", "phones"]
    assert note.kept == {"emails": ["a@x.com"], "phones": None}
    assert d.base == hub


# -- references merge like fields --------------------------------------------------------

def test_refs_changed_on_one_side_merge_with_fields_from_the_other() -> None:
    base = ({"name": "Job 1"}, {"client": "c1", "manager": "s1"})
    hub = ({"name": "Job 1 (renamed)"}, {"client": "c1", "manager": "s1"})
    spoke = ({"name": "Job 1"}, {"client": "c2", "manager": "s1"})
    d = run("changed", "changed", "two-way", hub=hub, spoke=spoke, base=base)
    assert d.conflicts == []
    assert d.base == ({"name": "Job 1 (renamed)"}, {"client": "c2", "manager": "s1"})


def test_refs_changed_differently_are_a_conflict_with_the_loser_kept() -> None:
    base = ({"name": "Job"}, {"client": "c1"})
    hub = ({"name": "Job"}, {"client": "c2"})
    spoke = ({"name": "Job"}, {"client": "c3"})
    d = run("changed", "changed", "two-way", "spoke", hub=hub, spoke=spoke, base=base)
    [note] = d.conflicts
    assert note.fields == ["@client"] and note.kept == {"@client": "c2"}
    assert d.base == ({"name": "Job"}, {"client": "c3"})


def test_merge_function_reports_conflicts_and_losing_values() -> None:
    merged, conflicts, lost = merge(
        ({"a": 1, "b": 2}, {"r": "x"}), ({"a": 1, "b": 3}, {"r": "y"}), ({"a": 0, "b": 2}, {"r": "z"}),
        "hub")
    assert merged == ({"a": 1, "b": 3}, {"r": "x"})
    assert conflicts == ["@r"] and lost == {"@r": "y"}


def test_same_ignores_empty_values() -> None:
    assert same(({"a": 1, "b": None}, {"r": None}), ({"a": 1}, {}))
    assert not same(({"a": 1}, {}), ({"a": 2}, {}))
    assert not same(({"a": 1}, {}), None)


def test_a_merge_outside_the_selection_writes_the_hub_and_takes_the_item_off_the_spoke() -> None:
    """New on both sides with one identity, the hub's copy of an organisation a link does not
    carry: the merge keeps the hub's kind, so its spoke write would fall outside the link's
    selection. ``out_of_selection`` keeps the hub's write, removes the spoke's item and keeps
    all of that item's content in the conflicts log."""
    from concord.engine.decide import out_of_selection

    hub = ({"name": "Acme", "kind": "org"}, {})
    spoke = ({"name": "Acme Pty", "title": "Office"}, {})
    d = decide_new_both(hub, spoke, direction="two-way", authority="hub")
    assert d.spoke_put is not None and d.spoke_put[0]["kind"] == "org"
    out = out_of_selection(d, spoke)
    assert out.hub_put == d.hub_put and out.spoke_put is None
    assert out.spoke_delete and out.forget and out.base is None
    assert out.label.endswith("out of the link's selection: remove from spoke")
    kept = [n.kept for n in out.conflicts]
    assert {"name": "Acme Pty", "title": "Office"} in kept  # the item's whole content
    assert d.conflicts and all(n in out.conflicts for n in d.conflicts)  # and the merge's
