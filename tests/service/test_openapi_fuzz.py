"""Schemathesis over the OpenAPI spec of a running service: whatever it sends (valid or
not), the API answers without a server error and with the status codes and bodies its
spec documents. An administrator's token, so every route is reached."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from concord.hub.store import Hub
from concord.service.app import create_app
from tests.service.conftest import Served, vdir_config, write_vcard


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    write_vcard(tmp / "office", "c1", "Acme")
    cfg = vdir_config(f"sqlite:///{tmp / 'hub.db'}", tmp / "office")
    hub = Hub(cfg.hub.url)
    hub.put("client", "c1", {"name": "Acme"})
    svc = Served(create_app(cfg, hub=hub, start_scheduler=False), hub, cfg).start()
    yield svc
    svc.stop()
    hub.close()


def test_api_has_no_server_errors(fuzzed: Served) -> None:
    """Every operation, a dozen generated cases each (the pytest plugin of schemathesis is
    driven by hand here: one test, one server)."""
    schema = schemathesis.openapi.from_url(fuzzed.url + "/openapi.json")
    headers = {"Authorization": f"Bearer {fuzzed.token('admin')}"}
    ops = [r.ok() for r in schema.get_all_operations()]
    assert len(ops) >= 20
    for op in ops:
        @given(case=op.as_strategy())
        @settings(max_examples=12, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        check()
