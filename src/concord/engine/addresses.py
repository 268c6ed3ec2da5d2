"""E-mails linked to their contacts and clients by address; new recipients as contacts.

After a mail link's run, each e-mail the hub has received or changed since this step last ran
(its own checkpoint, ``<entity>+contacts``, so a run killed in between is caught up by the
next) is linked: its ``contact`` reference is the first contact whose normalised address
(``formats.mime.normalise_address``) is the sender's, else a recipient's (To, then Cc), and its
``client`` reference that contact's client. The practice's own addresses (the link's
``own_addresses``, and every staff member's) never count.

Addresses that match no contact are, by the link's ``new_contacts`` option: ignored (``off``),
made contacts (``create``), or listed once each in ``contact_candidates`` for someone to review
(``review``; ``concord contacts review`` lists them, ``accept`` makes them contacts,
``dismiss`` never lists them again). A contact made from an address has the hub id ``a`` + a hash of the normalised
address, so two runs, or two links, seeing the same new address make one contact, never two.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from concord.errors import ConcordError
from concord.formats.mime import normalise_address
from concord.hub.store import Checkpoint, Hub, RecordWrite
from concord.records import Record

PAGE = 500


def contact_id(address: str) -> str:
    return "a" + hashlib.sha256(normalise_address(address).encode()).hexdigest()[:40]


def _boxes(fields: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    if isinstance(fields.get("sender"), dict):
        out.append(fields["sender"])
    for key in ("to", "cc"):
        out.extend(b for b in fields.get(key) or [] if isinstance(b, dict))
    return out


class _Index:
    """Normalised address -> contact (id, client), and the practice's own addresses."""

    def __init__(self, hub: Hub, own: Iterable[str]) -> None:
        self.contacts: dict[str, tuple[str, str | None]] = {}
        self.own = {normalise_address(a) for a in own if not a.startswith("@")}
        self.own_domains = {a[1:].lower() for a in own if a.startswith("@")}
        for entity in ("contact", "staff"):
            offset = 0
            while True:
                recs = hub.list_records(entity, offset=offset, limit=5000)
                for r in recs:
                    for e in r.fields.get("emails") or []:
                        addr = normalise_address(str(e.get("address", "")))
                        if not addr:
                            continue
                        if entity == "staff":
                            self.own.add(addr)
                        else:
                            self.contacts.setdefault(addr, (r.id, r.refs.get("client")))
                if len(recs) < 5000:
                    break
                offset += len(recs)

    def is_own(self, addr: str) -> bool:
        return addr in self.own or addr.rpartition("@")[2] in self.own_domains


def link_emails(hub: Hub, link: str, *, mode: str, own: Sequence[str],
                entity: str = "email") -> Counter[str]:
    counts: Counter[str] = Counter()
    key = f"{entity}+contacts"
    cp = hub.checkpoint(link, key)
    upto = hub.last_seq()
    if upto <= cp.hub_seq:
        return counts
    index: _Index | None = None
    for page in hub.feed_head(entity, cp.hub_seq, upto_seq=upto, page=PAGE):
        ids = [i for i, _, deleted in page if not deleted]
        if not ids:
            continue
        if index is None:
            index = _Index(hub, own)
        recs = hub.get_many(entity, ids)
        _link_page(hub, link, mode, index, [r for r in recs.values() if not r.deleted], counts)
    with hub.begin() as conn:
        hub.save_checkpoint(conn, link, key, Checkpoint(upto, None))
    return counts


def _link_page(hub: Hub, link: str, mode: str, index: _Index, recs: list[Record],
               counts: Counter[str]) -> None:
    by = f"link:{link}"
    new_contacts: dict[str, RecordWrite] = {}
    candidates: dict[str, tuple[str | None, str]] = {}
    email_writes: list[RecordWrite] = []
    for rec in recs:
        match: tuple[str, str | None] | None = None
        for box in _boxes(rec.fields):
            addr = normalise_address(str(box.get("address", "")))
            if not addr or "@" not in addr or index.is_own(addr):
                continue
            found = index.contacts.get(addr)
            if found is None and mode == "create":
                cid = contact_id(addr)
                fields: dict[str, Any] = {"emails": [{"address": addr}]}
                if box.get("name"):
                    fields["name"] = str(box["name"])
                new_contacts[addr] = RecordWrite("contact", cid, fields, {})
                found = index.contacts[addr] = (cid, None)
            elif found is None and mode == "review":
                candidates.setdefault(addr, (box.get("name"), rec.id))
            if found is not None and match is None:
                match = found
        if match is None:
            continue
        refs = dict(rec.refs)
        want = {"contact": match[0], **({"client": match[1]} if match[1] else {})}
        if any(refs.get(k) != v for k, v in want.items()):
            refs.update(want)
            email_writes.append(RecordWrite(rec.entity, rec.id, rec.fields, refs))
    if not (new_contacts or email_writes or candidates):
        return
    with hub.begin() as conn:
        hub.lock_feed(conn)
        if new_contacts:
            have = hub.get_many("contact", [w.id for w in new_contacts.values()], conn=conn)
            fresh = [w for w in new_contacts.values() if w.id not in have]
            hub.write(conn, fresh, by=by)
            counts["contacts created from addresses"] += len(fresh)
        current = hub.get_many(email_writes[0].entity, [w.id for w in email_writes], conn=conn) \
            if email_writes else {}
        # an e-mail changed since it was read keeps its new content: only its refs are set
        writes = []
        for w in email_writes:
            cur = current.get(w.id)
            if cur is not None and not cur.deleted:
                writes.append(RecordWrite(w.entity, w.id, cur.fields, {**cur.refs, **{
                    k: w.refs[k] for k in ("contact", "client") if k in w.refs}}))
        hub.write(conn, writes, by=by, validated=True)
        counts["e-mails linked to contacts"] += len(writes)
        if candidates:
            counts["addresses listed for review"] += hub.list_candidates(conn, link, candidates)


def contact_candidates(hub: Hub) -> list[dict[str, Any]]:
    """Addresses waiting for review (not dismissed), oldest first."""
    return hub.open_candidates()


def accept_candidates(hub: Hub, addresses: Sequence[str], *, by: str) -> list[str]:
    """Make contacts of listed addresses (the same hub ids ``create`` mode gives) and take
    them off the list; every mail link links its e-mails again on its next run, so the
    e-mails already synced from those addresses are linked too. Returns the contact ids."""
    wanted = [normalise_address(a) for a in addresses]
    with hub.begin() as conn:
        hub.lock_feed(conn)
        rows = hub.candidates_named(conn, wanted)
        missing = [a for a in wanted if a not in rows]
        if missing:
            raise ConcordError(f"not listed for review: {', '.join(missing)} (fix: see "
                               "`concord contacts review` for the listed addresses)")
        ids = [contact_id(a) for a in wanted]
        have = hub.get_many("contact", ids, conn=conn)
        writes = []
        for a, cid in zip(wanted, ids, strict=True):
            cur = have.get(cid)
            if cur is None or cur.deleted:
                fields: dict[str, Any] = {"emails": [{"address": a}]}
                if rows[a]["name"]:
                    fields["name"] = rows[a]["name"]
                writes.append(RecordWrite("contact", cid, fields, {}))
        hub.write(conn, writes, by=by)
        hub.take_candidates(conn, wanted)
    return ids


def dismiss_candidates(hub: Hub, addresses: Sequence[str]) -> int:
    """Take addresses off the review list for good: they are never listed again."""
    return hub.dismiss_candidates([normalise_address(a) for a in addresses])
