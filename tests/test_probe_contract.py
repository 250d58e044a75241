"""The probe contract is complete: every registered probe type declares the basis it feeds and
the hints it offers and learns, and the rest of fleetmon finds them through the registry."""

from __future__ import annotations

import pytest

from monitor.core.model import Basis
from probes import REGISTRY, probes_of


def test_each_basis_is_fed_by_the_probes_that_declare_it():
    """The shipped probes feed what DESIGN.md says; a new probe may join a basis without an edit
    here (membership, not equality)."""
    assert "icmp" in probes_of(Basis.NETWORK)
    assert "onvif" in probes_of(Basis.SERVICE)
    assert {"rtsp", "rtsp_frame"} <= set(probes_of(Basis.VIDEO))
    assert probes_of(Basis.ONLINE) == ()  # combined from the others, fed by none
    assert REGISTRY["snmp"].basis is None  # values for the rules only
    for basis in (Basis.NETWORK, Basis.SERVICE, Basis.VIDEO):  # registry order
        names = probes_of(basis)
        assert list(names) == [n for n in REGISTRY if n in names]


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_probe_declares_basis_offers_and_learns(name: str):
    cls = REGISTRY[name]
    assert cls.name == name
    assert cls.basis is None or isinstance(cls.basis, Basis)
    assert cls.basis is not Basis.ONLINE
    own = cls.measurements[0]
    for hint in cls.offers:  # a hint is a string field of the probe's own measurement
        assert own.fields[hint].type == "string", f"{name} offers {hint}"
    for hint in cls.learns:
        assert callable(getattr(cls, "learn", None)), f"{name} learns {hint} but has no learn()"
        assert any(hint in other.offers for other in REGISTRY.values()), f"nobody offers {hint}, which {name} learns"


def test_the_onvif_stream_uri_is_offered_to_both_rtsp_checks():
    assert REGISTRY["onvif"].offers == ("stream_uri", "sub_stream_uri", "serial")  # serial: for the work orders
    assert [n for n, cls in REGISTRY.items() if "stream_uri" in cls.learns] == ["rtsp", "rtsp_frame"]
    assert [n for n, cls in REGISTRY.items() if "sub_stream_uri" in cls.learns] == ["rtsp_frame"]  # rtsp: the main
