"""SNMP device profiles as data: which MIB objects a kind of device answers, how their values
become fields of declared measurements, and which devices a profile applies to. The way
Telegraf's snmp input and Zabbix templates describe devices, so that a new device type is a
profile file and a test, not code.

A profile is a YAML file (format: docs/SNMP_PROFILES.md). Shipped profiles are package data in
probes/snmp_profiles/ and are loaded when this module is imported (SHIPPED): their measurements
join SnmpProbe.measurements, hence monitor.metrics.schema and docs/SCHEMA.md. User profiles come
from the directories of config `probes.snmp.profile_dirs`, are validated at config load and may
only write measurements and fields already declared (by the probe or a shipped profile): the
schema is a contract with the dashboards, and a new measurement is a reviewed, shipped profile.

What a value goes through (Converter.convert), in this order: the SNMP type the profile declares
(a STRING where an INTEGER belongs is refused); the sentinels that agents send for "unknown"
(−1, 2^31−1, 2^32−1, 0xFFFF, −2^31 and the profile's own) make the value absent, never a number;
the value map; the scale (a vendor's tenths, hundredths, TimeTicks); the valid range (an
impossible value is refused, with the reason in the result); the field's declared type.

Pure: no I/O but reading profile files, no pysnmp.
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal, Mapping, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from monitor.core.config_base import expansion_problem, locate
from monitor.core.measurement import DEVICE_TAGS, FieldSpec, MeasurementSpec
from monitor.core.model import Device, Kind
from probes.base import FieldValue
from probes.snmp_mibs import Obj, Oid, Row, Table, ValueKind, oid

SHIPPED_DIR = Path(__file__).resolve().parent / "snmp_profiles"

SENTINELS = frozenset({-1, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF, -0x8000_0000})
"""Integer values agents send for "unknown" or "not supported" (RFC 1628 agents −1, 16-bit
firmware 0xFFFF, Integer32/Gauge32 maxima): absent, never stored. Applies to objects of type int
and number; a profile adds its own with `sentinels`."""

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
_FIELD = re.compile(r"[a-z][a-z0-9_]*")
_OID = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))+")

ObjectType = Literal["int", "number", "text", "oid", "counter", "ticks"]
"""SNMP type a profile expects: int = INTEGER/Integer32/Gauge32/Unsigned32; number = int or a
decimal STRING (LIEBERT-GP-FLEXIBLE-MIB sends "50.0"); text = OCTET STRING; oid = OBJECT
IDENTIFIER; counter = Counter32/64; ticks = TimeTicks (centiseconds)."""
_KIND: dict[str, ValueKind] = {"int": "int", "number": "number", "text": "text", "oid": "oid", "counter": "counter",
                               "ticks": "ticks"}
FieldType = Literal["integer", "float", "boolean", "string"]


class ProfileError(ValueError):
    """A profile file is invalid; `messages` holds every problem, one line each:
    "FILE:LINE: path: message"."""

    def __init__(self, messages: Iterable[str]) -> None:
        self.messages = list(messages)
        super().__init__("\n".join(self.messages))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_oid(text: str) -> str:
    text = text.strip().lstrip(".")
    if not _OID.fullmatch(text):
        raise ValueError(f"{text!r} is not a numeric OID (dotted numbers; MIB names are not resolved)")
    return text


def _keys_as_text(value: object) -> object:
    """YAML reads `3:` as an int key (and `true:` as a bool): raw values are matched as text (3,
    "Active Event", an OID)."""
    if isinstance(value, dict):
        return {(str(k).lower() if isinstance(k, bool) else str(k)): v for k, v in value.items()}
    return value


def _scale(value: float | str) -> float:
    """A number, or a fraction written "1/6000" (TimeTicks to minutes)."""
    if isinstance(value, str):
        try:
            value = float(Fraction(value.replace(" ", "")))
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"scale {value!r} is neither a number nor a fraction like 1/10") from None
    if not math.isfinite(value) or value == 0:
        raise ValueError("scale must be a finite number other than 0")
    return float(value)


class FieldDecl(_Model):
    type: FieldType
    unit: str = ""
    description: str


class MeasurementDecl(_Model):
    """A measurement a shipped profile adds to the schema (device tags are implied)."""

    name: Annotated[str, Field(pattern=_FIELD.pattern)]
    description: str
    tags: dict[str, str] = {}
    fields: dict[str, FieldDecl]

    def spec(self) -> MeasurementSpec:
        return MeasurementSpec(self.name, self.description, {**DEVICE_TAGS, **self.tags},
                               {k: FieldSpec(f.type, f.unit, f.description) for k, f in self.fields.items()})


class ObjectDecl(_Model):
    """One MIB object: a scalar instance (full OID with its index) or a table column (the column
    OID, without index). `field` is where its value goes (none: read for a tag only)."""

    name: Annotated[str, Field(pattern=_NAME.pattern)]
    oid: str
    type: ObjectType
    field: Annotated[str, Field(pattern=_FIELD.pattern)] | None = None
    scale: float | None = None
    map: dict[str, int | float | bool | str] | None = None
    """Raw value (written as text: 3, "onBattery", "1.3.6.1.4.1.476.1.42.3.4.1.1.3") → stored
    value; a value the map does not name is refused."""
    valid: tuple[float, float] | None = None
    """[min, max] of the stored value (after map and scale); outside: refused, with the reason."""
    sentinels: list[int] = []
    note: str = ""
    """Why the scale or map (a vendor's unit quirk): shown in docs/SNMP_PROFILES.md."""

    @field_validator("oid")
    @classmethod
    def _oid(cls, value: str) -> str:
        return _check_oid(value)

    @field_validator("map", mode="before")
    @classmethod
    def _map_keys(cls, value: object) -> object:
        return _keys_as_text(value)

    @field_validator("scale", mode="before")
    @classmethod
    def _scale_value(cls, value: object) -> object:
        return _scale(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _consistent(self) -> "ObjectDecl":
        if self.valid is not None and self.valid[0] > self.valid[1]:
            raise ValueError(f"valid range [{self.valid[0]:g}, {self.valid[1]:g}] is empty")
        if self.scale is not None and self.type in ("text", "oid"):
            raise ValueError(f"scale applies to numbers, not to type {self.type}")
        if self.map is not None and not self.map:
            raise ValueError("map is empty")
        if self.map is not None and self.scale is not None:
            raise ValueError("give map or scale, not both")
        return self


class TableDecl(_Model):
    """A table walked column by column (GETBULK): one series per row in `measurement`, tagged
    `tag` = the row's value of `tag_from` (a column of type text or oid, mapped by `tag_map`),
    or the row index when tag_from is not given."""

    name: Annotated[str, Field(pattern=_NAME.pattern)]
    measurement: str
    tag: Annotated[str, Field(pattern=_FIELD.pattern)]
    tag_from: str | None = None
    tag_map: dict[str, str] = {}
    columns: Annotated[list[ObjectDecl], Field(min_length=1)]
    skip_when: dict[str, list[int | str]] = {}
    """Rows to leave out, not as values refused but as not applicable: a row whose every listed
    column has one of its listed raw values (ENTITY tables list the chassis, fans and ports too,
    with CPU and memory usage 0)."""

    @field_validator("tag_map", mode="before")
    @classmethod
    def _tag_map_keys(cls, value: object) -> object:
        return _keys_as_text(value)

    @model_validator(mode="after")
    def _columns(self) -> "TableDecl":
        names = [c.name for c in self.columns]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"column names appear twice: {', '.join(dup)}")
        if self.tag_from is not None and self.tag_from not in names:
            raise ValueError(f"tag_from names {self.tag_from!r}, which is no column of this table "
                             f"(columns: {', '.join(names)})")
        if not any(c.field for c in self.columns):
            raise ValueError("no column writes a field")
        unknown = sorted(set(self.skip_when) - set(names))
        if unknown:
            raise ValueError(f"skip_when names {', '.join(unknown)}, which are no columns of this table")
        return self


class Match(_Model):
    """Devices a profile applies to: of the listed kinds (none: any kind) and whose sysObjectID
    starts with one of `sys_object_id` or whose point-list model matches one of `model`
    (shell patterns, case-insensitive); with neither list, every device of the kinds."""

    sys_object_id: list[str] = []
    model: list[str] = []
    kind: list[Kind] = []

    @field_validator("sys_object_id")
    @classmethod
    def _oids(cls, values: list[str]) -> list[str]:
        return [_check_oid(v) for v in values]

    @model_validator(mode="after")
    def _something(self) -> "Match":
        if not (self.sys_object_id or self.model or self.kind):
            raise ValueError("match needs sys_object_id, model or kind: a profile for every device is a mistake")
        return self


class ProfileDecl(_Model):
    """One profile file."""

    profile: Annotated[str, Field(pattern=_FIELD.pattern)]
    description: str
    mib: str
    """The MIB(s) the profile reads, as shown in results (ups.mibs) and tables."""
    sources: list[str] = []
    """Where the OIDs and units come from (MIB files, vendor documents)."""
    match: Match
    measurement: str | None = None
    """Measurement of the scalars (one point per poll)."""
    measurements: list[MeasurementDecl] = []
    scalars: list[ObjectDecl] = []
    tables: list[TableDecl] = []

    @model_validator(mode="after")
    def _shape(self) -> "ProfileDecl":
        if not self.scalars and not self.tables:
            raise ValueError("a profile reads scalars, tables or both")
        if self.scalars and self.measurement is None:
            raise ValueError("scalars need `measurement` (the measurement they write)")
        names = [s.name for s in self.scalars] + [t.name for t in self.tables]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"names appear twice: {', '.join(dup)}")
        return self


# ---------------------------------------------------------------------------------------------
# Loading (YAML with line numbers in every error).


def _load_yaml(path: Path) -> tuple[yaml.Node, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError([f"{path}: cannot read: {getattr(exc, 'strerror', None) or 'not UTF-8 text'}"]) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None and (too_large := expansion_problem(root)) is not None:
            raise ProfileError([f"{path}:{too_large[0].line + 1}: {too_large[1]}"])
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{mark.line + 1}:{mark.column + 1}" if mark else "1"
        raise ProfileError([f"{path}:{where}: YAML syntax error: {exc.problem}"]) from None
    if root is None or not isinstance(data, dict):
        raise ProfileError([f"{path}:1: a profile is a mapping (profile:, match:, scalars: …)"])
    return root, data


def _where(path: Path, root: yaml.Node, loc: Sequence[str | int]) -> str:
    shown, line = locate(root, tuple(loc))
    return f"{path}:{line}: {'.'.join(map(str, shown)) or '(top)'}"


@dataclass(frozen=True)
class Profile:
    """A validated profile, ready for polling: `scalars` and `tables` are the probe's Obj and
    Table (named "<profile>:<name>"); `converters` turn each object's raw value into its field."""

    decl: ProfileDecl
    path: Path
    shipped: bool
    scalars: tuple[Obj, ...]
    tables: tuple[Table, ...]
    converters: Mapping[str, "Converter"]  # object key ("<profile>:<name>") → converter

    @property
    def name(self) -> str:
        return self.decl.profile

    @property
    def prefixes(self) -> tuple[Oid, ...]:
        cached = self.__dict__.get("_prefixes")
        if cached is None:
            cached = tuple(oid(p) for p in self.decl.match.sys_object_id)
            object.__setattr__(self, "_prefixes", cached)  # parsed once: this runs every poll
        return cached

    def match_rank(self, device: Device, sys_object_id: Oid | None) -> int | None:
        """None when the profile does not apply; else how specifically it applies (the length
        of the matching sysObjectID prefix; 1 for a model match; 0 for kind only): values of
        more specific profiles win when several write one measurement."""
        m = self.decl.match
        if m.kind and device.kind not in m.kind:
            return None
        if not m.sys_object_id and not m.model:
            return 0
        rank = None
        if sys_object_id is not None:
            for p in self.prefixes:
                if sys_object_id[: len(p)] == p:
                    rank = max(rank or 0, len(p))
        if rank is None and device.model and any(fnmatch.fnmatch(device.model.lower(), pat.lower()) for pat in m.model):
            rank = 1
        return rank


def _check_fields(decl: ProfileDecl, known: Mapping[str, MeasurementSpec],
                  problem: Any) -> None:
    """Every field a profile writes exists in its measurement with a type the conversion can
    give; every table tag exists."""
    def check(measurement: str | None, obj: ObjectDecl, loc: tuple) -> None:
        spec = known.get(measurement or "")
        if spec is None or obj.field is None:
            return
        f = spec.fields.get(obj.field)
        if f is None:
            problem((*loc, "field"), f"{measurement} has no field {obj.field!r} (fields: {', '.join(spec.fields)})")
            return
        if f.type == "boolean" and not (obj.map and all(isinstance(v, bool) for v in obj.map.values())):
            problem((*loc, "map"), f"{measurement}.{obj.field} is boolean: give a map to true/false")
        if f.type in ("integer", "float") and obj.type in ("text", "oid") and not obj.map:
            problem((*loc, "type"), f"{measurement}.{obj.field} is {f.type}: type {obj.type} needs a map to numbers")
        if obj.map and f.type in ("integer", "float") and not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in obj.map.values()):
            problem((*loc, "map"), f"{measurement}.{obj.field} is {f.type}: the map must give numbers")
        if f.type == "string" and obj.map and not all(isinstance(v, str) for v in obj.map.values()):
            problem((*loc, "map"), f"{measurement}.{obj.field} is a string: the map must give strings")

    for i, s in enumerate(decl.scalars):
        if decl.measurement not in known:
            break
        check(decl.measurement, s, ("scalars", i))
    if decl.scalars and decl.measurement not in known:
        problem(("measurement",), f"unknown measurement {decl.measurement!r} (declared: {', '.join(sorted(known))})")
    for i, t in enumerate(decl.tables):
        spec = known.get(t.measurement)
        if spec is None:
            problem(("tables", i, "measurement"),
                    f"unknown measurement {t.measurement!r} (declared: {', '.join(sorted(known))})")
            continue
        if t.tag not in spec.tags:
            problem(("tables", i, "tag"), f"{t.measurement} has no tag {t.tag!r} (tags: {', '.join(spec.tags)})")
        for j, c in enumerate(t.columns):
            check(t.measurement, c, ("tables", i, "columns", j))


def load_profile(path: Path, known: Mapping[str, MeasurementSpec], *, shipped: bool) -> Profile:
    """Read and validate one profile file. `known`: the measurements it may write (for a shipped
    profile its own declarations are added). Raises ProfileError with every problem located."""
    root, data = _load_yaml(path)
    try:
        decl = ProfileDecl.model_validate(data)
    except ValidationError as exc:
        messages = [f"{_where(path, root, e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                    for e in exc.errors(include_url=False)]
        raise ProfileError(list(dict.fromkeys(messages))) from None
    problems: list[str] = []

    def problem(loc: tuple, message: str) -> None:
        problems.append(f"{_where(path, root, loc)}: {message}")

    if decl.profile != path.stem:
        problem(("profile",), f"profile {decl.profile!r} must be named like its file ({path.stem!r})")
    if decl.measurements and not shipped:
        problem(("measurements",), "user profiles write measurements that are already declared (the schema is a "
                                   "contract with the dashboards); a new measurement is a shipped profile")
    own = {m.name: m.spec() for m in decl.measurements}
    for i, m in enumerate(decl.measurements):
        if m.name in known:
            problem(("measurements", i, "name"), f"measurement {m.name!r} is declared already")
    _check_fields(decl, {**known, **own}, problem)
    if problems:
        raise ProfileError(problems)
    scalars, tables, converters = [], [], {}
    all_known = {**known, **own}
    for s in decl.scalars:
        key = f"{decl.profile}:{s.name}"
        scalars.append(Obj(key, oid(s.oid), _KIND[s.type]))
        converters[key] = Converter(s, all_known[decl.measurement or ""].fields.get(s.field or ""))
    for t in decl.tables:
        columns = []
        for c in t.columns:
            key = f"{decl.profile}:{c.name}"
            columns.append(Obj(c.name, oid(c.oid), _KIND[c.type]))
            converters[key] = Converter(c, all_known[t.measurement].fields.get(c.field or ""))
        tables.append(Table(f"{decl.profile}:{t.name}", tuple(columns)))
    return Profile(decl, path, shipped, tuple(scalars), tuple(tables), converters)


def load_profiles(paths: Iterable[Path], known: Mapping[str, MeasurementSpec], *,
                  shipped: bool) -> tuple[Profile, ...]:
    """Every profile file (*.yaml) of `paths` (files or directories), in name order, each
    validated against `known` plus what the files before it declare. Profile names are file
    names, unique. Raises ProfileError listing every problem of every file."""
    files: list[Path] = []
    problems: list[str] = []
    for p in paths:
        if p.is_dir():
            files += sorted(p.glob("*.yaml"))
        elif p.is_file():
            files.append(p)
        else:
            problems.append(f"{p}: no such profile file or directory")
    profiles: list[Profile] = []
    known = dict(known)
    for f in files:
        try:
            profile = load_profile(f, known, shipped=shipped)
        except ProfileError as exc:
            problems += exc.messages
            continue
        if any(p.name == profile.name for p in profiles):
            problems.append(f"{f}:1: profile {profile.name!r} is given twice")
            continue
        known.update({m.name: m.spec() for m in profile.decl.measurements})
        profiles.append(profile)
    if problems:
        raise ProfileError(problems)
    return tuple(profiles)


# ---------------------------------------------------------------------------------------------
# Values.


@dataclass(frozen=True)
class Refusal:
    """A value not stored: `why` is "sentinel" (the agent's "unknown") or the reason."""

    name: str
    raw: object
    why: str
    field: str | None = None

    def __str__(self) -> str:
        return f"{self.name}={self.raw!r}: {self.why}"


def _fmt(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class Converter:
    """Raw (decoded) value of one object → the value of its field, or a Refusal."""

    decl: ObjectDecl
    target: FieldSpec | None

    def convert(self, raw: int | float | str | Oid) -> FieldValue | Refusal | None:
        """The stored value; a Refusal (sentinel, unmapped, out of range); None when the object
        writes no field (a tag column)."""
        d = self.decl
        if isinstance(raw, int) and d.type in ("int", "number") and (raw in SENTINELS or raw in d.sentinels):
            return Refusal(d.name, raw, "sentinel (the agent's 'unknown')", d.field)
        if isinstance(raw, float) and d.type == "number" and int(raw) == raw and int(raw) in d.sentinels:
            return Refusal(d.name, raw, "sentinel (the agent's 'unknown')", d.field)
        if d.field is None:
            return None
        value: Any = raw
        if d.map is not None:
            key = ".".join(map(str, raw)) if isinstance(raw, tuple) else (
                str(int(raw)) if isinstance(raw, float) and raw == int(raw) else str(raw))
            if key not in d.map:
                return Refusal(d.name, raw, "not a value the profile knows", d.field)
            value = d.map[key]
        elif isinstance(raw, tuple):
            value = ".".join(map(str, raw))
        if d.scale is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = value * d.scale
        if d.valid is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
            lo, hi = d.valid
            if not lo <= value <= hi:
                unit = f" {self.target.unit}" if self.target and self.target.unit else ""
                return Refusal(d.name, raw, f"{_fmt(value)}{unit} outside {_fmt(lo)}…{_fmt(hi)}{unit}", d.field)
        return _coerce(value, self.target)


def _coerce(value: Any, target: FieldSpec | None) -> FieldValue:
    kind = target.type if target else None
    if kind == "integer" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(round(value))
    if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return round(float(value), 6)  # 2101 × 0.1 is 210.10000000000002 in binary floating point
    if kind == "string":
        return str(value)
    return value


@dataclass
class Applied:
    """What one profile gave in one poll."""

    profile: Profile
    fields: dict[str, FieldValue] = field(default_factory=dict)  # the scalars' measurement
    series: list[tuple[str, dict[str, str], dict[str, FieldValue]]] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    missing: list[tuple[str, str | None]] = field(default_factory=list)  # (scalar name, its field): not in the agent
    answered: bool = False  # the agent has at least one of its objects


def apply(profile: Profile, scalars: Row, missing: Iterable[str], tables: Mapping[str, Mapping[Oid, Row]]) -> Applied:
    """Turn one poll's decoded values (scalars by object key, rows of the profile's tables by
    table name) into fields and series of the profile's measurements."""
    out = Applied(profile)
    missing_keys = set(missing)
    for s in profile.decl.scalars:
        key = f"{profile.name}:{s.name}"
        if key in missing_keys:
            out.missing.append((s.name, s.field))
            continue
        if key not in scalars:
            continue
        out.answered = True
        value = profile.converters[key].convert(scalars[key])
        if isinstance(value, Refusal):
            out.refused.append(value)
        elif value is not None and s.field is not None and s.field not in out.fields:
            out.fields[s.field] = value
    for t in profile.decl.tables:
        rows = tables.get(f"{profile.name}:{t.name}", {})
        for index, row in rows.items():
            if row:
                out.answered = True
            if t.skip_when and _skipped(t.skip_when, row):
                continue
            tag = _row_tag(t, index, row)
            if tag is None:
                continue
            fields: dict[str, FieldValue] = {}
            for c in t.columns:
                if c.name not in row:
                    continue
                value = profile.converters[f"{profile.name}:{c.name}"].convert(row[c.name])  # type: ignore[arg-type]
                if isinstance(value, Refusal):
                    out.refused.append(Refusal(f"{c.name}.{'.'.join(map(str, index))}", value.raw, value.why))
                    # (a row's refusal is not covered by another profile's field: field left None)
                elif value is not None and c.field is not None:
                    fields[c.field] = value
            if fields:
                out.series.append((t.measurement, {t.tag: tag}, fields))
    return out


def _skipped(skip_when: Mapping[str, list[int | str]], row: Row) -> bool:
    """The row has at least one of the listed columns, and each it has holds a listed value."""
    present = [(c, vs) for c, vs in skip_when.items() if c in row]
    return bool(present) and all(str(row[c]) in {str(v) for v in vs} for c, vs in present)


def _row_tag(table: TableDecl, index: Oid, row: Row) -> str | None:
    if table.tag_from is None:
        return ".".join(map(str, index))
    value = row.get(table.tag_from)
    if value is None:
        return None
    text = ".".join(map(str, value)) if isinstance(value, tuple) else str(value).strip()
    if table.tag_map:
        return table.tag_map.get(text, text)
    return text or ".".join(map(str, index))
