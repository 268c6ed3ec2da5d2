"""The dashboard in a real browser: sign in with a token, press a sync button and see it
disabled while the light goes blue then green, clear a Pending Sync badge with a per-record
sync, resolve a conflict side by side (typed values readable, a difference only in what a
vCard kept beyond the model still shown); all on a phone-sized screen."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from concord.engine import sync_link
from tests.service.conftest import Served, vdir_config, write_vcard


def sign_in(page: Any, svc: Served, *scopes: str) -> None:
    page.goto(svc.url + "/")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.fill("#token", "cct_wrong_token")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("unknown or revoked")
    page.fill("#token", svc.token(*scopes))
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Links")


def test_sync_button_light_pending_badge_and_conflict(page: Any, make_service: Any,
                                                      tmp_path: Path) -> None:
    gate = threading.Event()

    def gated(*a: Any, **kw: Any) -> Any:
        """The real engine, held after its first committed batch until the test has looked."""
        def progress(entity: str, done: int, total: int) -> None:
            if done < total:
                gate.wait(20)
        return sync_link(*a, progress=progress, **kw)

    folder = tmp_path / "office"
    write_vcard(folder, "c1", "Acme Pty")
    write_vcard(folder, "c2", "Beta Ltd")
    for i in range(3, 301):
        write_vcard(folder, f"c{i}", f"Client {i}")
    cfg = vdir_config(f"sqlite:///{tmp_path / 'hub.db'}", folder)
    cfg.links["office"].batch_size = 100
    svc = make_service(cfg, sync_fn=gated, push_on_write=False)
    sign_in(page, svc, "admin")

    card = page.locator("#link-office")
    expect(card).to_have_attribute("data-color", "red")
    button = card.locator("button[data-entity=client]")
    expect(button).to_have_text("Sync Clients")
    box = button.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 390  # fits a phone screen
    button.click()
    # Requested: the button is disabled ("Syncing…") and the light is blue until it is done.
    button = page.locator("#link-office button[data-entity=client]")
    expect(button).to_be_disabled()
    expect(button).to_have_text("Syncing…")
    expect(page.locator("#link-office")).to_have_attribute("data-color", "blue")
    # The first migration's progress: one batch of three committed, then held.
    expect(page.locator("#link-office .reason")).to_contain_text("first migration in progress")
    expect(page.locator("#link-office progress")).to_have_attribute("max", "300")
    expect(page.locator("#link-office .eta")).to_contain_text("100 of 300")
    gate.set()
    expect(page.locator("#link-office")).to_have_attribute("data-color", "green")
    expect(page.locator("#link-office button[data-entity=client]")).to_be_enabled()
    expect(page.locator("#link-office .reason")).to_have_text("in sync")
    expect(page.locator("table.activity")).to_contain_text("sync requested")
    # An administrator pauses the link (red, with the fix) and resumes it (green again).
    page.locator("#link-office button[data-action=pause]").click()
    expect(page.locator("#link-office")).to_have_attribute("data-color", "red")
    expect(page.locator("#link-office .fix")).to_contain_text("resume")
    page.locator("#link-office button[data-action=resume]").click()
    expect(page.locator("#link-office")).to_have_attribute("data-color", "green")

    # A record edited in the hub (by another user) is Pending Sync until sent to the office.
    rec = next(r for r in svc.hub.list_records("client") if r.fields["name"] == "Acme Pty")
    svc.hub.put("client", rec.id, {**rec.fields, "name": "Acme Holdings"})
    page.goto(svc.url + "/records/client")
    row = page.locator(f"#rec-{rec.id}")
    expect(row.locator(".badge.pending")).to_have_text("Pending Sync")
    row.locator("button.sync-record").click()
    expect(page.locator(f"#rec-{rec.id} .badge.pending")).to_have_count(0)
    assert "FN:Acme Holdings" in "".join(p.read_text() for p in folder.glob("*.vcf"))

    # The same client edited on both sides: a conflict, resolved side by side.
    target = next(p for p in folder.glob("*.vcf") if "Acme Holdings" in p.read_text())
    target.write_text(target.read_text().replace("Acme Holdings", "Acme Office Edit"))
    svc.hub.put("client", rec.id, {**rec.fields, "name": "Acme Hub Edit"})
    sync_link(svc.hub, cfg.links["office"])
    page.goto(svc.url + "/conflicts")
    section = page.locator("section.conflict")
    expect(section).to_have_count(1)
    name = section.locator("tr[data-field=name]")
    expect(name).to_have_class("differs")
    expect(name.locator("td.hub")).to_have_text("Acme Hub Edit")
    expect(name.locator("td.spoke")).to_have_text("Acme Office Edit")
    # What the vCard held beyond the model reads as a summary, not a dict dump.
    kept = section.locator("tr[data-field=extras] td.hub")
    expect(kept).to_contain_text("kept from the vCard")
    expect(kept).not_to_contain_text("{")
    section.get_by_role("button", name="Keep office").click()
    expect(page.locator(".resolved")).to_contain_text("resolved")
    got = svc.hub.get("client", rec.id)
    assert got is not None and got.fields["name"] == "Acme Office Edit"
    assert svc.hub.conflicts() == []


def test_standard_user_sees_only_the_client_sync(page: Any, make_service: Any,
                                                 tmp_path: Path) -> None:
    cfg = vdir_config(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path / "office")
    cfg.links["office"].entities["staff"] = cfg.links["office"].entities["client"].model_copy()
    svc = make_service(cfg, start_scheduler=False)
    sign_in(page, svc, "records:read", "sync:run")
    card = page.locator("#link-office")
    expect(card.locator("button.sync")).to_have_count(1)
    expect(card.locator("button.sync")).to_have_text("Sync Clients")
    expect(card.locator("button.link-action")).to_have_count(0)
    expect(card.locator("button[data-entity=all]")).to_have_count(0)  # admin only
    # From the client list any user may sync it (the link was activated by an administrator).
    svc.hub.set_link("office", "vdir", state="active")
    page.goto(svc.url + "/records/client")
    button = page.locator("#list-sync-client button")
    expect(button).to_have_text("Sync")
    button.click()
    expect(page.locator("#list-sync-client button")).to_be_disabled()
    expect(page.locator("#list-sync-client button")).to_have_text("Syncing…")
    page.goto(svc.url + "/records/staff")
    expect(page.locator("#list-sync-staff button")).to_have_count(0)  # staff: admin only
    page.goto(svc.url + "/activity")
    expect(page.locator("h1")).to_have_text("Activity")
    expect(page.locator("table.activity")).to_contain_text("sync requested")


def test_conflict_only_in_extras_is_shown_readably_and_merged(page: Any, make_service: Any,
                                                              tmp_path: Path) -> None:
    folder = tmp_path / "office"
    folder.mkdir()
    card = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c1\r\nFN:Acme Pty\r\nN:Lee;Ann;;;\r\n"
            "EMAIL;TYPE=WORK:ann@acme.example\r\n"
            "ADR;TYPE=WORK:;;1 High St;Sydney;NSW;2000;Australia\r\n"
            "X-FOO:{x}\r\nitem1.X-ABLabel:Other\r\nEND:VCARD\r\n")
    (folder / "c1.vcf").write_text(card.format(x="one"))
    cfg = vdir_config(f"sqlite:///{tmp_path / 'hub.db'}", folder)
    svc = make_service(cfg, start_scheduler=False, push_on_write=False)
    sync_link(svc.hub, cfg.links["office"])
    rec = svc.hub.list_records("client")[0]
    extras = dict(rec.fields["extras"])
    extras["props"] = [{**extras["props"][0], "value": "hub edit"}, *extras["props"][1:]]
    svc.hub.put("client", rec.id, {**rec.fields, "extras": extras})
    (folder / "c1.vcf").write_text(card.format(x="office edit"))
    sync_link(svc.hub, cfg.links["office"])
    sign_in(page, svc, "records:read", "records:write")

    page.goto(svc.url + "/conflicts")
    section = page.locator("section.conflict")
    expect(section).to_have_count(1)  # the only difference is in extras: still shown
    expect(section.locator(".differing")).to_have_text("Differs in: extras")
    row = section.locator("tr[data-field=extras]")
    expect(row).to_have_class("differs")
    hub_side = row.locator("td.hub details.extras")
    expect(hub_side).to_have_attribute("open", "")
    expect(hub_side.locator("summary")).to_have_text("2 more properties kept from the vCard")
    expect(hub_side.locator("li.differs")).to_have_text("X-FOO hub edit")
    expect(row.locator("td.spoke li.differs")).to_have_text("X-FOO office edit")
    expect(row).not_to_contain_text("{")
    emails = section.locator("tr[data-field=emails]")
    expect(emails.locator("td.hub")).to_have_text("ann@acme.example (work)")
    expect(emails).not_to_have_class("differs")
    expect(section.locator("tr[data-field=addresses] td.spoke")).to_have_text(
        "1 High St, Sydney NSW 2000, Australia (work)")
    box = section.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 390  # fits a phone screen

    # Save merged with the office's kept properties.
    row.locator("input[type=radio][value=spoke]").check()
    section.get_by_role("button", name="Save merged").click()
    expect(page.locator(".resolved")).to_contain_text("resolved")
    got = svc.hub.get("client", rec.id)
    assert got is not None and got.fields["extras"]["props"][0]["value"] == "office edit"
    assert got.fields["emails"] == [{"address": "ann@acme.example", "types": ["work"]}]
    assert svc.hub.conflicts() == []
