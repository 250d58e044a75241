"""Run the benchmarks: `python -m bench [NAME…]` (default: every module of this package), or
one with its own arguments: `python -m bench NAME ARG…` (e.g. `python -m bench faults api`).

Convention: a benchmark is a module `bench/<name>.py` with `main(argv: list[str]) -> int`
that runs it with its default settings and prints its table(s). Benchmarks measure and
print; they never assert timings.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench


def available() -> list[str]:
    """Names of the benchmark modules, sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))


def main(argv: list[str]) -> int:
    if argv and argv[0] in available() and any(a not in available() for a in argv[1:]):
        print(f"== bench.{argv[0]} ==", flush=True)
        return importlib.import_module(f"bench.{argv[0]}").main(argv[1:])
    names = argv or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available())}", file=sys.stderr)
        return 2
    status = 0
    for name in names:
        print(f"== bench.{name} ==", flush=True)
        status = max(status, importlib.import_module(f"bench.{name}").main([]))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
