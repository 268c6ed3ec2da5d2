"""Field maps, value maps (an unmapped value means "not synced") and filters."""

from __future__ import annotations

from concord.config import EntityConfig
from concord.engine.mapping import Mapping


def make(spoke_fields: tuple[str, ...] | None = ("name", "status", "category"),
         ref_fields: dict[str, str] | None = None, **cfg: object) -> Mapping:
    return Mapping(EntityConfig.model_validate(cfg), spoke_fields, ref_fields or {})


def test_default_mapping_is_identity_over_the_connectors_fields() -> None:
    m = make()
    assert m.to_hub({"name": "A", "status": "x", "other": 1}) == {"name": "A", "status": "x"}
    assert m.to_spoke({"name": "A", "extra": 2}) == {"name": "A", "status": None, "category": None}


def test_connector_with_any_field_passes_everything() -> None:
    m = make(spoke_fields=None)
    assert m.to_hub({"a": 1, "b": None}) == {"a": 1}
    assert m.to_spoke({"a": 1}) == {"a": 1}
    assert m.project({"a": 1, "b": None}, {}) == ({"a": 1}, {})


def test_explicit_field_map_renames_both_ways() -> None:
    m = make(fields={"name": "FullName", "state": "Status"})
    assert m.to_hub({"FullName": "Ann", "Status": "Open", "Ignored": 1}) == {
        "name": "Ann", "state": "Open"}
    assert m.to_spoke({"name": "Ann", "state": "Open", "notmapped": 1}) == {
        "FullName": "Ann", "Status": "Open"}


def test_spoke_gets_every_mapped_field_even_when_empty() -> None:
    # a spoke rewrites exactly the mapped fields: a cleared hub field must clear it there
    m = make(fields={"name": "FullName", "state": "Status"})
    assert m.to_spoke({"name": "Ann"}) == {"FullName": "Ann", "Status": None}


def test_value_map_translates_both_ways() -> None:
    m = make(values={"status": {"Open": "Not Started", "Done": "Completed"}})
    assert m.to_spoke({"name": "T", "status": "Open"})["status"] == "Not Started"
    assert m.to_hub({"name": "T", "status": "Completed"})["status"] == "Done"


def test_unmapped_value_means_not_synced_in_both_directions() -> None:
    m = make(values={"status": {"Open": "Not Started"}})
    assert m.to_spoke({"name": "T", "status": "Waiting"}) is None
    assert not m.passes({"name": "T", "status": "Waiting"})
    assert m.to_hub({"name": "T", "status": "Deferred"}) is None
    # an empty value is not an unmapped value
    assert m.to_spoke({"name": "T"}) is not None
    assert m.passes({"name": "T"})


def test_many_to_one_value_map_goes_back_to_the_first_listed() -> None:
    m = make(values={"status": {"Completed": "Done", "Canceled": "Done"}})
    assert m.to_spoke({"status": "Canceled"})["status"] == "Done"
    assert m.to_hub({"status": "Done"})["status"] == "Completed"


def test_filter_keeps_only_allowed_values() -> None:
    m = make(filter={"category": ["Practice", "Tax"]})
    assert m.passes({"category": "Tax"})
    assert not m.passes({"category": "Personal"})
    assert not m.passes({"name": "no category"})  # missing value is not allowed
    assert m.to_hub({"category": "Personal"}) is None
    assert m.to_hub({"category": "Practice", "name": "x"}) == {"category": "Practice", "name": "x"}


def test_filter_on_a_list_field_passes_when_any_member_is_allowed() -> None:
    m = make(spoke_fields=("name", "categories"), filter={"categories": ["Client"]})
    assert m.passes({"categories": ["VIP", "Client"]})
    assert not m.passes({"categories": ["VIP"]})


def test_project_takes_only_carried_fields_and_refs() -> None:
    m = make(ref_fields={"client": "client"})
    f, r = m.project({"name": "A", "secret": 1, "status": None}, {"client": "c1", "other": "x"})
    assert f == {"name": "A"} and r == {"client": "c1"}


def test_config_refs_override_the_connectors() -> None:
    m = make(ref_fields={"client": "client"}, refs={"manager": "staff"})
    assert m.refs == {"manager": "staff"}


def test_overlay_keeps_fields_this_link_does_not_carry() -> None:
    m = make(fields={"name": "FullName"})
    assert m.overlay({"name": "Old", "tax_id": "123"}, {"name": "New"}) == {
        "name": "New", "tax_id": "123"}
    # a carried field cleared at the spoke is cleared in the hub
    assert m.overlay({"name": "Old", "tax_id": "123"}, {}) == {"tax_id": "123"}
    assert make(spoke_fields=None).overlay({"a": 1}, {"b": 2}) == {"b": 2}
