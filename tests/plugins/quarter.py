"""A generated quarter with faults and work orders in a state database, for the report tests:
`quarter` (250 points, session-wide; lab/history.py then lab/duty.py through fleetmon's own code
paths), `quarter_1850` (the Qionglai fleet's size, built by the one test module that asks).

Each is a `Quarter`: the database path, the scenario (its point list), what lab/duty.py added
and wrote. Tests open the database themselves (`async with quarter.open() as assessment`: the
assessment the API and the CLI answer with, its config the lab's work orders, SLA clocks and
the Qionglai scheme) and change nothing in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
import yaml

from lab.duty import FEE_YUAN, RULE_DOWN, RULE_VIDEO, DutyStats, Extras, assessment_config, extend, write_duty
from lab.fleet import POINT_LIST_COLUMNS
from lab.history import Scenario, generate, write
from monitor.assess.assessment import Assessment
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
    async def open(self, scheme: str | None = "qionglai", **kw) -> AsyncIterator[Assessment]:
        """The assessment over the quarter's database, read-only (as the CLI opens it)."""
        cfg = assessment_config(scheme)
        async with StateDB(self.path, read_only=True) as db:
            book = await WorkOrderBook.load(db, self.inventory, cfg.workorders, cfg.clocks(ZONE), timezone=ZONE)
            yield Assessment(db, self.inventory, cfg, book, timezone=ZONE, online_requires=ONLINE, **kw)

    def sources(self, assessment: Assessment, language: str = "zh", **extra) -> Sources:
        return Sources(assessment, language, **extra)

    def write_config(self, folder: Path, **extra: Any) -> Path:
        """config.yaml and points.csv in `folder` for the quarter: its point list, its database,
        the assessment section of `assessment_config()` written as people write it, InfluxDB off;
        `extra`: more top-level sections."""
        with open(folder / "points.csv", "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(POINT_LIST_COLUMNS[:8])
            for d in self.inventory.devices.values():
                writer.writerow([d.id, d.name, d.kind.value, str(d.address), d.site, d.region, d.parent or "",
                                 d.status.value])
        doc = {
            "inventory": {"point_lists": ["points.csv"]},
            "state": {"database": str(self.path)},
            "influxdb": {"enabled": False},
            "assessment": {
                "workorders": {"open_on": [{"rules": [RULE_DOWN, RULE_VIDEO]}], "auto_close": "propose"},
                "sla": {"preset": "qionglai", "policies": [{"clocks": {"arrival": {"within": "4h"}}}]},
                "score": {"scheme": "qionglai", "fee_per_period_yuan": FEE_YUAN},
            },
            **extra,
        }
        path = folder / "config.yaml"
        path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        return path


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
