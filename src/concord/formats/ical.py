"""iCalendar (RFC 5545) ↔ the canonical task (VTODO) and event (VEVENT) models.

Reading uses the ``icalendar`` library (unfolding, parameters, dates, time zones, recurrence
values). ``read`` gives ``(uid, fields)``: the named properties as typed fields — times in
Concord's notation (``2026-03-01`` date, ``…T09:00:00Z`` UTC, ``…T09:00:00`` floating,
``…T09:00:00[Europe/London]`` zoned, the TZID kept verbatim), attendees with name, role,
status, RSVP and kind, recurrence kept whole (RRULE, EXDATE, RDATE, EXRULE) and each
RECURRENCE-ID instance as an override — and everything else in ``fields["extras"]``:
unnamed properties and parameters, alarms and other sub-components, calendar-level properties
(PRODID, X-WR-CALNAME), and time zones that are not IANA names (Outlook's "W. Europe Standard
Time"). Writing assembles the text itself from those fields, so what was read is what is
written: the same properties, parameters and components, on any CalDAV server.

Not content: DTSTAMP (when a copy was written; a new copy gets a new stamp, an update keeps
the spoke's) and VTIMEZONEs of IANA zones (rebuilt from the zone database when written).

A task's groupware status (Not Started, In Progress, Completed, Waiting on Others, Deferred)
has no exact VTODO counterpart: it is written as the nearest VTODO ``STATUS`` (for every other
client) and, when that status does not read back as the same groupware status, verbatim in
``X-CONCORD-STATUS`` too (so nothing is lost on the way back).
If another client later changes ``STATUS``, the derived value wins over the stale X- value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

import icalendar

from concord.formats.vcard import fold
from concord.model import compact, written_uid
from concord.records import usable_id

FORMAT = "ical"
PRODID = "-//Concord//EN"

TASK_FIELDS: tuple[str, ...] = (
    "uid", "summary", "description", "status", "categories", "due", "start", "completed",
    "priority", "percent_complete", "classification", "url", "sequence", "recurrence", "extras")
EVENT_FIELDS: tuple[str, ...] = (
    "uid", "summary", "description", "location", "start", "end", "duration", "all_day",
    "attendees", "organizer", "status", "categories", "priority", "classification",
    "transparency", "url", "sequence", "geo", "recurrence", "overrides", "extras")

#: groupware task status → VTODO STATUS
TASK_STATUS_TO_VTODO: dict[str, str] = {
    "Not Started": "NEEDS-ACTION",
    "In Progress": "IN-PROCESS",
    "Completed": "COMPLETED",
    "Waiting on Others": "IN-PROCESS",
    "Deferred": "NEEDS-ACTION",
    "Cancelled": "CANCELLED",
    # practice statuses, for links that carry them verbatim
    "Open": "NEEDS-ACTION",
    "Draft": "NEEDS-ACTION",
    "In Process": "IN-PROCESS",
    "Approved": "IN-PROCESS",
    "Pending Approval": "IN-PROCESS",
    "Rejected": "CANCELLED",
    "Canceled": "CANCELLED",
}
#: VTODO STATUS → groupware task status, for items another client wrote
VTODO_TO_TASK_STATUS: dict[str, str] = {
    "NEEDS-ACTION": "Not Started",
    "IN-PROCESS": "In Progress",
    "COMPLETED": "Completed",
    "CANCELLED": "Cancelled",
}
X_STATUS = "X-CONCORD-STATUS"

#: text properties -> field (both kinds)
_TEXT = {"SUMMARY": "summary", "DESCRIPTION": "description", "LOCATION": "location",
         "URL": "url", "CLASS": "classification", "TRANSP": "transparency"}
_TIMES = {"DTSTART": "start", "DTEND": "end", "DUE": "due", "COMPLETED": "completed",
          "RECURRENCE-ID": "recurrence_id"}
_NAMED_EVENT = frozenset({"UID", "SUMMARY", "DESCRIPTION", "LOCATION", "DTSTART", "DTEND",
                          "DURATION", "STATUS", "CATEGORIES", "PRIORITY", "CLASS", "URL",
                          "SEQUENCE", "TRANSP", "GEO", "ORGANIZER", "ATTENDEE", "RRULE",
                          "EXDATE", "RDATE", "EXRULE", "RECURRENCE-ID", "DTSTAMP"})
_NAMED_TASK = frozenset({"UID", "SUMMARY", "DESCRIPTION", "STATUS", "CATEGORIES", "PRIORITY",
                         "CLASS", "URL", "SEQUENCE", "DTSTART", "DUE", "COMPLETED",
                         "PERCENT-COMPLETE", "RRULE", "EXDATE", "RDATE", "EXRULE", "DTSTAMP",
                         X_STATUS})
_SINGLE = frozenset({"UID", "SUMMARY", "DESCRIPTION", "LOCATION", "DTSTART", "DTEND",
                     "DURATION", "STATUS", "CATEGORIES", "PRIORITY", "CLASS", "URL", "SEQUENCE",
                     "TRANSP", "GEO", "ORGANIZER", "DUE", "COMPLETED", "PERCENT-COMPLETE",
                     "RECURRENCE-ID", "DTSTAMP", X_STATUS})
#: parameters a property's own field covers (not kept as extras)
_COVERED = {"DTSTART": {"TZID", "VALUE"}, "DTEND": {"TZID", "VALUE"}, "DUE": {"TZID", "VALUE"},
            "COMPLETED": {"TZID", "VALUE"}, "RECURRENCE-ID": {"TZID", "VALUE", "RANGE"}}
_ATTENDEE_PARAMS = {"CN": "name", "ROLE": "role", "PARTSTAT": "status", "RSVP": "rsvp",
                    "CUTYPE": "kind"}


class ICalError(ValueError):
    """Text that is not an iCalendar object Concord can read; says where and why."""


# -- times ------------------------------------------------------------------------------

def fmt_time(dt: Any, tzid: str | None = None) -> str:
    """A DATE / DATE-TIME in Concord's notation (see the module docstring)."""
    if isinstance(dt, datetime):
        if tzid:
            return dt.replace(tzinfo=None).isoformat(timespec="seconds") + f"[{tzid}]"
        if dt.tzinfo is not None:
            return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return dt.isoformat(timespec="seconds")
    if isinstance(dt, date):
        return dt.isoformat()
    if isinstance(dt, timedelta):
        return str(icalendar.vDuration(dt).to_ical().decode())  # type: ignore[no-untyped-call]
    return str(dt)


_ZONED = re.compile(r"^(.*)\[(.+)\]$")


def split_time(text: str) -> tuple[str, str | None]:
    """(ISO time, TZID or None) of a time in Concord's notation."""
    m = _ZONED.match(text)
    return (m.group(1), m.group(2)) if m else (text, None)


def _ical_time(text: str) -> tuple[str, dict[str, str]]:
    """(iCalendar value, parameters) for a time in Concord's notation."""
    iso, tzid = split_time(text.strip())
    if len(iso) == 10:
        d = date.fromisoformat(iso)
        return d.strftime("%Y%m%d"), {"VALUE": "DATE"}
    utc = iso.endswith("Z")
    dt = datetime.fromisoformat(iso[:-1] if utc else iso)
    if dt.tzinfo is not None:  # an offset: write it in UTC
        dt, utc = dt.astimezone(UTC).replace(tzinfo=None), True
    value = dt.strftime("%Y%m%dT%H%M%S") + ("Z" if utc else "")
    return value, ({"TZID": tzid} if tzid and not utc else {})


def parse_time(text: str) -> date | datetime:
    """A time in Concord's notation as a Python date/datetime (zoned: naive wall time)."""
    iso, _ = split_time(text)
    if len(iso) == 10:
        return date.fromisoformat(iso)
    if iso.endswith("Z"):
        return datetime.fromisoformat(iso[:-1]).replace(tzinfo=UTC)
    return datetime.fromisoformat(iso)


# -- reading ------------------------------------------------------------------------------

def parse(text: str, *, name: str = "iCalendar") -> icalendar.Calendar:
    """One VCALENDAR, strictly: components nested and closed, every property readable
    (icalendar alone is lenient and would keep a broken line as an error note)."""
    if text[:1] == "\ufeff":
        text = text[1:]
    _check_nesting(text, name)
    try:
        cal = icalendar.Calendar.from_ical(text)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ICalError(f"{name}: not valid iCalendar ({exc}) "
                        "(fix: correct or remove the item on the server)") from exc
    if not isinstance(cal, icalendar.Calendar):
        raise ICalError(f"{name}: does not start with BEGIN:VCALENDAR "
                        "(fix: the item must hold one VCALENDAR)")
    for comp in cal.walk():
        for prop, msg in getattr(comp, "errors", ()) or ():
            raise ICalError(f"{name}: {comp.name} has an unreadable {prop or 'line'} ({msg}) "
                            "(fix: correct that line, or remove it)")
    if cal.get("VERSION") is None:
        raise ICalError(f"{name}: the VCALENDAR has no VERSION (fix: add VERSION:2.0)")
    return cal


def _check_nesting(text: str, name: str) -> None:
    stack: list[str] = []
    n = 0
    for n, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        head = line[:6].upper()
        if head == "BEGIN:":
            stack.append(line[6:].strip().upper())
        elif head[:4] == "END:":
            what = line[4:].strip().upper()
            if not stack:
                raise ICalError(f"{name}: line {n}: END:{what} with no BEGIN "
                                "(fix: correct or remove that line)")
            if stack[-1] != what:
                raise ICalError(f"{name}: line {n}: END:{what} closes BEGIN:{stack[-1]} "
                                f"(fix: end it with END:{stack[-1]})")
            stack.pop()
            if not stack and what == "VCALENDAR":
                rest = text.replace("\r\n", "\n").split("\n")[n:]
                if any(r.strip() for r in rest):
                    raise ICalError(f"{name}: text after END:VCALENDAR at line {n + 1} "
                                    "(fix: one VCALENDAR per item)")
                return
    if stack:
        raise ICalError(f"{name}: BEGIN:{stack[-1]} is never ended (fix: the item is cut "
                        "short; restore it or re-export it)")


def components(cal: icalendar.Calendar, kind: str, *, name: str = "iCalendar"
               ) -> tuple[Any, list[Any]]:
    """(master, overrides) of the one VTODO/VEVENT object in ``cal``."""
    comps = [c for c in cal.subcomponents if c.name == kind]
    if not comps:
        found = sorted({str(c.name) for c in cal.subcomponents if c.name != "VTIMEZONE"})
        raise ICalError(f"{name}: holds no {kind} (found {', '.join(found) or 'nothing'})")
    uids = {str(c.get("UID", "")) for c in comps}
    if len(uids) > 1:
        raise ICalError(f"{name}: holds {len(uids)} different UIDs "
                        "(fix: one object per resource; split it on the server)")
    if uids == {""}:
        raise ICalError(f"{name}: the {kind} has no UID (fix: give it a UID)")
    masters = [c for c in comps if c.get("RECURRENCE-ID") is None]
    if len(masters) > 1:
        raise ICalError(f"{name}: holds {len(masters)} {kind}s with one UID and no "
                        "RECURRENCE-ID (fix: keep one, or give the others a RECURRENCE-ID)")
    if masters:
        return masters[0], [c for c in comps if c is not masters[0]]
    return comps[0], comps[1:]  # overrides only (an invitation to one instance)


def main_component(cal: icalendar.Calendar, kind: str, *, name: str = "iCalendar") -> Any:
    return components(cal, kind, name=name)[0]


def uid_of(comp: Any) -> str | None:
    v = comp.get("UID")
    return str(v) if v is not None and str(v) else None


def _params(prop: Any, skip: Iterable[str] = ()) -> dict[str, list[str]]:
    params = getattr(prop, "params", None) or {}
    skip = set(skip)
    out: dict[str, list[str]] = {}
    for k, v in params.items():
        k = str(k).upper()
        if k in skip:
            continue
        out[k] = [str(x) for x in v] if isinstance(v, list | tuple) else [str(v)]
    return out


def _raw(prop: Any) -> str:
    data = prop.to_ical() if hasattr(prop, "to_ical") else str(prop).encode()
    return data.decode() if isinstance(data, bytes) else str(data)


def _mail(addr: Any) -> str:
    s = str(addr)
    return s[7:] if s[:7].lower() == "mailto:" else s


def _attendee(prop: Any) -> dict[str, Any]:
    params = _params(prop)
    out: dict[str, Any] = {"email": _mail(prop)}
    for param, key in _ATTENDEE_PARAMS.items():
        vals = params.pop(param, None)
        if vals:
            out[key] = (vals[0].upper() == "TRUE") if key == "rsvp" else vals[0]
    if params:
        out["params"] = params
    return out


def _times(prop: Any) -> list[str]:
    """Every value of an EXDATE / RDATE property (periods as start/end)."""
    tzid = (getattr(prop, "params", {}) or {}).get("TZID")
    out = []
    for d in getattr(prop, "dts", []):
        v = d.dt
        if isinstance(v, tuple):
            out.append(f"{fmt_time(v[0], tzid)}/{fmt_time(v[1], tzid)}")
        else:
            out.append(fmt_time(v, tzid))
    return out


def _fields(comp: Any, kind: str, owned: frozenset[str], *, override: bool = False
            ) -> dict[str, Any]:
    named = _NAMED_TASK if kind == "VTODO" else _NAMED_EVENT
    out: dict[str, Any] = {}
    props: list[dict[str, Any]] = []
    eparams: dict[str, dict[str, list[str]]] = {}
    forms: dict[str, str] = {}
    seen: set[str] = set()
    rec: dict[str, list[str]] = {}
    for pname, prop in comp.property_items(recursive=False):
        pname = pname.upper()
        if pname in ("BEGIN", "END") or pname in owned:
            continue
        if pname not in named or (pname in _SINGLE and pname in seen):
            props.append(compact({"name": pname, "value": _raw(prop), "params": _params(prop)}))
            continue
        seen.add(pname)
        if pname in ("DTSTAMP", X_STATUS):
            continue
        if pname in ("ATTENDEE", "ORGANIZER"):
            a = _attendee(prop)
            if pname == "ORGANIZER":
                out["organizer"] = a
            else:
                out.setdefault("attendees", []).append(a)
            continue
        if pname in ("RRULE", "EXRULE"):
            rec.setdefault("rules" if pname == "RRULE" else "exrules", []).append(_raw(prop))
            continue
        if pname in ("EXDATE", "RDATE"):
            rec.setdefault("exdates" if pname == "EXDATE" else "rdates", []).extend(_times(prop))
            continue
        params = _params(prop, _COVERED.get(pname, ()))
        if params:
            eparams[pname] = params
        if pname in _TIMES:
            tzid = (prop.params or {}).get("TZID")
            key = _TIMES[pname]
            if pname == "RECURRENCE-ID" and not override:
                continue
            out[key] = fmt_time(prop.dt, str(tzid) if tzid else None)
            if pname == "RECURRENCE-ID":
                rng = (prop.params or {}).get("RANGE")
                if rng:
                    out["range"] = str(rng)
            elif pname == "DTSTART" and kind == "VEVENT" and not isinstance(prop.dt, datetime):
                out["all_day"] = True
        elif pname in _TEXT:
            v = str(prop)
            if v:
                out[_TEXT[pname]] = v.upper() if pname in ("CLASS", "TRANSP") else v
        elif pname == "UID":
            uid = str(prop)
            if uid and not usable_id(uid):
                out["uid"] = uid
        elif pname == "STATUS":
            out["status"] = str(prop).upper()
        elif pname == "CATEGORIES":
            cats = getattr(prop, "cats", None)
            vals = [str(c) for c in (cats if cats is not None else [prop])]
            if vals:
                out["categories"] = vals
        elif pname in ("PRIORITY", "SEQUENCE", "PERCENT-COMPLETE"):
            try:
                n = int(str(_raw(prop)).strip())
            except ValueError:
                props.append(compact({"name": pname, "value": _raw(prop),
                                      "params": eparams.pop(pname, {})}))
                continue
            key = {"PRIORITY": "priority", "SEQUENCE": "sequence",
                   "PERCENT-COMPLETE": "percent_complete"}[pname]
            out[key] = n
        elif pname == "DURATION":
            out["duration"] = _raw(prop)
        elif pname == "GEO":
            out["geo"] = _raw(prop)
    if kind == "VTODO":
        vstatus = str(comp.get("STATUS") or "NEEDS-ACTION").upper()
        kept = comp.get(X_STATUS)
        kept_s = str(kept) if kept is not None else None
        if kept_s and TASK_STATUS_TO_VTODO.get(kept_s, "NEEDS-ACTION") == vstatus:
            out["status"] = kept_s
        else:
            out["status"] = VTODO_TO_TASK_STATUS.get(vstatus, vstatus.title())
        if comp.get("STATUS") is None and kept is None:
            forms["STATUS"] = "absent"
    if rec and not override:
        out["recurrence"] = rec
    elif rec:  # an override with its own rule: keep it as written
        for k, vals in rec.items():
            pname = {"rules": "RRULE", "exrules": "EXRULE", "exdates": "EXDATE",
                     "rdates": "RDATE"}[k]
            for v in vals:
                value, p = (_ical_time(v) if k in ("exdates", "rdates") and _period(v) is None
                            else (v, {}))
                props.append(compact({"name": pname, "value": value,
                                      "params": {a: [b] for a, b in p.items()}}))
    subs = [c.to_ical().decode() for c in comp.subcomponents]
    extras = compact({"format": FORMAT, "props": props, "params": eparams,
                      "components": subs, "forms": forms})
    if len(extras) > 1:
        out["extras"] = extras
    return out


def read(text: str, kind: str, *, name: str = "iCalendar", owned: Iterable[str] = ()
         ) -> tuple[str | None, dict[str, Any]]:
    """(UID, model fields) of the one ``kind`` object in ``text``."""
    cal = parse(text, name=name)
    return read_calendar(cal, kind, name=name, owned=owned)


def read_calendar(cal: icalendar.Calendar, kind: str, *, name: str = "iCalendar",
                  owned: Iterable[str] = ()) -> tuple[str | None, dict[str, Any]]:
    master, overrides = components(cal, kind, name=name)
    owned_set = frozenset(owned)
    uid = uid_of(master)
    try:
        if master.get("RECURRENCE-ID") is not None:  # instances only, no master
            instances = [master, *overrides]
            fields: dict[str, Any] = {"uid": uid} if uid and not usable_id(uid) else {}
            extras: dict[str, Any] = {"format": FORMAT, "forms": {"MASTER": "absent"}}
        else:
            instances = overrides
            fields = _fields(master, kind, owned_set)
            extras = fields.pop("extras", None) or {"format": FORMAT}
        if instances and kind == "VEVENT":
            fields["overrides"] = [_override(c, kind, owned_set) for c in instances]
        elif instances:  # task instances: not in the model, kept as written
            extras["siblings"] = [c.to_ical().decode() for c in instances]
    except (ValueError, TypeError, AttributeError) as exc:
        raise ICalError(f"{name}: {exc} (fix: correct the item on the server)") from exc
    calendar_props = [compact({"name": k.upper(), "value": _raw(v), "params": _params(v)})
                      for k, v in cal.property_items(recursive=False)
                      if k.upper() not in ("BEGIN", "END", "VERSION")
                      and not (k.upper() == "PRODID" and str(v) == PRODID)]
    if calendar_props:
        extras["calendar"] = calendar_props
    others = [c.to_ical().decode() for c in cal.subcomponents
              if (c.name == "VTIMEZONE" and not _iana(str(c.get("TZID", ""))))
              or c.name not in ("VTIMEZONE", kind)]
    if others:
        extras["siblings"] = [*extras.get("siblings", []), *others]
    if len(extras) > 1:
        fields["extras"] = extras
    return uid, fields


def _override(comp: Any, kind: str, owned: frozenset[str]) -> dict[str, Any]:
    out = _fields(comp, kind, owned, override=True)
    out.pop("uid", None)
    return out


@cache
def _iana(tzid: str) -> bool:
    import zoneinfo

    if not tzid or ("/" not in tzid and tzid not in ("UTC", "GMT")):
        return False
    try:
        zoneinfo.ZoneInfo(tzid)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


# -- writing ------------------------------------------------------------------------------

def _esc(value: str) -> str:
    return (value.replace("\\", "\\\\").replace("\r\n", "\n").replace("\n", "\\n")
            .replace(",", "\\,").replace(";", "\\;"))


def _pvalue(v: str) -> str:
    return f'"{v}"' if any(c in v for c in ':;,') and not v.startswith('"') else v


def _ptext(params: dict[str, Any] | None) -> str:
    if not params:
        return ""
    out = []
    for k, vals in params.items():
        if isinstance(vals, str):
            vals = [vals]
        out.append(f";{k}={','.join(_pvalue(str(v)) for v in vals)}" if vals else f";{k}")
    return "".join(out)


def _time_line(name: str, text: str, extra: dict[str, list[str]] | None,
               range_: str | None = None, force_date: bool = False) -> str:
    value, params = _ical_time(text)
    if force_date and "VALUE" not in params:
        d = parse_time(text)
        value, params = (d.date() if isinstance(d, datetime) else d).strftime("%Y%m%d"), {
            "VALUE": "DATE"}
    p: dict[str, Any] = dict(params)
    if range_:
        p["RANGE"] = range_
    p.update(extra or {})
    return f"{name}{_ptext(p)}:{value}"


def _period(v: str) -> tuple[str, str] | None:
    """(start, end or duration) of a period value; None for a single time. The '/' of a
    period is outside the [zone] of a zoned time."""
    depth = 0
    for i, ch in enumerate(v):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "/" and depth == 0:
            return v[:i], v[i + 1:]
    return None


def _times_lines(name: str, values: list[str]) -> list[str]:
    """EXDATE / RDATE lines, one per kind of value (TZID, date, UTC, period)."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for v in values:
        period = _period(v)
        if period is not None:
            a, b = period
            va, pa = _ical_time(a)
            vb, _ = _ical_time(b) if b[:1] != "P" else (b, {})
            key = ("PERIOD", *(f"{k}={x}" for k, x in pa.items() if k == "TZID"))
            groups.setdefault(key, []).append(f"{va}/{vb}")
        else:
            value, params = _ical_time(v)
            key = tuple(f"{k}={x}" for k, x in params.items())
            groups.setdefault(key, []).append(value)
    out = []
    for key, vals in groups.items():
        params = dict(k.split("=", 1) for k in key if "=" in k)
        if key[:1] == ("PERIOD",):
            params["VALUE"] = "PERIOD"
        out.append(f"{name}{_ptext(params)}:{','.join(vals)}")
    return out


def _attendee_line(name: str, a: dict[str, Any]) -> str:
    params: dict[str, Any] = {}
    for param, key in _ATTENDEE_PARAMS.items():
        v = a.get(key)
        if v is not None:
            params[param] = ("TRUE" if v else "FALSE") if key == "rsvp" else str(v)
    params.update(a.get("params") or {})
    email = str(a["email"])
    value = email if ":" in email else f"mailto:{email}"
    return f"{name}{_ptext(params)}:{value}"


def _component_lines(kind: str, fields: dict[str, Any], uid: str | None, dtstamp: str,
                     *, override: bool = False) -> list[str]:
    extras = fields.get("extras") or {}
    eparams: dict[str, dict[str, list[str]]] = extras.get("params") or {}
    forms: dict[str, str] = extras.get("forms") or {}
    out = [f"BEGIN:{kind}"]
    if uid is not None:
        out.append(f"UID{_ptext(eparams.get('UID'))}:{_esc(uid)}")
    out.append(f"DTSTAMP:{dtstamp}")
    if override:
        out.append(_time_line("RECURRENCE-ID", fields["recurrence_id"],
                              eparams.get("RECURRENCE-ID"), fields.get("range")))

    def text(prop: str, key: str, upper: bool = False) -> None:
        v = fields.get(key)
        if v is not None and v != "":
            v = str(v).upper() if upper else str(v)
            out.append(f"{prop}{_ptext(eparams.get(prop))}:{v if prop == 'URL' else _esc(v)}")

    all_day = bool(fields.get("all_day")) and kind == "VEVENT"
    for prop, key in (("DTSTART", "start"), ("DTEND", "end"), ("DUE", "due"),
                      ("COMPLETED", "completed")):
        v = fields.get(key)
        if v:
            force = all_day and prop in ("DTSTART", "DTEND")
            out.append(_time_line(prop, str(v), eparams.get(prop), force_date=force))
    if fields.get("duration"):
        out.append(f"DURATION{_ptext(eparams.get('DURATION'))}:{fields['duration']}")
    text("SUMMARY", "summary")
    text("DESCRIPTION", "description")
    text("LOCATION", "location")
    status = fields.get("status")
    if kind == "VTODO" and status is not None:
        vstatus = TASK_STATUS_TO_VTODO.get(str(status), "NEEDS-ACTION")
        if not (forms.get("STATUS") == "absent" and status == "Not Started"):
            out.append(f"STATUS{_ptext(eparams.get('STATUS'))}:{vstatus}")
        if VTODO_TO_TASK_STATUS.get(vstatus) != status:  # kept verbatim for the way back
            out.append(f"{X_STATUS}:{_esc(str(status))}")
    else:
        text("STATUS", "status", upper=True)
    if fields.get("categories"):
        out.append(f"CATEGORIES{_ptext(eparams.get('CATEGORIES'))}:"
                   + ",".join(_esc(str(c)) for c in fields["categories"]))
    for prop, key in (("PRIORITY", "priority"), ("SEQUENCE", "sequence"),
                      ("PERCENT-COMPLETE", "percent_complete")):
        if fields.get(key) is not None:
            out.append(f"{prop}{_ptext(eparams.get(prop))}:{int(fields[key])}")
    text("CLASS", "classification", upper=True)
    text("TRANSP", "transparency", upper=True)
    text("URL", "url")
    if fields.get("geo"):
        out.append(f"GEO{_ptext(eparams.get('GEO'))}:{fields['geo']}")
    if fields.get("organizer"):
        out.append(_attendee_line("ORGANIZER", fields["organizer"]))
    for a in fields.get("attendees") or []:
        out.append(_attendee_line("ATTENDEE", a))
    rec = fields.get("recurrence") or {}
    out.extend(f"RRULE:{r}" for r in rec.get("rules") or [])
    out.extend(f"EXRULE:{r}" for r in rec.get("exrules") or [])
    out.extend(_times_lines("EXDATE", list(rec.get("exdates") or [])))
    out.extend(_times_lines("RDATE", list(rec.get("rdates") or [])))
    for p in extras.get("props") or []:
        out.append(f"{p['name']}{_ptext(p.get('params'))}:{p.get('value', '')}")
    lines = [part for line in out for part in fold(line)]
    for sub in extras.get("components") or []:
        lines.extend(_text_lines(sub))
    lines.append(f"END:{kind}")
    return lines


def _text_lines(text: str) -> list[str]:
    return [ln for ln in text.replace("\r\n", "\n").split("\n") if ln]


@cache
def _vtimezone(tzid: str) -> str | None:
    try:
        return str(icalendar.Timezone.from_tzid(tzid).to_ical().decode())
    except Exception:
        return None


def _zones_used(fields: dict[str, Any]) -> list[str]:
    found: list[str] = []

    def add(text: Any) -> None:
        if isinstance(text, str) and "]" in text:
            tz = split_time((_period(text) or (text, ""))[0])[1]
            if tz and tz not in found:
                found.append(tz)

    for part in [fields, *(fields.get("overrides") or [])]:
        for k in ("start", "end", "due", "completed", "recurrence_id"):
            add(part.get(k))
    rec = fields.get("recurrence") or {}
    for v in [*(rec.get("exdates") or []), *(rec.get("rdates") or [])]:
        add(v)
    return found


def build(kind: str, fields: dict[str, Any], uid: str, *, dtstamp: str | None = None) -> str:
    """A VCALENDAR holding one ``kind`` object for ``fields`` (model fields), overrides,
    alarms, time zones and extras included. ``uid`` is used unless the fields carry the
    source's own ``uid``."""
    extras = fields.get("extras") or {}
    if extras.get("format") not in (None, FORMAT):
        extras = {}
    if kind == "VEVENT" and not fields.get("start") and not (extras.get("forms") or {}).get(
            "MASTER"):
        raise ICalError(f"event {uid}: has no start (fix: give the event a start date)")
    stamp = dtstamp or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    the_uid = written_uid(fields, uid)
    cal_props = extras.get("calendar") or []
    out = ["BEGIN:VCALENDAR", "VERSION:2.0"]
    if not any(p["name"] == "PRODID" for p in cal_props):
        out.append(f"PRODID:{PRODID}")
    for p in cal_props:
        out.append(f"{p['name']}{_ptext(p.get('params'))}:{p.get('value', '')}")
    lines = [part for line in out for part in fold(line)]
    siblings = list(extras.get("siblings") or [])
    have = {m.group(1).strip() for s in siblings
            for m in [re.search(r"^TZID[^:\r\n]*:(.*)$", s, re.M)] if m}
    for tz in _zones_used(fields):
        if tz not in have and _iana(tz):
            vtz = _vtimezone(tz)
            if vtz:
                lines.extend(_text_lines(vtz))
    for s in siblings:
        if s.startswith("BEGIN:VTIMEZONE"):
            lines.extend(_text_lines(s))
    if not (extras.get("forms") or {}).get("MASTER"):
        lines.extend(_component_lines(kind, fields, the_uid, stamp))
    for o in fields.get("overrides") or []:
        lines.extend(_component_lines(kind, o, the_uid, stamp, override=True))
    for s in siblings:
        if not s.startswith("BEGIN:VTIMEZONE"):
            lines.extend(_text_lines(s))
    lines.append("END:VCALENDAR")
    return "".join(line + "\r\n" for line in lines)


def patch(original: str, kind: str, fields: dict[str, Any], *, mapped: Iterable[str],
          name: str = "iCalendar", owned: Iterable[str] = ()) -> str:
    """The object at a spoke after writing ``fields`` into it: fields not in ``mapped`` keep
    what the object holds (its extras too, unless ``extras`` is mapped); the spoke's DTSTAMP
    is kept. The original text is returned unchanged when nothing it holds changes."""
    cal = parse(original, name=name)
    uid, old = read_calendar(cal, kind, name=name, owned=owned)
    names = set(TASK_FIELDS if kind == "VTODO" else EVENT_FIELDS)
    mapped = set(mapped) & names
    new = {k: v for k, v in old.items() if k not in mapped}
    new.update({k: v for k, v in fields.items() if k in mapped and v is not None})
    new = compact(new)
    if new == old:
        return original
    if "extras" not in mapped and "extras" in old:
        new["extras"] = old["extras"]
    stamp = main_component(cal, kind, name=name).get("DTSTAMP")
    return build(kind, new, uid or "", dtstamp=_raw(stamp) if stamp is not None else None)
