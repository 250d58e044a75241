"""The fleet's vocabulary: devices, their kinds and contract status, the bases of "online",
and selectors over them.

Everything here is immutable; the inventory builds these once per (re)load and every other
component only reads them.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Kind(StrEnum):
    """Device kinds of a video-surveillance contract (点位明细表 column `kind`)."""

    CAMERA = "camera"
    SWITCH = "switch"
    UPS = "ups"
    LINK = "link"  # a dedicated line, probed at its far end
    SERVER = "server"
    PLATFORM = "platform"  # video platform / storage cluster front end
    NVR = "nvr"  # network video recorder (网络硬盘录像机): disks and per-channel recording
    AIRCON = "aircon"  # machine-room precision air conditioning (精密空调), SNMP profile
    SENSOR = "sensor"  # temperature/humidity and other environment sensors (温湿度传感器), SNMP profile
    PDU = "pdu"  # switched/metered rack power distribution unit (PDU), SNMP profile


KIND_LABELS: dict[Kind, tuple[str, str]] = {
    Kind.CAMERA: ("摄像机", "camera"),
    Kind.SWITCH: ("交换机", "switch"),
    Kind.UPS: ("UPS", "UPS"),
    Kind.LINK: ("专线", "line"),
    Kind.SERVER: ("服务器", "server"),
    Kind.PLATFORM: ("平台", "platform"),
    Kind.NVR: ("录像机", "NVR"),
    Kind.AIRCON: ("精密空调", "precision AC"),
    Kind.SENSOR: ("温湿度传感器", "sensor"),
    Kind.PDU: ("PDU", "PDU"),
}
"""What people read for a kind: (Chinese, English). The one table alerts, pages and reports use."""


class Status(StrEnum):
    """Contract status of a point. Only `active` points count towards the online rate:
    tenders exclude points under construction (延建) and removed ones (拆除)."""

    ACTIVE = "active"
    CONSTRUCTION = "construction"
    REMOVED = "removed"


class Basis(StrEnum):
    """What "online" is judged on (monitor.state.availability): a probe feeds at most one
    measured basis (probes.base.Probe.basis); `online` is the contract's, combined from them."""

    ONLINE = "online"
    NETWORK = "network"  # 网络在线: answers ICMP echo
    SERVICE = "service"  # 服务在线: its ONVIF device service answers
    VIDEO = "video"  # 视频在线: its RTSP stream is described (and a frame decodes)
    PICTURE = "picture"  # 画面正常: the frame check's video-quality diagnosis found no fault (probes.rtsp_frame.vqd)


@dataclass(frozen=True, slots=True)
class Device:
    """One monitored device (a point, 点位).

    `address` is None only for removed points. `parent` is the id of the device this one
    hangs behind (access switch, link, UPS); it drives down-vs-unreachable.

    As the point list records them (the ONVIF probe reports where the device differs):
    `manufacturer`, `model`, `firmware`, `serial`. `stream_url`: the camera's RTSP URL when
    the point list gives one. `port`: the port of the parent switch this device is plugged
    into (ifName or ifDescr); `uplink`: this device's own uplink port (switches).

    Platform checks and contracts: `url`, the http(s):// address its HTTP check asks (no
    credentials); `bandwidth_bps`, a line's contracted bandwidth (签约带宽) in bit/s; `expires`,
    the local date its licence, subscription or contract runs out (到期日期, valid through that
    day).
    """

    id: str
    name: str
    kind: Kind
    address: IPAddress | None
    site: str
    region: str
    parent: str | None = None
    status: Status = Status.ACTIVE
    lat: float | None = None
    lon: float | None = None
    model: str | None = None
    tags: frozenset[str] = field(default_factory=frozenset)
    manufacturer: str | None = None
    firmware: str | None = None
    serial: str | None = None
    stream_url: str | None = None
    port: str | None = None
    uplink: str | None = None
    url: str | None = None
    bandwidth_bps: int | None = None
    expires: dt.date | None = None

    @property
    def counted(self) -> bool:
        """True when the device counts towards online rates (status active)."""
        return self.status is Status.ACTIVE


@dataclass(frozen=True, slots=True)
class Selector:
    """Selects devices by region, site, kind, tags and point ids; an empty list means "any".

    A device matches when it matches every non-empty criterion; for `tags` it must carry
    all listed tags, for `devices` be one of them.
    """

    region: frozenset[str] = frozenset()
    site: frozenset[str] = frozenset()
    kind: frozenset[Kind] = frozenset()
    tags: frozenset[str] = frozenset()
    devices: frozenset[str] = frozenset()

    def matches(self, device: Device) -> bool:
        return (
            (not self.region or device.region in self.region)
            and (not self.site or device.site in self.site)
            and (not self.kind or device.kind in self.kind)
            and self.tags <= device.tags
            and (not self.devices or device.id in self.devices)
        )

    @classmethod
    def of(
        cls,
        region: Iterable[str] = (),
        site: Iterable[str] = (),
        kind: Iterable[Kind | str] = (),
        tags: Iterable[str] = (),
        devices: Iterable[str] = (),
    ) -> "Selector":
        return cls(
            frozenset(region), frozenset(site), frozenset(Kind(k) for k in kind), frozenset(tags), frozenset(devices)
        )
