"""The fleet: devices from point lists (点位明细表, CSV or XLSX) and the config's inline devices.

`load_inventory()` reads every source, checks every row and the rows against each other, and
returns an immutable `Inventory`, or raises `InventoryError` listing every problem at once,
each as "FILE:LINE: column: reason". A bad inventory never half-loads.

Sources, in load order: the point lists in the order the config lists them, then the config's
inline devices (`inventory.devices`). Ids and addresses are unique across all of them.

Columns (header matching ignores case, spaces, full-width forms and a BOM):

    id       编号 点位编号 设备编号            required
    name     名称 点位名称 设备名称            default: the id
    kind     类型 设备类型                    required: camera switch ups link server platform nvr
    address  IP IP地址 地址                   required unless status is removed; IPv4 or IPv6
    site     站点 点位组                      required
    region   区域 乡镇 所属区域                required
    parent   上级 上级设备 父设备              id of the device this one hangs behind
    status   状态 建设状态                    active (default) construction removed
    lat lon  纬度 经度 (latitude longitude)   degrees
    model    型号 设备型号
    manufacturer 厂家 厂商 品牌 生产厂家
    firmware 固件 固件版本
    serial   序列号 设备序列号 SN
    stream_url 码流地址 取流地址 RTSP地址        rtsp://host[:port]/path (no credentials)
    port     接入端口 交换机端口                port of the parent switch (ifName/ifDescr)
    uplink   上联端口                        the device's own uplink port (switches)
    url      检测地址 访问地址 网址            http(s)://host[:port]/path its HTTP check asks (no credentials)
    bandwidth 签约带宽 专线带宽 带宽            a line's contracted rate: 10M, 50Mbps, 622M, 1G (bare number: Mbit/s)
    expires  到期日期 到期时间 到期日 有效期至    the local date its licence, subscription or contract runs out
    tags     标签                            separated by ; , | (or ； ， 、 ｜)

Chinese values are accepted for kind (摄像机/摄像头/枪机/球机, 交换机, UPS/不间断电源, 链路/专线,
服务器/存储, 平台, 录像机/硬盘录像机/网络硬盘录像机, 精密空调/空调, 温湿度/温湿度传感器/传感器/动环,
电源分配单元/机柜PDU) and status (在用/正常/启用, 在建/延建, 拆除/已拆除). Columns such as 序号 and 备注
(IGNORED_COLUMNS) are skipped; any other unknown column is an error, since a typo in a header
would otherwise drop a column silently. Inline devices use the English column names as keys.

Point-list files:
- CSV (.csv, .tsv, .txt): UTF-8 with or without BOM, UTF-16 with BOM, else GB18030 (a
  superset of the GBK that Chinese Excel writes). UTF-8 is tried first because Chinese GBK
  text is practically never valid UTF-8, while ASCII reads the same either way. Delimiter:
  comma, tab or semicolon, whichever the first lines hold most of.
- XLSX (.xlsx, .xlsm): the first sheet, or the sheet named after '#': `points.xlsx#点位明细`.
- The header row is the first row naming at least two known columns, so that title rows above
  it (merged "XX县雪亮工程点位明细表") are skipped.
- Merged cells (a 站点 or 乡镇 written once for the rows of one site, as ops teams keep them)
  count as that value written into every row and column of the merge.
- A formula cell counts with the value Excel saved with it. A formula without a saved value (a
  file written by a script and never opened in Excel) is an error naming the cell: reading it
  as empty would silently lose e.g. a parent, and with it the topology.

Addresses: the unspecified address (0.0.0.0, ::), broadcast (255.255.255.255), multicast and
reserved (240.0.0.0/4) addresses are refused: no device answers there. Loopback (127.0.0.0/8,
::1) is refused too unless `inventory.allow_loopback: true` (labs and tests whose simulated
devices listen on this host). A subnet's own broadcast address is not checked: the point list
carries no prefix lengths.

Removed points keep their row (reports need them) but claim no address: a replacement camera
often takes over the address of the one it replaced.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import difflib
import ipaddress
import itertools
import math
import re
import types
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Iterable, Iterator, Mapping, Sequence
from urllib.parse import urlsplit


from pydantic import AfterValidator, PrivateAttr

from monitor.core.config_base import ConfigError, ConfigSource, Strict, check_http_url, read_regular_file
from monitor.core.model import Device, IPAddress, Kind, Selector, Status
from monitor.fleet.renewals import Renewal, RenewalConfig, unique_renewal_names
from monitor.fleet.values import parse_bandwidth, parse_date

COLUMNS: Mapping[str, tuple[str, ...]] = {
    "id": ("编号", "点位编号", "设备编号"),
    "name": ("名称", "点位名称", "设备名称"),
    "kind": ("类型", "设备类型"),
    "address": ("IP", "IP地址", "地址"),
    "site": ("站点", "点位组"),
    "region": ("区域", "乡镇", "所属区域"),
    "parent": ("上级", "上级设备", "父设备"),
    "status": ("状态", "建设状态"),
    "lat": ("纬度", "latitude"),
    "lon": ("经度", "longitude"),
    "model": ("型号", "设备型号"),
    "manufacturer": ("厂家", "厂商", "品牌", "生产厂家"),
    "firmware": ("固件", "固件版本"),
    "serial": ("序列号", "设备序列号", "SN"),
    "stream_url": ("码流地址", "取流地址", "RTSP地址"),
    "port": ("接入端口", "交换机端口"),
    "uplink": ("上联端口",),
    "url": ("检测地址", "访问地址", "网址"),
    "bandwidth": ("签约带宽", "专线带宽", "带宽"),
    "expires": ("到期日期", "到期时间", "到期日", "有效期至"),
    "tags": ("标签",),
}
"""Column name → header aliases accepted in point lists."""

REQUIRED_COLUMNS = ("id", "kind", "address", "site", "region")
IGNORED_COLUMNS = ("序号", "备注", "说明", "no", "no.", "#", "remark", "remarks", "note", "notes", "comment")
"""Headers of columns that point lists commonly carry and the inventory does not use."""

KIND_NAMES: Mapping[str, Kind] = {
    **{kind.value: kind for kind in Kind},
    "摄像机": Kind.CAMERA,
    "摄像头": Kind.CAMERA,
    "枪机": Kind.CAMERA,
    "球机": Kind.CAMERA,
    "交换机": Kind.SWITCH,
    "不间断电源": Kind.UPS,
    "链路": Kind.LINK,
    "专线": Kind.LINK,
    "服务器": Kind.SERVER,
    "存储": Kind.SERVER,
    "平台": Kind.PLATFORM,
    "录像机": Kind.NVR,
    "硬盘录像机": Kind.NVR,
    "网络硬盘录像机": Kind.NVR,
    "精密空调": Kind.AIRCON,
    "空调": Kind.AIRCON,
    "温湿度": Kind.SENSOR,
    "温湿度传感器": Kind.SENSOR,
    "传感器": Kind.SENSOR,
    "动环": Kind.SENSOR,
    "电源分配单元": Kind.PDU,
    "机柜pdu": Kind.PDU,
}
STATUS_NAMES: Mapping[str, Status] = {
    **{status.value: status for status in Status},
    "在用": Status.ACTIVE,
    "正常": Status.ACTIVE,
    "启用": Status.ACTIVE,
    "在建": Status.CONSTRUCTION,
    "延建": Status.CONSTRUCTION,
    "拆除": Status.REMOVED,
    "已拆除": Status.REMOVED,
}


def _norm(text: str) -> str:
    """Header or value as compared: BOM dropped, full-width forms folded, case folded, no
    whitespace."""
    return "".join(unicodedata.normalize("NFKC", text.replace("\ufeff", "")).casefold().split())


_HEADERS = {_norm(alias): column for column, aliases in COLUMNS.items() for alias in (column, *aliases)}
_SPELLINGS = {_norm(alias): alias for column, aliases in COLUMNS.items() for alias in (column, *aliases)}
_IGNORED = {_norm(header) for header in IGNORED_COLUMNS}
_KINDS = {_norm(name): kind for name, kind in KIND_NAMES.items()}
_STATUSES = {_norm(name): status for name, status in STATUS_NAMES.items()}
_TAG_SEPARATORS = re.compile(r"[;,|；，、｜]")
_TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
_XLSX_SUFFIXES = (".xlsx", ".xlsm")
_HEADER_SCAN_ROWS = 10  # title rows tolerated above the header
PROGRESS_ROWS = 10_000  # rows between two calls of load_inventory's progress callback
_EXACT_FLOAT_LIMIT = 2.0**53  # beyond it a number read from Excel may have lost digits
MAX_POINT_LIST_BYTES = 64 << 20
"""A CSV point list larger than this is refused unread (100,000 points are ~15 MB)."""


class InventoryConfig(Strict):
    """Where the fleet comes from: point lists (CSV/XLSX, 点位明细表) and/or inline devices.
    Relative paths are relative to the config file."""

    point_lists: list[Path] = []
    devices: list[dict] = []  # rows with the point-list columns; validated by monitor.fleet.inventory
    renewals: Annotated[list[RenewalConfig], AfterValidator(unique_renewal_names)] = []
    """Dates to renew by that no point-list row carries (domains, licences, the contract itself);
    see monitor.fleet.renewals."""
    allow_loopback: bool = False
    """Accept loopback device addresses (127.0.0.0/8, ::1): for labs and tests whose simulated
    devices listen on this host; in the field a loopback address is a typo."""

    # Set by load_config so that monitor.fleet.inventory can report inline devices by file and line.
    _source: ConfigSource | None = PrivateAttr(default=None)

    @property
    def source(self) -> ConfigSource | None:
        """The config file this section was loaded from; None when built in code."""
        return self._source


class InventoryError(ConfigError):
    """The inventory is invalid. `messages`: every problem, "FILE:LINE: column: reason"
    (XLSX: "FILE:ROW: …"; inline devices: "CONFIG:LINE: inventory.devices[i].column: …").
    A ConfigError, so that a reload catching ConfigError also keeps the old inventory."""


class Inventory:
    """The fleet, immutable. Build it with load_inventory(), or from Device objects in code
    with Inventory(devices), which checks the same cross-row rules.

    - devices: id → Device, in load order.
    - sources: where the devices came from, in load order (file names as in messages).
    - renewals: every date to renew by (monitor.fleet.renewals): the devices' `expires`, in
      load order, then the config's `inventory.renewals`.
    """

    __slots__ = ("_devices", "_sources", "_by_address", "_children", "_topo", "_renewals")

    def __init__(
        self, devices: Iterable[Device], sources: Iterable[str] = (), renewals: Iterable[RenewalConfig] = ()
    ) -> None:
        """Raises InventoryError (duplicate ids or addresses, unknown parents, parent cycles,
        renewals of unknown devices), locating problems as "devices[i]" and "renewals[i]"."""
        devices, renewals = tuple(devices), tuple(renewals)
        entries = [
            _Entry(_Row({}, f"devices[{i}]", 0, i), d.id, d.address, d.status, d.parent, d)
            for i, d in enumerate(devices)
        ]
        issues = _cross_check(entries, parents_known=True)
        ids = {d.id for d in devices}
        issues += [
            (1, i, f"renewals[{i}].device: device {r.device!r} not found")
            for i, r in enumerate(renewals) if r.device is not None and r.device not in ids
        ]
        if issues:
            raise InventoryError(_ordered(issues))
        self._index(devices, sources, renewals)

    @classmethod
    def _checked(cls, devices: Sequence[Device], sources: Iterable[str], renewals: Sequence[RenewalConfig]) -> "Inventory":
        """An inventory of devices (and renewals) that load_inventory() has already checked."""
        inventory = cls.__new__(cls)
        inventory._index(devices, sources, renewals)
        return inventory

    def _index(self, devices: Sequence[Device], sources: Iterable[str], renewals: Sequence[RenewalConfig]) -> None:
        by_id = {d.id: d for d in devices}
        children: dict[str, list[Device]] = {}
        for device in devices:
            if device.parent is not None:
                children.setdefault(device.parent, []).append(device)
        self._devices = types.MappingProxyType(by_id)
        self._sources = tuple(sources)
        self._by_address = {
            d.address: d for d in devices if d.address is not None and d.status is not Status.REMOVED
        }
        self._children = {parent: tuple(kids) for parent, kids in children.items()}
        self._topo = _topo_order(by_id)
        self._renewals = (
            *(Renewal(f"device:{d.id}", d.name, d.expires, device_id=d.id) for d in devices if d.expires is not None),
            *(Renewal(f"renewal:{r.name}", r.name, r.expires, r.what, r.owner, r.device) for r in renewals),
        )

    @property
    def devices(self) -> Mapping[str, Device]:
        return self._devices

    @property
    def sources(self) -> tuple[str, ...]:
        return self._sources

    @property
    def renewals(self) -> tuple[Renewal, ...]:
        return self._renewals

    def __repr__(self) -> str:
        return f"<Inventory: {len(self.devices)} devices from {', '.join(self.sources) or 'code'}>"

    def by_address(self, address: str | IPAddress) -> Device | None:
        """The device (not removed) at `address`; None for an unknown or malformed address.
        An IPv4-mapped IPv6 address (::ffff:10.0.0.1, as dual-stack sockets report IPv4
        peers) finds the IPv4 device."""
        try:
            addr = ipaddress.ip_address(address)
        except ValueError:
            return None
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return self._by_address.get(addr)

    def children(self, device_id: str) -> tuple[Device, ...]:
        """Devices whose parent is `device_id`, in load order. KeyError for an unknown id."""
        if device_id not in self.devices:
            raise KeyError(device_id)
        return self._children.get(device_id, ())

    def ancestors(self, device_id: str) -> tuple[Device, ...]:
        """Parent, grandparent, … up to the root. KeyError for an unknown id."""
        chain = []
        parent = self.devices[device_id].parent
        while parent is not None:
            device = self.devices[parent]
            chain.append(device)
            parent = device.parent
        return tuple(chain)

    def topo_order(self) -> tuple[Device, ...]:
        """Every device, parents before their children, otherwise in load order."""
        return self._topo

    def select(self, selector: Selector) -> tuple[Device, ...]:
        """Devices matching `selector`, in load order."""
        return tuple(d for d in self.devices.values() if selector.matches(d))


def load_inventory(cfg: InventoryConfig | Any, base_dir: str | Path | None = None, *,
                   progress: Callable[[int, int], None] | None = None) -> Inventory:
    """Load every source of `cfg` (a whole config or its inventory section).

    Relative point-list paths are resolved against `base_dir` (default: the current directory);
    a config from load_config() already holds absolute paths. Inline devices are located by
    the config's file and line when it came from load_config(), else as "<config>".
    Raises InventoryError with every problem found; returns only a fully valid inventory.
    `progress(rows checked, rows in all)` is called once the sources are read, every
    PROGRESS_ROWS rows and at the end (a 100,000-row list takes 15–30 s: the CLI says how far).
    """
    section = cfg if isinstance(cfg, InventoryConfig) else cfg.inventory
    base = Path(base_dir) if base_dir is not None else Path()
    tables = [_read_point_list(base / path, index) for index, path in enumerate(section.point_lists)]
    issues = [issue for table in tables for issue in table.issues]
    sources = [table.name for table in tables]
    complete = all(table.complete for table in tables)  # else "parent not found" may be wrong
    config_rows: list[_Row] = []
    if section.devices:
        config_rows, config_issues = _inline_rows(section.devices, section.source, len(sources))
        issues += config_issues
        sources.append(str(section.source.path) if section.source else "<config>")
    # Each row is made from its cells, checked and let go before the next is made: the cells
    # of 100,000 rows never exist at once (~230 MB at the peak when they did), and what a
    # row leaves behind (its Device) packs the memory its predecessor freed instead of being
    # strewn among dead rows (~120 MB more RSS kept after loading).
    total = sum(table.count for table in tables) + len(config_rows)
    entries = []
    shared: dict[object, object] = {}
    rows = itertools.chain.from_iterable((*(table.rows() for table in tables), config_rows))
    for n, row in enumerate(rows):
        if progress is not None and n % PROGRESS_ROWS == 0:
            progress(n, total)
        if (entry := _parse_row(row, issues, section.allow_loopback, shared)) is not None:
            entries.append(entry)
        row.values = _NOTHING  # the entry keeps the row only to locate problems between rows
    if progress is not None:
        progress(total, total)
    del rows, tables  # the point lists' texts: not needed for the checks between rows
    issues += _cross_check(entries, parents_known=complete)
    if complete:
        issues += _renewal_devices(section, {e.id for e in entries}, len(section.point_lists))
    if issues:
        raise InventoryError(_ordered(issues))
    devices = [e.device for e in entries if e.device is not None]
    return Inventory._checked(devices, sources, section.renewals)


def _renewal_devices(section: InventoryConfig, ids: set[str], index: int) -> list[_Issue]:
    """Problems of `inventory.renewals` entries naming a device that is not in the inventory,
    located at their `device` key; `index`: the config's source index (after the point lists)."""
    issues: list[_Issue] = []
    for i, renewal in enumerate(section.renewals):
        if renewal.device is None or renewal.device in ids:
            continue
        loc = ("inventory", "renewals", i, "device")
        line = section.source.line(loc) if section.source else i
        where = f"{section.source.path}:{line}" if section.source else "<config>"
        issues.append((index, line, f"{where}: inventory.renewals[{i}].device: device {renewal.device!r} not found"))
    return issues


# --- rows and problems ---------------------------------------------------------------------


_Issue = tuple[int, int, str]
"""(source index, line, message): sorted into file order before reporting."""


class _Bad(Exception):
    """A cell's value is unusable; the message is the reason."""


_NOTHING: Mapping[str, Any] = types.MappingProxyType({})  # one empty mapping for every row that has none


@dataclass(slots=True)
class _Row:
    """One device's cells, whatever the source, and how to point at them.

    values: column → the cell (text; from XLSX also a number, date or bool), present cells only;
      empty once the row is checked (load_inventory).
    where, line: "FILE:LINE" of the row and its line (XLSX: row; config: the device's entry);
      with `numbered`, `where` is "FILE" and the line is added when a problem is told (the
      100,000 rows of a point list need not each hold a text of their own while loading).
    source: index of the source, for ordering problems.
    labels: column → the column as its source names it ("类型"); else prefix + column
      ("inventory.devices[3]." + "kind").
    cell_wheres: column → (line, "FILE:LINE") for cells with lines of their own (config keys).
    """

    values: Mapping[str, Any]
    where: str
    source: int
    line: int
    labels: Mapping[str, str] = field(default_factory=lambda: _NOTHING)
    prefix: str = ""
    cell_wheres: Mapping[str, tuple[int, str]] = field(default_factory=lambda: _NOTHING)
    numbered: bool = False

    def issue(self, column: str, reason: str) -> _Issue:
        line, where = self.where_of(column)
        return self.source, line, f"{where}: {self.labels.get(column, self.prefix + column)}: {reason}"

    def where_of(self, column: str) -> tuple[int, str]:
        if column in self.cell_wheres:
            return self.cell_wheres[column]
        return self.line, f"{self.where}:{self.line}" if self.numbered else self.where


@dataclass(slots=True)
class _Entry:
    """What the cross-row checks need of a row: its id, and whatever else could be read."""

    row: _Row
    id: str
    address: IPAddress | None
    status: Status | None  # None: unreadable
    parent: str | None
    device: Device | None  # None when the row has problems


def _ordered(issues: list[_Issue]) -> list[str]:
    return [message for _, _, message in sorted(issues, key=lambda issue: issue[:2])]


# --- reading point lists -------------------------------------------------------------------


@dataclass(slots=True)
class _Table:
    """A point list read: its name in messages, its problems (the file's, the header's, values
    in columns without a header), whether every row could be read (False when the file or its
    header is unusable), how many rows it has (rows with a value in a known column) and
    `rows()`, which makes them one at a time from the records (see load_inventory; a CSV's
    records are parsed anew from its text, an XLSX's are a list openpyxl read whole)."""

    name: str
    issues: list[_Issue]
    complete: bool
    count: int = 0
    rows: Callable[[], Iterator[_Row]] = lambda: iter(())


def _read_point_list(path: Path, index: int) -> _Table:
    """Read one point list (see the module docstring for formats); never raises for bad input."""
    file, sheet = _split_sheet(path)
    name = f"{file}#{sheet}" if sheet is not None else str(file)
    suffix = file.suffix.lower()
    try:
        records: _Records
        if suffix in _TEXT_SUFFIXES:
            records = _csv_records(file)
        elif suffix in _XLSX_SUFFIXES:
            records = _xlsx_records(file, sheet)
        elif suffix == ".xls":
            raise _Bad("the old .xls format is not supported: save it as .xlsx or CSV")
        else:
            raise _Bad("unknown point-list format: expected .csv or .xlsx")
        return _table(name, index, records, spreadsheet=suffix not in _TEXT_SUFFIXES)
    except _Bad as exc:
        return _Table(name, [(index, 0, f"{name}: {exc}")], complete=False)


class _Uncached:
    """A formula cell without a saved value, in place of the None openpyxl reads for it."""

    __slots__ = ("coordinate",)

    def __init__(self, coordinate: str) -> None:
        self.coordinate = coordinate

    def __str__(self) -> str:  # as a header: no name
        return ""


def _split_sheet(path: Path) -> tuple[Path, str | None]:
    """points.xlsx#点位明细 → (points.xlsx, "点位明细"); other paths → (path, None)."""
    stem, hash_, sheet = path.name.rpartition("#")
    if hash_ and Path(stem).suffix.lower() in _XLSX_SUFFIXES:
        return path.with_name(stem), sheet
    return path, None


_Record = tuple[int, Sequence[Any]]
"""(line or row number, cells)"""

_Records = Iterable[_Record]
"""A point list's records in order; iterable more than once (_table reads them twice)."""


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
"""A line of text and its end (\n, \r\n or a lone \r, kept), or the last line without one."""


class _CsvRecords:
    """The records of a decoded CSV text, parsed anew on each iteration, so that a point list's
    cells need not all be held at once; iterating raises _Bad for text that is not valid CSV
    (the first pass, _table's, meets it before any row is made)."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._delimiter = _delimiter(text)

    def __iter__(self) -> Iterator[_Record]:
        # The lines as io.StringIO(text, newline="") reads them, without its copy of the text
        # (4 bytes a character: 60 MB for a 100,000-row list)
        lines = (m.group() for m in _LINE.finditer(self._text))
        reader = csv.reader(lines, delimiter=self._delimiter)
        try:
            end = 0
            for cells in reader:
                start, end = end + 1, reader.line_num  # a quoted cell may span lines
                yield start, cells
        except csv.Error as exc:
            raise _Bad(f"line {reader.line_num}: not valid CSV: {exc}") from None


def _csv_records(path: Path) -> _CsvRecords:
    try:
        raw = read_regular_file(path, MAX_POINT_LIST_BYTES, "a point list")
    except OSError as exc:
        raise _Bad(f"cannot read: {exc.strerror}") from None
    except ValueError as exc:  # a FIFO, a device, a directory, too large
        raise _Bad(str(exc)) from None
    return _CsvRecords(_decode(raw))


def _decode(raw: bytes) -> str:
    """See the module docstring for the order of encodings tried."""
    if raw.startswith(codecs.BOM_UTF8):
        encoding, raw = "UTF-8", raw[len(codecs.BOM_UTF8) :]
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "UTF-16"
    else:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            encoding = "GB18030"
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        what = "neither UTF-8 nor GB18030" if encoding == "GB18030" else f"not {encoding}"
        raise _Bad(f"line {line}: {what} text") from None


def _delimiter(text: str) -> str:
    end = -1  # the first lines, without splitting (copying) the whole text
    for _ in range(_HEADER_SCAN_ROWS):
        if (end := text.find("\n", end + 1)) < 0:
            break
    head = text if end < 0 else text[:end]
    return max((",", "\t", ";"), key=head.count)


def _xlsx_records(path: Path, sheet: str | None) -> list[_Record]:
    if not path.is_file():
        raise _Bad("is not a regular file" if path.exists() else "cannot read: No such file or directory")
    import openpyxl  # here: ~8 MB of RSS that a daemon fed by CSV never needs

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zip, XML, key and value errors on damaged files
        raise _Bad(f"cannot read as XLSX: {exc}") from None
    try:
        if sheet is None:
            worksheet = book.worksheets[0]
        elif sheet in book.sheetnames:
            worksheet = book[sheet]
        else:
            raise _Bad(f"no sheet named {sheet!r} (sheets: {', '.join(book.sheetnames)})")
        # Read-only sheets yield missing rows as empty ones, so numbering from 1 is the row number.
        rows = [list(cells) for cells in worksheet.iter_rows(min_row=1, values_only=True)]
        uncached, merges = _formulas_and_merges(worksheet)
    finally:
        book.close()
    _fill_merges(rows, merges)
    for row, col, coordinate in uncached:  # after the fill: a merge's first cell may be one
        _put(rows, row, col, _Uncached(coordinate))
    return list(enumerate(rows, start=1))


_SHEET_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


def _formulas_and_merges(worksheet: Any) -> tuple[list[tuple[int, int, str]], list[str]]:
    """([(row, column, "D5") of formula cells without a saved value], ["A3:A7" merged ranges])
    of a read-only sheet, by one streaming pass over its XML. Read-only sheets expose neither:
    openpyxl reads such a formula as None (data_only) and keeps no merged ranges; loading the
    whole sheet instead would cost several times the memory of a large point list."""
    from openpyxl.utils.cell import coordinate_to_tuple
    from xml.etree.ElementTree import ParseError, iterparse

    uncached: list[tuple[int, int, str]] = []
    merges: list[str] = []
    try:
        with worksheet._get_source() as source:  # the sheet's XML part in the open archive
            for _, element in iterparse(source):
                if element.tag == _SHEET_NS + "c":
                    formula, value = element.find(_SHEET_NS + "f"), element.find(_SHEET_NS + "v")
                    if formula is not None and (value is None or not value.text) and element.get("r"):
                        row, col = coordinate_to_tuple(element.get("r"))
                        uncached.append((row, col, element.get("r")))
                    element.clear()
                elif element.tag == _SHEET_NS + "mergeCell" and element.get("ref"):
                    merges.append(element.get("ref"))
    except (ParseError, ValueError) as exc:
        raise _Bad(f"cannot read as XLSX: {exc}") from None
    return uncached, merges


def _fill_merges(rows: list[list[Any]], merges: Sequence[str]) -> None:
    """Write each merged range's value (its top-left cell) into every cell of the range."""
    from openpyxl.utils.cell import range_boundaries

    for ref in merges:
        try:
            min_col, min_row, max_col, max_row = range_boundaries(ref)
        except (ValueError, TypeError):
            continue  # a damaged merge record: the cells read as they are
        value = rows[min_row - 1][min_col - 1] if min_row <= len(rows) and min_col <= len(rows[min_row - 1]) else None
        if value is None:
            continue
        for row in range(min_row, min(max_row, len(rows)) + 1):
            for col in range(min_col, max_col + 1):
                _put(rows, row, col, value)


def _put(rows: list[list[Any]], row: int, col: int, value: Any) -> None:
    """rows[row-1][col-1] = value (1-based), padding a short row; rows beyond the sheet are ignored."""
    if row > len(rows):
        return
    cells = rows[row - 1]
    if len(cells) < col:
        cells.extend([None] * (col - len(cells)))
    cells[col - 1] = value


def _table(name: str, index: int, records: _Records, spreadsheet: bool) -> _Table:
    """A point list from its records: find the header, map it; one pass over the rows below
    counts them and finds values in columns without a header (raising _Bad for records that
    cannot be read), and `rows()` makes them in a second pass. Raises _Bad."""
    header_at, header_line, header = None, 0, ()
    for i, (line, cells) in enumerate(itertools.islice(records, _HEADER_SCAN_ROWS)):
        if _known_header_count(cells) >= 2:
            header_at, header_line, header = i, line, cells
            break
    if header_at is None:
        known = ", ".join(COLUMNS)
        reason = f"no header row: none of the first {_HEADER_SCAN_ROWS} rows names two known columns ({known})"
        return _Table(name, [(index, 0, f"{name}: {reason}")], complete=False)
    head = _Row({}, f"{name}:{header_line}", index, header_line)
    columns, labels, issues = _map_header(head, header)
    missing = [column for column in REQUIRED_COLUMNS if column not in labels]
    for column in missing:
        accepted = ", ".join((column, *COLUMNS[column]))
        issues.append(head.issue(column, f"missing column (headers accepted: {accepted})"))
    if missing:
        return _Table(name, issues, complete=False)
    headless = {j for j in range(len(header)) if not _present(header[j])}
    reported: set[int] = set()
    count = 0
    for line, cells in itertools.islice(records, header_at + 1, None):
        count += any(j < len(cells) and _present(cells[j]) for j in columns)
        for j in headless.union(range(len(header), len(cells))) - reported:
            if j < len(cells) and _present(cells[j]):  # once per column, at its first value
                reported.add(j)
                where = f"{name}:{line}: {_column_name(j, spreadsheet)}"
                issues.append((index, line, f"{where}: value in a column without header"))

    def rows() -> Iterator[_Row]:
        for line, cells in itertools.islice(records, header_at + 1, None):
            values = {column: cells[j] for j, column in columns.items() if j < len(cells) and _present(cells[j])}
            if values:
                yield _Row(values, name, index, line, labels, numbered=True)

    return _Table(name, issues, complete=True, count=count, rows=rows)


def _map_header(head: _Row, header: Sequence[Any]) -> tuple[dict[int, str], dict[str, str], list[_Issue]]:
    """(cell index → column, column → header as written, problems) for the header row `head`."""
    columns: dict[int, str] = {}
    labels: dict[str, str] = {}
    issues: list[_Issue] = []
    for j, cell in enumerate(header):
        written = _header_text(cell)
        key = _norm(written)
        column = _HEADERS.get(key)
        if not key or key in _IGNORED:
            continue
        if column is None:
            close = difflib.get_close_matches(key, _HEADERS, n=1)
            hint = (
                f", did you mean {_SPELLINGS[close[0]]!r}?"
                if close
                else f" (known: {', '.join(COLUMNS)}; ignorable: {', '.join(IGNORED_COLUMNS)})"
            )
            issues.append(head.issue(written, f"unknown column{hint}"))
        elif column in labels:
            issues.append(head.issue(written, f"same column as {labels[column]} ({column})"))
        else:
            columns[j], labels[column] = column, written
    return columns, labels, issues


def _known_header_count(cells: Sequence[Any]) -> int:
    return sum(1 for cell in cells if _norm(_header_text(cell)) in _HEADERS)


def _header_text(cell: Any) -> str:
    return "" if cell is None else str(cell).replace("\ufeff", "").strip()


def _column_name(j: int, spreadsheet: bool) -> str:
    """How a user finds column j (0-based): its letter in a spreadsheet, its number in CSV."""
    if not spreadsheet:
        return f"column {j + 1}"
    from openpyxl.utils import get_column_letter

    return f"column {get_column_letter(j + 1)}"


def _present(cell: Any) -> bool:
    # An _Uncached formula is present: it must be reported, not read as an empty cell.
    return cell is not None and (not isinstance(cell, str) or bool(cell.strip()))


def _text(cell: Any) -> str:
    """A cell as text: numbers from spreadsheets without a spurious ".0". Raises _Bad for a
    whole number too long for Excel to have kept every digit (e.g. a 20-digit GB/T 28181
    device code not stored as text)."""
    if cell is None:
        return ""
    if isinstance(cell, _Uncached):
        raise _Bad(
            f"cell {cell.coordinate} holds a formula without a saved value: open the file in Excel or WPS "
            "and save it, or paste the values"
        )
    if isinstance(cell, str):
        return cell.strip()
    if isinstance(cell, float) and cell.is_integer():
        if abs(cell) >= _EXACT_FLOAT_LIMIT:
            raise _Bad("number too long for Excel to keep every digit: store the column as text")
        return str(int(cell))
    return str(cell)


# --- inline devices --------------------------------------------------------------------------


def _inline_rows(devices: list[dict], source: ConfigSource | None, index: int) -> tuple[list[_Row], list[_Issue]]:
    """Rows of the config's `inventory.devices`, each key located at its own line."""
    rows: list[_Row] = []
    issues: list[_Issue] = []
    for i, item in enumerate(devices):
        loc = ("inventory", "devices", i)

        def at(*key: str) -> tuple[int, str]:
            if source is None:
                return i, "<config>"
            line = source.line(loc + key)
            return line, f"{source.path}:{line}"

        line, where = at()
        values: dict[str, Any] = {}
        cell_wheres: dict[str, tuple[int, str]] = {}
        row = _Row(values, where, index, line, prefix=f"inventory.devices[{i}].", cell_wheres=cell_wheres)
        for key, value in item.items():
            key = str(key)
            cell_wheres[key] = at(key)
            if key not in COLUMNS:
                close = difflib.get_close_matches(key, COLUMNS, n=1)
                hint = f", did you mean {close[0]!r}?" if close else f" (known: {', '.join(COLUMNS)})"
                issues.append(row.issue(key, f"unknown key{hint}"))
            elif key == "tags" and isinstance(value, list) and all(isinstance(tag, str) for tag in value):
                values[key] = ";".join(value)
            elif key == "expires" and isinstance(value, dt.date) and not isinstance(value, dt.datetime):
                values[key] = value.isoformat()  # YAML reads 2027-03-31 as a date
            elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
                if _present(value):
                    values[key] = value
            elif value is not None:
                allowed = "text or a list of text" if key == "tags" else "text or a number"
                issues.append(row.issue(key, f"must be {allowed}"))
        rows.append(row)
    return rows, issues


# --- checking rows -------------------------------------------------------------------------


def _parse_row(
    row: _Row, issues: list[_Issue], allow_loopback: bool = False, shared: dict[object, object] | None = None
) -> _Entry | None:
    """The row's entry (None without an id), its Device when every cell is good; appends one
    problem per bad cell to `issues`. `allow_loopback`: see InventoryConfig. `shared`: equal
    values of earlier rows (the same dict for all rows of a load), so that a site, region,
    parent, model … or tag set repeated on thousands of rows is held once: at 100,000 points
    that is ~100 MB less."""
    before = len(issues)

    def cell(column: str, parse: Any, default: Any = None) -> Any:
        if column not in row.values:
            return default
        try:
            return parse(_text(row.values[column]))
        except _Bad as exc:
            issues.append(row.issue(column, str(exc)))
            return None

    device_id = cell("id", str)
    kind = cell("kind", _kind)
    status = cell("status", _status, Status.ACTIVE)
    address = cell("address", lambda text: _address(text, allow_loopback))
    site, region = cell("site", str), cell("region", str)
    lat, lon = cell("lat", _latitude), cell("lon", _longitude)
    parent = cell("parent", str)
    name, model, tags = cell("name", str, device_id), cell("model", str), cell("tags", _tags, frozenset())
    for column in REQUIRED_COLUMNS:
        if column in row.values:
            continue
        if column != "address":
            issues.append(row.issue(column, "missing (required)"))
        elif status is not None and status is not Status.REMOVED:  # None: its own problem
            issues.append(row.issue(column, "missing (required unless status is removed)"))
    if device_id is None:
        return None
    manufacturer, firmware, serial = cell("manufacturer", str), cell("firmware", str), cell("serial", str)
    stream_url, port, uplink = cell("stream_url", _stream_url), cell("port", str), cell("uplink", str)
    url, bandwidth_bps, expires = cell("url", _url), cell("bandwidth", _bandwidth), cell("expires", _expires)
    device = None
    if len(issues) == before:
        if shared is not None:
            site, region, parent, model, tags, manufacturer, firmware, port, uplink = (
                value if value is None else shared.setdefault(value, value)
                for value in (site, region, parent, model, tags, manufacturer, firmware, port, uplink)
            )
        device = Device(
            device_id, name, kind, address, site, region, parent, status, lat, lon, model, tags,
            manufacturer=manufacturer, firmware=firmware, serial=serial, stream_url=stream_url, port=port, uplink=uplink,
            url=url, bandwidth_bps=bandwidth_bps, expires=expires,
        )
    return _Entry(row, device_id, address, status, parent, device)


def _stream_url(text: str) -> str:
    try:
        parts = urlsplit(text)
        ok = parts.scheme in ("rtsp", "rtsps") and bool(parts.hostname) and parts.port != 0
    except ValueError:
        ok = False
    if not ok:
        raise _Bad("must be an rtsp:// URL with a host")
    if parts.username is not None or parts.password is not None:
        # Point lists get mailed around: credentials belong in the config's *_file or *_env.
        raise _Bad("must not carry credentials (user:password@): set them in probes.rtsp")
    return text


def _url(text: str) -> str:
    try:
        return check_http_url(text)
    except ValueError as exc:
        raise _Bad(str(exc)) from None


def _bandwidth(text: str) -> int:
    try:
        return parse_bandwidth(text)
    except ValueError as exc:
        raise _Bad(str(exc)) from None


def _expires(text: str) -> dt.date:
    try:
        return parse_date(text)
    except ValueError as exc:
        raise _Bad(str(exc)) from None


def _kind(text: str) -> Kind:
    try:
        return _KINDS[_norm(text)]
    except KeyError:
        raise _Bad(f"unknown kind {text!r} (expected {', '.join(Kind)})") from None


def _status(text: str) -> Status:
    try:
        return _STATUSES[_norm(text)]
    except KeyError:
        raise _Bad(f"unknown status {text!r} (expected {', '.join(Status)})") from None


def _address(text: str, allow_loopback: bool = False) -> IPAddress:
    """A device's address; raises _Bad for text that is none, and for addresses no device can
    have (see the module docstring)."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise _Bad(f"{text!r} is not an IPv4 or IPv6 address") from None
    if address.is_unspecified:
        raise _Bad(f"{text} is the unspecified address, not a device's")
    if address.is_multicast:
        raise _Bad(f"{text} is a multicast address, not a device's")
    if address == _BROADCAST:
        raise _Bad(f"{text} is the broadcast address, not a device's")
    if address.version == 4 and address.is_reserved:
        raise _Bad(f"{text} is in the reserved range 240.0.0.0/4, not a device's")
    if address.is_loopback and not allow_loopback:
        raise _Bad(f"{text} is a loopback address (this host): set inventory.allow_loopback for a lab")
    return address


_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def _degrees(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _Bad(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise _Bad(f"{text!r} is not a number")
    return value


def _latitude(text: str) -> float:
    value = _degrees(text)
    if not -90 <= value <= 90:
        swapped = " (latitude and longitude swapped?)" if -180 <= value <= 180 else ""
        raise _Bad(f"{text} is out of range -90..90{swapped}")
    return value


def _longitude(text: str) -> float:
    value = _degrees(text)
    if not -180 <= value <= 180:
        raise _Bad(f"{text} is out of range -180..180")
    return value


def _tags(text: str) -> frozenset[str]:
    return frozenset(tag for part in _TAG_SEPARATORS.split(text) if (tag := part.strip()))


def _cross_check(entries: list[_Entry], parents_known: bool) -> list[_Issue]:
    """Problems between rows: duplicate ids and addresses (each naming the first place),
    parents not found (only when `parents_known`: every row of every source was read), and
    parent cycles (once per cycle, at its member loaded first)."""
    issues: list[_Issue] = []
    first_id: dict[str, _Entry] = {}
    first_address: dict[IPAddress, _Entry] = {}
    for entry in entries:
        first = first_id.setdefault(entry.id, entry)
        if first is not entry:
            where = first.row.where_of("id")[1]
            issues.append(entry.row.issue("id", f"duplicate id {entry.id!r} (first at {where})"))
            continue
        if entry.address is not None and entry.status is not Status.REMOVED:
            first = first_address.setdefault(entry.address, entry)
            if first is not entry:
                where = first.row.where_of("address")[1]
                reason = f"duplicate address {entry.address} (first at {where}, id {first.id})"
                issues.append(entry.row.issue("address", reason))
    if parents_known:
        for entry in first_id.values():
            if entry.parent is not None and entry.parent not in first_id:
                issues.append(entry.row.issue("parent", f"parent {entry.parent!r} not found"))
    for cycle in _cycles(first_id):
        issues.append(first_id[cycle[0]].row.issue("parent", f"parent cycle: {' -> '.join(cycle)}"))
    return issues


def _cycles(entries: Mapping[str, _Entry]) -> Iterator[list[str]]:
    """Each parent cycle once, as ids from its member first in `entries` order around to it
    again: ["a", "b", "a"]. Each entry has one parent, so walking up from every entry and
    stopping at anything walked before finds every cycle in linear time."""
    order = {device_id: n for n, device_id in enumerate(entries)}
    done: set[str] = set()
    for start in entries:
        path: list[str] = []
        on_path: set[str] = set()
        node: str | None = start
        while node is not None and node in entries and node not in done:
            if node in on_path:
                cycle = path[path.index(node) :]
                first = min(range(len(cycle)), key=lambda k: order[cycle[k]])
                cycle = cycle[first:] + cycle[:first]
                yield cycle + [cycle[0]]
                break
            path.append(node)
            on_path.add(node)
            node = entries[node].parent
        done.update(path)


def _topo_order(devices: Mapping[str, Device]) -> tuple[Device, ...]:
    """Devices with every parent before its children, otherwise in load order.
    Needs every parent present and no cycles (checked before)."""
    order: list[Device] = []
    placed: set[str] = set()
    for device in devices.values():
        chain = []
        node: Device | None = device
        while node is not None and node.id not in placed:
            chain.append(node)
            node = devices[node.parent] if node.parent is not None else None
        for ancestor in reversed(chain):
            order.append(ancestor)
            placed.add(ancestor.id)
    return tuple(order)
