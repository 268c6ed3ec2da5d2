"""The iCalendar codec: tasks and events to fields and back, patching only what changed."""

from __future__ import annotations

import pytest

from concord.formats import ical


def _task(text: str) -> dict[str, object]:
    return ical.read(text, "VTODO")[1]


def _event(text: str) -> dict[str, object]:
    return ical.read(text, "VEVENT")[1]


TASK = {"summary": "File VAT return", "description": "Q1, client 42", "status": "Waiting on Others",
        "categories": ["Practice", "VAT"], "due": "2026-04-07", "start": "2026-04-01T09:00:00Z",
        "priority": 3}


def test_task_round_trip_keeps_the_groupware_status() -> None:
    text = ical.build("VTODO", TASK, "uid-1")
    assert "STATUS:IN-PROCESS" in text and "X-CONCORD-STATUS:Waiting on Others" in text
    assert _task(text) == TASK


def test_status_changed_by_another_client_wins_over_the_kept_value() -> None:
    text = ical.build("VTODO", TASK, "uid-1").replace("STATUS:IN-PROCESS", "STATUS:COMPLETED")
    assert _task(text)["status"] == "Completed"


@pytest.mark.parametrize(("status", "vtodo"), [
    ("Not Started", "NEEDS-ACTION"), ("In Progress", "IN-PROCESS"), ("Completed", "COMPLETED"),
    ("Deferred", "NEEDS-ACTION"), ("Canceled", "CANCELLED"),
])
def test_each_status_has_a_vtodo_status(status: str, vtodo: str) -> None:
    text = ical.build("VTODO", {"summary": "x", "status": status}, "u")
    assert f"STATUS:{vtodo}" in text and _task(text)["status"] == status


def test_task_written_elsewhere_reads_its_vtodo_status() -> None:
    text = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VTODO\r\nUID:u\r\n"
            "DTSTAMP:20260101T000000Z\r\nSUMMARY:Call back\r\nSTATUS:NEEDS-ACTION\r\n"
            "END:VTODO\r\nEND:VCALENDAR\r\n")
    got = _task(text)
    assert got.pop("extras") == {"format": "ical", "calendar": [{"name": "PRODID", "value": "x"}]}
    assert got == {"summary": "Call back", "status": "Not Started"}


def test_patch_changes_only_mapped_properties() -> None:
    original = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Other//EN\r\nBEGIN:VEVENT\r\n"
                "UID:e1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260301T100000Z\r\n"
                "DTEND:20260301T110000Z\r\nSUMMARY:Review\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\n"
                "X-OTHER-APP:keep me\r\nSEQUENCE:2\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\n"
                "DESCRIPTION:Soon\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    fields = {**_event(original), "summary": "Year-end review"}
    patched = ical.patch(original, "VEVENT", fields, mapped=ical.EVENT_FIELDS)
    assert "SUMMARY:Year-end review" in patched
    for kept in ("RRULE:FREQ=WEEKLY;COUNT=4", "X-OTHER-APP:keep me", "TRIGGER:-PT15M",
                 "PRODID:-//Other//EN"):
        assert kept in patched
    # SEQUENCE is content (the model's ``sequence``): written as the hub holds it, never
    # bumped behind its back (a bump read back would be an edit, and echo between calendars)
    assert "SEQUENCE:2" in patched
    assert ical.patch(original, "VEVENT", _event(original), mapped=ical.EVENT_FIELDS) == original


def test_event_attendees_and_all_day() -> None:
    fields = {"summary": "Partners' day", "start": "2026-05-04", "end": "2026-05-05",
              "all_day": True, "status": "TENTATIVE",
              "organizer": {"email": "boss@practice.example", "name": "The Boss"},
              "attendees": [{"email": "a@example.com", "name": "A, Partner", "role": "CHAIR",
                             "status": "ACCEPTED", "rsvp": True, "kind": "INDIVIDUAL",
                             "params": {"X-NUM-GUESTS": ["0"]}}, {"email": "b@example.com"}]}
    text = ical.build("VEVENT", fields, "e2")
    assert "DTSTART;VALUE=DATE:20260504" in text
    assert _event(text) == fields


def test_several_uids_in_one_resource_is_an_error_naming_it() -> None:
    text = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VTODO\r\nUID:a\r\n"
            "DTSTAMP:20260101T000000Z\r\nEND:VTODO\r\nBEGIN:VTODO\r\nUID:b\r\n"
            "DTSTAMP:20260101T000000Z\r\nEND:VTODO\r\nEND:VCALENDAR\r\n")
    with pytest.raises(ical.ICalError, match=r"/cal/x\.ics: holds 2 different UIDs"):
        ical.main_component(ical.parse(text, name="/cal/x.ics"), "VTODO", name="/cal/x.ics")


def test_garbage_is_an_error_naming_the_resource() -> None:
    with pytest.raises(ical.ICalError, match=r"/cal/y\.ics"):
        ical.parse("this is not a calendar", name="/cal/y.ics")
