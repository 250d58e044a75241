"""Reports from a short lab run of the daemon (root: network namespaces; peer: a real influxd):
real ICMP to a small fleet with a slow site and a lossy one, a camera taken down mid-run. While
it runs, the daily report of the run so far comes from GET /api/v1/reports/daily and is read
back (XLSX with openpyxl, PDF with pdftotext) against GET /api/v1/availability of the same
period, the fault the daemon raised and the ICMP results in InfluxDB; and the schedule in the
daemon makes yesterday's report at start and sends it to the WeCom group (simulator)."""

from __future__ import annotations

import io
import shutil
import subprocess
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import yaml
from openpyxl import load_workbook

from lab.fleet import Impairments, build_small_fleet
from lab.wecom import WeComSimulator
from tests.plugins.daemon import running_daemon, until
from tests.test_reports_cli_api import sheet_column

pytestmark = [pytest.mark.root, pytest.mark.peer,
              pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")]
ZONE = ZoneInfo("Asia/Shanghai")


def write_config(tmp_path, fleet, influx_url: str, db: str, wecom: WeComSimulator, key: str):
    fleet.write_point_list(tmp_path / "points.csv")
    (tmp_path / "wecom.key").write_text(key)
    doc = {
        "inventory": {"point_lists": ["points.csv"]},
        # A miss is confirmed by one re-probe, as the shipped config does: with 3 echoes at the
        # lossy site's 20 % loss, a probe misses 0.8 % of the time, a false down in ~15 % of runs.
        "probes": {"icmp": {"interval_s": 1.0, "count": 3, "echo_interval_ms": 50, "timeout_s": 0.4,
                            "confirm": {"count": 1, "spacing_s": 0.0}},
                   **{name: {"enabled": False} for name in ("rtsp", "onvif", "snmp")}},
        "scheduler": {"spread": 0.2},
        "state": {"database": "state.db", "down_after": 1, "up_after": 1},
        "influxdb": {"url": influx_url, "database": db, "flush_interval_s": 0.2, "retry": {"initial_s": 0.2, "max_s": 1}},
        "rules": [{"type": "device_down", "name": "down", "for_s": 0}],
        "notify": {"routes": [{"type": "wecom", "name": "duty", "url": wecom.url, "key_file": "wecom.key",
                               "min_severity": "critical"}]},
        "api": {"port": 0},
        "reports": {"directory": "reports", "formats": ["xlsx"], "schedule": [{"report": "daily", "at": "00:00"}],
                    "delivery": {"wecom": ["duty"]}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def local(ns: int) -> str:
    return datetime.fromtimestamp(ns // 10**9, ZONE).strftime("%Y-%m-%d %H:%M:%S")


async def test_reports_from_a_lab_run_of_the_daemon(labnet, influx, influx_db, tmp_path):
    fleet = build_small_fleet(labnet(), impaired=Impairments(slow=1, lossy=1, dark=0), seed=3)
    camera = next(d for d in fleet.devices if d.kind.value == "camera" and d.counted)
    async with WeComSimulator() as wecom:
        key = wecom.add_robot()
        path = write_config(tmp_path, fleet, influx.url, influx_db, wecom, key)
        started = time.time_ns()
        async with running_daemon(path) as d:
            # The schedule: yesterday's daily report, due since 00:00, made at start and sent.
            await until(lambda: (tmp_path / "reports").is_dir() and list((tmp_path / "reports").glob("daily_*.xlsx")),
                        60, "the scheduled report")
            await until(lambda: [m for m in wecom.messages(key) if m.msgtype == "markdown"], 30, "its summary")
            await until(lambda: d.snapshot.cycle.cycle >= 4, 20, "four cycles")
            fleet.fail(camera.id)
            await until(lambda: any(f.device_id == camera.id and f.fired_ns for f in d._alerting.faults.open_faults()),
                        15, "the camera's fault")
            failed = time.time_ns()
            await until(lambda: time.time_ns() - failed > 10 * 10**9, 20, "ten seconds more")
            # The run so far, to a moment long enough ago (5 s: several heartbeats and cycles) that
            # nothing about it is still to be written: both answers read the same evidence.
            period = f"{local(started)}..{local(time.time_ns() - 5 * 10**9)}"
            base = f"http://127.0.0.1:{d.api.port}"
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{base}/api/v1/reports/daily", params={"period": period, "format": "xlsx"}) as r:
                    assert r.status == 200, await r.text()
                    xlsx = await r.read()
                async with http.get(f"{base}/api/v1/reports/daily", params={"period": period}) as r:
                    assert r.status == 200 and r.content_type == "application/pdf"
                    pdf = await r.read()
                async with http.get(f"{base}/api/v1/availability", params={"period": period, "scope": "region"}) as r:
                    regions = await r.json()
                async with http.get(f"{base}/api/v1/availability", params={"period": period}) as r:
                    whole = await r.json()

    # The scheduled report reached the group: the file, then the summary.
    [kept] = list((tmp_path / "reports").glob("daily_*.xlsx"))
    [upload] = wecom.uploads(key)
    assert upload.filename == kept.name and upload.data == kept.read_bytes()
    assert "**巡检日报**" in [m for m in wecom.messages(key) if m.msgtype == "markdown"][0].content

    # Availability: the report's regions are the API's, to the last digit.
    fleet_rate = whole["groups"][0]["figures"]["rate_pct"]
    assert 0 < fleet_rate < 100
    rates = {g["group"]: g["figures"]["rate_pct"] / 100 for g in regions["groups"]}
    names = sheet_column(xlsx, "区域在线率", "区域")
    assert names == ["全部"] + sorted(rates)
    assert sheet_column(xlsx, "区域在线率", "在线率") == [fleet_rate / 100] + [rates[n] for n in names[1:]]

    # The camera taken down: offline at the end, with its fault.
    assert sheet_column(xlsx, "离线点位", "点位编号") == [camera.id]
    assert camera.id in sheet_column(xlsx, "故障记录", "设备")

    # Line quality from InfluxDB: the slow site's line over 200 ms, the lossy one's loss.
    verdicts = dict(zip(sheet_column(xlsx, "链路质量", "设备"), sheet_column(xlsx, "链路质量", "结论")))
    rtt = dict(zip(sheet_column(xlsx, "链路质量", "设备"), sheet_column(xlsx, "链路质量", "平均时延(ms)")))
    links = [d for d in fleet.devices if d.kind.value == "link"]
    slow = [d for d in links if fleet.net.behaviour(d.site).delay_ms >= 200]
    lossy = [d for d in links if fleet.net.behaviour(d.site).loss_pct > 0]
    assert slow and lossy
    assert all("时延超限" in verdicts[d.id] and rtt[d.id] > 200 for d in slow)
    assert all("丢包" in verdicts[d.id] for d in lossy)
    assert sum(1 for v in verdicts.values() if v == "正常") >= 1
    assert load_workbook(io.BytesIO(xlsx)).sheetnames[0] == "概览"

    (tmp_path / "daily.pdf").write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "daily.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "巡检日报" in text and camera.id in text and "时延超限" in text
