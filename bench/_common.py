"""Helpers shared by the benchmarks: measuring a child process and refusing to send outside
the lab."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_child(cmd: list[str], out_path: Path, err_path: Path) -> tuple[float, float, float]:
    """Run `cmd` with stdout/stderr to files; returns (wall s, user+sys CPU s, peak RSS MB) of
    that child alone (os.wait4), not of this process or its other children.

    Peak RSS is the child's VmHWM, polled from /proc while it runs: ru_maxrss would also
    count the copy of this (bigger) Python process that the child was between fork and exec.
    """
    peak_kb = 0
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=REPO)
        while True:
            peak_kb = max(peak_kb, vm_hwm_kb(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.005)
        wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, peak_kb / 1024


def vm_hwm_kb(pid: int) -> int:
    """High-water mark of a process's resident memory (kB); 0 once it has exited."""
    return _status_kb(pid, "VmHWM:")


def vm_rss_kb(pid: int) -> int:
    """A process's resident memory now (kB); 0 once it has exited."""
    return _status_kb(pid, "VmRSS:")


def memory_map(pid: int) -> dict[str, int]:
    """A process's resident memory by kind of mapping (kB, /proc/PID/smaps): "heap" (malloc's
    brk heap: blocks over 512 bytes, lists' and dicts' tables), "anon" (other anonymous
    mappings: Python's small-object arenas, big blocks, threads' malloc arenas), "libs" (shared
    libraries and other files), "stack" and "threads" (their number). Empty once it exited."""
    out = {"heap": 0, "anon": 0, "libs": 0, "stack": 0}
    kind = "anon"
    try:
        with open(f"/proc/{pid}/smaps", encoding="ascii", errors="replace") as f:
            for line in f:
                head = line.split(maxsplit=6)
                if "-" in head[0] and len(head) >= 5 and ":" in head[3]:  # a mapping's first line
                    name = head[5].strip() if len(head) > 5 else ""
                    kind = ("heap" if name == "[heap]" else "stack" if name == "[stack]"
                            else "anon" if not name or name.startswith("[anon") else "libs" if name.startswith("/") else "")
                elif head[0] == "Rss:" and kind:
                    out[kind] += int(head[1])
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            out["threads"] = next(int(line.split()[1]) for line in f if line.startswith("Threads:"))
    except (OSError, StopIteration):
        return {}
    return out


def _status_kb(pid: int, field: str) -> int:
    """One kB field of /proc/PID/status; 0 once the process has exited."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def check_routed_into_lab(addresses: list[str]) -> None:
    """Refuse to send anywhere but into the lab (e.g. if its namespaces were removed)."""
    for address in addresses:
        route = subprocess.run(["ip", "route", "get", address], capture_output=True, text=True).stdout
        if not re.search(r"\bdev fml-", route):
            raise SystemExit(f"{address} is not routed into the lab ({route.strip()!r}); not sending")
