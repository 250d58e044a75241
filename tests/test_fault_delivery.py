"""Issue 13, delivery: fault events through the real outbox and WeCom route to the WeCom
simulator while it answers 45009, HTTP 500, hangs, answers late, or fleetmon is killed with
SIGKILL mid-send (lab/faults_delivery.py). What the group received is counted by event id (each
message names its events, "#17"): nothing may be lost, and nothing repeated beyond the
at-least-once cases rules/alerting/notifiers/wecom.py documents (a request WeCom posted but
answered after timeout_s; a crash between WeCom posting and the outbox recording)."""

from __future__ import annotations

import pytest

from lab.faults_delivery import MODES, run_mode
from rules.alerting.notifiers.wecom import WeComConfig


@pytest.mark.parametrize("mode", MODES)
async def test_nothing_lost_and_no_repeat_beyond_the_stated_cases(mode: str) -> None:
    result = await run_mode(mode, events=5)
    assert result.lost == 0, result
    assert result.duplicates <= result.allowed, result
    assert sorted(result.received) == [1, 2, 3, 4, 5]


async def test_late_answers_that_go_on_repeat_at_most_once_per_resend_delay() -> None:
    """The issue's 6×: WeCom posts every message but answers after the route gave up, for a
    while. Each such attempt may be one repeat (the stated case), but attempts come no faster
    than resend_after_s, doubling: in 2.5 s with resend_after_s 0.5 s, at most 3 attempts of the
    first event (0, ~1.0, ~2.0 s), where the outbox's quick backoff made ~6."""
    result = await run_mode("late_forever", events=1)
    assert result.lost == 0
    assert 1 <= result.duplicates <= 2, result


def test_the_answer_window_outlasts_late_answers_by_default() -> None:
    """WeCom's late answers (seen beyond 10 s, the old timeout) must fall inside the window."""
    fields = WeComConfig.model_fields
    assert fields["timeout_s"].default >= 30
    assert fields["resend_after_s"].default >= 60
