"""HubBound, the optional capability of connectors that keep part of what they sync in the hub
(connectors/base.py): declared, never discovered."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pytest

from concord.connectors.base import Capabilities, Connector, HubBound, Item, ItemError


class _Reader(Connector):
    name = "reader"
    capabilities = Capabilities(entities=("email",), read_only=True)

    def list(self, entity: str) -> Iterable[tuple[str, str]]:
        return []

    def get(self, entity: str, refs: Sequence[str]) -> Iterable[Item | ItemError]:
        return []


def test_a_hub_bound_connector_declares_it_and_is_asked_for_it() -> None:
    class Bound(_Reader, HubBound):
        capabilities = Capabilities(entities=("email",), read_only=True)

        def bind_hub(self, hub: Any) -> None:
            self.hub = hub

    assert Bound.capabilities.hub_bound
    conn = Bound.__new__(Bound)
    assert conn.hub_binding() is conn
    assert _Reader.__new__(_Reader).hub_binding() is None
    from concord.connectors.imap import ImapConnector

    assert ImapConnector.capabilities.hub_bound and ImapConnector.capabilities.incremental


def test_bind_hub_without_the_mixin_is_refused_when_the_class_is_defined() -> None:
    with pytest.raises(TypeError, match="HubBound"):
        class Sneaky(_Reader):
            def bind_hub(self, hub: Any) -> None:
                pass
