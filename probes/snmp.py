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
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Sequence

from pydantic import Field, PrivateAttr, model_validator

from monitor.core.config_base import SelectorConfig, Strict
from monitor.core.measurement import DEVICE_TAGS, FieldSpec, MeasurementSpec
from monitor.core.model import Basis, Device, Kind, Selector
from probes.base import FieldValue, ProbeResult, Series
from probes.snmp_mibs import (
    GROUPS,
    IF_TABLE,
    SYS_OBJECT_ID,
    SYS_UPTIME,
    TICKS_WRAP,
    GroupName,
    InterfaceSample,
    Obj,
    Oid,
    Row,
    Table,
    host_fields,
    interface_fields,
    interface_name,
    uptime_step,
    ups_derived,
)
from probes.snmp_model import GET_CHUNK, Poll, SnmpAuth, SnmpFailure, TableData
from probes.snmp_profile import SHIPPED_DIR, Profile, ProfileError, apply, load_profiles

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
    match: SelectorConfig = SelectorConfig(kind=[Kind.SWITCH, Kind.UPS, Kind.SERVER, Kind.PLATFORM, Kind.AIRCON,
                                                 Kind.SENSOR, Kind.PDU])
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
    profile_dirs: list[Path] = []
    """Directories (or files) of your own device profiles (*.yaml, docs/SNMP_PROFILES.md), read
    and checked at config load: they may write the measurements and fields the schema declares.
    A profile named like a shipped one replaces it."""

    _device_profiles: tuple[Profile, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _load_device_profiles(self) -> "SnmpConfig":
        user: tuple[Profile, ...] = ()
        if self.profile_dirs:
            try:
                user = load_profiles(self.profile_dirs, {m.name: m for m in MEASUREMENTS}, shipped=False)
            except ProfileError as exc:
                raise ValueError("device profiles are invalid:\n  " + "\n  ".join(exc.messages)) from None
        mine = {p.name for p in user}
        self._device_profiles = tuple(p for p in SHIPPED if p.name not in mine) + user
        return self

    @property
    def device_profiles(self) -> tuple[Profile, ...]:
        """The shipped profiles and the user's (probes.snmp_profile), the user's replacing
        shipped ones of the same name."""
        return self._device_profiles

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

BUILTIN_MEASUREMENTS = (
    MeasurementSpec("snmp", "One SNMP poll of one device (sysUpTime GET plus its groups and device profiles).",
                    DEVICE_TAGS, {
        "up": FieldSpec("boolean", "", "the agent answered the GET and, for a UPS, a known UPS MIB answered"),
        "response_ms": FieldSpec("float", "ms", "time to the answer of the first GET, retries included"),
        "sys_uptime_s": FieldSpec("float", "s", "sysUpTime / 100, corrected for 32-bit wraps seen (RFC 3418)"),
        "rebooted": FieldSpec("boolean", "", "sysUpTime went down since the previous poll and it was no wrap"),
        "varbinds": FieldSpec("integer", "varbinds", "variable bindings received in this poll"),
        "values_refused": FieldSpec("integer", "values", "values the agent sent and fleetmon did not store: sentinels "
                                                       "(the agent's 'unknown'), values outside the valid range, "
                                                       "unknown codes; named in the result's reason"),
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
    MeasurementSpec("ups", "UPS state per poll, whatever MIB answered: UPS-MIB (RFC 1628) or the vendor's "
                           "(APC PowerNet, Liebert/Vertiv, Huawei, Eaton XUPS, Tripp Lite), mapped onto RFC 1628's "
                           "codes and units (probes/snmp_profiles/ups_*.yaml; docs/SNMP_PROFILES.md).", DEVICE_TAGS, {
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
        "output_voltage_v": FieldSpec("float", "V", "upsOutputVoltage of output line 1 (RMS)"),
        "output_frequency_hz": FieldSpec("float", "Hz", "upsOutputFrequency (sent in 0.1 Hz)"),
        "battery_voltage_v": FieldSpec("float", "V", "upsBatteryVoltage (DC; sent in 0.1 V)"),
        "battery_temp_c": FieldSpec("float", "°C", "upsBatteryTemperature (or the vendor's UPS temperature)"),
        "alarms_present": FieldSpec("integer", "alarms", "upsAlarmsPresent (or the vendor's count of active alarms)"),
        "mibs": FieldSpec("string", "", "the MIBs that gave these values, most specific first (e.g. "
                                       "'PowerNet-MIB, UPS-MIB')"),
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

SHIPPED: tuple[Profile, ...] = load_profiles([SHIPPED_DIR], {m.name: m for m in BUILTIN_MEASUREMENTS}, shipped=True)
"""The device profiles shipped in probes/snmp_profiles (read at import: a broken shipped profile is
a bug that stops the import, and tests/test_snmp_profiles.py loads them all)."""

MEASUREMENTS = BUILTIN_MEASUREMENTS + tuple(m.spec() for p in SHIPPED for m in p.decl.measurements)
"""What the probe writes: its own measurements and those the shipped profiles declare."""

UPS_MEASUREMENT = "ups"
REQUIRED: dict[Kind, str] = {Kind.UPS: UPS_MEASUREMENT}
"""A polled device of this kind with none of these values failed its poll: a UPS from which no
known UPS MIB answered is not a healthy UPS (it may be a wrong card, or a MIB fleetmon lacks)."""

PROFILE_KINDS = frozenset({Kind.AIRCON, Kind.SENSOR, Kind.PDU})
"""Kinds read only through device profiles: one from which no profile got a value failed its
poll (a precision AC or sensor whose MIB fleetmon lacks is not a healthy one; add a profile)."""

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
    ups: bool = False
    """The device's groups include ups_mib: the UPS profiles apply, and their values are required
    of a UPS (REQUIRED)."""


def _chunks(objs: Sequence[Obj], size: int) -> list[tuple[Obj, ...]]:
    unique: dict[Oid, Obj] = {}
    for o in objs:
        unique.setdefault(o.oid, o)  # objects sharing an OID: one varbind, decoded for each
    oids = list(unique.values())
    return [tuple(oids[i:i + size]) for i in range(0, len(oids), size)]


class SnmpProbe:
    """The `snmp` probe (probes.base.Probe). Keeps per-device state for rates and reboot
    detection (one entry per polled device, least recently polled dropped beyond the fleet), and
    each device's sysObjectID, which picks its device profiles (probes.snmp_profile)."""

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
        self._device_profiles = cfg.device_profiles
        self._state: collections.OrderedDict[str, _DeviceState] = collections.OrderedDict()
        self._identity: dict[str, Oid] = {}  # device id → sysObjectID of its last poll
        self._profile_keys = frozenset(o.name for p in self._device_profiles for o in p.scalars)
        self._picked: dict[tuple, list[Profile]] = {}  # profiles_for results: it runs every poll
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
        """Credentials and objects of a device (its groups; device profiles come on top, see
        profiles_for), or None when it has no credentials."""
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
        return _Plan(auth, (SYS_UPTIME, SYS_OBJECT_ID, *scalars), tables, "ups_mib" in groups)

    def profiles_for(self, device: Device, plan: _Plan, sys_object_id: Oid | None) -> list[Profile]:
        """The device profiles that apply, most specific first (Profile.match_rank); UPS profiles
        (measurement `ups`) only where the device's groups include ups_mib."""
        key = (device.id, device.kind, device.model, sys_object_id, plan.ups)
        picked = self._picked.get(key)
        if picked is None:
            if len(self._picked) > 4 * max(len(self._wanted), 1):
                self._picked.clear()  # devices and sysObjectIDs come and go: bounded
            picked = self._picked[key] = self._rank(device, plan, sys_object_id)
        return picked

    def _rank(self, device: Device, plan: _Plan, sys_object_id: Oid | None) -> list[Profile]:
        ranked = []
        for i, profile in enumerate(self._device_profiles):
            if profile.decl.measurement == UPS_MEASUREMENT and not plan.ups:
                continue
            rank = profile.match_rank(device, sys_object_id)
            if rank is not None:
                ranked.append((-rank, i, profile))
        return [p for _, _, p in sorted(ranked, key=lambda r: r[:2])]

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
        """Worst case of probe(device): the GETs (sysUpTime and the groups' scalars with the
        scalars of the device profiles its last known sysObjectID picks, GET_CHUNK varbinds
        each; one more round when the sysObjectID is new), then every table walk's requests one
        after another (ceil(max_rows / max_repetitions) + 1 each, every one taking the full
        timeout × (retries + 1)), capped by deadline_s (which ends everything after the first
        GET, counted from the start; a first GET that times out ends the poll); plus 0.5 s for
        target setup and decoding. The first poll of a device walks no profile tables: its
        sysObjectID is not known yet when the walks start."""
        plan = self.plan(device)
        if plan is None:
            return self._request_s() + 0.5
        identity = self._identity.get(device.id)
        profiles = self.profiles_for(device, plan, identity)
        scalars = [*plan.scalars, *(o for p in profiles for o in p.scalars)]
        gets = len(_chunks(scalars, GET_CHUNK))
        if identity is None and self._device_profiles:
            gets += 1 + max((len(p.scalars) for p in self._device_profiles), default=0) // GET_CHUNK
        walks = len(plan.tables) + (sum(len(p.tables) for p in profiles) if identity is not None else 0)
        requests = gets + walks * (-(-self.cfg.max_rows // self.cfg.max_repetitions) + 1)
        request_s = self._request_s()
        return min(requests * request_s, max(request_s, self.cfg.deadline_s)) + 0.5

    async def probe(self, device: Device) -> ProbeResult:
        """Poll one device. Never raises for a dead, slow, misconfigured or hostile agent:
        ok=False with a reason when the first GET fails or a UPS answers no known UPS MIB,
        ok=True with reason "partial: …" when a later part failed or values were refused."""
        started = time.time_ns()
        if self.client is None:
            raise RuntimeError("SnmpProbe used outside `async with`")
        plan = self.plan(device)
        if device.address is None or plan is None:
            reason = "no address" if device.address is None else "no SNMP credentials"
            return ProbeResult(device.id, self.name, started, False, reason, {"up": False})
        return await self._poll(device, plan, Poll(), started)

    async def _get_scalars(self, target: Any, objs: Sequence[Obj], poll: Poll, slots: asyncio.Semaphore,
                           values: Row, missing: list[str], profile_keys: frozenset[str]) -> None:
        """GET `objs` in chunks into `values`; profile objects the agent lacks go to `missing`.
        A failed chunk is a problem of the poll, the rest goes on."""
        assert self.client is not None
        for chunk in _chunks(objs, GET_CHUNK):
            try:
                async with slots:
                    response = await self.client.get(target, [o.oid for o in chunk])
            except SnmpFailure as exc:
                poll.problem(f"GET of device profile objects: {exc}")
                continue
            poll.varbinds += len(response.varbinds)
            wanted = [o for o in objs if o.oid in {c.oid for c in chunk}]
            self._read(wanted, response, poll, values, missing, profile_keys)

    def _read(self, objs: Sequence[Obj], response: Any, poll: Poll, values: Row, missing: list[str],
              profile_keys: frozenset[str]) -> None:
        assert self.client is not None
        values.update(self.client.read_scalars(objs, response, poll, missing, profile_keys))

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
        known = self._identity.get(device.id)
        profiles = self.profiles_for(device, plan, known)
        profile_keys = self._profile_keys
        asked = [*plan.scalars, *(o for p in profiles for o in p.scalars)]
        first, *rest = _chunks(asked, GET_CHUNK)
        sent = time.monotonic()
        try:
            async with slots:
                response = await self.client.get(target, [o.oid for o in first])
        except SnmpFailure as exc:
            return ProbeResult(device.id, self.name, started, False, str(exc), {"up": False})
        fields: dict[str, FieldValue] = {"up": True, "response_ms": (response.mono_s - sent) * 1000}
        poll.varbinds += len(response.varbinds)
        scalars: Row = {}
        missing: list[str] = []
        first_oids = {o.oid for o in first}
        self._read([o for o in asked if o.oid in first_oids], response, poll, scalars, missing, profile_keys)
        data: dict[str, TableData] = {}
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                if rest:
                    await self._get_scalars(target, [o for o in asked if o.oid not in first_oids], poll, slots,
                                            scalars, missing, profile_keys)
                identity = scalars.get(SYS_OBJECT_ID.name)
                identity = identity if isinstance(identity, tuple) else None
                if identity != known:
                    # A new (or first) sysObjectID: its profiles' scalars now; their tables
                    # from the next poll on (budget_s counts them only once the ID is known).
                    had = {p.name for p in profiles}
                    profiles = self.profiles_for(device, plan, identity)
                    extra = [o for p in profiles if p.name not in had for o in p.scalars]
                    if extra:
                        await self._get_scalars(target, extra, poll, slots, scalars, missing, profile_keys)
                    self._remember_identity(device.id, identity)
                tables = [*plan.tables, *(t for p in profiles for t in p.tables)] if identity == known else [
                    *plan.tables]
                data = {t.name: TableData() for t in tables}
                if tables:
                    await asyncio.gather(*(
                        self.client.walk(target, t, self.cfg.max_repetitions, self.cfg.max_rows, poll, slots,
                                         data[t.name], _hint(scalars.get(t.size_hint) if t.size_hint else None))
                        for t in tables
                    ))
        except TimeoutError:
            poll.problem(f"deadline {self.cfg.deadline_s:g} s reached, tables incomplete")
        state, rebooted = self._uptime(device.id, scalars.get("sysUpTime"), response.mono_s, fields, poll)
        series: list[Series] = []
        if IF_TABLE.name in data:
            series += self._interfaces(device, data[IF_TABLE.name], state, rebooted)
        if "hrStorage" in data:
            host, disks = host_fields(data["hrStorage"].rows, data["hrProcessor"].rows)
            if host:
                series.append(Series("host", {}, host))
            series += [Series("host_storage", {"storage": name}, f) for name, f in disks]
        from_profiles = self._profile_series(profiles, scalars, missing, data, poll)
        series += from_profiles
        fields["varbinds"] = poll.varbinds
        fields["values_refused"] = len(poll.refused)
        reason = poll.reason()
        required = REQUIRED.get(device.kind) if plan.ups else None
        if required is not None and not any(s.measurement == required and not s.tags for s in series):
            tried = ", ".join(p.name for p in profiles if p.decl.measurement == required) or "none"
            fields["up"] = False
            why = f"no known UPS MIB answered (profiles tried: {tried})"
            return ProbeResult(device.id, self.name, started, False, f"{why}; {reason}" if reason else why,
                               fields, tuple(series))
        if device.kind in PROFILE_KINDS and not from_profiles:
            tried = ", ".join(p.name for p in profiles) or "none matched its sysObjectID or model"
            fields["up"] = False
            why = f"no known device profile answered (profiles tried: {tried})"
            return ProbeResult(device.id, self.name, started, False, f"{why}; {reason}" if reason else why,
                               fields, tuple(series))
        return ProbeResult(device.id, self.name, started, True, reason, fields, tuple(series))

    def _profile_series(self, profiles: Sequence[Profile], scalars: Row, missing: Sequence[str],
                        data: dict[str, TableData], poll: Poll) -> list[Series]:
        """The points of the device profiles, most specific first: the scalars of every profile
        that writes one measurement merge into one point (a field from the first profile that
        has it). Refused values and, for a profile that answered at all, the objects it lacks
        are named in the reason, unless another profile gave that field."""
        merged: dict[str, dict[str, FieldValue]] = {}
        given_by: dict[tuple[str, str], str] = {}  # (measurement, field) → the profile that gave it
        mibs: dict[str, list[str]] = {}
        series: list[Series] = []
        results = []
        for profile in profiles:
            tables = {t.name: data[t.name].rows for t in profile.tables if t.name in data}
            got = apply(profile, scalars, missing, tables)
            results.append(got)
            measurement = profile.decl.measurement
            if measurement is not None and got.fields:
                target = merged.setdefault(measurement, {})
                for key, value in got.fields.items():
                    if key not in target:
                        target[key] = value
                        given_by[(measurement, key)] = profile.name
                if profile.decl.mib not in mibs.setdefault(measurement, []):
                    mibs[measurement].append(profile.decl.mib)
            series += [Series(m, tags, f) for m, tags, f in got.series]
        for got in results:
            measurement = got.profile.decl.measurement or ""

            def elsewhere(field_name: str | None) -> bool:
                # Another profile gave this field: what this one lacks or refused is no news.
                other = given_by.get((measurement, field_name or ""))
                return other is not None and other != got.profile.name

            for refusal in got.refused:
                if not elsewhere(refusal.field):
                    poll.refuse(str(refusal))
            if got.answered:
                for name, field_name in got.missing:
                    if not elsewhere(field_name) and field_name not in merged.get(measurement, {}):
                        poll.bad_object("noSuchObject for", name)
        for measurement, values in merged.items():
            if measurement == UPS_MEASUREMENT:
                values = ups_derived(values)
                values["mibs"] = ", ".join(mibs[measurement])
            series.insert(0, Series(measurement, {}, values))
        return series

    def _remember_identity(self, device_id: str, identity: Oid | None) -> None:
        if identity is None:
            self._identity.pop(device_id, None)
            return
        self._identity[device_id] = identity
        while len(self._identity) > max(len(self._wanted), 1):
            self._identity.pop(next(iter(self._identity)))

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
