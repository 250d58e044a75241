"""The phone status page (/status) in Debian's headless Chromium at phone size, against the
real API (ApiServer on loopback, a real FaultBook and MaintenanceBook on a real SQLite state
database, a real inventory and a Snapshot of real online rates).

Chromium is driven over the DevTools protocol (CDP, on loopback) rather than with --dump-dom:
new headless mode will not make a window narrower than 500 CSS px (measured: innerWidth 500
with --window-size=390,844), while Emulation.setDeviceMetricsOverride gives a true 390×844
phone viewport at device scale 3; and CDP lets a test stop the daemon under a loaded page.
What the page shows is read from its rendered DOM (document.documentElement.outerHTML, as
--dump-dom prints it) and compared with the API's JSON fetched by the test itself.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import struct
import subprocess
import time
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator
from zoneinfo import ZoneInfo

import aiohttp
import lxml.html
import pytest
from pydantic import SecretStr, ValidationError

from lab.process import ServerProcess, stop_process
from monitor.app import status_reasons
from monitor.app.api import ApiConfig, ApiContext, ApiServer
from monitor.core.config_base import SelectorConfig
from monitor.fleet.inventory import Inventory
from monitor.core.model import Device, Kind, Status
from monitor.state.online_rate import online_rates
from monitor.app.scheduler import CycleReport
from monitor.app.snapshot import Snapshot
from monitor.state.tracker import State
from monitor.state.db import StateDB
from probes.base import ProbeResult
from rules.alerting.config import MaintenanceWindowConfig
from rules.base import Condition
from rules.alerting.faults import FaultBook
from rules.alerting.maintenance import MaintenanceBook
from rules.model import Severity
from tests.plugins.factories import device as make_device

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parent.parent
WIDTH, HEIGHT, SCALE = 390, 844, 3  # CSS px of an iPhone 12–15 screen, device pixel ratio 3
WRITE_TOKEN = "write-令牌-0123456789"
STATUS_TOKEN = "read-only-status-token-42"
S = 1_000_000_000  # ns per second
HOSTILE = "<img src=x onerror=\"document.title='pwned'\">摄像机"
SHANGHAI = ZoneInfo("Asia/Shanghai")

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")


# --- the fleet the page shows ------------------------------------------------------------------


def device(id: str, name: str, kind: Kind, site: str, region: str, parent: str | None = None, **kw: Any) -> Device:
    return make_device(id, kind, name=name, site=site, region=region, parent=parent, **kw)


INVENTORY = Inventory([
    device("L1", "城关专线", Kind.LINK, "城关站", "城关镇"),
    device("S1", "城关交换机", Kind.SWITCH, "城关站", "城关镇", "L1"),
    device("C1", "城关路口东", Kind.CAMERA, "城关站", "城关镇", "S1"),
    device("C2", "城关路口西", Kind.CAMERA, "城关站", "城关镇", "S1"),
    device("C3", "城关广场", Kind.CAMERA, "城关广场站", "城关镇"),
    device("C9", "城关车站", Kind.CAMERA, "城关广场站", "城关镇"),
    device("L2", "南山专线", Kind.LINK, "南山站", "南山乡"),
    device("C4", HOSTILE, Kind.CAMERA, "南山站", "南山乡", "L2"),
    device("C5", "南山水库", Kind.CAMERA, "南山站", "南山乡", "L2"),
    device("C6", "南山新点", Kind.CAMERA, "南山站", "南山乡", "L2", status=Status.CONSTRUCTION),
    device("L3", "北河专线", Kind.LINK, "北河站", "北河镇"),
    device("C7", "北河桥头", Kind.CAMERA, "北河站", "北河镇", "L3"),
    device("C8", "北河学校", Kind.CAMERA, "北河站", "北河镇", "L3"),
])
STATES = {
    "L1": State.DOWN, "S1": State.UNREACHABLE, "C1": State.UNREACHABLE, "C2": State.UNREACHABLE, "C3": State.UP,
    "C9": State.UP,
    "L2": State.UP, "C4": State.DOWN, "C5": State.UP, "C6": State.DOWN,
    "L3": State.UP, "C7": State.UP, "C8": State.UP,
}
# Video (RTSP) states of the cameras: C3, C5, C8 and C9 answer ping but send no picture (their
# RTSP results below say why); C1, C2 and C4 are offline, so is their video.
VIDEO = {"C1": State.UNREACHABLE, "C2": State.UNREACHABLE, "C3": State.DOWN, "C9": State.DOWN,
         "C4": State.UNREACHABLE, "C5": State.DOWN, "C7": State.UP, "C8": State.DOWN}
# The latest RTSP DESCRIBE of every camera; C9's reason phrase is the camera's own and carries markup.
RTSP: dict[str, str | None] = {
    "C1": "connect timeout", "C2": "connect timeout", "C3": "401 Unauthorized (wrong credentials)",
    "C9": "503 <b>Service Unavailable</b>", "C4": "connect timeout", "C5": "connection refused", "C7": None,
    "C8": "404 Not Found",
}
# Seconds ago each device entered its (network) state.
AGO_S = {"L1": 2 * 3600 + 15 * 60, "S1": 2 * 3600 + 14 * 60, "C1": 2 * 3600 + 14 * 60, "C2": 2 * 3600 + 13 * 60,
         "C4": 25 * 60, "C6": 3 * 86400}


def snapshot(now_ns: int, video: dict[str, State] = VIDEO) -> Snapshot:
    """The fleet above after ICMP cycle 42, with `video` as the cameras' video states."""
    report = CycleReport("icmp", 42, now_ns - 3 * S, 2.5, 12, 7, 5, 0, 0)

    def icmp(device_id: str, ok: bool, **fields: float) -> ProbeResult:
        return ProbeResult(device_id, "icmp", now_ns - S, ok, None if ok else "timeout", {"up": ok, **fields})

    latest = {r.device_id: r for r in (
        icmp("L1", False, sent=5, received=0, loss_pct=100.0),
        icmp("L2", True, sent=5, received=5, loss_pct=0.0, rtt_avg_ms=236.4, jitter_ms=12.3),
        icmp("L3", True, sent=5, received=4, loss_pct=20.0, rtt_avg_ms=35.2, jitter_ms=1.1),
        icmp("C5", True, sent=5, received=5, loss_pct=0.0, rtt_avg_ms=8.0),
        icmp("C4", False, sent=5, received=0, loss_pct=100.0),
    )}
    rtsp = {
        d: ProbeResult(d, "rtsp", now_ns - 2 * S, video[d] is State.UP, None if video[d] is State.UP else reason,
                       {"up": video[d] is State.UP})
        for d, reason in RTSP.items()
    }
    since = {d: now_ns - ago * S for d, ago in AGO_S.items()}
    devices = INVENTORY.devices.values()
    online = {**STATES, **video}  # the contract's online: network and video
    rates = (
        *online_rates(devices, online, "online"),
        *online_rates(devices, STATES, "network"),
        *online_rates([d for d in devices if d.id in video], video, "video"),
    )
    return Snapshot(report, rates, STATES, latest, since=since,
                    bases={"online": online, "network": STATES, "video": video},
                    results={"icmp": latest, "rtsp": rtsp})


def condition(rule: str, scope: str, severity: Severity, title: str, **kw: Any) -> Condition:
    return Condition(rule, kw.pop("kind", "device_down"), scope, severity, title, 0.0, 0.0, **kw)


CONDITIONS = [
    condition("device-down", "device:L1", Severity.CRITICAL, "专线城关专线离线，影响3台设备", device_id="L1",
              site="城关站", region="城关镇", affected=("S1", "C1", "C2")),
    condition("device-down", "device:C4", Severity.MINOR, f"摄像机{HOSTILE}离线", device_id="C4", site="南山站",
              region="南山乡"),
    condition("camera-online-rate", "region:城关镇", Severity.MAJOR, "城关镇摄像机在线率33.33%，低于95%",
              kind="online_rate", region="城关镇", value=33.33, threshold=95.0, unit="%"),
]


class Daemon:
    """The API served on a free loopback port; it can be stopped under an open page and
    started again on the same port (with another context: a daemon restarted)."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.port = 0
        self._server: ApiServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, ctx: ApiContext | None = None) -> None:
        server = ApiServer(ApiConfig(port=self.port), ctx or self.ctx)
        await server.__aenter__()
        self._server, self.port = server, server.port

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.__aexit__(None, None, None)


@asynccontextmanager
async def serve(ctx: ApiContext) -> AsyncIterator[Daemon]:
    daemon = Daemon(ctx)
    await daemon.start()
    try:
        yield daemon
    finally:
        await daemon.stop()


@asynccontextmanager
async def context(
    tmp_path: Path, status_token: str | None = None, video: dict[str, State] = VIDEO
) -> AsyncIterator[ApiContext]:
    """An ApiContext over the fleet above: faults F1 (critical, acknowledged by 张工), F2
    (minor, the hostile camera), F3 (major, online rate); a config maintenance window."""
    now = time.time_ns()
    async with StateDB(tmp_path / "state.db") as db:
        window = MaintenanceWindowConfig(
            match=SelectorConfig(site=["北河站"]), start=datetime.fromtimestamp(now / S - 600, timezone.utc),
            end=datetime.fromtimestamp(now / S + 3600, timezone.utc), reason="线路割接",
        )
        maintenance = await MaintenanceBook.load(db, INVENTORY, [window])
        faults = await FaultBook.load(db, INVENTORY, [], maintenance)
        await faults.apply({c.key: c for c in CONDITIONS[:1]}, now - 2 * 3600 * S)
        await faults.apply({c.key: c for c in CONDITIONS[:2]}, now - 25 * 60 * S)
        await faults.apply({c.key: c for c in CONDITIONS}, now - 5 * 60 * S)
        await faults.ack("F1", "张工")
        snap = snapshot(now, video)
        yield ApiContext(
            inventory=INVENTORY, snapshot=lambda: snap, faults=faults, maintenance=maintenance,
            token=SecretStr(WRITE_TOKEN), language="zh", timezone="Asia/Shanghai", started_ns=now - 600 * S,
            cycle_interval_s=30.0, status_token=None if status_token is None else SecretStr(status_token),
        )


# --- Chromium over the DevTools protocol -------------------------------------------------------


class Chromium(ServerProcess):
    """Debian's headless Chromium with its DevTools endpoint on a free loopback port, in a
    fresh profile under `dir`."""

    start_timeout_s = 30.0

    def __init__(self, dir: Path) -> None:
        super().__init__()
        self.dir = dir
        self.port = 0

    def start(self) -> "Chromium":
        profile = self.dir / "profile"
        profile.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-extensions", "--mute-audio", "--hide-scrollbars", f"--user-data-dir={profile}",
             f"--window-size={WIDTH},{HEIGHT}", "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=(self.dir / "chromium.log").open("wb"),
        )
        # Chromium writes the port it bound into the profile once DevTools listens.
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.start_timeout_s
        while not active.exists() or not active.read_text().strip():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start: {(self.dir / 'chromium.log').read_text()[-2000:]}")
            time.sleep(0.05)
        self.port = int(active.read_text().split()[0])
        return self

    def stop(self, timeout_s: float | None = None) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc, 5.0 if timeout_s is None else timeout_s)


class Page:
    """One tab at phone size; `events` collects exceptions and console errors of the page."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        call_id = self._next_id
        await self._ws.send_json({"id": call_id, "method": method, "params": params})
        while True:
            message = await asyncio.wait_for(self._ws.receive_json(), 30)
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            if message.get("method") in ("Runtime.exceptionThrown", "Log.entryAdded", "Runtime.consoleAPICalled"):
                self.events.append(message)

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for_state(self, *states: str, timeout_s: float = 20.0) -> str:
        """Wait until the page's <body data-state> is one of `states` (the page sets it after
        each refresh: "ok" or "error"); returns it."""
        return await self.wait_until(
            f"document.body && {json.dumps(states)}.includes(document.body.dataset.state)"
            " && document.body.dataset.state",
            timeout_s,
        )

    async def loaded(self) -> str:
        """The page's verdict on its first data: "ok" or "error". A refresh that failed only
        because Chromium aborted its requests on a network change (net::ERR_NETWORK_CHANGED:
        tests beside this one add and remove interfaces) is no verdict of the page: its next
        refresh is awaited, as a phone changing cells would retry."""
        state = await self.wait_for_state("ok", "error")
        if state == "error" and any(
            e["method"] == "Log.entryAdded" and "net::ERR_NETWORK_CHANGED" in e["params"]["entry"].get("text", "")
            for e in self.events
        ):
            state = await self.wait_for_state("ok", timeout_s=60.0)
        return state

    async def wait_until(self, expression: str, timeout_s: float = 20.0) -> Any:
        """Evaluate `expression` every 0.1 s until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.1)
        raise AssertionError(f"never true: {expression}")

    async def dom(self) -> lxml.html.HtmlElement:
        return lxml.html.fromstring(await self.evaluate("document.documentElement.outerHTML"))

    async def screenshot(self, path: Path, full_page: bool = False) -> bytes:
        """A PNG of the viewport, or of the whole page (`full_page`), written to `path`."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = (await self.send("Page.getLayoutMetrics"))["cssContentSize"]
            params.update(captureBeyondViewport=True, clip={"x": 0, "y": 0, "width": WIDTH, "height": size["height"],
                                                            "scale": 1})
        png = base64.b64decode((await self.send("Page.captureScreenshot", **params))["data"])
        path.write_bytes(png)
        return png

    def errors(self) -> list[dict[str, Any]]:
        """Uncaught exceptions, failed loads and console errors (CSP violations among them).
        Not net::ERR_NETWORK_CHANGED: Chromium aborts a load in flight when any interface of the
        machine changes, which other tests do all the time (they build network namespaces and
        veth pairs beside it); the page's next refresh loads it again, as it would for a
        phone changing cells."""
        return [
            e for e in self.events
            if e["method"] == "Runtime.exceptionThrown"
            or e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"
            and "net::ERR_NETWORK_CHANGED" not in e["params"]["entry"].get("text", "")
            or e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] == "error"
        ]


@pytest.fixture
def chromium(tmp_path):
    with Chromium(tmp_path / "chromium") as browser:
        yield browser


@asynccontextmanager
async def open_page(browser: Chromium, url: str) -> AsyncIterator[Page]:
    async with aiohttp.ClientSession() as http:
        async with http.put(f"http://127.0.0.1:{browser.port}/json/new?about:blank") as resp:
            target = await resp.json(content_type=None)
        async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=64 * 1024 * 1024) as ws:
            page = Page(ws)
            await page.send("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT,
                            deviceScaleFactor=SCALE, mobile=True)
            await page.send("Emulation.setTouchEmulationEnabled", enabled=True)
            for domain in ("Page", "Runtime", "Log"):
                await page.send(f"{domain}.enable")
            await page.send("Page.navigate", url=url)
            yield page


# --- what the page shows ------------------------------------------------------------------------


def texts(dom: lxml.html.HtmlElement, xpath: str) -> list[str]:
    """The texts `xpath` selects (elements or text nodes), whitespace collapsed."""
    return [" ".join((e if isinstance(e, str) else e.text_content()).split()) for e in dom.xpath(xpath)]


def cls(name: str) -> str:
    return f"contains(concat(' ', normalize-space(@class), ' '), ' {name} ')"


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}%"


async def api_json(http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> Any:
    async with http.get(url, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


def shanghai_clock(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / S, timezone.utc).astimezone(SHANGHAI)


def shown_since(ns: int) -> str:
    """How the page writes a past time: HH:MM in Asia/Shanghai, with MM-DD when not today there."""
    at, today = shanghai_clock(ns), datetime.now(SHANGHAI)
    return at.strftime("%H:%M") if at.date() == today.date() else at.strftime("%m-%d %H:%M")


@pytest.mark.peer
async def test_the_page_shows_on_a_phone_what_the_api_says(tmp_path, chromium):
    async with context(tmp_path) as ctx, serve(ctx) as daemon, aiohttp.ClientSession() as http:
        before_ns = time.time_ns()
        async with open_page(chromium, daemon.url + "/status") as page:
            assert await page.loaded() == "ok"
            after_ns = time.time_ns()
            dom = await page.dom()
            png = await page.screenshot(tmp_path / "status-phone.png")
            full = await page.screenshot(tmp_path / "status-phone-full.png", full_page=True)
            # The phone scrolled to the cameras without video, just below the sticky header.
            novideo_box = await page.evaluate(
                "(() => { const head = document.getElementById('top').getBoundingClientRect().bottom;"
                " const box = () => document.getElementById('novideo').getBoundingClientRect();"
                " window.scrollBy(0, box().top - head - 8); return [head, box().top, box().bottom]; })()")
            novideo_png = await page.screenshot(tmp_path / "status-phone-novideo.png")
            title = await page.evaluate("document.title")
            viewport = await page.evaluate("[innerWidth, devicePixelRatio, document.documentElement.scrollWidth]")
            errors = page.errors()
        status = await api_json(http, daemon.url + "/api/v1/status")
        offline = [
            d for state in ("down", "unreachable")
            for d in (await api_json(http, f"{daemon.url}/api/v1/devices?state={state}"))["devices"]
        ]
        no_video = (await api_json(http, daemon.url + "/api/v1/devices?basis=video&state=down"))["devices"]
        links = (await api_json(http, daemon.url + "/api/v1/devices?kind=link"))["devices"]
        faults = (await api_json(http, daemon.url + "/api/v1/faults"))["faults"]

    artifacts = REPO / "artifacts"
    artifacts.mkdir(exist_ok=True)
    for name in ("status-phone.png", "status-phone-full.png", "status-phone-novideo.png"):
        shutil.copyfile(tmp_path / name, artifacts / name)
    assert png_size(png) == png_size(novideo_png) == (WIDTH * SCALE, HEIGHT * SCALE)
    # That screenshot shows all of the section, none of it under the header.
    assert 0 < novideo_box[0] < novideo_box[1] < novideo_box[2] <= HEIGHT, novideo_box
    assert png_size(full)[0] == WIDTH * SCALE and png_size(full)[1] > HEIGHT * SCALE  # more below the fold
    assert viewport == [WIDTH, SCALE, WIDTH]  # a phone viewport, and nothing wider than it
    assert errors == []
    assert title == "fleetmon 链路状态" and dom.get("lang") == "zh-CN"

    # "updated at": the server's time of the answer, on the Asia/Shanghai clock (UTC+8).
    (updated,) = texts(dom, "//*[@id='updated']")
    assert updated.endswith(" 北京时间 · 每 15 秒刷新")
    shown = updated.split("更新于 ")[1][:8]
    candidates = {shanghai_clock(ns).strftime("%H:%M:%S") for ns in range(before_ns - S, after_ns + S, S // 2)}
    assert shown in candidates, (shown, candidates)

    # The fleet: the same rate, red below 95 %, and the same counts.
    fleet = status["fleet"]
    (rate,) = dom.xpath("//*[@id='fleet-rate']")
    assert rate.text_content() == pct(fleet["rate_pct"]) == "25.00%" and "bad" in rate.get("class").split()
    counts = dict(zip(texts(dom, "//*[@id='fleet-counts']//dt"), texts(dom, "//*[@id='fleet-counts']//dd")))
    assert counts == {
        "在线": str(fleet["online"]), "离线": str(fleet["offline"]), "未判定": str(fleet["unknown"]),
        "延建/拆除": str(fleet["excluded"]),
    }

    # Regions: worst first by the contract's rate, beside the name; every other basis the API
    # reports below it, with the offline count.
    bases = list(dict.fromkeys(r["basis"] for r in status["rates"]))
    assert bases == ["online", "network", "video"]
    regions: dict[str, dict[str, Any]] = {}
    for r in status["rates"]:
        if r["scope"] == "region" and r["kind"] == "all":
            regions.setdefault(r["group"], {})[r["basis"]] = r
    worst_first = sorted(regions.items(), key=lambda item: item[1]["online"]["rate_pct"])
    assert texts(dom, "//section[@id='regions']/h2/small") == ["在线率 · 最差在前"]
    rows = dom.xpath(f"//section[@id='regions']//li[{cls('region')}]")
    shown_regions = [
        (texts(row, f".//span[{cls('name')}]")[0], texts(row, f".//span[{cls('rate')}]")[0],
         texts(row, f".//span[{cls('basis')}]"), texts(row, f".//span[{cls('off')}]")[0])
        for row in rows
    ]
    assert shown_regions == [
        (name, pct(by["online"]["rate_pct"]), [f"{label} {pct(by[b]['rate_pct'])}" for b, label in
                                               (("network", "网络"), ("video", "视频"))],
         f"离线 {by['online']['offline']}/{by['online']['total']}")
        for name, by in worst_first
    ]
    assert [r[0] for r in shown_regions] == ["城关镇", "南山乡", "北河镇"]
    assert [[e.get("class").split()[-1] for e in row.xpath(f".//span[{cls('rate')}] | .//span[{cls('basis')}]/b")]
            for row in rows] == [["bad", "bad", "bad"], ["bad", "bad", "bad"], ["bad", "good", "bad"]]
    # The fleet's other bases beside the headline.
    fleet_bases = {r["basis"]: r for r in status["rates"] if r["scope"] == "fleet" and r["kind"] == "all"}
    assert texts(dom, f"//section[@id='fleet']//span[{cls('basis')}]") == [
        f"网络 {pct(fleet_bases['network']['rate_pct'])}", f"视频 {pct(fleet_bases['video']['rate_pct'])}",
    ]

    # Offline points: active ones only (not the point under construction); down first, those with
    # the most offline points behind them first (L1: S1, C1, C2), then newest first.
    active = [d for d in offline if d["status"] == "active"]
    behind = {"L1": 3}
    expected = sorted(active, key=lambda d: (d["state"] != "down", -behind.get(d["id"], 0), -d["since_ns"]))
    items = dom.xpath(f"//section[@id='offline']//li[{cls('point')}]")
    assert texts(dom, f"//section[@id='offline']//li//span[{cls('name')}]") == [d["name"] for d in expected]
    assert [d["id"] for d in expected] == ["L1", "C4", "C2", "S1", "C1"]  # S1, C1: same time, inventory order
    assert [texts(li, f".//div[{cls('impact')}]") for li in items] == [["下挂 3 个点位随之离线"], [], [], [], []]
    for item, d in zip(items, expected):
        sub = texts(item, f".//span[{cls('since')}]")[0]
        assert sub.startswith(f"{shown_since(d['since_ns'])} 起 · "), sub
        badge = item.xpath(f".//span[{cls('badge')}]")[0].text_content()
        cause = texts(item, f".//div[{cls('cause')}]")
        assert texts(item, f".//span[{cls('id')}]") == [d["id"]] and texts(item, f".//span[{cls('ip')}]") == [d["address"]]
        if d["state"] == "down":
            assert (badge, cause) == ("离线", [])
        else:  # behind the down link, however deep
            assert (badge, cause) == ("上级故障", ["上级 城关专线 离线"])
    assert texts(dom, "//section[@id='offline']//h2/span[@class='count']") == [str(len(expected))]
    assert "南山新点" not in texts(dom, "//section[@id='offline']//li//span")
    assert "小时" in texts(dom, f"//section[@id='offline']//li[1]//span[{cls('since')}]")[0]

    # Network up, no video: exactly the API's list (cameras that answer ping, RTSP fails), by
    # region then name in Chinese (pinyin) order, which is neither the inventory's nor the code
    # points' (北 < 城 < 南 by pinyin, 北 < 南 < 城 by code point; 车站 che < 广场 guang), each with
    # its site, region and the RTSP probe's reason; no since-when (the API has none per basis).
    by_id = {d["id"]: d for d in no_video}
    assert all(d["bases"]["video"] == "down" and d["bases"]["network"] == d["state"] == "up" for d in no_video)
    expected_ids = ["C8", "C9", "C3", "C5"]
    assert sorted(by_id) == sorted(expected_ids)
    novideo = f"//section[@id='novideo']//li[{cls('novideo')}]"
    shown_novideo = [
        (texts(li, f".//span[{cls('name')}]"), texts(li, f".//span[{cls('site')}]"),
         texts(li, f".//div[{cls('reason')}]"), texts(li, f".//span[{cls('since')}]"))
        for li in dom.xpath(novideo)
    ]
    assert shown_novideo == [
        ([by_id[i]["name"]], [f"{by_id[i]['site']} · {by_id[i]['region']}"],
         [f"RTSP：{status_reasons.translate(by_id[i]['results']['rtsp']['reason'])}"], [])
        for i in expected_ids
    ]
    # The reasons the probe writes, in Chinese; the camera's own phrase (C9) as it came.
    assert [reason for _, _, (reason,), _ in shown_novideo] == [
        "RTSP：404 未找到（取流地址错误？）", "RTSP：503 <b>Service Unavailable</b>", "RTSP：401 未授权（账号或密码错误）",
        "RTSP：连接被拒绝",
    ]
    assert texts(dom, "//section[@id='novideo']/h2/span[@class='count']") == [str(len(no_video))] == ["4"]
    assert dom.xpath("//section[@id='novideo']//b") == []  # the camera's reason phrase stayed text
    assert texts(dom, "//main/section/@id") == [
        "signin", "fleet", "orders", "faults", "offline", "novideo", "regions", "links", "maintenance",
    ]
    # Without work orders in the daemon (503) their card and the sign-in stay empty and hidden.
    assert dom.xpath("//section[@id='orders']/*") == [] and dom.xpath("//*[@id='account']")[0].get("hidden") is not None

    # The hostile camera name is shown as text; no element was made of it, nothing ran.
    assert HOSTILE in texts(dom, f"//section[@id='offline']//span[{cls('name')}]")
    assert dom.xpath("//img") == [] and title != "pwned"

    # Links: no reply first, then the slowest; RTT red above 200 ms; loss and jitter.
    rtt = {d["id"]: d["latest"]["fields"].get("rtt_avg_ms") for d in links}
    assert [d["id"] for d in links] == ["L1", "L2", "L3"] and rtt == {"L1": None, "L2": 236.4, "L3": 35.2}
    link_items = dom.xpath(f"//section[@id='links']//li[{cls('link')}]")
    shown_links = [
        (texts(li, f".//span[{cls('name')}]")[0], texts(li, f".//span[{cls('rtt')}]")[0],
         li.xpath(f".//span[{cls('rtt')}]")[0].get("class").split()[-1], texts(li, f".//b[{cls('loss')}]")[0],
         texts(li, f".//b[{cls('jitter')}]")[0])
        for li in link_items
    ]
    assert shown_links == [
        ("城关专线", "无响应", "bad", "100%", "—"),
        ("南山专线", "236.4 ms", "bad", "0%", "12.3 ms"),
        ("北河专线", "35.2 ms", "good", "20%", "1.1 ms"),
    ]

    # Open faults: most severe first, severity, since, taken (已认领) or not (待认领).
    fault_items = dom.xpath(f"//section[@id='faults']//li[{cls('fault')}]")
    assert texts(dom, f"//section[@id='faults']//span[{cls('title')}]") == [f["title"] for f in faults]
    assert [f["severity"] for f in faults] == ["critical", "major", "minor"]
    assert texts(dom, f"//section[@id='faults']//span[{cls('sev')}]") == ["紧急", "严重", "一般"]
    assert [texts(li, f".//span[{cls('ack')}]")[0] for li in fault_items] == ["已认领 · 张工", "待认领", "待认领"]
    for li, f in zip(fault_items, faults):
        assert texts(li, f".//span[{cls('since')}]")[0].startswith(f"{shown_since(f['first_seen_ns'])} 起")
        assert texts(li, f".//span[{cls('state')}]") == [{"firing": "告警中", "pending": "观察中"}[f["state"]]]

    (cycle,) = texts(dom, "//*[@id='cycle']")
    assert cycle.startswith("第 42 轮探测（icmp）完成于") and "12 台" in cycle
    assert dom.xpath("//*[@id='problem']")[0].get("hidden") is not None


@pytest.mark.peer
async def test_english_on_request_and_by_the_language_button(tmp_path, chromium):
    async with context(tmp_path) as ctx, serve(ctx) as daemon:
        async with open_page(chromium, daemon.url + "/status?lang=en") as page:
            assert await page.wait_for_state("ok") == "ok"
            english = await page.dom()
            await page.evaluate("document.getElementById('lang').click()")
            chinese = await page.dom()
            assert page.errors() == []
    assert english.get("lang") == "en"
    assert texts(english, "//h2/text()") == [
        "Fleet online rate", "Open faults", "Offline points", "Network up, no video", "Online rate per region",
        "Dedicated links", "Maintenance windows",
    ]
    assert texts(english, f"//section[@id='novideo']//div[{cls('reason')}]")[0] == "RTSP: 404 Not Found"
    assert texts(english, f"//section[@id='faults']//span[{cls('sev')}]") == ["critical", "major", "minor"]
    assert texts(english, "//*[@id='lang']") == ["中文"]
    assert texts(chinese, "//h2/text()") == ["全网在线率", "当前故障", "离线点位", "有网无视频", "各区域在线率", "专线",
                                           "维护窗口"]
    assert chinese.get("lang") == "zh-CN"


@pytest.mark.peer
async def test_without_cameras_lacking_video_the_section_says_none(tmp_path, chromium):
    video = {d: State.UP if STATES[d] is State.UP else State.UNREACHABLE for d in VIDEO}
    async with context(tmp_path, video=video) as ctx, serve(ctx) as daemon, aiohttp.ClientSession() as http:
        async with open_page(chromium, daemon.url + "/status?lang=en") as page:
            assert await page.wait_for_state("ok") == "ok"
            dom = await page.dom()
            assert page.errors() == []
        listed = await api_json(http, daemon.url + "/api/v1/devices?basis=video&state=down")
    assert listed["total"] == 0 and listed["devices"] == []
    assert texts(dom, "//section[@id='novideo']/h2/span[@class='count']") == ["0"]
    assert texts(dom, f"//section[@id='novideo']/p[{cls('empty')}]") == ["none"]
    assert dom.xpath("//section[@id='novideo']//li") == []


@pytest.mark.peer
async def test_when_the_daemon_goes_away_the_page_says_so_and_keeps_the_last_data(tmp_path, chromium):
    async with context(tmp_path) as ctx, serve(ctx) as daemon:
        async with open_page(chromium, daemon.url + "/status?refresh=2") as page:
            assert await page.wait_for_state("ok") == "ok"
            before = await page.dom()
            await daemon.stop()  # connections refused from now on
            assert await page.wait_for_state("error") == "error"
            after = await page.dom()
            await page.screenshot(tmp_path / "status-phone-unreachable.png")
            await daemon.start()  # back on the same port: the next refresh clears the message
            assert await page.wait_for_state("ok") == "ok"
            recovered = await page.dom()

    artifacts = REPO / "artifacts"
    artifacts.mkdir(exist_ok=True)
    shutil.copyfile(tmp_path / "status-phone-unreachable.png", artifacts / "status-phone-unreachable.png")
    (problem,) = after.xpath("//*[@id='problem']")
    assert problem.get("hidden") is None
    message = " ".join(problem.text_content().split())
    updated_at = texts(before, "//*[@id='updated']")[0].split("更新于 ")[1][:8]
    assert message.startswith("无法连接监测服务（") and message.endswith(f"以下为 {updated_at} 的数据。")
    assert texts(after, "//main/section") == texts(before, "//main/section")  # the last data, all of it
    assert texts(after, "//*[@id='fleet-rate']") == ["25.00%"]
    assert texts(after, "//*[@id='updated']") == texts(before, "//*[@id='updated']")
    assert recovered.xpath("//*[@id='problem']")[0].get("hidden") is not None
    assert texts(recovered, "//*[@id='fleet-rate']") == ["25.00%"]


# --- the status token ----------------------------------------------------------------------------


async def test_with_a_status_token_data_reads_need_it_and_never_from_a_url(tmp_path):
    async with context(tmp_path, status_token=STATUS_TOKEN) as ctx, serve(ctx) as daemon, \
            aiohttp.ClientSession() as http:
        url = daemon.url

        async def status_of(method: str, path: str, **kw: Any) -> tuple[int, str]:
            async with http.request(method, url + path, **kw) as resp:
                return resp.status, await resp.text()

        bearer = {"Authorization": f"Bearer {STATUS_TOKEN}"}
        # The page is static and open: its link carries the token after the # (never sent).
        code, html = await status_of("GET", "/status?from=singlemessage")
        assert code == 200 and "<script src=\"/status/status.js\"" in html
        # A token in a query string is refused, whichever it is, pointing to the header.
        for query in (f"token={STATUS_TOKEN}", "token=wrong", f"access_token={WRITE_TOKEN}", f"TOKEN={STATUS_TOKEN}"):
            code, body = await status_of("GET", f"/status?{query}")
            assert code == 400 and "Authorization: Bearer" in body and "/status#token=" in body, query
            assert STATUS_TOKEN not in body and WRITE_TOKEN not in body
        # Data reads: the status token or the write token, as a bearer header.
        for path in ("/api/v1/status", "/api/v1/devices", "/api/v1/faults", "/api/v1/faults/F1", "/api/v1/maintenance"):
            assert (await status_of("GET", path))[0] == 401, path
            assert (await status_of("GET", path, headers={"Authorization": "Bearer wrong"}))[0] == 401, path
            code, body = await status_of("GET", f"{path}?token={STATUS_TOKEN}", headers=bearer)
            assert code == 400 and "Authorization: Bearer" in body, path
            assert (await status_of("GET", path, headers=bearer))[0] == 200, path
            assert (await status_of("GET", path, headers={"Authorization": f"Bearer {WRITE_TOKEN}"}))[0] == 200
        # Open: liveness, the document and the page's code (no fleet data in them).
        for path in ("/healthz", "/api/v1/openapi.json", "/status/status.css", "/status/status.js"):
            assert (await status_of("GET", path))[0] == 200, path
        # The status token is read-only, and says so.
        code, body = await status_of("POST", "/api/v1/faults/F2/ack", json={"by": "李工"}, headers=bearer)
        assert code == 403 and "the status token is read-only" in body
        assert (await ctx.faults.get("F2")).acked_by is None

        doc = await api_json(http, url + "/api/v1/openapi.json")
    assert doc["paths"]["/api/v1/status"]["get"]["security"] == [{"bearer": []}]
    assert doc["paths"]["/status"]["get"]["security"] == []
    assert "401" in doc["paths"]["/api/v1/devices"]["get"]["responses"]
    healthz = doc["paths"]["/healthz"]["get"]
    assert healthz["security"] == [] and "401" not in healthz["responses"]
    assert doc["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}


@pytest.mark.peer
async def test_the_page_sends_the_token_of_its_url(tmp_path, chromium):
    async with context(tmp_path, status_token=STATUS_TOKEN) as ctx, serve(ctx) as daemon:
        async with open_page(chromium, f"{daemon.url}/status#token={STATUS_TOKEN}") as page:
            assert await page.loaded() == "ok"
            dom = await page.dom()
            html = await page.evaluate("document.documentElement.outerHTML")
            assert page.errors() == []
    assert texts(dom, "//*[@id='fleet-rate']") == ["25.00%"]
    assert STATUS_TOKEN not in html


@pytest.mark.peer
async def test_a_token_refused_under_an_open_page_is_reported_and_the_data_kept(tmp_path, chromium):
    """The daemon restarted with another status token: the open page's next refresh is
    refused (401) and says so, with the last data still on screen."""
    async with context(tmp_path, status_token=STATUS_TOKEN) as ctx, serve(ctx) as daemon:
        async with open_page(chromium, f"{daemon.url}/status?refresh=2#token={STATUS_TOKEN}") as page:
            assert await page.wait_for_state("ok") == "ok"
            await daemon.stop()
            await daemon.start(replace(ctx, status_token=SecretStr("a-new-token")))
            await page.wait_until("document.getElementById('problem').textContent.startsWith('访问令牌')")
            dom = await page.dom()
    message = " ".join(dom.xpath("//*[@id='problem']")[0].text_content().split())
    assert message.startswith("访问令牌缺失或错误") and "以下为" in message
    assert texts(dom, "//*[@id='fleet-rate']") == ["25.00%"]
    assert dom.get("data-state") is None and dom.xpath("//body")[0].get("data-state") == "error"


async def test_page_headers_forbid_inline_scripts_referrers_caching_and_framing(tmp_path):
    async with context(tmp_path) as ctx, serve(ctx) as daemon, aiohttp.ClientSession() as http:
        async with http.get(daemon.url + "/status") as resp:
            assert resp.status == 200 and resp.content_type == "text/html" and resp.charset == "utf-8"
            headers = resp.headers
            html = await resp.text()
        async with http.get(daemon.url + "/status/status.js") as resp:
            assert resp.content_type == "text/javascript" and "textContent" in await resp.text()
        doc = await api_json(http, daemon.url + "/api/v1/openapi.json")
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert headers["Referrer-Policy"] == "no-referrer" and headers["Cache-Control"] == "no-store"
    assert headers["X-Frame-Options"] == "DENY"
    assert 'data-online-target-pct="95"' in html and 'data-rtt-limit-ms="200"' in html and "{{" not in html
    page = doc["paths"]["/status"]["get"]
    assert list(page["responses"]["200"]["content"]) == ["text/html"]
    assert [p["name"] for p in page["parameters"]] == ["lang", "refresh"]  # the token travels after the #
    assert page["security"] == []  # the page is static: open


async def test_devices_report_since_when_they_are_in_their_state(tmp_path):
    async with context(tmp_path) as ctx, serve(ctx) as daemon, aiohttp.ClientSession() as http:
        devices = {d["id"]: d for d in (await api_json(http, daemon.url + "/api/v1/devices"))["devices"]}
    l1 = devices["L1"]
    assert l1["since_ns"] == ctx.snapshot().since["L1"]
    assert datetime.fromisoformat(l1["since"]) - datetime.fromtimestamp(l1["since_ns"] // 1000 / 1e6, timezone.utc) \
        == timedelta(0)
    assert devices["C3"]["since"] is None and devices["C3"]["since_ns"] is None  # never decided


async def test_the_server_refuses_open_reads_when_a_status_token_is_configured(tmp_path):
    cfg = ApiConfig.model_construct(enabled=True, listen="127.0.0.1", port=0, token=None,
                                    status_token=SecretStr(STATUS_TOKEN))
    async with context(tmp_path) as ctx:
        assert ctx.status_token is None
        with pytest.raises(ValueError, match="open reads"):
            ApiServer(cfg, ctx)


# --- config --------------------------------------------------------------------------------------


def test_status_token_comes_from_env_or_file_and_differs_from_the_write_token(tmp_path, monkeypatch):
    monkeypatch.setenv("FLEETMON_API_TOKEN", WRITE_TOKEN)
    monkeypatch.setenv("FLEETMON_STATUS_TOKEN", STATUS_TOKEN)
    (tmp_path / "status-token").write_text(STATUS_TOKEN + "\n", encoding="utf-8")
    from_env = ApiConfig(token_env="FLEETMON_API_TOKEN", status_token_env="FLEETMON_STATUS_TOKEN")
    from_file = ApiConfig(status_token_file=tmp_path / "status-token")
    assert from_env.status_token.get_secret_value() == from_file.status_token.get_secret_value() == STATUS_TOKEN
    assert STATUS_TOKEN not in repr(from_env) and STATUS_TOKEN not in from_env.model_dump_json()
    assert ApiConfig().status_token is None


@pytest.mark.parametrize(("data", "message"), [
    ({"status_token": STATUS_TOKEN}, "'status_token' must not be written in the config"),
    ({"status_token_env": "A", "status_token_file": "/x"}, "not both"),
    ({"status_token_env": "FLEETMON_UNSET_VARIABLE"}, "is not set"),
    ({"token_env": "FLEETMON_API_TOKEN", "status_token_env": "FLEETMON_API_TOKEN"}, "must differ from token"),
])
def test_status_token_config_errors(data, message, monkeypatch):
    monkeypatch.setenv("FLEETMON_API_TOKEN", WRITE_TOKEN)
    with pytest.raises(ValidationError, match=message) as caught:
        ApiConfig.model_validate(data)
    assert WRITE_TOKEN not in str(caught.value)
