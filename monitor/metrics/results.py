"""Raw probe results read back from InfluxDB, for a spot check (抽查): the state database keeps
transitions only, the individual results (RTT, loss, RTSP status, ONVIF answers) are in
InfluxDB, written by the sink (monitor/metrics/sink.py) under the probe's measurement name with
the device tags (monitor.core.measurement.DEVICE_TAGS).

Read through the InfluxDB 1.x query API: `GET /query` with InfluxQL, `epoch=ns`
(https://docs.influxdata.com/influxdb/v1/tools/api/#query-http-endpoint); InfluxDB 2.x and 3.x
answer it too once the bucket has a DBRP mapping. With `api: v2` fleetmon does not read back
(its Flux path is not built): the reader says so instead of guessing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import aiohttp

from monitor.metrics.config import InfluxDBConfig
from monitor.metrics.sink import _basic_auth, _split_url_credentials


class ResultsUnavailable(Exception):
    """The results could not be read (InfluxDB down, credentials refused, database missing …);
    the message says why, for people, without secrets."""


@dataclass(frozen=True, slots=True)
class RawResult:
    """One stored probe result: its measurement (the probe's), time (UTC ns), and its fields
    and tags as stored, tags included (device_id, site …)."""

    measurement: str
    ts_ns: int
    values: Mapping[str, Any]


class InfluxResults:
    """Reads a device's probe results from the InfluxDB of `cfg` (the config's `influxdb`)."""

    def __init__(self, cfg: InfluxDBConfig, measurements: Sequence[str] = ("icmp", "onvif", "rtsp", "rtsp_frame")) -> None:
        self._cfg = cfg
        self._measurements = tuple(measurements)

    async def results(self, device_id: str, start_ns: int, end_ns: int) -> list[RawResult]:
        """Results of `device_id` in [start_ns, end_ns) from every measurement, in time order.
        Raises ResultsUnavailable."""
        cfg = self._cfg
        if not cfg.enabled:
            raise ResultsUnavailable("InfluxDB is disabled in the config (influxdb.enabled: false)")
        if cfg.api != "v1":
            raise ResultsUnavailable("reading results back needs the v1 query API (influxdb.api: v1)")
        base, url_credentials = _split_url_credentials(cfg.url)
        if cfg.username is not None:
            credentials = (cfg.username, cfg.password.get_secret_value() if cfg.password is not None else "")
        else:
            credentials = url_credentials
        headers = {"Authorization": _basic_auth(*credentials)} if credentials else {}
        sources = ",".join(_ident(m) for m in self._measurements)
        query = f"SELECT * FROM {sources} WHERE \"device_id\" = {_string(device_id)} AND time >= {start_ns} AND time < {end_ns}"
        params = {"db": cfg.database, "q": query, "epoch": "ns"}
        if cfg.retention_policy:
            params["rp"] = cfg.retention_policy
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=cfg.timeout_s), headers=headers) as session:
                async with session.get(base / "query", params=params) as resp:
                    body = await resp.json(content_type=None)
                    status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise ResultsUnavailable(f"no answer from {base}: {type(exc).__name__} {exc}".rstrip()) from None
        error = body.get("error") if isinstance(body, dict) else None
        for result in body.get("results", []) if isinstance(body, dict) else []:
            error = error or result.get("error")
        if status != 200 or error:
            raise ResultsUnavailable(f"InfluxDB answered {status}: {error or 'no reason given'}")
        out = []
        for result in body.get("results", []):
            for series in result.get("series", []):
                columns = series["columns"]
                for row in series["values"]:
                    values = {c: v for c, v in zip(columns, row) if c != "time" and v is not None}
                    out.append(RawResult(series["name"], int(row[0]), values))
        out.sort(key=lambda r: (r.ts_ns, r.measurement))
        return out


def _ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
