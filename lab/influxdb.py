"""A real InfluxDB for tests, `make demo` and benchmarks, and a test-only InfluxDB 2.x write endpoint.

`InfluxServer` runs Debian's `influxd` (1.6.7) in a temporary directory on free loopback ports and
talks to it over its 1.x HTTP API (`/ping`, `/query`, `/write`). It can be stopped and started
again on the same ports with the same data, which is how tests make InfluxDB "go away".

`V2Forwarder` exists because no InfluxDB 2.x server can be installed here (see ../shared/LAB.md)
and 1.6.7 has no `/api/v2/write`: it accepts InfluxDB 2.x writes, checks the token, and relays the
line protocol to the real influxd's `/write`, so that data written through the v2 API lands in a
real database and can be queried back. It records every request it saw (for assertions on gzip
and batch sizes) and can fail on purpose. It relays 1.x `POST /write` too, so that tests can watch
the v1 path's requests the same way.

API references:
- InfluxDB 1.x HTTP API (/ping, /query, /write): https://docs.influxdata.com/influxdb/v1/tools/api/
- InfluxDB 2.x POST /api/v2/write: https://docs.influxdata.com/influxdb/v2/api/#operation/PostWrite
  and its status codes: https://docs.influxdata.com/influxdb/v2/write-data/troubleshoot/
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import aiohttp
from aiohttp import web

from lab.process import ServerProcess, free_ports

INFLUXD = "influxd"
# Loopback only: never through an http_proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class InfluxError(RuntimeError):
    """influxd did not start, or InfluxDB answered a request of ours with an error."""


_CONFIG = """\
reporting-enabled = false
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{dir}/meta"
  logging-enabled = false

[data]
  dir = "{dir}/data"
  wal-dir = "{dir}/wal"
  query-log-enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  log-enabled = false

[http]
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = {auth}
  log-enabled = false
  max-body-size = {max_body_size}

[logging]
  level = "warn"
  suppress-logo = true
"""


class InfluxServer(ServerProcess):
    """One influxd 1.6.7 process with its own temporary data directory.

    Ports are picked at construction, so `url` is known before the server runs (a test can point
    a client at an InfluxDB that is not up yet). `start()` waits until `GET /ping` answers 204;
    `stop()` ends the process and keeps the data; `start()` again serves the same data on the same
    ports. As a context manager it starts, and at exit stops and deletes the directory. influxd's
    own log goes to `log_path`, never to the terminal. influxd runs in its own session, so a
    Ctrl-C in the terminal reaches only the Python process, which stops influxd after its own
    clean-up (a sink flushing at exit still finds InfluxDB up); servers not closed by then are
    closed when the interpreter exits.

    - admin: (user, password) to run with `auth-enabled = true`; that user is created with all
      privileges at first start, and this object's own requests authenticate as it.
    - max_body_size: influxd's `[http] max-body-size` in bytes (413 beyond it); 25 MB by default.
    """

    def __init__(
        self,
        *,
        admin: tuple[str, str] | None = None,
        max_body_size: int = 25_000_000,
        start_timeout_s: float = 20.0,
    ) -> None:
        self.admin = admin
        self.dir = Path(tempfile.mkdtemp(prefix="fleetmon-influxd-"))
        self.http_port, self.rpc_port = free_ports(2)
        self.log_path = self.dir / "influxd.log"
        self._start_timeout_s = start_timeout_s
        super().__init__()
        self._admin_created = False
        config = _CONFIG.format(
            dir=self.dir,
            rpc_port=self.rpc_port,
            http_port=self.http_port,
            auth="true" if admin else "false",
            max_body_size=max_body_size,
        )
        self._config_path = self.dir / "influxdb.conf"
        self._config_path.write_text(config, encoding="utf-8")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        """Start influxd (no-op when running) and wait until it answers /ping.
        Raises InfluxError with the tail of influxd's log when it exits or does not answer."""
        if self.running:
            return self
        log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                [INFLUXD, "run", "-config", str(self._config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        finally:
            log.close()  # the child keeps its own descriptor
        self._wait_ready()
        if self.admin and not self._admin_created:
            user, password = self.admin
            # Allowed without credentials while no user exists (InfluxDB 1.x authentication docs).
            self.query(f"CREATE USER {_ident(user)} WITH PASSWORD {_string(password)} WITH ALL PRIVILEGES")
            self._admin_created = True
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._start_timeout_s
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise InfluxError(f"influxd exited with status {self._proc.returncode}:\n{self._log_tail()}")
            try:
                with _OPENER.open(self.url + "/ping", timeout=1.0) as resp:
                    if resp.status == 204:
                        return
            except OSError:
                pass  # not listening yet
            time.sleep(0.02)
        self.stop()
        raise InfluxError(f"influxd did not answer /ping within {self._start_timeout_s} s:\n{self._log_tail()}")

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- HTTP API --------------------------------------------------------------------------------

    def _request(self, path: str, params: dict[str, str], body: bytes | None = None) -> tuple[int, bytes]:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        req = urllib.request.Request(url, data=body if body is not None else b"", method="POST")
        if self.admin:
            token = base64.b64encode(f"{self.admin[0]}:{self.admin[1]}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        try:
            with _OPENER.open(req, timeout=30) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def query(self, influxql: str, db: str | None = None) -> list[dict[str, Any]]:
        """Run InfluxQL (POST /query, epoch=ns) and return the parsed `results` list, one entry per
        statement: {"statement_id": int, "series": [{"name", "tags"?, "columns", "values"}]}.
        Timestamps are integer nanoseconds. Raises InfluxError if the request or a statement fails."""
        params = {"q": influxql, "epoch": "ns"}
        if db is not None:
            params["db"] = db
        status, body = self._request("/query", params)
        try:
            doc = json.loads(body)
        except ValueError:
            raise InfluxError(f"HTTP {status}: {body[:200]!r}") from None
        if status != 200 or "error" in doc:
            raise InfluxError(f"HTTP {status}: {doc.get('error', body[:200])}")
        for result in doc["results"]:
            if "error" in result:
                raise InfluxError(result["error"])
        return doc["results"]

    def rows(self, influxql: str, db: str) -> list[dict[str, Any]]:
        """The rows of the first statement's series as dicts (column → value, plus the series'
        GROUP BY tags and "_measurement"), in the order InfluxDB returns them."""
        out = []
        for series in self.query(influxql, db)[0].get("series", []):
            for values in series["values"]:
                row = {"_measurement": series["name"], **series.get("tags", {})}
                row.update(zip(series["columns"], values))
                out.append(row)
        return out

    def create_database(self, name: str) -> None:
        self.query(f"CREATE DATABASE {_ident(name)}")

    def drop_database(self, name: str) -> None:
        self.query(f"DROP DATABASE {_ident(name)}")

    def write(self, lines: str, db: str) -> None:
        """Write line protocol (nanosecond timestamps) straight to /write; raises InfluxError unless 204."""
        status, body = self._request("/write", {"db": db, "precision": "ns"}, lines.encode())
        if status != 204:
            raise InfluxError(f"HTTP {status}: {body[:300]!r}")


def _ident(name: str) -> str:
    """An InfluxQL double-quoted identifier."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _string(value: str) -> str:
    """An InfluxQL single-quoted string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# -- the test-only InfluxDB 2.x write endpoint ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RelayedRequest:
    """One write request the forwarder received.

    - api: "v2" (/api/v2/write) or "v1" (/write).
    - database: the bucket (v2) or db (v1) it named.
    - content_encoding: the request's Content-Encoding header, None when absent.
    - wire_bytes: body size as received (compressed when gzip); lines: line-protocol lines in it.
    - status: what the forwarder answered.
    """

    api: str
    database: str
    content_encoding: str | None
    wire_bytes: int
    lines: int
    status: int


# InfluxDB 2.x error codes by HTTP status (the "code" member of its JSON error body).
_V2_CODES = {
    400: "invalid",
    401: "unauthorized",
    404: "not found",
    413: "request too large",
    422: "unprocessable entity",
    429: "too many requests",
    500: "internal error",
    503: "unavailable",
}
# InfluxDB 2.x precisions → 1.x /write precisions.
_PRECISIONS = {"ns": "ns", "us": "u", "ms": "ms", "s": "s"}


class V2Forwarder:
    """An aiohttp server on 127.0.0.1 that answers `POST /api/v2/write?org=&bucket=&precision=`
    like InfluxDB 2.x and relays the data to an InfluxDB 1.x `POST /write?db=<bucket>`.

    InfluxDB 2.x behaviour reproduced: `Authorization: Token <token>` required (401
    "unauthorized access" otherwise); `Content-Encoding: gzip` accepted; 204 on success; errors
    as JSON `{"code": …, "message": …}`; a partial write (1.x: 400 "partial write: …") becomes
    422 "unprocessable entity" as in InfluxDB OSS 2.x; 1.x's 404 "database not found" becomes
    404 bucket not found. `POST /write` (1.x) is relayed unchanged for observation.

    Test controls: `token` may be changed at any time (a test "fixes" credentials on the server
    side); `max_body_bytes` makes larger (decompressed) bodies fail with 413; `fail_next()`
    makes the next requests fail with a given status. `requests` lists what was received.

    Use as `async with V2Forwarder(upstream_url, token) as fwd:`; `fwd.url` is its base URL.
    """

    def __init__(self, upstream: str, token: str, *, max_body_bytes: int | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.token = token
        self.max_body_bytes = max_body_bytes
        self.requests: list[RelayedRequest] = []
        self._failures: list[tuple[int, int | None]] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    def fail_next(self, status: int, *, times: int = 1, retry_after_s: int | None = None) -> None:
        """Answer the next `times` v2 writes with `status` (and `Retry-After` when given), without
        relaying them."""
        self._failures += [(status, retry_after_s)] * times

    async def start(self) -> Self:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        app = web.Application()
        app.router.add_post("/api/v2/write", self._v2_write)
        app.router.add_post("/write", self._v1_write)
        # auto_decompress=False: see the body as sent, to record its encoding and size.
        self._runner = web.AppRunner(app, access_log=None, auto_decompress=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- handlers --------------------------------------------------------------------------------

    async def _v2_write(self, request: web.Request) -> web.Response:
        raw = await request.read()
        bucket = request.query.get("bucket", "")
        response, lines = await self._v2_answer(request, raw, bucket)
        self._record("v2", bucket, request, raw, lines, response.status)
        return response

    async def _v2_answer(self, request: web.Request, raw: bytes, bucket: str) -> tuple[web.Response, int]:
        """The response to one v2 write and the number of lines it carried (0 if undecodable)."""
        if request.headers.get("Authorization") != f"Token {self.token}":
            return _v2_error(401, "unauthorized access"), 0
        if self._failures:
            status, retry_after = self._failures.pop(0)
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
            return _v2_error(status, "failure injected by the test", headers), 0
        if not request.query.get("org") or not bucket:
            return _v2_error(400, "org and bucket are required"), 0
        precision = _PRECISIONS.get(request.query.get("precision", "ns"))
        if precision is None:
            return _v2_error(400, "invalid precision"), 0
        try:
            body = _decode(raw, request.headers.get("Content-Encoding"))
        except ValueError as exc:
            return _v2_error(400, str(exc)), 0
        lines = _count_lines(body)
        if self.max_body_bytes is not None and len(body) > self.max_body_bytes:
            return _v2_error(413, f"request body is larger than {self.max_body_bytes} bytes"), lines
        status, message = await self._relay({"db": bucket, "precision": precision}, body)
        if status == 204:
            return web.Response(status=204), lines
        if status == 400 and "partial write" in message:
            return _v2_error(422, f"failure writing points to database: {message}"), lines
        if status == 404:
            return _v2_error(404, f'bucket "{bucket}" not found'), lines
        return _v2_error(status, message), lines

    async def _v1_write(self, request: web.Request) -> web.Response:
        raw = await request.read()
        db = request.query.get("db", "")
        try:
            body = _decode(raw, request.headers.get("Content-Encoding"))
        except ValueError as exc:
            response = web.json_response({"error": str(exc)}, status=400)
            self._record("v1", db, request, raw, 0, 400)
            return response
        status, message = await self._relay(dict(request.query), body)
        response = web.Response(status=204) if status == 204 else web.json_response({"error": message}, status=status)
        self._record("v1", db, request, raw, _count_lines(body), status)
        return response

    async def _relay(self, params: dict[str, str], body: bytes) -> tuple[int, str]:
        """POST `body` to the upstream's /write; (status, error message). An unreachable upstream
        is a 503, as InfluxDB 2.x answers when its storage is unavailable."""
        assert self._session is not None
        try:
            async with self._session.post(f"{self.upstream}/write", params=params, data=body) as resp:
                text = await resp.text()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return 503, f"upstream InfluxDB unavailable: {exc}"
        if resp.status == 204:
            return 204, ""
        try:
            return resp.status, str(json.loads(text).get("error", text))
        except (ValueError, AttributeError):
            return resp.status, text

    def _record(self, api: str, database: str, request: web.Request, raw: bytes, lines: int, status: int) -> None:
        encoding = request.headers.get("Content-Encoding")
        self.requests.append(RelayedRequest(api, database, encoding, len(raw), lines, status))


def _v2_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    code = _V2_CODES.get(status, "internal error" if status >= 500 else "invalid")
    return web.json_response({"code": code, "message": message}, status=status, headers=headers)


def _decode(raw: bytes, content_encoding: str | None) -> bytes:
    """The request body without its Content-Encoding (identity or gzip); ValueError otherwise."""
    if content_encoding in (None, "", "identity"):
        return raw
    if content_encoding == "gzip":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"gzip body cannot be decompressed: {exc}") from None
    raise ValueError(f"unsupported Content-Encoding {content_encoding!r}")


def _count_lines(body: bytes) -> int:
    return sum(1 for line in body.splitlines() if line.strip() and not line.startswith(b"#"))
