"""Lab network: thousands of pingable device addresses in network namespaces, with per-site
behaviour (healthy, slow, lossy, dead) and devices taken down and up at run time.

Layout of one `LabNet` (the fleetmon daemon and reference tools run in the root namespace):

    root namespace ── veth fml-<name>-h ── fmlab-<name>-healthy   the kernel answers echoes
                   └─ veth fml-<name>-i ── fmlab-<name>-impaired  lab/responder.py answers
                                                                  with delay and loss

- Each site gets its own range of the RFC 2544 benchmarking range 198.18.0.0/15, routed as the
  few CIDR blocks covering it (IPv6 sites: a /64 of the ULA prefix fd6c:6162::/48), from the
  root namespace to the namespace that serves the site's behaviour. Blocks are allocated under
  a lock against the routes that exist (`Allocator`), so several labs (tests while a demo runs)
  never overlap. `add_sites` adds thousands of sites with a few `ip -batch` processes.
- Inside a namespace the site's device addresses are one or a few `local` routes on lo (AnyIP):
  every address in them is local and answered. Measured here: adding 10,000 /32 addresses to one
  interface takes 2.3 s (the kernel scans the interface's address list on each add), a local
  route takes microseconds.
- A down device is a blackhole /32 (/128) route in table 100, which a policy rule consults before
  the `local` table: its echo requests vanish without a reply or an ICMP error, so a prober sees
  a timeout. Thousands are added or removed with one `ip -batch`. Spare addresses of a block
  are not local and vanish as well (ip_forward=0).
- Behaviour changes at run time move a site between the two namespaces (its local routes, its
  blackholes and its root route) and update the responder's rules (SIGHUP, acknowledged).
- `close()` stops the responder, deletes both namespaces and the root-side veths (the kernel
  drops the routes through them) and the owner record; `cleanup_stale()` does the same for labs
  whose owner process died.
- Both pools are routed `unreachable` in the root namespace (lowest priority, kept for good):
  when a lab is gone its addresses hit that route and the kernel refuses to send, so lab
  traffic can never follow the default route off the machine.

Needs root. Not thread-safe: one thread drives a LabNet.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import ipaddress
import json
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

POOL4 = ipaddress.IPv4Network("198.18.0.0/15")  # RFC 2544; never 192.0.2.0/24 (this machine's eth0)
POOL6 = ipaddress.IPv6Network("fd6c:6162::/48")  # ULA "lab"; fd00::/64 is on eth0 here
SITE_PREFIXLEN6 = 64
NS_PREFIX = "fmlab-"
STATE_DIR = Path("/run/fmlab")  # owner records (<name>.json) and the allocation lock
DOWN_TABLE = 100  # blackhole routes of down devices
DOWN_RULE_PREF, LOCAL_RULE_PREF = 50, 100  # the down table must win over the local table (pref 0)
RESPONDER_START_S = 10.0
RESPONDER_RELOAD_S = 5.0
NAME_RE = re.compile(r"^[a-z0-9]{1,8}$")  # keeps veth names within IFNAMSIZ (15 characters)
NS_RE = re.compile(rf"^{NS_PREFIX}([a-z0-9]{{1,8}})-(healthy|impaired)$")


class LabError(RuntimeError):
    """A lab operation failed (an `ip` command, the responder); the message says which and why."""


@dataclass(frozen=True)
class Behaviour:
    """How a site answers echo requests.

    - delay_ms: added one-way reply delay, ms (≥ 0).
    - loss_pct: share of echo requests left unanswered at random, % (0–100; 100 = dead site).
    Raises ValueError when out of range.
    """

    delay_ms: float = 0.0
    loss_pct: float = 0.0

    def __post_init__(self) -> None:
        if self.delay_ms < 0:
            raise ValueError(f"delay_ms must be ≥ 0, got {self.delay_ms}")
        if not 0 <= self.loss_pct <= 100:
            raise ValueError(f"loss_pct must be within 0–100, got {self.loss_pct}")

    @property
    def impaired(self) -> bool:
        """True when the responder must answer instead of the kernel."""
        return self.delay_ms > 0 or self.loss_pct > 0

    @property
    def dead(self) -> bool:
        return self.loss_pct >= 100


@dataclass(eq=False)
class _Namespace:
    name: str  # network namespace, fmlab-<lab>-healthy | fmlab-<lab>-impaired
    veth: str  # root-side end of its veth
    gw4: ipaddress.IPv4Address  # namespace-side veth addresses: next hops of the site routes
    gw6: ipaddress.IPv6Address
    root4: ipaddress.IPv4Address  # root-side veth address: where devices reach the daemon (traps)


@dataclass(eq=False)
class _Site:
    name: str
    blocks: list[IPNetwork]  # routed from the root namespace; exactly the site's range
    addresses: list[IPAddress]
    behaviour: Behaviour
    ns: _Namespace
    local_routes: list[IPNetwork]  # in the namespace: exactly the device addresses
    dead_since: float | None = None  # time.time() when the behaviour became 100 % loss


def _run(cmd: list[str], stdin: str | None = None) -> str:
    """Run a command; returns stdout, raises LabError with the command and its stderr."""
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise LabError(f"{cmd[0]} not found (install iproute2 and procps)") from exc
    if proc.returncode != 0:
        raise LabError(f"`{' '.join(cmd)}` failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def _ip(*args: str, ns: str | None = None) -> str:
    return _run(["ip", *(["-n", ns] if ns else []), *args])


def _ip_batch(lines: list[str], ns: str | None = None, family: str | None = None) -> None:
    """Many `ip` commands in one process: what makes thousands of changes fast."""
    if lines:
        _run(["ip", *(["-n", ns] if ns else []), *([family] if family else []), "-batch", "-"], "\n".join(lines) + "\n")


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """Serialises allocation and cleanup between processes (tests beside a running demo)."""
    STATE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(STATE_DIR / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _guard_pools() -> None:
    """Route both whole pools to `unreachable` in the root namespace (idempotent, kept for good).

    Site blocks are more specific and win while their lab lives; once a lab's namespaces are
    gone (closed, crashed, deleted by someone else) its addresses fall back to this route and
    the kernel refuses to send (EHOSTUNREACH) instead of following the default route off the
    machine. Lab traffic must never leave it."""
    for pool in (POOL4, POOL6):
        _ip(f"-{pool.version}", "route", "replace", "unreachable", str(pool), "metric", "4294967295")


def _require_root() -> None:
    if os.geteuid() != 0:
        raise RuntimeError(
            "the lab network needs root (it creates network namespaces and routes); "
            "run as root, e.g. `sudo make test`"
        )
    if shutil.which("ip") is None:
        raise RuntimeError("the lab network needs iproute2's `ip` (apt-get install iproute2)")


def _process_start(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot, or None when it does not exist;
    with the pid it identifies a process even after its pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[19])  # field 22, counted after "pid (comm)"


def _running(pid: int) -> bool:
    """True while a process exists and has not exited (a zombie only waits to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _taken_networks(version: int) -> list[IPNetwork]:
    """Every destination in every routing table of the root namespace, of one IP version."""
    routes = json.loads(_ip(f"-{version}", "-j", "route", "show", "table", "all") or "[]")
    taken = []
    for route in routes:
        with contextlib.suppress(ValueError):
            taken.append(ipaddress.ip_network(route.get("dst", ""), strict=False))
    return taken


class Allocator:
    """Free space of one pool, handed out in blocks that overlap none of the routes taken.

    Built once from the taken destinations (`_taken_networks`): routes inside the pool are
    sorted and merged into the free gaps between them, O(k log k) for k routes; routes
    covering the whole pool (default, fd00::/8 …) do not count. `take()` is first fit for
    the first block and next fit after it: a cursor moves forward through the gaps and never
    back, so m blocks cost O(k log k + k + m) instead of comparing every new block with every
    taken one. Blocks skipped behind the cursor stay free for the next Allocator (the next
    batch re-reads the routes). Not shared between threads or processes: allocate under
    `_locked()` and add the routes before releasing it.
    """

    def __init__(self, pool: IPNetwork, taken: Iterable[IPNetwork]):
        self.pool = pool
        inside = sorted(
            (int(n.network_address), int(n.broadcast_address))
            for n in taken
            if n.version == pool.version and n.prefixlen > pool.prefixlen and n.overlaps(pool)
        )
        gaps, at, last = [], int(pool.network_address), int(pool.broadcast_address)
        for low, high in inside:
            if low > at:
                gaps.append([at, low - 1])
            at = max(at, high + 1)
        if at <= last:
            gaps.append([at, last])
        self._gaps = gaps  # [first, last] free addresses as ints, ascending, disjoint
        self._cursor = 0

    def take(self, size: int, align: int = 1) -> int:
        """First address (int) of `size` free consecutive addresses starting at a multiple of
        `align` (a power of two; align = size gives a CIDR block). Raises LabError when full."""
        for i in range(self._cursor, len(self._gaps)):
            gap = self._gaps[i]
            start = -(-gap[0] // align) * align
            if start + size - 1 <= gap[1]:
                gap[0] = start + size  # an alignment remainder before `start` stays for later batches
                self._cursor = i
                return start
        raise LabError(f"no {size} free addresses left in {self.pool} (stale labs? see lab.net.cleanup_stale)")

    def block(self, prefixlen: int) -> IPNetwork:
        """A free CIDR block of `prefixlen`. Raises LabError when full."""
        size = 1 << (self.pool.max_prefixlen - prefixlen)
        return ipaddress.ip_network((self.take(size, size), prefixlen))


def _ns_names(lab: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """((healthy namespace, veth), (impaired namespace, veth)) of a lab name."""
    return (f"{NS_PREFIX}{lab}-healthy", f"fml-{lab}-h"), (f"{NS_PREFIX}{lab}-impaired", f"fml-{lab}-i")


def _remove_lab(lab: str, owned_workdir: str | None) -> None:
    """Remove everything of lab `lab` that still exists: processes in its namespaces, veths
    (with the root routes through them), namespaces, owner record, owned work dir."""
    existing = set(_netns_list())
    for ns, veth in _ns_names(lab):
        if ns in existing:
            pids = [int(p) for p in _ip("netns", "pids", ns).split()]
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 2.0
            while pids and time.monotonic() < deadline:
                pids = [p for p in pids if _running(p)]
                time.sleep(0.02)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if Path(f"/sys/class/net/{veth}").exists():
            _ip("link", "del", veth)
        if ns in existing:
            _ip("netns", "del", ns)
    (STATE_DIR / f"{lab}.json").unlink(missing_ok=True)
    if owned_workdir:
        shutil.rmtree(owned_workdir, ignore_errors=True)


def _netns_list() -> list[str]:
    return [line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()]


def cleanup_stale() -> list[str]:
    """Remove the leftovers of labs whose owner process is gone (a crashed or killed run):
    namespaces, veths and routes, responder processes, records, owned work dirs.

    Labs of live processes are left alone, so this is safe while other labs run.
    Returns the names of the labs removed. Raises RuntimeError when not root.
    """
    _require_root()
    removed = []
    with _locked():
        records = {}
        for path in STATE_DIR.glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                records[path.stem] = json.loads(path.read_text())
        labs = set(records)
        # A namespace without a record is stale too: records are written before namespaces.
        labs |= {m[1] for ns in _netns_list() if (m := NS_RE.match(ns))}
        for lab in sorted(labs):
            record = records.get(lab)
            if record and _process_start(record["pid"]) == record["start"]:
                continue
            _remove_lab(lab, record.get("owned_workdir") if record else None)
            removed.append(lab)
    return removed


class _Responder:
    """lab/responder.py running in the impaired namespace, driven through its rules file."""

    def __init__(self, ns: str, workdir: Path, rules: list[dict]):
        self.rules_path = workdir / "responder-rules.json"
        self.log_path = workdir / "responder.log"
        self.generation = 0
        self._write(rules)
        repo = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
        cmd = ["ip", "netns", "exec", ns, sys.executable, "-m", "lab.responder"]
        cmd += ["--rules", str(self.rules_path), "--log", str(self.log_path), "--parent-pid", str(os.getpid())]
        with open(self.log_path, "ab") as stderr:
            # Own session: a Ctrl-C meant for the owner does not kill the responder before
            # the owner's orderly close().
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, env=env, start_new_session=True
            )
        self._buffer = b""
        try:
            self._expect("ready", RESPONDER_START_S)
        except LabError:
            self.stop()
            raise

    def _write(self, rules: list[dict]) -> None:
        tmp = self.rules_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"generation": self.generation, "rules": rules}, indent=1))
        os.replace(tmp, self.rules_path)  # the responder never reads a half-written file

    def reload(self, rules: list[dict]) -> None:
        """Apply new rules; returns once the responder has loaded them. Raises LabError."""
        self.generation += 1
        self._write(rules)
        self.proc.send_signal(signal.SIGHUP)
        self._expect(f"loaded {self.generation}", RESPONDER_RELOAD_S)

    def _expect(self, wanted: str, timeout_s: float) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                text = line.decode(errors="replace").strip()
                if text == wanted:
                    return
                if text.startswith("error"):
                    raise LabError(f"responder: {text}")
            left = deadline - time.monotonic()
            ready = select.select([self.proc.stdout], [], [], max(left, 0))[0] if left > 0 else []
            chunk = os.read(self.proc.stdout.fileno(), 4096) if ready else b""
            if not chunk:
                tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
                why = "exited" if self.proc.poll() is not None else f"no {wanted!r} within {timeout_s} s"
                raise LabError(f"responder {why}; log {self.log_path}:\n{tail}")
            self._buffer += chunk

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


class LabNet:
    """A lab network of sites whose device addresses answer ICMP echo from the root namespace.

    Usable as a context manager; `close()` also runs at interpreter exit if forgotten. Raises
    RuntimeError when not root, ValueError for a bad or taken name.

    - name: 1–8 characters [a-z0-9], unique among running labs; random when None.
    - workdir: where the responder's rules and log go; kept. None: a temp dir removed on close.
    """

    def __init__(self, name: str | None = None, *, workdir: str | os.PathLike | None = None):
        _require_root()
        self.name = name or secrets.token_hex(3)
        if not NAME_RE.match(self.name):
            raise ValueError(f"lab name must be 1–8 characters a-z, 0-9, got {self.name!r}")
        self._closed = True  # until this lab owns its name: close() must not touch another lab
        self._sites: dict[str, _Site] = {}
        self._site_of: dict[IPAddress, _Site] = {}
        self._down: dict[IPAddress, float] = {}
        self._responder: _Responder | None = None
        self._namespaces: list[_Namespace] = []
        self._owned_workdir: str | None = None
        try:
            with _locked():
                _guard_pools()
                record = STATE_DIR / f"{self.name}.json"
                if record.exists() or any(ns.startswith(f"{NS_PREFIX}{self.name}-") for ns in _netns_list()):
                    raise ValueError(f"lab name {self.name!r} is in use (or stale: lab.net.cleanup_stale())")
                if workdir is None:
                    self._owned_workdir = tempfile.mkdtemp(prefix=f"fmlab-{self.name}-")
                self.workdir = Path(workdir or self._owned_workdir)  # type: ignore[arg-type]
                self.workdir.mkdir(parents=True, exist_ok=True)
                # The record goes first: whatever exists of this lab is then found by cleanup_stale().
                owner = {"pid": os.getpid(), "start": _process_start(os.getpid()), "owned_workdir": self._owned_workdir}
                record.write_text(json.dumps(owner))
                self._closed = False
                atexit.register(self.close)
                pools = Allocator(POOL4, _taken_networks(4)), Allocator(POOL6, _taken_networks(6))
                (healthy, veth_h), (impaired, veth_i) = _ns_names(self.name)
                self._healthy = self._make_namespace(healthy, veth_h, False, *pools)
                self._impaired = self._make_namespace(impaired, veth_i, True, *pools)
        except BaseException:
            self.close()  # outside the lock: close() takes it
            raise

    def _make_namespace(self, ns: str, veth: str, impaired: bool, pool4: Allocator, pool6: Allocator) -> _Namespace:
        link4, link6 = pool4.block(31), pool6.block(64)
        root4, gw4 = link4[0], link4[1]
        root6, gw6 = link6[1], link6[2]
        _ip("netns", "add", ns)
        namespace = _Namespace(ns, veth, gw4, gw6, root4)  # type: ignore[arg-type]
        self._namespaces.append(namespace)
        _ip("link", "add", veth, "type", "veth", "peer", "name", "up0", "netns", ns)
        _ip_batch([
            f"address add {root4}/31 dev {veth}",
            f"address add {root6}/64 dev {veth} nodad",
            f"link set {veth} up",
        ])
        rules = [  # down devices (table DOWN_TABLE) are looked up before local addresses
            f"rule add pref {DOWN_RULE_PREF} lookup {DOWN_TABLE}",
            f"rule add pref {LOCAL_RULE_PREF} lookup local",
            "rule del pref 0 lookup local",
        ]
        _ip_batch([
            "link set lo up",
            "link set up0 up",
            f"address add {gw4}/31 dev up0",
            f"address add {gw6}/64 dev up0 nodad",
            f"route add default via {root4}",
            f"route add default via {root6}",
            *rules,
        ], ns=ns)
        _ip_batch(rules, ns=ns, family="-6")
        # ip_forward=0: packets to spare addresses of a block are dropped without an ICMP error.
        # The ICMP rate limits need no change: they spare echo replies (icmp_ratemask, IPv6
        # informational messages), the responder's raw sockets bypass them, and no ICMP errors
        # are sent.
        sysctls = ["net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0"]
        if impaired:  # the responder answers instead of the kernel
            sysctls += ["net.ipv4.icmp_echo_ignore_all=1", "net.ipv6.icmp.echo_ignore_all=1"]
        _run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", *sysctls])
        return namespace

    # --- sites --------------------------------------------------------------------------------

    def add_site(self, site: str, count: int, behaviour: Behaviour = Behaviour(), *, ipv6: bool = False) -> list[IPAddress]:
        """Add a site of `count` devices; returns their addresses (IPv4 from 198.18.0.0/15, or
        IPv6 from fd6c:6162::/48 with ipv6=True), consecutive. Raises ValueError for a
        duplicate site or count < 1, LabError when the pool is full."""
        return self.add_sites([(site, count, behaviour)], ipv6=ipv6)[0]

    def add_sites(self, sites: Sequence[tuple[str, int, Behaviour]], *, ipv6: bool = False) -> list[list[IPAddress]]:
        """Add many sites at once, each (name, device count, behaviour); returns each site's
        addresses, in order. All or none: on an error the lab stays as it was. A few `ip`
        processes whatever the number of sites, which is what builds 100,000 devices in
        seconds. Errors as add_site.

        IPv4 sites take consecutive ranges of count + 1 addresses (the first is a spare that
        never answers: neighbouring sites stay apart), not power-of-two blocks: 100,000
        devices in sites of 11–43 fit the /15 only that way. A range is routed as the few CIDR
        blocks that cover it exactly. IPv6 sites take a /64 each.
        """
        self._check_open()
        names = [name for name, _, _ in sites]
        for name, count, _ in sites:
            if name in self._sites or names.count(name) > 1:
                raise ValueError(f"site {name!r} exists already")
            if count < 1:
                raise ValueError(f"a site needs at least one device, got {count}")
            if not ipv6 and count >= POOL4.num_addresses:
                raise ValueError(f"{count} devices do not fit in {POOL4}")
        pool = POOL6 if ipv6 else POOL4
        added: list[_Site] = []
        with _locked():
            free = Allocator(pool, _taken_networks(pool.version))
            for name, count, behaviour in sites:
                if ipv6:
                    blocks: list[IPNetwork] = [free.block(SITE_PREFIXLEN6)]
                    first = blocks[0].network_address + 1
                else:
                    start = free.take(count + 1)
                    blocks = list(ipaddress.summarize_address_range(ipaddress.IPv4Address(start), ipaddress.IPv4Address(start + count)))
                    first = ipaddress.IPv4Address(start + 1)
                addresses = [first + i for i in range(count)]
                local_routes = list(ipaddress.summarize_address_range(addresses[0], addresses[-1]))
                ns = self._impaired if behaviour.impaired else self._healthy
                added.append(_Site(name, blocks, addresses, behaviour, ns, local_routes, time.time() if behaviour.dead else None))
            for new in added:
                self._sites[new.name] = new
                self._site_of.update((a, new) for a in new.addresses)
            try:
                if any(new.ns is self._impaired for new in added):
                    self._push_rules()
                for ns in (self._healthy, self._impaired):
                    _ip_batch([f"route add local {net} dev lo" for new in added if new.ns is ns for net in new.local_routes], ns=ns.name)
                _ip_batch([line for new in added for line in self._site_routes(new, "add")])
            except BaseException:
                for new in added:  # the lab's state stays what it was; close() removes the rest
                    del self._sites[new.name]
                    for a in new.addresses:
                        del self._site_of[a]
                raise
        return [new.addresses for new in added]

    def _site_routes(self, site: _Site, verb: str) -> list[str]:
        """`ip -batch` lines routing a site's blocks from the root namespace to its namespace."""
        gw = site.ns.gw6 if site.blocks[0].version == 6 else site.ns.gw4
        return [f"route {verb} {block} via {gw} dev {site.ns.veth}" for block in site.blocks]

    def set_behaviour(self, site: str, behaviour: Behaviour) -> None:
        """Change a site's behaviour at run time; effective when this returns. Raises KeyError."""
        self._check_open()
        current = self._sites[site]
        old_ns, new_ns = current.ns, self._impaired if behaviour.impaired else self._healthy
        if behaviour.dead and not current.behaviour.dead:
            current.dead_since = time.time()
        elif not behaviour.dead:
            current.dead_since = None
        current.behaviour = behaviour
        if new_ns is self._impaired:  # rules first, so no echo to the site gets the old answer
            self._push_rules()
        if new_ns is not old_ns:
            self._move(current, new_ns)
            if old_ns is self._impaired:
                self._push_rules()

    def _move(self, site: _Site, to: _Namespace) -> None:
        """Serve a site from another namespace: down devices and addresses first, then the root
        route, then removal from the old namespace (which no longer gets its traffic)."""
        old = site.ns
        blackholes = [f"{a}/{a.max_prefixlen} table {DOWN_TABLE}" for a in site.addresses if a in self._down]
        _ip_batch([f"route add blackhole {b}" for b in blackholes], ns=to.name)
        _ip_batch([f"route add local {net} dev lo" for net in site.local_routes], ns=to.name)
        site.ns = to
        _ip_batch(self._site_routes(site, "replace"))
        _ip_batch([f"route del local {net} dev lo" for net in site.local_routes], ns=old.name)
        _ip_batch([f"route del blackhole {b}" for b in blackholes], ns=old.name)

    def _push_rules(self) -> None:
        rules = [
            {"prefix": str(block), "delay_ms": s.behaviour.delay_ms, "loss_pct": s.behaviour.loss_pct}
            for s in self._sites.values()
            if s.behaviour.impaired
            for block in s.blocks
        ]
        if self._responder is None:
            self._responder = _Responder(self._impaired.name, self.workdir, rules)
        else:
            self._responder.reload(rules)

    # --- devices ------------------------------------------------------------------------------

    def _lookup(self, address: IPAddress | str) -> tuple[IPAddress, _Site]:
        ip = ipaddress.ip_address(address)
        site = self._site_of.get(ip)
        if site is None:
            raise ValueError(f"{ip} is not a device address of lab {self.name}")
        return ip, site

    def set_down(self, addresses: Iterable[IPAddress | str]) -> None:
        """Take devices down: their echo requests go unanswered, silently. Already down ones
        keep their down_since. Raises ValueError for an address that is not in the lab."""
        self._change(addresses, down=True)

    def set_up(self, addresses: Iterable[IPAddress | str]) -> None:
        """Bring devices back up (they answer as their site's behaviour says)."""
        self._change(addresses, down=False)

    def _change(self, addresses: Iterable[IPAddress | str], down: bool) -> None:
        self._check_open()
        verb = "add" if down else "del"
        by_ns: dict[str, list[str]] = {}
        changed: dict[IPAddress, None] = {}  # ordered set: each address once
        for address in addresses:
            ip, site = self._lookup(address)
            if (ip in self._down) != down and ip not in changed:
                by_ns.setdefault(site.ns.name, []).append(f"route {verb} blackhole {ip}/{ip.max_prefixlen} table {DOWN_TABLE}")
                changed[ip] = None
        for ns, lines in by_ns.items():
            _ip_batch(lines, ns=ns)
        now = time.time()  # after the change took effect: the ground truth for detection latency
        for ip in changed:
            if down:
                self._down[ip] = now
            else:
                del self._down[ip]

    def is_up(self, address: IPAddress | str) -> bool:
        """Ground truth: the device answers (not down, and its site is not 100 % loss)."""
        ip, site = self._lookup(address)
        return ip not in self._down and not site.behaviour.dead

    def down_since(self, address: IPAddress | str) -> float | None:
        """time.time() since which the device has not answered (taken down, or its site dead),
        or None while it is up."""
        ip, site = self._lookup(address)
        times = [t for t in (self._down.get(ip), site.dead_since) if t is not None]
        return min(times) if times else None

    # --- introspection ------------------------------------------------------------------------

    @property
    def sites(self) -> list[str]:
        return list(self._sites)

    def addresses(self, site: str) -> list[IPAddress]:
        """Device addresses of a site, in the order add_site returned them. Raises KeyError."""
        return list(self._sites[site].addresses)

    def host_address(self, ns: str) -> ipaddress.IPv4Address:
        """The root namespace's address as seen from namespace `ns` (its veth peer): where a lab
        device sends traps to a daemon listening on 0.0.0.0. Raises KeyError."""
        return next(n.root4 for n in self._namespaces if n.name == ns)

    def namespace_of(self, address: IPAddress | str) -> str:
        """Name of the network namespace that serves `address` now (a site moves between the
        healthy and the impaired namespace when its behaviour changes). Raises ValueError."""
        return self._lookup(address)[1].ns.name

    def behaviour(self, site: str) -> Behaviour:
        return self._sites[site].behaviour

    @property
    def namespaces(self) -> list[str]:
        return [ns.name for ns in self._namespaces]

    @property
    def blocks(self) -> list[IPNetwork]:
        """The site blocks routed from the root namespace (an IPv4 site has a few)."""
        return [block for s in self._sites.values() for block in s.blocks]

    @property
    def responder_pid(self) -> int | None:
        return self._responder.proc.pid if self._responder else None

    # --- lifecycle ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"lab {self.name} is closed")

    def close(self) -> None:
        """Remove every namespace, route, process and file this lab made. Idempotent."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        if self._responder is not None:
            self._responder.stop()
        with _locked():
            _remove_lab(self.name, self._owned_workdir)

    def __enter__(self) -> "LabNet":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LabNet({self.name!r}, sites={len(self._sites)}, down={len(self._down)}, closed={self._closed})"
