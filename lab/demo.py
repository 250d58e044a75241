"""`make demo`: fleetmon's main job on a lab fleet shaped like the contract.

Starts a throw-away InfluxDB and a WeCom group-robot simulator, builds the lab fleet (1,850
cameras in ten townships with their switches, UPS units and dedicated lines; two sites slow at
250 ms, two lossy at 20 %, one dark) with its services (lab/services.py: every camera's ONVIF
and RTSP, a few that ping but send no video, a drifted clock, firmware the point list does not
know; every switch, UPS and server an SNMP agent), runs the real `fleetmon run --view` against
it and, while it runs:
- puts one site's UPS on battery (mains lost; its SNMP agent says so, and it sends the
  upsTrapOnBattery trap): one fault, announced before anything behind it drops;
- takes one access switch down and brings it back (its cameras turn *unreachable*, not *down*:
  one fault, "交换机X离线，影响N路摄像机");
- takes another switch's uplink port down (ifOperStatus, and a linkDown trap): one fault.
- shows one camera per picture defect (lab/vqd_streams.py: blurred, dark, glaring, tinted,
  covered, frozen, snowy, "no video"), which the frame check's video-quality diagnosis raises
  in Chinese (画面模糊, 画面过暗, 画面遮挡, 画面冻结, 偏色, 无信号, …); one more camera turns away
  after its first check (镜头移位).
Ends on Ctrl-C or after DEMO_SECONDS (0 = until Ctrl-C), then prints the per-region network,
service, video and contract online rates that InfluxDB holds beside the lab's ground truth and
the messages the WeCom group received, and removes everything it started.

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
from lab.process import free_ports, stop_process
from lab.services import Anomalies, FleetServices
from monitor.core.model import Kind

INTERVAL_S = 10.0  # the demo's probe interval: lively, still a real cycle over 2,000 devices
DATABASE = "fleetmon"
# When, after the daemon's start, the demo changes the fleet (seconds).
UPS_ON_BATTERY_AT_S, SWITCH_DOWN_AT_S, UPLINK_DOWN_AT_S, SWITCH_UP_AT_S, ALL_BACK_AT_S = 40.0, 55.0, 75.0, 120.0, 140.0
# A real fleet's share of such cameras, about: 6 of 1,850 send no video, 2 clocks, 2 firmwares.
# And one camera per picture defect (lab/vqd_streams.py), diagnosed by the frame check (vqd).
ANOMALIES = Anomalies(no_video=6, clock_drift=2, upgraded=2, picture_defects=1)
MOVED_AT_S = 100.0  # a camera turns away: after its first check, whose clean picture is its reference
REGION_SERIES_QUERY = (
    "SELECT count(online_rate_pct) AS points, last(online_rate_pct) AS last_pct, min(online_rate_pct) AS min_pct "
    "FROM online_rate WHERE scope = 'region' AND kind = 'camera' GROUP BY \"group\", \"basis\""
)
BASES = ("online", "network", "service", "video")


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


def write_config(workdir: Path, influx_url: str, wecom: WeComGroup, services: FleetServices, trap_port: int) -> Path:
    (workdir / "wecom.key").write_text(wecom.key)
    (workdir / "trap.communities").write_text("traps")
    probes = services.probe_config()
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
            },
            "rtsp": {**probes["rtsp"], "interval_s": 20},
            "onvif": {**probes["onvif"], "interval_s": 120},
            "snmp": {**probes["snmp"], "interval_s": 15},
            # The frame check with video-quality diagnosis on the sites of the spoilt cameras only:
            # a check costs ~0.1 s of CPU (bench/vqd_lab.py), the whole fleet every 2 min would not fit.
            "rtsp_frame": {**probes["rtsp_frame"], "interval_s": 120, "max_concurrency": 8,
                           "match": {"kind": ["camera"], "site": sorted(
                               {services.fleet.device(c).site for c in services.picture_defects})}},
        },
        "traps": {"enabled": True, "port": trap_port, "communities_file": "trap.communities"},
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
            {"name": "camera-video-down", "type": "video_down", "for_s": 30},
            {"name": "camera-clock-drift", "type": "clock_drift"},
            {"name": "camera-inventory-mismatch", "type": "inventory_mismatch"},
            {"name": "uplink-down", "type": "port_down"},
            {"name": "ups-on-battery", "type": "ups_on_battery"},
            {"name": "ups-battery-low", "type": "ups_battery_low"},
            *({"name": f"camera-{rule.removeprefix('video_').replace('_', '-')}", "type": rule}
              for rule in ("video_signal_loss", "video_dark", "video_bright", "video_blur", "video_occlusion",
                           "video_frozen", "video_cast", "video_noise", "video_moved")),
        ],
        "notify": {"routes": [{"name": "duty", "type": "wecom", "url": wecom.sim.url, "key_file": "wecom.key"}]},
        "api": {"port": 0},
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def pick_switches(fleet: LabFleet, count: int) -> list[str]:
    """Healthy access switches with cameras behind them, for the run-time failures."""
    found = [
        d.id for d in fleet.devices
        if d.kind is Kind.SWITCH and fleet.net.is_up(d.address) and fleet.behind(d.id)
    ]
    if len(found) < count:
        raise RuntimeError(f"the lab fleet has fewer than {count} healthy switches")
    return found[:count]


def run_daemon(
    config: Path, fleet: LabFleet, services: FleetServices, trap_port: int, seconds: float, console: Console
) -> None:
    pictures = dict(services.picture_defects)
    moved = [c for c, d in pictures.items() if d == "moved"]
    services.set_pictures({c: d for c, d in pictures.items() if d != "moved"})  # clean at the first check: its reference
    fleetmon = Path(sys.executable).with_name("fleetmon")
    proc = subprocess.Popen([str(fleetmon), "run", "--config", str(config), "--view"])
    switch, uplink = pick_switches(fleet, 2)
    ups = next(d.id for d in fleet.behind(uplink) if d.kind is Kind.UPS)

    def on_battery() -> None:
        services.ups_on_battery(ups, minutes_remaining=25)
        services.send_trap(ups, "ups_on_battery", trap_port)

    def uplink_down() -> None:
        services.uplink_down(uplink)
        services.send_trap(uplink, "link_down", trap_port)

    def all_back() -> None:
        services.ups_on_mains(ups)
        services.uplink_up(uplink)
        services.send_trap(uplink, "link_up", trap_port)

    started = time.monotonic()
    events = sorted([
        (MOVED_AT_S, lambda: services.set_pictures(pictures), f"lab: camera {', '.join(moved)} turned away (moved)"),
        (UPS_ON_BATTERY_AT_S, on_battery, f"lab: UPS {ups} lost mains (on battery, trap sent)"),
        (SWITCH_DOWN_AT_S, lambda: fleet.fail(switch), f"lab: switch {switch} taken down with its cameras"),
        (UPLINK_DOWN_AT_S, uplink_down, f"lab: switch {uplink} uplink port down (linkDown trap sent)"),
        (SWITCH_UP_AT_S, lambda: fleet.restore(switch), f"lab: switch {switch} restored"),
        (ALL_BACK_AT_S, all_back, f"lab: UPS {ups} on mains again, uplink of {uplink} up"),
    ], key=lambda event: event[0])
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


def report(influx: InfluxServer, fleet: LabFleet, services: FleetServices, console: Console) -> None:
    reachable, video = fleet.reachable(), services.expected_video()
    cameras = {d.id for d in fleet.devices if d.kind is Kind.CAMERA}
    truth = {
        "online": fleet.expected_online((reachable - cameras) | video),  # network up and RTSP DESCRIBE OK
        "network": fleet.expected_online(reachable),
        "service": fleet.expected_online(reachable & cameras, kinds=[Kind.CAMERA]),
        "video": fleet.expected_online(video, kinds=[Kind.CAMERA]),
    }
    table = Table(title="InfluxDB: camera online rates per region, last / min over the run (lab truth now)")
    table.add_column("region")
    for basis in BASES:
        table.add_column(basis, justify="right")
    rows = influx.rows(REGION_SERIES_QUERY, DATABASE)
    by_region: dict[str, dict[str, dict]] = {}
    for row in rows:
        by_region.setdefault(row["group"], {})[row["basis"]] = row
    for region in sorted(by_region):
        cells = []
        for basis in BASES:
            row = by_region[region].get(basis)
            online, total = truth[basis].get(("region", region, Kind.CAMERA.value), (0, 0))
            now = f"{100 * online / total:.2f}" if total else "—"
            cells.append("—" if row is None else f"{row['last_pct']:.2f} / {row['min_pct']:.2f} ({now})")
        table.add_row(region, *cells)
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
        with FleetServices(fleet, ANOMALIES) as services:
            (trap_port,) = free_ports(1)
            config = write_config(workdir, influx.url, wecom, services, trap_port)
            console.log(
                f"lab fleet: {len(fleet.devices)} devices in {len({d.region for d in fleet.devices})} regions, "
                f"ONVIF, RTSP and SNMP served; cameras without video: {', '.join(sorted(services.no_video))}; "
                f"pictures spoilt: {', '.join(f'{c} {d}' for c, d in sorted(services.picture_defects.items()))}; "
                f"InfluxDB at {influx.url}; {'until Ctrl-C' if not seconds else f'{seconds:.0f} s'}"
            )
            run_daemon(config, fleet, services, trap_port, seconds, console)
            report(influx, fleet, services, console)
        show_wecom(wecom, console)
    console.log("demo cleaned up: InfluxDB and the WeCom simulator stopped, lab namespaces and routes removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
