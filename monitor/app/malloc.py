"""glibc malloc settings for the long-running daemon (`fleetmon run`): fewer resident bytes for the
same objects. Every function is a no-op where glibc's malloc is absent (musl, other systems).

Why (measured, docs/PERFORMANCE.md "## Memory"): blocks over 512 bytes — the tables of the
per-cycle dicts of every device, the sink's batches and their gzip bodies, HTTP buffers — come
from malloc, not from Python's own arenas. glibc serves blocks of 128 KiB and more from mmap and
gives them back when freed, but its *dynamic* threshold rises to the size of each mmapped block
freed (up to 32 MiB): after the first cycle those big per-cycle blocks come from the heap
instead, between long-lived small blocks, and a heap with holes is not given back (only its top
is, and only above the trim threshold, which rises with it). Fixing both thresholds at their
defaults keeps big blocks in mmap for good; `trim()` after a cycle's work gives back the free
whole pages inside the heap as well.

Sources: mallopt(3) (M_ARENA_MAX, M_MMAP_THRESHOLD: "setting this parameter disables the
dynamic adjustment"; M_TRIM_THRESHOLD), malloc_trim(3), glibc malloc/malloc.h (parameter numbers).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("fleetmon")

M_TRIM_THRESHOLD = -1  # glibc malloc.h
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

ARENAS = 2
"""malloc arenas: two instead of 8 per core. The daemon's threads (SQLite, DNS, to_thread) would
otherwise each grow an arena of their own, ~15 MB of RSS for nothing at 10,000 devices."""
MMAP_THRESHOLD = 128 * 1024
"""Blocks of this size and over (bytes) always from mmap, given back when freed: glibc's default
start, kept fixed."""
TRIM_THRESHOLD = 128 * 1024
"""Free bytes at the heap's top given back at once (glibc's default start, kept fixed)."""


def _libc() -> ctypes.CDLL | None:
    """The C library if it is glibc (it has mallopt and malloc_trim), else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes, libc.malloc_trim.argtypes = [ctypes.c_int, ctypes.c_int], [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


def tune() -> bool:
    """Set the daemon's malloc parameters (ARENAS, MMAP_THRESHOLD, TRIM_THRESHOLD); must run
    before any thread starts (the arena limit). Same as MALLOC_ARENA_MAX=2
    MALLOC_MMAP_THRESHOLD_=131072 MALLOC_TRIM_THRESHOLD_=131072 in the environment. Returns
    whether glibc took all three (False off glibc)."""
    if _LIBC is None:
        return False
    ok = all(_LIBC.mallopt(param, value) == 1 for param, value in (
        (M_ARENA_MAX, ARENAS), (M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD)))
    if not ok:
        log.debug("glibc refused a malloc parameter; its defaults stay")
    return ok


def trim() -> bool:
    """Give the free whole pages of malloc's heaps back to the system (malloc_trim(0)); returns
    whether any were (False off glibc). Costs a walk of the free blocks and a madvise per free
    run of pages: ~20 ms for 190 MB freed in 1 KB blocks, well under 1 ms when little was freed."""
    return _LIBC is not None and _LIBC.malloc_trim(0) == 1
