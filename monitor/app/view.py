"""Live terminal view of a running daemon (`fleetmon run --view`, used by `make demo`):
per-region online rate against the contract's target with the camera network, service and video
online rates beside it, the worst links against the contract's RTT limit (both
monitor.core.contract) and the open faults.

Rendering is a pure function of a Snapshot so that it can be tested without a terminal.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal
from zoneinfo import ZoneInfo

from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from monitor.app.snapshot import Snapshot
from monitor.fleet.inventory import Inventory
from monitor.core.contract import LINE_RTT_LIMIT_MS, ONLINE_RATE_TARGET_PCT
from monitor.core.model import Kind
from monitor.state.online_rate import ALL, GroupRate
from monitor.state.tracker import State

TEXTS = {
    "zh": {
        "title": "fleetmon 实时监测",
        "cycle": "第 {n} 轮 · 用时 {d:.1f} 秒 · 探测 {t} 台 · 跳过 {s} 轮",
        "regions": f"各区域在线率（目标 ≥ {ONLINE_RATE_TARGET_PCT:g}%）",
        "region": "区域",
        "camera_rate": "摄像机在线率",
        "network": "网络",
        "service": "服务",
        "video": "视频",
        "picture": "画面正常",
        "all_rate": "全部设备在线率",
        "online": "在线",
        "offline": "离线",
        "unreachable": "其中上级故障",
        "fleet": "全网",
        "links": f"时延最差的链路/设备（上限 {LINE_RTT_LIMIT_MS:g} ms）",
        "device": "设备",
        "site": "站点",
        "rtt": "平均时延 ms",
        "jitter": "抖动 ms",
        "loss": "丢包 %",
        "state": "状态",
        "faults": "当前故障（{n} 条）",
        "severity": "级别",
        "fault": "故障",
        "since": "发生时间",
    },
    "en": {
        "title": "fleetmon live",
        "cycle": "cycle {n} · {d:.1f} s · {t} devices probed · {s} skipped",
        "regions": f"Online rate per region (target ≥ {ONLINE_RATE_TARGET_PCT:g} %)",
        "region": "region",
        "camera_rate": "cameras online",
        "network": "network",
        "service": "service",
        "video": "video",
        "picture": "picture normal",
        "all_rate": "all devices online",
        "online": "online",
        "offline": "offline",
        "unreachable": "of which parent down",
        "fleet": "fleet",
        "links": f"Worst links/devices by RTT (limit {LINE_RTT_LIMIT_MS:g} ms)",
        "device": "device",
        "site": "site",
        "rtt": "avg RTT ms",
        "jitter": "jitter ms",
        "loss": "loss %",
        "state": "state",
        "faults": "Open faults ({n})",
        "severity": "severity",
        "fault": "fault",
        "since": "since",
    },
}


def _pct(rate: GroupRate | None) -> Text:
    if rate is None or rate.rate_pct is None:
        return Text("—", style="dim")
    return Text(f"{rate.rate_pct:.2f}%", style="bold green" if rate.rate_pct >= ONLINE_RATE_TARGET_PCT else "bold red")


def render(
    snapshot: Snapshot, inventory: Inventory, *, language: Literal["zh", "en"] = "zh", tz: str = "Asia/Shanghai", worst: int = 8
) -> RenderableType:
    t = TEXTS[language]
    c = snapshot.cycle
    when = datetime.fromtimestamp(c.ts_ns / 1e9, timezone.utc).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S %Z")
    head = Text.assemble(
        (t["title"], "bold"), "  ", when, "\n",
        t["cycle"].format(n=c.cycle, d=c.duration_s, t=c.targets, s=c.cycles_skipped),
    )

    by_key = {(r.scope, r.group, r.kind, r.basis): r for r in snapshot.rates}
    measured = [b for b in ("network", "service", "video", "picture") if any(r.basis == b for r in snapshot.rates)]
    regions = Table(title=t["regions"], title_justify="left", expand=False)
    columns = (t["region"], t["camera_rate"], *(t[b] for b in measured), t["all_rate"], t["online"], t["offline"],
               t["unreachable"])
    for col in columns:
        regions.add_column(col, justify="left" if col == t["region"] else "right")
    unreachable: dict[str, int] = {}
    for device_id, state in snapshot.states.items():
        if state is State.UNREACHABLE:
            region = inventory.devices[device_id].region
            unreachable[region] = unreachable.get(region, 0) + 1
    names = sorted({r.group for r in snapshot.rates if r.scope == "region"})
    for scope, name, label in [("region", n, n) for n in names] + [("fleet", ALL, t["fleet"])]:
        every = by_key.get((scope, name, ALL, "online"))
        if every is None:
            continue
        regions.add_row(
            label,
            _pct(by_key.get((scope, name, Kind.CAMERA.value, "online"))),
            *(_pct(by_key.get((scope, name, Kind.CAMERA.value, b))) for b in measured),
            _pct(every),
            str(every.online),
            str(every.offline),
            str(sum(unreachable.values()) if scope == "fleet" else unreachable.get(name, 0)),
            style="bold" if scope == "fleet" else None,
        )

    links = Table(title=t["links"], title_justify="left")
    for col in (t["device"], t["site"], t["rtt"], t["jitter"], t["loss"], t["state"]):
        links.add_column(col, justify="left" if col in (t["device"], t["site"]) else "right")
    measured = [
        (r.fields.get("rtt_avg_ms", float("inf")), r.fields.get("loss_pct", 100.0), r)
        for r in snapshot.latest.values()
        if inventory.devices[r.device_id].kind is Kind.LINK
    ]
    measured.sort(key=lambda m: (m[0], m[1]), reverse=True)  # no reply (inf) first
    for rtt, loss, r in measured[:worst]:
        device = inventory.devices[r.device_id]
        state = snapshot.states.get(r.device_id, State.UNKNOWN)
        rtt_text = Text("—" if rtt == float("inf") else f"{rtt:.1f}", style="red" if rtt > LINE_RTT_LIMIT_MS else "")
        jitter = r.fields.get("jitter_ms")
        links.add_row(
            device.name,
            device.site,
            rtt_text,
            "—" if jitter is None else f"{jitter:.1f}",
            Text(f"{loss:.0f}", style="red" if loss > 0 else ""),
            Text(state.value, style="green" if state is State.UP else "red"),
        )
    faults = Table(title=t["faults"].format(n=len(snapshot.open_faults)), title_justify="left")
    for col in (t["severity"], t["fault"], t["since"], t["state"]):
        faults.add_column(col)
    zone = ZoneInfo(tz)
    for f in snapshot.open_faults[:worst]:
        since = datetime.fromtimestamp(f.first_seen_ns / 1e9, timezone.utc).astimezone(zone).strftime("%H:%M:%S")
        severity = f.severity.zh if language == "zh" else f.severity.value
        style = "bold red" if f.severity.rank == 0 else "red" if f.severity.rank == 1 else "yellow"
        faults.add_row(Text(severity, style=style), f.title, since, f.state.value)
    return Group(head, regions, links, faults)


class LiveView:
    """Redraws the terminal after each cycle; use as a context manager around the daemon."""

    def __init__(self, inventory: Inventory, *, language: Literal["zh", "en"], tz: str) -> None:
        self._inventory = inventory
        self._language = language
        self._tz = tz
        self._live = Live(Text("fleetmon: waiting for the first cycle …"), auto_refresh=False, screen=False)

    def __enter__(self) -> "LiveView":
        self._live.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._live.__exit__(*exc_info)

    def update(self, snapshot: Snapshot) -> None:
        self._live.update(render(snapshot, self._inventory, language=self._language, tz=self._tz), refresh=True)
