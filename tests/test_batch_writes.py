"""Batched metrics writes: Spool.append_many, InfluxSink.write_encoded and the direct
`device_state` encoder (monitor.metrics.writer.device_state_lines), each against the one-by-one
path it replaces (docs/PERFORMANCE.md: these are two of every three lines at scale)."""

from __future__ import annotations

import asyncio
import ipaddress
import math
import random

import pytest

from lab.faults_spool import point_time
from monitor.core.model import Device, Kind, Status
from monitor.metrics import spool as spool_module
from monitor.metrics.sink import KEY_ESCAPES, STRING_ESCAPES, InfluxSink, encode_line, escape_key, escape_string
from monitor.metrics.spool import Spool
from monitor.metrics.writer import device_state_lines
from monitor.state.tracker import State
from tests.plugins.influx import fast_config as _config

CAM = {"device_id": "cam-001", "kind": "camera", "site": "S1", "region": "城关镇"}


def _device(n: int, **kw) -> Device:
    base = dict(id=f"CAM-{n}", name=f"camera {n}", kind=Kind.CAMERA, address=ipaddress.ip_address(f"10.0.0.{n}"),
                site="S1", region="城关镇")
    return Device(**(base | kw))


HOSTILE = [
    _device(1),
    _device(2, id="CAM 2,a=b", name='东门 "主" 路口\\北\n侧', site="site, one", region="区 = 二", lat=31.2, lon=121.5),
    _device(3, lat=31, lon=121),  # ints in the point list: written as floats
    _device(4, lat=float("nan"), lon=121.25),  # NaN cannot be written: left out, as encode_line does
    _device(5, status=Status.CONSTRUCTION, lat=None, lon=121.0),  # not counted; one coordinate only: none written
    _device(6, site="", name=""),  # an empty tag value is left out
]


@pytest.mark.parametrize("state", list(State))
def test_device_state_lines_are_what_encode_line_makes(state):
    maintenance = {"CAM-2": '换 "镜头", 1/2', "CAM-3": ""}
    states = {d.id: state for d in HOSTILE} | {"CAM-404": State.UP}  # a state of a device not asked for
    lines = device_state_lines("network", states, [*HOSTILE, _device(7)], 1_700_000_000_123_456_789, maintenance)
    expected = []
    for d in HOSTILE:  # CAM-7 has no state: no line
        fields = {"state": state.value, "online": int(state is State.UP), "counted": int(d.counted), "name": d.name,
                  "maintenance": maintenance.get(d.id, "")}
        if d.lat is not None and d.lon is not None:
            fields |= {"lat": d.lat, "lon": d.lon}
        tags = {"device_id": d.id, "kind": d.kind.value, "site": d.site, "region": d.region, "basis": "network"}
        expected.append(encode_line("device_state", tags, fields, 1_700_000_000_123_456_789))
    assert lines == expected
    assert b"lat=nan" not in b"".join(lines) and math.isnan(HOSTILE[3].lat)


def test_escapes_skip_translate_only_when_nothing_needs_escaping():
    # escape_key/escape_string look for a special character before translating (a hot path):
    # the same text as translate for every mix of specials, quotes, backslashes and CJK.
    rng = random.Random(3)
    alphabet = ' ,="\\\nab石='
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 7)))
        assert escape_key(text) == text.translate(KEY_ESCAPES), repr(text)
        assert escape_string(text) == text.translate(STRING_ESCAPES), repr(text)
    assert escape_key("site, one = 二") == "site\\,\\ one\\ \\=\\ 二"


def _records(spool_dir) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(spool_dir.glob("*.seg")))


@pytest.mark.parametrize("write_bytes", [spool_module.WRITE_BYTES, 5000])
def test_append_many_writes_what_appends_one_by_one_write_across_segments(tmp_path, monkeypatch, write_bytes):
    """Same bytes, same segment files, same end positions and counters as append() per line,
    with lines spilling over several 64 KiB segments; whatever the largest write (WRITE_BYTES,
    which bounds the memory a batch takes on top of its lines), never more in one."""
    monkeypatch.setattr(spool_module, "WRITE_BYTES", write_bytes)
    lines = [f"icmp,device_id=cam-{i:05d} sent={i}i {point_time(i)}".encode() for i in range(6000)]
    one, many = Spool(tmp_path / "one", 1 << 20), Spool(tmp_path / "many", 1 << 20)
    one.open()
    many.open()
    writes: list[int] = []
    real_write = many._write

    def write(data: bytes, count: int, keep_loaded: bool) -> int | None:
        writes.append(len(data))
        return real_write(data, count, keep_loaded)

    many._write = write  # type: ignore[method-assign]
    try:
        ends_one = [one.append(line, keep_loaded=False) for line in lines]
        ends_many = many.append_many(lines[:10], keep_loaded=False) + many.append_many(lines[10:], keep_loaded=False)
        assert max(writes) <= write_bytes and len(writes) <= 2 * (6000 * 62 // min(write_bytes, 1 << 16) + 2)
        assert ends_many == ends_one and None not in ends_many
        assert [p.name for p in sorted((tmp_path / "many").glob("*.seg"))] == \
               [p.name for p in sorted((tmp_path / "one").glob("*.seg"))]
        assert len(list((tmp_path / "many").glob("*.seg"))) >= 4
        assert _records(tmp_path / "many") == _records(tmp_path / "one")
        assert many.unloaded_lines == one.unloaded_lines == 6000
        assert [line for line, _end in many.load(6000)] == lines
    finally:
        one.close()
        many.close()


def _line(i: int) -> bytes:
    return encode_line("icmp", CAM, {"up": True, "sent": i, "rtt_avg_ms": 1.5}, point_time(i))


@pytest.mark.peer
@pytest.mark.parametrize("spooled", [True, False])
async def test_write_encoded_and_write_interleave_in_order_into_a_real_influxdb(influx_own, tmp_path, spooled):
    """Single points and batches (larger than the RAM buffer, so a batch goes to disk only and is
    loaded back) arrive in the order written, none lost, none twice. With a spool at most two
    batches are held in memory (the rest waits on disk), whatever max_buffer_lines."""
    influx_own.start()
    influx_own.create_database("batches")
    spool = tmp_path / "spool" if spooled else None
    cfg = _config(influx_own.url, "batches", max_buffer_lines=1000 if spooled else 5000, batch_size=150)
    async with InfluxSink(cfg, spool) as sink:
        i, held = 0, []
        for batch in (1, 700, 1, 2500, 3, 900):
            if batch == 1:
                sink.write("icmp", CAM, {"up": True, "sent": i, "rtt_avg_ms": 1.5}, point_time(i))
            else:
                sink.write_encoded([_line(j) for j in range(i, i + batch)])
            i += batch
            held.append(len(sink._queue))
        assert max(held) <= 300 if spooled else max(held) > 1000
        assert await sink.flush(30)
        assert sink.stats.dropped_lines == 0
    rows = influx_own.rows("SELECT sent FROM icmp", "batches")
    assert [r["sent"] for r in rows] == list(range(i))


@pytest.mark.peer
async def test_device_state_is_written_on_change_and_refreshed_every_nth_cycle(influx, influx_db):
    """state_refresh_cycles 5 over 8 cycles of 20 devices: the first cycle writes all; then a
    device's point comes when its state changes, while it is in maintenance and once after,
    and on its refresh turn, so every device has a point in every 5 cycles and `last()`
    (what the dashboards ask) is every device's latest state."""
    from monitor.metrics.writer import MetricsWriter

    devices = [_device(n) for n in range(1, 21)]
    t0 = 1_700_000_000_000_000_000
    cycle_ns = 30_000_000_000
    async with InfluxSink(_config(influx.url, influx_db)) as sink:
        writer = MetricsWriter(sink, state_refresh_cycles=5)
        for k in range(8):
            states = {d.id: State.UP for d in devices}
            if k >= 2:
                states["CAM-7"] = State.DOWN  # goes down in cycle 2
            maintenance = {"CAM-9": "换镜头"} if k == 3 else {}  # one cycle of maintenance
            writer.device_states("online", states, devices, t0 + k * cycle_ns, maintenance, cycle=k)
        assert await sink.flush(10)
    rows = influx.rows("SELECT device_id, state, maintenance FROM device_state", influx_db)
    cycles_of: dict[str, list[int]] = {}
    for r in rows:
        cycles_of.setdefault(r["device_id"], []).append((r["time"] - t0) // cycle_ns)
    assert len(rows) < 20 * 8 / 2  # most cycles write a fifth of the devices
    for d in devices:
        seen = sorted(cycles_of[d.id])
        assert seen[0] == 0 and all(b - a <= 5 for a, b in zip(seen, [*seen, 8][1:])), (d.id, seen)
    assert 2 in cycles_of["CAM-7"] and {3, 4} <= set(cycles_of["CAM-9"])
    nine = [r for r in rows if r["device_id"] == "CAM-9"]
    assert [r["maintenance"] for r in sorted(nine, key=lambda r: r["time"]) if (r["time"] - t0) // cycle_ns in (3, 4)] == \
        ["换镜头", ""]
    latest = influx.query('SELECT last("state") FROM device_state GROUP BY "device_id"', influx_db)[0]["series"]
    assert {s["tags"]["device_id"]: s["values"][0][1] for s in latest} == \
        {d.id: "down" if d.id == "CAM-7" else "up" for d in devices}


@pytest.mark.peer
async def test_a_turns_results_reach_the_spool_in_one_write_in_order(influx, influx_db, tmp_path, monkeypatch):
    """MetricsWriter.result encodes at once (a schema error raises in the caller) and hands the
    results of one turn of the event loop to the sink in one spool write; a cycle's own points
    flush them first; a result whose every field is NaN writes nothing."""
    from monitor.metrics.schema import SchemaError
    from monitor.metrics.writer import MetricsWriter
    from probes.base import ProbeResult

    writes: list[int] = []
    real_write = Spool._write
    monkeypatch.setattr(Spool, "_write", lambda self, data, count, keep: writes.append(count) or real_write(self, data, count, keep))
    devices = [_device(n) for n in range(1, 101)]
    t0 = 1_700_000_000_000_000_000

    def icmp(n: int, rtt: float) -> ProbeResult:
        return ProbeResult(f"CAM-{n}", "icmp", t0 + n, True, None, {"rtt_avg_ms": rtt})

    async with InfluxSink(_config(influx.url, influx_db), tmp_path / "spool") as sink:
        writer = MetricsWriter(sink)
        for d in devices:
            writer.result(d, icmp(int(d.id[4:]), 1.0 + int(d.id[4:])))
        writer.result(devices[0], ProbeResult("CAM-1", "icmp", t0 + 500, True, None, {"rtt_avg_ms": float("nan")}))
        with pytest.raises(SchemaError):
            writer.result(devices[0], ProbeResult("CAM-1", "icmp", t0, True, None, {"no_such_field": 1}))
        assert writes == []
        await asyncio.sleep(0)
        assert writes == [100]
        writer.result(devices[1], icmp(2, 99.0))  # same time as before: overwrites the point
        writer.device_states("network", {"CAM-1": State.UP}, devices[:1], t0 + 1000)
        assert writes == [100, 1, 1]  # the result first, then the cycle's point
        assert await sink.flush(10)
    rows = influx.rows("SELECT device_id, rtt_avg_ms FROM icmp", influx_db)
    assert [(r["device_id"], r["rtt_avg_ms"]) for r in rows] == \
        [(f"CAM-{n}", 99.0 if n == 2 else 1.0 + n) for n in range(1, 101)]
