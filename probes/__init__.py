"""Probe types. Adding a probe = a module exposing a Probe class (see probes.base) + its tests
+ one line in REGISTRY."""

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

__all__ = ["REGISTRY", "Probe", "ProbeResult"]
