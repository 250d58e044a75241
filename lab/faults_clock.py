"""Clock steps, for tests/test_fault_clock.py and bench/faults/clock.py.

- `SteppedClock`: a monitor.core.clock.Clock driven by hand: `advance` moves both clocks (time
  passes), `step` only the wall clock (NTP or an operator set it).
- `hold_across_step`: the real daemon (`fleetmon run`, a child process) under libfaketime
  (Debian packages faketime, libfaketime), its wall clock stepped while a rule with `for_s`
  is pending; the hold time measured from outside, on this process's own monotonic clock, from
  the pending fault's row to the firing event's row in the daemon's state DB.

libfaketime 0.9.10 as used here: LD_PRELOAD of libfaketime.so.1; FAKETIME_TIMESTAMP_FILE holds
the offset ("+0", then "+3600" or "-3600": relative seconds) and FAKETIME_NO_CACHE=1 makes it
re-read the file on every call, so the parent steps the child's clock by rewriting it;
FAKETIME_DONT_FAKE_MONOTONIC=1 keeps CLOCK_MONOTONIC real (without it 0.9.10 shifts the
monotonic clock by the same offset, a step included, and Python's time.sleep fails with
EINVAL; asyncio's sleeps are fine either way). Python reads both clocks through libc's
clock_gettime, which the preload intercepts.
"""

from __future__ import annotations

import glob
import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lab.process import free_ports, stop_process

S = 1_000_000_000


class SteppedClock:
    """Wall and monotonic ns driven by hand; the wall clock starts at `wall_ns`, the monotonic
    one at `mono_ns` (any origin: a reboot starts another)."""

    def __init__(self, wall_ns: int, mono_ns: int = 5_000 * S) -> None:
        self._wall = wall_ns
        self._mono = mono_ns

    def wall_ns(self) -> int:
        return self._wall

    def mono_ns(self) -> int:
        return self._mono

    def advance(self, seconds: float) -> None:
        """Time passes: both clocks move on."""
        self._wall += round(seconds * S)
        self._mono += round(seconds * S)

    def step(self, seconds: float) -> None:
        """The wall clock is set `seconds` forward (negative: back); no time passes."""
        self._wall += round(seconds * S)


def libfaketime() -> Path | None:
    """The preload library of the Debian package libfaketime, None when not installed."""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    return Path(found[0]) if found else None


@dataclass(frozen=True)
class HoldRun:
    """One run of `hold_across_step`.

    - step_s: the step of the daemon's wall clock, made `step_after_s` into the hold;
    - for_s, cycle_s: the rule's hold time and the probe's interval (evaluations come once a
      cycle: the tolerance);
    - hold_s: from the condition beginning (the pending fault stored) to the fault firing (its
      event stored), on this process's monotonic clock; None: it did not fire within `waited_s`;
    - wall_hold_s: the same span on the daemon's (stepped) wall clock, from its own stamps
      (fault first seen → fired): shows the step reached the daemon (≈ for_s + step_s).
    """

    step_s: float
    for_s: float
    cycle_s: float
    step_after_s: float
    hold_s: float | None
    wall_hold_s: float | None
    waited_s: float

    @property
    def error_s(self) -> float | None:
        """hold_s − for_s: > 0 late, < 0 early."""
        return None if self.hold_s is None else self.hold_s - self.for_s


CONFIG = """\
inventory:
  allow_loopback: true  # the lab: a camera on this host
  devices:
    - {{id: CAM1, name: 一号机, kind: camera, address: 127.0.0.1, site: 中心, region: 城区,
       stream_url: "rtsp://127.0.0.1:{port}/live"}}
    # Polled by no probe (unknown): the region is not dark, so CAM1's own device_down fault is raised.
    - {{id: SRV1, name: 服务器, kind: server, address: 127.0.0.2, site: 中心, region: 城区}}
probes:
  icmp: {{enabled: false}}
  rtsp: {{interval_s: {cycle_s}, timeout_s: 0.5}}
  onvif: {{enabled: false}}
  snmp: {{enabled: false}}
scheduler: {{spread: 0}}
state: {{database: state.db, down_after: 1, up_after: 1}}
influxdb: {{enabled: false}}
api: {{enabled: false}}
rules:
  - {{name: cam-down, type: device_down, for_s: {for_s}}}
"""


def hold_across_step(
    workdir: Path, step_s: float, *, for_s: float = 6.0, cycle_s: float = 1.0, step_after_s: float = 2.0,
    start_timeout_s: float = 30.0,
) -> HoldRun:
    """Run `fleetmon run` under libfaketime on a camera whose RTSP port is closed (down from its
    first probe), step the daemon's wall clock by `step_s` `step_after_s` after its device_down
    fault (`for_s`) is pending, and measure when it fires. Waits at most for_s + 5 cycles + 5 s
    after it was pending. Raises RuntimeError when libfaketime is missing or the camera is not
    seen down (the daemon's log is `workdir/fleetmon.log`)."""
    preload = libfaketime()
    if preload is None:
        raise RuntimeError("libfaketime is not installed (Debian packages faketime, libfaketime)")
    workdir.mkdir(parents=True, exist_ok=True)
    (port,) = free_ports(1)  # nothing listens: connection refused, the camera is down
    config = workdir / "config.yaml"
    config.write_text(CONFIG.format(port=port, cycle_s=cycle_s, for_s=for_s), encoding="utf-8")
    offset = workdir / "faketime.rc"
    offset.write_text("+0\n")
    env = {
        **os.environ, "LD_PRELOAD": str(preload), "FAKETIME_TIMESTAMP_FILE": str(offset),
        "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    fleetmon = str(Path(sys.executable).with_name("fleetmon"))
    waited = for_s + 5 * cycle_s + 5.0
    with open(workdir / "fleetmon.log", "wb") as log:
        proc = subprocess.Popen([fleetmon, "run", "-c", str(config)], cwd=workdir, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        pending = fired = None
        stepped = False
        deadline = time.monotonic() + start_timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"fleetmon exited ({proc.returncode}); see {workdir / 'fleetmon.log'}")
            now = time.monotonic()
            if pending is None and _stored(workdir / "state.db", "SELECT 1 FROM faults"):
                pending = now
                deadline = pending + waited
            if pending is not None and not stepped and now >= pending + step_after_s:
                offset.write_text(f"{step_s:+.0f}\n")
                stepped = True
            if pending is not None and _stored(workdir / "state.db", "SELECT 1 FROM fault_events WHERE event = 'firing'"):
                fired = now
                break
            time.sleep(0.02)
        if pending is None:
            raise RuntimeError(f"no fault pending within {start_timeout_s} s; see {workdir / 'fleetmon.log'}")
        wall = _stored(workdir / "state.db", "SELECT (fired - first) / 1e9 FROM (SELECT json_extract(doc, '$.fired_ns')"
                                            " AS fired, first_seen_ns AS first FROM faults WHERE state = 'firing')")
        return HoldRun(step_s, for_s, cycle_s, step_after_s, None if fired is None else fired - pending,
                       None if wall is None else float(wall), waited)
    finally:
        stop_process(proc, 10.0)


def _stored(path: Path, sql: str) -> object | None:
    """The first column of the first row of `sql` on the daemon's state DB (read-only), None
    when there is none yet (no file, no table, no row)."""
    if not path.exists():
        return None
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0) as conn:
            row = conn.execute(sql).fetchone()
    except sqlite3.OperationalError:  # the daemon has not made its tables yet
        return None
    return None if row is None else row[0]
