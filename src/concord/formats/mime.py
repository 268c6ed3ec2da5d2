"""E-mail messages (RFC 5322 / MIME) <-> the canonical ``email`` record.

Parsing and building use the standard library ``email`` package (``policy=default``). A
message read from a mail folder keeps its exact bytes: the record's ``raw`` field is the
SHA-256 of the message as received (stored in the hub's blob store), and a record whose
content still equals what its raw message says is written to another folder byte for byte.
Only a record edited in the hub (or created there) is built afresh from its fields; such a
message carries ``X-Concord-Built`` and reports no ``raw``, since its fields are all of it.

Attachments are decoded and addressed by the SHA-256 of their content: the same file attached
to many messages is one blob. The raw message is stored without them (``skeleton``: each base64
attachment whose encoding is reproduced exactly is cut out and put back by ``restore``), so an
attachment's bytes are in the hub once, not once more inside every message that carries it. Bodies are kept with ``\\n`` line ends and without trailing
newlines, so a message Concord builds reads back to the same fields.

Messages the parser can only guess at (a multipart without its boundary, undecodable base64,
no header/body separator, header values that cannot be parsed) raise ``MimeError`` naming the
message and the defect: the connector quarantines them and the rest of the folder syncs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import errors as email_errors
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses, make_msgid, parsedate_to_datetime
from typing import Any

from concord.records import Fields

#: Concord's own headers: the hub id of a message Concord appended (found again by a header
#: search when the server's answer was lost), and the mark of a message built from fields.
ID_HEADER = "X-Concord-Id"
BUILT_HEADER = "X-Concord-Built"

#: the record fields a mail folder holds (``folder`` is the link's, not the message's)
FIELDS: tuple[str, ...] = (
    "message_id", "subject", "sender", "to", "cc", "bcc", "reply_to", "date", "in_reply_to",
    "references", "body_text", "body_html", "attachments", "flags", "raw",
)

#: defects that mean the structure of the message is a guess
_FATAL: tuple[type[email_errors.MessageDefect], ...] = (
    email_errors.NoBoundaryInMultipartDefect,
    email_errors.StartBoundaryNotFoundDefect,
    email_errors.MultipartInvariantViolationDefect,
    email_errors.MissingHeaderBodySeparatorDefect,
    email_errors.InvalidBase64CharactersDefect,
    email_errors.InvalidBase64PaddingDefect,
    email_errors.InvalidBase64LengthDefect,
)

#: compat32 for reading: header values stay plain text (decoded here where needed), which
#: spares the default policy's parse of every header object, most of the cost of a message
_PARSER = BytesParser(policy=policy.compat32)


class MimeError(ValueError):
    """A message that cannot be read faithfully."""


@dataclass(slots=True)
class Parsed:
    fields: Fields
    #: sha256 -> content of each attachment (and of the raw message under ``raw``)
    blobs: dict[str, bytes] = field(default_factory=dict)
    ident: str | None = None  # the X-Concord-Id header, when Concord appended the message


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def normalise_address(address: str) -> str:
    """The form addresses are matched by: no ``mailto:``, no angle brackets or spaces,
    lower case (mail systems treat the local part case-insensitively in practice)."""
    a = address.strip().strip("<>").strip()
    if a.lower().startswith("mailto:"):
        a = a[7:]
    return a.lower()


def strip_own_header(raw: bytes) -> tuple[bytes, str | None]:
    """``raw`` without a leading X-Concord-Id line Concord put there, and that id."""
    prefix = ID_HEADER.encode() + b": "
    if raw[: len(prefix)].lower() != prefix.lower():
        return raw, None
    end = raw.find(b"\n")
    if end < 0:
        return raw, None
    ident = raw[len(prefix):end].strip().decode("ascii", "replace")
    return raw[end + 1:], ident or None


def with_own_header(raw: bytes, ident: str) -> bytes:
    """``raw`` with Concord's id as its first header line (the rest byte for byte)."""
    eol = b"\r\n" if b"\r\n" in raw[:4096] else b"\n"
    return f"{ID_HEADER}: {ident}".encode() + eol + strip_own_header(raw)[0]


_FOLD = re.compile(r"\r?\n(?=[ \t])")


def _headers(msg: Message) -> dict[str, list[str]]:
    """The top-level headers as written (unfolded), by lower-case name: read without the
    default policy's per-header parsing, which costs several milliseconds a message."""
    out: dict[str, list[str]] = {}
    for k, v in msg.raw_items():
        out.setdefault(k.lower(), []).append(_FOLD.sub("", str(v)).strip())
    return out


def _decode(value: str) -> str:
    """A header value with its RFC 2047 encoded words decoded (8-bit text taken as UTF-8)."""
    if "=?" in value:
        try:
            value = str(make_header(decode_header(value)))
        except (ValueError, LookupError, UnicodeError):
            pass
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _mailboxes(heads: dict[str, list[str]], name: str) -> list[dict[str, Any]]:
    out = []
    for display, addr in getaddresses(heads.get(name, [])):
        if addr:
            box: dict[str, Any] = {"address": _decode(addr)}
            if display:
                box["name"] = _decode(display)
            out.append(box)
    return out


def _text(part: Message) -> str:
    data = part.get_payload(decode=True)
    raw = data if isinstance(data, bytes) else b""
    charset = part.get_content_charset() or "us-ascii"
    try:
        text = raw.decode(charset, "replace")
    except LookupError:  # a charset Python does not know
        text = raw.decode("utf-8", "replace")
    return text.replace("\r\n", "\n").rstrip("\n")


def _bodies(msg: Message) -> tuple[Message | None, Message | None]:
    """The text and the HTML body: the first text/plain and text/html parts that are not
    attachments, outside attached messages."""
    text = html = None
    for part in _leaves(msg):
        if part.get_content_maintype() != "text" or part.get_content_disposition() == "attachment":
            continue
        sub = part.get_content_subtype()
        if sub == "plain" and text is None:
            text = part
        elif sub == "html" and html is None:
            html = part
    return text, html


def _leaves(msg: Message) -> Iterator[Message]:
    """Leaf parts in order; an attached message (message/rfc822) is one leaf."""
    if msg.is_multipart() and msg.get_content_type() != "message/rfc822":
        for sub in msg.get_payload():  # type: ignore[union-attr]
            assert isinstance(sub, Message)
            yield from _leaves(sub)
    else:
        yield msg


def _defects(msg: Message) -> Iterator[email_errors.MessageDefect]:
    yield from msg.defects
    if msg.is_multipart():
        for sub in msg.get_payload():  # type: ignore[union-attr]
            if isinstance(sub, Message):
                yield from _defects(sub)


def _part_bytes(part: Message) -> bytes:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload(0)
        assert isinstance(inner, Message)
        return inner.as_bytes(policy=policy.default)
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


SKELETON = b"CONCORD-SKELETON 1\n"


def _b64(data: bytes, width: int, eol: bytes, trailing: bool) -> bytes:
    import base64

    text = base64.b64encode(data)
    lines = [text[i:i + width] for i in range(0, len(text), width)]
    return eol.join(lines) + (eol if trailing else b"")


def skeleton(body: bytes, spans: list[tuple[bytes, str]], blobs: dict[str, bytes]) -> bytes:
    """The raw message as stored: each base64 attachment whose encoding Concord reproduces
    exactly is cut out (its content is its own blob already), leaving a list of where it
    goes. ``restore`` puts the bytes back, so the message is kept once, byte for byte. A
    message with nothing to cut out is stored as it is."""
    import json

    cuts: list[list[Any]] = []
    pieces: list[bytes] = []
    pos = 0
    for encoded, sha in spans:
        at = body.find(encoded, pos) if encoded else -1
        if at < 0:
            continue
        first = encoded.split(b"\n", 1)[0]
        eol = b"\r\n" if first.endswith(b"\r") else b"\n"
        width = len(first.rstrip(b"\r"))
        trailing = encoded.endswith(eol)
        if width <= 0 or _b64(blobs[sha], width, eol, trailing) != encoded:
            continue  # written some other way: kept inside the message
        pieces.append(body[pos:at])
        cuts.append([sum(len(p) for p in pieces), sha, width, eol.decode(), trailing])
        pos = at + len(encoded)
    if not cuts:
        return body
    pieces.append(body[pos:])
    head = json.dumps(cuts, separators=(",", ":")).encode()
    return SKELETON + head + b"\n" + b"".join(pieces)


def restore(stored: bytes, blob: Callable[[str], bytes]) -> bytes:
    """The raw message from its stored form (see ``skeleton``)."""
    import json

    if not stored.startswith(SKELETON):
        return stored
    head, _, rest = stored[len(SKELETON):].partition(b"\n")
    out: list[bytes] = []
    pos = 0
    for offset, sha, width, eol, trailing in json.loads(head):
        out.append(rest[pos:offset])
        out.append(_b64(blob(sha), int(width), str(eol).encode(), bool(trailing)))
        pos = offset
    out.append(rest[pos:])
    return b"".join(out)


def _check(msg: Message, name: str) -> None:
    fatal = [d for d in _defects(msg) if isinstance(d, _FATAL)]
    if fatal or not msg.keys():
        what = "; ".join(f"{type(d).__name__}: {d}" for d in fatal) or "no headers"
        raise MimeError(f"{name}: malformed MIME ({what}) (fix: repair or delete the "
                        "message in the folder; the rest of the folder syncs)")


def parse(raw: bytes, *, name: str, max_attachment: int | None = None) -> Parsed:
    """The record fields of the message ``raw``; ``name`` says which message in errors.
    An attachment larger than ``max_attachment`` bytes is refused (MimeError)."""
    body, ident = strip_own_header(raw)
    if not body.strip():
        raise MimeError(f"{name}: the message is empty (fix: delete it from the folder)")
    try:
        msg = _PARSER.parsebytes(body)
        _check(msg, name)
        fields: Fields = {}
        heads = _headers(msg)
        for key, header in (("message_id", "message-id"), ("subject", "subject"),
                            ("in_reply_to", "in-reply-to")):
            v = _decode(heads[header][0]) if header in heads else ""
            if v.strip():
                fields[key] = v.strip()
        sender = _mailboxes(heads, "from")
        if sender:
            fields["sender"] = sender[0]
        for key, header in (("to", "to"), ("cc", "cc"), ("bcc", "bcc"), ("reply_to", "reply-to")):
            boxes = _mailboxes(heads, header)
            if boxes:
                fields[key] = boxes
        refs = " ".join(heads.get("references", [])).split()
        if refs:
            fields["references"] = refs
        date = heads.get("date", [""])[0]
        if date.strip():
            try:
                dt = parsedate_to_datetime(date)
            except (TypeError, ValueError):
                dt = None
            if dt is not None:
                if dt.tzinfo is not None:
                    from datetime import UTC

                    fields["date"] = dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                else:
                    fields["date"] = dt.strftime("%Y-%m-%dT%H:%M:%S")
        text_part, html_part = _bodies(msg)
        for key, body_part in (("body_text", text_part), ("body_html", html_part)):
            if body_part is not None and (t := _text(body_part)):
                fields[key] = t
        out = Parsed(fields, ident=ident)
        attachments = []
        spans: list[tuple[bytes, str]] = []  # (encoded body as written, sha256 of its content)
        for leaf in _leaves(msg):
            part: Message = leaf
            if part is text_part or part is html_part or (part.is_multipart() and (
                    part.get_content_type() != "message/rfc822")):
                continue
            data = _part_bytes(part)
            filename = part.get_filename()
            if filename:
                filename = _decode(filename)
            if max_attachment is not None and len(data) > max_attachment:
                raise MimeError(
                    f"{name}: attachment {filename or part.get_content_type()!r} is "
                    f"{len(data)} bytes, over the limit of {max_attachment} bytes (fix: raise "
                    "the link option max_attachment_bytes, or remove the attachment)")
            sha = digest(data)
            out.blobs[sha] = data
            if str(part.get("Content-Transfer-Encoding", "")).strip().lower() == "base64":
                encoded = part.get_payload()
                if isinstance(encoded, str) and data:
                    spans.append((encoded.encode("ascii", "surrogateescape"), sha))
            att: dict[str, Any] = {"content_type": part.get_content_type(),
                                   "size": len(data), "sha256": sha}
            if filename:
                att["filename"] = filename
            cid = part.get("Content-ID")
            if cid:
                att["content_id"] = str(cid).strip()
            if part.get_content_disposition() == "inline":
                att["inline"] = True
            attachments.append(att)
        if attachments:
            fields["attachments"] = attachments
        _check(msg, name)  # decoding the parts notes bad base64 as defects
        if BUILT_HEADER.lower() not in heads:
            kept = skeleton(body, spans, out.blobs)
            sha = digest(kept)
            out.blobs[sha] = kept
            fields["raw"] = sha
            _remember(sha, fields)
        return out
    except MimeError:
        raise
    except (ValueError, TypeError, LookupError, AttributeError, IndexError) as exc:
        raise MimeError(f"{name}: malformed message ({type(exc).__name__}: {exc}) (fix: repair "
                        "or delete the message in the folder; the rest of the folder syncs)"
                        ) from exc


def _box(v: dict[str, Any]) -> str:
    from email.headerregistry import Address

    addr = str(v["address"])
    local, _, domain = addr.rpartition("@")
    if not local:
        return addr
    return str(Address(display_name=v.get("name") or "", username=local, domain=domain))


def content_of(fields: Fields) -> Fields:
    """What of a record the message itself says (not its flags, folder or raw)."""
    return {k: v for k, v in fields.items() if k in FIELDS and k not in ("flags", "raw")
            and v not in (None, [], {}, "")}


#: raw message sha256 -> hash of what it says (content_of), for the messages this process
#: has parsed lately: building a message from its raw then needs no second parse
_SAYS: dict[str, str] = {}
_SAYS_MAX = 50_000


def _says(fields: Fields) -> str:
    from concord.records import content_hash

    return content_hash(content_of(fields))


def _remember(sha: str, fields: Fields) -> None:
    if len(_SAYS) >= _SAYS_MAX:
        _SAYS.clear()
    _SAYS[sha] = _says(fields)


def build(fields: Fields, ident: str, blob: Callable[[str], bytes]) -> bytes:
    """A message for the record ``fields``: its raw message when the record still says what
    the raw says, else one built from the fields (attachments read with ``blob(sha256)``).
    The result starts with Concord's X-Concord-Id header."""
    raw_sha = fields.get("raw")
    if raw_sha:
        raw = restore(blob(str(raw_sha)), blob)
        said = _SAYS.get(str(raw_sha))
        if said is None:
            try:
                said = _says(parse(raw, name=ident).fields)
            except MimeError:
                said = ""
        if said == _says(fields):
            return with_own_header(raw, ident)
    msg = EmailMessage(policy=policy.SMTP)
    msg[ID_HEADER] = ident
    msg[BUILT_HEADER] = "1"
    msg["Message-ID"] = fields.get("message_id") or make_msgid(domain="concord.invalid")
    if fields.get("date"):
        from datetime import datetime

        d = str(fields["date"])
        dt = datetime.fromisoformat(d.replace("Z", "+00:00"))
        msg["Date"] = format_datetime(dt)
    if fields.get("subject"):
        msg["Subject"] = str(fields["subject"])
    if fields.get("sender"):
        msg["From"] = _box(fields["sender"])
    for key, header in (("to", "To"), ("cc", "Cc"), ("bcc", "Bcc"), ("reply_to", "Reply-To")):
        if fields.get(key):
            msg[header] = ", ".join(_box(b) for b in fields[key])
    if fields.get("in_reply_to"):
        msg["In-Reply-To"] = str(fields["in_reply_to"])
    if fields.get("references"):
        msg["References"] = " ".join(fields["references"])
    text, html = fields.get("body_text"), fields.get("body_html")
    if text is not None:
        msg.set_content(str(text) + "\n")
        if html is not None:
            msg.add_alternative(str(html) + "\n", subtype="html")
    elif html is not None:
        msg.set_content(str(html) + "\n", subtype="html")
    for att in fields.get("attachments") or []:
        data = blob(str(att["sha256"]))
        maintype, _, subtype = str(att.get("content_type") or "application/octet-stream"
                                   ).partition("/")
        kw: dict[str, Any] = {"filename": att.get("filename"),
                              "disposition": "inline" if att.get("inline") else "attachment"}
        if att.get("content_id"):
            kw["cid"] = att["content_id"]
        msg.add_attachment(data, maintype=maintype, subtype=subtype or "octet-stream", **kw)
    if text is None and html is None and not fields.get("attachments"):
        msg.set_content("\n")
    return msg.as_bytes()
