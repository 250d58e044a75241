"""Issue 13, bad input: every hostile config of lab/faults_input.py ends in `check-config` exit 2
with its located error, never a traceback, a hang or gigabytes; and the pieces behind it
(zones, date bounds, the YAML expansion cap, the error cap, bounded secret files, inline
secrets in URLs and headers, device addresses, XLSX formulas and merged cells) one by one."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import stat
from datetime import UTC, datetime
from pathlib import Path

import openpyxl
import pydantic
import pytest
import yaml

from lab.faults_input import CASES, Case, check_config, yaml_bomb
from monitor.app.cli import main
from monitor.assess.periods import PeriodError, parse_instant, parse_period
from monitor.core.config_base import MAX_MESSAGES, ConfigError, expansion_problem, read_secret
from monitor.core.timecheck import check_datetime, check_zone
from monitor.fleet.inventory import InventoryConfig, InventoryError, load_inventory
from rules.alerting.notifiers.webhook import WebhookConfig


@contextlib.contextmanager
def deadline(seconds: int):
    """Fail instead of hanging (a FIFO secret used to block the loader forever)."""

    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def check(path: Path) -> tuple[int, str]:
    err = io.StringIO()
    with deadline(30), contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["check-config", str(path)])
    return code, err.getvalue()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_config_is_a_located_error(case: Case, tmp_path: Path) -> None:
    path = case.write(tmp_path)
    code, stderr = check(path)  # an exception here is the traceback the issue is about
    assert code == 2
    assert case.expect.format(path=path, dir=tmp_path) in stderr, stderr[:2000]


def test_yaml_bomb_in_a_child_costs_seconds_and_megabytes_not_minutes_and_gigabytes(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml_bomb(), encoding="utf-8")
    outcome = check_config(path)
    assert outcome.returncode == 2 and not outcome.traceback
    assert outcome.stderr.count("\n") == 2  # the one located message and the summary, not a million
    assert outcome.peak_rss_mb < 300  # before the cap: 1.3 GB


# --- zones and dates ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Asia", "Asia/", "/etc/passwd", "../zoneinfo/UTC", "A" * 300, "", "Asia/Shang hai", "Nowhere/City"])
def test_zone_names_that_are_no_zone_are_value_errors(name: str) -> None:
    with pytest.raises(ValueError):
        check_zone(name)


@pytest.mark.parametrize("name", ["Asia/Shanghai", "UTC", "America/Argentina/Buenos_Aires", "Etc/GMT+8"])
def test_real_zones_pass(name: str) -> None:
    assert check_zone(name) == name


def test_dates_beyond_2100_and_before_2000_are_refused() -> None:
    assert check_datetime(datetime(2099, 12, 31, 23, 59, tzinfo=UTC)).year == 2099
    for year in (1999, 2100, 2262, 2300, 9999):
        with pytest.raises(ValueError, match="out of range"):
            check_datetime(datetime(year, 6, 1, tzinfo=UTC))


@pytest.mark.parametrize("text", ["9999-12-31", "9999-12", "2300", "2100-01-01..2100-01-02", "9999-12-31..9999-12-31"])
def test_periods_out_of_range_are_period_errors_not_overflow(text: str) -> None:
    with pytest.raises(PeriodError, match="out of range|year"):
        parse_period(text, "Asia/Shanghai", now_ns=5_000_000_000_000_000_000)


def test_period_2099_still_ends_at_2100() -> None:
    period = parse_period("2099", "UTC", now_ns=5_000_000_000_000_000_000)
    assert period.end_ns == int(datetime(2100, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000_000


@pytest.mark.parametrize("text", ["9999-12-31 10:00", "2300-01-01T00:00+08:00"])
def test_instants_out_of_range_are_period_errors(text: str) -> None:
    with pytest.raises(PeriodError, match="out of range"):
        parse_instant(text, "Asia/Shanghai")


# --- YAML and the error list -----------------------------------------------------------------


def test_expansion_is_counted_through_shared_nodes_once() -> None:
    # 20 levels of "twice the one before": 2**20 nodes expanded from 21 lines.
    text = "a0: &a0 [x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]\n" for i in range(1, 21))
    where, why = expansion_problem(yaml.compose(text), limit=100_000)
    assert "expands to more than 100,000 nodes" in why and where.line == 16  # the first level over the limit
    assert expansion_problem(yaml.compose(text), limit=10_000_000) is None


def test_error_list_is_capped_with_a_count_of_the_rest() -> None:
    exc = ConfigError(f"config.yaml:{i}: problem" for i in range(1, 1001))
    assert len(exc.messages) == MAX_MESSAGES + 1 and exc.total == 1000
    assert exc.messages[-1] == f"… and {1000 - MAX_MESSAGES} more problems"


def test_many_bad_rows_print_the_first_ones_and_the_count(tmp_path: Path) -> None:
    rows = "".join(f"cam{i},camera,not-an-ip,s,r,\n" for i in range(500))
    (tmp_path / "points.csv").write_text("id,kind,address,site,region,parent\n" + rows, encoding="utf-8")
    path = tmp_path / "config.yaml"
    path.write_text("inventory:\n  point_lists: [points.csv]\n", encoding="utf-8")
    code, stderr = check(path)
    lines = stderr.splitlines()
    assert code == 2 and len(lines) == MAX_MESSAGES + 2
    assert lines[-2] == f"… and {500 - MAX_MESSAGES} more problems" and lines[-1] == f"{path}: 500 problems, nothing loaded"


# --- secret files --------------------------------------------------------------------------------


def test_secret_file_limits(tmp_path: Path) -> None:
    exact = tmp_path / "exact"
    exact.write_bytes(b"k" * (64 * 1024))
    assert read_secret(None, exact, "key").get_secret_value() == "k" * 64 * 1024
    over = tmp_path / "over"
    over.write_bytes(b"k" * (64 * 1024 + 1))
    with pytest.raises(ValueError, match="larger than 64 KiB"):
        read_secret(None, over, "key")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    with deadline(5), pytest.raises(ValueError, match="is a FIFO"):
        read_secret(None, fifo, "key")
    with pytest.raises(ValueError, match="cannot read .*No such file"):
        read_secret(None, tmp_path / "missing", "key")


# --- inline secrets --------------------------------------------------------------------------


def test_webhook_api_key_header_comes_from_the_token(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("k-123\n")
    cfg = WebhookConfig(name="h", type="webhook", url="http://127.0.0.1/h?source=fleetmon",
                        token_file=tmp_path / "key", token_header="X-Api-Key", headers={"X-Site": "城区"})
    assert cfg.token.get_secret_value() == "k-123" and cfg.token_header == "X-Api-Key"
    with pytest.raises(pydantic.ValidationError, match="carries the token"):
        WebhookConfig(name="h", type="webhook", url="http://127.0.0.1/h", token_file=tmp_path / "key",
                      token_header="X-Site", headers={"X-Site": "城区"})
    with pytest.raises(pydantic.ValidationError) as info:
        WebhookConfig(name="h", type="webhook", url="http://127.0.0.1/h?sign=s3cr3t")
    assert "s3cr3t" not in str(info.value)


# --- point lists -------------------------------------------------------------------------------


def test_loopback_devices_need_the_explicit_opt_in() -> None:
    devices = [{"id": "LAB", "kind": "server", "address": "127.0.0.1", "site": "s", "region": "r"}]
    with pytest.raises(InventoryError, match="loopback"):
        load_inventory(InventoryConfig(devices=devices))
    assert str(load_inventory(InventoryConfig(devices=devices, allow_loopback=True)).devices["LAB"].address) == "127.0.0.1"


def test_point_list_row_with_a_broadcast_address_is_located(tmp_path: Path) -> None:
    path = tmp_path / "points.csv"
    path.write_text("编号,类型,IP地址,站点,乡镇\nCAM-1,摄像机,10.0.0.1,一,城关\nCAM-2,摄像机,255.255.255.255,一,城关\n", encoding="utf-8")
    with pytest.raises(InventoryError) as info:
        load_inventory(InventoryConfig(point_lists=[path]))
    assert info.value.messages == [f"{path}:3: IP地址: 255.255.255.255 is the broadcast address, not a device's"]


def test_merged_site_and_town_cells_fill_every_row_of_the_merge(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["XX县雪亮工程点位明细表"])
    sheet.merge_cells("A1:F1")  # the title row, merged across: still skipped as a title
    sheet.append(["编号", "类型", "IP地址", "站点", "乡镇", "上级"])
    sheet.append(["SW-1", "交换机", "10.1.0.1", "人民广场", "城关镇", None])
    sheet.append(["CAM-1", "摄像机", "10.1.0.2", None, None, "SW-1"])
    sheet.append(["CAM-2", "摄像机", "10.1.0.3", None, None, "SW-1"])
    sheet.append(["CAM-3", "摄像机", "10.2.0.2", "中心小学", "河西乡", None])
    sheet.merge_cells("D3:D5")
    sheet.merge_cells("E3:E5")
    path = tmp_path / "points.xlsx"
    book.save(path)
    fleet = load_inventory(InventoryConfig(point_lists=[path]))
    assert [(d.id, d.site, d.region) for d in fleet.devices.values()] == [
        ("SW-1", "人民广场", "城关镇"), ("CAM-1", "人民广场", "城关镇"), ("CAM-2", "人民广场", "城关镇"),
        ("CAM-3", "中心小学", "河西乡"),
    ]


def test_formula_with_a_saved_value_counts_with_it(tmp_path: Path) -> None:
    """The same sheet as Excel saves it: the formula and its value (<f>A2</f><v>SW-1</v>)."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["编号", "类型", "IP地址", "站点", "乡镇", "上级"])
    sheet.append(["SW-1", "交换机", "10.1.0.1", "一", "城关镇", None])
    sheet.append(["CAM-1", "摄像机", "10.1.0.2", "一", "城关镇", "=A2"])
    path = tmp_path / "points.xlsx"
    book.save(path)
    _save_cached_value(path, "F3", "SW-1")
    assert load_inventory(InventoryConfig(point_lists=[path])).devices["CAM-1"].parent == "SW-1"


def _save_cached_value(path: Path, ref: str, value: str) -> None:
    """Rewrite the sheet XML so that the formula cell `ref` carries a saved string value, as
    Excel writes it (t="str")."""
    import zipfile

    with zipfile.ZipFile(path) as src:
        parts = {name: src.read(name) for name in src.namelist()}
    sheet = "xl/worksheets/sheet1.xml"
    xml = parts[sheet].decode()
    start = xml.index(f'<c r="{ref}"')
    end = xml.index("</c>", start) + len("</c>")
    formula = xml[xml.index("<f>", start) : xml.index("</f>", start) + len("</f>")]
    parts[sheet] = (xml[:start] + f'<c r="{ref}" t="str">{formula}<v>{value}</v></c>' + xml[end:]).encode()
    with zipfile.ZipFile(path, "w") as dst:
        for name, data in parts.items():
            dst.writestr(name, data)
