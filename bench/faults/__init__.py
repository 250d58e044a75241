"""Fault-injection figures: `python -m bench faults [SCENARIO…]` (root: some scenarios build
network namespaces, mount a small tmpfs or step the clock with libfaketime).

Convention: a scenario is a module `bench/faults/<name>.py` with
`run() -> list[Figure]`; it injects one kind of fault into the real daemon or component
(real InfluxDB, the WeCom simulator, tmpfs, libfaketime, namespaces), counts what was lost,
duplicated or delayed, and returns one Figure per measured number. This runner prints them as
one table. Figures are measurements: the runner never asserts them; the tests in
tests/test_fault_*.py hold the same cases to their limits.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """One measured number of a scenario.

    scenario: what was injected ("InfluxDB down 10 min, restart + kill -9 inside");
    measure: what was counted ("points lost"); value: the count or time, with its unit;
    target: what the issue asks ("0", "≤ 1 s"); met: whether value meets target.
    """

    scenario: str
    measure: str
    value: str
    target: str
    met: bool


def available() -> list[str]:
    """Names of the scenario modules, sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", help=f"default: all of {', '.join(available()) or '(none)'}")
    args = parser.parse_args(argv)
    names = args.scenarios or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; available: {', '.join(available())}", file=sys.stderr)
        return 2
    figures: list[Figure] = []
    for name in names:
        print(f"-- {name} …", file=sys.stderr, flush=True)
        figures.extend(importlib.import_module(f"{__name__}.{name}").run())
    print_table(figures)
    return 0 if all(f.met for f in figures) else 1


def print_table(figures: list[Figure]) -> None:
    """Print the figures as one aligned text table (scenario | measure | value | target | met)."""
    header = ("scenario", "measure", "value", "target", "met")
    rows = [header] + [(f.scenario, f.measure, f.value, f.target, "yes" if f.met else "NO") for f in figures]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for n, row in enumerate(rows):
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("-+-".join("-" * w for w in widths))
