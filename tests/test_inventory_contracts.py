"""What a point list says of contracts: a line's contracted bandwidth (签约带宽), an expiry date
(到期日期), the URL a platform is checked at (检测地址), and the config's `inventory.renewals`;
good values in their usual spellings, bad ones located at their row and column."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl
import pytest

from monitor.app.config import load_config
from monitor.core.config_base import ConfigError
from monitor.core.model import Kind
from monitor.fleet.inventory import InventoryConfig, InventoryError, load_inventory
from monitor.fleet.values import parse_bandwidth, parse_date

HEADER = "点位编号,点位名称,设备类型,IP地址,站点,乡镇,上级设备,接入端口,签约带宽,到期日期,检测地址"
CORE = "CORE,核心交换机,交换机,10.0.0.1,中心,城区,,,,,"


def csv_file(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "points.csv"
    path.write_text("".join(f"{line}\n" for line in (HEADER, CORE, *rows)), encoding="utf-8-sig")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(InventoryError) as info:
        load_inventory(InventoryConfig(point_lists=[path]))
    return info.value.messages


def test_chinese_columns_of_lines_platforms_and_dates(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path,
        "L1,城关镇专线,专线,10.0.1.1,城关,城关镇,CORE,Gi0/10,10M,,",
        "L2,东湖专线,专线,10.0.2.1,东湖,东湖镇,CORE,Gi0/11,622 Mbps,2027/3/31,",
        "P1,视频平台,平台,10.0.0.10,中心,城区,CORE,,,2027年1月15日,https://platform.example:8443/login",
        "N1,派出所录像机,硬盘录像机,10.0.0.20,中心,城区,CORE,,,,",
    )
    devices = load_inventory(InventoryConfig(point_lists=[path])).devices
    assert devices["L1"].bandwidth_bps == 10_000_000 and devices["L1"].port == "Gi0/10"
    assert devices["L2"].bandwidth_bps == 622_000_000 and devices["L2"].expires == dt.date(2027, 3, 31)
    assert devices["P1"].url == "https://platform.example:8443/login" and devices["P1"].expires == dt.date(2027, 1, 15)
    assert devices["N1"].kind is Kind.NVR
    assert load_inventory(InventoryConfig(point_lists=[path])).renewals[0].key == "device:L2"


@pytest.mark.parametrize(("cells", "problem"), [
    ("10MB,,", "签约带宽: '10MB' is a byte rate: write line rates in bit/s (10M for a 10 Mbit/s line, 80M for 10 MB/s)"),
    ("fast,,", "签约带宽: 'fast' is not a bandwidth (write e.g. 10M, 50Mbps, 622M, 1G)"),
    ("10 furlongs,,", "签约带宽: '10 furlongs': unknown unit 'furlongs' (write e.g. 10M, 50Mbps, 622M, 1G)"),
    ("0M,,", "签约带宽: '0M': a contracted bandwidth must be above zero"),
    ("5000G,,", "签约带宽: '5000G' is above 1 Tbit/s: a typo?"),
    (",2027-02-30,", "到期日期: '2027-02-30' is not a day of the calendar"),
    (",46112,", "到期日期: '46112' is a number, not a date: format the column as a date or write 2027-03-31"),
    (",下个月,", "到期日期: '下个月' is not a date (write 2027-03-31)"),
    (",,ftp://platform.example/", "检测地址: must be an http:// or https:// URL with a host"),
    (",,https://admin:secret@platform.example/", "检测地址: must not carry credentials (user:password@): set them in probes.http"),
])
def test_bad_cells_are_located_and_never_echo_a_url(tmp_path: Path, cells: str, problem: str) -> None:
    path = csv_file(tmp_path, f"L1,专线,专线,10.0.1.1,s,r,CORE,Gi0/1,{cells}")
    messages = problems(path)
    assert messages == [f"{path}:3: {problem}"]
    assert "secret" not in messages[0]


def test_spreadsheet_dates_and_numbers(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["id", "kind", "address", "site", "region", "bandwidth", "expires"])
    sheet.append(["L1", "link", "10.0.1.1", "s", "r", 622, dt.datetime(2027, 3, 31)])  # a date cell, a number
    sheet.append(["L2", "link", "10.0.1.2", "s", "r", "1G", "2027-04-01"])
    path = tmp_path / "points.xlsx"
    book.save(path)
    devices = load_inventory(InventoryConfig(point_lists=[path])).devices
    assert (devices["L1"].bandwidth_bps, devices["L1"].expires) == (622_000_000, dt.date(2027, 3, 31))
    assert (devices["L2"].bandwidth_bps, devices["L2"].expires) == (1_000_000_000, dt.date(2027, 4, 1))


CONFIG = """\
inventory:
  devices:
    - {id: PLT, kind: platform, address: 10.0.0.10, site: s, region: r, expires: 2027-03-31, url: "https://p.example/"}
    - {id: L1, kind: link, address: 10.0.1.1, site: s, region: r, bandwidth: 50M}
  renewals:
    - {name: example.gov.cn, expires: 2027-06-30, what: domain, owner: 信息科}
    - name: 平台授权
      expires: 2027年1月1日
      what: licence
      device: PLT
    - {name: 云主机, expires: 2027-05-01, what: cloud_server, device: NOPE}
"""


def test_config_renewals_and_inline_columns(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.replace(", device: NOPE", ""), encoding="utf-8")
    inventory = load_inventory(load_config(config))
    assert inventory.devices["PLT"].expires == dt.date(2027, 3, 31)  # YAML's own date
    assert inventory.devices["L1"].bandwidth_bps == 50_000_000
    assert [(r.key, r.expires, r.owner, r.device_id) for r in inventory.renewals] == [
        ("device:PLT", dt.date(2027, 3, 31), None, "PLT"),
        ("renewal:example.gov.cn", dt.date(2027, 6, 30), "信息科", None),
        ("renewal:平台授权", dt.date(2027, 1, 1), None, "PLT"),
        ("renewal:云主机", dt.date(2027, 5, 1), None, None),
    ]


def test_a_renewal_of_an_unknown_device_is_located(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    with pytest.raises(InventoryError) as info:
        load_inventory(load_config(config))
    assert info.value.messages == [f"{config}:11: inventory.renewals[2].device: device 'NOPE' not found"]


@pytest.mark.parametrize(("entry", "problem"), [
    ("{name: a, expires: 2027-13-01}", "6:26: '2027-13-01' is not a date (month must be in 1..12)"),
    ("{name: a, expires: 2027-01-01, what: car}", "6: inventory.renewals[0].what: Input should be 'licence'"),
    ("{name: a, expires: 2027-01-01, ownr: x}", "6: inventory.renewals[0].ownr: unknown key, did you mean 'owner'?"),
    ("{name: a, expires: 2027-01-01}\n    - {name: a, expires: 2028-01-01}",
     "5: inventory.renewals: renewal names must be unique: a"),
])
def test_bad_renewals_in_the_config_are_located(tmp_path: Path, entry: str, problem: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"inventory:\n  devices: []\n\n\n  renewals:\n    - {entry}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert info.value.messages[0].startswith(f"{config}:{problem}"), info.value.messages


@pytest.mark.parametrize(("text", "bps"), [
    ("10M", 10**7), ("10m", 10**7), ("10", 10**7), ("50 Mbps", 5 * 10**7), ("622Mbit/s", 622 * 10**6),
    ("100MBPS", 10**8), ("1G", 10**9), ("1.5G", 15 * 10**8), ("512k", 512_000), ("512kbps", 512_000),
    ("100兆", 10**8), ("1千兆", 10**9), ("２０Ｍ", 2 * 10**7), ("2048000bps", 2_048_000),
])
def test_bandwidth_spellings(text: str, bps: int) -> None:
    assert parse_bandwidth(text) == bps


@pytest.mark.parametrize("text", ["10MB", "10 MB/s", "10MBps", "1GB", "10KB/s"])
def test_byte_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is a byte rate"):
        parse_bandwidth(text)


@pytest.mark.parametrize(("text", "date"), [
    ("2027-03-31", dt.date(2027, 3, 31)), ("2027/3/1", dt.date(2027, 3, 1)), ("2027.03.31", dt.date(2027, 3, 31)),
    ("2027年3月31日", dt.date(2027, 3, 31)), ("20270331", dt.date(2027, 3, 31)),
    ("2027-03-31 00:00:00", dt.date(2027, 3, 31)), ("２０２７－０３－３１", dt.date(2027, 3, 31)),
])
def test_date_spellings(text: str, date: dt.date) -> None:
    assert parse_date(text) == date
