"""load_inventory and Inventory: point lists in CSV (UTF-8, BOM, GB18030, UTF-16) and XLSX,
inline devices, every bad-row kind with its exact "file:line: column: reason", and the
inventory's queries."""

from __future__ import annotations

import ipaddress
import zipfile
from pathlib import Path

import openpyxl
import pytest

from monitor.app.config import load_config
from monitor.fleet.inventory import InventoryConfig
from monitor.fleet.inventory import Inventory, InventoryError, load_inventory
from monitor.core.model import Device, Kind, Selector, Status
from tests.plugins.factories import device

HEADER = "id,name,kind,address,site,region,parent,status,lat,lon,model,tags"
SWITCH = "sw1,Switch 1,switch,10.0.0.1,site-a,north,,,,,,"  # a good row, line 2 below HEADER


def csv_file(tmp_path: Path, *rows: str, header: str = HEADER, name: str = "points.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes("".join(f"{line}\n" for line in (header, *rows)).encode(encoding))
    return path


def load(*point_lists: Path, devices: list[dict] | None = None) -> Inventory:
    return load_inventory(InventoryConfig(point_lists=list(point_lists), devices=devices or []))


def problems(*point_lists: Path, devices: list[dict] | None = None) -> list[str]:
    with pytest.raises(InventoryError) as info:
        load(*point_lists, devices=devices)
    return info.value.messages


# --- good input -----------------------------------------------------------------------------


def test_good_csv(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path,
        SWITCH,
        "cam1,,Camera,10.0.0.2,site-a,north,sw1,construction,30.5,114.25,DS-2CD3T46WDV3-L,a; b|c",
        "cam2,Cam 2, camera ,2001:DB8::0002,site-a,north,sw1,active,,,,",
        "old,,camera,,site-a,north,sw1,removed,,,,",
    )
    inventory = load(path)
    assert list(inventory.devices) == ["sw1", "cam1", "cam2", "old"]
    assert inventory.sources == (str(path),)
    assert inventory.devices["cam1"] == Device(
        id="cam1",
        name="cam1",  # name defaults to the id
        kind=Kind.CAMERA,
        address=ipaddress.IPv4Address("10.0.0.2"),
        site="site-a",
        region="north",
        parent="sw1",
        status=Status.CONSTRUCTION,
        lat=30.5,
        lon=114.25,
        model="DS-2CD3T46WDV3-L",
        tags=frozenset({"a", "b", "c"}),
    )
    assert inventory.devices["sw1"].status is Status.ACTIVE and inventory.devices["sw1"].parent is None
    assert inventory.devices["cam2"].address == ipaddress.IPv6Address("2001:db8::2")
    assert inventory.devices["old"].address is None


CHINESE = [
    "序号,点位编号,点位名称,设备类型,IP地址,站点,乡镇,上级设备,建设状态,经度,纬度,设备型号,标签,备注",
    "1,SW-01,中心路口交换机,交换机,10.1.0.1,中心路口,城关镇,,在用,,,,接入,",
    "2,CAM-01,中心路口东向,枪机,10.1.0.11,中心路口,城关镇,SW-01,正常,114.30,30.59,DS-2CD3T46WDV3-L,新建，人脸,",
    "3,CAM-02,北环路口,球机,10.1.0.12,中心路口,城关镇,SW-01,延建,,,,新建,道路施工",
    "4,CAM-03,老车站,摄像机,,中心路口,城关镇,SW-01,已拆除,,,,,2024年拆除",
]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-8", "gb18030", "utf-16"])
def test_chinese_headers_and_values_in_every_encoding(tmp_path: Path, encoding: str) -> None:
    path = csv_file(tmp_path, *CHINESE[1:], header=CHINESE[0], encoding=encoding)
    inventory = load(path)
    assert [(d.id, d.kind, d.status) for d in inventory.devices.values()] == [
        ("SW-01", Kind.SWITCH, Status.ACTIVE),
        ("CAM-01", Kind.CAMERA, Status.ACTIVE),
        ("CAM-02", Kind.CAMERA, Status.CONSTRUCTION),
        ("CAM-03", Kind.CAMERA, Status.REMOVED),
    ]
    cam = inventory.devices["CAM-01"]
    assert (cam.name, cam.region, cam.site, cam.parent) == ("中心路口东向", "城关镇", "中心路口", "SW-01")
    assert (cam.lat, cam.lon, cam.tags) == (30.59, 114.30, frozenset({"新建", "人脸"}))


def test_tab_separated_utf16_as_excel_saves_unicode_text(tmp_path: Path) -> None:
    path = csv_file(tmp_path, *(r.replace(",", "\t") for r in CHINESE[1:]), header=CHINESE[0].replace(",", "\t"),
                    name="points.txt", encoding="utf-16")
    assert list(load(path).devices) == ["SW-01", "CAM-01", "CAM-02", "CAM-03"]


def test_header_matching_ignores_case_spaces_and_full_width_forms(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "a,camera,10.0.0.1,s,r", header="\ufeff ID ,Kind,ＩＰ 地址,SITE,区 域")
    assert load(path).devices["a"].address == ipaddress.IPv4Address("10.0.0.1")


@pytest.mark.parametrize(
    ("value", "kind"),
    [("摄像机", Kind.CAMERA), ("摄像头", Kind.CAMERA), ("枪机", Kind.CAMERA), ("球机", Kind.CAMERA),
     ("交换机", Kind.SWITCH), ("UPS", Kind.UPS), ("不间断电源", Kind.UPS), ("链路", Kind.LINK), ("专线", Kind.LINK),
     ("服务器", Kind.SERVER), ("存储", Kind.SERVER), ("平台", Kind.PLATFORM), ("PLATFORM", Kind.PLATFORM)],
)
def test_kind_aliases(value: str, kind: Kind) -> None:
    inventory = load(devices=[{"id": "x", "kind": value, "address": "10.0.0.1", "site": "s", "region": "r"}])
    assert inventory.devices["x"].kind is kind


@pytest.mark.parametrize(
    ("value", "status"),
    [("在用", Status.ACTIVE), ("正常", Status.ACTIVE), ("启用", Status.ACTIVE), ("在建", Status.CONSTRUCTION),
     ("延建", Status.CONSTRUCTION), ("拆除", Status.REMOVED), ("已拆除", Status.REMOVED), ("Removed", Status.REMOVED)],
)
def test_status_aliases(value: str, status: Status) -> None:
    inventory = load(devices=[{"id": "x", "kind": "ups", "address": "10.0.0.1", "site": "s", "region": "r",
                               "status": value}])
    assert inventory.devices["x"].status is status


def test_title_rows_above_the_header_are_skipped_and_lines_stay_true(tmp_path: Path) -> None:
    path = tmp_path / "points.csv"
    path.write_text("XX县雪亮工程点位明细表,,,,\n\nid,kind,address,site,region\na,camera,10.0.0.1,s,r\nb,plane,10.0.0.2,s,r\n")
    assert problems(path) == [f"{path}:5: kind: unknown kind 'plane' (expected camera, switch, ups, link, server, platform, nvr, aircon, sensor, pdu)"]


def test_quoted_multiline_cell_keeps_line_numbers(tmp_path: Path) -> None:
    path = csv_file(tmp_path, 'a,"two\nlines",camera,10.0.0.1,s,r,,,,,,', "b,,camera,10.0.0.x,s,r,,,,,,")
    assert problems(path) == [f"{path}:4: address: '10.0.0.x' is not an IPv4 or IPv6 address"]


def test_ignorable_columns_are_skipped(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "1,a,camera,10.0.0.1,s,r,anything,note", header="序号,id,kind,address,site,region,备注,Remark")
    assert list(load(path).devices) == ["a"]


# --- XLSX -----------------------------------------------------------------------------------


def xlsx_file(tmp_path: Path, rows: list[list[object]], name: str = "points.xlsx", title: str | None = None,
              second_sheet: list[list[object]] | None = None) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    if title is not None:
        sheet.append([title])
        sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(rows[0]))
    for row in rows:
        sheet.append(row)
    if second_sheet is not None:
        other = book.create_sheet("点位明细")
        for row in second_sheet:
            other.append(row)
    path = tmp_path / name
    book.save(path)
    return path


XLSX_HEADER: list[object] = ["点位编号", "点位名称", "设备类型", "IP地址", "站点", "乡镇", "上级设备", "纬度", "经度"]


def test_xlsx_with_title_row_numeric_ids_and_numbers(tmp_path: Path) -> None:
    path = xlsx_file(
        tmp_path,
        [XLSX_HEADER, [1001, "交换机A", "交换机", "10.2.0.1", "站A", "东湖镇", None, 30.51, 114.4],
         [1002, None, "球机", "10.2.0.2", "站A", "东湖镇", 1001, 30.5123, 114.4077]],
        title="东湖镇点位明细表",
    )
    inventory = load(path)
    assert list(inventory.devices) == ["1001", "1002"]
    cam = inventory.devices["1002"]
    assert (cam.parent, cam.name, cam.kind, cam.lat, cam.lon) == ("1001", "1002", Kind.CAMERA, 30.5123, 114.4077)


def test_xlsx_whole_number_stored_as_float_reads_without_point_zero(tmp_path: Path) -> None:
    path = xlsx_file(tmp_path, [XLSX_HEADER, [1001, "交换机A", "交换机", "10.2.0.1", "站A", "东湖镇", None, None, None]])
    # Excel writes whole numbers as "1001", other tools as "1001.0", which openpyxl reads as a float.
    rewritten = tmp_path / "rewritten.xlsx"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(rewritten, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                assert b"<v>1001</v>" in data
                data = data.replace(b"<v>1001</v>", b"<v>1001.0</v>")
            dst.writestr(item, data)
    assert list(load(rewritten).devices) == ["1001"]


def test_xlsx_errors_name_the_row_and_the_header_as_written(tmp_path: Path) -> None:
    path = xlsx_file(
        tmp_path,
        [XLSX_HEADER, [1001, None, "交换机", "10.2.0.1", "站A", "东湖镇"], [None],  # row 4 is empty
         [34010200001320000001, None, "球机", "10.2.0.2", "站A", "东湖镇"],
         [1003, None, "飞机", "10.2.0.3", "站A", "东湖镇", 9999]],
        title="东湖镇点位明细表",
    )
    assert problems(path) == [
        f"{path}:5: 点位编号: number too long for Excel to keep every digit: store the column as text",
        f"{path}:6: 设备类型: unknown kind '飞机' (expected camera, switch, ups, link, server, platform, nvr, aircon, sensor, pdu)",
        f"{path}:6: 上级设备: parent '9999' not found",
    ]


def test_xlsx_named_sheet(tmp_path: Path) -> None:
    path = xlsx_file(
        tmp_path, [["封面"]],
        second_sheet=[["id", "kind", "address", "site", "region"], ["a", "ups", "10.0.0.1", "s", "r"],
                      ["b", "ups", "10.0.0.1", "s", "r"]],
    )
    named = Path(f"{path}#点位明细")
    assert problems(named) == [f"{named}:3: address: duplicate address 10.0.0.1 (first at {named}:2, id a)"]
    assert problems(Path(f"{path}#nope")) == [f"{path}#nope: no sheet named 'nope' (sheets: Sheet, 点位明细)"]
    assert problems(path) == [f"{path}: no header row: none of the first 10 rows names two known columns "
                              "(id, name, kind, address, site, region, parent, status, lat, lon, model, manufacturer, firmware, "
                                  "serial, stream_url, port, uplink, url, bandwidth, expires, tags)"]


def test_xlsx_column_without_header_is_named_by_letter(tmp_path: Path) -> None:
    path = xlsx_file(tmp_path, [["id", "kind", "address", "site", "region"], ["a", "ups", "10.0.0.1", "s", "r", "x"]])
    assert problems(path) == [f"{path}:2: column F: value in a column without header"]


# --- bad rows -------------------------------------------------------------------------------

KINDS = "(expected camera, switch, ups, link, server, platform, nvr, aircon, sensor, pdu)"


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (",,camera,10.0.0.2,s,r,,,,,,", "id: missing (required)"),
        ("c1,,,10.0.0.2,s,r,,,,,,", "kind: missing (required)"),
        ("c1,,camera,,s,r,,,,,,", "address: missing (required unless status is removed)"),
        ("c1,,camera,,s,r,,construction,,,,", "address: missing (required unless status is removed)"),
        ("c1,,camera,10.0.0.2,,r,,,,,,", "site: missing (required)"),
        ("c1,,camera,10.0.0.2,s,,,,,,,", "region: missing (required)"),
        ("c1,,camra,10.0.0.2,s,r,,,,,,", f"kind: unknown kind 'camra' {KINDS}"),
        ("c1,,camera,10.0.0.2,s,r,,bogus,,,,", "status: unknown status 'bogus' (expected active, construction, removed)"),
        ("c1,,camera,10.0.0.256,s,r,,,,,,", "address: '10.0.0.256' is not an IPv4 or IPv6 address"),
        ("c1,,camera,2001:db8::g,s,r,,,,,,", "address: '2001:db8::g' is not an IPv4 or IPv6 address"),
        ("c1,,camera,10.0.0.2,s,r,,,200,114,,", "lat: 200 is out of range -90..90"),
        ("c1,,camera,10.0.0.2,s,r,,,114.3,30.5,,", "lat: 114.3 is out of range -90..90 (latitude and longitude swapped?)"),
        ("c1,,camera,10.0.0.2,s,r,,,30,200,,", "lon: 200 is out of range -180..180"),
        ("c1,,camera,10.0.0.2,s,r,,,30°N,114,,", "lat: '30°N' is not a number"),
        ("c1,,camera,10.0.0.2,s,r,,,nan,114,,", "lat: 'nan' is not a number"),
        ("c1,,camera,10.0.0.2,s,r,sw9,,,,,", "parent: parent 'sw9' not found"),
        ("c1,,camera,10.0.0.2,s,r,c1,,,,,", "parent: parent cycle: c1 -> c1"),
        ("sw1,,camera,10.0.0.2,s,r,,,,,,", "id: duplicate id 'sw1' (first at {path}:2)"),
        ("c1,,camera,10.0.0.1,s,r,,,,,,", "address: duplicate address 10.0.0.1 (first at {path}:2, id sw1)"),
    ],
)
def test_each_bad_row_kind(tmp_path: Path, row: str, problem: str) -> None:
    path = csv_file(tmp_path, SWITCH, row)
    assert problems(path) == [f"{path}:3: " + problem.format(path=path)]


def test_removed_point_needs_no_address_and_claims_none(tmp_path: Path) -> None:
    path = csv_file(tmp_path, SWITCH, "old1,,camera,,s,r,,removed,,,,", "old2,,camera,10.0.0.1,s,r,,removed,,,,")
    inventory = load(path)
    assert inventory.by_address("10.0.0.1") == inventory.devices["sw1"]
    assert inventory.devices["old2"].address == ipaddress.IPv4Address("10.0.0.1")


def test_duplicate_address_in_another_notation(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "a,,camera,2001:db8::1,s,r,,,,,,", "b,,camera,2001:DB8:0:0::0001,s,r,,,,,,")
    assert problems(path) == [f"{path}:3: address: duplicate address 2001:db8::1 (first at {path}:2, id a)"]


def test_every_problem_is_reported_at_once_and_nothing_loads(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path,
        SWITCH,
        "c1,,camera,10.0.0.2,s,r,sw1,,,,,",
        "c2,,camra,10.0.0.300,s,r,sw1,,,,,",  # two problems in one row
        "c3,,camera,10.0.0.3,s,r,sw1,,,,,",
        "c1,,camera,10.0.0.2,s,r,nope,,,,,",
    )
    assert problems(path) == [
        f"{path}:4: kind: unknown kind 'camra' {KINDS}",
        f"{path}:4: address: '10.0.0.300' is not an IPv4 or IPv6 address",
        f"{path}:6: id: duplicate id 'c1' (first at {path}:3)",
    ]


def test_parent_cycle_is_named_once_from_its_first_loaded_member(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path,
        "x,,camera,10.0.0.1,s,r,a,,,,,",
        "b,,switch,10.0.0.2,s,r,a,,,,,",
        "c,,switch,10.0.0.3,s,r,b,,,,,",
        "a,,link,10.0.0.4,s,r,c,,,,,",
    )
    assert problems(path) == [f"{path}:3: parent: parent cycle: b -> a -> c -> b"]


# --- bad headers and files ------------------------------------------------------------------


def test_unknown_column_with_suggestion(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "a,camera,10.0.0.1,s,r", header="id,kind,adress,site,region")
    assert problems(path) == [
        f"{path}:1: adress: unknown column, did you mean 'address'?",
        f"{path}:1: address: missing column (headers accepted: address, IP, IP地址, 地址)",
    ]


def test_unknown_column_lists_known_and_ignorable(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "a,camera,10.0.0.1,s,r,x", header="id,kind,address,site,region,颜色")
    (message,) = problems(path)
    assert message.startswith(f"{path}:1: 颜色: unknown column (known: id, name, kind, address, site, region,")
    assert "ignorable: 序号, 备注" in message


def test_missing_required_column_is_reported_once_not_per_row(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "a,camera,10.0.0.1,s", "b,camera,10.0.0.2,s", header="id,kind,address,site")
    assert problems(path) == [f"{path}:1: region: missing column (headers accepted: region, 区域, 乡镇, 所属区域)"]


def test_two_headers_for_one_column(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "a,camera,10.0.0.1,10.0.0.1,s,r", header="id,kind,IP,地址,site,region")
    assert problems(path) == [f"{path}:1: 地址: same column as IP (address)"]


def test_value_in_a_csv_column_without_header(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "a,camera,10.0.0.1,s,r,,", "b,camera,10.0.0.2,s,r,,oops", "c,camera,10.0.0.3,s,r,x,y",
                    header="id,kind,address,site,region")
    assert problems(path) == [
        f"{path}:3: column 7: value in a column without header",
        f"{path}:4: column 6: value in a column without header",
    ]


def test_parent_not_found_is_not_claimed_when_another_list_is_unreadable(tmp_path: Path) -> None:
    broken = csv_file(tmp_path, "sw,switch,10.0.0.1,s", header="id,kind,address,site", name="a.csv")
    child = csv_file(tmp_path, "cam,,camera,10.0.0.2,s,r,sw,,,,,", name="b.csv")
    assert problems(broken, child) == [f"{broken}:1: region: missing column (headers accepted: region, 区域, 乡镇, 所属区域)"]


def test_rows_made_one_at_a_time_are_all_checked_and_located(tmp_path: Path) -> None:
    """The loader makes each row from its cells as it checks it (memory at 100,000 points):
    problems of the first and last rows, between rows far apart (a duplicate id, an unknown
    parent, a cycle) and of a second list are all found, each at its own line, in file order,
    after a quoted cell spanning lines and with CR LF, lone CR and a missing last line end."""
    rows = [f"c{i},,camera,10.1.{i // 250}.{i % 250 + 1},s,r,,,,,," for i in range(3000)]
    rows[0] = "c0,,camera,10.1.0.x,s,r,,,,,,"
    rows[1] = 'c1,"two\nlines",camera,10.1.0.2,s,r,,,,,,'
    rows[1500] = "c1500,,camera,10.1.6.1,s,r,c2999,,,,,"
    rows[2999] = "c0,,camera,10.1.11.250,s,r,c1500,,,,,"
    first = tmp_path / "a.csv"
    first.write_bytes(("\r\n".join((HEADER, *rows[:2000])) + "\r" + "\n".join(rows[2000:])).encode())
    second = csv_file(tmp_path, "x,,camera,10.2.0.1,s,r,nowhere,,,,,", "y,,plane,10.1.0.2,s,r,,,,,,", name="b.csv")
    assert problems(first, second) == [
        f"{first}:2: address: '10.1.0.x' is not an IPv4 or IPv6 address",
        f"{first}:1503: parent: parent 'c2999' not found",
        f"{first}:3002: id: duplicate id 'c0' (first at {first}:2)",
        f"{second}:2: parent: parent 'nowhere' not found",
        f"{second}:3: kind: unknown kind 'plane' {KINDS}",
        f"{second}:3: address: duplicate address 10.1.0.2 (first at {first}:3, id c1)",
    ]
    rows[0], rows[2999] = "c0,,camera,10.1.0.1,s,r,,,,,,", "c2999,,camera,10.1.11.250,s,r,c1500,,,,,"
    first.write_bytes(("\r\n".join((HEADER, *rows[:2000])) + "\r" + "\n".join(rows[2000:])).encode())
    assert problems(first) == [f"{first}:1503: parent: parent cycle: c1500 -> c2999 -> c1500"]
    rows[1500] = "c1500,,camera,10.1.6.1,s,r,,,,,,"
    first.write_bytes(("\r\n".join((HEADER, *rows[:2000])) + "\r" + "\n".join(rows[2000:])).encode())
    inventory = load(first)
    assert len(inventory.devices) == 3000 and inventory.devices["c1"].name == "two\nlines"
    assert inventory.devices["c2999"].parent == "c1500"


def test_invalid_csv_far_down_refuses_the_whole_list(tmp_path: Path) -> None:
    """Text that is not CSV on row 2,001 (a cell past the csv module's field limit) refuses the
    list as a whole, as when it was read at once: none of its rows, none of their problems,
    and no "parent not found" claimed in another list."""
    rows = [f"c{i},,camera,10.1.{i // 250}.{i % 250 + 1},s,r,,,,,," for i in range(2000)]
    rows[5] = "c5,,plane,10.1.0.6,s,r,,,,,,"
    broken = csv_file(tmp_path, *rows, "big," + "x" * 200_000 + ",camera,10.1.9.1,s,r,,,,,,", name="a.csv")
    child = csv_file(tmp_path, "cam,,camera,10.2.0.2,s,r,c1,,,,,", name="b.csv")
    assert problems(broken, child) == [
        f"{broken}: line 2002: not valid CSV: field larger than field limit (131072)"]


def test_undecodable_csv(tmp_path: Path) -> None:
    path = tmp_path / "points.csv"
    path.write_bytes(b"id,kind,address,site,region\n\x80,camera,10.0.0.1,s,r\n")
    assert problems(path) == [f"{path}: line 2: neither UTF-8 nor GB18030 text"]


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("missing.csv", None, "cannot read: No such file or directory"),
        ("missing.xlsx", None, "cannot read: No such file or directory"),
        ("old.xls", b"\xd0\xcf\x11\xe0", "the old .xls format is not supported: save it as .xlsx or CSV"),
        ("points.json", b"[]", "unknown point-list format: expected .csv or .xlsx"),
    ],
)
def test_unusable_files(tmp_path: Path, name: str, content: bytes | None, problem: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    assert problems(path) == [f"{path}: {problem}"]


def test_damaged_xlsx(tmp_path: Path) -> None:
    path = tmp_path / "points.xlsx"
    path.write_text("id,kind\n")
    (message,) = problems(path)
    assert message.startswith(f"{path}: cannot read as XLSX: ")


# --- inline devices and several sources -----------------------------------------------------

CONFIG = """\
inventory:
  point_lists: [points.csv]
  devices:
    - id: sw1
      kind: switch
      address: 10.0.0.9
      site: s
      region: r
    - {id: core, kind: swich, address: 10.0.0.1, site: s, region: r}
    - {id: x, kind: camera, site: s, region: r, adress: 10.0.0.7, tags: {a: 1}}
"""


def test_inline_devices_and_cross_source_duplicates_name_both_places(tmp_path: Path) -> None:
    points = csv_file(tmp_path, SWITCH)
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    with pytest.raises(InventoryError) as info:
        load_inventory(load_config(config))
    assert info.value.messages == [
        f"{config}:4: inventory.devices[0].id: duplicate id 'sw1' (first at {points}:2)",
        f"{config}:9: inventory.devices[1].kind: unknown kind 'swich' {KINDS}",
        f"{config}:9: inventory.devices[1].address: duplicate address 10.0.0.1 (first at {points}:2, id sw1)",
        f"{config}:10: inventory.devices[2].adress: unknown key, did you mean 'address'?",
        f"{config}:10: inventory.devices[2].tags: must be text or a list of text",
        f"{config}:10: inventory.devices[2].address: missing (required unless status is removed)",
    ]


def test_inline_devices_merge_after_point_lists(tmp_path: Path) -> None:
    points = csv_file(tmp_path, "cam,,camera,10.0.0.2,s,r,sw1,,,,,")
    inventory = load(points, devices=[{"id": "sw1", "kind": "switch", "address": "10.0.0.1", "site": "s",
                                       "region": "r", "tags": ["core", "北区"], "lat": 30.5}])
    assert list(inventory.devices) == ["cam", "sw1"]
    assert inventory.sources == (str(points), "<config>")
    assert inventory.devices["sw1"].tags == frozenset({"core", "北区"})
    assert inventory.devices["sw1"].lat == 30.5


def test_inline_device_problem_without_a_config_file() -> None:
    assert problems(devices=[{"id": 7, "kind": "plane", "address": "10.0.0.1", "site": "s", "region": "r"}]) == [
        f"<config>: inventory.devices[0].kind: unknown kind 'plane' {KINDS}"
    ]


def test_example_point_lists_load_with_the_example_config() -> None:
    repo = Path(__file__).resolve().parent.parent
    inventory = load_inventory(load_config(repo / "config.yaml"))
    assert len(inventory.sources) == 3
    assert inventory.devices["CG-CAM-003"].kind is Kind.CAMERA  # 球机, from the Chinese CSV
    assert inventory.devices["DH-CAM-004"].address == ipaddress.IPv6Address("2001:db8:20:2::14")  # from the XLSX
    assert [d.id for d in inventory.ancestors("DH-CAM-001")] == ["DH-SW-01", "LINK-DH", "CORE-SW"]


# --- the Inventory ----------------------------------------------------------------------------


@pytest.fixture
def fleet() -> Inventory:
    # Loaded children first, so that topo_order has something to reorder.
    return Inventory([
        device("cam1", parent="sw1", address="10.0.0.11", tags={"school"}),
        device("sw1", Kind.SWITCH, parent="link1", address="10.0.0.2"),
        device("cam2", parent="sw1", address="2001:db8::11", region="south"),
        device("link1", Kind.LINK, parent="core", address="10.0.0.1"),
        device("core", Kind.SWITCH, address="10.0.0.254"),
        device("gone", parent="sw1", address="10.0.0.11", status=Status.REMOVED),
    ])


def test_topo_order_puts_parents_first_and_keeps_load_order(fleet: Inventory) -> None:
    assert [d.id for d in fleet.topo_order()] == ["core", "link1", "sw1", "cam1", "cam2", "gone"]


def test_ancestors_and_children(fleet: Inventory) -> None:
    assert [d.id for d in fleet.ancestors("cam1")] == ["sw1", "link1", "core"]
    assert fleet.ancestors("core") == ()
    assert [d.id for d in fleet.children("sw1")] == ["cam1", "cam2", "gone"]
    assert fleet.children("cam1") == ()
    with pytest.raises(KeyError):
        fleet.children("nope")
    with pytest.raises(KeyError):
        fleet.ancestors("nope")


def test_select(fleet: Inventory) -> None:
    assert [d.id for d in fleet.select(Selector.of(kind=["camera"]))] == ["cam1", "cam2", "gone"]
    assert [d.id for d in fleet.select(Selector.of(kind=["camera"], region=["south"]))] == ["cam2"]
    assert [d.id for d in fleet.select(Selector.of(tags=["school"]))] == ["cam1"]
    assert len(fleet.select(Selector())) == 6


def test_by_address(fleet: Inventory) -> None:
    assert fleet.by_address("10.0.0.11") is fleet.devices["cam1"]  # not the removed "gone"
    assert fleet.by_address(ipaddress.IPv4Address("10.0.0.2")) is fleet.devices["sw1"]
    assert fleet.by_address("2001:DB8:0::0011") is fleet.devices["cam2"]
    assert fleet.by_address("::ffff:10.0.0.1") is fleet.devices["link1"]
    assert fleet.by_address("10.9.9.9") is None
    assert fleet.by_address("not an address") is None


def test_inventory_is_immutable(fleet: Inventory) -> None:
    with pytest.raises(TypeError):
        fleet.devices["x"] = device("x")  # type: ignore[index]
    with pytest.raises(AttributeError):
        fleet.devices = {}  # type: ignore[misc]
    with pytest.raises(AttributeError):
        fleet.extra = 1  # type: ignore[attr-defined]


def test_inventory_from_code_checks_the_same_rules() -> None:
    with pytest.raises(InventoryError) as info:
        Inventory([device("a", address="10.0.0.1"), device("a"), device("b", parent="nope", address="10.0.0.1"),
                   device("c", parent="d"), device("d", parent="c")])
    assert info.value.messages == [
        "devices[1]: id: duplicate id 'a' (first at devices[0])",
        "devices[2]: address: duplicate address 10.0.0.1 (first at devices[0], id a)",
        "devices[2]: parent: parent 'nope' not found",
        "devices[3]: parent: parent cycle: c -> d -> c",
    ]


def test_ten_thousand_rows_load_with_their_topology(tmp_path: Path) -> None:
    rows = [SWITCH] + [
        f"c{i},cam {i},camera,10.1.{i // 256}.{i % 256},site{i // 50},region{i // 1000},sw1,active,30.{i},114.{i},"
        f"DS-2CD3T46WDV3-L,a;b"
        for i in range(10_000)
    ]
    path = csv_file(tmp_path, *rows)
    inventory = load(path)
    assert len(inventory.devices) == 10_001
    assert len(inventory.children("sw1")) == 10_000
    assert inventory.topo_order()[0].id == "sw1"


def test_values_repeated_on_many_rows_are_held_once(tmp_path):
    """A site, region, parent, model or tag set repeated on thousands of rows is one object
    (memory at 100,000 points); equal, not merely identical, values are what is shared."""
    rows = "".join(f"C{i},camera,10.0.{i // 250}.{i % 250 + 1},城关镇人民广场,城关镇,SW1,DS-2CD,bullet;new\n" for i in range(300))
    path = tmp_path / "points.csv"
    path.write_text("id,kind,address,site,region,parent,model,tags\nSW1,switch,10.1.0.1,城关镇人民广场,城关镇,,,\n" + rows,
                    encoding="utf-8")
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text("inventory:\n  point_lists: [points.csv]\n", encoding="utf-8")
    from monitor.app.config import load_config
    from monitor.fleet.inventory import load_inventory

    cameras = [d for d in load_inventory(load_config(cfg_path)).devices.values() if d.id.startswith("C")]
    assert len(cameras) == 300 and cameras[0].tags == frozenset({"bullet", "new"})
    for attribute in ("site", "region", "parent", "model", "tags"):
        assert len({id(getattr(d, attribute)) for d in cameras}) == 1, attribute
