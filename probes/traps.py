"""SNMP notification receiver: traps (v1, v2c, v3) and informs (v2c, v3) from the fleet's switches
and UPS units, delivered as TrapEvent the moment they arrive (no waiting for the next poll).

Built on pysnmp 7.1 asyncio (`pysnmp.entity.rfc3413.ntfrcv.NotificationReceiver`) with its own
SnmpEngine and one UDP socket (probes/_trap_engine.py, imported by TrapReceiver.__aenter__:
importing this module loads neither pysnmp nor pyasn1), wrapped so that hostile or broken input
never stops it:

- every datagram passes a per-source token bucket (`max_events_per_s`) BEFORE it is decoded, so a
  flood costs no ASN.1 decoding or decryption (dropped datagrams are counted as flood_dropped);
- pysnmp's own MIB counters (snmpInASNParseErrs, snmpInBadCommunityNames, usmStats*, RFC 3418
  and RFC 3414 §5) are read before and after each datagram, which attributes every rejection to its
  sender: counted in `stats` and logged at most once per `unknown_log_interval_s` per address;
- decoder exceptions (e.g. an SNMPv1 generic-trap value outside 0..6) count as malformed;
- only events of known devices are delivered: by the UDP source address or, for SNMPv1, by the
  Trap-PDU's agent-addr (RFC 1157 §4.1.6) when that maps to a device. Others are counted per
  address (`unknown_senders`).

SNMPv1 traps are translated to the SNMPv2 form by pysnmp (RFC 3584 §3.1: generic traps 0..5 →
snmpTraps.1..6, enterprise-specific → enterprise.0.specific, agent-addr → snmpTrapAddress.0);
the snmpTrapCommunity.0 varbind pysnmp adds is dropped because a community is a secret.

SNMPv3: a trap is authenticated with the sender's authoritative engine ID, so every user that
sends traps needs `engine_id` (RFC 3414 §3.2 step 3; RFC 3412 §6.4: the sender of a
notification is authoritative). Informs use this receiver's own engine ID, which senders learn by
discovery (RFC 3414 §4), so each user is registered under both IDs.

Public API:
- `TrapConfig`, `TrapUser`: config models (`traps:` in config.yaml), in probes/trap_model.py with
  what else this module shares with its pysnmp side; TrapUser is an SNMPv3 user as the SNMP
  poller has them (probes/snmp_usm.py).
- `TrapEvent`: one decoded notification; `event_fields(event)` its `snmp_trap` point fields.
- `TRAP_MEASUREMENT`: the measurement spec the daemon writes each event to.
- `TrapReceiver`: async context manager that listens and calls `on_event(TrapEvent)`.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import socket
import time
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Self

from monitor.core.measurement import DEVICE_TAGS, FieldSpec, MeasurementSpec
from monitor.core.model import Device, IPAddress
from probes.base import FieldValue
from probes.trap_model import MAX_VARBINDS, MalformedNotification, TrapConfig

if TYPE_CHECKING:
    from probes._trap_engine import TrapEngine

log = logging.getLogger("fleetmon.traps")

# ---------------------------------------------------------------------------------------------
# Events

SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"  # snmpTrapOID.0, RFC 3416 §4.2.6
SNMP_TRAP_ADDRESS = "1.3.6.1.6.3.18.1.3.0"  # snmpTrapAddress.0, RFC 3584 §3.1
SNMP_TRAP_COMMUNITY = "1.3.6.1.6.3.18.1.4.0"  # snmpTrapCommunity.0: a secret, never kept
IF_INDEX = "1.3.6.1.2.1.2.2.1.1."  # IF-MIB ifIndex.N
IF_DESCR = "1.3.6.1.2.1.2.2.1.2."
IF_ADMIN_STATUS = "1.3.6.1.2.1.2.2.1.7."
IF_OPER_STATUS = "1.3.6.1.2.1.2.2.1.8."
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1."  # IF-MIB ifXTable ifName.N (RFC 2863)
UPS_ALARM_DESCR = "1.3.6.1.2.1.33.1.6.2.1.2."  # UPS-MIB upsAlarmDescr.N (RFC 1628)
UPS_WELL_KNOWN_ALARMS = "1.3.6.1.2.1.33.1.6.3."
UPS_MINUTES_REMAINING = "1.3.6.1.2.1.33.1.2.3.0"  # UPS-MIB upsEstimatedMinutesRemaining.0 (RFC 1628)

TRAP_NAMES = {
    "1.3.6.1.6.3.1.1.5.1": "cold_start",  # SNMPv2-MIB (RFC 3418)
    "1.3.6.1.6.3.1.1.5.2": "warm_start",
    "1.3.6.1.6.3.1.1.5.3": "link_down",  # IF-MIB (RFC 2863)
    "1.3.6.1.6.3.1.1.5.4": "link_up",
    "1.3.6.1.2.1.33.2.1": "ups_on_battery",  # UPS-MIB upsTraps (RFC 1628)
    "1.3.6.1.2.1.33.2.2": "ups_test_completed",
    "1.3.6.1.2.1.33.2.3": "ups_alarm_entry_added",
    "1.3.6.1.2.1.33.2.4": "ups_alarm_entry_removed",
}
TrapName = Literal[
    "cold_start", "warm_start", "link_down", "link_up", "ups_on_battery", "ups_test_completed",
    "ups_alarm_entry_added", "ups_alarm_entry_removed", "other",
]

UPS_ALARMS = {  # RFC 1628 upsWellKnownAlarms 1.3.6.1.2.1.33.1.6.3.N
    1: "battery bad",
    2: "on battery",
    3: "low battery",
    4: "depleted battery",
    5: "temperature bad",
    6: "input bad",
    7: "output bad",
    8: "output overload",
    9: "on bypass",
    10: "bypass bad",
    11: "output off as requested",
    12: "UPS off as requested",
    13: "charger failed",
    14: "UPS output off",
    15: "UPS system off",
    16: "fan failure",
    17: "fuse failure",
    18: "general fault",
    19: "diagnostic test failed",
    20: "communications lost",
    21: "awaiting power",
    22: "shutdown pending",
    23: "shutdown imminent",
    24: "test in progress",
}

def alarm_name(alarm_oid: str) -> str:
    """Short English name of a UPS-MIB alarm type OID, "other alarm" for vendor alarms."""
    if alarm_oid.startswith(UPS_WELL_KNOWN_ALARMS):
        sub = alarm_oid[len(UPS_WELL_KNOWN_ALARMS):]
        if sub.isdigit():
            return UPS_ALARMS.get(int(sub), "other alarm")
    return "other alarm"


@dataclass(frozen=True, slots=True)
class ValuePatch:
    """What a notification says about a device's latest polled values, ahead of the next poll
    (which confirms or corrects it): set `fields` on the instance `tags` of `measurement`, in the
    shapes of a ProbeResult's Series (probes/base.py; tags {} = the measurement's one point per
    device). The measurements and fields are those the snmp probe declares (probes/snmp.py).

    - same: a field that identifies the instance whatever its tags: an instance already known
      with the same value of it is the one patched (a poll names a port by ifName, a trap may
      carry only ifDescr, or no name at all); with none, `tags` name a new one (a port known
      under that name but another ifIndex, renumbered by a restart, is not the same port).
    - defaults: fields an instance not known yet is assumed to have besides `fields`.
    """

    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]
    same: str | None = None
    defaults: Mapping[str, FieldValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TrapEvent:
    """One notification from a known device.

    - ts_ns: UTC wall-clock time of reception, nanoseconds since the Unix epoch.
    - source: sender IP address (UDP source) as text.
    - device_id: inventory id (by source address, or by SNMPv1 agent-addr).
    - version: "1", "2c" or "3".
    - trap_oid: snmpTrapOID (dotted); SNMPv1 traps translated per RFC 3584 §3.1.
    - name: the well-known trap's name (TRAP_NAMES) or "other".
    - if_index, if_name: interface of linkDown/linkUp (IF-MIB ifIndex; ifName, else ifDescr).
    - alarm, alarm_name: UPS alarm type OID (upsAlarmDescr, RFC 1628) and its short English name,
      for ups_alarm_entry_added/removed.
    - varbinds: (OID, value as text) pairs, at most MAX_VARBINDS, values at most MAX_TEXT
      characters (both probes.trap_model); snmpTrapCommunity.0 is never included.
    """

    ts_ns: int
    source: str
    device_id: str
    version: Literal["1", "2c", "3"]
    trap_oid: str
    name: TrapName
    if_index: int | None = None
    if_name: str | None = None
    alarm: str | None = None
    alarm_name: str | None = None
    varbinds: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "varbinds", tuple((str(o), str(v)) for o, v in self.varbinds))

    def to_dict(self) -> dict[str, Any]:
        return {
            "ts_ns": self.ts_ns,
            "source": self.source,
            "device_id": self.device_id,
            "version": self.version,
            "trap_oid": self.trap_oid,
            "name": self.name,
            "if_index": self.if_index,
            "if_name": self.if_name,
            "alarm": self.alarm,
            "alarm_name": self.alarm_name,
            "varbinds": [list(vb) for vb in self.varbinds],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrapEvent":
        if_index = data.get("if_index")
        return cls(
            ts_ns=int(data["ts_ns"]),
            source=str(data["source"]),
            device_id=str(data["device_id"]),
            version=data["version"],
            trap_oid=str(data["trap_oid"]),
            name=data["name"],
            if_index=None if if_index is None else int(if_index),
            if_name=data.get("if_name"),
            alarm=data.get("alarm"),
            alarm_name=data.get("alarm_name"),
            varbinds=tuple((str(o), str(v)) for o, v in data.get("varbinds") or ()),
        )

    def values(self, device: Device) -> tuple[ValuePatch, ...]:
        """What this notification from `device` means for its polled values (ValuePatch), ()
        for a notification that says nothing the snmp probe polls:
        - linkDown/linkUp (RFC 2863 §6): the port's ifOperStatus down (2) / up (1); a port not
          polled yet is assumed admin up and is the uplink when the point list names it so;
        - upsTrapOnBattery (RFC 1628 §4.1): upsOutputSource battery (5), with the
          upsEstimatedMinutesRemaining the trap carries;
        - coldStart/warmStart (RFC 3418): sysUpTime 0, the device just restarted."""
        if self.name in ("link_down", "link_up"):
            status = 2 if self.name == "link_down" else 1
            name = self.if_name or f"ifIndex {self.if_index}"
            fields: dict[str, FieldValue] = {"oper_status": status, "up": status == 1}
            if self.if_index is not None:
                fields["if_index"] = self.if_index
            defaults = {"admin_status": 1, "uplink": device.uplink == name}
            return (ValuePatch("snmp_interface", {"interface": name}, fields, same="if_index", defaults=defaults),)
        if self.name == "ups_on_battery":
            fields = {"on_battery": True, "output_source": 5}
            minutes = dict(self.varbinds).get(UPS_MINUTES_REMAINING, "")
            if minutes.isdigit():
                fields["minutes_remaining"] = int(minutes)
            return (ValuePatch("ups", {}, fields),)
        if self.name in ("cold_start", "warm_start"):
            return (ValuePatch("snmp", {}, {"sys_uptime_s": 0.0}),)
        return ()


TRAP_MEASUREMENT = MeasurementSpec(
    "snmp_trap",
    "One SNMP notification (trap or inform) received from a device, written when it arrives.",
    {**DEVICE_TAGS, "trap": "link_down | link_up | cold_start | warm_start | ups_on_battery | ups_test_completed"
     " | ups_alarm_entry_added | ups_alarm_entry_removed | other"},
    {
        "count": FieldSpec("integer", "notifications", "always 1 (sum() counts notifications)"),
        "trap_oid": FieldSpec("string", "", "snmpTrapOID, dotted (RFC 3416 §4.2.6; v1 per RFC 3584 §3.1)"),
        "if_index": FieldSpec("integer", "", "IF-MIB ifIndex of a linkDown/linkUp (when present)"),
        "if_name": FieldSpec("string", "", "IF-MIB ifName, else ifDescr (when present)"),
        "alarm": FieldSpec("string", "", "UPS-MIB alarm type, short English name (UPS alarm traps)"),
    },
)


def event_fields(event: TrapEvent) -> dict[str, int | str]:
    """Fields of the `snmp_trap` point for `event` (TRAP_MEASUREMENT); tags are the device's
    DEVICE_TAGS plus `trap` = event.name."""
    fields: dict[str, int | str] = {"count": 1, "trap_oid": event.trap_oid}
    if event.if_index is not None:
        fields["if_index"] = event.if_index
    if event.if_name is not None:
        fields["if_name"] = event.if_name
    if event.alarm_name is not None:
        fields["alarm"] = event.alarm_name
    return fields


def _index_of(oid: str, prefix: str) -> int | None:
    sub = oid[len(prefix):]
    return int(sub) if oid.startswith(prefix) and sub.isdigit() else None


def decode_notification(
    version: Literal["1", "2c", "3"],
    source: str,
    varbinds: list[tuple[str, str]],
    devices: Mapping[str, str],
    ts_ns: int,
) -> TrapEvent | str:
    """The TrapEvent of one notification in SNMPv2 form (`varbinds`: (dotted OID, rendered value),
    snmpTrapOID.0 among them, RFC 3416 §4.2.6), or the reason it is not delivered:
    "malformed" (no snmpTrapOID.0) or "unknown sender". `devices` maps canonical IP text to
    device id; SNMPv1's agent-addr (snmpTrapAddress.0 after RFC 3584 translation) wins when it maps
    to a device."""
    values = dict(varbinds)
    trap_oid = values.get(SNMP_TRAP_OID)
    if not trap_oid or not all(part.isdigit() for part in trap_oid.split(".")):
        return "malformed"
    device_id = None
    if version == "1" and SNMP_TRAP_ADDRESS in values:
        device_id = devices.get(values[SNMP_TRAP_ADDRESS])
    if device_id is None:
        device_id = devices.get(source)
    if device_id is None:
        return "unknown sender"
    name = TRAP_NAMES.get(trap_oid, "other")
    if_index = if_name = if_descr = alarm = None
    for oid, text in varbinds:
        if oid.startswith(IF_INDEX) and text.isdigit():
            if_index = int(text)
        elif oid.startswith(IF_NAME) and text:
            if_name = text
        elif oid.startswith(IF_DESCR) and text:
            if_descr = text
        elif oid.startswith(UPS_ALARM_DESCR) and name.startswith("ups_alarm_entry"):
            alarm = text
    if if_index is None:
        # linkDown/linkUp carry ifIndex (RFC 2863); some agents send only the instance OIDs.
        for oid, _ in varbinds:
            for prefix in (IF_ADMIN_STATUS, IF_OPER_STATUS, IF_NAME, IF_DESCR):
                if if_index is None:
                    if_index = _index_of(oid, prefix)
    kept = tuple(vb for vb in varbinds if vb[0] != SNMP_TRAP_COMMUNITY)[:MAX_VARBINDS]
    return TrapEvent(
        ts_ns=ts_ns,
        source=source,
        device_id=device_id,
        version=version,
        trap_oid=trap_oid,
        name=name,  # type: ignore[arg-type]
        if_index=if_index,
        if_name=if_name or if_descr,
        alarm=alarm,
        alarm_name=None if alarm is None else alarm_name(alarm),
        varbinds=kept,
    )


# ---------------------------------------------------------------------------------------------
# Receiver

_REASONS = {
    "malformed": "malformed datagram",
    "bad_community": "wrong community",
    "bad_auth": "SNMPv3 authentication or decryption failed",
    "unknown_sender": "sender not in the inventory",
    "flood_dropped": "too many datagrams, dropping",
}
RECEIVE_BUFFER_BYTES = 4 << 20
"""Asked-for SO_RCVBUF (the kernel caps it at net.core.rmem_max)."""
MAX_TRACKED_ADDRESSES = 4096
"""Per-address state (flood buckets, log times, unknown counts) is bounded: spoofed sources must
not grow memory. Beyond it the oldest entries are forgotten (totals still count)."""


def _canonical(address: IPAddress | str) -> str:
    ip = ipaddress.ip_address(str(address).split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # a dual-stack socket reports IPv4 senders as ::ffff:a.b.c.d
    return str(ip)


class _TokenBucket:
    __slots__ = ("tokens", "at")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens, self.at = tokens, at


class TrapReceiver:
    """Listens for SNMP notifications on `cfg.listen`:`cfg.port` (UDP) between `__aenter__` and
    `__aexit__` and calls `on_event(TrapEvent)` on the event loop for each one from a device in
    `devices` (IP address → device id, built from the inventory; replace with `set_devices`).

    `__aenter__` raises OSError with a clear message when the port cannot be bound (e.g. 162
    without root/CAP_NET_BIND_SERVICE). Nothing a sender does raises: datagrams are counted in
    `stats` (received, delivered, unknown_sender, bad_community, bad_auth, malformed,
    flood_dropped; `discovery` = SNMPv3 engine ID discoveries by inform senders, RFC 3414 §4,
    which are normal) and unknown senders per address in `unknown_senders`. An exception in
    `on_event` is logged and does not stop the receiver.
    """

    def __init__(
        self, cfg: TrapConfig, devices: Mapping[IPAddress | str, str], on_event: Callable[[TrapEvent], object]
    ) -> None:
        self.cfg = cfg
        self.on_event = on_event
        self.set_devices(devices)
        self.stats: dict[str, int] = dict.fromkeys(
            (
                "received", "delivered", "discovery", "unknown_sender", "bad_community", "bad_auth", "malformed",
                "flood_dropped",
            ),
            0,
        )
        self.unknown_senders: collections.OrderedDict[str, int] = collections.OrderedDict()
        self.port: int | None = None
        """The bound UDP port (differs from cfg.port when that is 0)."""
        self._engine: TrapEngine | None = None
        self._buckets: collections.OrderedDict[str, _TokenBucket] = collections.OrderedDict()
        self._logged: collections.OrderedDict[tuple[str, str], float] = collections.OrderedDict()
        self._source = ""  # sender of the datagram being decoded (pysnmp callbacks are synchronous)

    def set_devices(self, devices: Mapping[IPAddress | str, str]) -> None:
        """Replace the address → device id map (e.g. after an inventory reload)."""
        self._devices = {_canonical(address): device_id for address, device_id in devices.items()}

    async def __aenter__(self) -> Self:
        # Imported here, not at module level: pysnmp and pyasn1 cost about 20 MB of RSS (pysnmp
        # loads its MIB tree), which a daemon with traps off must not pay.
        from probes._trap_engine import TrapEngine, check_privacy_support

        check_privacy_support(self.cfg)
        family = socket.AF_INET6 if ":" in self.cfg.listen else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6 and self.cfg.listen == "::":
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind((self.cfg.listen, self.cfg.port))
        except OSError as exc:
            sock.close()
            hint = " (ports below 1024 need root or CAP_NET_BIND_SERVICE)" if self.cfg.port < 1024 else ""
            raise OSError(exc.errno, f"cannot listen for SNMP traps on UDP {self.cfg.listen} port "
                                     f"{self.cfg.port}: {exc.strerror}{hint}") from None
        sock.setblocking(False)
        # A power cut makes every switch and UPS of a site trap at once: room for the burst.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        self.port = sock.getsockname()[1]
        try:
            self._engine = await TrapEngine.start(self.cfg, sock, self._datagram_received, self._notification)
        except BaseException:
            sock.close()
            raise
        log.info("listening for SNMP traps on UDP %s port %d", self.cfg.listen, self.port)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    @property
    def engine_id(self) -> bytes:
        """This receiver's SNMP engine ID (the authoritative one for v3 informs)."""
        if self._engine is None:
            raise RuntimeError("TrapReceiver.engine_id used outside `async with`")
        return self._engine.engine_id

    # --- per datagram (handed to probes._trap_engine.TrapEngine.start as callbacks) ----------

    def _datagram_received(self, address: tuple, decode: Callable[[], None]) -> None:
        """Every datagram, before pysnmp sees it: the flood guard, then `decode()` (pysnmp's
        message processing, synchronous) with its rejections attributed to the sender."""
        assert self._engine is not None
        self.stats["received"] += 1
        source = _canonical(address[0])
        if not self._admit(source):
            self._reject("flood_dropped", source)
            return
        before = self._engine.read_counters()
        self._source = source
        try:
            decode()
        except MalformedNotification as exc:
            log.debug("malformed notification from %s: %s", source, exc)
            self._reject("malformed", source)
        except Exception as exc:  # decoder bugs on input nobody foresaw: the receiver goes on
            log.debug("undecodable datagram from %s: %s", source, type(exc).__name__)  # text may hold secrets
            self._reject("malformed", source)
        finally:
            self._source = ""
        after = self._engine.read_counters()
        for kind in after:
            if after[kind] > before[kind]:
                if kind == "discovery":  # an inform sender learning this engine's ID: normal
                    self.stats[kind] += 1
                else:
                    self._reject(kind, source)

    def _admit(self, source: str) -> bool:
        """Token bucket per sender: max_events_per_s, bursts up to the same number (≥ 1)."""
        rate = self.cfg.max_events_per_s
        now = time.monotonic()
        bucket = self._buckets.get(source)
        if bucket is None:
            bucket = self._buckets[source] = _TokenBucket(max(rate, 1.0), now)
            if len(self._buckets) > MAX_TRACKED_ADDRESSES:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(source)
            bucket.tokens = min(max(rate, 1.0), bucket.tokens + (now - bucket.at) * rate)
            bucket.at = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def _reject(self, kind: str, source: str) -> None:
        self.stats[kind] += 1
        if kind == "unknown_sender":
            self.unknown_senders[source] = self.unknown_senders.pop(source, 0) + 1
            if len(self.unknown_senders) > MAX_TRACKED_ADDRESSES:
                self.unknown_senders.popitem(last=False)
        now = time.monotonic()
        last = self._logged.get((kind, source))
        if last is None or now - last >= self.cfg.unknown_log_interval_s:
            self._logged.pop((kind, source), None)
            self._logged[(kind, source)] = now
            if len(self._logged) > MAX_TRACKED_ADDRESSES:
                self._logged.popitem(last=False)
            log.warning("SNMP notification from %s ignored: %s (counted; logged at most every %g s)",
                        source, _REASONS[kind], self.cfg.unknown_log_interval_s)

    def _notification(self, version: Literal["1", "2c", "3"], varbinds: list[tuple[str, str]]) -> None:
        """A notification that passed community/USM checks, in SNMPv2 form: (dotted OID,
        rendered value) pairs. Delivered to on_event when it is from a known device."""
        source = self._source
        result = decode_notification(version, source, varbinds, self._devices, time.time_ns())
        if isinstance(result, str):
            self._reject("malformed" if result == "malformed" else "unknown_sender", source)
            return
        self.stats["delivered"] += 1
        try:
            self.on_event(result)
        except Exception:
            log.exception("trap event handler failed for %s (device %s)", source, result.device_id)
