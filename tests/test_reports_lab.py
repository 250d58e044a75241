"""The daily report from a short lab run of the daemon (root: network namespaces; peer: a real
influxd): real ICMP to a small fleet with a slow site and a lossy one, a camera taken down
mid-run; then today's report (counted up to now) read back — the XLSX with openpyxl, the PDF
with pdftotext — against availability() over the same state database, the fault the daemon
raised, and the ICMP results in InfluxDB."""

from __future__ import annotations

import io
import shutil
import subprocess
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import yaml
from openpyxl import load_workbook

from lab.fleet import Impairments, build_small_fleet
from monitor.app.config import load_config
from monitor.assess.availability import ALL, availability
from monitor.assess.config import AvailabilityAssessmentConfig
from monitor.assess.config_workorders import SlaConfig, WorkOrderConfig
from monitor.assess.periods import parse_period
from monitor.assess.sla import Sla
from monitor.assess.workorders import WorkOrderBook
from monitor.core.model import Basis
from monitor.fleet.inventory import load_inventory
from monitor.metrics.results import InfluxResults
from monitor.reports.content import build
from monitor.reports.content.gather import Sources, gather
from monitor.reports.render import render
from monitor.state.db import StateDB
from tests.plugins.daemon import running_daemon, until
from tests.test_reports_content import column

pytestmark = [pytest.mark.root, pytest.mark.peer,
              pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")]


def write_config(tmp_path, fleet, influx_url: str, db: str):
    fleet.write_point_list(tmp_path / "points.csv")
    doc = {
        "inventory": {"point_lists": ["points.csv"]},
        "probes": {"icmp": {"interval_s": 1.0, "count": 3, "echo_interval_ms": 50, "timeout_s": 0.4},
                   **{name: {"enabled": False} for name in ("rtsp", "onvif", "snmp")}},
        "scheduler": {"spread": 0.2},
        "state": {"database": "state.db", "down_after": 1, "up_after": 1},
        "influxdb": {"url": influx_url, "database": db, "flush_interval_s": 0.2, "retry": {"initial_s": 0.2, "max_s": 1}},
        "rules": [{"type": "device_down", "name": "down", "for_s": 0}],
        "api": {"port": 0},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


async def test_todays_daily_report_from_a_lab_run(labnet, influx, influx_db, tmp_path):
    fleet = build_small_fleet(labnet(), impaired=Impairments(slow=1, lossy=1, dark=0), seed=3)
    path = write_config(tmp_path, fleet, influx.url, influx_db)
    camera = next(d for d in fleet.devices if d.kind.value == "camera" and d.counted)
    async with running_daemon(path) as d:
        await until(lambda: d.snapshot.cycle.cycle >= 4, 20, "four cycles")
        fleet.fail(camera.id)
        await until(lambda: any(f.device_id == camera.id for f in d._alerting.faults.open_faults()
                                if f.fired_ns is not None), 15, "the camera's fault")
        start = d.snapshot.cycle.cycle
        await until(lambda: d.snapshot.cycle.cycle >= start + 3, 20, "three more cycles")
    cfg = load_config(path)
    inventory = load_inventory(cfg)
    zone = ZoneInfo(cfg.timezone)
    now = time.time_ns()
    today = parse_period(datetime.fromtimestamp(now / 1e9, zone).date().isoformat(), cfg.timezone, now)
    async with StateDB(cfg.state.database) as db:
        book = await WorkOrderBook.load(db, inventory, WorkOrderConfig(), Sla.from_config(SlaConfig(), cfg.timezone))
        src = Sources(db, inventory, book, AvailabilityAssessmentConfig(), cfg.availability.online_requires,
                      cfg.timezone, cfg.language, icmp=InfluxResults(cfg.influxdb))
        facts = await gather("daily", today, src, now_ns=now)
        expected = await availability(db, inventory, today, AvailabilityAssessmentConfig(),
                                      online_requires=cfg.availability.online_requires)
    report = build(facts)
    xlsx = render(report, "xlsx")

    # Availability: the regions of the report are availability()'s, to the last digit.
    fleet_rate = expected.group().figures[Basis.ONLINE].rate_pct
    assert 0 < fleet_rate < 100
    regions = [g for g in expected.groups if g.scope == "region" and g.kind == ALL]
    assert column(xlsx, report, "区域在线率", "online") == [fleet_rate / 100] + [
        g.figures[Basis.ONLINE].rate_pct / 100 for g in regions]
    assert report.part("区域在线率").note.startswith("本期尚未结束，统计截至")

    # The camera taken down: offline at the end, with its fault.
    assert column(xlsx, report, "离线点位", "id") == [camera.id]
    faults = report.part("故障记录")
    assert camera.id in faults.column("device") and "未恢复" in faults.column("state")

    # Line quality from InfluxDB: the slow site's line over 200 ms, the lossy one's loss.
    links = report.part("链路质量")
    verdicts = dict(zip(links.column("id"), links.column("verdict")))
    slow = [d for d in fleet.devices if d.kind.value == "link" and fleet.net.behaviour(d.site).delay_ms >= 200]
    lossy = [d for d in fleet.devices if d.kind.value == "link" and fleet.net.behaviour(d.site).loss_pct > 0]
    assert slow and lossy
    for d in slow:
        assert "时延超限" in verdicts[d.id]
    for d in lossy:
        assert "丢包" in verdicts[d.id]
    rtt = dict(zip(links.column("id"), links.column("rtt_mean")))
    assert all(rtt[d.id] > 200 for d in slow)
    assert sum(1 for v in verdicts.values() if v == "正常") >= 1

    wb = load_workbook(io.BytesIO(xlsx))
    assert wb.sheetnames[0] == "概览"
    pdf = tmp_path / "daily.pdf"
    pdf.write_bytes(render(report, "pdf"))
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "巡检日报" in text and camera.id in text and "时延超限" in text
