"""A kernel-side sender filter for the trap receiver's UDP socket (Linux classic BPF,
SO_ATTACH_FILTER; `Documentation/networking/filter.rst`): datagrams whose IPv4 source address is
not in a given set are dropped by the kernel before they take room in the socket's receive
buffer, except one in `sample_every`, picked at random (SKF_AD_RANDOM), which still reaches the
receiver so that it can count and log the flood.

Why: a flood from elsewhere at a rate the receiver cannot read fills the receive buffer, and
then the kernel drops whatever comes next, the fleet's own traps included. With the filter, the
flood's share of the buffer shrinks by `sample_every` and the fleet's datagrams find room.

Limits: IPv4 sockets only (an AF_INET6 socket returns False: the receiver then relies on its
own check); at most MAX_ADDRESSES addresses (two instructions each within BPF_MAXINSNS = 4096;
beyond, False). Loads no pysnmp.
"""

from __future__ import annotations

import ctypes
import ipaddress
import socket
import struct
from collections.abc import Iterable

SO_ATTACH_FILTER = 26  # asm-generic/socket.h (not exported by Python's socket module)
SO_DETACH_FILTER = 27
MAX_ADDRESSES = 2000

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


def program(addresses: Iterable[str], sample_every: int) -> bytes | None:
    """The filter's instructions (struct sock_filter[]) accepting `addresses` (IPv4 text; others
    are ignored) and one in `sample_every` (a power of two) of the rest; None beyond
    MAX_ADDRESSES."""
    if sample_every < 1 or sample_every & (sample_every - 1):
        raise ValueError("sample_every must be a power of two")
    v4 = sorted({int(ipaddress.IPv4Address(a)) for a in addresses if ":" not in a})
    if len(v4) > MAX_ADDRESSES:
        return None
    code = [_insn(_LD_W_ABS, 0, 0, _NET_SRC)]
    for address in v4:  # equal: the next instruction accepts; else skip it
        code += [_insn(_JEQ_K, 0, 1, address), _insn(_RET_K, 0, 0, _ACCEPT)]
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
    socket, too many addresses) or the kernel refuses it (OSError), and nothing changed."""
    if sock.family != socket.AF_INET:
        return False
    code = program(addresses, sample_every)
    if code is None:
        return False
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
