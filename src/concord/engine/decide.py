"""The three-way decision table, per record, as a pure function.

Inputs are the hub's and the spoke's state relative to the archive (the content last synced),
their contents in hub space, and the link's direction and authority. The output says what to
write where, what the archive becomes, and which losing values go to the conflicts table.
Nothing here touches a database, so every cell is tested directly
(tests/unit/test_decide.py).

    hub \\ spoke     unchanged        changed                   deleted             absent
    unchanged        nothing          spoke -> hub              delete in hub       -
    changed          hub -> spoke     equal: synced; merge      edit wins:          -
                                      fields; else authority    re-create in spoke
    deleted          delete in spoke  edit wins: restore hub    forget both         -
    absent           -                -                         -                   new on one side:
                                                                                    create on the other

Direction narrows the table: on a pull link hub edits never reach the spoke (they stay
*pending*); on a push link spoke edits are overwritten by the hub, their values kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

State = Literal["unchanged", "changed", "deleted", "absent"]
Content = tuple[dict[str, Any], dict[str, Any]]  # (fields, refs) in hub space


@dataclass(slots=True)
class ConflictNote:
    kind: str  # field | delete-vs-edit | create | overwrite
    fields: list[str]
    winner: str  # hub | spoke
    kept: dict[str, Any]  # the losing values, so nothing is lost


@dataclass(slots=True)
class Decision:
    label: str
    hub_put: Content | None = None  # new mapped content for the hub record
    hub_delete: bool = False
    spoke_put: Content | None = None  # content to write to the spoke (create if not linked)
    recreate: bool = False  # the spoke deleted the item: ``spoke_put`` creates it anew
    spoke_delete: bool = False
    base: Content | None = None  # archive content after success (None: unchanged)
    forget: bool = False  # drop the archive row
    pending: bool = False  # a hub edit that this link does not carry (pull link)
    conflicts: list[ConflictNote] = field(default_factory=list)

    @property
    def is_noop(self) -> bool:
        return (self.hub_put is None and not self.hub_delete and self.spoke_put is None
                and not self.spoke_delete and self.base is None and not self.forget
                and not self.conflicts)


_MISSING = object()


def _flat(c: Content) -> dict[str, Any]:
    """Fields and refs as one namespace (refs prefixed) for a field-level merge."""
    out = {k: v for k, v in c[0].items() if v is not None}
    out.update({"@" + k: v for k, v in c[1].items() if v is not None})
    return out


def _unflat(d: dict[str, Any]) -> Content:
    fields = {k: v for k, v in d.items() if not k.startswith("@")}
    refs = {k[1:]: v for k, v in d.items() if k.startswith("@")}
    return fields, refs


def same(a: Content | None, b: Content | None) -> bool:
    if a is None or b is None:
        return a is b
    return _flat(a) == _flat(b)


def merge(hub: Content, spoke: Content, base: Content | None, winner: str
          ) -> tuple[Content, list[str], dict[str, Any]]:
    """Three-way merge per field. A field changed on one side only takes that side's value;
    a field changed on both sides differently is a true conflict, decided by ``winner``.
    Returns (merged, conflicting field names, the losing values)."""
    h, s = _flat(hub), _flat(spoke)
    b = _flat(base) if base is not None else None
    merged: dict[str, Any] = {}
    conflicts: list[str] = []
    lost: dict[str, Any] = {}
    for k in sorted(set(h) | set(s) | (set(b) if b else set())):
        hv, sv = h.get(k, _MISSING), s.get(k, _MISSING)
        bv = b.get(k, _MISSING) if b is not None else _MISSING
        if hv == sv:
            out = hv
        elif b is not None and hv == bv:
            out = sv
        elif b is not None and sv == bv:
            out = hv
        else:
            conflicts.append(k)
            out, lose = (hv, sv) if winner == "hub" else (sv, hv)
            lost[k] = None if lose is _MISSING else lose
        if out is not _MISSING:
            merged[k] = out
    return _unflat(merged), conflicts, lost


def decide(hub_state: State, spoke_state: State, *, hub: Content | None, spoke: Content | None,
           base: Content | None, direction: str, authority: str, hub_newer: bool = False
           ) -> Decision:
    pull_ok = direction in ("pull", "two-way")  # spoke -> hub allowed
    push_ok = direction in ("push", "two-way")  # hub -> spoke allowed
    winner = authority if authority in ("hub", "spoke") else ("hub" if hub_newer else "spoke")

    hs, ss = hub_state, spoke_state
    if hs == "unchanged" and ss == "unchanged":
        return Decision("nothing")

    if hs == "unchanged" and ss == "changed":
        assert spoke is not None
        if pull_ok:
            return Decision("spoke -> hub", hub_put=spoke, base=spoke)
        assert hub is not None
        return Decision("hub overwrites spoke (push link)", spoke_put=hub, base=hub,
                        conflicts=[ConflictNote("overwrite", sorted(_diff(hub, spoke)), "hub",
                                                _flat(spoke))])

    if hs == "unchanged" and ss == "deleted":
        if pull_ok:
            return Decision("delete in hub", hub_delete=True, forget=True)
        assert hub is not None
        return Decision("re-create in spoke (push link)", spoke_put=hub, base=hub, recreate=True)

    if hs == "changed" and ss == "unchanged":
        assert hub is not None
        if push_ok:
            return Decision("hub -> spoke", spoke_put=hub, base=hub)
        return Decision("pending: hub edit not carried by a pull link", pending=True)

    if hs == "changed" and ss == "changed":
        assert hub is not None and spoke is not None
        if same(hub, spoke):
            return Decision("equal: mark synced", base=hub)
        if direction == "push":
            return Decision("hub overwrites spoke (push link)", spoke_put=hub, base=hub,
                            conflicts=[ConflictNote("overwrite", sorted(_diff(hub, spoke)), "hub",
                                                    _flat(spoke))])
        merged, fields, lost = merge(hub, spoke, base, winner)
        notes = [ConflictNote("field", fields, winner, lost)] if fields else []
        label = "merge fields" if not fields else f"conflict on {', '.join(fields)}: {winner} wins"
        d = Decision(label, conflicts=notes)
        d.hub_put = None if same(merged, hub) else merged
        if direction == "two-way":
            d.spoke_put = None if same(merged, spoke) else merged
            d.base = merged
        else:  # pull: the spoke keeps its content; hub-only values stay pending
            d.base = spoke
            d.pending = not same(merged, spoke)
        return d

    if hs == "changed" and ss == "deleted":
        assert hub is not None
        note = ConflictNote("delete-vs-edit", [], "hub", {"deleted_at": "spoke"})
        if push_ok:
            return Decision("edit wins: re-create in spoke", spoke_put=hub, base=hub,
                            recreate=True, conflicts=[note])
        return Decision("edit wins: hub keeps the record (pull link cannot re-create)",
                        forget=True, pending=True, conflicts=[note])

    if hs == "deleted" and ss == "unchanged":
        if push_ok:
            return Decision("delete in spoke", spoke_delete=True, forget=True)
        return Decision("pending: hub delete not carried by a pull link", pending=True)

    if hs == "deleted" and ss == "changed":
        assert spoke is not None
        note = ConflictNote("delete-vs-edit", [], "spoke", {"deleted_at": "hub"})
        if pull_ok:
            return Decision("edit wins: restore hub", hub_put=spoke, base=spoke, conflicts=[note])
        return Decision("delete in spoke (push link); its edit kept", spoke_delete=True, forget=True,
                        conflicts=[ConflictNote("overwrite", sorted(_flat(spoke)), "hub", _flat(spoke))])

    if hs == "deleted" and ss == "deleted":
        return Decision("forget both", forget=True)

    if hs == "absent" and ss in ("changed", "unchanged"):
        assert spoke is not None
        if pull_ok:
            return Decision("create in hub", hub_put=spoke, base=spoke)
        return Decision("not carried: spoke-only record on a push link")

    if ss == "absent" and hs in ("changed", "unchanged"):
        assert hub is not None
        if push_ok:
            return Decision("create in spoke", spoke_put=hub, base=hub)
        return Decision("pending: hub-only record on a pull link", pending=True)

    return Decision("nothing")


def decide_removed(spoke_state: State, spoke: Content | None, *, direction: str) -> Decision:
    """The hub record now matches the link's ``remove_when`` (a cancelled event): take it off
    the spoke and forget the link, keep it in the hub. A spoke edit made meanwhile is kept
    in the conflicts log."""
    if spoke_state == "deleted":
        return Decision("forget both", forget=True)
    if direction == "pull":
        return Decision("pending: removal not carried by a pull link", pending=True)
    notes = ([ConflictNote("overwrite", sorted(_flat(spoke)), "hub", _flat(spoke))]
             if spoke_state == "changed" and spoke is not None else [])
    return Decision("remove from spoke", spoke_delete=True, forget=True, conflicts=notes)


def out_of_selection(d: Decision, spoke: Content) -> Decision:
    """``d`` once its spoke write turns out to be outside the link's selection (a merge that
    kept the hub's value of a filtered or value-mapped field, when the spoke's item is inside
    it): the hub takes its write, and the spoke's item leaves the spoke, as when the hub moves
    a record out of the selection; the item's content is kept in the conflicts log."""
    notes = [*d.conflicts, ConflictNote("overwrite", sorted(_flat(spoke)), "hub", _flat(spoke))]
    return Decision(f"{d.label}; out of the link's selection: remove from spoke",
                    hub_put=d.hub_put, spoke_delete=True, forget=True, conflicts=notes)


def decide_new_both(hub: Content, spoke: Content, *, direction: str, authority: str,
                    hub_newer: bool = False) -> Decision:
    """New on both sides with the same identity (UID, key): equal -> link them; else the
    fields are merged with no base, differing fields decided by authority."""
    if same(hub, spoke):
        return Decision("same identity, equal: link", base=hub)
    d = decide("changed", "changed", hub=hub, spoke=spoke, base=None, direction=direction,
               authority=authority, hub_newer=hub_newer)
    for n in d.conflicts:
        n.kind = "create"
    d.label = "same identity, different: " + d.label
    return d


def _diff(a: Content, b: Content) -> set[str]:
    fa, fb = _flat(a), _flat(b)
    return {k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k)}
