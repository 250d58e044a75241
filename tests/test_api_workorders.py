"""Work orders (工单) and per-person tokens over the HTTP API: real HTTP on loopback, a real
WorkOrderBook (Qionglai SLA preset) on a real SQLite state database, FaultBook and
MaintenanceBook beside it, people from config (ApiConfig validated from token files).

Every answer is validated against the model the OpenAPI document names for its route and
status; every refused write is checked to have written nothing (rows counted in the database).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr, ValidationError

import monitor.app.api as api
from monitor.app.api import ApiConfig, ApiContext, ApiServer
from monitor.assess.config_workorders import SlaConfig, WorkOrderConfig
from monitor.assess.sla import Sla
from monitor.assess.workorders import WorkOrderBook
from monitor.core.model import Kind
from monitor.fleet.inventory import Inventory
from monitor.state.db import StateDB
from rules.alerting.faults import FaultBook
from rules.alerting.maintenance import MaintenanceBook
from rules.base import Condition
from rules.model import Severity
from tests.plugins.factories import device

WRITE = "shared-write-token-0001"
STATUS = "status-token-read-only-02"
TOKENS = {"张工": "zhang-duty-token-03", "李工": "li-duty-token-04", "王经理": "wang-manager-token-05",
          "赵观察": "zhao-read-token-06"}
ROLES = {"张工": ["duty"], "李工": ["duty"], "王经理": ["manager"], "赵观察": ["read"]}
S = 1_000_000_000
MIN = 60 * S

INVENTORY = Inventory([
    device("SW-001", Kind.SWITCH, name="城关镇人民广场接入交换机", site="城关镇人民广场", region="城关镇"),
    device("CAM-0001", Kind.CAMERA, name="城关镇人民广场01号枪机", site="城关镇人民广场", region="城关镇",
           parent="SW-001", model="DS-2CD3T46WDV3-L", serial="DS00010713CCWR"),
    device("CAM-0002", Kind.CAMERA, name="城关镇人民广场02号球机", site="城关镇人民广场", region="城关镇",
           parent="SW-001", model="iDS-2DE72", serial="DS00020713CCWR"),
])


def bearer(who: str) -> dict[str, str]:
    token = {"write": WRITE, "status": STATUS}.get(who) or TOKENS[who]
    return {"Authorization": f"Bearer {token}"}


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / S, timezone.utc).isoformat()


def people_config(tmp_path: Path, **api: Any) -> ApiConfig:
    """ApiConfig with the people above, each token read from a file of its own (as deployed)."""
    people = []
    for i, (name, token) in enumerate(TOKENS.items()):
        path = tmp_path / f"token-{i}"
        path.write_text(token + "\n", encoding="utf-8")
        people.append({"name": name, "token_file": str(path), "roles": ROLES[name]})
    return ApiConfig.model_validate({"port": 0, "people": people, **api})


@dataclass
class World:
    url: str
    http: aiohttp.ClientSession
    book: WorkOrderBook
    faults: FaultBook
    maintenance: MaintenanceBook
    db_path: Path
    doc: dict[str, Any]

    async def call(self, method: str, path: str, status: int, **kw: Any) -> Any:
        """Send a request; assert the status and that the JSON body matches the model the
        OpenAPI document names for this route and status. Returns the body."""
        async with self.http.request(method, self.url + path, **kw) as resp:
            body = await resp.json()
            assert resp.status == status, body
        documented_model(self.doc, method, path.split("?")[0], status).model_validate(body)
        return body

    def rows(self) -> dict[str, Any]:
        """Rows of every table a write could change, and the faults as stored: "nothing changed"."""
        with sqlite3.connect(self.db_path) as conn:
            out: dict[str, Any] = {
                t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("workorders", "workorder_devices", "workorder_events", "maintenance", "fault_events")
            }
            out["faults"] = conn.execute("SELECT doc FROM faults ORDER BY id").fetchall()
        return out


def documented_model(doc: dict[str, Any], method: str, path: str, status: int) -> type:
    """The response model of the documented route matching the concrete `path`."""
    parts = path.strip("/").split("/")
    for template, operations in doc["paths"].items():
        t_parts = template.strip("/").split("/")
        if len(t_parts) == len(parts) and all(t == p or t.startswith("{") for t, p in zip(t_parts, parts)):
            if method.lower() in operations and (template == path or "{" in template):
                response = operations[method.lower()]["responses"][str(status)]
                return getattr(api, response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1])
    raise AssertionError(f"{method} {path} is not documented")


LINK_DOWN = Condition("device-down", "device_down", "device:SW-001", Severity.MAJOR, "交换机离线", 0.0, 0.0,
                      device_id="SW-001", site="城关镇人民广场", region="城关镇", affected=("CAM-0001", "CAM-0002"))


@asynccontextmanager
async def make_world(tmp_path: Path, *, status_token: bool = False, orders: bool = True, write: bool = True):
    cfg = people_config(tmp_path)
    async with StateDB(tmp_path / "state.db") as db:
        maintenance = await MaintenanceBook.load(db, INVENTORY, [])
        faults = await FaultBook.load(db, INVENTORY, [], maintenance)
        await faults.apply({LINK_DOWN.key: LINK_DOWN}, time.time_ns() - 10 * MIN)
        book = await WorkOrderBook.load(db, INVENTORY, WorkOrderConfig(), Sla.from_config(
            SlaConfig(preset="qionglai", policies=[{"clocks": {"arrival": {"within": "4h"}}}]), "Asia/Shanghai"))
        ctx = ApiContext(
            inventory=INVENTORY, snapshot=lambda: None, faults=faults, maintenance=maintenance,
            token=SecretStr(WRITE) if write else None, language="zh", timezone="Asia/Shanghai",
            started_ns=time.time_ns(), cycle_interval_s=30.0,
            status_token=SecretStr(STATUS) if status_token else None, people=tuple(cfg.people),
            workorders=book if orders else None,
        )
        async with ApiServer(cfg, ctx) as server, aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{server.port}"
            async with http.get(url + "/api/v1/openapi.json") as resp:
                doc = await resp.json()
            yield World(url, http, book, faults, maintenance, tmp_path / "state.db", doc)


@pytest.fixture
async def world(tmp_path):
    async with make_world(tmp_path) as w:
        yield w


async def report(w: World, who: str = "张工", **body: Any) -> dict[str, Any]:
    body = {"devices": ["CAM-0001"], "title": "采购方来电：人民广场01号画面黑屏", **body}
    return await w.call("POST", "/api/v1/workorders", 201, json=body, headers=bearer(who))


# --- config: people and their tokens ---------------------------------------------------------------


def test_people_come_from_token_files_and_their_tokens_are_never_shown(tmp_path):
    cfg = people_config(tmp_path)
    assert [(p.name, [r.value for r in p.roles]) for p in cfg.people] == [(n, ROLES[n]) for n in TOKENS]
    assert cfg.people[0].token.get_secret_value() == TOKENS["张工"]
    shown = repr(cfg) + cfg.model_dump_json()
    assert not any(token in shown for token in TOKENS.values())


def test_people_alone_allow_a_non_loopback_listen(tmp_path):
    assert people_config(tmp_path, listen="0.0.0.0").listen == "0.0.0.0"


@pytest.mark.parametrize(("change", "message"), [
    (lambda p: p[1].update(token_file=p[0]["token_file"]), "李工's token is the same as 张工's token"),
    (lambda p: p[0].update(token_env="FM_TEST_WRITE", token_file=None),
     "张工's token is the same as the shared write token"),
    (lambda p: p[2].update(token_env="FM_TEST_STATUS", token_file=None),
     "王经理's token is the same as the status token"),
    (lambda p: p[1].update(name="张工"), "people[1]: 张工 is listed twice"),
    (lambda p: p[0].pop("token_file"), "张工: a person needs a token of their own"),
    (lambda p: p[0].update(token=TOKENS["张工"]), "'token' must not be written in the config"),
    (lambda p: p[0].update(roles=["dispatcher"]), "Input should be 'read', 'duty' or 'manager'"),
    (lambda p: p[0].update(roles=[]), "at least 1 item"),
    (lambda p: p[0].update(roles=["duty", "duty"]), "a role is listed twice"),
    (lambda p: p[0].update(name="Fleetmon"), "the name of fleetmon's own actions"),
    (lambda p: p[0].update(name="张\n工"), "String should match pattern"),
    (lambda p: p[0].update(mobile="138"), "Extra inputs are not permitted"),
])
def test_people_config_errors_name_the_person_never_the_token(tmp_path, monkeypatch, change, message):
    monkeypatch.setenv("FM_TEST_WRITE", WRITE)
    monkeypatch.setenv("FM_TEST_STATUS", STATUS)
    people = []
    for i, (name, token) in enumerate(TOKENS.items()):
        (tmp_path / f"t{i}").write_text(token, encoding="utf-8")
        people.append({"name": name, "token_file": str(tmp_path / f"t{i}"), "roles": ROLES[name]})
    change(people)
    with pytest.raises(ValidationError) as caught:
        ApiConfig.model_validate({"people": people, "token_env": "FM_TEST_WRITE", "status_token_env": "FM_TEST_STATUS"})
    shown = " | ".join(e["msg"] for e in caught.value.errors(include_url=False))  # what load_config prints
    assert message in shown
    assert not any(token in shown for token in (WRITE, STATUS, *TOKENS.values()))


# --- whoami --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("who", "expected"), [
    ("张工", {"kind": "person", "name": "张工", "roles": ["duty"],
             "permissions": ["read", "fault_ack", "workorder"]}),
    ("王经理", {"kind": "person", "name": "王经理", "roles": ["manager"],
              "permissions": ["read", "fault_ack", "workorder", "exclude"]}),
    ("赵观察", {"kind": "person", "name": "赵观察", "roles": ["read"], "permissions": ["read"]}),
    ("write", {"kind": "admin", "name": None, "roles": [],
               "permissions": ["read", "fault_ack", "workorder", "exclude"]}),
    ("status", {"kind": "status", "name": None, "roles": [], "permissions": ["read"]}),
])
async def test_whoami_names_the_person_and_what_the_token_may_do(tmp_path, who, expected):
    async with make_world(tmp_path, status_token=True) as w:
        body = await w.call("GET", "/api/v1/whoami", 200, headers=bearer(who))
    assert {k: body[k] for k in expected} == expected
    assert (body["language"], body["timezone"], body["workorders"]) == ("zh", "Asia/Shanghai", True)


async def test_whoami_without_a_token_is_anonymous_while_reads_are_open_and_a_wrong_one_is_401(world):
    assert (await world.call("GET", "/api/v1/whoami", 200))["kind"] == "anonymous"
    body = await world.call("GET", "/api/v1/whoami", 401, headers={"Authorization": "Bearer nobody's"})
    assert body["error"] == "wrong token"


async def test_with_a_status_token_people_read_by_header_but_never_by_url(tmp_path):
    async with make_world(tmp_path, status_token=True) as w:
        assert (await w.call("GET", "/api/v1/whoami", 401))["error"].startswith("the status token is required")
        await w.call("GET", "/api/v1/workorders", 200, headers=bearer("赵观察"))
        await w.call("GET", "/api/v1/faults", 200, headers=bearer("张工"))
        for token in (TOKENS["张工"], STATUS):  # no token travels in a URL
            async with w.http.get(f"{w.url}/api/v1/faults?token={token}", headers=bearer("张工")) as resp:
                assert resp.status == 400 and "Authorization: Bearer" in (await resp.json())["error"]


# --- who is recorded -------------------------------------------------------------------------------


async def test_a_personal_token_records_its_person(world, caplog):
    caplog.set_level(logging.INFO, logger="fleetmon.api")
    order = await report(world)
    assert order["ref"].startswith("WO-") and order["reported_by"] == "张工" and order["source"] == "manual"
    assert [(e["action"], e["by"]) for e in order["events"]] == [("opened", "张工")]
    acked = await world.call("POST", f"/api/v1/workorders/{order['ref']}/acknowledge", 200, json={"by": "张工"},
                             headers=bearer("张工"))
    assert (acked["acknowledged_by"], acked["assignee"]) == ("张工", "张工")
    lines = [r.getMessage() for r in caplog.records if r.name == "fleetmon.api"]
    assert f"work order {order['ref']} reported by 张工: 采购方来电：人民广场01号画面黑屏" in lines[0]
    assert f"work order {order['ref']} acknowledged by 张工" in lines[1]


async def test_a_personal_token_cannot_act_in_someone_elses_name(world, caplog):
    caplog.set_level(logging.INFO, logger="fleetmon.api")
    before = world.rows()
    body = await world.call("POST", "/api/v1/workorders", 403, headers=bearer("张工"),
                            json={"devices": ["CAM-0001"], "title": "黑屏", "by": "李工"})
    assert "this token belongs to 张工" in body["error"] and "'李工'" in body["error"]
    body = await world.call("POST", "/api/v1/faults/F1/ack", 403, json={"by": "李工"}, headers=bearer("张工"))
    assert "belongs to 张工" in body["error"]
    assert world.rows() == before
    # The minute's first refusal is logged with its reason, the second counted (api_guard.Tally).
    refused = [r for r in caplog.records if r.name == "fleetmon.api"]
    assert len(refused) == 1 and refused[0].levelno == logging.WARNING
    assert "belongs to 张工" in refused[0].getMessage()


async def test_the_shared_write_token_takes_by_from_the_request_and_needs_it(world):
    order = await report(world, "write", by="值班员王")
    assert order["reported_by"] == "值班员王"
    before = world.rows()
    body = await world.call("POST", f"/api/v1/workorders/{order['ref']}/acknowledge", 400, json={},
                            headers=bearer("write"))
    assert "`by` is required with the shared write token" in body["error"]
    body = await world.call("POST", f"/api/v1/workorders/{order['ref']}/acknowledge", 400, json={"by": "fleetmon"},
                            headers=bearer("write"))
    assert "reserved for fleetmon" in body["error"]
    assert world.rows() == before


async def test_a_person_acknowledges_a_fault_in_their_own_name(world):
    fault = await world.call("POST", "/api/v1/faults/F1/ack", 200, json={}, headers=bearer("李工"))
    assert fault["acked_by"] == "李工"


# --- a token without rights ------------------------------------------------------------------------


def writes(ref: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every write route with a valid body (for order `ref`)."""
    return [
        ("POST", "/api/v1/workorders", {"devices": ["CAM-0002"], "title": "黑屏"}),
        ("POST", f"/api/v1/workorders/{ref}/acknowledge", {}),
        ("POST", f"/api/v1/workorders/{ref}/arrive", {}),
        ("POST", f"/api/v1/workorders/{ref}/restore", {"resolution": "remote"}),
        ("POST", f"/api/v1/workorders/{ref}/replace", {"device": "CAM-0001", "old_serial": "A", "new_serial": "B"}),
        ("POST", f"/api/v1/workorders/{ref}/confirm-replacement", {}),
        ("POST", f"/api/v1/workorders/{ref}/classify", {"cause": "device"}),
        ("POST", f"/api/v1/workorders/{ref}/note", {"text": "备件已申请"}),
        ("POST", f"/api/v1/workorders/{ref}/assign", {"assignee": "李工"}),
        ("POST", f"/api/v1/workorders/{ref}/close", {"cancelled": True}),
        ("POST", "/api/v1/faults/F1/ack", {}),
        MAINTENANCE,
        ("DELETE", "/api/v1/maintenance/1", None),
    ]


MAINTENANCE = ("POST", "/api/v1/maintenance", {"match": {}, "start": "2099-01-01T02:00:00+08:00",
                                               "end": "2099-01-01T03:00:00+08:00", "reason": "割接"})


async def test_a_read_only_person_and_the_status_token_change_nothing(tmp_path):
    async with make_world(tmp_path, status_token=True) as w:
        ref = (await report(w))["ref"]
        before = w.rows()
        for method, path, body in writes(ref):
            error = (await w.call(method, path, 403, json=body, headers=bearer("赵观察")))["error"]
            assert error.startswith("赵观察's token (roles: read) may not "), error
            assert "that needs the duty or manager role" in error or "that needs the manager role" in error, error
            error = (await w.call(method, path, 403, json=body, headers=bearer("status")))["error"]
            assert error.startswith("the status token is read-only"), error
        assert w.rows() == before
        order = await w.call("GET", f"/api/v1/workorders/{ref}", 200, headers=bearer("赵观察"))
        assert order["event_count"] == 1 and order["stage"] == "reported"


async def test_a_duty_engineer_may_not_take_time_out_of_the_assessment(world):
    ref = (await report(world))["ref"]
    before = world.rows()
    for method, path, body in [
        ("POST", f"/api/v1/workorders/{ref}/close", {"cancelled": True}),
        ("POST", f"/api/v1/workorders/{ref}/classify", {"cause": "power"}),
        MAINTENANCE,
    ]:
        error = (await world.call(method, path, 403, json=body, headers=bearer("张工")))["error"]
        assert "张工's token (roles: duty) may not take time out of the assessment" in error, error
        assert "that needs the manager role" in error
    assert world.rows() == before
    # What is the contractor's own fault stays a duty engineer's to record.
    order = await world.call("POST", f"/api/v1/workorders/{ref}/classify", 200, json={"cause": "device"},
                             headers=bearer("张工"))
    assert (order["cause"], order["cause_label"], order["cause_excluded"]) == ("device", "设备故障", False)
    # The manager may.
    order = await world.call("POST", f"/api/v1/workorders/{ref}/classify", 200, json={"cause": "power"},
                             headers=bearer("王经理"))
    assert (order["cause_label"], order["cause_excluded"]) == ("电力", True)
    order = await world.call("POST", f"/api/v1/workorders/{ref}/close", 200, json={"cancelled": True, "note": "重复报障"},
                             headers=bearer("王经理"))
    assert (order["cancelled"], order["closed_by"], order["clocks"]) == (True, "王经理", [])


async def test_without_any_write_token_writes_are_refused_and_say_how_to_configure_one(tmp_path):
    cfg = ApiConfig(port=0)
    async with StateDB(tmp_path / "s.db") as db:
        maintenance = await MaintenanceBook.load(db, INVENTORY, [])
        ctx = ApiContext(inventory=INVENTORY, snapshot=lambda: None, faults=await FaultBook.load(
            db, INVENTORY, [], maintenance), maintenance=maintenance, token=None, language="zh",
            timezone="Asia/Shanghai", started_ns=0, cycle_interval_s=30)
        async with ApiServer(cfg, ctx) as server, aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{server.port}/api/v1/workorders", json={},
                                 headers=bearer("张工")) as resp:
                assert resp.status == 403 and "api.people" in (await resp.json())["error"]


# --- a work order through its life ------------------------------------------------------------------


async def test_report_acknowledge_arrive_restore_replace_close_with_who_and_when(world):
    now = time.time_ns() // 1000 * 1000  # stamps travel as ISO-8601: microseconds
    t = {name: now - minutes * MIN for name, minutes in
         (("reported", 180), ("ack", 160), ("arrive", 100), ("restore", 60), ("replace", 50), ("close", 5))}
    order = await report(world, reported=iso(t["reported"]), severity="critical")
    ref = order["ref"]
    assert (order["severity"], order["severity_label"], order["stage"]) == ("critical", "紧急", "reported")
    assert order["devices"] == [{"id": "CAM-0001", "name": "城关镇人民广场01号枪机", "kind": "camera",
                                 "site": "城关镇人民广场", "region": "城关镇", "model": "DS-2CD3T46WDV3-L",
                                 "serial": "DS00010713CCWR"}]
    # The clocks of the Qionglai preset (plus a 4 h arrival clock), running since the report.
    clocks = {c["clock"]: c for c in order["clocks"]}
    assert list(clocks) == ["response", "arrival", "restore", "replacement"]
    assert clocks["response"]["label"] == "响应" and clocks["response"]["state"] == "breached"
    assert clocks["response"]["deadline_ns"] == t["reported"] + 15 * MIN
    assert clocks["arrival"]["state"] == "ok" and clocks["arrival"]["deadline_ns"] == t["reported"] + 240 * MIN

    base = f"/api/v1/workorders/{ref}"
    await world.call("POST", f"{base}/acknowledge", 200, json={"at": iso(t["ack"])}, headers=bearer("张工"))
    await world.call("POST", f"{base}/arrive", 200, json={"at": iso(t["arrive"])}, headers=bearer("张工"))
    await world.call("POST", f"{base}/restore", 200, json={"at": iso(t["restore"]), "resolution": "on_site"},
                     headers=bearer("李工"))
    await world.call("POST", f"{base}/replace", 200, headers=bearer("张工"), json={
        "at": iso(t["replace"]), "device": "CAM-0001", "old_serial": "DS00010713CCWR", "new_serial": "DS99990713CCWR",
        "new_model": "DS-2CD3T47"})
    await world.call("POST", f"{base}/note", 200, json={"text": "旧机返厂"}, headers=bearer("张工"))
    closed = await world.call("POST", f"{base}/close", 200, json={"at": iso(t["close"])}, headers=bearer("张工"))

    assert closed["stage"] == "closed" and closed["cancelled"] is False
    assert [(e["action"], e["by"], e["at_ns"]) for e in closed["events"]] == [
        ("opened", "张工", t["reported"]), ("acknowledged", "张工", t["ack"]), ("assigned", "张工", t["ack"]),
        ("arrived", "张工", t["arrive"]), ("restored", "李工", t["restore"]), ("replaced", "张工", t["replace"]),
        ("noted", "张工", closed["events"][-2]["at_ns"]), ("closed", "张工", t["close"]),
    ]
    assert all(e["recorded_ns"] >= now for e in closed["events"][1:])  # entered later, stamped when it happened
    (r,) = closed["replacements"]
    assert (r["device"], r["old_serial"], r["new_serial"], r["old_model"], r["new_model"], r["by"]) == (
        "CAM-0001", "DS00010713CCWR", "DS99990713CCWR", "DS-2CD3T46WDV3-L", "DS-2CD3T47", "张工")
    assert closed["restored"] == iso(t["restore"]).replace("+00:00", "Z")
    stopped = {c["clock"]: c["state"] for c in closed["clocks"]}
    assert stopped == {"response": "missed", "arrival": "met", "restore": "met", "replacement": "met"}

    # Reads: the same order, listed as closed, not open.
    assert await world.call("GET", base, 200) == closed
    assert (await world.call("GET", "/api/v1/workorders", 200))["orders"] == []
    listed = await world.call("GET", "/api/v1/workorders?state=closed", 200)
    assert [o["ref"] for o in listed["orders"]] == [ref] and listed["total"] == 1
    stored = await world.book.get(ref)
    assert (stored.closed_by, stored.restored_by, stored.arrived_ns) == ("张工", "李工", t["arrive"])


async def test_lists_by_state_and_device_newest_closed_first(world):
    a = (await report(world))["ref"]
    b = (await report(world, devices=["CAM-0002"], title="02号无图像"))["ref"]
    c = (await report(world, devices=["SW-001", "CAM-0001"], title="交换机掉线"))["ref"]
    await world.call("POST", f"/api/v1/workorders/{b}/close", 200, json={"cancelled": True}, headers=bearer("王经理"))
    open_ = await world.call("GET", "/api/v1/workorders", 200)
    assert [o["ref"] for o in open_["orders"]] == [a, c] and open_["total"] == 2
    assert abs(open_["now_ns"] - time.time_ns()) < 10 * S
    assert [o["ref"] for o in (await world.call("GET", "/api/v1/workorders?device=CAM-0001", 200))["orders"]] == [a, c]
    every = await world.call("GET", "/api/v1/workorders?state=all&limit=2", 200)
    assert [o["ref"] for o in every["orders"]] == [c, b] and every["total"] == 3
    assert [o["ref"] for o in (await world.call("GET", "/api/v1/workorders?state=closed&device=CAM-0002", 200))
            ["orders"]] == [b]


# --- bad input: a clear error, nothing written ------------------------------------------------------


async def test_bad_input_is_refused_with_its_reason_and_changes_nothing(world):
    ref = (await report(world, reported=iso(time.time_ns() - 60 * MIN)))["ref"]
    await world.call("POST", f"/api/v1/workorders/{ref}/acknowledge", 200, json={}, headers=bearer("张工"))
    before = world.rows()
    base, z = f"/api/v1/workorders/{ref}", bearer("张工")
    hour_ago, two_hours_ago, tomorrow = (iso(time.time_ns() + d * MIN) for d in (-30, -120, 24 * 60))
    cases = [
        ("/api/v1/workorders", {"devices": ["CAM-9999"], "title": "黑屏"}, 400,
         "unknown device: CAM-9999 (not in the point list)"),
        ("/api/v1/workorders", {"devices": [], "title": "黑屏"}, 400, "body.devices"),
        ("/api/v1/workorders", {"devices": ["CAM-0001"], "title": ""}, 400, "body.title"),
        ("/api/v1/workorders", {"devices": ["CAM-0001"], "title": "x", "severity": "urgent"}, 400, "body.severity"),
        ("/api/v1/workorders", {"devices": ["CAM-0001"], "title": "x", "reported": tomorrow}, 400,
         "the time is in the future"),
        ("/api/v1/workorders", {"devices": ["CAM-0001"], "title": "x", "reported": "2026-12-01 10:00"}, 400,
         "body.reported"),
        ("/api/v1/workorders", {"devices": ["CAM-0001"], "title": "x", "reported": "1900-01-01T00:00:00Z"}, 400,
         "1900-01-01 is out of range"),
        (f"{base}/arrive", {"at": "1800-01-01T00:00:00+08:00"}, 400, "1800-01-01 is out of range"),
        (f"{base}/arrive", {"at": two_hours_ago}, 409, "the time is before the report"),
        (f"{base}/acknowledge", {}, 409, "already recorded"),
        (f"{base}/restore", {"resolution": "on_site"}, 409, "an on-site restore needs the arrival (到场) recorded first"),
        (f"{base}/restore", {"resolution": "by_magic"}, 400, "body.resolution"),
        (f"{base}/close", {}, 409, "record the restore (修复) first"),
        (f"{base}/replace", {"device": "CAM-0002", "old_serial": "A", "new_serial": "B"}, 400,
         "device CAM-0002 is not one of this order's"),
        (f"{base}/replace", {"device": "CAM-0001", "old_serial": "A", "new_serial": "A"}, 400,
         "the new serial number equals the old one"),
        (f"{base}/replace", {"device": "CAM-0001", "old_serial": "A"}, 400, "body.new_serial: Field required"),
        (f"{base}/confirm-replacement", {}, 409, "no replacement proposal to confirm"),
        (f"{base}/classify", {}, 400, "give a cause, a resolution or no_spare"),
        (f"{base}/classify", {"cause": "weather"}, 400, "body.cause"),
        (f"{base}/arrive", {"at": hour_ago, "when": "now"}, 400, "body.when: Extra inputs are not permitted"),
        (f"{base}/arrive", {"at": 1700000000}, 400, "body.at"),
        ("/api/v1/workorders/WO-20991231-0001/arrive", {}, 404, "no work order 'WO-20991231-0001'"),
        ("/api/v1/workorders/nonsense/acknowledge", {}, 404, "no work order 'nonsense'"),
    ]
    for path, body, status, reason in cases:
        error = (await world.call("POST", path, status, json=body, headers=z))["error"]
        assert reason in error, (path, body, error)
    assert world.rows() == before
    assert "no work order" in (await world.call("GET", "/api/v1/workorders/WO-20991231-0001", 404))["error"]
    assert "unknown device 'CAM-9'" in (await world.call("GET", "/api/v1/workorders?device=CAM-9", 400))["error"]
    assert "query.state" in (await world.call("GET", "/api/v1/workorders?state=done", 400))["error"]


async def test_nothing_is_recorded_on_a_closed_order(world):
    ref = (await report(world))["ref"]
    await world.call("POST", f"/api/v1/workorders/{ref}/restore", 200, json={}, headers=bearer("张工"))
    await world.call("POST", f"/api/v1/workorders/{ref}/close", 200, json={}, headers=bearer("张工"))
    before = world.rows()
    for method, path, body in writes(ref)[1:10]:
        error = (await world.call(method, path, 409, json=body, headers=bearer("王经理")))["error"]
        assert f"{ref} is closed (张工): nothing more is recorded on it" == error, (path, error)
    assert world.rows() == before


async def test_concurrent_acknowledgements_record_one(world):
    ref = (await report(world))["ref"]
    statuses = []

    async def ack(who: str) -> None:
        async with world.http.post(f"{world.url}/api/v1/workorders/{ref}/acknowledge", json={},
                                   headers=bearer(who)) as resp:
            statuses.append(resp.status)

    await asyncio.gather(*(ack(who) for who in ("张工", "李工", "王经理", "张工")))
    assert sorted(statuses) == [200, 409, 409, 409]
    order = await world.book.get(ref)
    assert order.acknowledged_by in ("张工", "李工", "王经理") and order.assignee == order.acknowledged_by


async def test_without_work_orders_their_routes_answer_503(tmp_path):
    async with make_world(tmp_path, orders=False) as w:
        for method, path, body in [("GET", "/api/v1/workorders", None), ("GET", "/api/v1/workorders/WO-1", None),
                                   *writes("WO-20261204-0001")[:10]]:
            kw = {"json": body} if body is not None else {}
            error = (await w.call(method, path, 503, headers=bearer("王经理"), **kw))["error"]
            assert "work orders are not enabled" in error
        assert (await w.call("GET", "/api/v1/whoami", 200))["workorders"] is False


# --- the document ---------------------------------------------------------------------------------


async def test_openapi_lists_every_work_order_route_with_its_role(world):
    paths = world.doc["paths"]
    assert set(paths["/api/v1/workorders"]) == {"get", "post"}
    assert set(paths["/api/v1/workorders/{ref}"]) == {"get"}
    actions = sorted(p.rsplit("/", 1)[1] for p in paths if p.startswith("/api/v1/workorders/{ref}/"))
    assert actions == ["acknowledge", "arrive", "assign", "classify", "close", "confirm-replacement", "note",
                       "replace", "restore"]
    for path, ops in paths.items():
        if path.startswith("/api/v1/workorders"):
            for method, op in ops.items():
                assert "503" in op["responses"] and "500" in op["responses"]
                if method == "post":
                    assert op["security"] == [{"bearer": []}] and "403" in op["responses"]
                    assert "duty or manager role" in op["description"]
                    assert ("409" in op["responses"]) is ("{ref}" in path)
    assert "manager role" in paths["/api/v1/maintenance"]["post"]["description"]
    assert "duty or manager" in paths["/api/v1/faults/{id}/ack"]["post"]["description"]
    report_in = world.doc["components"]["schemas"]["ReportIn"]
    assert report_in["required"] == ["devices", "title"] and report_in["additionalProperties"] is False
    assert "/api/v1/whoami" in paths
    assert (await world.call("GET", "/api/v1/workorders", 200))["orders"] == []  # served as documented


async def test_devices_search_by_id_or_name_for_the_page(world):
    found = await world.call("GET", "/api/v1/devices?q=02号", 200)
    assert [d["id"] for d in found["devices"]] == ["CAM-0002"] and found["devices"][0]["serial"] == "DS00020713CCWR"
    assert [d["id"] for d in (await world.call("GET", "/api/v1/devices?q=cam-000", 200))["devices"]] == [
        "CAM-0001", "CAM-0002"]
    assert "query.q" in (await world.call("GET", "/api/v1/devices?q=" + "x" * 65, 400))["error"]
