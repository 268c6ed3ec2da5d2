"""The canonical model: validation, shape rules checked when the configuration loads and when
a link opens, the lenses that convert between shapes without losing what a narrower spoke
cannot hold, and the reference page generated from the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from concord import model
from concord.config import EntityConfig, from_dict
from concord.engine.mapping import Mapping
from concord.errors import ConfigError
from concord.hub.store import Hub
from concord.model.doc import BEGIN, END, tables


def test_normalize_keeps_canonical_fields_and_drops_empty_parts() -> None:
    f = {"name": "Ann", "emails": [{"address": "a@x.example", "types": [], "params": {}}],
         "phones": [], "note": None, "custom.Industry": "Retail"}
    assert model.normalize("contact", f) == {
        "name": "Ann", "emails": [{"address": "a@x.example"}], "custom.Industry": "Retail"}


def test_compacted_normalize_leaves_out_empty_values_and_still_validates_them() -> None:
    # the codec path: None and empty lists are left out, a custom field is kept, and a value
    # of the wrong shape is refused even where it is empty
    f = {"name": "Ann", "note": None, "phones": [], "custom.Industry": "Retail"}
    assert model.normalize("contact", f, compacted=True) == {
        "name": "Ann", "custom.Industry": "Retail"}
    with pytest.raises(model.ModelError, match="field 'emails'"):
        model.normalize("contact", {"emails": {}}, compacted=True)
    with pytest.raises(model.ModelError, match="field 'name'"):
        model.normalize("contact", {"name": ["Ann"]}, compacted=True)


@pytest.mark.parametrize(("entity", "fields", "key"), [
    ("contact", {"emails": "a@x.example"}, "emails"),           # a string is not a list
    ("contact", {"emails": [{"addr": "a@x.example"}]}, "emails.0.addr"),
    ("contact", {"street": "1 High St"}, "street"),               # not a model field
    ("event", {"attendees": ["a@x.example"]}, "attendees.0"),    # strings are not attendees
    ("task", {"priority": "high"}, "priority"),
    ("task", {"priority": 12}, "priority"),
    ("client", {"custom.Fee": {"a": 1}}, "custom.Fee"),           # one scalar per custom field
    ("job", {"budget_hours": "12"}, "budget_hours"),              # strict: no silent coercion
])
def test_what_does_not_fit_is_refused_naming_the_field(entity: str, fields: dict,
                                                       key: str) -> None:
    with pytest.raises(model.ModelError) as info:
        model.normalize(entity, fields, record="r1")
    msg = str(info.value)
    assert f"{entity} r1" in msg and f"field {key!r}" in msg and "(fix:" in msg


def test_the_hub_refuses_a_write_that_does_not_fit(tmp_path: Path) -> None:
    hub = Hub(f"sqlite:///{tmp_path / 'hub.db'}")
    with pytest.raises(model.ModelError, match="emails"):
        hub.put("contact", "c1", {"name": "Ann", "emails": "ann@x.example"})
    assert hub.get("contact", "c1") is None
    rec = hub.put("contact", "c2", {"name": "Bo", "phones": [{"number": "1", "types": []}]})
    assert rec.fields == {"name": "Bo", "phones": [{"number": "1"}]}  # stored canonical
    hub.close()


def test_config_load_refuses_a_field_the_model_does_not_have() -> None:
    with pytest.raises(ConfigError) as info:
        from_dict({"links": {"practice": {"connector": "sql", "entities": {
            "contact": {"fields": {"emial": "email"}}}}}}, source="concord.toml")
    msg = str(info.value)
    assert "concord.toml" in msg and "links.practice.entities.contact.fields.emial" in msg
    assert "did you mean 'emails'" in msg


def test_config_load_refuses_a_rule_on_a_single_valued_field() -> None:
    with pytest.raises(ConfigError, match="title is a single text"):
        from_dict({"links": {"x": {"connector": "sql", "entities": {
            "contact": {"fields": {"title": {"field": "position"}}}}}}})


def test_a_scalar_column_mapped_to_a_list_with_no_rule_is_refused_when_the_link_opens() -> None:
    cfg = EntityConfig(fields={"emails": "email"})
    with pytest.raises(ConfigError) as info:
        Mapping(cfg, ("email",), {}, entity="contact", spoke_shapes={"email": "text"},
                link="practice")
    msg = str(info.value)
    assert "link 'practice'" in msg and "entities.contact.fields.emails" in msg
    assert 'emails = { field = "email" }' in msg


def test_spoke_fields_that_are_not_model_fields_are_refused() -> None:
    with pytest.raises(ConfigError, match="'first_name'"):
        Mapping(EntityConfig(), ("first_name", "email"), {}, entity="contact",
                spoke_shapes={"first_name": "text", "email": "text"})


def _map(fields: dict, shapes: dict[str, str], entity: str = "contact") -> Mapping:
    return Mapping(EntityConfig(fields=fields), tuple(shapes), {}, entity=entity,
                   spoke_shapes=shapes)


def test_one_column_is_one_element_never_one_character_per_value() -> None:
    m = _map({"emails": {"field": "email"}}, {"email": "text"})
    assert m.to_hub({"email": "ann@x.example"}) == {"emails": [{"address": "ann@x.example"}]}
    t = _map({"categories": {"field": "category"}}, {"category": "text"}, "task")
    assert t.to_hub({"category": "Advisory"}) == {"categories": ["Advisory"]}
    assert t.to_spoke({"categories": ["Advisory"]}) == {"category": "Advisory"}


def test_a_narrow_spoke_never_erases_what_it_cannot_hold() -> None:
    m = _map({"emails": {"field": "email", "types": ["work"]}}, {"email": "text"})
    hub = {"emails": [{"address": "ann@work.example", "types": ["work", "internet"], "pref": 1},
                      {"address": "ann@home.example", "types": ["home"]}]}
    assert m.to_spoke(hub) == {"email": "ann@work.example"}
    # unchanged at the spoke: the hub's value comes back whole
    view = m.project(hub, {})[0]
    assert m.overlay(hub, view) == hub
    # edited at the spoke: the first address changes, its kinds and the second stay
    new = m.to_hub({"email": "ann@new.example"})
    assert new is not None
    assert m.overlay(hub, new)["emails"] == [
        {"address": "ann@new.example", "types": ["work", "internet"], "pref": 1},
        {"address": "ann@home.example", "types": ["home"]}]
    # cleared at the spoke: that element goes, the one it never held stays
    assert m.overlay(hub, m.to_hub({"email": None}) or {})["emails"] == [
        {"address": "ann@home.example", "types": ["home"]}]


def test_split_rule_holds_every_element() -> None:
    m = _map({"categories": {"field": "tags", "split": ","}}, {"tags": "text"}, "client")
    assert m.to_hub({"tags": "VIP, Tax ,Payroll"}) == {"categories": ["VIP", "Tax", "Payroll"]}
    assert m.to_spoke({"categories": ["VIP", "Tax"]}) == {"tags": "VIP,Tax"}


def test_several_rules_are_positions_and_parts_build_one_address() -> None:
    m = _map({"phones": [{"field": "phone", "types": ["work"]},
                         {"field": "mobile", "types": ["cell"]}],
              "addresses": {"parts": {"street": "street", "locality": "city"}}},
             {"phone": "text", "mobile": "text", "street": "text", "city": "text"})
    got = m.to_hub({"phone": "1", "mobile": "2", "street": "1 High St", "city": "Leeds"})
    assert got == {"phones": [{"number": "1", "types": ["work"]},
                              {"number": "2", "types": ["cell"]}],
                   "addresses": [{"street": "1 High St", "locality": "Leeds"}]}
    hub = {"addresses": [{"street": "1 High St", "locality": "Leeds", "country": "UK",
                          "types": ["work"]}]}
    edited = m.overlay(hub, m.to_hub({"street": "2 Low St", "city": "Leeds"}) or {})
    assert edited["addresses"] == [{"street": "2 Low St", "locality": "Leeds",
                                    "country": "UK", "types": ["work"]}]


def test_a_list_column_fills_each_attendee() -> None:
    m = _map({"attendees": {"field": "attendees"}}, {"attendees": "list"}, "event")
    hub = {"attendees": [{"email": "a@x.example", "name": "A", "status": "ACCEPTED"}]}
    assert m.to_spoke(hub) == {"attendees": ["a@x.example"]}
    new = m.to_hub({"attendees": ["a@x.example", "b@x.example"]}) or {}
    assert m.overlay(hub, new)["attendees"] == [
        {"email": "a@x.example", "name": "A", "status": "ACCEPTED"}, {"email": "b@x.example"}]


def test_reference_page_is_generated_from_the_code() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "model.md").read_text()
    generated = page[page.index(BEGIN):page.index(END) + len(END)]
    assert generated == tables(), "docs/model.md is stale: run python -m concord.model.doc"
    for entity in model.MODELS:
        assert f"### {entity} " in generated


def test_documented_practice_database_example_loads_with_its_rules() -> None:
    import tomllib

    page = Path(__file__).resolve().parents[2] / "docs" / "practice-database.md"
    block = page.read_text().split("```toml\n", 1)[1].split("```", 1)[0]
    cfg = from_dict(tomllib.loads(block), source="docs/practice-database.md")
    fields = cfg.links["practice"].entities["client"].fields
    assert fields is not None and fields["given_name"] == "first_name"
    m = Mapping(cfg.links["practice"].entities["client"], None, {}, entity="client",
                spoke_shapes={"email": "text", "phone": "text", "street": "text",
                              "city": "text", "postcode": "text"})
    got = m.to_hub({"email": "a@x.example", "street": "1 High St", "city": "Leeds",
                    "first_name": "Ann"})
    assert got == {"given_name": "Ann", "emails": [{"address": "a@x.example"}],
                   "addresses": [{"street": "1 High St", "locality": "Leeds"}]}
