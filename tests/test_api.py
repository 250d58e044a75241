"""The HTTP API over real HTTP on loopback, against a real FaultBook and MaintenanceBook on a
real SQLite state database, a real inventory and a Snapshot built from real online rates.

Every response is also validated against the model its OpenAPI entry names (response models
forbid unknown keys), so the document is checked against what the server actually sends.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr, ValidationError

import monitor.app.api as api
from monitor.app.api import ApiConfig, ApiContext, ApiServer, create_app
from monitor.core.config_base import SelectorConfig
from monitor.app.snapshot import Snapshot
from monitor.fleet.inventory import Inventory
from monitor.core.model import Device, Kind, Status
from monitor.state.online_rate import online_rates
from monitor.app.scheduler import CycleReport
from monitor.state.tracker import State
from monitor.state.db import StateDB
from probes.base import ProbeResult
from rules.alerting.config import MaintenanceWindowConfig
from rules.base import Condition
from rules.alerting.faults import FaultBook
from rules.alerting.maintenance import MaintenanceBook
from rules.model import Severity
from tests.plugins.factories import device as make_device

TOKEN = "s3cret-token-值班"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
S = 1_000_000_000  # ns per second
CHENGGUAN, NANSHAN = "城关镇", "南山乡"


def device(id: str, kind: Kind, n: int | None, site: str, region: str, parent: str | None = None, **kw: Any) -> Device:
    address = None if n is None else f"10.0.0.{n}"
    return make_device(id, kind, name=f"{id}号", address=address, site=site, region=region, parent=parent, **kw)


INVENTORY = Inventory([
    device("L1", Kind.LINK, 1, "城关站", CHENGGUAN),
    device("S1", Kind.SWITCH, 2, "城关站", CHENGGUAN, "L1"),
    device("C1", Kind.CAMERA, 3, "城关站", CHENGGUAN, "S1", tags=frozenset({"高点"})),
    device("C2", Kind.CAMERA, 4, "城关站", CHENGGUAN, "S1"),
    device("C3", Kind.CAMERA, 5, "南山站", NANSHAN),
    device("C4", Kind.CAMERA, 6, "南山站", NANSHAN, status=Status.CONSTRUCTION),
    device("C5", Kind.CAMERA, None, "南山站", NANSHAN, status=Status.REMOVED),
])
STATES = {
    "L1": State.DOWN, "S1": State.UNREACHABLE, "C1": State.UNREACHABLE, "C2": State.UNREACHABLE,
    "C3": State.UP, "C4": State.UNKNOWN, "C5": State.UNKNOWN,
}


def snapshot(cycle_end_ns: int) -> Snapshot:
    """A snapshot whose cycle finished at `cycle_end_ns`: L1 down with everything behind it."""
    report = CycleReport("icmp", 7, cycle_end_ns - 2 * S, 2.0, 5, 1, 4, 0, 0)
    latest = {
        "C3": ProbeResult("C3", "icmp", cycle_end_ns - S, True, None,
                          {"up": True, "sent": 3, "received": 3, "loss_pct": 0.0, "rtt_avg_ms": 12.5}),
        "L1": ProbeResult("L1", "icmp", cycle_end_ns - S, False, "timeout",
                          {"up": False, "sent": 3, "received": 0, "loss_pct": 100.0}),
    }
    rtsp = {"C3": ProbeResult("C3", "rtsp", cycle_end_ns - S, False, "404 Not Found", {"up": False, "status_code": 404})}
    bases = {"network": STATES, "video": {"C1": State.UNREACHABLE, "C2": State.UNREACHABLE, "C3": State.DOWN},
             "online": {**STATES, "C3": State.DOWN}}
    return Snapshot(report, tuple(online_rates(INVENTORY.devices.values(), STATES)), STATES, latest,
                    bases=bases, results={"icmp": latest, "rtsp": rtsp})


def condition(rule: str, scope: str, severity: Severity, title: str, for_s: float = 0.0, **kw: Any) -> Condition:
    return Condition(rule, kw.pop("kind", "device_down"), scope, severity, title, for_s, 0.0, **kw)


LINK_DOWN = condition("device-down", "device:L1", Severity.CRITICAL, "专线L1号离线，影响2路摄像机",
                      device_id="L1", site="城关站", region=CHENGGUAN, affected=("S1", "C1", "C2"))
CAMERA_DOWN = condition("device-down", "device:C3", Severity.MINOR, "摄像机C3号离线",
                        device_id="C3", site="南山站", region=NANSHAN)
RATE_LOW = condition("camera-online-rate", f"region:{CHENGGUAN}", Severity.MAJOR,
                     "城关镇摄像机在线率0.00%，低于95%", for_s=3600, kind="online_rate", region=CHENGGUAN,
                     value=0.0, threshold=95.0, unit="%")


@dataclass
class World:
    """A served API and what it serves. Faults: F1 link down (critical, firing), F2 camera down
    (resolved), F3 online rate (major, pending). Window 1 comes from the config."""

    url: str
    http: aiohttp.ClientSession
    faults: FaultBook
    maintenance: MaintenanceBook
    holder: dict[str, Snapshot | None]
    doc: dict[str, Any]

    async def call(self, method: str, path: str, status: int, **kw: Any) -> Any:
        """Send a request; assert the status, a JSON body, and that the body matches the model
        the OpenAPI document names for this route and status. Returns the body."""
        async with self.http.request(method, self.url + path, **kw) as resp:
            body = await resp.json()
            assert resp.status == status, body
            assert resp.content_type == "application/json"
        model = _documented_model(self.doc, method, resp.url.path, status)
        model.model_validate(body)
        return body


def _documented_model(doc: dict[str, Any], method: str, path: str, status: int) -> type:
    """The response model the document gives for `path` (concrete, e.g. /api/v1/faults/F1)."""
    for template, operations in doc["paths"].items():
        head, _, tail = template.partition("{id}")
        concrete = path.startswith(head) and path.endswith(tail) and "/" not in path[len(head): len(path) - len(tail)]
        if (template == path or "{id}" in template and concrete) and method.lower() in operations:
            response = operations[method.lower()]["responses"][str(status)]
            return getattr(api, response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1])
    raise AssertionError(f"{method} {path} is not documented")


@asynccontextmanager
async def make_world(tmp_path, token: str | None = TOKEN, *, started_ns: int | None = None,
                     snap: Snapshot | None | str = "fresh", interval_s: float = 30.0,
                     probe_intervals: dict[str, float] | None = None, agents: Any = None):
    """A World served on a free loopback port; `snap` "fresh" is a cycle finished 1 s ago."""
    now = time.time_ns()
    holder = {"snapshot": snapshot(now - S) if snap == "fresh" else snap}
    async with StateDB(tmp_path / "state.db") as db:
        configured = [MaintenanceWindowConfig(
            match=SelectorConfig(region=[NANSHAN]), start=datetime.fromtimestamp(now / S - 3600, timezone.utc),
            end=datetime.fromtimestamp(now / S + 3600, timezone.utc), reason="供电检修",
        )]
        maintenance = await MaintenanceBook.load(db, INVENTORY, configured)
        faults = await FaultBook.load(db, INVENTORY, [], maintenance)
        t0 = now - 600 * S
        await faults.apply({c.key: c for c in (LINK_DOWN, CAMERA_DOWN)}, t0)
        await faults.apply({c.key: c for c in (LINK_DOWN, RATE_LOW)}, t0 + 60 * S)
        ctx = ApiContext(
            inventory=INVENTORY, snapshot=lambda: holder["snapshot"], faults=faults, maintenance=maintenance,
            token=None if token is None else SecretStr(token), language="zh", timezone="Asia/Shanghai",
            started_ns=now - 120 * S if started_ns is None else started_ns, cycle_interval_s=interval_s,
            probe_intervals=probe_intervals or {}, statedb=db.health, agents=agents,
        )
        cfg = ApiConfig(port=0)
        async with ApiServer(cfg, ctx) as server, aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{server.port}"
            async with http.get(url + "/api/v1/openapi.json") as resp:
                doc = await resp.json()
            yield World(url, http, faults, maintenance, holder, doc)


@pytest.fixture
async def world(tmp_path):
    async with make_world(tmp_path) as w:
        yield w


@pytest.fixture
async def tokenless(tmp_path):
    async with make_world(tmp_path, token=None) as w:
        yield w


# --- config and server -------------------------------------------------------------------------


def test_config_defaults_to_loopback_port_8080_without_token():
    cfg = ApiConfig()
    assert (cfg.enabled, cfg.listen, cfg.port, cfg.token) == (True, "127.0.0.1", 8080, None)


@pytest.mark.parametrize("listen", ["0.0.0.0", "192.168.1.10", "::"])
def test_config_refuses_a_non_loopback_listen_without_token(listen):
    with pytest.raises(ValidationError, match="needs a token"):
        ApiConfig(listen=listen)


def test_config_takes_the_token_from_env_or_file_and_never_shows_it(tmp_path, monkeypatch):
    monkeypatch.setenv("FLEETMON_API_TOKEN", TOKEN)
    from_env = ApiConfig(listen="0.0.0.0", token_env="FLEETMON_API_TOKEN")
    (tmp_path / "token").write_text(TOKEN + "\n", encoding="utf-8")
    from_file = ApiConfig(listen="::1", token_file=tmp_path / "token")
    assert from_env.token.get_secret_value() == from_file.token.get_secret_value() == TOKEN
    assert TOKEN not in repr(from_env) and TOKEN not in from_env.model_dump_json()


@pytest.mark.parametrize(("data", "message"), [
    ({"token": TOKEN}, "must not be written in the config"),
    ({"token_env": "A", "token_file": "/x"}, "not both"),
    ({"token_env": "FLEETMON_UNSET_VARIABLE"}, "is not set"),
    ({"listen": "localhost"}, "must be an IP address"),
    ({"port": 70000}, "less than or equal to 65535"),
    ({"listen_on": "127.0.0.1"}, "Extra inputs are not permitted"),
])
def test_config_errors(data, message):
    with pytest.raises(ValidationError, match=message):
        ApiConfig.model_validate(data)


async def test_server_refuses_a_public_bind_when_the_context_has_no_token(tmp_path):
    cfg = ApiConfig.model_construct(enabled=True, listen="0.0.0.0", port=0, token=SecretStr(TOKEN))
    async with make_world(tmp_path, token=None) as w:
        ctx_without_token = ApiContext(
            inventory=INVENTORY, snapshot=lambda: None, faults=w.faults, maintenance=w.maintenance, token=None,
            language="zh", timezone="Asia/Shanghai", started_ns=0, cycle_interval_s=30,
        )
        with pytest.raises(ValueError, match="without a token"):
            ApiServer(cfg, ctx_without_token)


async def test_server_binds_the_configured_loopback_address_and_stops(tmp_path):
    async with make_world(tmp_path) as w:
        assert (await w.call("GET", "/healthz", 200))["status"] == "ok"
        url = w.url
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(url + "/healthz")


async def test_a_port_in_use_is_an_oserror(world):
    port = int(world.url.rsplit(":", 1)[1])
    ctx = ApiContext(
        inventory=INVENTORY, snapshot=lambda: None, faults=world.faults, maintenance=world.maintenance, token=None,
        language="zh", timezone="Asia/Shanghai", started_ns=0, cycle_interval_s=30,
    )
    with pytest.raises(OSError):
        async with ApiServer(ApiConfig(port=port), ctx):
            pass
    await world.call("GET", "/healthz", 200)  # the first server is unharmed


# --- health --------------------------------------------------------------------------------------


async def test_healthz_is_ok_while_cycles_finish(world):
    body = await world.call("GET", "/healthz", 200)
    assert body["status"] == "ok"
    assert 119 < body["uptime_s"] < 150
    assert 0.9 < body["last_cycle_age_s"] < 30


async def test_healthz_is_503_when_no_cycle_finished_for_three_intervals(world):
    world.holder["snapshot"] = snapshot(time.time_ns() - 91 * S)  # interval 30 s
    body = await world.call("GET", "/healthz", 503)
    assert body["status"] == "stale" and body["last_cycle_age_s"] > 90


async def test_healthz_grants_a_starting_daemon_three_intervals_for_its_first_cycle(tmp_path):
    async with make_world(tmp_path / "a", snap=None, started_ns=time.time_ns() - 5 * S) as w:
        body = await w.call("GET", "/healthz", 200)
        assert body == {"status": "starting", "uptime_s": pytest.approx(5, abs=5), "last_cycle_age_s": None,
                        "probes": {}, "stale_probes": [], "statedb_error": None,
                        "reload": None, "agents": None, "silent_agents": []}
    async with make_world(tmp_path / "b", snap=None, started_ns=time.time_ns() - 100 * S) as w:
        assert (await w.call("GET", "/healthz", 503))["status"] == "stale"


async def test_healthz_is_503_when_one_probe_stalled_while_another_still_finishes_cycles(tmp_path):
    now = time.time_ns()
    fresh = snapshot(now - S)
    rtsp_cycle = CycleReport("rtsp", 3, now - 400 * S, 5.0, 9, 9, 0, 0, 0)  # 395 s ago, interval 60 s
    snap = replace(fresh, cycles={"icmp": fresh.cycle, "rtsp": rtsp_cycle})
    async with make_world(tmp_path, snap=snap, probe_intervals={"icmp": 30.0, "rtsp": 60.0, "snmp": 60.0}) as w:
        body = await w.call("GET", "/healthz", 503)
    # snmp has not finished a cycle either, but the daemon is 120 s up: within 3 of its intervals
    assert body["status"] == "stale" and body["stale_probes"] == ["rtsp"]
    assert body["probes"]["icmp"] < 30 and body["probes"]["rtsp"] > 390 and body["probes"]["snmp"] is None
    ok = replace(fresh, cycles={"icmp": fresh.cycle, "rtsp": replace(rtsp_cycle, ts_ns=now - 30 * S)})
    async with make_world(tmp_path / "ok", snap=ok, probe_intervals={"icmp": 30.0, "rtsp": 60.0}) as w:
        assert (await w.call("GET", "/healthz", 200))["stale_probes"] == []


async def test_healthz_ages_run_on_the_monotonic_clock(tmp_path):
    """Issue 13: the wall clock stepped since the last cycle must neither hide a stall nor fake
    one. A cycle 400 s ago whose wall stamp reads an hour later (the clock stepped back since):
    stale; a cycle 3 s ago whose wall stamp reads an hour earlier (stepped forward): ok."""
    now, mono = time.time_ns(), time.monotonic_ns()
    fresh = snapshot(now - S)
    back = replace(fresh, cycle=replace(fresh.cycle, ts_ns=now + (3600 - 402) * S, mono_ns=mono - 402 * S))
    async with make_world(tmp_path / "back", snap=back) as w:
        body = await w.call("GET", "/healthz", 503)
        assert body["status"] == "stale" and body["last_cycle_age_s"] == pytest.approx(400, abs=5)
    ahead = replace(fresh, cycle=replace(fresh.cycle, ts_ns=now - (3600 + 3) * S, mono_ns=mono - 3 * S))
    async with make_world(tmp_path / "ahead", snap=ahead) as w:
        body = await w.call("GET", "/healthz", 200)
        assert body["status"] == "ok" and body["last_cycle_age_s"] == pytest.approx(1, abs=5)


async def test_healthz_is_503_with_the_cause_while_state_database_writes_fail(tmp_path):
    async with make_world(tmp_path) as w:
        health = w.faults._db.health
        try:
            health.failed("recorder", sqlite3.OperationalError("database or disk is full"))
            body = await w.call("GET", "/healthz", 503)
            assert body["status"] == "failing" and body["statedb_error"].startswith("database or disk is full")
        finally:
            health.ok("recorder")
        body = await w.call("GET", "/healthz", 200)
        assert body["status"] == "ok" and body["statedb_error"] is None


# --- status --------------------------------------------------------------------------------------


async def test_status_reports_rates_states_and_open_faults(world):
    body = await world.call("GET", "/api/v1/status", 200)
    # active: L1 down, S1 C1 C2 unreachable, C3 up; C4 (construction) and C5 (removed) excluded
    assert body["fleet"] == {
        "scope": "fleet", "group": "all", "basis": "online", "kind": "all", "online": 1, "offline": 4, "unknown": 0,
        "excluded": 2, "total": 5, "rate_pct": 20.0,
    }
    rates = {(r["scope"], r["group"], r["kind"]): r["rate_pct"] for r in body["rates"]}
    assert rates[("region", CHENGGUAN, "camera")] == 0.0
    assert rates[("region", NANSHAN, "camera")] == 100.0
    assert rates[("site", "城关站", "link")] == 0.0
    assert rates[("fleet", "all", "camera")] == pytest.approx(100 / 3)
    assert body["devices"] == {"total": 7, "excluded": 2, "up": 1, "down": 1, "unreachable": 3, "unknown": 0}
    assert body["open_faults"] == {"total": 2, "critical": 1, "major": 1, "minor": 0}
    assert body["cycle"]["cycle"] == 7 and body["cycle"]["probe"] == "icmp"
    assert (body["timezone"], body["language"]) == ("Asia/Shanghai", "zh")
    assert abs(body["generated_ns"] - time.time_ns()) < 10 * S


async def test_status_before_the_first_cycle_counts_every_active_device_unknown(world):
    world.holder["snapshot"] = None
    body = await world.call("GET", "/api/v1/status", 200)
    assert body["cycle"] is None
    assert body["fleet"]["rate_pct"] is None and body["fleet"]["unknown"] == 5
    assert body["devices"]["unknown"] == 5 and body["devices"]["up"] == 0


async def test_an_empty_inventory_is_served_without_errors(world):
    ctx = ApiContext(
        inventory=Inventory([]), snapshot=lambda: None, faults=world.faults, maintenance=world.maintenance,
        token=None, language="zh", timezone="Asia/Shanghai", started_ns=0, cycle_interval_s=30,
    )
    async with TestClient(TestServer(create_app(ctx), host="127.0.0.1")) as client:
        status = await (await client.get("/api/v1/status")).json()
        devices = await (await client.get("/api/v1/devices")).json()
    assert status["fleet"]["total"] == 0 and status["fleet"]["rate_pct"] is None and status["rates"] == []
    assert devices == {"total": 0, "limit": 1000, "offset": 0, "devices": []}


# --- devices -------------------------------------------------------------------------------------


async def test_devices_lists_inventory_fields_state_and_latest_result(world):
    body = await world.call("GET", "/api/v1/devices", 200)
    assert body["total"] == 7 and [d["id"] for d in body["devices"]] == list(INVENTORY.devices)
    c1, c3, c5 = (next(d for d in body["devices"] if d["id"] == i) for i in ("C1", "C3", "C5"))
    assert c1["parent"] == "S1" and c1["tags"] == ["高点"] and c1["state"] == "unreachable"
    assert c1["latest"] is None
    assert c3["address"] == "10.0.0.5" and c3["region"] == NANSHAN and c3["state"] == "up"
    assert c3["latest"]["ok"] is True and c3["latest"]["fields"]["rtt_avg_ms"] == 12.5
    assert c3["latest"]["ts"].startswith(str(datetime.now(timezone.utc).year))
    assert c5["address"] is None and c5["status"] == "removed"


async def test_devices_show_every_basis_and_every_probe_result(world):
    body = await world.call("GET", "/api/v1/devices", 200)
    c3, s1 = (next(d for d in body["devices"] if d["id"] == i) for i in ("C3", "S1"))
    # C3 answers ping but sends no picture: network up, video and the contract's online down.
    assert c3["bases"] == {"network": "up", "video": "down", "online": "down"}
    assert c3["results"]["rtsp"]["reason"] == "404 Not Found" and c3["results"]["icmp"]["ok"] is True
    assert s1["bases"] == {"network": "unreachable", "online": "unreachable"}  # a switch has no video
    no_picture = await world.call("GET", "/api/v1/devices?basis=video&state=down", 200)
    assert [d["id"] for d in no_picture["devices"]] == ["C3"] and no_picture["devices"][0]["state"] == "up"
    offline = await world.call("GET", "/api/v1/devices?basis=online&state=down", 200)
    assert [d["id"] for d in offline["devices"]] == ["L1", "C3"]


@pytest.mark.parametrize(("query", "ids"), [
    ({"region": NANSHAN}, ["C3", "C4", "C5"]),
    ({"site": "城关站", "kind": "camera"}, ["C1", "C2"]),
    ({"state": "unreachable"}, ["S1", "C1", "C2"]),
    ({"state": "down", "kind": "link"}, ["L1"]),
    ({"region": "不存在乡"}, []),
])
async def test_devices_filters(world, query, ids):
    body = await world.call("GET", "/api/v1/devices", 200, params=query)
    assert [d["id"] for d in body["devices"]] == ids and body["total"] == len(ids)


async def test_devices_pagination(world):
    body = await world.call("GET", "/api/v1/devices", 200, params={"limit": "2", "offset": "3"})
    assert [d["id"] for d in body["devices"]] == ["C2", "C3"]
    assert (body["total"], body["limit"], body["offset"]) == (7, 2, 3)
    past_the_end = await world.call("GET", "/api/v1/devices", 200, params={"offset": "100"})
    assert past_the_end["devices"] == [] and past_the_end["total"] == 7


@pytest.mark.parametrize(("query", "reason"), [
    ("kind=tower", "query.kind"),
    ("state=offline", "query.state"),
    ("limit=0", "query.limit"),
    ("limit=abc", "query.limit"),
    ("limit=100000", "query.limit"),
    ("offset=-1", "query.offset"),
    ("regoin=x", "query.regoin: Extra inputs are not permitted"),
    ("region=a&region=b", "given more than once: region"),
])
async def test_devices_bad_query_is_400_with_reason(world, query, reason):
    body = await world.call("GET", f"/api/v1/devices?{query}", 400)
    assert reason in body["error"]


# --- faults --------------------------------------------------------------------------------------


async def test_faults_default_to_open_most_severe_first(world):
    body = await world.call("GET", "/api/v1/faults", 200)
    assert [(f["id"], f["state"], f["severity"]) for f in body["faults"]] == [
        ("F1", "firing", "critical"), ("F3", "pending", "major"),
    ]
    link = body["faults"][0]
    assert link["severity_label"] == "紧急" and link["title"] == "专线L1号离线，影响2路摄像机"
    assert link["affected"] == ["S1", "C1", "C2"]
    assert link["first_seen_ns"] == link["fired_ns"]
    first_seen = datetime.fromisoformat(link["first_seen"]) - datetime(1970, 1, 1, tzinfo=timezone.utc)
    assert first_seen // timedelta(microseconds=1) == link["first_seen_ns"] // 1000


@pytest.mark.parametrize(("state", "ids"), [
    ("pending", ["F3"]), ("firing", ["F1"]), ("resolved", ["F2"]), ("open", ["F1", "F3"]), ("all", ["F3", "F2", "F1"]),
])
async def test_faults_by_state(world, state, ids):
    body = await world.call("GET", "/api/v1/faults", 200, params={"state": state})
    assert [f["id"] for f in body["faults"]] == ids


async def test_faults_limit(world):
    body = await world.call("GET", "/api/v1/faults", 200, params={"state": "all", "limit": "1"})
    assert [f["id"] for f in body["faults"]] == ["F3"]


async def test_faults_bad_state_is_400(world):
    body = await world.call("GET", "/api/v1/faults?state=acked", 400)
    assert "query.state" in body["error"]


async def test_one_fault_and_unknown_ids(world):
    resolved = await world.call("GET", "/api/v1/faults/F2", 200)
    assert resolved["state"] == "resolved" and resolved["resolved_ns"] > resolved["fired_ns"]
    assert resolved["resolved"].endswith("Z")
    for unknown in ("F999", "nonsense", "F"):
        body = await world.call("GET", f"/api/v1/faults/{unknown}", 404)
        assert unknown in body["error"]


# --- acknowledging -------------------------------------------------------------------------------


async def test_ack_with_the_token_records_who_and_logs_one_line(world, caplog):
    caplog.set_level(logging.INFO, logger="fleetmon.api")
    body = await world.call("POST", "/api/v1/faults/F1/ack", 200, json={"by": " 张工 "}, headers=AUTH)
    assert body["acked_by"] == "张工" and body["acked_ns"] is not None and body["state"] == "firing"
    stored = await world.faults.get("F1")
    assert stored.acked_by == "张工"
    lines = [r.getMessage() for r in caplog.records if r.name == "fleetmon.api"]
    assert len(lines) == 1 and "F1 acknowledged by 张工" in lines[0]


async def test_ack_twice_keeps_the_first(world):
    first = await world.call("POST", "/api/v1/faults/F1/ack", 200, json={"by": "张工"}, headers=AUTH)
    again = await world.call("POST", "/api/v1/faults/F1/ack", 200, json={"by": "李工"}, headers=AUTH)
    assert (again["acked_by"], again["acked_ns"]) == ("张工", first["acked_ns"])


async def test_ack_of_a_resolved_fault_is_409_and_of_an_unknown_one_404(world):
    body = await world.call("POST", "/api/v1/faults/F2/ack", 409, json={"by": "张工"}, headers=AUTH)
    assert "resolved" in body["error"]
    body = await world.call("POST", "/api/v1/faults/F404/ack", 404, json={"by": "张工"}, headers=AUTH)
    assert "F404" in body["error"]


@pytest.mark.parametrize(("headers", "reason"), [
    ({}, "bearer token is required"),
    ({"Authorization": "Bearer wrong"}, "wrong token"),
    ({"Authorization": f"Basic {TOKEN}"}, "bearer token is required"),
    ({"Authorization": "Bearer "}, "bearer token is required"),
    ({"Authorization": f"Bearer {TOKEN}x"}, "wrong token"),
])
async def test_writes_without_the_right_token_are_401_and_change_nothing(world, headers, reason, caplog):
    caplog.set_level(logging.INFO, logger="fleetmon.api")
    async with world.http.post(world.url + "/api/v1/faults/F1/ack", json={"by": "张工"}, headers=headers) as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert reason in (await resp.json())["error"]
    assert (await world.faults.get("F1")).acked_by is None
    refused = [r for r in caplog.records if r.name == "fleetmon.api"]
    assert len(refused) == 1 and refused[0].levelno == logging.WARNING
    assert "refused POST /api/v1/faults/F1/ack" in refused[0].getMessage() and TOKEN not in refused[0].getMessage()


async def test_auth_comes_before_validation(world):
    body = await world.call("POST", "/api/v1/faults/F1/ack", 401, data=b"{not json")
    assert "token" in body["error"]


async def test_without_a_configured_token_every_write_is_403_but_reads_work(tokenless):
    for method, path, kw in (
        ("POST", "/api/v1/faults/F1/ack", {"json": {"by": "张工"}}),
        ("POST", "/api/v1/maintenance", {"json": {}}),
        ("DELETE", "/api/v1/maintenance/1", {}),
    ):
        body = await tokenless.call(method, path, 403, headers=AUTH, **kw)
        assert "no API token is configured" in body["error"]
    assert (await tokenless.faults.get("F1")).acked_by is None
    assert len(tokenless.maintenance.windows()) == 1
    await tokenless.call("GET", "/api/v1/faults", 200)


# --- maintenance ---------------------------------------------------------------------------------


def window_body(start: str = "2099-01-01T02:00:00+08:00", end: str = "2099-01-01T06:00:00+08:00", **kw: Any):
    return {"match": {"site": ["城关站"], "kind": ["camera"]}, "start": start, "end": end,
            "reason": "更换交换机", "by": "张工", **kw}


async def test_maintenance_lists_the_config_window(world):
    body = await world.call("GET", "/api/v1/maintenance", 200)
    (window,) = body["windows"]
    assert window["source"] == "config" and window["match"]["region"] == [NANSHAN]
    assert window["reason"] == "供电检修" and window["start_ns"] < time.time_ns() < window["end_ns"]


async def test_maintenance_create_list_active_and_delete(world, caplog):
    caplog.set_level(logging.INFO, logger="fleetmon.api")
    body = window_body(start="2099-01-01T02:00:00.123457+08:00")
    created = await world.call("POST", "/api/v1/maintenance", 201, json=body, headers=AUTH)
    assert created["source"] == "api" and created["created_by"] == "张工"
    assert created["match"] == {"region": [], "site": ["城关站"], "kind": ["camera"], "tags": [], "devices": []}
    # 02:00 at +08:00 is 18:00 UTC the day before, to the nanosecond (no float rounding)
    assert created["start_ns"] == int(datetime(2098, 12, 31, 18, tzinfo=timezone.utc).timestamp()) * S + 123_457_000
    assert created["start"] == "2098-12-31T18:00:00.123457Z"
    listed = await world.call("GET", "/api/v1/maintenance", 200)
    assert [w["id"] for w in listed["windows"]] == [1, created["id"]]
    active = await world.call("GET", "/api/v1/maintenance", 200, params={"active": "true"})
    assert [w["id"] for w in active["windows"]] == [1]  # the new one starts in 2099

    deleted = await world.call("DELETE", f"/api/v1/maintenance/{created['id']}?by=李工", 200, headers=AUTH)
    assert deleted == {"deleted": created["id"]}
    assert [w.id for w in world.maintenance.windows()] == [1]
    lines = [r.getMessage() for r in caplog.records if r.name == "fleetmon.api"]
    assert len(lines) == 2
    assert f"window {created['id']} created by 张工" in lines[0]
    assert f"window {created['id']} deleted by 李工" in lines[1]


async def test_maintenance_config_window_cannot_be_deleted(world):
    body = await world.call("DELETE", "/api/v1/maintenance/1", 409, headers=AUTH)
    assert "config" in body["error"]
    assert [w.id for w in world.maintenance.windows()] == [1]


async def test_maintenance_delete_unknown_or_malformed_id(world):
    assert "42" in (await world.call("DELETE", "/api/v1/maintenance/42", 404, headers=AUTH))["error"]
    assert "path.id" in (await world.call("DELETE", "/api/v1/maintenance/abc", 400, headers=AUTH))["error"]
    assert "path.id" in (await world.call("DELETE", "/api/v1/maintenance/0", 400, headers=AUTH))["error"]


@pytest.mark.parametrize(("body", "reason"), [
    (window_body(end="2099-01-01T01:00:00+08:00"), "end must be after start"),
    (window_body(end="2099-03-01T01:00:00+08:00"), "31 days"),
    (window_body(start="2000-01-01T00:00:00Z", end="2000-01-01T01:00:00Z"), "already over"),
    (window_body(start="2099-01-01T02:00:00"), "body.start: Input should have timezone info"),
    (window_body(start=4070908800), "body.start"),
    # Stored as int64 ns: a window in 2300 was an OverflowError and a 500.
    (window_body(start="2300-01-01T00:00:00+08:00", end="2300-01-02T00:00:00+08:00"), "2300-01-01 is out of range"),
    (window_body(end="9999-12-31T23:59:59Z"), "9999-12-31 is out of range"),
    (window_body(match={"zone": ["x"]}), "body.match.zone: Extra inputs are not permitted"),
    (window_body(match={"kind": ["tower"]}), "body.match.kind[0]"),
    (window_body(reason=""), "body.reason"),
    (window_body(reason="x" * 201), "body.reason"),
    (window_body(by="张工\n2026-01-01 fleetmon.api INFO forged"), "body.by"),
    (window_body(extra=1), "body.extra: Extra inputs are not permitted"),
])
async def test_maintenance_create_rejects_bad_windows_with_reason(world, body, reason):
    error = (await world.call("POST", "/api/v1/maintenance", 400, json=body, headers=AUTH))["error"]
    assert reason in error
    assert len(world.maintenance.windows()) == 1


def recurring_body(**kw: Any):
    return {"match": {"devices": ["C1"]}, "every": "tue 01:00", "duration": "4h", "reason": "光缆割接", "by": "张工", **kw}


async def test_maintenance_recurring_create_list_with_next_occurrences_and_end(world):
    created = await world.call("POST", "/api/v1/maintenance", 201, json=recurring_body(), headers=AUTH)
    assert created["every"] == "tue 01:00" and created["every_label"] == "每周二 01:00"
    assert (created["cron"], created["duration_s"], created["timezone"]) == ("0 1 * * 2", 14400, "Asia/Shanghai")
    assert created["end"] is None and created["match"]["devices"] == ["C1"]
    shanghai = ZoneInfo("Asia/Shanghai")
    starts = [datetime.fromtimestamp(o["start_ns"] / S, timezone.utc).astimezone(shanghai) for o in created["next"]]
    assert len(starts) == 3 and {s.strftime("%a %H:%M") for s in starts} == {"Tue 01:00"}
    assert all(o["end_ns"] - o["start_ns"] == 14400 * S for o in created["next"])
    listed = await world.call("GET", "/api/v1/maintenance", 200)
    assert [w["id"] for w in listed["windows"]] == [1, created["id"]]
    await world.call("DELETE", f"/api/v1/maintenance/{created['id']}", 200, headers=AUTH)
    assert [w.id for w in world.maintenance.windows()] == [1]


@pytest.mark.parametrize(("body", "reason"), [
    (recurring_body(every="tus 01:00"), "body.every: Value error, every 'tus 01:00': unknown weekday 'tus'"),
    (recurring_body(duration="0h"), "body.duration: Value error, duration '0h': must be longer than zero"),
    (recurring_body(duration=-60), "body.duration"),
    (recurring_body(duration="32d"), "one occurrence may last at most 31 days"),
    (recurring_body(**{"from": "2027-02-01", "until": "2027-01-01"}), "until 2027-01-01 is before from 2027-02-01"),
    (recurring_body(**{"from": "2020-01-01", "until": "2020-02-01"}), "no occurrence left"),
    (recurring_body(duration=None), "every needs a duration"),
    (recurring_body(start="2099-01-01T02:00:00+08:00"), "not both"),
    (recurring_body(match={"devices": ["C1", "C404"]}), "match.devices[1]: unknown device C404"),
    (window_body(match={"devices": ["C404"]}), "match.devices[0]: unknown device C404"),
])
async def test_maintenance_recurring_bad_input_is_refused_with_its_place(world, body, reason):
    error = (await world.call("POST", "/api/v1/maintenance", 400, json=body, headers=AUTH))["error"]
    assert reason in error, error
    assert len(world.maintenance.windows()) == 1


async def test_devices_in_maintenance_are_marked(world):
    body = await world.call("GET", "/api/v1/devices", 200)
    marked = {d["id"]: d["maintenance"] for d in body["devices"]}
    # The config window covers 南山 (C3, C4, C5) now; 城关 is not covered.
    assert {k for k, v in marked.items() if v} == {"C3", "C4", "C5"}
    assert marked["C3"]["reason"] == "供电检修" and marked["C3"]["id"] == 1


# --- malformed requests never yield 500 ----------------------------------------------------------

MALFORMED_BODIES = [
    b"", b"{", b"null", b"[]", b'"by"', b"42", b"{}", b'{"by": null}', b'{"by": 7}', b'{"by": ["x"]}',
    b'{"by": ""}', b'{"by": "   "}', b'{"by": "\\u0000"}', b'{"by": "x", "by2": 1}', b"\xff\xfe\x00{",
    b'{"by": "' + b"\xe5" + b'"}', b'{"by": 1e999999}', b'{"match": []}', b'{"match": {"site": "x"}}',
    b'{"start": {"$date": 1}}', b"[" * 10_000 + b"]" * 10_000, b'{"by": "' + b"x" * 70_000 + b'"}',
]


@pytest.mark.parametrize("path", ["/api/v1/faults/F1/ack", "/api/v1/maintenance"])
@pytest.mark.parametrize("raw", MALFORMED_BODIES, ids=range(len(MALFORMED_BODIES)))
async def test_a_malformed_body_is_4xx_with_a_reason_never_500(world, path, raw):
    headers = {**AUTH, "Content-Type": "application/json"}
    async with world.http.post(world.url + path, data=raw, headers=headers) as resp:
        assert 400 <= resp.status < 500, await resp.text()
        assert (await resp.json())["error"]
    assert (await world.faults.get("F1")).acked_by is None
    assert len(world.maintenance.windows()) == 1


async def test_unknown_field_names_cannot_forge_log_lines(world, caplog):
    caplog.set_level(logging.INFO, logger="fleetmon.api")
    raw = b'{"by": "x", "a\\nINFO forged": 1, "' + b"k" * 500 + b'": 2}'
    headers = {**AUTH, "Content-Type": "application/json"}
    body = await world.call("POST", "/api/v1/faults/F1/ack", 400, data=raw, headers=headers)
    assert "body.a\\x0aINFO forged: Extra inputs" in body["error"] and "k" * 64 not in body["error"]
    (line,) = [r.getMessage() for r in caplog.records if r.name == "fleetmon.api"]
    assert "\n" not in line and line.startswith("refused POST /api/v1/faults/F1/ack")


async def test_a_body_that_is_not_json_is_415(world):
    body = await world.call("POST", "/api/v1/faults/F1/ack", 415, data="by=张工", headers=AUTH)
    assert "application/json" in body["error"]


async def test_a_too_large_body_is_413(world):
    big = {"by": "x" * (api.MAX_BODY_BYTES + 1)}
    body = await world.call("POST", "/api/v1/faults/F1/ack", 413, json=big, headers=AUTH)
    assert str(api.MAX_BODY_BYTES) in body["error"]


async def test_unknown_routes_and_methods_answer_json(world):
    async with world.http.get(world.url + "/api/v2/status") as resp:
        assert resp.status == 404 and "no such endpoint" in (await resp.json())["error"]
    async with world.http.put(world.url + "/api/v1/maintenance", json={}) as resp:
        assert resp.status == 405
        assert resp.headers["Allow"] == "GET, POST"
        assert "PUT not allowed" in (await resp.json())["error"]


async def test_an_unexpected_exception_is_logged_and_answered_500_without_details(world, caplog):
    def broken() -> Snapshot:
        raise RuntimeError("secret internals")

    caplog.set_level(logging.INFO, logger="fleetmon.api")
    app = create_app(ApiContext(
        inventory=INVENTORY, snapshot=broken, faults=world.faults, maintenance=world.maintenance, token=None,
        language="en", timezone="UTC", started_ns=0, cycle_interval_s=30,
    ))
    server = TestServer(app, host="127.0.0.1")
    async with TestClient(server) as client:
        resp = await client.get("/api/v1/status")
        assert resp.status == 500 and await resp.json() == {"error": "internal error"}
    (record,) = [r for r in caplog.records if r.name == "fleetmon.api"]
    assert record.levelno == logging.ERROR and str(record.exc_info[1]) == "secret internals"


async def test_reads_log_nothing(world, caplog):
    caplog.set_level(logging.DEBUG, logger="fleetmon.api")
    for path in ("/healthz", "/api/v1/status", "/api/v1/devices", "/api/v1/faults", "/api/v1/maintenance"):
        await world.call("GET", path, 200)
    await world.call("GET", "/api/v1/devices?limit=0", 400)
    assert [r for r in caplog.records if r.name.startswith(("fleetmon.api", "aiohttp.access"))] == []


async def test_english_labels(tmp_path):
    async with make_world(tmp_path) as w:
        app_ctx_en = ApiContext(
            inventory=INVENTORY, snapshot=lambda: None, faults=w.faults, maintenance=w.maintenance, token=None,
            language="en", timezone="UTC", started_ns=0, cycle_interval_s=30,
        )
        server = TestServer(create_app(app_ctx_en), host="127.0.0.1")
        async with TestClient(server) as client:
            faults = (await (await client.get("/api/v1/faults")).json())["faults"]
        assert [f["severity_label"] for f in faults] == ["critical", "major"]


# --- OpenAPI -------------------------------------------------------------------------------------


async def test_openapi_documents_exactly_the_app_routes(world):
    app = create_app(ApiContext(
        inventory=INVENTORY, snapshot=lambda: None, faults=world.faults, maintenance=world.maintenance, token=None,
        language="zh", timezone="UTC", started_ns=0, cycle_interval_s=30,
    ))
    routes = {(r.method.lower(), r.resource.canonical) for r in app.router.routes()}
    documented = {(method, path) for path, ops in world.doc["paths"].items() for method in ops}
    assert routes == documented
    assert len(routes) == 33  # 11 of the API, /metrics, 12 of work orders, 4 of the assessment, 1 of reports, 1 of
    # thumbnails, the status page and its CSS and script
    assert world.doc["openapi"].startswith("3.1")


async def test_openapi_document_is_made_on_its_first_request_only(tmp_path, monkeypatch):
    """Not at start: the daemon would hold it (and its models' schemas) for nothing."""
    made = []
    real = api.openapi_document

    def openapi_document(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        made.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "openapi_document", openapi_document)
    create_app(ApiContext(
        inventory=INVENTORY, snapshot=lambda: None, faults=None, maintenance=None, token=None,  # type: ignore[arg-type]
        language="zh", timezone="UTC", started_ns=0, cycle_interval_s=30,
    ))
    assert made == []
    async with make_world(tmp_path) as w:  # its start fetched the document once
        async with w.http.get(w.url + "/api/v1/openapi.json") as resp:
            assert resp.status == 200 and (await resp.json()) == w.doc
    assert len(made) == 1


async def test_openapi_writes_need_the_bearer_scheme_and_reads_none(world):
    for path, ops in world.doc["paths"].items():
        for method, op in ops.items():
            write = method in ("post", "delete")
            assert op["security"] == ([{"bearer": []}] if write else []), (method, path)
            # /whoami tells a wrong token from none even while reads are open.
            assert ("401" in op["responses"]) is (write or path == "/api/v1/whoami")
            assert ("requestBody" in op) is (method == "post")
            assert "500" in op["responses"]
    assert world.doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}


async def test_openapi_parameters_and_refs_resolve(world):
    doc = world.doc
    refs: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            refs.extend(v for k, v in node.items() if k == "$ref")
            for v in node.values():
                collect(v)
        elif isinstance(node, list):
            for v in node:
                collect(v)

    collect(doc)
    assert refs and all(r.rsplit("/", 1)[1] in doc["components"]["schemas"] for r in refs)
    devices = doc["paths"]["/api/v1/devices"]["get"]["parameters"]
    assert [p["name"] for p in devices] == ["region", "site", "kind", "state", "basis", "q", "limit", "offset"]
    assert all(p["in"] == "query" and not p["required"] for p in devices)
    assert devices[2]["schema"] == {"$ref": "#/components/schemas/Kind"}  # no "null": absent, not null
    (fault_id,) = doc["paths"]["/api/v1/faults/{id}"]["get"]["parameters"]
    assert fault_id["in"] == "path" and fault_id["required"]
    body = doc["paths"]["/api/v1/maintenance"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    maintenance_in = doc["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    # start+end (one-off) or every+duration (recurring): checked by the model; by: from a personal token
    assert maintenance_in["required"] == ["match", "reason"]
    assert {"start", "end", "every", "duration", "from", "until"} <= set(maintenance_in["properties"])
    assert maintenance_in["additionalProperties"] is False


async def test_openapi_document_is_served_and_validates_as_its_own_model(world):
    body = await world.call("GET", "/api/v1/openapi.json", 200)
    assert body == world.doc and "/healthz" in body["paths"]


async def test_concurrent_acks_of_one_fault_keep_one_acknowledgement(world):
    replies = await asyncio.gather(*(
        world.call("POST", "/api/v1/faults/F1/ack", 200, json={"by": f"工程师{i}"}, headers=AUTH) for i in range(5)
    ))
    assert len({(r["acked_by"], r["acked_ns"]) for r in replies}) == 1
