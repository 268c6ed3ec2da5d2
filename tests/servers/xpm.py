"""A stateful, in-process Xero Practice Manager (API v3.1) for the tests and the bench.

Why a fake: no local XPM server exists (XPM is a hosted Xero service with no downloadable
or self-hosted edition), so the tests cannot talk to a real one on 127.0.0.1. This fake is
an ``httpx.MockTransport`` handler that keeps the practice's data in memory and is strict
where the real service is:

- every request is checked against the contract (``shared/specs/xero-practice-manager-3.1
  .yaml``): the path and method must be an operation of the spec, the query parameters must
  be the operation's, the JSON body must validate against its request schema; and every
  answer the fake gives for a documented status validates against the response schema (a
  fake that drifted from the spec fails the test, with the operation named). Validation
  uses ``jsonschema_rs`` on the spec's component schemas, converted from OpenAPI 3.0
  (``nullable``; ``allOf`` of closed objects is merged, as OpenAPI tools read it);
- OAuth2: the authorization code flow with PKCE (S256) at the token endpoint, access tokens
  that live 30 minutes, refresh tokens that rotate on every refresh (the previous one stays
  usable for a grace period, as Xero's do, so a refresh whose answer was lost can be
  retried), and a 401 for an expired or unknown access token;
- rate limits per practice: 60 calls a minute, 5,000 a day (rolling windows), 5 calls in
  flight; each answer carries ``X-MinLimit-Remaining`` / ``X-DayLimit-Remaining``, and a
  call over a limit gets a 429 with ``Retry-After`` and ``X-Rate-Limit-Problem``;
- a controllable clock (``FakeClock``): time moves only when someone sleeps on it, so
  Retry-After, token expiry and a day's budget are simulated without waiting;
- faults on demand (``fail_next``): a 500, a timeout (before or after the change is made:
  a lost answer), an expired token.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import itertools
import json
import re
import secrets
import threading
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import jsonschema_rs
import yaml

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "xero-practice-manager-3.1.yaml"
API = "https://api.xero.com/practicemanager"
TOKEN_URL = "https://identity.xero.com/connect/token"
CONNECTIONS_URL = "https://api.xero.com/connections"
ACCESS_LIFETIME = 30 * 60.0
REFRESH_GRACE = 30 * 60.0


def spec_path() -> Path:
    for cand in (SPEC, Path("/work/shared/specs/xero-practice-manager-3.1.yaml")):
        if cand.exists():
            return cand
    raise FileNotFoundError(f"the XPM contract is missing: {SPEC}")


# -- the contract ---------------------------------------------------------------------------
def _convert(node: Any, comps: dict[str, Any]) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema (draft 7), refs into ``#/definitions``."""
    if isinstance(node, list):
        return [_convert(n, comps) for n in node]
    if not isinstance(node, dict):
        return node
    if "allOf" in node:
        merged: dict[str, Any] = {"type": "object", "properties": {}}
        closed = False
        for part in node["allOf"]:
            flat = _flatten(part, comps)
            merged["properties"].update(flat.get("properties", {}))
            closed = closed or flat.get("additionalProperties") is False
        if closed:
            merged["additionalProperties"] = False
        return _convert(merged, comps)
    out: dict[str, Any] = {}
    for k, v in node.items():
        if k == "$ref":
            out[k] = v.replace("#/components/schemas/", "#/definitions/")
        elif k in ("nullable", "x-position", "format", "example", "description"):
            continue
        elif k == "properties":
            out[k] = {name: _convert(s, comps) for name, s in v.items()}
        else:
            out[k] = _convert(v, comps)
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "oneOf" in out:
            out = {"anyOf": [*out.pop("oneOf"), {"type": "null"}], **out}
    return out


def _flatten(part: dict[str, Any], comps: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in part:
        return _flatten(comps[part["$ref"].rsplit("/", 1)[1]], comps)
    if "allOf" in part:
        props: dict[str, Any] = {}
        closed = False
        for p in part["allOf"]:
            f = _flatten(p, comps)
            props.update(f.get("properties", {}))
            closed = closed or f.get("additionalProperties") is False
        return {"properties": props, "additionalProperties": not closed and None}
    return part


def _merge(rec: dict[str, Any], body: dict[str, Any]) -> None:
    """An update's body onto a stored record: a null clears the field, as in XPM."""
    for k, v in body.items():
        if v is None:
            rec.pop(k, None)
        else:
            rec[k] = v


@dataclass
class Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    op_id: str
    query: set[str]
    request: str | None
    responses: dict[int, str]


class Contract:
    """The spec's operations and a validator per component schema."""

    def __init__(self, path: Path) -> None:
        spec = yaml.safe_load(path.read_text())
        comps = spec["components"]["schemas"]
        self.definitions = {n: _convert(s, comps) for n, s in comps.items()}
        self._validators: dict[str, Any] = {}
        self.operations: list[Operation] = []
        for template, item in spec["paths"].items():
            rx = re.compile("^" + re.sub(r"\{[^}]+\}", r"([^/]+)", template) + "$")
            for method, op in item.items():
                params = op.get("parameters", [])
                body = (op.get("requestBody", {}).get("content", {})
                        .get("application/json", {}).get("schema", {}).get("$ref"))
                responses = {}
                for code, r in op.get("responses", {}).items():
                    ref = r.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
                    if ref:
                        responses[int(code)] = ref.rsplit("/", 1)[1]
                self.operations.append(Operation(
                    method.upper(), template, rx, op["operationId"],
                    {p["name"] for p in params if p["in"] == "query"},
                    body.rsplit("/", 1)[1] if body else None, responses))

    def find(self, method: str, path: str) -> tuple[Operation, tuple[str, ...]] | None:
        for op in self.operations:
            if op.method == method:
                m = op.pattern.match(path)
                if m:
                    return op, m.groups()
        return None

    def errors(self, schema: str, instance: Any) -> list[str]:
        v = self._validators.get(schema)
        if v is None:
            v = self._validators[schema] = jsonschema_rs.Draft7Validator(
                {"$ref": f"#/definitions/{schema}", "definitions": self.definitions})
        return [f"{'/'.join(map(str, e.instance_path)) or '(body)'}: {e.message}"
                for e in v.iter_errors(instance)]


@lru_cache(maxsize=1)
def contract() -> Contract:
    return Contract(spec_path())


# -- clock ----------------------------------------------------------------------------------
class FakeClock:
    """Simulated time: ``sleep`` moves it on at once. Thread-safe."""

    def __init__(self, start: float = 1_796_212_800.0) -> None:  # 2026-12-02 12:00 UTC
        self.now = start
        self.slept = 0.0
        self._lock = threading.Lock()

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += max(0.0, seconds)
            self.slept += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.sleep(seconds)


class ContractViolation(AssertionError):
    pass


@dataclass
class Fault:
    kind: str  # "500" | "timeout" | "timeout-after" | "expire" | "429-minute" | "429-day"
    match: str = ""  # a substring of the path, "" for any call
    count: int = 1


@dataclass
class Practice:
    """One XPM practice (a Xero tenant)."""

    tenant_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)
    modified: dict[str, float] = field(default_factory=dict)  # client uuid -> when
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    contact_client: dict[str, str] = field(default_factory=dict)
    staff: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)  # job number -> JobDto
    definitions: dict[str, dict[str, Any]] = field(default_factory=dict)
    values: dict[tuple[str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)


class XpmFake:
    """The fake service. ``transport`` is what the connector's httpx client uses."""

    MINUTE_LIMIT = 60
    DAY_LIMIT = 5000
    CONCURRENCY = 5

    def __init__(self, clock: FakeClock | None = None, *, client_id: str = "concord-test",
                 client_secret: str = "s3cret", validate: bool = True) -> None:
        self.clock = clock or FakeClock()
        self.client_id, self.client_secret = client_id, client_secret
        self.validate = validate
        self.contract = contract()
        self.practice = Practice()
        self.lock = threading.RLock()
        self.codes: dict[str, dict[str, Any]] = {}
        self.access: dict[str, float] = {}  # access token -> expiry
        self.refresh: dict[str, float | None] = {}  # refresh token -> end of grace (None: current)
        self.rotations: dict[str, dict[str, Any]] = {}  # old refresh -> answer it got
        self.minute: deque[float] = deque()
        self.day: deque[float] = deque()
        self.in_flight = 0
        self.max_in_flight = 0
        self.faults: list[Fault] = []
        self.calls: Counter[str] = Counter()  # operationId -> calls (API calls only)
        self.refreshes = 0
        self.limited: Counter[str] = Counter()  # 429s given, by problem
        self._job_numbers = itertools.count(1)
        self.transport = httpx.MockTransport(self.handle)
        self.on_call: Callable[[str], None] | None = None  # a hook run inside each API call

    # -- OAuth helpers for tests ------------------------------------------------------------
    def authorize(self, *, client_id: str, redirect_uri: str, code_challenge: str,
                  code_challenge_method: str = "S256", scope: str = "") -> str:
        """What the user's consent in a browser gives: an authorization code."""
        assert client_id == self.client_id and code_challenge_method == "S256"
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"challenge": code_challenge, "redirect_uri": redirect_uri,
                            "scope": scope}
        return code

    def expire_tokens(self) -> None:
        with self.lock:
            for t in self.access:
                self.access[t] = self.clock.time() - 1

    @property
    def api_calls(self) -> int:
        return sum(self.calls.values())

    def fail_next(self, kind: str, match: str = "", count: int = 1) -> None:
        self.faults.append(Fault(kind, match, count))

    # -- data helpers for tests ---------------------------------------------------------
    def add_client(self, **fields: Any) -> str:
        with self.lock:
            uid = str(uuid.uuid4())
            contacts = fields.pop("contacts", [])
            self.practice.clients[uid] = {"uuid": uid, **fields}
            self._touch(uid)
            for c in contacts:
                cid = str(uuid.uuid4())
                self.practice.contacts[cid] = {"uuid": cid, **c}
                self.practice.contact_client[cid] = uid
            return uid

    def edit_client(self, uid: str, **fields: Any) -> None:
        with self.lock:
            self.practice.clients[uid].update(fields)
            self._touch(uid)

    def add_staff(self, **fields: Any) -> str:
        uid = str(uuid.uuid4())
        self.practice.staff[uid] = {"uuid": uid, **fields}
        return uid

    def add_job(self, client: str, **fields: Any) -> str:
        number = f"J{next(self._job_numbers):06d}"
        c = self.practice.clients[client]
        tasks = [{"uuid": str(uuid.uuid4()), **t} for t in fields.pop("tasks", [])]
        self.practice.jobs[number] = {"id": number, "uuid": str(uuid.uuid4()),
                                      "client": {"uuid": client, "name": c.get("name", "")},
                                      "state": "Planned", "tasks": tasks, **fields}
        return number

    def add_definition(self, **fields: Any) -> str:
        uid = str(uuid.uuid4())
        self.practice.definitions[uid] = {"uuid": uid, **fields}
        return uid

    def set_value(self, kind: str, owner: str, name: str, **value: Any) -> None:
        with self.lock:
            d = next(d for d in self.practice.definitions.values() if d["name"] == name)
            self.practice.values.setdefault((kind, owner), {})[name] = {
                "uuid": d["uuid"], "name": name, **value}
            if kind == "client":
                self._touch(owner)

    def _touch(self, client: str) -> None:
        self.practice.modified[client] = self.clock.time()

    # -- the transport --------------------------------------------------------------------
    def handle(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url).split("?")[0]
        if url == TOKEN_URL:
            return self._token(request)
        if url == CONNECTIONS_URL:
            if not self._authorised(request):
                return httpx.Response(401, json={"Title": "Unauthorized"})
            return httpx.Response(200, json=[{"tenantId": self.practice.tenant_id,
                                              "tenantType": "PRACTICEMANAGER",
                                              "tenantName": "Test Practice"}])
        if not url.startswith(API + "/"):
            raise ContractViolation(f"request to an unknown host or path: {request.url}")
        path = url[len(API):]
        found = self.contract.find(request.method, path)
        if found is None:
            raise ContractViolation(f"{request.method} {path} is not an operation of XPM 3.1")
        op, args = found
        fault = self._fault(path)
        if fault == "expire":
            self.expire_tokens()
        if not self._authorised(request):
            return httpx.Response(401, json={"status": "Error",
                                             "errorDescription": "token expired or invalid"})
        if request.headers.get("xero-tenant-id") != self.practice.tenant_id:
            return httpx.Response(403, json={"status": "Error",
                                             "errorDescription": "xero-tenant-id is missing or wrong"})
        limited = self._limit(fault)
        if limited is not None:
            return limited
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            over = self.in_flight > self.CONCURRENCY
        try:
            if over:
                self.limited["concurrent"] += 1
                return self._headers(httpx.Response(
                    429, headers={"Retry-After": "1", "X-Rate-Limit-Problem": "concurrent"}))
            if fault == "timeout":
                raise httpx.ReadTimeout("the fake timed out", request=request)
            if fault == "500":
                return self._headers(httpx.Response(500, json={
                    "status": "Error", "errorDescription": "An unexpected error occurred."}))
            if self.on_call is not None:
                self.on_call(op.op_id)
            unknown = set(request.url.params) - op.query
            if unknown:
                raise ContractViolation(f"{op.op_id}: query parameters not in the spec: {unknown}")
            body: Any = None
            if op.request is not None:
                try:
                    body = json.loads(request.content or b"null")
                except ValueError as exc:
                    raise ContractViolation(f"{op.op_id}: the body is not JSON") from exc
                if self.validate:
                    errs = self.contract.errors(op.request, body)
                    if errs:
                        raise ContractViolation(f"{op.op_id} request: {errs[:5]}")
            elif request.content:
                raise ContractViolation(f"{op.op_id} takes no body")
            self.calls[op.op_id] += 1
            with self.lock:
                status, payload = self._dispatch(op.op_id, args, dict(request.url.params), body)
            if self.validate and status in op.responses:
                errs = self.contract.errors(op.responses[status], payload)
                if errs:
                    raise ContractViolation(f"{op.op_id} response {status}: {errs[:5]}")
            if fault == "timeout-after":  # the change is made, the answer is lost
                raise httpx.ReadTimeout("the fake's answer was lost", request=request)
            return self._headers(httpx.Response(status, json=payload))
        finally:
            with self.lock:
                self.in_flight -= 1

    def _fault(self, path: str) -> str | None:
        with self.lock:
            for f in self.faults:
                if f.match in path and f.count > 0:
                    f.count -= 1
                    if f.count == 0:
                        self.faults.remove(f)
                    return f.kind
        return None

    def _authorised(self, request: httpx.Request) -> bool:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return False
        exp = self.access.get(auth[7:])
        return exp is not None and exp > self.clock.time()

    def _limit(self, fault: str | None) -> httpx.Response | None:
        now = self.clock.time()
        with self.lock:
            while self.minute and self.minute[0] <= now - 60:
                self.minute.popleft()
            while self.day and self.day[0] <= now - 86400:
                self.day.popleft()
            if fault == "429-day" or len(self.day) >= self.DAY_LIMIT:
                wait = (self.day[0] + 86400 - now) if self.day else 3600.0
                self.limited["day"] += 1
                return self._headers(httpx.Response(429, headers={
                    "Retry-After": str(max(1, int(wait + 0.999))), "X-Rate-Limit-Problem": "day"}))
            if fault == "429-minute" or len(self.minute) >= self.MINUTE_LIMIT:
                wait = (self.minute[0] + 60 - now) if self.minute else 30.0
                self.limited["minute"] += 1
                return self._headers(httpx.Response(429, headers={
                    "Retry-After": str(max(1, int(wait + 0.999))), "X-Rate-Limit-Problem": "minute"}))
            self.minute.append(now)
            self.day.append(now)
        return None

    def _headers(self, response: httpx.Response) -> httpx.Response:
        with self.lock:
            response.headers["X-MinLimit-Remaining"] = str(max(0, self.MINUTE_LIMIT - len(self.minute)))
            response.headers["X-DayLimit-Remaining"] = str(max(0, self.DAY_LIMIT - len(self.day)))
        return response

    # -- OAuth ------------------------------------------------------------------------------
    def _token(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        basic = request.headers.get("authorization", "")
        expected = "Basic " + base64.b64encode(
            f"{self.client_id}:{self.client_secret}".encode()).decode()
        if basic != expected and form.get("client_id") != self.client_id:
            return httpx.Response(401, json={"error": "invalid_client"})
        fault = self._fault("/connect/token")
        if fault == "timeout":
            raise httpx.ReadTimeout("the token endpoint timed out", request=request)
        if fault == "500":
            return httpx.Response(500, json={"error": "server_error"})
        now = self.clock.time()
        with self.lock:
            if form.get("grant_type") == "authorization_code":
                got = self.codes.pop(form.get("code", ""), None)
                verifier = form.get("code_verifier", "")
                challenge = base64.urlsafe_b64encode(
                    hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                if got is None or got["challenge"] != challenge or \
                        got["redirect_uri"] != form.get("redirect_uri"):
                    return httpx.Response(400, json={"error": "invalid_grant"})
                answer = self._issue(now)
            elif form.get("grant_type") == "refresh_token":
                old = form.get("refresh_token", "")
                if old not in self.refresh:
                    return httpx.Response(400, json={"error": "invalid_grant"})
                grace = self.refresh[old]
                if grace is not None and grace < now:
                    return httpx.Response(400, json={"error": "invalid_grant"})
                if grace is not None:  # a retry within the grace period: the same new set
                    answer = self.rotations[old]
                else:
                    answer = self._issue(now)
                    self.refresh[old] = now + REFRESH_GRACE
                    self.rotations[old] = answer
                self.refreshes += 1
            else:
                return httpx.Response(400, json={"error": "unsupported_grant_type"})
        if fault == "timeout-after":
            raise httpx.ReadTimeout("the token answer was lost", request=request)
        return httpx.Response(200, json=answer)

    def _issue(self, now: float) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.access[access] = now + ACCESS_LIFETIME
        self.refresh[refresh] = None
        return {"access_token": access, "refresh_token": refresh, "token_type": "Bearer",
                "expires_in": int(ACCESS_LIFETIME), "scope": "offline_access practicemanager"}

    # -- the API ----------------------------------------------------------------------------
    def _client_out(self, uid: str, detailed: bool = False) -> dict[str, Any]:
        p = self.practice
        c = copy.deepcopy(p.clients[uid])
        c["contacts"] = [copy.deepcopy(p.contacts[cid]) for cid, owner in p.contact_client.items()
                         if owner == uid and cid in p.contacts]
        if detailed:
            c.setdefault("notes", [])
            c.setdefault("groups", [])
            c.setdefault("relationships", [])
        return c

    def _dispatch(self, op: str, args: tuple[str, ...], q: dict[str, str],
                  body: Any) -> tuple[int, Any]:
        p = self.practice
        ok: dict[str, Any] = {"status": "OK"}

        def missing(what: str) -> tuple[int, Any]:
            return 404, {"status": "Error", "errorDescription": f"{what} not found"}

        if op == "ClientV31_List":
            since = q.get("modifiedSince")
            uids = list(p.clients)
            if since:
                t = dt.datetime.strptime(since, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC).timestamp()
                uids = [u for u in uids if p.modified.get(u, 0) >= t]
            detailed = q.get("detailed") == "true"
            return 200, {**ok, "clients": [self._client_out(u, detailed) for u in uids]}
        if op == "ClientV31_GetByIdentifier":
            if args[0] not in p.clients:
                return missing(f"client {args[0]}")
            return 200, {**ok, "client": self._client_out(args[0], True)}
        if op == "ClientV31_Add":
            contacts = body.pop("contacts", None) or []
            body["website"] = body.pop("webSite", None)
            for k in ("billingClientUuid", "accountManagerUuid", "jobManagerUuid"):
                ref = body.pop(k, None)
                if ref:
                    who = p.clients.get(ref) if k.startswith("billing") else p.staff.get(ref)
                    body[k[: -len("Uuid")]] = {"uuid": ref, "name": (who or {}).get("name", "")}
            if isinstance(body.get("balanceMonth"), str):
                body["balanceMonth"] = int(body["balanceMonth"])
            if isinstance(body.get("gstPeriod"), int):
                body["gstPeriod"] = str(body["gstPeriod"])
            uid = self.add_client(**{k: v for k, v in body.items() if v is not None},
                                  contacts=contacts)
            return 200, {**ok, "client": self._client_out(uid, True)}
        if op == "ClientV31_Update":
            uid = body.get("uuid") or ""
            if uid not in p.clients:
                return missing(f"client {uid}")
            body["website"] = body.pop("webSite", None)
            for k in ("billingClientUuid", "accountManagerUuid", "jobManagerUuid"):
                ref = body.pop(k, None)
                key = k[: -len("Uuid")]
                if ref:
                    who = p.clients.get(ref) if k.startswith("billing") else p.staff.get(ref)
                    body[key] = {"uuid": ref, "name": (who or {}).get("name", "")}
                elif k in body or ref == "":
                    body[key] = None
            if isinstance(body.get("balanceMonth"), str):
                body["balanceMonth"] = int(body["balanceMonth"])
            if isinstance(body.get("gstPeriod"), int):
                body["gstPeriod"] = str(body["gstPeriod"])
            rec = p.clients[uid]
            _merge(rec, body)
            self._touch(uid)
            return 200, {**ok, "client": self._client_out(uid, True)}
        if op == "ClientV31_Delete":
            uid = body.get("uuid") or ""
            if p.clients.pop(uid, None) is None:
                return missing(f"client {uid}")
            for cid in [c for c, o in p.contact_client.items() if o == uid]:
                p.contacts.pop(cid, None)
                p.contact_client.pop(cid)
            p.values.pop(("client", uid), None)
            return 200, {**ok}
        if op == "ClientV31_ContactPost":
            owner = (body.pop("client", None) or {}).get("uuid", "")
            if owner not in p.clients:
                return missing(f"client {owner}")
            cid = str(uuid.uuid4())
            p.contacts[cid] = {"uuid": cid, **{k: v for k, v in body.items() if v is not None}}
            p.contact_client[cid] = owner
            self._touch(owner)
            return 200, {**ok, "contact": copy.deepcopy(p.contacts[cid])}
        if op == "ClientV31_ContactGet":
            if args[0] not in p.contacts:
                return missing(f"contact {args[0]}")
            return 200, {**ok, "contact": copy.deepcopy(p.contacts[args[0]])}
        if op == "ClientV31_ContactPut":
            if args[0] not in p.contacts:
                return missing(f"contact {args[0]}")
            body.pop("client", None)
            rec = p.contacts[args[0]]
            _merge(rec, body)
            self._touch(p.contact_client[args[0]])
            return 200, {**ok, "contact": copy.deepcopy(rec)}
        if op == "ClientV31_ContactDelete":
            rec = p.contacts.pop(args[0], None)
            if rec is None:
                return missing(f"contact {args[0]}")
            self._touch(p.contact_client.pop(args[0]))
            return 200, {**ok, "contact": {"uuid": args[0], "isDeleted": "true"}}
        if op == "StaffV31_List":
            return 200, {**ok, "staffList": [copy.deepcopy(s) for s in p.staff.values()]}
        if op == "StaffV31_GetByUuid":
            if args[0] not in p.staff:
                return missing(f"staff {args[0]}")
            return 200, {**ok, "staff": copy.deepcopy(p.staff[args[0]])}
        if op == "StaffV31_Add":
            uid = self.add_staff(**{k: v for k, v in body.items() if v is not None})
            return 200, {**ok, "staff": copy.deepcopy(p.staff[uid])}
        if op == "StaffV31_Update":
            uid = body.pop("uuid", "")
            if uid not in p.staff:
                return missing(f"staff {uid}")
            p.staff[uid] = {"uuid": uid, **{k: v for k, v in body.items() if v is not None}}
            return 200, {**ok, "staff": copy.deepcopy(p.staff[uid])}
        if op == "StaffV31_Delete":
            if p.staff.pop(body.get("uuid", ""), None) is None:
                return missing("staff")
            return 200, {**ok}
        if op in ("JobV31_List", "JobV31_Current"):
            lo, hi = q.get("from"), q.get("to")
            detailed = q.get("detailed") == "true"
            jobs = []
            for j in p.jobs.values():
                start = (j.get("startDate") or "")[:10].replace("-", "")
                if lo and hi and start and not (lo <= start <= hi):
                    continue
                if op == "JobV31_Current" and j.get("state") == "Completed":
                    continue
                out = copy.deepcopy(j)
                if not detailed:
                    out.pop("tasks", None)
                jobs.append(out)
            return 200, {**ok, "jobs": jobs}
        if op == "JobV31_Get":
            if args[0] not in p.jobs:
                return missing(f"job {args[0]}")
            return 200, {**ok, "job": copy.deepcopy(p.jobs[args[0]])}
        if op == "JobV31_Add":
            client = body.pop("clientUuid", "")
            if client not in p.clients:
                return 400, {"status": "Error", "errorDescription": f"client {client} not found"}
            number = body.pop("id", None)
            body.pop("templateUuid", None)
            body.pop("categoryUuid", None)
            contact = body.pop("contactUuid", None)
            if number and number in p.jobs:
                return 409, {"status": "Error", "errorDescription": f"job {number} exists"}
            n = self.add_job(client, **{k: v for k, v in body.items() if v is not None})
            if number:
                p.jobs[number] = p.jobs.pop(n)
                p.jobs[number]["id"] = number
                n = number
            if contact:
                p.jobs[n]["contact"] = {"uuid": contact,
                                        "name": p.contacts.get(contact, {}).get("name", "")}
            return 200, {**ok, "job": copy.deepcopy(p.jobs[n])}
        if op == "JobV31_Update":
            n = body.pop("id", "")
            if n not in p.jobs:
                return missing(f"job {n}")
            body.pop("categoryUuid", None)
            rec = p.jobs[n]
            _merge(rec, body)
            return 200, {**ok, "job": copy.deepcopy(rec)}
        if op == "JobV31_State":
            n = body.get("id", "")
            if n not in p.jobs:
                return missing(f"job {n}")
            p.jobs[n]["state"] = body.get("state")
            return 200, {**ok}
        if op == "JobV31_Delete":
            if p.jobs.pop(body.get("id", ""), None) is None:
                return missing("job")
            return 200, {**ok}
        if op == "JobV31_TaskAdd":
            n = body.pop("job", "")
            if n not in p.jobs:
                return missing(f"job {n}")
            tid = str(uuid.uuid4())
            body["name"] = body.pop("label", None)
            p.jobs[n].setdefault("tasks", []).append(
                {"uuid": tid, **{k: v for k, v in body.items() if v is not None}})
            return 200, {**ok, "uuid": tid}
        if op == "JobV31_TaskUpdate":
            tid = body.pop("uuid", "")
            for j in p.jobs.values():
                for t in j.get("tasks", []):
                    if t["uuid"] == tid:
                        body["name"] = body.pop("label", None)
                        _merge(t, body)
                        return 200, {**ok, "uuid": tid}
            return missing(f"task {tid}")
        if op == "CustomFieldV31_Definition":
            return 200, {**ok, "customFieldDefinitions": [copy.deepcopy(d) for d in p.definitions.values()]}
        if op == "CustomFieldV31_Add":
            opts = body.pop("options", None)
            uid = self.add_definition(**{k: v for k, v in body.items() if v is not None},
                                      **({"options": "\n".join(opts)} if opts else {}))
            return 200, {**ok, "uuid": uid}
        if op == "CustomFieldV31_Update":
            uid = body.pop("uuid", "")
            if uid not in p.definitions:
                return missing(f"custom field {uid}")
            opts = body.pop("options", None)
            p.definitions[uid] = {"uuid": uid, **{k: v for k, v in body.items() if v is not None},
                                  **({"options": "\n".join(opts)} if opts else {})}
            return 200, {**ok, "uuid": uid}
        if op == "CustomFieldV31_Delete":
            if p.definitions.pop(body.get("uuid", ""), None) is None:
                return missing("custom field")
            return 200, {**ok}
        if op in ("CustomFieldV31_GetClientByIdentifier", "CustomFieldV31_GetJob"):
            kind = "client" if "Client" in op else "job"
            if args[0] not in (p.clients if kind == "client" else p.jobs):
                return missing(f"{kind} {args[0]}")
            vals = p.values.get((kind, args[0]), {})
            return 200, {**ok, "customFields": [copy.deepcopy(v) for v in vals.values()]}
        if op in ("CustomFieldV31_UpdateClientByIdentifier", "CustomFieldV31_UpdateJob"):
            kind = "client" if "Client" in op else "job"
            if args[0] not in (p.clients if kind == "client" else p.jobs):
                return missing(f"{kind} {args[0]}")
            vals = p.values.setdefault((kind, args[0]), {})
            names = {d["uuid"]: d["name"] for d in p.definitions.values()}
            for v in body.get("customFields", []):
                name = v.get("name") or names.get(v.get("uuid", ""), "")
                if name not in names.values():
                    return 400, {"status": "Error", "errorDescription": f"no custom field {name!r}"}
                uid = next(u for u, n in names.items() if n == name)
                value = {k: x for k, x in v.items() if k not in ("uuid", "name") and x is not None}
                if not value:
                    vals.pop(name, None)
                else:
                    vals[name] = {"uuid": uid, "name": name, **value}
            if kind == "client":
                self._touch(args[0])
            return 200, {**ok}
        raise ContractViolation(f"the fake does not implement {op}")


# -- wiring a connector to the fake ---------------------------------------------------------
TOKEN_KEY = "q2ZbTCAQKwXW6S2H5K7kq3sQhQ9Tyk0vX7Ns4r8S6Fg="  # a Fernet key for the tests only
REDIRECT = "http://127.0.0.1:8765/xpm/callback"


def options(**extra: Any) -> dict[str, Any]:
    return {"client_id": "concord-test", "client_secret": "s3cret", "token_key": TOKEN_KEY,
            "redirect_uri": REDIRECT, **extra}


def connect(fake: XpmFake, hub: Any) -> None:
    """The administrator's one-time consent: PKCE authorization code -> token set in the hub."""
    from pydantic import SecretStr

    from concord.connectors.xpm.auth import (
        TokenVault,
        challenge_of,
        finish_authorization,
        start_authorization,
    )

    auth = start_authorization(fake.client_id, REDIRECT)
    code = fake.authorize(client_id=fake.client_id, redirect_uri=REDIRECT,
                          code_challenge=challenge_of(auth))
    with httpx.Client(transport=fake.transport) as http:
        finish_authorization(TokenVault(hub, SecretStr(TOKEN_KEY)), http, auth,
                             client_id=fake.client_id, client_secret=SecretStr(fake.client_secret),
                             code=code, state=auth.state, clock=fake.clock.time)


def connector(fake: XpmFake, hub: Any, link: str = "xpm", **extra: Any) -> Any:
    from concord.connectors.xpm import XpmConnector, XpmOptions

    return XpmConnector(XpmOptions.model_validate(options(**extra)), link=link,
                        transport=fake.transport, clock=fake.clock.time, sleep=fake.clock.sleep,
                        hub=hub)
