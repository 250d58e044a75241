"""Recordings of real devices (snmprec walks) for tests and the bench: which ones, where they come
from, and where they are on this machine.

The walks are public recordings of real units (LibreNMS's test data, GPL-3.0-or-later). They are
not part of this repository: recordings fetched from public repositories are kept as data under
the steering repository's shared/ (shared/snmpwalks/, beside the checkout), or wherever
FLEETMON_SNMPWALKS points. Tests that need them skip, saying so, when they are absent;
`python -m lab.realwalks readme` prints the README that goes beside them (source, licence,
checksums), `python -m lab.realwalks check DIR` verifies a directory against WALKS.

Each walk is served by snmpsim (lab.snmp.SnmpSim, community = file stem) and polled by the real
probe (tests/test_snmp_realwalks.py, bench/snmp_devices.py).
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE_REPO = "librenms/librenms"
SOURCE_LICENCE = "GPL-3.0-or-later (LibreNMS; test data recorded from users' devices)"
SNAPSHOT = ("fetched from a public snapshot of a LibreNMS fork (mahir-meemtel/librenms, commit bc707c0, "
            "February 2026) whose tests/snmpsim is LibreNMS's")


@dataclass(frozen=True)
class Walk:
    stem: str
    brand: str
    model: str
    kind: str  # the point-list kind it is polled as
    sha1: str  # git blob id of the file (git hash-object)

    @property
    def source(self) -> str:
        return f"{SOURCE_REPO}: tests/snmpsim/{self.stem}.snmprec"


WALKS: tuple[Walk, ...] = (
    Walk("apc_smt750x-nmc2", "APC", "Smart-UPS X 750 (NMC2)", "ups", "d5e61da72a8a15a1cad3455fc37b904f7ed007bd"),
    Walk("apc_sua1500rmi2u", "APC", "Smart-UPS 1500 RM", "ups", "43c031064457faaf2e308010835cc388e666a91b"),
    Walk("apc_symmetralx", "APC", "Symmetra LX 16000 RM", "ups", "789d009205bf8d010ab2a4878b0cb4623555fce9"),
    Walk("liebert_apm", "Vertiv Liebert", "APM", "ups", "84126b79b424e3cd9c6f2464047d3cf4148be031"),
    Walk("huaweiups_ups2000", "Huawei", "UPS2000 6kVA", "ups", "999fc23015dfaf0398e9dc174c105ead70605e79"),
    Walk("eatonups", "Eaton", "ConnectUPS card V4.38", "ups", "47570b3daaea2c15fec6c28d1c516436d18b1414"),
    Walk("eatonupsm2_9px", "Eaton", "9PX 1000i RT 2U (Network-M2)", "ups", "364af2934ef704b7c2edd853b4cef036e5f63816"),
    Walk("poweralert_ups", "Tripp Lite", "SU3000LCD2UHV (PowerAlert)", "ups", "c8f5cc31ca7d0eda660109f2e4fa1ddd6371cacb"),
    Walk("deltaups_rfc1628string", "Delta", "UPS with Mini-SNMP card", "ups", "506b693b3c1f7b31304f5a145c52708c29b47393"),
    Walk("generex-ups_cs141", "Generex", "CS141 UPS card", "ups", "c96c1c1e6fd8ba1b66b8a7d191e8a7a664ba31e2"),
    Walk("netvision-rfc", "Socomec", "NetVision card", "ups", "ea28b6d86fe550c85c87259819277530074bbb8f"),
    Walk("liebert_weblbds", "Vertiv Liebert", "DS precision AC (Web card)", "aircon",
         "17836baa8d1a48328b140010c9ed3ab843372a95"),
    Walk("hwg-ste2", "HW group", "STE2 r2 sensors", "sensor", "74fcd56fbdf71d73c5a63ba38780eb09a9fd58dc"),
    Walk("apc_ap7900b", "APC", "AP7900B rack PDU", "pdu", "49b55e02d5012a13d22d9e0e011eb76d4e1e9410"),
    Walk("airos_airos8", "Ubiquiti", "airMAX (airOS 8)", "link", "a17f09daa8fe1f10c6c2d66272e87cbf70cb2ee4"),
    Walk("moxa-etherdevice_edsg512e", "Moxa", "EDS-G512E", "switch", "21c3e4e4e9ba6ba783b030861dd9596c09acae1e"),
    Walk("vrp_5720", "Huawei", "S5720 (VRP)", "switch", "eb3b0ecbda3cee60fa82cfeb267c98ecabe45618"),
    Walk("comware_hpe5900", "H3C / HPE", "5900 (Comware)", "switch", "ff1e911491529652bec92a7fe0712958eb7ee53e"),
    Walk("ruijie_S6150", "Ruijie", "S6150-24VS8CQ-X", "switch", "161a59bd8a7ec7954a775407bce6b5e951e9cb28"),
)


def walks_dir() -> Path | None:
    """The directory holding the walks: $FLEETMON_SNMPWALKS, else shared/snmpwalks beside the
    checkout; None when neither has them."""
    for candidate in (os.environ.get("FLEETMON_SNMPWALKS"), ROOT.parent / "shared" / "snmpwalks"):
        if candidate and (Path(candidate) / f"{WALKS[0].stem}.snmprec").is_file():
            return Path(candidate)
    return None


def _blob_id(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def check(directory: Path) -> list[str]:
    """Problems of a walks directory: files missing or not the recorded ones."""
    problems = []
    for w in WALKS:
        path = directory / f"{w.stem}.snmprec"
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif _blob_id(path) != w.sha1:
            problems.append(f"{path}: not the recorded file (git blob {_blob_id(path)}, expected {w.sha1})")
    return problems


def readme() -> str:
    lines = [
        "# Real SNMP walks (snmprec) used by fleetmon's tests",
        "",
        f"Source: {SOURCE_REPO}, directory tests/snmpsim/ ({SNAPSHOT}). Licence: {SOURCE_LICENCE}.",
        "Files unchanged; served by snmpsim with community = file stem. Listed in fleetmon's lab/realwalks.py.",
        "",
        "| file | brand | model | polled as | source path | git blob |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {w.stem}.snmprec | {w.brand} | {w.model} | {w.kind} | tests/snmpsim/{w.stem}.snmprec | {w.sha1} |"
              for w in WALKS]
    return "\n".join(lines) + "\n"


@dataclass
class Polled:
    """One walk polled by the real probe: its second poll (the first learns the sysObjectID;
    device profiles' tables are walked from the second on), what MIBs answered, what was
    stored and what refused."""

    walk: Walk
    result: object  # probes.base.ProbeResult
    mibs: list[str]
    stored: int
    refused: list[str]


async def poll_walks(directory: Path, walks: tuple[Walk, ...] = WALKS) -> list[Polled]:
    """Serve `walks` from `directory` with one snmpsim process on 127.0.0.1 and poll each with
    SnmpProbe as a device of its kind (community = file stem)."""
    import asyncio
    import ipaddress

    from lab.snmp import SnmpSim, free_udp_ports
    from monitor.core.model import Device, Kind
    from probes.snmp import SnmpConfig, SnmpProbe

    (port,) = free_udp_ports(1)
    out = []
    with SnmpSim([("127.0.0.1", port)], data_dir=directory, ready_community=walks[0].stem):
        for w in walks:
            os.environ["FLEETMON_WALK_COMMUNITY"] = w.stem
            cfg = SnmpConfig(port=port, community_env="FLEETMON_WALK_COMMUNITY", timeout_s=2.0, retries=1,
                             max_repetitions=25, match={"kind": [k.value for k in Kind]})
            device = Device(id=w.stem, name=w.stem, kind=Kind(w.kind), address=ipaddress.ip_address("127.0.0.1"),
                            site="lab", region="lab")
            async with SnmpProbe(cfg) as probe:
                assert probe.wants(device)
                await probe.probe(device)
                result = await probe.probe(device)
                plan = probe.plan(device)
                profiles = probe.profiles_for(device, plan, probe._identity.get(device.id)) if plan else []
            written = {s.measurement for s in result.series}
            mibs: list[str] = []
            for s in result.series:
                if s.measurement == "ups" and "mibs" in s.fields:
                    mibs += str(s.fields["mibs"]).split(", ")
            mibs += [p.decl.mib for p in profiles if p.decl.measurement != "ups" and (
                p.decl.measurement in written or any(t.measurement in written for t in p.decl.tables))]
            if "snmp_interface" in written:
                mibs.append("IF-MIB")
            stored = len(result.fields) + sum(len(s.fields) for s in result.series)
            refused = []
            if result.reason and "refused " in result.reason:
                refused = [r.strip() for r in result.reason.split("refused ", 1)[1].split(", ")]
            out.append(Polled(w, result, list(dict.fromkeys(mibs)), stored, refused))
            await asyncio.sleep(0)
    return out


def main(argv: list[str]) -> int:
    if argv[:1] == ["readme"]:
        print(readme(), end="")
        return 0
    if len(argv) == 2 and argv[0] == "check":
        problems = check(Path(argv[1]))
        print("\n".join(problems) or f"{len(WALKS)} walks, all as recorded")
        return 1 if problems else 0
    print("usage: python -m lab.realwalks readme | check DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
