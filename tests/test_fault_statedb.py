"""Fault injection: the disk under the state database fills up for a (compressed) minute while
faults fire and clear (lab/faults_statedb.py: real daemon child, real ICMP lab fleet, the WeCom
simulator, a small tmpfs filled with a file). Nothing lost, nothing false: every transition and
every firing notice is there after the space returns, no resolution arrives without its firing,
/healthz says 503 with the cause meanwhile and 200 after, the failure and its recovery reach the
group once each, and SIGTERM while writes fail exits 0 without a traceback."""

from __future__ import annotations

import pytest

from lab.faults_statedb import run_scenario

pytestmark = pytest.mark.root


async def test_disk_full_loses_nothing_and_says_so(tmp_path, _lab_stale_cleaned):
    out = await run_scenario(tmp_path, hold_s=4.0)
    assert out.transitions_lost == 0, out.log[-4000:]
    assert out.firing_lost == 0 and out.resolved_without_firing == 0, out.notices
    assert 503 in out.health_during and any("SQLITE_FULL" in c for c in out.causes), (out.health_during, out.causes)
    assert out.health_after == 200 and out.recover_s is not None
    # The failure and its recovery reach the group once each (straight through the route).
    failing = [n for n in out.notices if "状态库写入失败" in n]
    assert len(failing) == 2 and "已恢复" not in failing[0] and "已恢复" in failing[1], out.notices
    assert "database or disk is full" in failing[0]
    # The log says what failed, once per outage, never "a bug"; no traceback anywhere.
    assert "状态库写入失败: database or disk is full" in out.log
    assert "(a bug)" not in out.log and "Traceback" not in out.log, out.log[-4000:]
    assert out.exit_code == 0, out.log[-4000:]
