"""iCalendar codec for tasks (VTODO) and events (VEVENT), on the ``icalendar`` library.

Fields are plain JSON-able values: dates as ISO text (``2026-03-01`` for a DATE,
``2026-03-01T09:00:00Z`` for a UTC DATE-TIME, no suffix for floating time), lists for
categories and attendees. ``patch`` rewrites only the properties whose mapped value changed,
so alarms, recurrence rules, X- properties and anything else another client wrote survive.

A task's groupware status (Not Started, In Progress, Completed, Waiting on Others, Deferred)
has no exact VTODO counterpart, so it is written twice: as the nearest VTODO ``STATUS`` (for
every other client) and verbatim in ``X-CONCORD-STATUS`` (so nothing is lost on the way back).
If another client later changes ``STATUS``, the derived value wins over the stale X- value.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import icalendar

TASK_FIELDS: tuple[str, ...] = ("summary", "description", "status", "categories", "due",
                                "start", "completed", "priority")
EVENT_FIELDS: tuple[str, ...] = ("summary", "description", "location", "start", "end",
                                 "all_day", "attendees", "organizer", "status")

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


class ICalError(ValueError):
    """Text that is not an iCalendar object Concord can read; says where and why."""


def _fmt(value: Any) -> tuple[str | None, bool]:
    """(ISO text, is_date) of a DATE/DATE-TIME property value."""
    if value is None:
        return None, False
    dt = getattr(value, "dt", value)
    if isinstance(dt, datetime):
        if dt.tzinfo is not None:
            return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), False
        return dt.strftime("%Y-%m-%dT%H:%M:%S"), False
    if isinstance(dt, date):
        return dt.isoformat(), True
    return str(dt), False


def _parse_dt(text: str) -> date | datetime:
    if len(text) == 10:
        return date.fromisoformat(text)
    if text.endswith("Z"):
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    return datetime.fromisoformat(text)


def _text(comp: Any, name: str) -> str | None:
    v = comp.get(name)
    if v is None:
        return None
    s = str(v)
    return s if s != "" else None


def _categories(comp: Any) -> list[str]:
    raw = comp.get("CATEGORIES")
    if raw is None:
        return []
    out: list[str] = []
    for entry in raw if isinstance(raw, list) else [raw]:
        cats = getattr(entry, "cats", None)
        out.extend(str(c) for c in (cats if cats is not None else [entry]))
    return out


def _mail(addr: Any) -> str:
    s = str(addr)
    return s[7:] if s.lower().startswith("mailto:") else s


def _attendees(comp: Any) -> list[dict[str, str]]:
    raw = comp.get("ATTENDEE")
    if raw is None:
        return []
    out = []
    for a in raw if isinstance(raw, list) else [raw]:
        entry = {"email": _mail(a)}
        params = getattr(a, "params", {})
        for key, param in (("name", "CN"), ("role", "ROLE"), ("partstat", "PARTSTAT")):
            if param in params:
                entry[key] = str(params[param])
        out.append(entry)
    return out


def parse(text: str, *, name: str = "iCalendar") -> icalendar.Calendar:
    try:
        cal = icalendar.Calendar.from_ical(text)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ICalError(f"{name}: not valid iCalendar ({exc}) "
                        "(fix: correct or remove the item on the server)") from exc
    if not isinstance(cal, icalendar.Calendar):
        raise ICalError(f"{name}: does not start with BEGIN:VCALENDAR")
    return cal


def main_component(cal: icalendar.Calendar, kind: str, *, name: str = "iCalendar") -> Any:
    """The one VTODO/VEVENT of an object (its master, when it has overrides)."""
    comps = [c for c in cal.walk(kind)]
    if not comps:
        found = sorted({str(c.name) for c in cal.subcomponents if c.name != "VTIMEZONE"})
        raise ICalError(f"{name}: holds no {kind} (found {', '.join(found) or 'nothing'})")
    uids = {str(c.get("UID", "")) for c in comps}
    if len(uids) > 1:
        raise ICalError(f"{name}: holds {len(uids)} different UIDs "
                        "(fix: one object per resource; split it on the server)")
    masters = [c for c in comps if c.get("RECURRENCE-ID") is None]
    return masters[0] if masters else comps[0]


def uid_of(comp: Any) -> str | None:
    return _text(comp, "UID")


def task_fields(comp: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f, p in (("summary", "SUMMARY"), ("description", "DESCRIPTION")):
        v = _text(comp, p)
        if v is not None:
            out[f] = v
    vstatus = (_text(comp, "STATUS") or "NEEDS-ACTION").upper()
    kept = _text(comp, X_STATUS)
    if kept is not None and TASK_STATUS_TO_VTODO.get(kept, "NEEDS-ACTION") == vstatus:
        out["status"] = kept
    else:
        out["status"] = VTODO_TO_TASK_STATUS.get(vstatus, vstatus.title())
    cats = _categories(comp)
    if cats:
        out["categories"] = cats
    for f, p in (("due", "DUE"), ("start", "DTSTART"), ("completed", "COMPLETED")):
        v, _ = _fmt(comp.get(p))
        if v is not None:
            out[f] = v
    if comp.get("PRIORITY") is not None:
        try:
            prio = int(str(comp.get("PRIORITY")))
        except ValueError:
            prio = 0
        if prio:
            out["priority"] = prio
    return out


def event_fields(comp: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f, p in (("summary", "SUMMARY"), ("description", "DESCRIPTION"),
                 ("location", "LOCATION")):
        v = _text(comp, p)
        if v is not None:
            out[f] = v
    start, is_date = _fmt(comp.get("DTSTART"))
    if start is not None:
        out["start"] = start
        out["all_day"] = is_date
    end, _ = _fmt(comp.get("DTEND"))
    if end is not None:
        out["end"] = end
    att = _attendees(comp)
    if att:
        out["attendees"] = att
    org = comp.get("ORGANIZER")
    if org is not None:
        out["organizer"] = _mail(org)
    status = _text(comp, "STATUS")
    if status is not None:
        out["status"] = status.upper()
    return out


def fields_of(comp: Any, kind: str) -> dict[str, Any]:
    return task_fields(comp) if kind == "VTODO" else event_fields(comp)


def _set(comp: Any, prop: str, value: Any) -> None:
    if prop in comp:
        del comp[prop]
    if value is not None and value != "" and value != []:
        comp.add(prop, value)


def _write_field(comp: Any, kind: str, f: str, fields: dict[str, Any]) -> None:
    v = fields.get(f)
    if f in ("summary", "description", "location"):
        _set(comp, f.upper(), v)
    elif f == "status" and kind == "VTODO":
        if v is None:
            _set(comp, "STATUS", None)
            _set(comp, X_STATUS, None)
        else:
            _set(comp, "STATUS", TASK_STATUS_TO_VTODO.get(str(v), "NEEDS-ACTION"))
            _set(comp, X_STATUS, str(v))
    elif f == "status":
        _set(comp, "STATUS", str(v).upper() if v else None)
    elif f == "categories":
        _set(comp, "CATEGORIES", [str(c) for c in v] if v else None)
    elif f in ("due", "start", "completed", "end"):
        prop = {"due": "DUE", "start": "DTSTART", "completed": "COMPLETED", "end": "DTEND"}[f]
        dt = _parse_dt(str(v)) if v else None
        if kind == "VEVENT" and f in ("start", "end") and dt is not None and fields.get(
                "all_day") and isinstance(dt, datetime):
            dt = dt.date()
        _set(comp, prop, dt)
    elif f == "priority":
        _set(comp, "PRIORITY", int(v) if v else None)
    elif f == "all_day":
        if fields.get("start"):
            _write_field(comp, kind, "start", fields)
        if fields.get("end"):
            _write_field(comp, kind, "end", fields)
    elif f == "organizer":
        _set(comp, "ORGANIZER", icalendar.vCalAddress(f"mailto:{v}") if v else None)
    elif f == "attendees":
        if "ATTENDEE" in comp:
            del comp["ATTENDEE"]
        for a in v or []:
            addr = icalendar.vCalAddress(f"mailto:{a['email']}")
            for key, param in (("name", "CN"), ("role", "ROLE"), ("partstat", "PARTSTAT")):
                if a.get(key):
                    addr.params[param] = a[key]
            comp.add("ATTENDEE", addr, encode=0)


def _norm(f: str, v: Any) -> Any:
    return None if v in (None, "", []) else v


def build(kind: str, fields: dict[str, Any], uid: str) -> str:
    cal = icalendar.Calendar()
    cal.add("PRODID", "-//Concord//EN")
    cal.add("VERSION", "2.0")
    comp = icalendar.Todo() if kind == "VTODO" else icalendar.Event()
    comp.add("UID", uid)
    comp.add("DTSTAMP", datetime.now(UTC).replace(microsecond=0))
    for f in TASK_FIELDS if kind == "VTODO" else EVENT_FIELDS:
        if f == "all_day":
            continue
        _write_field(comp, kind, f, fields)
    if kind == "VEVENT" and "DTSTART" not in comp:
        raise ICalError(f"event {uid}: has no start (fix: give the event a start date)")
    cal.add_component(comp)
    return str(cal.to_ical().decode())


def patch(original: str, kind: str, fields: dict[str, Any], *, mapped: tuple[str, ...],
          name: str = "iCalendar") -> str:
    """Rewrite only the mapped properties whose value changed; keep everything else."""
    cal = parse(original, name=name)
    comp = main_component(cal, kind, name=name)
    old = fields_of(comp, kind)
    changed = [f for f in mapped if _norm(f, old.get(f)) != _norm(f, fields.get(f))]
    if not changed:
        return original
    for f in changed:
        _write_field(comp, kind, f, fields)
    seq = comp.get("SEQUENCE")
    if kind == "VEVENT" and seq is not None:
        comp["SEQUENCE"] = int(str(seq)) + 1
    return str(cal.to_ical().decode())
