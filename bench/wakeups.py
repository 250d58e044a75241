"""What a wake-up of the event loop costs, and what the daemon's shared grid saves.

`python -m bench wakeups [--rounds 4000]`: process CPU (user + system, `time.process_time`)
per round of an asyncio loop that does nothing but wait, in four ways:

1. `asyncio.sleep(0)`: a pass of the event loop that never sleeps (the floor);
2. `asyncio.sleep(0.005)`: one timed wake-up per round (the process goes idle and is woken);
3. two timers per round, each on its own phase (two `asyncio.sleep(0.005)` loops, the second
   started half a period later), as the ICMP engine's reply, pacer and expiry callbacks and
   the scheduler's tick fell due each on its own;
4. two timers per round on the grid (monitor.core.ticks.sleep_to_tick): both fall due at the
   same instant, so one wake-up serves both.

Rows 2–4 say why the ICMP engine runs one task on the grid (probes/icmp.py `IcmpEngine._run`)
instead of a callback per reply batch and a timer each for pacing and expiry: on a virtual
machine the wake-up, not the callback, is the cost. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from monitor.core.ticks import GRID_NS, sleep_to_tick


async def _loop_sleep(rounds: int, delay: float) -> None:
    for _ in range(rounds):
        await asyncio.sleep(delay)


async def _offset(delay: float, rounds: int) -> None:
    await asyncio.sleep(delay)
    await _loop_sleep(rounds, 0.005)


async def _loop_grid(rounds: int) -> None:
    for _ in range(rounds):
        await sleep_to_tick(GRID_NS)


async def _measure(rounds: int) -> list[tuple[str, float, float, int]]:
    rows = []
    cases = [
        ("asyncio.sleep(0): a pass, no wake-up", 1, lambda: _loop_sleep(rounds, 0)),
        ("asyncio.sleep(0.005): one timed wake-up", 1, lambda: _loop_sleep(rounds, 0.005)),
        ("two loops, asyncio.sleep(0.005), 2.5 ms apart", 2, lambda: asyncio.gather(_loop_sleep(rounds, 0.005), _offset(0.0025, rounds))),
        ("two loops on the 5 ms grid (sleep_to_tick)", 2, lambda: asyncio.gather(_loop_grid(rounds), _loop_grid(rounds))),
    ]
    for label, timers, make in cases:
        await asyncio.sleep(0.05)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await make()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        rows.append((label, cpu / rounds * 1e6, wall / rounds * 1e3, timers))
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench wakeups", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4000, help="rounds per row")
    args = parser.parse_args(argv)
    rows = asyncio.run(_measure(args.rounds))
    print(f"Event-loop wake-ups: {args.rounds} rounds per row, process CPU per round")
    print(f"{'loop':46s}  {'timers/round':>12s}  {'CPU µs/round':>12s}  {'wall ms/round':>13s}")
    print(f"{'-' * 46}  {'-' * 12}  {'-' * 12}  {'-' * 13}")
    for label, cpu_us, wall_ms, timers in rows:
        print(f"{label:46s}  {timers:12d}  {cpu_us:12.1f}  {wall_ms:13.2f}")
    return 0
