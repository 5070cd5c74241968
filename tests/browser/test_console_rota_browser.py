"""The rota page in a real browser, on a 360-pixel phone: every part of it readable without
scrolling sideways, with an alert held, a change listed and the override form shown."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from playwright.async_api import expect

from goldenhour.dev.devsystem import DevSystem
from goldenhour.dev.waiting import eventually
from tests.browser.pages import PageFactory
from tests.e2e.helpers import fetchval, place_high_risk_child, report_absence

ROTA = "lbh-duty-rota"


async def test_the_rota_page_fits_a_360_pixel_phone(
    system: DevSystem, open_page: PageFactory
) -> None:
    child = f"LBH-2026-{uuid.uuid4().int % 10**6:06d}"
    await place_high_risk_child(system, child)
    await report_absence(system, child_id=child)
    sql = "SELECT alert_id FROM alerts WHERE child_id = $1 AND first_fired_at IS NOT NULL"
    await eventually(lambda: fetchval(system, sql, child), 10, "the alert fired")
    start = datetime.now(UTC) + timedelta(days=2)
    change = {
        "action": "replace",
        "member": "lbh-duty",
        "by": "lbh-edt-2",
        "start": start.isoformat(),
        "end": (start + timedelta(hours=8)).isoformat(),
        "reason": "training day at the regional safeguarding board",
    }
    async with system.client("lbh-dm1") as api:
        made = await api.post(f"/rotas/{ROTA}/overrides", json=change)
        assert made.status_code == 201, made.text
        try:
            phone = await open_page("lbh-dm1", width=360, height=740)
            await phone.goto(f"/console/rotas/{ROTA}")
            await expect(phone.locator("#held")).to_contain_text(child)
            await expect(phone.locator("#change-list")).to_contain_text("Replace lbh-duty")
            await expect(
                phone.get_by_label("Replaced by (only to replace someone)")
            ).to_be_visible()
            seen = await phone.evaluate(
                """() => {
                    const outside = [...document.querySelectorAll("main *")].filter(e => {
                        const box = e.getBoundingClientRect();
                        return box.width > 0 && (box.left < 0 || box.right > 360);
                    });
                    return {
                        width: document.scrollingElement.scrollWidth,
                        outside: outside.slice(0, 5).map(e => e.tagName + "#" + e.id),
                    };
                }"""
            )
            assert seen["width"] <= 360, f"the rota page scrolls sideways: {seen}"
            assert not seen["outside"], f"cut off at the side: {seen['outside']}"
        finally:
            gone = await api.delete(f"/rotas/{ROTA}/overrides/{made.json()['change_id']}")
            assert gone.status_code == 204, gone.text
