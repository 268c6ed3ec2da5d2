"""WebDAV XML: request bodies and a multistatus reader.

Why by hand on ElementTree: the few bodies Concord sends are fixed templates, and a
10,000-response multistatus must parse in well under a second, so we read exactly the
elements we need (href, status, getetag, the data) and skip everything else.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit
from xml.sax.saxutils import escape

DAV = "{DAV:}"
CALDAV = "{urn:ietf:params:xml:ns:caldav}"
CARDDAV = "{urn:ietf:params:xml:ns:carddav}"
CS = "{http://calendarserver.org/ns/}"

NS = ('xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" '
      'xmlns:CR="urn:ietf:params:xml:ns:carddav" xmlns:CS="http://calendarserver.org/ns/"')
HEADER = '<?xml version="1.0" encoding="utf-8"?>\n'


@dataclass(slots=True)
class Response:
    """One ``DAV:response`` of a multistatus."""

    href: str  # unquoted path
    status: int  # the response-level status, or the 200 propstat's
    props: dict[str, ET.Element] = field(default_factory=dict)  # "{ns}name" -> element

    def text(self, name: str) -> str | None:
        el = self.props.get(name)
        return None if el is None else (el.text or "")


def norm_href(href: str) -> str:
    """The unquoted path of an href, whatever form (absolute URL, path, quoting)
    the server used, so one item always has one ref."""
    path = urlsplit(href.strip()).path if "://" in href else href.strip()
    return unquote(path)


def _status_code(text: str | None) -> int:
    if not text:
        return 200
    parts = text.split()
    try:
        return int(parts[1])
    except (IndexError, ValueError):
        return 500


def parse_multistatus(body: bytes) -> tuple[list[Response], str | None]:
    """The responses of a multistatus and its sync-token (if any)."""
    root = ET.fromstring(body)
    out: list[Response] = []
    for resp in root.iter(f"{DAV}response"):
        href_el = resp.find(f"{DAV}href")
        if href_el is None or not href_el.text:
            continue
        status_el = resp.find(f"{DAV}status")
        r = Response(norm_href(href_el.text), _status_code(
            status_el.text if status_el is not None else None))
        for ps in resp.findall(f"{DAV}propstat"):
            st = ps.find(f"{DAV}status")
            code = _status_code(st.text if st is not None else None)
            if code != 200:
                continue
            prop = ps.find(f"{DAV}prop")
            if prop is None:
                continue
            for child in prop:
                r.props[child.tag] = child
        out.append(r)
    tok = root.find(f"{DAV}sync-token")
    return out, (tok.text.strip() if tok is not None and tok.text else None)


def propfind_body(props: list[str]) -> str:
    return HEADER + f'<D:propfind {NS}><D:prop>' + "".join(f"<{p}/>" for p in props) + \
        "</D:prop></D:propfind>"


def sync_collection_body(token: str | None) -> str:
    return (HEADER + f'<D:sync-collection {NS}>'
            f'<D:sync-token>{escape(token or "")}</D:sync-token>'
            "<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>")


def multiget_body(kind: str, hrefs: list[str]) -> str:
    """addressbook-multiget (``kind="card"``) or calendar-multiget (``kind="cal"``)."""
    from urllib.parse import quote

    tag, data = (("CR:addressbook-multiget", "CR:address-data") if kind == "card"
                 else ("C:calendar-multiget", "C:calendar-data"))
    hs = "".join(f"<D:href>{escape(quote(h))}</D:href>" for h in hrefs)
    return HEADER + f'<{tag} {NS}><D:prop><D:getetag/><{data}/></D:prop>{hs}</{tag}>'


def calendar_query_body(component: str) -> str:
    return (HEADER + f'<C:calendar-query {NS}><D:prop><D:getetag/></D:prop>'
            '<C:filter><C:comp-filter name="VCALENDAR">'
            f'<C:comp-filter name="{component}"/></C:comp-filter></C:filter></C:calendar-query>')


def mkcol_body(kind: str, displayname: str) -> str:
    if kind == "card":
        rtype = "<D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>"
        extra = ""
    else:
        rtype = "<D:resourcetype><D:collection/><C:calendar/></D:resourcetype>"
        extra = ('<C:supported-calendar-component-set><C:comp name="VTODO"/>'
                 '<C:comp name="VEVENT"/></C:supported-calendar-component-set>')
    return (HEADER + f'<D:mkcol {NS}><D:set><D:prop>{rtype}'
            f'<D:displayname>{escape(displayname)}</D:displayname>{extra}'
            '</D:prop></D:set></D:mkcol>')


def proppatch_displayname(displayname: str) -> str:
    return (HEADER + f'<D:propertyupdate {NS}><D:set><D:prop>'
            f'<D:displayname>{escape(displayname)}</D:displayname></D:prop></D:set>'
            '</D:propertyupdate>')


def child_hrefs(el: ET.Element | None) -> list[str]:
    if el is None:
        return []
    return [norm_href(h.text) for h in el.iter(f"{DAV}href") if h.text]


def resource_types(el: ET.Element | None) -> set[str]:
    return set() if el is None else {c.tag for c in el}


def components(el: ET.Element | None) -> set[str]:
    if el is None:
        return set()
    return {c.get("name", "").upper() for c in el.iter(f"{CALDAV}comp")}
