"""A minimal REST connector and a real HTTP server on 127.0.0.1 for it, used by the
rate-limit tests: the server answers HTTP 429 with Retry-After while told to, as a SaaS
practice API does when its rate limit is reached. No SaaS API runs locally, so this small
server follows the published contract (429 + Retry-After seconds) instead."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from concord.connectors.base import Capabilities, Connector, ConnectorOptions, Item, ItemError
from concord.errors import RateLimited, TerminalError


class RestOptions(ConnectorOptions):
    url: str
    api_key: str


class RestConnector(Connector):
    name = "test-rest"
    capabilities = Capabilities(entities=("client", "job"), read_only=True)
    Options = RestOptions

    def _get(self, path: str) -> Any:
        assert isinstance(self.options, RestOptions)
        r = httpx.get(self.options.url + path, timeout=5,
                      headers={"Authorization": f"Bearer {self.options.api_key}"})
        if r.status_code == 429:
            raise RateLimited(f"{self.options.url} answered 429 Too Many Requests",
                              retry_after=float(r.headers.get("Retry-After", "60")))
        if r.status_code != 200:
            raise TerminalError(f"{self.options.url} answered {r.status_code}")
        return r.json()

    def list(self, entity: str) -> Iterable[tuple[str, str]]:
        return [(d["id"], d["version"]) for d in self._get(f"/{entity}")]

    def get(self, entity: str, refs: Sequence[str]) -> Iterable[Item | ItemError]:
        want = set(refs)
        return [Item(d["id"], d["version"], d["fields"]) for d in self._get(f"/{entity}")
                if d["id"] in want]


class RestSpoke:
    """The server: ``limited`` > 0 answers that many requests with 429 + Retry-After."""

    def __init__(self, retry_after: float = 1.0) -> None:
        self.limited = 0
        self.retry_after = retry_after
        self.records: dict[str, list[dict[str, Any]]] = {"client": [], "job": []}
        self.hits = 0
        spoke = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                spoke.hits += 1
                if spoke.limited > 0:
                    spoke.limited -= 1
                    self.send_response(429)
                    self.send_header("Retry-After", str(spoke.retry_after))
                    self.end_headers()
                    return
                body = json.dumps(spoke.records.get(self.path.strip("/"), [])).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> RestSpoke:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
