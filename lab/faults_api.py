"""Fault injection against the real daemon's HTTP API (issue 13): slow and idle connections with
a lowered RLIMIT_NOFILE, floods of refused requests, tokens in URLs; shared by
tests/test_fault_api.py and bench/faults/api.py.

`ApiFaultDaemon` runs `fleetmon run` as its own process (RLIMIT_NOFILE lowered in the child
only, `log.format: json` to a file) watching one camera of the lab's GStreamer RTSP server
with a digest account, its RTSP check every second. The attacks are plain sockets from other
loopback addresses (127.0.0.2 …) than the watcher's (127.0.0.1), as a phone and an attacker
would be different clients.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import aiohttp

from lab.process import free_ports, stop_process
from lab.rtsp import RtspServer

PASSWORD = "Cam-Pw.4711"
STATUS_TOKEN = "status-tok-7f3a9c"
WRITE_TOKEN = "write-tok-b81e55"
SECRETS = (PASSWORD, STATUS_TOKEN, WRITE_TOKEN)
"""Strings no log line may hold."""
ATTACKER = "127.0.0.2"
IDLER = "127.0.0.4"
FLOODER = "127.0.0.3"
START_TIMEOUT_S = 30.0

CONFIG = """\
inventory:
  allow_loopback: true        # the camera is this host
  devices:
    - {{id: CAM1, name: 北门摄像机, kind: camera, address: 127.0.0.1, site: 北门, region: 城区}}
probes:
  icmp: {{enabled: false}}
  rtsp: {{interval_s: 1, timeout_s: 2, port: {rtsp}, username: admin, password_env: FM_FAULT_API_CAM_PW}}
scheduler: {{spread: 0}}
state: {{database: state.db, down_after: 1}}
influxdb: {{enabled: false}}
api:
  listen: 127.0.0.1
  port: {api}
  token_env: FM_FAULT_API_WRITE
  status_token_env: FM_FAULT_API_STATUS
  header_timeout_s: {header_timeout_s}
  idle_timeout_s: {idle_timeout_s}
log: {{level: info, format: json}}
rules:
  - {{name: camera-video-down, type: video_down, basis: video, match: {{kind: [camera]}}}}
"""


class ApiFaultDaemon:
    """The daemon and its RTSP camera, while inside `with`. `nofile`: the soft RLIMIT_NOFILE of
    the daemon. Raises RuntimeError when it does not answer /healthz "ok" in time."""

    def __init__(self, folder: Path, *, nofile: int = 128, header_timeout_s: float = 2.0,
                 idle_timeout_s: float = 2.0) -> None:
        self.folder = folder
        self.nofile = nofile
        self.header_timeout_s = header_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.port = free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / "daemon.log"
        self.camera = RtspServer(auth="digest", password=PASSWORD)
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> Self:
        self.camera.start()
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _start(self) -> None:
        config = self.folder / "config.yaml"
        config.write_text(CONFIG.format(rtsp=self.camera.port, api=self.port, header_timeout_s=self.header_timeout_s,
                                        idle_timeout_s=self.idle_timeout_s), encoding="utf-8")
        env = {**os.environ, "FM_FAULT_API_CAM_PW": PASSWORD, "FM_FAULT_API_WRITE": WRITE_TOKEN,
               "FM_FAULT_API_STATUS": STATUS_TOKEN}
        soft = self.nofile

        def lower_nofile() -> None:  # in the child only
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "monitor.app.cli", "run", "--config", str(config)], cwd=self.folder, env=env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=lower_nofile, start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"the daemon exited ({self._proc.returncode}):\n{self.log_text()[-3000:]}")
            if asyncio.run(_health(self.url)) == "ok":
                return
            time.sleep(0.2)
        raise RuntimeError(f"the daemon did not answer /healthz ok in {START_TIMEOUT_S:g} s:\n{self.log_text()[-3000:]}")

    def stop(self) -> int | None:
        """SIGTERM, wait (the API flushes its counted lines); the exit code."""
        if self._proc is None:
            return None
        proc, self._proc = self._proc, None
        return stop_process(proc, 15.0)

    def close(self) -> None:
        self.stop()
        self.camera.close()

    def open_fds(self) -> int:
        assert self._proc is not None
        return len(os.listdir(f"/proc/{self._proc.pid}/fd"))

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_lines(self) -> list[str]:
        return [line for line in self.log_text().splitlines() if line.strip()]


async def _health(url: str) -> str | None:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            async with http.get(url + "/healthz") as resp:
                return (await resp.json()).get("status")
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None


REFUSED_WITHIN_S = 0.5
"""A connection the server closed this soon was refused (over the cap: 503, or a reset when the
client's bytes were still unread), not timed out."""


@dataclass
class Connection:
    """One attacking connection: `answered_503`, `lifetime_s` (until the server closed it;
    None: still open at the end)."""

    answered_503: bool = False
    lifetime_s: float | None = None

    @property
    def refused(self) -> bool:
        return self.answered_503 or self.lifetime_s is not None and self.lifetime_s < REFUSED_WITHIN_S


async def slowloris(port: int, *, byte_interval_s: float = 1.0, max_s: float = 30.0,
                    source: str = ATTACKER, request_first: bool = False, silent: bool = False) -> Connection:
    """One slow client: headers a byte every `byte_interval_s` (`silent`: nothing at all;
    `request_first`: a whole request first, then idle on the kept-alive connection), until
    the server closes the connection or `max_s` passed."""
    out = Connection()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    except OSError:
        out.lifetime_s = 0.0
        return out
    started = time.monotonic()
    try:
        if request_first:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: fleetmon\r\n\r\n")
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            except TimeoutError:
                return out  # no answer: still open, unserved
            if head.startswith(b"HTTP/1.1 503"):
                out.answered_503 = True
                return out
            length = int(next(h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")))
            await reader.readexactly(length)
            started = time.monotonic()  # idle from here
        else:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: fleetmon\r\n")
        trickle = b"X-Slow: " + b"a" * 10_000
        for i in range(int(max_s / byte_interval_s) + 1):
            if not silent and not request_first:
                writer.write(trickle[i % len(trickle):][:1])
            try:
                data = await asyncio.wait_for(reader.read(4096), byte_interval_s)
            except TimeoutError:
                continue
            if data.startswith(b"HTTP/1.1 503"):
                out.answered_503 = True
                return out
            if not data:
                break
        else:
            return out  # still open
        out.lifetime_s = time.monotonic() - started
    except (ConnectionError, asyncio.IncompleteReadError):
        out.lifetime_s = time.monotonic() - started
    finally:
        writer.close()
    return out


@dataclass
class Watch:
    """What a client of the API saw while the attack ran: /healthz answers, and every probe
    result of the camera it read from /api/v1/devices ({(probe, ts_ns): (ok, reason)})."""

    health_ok: int = 0
    health_failed: list[str] = field(default_factory=list)
    results: dict[tuple[str, int], tuple[bool, str | None]] = field(default_factory=dict)

    @property
    def failed_results(self) -> list[tuple[str, int, str | None]]:
        return [(probe, ts, reason) for (probe, ts), (ok, reason) in sorted(self.results.items()) if not ok]


async def watch(url: str, stop: asyncio.Event, interval_s: float = 0.5) -> Watch:
    """Poll /healthz and the camera's results (a new connection each time, as a phone would)
    until `stop` is set."""
    out = Watch()
    bearer = {"Authorization": f"Bearer {STATUS_TOKEN}"}
    timeout = aiohttp.ClientTimeout(total=5)
    while not stop.is_set():
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(force_close=True)) as http:
            try:
                async with http.get(url + "/healthz") as resp:
                    body = await resp.json()
                    if resp.status == 200 and body["status"] == "ok":
                        out.health_ok += 1
                    else:
                        out.health_failed.append(f"{resp.status} {body}")
                async with http.get(url + "/api/v1/devices", headers=bearer) as resp:
                    for device in (await resp.json())["devices"]:
                        for probe, r in device["results"].items():
                            out.results[(probe, r["ts_ns"])] = (r["ok"], r["reason"])
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
                out.health_failed.append(f"{type(exc).__name__}: {exc}")
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
        except TimeoutError:
            pass
    return out


@dataclass
class Attack:
    slow: list[Connection]
    idle: list[Connection]
    watched: Watch


async def attack(url: str, port: int, *, slow: int = 100, idle: int = 20, byte_interval_s: float = 1.0,
                 max_s: float = 20.0, hold_s: float = 0.0) -> Attack:
    """`slow` slowloris connections and `idle` keep-alive connections left idle after one
    request (half of them: sockets that never send a byte), all at once, while `watch` polls.
    With `hold_s`, each of them reconnects when closed (after 0.2 s) until `hold_s` passed:
    an attacker who keeps trying. Every connection made is in the answer."""
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch(url, stop))
    await asyncio.sleep(1.0)  # a healthy baseline first
    until = time.monotonic() + hold_s

    async def again(**kw: Any) -> list[Connection]:
        made = [await slowloris(port, byte_interval_s=byte_interval_s, max_s=max_s, **kw)]
        while time.monotonic() < until and made[-1].lifetime_s is not None:
            await asyncio.sleep(0.2)
            made.append(await slowloris(port, byte_interval_s=byte_interval_s, max_s=max_s, **kw))
        return made

    slow_tasks = [again() for _ in range(slow)]
    idle_tasks = [again(request_first=i % 2 == 0, silent=i % 2 == 1, source=IDLER) for i in range(idle)]
    results = await asyncio.gather(*slow_tasks, *idle_tasks)
    await asyncio.sleep(2.0)  # and after
    stop.set()
    return Attack([c for made in results[:slow] for c in made], [c for made in results[slow:] for c in made],
                  await watcher)


async def refuse_many(url: str, count: int = 3000, concurrency: int = 4, deadline_s: float = 60.0) -> dict[int, int]:
    """`count` writes with a wrong bearer token from FLOODER over `concurrency` keep-alive
    connections, for at most `deadline_s`; {status: how many} (0: no answer, -1: not sent in
    time)."""
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=concurrency, local_addr=(FLOODER, 0))
    stop_at = time.monotonic() + deadline_s
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=5)) as http:
        async def one(i: int) -> None:
            status = -1
            if time.monotonic() < stop_at:
                try:
                    async with http.post(f"{url}/api/v1/faults/F{i}/ack", json={"by": "攻击者"},
                                         headers={"Authorization": f"Bearer wrong-{i}"}) as resp:
                        await resp.read()
                        status = resp.status
                except (aiohttp.ClientError, TimeoutError):
                    status = 0
            statuses[status] = statuses.get(status, 0) + 1

        queue = iter(range(count))

        async def worker() -> None:
            for i in queue:
                await one(i)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


async def leak_attempts(url: str, port: int) -> list[int]:
    """Requests that put secrets where a log could pick them up: tokens in query strings, a
    malformed request carrying ?token= (aiohttp's parser refuses it), an Authorization header
    on a bad request. The statuses answered."""
    out = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        for method, path, headers in (
            ("GET", f"/status?token={STATUS_TOKEN}", {}),
            ("GET", f"/api/v1/faults?token={WRITE_TOKEN}", {}),
            ("GET", f"/api/v1/faults/F1/ack?access_token={WRITE_TOKEN}", {}),
            ("POST", f"/api/v1/faults/F1/ack?token={WRITE_TOKEN}", {"Authorization": f"Bearer {WRITE_TOKEN}"}),
        ):
            try:
                async with http.request(method, url + path, json={"by": "x"}, headers=headers) as resp:
                    out.append(resp.status)
            except (aiohttp.ClientError, TimeoutError):
                out.append(0)
    for raw in (
        f"GET /api/v1/status?token={STATUS_TOKEN} HTTP/1.1\r\nHost: x\r\nBad Header\x01: y\r\n\r\n".encode(),
        f"GET /x?password={PASSWORD} HTTP/9.9\r\nAuthorization: Bearer {WRITE_TOKEN}\r\n\r\n".encode(),
    ):
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
        except (OSError, TimeoutError):
            out.append(0)
            continue
        try:
            writer.write(raw)
            head = await asyncio.wait_for(reader.read(200), 5)
            out.append(int(head.split()[1]) if head.startswith(b"HTTP/") else 0)
        except (OSError, TimeoutError):
            out.append(0)
        finally:
            writer.close()
    return out


def parse_json_lines(lines: list[str]) -> list[dict[str, Any]]:
    """Each line as JSON; raises ValueError naming the first line that is not one object."""
    out = []
    for n, line in enumerate(lines, 1):
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            raise ValueError(f"log line {n} is not JSON: {line[:200]!r}") from None
        if not isinstance(doc, dict):
            raise ValueError(f"log line {n} is not a JSON object: {line[:200]!r}")
        out.append(doc)
    return out


def refusal_lines(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The log records about refused requests."""
    return [d for d in docs if d.get("logger") == "fleetmon.api"
            and (d.get("msg", "").startswith("refused ") or "refused requests" in d.get("msg", ""))]


@dataclass
class Scenario:
    """Everything one run saw: the attack, the refused flood's statuses, the leak attempts'
    statuses, the daemon's descriptors before and after, its exit code and its log lines."""

    attack: Attack
    flood: dict[int, int]
    leaks: list[int]
    fds: tuple[int, int]
    exit_code: int | None
    log_lines: list[str]
    header_timeout_s: float
    idle_timeout_s: float


def run_scenario(folder: Path, *, slow: int = 100, idle: int = 20, refused: int = 3000, nofile: int = 128,
                 header_timeout_s: float = 2.0, idle_timeout_s: float = 2.0, hold_s: float = 0.0) -> Scenario:
    """Start the daemon (ApiFaultDaemon), attack it with `slow` slowloris and `idle` idle
    connections (kept up for `hold_s`, see `attack`) while watching /healthz and the camera's
    RTSP results, send `refused` writes with wrong tokens, try to leak secrets into the log,
    stop it."""
    with ApiFaultDaemon(folder, nofile=nofile, header_timeout_s=header_timeout_s,
                        idle_timeout_s=idle_timeout_s) as daemon:
        before = daemon.open_fds()
        seen = asyncio.run(attack(daemon.url, daemon.port, slow=slow, idle=idle,
                                  max_s=4 * max(header_timeout_s, idle_timeout_s) + 5, hold_s=hold_s))
        flood = asyncio.run(refuse_many(daemon.url, refused))
        leaks = asyncio.run(leak_attempts(daemon.url, daemon.port))
        after = daemon.open_fds()
        code = daemon.stop()
        return Scenario(seen, flood, leaks, (before, after), code, daemon.log_lines(), header_timeout_s,
                        idle_timeout_s)
