"""Bytes a process has received over TCP, from the kernel's own counter: the sock_diag netlink
interface (linux/inet_diag.h, NETLINK_SOCK_DIAG) dumps this network namespace's established TCP
sockets with their `struct tcp_info` (linux/tcp.h), whose `tcpi_bytes_received` counts the
payload received; the process's sockets are found by inode in /proc/<pid>/fd.

Used by the frame check to hold ffmpeg to a byte budget per check while it reads (ffmpeg has no
option that bounds the bytes it reads, and /proc/<pid>/io does not count socket reads).
`received_bytes(pid)` → int, or None when the kernel or /proc does not tell (not Linux, no
permission); never raises for a process that has just exited (0 sockets, 0 bytes).
"""

from __future__ import annotations

import os
import socket
import struct

_NETLINK_SOCK_DIAG, _SOCK_DIAG_BY_FAMILY = 4, 20
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NLMSG_DONE, _NLMSG_ERROR = 3, 2
_INET_DIAG_INFO = 2
_ESTABLISHED = 1 << 1  # TCP_ESTABLISHED = 1, as a state bit
_MSG = struct.Struct("=BBBB48sIIIII")  # struct inet_diag_msg: …, idiag_inode last
_BYTES_RECEIVED = struct.Struct("=Q")
_BYTES_RECEIVED_AT = 128  # offsetof(struct tcp_info, tcpi_bytes_received) since Linux 4.1


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return inodes
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _dump(family: int) -> dict[int, int]:
    """inode → bytes received, for this namespace's established TCP sockets of `family`."""
    request = struct.pack("=BBBBI48s", family, socket.IPPROTO_TCP, 1 << (_INET_DIAG_INFO - 1), 0, _ESTABLISHED,
                          b"\0" * 48)
    header = struct.pack("=IHHII", 16 + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0)
    out: dict[int, int] = {}
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(2.0)
        nl.send(header + request)
        for _ in range(100_000):  # bounded: a dump ends with NLMSG_DONE
            data = nl.recv(1 << 16)
            offset = 0
            while offset + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                if kind in (_NLMSG_DONE, _NLMSG_ERROR) or length < 16:
                    return out
                body, end = offset + 16, offset + length
                inode = _MSG.unpack_from(data, body)[-1]
                attr = body + _MSG.size
                while attr + 4 <= end:
                    attr_len, attr_type = struct.unpack_from("=HH", data, attr)
                    if attr_len < 4:
                        break
                    if attr_type == _INET_DIAG_INFO and attr_len - 4 >= _BYTES_RECEIVED_AT + 8:
                        out[inode] = _BYTES_RECEIVED.unpack_from(data, attr + 4 + _BYTES_RECEIVED_AT)[0]
                    attr += (attr_len + 3) & ~3
                offset += (length + 3) & ~3
    return out


def received_bytes(pid: int) -> int | None:
    """TCP payload bytes received so far on the sockets process `pid` holds open now."""
    inodes = _socket_inodes(pid)
    if not inodes:
        return 0
    try:
        counts = {**_dump(socket.AF_INET), **_dump(socket.AF_INET6)}
    except OSError:
        return None
    return sum(counts.get(inode, 0) for inode in inodes)
