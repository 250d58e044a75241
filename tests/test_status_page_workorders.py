"""The phone page's work orders (工单) in headless Chromium at 390×844: a duty engineer signs in
with their own token, reports a fault for a lab point (the lab's small fleet, on paper), then
认领 → 到场 → 修复 → 更换 → 关闭 through the page's buttons, tapped (CDP mouse events at the
button's centre, so a covered or off-screen button fails) and typed into (Input.insertText);
the events the API then holds carry the person's name and the times of the taps.

Real peers: ApiServer on loopback, a WorkOrderBook (Qionglai SLA) and FaultBook on a real SQLite
state database. Screenshots go to artifacts/ (looked at by people; two are kept in docs/).
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import pytest
from pydantic import SecretStr

from lab.fleet import build_small_fleet
from monitor.app.api import ApiConfig, ApiContext, ApiServer
from monitor.app.scheduler import CycleReport
from monitor.app.snapshot import Snapshot
from monitor.assess.config_workorders import SlaConfig, WorkOrderConfig
from monitor.assess.sla import Sla
from monitor.assess.workorders import WorkOrderBook
from monitor.core.model import Status
from monitor.fleet.inventory import Inventory
from monitor.state.db import StateDB
from monitor.state.online_rate import online_rates
from monitor.state.tracker import State
from rules.alerting.faults import FaultBook
from rules.alerting.maintenance import MaintenanceBook
from tests.test_lab import PaperNet
from tests.test_status_page import CHROMIUM, HEIGHT, REPO, SCALE, WIDTH, Chromium, Page, cls, open_page, png_size, texts

STATUS = "status-token-for-the-hall-7"
PEOPLE = {"张工": ("zhang-personal-token-8", ["duty"]), "赵观察": ("zhao-read-only-token-9", ["read"])}
S = 1_000_000_000
MIN = 60 * S
ARTIFACTS = REPO / "artifacts"
MIN_TARGET_PX = 34  # the header's buttons; those in the cards are 44

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")

FLEET = build_small_fleet(PaperNet())
INVENTORY = Inventory(FLEET.devices)
POINT = FLEET.device("CAM-0001")  # 城关镇人民广场01号…, serial DS00010713CCWR


def snapshot(now_ns: int) -> Snapshot:
    """Every counted point up but CAM-0003 (down), after ICMP cycle 9."""
    states = {d.id: State.DOWN if d.id == "CAM-0003" else State.UP for d in INVENTORY.devices.values()
              if d.status is Status.ACTIVE}
    report = CycleReport("icmp", 9, now_ns - 3 * S, 1.2, len(states), len(states) - 1, 1, 0, 0)
    rates = (*online_rates(INVENTORY.devices.values(), states, "online"),
             *online_rates(INVENTORY.devices.values(), states, "network"))
    return Snapshot(report, rates, states, {}, bases={"online": states, "network": states})


@asynccontextmanager
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, WorkOrderBook]]:
    """The API on loopback with a status token and the people above; two orders already open:
    one reported 13 min ago (its 15 min response clock in the warning share), one 3 h ago and
    taken by 李工 (its 2 h restore clock breached)."""
    people = []
    for i, (name, (token, roles)) in enumerate(PEOPLE.items()):
        (tmp_path / f"p{i}").write_text(token, encoding="utf-8")
        people.append({"name": name, "token_file": str(tmp_path / f"p{i}"), "roles": roles})
    cfg = ApiConfig.model_validate({"port": 0, "people": people})
    now = time.time_ns()
    async with StateDB(tmp_path / "state.db") as db:
        maintenance = await MaintenanceBook.load(db, INVENTORY, [])
        faults = await FaultBook.load(db, INVENTORY, [], maintenance)
        book = await WorkOrderBook.load(db, INVENTORY, WorkOrderConfig(), Sla.from_config(
            SlaConfig(preset="qionglai", policies=[{"clocks": {"arrival": {"within": "4h"}}}]), "Asia/Shanghai"))
        old = await book.report(["SW-002", "CAM-0006", "CAM-0007"], by="值班员王", title="城关镇中心小学交换机掉线",
                                severity="critical", ts_ns=now - 180 * MIN)
        await book.acknowledge(old.ref, by="李工", ts_ns=now - 170 * MIN)
        await book.report(["CAM-0003"], by="值班员王", title="采购方来电：城关镇人民广场03号无图像",
                          ts_ns=now - 13 * MIN)
        snap = snapshot(now)
        ctx = ApiContext(
            inventory=INVENTORY, snapshot=lambda: snap, faults=faults, maintenance=maintenance, token=None,
            language="zh", timezone="Asia/Shanghai", started_ns=now - 600 * S, cycle_interval_s=30.0,
            status_token=SecretStr(STATUS), people=tuple(cfg.people), workorders=book,
        )
        async with ApiServer(cfg, ctx) as server:
            yield f"http://127.0.0.1:{server.port}", book


# --- a finger on the screen ---------------------------------------------------------------------


async def tap(page: Page, selector: str) -> None:
    """Scroll `selector` into view and tap its centre with a real (CDP) mouse press; fails when
    the element is missing or something else (the sticky header) is on top of that point."""
    sel = json.dumps(selector)
    point = await page.evaluate(
        f"(() => {{ const e = document.querySelector({sel}); if (!e) return null;"
        " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
        " const x = r.left + r.width / 2, y = r.top + r.height / 2;"
        " const hit = document.elementFromPoint(x, y);"
        " return [x, y, hit === e || e.contains(hit), r.width, r.height]; })()")
    assert point is not None, f"nothing matches {selector}"
    x, y, on_top, width, height = point
    assert on_top, f"{selector} is covered at its centre"
    assert height >= MIN_TARGET_PX, f"{selector}: {width}×{height} px is too small a target"
    for kind in ("mousePressed", "mouseReleased"):
        await page.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)


async def type_into(page: Page, selector: str, text: str) -> None:
    await tap(page, selector)
    await page.send("Input.insertText", text=text)


def signed_in(name: str) -> str:
    """JavaScript: the header's account button names `name` (the page may still be loading)."""
    return f"(document.getElementById('account') || {{}}).textContent === {json.dumps(name)}"


async def notice(page: Page, starts: str) -> str:
    """Wait for the orders' notice to start with `starts`; returns it."""
    return await page.wait_until(
        f"(() => {{ const n = document.getElementById('order-notice');"
        f" return n && n.textContent.startsWith({json.dumps(starts)}) && n.textContent; }})()")


async def shot(page: Page, tmp_path: Path, name: str, selector: str | None = None) -> bytes:
    """A viewport screenshot, `selector` scrolled to just below the sticky header; copied to artifacts/."""
    if selector is not None:
        await page.evaluate(
            "(() => { const head = document.getElementById('top').getBoundingClientRect().bottom;"
            f" const box = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
            " window.scrollBy(0, box.top - head - 8); })()")
    png = await page.screenshot(tmp_path / name)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(tmp_path / name, ARTIFACTS / name)
    return png


async def order_json(http: aiohttp.ClientSession, url: str, ref: str) -> dict[str, Any]:
    async with http.get(f"{url}/api/v1/workorders/{ref}", headers={"Authorization": f"Bearer {STATUS}"}) as resp:
        assert resp.status == 200
        return await resp.json()


@pytest.fixture
def browser(tmp_path):
    with Chromium(tmp_path / "chromium") as chromium:
        yield chromium


# --- the duty engineer's round ------------------------------------------------------------------------


@pytest.mark.peer
async def test_a_duty_engineer_reports_and_works_an_order_from_the_phone(tmp_path, browser):
    async with served(tmp_path) as (url, book), aiohttp.ClientSession() as http:
        async with open_page(browser, f"{url}/status#token={STATUS}") as page:
            assert await page.loaded() == "ok"
            await page.wait_until("document.querySelectorAll('#orders li.order').length === 2")
            before = await page.dom()
            await shot(page, tmp_path, "workorders-phone-signed-out.png")

            # Sign in once with the personal token.
            await tap(page, "#account")
            await type_into(page, "#token-input", PEOPLE["张工"][0])
            await tap(page, "#signin-submit")
            await page.wait_until(signed_in("张工"))
            assert await page.evaluate("localStorage.getItem('fleetmon.person-token')") == PEOPLE["张工"][0]

            # 报障: find the lab point by part of its name, describe, pick the severity, send.
            await tap(page, "#report-open")
            await type_into(page, "#point-search", "人民广场01")
            await page.wait_until(f"!!document.querySelector('#points-found button[data-device=\"{POINT.id}\"]')")
            found = texts(await page.dom(), "//*[@id='points-found']//button/span[1]")
            await shot(page, tmp_path, "workorders-phone-search.png", "#report-form")
            await tap(page, f"#points-found button[data-device='{POINT.id}']")
            await type_into(page, "#report-title", "采购方来电：人民广场01号画面黑屏")
            await page.evaluate("(() => { const s = document.getElementById('report-severity');"
                                " s.value = 'critical'; s.dispatchEvent(new Event('change')); })()")
            report_png = await shot(page, tmp_path, "workorders-phone-report.png", "#orders")
            t0 = time.time_ns()
            await tap(page, "#report-submit")
            reported = await notice(page, "已报障 ")
            ref = reported.split()[1]
            await page.wait_until(f"!!document.querySelector('li[data-ref=\"{ref}\"]')")
            listed = await page.dom()
            await shot(page, tmp_path, "workorders-phone-orders.png", "#orders")

            # 认领 → 到场 → 修复 (on site) → 更换 → 关闭, each by its button.
            item = f"li[data-ref='{ref}']"
            await tap(page, f"{item} button[data-action='ack']")
            assert (await notice(page, "已认领 ")).startswith(f"已认领 {ref} · ")
            await tap(page, f"{item} button[data-action='arrive']")
            await notice(page, "已记录到场 ")
            await tap(page, f"{item} button[data-action='restore']")
            await tap(page, "#restore-on-site")
            await notice(page, "已记录修复 ")
            await tap(page, f"{item} button[data-action='replace']")
            old_serial = await page.evaluate("document.getElementById('replace-old').value")
            await type_into(page, "#replace-new", "DS99990713CCWR")
            await type_into(page, "#replace-model", "DS-2CD3T47")
            replace_png = await shot(page, tmp_path, "workorders-phone-replace.png", item)
            await tap(page, "#replace-submit")
            await notice(page, "已记录更换 ")
            await tap(page, f"{item} button[data-action='close']")
            await tap(page, "#close-submit")
            closed = await notice(page, "已关闭 ")
            t1 = time.time_ns()
            await page.wait_until(f"!document.querySelector('li[data-ref=\"{ref}\"]')")
            await shot(page, tmp_path, "workorders-phone-closed.png", "#orders")
            viewport = await page.evaluate("[innerWidth, document.documentElement.scrollWidth]")
            html = await page.evaluate("document.documentElement.outerHTML")
            errors = page.errors()

        # A new visit of the page: still signed in (the token kept in this browser).
        async with open_page(browser, f"{url}/status#token={STATUS}") as again:
            await again.wait_until(signed_in("张工"))
            assert again.errors() == []
        order = await order_json(http, url, ref)

    assert errors == [] and viewport == [WIDTH, WIDTH]
    assert png_size(report_png) == png_size(replace_png) == (WIDTH * SCALE, HEIGHT * SCALE)
    assert PEOPLE["张工"][0] not in html  # the token is never written into the page

    # Before signing in: the orders, most urgent first, with their countdowns; no buttons.
    before_items = before.xpath(f"//section[@id='orders']//li[{cls('order')}]")
    breached, warned = (o.ref for o in sorted(book.open_orders(), key=lambda o: o.reported_ns))
    assert [li.get("data-ref") for li in before_items] == [breached, warned]  # the breached order first
    assert texts(before, f"//section[@id='orders']/p[{cls('hint')}]") == ["登录后可报障和处理工单。"]
    assert before.xpath("//section[@id='orders']//button[@data-action]") == []
    chips = {li.get("data-ref"): texts(li, f".//span[{cls('clock')}]") for li in before_items}
    states = {li.get("data-ref"): [c.get("class").split()[-1] for c in li.xpath(f".//span[{cls('clock')}]")]
              for li in before_items}
    assert states[breached] == ["met", "ok", "breached", "ok"] and chips[breached][2].startswith("排除 超时")
    assert states[warned][0] == "warning" and chips[warned][0].startswith("响应 剩")

    for dom in (before, listed):  # every child is an element or text of its own: no stray "null"
        assert [n for n in dom.xpath("//section[@id='orders']//text()") if n.strip() == "null"] == []

    # The point search found the lab point by its name; the report named it.
    assert found[0] == POINT.name
    new_item = listed.xpath(f"//li[@data-ref='{ref}']")[0]
    assert texts(new_item, f".//span[{cls('point')}]") == [f"{POINT.name}（{POINT.id}）"]
    assert texts(new_item, f".//span[{cls('stage')}]") == ["待认领"]
    assert texts(new_item, f".//span[{cls('sev')}]") == ["紧急"]
    assert texts(new_item, f".//span[{cls('clock')}]")[0].startswith("响应 剩14分") or \
        texts(new_item, f".//span[{cls('clock')}]")[0].startswith("响应 剩15分")
    assert old_serial == POINT.serial == "DS00010713CCWR"  # the point list's serial, offered

    # What the daemon recorded: every step by 张工, at the time of the tap, in order.
    events = [(e["action"], e["by"]) for e in order["events"]]
    assert events == [("opened", "张工"), ("acknowledged", "张工"), ("assigned", "张工"), ("arrived", "张工"),
                      ("restored", "张工"), ("replaced", "张工"), ("closed", "张工")]
    stamps = [e["at_ns"] for e in order["events"]]
    assert t0 <= stamps[0] and stamps == sorted(stamps) and stamps[-1] <= t1
    assert (order["severity"], order["title"], order["resolution"], order["stage"]) == (
        "critical", "采购方来电：人民广场01号画面黑屏", "on_site", "closed")
    (r,) = order["replacements"]
    assert (r["device"], r["old_serial"], r["new_serial"], r["new_model"], r["by"]) == (
        POINT.id, "DS00010713CCWR", "DS99990713CCWR", "DS-2CD3T47", "张工")
    assert closed.startswith(f"已关闭 {ref} · ")


@pytest.mark.peer
async def test_sign_in_refuses_wrong_and_shared_tokens_and_a_reader_gets_no_buttons(tmp_path, browser):
    async with served(tmp_path) as (url, book):
        async with open_page(browser, f"{url}/status?lang=en#token={STATUS}") as page:
            assert await page.wait_for_state("ok") == "ok"
            errors_shown = []
            for token in ("not-a-token", STATUS):
                await tap(page, "#account")
                await type_into(page, "#token-input", token)
                await tap(page, "#signin-submit")
                await page.wait_until("!!document.querySelector('#signin .error')")
                errors_shown.append(texts(await page.dom(), "//section[@id='signin']//p[@role='alert']")[0])
                await tap(page, "#signin-cancel")
            await tap(page, "#account")
            await type_into(page, "#token-input", PEOPLE["赵观察"][0])
            await tap(page, "#signin-submit")
            await page.wait_until(signed_in("赵观察"))
            reader = await page.dom()
            await shot(page, tmp_path, "workorders-phone-reader-en.png", "#orders")
            # The same page in Chinese after a tap on the language button.
            await tap(page, "#lang")
            chinese = await page.dom()
            errors = page.errors()
    # The wrong token's 401 is the only thing Chromium logs (as a failed load); nothing threw.
    assert [(e["method"], e["params"]["entry"]["text"]) for e in errors] == [
        ("Log.entryAdded", "Failed to load resource: the server responded with a status of 401 (Unauthorized)")]
    assert errors_shown == ["Wrong token.", "This is not a personal token: use the one issued to you."]
    assert texts(reader, "//section[@id='orders']/h2/text()") == ["Work orders"]
    assert texts(reader, f"//section[@id='orders']/p[{cls('hint')}]") == ["Your token may read, not act on orders."]
    assert reader.xpath("//section[@id='orders']//button") == []
    assert len(reader.xpath(f"//section[@id='orders']//li[{cls('order')}]")) == 2
    assert texts(chinese, f"//section[@id='orders']/p[{cls('hint')}]") == ["您的令牌只能查看，不能处理工单。"]
    assert len(book.open_orders()) == 2
