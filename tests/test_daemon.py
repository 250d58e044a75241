"""The daemon end to end: lab fleet (real ICMP in namespaces) → fleetmon → real InfluxDB and
the SQLite state database. Online rates are checked against the lab's ground truth."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lab.fleet import LabFleet
from lab.services import Anomalies, FleetServices
from lab.influxdb import InfluxServer
from monitor.app.config import load_config
from monitor.app.daemon import GC_YOUNG, Daemon, StartupError
from monitor.app.snapshot import Snapshot
from monitor.fleet.inventory import load_inventory
from monitor.core.model import Kind
from monitor.metrics.schema import MEASUREMENTS
from monitor.state.tracker import State
from monitor.state.db import StateDB
from tests.plugins.factories import device

pytestmark = pytest.mark.root
FLEETMON = str(Path(sys.executable).with_name("fleetmon"))


# Camera and SNMP probes against FleetServices, at test speed.
FAST = {"rtsp": {"interval_s": 1.0, "timeout_s": 1.0}, "onvif": {"interval_s": 10.0, "timeout_s": 1.0},
        "snmp": {"interval_s": 5.0, "timeout_s": 0.5}}


def write_config(
    tmp_path: Path, fleet: LabFleet, influx_url: str, db: str, services: FleetServices | None = None, **icmp
) -> Path:
    """ICMP only, unless `services` run: then their probes too."""
    fleet.write_point_list(tmp_path / "points.csv")
    if services is None:
        others = {name: {"enabled": False} for name in ("rtsp", "onvif", "snmp")}
    else:
        others = {name: {**cfg, **FAST.get(name, {})} for name, cfg in services.probe_config().items()}
    config = {
        "inventory": {"point_lists": ["points.csv"]},
        "probes": {"icmp": {"interval_s": 1.0, "count": 2, "echo_interval_ms": 50, "timeout_s": 0.3, **icmp}, **others},
        "scheduler": {"spread": 0.2},
        "state": {"database": "state.db", "down_after": 1, "up_after": 1},
        "influxdb": {"url": influx_url, "database": db, "flush_interval_s": 0.2, "retry": {"initial_s": 0.2, "max_s": 1}},
        "api": {"port": 0},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


async def run_cycles(config: Path, cycles: int, timeout_s: float = 30) -> list[Snapshot]:
    cfg = load_config(config)
    snapshots: list[Snapshot] = []
    stop = asyncio.Event()

    def seen(snapshot: Snapshot) -> None:
        snapshots.append(snapshot)
        if len(snapshots) >= cycles:
            stop.set()

    await asyncio.wait_for(Daemon(cfg, load_inventory(cfg), on_snapshot=seen).run(stop), timeout_s)
    return snapshots


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def last_rates(
    influx: InfluxServer, db: str, basis: str = "online"
) -> dict[tuple[str, str, str], tuple[int, int, float | None]]:
    rows = influx.rows(
        'SELECT last(online) AS online, last(total) AS total, last(online_rate_pct) AS pct FROM online_rate '
        f"WHERE basis = '{basis}' GROUP BY \"scope\", \"group\", \"kind\"",
        db,
    )
    return {(r["scope"], r["group"], r["kind"]): (r["online"], r["total"], r["pct"]) for r in rows}


async def test_online_rates_in_influxdb_equal_the_lab_ground_truth(small_fleet, influx, influx_db, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="fleetmon")
    fleet = small_fleet
    fleet.fail("SW-002")  # a switch with its UPS and cameras
    fleet.fail("CAM-0016", cascade=False)  # one camera in the last site
    config = write_config(tmp_path, fleet, influx.url, influx_db)

    snapshots = await run_cycles(config, cycles=3)

    truth = fleet.expected_online()
    written = last_rates(influx, influx_db)
    assert set(written) == set(truth)
    for key, (online, total) in truth.items():
        got_online, got_total, pct = written[key]
        assert (got_online, got_total) == (online, total), key
        assert pct == (pytest.approx(100 * online / total) if total else None), key
    # The numbers are not trivial: the fleet is partly dark, some groups are all down.
    assert truth[("fleet", "all", "camera")] == (12, 18)  # 20 cameras − removed − construction; 5 + 1 down
    assert 0 in {online for online, total in truth.values() if total}

    states = snapshots[-1].states
    assert states["SW-002"] is State.DOWN and states["CAM-0016"] is State.DOWN
    assert {states[d.id] for d in fleet.behind("SW-002")} == {State.UNREACHABLE}

    async with StateDB(tmp_path / "state.db") as db:
        sw = await db.transitions("SW-002")
        cam = await db.transitions("CAM-0006")
        sessions = await db.sessions()
    assert [(t.old, t.new) for t in sw] == [(State.UNKNOWN, State.DOWN)]
    assert [t.new for t in cam] == [State.UNREACHABLE] and cam[0].reason == "parent SW-002 is down"
    assert len(sessions) == 1 and sessions[0].stopped_ns is not None

    # The log names the switch once for everything behind it, and each device really down.
    behind = len(fleet.behind("SW-002"))
    assert f"{behind} devices unreachable behind switch" in caplog.text and "(SW-002)" in caplog.text
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2 and all("→ down" in w for w in warnings)


def assert_rates_equal(written, truth) -> None:
    assert set(written) == set(truth)
    for key, (online, total) in truth.items():
        got_online, got_total, pct = written[key]
        assert (got_online, got_total) == (online, total), key
        assert pct == (pytest.approx(100 * online / total) if total else None), key


async def test_network_service_video_and_online_rates_equal_the_lab_ground_truth(small_fleet, influx, influx_db,
                                                                                   tmp_path):
    fleet = small_fleet
    fleet.fail("SW-002")
    with FleetServices(fleet, Anomalies(no_video=2), snmp=False) as services:
        config = write_config(tmp_path, fleet, influx.url, influx_db, services)
        snapshots = await run_cycles(config, cycles=12)
        reachable = fleet.reachable()
        video = services.expected_video()
        cameras = {d.id for d in fleet.devices if d.kind.value == "camera"}
        truth = {
            "network": fleet.expected_online(reachable),
            "service": fleet.expected_online(reachable & cameras, kinds=[Kind.CAMERA]),
            "video": fleet.expected_online(video, kinds=[Kind.CAMERA]),
            # the contract's default: network up and RTSP DESCRIBE OK
            "online": fleet.expected_online((reachable - cameras) | video),
        }
        for basis, expected in truth.items():
            assert_rates_equal(last_rates(influx, influx_db, basis), expected)
        # The three disagree exactly where problems hide: 2 cameras ping but send no picture.
        network, shown = truth["network"][("fleet", "all", "camera")], truth["video"][("fleet", "all", "camera")]
        assert shown[0] == network[0] - 2 and shown[1] == network[1]
        last = snapshots[-1]
        assert {last.bases["video"][c] for c in services.no_video} == {State.DOWN}
        assert {last.bases["network"][c] for c in services.no_video} == {State.UP}
        reasons = {last.results["rtsp"][c].reason for c in services.no_video}
        assert reasons == {"connection refused"}


async def test_recovery_is_seen_and_stored_with_its_time(small_fleet, influx, influx_db, tmp_path):
    fleet = small_fleet
    config = write_config(tmp_path, fleet, influx.url, influx_db)
    fleet.fail("CAM-0002", cascade=False)
    await run_cycles(config, cycles=2)
    restored_at = time.time_ns()
    fleet.restore("CAM-0002")
    await run_cycles(config, cycles=2)
    async with StateDB(tmp_path / "state.db") as db:
        history = await db.transitions("CAM-0002")
    assert [(t.old, t.new) for t in history] == [(State.UNKNOWN, State.DOWN), (State.DOWN, State.UP)]
    assert history[1].ts_ns >= restored_at
    # The second run resumed the saved states: no device went through unknown again.
    async with StateDB(tmp_path / "state.db") as db:
        again = [t for t in await db.transitions(since_ns=restored_at) if t.old is State.UNKNOWN]
    assert again == []


def test_every_field_written_is_declared_in_the_schema_and_docs_match(small_fleet, influx, influx_db, tmp_path):
    config = write_config(tmp_path, small_fleet, influx.url, influx_db)
    asyncio.run(run_cycles(config, cycles=2))
    measurements = {row[0] for s in influx.query("SHOW MEASUREMENTS", influx_db)[0]["series"] for row in s["values"]}
    # work_order_open: the first snapshot after a start empties every slot, orders or none.
    assert measurements == {"icmp", "device_state", "online_rate", "faults_open", "work_order_open", "fleetmon_cycle",
                            "fleetmon_sink"}
    influx_types = {"float": "float", "integer": "integer", "boolean": "boolean", "string": "string"}
    for series in influx.query("SHOW FIELD KEYS", influx_db)[0]["series"]:
        spec = MEASUREMENTS[series["name"]]
        for field, ftype in series["values"]:
            assert field in spec.fields, f"{series['name']}.{field} is not declared in monitor/metrics/schema.py"
            assert influx_types[spec.fields[field].type] == ftype, f"{series['name']}.{field}"
    for series in influx.query("SHOW TAG KEYS", influx_db)[0]["series"]:
        assert {row[0] for row in series["values"]} <= set(MEASUREMENTS[series["name"]].tags)


def test_influxdb_down_at_start_daemon_runs_says_so_and_data_arrives_later(small_fleet, influx_own, tmp_path):
    db = "late"
    config = write_config(tmp_path, small_fleet, influx_own.url, db)
    log = (tmp_path / "fleetmon.log").open("w+")
    proc = subprocess.Popen([FLEETMON, "run", "--config", str(config)], stderr=log, stdout=log)
    try:
        wait_for(lambda: "InfluxDB unreachable" in (tmp_path / "fleetmon.log").read_text(), 20, "the unreachable log line")
        time.sleep(2.5)  # cycles whose data can only be buffered
        before_start_ns = time.time_ns()
        influx_own.start()
        influx_own.create_database(db)
        buffered = 2 * len(small_fleet.expected_online())  # ≥ 2 cycles of every group were buffered

        def arrived() -> bool:
            rows = influx_own.rows(f"SELECT count(online) FROM online_rate WHERE time < {before_start_ns}", db)
            return bool(rows) and rows[0]["count"] >= buffered

        wait_for(arrived, 20, "the buffered points in InfluxDB")
        wait_for(lambda: "InfluxDB reachable again" in (tmp_path / "fleetmon.log").read_text(), 10, "the recovery line")
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    text = (tmp_path / "fleetmon.log").read_text()
    assert text.count("InfluxDB unreachable") == 1  # one line when it goes, not one per retry


def test_sigterm_stops_cleanly_and_flushes_pending_writes(small_fleet, influx, influx_db, tmp_path):
    config = write_config(tmp_path, small_fleet, influx.url, influx_db)
    # A long flush interval: whatever the last cycle wrote is still buffered at SIGTERM.
    cfg = yaml.safe_load(config.read_text())
    cfg["influxdb"]["flush_interval_s"] = 30
    cfg["influxdb"]["batch_size"] = 5000
    config.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    proc = subprocess.Popen([FLEETMON, "run", "--config", str(config)], stderr=subprocess.PIPE, text=True)
    db_path = tmp_path / "state.db"
    wait_for(lambda: _monitored_s(db_path) >= 1.5, 20, "two cycles")  # 1 s interval
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    stderr = proc.stderr.read()
    assert "fleetmon stopped" in stderr
    rows = influx.rows("SELECT count(online) FROM device_state", influx_db)
    assert rows and rows[0]["count"] >= 2 * 32  # two cycles of the 32 probed devices arrived
    session = sqlite3.connect(db_path).execute("SELECT stopped_ns FROM sessions").fetchall()
    assert len(session) == 1 and session[0][0] is not None


def _monitored_s(db_path: Path) -> float:
    """Seconds from the session's start to its last heartbeat (one heartbeat per cycle)."""
    try:
        row = sqlite3.connect(db_path).execute("SELECT last_seen_ns - started_ns FROM sessions").fetchone()
    except sqlite3.Error:  # not created yet
        return 0.0
    return 0.0 if row is None else row[0] / 1e9


def test_kill_9_loses_no_state_and_restart_resumes_it(small_fleet, influx, influx_db, tmp_path):
    small_fleet.fail("CAM-0003", cascade=False)
    config = write_config(tmp_path, small_fleet, influx.url, influx_db)
    db_path = tmp_path / "state.db"
    proc = subprocess.Popen([FLEETMON, "run", "--config", str(config)], stderr=subprocess.DEVNULL)
    wait_for(lambda: db_path.exists() and _transitions(db_path, "CAM-0003"), 20, "CAM-0003 down")
    proc.kill()
    proc.wait()
    proc = subprocess.Popen([FLEETMON, "run", "--config", str(config)], stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(sqlite3.connect(db_path).execute("SELECT id FROM sessions").fetchall()) == 2, 20, "restart")
        time.sleep(2.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert _transitions(db_path, "CAM-0003") == [("unknown", "down")]  # not repeated after the restart
    killed, clean = sqlite3.connect(db_path).execute("SELECT stopped_ns, last_seen_ns FROM sessions ORDER BY id").fetchall()
    assert killed[0] is None and killed[1] > 0 and clean[0] is not None


def _transitions(db_path: Path, device_id: str) -> list[tuple[str, str]]:
    try:
        return sqlite3.connect(db_path).execute(
            "SELECT from_state, to_state FROM transitions WHERE device_id=? ORDER BY id", (device_id,)
        ).fetchall()
    except sqlite3.Error:
        return []


def test_sighup_keeps_the_running_config_when_the_new_one_is_bad(small_fleet, influx, influx_db, tmp_path):
    config = write_config(tmp_path, small_fleet, influx.url, influx_db)
    good = config.read_text()
    log_path = tmp_path / "fleetmon.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([FLEETMON, "run", "--config", str(config)], stderr=log)
    try:
        wait_for(lambda: "fleetmon started" in log_path.read_text(), 20, "start")
        config.write_text(good.replace("down_after: 1", "down_afterr: 1"))
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload of" in log_path.read_text(), 10, "the failed reload")
        assert "down_afterr" in log_path.read_text() and proc.poll() is None
        # The good reload also brings a point list in which a camera was removed (拆除): its status
        # is recorded with the reload's time, for the assessment.
        camera = next(d for d in small_fleet.devices if d.kind is Kind.CAMERA and d.counted)
        points = tmp_path / "points.csv"
        rows = points.read_text(encoding="utf-8").splitlines()
        points.write_text("\n".join(r.replace(",active,", ",removed,") if r.startswith(camera.id + ",") else r
                                     for r in rows) + "\n", encoding="utf-8")
        config.write_text(good.replace("down_after: 1", "down_after: 2"))
        reloaded_ns = time.time_ns()
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: log_path.read_text().count("fleetmon started") == 2, 20, "the reload")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    statuses = sqlite3.connect(tmp_path / "state.db").execute(
        "SELECT status, since_ns FROM point_status WHERE device_id = ? ORDER BY id", (camera.id,)).fetchall()
    assert [s for s, _ in statuses] == ["active", "removed"] and statuses[1][1] > reloaded_ns


def test_bad_config_exits_1_and_unusable_state_db_exits_3(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("probes:\n  icmp:\n    count: many\n")
    result = subprocess.run([FLEETMON, "run", "--config", str(bad)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "bad.yaml:3: probes.icmp.count" in result.stderr

    (tmp_path / "state.db").write_bytes(b"not a database" * 100)
    good = tmp_path / "good.yaml"
    good.write_text(
        "inventory:\n  allow_loopback: true\n  devices:\n    - {id: A, kind: camera, address: 127.0.0.1, site: s, region: r}\n"
        "state:\n  database: state.db\ninfluxdb:\n  enabled: false\napi:\n  port: 0\n"
    )
    result = subprocess.run([FLEETMON, "run", "--config", str(good)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 3 and "cannot start" in result.stderr and "state.db" in result.stderr


async def test_startup_error_is_raised_in_process_too(tmp_path):
    (tmp_path / "state.db").mkdir()  # a directory where the database file should be
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(
        "inventory:\n  allow_loopback: true\n  devices:\n    - {id: A, kind: camera, address: 127.0.0.1, site: s, region: r}\n"
        "state:\n  database: state.db\ninfluxdb:\n  enabled: false\napi:\n  port: 0\n"
    )
    cfg = load_config(cfg_path)
    with pytest.raises(StartupError, match="state.db"):
        await Daemon(cfg, load_inventory(cfg)).run(asyncio.Event())


def test_devices_are_probed_parent_first_with_everything_behind_it_next():
    from monitor.app.daemon import depth_first
    from monitor.fleet.inventory import Inventory

    _order = [device("C1", parent="SW1"), device("SW1", parent="L1"), device("C2", parent="SW2"), device("L1"),
              device("SW2", parent="L1"), device("P")]
    assert [x.id for x in depth_first(Inventory(_order))] == ["L1", "SW1", "C1", "SW2", "C2", "P"]


async def test_probes_without_devices_to_poll_are_not_started(small_fleet, influx, influx_db, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="fleetmon")
    config = write_config(tmp_path, small_fleet, influx.url, influx_db)
    doc = yaml.safe_load(config.read_text(encoding="utf-8"))
    for name in ("onvif", "snmp"):  # enabled, as by default, but no credentials: nothing to poll
        doc["probes"][name] = {"enabled": True}
    config.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    snapshots = await run_cycles(config, cycles=1)
    assert set(snapshots[-1].results) == {"icmp"}
    assert "probe onvif enabled but polls no device: not started" in caplog.text
    assert "probe snmp enabled but polls no device: not started" in caplog.text


async def test_a_running_daemon_keeps_its_startup_objects_out_of_the_collectors_sight(tmp_path):
    """gc.freeze() and a larger youngest generation once started (the inventory of 100,000
    points is not walked by every full collection, and full collections are rarer), both
    undone when stopping (a reload's old daemon is collected as usual)."""
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(
        "inventory:\n  allow_loopback: true\n  devices:\n    - {id: A, kind: camera, address: 127.0.0.1, site: s, region: r}\n"
        "probes:\n  icmp: {enabled: false}\n  rtsp: {enabled: false}\n"
        "state:\n  database: state.db\ninfluxdb:\n  enabled: false\napi:\n  port: 0\n"
    )
    cfg = load_config(cfg_path)
    daemon, stop = Daemon(cfg, load_inventory(cfg)), asyncio.Event()
    assert gc.get_freeze_count() == 0
    before = gc.get_threshold()
    task = asyncio.create_task(daemon.run(stop))
    await asyncio.wait_for(daemon.started.wait(), 30)
    await asyncio.sleep(0.05)
    assert gc.get_freeze_count() > 10_000  # modules, config, inventory: everything alive at start
    assert gc.get_threshold()[0] == GC_YOUNG
    stop.set()
    await asyncio.wait_for(task, 30)
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == before
