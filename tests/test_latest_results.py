"""monitor.app.latest.LatestResults: the pipeline's latest result per device, kept compactly,
reads back as the ProbeResult that was put (fields in order, series, reason, confirmations)."""

from __future__ import annotations

import pytest

from monitor.app.latest import LatestResults
from probes.base import ProbeResult, Series

ICMP_FIELDS = {"up": True, "sent": 3, "received": 3, "loss_pct": 0.0, "payload_bytes": 56,
               "rtt_min_ms": 0.412, "rtt_avg_ms": 0.5, "rtt_max_ms": 0.61, "jitter_ms": 0.099}


def test_a_result_reads_back_equal_whatever_it_carries() -> None:
    latest = LatestResults("snmp")
    port = Series("snmp_port", {"interface": "Gi0/1"}, {"oper_up": True, "in_errors": 7})
    full = ProbeResult("sw1", "snmp", 1_700_000_000_000_000_000, False, "timeout", {"up": False, "note": "x"},
                       (port,), confirmations=2)
    bare = ProbeResult("sw2", "snmp", 5, True)
    latest.put(full)
    latest.put(bare)
    assert latest["sw1"] == full and latest["sw2"] == bare
    assert list(latest["sw1"].fields) == ["up", "note"]  # order kept, as InfluxDB lines are written
    assert latest["sw1"].series[0].tags == {"interface": "Gi0/1"}
    assert list(latest) == ["sw1", "sw2"] and len(latest) == 2 and "sw1" in latest and "sw3" not in latest
    assert latest.get("sw3") is None
    with pytest.raises(KeyError):
        latest["sw3"]


def test_a_newer_result_replaces_the_one_before() -> None:
    latest = LatestResults("icmp")
    first = ProbeResult("c1", "icmp", 1, True, None, ICMP_FIELDS)
    latest.put(first)
    down = ProbeResult("c1", "icmp", 2, False, "timeout", {"up": False, "sent": 3, "received": 0, "loss_pct": 100.0,
                                                           "payload_bytes": 56})
    latest.put(down)
    assert latest["c1"] == down and len(latest) == 1


def test_values_read_back_with_their_types() -> None:
    """Packed values come back as the same types (a bool stays a bool, an int an int, not 1.0);
    text and integers beyond 64 bits, which do not pack, come back too."""
    latest = LatestResults("http")
    odd = {"up": True, "status": 200, "ms": 12.0, "big": 2**70, "neg": -(2**63), "zero": -0.0}
    latest.put(ProbeResult("w1", "http", 1, True, None, odd))
    latest.put(ProbeResult("w2", "http", 1, True, None, {"up": True, "status": 200, "ms": 12.0, "big": 2**62,
                                                        "neg": -(2**63), "zero": -0.0}))
    latest.put(ProbeResult("w3", "http", 1, True, None, {"up": False, "server": "nginx"}))
    assert dict(latest["w1"].fields) == odd
    assert latest["w2"].fields["big"] == 2**62 and str(latest["w2"].fields["zero"]) == "-0.0"
    assert latest["w3"].fields == {"up": False, "server": "nginx"}
    assert type(latest["w2"].fields["up"]) is bool and type(latest["w2"].fields["status"]) is int
    assert isinstance(latest._rows["w2"][2], bytes) and isinstance(latest._rows["w3"][2], tuple)


def test_results_of_one_shape_share_their_field_names() -> None:
    latest = LatestResults("icmp")
    for i in range(3):
        latest.put(ProbeResult(f"c{i}", "icmp", i, True, None, dict(ICMP_FIELDS)))
    names = {id(row[1]) for row in latest._rows.values()}
    assert len(names) == 1


def test_a_result_of_another_probe_is_refused() -> None:
    latest = LatestResults("icmp")
    with pytest.raises(ValueError, match="a http result among the icmp results"):
        latest.put(ProbeResult("c1", "http", 1, True))
    assert len(latest) == 0


def test_time_verdict_and_confirmations_are_packed_with_the_values() -> None:
    latest = LatestResults("icmp")
    result = ProbeResult("c1", "icmp", 1_764_000_000_123_456_789, False, "timeout", dict(ICMP_FIELDS, up=False),
                         confirmations=3)
    latest.put(result)
    row = latest._rows["c1"]
    assert len(row) == 4 and isinstance(row[2], bytes)  # no int or bool objects of its own
    assert latest["c1"] == result and latest["c1"].confirmations == 3 and latest["c1"].ok is False
