"""The Xero Practice Manager connector (API v3.1): clients with their contacts, staff, jobs
with their tasks, custom field definitions and values, and tax returns (client fields).

Cost is counted in calls, because XPM allows 60 a minute and 5,000 a day per practice:

- one call lists every client with its contacts (``client.api/list?detailed=true``), one
  every job with its tasks (``job.api/list``), one the staff, one the field definitions;
- between full listings (every ``full_every`` seconds, which also find deletions) clients
  are read with ``modifiedSince`` (one call for what changed);
- XPM has no versions or ETags: an item's version is a content hash, ``<hash of the
  record>.<hash of its custom field values>``. Custom field values cost a call per record,
  so they are read only for records whose content changed, that XPM reports modified, or
  that are new; the versions of the others come from the change token (the connector's
  notes, saved by the engine with its checkpoint);
- when the day's remaining calls (``X-DayLimit-Remaining``) cannot cover a run, the most
  recently changed records go first and the rest are deferred: reported at their old
  version (or not at all when new), so the next run finds them again; nothing fails
  half-way. ``estimate`` tells the calls a run will take before it runs.

Writes check the expected version against the record as XPM holds it (read again unless
this run listed it moments ago): a mismatch is a conflict, never an overwrite. XPM chooses
its own ids, so the id Concord gives a new record is noted in the hub before the create is
sent; a create whose answer was lost is recognised on retry by its content and adopted.
"""

from __future__ import annotations

import builtins
import datetime as dt
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
from pydantic import Field, SecretStr, field_validator

from concord.connectors.base import (
    Capabilities,
    ChangeCapture,
    Changes,
    Connector,
    ConnectorOptions,
    Item,
    ItemError,
)
from concord.connectors.xpm import mapping as m
from concord.connectors.xpm.auth import Tokens, TokenVault
from concord.connectors.xpm.limits import Gate, gate_for
from concord.errors import (
    ConfigError,
    ConnectorError,
    ItemInvalid,
    PreconditionFailed,
    TerminalError,
    TransientError,
)
from concord.hub.store import Hub
from concord.records import Fields, content_hash

#: custom field values as XPM answers them
Values = list[dict[str, Any]]

API_URL = "https://api.xero.com/practicemanager"
#: the HTTP transport of connectors made from a configuration (None: the network). The
#: tests set it to the in-process XPM fake, as no local XPM server exists.
DEFAULT_TRANSPORT: httpx.BaseTransport | None = None
ENTITIES = ("staff", "client", "contact", "custom_field", "job", "tax_return", "task")
#: entity -> XPM owner kind whose custom field values it carries
CUSTOM_OWNER = {"client": "client", "job": "job", "tax_return": "client"}
#: value key of a custom field value by XPM definition type
VALUE_KEY = {"text": "text", "date": "date", "number": "number", "decimal": "decimal",
             "boolean": "boolean", "checkbox": "boolean", "select": "text",
             "dropdown": "text", "multiline": "text", "link": "text", "money": "decimal"}


class XpmOptions(ConnectorOptions):
    client_id: str = Field(min_length=1, description="the Xero app's client id")
    client_secret: SecretStr
    token_key: SecretStr = Field(description="Fernet key the token set is encrypted with")
    hub_url: str | None = Field(default=None, description="filled from [hub] by the config")
    tenant: str = "default"
    api_url: str = API_URL
    redirect_uri: str = "http://127.0.0.1:8765/xpm/callback"
    max_wait: float = Field(60.0, ge=0, description="longest in-run wait for the minute window")
    day_reserve: int = Field(200, ge=0, description="calls kept back for writes and other links")
    full_every: float = Field(900.0, ge=0, description="seconds between full client listings")
    jobs_from: str = Field("20000101", pattern=r"^\d{8}$")
    jobs_to: str = Field("20991231", pattern=r"^\d{8}$")
    custom_fields: bool = True
    tax_fields: dict[str, str] = Field(default_factory=lambda: dict(m.DEFAULT_TAX_FIELDS))
    timeout: float = Field(30.0, gt=0)
    retries: int = Field(3, ge=0, le=10)

    @field_validator("client_secret", "token_key", mode="before")
    @classmethod
    def _from_environment(cls, v: Any) -> Any:
        """``env:NAME`` reads the secret from the environment, so it stays out of the file."""
        if isinstance(v, str) and v.startswith("env:"):
            name = v[4:]
            if name not in os.environ:
                raise ValueError(f"the environment variable {name} is not set")
            return os.environ[name]
        return v


class NotFound(ConnectorError):
    pass


@dataclass
class Seen:
    """What a listing found for one record, kept for ``get`` and the version checks."""

    raw: dict[str, Any]
    version: str
    at: float
    custom: Values | None = None
    parent: str | None = None  # a contact's client, a task's job


@dataclass
class Estimate:
    entity: str
    listing: int
    custom_values: int
    deferred: int
    day_left: int
    notes: list[str] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return self.listing + self.custom_values


def _h(value: Any) -> str:
    return content_hash({"v": value}, {})[:16]


class XpmConnector(ChangeCapture, Connector):
    """Changes come from a token (``ChangeCapture``): ``modifiedSince`` and the content
    hashes of the last listing; every kind of write is accepted (a job task's delete is
    refused by XPM's API, and said so)."""

    name: ClassVar[str] = "xpm"
    capabilities: ClassVar[Capabilities] = Capabilities(entities=ENTITIES, incremental=True)
    Options: ClassVar[type[ConnectorOptions]] = XpmOptions

    def __init__(self, options: ConnectorOptions, *, link: str = "",
                 transport: httpx.BaseTransport | None = None,
                 clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], None] | None = None, hub: Hub | None = None) -> None:
        super().__init__(options, link=link)
        assert isinstance(options, XpmOptions)
        self.opts = options
        self.clock = clock or time.time
        self.sleep = sleep or time.sleep
        if hub is None:
            if not options.hub_url:
                raise ConfigError("the xpm connector keeps its token set in the hub, and no hub "
                                  "is named", key="options.hub_url",
                                  fix="use the link from a concord.toml with a [hub] table")
            hub = Hub(options.hub_url, options.tenant)
        self.hub = hub
        self.http = httpx.Client(transport=transport or DEFAULT_TRANSPORT, timeout=options.timeout)
        self.vault = TokenVault(hub, options.token_key)
        self.tokens = Tokens(self.vault, self.http, client_id=options.client_id,
                             client_secret=options.client_secret, clock=self.clock,
                             sleep=self.sleep)
        self._gate: Gate | None = None
        self.seen: dict[str, dict[str, Seen]] = {}
        self._clients_at: float | None = None  # when the full client listing in ``seen`` was read
        self._jobs_at: float | None = None
        self._defs: Values | None = None
        self.last_estimate: dict[str, Estimate] = {}

    # -- calls ------------------------------------------------------------------------------
    @property
    def gate(self) -> Gate:
        if self._gate is None:
            self._gate = gate_for(f"{self.hub.tenant}:{self.tokens.account()}", self.clock,
                                  self.sleep, self.opts.max_wait)
        return self._gate

    def call(self, method: str, path: str, *, params: dict[str, str] | None = None,
             body: Any = None, what: str = "") -> Any:
        """One API call: the limits kept, 429 waited out or turned into a pause, a 401
        refreshed once, a 5xx or a timeout retried (a POST only when nothing was made)."""
        url = f"{self.opts.api_url}/v3.1/{path}"
        refreshed = False
        last = ""
        for attempt in range(self.opts.retries + 1):
            token = self.tokens.access_token()
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json",
                       "xero-tenant-id": self.tokens.account()}
            self.gate.acquire()
            mr = dr = None
            try:
                r = self.http.request(method, url, params=params, json=body, headers=headers)
                mr, dr = r.headers.get("X-MinLimit-Remaining"), r.headers.get("X-DayLimit-Remaining")
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                if method == "POST":  # the create may have been made: the caller decides
                    raise TransientError(f"XPM {what or path}: no answer ({last})") from exc
                self.sleep(min(30.0, 2.0 ** attempt))
                continue
            finally:
                self.gate.release(mr, dr)
            if r.status_code == 429:
                self.gate.note_429(r.headers.get("Retry-After"), r.headers.get("X-Rate-Limit-Problem"))
                continue
            if r.status_code == 401 and not refreshed:
                refreshed = True
                self.tokens.access_token(force=True)
                continue
            if r.status_code >= 500:
                last = f"HTTP {r.status_code}"
                if method == "POST":
                    raise TransientError(f"XPM {what or path}: {last} {r.text[:200]}")
                self.sleep(min(30.0, 2.0 ** attempt))
                continue
            if r.status_code == 404:
                raise NotFound(f"XPM {what or path}: not found")
            if r.status_code == 401:
                raise TerminalError("XPM refused the practice's access token after a refresh "
                                    "(fix: connect again with `concord xpm connect`)")
            if r.status_code >= 400:
                raise ItemInvalid(what or path, f"XPM refused it: {r.status_code} {_error_text(r)}",
                                  fix="correct the record named, or the value XPM names, "
                                      "and sync again")
            return r.json() if r.content else {}
        raise TransientError(f"XPM {what or path}: {last or 'no answer'} after "
                             f"{self.opts.retries + 1} tries; the next run tries again")

    # -- listings ---------------------------------------------------------------------------
    def _definitions(self) -> Values:
        if self._defs is None:
            self._defs = self.call("GET", "customfield.api/definition", what="field definitions").get(
                "customFieldDefinitions") or []
        return self._defs

    def _uses_custom(self, kind: str) -> bool:
        if not self.opts.custom_fields:
            return False
        key = {"client": "useClient", "job": "useJob"}[kind]
        return any(d.get(key) for d in self._definitions())

    def _custom(self, kind: str, ref: str) -> Values:
        if not self._uses_custom(kind):
            return []
        path = (f"client.api/get/{ref}/customfield" if kind == "client"
                else f"job.api/get/{ref}/customfield")
        got: Values = self.call("GET", path, what=f"{kind} {ref} custom fields").get(
            "customFields") or []
        return got

    def _list_clients(self, since: str | None = None) -> dict[str, dict[str, Any]]:
        params = {"detailed": "true"}
        if since:
            params["modifiedSince"] = since
        got = self.call("GET", "client.api/list", params=params, what="client list")
        return {c["uuid"]: c for c in got.get("clients") or [] if c.get("uuid")
                and not m.yes(c.get("isDeleted"))}

    def _all_clients(self, fresh: bool = False) -> dict[str, dict[str, Any]]:
        """The full client listing. The client pass reads it; the contacts and tax returns
        of the same run use that reading (until a write, or a minute later)."""
        now = self.clock()
        if fresh or self._clients_at is None or now - self._clients_at > 60 or "client:raw" not in self.seen:
            self.seen["client:raw"] = {k: Seen(v, "", now) for k, v in self._list_clients().items()}
            self._clients_at = now
        return {k: v.raw for k, v in self.seen["client:raw"].items()}

    def _all_jobs(self, fresh: bool = False) -> dict[str, dict[str, Any]]:
        now = self.clock()
        if fresh or self._jobs_at is None or now - self._jobs_at > 60 or "job:raw" not in self.seen:
            got = self.call("GET", "job.api/list", params={
                "from": self.opts.jobs_from, "to": self.opts.jobs_to, "detailed": "true"},
                what="job list")
            self.seen["job:raw"] = {j["id"]: Seen(j, "", now) for j in got.get("jobs") or []
                                    if j.get("id")}
            self._jobs_at = now
        return {k: v.raw for k, v in self.seen["job:raw"].items()}

    # -- versions ---------------------------------------------------------------------------
    @staticmethod
    def _base(entity: str, raw: dict[str, Any]) -> dict[str, Any]:
        if entity == "client":
            return {k: v for k, v in raw.items() if k not in ("contacts",) and k not in m.TAX_NAMED}
        if entity == "tax_return":
            return {k: raw.get(k) for k in sorted(m.TAX_NAMED)}
        if entity == "job":
            return {k: v for k, v in raw.items() if k != "tasks"}
        return raw

    def _custom_part(self, entity: str, custom: Values) -> Fields:
        values = m.custom_fields_of(custom)
        tax = {f"custom.{n}" for n in self.opts.tax_fields.values()}
        if entity == "tax_return":
            return {k: v for k, v in values.items() if k in tax}
        if entity == "client":
            return {k: v for k, v in values.items() if k not in tax}
        return values

    def _version(self, entity: str, raw: dict[str, Any], custom: Values | None,
                 parent: str | None = None) -> str:
        base = _h([self._base(entity, raw), parent])
        if entity not in CUSTOM_OWNER:
            return base
        return f"{base}.{_h(self._custom_part(entity, custom or []))}"

    def _budget(self) -> int:
        return max(0, self.gate.day_left() - self.opts.day_reserve)

    def changes(self, entity: str, token: str | None) -> Changes:
        ch = self._changes(entity, token)
        self._resolve_lost_creates(entity)
        return ch

    def _resolve_lost_creates(self, entity: str) -> None:
        """Creates sent whose answer never came (noted with no ref): a listed record that
        matches one by content, and has no ident yet, is the one it made; noting it lets the
        engine link it to its hub record instead of importing it as a new one."""
        rows = self.hub.spoke_idents(self.link, entity)
        lost = {r.ident: r for r in rows if r.ref is None}
        if not lost:
            return
        known = {r.ref for r in rows if r.ref is not None}
        for ident, row in lost.items():
            for ref, sn in self.seen.get(entity, {}).items():
                if ref in known:
                    continue
                got = self._item(entity, ref, Seen(sn.raw, sn.version, sn.at, sn.custom or [], sn.parent))
                if json.dumps(_identity(entity, got.fields)) == row.fingerprint:
                    self._note_ident(entity, ident, ref)
                    known.add(ref)
                    break

    def _changes(self, entity: str, token: str | None, dry: bool = False) -> Changes:
        state: dict[str, Any] = json.loads(token) if token else {}
        versions: dict[str, str] = dict(state.get("v") or {})
        now = self.clock()
        seen: dict[str, Seen] = {}
        complete = True
        recent: set[str] = set()
        modified: set[str] = set()
        new_state: dict[str, Any] = {}
        if entity == "client":
            full = not token or now - float(state.get("full_at") or 0) >= self.opts.full_every
            since = state.get("since")
            start = _iso(now - 1)  # XPM's modifiedSince has whole seconds
            if full:
                raws = self._all_clients(fresh=True)
                if since:
                    modified = set(self._list_clients(since)) if self._uses_custom("client") else set()
                new_state["full_at"] = now
            else:
                raws = self._list_clients(since)
                modified = set(raws)
                complete = False
                new_state["full_at"] = state.get("full_at")
            new_state["since"] = start
        elif entity == "tax_return":
            raws = {k: v for k, v in self._all_clients().items() if m.has_tax_return(v)}
        elif entity == "job":
            raws = self._all_jobs(fresh=True)
        elif entity == "contact":
            out: dict[str, str] = {}
            self.seen["contact"] = {}
            for cref, c in self._all_clients().items():
                for contact in c.get("contacts") or []:
                    if contact.get("uuid") and not m.yes(contact.get("isDeleted")):
                        v = self._version("contact", contact, None, cref)
                        self.seen["contact"][contact["uuid"]] = Seen(contact, v, now, parent=cref)
                        out[contact["uuid"]] = v
            return Changes(out, token=None, complete=True)
        elif entity == "task":
            out = {}
            self.seen["task"] = {}
            for jref, j in self._all_jobs().items():
                for t in j.get("tasks") or []:
                    if t.get("uuid"):
                        v = self._version("task", t, None, jref)
                        self.seen["task"][t["uuid"]] = Seen(t, v, now, parent=jref)
                        out[t["uuid"]] = v
            return Changes(out, token=None, complete=True)
        elif entity == "staff":
            got = self.call("GET", "staff.api/list", what="staff list").get("staffList") or []
            self.seen["staff"] = {r["uuid"]: Seen(r, self._version("staff", r, None), now)
                                  for r in got if r.get("uuid")}
            return Changes({k: v.version for k, v in self.seen["staff"].items()}, complete=True)
        elif entity == "custom_field":
            self._defs = None
            defs = self._definitions()
            self.seen["custom_field"] = {d["uuid"]: Seen(d, self._version("custom_field", d, None), now)
                                         for d in defs if d.get("uuid")}
            return Changes({k: v.version for k, v in self.seen["custom_field"].items()}, complete=True)
        else:
            raise TerminalError(f"xpm: no entity type {entity!r} (it carries {', '.join(ENTITIES)})")

        # records with custom field values: read them only where something changed
        kind = CUSTOM_OWNER[entity]
        need: list[tuple[int, str]] = []
        changed: dict[str, str] = {}
        fresh = set(state.get("fresh") or []) if not complete or state.get("since") == new_state.get("since") else set()
        for ref, raw in raws.items():
            old = versions.get(ref)
            base = self._version(entity, raw, []).split(".")[0]
            if old and old.split(".")[0] == base and (ref not in modified or ref in fresh):
                changed[ref] = old
                seen[ref] = Seen(raw, old, now)
                continue
            # most recently changed first: reported modified by XPM, then changed content,
            # then new records; jobs by number, newest first
            rank = 0 if ref in modified else 1 if old else 2
            need.append((rank, ref))
        if entity == "job":
            need.sort(key=lambda t: (t[0], [-ord(ch) for ch in t[1]]))
        else:
            need.sort(key=lambda t: t[0])
        costs = self._uses_custom(kind)
        allowed = self._budget() if costs else len(need)
        if costs and allowed < len(need) and modified:
            # not all of it today: which of the modified ones changed in the last hour
            recent = set(self._list_clients(_iso(now - 3600))) & modified
            need.sort(key=lambda t: (t[0], t[1] not in recent))
            allowed = self._budget()
        deferred = need[allowed:]
        if dry:  # an estimate: the listing only
            self.last_estimate[entity] = Estimate(entity, self.gate.used, min(allowed, len(need)),
                                                  len(deferred), self.gate.day_left())
            return Changes({}, token=token)
        done_refs: list[str] = []
        for _, ref in need[:allowed]:
            custom = self._custom(kind, ref) if costs else []
            v = self._version(entity, raws[ref], custom)
            changed[ref] = versions[ref] = v
            seen[ref] = Seen(raws[ref], v, now, custom)
            done_refs.append(ref)
        if deferred:
            self.hub.log_activity(
                "xpm", "call budget", link=self.link, entity=entity, outcome="deferred",
                detail=f"{len(done_refs)} changed record(s) synced, {len(deferred)} deferred to "
                       f"a later run: {self.gate.day_left()} of XPM's daily calls left")
        for _, ref in deferred:
            if ref in versions:
                changed[ref] = versions[ref]  # the old version: not taken for changed, nor deleted
        if complete:
            versions = {r: v for r, v in versions.items() if r in raws}
        self.seen[entity] = seen
        self.last_estimate[entity] = Estimate(entity, 1, len(done_refs), len(deferred),
                                              self.gate.day_left())
        new_state["v"] = versions
        if deferred and entity == "client":
            new_state["since"] = state.get("since") or new_state["since"]
            new_state["fresh"] = sorted(fresh | set(done_refs))
        return Changes(changed, token=json.dumps(new_state, sort_keys=True), complete=complete)

    def token_after_writes(self, entity: str, token: str, written: dict[str, str | None]) -> str:
        state = json.loads(token)
        if "v" not in state:
            return token
        for ref, version in written.items():
            if version is None:
                state["v"].pop(ref, None)
            else:
                state["v"][ref] = version
        return json.dumps(state, sort_keys=True)

    def current_token(self, entity: str) -> str | None:
        return None

    def list(self, entity: str) -> Iterable[tuple[str, str]]:
        return self.changes(entity, None).changed.items()

    def estimate(self, entity: str, token: str | None) -> Estimate:
        """The calls a run of ``entity`` from ``token`` will take, before it runs: the
        listings are read (a call or two; ``listing`` counts them), the custom field values
        of what changed are counted, not read."""
        used = self.gate.used
        if entity in CUSTOM_OWNER:
            self._changes(entity, token, dry=True)
            est = self.last_estimate[entity]
            est.listing = self.gate.used - used
        else:
            self._changes(entity, token)
            est = Estimate(entity, self.gate.used - used, 0, 0, self.gate.day_left())
        est.notes.append("writes: one or two calls per record sent to XPM, and a version "
                         "check unless this run listed the record moments before")
        self.last_estimate[entity] = est
        return est

    # -- reading items ----------------------------------------------------------------------
    def _item(self, entity: str, ref: str, sn: Seen) -> Item:
        raw = sn.raw
        if entity == "client":
            f, r = m.client_fields(raw, sn.custom or [], set(self.opts.tax_fields.values()))
        elif entity == "contact":
            f, r = m.contact_fields(raw, sn.parent or "")
        elif entity == "staff":
            f, r = m.staff_fields(raw)
        elif entity == "job":
            f, r = m.job_fields(raw, sn.custom or [])
        elif entity == "task":
            f, r = m.task_fields(raw, sn.parent or "")
        elif entity == "custom_field":
            f, r = m.definition_fields(raw)
        else:
            f, r = m.tax_fields(raw, sn.custom or [], self.opts.tax_fields)
        return Item(ref=ref, version=sn.version, fields=f, refs=r, ident=self._ident_of(entity, ref))

    def _fetch(self, entity: str, ref: str) -> Seen | None:
        """Read one record as XPM holds it now."""
        now = self.clock()
        try:
            if entity in ("client", "tax_return"):
                raw = self.call("GET", f"client.api/get/{ref}", what=f"client {ref}").get("client")
                if not raw or (entity == "tax_return" and not m.has_tax_return(raw)):
                    return None
                custom = self._custom("client", ref)
                return Seen(raw, self._version(entity, raw, custom), now, custom)
            if entity == "job":
                raw = self.call("GET", f"job.api/get/{ref}", what=f"job {ref}").get("job")
                if not raw:
                    return None
                custom = self._custom("job", ref)
                return Seen(raw, self._version(entity, raw, custom), now, custom)
            if entity == "staff":
                raw = self.call("GET", f"staff.api/get/{ref}", what=f"staff {ref}").get("staff")
                return Seen(raw, self._version(entity, raw, None), now) if raw else None
            if entity == "contact":
                raw = self.call("GET", f"client.api/contact/{ref}", what=f"contact {ref}").get("contact")
                if not raw or m.yes(raw.get("isDeleted")):
                    return None
                old = self.seen.get("contact", {}).get(ref)
                parent = old.parent if old else self._contact_client(ref)
                return Seen(raw, self._version(entity, raw, None, parent), now, parent=parent)
        except NotFound:
            return None
        # tasks and definitions have no single read: the listing
        self._jobs_at = None
        self.seen.pop("job:raw", None)
        self.changes(entity, None)
        return self.seen.get(entity, {}).get(ref)

    def _contact_client(self, ref: str) -> str | None:
        for cref, c in self._all_clients().items():
            if any(x.get("uuid") == ref for x in c.get("contacts") or []):
                return cref
        return None

    def get(self, entity: str, refs: Sequence[str]) -> Iterable[Item | ItemError]:
        cache = self.seen.get(entity, {})
        for ref in refs:
            sn = cache.get(ref)
            try:
                if sn is None or (entity in CUSTOM_OWNER and sn.custom is None):
                    sn = self._fetch(entity, ref)
                    if sn is None:
                        continue
                    self.seen.setdefault(entity, {})[ref] = sn
                yield self._item(entity, ref, sn)
            except (ItemInvalid, KeyError, TypeError, ValueError) as exc:
                yield ItemError(ref, f"XPM {entity} {ref}: {exc}")

    def fields(self, entity: str) -> tuple[str, ...] | None:
        return None

    def ref_fields(self, entity: str) -> dict[str, str]:
        return {"client": {"manager": "staff"}, "contact": {"client": "client"},
                "job": {"client": "client", "manager": "staff", "partner": "staff"},
                "task": {"job": "job", "assignee": "staff"},
                "tax_return": {"client": "client"}}.get(entity, {})

    # -- idents -------------------------------------------------------------------------------
    def _ident_of(self, entity: str, ref: str) -> str | None:
        if not hasattr(self, "_idents"):
            self._idents: dict[tuple[str, str], str] = {}
        key = (entity, ref)
        if key not in self._idents:
            ident = self.hub.spoke_ident_of(self.link, entity, ref)
            if ident is None:
                return None
            self._idents[key] = ident
        return self._idents[key]

    def _ident_row(self, entity: str, ident: str) -> Any:
        return self.hub.spoke_ident_row(self.link, entity, ident)

    def _note_ident(self, entity: str, ident: str, ref: str | None,
                    item: Item | None = None) -> None:
        values: dict[str, Any] = {"ref": ref}
        if item is not None:
            values["fingerprint"] = json.dumps(_identity(entity, item.fields))
        self.hub.note_spoke_ident(self.link, entity, ident, self.clock(), values)
        if ref is not None:
            if not hasattr(self, "_idents"):
                self._idents = {}
            self._idents[(entity, ref)] = ident

    # -- writing ------------------------------------------------------------------------------
    def _current(self, entity: str, ref: str, expected: str | None) -> Seen:
        sn = self.seen.get(entity, {}).get(ref)
        if sn is None or sn.version != expected or self.clock() - sn.at > 30 or (
                entity in CUSTOM_OWNER and sn.custom is None):
            sn = self._fetch(entity, ref)
        if sn is None:
            raise PreconditionFailed(ref, expected, None)
        if expected is not None and sn.version != expected:
            raise PreconditionFailed(ref, expected, sn.version)
        return sn

    def _schema(self, name: str) -> dict[str, str]:
        return _REQUEST_TYPES[name]

    def _write_custom(self, kind: str, ref: str, fields: Fields, names: set[str] | None = None,
                      old: Values | None = None) -> Values:
        """Write the record's custom.<name> values that changed; returns the values now."""
        if not self.opts.custom_fields:
            return old or []
        want = {k[len("custom."):]: v for k, v in fields.items() if k.startswith("custom.")}
        if names is not None:
            want = {k: v for k, v in want.items() if k in names}
        have = m.custom_fields_of(old or [])
        defs = {d.get("name"): d for d in self._definitions()}
        out = [dict(v) for v in old or []]
        updates: Values = []
        tax = set(self.opts.tax_fields.values())
        for name in sorted(set(want) | {k[len("custom."):] for k in have}):
            if (name not in names) if names is not None else (name in tax):
                continue
            value = want.get(name)
            if have.get(f"custom.{name}") == value:
                continue
            d = defs.get(name)
            if d is None:
                raise ItemInvalid(f"{kind} {ref}", f"XPM has no custom field {name!r}",
                                  fix="add it in XPM, or sync the field definitions first")
            key = VALUE_KEY.get(str(d.get("type") or "text").lower().replace("-", "").replace(" ", ""),
                                "text")
            if key == "number" and isinstance(value, float) and not value.is_integer():
                key = "decimal"
            entry: dict[str, Any] = {"uuid": d["uuid"], "name": name}
            if value is not None:
                entry[key] = int(value) if key == "number" else value
            updates.append(entry)
            out = [v for v in out if v.get("name") != name]
            if value is not None:
                out.append(entry)
        if updates:
            path = (f"client.api/update/{ref}/customfield" if kind == "client"
                    else f"job.api/update/{ref}/customfield")
            self.call("PUT", path, body={"customFields": updates}, what=f"{kind} {ref} custom fields")
        return out

    def _adopt(self, entity: str, ident: str, item: Item) -> str | None:
        """A create with this ident was sent before and its answer lost: find what it made."""
        row = self._ident_row(entity, ident)
        if row is None:
            return None
        if row.ref:
            return str(row.ref)
        self._clients_at = self._jobs_at = None
        self.seen.pop("client:raw", None)
        self.seen.pop("job:raw", None)
        listed = dict(self.changes(entity, None).changed)
        known = {r.ref for r in self.hub.spoke_idents(self.link, entity)}
        want = row.fingerprint or json.dumps(_identity(entity, item.fields))
        for ref in listed:
            if ref in known:
                continue
            sn = self.seen.get(entity, {}).get(ref)
            if sn is None:
                continue
            got = self._item(entity, ref, sn) if entity not in CUSTOM_OWNER or sn.custom is not None \
                else self._item(entity, ref, Seen(sn.raw, sn.version, sn.at, [], sn.parent))
            if json.dumps(_identity(entity, got.fields)) == want:
                self._note_ident(entity, ident, ref)
                return ref
        return None

    def _written(self, entity: str) -> None:
        """A write makes this run's listings of that family stale."""
        if entity in ("client", "contact", "tax_return"):
            self._clients_at = None
        if entity in ("job", "task"):
            self._jobs_at = None

    def create(self, entity: str, item: Item, ident: str) -> tuple[str, str]:
        self._written(entity)
        found = self._adopt(entity, ident, item)
        if found is not None:
            sn = self._fetch(entity, found)
            if sn is not None:
                return found, sn.version
        self._note_ident(entity, ident, None, item)
        f, r = item.fields, item.refs
        now = self.clock()
        if entity == "client":
            got = self.call("POST", "client.api/add", body=_clean(m.client_body(
                f, r, self._schema("ClientAddRequestDto"))), what=f"new client {f.get('name')!r}")
            raw = got["client"]
            ref = raw["uuid"]
            custom = self._write_custom("client", ref, f, old=[]) if any(
                k.startswith("custom.") for k in f) else []
            sn = Seen(raw, self._version("client", raw, custom), now, custom)
        elif entity == "contact":
            client = r.get("client")
            if not client:
                raise ItemInvalid(ident, "an XPM contact belongs to a client",
                                  fix="give the contact a client")
            got = self.call("POST", "client.api/contact", body={
                **_clean(m.contact_body(f, r)), "client": {"uuid": client}}, what="new contact")
            raw = got["contact"]
            ref = raw["uuid"]
            sn = Seen(raw, self._version("contact", raw, None, client), now, parent=client)
        elif entity == "staff":
            raw = self.call("POST", "staff.api/add", body=_clean(m.staff_body(f)),
                            what="new staff")["staff"]
            ref = raw["uuid"]
            sn = Seen(raw, self._version("staff", raw, None), now)
        elif entity == "job":
            client = r.get("client")
            if not client:
                raise ItemInvalid(ident, "an XPM job belongs to a client", fix="give the job a client")
            body = {**_clean(m.job_body(f, r)), "clientUuid": client}
            if f.get("code"):
                body["id"] = f["code"]
            raw = self.call("POST", "job.api/add", body=body, what=f"new job {f.get('name')!r}")["job"]
            ref = raw["id"]
            if f.get("state") and f["state"] != raw.get("state"):
                self.call("PUT", "job.api/state", body={"id": ref, "state": f["state"]}, what=f"job {ref} state")
                raw["state"] = f["state"]
            custom = self._write_custom("job", ref, f, old=[]) if any(
                k.startswith("custom.") for k in f) else []
            sn = Seen(raw, self._version("job", raw, custom), now, custom)
        elif entity == "task":
            job = r.get("job")
            if not job:
                raise ItemInvalid(ident, "an XPM task belongs to a job", fix="give the task a job")
            ref = self.call("POST", "job.api/task", body={**_clean(m.task_body(f)), "job": job},
                            what="new task")["uuid"]
            if f.get("status") == "COMPLETED":
                self.call("PUT", f"job.api/task/{ref}/complete", what=f"task {ref}")
            self._note_ident(entity, ident, ref)
            sn2 = self._fetch("task", ref)
            if sn2 is None:
                raise TransientError(f"XPM task {ref} was made but is not listed yet")
            return ref, sn2.version
        elif entity == "custom_field":
            ref = self.call("POST", "customfield.api/add", body=_clean(m.definition_body(f)),
                            what=f"new custom field {f.get('name')!r}")["uuid"]
            self._defs = None
            self._note_ident(entity, ident, ref)
            sn2 = self._fetch("custom_field", ref)
            if sn2 is None:
                raise TransientError(f"XPM custom field {ref} was made but is not listed yet")
            return ref, sn2.version
        else:  # tax_return: the client's tax fields
            client = r.get("client")
            if not client:
                raise ItemInvalid(ident, "a tax return belongs to a client", fix="give it a client")
            self._note_ident(entity, ident, client)
            return client, self._write_tax(client, f, None)
        self._note_ident(entity, ident, ref)
        self.seen.setdefault(entity, {})[ref] = sn
        return ref, sn.version

    def _write_tax(self, client: str, f: Fields, cur: Seen | None) -> str:
        names = set(self.opts.tax_fields.values())
        raw = self.call("PUT", "client.api/update", body={"uuid": client, **m.tax_body(f)},
                        what=f"client {client} tax fields")["client"]
        old = cur.custom if cur is not None else self._custom("client", client)
        custom = self._write_custom("client", client, {
            f"custom.{k}": v for k, v in m.tax_custom_values(f, self.opts.tax_fields).items()},
            names=names, old=old)
        sn = Seen(raw, self._version("tax_return", raw, custom), self.clock(), custom)
        self.seen.setdefault("tax_return", {})[client] = sn
        return sn.version

    def update(self, entity: str, ref: str, item: Item, expected_version: str | None) -> str:
        cur = self._current(entity, ref, expected_version)
        self._written(entity)
        f, r = item.fields, item.refs
        now = self.clock()
        if entity == "client":
            body = {**m.client_body(f, r, self._schema("ClientUpdateRequestDto")), "uuid": ref}
            raw = self.call("PUT", "client.api/update", body=body, what=f"client {ref}")["client"]
            custom = self._write_custom("client", ref, f, old=cur.custom)
            sn = Seen(raw, self._version("client", raw, custom), now, custom)
        elif entity == "contact":
            raw = self.call("PUT", f"client.api/contact/{ref}", body=m.contact_body(f, r),
                            what=f"contact {ref}")["contact"]
            sn = Seen(raw, self._version("contact", raw, None, cur.parent), now, parent=cur.parent)
        elif entity == "staff":
            raw = self.call("PUT", "staff.api/update", body={**_clean(m.staff_body(f)), "uuid": ref},
                            what=f"staff {ref}")["staff"]
            sn = Seen(raw, self._version("staff", raw, None), now)
        elif entity == "job":
            raw = self.call("PUT", "job.api/update", body={**m.job_body(f, r), "id": ref},
                            what=f"job {ref}")["job"]
            if f.get("state") and f["state"] != raw.get("state"):
                self.call("PUT", "job.api/state", body={"id": ref, "state": f["state"]}, what=f"job {ref} state")
                raw["state"] = f["state"]
            custom = self._write_custom("job", ref, f, old=cur.custom)
            sn = Seen(raw, self._version("job", raw, custom), now, custom)
        elif entity == "task":
            self.call("PUT", "job.api/task", body={**m.task_body(f), "uuid": ref}, what=f"task {ref}")
            was = bool(cur.raw.get("completed"))
            if (f.get("status") == "COMPLETED") != was:
                self.call("PUT", f"job.api/task/{ref}/{'reopen' if was else 'complete'}", what=f"task {ref}")
            sn2 = self._fetch("task", ref)
            if sn2 is None:
                raise PreconditionFailed(ref, expected_version, None)
            return sn2.version
        elif entity == "custom_field":
            self.call("PUT", "customfield.api/update", body={**_clean(m.definition_body(f)), "uuid": ref},
                      what=f"custom field {ref}")
            self._defs = None
            sn2 = self._fetch("custom_field", ref)
            if sn2 is None:
                raise PreconditionFailed(ref, expected_version, None)
            return sn2.version
        else:
            return self._write_tax(ref, f, cur)
        self.seen.setdefault(entity, {})[ref] = sn
        return sn.version

    def delete(self, entity: str, ref: str, expected_version: str | None) -> None:
        cur = self._current(entity, ref, expected_version)
        self._written(entity)
        if entity == "client":
            self.call("POST", "client.api/delete", body={"uuid": ref}, what=f"client {ref}")
        elif entity == "contact":
            self.call("DELETE", f"client.api/contact/{ref}", what=f"contact {ref}")
        elif entity == "staff":
            self.call("POST", "staff.api/delete", body={"uuid": ref}, what=f"staff {ref}")
        elif entity == "job":
            self.call("POST", "job.api/delete", body={"id": ref}, what=f"job {ref}")
        elif entity == "custom_field":
            self.call("POST", "customfield.api/delete", body={"uuid": ref}, what=f"custom field {ref}")
            self._defs = None
        elif entity == "tax_return":
            self.call("PUT", "client.api/update", body={"uuid": ref, "prepareTaxReturn": "No",
                                                        "returnType": ""}, what=f"client {ref}")
            self._write_custom("client", ref, {}, names=set(self.opts.tax_fields.values()),
                               old=cur.custom)
        else:
            raise TerminalError("XPM's API cannot delete a job task (fix: delete it in XPM, "
                                "or sync tasks one way from XPM)")
        self.seen.get(entity, {}).pop(ref, None)

    # -- lifecycle ------------------------------------------------------------------------------
    def check(self) -> builtins.list[str]:
        if self.vault.load() is None:
            return [f"link {self.link!r} is not connected to Xero Practice Manager (fix: run "
                    f"`concord xpm connect {self.link}` and log in as an XPM user)"]
        return []

    def wait_for_change(self, timeout: float) -> bool:
        self.sleep(timeout)
        return True

    def close(self) -> None:
        self.http.close()


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _clean(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None and v != ""}


def _error_text(r: httpx.Response) -> str:
    try:
        got = r.json()
    except ValueError:
        return r.text[:200]
    if isinstance(got, dict):
        return str(got.get("errorDescription") or got.get("error") or got)[:300]
    return str(got)[:300]


def _identity(entity: str, fields: Fields) -> Any:
    """What makes a listed record the one a lost create made: its content as the connector
    reads it back (the fields XPM keeps as they were sent)."""
    keys = {"task": ("summary", "description"), "tax_return": ("form",),
            "custom_field": ("name", "type")}.get(entity, ("name", "emails", "code"))
    return tuple(json.dumps(fields.get(k), sort_keys=True) for k in keys)


def _request_types() -> dict[str, dict[str, str]]:
    """Request schema property -> JSON type, for the bodies built from extras."""
    types = {"string": "string", "integer": "integer", "number": "number",
             "boolean": "boolean", "array": "array", None: "object"}
    client_common = {
        "name", "firstName", "lastName", "otherName", "middleName", "title", "gender", "email",
        "dateOfBirth", "dateOfDeath", "placeOfBirthCity", "placeOfBirthCountryCode", "address",
        "city", "region", "postCode", "country", "postalAddress", "postalCity", "postalRegion",
        "postalPostCode", "postalCountry", "phone", "fax", "webSite", "referralSource",
        "exportCode", "isProspect", "billingClientUuid", "accountManagerUuid", "jobManagerUuid",
        "taxNumber", "companyNumber", "businessNumber", "branchNumber", "businessStructure",
        "balanceMonth", "gstRegistered", "prepareGst", "gstPeriod", "gstBasis",
        "provisionalTaxBasis", "provisionalTaxRatio", "signedTaxAuthority", "taxAgent",
        "agencyStatus", "prepareActivityStatement", "prepareTaxReturn", "autoBasOptInCriteria",
        "returnType", "activeAtoClient", "clientCode"}
    special = {"gstPeriod": "integer", "provisionalTaxRatio": "number",
               "autoBasOptInCriteria": "object"}
    base = {k: special.get(k, "string") for k in client_common}
    del types
    return {"ClientAddRequestDto": base, "ClientUpdateRequestDto": {**base, "uuid": "string"}}


_REQUEST_TYPES = _request_types()
