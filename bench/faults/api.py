"""The HTTP API under slow, idle and hostile clients (lab/faults_api.py): the real daemon with
RLIMIT_NOFILE 128 and its lab RTSP camera checked every second; 100 slowloris connections and
20 idle ones at once, each reconnecting when closed for 20 s, then 3,000 writes with wrong tokens. Counts the camera's failed RTSP
results and failed /healthz answers during the attack, how long a slowloris connection the
server let in lived (header timeout 2 s), and the log lines the 3,000 refusals made."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.faults import Figure
from lab.faults_api import parse_json_lines, refusal_lines, run_scenario

SLOW, IDLE, REFUSED = 100, 20, 3000
HEADER_TIMEOUT_S = IDLE_TIMEOUT_S = 2.0
HOLD_S = 20.0


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="fm-bench-api-") as folder:
        s = run_scenario(Path(folder), slow=SLOW, idle=IDLE, refused=REFUSED, header_timeout_s=HEADER_TIMEOUT_S,
                         idle_timeout_s=IDLE_TIMEOUT_S, hold_s=HOLD_S)
    attack = f"{SLOW} slowloris + {IDLE} idle connections for {HOLD_S:g} s, RLIMIT_NOFILE 128"
    watched = s.attack.watched
    rtsp = [key for key in watched.results if key[0] == "rtsp"]
    failed = watched.failed_results
    held = [c.lifetime_s for c in s.attack.slow if not c.refused]
    lifetimes = [t for t in held if t is not None]
    still_open = len(held) - len(lifetimes)
    longest = max(lifetimes, default=0.0)
    refused_fast = sum(c.refused for c in s.attack.slow)
    lines = refusal_lines(parse_json_lines(s.log_lines))
    return [
        Figure(attack, "probe results failed (camera RTSP check, 1 s)", f"{len(failed)} of {len(rtsp)}", "0",
               not failed and bool(rtsp)),
        Figure(attack, "/healthz failed", f"{len(watched.health_failed)} of "
               f"{len(watched.health_failed) + watched.health_ok}", "0", not watched.health_failed),
        Figure(attack, "slowloris socket lifetime (s), longest let in",
               f"{longest:.2f} ({len(lifetimes)} let in, {still_open} still open)",
               f"≤ {HEADER_TIMEOUT_S:g} s header timeout", still_open == 0 and longest <= HEADER_TIMEOUT_S + 0.5),
        Figure(attack, "slowloris connections refused at once (cap, per address)",
               f"{refused_fast} of {len(s.attack.slow)}", "beyond the address's share", bool(refused_fast)),
        Figure(f"{REFUSED:,} writes with wrong tokens", "log lines", f"{len(lines)} ({s.flood})", "≤ 2",
               len(lines) <= 2 and s.flood == {401: REFUSED}),
    ]
