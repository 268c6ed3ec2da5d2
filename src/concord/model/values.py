"""Typed values that entity fields are made of: e-mail addresses, phones, postal addresses,
URIs, attendees, recurrence, and the *extras* that carry what the model does not name.

Every value is a small pydantic model with ``extra="forbid"``, so a misspelt key is an error,
not a silently dropped field. In the hub a value is stored as its JSON form with empty parts
left out (``None``, ``[]``, ``{}``): absent and empty mean the same thing everywhere, so two
systems holding the same content always agree on its hash.

``params`` and ``group`` on a typed value hold what its source format said about it that the
model has no name for (a vCard ``X-SERVICE-TYPE`` parameter, Apple's ``item1.`` group that ties
an e-mail to its ``X-ABLabel``). Writers of the same format put them back; other writers
ignore them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

#: Kinds of a contact detail, lower case by convention (every codec writes them so): the
#: model transforms nothing, so what validates is exactly what the hub stores.
Types = list[str]
#: Parameters the model does not name: parameter name (upper case) -> values.
Params = dict[str, list[str]]


class Value(BaseModel):
    """Base of typed values."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Typed(Value):
    """What every multi-valued contact detail has: kinds (``work``, ``home``, ``cell``...),
    a preference (1 = most preferred, as in vCard 4.0 ``PREF``), and source extras."""

    types: Types = Field(default_factory=list, description="kinds, lower case: work, home, cell…")
    pref: int | None = Field(default=None, ge=1, le=100, description="1 = most preferred")
    params: Params = Field(default_factory=dict, description="parameters the model does not name")
    group: str | None = Field(default=None, description="vCard property group (item1)")


class EmailAddress(Typed):
    """An e-mail address with its kinds (``work``, ``home``, ``internet``)."""

    address: str = Field(min_length=1)


class Phone(Typed):
    """A telephone number as written, with its kinds (``cell``, ``work``, ``fax``…)."""

    number: str = Field(min_length=1)


class Address(Typed):
    """A postal address in the vCard ADR parts."""

    po_box: str | None = None
    extended: str | None = None
    street: str | None = None
    locality: str | None = Field(default=None, description="city / suburb / town")
    region: str | None = Field(default=None, description="state / county")
    postcode: str | None = None
    country: str | None = None


class Uri(Typed):
    """A URL, an instant-messaging address, a related person: anything one text value."""

    value: str = Field(min_length=1)


class Attendee(Value):
    """An event's attendee or organizer (iCalendar ``ATTENDEE`` / ``ORGANIZER``)."""

    email: str = Field(min_length=1, description="the address, without mailto:")
    name: str | None = Field(default=None, description="CN")
    role: str | None = Field(default=None, description="REQ-PARTICIPANT, OPT-PARTICIPANT, CHAIR…")
    status: str | None = Field(default=None, description="PARTSTAT: ACCEPTED, DECLINED…")
    rsvp: bool | None = None
    kind: str | None = Field(default=None, description="CUTYPE: INDIVIDUAL, ROOM, RESOURCE…")
    params: Params = Field(default_factory=dict, description="parameters the model does not name")


class Recurrence(Value):
    """A recurring event or task, kept whole: rules, exceptions, extra dates."""

    rules: list[str] = Field(default_factory=list, description="RRULE values, e.g. FREQ=WEEKLY;BYDAY=MO")
    exdates: list[str] = Field(default_factory=list, description="excluded instances (date-times)")
    rdates: list[str] = Field(default_factory=list, description="extra instances (date-times or periods)")
    exrules: list[str] = Field(default_factory=list, description="EXRULE values (RFC 2445)")


class Prop(Value):
    """One property the model does not name, as its format wrote it (value still escaped)."""

    name: str
    value: str = ""
    params: Params = Field(default_factory=dict)
    group: str | None = None


class Extras(Value):
    """What a record's source format held beyond the model: written back by connectors of
    the same format, so a card or event crosses the hub with every property intact."""

    format: str = Field(description="vcard | ical")
    version: str | None = Field(default=None, description="the source's format version (vCard 4.0)")
    props: list[Prop] = Field(default_factory=list, description="unnamed properties, in order")
    params: dict[str, Params] = Field(
        default_factory=dict, description="unnamed parameters of named single-valued properties")
    groups: dict[str, str] = Field(default_factory=dict,
                                   description="groups of named single-valued properties")
    components: list[str] = Field(default_factory=list,
                                  description="sub-components (VALARM…) as iCalendar text")
    calendar: list[Prop] = Field(default_factory=list,
                                 description="calendar-level properties (PRODID, X-WR-CALNAME)")
    siblings: list[str] = Field(default_factory=list, description=(
        "other components of the object as iCalendar text (non-IANA VTIMEZONEs…)"))
    forms: dict[str, str] = Field(
        default_factory=dict, description="how a named property was written (UID as urn:uuid)")


class Attachment(Value):
    """An e-mail attachment: stored once in the hub, content-addressed."""

    filename: str | None = None
    content_type: str = "application/octet-stream"
    size: int = Field(ge=0)
    sha256: str = Field(min_length=64, max_length=64, description="content address")
    content_id: str | None = None
    inline: bool | None = None


class Mailbox(Value):
    """An e-mail address with its display name."""

    address: str = Field(min_length=1)
    name: str | None = None
