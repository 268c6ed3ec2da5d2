"""The vCard codec: 3.0 and 4.0 parsing, folding, escaping, params, groups, patching."""

from __future__ import annotations

import pytest

from concord.formats import vcard
from concord.formats.vcard import VCardError

V3 = (
    "BEGIN:VCARD\r\n"
    "VERSION:3.0\r\n"
    "UID:abc-123\r\n"
    "FN:Ann Smith\r\n"
    "N:Smith;Ann;;;\r\n"
    "ORG:Smith & Co;Accounts\r\n"
    "TITLE:Partner\r\n"
    "EMAIL;TYPE=INTERNET,WORK:ann@smith.example\r\n"
    "EMAIL;TYPE=HOME:ann@home.example\r\n"
    "TEL;TYPE=CELL:+44 7700 900000\r\n"
    "ADR;TYPE=WORK:;;1 High St;Leeds;West Yorks;LS1 1AA;UK\r\n"
    "BDAY:1980-02-03\r\n"
    "URL:https://smith.example\r\n"
    "CATEGORIES:Client,VIP\r\n"
    "NOTE:first line\\nsecond\\, with comma\\; and semicolon \\\\ backslash\r\n"
    "X-CUSTOM-FIELD:keep me\r\n"
    "PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQSkZJRgABAQ\r\n"
    " AAAQABAAD\r\n"
    "END:VCARD\r\n"
)

V4 = (
    "BEGIN:VCARD\n"
    "VERSION:4.0\n"
    "UID:urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1\n"
    "KIND:individual\n"
    "FN:Bob Jones\n"
    "N:Jones;Bob;;Mr;\n"
    "EMAIL;TYPE=work;PREF=1:mailto:bob@jones.example\n"
    "TEL;VALUE=uri;TYPE=\"voice,work\":tel:+1-555-555-5555\n"
    "ADR;LABEL=\"42 Plantation St.: Baytown\":;;42 Plantation St.;Baytown;LA;30314;USA\n"
    "item1.URL:https://jones.example\n"
    "item1.X-ABLABEL:homepage\n"
    "END:VCARD\n"
)


def test_parses_vcard_30_fields() -> None:
    card = vcard.parse(V3, name="ann.vcf")
    assert card.version == "3.0"
    assert card.uid == "abc-123"
    assert card.fields() == {
        "name": "Ann Smith",
        "family_name": "Smith",
        "given_name": "Ann",
        "org": "Smith & Co",
        "departments": ["Accounts"],  # every ORG unit is kept
        "title": "Partner",
        "emails": [{"address": "ann@smith.example", "types": ["internet", "work"]},
                   {"address": "ann@home.example", "types": ["home"]}],
        "phones": [{"number": "+44 7700 900000", "types": ["cell"]}],
        "addresses": [{"street": "1 High St", "locality": "Leeds", "region": "West Yorks",
                       "postcode": "LS1 1AA", "country": "UK", "types": ["work"]}],
        "birthday": "1980-02-03",
        "urls": [{"value": "https://smith.example"}],
        "categories": ["Client", "VIP"],
        "note": "first line\nsecond, with comma; and semicolon \\ backslash",
        # what the model does not name travels as written
        "extras": {"format": "vcard", "props": [
            {"name": "X-CUSTOM-FIELD", "value": "keep me"},
            {"name": "PHOTO", "value": "/9j/4AAQSkZJRgABAQAAAQABAAD",
             "params": {"ENCODING": ["b"], "TYPE": ["JPEG"]}}]},
    }


def test_parses_vcard_40_uris_urn_uid_kind_and_groups() -> None:
    card = vcard.parse(V4, name="bob.vcf")
    assert card.version == "4.0"
    assert card.uid == "4fbe8971-0bc3-424c-9c26-36c3e1eff6b1"
    f = card.fields()
    assert f["kind"] == "individual"
    assert f["prefix"] == "Mr"
    assert f["emails"] == [{"address": "bob@jones.example", "types": ["work"], "pref": 1}]
    # tel: stripped, and put back for the VALUE=uri form when written
    assert f["phones"] == [{"number": "+1-555-555-5555", "types": ["voice", "work"],
                            "params": {"VALUE": ["uri"]}}]
    assert f["urls"] == [{"value": "https://jones.example", "group": "item1"}]
    assert f["extras"]["version"] == "4.0"
    assert {"name": "X-ABLABEL", "value": "homepage", "group": "item1"} in f["extras"]["props"]
    assert card.first("URL").group == "item1"


def test_quoted_colon_in_params_does_not_end_the_head() -> None:
    card = vcard.parse(V4)
    adr = card.first("ADR")
    assert adr.params == {"LABEL": ["42 Plantation St.: Baytown"]}
    got = card.fields()["addresses"][0]
    assert (got["street"], got["locality"]) == ("42 Plantation St.", "Baytown")


def test_unfolds_lines_with_space_or_tab() -> None:
    text = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ann\r\n  Smith\r\nNOTE:a\r\n\tb\r\nEND:VCARD\r\n"
    f = vcard.parse(text).fields()
    assert f["name"] == "Ann Smith"
    assert f["note"] == "ab"


def test_build_folds_long_lines_at_75_octets_without_splitting_utf8() -> None:
    name = "Zoë " * 40
    text = vcard.build({"name": name.strip()}, "u1")
    for line in text.split("\r\n"):
        assert len(line.encode()) <= 75
        line.encode().decode()  # each physical line is valid UTF-8 on its own
    assert vcard.parse(text).fields()["name"] == name.strip()


@pytest.mark.parametrize("value", ["a,b", "a;b", "a\\b", "line1\nline2", "\\n literal", "x\\,y"])
def test_escaping_round_trips(value: str) -> None:
    text = vcard.build({"name": "N", "note": value, "org": value}, "u")
    f = vcard.parse(text).fields()
    assert f["note"] == value
    assert f["org"] == value  # an escaped ';' does not split the structured value


def test_escape_and_unescape_are_inverse() -> None:
    for s in ["plain", "a,b;c\\d\ne", "\\\\", "trailing\\"]:
        assert vcard.unescape(vcard.escape(s)) == s


def test_build_round_trips_every_field() -> None:
    fields = {"name": "Ann Smith", "family_name": "Smith", "given_name": "Ann",
              "additional_names": "Jane,Mary", "prefix": "Dr.", "suffix": "CPA",
              "nicknames": ["Annie"], "org": "Co", "departments": ["Tax", "Audit"],
              "title": "Partner", "role": "Signing partner",
              "emails": [{"address": "a@x.com", "types": ["work"], "pref": 1},
                         {"address": "b@x.com", "group": "item1"}],
              "phones": [{"number": "1", "types": ["cell"]}, {"number": "2"}],
              "addresses": [{"street": "1 High St", "locality": "Leeds", "region": "WY",
                             "postcode": "LS1", "country": "UK", "types": ["work"]},
                            {"po_box": "PO Box 7", "locality": "York"}],
              "urls": [{"value": "https://x.com"}], "ims": [{"value": "xmpp:ann@x.com"}],
              "related": [{"value": "urn:uuid:1234", "types": ["spouse"]}],
              "note": "hi", "birthday": "1980-01-01", "anniversary": "2005-06-07",
              "gender": "F", "timezone": "Europe/London", "geo": "53.8;-1.5",
              "categories": ["A", "B,C"], "kind": "individual",
              "extras": {"format": "vcard", "props": [
                  {"name": "X-ABLABEL", "value": "Other", "group": "item1"}],
                  "params": {"NOTE": {"LANGUAGE": ["en"]}}}}
    text = vcard.build(fields, "uid-1")
    card = vcard.parse(text)
    assert card.uid == "uid-1"
    assert card.fields() == fields


def test_patch_rewrites_only_changed_properties_and_keeps_the_rest() -> None:
    old = vcard.parse(V3).fields()
    new = {**old, "phones": [{"number": "+44 1"}], "title": "Senior Partner"}
    out = vcard.patch(V3, new)
    assert vcard.parse(out).fields() == new
    lines = out.split("\r\n")
    # untouched properties are byte-for-byte the original lines, in place
    for kept in ("EMAIL;TYPE=INTERNET,WORK:ann@smith.example", "X-CUSTOM-FIELD:keep me",
                 "PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQSkZJRgABAQ", " AAAQABAAD",
                 "ADR;TYPE=WORK:;;1 High St;Leeds;West Yorks;LS1 1AA;UK", "UID:abc-123"):
        assert kept in lines
    assert "TEL;TYPE=CELL:+44 7700 900000" not in lines
    assert lines.index("TITLE:Senior Partner") < lines.index("X-CUSTOM-FIELD:keep me")


def test_patch_with_nothing_changed_returns_the_original_text() -> None:
    assert vcard.patch(V3, vcard.parse(V3).fields()) == V3
    assert vcard.patch(V4, vcard.parse(V4).fields()) == V4


def test_patch_keeps_unmapped_properties_params_and_groups_in_40() -> None:
    f = vcard.parse(V4).fields()
    out = vcard.patch(V4, {**f, "name": "Robert Jones"})
    card = vcard.parse(out)
    assert card.version == "4.0"
    assert card.fields() == {**f, "name": "Robert Jones"}
    assert "item1.X-ABLABEL:homepage" in out
    assert 'ADR;LABEL="42 Plantation St.: Baytown":' in out
    assert "TEL;VALUE=uri;TYPE=\"voice,work\":tel:+1-555-555-5555" in out


def test_patch_only_touches_mapped_fields() -> None:
    f = vcard.parse(V3).fields()
    # 'note' is not among the mapped fields: its change is ignored, its line kept
    out = vcard.patch(V3, {**f, "note": "other", "title": "CFO"}, mapped=["title"])
    g = vcard.parse(out).fields()
    assert g["title"] == "CFO" and g["note"] == f["note"]


def test_patch_removes_a_cleared_property_and_adds_a_new_one() -> None:
    f = vcard.parse(V3).fields()
    new = {k: v for k, v in f.items() if k != "birthday"}
    new["note"] = None
    out = vcard.patch(V3, {**new, "phones": f["phones"]})
    g = vcard.parse(out).fields()
    assert "birthday" not in g and "note" not in g
    plain = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:X\r\nEND:VCARD\r\n"
    out2 = vcard.patch(plain, {"name": "X", "title": "Boss", **(
        {"extras": vcard.parse(plain).fields()["extras"]})})
    got = vcard.parse(out2).fields()
    assert {k: v for k, v in got.items() if k != "extras"} == {"name": "X", "title": "Boss"}
    assert "\nN:" not in out2 and "UID" not in out2  # nothing the card did not hold


def test_kind_is_written_as_apple_kind_and_read_back() -> None:
    text = vcard.build({"name": "Acme", "org": "Acme", "kind": "org"}, "u")
    assert "X-ADDRESSBOOKSERVER-KIND:org" in text
    assert vcard.parse(text).fields()["kind"] == "org"


@pytest.mark.parametrize(("text", "expect"), [
    ("", "does not start with BEGIN:VCARD"),
    ("hello\n", "does not start with BEGIN:VCARD"),
    ("BEGIN:VCARD\nVERSION:3.0\nFN:x\n", "does not end with END:VCARD"),
    ("BEGIN:VCARD\nVERSION:3.0\nFN x\nEND:VCARD\n", "line 3 has no ':'"),
    ("BEGIN:VCARD\nFN:x\nEND:VCARD\n", "VERSION is missing"),
    ("BEGIN:VCARD\nVERSION:5.0\nFN:x\nEND:VCARD\n", "VERSION is 5.0"),
    ("BEGIN:VCARD\nVERSION:3.0\nEND:VCARD\nBEGIN:VCARD\nVERSION:3.0\nEND:VCARD\n",
     "more than one vCard"),
])
def test_malformed_input_names_the_file_and_the_fix(text: str, expect: str) -> None:
    with pytest.raises(VCardError) as info:
        vcard.parse(text, name="/data/contacts/broken.vcf")
    msg = str(info.value)
    assert msg.startswith("/data/contacts/broken.vcf: ")
    assert expect in msg
    assert "(fix: " in msg


def test_patch_of_malformed_input_raises_vcard_error() -> None:
    with pytest.raises(VCardError, match=r"x\.vcf"):
        vcard.patch("BEGIN:VCARD\nFN:x\n", {"name": "y"}, name="x.vcf")
