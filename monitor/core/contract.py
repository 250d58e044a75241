"""The contract thresholds fleetmon measures against, written once: the rules' defaults
(rules.config), the terminal view and the status page (monitor.app), and the Grafana
dashboards (deploy/grafana/generate.py) take them from here.

- ONLINE_RATE_TARGET_PCT: the online rate (在线率) the fleet must keep, in percent. Qionglai
  雪亮工程 tender (../shared/CONTRACTS.md section A): "前端设备整体正常运行率不得低于95%"; the
  quarterly score's 40-point item 前端摄像机在线率 loses nothing at ≥ 95 %.
- LINE_RTT_LIMIT_MS: the latency a dedicated line (专线) must stay under, in milliseconds (ICMP
  round-trip time). Liyang forest-fire towers tender (CONTRACTS.md section B): "速率不低于10MB/S …
  ping 20000的数据包延迟不高于200ms".

Operators set other values per rule in config.yaml (`rules:`); these are the defaults and the
lines people are shown.
"""

from __future__ import annotations

ONLINE_RATE_TARGET_PCT = 95.0
"""Online rate (在线率) target, % (CONTRACTS.md A: 正常运行率不得低于95%)."""

LINE_RTT_LIMIT_MS = 200.0
"""Latency limit of a dedicated line, ms of ICMP RTT (CONTRACTS.md B: 延迟不高于200ms)."""
