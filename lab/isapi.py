"""A Hikvision NVR simulator speaking ISAPI, for the `nvr` probe's tests and benchmarks.

No Hikvision NVR can be installed here, so this one speaks the published protocol (Hikvision
ISAPI / HCNetSDK developer guides: XML over HTTP, HTTP Digest authentication) for the part a
monitoring system reads:

- GET  /ISAPI/System/time                          <Time>: timeMode, localTime with its offset, timeZone
- GET  /ISAPI/ContentMgmt/Storage                  <storage><hddList><hdd>: id, hddName, hddPath, hddType,
                                                   status, capacity and freeSpace (MB), property
- GET  /ISAPI/ContentMgmt/InputProxy/channels/status  <InputProxyChannelStatusList>: per IP channel
                                                   id, sourceInputPortDescriptor, online, chanDetectResult
- GET  /ISAPI/ContentMgmt/record/tracks            <TrackList><Track>: id (101 = channel 1 main
                                                   stream), Channel, Enable, Duration, LoopEnable …
- POST /ISAPI/ContentMgmt/search                   <CMSearchDescription> → <CMSearchResult>:
                                                   responseStatusStrg OK | MORE | NO MATCHES,
                                                   numOfMatches, matchList/searchMatchItem/timeSpan,
                                                   paged by maxResults and searchResultPostion

As real NVRs do, the times in search results are the device's *local* wall-clock time written
with a "Z" (`times_utc=True` makes them true UTC, as some newer firmware does), results come in
ascending time order, and the XML namespace is http://www.hikvision.com/ver20/XMLSchema
(`namespace` switches to http://www.isapi.org/ver20/XMLSchema of newer firmware).

Errors are the ISAPI `ResponseStatus` document (requestURL, statusCode 1 OK · 2 Device Busy ·
3 Device Error · 4 Invalid Operation · 5 Invalid XML Format · 6 Invalid XML Content,
statusString, subStatusCode): an unknown URL 403 notSupport, a wrong method 405
methodNotAllowed, a search body that is no XML 400 badXmlFormat, one without a track or with
bad times 400 badXmlContent. Authentication is Digest (RFC 7616, MD5, qop=auth); a wrong
answer is 401 with a ResponseStatus carrying `lockStatus` and `retryTimes`, and after
`max_failures` wrong answers the account is locked (every request 401 "locked", also with the
right password) for `lock_s`, as Hikvision's illegal-login lock does.

Hostile `behaviour`s: "busy" (every request 503 statusCode 2 deviceBusy), "device_error"
(HTTP 200 carrying statusCode 3: some firmware does that), "garbage" (200, not XML), "dtd" (an
entity-expansion DTD), "huge" (an endless chunked body), "slow_drip" (one byte a second),
"hang" (never answers).

Use: `async with IsapiSimulator(Nvr(...)) as sim:` (127.0.0.1, a free port: `sim.port`); the
`Nvr` (disks, channels) may be changed while it runs: the next request sees the change.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from typing import Self
from xml.sax.saxutils import escape

from aiohttp import web
from lxml import etree

NS_HIKVISION = "http://www.hikvision.com/ver20/XMLSchema"
NS_ISAPI = "http://www.isapi.org/ver20/XMLSchema"
BEHAVIOURS = frozenset({"", "busy", "device_error", "garbage", "dtd", "huge", "slow_drip", "hang"})
STATUS_STRINGS = {1: "OK", 2: "Device Busy", 3: "Device Error", 4: "Invalid Operation", 5: "Invalid XML Format",
                  6: "Invalid XML Content"}
MAX_REQUEST_BYTES = 64 * 1024


@dataclass
class Disk:
    """One HDD. status: ok, idle, unformatted, error, offline, smartFailed, mismatch, formating,
    reparing, notexist (the firmware's words, spelling included). Sizes in MB."""

    id: int
    capacity_mb: int = 3_815_447  # a "4 TB" disk as the NVR reports it
    free_mb: int = 0
    status: str = "ok"
    hdd_type: str = "SATA"
    property: str = "RW"


@dataclass
class Channel:
    """One IP channel (its main-stream track is id × 100 + 1).

    - since: local wall-clock time of the oldest recording still on disk (None: nothing recorded);
    - recording: a recording is going on now (its last segment ends at the device's now);
      else the last segment ended at `stopped` (local time);
    - enabled: the track's <Enable> (the recording schedule is on);
    - online / detect: the IP camera's state as InputProxy reports it (chanDetectResult);
    - segment_s: length of one recorded file (Hikvision cuts files by size; an hour is typical).
    """

    id: int
    since: dt.datetime | None = None
    recording: bool = True
    stopped: dt.datetime | None = None
    enabled: bool = True
    online: bool = True
    detect: str = "connect"
    address: str = "192.168.254.2"
    segment_s: int = 3600


@dataclass
class Nvr:
    """The simulated recorder: its account, clock, disks and channels, and how it misbehaves."""

    username: str = "admin"
    password: str = "Hik12345"
    realm: str = "DS-7732NI-I4"
    utc_offset_h: float = 8.0  # China Standard Time
    clock_offset_s: float = 0.0  # device clock minus real time
    times_utc: bool = False
    namespace: str = NS_HIKVISION
    input_proxy: bool = True  # False: a DVR with analog channels only (InputProxy is notSupport)
    max_failures: int = 7
    lock_s: float = 1800.0
    behaviour: str = ""
    disks: list[Disk] = field(default_factory=list)
    channels: list[Channel] = field(default_factory=list)

    def local_now(self) -> dt.datetime:
        """The device's local wall-clock time, naive."""
        now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.clock_offset_s, hours=self.utc_offset_h)
        return now.replace(tzinfo=None, microsecond=0)


def _ns(nvr: Nvr) -> str:
    return f'version="2.0" xmlns="{nvr.namespace}"'


def response_status(nvr: Nvr, url: str, code: int, sub: str, extra: str = "") -> str:
    """The ISAPI ResponseStatus document."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ResponseStatus {_ns(nvr)}>\n'
        f"<requestURL>{escape(url)}</requestURL>\n<statusCode>{code}</statusCode>\n"
        f"<statusString>{STATUS_STRINGS.get(code, 'Error')}</statusString>\n<subStatusCode>{sub}</subStatusCode>\n"
        f"{extra}</ResponseStatus>\n"
    )


class _IsapiError(Exception):
    def __init__(self, http: int, code: int, sub: str) -> None:
        super().__init__(sub)
        self.http, self.code, self.sub = http, code, sub


def _fmt(nvr: Nvr, local: dt.datetime) -> str:
    """A search-result time: local wall clock with "Z" (the firmware habit), or true UTC."""
    if nvr.times_utc:
        local = local - dt.timedelta(hours=nvr.utc_offset_h)
    return local.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(nvr: Nvr, text: str) -> dt.datetime:
    """A search request's time as the device's local wall clock: "Z" times are local (or UTC
    with times_utc), times with an offset are converted."""
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(Z|[+-]\d{2}:\d{2})?", text.strip())
    if m is None:
        raise ValueError(text)
    value = dt.datetime.fromisoformat(m[1])
    zone = dt.timedelta(hours=nvr.utc_offset_h)
    if m[2] and m[2] != "Z":
        return value - (dt.datetime.fromisoformat(m[1] + m[2]).utcoffset() or dt.timedelta()) + zone
    return value + zone if nvr.times_utc else value


class IsapiSimulator:
    """One simulated NVR on 127.0.0.1 (see the module doc). `requests` counts what was asked,
    by path; `auth_failures` the wrong answers seen."""

    def __init__(self, nvr: Nvr, host: str = "127.0.0.1", port: int = 0) -> None:
        if nvr.behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {nvr.behaviour!r}; one of {sorted(BEHAVIOURS - {''})}")
        self.nvr, self.host, self.port = nvr, host, port
        self.requests: dict[str, int] = {}
        self.auth_failures = 0
        self._nonces: set[str] = set()
        self._failures = 0
        self._locked_until = 0.0
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> Self:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)  # "hang" handlers are cut
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- HTTP --------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        nvr = self.nvr
        path = request.path
        self.requests[path] = self.requests.get(path, 0) + 1
        if nvr.behaviour == "hang":
            await asyncio.sleep(3600)
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        if nvr.behaviour:
            return await self._misbehave(request)
        try:
            body = await self._route(request)
        except _IsapiError as exc:
            return self._xml(response_status(nvr, path, exc.code, exc.sub), exc.http)
        return self._xml(body)

    @staticmethod
    def _xml(text: str, status: int = 200) -> web.Response:
        return web.Response(text=text, status=status, content_type="application/xml", charset="UTF-8")

    async def _route(self, request: web.Request) -> str:
        routes = {
            "/ISAPI/System/time": ("GET", self._time),
            "/ISAPI/ContentMgmt/Storage": ("GET", self._storage),
            "/ISAPI/ContentMgmt/InputProxy/channels/status": ("GET", self._proxy_status),
            "/ISAPI/ContentMgmt/record/tracks": ("GET", self._tracks),
        }
        if request.path == "/ISAPI/ContentMgmt/search":
            if request.method != "POST":
                raise _IsapiError(405, 4, "methodNotAllowed")
            return self._search(await request.read())
        method, handler = routes.get(request.path, (None, None))
        if handler is None or (request.path.endswith("/status") and not self.nvr.input_proxy):
            raise _IsapiError(403, 4, "notSupport")
        if request.method != method:
            raise _IsapiError(405, 4, "methodNotAllowed")
        return handler()

    # -- authentication (RFC 7616, as the firmware does it) -----------------------------------

    def _authenticate(self, request: web.Request) -> web.Response | None:
        nvr = self.nvr
        loop_time = asyncio.get_running_loop().time()
        header = request.headers.get("Authorization", "")
        if loop_time < self._locked_until:
            return self._challenge(request, locked=True)
        if not header.startswith("Digest "):
            return self._challenge(request)
        params = {k: a or b for k, a, b in re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]*))', header[7:])}
        nonce = params.get("nonce", "")
        if nonce not in self._nonces:
            return self._challenge(request, stale=bool(nonce))

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        ha1 = md5(f"{nvr.username}:{nvr.realm}:{nvr.password}")
        ha2 = md5(f"{request.method}:{params.get('uri', '')}")
        expected = md5(f"{ha1}:{nonce}:{params.get('nc', '')}:{params.get('cnonce', '')}:auth:{ha2}")
        if params.get("username") == nvr.username and params.get("response") == expected and params.get("qop") == "auth":
            self._failures = 0
            return None
        self.auth_failures += 1
        self._failures += 1
        if self._failures >= nvr.max_failures:
            self._locked_until = loop_time + nvr.lock_s
            return self._challenge(request, locked=True)
        return self._challenge(request)

    def _challenge(self, request: web.Request, stale: bool = False, locked: bool = False) -> web.Response:
        nonce = secrets.token_hex(16)
        self._nonces.add(nonce)
        if len(self._nonces) > 10_000:  # bounded: forget an arbitrary old one
            self._nonces.pop()
        left = 0 if locked else self.nvr.max_failures - self._failures
        extra = (f"<lockStatus>{'locked' if locked else 'unlock'}</lockStatus>\n<retryTimes>{left}</retryTimes>\n"
                 f"<resLockTime>{int(self.nvr.lock_s) if locked else 0}</resLockTime>\n")
        body = response_status(self.nvr, request.path, 4, "invalidOperation", extra)
        challenge = (f'Digest qop="auth", realm="{self.nvr.realm}", nonce="{nonce}"'
                     + (', stale="TRUE"' if stale else ""))
        response = self._xml(body, 401)
        response.headers["WWW-Authenticate"] = challenge
        return response

    # -- the documents ------------------------------------------------------------------------

    def _time(self) -> str:
        nvr = self.nvr
        sign = "+" if nvr.utc_offset_h >= 0 else "-"
        hours, minutes = divmod(int(abs(nvr.utc_offset_h) * 60), 60)
        # POSIX zone notation as the firmware writes it: CST-8:00:00 is UTC+8.
        zone = f"CST{'-' if nvr.utc_offset_h >= 0 else '+'}{hours}:{minutes:02d}:00"
        local = nvr.local_now().strftime("%Y-%m-%dT%H:%M:%S")
        return (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Time {_ns(nvr)}>\n<timeMode>NTP</timeMode>\n'
            f"<localTime>{local}{sign}{hours:02d}:{minutes:02d}</localTime>\n<timeZone>{zone}</timeZone>\n</Time>\n"
        )

    def _storage(self) -> str:
        nvr = self.nvr
        disks = "".join(
            f"<hdd version=\"2.0\">\n<id>{d.id}</id>\n<hddName>hdd{d.id}</hddName>\n<hddPath></hddPath>\n"
            f"<hddType>{d.hdd_type}</hddType>\n<status>{d.status}</status>\n<capacity>{d.capacity_mb}</capacity>\n"
            f"<freeSpace>{d.free_mb}</freeSpace>\n<property>{d.property}</property>\n</hdd>\n"
            for d in nvr.disks
        )
        return (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<storage {_ns(nvr)}>\n<hddList version="2.0">\n{disks}'
            f'</hddList>\n<nasList version="2.0">\n</nasList>\n<workMode>group</workMode>\n</storage>\n'
        )

    def _proxy_status(self) -> str:
        nvr = self.nvr
        items = "".join(
            f"<InputProxyChannelStatus>\n<id>{c.id}</id>\n<sourceInputPortDescriptor>\n"
            f"<proxyProtocol>HIKVISION</proxyProtocol>\n<addressingFormatType>ipaddress</addressingFormatType>\n"
            f"<ipAddress>{c.address}</ipAddress>\n<managePortNo>8000</managePortNo>\n<srcInputPort>1</srcInputPort>\n"
            f"<userName>admin</userName>\n<streamType>auto</streamType>\n</sourceInputPortDescriptor>\n"
            f"<online>{str(c.online).lower()}</online>\n<chanDetectResult>{c.detect}</chanDetectResult>\n"
            f"</InputProxyChannelStatus>\n"
            for c in nvr.channels
        )
        return f'<?xml version="1.0" encoding="UTF-8"?>\n<InputProxyChannelStatusList {_ns(nvr)}>\n{items}</InputProxyChannelStatusList>\n'

    def _tracks(self) -> str:
        nvr = self.nvr
        tracks = []
        for c in nvr.channels:
            for stream in (1, 2):  # main stream tracks are recorded; sub-stream tracks exist too
                track = c.id * 100 + stream
                tracks.append(
                    f"<Track>\n<id>{track}</id>\n<Channel>{c.id}</Channel>\n"
                    f"<Enable>{str(c.enabled and stream == 1).lower()}</Enable>\n"
                    f"<Description>trackType=standard,sourceDescriptor=video</Description>\n"
                    f"<TrackGUID>{{{track:08d}-0000-0000-0000-000000000000}}</TrackGUID>\n<Size>0</Size>\n"
                    f"<Duration>P0DT0H0M0S</Duration>\n<DefaultRecordingMode>CMR</DefaultRecordingMode>\n"
                    f"<LoopEnable>true</LoopEnable>\n<SrcDescriptor>\n<SrcGUID>{{{track:08d}}}</SrcGUID>\n"
                    f"<SrcChannel>{c.id}</SrcChannel>\n<StreamHint>Video</StreamHint>\n<SrcDriver>RTSP</SrcDriver>\n"
                    f"<SrcType>H.264</SrcType>\n<SrcUrl>rtsp://localhost/PSIA/Streaming/channels/{track}</SrcUrl>\n"
                    f"<SrcLogin>admin</SrcLogin>\n</SrcDescriptor>\n<TrackSchedule>\n<ScheduleBlockList>\n"
                    f"<ScheduleBlock>\n<ScheduleBlockGUID>{{00000000-0000-0000-0000-000000000000}}</ScheduleBlockGUID>\n"
                    f"<ScheduleBlockType>www.std-cgi.com/racm/schedule/ver10</ScheduleBlockType>\n"
                    f"<ScheduleAction>\n<id>1</id>\n<ScheduleActionStartTime>\n<DayOfWeek>Monday</DayOfWeek>\n"
                    f"<TimeOfDay>00:00:00</TimeOfDay>\n</ScheduleActionStartTime>\n<ScheduleActionEndTime>\n"
                    f"<DayOfWeek>Sunday</DayOfWeek>\n<TimeOfDay>24:00:00</TimeOfDay>\n</ScheduleActionEndTime>\n"
                    f"<ScheduleDSTEnable>false</ScheduleDSTEnable>\n<Description>nothing</Description>\n<Actions>\n"
                    f"<Record>true</Record>\n<ActionRecordingMode>CMR</ActionRecordingMode>\n</Actions>\n"
                    f"</ScheduleAction>\n</ScheduleBlock>\n</ScheduleBlockList>\n</TrackSchedule>\n</Track>\n"
                )
        return f'<?xml version="1.0" encoding="UTF-8"?>\n<TrackList {_ns(nvr)}>\n{"".join(tracks)}</TrackList>\n'

    def _search(self, raw: bytes) -> str:
        nvr = self.nvr
        try:
            parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
            root = etree.fromstring(raw, parser)
        except etree.XMLSyntaxError:
            raise _IsapiError(400, 5, "badXmlFormat") from None

        def text(name: str) -> str | None:
            found = root.xpath(f"//*[local-name()='{name}']")
            return found[0].text if found and found[0].text is not None else None

        try:
            track = int(text("trackID") or "")
            start, end = _parse_time(nvr, text("startTime") or ""), _parse_time(nvr, text("endTime") or "")
            max_results = int(text("maxResults") or "40")
            position = int(text("searchResultPostion") or "0")  # sic: the protocol's spelling
        except ValueError:
            raise _IsapiError(400, 6, "badXmlContent") from None
        if end < start or max_results < 1 or position < 0:
            raise _IsapiError(400, 6, "badXmlContent")
        channel = next((c for c in nvr.channels if c.id * 100 + 1 == track), None)
        segments = self._segments(channel, start, end) if channel is not None else []
        page = segments[position : position + min(max_results, 40)]  # 40 per answer, as NVRs give
        status = "NO MATCHES" if not page else "MORE" if position + len(page) < len(segments) else "OK"
        items = "".join(
            f"<searchMatchItem>\n<sourceID>{{00000000-0000-0000-0000-000000000000}}</sourceID>\n"
            f"<trackID>{track}</trackID>\n<timeSpan>\n<startTime>{_fmt(nvr, s)}</startTime>\n"
            f"<endTime>{_fmt(nvr, e)}</endTime>\n</timeSpan>\n<mediaSegmentDescriptor>\n"
            f"<contentType>video</contentType>\n<codecType>H.264-BP</codecType>\n"
            f"<playbackURI>rtsp://127.0.0.1/Streaming/tracks/{track}/?starttime={s:%Y%m%dT%H%M%S}Z&amp;"
            f"endtime={e:%Y%m%dT%H%M%S}Z&amp;name=ch{track}_{s:%Y%m%d%H%M%S}&amp;size=1073741824</playbackURI>\n"
            f"</mediaSegmentDescriptor>\n<metadataMatches>\n"
            f"<metadataDescriptor>recordType.meta.hikvision.com/timing</metadataDescriptor>\n</metadataMatches>\n"
            f"</searchMatchItem>\n"
            for s, e in page
        )
        search_id = escape(text("searchID") or "")
        return (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<CMSearchResult {_ns(nvr)}>\n<searchID>{search_id}</searchID>\n'
            f"<responseStatus>true</responseStatus>\n<responseStatusStrg>{status}</responseStatusStrg>\n"
            f"<numOfMatches>{len(page)}</numOfMatches>\n<matchList>\n{items}</matchList>\n</CMSearchResult>\n"
        )

    def _segments(self, c: Channel, start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
        """The channel's recorded files overlapping [start, end], oldest first (local times)."""
        if c.since is None:
            return []
        last = self.nvr.local_now() if c.recording else (c.stopped or c.since)
        step = dt.timedelta(seconds=c.segment_s)
        first = max(c.since, c.since + step * max(0, int((start - c.since) / step) - 1))
        out = []
        s = first
        while s < last and s <= end and len(out) < 10_000:  # bounded: a search is at most a page of these
            e = min(s + step, last)
            if e >= start:
                out.append((s, e))
            s = e
        return out

    # -- misbehaving --------------------------------------------------------------------------

    async def _misbehave(self, request: web.Request) -> web.StreamResponse:
        nvr, path = self.nvr, request.path
        if nvr.behaviour == "busy":
            return self._xml(response_status(nvr, path, 2, "deviceBusy"), 503)
        if nvr.behaviour == "device_error":
            return self._xml(response_status(nvr, path, 3, "deviceError"))
        if nvr.behaviour == "garbage":
            return web.Response(body=b"\x00\xffnot xml at all", content_type="application/xml")
        if nvr.behaviour == "dtd":
            lol = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10 if i else "lol"}">' for i in range(10))
            return web.Response(text=f'<?xml version="1.0"?><!DOCTYPE storage [{lol}]><storage>&l9;</storage>',
                                content_type="application/xml")
        response = web.StreamResponse(headers={"Content-Type": "application/xml"})
        await response.prepare(request)
        if nvr.behaviour == "huge":
            chunk = b"<hdd>" + b"x" * 65536 + b"</hdd>"
            for _ in range(100_000):  # far more than a client should read; bounded all the same
                await response.write(chunk)
        else:  # slow_drip
            for byte in self._time().encode():
                await response.write(bytes([byte]))
                await asyncio.sleep(1.0)
        return response
