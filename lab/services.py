"""The services of a lab fleet's devices: ONVIF and RTSP on the cameras, SNMP agents on the
switches, UPS units and servers, each a real server process inside the LabNet's namespaces.

- ONVIF: lab/onvif.py, one process per namespace bound to 0.0.0.0:80; each camera's identity
  (manufacturer, model, firmware, serial, clock) chosen by the address asked.
- RTSP: GStreamer's server (lab/rtsp.py), one per namespace on 0.0.0.0:554, Digest auth.
- SNMP: snmpsim (lab/snmp.py), one per namespace, an endpoint per switch, UPS and server
  address on UDP 161; communities are the data files' names (switch, ups, server).

Anomalies a real fleet has, picked with the seed among the active cameras of sites that are
not dark: cameras that ping but send no video (RTSP refused), clocks that drifted, firmware
upgraded without the point list being updated, and pictures spoilt (lab/vqd_streams.py: blur,
dark, cover, frozen, … per defect `picture_defects` cameras; with them every camera's stream
shows a photograph instead of colour bars, for video-quality diagnosis). `expected_video()` is the ground truth of the
video basis; `probe_config()` the probes section a daemon needs to watch it all.

Needs root (namespaces, nftables). Not thread-safe, like the LabNet under it.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, Sequence

from lab.fleet import CAMERA_FIRMWARE, LabFleet
from lab.onvif import OnvifSimulatorProcess
from lab.rtsp import MAIN_STREAM, RtspServer, block_video, unblock_video
from lab.vqd_streams import STREAM_DEFECTS, write_scenes
from lab.snmp import SWITCH_UPLINK, SWITCH_UPLINK_INDEX, SnmpSim
from monitor.core.model import Device, Kind, Status

CAMERA_USER = "admin"
CAMERA_PASSWORD = "lab-Hik12345"  # lab cameras only; the daemon reads it from a file like any secret
UPGRADED_FIRMWARE = "V5.7.3 build 230112"
DRIFT_S = 400.0
_UPLINK = SWITCH_UPLINK_INDEX
TRAPS: dict[str, tuple[str, list[str]]] = {  # name → (snmpTrapOID, varbinds as snmptrap arguments)
    "link_down": ("1.3.6.1.6.3.1.1.5.3", [  # IF-MIB linkDown: ifIndex, ifAdminStatus, ifOperStatus
        f"1.3.6.1.2.1.2.2.1.1.{_UPLINK}", "i", str(_UPLINK), f"1.3.6.1.2.1.2.2.1.7.{_UPLINK}", "i", "1",
        f"1.3.6.1.2.1.2.2.1.8.{_UPLINK}", "i", "2", f"1.3.6.1.2.1.31.1.1.1.1.{_UPLINK}", "s", SWITCH_UPLINK]),
    "link_up": ("1.3.6.1.6.3.1.1.5.4", [
        f"1.3.6.1.2.1.2.2.1.1.{_UPLINK}", "i", str(_UPLINK), f"1.3.6.1.2.1.2.2.1.7.{_UPLINK}", "i", "1",
        f"1.3.6.1.2.1.2.2.1.8.{_UPLINK}", "i", "1", f"1.3.6.1.2.1.31.1.1.1.1.{_UPLINK}", "s", SWITCH_UPLINK]),
    # UPS-MIB upsTrapOnBattery (RFC 1628 §4.1): seconds on battery, minutes remaining, alarms
    "ups_on_battery": ("1.3.6.1.2.1.33.2.1", [
        "1.3.6.1.2.1.33.1.2.2.0", "i", "0", "1.3.6.1.2.1.33.1.2.3.0", "i", "30", "1.3.6.1.2.1.33.1.6.1.0", "u", "1"]),
    "cold_start": ("1.3.6.1.6.3.1.1.5.1", []),
}
SNMP_KINDS = {Kind.SWITCH: "switch", Kind.UPS: "ups", Kind.SERVER: "server", Kind.PLATFORM: "server"}


@dataclass(frozen=True)
class Anomalies:
    """How many active cameras send no video, have a drifted clock, run upgraded firmware; how
    many show each picture defect (lab/vqd_streams.STREAM_DEFECTS)."""

    no_video: int = 0
    clock_drift: int = 0
    upgraded: int = 0
    picture_defects: int = 0


class FleetServices:
    """`with FleetServices(fleet, anomalies) as services:` starts every service, stops them at
    exit. Raises the lab modules' errors when a server does not come up (what started is
    stopped again)."""

    def __init__(self, fleet: LabFleet, anomalies: Anomalies = Anomalies(), *, seed: int = 0,
                 onvif: bool = True, rtsp: bool = True, snmp: bool = True) -> None:
        self.fleet = fleet
        self._want = {"onvif": onvif, "rtsp": rtsp, "snmp": snmp}
        healthy = [
            d for d in fleet.devices
            if d.kind is Kind.CAMERA and d.status is Status.ACTIVE and d.address is not None
            and fleet.net.is_up(d.address)
        ]
        rng = random.Random(f"services-{seed}")
        spoilt = anomalies.picture_defects * len(STREAM_DEFECTS)
        wanted = anomalies.no_video + anomalies.clock_drift + anomalies.upgraded + spoilt
        picked = rng.sample(healthy, min(len(healthy), wanted))
        self.no_video = {d.id for d in picked[: anomalies.no_video]}
        rest = picked[anomalies.no_video:]
        self.clock_drift = {d.id for d in rest[: anomalies.clock_drift]}
        rest = rest[anomalies.clock_drift:]
        self.upgraded = {d.id for d in rest[: anomalies.upgraded]}
        rest = rest[anomalies.upgraded:]
        self.pictures = bool(spoilt)  # photographs instead of colour bars
        self.picture_defects: dict[str, str] = {  # the ground truth: camera id → defect
            d.id: STREAM_DEFECTS[i // anomalies.picture_defects] for i, d in enumerate(rest[:spoilt])
        }
        self.dir = Path(tempfile.mkdtemp(prefix="fmlab-services-"))
        self._stack = ExitStack()
        self._snmp: dict[str, SnmpSim] = {}  # namespace → its agent process
        self._rtsp: dict[str, RtspServer] = {}  # namespace → its RTSP server

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _start(self) -> None:
        net = self.fleet.net
        cameras = [d for d in self.fleet.devices if d.kind is Kind.CAMERA and d.address is not None]
        if self._want["onvif"]:
            config = {
                "default": {"username": CAMERA_USER, "password": CAMERA_PASSWORD, "manufacturer": "HIKVISION"},
                "devices": {str(d.address): self._identity(d) for d in cameras},
            }
            for ns in net.namespaces:
                self._stack.enter_context(OnvifSimulatorProcess(config, netns=ns, bind="0.0.0.0", port=80))
        if self._want["rtsp"]:
            scenes = write_scenes(self.dir / "scenes") if self.pictures else []
            spoilt = self._by_namespace(list(self.picture_defects))
            for ns in net.namespaces:
                defects = {a: self.picture_defects[self._ids[a]] for a in spoilt.get(ns, [])}
                server = RtspServer(bind="0.0.0.0", port=554, auth="digest", user=CAMERA_USER,
                                    password=CAMERA_PASSWORD, netns=ns, scenes=scenes, defects=defects)
                self._rtsp[ns] = self._stack.enter_context(server)
            self.fail_video(self.no_video)
        if self._want["snmp"]:
            agents = [d for d in self.fleet.devices if d.kind in SNMP_KINDS and d.address is not None]
            by_ns: dict[str, list[Device]] = {}
            for d in agents:
                by_ns.setdefault(net.namespace_of(d.address), []).append(d)
            for ns, devices in by_ns.items():
                sim = SnmpSim([(str(d.address), 161) for d in devices], netns=ns)
                self._snmp[ns] = self._stack.enter_context(sim)

    def _identity(self, camera: Device) -> dict[str, Any]:
        return {
            "model": camera.model or "", "serial": camera.serial or camera.id,
            "firmware": UPGRADED_FIRMWARE if camera.id in self.upgraded else (camera.firmware or CAMERA_FIRMWARE),
            "clock_offset_s": DRIFT_S if camera.id in self.clock_drift else 0.0,
            "stream_path": MAIN_STREAM, "rtsp_port": 554,
        }

    # -- run-time changes ----------------------------------------------------------------------------

    def fail_video(self, camera_ids: set[str] | list[str]) -> None:
        """These cameras keep answering ping but refuse RTSP (an encoder that hung)."""
        for ns, addresses in self._by_namespace(camera_ids).items():
            block_video(ns, addresses)

    def restore_video(self, camera_ids: set[str] | list[str]) -> None:
        for ns, addresses in self._by_namespace(camera_ids).items():
            unblock_video(ns, addresses)

    def set_pictures(self, defects: dict[str, str]) -> None:
        """From now on these cameras {id: defect} show their defect and every other camera a
        clean picture (the streams switched back); `picture_defects` becomes `defects`. Needs
        `picture_defects` > 0 at start (the photographs)."""
        if not self.pictures:
            raise ValueError("picture defects need Anomalies(picture_defects=…) at start")
        by_ns = self._by_namespace(list(defects))
        for ns, server in self._rtsp.items():
            server.set_defects({a: defects[self._ids[a]] for a in by_ns.get(ns, [])})
        self.picture_defects = dict(defects)

    def ups_on_battery(self, ups_id: str, minutes_remaining: int = 30) -> None:
        self._agent(ups_id).ups_on_battery(self._address(ups_id), minutes_remaining=minutes_remaining)

    def ups_on_mains(self, ups_id: str) -> None:
        self._agent(ups_id).ups_on_mains(self._address(ups_id))

    def uplink_down(self, switch_id: str) -> None:
        self._agent(switch_id).port_down(self._address(switch_id))

    def uplink_up(self, switch_id: str) -> None:
        self._agent(switch_id).port_up(self._address(switch_id))

    def send_trap(self, device_id: str, trap: str, to: int, *, auth: Sequence[str] = ("-v2c", "-c", "traps"),
                  inform: bool = False) -> None:
        """Send `trap` ("link_down", "link_up" of the uplink, "ups_on_battery", "cold_start")
        from the device's own address with net-snmp's snmptrap (or snmpinform) to a daemon
        listening on UDP `to` in the root namespace. `auth`: snmptrap's version and security
        options. Raises RuntimeError with net-snmp's message when it fails (an inform that is
        not acknowledged)."""
        address = self._address(device_id)
        ns = self.fleet.net.namespace_of(address)
        oid, varbinds = TRAPS[trap]
        command = ["snmpinform" if inform else "snmptrap", *auth, "-r", "1", "-t", "3", f"--clientaddr={address}",
                   f"{self.fleet.net.host_address(ns)}:{to}", "", oid, *varbinds]
        state = self.dir / "net-snmp"  # net-snmp's own config and engine state, not the machine's
        state.mkdir(exist_ok=True)
        env = {**os.environ, "MIBS": "", "SNMPCONFPATH": str(state), "SNMP_PERSISTENT_DIR": str(state), "HOME": str(state)}
        done = subprocess.run(["ip", "netns", "exec", ns, *command], capture_output=True, text=True, timeout=15, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} {trap} from {device_id} failed: {done.stderr.strip()}")

    @property
    def _ids(self) -> dict[str, str]:
        """Address → device id."""
        return {str(d.address): d.id for d in self.fleet.devices if d.address is not None}

    def _address(self, device_id: str) -> str:
        address = self.fleet.device(device_id).address
        if address is None:
            raise ValueError(f"{device_id} has no address")
        return str(address)

    def _agent(self, device_id: str) -> SnmpSim:
        return self._snmp[self.fleet.net.namespace_of(self._address(device_id))]

    def _by_namespace(self, device_ids: set[str] | list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for device_id in device_ids:
            address = self._address(device_id)
            out.setdefault(self.fleet.net.namespace_of(address), []).append(address)
        return out

    # -- for the daemon and the checks ------------------------------------------------------------------

    def expected_video(self) -> set[str]:
        """Ground truth: the ids of the active cameras whose picture comes back now (reachable
        on the network, RTSP not failed)."""
        reachable = self.fleet.reachable()
        return {
            d.id for d in self.fleet.devices
            if d.kind is Kind.CAMERA and d.counted and d.id in reachable and d.id not in self.no_video
        }

    def probe_config(self) -> dict[str, Any]:
        """config.yaml `probes` entries for onvif, rtsp and snmp against these services (secrets
        in files under self.dir); merge with your icmp settings."""
        password = self.dir / "camera.pass"
        password.write_text(CAMERA_PASSWORD)
        password.chmod(0o600)
        out: dict[str, Any] = {}
        camera = {"username": CAMERA_USER, "password_file": str(password)}
        out["onvif"] = {"enabled": self._want["onvif"], **camera}
        out["rtsp"] = {"enabled": self._want["rtsp"], **camera}
        if self.pictures:  # the frame check with video-quality diagnosis
            out["rtsp_frame"] = {"enabled": self._want["rtsp"], **camera, "vqd": {"enabled": True}}
        credentials = []
        for kind, community in SNMP_KINDS.items():
            path = self.dir / f"{community}.community"
            path.write_text(community)
            path.chmod(0o600)
            credentials.append({"match": {"kind": [kind.value]}, "community_file": str(path)})
        out["snmp"] = {"enabled": self._want["snmp"], "credentials": credentials}
        return out
