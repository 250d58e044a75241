"""The contract thresholds fleetmon measures against, written once: the rules' defaults
(rules.config), the terminal view and the status page (monitor.app), and the Grafana
dashboards (deploy/grafana/generate.py) take them from here.

- ONLINE_RATE_TARGET_PCT: the online rate (在线率) the fleet must keep, in percent. Qionglai
  雪亮工程 tender (../shared/CONTRACTS.md section A): "前端设备整体正常运行率不得低于95%"; the
  quarterly score's 40-point item 前端摄像机在线率 loses nothing at ≥ 95 %.
- LINE_RTT_LIMIT_MS: the latency a dedicated line (专线) must stay under, in milliseconds (ICMP
  round-trip time). Liyang forest-fire towers tender (CONTRACTS.md section B): "速率不低于10MB/S …
  ping 20000的数据包延迟不高于200ms".
- RECORDING_RETENTION_DAYS: how long an NVR must keep every channel's recordings, in days
  (issue 14: "NVR recording (30 days for 1,850 channels)", the tenders' 录像保存30天).
- RENEWAL_NOTICE_DAYS: how long before a licence, domain, contract or certificate runs out
  the buyer is reminded, in days (CONTRACTS.md section D: "到期前1个月…提醒本单位续费").

Operators set other values per rule in config.yaml (`rules:`); these are the defaults and the
lines people are shown.
"""

from __future__ import annotations

ONLINE_RATE_TARGET_PCT = 95.0
"""Online rate (在线率) target, % (CONTRACTS.md A: 正常运行率不得低于95%)."""

LINE_RTT_LIMIT_MS = 200.0
"""Latency limit of a dedicated line, ms of ICMP RTT (CONTRACTS.md B: 延迟不高于200ms)."""

RECORDING_RETENTION_DAYS = 30.0
"""Days of recordings an NVR keeps per channel (录像保存30天)."""

RENEWAL_NOTICE_DAYS = 30
"""Days ahead of an expiry that the reminder fires (CONTRACTS.md D: 到期前1个月…提醒)."""
