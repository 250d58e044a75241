"""`fleetmon run`'s lifecycle: start the daemon, reload it on SIGHUP, stop it on SIGTERM/SIGINT,
and tell systemd each step (monitor.app.sdnotify: READY=1, RELOADING=1, STOPPING=1, and
WATCHDOG=1 from the cycle path).

A reload never kills the daemon. In order:
1. RELOADING=1; the config and its point lists are read and validated in a thread (a
   100,000-row XLSX takes seconds: the running daemon keeps probing and answering meanwhile);
2. `monitor.app.reloads.preflight` checks what validation cannot (the API port free, the state
   database's path creatable);
3. only then is the running daemon stopped and the new one started; should the new one not
   start after all, the old config is started again.
A failed reload logs "reload of … failed, keeping the running config" at error priority with
every located problem, and /healthz shows it (`reload`); READY=1 follows either way. Only when
the old config cannot be started again either does `fleetmon run` exit 1.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from monitor.app import logs
from monitor.app.cli_common import EXIT_CANNOT_RUN as EXIT_FAILED, EXIT_OK  # 3: cannot run
from monitor.app.agent_config import ownership
from monitor.app.config import FleetmonConfig, check_maintenance_devices, load_config
from monitor.app.daemon import Daemon, StartupError
from monitor.app.reloads import ReloadOutcome, preflight
from monitor.app.sdnotify import Notifier
from monitor.app.snapshot import Snapshot, probe_ages
from monitor.core.config_base import ConfigError
from monitor.fleet.inventory import Inventory, load_inventory

log = logging.getLogger("fleetmon.cli")



def load(path: Path) -> tuple[FleetmonConfig, Inventory]:
    """The config at `path` and its inventory (the maintenance windows' point ids checked
    against it); raises ConfigError. Blocking: a reload runs it in a thread."""
    cfg = load_config(path)
    inventory = load_inventory(cfg)
    check_maintenance_devices(cfg, inventory)
    ownership(cfg.mqtt_agents, inventory, cfg.inventory.source)  # each device one agent's at most
    return cfg, inventory


def _read(path: Path) -> tuple[FleetmonConfig, Inventory]:
    """load() with the cyclic garbage collector paused, for a reload's thread. Reading 100,000
    point-list rows makes millions of objects, and each full collection that triggers holds the
    GIL, stopping the event loop too, for a few hundred ms; paused, the list reads in half the
    time and /healthz stays answered (bench/faults/reload.py). Reference counting still frees
    everything not in a cycle meanwhile."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return load(path)
    finally:
        if paused:
            gc.enable()


@dataclass(slots=True)
class _Running:
    cfg: FleetmonConfig
    inventory: Inventory
    daemon: Daemon
    stop: asyncio.Event
    task: asyncio.Task[None]
    view: Any  # monitor.app.view.LiveView or None


class Supervisor:
    """Runs the daemon for the config file `path` until SIGTERM/SIGINT (see the module).

    `view`: the rich terminal view; `notifier`: systemd's (a no-op outside systemd)."""

    def __init__(self, path: Path, *, view: bool = False, notifier: Notifier | None = None) -> None:
        self.path = path
        self._view = view
        self._notifier = notifier or Notifier()
        self.outcome: ReloadOutcome | None = None
        """The latest reload's outcome (None: none yet), shown by /healthz."""
        self._wake = asyncio.Event()
        self._terminate = self._hup = False

    async def serve(self, cfg: FleetmonConfig, inventory: Inventory) -> int:
        """Run on `cfg`/`inventory` (already loaded) until stopped: exit status 0, or 3 (cannot run) when no
        config could be started."""
        loop = asyncio.get_running_loop()
        for sig, handler in ((signal.SIGTERM, self._on_stop), (signal.SIGINT, self._on_stop),
                             (signal.SIGHUP, self._on_hup)):
            loop.add_signal_handler(sig, handler)
        try:
            try:
                running = await self._start(cfg, inventory)
            except StartupError as exc:
                log.error("cannot start: %s", exc)
                return EXIT_FAILED
            self._ready(running)
            while True:
                await self._wait(running)
                if running.task.done():  # ended by itself: an error inside the daemon
                    await self._stop(running)
                    return EXIT_FAILED
                if self._terminate:
                    self._notifier.stopping()
                    await self._stop(running)
                    return EXIT_OK
                self._hup = False
                replaced = await self._reload(running)
                if replaced is None:
                    return EXIT_FAILED
                running = replaced
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    def _on_stop(self) -> None:
        self._terminate = True
        self._wake.set()

    def _on_hup(self) -> None:
        self._hup = True
        self._wake.set()

    async def _wait(self, running: _Running) -> None:
        """Until a signal came or the daemon's task ended."""
        while not (self._terminate or self._hup or running.task.done()):
            self._wake.clear()
            waiter = asyncio.create_task(self._wake.wait())
            await asyncio.wait({waiter, running.task}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()

    async def _reload(self, running: _Running) -> _Running | None:
        """One reload (see the module): the daemon now running, None when none is."""
        self._notifier.reloading()
        log.info("reloading %s", self.path)
        try:
            cfg, inventory = await asyncio.to_thread(_read, self.path)
            problems = await asyncio.to_thread(preflight, cfg, running.cfg)
            if problems:
                raise ConfigError(problems)
        except ConfigError as exc:
            self._failed(running, exc.messages)
            return running
        if self._terminate:  # SIGTERM while the new config was read: stop instead
            return running
        await self._stop(running)
        try:
            new = await self._start(cfg, inventory)
        except StartupError as exc:
            log.info("the new config could not start; starting the running config again")
            try:
                old = await self._start(running.cfg, running.inventory)
            except StartupError as again:
                log.error("reload of %s failed: %s; the running config cannot start again either: %s",
                          self.path, exc, again)
                return None
            self._failed(old, [f"{self.path}: cannot start: {exc}"])
            return old
        self.outcome = ReloadOutcome(time.time_ns(), True)
        log.info("reloaded %s", self.path)
        self._ready(new)
        return new

    def _failed(self, running: _Running, messages: list[str]) -> None:
        self.outcome = ReloadOutcome(time.time_ns(), False, "\n".join(messages))
        log.error("reload of %s failed, keeping the running config:\n  %s", self.path, "\n  ".join(messages))
        self._ready(running)

    def _ready(self, running: _Running) -> None:
        d = running.daemon
        self._notifier.ready(f"monitoring {len(d.devices)} devices ({len(d.probed)} probed)"
                             + ("" if self.outcome is None or self.outcome.ok else "; the latest reload failed"))

    async def _start(self, cfg: FleetmonConfig, inventory: Inventory) -> _Running:
        """A daemon on `cfg`, running once this returns; raises StartupError (whatever had
        started is stopped again)."""
        view = None
        if self._view:
            from monitor.app.view import LiveView  # rich: only for the terminal view

            view = LiveView(inventory, language=cfg.language, tz=cfg.timezone)
            view.__enter__()
        logs.setup(cfg.log)  # after Live took over stderr, so log lines print above it
        stop = asyncio.Event()
        daemon = Daemon(cfg, inventory, on_snapshot=self._snapshot_handler(lambda: daemon, view),
                        reload=lambda: self.outcome)
        task = asyncio.create_task(daemon.run(stop), name="daemon")
        started = asyncio.create_task(daemon.started.wait())
        await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
        if not daemon.started.is_set():
            started.cancel()
            if view is not None:
                view.__exit__(None, None, None)
            task.result()  # raises StartupError (or whatever else ended it)
        return _Running(cfg, inventory, daemon, stop, task, view)

    async def _stop(self, running: _Running) -> None:
        running.stop.set()
        try:
            await running.task
        except Exception:
            log.exception("the daemon ended with an error")
        finally:
            if running.view is not None:
                running.view.__exit__(None, None, None)

    def _snapshot_handler(self, daemon_of: Callable[[], Daemon], view: Any) -> Callable[[Snapshot], None]:
        """After each cycle: the terminal view, and systemd's watchdog pinged, but only while
        every running probe finishes its cycles (as /healthz judges): a stalled scheduler
        stops the pings and systemd restarts the daemon."""
        notifier = self._notifier

        def seen(snapshot: Snapshot) -> None:
            if view is not None:
                view.update(snapshot)
            daemon, now = daemon_of(), time.time_ns()
            _, stale = probe_ages(snapshot, daemon.probe_intervals, now, (now - daemon.started_ns) / 1e9,
                                  time.monotonic_ns())
            if not stale:
                notifier.watchdog()

        return seen
