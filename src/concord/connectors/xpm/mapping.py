"""XPM's JSON records <-> the canonical model (``docs/model.md``, ``docs/xpm.md``).

Each XPM field the model names goes to its model field (a client's ``email`` is the first of
``emails``, ``address``/``city``/… one of ``addresses``); every other field XPM holds goes to
``extras`` (format ``xpm``, one ``Prop`` per field, its value as text, JSON for a structured
value), so nothing is dropped and a write back sends it as it was; custom field values are
``custom.<name>`` scalars. XPM writes Yes/No flags as text: they are kept verbatim in extras,
and ``primary`` (a contact) / ``status`` (a client) are read from them.

A tax return is a view of client fields (XPM has no tax-return object): the client's
``returnType`` and tax settings, plus the client custom fields named in the link's
``tax_fields`` (year, status, due date, lodged, assessed, amount, reference).
"""

from __future__ import annotations

import json
from typing import Any

from concord.records import Fields, Refs

FORMAT = "xpm"

_YES = ("yes", "true", "1")


def yes(value: Any) -> bool:
    return str(value).strip().lower() in _YES


def _prop_value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True, separators=(",", ":"))


def extras_of(raw: dict[str, Any], skip: set[str]) -> dict[str, Any] | None:
    props = [{"name": k, "value": _prop_value(v)} for k, v in sorted(raw.items())
             if k not in skip and v is not None and v != "" and v != [] and v != {}]
    return {"format": FORMAT, "props": props} if props else None


def props_of(fields: Fields) -> dict[str, str]:
    ex = fields.get("extras") or {}
    if ex.get("format") != FORMAT:
        return {}
    return {p["name"]: p.get("value", "") for p in ex.get("props", [])}


def _typed_back(value: str, schema_type: str | None) -> Any:
    if schema_type in ("integer", "number"):
        try:
            return int(value) if schema_type == "integer" else float(value)
        except ValueError:
            return value
    if schema_type in ("object", "array") or (value[:1] in "{[" and schema_type is None):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _first(items: list[dict[str, Any]] | None, key: str, kind: str | None = None) -> str | None:
    for it in items or []:
        if kind is None or kind in (it.get("types") or []):
            v = it.get(key)
            if v:
                return str(v)
    return None


def _contact_points(f: Fields, raw: dict[str, Any], phones: dict[str, str]) -> None:
    """A party's e-mail and phones (XPM field -> phone kind) into ``f``, the ones it has."""
    if raw.get("email"):
        f["emails"] = [{"address": raw["email"]}]
    numbers = [{"number": raw[k], "types": [kind]} for k, kind in phones.items() if raw.get(k)]
    if numbers:
        f["phones"] = numbers


def _address(raw: dict[str, Any], prefix: str, kinds: list[str]) -> dict[str, Any] | None:
    def g(name: str) -> Any:
        key = prefix + name if prefix else name[0].lower() + name[1:]
        return raw.get(key) or None
    parts = {"street": g("Address"), "locality": g("City"), "region": g("Region"),
             "postcode": g("PostCode"), "country": g("Country")}
    if not any(parts.values()):
        return None
    return {**{k: v for k, v in parts.items() if v}, "types": kinds}


def _address_back(fields: Fields, kind: str, prefix: str) -> dict[str, Any]:
    chosen = None
    for a in fields.get("addresses") or []:
        kinds = a.get("types") or []
        if (kind == "postal") == ("postal" in kinds):
            chosen = a
            break
    chosen = chosen or {}
    names = {"Address": "street", "City": "locality", "Region": "region",
             "PostCode": "postcode", "Country": "country"}
    out = {}
    for xpm, model in names.items():
        key = prefix + xpm if prefix else xpm[0].lower() + xpm[1:]
        out[key] = chosen.get(model)
    return out


# -- clients ------------------------------------------------------------------------------
CLIENT_NAMED = {"uuid", "name", "firstName", "lastName", "middleName", "title", "gender", "email",
                "phone", "fax", "website", "dateOfBirth", "address", "city", "region",
                "postCode", "country", "postalAddress", "postalCity", "postalRegion",
                "postalPostCode", "postalCountry", "clientCode", "taxNumber", "businessNumber",
                "isArchived", "isProspect", "isDeleted", "accountManager", "contacts", "notes",
                "groups", "relationships"}
#: client fields that describe its tax returns: they travel on the tax_return record
TAX_NAMED = {"returnType", "prepareTaxReturn", "taxAgent", "agencyStatus", "signedTaxAuthority"}


def custom_fields_of(values: list[dict[str, Any]], skip: set[str] = frozenset()) -> Fields:  # type: ignore[assignment]
    out: Fields = {}
    for v in values:
        name = v.get("name")
        if not name or name in skip:
            continue
        for key in ("text", "date", "number", "decimal", "boolean"):
            if v.get(key) is not None:
                out[f"custom.{name}"] = v[key]
                break
    return out


def client_fields(raw: dict[str, Any], custom: list[dict[str, Any]], tax_names: set[str]) -> tuple[Fields, Refs]:
    f: Fields = {
        "name": raw.get("name"), "given_name": raw.get("firstName"),
        "family_name": raw.get("lastName"), "additional_names": raw.get("middleName"),
        "prefix": raw.get("title"), "gender": raw.get("gender"),
        "birthday": raw.get("dateOfBirth"), "code": raw.get("clientCode"),
        "tax_number": raw.get("taxNumber"), "business_number": raw.get("businessNumber"),
        "status": ("archived" if yes(raw.get("isArchived")) else
                   "prospect" if yes(raw.get("isProspect")) else "active"),
    }
    _contact_points(f, raw, {"phone": "work", "fax": "fax"})
    if raw.get("website"):
        f["urls"] = [{"value": raw["website"]}]
    addrs = [a for a in (_address(raw, "", ["work"]), _address(raw, "postal", ["postal"])) if a]
    if addrs:
        f["addresses"] = addrs
    # isArchived / isProspect are ``status``; the tax fields travel on the tax return
    extras = extras_of(raw, CLIENT_NAMED | TAX_NAMED)
    if extras:
        f["extras"] = extras
    f.update(custom_fields_of(custom, tax_names))
    refs: Refs = {}
    manager = raw.get("accountManager") or {}
    if manager.get("uuid"):
        refs["manager"] = manager["uuid"]
    return {k: v for k, v in f.items() if v is not None}, refs


def client_body(fields: Fields, refs: Refs, schema: dict[str, str]) -> dict[str, Any]:
    """A ClientAdd/UpdateRequestDto from a client record (``schema``: property -> type)."""
    body: dict[str, Any] = {
        "name": fields.get("name"), "firstName": fields.get("given_name"),
        "lastName": fields.get("family_name"), "middleName": fields.get("additional_names"),
        "title": fields.get("prefix"), "gender": fields.get("gender"),
        "dateOfBirth": fields.get("birthday"), "clientCode": fields.get("code"),
        "taxNumber": fields.get("tax_number"), "businessNumber": fields.get("business_number"),
        "email": _first(fields.get("emails"), "address"),
        "phone": _first(fields.get("phones"), "number", "work") or next(
            (p["number"] for p in fields.get("phones") or [] if "fax" not in (p.get("types") or [])), None),
        "fax": _first(fields.get("phones"), "number", "fax"),
        "webSite": _first(fields.get("urls"), "value"),
        **_address_back(fields, "work", ""), **_address_back(fields, "postal", "postal"),
        "accountManagerUuid": refs.get("manager") or "",
    }
    props = props_of(fields)
    for name, value in props.items():
        target = "webSite" if name == "website" else name
        if target in schema and target not in body:
            body[target] = _typed_back(value, schema[target])
    status = fields.get("status")
    if status is not None:
        body["isProspect"] = "Yes" if status == "prospect" else "No"
    return {k: v for k, v in body.items() if k in schema}


# -- contacts -----------------------------------------------------------------------------
CONTACT_NAMED = {"uuid", "name", "mobile", "phone", "email", "position", "isPrimary", "isDeleted"}


def contact_fields(raw: dict[str, Any], client: str) -> tuple[Fields, Refs]:
    f: Fields = {"name": raw.get("name"), "title": raw.get("position")}
    if raw.get("isPrimary") is not None:
        f["primary"] = yes(raw["isPrimary"])
    _contact_points(f, raw, {"phone": "work", "mobile": "cell"})
    ex = extras_of(raw, CONTACT_NAMED)
    if ex:
        f["extras"] = ex
    return {k: v for k, v in f.items() if v is not None}, {"client": client}


def contact_body(fields: Fields, refs: Refs) -> dict[str, Any]:
    props = props_of(fields)
    body: dict[str, Any] = {
        "name": fields.get("name"), "position": fields.get("title"),
        "email": _first(fields.get("emails"), "address"),
        "phone": _first(fields.get("phones"), "number", "work"),
        "mobile": _first(fields.get("phones"), "number", "cell"),
        "salutation": props.get("salutation"), "addressee": props.get("addressee"),
    }
    if fields.get("primary") is not None:
        body["isPrimary"] = "Yes" if fields["primary"] else "No"
    return body


# -- staff --------------------------------------------------------------------------------
STAFF_NAMED = {"uuid", "name", "email", "phone", "mobile", "address", "payrollCode"}


def staff_fields(raw: dict[str, Any]) -> tuple[Fields, Refs]:
    f: Fields = {"name": raw.get("name"), "code": raw.get("payrollCode")}
    _contact_points(f, raw, {"phone": "work", "mobile": "cell"})
    if raw.get("address"):
        f["addresses"] = [{"street": raw["address"]}]  # XPM holds one free-text address
    ex = extras_of(raw, STAFF_NAMED)
    if ex:
        f["extras"] = ex
    return {k: v for k, v in f.items() if v is not None}, {}


def staff_body(fields: Fields) -> dict[str, Any]:
    addr = (fields.get("addresses") or [{}])[0]
    street = addr.get("street")
    if street and any(addr.get(k) for k in ("locality", "region", "postcode", "country")):
        street = ", ".join(str(addr[k]) for k in ("street", "locality", "region", "postcode",
                                                  "country") if addr.get(k))
    return {"name": fields.get("name"), "payrollCode": fields.get("code"),
            "email": _first(fields.get("emails"), "address"),
            "phone": _first(fields.get("phones"), "number", "work"),
            "mobile": _first(fields.get("phones"), "number", "cell"), "address": street}


# -- jobs ---------------------------------------------------------------------------------
JOB_NAMED = {"id", "uuid", "name", "description", "state", "type", "startDate", "dueDate",
             "completedDate", "budget", "client", "manager", "partner", "tasks"}


def job_fields(raw: dict[str, Any], custom: list[dict[str, Any]]) -> tuple[Fields, Refs]:
    f: Fields = {"code": raw.get("id"), "name": raw.get("name"),
                 "description": raw.get("description"), "state": raw.get("state"),
                 "type": raw.get("type"), "start_date": raw.get("startDate"),
                 "due_date": raw.get("dueDate"), "completed_date": raw.get("completedDate"),
                 "budget": raw.get("budget")}
    ex = extras_of(raw, JOB_NAMED)
    if ex:
        f["extras"] = ex
    f.update(custom_fields_of(custom))
    refs: Refs = {}
    for key in ("client", "manager", "partner"):
        party = raw.get(key) or {}
        if party.get("uuid"):
            refs[key] = party["uuid"]
    return {k: v for k, v in f.items() if v is not None}, refs


def job_body(fields: Fields, refs: Refs) -> dict[str, Any]:
    props = props_of(fields)
    return {"name": fields.get("name"), "description": fields.get("description"),
            "startDate": fields.get("start_date"), "dueDate": fields.get("due_date"),
            "budget": fields.get("budget"), "clientNumber": props.get("clientOrderNumber")}


# -- job tasks ----------------------------------------------------------------------------
TASK_NAMED = {"uuid", "name", "description", "startDate", "dueDate", "completed", "assigned"}


def task_fields(raw: dict[str, Any], job: str) -> tuple[Fields, Refs]:
    f: Fields = {"summary": raw.get("name"), "description": raw.get("description"),
                 "start": raw.get("startDate"), "due": raw.get("dueDate")}
    if raw.get("completed") is not None:
        f["status"] = "COMPLETED" if raw["completed"] else "NEEDS-ACTION"
    ex = extras_of(raw, TASK_NAMED - {"assigned"} if len(raw.get("assigned") or []) > 1 else TASK_NAMED)
    if ex:
        f["extras"] = ex
    refs: Refs = {"job": job}
    assigned = raw.get("assigned") or []
    if assigned and assigned[0].get("uuid"):
        refs["assignee"] = assigned[0]["uuid"]
    return {k: v for k, v in f.items() if v is not None}, refs


def task_body(fields: Fields) -> dict[str, Any]:
    props = props_of(fields)
    est = props.get("estimatedMinutes")
    return {"label": fields.get("summary"), "description": fields.get("description"),
            "startDate": fields.get("start"), "dueDate": fields.get("due"),
            "estimatedMinutes": int(est) if est and est.isdigit() else None}


# -- custom field definitions -------------------------------------------------------------
USES = {"useClient": "client", "useContact": "contact", "useJob": "job", "useJobTask": "task",
        "useLead": "lead", "useSupplier": "supplier", "useJobCost": "job_cost",
        "useJobTime": "time"}
DEF_NAMED = {"uuid", "name", "type", "options", *USES}


def definition_fields(raw: dict[str, Any]) -> tuple[Fields, Refs]:
    options = raw.get("options") or ""
    f: Fields = {"name": raw.get("name") or "", "type": (raw.get("type") or "text").lower(),
                 "options": [o for o in options.splitlines() if o.strip()],
                 "applies_to": [v for k, v in USES.items() if raw.get(k)]}
    ex = extras_of(raw, DEF_NAMED)
    if ex:
        f["extras"] = ex
    return {k: v for k, v in f.items() if v not in (None, [], {})}, {}


def definition_body(fields: Fields) -> dict[str, Any]:
    props = props_of(fields)
    applies = set(fields.get("applies_to") or [])
    xtype = str(fields.get("type") or "text")
    body: dict[str, Any] = {"name": fields.get("name"), "type": xtype[:1].upper() + xtype[1:],
                            "linkUrl": props.get("linkUrl"),
                            "options": list(fields.get("options") or []) or None}
    for k, v in USES.items():
        body[k] = v in applies
    return body


# -- tax returns (client fields) ----------------------------------------------------------
DEFAULT_TAX_FIELDS = {"year": "Tax Year", "status": "Tax Return Status",
                      "due_date": "Tax Return Due", "lodged_on": "Tax Return Lodged",
                      "assessed_on": "Tax Assessment Date", "amount": "Tax Assessed Amount",
                      "reference": "Tax Assessment Reference"}


def has_tax_return(raw: dict[str, Any]) -> bool:
    return yes(raw.get("prepareTaxReturn")) or bool(raw.get("returnType"))


def tax_fields(raw: dict[str, Any], custom: list[dict[str, Any]],
               names: dict[str, str]) -> tuple[Fields, Refs]:
    by_name = custom_fields_of(custom)
    f: Fields = {"form": raw.get("returnType")}
    for model, xpm in names.items():
        v = by_name.get(f"custom.{xpm}")
        if v is not None:
            if model == "year":
                try:
                    v = int(v)
                except (TypeError, ValueError):
                    pass
            f[model] = v
    ex = extras_of({k: raw.get(k) for k in TAX_NAMED - {"returnType"}}, set())
    if ex:
        f["extras"] = ex
    return {k: v for k, v in f.items() if v is not None}, {"client": raw["uuid"]}


def tax_body(fields: Fields) -> dict[str, Any]:
    props = props_of(fields)
    body = {k: props.get(k) for k in TAX_NAMED - {"returnType"}}
    body["returnType"] = fields.get("form")
    body.setdefault("prepareTaxReturn", "Yes")
    if body["prepareTaxReturn"] is None:
        body["prepareTaxReturn"] = "Yes"
    return body


def tax_custom_values(fields: Fields, names: dict[str, str]) -> dict[str, Any]:
    return {xpm: fields.get(model) for model, xpm in names.items()}
