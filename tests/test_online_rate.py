"""Online-rate arithmetic: who counts, who is excluded, per scope and kind."""

from functools import partial

from monitor.core.model import Kind, Status
from monitor.state.online_rate import online_rates
from monitor.state.tracker import State
from tests.plugins.factories import device


dev = partial(device, site="S1", region="城关镇")  # a camera of 城关镇/S1 unless told otherwise


def test_rates_per_fleet_region_site_and_kind():
    devices = [
        dev("D1"), dev("D2"), dev("D3"), dev("D4"),          # 城关镇/S1 cameras
        dev("D5", kind=Kind.SWITCH),                        # 城关镇/S1 switch
        dev("D6", region="河西乡", site="S2"), dev("D7", region="河西乡", site="S2"),
        dev("D8", status=Status.CONSTRUCTION),              # 延建: excluded
        dev("D9", status=Status.REMOVED),                   # 拆除: excluded
        dev("D10", region="河西乡", site="S2"),              # not yet decided
    ]
    states = {
        "D1": State.UP, "D2": State.UP, "D3": State.DOWN, "D4": State.UNREACHABLE, "D5": State.UP,
        "D6": State.UP, "D7": State.DOWN, "D8": State.DOWN, "D9": State.DOWN,
    }
    rates = {(r.scope, r.group, r.kind): r for r in online_rates(devices, states)}

    fleet = rates[("fleet", "all", "all")]
    assert (fleet.online, fleet.offline, fleet.unknown, fleet.excluded, fleet.total) == (4, 3, 1, 2, 8)
    assert fleet.rate_pct == 100 * 4 / 7

    cams = rates[("fleet", "all", "camera")]
    assert (cams.online, cams.offline) == (3, 3) and cams.rate_pct == 50.0
    assert rates[("fleet", "all", "switch")].rate_pct == 100.0

    town = rates[("region", "城关镇", "camera")]
    assert (town.online, town.offline, town.excluded) == (2, 2, 2) and town.rate_pct == 50.0
    s2 = rates[("site", "S2", "all")]
    assert (s2.online, s2.offline, s2.unknown) == (1, 1, 1) and s2.rate_pct == 50.0


def test_rate_is_none_while_nothing_is_decided_and_order_is_fleet_region_site():
    rates = online_rates([dev("D1"), dev("D2", region="A", site="B")], {})
    assert all(r.rate_pct is None and r.unknown == r.total for r in rates)
    assert [r.scope for r in rates][:2] == ["fleet", "fleet"] and rates[-1].scope == "site"
    assert [(r.group, r.kind) for r in rates if r.scope == "region"] == [
        ("A", "all"), ("A", "camera"), ("城关镇", "all"), ("城关镇", "camera"),
    ]


def test_a_group_of_only_excluded_devices_has_no_rate():
    rates = online_rates([dev("D1", status=Status.REMOVED)], {"D1": State.UP})
    fleet = rates[0]
    assert fleet.excluded == 1 and fleet.total == 0 and fleet.rate_pct is None


def test_a_group_none_of_whose_devices_its_basis_judged_has_no_rate():
    """Derived states (video UNREACHABLE because the network is down) make no rate on their own."""
    devices = [dev("D1"), dev("D2"), dev("D3", region="A", site="B")]
    states = {"D1": State.UNREACHABLE, "D2": State.UNREACHABLE, "D3": State.UNREACHABLE}
    rates = {(r.scope, r.group, r.kind): r for r in online_rates(devices, states, "video", judged={"D3"})}
    town = rates[("region", "城关镇", "camera")]
    assert (town.offline, town.judged, town.rate_pct) == (2, 0, None)
    assert rates[("region", "A", "camera")].rate_pct == 0.0  # D3 judged: its 0 % is true
    assert rates[("fleet", "all", "all")].judged == 1 and rates[("fleet", "all", "all")].rate_pct == 0.0


def test_a_fleet_tuple_counted_again_and_a_new_tuple_regrouped():
    """The groups of a device tuple are kept between calls (the daemon's fleet, each cycle): the
    same tuple with other states counts anew, and a new tuple (an inventory reload) is
    grouped anew, never with the previous fleet's groups."""
    fleet = (dev("D1"), dev("D2"), dev("D3", site="S2"))
    first = {(r.scope, r.group, r.kind): (r.online, r.offline) for r in online_rates(fleet, {"D1": State.UP})}
    assert first[("site", "S1", "all")] == (1, 0) and first[("site", "S2", "all")] == (0, 0)
    again = {(r.scope, r.group, r.kind): (r.online, r.offline) for r in online_rates(fleet, {"D3": State.DOWN})}
    assert again[("site", "S1", "all")] == (0, 0) and again[("site", "S2", "all")] == (0, 1)
    reloaded = (dev("D1", site="S3"), dev("D9", kind=Kind.SWITCH))
    rates = {(r.scope, r.group, r.kind): (r.online, r.offline) for r in online_rates(reloaded, {"D1": State.UP, "D9": State.UP})}
    assert set(rates) == {(scope, group, kind) for scope, group in (("fleet", "all"), ("region", "城关镇"), ("site", "S3"))
                          for kind in ("all", "camera")} | {("fleet", "all", "switch"), ("region", "城关镇", "switch"),
                                                            ("site", "S1", "all"), ("site", "S1", "switch")}
    assert rates[("fleet", "all", "all")] == (2, 0) and rates[("site", "S3", "camera")] == (1, 0)
