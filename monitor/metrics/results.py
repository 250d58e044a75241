"""Raw probe results read back from InfluxDB, for a spot check (抽查), and the ICMP results of a
period summed up per device, for the daily report's line quality: the state database keeps
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


@dataclass(frozen=True, slots=True)
class IcmpSummary:
    """A device's ICMP results over a period: mean of the results' mean RTT and largest of their
    largest RTT (ms; None when no echo came back at all), mean loss (%), number of results."""

    device_id: str
    rtt_mean_ms: float | None
    rtt_max_ms: float | None
    loss_mean_pct: float | None
    results: int


class InfluxResults:
    """Reads probe results from the InfluxDB of `cfg` (the config's `influxdb`)."""

    def __init__(self, cfg: InfluxDBConfig, measurements: Sequence[str] = ("icmp", "onvif", "rtsp", "rtsp_frame")) -> None:
        self._cfg = cfg
        self._measurements = tuple(measurements)

    async def results(self, device_id: str, start_ns: int, end_ns: int) -> list[RawResult]:
        """Results of `device_id` in [start_ns, end_ns) from every measurement, in time order.
        Raises ResultsUnavailable."""
        sources = ",".join(_ident(m) for m in self._measurements)
        query = f"SELECT * FROM {sources} WHERE \"device_id\" = {_string(device_id)} AND time >= {start_ns} AND time < {end_ns}"
        out = []
        for series in await self._query(query):
            columns = series["columns"]
            for row in series["values"]:
                values = {c: v for c, v in zip(columns, row) if c != "time" and v is not None}
                out.append(RawResult(series["name"], int(row[0]), values))
        out.sort(key=lambda r: (r.ts_ns, r.measurement))
        return out

    async def icmp_summary(self, start_ns: int, end_ns: int) -> dict[str, IcmpSummary]:
        """Per device (id → summary), the ICMP results in [start_ns, end_ns) summed up by
        InfluxDB: mean and largest RTT, mean loss, the number of results. Devices without a
        result in the period are absent. Raises ResultsUnavailable."""
        query = (
            'SELECT mean("rtt_avg_ms"), max("rtt_max_ms"), mean("loss_pct"), count("loss_pct") FROM "icmp" '
            f'WHERE time >= {start_ns} AND time < {end_ns} GROUP BY "device_id"'
        )
        out = {}
        for series in await self._query(query):
            device_id = (series.get("tags") or {}).get("device_id")
            if not device_id or not series.get("values"):
                continue
            _, rtt_mean, rtt_max, loss, count = series["values"][0]
            out[device_id] = IcmpSummary(device_id, rtt_mean, rtt_max, loss, int(count or 0))
        return out

    async def _query(self, query: str) -> list[dict[str, Any]]:
        """The series of an InfluxQL query's answer (one statement). Raises ResultsUnavailable."""
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
        return [series for result in body.get("results", []) for series in result.get("series", [])]


def _ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
