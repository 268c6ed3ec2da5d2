"""An httpx WebDAV client with just what CardDAV/CalDAV sync needs.

Every HTTP failure is translated here, once, into Concord's error tree:
412 → ``PreconditionFailed`` (a conflict, never an overwrite), 429/503 with Retry-After →
``RateLimited``, other 5xx and connection errors → ``TransientError``, 401/403/404 on a
collection → ``TerminalError`` with the fix. Writes are pipelined on a thread pool whose size
is capped *per server* (shared by every link that talks to it), so ten links to one small
server never hit it with forty parallel PUTs.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote, urljoin, urlsplit

import httpx

from concord.connectors.dav import xml as dx
from concord.errors import (
    ConnectorError,
    PreconditionFailed,
    RateLimited,
    TerminalError,
    TransientError,
)

T = TypeVar("T")

_server_slots: dict[str, threading.BoundedSemaphore] = {}
_slots_lock = threading.Lock()


def server_slots(origin: str, cap: int) -> threading.BoundedSemaphore:
    """The process-wide write slots for one server (scheme://host:port)."""
    with _slots_lock:
        sem = _server_slots.get(origin)
        if sem is None:
            sem = _server_slots[origin] = threading.BoundedSemaphore(max(1, cap))
        return sem


class SyncTokenExpired(ConnectorError):
    """The server no longer knows our sync-token (403 or 412): list everything."""


@dataclass(slots=True)
class Fetched:
    href: str
    etag: str | None
    data: str | None
    status: int


def _retry_after(resp: httpx.Response) -> float:
    value = resp.headers.get("Retry-After", "").strip()
    if not value:
        return 30.0
    try:
        return float(value)
    except ValueError:
        pass
    try:
        import time

        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return 30.0


class DavClient:
    WRITE_RETRIES = 5

    def __init__(self, url: str, *, username: str | None = None, password: str | None = None,
                 token: str | None = None, verify: bool | str = True, timeout: float = 30.0,
                 max_connections: int = 4, max_item_bytes: int = 2_000_000) -> None:
        self.url = url if url.endswith("/") else url + "/"
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise TerminalError(f"{url!r} is not an http(s) URL (fix: give the full URL of the "
                                "collection or the server, e.g. https://dav.example.com/)")
        self.origin = f"{parts.scheme}://{parts.netloc}"
        headers = {"User-Agent": "Concord"}
        auth: httpx.Auth | None = None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif username is not None:
            auth = httpx.BasicAuth(username, password or "")
        self.max_connections = max(1, max_connections)
        self.max_item_bytes = max_item_bytes
        self.http = httpx.Client(
            auth=auth, headers=headers, verify=verify, timeout=timeout,
            limits=httpx.Limits(max_connections=self.max_connections + 2,
                                max_keepalive_connections=self.max_connections + 2),
        )
        self._pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self.http.close()

    # -- plumbing ------------------------------------------------------------------
    def abs(self, href: str) -> str:
        """Absolute URL for an (unquoted) href or path."""
        if "://" in href:
            return href
        return urljoin(self.origin, quote(href))

    def request(self, method: str, href: str, *, body: str | bytes | None = None,
                headers: dict[str, str] | None = None, ref: str | None = None) -> httpx.Response:
        url = self.abs(href)
        h = dict(headers or {})
        if body is not None and "Content-Type" not in h:
            h["Content-Type"] = "application/xml; charset=utf-8"
        for attempt in range(self.WRITE_RETRIES + 1):
            try:
                resp = self.http.request(method, url, content=body, headers=h)
            except httpx.TimeoutException as exc:
                raise TransientError(f"{method} {url}: timed out ({exc}); will retry next run"
                                     ) from exc
            except httpx.TransportError as exc:
                raise TransientError(f"{method} {url}: cannot reach the server ({exc}) "
                                     "(fix: check the URL and that the server is up)") from exc
            # A server that serialises writes (Xandikos locks its git index) answers a
            # concurrent one with 423 or 500. Our writes are conditional, so trying again is
            # safe: one that did land meanwhile comes back as 412, never as a double write.
            if (resp.status_code in (423, 500, 502, 504) and method in ("PUT", "DELETE")
                    and attempt < self.WRITE_RETRIES):
                time.sleep(0.02 * (2 ** attempt) + random.random() * 0.02)
                continue
            break
        code = resp.status_code
        if code < 400:
            return resp
        what = ref or href
        if code == 412:
            raise PreconditionFailed(what, h.get("If-Match") or h.get("If-None-Match"),
                                     resp.headers.get("ETag"))
        if code in (429, 503):
            raise RateLimited(f"{method} {url}: server busy ({code})", retry_after=_retry_after(resp))
        if code >= 500:
            raise TransientError(f"{method} {url}: server error {code}: {resp.text[:200]}")
        if code == 401:
            raise _HTTPError(401, f"{method} {url}: 401 unauthorised (fix: check the username and "
                                "password or token in the link options)")
        if code == 403:
            raise _HTTPError(403, f"{method} {url}: 403 forbidden (fix: give the account access "
                                "to this collection, or point the link at one it owns)")
        raise _HTTPError(code, f"{method} {url}: {code} {resp.reason_phrase}: {resp.text[:200]}")

    def multistatus(self, method: str, href: str, body: str, depth: str) -> tuple[
            list[dx.Response], str | None]:
        resp = self.request(method, href, body=body, headers={"Depth": depth})
        if resp.status_code != 207:
            raise TransientError(f"{method} {self.abs(href)}: expected 207, got {resp.status_code}")
        return dx.parse_multistatus(resp.content)

    def propfind(self, href: str, props: list[str], depth: str = "0") -> list[dx.Response]:
        return self.multistatus("PROPFIND", href, dx.propfind_body(props), depth)[0]

    # -- discovery -------------------------------------------------------------------
    def discover(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        """Collections of ``kind`` ("card" or "cal") the account can see: principal →
        home set → collections. Each is (path, {"displayname", "components"})."""
        home_prop = "CR:addressbook-home-set" if kind == "card" else "C:calendar-home-set"
        home_tag = (dx.CARDDAV + "addressbook-home-set" if kind == "card"
                    else dx.CALDAV + "calendar-home-set")
        start = urlsplit(self.url).path
        for probe in (start, f"/.well-known/{'carddav' if kind == 'card' else 'caldav'}"):
            try:
                rs = self.propfind(probe, ["D:current-user-principal", home_prop, "D:resourcetype"])
            except (_HTTPError, TransientError):
                continue
            if rs:
                break
        else:
            raise TerminalError(f"{self.url}: no DAV service found (fix: check the URL)")
        principal = dx.child_hrefs(rs[0].props.get(dx.DAV + "current-user-principal"))
        homes = dx.child_hrefs(rs[0].props.get(home_tag))
        if not homes and principal:
            homes = dx.child_hrefs(self.propfind(principal[0], [home_prop])[0].props.get(home_tag))
        if not homes:
            homes = [start]
        want = dx.CARDDAV + "addressbook" if kind == "card" else dx.CALDAV + "calendar"
        found: list[tuple[str, dict[str, Any]]] = []
        for home in homes:
            for r in self.propfind(home, ["D:resourcetype", "D:displayname",
                                          "C:supported-calendar-component-set"], depth="1"):
                if want in dx.resource_types(r.props.get(dx.DAV + "resourcetype")):
                    found.append((r.href if r.href.endswith("/") else r.href + "/", {
                        "displayname": r.text(dx.DAV + "displayname") or "",
                        "components": dx.components(
                            r.props.get(dx.CALDAV + "supported-calendar-component-set")),
                    }))
        return found

    def home_set(self, kind: str) -> str:
        home_prop = "CR:addressbook-home-set" if kind == "card" else "C:calendar-home-set"
        home_tag = (dx.CARDDAV + "addressbook-home-set" if kind == "card"
                    else dx.CALDAV + "calendar-home-set")
        rs = self.propfind(urlsplit(self.url).path, ["D:current-user-principal", home_prop])
        homes = dx.child_hrefs(rs[0].props.get(home_tag)) if rs else []
        principal = dx.child_hrefs(rs[0].props.get(dx.DAV + "current-user-principal")) if rs else []
        if not homes and principal:
            homes = dx.child_hrefs(self.propfind(principal[0], [home_prop])[0].props.get(home_tag))
        if not homes:
            raise TerminalError(f"{self.url}: the server names no {kind} home set "
                                "(fix: give the collection URL itself)")
        return homes[0] if homes[0].endswith("/") else homes[0] + "/"

    def make_collection(self, href: str, kind: str, displayname: str) -> None:
        resp = self.request("MKCOL", href, body=dx.mkcol_body(kind, displayname))
        if resp.status_code not in (200, 201):
            raise TerminalError(f"MKCOL {self.abs(href)}: {resp.status_code}")

    def collection_state(self, href: str) -> tuple[str | None, str | None]:
        """(collection etag, sync-token) as of now."""
        rs = self.propfind(href, ["D:getetag", "D:sync-token"])
        if not rs:
            return None, None
        return rs[0].text(dx.DAV + "getetag"), rs[0].text(dx.DAV + "sync-token")

    # -- listing -----------------------------------------------------------------------
    def list_etags(self, href: str, component: str | None = None) -> dict[str, str]:
        """Every member href → etag (a calendar-query when one component type is wanted)."""
        if component:
            rs, _ = self.multistatus("REPORT", href, dx.calendar_query_body(component), "1")
        else:
            rs = self.propfind(href, ["D:getetag", "D:resourcetype"], depth="1")
        base = dx.norm_href(urlsplit(self.abs(href)).path).rstrip("/")
        out: dict[str, str] = {}
        for r in rs:
            if r.href.rstrip("/") == base or r.status != 200:
                continue
            if dx.DAV + "collection" in dx.resource_types(r.props.get(dx.DAV + "resourcetype")):
                continue
            etag = r.text(dx.DAV + "getetag")
            if etag is not None:
                out[r.href] = etag
        return out

    def sync_collection(self, href: str, token: str | None) -> tuple[
            dict[str, str], set[str], str | None]:
        """RFC 6578: (changed href → etag, deleted hrefs, new token)."""
        try:
            rs, new_token = self.multistatus("REPORT", href, dx.sync_collection_body(token), "1")
        except PreconditionFailed as exc:  # 412 (Xandikos)
            raise SyncTokenExpired(f"{self.abs(href)}: sync token expired") from exc
        except _HTTPError as exc:
            # 403 DAV:valid-sync-token (Radicale), or 400/409/410 from others
            if token and exc.code in (400, 403, 409, 410):
                raise SyncTokenExpired(f"{self.abs(href)}: sync token refused") from exc
            raise
        changed: dict[str, str] = {}
        deleted: set[str] = set()
        base = dx.norm_href(urlsplit(self.abs(href)).path).rstrip("/")
        for r in rs:
            if r.href.rstrip("/") == base:
                continue
            if r.status == 404:
                deleted.add(r.href)
                continue
            etag = r.text(dx.DAV + "getetag")
            if etag is not None:
                changed[r.href] = etag
        return changed, deleted, new_token

    def multiget(self, href: str, kind: str, hrefs: Sequence[str], chunk: int = 200
                 ) -> Iterator[Fetched]:
        """The data of ``hrefs``, fetched ``chunk`` at a time."""
        data_tag = dx.CARDDAV + "address-data" if kind == "card" else dx.CALDAV + "calendar-data"
        for i in range(0, len(hrefs), chunk):
            part = list(hrefs[i:i + chunk])
            rs, _ = self.multistatus("REPORT", href, dx.multiget_body(kind, part), "1")
            for r in rs:
                data = r.text(data_tag)
                yield Fetched(r.href, r.text(dx.DAV + "getetag"), data,
                              r.status if data is not None else 404)

    # -- writing -------------------------------------------------------------------------
    def put(self, href: str, data: str, content_type: str, *, etag: str | None = None,
            create: bool = False, ref: str | None = None) -> str:
        """Conditional PUT; returns the new etag."""
        headers = {"Content-Type": content_type}
        if create:
            headers["If-None-Match"] = "*"
        elif etag:
            headers["If-Match"] = etag
        resp = self.request("PUT", href, body=data.encode(), headers=headers, ref=ref)
        new: str | None = resp.headers.get("ETag")
        if new:
            return new
        rs = self.propfind(href, ["D:getetag"])
        tag = rs[0].text(dx.DAV + "getetag") if rs else None
        if not tag:
            raise TransientError(f"PUT {self.abs(href)}: the server gave no etag")
        return str(tag)

    def get(self, href: str) -> tuple[str | None, str] | None:
        try:
            resp = self.request("GET", href)
        except _HTTPError as exc:
            if exc.code in (404, 410):
                return None
            raise
        return resp.headers.get("ETag"), resp.text

    def delete(self, href: str, etag: str | None, *, ref: str | None = None) -> None:
        headers = {"If-Match": etag} if etag else {}
        try:
            self.request("DELETE", href, headers=headers, ref=ref)
        except _HTTPError as exc:
            if exc.code in (404, 410):
                if etag:  # gone already; with an expected version it is a conflict
                    raise PreconditionFailed(ref or href, etag, None) from exc
                return
            raise

    def pipelined(self, jobs: Sequence[Callable[[], T]]) -> list[T | Exception]:
        """Run write ``jobs`` concurrently, at most the server's cap in flight; each
        job's result or exception, in order."""
        if len(jobs) <= 1:
            return [_call(j) for j in jobs]
        slots = server_slots(self.origin, self.max_connections)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.max_connections,
                                            thread_name_prefix="concord-dav")

        def guarded(job: Callable[[], T]) -> T | Exception:
            with slots:
                return _call(job)

        return list(self._pool.map(guarded, jobs))


def _call(job: Callable[[], T]) -> T | Exception:
    try:
        return job()
    except ConnectorError as exc:
        return exc


class _HTTPError(TerminalError):
    """A 4xx the caller may want to tell apart by code."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(message)


HTTPError = _HTTPError
