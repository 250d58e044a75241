"""The pysnmp side of the trap receiver (probes.traps.TrapReceiver): a pysnmp 7.1 SnmpEngine
with the configured communities and USM users, a NotificationReceiver on the receiver's bound
socket, pysnmp's MIB counters (read around each datagram to attribute rejections) and the
rendering of pysnmp values as text.

Imported by TrapReceiver.__aenter__ only, never at module level: pysnmp and pyasn1 cost about
20 MB of RSS at import (pysnmp loads its MIB tree), which a daemon with traps off must not pay.
What it shares with probes.traps is in probes/trap_model.py, and the receiver hands in its
callbacks: it imports nothing back from probes.traps.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from functools import partial
from typing import Any, Callable, Literal

from pyasn1.type import univ
from pysnmp.carrier.asyncio.dgram import udp, udp6
from pysnmp.entity import config, engine
from pysnmp.entity.rfc3413 import ntfrcv
from pysnmp.proto.api import v1
from pysnmp.proto.secmod.rfc3826.priv import aes

from probes.trap_model import MAX_TEXT, MAX_VARBINDS, MalformedNotification, TrapConfig

Version = Literal["1", "2c", "3"]
OnDatagram = Callable[[tuple, Callable[[], None]], None]
"""Called with (sender address, decode) for every datagram, before pysnmp sees it; decode() runs
pysnmp's message processing synchronously (and may raise MalformedNotification)."""
OnNotification = Callable[[Version, list[tuple[str, str]]], None]
"""Called from within decode() with (SNMP version, varbinds as (dotted OID, rendered text)) for a
notification that passed the community/USM checks."""

DRAIN_BATCH = 512
"""Datagrams read per turn of the event loop beyond asyncio's one (a flood costs ~2 µs each)."""
MAX_DATAGRAM = 65_535
"""Largest UDP payload read (RFC 3417 §3: an SNMP message fits one UDP datagram)."""

_VERSIONS: dict[int, Version] = {0: "1", 1: "2c", 3: "3"}  # msgProcessingModel

# pysnmp's instrumentation of RFC 3418 (snmpIn*), RFC 3412 §5 (snmp*) and RFC 3414 §5 (usmStats*).
COUNTERS = {
    "malformed": [
        ("__SNMPv2-MIB", "snmpInASNParseErrs"),
        ("__SNMPv2-MIB", "snmpInBadVersions"),
        ("__SNMP-MPD-MIB", "snmpUnknownSecurityModels"),
        ("__SNMP-MPD-MIB", "snmpInvalidMsgs"),
        ("__SNMP-MPD-MIB", "snmpUnknownPDUHandlers"),
    ],
    "bad_community": [("__SNMPv2-MIB", "snmpInBadCommunityNames")],
    "bad_auth": [
        ("__SNMP-USER-BASED-SM-MIB", name)
        for name in (
            "usmStatsUnsupportedSecLevels", "usmStatsNotInTimeWindows", "usmStatsUnknownUserNames",
            "usmStatsWrongDigests", "usmStatsDecryptionErrors",
        )
    ],
    # pysnmp counts usmStatsUnknownEngineIDs only for an empty or malformed msgAuthoritativeEngineID,
    # i.e. an inform sender discovering this engine's ID (RFC 3414 §4): normal, not an error.
    "discovery": [("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownEngineIDs")],
}
"""Rejection kinds (TrapReceiver.stats keys, plus "discovery") → the MIB counters that count them."""

def _clip(text: str) -> str:
    # Control characters would break log lines and line protocol; a hostile agent may send them.
    text = "".join(ch if ch.isprintable() else " " for ch in text[: MAX_TEXT + 1])
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def render_value(value: Any) -> str:
    """A varbind value as text: OIDs dotted, numbers in decimal, IpAddress dotted-quad, printable
    octet strings as text, other octet strings as 0x-hex; at most MAX_TEXT characters."""
    if isinstance(value, univ.ObjectIdentifier):
        return str(value)
    if isinstance(value, univ.Integer):
        return str(int(value))
    if isinstance(value, univ.OctetString):
        if not value.hasValue():
            return ""
        octets = value.asOctets()
        if type(value).__name__ == "IpAddress" and len(octets) == 4:
            return str(ipaddress.IPv4Address(octets))
        try:
            text = octets.decode("utf-8")
        except UnicodeDecodeError:
            return _clip("0x" + octets.hex())
        return _clip(text) if text.isprintable() else _clip("0x" + octets.hex())
    if isinstance(value, univ.Null) or not getattr(value, "hasValue", lambda: True)():
        return ""
    return _clip(value.prettyPrint())


def check_privacy_support(cfg: TrapConfig) -> None:
    """Raises RuntimeError when a user needs privacy and pysnmp lacks the 'cryptography' package."""
    if aes.PysnmpCryptoError and any(user.priv_protocol for user in cfg.users):
        # Without it pysnmp rejects every encrypted message as a "decryption error".
        raise RuntimeError("SNMPv3 privacy (priv_protocol) needs the Python package 'cryptography'")


def _check_request(snmp_engine: Any, execpoint: str, variables: dict, cb_ctx: Any) -> None:
    """Observer called after authentication, before pysnmp's dispatcher records the request:
    refuses what pysnmp's RFC 3584 translation would choke on (a KeyError later, leaving
    per-request state behind)."""
    if variables["messageProcessingModel"] == 0:
        pdu = variables["pdu"]
        if pdu.tagSet == v1.TrapPDU.tagSet and not 0 <= int(v1.apiTrapPDU.get_generic_trap(pdu)) <= 6:
            raise MalformedNotification("SNMPv1 generic-trap outside 0..6 (RFC 1157 §4.1.6)")


class TrapEngine:
    """The SnmpEngine behind one TrapReceiver: every datagram on the socket goes to
    `on_datagram(address, decode)` and every accepted notification to `on_notification(version,
    varbinds)` with varbinds as (dotted OID, render_value text), at most MAX_VARBINDS + 8."""

    def __init__(self, snmp_engine: Any, notification_receiver: Any, counters: dict[str, list[Any]]) -> None:
        self._engine = snmp_engine
        self._receiver = notification_receiver
        self._counters = counters

    @classmethod
    async def start(cls, cfg: TrapConfig, sock: socket.socket, on_datagram: OnDatagram,
                    on_notification: OnNotification) -> TrapEngine:
        """Configure an engine on the bound, non-blocking `sock` (closed by the caller on error)."""
        snmp_engine = engine.SnmpEngine()
        try:
            for i, community in enumerate(cfg.communities):
                config.add_v1_system(snmp_engine, f"fleetmon-{i}", community.get_secret_value())
            for user in cfg.users:
                auth_protocol, priv_protocol = user.pysnmp_protocols()
                # Informs: under this engine's own ID (None); traps: under the sender's.
                for engine_id in (None, user.engine_id) if user.engine_id else (None,):
                    config.add_v3_user(
                        snmp_engine,
                        user.user,
                        auth_protocol,
                        user.auth_key.get_secret_value() if user.auth_key else None,
                        priv_protocol,
                        user.priv_key.get_secret_value() if user.priv_key else None,
                        securityEngineId=None if engine_id is None else univ.OctetString(hexValue=engine_id),
                    )
            transport_type, domain = (
                (udp6.Udp6AsyncioTransport, udp6.DOMAIN_NAME) if sock.family == socket.AF_INET6
                else (udp.UdpAsyncioTransport, udp.DOMAIN_NAME)
            )

            class GuardedTransport(transport_type):  # type: ignore[valid-type,misc]
                def datagram_received(self, datagram: bytes, address: tuple) -> None:
                    # Instead of pysnmp's, which defers decoding with call_soon and lets decoder
                    # exceptions escape into the event loop's handler.
                    on_datagram(address, partial(self._callback_function, self, address, datagram))
                    # asyncio reads one datagram per turn of the event loop, and under a flood
                    # that turn costs more than dropping the datagram: a flood from elsewhere
                    # would fill the socket buffer and push the fleet's own traps out of it.
                    # So whatever is queued now is read here, DRAIN_BATCH at most per turn.
                    for _ in range(DRAIN_BATCH):
                        try:
                            datagram, address = sock.recvfrom(MAX_DATAGRAM)
                        except OSError:  # nothing queued (BlockingIOError), or an ICMP error
                            return
                        on_datagram(address, partial(self._callback_function, self, address, datagram))

            def notification(snmp_engine: Any, state_reference: Any, context_engine_id: Any, context_name: Any,
                             varbinds: Any, cb_ctx: Any) -> None:
                # A notification that passed community/USM checks (informs are already
                # acknowledged), in SNMPv2 form.
                ctx = snmp_engine.observer.get_execution_context("rfc3412.receiveMessage:request")
                version = _VERSIONS[int(ctx["messageProcessingModel"])]  # pysnmp knows no other models
                on_notification(version, [(str(oid), render_value(value))
                                          for oid, value in varbinds[: MAX_VARBINDS + 8]])

            transport = GuardedTransport()
            await asyncio.get_running_loop().create_datagram_endpoint(lambda: transport, sock=sock)
            config.add_transport(snmp_engine, domain, transport)
            snmp_engine.observer.register_observer(_check_request, "rfc3412.receiveMessage:request")
            notification_receiver = ntfrcv.NotificationReceiver(snmp_engine, notification)
            mib = snmp_engine.get_mib_builder()
            counters = {
                kind: [mib.import_symbols(module, name)[0] for module, name in symbols]
                for kind, symbols in COUNTERS.items()
            }
        except BaseException:
            snmp_engine.close_dispatcher()
            raise
        return cls(snmp_engine, notification_receiver, counters)

    @property
    def engine_id(self) -> bytes:
        """This engine's SNMP engine ID (the authoritative one for v3 informs)."""
        return bytes(self._engine.snmpEngineID)

    def read_counters(self) -> dict[str, int]:
        """Current sum of the MIB counters of each COUNTERS kind."""
        return {kind: sum(int(c.syntax) for c in counters) for kind, counters in self._counters.items()}

    def close(self) -> None:
        self._receiver.close(self._engine)
        self._engine.close_dispatcher()
