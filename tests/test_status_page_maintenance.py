"""The phone page's maintenance windows (维护窗口) in headless Chromium over the real API: the
list of windows (those running first, a recurring one with its rule and next occurrence) and
the offline points in maintenance marked 维护中 with its end and reason, their neighbours not."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from pydantic import SecretStr

from monitor.app.api import ApiContext
from monitor.state.db import StateDB
from rules.alerting.config import MaintenanceWindowConfig
from rules.alerting.faults import FaultBook
from rules.alerting.maintenance import MaintenanceBook
from tests.test_status_page import (
    CHROMIUM, INVENTORY, REPO, WRITE_TOKEN, Chromium, cls, open_page, serve, snapshot, texts,
)

S = 1_000_000_000
SH = ZoneInfo("Asia/Shanghai")
pytestmark = [pytest.mark.peer,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ZH_DAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")


@pytest.fixture
def chromium(tmp_path):
    with Chromium(tmp_path / "chromium") as browser:
        yield browser


async def test_windows_listed_and_offline_points_in_maintenance_marked(tmp_path, chromium):
    now = time.time_ns()
    # A weekday three days off: the recurring window is certainly not running now.
    day = (datetime.now(SH).weekday() + 3) % 7
    windows = [
        MaintenanceWindowConfig.model_validate({
            "match": {"region": ["北河镇"]}, "every": f"{DAYS[day]} 01:00", "duration": "4h", "reason": "光缆割接"}),
        MaintenanceWindowConfig.model_validate({
            "match": {"devices": ["C4"]}, "reason": "更换镜头",
            "start": datetime.fromtimestamp(now / S - 600, UTC), "end": datetime.fromtimestamp(now / S + 3600, UTC)}),
    ]
    async with StateDB(tmp_path / "state.db") as db:
        maintenance = await MaintenanceBook.load(db, INVENTORY, windows, "Asia/Shanghai")
        faults = await FaultBook.load(db, INVENTORY, [], maintenance)
        snap = snapshot(now)
        ctx = ApiContext(
            inventory=INVENTORY, snapshot=lambda: snap, faults=faults, maintenance=maintenance,
            token=SecretStr(WRITE_TOKEN), language="zh", timezone="Asia/Shanghai", started_ns=now - 600 * S,
            cycle_interval_s=30.0,
        )
        async with serve(ctx) as daemon, aiohttp.ClientSession() as http:
            async with open_page(chromium, daemon.url + "/status") as page:
                assert await page.wait_for_state("ok") == "ok"
                dom = await page.dom()
                await page.evaluate("document.getElementById('maintenance').scrollIntoView()")
                await page.screenshot(tmp_path / "status-maintenance.png")
                await page.evaluate(  # C4 just below the sticky header
                    "(() => { const head = document.getElementById('top').getBoundingClientRect().bottom;"
                    " const li = document.querySelector('#offline li[data-id=\"C4\"]').getBoundingClientRect();"
                    " window.scrollBy(0, li.top - head - 8); })()")
                await page.screenshot(tmp_path / "status-maintenance-offline.png")
                await page.evaluate("document.getElementById('lang').click()")
                english = await page.dom()
                errors = page.errors()
            async with http.get(daemon.url + "/api/v1/maintenance") as resp:
                listed = (await resp.json())["windows"]
    (artifacts := REPO / "artifacts").mkdir(exist_ok=True)
    for name in ("status-maintenance.png", "status-maintenance-offline.png"):
        shutil.copyfile(tmp_path / name, artifacts / name)
    assert errors == []

    # The offline list: C4 (down, in its point window) marked with the window's end and reason; L1 not.
    offline = {li.xpath(f".//span[{cls('name')}]")[0].text_content(): li
               for li in dom.xpath("//section[@id='offline']//li")}
    c4 = offline[INVENTORY.devices["C4"].name]
    until = next(w for w in listed if w["reason"] == "更换镜头")["next"][0]["end_ns"]
    until_text = datetime.fromtimestamp(until / S, UTC).astimezone(SH).strftime("%H:%M")
    assert texts(c4, f".//span[{cls('maint')}]") == ["维护中"]
    assert texts(c4, f".//div[{cls('maint')}]") == [f"维护至 {until_text} · 更换镜头"]
    assert texts(offline["城关专线"], f".//*[{cls('maint')}]") == []

    # The windows: the running one first, then the recurring one with its rule and next start.
    assert texts(dom, "//section[@id='maintenance']/h2/text()") == ["维护窗口"]
    items = dom.xpath("//section[@id='maintenance']//li")
    assert [texts(li, f".//span[{cls('name')}]")[0] for li in items] == ["更换镜头", "光缆割接"]
    assert texts(items[0], f".//span[{cls('maint')}]") == ["维护中"]
    assert texts(items[0], f".//span[{cls('scope')}]") == ["点位 C4"]
    assert texts(items[0], f".//span[{cls('state')}]") == [f"进行中 · 至 {until_text}"]
    assert texts(items[1], f".//span[{cls('scope')}]") == ["区域 北河镇"]
    assert texts(items[1], f".//span[{cls('when')}]") == [f"每{ZH_DAYS[day]} 01:00 · 每次 4小时"]
    (state,) = texts(items[1], f".//span[{cls('state')}]")
    nxt = datetime.fromtimestamp(listed[1]["next"][0]["start_ns"] / S, UTC).astimezone(SH)
    assert state == f"下次 {nxt:%m-%d} 01:00" and nxt.weekday() == day
    assert texts(items[1], f".//span[{cls('maint')}]") == []

    assert texts(english, "//section[@id='maintenance']/h2/text()") == ["Maintenance windows"]
    assert texts(english, f"//section[@id='offline']//span[{cls('maint')}]") == ["in maintenance"]
