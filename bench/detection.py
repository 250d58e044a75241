"""Detection-latency benchmark: from the lab's ground-truth failure time to the WeCom message.

`python -m bench detection [--interval 30 --failures 20 --seed 1 --cameras 300 --spread 0.5
--confirm 2 --spacing 1 --down-after 3 --up-after 2]` (root); `--confirm 0 --down-after 1` is
the setting this benchmark measured before confirmation probing. `--lossy` measures false
downs on 20 %-loss links instead (bench/_lossy.py).

A contract-shaped lab fleet (lab/fleet.py, 300 cameras in sites of 8–40 behind their links,
switches and UPS units, two slow sites), a WeCom robot simulator on loopback (lab/wecom.py)
and the real daemon, `fleetmon run`, as a child process: ICMP every `interval` s (count 3,
200 ms apart, 1 s timeout, no retry; probe starts spread over `spread` × interval, fleetmon's
default 0.5), confirmation probing as given (`probes.icmp.confirm`: `confirm` re-probes after a
miss, `spacing` s apart; default the shipped config.yaml's 2 and 1 s), no InfluxDB,
`state.down_after`/`up_after` as given (default the shipped 3 and 2), one rule `device_down`
with `for_s: 0` and one WeCom route. The path measured is therefore: the device's next probe
misses → re-probed `confirm` times (with down_after ≤ 1 + confirm the device is DOWN when the
last re-probe misses; else after more cycles) → the daemon evaluates the rules 1 s later,
mid-cycle (monitor/app/pipeline.py EARLY_EVALUATION_S), and the fault fires (for_s 0) → outbox
→ WeCom message.

Two latencies are printed: failure → WeCom (ground truth to message; it includes the wait for
the device's next scheduled probe, uniform over one interval, which no confirmation can
shorten) and detection → WeCom (from the start of the first probe that saw the failure: the DOWN
transition's time, which is that probe's start).

After the first (warm-up) cycle, `failures` distinct healthy devices (cameras and about one in
five switches, a switch taking its UPS and cameras with it) are taken down with
`LabFleet.fail()` at random instants, one in each of `failures` equal slots of 3 intervals.
Ground truth is the lab's `down_since` (time.time(), taken once the blackhole route is in
place); the simulator runs on the same clock (`WeComSimulator(clock=time.time)`), so latency =
message arrival − down_since. A failure is matched to the first message whose text holds its
fault title ("摄像机<name>离线", "交换机<name>离线…"); it counts as missed when none arrived within
3 intervals. Every fault title found in the messages is counted, so a camera or UPS behind a
failed switch that got a message of its own shows up as an extra notice. Percentiles: linear
interpolation between order statistics. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import yaml

from bench._common import check_routed_into_lab
from lab.process import stop_process

SETTLE_S = 2.0  # after the warm-up cycle, before the first injection


@dataclass
class Failure:
    device_id: str
    kind: str
    title_key: str  # what the fault title starts with: "摄像机<name>离线"
    planned_at: float  # time.time()
    down_since: float | None = None  # lab ground truth, time.time()
    arrived_at: float | None = None  # simulator clock = time.time()


def percentile(values: list[float], pct: float) -> float:
    """Linear interpolation between order statistics (numpy's default); NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * pct / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


class SimulatorThread:
    """The WeCom simulator on an event loop of its own thread, so that its arrival stamps are
    not held up by the lab's blocking `ip` calls in the main thread."""

    def __init__(self) -> None:
        from lab.wecom import WeComSimulator

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="wecom-sim", daemon=True)
        self.sim = WeComSimulator(clock=time.time)  # the lab's down_since is time.time() too
        self.key = ""

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def __enter__(self) -> Self:
        self.thread.start()
        try:
            self._call(self.sim.start())
        except BaseException:
            self._stop_loop()
            raise
        self.key = self.sim.add_robot()
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._call(self.sim.stop())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    @property
    def url(self) -> str:
        return self.sim.url

    def messages(self):
        async def read():
            return self.sim.messages(self.key)

        return self._call(read())

    def errcodes(self) -> list[int | None]:
        async def read():
            return self.sim.errcodes(self.key)

        return self._call(read())


@dataclass(frozen=True)
class Settings:
    """What the daemon is run with: the probe interval and spread, confirmation, hysteresis."""

    interval_s: float = 30.0
    spread: float = 0.5
    confirm: int = 2
    spacing_s: float = 1.0
    down_after: int = 3
    up_after: int = 2


def write_config(work: Path, fleet, url: str, key: str, settings: Settings) -> Path:
    fleet.write_point_list(work / "points.csv")
    key_file = work / "wecom.key"
    key_file.write_text(key)
    key_file.chmod(0o600)
    doc = {
        "inventory": {"point_lists": ["points.csv"]},
        "probes": {"icmp": {"interval_s": settings.interval_s, "count": 3, "echo_interval_ms": 200, "timeout_s": 1.0,
                            "retries": 0, "confirm": {"count": settings.confirm, "spacing_s": settings.spacing_s}},
                   "rtsp": {"enabled": False}},  # ICMP detection; the lab fleet serves no RTSP here
        "scheduler": {"spread": settings.spread},
        "state": {"database": "state.db", "down_after": settings.down_after, "up_after": settings.up_after},
        "influxdb": {"enabled": False},
        "api": {"port": 0},
        "rules": [{"type": "device_down", "name": "device-down", "for_s": 0}],
        "notify": {"routes": [{"type": "wecom", "name": "duty", "url": url, "key_file": "wecom.key"}]},
    }
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def pick_victims(fleet, count: int, rng: random.Random) -> list[str]:
    """`count` distinct healthy devices: about one switch in five (each from its own site), the
    rest cameras from other sites, shuffled."""
    from monitor.core.model import Kind, Status

    healthy = [
        d for d in fleet.devices
        if d.status is Status.ACTIVE and d.address is not None and fleet.net.is_up(d.address) and d.parent is not None
    ]
    switches = [d for d in healthy if d.kind is Kind.SWITCH]
    n_switches = min(len(switches), max(1, round(count / 5))) if count >= 2 else 0
    chosen_switches = rng.sample(switches, n_switches)
    taken_sites = {d.site for d in chosen_switches}
    cameras = [d for d in healthy if d.kind is Kind.CAMERA and d.site not in taken_sites]
    if len(cameras) < count - n_switches:
        raise SystemExit(f"the fleet has only {len(cameras)} healthy cameras outside the chosen sites; need more")
    victims = [d.id for d in chosen_switches] + [d.id for d in rng.sample(cameras, count - n_switches)]
    rng.shuffle(victims)
    return victims


def wait_first_cycle(proc: subprocess.Popen, db_path: Path, timeout_s: float, log_path: Path) -> None:
    """Until the daemon's first heartbeat (written after its first cycle)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"fleetmon exited with {proc.returncode}:\n{tail(log_path)}")
        try:
            row = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True).execute(
                "SELECT last_seen_ns > started_ns FROM sessions ORDER BY id DESC LIMIT 1"
            ).fetchone()
        except sqlite3.Error:
            row = None
        if row and row[0]:
            return
        time.sleep(0.2)
    raise SystemExit(f"no first cycle within {timeout_s:.0f} s:\n{tail(log_path)}")


def tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def match(failures: list[Failure], messages, title_keys: dict[str, str], baseline: int) -> tuple[int, dict[str, int]]:
    """Assign each failure the arrival of the first message holding its title; returns the
    messages after the baseline and every device whose fault title was seen (device → times)."""
    seen: dict[str, int] = {}
    fresh = messages[baseline:]
    for m in fresh:
        for key, device_id in title_keys.items():
            if key in m.content:
                seen[device_id] = seen.get(device_id, 0) + 1
    for f in failures:
        if f.arrived_at is None and f.down_since is not None:
            hit = next((m for m in fresh if f.title_key in m.content), None)
            if hit is not None:
                f.arrived_at = hit.at
    return len(fresh), seen


def breakdown(db_path: Path, failures: list[Failure], settings: Settings) -> dict[str, list[float]]:
    """Where the time goes, per detected failure, from the daemon's own records: ground truth →
    start of the first probe that missed, → the fault firing (re-probes or further cycles, the
    early evaluation, rules + fault lifecycle), → WeCom arrival (outbox + HTTP); and detection
    (the first miss) → WeCom. Only failures whose firing notice the outbox recorded as delivered.

    The DOWN transition's time is the start of the probe that took the device down; without
    enough re-probes to reach down_after that is k cycles after the first miss, k =
    ⌈(down_after − 1 − confirm) / (1 + confirm)⌉, and a device's probe keeps its place in the
    cycle (fixed cycle starts and spread), so the first miss started k × interval earlier."""
    per_cycle = 1 + settings.confirm
    k = max(0, math.ceil((settings.down_after - per_cycle) / per_cycle))
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    down = {d: ts for d, ts in conn.execute(
        "SELECT device_id, min(ts_ns) FROM transitions WHERE to_state='down' GROUP BY device_id")}
    fired: dict[str, int] = {}
    delivered: dict[str, int] = {}
    for doc, fired_ns in conn.execute("SELECT doc, json_extract(doc, '$.fired_ns') FROM faults"):
        d = json.loads(doc)
        if d.get("device_id") and fired_ns:
            fired[d["device_id"]] = fired_ns
    for event, delivered_ns in conn.execute(
        "SELECT event, delivered_ns FROM outbox WHERE delivered_ns IS NOT NULL ORDER BY id"
    ):
        e = json.loads(event)
        device_id = e["fault"].get("device_id")
        if e["event"] == "firing" and device_id and device_id not in delivered:
            delivered[device_id] = delivered_ns
    conn.close()
    out: dict[str, list[float]] = {"probe": [], "fires": [], "notify": [], "detect": []}
    for f in failures:
        if f.arrived_at is None or f.down_since is None:
            continue
        ids = (down.get(f.device_id), fired.get(f.device_id), delivered.get(f.device_id))
        if None in ids:
            continue
        t_down, t_fired, _ = (ns / 1e9 for ns in ids)
        t_first = t_down - k * settings.interval_s
        out["probe"].append(t_first - f.down_since)
        out["fires"].append(t_fired - t_first)
        out["notify"].append(f.arrived_at - t_fired)
        out["detect"].append(f.arrived_at - t_first)
    return out


def bench(settings: Settings, n_failures: int, seed: int, cameras: int) -> str:
    from lab.fleet import Impairments, build_contract_fleet
    from lab.net import LabNet
    from rules.base import KIND_NAMES

    interval_s, spread = settings.interval_s, settings.spread
    # A failure is missed when no message came within this many intervals of it: one to the
    # next probe, the cycles down_after needs beyond what re-probes give, one to spare.
    per_cycle = 1 + settings.confirm
    wait_intervals = 2 + max(1, math.ceil((settings.down_after - per_cycle) / per_cycle) + 1)
    rng = random.Random(seed)
    fleetmon = Path(sys.executable).with_name("fleetmon")
    with LabNet() as net, SimulatorThread() as wecom, tempfile.TemporaryDirectory(prefix="bench-detect-") as tmp:
        work = Path(tmp)
        # Contract-shaped; slow sites only: lossy sites would raise device_down faults of their
        # own now and then with down_after 1 (--lossy measures those), and a dark site one at warm-up.
        fleet = build_contract_fleet(net, cameras=cameras, seed=seed, impaired=Impairments(slow=2, lossy=0, dark=0))
        config = write_config(work, fleet, wecom.url, wecom.key, settings)
        probed = [d for d in fleet.devices if d.address is not None]
        title_keys = {f"{KIND_NAMES['zh'][d.kind]}{d.name}离线": d.id for d in fleet.devices}
        victims = pick_victims(fleet, n_failures, rng)
        check_routed_into_lab([str(probed[0].address), str(probed[-1].address)])

        log_path = work / "fleetmon.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen([str(fleetmon), "run", "--config", str(config)], stdout=log, stderr=log)
        try:
            wait_first_cycle(proc, work / "state.db", 2 * interval_s + 30, log_path)
            time.sleep(SETTLE_S)
            baseline = len(wecom.messages())  # should be 0: nothing is down at warm-up

            # One failure per slot of 3 intervals / n, at a random instant in it.
            start = time.time()
            slot = 3 * interval_s / n_failures
            failures = []
            for i, device_id in enumerate(victims):
                d = fleet.device(device_id)
                failures.append(Failure(device_id, d.kind.value, f"{KIND_NAMES['zh'][d.kind]}{d.name}离线",
                                        start + i * slot + rng.uniform(0, slot)))
            for f in failures:
                time.sleep(max(0.0, f.planned_at - time.time()))
                check_routed_into_lab([str(fleet.device(f.device_id).address)])
                fleet.fail(f.device_id)
                f.down_since = net.down_since(fleet.device(f.device_id).address)
                if proc.poll() is not None:
                    raise SystemExit(f"fleetmon exited with {proc.returncode}:\n{tail(log_path)}")

            # Until every failure has its message or wait_intervals have passed since it.
            deadline = max(f.down_since for f in failures) + wait_intervals * interval_s
            while time.time() < deadline:
                received, seen = match(failures, wecom.messages(), title_keys, baseline)
                if all(f.arrived_at is not None for f in failures):
                    time.sleep(max(0.0, min(5.0, deadline - time.time())))  # room for stragglers (extras)
                    break
                time.sleep(0.5)
            received, seen = match(failures, wecom.messages(), title_keys, baseline)
            errcodes = wecom.errcodes()
        finally:
            code = stop_process(proc, 60)
        if code != 0:
            print(f"warning: fleetmon exited with {code}:\n{tail(log_path)}", file=sys.stderr)
        parts = breakdown(work / "state.db", failures, settings)

    latencies = [f.arrived_at - f.down_since for f in failures if f.arrived_at is not None]
    detected = len(latencies)
    victims_set = {f.device_id for f in failures}
    notices = sum(seen.values())
    extra = {d: n for d, n in seen.items() if d not in victims_set}
    repeated = {d: n for d, n in seen.items() if d in victims_set and n > 1}
    switches = sum(f.kind == "switch" for f in failures)
    n_devices = len(fleet.devices)

    def row(label: str, values: list[float]) -> str:
        if not values:
            return f"{label:<40}{'-':>8}{'-':>8}{'-':>8}{'-':>8}"
        return (f"{label:<40}{percentile(values, 50):>8.2f}{percentile(values, 95):>8.2f}"
                f"{max(values):>8.2f}{statistics.mean(values):>8.2f}")

    detect = parts["detect"]
    detect_p95 = percentile(detect, 95)
    confirm = (f"confirm {settings.confirm} re-probes {settings.spacing_s:g} s apart" if settings.confirm
               else "no confirmation")
    lines = [
        (f"Detection: {n_devices} lab devices ({cameras} cameras, {len(probed)} probed), ICMP every {interval_s:g} s, "
         f"count 3 × 200 ms, timeout 1 s, no retry, spread {spread:g}"),
        (f"config: {confirm}; state.down_after {settings.down_after}, up_after {settings.up_after}; "
         "rule device_down for_s 0; one WeCom route (markdown, 20/min)"),
        ("path: first missed probe → " + (f"{settings.confirm} re-probes → " if settings.confirm else "")
         + (f"{math.ceil((settings.down_after - per_cycle) / per_cycle)} more cycle(s) → "
            if settings.down_after > per_cycle else "")
         + "DOWN → rules evaluated 1 s later → fault fires → outbox → WeCom message"),
        (f"{'failures injected':<28}{len(failures):>6}   ({len(failures) - switches} cameras, {switches} switches "
         f"with their UPS and cameras; over {3 * interval_s:g} s, seed {seed})"),
        f"{'detected':<28}{detected:>6}",
        f"{f'missed (> {wait_intervals} intervals)':<28}{len(failures) - detected:>6}",
        "",
        f"{'latency (s)':<40}{'p50':>8}{'p95':>8}{'max':>8}{'mean':>8}",
        row("detection (first miss) → WeCom", detect),
        row("failure → WeCom", latencies),
        (f"target: detection → WeCom p95 ≤ 10 s: {'met' if detect_p95 <= 10 else 'NOT met'} ({detect_p95:.2f} s). "
         f"Failure → WeCom adds the wait for the next probe, uniform over the {interval_s:g} s interval "
         f"(p95 {0.95 * interval_s:.1f} s of it): only a shorter interval shortens that."),
        "",
        (f"WeCom: {received} messages received after warm-up (baseline {baseline}), holding {notices} fault "
         f"notices; expected {len(failures)} (one per failure)"),
        (f"  extra notices (devices not failed themselves, e.g. behind a failed switch): {len(extra)}"
         + (f" {sorted(extra)}" if extra else "")),
        f"  failures notified more than once: {len(repeated)}" + (f" {sorted(repeated)}" if repeated else ""),
        f"  simulator answers: {len(errcodes)}, errcodes ≠ 0: {sum(1 for e in errcodes if e != 0)}",
        "",
        f"{'where the time goes (s)':<40}{'p50':>8}{'p95':>8}{'max':>8}{'mean':>8}",
        row("failure → first missed probe starts", parts["probe"]),
        row("first missed probe start → fault fires", parts["fires"]),
        row("fault fires → WeCom arrival", parts["notify"]),
        "",
        "Per failure (s): " + ", ".join(
            f"{f.device_id} {f.arrived_at - f.down_since:.1f}" if f.arrived_at is not None else f"{f.device_id} missed"
            for f in failures
        ),
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.detection", description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval", type=float, default=30.0, help="ICMP probe interval, s")
    parser.add_argument("--failures", type=int, default=20, help="failures to inject (distinct devices)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cameras", type=int, default=300, help="cameras in the lab fleet (~1.13 devices each)")
    parser.add_argument("--spread", type=float, default=0.5, help="scheduler.spread (fleetmon's default 0.5)")
    parser.add_argument("--confirm", type=int, default=2, help="probes.icmp.confirm.count, re-probes after a miss (0 = off)")
    parser.add_argument("--spacing", type=float, default=1.0, help="probes.icmp.confirm.spacing_s")
    parser.add_argument("--down-after", type=int, default=3, help="state.down_after")
    parser.add_argument("--up-after", type=int, default=2, help="state.up_after")
    parser.add_argument("--lossy", action="store_true",
                        help="false downs on 20 %%-loss links instead (bench/_lossy.py; its own options follow)")
    args, rest = parser.parse_known_args(argv)
    if os.geteuid() != 0:
        print("bench.detection needs root (lab network namespaces, raw ICMP sockets)", file=sys.stderr)
        return 2
    if args.lossy:
        from bench import _lossy

        return _lossy.main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.failures < 1 or args.interval < 1 or not 0 <= args.spread <= 0.9:
        parser.error("--failures and --interval must be ≥ 1, --spread within 0–0.9")
    if not (0 <= args.confirm <= 10 and 0 <= args.spacing <= 60 and args.down_after >= 1 and args.up_after >= 1):
        parser.error("--confirm within 0–10, --spacing within 0–60 s, --down-after and --up-after ≥ 1")
    settings = Settings(args.interval, args.spread, args.confirm, args.spacing, args.down_after, args.up_after)
    print(bench(settings, args.failures, args.seed, args.cameras), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
