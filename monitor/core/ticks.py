"""One grid of wake-up times for the daemon's busy loops (the ICMP engine, the scheduler).

A timed wake-up of an idle process is the dearest thing the daemon does per unit of work: on
a virtual machine the timer interrupt, the scheduler and `epoll_wait` returning cost 50–160 µs
of CPU, against a few µs for a callback's own work (`python -m bench wakeups`:
`asyncio.sleep(0.005)` in a loop, against 2.4 µs a round for `asyncio.sleep(0)`). At 10,000
devices the engine's reply callbacks, echo and expiry timers and sends and the scheduler's
ticks fell due each on its own phase: ~3,700 wake-ups a cycle (docs/PERFORMANCE.md, fourth
round). Timers put on this grid (multiples of GRID_NS on the monotonic clock, which is the
event loop's) fall due at the same float instant, so asyncio runs them in one pass of its
loop: one wake-up for all of them.
"""

from __future__ import annotations

import asyncio
import time

GRID_NS = 5_000_000
"""The grid's step, ns (5 ms); periods given to `next_tick_ns` are multiples of it."""


def next_tick_ns(period_ns: int, now_ns: int | None = None) -> int:
    """The first multiple of `period_ns` (a multiple of GRID_NS) after `now_ns` (default: now),
    on the monotonic clock, ns. Raises ValueError for a period off the grid."""
    if period_ns <= 0 or period_ns % GRID_NS:
        raise ValueError(f"tick period {period_ns} ns is not a positive multiple of {GRID_NS} ns")
    now_ns = time.monotonic_ns() if now_ns is None else now_ns
    return (now_ns // period_ns + 1) * period_ns


def at_loop_time(tick_ns: int) -> float:
    """A grid instant as the event loop's `call_at` time (its clock is time.monotonic): the same
    float for the same instant, whoever asks."""
    return tick_ns / 1e9


async def sleep_to_tick(period_ns: int) -> None:
    """Sleep until the next multiple of `period_ns` (see next_tick_ns)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()
    handle = loop.call_at(at_loop_time(next_tick_ns(period_ns)), resolve, future)
    try:
        await future
    finally:
        handle.cancel()


def resolve(future: asyncio.Future[None]) -> None:
    """Set `future`'s result to None unless it is done (a timer's callback that may come late)."""
    if not future.done():
        future.set_result(None)
