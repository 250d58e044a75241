"""ICMP echo probe (RFC 792, RFC 4443): fleetmon's own engine.

Why our own: probing thousands of devices is what fleetmon exists for, and libraries that open
a socket per request run out of descriptors and CPU at a few thousand hosts. This engine keeps

- ONE socket per address family for the whole daemon (raw as root/CAP_NET_RAW, or an ICMP
  datagram socket where `net.ipv4.ping_group_range` allows; `mode: auto` tries raw first);
- ONE pace: a token bucket over all targets (`packets_per_second`), drained from the send
  queues in small bursts per tick instead of a sleep per packet;
- ONE table of outstanding echoes per socket, keyed by sequence number; a reply is ours only
  when identifier, sequence, source address and (payload ≥ 1 byte) the engine's random payload
  prefix all match, so other processes' ICMP (fping on raw sockets) and garbage are ignored;
- ONE task for all of it, ticking on the daemon's grid (monitor.core.ticks): each tick reads
  the replies queued, sends, and expires echoes; no callback per reply and no timer per echo,
  each of which would wake the process on its own;
- the per-echo work compiled (probes/_icmpcore.c, one Core per socket: the send queue, the
  echoes in flight by sequence number, their deadlines, building, sending, reading and matching):
  Python makes one call per target to start it and gets one tuple back when its echoes have
  ended. At 100,000 devices the engine and scheduler cost 6.3 CPU-s a cycle with the echoes in
  Python, 3.9 with them here, fping 2.4 for the same echoes (docs/PERFORMANCE.md, sixth round).

ICMP errors (destination unreachable, time exceeded, parameter problem, packet too big) that
quote one of our echoes finish that echo at once with the error as its reason; send errors
(ENETUNREACH, EMSGSIZE, …) do the same. RTTs come from kernel receive timestamps
(SO_TIMESTAMPNS) against the wall-clock send time, with the monotonic clock as fallback.

Public API:
- `IcmpConfig`, `IcmpOverride`: config models (probes.icmp in config.yaml).
- `PingParams`: what is sent to one target; `PingStats`: what came back.
- `IcmpEngine`: the sockets and queues; `ping()` one target, `ping_many()` a list.
- `sweep(addresses, cfg)`: one-shot helper for the CLI and the benchmark.
- `IcmpProbe`: the probe-registry adapter (probes.base.Probe).
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import errno
import functools
import ipaddress
import logging
import os
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Annotated, Callable, ClassVar, Iterable, Literal, NamedTuple, Sequence

from pydantic import Field, model_validator

from monitor.core.config_base import SelectorConfig, Strict
from monitor.core.measurement import DEVICE_TAGS, FieldSpec, MeasurementSpec
from monitor.core.ticks import GRID_NS, at_loop_time, next_tick_ns, resolve
from monitor.core.model import Basis, Device, IPAddress, Selector
from probes._icmpcore import Core
from probes.base import ConfirmConfig, ProbeResult

log = logging.getLogger("fleetmon.icmp")


class IcmpOverride(Strict):
    """Per-selector changes to the ICMP defaults, e.g. 20,000-byte pings on links."""

    match: SelectorConfig
    count: Annotated[int, Field(ge=1, le=100)] | None = None
    echo_interval_ms: Annotated[float, Field(ge=1, le=60_000)] | None = None
    timeout_s: Annotated[float, Field(gt=0, le=60)] | None = None
    retries: Annotated[int, Field(ge=0, le=10)] | None = None
    payload_size: Annotated[int, Field(ge=0, le=65_000)] | None = None


class IcmpConfig(Strict):
    enabled: bool = True
    interval_s: Annotated[float, Field(ge=1, le=86_400)] = 30.0
    """Probe cycle: every device is pinged once per interval."""
    count: Annotated[int, Field(ge=1, le=100)] = 3
    """Echo requests per device per cycle."""
    echo_interval_ms: Annotated[float, Field(ge=1, le=60_000)] = 200.0
    """Spacing of the echo requests to one device."""
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    """How long to wait for each echo reply."""
    retries: Annotated[int, Field(ge=0, le=10)] = 0
    """Extra echo requests, one after another, when none of the `count` echoes was answered."""
    payload_size: Annotated[int, Field(ge=0, le=65_000)] = 56
    """ICMP payload bytes per echo request (56 like ping; up to 20,000 for link tests)."""
    packets_per_second: Annotated[float, Field(ge=1, le=1_000_000)] = 5000.0
    """Pacing of all echo requests the daemon sends (all targets together)."""
    mode: Literal["auto", "raw", "dgram"] = "auto"
    """raw sockets (root/CAP_NET_RAW), datagram ICMP sockets (net.ipv4.ping_group_range), or auto."""
    overrides: list[IcmpOverride] = []
    """Applied in order to each matching device; a later match overwrites the fields it sets."""
    confirm: ConfirmConfig = ConfirmConfig()
    """Confirmation probing (probes.base.ConfirmConfig); off unless configured. config.yaml
    ships `count: 2, spacing_s: 1`: with state.down_after 3 a dead device is down ~5 s after
    its first miss, as sure as after 3 failed cycles, and a 20 %-loss link fails one decision
    in 10^6 (0.008³) instead of one in 125 (0.008) with down_after 1 (bench/detection.py)."""

    @model_validator(mode="after")
    def _confirm_fits(self) -> "IcmpConfig":
        # A silent device's probe: the defaults' echo timeline (overrides may differ).
        self.confirm.check_fits(self.interval_s, PingParams.from_config(self).timeline_s())
        return self


# ---------------------------------------------------------------------------------------------
# Linux constants the socket module does not export (include/uapi/asm-generic/socket.h,
# linux/in.h, linux/in6.h, linux/icmp.h, linux/icmpv6.h, linux/errqueue.h).

SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33
SO_TIMESTAMPNS = 35  # control message type SCM_TIMESTAMPNS has the same number
SOL_IP = 0
SOL_IPV6 = 41
SOL_RAW = 255
IP_RECVERR = 11
IPV6_RECVERR = 25
ICMP_FILTER = 1  # level SOL_RAW: bit set = type blocked
ICMP6_FILTER = 1  # level IPPROTO_ICMPV6: bit set = type blocked
SO_EE_ORIGIN_LOCAL = 1
SO_EE_ORIGIN_ICMP = 2
SO_EE_ORIGIN_ICMP6 = 3

# ICMP types (RFC 792; RFC 4443 §2.1 for ICMPv6).
ICMP_ECHO_REPLY = 0
ICMP_DEST_UNREACH = 3
ICMP_ECHO = 8
ICMP_TIME_EXCEEDED = 11
ICMP_PARAMETER_PROBLEM = 12
ICMP6_DEST_UNREACH = 1
ICMP6_PACKET_TOO_BIG = 2
ICMP6_TIME_EXCEEDED = 3
ICMP6_PARAMETER_PROBLEM = 4
ICMP6_ECHO_REQUEST = 128
ICMP6_ECHO_REPLY = 129

AF_INET, AF_INET6 = int(socket.AF_INET), int(socket.AF_INET6)  # plain ints: cheaper to compare

MAX_IP_PACKET = 65_535
"""Receive buffer per read: a reassembled IPv4 datagram with its header fits (RFC 791)."""
SOCKET_BUFFER_BYTES = 32 << 20
"""Asked-for SO_RCVBUF/SO_SNDBUF: replies to a 10,000-target burst must not be dropped."""
TICK_NS = 8 * GRID_NS
"""The engine's tick while echoes wait to be sent (IcmpEngine._run), 40 ms, the scheduler's
too (one wake-up for both). Each sends the tokens earned since: packets_per_second × 40 ms,
200 at 5,000/s, to as many targets. A wake-up costs more than a burst's sends on a virtual
machine (monitor/core/ticks.py), so fewer, larger bursts: the scheduler starts devices in
point-list order, so a site of 30 cameras on a 10 Mbit/s line gets its ~90 echoes (9 KB) within
a tick or two, ~7 ms of the line; RTTs are timed from each echo's own send."""
IDLE_TICK_NS = 16 * GRID_NS
"""The longest tick while only replies are awaited: how late a reply may be read, 80 ms (its
RTT stays right: the kernel's receive timestamp)."""
READ_BATCH = 512
"""Errors read per round from a datagram socket's error queue (_Channel._drain_error_queue)."""
OVERLOAD_BACKLOG_S = 1.0
"""Send-queue delay beyond which the engine warns that pacing is too slow."""
_ID_SEQ = struct.Struct("!HH")
_EXT_ERR = struct.Struct("=IBBB")  # sock_extended_err: ee_errno, ee_origin, ee_type, ee_code

# ---------------------------------------------------------------------------------------------
# Reasons: short English texts for ProbeResult.reason.

_UNREACH_V4 = {  # RFC 792 "Destination Unreachable", RFC 1122 §3.2.2.1, RFC 1812 §5.2.7.1
    0: "network unreachable",
    1: "host unreachable",
    2: "protocol unreachable",
    3: "port unreachable",
    4: "fragmentation needed",
    5: "source route failed",
    6: "destination network unknown",
    7: "destination host unknown",
    8: "source host isolated",
    9: "network administratively prohibited",
    10: "host administratively prohibited",
    11: "network unreachable for TOS",
    12: "host unreachable for TOS",
    13: "communication administratively prohibited",
    14: "host precedence violation",
    15: "precedence cutoff in effect",
}
_UNREACH_V6 = {  # RFC 4443 §3.1
    0: "network unreachable",  # "no route to destination"
    1: "communication administratively prohibited",
    2: "beyond scope of source address",
    3: "host unreachable",  # "address unreachable"
    4: "port unreachable",
    5: "source address failed ingress/egress policy",
    6: "reject route to destination",
}
_ERRNO_REASONS = {
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETDOWN: "network down",
    errno.EHOSTDOWN: "host down",
    errno.EMSGSIZE: "message too long",
    errno.EACCES: "communication administratively prohibited",  # `prohibit` route, firewall
    errno.EPERM: "communication administratively prohibited",  # local firewall drop
    errno.EADDRNOTAVAIL: "address not available",
    errno.EINVAL: "invalid destination",  # e.g. a `blackhole` route
}


def icmp_error_reason(family: int, icmp_type: int, code: int) -> str | None:
    """Reason text for an ICMP(v6) error message, or None when the type is not an error that
    ends an echo. Types/codes: RFC 792, RFC 1812 §5.2.7.1 (IPv4); RFC 4443 §3 (IPv6)."""
    if family == AF_INET:
        if icmp_type == ICMP_DEST_UNREACH:
            return _UNREACH_V4.get(code, "destination unreachable")
        if icmp_type == ICMP_TIME_EXCEEDED:
            return "fragment reassembly time exceeded" if code == 1 else "TTL exceeded in transit"
        if icmp_type == ICMP_PARAMETER_PROBLEM:
            return "parameter problem"
        return None
    if icmp_type == ICMP6_DEST_UNREACH:
        return _UNREACH_V6.get(code, "destination unreachable")
    if icmp_type == ICMP6_PACKET_TOO_BIG:
        return "packet too big"
    if icmp_type == ICMP6_TIME_EXCEEDED:
        return "fragment reassembly time exceeded" if code == 1 else "hop limit exceeded in transit"
    if icmp_type == ICMP6_PARAMETER_PROBLEM:
        return "parameter problem"
    return None


def errno_reason(err: int) -> str:
    """Reason text for a failed send (or a local error from the error queue)."""
    return _ERRNO_REASONS.get(err) or os.strerror(err).lower()


# ---------------------------------------------------------------------------------------------
# Packet codec.


def ones_complement_sum(data: bytes | bytearray | memoryview) -> int:
    """Internet checksum sum (RFC 1071) of `data`, folded to 16 bits, as `x mod 0xFFFF`.

    65,536 ≡ 1 (mod 65,535), so the big-endian integer of the data is congruent to the sum of
    its 16-bit words; int.from_bytes and % run in C, about 100× faster than a word loop.
    Returns 0 where the true folded sum is 0xFFFF (one's complement "negative zero"); both mean
    zero, and a valid message (checksum field included) therefore gives 0.
    """
    value = int.from_bytes(data, "big")
    if len(data) & 1:
        value <<= 8  # RFC 1071: an odd trailing byte is padded with a zero byte
    return value % 0xFFFF


class QuotedEcho(NamedTuple):
    """An ICMP error about an echo request, as far as the engine cares (echo replies are the
    core's, probes/_icmpcore.c).

    - ident, seq: identifier and sequence of the quoted echo request.
    - quoted_dst: its destination address (packed).
    - icmp_type, code: of the error message itself.
    """

    ident: int
    seq: int
    quoted_dst: bytes
    icmp_type: int
    code: int


def parse_error4(packet: bytes | memoryview, *, ip_header: bool, verify_checksum: bool) -> QuotedEcho | None:
    """Parse an IPv4 ICMP error quoting an echo request; None for anything else (an echo reply
    included), malformed or truncated.

    `ip_header`: the data starts with the IPv4 header (raw sockets; the kernel hands over the
    reassembled datagram); datagram ICMP sockets start at the ICMP header.
    `verify_checksum`: raw sockets receive ICMP before the kernel checks its checksum.
    Layouts: RFC 791 §3.1 (IP header), RFC 792 (errors carry 4 unused bytes, the quoted IP
    header and at least the first 8 bytes of the quoted datagram).
    """
    off = 0
    if ip_header:
        if len(packet) < 20 or packet[0] >> 4 != 4:
            return None
        off = (packet[0] & 0x0F) * 4
        if off < 20:
            return None
    if len(packet) < off + 8:
        return None
    if verify_checksum and ones_complement_sum(packet[off:]) != 0:
        return None
    icmp_type, code = packet[off], packet[off + 1]
    if icmp_error_reason(AF_INET, icmp_type, code) is None:
        return None
    quoted = off + 8
    if len(packet) < quoted + 20 or packet[quoted] >> 4 != 4:
        return None
    quoted_ihl = (packet[quoted] & 0x0F) * 4
    if quoted_ihl < 20 or packet[quoted + 9] != socket.IPPROTO_ICMP:
        return None
    echo = quoted + quoted_ihl
    if len(packet) < echo + 8 or packet[echo] != ICMP_ECHO:
        return None
    ident, seq = _ID_SEQ.unpack_from(packet, echo + 4)
    return QuotedEcho(ident, seq, bytes(packet[quoted + 16 : quoted + 20]), icmp_type, code)


_IPV6_EXTENSION_HEADERS = {0, 43, 60}  # hop-by-hop, routing, destination options (RFC 8200 §4)
_IPV6_FRAGMENT = 44


def parse_error6(packet: bytes | memoryview) -> QuotedEcho | None:
    """Parse an ICMPv6 error quoting an echo request (no IPv6 header: raw and datagram ICMPv6
    sockets both start at the ICMPv6 header; the kernel has verified the checksum); None for
    anything else (an echo reply included).

    Errors (RFC 4443 §3) carry 4 bytes (unused/MTU/pointer), then as much of the invoking
    packet as fits: the IPv6 header, possibly extension headers (a fragment header when our
    echo was fragmented, RFC 8200 §4.5), then our echo request header.
    """
    if len(packet) < 8:
        return None
    icmp_type, code = packet[0], packet[1]
    if icmp_error_reason(AF_INET6, icmp_type, code) is None:
        return None
    quoted = 8
    if len(packet) < quoted + 40 or packet[quoted] >> 4 != 6:
        return None
    dst = bytes(packet[quoted + 24 : quoted + 40])
    next_header, pos = packet[quoted + 6], quoted + 40
    for _ in range(8):  # bounded walk: a crafted chain must not loop
        if next_header == socket.IPPROTO_ICMPV6:
            break
        if len(packet) < pos + 8:
            return None
        if next_header == _IPV6_FRAGMENT:
            if (_ID_SEQ.unpack_from(packet, pos + 2)[0] & 0xFFF8) != 0:
                return None  # not the first fragment: no ICMPv6 header in it
            next_header, pos = packet[pos], pos + 8
        elif next_header in _IPV6_EXTENSION_HEADERS:
            next_header, pos = packet[pos], pos + (packet[pos + 1] + 1) * 8
        else:
            return None
    else:
        return None
    if len(packet) < pos + 8 or packet[pos] != ICMP6_ECHO_REQUEST:
        return None
    ident, seq = _ID_SEQ.unpack_from(packet, pos + 4)
    return QuotedEcho(ident, seq, dst, icmp_type, code)


# ---------------------------------------------------------------------------------------------
# What is sent to a target and what came back.


def _overlay(value, default):
    return default if value is None else value


@dataclass(frozen=True, slots=True)
class PingParams:
    """Echoes for one target: `count` echo requests `echo_interval_s` apart, each waiting
    `timeout_s` for its reply; when none is answered, up to `retries` more, one after another;
    `payload_size` bytes of ICMP payload each."""

    count: int = 3
    echo_interval_s: float = 0.2
    timeout_s: float = 1.0
    retries: int = 0
    payload_size: int = 56
    # Derived, in ns: every echo reads them (a float multiplication and rounding per echo otherwise).
    timeout_ns: int = field(init=False, repr=False, compare=False)
    echo_interval_ns: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "timeout_ns", int(self.timeout_s * 1e9))
        object.__setattr__(self, "echo_interval_ns", round(self.echo_interval_s * 1e9))

    @classmethod
    def from_config(cls, cfg: IcmpConfig | IcmpOverride, base: "PingParams | None" = None) -> "PingParams":
        """The config's (or override's) values; fields an override leaves unset come from `base`."""
        base = base or cls()
        return cls(
            count=_overlay(cfg.count, base.count),
            echo_interval_s=base.echo_interval_s if cfg.echo_interval_ms is None else cfg.echo_interval_ms / 1000,
            timeout_s=_overlay(cfg.timeout_s, base.timeout_s),
            retries=_overlay(cfg.retries, base.retries),
            payload_size=_overlay(cfg.payload_size, base.payload_size),
        )

    def timeline_s(self) -> float:
        """Longest time from the first send to the result when every echo leaves at once:
        (count − 1) × interval + timeout, plus timeout per retry."""
        return (self.count - 1) * self.echo_interval_s + (1 + self.retries) * self.timeout_s


class PingStats(NamedTuple):
    """Outcome of pinging one target.

    - address: the target, canonical text form.
    - sent: echo requests sent (attempts, retries included; a failed send counts).
    - received: echo replies received within their timeout.
    - rtts_ms: round-trip times of the answered echoes, in send order, milliseconds.
    - payload_bytes: ICMP payload bytes of each echo request.
    - reason: None when up; else the last ICMP error or send error, or "timeout".

    A tuple, not a frozen dataclass: one is made per device per cycle, at a third of the cost.
    """

    address: str
    sent: int
    received: int
    rtts_ms: tuple[float, ...]
    payload_bytes: int
    reason: str | None = None

    @property
    def up(self) -> bool:
        return self.received > 0

    @property
    def loss_pct(self) -> float:
        return 100.0 * (self.sent - self.received) / self.sent if self.sent else 100.0

    @property
    def jitter_ms(self) -> float | None:
        """Mean absolute difference of consecutive RTTs in send order (RFC 3550 §6.4.1 without
        its 1/16 smoothing); None below two replies."""
        r = self.rtts_ms
        if len(r) < 2:
            return None
        return sum(abs(b - a) for a, b in zip(r, r[1:])) / (len(r) - 1)

    def fields(self) -> dict[str, float | int | bool]:
        """Fields of the `icmp` measurement (monitor/metrics/schema.py); RTT fields only with a reply,
        jitter only with two."""
        # Once per device per cycle (100,000 a cycle at scale): the properties' arithmetic inline,
        # the same values (tests/test_icmp.py compares them with the properties).
        sent, received, r = self.sent, self.received, self.rtts_ms
        out: dict[str, float | int | bool] = {
            "up": received > 0,
            "sent": sent,
            "received": received,
            "loss_pct": round(100.0 * (sent - received) / sent, 3) if sent else 100.0,
            "payload_bytes": self.payload_bytes,
        }
        if r:
            out["rtt_min_ms"] = round(min(r), 3)
            out["rtt_avg_ms"] = round(sum(r) / len(r), 3)
            out["rtt_max_ms"] = round(max(r), 3)
            if len(r) > 1:
                out["jitter_ms"] = round(self.jitter_ms, 3)
        return out


class Target(NamedTuple):
    """A parsed destination: canonical text (as the kernel reports sources), family, socket
    address for sendto and packed bytes (to compare with the destination quoted in errors).
    A tuple, not a frozen dataclass: one is made per device per cycle, at a third of the cost."""

    address: str
    family: int
    sockaddr: tuple
    packed: bytes

    @classmethod
    def parse(cls, address: str | IPAddress) -> "Target":
        """Raises ValueError for anything but an IPv4/IPv6 literal (IPv6 may carry %scope)."""
        if isinstance(address, str):
            try:  # the common case, ten times faster than ipaddress
                packed = socket.inet_pton(AF_INET, address)
            except OSError:
                pass
            else:
                text = socket.inet_ntop(AF_INET, packed)
                return cls(text, AF_INET, (text, 0), packed)
        ip = address if isinstance(address, (ipaddress.IPv4Address, ipaddress.IPv6Address)) else ipaddress.ip_address(str(address).strip())
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if isinstance(ip, ipaddress.IPv4Address):
            # Formatting is most of this (every device, every cycle): inet_ntoa, not str(ip).
            packed = ip.packed
            text = socket.inet_ntoa(packed)
            return cls(text, AF_INET, (text, 0), packed)
        scope = ip.scope_id
        scope_index = 0
        if scope:
            scope_index = int(scope) if scope.isdigit() else socket.if_nametoindex(scope)
        text = socket.inet_ntop(AF_INET6, ip.packed)  # as recvmsg reports sources
        return cls(text, AF_INET6, (text, 0, 0, scope_index), ip.packed)


# ---------------------------------------------------------------------------------------------
# Sockets.


class IcmpPermissionError(PermissionError):
    """Neither a raw nor a datagram ICMP socket may be opened (the message says how to fix it)."""


def _ping_group_range() -> str:
    try:
        with open("/proc/sys/net/ipv4/ping_group_range", encoding="ascii") as f:
            return " ".join(f.read().split())
    except OSError:
        return "unknown"


def _permission_error(mode: str) -> IcmpPermissionError:
    raw = "raw ICMP sockets need root or CAP_NET_RAW (systemd: AmbientCapabilities=CAP_NET_RAW)"
    dgram = (
        f"datagram ICMP sockets need net.ipv4.ping_group_range to include group {os.getgid()} "
        f"(now '{_ping_group_range()}'; e.g. sysctl -w net.ipv4.ping_group_range='0 2147483647')"
    )
    why = {"raw": raw, "dgram": dgram}.get(mode, f"{raw}; {dgram}")
    return IcmpPermissionError(f"cannot open an ICMP socket (mode {mode}): {why}")


def _set_buffer(sock: socket.socket, force_opt: int, opt: int, size: int) -> None:
    """Size a socket buffer: *BUFFORCE ignores net.core.[rw]mem_max but needs CAP_NET_ADMIN;
    otherwise the kernel caps the plain option at the sysctl maximum."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, force_opt, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, opt, size)


def _icmp6_filter(passed: Iterable[int]) -> bytes:
    """struct icmp6_filter (RFC 3542 §3.2, Linux: a set bit blocks the type)."""
    words = [0xFFFFFFFF] * 8
    for t in passed:
        words[t >> 5] &= ~(1 << (t & 31)) & 0xFFFFFFFF
    return struct.pack("=8I", *words)


def open_icmp_socket(family: int, kind: Literal["raw", "dgram"]) -> socket.socket:
    """A non-blocking ICMP/ICMPv6 socket with big buffers and receive timestamps.

    Raw sockets get a type filter (only echo replies and errors wake us up); datagram sockets
    are bound (the kernel rewrites the identifier of every echo to the bound port and delivers
    only replies carrying it) and get IP_RECVERR so ICMP errors reach the error queue.
    Raises PermissionError when the kind is not permitted, OSError (EAFNOSUPPORT) when the
    family is not available.
    """
    proto = socket.IPPROTO_ICMP if family == AF_INET else socket.IPPROTO_ICMPV6
    sock = socket.socket(family, socket.SOCK_RAW if kind == "raw" else socket.SOCK_DGRAM, proto)
    try:
        sock.setblocking(False)
        _set_buffer(sock, SO_RCVBUFFORCE, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
        _set_buffer(sock, SO_SNDBUFFORCE, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        if kind == "raw" and family == AF_INET:
            passed = (1 << ICMP_ECHO_REPLY) | (1 << ICMP_DEST_UNREACH) | (1 << ICMP_TIME_EXCEEDED) | (1 << ICMP_PARAMETER_PROBLEM)
            sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("=I", ~passed & 0xFFFFFFFF))
        elif kind == "raw":
            passed6 = (ICMP6_ECHO_REPLY, ICMP6_DEST_UNREACH, ICMP6_PACKET_TOO_BIG, ICMP6_TIME_EXCEEDED, ICMP6_PARAMETER_PROBLEM)
            sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, _icmp6_filter(passed6))
        else:
            if family == AF_INET:
                sock.setsockopt(SOL_IP, IP_RECVERR, 1)
                sock.bind(("0.0.0.0", 0))
            else:
                sock.setsockopt(SOL_IPV6, IPV6_RECVERR, 1)
                sock.bind(("::", 0))
    except BaseException:
        sock.close()
        raise
    return sock


SO_ATTACH_FILTER = 26  # asm-generic/socket.h (not exported by Python's socket module)
_BPF = struct.Struct("HBBI")  # struct sock_filter: code, jt, jf, k


def _keep_own_replies(sock: socket.socket, family: int, ident: int) -> None:
    """A kernel filter (classic BPF, SO_ATTACH_FILTER) on a raw socket: echo replies carrying
    another identifier are dropped before they are queued to us. A raw socket receives every
    ICMP message of the host, so every other pinger's replies (fping, Zabbix, a second
    fleetmon) would otherwise be read and parsed only to be thrown away: on a shared ops
    server that is CPU and receive-buffer room taken from our own replies. Errors and other
    types pass (ICMP_FILTER already limits them; their quoted identifier is checked in
    Python). Best effort: a kernel refusing it changes nothing but the cost."""
    if family == AF_INET:  # the packet starts at the IPv4 header: X = its length
        head, reply = [(0xB1, 0, 0, 0), (0x50, 0, 0, 0)], ICMP_ECHO_REPLY  # ldxb 4*([0]&0xf); ldb [x+0]
        ident_at = (0x48, 0, 0, 4)  # ldh [x+4]
    else:  # ICMPv6: the packet starts at the ICMPv6 header
        head, reply = [(0x30, 0, 0, 0)], ICMP6_ECHO_REPLY  # ldb [0]
        ident_at = (0x28, 0, 0, 4)  # ldh [4]
    code = [*head, (0x15, 0, 2, reply), ident_at, (0x15, 0, 1, ident), (0x06, 0, 0, 0xFFFFFFFF), (0x06, 0, 0, 0)]
    buf = ctypes.create_string_buffer(b"".join(_BPF.pack(*insn) for insn in code))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, struct.pack("HL", len(code), ctypes.addressof(buf)))
    except OSError as exc:
        log.debug("ICMP: no kernel filter for other pingers' replies (%s): they are dropped in Python", exc)


class _Channel:
    """One ICMP socket (one address family); its echoes live in a compiled Core
    (probes/_icmpcore.c): the send queue, the echoes in flight by sequence, their deadlines."""

    def __init__(self, engine: "IcmpEngine", family: int, kind: Literal["raw", "dgram"], sock: socket.socket) -> None:
        self.engine = engine
        self.family = int(family)
        self.kind = kind
        self.sock = sock
        if kind == "dgram":
            self.ident = sock.getsockname()[1]
        else:
            self.ident = int.from_bytes(os.urandom(2), "big")
            _keep_own_replies(sock, family, self.ident)
        # A random first sequence number: a restarted daemon does not take the late replies of
        # its predecessor's last echoes for its own first ones.
        self.core = Core(sock.fileno(), self.family, kind == "raw", self.ident, engine.payload_block, errno_reason,
                         int.from_bytes(os.urandom(2), "big"))
        self._bufs = [memoryview(bytearray(MAX_IP_PACKET + 1))]  # the error queue's reads
        self._anc_size = socket.CMSG_SPACE(512)

    def read(self) -> None:
        """Every datagram queued (bounded: the receive buffer's worth). The core matches echo
        replies; what it hands back (ICMP errors, stray types) is parsed here."""
        for packet in self.core.read(SOCKET_BUFFER_BYTES // 64):
            self.engine.on_message(self, packet)
        if self.kind == "dgram":
            self._drain_error_queue()

    def _drain_error_queue(self) -> None:
        """ICMP errors about our echoes (IP_RECVERR/IPV6_RECVERR, datagram sockets only): the
        data is the quoted echo request from its ICMP header on, the source address is its
        destination, the control message says which error (linux/errqueue.h)."""
        for _ in range(READ_BATCH):
            try:
                n, ancdata, _flags, addr = self.sock.recvmsg_into(self._bufs, self._anc_size, socket.MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            for level, ctype, data in ancdata:
                if (level, ctype) in ((SOL_IP, IP_RECVERR), (SOL_IPV6, IPV6_RECVERR)) and len(data) >= _EXT_ERR.size:
                    self.engine.on_queued_error(self, self._bufs[0][:n], addr[0], *_EXT_ERR.unpack_from(data))


# ---------------------------------------------------------------------------------------------
# Runs (all state of one target's ping that is not per echo).


class _Run:
    """The echoes to one target: `count` echoes spaced by the interval (one run of the core),
    then, while nothing was answered, retries one at a time (a core run of one echo each).
    The core hands the run back when its echoes have ended (IcmpEngine._deliver)."""

    __slots__ = ("engine", "target", "channel", "params", "on_done", "handle", "sent", "reason",
                 "retries_left", "finished")

    def __init__(self, engine: "IcmpEngine", target: Target, channel: _Channel, params: PingParams,
                 on_done: Callable[[PingStats], None]) -> None:
        self.engine = engine
        self.target = target
        self.channel = channel
        self.params = params
        self.on_done = on_done
        self.handle = 0
        self.sent = 0
        self.reason: str | None = None
        self.retries_left = params.retries
        self.finished = False

    def begin(self, count: int) -> None:
        """Queue `count` echoes in the core."""
        target, params = self.target, self.params
        scope = target.sockaddr[3] if target.family == AF_INET6 else 0
        self.handle = self.channel.core.start(self, target.packed, scope, count, params.echo_interval_ns,
                                              params.timeout_ns, params.payload_size)

    def ended(self, sent: int, rtts: tuple[float, ...], reason: str | None) -> None:
        """The core's echoes ended: `sent` attempted, the RTTs (ms) of the answered ones in send
        order, the last ICMP or send error (None: only timeouts)."""
        self.sent += sent
        if reason is not None:
            self.reason = reason  # an ICMP or send error says more than a timeout
        if not rtts and self.retries_left:
            self.retries_left -= 1
            self.begin(1)
            return
        self.finished = True
        self.engine.runs.discard(self)
        self.on_done(PingStats(self.target.address, self.sent, len(rtts), rtts, self.params.payload_size,
                               None if rtts else (self.reason or "timeout")))

    def cancel(self) -> None:
        """Forget everything outstanding (the caller was cancelled); no callback follows."""
        if self.finished:
            return
        self.finished = True
        self.engine.runs.discard(self)
        self.channel.core.cancel(self.handle)


# ---------------------------------------------------------------------------------------------
# The engine.


class IcmpEngine:
    """All ICMP of one process: sockets, the paced send queue, matching, expiry.

    Use as `async with IcmpEngine(...) as engine:` (or `open()`/`await close()`) inside a
    running event loop. `open()` raises IcmpPermissionError when no ICMP socket is permitted.
    `ping()`/`ping_many()` never raise for dead targets and are safe to cancel at any await.

    `counters` (since open): sent, received (replies in time), errors (ICMP errors matched to
    an echo), send_errors, foreign (ICMP for another identifier or payload: other processes),
    unmatched (our identifier, but no such echo outstanding to that address: late or stray),
    malformed (truncated, bad checksum, not echo-related).
    """

    def __init__(self, *, mode: Literal["auto", "raw", "dgram"] = "auto", packets_per_second: float = 5000.0) -> None:
        if packets_per_second <= 0:
            raise ValueError("packets_per_second must be > 0")
        if mode not in ("auto", "raw", "dgram"):
            raise ValueError(f"mode must be auto, raw or dgram, got {mode!r}")
        self.requested_mode = mode
        self.packets_per_second = float(packets_per_second)
        self.mode: Literal["raw", "dgram"] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.channels: dict[int, _Channel] = {}
        self._cores: list[Core] = []  # the channels' cores, IPv4's first
        self.unavailable: dict[int, str] = {}  # family → reason (e.g. no IPv6 in the kernel)
        self.runs: set[_Run] = set()
        self._waiters: set[asyncio.Future] = set()  # futures of ping()/ping_many() callers
        self._counters: collections.Counter[str] = collections.Counter()  # parsed here, and closed cores'
        self._wakeup: asyncio.Future[None] | None = None  # the tick task's sleep; set to wake it
        self._dozing = False  # the tick task sleeps longer than a tick (or until an echo is queued)
        self._sender: asyncio.Task[None] | None = None
        self.payload_block = os.urandom(MAX_IP_PACKET)
        """Every echo's payload is a prefix of it: replies to us carry it, other processes' do not."""
        self._overload_warned = -60.0

    async def __aenter__(self) -> "IcmpEngine":
        self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def counters(self) -> collections.Counter[str]:
        """The counts of the class docstring, summed over the sockets."""
        total = collections.Counter(self._counters)
        for channel in self.channels.values():
            total.update(channel.core.counters())
        return total

    # -- lifecycle ------------------------------------------------------------------------------

    def open(self) -> None:
        """Open one socket per family and start the sender. IPv4 must open; an IPv6 socket that
        cannot open (no IPv6 in this kernel) makes IPv6 targets fail with a reason instead."""
        if self._sender is not None:
            raise RuntimeError("IcmpEngine is open already")
        self.loop = asyncio.get_running_loop()
        kinds: tuple[Literal["raw", "dgram"], ...] = ("raw", "dgram") if self.requested_mode == "auto" else (self.requested_mode,)
        for kind in kinds:
            try:
                sock4 = open_icmp_socket(AF_INET, kind)
            except PermissionError:
                continue
            self.mode = kind
            self._add_channel(AF_INET, kind, sock4)
            break
        else:
            raise _permission_error(self.requested_mode)
        try:
            self._add_channel(AF_INET6, self.mode, open_icmp_socket(AF_INET6, self.mode))
        except OSError as exc:
            self.unavailable[AF_INET6] = f"IPv6 not available ({exc.strerror or exc})"
        self._sender = self.loop.create_task(self._run(), name="icmp-engine")
        self._sender.add_done_callback(_engine_stopped)
        log.info("ICMP engine: %s sockets, %g echoes/s%s", self.mode, self.packets_per_second,
                 "".join(f"; {why}" for why in self.unavailable.values()))

    def _add_channel(self, family: int, kind: Literal["raw", "dgram"], sock: socket.socket) -> None:
        channel = _Channel(self, family, kind, sock)
        self.channels[family] = channel
        self._cores.append(channel.core)

    async def close(self) -> None:
        """Stop sending, cancel every outstanding ping (its awaiting caller sees
        CancelledError), close the sockets."""
        if self._sender is not None:
            self._sender.cancel()
            try:
                await self._sender
            except asyncio.CancelledError:
                pass
            except Exception:  # a bug that ended the task, logged then (_engine_stopped)
                pass
            self._sender = None
        for run in list(self.runs):
            run.cancel()
        for waiter in self._waiters:
            waiter.cancel()
        for channel in self.channels.values():
            self._counters.update(channel.core.counters())
            channel.sock.close()
        self.channels.clear()
        self._cores.clear()

    # -- public API -----------------------------------------------------------------------------

    async def ping(self, address: str | IPAddress | Target, params: PingParams) -> PingStats:
        """Ping one target. Raises ValueError for an invalid address, never for a dead one."""
        target = address if isinstance(address, Target) else Target.parse(address)
        future: asyncio.Future[PingStats] = self._new_waiter()
        run = self.start(target, params, functools.partial(_set_result, future))
        try:
            return await future
        finally:
            self._waiters.discard(future)
            if run is not None:
                run.cancel()  # no-op once finished

    async def ping_many(self, addresses: Sequence[str | IPAddress | Target], params: PingParams) -> list[PingStats]:
        """Ping every address (same params) at once; results in input order. One future for the
        whole batch instead of a task per target: the hot path of sweep() and the benchmark."""
        targets = [a if isinstance(a, Target) else Target.parse(a) for a in addresses]
        results: list[PingStats | None] = [None] * len(targets)
        done: asyncio.Future[None] = self._new_waiter()
        remaining = len(targets)

        def store(index: int, stats: PingStats) -> None:
            nonlocal remaining
            results[index] = stats
            remaining -= 1
            if remaining == 0 and not done.done():
                done.set_result(None)

        runs = [self.start(t, params, functools.partial(store, i)) for i, t in enumerate(targets)]
        try:
            if remaining:
                await done
        finally:
            self._waiters.discard(done)
            for run in runs:
                if run is not None:
                    run.cancel()
        return results  # type: ignore[return-value]  # all filled once `done` is set


    def _new_waiter(self) -> asyncio.Future:
        if self.loop is None or self._sender is None:
            raise RuntimeError("IcmpEngine is not open")
        future = self.loop.create_future()
        self._waiters.add(future)
        return future

    def backlog_s(self) -> float:
        """Seconds the echoes already queued need to leave at the configured pace."""
        queued = 0  # a loop, not sum() over a generator: the scheduler asks once per device
        for core in self._cores:
            queued += core.queued()
        return queued / self.packets_per_second

    def in_flight(self) -> int:
        """Runs not finished plus echoes waiting for a reply: 0 when nothing is outstanding."""
        return len(self.runs) + sum(core.state()[2] for core in self._cores)

    # -- starting and finishing runs ------------------------------------------------------------

    def start(self, target: Target, params: PingParams, on_done: Callable[[PingStats], None]) -> _Run | None:
        """Begin pinging `target` without a task: `on_done(stats)` follows exactly once, on the
        event loop, from the reply and expiry callbacks (every echo sent has a deadline, so a
        run always ends), or at once, inside this call, when there is no socket for its family
        (then None is returned). Otherwise the run is returned: `run.cancel()` forgets it, after
        which on_done is never called."""
        channel = self.channels.get(target.family)
        if channel is None:
            reason = self.unavailable.get(target.family, "ICMP engine closed")
            on_done(PingStats(target.address, 0, 0, (), params.payload_size, reason))
            return None
        run = _Run(self, target, channel, params, on_done)
        self.runs.add(run)
        run.begin(params.count)
        if self._dozing and self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)  # idle or waiting long for replies: send it now
        return run

    # -- the tick: reading, the next echoes, sending, expiry ---------------------------------------


    # -- the tick: reading, the next echoes, sending, expiry ---------------------------------------

    async def _run(self) -> None:
        """The engine's one task. A tick reads every reply queued, queues the echoes whose time
        has come, sends the tokens earned since the last tick (a token bucket over all targets,
        up to two ticks' worth) and expires the echoes past their timeout, in that order, so a
        reply waiting in the socket is never taken for a loss; the runs that ended go to their
        callers after the reading and at the end. Ticks fall on the daemon's grid
        (monitor.core.ticks): every TICK_NS while echoes wait to be sent, else at the next echo
        or deadline due but at least every IDLE_TICK_NS; with nothing outstanding the task
        sleeps until a run starts. No callback per reply or timer: each would wake the process
        on its own (50–160 µs of CPU a wake-up on this VM, bench/wakeups.py; 3,700 a cycle at
        10,000 devices before, docs/PERFORMANCE.md). Replies read up to IDLE_TICK_NS late keep
        their RTT: it is timed by the kernel's receive timestamp (SO_TIMESTAMPNS)."""
        rate = self.packets_per_second / 1e9  # tokens per ns
        burst_max = max(1.0, 2 * self.packets_per_second * TICK_NS / 1e9)
        tokens, last = 1.0, time.monotonic_ns()
        loop, cores = self.loop, self._cores
        while True:
            now = time.monotonic_ns()
            tokens = min(burst_max, tokens + (now - last) * rate)
            last = now
            for channel in self.channels.values():
                channel.read()
            self._deliver(cores)
            for core in cores:
                core.submit_due(now)
            if tokens >= 1:
                tokens -= self._send_burst(cores, int(tokens))
            now = time.monotonic_ns()
            for core in cores:
                core.expire(now)
            self._deliver(cores)
            self._warn_if_overloaded()
            wake_ns = self._next_wake_ns(cores, tokens, rate)
            self._wakeup = loop.create_future()
            self._dozing = wake_ns is None or wake_ns - time.monotonic_ns() > TICK_NS
            timer = None if wake_ns is None else loop.call_at(at_loop_time(wake_ns), resolve, self._wakeup)
            try:
                await self._wakeup
            finally:
                self._wakeup = None
                self._dozing = False
                if timer is not None:
                    timer.cancel()

    @staticmethod
    def _deliver(cores: list[Core]) -> None:
        """Hand every run the cores finished to its _Run (which retries or calls back)."""
        for core in cores:
            for run, sent, rtts, reason in core.take_finished():
                run.ended(sent, rtts, reason)

    def _next_wake_ns(self, cores: list[Core], tokens: float, rate: float) -> int | None:
        """The next tick on the grid (module docstring of monitor.core.ticks): None when nothing
        is outstanding (woken by `start`)."""
        now = time.monotonic_ns()
        if any(core.queued() for core in cores):
            # The next tick, or later when the bucket earns its next token later (a low rate).
            return next_tick_ns(TICK_NS, now + max(0, int((1 - tokens) / rate)) - 1)
        if not self.runs:
            return None
        due = now + IDLE_TICK_NS
        for core in cores:
            next_due = core.next_due()
            if next_due is not None and next_due < due:
                due = next_due
        return next_tick_ns(TICK_NS, max(due, now) - 1)

    @staticmethod
    def _send_burst(cores: list[Core], budget: int) -> int:
        """Send up to `budget` queued echoes, IPv4's first; a socket that would block keeps the
        rest for the next tick. Returns how many were sent (or failed to send)."""
        sent = 0
        for core in cores:
            if sent < budget:
                sent += core.send(budget - sent)
        return sent

    def _warn_if_overloaded(self) -> None:
        # Echoes queue up when the fleet needs more echoes per second than `packets_per_second`
        # (devices × count / (spread × interval)): every echo then waits, RTTs are still right
        # (timed from the actual send) but cycles run long. Say so, at most once a minute.
        backlog = self.backlog_s()
        if backlog > OVERLOAD_BACKLOG_S:
            now = time.monotonic()
            if now - self._overload_warned >= 60.0:
                self._overload_warned = now
                log.warning(
                    "ICMP send queue is %.1f s behind: packets_per_second %g is too low for this fleet "
                    "(needs about devices × count / (scheduler.spread × interval_s)); cycles will run long",
                    backlog, self.packets_per_second,
                )

    # -- what the cores hand back ---------------------------------------------------------------

    def on_message(self, channel: _Channel, packet: bytes) -> None:
        """A received ICMP message that is not an echo reply (with the IPv4 header on raw IPv4
        sockets): an error quoting one of our echoes ends it; anything else is counted."""
        if channel.family == AF_INET:
            error = parse_error4(packet, ip_header=channel.kind == "raw", verify_checksum=channel.kind == "raw")
        else:
            error = parse_error6(packet)
        if error is None:
            self._counters["malformed"] += 1
            return
        reason = icmp_error_reason(channel.family, error.icmp_type, error.code)
        channel.core.fail(error.ident, error.seq, error.quoted_dst, reason)

    def on_queued_error(self, channel: _Channel, quoted: memoryview, destination: str,
                        ee_errno: int, origin: int, icmp_type: int, code: int) -> None:
        """One error from a datagram socket's error queue about the echo quoted in `quoted`."""
        if len(quoted) < 8:
            self._counters["malformed"] += 1
            return
        ident, seq = _ID_SEQ.unpack_from(quoted, 4)
        reason = None
        if origin in (SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6):
            reason = icmp_error_reason(channel.family, icmp_type, code)
        dst = socket.inet_pton(channel.family, destination.partition("%")[0])
        channel.core.fail(ident, seq, dst, reason or errno_reason(ee_errno))


def _set_result(future: asyncio.Future[PingStats], stats: PingStats) -> None:
    """on_done of ping(): hand the result to the awaiting caller unless it was cancelled."""
    if not future.done():
        future.set_result(stats)


async def sweep(addresses: Iterable[str | IPAddress], cfg: IcmpConfig | None = None) -> list[PingStats]:
    """Ping every address once with cfg's defaults (overrides do not apply: no devices here)
    through a fresh engine; results in input order. For `fleetmon probe icmp` and bench/.

    Raises ValueError naming every invalid address (before sending anything) and
    IcmpPermissionError when no ICMP socket may be opened.
    """
    cfg = cfg or IcmpConfig()
    targets, bad = [], []
    for address in addresses:
        try:
            targets.append(Target.parse(address))
        except ValueError:
            bad.append(str(address))
    if bad:
        raise ValueError(f"not an IP address: {', '.join(bad)}")
    async with IcmpEngine(mode=cfg.mode, packets_per_second=cfg.packets_per_second) as engine:
        return await engine.ping_many(targets, PingParams.from_config(cfg))


# ---------------------------------------------------------------------------------------------
# The probe.




MEASUREMENT = MeasurementSpec(
    "icmp",
    "One ICMP probe of one device: `count` echo requests (plus retries); re-probes confirming a miss (probes.icmp.confirm) write no point of their own.",
    DEVICE_TAGS,
    {
        "up": FieldSpec("boolean", "", "at least one echo reply received, or one of a confirmation re-probe's"),
        "sent": FieldSpec("integer", "packets", "echo requests sent"),
        "received": FieldSpec("integer", "packets", "echo replies received"),
        "loss_pct": FieldSpec("float", "%", "lost echoes / sent × 100"),
        "rtt_min_ms": FieldSpec("float", "ms", "smallest round-trip time (only when a reply came)"),
        "rtt_avg_ms": FieldSpec("float", "ms", "mean round-trip time (only when a reply came)"),
        "rtt_max_ms": FieldSpec("float", "ms", "largest round-trip time (only when a reply came)"),
        "jitter_ms": FieldSpec(
            "float", "ms", "mean absolute difference of consecutive RTTs (RFC 3550 §6.4.1 without smoothing; ≥ 2 replies)"
        ),
        "payload_bytes": FieldSpec("integer", "bytes", "ICMP payload size of each echo request"),
    },
)


class IcmpProbe:
    """The `icmp` probe (probes.base.Probe): one IcmpEngine for every device.

    Effective settings of a device: the config's defaults, then every override whose selector
    matches the device, in config order; a later override overwrites the fields it sets (so a
    broad `kind: [link]` rule and a narrower `site:` rule combine).
    """

    name: ClassVar[str] = "icmp"
    basis: ClassVar[Basis | None] = Basis.NETWORK
    Config: ClassVar[type[IcmpConfig]] = IcmpConfig
    measurements: ClassVar[tuple[MeasurementSpec, ...]] = (MEASUREMENT,)
    offers: ClassVar[tuple[str, ...]] = ()
    learns: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: IcmpConfig) -> None:
        self.cfg = cfg
        self.engine: IcmpEngine | None = None
        self._defaults = PingParams.from_config(cfg)
        self._overrides: list[tuple[Selector, IcmpOverride]] = [(o.match.selector(), o) for o in cfg.overrides]
        self._params: dict[tuple, PingParams] = {}

    async def __aenter__(self) -> "IcmpProbe":
        engine = IcmpEngine(mode=self.cfg.mode, packets_per_second=self.cfg.packets_per_second)
        engine.open()
        self.engine = engine
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self.engine is not None:
            await self.engine.close()
            self.engine = None

    def wants(self, device: Device) -> bool:
        """Every device with an address is pinged."""
        return device.address is not None

    def params_for(self, device: Device) -> PingParams:
        """The device's effective PingParams (cached per selector-relevant attributes)."""
        key = (device.region, device.site, device.kind, device.tags)
        params = self._params.get(key)
        if params is None:
            params = self._defaults
            for selector, override in self._overrides:
                if selector.matches(device):
                    params = PingParams.from_config(override, params)
            self._params[key] = params
        return params

    def budget_s(self, device: Device) -> float:
        """Worst case of probe(device): the echo timeline (PingParams.timeline_s) plus, for each
        echo, the time the send queue needs to drain as it is now (so call it right before
        probe()) plus one pacing slot, plus 50 ms for the event loop."""
        params = self.params_for(device)
        echoes = params.count + params.retries
        backlog = self.engine.backlog_s() if self.engine is not None else 0.0
        return params.timeline_s() + echoes * (backlog + 1 / self.cfg.packets_per_second) + 0.05

    def start(self, device: Device, on_done: Callable[[ProbeResult], None]) -> Callable[[], None] | None:
        """probes.base.Starter: the result probe(device) would give, handed to `on_done` from
        the engine's callbacks (no task per device); None when it was given at once, else a
        function that cancels the probe (on_done is not called after it)."""
        started = time.time_ns()
        if self.engine is None:
            raise RuntimeError("IcmpProbe used outside `async with`")
        if device.address is None:
            on_done(ProbeResult(device.id, self.name, started, False, "no address", {"up": False}))
            return None
        name, device_id = self.name, device.id

        def finished(stats: PingStats) -> None:
            on_done(ProbeResult(device_id, name, started, stats.up, stats.reason, stats.fields()))

        run = self.engine.start(Target.parse(device.address), self.params_for(device), finished)
        return None if run is None else run.cancel

    async def probe(self, device: Device) -> ProbeResult:
        """Ping the device; ok when at least one echo was answered. Never raises for a dead,
        unreachable or address-less device."""
        started = time.time_ns()
        if self.engine is None:
            raise RuntimeError("IcmpProbe used outside `async with`")
        params = self.params_for(device)
        if device.address is None:
            return ProbeResult(device.id, self.name, started, False, "no address", {"up": False})
        stats = await self.engine.ping(device.address, params)
        return ProbeResult(device.id, self.name, started, stats.up, stats.reason, stats.fields())


def _engine_stopped(task: asyncio.Task[None]) -> None:
    """The engine's task ends only when cancelled (close); anything else is a bug that stops
    every ping (each then ends as the scheduler's caller timeout): say so at once, loudly."""
    if not task.cancelled() and task.exception() is not None:
        log.error("ICMP engine stopped by a bug: no echo is sent or read until fleetmon restarts",
                  exc_info=task.exception())
