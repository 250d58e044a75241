"""monitor.app.malloc: the daemon's glibc malloc settings and the trim after each cycle.

What malloc does is process-wide, so each case runs in a fresh interpreter; mallinfo2(3)
(glibc ≥ 2.33) tells which blocks came from mmap."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from monitor.app import malloc
from monitor.app.config import load_config
from monitor.app import daemon as daemon_module
from monitor.app.daemon import Daemon
from monitor.fleet.inventory import load_inventory

pytestmark = pytest.mark.skipif(malloc._LIBC is None or not hasattr(malloc._LIBC, "mallinfo2"),
                                reason="glibc ≥ 2.33 only")

# A 4 MiB block from mmap freed, then a 1 MiB block: does it come from mmap (hblks) or the heap?
_THRESHOLD = """
import ctypes, json, sys
from monitor.app import malloc
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
malloc._LIBC.mallinfo2.restype = Info
tuned = malloc.tune() if sys.argv[1] == "tuned" else None
big = bytearray(4 << 20)
del big
before = malloc._LIBC.mallinfo2().hblks
block = bytearray(1 << 20)
print(json.dumps({"tuned": tuned, "mmapped": malloc._LIBC.mallinfo2().hblks - before}))
"""

# 40 MB of blocks over 512 bytes (malloc's, not Python's arenas), a few kept after them so that
# the heap's top cannot shrink, the rest freed: RSS before and after trim().
_TRIM = """
import json, sys
from monitor.app import malloc
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
blocks = [bytes(1000 + i % 400) for i in range(35_000)]
kept = [bytes(700) for _ in range(50)]
full = rss_mb()
del blocks
freed = rss_mb()
trimmed = malloc.trim() if sys.argv[1] == "trim" else None
print(json.dumps({"full": full, "freed": freed, "after": rss_mb(), "trimmed": trimmed}))
"""


def _run(script: str, arg: str) -> dict:
    out = subprocess.run([sys.executable, "-c", script, arg], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def test_tuned_big_blocks_stay_in_mmap_after_a_bigger_one_was_freed():
    """glibc's dynamic threshold would serve the 1 MiB block from the heap once a 4 MiB mmapped
    block was freed; tuned, it stays at 128 KiB, so the block is mmapped (and given back when freed)."""
    assert _run(_THRESHOLD, "default") == {"tuned": None, "mmapped": 0}
    assert _run(_THRESHOLD, "tuned") == {"tuned": True, "mmapped": 1}


def test_trim_gives_free_heap_pages_back():
    kept = _run(_TRIM, "none")
    assert kept["freed"] > kept["full"] - 5  # without trim the freed heap stays resident
    trimmed = _run(_TRIM, "trim")
    assert trimmed["trimmed"] is True
    assert trimmed["after"] < trimmed["freed"] - 25


async def test_the_daemon_trims_after_each_cycles_snapshot(tmp_path, monkeypatch):
    """Daemon: after each cycle the caller's on_snapshot, then (TRIM_DELAY_S later) malloc.trim()."""
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(
        "inventory:\n  allow_loopback: true\n  devices:\n    - {id: A, kind: camera, address: 127.0.0.1, site: s, region: r}\n"
        "probes:\n  icmp: {interval_s: 1.0, count: 1, timeout_s: 0.3}\n  rtsp: {enabled: false}\n"
        "state:\n  database: state.db\ninfluxdb:\n  enabled: false\napi:\n  port: 0\n"
    )
    calls: list[str] = []
    real_trim, stop = malloc.trim, asyncio.Event()

    def trim() -> bool:
        calls.append("trim")
        if calls.count("trim") >= 2:
            stop.set()
        return real_trim()

    monkeypatch.setattr(malloc, "trim", trim)
    monkeypatch.setattr(daemon_module, "TRIM_DELAY_S", 0.1)  # well within the 1 s interval
    cfg = load_config(cfg_path)

    def seen(snapshot) -> None:  # noqa: ANN001
        calls.append(f"snapshot {snapshot.cycle.probe}")

    await asyncio.wait_for(Daemon(cfg, load_inventory(cfg), on_snapshot=seen).run(stop), 30)
    assert calls[:4] == ["snapshot icmp", "trim", "snapshot icmp", "trim"]
