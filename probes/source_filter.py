"""A kernel-side sender filter for the trap receiver's UDP socket (Linux classic BPF,
SO_ATTACH_FILTER; `Documentation/networking/filter.rst`): datagrams whose IPv4 source address is
not in a given set are dropped by the kernel before they take room in the socket's receive
buffer, except one in `sample_every`, picked at random (SKF_AD_RANDOM), which still reaches the
receiver so that it can count and log the flood.

Why: a flood from elsewhere at a rate the receiver cannot read fills the receive buffer, and
then the kernel drops whatever comes next, the fleet's own traps included. With the filter, the
flood's share of the buffer shrinks by `sample_every` and the fleet's datagrams find room.

Limits: IPv4 sockets only (an AF_INET6 socket returns False: the receiver then relies on its
own check). A classic BPF program has at most 4096 instructions (BPF_MAXINSNS), two per accepted
network here: beyond MAX_NETWORKS addresses they are widened to their /24 networks, then /16
(a fleet's devices sit in a few subnets). The filter only has to keep the flood's bulk out of
the buffer: the receiver still checks every address exactly. Loads no pysnmp.
"""

from __future__ import annotations

import ctypes
import ipaddress
import socket
import struct
from collections.abc import Iterable

SO_ATTACH_FILTER = 26  # asm-generic/socket.h (not exported by Python's socket module)
SO_DETACH_FILTER = 27
MAX_NETWORKS = 1500
_WIDER = (32, 24, 16, 8)  # prefix lengths tried in turn until the networks fit

_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_AND_K = 0x54  # BPF_ALU | BPF_AND | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K
_NET_SRC = (-0x100000 + 12) & 0xFFFFFFFF  # SKF_NET_OFF + offset of the IPv4 source address
_RANDOM = (-0x1000 + 56) & 0xFFFFFFFF  # SKF_AD_OFF + SKF_AD_RANDOM
_ACCEPT = 0xFFFFFFFF  # keep the whole datagram
_DROP = 0


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def networks(addresses: Iterable[str]) -> list[ipaddress.IPv4Network]:
    """The IPv4 networks the filter accepts for `addresses` (IPv4 text; others ignored): the
    addresses themselves, or their /24, /16, /8 networks when there are more than
    MAX_NETWORKS."""
    v4 = [ipaddress.IPv4Address(a) for a in addresses if ":" not in a]
    for prefix in _WIDER:
        nets = list(ipaddress.collapse_addresses(ipaddress.IPv4Network(f"{a}/{prefix}", strict=False) for a in v4))
        if len(nets) <= MAX_NETWORKS:
            return nets
    raise AssertionError("unreachable: at most 256 networks of /8")


def program(addresses: Iterable[str], sample_every: int) -> bytes:
    """The filter's instructions (struct sock_filter[]) accepting `networks(addresses)` and one
    in `sample_every` (a power of two) of the rest."""
    if sample_every < 1 or sample_every & (sample_every - 1):
        raise ValueError("sample_every must be a power of two")
    by_prefix: dict[int, list[int]] = {}
    for net in networks(addresses):
        by_prefix.setdefault(net.prefixlen, []).append(int(net.network_address))
    code = []
    for prefix, nets in sorted(by_prefix.items(), reverse=True):
        code.append(_insn(_LD_W_ABS, 0, 0, _NET_SRC))
        if prefix < 32:
            code.append(_insn(_AND_K, 0, 0, (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF))
        for net in nets:  # equal: the next instruction accepts; else skip it
            code += [_insn(_JEQ_K, 0, 1, net), _insn(_RET_K, 0, 0, _ACCEPT)]
    code += [
        _insn(_LD_W_ABS, 0, 0, _RANDOM),
        _insn(_AND_K, 0, 0, sample_every - 1),
        _insn(_JEQ_K, 0, 1, 0),
        _insn(_RET_K, 0, 0, _ACCEPT),
        _insn(_RET_K, 0, 0, _DROP),
    ]
    return b"".join(code)


def attach(sock: socket.socket, addresses: Iterable[str], sample_every: int) -> bool:
    """Attach (or replace) the filter on `sock`; False when it does not apply (not an IPv4
    socket) or the kernel refuses it (OSError), and nothing changed."""
    if sock.family != socket.AF_INET:
        return False
    code = program(addresses, sample_every)
    buf = ctypes.create_string_buffer(code)
    fprog = struct.pack("HL", len(code) // 8, ctypes.addressof(buf))  # struct sock_fprog
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    except OSError:
        return False
    return True


def detach(sock: socket.socket) -> None:
    """Remove the filter (nothing attached: nothing happens)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
    except OSError:
        pass  # ENOENT: no filter attached
