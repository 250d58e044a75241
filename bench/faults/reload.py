"""Reload faults (issue 13): `python -m bench.faults reload` (root: raw ICMP, the lab fleet's
namespaces).

1. A real `fleetmon run` gets SIGHUP with each failing config of lab.faults_reload.FAILING in
   turn (API port taken, state DB path not creatable, state DB file not a database, invalid
   config, point list that fails to load): is the daemon alive, does its old config still
   answer /healthz, does /healthz show the failed reload? Then a good config must reload.
2. A reload that reads a 100,000-row XLSX point list: /healthz polled back to back; the
   slowest answer while the new list is read, and how long no answer came while the old
   daemon stopped and the new one started (100,000 points' statuses recorded). The read runs
   in a thread with the cyclic GC paused; what still stalls the event loop is the GIL held by
   single C-level steps of the read, the longest being the release of the parse's
   temporaries (100,000 rows' objects freed at once when load_inventory returns).
3. A soak: the lab fleet (34 devices: ONVIF, RTSP, SNMP, ICMP at their shortest intervals) in
   this process, reloaded every 5 s for 120 s; RSS, open fds, asyncio tasks and threads
   sampled before each reload, growth after two reloads of warm-up.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
from pathlib import Path

from bench.faults import Figure
from lab.faults_reload import (FAILING, Fleetmon, config_doc, fleet_config_doc, healthz_during_reload, point_rows,
                               soak, wait_healthy, write_config, write_points)
from lab.process import free_ports

BIG_ROWS = 100_000
SOAK_S, SOAK_RELOAD_EVERY_S = 120.0, 5.0


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="fleetmon-bench-reload-") as tmp:
        root = Path(tmp)
        figures = _failing_configs(root / "failing")
        figures += _big_point_list(root / "big")
        figures += _soak(root / "soak")
    return figures


def _failing_configs(folder: Path) -> list[Figure]:
    folder.mkdir()
    (port,) = free_ports(1)
    config = folder / "config.yaml"
    write_points(folder / "points.csv", point_rows(5))
    write_config(config, config_doc(port))
    survived, reloaded = 0, False
    with Fleetmon(config, folder / "fleetmon.log") as daemon:
        daemon.wait_log("fleetmon started")
        wait_healthy(port)
        for n, make in enumerate(FAILING.values(), start=1):
            held: list[socket.socket] = []
            doc = config_doc(port)
            detail = make(folder, doc, held)
            write_config(config, doc)
            daemon.sighup()
            try:
                daemon.wait_log("reload of", count=n)
                body = wait_healthy(port, timeout_s=10)
                survived += daemon.alive() and body["reload"]["ok"] is False and detail in body["reload"]["error"]
            except AssertionError:
                pass
            finally:
                for sock in held:
                    sock.close()
            write_points(folder / "points.csv", point_rows(5))
        if daemon.alive():
            write_config(config, config_doc(port))
            started = daemon.text().count("fleetmon started")
            daemon.sighup()
            daemon.wait_log("fleetmon started", count=started + 1)
            reloaded = wait_healthy(port)["reload"]["ok"] is True
            daemon.stop()
    n = len(FAILING)
    return [
        Figure("SIGHUP with each failing config (" + ", ".join(FAILING) + ")",
               "daemon alive, old config serving /healthz, failure shown", f"{survived} of {n}", f"{n} of {n}",
               survived == n),
        Figure("then SIGHUP with a good config", "reloaded", "yes" if reloaded else "no", "yes", reloaded),
    ]


def _big_point_list(folder: Path) -> list[Figure]:
    folder.mkdir()
    (port,) = free_ports(1)
    config = folder / "config.yaml"
    write_points(folder / "small.csv", point_rows(5))
    write_config(config, config_doc(port, points="small.csv"))
    write_points(folder / "big.xlsx", point_rows(BIG_ROWS))
    with Fleetmon(config, folder / "fleetmon.log") as daemon:
        daemon.wait_log("fleetmon started")
        wait_healthy(port)
        write_config(config, config_doc(port, points="big.xlsx"))
        probes = healthz_during_reload(daemon, port, timeout_s=600)
        wait_healthy(port, timeout_s=60)
        daemon.stop()
    reading = [p for p in probes if p.reading]
    worst_ms = max((p.latency_s for p in reading), default=float("nan")) * 1000
    answered = sum(p.status == 200 for p in reading)
    # The swap: from the last answer of the old daemon to the first of the new one.
    swap = [p for p in probes if not p.reading and p.status is None]
    gap_s = sum(p.latency_s for p in swap) + 0.01 * len(swap)  # each refusal is followed by a 10 ms pause
    return [
        Figure(f"reload reading a {BIG_ROWS:,}-row XLSX point list", "/healthz max latency while it is read",
               f"{worst_ms:.0f} ms ({answered} of {len(reading)} answered 200)", "≤ 250 ms, all 200",
               worst_ms <= 250 and answered == len(reading) > 0),
        Figure(f"reload reading a {BIG_ROWS:,}-row XLSX point list", "no /healthz while the daemons swap",
               f"{gap_s:.1f} s", "(measured)", True),
    ]


def _soak(folder: Path) -> list[Figure]:
    from lab.fleet import build_small_fleet
    from lab.net import LabNet, cleanup_stale
    from lab.services import Anomalies, FleetServices

    folder.mkdir()
    cleanup_stale()
    with LabNet(None, workdir=folder) as net:
        fleet = build_small_fleet(net)
        fleet.write_point_list(folder / "points.csv")
        with FleetServices(fleet, Anomalies(no_video=2)) as services:
            config = folder / "config.yaml"
            write_config(config, fleet_config_doc(services.probe_config(), None))
            result = asyncio.run(soak(config, SOAK_S, SOAK_RELOAD_EVERY_S))
    g = result.growth(warmup=2)
    what = (f"soak: lab fleet at its shortest intervals, a reload every {SOAK_RELOAD_EVERY_S:g} s for {SOAK_S:g} s "
            f"({result.reloads} reloads, {result.failed_reloads} failed, {result.cycles} cycles)")
    first = result.steady[2]
    return [
        Figure(what, f"RSS growth over {g.t_s:.0f} s after warm-up", f"{g.rss_kib / 1024:+.1f} MiB "
               f"(of {first.rss_kib / 1024:.0f})", "< 8 MiB", g.rss_kib < 8 * 1024 and result.failed_reloads == 0),
        Figure(what, "open fds growth", f"{g.fds:+d} (of {first.fds})", "≤ 2", g.fds <= 2),
        Figure(what, "asyncio tasks growth", f"{g.tasks:+d} (of {first.tasks})", "≤ 2", g.tasks <= 2),
        Figure(what, "threads growth", f"{g.threads:+d} (of {first.threads})", "≤ 1", g.threads <= 1),
    ]

