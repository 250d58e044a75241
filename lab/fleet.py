"""Lab fleets: device inventories shaped like a 雪亮工程 contract, living on a `LabNet`.

Topology of every site (站点), one lab site each, addresses in this order:

    LNK-nnn  link      far end of the site's dedicated 10 Mbit/s line   parent: none
    SW-nnn   switch    access switch                                    parent: LNK-nnn
    UPS-nnn  ups       site UPS (network card on the switch)            parent: SW-nnn
    CAM-nnnn camera    8–40 Hikvision cameras                           parent: SW-nnn

plus the centre (指挥中心): the video platform PLT-01 and storage servers SRV-nn, no parent.
A few cameras are under construction (延建: address in the lab, nothing answers) or removed
(拆除: no address); both are excluded from online rates. Impaired sites are slow (250 ms reply
delay), lossy (20 % loss) or dark (the line is dead: `fail(LNK-…)`, everything behind it down).

Device ids, names, models, tags, statuses and coordinates depend only on the seed and the sizes
(not on which sites are impaired); addresses come from the LabNet's allocator and may differ
between runs.
"""

from __future__ import annotations

import csv
import itertools
import math
import os
import random
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping, Sequence

from lab.net import Behaviour, LabNet
from lab.snmp import SWITCH_UPLINK  # the lab switch's port that faces the link
from monitor.core.model import Device, Kind, Status

TOWNSHIPS = ("城关镇", "河西乡", "东关镇", "南湖乡", "北山镇", "西坪乡", "石桥镇", "柳林乡", "白沙镇", "青龙乡")
PLACES = (
    "人民广场", "中心小学", "客运站", "农贸市场", "卫生院", "派出所", "政府大院", "十字路口", "加油站", "大桥南",
    "大桥北", "工业园", "火车站", "文化广场", "体育馆", "第一中学", "幼儿园", "商业街", "村委会", "水库大坝",
    "林场", "收费站", "高速路口", "批发市场", "物流园", "敬老院", "汽车站", "滨河路", "长途站", "供电所",
)
CENTRE_SITE = "指挥中心"
BULLET = "DS-2CD3T46WDV3-L"
DOMES = ("DS-2SC3Q140MY-TE", "iDS-2DE72", "DS-2DC6423IW")
BULLET_SHARE = 0.7
# Camera batches of the contract: 454 upgraded, 730 new, 666 existing out of 1,850.
BATCHES = (("upgraded", 454), ("new", 730), ("existing", 666))
MANUFACTURERS = {Kind.CAMERA: "海康威视", Kind.SWITCH: "海康威视", Kind.UPS: "山特"}  # as point lists write them
SLOW = Behaviour(delay_ms=250.0)
LOSSY = Behaviour(loss_pct=20.0)
COUNTY_LAT, COUNTY_LON = 34.8, 108.9  # a county seat; regions lie within ~20 km of it
POINT_LIST_COLUMNS = (
    "id", "name", "kind", "address", "site", "region", "parent", "status", "lat", "lon", "manufacturer", "model",
    "firmware", "serial", "uplink", "tags",
)
CAMERA_FIRMWARE = "V5.7.1 build 220713"  # what the point list records for every lab camera
ALL = "all"  # group of the fleet scope, and kind of all kinds (as in monitor/state/online_rate.py)


@dataclass(frozen=True)
class Impairments:
    """How many sites are slow (250 ms), lossy (20 %) and dark (dead line). Counts ≥ 0."""

    slow: int = 2
    lossy: int = 2
    dark: int = 1

    def __post_init__(self) -> None:
        if min(self.slow, self.lossy, self.dark) < 0:
            raise ValueError(f"impairment counts must be ≥ 0: {self}")

    @property
    def total(self) -> int:
        return self.slow + self.lossy + self.dark


NO_IMPAIRMENTS = Impairments(0, 0, 0)


@dataclass(frozen=True)
class LabFleet:
    """A device inventory whose addresses live on `net`, with its ground truth.

    Not thread-safe, like the LabNet under it.
    """

    devices: list[Device]
    net: LabNet
    _by_id: dict[str, Device] = field(init=False, repr=False, compare=False)
    _children: dict[str, list[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        children: dict[str, list[str]] = defaultdict(list)
        for device in self.devices:
            if device.parent is not None:
                children[device.parent].append(device.id)
        object.__setattr__(self, "_by_id", {d.id: d for d in self.devices})
        object.__setattr__(self, "_children", dict(children))

    def device(self, device_id: str) -> Device:
        """The device with this id. Raises KeyError."""
        return self._by_id[device_id]

    def behind(self, device_id: str) -> list[Device]:
        """Every device whose chain of parents reaches `device_id` (not the device itself)."""
        found, todo = [], list(self._children.get(device_id, ()))
        while todo:
            child = self._by_id[todo.pop()]
            found.append(child)
            todo.extend(self._children.get(child.id, ()))
        return found

    def fail(self, device_id: str, cascade: bool = True) -> None:
        """Take a device down, with cascade everything behind it too (a dead switch takes its
        cameras with it). Raises KeyError for an unknown id."""
        self.net.set_down(d.address for d in self._affected(device_id, cascade) if d.address is not None)

    def restore(self, device_id: str, cascade: bool = True) -> None:
        """Bring a device back up, with cascade everything behind it too. Points that are not
        active stay down: nothing is installed at a point under construction."""
        self.net.set_up(
            d.address for d in self._affected(device_id, cascade) if d.address is not None and d.status is Status.ACTIVE
        )

    def _affected(self, device_id: str, cascade: bool) -> list[Device]:
        return [self._by_id[device_id], *(self.behind(device_id) if cascade else ())]

    def reachable(self) -> set[str]:
        """Ids of the devices that answer now (LabNet.is_up) and whose every parent answers too
        (a camera behind a dead switch cannot be reached)."""
        memo: dict[str, bool] = {}

        def up(device: Device) -> bool:
            if device.id not in memo:
                parent = self._by_id[device.parent] if device.parent else None
                memo[device.id] = (
                    device.address is not None and self.net.is_up(device.address) and (parent is None or up(parent))
                )
            return memo[device.id]

        return {d.id for d in self.devices if up(d)}

    def expected_online(
        self, online: set[str] | None = None, kinds: Iterable[Kind] | None = None
    ) -> dict[tuple[str, str, str], tuple[int, int]]:
        """Ground truth of the online rate: (scope, group, kind) → (online, total).

        Keys as in monitor/state/online_rate.py: scope "fleet" (group "all"), "region" or "site"
        (group = its name); kind a Kind value or "all". total counts active devices only;
        online those in `online`, by default `reachable()` (the network basis). `kinds`: only
        devices of these kinds (a basis such as video applies to cameras only). Groups whose
        devices are all excluded map to (0, 0).
        """
        online = self.reachable() if online is None else online
        wanted = None if kinds is None else set(kinds)
        counts: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
        for device in self.devices:
            if wanted is not None and device.kind not in wanted:
                continue
            counted = device.counted
            for scope, group in (("fleet", ALL), ("region", device.region), ("site", device.site)):
                for kind in (ALL, device.kind.value):
                    counts[(scope, group, kind)][0] += counted and device.id in online
                    counts[(scope, group, kind)][1] += counted
        return {key: (n, total) for key, (n, total) in counts.items()}

    def write_point_list(self, path: str | os.PathLike) -> None:
        """Write the point list (点位明细表) as UTF-8 CSV with the columns of
        POINT_LIST_COLUMNS; empty cells for missing values, tags ';'-separated and sorted."""
        with open(path, "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(POINT_LIST_COLUMNS)
            for d in self.devices:
                writer.writerow([
                    d.id, d.name, d.kind.value, "" if d.address is None else str(d.address), d.site, d.region,
                    d.parent or "", d.status.value, _coordinate(d.lat), _coordinate(d.lon), d.manufacturer or "",
                    d.model or "", d.firmware or "", d.serial or "", d.uplink or "", ";".join(sorted(d.tags)),
                ])


def _coordinate(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


@dataclass(frozen=True)
class _SitePlan:
    region: str
    name: str
    cameras: int
    behaviour: Behaviour = Behaviour()
    dark: bool = False


def build_contract_fleet(
    net: LabNet,
    *,
    cameras: int = 1850,
    regions: Sequence[str] = TOWNSHIPS,
    seed: int = 0,
    impaired: Impairments = Impairments(),
    servers: int = 3,
) -> LabFleet:
    """The contract's fleet: `cameras` cameras in sites of 8–40 spread evenly over `regions`,
    each site with its link, access switch and UPS; the centre with the platform and `servers`
    storage servers; about 0.5 % of the cameras under construction and 0.3 % removed.
    With the defaults: 1,850 cameras in 10 townships, 2 slow, 2 lossy and 1 dark site.
    Raises ValueError when there are fewer sites than impairments asked for."""
    if cameras < 1 or not regions:
        raise ValueError("a fleet needs at least one camera and one region")
    rng = random.Random(seed)
    sizes = _site_sizes(cameras, rng)
    per_region: dict[str, list[int]] = defaultdict(list)
    for i, size in enumerate(sizes):
        per_region[regions[i * len(regions) // len(sizes)]].append(size)
    plan = [
        _SitePlan(region, f"{region}{place}", size)
        for region, region_sizes in per_region.items()
        for place, size in zip(_places(len(region_sizes), rng), region_sizes)
    ]
    construction, removed = round(cameras * 0.005), round(cameras * 0.003)
    chosen = rng.sample(range(1, cameras + 1), construction + removed)
    statuses = {n: Status.CONSTRUCTION for n in chosen[:construction]} | {n: Status.REMOVED for n in chosen[construction:]}
    return _build(net, _impair(plan, impaired, seed), regions[0], servers, statuses, rng)


def build_small_fleet(
    net: LabNet,
    *,
    regions: Sequence[str] = TOWNSHIPS[:2],
    sites_per_region: int = 2,
    cameras_per_site: int = 5,
    seed: int = 0,
    impaired: Impairments = NO_IMPAIRMENTS,
) -> LabFleet:
    """A few dozen devices for fast tests (defaults: 4 sites × (5 cameras + link, switch, UPS)
    + platform + 1 server = 34 devices). Predictable: sites in region order, cameras numbered
    from CAM-0001 site by site; the last camera of the first site is removed, the last camera
    of the last site under construction; impaired sites are picked with `seed`."""
    if not 1 <= sites_per_region <= len(PLACES) or cameras_per_site < 2 or not regions:
        raise ValueError(f"need 1–{len(PLACES)} sites per region, ≥ 2 cameras per site, ≥ 1 region")
    rng = random.Random(seed)
    plan = [
        _SitePlan(region, f"{region}{PLACES[i]}", cameras_per_site)
        for region in regions
        for i in range(sites_per_region)
    ]
    total = len(plan) * cameras_per_site
    statuses = {cameras_per_site: Status.REMOVED, total: Status.CONSTRUCTION}
    return _build(net, _impair(plan, impaired, seed), regions[0], 1, statuses, rng)


def _site_sizes(cameras: int, rng: random.Random, low: int = 8, high: int = 40) -> list[int]:
    """Camera counts per site, each within [low, high] (one smaller site if cameras < low)."""
    sizes, left = [], cameras
    while left > high:
        size = rng.randint(low, high)
        if left - size < low:  # never leave a remainder too small for a site
            size = left - low
        sizes.append(size)
        left -= size
    return sizes + [left]


def _places(count: int, rng: random.Random) -> list[str]:
    """`count` distinct place names; numbered repeats once PLACES runs out."""
    names = rng.sample(PLACES, min(count, len(PLACES)))
    return names + [f"{PLACES[i % len(PLACES)]}{i // len(PLACES) + 1}号" for i in range(len(PLACES), count)]


def _impair(plan: list[_SitePlan], impaired: Impairments, seed: int) -> list[_SitePlan]:
    """The plan with `impaired` sites picked at random. A random stream of its own: the
    inventory of a seed is the same whatever the impairments."""
    if impaired.total > len(plan):
        raise ValueError(f"{impaired} needs {impaired.total} sites, the fleet has {len(plan)}")
    picked = iter(random.Random(f"impaired-{seed}").sample(range(len(plan)), impaired.total))
    changed: dict[int, _SitePlan] = {}
    changes = ((impaired.slow, {"behaviour": SLOW}), (impaired.lossy, {"behaviour": LOSSY}), (impaired.dark, {"dark": True}))
    for count, change in changes:
        for i in itertools.islice(picked, count):
            changed[i] = replace(plan[i], **change)
    return [changed.get(i, site) for i, site in enumerate(plan)]


def _build(
    net: LabNet,
    plan: list[_SitePlan],
    centre_region: str,
    servers: int,
    statuses: Mapping[int, Status],
    rng: random.Random,
) -> LabFleet:
    """Devices of the centre and every planned site, their lab sites, construction points down,
    dark sites failed. `statuses` maps camera numbers (1-based) that are not active."""
    total_cameras = sum(site.cameras for site in plan)
    cam_width = max(4, len(str(total_cameras)))
    site_width = max(3, len(str(len(plan))))
    batches = [batch for batch, share in BATCHES for _ in range(round(total_cameras * share / 1850))]
    batches = (batches + [BATCHES[-1][0]] * total_cameras)[:total_cameras]  # rounding remainder
    rng.shuffle(batches)

    devices: list[Device] = []
    centre = [("PLT-01", "视频监控平台", Kind.PLATFORM, "video platform")]
    centre += [(f"SRV-{i:02d}", f"存储服务器{i}", Kind.SERVER, "storage server") for i in range(1, servers + 1)]
    # Every site's devices and coordinates first (the random stream in the order it always had),
    # then all lab sites in one add_sites call, then the devices with their addresses.
    planned: list[tuple[_SitePlan, list[tuple[str, str, Kind, str | None, str, Status, frozenset[str]]],
                        list[tuple[float, float]]]] = []
    region_centres = _region_centres([site.region for site in plan], rng)
    camera_no = 0
    dark_links = []
    for k, site in enumerate(plan, 1):
        lat = region_centres[site.region][0] + rng.uniform(-0.03, 0.03)
        lon = region_centres[site.region][1] + rng.uniform(-0.03, 0.03)
        n = f"{k:0{site_width}d}"
        link, switch = f"LNK-{n}", f"SW-{n}"
        specs: list[tuple[str, str, Kind, str | None, str, Status, frozenset[str]]] = [
            (link, f"{site.name}专线", Kind.LINK, None, "10 Mbit/s dedicated line", Status.ACTIVE, frozenset({"10mbps"})),
            (switch, f"{site.name}接入交换机", Kind.SWITCH, link, "DS-3E0510P-E", Status.ACTIVE, frozenset()),
            (f"UPS-{n}", f"{site.name}UPS", Kind.UPS, switch, "Santak C1K", Status.ACTIVE, frozenset()),
        ]
        for i in range(1, site.cameras + 1):
            camera_no += 1
            bullet = rng.random() < BULLET_SHARE
            model = BULLET if bullet else rng.choice(DOMES)
            name = f"{site.name}{i:02d}号{'枪机' if bullet else '球机'}"
            tags = frozenset({"bullet" if bullet else "dome", batches[camera_no - 1]})
            status = statuses.get(camera_no, Status.ACTIVE)
            specs.append((f"CAM-{camera_no:0{cam_width}d}", name, Kind.CAMERA, switch, model, status, tags))
        coordinates = []
        for _ in specs:
            device_lat = round(lat + rng.uniform(-5e-4, 5e-4), 6)
            coordinates.append((device_lat, round(lon + rng.uniform(-5e-4, 5e-4), 6)))
        planned.append((site, specs, coordinates))
        if site.dark:
            dark_links.append(link)

    lab_sites = [(CENTRE_SITE, len(centre), Behaviour())]
    lab_sites += [(site.name, sum(spec[5] is not Status.REMOVED for spec in specs), site.behaviour)
                  for site, specs, _ in planned]
    centre_addresses, *site_addresses = net.add_sites(lab_sites)
    for (device_id, name, kind, model), address in zip(centre, centre_addresses):
        devices.append(Device(device_id, name, kind, address, CENTRE_SITE, centre_region,
                              lat=COUNTY_LAT, lon=COUNTY_LON, model=model))
    for (site, specs, coordinates), site_address_list in zip(planned, site_addresses):
        addresses = iter(site_address_list)
        for (device_id, name, kind, parent, model, status, tags), (lat, lon) in zip(specs, coordinates):
            camera = kind is Kind.CAMERA
            devices.append(Device(
                device_id, name, kind, None if status is Status.REMOVED else next(addresses), site.name, site.region,
                parent=parent, status=status, lat=lat, lon=lon, model=model, tags=tags,
                manufacturer=MANUFACTURERS.get(kind), firmware=CAMERA_FIRMWARE if camera else None,
                serial=f"DS{device_id.removeprefix('CAM-')}0713CCWR" if camera else None,
                uplink=SWITCH_UPLINK if kind is Kind.SWITCH else None,
            ))

    fleet = LabFleet(devices, net)
    net.set_down(d.address for d in devices if d.status is Status.CONSTRUCTION and d.address is not None)
    for link in dark_links:
        fleet.fail(link)
    return fleet


def _region_centres(regions: Iterable[str], rng: random.Random) -> dict[str, tuple[float, float]]:
    """Regions on a ring 0.1–0.2° around the county seat, in order of first appearance."""
    names = list(dict.fromkeys(regions))
    centres = {}
    for i, region in enumerate(names):
        angle, radius = 2 * math.pi * i / len(names), rng.uniform(0.1, 0.2)
        centres[region] = (COUNTY_LAT + radius * math.sin(angle), COUNTY_LON + radius * math.cos(angle))
    return centres
