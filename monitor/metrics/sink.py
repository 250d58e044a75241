"""The InfluxDB sink: buffers points in memory and writes them in batches, in order, surviving
InfluxDB outages.

Data flow: `InfluxSink.write()` (sync, from the event loop) → schema check and line-protocol
encoding → the spool on disk (monitor/metrics/spool.py: survives restarts and kill -9; bounded
by `spool_max_bytes`), whose front is held in memory (at most `max_buffer_lines`) → one
background task that sends batches of at most `batch_size` lines every `flush_interval_s` (or
as soon as a batch is full) → InfluxDB; what InfluxDB settled is acknowledged in the spool.
Lines waiting on disk only (an outage longer than the memory holds, or lines from before a
restart) are loaded back in order as the memory empties: the order of the lines and their
timestamps are the ones written. Without a spool directory (tests, one-shot commands) the
memory is all there is.

Two APIs, one encoder (`encode_line`, nanosecond precision):
- `api: v1`: aiohttp `POST {url}/write?db=&rp=&precision=ns`, Basic auth from username/password
  or from user:password@ in the URL (InfluxDB 1.x; 2.x and 3.x through their v1 compatibility
  API).
  https://docs.influxdata.com/influxdb/v1/tools/api/#write-http-endpoint
- `api: v2`: the influxdb-client async write API → `POST {url}/api/v2/write?org=&bucket=`,
  `Authorization: Token` (InfluxDB 2.x, 3.x, 1.8+).
  https://docs.influxdata.com/influxdb/v2/api/#operation/PostWrite

What InfluxDB answers, and what the sink does (status codes from the pages above and
https://docs.influxdata.com/influxdb/v2/write-data/troubleshoot/):
- 2xx: written.
- 400 / 422 (1.x "partial write: field type conflict … dropped=N", 2.x "unprocessable entity"):
  InfluxDB stored what it could; the rejected lines can never be written. They are dropped and
  counted, the InfluxDB message is logged.
- 413 (body larger than the server's max-body-size): the batch is halved, and later batches stay
  that small; a single line still too large is dropped.
- 401 / 403: kept and retried, with one clear log line that the credentials are wrong.
- 404 "database not found" (v1): `CREATE DATABASE` once, then the batch is sent again.
- No answer (connection refused, timeout), 429, 5xx and other statuses (e.g. v2 bucket not
  found): kept and retried with exponential backoff (retry.initial_s … retry.max_s, jitter);
  429/503 `Retry-After` is honoured.
Without a spool the buffer holds at most `max_buffer_lines`; beyond it the oldest lines are
dropped and counted. With one, the oldest are dropped (and counted) only when the spool is full.

Logging follows the daemon's rule of one line per state change: one when writes start failing,
one when they work again, never one per retry. Secrets (password, token) are never logged.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import enum
import gzip
import itertools
import json
import math
import logging
import random
import re
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Protocol, Self, Sequence

import aiohttp
import yarl

from monitor.metrics import schema
from monitor.metrics.config import InfluxDBConfig
from monitor.metrics.spool import Spool

if TYPE_CHECKING:
    from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
    from influxdb_client.client.write_api_async import WriteApiAsync

log = logging.getLogger("fleetmon.storage")

FieldValue = float | int | bool | str

SELF_MONITOR_INTERVAL_S = 10.0
"""How often the sink writes its own `fleetmon_sink` point."""
_GZIP_LEVEL = 5  # v1 bodies: most of level 9's ratio on line protocol, at a fraction of its CPU
_MESSAGE_LIMIT = 300  # characters of an InfluxDB error message kept in a log line
_REJECT_LOG_INTERVAL_S = 60.0  # a schema conflict rejects every batch: say it at most this often
_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "float": (float, int),  # ints are written as floats: 0 must not become 0i (a type conflict)
    "integer": (int,),
    "boolean": (bool,),
    "string": (str,),
}


@dataclass(frozen=True, slots=True)
class SinkStats:
    """Counters of one sink since it was created, in lines (one line = one point).

    - buffered_lines: waiting to be written (in memory or in the spool), including a batch
      being sent.
    - written_lines: accepted by InfluxDB.
    - dropped_lines: lost for good: evicted because the buffer (or the spool) was full, damaged
      in the spool, or rejected by InfluxDB (field type conflict, too large).
    - write_errors: write requests that did not fully succeed (including ones retried later).
    - reachable: the last write request was answered and accepted, fully or in part (True
      until a request fails).
    """

    buffered_lines: int
    written_lines: int
    dropped_lines: int
    write_errors: int
    reachable: bool


# Line protocol escaping (https://docs.influxdata.com/influxdb/v1/write_protocols/line_protocol_reference/
# "Special characters"): commas and spaces in measurements; commas, equals signs and spaces in tag
# keys, tag values and field keys; double quotes and backslashes in string field values. Newlines
# cannot appear raw anywhere in a line, so they are escaped too.
_MEASUREMENT = str.maketrans({",": "\\,", " ": "\\ ", "\n": "\\n"})
# Line-protocol escapes (str.translate tables): tag keys and values, field keys; string field values.
KEY_ESCAPES = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ ", "\n": "\\n"})
STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})
# Most texts need no escape: a regular-expression search finds that in a quarter of the time a
# translate takes (0.1 against 0.4–0.6 µs; five texts a line, 30,000 lines a cycle at 10,000 devices).
_KEY_SPECIAL = re.compile("[,= \n]").search
_STRING_SPECIAL = re.compile('[\\\\"\n]').search


def escape_key(text: str) -> str:
    """A tag key or value, or a field key, escaped for line protocol (KEY_ESCAPES)."""
    return text if _KEY_SPECIAL(text) is None else text.translate(KEY_ESCAPES)


def escape_string(text: str) -> str:
    """A string field value's text, escaped for line protocol (STRING_ESCAPES), without its quotes."""
    return text if _STRING_SPECIAL(text) is None else text.translate(STRING_ESCAPES)


def encode_line(measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue], ts_ns: int) -> bytes:
    """One point as InfluxDB line protocol (UTF-8, timestamp in ns since the Unix epoch, UTC).

    fleetmon's own encoder rather than influxdb-client's `Point`: it is the hot path of the
    metrics writer (20,000 lines a cycle at 10,000 devices), where `Point` costs ~30 µs a line
    and importing its package ~14 MB of RSS, which alone breaks the daemon's 100 MB budget; the
    format is small and fully specified, and tests round-trip every value type, escapes and
    Chinese tags through a real InfluxDB. Tags are sorted by key (InfluxDB's recommendation);
    empty tag values are left out (line protocol has no empty tag value).

    Raises schema.SchemaError when the measurement, a tag or a field is not declared in
    monitor/metrics/schema.py, or a field value does not have the declared type (bool is not a number).
    Returns b"" when no field has a value (NaN and ±inf floats cannot be written)."""
    spec = schema.check(measurement, tags, fields)
    plan = _PLANS.get(measurement) or _plan(measurement, spec)
    isfinite = math.isfinite
    head, tag_prefixes, field_prefixes = plan
    encoded = []
    for key, value in fields.items():
        prefix, declared = field_prefixes[key]
        # The common exact types first (bool is not int here: type(True) is bool), then the
        # general path, which converts and raises like it always did.
        kind = type(value)
        if kind is float and declared == "float":
            if not isfinite(value):
                continue
            text = repr(value)
        elif kind is int and declared == "integer":
            text = f"{value}i"
        elif kind is bool and declared == "boolean":  # every probe's `up`
            text = "true" if value else "false"
        elif kind is str and declared == "string":
            text = '"' + escape_string(value) + '"'
        else:
            general = _field_text(_typed(measurement, key, declared, value))
            if general is None:
                continue
            text = general
        encoded.append(prefix + text)
    if not encoded:
        return b""
    parts = [head]
    for key, prefix in tag_prefixes:
        value = tags.get(key)
        if value:
            parts.append(prefix + (value if _KEY_SPECIAL(value) is None else value.translate(KEY_ESCAPES)))
    return f"{''.join(parts)} {','.join(encoded)} {ts_ns}".encode()


# measurement → (escaped measurement, ((tag key, ",key="), … sorted by key), {field: ("key=", declared type)}):
# what encode_line would otherwise escape and look up again for every line.
_PLANS: dict[str, tuple[str, tuple[tuple[str, str], ...], dict[str, tuple[str, schema.FieldType]]]] = {}


def _plan(measurement: str, spec: schema.MeasurementSpec) -> tuple[str, tuple[tuple[str, str], ...], dict[str, tuple[str, schema.FieldType]]]:
    plan = (
        measurement.translate(_MEASUREMENT),
        tuple((key, f",{key.translate(KEY_ESCAPES)}=") for key in sorted(spec.tags)),
        {key: (f"{key.translate(KEY_ESCAPES)}=", f.type) for key, f in spec.fields.items()},
    )
    _PLANS[measurement] = plan
    return plan


def _field_text(value: FieldValue) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    return '"' + escape_string(value) + '"'


def _typed(measurement: str, name: str, declared: schema.FieldType, value: FieldValue) -> FieldValue:
    if isinstance(value, bool) != (declared == "boolean") or not isinstance(value, _PYTHON_TYPES[declared]):
        raise schema.SchemaError(
            f"{measurement}: field {name!r} is declared {declared}, got {type(value).__name__} {value!r}"
        )
    return float(value) if declared == "float" else value


# -- talking to InfluxDB ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Reply:
    """How one write request ended. status 0: no HTTP answer (message says why)."""

    status: int
    message: str = ""
    retry_after_s: float | None = None

    def describe(self) -> str:
        text = self.message if len(self.message) <= _MESSAGE_LIMIT else self.message[:_MESSAGE_LIMIT] + "…"
        return text if self.status == 0 else f"HTTP {self.status}: {text}"


class _Verdict(enum.Enum):
    WRITTEN = "written"
    REJECTED = "rejected"  # some or all lines can never be written
    TOO_LARGE = "too large"
    UNREACHABLE = "unreachable"  # no answer, 429, 5xx: retry later
    CREDENTIALS = "credentials"  # 401/403: retry, the admin must fix the credentials
    REFUSED = "refused"  # any other status (bucket not found, …): retry, someone must fix InfluxDB


def _verdict(status: int) -> _Verdict:
    if 200 <= status < 300:
        return _Verdict.WRITTEN
    if status in (400, 422):
        return _Verdict.REJECTED
    if status == 413:
        return _Verdict.TOO_LARGE
    if status in (401, 403):
        return _Verdict.CREDENTIALS
    if status == 0 or status == 429 or status >= 500:
        return _Verdict.UNREACHABLE
    return _Verdict.REFUSED


_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


def _transport_failure(exc: BaseException, timeout_s: float) -> _Reply:
    """A _Reply for a request that got no HTTP answer."""
    if isinstance(exc, asyncio.TimeoutError):
        return _Reply(0, f"no answer within {timeout_s:g} s")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _Reply(0, f"cannot connect ({exc.os_error.strerror or exc.os_error})")
    return _Reply(0, str(exc) or type(exc).__name__)


def _error_message(body: bytes | str | None, headers: Mapping[str, str] | None) -> str:
    """The error text of an InfluxDB answer: the JSON body's "message" (2.x) or "error" (1.x),
    else the X-Influxdb-Error header (1.x), else the body itself."""
    text = (body.decode("utf-8", "replace") if isinstance(body, bytes) else body or "").strip()
    with contextlib.suppress(ValueError):
        doc = json.loads(text)
        if isinstance(doc, dict):
            for key in ("message", "error"):
                if isinstance(doc.get(key), str):
                    return doc[key]
    return (headers or {}).get("X-Influxdb-Error") or text


def _retry_after_s(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError):
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    return None


def _dropped(message: str, sent: int) -> int:
    """Lines InfluxDB rejected: its "dropped=N" when it says, else all that were sent."""
    match = re.search(r"dropped=(\d+)", message)
    return int(match.group(1)) if match and int(match.group(1)) > 0 else sent


class _Writer(Protocol):
    """Sends one batch of line protocol to InfluxDB; never raises for InfluxDB trouble."""

    async def open(self) -> None: ...
    async def post(self, body: bytes) -> _Reply: ...
    async def close(self) -> None: ...


class _V1Writer:
    """POST /write of InfluxDB 1.x (and the v1 compatibility API of 2.x/3.x)."""

    def __init__(self, cfg: InfluxDBConfig, base: yarl.URL, url_credentials: tuple[str, str] | None) -> None:
        self._cfg = cfg
        self._base = base
        # Basic auth (RFC 7617) rather than u=/p= query parameters: URLs end up in error messages.
        if cfg.username is not None:
            credentials = (cfg.username, cfg.password.get_secret_value() if cfg.password is not None else "")
        else:
            credentials = url_credentials
        self._headers = {"Authorization": _basic_auth(*credentials)} if credentials else {}
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._cfg.timeout_s), headers=self._headers
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(self, body: bytes) -> _Reply:
        reply = await self._post_write(body)
        if reply.status == 404 and "database not found" in reply.message:
            created = await self._create_database()
            if created.status != 200:
                return _Reply(404, f"{reply.message}; CREATE DATABASE failed: {created.describe()}")
            log.info("InfluxDB database %r did not exist: created it", self._cfg.database)
            reply = await self._post_write(body)
        return reply

    async def _post_write(self, body: bytes) -> _Reply:
        params = {"db": self._cfg.database, "precision": "ns"}
        if self._cfg.retention_policy:
            params["rp"] = self._cfg.retention_policy
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self._cfg.gzip:
            body = gzip.compress(body, compresslevel=_GZIP_LEVEL)
            headers["Content-Encoding"] = "gzip"
        return await self._post("write", params, body, headers)

    async def _create_database(self) -> _Reply:
        name = '"' + self._cfg.database.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return await self._post("query", {"q": f"CREATE DATABASE {name}"}, None, {})

    async def _post(self, path: str, params: dict[str, str], body: bytes | None, headers: dict[str, str]) -> _Reply:
        assert self._session is not None, "the sink is not open"
        try:
            async with self._session.post(self._base / path, params=params, data=body, headers=headers) as resp:
                text = await resp.read()
                retry_after = _retry_after_s(resp.headers.get("Retry-After"))
                return _Reply(resp.status, _error_message(text, resp.headers), retry_after)
        except _TRANSPORT_ERRORS as exc:
            return _transport_failure(exc, self._cfg.timeout_s)


class _V2Writer:
    """The influxdb-client async write API (POST /api/v2/write)."""

    def __init__(self, cfg: InfluxDBConfig, base: yarl.URL) -> None:
        self._cfg = cfg
        # Without user:password@: aiohttp refuses URL credentials next to the token header.
        self._base = base
        self._client: "InfluxDBClientAsync | None" = None
        self._api: "WriteApiAsync | None" = None

    async def open(self) -> None:
        # Imported here: the client package costs ~14 MB of RSS that a v1 set-up never needs.
        from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
        from influxdb_client.rest import ApiException

        self._api_exception = ApiException

        # The async client must be created inside the running event loop.
        self._client = InfluxDBClientAsync(
            url=str(self._base),
            token=self._cfg.token.get_secret_value() if self._cfg.token is not None else None,
            org=self._cfg.org,
            timeout=int(self._cfg.timeout_s * 1000),
            enable_gzip=self._cfg.gzip,
        )
        self._api = self._client.write_api()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def post(self, body: bytes) -> _Reply:
        assert self._api is not None, "the sink is not open"
        assert self._cfg.bucket is not None and self._cfg.org is not None  # checked by InfluxDBConfig
        try:
            await self._api.write(self._cfg.bucket, self._cfg.org, record=body, write_precision="ns")
        except self._api_exception as exc:
            return _Reply(exc.status or 0, _error_message(exc.body, exc.headers), _retry_after_s(exc.retry_after))
        except _TRANSPORT_ERRORS as exc:
            return _transport_failure(exc, self._cfg.timeout_s)
        return _Reply(204)


def _split_url_credentials(url: str) -> tuple[yarl.URL, tuple[str, str] | None]:
    """The URL without user:password@ (safe to log), and those credentials if it had them."""
    parsed = yarl.URL(url)
    credentials = (parsed.user, parsed.password or "") if parsed.user else None
    return parsed.with_user(None), credentials


def _basic_auth(user: str, password: str) -> str:
    """An HTTP Basic Authorization header value (RFC 7617)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


# -- the sink -----------------------------------------------------------------------------------------


class InfluxSink:
    """Writes points to InfluxDB in the background; see the module docstring for the behaviour.

    Use as `async with InfluxSink(cfg, spool_dir) as sink:`; call `write()` from the event
    loop's thread. `spool_dir`: the spool's directory (None: memory only). Entering never waits
    for InfluxDB (the daemon must start while InfluxDB is down) and starts sending what the
    spool holds from before; it raises spool.SpoolError when the directory cannot be used.
    Leaving flushes what is pending for at most `cfg.timeout_s` seconds, logs what could not be
    written (kept in the spool for the next start, if any), and stops the background tasks.
    Call `flush()` first for a longer bound.
    """

    def __init__(self, cfg: InfluxDBConfig, spool_dir: Path | None = None) -> None:
        self._cfg = cfg
        base, url_credentials = _split_url_credentials(cfg.url)
        self._url = str(base)
        self._target = f"database {cfg.database}" if cfg.api == "v1" else f"org {cfg.org}, bucket {cfg.bucket}"
        self._writer: _Writer = _V1Writer(cfg, base, url_credentials) if cfg.api == "v1" else _V2Writer(cfg, base)
        self._queue: deque[bytes] = deque()
        self._spool = Spool(spool_dir, cfg.spool_max_bytes) if spool_dir is not None else None
        # With a spool: the spool position after each line of _queue (for acknowledging).
        self._ends: deque[int] = deque()
        self._corrupt_counted = 0
        # The first `_inflight` lines of the queue travel in the current request; lines evicted
        # from them meanwhile are `_inflight_evicted`: their fate is known when the reply comes.
        self._inflight = 0
        self._inflight_evicted = 0
        self._batch_limit = cfg.batch_size  # lowered after a 413
        self._written = self._dropped = self._errors = 0
        self._reachable = True
        # While writes fail: since when, the kind of failure last logged, and the written
        # counter at the start; cleared when the backlog is written.
        self._trouble_since: float | None = None
        self._trouble_kind: _Verdict | None = None
        self._trouble_reason = ""
        self._written_before_trouble = 0
        self._evicted = self._evicted_reported = 0  # lines lost to a full buffer; how many were logged
        self._overflow_logged = False
        self._reject_logged_at = -_REJECT_LOG_INTERVAL_S
        self._rejects_unlogged = 0
        self._wake = asyncio.Event()  # a full batch waits, or flush() asks
        self._backing_off = False
        self._drained = asyncio.Event()
        self._drained.set()
        self._tasks: list[asyncio.Task[None]] = []

    def __repr__(self) -> str:
        return f"<InfluxSink {self._cfg.api} {self._url} {self._target}: {self.stats}>"

    @property
    def stats(self) -> SinkStats:
        return SinkStats(self._pending(), self._written, self._dropped, self._errors, self._reachable)

    @property
    def spool_bytes(self) -> int | None:
        """Bytes the spool holds on disk; None without a spool."""
        return self._spool.size_bytes if self._spool is not None else None

    def _pending(self) -> int:
        """Lines not yet settled: in memory, and on disk only."""
        return len(self._queue) + (self._spool.unloaded_lines if self._spool is not None else 0)

    # -- producer side ---------------------------------------------------------------------------

    def write(self, measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue], ts_ns: int) -> None:
        """Queue one point (ts_ns: ns since the Unix epoch, UTC). Never blocks, never raises on
        InfluxDB trouble; raises schema.SchemaError for a point the schema does not declare."""
        line = encode_line(measurement, tags, fields, ts_ns)
        if not line:
            return  # every field was NaN/inf: nothing to store
        if self._spool is not None:
            self._spool_line(self._spool, line)
        else:
            if len(self._queue) >= self._cfg.max_buffer_lines:
                self._evict_oldest()
            self._queue.append(line)
        self._queued()

    def write_encoded(self, lines: Sequence[bytes]) -> None:
        """Queue points already encoded by `encode_line` (so checked against the schema), in
        order, as `write` would one by one but with one spool write for all of them (a cycle's
        `device_state` points). Empty lines (encode_line's "nothing to store") are not allowed."""
        if not lines:
            return
        spool = self._spool
        if spool is not None:
            keep = spool.loaded == spool.tail and len(self._queue) + len(lines) <= self._front()
            ends = spool.append_many(lines, keep_loaded=keep)
            if keep:
                for line, end in zip(lines, ends):
                    if end is not None:
                        self._queue.append(line)
                        self._ends.append(end)
            self._forget_dropped(spool)
        else:
            for line in lines:
                if len(self._queue) >= self._cfg.max_buffer_lines:
                    self._evict_oldest()
                self._queue.append(line)
        self._queued()

    def _queued(self) -> None:
        self._drained.clear()
        if self._pending() - self._inflight >= self._batch_limit and not self._backing_off:
            self._wake.set()

    def _spool_line(self, spool: Spool, line: bytes) -> None:
        """Append to the spool; keep the line in memory too while nothing older waits on disk
        only and memory has room. Then forget what a full spool dropped."""
        keep = spool.loaded == spool.tail and len(self._queue) < self._front()
        end = spool.append(line, keep_loaded=keep)
        if end is not None and keep:
            self._queue.append(line)
            self._ends.append(end)
        self._forget_dropped(spool)

    def _forget_dropped(self, spool: Spool) -> None:
        """The spool deleted its oldest segments to make room: the lines of them held in memory
        go too (those in flight are settled by the reply), and all are counted as lost."""
        floor, lost = spool.floor, spool.take_dropped()
        while self._ends and self._ends[0] <= floor:
            self._queue.popleft()
            self._ends.popleft()
            if self._inflight:
                self._inflight -= 1
                self._inflight_evicted += 1
            else:
                lost += 1
        if lost:
            self._lose_evicted(lost)
            if not self._overflow_logged:
                self._overflow_logged = True
                log.warning(
                    "InfluxDB sink spool full (%d bytes in %s): dropping the oldest lines until InfluxDB takes "
                    "writes again", spool.max_bytes, spool.directory,
                )

    def _refill(self) -> bool:
        """Load lines waiting on disk only into memory, in order, up to two batches ahead (reading
        runs on the event loop: a few ms at a time, never the whole backlog). True when lines are
        in memory afterwards."""
        spool = self._spool
        room = self._front() - len(self._queue)
        if spool is not None and spool.unloaded_lines and room > 0:
            for line, end in spool.load(room):
                self._queue.append(line)
                self._ends.append(end)
            damaged, self._corrupt_counted = spool.corrupt_records - self._corrupt_counted, spool.corrupt_records
            self._dropped += damaged
        return bool(self._queue)

    def _front(self) -> int:
        """Lines held in memory at most with a spool: the next two batches (`max_buffer_lines` if
        lower). The rest waits on disk and is read back as batches go out (~1.5 µs a line): a
        cycle's device_state lines at 100,000 devices held in memory were up to ~60 MB."""
        return min(self._cfg.max_buffer_lines, 2 * self._batch_limit)

    def _evict_oldest(self) -> None:
        self._queue.popleft()
        if self._inflight:
            self._inflight -= 1
            self._inflight_evicted += 1
        else:
            self._lose_evicted(1)
        if not self._overflow_logged:
            self._overflow_logged = True
            log.warning(
                "InfluxDB sink buffer full (%d lines): dropping the oldest lines until InfluxDB takes writes again",
                self._cfg.max_buffer_lines,
            )

    async def flush(self, timeout_s: float) -> bool:
        """Send what is buffered now, without waiting for the flush interval or a retry delay.
        True when the buffer is empty at the end, False after `timeout_s` seconds otherwise."""
        if not self._pending():
            return True
        self._wake.set()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._drained.wait(), timeout_s)
        return not self._pending()

    # -- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._spool is not None:
            self._spool.open()
            if self._spool.unloaded_lines:
                self._drained.clear()
                self._wake.set()
        try:
            await self._writer.open()
        except BaseException:
            if self._spool is not None:
                self._spool.close()
            raise
        spooled = f", spool {self._spool.directory}" if self._spool is not None else ""
        log.info("writing metrics to InfluxDB at %s (api %s, %s%s)", self._url, self._cfg.api, self._target, spooled)
        self._tasks = [
            asyncio.create_task(self._send_loop(), name="influx-sink"),
            asyncio.create_task(self._self_monitor_loop(), name="influx-sink-stats"),
        ]
        if self._spool is not None:
            self._tasks.append(asyncio.create_task(self._sync_loop(self._spool), name="influx-sink-sync"))
        for task in self._tasks:
            task.add_done_callback(_report_crash)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._write_self_monitoring()
        if not await self.flush(self._cfg.timeout_s):
            kept = f"; kept in the spool {self._spool.directory} for the next start" if self._spool is not None else ""
            log.warning(
                "InfluxDB sink stopping with %d lines not written (InfluxDB at %s: %s)%s",
                self._pending(), self._url, self._trouble_reason if not self._reachable else "too slow", kept,
            )
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._writer.close()
        if self._spool is not None:
            self._spool.close()

    async def _sync_loop(self, spool: Spool) -> None:
        """fdatasync the spool once per flush interval: the power-loss window (see spool.py)."""
        while True:
            await asyncio.sleep(self._cfg.flush_interval_s)
            spool.sync()

    async def _self_monitor_loop(self) -> None:
        while True:
            await asyncio.sleep(SELF_MONITOR_INTERVAL_S)
            self._write_self_monitoring()

    def _write_self_monitoring(self) -> None:
        s = self.stats
        fields = {
            "buffered_lines": s.buffered_lines,
            "written_lines": s.written_lines,
            "dropped_lines": s.dropped_lines,
            "write_errors": s.write_errors,
        }
        self.write("fleetmon_sink", {}, fields, time.time_ns())

    # -- consumer side: the background task ------------------------------------------------------

    async def _send_loop(self) -> None:
        while True:
            await self._wait_for_work()
            await self._send_all()

    async def _wait_for_work(self) -> None:
        """Return when a full batch waits, `flush_interval_s` has passed, or flush() asks."""
        self._wake.clear()
        if self._pending() >= self._batch_limit:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._cfg.flush_interval_s)

    async def _send_all(self) -> None:
        """Send batches from the head of the buffer until it is empty, waiting between failed
        attempts (exponential backoff; flush() cuts a wait short)."""
        failures = 0
        while self._refill():
            delay = await self._send_batch(failures)
            if delay is None:
                failures = 0
                continue
            failures += 1
            await self._pause(delay)
        self._drained.set()
        self._caught_up()

    async def _pause(self, delay_s: float) -> None:
        self._backing_off = True  # write() must not end the pause: only flush() may
        self._wake.clear()
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay_s)
        finally:
            self._backing_off = False

    async def _send_batch(self, failures: int) -> float | None:
        """Send the oldest lines once. None when they are settled (written, rejected) or the
        batch size changed; else the seconds to wait before trying again."""
        lines = list(itertools.islice(self._queue, self._batch_limit))
        self._inflight, self._inflight_evicted = len(lines), 0
        try:
            reply = await self._writer.post(b"\n".join(lines))
        except BaseException:
            self._keep_inflight()  # cancelled at shutdown: the lines stay buffered
            raise
        verdict = _verdict(reply.status)
        if verdict is _Verdict.WRITTEN:
            self._settle(len(lines), dropped=0)
            self._reachable = True
            return None
        self._errors += 1
        if verdict is _Verdict.REJECTED:
            dropped = _dropped(reply.message, len(lines))
            self._settle(len(lines), dropped)
            self._log_rejected(dropped, reply)
        elif verdict is _Verdict.TOO_LARGE:
            self._shrink_batches(len(lines), reply)
        else:
            self._keep_inflight()
            delay = reply.retry_after_s if reply.retry_after_s is not None else self._backoff_s(failures)
            self._note_trouble(verdict, reply, delay)
            return delay
        self._reachable = True
        return None

    def _settle(self, sent: int, dropped: int) -> None:
        """InfluxDB answered for the in-flight lines: remove them, count them, and tell the spool
        never to send them again."""
        for _ in range(self._inflight):
            self._queue.popleft()
        if self._spool is not None and self._inflight:
            for _ in range(self._inflight - 1):
                self._ends.popleft()
            self._spool.ack(self._ends.popleft())
        self._written += sent - dropped
        self._dropped += dropped
        self._inflight = self._inflight_evicted = 0

    def _keep_inflight(self) -> None:
        """The in-flight lines were not written: they stay at the head of the buffer, except
        those evicted meanwhile, which are now lost."""
        self._lose_evicted(self._inflight_evicted)
        self._inflight = self._inflight_evicted = 0

    def _lose_evicted(self, lines: int) -> None:
        self._dropped += lines
        self._evicted += lines

    def _shrink_batches(self, sent: int, reply: _Reply) -> None:
        if sent > 1:
            self._batch_limit = sent // 2
            self._keep_inflight()
            log.warning(
                "InfluxDB at %s refused a batch of %d lines as too large (%s): "
                "sending at most %d lines per request from now on",
                self._url, sent, reply.describe(), self._batch_limit,
            )
        else:
            self._settle(1, dropped=1)
            log.warning(
                "InfluxDB at %s refused a single line as too large (%s): dropped it", self._url, reply.describe()
            )

    def _backoff_s(self, failures: int) -> float:
        """retry.initial_s × 2^failures, ±20 % jitter (so that many daemons do not retry in step),
        at most retry.max_s."""
        retry = self._cfg.retry
        base = retry.initial_s * 2 ** min(failures, 30)
        return min(retry.max_s, base * random.uniform(0.8, 1.2))

    # -- state-change logging --------------------------------------------------------------------

    def _note_trouble(self, verdict: _Verdict, reply: _Reply, delay_s: float) -> None:
        """Writes failed with `verdict`: log it if it is a new kind of trouble."""
        self._reachable = False
        self._trouble_reason = reply.describe()
        if self._trouble_since is None:
            self._trouble_since = time.monotonic()
            self._written_before_trouble = self._written
        if verdict is self._trouble_kind:
            return
        self._trouble_kind = verdict
        retry = f"buffering, retry in {delay_s:.2g} s" if delay_s < 10 else f"buffering, retry in {delay_s:.0f} s"
        if verdict is _Verdict.CREDENTIALS:
            if self._cfg.api == "v2":
                what = "token (token_env / token_file)"
            else:
                what = "username and password (password_env / password_file)"
            log.error(
                "InfluxDB at %s refuses fleetmon's credentials (%s): check influxdb %s; %s",
                self._url, reply.describe(), what, retry,
            )
        elif verdict is _Verdict.REFUSED:
            log.error("InfluxDB at %s refuses the writes (%s); %s", self._url, reply.describe(), retry)
        else:
            log.warning("InfluxDB unreachable at %s: %s; %s", self._url, reply.describe(), retry)

    def _caught_up(self) -> None:
        """The buffer is empty: close the episode of failing writes or of a full buffer, if one
        was logged."""
        lost, self._evicted_reported = self._evicted - self._evicted_reported, self._evicted
        lost_note = f"; {lost} lines were dropped because the buffer was full" if lost else ""
        if self._trouble_since is not None:
            log.info(
                "InfluxDB reachable again; flushed %d lines buffered over %.1f s%s",
                self._written - self._written_before_trouble, time.monotonic() - self._trouble_since, lost_note,
            )
        elif lost:  # InfluxDB took writes all along, but slower than points came
            log.info("InfluxDB sink caught up%s", lost_note)
        self._trouble_since = self._trouble_kind = None
        self._overflow_logged = False

    def _log_rejected(self, dropped: int, reply: _Reply) -> None:
        now = time.monotonic()
        if now - self._reject_logged_at < _REJECT_LOG_INTERVAL_S:
            self._rejects_unlogged += dropped
            return
        earlier = ""
        if self._rejects_unlogged:
            earlier = f" ({self._rejects_unlogged} more lines rejected since the last message)"
        log.warning("InfluxDB rejected %d lines, dropped for good: %s%s", dropped, reply.describe(), earlier)
        self._reject_logged_at = now
        self._rejects_unlogged = 0


def _report_crash(task: asyncio.Task[None]) -> None:
    """A background task of the sink ended by an exception: a bug; say so loudly."""
    if not task.cancelled() and task.exception() is not None:
        log.error(
            "InfluxDB sink task %s failed; metrics are no longer written", task.get_name(), exc_info=task.exception()
        )
