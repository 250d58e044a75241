"""Fixtures for a real InfluxDB (Debian's influxd 1.6.7, see lab/influxdb.py).

- `influx`: one influxd for the whole session; tests share it through their own databases.
- `influx_db`: a fresh database on it, dropped after the test.
- `influx_own`: an influxd of the test's own, NOT started: for tests that need InfluxDB down at
  first, or stop and restart it (`start()`/`stop()` keep port and data).
- `v2_forwarder`: the InfluxDB 2.x write endpoint relaying to `influx` (token `V2_TOKEN`).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator

import pytest

from lab.influxdb import InfluxServer, V2Forwarder

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
