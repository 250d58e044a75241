"""What the SNMP probe asks for and how answers become fields: the MIB objects of each poll
group (numeric OIDs, no MIB files needed) and the pure computations (uptime wrap, counter rates,
interface / UPS / host fields). No I/O here, so every rule has unit tests.

Sources: SNMPv2-MIB (RFC 3418) sysUpTime, sysObjectID; IF-MIB (RFC 2863) ifTable/ifXTable;
HOST-RESOURCES-MIB (RFC 2790) hrStorageTable, hrProcessorTable. UPS-MIB (RFC 1628) and the
vendor MIBs are data: probes/snmp_profiles/ (probes.snmp_profile).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping

from probes.base import FieldValue

Oid = tuple[int, ...]
ValueKind = Literal["int", "number", "counter", "ticks", "text", "oid"]
"""What a MIB object's value must be: int = INTEGER/Integer32/Gauge32/Unsigned32, number = int or
a decimal OCTET STRING ("50.0"), counter = Counter32/Counter64, ticks = TimeTicks, text = OCTET
STRING, oid = OBJECT IDENTIFIER. A value of another type (a STRING where a Counter64 belongs) is
dropped and named in the result's reason."""


def oid(text: str) -> Oid:
    return tuple(int(part) for part in text.strip(".").split("."))


@dataclass(frozen=True)
class Obj:
    """One MIB object: a scalar instance (full OID with its index) or a table column (OID of
    the column, without index)."""

    name: str
    oid: Oid
    kind: ValueKind


@dataclass(frozen=True)
class Table:
    """Columns walked together (one GETBULK carries one row of each column)."""

    name: str
    columns: tuple[Obj, ...]
    size_hint: str | None = None
    """A scalar of the same group that says how many rows there are (ifNumber): the walk asks
    for just that many rows plus one to see the end, instead of a second full GETBULK."""


@dataclass(frozen=True)
class Group:
    """A poll group of config `profiles`: scalars fetched by GET, tables walked by GETBULK."""

    scalars: tuple[Obj, ...] = ()
    tables: tuple[Table, ...] = ()


SYS_UPTIME = Obj("sysUpTime", oid("1.3.6.1.2.1.1.3.0"), "ticks")

_IF = "1.3.6.1.2.1.2.2.1."  # IF-MIB ifEntry
_IFX = "1.3.6.1.2.1.31.1.1.1."  # IF-MIB ifXEntry
IF_TABLE = Table("interfaces", (
    Obj("ifDescr", oid(_IF + "2"), "text"),
    Obj("ifAdminStatus", oid(_IF + "7"), "int"),
    Obj("ifOperStatus", oid(_IF + "8"), "int"),
    Obj("ifInDiscards", oid(_IF + "13"), "counter"),
    Obj("ifInErrors", oid(_IF + "14"), "counter"),
    Obj("ifOutDiscards", oid(_IF + "19"), "counter"),
    Obj("ifOutErrors", oid(_IF + "20"), "counter"),
    Obj("ifName", oid(_IFX + "1"), "text"),
    Obj("ifHCInOctets", oid(_IFX + "6"), "counter"),
    Obj("ifHCOutOctets", oid(_IFX + "10"), "counter"),
    Obj("ifHighSpeed", oid(_IFX + "15"), "int"),
    Obj("ifCounterDiscontinuityTime", oid(_IFX + "19"), "ticks"),
), size_hint="ifNumber")
IF_NUMBER = Obj("ifNumber", oid("1.3.6.1.2.1.2.1.0"), "int")

_HR = "1.3.6.1.2.1.25."
HR_STORAGE = Table("hrStorage", (
    Obj("hrStorageType", oid(_HR + "2.3.1.2"), "oid"),
    Obj("hrStorageDescr", oid(_HR + "2.3.1.3"), "text"),
    Obj("hrStorageAllocationUnits", oid(_HR + "2.3.1.4"), "int"),
    Obj("hrStorageSize", oid(_HR + "2.3.1.5"), "int"),
    Obj("hrStorageUsed", oid(_HR + "2.3.1.6"), "int"),
))
HR_PROCESSOR = Table("hrProcessor", (Obj("hrProcessorLoad", oid(_HR + "3.3.1.2"), "int"),))
HR_STORAGE_RAM = oid(_HR + "2.1.2")
HR_STORAGE_FIXED_DISK = oid(_HR + "2.1.4")

SYS_OBJECT_ID = Obj("sysObjectID", oid("1.3.6.1.2.1.1.2.0"), "oid")
"""Asked with sysUpTime in every poll: it picks the device profiles (probes.snmp_profile)."""

GROUPS: Mapping[str, Group] = {
    "if_mib": Group(scalars=(IF_NUMBER,), tables=(IF_TABLE,)),
    "ups_mib": Group(),  # UPS-MIB and the vendors' UPS MIBs are device profiles (probes/snmp_profiles)
    "host_resources": Group(tables=(HR_STORAGE, HR_PROCESSOR)),
}
GroupName = Literal["if_mib", "ups_mib", "host_resources"]

Row = dict[str, int | str | Oid]
"""One table row or the scalars: object name → decoded value (int, str, or Oid)."""

# ---------------------------------------------------------------------------------------------
# sysUpTime: TimeTicks (centiseconds) wrap at 2^32, i.e. after 497.1 days (RFC 2578 §7.1.8).

TICKS_WRAP = 1 << 32
_WRAP_SLACK_CS = 6_000  # clock differences and slow answers: 60 s either way


def uptime_step(prev_ticks: int, ticks: int, elapsed_s: float) -> Literal["normal", "wrap", "reboot"]:
    """Classify the change of sysUpTime between two polls `elapsed_s` apart (local clock).

    A drop is a wrap when the previous value plus the elapsed time reaches 2^32 centiseconds
    and the new value is what is left over (both within 60 s); any other drop is a reboot
    (agent restart: its counters restarted too)."""
    if ticks >= prev_ticks:
        return "normal"
    expected = prev_ticks + elapsed_s * 100
    if expected + _WRAP_SLACK_CS >= TICKS_WRAP and abs(expected - TICKS_WRAP - ticks) <= _WRAP_SLACK_CS:
        return "wrap"
    return "reboot"


# ---------------------------------------------------------------------------------------------
# Counter rates (RFC 2863 §3.1.6: counters wrap; discontinuities are signalled by
# ifCounterDiscontinuityTime or an agent restart, and then the delta is meaningless).


def counter_delta(prev: int, cur: int, bits: int) -> int | None:
    """Increase of a `bits`-bit counter from `prev` to `cur`, one wrap allowed; None when it
    went down by more than half its range, which is a reset (a counter cannot plausibly wrap
    and come back that far between two polls: 2^63 octets are 46 years at 100 Gbit/s)."""
    delta = cur - prev if cur >= prev else cur + (1 << bits) - prev
    return delta if delta < 1 << (bits - 1) else None


def counter_rate(prev: int, cur: int, bits: int, elapsed_s: float, max_per_s: float | None = None) -> float | None:
    """Per-second rate of a counter over `elapsed_s`; None when there is no valid rate: no time
    passed, a reset (counter_delta), or a rate above `max_per_s` (a spike no line can carry,
    i.e. an unnoticed reset: such a value would ruin every graph and average)."""
    if elapsed_s <= 0:
        return None
    delta = counter_delta(prev, cur, bits)
    if delta is None:
        return None
    rate = delta / elapsed_s
    if max_per_s is not None and rate > max_per_s:
        return None
    return rate


@dataclass
class InterfaceSample:
    """What the previous poll saw of one interface, for the next poll's rates."""

    mono_s: float
    discontinuity: int | None
    counters: dict[str, tuple[int, int]] = field(default_factory=dict)  # name → (value, bits)


SPEED_MARGIN = 1.5
"""A measured rate may exceed ifHighSpeed by this factor (agents round speeds, jitter in the
sampling instants) before it counts as a spike. Full duplex: each direction on its own."""


_STATUS_RATES = (  # (field, counter object) for the per-second error/discard rates
    ("in_errors_per_s", "ifInErrors"),
    ("out_errors_per_s", "ifOutErrors"),
    ("in_discards_per_s", "ifInDiscards"),
    ("out_discards_per_s", "ifOutDiscards"),
)


def interface_fields(
    row: Row,
    counter_bits: Mapping[str, int],
    uplink: bool,
    prev: InterfaceSample | None,
    mono_s: float,
    discontinuous: bool,
) -> tuple[dict[str, FieldValue], InterfaceSample]:
    """Fields of measurement `snmp_interface` for one IF-MIB row, and the sample to keep.

    - row: decoded columns (IF_TABLE names) of this interface; missing columns give no field.
    - counter_bits: bits (32 or 64) of each counter column as the agent sent it.
    - prev: the interface's sample from the previous poll (None: first poll → no rates).
    - mono_s: local monotonic time at which the row arrived. Local time, not sysUpTime: it is
      taken when the counters were read (the same response), it has sub-ms resolution where
      sysUpTime has 10 ms, and some agents (net-snmp) report their own process uptime there.
    - discontinuous: the agent rebooted since the previous poll → no rates.
    Rates: octets × 8 / s for in_bps/out_bps; utilisation vs ifHighSpeed (Mbit/s).
    """
    fields: dict[str, FieldValue] = {}
    admin, oper, speed = row.get("ifAdminStatus"), row.get("ifOperStatus"), row.get("ifHighSpeed")
    if isinstance(oper, int):
        fields["oper_status"] = oper
        fields["up"] = oper == 1
    if isinstance(admin, int):
        fields["admin_status"] = admin
    fields["uplink"] = uplink
    if isinstance(speed, int):
        fields["speed_mbps"] = speed
    discontinuity = row.get("ifCounterDiscontinuityTime")
    discontinuity = discontinuity if isinstance(discontinuity, int) else None
    sample = InterfaceSample(mono_s, discontinuity)
    for name, bits in counter_bits.items():
        value = row.get(name)
        if isinstance(value, int):
            sample.counters[name] = (value, bits)
    if prev is None or discontinuous or prev.discontinuity != discontinuity:
        return fields, sample
    elapsed = mono_s - prev.mono_s
    max_bytes_per_s = speed * 1e6 / 8 * SPEED_MARGIN if isinstance(speed, int) and speed > 0 else None
    for direction, name in (("in", "ifHCInOctets"), ("out", "ifHCOutOctets")):
        rate = _rate(prev, sample, name, elapsed, max_bytes_per_s)
        if rate is None:
            continue
        bps = rate * 8
        fields[f"{direction}_bps"] = bps
        if isinstance(speed, int) and speed > 0:
            fields[f"{direction}_utilisation_pct"] = bps / (speed * 1e6) * 100
    # Packets ≥ 64 octets: a line cannot carry more errors or discards per second than that.
    max_packets_per_s = max_bytes_per_s / 64 if max_bytes_per_s is not None else None
    for field_name, name in _STATUS_RATES:
        rate = _rate(prev, sample, name, elapsed, max_packets_per_s)
        if rate is not None:
            fields[field_name] = rate
    return fields, sample


def _rate(prev: InterfaceSample, cur: InterfaceSample, name: str, elapsed: float, limit: float | None) -> float | None:
    before, now = prev.counters.get(name), cur.counters.get(name)
    if before is None or now is None or before[1] != now[1]:
        return None  # missing, or the agent changed the counter's type
    return counter_rate(before[0], now[0], now[1], elapsed, limit)


def interface_name(row: Row, if_index: int) -> str:
    """Tag `interface`: ifName, else ifDescr, else "ifIndex N"."""
    for name in ("ifName", "ifDescr"):
        value = row.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return f"ifIndex {if_index}"


# ---------------------------------------------------------------------------------------------
# UPS: what the `ups` measurement derives whatever MIB answered (probes/snmp_profiles/ups_*.yaml
# map every vendor's values onto RFC 1628's codes: upsBatteryStatus, upsOutputSource).

UPS_BATTERY_LOW = {3, 4}  # upsBatteryStatus batteryLow(3), batteryDepleted(4)
UPS_OUTPUT_ON_BATTERY = 5  # upsOutputSource battery(5)


def ups_derived(fields: dict[str, FieldValue]) -> dict[str, FieldValue]:
    """`fields` plus battery_low and on_battery where a profile gave the codes they follow from
    and not the flags themselves (RFC 1628: batteryLow(3)/batteryDepleted(4); battery(5))."""
    status, source = fields.get("battery_status"), fields.get("output_source")
    if "battery_low" not in fields and isinstance(status, int):
        fields["battery_low"] = status in UPS_BATTERY_LOW
    if "on_battery" not in fields and isinstance(source, int):
        fields["on_battery"] = source == UPS_OUTPUT_ON_BATTERY
    return fields


# ---------------------------------------------------------------------------------------------
# HOST-RESOURCES-MIB (RFC 2790).


def _storage_use(row: Row) -> tuple[float, int, int] | None:
    """(used %, size bytes, used bytes) of an hrStorage row, None when incomplete or empty."""
    unit, size, used = row.get("hrStorageAllocationUnits"), row.get("hrStorageSize"), row.get("hrStorageUsed")
    if not (isinstance(unit, int) and isinstance(size, int) and isinstance(used, int)) or size <= 0 or unit <= 0:
        return None
    return used / size * 100, size * unit, used * unit


def host_fields(storage: Mapping[Oid, Row], processors: Mapping[Oid, Row]) -> tuple[dict[str, FieldValue], list[tuple[str, dict[str, FieldValue]]]]:
    """Fields of measurement `host` and, per fixed disk, (hrStorageDescr, fields of
    `host_storage`). cpu_load_pct = mean hrProcessorLoad (the last minute's average per CPU);
    memory_used_pct from the hrStorageRam entry; storage_max_used_pct the fullest fixed disk."""
    fields: dict[str, FieldValue] = {}
    loads = [row["hrProcessorLoad"] for row in processors.values() if isinstance(row.get("hrProcessorLoad"), int)]
    if loads:
        fields["cpu_load_pct"] = sum(loads) / len(loads)  # type: ignore[arg-type]
    disks: list[tuple[str, dict[str, FieldValue]]] = []
    for index, row in storage.items():
        use = _storage_use(row)
        kind = row.get("hrStorageType")
        if use is None:
            continue
        if kind == HR_STORAGE_RAM and "memory_used_pct" not in fields:
            fields["memory_used_pct"] = use[0]
        elif kind == HR_STORAGE_FIXED_DISK:
            descr = row.get("hrStorageDescr")
            name = descr.strip() if isinstance(descr, str) and descr.strip() else f"hrStorageIndex {'.'.join(map(str, index))}"
            disks.append((name, {"used_pct": use[0], "size_bytes": use[1], "used_bytes": use[2]}))
    if disks:
        fields["storage_max_used_pct"] = max(d[1]["used_pct"] for d in disks)  # type: ignore[type-var]
    return fields, disks
