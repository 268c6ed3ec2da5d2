"""The canonical model: one typed model per entity type, in the practice's words.

Every connector maps its own shapes to and from these; the hub validates each write against
them. Field names are the hub's field names. Dates are ISO text: ``2026-03-01`` for a date,
``2026-03-01T09:00:00Z`` for a UTC time, ``2026-03-01T09:00:00`` for a floating (local) time,
and ``2026-03-01T09:00:00[Europe/London]`` for a time in a named zone (the RFC 9557 suffix),
so a meeting at nine in Sydney stays at nine in Sydney on every system.

Beyond the named fields a record may carry ``custom.<name>`` fields (the practice's custom
fields, one scalar each) and ``extras`` (what its source format held that the model does not
name; see ``values.Extras``). ``uid`` is the identity another system gave the record when it
cannot serve as the hub id (over 64 characters, or holding ``/``): writers reuse it, so an
Outlook meeting keeps its UID on every calendar it reaches.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from concord.model.values import (
    Address,
    Attachment,
    Attendee,
    EmailAddress,
    Extras,
    Mailbox,
    Phone,
    Recurrence,
    Uri,
)


class Entity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uid: str | None = Field(default=None, description="the source's UID when it is not the hub id")
    extras: Extras | None = Field(default=None, description="what the source format held beyond the model")


class Party(Entity):
    """What a client, a contact and a staff member share: the vCard's content."""

    kind: str | None = Field(default=None, description="individual | org | group | location")
    name: str | None = Field(default=None, description="display (formatted) name: vCard FN")
    given_name: str | None = None
    family_name: str | None = None
    additional_names: str | None = Field(default=None, description="middle names, comma-separated")
    prefix: str | None = Field(default=None, description="honorific prefixes (Dr., Ms.)")
    suffix: str | None = Field(default=None, description="honorific suffixes (Jr., CPA)")
    nicknames: list[str] = Field(default_factory=list)
    org: str | None = Field(default=None, description="organisation name (first ORG unit)")
    departments: list[str] = Field(default_factory=list, description="further ORG units")
    title: str | None = Field(default=None, description="job title / position")
    role: str | None = None
    emails: list[EmailAddress] = Field(default_factory=list)
    phones: list[Phone] = Field(default_factory=list)
    addresses: list[Address] = Field(default_factory=list)
    urls: list[Uri] = Field(default_factory=list)
    ims: list[Uri] = Field(default_factory=list, description="instant messaging (IMPP)")
    related: list[Uri] = Field(default_factory=list, description="related people (RELATED)")
    birthday: str | None = Field(default=None, description="date, or --MMDD when the year is unknown")
    anniversary: str | None = None
    gender: str | None = None
    timezone: str | None = None
    geo: str | None = Field(default=None, description="geo: URI or lat;lon")
    note: str | None = None
    categories: list[str] = Field(default_factory=list)


class Client(Party):
    """A client of the practice: a person or an organisation. References: ``partner``
    (staff), ``manager`` (staff)."""

    code: str | None = Field(default=None, description="the practice's client code")
    tax_number: str | None = None
    business_number: str | None = None
    status: str | None = Field(default=None, description="active, prospect, archived…")


class Contact(Party):
    """A person at a client. References: ``client``."""

    primary: bool | None = Field(default=None, description="the client's primary contact")


class Staff(Party):
    """A member of the practice's staff."""

    active: bool | None = None
    code: str | None = None


class Job(Entity):
    """A piece of work for a client. References: ``client``, ``manager`` and ``partner``
    (staff)."""

    code: str | None = Field(default=None, description="the job number")
    name: str | None = None
    description: str | None = None
    state: str | None = None
    type: str | None = None
    start_date: str | None = None
    due_date: str | None = None
    completed_date: str | None = None
    budget_hours: float | None = None
    budget: float | None = None
    priority: str | None = None
    categories: list[str] = Field(default_factory=list)


class CustomField(Entity):
    """A custom field definition; values live on their owners as ``custom.<name>``."""

    name: str = Field(min_length=1)
    type: str = Field(default="text", description="text | number | date | boolean | select | …")
    options: list[str] = Field(default_factory=list, description="choices of a select field")
    applies_to: list[str] = Field(default_factory=list, description="entity types it is used on")
    required: bool | None = None


class TaxReturn(Entity):
    """A client's tax return for a year. References: ``client``."""

    year: int | None = None
    form: str | None = None
    status: str | None = None
    due_date: str | None = None
    lodged_on: str | None = None
    assessed_on: str | None = None
    amount: float | None = Field(default=None, description="assessed tax (+) or refund (-)")
    reference: str | None = None


class _Scheduled(BaseModel):
    """What a task, an event and one instance of a recurring event share."""

    model_config = ConfigDict(extra="forbid")

    summary: str | None = None
    description: str | None = None
    status: str | None = None
    categories: list[str] = Field(default_factory=list)
    priority: int | None = Field(default=None, ge=0, le=9)
    classification: str | None = Field(default=None, description="PUBLIC | PRIVATE | CONFIDENTIAL")
    url: str | None = None
    sequence: int | None = Field(default=None, ge=0)
    extras: Extras | None = Field(default=None, description="what the source format held beyond the model")


class Task(Entity, _Scheduled):
    """A to-do. References: ``client``, ``contact``, ``job``, ``assignee`` (staff)."""

    start: str | None = None
    due: str | None = None
    completed: str | None = None
    percent_complete: int | None = Field(default=None, ge=0, le=100)
    recurrence: Recurrence | None = None


class _Appointment(_Scheduled):
    """What an event and one of its changed instances hold."""

    location: str | None = None
    start: str | None = None
    end: str | None = None
    duration: str | None = Field(default=None, description="ISO 8601 duration, when no end")
    all_day: bool | None = None
    transparency: str | None = Field(default=None, description="OPAQUE | TRANSPARENT")
    geo: str | None = None
    organizer: Attendee | None = None
    attendees: list[Attendee] = Field(default_factory=list)


class EventOverride(_Appointment):
    """One instance of a recurring event that differs from the rule (RECURRENCE-ID)."""

    recurrence_id: str
    range: str | None = Field(default=None, description="THISANDFUTURE")


class Event(Entity, _Appointment):
    """A calendar event. References: ``client``, ``contact``, ``job``."""

    recurrence: Recurrence | None = None
    overrides: list[EventOverride] = Field(default_factory=list)


class Email(Entity):
    """A client e-mail. References: ``contact``, ``client``, ``job``."""

    message_id: str | None = None
    subject: str | None = None
    sender: Mailbox | None = None
    to: list[Mailbox] = Field(default_factory=list)
    cc: list[Mailbox] = Field(default_factory=list)
    bcc: list[Mailbox] = Field(default_factory=list)
    reply_to: list[Mailbox] = Field(default_factory=list)
    date: str | None = None
    in_reply_to: str | None = None
    references: list[str] = Field(default_factory=list)
    body_text: str | None = None
    body_html: str | None = None
    attachments: list[Attachment] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list, description="seen, flagged, answered…")
    folder: str | None = None
    raw: str | None = Field(default=None, min_length=64, max_length=64, description=(
        "SHA-256 of the message as received, a hub blob (its attachments' bytes kept once, as "
        "their own blobs): written to other folders byte for byte while the record says what "
        "it says"))


MODELS: dict[str, type[Entity]] = {
    "staff": Staff,
    "client": Client,
    "contact": Contact,
    "custom_field": CustomField,
    "job": Job,
    "tax_return": TaxReturn,
    "task": Task,
    "event": Event,
    "email": Email,
}
