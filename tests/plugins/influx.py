"""Fixtures for a real InfluxDB (Debian's influxd 1.6.7, see lab/influxdb.py).

- `influx`: one influxd for the whole session; tests share it through their own databases.
- `influx_db`: a fresh database on it, dropped after the test.
- `influx_own`: an influxd of the test's own, NOT started: for tests that need InfluxDB down at
  first, or stop and restart it (`start()`/`stop()` keep port and data).
- `v2_forwarder`: the InfluxDB 2.x write endpoint relaying to `influx` (token `V2_TOKEN`).
- `fast_config(url, db, **overrides)`: an InfluxDBConfig that flushes, times out and retries
  within tenths of a second and keeps 1,000 lines in memory.
- `sink_log`: caplog for the InfluxDB sink's records, INFO and above (tests/test_storage.py
  has its own at DEBUG).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Iterator

import pytest

from lab.influxdb import InfluxServer, V2Forwarder
from monitor.metrics.config import InfluxDBConfig, RetryConfig

V2_TOKEN = "fwd-token-5b1c9e"
_db_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def influx() -> Iterator[InfluxServer]:
    with InfluxServer() as server:
        yield server


@pytest.fixture
def influx_db(influx: InfluxServer) -> Iterator[str]:
    name = f"test_{next(_db_numbers)}"
    influx.create_database(name)
    yield name
    influx.drop_database(name)


@pytest.fixture
def influx_own() -> Iterator[InfluxServer]:
    server = InfluxServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
async def v2_forwarder(influx: InfluxServer) -> AsyncIterator[V2Forwarder]:
    async with V2Forwarder(influx.url, V2_TOKEN) as forwarder:
        yield forwarder


@pytest.fixture
def sink_log(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> pytest.LogCaptureFixture:
    """caplog for the sink's records (monitor.app.logs.setup() stops "fleetmon" propagating)."""
    monkeypatch.setattr(logging.getLogger("fleetmon"), "propagate", True)
    caplog.set_level(logging.INFO)
    return caplog


def fast_config(url: str, db: str, **overrides) -> InfluxDBConfig:
    fast = dict(flush_interval_s=0.05, timeout_s=1.0, max_buffer_lines=1000, retry=RetryConfig(initial_s=0.05, max_s=0.2))
    return InfluxDBConfig(url=url, database=db, **(fast | overrides))
