"""A camera whose ONVIF serial changes proposes a replacement (更换) to confirm: the serial comes
as a hint of the ONVIF probe's results (Probe.offers), through the daemon's pipeline, to the
serial watch, which records the proposal in the real work-order book on a real state database."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from monitor.app.pipeline import Pipeline, Running
from monitor.assess.config_workorders import SlaConfig, WorkOrderConfig
from monitor.assess.orders import Source
from monitor.assess.serials import SerialWatch
from monitor.assess.sla import Sla
from monitor.assess.workorders import WorkOrderBook
from monitor.core.model import Basis, Kind
from monitor.fleet.inventory import Inventory
from monitor.state.db import StateDB
from monitor.state.recorder import Recorder
from monitor.state.tracker import StateTracker
from probes.base import ProbeResult
from probes.onvif import OnvifConfig, OnvifProbe
from rules.alerting.config import NotifyConfig
from rules.alerting.service import Alerting
from rules.config import FlappingConfig
from tests.plugins.daemon import until
from tests.plugins.factories import device

INV = Inventory([
    device("C1", Kind.CAMERA, name="东门枪机", serial="SN-1"),
    device("C2", Kind.CAMERA, name="西门枪机"),
    device("C3", Kind.CAMERA, name="南门枪机", serial="SN-3"),
])


@asynccontextmanager
async def book_on(tmp_path: Path) -> AsyncIterator[tuple[StateDB, WorkOrderBook]]:
    async with StateDB(tmp_path / "state.db") as db:
        yield db, await WorkOrderBook.load(db, INV, WorkOrderConfig(), Sla.from_config(SlaConfig(), "Asia/Shanghai"))


async def proposals(book: WorkOrderBook) -> list[tuple[str, str, str, str]]:
    """(order source, device, old serial, new serial) of every proposal recorded."""
    out = []
    for order in await book.orders():
        for event in await book.events(order.ref):
            if event.action.value == "replacement_proposed":
                p = event.payload
                out.append((order.source.value, p["device"], p["old_serial"], p["new_serial"]))
    return out


async def test_a_changed_serial_is_proposed_once_an_unchanged_or_first_one_never(tmp_path: Path) -> None:
    async with book_on(tmp_path) as (_, book):
        open_order = await book.report(["C3"], by="值班员", title="南门枪机图像模糊")
        async with SerialWatch(book, INV) as watch:
            watch.learn("C1", "serial", "SN-1")  # as in the point list
            watch.learn("C2", "serial", "A-100")  # no serial in the point list: first seen
            watch.learn("C2", "serial", " ")  # the device did not tell: ignored
            watch.learn("C1", "stream_uri", "rtsp://x")  # not ours
            watch.learn("C1", "serial", "SN-2")
            watch.learn("C1", "serial", "SN-2")  # every cycle reports it again
            watch.learn("C2", "serial", "A-200")
            watch.learn("C3", "serial", "SN-3b")
        assert watch.last_serial("C1") == "SN-2" and watch.last_serial("C2") == "A-200"
        assert sorted(await proposals(book)) == [
            ("manual", "C3", "SN-3", "SN-3b"),  # on the order already open for it
            ("serial_change", "C1", "SN-1", "SN-2"),
            ("serial_change", "C2", "A-100", "A-200"),
        ]
        assert [p.new_serial for p in (await book.get(open_order.ref)).pending_proposals] == ["SN-3b"]
        async with SerialWatch(book, INV) as after_restart:  # seeded from the point list again
            after_restart.learn("C1", "serial", "SN-2")
        assert len(await proposals(book)) == 3  # the book knows it was proposed


async def test_the_serial_travels_from_an_onvif_result_through_the_pipeline(tmp_path: Path) -> None:
    async with book_on(tmp_path) as (db, book), Recorder(db) as recorder, Alerting(
        INV, db, rules=[], flapping=FlappingConfig(), maintenance=[], notify=NotifyConfig(), language="zh",
        timezone="Asia/Shanghai",
    ) as alerting, SerialWatch(book, INV) as watch:
        await db.start_session(len(INV.devices))
        onvif = OnvifProbe(OnvifConfig())
        running = Running(onvif, StateTracker(INV, "onvif", down_after=1, up_after=1), tuple(INV.devices.values()), 300.0)
        pipeline = Pipeline(INV, {"onvif": running}, alerting=alerting, recorder=recorder, metrics=None,
                            online_requires=[Basis.NETWORK, Basis.VIDEO], listeners=[watch])
        try:
            fields = {"up": True, "serial": "SN-9", "model": "DS-2CD", "stream_uri": "rtsp://198.18.0.9/1"}
            pipeline.on_result(ProbeResult("C1", "onvif", time.time_ns(), True, None, fields))
            found = await until(lambda: book.open_orders(), 5, "the proposal's order")
        finally:
            pipeline.close()
    (order,) = found
    assert order.source is Source.SERIAL_CHANGE and order.devices == ("C1",)
    assert [(p.old_serial, p.new_serial) for p in order.pending_proposals] == [("SN-1", "SN-9")]
