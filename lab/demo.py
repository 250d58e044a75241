"""`make demo`: fleetmon's main job on a lab fleet shaped like the contract.

Starts a throw-away InfluxDB and a WeCom group-robot simulator, builds the lab fleet (1,850
cameras in ten townships with their switches, UPS units and dedicated lines; two sites slow at
250 ms, two lossy at 20 %, one dark), runs the real `fleetmon run --view` against it and, while
it runs, takes one access switch down and brings it back (its cameras turn *unreachable*, not
*down*: one fault, "交换机X离线，影响N路摄像机"). Ends on Ctrl-C or after DEMO_SECONDS (0 = until
Ctrl-C), then prints the per-region online-rate series that InfluxDB holds beside the lab's
ground truth and the messages the WeCom group received, and removes everything it started.

Needs root (network namespaces, raw ICMP sockets).
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from lab.fleet import LabFleet, build_contract_fleet
from lab.influxdb import InfluxServer
from lab.wecom import WeComSimulator
from lab.net import LabNet, cleanup_stale
from lab.process import stop_process
from monitor.model import Kind

INTERVAL_S = 10.0  # the demo's probe interval: lively, still a real cycle over 2,000 devices
DATABASE = "fleetmon"
# When, after the daemon's start, the demo takes a switch down and brings it back.
SWITCH_DOWN_AT_S, SWITCH_UP_AT_S = 45.0, 120.0
REGION_SERIES_QUERY = (
    "SELECT count(online_rate_pct) AS points, last(online_rate_pct) AS last_pct, min(online_rate_pct) AS min_pct "
    "FROM online_rate WHERE scope = 'region' AND kind = 'camera' GROUP BY \"group\""
)


class WeComGroup:
    """The WeCom simulator on an event loop of its own thread: the demo itself is synchronous."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="wecom", daemon=True)
        self.sim = WeComSimulator()

    def __enter__(self) -> "WeComGroup":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.sim.start(), self._loop).result(10)
        self.key = self.sim.add_robot()
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self.sim.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def messages(self) -> list[str]:
        return [m.content for m in self.sim.messages(self.key)]


def write_config(workdir: Path, influx_url: str, wecom: WeComGroup) -> Path:
    (workdir / "wecom.key").write_text(wecom.key)
    config = {
        "inventory": {"point_lists": ["points.csv"]},
        "probes": {
            "icmp": {
                "interval_s": INTERVAL_S,
                "count": 3,
                "timeout_s": 1.0,
                "retries": 1,
                "packets_per_second": 5000,
                # The forest-fire network's line test: 20,000-byte echoes over every dedicated line.
                "overrides": [{"match": {"kind": ["link"]}, "payload_size": 20000}],
            }
        },
        "state": {"database": "state.db", "down_after": 2, "up_after": 2},
        "influxdb": {"url": influx_url, "database": DATABASE},
        # The contract's rules with shorter `for_s`, so that faults show within the demo's minutes.
        "rules": [
            {"name": "device-down", "type": "device_down", "for_s": 10},
            {"name": "camera-online-rate", "type": "online_rate", "for_s": 30, "clear_above_pct": 95.5,
             "severity": "critical"},
            {"name": "link-latency", "type": "latency", "match": {"kind": ["link"]}, "for_s": 20, "window": 3,
             "clear_for_s": 60},
            {"name": "link-loss", "type": "loss", "match": {"kind": ["link"]}, "for_s": 20, "window": 5,
             "clear_for_s": 120},
        ],
        "notify": {"routes": [{"name": "duty", "type": "wecom", "url": wecom.sim.url, "key_file": "wecom.key"}]},
        "api": {"port": 0},
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def pick_switch(fleet: LabFleet) -> str:
    """A healthy access switch with cameras behind it, for the run-time failure."""
    for device in fleet.devices:
        if device.kind is Kind.SWITCH and fleet.net.is_up(device.address) and fleet.behind(device.id):
            return device.id
    raise RuntimeError("the lab fleet has no healthy switch")


def run_daemon(config: Path, fleet: LabFleet, seconds: float, console: Console) -> None:
    fleetmon = Path(sys.executable).with_name("fleetmon")
    proc = subprocess.Popen([str(fleetmon), "run", "--config", str(config), "--view"])
    switch = pick_switch(fleet)
    started = time.monotonic()
    events = [
        (SWITCH_DOWN_AT_S, lambda: fleet.fail(switch), f"lab: switch {switch} taken down with its cameras"),
        (SWITCH_UP_AT_S, lambda: fleet.restore(switch), f"lab: switch {switch} restored"),
    ]
    try:
        while proc.poll() is None:
            elapsed = time.monotonic() - started
            if seconds and elapsed >= seconds:
                break
            while events and elapsed >= events[0][0]:
                _, action, text = events.pop(0)
                action()
                console.log(text)
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass  # Ctrl-C reached fleetmon too (same process group); it is stopping by itself
    finally:  # also on SIGTERM (SystemExit): never leave fleetmon running against a removed lab
        code = stop_process(proc, 40)
    console.log(f"fleetmon exited with status {code}")


def report(influx: InfluxServer, fleet: LabFleet, console: Console) -> None:
    truth = fleet.expected_online()
    table = Table(title="InfluxDB: camera online rate per region (series written by fleetmon)")
    for col in ("region", "points", "last %", "min %", "lab truth now %"):
        table.add_column(col, justify="left" if col == "region" else "right")
    rows = influx.rows(REGION_SERIES_QUERY, DATABASE)
    for row in sorted(rows, key=lambda r: r["group"]):
        online, total = truth.get(("region", row["group"], Kind.CAMERA.value), (0, 0))
        table.add_row(
            row["group"], str(row["points"]), f"{row['last_pct']:.2f}", f"{row['min_pct']:.2f}",
            f"{100 * online / total:.2f}" if total else "—",
        )
    console.print(table)
    console.print(f"[dim]InfluxQL: {REGION_SERIES_QUERY}[/dim]")
    if not rows:
        console.print("[red]no online-rate series in InfluxDB[/red]")


def show_wecom(wecom: WeComGroup, console: Console) -> None:
    messages = wecom.messages()
    console.rule(f"WeCom group: {len(messages)} messages")
    for text in messages:
        console.print(text, markup=False)
        console.rule(style="dim")


def main() -> int:
    if os.geteuid() != 0:
        print("make demo needs root (network namespaces, raw ICMP sockets)", file=sys.stderr)
        return 1
    seconds = float(os.environ.get("DEMO_SECONDS") or 0)
    console = Console(stderr=True)
    # SIGTERM (e.g. a CI timeout) unwinds like Ctrl-C, so the clean-up below still runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cleanup_stale()  # leftovers of a demo that was killed
    with tempfile.TemporaryDirectory(prefix="fleetmon-demo-") as tmp, InfluxServer() as influx, LabNet(
        workdir=Path(tmp)
    ) as net, WeComGroup() as wecom:
        workdir = Path(tmp)
        fleet = build_contract_fleet(net)
        fleet.write_point_list(workdir / "points.csv")
        config = write_config(workdir, influx.url, wecom)
        console.log(
            f"lab fleet: {len(fleet.devices)} devices in {len({d.region for d in fleet.devices})} regions; "
            f"InfluxDB at {influx.url}; {'until Ctrl-C' if not seconds else f'{seconds:.0f} s'}"
        )
        run_daemon(config, fleet, seconds, console)
        report(influx, fleet, console)
        show_wecom(wecom, console)
    console.log("demo cleaned up: InfluxDB and the WeCom simulator stopped, lab namespaces and routes removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
