"""OAuth2 for Xero Practice Manager: authorization code with PKCE, then refresh.

- ``start_authorization`` makes the PKCE pair (S256) and the URL the administrator opens;
  ``finish_authorization`` exchanges the code Xero sends back and stores the token set.
- ``TokenSet`` is stored in the hub's ``oauth_tokens`` table, one row per practice and
  provider, encrypted with Fernet (the ``cryptography`` library) under the link's
  ``token_key``: tokens are secrets, never written in clear, never printed (``SecretStr``).
- Access tokens live 30 minutes; ``Tokens.access_token`` refreshes a minute before expiry
  (or when the API answers 401). Each refresh returns a new refresh token and the old one
  stops working after a grace period: the refresh runs inside one hub transaction holding
  the row's lock, re-reads the row first (another worker may have refreshed already: its
  set is used, not refreshed again), and writes the new set in the same transaction. When
  the refresh answer is lost (timeout, 5xx), it is retried with the same refresh token,
  which the grace period accepts; the stored set is replaced only once an answer arrived.

Own code rather than authlib/oauthlib: the flow is three small form posts, and what matters
here (one row per practice updated atomically with the refresh, the retry of a lost answer,
the injectable clock) is storage logic no OAuth library provides.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from cryptography.fernet import Fernet, InvalidToken
from pydantic import SecretStr

from concord.errors import ConfigError, TerminalError, TransientError
from concord.hub.store import Hub

AUTHORIZE_URL = "https://login.xero.com/identity/connect/authorize"
TOKEN_URL = "https://identity.xero.com/connect/token"
CONNECTIONS_URL = "https://api.xero.com/connections"
SCOPES = ("openid", "profile", "email", "offline_access", "practicemanager")
PROVIDER = "xpm"
EARLY = 60.0  # refresh this long before the access token expires
REFRESH_TRIES = 4


@dataclass
class TokenSet:
    access_token: SecretStr
    refresh_token: SecretStr
    expires_at: float
    account: str | None = None  # the Xero tenant id of the practice
    scope: str | None = None
    generation: int = 0


@dataclass
class Authorization:
    url: str
    state: str
    verifier: SecretStr  # keep until the code comes back; never shown
    redirect_uri: str


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def start_authorization(client_id: str, redirect_uri: str, *,
                        scopes: tuple[str, ...] = SCOPES) -> Authorization:
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    query = urlencode({"response_type": "code", "client_id": client_id,
                       "redirect_uri": redirect_uri, "scope": " ".join(scopes), "state": state,
                       "code_challenge": challenge, "code_challenge_method": "S256"})
    return Authorization(f"{AUTHORIZE_URL}?{query}", state, SecretStr(verifier), redirect_uri)


def challenge_of(auth: Authorization) -> str:
    digest = hashlib.sha256(auth.verifier.get_secret_value().encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class TokenVault:
    """The hub row of a practice's token set, encrypted."""

    def __init__(self, hub: Hub, key: SecretStr, provider: str = PROVIDER) -> None:
        try:
            self.fernet = Fernet(key.get_secret_value().encode())
        except (ValueError, TypeError) as exc:
            raise ConfigError("token_key is not a Fernet key", key="options.token_key",
                              fix="make one with `python -c 'from cryptography.fernet import "
                                  "Fernet; print(Fernet.generate_key().decode())'` and keep it "
                                  "in the environment") from exc
        self.hub, self.provider = hub, provider

    def _decode(self, row: Any) -> TokenSet:
        try:
            return TokenSet(SecretStr(self.fernet.decrypt(row.access_token.encode()).decode()),
                            SecretStr(self.fernet.decrypt(row.refresh_token.encode()).decode()),
                            float(row.expires_at), row.account, row.scope, int(row.generation))
        except InvalidToken as exc:
            raise TerminalError(
                "the stored Xero Practice Manager tokens cannot be decrypted with this "
                "token_key (fix: use the key they were stored with, or connect again with "
                "`concord xpm connect`)") from exc

    def load(self, conn: Any = None) -> TokenSet | None:
        row = self.hub.oauth_row(self.provider, conn)
        return None if row is None else self._decode(row)

    def save(self, tokens: TokenSet, conn: Any = None, *, now: float | None = None) -> TokenSet:
        """Replace the practice's one token set (insert the first)."""
        if conn is None:
            with self.hub.begin() as c:
                return self.save(tokens, c, now=now)
        enc = {"access_token": self.fernet.encrypt(tokens.access_token.get_secret_value().encode()).decode(),
               "refresh_token": self.fernet.encrypt(tokens.refresh_token.get_secret_value().encode()).decode(),
               "expires_at": tokens.expires_at, "account": tokens.account, "scope": tokens.scope,
               "updated_at": time.time() if now is None else now}
        tokens.generation = self.hub.save_oauth_row(conn, self.provider, enc)
        return tokens

    def forget(self) -> None:
        self.hub.forget_oauth(self.provider)


def _token_call(http: httpx.Client, client_id: str, client_secret: SecretStr,
                form: dict[str, str]) -> httpx.Response:
    return http.post(TOKEN_URL, data=form, auth=(client_id, client_secret.get_secret_value()))


def _token_set(answer: dict[str, Any], now: float, account: str | None) -> TokenSet:
    return TokenSet(SecretStr(answer["access_token"]), SecretStr(answer["refresh_token"]),
                    now + float(answer.get("expires_in", 1800)), account, answer.get("scope"))


def finish_authorization(vault: TokenVault, http: httpx.Client, auth: Authorization, *,
                         client_id: str, client_secret: SecretStr, code: str, state: str,
                         clock: Callable[[], float] = time.time) -> TokenSet:
    """Exchange the code for a token set, find the practice's Xero tenant id, store both."""
    if not secrets.compare_digest(state, auth.state):
        raise TerminalError("the authorization answer does not carry the state Concord sent "
                            "(fix: start again with `concord xpm connect`)")
    r = _token_call(http, client_id, client_secret, {
        "grant_type": "authorization_code", "code": code, "redirect_uri": auth.redirect_uri,
        "code_verifier": auth.verifier.get_secret_value()})
    if r.status_code != 200:
        raise TerminalError(f"Xero refused the authorization code: {r.status_code} {r.text[:200]} "
                            "(fix: start again with `concord xpm connect`)")
    tokens = _token_set(r.json(), clock(), None)
    conns = http.get(CONNECTIONS_URL, headers={
        "Authorization": f"Bearer {tokens.access_token.get_secret_value()}"})
    if conns.status_code != 200:
        raise TerminalError(f"Xero did not list the connected practices: {conns.status_code}")
    practices = [c for c in conns.json() if c.get("tenantType") == "PRACTICEMANAGER"]
    if not practices:
        raise TerminalError("the Xero login has no Practice Manager organisation (fix: log in "
                            "as a user of the practice's XPM)")
    tokens.account = practices[0]["tenantId"]
    return vault.save(tokens)


class Tokens:
    """A link's view of the practice's token set: a valid access token on demand."""

    def __init__(self, vault: TokenVault, http: httpx.Client, *, client_id: str,
                 client_secret: SecretStr, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.vault, self.http = vault, http
        self.client_id, self.client_secret = client_id, client_secret
        self.clock, self.sleep = clock, sleep
        self.current: TokenSet | None = None
        self.refreshes = 0

    def _get(self) -> TokenSet:
        if self.current is None:
            self.current = self.vault.load()
        if self.current is None:
            raise TerminalError("this practice is not connected to Xero Practice Manager (fix: "
                                "run `concord xpm connect LINK` and log in as an XPM user)")
        return self.current

    def account(self) -> str:
        acc = self._get().account
        if not acc:
            raise TerminalError("the stored token set names no XPM practice (fix: connect again)")
        return acc

    def access_token(self, *, force: bool = False) -> str:
        cur = self._get()
        if force or cur.expires_at - EARLY <= self.clock():
            cur = self.refresh(cur)
        return cur.access_token.get_secret_value()

    def refresh(self, seen: TokenSet) -> TokenSet:
        """Refresh once for every holder of ``seen``: inside one transaction holding the row."""
        with self.vault.hub.begin() as conn:
            stored = self.vault.load(conn)
            if stored is None:
                raise TerminalError("the practice's XPM token set was removed (fix: connect again)")
            if stored.generation != seen.generation and stored.expires_at - EARLY > self.clock():
                self.current = stored  # another worker refreshed meanwhile
                return stored
            answer = self._refresh_call(stored)
            self.current = self.vault.save(_token_set(answer, self.clock(), stored.account), conn,
                                           now=self.clock())
            self.refreshes += 1
            return self.current

    def _refresh_call(self, stored: TokenSet) -> dict[str, Any]:
        last = ""
        for attempt in range(REFRESH_TRIES):
            try:
                r = _token_call(self.http, self.client_id, self.client_secret, {
                    "grant_type": "refresh_token",
                    "refresh_token": stored.refresh_token.get_secret_value()})
            except httpx.TransportError as exc:  # the answer was lost: the same token again
                last = f"{type(exc).__name__}: {exc}"
            else:
                if r.status_code == 200:
                    answer: dict[str, Any] = r.json()
                    return answer
                if r.status_code < 500:
                    raise TerminalError(
                        f"Xero refused to refresh the practice's access ({r.status_code} "
                        f"{r.text[:200]}) (fix: connect again with `concord xpm connect`)")
                last = f"HTTP {r.status_code}"
            self.sleep(min(30.0, 2.0 ** attempt))
        raise TransientError(f"refreshing the XPM access token failed {REFRESH_TRIES} times "
                             f"({last}); the stored token set is unchanged and the next run retries")
