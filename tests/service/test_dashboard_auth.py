"""The dashboard's own sign-in rule: whole pages send a stranger to the sign-in page, the
fragments the pages fetch answer 401, and a signed-in user gets both."""

from __future__ import annotations

import pytest

from tests.service.conftest import Served

PAGES = ["/", "/records/client", "/conflicts", "/activity"]
PARTS = ["/ui/links/office/card", "/ui/records/client/sync", "/ui/activity"]


@pytest.mark.parametrize("hub_url", ["sqlite"], indirect=True)
def test_pages_redirect_and_fragments_refuse_without_sign_in(service: Served) -> None:
    with service.client() as anon:
        for path in PAGES:
            r = anon.get(path, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == "/login", path
        for path in PARTS:
            assert anon.get(path).status_code == 401, path
    with service.client() as user:
        r = user.post("/login", data={"token": service.token("records:read")},
                      follow_redirects=False)
        assert r.status_code == 303  # signed in: the cookie is set
        for path in PAGES + PARTS:
            assert user.get(path, follow_redirects=False).status_code == 200, path
