"""The records API on a real hub (SQLite, and PostgreSQL through ``pg_database``): paging,
filters, ETag / If-Match concurrency, the derived Pending Sync flag, and writes whose fields
do not fit the canonical model refused with 422 naming the field and the fix."""

from __future__ import annotations

from typing import Any

from concord.config import from_dict
from tests.service.conftest import Served, wait_for, write_vcard


def test_create_read_update_delete_with_etags(service: Served) -> None:
    with service.client("records:read", "records:write") as c:
        r = c.post("/api/v1/records/client", json={"id": "acme", "fields": {"name": "Acme"}})
        assert r.status_code == 201 and r.headers["location"] == "/api/v1/records/client/acme"
        tag = r.headers["etag"]
        assert c.post("/api/v1/records/client", json={"id": "acme", "fields": {}}).status_code == 409
        got = c.get("/api/v1/records/client/acme")
        assert got.json()["fields"] == {"name": "Acme"} and got.headers["etag"] == tag

        r = c.put("/api/v1/records/client/acme", json={"fields": {"name": "Acme Ltd"}})
        assert r.status_code == 428 and tag in r.json()["detail"]
        r = c.patch("/api/v1/records/client/acme", json={"fields": {"phones": [{"number": "1"}]}},
                    headers={"If-Match": tag})
        assert r.status_code == 200
        assert r.json()["fields"] == {"name": "Acme", "phones": [{"number": "1"}]}
        new_tag = r.headers["etag"]
        # A second writer still holding the old ETag is refused, not silently applied.
        r = c.put("/api/v1/records/client/acme", json={"fields": {"name": "Lost?"}},
                  headers={"If-Match": tag})
        assert r.status_code == 412 and "changed since it was read" in r.json()["detail"]
        assert c.get("/api/v1/records/client/acme").json()["fields"]["name"] == "Acme"
        r = c.put("/api/v1/records/client/acme", json={"fields": {"name": "Acme Ltd"}},
                  headers={"If-Match": new_tag})
        assert r.status_code == 200 and r.json()["fields"] == {"name": "Acme Ltd"}

        assert c.delete("/api/v1/records/client/acme", headers={"If-Match": tag}).status_code == 412
        r = c.delete("/api/v1/records/client/acme", headers={"If-Match": r.headers["etag"]})
        assert r.status_code == 204
        r = c.get("/api/v1/records/client/acme")
        assert r.status_code == 404 and "deleted" in r.json()["detail"]
        assert c.get("/api/v1/records/client/nope").status_code == 404
        assert c.get("/api/v1/records/planet").status_code == 422
        # Bad input is refused with the key and the fix; nothing is written.
        r = c.post("/api/v1/records/client", json={"id": "big", "fields": {"fee": 2**70}})
        assert r.status_code == 422 and "fields.fee" in r.text and "string" in r.text
        assert c.get("/api/v1/records/client/big").status_code == 404


def test_list_pages_and_filters(service: Served) -> None:
    with service.client("records:read", "records:write") as c:
        for i in range(12):
            c.post("/api/v1/records/job", json={"id": f"j{i:02}",
                                                "fields": {"name": f"Job {i}",
                                                           "state": "open" if i % 3 else "done"}})
        page = c.get("/api/v1/records/job", params={"limit": 5, "offset": 10}).json()
        assert page["total"] == 12 and [r["id"] for r in page["items"]] == ["j10", "j11"]
        page = c.get("/api/v1/records/job", params={"filter": "state=done", "limit": 2,
                                                    "offset": 1}).json()
        assert page["total"] == 4 and [r["id"] for r in page["items"]] == ["j03", "j06"]
        r = c.get("/api/v1/records/job", params={"filter": "nonsense"})
        assert r.status_code == 422 and "field=value" in r.json()["detail"]


def test_pending_sync_is_derived_and_clears_after_the_push(service: Served, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "office"
    with service.client("admin") as c:
        r = c.post("/api/v1/records/client", json={"id": "c1", "fields": {"name": "Acme"}})
        # The write queues a push to the two-way link; until it has run, the record is pending.
        assert r.json()["pending_sync"] is True and r.json()["pending_links"] == ["office"]
        wait_for(lambda: not c.get("/api/v1/records/client/c1").json()["pending_sync"],
                 what="the push to the office folder")
        assert "FN:Acme" in next(folder.glob("*.vcf")).read_text()
        # An edit made in the office folder arrives with a per-record sync.
        write_vcard(folder, "c2", "Beta")
        r = c.post("/api/v1/records/client/c1/sync")
        assert r.status_code == 202 and r.json()["links"] == ["office"]
        wait_for(lambda: c.get("/api/v1/records/client", params={"filter": "name=Beta"})
                 .json()["total"] == 1, what="the office edit to arrive")


def test_concurrent_writers_with_the_same_etag_one_wins(service: Served) -> None:
    """Eight editors read the same version and save at once: exactly one edit is applied,
    the other seven are told to re-read (412); none is silently overwritten."""
    from concurrent.futures import ThreadPoolExecutor

    with service.client("records:read", "records:write") as c:
        tag = c.post("/api/v1/records/client", json={"id": "race", "fields": {"name": "v0"}}
                     ).headers["etag"]

    def save(i: int) -> int:
        with service.client("records:read", "records:write") as c:
            return c.put("/api/v1/records/client/race", json={"fields": {"name": f"v{i + 1}"}},
                         headers={"If-Match": tag}).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = sorted(pool.map(save, range(8)))
    assert codes == [200] + [412] * 7
    with service.client("records:read") as c:
        final = c.get("/api/v1/records/client/race").json()
    assert final["fields"]["name"] in {f"v{i}" for i in range(1, 9)}


def test_a_record_the_links_filter_leaves_out_is_not_pending_sync(hub_url, make_service,  # type: ignore[no-untyped-def]
                                                                 tmp_path) -> None:
    folder = tmp_path / "office"
    folder.mkdir()
    cfg = from_dict({"hub": {"url": hub_url}, "links": {"office": {
        "connector": "vdir", "options": {"path": str(folder)}, "interval": 3600,
        "entities": {"client": {"direction": "two-way", "filter": {"categories": ["Client"]}}}}}})
    svc: Served = make_service(cfg)
    with svc.client("admin") as c:
        r = c.post("/api/v1/records/client", json={"id": "s1", "fields": {
            "name": "Supplier", "categories": ["Supplier"]}})
        assert r.json()["pending_sync"] is True  # queued: the run decides
        wait_for(lambda: not c.get("/api/v1/records/client/s1").json()["pending_sync"],
                 what="the run to leave the supplier out")
        assert list(folder.glob("*.vcf")) == []
        st = wait_for(lambda: (s := c.get("/api/v1/links/office").json()["status"])
                      ["color"] == "green" and s, what="the light to turn green")
        assert (st["pending"], st["excluded"]) == (0, 1), st
        assert 'concord_pending_records{link="office",entity="client"} 0' in c.get("/metrics").text
        # edited into the filter: pending until the push has sent it
        tag = c.get("/api/v1/records/client/s1").headers["etag"]
        r = c.patch("/api/v1/records/client/s1", json={"fields": {"categories": ["Client"]}},
                    headers={"If-Match": tag})
        assert r.json()["pending_sync"] is True and r.json()["pending_links"] == ["office"]
        wait_for(lambda: not c.get("/api/v1/records/client/s1").json()["pending_sync"],
                 what="the push to the office folder")
        assert "FN:Supplier" in next(folder.glob("*.vcf")).read_text()
        st = wait_for(lambda: (s := c.get("/api/v1/links/office").json()["status"])
                      ["color"] == "green" and s, what="the light to turn green")
        assert (st["pending"], st["excluded"]) == (0, 0), st


def _problems(r: Any) -> dict[str, str]:
    """A 422's problems by model field."""
    return {p["field"]: p["msg"] for p in r.json()["detail"]}


def test_fields_that_do_not_fit_the_model_are_refused_with_422(service: Served) -> None:
    with service.client("records:read", "records:write") as c:
        # An old flat name: 422 naming the field, the model field meant, and the custom field.
        r = c.post("/api/v1/records/client", json={"id": "acme", "fields": {
            "name": "Acme", "email": "accounts@acme.example"}})
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["entity"] == "client" and body["record"] == "acme"
        assert "field 'email'" in body["message"] and "fix:" in body["message"]
        (p,) = body["detail"]
        assert p["loc"] == ["body", "fields", "email"] and p["type"] == "model"
        assert "did you mean 'emails'" in p["msg"] and '[{"address"' in p["msg"]
        assert "custom.email" in p["msg"]
        assert c.get("/api/v1/records/client/acme").status_code == 404  # nothing written

        r = c.post("/api/v1/records/client", json={"id": "acme", "fields": {
            "name": "Acme", "emails": [{"address": "accounts@acme.example", "types": ["work"]}],
            "addresses": [{"street": "1 High St", "locality": "Sydney", "postcode": "2000"}]}})
        assert r.status_code == 201, r.text
        tag = r.headers["etag"]
        # A plain string where the model has a list of typed values (PATCH, then PUT).
        r = c.patch("/api/v1/records/client/acme", json={"fields": {"emails": "a@acme.example"}},
                    headers={"If-Match": tag})
        assert r.status_code == 422, r.text
        assert "valid list" in _problems(r)["emails"]
        assert "list of EmailAddress" in _problems(r)["emails"]
        r = c.put("/api/v1/records/client/acme", json={"fields": {
            "name": "Acme", "emails": [{"adress": "a@acme.example"}]}}, headers={"If-Match": tag})
        assert r.status_code == 422, r.text
        probs = _problems(r)
        assert "not a key of EmailAddress" in probs["emails.0.adress"]
        assert "address" in probs["emails.0.adress"]
        assert probs["emails.0.address"].startswith("Field required")
        assert r.json()["detail"][0]["loc"][:4] == ["body", "fields", "emails", 0]
        # A custom field holds one scalar; a nested value is refused by name.
        r = c.patch("/api/v1/records/client/acme", json={"fields": {"custom.industry": ["a"]}},
                    headers={"If-Match": tag})
        assert r.status_code == 422 and "custom.industry" in _problems(r)
        # Nothing was written by the refused edits: same content, same version.
        got = c.get("/api/v1/records/client/acme")
        assert got.headers["etag"] == tag
        assert got.json()["fields"]["emails"] == [{"address": "accounts@acme.example",
                                                    "types": ["work"]}]
        # A required field of another entity type is named too.
        r = c.post("/api/v1/records/custom_field", json={"fields": {}})
        assert r.status_code == 422 and _problems(r)["name"].startswith("Field required")


def test_openapi_describes_fields_as_an_object_and_the_422(service: Served) -> None:
    with service.client() as c:
        spec = c.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for name in ("RecordIn", "RecordPatch"):
        fields = schemas[name]["properties"]["fields"]
        assert fields["type"] == "object" and "docs/model.md" in fields["description"]
        assert "422" in fields["description"]
    post = spec["paths"]["/api/v1/records/{entity}"]["post"]
    refusal = post["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
    assert refusal.endswith("/Refusal")
    problem = schemas["Problem"]["properties"]
    assert {"loc", "msg", "type", "field"} <= set(problem)
    for method in ("put", "patch"):
        assert "422" in spec["paths"]["/api/v1/records/{entity}/{rid}"][method]["responses"]
