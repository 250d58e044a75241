"""The probe registry: every probe declares the basis it feeds, and `probes_of` reads them."""

from monitor.core.model import Basis
from probes import REGISTRY, probes_of


def test_each_measured_basis_is_fed_by_its_probes_in_registry_order():
    assert probes_of(Basis.NETWORK) == ("icmp",)
    assert probes_of(Basis.SERVICE) == ("onvif",)
    assert probes_of(Basis.VIDEO) == ("rtsp", "rtsp_frame")
    assert probes_of(Basis.ONLINE) == ()  # combined from the others, measured by none


def test_every_probe_declares_a_measured_basis_or_none():
    measured = {Basis.NETWORK, Basis.SERVICE, Basis.VIDEO, None}
    assert all(cls.basis in measured for cls in REGISTRY.values())
    assert REGISTRY["snmp"].basis is None
