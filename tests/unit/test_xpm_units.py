"""Small parts of the XPM link: the dashboard's Sync buttons by setting, the rate gate on a
simulated clock, PKCE."""

from __future__ import annotations

import base64
import hashlib

import pytest

from concord.config import from_dict
from concord.connectors.xpm.auth import challenge_of, pkce_pair, start_authorization
from concord.connectors.xpm.limits import Gate
from concord.errors import RateLimited
from concord.service.dashboard import sync_hidden, sync_label
from tests.servers.xpm import FakeClock, options


def _link(client_direction: str):  # type: ignore[no-untyped-def]
    cfg = from_dict({"hub": {"url": "sqlite:///:memory:"}, "links": {"x": {
        "connector": "xpm", "options": options(), "entities": {
            "client": {"direction": client_direction}, "custom_field": {}, "tax_return": {}}}}})
    return cfg.link("x")


def test_field_definitions_sync_is_hidden_when_concord_is_primary_for_clients() -> None:
    assert sync_hidden(_link("push"), "custom_field")  # Concord primary for client maintenance
    assert not sync_hidden(_link("two-way"), "custom_field")  # XPM primary
    assert not sync_hidden(_link("push"), "tax_return")
    assert sync_label(_link("two-way"), "custom_field") == "Field Definitions"
    assert sync_label(_link("two-way"), "tax_return") == "Tax Returns"


def test_the_gate_keeps_sixty_a_minute_on_its_clock() -> None:
    clock = FakeClock()
    gate = Gate(clock=clock.time, sleep=clock.sleep)
    start = clock.time()
    for _ in range(121):
        gate.acquire()
        gate.release(None, None)
    assert 120 <= clock.time() - start < 121  # the 61st and the 121st call waited a minute each
    assert gate.used == 121


def test_the_gate_pauses_instead_of_waiting_long_and_when_the_day_is_spent() -> None:
    clock = FakeClock()
    gate = Gate(clock=clock.time, sleep=clock.sleep, max_wait=10)
    for _ in range(60):
        gate.acquire()
        gate.release("59", "4000")
    with pytest.raises(RateLimited):
        gate.acquire()  # the next slot is a minute away: more than max_wait
    clock.advance(61)
    gate.acquire()
    gate.release("10", "0")  # XPM: nothing left today
    with pytest.raises(RateLimited, match="daily"):
        gate.acquire()
    clock.advance(3600)  # an hour later it looks again
    gate.acquire()


def test_a_429_is_waited_when_short_and_pauses_when_long() -> None:
    clock = FakeClock()
    gate = Gate(clock=clock.time, sleep=clock.sleep, max_wait=60)
    gate.note_429("5", "minute")
    assert clock.slept == 5
    with pytest.raises(RateLimited) as exc:
        gate.note_429("3600", "minute")
    assert exc.value.until > 0
    with pytest.raises(RateLimited, match="daily"):
        gate.note_429("20", "day")


def test_pkce_is_s256_of_the_verifier() -> None:
    verifier, challenge = pkce_pair()
    assert 43 <= len(verifier) <= 128
    want = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert challenge == want
    auth = start_authorization("cid", "http://127.0.0.1:1/cb")
    assert f"code_challenge={challenge_of(auth)}" in auth.url
    assert auth.verifier.get_secret_value() not in auth.url and "offline_access" in auth.url


def test_a_field_named_by_a_non_ascii_digit_is_refused_not_a_server_error() -> None:
    """Found by the API fuzz test: a field '¹' (a digit to str.isdigit, not to int) made the
    422 refusal itself fail with a 500."""
    from concord.model import ModelError
    from concord.service.api.refusal import refusal

    exc = ModelError("task", [("¹", "is not a field of the task model")], record="t1")
    out = refusal(exc).model_dump()
    assert "¹" in str(out)
