"""CalDAV: tasks as VTODO and events as VEVENT.

Tasks carry the groupware status faithfully (VTODO STATUS plus the exact value in
X-CONCORD-STATUS); which practice statuses map to which groupware status, and which
categories sync, is link configuration applied by the engine (see
``DEFAULT_TASK_STATUS_MAP``). Events carry attendees, organizer and status both ways.
"""

from __future__ import annotations

from typing import Any, ClassVar

from concord.connectors.base import Capabilities
from concord.connectors.dav.connector import DavConnector, NotThisEntity, Parsed
from concord.formats import ical

_COMPONENT = {"task": "VTODO", "event": "VEVENT"}


class CalDAVConnector(DavConnector):
    name: ClassVar[str] = "caldav"
    capabilities: ClassVar[Capabilities] = Capabilities(
        entities=("task", "event"), concurrent_reads=True)
    kind: ClassVar[str] = "cal"
    suffix: ClassVar[str] = ".ics"
    content_type: ClassVar[str] = "text/calendar; charset=utf-8"

    def component(self, entity: str) -> str | None:
        return _COMPONENT[entity]

    def fields(self, entity: str) -> tuple[str, ...] | None:
        return ical.TASK_FIELDS if entity == "task" else ical.EVENT_FIELDS

    def parse(self, entity: str, href: str, text: str) -> Parsed:
        cal = ical.parse(text, name=href)
        kinds = {c.name for c in cal.subcomponents} - {"VTIMEZONE"}
        if kinds and _COMPONENT[entity] not in kinds and kinds <= {"VEVENT", "VTODO", "VJOURNAL"}:
            raise NotThisEntity(href)
        uid, fields = ical.read_calendar(cal, _COMPONENT[entity], name=href)
        return Parsed(fields, uid)

    def render_new(self, entity: str, fields: dict[str, Any], uid: str,
                   refs: dict[str, str | None] | None = None) -> str:
        return ical.build(_COMPONENT[entity], fields, uid)

    def render_patch(self, entity: str, original: str, fields: dict[str, Any], href: str,
                     refs: dict[str, str | None] | None = None) -> str:
        return ical.patch(original, _COMPONENT[entity], fields, mapped=fields.keys(), name=href)

    def bulk_body(self, texts: list[str]) -> str:
        """One VCALENDAR holding every component (timezones once per TZID)."""
        head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Concord//EN\r\n"
        body: list[str] = []
        tzids: set[str] = set()
        for text in texts:
            cal = ical.parse(text)
            for comp in cal.subcomponents:
                if comp.name == "VTIMEZONE":
                    tzid = str(comp.get("TZID"))
                    if tzid in tzids:
                        continue
                    tzids.add(tzid)
                body.append(comp.to_ical().decode())
        return head + "".join(body) + "END:VCALENDAR\r\n"
