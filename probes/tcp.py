"""TCP port check: does a service accept connections (a platform's SIP/GB/T 28181 port, an
NVR's SDK port 8000, a database), and how long the handshake takes.

Per device and cycle, one TCP connect to each port the config's `checks` give it (every
matching entry adds its ports), all at once, each bounded by `timeout_s`; the connection is
closed as soon as it is established (nothing is sent). "Up" = every port accepted.

Results: fields of `tcp` (up, ports_open, ports_closed, connect_ms: the slowest open port) and
one `tcp_port` series per port (tag `port`: open, connect_ms). Reasons name the ports:
"port 5060: connection refused; port 8000: timeout (3 s)".

Public API: `TcpConfig`, `TcpCheck`, `TcpProbe`, `MEASUREMENTS`.
"""

from __future__ import annotations

import asyncio
import errno
import time
from typing import Annotated, ClassVar, Self

from pydantic import Field

from monitor.core.config_base import SelectorConfig, Strict
from monitor.core.measurement import DEVICE_TAGS, FieldSpec, MeasurementSpec
from monitor.core.model import Basis, Device, Selector
from probes.base import FieldValue, ProbeResult, Series

Port = Annotated[int, Field(ge=1, le=65_535)]


class TcpCheck(Strict):
    """The ports of the devices `match` selects."""

    match: SelectorConfig
    ports: Annotated[list[Port], Field(min_length=1, max_length=32)]


class TcpConfig(Strict):
    """probes.tcp in config.yaml. Without `checks`, no device is polled."""

    enabled: bool = True
    interval_s: Annotated[float, Field(ge=5, le=86_400)] = 60.0
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 3.0
    """Deadline of each connect."""
    checks: list[TcpCheck] = []


MEASUREMENTS = (
    MeasurementSpec("tcp", "One TCP port check of a device (every port of its `checks`).", DEVICE_TAGS, {
        "up": FieldSpec("boolean", "", "every port accepted the connection"),
        "ports_open": FieldSpec("integer", "ports", "ports that accepted"),
        "ports_closed": FieldSpec("integer", "ports", "ports refused, unreachable or silent"),
        "connect_ms": FieldSpec("float", "ms", "the slowest accepted connect (SYN to established)"),
    }),
    MeasurementSpec("tcp_port", "One port of a TCP check.", {**DEVICE_TAGS, "port": "TCP port number"}, {
        "open": FieldSpec("boolean", "", "the port accepted the connection"),
        "connect_ms": FieldSpec("float", "ms", "SYN to established (open ports only)"),
    }),
)

_ERRNO_REASONS = {
    errno.ECONNREFUSED: "connection refused",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ECONNRESET: "connection reset",
    errno.EACCES: "communication administratively prohibited",
    errno.EPERM: "communication administratively prohibited",
}


class TcpProbe:
    """The `tcp` probe (probes.base.Probe); see the module doc. Basis: service, like `http`: a
    platform's service port accepting connections is its service being up; it polls only the
    devices its `checks` select, so cameras' bases are untouched unless a check names them."""

    name: ClassVar[str] = "tcp"
    Config: ClassVar[type[TcpConfig]] = TcpConfig
    measurements: ClassVar[tuple[MeasurementSpec, ...]] = MEASUREMENTS
    basis: ClassVar[Basis | None] = Basis.SERVICE
    offers: ClassVar[tuple[str, ...]] = ()
    learns: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: TcpConfig) -> None:
        self.cfg = cfg
        self._checks: list[tuple[Selector, TcpCheck]] = [(c.match.selector(), c) for c in cfg.checks]
        self._ports: dict[tuple, tuple[int, ...]] = {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        pass

    def ports_for(self, device: Device) -> tuple[int, ...]:
        """The ports of every check matching the device, in config order, each once."""
        key = (device.region, device.site, device.kind, device.tags)
        ports = self._ports.get(key)
        if ports is None:
            found = [p for selector, check in self._checks if selector.matches(device) for p in check.ports]
            ports = self._ports[key] = tuple(dict.fromkeys(found))
        return ports

    def wants(self, device: Device) -> bool:
        return device.address is not None and bool(self.ports_for(device))

    def budget_s(self, device: Device) -> float:
        """The ports are tried at once: one connect deadline, plus closing."""
        return self.cfg.timeout_s + 0.5

    async def probe(self, device: Device) -> ProbeResult:
        started = time.time_ns()
        ports = self.ports_for(device)
        if device.address is None or not ports:
            return ProbeResult(device.id, self.name, started, False, "no address or no port", {"up": False})
        outcomes = await asyncio.gather(*(self._connect(str(device.address), port) for port in ports))
        series, reasons, times = [], [], []
        for port, (ms, reason) in zip(ports, outcomes):
            fields: dict[str, FieldValue] = {"open": reason is None}
            if reason is None:
                fields["connect_ms"] = ms
                times.append(ms)
            else:
                reasons.append(f"port {port}: {reason}")
            series.append(Series("tcp_port", {"port": str(port)}, fields))
        own: dict[str, FieldValue] = {"up": not reasons, "ports_open": len(times), "ports_closed": len(reasons)}
        if times:
            own["connect_ms"] = max(times)
        return ProbeResult(device.id, self.name, started, not reasons, "; ".join(reasons) or None, own, tuple(series))

    async def _connect(self, host: str, port: int) -> tuple[float, str | None]:
        """(connect ms, None) or (0, reason). The connection is closed at once."""
        t0 = time.perf_counter()
        writer = None
        try:
            async with asyncio.timeout(self.cfg.timeout_s):
                _, writer = await asyncio.open_connection(host, port)
            return round((time.perf_counter() - t0) * 1000, 3), None
        except TimeoutError:
            return 0.0, f"timeout ({self.cfg.timeout_s:g} s)"
        except OSError as exc:
            return 0.0, _ERRNO_REASONS.get(exc.errno or 0, exc.strerror or "connect failed")
        finally:
            if writer is not None:  # an orderly close (FIN), as check_tcp does: no reset in the service's log
                writer.close()
