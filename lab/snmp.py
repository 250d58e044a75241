"""SNMP agents for tests, the lab fleet and the bench: snmpsim serving the lab's data files on
many endpoints, and Debian's snmpd as a second, different real agent.

`SnmpSim` runs one snmpsim 1.2 process (`snmpsim-command-responder`) on 127.0.0.1 or, with
`netns=`, inside a lab network namespace (`ip netns exec NS`, LabNet.namespace_of(address)),
listening on every given (address, port). The data files of lab/snmpdata answer by community =
file stem:

- `switch`: 10 ports Gi0/1..Gi0/10 (ifName; ifDescr GigabitEthernet0/N), ifHighSpeed 1000.
  Gi0/10 is the uplink (100 Mbit/s in, 50 Mbit/s out); Gi0/N, N ≤ 9, receives N Mbit/s and
  sends N/2 Mbit/s; Gi0/3 is admin down, Gi0/7 oper down (nothing plugged in); Gi0/5 counts 2
  input errors and 1 discard per second. SWITCH_RATES has the exact octet rates.
- `ups`: RFC 1628, on mains (upsOutputSource 3), battery normal, 45 min left, 100 % charge,
  220 V / 50.0 Hz in, 35 % load, no alarms.
- `server`: RFC 2790, CPUs at 20 % and 40 %, RAM 75 % used, fixed disks / 40 % and /data 85 %.
- `ups_apc`, `ups_liebert`, `ups_huawei`, `ups_eaton`, `ups_tripplite`: UPS units that answer only
  their vendor's MIB (PowerNet-MIB; LIEBERT-GP-FLEXIBLE-MIB; HUAWEI-UPS-MIB; XUPS-MIB;
  TRIPPLITE-PRODUCTS), each with the vendor's units (tenths, centihertz, seconds, TimeTicks),
  on mains. UPS_VENDORS has what puts each on battery (`ups_on_battery(vendor=…)`). Written
  for the lab from the MIB definitions; recordings of real units are tests' data
  (lab/realwalks.py).

Values change per endpoint at run time (`set_value`, and the helpers `ups_on_battery`,
`ups_battery_low`, `ups_on_mains`, `port_down`, `port_up`): the data files mark those records
with the variation module lab/snmpsim_modules/labvalue.py, which reads overrides from an
SQLite file keyed by snmpsim's endpoint number. Stock `writecache`/`sql` modules key values by
OID only, so they would change every device served from the same data file.

`Snmpd` runs `snmpd -f -C -c FILE` on a free 127.0.0.1 port (or a given address in a namespace)
with a v2c community, an optional v3 user and `override` lines for UPS-MIB scalars; it serves
the real IF-MIB and HOST-RESOURCES-MIB of the namespace it runs in.

Lab secrets (communities, v3 keys) are test values and sit in files of the temporary folder.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Self, Sequence

from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import api

from lab.process import ServerProcess

DATA_DIR = Path(__file__).resolve().parent / "snmpdata"
MODULES_DIR = Path(__file__).resolve().parent / "snmpsim_modules"
SNMPD = "/usr/sbin/snmpd"

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
UPS_BATTERY_STATUS = "1.3.6.1.2.1.33.1.2.1.0"
UPS_SECONDS_ON_BATTERY = "1.3.6.1.2.1.33.1.2.2.0"
UPS_MINUTES_REMAINING = "1.3.6.1.2.1.33.1.2.3.0"
UPS_CHARGE_REMAINING = "1.3.6.1.2.1.33.1.2.4.0"
UPS_INPUT_VOLTAGE_1 = "1.3.6.1.2.1.33.1.3.3.1.3.1"
UPS_OUTPUT_SOURCE = "1.3.6.1.2.1.33.1.4.1.0"
UPS_ALARMS_PRESENT = "1.3.6.1.2.1.33.1.6.1.0"
IF_OPER_STATUS = "1.3.6.1.2.1.2.2.1.8"
IF_HC_IN_OCTETS = "1.3.6.1.2.1.31.1.1.1.6"
IF_HC_OUT_OCTETS = "1.3.6.1.2.1.31.1.1.1.10"
IF_COUNTER_DISCONTINUITY = "1.3.6.1.2.1.31.1.1.1.19"

UPS_VENDORS: dict[str, dict[str, int | str]] = {
    # data file (community) → the values its agent sends on battery with 25 minutes left
    "ups": {UPS_OUTPUT_SOURCE: 5, UPS_MINUTES_REMAINING: 25, UPS_INPUT_VOLTAGE_1: 0},
    "ups_apc": {"1.3.6.1.4.1.318.1.1.1.4.1.1.0": 3,  # upsBasicOutputStatus onBattery(3)
                "1.3.6.1.4.1.318.1.1.1.2.2.3.0": 150_000,  # upsAdvBatteryRunTimeRemaining, TimeTicks
                "1.3.6.1.4.1.318.1.1.1.3.3.1.0": 0, "1.3.6.1.4.1.318.1.1.1.3.2.1.0": 0},
    "ups_liebert": {"1.3.6.1.4.1.476.1.42.3.9.20.1.20.1.2.100.4168": "Active Event",  # Battery Discharging
                    "1.3.6.1.4.1.476.1.42.3.9.20.1.20.1.2.1.4150": "25",  # Battery Time Remaining, min
                    "1.3.6.1.4.1.476.1.42.3.9.20.1.20.1.2.1.4096": "0"},
    "ups_huawei": {"1.3.6.1.4.1.2011.6.174.1.2.101.1.1.1": 4,  # hwUpsDevicePowerSupplyMethod battery(4)
                   "1.3.6.1.4.1.2011.6.174.1.6.100.1.4.1": 1500,  # hwUpsBatteryBackupTime, s
                   "1.3.6.1.4.1.2011.6.174.1.3.100.1.1.1": 0},
    "ups_eaton": {"1.3.6.1.4.1.534.1.4.5.0": 5,  # xupsOutputSource battery(5)
                  "1.3.6.1.4.1.534.1.2.1.0": 1500,  # xupsBatTimeRemaining, s
                  "1.3.6.1.4.1.534.1.3.4.1.2.1": 0, "1.3.6.1.4.1.534.1.7.1.0": 1},
    "ups_tripplite": {"1.3.6.1.4.1.850.1.1.3.1.3.3.1.1.1.1": 5,  # tlpUpsOutputSource battery(5)
                      "1.3.6.1.4.1.850.1.1.3.1.3.1.1.1.3.1": 25,  # tlpUpsEstimatedMinutesRemaining
                      "1.3.6.1.4.1.850.1.1.3.1.3.2.2.1.3.1.1": 0, "1.3.6.1.4.1.850.1.3.1.0": 1},
}

SWITCH_PORTS = 10
SWITCH_UPLINK = "Gi0/10"
SWITCH_UPLINK_INDEX = 10
SWITCH_ADMIN_DOWN = 3
SWITCH_OPER_DOWN = 7
SWITCH_RATES = {  # ifIndex → (in, out) octets per second, as in switch.snmprec
    i: ((12_500_000, 6_250_000) if i == SWITCH_UPLINK_INDEX else (i * 125_000, i * 62_500))
    for i in range(1, SWITCH_PORTS + 1) if i not in (SWITCH_ADMIN_DOWN, SWITCH_OPER_DOWN)
}
SWITCH_ERROR_PORT = 5  # ifInErrors +2/s, ifInDiscards +1/s

START_TIMEOUT_S = 60.0  # 200 endpoints in a busy CI box: indexing and binding take a while


class SnmpLabError(RuntimeError):
    """An agent did not start or a lab change failed; the message says why."""


@dataclass(frozen=True)
class V3User:
    """An SNMPv3 USM user of a lab agent (snmpsim names: SHA, SHA256 …, AES, AES256 …)."""

    name: str
    auth_key: str
    priv_key: str
    auth_proto: str = "SHA"
    priv_proto: str = "AES"


def free_udp_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct UDP ports on `host` that nothing is bound to right now."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(count)]
    try:
        for s in socks:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def snmp_get_v2c(address: str, port: int, community: str, oid: str, timeout_s: float = 0.5) -> object | None:
    """One blocking v2c GET (for readiness checks): the value, or None without an answer."""
    p = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    pdu = p.GetRequestPDU()
    p.apiPDU.set_defaults(pdu)
    p.apiPDU.set_varbinds(pdu, [(oid, p.Null(""))])
    msg = p.Message()
    p.apiMessage.set_defaults(msg)
    p.apiMessage.set_community(msg, community)
    p.apiMessage.set_pdu(msg, pdu)
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.sendto(encoder.encode(msg), (address, port))
            data = sock.recv(65_535)
        except OSError:
            return None
    try:
        reply, _ = decoder.decode(data, asn1Spec=p.Message())
    except Exception:  # pyasn1 raises its own error types for garbage
        return None
    varbinds = p.apiPDU.get_varbinds(p.apiMessage.get_pdu(reply))
    return varbinds[0][1] if varbinds else None


class SnmpSim(ServerProcess):
    """One snmpsim process serving lab/snmpdata on `endpoints` [(address, port)].

    - netns: run inside this network namespace (its addresses must be local there).
    - users: SNMPv3 users; a v3 request names the data file as contextName ("switch", "ups",
      "server"), since snmpsim picks data files by context.
    - max_var_binds: varbinds per response (snmpsim's default 64 truncates big GETBULKs).
    - data_dir, ready_community: the data files served, and one whose sysUpTime shows the agent is
      up (lab/realwalks.py serves recordings of real devices).
    Context manager: starts (waits until the first endpoint answers), stops, deletes its folder.
    Raises SnmpLabError when snmpsim is missing or does not come up.
    """

    stop_timeout_s = 5.0

    def __init__(self, endpoints: Sequence[tuple[str, int]], *, netns: str | None = None,
                 users: Sequence[V3User] = (), data_dir: Path = DATA_DIR, max_var_binds: int = 512,
                 ready_community: str = "switch") -> None:
        if not endpoints:
            raise ValueError("snmpsim needs at least one endpoint")
        self.dir = Path(tempfile.mkdtemp(prefix="fleetmon-snmpsim-"))
        self.endpoints = [(str(ipaddress.ip_address(a)), int(p)) for a, p in endpoints]
        # snmpsim numbers endpoints in command-line order: transport domain 1.3.6.1.6.1.1.N.
        self._index = {ep: i for i, ep in enumerate(self.endpoints)}
        self.netns = netns
        self.users = list(users)
        self.data_dir = data_dir
        self.max_var_binds = max_var_binds
        self.ready_community = ready_community  # a data file stem of data_dir: answered once up
        self.db_path = self.dir / "overrides.sqlite"
        self.log_path = self.dir / "snmpsim.log"
        super().__init__()
        db = sqlite3.connect(self.db_path)
        with db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS overrides (endpoint TEXT NOT NULL, oid TEXT NOT NULL, value TEXT NOT NULL,"
                " rate REAL, set_at REAL NOT NULL, PRIMARY KEY (endpoint, oid))"
            )
        db.close()

    def _command(self) -> list[str]:
        exe = Path(sys.executable).parent / "snmpsim-command-responder"
        found = str(exe) if exe.exists() else shutil.which("snmpsim-command-responder")
        if found is None:
            raise SnmpLabError("snmpsim-command-responder not found (pip install snmpsim pysmi)")
        data = self.dir / "data"
        shutil.copytree(self.data_dir, data, dirs_exist_ok=True)
        # Engine options through a file: 200 endpoints make a long command line, and the v3
        # keys stay out of `ps`. ("--agent-udpv4-endpoint" on the command line itself is
        # swallowed by argparse there: only the last one would count.)
        lines = ["--v3-engine-id=auto", f"--data-dir={data}"]
        for user in self.users:
            lines += [f"--v3-user={user.name}", f"--v3-auth-key={user.auth_key}", f"--v3-auth-proto={user.auth_proto}",
                      f"--v3-priv-key={user.priv_key}", f"--v3-priv-proto={user.priv_proto}"]
        lines += [f"--agent-udpv{6 if ':' in a else 4}-endpoint={f'[{a}]' if ':' in a else a}:{p}"
                  for a, p in self.endpoints]
        args_file = self.dir / "engine.args"
        args_file.write_text("\n".join(lines) + "\n")
        args_file.chmod(0o600)
        cmd = [found, f"--cache-dir={self.dir / 'cache'}", f"--variation-modules-dir={MODULES_DIR}",
               f"--variation-module-options=labvalue:{self.db_path}", f"--max-var-binds={self.max_var_binds}",
               "--log-level=error", f"--args-from-file={args_file}"]
        return ["ip", "netns", "exec", self.netns, *cmd] if self.netns else cmd

    def start(self) -> Self:
        cmd = self._command()
        env = {**os.environ, "SNMPSIM_ALLOW_ROOT": "true"}
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          env=env, start_new_session=True)
        address, port = self.endpoints[0]
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise SnmpLabError(f"snmpsim exited ({self._proc.returncode}); log {self.log_path}:\n{self._log_tail()}")
            if snmp_get_v2c(address, port, self.ready_community, SYS_UPTIME, timeout_s=0.2) is not None:
                return self
        self.stop()
        raise SnmpLabError(f"snmpsim did not answer within {START_TIMEOUT_S} s; log {self.log_path}:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""

    # --- run-time changes -------------------------------------------------------------------

    def _endpoint(self, address: str, port: int | None) -> str:
        address = str(ipaddress.ip_address(address))
        matches = [ep for ep in self.endpoints if ep[0] == address and (port is None or ep[1] == port)]
        if len(matches) != 1:
            raise ValueError(f"{address}{'' if port is None else f':{port}'} is not exactly one endpoint of this agent")
        return f"1.3.6.1.6.1.1.{self._index[matches[0]]}"

    def set_value(self, address: str, oid: str, value: int | str, *, rate: float | None = None,
                  port: int | None = None) -> None:
        """From now on, the agent at `address` (and `port`, when it serves several) answers
        `value` for `oid`, rising by `rate` per second (None: the data file's rate). Only
        records marked `labvalue` in the data file change. Effective at the next request."""
        self.set_values(address, {oid: value}, rates={oid: rate}, port=port)

    def set_values(self, address: str, values: dict[str, int | str], *, rates: dict[str, float | None] | None = None,
                   port: int | None = None) -> None:
        """Several set_value changes in one transaction (the agent never shows half of them)."""
        endpoint = self._endpoint(address, port)
        now = time.time()
        rows = [(endpoint, oid.strip("."), str(v), (rates or {}).get(oid), now) for oid, v in values.items()]
        db = sqlite3.connect(self.db_path)
        try:
            with db:
                db.executemany("INSERT OR REPLACE INTO overrides VALUES (?, ?, ?, ?, ?)", rows)
        finally:
            db.close()

    def reset(self, address: str, oids: Iterable[str] | None = None, *, port: int | None = None) -> None:
        """Back to the data file's values (all OIDs of the endpoint, or the given ones)."""
        endpoint = self._endpoint(address, port)
        db = sqlite3.connect(self.db_path)
        try:
            with db:
                if oids is None:
                    db.execute("DELETE FROM overrides WHERE endpoint = ?", (endpoint,))
                else:
                    db.executemany("DELETE FROM overrides WHERE endpoint = ? AND oid = ?",
                                   [(endpoint, o.strip(".")) for o in oids])
        finally:
            db.close()

    def vendor_on_battery(self, address: str, vendor: str, *, port: int | None = None) -> None:
        """Mains lost on a UPS served from data file `vendor` (UPS_VENDORS): the vendor's own
        objects say so, in its own codes and units; 25 minutes left."""
        self.set_values(address, dict(UPS_VENDORS[vendor]), port=port)

    def ups_on_battery(self, address: str, *, minutes_remaining: int = 30, port: int | None = None) -> None:
        """Mains lost: upsOutputSource battery(5), upsSecondsOnBattery counting from 0, input 0 V,
        an alarm (upsAlarmOnBattery), charge and minutes remaining going down."""
        self.set_values(address, {
            UPS_OUTPUT_SOURCE: 5, UPS_SECONDS_ON_BATTERY: 0, UPS_INPUT_VOLTAGE_1: 0, UPS_ALARMS_PRESENT: 1,
            UPS_MINUTES_REMAINING: minutes_remaining, UPS_CHARGE_REMAINING: 90,
        }, rates={UPS_SECONDS_ON_BATTERY: 1.0}, port=port)

    def ups_battery_low(self, address: str, *, minutes_remaining: int = 3, port: int | None = None) -> None:
        """On battery and nearly empty: upsBatteryStatus batteryLow(3)."""
        self.ups_on_battery(address, minutes_remaining=minutes_remaining, port=port)
        self.set_values(address, {UPS_BATTERY_STATUS: 3, UPS_CHARGE_REMAINING: 8, UPS_ALARMS_PRESENT: 2}, port=port)

    def ups_on_mains(self, address: str, *, port: int | None = None) -> None:
        """Mains back: the data file's values again."""
        self.reset(address, port=port)

    def port_down(self, address: str, if_index: int = SWITCH_UPLINK_INDEX, *, port: int | None = None) -> None:
        """A switch port goes down (ifOperStatus down(2)); its counters stop."""
        self.set_values(address, {
            f"{IF_OPER_STATUS}.{if_index}": 2,
            f"{IF_HC_IN_OCTETS}.{if_index}": 1000, f"{IF_HC_OUT_OCTETS}.{if_index}": 1000,
        }, rates={f"{IF_HC_IN_OCTETS}.{if_index}": 0, f"{IF_HC_OUT_OCTETS}.{if_index}": 0}, port=port)

    def port_up(self, address: str, if_index: int = SWITCH_UPLINK_INDEX, *, port: int | None = None) -> None:
        self.reset(address, [f"{IF_OPER_STATUS}.{if_index}", f"{IF_HC_IN_OCTETS}.{if_index}",
                             f"{IF_HC_OUT_OCTETS}.{if_index}"], port=port)


class Snmpd(ServerProcess):
    """Debian's net-snmp snmpd (5.9) on `address`:`port` (default: 127.0.0.1 and a free port).

    - community: v2c read-only community; v3_user: an authPriv user (createUser, rouser priv).
    - overrides: {OID: integer} served as scalars (`override OID integer N`), e.g. UPS-MIB.
    - netns: run in this namespace (it then serves that namespace's interfaces).
    Context manager. Raises SnmpLabError when snmpd is missing or does not answer.
    """

    stop_timeout_s = 5.0

    def __init__(self, *, community: str = "public", v3_user: V3User | None = None,
                 overrides: dict[str, int] | None = None, address: str = "127.0.0.1", port: int | None = None,
                 netns: str | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="fleetmon-snmpd-"))
        self.address = address
        self.port = port if port is not None else free_udp_ports(1)[0]
        self.community = community
        self.netns = netns
        self.log_path = self.dir / "snmpd.log"
        super().__init__()
        lines = [f"agentaddress udp:{address}:{self.port}", f"rocommunity {community} default"]
        if v3_user is not None:
            lines += [f'createUser {v3_user.name} {v3_user.auth_proto} "{v3_user.auth_key}" '
                      f'{v3_user.priv_proto} "{v3_user.priv_key}"', f"rouser {v3_user.name} priv"]
        lines += [f"override {oid} integer {value}" for oid, value in (overrides or {}).items()]
        self.conf_path = self.dir / "snmpd.conf"
        self.conf_path.write_text("\n".join(lines) + "\n")
        self.conf_path.chmod(0o600)

    def start(self) -> Self:
        if not Path(SNMPD).exists():
            raise SnmpLabError(f"{SNMPD} not found (apt-get install snmpd)")
        cmd = [SNMPD, "-f", "-C", "-c", str(self.conf_path), "-Lf", str(self.log_path), "-p",
               str(self.dir / "snmpd.pid"), "-I", "-smux"]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        # Its persistent state (engine boots, localised user keys) goes to the temporary folder.
        env = {**os.environ, "SNMP_PERSISTENT_DIR": str(self.dir / "persist"), "MIBS": ""}
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, env=env, start_new_session=True)
        deadline = time.monotonic() + 15.0
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise SnmpLabError(f"snmpd exited ({self._proc.returncode}); log {self.log_path}:\n{self._log_tail()}")
            if snmp_get_v2c(self.address, self.port, self.community, SYS_UPTIME, timeout_s=0.2) is not None:
                return self
        self.stop()
        raise SnmpLabError(f"snmpd did not answer within 15 s; log {self.log_path}:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
