"""The InfluxDB sink against a real InfluxDB (influxd 1.6.7): data written through the v1 and v2
APIs is read back with InfluxQL; outages, restarts, bad credentials, rejected lines and a full
buffer lose nothing but what they must, and say so in the log."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pydantic
import pytest

from lab.influxdb import InfluxServer, V2Forwarder
from monitor.metrics.config import InfluxDBConfig, RetryConfig
from monitor.metrics.schema import SchemaError
from monitor.metrics.sink import InfluxSink
from tests.plugins.influx import V2_TOKEN

T0 = 1_763_000_000_123_456_789  # 2025-11-13 UTC, ns: all points of a test fall in one shard
CAM = {"device_id": "cam-001", "kind": "camera", "site": "城关镇 site A, north", "region": "城关镇"}


def v1_config(url: str, database: str, **overrides) -> InfluxDBConfig:
    """Fast flushing and retrying so that tests do not wait for production intervals."""
    settings = dict(
        url=url,
        database=database,
        flush_interval_s=0.05,
        timeout_s=2.0,
        retry=RetryConfig(initial_s=0.05, max_s=0.2),
    )
    return InfluxDBConfig(**(settings | overrides))


def v2_config(url: str, bucket: str, token_env: str, **overrides) -> InfluxDBConfig:
    return v1_config(url, "unused", api="v2", org="fleetmon", bucket=bucket, token_env=token_env, **overrides)


def icmp(sink: InfluxSink, i: int, device: str = "cam-001") -> None:
    """Point number i: time T0 + i ns, `sent` = i, so that order and completeness can be checked."""
    sink.write("icmp", {**CAM, "device_id": device}, {"up": True, "sent": i, "rtt_avg_ms": 1.5}, T0 + i)


async def eventually(condition: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    """Wait until condition() holds; fail naming `what` after timeout_s (a guard, not a timing)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
def sink_log(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> pytest.LogCaptureFixture:
    """caplog for the sink's records at every level. monitor.app.logs.setup() stops "fleetmon" records
    from propagating to the root logger, where caplog listens: undo that for the test."""
    monkeypatch.setattr(logging.getLogger("fleetmon"), "propagate", True)
    caplog.set_level(logging.DEBUG)
    return caplog


def messages(log: pytest.LogCaptureFixture, containing: str) -> list[logging.LogRecord]:
    return [r for r in log.records if r.name == "fleetmon.storage" and containing in r.getMessage()]


def sent_values(influx: InfluxServer, db: str) -> list[int]:
    return [row["sent"] for row in influx.rows("SELECT sent FROM icmp", db)]


# -- both APIs write exactly what was given --------------------------------------------------------


@pytest.mark.peer
async def test_v1_writes_values_types_tags_and_timestamps_exactly(influx, influx_db):
    async with InfluxSink(v1_config(influx.url, influx_db)) as sink:
        sink.write(
            "icmp",
            CAM,
            {"up": True, "sent": 3, "received": 2, "loss_pct": 100 / 3, "rtt_avg_ms": 1, "payload_bytes": 20_000},
            T0,
        )
        sink.write("device_state", CAM, {"state": 'down "dark" site', "online": 0, "counted": 1}, T0 + 1)
        sink.write("online_rate", {"scope": "region", "group": "城关镇", "kind": "all"}, {"online_rate_pct": 95.25}, T0 + 2)
        assert await sink.flush(10)
    assert sink.stats.written_lines == 4  # three points and the sink's own fleetmon_sink point at exit
    assert sink.stats.buffered_lines == sink.stats.dropped_lines == 0

    (row,) = influx.rows("SELECT * FROM icmp", influx_db)
    assert row["time"] == T0
    assert {k: row[k] for k in CAM} == CAM
    assert (row["up"], row["sent"], row["received"], row["loss_pct"], row["payload_bytes"]) == (True, 3, 2, 100 / 3, 20_000)
    assert row["rtt_avg_ms"] == 1.0
    field_types = dict(influx.query("SHOW FIELD KEYS FROM icmp", influx_db)[0]["series"][0]["values"])
    assert field_types == {
        "up": "boolean", "sent": "integer", "received": "integer", "loss_pct": "float",
        "rtt_avg_ms": "float",  # an int given for a float field is written as a float
        "payload_bytes": "integer",
    }
    (state,) = influx.rows("SELECT * FROM device_state", influx_db)
    assert (state["time"], state["state"], state["site"]) == (T0 + 1, 'down "dark" site', CAM["site"])
    (rate,) = influx.rows("SELECT * FROM online_rate", influx_db)
    assert (rate["time"], rate["group"], rate["online_rate_pct"]) == (T0 + 2, "城关镇", 95.25)
    (own,) = influx.rows("SELECT * FROM fleetmon_sink", influx_db)
    assert (own["written_lines"], own["buffered_lines"], own["dropped_lines"]) == (3, 0, 0)


@pytest.mark.peer
async def test_v2_writes_through_the_forwarder_into_the_real_database(influx, influx_db, v2_forwarder, monkeypatch):
    monkeypatch.setenv("FLEETMON_TEST_TOKEN", V2_TOKEN)
    async with InfluxSink(v2_config(v2_forwarder.url, influx_db, "FLEETMON_TEST_TOKEN")) as sink:
        for i in range(5):
            icmp(sink, i)
        assert await sink.flush(10)
    rows = influx.rows("SELECT * FROM icmp", influx_db)
    assert [(r["time"], r["sent"], r["up"], r["rtt_avg_ms"], r["site"]) for r in rows] == [
        (T0 + i, i, True, 1.5, CAM["site"]) for i in range(5)
    ]
    assert {(r.api, r.database, r.status) for r in v2_forwarder.requests} == {("v2", influx_db, 204)}


@pytest.mark.peer
@pytest.mark.parametrize("api", ["v1", "v2"])
@pytest.mark.parametrize("use_gzip", [True, False])
async def test_requests_are_batched_and_gzipped_as_configured(influx, influx_db, v2_forwarder, monkeypatch, api, use_gzip):
    monkeypatch.setenv("FLEETMON_TEST_TOKEN", V2_TOKEN)
    if api == "v1":  # the forwarder relays 1.x /write unchanged, so it sees the v1 requests too
        cfg = v1_config(v2_forwarder.url, influx_db, batch_size=100, gzip=use_gzip)
    else:
        cfg = v2_config(v2_forwarder.url, influx_db, "FLEETMON_TEST_TOKEN", batch_size=100, gzip=use_gzip)
    async with InfluxSink(cfg) as sink:
        for i in range(1050):
            icmp(sink, i, device=f"cam-{i % 7}")
    requests = v2_forwarder.requests
    assert {r.api for r in requests} == {api}
    assert max(r.lines for r in requests) == 100
    assert sum(r.lines for r in requests) == 1051  # and the fleetmon_sink point
    assert {r.content_encoding for r in requests} == ({"gzip"} if use_gzip else {None})
    assert len(sent_values(influx, influx_db)) == 1050


# -- outages ---------------------------------------------------------------------------------------


@pytest.mark.peer
async def test_influxdb_down_at_start_then_all_data_arrives_in_order(influx_own, sink_log):
    """The daemon's case: InfluxDB (a fresh one, without the database yet) is not running when the
    sink starts. The sink starts anyway, buffers, says so once, and writes everything later."""
    async with InfluxSink(v1_config(influx_own.url, "fleetmon")) as sink:
        for i in range(500):
            icmp(sink, i)
        await eventually(lambda: sink.stats.write_errors >= 3, "several failed attempts")
        assert sink.stats.reachable is False
        assert sink.stats.buffered_lines == 500
        (down,) = messages(sink_log, "InfluxDB unreachable at")  # one line, not one per retry
        assert down.levelno == logging.WARNING
        assert influx_own.url in down.getMessage() and "buffering, retry in" in down.getMessage()

        await asyncio.to_thread(influx_own.start)
        assert await sink.flush(20)
        assert sink.stats.reachable is True
    assert sent_values(influx_own, "fleetmon") == list(range(500))
    assert sink.stats.dropped_lines == 0
    assert messages(sink_log, "database 'fleetmon' did not exist: created it")
    (back,) = messages(sink_log, "InfluxDB reachable again")
    assert "flushed 500 lines" in back.getMessage()


@pytest.mark.peer
async def test_influxdb_restarted_mid_stream_loses_nothing(influx_own, sink_log):
    influx_own.start()
    influx_own.create_database("fleetmon")
    async with InfluxSink(v1_config(influx_own.url, "fleetmon")) as sink:
        for i in range(300):
            icmp(sink, i)
            await asyncio.sleep(0.002)
            if i == 100:
                await asyncio.to_thread(influx_own.stop)
            if i == 200:
                await eventually(lambda: not sink.stats.reachable, "the sink noticed the outage")
                await asyncio.to_thread(influx_own.start)
        assert await sink.flush(20)
    assert sent_values(influx_own, "fleetmon") == list(range(300))
    assert sink.stats.dropped_lines == 0
    assert len(messages(sink_log, "InfluxDB unreachable at")) == 1
    assert len(messages(sink_log, "InfluxDB reachable again")) == 1


@pytest.mark.peer
@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_is_honoured_and_nothing_is_lost(influx, influx_db, v2_forwarder, monkeypatch, sink_log, status):
    monkeypatch.setenv("FLEETMON_TEST_TOKEN", V2_TOKEN)
    v2_forwarder.fail_next(status, retry_after_s=7)
    async with InfluxSink(v2_config(v2_forwarder.url, influx_db, "FLEETMON_TEST_TOKEN")) as sink:
        for i in range(3):
            icmp(sink, i)
        await eventually(lambda: sink.stats.write_errors == 1, "the injected failure")
        (down,) = messages(sink_log, "InfluxDB unreachable at")
        # The backoff would say 0.1 s (retry.initial_s 0.05); the server asked for 7 s.
        assert f"HTTP {status}" in down.getMessage() and "retry in 7 s" in down.getMessage()
        assert await sink.flush(10)  # flush() does not wait out the retry delay
    assert sent_values(influx, influx_db) == [0, 1, 2]
    assert sink.stats.dropped_lines == 0


@pytest.mark.peer
async def test_stopping_while_influxdb_is_down_says_what_is_left(influx_own, sink_log):
    async with InfluxSink(v1_config(influx_own.url, "fleetmon", timeout_s=0.3)) as sink:
        for i in range(3):
            icmp(sink, i)
    (left,) = messages(sink_log, "InfluxDB sink stopping with")
    assert "4 lines not written" in left.getMessage()  # three points and the sink's own point
    assert sink.stats.buffered_lines == 4


# -- what InfluxDB refuses ---------------------------------------------------------------------------


@pytest.mark.peer
async def test_wrong_token_is_reported_clearly_and_nothing_is_dropped(influx, influx_db, v2_forwarder, monkeypatch, sink_log):
    wrong = "wrong-token-7f3a1c"
    monkeypatch.setenv("FLEETMON_TEST_TOKEN", wrong)
    async with InfluxSink(v2_config(v2_forwarder.url, influx_db, "FLEETMON_TEST_TOKEN")) as sink:
        for i in range(5):
            icmp(sink, i)
        await eventually(lambda: sink.stats.write_errors >= 3, "several refused attempts")
        (refused,) = messages(sink_log, "refuses fleetmon's credentials")
        assert refused.levelno == logging.ERROR
        assert "HTTP 401" in refused.getMessage() and "token" in refused.getMessage()
        assert (sink.stats.buffered_lines, sink.stats.dropped_lines) == (5, 0)

        v2_forwarder.token = wrong  # the admin grants this token on the server
        assert await sink.flush(10)
    assert sent_values(influx, influx_db) == list(range(5))
    assert wrong not in sink_log.text


@pytest.mark.peer
async def test_v1_credentials_are_used_and_never_shown(monkeypatch, sink_log):
    secret = "adm-pw-94e0d2"
    with InfluxServer(admin=("admin", secret)) as server:
        server.create_database("fleetmon")
        monkeypatch.setenv("FLEETMON_TEST_PASSWORD", "not-" + secret)
        bad = v1_config(server.url, "fleetmon", username="admin", password_env="FLEETMON_TEST_PASSWORD", timeout_s=0.5)
        async with InfluxSink(bad) as sink:
            icmp(sink, 0)
            await eventually(lambda: sink.stats.write_errors >= 2, "refused attempts")
            (refused,) = messages(sink_log, "refuses fleetmon's credentials")
            assert "HTTP 401" in refused.getMessage() and "password" in refused.getMessage()
            shown = [repr(sink), repr(bad), str(bad.model_dump()), sink_log.text]

        monkeypatch.setenv("FLEETMON_TEST_PASSWORD", secret)
        good = v1_config(server.url, "fleetmon", username="admin", password_env="FLEETMON_TEST_PASSWORD")
        async with InfluxSink(good) as sink:
            icmp(sink, 1)
            assert await sink.flush(10)
            shown += [repr(sink), repr(good), str(good.model_dump()), sink_log.text]

        # A password in the URL is a secret written in the config: refused, and not echoed.
        with pytest.raises(pydantic.ValidationError) as refused_url:
            v1_config(f"http://admin:{secret}@127.0.0.1:{server.http_port}", "fleetmon")
        assert "must not carry credentials" in str(refused_url.value)
        shown.append(str(refused_url.value))
        assert sent_values(server, "fleetmon") == [1]
    assert not [text for text in shown if secret in text]


@pytest.mark.peer
async def test_field_type_conflict_drops_only_the_conflicting_line(influx, influx_db, sink_log):
    # Older data stored loss_pct as an integer: a float for it can never be written to this shard.
    influx.write(f"icmp,device_id=cam-001 loss_pct=5i {T0}", influx_db)
    async with InfluxSink(v1_config(influx.url, influx_db)) as sink:
        sink.write("icmp", CAM, {"loss_pct": 10.0}, T0 + 1)
        sink.write("icmp", {**CAM, "device_id": "cam-002"}, {"up": True}, T0 + 2)
        sink.write("online_rate", {"scope": "fleet", "group": "all", "kind": "all"}, {"online": 7}, T0 + 3)
        assert await sink.flush(10)
        assert (sink.stats.written_lines, sink.stats.dropped_lines) == (2, 1)
    assert [(r["time"], r["loss_pct"], r["up"]) for r in influx.rows("SELECT * FROM icmp", influx_db)] == [
        (T0, 5, None),
        (T0 + 2, None, True),
    ]
    assert [r["online"] for r in influx.rows("SELECT * FROM online_rate", influx_db)] == [7]
    (rejected,) = messages(sink_log, "InfluxDB rejected 1 lines")
    assert "field type conflict" in rejected.getMessage()


@pytest.mark.peer
async def test_too_large_v1_requests_are_split(sink_log):
    with InfluxServer(max_body_size=3000) as server:  # influxd answers 413 beyond 3,000 bytes
        server.create_database("fleetmon")
        async with InfluxSink(v1_config(server.url, "fleetmon", batch_size=200, gzip=False)) as sink:
            for i in range(200):
                icmp(sink, i)
            assert await sink.flush(10)
        assert sent_values(server, "fleetmon") == list(range(200))
    assert sink.stats.dropped_lines == 0
    assert messages(sink_log, "refused a batch of 200 lines as too large (HTTP 413")


@pytest.mark.peer
async def test_too_large_v2_requests_are_split(influx, influx_db, monkeypatch):
    monkeypatch.setenv("FLEETMON_TEST_TOKEN", V2_TOKEN)
    async with V2Forwarder(influx.url, V2_TOKEN, max_body_bytes=3000) as forwarder:
        async with InfluxSink(v2_config(forwarder.url, influx_db, "FLEETMON_TEST_TOKEN", batch_size=200)) as sink:
            for i in range(200):
                icmp(sink, i)
            assert await sink.flush(10)
        assert forwarder.requests[0].status == 413
        accepted = [r for r in forwarder.requests if r.status == 204]
        assert max(r.lines for r in accepted) <= 50  # 200 → 100 → 50 → … until the body fits
    assert sent_values(influx, influx_db) == list(range(200))
    assert sink.stats.dropped_lines == 0


@pytest.mark.peer
async def test_full_buffer_drops_the_oldest_lines_and_counts_them(influx_own, sink_log):
    cfg = v1_config(influx_own.url, "fleetmon", max_buffer_lines=1000, batch_size=100)
    async with InfluxSink(cfg) as sink:
        for i in range(1500):
            icmp(sink, i)
        await eventually(lambda: sink.stats.dropped_lines == 500, "500 lines dropped")
        assert sink.stats.buffered_lines == 1000
        assert len(messages(sink_log, "buffer full (1000 lines)")) == 1

        await asyncio.to_thread(influx_own.start)
        assert await sink.flush(20)
    assert sent_values(influx_own, "fleetmon") == list(range(500, 1500))
    assert sink.stats.dropped_lines == 500
    (back,) = messages(sink_log, "InfluxDB reachable again")
    assert "500 lines were dropped because the buffer was full" in back.getMessage()


# -- bugs in the caller ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "measurement, tags, fields",
    [
        ("icmp", CAM, {"rtt_ms": 1.0}),  # undeclared field
        ("icmp", {**CAM, "vendor": "hik"}, {"up": True}),  # undeclared tag
        ("netflow", {}, {"up": True}),  # undeclared measurement
        ("icmp", CAM, {}),  # no field
        ("icmp", CAM, {"loss_pct": "0"}),  # str for a float
        ("icmp", CAM, {"sent": True}),  # bool for an integer
        ("icmp", CAM, {"up": 1}),  # int for a boolean
        ("icmp", CAM, {"sent": 3.0}),  # float for an integer
    ],
)
def test_points_the_schema_does_not_declare_raise(measurement, tags, fields):
    sink = InfluxSink(v1_config("http://127.0.0.1:9", "fleetmon"))
    with pytest.raises(SchemaError):
        sink.write(measurement, tags, fields, T0)
    assert sink.stats.buffered_lines == 0
