"""The phone page (/status) as the duty desk uses it on a contract-sized fleet, in headless
Chromium at 390 and 360 CSS px: what needs a person first (work orders, faults, most urgent
first), offline points with id, IP, since when and why (the probe's reason in Chinese), a search
and filters over the whole offline list shown in steps ("显示 20 / 173", never a silent cut),
names kept whole at 360 px, and one vocabulary for taking work (待认领 / 已认领 · 谁 …).

Real peers: ApiServer on loopback with a status token; FaultBook, MaintenanceBook and a
WorkOrderBook on a real SQLite state database; the lab's contract fleet (1,850 cameras, on
paper) with three dark sites and camera faults of several ICMP reasons. The full-page
screenshots go to artifacts/phone-390.png and artifacts/phone-360.png (copies kept in docs/).
"""

from __future__ import annotations

import base64
import json
import random
import re
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import pytest
from pydantic import SecretStr

from lab.fleet import Impairments, build_contract_fleet
from monitor.app import status_reasons
from monitor.app.api import ApiConfig, ApiContext, ApiServer
from monitor.app.scheduler import CycleReport
from monitor.app.snapshot import Snapshot
from monitor.assess.config_workorders import SlaConfig, WorkOrderConfig
from monitor.assess.sla import Sla
from monitor.assess.workorders import WorkOrderBook
from monitor.core.model import Kind, Status
from monitor.fleet.inventory import Inventory
from monitor.state.db import StateDB
from monitor.state.online_rate import online_rates
from monitor.state.tracker import State
from probes import icmp, rtsp
from probes.base import ProbeResult
from rules.alerting.faults import FaultBook
from rules.alerting.maintenance import MaintenanceBook
from rules.base import Condition
from rules.model import Severity
from tests.test_lab import PaperNet
from tests.test_status_page import CHROMIUM, REPO, Chromium, Page, cls, texts

STATUS = "status-token-of-the-duty-desk-5"
S = 1_000_000_000
MIN = 60 * S
STEP = 20  # status.js PAGE_STEP
ARTIFACTS = REPO / "artifacts"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")

FLEET = build_contract_fleet(PaperNet(), impaired=Impairments(slow=0, lossy=0, dark=3))
INVENTORY = Inventory(FLEET.devices)
ACTIVE = [d for d in FLEET.devices if d.status is Status.ACTIVE]
DARK_LINKS = [d.id for d in ACTIVE if d.kind is Kind.LINK and d.address is not None
              and not FLEET.net.is_up(d.address)]
ICMP_REASONS = ("timeout", "host unreachable", "network unreachable", "communication administratively prohibited")
RTSP_REASONS = ("401 Unauthorized (wrong credentials)", "404 Not Found", "connect timeout",
                "503 Service Unavailable")  # the last a camera's own words: no translation


def plan(now_ns: int) -> tuple[dict[str, State], dict[str, int], dict[str, str], dict[str, str]]:
    """States, since-when, ICMP reasons of the down points, RTSP reasons of the cameras without
    video: the dark sites' links down (2–3 h ago) with everything behind them unreachable, 60
    further cameras down for minutes to days, 30 that answer ping but send no picture."""
    rng = random.Random(15)
    states = {d.id: State.UP for d in ACTIVE}
    since = {d.id: now_ns - 6 * 86400 * S for d in ACTIVE}
    reasons: dict[str, str] = {}
    for k, link in enumerate(DARK_LINKS):
        states[link], since[link], reasons[link] = State.DOWN, now_ns - (3 * 3600 - k * 1800) * S, "timeout"
        for d in FLEET.behind(link):
            if d.status is Status.ACTIVE:
                states[d.id], since[d.id] = State.UNREACHABLE, since[link] + 40 * S
    up_cameras = [d.id for d in ACTIVE if d.kind is Kind.CAMERA and states[d.id] is State.UP]
    chosen = rng.sample(up_cameras, 90)
    for i, camera in enumerate(chosen[:60]):
        states[camera] = State.DOWN
        since[camera] = now_ns - rng.choice((4 * MIN, 47 * MIN, 5 * 3600 * S, 2 * 86400 * S + 3 * 3600 * S))
        reasons[camera] = ICMP_REASONS[i % len(ICMP_REASONS)]
    no_video = {camera: RTSP_REASONS[i % len(RTSP_REASONS)] for i, camera in enumerate(chosen[60:])}
    return states, since, reasons, no_video


def snapshot(now_ns: int) -> Snapshot:
    states, since, reasons, no_video = plan(now_ns)
    report = CycleReport("icmp", 311, now_ns - 4 * S, 6.8, len(states), sum(s is State.UP for s in states.values()),
                         sum(s is not State.UP for s in states.values()), 0, 0)
    rng = random.Random(311)  # round trips: most lines 6–60 ms, one in twenty slow (220–300 ms)
    rtt = {d: rng.uniform(220, 300) if rng.random() < 0.05 else rng.uniform(6, 60) for d in states}
    latest = {
        d: ProbeResult(d, "icmp", now_ns - S, states[d] is State.UP, reasons.get(d) if states[d] is State.DOWN else None,
                       {"up": states[d] is State.UP, "sent": 5, "received": 5 if states[d] is State.UP else 0,
                        "loss_pct": 0.0 if states[d] is State.UP else 100.0,
                        **({"rtt_avg_ms": round(rtt[d], 1), "jitter_ms": round(rtt[d] / 20, 1)}
                           if states[d] is State.UP else {})})
        for d in states if states[d] is not State.UNREACHABLE
    }
    cameras = [d.id for d in ACTIVE if d.kind is Kind.CAMERA]
    # A camera off the network has no video either, for the same cause: unreachable, not down.
    video = {c: State.DOWN if c in no_video else states[c] if states[c] is State.UP else State.UNREACHABLE
             for c in cameras}
    rtsp_results = {c: ProbeResult(c, "rtsp", now_ns - 2 * S, c not in no_video, no_video.get(c), {"up": c not in no_video})
                    for c in cameras if states[c] is State.UP}
    online = {**states, **video}
    devices = INVENTORY.devices.values()
    rates = (*online_rates(devices, online, "online"), *online_rates(devices, states, "network"),
             *online_rates([d for d in devices if d.id in video], video, "video"))
    return Snapshot(report, rates, states, latest, since=since,
                    bases={"online": online, "network": states, "video": video},
                    results={"icmp": latest, "rtsp": rtsp_results})


def conditions(now_ns: int) -> list[Condition]:
    states, _, _, _ = plan(now_ns)
    out = []
    for link in DARK_LINKS:
        d = INVENTORY.devices[link]
        affected = tuple(x.id for x in FLEET.behind(link) if x.status is Status.ACTIVE)
        out.append(Condition("device-down", "device_down", f"device:{link}", Severity.CRITICAL,
                             f"专线{d.name}离线，影响{len(affected)}台设备", 0.0, 0.0, device_id=link, site=d.site,
                             region=d.region, affected=affected))
    for camera in [d for d, s in states.items() if s is State.DOWN and d.startswith("CAM-")][:6]:
        d = INVENTORY.devices[camera]
        out.append(Condition("device-down", "device_down", f"device:{camera}", Severity.MINOR, f"摄像机{d.name}离线",
                             0.0, 0.0, device_id=camera, site=d.site, region=d.region))
    return out


@asynccontextmanager
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, list[str]]]:
    """The API on loopback over the fleet above; faults of the dark links (critical, the second
    taken by 张工) and six cameras (minor); three work orders: one breached and taken by 李工,
    one with 王工 on site, one just reported. Yields the URL and the orders' refs, oldest first."""
    now = time.time_ns()
    async with StateDB(tmp_path / "state.db") as db:
        maintenance = await MaintenanceBook.load(db, INVENTORY, [])
        faults = await FaultBook.load(db, INVENTORY, [], maintenance)
        found = conditions(now)
        await faults.apply({c.key: c for c in found[:2]}, now - 3 * 3600 * S)
        await faults.apply({c.key: c for c in found}, now - 40 * MIN)
        await faults.ack("F2", "张工")
        book = await WorkOrderBook.load(db, INVENTORY, WorkOrderConfig(), Sla.from_config(
            SlaConfig(preset="qionglai", policies=[{"clocks": {"arrival": {"within": "4h"}}}]), "Asia/Shanghai"))
        first = await book.report([DARK_LINKS[0]], by="值班员王", title="专线中断，整站离线", severity="critical",
                                  ts_ns=now - 170 * MIN)
        await book.acknowledge(first.ref, by="李工", ts_ns=now - 160 * MIN)
        second = await book.report([DARK_LINKS[1]], by="值班员王", title="专线中断，待抢修", severity="major",
                                   ts_ns=now - 90 * MIN)
        await book.arrive(second.ref, by="王工", ts_ns=now - 20 * MIN)
        third = await book.report(["CAM-0007"], by="值班员王", title="采购方来电：画面黑屏", ts_ns=now - 6 * MIN)
        snap = snapshot(now)
        ctx = ApiContext(
            inventory=INVENTORY, snapshot=lambda: snap, faults=faults, maintenance=maintenance, token=None,
            language="zh", timezone="Asia/Shanghai", started_ns=now - 3600 * S, cycle_interval_s=30.0,
            status_token=SecretStr(STATUS), workorders=book,
        )
        async with ApiServer(ApiConfig(port=0), ctx) as server:
            yield f"http://127.0.0.1:{server.port}", [first.ref, second.ref, third.ref]


@asynccontextmanager
async def phone(browser: Chromium, url: str, width: int, scale: int = 2) -> AsyncIterator[Page]:
    """A tab `width` CSS px wide (844 high) at device scale `scale`, on `url`, loaded."""
    async with aiohttp.ClientSession() as http:
        async with http.put(f"http://127.0.0.1:{browser.port}/json/new?about:blank") as resp:
            target = await resp.json(content_type=None)
        async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=256 * 1024 * 1024) as ws:
            page = Page(ws)
            await page.send("Emulation.setDeviceMetricsOverride", width=width, height=844, deviceScaleFactor=scale,
                            mobile=True)
            await page.send("Emulation.setTouchEmulationEnabled", enabled=True)
            for domain in ("Page", "Runtime", "Log"):
                await page.send(f"{domain}.enable")
            await page.send("Page.navigate", url=url)
            assert await page.loaded() == "ok"
            yield page


async def full_page(page: Page, width: int, name: str) -> Path:
    """A PNG of the whole page, `width` CSS px wide, into artifacts/`name`."""
    height = (await page.send("Page.getLayoutMetrics"))["cssContentSize"]["height"]
    shot = await page.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                           clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1})
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


async def api(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url, headers={"Authorization": f"Bearer {STATUS}"}) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def offline_of(http: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    """The offline points as the page orders them: down first, the dark links (the most points
    behind them) first, then newest first; active only."""
    points = [d for state in ("down", "unreachable")
              for d in (await api(http, f"{url}/api/v1/devices?state={state}&limit=10000"))["devices"]]
    points = [d for d in points if d["status"] == "active"]
    behind = {link: sum(x.status is Status.ACTIVE for x in FLEET.behind(link)) for link in DARK_LINKS}
    return sorted(points, key=lambda d: (d["state"] != "down", -behind.get(d["id"], 0), -d["since_ns"]))


# Elements that hold a name (point, site, region, fault or order title) and, in the browser, the
# narrowest of them in units of their own font size; plus whether the page is wider than the phone.
NARROWEST = """(() => {
  const found = [];
  for (const e of document.querySelectorAll('main .name, main .title, main .site, main .point, main td')) {
    if (!e.textContent.trim() || !e.getClientRects().length) continue;
    const em = parseFloat(getComputedStyle(e).fontSize);
    found.push([e.getBoundingClientRect().width / em, e.textContent.trim().slice(0, 20)]);
  }
  found.sort((a, b) => a[0] - b[0]);
  return {narrowest: found.slice(0, 3), count: found.length, scroll: document.documentElement.scrollWidth,
          breakAll: [...document.querySelectorAll('main *')].filter(
            (e) => getComputedStyle(e).wordBreak === 'break-all').length};
})()"""

# The region names' line boxes: a township's name of 3–4 characters must sit on one line.
REGION_LINES = """[...document.querySelectorAll('#regions li.region .name')].map((e) => {
  const range = document.createRange(); range.selectNodeContents(e);
  return [e.textContent, new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size];
})"""


@pytest.fixture
def browser(tmp_path):
    with Chromium(tmp_path / "chromium") as chromium:
        yield chromium


@pytest.mark.peer
@pytest.mark.parametrize("width", [390, 360])
async def test_the_duty_desk_page_on_a_phone(tmp_path, browser, width):
    async with served(tmp_path) as (url, refs), aiohttp.ClientSession() as http:
        async with phone(browser, f"{url}/status#token={STATUS}", width) as page:
            await page.wait_until("document.querySelectorAll('#orders li.order').length === 3")
            dom = await page.dom()
            layout = await page.evaluate(NARROWEST)
            region_lines = await page.evaluate(REGION_LINES)
            await full_page(page, width, f"phone-{width}.png")
            errors = page.errors()
        offline = await offline_of(http, url)
        faults = (await api(http, f"{url}/api/v1/faults"))["faults"]

    assert errors == []
    # What needs a person comes first, right after the fleet's rate; the summaries last.
    assert texts(dom, "//main/section[not(@hidden)]/@id") == [
        "fleet", "orders", "faults", "offline", "novideo", "regions", "links", "maintenance"]

    # Nothing wider than the phone, no break-all, no name squeezed below two characters.
    assert layout["scroll"] == width and layout["breakAll"] == 0, layout
    assert layout["count"] > 100 and layout["narrowest"][0][0] >= 2, layout["narrowest"]
    assert len(region_lines) == 10 and all(lines == 1 for _, lines in region_lines), region_lines

    # Work orders: the breached one first (its restore clock ran out), each stage with its person.
    orders = dom.xpath(f"//section[@id='orders']//li[{cls('order')}]")
    assert [li.get("data-ref") for li in orders][0] == refs[0]
    stages = {li.get("data-ref"): texts(li, f".//span[{cls('stage')}]")[0] for li in orders}
    assert stages == {refs[0]: "已认领 · 李工", refs[1]: "已到场 · 王工", refs[2]: "待认领"}

    # Faults: critical first, within it the one nobody has taken; the same words as the orders.
    items = dom.xpath(f"//section[@id='faults']//li[{cls('fault')}]")
    assert len(items) == len(faults) == 9
    shown = [(li.get("data-id"), texts(li, f".//span[{cls('sev')}]")[0], texts(li, f".//span[{cls('ack')}]")[0])
             for li in items]
    assert [s[1] for s in shown] == ["紧急"] * 3 + ["一般"] * 6
    assert shown[0][2] == "待认领" and shown[1][2] == "待认领" and shown[2] == ("F2", "紧急", "已认领 · 张工")
    assert {s[2] for s in shown[3:]} == {"待认领"}

    # Offline points: the first step of the list, each with its id, IP, since when and why.
    assert len(offline) > 100
    points = dom.xpath(f"//section[@id='offline']//li[{cls('point')}]")
    assert [li.get("data-id") for li in points] == [d["id"] for d in offline[:STEP]]
    for li, d in zip(points, offline):
        assert texts(li, f".//span[{cls('id')}]") == [d["id"]]
        assert texts(li, f".//span[{cls('ip')}]") == [d["address"]]
        (since,) = texts(li, f".//span[{cls('since')}]")
        assert re.fullmatch(r"(\d\d-\d\d )?\d\d:\d\d 起 · \d+(天|小时|分|秒)(\d+(小时|分|秒))?", since), since
        if d["state"] == "down":
            reason = d["latest"]["reason"]
            assert texts(li, f".//div[{cls('reason')}]") == [f"原因：{status_reasons.EXACT[reason]}"]
    assert texts(dom, "//*[@id='offline-shown']") == [f"显示 {STEP} / {len(offline)}"]
    assert [d["id"] for d in offline[:3]] == sorted(DARK_LINKS, key=lambda i: -len(FLEET.behind(i)))
    assert texts(points[0], f".//div[{cls('impact')}]") == [
        f"下挂 {sum(x.status is Status.ACTIVE for x in FLEET.behind(offline[0]['id']))} 个点位随之离线"]

    # Cameras without video: their RTSP reason in Chinese, the camera's own phrase as it came.
    novideo = dom.xpath(f"//section[@id='novideo']//li[{cls('novideo')}]")
    assert texts(dom, "//section[@id='novideo']/h2/span[@class='count']") == ["30"] and len(novideo) == STEP
    assert {texts(li, f".//div[{cls('reason')}]")[0] for li in novideo} == {
        "RTSP：401 未授权（账号或密码错误）", "RTSP：404 未找到（取流地址错误？）", "RTSP：连接超时",
        "RTSP：503 Service Unavailable"}
    assert all(texts(li, f".//span[{cls('ip')}]")[0].startswith("198.18.") for li in novideo)
    assert texts(dom, "//*[@id='novideo-shown']") == [f"显示 {STEP} / 30"]

    # One vocabulary: no 已确认 / 待确认 anywhere on the page, nor in its script's texts.
    script = (REPO / "monitor" / "app" / "static" / "status.js").read_text(encoding="utf-8")
    assert not re.search("已确认|待确认|未认领", script)
    page_text = " ".join(dom.xpath("//body")[0].text_content().split())
    assert "已确认" not in page_text and "待确认" not in page_text and "未认领" not in page_text
    assert "待认领" in page_text


@pytest.mark.peer
async def test_search_and_filters_reach_every_offline_point(tmp_path, browser):
    async with served(tmp_path) as (url, _), aiohttp.ClientSession() as http:
        offline = await offline_of(http, url)
        far = offline[130]  # far beyond the first 100
        async with phone(browser, f"{url}/status?refresh=2#token={STATUS}", 360) as page:
            ids = "[...document.querySelectorAll('#offline li.point')].map((e) => e.dataset.id)"
            assert far["id"] not in await page.evaluate(ids)
            # Type part of its IP address into the search box, as a finger would.
            await page.evaluate("document.getElementById('offline-search').focus()")
            await page.send("Input.insertText", text=far["address"])
            by_ip = await page.wait_until(f"(() => {{ const x = {ids}; return x.length && x; }})()")
            shown_by_ip = await page.evaluate("document.getElementById('offline-shown').textContent")
            # The next refresh (2 s) keeps what is typed, where the finger is and what it found.
            updated = await page.evaluate("document.getElementById('updated').textContent")
            await page.wait_until(f"document.getElementById('updated').textContent !== {json.dumps(updated)}")
            kept = await page.evaluate("[document.activeElement.id, document.getElementById('offline-search').value]")
            by_ip_refreshed = await page.evaluate(ids)
            # Its site as the search, then the region filter: the same set as the API's.
            await page.evaluate("(() => { const s = document.getElementById('offline-search');"
                                " s.value = ''; s.dispatchEvent(new Event('input')); })()")
            await page.evaluate(f"(() => {{ const s = document.getElementById('offline-region');"
                                f" s.value = {json.dumps(far['region'])}; s.dispatchEvent(new Event('change')); }})()")
            await page.evaluate("(() => { const s = document.getElementById('offline-state');"
                                " s.value = 'unreachable'; s.dispatchEvent(new Event('change')); })()")
            filtered_count = await page.evaluate("(document.getElementById('offline-shown') || {}).textContent")
            filtered_ids = await page.evaluate(ids)
            # Back to everything, then "show more" twice: 20, 40, 60 of the whole list.
            await page.evaluate("for (const n of ['region', 'state']) { const s = document.getElementById("
                                "`offline-${n}`); s.value = ''; s.dispatchEvent(new Event('change')); }")
            steps = [await page.evaluate(ids)]
            for _ in range(2):
                await page.evaluate("document.getElementById('offline-more').click()")
                steps.append(await page.evaluate(ids))
            counted = await page.evaluate("document.getElementById('offline-shown').textContent")
            nothing = await page.evaluate("(() => { const s = document.getElementById('offline-search');"
                                          " s.value = 'no-such-point-zz'; s.dispatchEvent(new Event('input'));"
                                          " return document.getElementById('offline-body').textContent; })()")
            errors = page.errors()

    assert errors == []
    assert far["id"] in by_ip and by_ip == [d["id"] for d in offline if far["address"] in d["address"]][:STEP]
    assert shown_by_ip == f"显示 {len(by_ip)} / {len(by_ip)}（筛选自 {len(offline)}）"
    assert kept == ["offline-search", far["address"]] and by_ip_refreshed == by_ip
    wanted = [d["id"] for d in offline if d["region"] == far["region"] and d["state"] == "unreachable"]
    assert filtered_ids == wanted[:STEP] and len(wanted) > 0
    assert filtered_count == f"显示 {min(STEP, len(wanted))} / {len(wanted)}（筛选自 {len(offline)}）"
    assert steps == [[d["id"] for d in offline[:n]] for n in (STEP, 2 * STEP, 3 * STEP)]
    assert counted == f"显示 {3 * STEP} / {len(offline)}"
    assert nothing.startswith("没有匹配的点位。")


@pytest.mark.peer
async def test_english_words_and_reasons_pass_through(tmp_path, browser):
    async with served(tmp_path) as (url, refs), aiohttp.ClientSession() as http:
        offline = await offline_of(http, url)
        async with phone(browser, f"{url}/status?lang=en#token={STATUS}", 390) as page:
            await page.wait_until("document.querySelectorAll('#orders li.order').length === 3")
            dom = await page.dom()
            assert page.errors() == []
    stages = {li.get("data-ref"): texts(li, f".//span[{cls('stage')}]")[0]
              for li in dom.xpath(f"//section[@id='orders']//li[{cls('order')}]")}
    assert stages == {refs[0]: "taken · 李工", refs[1]: "on site · 王工", refs[2]: "to take"}
    assert set(texts(dom, f"//section[@id='faults']//span[{cls('ack')}]")) == {"to take", "taken · 张工"}
    first_down = next(d for d in offline if d["state"] == "down")
    item = dom.xpath(f"//li[@data-id='{first_down['id']}']")[0]
    assert texts(item, f".//div[{cls('reason')}]") == [f"reason: {first_down['latest']['reason']}"]
    assert texts(dom, "//*[@id='offline-shown']") == [f"showing {STEP} / {len(offline):,}"]


# --- the reasons' Chinese ------------------------------------------------------------------------


def test_every_fixed_reason_of_the_probes_has_its_chinese():
    fixed = {
        *icmp._UNREACH_V4.values(), *icmp._UNREACH_V6.values(), *icmp._ERRNO_REASONS.values(),
        *rtsp._CONNECT_ERRORS.values(), *(reason for _, reason in rtsp._FFMPEG_REASONS),
        "timeout", "destination unreachable", "TTL exceeded in transit", "hop limit exceeded in transit",
        "fragment reassembly time exceeded", "parameter problem", "packet too big",
    }
    missing = sorted(r for r in fixed if status_reasons.translate(r) == r)
    assert missing == []


@pytest.mark.parametrize(("reason", "chinese"), [
    ("timeout", "超时无响应"),
    ("host unreachable", "主机不可达"),
    ("timeout (5 s)", "超时（5 秒）"),
    ("timeout (no frame within 15 s)", "超时（15 秒内未收到画面）"),
    ("timeout (no complete answer within 2.5 s)", "超时（2.5 秒内无完整应答）"),
    ("response too large (> 65536 bytes)", "应答过大（超过 65536 字节）"),
    ("TLS handshake failed: CERTIFICATE_VERIFY_FAILED", "TLS 握手失败：CERTIFICATE_VERIFY_FAILED"),
    ("503 <b>Service Unavailable</b>", "503 <b>Service Unavailable</b>"),  # a camera's own: as it is
    ("$1 constructor", "$1 constructor"),
])
def test_reasons_translate_or_pass_through(reason, chinese):
    assert status_reasons.translate(reason) == chinese


def test_the_reason_patterns_read_alike_in_python_and_javascript():
    """Only the syntax both engines read: no named groups, look-behind, flags or \\Z."""
    for pattern, template in status_reasons.PATTERNS:
        compiled = re.compile(pattern)
        assert pattern.startswith("^") and pattern.endswith("$"), pattern
        assert not re.search(r"\(\?|\\[AZz]", pattern), pattern
        groups = {int(n) for n in re.findall(r"\$(\d)", template)}
        assert groups == set(range(1, compiled.groups + 1)), (pattern, template)
