"""ICMP echo probe (RFC 792, RFC 4443): fleetmon's own engine. BEING WRITTEN: interface fixed below."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from monitor.config_base import SelectorConfig, Strict
from monitor.model import Device
from probes.base import ProbeResult


class IcmpOverride(Strict):
    """Per-selector changes to the ICMP defaults, e.g. 20,000-byte pings on links."""

    match: SelectorConfig
    count: Annotated[int, Field(ge=1, le=100)] | None = None
    echo_interval_ms: Annotated[float, Field(ge=1, le=60_000)] | None = None
    timeout_s: Annotated[float, Field(gt=0, le=60)] | None = None
    retries: Annotated[int, Field(ge=0, le=10)] | None = None
    payload_size: Annotated[int, Field(ge=0, le=65_000)] | None = None


class IcmpConfig(Strict):
    enabled: bool = True
    interval_s: Annotated[float, Field(ge=1, le=86_400)] = 30.0
    """Probe cycle: every device is pinged once per interval."""
    count: Annotated[int, Field(ge=1, le=100)] = 3
    """Echo requests per device per cycle."""
    echo_interval_ms: Annotated[float, Field(ge=1, le=60_000)] = 200.0
    """Spacing of the echo requests to one device."""
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    """How long to wait for each echo reply."""
    retries: Annotated[int, Field(ge=0, le=10)] = 0
    """Extra echo requests, one after another, when none of the `count` echoes was answered."""
    payload_size: Annotated[int, Field(ge=0, le=65_000)] = 56
    """ICMP payload bytes per echo request (56 like ping; up to 20,000 for link tests)."""
    packets_per_second: Annotated[float, Field(ge=1, le=1_000_000)] = 5000.0
    """Pacing of all echo requests the daemon sends (all targets together)."""
    mode: Literal["auto", "raw", "dgram"] = "auto"
    """raw sockets (root/CAP_NET_RAW), datagram ICMP sockets (net.ipv4.ping_group_range), or auto."""
    overrides: list[IcmpOverride] = []


class IcmpProbe:
    name: ClassVar[str] = "icmp"
    Config: ClassVar[type[IcmpConfig]] = IcmpConfig

    def __init__(self, cfg: IcmpConfig) -> None:
        self.cfg = cfg

    async def __aenter__(self) -> "IcmpProbe":
        raise NotImplementedError

    async def __aexit__(self, *exc_info: object) -> None:
        raise NotImplementedError

    def budget_s(self, device: Device) -> float:
        raise NotImplementedError

    async def probe(self, device: Device) -> ProbeResult:
        raise NotImplementedError
