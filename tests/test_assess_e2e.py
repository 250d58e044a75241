"""The assessment end to end with the daemon and the lab: a camera goes down in the lab (real
ICMP in network namespaces) → its fault fires → a work order opens by itself → the SLA warning
and then the breach reach the WeCom group (robot simulator) → the duty engineer acknowledges,
arrives and restores through the HTTP API with their own token (recorded as them) → the
camera comes back → the fault resolves and the order closes → `fleetmon score` (read-only,
beside the running daemon) and GET /api/v1/availability give the camera's down time as the lab
saw it.

A tiny SLA policy keeps it short: response within 20 s, warned at 50 %.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import AsyncIterator
from urllib.parse import quote
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import yaml

from lab.fleet import build_small_fleet
from lab.wecom import WeComSimulator
from monitor.assess.orders import FLEETMON, Source
from monitor.core.model import Kind
from tests.plugins.daemon import running_daemon, until

pytestmark = pytest.mark.root
REPO = Path(__file__).resolve().parent.parent
SH = ZoneInfo("Asia/Shanghai")
ENGINEER = "张工"


@pytest.fixture
async def wecom() -> AsyncIterator[WeComSimulator]:
    async with WeComSimulator() as sim:
        yield sim


def local(ts: float) -> str:
    return datetime.fromtimestamp(ts, SH).strftime("%Y-%m-%d %H:%M:%S")


async def test_fault_order_warning_breach_arrival_restore_close_then_the_score_of_what_the_lab_did(
        labnet, wecom, tmp_path):
    fleet = build_small_fleet(labnet())
    camera = next(d for d in fleet.devices if d.kind is Kind.CAMERA and d.counted)
    key = wecom.add_robot()
    fleet.write_point_list(tmp_path / "points.csv")
    (tmp_path / "wecom.key").write_text(key)
    (tmp_path / "zhang.token").write_text("token-of-zhang-gong-0123456789")
    doc = {
        "inventory": {"point_lists": ["points.csv"]},
        # ICMP only: the lab's cameras serve no RTSP here, so "online" is the network basis.
        "probes": {"icmp": {"interval_s": 1.0, "count": 1, "timeout_s": 0.3, "echo_interval_ms": 50},
                   "rtsp": {"enabled": False}},
        "scheduler": {"spread": 0.2},
        "state": {"database": "state.db", "down_after": 1, "up_after": 1},
        "influxdb": {"enabled": False},
        "api": {"port": 0, "people": [{"name": ENGINEER, "token_file": "zhang.token", "roles": ["duty"]}]},
        "rules": [{"type": "device_down", "name": "down"}],
        "notify": {"routes": [{"type": "wecom", "name": "duty", "url": wecom.url, "key_file": "wecom.key",
                               "msgtype": "text"}]},
        "assessment": {
            "workorders": {"open_on": [{"rules": ["down"]}], "routes": ["duty"], "auto_close": "close", "tick_s": 1},
            "sla": {"policies": [{"clocks": {"response": {"within": "20s"}, "arrival": {"within": "60s"},
                                             "restore": {"within": "120s"}}}],
                    "warn_at_pct": 50},
            "score": {"scheme": "qionglai", "fee_per_period_yuan": 250000},
        },
    }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")

    def texts() -> list[str]:
        return [m.content for m in wecom.messages(key)]

    started = time.time()
    async with running_daemon(config) as d:
        book = d.workorders
        assert book is not None and d.api is not None
        fleet.fail(camera.id, cascade=False)
        down_at = fleet.net.down_since(camera.address)
        (order,) = await until(book.open_orders, 10, "the work order of the camera's fault")
        assert order.source is Source.FAULT and order.devices == (camera.id,) and order.reported_by == FLEETMON
        await until(lambda: len(texts()) >= 1, 10, "the fault's message")
        assert f"{camera.name}" in texts()[0] and "离线" in texts()[0]
        await until(lambda: len(texts()) >= 2, 15, "the SLA warning")
        assert texts()[1].splitlines()[0].startswith(f"【时限预警·一般】工单{order.ref} 响应时限将到（已用5")
        await until(lambda: len(texts()) >= 3, 15, "the SLA breach")
        assert texts()[2].splitlines()[0].startswith(f"【已超时·一般】工单{order.ref} 响应已超时")

        async with aiohttp.ClientSession(headers={"Authorization": "Bearer token-of-zhang-gong-0123456789"}) as http:
            for action in ("acknowledge", "arrive", "restore"):
                url = f"http://127.0.0.1:{d.api.port}/api/v1/workorders/{order.ref}/{action}"
                async with http.post(url, json={}) as resp:
                    assert resp.status == 200, await resp.text()
        fleet.restore(camera.id, cascade=False)
        restored_at = time.time()
        closed = await until(lambda: not book.open_orders() and book, 15, "the order closed by the fault's end")
        order = await closed.get(order.ref)
        assert order.closed_by == FLEETMON and order.restored_by == ENGINEER and order.arrived_by == ENGINEER
        assert [(c.clock.value, c.state.value) for c in book.countdown(order)] == [
            ("response", "missed"), ("arrival", "met"), ("restore", "met")]
        await until(lambda: len(texts()) >= 4, 10, "the fault's resolution")
        assert texts()[3].startswith("【已恢复】")

        end = restored_at + 3
        await asyncio.sleep(end + 1 - time.time())  # the period has ended: every reader sees the same one
        period = f"{local(started - 60)}..{local(end)}"
        score = subprocess.run(
            [sys.executable, "-m", "monitor.app.cli", "score", "--period", period, "--json", "-c", str(config)],
            capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert score.returncode == 0, score.stderr
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{d.api.port}/api/v1/availability?period={quote(period)}&kind=camera&points=true"
            async with http.get(url) as resp:
                assert resp.status == 200
                availability = await resp.json()
    assert len(texts()) == 4  # nothing else, nothing twice

    truth_s = restored_at - down_at
    points = {p["id"]: p for p in availability["points"]}
    seen = points[camera.id]["figures"]
    assert seen["down_s"] == pytest.approx(truth_s, abs=2.5)  # one probe interval and its timeout at each end
    assert [p for p, v in points.items() if v["figures"] and v["figures"]["offline_s"]] == [camera.id]
    (cameras,) = availability["groups"]
    online = {i["key"]: i for i in json.loads(score.stdout)["items"]}["online_rate"]["metric"]
    assert online["numerator"] * 60 == pytest.approx(cameras["figures"]["up_s"], abs=1e-3)
    assert online["denominator"] * 60 == pytest.approx(cameras["figures"]["counted_s"], abs=1e-3)
    (evidence,) = [e for e in online["evidence"] if e["outcome"] == "down"]
    assert evidence["ref"] == camera.id and evidence["minutes"] * 60 == pytest.approx(seen["down_s"], abs=1e-3)
    arrival = {i["key"]: i for i in json.loads(score.stdout)["items"]}["arrival"]["metric"]
    assert (arrival["numerator"], arrival["denominator"], arrival["evidence"][0]["outcome"]) == (1, 1, "timely")
