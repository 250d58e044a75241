"""A camera's picture on the phone page (issue 17, deliverable 3): an open video-quality fault
(画面冻结 …) shows the camera's latest thumbnail with its time ("画面截图 12:03"), fetched from
GET /api/v1/thumbnails/{id} behind the read token (a bearer header, as every read of the page),
as a blob shown through an object URL; 404 with a JSON reason when there is none; ids checked
against the point list (no path leaves the folder).

Real peers: ApiServer on loopback with a status token, FaultBook on a real SQLite state
database, thumbnails written by the frame check's own ThumbnailStore from the lab's scene
(lab/vqd_streams.py), headless Chromium at 390 CSS px (its full-page PNG goes to
artifacts/phone-vqd-390.png, a copy kept as docs/phone-vqd-390.png).
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest
from pydantic import SecretStr

from monitor.app.api import ApiContext
from monitor.app.api_thumbs import NO_THUMBNAILS
from monitor.app.config import FleetmonConfig
from monitor.state.db import StateDB
from rules.alerting.faults import FaultBook
from rules.alerting.maintenance import MaintenanceBook
from rules.model import Severity
from tests.test_status_page import (
    CHROMIUM, INVENTORY, REPO, S, STATUS_TOKEN, Chromium, cls, condition, serve, shown_since, snapshot, texts,
)

ARTIFACTS = REPO / "artifacts"
MIN = 60 * S
# C7 (北河桥头, up, video up) froze 7 minutes ago and has a picture; C3 (城关广场) is too dark
# and has none yet; C1 has a picture but its fault (device_down) is no video-quality fault.
VQD_CONDITIONS = [
    condition("video-frozen", "device:C7", Severity.MAJOR, "摄像机北河桥头画面冻结（评分0.98）", kind="video_frozen",
              device_id="C7", site="北河站", region="北河镇"),
    condition("video-dark", "device:C3", Severity.MINOR, "摄像机城关广场画面过暗（评分0.81）", kind="video_dark",
              device_id="C3", site="城关广场站", region="城关镇"),
    condition("device-down", "device:C1", Severity.MINOR, "摄像机城关路口东离线", device_id="C1", site="城关站",
              region="城关镇"),
]


def lab_thumbnails(folder: Path, taken_ns: int) -> dict[str, bytes]:
    """Thumbnails of C7 and C1 written by the frame check's store from the lab's colour scene,
    dated `taken_ns`; returns their bytes."""
    import cv2

    from lab.vqd_streams import write_scenes
    from probes.vqd.thumbs import ThumbnailStore

    scene = cv2.imread(str(write_scenes(folder.parent / "scenes")[0]), cv2.IMREAD_COLOR)
    store = ThumbnailStore(folder, max_count=10, max_bytes=1 << 20)
    out = {}
    for camera in ("C7", "C1"):
        path = store.put(camera, scene)
        os.utime(path, ns=(taken_ns, taken_ns))
        out[camera] = path.read_bytes()
    return out


@asynccontextmanager
async def vqd_context(tmp_path: Path, thumbnails: Path | None) -> AsyncIterator[ApiContext]:
    now = time.time_ns()
    async with StateDB(tmp_path / "state.db") as db:
        maintenance = await MaintenanceBook.load(db, INVENTORY, [])
        faults = await FaultBook.load(db, INVENTORY, [], maintenance)
        await faults.apply({c.key: c for c in VQD_CONDITIONS}, now - 9 * MIN)
        snap = snapshot(now)
        yield ApiContext(
            inventory=INVENTORY, snapshot=lambda: snap, faults=faults, maintenance=maintenance, token=None,
            language="zh", timezone="Asia/Shanghai", started_ns=now - 600 * S, cycle_interval_s=30.0,
            status_token=SecretStr(STATUS_TOKEN), thumbnails=thumbnails,
        )


BEARER = {"Authorization": f"Bearer {STATUS_TOKEN}"}


async def test_thumbnails_are_a_read_behind_the_token_and_404_with_a_reason(tmp_path):
    taken = time.time_ns() - 7 * MIN
    folder = tmp_path / "thumbnails"
    pictures = lab_thumbnails(folder, taken)
    (tmp_path / "secret.jpg").write_bytes(b"\xff\xd8 not for you")
    async with vqd_context(tmp_path, folder) as ctx, serve(ctx) as daemon, aiohttp.ClientSession() as http:
        base = daemon.url + "/api/v1/thumbnails/"

        async def get(path: str, headers: dict[str, str] | None = None) -> tuple[int, str, bytes, str | None]:
            async with http.get(base + path, headers=headers) as resp:
                return resp.status, resp.content_type, await resp.read(), resp.headers.get("Last-Modified")

        ok = await get("C7", BEARER)
        no_token = await get("C7")
        in_query = await get(f"C7?token={STATUS_TOKEN}")
        none_yet = await get("C3", BEARER)
        unknown = await get("C77", BEARER)
        # Ways out of the folder: encoded slashes, dot segments, the name of a file beside it.
        escapes = [await get(p, BEARER) for p in ("..%2Fsecret", "..%2F..%2Fetc%2Fpasswd", "..", "%2E%2E",
                                                   "C7%2F..%2F..%2Fsecret", "secret")]
        async with http.get(daemon.url + "/api/v1/thumbnails/../secret.jpg", headers=BEARER) as resp:
            dotted = resp.status
        doc = await (await http.get(daemon.url + "/api/v1/openapi.json")).json()
    async with vqd_context(tmp_path / "off", None) as ctx, serve(ctx) as daemon, aiohttp.ClientSession() as http:
        async with http.get(daemon.url + "/api/v1/thumbnails/C7", headers=BEARER) as resp:
            off = resp.status, await resp.json()

    status, media, body, modified = ok
    assert (status, media, body) == (200, "image/jpeg", pictures["C7"]) and body[:2] == b"\xff\xd8"
    assert modified is not None and parsedate_to_datetime(modified) == datetime.fromtimestamp(taken // S, timezone.utc)
    assert no_token[0] == 401 and no_token[1] == "application/json"
    assert in_query[0] == 400 and b"Authorization" in in_query[2]
    assert none_yet[0] == 404 and b"no thumbnail of C3 yet" in none_yet[2]
    assert unknown[0] == 404 and unknown[2] == b'{"error":"no such point"}'
    for status, media, body, _ in escapes:
        assert status == 404 and media == "application/json" and b"not for you" not in body and b"root:" not in body
    assert dotted == 404
    assert off == (404, {"error": NO_THUMBNAILS})
    route = doc["paths"]["/api/v1/thumbnails/{device_id}"]["get"]
    assert list(route["responses"]["200"]["content"]) == ["image/jpeg"]
    assert route["security"] == [{"bearer": []}] and {"401", "404"} <= set(route["responses"])


def test_thumbnails_are_kept_beside_the_state_database_when_vqd_is_on(tmp_path):
    on = FleetmonConfig.model_validate({
        "state": {"database": str(tmp_path / "var" / "state.db")},
        "probes": {"rtsp_frame": {"enabled": True, "vqd": {"enabled": True}}},
    })
    chosen = FleetmonConfig.model_validate({
        "probes": {"rtsp_frame": {"enabled": True, "vqd": {"enabled": True}, "thumbnail_dir": str(tmp_path / "t")}},
    })
    off = FleetmonConfig.model_validate({"probes": {"rtsp_frame": {"enabled": True}}})
    assert on.probes.rtsp_frame.thumbnail_dir == tmp_path / "var" / "thumbnails"
    assert chosen.probes.rtsp_frame.thumbnail_dir == tmp_path / "t"
    assert off.probes.rtsp_frame.thumbnail_dir is None
    assert FleetmonConfig().probes.rtsp_frame.thumbnail_dir is None  # the shared default is left alone


def test_wecom_routes_send_the_frame_checks_thumbnails_unless_they_name_their_own(tmp_path, monkeypatch):
    monkeypatch.setenv("K", "robot-key")

    def routes(vqd: bool) -> dict:
        cfg = FleetmonConfig.model_validate({
            "state": {"database": str(tmp_path / "var" / "state.db")},
            "probes": {"rtsp_frame": {"enabled": True, "vqd": {"enabled": vqd}}},
            "notify": {"routes": [
                {"type": "wecom", "name": "duty", "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send",
                 "key_env": "K"},
                {"type": "wecom", "name": "own", "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send",
                 "key_env": "K", "thumbnail_dir": str(tmp_path / "mine")},
                {"type": "webhook", "name": "hook", "url": "https://ops.example.cn/alerts"},
            ]},
        })
        return {r.name: getattr(r, "thumbnail_dir", "n/a") for r in cfg.notify.routes}

    assert routes(vqd=True) == {"duty": tmp_path / "var" / "thumbnails", "own": tmp_path / "mine", "hook": "n/a"}
    assert routes(vqd=False) == {"duty": None, "own": tmp_path / "mine", "hook": "n/a"}


@pytest.fixture
def chromium(tmp_path):
    with Chromium(tmp_path / "chromium") as browser:
        yield browser


@pytest.mark.peer
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
async def test_a_video_quality_fault_shows_the_cameras_picture_and_its_time(tmp_path, chromium):
    taken = time.time_ns() - 7 * MIN
    folder = tmp_path / "thumbnails"
    lab_thumbnails(folder, taken)
    width = 390
    async with vqd_context(tmp_path, folder) as ctx, serve(replace(ctx)) as daemon, aiohttp.ClientSession() as http:
        async with http.put(f"http://127.0.0.1:{chromium.port}/json/new?about:blank") as resp:
            target = await resp.json(content_type=None)
        async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=256 * 1024 * 1024) as ws:
            from tests.test_status_page import Page

            page = Page(ws)
            await page.send("Emulation.setDeviceMetricsOverride", width=width, height=844, deviceScaleFactor=2,
                            mobile=True)
            for domain in ("Page", "Runtime", "Log"):
                await page.send(f"{domain}.enable")
            await page.send("Page.navigate", url=f"{daemon.url}/status#token={STATUS_TOKEN}")
            assert await page.loaded() == "ok"
            # The picture arrives after the first drawing: wait until it is decoded.
            await page.wait_until("(() => { const i = document.querySelector('#faults figure.thumb img');"
                                  " return i && i.complete && i.naturalWidth > 0; })()")
            drawn = await page.evaluate(
                "(() => { const i = document.querySelector('#faults figure.thumb img');"
                " return [i.src.slice(0, 5), i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width,"
                " document.documentElement.scrollWidth]; })()")
            dom = await page.dom()
            height = (await page.send("Page.getLayoutMetrics"))["cssContentSize"]["height"]
            shot = await page.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                                   clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1})
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / "phone-vqd-390.png").write_bytes(base64.b64decode(shot["data"]))
            # The next refresh (15 s away) is not awaited; a redraw of the faults keeps the picture.
            await page.evaluate("document.getElementById('lang').click()")
            await asyncio.sleep(0.2)
            english = await page.evaluate(
                "[...document.querySelectorAll('#faults figure.thumb figcaption')].map((e) => e.textContent)")
            errors = page.errors()

    # Chromium logs every 404 it loads: C3's (no picture yet) is the page asking, not a fault of
    # it; anything else (a CSP refusal of the blob: URL, an exception) is.
    asked = [e for e in errors if e["method"] == "Log.entryAdded" and "status of 404" in e["params"]["entry"]["text"]
             and e["params"]["entry"].get("url", "").endswith("/api/v1/thumbnails/C3")]
    assert asked and [e for e in errors if e not in asked] == []
    figures = dom.xpath(f"//section[@id='faults']//li[{cls('fault')}]//figure[{cls('thumb')}]")
    assert [f.get("data-device") for f in figures] == ["C7"]  # C3: no picture yet; C1: not a picture fault
    assert texts(figures[0], ".//figcaption") == [f"画面截图 {shown_since(taken)}"]
    item = figures[0].getparent()
    assert texts(item, f".//span[{cls('title')}]") == ["摄像机北河桥头画面冻结（评分0.98）"]
    src, natural_w, natural_h, shown_w, scroll = drawn
    assert src == "blob:" and (natural_w, natural_h) == (320, 240)  # the store's 320 px, the scene's 4:3
    assert 0 < shown_w <= 320 and scroll == width
    assert english == [f"picture of {shown_since(taken)}"]
