"""The hub's tables (SQLAlchemy Core). Alembic migrations in ``hub/alembic`` create them.

- ``tenants.last_seq`` is the change-feed counter. Every write transaction bumps it with an
  UPDATE, which takes the tenant row's lock: writers of one practice are serialised, so a
  reader that checkpoints at seq N can never later see a commit below N (see
  ``tests/integration/test_hub_postgres.py::test_out_of_order_commits``).
- ``records`` holds every record, deletes as tombstones with the last content kept.
- ``archive`` is the link state per linked record (Unison's "archive"): the spoke's ref and
  version, the hash and content last synced (the base of a three-way merge).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

tenants = Table(
    "tenants",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("last_seq", BigInteger, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
)

records = Table(
    "records",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("entity", String(32), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(32), nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("data", Text, nullable=False),  # canonical JSON {"f": fields, "r": refs}
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(128), nullable=False, default=""),
    Index("ix_records_feed", "tenant", "entity", "seq"),
)

links = Table(
    "links",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("connector", String(32), nullable=False),
    Column("state", String(16), nullable=False, default="active"),  # active|paused|inactive
    Column("activated_at", Float),
    Column("activated_by", String(128)),
    Column("paused_until", Float),  # rate limit: resumes by itself after this
    Column("pause_reason", Text),
    Column("held_reason", Text),  # delete guard: needs confirmation
    Column("migrated", Boolean, nullable=False, default=False),
    Column("last_error", Text),
    Column("last_run_at", Float),
    Column("updated_at", Float),
    # the scheduler's error state (revision 0008): after a transient error it retries at
    # ``retry_at`` (backing off with ``failures``); after a terminal one it stops (``parked``,
    # the reason) until a person syncs, resumes or corrects the configuration
    Column("retry_at", Float),
    Column("failures", Integer),
    Column("parked", Text),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("link", String(64), primary_key=True),
    Column("entity", String(32), primary_key=True),
    Column("hub_seq", BigInteger, nullable=False, default=0),
    Column("spoke_token", Text),
    Column("progress", Text),  # JSON, e.g. a resumable first migration's position
)

archive = Table(
    "archive",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("link", String(64), primary_key=True),
    Column("entity", String(32), primary_key=True),
    Column("hub_id", String(64), primary_key=True),
    Column("spoke_ref", String(512), nullable=False),
    Column("spoke_version", String(256)),
    Column("hash", String(32), nullable=False),
    Column("base", Text, nullable=False),  # canonical JSON of the content last synced
    Column("synced_at", Float, nullable=False),
    # the hub record's own hash when last synced (``hash`` is of the part the link carries)
    Column("hub_hash", String(32)),
    UniqueConstraint("tenant", "link", "entity", "spoke_ref", name="uq_archive_spoke_ref"),
)

#: What the engine is about to write to a spoke, recorded before the write and dropped with
#: the commit that follows it. After a crash between the two, a spoke item whose content
#: equals its intent is recognised as Concord's own write, not a user's edit.
intents = Table(
    "intents",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("link", String(64), primary_key=True),
    Column("entity", String(32), primary_key=True),
    Column("hub_id", String(64), primary_key=True),
    Column("hash", String(32), nullable=False),
    Column("base", Text, nullable=False),
    Column("at", Float, nullable=False),
)

#: Hub records a link's mapping leaves out on purpose (a value with no entry in a value map,
#: a filter that does not match, ``remove_when``), with the record's feed position (seq) when
#: the engine decided so and a fingerprint of the link's selection (filters, value maps,
#: remove_when). Such a record is not pending for the link while both still hold; any write
#: to it (a new seq) or a changed selection makes it pending again, and a changed selection
#: makes the engine revisit it.
exclusions = Table(
    "exclusions",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("link", String(64), primary_key=True),
    Column("entity", String(32), primary_key=True),
    Column("hub_id", String(64), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("selection", String(32), nullable=False),
    Column("at", Float, nullable=False),
    Index("ix_exclusions_selection", "tenant", "link", "entity", "selection"),
)

#: Spoke items a link's selection leaves out (a value with no entry in a value map, a filter
#: that does not match), with the version read and the selection's fingerprint. A spoke that
#: lists in full (a folder) names every item on every run: such an item is read again only
#: when its version or the link's selection changes, not on every run (revision 0009).
spoke_left = Table(
    "spoke_left",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("link", String(64), primary_key=True),
    Column("entity", String(32), primary_key=True),
    Column("ref", String(512), primary_key=True),
    Column("version", String(256), nullable=False),
    Column("selection", String(32), nullable=False),
    Column("at", Float, nullable=False),
    # the item's identity (UID): a hub record of that id is not created at the spoke while
    # the spoke holds it outside the selection
    Column("ident", String(512)),
    # the hash of its content as read: read again (its version moved on) and found the same,
    # it is not counted again
    Column("hash", String(32)),
    Index("ix_spoke_left_ident", "tenant", "link", "entity", "ident"),
)

conflicts = Table(
    "conflicts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(64), nullable=False),
    Column("link", String(64), nullable=False),
    Column("entity", String(32), nullable=False),
    Column("hub_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),  # field | delete-vs-edit | create | overwrite
    Column("fields", Text, nullable=False),  # JSON list of field names in conflict
    Column("winner", String(16), nullable=False),  # hub | spoke | pending
    Column("hub_content", Text),
    Column("spoke_content", Text),
    Column("base_content", Text),
    Column("kept", Text, nullable=False),  # JSON of the losing values, never lost
    Column("at", Float, nullable=False),
    Column("resolved_at", Float),
    Column("resolved_by", String(128)),
    Column("resolution", Text),
    Index("ix_conflicts_open", "tenant", "resolved_at"),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(64), nullable=False),
    Column("link", String(64), nullable=False),
    Column("entity", String(32), nullable=False),
    Column("ref", String(512), nullable=False),
    Column("side", String(8), nullable=False),  # spoke | hub
    Column("error", Text, nullable=False),
    Column("payload", Text),
    Column("at", Float, nullable=False),
    Column("resolved_at", Float),
    # retry state (revision 0005): tried again when the spoke version changes, a parent
    # type's record changes (hub seq past ``seq``), or ``retry_at`` passes
    Column("version", String(512)),
    Column("seq", BigInteger),
    Column("attempts", Integer),
    Column("retry_at", Float),
    UniqueConstraint("tenant", "link", "entity", "side", "ref", name="uq_quarantine_ref"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(64), nullable=False),
    Column("link", String(64), nullable=False),
    Column("entity", String(32)),  # None: every entity of the link
    Column("record", String(512)),  # a per-record sync
    Column("trigger", String(16), nullable=False),  # cli|manual|schedule|watch|api
    Column("requested_by", String(128)),
    Column("status", String(16), nullable=False),  # queued|running|ok|error|held|paused
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("counts", Text),  # JSON
    Column("message", Text),
    Column("progress_done", BigInteger),
    Column("progress_total", BigInteger),
    Column("owner", String(128)),  # host:pid of the process running it (revision 0005)
    Index("ix_runs_link", "tenant", "link", "id"),
)

activity = Table(
    "activity",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(64), nullable=False),
    Column("at", Float, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("link", String(64)),
    Column("entity", String(32)),
    Column("detail", Text),
    Column("outcome", String(16)),
    Index("ix_activity_at", "tenant", "id"),
)

locks = Table(
    "locks",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("acquired_at", Float, nullable=False),
    Column("heartbeat", Float, nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("name", String(128), nullable=False),
    Column("hash", String(128), nullable=False, unique=True),
    Column("scopes", Text, nullable=False),  # space separated
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
    Column("last_used_at", Float),
)


#: Content-addressed blobs (e-mail attachments, raw messages): one row per content, named by
#: its SHA-256, the bytes in ``blob_chunks`` of at most ``BLOB_CHUNK`` bytes each, so a large
#: attachment is written and read a chunk at a time. The ``blobs`` row is written with the
#: chunks in one transaction: a blob listed there is whole.
blobs = Table(
    "blobs",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("sha256", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("at", Float, nullable=False),
)

blob_chunks = Table(
    "blob_chunks",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("sha256", String(64), primary_key=True),
    Column("n", Integer, primary_key=True),
    Column("data", LargeBinary, nullable=False),
)

#: Addresses seen on e-mails that match no contact, kept for review when a link's
#: ``new_contacts`` option is ``review`` (one row per normalised address).
contact_candidates = Table(
    "contact_candidates",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("address", String(320), primary_key=True),
    Column("name", Text),
    Column("link", String(64), nullable=False),
    Column("email_id", String(64), nullable=False),  # the first e-mail it was seen on
    Column("at", Float, nullable=False),
    Column("status", String(16), nullable=False, default="open"),  # open | dismissed
)


#: OAuth2 token sets of the spokes that need one (Xero Practice Manager): exactly one row per
#: practice and provider, replaced as a whole by each refresh. The tokens are stored
#: encrypted (Fernet, with the link's ``token_key``); ``generation`` moves with each refresh,
#: so a process that refreshed on a stale copy can tell.
oauth_tokens = Table(
    "oauth_tokens",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("provider", String(32), primary_key=True),
    Column("account", String(64)),  # the provider's id of the practice (Xero tenant id)
    Column("access_token", Text, nullable=False),  # encrypted
    Column("refresh_token", Text, nullable=False),  # encrypted
    Column("expires_at", Float, nullable=False),
    Column("scope", Text),
    Column("generation", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
)

#: The id Concord chose for a record it created at a spoke that has no client-chosen ids
#: (XPM): noted before the create is sent (``ref`` NULL), completed with the spoke's
#: reference once the answer arrives, so a create whose answer was lost is found again
#: rather than made twice.
spoke_idents = Table(
    "spoke_idents",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("link", String(64), primary_key=True),
    Column("entity", String(32), primary_key=True),
    Column("ident", String(64), primary_key=True),
    Column("ref", String(128)),
    Column("fingerprint", Text),  # what identifies the content sent (name, e-mail, code)
    Column("attempted_at", Float, nullable=False),
    Index("ix_spoke_idents_ref", "tenant", "link", "entity", "ref"),
)
