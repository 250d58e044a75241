"""Issue 13, "nothing lost": the metrics spool against a real InfluxDB (influxd 1.6.7, and the
v2 write API through lab.influxdb.V2Forwarder). InfluxDB is stopped; writers in child processes
are restarted and killed with SIGKILL meanwhile; when InfluxDB is back every point is there,
once, with its own timestamp. A full spool drops its oldest points and counts them exactly; a
damaged spool is reported where it is damaged and the rest is replayed."""

from __future__ import annotations

import asyncio
import csv
import logging
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lab.faults_spool import Target, outage_with_restart_and_kill, point_time
from lab.fleet import POINT_LIST_COLUMNS
from lab.influxdb import InfluxServer, V2Forwarder
from monitor.metrics.sink import InfluxSink, encode_line
from monitor.metrics.spool import SpoolError
from tests.plugins.influx import V2_TOKEN
from tests.plugins.influx import fast_config as config

pytestmark = pytest.mark.peer
CAM = {"device_id": "cam-001", "kind": "camera", "site": "S1", "region": "城关镇"}


def write(sink: InfluxSink, i: int) -> None:
    sink.write("icmp", CAM, {"up": True, "sent": i, "rtt_avg_ms": 1.5}, point_time(i))


def sent(influx: InfluxServer, db: str) -> list[int]:
    return [r["sent"] for r in influx.rows("SELECT sent FROM icmp", db)]


@pytest.mark.parametrize("api", ["v1", "v2"])
async def test_outage_with_a_restart_and_a_kill_9_loses_no_point(api, influx_own, tmp_path):
    influx_own.start()
    influx_own.create_database("spool")
    if api == "v1":
        outcome = await outage_with_restart_and_kill(
            influx_own, Target("v1", influx_own.url, "spool"), tmp_path / "spool", cycles=9, per_cycle=300)
    else:
        async with V2Forwarder(influx_own.url, V2_TOKEN) as forwarder:
            outcome = await outage_with_restart_and_kill(
                influx_own, Target("v2", forwarder.url, "spool", V2_TOKEN), tmp_path / "spool", cycles=9, per_cycle=300)
    assert len(outcome.confirmed) >= 8 * 300  # the killed writer's unreported cycle at most is unconfirmed
    assert outcome.lost == 0
    assert outcome.duplicated == 0 and outcome.foreign == 0  # once each, at its own time
    assert settled(tmp_path / "spool")


async def test_points_spooled_before_a_restart_are_sent_in_order_with_their_times(influx_own, tmp_path):
    """Graceful restart in one process: the second sink sends the first one's points first."""
    influx_own.start()
    influx_own.create_database("order")
    await asyncio.to_thread(influx_own.stop)
    cfg = config(influx_own.url, "order")
    async with InfluxSink(cfg, tmp_path / "spool") as sink:
        for i in range(2500):  # beyond max_buffer_lines: most wait on disk only
            write(sink, i)
        assert sink.stats.buffered_lines == 2500
    async with InfluxSink(cfg, tmp_path / "spool") as sink:
        assert sink.stats.buffered_lines == 2501  # and the first sink's own fleetmon_sink point
        for i in range(2500, 3000):
            write(sink, i)
        await asyncio.to_thread(influx_own.start)
        assert await sink.flush(30)
        assert sink.stats.dropped_lines == 0
    rows = influx_own.rows("SELECT sent FROM icmp", "order")
    assert [r["sent"] for r in rows] == list(range(3000))
    assert all(r["time"] == point_time(r["sent"]) for r in rows)


async def test_a_full_spool_drops_the_oldest_points_and_counts_them_exactly(influx_own, tmp_path, sink_log):
    influx_own.start()
    influx_own.create_database("full")
    await asyncio.to_thread(influx_own.stop)
    cfg = config(influx_own.url, "full", spool_max_bytes=1 << 20)
    async with InfluxSink(cfg, tmp_path / "spool") as sink:
        for i in range(20_000):  # ~2.3 MB of records for a 1 MiB spool
            write(sink, i)
        dropped = sink.stats.dropped_lines
        assert 9_000 < dropped < 20_000 and sink.stats.buffered_lines == 20_000 - dropped
        assert sum(p.stat().st_size for p in (tmp_path / "spool").glob("*.seg")) <= 1 << 20
        await asyncio.to_thread(influx_own.start)
        assert await sink.flush(30)
        assert sink.stats.dropped_lines == dropped
    assert sent(influx_own, "full") == list(range(dropped, 20_000))  # the newest, all of them, in order
    full = [r for r in sink_log.records if "spool full" in r.getMessage()]
    assert len(full) == 1 and "1048576 bytes" in full[0].getMessage()
    (back,) = [r for r in sink_log.records if "InfluxDB reachable again" in r.getMessage()]
    assert f"{dropped} lines were dropped because the buffer was full" in back.getMessage()


async def test_a_damaged_spool_is_reported_where_and_the_rest_is_replayed(influx_own, tmp_path, sink_log):
    influx_own.start()
    influx_own.create_database("damaged")
    await asyncio.to_thread(influx_own.stop)
    spool = tmp_path / "spool"
    cfg = config(influx_own.url, "damaged", spool_max_bytes=1 << 20)
    async with InfluxSink(cfg, spool) as sink:
        for i in range(3000):
            write(sink, i)
    segments = sorted(spool.glob("*.seg"))
    assert len(segments) >= 2
    # A flipped byte inside point 100's record (first segment), a record torn by a crash at the
    # end of the last one, garbage for a cursor and a stray file.
    first = bytearray(segments[0].read_bytes())
    start = sum(len(line) for line in first.splitlines(keepends=True)[:100])
    first[start + 30] ^= 0x01
    segments[0].write_bytes(bytes(first))
    with segments[-1].open("ab") as f:
        f.write(b"1234abcd icmp,device_id=cam-001 up=tr")
    (spool / "cursor").write_text("not a number")
    (spool / "notes.txt").write_text("hello")
    sink_log.clear()
    async with InfluxSink(cfg, spool) as sink:
        await asyncio.to_thread(influx_own.start)
        assert await sink.flush(30)
        assert sink.stats.dropped_lines == 2  # the damaged record and the torn one
    assert sent(influx_own, "damaged") == [i for i in range(3000) if i != 100]
    warnings = [r.getMessage() for r in sink_log.records if r.levelno == logging.WARNING]
    assert any(f"{segments[0]}: damaged record at byte {start}" in w for w in warnings), warnings
    assert any(f"{segments[-1]}: torn last record" in w for w in warnings), warnings
    assert any("cursor" in w and "replaying every segment" in w for w in warnings), warnings
    assert any("'notes.txt' is not a spool file" in w for w in warnings), warnings


async def test_spool_settles_and_deletes_what_influxdb_took(influx, influx_db, tmp_path):
    """With InfluxDB up the spool stays small: written lines are acknowledged, whole segments deleted."""
    async with InfluxSink(config(influx.url, influx_db, spool_max_bytes=1 << 20), tmp_path / "spool") as sink:
        for i in range(5000):
            write(sink, i)
        assert await sink.flush(30)
    assert sent(influx, influx_db) == list(range(5000))
    assert len(list((tmp_path / "spool").glob("*.seg"))) == 1 and settled(tmp_path / "spool")


def settled(spool: Path) -> bool:
    """Everything the spool holds is acknowledged: the cursor is at the end of the last segment."""
    try:
        last = max(spool.glob("*.seg"))
        return int((spool / "cursor").read_text()) == int(last.stem) + last.stat().st_size
    except (ValueError, OSError):  # no segment or no cursor yet, or replaced right now
        return False


async def test_a_spool_in_use_by_another_sink_is_refused_clearly(tmp_path):
    cfg = config("http://127.0.0.1:9", "x")
    async with InfluxSink(cfg, tmp_path / "spool"):
        with pytest.raises(SpoolError, match="spool .* is in use by another process"):
            async with InfluxSink(cfg, tmp_path / "spool"):
                pass
    (tmp_path / "file").write_text("")
    with pytest.raises(SpoolError, match="metrics spool .*file/spool"):
        async with InfluxSink(cfg, tmp_path / "file" / "spool"):
            pass


@pytest.mark.root
@pytest.mark.parametrize("batch", [1, 400], ids=["write", "write_encoded"])
async def test_a_full_disk_loses_only_what_it_refused_counts_it_and_the_sink_goes_on(influx_own, tmp_path, sink_log,
                                                                                    batch):
    """The spool's file system fills up (a 256 KiB tmpfs under a 1 MiB spool limit): appends
    fail, each refused point is counted (a refused batch line by line), one error is logged,
    neither write() nor write_encoded() raises; what the disk took arrives when InfluxDB is
    back."""
    influx_own.start()
    influx_own.create_database("enospc")
    await asyncio.to_thread(influx_own.stop)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], check=True)
    try:
        async with InfluxSink(config(influx_own.url, "enospc", spool_max_bytes=1 << 20), mnt / "spool") as sink:
            for start in range(0, 4000, batch):  # ~460 KB of records
                if batch == 1:
                    write(sink, start)
                else:
                    sink.write_encoded([encode_line("icmp", CAM, {"up": True, "sent": i, "rtt_avg_ms": 1.5}, point_time(i))
                                        for i in range(start, start + batch)])
            dropped = sink.stats.dropped_lines
            assert 1000 < dropped < 4000
            await asyncio.to_thread(influx_own.start)
            assert await sink.flush(30)
            assert sink.stats.dropped_lines == dropped
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    kept = sent(influx_own, "enospc")
    assert kept == list(range(4000 - dropped)) and len(kept) + dropped == 4000  # the oldest are kept
    errors = [r.getMessage() for r in sink_log.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "cannot append" in errors[0] and "No space left on device" in errors[0]


FLEETMON = str(Path(sys.executable).with_name("fleetmon"))


def daemon_config(tmp_path: Path, influx_url: str, db: str) -> Path:
    """ICMP every second to three loopback addresses (no namespaces needed), metrics to `db`."""
    with (tmp_path / "points.csv").open("w", newline="", encoding="utf-8") as out:
        rows = csv.writer(out)
        rows.writerow(POINT_LIST_COLUMNS)
        for n in (1, 2, 3):
            rows.writerow([f"CAM-{n}", f"camera {n}", "camera", f"127.0.0.{n}", "S1", "城关镇", "", "active",
                           *[""] * (len(POINT_LIST_COLUMNS) - 8)])
    config = {
        "inventory": {"point_lists": ["points.csv"], "allow_loopback": True},
        "probes": {"icmp": {"interval_s": 1.0, "count": 1, "timeout_s": 0.2},
                   **{name: {"enabled": False} for name in ("rtsp", "onvif", "snmp")}},
        "state": {"database": "state.db", "down_after": 1, "up_after": 1},
        "influxdb": {"url": influx_url, "database": db, "flush_interval_s": 0.1, "timeout_s": 0.5,
                     "retry": {"initial_s": 0.1, "max_s": 0.3}},
        "api": {"port": 0},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def sessions(db_path: Path) -> list[tuple[int, int]]:
    """(started_ns, last_seen_ns) of every daemon session, the last heartbeat being after the
    cycle's metrics were handed to the sink."""
    try:
        return sqlite3.connect(db_path).execute("SELECT started_ns, last_seen_ns FROM sessions ORDER BY id").fetchall()
    except sqlite3.Error:  # not created yet
        return []


def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.mark.root
def test_the_daemon_restarted_and_killed_while_influxdb_is_down_loses_no_cycle(influx_own, tmp_path):
    """The real daemon (`fleetmon run`), InfluxDB down: a graceful restart, a kill -9, a third
    run during which InfluxDB comes back. Every session's cycles, up to the last one it recorded
    in the state database, are in InfluxDB, once each."""
    influx_own.start()
    influx_own.create_database("daemon")
    influx_own.stop()
    config, db_path = daemon_config(tmp_path, influx_own.url, "daemon"), tmp_path / "state.db"

    def run_until_cycles(n_sessions: int) -> subprocess.Popen:
        proc = subprocess.Popen([FLEETMON, "run", "--config", str(config)], stderr=subprocess.DEVNULL)
        wait_for(lambda: len(s := sessions(db_path)) == n_sessions and s[-1][1] - s[-1][0] > 2.1e9, 30,
                 f"session {n_sessions} to run 2 cycles")
        return proc

    proc = run_until_cycles(1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    proc = run_until_cycles(2)
    proc.kill()
    proc.wait()
    proc = run_until_cycles(3)
    try:
        influx_own.start()
        wait_for(lambda: settled(tmp_path / "influx-spool"), 30, "the spool to drain")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    times = cycles(influx_own)
    assert len(times) == len(set(times))
    for n, (started, last_seen) in enumerate(sessions(db_path)):
        mine = [t for t in times if started <= t <= last_seen]
        assert len(mine) >= (last_seen - started) / 1e9 - 1, (started, last_seen, mine)  # a cycle a second
        # The killed session's last heartbeat came right after its last cycle's points were
        # handed to the sink: that cycle is there. A stopped one's is the stop, < 1 cycle later.
        assert last_seen - max(mine) < (0.5e9 if n == 1 else 1.5e9)


def cycles(influx: InfluxServer) -> list[int]:
    """Times (ns) of the daemon's icmp cycles in InfluxDB (fleetmon_cycle)."""
    return [r["time"] for r in influx.rows("SELECT targets FROM fleetmon_cycle WHERE probe = 'icmp'", "daemon")]
