"""The live terminal view renders what the snapshot holds: rates against 95 %, worst links,
open faults, in Chinese by default."""

import re

from rich.console import Console

from monitor.fleet.inventory import Inventory
from monitor.core.model import Kind
from monitor.state.online_rate import online_rates
from monitor.app.scheduler import CycleReport
from monitor.app.snapshot import Snapshot
from monitor.state.tracker import State
from monitor.app.view import render
from probes.base import ProbeResult
from rules.model import Severity
from tests.plugins.factories import device, fault as make_fault

DEVICES = [
    device("L1", Kind.LINK, name="城关镇专线", site="中心路口", region="城关镇"),
    device("L2", Kind.LINK, name="河西乡专线", site="河西市场", region="河西乡"),
    *[device(f"C{i}", name=f"摄像机{i}", site="中心路口", region="城关镇", parent="L1") for i in range(20)],
]
INV = Inventory(DEVICES)


def snapshot(language_fault_title="专线河西乡专线时延251 ms，超过200 ms"):
    states = {d.id: State.UP for d in DEVICES} | {"C0": State.DOWN, "C1": State.DOWN}
    latest = {
        "L1": ProbeResult("L1", "icmp", 0, True, None, {"up": True, "rtt_avg_ms": 3.2, "jitter_ms": 0.4, "loss_pct": 0.0}),
        "L2": ProbeResult("L2", "icmp", 0, True, None, {"up": True, "rtt_avg_ms": 251.0, "jitter_ms": 1.5, "loss_pct": 0.0}),
    }
    fault = make_fault(7, rule="link-latency", kind="latency", device_id="L2", severity=Severity.MAJOR,
                       title=language_fault_title, first_seen_ns=1_795_000_000 * 10**9, last_seen_ns=1_795_000_000 * 10**9)
    report = CycleReport("icmp", 3, 1_795_000_000 * 10**9, 1.5, 22, 20, 2, 0, 0)
    return Snapshot(report, tuple(online_rates(DEVICES, states)), states, latest, (fault,))


def text(renderable) -> str:
    console = Console(record=True, width=160, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_chinese_view_shows_region_rates_worst_links_and_faults():
    out = text(render(snapshot(), INV))
    assert "城关镇" in out and "90.00%" in out  # 18 of 20 cameras
    assert "河西乡" in out and "全网" in out
    lines = out.splitlines()
    worst = next(i for i, line in enumerate(lines) if "时延最差" in line)
    # The slow line comes first among the links, with its RTT.
    assert "河西乡专线" in lines[worst + 4] and "251.0" in lines[worst + 4]
    assert "当前故障（1 条）" in out and "严重" in out and "时延251 ms" in out


def test_english_view():
    out = text(render(snapshot("link L2 latency 251 ms"), INV, language="en"))
    assert "Online rate per region" in out and "Open faults (1)" in out and "major" in out


def test_rates_below_95_are_red_and_above_green():
    console = Console(record=True, width=160, force_terminal=True, color_system="truecolor")
    console.print(render(snapshot(), INV))
    html = console.export_html(inline_styles=True)
    # rich's "red" and "green" as exported: #800000 and #008000.
    assert re.search(r'color: #800000[^>]*font-weight: bold">\s*90\.00%', html)
    assert re.search(r'color: #008000[^>]*font-weight: bold">\s*100\.00%', html)


def test_camera_network_service_and_video_rates_side_by_side():
    base = snapshot()
    network = {d.id: State.UP for d in DEVICES}
    video = {f"C{i}": State.UP for i in range(20)} | {"C5": State.DOWN, "C6": State.DOWN, "C7": State.DOWN, "C8": State.DOWN}
    cameras = [d for d in DEVICES if d.kind is Kind.CAMERA]
    rates = (*base.rates, *online_rates(DEVICES, network, "network"), *online_rates(cameras, video, "video"))
    out = text(render(Snapshot(base.cycle, rates, base.states, base.latest, base.open_faults), INV))
    header = next(line for line in out.splitlines() if "摄像机在线率" in line)
    assert "网络" in header and "视频" in header and "服务" not in header  # no ONVIF results: no column
    row = next(line for line in out.splitlines() if line.lstrip("│ ").startswith("城关镇"))
    # contract 90 % (2 cameras down), network 100 %, video 80 % (4 of 20 send no picture)
    assert re.search(r"90\.00%.*100\.00%.*80\.00%", row), row


def test_the_picture_rate_has_its_column_when_measured():
    base = snapshot()
    cameras = [d for d in DEVICES if d.kind is Kind.CAMERA]
    picture = {d.id: State.UP for d in cameras} | {"C3": State.DOWN}
    rates = (*base.rates, *online_rates(cameras, picture, "picture"))
    out = text(render(Snapshot(base.cycle, rates, base.states, base.latest, base.open_faults), INV))
    header = next(line for line in out.splitlines() if "摄像机在线率" in line)
    assert "画面正常" in header and "picture" not in header
    row = next(line for line in out.splitlines() if line.lstrip("│ ").startswith("城关镇"))
    assert "95.00%" in row, row  # 19 of 20 cameras' pictures normal
