"""Delivery semantics (issue 13): five fault events through the real outbox and WeCom route to
the WeCom simulator in each failure mode (errcode 45009, HTTP 500, a hang, an answer late but
within the route's timeout, an answer after it, WeCom answering late for a while, fleetmon
killed with SIGKILL while WeCom holds the answer to a posted message); what the group received,
counted by event id. Harness: lab/faults_delivery.py (time compressed: 1 s rate window, 0.5 s
timeout and resend delay)."""

from __future__ import annotations

import asyncio

from bench.faults import Figure
from lab.faults_delivery import ALLOWED_REPEATS, MODES, run_mode

_SCENARIO = {
    "45009": "WeCom answers 45009 (rate limit) twice",
    "500": "WeCom answers HTTP 500 three times",
    "hang": "WeCom hangs on one request (nothing posted)",
    "late": "WeCom answers late, within timeout_s",
    "late_beyond": "WeCom posts one message, answers after timeout_s",
    "late_forever": "WeCom posts everything, answers after timeout_s, for 2.2 s",
    "kill9": "kill -9 while a posted message awaits its answer",
}


def run() -> list[Figure]:
    figures = []
    for mode in (*MODES, "late_forever"):
        result = asyncio.run(run_mode(mode, events=5 if mode != "late_forever" else 1))
        scenario = _SCENARIO[mode]
        allowed = ALLOWED_REPEATS.get(mode, 0) if mode != "late_forever" else 2
        why = {"late_beyond": " (answer after timeout_s)", "kill9": " (the message in flight)",
               "late_forever": " (one per resend, resend_after_s doubling)"}.get(mode, "")
        received = sum(result.received.values())
        figures += [
            Figure(scenario, "sent / received (by event id)", f"{result.sent} / {received}", "", True),
            Figure(scenario, "lost", str(result.lost), "0", result.lost == 0),
            Figure(scenario, "duplicates", str(result.duplicates), f"≤ {allowed}{why}", result.duplicates <= allowed),
        ]
    return figures
