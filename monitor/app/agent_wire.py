"""What probe agents and the central daemon say to each other over MQTT: topics, payloads, and
the central's validation of every message (nothing an agent sends is trusted).

Topics, under `topic_prefix` (default fleetmon/v1), one level per agent:

    {prefix}/{agent}/results   QoS 1, not retained: a batch of probe results, in probing order
    {prefix}/{agent}/status    QoS 1, retained: {"v":1,"state":"online","ts_ns":…,"spooled":…,
                               "dropped":…} every heartbeat; the will (published by the broker
                               when the agent's connection dies): {"v":1,"state":"offline"};
                               {"state":"stopping"} on a clean stop
    {prefix}/{agent}/hello     QoS 1, retained: at each connection, what the agent runs
                               (version, points and probes digests, devices, probes, heartbeat_s)

A results batch (JSON, UTF-8):

    {"v": 1, "agent": "forest-a", "spool": "<spool id>", "first": <pos>, "last": <pos>,
     "results": [ProbeResult.to_dict(), …]}

`first`/`last` are the spool positions (monitor.metrics.spool byte offsets) of the batch's first
and last result: they only grow within one spool (`spool` names it), so the central drops a batch
it has already taken (QoS 1 delivers at least once) by `last`. A result is ProbeResult.to_dict():
device_id, probe, ts_ns (UTC ns), ok, reason, fields, series.

Validation (`Validator`): a payload that is not JSON, too large, of another version or shape is
dropped whole; inside a good batch each result is checked on its own (a device the agent does
not own, a probe it does not run, a time out of range, a field the probe does not declare or of
the wrong type) and a bad one is dropped alone. Every problem is a `Problem` with its location
("results[3].fields.rtt_avg_ms: …"), for one log line each.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from probes import REGISTRY, ProbeResult
from probes.base import Series

VERSION = 1
MAX_PAYLOAD = 16 << 20
"""Largest payload the central reads (bytes): a batch of 10,000 results is ~3 MB."""
MAX_REASON = 1000
MAX_SERIES = 10_000
EARLIEST_NS = 946_684_800 * 10**9  # 2000-01-01: older is a broken clock
FUTURE_S = 600.0
"""A result stamped later than this ahead of the central's clock is refused (clock drift)."""

RESULTS, STATUS, HELLO = "results", "status", "hello"
KINDS = (RESULTS, STATUS, HELLO)


def topic(prefix: str, agent: str, kind: str) -> str:
    return f"{prefix}/{agent}/{kind}"


def batch_payload(agent: str, spool_id: str, first: int, last: int, results: Iterable[bytes]) -> bytes:
    """A results batch from results already serialised as JSON objects (the spool's lines)."""
    head = json.dumps({"v": VERSION, "agent": agent, "spool": spool_id, "first": first, "last": last},
                      separators=(",", ":"))
    return b"%s,\"results\":[%s]}" % (head[:-1].encode(), b",".join(results))


def result_line(result: ProbeResult) -> bytes:
    """One result as the compact JSON object the spool keeps and a batch carries (no newline:
    json escapes them inside strings)."""
    return json.dumps(result.to_dict(), separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def status_payload(state: str, **extra: int) -> bytes:
    return json.dumps({"v": VERSION, "state": state, **extra}, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class Problem:
    """Why (part of) a message was dropped: `where` its location in the payload ("" = the
    whole message), `what` the reason."""

    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}" if self.where else self.what


@dataclass(frozen=True, slots=True)
class Batch:
    agent: str
    spool: str
    first: int
    last: int
    results: tuple[ProbeResult, ...]
    problems: tuple[Problem, ...]  # results dropped from it


@dataclass(frozen=True, slots=True)
class Hello:
    version: str
    points: str
    probes: str
    devices: int
    probe_names: tuple[str, ...]
    heartbeat_s: float


class MessageError(ValueError):
    """A message dropped whole; `problem` says where and why."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _load(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD:
        raise MessageError(Problem("", f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}"))
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MessageError(Problem("", f"not JSON ({exc})")) from None
    if not isinstance(doc, dict):
        raise MessageError(Problem("", "not a JSON object"))
    if doc.get("v") != VERSION:
        raise MessageError(Problem("v", f"version {doc.get('v')!r} not understood (this fleetmon speaks {VERSION})"))
    return doc


def _need(doc: Mapping[str, Any], key: str, types: type | tuple[type, ...], where: str = "") -> Any:
    value = doc.get(key)
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _tuple(types)):
        shown = f"{where}.{key}" if where else key
        raise MessageError(Problem(shown, f"missing or of the wrong type ({type(value).__name__})"))
    return value


def _tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


@dataclass(frozen=True, slots=True)
class Status:
    """A status message: `state` "online", "offline" (the will) or "stopping"; an online
    heartbeat also carries the agent's spool backlog: `spooled` results not yet acknowledged
    by the broker, `dropped` results its full spool dropped since the agent started (None when
    the message does not say)."""

    state: str
    spooled: int | None = None
    dropped: int | None = None


def parse_status(payload: bytes) -> Status:
    """A status message. Raises MessageError for a bad state or a backlog figure that is not a
    count."""
    doc = _load(payload)
    state = _need(doc, "state", str)
    if state not in ("online", "offline", "stopping"):
        raise MessageError(Problem("state", f"unknown state {state!r}"))
    counts = {}
    for key in ("spooled", "dropped"):
        value = doc.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise MessageError(Problem(key, f"{value!r} is not a count"))
        counts[key] = value
    return Status(state, **counts)


def parse_hello(payload: bytes) -> Hello:
    doc = _load(payload)
    names = _need(doc, "probe_names", list)
    if not all(isinstance(n, str) for n in names):
        raise MessageError(Problem("probe_names", "must be a list of strings"))
    return Hello(
        str(_need(doc, "version", str)), _need(doc, "points", str), _need(doc, "probes", str),
        _need(doc, "devices", int), tuple(names), float(_need(doc, "heartbeat_s", (int, float))),
    )


class Validator:
    """Checks the results of one agent: `owned` maps each device id the agent owns to the probe
    names it may report for it (the central's view)."""

    def __init__(self, agent: str, owned: Mapping[str, frozenset[str]]) -> None:
        self.agent = agent
        self._owned = owned
        # Per probe: declared fields (name → type) of each of its measurements.
        self._fields = {
            name: {m.name: {f: spec.type for f, spec in m.fields.items()} for m in cls.measurements}
            for name, cls in REGISTRY.items()
        }

    def batch(self, payload: bytes, now_ns: int | None = None) -> Batch:
        """The batch's good results and the problems of the bad ones. Raises MessageError for a
        batch that is bad as a whole."""
        doc = _load(payload)
        agent = _need(doc, "agent", str)
        if agent != self.agent:
            raise MessageError(Problem("agent", f"says {agent!r}, but came on agent {self.agent}'s topic"))
        spool, first, last = _need(doc, "spool", str), _need(doc, "first", int), _need(doc, "last", int)
        items = _need(doc, "results", list)
        now_ns = time.time_ns() if now_ns is None else now_ns
        good: list[ProbeResult] = []
        problems: list[Problem] = []
        for i, item in enumerate(items):
            try:
                good.append(self._result(item, f"results[{i}]", now_ns))
            except MessageError as exc:
                problems.append(exc.problem)
        return Batch(agent, spool, first, last, tuple(good), tuple(problems))

    def _result(self, item: Any, where: str, now_ns: int) -> ProbeResult:
        if not isinstance(item, dict):
            raise MessageError(Problem(where, "not a JSON object"))
        device_id = _need(item, "device_id", str, where)
        probe = _need(item, "probe", str, where)
        probes = self._owned.get(device_id)
        if probes is None:
            raise MessageError(Problem(f"{where}.device_id", f"device {device_id!r} is not one of agent {self.agent}'s"))
        if probe not in probes:
            raise MessageError(Problem(f"{where}.probe", f"probe {probe!r} does not poll {device_id} for agent {self.agent}"))
        ts_ns = _need(item, "ts_ns", int, where)
        if not EARLIEST_NS <= ts_ns <= now_ns + FUTURE_S * 1e9:
            raise MessageError(Problem(f"{where}.ts_ns", f"{ts_ns} is out of range (before 2000 or over "
                                                         f"{FUTURE_S:.0f} s ahead of this clock)"))
        ok = _need(item, "ok", bool, where)
        reason = item.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
            raise MessageError(Problem(f"{where}.reason", f"must be a string of at most {MAX_REASON} characters or null"))
        declared = self._fields[probe]
        fields = self._check_fields(item.get("fields") or {}, declared[probe], f"{where}.fields")
        series_in = item.get("series") or []
        if not isinstance(series_in, list) or len(series_in) > MAX_SERIES:
            raise MessageError(Problem(f"{where}.series", f"must be a list of at most {MAX_SERIES}"))
        series = []
        for j, s in enumerate(series_in):
            at = f"{where}.series[{j}]"
            if not isinstance(s, dict):
                raise MessageError(Problem(at, "not a JSON object"))
            measurement = _need(s, "measurement", str, at)
            if measurement == probe or measurement not in declared:
                raise MessageError(Problem(f"{at}.measurement", f"{measurement!r} is not a series of probe {probe}"))
            tags = s.get("tags") or {}
            if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
                raise MessageError(Problem(f"{at}.tags", "must map strings to strings"))
            series.append(Series(measurement, tags, self._check_fields(s.get("fields") or {}, declared[measurement],
                                                                       f"{at}.fields")))
        return ProbeResult(device_id, probe, ts_ns, ok, reason, fields, tuple(series))

    @staticmethod
    def _check_fields(fields: Any, declared: Mapping[str, str], where: str) -> dict[str, Any]:
        if not isinstance(fields, dict):
            raise MessageError(Problem(where, "not a JSON object"))
        for name, value in fields.items():
            kind = declared.get(name)
            if kind is None:
                raise MessageError(Problem(f"{where}.{name}", "not a field this measurement declares"))
            if not _typed(value, kind):
                raise MessageError(Problem(f"{where}.{name}", f"{value!r} is not a {kind}"))
        return fields


def _typed(value: Any, kind: str) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "integer":
        return isinstance(value, int)
    if kind == "float":
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, str) and len(value) <= 64 * 1024
