"""A sample practice database: the desktop practice system Concord migrates and keeps in sync.

The schema is what such a system plausibly holds on its office server: staff, clients
(individuals and companies), their contacts, jobs with states and due dates, custom field
definitions and values, tax returns, tasks with practice statuses and categories, and events
with attendees. Values are realistic (Faker) and deterministic for a given seed, so a demo,
a test and a benchmark see the same data every time. Rows are generated from pools of Faker
values combined by a seeded RNG and written with executemany: 10,000 clients take seconds.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from concord.connectors.sql.options import sql_url

#: Task statuses of the practice system (seed 003), and their categories.
TASK_STATUSES = ("Open", "Draft", "In Process", "Canceled", "Completed", "Approved",
                 "Pending Approval", "Rejected")
TASK_CATEGORIES = ("Bookkeeping", "Tax", "Payroll", "Advisory", "Audit", "Admin")
JOB_STATES = ("Planned", "In Progress", "Waiting on Client", "Review", "Completed", "Invoiced")
RETURN_FORMS = ("Individual", "Company", "Trust", "Partnership", "Fund")
RETURN_STATUSES = ("Not Started", "In Preparation", "Ready to Lodge", "Lodged", "Assessed")
CUSTOM_FIELDS = (("Industry", "text"), ("Year End", "date"), ("Referral Source", "text"),
                 ("Fee Level", "number"), ("Newsletter", "boolean"))
INDUSTRIES = ("Retail", "Construction", "Hospitality", "Health", "Agriculture", "Technology",
              "Transport", "Education", "Professional Services", "Manufacturing")
REFERRALS = ("Website", "Existing client", "Bank", "Solicitor", "Seminar", "Walk-in")

metadata = sa.MetaData()

staff = sa.Table(
    "staff", metadata,
    sa.Column("staff_id", sa.Integer, primary_key=True),
    sa.Column("first_name", sa.String(60), nullable=False),
    sa.Column("last_name", sa.String(60), nullable=False),
    sa.Column("email", sa.String(120), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),  # admin | partner | manager | staff
    sa.Column("active", sa.Boolean, nullable=False),
)
clients = sa.Table(
    "clients", metadata,
    sa.Column("client_id", sa.Integer, primary_key=True),
    sa.Column("code", sa.String(20), nullable=False),
    sa.Column("kind", sa.String(12), nullable=False),  # individual | company
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("first_name", sa.String(60)),
    sa.Column("last_name", sa.String(60)),
    sa.Column("email", sa.String(120)),
    sa.Column("phone", sa.String(40)),
    sa.Column("street", sa.String(120)),
    sa.Column("city", sa.String(60)),
    sa.Column("postcode", sa.String(12)),
    sa.Column("tax_number", sa.String(20)),
    sa.Column("partner_id", sa.Integer, sa.ForeignKey("staff.staff_id")),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
contacts = sa.Table(
    "contacts", metadata,
    sa.Column("contact_id", sa.Integer, primary_key=True),
    sa.Column("client_id", sa.Integer, sa.ForeignKey("clients.client_id"), index=True),
    sa.Column("first_name", sa.String(60), nullable=False),
    sa.Column("last_name", sa.String(60), nullable=False),
    sa.Column("email", sa.String(120)),
    sa.Column("phone", sa.String(40)),
    sa.Column("position", sa.String(60)),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
jobs = sa.Table(
    "jobs", metadata,
    sa.Column("job_id", sa.Integer, primary_key=True),
    sa.Column("client_id", sa.Integer, sa.ForeignKey("clients.client_id"), index=True),
    sa.Column("manager_id", sa.Integer, sa.ForeignKey("staff.staff_id")),
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("state", sa.String(30), nullable=False),
    sa.Column("due_date", sa.Date),
    sa.Column("budget_hours", sa.Integer),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
custom_field_definitions = sa.Table(
    "custom_field_definitions", metadata,
    sa.Column("definition_id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(60), nullable=False, unique=True),
    sa.Column("field_type", sa.String(12), nullable=False),
)
custom_field_values = sa.Table(
    "custom_field_values", metadata,
    sa.Column("value_id", sa.Integer, primary_key=True),
    sa.Column("client_id", sa.Integer, sa.ForeignKey("clients.client_id"), index=True),
    sa.Column("definition_id", sa.Integer,
              sa.ForeignKey("custom_field_definitions.definition_id")),
    sa.Column("value", sa.String(200)),
)
tax_returns = sa.Table(
    "tax_returns", metadata,
    sa.Column("return_id", sa.Integer, primary_key=True),
    sa.Column("client_id", sa.Integer, sa.ForeignKey("clients.client_id"), index=True),
    sa.Column("year", sa.Integer, nullable=False),
    sa.Column("form", sa.String(20), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("lodged_on", sa.Date),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
tasks = sa.Table(
    "tasks", metadata,
    sa.Column("task_id", sa.Integer, primary_key=True),
    sa.Column("client_id", sa.Integer, sa.ForeignKey("clients.client_id"), index=True),
    sa.Column("contact_id", sa.Integer, sa.ForeignKey("contacts.contact_id")),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("category", sa.String(20), nullable=False),
    sa.Column("due_date", sa.Date),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
events = sa.Table(
    "events", metadata,
    sa.Column("event_id", sa.Integer, primary_key=True),
    sa.Column("client_id", sa.Integer, sa.ForeignKey("clients.client_id"), index=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("starts_at", sa.DateTime, nullable=False),
    sa.Column("ends_at", sa.DateTime, nullable=False),
    sa.Column("location", sa.String(120)),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
event_attendees = sa.Table(
    "event_attendees", metadata,
    sa.Column("event_id", sa.Integer, sa.ForeignKey("events.event_id"), primary_key=True),
    sa.Column("staff_id", sa.Integer, sa.ForeignKey("staff.staff_id"), primary_key=True),
)

ADMIN_EMAIL = "disbursement@practice.example"


def default_mapping() -> dict[str, Any]:
    """The link mapping a user would write for this database (connector option ``mapping``)."""
    upd = "updated_at"
    return {
        "staff": {"table": "staff", "key": "staff_id",
                  "columns": ["first_name", "last_name", "email", "role", "active"],
                  "emails": ["email"]},
        "client": {"table": "clients", "key": "client_id", "watermark": upd,
                   "columns": ["code", "kind", "name", "first_name", "last_name", "email",
                               "phone", "street", "city", "postcode", "tax_number"],
                   "refs": {"partner": {"column": "partner_id", "entity": "staff"}},
                   "emails": ["email"],
                   "custom_fields": {"table": "custom_field_values", "owner": "client_id",
                                     "value": "value", "definition": "definition_id",
                                     "definitions": "custom_field_definitions",
                                     "definition_key": "definition_id",
                                     "definition_name": "name"}},
        "contact": {"table": "contacts", "key": "contact_id", "watermark": upd,
                    "columns": ["first_name", "last_name", "email", "phone", "position"],
                    "refs": {"client": {"column": "client_id", "entity": "client"}},
                    "emails": ["email"]},
        "job": {"table": "jobs", "key": "job_id", "watermark": upd,
                "columns": ["name", "state", "due_date", "budget_hours"],
                "refs": {"client": {"column": "client_id", "entity": "client"},
                         "manager": {"column": "manager_id", "entity": "staff"}}},
        "tax_return": {"table": "tax_returns", "key": "return_id", "watermark": upd,
                       "columns": ["year", "form", "status", "lodged_on"],
                       "refs": {"client": {"column": "client_id", "entity": "client"}}},
        "task": {"table": "tasks", "key": "task_id", "watermark": upd,
                 "columns": ["subject", "status", "category", "due_date"],
                 "refs": {"client": {"column": "client_id", "entity": "client"},
                          "contact": {"column": "contact_id", "entity": "contact"}}},
        "event": {"table": "events", "key": "event_id", "watermark": upd,
                  "columns": ["title", "starts_at", "ends_at", "location"],
                  "refs": {"client": {"column": "client_id", "entity": "client"}},
                  "lists": {"attendees": {"table": "event_attendees", "owner": "event_id",
                                          "value": "staff_id", "lookup_table": "staff",
                                          "lookup_key": "staff_id", "lookup_column": "email"}}},
    }


def default_fields() -> dict[str, dict[str, Any]]:
    """Per entity type, the link's ``fields`` for this database: model field -> column, or a
    rule where the shapes differ (one ``email`` column is one element of ``emails``; three
    address columns are the parts of one address; an event's attendee list fills each
    attendee's ``email``). Custom fields travel as ``custom.<name>`` by themselves."""
    one = {"field": "email"}
    return {
        "staff": {"given_name": "first_name", "family_name": "last_name", "emails": one,
                  "role": "role", "active": "active"},
        "client": {"code": "code", "kind": "kind", "name": "name", "given_name": "first_name",
                   "family_name": "last_name", "emails": one, "phones": {"field": "phone"},
                   "addresses": {"parts": {"street": "street", "locality": "city",
                                           "postcode": "postcode"}},
                   "tax_number": "tax_number"},
        "contact": {"given_name": "first_name", "family_name": "last_name", "emails": one,
                    "phones": {"field": "phone"}, "title": "position"},
        "job": {"name": "name", "state": "state", "due_date": "due_date",
                "budget_hours": "budget_hours"},
        "tax_return": {"year": "year", "form": "form", "status": "status",
                       "lodged_on": "lodged_on"},
        "task": {"summary": "subject", "status": "status", "categories": {"field": "category"},
                 "due": "due_date"},
        "event": {"summary": "title", "start": "starts_at", "end": "ends_at",
                  "location": "location", "attendees": {"field": "attendees"}},
    }


#: The practice's words for a client's kind, and the model's (vCard KIND) ones.
CLIENT_KINDS: dict[str, str] = {"individual": "individual", "org": "company"}


def default_entities(direction: str = "two-way", authority: str = "spoke"
                     ) -> dict[str, dict[str, Any]]:
    """The ``entities`` table of a link to this database: every entity type, with its
    fields and the client kind's value map."""
    out: dict[str, dict[str, Any]] = {}
    for entity, fields in default_fields().items():
        ec: dict[str, Any] = {"direction": direction, "authority": authority, "fields": fields}
        if entity == "client":
            ec["values"] = {"kind": dict(CLIENT_KINDS)}
        out[entity] = ec
    return out


class _Pools:
    """Faker values drawn once, combined many times: realistic and fast."""

    def __init__(self, seed: int) -> None:
        from faker import Faker

        fake = Faker("en_AU")
        fake.seed_instance(seed)
        self.first = [fake.first_name() for _ in range(400)]
        self.last = [fake.last_name() for _ in range(600)]
        self.company = [fake.company() for _ in range(800)]
        self.street = [fake.street_address() for _ in range(1000)]
        self.city = [fake.city() for _ in range(300)]
        self.postcode = [fake.postcode() for _ in range(300)]
        self.phone = [fake.phone_number() for _ in range(1000)]
        self.job = [fake.job()[:60] for _ in range(200)]
        self.domain = [fake.domain_name() for _ in range(200)]
        self.words = [fake.bs().capitalize() for _ in range(300)]


def _email(first: str, last: str, domain: str, n: int) -> str:
    local = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
    return f"{local}{n}@{domain}"


def generate_rows(clients_n: int, seed: int = 1, *, children: bool = True,
                  ) -> Iterator[tuple[sa.Table, list[dict[str, Any]]]]:
    """Rows of every table, parents first, in chunks (bounded memory for big databases).
    ``children=False`` gives clients alone (for size benchmarks)."""
    rng = random.Random(seed)
    p = _Pools(seed)
    base = dt.datetime(2026, 1, 5, 9, 0, 0)
    today = dt.date(2026, 7, 1)
    staff_rows = [{"staff_id": 1, "first_name": "Practice", "last_name": "Disbursement",
                   "email": ADMIN_EMAIL, "role": "admin", "active": True}]
    for i in range(2, 26):
        f, last = rng.choice(p.first), rng.choice(p.last)
        staff_rows.append({"staff_id": i, "first_name": f, "last_name": last,
                           "email": _email(f, last, "practice.example", i),
                           "role": rng.choice(("partner", "manager", "staff", "staff")),
                           "active": rng.random() > 0.1})
    yield staff, staff_rows
    yield custom_field_definitions, [
        {"definition_id": i + 1, "name": n, "field_type": t} for i, (n, t) in enumerate(CUSTOM_FIELDS)
    ]
    ids = {"contact": 0, "job": 0, "cf": 0, "ret": 0, "task": 0, "event": 0}
    chunk = 5000
    for start in range(0, clients_n, chunk):
        out: dict[str, list[dict[str, Any]]] = {t: [] for t in (
            "clients", "contacts", "jobs", "cfv", "returns", "tasks", "events", "att")}
        for cid in range(start + 1, min(start + chunk, clients_n) + 1):
            stamp = base + dt.timedelta(minutes=cid)
            company = rng.random() < 0.35
            f, last = rng.choice(p.first), rng.choice(p.last)
            dom = rng.choice(p.domain)
            name = rng.choice(p.company) if company else f"{f} {last}"
            out["clients"].append({
                "client_id": cid, "code": f"C{cid:06d}", "kind": "company" if company else "individual",
                "name": name, "first_name": None if company else f,
                "last_name": None if company else last,
                "email": f"accounts{cid}@{dom}" if company else _email(f, last, dom, cid),
                "phone": rng.choice(p.phone), "street": rng.choice(p.street),
                "city": rng.choice(p.city), "postcode": rng.choice(p.postcode),
                "tax_number": f"{rng.randrange(10**8, 10**9)}",
                "partner_id": rng.randrange(2, 26), "updated_at": stamp})
            if not children:
                continue
            contact_ids = []
            for _ in range(rng.choice((0, 1, 1, 2)) if company else rng.choice((0, 1, 1, 1, 2))):
                ids["contact"] += 1
                cf, cl = rng.choice(p.first), rng.choice(p.last)
                contact_ids.append(ids["contact"])
                out["contacts"].append({
                    "contact_id": ids["contact"], "client_id": cid, "first_name": cf,
                    "last_name": cl, "email": _email(cf, cl, dom, ids["contact"]),
                    "phone": rng.choice(p.phone), "position": rng.choice(p.job), "updated_at": stamp})
            for _ in range(rng.choice((1, 1, 2, 2))):
                ids["job"] += 1
                out["jobs"].append({
                    "job_id": ids["job"], "client_id": cid, "manager_id": rng.randrange(2, 26),
                    "name": f"{rng.choice(('Annual accounts', 'BAS', 'Payroll', 'Tax return', 'Audit'))} {2025 + rng.randrange(2)}",
                    "state": rng.choice(JOB_STATES),
                    "due_date": today + dt.timedelta(days=rng.randrange(-60, 240)),
                    "budget_hours": rng.randrange(1, 80), "updated_at": stamp})
            for d, (_n, ftype) in enumerate(CUSTOM_FIELDS, start=1):
                if rng.random() < 0.25:
                    continue
                ids["cf"] += 1
                value = {"text": rng.choice(INDUSTRIES if d == 1 else REFERRALS),
                         "date": f"2026-{rng.choice(('03', '06', '12'))}-30",
                         "number": str(rng.randrange(1, 6)),
                         "boolean": rng.choice(("yes", "no"))}[ftype]
                out["cfv"].append({"value_id": ids["cf"], "client_id": cid,
                                   "definition_id": d, "value": value})
            if rng.random() < 0.6:
                ids["ret"] += 1
                lodged = rng.random() < 0.5
                out["returns"].append({
                    "return_id": ids["ret"], "client_id": cid, "year": 2025,
                    "form": "Company" if company else rng.choice(RETURN_FORMS),
                    "status": "Lodged" if lodged else rng.choice(RETURN_STATUSES[:3]),
                    "lodged_on": today - dt.timedelta(days=rng.randrange(1, 200)) if lodged else None,
                    "updated_at": stamp})
            for _ in range(rng.choice((0, 1, 1, 2))):
                ids["task"] += 1
                out["tasks"].append({
                    "task_id": ids["task"], "client_id": cid,
                    "contact_id": rng.choice(contact_ids) if contact_ids and rng.random() < 0.5 else None,
                    "subject": rng.choice(p.words)[:200], "status": rng.choice(TASK_STATUSES),
                    "category": rng.choice(TASK_CATEGORIES),
                    "due_date": today + dt.timedelta(days=rng.randrange(-30, 90)),
                    "updated_at": stamp})
            if rng.random() < 0.3:
                ids["event"] += 1
                starts = base + dt.timedelta(days=rng.randrange(0, 300), hours=rng.randrange(0, 8))
                out["events"].append({
                    "event_id": ids["event"], "client_id": cid,
                    "title": f"Meeting with {name}"[:200], "starts_at": starts,
                    "ends_at": starts + dt.timedelta(minutes=rng.choice((30, 60, 90))),
                    "location": rng.choice(("Office", "Client site", "Video call")),
                    "updated_at": stamp})
                for sid in rng.sample(range(1, 26), rng.randrange(1, 4)):
                    out["att"].append({"event_id": ids["event"], "staff_id": sid})
        yield clients, out["clients"]
        yield contacts, out["contacts"]
        yield jobs, out["jobs"]
        yield custom_field_values, out["cfv"]
        yield tax_returns, out["returns"]
        yield tasks, out["tasks"]
        yield events, out["events"]
        yield event_attendees, out["att"]


def create_sample(url: str, clients_n: int = 1000, seed: int = 1, *,
                  children: bool = True) -> dict[str, int]:
    """Create the sample schema at ``url`` (any SQLAlchemy database) and fill it.
    Returns the number of rows per table."""
    engine = sa.create_engine(sql_url(url))
    counts: dict[str, int] = {}
    try:
        with engine.begin() as conn:
            metadata.create_all(conn)
            for table, rows in generate_rows(clients_n, seed, children=children):
                if rows:
                    conn.execute(table.insert(), rows)
                counts[table.name] = counts.get(table.name, 0) + len(rows)
            if conn.dialect.name == "postgresql":  # explicit keys: move the sequences on
                for table in metadata.sorted_tables:
                    pk = list(table.primary_key.columns)
                    if len(pk) == 1 and isinstance(pk[0].type, sa.Integer):
                        conn.execute(sa.text(
                            f"SELECT setval(pg_get_serial_sequence('{table.name}', '{pk[0].name}'), "
                            f"coalesce(max({pk[0].name}), 0) + 1, false) FROM {table.name}"))
    finally:
        engine.dispose()
    return counts
