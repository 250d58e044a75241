"""The probe agent (`fleetmon agent --config agent.yaml`): probes the devices of its sites and
publishes the results to the central daemon over MQTT (topics and payloads:
monitor.app.agent_wire).

    Scheduler per probe (monitor.app.scheduler) ─► ProbeResult ─► spool (on disk, in order)
        ─► publisher: batches of up to batch_max results, QoS 1, one in flight, each kept until
           the broker's PUBACK, then the spool is settled up to it ─► broker ─► central

Nothing measured is lost while the broker is unreachable, the agent restarts or is killed: a
result is in the spool (monitor.metrics.spool: CRC-framed segments, one write(2) each, fsync'ed
every heartbeat) before it is published, and only a PUBACK settles it. After a failure the
unacknowledged batch is published again unchanged (same spool positions), so the central drops
it by position if it had arrived; what waited in the spool follows in order. When the spool is
full the oldest results are dropped and counted (reported in the status).

At each connection the agent publishes its hello (retained: version, the digests of its points
and probe settings, what it runs), then its status "online" (retained) every heartbeat_s; its
will, set at CONNECT, makes the broker publish "offline" (retained) when the connection dies
without a DISCONNECT (kill -9, a cut line: after 1.5 × keepalive). A clean stop publishes
"stopping".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import defaultdict, deque
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Callable

from monitor.app import version
from monitor.app import agent_link
from monitor.app.agent_config import points_digest, probes_digest
from monitor.app.agent_file import AgentFileConfig
from monitor.app.agent_wire import HELLO, RESULTS, STATUS, batch_payload, result_line, status_payload, topic
from monitor.app.scheduler import CycleReport, Scheduler
from monitor.core.model import Device
from monitor.metrics.spool import Spool
from probes import REGISTRY, ProbeResult

log = logging.getLogger("fleetmon.agent")


def spool_id(directory: Path) -> str:
    """The spool's identity (a random token kept in `directory`/id): spool positions restart at
    0 when a spool is deleted, and the central must not mistake the new ones for repeats."""
    path = directory / "id"
    try:
        token = path.read_text(encoding="ascii").strip()
        if token:
            return token
    except (OSError, UnicodeDecodeError):
        pass
    directory.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(8)
    path.write_text(token + "\n", encoding="ascii")
    return token


class _Batch:
    """A batch being published: kept unchanged until acknowledged."""

    __slots__ = ("count", "last", "payload")

    def __init__(self, count: int, last: int, payload: bytes) -> None:
        self.count, self.last, self.payload = count, last, payload


class Agent:
    """Runs `devices` (selected from `cfg`'s point list) with the probes of cfg.agent until
    `stop` is set. Counters for tests and the bench: `published` results acknowledged by the
    broker, `spooled` results appended, `connections` made."""

    def __init__(self, cfg: AgentFileConfig, devices: list[Device]) -> None:
        self.cfg = cfg
        self.devices = devices
        a = cfg.agent
        self.name = a.name
        self._prefix = cfg.topic_prefix
        self._spool = Spool(a.spool_dir / "results", a.spool_max_bytes)
        self._spool_id = ""
        self._pending: deque[tuple[bytes, int]] = deque()  # loaded from the spool, not yet in a batch
        self._batch: _Batch | None = None
        self._wake = asyncio.Event()
        self._dropped = 0
        self.published = 0
        self.spooled = 0
        self.connections = 0
        self.cycles = 0
        self._failing: defaultdict[str, set[str]] = defaultdict(set)  # probe → devices whose last result failed
        self.connected = asyncio.Event()
        self.hello = {
            "v": 1, "version": version(), "points": points_digest(devices),
            "probes": probes_digest(cfg.probes, a.probes), "devices": len(devices),
            "probe_names": list(a.probes), "heartbeat_s": a.heartbeat_s,
        }

    async def run(self, stop: asyncio.Event, ready: Callable[[], None] | None = None) -> None:
        """Probe and publish until `stop` is set; `ready()` once the probes run. Raises
        SpoolError when the spool cannot be used, OSError/PermissionError when a probe cannot
        start (raw sockets)."""
        a = self.cfg.agent
        self._spool_id = spool_id(a.spool_dir)
        self._spool.open()
        try:
            async with AsyncExitStack() as stack:
                schedulers = await self._start_probes(stack)
                publisher = asyncio.create_task(self._publish_loop(stop), name="agent-publisher")
                tasks = [asyncio.create_task(s.run(), name=f"agent-{s.probe.name}") for s in schedulers]
                log.info("agent %s started: %d devices, probes %s, %d results wait in the spool", self.name,
                         len(self.devices), ", ".join(s.probe.name for s in schedulers) or "none",
                         self._spool.unloaded_lines)
                if ready is not None:
                    ready()
                try:
                    await stop.wait()
                finally:
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    self._wake.set()
                    await publisher
        finally:
            self._spool.close()
        log.info("agent %s stopped: %d results probed, %d published, %d waiting in the spool", self.name,
                 self.spooled, self.published,
                 len(self._pending) + self._spool.unloaded_lines + (self._batch.count if self._batch else 0))

    async def _start_probes(self, stack: AsyncExitStack) -> list[Scheduler]:
        cfg = self.cfg
        out = []
        for name in cfg.agent.probes:
            probe_cfg = getattr(cfg.probes, name)
            probe = REGISTRY[name](probe_cfg)
            devices = [d for d in self.devices if probe.wants(d)]
            if not devices:
                log.warning("agent %s: probe %s polls none of its devices: not started", self.name, name)
                continue
            probe = await stack.enter_async_context(probe)
            out.append(Scheduler(
                probe, devices, interval_s=probe_cfg.interval_s, spread=cfg.scheduler.spread,
                max_concurrency=cfg.scheduler.max_concurrency, on_result=self._on_result, on_cycle=self._on_cycle,
                confirm=getattr(probe_cfg, "confirm", None), confirm_skip=self._failing[name].__contains__,
            ))
        return out

    def _on_result(self, result: ProbeResult) -> None:
        """Into the spool at once (the durable copy), then the publisher is woken."""
        # A device whose last result failed is not re-probed again (as StateTracker.failing on
        # the central): confirmation is for the first miss, the central's hysteresis does the rest.
        failing = self._failing[result.probe]
        if result.ok:
            failing.discard(result.device_id)
        else:
            failing.add(result.device_id)
        position = self._spool.append(result_line(result), keep_loaded=False)
        if position is not None:
            self.spooled += 1
        self._wake.set()

    def _on_cycle(self, report: CycleReport) -> None:
        self.cycles += 1

    # -- publishing -------------------------------------------------------------------------------

    async def _publish_loop(self, stop: asyncio.Event) -> None:
        import aiomqtt

        backoff = agent_link.Backoff()
        will = (topic(self._prefix, self.name, STATUS), status_payload("offline"))
        while not stop.is_set():
            try:
                client = agent_link.client(self.cfg.broker, f"fleetmon-{self.name}", will=will, log=log)
                await client.__aenter__()
            except (aiomqtt.MqttError, OSError) as exc:  # OSError: a CA file TLS cannot use, say
                log.warning("agent %s: broker %s:%d unreachable (%s): results wait in the spool", self.name,
                            self.cfg.broker.host, self.cfg.broker.port, exc)
                await _sleep_or(stop, backoff.next_s())
                continue
            self.connections += 1
            try:
                await self._serve(client, stop)
                backoff.reset()
            except (aiomqtt.MqttError, OSError) as exc:
                log.warning("agent %s: connection to the broker lost (%s): results wait in the spool", self.name, exc)
                backoff.reset()  # it worked a moment ago: try again soon
                await _sleep_or(stop, backoff.next_s())
            finally:
                self.connected.clear()
                await agent_link.close(client)

    async def _serve(self, client, stop: asyncio.Event) -> None:
        """Hello, status, then batches and heartbeats until `stop` (then "stopping"). Raises
        aiomqtt.MqttError when the connection fails."""
        import json

        a = self.cfg.agent
        timeout = self.cfg.broker.timeout_s
        await client.publish(topic(self._prefix, self.name, HELLO), json.dumps(self.hello), qos=1, retain=True,
                             timeout=timeout)
        self.connected.set()
        log.info("agent %s connected to the broker", self.name)
        results_topic = topic(self._prefix, self.name, RESULTS)
        next_beat = 0.0
        while True:
            now = time.monotonic()
            if now >= next_beat:
                self._spool.sync()
                dropped = self._dropped + self._spool.take_dropped()
                self._dropped = dropped
                await client.publish(topic(self._prefix, self.name, STATUS), status_payload(
                    "online", ts_ns=time.time_ns(), spooled=self.backlog, dropped=dropped), qos=1, retain=True,
                    timeout=timeout)
                next_beat = now + a.heartbeat_s
            batch = self._next_batch()
            if batch is not None:
                await client.publish(results_topic, batch.payload, qos=1, timeout=timeout)
                self._batch = None
                self._spool.ack(batch.last)
                self.published += batch.count
                continue
            if stop.is_set():
                await client.publish(topic(self._prefix, self.name, STATUS), status_payload(
                    "stopping", ts_ns=time.time_ns()), qos=1, retain=True, timeout=timeout)
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, next_beat - time.monotonic()))

    @property
    def backlog(self) -> int:
        """Results not yet acknowledged by the broker."""
        return (self._batch.count if self._batch else 0) + len(self._pending) + self._spool.unloaded_lines

    def _next_batch(self) -> _Batch | None:
        """The unacknowledged batch again, else a new one from the spool (None: nothing waits)."""
        if self._batch is not None:
            return self._batch
        want = self.cfg.agent.batch_max
        if len(self._pending) < want and self._spool.unloaded_lines:
            self._pending.extend(self._spool.load(want - len(self._pending)))
        if not self._pending:
            return None
        lines = [self._pending.popleft() for _ in range(min(want, len(self._pending)))]
        first, last = lines[0][1], lines[-1][1]
        self._batch = _Batch(len(lines), last, batch_payload(self.name, self._spool_id, first, last,
                                                             (line for line, _ in lines)))
        return self._batch


async def _sleep_or(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
