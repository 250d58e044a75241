"""The three onlines (network, service, video) and the contract's online, combined from the
probes' own states."""

import pytest
from pydantic import ValidationError

from monitor.core.model import Basis, Kind
from monitor.state.availability import AvailabilityConfig, combine
from monitor.state.online_rate import online_rates, rates_of_bases
from monitor.state.tracker import State
from probes import REGISTRY

from tests.plugins.factories import device

U, D, X, K = State.UP, State.DOWN, State.UNREACHABLE, State.UNKNOWN


SWITCH, CAM_OK, CAM_NO_VIDEO, CAM_BEHIND, CAM_NEW = (
    device("SW", Kind.SWITCH, site="S", region="R"), *(device(i, site="S", region="R") for i in ("C1", "C2", "C3", "C4"))
)
DEVICES = [SWITCH, CAM_OK, CAM_NO_VIDEO, CAM_BEHIND, CAM_NEW]
CAMERAS = frozenset({"C1", "C2", "C3", "C4"})
POLLED = {"icmp": frozenset(d.id for d in DEVICES), "rtsp": CAMERAS, "onvif": CAMERAS}
TRACKERS = {
    "icmp": {"SW": U, "C1": U, "C2": U, "C3": X, "C4": U},
    "rtsp": {"SW": K, "C1": U, "C2": D, "C3": D, "C4": K},
    "onvif": {"SW": K, "C1": U, "C2": U, "C3": D, "C4": D},
}


def test_each_basis_and_the_default_online():
    bases = combine(DEVICES, TRACKERS, POLLED, AvailabilityConfig().online_requires)
    assert bases[Basis.NETWORK] == TRACKERS["icmp"]
    # A camera offline on the network is unreachable for video and service: the network is the cause.
    assert bases[Basis.VIDEO] == {"C1": U, "C2": D, "C3": X, "C4": K}
    assert bases[Basis.SERVICE] == {"C1": U, "C2": U, "C3": X, "C4": D}
    # Default: network up and RTSP DESCRIBE OK; a switch has no video, so its online is its network.
    assert bases[Basis.ONLINE] == {"SW": U, "C1": U, "C2": D, "C3": X, "C4": K}


def test_online_can_count_ping_only_or_the_service_too():
    ping_only = combine(DEVICES, TRACKERS, POLLED, [Basis.NETWORK])
    assert ping_only[Basis.ONLINE] == TRACKERS["icmp"]
    strict = combine(DEVICES, TRACKERS, POLLED, [Basis.NETWORK, Basis.SERVICE, Basis.VIDEO])
    assert strict[Basis.ONLINE] == {"SW": U, "C1": U, "C2": D, "C3": X, "C4": D}


def test_a_disabled_probe_makes_its_basis_vanish_and_online_falls_back_to_what_is_measured():
    polled = {"icmp": POLLED["icmp"]}
    bases = combine(DEVICES, {"icmp": TRACKERS["icmp"]}, polled, AvailabilityConfig().online_requires)
    assert bases[Basis.VIDEO] == {} and bases[Basis.SERVICE] == {}
    assert bases[Basis.ONLINE] == TRACKERS["icmp"]
    assert bases[Basis.ONLINE] is bases[Basis.NETWORK]  # one table of every device, not two


def test_the_frame_check_is_part_of_video_where_enabled():
    polled = {**POLLED, "rtsp_frame": frozenset({"C1"})}
    trackers = {**TRACKERS, "rtsp_frame": {"SW": K, "C1": D, "C2": K, "C3": K, "C4": K}}
    assert combine(DEVICES, trackers, polled, [Basis.VIDEO])[Basis.VIDEO]["C1"] is D


def test_three_rates_side_by_side_disagree_where_problems_hide():
    bases = combine(DEVICES, TRACKERS, POLLED, AvailabilityConfig().online_requires)
    cams = {b: next(r for r in online_rates([d for d in DEVICES if d.id in s], s, b.value)
                    if r.scope == "fleet" and r.kind == "camera")
            for b, s in bases.items() if s}  # picture: no frame check runs here, it applies to none
    assert cams[Basis.NETWORK].rate_pct == pytest.approx(75.0)  # 3 of 4 answer ping
    assert cams[Basis.VIDEO].rate_pct == pytest.approx(100 / 3)  # 1 of 3 decided sends video
    assert cams[Basis.VIDEO].unknown == 1 and cams[Basis.VIDEO].basis == "video"


@pytest.mark.parametrize("requires, message", [
    (["online"], "online_requires lists measured bases"),
    (["network", "network"], "lists a basis twice"),
    ([], "at least 1 item"),
    (["ping"], "Input should be"),
])
def test_bad_online_requires_is_a_clear_error(requires, message):
    with pytest.raises(ValidationError, match=message):
        AvailabilityConfig(online_requires=requires)


def test_rates_of_bases_count_service_and_video_only_where_they_apply():
    bases = combine(DEVICES, TRACKERS, POLLED, AvailabilityConfig().online_requires)
    fleet = {r.basis: r for r in rates_of_bases(DEVICES, bases) if r.scope == "fleet" and r.kind == "all"}
    assert list(fleet) == ["online", "network", "service", "video"]
    assert fleet["network"].total == 5 and fleet["video"].total == 4  # the switch has no video
    assert (fleet["video"].online, fleet["video"].offline, fleet["video"].unknown) == (1, 2, 1)
    # Without a network probe there is no network rate; online stays, over every device (the
    # switch, which no running probe decides, is unknown).
    alone = combine(DEVICES, {"rtsp": TRACKERS["rtsp"]}, {"rtsp": CAMERAS}, [Basis.VIDEO])
    fleet = {r.basis: r for r in rates_of_bases(DEVICES, alone) if r.scope == "fleet" and r.kind == "all"}
    assert list(fleet) == ["online", "video"] and fleet["online"].total == 5 and fleet["online"].unknown == 2


class _NewVideoCheck:
    """A probe type as a new module would add it: its basis declared on the class."""

    name = "video_check"
    basis = Basis.VIDEO


class _SecondPing:
    name = "tcp_ping"
    basis = Basis.NETWORK


def test_a_registered_probe_feeds_its_declared_basis_with_no_edit_here(monkeypatch):
    monkeypatch.setitem(REGISTRY, _NewVideoCheck.name, _NewVideoCheck)
    polled = {**POLLED, "video_check": frozenset({"C1"})}
    trackers = {**TRACKERS, "video_check": {"SW": K, "C1": D, "C2": K, "C3": K, "C4": K}}
    assert combine(DEVICES, trackers, polled, [Basis.VIDEO])[Basis.VIDEO]["C1"] is D


def test_with_two_network_probes_a_device_is_as_offline_as_the_worst_says(monkeypatch):
    monkeypatch.setitem(REGISTRY, _SecondPing.name, _SecondPing)
    polled = {**POLLED, "tcp_ping": frozenset({"SW", "C1", "C2"})}
    trackers = {**TRACKERS, "tcp_ping": {"SW": U, "C1": D, "C2": K, "C3": U, "C4": U}}
    bases = combine(DEVICES, trackers, polled, AvailabilityConfig().online_requires)
    assert bases[Basis.NETWORK] == {"SW": U, "C1": D, "C2": K, "C3": X, "C4": U}
    assert bases[Basis.VIDEO]["C1"] is X  # offline on the network: the video is not a second problem
