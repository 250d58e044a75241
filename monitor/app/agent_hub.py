"""The central daemon's side of the probe agents: subscribes to their topics (monitor.app.agent_wire),
feeds their results into the pipeline like its own, and watches that each is alive.

    broker ─► results batch ─► Validator (bad message: a located log line, dropped, counted)
                            ─► repeat? (same spool, position not past the last taken: dropped, counted)
                            ─► Pipeline.on_result, result by result, in order
           ─► status: "offline" (the agent's will) or "stopping" ─► silent now (retained copies
              from before the subscription are ignored: silence detection decides)
           ─► hello: digests of its points and probe settings ─► drift against the central's view

Silence: nothing from an agent (results, heartbeat, hello) for `silent_after_s`, or its will,
makes it silent: each of its devices becomes unknown ("monitor blind", Pipeline.blind), never
down, and one fault "探测代理<name>失联" (critical) is raised for the agent, not one per device.
The next message from it ends the silence (the fault resolves at the next evaluation); its
devices take their state from their next results, replayed ones included, but their
transitions are dated no earlier than that moment (Pipeline.resume, StateTracker.resume): the
blind period stays on record as unknown time, while InfluxDB gets every replayed result at
its own time.

Drift: an agent whose hello announces other points (digest of its selected devices), other
probe settings (digest of its probes' sections) or other probes than the central's entry for it
gets a warning line and one fault "探测代理<name>配置与中心不一致" (minor, 一般), until a hello
agrees. Its results are still taken: each is checked against the central's view anyway (a
device it does not own, a probe it does not run for it, are dropped one by one).

The central subscribes with a persistent session (monitor.app.agent_link) at QoS 1, so results
published while it was away wait on the broker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Self

from monitor.app import agent_link
from monitor.app.agent_config import MqttAgentsConfig
from monitor.app.agent_wire import (
    HELLO, KINDS, RESULTS, STATUS, MessageError, Validator, parse_hello, parse_status,
)
from probes import ProbeResult
from monitor.state.tracker import agent_silent_reason
from rules.base import Condition
from rules.model import Severity

log = logging.getLogger("fleetmon.agents")

RULE = "probe_agent"
TITLES = {
    "zh": {"silent": "探测代理{name}失联（{devices}个设备监测盲区）",
           "drift": "探测代理{name}配置与中心不一致：{what}"},
    "en": {"silent": "probe agent {name} silent ({devices} devices not watched)",
           "drift": "probe agent {name} config differs from the central one: {what}"},
}
WHAT = {
    "zh": {"points": "点位表", "probes": "探测设置", "probe_names": "探测类型"},
    "en": {"points": "point list", "probes": "probe settings", "probe_names": "probes run"},
}


@dataclass(frozen=True)
class Expected:
    """The central's view of one agent: its devices per probe, and the digests its hello must carry."""

    devices: Mapping[str, tuple[str, ...]]  # probe → device ids
    points: str
    probes: str
    probe_names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AgentView:
    """One agent as the central's self-monitoring shows it (GET /metrics, /healthz); counts
    since the daemon started.

    - online: not silent (its devices are watched); heard: a message came from it since the
      daemon started; last_heard_s: seconds since its latest message (None: none yet);
    - state: what its latest status message said ("online", "offline" = its will, "stopping";
      None: none yet);
    - results taken, duplicates (repeats of batches already taken) dropped, rejected by reason:
      "bad_result" (one result of a batch: a device it does not own, a field not declared …),
      "bad_message" (a whole message: not JSON, wrong version …); silences so far;
    - drift: what differs from the central's view ("points", "probes", "probe_names");
    - spooled / spool_dropped: its spool backlog as its latest heartbeat said (results waiting
      for the broker's acknowledgement; results its full spool dropped since it started); None
      until a heartbeat carried them."""

    name: str
    devices: int
    online: bool
    heard: bool
    last_heard_s: float | None
    state: str | None
    results: int
    duplicates: int
    rejected: Mapping[str, int]
    silences: int
    drift: tuple[str, ...]
    spooled: int | None
    spool_dropped: int | None


REJECT_REASONS = ("bad_result", "bad_message")


@dataclass
class AgentState:
    """What the hub knows of one agent; counters since the daemon started."""

    name: str
    last_seen: float  # monotonic s
    heard: bool = False
    status: str | None = None  # its latest status message's state
    spooled: int | None = None  # its spool backlog, as its latest heartbeat said
    spool_dropped: int | None = None
    silent: bool = False
    silent_since_ns: int | None = None
    drift: tuple[str, ...] = ()
    spool: str | None = None
    last_position: int = -1
    counts: Counter[str] = field(default_factory=Counter)
    blind_periods: list[tuple[int, int | None]] = field(default_factory=list)  # (start, end) UTC ns


class AgentHub:
    """Use as `async with AgentHub(cfg, expected, on_result, blind, language=…)`.

    - expected: agent name → Expected (monitor.app.daemon computes it from the central config);
    - on_result: Pipeline.on_result; blind(probe, device ids, reason): Pipeline.blind;
      resume(probe, device ids): Pipeline.resume;
    - `conditions()`: the faults it raises, for Alerting.sources;
    - `views()`: each agent as of now, for /metrics and /healthz (monitor.app.selfmetrics, api).
    """

    def __init__(
        self,
        cfg: MqttAgentsConfig,
        expected: Mapping[str, Expected],
        on_result: Callable[[ProbeResult], None],
        blind: Callable[[str, list[str], str], None],
        resume: Callable[[str, list[str]], None] = lambda probe, ids: None,
        *,
        language: str = "zh",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self._expected = dict(expected)
        self._on_result = on_result
        self._blind = blind
        self._resume = resume
        self._t = TITLES[language]
        self._what = WHAT[language]
        self._sep = "、" if language == "zh" else ", "
        self._clock = clock
        now = clock()
        self.agents = {name: AgentState(name, now) for name in expected}
        self._validators = {
            name: Validator(name, _owned(e.devices)) for name, e in self._expected.items()
        }
        self.unknown_agents: Counter[str] = Counter()
        self.connected = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._devices = {name: len({d for ids in e.devices.values() for d in ids}) for name, e in self._expected.items()}

    def views(self) -> list[AgentView]:
        """Every configured agent, in config order, as of now."""
        now = self._clock()
        return [
            AgentView(
                s.name, self._devices[s.name], not s.silent, s.heard, now - s.last_seen if s.heard else None, s.status,
                s.counts["results"], s.counts["duplicates"],
                {"bad_result": s.counts["dropped"], "bad_message": s.counts["bad_messages"]}, s.counts["silences"],
                s.drift, s.spooled, s.spool_dropped,
            )
            for s in self.agents.values()
        ]

    async def __aenter__(self) -> Self:
        self._tasks = [
            asyncio.create_task(self._listen(), name="agents-listen"),
            asyncio.create_task(self._watch(), name="agents-watch"),
        ]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for state in self.agents.values():
            c = state.counts
            log.info("probe agent %s: %d results taken, %d repeats dropped, %d bad results and %d bad messages "
                     "dropped, %d silences", state.name, c["results"], c["duplicates"], c["dropped"],
                     c["bad_messages"], c["silences"])

    # -- faults -----------------------------------------------------------------------------------

    def conditions(self) -> list[Condition]:
        """One critical condition per silent agent, one minor per drifting one."""
        out = []
        for state in self.agents.values():
            devices = len({d for ids in self._expected[state.name].devices.values() for d in ids})
            if state.silent:
                out.append(Condition(
                    RULE, RULE, f"agent:{state.name}", Severity.CRITICAL,
                    self._t["silent"].format(name=state.name, devices=devices), self.cfg.fault_after_s, 0.0,
                    since_ns=state.silent_since_ns, details={"agent": state.name, "devices": devices},
                ))
            if state.drift:
                what = self._sep.join(self._what[w] for w in state.drift)
                out.append(Condition(
                    RULE, RULE, f"drift:{state.name}", Severity.MINOR,
                    self._t["drift"].format(name=state.name, what=what), 0.0, 0.0,
                    details={"agent": state.name, "differs": list(state.drift)},
                ))
        return out

    # -- the connection ---------------------------------------------------------------------------

    async def _listen(self) -> None:
        import aiomqtt

        assert self.cfg.broker is not None
        backoff = agent_link.Backoff()
        filters = [f"{self.cfg.topic_prefix}/+/{kind}" for kind in KINDS]
        while True:
            client = None
            try:
                client = agent_link.client(self.cfg.broker, "fleetmon-central", log=log)
                await client.__aenter__()
                for f in filters:
                    await client.subscribe(f, qos=1, timeout=self.cfg.broker.timeout_s)
                self.connected.set()
                backoff.reset()
                log.info("probe agents: subscribed at %s:%d (%s)", self.cfg.broker.host, self.cfg.broker.port,
                         ", ".join(filters))
                async for message in client.messages:
                    self.on_message(str(message.topic), bytes(message.payload), retained=bool(message.retain))
            except (aiomqtt.MqttError, OSError) as exc:  # OSError: TLS refused, say
                log.warning("probe agents: broker %s:%d: %s; reconnecting", self.cfg.broker.host,
                            self.cfg.broker.port, exc)
            finally:
                self.connected.clear()
                if client is not None:
                    await agent_link.close(client)
            await asyncio.sleep(backoff.next_s())

    async def _watch(self) -> None:
        step = min(1.0, self.cfg.silent_after_s / 4)
        while True:
            await asyncio.sleep(step)
            self.check_silence()

    def check_silence(self) -> None:
        """Agents not heard of for silent_after_s become silent."""
        now = self._clock()
        for state in self.agents.values():
            if not state.silent and now - state.last_seen > self.cfg.silent_after_s:
                self._go_silent(state, f"nothing received for {now - state.last_seen:.0f} s")

    # -- messages ---------------------------------------------------------------------------------

    def on_message(self, topic: str, payload: bytes, *, retained: bool = False) -> None:
        """One message from the broker; never raises for what an agent sent."""
        prefix = self.cfg.topic_prefix + "/"
        rest = topic[len(prefix):] if topic.startswith(prefix) else ""
        name, _, kind = rest.partition("/")
        state = self.agents.get(name)
        if state is None:
            self.unknown_agents[name] += 1
            if self.unknown_agents[name] == 1:
                log.warning("probe agents: message on %s from agent %r, which mqtt_agents.agents does not list: "
                            "dropped (and its further messages)", topic, name)
            return
        try:
            if kind == RESULTS:
                self._results(state, topic, payload)
            elif kind == STATUS:
                self._status(state, payload, retained)
            elif kind == HELLO:
                self._hello(state, payload, retained)
        except MessageError as exc:
            state.counts["bad_messages"] += 1
            log.warning("probe agent %s: %s: %s: message dropped", name, topic, exc.problem)
        except Exception:  # a bug: said loudly, the message dropped, the next one taken
            state.counts["bad_messages"] += 1
            log.exception("probe agent %s: %s: message not processed (a bug)", name, topic)

    def _alive(self, state: AgentState) -> None:
        state.last_seen = self._clock()
        state.heard = True
        if state.silent:
            state.silent = False
            now = time.time_ns()
            if state.blind_periods and state.blind_periods[-1][1] is None:
                state.blind_periods[-1] = (state.blind_periods[-1][0], now)
            log.info("probe agent %s is back after %.0f s: its devices are watched again", state.name,
                     (now - (state.silent_since_ns or now)) / 1e9)
            state.silent_since_ns = None
            for probe, ids in self._expected[state.name].devices.items():
                self._resume(probe, list(ids))

    def _go_silent(self, state: AgentState, why: str) -> None:
        state.silent = True
        state.counts["silences"] += 1
        state.silent_since_ns = now = time.time_ns()
        state.blind_periods.append((now, None))
        expected = self._expected[state.name]
        devices = sum(len(ids) for ids in expected.devices.values())
        log.error("probe agent %s silent (%s): its %d devices are unknown (monitor blind) until it is back",
                  state.name, why, devices)
        reason = agent_silent_reason(state.name)
        for probe, ids in expected.devices.items():
            self._blind(probe, list(ids), reason)

    def _results(self, state: AgentState, topic: str, payload: bytes) -> None:
        batch = self._validators[state.name].batch(payload)
        self._alive(state)
        if batch.spool == state.spool and batch.last <= state.last_position:
            state.counts["duplicates"] += len(batch.results)
            return
        state.spool, state.last_position = batch.spool, batch.last
        for problem in batch.problems:
            log.warning("probe agent %s: %s (positions %d…%d): %s: result dropped", state.name, topic,
                        batch.first, batch.last, problem)
        state.counts["dropped"] += len(batch.problems)
        state.counts["batches"] += 1
        for result in batch.results:
            self._on_result(result)
        state.counts["results"] += len(batch.results)

    def _status(self, state: AgentState, payload: bytes, retained: bool) -> None:
        status = parse_status(payload)
        if retained:
            # The broker's copy from before this subscription: an old heartbeat is no sign of
            # life now, and an old will no news (silence detection decides either way).
            return
        state.status = status.state
        if status.spooled is not None:
            state.spooled = status.spooled
        if status.dropped is not None:
            state.spool_dropped = status.dropped
        if status.state == "online":
            self._alive(state)
        elif not state.silent:
            self._go_silent(state, "its connection died (will)" if status.state == "offline" else "it stopped")

    def _hello(self, state: AgentState, payload: bytes, retained: bool) -> None:
        hello = parse_hello(payload)
        if not retained:
            self._alive(state)
        if 2 * hello.heartbeat_s > self.cfg.silent_after_s and not state.counts["slow_heartbeat"]:
            state.counts["slow_heartbeat"] += 1
            log.warning("probe agent %s beats every %g s, but mqtt_agents.silent_after_s is %g s: one late heartbeat "
                        "would blind its devices; make silent_after_s at least 3 × its heartbeat_s", state.name,
                        hello.heartbeat_s, self.cfg.silent_after_s)
        expected = self._expected[state.name]
        differs = []
        if hello.points != expected.points:
            differs.append("points")
        if hello.probes != expected.probes:
            differs.append("probes")
        if sorted(hello.probe_names) != sorted(expected.probe_names):
            differs.append("probe_names")
        if tuple(differs) != state.drift:
            if differs:
                log.warning("probe agent %s: its config differs from the central one (%s): points %s vs %s, probes "
                            "%s vs %s; copy the central inventory and probes sections to its agent.yaml", state.name,
                            ", ".join(differs), hello.points, expected.points, hello.probes, expected.probes)
            else:
                log.info("probe agent %s: its config agrees with the central one again", state.name)
        state.drift = tuple(differs)


def _owned(devices: Mapping[str, Iterable[str]]) -> dict[str, frozenset[str]]:
    """probe → ids as device id → probes."""
    out: dict[str, set[str]] = {}
    for probe, ids in devices.items():
        for d in ids:
            out.setdefault(d, set()).add(probe)
    return {d: frozenset(p) for d, p in out.items()}
