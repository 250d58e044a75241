"""The assessment in the product: `fleetmon availability / score / spot-check / long-offline`
(the console script, on a read-only connection to the state database) and the same answers
from the HTTP API, on a hand-made 10-hour history with hand-computed figures.

The history (config zone Asia/Shanghai, period 2026-11-02 00:00 – 10:00, ICMP only, so
"online" is the network basis):

    SW1 switch  S1/R1  down 05:00–05:30 (C1, C2 behind it unreachable)
    C1  camera  S1/R1  down 01:00–02:00           order B: arrived 01:25 (in time), replaced, restored
    C2  camera  S1/R1  down 06:00–09:00           order C: arrived 08:00 (late: arrival within 1 h)
    C3  camera  S2/R2  down 03:00–05:00           order A: cause 电力 (excluded) 03:00–05:00
    C4  camera  S2/R2  延建 (construction): out of the assessment
    U1  ups     S2/R2  down from 09:00, never back (offline for weeks: long-offline)

Cameras: up 8.5 + 6.5 + 8 = 23 h of 10 + 10 + 8 = 28 h counted → 82.142857 %; the Qionglai
table: online rate 80 ≤ r < 85 −10, arrival 1 of 2 in time (50 %) −10, replacement 100 %,
other devices 100 % → 80 分, 10 points short × 500 元 = 5,000 元 deducted.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, AsyncIterator
from zoneinfo import ZoneInfo

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from lab.history import SimClock, simulated
from monitor.app.api import ApiContext, create_app
from monitor.app.config import load_config
from monitor.assess.assessment import Assessment
from monitor.assess.model import Cause
from monitor.assess.records import record_inventory_statuses
from monitor.assess.workorders import WorkOrderBook
from monitor.core.config_base import ConfigError
from monitor.fleet.inventory import load_inventory
from monitor.state.db import StateDB, StateDBError
from monitor.state.tracker import State, Transition
from rules.alerting.faults import FaultBook
from rules.alerting.maintenance import MaintenanceBook
from tests.plugins.cli import run_cli

SH = ZoneInfo("Asia/Shanghai")
NS, H, MIN = 10**9, 3600 * 10**9, 60 * 10**9
T0 = int(datetime(2026, 11, 2, tzinfo=SH).timestamp()) * NS
PERIOD = "2026-11-02 00:00..2026-11-02 10:00"
NOW = T0 + 12 * H  # the work-order book's clock: after the period
REPO = Path(__file__).resolve().parent.parent

POINTS = [
    # id, name, kind, address, site, region, parent, status, serial
    ("SW1", "一号交换机", "switch", "198.18.20.1", "S1", "R1", "", "active", ""),
    ("C1", "东门枪机", "camera", "198.18.20.2", "S1", "R1", "SW1", "active", "SN-C1-OLD"),
    ("C2", "西门枪机", "camera", "198.18.20.3", "S1", "R1", "SW1", "active", ""),
    ("C3", "南路口球机", "camera", "198.18.20.4", "S2", "R2", "", "active", ""),
    ("C4", "北路口枪机", "camera", "198.18.20.5", "S2", "R2", "", "construction", ""),
    ("U1", "二号UPS", "ups", "198.18.20.6", "S2", "R2", "", "active", ""),
]
SCORE = {"scheme": "qionglai", "fee_per_period_yuan": 250000}


def write_config(folder: Path, *, language: str = "zh", score: Any = SCORE, **extra: Any) -> Path:
    with open(folder / "points.csv", "w", newline="", encoding="utf-8") as out:
        w = csv.writer(out)
        w.writerow(["id", "name", "kind", "address", "site", "region", "parent", "status", "serial"])
        w.writerows(POINTS)
    assessment: dict[str, Any] = {"sla": {"policies": [{"clocks": {"arrival": {"within": "1h"}}}]}}
    if score is not None:
        assessment["score"] = score
    doc = {
        "language": language, "inventory": {"point_lists": ["points.csv"]}, "state": {"database": "state.db"},
        "influxdb": {"enabled": False}, "availability": {"online_requires": ["network", "video"]},
        "assessment": assessment, **extra,
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def tr(device: str, at: int, old: str, new: str) -> Transition:
    return Transition(device, "icmp", at, State(old), State(new), None)


async def build_history(config: Path) -> None:
    """The history of the module docstring, written through the daemon's own code paths."""
    cfg = load_config(config)
    inventory = load_inventory(cfg)
    clock = SimClock(T0 - H)
    async with StateDB(cfg.state.database) as db:
        with simulated(clock):
            await record_inventory_statuses(db, inventory, T0 - H)
            await db.start_session(len(POINTS))
            await db.record([tr(d[0], T0 - H, "unknown", "up") for d in POINTS if d[7] == "active"])
            await db.record([
                tr("C1", T0 + 1 * H, "up", "down"), tr("C1", T0 + 2 * H, "down", "up"),
                tr("C3", T0 + 3 * H, "up", "down"),
                tr("SW1", T0 + 5 * H, "up", "down"), tr("C1", T0 + 5 * H, "up", "unreachable"),
                tr("C2", T0 + 5 * H, "up", "unreachable"),
                tr("C3", T0 + 5 * H, "down", "up"),
                tr("SW1", T0 + 5 * H + 30 * MIN, "down", "up"), tr("C1", T0 + 5 * H + 30 * MIN, "unreachable", "up"),
                tr("C2", T0 + 5 * H + 30 * MIN, "unreachable", "up"),
                tr("C2", T0 + 6 * H, "up", "down"), tr("C2", T0 + 9 * H, "down", "up"),
                tr("U1", T0 + 9 * H, "up", "down"),
            ])
            clock.now_ns = T0 + 11 * H
            await db.heartbeat()
            await db.end_session()
        book = await WorkOrderBook.load(db, inventory, cfg.assessment.workorders, cfg.assessment.clocks(cfg.timezone),
                                        clock=Clock(NOW))
        a = await book.report(["C3"], by="值班员", title="南路口球机离线", ts_ns=T0 + 3 * H)
        await book.classify(a.ref, by="李经理", cause=Cause.POWER)
        await book.restore(a.ref, by="张工", ts_ns=T0 + 5 * H)
        await book.close(a.ref, by="张工", ts_ns=T0 + 5 * H)
        b = await book.report(["C1"], by="值班员", title="东门枪机离线", ts_ns=T0 + 1 * H)
        await book.acknowledge(b.ref, by="张工", ts_ns=T0 + 1 * H + 5 * MIN)
        await book.arrive(b.ref, by="张工", ts_ns=T0 + 1 * H + 25 * MIN)
        await book.replace(b.ref, by="张工", device_id="C1", old_serial="SN-C1-OLD", new_serial="SN-C1-NEW",
                           ts_ns=T0 + 1 * H + 50 * MIN)
        await book.restore(b.ref, by="张工", ts_ns=T0 + 2 * H)
        await book.close(b.ref, by="张工", ts_ns=T0 + 2 * H)
        c = await book.report(["C2"], by="值班员", title="西门枪机离线", ts_ns=T0 + 6 * H)
        await book.acknowledge(c.ref, by="王工", ts_ns=T0 + 6 * H + 10 * MIN)
        await book.arrive(c.ref, by="王工", ts_ns=T0 + 8 * H)
        await book.restore(c.ref, by="王工", ts_ns=T0 + 9 * H)
        await book.close(c.ref, by="王工", ts_ns=T0 + 9 * H)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with config.yaml, points.csv and the history in state.db."""
    folder = tmp_path_factory.mktemp("assess")
    asyncio.run(build_history(write_config(folder)))
    return folder


def fleetmon_process(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The console script in a real subprocess: for the tests about its exit status."""
    return subprocess.run([sys.executable, "-m", "monitor.app.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})


fleetmon = run_cli  # the same command in this process (tests/plugins/cli.py)


def cli_json(site: Path, *args: str) -> dict[str, Any]:
    result = fleetmon(*args, "--json", "-c", "config.yaml", cwd=site)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@asynccontextmanager
async def served(folder: Path, status_token: str | None = None) -> AsyncIterator[TestClient]:
    """The HTTP API over the folder's state database (read-write, as in the daemon)."""
    cfg = load_config(folder / "config.yaml")
    inventory = load_inventory(cfg)
    async with StateDB(cfg.state.database) as db:
        book = await WorkOrderBook.load(db, inventory, cfg.assessment.workorders, cfg.assessment.clocks(cfg.timezone))
        maintenance = await MaintenanceBook.load(db, inventory, [])
        ctx = ApiContext(
            inventory=inventory, snapshot=lambda: None, faults=await FaultBook.load(db, inventory, [], maintenance),
            maintenance=maintenance, token=None, language="zh", timezone=cfg.timezone, started_ns=0,
            cycle_interval_s=30.0, status_token=SecretStr(status_token) if status_token else None, workorders=book,
            assessment=Assessment(db, inventory, cfg.assessment, book, timezone=cfg.timezone,
                                  online_requires=cfg.availability.online_requires),
        )
        async with TestClient(TestServer(create_app(ctx))) as client:
            yield client


# --- the figures ---------------------------------------------------------------------------------


def test_availability_per_group_and_point_is_the_hand_computed_one(site: Path) -> None:
    doc = cli_json(site, "availability", "--period", PERIOD, "--kind", "camera", "--points")
    (fleet,) = doc["groups"]
    assert (fleet["scope"], fleet["group"], fleet["kind"], fleet["points"]) == ("fleet", "all", "camera", 4)
    f = fleet["figures"]
    assert (f["up_s"], f["offline_s"], f["counted_s"]) == (23 * 3600, 5 * 3600, 28 * 3600)
    assert f["excluded_cause_s"] == 2 * 3600 and f["excluded_status_s"] == 10 * 3600  # C3's 电力, C4 延建
    assert f["rate_pct"] == pytest.approx(100 * 23 / 28)
    points = {p["id"]: p for p in doc["points"]}
    assert [(o["start_ns"], o["end_ns"], o["state"]) for o in points["C1"]["outages"]] == [
        (T0 + H, T0 + 2 * H, "down"), (T0 + 5 * H, T0 + 5 * H + 30 * MIN, "unreachable")]
    assert points["C3"]["outages"] == [] and points["C3"]["figures"]["excluded_cause_s"] == 7200
    (exclusion,) = points["C3"]["exclusions"]
    assert exclusion["kind"] == "cause" and exclusion["reason"].endswith("电力")
    assert points["C4"]["figures"]["counted_s"] == 0 and points["C4"]["figures"]["excluded_status_s"] == 36000
    regions = cli_json(site, "availability", "--period", PERIOD, "--scope", "region")["groups"]
    assert [(g["group"], g["figures"]["up_s"] / 3600, g["figures"]["counted_s"] / 3600) for g in regions] == [
        ("R1", 24.5, 30.0), ("R2", 17.0, 18.0)]  # R1: SW1 9.5 + C1 8.5 + C2 6.5; R2: C3 8 of 8, U1 9 of 10


def test_score_is_the_hand_computed_table_and_every_figure_opens_to_its_evidence(site: Path) -> None:
    doc = cli_json(site, "score", "--period", PERIOD)
    items = {i["key"]: i for i in doc["items"]}
    assert {k: (i["deduction"], i["score"]) for k, i in items.items()} == {
        "online_rate": (10, 30), "camera_replacement": (0, 20), "other_replacement": (0, 20), "arrival": (10, 10)}
    assert doc["total"] == 80
    assert doc["payment"] == {"fee_yuan": 250000.0, "deduction_yuan": 5000.0, "payable_yuan": 245000.0,
                              "basis": "per_point", "points_short": 10, "cut_pct": None, "grade": None,
                              "grade_name": None}
    online = items["online_rate"]["metric"]
    assert online["value"] == pytest.approx(100 * 23 / 28) and items["online_rate"]["rule"] == "80 ≤ r < 85"
    assert (online["numerator"], online["denominator"]) == (23 * 60, 28 * 60)  # minutes
    down = {e["ref"]: e["minutes"] for e in online["evidence"] if e["outcome"] == "down"}
    assert down == {"C1": 90, "C2": 210}
    assert sum(down.values()) == online["denominator"] - online["numerator"]  # the evidence adds up to the figure
    excluded = [e for e in online["evidence"] if e["outcome"] == "excluded"]
    assert {(e["ref"], e["minutes"]) for e in excluded} == {("C3", 120), ("C4", 600)}
    assert any("电力" in e["detail"] for e in excluded)
    arrival = items["arrival"]["metric"]
    assert (arrival["numerator"], arrival["denominator"]) == (1, 2)
    outcomes = {e["ref"][-4:]: (e["outcome"], e["minutes"]) for e in arrival["evidence"]}
    assert sorted(outcomes.values()) == [("excluded", None), ("late", 120.0), ("timely", 25.0)]
    replacement = items["camera_replacement"]["metric"]
    assert [(e["outcome"], e["minutes"]) for e in replacement["evidence"] if e["outcome"] == "timely"] == [("timely", 50)]


def test_with_daily_snapshots_the_score_reads_the_mean_of_the_checks(site: Path, tmp_path: Path) -> None:
    for name in ("points.csv", "state.db"):
        (tmp_path / name).write_bytes((site / name).read_bytes())
    config = write_config(tmp_path)
    doc = yaml.safe_load(config.read_text(encoding="utf-8"))
    doc["assessment"]["availability"] = {"definition": "daily_snapshot", "daily_check_times": ["01:30", "07:00"]}
    config.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    score = cli_json(tmp_path, "score", "--period", PERIOD, "--evidence")
    online = score["items"][0]["metric"]
    # 01:30: C1 down, C2 and C3 up; 07:00: C2 down, C1 and C3 up (C4 延建 is not counted): 2/3 twice.
    assert online["value"] == pytest.approx(100 * 2 / 3) and online["numerator"] is None
    assert "the mean over 2 daily checks" in online["note"]
    (fleet,) = cli_json(tmp_path, "availability", "--period", PERIOD, "--kind", "camera")["groups"]
    assert fleet["figures"]["rate_pct"] == online["value"]


async def test_the_api_answers_the_same_documents_as_the_cli(site: Path) -> None:
    async with served(site) as client:
        for path, args in (
            (f"/api/v1/availability?period={PERIOD}&scope=site&kind=camera&points=true",
             ("availability", "--period", PERIOD, "--scope", "site", "--kind", "camera", "--points")),
            (f"/api/v1/score?period={PERIOD}&evidence=true", ("score", "--period", PERIOD)),
            ("/api/v1/spot-check/C3?at=2026-11-02 04:00", ("spot-check", "C3", "--at", "2026-11-02 04:00")),
            ("/api/v1/long-offline", ("long-offline",)),
        ):
            resp = await client.get(path)
            body = await resp.json()
            assert resp.status == 200, body
            expected = await asyncio.to_thread(cli_json, site, *args)
            if path == "/api/v1/long-offline":  # days grow while the test runs
                for p in (*body["points"], *expected["points"]):
                    p.pop("days")
            assert body == expected, path


def test_spot_check_shows_seen_and_counted_with_the_work_order_exclusion(site: Path) -> None:
    c3 = cli_json(site, "spot-check", "C3", "--at", "2026-11-02 04:00")
    assert c3["seen"]["network"] == "down" and c3["counted"]["online"] == "excluded: cause"
    (exclusion,) = c3["exclusions"]
    assert (exclusion["start_ns"], exclusion["end_ns"]) == (T0 + 3 * H, T0 + 5 * H) and "电力" in exclusion["reason"]
    c1 = cli_json(site, "spot-check", "C1", "--at", "2026-11-02 05:10")
    assert c1["seen"]["network"] == "unreachable" and c1["counted"]["network"] == "unreachable"
    (icmp,) = c1["probes"]
    assert icmp["before"][-1]["new"] == "unreachable" and icmp["after"][0]["new"] == "up"
    assert c1["session"] is not None and c1["results_note"]


def test_a_period_not_over_yet_is_counted_up_to_now_and_says_so(site: Path) -> None:
    doc = cli_json(site, "availability", "--period", datetime.now(SH).strftime("%Y-%m"))
    assert doc["period"]["clipped"] is True and doc["period"]["note"] in doc["notes"]
    assert "has not ended yet: counted up to now" in doc["period"]["note"]
    (fleet,) = doc["groups"]  # nobody watched since 2026-11-02 11:00: all of it unknown, nothing to rate
    assert fleet["figures"]["counted_s"] == 0 and fleet["figures"]["rate_pct"] is None
    assert any("was not running" in n for n in doc["notes"])


def test_long_offline_lists_the_ups_down_for_weeks(site: Path) -> None:
    result = fleetmon_process("long-offline", "--json", "-c", "config.yaml", cwd=site)  # the console script itself
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    (point,) = doc["points"]
    assert point["device_id"] == "U1" and point["since_ns"] == T0 + 9 * H and point["days"] > 7
    assert doc["days"] == 7 and point["order_ref"] is None


def test_people_read_chinese_by_default_and_english_when_configured(site: Path, tmp_path: Path) -> None:
    text = fleetmon("score", "--period", PERIOD, "-c", "config.yaml", cwd=site)
    assert text.returncode == 0, text.stderr
    assert "考核得分" in text.stdout and "前端摄像机在线率" in text.stdout and "总分: 80" in text.stdout
    assert "应付 245000.00 元" in text.stdout
    evidence = fleetmon("score", "--period", PERIOD, "--evidence", "-c", "config.yaml", cwd=site).stdout
    assert "point C2 down 210.0 min" in evidence
    lines = fleetmon("availability", "--period", PERIOD, "--scope", "site", "-c", "config.yaml", cwd=site).stdout
    assert "考核在线率" in lines and any(line.startswith("站点  S1") for line in lines.splitlines())
    english = tmp_path / "en"
    english.mkdir()
    for name in ("points.csv", "state.db"):
        (english / name).write_bytes((site / name).read_bytes())
    write_config(english, language="en")
    out = fleetmon("spot-check", "C1", "--at", "2026-11-02 01:30", "-c", "config.yaml", cwd=english).stdout
    assert out.startswith("Spot check C1 东门枪机 (R1/S1) at 2026-11-02 01:30:00") and "seen" in out


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (("availability", "--period", "2026Q9"), "a quarter is Q1 … Q4"),
    (("availability", "--period", "2099Q1"), "starts in the future"),
    (("availability", "--period", PERIOD, "--scope", "region", "--group", "R9"), "no region 'R9' in the point list"),
    (("availability", "--period", PERIOD, "--kind", "drone"), "--kind"),
    (("availability", "--period", PERIOD, "--kind", "server"), "no point of kind server"),
    (("availability", "--period", PERIOD, "--scope", "region", "--group", "R1", "--kind", "ups"),
     "no point of kind ups in region R1"),
    (("spot-check", "C9", "--at", "2026-11-02 04:00"), "unknown device: C9"),
    (("spot-check", "C1", "--at", "yesterday"), "is not like 2026-12-01 10:00"),
    (("spot-check", "C1", "--at", "2099-01-01 00:00"), "in the future"),
    (("score", "--period", PERIOD, "--manual", "data_leaks"), "is not NAME=VALUE"),
    (("score", "--period", PERIOD, "--manual", "online_rate_pct=99"), "online_rate_pct is not entered by hand"),
])
def test_bad_input_is_a_clear_error_with_exit_2_and_changes_nothing(site: Path, args: tuple, message: str) -> None:
    before = digest(site / "state.db")
    result = fleetmon(*args, "-c", "config.yaml", cwd=site)
    assert result.returncode == 2 and result.stdout == ""
    assert message in result.stderr, result.stderr
    assert digest(site / "state.db") == before


def test_no_state_database_yet_and_no_scheme_are_said_plainly(tmp_path: Path) -> None:
    write_config(tmp_path, score=None)
    result = fleetmon_process("availability", "--period", PERIOD, "-c", "config.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert "no state database yet: the daemon (fleetmon run) creates it when it first starts" in result.stderr
    assert not (tmp_path / "state.db").exists()  # reading never creates it
    asyncio.run(build_history(tmp_path / "config.yaml"))
    result = fleetmon_process("score", "--period", PERIOD, "-c", "config.yaml", cwd=tmp_path)
    assert result.returncode == 2 and "no assessment scheme in the config: set assessment.score.scheme" in result.stderr


async def test_the_api_refuses_bad_requests_with_a_reason_never_a_500(site: Path, tmp_path: Path) -> None:
    async with served(site) as client:
        for path, status, reason in (
            ("/api/v1/availability?period=2026Q9", 400, "a quarter is Q1"),
            ("/api/v1/availability", 400, "query.period: Field required"),
            (f"/api/v1/availability?period={PERIOD}&scope=site&group=S9", 404, "no site 'S9'"),
            (f"/api/v1/availability?period={PERIOD}&group=S1", 400, "give scope region or site"),
            (f"/api/v1/availability?period={PERIOD}&basis=colour", 400, "query.basis"),
            (f"/api/v1/availability?period={PERIOD}&zone=x", 400, "query.zone"),
            ("/api/v1/spot-check/C9?at=2026-11-02 04:00", 404, "unknown device: C9"),
            ("/api/v1/spot-check/C1?at=soon", 400, "is not like"),
            ("/api/v1/spot-check/C1", 400, "query.at"),
            (f"/api/v1/score?period={PERIOD}&manual=x", 400, "is not NAME=VALUE"),
            (f"/api/v1/score?period={PERIOD}&manual=data_leaks=-1", 400, "data_leaks"),
        ):
            resp = await client.get(path)
            body = await resp.json()
            assert resp.status == status and reason in body["error"], (path, body)
    zhangjiagang = tmp_path / "zjg"
    zhangjiagang.mkdir()
    for name in ("points.csv", "state.db"):
        (zhangjiagang / name).write_bytes((site / name).read_bytes())
    write_config(zhangjiagang, score={"scheme": "zhangjiagang", "fee_per_period_yuan": 100000})
    async with served(zhangjiagang) as client:
        resp = await client.get(f"/api/v1/score?period={PERIOD}")
        body = await resp.json()
        assert resp.status == 422 and "report_nonconformities" in body["error"] and "by hand" in body["error"]
    write_config(zhangjiagang, score=None)
    async with served(zhangjiagang) as client:
        resp = await client.get(f"/api/v1/score?period={PERIOD}")
        assert resp.status == 409 and "assessment.score" in (await resp.json())["error"]


async def test_reads_follow_the_status_token(site: Path) -> None:
    async with served(site, status_token="read-only-token") as client:
        resp = await client.get(f"/api/v1/score?period={PERIOD}")
        assert resp.status == 401
        resp = await client.get(f"/api/v1/score?period={PERIOD}", headers={"Authorization": "Bearer read-only-token"})
        assert resp.status == 200
        doc = await (await client.get("/api/v1/openapi.json")).json()
        for path in ("/api/v1/availability", "/api/v1/score", "/api/v1/spot-check/{device_id}", "/api/v1/long-offline"):
            assert doc["paths"][path]["get"]["security"] == [{"bearer": []}], path


def test_zhangjiagang_scores_systems_with_the_figures_entered_by_hand(site: Path, tmp_path: Path) -> None:
    folder = tmp_path / "zjg"
    folder.mkdir()
    for name in ("points.csv", "state.db"):
        (folder / name).write_bytes((site / name).read_bytes())
    write_config(folder, score={"scheme": "zhangjiagang", "fee_per_period_yuan": 100000, "systems": "site"})
    doc = cli_json(folder, "score", "--period", PERIOD, "--manual", "report_nonconformities=2",
                   "--manual", "serious_incidents=0", "--manual", "data_leaks=0")
    items = {i["key"]: i for i in doc["items"]}
    # Every point of every kind: up 23 + SW1 9.5 + U1 9 = 41.5 h of 48 h counted.
    assert items["availability"]["metric"]["value"] == pytest.approx(100 * 41.5 / 48)
    assert items["single_outage"]["metric"]["value"] == 180  # C2 06:00–09:00
    systems = {e["ref"]: e for e in items["single_outage"]["metric"]["evidence"] if e["kind"] == "system"}
    assert systems["S1"]["minutes"] == 180 and "C2" in systems["S1"]["detail"] and systems["S2"]["minutes"] == 60
    faults = items["faults_per_system"]["metric"]
    assert faults["value"] == 2  # S1: orders B and C; S2's order A has an excluded cause
    assert items["reports"]["deduction"] == 2 and doc["vetoed"] is False
    assert doc["total"] == 100 - 30 - 20 - 2  # availability and the single outage lost whole
    assert (doc["payment"]["grade"], doc["payment"]["deduction_yuan"]) == ("fail", 2000.0)  # < 60: 2 %


# --- read-only access ----------------------------------------------------------------------------


async def test_read_only_never_writes_and_refuses_other_versions(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    await build_history(config)
    db_path = tmp_path / "state.db"
    before = digest(db_path)
    async with StateDB(db_path, read_only=True) as db:
        assert len(await db.transitions()) > 10
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await db.execute(lambda conn: conn.execute("DELETE FROM transitions"))
    assert digest(db_path) == before
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE schema_versions SET version = 99 WHERE component = 'workorders'")
    conn.commit()
    conn.close()
    result = await asyncio.to_thread(fleetmon, "score", "--period", PERIOD, "-c", "config.yaml", cwd=tmp_path)
    assert result.returncode == 1 and "workorders are at schema version 99" in result.stderr
    assert "written by a newer fleetmon" in result.stderr
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE schema_versions SET version = 1 WHERE component = 'state'")
    conn.commit()
    conn.close()
    with pytest.raises(StateDBError, match="start this fleetmon's daemon once"):
        async with StateDB(db_path, read_only=True):
            pass
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT version FROM schema_versions WHERE component = 'state'").fetchone() == (1,)
    conn.close()


# --- config ------------------------------------------------------------------------------------


def test_config_errors_of_the_assessment_are_located(tmp_path: Path) -> None:
    (tmp_path / "holidays.yaml").write_text("holidays:\n  - {date: 2026-02-30, name: 春节}\n", encoding="utf-8")
    path = tmp_path / "config.yaml"
    path.write_text(
        "assessment:\n"
        "  workorders:\n"
        "    routes: [duty]\n"
        "  sla:\n"
        "    calendar:\n"
        "      file: holidays.yaml\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert exc.value.messages == [f"{path}:3: assessment.workorders.routes[0]: no notify route 'duty' (notify.routes: none)"]
    path.write_text("assessment:\n  sla:\n    calendar:\n      file: holidays.yaml\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    (message,) = exc.value.messages
    assert message.startswith(f"{path}:4: assessment.sla.calendar.file: {tmp_path / 'holidays.yaml'}:2: holidays[0].date")
    path.write_text("assessment:\n  sla: {preset: qionglai}\n  score:\n    scheme: qionglai\n"
                    "    fee_per_period_yuan: 1000\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    (message,) = exc.value.messages
    assert message.startswith(f"{path}:4: assessment.score.scheme: the scheme qionglai scores arrival in time")
    assert "{clocks: {arrival: {within: 4h}}}" in message
