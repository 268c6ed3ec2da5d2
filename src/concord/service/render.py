"""Field values as the dashboard shows them: typed values readably, never a Python dict dump.

A list of e-mail addresses reads as its addresses with their kinds, an address as one line,
an attendee as ``Name <email> (accepted)``; ``extras`` (what a vCard or iCalendar object
held beyond the model) as a short summary with the kept properties listed under it. The
conflict view compares the two sides item by item, so a difference that the readable text
does not show (a parameter, a kept property) is still named.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from concord.model import shape

FORMATS = {"vcard": "vCard", "ical": "iCalendar"}
MAX_SNIPPET = 80


def _snip(text: str, limit: int = MAX_SNIPPET) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _kinds(v: Mapping[str, Any]) -> str:
    kinds = [str(t) for t in v.get("types") or []]
    pref = v.get("pref")
    if pref == 1:
        kinds.append("preferred")
    elif pref:
        kinds.append(f"pref {pref}")
    return f" ({', '.join(kinds)})" if kinds else ""


def address_line(v: Mapping[str, Any]) -> str:
    """A postal address on one line: ``PO Box 9, 1 High St, Sydney NSW 2000, Australia``."""
    town = " ".join(str(v[k]) for k in ("locality", "region", "postcode") if v.get(k))
    box = f"PO Box {v['po_box']}" if v.get("po_box") else ""
    parts = [box, v.get("extended") or "", v.get("street") or "", town, v.get("country") or ""]
    return ", ".join(" ".join(str(p).split()) for p in parts if p)


def _person(v: Mapping[str, Any], key: str) -> str:
    addr, name = v.get(key) or "", v.get("name")
    return f"{name} <{addr}>" if name else str(addr)


ROLES = {"REQ-PARTICIPANT": "", "OPT-PARTICIPANT": "optional", "NON-PARTICIPANT": "for information"}


def _attendee(v: Mapping[str, Any]) -> str:
    role = str(v.get("role") or "")
    notes = [str(v.get("status") or "").lower().replace("-", " "),
             ROLES.get(role.upper(), role.lower().replace("-", " "))]
    notes = [n for n in notes if n]
    return _person(v, "email") + (f" ({', '.join(notes)})" if notes else "")


def _recurrence(v: Mapping[str, Any]) -> str:
    parts = list(v.get("rules") or [])
    parts += [f"not {r}" for r in v.get("exrules") or []]
    if v.get("exdates"):
        parts.append("except " + ", ".join(v["exdates"]))
    if v.get("rdates"):
        parts.append("also " + ", ".join(v["rdates"]))
    return "; ".join(parts)


def _size(n: Any) -> str:
    if not isinstance(n, int):
        return ""
    for unit in ("bytes", "KB", "MB"):
        if n < 1024 or unit == "MB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.0f} {unit}"
        n //= 1024
    return ""


def _override(v: Mapping[str, Any]) -> str:
    changed = ", ".join(k for k in v if k not in ("recurrence_id", "extras"))
    return f"{v.get('recurrence_id', '')}" + (f" ({changed} changed)" if changed else "")


def one(v: Any) -> str:
    """One typed value (an element of a list field, or an object field) as text."""
    if not isinstance(v, Mapping):
        return scalar(v)
    if "address" in v:
        return _person(v, "address") + _kinds(v)
    if "number" in v:
        return f"{v['number']}{_kinds(v)}"
    if "email" in v:
        return _attendee(v)
    if "value" in v and "name" not in v:
        return f"{v['value']}{_kinds(v)}"
    if "recurrence_id" in v:
        return _override(v)
    if "sha256" in v:
        extra = ", ".join(p for p in (v.get("content_type"), _size(v.get("size"))) if p)
        return f"{v.get('filename') or v['sha256'][:12]} ({extra})"
    if {"rules", "exdates", "rdates", "exrules"} & set(v):
        return _recurrence(v)
    if {"street", "locality", "postcode", "region", "country", "po_box", "extended"} & set(v):
        return address_line(v) + _kinds(v)
    if "format" in v:
        return extras_summary(v)
    return json.dumps(v, ensure_ascii=False, sort_keys=True)


def scalar(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, dict)):
        return json.dumps(v, ensure_ascii=False, sort_keys=True)
    return str(v)


def show(value: Any, entity: str = "", field: str = "") -> str:
    """Any field's value as one readable line."""
    if value is None:
        return ""
    if field == "extras" and isinstance(value, Mapping):
        return extras_summary(value)
    if isinstance(value, list):
        sep = "; " if (entity and (sh := shape(entity, field)) is not None and sh.item) or any(
            isinstance(v, Mapping) for v in value) else ", "
        return sep.join(one(v) for v in value)
    if isinstance(value, Mapping):
        return one(value)
    return scalar(value)


def _component_name(text: str) -> str:
    first = text.lstrip().split("\n", 1)[0].strip()
    return first.partition(":")[2] or first if first.upper().startswith("BEGIN:") else first


def _component_body(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines()]
    return "; ".join(ln for ln in lines[1:-1] if ln)


def _params(params: Mapping[str, Any]) -> str:
    return ";".join(f"{k}={','.join(str(x) for x in v) if isinstance(v, list) else v}"
                    for k, v in params.items())


def extras_items(value: Mapping[str, Any]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """What ``extras`` kept: (properties, how named properties were written), each a list of
    (name, value as text)."""
    kept: list[tuple[str, str]] = []
    written: list[tuple[str, str]] = []
    for p in value.get("props") or []:
        if not isinstance(p, Mapping):
            continue
        name = f"{p['group']}.{p.get('name', '')}" if p.get("group") else str(p.get("name", ""))
        params = _params(p.get("params") or {})
        kept.append((name, (f"[{params}] " if params else "") + str(p.get("value", ""))))
    for p in value.get("calendar") or []:
        if isinstance(p, Mapping):
            kept.append((f"{p.get('name', '')} (calendar)", str(p.get("value", ""))))
    for text in value.get("components") or []:
        kept.append((_component_name(str(text)), _component_body(str(text))))
    for text in value.get("siblings") or []:
        kept.append((f"{_component_name(str(text))} (alongside)", _component_body(str(text))))
    for prop, params in (value.get("params") or {}).items():
        written.append((f"{prop} parameters", _params(params or {})))
    for prop, group in (value.get("groups") or {}).items():
        written.append((f"{prop} group", str(group)))
    for prop, form in (value.get("forms") or {}).items():
        written.append((f"{prop} written as", str(form)))
    return kept, written


def _plural(n: int, one_: str, many: str) -> str:
    return f"{n} {one_ if n == 1 else many}"


def format_name(value: Mapping[str, Any]) -> str:
    fmt = FORMATS.get(str(value.get("format")), str(value.get("format") or "source"))
    return f"{fmt} {value['version']}" if value.get("version") else fmt


def extras_summary(value: Mapping[str, Any]) -> str:
    """``3 more properties kept from the vCard``, and how many formatting details of named
    properties (parameters, groups, how N or UID was written)."""
    kept, written = extras_items(value)
    fmt = format_name(value)
    details = _plural(len(written), "formatting detail", "formatting details")
    if kept:
        more = _plural(len(kept), "more property", "more properties")
        return f"{more} kept from the {fmt}" + (f", and {details}" if written else "")
    if written:
        return f"{details} kept from the {fmt}"
    return f"Nothing more kept from the {fmt}"


def extras_view(value: Any, other: Any = None) -> dict[str, Any]:
    """``extras`` for a ``<details>``: the summary, and each kept item as name and a short
    value, marked when the other side (a conflict's) does not hold it the same."""
    if not isinstance(value, Mapping):
        return {"summary": show(value), "items": [], "differs": False}
    kept, written = extras_items(value)
    theirs: set[tuple[str, str]] = set()
    if isinstance(other, Mapping):
        o_kept, o_written = extras_items(other)
        theirs = set(o_kept) | set(o_written)
    items = [{"name": n, "value": _snip(v), "full": v,
              "differs": other is not None and (n, v) not in theirs}
             for n, v in kept + written]
    if isinstance(other, Mapping) and format_name(other) != format_name(value):
        items.insert(0, {"name": "format", "value": format_name(value),
                         "full": format_name(value), "differs": True})
    return {"summary": extras_summary(value), "items": items,
            "differs": other is not None and any(i["differs"] for i in items)}


def differences(a: Any, b: Any, path: str = "", limit: int = 6) -> list[str]:
    """Where two values differ, as paths (``emails[2].params``), for a difference the readable
    text does not show."""
    out: list[str] = []

    def walk(x: Any, y: Any, p: str) -> None:
        if len(out) >= limit or x == y:
            return
        if isinstance(x, Mapping) and isinstance(y, Mapping):
            for k in sorted(set(x) | set(y), key=str):
                walk(x.get(k), y.get(k), f"{p}.{k}" if p else str(k))
        elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for i, (xi, yi) in enumerate(zip(x, y, strict=True)):
                walk(xi, yi, f"{p}[{i + 1}]")
        else:
            out.append(p or "value")

    walk(a, b, path)
    return out


def title(fields: Mapping[str, Any], rid: str) -> str:
    """A record's name in a list: its display name, else its parts, else its id."""
    for key in ("name", "summary", "display_name", "subject"):
        v = fields.get(key)
        if isinstance(v, str) and v.strip():
            return v
    parts = [fields.get(k) for k in ("prefix", "given_name", "family_name", "suffix")]
    joined = " ".join(str(p) for p in parts if isinstance(p, str) and p)
    if joined:
        return joined
    for key in ("org", "title", "code"):
        v = fields.get(key)
        if isinstance(v, str) and v.strip():
            return v
    emails = fields.get("emails")
    if isinstance(emails, list) and emails and isinstance(emails[0], Mapping):
        return str(emails[0].get("address") or rid)
    return rid


def field_row(entity: str, name: str, hub: Any, spoke: Any) -> dict[str, Any]:
    """One row of a conflict's side-by-side table."""
    typed = isinstance(hub, (list, dict)) or isinstance(spoke, (list, dict))
    row: dict[str, Any] = {"name": name, "differs": hub != spoke, "typed": typed,
                           "hub": show(hub, entity, name), "spoke": show(spoke, entity, name),
                           "hub_present": hub is not None, "spoke_present": spoke is not None,
                           "extras": None, "note": ""}
    if name == "extras":
        row["extras"] = {"hub": extras_view(hub, spoke) if hub is not None else None,
                         "spoke": extras_view(spoke, hub) if spoke is not None else None}
    if row["differs"] and row["hub"] == row["spoke"] and name != "extras":
        row["note"] = "differs in " + ", ".join(differences(hub, spoke, name))
    return row
