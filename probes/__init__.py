"""Probe types. Adding a probe = a module exposing a Probe class (see probes.base) + its tests
+ one line in REGISTRY."""

from monitor.core.model import Basis
from probes.base import Probe, ProbeResult
from probes.icmp import IcmpProbe
from probes.onvif import OnvifProbe
from probes.rtsp import RtspFrameProbe, RtspProbe
from probes.snmp import SnmpProbe

REGISTRY: dict[str, type[Probe]] = {
    IcmpProbe.name: IcmpProbe,
    OnvifProbe.name: OnvifProbe,
    RtspProbe.name: RtspProbe,
    RtspFrameProbe.name: RtspFrameProbe,
    SnmpProbe.name: SnmpProbe,
}


def probes_of(basis: Basis) -> tuple[str, ...]:
    """Names of the probes whose results feed `basis` (their `Probe.basis`), in REGISTRY order;
    () for Basis.ONLINE, which no probe measures (it is combined from the others)."""
    return tuple(name for name, cls in REGISTRY.items() if cls.basis is basis)


__all__ = ["REGISTRY", "Probe", "ProbeResult", "probes_of"]
