"""fleetmon's own health for Prometheus: `GET /metrics` of the API (monitor.app.api).

Text exposition format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/),
written by the prometheus_client library. Nothing is counted twice: a custom Collector reads
the daemon's components at scrape time (`SelfMetrics.exposition`), the process collector adds
`process_*` (RSS, open fds, CPU, start time; from /proc). The outbox backlog is read from the
state database first (one query, on its thread), then the whole page is written at once.

Metrics (labels in braces):

    fleetmon_build_info{version}                             1
    fleetmon_probe_cycles_total{probe}                       cycles finished since the start
    fleetmon_probe_cycles_skipped_total{probe}               ticks skipped: the previous cycle still ran
    fleetmon_probe_last_cycle_duration_seconds{probe}        how long the last finished cycle took
    fleetmon_probe_last_cycle_age_seconds{probe}             since the last finished cycle ended (the lag;
                                                             /healthz turns 503 beyond 3 intervals)
    fleetmon_probe_interval_seconds{probe}                   the configured interval
    fleetmon_scheduler_targets{probe}                        devices the probe polls
    fleetmon_scheduler_in_flight{probe}                      probes running now
    fleetmon_scheduler_waiting{probe}                        probes started, waiting for a concurrency slot
    fleetmon_scheduler_confirming{probe}                     devices being re-probed after a miss now
    fleetmon_confirmations_total{probe,outcome}              misses confirmed since the start: failed (every
                                                             re-probe missed), answered, capped (passed on
                                                             unconfirmed: max_concurrent reached)
    fleetmon_sink_buffered_lines                             InfluxDB lines waiting (memory and spool)
    fleetmon_sink_written_lines_total, …_dropped_lines_total, …_write_errors_total
    fleetmon_sink_reachable                                  1 while InfluxDB accepts writes
    fleetmon_sink_spool_bytes                                size of the spool on disk (with a spool)
    fleetmon_outbox_backlog{route}                           notifications not yet delivered
    fleetmon_outbox_oldest_age_seconds{route}                age of the oldest of them (0 when none)
    fleetmon_outbox_route_disabled{route}                    1 when the route was disabled (bad key …)
    fleetmon_faults_open{severity,state}                     open faults (pending, firing)
    fleetmon_statedb_writes_failing                          1 while state database writes fail
    fleetmon_agents_broker_connected                         1 while the central is subscribed at the broker
    fleetmon_agent_online{agent}                             1 while the probe agent is heard (0: silent, its
                                                             devices unknown, "monitor blind")
    fleetmon_agent_devices{agent}                            devices the agent probes for the central
    fleetmon_agent_last_heard_seconds{agent}                 since its latest message (absent: none yet)
    fleetmon_agent_results_total{agent}                      results taken into the pipeline
    fleetmon_agent_results_rejected_total{agent,reason}      dropped: bad_result (one result), bad_message (a
                                                             whole message; its results are not counted)
    fleetmon_agent_duplicates_total{agent}                   results of batches taken before, dropped (QoS 1)
    fleetmon_agent_silences_total{agent}                     times it went silent
    fleetmon_agent_config_drift{agent,differs}               1 when its hello differs from the central config
                                                             (differs: points, probes, probe_names)
    fleetmon_agent_spool_lines{agent}                        results waiting in its spool, as its latest
                                                             heartbeat said (absent until one did)
    fleetmon_agent_spool_dropped_lines{agent}                results its full spool dropped since it started,
                                                             as its latest heartbeat said
    process_resident_memory_bytes, process_open_fds, …       prometheus_client's ProcessCollector

Sink metrics are absent when InfluxDB is disabled, outbox ones when no route is configured,
agent ones when mqtt_agents is off.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector
from pydantic import RootModel

from monitor.app.agent_hub import REJECT_REASONS, AgentHub, AgentView
from monitor.app.scheduler import Scheduler
from monitor.metrics.sink import InfluxSink, SinkStats
from monitor.state.writes import WriteHealth
from rules.alerting.faults import FaultBook
from rules.alerting.outbox import OutboxWorker
from rules.model import FaultState, Severity

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
MEDIA_TYPE = CONTENT_TYPE.split(";", 1)[0] + "; version=0.0.4"  # the charset is aiohttp's to add


class MetricsText(RootModel[str]):
    """A Prometheus text exposition (format 0.0.4)."""


@dataclass(frozen=True, slots=True)
class Health:
    """What one scrape reads; times in seconds. `outbox`: route → (backlog, oldest created UTC
    ns or None); None when the state database could not be read."""

    now_ns: int
    version: str
    schedulers: Sequence[Scheduler]
    sink: SinkStats | None
    spool_bytes: int | None
    outbox: Mapping[str, tuple[int, int | None]] | None
    disabled_routes: Mapping[str, str]
    faults_open: Mapping[tuple[Severity, FaultState], int]
    statedb_failing: bool
    agents: Sequence[AgentView] | None = None  # None: no probe agents configured
    agents_connected: bool = False


class FleetmonCollector(Collector):
    """The metrics of one Health (see the module docstring)."""

    def __init__(self, health: Health) -> None:
        self.health = health

    def collect(self) -> Iterator[Metric]:
        h = self.health
        info = GaugeMetricFamily("fleetmon_build_info", "fleetmon's version", labels=["version"])
        info.add_metric([h.version], 1)
        yield info
        yield from self._probes()
        if h.sink is not None:
            yield from self._sink(h.sink)
        if h.outbox is not None:
            yield from self._outbox(h.outbox)
        faults = GaugeMetricFamily("fleetmon_faults_open", "open faults by severity and state",
                                   labels=["severity", "state"])
        for severity in Severity:
            for state in (FaultState.PENDING, FaultState.FIRING):
                faults.add_metric([severity.value, state.value], h.faults_open.get((severity, state), 0))
        yield faults
        yield GaugeMetricFamily("fleetmon_statedb_writes_failing", "1 while state database writes fail",
                                value=int(h.statedb_failing))
        if h.agents is not None:
            yield from self._agents(h.agents)

    def _probes(self) -> Iterator[Metric]:
        h = self.health
        label = ["probe"]
        cycles = CounterMetricFamily("fleetmon_probe_cycles", "cycles finished since the start", labels=label)
        skipped = CounterMetricFamily("fleetmon_probe_cycles_skipped",
                                      "ticks skipped because the previous cycle still ran", labels=label)
        duration = GaugeMetricFamily("fleetmon_probe_last_cycle_duration_seconds",
                                     "duration of the last finished cycle", labels=label)
        age = GaugeMetricFamily("fleetmon_probe_last_cycle_age_seconds",
                                "seconds since the last finished cycle ended", labels=label)
        interval = GaugeMetricFamily("fleetmon_probe_interval_seconds", "configured cycle interval", labels=label)
        targets = GaugeMetricFamily("fleetmon_scheduler_targets", "devices the probe polls", labels=label)
        in_flight = GaugeMetricFamily("fleetmon_scheduler_in_flight", "probes running now", labels=label)
        waiting = GaugeMetricFamily("fleetmon_scheduler_waiting", "probes waiting for a concurrency slot",
                                    labels=label)
        confirming = GaugeMetricFamily("fleetmon_scheduler_confirming", "devices being re-probed after a miss",
                                       labels=label)
        confirmations = CounterMetricFamily("fleetmon_confirmations", "misses confirmed by re-probing, by outcome",
                                            labels=["probe", "outcome"])
        for s in h.schedulers:
            name = [s.probe.name]
            confirming.add_metric(name, s.confirming)
            for outcome in ("failed", "answered", "capped"):
                confirmations.add_metric([s.probe.name, outcome], s.confirmations[outcome])
            cycles.add_metric(name, s.cycles_run)
            skipped.add_metric(name, s.cycles_skipped)
            interval.add_metric(name, s.interval_s)
            targets.add_metric(name, len(s.devices))
            in_flight.add_metric(name, s.in_flight)
            waiting.add_metric(name, s.waiting)
            report = s.last_report
            if report is not None:  # no sample before the first cycle: absent, not 0
                duration.add_metric(name, report.duration_s)
                age.add_metric(name, max(0.0, (h.now_ns - report.ts_ns) / 1e9 - report.duration_s))
        yield from (cycles, skipped, duration, age, interval, targets, in_flight, waiting, confirming, confirmations)

    def _sink(self, stats: SinkStats) -> Iterator[Metric]:
        yield GaugeMetricFamily("fleetmon_sink_buffered_lines", "InfluxDB lines waiting to be written",
                                value=stats.buffered_lines)
        yield CounterMetricFamily("fleetmon_sink_written_lines", "lines InfluxDB accepted", value=stats.written_lines)
        yield CounterMetricFamily("fleetmon_sink_dropped_lines", "lines lost for good", value=stats.dropped_lines)
        yield CounterMetricFamily("fleetmon_sink_write_errors", "write requests that did not fully succeed",
                                  value=stats.write_errors)
        yield GaugeMetricFamily("fleetmon_sink_reachable", "1 while InfluxDB accepts writes", value=int(stats.reachable))
        if self.health.spool_bytes is not None:
            yield GaugeMetricFamily("fleetmon_sink_spool_bytes", "size of the metrics spool on disk",
                                    value=self.health.spool_bytes)

    def _agents(self, agents: Sequence[AgentView]) -> Iterator[Metric]:
        yield GaugeMetricFamily("fleetmon_agents_broker_connected", "1 while the central is subscribed at the broker",
                                value=int(self.health.agents_connected))
        label = ["agent"]
        online = GaugeMetricFamily("fleetmon_agent_online", "1 while the probe agent is heard, 0 while silent",
                                   labels=label)
        devices = GaugeMetricFamily("fleetmon_agent_devices", "devices the agent probes", labels=label)
        heard = GaugeMetricFamily("fleetmon_agent_last_heard_seconds", "seconds since the agent's latest message",
                                  labels=label)
        results = CounterMetricFamily("fleetmon_agent_results", "agent results taken into the pipeline", labels=label)
        rejected = CounterMetricFamily("fleetmon_agent_results_rejected", "agent results or messages dropped, by reason",
                                       labels=["agent", "reason"])
        duplicates = CounterMetricFamily("fleetmon_agent_duplicates", "repeated agent results dropped", labels=label)
        silences = CounterMetricFamily("fleetmon_agent_silences", "times the agent went silent", labels=label)
        drift = GaugeMetricFamily("fleetmon_agent_config_drift", "1 when the agent's config differs from the central's",
                                  labels=["agent", "differs"])
        spooled = GaugeMetricFamily("fleetmon_agent_spool_lines", "results waiting in the agent's spool (its heartbeat)",
                                    labels=label)
        spool_dropped = GaugeMetricFamily("fleetmon_agent_spool_dropped_lines",
                                          "results the agent's full spool dropped since it started (its heartbeat)",
                                          labels=label)
        for a in agents:
            name = [a.name]
            online.add_metric(name, int(a.online))
            devices.add_metric(name, a.devices)
            if a.last_heard_s is not None:
                heard.add_metric(name, a.last_heard_s)
            results.add_metric(name, a.results)
            for reason in REJECT_REASONS:
                rejected.add_metric([a.name, reason], a.rejected.get(reason, 0))
            duplicates.add_metric(name, a.duplicates)
            silences.add_metric(name, a.silences)
            for what in ("points", "probes", "probe_names"):
                drift.add_metric([a.name, what], int(what in a.drift))
            if a.spooled is not None:
                spooled.add_metric(name, a.spooled)
            if a.spool_dropped is not None:
                spool_dropped.add_metric(name, a.spool_dropped)
        yield from (online, devices, heard, results, rejected, duplicates, silences, drift, spooled, spool_dropped)

    def _outbox(self, backlog: Mapping[str, tuple[int, int | None]]) -> Iterator[Metric]:
        h = self.health
        pending = GaugeMetricFamily("fleetmon_outbox_backlog", "notifications not yet delivered", labels=["route"])
        oldest = GaugeMetricFamily("fleetmon_outbox_oldest_age_seconds", "age of the oldest undelivered notification",
                                   labels=["route"])
        disabled = GaugeMetricFamily("fleetmon_outbox_route_disabled", "1 when the route was disabled",
                                     labels=["route"])
        for route, (count, created_ns) in sorted(backlog.items()):
            pending.add_metric([route], count)
            oldest.add_metric([route], 0.0 if created_ns is None else max(0.0, (h.now_ns - created_ns) / 1e9))
            disabled.add_metric([route], int(route in h.disabled_routes))
        yield from (pending, oldest, disabled)


def exposition(health: Health) -> str:
    """The page for `health`, with the process metrics of this process."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetmonCollector(health))
    ProcessCollector(registry=registry)
    return generate_latest(registry).decode()


class SelfMetrics:
    """The daemon's components, read at each scrape (wired by monitor.app.daemon)."""

    def __init__(self, *, version: str, schedulers: Sequence[Scheduler], sink: InfluxSink | None,
                 outbox: OutboxWorker, routes: Sequence[str], faults: FaultBook, statedb: WriteHealth,
                 agents: AgentHub | None = None) -> None:
        self._version = version
        self._schedulers = tuple(schedulers)
        self._sink = sink
        self._outbox = outbox
        self._routes = tuple(routes)
        self._faults = faults
        self._statedb = statedb
        self._agents = agents

    async def health(self) -> Health:
        backlog: dict[str, tuple[int, int | None]] | None = None
        if self._routes:
            try:
                found = await self._outbox.backlog()
            except sqlite3.Error:  # the failing database shows as fleetmon_statedb_writes_failing
                found = None
            if found is not None:
                backlog = {route: (0, None) for route in self._routes} | found
        counts = Counter((f.severity, f.state) for f in self._faults.open_faults())
        sink = self._sink
        return Health(
            now_ns=time.time_ns(), version=self._version, schedulers=self._schedulers,
            sink=sink.stats if sink is not None else None, spool_bytes=sink.spool_bytes if sink is not None else None,
            outbox=backlog, disabled_routes=self._outbox.disabled() if self._routes else {},
            faults_open=dict(counts), statedb_failing=self._statedb.failure is not None,
            agents=self._agents.views() if self._agents is not None else None,
            agents_connected=self._agents is not None and self._agents.connected.is_set(),
        )

    async def exposition(self) -> MetricsText:
        return MetricsText(exposition(await self.health()))
