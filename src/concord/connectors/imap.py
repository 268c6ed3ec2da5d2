"""IMAP: one mail folder <-> the hub's e-mails (imapclient over a real IMAP server).

References are ``UIDVALIDITY:UID`` and versions the message's MODSEQ (CONDSTORE), so a flag
change is a new version and a listing costs one FETCH of UIDs and MODSEQs. The change token
is ``UIDVALIDITY:HIGHESTMODSEQ`` taken when the folder is selected, before anything is read:

- same UIDVALIDITY, and the server speaks QRESYNC: ``UID FETCH 1:* (MODSEQ) (CHANGEDSINCE m
  VANISHED)`` gives what changed and which UIDs were expunged since ``m``. The expunges come
  with the changes of the same run, so they are applied before the token moves past them;
- no QRESYNC, or no token yet: a full UID listing (``complete``: what is missing was expunged);
- a new UIDVALIDITY (the folder was rebuilt): a full listing with every message's identity
  (its X-Concord-Id, else its Message-ID) in ``Changes.idents``: the engine moves each link
  to the message's new UID instead of deleting and creating it again, so nothing duplicates.

Messages are immutable in IMAP. A hub edit that touches only flags is a conditional ``UID STORE
(UNCHANGEDSINCE modseq)``; an edit of the content appends the new message and expunges the old
one (a new reference). Every append is idempotent: the message carries Concord's own
``X-Concord-Id`` header (the hub id), a create first searches for it, and the new UID comes
from APPENDUID (UIDPLUS) or, without it, from that header search: an answer lost on the way
back never makes a second copy.

Attachments and the raw message go to the hub's blob store (content-addressed, chunked; see
``hub/blobs.py``) as they are read; the record holds their SHA-256. An attachment over
``max_attachment_bytes`` quarantines its message with the limit named; so does malformed MIME
(``formats/mime.py``), by UID, while the rest of the folder syncs. ``wait_for_change`` IDLEs on
a second connection.
"""

from __future__ import annotations

import builtins
import hashlib
import re
import socket
import ssl
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

from imapclient import IMAPClient
from imapclient import exceptions as imap_errors
from pydantic import Field, SecretStr

from concord.connectors.base import (
    Capabilities,
    ChangeCapture,
    Changes,
    Connector,
    ConnectorOptions,
    HubBound,
    Item,
    ItemError,
    WriteOp,
    WriteResult,
)
from concord.errors import (
    ConcordError,
    ConfigError,
    ItemInvalid,
    PreconditionFailed,
    TerminalError,
    TransientError,
)
from concord.formats import mime
from concord.hub.store import Hub

#: IMAP system flags <-> the model's flag names; other flags (keywords) travel as they are
_SYSTEM = {"\\seen": "seen", "\\answered": "answered", "\\flagged": "flagged",
           "\\draft": "draft"}
_TO_IMAP = {"seen": "\\Seen", "answered": "\\Answered", "flagged": "\\Flagged", "draft": "\\Draft"}
_NOT_SYNCED = {"\\recent", "\\deleted"}
_FETCH_CHUNK = 200
_FETCH_BYTES = 32 * 1024 * 1024


class ImapOptions(ConnectorOptions):
    host: str
    port: int = Field(993, ge=1, le=65535)
    tls: bool = True  # implicit TLS (imaps, port 993)
    starttls: bool = False  # with tls = false: connect plain, then upgrade with STARTTLS
    ca_file: str | None = None  # a CA (or the server's own certificate) to trust as well
    #: with neither tls nor starttls the password travels in clear: refused unless the
    #: server is on this machine or this is set
    allow_plaintext: bool = False
    username: str
    password: SecretStr
    folder: str = "INBOX"
    create_folder: bool = True  # create the folder when it does not exist
    #: attachments larger than this quarantine their message (0: no attachments at all)
    max_attachment_bytes: int = Field(25 * 1024 * 1024, ge=0)
    #: addresses on e-mails that match no contact: ignored, made contacts, or listed for review
    new_contacts: Literal["off", "create", "review"] = "review"
    #: the practice's own addresses (and domains as ``@firm.example``): never made contacts
    own_addresses: list[str] = Field(default_factory=list)
    timeout: float = Field(60.0, gt=0)


def _flags_in(raw: Iterable[bytes | str]) -> list[str]:
    out = []
    for f in raw:
        s = f.decode() if isinstance(f, bytes) else f
        low = s.lower()
        if low in _NOT_SYNCED:
            continue
        out.append(_SYSTEM.get(low, s))
    return sorted(set(out))


def _flags_out(flags: Iterable[str]) -> list[str]:
    return sorted({_TO_IMAP.get(f.lower(), f) for f in flags})


_UIDSET = re.compile(rb"(\d+)(?::(\d+))?")


def _uid_set(text: bytes) -> set[int]:
    out: set[int] = set()
    for m in _UIDSET.finditer(text):
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) else a
        out.update(range(min(a, b), max(a, b) + 1))
    return out


def message_ident(parsed: mime.Parsed) -> str:
    """The identity of a message across folders and UIDVALIDITY changes, usable as its hub
    id: Concord's own header, else a hash of its Message-ID, else of its bytes."""
    if parsed.ident:
        return parsed.ident
    mid = parsed.fields.get("message_id")
    if mid:
        return "m" + hashlib.sha256(str(mid).strip().encode()).hexdigest()[:40]
    return "r" + str(parsed.fields.get("raw") or "")[:40]


class ImapConnector(Connector, ChangeCapture, HubBound):
    name = "imap"
    capabilities = Capabilities(entities=("email",), notifies=True)
    Options = ImapOptions

    def __init__(self, options: ConnectorOptions, *, link: str = "") -> None:
        super().__init__(options, link=link)
        assert isinstance(options, ImapOptions)
        self.opts = options
        self.folder = options.folder
        if not (options.tls or options.starttls or options.allow_plaintext
                or options.host in ("127.0.0.1", "::1", "localhost")):
            raise ConfigError(f"the password to {options.host} would travel in clear",
                              source=f"link {link!r}", key="options.tls",
                              fix="set tls = true (port 993) or starttls = true, or "
                                  "allow_plaintext = true on a trusted network")
        self._c: IMAPClient | None = None
        self._idle: IMAPClient | None = None
        self.uidvalidity = 0
        self.highestmodseq = 0
        self.caps: set[str] = set()
        self.hub: Hub | None = None
        #: X-Concord-Id -> UID of the folder's messages, read once per UIDVALIDITY when the
        #: first create of a connection needs it, then kept up to date by our appends
        self._own: dict[str, int] | None = None
        self._own_validity = 0
        self._lock = threading.RLock()

    # -- connection ------------------------------------------------------------------
    def bind_hub(self, hub: Hub) -> None:
        self.hub = hub

    def after_sync(self, hub: Hub, entity: str) -> dict[str, int]:
        """E-mails linked to contacts by address; new addresses per ``new_contacts``."""
        from concord.engine.addresses import link_emails

        return dict(link_emails(hub, self.link, mode=self.opts.new_contacts,
                                own=[self.opts.username, *self.opts.own_addresses],
                                entity=entity))

    def _where(self) -> str:
        return f"IMAP {self.opts.host}:{self.opts.port} folder {self.folder!r}"

    def _connect(self) -> IMAPClient:
        o = self.opts
        ctx = ssl.create_default_context(cafile=o.ca_file) if (o.tls or o.starttls) else None
        try:
            c = IMAPClient(o.host, port=o.port, ssl=o.tls, timeout=o.timeout, ssl_context=ctx)
            if o.starttls and not o.tls:
                c.starttls(ctx)
        except ssl.SSLCertVerificationError as exc:
            raise ConfigError(f"{self._where()}: the server's certificate is not trusted "
                              f"({exc.verify_message})", source=f"link {self.link!r}",
                              key="options.ca_file", fix="give the CA that signed it (or the "
                              "server's certificate) in ca_file") from exc
        except (TimeoutError, OSError, imap_errors.IMAPClientError) as exc:
            raise TransientError(f"{self._where()}: cannot connect ({exc}) (fix: check host, "
                                 "port, tls and starttls, and that the server is up)") from exc
        try:
            c.login(o.username, o.password.get_secret_value())
        except imap_errors.LoginError as exc:
            c.shutdown()
            raise ConfigError(f"{self._where()}: login refused ({exc})", source=f"link {self.link!r}",
                              key="options.username", fix="check the username and password") from exc
        return c

    def _select(self, c: IMAPClient) -> dict[bytes, Any]:
        try:
            return dict(c.select_folder(self.folder))
        except imap_errors.IMAPClientError as exc:
            if not self.opts.create_folder:
                raise ConfigError(f"{self._where()}: cannot select the folder ({exc})",
                                  source=f"link {self.link!r}", key="options.folder",
                                  fix="create the folder or correct its name") from exc
            c.create_folder(self.folder)
            return dict(c.select_folder(self.folder))

    def client(self) -> IMAPClient:
        """The connection, logged in, QRESYNC enabled where offered, the folder selected."""
        if self._c is None:
            c = self._connect()
            self.caps = {x.decode().upper() for x in c.capabilities()}
            if "QRESYNC" in self.caps:
                c.enable("QRESYNC")
            elif "CONDSTORE" in self.caps:
                c.enable("CONDSTORE")
            self._c = c
            self._refresh()
        return self._c

    def _refresh(self) -> None:
        """Select the folder again: its UIDVALIDITY and HIGHESTMODSEQ as of now."""
        assert self._c is not None
        info = self._select(self._c)
        self.uidvalidity = int(info.get(b"UIDVALIDITY", 0))
        self.highestmodseq = int(info.get(b"HIGHESTMODSEQ", 0) or 0)

    def _guard(self, what: str) -> _Guard:
        return _Guard(self, what)

    def close(self) -> None:
        for c in (self._c, self._idle):
            if c is not None:
                try:
                    c.logout()
                except Exception:
                    try:
                        c.shutdown()
                    except Exception:
                        pass
        self._c = self._idle = None

    def check(self) -> builtins.list[str]:
        problems = []
        try:
            self.client()
        except ConcordError as exc:
            return [str(exc)]
        for cap, why in (("UIDPLUS", "deleting one message and appending idempotently"),
                         ("CONDSTORE", "incremental sync and conditional flag changes")):
            if cap not in self.caps:
                problems.append(f"{self._where()}: the server lacks {cap}, needed for {why} "
                                "(fix: use a server that offers it, e.g. Dovecot)")
        return problems

    # -- reading ---------------------------------------------------------------------
    def fields(self, entity: str) -> tuple[str, ...]:
        return mime.FIELDS

    def _ref(self, uid: int) -> str:
        return f"{self.uidvalidity}:{uid}"

    def _uid(self, ref: str) -> int | None:
        v, _, u = ref.partition(":")
        if not u.isdigit() or v != str(self.uidvalidity):
            return None
        return int(u)

    @staticmethod
    def _version(data: dict[bytes, Any]) -> str:
        ms = data.get(b"MODSEQ")
        if ms:
            return str(ms[0])
        return "f:" + ",".join(_flags_in(data.get(b"FLAGS", ())))

    def _listing(self) -> dict[str, str]:
        c = self.client()
        what = [b"MODSEQ"] if "CONDSTORE" in self.caps or "QRESYNC" in self.caps else [b"FLAGS"]
        got = c.fetch("1:*", what) if self._exists() else {}
        return {self._ref(uid): self._version(d) for uid, d in got.items()}

    def _exists(self) -> bool:
        assert self._c is not None
        return bool(self._c.search(["ALL"]))

    def list(self, entity: str) -> Iterator[tuple[str, str]]:
        with self._guard("listing"):
            self.client()
            self._refresh()
            return iter(self._listing().items())

    def current_token(self, entity: str) -> str | None:
        with self._guard("reading the folder state"):
            self.client()
            self._refresh()
            return f"{self.uidvalidity}:{self.highestmodseq}"

    def changes(self, entity: str, token: str | None) -> Changes:
        with self._guard("reading changes"):
            c = self.client()
            self._refresh()
            now = f"{self.uidvalidity}:{self.highestmodseq}"
            old_v, _, old_m = (token or "").partition(":")
            if token and old_v == str(self.uidvalidity) and old_m.isdigit() and (
                    "QRESYNC" in self.caps and self.highestmodseq):
                since = int(old_m)
                if since >= self.highestmodseq:
                    return Changes(changed={}, token=now)
                c._imap.untagged_responses.pop("VANISHED", None)
                got = c.fetch("1:*", [b"MODSEQ"], modifiers=[f"CHANGEDSINCE {since}", "VANISHED"])
                vanished: set[int] = set()
                for line in c._imap.untagged_responses.pop("VANISHED", []):
                    if line.upper().startswith(b"(EARLIER)"):
                        vanished |= _uid_set(line[len(b"(EARLIER)"):])
                return Changes(changed={self._ref(u): self._version(d) for u, d in got.items()},
                               deleted={self._ref(u) for u in vanished}, token=now)
            listed = self._listing()
            ch = Changes(changed=listed, token=now, complete=True)
            if token and old_v != str(self.uidvalidity):
                # the folder was rebuilt: every UID is new; say who each message is
                ch.idents = self._idents(list(listed))
            return ch

    def _idents(self, refs: Sequence[str]) -> dict[str, str]:
        c = self.client()
        out: dict[str, str] = {}
        uids = [u for r in refs if (u := self._uid(r)) is not None]
        key = b"BODY[HEADER.FIELDS (MESSAGE-ID X-CONCORD-ID)]"
        for i in range(0, len(uids), 1000):
            for uid, d in c.fetch(uids[i:i + 1000],
                                  [b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID X-CONCORD-ID)]"]).items():
                head = d.get(key) or b""
                own = re.search(rb"(?im)^x-concord-id:[ \t]*(\S+)", head)
                mid = re.search(rb"(?im)^message-id:[ \t]*(.+?)\s*$", head)
                if own:
                    out[self._ref(uid)] = own.group(1).decode("ascii", "replace")
                elif mid:
                    out[self._ref(uid)] = "m" + hashlib.sha256(mid.group(1).strip()).hexdigest()[:40]
        return out

    def get(self, entity: str, refs: Sequence[str]) -> builtins.list[Item | ItemError]:
        with self._guard("reading messages"):
            c = self.client()
            uids = [u for r in refs if (u := self._uid(r)) is not None]
            out: builtins.list[Item | ItemError] = []
            for group in self._groups(uids):
                got = c.fetch(group, [b"MODSEQ", b"FLAGS", b"INTERNALDATE", b"BODY.PEEK[]"])
                blobs: dict[str, bytes] = {}
                for uid in group:
                    d = got.get(uid)
                    if d is None:
                        continue  # expunged meanwhile: the next listing says so
                    out.append(self._item(uid, d, blobs))
                self._store_blobs(blobs)
            return out

    def _groups(self, uids: Sequence[int]) -> Iterator[builtins.list[int]]:
        """``uids`` in FETCH groups of at most ``_FETCH_CHUNK`` messages and ``_FETCH_BYTES``
        bytes (by RFC822.SIZE, asked first), so memory stays bounded however large the
        messages are; a message bigger than that is fetched alone."""
        c = self.client()
        for i in range(0, len(uids), _FETCH_CHUNK):
            part = list(uids[i:i + _FETCH_CHUNK])
            sizes = {u: int(d.get(b"RFC822.SIZE", 0))
                     for u, d in c.fetch(part, [b"RFC822.SIZE"]).items()}
            group: builtins.list[int] = []
            total = 0
            for u in part:
                if u not in sizes:
                    continue  # expunged meanwhile
                if group and total + sizes[u] > _FETCH_BYTES:
                    yield group
                    group, total = [], 0
                group.append(u)
                total += sizes[u]
            if group:
                yield group

    def _item(self, uid: int, d: dict[bytes, Any], blobs: dict[str, bytes]) -> Item | ItemError:
        raw = d.get(b"BODY[]") or b""
        ref = self._ref(uid)
        try:
            parsed = mime.parse(raw, name=f"{self._where()} UID {uid}",
                                max_attachment=self.opts.max_attachment_bytes)
        except mime.MimeError as exc:
            return ItemError(ref, str(exc), raw[:2000].decode("utf-8", "replace"))
        blobs.update(parsed.blobs)
        fields = parsed.fields
        flags = _flags_in(d.get(b"FLAGS", ()))
        if flags:
            fields["flags"] = flags
        when = d.get(b"INTERNALDATE")
        modified = when.timestamp() if when is not None else None
        return Item(ref, self._version(d), fields, {}, message_ident(parsed), modified)

    def _store_blobs(self, blobs: dict[str, bytes]) -> None:
        if not blobs:
            return
        if self.hub is None:
            raise TerminalError(f"{self._where()}: no hub to store attachments in (the "
                                "connector was made without one)")
        self.hub.put_blobs(blobs)

    def _blob(self, sha: str) -> bytes:
        if self.hub is None:
            raise TerminalError(f"{self._where()}: no hub to read attachments from")
        return self.hub.blob(sha)

    # -- writing ---------------------------------------------------------------------
    def _find(self, ident: str) -> builtins.list[int]:
        c = self.client()
        return sorted(c.search(["HEADER", mime.ID_HEADER, ident]))

    def _own_ids(self) -> dict[str, int]:
        """Every message of the folder that carries Concord's header: one FETCH of that
        header for the whole folder instead of a header SEARCH per create."""
        c = self.client()
        if self._own is None or self._own_validity != self.uidvalidity:
            own: dict[str, int] = {}
            key = b"BODY[HEADER.FIELDS (X-CONCORD-ID)]"
            got = c.fetch("1:*", [b"BODY.PEEK[HEADER.FIELDS (X-CONCORD-ID)]"]) \
                if self._exists() else {}
            for uid, d in sorted(got.items()):
                m = re.search(rb"(?im)^x-concord-id:[ \t]*(\S+)", d.get(key) or b"")
                if m:
                    own.setdefault(m.group(1).decode("ascii", "replace"), uid)
            self._own, self._own_validity = own, self.uidvalidity
        return self._own

    def _modseqs(self, uids: Sequence[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        for i in range(0, len(uids), 1000):
            for uid, d in self.client().fetch(list(uids[i:i + 1000]), [b"MODSEQ", b"FLAGS"]).items():
                out[uid] = self._version(d)
        return out

    def _modseq(self, uid: int) -> str | None:
        got = self.client().fetch([uid], [b"MODSEQ", b"FLAGS"]).get(uid)
        return None if got is None else self._version(got)

    def _append(self, data: bytes, flags: Sequence[str], ident: str) -> int:
        c = self.client()
        answer = c.append(self.folder, data, flags=_flags_out(flags))
        m = re.search(rb"APPENDUID (\d+) (\d+)", answer or b"")
        if m and int(m.group(1)) == self.uidvalidity:
            return int(m.group(2))
        c.noop()
        found = self._find(ident)
        if not found:
            raise TransientError(f"{self._where()}: appended message {ident} not found again")
        return found[-1]

    def _render(self, item: Item, ident: str, ref: str | None) -> bytes:
        try:
            return mime.build(item.fields, ident, self._blob)
        except (ValueError, TypeError, KeyError, ConcordError) as exc:
            raise ItemInvalid(ref or ident, f"cannot write this e-mail as a message: {exc}",
                              fix="correct the e-mail's fields in the hub") from exc

    def _create(self, item: Item, ident: str) -> int:
        own = self._own_ids()
        uid = own.get(ident)
        if uid is None:  # else: a create whose answer was lost, found again, not appended twice
            uid = own[ident] = self._append(self._render(item, ident, None),
                                            item.fields.get("flags") or [], ident)
        return uid

    def create(self, entity: str, item: Item, ident: str) -> tuple[str, str]:
        with self._guard("appending"):
            uid = self._create(item, ident)
            version = self._modseq(uid)
            assert version is not None
            return self._ref(uid), version

    def _store(self, uid: int, op: str, flags: Sequence[str], expected: str | None,
               ref: str) -> None:
        c = self.client()
        c._imap.untagged_responses.pop("MODIFIED", None)
        flag_list = "(" + " ".join(flags) + ")"
        if expected is not None and expected.isdigit():
            typ, data = c._imap.uid("STORE", str(uid), f"(UNCHANGEDSINCE {expected})",
                                    op, flag_list)
        else:
            typ, data = c._imap.uid("STORE", str(uid), op, flag_list)
        modified = c._imap.untagged_responses.pop("MODIFIED", None)
        if typ != "OK":
            raise TransientError(f"{self._where()}: STORE on UID {uid} failed: {data!r}")
        if modified or any(b"MODIFIED" in (x or b"") for x in data):
            raise PreconditionFailed(ref, expected, self._modseq(uid))

    def _current(self, ref: str, expected: str | None) -> tuple[int, dict[bytes, Any]]:
        uid = self._uid(ref)
        got = self.client().fetch([uid], [b"MODSEQ", b"FLAGS", b"BODY.PEEK[]"]).get(uid) \
            if uid is not None else None
        if uid is None or got is None:
            raise PreconditionFailed(ref, expected, None)
        if expected is not None and self._version(got) != expected:
            raise PreconditionFailed(ref, expected, self._version(got))
        return uid, got

    def _update(self, ref: str, item: Item, expected: str | None) -> tuple[str, str]:
        uid, got = self._current(ref, expected)
        raw = got.get(b"BODY[]") or b""
        try:
            parsed: mime.Parsed | None = mime.parse(raw, name=ref)
        except mime.MimeError:
            parsed = None
        want_flags = _flags_out(item.fields.get("flags") or [])
        if parsed is not None and mime.content_of(parsed.fields) == mime.content_of(item.fields):
            # only the flags changed: set them, conditionally; the message keeps its bytes
            if want_flags != _flags_out(_flags_in(got.get(b"FLAGS", ()))):
                self._store(uid, "FLAGS.SILENT", want_flags, expected, ref)
            version = self._modseq(uid)
            assert version is not None
            return ref, version
        ident = item.ident or (parsed.ident if parsed else None) or (
            message_ident(parsed) if parsed else ref)
        data = self._render(item, ident, ref)
        # a previous run may have appended this very content and died before expunging
        again = [u for u in self._find(ident) if u != uid]
        new_uid = None
        for u in again:
            d = self.client().fetch([u], [b"BODY.PEEK[]"]).get(u)
            if d is not None and d.get(b"BODY[]") == data:
                new_uid = u
                break
        if new_uid is None:
            new_uid = self._append(data, item.fields.get("flags") or [], ident)
        if self._own is not None:
            self._own[ident] = new_uid
        self._store(uid, "+FLAGS.SILENT", ["\\Deleted"], expected, ref)
        self.client().uid_expunge([uid])
        version = self._modseq(new_uid)
        assert version is not None
        return self._ref(new_uid), version

    def update(self, entity: str, ref: str, item: Item, expected_version: str | None) -> str:
        """Returns the new version; a content change gives the message a new UID, which
        ``apply`` reports as the write's new reference."""
        with self._guard("updating"):
            return self._update(ref, item, expected_version)[1]

    def delete(self, entity: str, ref: str, expected_version: str | None) -> None:
        with self._guard("deleting"):
            uid, _ = self._current(ref, expected_version)
            if "UIDPLUS" not in self.caps:
                raise TerminalError(f"{self._where()}: the server lacks UIDPLUS; Concord will "
                                    "not EXPUNGE the whole folder to delete one message")
            self._store(uid, "+FLAGS.SILENT", ["\\Deleted"], expected_version, ref)
            self.client().uid_expunge([uid])

    def apply(self, entity: str, ops: Sequence[WriteOp]) -> builtins.list[WriteResult]:
        results: builtins.list[WriteResult] = [WriteResult() for _ in ops]
        created: dict[int, int] = {}  # op index -> UID; their versions are read in one FETCH
        if "MULTIAPPEND" in self.caps:
            with self._guard("appending"):
                created = self._multiappend(ops, results)
        for n, op in enumerate(ops):
            if n in created or results[n].error is not None:
                if n in created:
                    results[n] = WriteResult(ref=self._ref(created[n]))
                continue
            try:
                if op.kind == "create":
                    assert op.item is not None and op.ident is not None
                    with self._guard("appending"):
                        created[n] = self._create(op.item, op.ident)
                    results[n] = WriteResult(ref=self._ref(created[n]))
                elif op.kind == "update":
                    assert op.item is not None and op.ref is not None
                    with self._guard("updating"):
                        ref, version = self._update(op.ref, op.item, op.expected_version)
                    results[n] = WriteResult(ref=ref, version=version)
                else:
                    assert op.ref is not None
                    self.delete(entity, op.ref, op.expected_version)
                    results[n] = WriteResult(ref=op.ref)
            except TransientError:
                raise
            except ConcordError as exc:
                results[n] = WriteResult(ref=op.ref, error=exc)
        if created:
            with self._guard("reading versions"):
                versions = self._modseqs(sorted(created.values()))
            for n, uid in created.items():
                v = versions.get(uid)
                if v is None:  # expunged by someone right after our append
                    if self._own is not None:
                        self._own = {k: u for k, u in self._own.items() if u != uid}
                    results[n] = WriteResult(error=TransientError(
                        f"{self._where()}: appended UID {uid} vanished before it was read"))
                else:
                    results[n].version = v
        return results

    def _multiappend(self, ops: Sequence[WriteOp], results: builtins.list[WriteResult]
                     ) -> dict[int, int]:
        """The batch's creates in one MULTIAPPEND (one round trip, one commit at the server);
        their UIDs from its APPENDUID set, in order. Creates found already (a lost answer)
        are not appended again; one that cannot be rendered fails alone."""
        own = self._own_ids()
        created: dict[int, int] = {}
        todo: builtins.list[tuple[int, str, bytes, builtins.list[str]]] = []
        for n, op in enumerate(ops):
            if op.kind != "create" or op.item is None or op.ident is None:
                continue
            if op.ident in own:
                created[n] = own[op.ident]
                continue
            try:
                data = self._render(op.item, op.ident, None)
            except ItemInvalid as exc:
                results[n] = WriteResult(error=exc)
                continue
            todo.append((n, op.ident, data, _flags_out(op.item.fields.get("flags") or [])))
        if not todo:
            return created
        c = self.client()
        got = c.multiappend(self.folder, [{"msg": d, "flags": f} for _, _, d, f in todo])
        answer = b" ".join(x for x in got[1] if isinstance(x, bytes)) \
            if isinstance(got, tuple) else (got or b"")
        m = re.search(rb"APPENDUID (\d+) ([\d:,]+)", answer)
        uids: builtins.list[int] = []
        if m and int(m.group(1)) == self.uidvalidity:
            for part in m.group(2).split(b","):
                a, _, b = part.partition(b":")
                lo, hi = int(a), int(b or a)
                uids.extend(range(lo, hi + 1) if lo <= hi else range(lo, hi - 1, -1))
        if len(uids) != len(todo):  # no usable APPENDUID: find them by their header
            self._own = None
            own = self._own_ids()
            uids = [own.get(ident, 0) for _, ident, _, _ in todo]
        for (n, ident, _, _), uid in zip(todo, uids, strict=True):
            if uid:
                created[n] = self._own_ids()[ident] = uid
            else:
                results[n] = WriteResult(error=TransientError(
                    f"{self._where()}: appended message {ident} not found again"))
        return created

    # -- watching --------------------------------------------------------------------
    def wait_for_change(self, timeout: float) -> bool:
        """IDLE on a second connection until the server reports something about the folder
        (a new message, an expunge, a flag change) or ``timeout`` seconds pass."""
        try:
            if self._idle is None:
                c = self._connect()
                c.select_folder(self.folder, readonly=True)
                self._idle = c
            c = self._idle
            c.idle()
            try:
                got = c.idle_check(timeout=max(timeout, 0.0))
            finally:
                c.idle_done()
            return bool(got)
        except (imap_errors.IMAPClientError, OSError) as exc:
            self._idle = None
            raise TransientError(f"{self._where()}: IDLE failed ({exc})") from exc


class _Guard:
    """Turns IMAP and socket failures into Concord's errors: a dropped connection is
    transient (the next run reconnects), a refused command names the folder."""

    def __init__(self, conn: ImapConnector, what: str) -> None:
        self.conn, self.what = conn, what

    def __enter__(self) -> None:
        self.conn._lock.acquire()

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> Literal[False]:
        self.conn._lock.release()
        if exc is None or isinstance(exc, ConcordError):
            return False
        if isinstance(exc, OSError | imap_errors.IMAPClientAbortError | socket.timeout):
            self.conn._c = None
            raise TransientError(f"{self.conn._where()}: connection lost while {self.what} "
                                 f"({exc}); the next run reconnects") from exc
        if isinstance(exc, imap_errors.IMAPClientError):
            raise TerminalError(f"{self.conn._where()}: the server refused {self.what}: {exc}"
                                ) from exc
        return False

