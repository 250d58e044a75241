"""Fault injection on the state database: the disk under it fills up while faults fire and clear.

The scenario shared by tests/test_fault_statedb.py and bench/faults/statedb.py (root: a lab
network and a tmpfs mount):

1. a small lab fleet (lab/fleet.py, real ICMP), the WeCom simulator (lab/wecom.py) and a real
   daemon child (`fleetmon run`) whose state database lives on a small tmpfs of its own;
2. once it runs (/healthz 200), the tmpfs is filled with a file (disk full: SQLITE_FULL);
3. while it is full, switches die and come back (each a device_down fault, firing then
   resolved, and transitions of the switch and everything behind it);
4. the file is deleted; the scenario waits for /healthz 200 and the notices;
5. the disk is filled once more and the daemon gets SIGTERM while writes fail.

`Outcome` holds what was counted against the lab's ground truth: transitions lost (affected
devices whose stored history misses leaving or regaining "up" during the outage, plus breaks
in any device's chain of stored states), firing notices lost, resolutions without a firing
before them, the /healthz codes and causes seen, the time to recover, and how the daemon
stopped. Mounts, the lab and the child are cleaned up whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import yaml

from lab.fleet import LabFleet, build_small_fleet
from lab.net import LabNet
from lab.process import free_ports
from lab.wecom import WeComSimulator
from monitor.core.model import Status

FLEETMON = str(Path(sys.executable).with_name("fleetmon"))
TMPFS_SIZE = "4m"
SWITCHES = ("SW-001", "SW-002", "SW-003")


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = TMPFS_SIZE) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` (created) for the block; unmounted (lazily, should a
    process still hold a file) in any case."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path) -> Path:
    """Write a file into `folder` until its file system is full (ENOSPC); returns the file.
    Chunks shrink down to one byte, so not even a page is left."""
    filler = folder / "filler"
    chunk = 1 << 20
    with filler.open("wb", buffering=0) as f:
        while chunk:
            try:
                f.write(b"\0" * chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                chunk //= 2
    return filler


@dataclass
class Outcome:
    """What the scenario counted (see the module docstring)."""

    outage_s: float = 0.0  # the disk was full this long (the first time)
    full_from_ns: int = 0  # UTC ns: the outage, from filling to freeing
    full_to_ns: int = 0
    expected_transitions: int = 0  # transitions the lab caused during the outage (ground truth)
    transitions_lost: int = 0
    firing_expected: int = 0
    firing_lost: int = 0
    resolved_without_firing: int = 0
    health_during: list[int] = field(default_factory=list)  # /healthz codes while full
    causes: list[str] = field(default_factory=list)  # statedb_error values seen
    health_after: int | None = None
    recover_s: float | None = None  # from freeing the space to /healthz 200
    notices: list[str] = field(default_factory=list)  # every WeCom message, in order
    missing: list[str] = field(default_factory=list)  # affected devices whose history is incomplete
    exit_code: int | None = None  # SIGTERM while writes fail
    log: str = ""


def _config(folder: Path, db_dir: Path, fleet: LabFleet, wecom: WeComSimulator, key: str, port: int) -> Path:
    fleet.write_point_list(folder / "points.csv")
    (folder / "wecom.key").write_text(key)
    doc = {
        "inventory": {"point_lists": ["points.csv"]},
        "probes": {"icmp": {"interval_s": 1.0, "count": 1, "timeout_s": 0.3, "echo_interval_ms": 50},
                   **{name: {"enabled": False} for name in ("rtsp", "onvif", "snmp")}},
        "scheduler": {"spread": 0.2},
        "state": {"database": str(db_dir / "state.db"), "down_after": 1, "up_after": 1},
        "influxdb": {"enabled": False},
        "api": {"port": port},
        "rules": [{"type": "device_down", "name": "down"}],
        "notify": {"routes": [{"type": "wecom", "name": "duty", "url": wecom.url, "key_file": "wecom.key",
                               "msgtype": "text"}]},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


async def _health(session: aiohttp.ClientSession, url: str) -> tuple[int, dict]:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as reply:
            return reply.status, await reply.json()
    except (aiohttp.ClientError, TimeoutError):
        return 0, {}


async def _until(check, timeout_s: float, what: str, step_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(step_s)
    raise AssertionError(f"timed out waiting for {what}")


async def run_scenario(workdir: Path, *, hold_s: float = 4.0) -> Outcome:
    """Run the scenario in `workdir` (root). `hold_s`: how long each step of the outage lasts
    (switches die, some come back, the rest come back: 3 steps, the disk full throughout)."""
    out = Outcome()
    net = LabNet(workdir=workdir / "lab")
    proc: subprocess.Popen[bytes] | None = None
    log_path = workdir / "fleetmon.log"
    try:
        fleet = build_small_fleet(net, sites_per_region=2, cameras_per_site=3)
        async with WeComSimulator() as wecom, aiohttp.ClientSession() as session:
            key = wecom.add_robot()
            with small_tmpfs(workdir / "statedb") as db_dir:
                (port,) = free_ports(1)
                config = _config(workdir, db_dir, fleet, wecom, key, port)
                health_url = f"http://127.0.0.1:{port}/healthz"
                with log_path.open("wb") as log:
                    proc = subprocess.Popen([FLEETMON, "run", "--config", str(config)], stdout=log, stderr=log,
                                            cwd=workdir)
                try:
                    await _until(lambda: _ok(session, health_url), 20, "/healthz 200 after the start")
                    await _until(lambda: _all_up(db_dir / "state.db", fleet), 20, "every active point stored up")
                    await _outage(fleet, db_dir, session, health_url, out, hold_s)
                    out.notices = await _notices(wecom, key, fleet)
                    await _stop_while_failing(proc, db_dir, session, health_url, out)
                finally:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
                _count(db_dir / "state.db", fleet, out)
    finally:
        net.close()
        out.log = log_path.read_text(errors="replace") if log_path.exists() else ""
    return out


async def _all_up(db_path: Path, fleet: LabFleet) -> bool:
    """Every active point's stored icmp state is up (the ground truth before the outage)."""
    active = {d.id for d in fleet.devices if d.status is Status.ACTIVE and d.address is not None}
    try:
        conn = sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True)
        try:
            up = {r[0] for r in conn.execute("SELECT device_id FROM device_state WHERE probe='icmp' AND state='up'")}
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return active <= up


async def _ok(session: aiohttp.ClientSession, url: str) -> bool:
    return (await _health(session, url))[0] == 200


async def _outage(fleet: LabFleet, db_dir: Path, session: aiohttp.ClientSession, url: str, out: Outcome,
                  hold_s: float) -> None:
    """Fill the disk; switches die and come back; free it; time the recovery."""
    filler = fill(db_dir)
    full_at = time.monotonic()
    out.full_from_ns = time.time_ns()

    async def probe_health() -> None:
        while True:
            status, body = await _health(session, url)
            out.health_during.append(status)
            if body.get("statedb_error") and body["statedb_error"] not in out.causes:
                out.causes.append(body["statedb_error"])
            await asyncio.sleep(0.25)

    watcher = asyncio.create_task(probe_health())
    try:
        fleet.fail(SWITCHES[0])
        fleet.fail(SWITCHES[1])
        await asyncio.sleep(hold_s)
        fleet.restore(SWITCHES[0])
        fleet.fail(SWITCHES[2])
        await asyncio.sleep(hold_s)
        fleet.restore(SWITCHES[1])
        fleet.restore(SWITCHES[2])
        await asyncio.sleep(hold_s)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    filler.unlink()
    freed = time.monotonic()
    out.outage_s = freed - full_at
    out.full_to_ns = time.time_ns()
    with contextlib.suppress(AssertionError):
        await _until(lambda: _ok(session, url), 30, "/healthz 200 after the space returned", step_s=0.05)
        out.recover_s = time.monotonic() - freed
    out.health_after = (await _health(session, url))[0]


async def _notices(wecom: WeComSimulator, key: str, fleet: LabFleet) -> list[str]:
    """Wait until every switch's firing and resolution arrived (or 20 s), then return all texts."""
    names = [fleet.device(s).name for s in SWITCHES]

    async def complete() -> bool:
        text = "\n".join(m.content for m in wecom.messages(key))
        return all(_lines(text, name, resolved) for name in names for resolved in (False, True))

    with contextlib.suppress(AssertionError):
        await _until(complete, 20, "the notices")
    await asyncio.sleep(1.0)  # anything extra would show now
    return [m.content for m in wecom.messages(key)]


def _lines(text: str, name: str, resolved: bool) -> list[int]:
    """Indexes of the lines of `text` about device `name` that are a resolution (or not)."""
    return [i for i, line in enumerate(text.splitlines()) if name in line and ("已恢复" in line) == resolved]


async def _stop_while_failing(proc: subprocess.Popen[bytes], db_dir: Path, session: aiohttp.ClientSession,
                              url: str, out: Outcome) -> None:
    """Fill the disk again, wait for /healthz 503, SIGTERM; the exit code (None: still running
    after 30 s). The filler is removed afterwards, so the counts can be read."""
    filler = fill(db_dir)
    try:
        with contextlib.suppress(AssertionError):
            await _until(lambda: _is(session, url, 503), 15, "/healthz 503 before SIGTERM")
        proc.send_signal(signal.SIGTERM)
        for _ in range(300):
            if proc.poll() is not None:
                break
            await asyncio.sleep(0.1)
        out.exit_code = proc.poll()
    finally:
        filler.unlink()


async def _is(session: aiohttp.ClientSession, url: str, code: int) -> bool:
    return (await _health(session, url))[0] == code


def _count(db_path: Path, fleet: LabFleet, out: Outcome) -> None:
    """Transitions lost, firing notices lost, resolutions without firing (see the module)."""
    conn = sqlite3.connect(db_path)
    try:
        rows = conn.execute(
            "SELECT device_id, probe, ts_ns, from_state, to_state FROM transitions ORDER BY ts_ns, id").fetchall()
    finally:
        conn.close()
    start, end = out.full_from_ns, out.full_to_ns
    by_device: dict[tuple[str, str], list[tuple[int, str, str]]] = {}
    for device_id, probe, ts, old, new in rows:
        by_device.setdefault((device_id, probe), []).append((ts, old, new))
    breaks = sum(
        1 for history in by_device.values() for a, b in zip(history, history[1:]) if a[2] != b[1]
    )
    # Active points only: one under construction never answers, so it never leaves "down".
    affected = {d.id for s in SWITCHES for d in [fleet.device(s), *fleet.behind(s)] if d.status is Status.ACTIVE}
    missing = 0
    for device_id in sorted(affected):
        history = [h for h in by_device.get((device_id, "icmp"), []) if start <= h[0] <= end]
        left = [i for i, (_, old, new) in enumerate(history) if old == "up" and new != "up"]
        back = [i for i, (_, old, new) in enumerate(history) if new == "up" and old != "up" and left and i > left[0]]
        missing += (not left) + (not back)
        if not (left and back):
            out.missing.append(f"{device_id}: {history}")
    out.expected_transitions = 2 * len(affected)
    out.transitions_lost = missing + breaks
    text = "\n".join(out.notices)
    out.firing_expected = len(SWITCHES)
    for s in SWITCHES:
        name = fleet.device(s).name
        firing, resolved = _lines(text, name, False), _lines(text, name, True)
        out.firing_lost += not firing
        out.resolved_without_firing += sum(1 for r in resolved if not firing or r < firing[0])


def run_in_tempdir(hold_s: float = 4.0) -> Outcome:
    """The scenario in a fresh temporary folder (for the bench runner)."""
    if os.geteuid() != 0:
        raise PermissionError("the state DB fault scenario needs root (tmpfs mount, lab network)")
    with tempfile.TemporaryDirectory(prefix="fm-statedb-") as tmp:
        return asyncio.run(run_scenario(Path(tmp), hold_s=hold_s))
