"""Delivery fault harness, shared by tests/test_fault_delivery.py and bench/faults/delivery.py:
fault events queued in a real state database (the outbox), delivered by the real OutboxWorker
and WeComRoute to the WeCom simulator (lab/wecom.py) while it misbehaves; then what the group
received is counted by event id (every message names its events: "#17"), so that a loss or a
repeat shows.

Modes (`MODES`): 45009 (rate limit), HTTP 500, hang (a request read and never answered, nothing
posted), late (posted at once, answered after a delay within the route's timeout), late_beyond
(posted at once, answered after the route gave up: the documented repeat), late_forever (the
same for every request during LATE_FOREVER_S: the repeats come no faster than resend_after_s,
doubling), kill9 (fleetmon
killed with SIGKILL while WeCom holds the answer to a posted message; the deliverer runs as a
child process, `python -m lab.faults_delivery deliver DB URL KEY_FILE`, restarted after the kill).

Time is compressed: a 1 s rate window instead of WeCom's 60 s, timeouts and resend delays in
fractions of a second, the outbox's backoff from 50 ms. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from lab.wecom import HANG_MAX_S, WeComSimulator
from monitor.state.db import StateDB
from rules.alerting import outbox
from rules.alerting.duty import DutyRoster
from rules.alerting.notifiers.wecom import WeComConfig, WeComRoute
from rules.alerting.outbox import OutboxWorker
from rules.model import EventKind, Fault, FaultState, Severity

ROUTE = "wecom"
WINDOW_S = 1.0  # the rate window, WeCom's 60 s compressed
TIMEOUT_S = 0.5  # the route's answer window (timeout_s), compressed
RESEND_AFTER_S = 0.5  # resend_after_s, compressed
OUTBOX = dict(backoff_initial_s=0.05, backoff_max_s=0.5, poll_s=0.05)
DEADLINE_S = 30.0
MODES = ("45009", "500", "hang", "late", "late_beyond", "kill9")
LATE_FOREVER_S = 2.2
"""late_forever: every request posted and answered after the route gave up, for this long."""
ALLOWED_REPEATS = {"late_beyond": 1, "kill9": 1}
"""Repeats the documented at-least-once cases allow: one per request WeCom posted but answered
after timeout_s (late_beyond: one such request), one per event in flight at a crash (kill9)."""
EVENT_ID = re.compile(r"#(\d+)")
REPO = Path(__file__).resolve().parents[1]


@dataclass
class DeliveryResult:
    """What one mode gave: events queued (`sent`), messages the group received, and per event
    id how often it arrived; lost = events never received, duplicates = arrivals beyond one."""

    mode: str
    sent: int
    messages: int
    received: collections.Counter[int]

    @property
    def lost(self) -> int:
        return sum(1 for n in range(1, self.sent + 1) if self.received[n] == 0)

    @property
    def duplicates(self) -> int:
        return sum(max(0, count - 1) for count in self.received.values())

    @property
    def allowed(self) -> int:
        return ALLOWED_REPEATS.get(self.mode, 0)


def fault(n: int) -> Fault:
    return Fault(
        id=f"F{n}", rule="device-down", kind="device_down", scope=f"device:SW-{n:03d}", severity=Severity.MAJOR,
        state=FaultState.FIRING, title=f"交换机SW-{n:03d}离线", first_seen_ns=1_800_000_000 * 10**9,
        last_seen_ns=1_800_000_000 * 10**9, device_id=f"SW-{n:03d}", region="城关镇",
    )


async def queue_events(db_path: Path, count: int) -> list[int]:
    """Queue `count` firing events for the route in a new state database; their ids."""
    async with StateDB(db_path) as db:
        await db.migrate(outbox.SCHEMA)

        def op(conn) -> list[int]:
            with conn:
                return [outbox.enqueue(conn, ROUTE, EventKind.FIRING, time.time_ns(), fault(n)) for n in range(1, count + 1)]

        return await db.execute(op)


def route_config(url: str, key_file: Path) -> WeComConfig:
    """The route under test: markdown, nobody to @mention, compressed timeouts, the robot key
    in `key_file`."""
    return WeComConfig.model_validate(dict(
        type="wecom", name=ROUTE, url=url, key_file=key_file, mention_min_severity=None,
        timeout_s=TIMEOUT_S, resend_after_s=RESEND_AFTER_S,
    ))


async def deliver(db_path: Path, url: str, key_file: Path, deadline_s: float = DEADLINE_S) -> bool:
    """Run the outbox with the WeCom route until nothing is pending (True) or `deadline_s`."""
    async with StateDB(db_path) as db:
        route = WeComRoute(route_config(url, key_file), DutyRoster([]), window_s=WINDOW_S)
        async with route, OutboxWorker(db, {ROUTE: route}, **OUTBOX) as worker:
            worker.wake()
            end = time.monotonic() + deadline_s
            while time.monotonic() < end:
                if await worker.pending() == 0:
                    return True
                await asyncio.sleep(0.02)
    return False


def count_ids(contents: list[str]) -> collections.Counter[int]:
    """Arrivals per event id in the messages' texts."""
    return collections.Counter(int(n) for content in contents for n in EVENT_ID.findall(content))


async def run_mode(mode: str, events: int = 5) -> DeliveryResult:
    """Queue `events` events, inject `mode`, deliver until done, count what arrived."""
    if mode not in (*MODES, "late_forever"):
        raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}, late_forever")
    with tempfile.TemporaryDirectory(prefix="fm-delivery-") as tmp:
        db_path = Path(tmp) / "state.db"
        await queue_events(db_path, events)
        async with WeComSimulator(window_s=WINDOW_S) as wecom:
            key = wecom.add_robot()
            key_file = Path(tmp) / "robot.key"
            key_file.write_text(key)
            if mode == "45009":
                wecom.fail_with(45009, times=2)
            elif mode == "500":
                wecom.fail_http(500, "<html>500 Internal Server Error</html>", times=3)
            elif mode == "hang":
                wecom.hang(after=1)
            elif mode == "late":
                wecom.answer_late(TIMEOUT_S * 0.6, times=events)
            elif mode == "late_beyond":
                wecom.answer_late(TIMEOUT_S * 2, after=1)
            elif mode == "late_forever":
                wecom.answer_late(TIMEOUT_S * 2, times=10**6)
                asyncio.get_running_loop().call_later(LATE_FOREVER_S, wecom.answer_normally)
            if mode == "kill9":
                done = await _deliver_killed(db_path, wecom, key, key_file)
            else:
                done = await deliver(db_path, wecom.url, key_file)
            if not done:
                raise RuntimeError(f"{mode}: the outbox did not drain within {DEADLINE_S:g} s")
            contents = [m.content for m in wecom.messages(key)]
    return DeliveryResult(mode, events, len(contents), count_ids(contents))


async def _deliver_killed(db_path: Path, wecom: WeComSimulator, key: str, key_file: Path) -> bool:
    """The deliverer as a child process; WeCom posts the third message and holds its answer,
    the child is killed with SIGKILL meanwhile, then started again to finish."""
    wecom.answer_late(HANG_MAX_S, after=2)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "lab.faults_delivery", "deliver", str(db_path), wecom.url, str(key_file)]
    child = await asyncio.create_subprocess_exec(*cmd, env=env, cwd=REPO)
    try:
        end = time.monotonic() + DEADLINE_S
        while len(wecom.messages(key)) < 3:
            if time.monotonic() > end or child.returncode is not None:
                raise RuntimeError("the third message never reached WeCom")
            await asyncio.sleep(0.01)
        child.send_signal(signal.SIGKILL)  # posted, its answer not yet back: in flight
        await child.wait()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    again = await asyncio.create_subprocess_exec(*cmd, env=env, cwd=REPO)
    try:
        await asyncio.wait_for(again.wait(), DEADLINE_S)
    finally:
        if again.returncode is None:
            again.kill()
            await again.wait()
    return again.returncode == 0


def _main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "deliver":
        return 0 if asyncio.run(deliver(Path(argv[1]), argv[2], Path(argv[3]))) else 1
    print("usage: python -m lab.faults_delivery deliver DB URL KEY_FILE", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
