"""Probe types. Adding a probe = a module exposing a Probe class (see probes.base) + its tests
+ one line in REGISTRY; the basis it feeds and the hints it offers or learns are declared on
the class, so availability, the daemon's pipeline and the rules find it from here."""

from monitor.core.model import Basis
from probes.base import Learner, Probe, ProbeResult
from probes.http import HttpProbe
from probes.icmp import IcmpProbe
from probes.nvr import NvrProbe
from probes.onvif import OnvifProbe
from probes.rtsp import RtspFrameProbe, RtspProbe
from probes.snmp import SnmpProbe
from probes.tcp import TcpProbe
from probes.tls import TlsProbe

REGISTRY: dict[str, type[Probe]] = {
    IcmpProbe.name: IcmpProbe,
    OnvifProbe.name: OnvifProbe,
    RtspProbe.name: RtspProbe,
    RtspFrameProbe.name: RtspFrameProbe,
    SnmpProbe.name: SnmpProbe,
    HttpProbe.name: HttpProbe,
    TcpProbe.name: TcpProbe,
    TlsProbe.name: TlsProbe,
    NvrProbe.name: NvrProbe,
}


def probes_of(basis: Basis) -> tuple[str, ...]:
    """Names of the probe types that feed `basis` (Probe.basis), in REGISTRY order: network →
    ("icmp",), service → ("onvif", "http", "tcp", "nvr"), video → ("rtsp", "rtsp_frame");
    online → () (it is combined from the others, no probe feeds it)."""
    return tuple(name for name, cls in REGISTRY.items() if cls.basis is basis)


__all__ = ["REGISTRY", "Learner", "Probe", "ProbeResult", "probes_of"]
