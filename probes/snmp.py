"""SNMP polling probe: sysUpTime of every device; IF-MIB ports of switches, UPS-MIB (RFC 1628)
of UPS units, HOST-RESOURCES-MIB (RFC 2790) of servers and platforms.

One pysnmp 7.1 SnmpEngine (asyncio) serves every device: one UDP socket per address family,
one request table, v2c communities and v3 USM users configured once per credential set. The
probe talks to pysnmp's command generators directly (GetCommandGenerator,
BulkCommandGeneratorSingleRun) with numeric OIDs: the hlapi wrappers resolve every varbind
against MIB modules, which costs more CPU than the whole poll. That code is in
probes/_snmp_engine.py, imported by SnmpProbe.__aenter__: importing this module (config,
measurements, the probe class) loads neither pysnmp nor pyasn1.

Per device and poll (budget_s gives the worst case):
1. one GET: sysUpTime.0 plus the scalars of its groups (UPS-MIB). No answer → ok=False.
2. one GETBULK walk per table (ifTable+ifXTable columns together, hrStorageTable,
   hrProcessorTable), bounded by `max_repetitions` per request, `max_rows` per table and the
   device's `deadline_s`; at most `max_in_flight_per_device` requests at a time.
A walk that fails half way (timeout, agent error, wrong types, non-increasing OIDs) leaves a
partial result: ok=True (the agent answered) with reason "partial: …".

Results: fields of measurement `snmp` (up, response_ms, sys_uptime_s, rebooted, varbinds) and
series `snmp_interface`, `ups`, `host`, `host_storage` (see MEASUREMENTS).

Public API: SnmpConfig (probes.snmp in config.yaml), SnmpCredentials, SnmpProfile,
SnmpProbe (probes.base.Probe). The credential set (SnmpAuth) and what the probe shares with its
pysnmp side are in probes/snmp_model.py; SNMPv3 users (shared with the trap receiver) in
probes/snmp_usm.py.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Sequence

from pydantic import Field, model_validator

from monitor.core.config_base import SelectorConfig, Strict
from monitor.core.measurement import DEVICE_TAGS, FieldSpec, MeasurementSpec
from monitor.core.model import Basis, Device, Kind, Selector
from probes.base import FieldValue, ProbeResult, Series
from probes.snmp_mibs import (
    GROUPS,
    IF_TABLE,
    SYS_UPTIME,
    TICKS_WRAP,
    GroupName,
    InterfaceSample,
    Obj,
    Table,
    host_fields,
    interface_fields,
    interface_name,
    uptime_step,
    ups_fields,
)
from probes.snmp_model import Poll, SnmpAuth, SnmpFailure, TableData

if TYPE_CHECKING:
    from probes._snmp_engine import SnmpClient

log = logging.getLogger("fleetmon.snmp")

# ---------------------------------------------------------------------------------------------
# Config (the credential set itself, SnmpAuth, is probes.snmp_model's; its v3 part probes.snmp_usm's).


class SnmpCredentials(SnmpAuth):
    """Credentials for the devices `match` selects; the last matching entry wins as a whole
    (fields it does not give are not taken from the top level or earlier entries)."""

    match: SelectorConfig


class SnmpProfile(Strict):
    """Poll groups for the devices `match` selects; the last matching entry wins. Every device
    is also asked for sysUpTime."""

    match: SelectorConfig
    groups: list[GroupName]


DEFAULT_GROUPS: dict[Kind, tuple[GroupName, ...]] = {
    Kind.SWITCH: ("if_mib",),
    Kind.UPS: ("ups_mib",),
    Kind.SERVER: ("host_resources",),
    Kind.PLATFORM: ("host_resources",),
}


class SnmpConfig(SnmpAuth):
    """config.yaml `probes.snmp`. The top-level credential fields are the default credentials;
    without any (no community, no v3 user) only devices matched by `credentials` are polled."""

    enabled: bool = True
    interval_s: Annotated[float, Field(ge=5, le=86_400)] = 60.0
    match: SelectorConfig = SelectorConfig(kind=[Kind.SWITCH, Kind.UPS, Kind.SERVER, Kind.PLATFORM])
    """Which devices are polled (they also need an address and credentials)."""
    port: Annotated[int, Field(ge=1, le=65_535)] = 161
    timeout_s: Annotated[float, Field(gt=0, le=30)] = 2.0
    """Wait for each response; a request is sent 1 + retries times."""
    retries: Annotated[int, Field(ge=0, le=5)] = 1
    max_in_flight_per_device: Annotated[int, Field(ge=1, le=2)] = 2
    """Requests outstanding to one device at a time: small agents (UPS cards) drop more."""
    max_repetitions: Annotated[int, Field(ge=1, le=100)] = 10
    """GETBULK max-repetitions: rows per request of a table walk."""
    max_rows: Annotated[int, Field(ge=1, le=10_000)] = 1000
    """Rows read per table at most (a chassis switch has a few hundred interfaces)."""
    deadline_s: Annotated[float, Field(gt=0, le=600)] = 20.0
    """Whole poll of one device at most; what is read by then is reported (partial)."""
    credentials: list[SnmpCredentials] = []
    profiles: list[SnmpProfile] = []

    @model_validator(mode="after")
    def _one_key_set_per_user(self) -> "SnmpConfig":
        # pysnmp keeps one USM entry per user name (keys are localised per agent engine ID after
        # discovery), so one user name with two key sets would make one of them fail at random.
        seen: dict[str, tuple[Any, ...]] = {}
        for auth in (self, *self.credentials):
            if auth.version == "3" and auth.user is not None:
                if seen.setdefault(auth.user, auth.usm_identity()) != auth.usm_identity():
                    raise ValueError(f"SNMPv3 user {auth.user!r} appears with different protocols or keys")
        return self


# ---------------------------------------------------------------------------------------------
# Measurements.

_TAGS_IF = {**DEVICE_TAGS, "interface": "ifName of the port (else ifDescr), IF-MIB"}
_TAGS_DISK = {**DEVICE_TAGS, "storage": "hrStorageDescr of the fixed disk (mount point), HOST-RESOURCES-MIB"}

MEASUREMENTS = (
    MeasurementSpec("snmp", "One SNMP poll of one device (sysUpTime GET plus its groups).", DEVICE_TAGS, {
        "up": FieldSpec("boolean", "", "the agent answered the GET"),
        "response_ms": FieldSpec("float", "ms", "time to the answer of the first GET, retries included"),
        "sys_uptime_s": FieldSpec("float", "s", "sysUpTime / 100, corrected for 32-bit wraps seen (RFC 3418)"),
        "rebooted": FieldSpec("boolean", "", "sysUpTime went down since the previous poll and it was no wrap"),
        "varbinds": FieldSpec("integer", "varbinds", "variable bindings received in this poll"),
    }),
    MeasurementSpec("snmp_interface", "One switch port per poll (IF-MIB, RFC 2863).", _TAGS_IF, {
        "if_index": FieldSpec("integer", "", "ifIndex"),
        "oper_status": FieldSpec("integer", "", "ifOperStatus: 1 up 2 down 3 testing 4 unknown 5 dormant "
                                                "6 notPresent 7 lowerLayerDown"),
        "admin_status": FieldSpec("integer", "", "ifAdminStatus: 1 up 2 down 3 testing"),
        "up": FieldSpec("boolean", "", "oper_status == 1"),
        "uplink": FieldSpec("boolean", "", "the switch's uplink port (point list column uplink)"),
        "speed_mbps": FieldSpec("integer", "Mbit/s", "ifHighSpeed"),
        "in_bps": FieldSpec("float", "bit/s", "ifHCInOctets delta × 8 / s (no field on first poll or reset)"),
        "out_bps": FieldSpec("float", "bit/s", "ifHCOutOctets delta × 8 / s"),
        "in_utilisation_pct": FieldSpec("float", "%", "in_bps / ifHighSpeed × 100"),
        "out_utilisation_pct": FieldSpec("float", "%", "out_bps / ifHighSpeed × 100"),
        "in_errors_per_s": FieldSpec("float", "1/s", "ifInErrors rate"),
        "out_errors_per_s": FieldSpec("float", "1/s", "ifOutErrors rate"),
        "in_discards_per_s": FieldSpec("float", "1/s", "ifInDiscards rate"),
        "out_discards_per_s": FieldSpec("float", "1/s", "ifOutDiscards rate"),
    }),
    MeasurementSpec("ups", "UPS state per poll (UPS-MIB, RFC 1628).", DEVICE_TAGS, {
        "battery_status": FieldSpec("integer", "", "upsBatteryStatus: 1 unknown 2 normal 3 low 4 depleted"),
        "battery_low": FieldSpec("boolean", "", "battery_status is 3 (low) or 4 (depleted)"),
        "seconds_on_battery": FieldSpec("integer", "s", "upsSecondsOnBattery (0 on mains)"),
        "minutes_remaining": FieldSpec("integer", "min", "upsEstimatedMinutesRemaining"),
        "charge_pct": FieldSpec("integer", "%", "upsEstimatedChargeRemaining"),
        "input_voltage_v": FieldSpec("integer", "V", "upsInputVoltage of input line 1 (RMS)"),
        "input_frequency_hz": FieldSpec("float", "Hz", "upsInputFrequency of input line 1 (sent in 0.1 Hz)"),
        "output_source": FieldSpec("integer", "", "upsOutputSource: 1 other 2 none 3 normal 4 bypass 5 battery "
                                                  "6 booster 7 reducer"),
        "on_battery": FieldSpec("boolean", "", "output_source == 5: mains lost, running on battery"),
        "output_load_pct": FieldSpec("integer", "%", "upsOutputPercentLoad of output line 1"),
        "alarms_present": FieldSpec("integer", "alarms", "upsAlarmsPresent"),
    }),
    MeasurementSpec("host", "Server load per poll (HOST-RESOURCES-MIB, RFC 2790).", DEVICE_TAGS, {
        "cpu_load_pct": FieldSpec("float", "%", "mean hrProcessorLoad over the processors (1-minute averages)"),
        "memory_used_pct": FieldSpec("float", "%", "hrStorageUsed / hrStorageSize of hrStorageRam"),
        "storage_max_used_pct": FieldSpec("float", "%", "used_pct of the fullest fixed disk"),
    }),
    MeasurementSpec("host_storage", "One fixed disk of a server per poll (hrStorageFixedDisk).", _TAGS_DISK, {
        "used_pct": FieldSpec("float", "%", "hrStorageUsed / hrStorageSize × 100"),
        "size_bytes": FieldSpec("integer", "bytes", "hrStorageSize × hrStorageAllocationUnits"),
        "used_bytes": FieldSpec("integer", "bytes", "hrStorageUsed × hrStorageAllocationUnits"),
    }),
)

# ---------------------------------------------------------------------------------------------
# The probe (the requests themselves are in probes/_snmp_engine.py).


def _hint(value: object) -> int | None:
    return value if isinstance(value, int) else None


@dataclass
class _DeviceState:
    """What the previous poll of a device left for the next one."""

    ticks: int
    mono_s: float
    wraps: int = 0
    interfaces: dict[int, InterfaceSample] = field(default_factory=dict)


@dataclass(frozen=True)
class _Plan:
    auth: SnmpAuth
    scalars: tuple[Obj, ...]
    tables: tuple[Table, ...]


class SnmpProbe:
    """The `snmp` probe (probes.base.Probe). Keeps per-device state for rates and reboot
    detection (one entry per polled device, least recently polled dropped beyond the fleet)."""

    name: ClassVar[str] = "snmp"
    basis: ClassVar[Basis | None] = None  # device health (ports, UPS, disks), no online of its own
    Config: ClassVar[type[SnmpConfig]] = SnmpConfig
    measurements: ClassVar[tuple[MeasurementSpec, ...]] = MEASUREMENTS
    offers: ClassVar[tuple[str, ...]] = ()
    learns: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: SnmpConfig) -> None:
        self.cfg = cfg
        self.client: SnmpClient | None = None
        self._match = cfg.match.selector()
        self._credentials: list[tuple[Selector, SnmpAuth]] = [(c.match.selector(), c) for c in cfg.credentials]
        self._profiles: list[tuple[Selector, SnmpProfile]] = [(p.match.selector(), p) for p in cfg.profiles]
        self._state: collections.OrderedDict[str, _DeviceState] = collections.OrderedDict()
        self._wanted: set[str] = set()
        self._warned_no_credentials = False

    async def __aenter__(self) -> "SnmpProbe":
        # Imported here, not at module level: pysnmp and pyasn1 cost about 20 MB of RSS, which a
        # daemon that polls nothing by SNMP must not pay.
        from probes._snmp_engine import SnmpClient

        self.client = SnmpClient()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def plan(self, device: Device) -> _Plan | None:
        """Credentials and objects of a device, or None when it has no credentials."""
        auth: SnmpAuth = self.cfg
        for selector, entry in self._credentials:
            if selector.matches(device):
                auth = entry
        if not auth.complete:
            return None
        groups: Sequence[GroupName] = DEFAULT_GROUPS.get(device.kind, ())
        for selector, profile in self._profiles:
            if selector.matches(device):
                groups = profile.groups
        scalars = tuple(o for g in dict.fromkeys(groups) for o in GROUPS[g].scalars)
        tables = tuple(t for g in dict.fromkeys(groups) for t in GROUPS[g].tables)
        return _Plan(auth, (SYS_UPTIME, *scalars), tables)

    def wants(self, device: Device) -> bool:
        """Devices the `match` selector picks that have an address and credentials."""
        if device.address is None or not self._match.matches(device):
            return False
        if self.plan(device) is None:
            # Said once; a warning only when SNMP credentials were configured at all (some
            # device left out), else SNMP is simply not set up yet.
            if not self._warned_no_credentials:
                self._warned_no_credentials = True
                configured = self.cfg.credentials or self.cfg.community_env or self.cfg.community_file or self.cfg.user
                log.log(
                    logging.WARNING if configured else logging.INFO,
                    "snmp: no credentials for %s (and maybe more devices): not polled; "
                    "set community_env/_file or a `credentials` entry", device.id,
                )
            return False
        self._wanted.add(device.id)
        return True

    def _request_s(self) -> float:
        # pysnmp checks timeouts on a 0.1 s timer tick: each attempt may run that much longer.
        return (self.cfg.timeout_s + 0.1) * (self.cfg.retries + 1)

    def budget_s(self, device: Device) -> float:
        """Worst case of probe(device): the GET, then every table walk's requests one after
        another (ceil(max_rows / max_repetitions) + 1 each, every one taking the full timeout ×
        (retries + 1)), capped by deadline_s (which ends the walks, counted from the start; a GET
        that times out ends the poll); plus 0.5 s for target setup and decoding."""
        plan = self.plan(device)
        walks = len(plan.tables) if plan else 0
        requests = 1 + walks * (-(-self.cfg.max_rows // self.cfg.max_repetitions) + 1)
        request_s = self._request_s()
        return min(requests * request_s, max(request_s, self.cfg.deadline_s)) + 0.5

    async def probe(self, device: Device) -> ProbeResult:
        """Poll one device. Never raises for a dead, slow, misconfigured or hostile agent:
        ok=False with a reason when the first GET fails, ok=True with reason "partial: …" when
        a later part failed."""
        started = time.time_ns()
        if self.client is None:
            raise RuntimeError("SnmpProbe used outside `async with`")
        plan = self.plan(device)
        if device.address is None or plan is None:
            reason = "no address" if device.address is None else "no SNMP credentials"
            return ProbeResult(device.id, self.name, started, False, reason, {"up": False})
        return await self._poll(device, plan, Poll(), started)

    async def _poll(self, device: Device, plan: _Plan, poll: Poll, started: int) -> ProbeResult:
        assert self.client is not None and device.address is not None
        deadline = time.monotonic() + self.cfg.deadline_s
        try:
            target = await self.client.target(str(device.address), device.address.version == 6, self.cfg.port,
                                              plan.auth, self.cfg.timeout_s, self.cfg.retries)
        except Exception as exc:  # pysnmp raises PySnmpError subclasses for bad transports
            return ProbeResult(device.id, self.name, started, False, f"SNMP setup failed: {type(exc).__name__}",
                               {"up": False})
        slots = asyncio.Semaphore(self.cfg.max_in_flight_per_device)
        sent = time.monotonic()
        try:
            async with slots:
                response = await self.client.get(target, [o.oid for o in plan.scalars])
        except SnmpFailure as exc:
            return ProbeResult(device.id, self.name, started, False, str(exc), {"up": False})
        fields: dict[str, FieldValue] = {"up": True, "response_ms": (response.mono_s - sent) * 1000}
        poll.varbinds += len(response.varbinds)
        scalars = self.client.read_scalars(plan.scalars, response, poll)
        data = {t.name: TableData() for t in plan.tables}
        if plan.tables:
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await asyncio.gather(*(
                        self.client.walk(target, t, self.cfg.max_repetitions, self.cfg.max_rows, poll, slots,
                                         data[t.name], _hint(scalars.get(t.size_hint) if t.size_hint else None))
                        for t in plan.tables
                    ))
            except TimeoutError:
                poll.problem(f"deadline {self.cfg.deadline_s:g} s reached, tables incomplete")
        state, rebooted = self._uptime(device.id, scalars.get("sysUpTime"), response.mono_s, fields, poll)
        series: list[Series] = []
        if IF_TABLE.name in data:
            series += self._interfaces(device, data[IF_TABLE.name], state, rebooted)
        if any(o.name.startswith("ups") for o in plan.scalars):
            ups = ups_fields(scalars)
            if ups:
                series.append(Series("ups", {}, ups))
        if "hrStorage" in data:
            host, disks = host_fields(data["hrStorage"].rows, data["hrProcessor"].rows)
            if host:
                series.append(Series("host", {}, host))
            series += [Series("host_storage", {"storage": name}, f) for name, f in disks]
        fields["varbinds"] = poll.varbinds
        reason = poll.reason()
        return ProbeResult(device.id, self.name, started, True, reason, fields, tuple(series))

    def _uptime(self, device_id: str, ticks: Any, mono_s: float, fields: dict[str, FieldValue],
                poll: Poll) -> tuple[_DeviceState | None, bool]:
        """sys_uptime_s and rebooted; returns the device's state (None without sysUpTime: then
        rates cannot be trusted) and whether the agent restarted."""
        prev = self._state.get(device_id)
        if not isinstance(ticks, int):
            poll.problem("no sysUpTime")
            self._state.pop(device_id, None)
            return None, True
        state = _DeviceState(ticks, mono_s)
        rebooted = False
        if prev is not None:
            step = uptime_step(prev.ticks, ticks, mono_s - prev.mono_s)
            rebooted = step == "reboot"
            state.wraps = 0 if rebooted else prev.wraps + (step == "wrap")
            state.interfaces = {} if rebooted else prev.interfaces
        fields["sys_uptime_s"] = (ticks + state.wraps * TICKS_WRAP) / 100
        fields["rebooted"] = rebooted
        self._remember(device_id, state)
        return state, rebooted or prev is None

    def _remember(self, device_id: str, state: _DeviceState) -> None:
        self._state[device_id] = state
        self._state.move_to_end(device_id)
        while len(self._state) > max(len(self._wanted), 1):
            self._state.popitem(last=False)

    def _interfaces(self, device: Device, table: TableData, state: _DeviceState | None,
                    discontinuous: bool) -> list[Series]:
        series = []
        samples: dict[int, InterfaceSample] = {}
        previous = state.interfaces if state is not None else {}
        for index, row in table.rows.items():
            if len(index) != 1:
                continue  # ifIndex is a single sub-identifier (RFC 2863)
            if_index = index[0]
            name = interface_name(row, if_index)
            uplink = device.uplink is not None and device.uplink in (row.get("ifName"), row.get("ifDescr"), name)
            fields, sample = interface_fields(row, table.bits.get(index, {}), uplink, previous.get(if_index),
                                              table.times[index], discontinuous)
            fields["if_index"] = if_index
            samples[if_index] = sample
            series.append(Series("snmp_interface", {"interface": name}, fields))
        if state is not None:
            state.interfaces = samples
        return series
