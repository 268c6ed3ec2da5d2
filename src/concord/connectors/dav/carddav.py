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
        entities=("contact", "client"), incremental=True, batch_writes=True)
    kind: ClassVar[str] = "card"
    suffix: ClassVar[str] = ".vcf"
    content_type: ClassVar[str] = "text/vcard; charset=utf-8"

    def fields(self, entity: str) -> tuple[str, ...] | None:
        return vcard.FIELDS

    def parse(self, entity: str, href: str, text: str) -> Parsed:
        card = vcard.parse(text, name=href)
        return Parsed(card.fields(), card.uid)

    def render_new(self, entity: str, fields: dict[str, Any], uid: str) -> str:
        return vcard.build(fields, uid)

    def render_patch(self, entity: str, original: str, fields: dict[str, Any], href: str) -> str:
        return vcard.patch(original, fields, name=href)

    def bulk_body(self, texts: list[str]) -> str:
        # Radicale splits a whole-collection upload of vCards into one item per UID
        return "".join(texts)
