"""Hostile input (issue 13, bad input): `fleetmon check-config` on every config of
lab/faults_input.py, each in its own child process, and the cost of the worst ones.

Figures: hostile configs ending in a traceback (or a hang, or the wrong message); the YAML
bomb's time and peak RSS; the peak RSS of a config whose secret file is /dev/zero; the time a
FIFO secret takes to be refused. Before this round (same machine): tracebacks for the four zone
cases, 5000-deep nesting (RecursionError) and /dev/zero (MemoryError at a 4 GB ulimit after
9 s); the bomb took 79 s and 1.3 GB and printed 1,005,007 lines; a FIFO secret hung (killed at
15 s); windows in 2300 and 9999, inline secrets and impossible addresses passed silently.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.faults import Figure
from lab.faults_input import CASES, check_config

_BOMB = "YAML bomb (aliases: 1000 × 1000 keys)"
_ZERO = "secret file /dev/zero"
_FIFO = "secret file is a FIFO"


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="fleetmon-input-") as directory:
        empty = Path(directory) / "config.yaml"
        empty.write_text("{}\n")
        baseline = check_config(empty, timeout_s=60)  # interpreter start and imports: the floor of every time below
    failed: list[str] = []
    outcomes = {}
    for case in CASES:
        with tempfile.TemporaryDirectory(prefix="fleetmon-input-") as directory:
            path = case.write(Path(directory))
            try:
                outcome = check_config(path, timeout_s=60)
            except Exception:  # a hang past the timeout, or a child that died
                failed.append(case.name)
                continue
            outcomes[case.name] = outcome
            expect = case.expect.format(path=path, dir=directory)
            if outcome.traceback or outcome.returncode != 2 or expect not in outcome.stderr:
                failed.append(case.name)
    bomb, zero, fifo = outcomes.get(_BOMB), outcomes.get(_ZERO), outcomes.get(_FIFO)
    # Times include the interpreter's start: held to the baseline's plus 2 s, not to a fixed
    # figure that a loaded machine would miss.
    limit_s = baseline.seconds + 2
    figures = [
        Figure("baseline: check-config of `{}` (start and imports)", "time (s) / peak RSS (MB)",
               f"{baseline.seconds:.2f} / {baseline.peak_rss_mb:.0f}", "-", baseline.returncode == 0),
        Figure(f"{len(CASES)} hostile configs (zones, dates, YAML, secrets, URLs, addresses, XLSX)",
               "tracebacks, hangs or unlocated errors", f"{len(failed)} of {len(CASES)}"
               + (f" ({', '.join(failed)})" if failed else ""), "0", not failed),
    ]
    if bomb is not None:
        lines = bomb.stderr.count("\n")
        figures += [
            Figure("YAML bomb: 13 KB, 1000 aliases of 1000 keys", "time to error (s)", f"{bomb.seconds:.2f}",
                   f"≤ {limit_s:.1f} (baseline + 2)", bomb.seconds <= limit_s),
            Figure("YAML bomb: 13 KB, 1000 aliases of 1000 keys", "peak RSS (MB)", f"{bomb.peak_rss_mb:.0f}", "≤ 200",
                   bomb.peak_rss_mb <= 200),
            Figure("YAML bomb: 13 KB, 1000 aliases of 1000 keys", "error lines printed", str(lines), "≤ 101", lines <= 101),
        ]
    if zero is not None:
        figures.append(Figure("password_file: /dev/zero", "peak RSS (MB)", f"{zero.peak_rss_mb:.0f}", "≤ 200",
                              zero.peak_rss_mb <= 200))
    if fifo is not None:
        figures.append(Figure("password_file: a FIFO without writer", "time to error (s)", f"{fifo.seconds:.2f}",
                              f"≤ {limit_s:.1f} (baseline + 2)", fifo.seconds <= limit_s))
    return figures
