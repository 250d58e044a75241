"""SNMP notification receiver: traps (v1, v2c, v3) and informs (v2c, v3) from the fleet's switches
and UPS units, delivered as TrapEvent the moment they arrive (no waiting for the next poll).

Built on pysnmp 7.1 asyncio (`pysnmp.entity.rfc3413.ntfrcv.NotificationReceiver`) with its own
SnmpEngine and one UDP socket (probes/_trap_engine.py, imported by TrapReceiver.__aenter__:
importing this module loads neither pysnmp nor pyasn1), wrapped so that hostile or broken input
never stops it:

- every datagram is checked BEFORE it is decoded: its UDP source must be a device's address
  (or a configured relay's), else it is dropped at the cost of a dictionary lookup
  (unknown_sender); then a per-source token bucket (`max_events_per_s`, flood_dropped) and a
  global one across all senders (`max_total_events_per_s`, overload_dropped). So a flood from
  thousands of foreign or spoofed addresses costs no ASN.1 decoding or decryption, and the
  fleet's own traps keep their place (issue 13: a genuine trap acted on within 1 s during a
  flood from 5,000 sources, bench/faults/traps.py); the socket is read in batches so that the
  flood does not fill its buffer;
- pysnmp's own MIB counters (snmpInASNParseErrs, snmpInBadCommunityNames, usmStats*, RFC 3418
  and RFC 3414 §5) are read before and after each datagram, which attributes every rejection to its
  sender: counted in `stats`;
- rejections are logged in aggregate: the first after a quiet spell at once, then one line per
  `unknown_log_interval_s` ("dropped N SNMP notifications from M unknown senders … in the last
  60 s"), never a line per sender;
- decoder exceptions (e.g. an SNMPv1 generic-trap value outside 0..6) count as malformed;
- only events of known devices are delivered: by the UDP source address or, for SNMPv1, by the
  Trap-PDU's agent-addr (RFC 1157 §4.1.6) when that maps to a device (a relay's traps map only
  this way). Others are counted per address (`unknown_senders`).

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

import asyncio
import collections
import contextlib
import ipaddress
import logging
import socket
import time
from dataclasses import dataclass
from dataclasses import field
from itertools import islice
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Self

from monitor.core.measurement import DEVICE_TAGS, FieldSpec, MeasurementSpec
from monitor.core.model import Device, IPAddress
from probes import source_filter
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
    "flood_dropped": "too many datagrams from this sender, dropping",
    "overload_dropped": "too many datagrams from the fleet together, dropping",
}
RECEIVE_BUFFER_BYTES = 4 << 20
"""Asked-for SO_RCVBUF (the kernel caps it at net.core.rmem_max)."""
MAX_TRACKED_ADDRESSES = 4096
"""Per-address state (flood buckets, unknown counts) is bounded: spoofed sources must not grow
memory. Beyond it the oldest entries are forgotten (totals still count)."""
MAX_COUNTED_SENDERS = 16_384
"""Distinct senders counted per kind and log period (the summary says "more than" beyond)."""
_EXAMPLES = 3  # sender addresses named in a summary line, per kind
FLOOD_PER_S = 1000
"""Datagrams per second from senders not in the inventory that make the receiver hand their
dropping to the kernel (probes/source_filter.py): beyond, reading them would crowd the fleet's
own traps out of the socket buffer. Below half of it for FLOOD_COOLDOWN_S, it takes over again."""
FLOOD_COOLDOWN_S = 10.0
FLOOD_SAMPLE = 64
"""While the kernel drops a flood, one datagram in this many still reaches the receiver, which
counts it as FLOOD_SAMPLE (the counts are then estimates, and the log says so)."""


def _canonical(address: IPAddress | str) -> str:
    ip = ipaddress.ip_address(str(address).split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # a dual-stack socket reports IPv4 senders as ::ffff:a.b.c.d
    return str(ip)


class _TokenBucket:
    __slots__ = ("tokens", "at")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens, self.at = tokens, at

    def take(self, rate: float, now: float) -> bool:
        """One token if there is one; refills at `rate` per second up to max(rate, 1)."""
        self.tokens = min(max(rate, 1.0), self.tokens + (now - self.at) * rate)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class _Tally:
    """Rejections of one kind in the current log period: how many, and from which senders
    (distinct, at most MAX_COUNTED_SENDERS; in arrival order, for the examples)."""

    __slots__ = ("count", "senders", "more", "estimated")

    def __init__(self) -> None:
        self.count = 0
        self.senders: dict[str, None] = {}
        self.more = False
        self.estimated = False  # some of it sampled in the kernel: count ≈, senders "at least"

    def add(self, source: str, weight: int = 1) -> None:
        self.count += weight
        self.estimated |= weight > 1
        if source not in self.senders:
            if len(self.senders) < MAX_COUNTED_SENDERS:
                self.senders[source] = None
            else:
                self.more = True

    def describe(self, kind: str) -> str:
        """"4 SNMP notifications from 4 unknown senders (sender not in the inventory, e.g. …)"."""
        m = len(self.senders)
        who = f"more than {m}" if self.more else f"at least {m}" if self.estimated else str(m)
        noun = "sender" if m == 1 and not self.more else "senders"
        if kind == "unknown_sender":
            noun = "unknown " + noun
        examples = ", ".join(islice(self.senders, _EXAMPLES)) + (", …" if m > _EXAMPLES else "")
        count = f"≈{self.count}" if self.estimated else str(self.count)
        return f"{count} SNMP notifications from {who} {noun} ({_REASONS[kind]}, e.g. {examples})"


class TrapReceiver:
    """Listens for SNMP notifications on `cfg.listen`:`cfg.port` (UDP) between `__aenter__` and
    `__aexit__` and calls `on_event(TrapEvent)` on the event loop for each one from a device in
    `devices` (IP address → device id, built from the inventory; replace with `set_devices`).

    Each datagram, in this order, before pysnmp decodes anything:
    1. its UDP source address must be a device's or one of `cfg.relays`, else it is dropped
       (unknown_sender): a flood from spoofed or foreign addresses costs a dictionary lookup
       per datagram, no BER decoding, and cannot use up the budgets below;
    2. the sender's token bucket (`cfg.max_events_per_s`; flood_dropped);
    3. the global token bucket of all senders together (`cfg.max_total_events_per_s`;
       overload_dropped), which bounds the decoding work whatever the number of senders.
    When unknown senders send more than FLOOD_PER_S datagrams a second, the kernel drops them
    (probes/source_filter.py) until the flood is over, so that they do not fill the socket
    buffer; one in FLOOD_SAMPLE still arrives and counts for FLOOD_SAMPLE (unknown_sender and
    `unknown_senders` are estimates then, and the log says "≈"). So the fleet's own traps keep
    their place during a flood from elsewhere.

    `__aenter__` raises OSError with a clear message when the port cannot be bound (e.g. 162
    without root/CAP_NET_BIND_SERVICE). Nothing a sender does raises: datagrams are counted in
    `stats` (received, delivered, unknown_sender, bad_community, bad_auth, malformed,
    flood_dropped, overload_dropped; decoded = handed to pysnmp; `discovery` = SNMPv3 engine ID discoveries by inform
    senders, RFC 3414 §4, which are normal) and unknown senders per address in
    `unknown_senders`. Rejections are logged in aggregate (`cfg.unknown_log_interval_s`): the
    first one after a quiet spell at once, then one summary line per interval while they go
    on, and one for the rest at exit. An exception in `on_event` is logged and does not stop the
    receiver.
    """

    def __init__(
        self, cfg: TrapConfig, devices: Mapping[IPAddress | str, str], on_event: Callable[[TrapEvent], object]
    ) -> None:
        self.cfg = cfg
        self.on_event = on_event
        self.stats: dict[str, int] = dict.fromkeys(
            (
                "received", "delivered", "discovery", "unknown_sender", "bad_community", "bad_auth", "malformed",
                "flood_dropped", "overload_dropped", "decoded",
            ),
            0,
        )
        self.unknown_senders: collections.OrderedDict[str, int] = collections.OrderedDict()
        self.port: int | None = None
        """The bound UDP port (differs from cfg.port when that is 0)."""
        self._engine: TrapEngine | None = None
        self._buckets: collections.OrderedDict[str, _TokenBucket] = collections.OrderedDict()
        self._global = _TokenBucket(cfg.max_total_events_per_s, time.monotonic())
        self._tallies: dict[str, _Tally] = {}
        self._period_start: float | None = None  # time.monotonic() of the open log period; None = quiet
        self._timer: asyncio.TimerHandle | None = None
        # Flood handling (FLOOD_PER_S): the socket, whether the kernel filter is on, and the
        # rate of unknown senders' datagrams in the current second.
        self._sock: socket.socket | None = None
        self._filtered = False
        self._filter_unavailable = False
        self._rate_start = time.monotonic()
        self._rate_count = 0
        self._calm_since: float | None = None
        self._flood_timer: asyncio.TimerHandle | None = None
        self.set_devices(devices)
        self._source = ""  # sender of the datagram being decoded (pysnmp callbacks are synchronous)

    def set_devices(self, devices: Mapping[IPAddress | str, str]) -> None:
        """Replace the address → device id map (e.g. after an inventory reload)."""
        self._devices = {_canonical(address): device_id for address, device_id in devices.items()}
        allowed = set(self._devices) | set(self.cfg.relays)
        # The address as the socket reports it → canonical: IPv4 senders come as dotted quads,
        # or as ::ffff:a.b.c.d on a dual-stack socket; both are looked up without parsing.
        known = {address: address for address in allowed}
        known.update({f"::ffff:{address}": address for address in allowed if ":" not in address})
        self._allowed = allowed
        self._known = known
        if self._filtered and self._sock is not None:
            if not source_filter.attach(self._sock, allowed, FLOOD_SAMPLE):
                self._disengage()

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
        self._sock = sock
        log.info("listening for SNMP traps on UDP %s port %d", self.cfg.listen, self.port)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        if self._flood_timer is not None:
            self._flood_timer.cancel()
            self._flood_timer = None
        self._sock, self._filtered = None, False
        self._flush_summary(closing=True)

    @property
    def engine_id(self) -> bytes:
        """This receiver's SNMP engine ID (the authoritative one for v3 informs)."""
        if self._engine is None:
            raise RuntimeError("TrapReceiver.engine_id used outside `async with`")
        return self._engine.engine_id

    # --- per datagram (handed to probes._trap_engine.TrapEngine.start as callbacks) ----------

    def _datagram_received(self, address: tuple, decode: Callable[[], None]) -> None:
        """Every datagram, before pysnmp sees it: the source check and both rate guards, then
        `decode()` (pysnmp's message processing, synchronous) with its rejections attributed
        to the sender."""
        assert self._engine is not None
        self.stats["received"] += 1
        source = self._known.get(address[0])
        if source is None:
            source = self._known_slow(address[0])
            if source is None:
                self._drop_unknown(address[0])
                return
        now = time.monotonic()
        if not self._admit(source, now):
            self._reject("flood_dropped", source)
            return
        if not self._global.take(self.cfg.max_total_events_per_s, now):
            self._reject("overload_dropped", source)
            return
        self.stats["decoded"] += 1
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

    def _known_slow(self, raw: str) -> str | None:
        """The canonical address of a sender whose text is not in the lookup table as it came
        (an IPv6 form other than the canonical one, a scope id), when it is allowed."""
        if ":" not in raw:
            return None  # IPv4 from the kernel is already a canonical dotted quad
        try:
            source = _canonical(raw)
        except ValueError:
            return None
        return source if source in self._allowed else None

    def _drop_unknown(self, raw: str) -> None:
        weight = FLOOD_SAMPLE if self._filtered else 1
        self._reject("unknown_sender", raw if ":" not in raw else _canonical(raw), weight)
        self._rate_count += weight
        now = time.monotonic()
        if now - self._rate_start >= 1.0:
            self._rate_tick(now)
        elif self._rate_count >= FLOOD_PER_S and not self._filtered and not self._filter_unavailable:
            self._engage()

    # --- floods from senders not in the inventory -----------------------------------------

    def _rate_tick(self, now: float) -> None:
        """A new second of the unknown senders' rate; while the kernel filter is on, it comes off
        after FLOOD_COOLDOWN_S below half of FLOOD_PER_S."""
        rate = self._rate_count / max(now - self._rate_start, 1e-9)
        self._rate_start, self._rate_count = now, 0
        if not self._filtered:
            return
        if rate >= FLOOD_PER_S / 2:
            self._calm_since = None
        elif self._calm_since is None:
            self._calm_since = now
        elif now - self._calm_since >= FLOOD_COOLDOWN_S:
            self._disengage()

    def _engage(self) -> None:
        if self._sock is None or not source_filter.attach(self._sock, self._allowed, FLOOD_SAMPLE):
            self._filter_unavailable = True  # an IPv6 socket, a fleet too large: the check above only
            log.warning("flood from senders not in the inventory (≥ %d datagrams/s); the kernel filter is not "
                        "available for this socket, so each one is dropped here", FLOOD_PER_S)
            return
        self._filtered, self._calm_since = True, None
        log.warning("flood from senders not in the inventory (≥ %d datagrams/s): the kernel drops them from now "
                    "on, 1 in %d still reaches the receiver and is counted for %d", FLOOD_PER_S, FLOOD_SAMPLE,
                    FLOOD_SAMPLE)
        self._schedule_flood_check()

    def _schedule_flood_check(self) -> None:
        with contextlib.suppress(RuntimeError):  # no running loop: checked as datagrams come
            self._flood_timer = asyncio.get_running_loop().call_later(1.0, self._flood_check)

    def _flood_check(self) -> None:
        """Every second while filtered (a flood that stops sends nothing that would tick)."""
        self._flood_timer = None
        self._rate_tick(time.monotonic())
        if self._filtered:
            self._schedule_flood_check()

    def _disengage(self) -> None:
        if self._sock is not None:
            source_filter.detach(self._sock)
        self._filtered, self._calm_since = False, None
        if self._flood_timer is not None:
            self._flood_timer.cancel()
            self._flood_timer = None
        log.info("the flood from senders not in the inventory is over: every datagram is checked here again")

    def _admit(self, source: str, now: float) -> bool:
        """Token bucket per sender: max_events_per_s, bursts up to the same number (≥ 1)."""
        rate = self.cfg.max_events_per_s
        bucket = self._buckets.get(source)
        if bucket is None:
            bucket = self._buckets[source] = _TokenBucket(max(rate, 1.0), now)
            if len(self._buckets) > MAX_TRACKED_ADDRESSES:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(source)
        return bucket.take(rate, now)

    def _reject(self, kind: str, source: str, weight: int = 1) -> None:
        """Count (`weight`: datagrams this one stands for, > 1 when sampled in the kernel) and log
        in aggregate."""
        self.stats[kind] += weight
        if kind == "unknown_sender":
            self.unknown_senders[source] = self.unknown_senders.pop(source, 0) + weight
            if len(self.unknown_senders) > MAX_TRACKED_ADDRESSES:
                self.unknown_senders.popitem(last=False)
        if self._period_start is not None:
            tally = self._tallies.get(kind)
            if tally is None:
                tally = self._tallies[kind] = _Tally()
            tally.add(source, weight)
            return
        # The first rejection after a quiet spell: at once, so that one misconfigured switch
        # shows up in the log when it happens; what follows is summed up per period.
        interval = self.cfg.unknown_log_interval_s
        log.warning("SNMP notification from %s ignored: %s (further rejections summed up every %g s)",
                    source, _REASONS[kind], interval)
        if interval > 0:
            self._open_period()

    def _open_period(self) -> None:
        self._period_start = time.monotonic()
        with contextlib.suppress(RuntimeError):  # no running loop: summed up at exit only
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.cfg.unknown_log_interval_s, self._flush_summary)

    def _flush_summary(self, closing: bool = False) -> None:
        """End the log period: one line for what was rejected in it; a new period follows when
        there was something (a flood goes on), else the receiver is quiet again."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        start, self._period_start = self._period_start, None
        tallies, self._tallies = self._tallies, {}
        if start is None or not tallies:
            return
        elapsed = time.monotonic() - start
        parts = [t.describe(kind) for kind, t in tallies.items()]
        if len(parts) == 1:
            log.warning("dropped %s in the last %.3g s", parts[0], elapsed)
        else:
            total = sum(t.count for t in tallies.values())
            log.warning("dropped %d SNMP notifications in the last %.3g s: %s", total, elapsed, "; ".join(parts))
        if not closing:
            self._open_period()

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
