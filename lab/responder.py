"""ICMP echo responder with per-prefix reply delay and random loss, for impaired lab sites.

This kernel has no netem, so delay and loss come from here. The responder runs inside a lab
network namespace whose kernel echo replies are switched off (net.ipv4.icmp_echo_ignore_all=1,
net.ipv6.icmp.echo_ignore_all=1) and answers echo requests itself from raw sockets:

    ip netns exec NS python -m lab.responder --rules RULES.json --log LOG --parent-pid PID

Rules file (JSON), longest prefix wins, destinations matching no rule are answered at once:

    {"generation": 3, "rules": [{"prefix": "198.18.4.0/27", "delay_ms": 250.0, "loss_pct": 20.0}]}

- delay_ms: added before the reply is sent (one-way reply delay, ms, ≥ 0).
- loss_pct: share of echo requests left unanswered, chosen at random (%, 0–100).

Replies are sent through non-HDRINCL raw sockets with the request's destination as source
(IP_PKTINFO / IPV6_PKTINFO), so the kernel builds the IP header, computes the ICMPv6 checksum
and fragments large replies (20,000-byte pings) like any other packet.

Talks to its parent over stdout, one line each: `ready` once sockets are open and the rules
loaded; after every SIGHUP the rules file is read again and `loaded <generation>` is printed,
or `error <reason>` (the old rules stay). Stops on SIGTERM/SIGINT, and by itself within 0.5 s
once the parent process (--parent-pid) is gone. Logs start, reloads, counters every 10 s and
the stop reason to --log.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import ipaddress
import json
import logging
import os
import random
import signal
import socket
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("lab.responder")

# Linux constants the socket module does not export (linux/in.h, linux/in6.h, netinet/icmp6.h).
IP_PKTINFO = 8
IPV6_FREEBIND = 78
ICMP6_FILTER = 1
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32

ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY = 8, 0
ICMP6_ECHO_REQUEST, ICMP6_ECHO_REPLY = 128, 129
SOCKET_BUFFER_BYTES = 8 << 20  # absorbs a burst of thousands of echo requests
READ_BATCH = 512  # packets read per wake-up before other callbacks get a turn
PARENT_CHECK_S = 0.5
STATS_EVERY_S = 10.0


@dataclass(frozen=True, slots=True)
class Impairment:
    delay_s: float
    loss_pct: float


NO_IMPAIRMENT = Impairment(0.0, 0.0)


class Rules:
    """Longest-prefix lookup of the impairment for a destination address.

    Per family a list of (prefix length, {network as int: Impairment}), longest first: a lookup
    masks the address once per distinct prefix length, which stays cheap for thousands of rules.
    """

    def __init__(self, rules: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, Impairment]]):
        tables: dict[int, dict[int, dict[int, Impairment]]] = {4: {}, 6: {}}
        for network, impairment in rules:
            tables[network.version].setdefault(network.prefixlen, {})[int(network.network_address)] = impairment
        self._tables = {
            version: [(plen, table[plen]) for plen in sorted(table, reverse=True)] for version, table in tables.items()
        }
        self.count = len(rules)

    @classmethod
    def load(cls, path: Path) -> tuple[int, "Rules"]:
        """Read a rules file; returns (generation, rules). Raises ValueError on any bad content."""
        try:
            doc = json.loads(path.read_text())
            rules = []
            for entry in doc["rules"]:
                delay_ms, loss_pct = float(entry.get("delay_ms", 0.0)), float(entry.get("loss_pct", 0.0))
                if delay_ms < 0 or not 0 <= loss_pct <= 100:
                    raise ValueError(f"delay_ms must be ≥ 0 and loss_pct within 0–100: {entry}")
                rules.append((ipaddress.ip_network(entry["prefix"]), Impairment(delay_ms / 1000.0, loss_pct)))
            return int(doc.get("generation", 0)), cls(rules)
        except (OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: {exc!r}") from exc

    def lookup(self, version: int, address: bytes) -> Impairment:
        value = int.from_bytes(address, "big")
        bits = 32 if version == 4 else 128
        for plen, table in self._tables[version]:
            hit = table.get(value >> (bits - plen) << (bits - plen))
            if hit is not None:
                return hit
        return NO_IMPAIRMENT


def internet_checksum(data: bytes | bytearray) -> int:
    """RFC 1071 checksum, in host byte order: pack the result with "=H" into the packet.
    Summing native 16-bit words is byte-order independent (RFC 1071 §2(B))."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    total = sum(array.array("H", bytes(data)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class Responder:
    """Answers echo requests on every address of its namespace according to `Rules`.

    Delayed replies wait in the event loop's timer heap; their payload bytes are bounded by
    `max_pending_bytes` (requests beyond that are dropped and counted as `overflow`).
    """

    def __init__(self, rules_path: Path, parent_pid: int | None, max_pending_bytes: int):
        self.rules_path = rules_path
        self.parent_pid = parent_pid
        self.max_pending_bytes = max_pending_bytes
        self.generation, self.rules = Rules.load(rules_path)
        self.pending_bytes = 0
        self.counters = dict.fromkeys(("received", "answered", "lost", "overflow", "malformed", "send_errors"), 0)
        self.sock4 = self._open_v4()
        self.sock6 = self._open_v6()
        self._stop: asyncio.Event | None = None
        self._stop_reason = ""

    @staticmethod
    def _buffers(sock: socket.socket) -> None:
        for force, plain in ((SO_RCVBUFFORCE, socket.SO_RCVBUF), (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
            try:
                sock.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER_BYTES)
            except OSError:  # without CAP_NET_ADMIN: capped by net.core.[rw]mem_max
                sock.setsockopt(socket.SOL_SOCKET, plain, SOCKET_BUFFER_BYTES)

    def _open_v4(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        sock.setblocking(False)
        self._buffers(sock)
        return sock

    def _open_v6(self) -> socket.socket | None:
        try:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        except OSError as exc:  # kernel without IPv6: serve IPv4 only
            log.warning("no IPv6 raw socket (%s): answering IPv4 only", exc)
            return None
        sock.setblocking(False)
        self._buffers(sock)
        # Only echo requests reach us (no neighbour discovery, no echo replies of others).
        blocked = [0xFFFFFFFF] * 8
        blocked[ICMP6_ECHO_REQUEST >> 5] &= ~(1 << (ICMP6_ECHO_REQUEST & 31))
        sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("=8I", *blocked))
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        # Lab addresses are answered through a `local` route (AnyIP), not configured on an
        # interface; IPv6 accepts such a source in IPV6_PKTINFO only with freebind.
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
        return sock

    # --- receiving -------------------------------------------------------------------------

    def _read_v4(self) -> None:
        for _ in range(READ_BATCH):
            try:
                packet, (source, _) = self.sock4.recvfrom(65536)
            except BlockingIOError:
                return
            ihl = (packet[0] & 0x0F) * 4
            icmp = packet[ihl:]
            if len(icmp) < 8 or icmp[0] != ICMP_ECHO_REQUEST:
                continue  # the raw socket sees every ICMP message, not only echo requests
            self.counters["received"] += 1
            if icmp[1] != 0 or internet_checksum(icmp) != 0:
                self.counters["malformed"] += 1  # a real host drops these too
                continue
            destination = packet[16:20]
            reply = bytearray(icmp)
            reply[0:4] = bytes((ICMP_ECHO_REPLY, 0, 0, 0))
            reply[2:4] = struct.pack("=H", internet_checksum(reply))
            # in_pktinfo {int ifindex; in_addr spec_dst (our source); in_addr addr}
            cmsg = (socket.IPPROTO_IP, IP_PKTINFO, struct.pack("=i4s4s", 0, destination, bytes(4)))
            self._answer(4, destination, self.sock4, bytes(reply), cmsg, (source, 0))

    def _read_v6(self) -> None:
        assert self.sock6 is not None
        for _ in range(READ_BATCH):
            try:
                icmp, ancdata, _, address = self.sock6.recvmsg(65536, socket.CMSG_SPACE(20))
            except BlockingIOError:
                return
            if len(icmp) < 8 or icmp[0] != ICMP6_ECHO_REQUEST:
                continue
            self.counters["received"] += 1  # the kernel has verified the ICMPv6 checksum
            destination = next(
                (data[:16] for level, kind, data in ancdata if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO),
                None,
            )
            if icmp[1] != 0 or destination is None:
                self.counters["malformed"] += 1
                continue
            reply = bytes((ICMP6_ECHO_REPLY, 0, 0, 0)) + icmp[4:]  # checksum filled in by the kernel
            # in6_pktinfo {in6_addr addr (our source); unsigned ifindex}
            cmsg = (socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, destination + struct.pack("=I", 0))
            self._answer(6, destination, self.sock6, reply, cmsg, (address[0], 0, 0, address[3]))

    # --- answering -------------------------------------------------------------------------

    def _answer(self, version: int, destination: bytes, sock: socket.socket, reply: bytes, cmsg: tuple, to: tuple) -> None:
        impairment = self.rules.lookup(version, destination)
        if impairment.loss_pct and random.random() * 100.0 < impairment.loss_pct:
            self.counters["lost"] += 1
            return
        if not impairment.delay_s:
            self._send(sock, reply, cmsg, to, 0)
            return
        if self.pending_bytes + len(reply) > self.max_pending_bytes:
            self.counters["overflow"] += 1
            return
        self.pending_bytes += len(reply)
        asyncio.get_running_loop().call_later(impairment.delay_s, self._send, sock, reply, cmsg, to, len(reply))

    def _send(self, sock: socket.socket, reply: bytes, cmsg: tuple, to: tuple, pending: int) -> None:
        self.pending_bytes -= pending
        try:
            sock.sendmsg([reply], [cmsg], 0, to)
            self.counters["answered"] += 1
        except OSError as exc:  # full send buffer or a vanished route: the echo is lost
            self.counters["send_errors"] += 1
            if self.counters["send_errors"] == 1:
                log.warning("send to %s failed: %s (further send errors only counted)", to[0], exc)

    # --- lifecycle -------------------------------------------------------------------------

    def _reload(self) -> None:
        try:
            self.generation, self.rules = Rules.load(self.rules_path)
        except ValueError as exc:
            log.error("reload failed, keeping %d rules: %s", self.rules.count, exc)
            _tell_parent(f"error {exc}")
            return
        log.info("loaded generation %d: %d rules", self.generation, self.rules.count)
        _tell_parent(f"loaded {self.generation}")

    def stop(self, reason: str) -> None:
        assert self._stop is not None
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()

    async def _watch_parent(self) -> None:
        while self.parent_pid is not None:
            if os.getppid() != self.parent_pid:  # reparented: the lab owner has died
                self.stop(f"parent {self.parent_pid} gone")
                return
            await asyncio.sleep(PARENT_CHECK_S)

    async def _log_counters(self) -> None:
        last: dict[str, int] = {}
        while True:
            await asyncio.sleep(STATS_EVERY_S)
            if self.counters != last:
                log.info("counters %s pending_bytes=%d", self.counters, self.pending_bytes)
                last = dict(self.counters)

    async def run(self) -> str:
        """Serve until stopped; returns the stop reason."""
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        loop.add_reader(self.sock4, self._read_v4)
        if self.sock6 is not None:
            loop.add_reader(self.sock6, self._read_v6)
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        loop.add_signal_handler(signal.SIGTERM, self.stop, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self.stop, "SIGINT")
        tasks = [asyncio.create_task(self._watch_parent()), asyncio.create_task(self._log_counters())]
        log.info("ready: generation %d, %d rules, IPv6 %s", self.generation, self.rules.count, self.sock6 is not None)
        _tell_parent("ready")
        await self._stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        log.info("stopping (%s): counters %s", self._stop_reason, self.counters)
        return self._stop_reason


def _tell_parent(line: str) -> None:
    try:
        print(line, flush=True)
    except BrokenPipeError:  # the parent is gone; _watch_parent ends us shortly
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.responder", description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=Path, required=True, help="JSON rules file, re-read on SIGHUP")
    parser.add_argument("--log", type=Path, required=True, help="log file (appended)")
    parser.add_argument("--parent-pid", type=int, help="stop when this process is no longer our parent")
    parser.add_argument("--max-pending-mb", type=float, default=64.0, help="bound on delayed reply bytes held")
    args = parser.parse_args(argv)
    logging.basicConfig(
        filename=args.log, level=logging.INFO, format="%(asctime)s responder[%(process)d] %(levelname)s %(message)s"
    )
    try:
        responder = Responder(args.rules, args.parent_pid, int(args.max_pending_mb * (1 << 20)))
    except (OSError, ValueError) as exc:
        log.error("cannot start: %s", exc)
        print(f"error {exc}", file=sys.stderr)
        return 1
    asyncio.run(responder.run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
