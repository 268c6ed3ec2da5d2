"""CardDAV: clients and contacts as vCards in an address book.

Reads vCard 3.0 and 4.0, writes 3.0 for new cards; an update patches only the properties
Concord maps, so photos, X- properties and groups another client wrote stay untouched.
Each entity type has its own address book (``collections`` in the options), because a
shared book would need every card fetched just to tell clients from contacts.
"""

from __future__ import annotations

from typing import Any, ClassVar

from concord.connectors.base import Capabilities
from concord.connectors.dav.connector import DavConnector, Parsed
from concord.formats import vcard


class CardDAVConnector(DavConnector):
    name: ClassVar[str] = "carddav"
    capabilities: ClassVar[Capabilities] = Capabilities(
        entities=("contact", "client"), concurrent_reads=True)
    kind: ClassVar[str] = "card"
    suffix: ClassVar[str] = ".vcf"
    content_type: ClassVar[str] = "text/vcard; charset=utf-8"

    def fields(self, entity: str) -> tuple[str, ...] | None:
        return vcard.FIELDS

    def parse(self, entity: str, href: str, text: str) -> Parsed:
        card = vcard.parse(text, name=href)
        refs: dict[str, str | None] = {}
        if entity == "contact":
            p = card.first(X_CLIENT)
            if p is not None and p.value.strip():
                refs["client"] = vcard.unescape(p.value).strip()
        return Parsed(card.fields(OWNED), card.uid, refs)

    def render_new(self, entity: str, fields: dict[str, Any], uid: str,
                   refs: dict[str, str | None] | None = None) -> str:
        return _with_client(vcard.build(fields, uid), entity, refs)

    def render_patch(self, entity: str, original: str, fields: dict[str, Any], href: str,
                     refs: dict[str, str | None] | None = None) -> str:
        return _with_client(vcard.patch(original, fields, mapped=fields.keys(), name=href,
                                        owned=OWNED), entity, refs)

    def bulk_body(self, texts: list[str]) -> str:
        # Radicale splits a whole-collection upload of vCards into one item per UID
        return "".join(texts)


#: A contact's client, as the href of the client's card (a link that carries both
#: entity types and sets ``refs = {client = "client"}`` translates it to the hub's id).
X_CLIENT = "X-CONCORD-CLIENT"
#: properties this connector writes itself (never record content)
OWNED = frozenset({X_CLIENT})


def _with_client(text: str, entity: str, refs: dict[str, str | None] | None) -> str:
    """Set (or drop) the contact's client reference; every other line stays."""
    if entity != "contact" or refs is None or "client" not in refs:
        return text
    want = refs.get("client")
    lines = text.replace("\r\n", "\n").split("\n")
    out: list[str] = []
    skipping = False
    for line in lines:
        if skipping and line[:1] in (" ", "\t"):
            continue
        skipping = line.upper().startswith(X_CLIENT + ":") or line.upper().startswith(X_CLIENT + ";")
        if skipping:
            continue
        if line.strip().upper() == "END:VCARD" and want:
            out.extend(vcard.fold(f"{X_CLIENT}:{vcard.escape(want)}"))
        out.append(line)
    return "\r\n".join(out)
