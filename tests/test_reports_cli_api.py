"""`fleetmon report` and GET /api/v1/reports/{kind} over the generated quarter
(tests/plugins/quarter.py): the file each makes, read back (openpyxl, the PDF's first bytes),
equal to the API's own availability and score; bad input with clear errors: a period in the
future, one that cannot be read, an unknown type or format; a reports directory that cannot be
written, with --out still written; a period before any data, said so in the report."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from openpyxl import load_workbook

from monitor.app.api import ApiContext, create_app
from monitor.app.config import load_config
from monitor.app.reports import ReportMaker
from monitor.assess.assessment import Assessment
from monitor.assess.workorders import WorkOrderBook
from monitor.fleet.inventory import load_inventory
from monitor.state.db import StateDB
from rules.alerting.faults import FaultBook
from rules.alerting.maintenance import MaintenanceBook
from tests.plugins.cli import run_cli

REPO = Path(__file__).resolve().parent.parent
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def fleetmon_process(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The console script in a real subprocess (the first test: the command as people run it)."""
    return subprocess.run([sys.executable, "-m", "monitor.app.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})


fleetmon = run_cli  # the same command in this process (tests/plugins/cli.py)


def sheet_column(data: bytes, sheet: str, header: str) -> list:
    """A column of a part sheet (headers on row 3), by its header."""
    ws = load_workbook(io.BytesIO(data))[sheet]
    col = next(c for c in range(1, ws.max_column + 1) if ws.cell(3, c).value == header)
    return [ws.cell(r, col).value for r in range(4, ws.max_row + 1)]


@pytest.fixture(scope="module")
def site(quarter, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("site")
    quarter.write_config(folder, reports={"directory": "reports"})
    return folder


@asynccontextmanager
async def served(folder: Path, tmp_path: Path, *, reports: bool = True) -> AsyncIterator[TestClient]:
    """The HTTP API as the daemon serves it, on a copy of the quarter's database (the daemon's
    own connection writes; the reports read on one of their own, read-only)."""
    db_path = tmp_path / "state.db"
    shutil.copy(load_config(folder / "config.yaml").state.database, db_path)
    (tmp_path / "config.yaml").write_text((folder / "config.yaml").read_text(encoding="utf-8").replace(
        str(load_config(folder / "config.yaml").state.database), str(db_path)), encoding="utf-8")
    shutil.copy(folder / "points.csv", tmp_path / "points.csv")
    cfg = load_config(tmp_path / "config.yaml")
    inventory = load_inventory(cfg)
    async with StateDB(cfg.state.database) as db, StateDB(cfg.state.database, read_only=True) as ro:
        book = await WorkOrderBook.load(db, inventory, cfg.assessment.workorders, cfg.assessment.clocks(cfg.timezone))
        maintenance = await MaintenanceBook.load(db, inventory, [])
        assessment = Assessment(db, inventory, cfg.assessment, book, timezone=cfg.timezone,
                                online_requires=cfg.availability.online_requires)
        ro_book = await WorkOrderBook.load(ro, inventory, cfg.assessment.workorders, cfg.assessment.clocks(cfg.timezone))
        maker = ReportMaker(cfg, Assessment(ro, inventory, cfg.assessment, ro_book, timezone=cfg.timezone,
                                            online_requires=cfg.availability.online_requires))
        ctx = ApiContext(
            inventory=inventory, snapshot=lambda: None, faults=await FaultBook.load(db, inventory, [], maintenance),
            maintenance=maintenance, token=None, language="zh", timezone=cfg.timezone, started_ns=0,
            cycle_interval_s=30.0, workorders=book, assessment=assessment, reports=maker if reports else None,
        )
        async with TestClient(TestServer(create_app(ctx))) as client:
            yield client


# --- the CLI -------------------------------------------------------------------------------------


def test_the_cli_writes_the_report_where_asked_with_the_apis_figures(site, quarter, tmp_path):
    done = fleetmon_process("report", "monthly", "--period", "2026-09", "--format", "xlsx", "--out", str(tmp_path),
                    "-c", "config.yaml", cwd=site)
    assert done.returncode == 0, done.stderr
    path = tmp_path / "monthly_2026-09.xlsx"
    assert done.stdout.splitlines()[0] == str(path)
    assert "摄像机在线率：" in done.stdout and "（目标 95.00%" in done.stdout
    avail = fleetmon_process("availability", "--period", "2026-09", "--scope", "region", "--json", "-c", "config.yaml",
                     cwd=site)
    groups = json.loads(avail.stdout)["groups"]
    rates = {g["group"]: g["figures"]["rate_pct"] / 100 for g in groups}
    data = path.read_bytes()
    regions = sheet_column(data, "区域在线率", "区域")[1:]
    online = sheet_column(data, "区域在线率", "在线率")[1:]
    assert regions == sorted(rates) and online == pytest.approx([rates[r] for r in regions], abs=1e-12)


def test_without_out_the_report_is_kept_in_the_reports_directory(site):
    done = fleetmon("report", "weekly", "--period", "2026-W38", "--format", "xlsx", "-c", "config.yaml", cwd=site)
    assert done.returncode == 0, done.stderr
    path = site / "reports" / "weekly_2026-W38.xlsx"
    assert done.stdout.splitlines()[0] == str(path) and path.stat().st_size > 0


def test_an_unwritable_reports_directory_is_a_clear_error_and_out_still_works(quarter, tmp_path):
    (tmp_path / "reports").write_text("a file where the directory should be")
    quarter.write_config(tmp_path, reports={"directory": "reports/here"})
    done = fleetmon("report", "daily", "--period", "2026-09-20", "--format", "xlsx", "-c", "config.yaml", cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip() == (f"cannot make the reports directory {tmp_path}/reports/here: Not a directory; "
                                   "give --out PATH to write the report elsewhere")
    out = tmp_path / "daily.xlsx"
    done = fleetmon("report", "daily", "--period", "2026-09-20", "--format", "xlsx", "--out", str(out),
                    "-c", "config.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:2] == b"PK"  # an XLSX is a zip


@pytest.mark.parametrize("args, message", [
    (("daily", "--period", "2027-01-05"), "period '2027-01-05' starts in the future"),
    (("monthly", "--period", "2026-13"), "period '2026-13': month must be in 1..12"),
    (("quarterly", "--period", "last quarter"), "period 'last quarter': not one of"),
])
def test_bad_periods_are_clear_errors_with_exit_2(site, args, message):
    done = fleetmon("report", *args, "-c", "config.yaml", cwd=site)
    assert done.returncode == 2 and message in done.stderr and done.stdout == ""


def test_the_default_period_is_the_last_whole_one_and_an_empty_one_says_so(site):
    # The generated quarter is long past: yesterday had no data at all.
    done = fleetmon("report", "daily", "--format", "xlsx", "--lang", "en", "-c", "config.yaml", cwd=site)
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.splitlines()[0])
    assert path.parent == site / "reports" and path.name.startswith("daily_2026-12-")
    assert "Camera online rate: —" in done.stdout
    wb = load_workbook(path)
    note = wb["Online rate per region"]["A2"].value
    assert "No monitoring data could be counted in this period" in note


# --- the API -------------------------------------------------------------------------------------


async def test_the_api_sends_the_file_with_the_apis_own_figures(site, quarter, tmp_path):
    async with served(site, tmp_path) as client:
        resp = await client.get("/api/v1/reports/quarterly", params={"period": "2026Q3", "format": "xlsx"})
        assert resp.status == 200, await resp.text()
        assert resp.content_type == XLSX
        assert resp.headers["Content-Disposition"] == 'attachment; filename="quarterly_2026Q3.xlsx"'
        data = await resp.read()
        score = await (await client.get("/api/v1/score", params={"period": "2026Q3"})).json()
        avail = await (await client.get("/api/v1/availability", params={"period": "2026Q3", "scope": "region"})).json()
        pdf = await client.get("/api/v1/reports/daily", params={"period": "2026-09-20"})
        assert pdf.status == 200 and pdf.content_type == "application/pdf"
        assert (await pdf.read()).startswith(b"%PDF-")
    items = sheet_column(data, "考核得分", "考核项目")
    assert items[:-1] == [i["name"]["zh"] for i in score["items"]] and items[-1] == "合计"
    assert sheet_column(data, "考核得分", "得分")[-1] == score["total"]
    assert sheet_column(data, "服务费核算", "金额（元）")[2] == score["payment"]["payable_yuan"]
    rates = {g["group"]: g["figures"]["rate_pct"] / 100 for g in avail["groups"]}
    regions = sheet_column(data, "区域在线率", "区域")[1:]
    assert sheet_column(data, "区域在线率", "在线率")[1:] == pytest.approx([rates[r] for r in regions], abs=1e-12)


@pytest.mark.parametrize("path, params, status, message", [
    ("/api/v1/reports/daily", {"period": "2027-01-05"}, 400, "starts in the future"),
    ("/api/v1/reports/daily", {"period": "2026-09-20", "format": "docx"}, 400, "query.format"),
    ("/api/v1/reports/fortnightly", {}, 400, "path.kind"),
    ("/api/v1/reports/daily", {"period": "2026-09-20", "color": "red"}, 400, "query.color"),
])
async def test_the_api_refuses_bad_requests_with_a_reason(site, tmp_path, path, params, status, message):
    async with served(site, tmp_path) as client:
        resp = await client.get(path, params=params)
        body = await resp.json()
    assert resp.status == status and message in body["error"]


async def test_without_reports_behind_it_the_api_says_so(site, tmp_path):
    async with served(site, tmp_path, reports=False) as client:
        resp = await client.get("/api/v1/reports/daily")
        error = (await resp.json())["error"]
        doc = await (await client.get("/api/v1/openapi.json")).json()
    assert resp.status == 503 and error == "reports are not available in this API (no state database behind it)"
    ok = doc["paths"]["/api/v1/reports/{kind}"]["get"]["responses"]["200"]["content"]
    assert sorted(ok) == ["application/pdf", XLSX]
    assert ok["application/pdf"]["schema"] == {"$ref": "#/components/schemas/ReportFile"}
    assert doc["components"]["schemas"]["ReportFile"]["format"] == "binary"
