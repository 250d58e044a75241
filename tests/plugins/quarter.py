"""A generated quarter with faults and work orders in a state database, for the report tests:
`quarter` (250 points, session-wide; lab/history.py then lab/duty.py through fleetmon's own code
paths), `quarter_1850` (the Qionglai fleet's size, built by the one test module that asks).

Each is a `Quarter`: the database path, the scenario (its point list), what lab/duty.py added
and wrote. Tests open the database themselves (`async with quarter.open() as (db, book)`) and
change nothing in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

import pytest

from lab.duty import DutyStats, Extras, extend, sla, workorder_config, write_duty
from lab.history import Scenario, generate, write
from monitor.assess.config import AvailabilityAssessmentConfig
from monitor.assess.workorders import WorkOrderBook
from monitor.core.model import Basis
from monitor.reports.content.gather import Sources
from monitor.state.db import StateDB

PERIOD = "2026Q3"
ONLINE = (Basis.NETWORK, Basis.VIDEO)
ZONE = "Asia/Shanghai"


@dataclass(frozen=True, slots=True)
class Quarter:
    path: Path
    scenario: Scenario
    extras: Extras
    duty: DutyStats

    @property
    def inventory(self):
        return self.scenario.inventory

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[tuple[StateDB, WorkOrderBook]]:
        async with StateDB(self.path) as db:
            yield db, await WorkOrderBook.load(db, self.inventory, workorder_config(), sla())

    def sources(self, db: StateDB, book: WorkOrderBook, language: str = "zh", **extra) -> Sources:
        return Sources(db, self.inventory, book, AvailabilityAssessmentConfig(), ONLINE, ZONE, language, **extra)


def build_quarter(path: Path, points: int, seed: int = 11) -> Quarter:
    scenario = generate(points, PERIOD, seed=seed)
    extras = extend(scenario, seed)

    async def run() -> DutyStats:
        async with StateDB(path) as db:
            await write(scenario, db)
            return await write_duty(scenario, db, extras, seed=seed)

    quiet = [logging.getLogger(n) for n in ("fleetmon.faults", "fleetmon.workorders")]
    levels = [q.level for q in quiet]
    for q in quiet:  # thousands of faults and orders: their log lines are not what these tests read
        q.setLevel(logging.ERROR)
    try:
        duty = asyncio.run(run())
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)
    return Quarter(path, scenario, extras, duty)


@pytest.fixture(scope="session")
def quarter(tmp_path_factory: pytest.TempPathFactory) -> Quarter:
    return build_quarter(tmp_path_factory.mktemp("quarter") / "state.db", 250)


@pytest.fixture(scope="session")
def quarter_1850(tmp_path_factory: pytest.TempPathFactory) -> Quarter:
    return build_quarter(tmp_path_factory.mktemp("quarter1850") / "state.db", 1850)
