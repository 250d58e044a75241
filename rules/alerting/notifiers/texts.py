"""The texts of fault events for people (WeCom, DingTalk, Feishu, e-mail): Chinese or English,
one event or a digest of several, within a byte budget (the robots' limits are UTF-8 bytes),
times in the route's zone. `Renderer` makes them; `MENTIONED_KINDS` are the events that wake
the people on duty.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from rules.model import EventKind, FaultEvent, Severity

_AFFECTED_SHOWN = (10, 5, 0)  # affected points listed by name, tried in turn until the message fits
_MENTION_IDS = 10  # fault ids named in one @mention message


# -- sizes ------------------------------------------------------------------------------------------


def utf8_len(text: str) -> int:
    """Length in UTF-8 bytes, the unit of WeCom's limits (a Chinese character is 3)."""
    return len(text.encode("utf-8"))


def fit_bytes(text: str, budget: int, marker: str) -> str:
    """`text` if it has at most `budget` UTF-8 bytes, else its longest prefix that fits together with
    `marker` (appended), cut on a character boundary."""
    data = text.encode("utf-8")
    if len(data) <= budget:
        return text
    room = max(0, budget - utf8_len(marker))
    # "ignore" drops only the bytes of a character cut in half at the end.
    return data[:room].decode("utf-8", "ignore") + marker


# -- texts ------------------------------------------------------------------------------------------

_WORDS = {
    "zh": {
        "device": "设备",
        "region": "区域",
        "site": "站点",
        "value": "当前值",
        "affected": "影响",
        "first_seen": "首次发现",
        "resolved_at": "恢复时间",
        "duration": "持续时长",
        "ongoing": "已持续",
        "unacked": "{d}，尚未认领",
        "escalated": "{d}，尚未认领，已升级通知",
        "acked_by": "认领人",
        "acked_at": "认领时间",
        "fault_id": "故障编号",
        "notice_id": "通知编号",
        "colon": "：",
        "threshold": "{v}（阈值 {t}）",
        "points": "{n}个点位",
        "points_listed": "{n}个点位（{ids}）",
        "points_more": "{n}个点位（{ids} 等{n}个）",
        "list_sep": "、",
        "digest": "{n} 条告警：",
        "context": "（{parts}）",
        "context_sep": "，",
        "mention_one": "请值班人员处理：{line}",
        "mention_many": "请值班人员处理 {n} 条告警：{ids}",
        "mention_more": " 等{n}条",
        "truncated": "…（内容过长，已截断）",
        "firing": "【{sev}】",
        "reminder": "【提醒·{sev}】",
        "escalated_tag": "【升级·{sev}】",
        "resolved": "【已恢复】",
        "acknowledged": "【已认领】",
        "sla_warning": "【时限预警·{sev}】",
        "sla_breached": "【已超时·{sev}】",
        "d": "{n}天",
        "h": "{n}小时",
        "m": "{n}分",
        "s": "{n}秒",
        "unit_sep": "",
    },
    "en": {
        "device": "Device",
        "region": "Region",
        "site": "Site",
        "value": "Value",
        "affected": "Affected",
        "first_seen": "First seen",
        "resolved_at": "Resolved at",
        "duration": "Duration",
        "ongoing": "Ongoing for",
        "unacked": "{d}, not acknowledged",
        "escalated": "{d}, not acknowledged, escalated",
        "acked_by": "Acknowledged by",
        "acked_at": "Acknowledged at",
        "fault_id": "Fault",
        "notice_id": "Notice",
        "colon": ": ",
        "threshold": "{v} (threshold {t})",
        "points": "{n} points",
        "points_listed": "{n} points ({ids})",
        "points_more": "{n} points ({ids} and {rest} more)",
        "list_sep": ", ",
        "digest": "{n} alerts:",
        "context": " ({parts})",
        "context_sep": ", ",
        "mention_one": "On duty, please handle: {line}",
        "mention_many": "On duty, please handle {n} alerts: {ids}",
        "mention_more": " and {n} more",
        "truncated": "… (too long, truncated)",
        "firing": "[{sev}] ",
        "reminder": "[REMINDER · {sev}] ",
        "escalated_tag": "[ESCALATED · {sev}] ",
        "resolved": "[RESOLVED] ",
        "acknowledged": "[ACKNOWLEDGED] ",
        "sla_warning": "[SLA WARNING · {sev}] ",
        "sla_breached": "[SLA BREACHED · {sev}] ",
        "d": "{n} d",
        "h": "{n} h",
        "m": "{n} min",
        "s": "{n} s",
        "unit_sep": " ",
    },
}

_TAG_KEYS = {
    EventKind.FIRING: "firing",
    EventKind.REMINDER: "reminder",
    EventKind.ESCALATED: "escalated_tag",
    EventKind.RESOLVED: "resolved",
    EventKind.ACKNOWLEDGED: "acknowledged",
    EventKind.SLA_WARNING: "sla_warning",
    EventKind.SLA_BREACHED: "sla_breached",
}
MENTIONED_KINDS = frozenset(
    {EventKind.FIRING, EventKind.REMINDER, EventKind.ESCALATED, EventKind.SLA_WARNING, EventKind.SLA_BREACHED}
)
# Work-order events bring their own fact lines, already in the order book's language.
_OWN_FACTS = frozenset({EventKind.SLA_WARNING, EventKind.SLA_BREACHED})


def _number(value: float, unit: str) -> str:
    """250.0, "ms" → "250 ms"; 93.456, "%" → "93.46%" (at most two decimals)."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    if not unit:
        return text
    return f"{text}{unit}" if unit == "%" else f"{text} {unit}"


def _duration(seconds: float, words: dict[str, str]) -> str:
    """3725 s → "1小时2分" / "1 h 2 min": the two largest non-zero units (seconds below a minute)."""
    seconds = max(0, int(seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, seconds = divmod(seconds, size)
        if n or unit == "s" and not parts:
            parts.append(words[unit].format(n=n))
    return words["unit_sep"].join(parts[:2])


class Renderer:
    """Turns fault events into message contents of one msgtype and language; times in `tz`.

    Every method returning content keeps it within the `budget` it is given (UTF-8 bytes)."""

    def __init__(self, msgtype: Literal["markdown", "text"], language: Literal["zh", "en"], tz: str) -> None:
        self.markdown = msgtype == "markdown"
        self.language = language
        self.words = _WORDS[language]
        self.tz = ZoneInfo(tz)

    def single(self, event: FaultEvent, budget: int) -> str:
        """One event as a full message: headline, then one line per fact, and last the event id
        ("通知编号：#17", kept when the rest is truncated): the key to spot a repeat."""
        id_line = self._id_line(event)
        room = budget - utf8_len(id_line)
        for shown in _AFFECTED_SHOWN:
            content = self._single(event, shown)
            if utf8_len(content) <= room:
                return content + id_line
        return fit_bytes(content, room, self.words["truncated"]) + id_line

    def digest(self, events: Sequence[FaultEvent], budget: int) -> Iterator[tuple[tuple[FaultEvent, ...], str]]:
        """`events` packed in order into digest messages, each within `budget`: yields (the events
        of one message, its content). A message holding a single event gets the full rendering."""
        w = self.words
        header_room = utf8_len(self._header(len(events))) + 1  # the widest count, and its newline
        group: list[tuple[FaultEvent, str]] = []
        used = header_room
        for event in events:
            tail = self._id_tail(event)
            line = fit_bytes(self._digest_line(event), budget - header_room - utf8_len(tail), w["truncated"]) + tail
            if group and used + utf8_len(line) + 1 > budget:
                yield self._group(group, budget)
                group, used = [], header_room
            group.append((event, line))
            used += utf8_len(line) + 1
        if group:
            yield self._group(group, budget)

    def mention(self, events: Sequence[FaultEvent], budget: int) -> str:
        """The text of the @mention message that goes before a markdown message with these events."""
        w = self.words
        if len(events) == 1:
            event = events[0]
            text = w["mention_one"].format(line=self._plain_tag(event) + event.fault.title + self._context(event))
        else:
            ids = w["list_sep"].join(e.fault.id for e in events[:_MENTION_IDS])
            if len(events) > _MENTION_IDS:
                ids += w["mention_more"].format(n=len(events))
            text = w["mention_many"].format(n=len(events), ids=ids)
        return fit_bytes(text, budget, w["truncated"])

    # -- pieces ----------------------------------------------------------------------------------

    def _single(self, event: FaultEvent, shown: int) -> str:
        f, w = event.fault, self.words
        headline = f"{self._tag(event)}**{f.title}**" if self.markdown else self._plain_tag(event) + f.title
        quote = "> " if self.markdown else ""
        lines = [headline] + [f"{quote}{label}{w['colon']}{value}" for label, value in self._facts(event, shown)]
        return "\n".join(lines)

    def _id_line(self, event: FaultEvent) -> str:
        quote = "> " if self.markdown else ""
        return f"\n{quote}{self.words['notice_id']}{self.words['colon']}#{event.id}"

    @staticmethod
    def _id_tail(event: FaultEvent) -> str:
        return f" #{event.id}"

    def _facts(self, event: FaultEvent, shown: int) -> list[tuple[str, str]]:
        """(label, value) lines of one event, by kind."""
        if event.kind in _OWN_FACTS:
            return [(str(label), str(value)) for label, value in event.fault.details.get("facts", ())]
        return [(self.words[label], value) for label, value in self._fault_facts(event, shown)]

    def _fault_facts(self, event: FaultEvent, shown: int) -> list[tuple[str, str]]:
        """(label key, value) lines of a fault's event, by kind."""
        f, w, kind = event.fault, self.words, event.kind
        facts = [(label, v) for label, v in (("device", f.device_id), ("region", f.region), ("site", f.site)) if v]
        if kind is EventKind.ACKNOWLEDGED:
            facts += [("acked_by", f.acked_by or "-"), ("acked_at", self._time(f.acked_ns or event.ts_ns))]
            return facts + [("fault_id", f.id)]
        if f.value is not None and kind is not EventKind.RESOLVED:
            value = _number(f.value, f.unit)
            if f.threshold is not None:
                value = w["threshold"].format(v=value, t=_number(f.threshold, f.unit))
            facts.append(("value", value))
        if f.affected:
            facts.append(("affected", self._affected(f.affected, shown)))
        facts.append(("first_seen", self._time(f.first_seen_ns)))
        ongoing = _duration((event.ts_ns - f.first_seen_ns) / 1e9, w)
        if kind is EventKind.RESOLVED:
            resolved_ns = f.resolved_ns or event.ts_ns
            facts.append(("resolved_at", self._time(resolved_ns)))
            facts.append(("duration", _duration((resolved_ns - f.first_seen_ns) / 1e9, w)))
        elif kind is EventKind.REMINDER:
            facts.append(("ongoing", w["unacked"].format(d=ongoing)))
        elif kind is EventKind.ESCALATED:
            facts.append(("ongoing", w["escalated"].format(d=ongoing)))
        return facts + [("fault_id", f.id)]

    def _affected(self, affected: Sequence[str], shown: int) -> str:
        w, n = self.words, len(affected)
        if shown == 0:
            return w["points"].format(n=n)
        ids = w["list_sep"].join(affected[:shown])
        if n <= shown:
            return w["points_listed"].format(n=n, ids=ids)
        return w["points_more"].format(n=n, ids=ids, rest=n - shown)

    def _digest_line(self, event: FaultEvent) -> str:
        return self._tag(event) + event.fault.title + self._context(event)

    def _context(self, event: FaultEvent) -> str:
        """"（城东区/东关派出所，11-20 09:15，F12）": where, when (the event's time) and which."""
        f, w = event.fault, self.words
        where = "/".join(x for x in (f.region, f.site) if x) or f.device_id
        when = datetime.fromtimestamp(event.ts_ns / 1e9, UTC).astimezone(self.tz).strftime("%m-%d %H:%M")
        parts = [p for p in (where, when, f.id) if p]
        return w["context"].format(parts=w["context_sep"].join(parts))

    def _header(self, n: int) -> str:
        header = self.words["digest"].format(n=n)
        return f"**{header}**" if self.markdown else header

    def _group(self, group: list[tuple[FaultEvent, str]], budget: int) -> tuple[tuple[FaultEvent, ...], str]:
        events = tuple(e for e, _ in group)
        if len(events) == 1:
            return events, self.single(events[0], budget)
        return events, "\n".join([self._header(len(events))] + [line for _, line in group])

    def _plain_tag(self, event: FaultEvent) -> str:
        """"【紧急】", "【已恢复】", "[CRITICAL] " …"""
        sev = event.fault.severity
        return self.words[_TAG_KEYS[event.kind]].format(sev=sev.zh if self.language == "zh" else sev.name)

    def _tag(self, event: FaultEvent) -> str:
        """The tag, coloured in markdown: orange for critical/major and SLA notices, green for resolved,
        grey otherwise."""
        tag = self._plain_tag(event)
        if not self.markdown:
            return tag
        if event.kind is EventKind.RESOLVED:
            color = "info"
        elif event.kind in _OWN_FACTS:
            color = "warning"  # a deadline near or missed stands out whatever the severity
        elif event.kind is not EventKind.ACKNOWLEDGED and event.fault.severity is not Severity.MINOR:
            color = "warning"
        else:
            color = "comment"
        return f'<font color="{color}">{tag}</font>'

    def _time(self, ts_ns: int) -> str:
        return datetime.fromtimestamp(ts_ns / 1e9, UTC).astimezone(self.tz).strftime("%Y-%m-%d %H:%M:%S")
