"""State DB write errors: the disk under the state database is full for a (compressed) minute
while switches die and come back (lab/faults_statedb.py: real daemon child, real ICMP lab
fleet, WeCom simulator, a 4 MB tmpfs filled with a file, then SIGTERM while writes fail).
Root only."""

from __future__ import annotations

from bench.faults import Figure
from lab.faults_statedb import run_in_tempdir


def run() -> list[Figure]:
    out = run_in_tempdir(hold_s=20.0)  # three steps: the disk is full for a minute
    scenario = f"state DB disk full {out.outage_s:.0f} s, 3 switch faults fire and clear"
    seen_503 = 503 in out.health_during
    stop = "SIGTERM while writes fail"
    return [
        Figure(scenario, f"transitions lost (of {out.expected_transitions})", str(out.transitions_lost), "0",
               out.transitions_lost == 0),
        Figure(scenario, f"firing notices lost (of {out.firing_expected})", str(out.firing_lost), "0",
               out.firing_lost == 0),
        Figure(scenario, "resolved without firing", str(out.resolved_without_firing), "0",
               out.resolved_without_firing == 0),
        Figure(scenario, "/healthz 503 seen while full", "yes" if seen_503 else "no", "yes", seen_503),
        Figure(scenario, "/healthz after space returns", str(out.health_after), "200", out.health_after == 200),
        Figure(scenario, "time to recover (space freed → /healthz 200)",
               "-" if out.recover_s is None else f"{out.recover_s:.1f} s", "≤ 5 s (backoff cap)",
               out.recover_s is not None and out.recover_s <= 5.5),
        Figure(stop, "exit code", str(out.exit_code), "0", out.exit_code == 0),
        Figure(stop, "tracebacks in the log", str(out.log.count("Traceback")), "0", "Traceback" not in out.log),
    ]
