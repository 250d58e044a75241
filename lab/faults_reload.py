"""Reload fault injection, shared by tests/test_fault_reload.py and bench/faults/reload.py.

A real `fleetmon run` process (python -m monitor.app.cli) on a loopback fleet (cameras at
127.0.0.1, ICMP every second), its config and point list rewritten between SIGHUPs, its
/healthz polled over real HTTP. Its stderr goes to a file whose device:inode is given as
JOURNAL_STREAM, as systemd does for a service whose stderr is the journal, so the log lines
carry their `<N>` syslog priority prefixes.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from lab.fleet import POINT_LIST_COLUMNS
from lab.process import stop_process

CAMERAS = 3


def point_rows(count: int, *, probed: int = CAMERAS) -> list[list[str]]:
    """`count` point-list rows (columns of lab.fleet.POINT_LIST_COLUMNS): the first `probed`
    cameras at 127.0.0.1, 127.0.0.2 …, the rest removed points (拆除) without an address, which
    a daemon loads, counts out and does not poll."""
    rows = []
    for n in range(count):
        active = n < probed
        address = f"127.0.{n // 250}.{n % 250 + 1}" if active else ""
        rows.append([f"CAM-{n:06d}", f"摄像机{n}", "camera", address, f"S{n // 50}", f"R{n // 5000}",
                     "", "active" if active else "removed", "", "", "", "", "", "", "", ""])
    return rows


def write_points(path: Path, rows: list[list[str]]) -> None:
    """The point list as UTF-8 CSV, or as XLSX when `path` ends in .xlsx."""
    if path.suffix == ".xlsx":
        import openpyxl

        book = openpyxl.Workbook(write_only=True)
        sheet = book.create_sheet("点位")
        sheet.append(list(POINT_LIST_COLUMNS))
        for row in rows:
            sheet.append(row)
        book.save(path)
        return
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(POINT_LIST_COLUMNS)
        writer.writerows(rows)


def config_doc(api_port: int, *, points: str = "points.csv", database: str = "state.db") -> dict[str, Any]:
    """A config for the loopback fleet: ICMP every second, no other probe, no InfluxDB, the API
    on 127.0.0.1:`api_port`."""
    return {
        "inventory": {"point_lists": [points], "allow_loopback": True},
        "probes": {"icmp": {"interval_s": 1.0, "count": 1, "timeout_s": 0.3},
                   **{name: {"enabled": False} for name in ("rtsp", "onvif", "snmp")}},
        "state": {"database": database, "down_after": 1, "up_after": 1},
        "influxdb": {"enabled": False},
        "api": {"port": api_port},
        "log": {"level": "info"},
    }


def write_config(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")


# --- configs that cannot be used: each edits a config_doc() (files under the config's folder),
# may hold sockets open in `held` (the caller closes them), and returns a text the error names.


def _port_taken(tmp_path: Path, doc: dict[str, Any], held: list[socket.socket]) -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    held.append(sock)
    doc["api"]["port"] = port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"


def _db_not_creatable(tmp_path: Path, doc: dict[str, Any], held: list[socket.socket]) -> str:
    (tmp_path / "a-file").write_text("not a directory")
    doc["state"]["database"] = str(tmp_path / "a-file" / "state.db")
    return "a-file/state.db"


def _db_not_a_database(tmp_path: Path, doc: dict[str, Any], held: list[socket.socket]) -> str:
    # Passes the pre-flight check (a writable file): the new daemon's start fails, and the old
    # config is started again.
    (tmp_path / "other.db").write_bytes(b"not a database" * 100)
    doc["state"]["database"] = str(tmp_path / "other.db")
    return "file is not a database"


def _invalid(tmp_path: Path, doc: dict[str, Any], held: list[socket.socket]) -> str:
    doc["state"]["down_afterr"] = 2
    return "state.down_afterr"


def _bad_point_list(tmp_path: Path, doc: dict[str, Any], held: list[socket.socket]) -> str:
    rows = point_rows(5)
    rows[3][3] = "10.0.0.300"
    write_points(tmp_path / "points.csv", rows)
    return "points.csv:5"


FAILING: dict[str, Callable[[Path, dict[str, Any], list[socket.socket]], str]] = {
    "api port taken": _port_taken,
    "state db path not creatable": _db_not_creatable,
    "state db unusable at start": _db_not_a_database,
    "config fails validation": _invalid,
    "point list fails to load": _bad_point_list,
}
"""Each way a reloaded config can fail: validates but cannot start (caught before the running
daemon stops, or only by the new daemon's start), fails validation, or its point list fails."""


class Fleetmon:
    """`fleetmon run --config CONFIG` with stderr in LOG (JOURNAL_STREAM naming it), until
    `stop()` (SIGTERM). Use as a context manager."""

    def __init__(self, config: Path, log: Path, *, env: dict[str, str] | None = None) -> None:
        self.config, self.log = config, log
        self._env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Fleetmon:
        out = self.log.open("wb")
        st = os.fstat(out.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}", **self._env}
        self.proc = subprocess.Popen([sys.executable, "-m", "monitor.app.cli", "run", "--config", str(self.config)],
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env)
        out.close()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_process(self.proc, 30)

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_log(self, needle: str, count: int = 1, timeout_s: float = 30) -> str:
        """Wait until `needle` occurs `count` times in the log; returns the log. Raises
        AssertionError on timeout or when the process exited first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = self.text()
            if text.count(needle) >= count:
                return text
            if not self.alive():
                raise AssertionError(f"fleetmon exited ({self.proc.returncode}) before {needle!r}:\n{text[-3000:]}")
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {needle!r} ×{count}:\n{self.text()[-3000:]}")

    def sighup(self) -> None:
        self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> int:
        """SIGTERM; the exit status (SIGKILL after 30 s)."""
        return stop_process(self.proc, 30)


def healthz(port: int, timeout_s: float = 5.0) -> tuple[int | None, dict[str, Any] | None, float]:
    """GET http://127.0.0.1:`port`/healthz: (HTTP status or None when no answer, body,
    seconds taken)."""
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout_s) as reply:
            status, body = reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        status, body = exc.code, json.loads(exc.read() or b"null")
    except (OSError, urllib.error.URLError):
        status, body = None, None
    return status, body, time.perf_counter() - started


def wait_healthy(port: int, timeout_s: float = 30) -> dict[str, Any]:
    """Poll /healthz until it answers 200 with status ok; returns the body."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, body, _ = healthz(port)
        if status == 200 and body["status"] == "ok":
            return body
        time.sleep(0.1)
    raise AssertionError(f"/healthz on {port} not ok within {timeout_s} s")


def fleet_config_doc(probes: dict[str, Any], influx_url: str | None, api_port: int = 0) -> dict[str, Any]:
    """A config for a lab fleet (lab.fleet.LabFleet's point list as points.csv) at its shortest
    intervals: ICMP every second, RTSP every 2 s, SNMP every 5 s, ONVIF every 10 s (the
    validators' floors but RTSP's: 34 devices' DESCRIBEs take more than a second), with lab.services.FleetServices' `probes` section merged in; InfluxDB at
    `influx_url` (None: disabled)."""
    fast = {"rtsp": {"interval_s": 2.0, "timeout_s": 1.0}, "onvif": {"interval_s": 10.0, "timeout_s": 1.0},
            "snmp": {"interval_s": 5.0, "timeout_s": 0.5}}
    return {
        "inventory": {"point_lists": ["points.csv"]},
        "probes": {"icmp": {"interval_s": 1.0, "count": 2, "echo_interval_ms": 50, "timeout_s": 0.3},
                   **{name: {**cfg, **fast.get(name, {})} for name, cfg in probes.items()}},
        "scheduler": {"spread": 0.5},
        "state": {"database": "state.db", "down_after": 1, "up_after": 1},
        "influxdb": ({"url": influx_url, "database": "soak", "flush_interval_s": 0.2} if influx_url
                     else {"enabled": False}),
        "api": {"port": api_port},
    }


@dataclass(frozen=True)
class Sample:
    """One look at the daemon's process: seconds since the start, resident memory (KiB), open
    file descriptors, asyncio tasks on the daemon's loop, threads."""

    t_s: float
    rss_kib: int
    fds: int
    tasks: int
    threads: int


def sample(started: float) -> Sample:
    """This process, now (Linux /proc)."""
    with open("/proc/self/statm") as statm:
        rss_pages = int(statm.read().split()[1])
    return Sample(time.monotonic() - started, rss_pages * os.sysconf("SC_PAGE_SIZE") // 1024,
                  len(os.listdir("/proc/self/fd")), len(asyncio.all_tasks()), threading.active_count())


@dataclass(frozen=True)
class Soak:
    """What `soak` saw: `steady` holds one Sample just before each reload (every component
    running, none starting); `reloads` and `failed_reloads` counted; `cycles`: probe cycles
    finished while every probe was fresh (the watchdog's pings), all daemons together."""

    steady: list[Sample]
    reloads: int
    failed_reloads: int
    cycles: int

    def growth(self, warmup: int = 2, window: int = 3) -> Sample:
        """Growth after warm-up: the median of the last `window` steady samples minus the median
        of the `window` after the first `warmup` (medians: a probe task or a pooled connection
        more or less at one instant is not growth); t_s is the span between the two windows."""
        if len(self.steady) < warmup + 2 * window:
            raise ValueError(f"{len(self.steady)} samples: too few for warm-up {warmup} and windows of {window}")
        first, last = self.steady[warmup:warmup + window], self.steady[-window:]

        def change(field: str) -> int:
            return int(statistics.median(getattr(s, field) for s in last)
                       - statistics.median(getattr(s, field) for s in first))

        return Sample(last[-1].t_s - first[0].t_s, change("rss_kib"), change("fds"), change("tasks"), change("threads"))


async def soak(config: Path, duration_s: float, reload_every_s: float) -> Soak:
    """Run the daemon (monitor.app.supervisor, in this process) on `config` for `duration_s`,
    reloading it (as SIGHUP does: a full stop and start) every `reload_every_s`, and sample
    this process just before each reload. Ends with a clean stop."""
    from monitor.app.sdnotify import Notifier
    from monitor.app.supervisor import Supervisor, load

    class Counting(Notifier):
        cycles = 0

        def watchdog(self) -> bool:
            self.cycles += 1
            return super().watchdog()

    notifier = Counting({})
    supervisor = Supervisor(config, notifier=notifier)
    started = time.monotonic()
    serving = asyncio.create_task(supervisor.serve(*load(config)))
    steady: list[Sample] = []
    reloads = failed = 0
    try:
        while time.monotonic() - started + reload_every_s <= duration_s:
            await asyncio.sleep(reload_every_s)
            if serving.done():
                break
            steady.append(sample(started))
            outcome = supervisor.outcome
            supervisor._on_hup()
            async with asyncio.timeout(60):
                while supervisor.outcome is outcome:
                    await asyncio.sleep(0.05)
            reloads += 1
            failed += not supervisor.outcome.ok
    finally:
        supervisor._on_stop()
        status = await asyncio.wait_for(serving, 60)
    if status != 0:
        raise RuntimeError(f"the daemon ended with exit status {status}")
    return Soak(steady, reloads, failed, notifier.cycles)


@dataclass(frozen=True)
class Probe:
    """One GET /healthz during a reload: `reading` when the whole request fell between the log's
    "reloading" and "fleetmon stopping" (the new config being read, the old daemon serving),
    its HTTP status (None: no answer, e.g. while the daemons swap) and its seconds."""

    reading: bool
    status: int | None
    latency_s: float


def healthz_during_reload(daemon: Fleetmon, port: int, timeout_s: float = 300) -> list[Probe]:
    """SIGHUP `daemon`, then GET /healthz back to back until the reload ended (the log says
    "fleetmon started" once more, or "reload of … failed"); every request, in order."""
    probes: list[Probe] = []
    before = daemon.text()
    done = before.count("fleetmon started") + 1, before.count("reload of") + 1
    daemon.sighup()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = daemon.text()
        if text.count("fleetmon started") >= done[0] or text.count("reload of") >= done[1]:
            return probes
        reading = "reloading" in text[len(before):] and "fleetmon stopping" not in text[len(before):]
        status, _, latency = healthz(port, timeout_s=30)
        after = daemon.text()[len(before):]
        probes.append(Probe(reading and "fleetmon stopping" not in after, status, latency))
        if status is None:
            time.sleep(0.01)  # refused while the daemons swap: do not spin
    raise AssertionError(f"the reload did not end within {timeout_s} s")
