"""State tracker: hysteresis, down vs unreachable, order independence, resumed states."""

from monitor.fleet.inventory import Inventory
from monitor.core.model import Kind
from monitor.state.tracker import State, StateTracker
from probes.base import ProbeResult
from tests.plugins.factories import device


def inventory() -> Inventory:
    # link ← switch ← two cameras
    return Inventory(
        [
            device("L", Kind.LINK, site="S1", region="R1"),
            device("SW", Kind.SWITCH, site="S1", region="R1", parent="L"),
            device("C1", site="S1", region="R1", parent="SW"),
            device("C2", site="S1", region="R1", parent="SW"),
        ]
    )


class Clock:
    def __init__(self):
        self.ns = 0

    def result(self, device_id, ok, reason=None):
        self.ns += 1
        return ProbeResult(device_id, "icmp", self.ns, ok, None if ok else (reason or "timeout"))


def test_hysteresis_down_after_n_failures_up_after_m_successes():
    tr = StateTracker(inventory(), "icmp", down_after=3, up_after=2)
    c = Clock()
    assert tr.state("C1") is State.UNKNOWN
    first = tr.observe(c.result("C1", True))
    assert first.new is State.UP and first.old is State.UNKNOWN  # first verdict: one good result
    assert tr.observe(c.result("C1", False)) is None
    assert tr.observe(c.result("C1", False)) is None
    down = tr.observe(c.result("C1", False, "host unreachable"))
    assert (down.old, down.new, down.reason, down.ts_ns) == (State.UP, State.DOWN, "host unreachable", c.ns)
    assert tr.observe(c.result("C1", True)) is None  # one success is not enough
    assert tr.observe(c.result("C1", False)) is None  # and resets the success streak
    assert tr.observe(c.result("C1", True)) is None
    up = tr.observe(c.result("C1", True))
    assert (up.old, up.new, up.reason) == (State.DOWN, State.UP, None)
    assert tr.since_ns("C1") == c.ns


def test_a_lost_reply_now_and_then_never_flaps_the_state():
    tr = StateTracker(inventory(), "icmp", down_after=3, up_after=2)
    c = Clock()
    transitions = [tr.observe(c.result("C1", i % 3 != 2)) for i in range(30)]  # every third fails
    assert [t.new for t in transitions if t] == [State.UP]


def test_cameras_behind_a_dead_switch_are_unreachable_not_down():
    tr = StateTracker(inventory(), "icmp", down_after=1, up_after=1)
    c = Clock()
    for d in ("L", "SW", "C1", "C2"):
        tr.observe(c.result(d, True))
    sw = tr.observe(c.result("SW", False))
    assert sw.new is State.DOWN
    c1 = tr.observe(c.result("C1", False))
    assert c1.new is State.UNREACHABLE and c1.reason == "parent SW is down"
    assert tr.reconcile(c.ns) == []


def test_reconcile_fixes_results_that_arrived_children_first():
    tr = StateTracker(inventory(), "icmp", down_after=1, up_after=1)
    c = Clock()
    for d in ("L", "SW", "C1", "C2"):
        tr.observe(c.result(d, True))
    # Cameras answer the probe before their switch does: they look down at first.
    assert tr.observe(c.result("C1", False)).new is State.DOWN
    assert tr.observe(c.result("C2", False)).new is State.DOWN
    assert tr.observe(c.result("L", False)).new is State.DOWN
    assert tr.observe(c.result("SW", False)).new is State.UNREACHABLE
    fixed = tr.reconcile(c.ns)
    assert {(t.device_id, t.old, t.new) for t in fixed} == {
        ("C1", State.DOWN, State.UNREACHABLE),
        ("C2", State.DOWN, State.UNREACHABLE),
    }
    # The link comes back, the switch is still failing: it is the root cause now.
    tr.observe(c.result("L", True))
    fixed = tr.reconcile(c.ns)
    assert [(t.device_id, t.new) for t in fixed] == [("SW", State.DOWN)]
    assert tr.states() == {"L": State.UP, "SW": State.DOWN, "C1": State.UNREACHABLE, "C2": State.UNREACHABLE}


def test_resumed_states_need_the_full_hysteresis_to_change():
    tr = StateTracker(
        inventory(), "icmp", down_after=3, up_after=2,
        initial={"C1": (State.DOWN, 5), "C2": (State.UP, 6), "GONE": (State.UP, 1)},
    )
    c = Clock()
    assert tr.state("C1") is State.DOWN and tr.since_ns("C1") == 5
    assert tr.observe(c.result("C1", True)) is None
    assert tr.observe(c.result("C1", True)).new is State.UP
    assert tr.observe(c.result("C2", False)) is None  # no spurious unknown → down after a restart
    assert tr.observe(c.result("unknown-device", False)) is None
