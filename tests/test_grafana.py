"""Grafana dashboards as code (deploy/grafana): the committed JSON is what the generator makes and
passes the SDK's own model check; every panel reads only what monitor/metrics/schema.py declares; every
panel's InfluxQL, with the template variables resolved as Grafana resolves them, runs on a real
InfluxDB filled by the daemon on a lab fleet with all its services (ICMP, RTSP, ONVIF, SNMP and
traps; a UPS goes on battery and an uplink down during the run; rules raise faults) and returns
a value. The alarm tables list exactly the lab's ground truth."""

from __future__ import annotations

import asyncio
import copy
import importlib.util
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from lab.fleet import Impairments, LabFleet, build_small_fleet
from lab.influxdb import InfluxServer
from lab.net import LabNet
from lab.services import DRIFT_S, UPGRADED_FIRMWARE, Anomalies, FleetServices
from lab.snmp import SWITCH_UPLINK
from monitor.app.config import load_config
from monitor.metrics.config import InfluxDBConfig
from monitor.app.daemon import Daemon
from monitor.fleet.inventory import load_inventory
from monitor.core.model import Device
from monitor.metrics.schema import MEASUREMENTS
from rules.model import FaultState

REPO = Path(__file__).resolve().parent.parent
GRAFANA = REPO / "deploy" / "grafana"


def _load_generator():
    spec = importlib.util.spec_from_file_location("fleetmon_grafana_generate", GRAFANA / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


gen = _load_generator()
BOARDS = gen.boards()
PANELS = [panel for board in BOARDS for panel in board.panels]

# Grafana's InfluxQL substitutions for a dashboard showing the last hour with a 10 s interval.
TIME_FILTER = "time >= now() - 1h"
INTERVAL = "10s"


# -- what a panel needs and what the schema declares -------------------------------------------


def undeclared(need: str) -> bool:
    """`need` is a measurement, or `measurement.key` for one of its tags or fields."""
    measurement, _, key = need.partition(".")
    spec = MEASUREMENTS.get(measurement)
    return spec is None or bool(key) and key not in spec.tags and key not in spec.fields


def test_no_panel_waits_for_a_measurement_the_schema_does_not_declare():
    waiting = [f"{p.dashboard_uid} / {p.title}: {sorted(filter(undeclared, p.needs))}"
               for p in PANELS if any(map(undeclared, p.needs))]
    assert not waiting, "panels need what monitor/metrics/schema.py does not declare:\n" + "\n".join(waiting)
    # The check can fail: a need of a measurement or key nobody declares is seen.
    assert undeclared("online_rate.no_such_key") and undeclared("no_such_measurement")
    assert not undeclared("online_rate.basis") and not undeclared("ups")


def queried_measurements(query: str) -> set[str]:
    return set(re.findall(r'\bFROM "(\w+)"', query))


def identifiers(query: str) -> set[str]:
    """Double-quoted identifiers a query reads (tags, fields, measurements), without its aliases."""
    return set(re.findall(r'"(\w+)"', query)) - set(re.findall(r'\bAS "(\w+)"', query))


# -- static checks ------------------------------------------------------------------------------


def test_committed_dashboards_equal_a_fresh_generation():
    expected = {gen.path_of(board).name: gen.render(board) for board in BOARDS}
    committed = {path.name: path.read_text(encoding="utf-8") for path in (GRAFANA / "dashboards").glob("*.json")}
    assert set(committed) == set(expected), "run: python deploy/grafana/generate.py"
    for name, text in expected.items():
        assert committed[name] == text, f"{name} is stale: run python deploy/grafana/generate.py"
    assert gen.main(["--check"]) == 0


def _sdk_round_trip(data: dict) -> tuple[Dashboard, dict]:
    model = Dashboard.from_json(data)
    return model, json.loads(json.dumps(model, cls=JSONEncoder))


def test_dashboards_pass_the_sdk_model_check():
    """Decoding through the SDK's typed models (panel options and field config per panel type,
    InfluxQL targets via our registered variant) and encoding again gives the same JSON: no key
    the models do not know, no value of the wrong shape."""
    register_default_plugins()
    gen.register_influxql()
    uids = set()
    for board in BOARDS:
        data = json.loads(gen.path_of(board).read_text(encoding="utf-8"))
        model, again = _sdk_round_trip(data)
        assert again == data, board.uid
        uids.add(model.uid)
        panels = [p for p in model.panels if p.type_val != "row"]
        assert len(panels) == len(board.panels) and panels
        for panel in panels:
            assert panel.datasource.uid == gen.DATASOURCE_UID and panel.datasource.type_val == "influxdb"
            assert panel.targets and all(isinstance(t, gen.InfluxQLTarget) for t in panel.targets), panel.title
            assert all(t.datasource.uid == gen.DATASOURCE_UID for t in panel.targets)
            assert len({t.ref_id for t in panel.targets}) == len(panel.targets)
        assert len({p.id_val for p in model.panels}) == len(model.panels), "panel ids are unique"
        for panel in panels:  # the grid is 24 wide
            assert panel.grid_pos.x + panel.grid_pos.w <= 24, panel.title
        for variable in model.templating.list_val:
            assert variable.datasource.uid == gen.DATASOURCE_UID
    assert uids == {board.uid for board in BOARDS} and len(uids) == len(BOARDS)


def test_the_model_check_fails_on_unknown_options_and_bad_targets():
    register_default_plugins()
    gen.register_influxql()
    data = json.loads(gen.path_of(BOARDS[0]).read_text(encoding="utf-8"))
    stat_panel = next(p for p in data["panels"] if p["type"] == "stat")
    broken = copy.deepcopy(data)
    next(p for p in broken["panels"] if p["id"] == stat_panel["id"])["options"]["colourMode"] = "background"
    assert _sdk_round_trip(broken)[1] != broken  # the typed stat options drop what they do not know

    target = stat_panel["targets"][0]
    with pytest.raises(ValueError, match="rawQuery must be true"):
        gen.InfluxQLTarget.from_json({**target, "rawQuery": False})
    with pytest.raises(ValueError, match="resultFormat must be one of"):
        gen.InfluxQLTarget.from_json({**target, "resultFormat": "logs"})
    with pytest.raises(ValueError, match="unknown keys"):
        gen.InfluxQLTarget.from_json({**target, "measurement": "icmp"})
    with pytest.raises(ValueError, match="needs a query"):
        gen.InfluxQLTarget.from_json({**target, "query": " "})


def test_needs_name_exactly_what_the_queries_read():
    for panel in PANELS:
        queries = [t.query for t in panel.targets]
        read = set().union(*map(queried_measurements, queries))
        assert {need.partition(".")[0] for need in panel.needs} == read, panel.title
        for need in panel.needs:
            measurement, _, key = need.partition(".")
            if key:
                assert any(f'"{key}"' in q for q in queries), f"{panel.title}: {need} is not used"
        # Every tag and field it reads is declared: a renamed field fails here, not on the wall.
        declared = set().union(*(set(MEASUREMENTS[m].tags) | set(MEASUREMENTS[m].fields) for m in read))
        unknown = set().union(*map(identifiers, queries)) - declared - read
        assert not unknown, f"{panel.title}: {sorted(unknown)} not declared in monitor/metrics/schema.py"


def test_template_variables_and_queries_use_grafana_macros_only_where_grafana_expands_them():
    for panel in PANELS:
        for target in panel.targets:
            assert "$timeFilter" in target.query, panel.title
            names = set(re.findall(r"\$(\w+)", target.query)) - {"timeFilter", "__interval"}
            board = next(b for b in BOARDS if b.uid == panel.dashboard_uid)
            variables = {v.name for v in board.build().templating.list_val}
            assert names <= variables, f"{panel.title}: {names - variables}"


def test_provisioning_matches_the_dashboards_and_the_daemon_defaults():
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "fleetmon.yaml").read_text())
    [ds] = datasources["datasources"]
    assert ds["uid"] == gen.DATASOURCE_UID and ds["type"] == "influxdb"
    assert ds["jsonData"]["dbName"] == InfluxDBConfig().database and ds["jsonData"]["version"] == "InfluxQL"
    assert ds["url"] == "http://127.0.0.1:8086"
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "fleetmon.yaml").read_text())
    [provider] = providers["providers"]
    assert provider["type"] == "file" and provider["folder"] == "fleetmon"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/fleetmon"


# -- on a real InfluxDB filled by the daemon ----------------------------------------------------

FAILED = ("SW-002", "CAM-0016")  # a switch with its UPS and cameras; one camera of the last site
ON_BATTERY = "UPS-001"  # mains lost during the run
UPLINK_DOWN = "SW-001"  # its uplink port goes down during the run; it sends the linkDown trap too
ANOMALIES = Anomalies(no_video=1, clock_drift=1, upgraded=1)
TRAP_COMMUNITY = "traps"  # FleetServices.send_trap's default v2c community
# Every probe at test speed (the SNMP probe's shortest interval is 5 s; rates need two polls).
PROBES = {
    "icmp": {"interval_s": 1.0, "count": 2, "echo_interval_ms": 50, "timeout_s": 0.6},
    "rtsp": {"interval_s": 1.0, "timeout_s": 2.0},
    "onvif": {"interval_s": 10.0, "timeout_s": 3.0},
    "snmp": {"interval_s": 5.0, "timeout_s": 1.0},
}
# Raised at once (for_s 0): the fault panels get rows within the run, one rule per problem made.
RULES = {
    "device-down": "device_down", "video-down": "video_down", "clock-drift": "clock_drift",
    "firmware": "inventory_mismatch", "uplink-down": "port_down", "ups-on-battery": "ups_on_battery",
}
RUN_TIMEOUT_S = 45.0
# One site slow (250 ms, lab.fleet.SLOW): its line is over the contract's 200 ms on the wall.
IMPAIRED = Impairments(slow=1, lossy=0, dark=0)
OWNER = "王工"  # who takes the first work order (处理人)


@dataclass(frozen=True)
class Filled:
    influx: InfluxServer
    db: str
    fleet: LabFleet
    no_video: frozenset[str]
    clock_drift: frozenset[str]
    upgraded: frozenset[str]

    def run(self, influxql: str) -> list[dict]:
        return self.influx.query(influxql, self.db)[0].get("series", [])


MAINTENANCE_REASON = "更换镜头"


def in_maintenance(fleet: LabFleet) -> str:
    """The counted camera behind the failed switch that the config puts in maintenance."""
    return next(d.id for d in fleet.behind(FAILED[0]) if d.counted)


def _write_config(workdir: Path, fleet: LabFleet, services: FleetServices, influx_url: str, db: str) -> Path:
    fleet.write_point_list(workdir / "points.csv")
    (workdir / "trap.communities").write_text(TRAP_COMMUNITY)
    probes = services.probe_config()
    config = {
        "inventory": {"point_lists": ["points.csv"]},
        "probes": {name: {**probes.get(name, {}), **cfg} for name, cfg in PROBES.items()},
        "scheduler": {"spread": 0.2},
        "state": {"database": "state.db", "down_after": 1, "up_after": 1},
        "influxdb": {"url": influx_url, "database": db, "flush_interval_s": 0.2},
        "api": {"port": 0},
        "traps": {"enabled": True, "listen": "0.0.0.0", "port": 0, "communities_file": "trap.communities"},
        "rules": [{"name": name, "type": kind} for name, kind in RULES.items()],
        # Every fault about a device opens a work order; the Qionglai tender's SLA clocks run on it.
        "assessment": {"workorders": {"open_on": [{}]}, "sla": {"preset": "qionglai"}},
        # One camera behind the failed switch is in maintenance: the wall's offline table says so.
        "maintenance": [{"match": {"devices": [in_maintenance(fleet)]}, "reason": MAINTENANCE_REASON,
                         "start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600)),
                         "end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 6 * 3600))}],
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def _polled(daemon: Daemon, device_id: str) -> dict[str, dict]:
    """The latest SNMP poll of a device as {measurement or interface: fields} ({} before it)."""
    result = daemon.snapshot.results.get("snmp", {}).get(device_id) if daemon.snapshot else None
    if result is None:
        return {}
    return {"snmp": result.fields, **{s.tags.get("interface", s.measurement): s.fields for s in result.series}}


def _firing(daemon: Daemon) -> set[str]:
    faults = daemon.snapshot.open_faults if daemon.snapshot else ()
    return {f.rule for f in faults if f.state is FaultState.FIRING}


async def _until(task: asyncio.Task, predicate, what: str) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not predicate():
        if task.done():
            task.result()  # the daemon's own error
            raise AssertionError(f"the daemon stopped before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def _run_daemon(config: Path, services: FleetServices) -> None:
    """Run the daemon until every rule fires and the second SNMP poll (rates, the UPS on
    battery, the uplink down) is in; the changes are made after the first poll."""
    cfg = load_config(config)
    daemon = Daemon(cfg, load_inventory(cfg))
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    try:
        await _until(task, lambda: _polled(daemon, ON_BATTERY) and _polled(daemon, UPLINK_DOWN), "the first SNMP poll")
        services.ups_on_battery(ON_BATTERY)
        services.uplink_down(UPLINK_DOWN)
        assert daemon.traps is not None and daemon.traps.port
        await asyncio.to_thread(services.send_trap, UPLINK_DOWN, "link_down", daemon.traps.port)

        def settled() -> bool:
            ups, switch = _polled(daemon, ON_BATTERY).get("ups", {}), _polled(daemon, UPLINK_DOWN)
            return (ups.get("on_battery") is True and switch.get(SWITCH_UPLINK, {}).get("oper_status") == 2
                    and set(RULES) <= _firing(daemon))

        await _until(task, settled, f"the second SNMP poll and faults {sorted(RULES)}")
        # Someone takes the first order; the next cycles' snapshots (work_order_open) show it.
        book = daemon.workorders
        assert book is not None
        await _until(task, lambda: bool(book.open_orders()), "the first work order")
        await book.assign(book.open_orders()[0].ref, OWNER, by="值班员")
        seen: list[object] = [daemon.snapshot]

        def cycles(n: int):
            def more() -> bool:
                if daemon.snapshot is not seen[-1]:
                    seen.append(daemon.snapshot)
                return len(seen) > n
            return more

        await _until(task, cycles(3), "three cycles after the assignment")
        await asyncio.sleep(0.5)  # the sink's flush interval is 0.2 s
    finally:
        stop.set()
        await task


@pytest.fixture(scope="module")
def filled(influx: InfluxServer, _lab_stale_cleaned: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    if os.geteuid() != 0:
        pytest.skip("the lab network needs root")
    net = LabNet(workdir=tmp_path_factory.mktemp("lab"))
    db = "grafana_panels"
    try:
        fleet = build_small_fleet(net, impaired=IMPAIRED)
        fleet.fail(FAILED[0])
        fleet.fail(FAILED[1], cascade=False)
        influx.create_database(db)
        with FleetServices(fleet, ANOMALIES) as services:
            config = _write_config(tmp_path_factory.mktemp("daemon"), fleet, services, influx.url, db)
            asyncio.run(asyncio.wait_for(_run_daemon(config, services), RUN_TIMEOUT_S + 15))
            anomalies = frozenset(services.no_video), frozenset(services.clock_drift), frozenset(services.upgraded)
        yield Filled(influx, db, fleet, *anomalies)
    finally:
        influx.drop_database(db)
        net.close()


def _regex_escape(value: str) -> str:
    """Grafana's escapeRegex (@grafana/data), which its InfluxDB datasource applies to the values
    of multi-value and include-all variables."""
    return re.sub(r"[\\^$*+?.()|\[\]{}/]", lambda m: "\\" + m.group(), value)


def interpolate(query: str, values: dict[str, str | list[str]]) -> str:
    """Grafana's InfluxQL substitution: $timeFilter and $__interval as for the last hour at 10 s;
    a multi-value (or include-all) variable becomes its escaped value, or `(a|b|…)` for several;
    a single-value variable is inserted as is (our queries quote it: `'$device_id'`)."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "timeFilter":
            return TIME_FILTER
        if name == "__interval":
            return INTERVAL
        value = values[name]
        if isinstance(value, str):
            return value
        escaped = [_regex_escape(v) for v in value]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"

    return re.sub(r"\$(\w+)", one, query)


def tag_values(filled: Filled, query: str) -> list[str]:
    return [value for series in filled.run(query) for _key, value in series["values"]]


def resolve_variables(filled: Filled, board, selected: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """Every multi-value variable of the dashboard in order, each query run with the values
    before it, "All" selected unless `selected` says otherwise. Single-value variables are
    resolved to their options (the caller picks one)."""
    values: dict[str, list[str]] = {}
    for variable in board.build().templating.list_val:
        options = tag_values(filled, interpolate(variable.query, values))
        assert options, f"{board.uid}: variable {variable.name} has no values"
        values[variable.name] = (selected or {}).get(variable.name, options)
    return values


def _pick_device(filled: Filled, options: list[str], kind: str) -> str:
    """The first device of `kind` among the options that answers and has nothing wrong (what an
    engineer looks at to see every panel of its kind filled)."""
    for device_id in options:
        device: Device = filled.fleet.device(device_id)
        if (device.kind.value == kind and device.counted and filled.fleet.net.is_up(device.address)
                and device_id not in filled.no_video):
            return device_id
    raise AssertionError(f"no {kind} that is up among {options}")


def _has_data(series: list[dict]) -> bool:
    return any(
        value is not None
        for s in series for row in s["values"] for column, value in zip(s["columns"], row) if column != "time"
    )


def _panel(uid: str, title: str):
    return next(p for p in PANELS if p.dashboard_uid == uid and p.title == title)


def _rows(filled: Filled, uid: str, title: str, selected: dict[str, list[str]] | None = None) -> list[dict]:
    """The rows of a panel's first query as Grafana shows them with `selected` (else "All"):
    each a dict of its GROUP BY tags and columns."""
    board = next(b for b in BOARDS if b.uid == uid)
    query = interpolate(_panel(uid, title).targets[0].query, resolve_variables(filled, board, selected))
    return [{**s.get("tags", {}), **dict(zip(s["columns"], row))} for s in filled.run(query) for row in s["values"]]


@pytest.mark.root
def test_template_variables_resolve_to_the_lab_fleet(filled: Filled):
    probed = [d for d in filled.fleet.devices if d.address is not None]
    regions = sorted({d.region for d in probed})
    board = next(b for b in BOARDS if b.uid == "fleetmon-device")
    every = resolve_variables(filled, board)
    assert sorted(every["region"]) == regions
    assert sorted(every["site"]) == sorted({d.site for d in probed})
    assert sorted(every["device_id"]) == sorted(d.id for d in probed)
    one = resolve_variables(filled, board, {"region": [regions[1]]})
    assert sorted(one["site"]) == sorted({d.site for d in probed if d.region == regions[1]})
    assert sorted(one["device_id"]) == sorted(d.id for d in probed if d.region == regions[1])
    links = resolve_variables(filled, next(b for b in BOARDS if b.uid == "fleetmon-links"))
    assert sorted(links["link"]) == sorted(d.id for d in probed if d.kind.value == "link")


@pytest.mark.root
def test_offline_points_table_lists_exactly_the_devices_down(filled: Filled):
    """Down on the contract's basis: the failed switch, what is behind it, the failed camera, and
    the camera that pings but sends no video."""
    fleet = filled.fleet
    down = {FAILED[0], FAILED[1], *(d.id for d in fleet.behind(FAILED[0])), *filled.no_video}
    expected = {i for i in down if fleet.device(i).counted}
    rows = _rows(filled, "fleetmon-hall", "离线点位")
    assert {r["device_id"] for r in rows} == expected
    assert {r["state"] for r in rows} == {"down", "unreachable"}
    # The point in a maintenance window carries its reason (维护); the others an empty one.
    assert {r["device_id"]: r["maintenance"] for r in rows if r["maintenance"]} == {
        in_maintenance(fleet): MAINTENANCE_REASON}
    # Filtered to the region of the last site: only its devices.
    region = fleet.device(FAILED[1]).region
    rows = _rows(filled, "fleetmon-hall", "离线点位", {"region": [region]})
    assert {r["device_id"] for r in rows} == {i for i in expected if fleet.device(i).region == region}


@pytest.mark.root
def test_alarm_tables_list_exactly_the_devices_in_trouble(filled: Filled):
    fleet = filled.fleet
    [lost] = filled.no_video
    rows = _rows(filled, "fleetmon-region", "有网无视频摄像机")
    assert [(r["device_id"], r["site"], r["region"]) for r in rows] == [
        (lost, fleet.device(lost).site, fleet.device(lost).region)
    ]  # not the cameras that are down on the network too
    other_region = next(d.region for d in fleet.devices if d.region != fleet.device(lost).region)
    assert _rows(filled, "fleetmon-region", "有网无视频摄像机", {"region": [other_region]}) == []

    # The failed switch's uplink is not polled at all; only the one taken down is listed.
    rows = _rows(filled, "fleetmon-region", "交换机上联端口中断")
    assert [(r["device_id"], r["interface"], r["oper_status"], r["admin_status"]) for r in rows] == [
        (UPLINK_DOWN, SWITCH_UPLINK, 2, 1)
    ]
    assert [r["count"] for r in _rows(filled, "fleetmon-region", "UPS 电池供电数")] == [1]
    rows = _rows(filled, "fleetmon-region", "UPS 状态")
    assert {r["device_id"] for r in rows if r["on_battery"]} == {ON_BATTERY}

    rows = {r["device_id"]: r for r in _rows(filled, "fleetmon-region", "时钟偏差与固件不符")}
    assert set(rows) == filled.clock_drift | filled.upgraded
    assert all(rows[i]["clock_drift_s"] == pytest.approx(DRIFT_S, abs=1) for i in filled.clock_drift)
    assert all(rows[i]["firmware"] == UPGRADED_FIRMWARE and UPGRADED_FIRMWARE in rows[i]["inventory_mismatch"]
               for i in filled.upgraded)

    rows = _rows(filled, "fleetmon-region", "最近 SNMP Trap")
    assert [(r["device_id"], r["trap"], r["if_name"]) for r in rows] == [(UPLINK_DOWN, "link_down", SWITCH_UPLINK)]

    rows = _rows(filled, "fleetmon-region", "最近故障事件")
    assert {r["rule"] for r in rows if r["event"] == "firing"} == set(RULES)
    assert {r["device_id"] for r in rows if r["rule"] == "video-down"} == filled.no_video
    open_faults = {r["severity"]: r["last"] for r in _rows(filled, "fleetmon-region", "未恢复故障（按级别）")}
    assert sum(open_faults.values()) >= len(RULES) and open_faults["critical"] >= 1  # the UPS on battery


@pytest.mark.root
def test_every_panel_returns_data(filled: Filled):
    empty, checked = [], 0
    for board in BOARDS:
        values = resolve_variables(filled, board)
        for panel in board.panels:
            chosen: dict[str, str | list[str]] = dict(values)
            if panel.device_kind is not None:
                chosen["device_id"] = _pick_device(filled, values["device_id"], panel.device_kind)
            for target in panel.targets:
                query = interpolate(target.query, chosen)
                assert "$" not in query.replace("$/", ""), query  # nothing left for Grafana
                series = filled.run(query)  # raises InfluxError on a query InfluxDB refuses
                checked += 1
                if not _has_data(series):
                    empty.append(f"{board.uid} / {panel.title} [{target.ref_id}]: {query}")
    assert checked == sum(len(p.targets) for p in PANELS)
    assert not empty, "panels without a value on the lab fleet's data:\n" + "\n".join(empty)


# -- the command hall's wall ---------------------------------------------------------------------

WALL = "fleetmon-hall"


def _board_json(uid: str) -> dict:
    return json.loads((GRAFANA / "dashboards" / f"{uid}.json").read_text(encoding="utf-8"))


def wall_overflow(data: dict) -> list[str]:
    """What keeps dashboard JSON `data` from filling one 1920×1080 kiosk screen with no scroll:
    panels past the grid's 24 columns, overlapping, rows (collapsible: they hide panels), or a
    grid taller than the screen less Grafana's chrome."""
    problems, cells = [], {}
    for panel in data["panels"]:
        pos = panel["gridPos"]
        if panel["type"] == "row":
            problems.append(f"row {panel['title']!r} on the wall")
        if pos["x"] + pos["w"] > gen.GRID_COLUMNS:
            problems.append(f"{panel['title']!r} past column {gen.GRID_COLUMNS}")
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                if (x, y) in cells:
                    problems.append(f"{panel['title']!r} overlaps {cells[x, y]!r}")
                cells[x, y] = panel["title"]
    units = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in data["panels"])
    height, room = gen.grid_height_px(units), gen.WALL_HEIGHT_PX - gen.KIOSK_CHROME_PX
    if height > room:
        problems.append(f"{units} grid rows are {height} px, the screen has {room} px")
    return sorted(set(problems))


def test_the_wall_fits_one_1080p_screen_without_scrolling():
    data = _board_json(WALL)
    assert wall_overflow(data) == []
    units = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in data["panels"])
    assert gen.grid_height_px(units) == units * 30 + (units - 1) * 8 <= 1080 - gen.KIOSK_CHROME_PX
    # And every column of the bottom is used: nothing left blank on the wall.
    assert {x for p in data["panels"] for x in range(p["gridPos"]["x"], p["gridPos"]["x"] + p["gridPos"]["w"])
            if p["gridPos"]["y"] + p["gridPos"]["h"] == units} == set(range(24))
    # The check can fail: the region dashboard scrolls, a panel made taller or wider is seen.
    assert any("px" in problem for problem in wall_overflow(_board_json("fleetmon-region")))
    taller = copy.deepcopy(data)
    taller["panels"][-1]["gridPos"]["h"] += 2
    assert any("px" in p for p in wall_overflow(taller))
    wider = copy.deepcopy(data)
    wider["panels"][0]["gridPos"]["w"] += 1
    assert any("overlaps" in p for p in wall_overflow(wider))


# Each field with a limit people judge it by, and that limit (contract, rules' defaults).
LIMITS = {
    "online_rate_pct": gen.ONLINE_RATE_TARGET_PCT, "rtt_avg_ms": gen.LINE_RTT_LIMIT_MS,
    "jitter_ms": gen.JITTER_LIMIT_MS, "loss_pct": gen.LOSS_LIMIT_PCT, "clock_drift_s": gen.CLOCK_DRIFT_LIMIT_S,
    "used_pct": gen.STORAGE_LIMIT_PCT, "storage_max_used_pct": gen.STORAGE_LIMIT_PCT,
    "minutes_remaining": gen.UPS_MINUTES_LOW, "charge_pct": gen.UPS_CHARGE_LOW_PCT, "sla_remaining_s": 0,  # in hours
}


def threshold_values(panel: dict) -> set[float]:
    """Step values of a panel's thresholds: its defaults' and its per-column overrides'."""
    config = panel.get("fieldConfig", {})
    configs = [config.get("defaults", {}).get("thresholds")] + [
        prop["value"] for o in config.get("overrides", []) for prop in o["properties"] if prop["id"] == "thresholds"
    ]
    return {step["value"] for c in configs if c for step in c["steps"] if step["value"] is not None}


def missing_limits(panel: dict) -> list[str]:
    """Fields with a limit that `panel` reads but shows without it: neither a threshold at the
    limit nor a query filtering on it (a count of what is over the limit)."""
    queries = [t["query"] for t in panel.get("targets", [])]
    read = set().union(*map(identifiers, queries)) if queries else set()
    return [
        f"{panel['title']}: {name} without its limit {limit:g}" for name, limit in LIMITS.items()
        if name in read and limit not in threshold_values(panel)
        and not any(re.search(rf'"{name}" [<>]=? {limit:g}\b', q) for q in queries)
    ]


def test_every_panel_with_a_limit_shows_it():
    boards = {board.uid: _board_json(board.uid) for board in BOARDS}
    missing = [m for data in boards.values() for p in data["panels"] for m in missing_limits(p)]
    assert not missing, "\n".join(missing)
    limited = [p for data in boards.values() for p in data["panels"]
               if set(LIMITS) & set().union(set(), *(identifiers(t["query"]) for t in p.get("targets", [])))]
    assert len(limited) >= 15  # the loss and jitter panels among them
    assert {"丢包率", "抖动", "专线丢包率", "专线抖动"} <= {p["title"] for p in limited}
    # The check can fail: the loss panel without its thresholds is seen.
    loss = copy.deepcopy(next(p for p in boards["fleetmon-device"]["panels"] if p["title"] == "丢包率"))
    loss["fieldConfig"]["defaults"]["thresholds"]["steps"] = [{"color": "green", "value": None}]
    assert missing_limits(loss) == [f"丢包率: loss_pct without its limit {gen.LOSS_LIMIT_PCT:g}"]


def _organize(panel: dict) -> dict:
    return next((t["options"] for t in panel.get("transformations", []) if t["id"] == "organize"),
                {"excludeByName": {}, "renameByName": {}})


def lists_devices(query: str) -> bool:
    """The query's rows carry device ids: selected, or a tag of its outermost GROUP BY."""
    grouped = query.rpartition("GROUP BY")[2] if "GROUP BY" in query else ""
    return '"device_id"' in query.split(" FROM ")[0] or '"device_id"' in grouped


def ids_without_names(panel: dict) -> list[str]:
    """Where `panel` shows devices by id only: a table or map listing device_id without a name
    column (selected from device_state, or joined from the names lookup), a legend of ids."""
    if panel["type"] == "row":
        return []
    queries = [t["query"] for t in panel["targets"]]
    organize = _organize(panel)
    shown = lambda column: not organize["excludeByName"].get(column)  # noqa: E731
    problems = []
    if panel["type"] in ("table", "geomap") and any(map(lists_devices, queries[:1])) and shown("device_id"):
        joined = any(t["id"] == "joinByField" and t["options"]["byField"] == "device_id"
                     for t in panel.get("transformations", [])) and gen.names(gen.IN_SITES) in queries[1:] + [
                         q.replace('"region" =~ /.*/', gen.IN_SITES) for q in queries[1:]]
        selected = any(re.search(r'"(name|device_name)"', q) for q in queries[:1])
        if not (joined or selected) or not (shown("name") or shown("device_name")):
            problems.append(f"{panel['title']}: device ids without names")
    for target in panel["targets"]:
        if "$tag_device_id" in target.get("alias", "") and "$tag_site" not in target["alias"]:
            problems.append(f"{panel['title']}: a legend of device ids")
    return problems


def test_people_read_names_not_device_ids():
    problems = [m for board in BOARDS for p in _board_json(board.uid)["panels"] for m in ids_without_names(p)]
    assert not problems, "\n".join(problems)
    # On the wall no device id column at all: the names only.
    for panel in _board_json(WALL)["panels"]:
        organize = _organize(panel)
        assert organize["excludeByName"].get("device_id") or not any(
            '"device_id"' in t["query"] and "GROUP BY" in t["query"] and panel["type"] == "table"
            for t in panel["targets"][:1]), panel["title"]
    # The check can fail: the uplink table without its names lookup is seen.
    uplinks = copy.deepcopy(next(p for p in _board_json("fleetmon-region")["panels"] if p["title"] == "交换机上联端口中断"))
    uplinks["targets"] = uplinks["targets"][:1]
    assert ids_without_names(uplinks) == ["交换机上联端口中断: device ids without names"]


ENGLISH_VALUES = {"up", "down", "unreachable", "unknown", "camera", "switch", "critical", "major", "minor",
                  "firing", "resolved", "link_down", "true", "false"}


def test_values_people_read_are_mapped_to_chinese():
    """Every state, kind, severity, event, trap type and yes/no column of a table shows Chinese:
    each column of those fields has a value mapping whose texts contain no English word alone."""
    columns = {"state": "状态", "kind": "类型", "severity": "级别", "event": "事件", "trap": "类型"}
    for board in BOARDS:
        for panel in _board_json(board.uid)["panels"]:
            if panel["type"] != "table":
                continue
            rename = _organize(panel)["renameByName"]
            overrides = {o["matcher"]["options"]: o["properties"] for o in panel["fieldConfig"]["overrides"]}
            read = set().union(*(identifiers(t["query"]) for t in panel["targets"][:1])) & set(rename)
            for field_name in read & set(columns) | {f for f in read if f in ("on_battery", "battery_low", "up",
                                                                              "rebooted", "oper_status")}:
                column = rename.get(field_name, field_name)
                if _organize(panel)["excludeByName"].get(field_name):
                    continue
                mappings = [prop["value"] for prop in overrides.get(column, []) if prop["id"] == "mappings"]
                assert mappings, f"{panel['title']}: column {column} ({field_name}) has no value mapping"
                texts = [r["text"] for m in mappings[0] for r in m["options"].values()]
                assert texts and not ENGLISH_VALUES & set(texts), f"{panel['title']}: {column} {texts}"


def test_the_map_places_points_by_their_lat_lon_fields():
    [panel] = [p for p in _board_json(WALL)["panels"] if p["type"] == "geomap"]
    [layer] = panel["options"]["layers"]
    assert layer["type"] == "markers"
    assert layer["location"] == {"mode": "coords", "latitude": "lat", "longitude": "lon"}
    # Grafana matches the layer's fields by display name: the colour field is state as renamed.
    assert layer["config"]["style"]["color"]["field"] == _organize(panel)["renameByName"]["state"] == "状态"
    assert "lat" not in _organize(panel)["renameByName"] and "lon" not in _organize(panel)["renameByName"]
    query = panel["targets"][0]["query"]
    assert {'"lat"', '"lon"', '"state"', '"name"'} <= set(re.findall(r'"\w+"', query))
    spec = MEASUREMENTS["device_state"]
    assert {"lat", "lon", "name"} <= set(spec.fields) and not {"lat", "lon", "name"} & set(spec.tags)
    assert spec.fields["lat"].type == spec.fields["lon"].type == "float"
    colours = {r["text"]: r["color"] for m in panel["fieldConfig"]["defaults"]["mappings"]
               for r in m["options"].values()}
    assert colours["在线"] == "green" and colours["离线"] == "red"


def test_work_order_snapshot_has_only_low_cardinality_tags():
    from monitor.metrics.schema import OPEN_ORDER_SLOTS

    spec = MEASUREMENTS["work_order_open"]
    assert set(spec.tags) == {"slot"}  # order refs, device ids, owners are fields: they never end
    assert {"ref", "device_name", "owner", "sla_remaining_s", "sla_deadline_ms", "open"} <= set(spec.fields)
    assert OPEN_ORDER_SLOTS <= 100


# -- Grafana's published dashboard JSON schema ---------------------------------------------------

# The JSON schema grafana-foundation-sdk publishes for Grafana 11.6 (branch v11.6.x+cog-v0.0.x,
# jsonschema/*.jsonschema.json: the dashboard and each panel plugin's Options and FieldConfig),
# generated from Grafana's CUE kinds. Not vendored here: point GRAFANA_JSONSCHEMA_DIR at them.
SCHEMA_DIR = Path(os.environ.get("GRAFANA_JSONSCHEMA_DIR", GRAFANA / "jsonschema"))


def _schema_validator(file: str, definition: str):
    import jsonschema

    definitions = json.loads((SCHEMA_DIR / file).read_text(encoding="utf-8"))["definitions"]
    # Where the generated JSON schema is narrower than Grafana's CUE (kinds/dashboard/
    # dashboard_kind.cue): `options?: _` of a matcher and `value?: _` of an override property are
    # any value, not only objects; a threshold's base step is null ("nulls currently appear here
    # when serializing -Infinity to JSON"), as Grafana itself saves it.
    if "MatcherConfig" in definitions:
        definitions["MatcherConfig"]["properties"]["options"] = {}
    if "DynamicConfigValue" in definitions:
        definitions["DynamicConfigValue"]["properties"]["value"] = {}
    if "Threshold" in definitions:
        definitions["Threshold"]["properties"]["value"] = {"type": ["number", "null"]}
    return jsonschema.Draft7Validator({"$ref": f"#/definitions/{definition}", "definitions": definitions})


def _leaves(errors) -> list:
    """The innermost errors: a panel is one of Panel or RowPanel, the reason is inside."""
    out = []
    for error in errors:
        out += _leaves(error.context) if error.context else [error]
    return out


def schema_errors(data: dict) -> list[str]:
    """Where dashboard JSON `data` breaks the published schema: the dashboard's, then each
    panel's options and custom field config against its plugin's."""
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}"
              for e in _leaves(_schema_validator("dashboard.jsonschema.json", "Dashboard").iter_errors(data))]
    for panel in data["panels"]:
        if panel["type"] == "row":
            continue
        plugin = f"{panel['type'].replace('-', '')}.jsonschema.json"
        definitions = json.loads((SCHEMA_DIR / plugin).read_text(encoding="utf-8"))["definitions"]
        parts = {"Options": panel.get("options"), "FieldConfig": panel["fieldConfig"]["defaults"].get("custom")}
        for definition, part in parts.items():
            if definition in definitions and part is not None:
                errors += [f"{panel['title']} {definition} {list(e.absolute_path)}: {e.message[:200]}"
                           for e in _schema_validator(plugin, definition).iter_errors(part)]
    return errors


def test_dashboards_validate_against_grafanas_published_json_schema():
    if not (SCHEMA_DIR / "dashboard.jsonschema.json").exists():
        pytest.skip(f"no Grafana JSON schema in {SCHEMA_DIR}: git show v11.6.x+cog-v0.0.x:jsonschema/… of "
                    "github.com/grafana/grafana-foundation-sdk into it, or set GRAFANA_JSONSCHEMA_DIR")
    for board in BOARDS:
        data = _board_json(board.uid)
        assert schema_errors(data) == [], board.uid
    # The check can fail: an unknown dashboard key, a panel wider than the grid, a bad option.
    data = _board_json(WALL)
    broken = copy.deepcopy(data)
    broken["kioskMode"] = True
    broken["panels"][0]["gridPos"]["w"] = 25
    broken["panels"][0]["options"]["colorMode"] = "rainbow"
    errors = schema_errors(broken)
    assert any("kioskMode" in e for e in errors) and any("'gridPos', 'w'" in e for e in errors)
    assert any("Options" in e and "rainbow" in e for e in errors)


# -- the wall on the lab fleet's data -------------------------------------------------------------


@pytest.mark.root
def test_the_wall_figures_on_the_lab_fleet(filled: Filled):
    fleet = filled.fleet
    [slow] = [d for d in fleet.devices if d.kind.value == "link" and fleet.net.behaviour(d.site).delay_ms > 200]
    assert [r["count"] for r in _rows(filled, WALL, f"时延超 {gen.LIMIT} ms 专线")] == [1], slow.id
    assert [r["count"] for r in _rows(filled, WALL, "有网无视频")] == [1]
    assert [r["count"] for r in _rows(filled, WALL, "UPS 电池供电")] == [1]
    [offline] = _rows(filled, WALL, "离线摄像机")
    cameras_down = {d.id for d in fleet.devices if d.kind.value == "camera" and d.counted} & (
        {FAILED[1], *(d.id for d in fleet.behind(FAILED[0])), *filled.no_video})
    assert offline["last"] == len(cameras_down)
    [rate] = _rows(filled, WALL, "全域摄像机在线率")
    counted = [d for d in fleet.devices if d.kind.value == "camera" and d.counted]
    assert rate["last"] == pytest.approx(100 * (len(counted) - len(cameras_down)) / len(counted))
    [faults] = _rows(filled, WALL, "未恢复故障")
    assert faults["sum"] >= len(RULES)
    days = [r for r in _rows(filled, WALL, f"每日在线率（近 {gen.DAILY_DAYS} 天）") if r["mean"] is not None]
    assert len(days) in (1, 2) and all(0 < r["mean"] <= 100 for r in days)  # today (and yesterday near midnight)


@pytest.mark.root
def test_the_wall_names_points_and_places_them_on_the_map(filled: Filled):
    fleet = filled.fleet
    for row in _rows(filled, WALL, "离线点位"):
        assert row["name"] == fleet.device(row["device_id"]).name
    points = {r["device_id"]: r for r in _rows(filled, WALL, "点位地图")}
    counted = {d.id for d in fleet.devices if d.counted and d.address is not None and d.lat is not None}
    assert set(points) == counted
    for device_id, row in points.items():
        device = fleet.device(device_id)
        assert (row["lat"], row["lon"], row["name"]) == (device.lat, device.lon, device.name)
    assert {r["state"] for r in points.values()} == {"up", "down", "unreachable"}
    # Every row of a table joined with the names lookup finds its name.
    for uid, title in [(WALL, "专线质量"), ("fleetmon-region", "交换机上联端口中断"), ("fleetmon-region", "UPS 状态"),
                       ("fleetmon-region", "有网无视频摄像机"), ("fleetmon-region", "时钟偏差与固件不符")]:
        board = next(b for b in BOARDS if b.uid == uid)
        values = resolve_variables(filled, board)
        a, b = (interpolate(t.query, values) for t in _panel(uid, title).targets)
        ids = {s["tags"]["device_id"] for s in filled.run(a)}
        lookup = {s["tags"]["device_id"]: s["values"][0][1] for s in filled.run(b)}
        assert ids and ids <= set(lookup), title
        assert all(lookup[i] == fleet.device(i).name for i in ids), title


@pytest.mark.root
def test_open_work_orders_show_owner_and_sla_countdown(filled: Filled):
    fleet = filled.fleet
    rows = sorted(_rows(filled, WALL, "未关闭工单（处理人 · SLA 倒计时）"), key=lambda r: int(r["slot"]))
    assert rows and [int(r["slot"]) for r in rows] == list(range(len(rows)))  # the empty slots are left out
    assert [r["owner"] for r in rows].count(OWNER) == 1 and {r["owner"] for r in rows} <= {OWNER, ""}
    assert len({r["ref"] for r in rows}) == len(rows)
    for row in rows:
        device = fleet.device(row["device_id"])
        assert (row["device_name"], row["site"], row["region"]) == (device.name, device.site, device.region)
        assert row["severity"] in ("critical", "major", "minor")
        if row["sla_clock"]:  # the Qionglai clocks (响应 15 min, 排除 2 h, 更换 3 d) run ahead
            assert 0 < row["sla_remaining_h"] < 3 * 24 and row["sla_deadline_ms"] > 0
        else:  # every clock stopped (the fault resolved, restore stamped): nothing to count down
            assert row["sla_remaining_h"] is None and row["sla_deadline_ms"] is None
    deadlines = [r["sla_deadline_ms"] for r in rows]
    timed = [d for d in deadlines if d is not None]
    assert timed and deadlines == timed + [None] * (len(deadlines) - len(timed))  # the most urgent first
    assert timed == sorted(timed)
    assert {r["fault_id"] for r in rows} <= {r["fault_id"] for r in _rows(filled, "fleetmon-region", "最近故障事件")}


# -- a picture of the wall ---------------------------------------------------------------------------


def _load_wall():
    spec = importlib.util.spec_from_file_location("fleetmon_grafana_wall", GRAFANA / "wall.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CHROMIUM = "/usr/bin/chromium"
WALL_PNG = os.environ.get("FLEETMON_WALL_PNG")  # where to keep the screenshot (docs/wall-1920x1080.png)


@pytest.mark.root
@pytest.mark.peer
def test_a_picture_of_the_wall_on_the_lab_fleet(filled: Filled, tmp_path: Path):
    """The wall laid out by its gridPos with every panel's results on the lab fleet, drawn by
    deploy/grafana/wall.py and screenshotted at 1920×1080 by headless Chromium: every panel
    drawn inside the screen, the figures and names on it."""
    import subprocess
    import struct

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    wall = _load_wall()
    data = _board_json(WALL)
    board = next(b for b in BOARDS if b.uid == WALL)
    values = resolve_variables(filled, board)
    results = {p["id"]: [filled.run(interpolate(t["query"], values)) for t in p["targets"]] for p in data["panels"]}
    page = wall.render_html(data, results)
    for panel in data["panels"]:
        left, top, w, h = wall.panel_box(**{k: panel["gridPos"][k] for k in "xywh"}, width=1920)
        assert left + w <= 1920 and top + h <= 1080 - wall.PAGE_PADDING_PX, panel["title"]
    lost = next(iter(filled.no_video))
    assert filled.fleet.device(lost).name in page and lost not in page  # names, not ids
    assert "离线" in page and "不可达（上级故障）" in page and OWNER in page and "未指派" in page
    html_path, png = tmp_path / "wall.html", tmp_path / "wall.png"
    html_path.write_text(page, encoding="utf-8")
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--screenshot={png}",
         "--window-size=1920,1080", "--user-data-dir=" + str(tmp_path / "profile"), html_path.as_uri()],
        check=True, timeout=60, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    width, height = struct.unpack(">II", png.read_bytes()[16:24])  # the PNG's IHDR
    assert (width, height) == (1920, 1080)
    if WALL_PNG:
        Path(WALL_PNG).write_bytes(png.read_bytes())
        Path(WALL_PNG).with_suffix(".html").write_text(page, encoding="utf-8")


# -- what the writer puts in for the wall ---------------------------------------------------------


@pytest.mark.peer
async def test_the_writer_gives_the_wall_names_coordinates_and_the_open_orders_of_now(influx, influx_db):
    """device_state carries the point list's name and lat/lon (fields, absent without
    coordinates); work_order_open holds the latest snapshot only: a slot emptied since (an order
    closed), or left by an earlier run, is read as empty by the wall's query."""
    from monitor.core.model import Kind
    from monitor.metrics.sink import InfluxSink
    from monitor.metrics.writer import MetricsWriter, OpenOrder
    from monitor.state.tracker import State

    cfg = InfluxDBConfig(url=influx.url, database=influx_db, flush_interval_s=0.05)
    cam = Device("CAM-1", "城关镇中心小学01号枪机", Kind.CAMERA, None, "城关镇中心小学", "城关镇", lat=30.41, lon=103.46)
    ups = Device("UPS-1", "城关镇中心小学UPS", Kind.UPS, None, "城关镇中心小学", "城关镇")

    def order(ref: str, owner: str = "", deadline_ns: int | None = None) -> OpenOrder:
        return OpenOrder(ref=ref, fault_id="F1", severity="major", title="摄像机离线", device_id=cam.id, device=cam,
                         owner=owner, sla_clock="响应" if deadline_ns else "", sla_deadline_ns=deadline_ns,
                         sla_remaining_s=3600.0 if deadline_ns else None)

    now = time.time_ns()
    async with InfluxSink(cfg) as sink:
        earlier_run = MetricsWriter(sink)
        earlier_run.work_orders_open([order("WO-1"), order("WO-2"), order("WO-3")], now - 3_000_000_000)
        writer = MetricsWriter(sink)  # a restart: the first snapshot empties every other slot
        writer.work_orders_open([order("WO-1"), order("WO-2", "王工", now + 3600 * 10**9)], now - 2_000_000_000)
        writer.work_orders_open([order("WO-2", "王工", now + 3600 * 10**9)], now - 1_000_000_000)  # WO-1 closed
        writer.device_states("online", {cam.id: State.DOWN, ups.id: State.UP}, [cam, ups], now)
        assert await sink.flush(10)

    def run(query: str) -> list[dict]:
        series = influx.query(interpolate(query, {"region": ".*", "site": ".*"}), influx_db)[0].get("series", [])
        return [{**s.get("tags", {}), **dict(zip(s["columns"], row))} for s in series for row in s["values"]]

    [row] = run(gen.open_orders())
    assert (row["slot"], row["ref"], row["owner"], row["device_name"], row["sla_clock"]) == (
        "0", "WO-2", "王工", cam.name, "响应")
    assert row["sla_remaining_h"] == pytest.approx(1.0) and row["sla_deadline_ms"] == (now + 3600 * 10**9) // 10**6
    slots = run('SELECT last("open") FROM "work_order_open" WHERE $timeFilter GROUP BY "slot"')
    from monitor.metrics.schema import OPEN_ORDER_SLOTS

    assert len(slots) == OPEN_ORDER_SLOTS and sum(r["last"] for r in slots) == 1

    states = {r["device_id"]: r for r in run(
        'SELECT "name", "lat", "lon", "state" FROM "device_state" WHERE $timeFilter GROUP BY "device_id"')}
    assert (states["CAM-1"]["name"], states["CAM-1"]["lat"], states["CAM-1"]["lon"]) == (cam.name, 30.41, 103.46)
    assert (states["UPS-1"]["name"], states["UPS-1"]["lat"], states["UPS-1"]["lon"]) == (ups.name, None, None)
    tags = {v for s in influx.query('SHOW TAG KEYS FROM "device_state"', influx_db)[0]["series"] for (v,) in s["values"]}
    assert not {"name", "lat", "lon"} & tags


def test_series_names_people_read_are_chinese():
    """Legends and stat labels: a column alias ($col) is a Chinese name; a series named by a tag
    whose values are English words (basis, severity) gets a Chinese display name for each."""
    english_tags = {"basis": ("online", "network", "service", "video"), "severity": ("critical", "major", "minor")}
    checked = 0
    for board in BOARDS:
        for panel in _board_json(board.uid)["panels"]:
            if panel["type"] == "row":
                continue
            names = {o["matcher"]["options"]: p["value"] for o in panel["fieldConfig"]["overrides"]
                     for p in o["properties"] if p["id"] == "displayName"}
            for target in panel["targets"]:
                alias = target.get("alias", "")
                if "$col" in alias:
                    aliases = re.findall(r'\bAS "([^"]+)"', target["query"])
                    assert aliases and all(not a.isascii() or a == "CPU" for a in aliases), (panel["title"], aliases)
                    checked += 1
                for tag, values in english_tags.items():
                    if f"$tag_{tag}" in alias:
                        assert all(v in names and not names[v].isascii() for v in values), (panel["title"], names)
                        checked += 1
    assert checked >= 6
