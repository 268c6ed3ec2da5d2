"""CardDAV and CalDAV connectors: refs are hrefs, versions are etags, idents are UIDs.

Both share one shape (``DavConnector``); a subclass says which resource it speaks
(vCard or iCalendar), how to read fields from a resource and how to write them back
patching only what Concord maps. Reads use sync-collection tokens where the server has
them and multiget in chunks; writes are conditional and pipelined; a first upload to an
empty collection goes in one request where the server accepts a whole-collection PUT.
"""

from __future__ import annotations

import builtins
import contextlib
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr

from concord.connectors.base import (
    ChangeCapture,
    Changes,
    Connector,
    ConnectorOptions,
    Item,
    ItemError,
    StreamedMigration,
    WriteOp,
    WriteResult,
)
from concord.connectors.dav.client import DavClient, HTTPError, SyncTokenExpired
from concord.errors import (
    ConcordError,
    ConfigError,
    ItemInvalid,
    PreconditionFailed,
    TerminalError,
    TransientError,
)
from concord.model import written_uid
from concord.records import content_hash


class DavOptions(ConnectorOptions):
    url: str = Field(description="collection URL, or the server/principal URL to discover from")
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = Field(default=None, description="bearer token instead of Basic")
    verify_tls: bool | str = Field(default=True, description="False, or a CA bundle path")
    collections: dict[str, str] = Field(
        default_factory=dict,
        description="entity -> collection URL, path, or name under the home set")
    create_collection: bool = Field(default=False, description="MKCOL a missing collection")
    timeout: float = 30.0
    max_connections: int = Field(default=4, ge=1, le=64,
                                 description="parallel writes per server, shared by links")
    multiget_chunk: int = Field(default=200, ge=1, le=5000)
    max_item_bytes: int = Field(default=2_000_000, ge=1024)
    bulk_upload: bool = Field(default=True,
                              description="one whole-collection PUT for a first upload")
    bulk_min_items: int = Field(default=20, ge=1)
    poll_interval: float = Field(default=2.0, gt=0,
                                 description="seconds between change polls when watching")


class NotThisEntity(Exception):
    """A resource of another kind in a shared collection (an event in the tasks
    calendar): skipped, not an error."""


@dataclass(slots=True)
class Parsed:
    fields: dict[str, Any]
    uid: str | None
    refs: dict[str, str | None] = field(default_factory=dict)


class DavConnector(Connector, StreamedMigration, ChangeCapture):
    """What CardDAV and CalDAV share."""

    name: ClassVar[str] = "dav"
    Options: ClassVar[type[ConnectorOptions]] = DavOptions
    kind: ClassVar[str] = "card"  # "card" | "cal"
    suffix: ClassVar[str] = ".vcf"
    content_type: ClassVar[str] = "text/vcard; charset=utf-8"
    collection_tag: ClassVar[str] = "VADDRESSBOOK"

    def __init__(self, options: ConnectorOptions, *, link: str = "") -> None:
        super().__init__(options, link=link)
        assert isinstance(options, DavOptions)
        self.opts: DavOptions = options
        self.client = DavClient(
            options.url, username=options.username,
            password=options.password.get_secret_value() if options.password else None,
            token=options.token.get_secret_value() if options.token else None,
            verify=options.verify_tls, timeout=options.timeout,
            max_connections=options.max_connections, max_item_bytes=options.max_item_bytes)
        self._collections: dict[str, str] = {}
        self._raw: dict[str, tuple[str, str]] = {}  # href -> (etag, text) last read or written
        self._uids: dict[str, dict[str, str]] = {}  # entity -> uid -> href, duplicate check
        self._bulk_refused = False
        self._bulk_state: dict[str, tuple[str | None, set[str]]] = {}  # entity -> (etag, hrefs)
        self._watched: dict[str, str | None] | None = None  # collection -> etag last seen

    # -- what a subclass provides --------------------------------------------------
    def parse(self, entity: str, href: str, text: str) -> Parsed:
        raise NotImplementedError

    def render_new(self, entity: str, fields: dict[str, Any], uid: str,
                   refs: dict[str, str | None] | None = None) -> str:
        raise NotImplementedError

    def render_patch(self, entity: str, original: str, fields: dict[str, Any], href: str,
                     refs: dict[str, str | None] | None = None) -> str:
        raise NotImplementedError

    def component(self, entity: str) -> str | None:
        """The calendar component ``entity`` lives in (None for vCards)."""
        return None

    def bulk_body(self, texts: list[str]) -> str:
        raise NotImplementedError

    # -- collections -----------------------------------------------------------------
    def collection(self, entity: str) -> str:
        """The collection path of ``entity``, discovered (and created) once."""
        if entity not in self.capabilities.entities:
            raise ConfigError(f"{self.name} does not hold {entity!r} records",
                              source=f"link {self.link!r}", key="entities",
                              fix=f"use one of: {', '.join(self.capabilities.entities)}")
        path = self._collections.get(entity)
        if path is None:
            path = self._collections[entity] = self._resolve(entity)
        return path

    def _resolve(self, entity: str) -> str:
        want = self.opts.collections.get(entity)
        if want and ("://" in want or want.startswith("/")):
            path = urlsplit(want).path if "://" in want else want
            return self._ensure(path if path.endswith("/") else path + "/", entity)
        found = self.client.discover(self.kind)
        base = urlsplit(self.client.url).path
        comp = self.component(entity)
        if want:
            for href, info in found:
                if want in (href.rstrip("/").rsplit("/", 1)[-1], info["displayname"]):
                    return href
            if self.opts.create_collection:
                return self._create(self.client.home_set(self.kind) + want + "/", want)
            raise ConfigError(f"no collection named {want!r} at {self.client.url}",
                              source=f"link {self.link!r}", key=f"options.collections.{entity}",
                              fix="create it, set create_collection: true, or use one of: "
                                  + ", ".join(h for h, _ in found))
        for href, _info in found:  # the URL given is itself a collection
            if href == base:
                return href
        usable = [h for h, i in found if comp is None or not i["components"]
                  or comp in i["components"]]
        if usable:
            return usable[0]
        if self.opts.create_collection:
            name = f"concord-{entity}s"
            return self._create(self.client.home_set(self.kind) + name + "/", name)
        raise ConfigError(f"no {'address book' if self.kind == 'card' else 'calendar'} for "
                          f"{entity} records at {self.client.url}", source=f"link {self.link!r}",
                          key="options.url", fix="give the collection URL, or set "
                          "create_collection: true")

    def _ensure(self, path: str, entity: str) -> str:
        try:
            self.client.propfind(path, ["D:resourcetype"])
        except HTTPError as exc:
            if exc.code != 404 or not self.opts.create_collection:
                if exc.code == 404:
                    raise TerminalError(
                        f"{self.client.abs(path)}: no such collection (fix: create it, or set "
                        "create_collection: true in the link options)") from exc
                raise
            return self._create(path, path.rstrip("/").rsplit("/", 1)[-1])
        return path

    def _create(self, path: str, displayname: str) -> str:
        self.client.make_collection(path, self.kind, displayname)
        return path

    def check(self) -> list[str]:
        problems = []
        for entity in self.opts.collections or {self.capabilities.entities[0]: ""}:
            try:
                self.collection(entity)
            except ConcordError as exc:
                problems.append(str(exc))
        return problems

    # -- reading -----------------------------------------------------------------------
    def list(self, entity: str) -> Iterable[tuple[str, str]]:
        return self.client.list_etags(self.collection(entity), self.component(entity)).items()

    # A link's change token is composite: the collection's etag (a cheap "anything new?"
    # check; one PROPFIND) and the RFC 6578 sync-token (what changed). Radicale scans the
    # whole collection for a sync report, so a no-op run must not need one. After a bulk
    # upload the sync part is left empty: asking Radicale for a token then would make it
    # write a history file per item (seconds per thousand); a later change is found by
    # an etag listing instead, which costs no more on Radicale than a sync report.
    def changes(self, entity: str, token: str | None) -> Changes:
        coll = self.collection(entity)
        etag, sync = _split(token)
        if token and etag is not None:
            now = self.client.collection_etag(coll)
            if now == etag:
                return Changes(changed={}, token=token, complete=False)
        if sync:
            before = self.client.collection_etag(coll)
            try:
                changed, deleted, new = self.client.sync_collection(coll, sync)
            except SyncTokenExpired:
                pass  # fall back to a full listing below
            else:
                steady = before if before and before == self.client.collection_etag(coll) else None
                return Changes(changed=changed, deleted=deleted, token=_join(steady, new),
                               complete=False)
        self._uids.pop(entity, None)
        before = self.client.collection_etag(coll)
        if token and not sync:  # listing mode (after a bulk upload)
            listed = dict(self.list(entity))
            steady = before if before and before == self.client.collection_etag(coll) else None
            return Changes(changed=listed, token=_join(steady, None) if steady else None,
                           complete=True)
        try:
            changed, _, new = self.client.sync_collection(coll, None)
        except HTTPError:  # no sync-collection here: etags only, no token
            return Changes(changed=dict(self.list(entity)), token=None, complete=True)
        if self.component(entity):  # a shared calendar lists other components too
            changed = dict(self.list(entity))
        steady = before if before and before == self.client.collection_etag(coll) else None
        return Changes(changed=changed, token=_join(steady, new), complete=True)

    def token_after_writes(self, entity: str, token: str, written: dict[str, str | None]) -> str:
        """A token past Concord's own writes, if nothing but those writes happened since
        ``token``; else ``token`` unchanged. Servers may leave out of a diff an item created
        and deleted since the token (Xandikos does), so a token taken before our creates
        would hide a delete made right after them."""
        coll = self.collection(entity)
        bulk = self._bulk_state.pop(entity, None)
        if bulk is not None and set(written) == bulk[1]:
            return _join(bulk[0], None)  # the collection holds exactly our upload
        _, sync = _split(token)
        if not sync:
            return token  # listing mode: the next listing sorts it out
        try:
            before = self.client.collection_etag(coll)
            changed, deleted, new = self.client.sync_collection(coll, sync)
            after = self.client.collection_etag(coll)
        except ConcordError:
            return token
        if new is None:
            return token
        for href, version in written.items():
            if version is None:
                if href in changed:
                    return token
            elif changed.get(href) != version:
                return token  # changed again since, or gone (maybe not reported)
        if any(h not in written for h in changed) or any(
                written.get(h, "") is not None for h in deleted):
            return token
        return _join(before if before and before == after else None, new)

    def current_token(self, entity: str) -> str | None:
        coll = self.collection(entity)
        etag, sync = self.client.collection_state(coll)
        return _join(etag, sync) if sync or etag else None

    def get(self, entity: str, refs: Sequence[str]) -> Iterable[Item | ItemError]:
        coll = self.collection(entity)
        seen = self._uids.setdefault(entity, {})
        for f in self.client.multiget(coll, self.kind, list(refs), self.opts.multiget_chunk):
            if f.status != 200 or f.data is None:
                continue
            item = self._to_item(entity, f.href, f.etag or "", f.data)
            if item is None:  # another entity's resource in a shared collection
                continue
            if isinstance(item, Item) and item.ident:
                other = seen.setdefault(item.ident, f.href)
                if other != f.href:
                    yield ItemError(f.href, f"{f.href}: duplicate UID {item.ident!r}, also used "
                                    f"by {other} (fix: delete one of them or give it a new UID)",
                                    payload=f.data[:100_000])
                    continue
            yield item

    def _to_item(self, entity: str, href: str, etag: str, data: str) -> Item | ItemError | None:
        if len(data.encode()) > self.opts.max_item_bytes:
            return ItemError(href, f"{href}: {len(data.encode())} bytes, over the "
                             f"{self.opts.max_item_bytes}-byte limit (fix: shrink the item, e.g. "
                             "remove a large photo or attachment, or raise max_item_bytes)")
        try:
            parsed = self.parse(entity, href, data)
        except NotThisEntity:
            return None
        except ValueError as exc:
            return ItemError(href, str(exc) if href in str(exc) else f"{href}: {exc}",
                             payload=data[:100_000])
        self._raw[href] = (etag, data)
        return Item(href, etag, parsed.fields, refs=parsed.refs, ident=parsed.uid)

    def scan(self, entity: str, after: str | None = None, batch: int = 500
             ) -> Iterator[builtins.list[Item | ItemError]]:
        """Every item, ``batch`` at a time, in href order, starting after ``after``."""
        refs = sorted(r for r, _ in self.list(entity) if after is None or r > after)
        for i in range(0, len(refs), batch):
            # a multiget answers in the server's order: sorted, so the batch's last ref is
            # the position a resumed migration starts after
            yield sorted(self.get(entity, refs[i:i + batch]), key=lambda it: it.ref)

    # -- writing -------------------------------------------------------------------------
    def _href_for(self, entity: str, ident: str) -> str:
        return self.collection(entity) + ident + self.suffix

    def create(self, entity: str, item: Item, ident: str) -> tuple[str, str]:
        href = self._href_for(entity, ident)
        text = self.render_new(entity, item.fields, ident, item.refs)
        try:
            etag = self.client.put(href, text, self.content_type, create=True, ref=href)
        except PreconditionFailed:
            return self._found_again(entity, href, item, ident)
        except HTTPError as exc:
            raise ItemInvalid(href, f"refused by the server ({exc})",
                              fix="check the record's fields") from exc
        self._raw[href] = (etag, text)
        return href, etag

    def _found_again(self, entity: str, href: str, item: Item, ident: str) -> tuple[str, str]:
        """A create that finds its href taken: the same record (a retried create whose
        answer was lost) is found again; anything else is a conflict."""
        got = self.client.get(href)
        if got is not None:
            etag, text = got
            parsed = self._to_item(entity, href, etag or "", text)
            names = self.fields(entity)
            if isinstance(parsed, Item) and parsed.ident in (ident, item.fields.get("uid")) and etag and _same(
                    parsed.fields, item.fields, names):
                return href, etag
        raise PreconditionFailed(href, None, got[0] if got else None)

    def update(self, entity: str, ref: str, item: Item, expected_version: str | None) -> str:
        cached = self._raw.get(ref)
        if cached is None or (expected_version and cached[0] != expected_version):
            got = self.client.get(ref)
            if got is None:
                raise PreconditionFailed(ref, expected_version, None)
            cached = (got[0] or "", got[1])
        etag, original = cached
        if expected_version and etag and etag != expected_version:
            raise PreconditionFailed(ref, expected_version, etag)
        try:
            text = self.render_patch(entity, original, item.fields, ref, item.refs)
        except ValueError:
            text = self.render_new(entity, item.fields, item.ident or ref.rsplit("/", 1)[-1]
                                   .removesuffix(self.suffix), item.refs)
        if text == original and etag:
            return etag  # nothing Concord maps changed (e.g. a status the spoke shows alike)
        try:
            new = self.client.put(ref, text, self.content_type, etag=expected_version or etag,
                                  ref=ref)
        except HTTPError as exc:
            if exc.code == 404:
                raise PreconditionFailed(ref, expected_version, None) from exc
            raise ItemInvalid(ref, f"refused by the server ({exc})") from exc
        self._raw[ref] = (new, text)
        return new

    def delete(self, entity: str, ref: str, expected_version: str | None) -> None:
        self.client.delete(ref, expected_version, ref=ref)
        self._raw.pop(ref, None)

    def apply(self, entity: str, ops: Sequence[WriteOp]) -> builtins.list[WriteResult]:
        if (self.opts.bulk_upload and not self._bulk_refused and len(ops) >= self.opts.bulk_min_items
                and all(op.kind == "create" for op in ops)):
            done = self._bulk_create(entity, ops)
            if done is not None:
                return done

        def job(op: WriteOp) -> WriteResult:
            if op.kind == "create":
                assert op.item is not None and op.ident is not None
                ref, version = self.create(entity, op.item, op.ident)
                return WriteResult(ref=ref, version=version)
            if op.kind == "update":
                assert op.item is not None and op.ref is not None
                return WriteResult(ref=op.ref, version=self.update(
                    entity, op.ref, op.item, op.expected_version))
            assert op.ref is not None
            self.delete(entity, op.ref, op.expected_version)
            return WriteResult(ref=op.ref)

        out: builtins.list[WriteResult] = []
        for op, res in zip(ops, self.client.pipelined([_bind(job, op) for op in ops]),
                           strict=True):
            out.append(WriteResult(ref=op.ref, error=res) if isinstance(res, Exception) else res)
        return out

    def _bulk_create(self, entity: str, ops: Sequence[WriteOp]) -> builtins.list[WriteResult] | None:
        """One whole-collection PUT when the collection is empty and the server takes it
        (Radicale does): 10,000 contacts in seconds instead of one PUT each. The PUT is
        conditional on the empty collection's etag, so nothing written meanwhile is lost;
        None means "not possible here", and the caller writes item by item."""
        if any(op.item is not None and op.ident is not None
               and written_uid(op.item.fields, op.ident) != op.ident for op in ops):
            # the server names bulk items by UID: one that is not the hub id (an Outlook
            # UID, a urn:uuid: UID) would land where Concord does not look for it
            return None
        coll = self.collection(entity)
        if self.client.list_etags(coll):
            return None
        etag, _ = self.client.collection_state(coll)
        if not etag:
            self._bulk_refused = True
            return None
        texts: builtins.list[str] = []
        hrefs: builtins.list[str] = []
        for op in ops:
            assert op.item is not None and op.ident is not None
            try:
                texts.append(self.render_new(entity, op.item.fields, op.ident, op.item.refs))
            except ValueError:
                return None  # let the item-by-item path report the bad one alone
            hrefs.append(self._href_for(entity, op.ident))
        name = self._displayname(coll)
        try:
            # the server parses everything before answering: allow for it
            self.client.request("PUT", coll, body=self.bulk_body(texts).encode(), headers={
                "Content-Type": self.content_type, "If-Match": etag},
                timeout=self.opts.timeout + 0.01 * len(texts))
        except PreconditionFailed:
            return None  # someone wrote meanwhile: go item by item
        except HTTPError:
            self._bulk_refused = True
            return None
        if name:
            with contextlib.suppress(HTTPError, TransientError):
                self.client.request("PROPPATCH", coll, body=_proppatch(name))
        after = self.client.collection_etag(coll)
        listed = self.client.list_etags(coll)
        if set(listed) == set(hrefs) and after == self.client.collection_etag(coll):
            self._bulk_state[entity] = (after, set(hrefs))  # nobody else wrote meanwhile
        out = []
        for href, text in zip(hrefs, texts, strict=True):
            version = listed.get(href)
            if version is None:
                out.append(WriteResult(error=TransientError(
                    f"{href}: not found after the bulk upload; it will be retried")))
            else:
                self._raw[href] = (version, text)
                out.append(WriteResult(ref=href, version=version))
        return out

    def _displayname(self, coll: str) -> str | None:
        rs = self.client.propfind(coll, ["D:displayname"])
        return rs[0].text("{DAV:}displayname") if rs else None

    def wait_for_change(self, timeout: float) -> bool:
        """Poll the collections' etags (one PROPFIND each) until one moves: a watching
        link then syncs only when the groupware changed, not on every tick."""
        deadline = time.monotonic() + timeout
        try:
            colls = sorted({self.collection(e) for e in (self.opts.collections
                                                        or self.capabilities.entities[:1])})
            if self._watched is None:
                self._watched = {c: self.client.collection_etag(c) for c in colls}
                return True  # no baseline yet: whatever happened before, sync once
            while True:
                for c in colls:
                    now = self.client.collection_etag(c)
                    if now != self._watched.get(c):
                        self._watched[c] = now
                        return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                time.sleep(min(self.opts.poll_interval, left))
        except ConcordError:
            time.sleep(max(0.0, deadline - time.monotonic()))
            return True  # let the run itself report what is wrong

    def close(self) -> None:
        self.client.close()


_TOKEN_PREFIX = "dav1|"


def _join(etag: str | None, sync: str | None) -> str:
    return f"{_TOKEN_PREFIX}{etag or ''}|{sync or ''}"


def _split(token: str | None) -> tuple[str | None, str | None]:
    """(collection etag, sync-token) of a link token; a bare token is a sync-token."""
    if not token:
        return None, None
    if not token.startswith(_TOKEN_PREFIX):
        return None, token
    etag, _, sync = token[len(_TOKEN_PREFIX):].partition("|")
    return etag or None, sync or None


def _proppatch(name: str) -> str:
    from concord.connectors.dav import xml as dx

    return dx.proppatch_displayname(name)


def _bind(job: Any, op: WriteOp) -> Any:
    return lambda: job(op)


def _same(a: dict[str, Any], b: dict[str, Any], names: tuple[str, ...] | None) -> bool:
    if names is not None:
        a = {k: a.get(k) for k in names}
        b = {k: b.get(k) for k in names}
    return content_hash(a) == content_hash(b)
