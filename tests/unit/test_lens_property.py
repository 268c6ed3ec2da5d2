"""The shape rules are lenses, and lenses obey two laws (Hypothesis over random values):

- GetPut: writing back what the spoke already shows changes nothing in the hub
  (``overlay(h, project(h)) == h``), so a narrow spoke never erases what it cannot hold;
- PutGet: after writing a spoke's edit into the hub, the spoke sees exactly its edit
  (``view(get(overlay(h, v))) == v``), so no spoke edit is lost on the way in. One case is
  by design: when a spoke with one column per element clears one, a further element the
  hub holds (that the spoke could not show) moves up into its place, rather than being lost.

And what a narrow spoke cannot show (elements beyond its rules, an element's kinds and
parameters) survives every spoke edit that does not touch it.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from concord.config import EntityConfig
from concord.engine.mapping import Mapping

TEXT = st.text(alphabet="abcdefghij@.-", min_size=1, max_size=8)
KINDS = st.lists(st.sampled_from(["work", "home", "cell", "internet"]), max_size=2, unique=True)


@st.composite
def emails(draw: Any) -> list[dict[str, Any]]:
    out = []
    for addr in draw(st.lists(TEXT, max_size=4, unique=True)):
        e: dict[str, Any] = {"address": addr}
        kinds = draw(KINDS)
        if kinds:
            e["types"] = kinds
        if draw(st.booleans()):
            e["params"] = {"X-SERVICE": [draw(TEXT)]}
        out.append(e)
    return out


RULES = {
    "one": ({"emails": {"field": "email"}}, {"email": "text"}),
    "two": ({"emails": [{"field": "email"}, {"field": "email2", "types": ["home"]}]},
            {"email": "text", "email2": "text"}),
    "split": ({"emails": {"field": "emails_text", "split": ","}}, {"emails_text": "text"}),
    "list": ({"emails": {"field": "addresses"}}, {"addresses": "list"}),
}


def _mapping(kind: str) -> Mapping:
    fields, shapes = RULES[kind]
    return Mapping(EntityConfig(fields=fields), tuple(shapes), {}, entity="contact",
                   spoke_shapes=shapes)


def _hub(value: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": "Ann", "emails": value} if value else {"name": "Ann"}


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from(sorted(RULES)), hub_emails=emails())
def test_get_put_a_spoke_that_changed_nothing_changes_nothing(kind: str,
                                                              hub_emails: list[dict]) -> None:
    m = _mapping(kind)
    hub = _hub(hub_emails)
    seen_by_spoke = m.to_hub(m.to_spoke(hub) or {}) or {}
    after = m.overlay(hub, {**seen_by_spoke, "name": "Ann"})
    assert after == hub


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from(sorted(RULES)), hub_emails=emails(),
       spoke_values=st.lists(TEXT, max_size=3, unique=True))
def test_put_get_the_spoke_sees_exactly_its_edit_and_the_rest_survives(
        kind: str, hub_emails: list[dict], spoke_values: list[str]) -> None:
    m = _mapping(kind)
    fields, shapes = RULES[kind]
    spoke: dict[str, Any] = {}
    names = list(shapes)
    if kind in ("one", "two"):
        for name, v in zip(names, spoke_values, strict=False):
            spoke[name] = v
    elif kind == "split":
        spoke[names[0]] = ",".join(spoke_values) or None
    else:
        spoke[names[0]] = spoke_values or None
    view = m.to_hub(spoke) or {}
    hub = _hub(hub_emails)
    after = m.overlay(hub, view)
    seen = (m.to_hub(m.to_spoke(after) or {}) or {}).get("emails")
    if kind in ("split", "list"):  # PutGet: the spoke reads back exactly what it wrote
        assert seen == view.get("emails")
    else:
        n = len(fields["emails"]) if isinstance(fields["emails"], list) else 1
        written = view.get("emails") or []
        # what it wrote, then (where it cleared a column) the hub's further elements move up
        moved_up = m.to_hub(m.to_spoke(_hub(written + hub_emails[n:])) or {}) or {}
        assert seen == moved_up.get("emails")
        assert (seen or [])[:len(written)] == written
        # nothing the spoke cannot hold is lost: elements beyond its rules stay, in order
        assert (after.get("emails") or [])[len(written):] == hub_emails[n:]
    # an address the spoke still shows keeps its kinds and parameters from the hub
    shown = {e["address"] for e in view.get("emails") or []}
    for e in hub_emails:
        if e["address"] in shown and kind in ("split", "list"):
            assert e in after["emails"]
    assert after["name"] == "Ann"  # fields the link does not map are never touched


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(sorted(RULES)), hub_emails=emails())
def test_putting_a_value_into_itself_gives_it_back(kind: str, hub_emails: list[dict]) -> None:
    """``Mapping.overlay`` keeps a lens's hub value as it is when the spoke's view equals it,
    without putting: exactly what the put itself gives."""
    lens = _mapping(kind).lenses["emails"]
    value = hub_emails or None
    assert lens.put(value, value) == value
    assert _mapping(kind).overlay(_hub(hub_emails), _hub(hub_emails)) == _hub(hub_emails)


ADDRESS_PART = st.text(alphabet="abc 12", min_size=1, max_size=5)


@settings(max_examples=300, deadline=None)
@given(addresses=st.lists(st.fixed_dictionaries(
    {"street": ADDRESS_PART}, optional={"locality": ADDRESS_PART, "postcode": ADDRESS_PART,
                                        "types": KINDS}), max_size=3))
def test_an_address_put_into_itself_comes_back(addresses: list[dict]) -> None:
    """The same for a rule whose spoke columns are the parts of one element (an address)."""
    m = Mapping(EntityConfig(fields={"addresses": {"parts": {
        "street": "street", "locality": "city", "postcode": "postcode"}}}),
        ("street", "city", "postcode"), {}, entity="client",
        spoke_shapes={"street": "text", "city": "text", "postcode": "text"})
    value = [{k: v for k, v in a.items() if v != []} for a in addresses] or None
    assert m.lenses["addresses"].put(value, value) == value


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(sorted(RULES)), hub_emails=emails(),
       odd=st.sampled_from([None, [], [{}], [{"address": ""}], [{"types": ["home"]}]]))
def test_project_shows_what_the_lens_shows(kind: str, hub_emails: list[dict],
                                           odd: list[dict] | None) -> None:
    """``Mapping.project`` reads a one-field rule inline: the same as the lens's own
    ``view(get(value))``, empty and odd values included."""
    m = _mapping(kind)
    lens = m.lenses["emails"]
    for value in (hub_emails or None, odd):
        hub = {"name": "Ann", "emails": value}
        expected = lens.view(lens.get(value))
        got = m.project(hub, {})[0].get("emails")
        assert got == expected
