"""The lab itself, observed with an independent tool: the system's fping 5.1 in the root
namespace, where the fleetmon daemon runs too.

Only lab addresses are pinged, and only while their lab is open (a closed lab's addresses
would follow the default route off the machine).
"""

from __future__ import annotations

import csv
import ipaddress
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from lab.fleet import CENTRE_SITE, POINT_LIST_COLUMNS, Impairments, build_contract_fleet
from lab.net import POOL4, POOL6, STATE_DIR, Allocator, Behaviour, LabError, LabNet, cleanup_stale
from monitor.core.model import Kind, Status

SUMMARY = re.compile(r"^(\S+)\s+: (.*)$")


def fping(targets, *, count=1, period_ms=20, timeout_ms=300, size=None, ipv6=False) -> dict[str, list[float | None]]:
    """RTTs in ms per target (None = no reply) from `fping -C`; fails on any ICMP error
    message, since the lab promises silence for down devices."""
    cmd = ["fping", "-C", str(count), "-p", str(period_ms), "-t", str(timeout_ms), "-i", "1", "-r", "0"]
    cmd += [*(["-b", str(size)] if size else []), *(["-6"] if ipv6 else []), *map(str, targets)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert "ICMP" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    rtts = {}
    for line in proc.stderr.splitlines():
        if match := SUMMARY.match(line):
            rtts[match[1]] = [None if v == "-" else float(v) for v in match[2].split()]
    assert len(rtts) == len(set(map(str, targets))), proc.stderr
    return rtts


def answered(rtts: dict[str, list[float | None]]) -> set[str]:
    return {target for target, values in rtts.items() if any(v is not None for v in values)}


def alive(targets, timeout_ms=300) -> set[str]:
    """Targets answering one echo, sent as fast as fping goes (`-i0`): for thousands."""
    cmd = ["fping", "-a", "-i", "0", "-r", "0", "-t", str(timeout_ms), *map(str, targets)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return set(proc.stdout.split())


@pytest.mark.root
def test_healthy_site_answers_down_device_is_silent_until_up(labnet):
    net = labnet()
    addresses = net.add_site("site", 4)
    assert all(a in POOL4 for a in addresses) and len(set(addresses)) == 4
    assert answered(fping(addresses, count=3)) == set(map(str, addresses))

    before = time.time()
    net.set_down(addresses[1:3])
    rtts = fping(addresses, count=2)
    assert answered(rtts) == {str(addresses[0]), str(addresses[3])}
    assert not net.is_up(addresses[1]) and net.is_up(addresses[0])
    assert before <= net.down_since(addresses[1]) <= time.time() and net.down_since(addresses[0]) is None

    net.set_up([addresses[1]])
    assert answered(fping(addresses, count=2)) == {str(addresses[0]), str(addresses[1]), str(addresses[3])}
    assert net.is_up(addresses[1]) and net.down_since(addresses[1]) is None
    with pytest.raises(ValueError, match="not a device address"):
        net.is_up(POOL4[-2])
    with pytest.raises(ValueError, match="exists already"):
        net.add_site("site", 1)


@pytest.mark.root
def test_slow_site_delays_replies_and_healthy_site_beside_it_does_not(labnet):
    net = labnet()
    slow = net.add_site("slow", 3, Behaviour(delay_ms=250))
    fast = net.add_site("fast", 2)
    rtts = fping(slow + fast, count=3, period_ms=100, timeout_ms=1000)
    for address in slow:
        assert all(v is not None and 245 <= v <= 400 for v in rtts[str(address)]), rtts
    for address in fast:
        assert all(v is not None and v < 50 for v in rtts[str(address)]), rtts


@pytest.mark.root
def test_lossy_site_loses_a_binomially_plausible_share(labnet):
    net = labnet()
    addresses = net.add_site("lossy", 4, Behaviour(loss_pct=20))
    rtts = fping(addresses, count=60, period_ms=20, timeout_ms=200)
    values = [v for vs in rtts.values() for v in vs]
    n, p = len(values), 0.20
    lost = values.count(None)
    sigma = math.sqrt(n * p * (1 - p))
    # ±4.5 σ: a healthy lab fails this about once in 150,000 runs; 0 % or 40 % loss never passes.
    assert n == 240 and abs(lost - n * p) <= 4.5 * sigma, f"lost {lost} of {n}"
    assert net.is_up(addresses[0])  # lossy is up in the ground truth


@pytest.mark.root
def test_behaviour_changes_at_run_time_and_down_devices_stay_down(labnet):
    net = labnet()
    addresses = net.add_site("site", 3)
    net.set_down([addresses[0]])
    since = net.down_since(addresses[0])

    net.set_behaviour("site", Behaviour(delay_ms=150))
    rtts = fping(addresses, count=2, period_ms=50, timeout_ms=800)
    assert rtts[str(addresses[0])] == [None, None]
    assert all(v is not None and 145 <= v <= 300 for a in addresses[1:] for v in rtts[str(a)]), rtts

    net.set_behaviour("site", Behaviour())
    rtts = fping(addresses, count=2)
    assert rtts[str(addresses[0])] == [None, None]
    assert all(v is not None and v < 50 for a in addresses[1:] for v in rtts[str(a)]), rtts

    before = time.time()
    net.set_behaviour("site", Behaviour(loss_pct=100))  # a dead site
    assert answered(fping(addresses, count=2)) == set()
    assert not net.is_up(addresses[1]) and before <= net.down_since(addresses[1]) <= time.time()
    assert net.down_since(addresses[0]) == since  # down before the site died


@pytest.mark.root
def test_20000_byte_pings_are_answered_by_kernel_and_responder(labnet):
    net = labnet()
    targets_v4 = [net.add_site("ok4", 1)[0], net.add_site("slow4", 1, Behaviour(delay_ms=50))[0]]
    targets_v6 = [net.add_site("ok6", 1, ipv6=True)[0], net.add_site("slow6", 1, Behaviour(delay_ms=50), ipv6=True)[0]]
    for targets, ipv6 in ((targets_v4, False), (targets_v6, True)):
        rtts = fping(targets, count=2, size=20000, period_ms=100, timeout_ms=1000, ipv6=ipv6)
        assert answered(rtts) == set(map(str, targets)), rtts
        assert all(v >= 50 for v in rtts[str(targets[1])]), rtts


@pytest.mark.root
def test_ipv6_site_answers_and_goes_down(labnet):
    net = labnet()
    addresses = net.add_site("v6", 3, ipv6=True)
    assert all(isinstance(a, ipaddress.IPv6Address) and a in POOL6 for a in addresses)
    assert answered(fping(addresses, count=2, ipv6=True)) == set(map(str, addresses))
    net.set_down([addresses[2]])
    assert answered(fping(addresses, count=2, ipv6=True)) == set(map(str, addresses[:2]))


@pytest.mark.root
def test_ten_thousand_devices_and_ground_truth_match(labnet):
    net = labnet()
    addresses = net.add_site("big", 10_000)
    down = random.Random(7).sample(addresses, 3_000)
    net.set_down(down)
    assert alive(addresses) == {str(a) for a in addresses if net.is_up(a)}
    assert sum(net.is_up(a) for a in addresses) == 7_000


@pytest.mark.root
def test_close_leaves_no_namespace_route_process_or_file():
    net = LabNet()
    net.add_site("ok", 3)
    net.add_site("slow", 2, Behaviour(delay_ms=10))
    net.add_site("v6", 2, Behaviour(loss_pct=5), ipv6=True)
    responder, blocks, workdir = net.responder_pid, net.blocks, net.workdir
    some = [net.addresses(site)[0] for site in ("ok", "v6")]
    assert responder is not None and Path(f"/proc/{responder}").exists() and workdir.exists()
    net.close()
    net.close()  # idempotent

    # What was the lab's is now refused by the kernel: it can never leave by the default route.
    for address in some:
        route = subprocess.run(["ip", "route", "get", str(address)], capture_output=True, text=True)
        assert "No route to host" in route.stderr or route.stdout.startswith("unreachable"), route

    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert f"fmlab-{net.name}-" not in namespaces
    routes = [
        ipaddress.ip_network(r.split()[0], strict=False)
        for v in ("-4", "-6")
        for r in subprocess.run(["ip", v, "route", "show", "table", "all"], capture_output=True, text=True).stdout.splitlines()
        if r.split()[0] not in ("default", "local", "broadcast", "multicast", "anycast", "unreachable")
    ]
    assert not [r for r in routes for b in blocks if r.version == b.version and r.overlaps(b)]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert f"fml-{net.name}-" not in links
    assert not Path(f"/proc/{responder}").exists()
    assert not (STATE_DIR / f"{net.name}.json").exists() and not workdir.exists()
    with pytest.raises(RuntimeError, match="closed"):
        net.set_down(net.addresses("ok"))


@pytest.mark.root
def test_leftovers_of_a_killed_owner_are_cleaned_and_live_labs_kept(labnet):
    live = labnet()
    live_address = live.add_site("live", 1)[0]
    code = (
        "from lab.net import LabNet, Behaviour; import time\n"
        "net = LabNet()\n"
        "net.add_site('s', 2, Behaviour(delay_ms=5))\n"
        "print(net.name, net.responder_pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent)
    name, responder = owner.stdout.readline().split()
    owner.send_signal(signal.SIGKILL)
    owner.wait()

    # The orphaned responder notices its parent is gone and exits (a zombie until init reaps it).
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and _running(int(responder)):
        time.sleep(0.05)
    assert not _running(int(responder))

    assert name in cleanup_stale()
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert f"fmlab-{name}-" not in namespaces and f"fmlab-{live.name}-" in namespaces
    assert answered(fping([live_address])) == {str(live_address)}


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.root
def test_concurrent_labs_get_disjoint_blocks_and_names(labnet):
    first, second = labnet(), labnet()
    a = first.add_site("x", 20)
    b = second.add_site("x", 20)
    assert not any(x.overlaps(y) for x in first.blocks for y in second.blocks)
    with pytest.raises(ValueError, match="in use"):
        LabNet(first.name)
    assert answered(fping(a + b)) == set(map(str, a + b))  # the refused duplicate removed nothing


def test_not_root_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(RuntimeError, match="needs root"):
        LabNet()
    with pytest.raises(RuntimeError, match="needs root"):
        cleanup_stale()



@pytest.mark.root
def test_expected_online_matches_a_hand_computed_case(small_fleet):
    fleet, net = small_fleet, small_fleet.net
    assert fleet.expected_online()[("fleet", "all", "all")] == (32, 32)  # 34 points, 1 removed, 1 under construction

    fleet.fail("SW-002", cascade=False)  # the switch alone: its UPS and cameras are unreachable
    fleet.fail("CAM-0011")
    expected = fleet.expected_online()
    assert len(expected) == 7 + 7 + 5 + 3 + 4 * 5  # fleet, 2 regions, centre, 4 sites × (all + kinds)
    assert expected[("fleet", "all", "all")] == (24, 32)
    assert expected[("fleet", "all", "camera")] == (12, 18)
    assert expected[("fleet", "all", "switch")] == (3, 4)
    assert expected[("fleet", "all", "ups")] == (3, 4)
    assert expected[("fleet", "all", "link")] == (4, 4)
    assert expected[("region", "城关镇", "all")] == (10, 17)  # centre 2 + 7 + 8
    assert expected[("region", "河西乡", "all")] == (14, 15)
    assert expected[("site", "城关镇中心小学", "all")] == (1, 8)
    assert expected[("site", "城关镇人民广场", "camera")] == (4, 4)  # CAM-0005 removed
    assert expected[("site", "河西乡中心小学", "camera")] == (4, 4)  # CAM-0020 under construction
    assert expected[("site", CENTRE_SITE, "all")] == (2, 2)
    # The lab's reality agrees with its ground truth: the cameras behind SW-002 still answer.
    addressed = [d.address for d in fleet.devices if d.address is not None]
    assert alive(addressed) == {str(a) for a in addressed if net.is_up(a)}
    assert str(fleet.device("CAM-0006").address) in alive([fleet.device("CAM-0006").address])

    fleet.restore("SW-002", cascade=False)
    assert fleet.expected_online()[("site", "城关镇中心小学", "all")] == (8, 8)
    fleet.fail("LNK-003")  # a dead line takes the whole site with it
    site3 = [d.address for d in fleet.devices if d.site == "河西乡人民广场"]
    assert alive(site3) == set() and fleet.expected_online()[("site", "河西乡人民广场", "all")] == (0, 8)
    fleet.restore("LNK-003")
    fleet.restore("LNK-004")  # the point under construction stays silent
    assert alive(site3) == set(map(str, site3))
    assert not net.is_up(fleet.device("CAM-0020").address)
    assert fleet.expected_online()[("fleet", "all", "all")] == (32, 32)


@pytest.mark.root
def test_point_list_csv(small_fleet, tmp_path):
    path = tmp_path / "points.csv"
    small_fleet.write_point_list(path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = {row["id"]: row for row in reader}
        assert tuple(reader.fieldnames) == POINT_LIST_COLUMNS
    assert len(rows) == len(small_fleet.devices) == 34
    removed, camera = rows["CAM-0005"], rows["CAM-0001"]
    assert removed["address"] == "" and removed["status"] == "removed"
    device = small_fleet.device("CAM-0001")
    assert camera["address"] == str(device.address) and camera["parent"] == "SW-001" and camera["kind"] == "camera"
    assert set(camera["tags"].split(";")) == device.tags and float(camera["lat"]) == device.lat
    assert rows["LNK-001"]["parent"] == "" and rows["CAM-0020"]["status"] == "construction"


class PaperNet:
    """What build_contract_fleet asks of a LabNet, on paper: addresses from the lab's pool, each
    site's behaviour, which devices are down. Creates nothing (no root, no namespaces): a fleet's
    plan is data, and checking it needs no lab. test_a_contract_fleet_plan_built_in_the_lab
    shows that a real LabNet given the same plan ends in the same state."""

    def __init__(self) -> None:
        self._hosts = POOL4.hosts()
        self._behaviours: dict[str, Behaviour] = {}
        self._site_of: dict[ipaddress.IPv4Address, str] = {}
        self._down: set[ipaddress.IPv4Address] = set()

    def add_site(self, site: str, count: int, behaviour: Behaviour = Behaviour()) -> list[ipaddress.IPv4Address]:
        assert site not in self._behaviours, f"site {site!r} added twice"
        self._behaviours[site] = behaviour
        addresses = [next(self._hosts) for _ in range(count)]
        self._site_of.update(dict.fromkeys(addresses, site))
        return addresses

    def add_sites(self, sites) -> list[list[ipaddress.IPv4Address]]:
        return [self.add_site(site, count, behaviour) for site, count, behaviour in sites]

    def set_down(self, addresses) -> None:
        for address in addresses:
            ip = ipaddress.ip_address(address)
            assert ip in self._site_of, f"{ip} is not in the lab"
            self._down.add(ip)

    def is_up(self, address) -> bool:
        ip = ipaddress.ip_address(address)
        return ip not in self._down and not self._behaviours[self._site_of[ip]].dead

    def behaviour(self, site: str) -> Behaviour:
        return self._behaviours[site]

    @property
    def sites(self) -> list[str]:
        return list(self._behaviours)


def plan_key(d):
    """What a fleet's plan fixes of a device (its address comes from the lab's allocator)."""
    return d.id, d.name, d.kind, d.site, d.region, d.parent, d.status, d.model, d.tags, d.lat, d.lon


def down_ids(fleet) -> set[str]:
    return {d.id for d in fleet.devices if d.address is not None and not fleet.net.is_up(d.address)}


def test_contract_fleet_shape_and_impaired_sites():
    fleet = build_contract_fleet(PaperNet())
    devices, by_id = fleet.devices, {d.id: d for d in fleet.devices}
    kinds = Counter(d.kind for d in devices)
    assert kinds[Kind.CAMERA] == 1850 and kinds[Kind.PLATFORM] == 1 and kinds[Kind.SERVER] == 3
    assert kinds[Kind.SWITCH] == kinds[Kind.LINK] == kinds[Kind.UPS] > 1850 / 40
    assert len(by_id) == len(devices)
    assert all(re.fullmatch(r"CAM-\d{4}|SW-\d{3}|LNK-\d{3}|UPS-\d{3}|PLT-01|SRV-\d\d", i) for i in by_id)
    addresses = [d.address for d in devices if d.address is not None]
    assert len(set(addresses)) == len(addresses)
    assert len({d.region for d in devices}) == 10
    cameras_per_site = Counter(d.site for d in devices if d.kind is Kind.CAMERA)
    assert all(8 <= n <= 40 for n in cameras_per_site.values())
    for d in devices:  # camera/UPS → switch → link, all on one site
        if d.kind in (Kind.CAMERA, Kind.UPS):
            assert by_id[d.parent].kind is Kind.SWITCH and by_id[d.parent].site == d.site
        if d.kind is Kind.SWITCH:
            assert by_id[d.parent].kind is Kind.LINK and by_id[d.parent].site == d.site
    statuses = Counter(d.status for d in devices)
    assert statuses[Status.CONSTRUCTION] > 0 and statuses[Status.REMOVED] > 0 and statuses[Status.ACTIVE] > 2000
    assert Counter(t for d in devices for t in d.tags if t in ("upgraded", "new", "existing")) == {
        "upgraded": 454, "new": 730, "existing": 666,
    }

    behaviours = Counter(fleet.net.behaviour(site) for site in fleet.net.sites)
    assert behaviours[Behaviour(delay_ms=250)] == 2 and behaviours[Behaviour(loss_pct=20)] == 2
    links = {d.site: d for d in devices if d.kind is Kind.LINK}
    dark = [site for site, link in links.items() if not fleet.net.is_up(link.address)]
    assert len(dark) == 1 and not any(fleet.net.is_up(a) for d in devices if d.site == dark[0] and (a := d.address))

    again = build_contract_fleet(PaperNet(), impaired=Impairments(0, 0, 0))  # same seed: same inventory
    assert [plan_key(d) for d in again.devices] == [plan_key(d) for d in devices]


@pytest.mark.root
def test_a_contract_fleet_plan_built_in_the_lab(labnet):
    """A smaller contract fleet (7 sites: 2 slow, 2 lossy, 1 dark, 2 healthy), built for real:
    the lab holds the plan's devices, behaviours and down devices, and fping sees them."""
    paper = build_contract_fleet(PaperNet(), cameras=200)
    fleet = build_contract_fleet(labnet(), cameras=200)
    devices = fleet.devices
    assert [plan_key(d) for d in devices] == [plan_key(d) for d in paper.devices]
    assert {s: fleet.net.behaviour(s) for s in fleet.net.sites} == {s: paper.net.behaviour(s) for s in paper.net.sites}
    assert down_ids(fleet) == down_ids(paper)

    links = {d.site: d for d in devices if d.kind is Kind.LINK}
    (dark,) = [site for site, link in links.items() if not fleet.net.is_up(link.address)]
    slow = next(site for site in links if fleet.net.behaviour(site).delay_ms == 250)
    healthy = next(site for site in links if not fleet.net.behaviour(site).impaired and site != dark)
    targets = [links[slow].address, links[dark].address, links[healthy].address]
    rtts = fping(targets, count=2, period_ms=50, timeout_ms=1000)
    assert all(v is not None and v >= 250 for v in rtts[str(targets[0])]), rtts
    assert rtts[str(targets[1])] == [None, None] and all(v is not None and v < 50 for v in rtts[str(targets[2])])


def test_allocator_skips_taken_routes_first_fit_then_next_fit():
    pool = ipaddress.ip_network("10.0.0.0/24")
    taken = [ipaddress.ip_network(n) for n in ("10.0.0.0/30", "10.0.0.8/29", "10.0.0.64/26", "0.0.0.0/0", "10.9.0.0/16")]
    base = int(pool.network_address)
    free = Allocator(pool, taken)  # free: .4–.7, .16–.63, .128–.255; the default and foreign routes do not count
    assert free.take(4) == base + 4  # first fit
    assert free.take(1) == base + 16
    assert free.block(30) == ipaddress.ip_network("10.0.0.20/30")  # aligned: .17–.19 skipped
    assert free.take(44) == base + 128  # .24–.63 holds only 40
    assert free.take(1) == base + 172  # next fit: the cursor does not go back to .24
    with pytest.raises(LabError, match="no 200 free addresses"):
        free.take(200)
    # The next allocator (the next batch) reads the routes again and finds what was skipped.
    now_taken = [*taken, *map(ipaddress.ip_network, ("10.0.0.4/30", "10.0.0.16/32", "10.0.0.20/30"))]
    assert Allocator(pool, now_taken).take(3) == base + 17


def test_allocator_blocks_are_disjoint_and_fill_the_pool_at_scale():
    """3,000 sites of 12–44 addresses among 300 foreign routes: no block overlaps another or a
    taken route, all lie in the pool, and little space is lost."""
    rng = random.Random(3)
    base = int(POOL4.network_address)
    taken = [ipaddress.ip_network((base + rng.randrange(0, 1 << 17, 64), 26)) for _ in range(300)]
    free = Allocator(POOL4, taken)
    spans = []
    for _ in range(3000):
        size = rng.randint(12, 44)
        start = free.take(size)
        spans.append((start, start + size - 1))
    spans += [_span(free.block(31)) for _ in range(2)]
    allocated, end = sum(hi - lo + 1 for lo, hi in spans), max(hi for _, hi in spans)
    spans += [_span(n) for n in set(taken)]
    spans.sort()
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:])), "overlap"
    assert base <= spans[0][0] and spans[-1][1] <= int(POOL4.broadcast_address)
    taken_below = sum(hi - lo + 1 for lo, hi in spans if hi <= end) - allocated
    assert allocated > 0.95 * (end + 1 - base - taken_below)  # next fit loses only short gap tails


def test_allocator_refuses_when_the_pool_is_full():
    pool = ipaddress.ip_network("198.18.0.0/30")
    free = Allocator(pool, [ipaddress.ip_network("198.18.0.0/31")])
    assert free.take(2) == int(pool.network_address) + 2
    with pytest.raises(LabError, match="no 1 free addresses left in 198.18.0.0/30"):
        free.take(1)


@pytest.mark.root
def test_a_20000_device_fleet_is_built_in_one_batch_and_answers(labnet):
    """The contract shape at scale (≈ 800 sites): every address distinct and in the pool, the
    sites' routes disjoint, and the lab answers as its ground truth says (fping over a sample
    of sites, the impaired ones, the dark ones and the construction points)."""
    net = labnet()
    fleet = build_contract_fleet(net, cameras=17_800, impaired=Impairments(slow=2, lossy=2, dark=2))
    addressed = [d for d in fleet.devices if d.address is not None]
    assert len(fleet.devices) > 20_000 and len({d.address for d in addressed}) == len(addressed)
    assert all(d.address in POOL4 for d in addressed)
    blocks = sorted(net.blocks)
    assert all(a.broadcast_address < b.network_address for a, b in zip(blocks, blocks[1:]))
    sites = list(dict.fromkeys(d.site for d in addressed))
    picked = set(sites[:: len(sites) // 40]) | {s for s in net.sites if net.behaviour(s).impaired}
    sample = [d for d in addressed if d.site in picked or d.status is Status.CONSTRUCTION or not net.is_up(d.address)]
    sure = {str(d.address) for d in sample if net.is_up(d.address) and not net.behaviour(d.site).loss_pct}
    maybe = {str(d.address) for d in sample if net.is_up(d.address)}  # lossy sites lose one echo in five
    assert len(sure) > 500 and len(maybe) < len(sample)
    seen = alive([d.address for d in sample], timeout_ms=1000)
    assert sure <= seen <= maybe


def _span(n) -> tuple[int, int]:
    return int(n.network_address), int(n.broadcast_address)
