"""What reports read that nothing else did before: the points offline at a past instant
(monitor.assess.offline.offline_at), the faults open in a period (rules.alerting.faults
.faults_between), and the ICMP results of a period summed per device by InfluxDB
(monitor.metrics.results.InfluxResults.icmp_summary; peer: a real influxd)."""

from __future__ import annotations

import pytest

from monitor.assess.offline import offline_at, offline_since, probes_for
from monitor.core.model import Basis
from monitor.fleet.inventory import Inventory
from monitor.metrics.config import InfluxDBConfig
from monitor.metrics.results import IcmpSummary, InfluxResults, ResultsUnavailable
from monitor.state.availability import PICTURE
from monitor.state.db import StateDB
from monitor.state.tracker import State, Transition
from rules.alerting.faults import FaultBook, faults_between
from rules.alerting.maintenance import MaintenanceBook
from rules.base import Condition
from rules.model import Severity
from tests.plugins.factories import device

S = 1_000_000_000
T0 = 1_790_000_000 * S


def tr(device: str, probe: str, at_s: float, old: str, new: str) -> Transition:
    return Transition(device, probe, T0 + int(at_s * S), State(old), State(new), None)


async def test_offline_at_is_offline_since_as_it_was_then(tmp_path):
    async with StateDB(tmp_path / "state.db") as db:
        await db.record([
            tr("C1", "icmp", 0, "unknown", "up"), tr("C1", "icmp", 100, "up", "down"),
            tr("C1", "icmp", 200, "down", "unreachable"),  # still the same run
            tr("C1", "icmp", 300, "unreachable", "up"),
            tr("C2", "icmp", 0, "unknown", "down"),  # down from its first verdict
            tr("C2", "rtsp", 0, "unknown", "up"), tr("C2", "rtsp", 50, "up", "down"),
            tr("C3", "rtsp", 0, "unknown", "up"), tr("C3", "rtsp", 250, "up", "down"),
        ])

        def at(s: float, probes=("icmp", "rtsp")):
            return db.execute(lambda conn: offline_at(conn, probes, T0 + int(s * S)))

        assert await at(99) == {"C2": T0}
        assert await at(150) == {"C1": T0 + 100 * S, "C2": T0}
        assert await at(250) == {"C1": T0 + 100 * S, "C2": T0}  # unreachable continues the run
        assert await at(251, ("rtsp",)) == {"C2": T0 + 50 * S, "C3": T0 + 250 * S}
        assert await at(301) == {"C2": T0, "C3": T0 + 250 * S}
        now = await db.execute(lambda conn: offline_since(conn, ("icmp", "rtsp")))
        assert await at(10_000) == now


async def test_a_picture_basis_is_read_from_the_picture_trackers_transitions(tmp_path):
    """long_offline.bases may list picture (画面正常): its probe is the picture tracker."""
    assert probes_for([Basis.NETWORK, Basis.PICTURE]) == ("icmp", PICTURE)
    async with StateDB(tmp_path / "state.db") as db:
        await db.record([tr("C1", "icmp", 0, "unknown", "up"), tr("C1", PICTURE, 0, "unknown", "up"),
                         tr("C1", PICTURE, 100, "up", "down")])
        probes = probes_for([Basis.PICTURE])
        assert await db.execute(lambda conn: offline_at(conn, probes, T0 + 150 * S)) == {"C1": T0 + 100 * S}


async def test_faults_between_are_those_open_at_some_time_of_the_period(tmp_path):
    inventory = Inventory([device("C1"), device("C2"), device("C3")])
    async with StateDB(tmp_path / "state.db") as db:
        book = await FaultBook.load(db, inventory, [], await MaintenanceBook.load(db, inventory, []))

        def down(d: str) -> Condition:
            return Condition("down", "device_down", f"device:{d}", Severity.MAJOR, f"{d} down", 0, 0, device_id=d)

        await book.apply({("down", "device:C1"): down("C1")}, T0)                          # F1 from 0
        await book.apply({("down", "device:C2"): down("C2")}, T0 + 100 * S)                # F1 resolved, F2
        await book.apply({}, T0 + 200 * S)                                                # F2 resolved
        await book.apply({("down", "device:C3"): down("C3")}, T0 + 300 * S)                # F3, still open

        def db_faults(a: float, b: float):
            return db.execute(lambda conn: faults_between(conn, T0 + int(a * S), T0 + int(b * S)))

        assert [f.id for f in await db_faults(0, 50)] == ["F1"]
        assert [f.id for f in await db_faults(100, 150)] == ["F1", "F2"]  # F1 resolved at 100: open then
        assert [f.id for f in await db_faults(201, 299)] == []
        assert [f.id for f in await db_faults(250, 400)] == ["F3"]
        [f3] = await db_faults(250, 400)
        assert f3.fired_ns == T0 + 300 * S and f3.resolved_ns is None


@pytest.mark.peer
async def test_icmp_summary_is_influxdbs_mean_max_and_count_per_device(influx, influx_db):
    lines = "\n".join([
        f"icmp,device_id=L1 rtt_avg_ms=180,rtt_max_ms=210,loss_pct=0 {T0}",
        f"icmp,device_id=L1 rtt_avg_ms=240,rtt_max_ms=300,loss_pct=20 {T0 + 60 * S}",
        f"icmp,device_id=L2 loss_pct=100 {T0 + 30 * S}",  # no echo came back: no RTT
        f"icmp,device_id=L1 rtt_avg_ms=900,rtt_max_ms=990,loss_pct=0 {T0 + 3600 * S}",  # after the period
    ])
    influx.write(lines, influx_db)
    reader = InfluxResults(InfluxDBConfig(url=influx.url, database=influx_db))
    got = await reader.icmp_summary(T0, T0 + 3600 * S)
    assert got == {
        "L1": IcmpSummary("L1", 210.0, 300.0, 10.0, 2),
        "L2": IcmpSummary("L2", None, None, 100.0, 1),
    }


async def test_icmp_summary_says_why_it_cannot_read():
    with pytest.raises(ResultsUnavailable, match="InfluxDB is disabled"):
        await InfluxResults(InfluxDBConfig(enabled=False)).icmp_summary(T0, T0 + S)
    with pytest.raises(ResultsUnavailable, match="no answer from http://127.0.0.1:9"):
        await InfluxResults(InfluxDBConfig(url="http://127.0.0.1:9", database="x", timeout_s=1)).icmp_summary(T0, T0 + S)
