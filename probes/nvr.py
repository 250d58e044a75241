"""NVR probe: the disks and the per-channel recording of network video recorders. Hikvision (海康)
NVRs through ISAPI, HTTP Digest (RFC 7616) with the recorder's account; other recorders (Dahua,
Uniview …) through ONVIF Profile G (probes/_nvr_onvif.py; `api`). The contract counts
recordings, not only pictures: every channel recording, 30 days kept (issue 14).

Which API (`api`, default auto): ISAPI for a recorder whose point-list manufacturer is empty or
names Hikvision (ISAPI_MAKERS), ONVIF Profile G for any other manufacturer; `isapi` or `onvif`
forces one for every NVR. The rest of this doc is the ISAPI path.

Per NVR and poll (all under one deadline, `deadline_s`; each request under `timeout_s`):

1. GET /ISAPI/System/time: the recorder's clock (localTime with its offset) → clock_offset_s;
   recordings are searched and dated on the recorder's own clock.
2. GET /ISAPI/ContentMgmt/Storage: every HDD: status (ok, idle, unformatted, error, offline,
   smartFailed, mismatch, formating, reparing, notexist …), capacity and free space (MB).
3. GET /ISAPI/ContentMgmt/InputProxy/channels/status: which IP channels have a camera, online
   or not (chanDetectResult); "notSupport" (a DVR with analog channels) → every track counts.
4. GET /ISAPI/ContentMgmt/record/tracks: each channel's main-stream track (101, 201 …) and
   whether recording is enabled (<Enable>).
5. POST /ISAPI/ContentMgmt/search per channel (at most `max_in_flight` at once): one match in
   the last `recording_window_s` → recording; and, at most every `retention_refresh_s`, the
   oldest recording (position 0 of a search from 2000-01-01) → retention_days.

Times: Hikvision firmware writes search times as the recorder's local wall-clock time with a
"Z" (`search_times: local`, the default); newer firmware may write true UTC (`utc`). Times with
an explicit offset are read as such.

Errors: ISAPI answers with a `ResponseStatus` document (statusCode 2 busy, 3 device error, 4
invalid operation, 5/6 bad XML; HTTP 4xx/5xx, or 200 on some firmware): the reason names it,
"ISAPI Device Busy (deviceBusy)". A wrong password is 401 (a `lockStatus` of locked says the
recorder locked the account): the recorder is then not asked again for `auth_retry_s`, since
Hikvision locks an account after a few wrong logins and the duty engineer's own login with it.
Hostile answers: bounded in bytes (`max_response_bytes`) and time; XML parsed without DTDs,
entities or network. A read that fails after the time and the tracks were read leaves a
partial result: ok with the reason "partial: …" (like the SNMP probe).

Public API: `NvrConfig`, `NvrProbe`, `MEASUREMENTS`, `DISK_STATES`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import ssl
import time
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import Field, SecretStr

from monitor.core.config_base import SelectorConfig
from monitor.core.measurement import DEVICE_TAGS, FieldSpec, MeasurementSpec
from monitor.core.model import Basis, Device, Kind
from probes.accounts import CameraAccounts
from probes.base import FieldValue, ProbeResult, Series

ISAPI_MAKERS = ("hikvision", "海康", "hikrobot", "hiwatch")
"""Manufacturer words (point list, case-insensitive) of recorders that speak ISAPI."""
MB = 1 << 20  # ISAPI's "MB" of capacity and freeSpace (the web page shows GB = MB / 1024)
EPOCH = dt.datetime(2000, 1, 1)  # searches for the oldest recording start here
READ_CHUNK = 65536
PATHS = {
    "time": "/ISAPI/System/time",
    "storage": "/ISAPI/ContentMgmt/Storage",
    "proxy": "/ISAPI/ContentMgmt/InputProxy/channels/status",
    "tracks": "/ISAPI/ContentMgmt/record/tracks",
    "search": "/ISAPI/ContentMgmt/search",
}

DISK_STATES = {
    "ok": "ok", "idle": "ok", "sleeping": "ok", "sleep": "ok", "normal": "ok",
    "unformatted": "unformatted", "uninitialized": "unformatted",
    "formating": "busy", "formatting": "busy", "reparing": "busy", "repairing": "busy",
    "offline": "offline", "notexist": "offline",
    "error": "error", "smartfailed": "error", "mismatch": "error", "abnormal": "error", "exception": "error",
}
"""The firmware's hdd status words (spelling included) → a state: ok (idle and sleeping disks
are healthy), unformatted, busy (formatting, repairing: not recording meanwhile), offline,
error; any other word → "other"."""


class NvrConfig(CameraAccounts):
    """probes.nvr in config.yaml; the account fields (username, password_env/_file,
    credentials) as for the cameras (probes.accounts). Without an account, no NVR is polled."""

    enabled: bool = True
    interval_s: Annotated[float, Field(ge=60, le=86_400)] = 900.0
    match: SelectorConfig = SelectorConfig(kind=[Kind.NVR])
    scheme: Literal["http", "https"] = "http"
    port: Annotated[int, Field(ge=1, le=65_535)] | None = None
    """Default 80 (http) or 443 (https)."""
    verify_tls: bool = False
    """NVRs serve self-signed certificates; the `tls` probe reports on them."""
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 10.0
    """Deadline of each request, whole answer included."""
    deadline_s: Annotated[float, Field(gt=0, le=600)] = 120.0
    """Deadline of one whole poll (every request of one NVR)."""
    max_in_flight: Annotated[int, Field(ge=1, le=16)] = 4
    """Requests at once to one NVR (recorders are small computers)."""
    recording_window_s: Annotated[float, Field(ge=60, le=86_400)] = 900.0
    """A channel is recording when it has a recording in this window before the recorder's now."""
    retention_refresh_s: Annotated[float, Field(ge=0, le=7 * 86_400)] = 21_600.0
    """The oldest recording of a channel is searched at most this often (0: every poll)."""
    search_times: Literal["local", "utc"] = "local"
    """How the firmware writes "Z" times: local wall clock (Hikvision's habit) or true UTC."""
    auth_retry_s: Annotated[float, Field(ge=0, le=86_400)] = 3600.0
    """After a wrong password, the NVR is not asked again for this long (accounts lock)."""
    max_response_bytes: Annotated[int, Field(ge=16_384, le=64 << 20)] = 4 << 20
    api: Literal["auto", "isapi", "onvif"] = "auto"
    """auto: ISAPI for Hikvision (or no manufacturer in the point list), ONVIF Profile G else."""
    onvif_port: Annotated[int, Field(ge=1, le=65_535)] = 80
    """Port of the recorders' ONVIF device service (http)."""

    def api_for(self, device: Device) -> Literal["isapi", "onvif"]:
        """The API `device` is polled with (see `api`)."""
        if self.api != "auto":
            return self.api
        maker = (device.manufacturer or "").casefold()
        return "isapi" if not maker or any(word in maker for word in ISAPI_MAKERS) else "onvif"


_TAGS_DISK = {**DEVICE_TAGS, "disk": "hddName of the disk (ISAPI hdd id when unnamed)"}
_TAGS_CHANNEL = {**DEVICE_TAGS, "channel": "channel number of the NVR (its main-stream track is channel × 100 + 1)"}

MEASUREMENTS = (
    MeasurementSpec("nvr", "One ISAPI poll of one NVR: disks and recording summed up.", DEVICE_TAGS, {
        "up": FieldSpec("boolean", "", "the NVR answered the time and tracks reads with our account"),
        "response_ms": FieldSpec("float", "ms", "duration of the whole poll"),
        "clock_offset_s": FieldSpec("float", "s", "NVR clock − fleetmon's (signed)"),
        "disks": FieldSpec("integer", "", "HDDs reported"),
        "disks_bad": FieldSpec("integer", "", "HDDs whose state is not ok"),
        "capacity_bytes": FieldSpec("integer", "bytes", "sum of the HDDs' capacity"),
        "free_bytes": FieldSpec("integer", "bytes", "sum of the HDDs' free space"),
        "free_pct": FieldSpec("float", "%", "free_bytes / capacity_bytes × 100"),
        "channels": FieldSpec("integer", "", "channels with a camera (or every track, without InputProxy)"),
        "channels_recording": FieldSpec("integer", "", "channels with a recording in the window"),
        "channels_not_recording": FieldSpec("integer", "", "channels enabled for recording without one"),
        "min_retention_days": FieldSpec("float", "d", "the shortest retention of the channels known"),
    }),
    MeasurementSpec("nvr_disk", "One HDD of an NVR per poll (ISAPI ContentMgmt/Storage).", _TAGS_DISK, {
        "status": FieldSpec("string", "", "the firmware's word: ok, idle, unformatted, error, smartFailed …"),
        "state": FieldSpec("string", "", "ok | unformatted | busy | offline | error | other (DISK_STATES)"),
        "ok": FieldSpec("boolean", "", "state is ok"),
        "capacity_bytes": FieldSpec("integer", "bytes", "capacity (MB × 2²⁰)"),
        "free_bytes": FieldSpec("integer", "bytes", "freeSpace (MB × 2²⁰)"),
        "used_pct": FieldSpec("float", "%", "(capacity − free) / capacity × 100"),
    }),
    MeasurementSpec("nvr_channel", "One channel of an NVR per poll: recording and retention.", _TAGS_CHANNEL, {
        "enabled": FieldSpec("boolean", "", "its main-stream track's <Enable> (recording switched on)"),
        "online": FieldSpec("boolean", "", "its IP camera is online (InputProxy), where reported"),
        "detect": FieldSpec("string", "", "InputProxy chanDetectResult (connect, netUnreachable …), where reported"),
        "recording": FieldSpec("boolean", "", "a recording within recording_window_s before the NVR's now"),
        "retention_days": FieldSpec("float", "d", "NVR's now − start of the oldest recording, in days"),
        "oldest": FieldSpec("string", "", "start of the oldest recording, ISO 8601: NVR local time (ISAPI), UTC with offset (ONVIF)"),
    }),
)


class _Failed(Exception):
    """A read failed; the message is the reason."""


class _AuthFailed(_Failed):
    """The NVR refused our account (401)."""


@dataclass(slots=True)
class _Channel:
    number: int
    track: int
    enabled: bool
    online: bool | None = None
    detect: str | None = None
    fields: dict[str, FieldValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Clock:
    """The recorder's now, as its local wall clock (naive) and its UTC offset (None: unknown)."""

    local: dt.datetime
    offset: dt.timedelta | None


class NvrProbe:
    """The `nvr` probe (probes.base.Probe); see the module doc. Basis: service: the recorder
    answering ISAPI with our account is its service being up, as ONVIF is a camera's; it polls
    only NVRs (and only with an account), so no camera's basis changes."""

    name: ClassVar[str] = "nvr"
    Config: ClassVar[type[NvrConfig]] = NvrConfig
    measurements: ClassVar[tuple[MeasurementSpec, ...]] = MEASUREMENTS
    basis: ClassVar[Basis | None] = Basis.SERVICE
    offers: ClassVar[tuple[str, ...]] = ()
    learns: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: NvrConfig) -> None:
        self.cfg = cfg
        self._match = cfg.match.selector()
        self._session: Any = None
        self._auth: dict[tuple[str, str], Any] = {}  # (device id, user) → its DigestAuthMiddleware
        self._auth_failed: dict[str, tuple[float, str]] = {}  # device id → (monotonic time, reason)
        self._oldest: dict[tuple[str, int], tuple[float, dt.datetime | None]] = {}  # (device, track) → (when, oldest)
        self._ssl: ssl.SSLContext | bool = False
        self._zeep: Any = None  # probes.onvif.ZeepLoop, made at the first ONVIF poll
        self._poll_profile_g: Any = None  # probes._nvr_onvif.poll_profile_g, imported with it

    async def __aenter__(self) -> Self:
        import aiohttp

        if self.cfg.scheme == "https" and self.cfg.verify_tls:
            self._ssl = ssl.create_default_context()
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=self.cfg.max_in_flight, keepalive_timeout=30)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None), cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": "fleetmon"},
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._zeep is not None:
            zeep, self._zeep = self._zeep, None
            await asyncio.to_thread(zeep.stop)

    def wants(self, device: Device) -> bool:
        """NVRs the config's `match` selects that have an address and an account."""
        return device.address is not None and self._match.matches(device) and self.cfg.account_for(device) is not None

    def budget_s(self, device: Device) -> float:
        return self.cfg.deadline_s + 0.5

    async def probe(self, device: Device) -> ProbeResult:
        """Read the NVR (see the module doc). Never raises for a dead, slow, hostile or
        refusing NVR: ok=False with a reason."""
        started = time.time_ns()
        if self._session is None:
            raise RuntimeError("NvrProbe used outside `async with`")
        account = self.cfg.account_for(device)
        if device.address is None or account is None:
            return ProbeResult(device.id, self.name, started, False, "no address or no account", {"up": False})
        failed = self._auth_failed.get(device.id)
        if failed is not None and time.monotonic() - failed[0] < self.cfg.auth_retry_s:
            reason = f"{failed[1]}; not asked again for {self.cfg.auth_retry_s:g} s (the NVR locks accounts)"
            return ProbeResult(device.id, self.name, started, False, reason, {"up": False})
        if self.cfg.api_for(device) == "onvif":
            return await self._probe_onvif(device, account, started)
        poll = _Poll(self, device, account)
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(self.cfg.deadline_s):
                await poll.run()
        except TimeoutError:
            poll.fail(f"timeout (poll not done within {self.cfg.deadline_s:g} s)")
        except _AuthFailed as exc:
            self._auth_failed[device.id] = (time.monotonic(), str(exc))
            poll.fail(str(exc))
        except _Failed as exc:
            poll.fail(str(exc))
        else:
            self._auth_failed.pop(device.id, None)
        poll.fields["response_ms"] = round((time.perf_counter() - t0) * 1000, 3)
        return poll.result(started)

    async def _probe_onvif(self, device: Device, account: tuple[str, SecretStr], started: int) -> ProbeResult:
        """The ONVIF Profile G poll (probes/_nvr_onvif.py) on the zeep thread (probes.onvif.ZeepLoop:
        zeep's CPU stretches stay off the daemon's loop), under deadline_s."""
        if self._zeep is None:
            from probes._nvr_onvif import poll_profile_g
            from probes.onvif import ZeepLoop

            self._zeep, self._poll_profile_g = ZeepLoop(), poll_profile_g
        t0 = time.perf_counter()
        poll = self._poll_profile_g(device, account, port=self.cfg.onvif_port, timeout_s=self.cfg.timeout_s,
                                    max_bytes=self.cfg.max_response_bytes, max_in_flight=self.cfg.max_in_flight,
                                    window_s=self.cfg.recording_window_s)
        try:
            async with asyncio.timeout(self.cfg.deadline_s):
                ok, reason, fields, series = await self._zeep.run(poll)
        except TimeoutError:
            ok, reason, fields, series = False, f"timeout (poll not done within {self.cfg.deadline_s:g} s)", {"up": False}, []
        fields["response_ms"] = round((time.perf_counter() - t0) * 1000, 3)
        return ProbeResult(device.id, self.name, started, ok, reason, fields, tuple(series))

    # -- one request ----------------------------------------------------------------------------

    async def request(self, device: Device, account: tuple[str, SecretStr], what: str, body: bytes | None = None) -> Any:
        """The XML root of one ISAPI answer (lxml element). Raises _AuthFailed, _Failed."""
        import aiohttp
        from aiohttp import DigestAuthMiddleware

        user = account[0]
        middleware = self._auth.get((device.id, user))
        if middleware is None:
            middleware = self._auth[(device.id, user)] = DigestAuthMiddleware(user, account[1].get_secret_value())
        assert device.address is not None
        host = f"[{device.address}]" if device.address.version == 6 else str(device.address)
        port = self.cfg.port or (443 if self.cfg.scheme == "https" else 80)
        url = f"{self.cfg.scheme}://{host}:{port}{PATHS[what]}"
        method = "GET" if body is None else "POST"
        headers = {"Content-Type": "application/xml; charset=UTF-8"} if body is not None else {}
        try:
            async with asyncio.timeout(self.cfg.timeout_s):
                async with self._session.request(
                    method, url, data=body, headers=headers, middlewares=(middleware,), ssl=self._ssl,
                ) as response:
                    raw = await _read(response, self.cfg.max_response_bytes)
                    status = response.status
        except _Failed as exc:
            raise _Failed(f"{what}: {exc}") from None
        except TimeoutError:
            raise _Failed(f"{what}: timeout ({self.cfg.timeout_s:g} s)") from None
        except aiohttp.ClientConnectorError as exc:
            raise _Failed(f"{what}: cannot connect ({exc.os_error.strerror or 'error'})") from None
        except aiohttp.ClientError as exc:
            raise _Failed(f"{what}: {_client_error(exc)}") from None
        root = None
        if raw.strip():
            try:
                root = _parse(raw, what)
            except _Failed:
                if status == 200:
                    raise  # an error page that is no XML is judged by its status below
        if status == 401:
            locked = root is not None and _text(root, "lockStatus") == "locked"
            raise _AuthFailed("account locked by the NVR (too many wrong logins)" if locked
                              else "401 Unauthorized: wrong user name or password")
        error = _response_status(root) if root is not None else None
        if error is not None:
            raise _Failed(f"{what}: ISAPI {error}")
        if status != 200:
            raise _Failed(f"{what}: HTTP {status}")
        if root is None:
            raise _Failed(f"{what}: empty answer")
        return root


class _Poll:
    """One poll of one NVR: the reads in order, what they found, and what went wrong."""

    def __init__(self, probe: NvrProbe, device: Device, account: tuple[str, SecretStr]) -> None:
        self.probe, self.device, self.account = probe, device, account
        self.cfg = probe.cfg
        self.fields: dict[str, FieldValue] = {"up": False}
        self.series: list[Series] = []
        self.problems: list[str] = []
        self.ok = False
        self.offset: dt.timedelta | None = None  # the NVR's UTC offset, once its clock is read

    def fail(self, reason: str) -> None:
        self.ok = False
        self.problems.insert(0, reason)

    def result(self, started: int) -> ProbeResult:
        self.fields["up"] = self.ok
        if self.ok:
            reason = f"partial: {'; '.join(self.problems)}" if self.problems else None
        else:
            reason = self.problems[0] if self.problems else "no answer"
        return ProbeResult(self.device.id, self.probe.name, started, self.ok, reason, self.fields, tuple(self.series))

    async def get(self, what: str, body: bytes | None = None) -> Any:
        return await self.probe.request(self.device, self.account, what, body)

    async def run(self) -> None:
        clock = _clock(await self.get("time"))
        self.offset = clock.offset
        if clock.offset is not None:
            ours = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            self.fields["clock_offset_s"] = round((clock.local - clock.offset - ours).total_seconds(), 1)
        try:
            self._disks(await self.get("storage"))
        except _AuthFailed:
            raise
        except _Failed as exc:
            self.problems.append(str(exc))
        proxy: dict[int, tuple[bool | None, str | None]] | None
        try:
            proxy = _proxy_channels(await self.get("proxy"))
        except _AuthFailed:
            raise
        except _Failed as exc:
            if "notSupport" not in str(exc):
                self.problems.append(str(exc))
            proxy = None  # a DVR without IP channels: every track counts
        channels = _channels(await self.get("tracks"), proxy)
        self.ok = True  # time and tracks answered with our account: the recorder's service is up
        slots = asyncio.Semaphore(self.cfg.max_in_flight)
        await asyncio.gather(*(self._search(channel, clock, slots) for channel in channels))
        self._channels_done(channels)

    def _disks(self, root: Any) -> None:
        capacity = free = bad = 0
        disks = _all(root, "hdd")
        for hdd in disks:
            status = (_text(hdd, "status") or "").strip()
            state = DISK_STATES.get(status.lower(), "other")
            size, left = _mb(_text(hdd, "capacity")), _mb(_text(hdd, "freeSpace"))
            name = _text(hdd, "hddName") or f"hdd{_text(hdd, 'id') or len(self.series) + 1}"
            fields: dict[str, FieldValue] = {"status": status[:40], "state": state, "ok": state == "ok"}
            if size is not None and left is not None and size > 0:
                fields.update(capacity_bytes=size, free_bytes=min(left, size),
                              used_pct=round((size - min(left, size)) / size * 100, 2))
                capacity, free = capacity + size, free + min(left, size)
            bad += state != "ok"
            self.series.append(Series("nvr_disk", {"disk": name[:40]}, fields))
        self.fields.update(disks=len(disks), disks_bad=bad, capacity_bytes=capacity, free_bytes=free)
        if capacity:
            self.fields["free_pct"] = round(free / capacity * 100, 2)

    async def _search(self, channel: _Channel, clock: _Clock, slots: asyncio.Semaphore) -> None:
        """Fill the channel's recording (and, when due, retention) fields; a failed search is a
        problem of the poll, the channel's fields stay out."""
        key = (self.device.id, channel.track)
        try:
            async with slots:
                window = dt.timedelta(seconds=self.cfg.recording_window_s)
                found = await self._find(channel.track, clock.local - window, clock.local + dt.timedelta(minutes=1))
            channel.fields["recording"] = found is not None
            cached = self.probe._oldest.get(key)
            if cached is None or time.monotonic() - cached[0] >= self.cfg.retention_refresh_s:
                async with slots:
                    first = await self._find(channel.track, EPOCH, clock.local + dt.timedelta(minutes=1))
                cached = self.probe._oldest[key] = (time.monotonic(), first)
        except _AuthFailed:
            raise
        except _Failed as exc:
            self.problems.append(f"channel {channel.number}: {exc}")
            return
        oldest = cached[1]
        if oldest is not None:
            channel.fields["oldest"] = oldest.isoformat()
            channel.fields["retention_days"] = round((clock.local - oldest).total_seconds() / 86_400, 3)

    async def _find(self, track: int, start: dt.datetime, end: dt.datetime) -> dt.datetime | None:
        """Start (NVR local time) of the first recording of `track` in [start, end], or None."""
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<CMSearchDescription version="2.0" xmlns="http://www.isapi.org/ver20/XMLSchema">\n'
            f"<searchID>{{{uuid.uuid4()}}}</searchID>\n"
            f"<trackIDList><trackID>{track}</trackID></trackIDList>\n"
            f"<timeSpanList><timeSpan><startTime>{self._when(start)}</startTime>"
            f"<endTime>{self._when(end)}</endTime></timeSpan></timeSpanList>\n"
            "<maxResults>1</maxResults>\n<searchResultPostion>0</searchResultPostion>\n"
            "<metadataList><metadataDescriptor>//recordType.meta.std-cgi.com</metadataDescriptor></metadataList>\n"
            "</CMSearchDescription>\n"
        ).encode()
        root = await self.get("search", body)
        status = (_text(root, "responseStatusStrg") or "").strip().upper()
        if status == "NO MATCHES":
            return None
        item = next(iter(_all(root, "searchMatchItem")), None)
        if item is None:
            if status in ("OK", "MORE"):
                return None
            raise _Failed(f"search: unexpected answer ({status[:40] or 'no status'})")
        return self._read_time(_text(item, "startTime") or "")

    def _when(self, local: dt.datetime) -> str:
        """A search time: the NVR's local wall clock with "Z", or UTC (search_times: utc)."""
        if self.cfg.search_times == "utc" and self.offset is not None:
            local = local - self.offset
        return local.strftime("%Y-%m-%dT%H:%M:%SZ")

    def _read_time(self, text: str) -> dt.datetime:
        """A search result's time as the NVR's local wall clock (see _when)."""
        m = re.fullmatch(r"\s*(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})?\s*", text)
        if m is None:
            raise _Failed("search: a recording without a readable startTime")
        value = dt.datetime.fromisoformat(m[1])
        suffix = m[2]
        if suffix and suffix != "Z" and self.offset is not None:
            theirs = dt.datetime.fromisoformat(m[1] + suffix).utcoffset() or dt.timedelta()
            return value - theirs + self.offset
        if suffix == "Z" and self.cfg.search_times == "utc" and self.offset is not None:
            return value + self.offset
        return value

    def _channels_done(self, channels: list[_Channel]) -> None:
        recording = not_recording = 0
        retentions = []
        for c in channels:
            fields: dict[str, FieldValue] = {"enabled": c.enabled, **c.fields}
            if c.online is not None:
                fields["online"] = c.online
            if c.detect is not None:
                fields["detect"] = c.detect
            recording += fields.get("recording") is True
            not_recording += c.enabled and fields.get("recording") is False
            if isinstance(days := fields.get("retention_days"), float):
                retentions.append(days)
            self.series.append(Series("nvr_channel", {"channel": str(c.number)}, fields))
        self.fields.update(channels=len(channels), channels_recording=recording, channels_not_recording=not_recording)
        if retentions:
            self.fields["min_retention_days"] = min(retentions)


# -- XML ------------------------------------------------------------------------------------------


def _parse(raw: bytes, what: str) -> Any:
    """The root element of an answer, parsed without DTD, entities or network; a DTD is refused."""
    from lxml import etree  # here: a daemon without NVRs does not load it

    if _DOCTYPE.search(raw, 0, 4096):  # before parsing: no entity of it is ever looked at
        raise _Failed(f"{what}: a DTD in the answer, refused")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(raw, parser)
    except etree.XMLSyntaxError:
        raise _Failed(f"{what}: not XML") from None
    return root


_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _all(root: Any, name: str) -> list[Any]:
    """Every element named `name` (any namespace) below root, document order."""
    return [e for e in root.iter() if _local(e.tag) == name]


def _text(root: Any, name: str) -> str | None:
    """Text of the first element named `name` at or below root (any namespace)."""
    for e in root.iter():
        if _local(e.tag) == name:
            return (e.text or "").strip()
    return None


def _response_status(root: Any) -> str | None:
    """"statusString (subStatusCode)" of a ResponseStatus that is no success, else None."""
    if _local(root.tag) != "ResponseStatus":
        return None
    code = _text(root, "statusCode")
    if code in ("0", "1"):
        return None
    what = _text(root, "statusString") or f"statusCode {code}"
    sub = _text(root, "subStatusCode")
    return f"{what[:60]} ({sub[:60]})" if sub else what[:60]


def _mb(text: str | None) -> int | None:
    try:
        value = int(text or "")
    except ValueError:
        return None
    return value * MB if value >= 0 else None


_POSIX_ZONE = re.compile(r"[A-Za-z]+([+-]?)(\d{1,2})(?::(\d{2}))?")


def _clock(root: Any) -> _Clock:
    """The NVR's clock from its <Time>: localTime with an offset; else the offset of its POSIX
    timeZone ("CST-8:00:00" is UTC+8: POSIX signs are inverted)."""
    text = _text(root, "localTime") or ""
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _Failed("time: no readable localTime") from None
    offset = moment.utcoffset()
    if offset is None and (m := _POSIX_ZONE.match(_text(root, "timeZone") or "")):
        sign = -1 if m[1] == "-" else 1
        offset = -sign * dt.timedelta(hours=int(m[2]), minutes=int(m[3] or 0))
    return _Clock(moment.replace(tzinfo=None), offset)


def _proxy_channels(root: Any) -> dict[int, tuple[bool | None, str | None]]:
    out: dict[int, tuple[bool | None, str | None]] = {}
    for item in _all(root, "InputProxyChannelStatus"):
        try:
            number = int(_text(item, "id") or "")
        except ValueError:
            continue
        online = _text(item, "online")
        out[number] = (None if online is None else online.lower() == "true", (_text(item, "chanDetectResult") or None))
    return out


def _channels(root: Any, proxy: dict[int, tuple[bool | None, str | None]] | None) -> list[_Channel]:
    """The main-stream track of each channel (id ends in 01), in channel order; only channels
    with a camera when InputProxy told which."""
    out: dict[int, _Channel] = {}
    for track in _all(root, "Track"):
        try:
            number = int(_text(track, "id") or "")
        except ValueError:
            continue
        if number % 100 != 1 or number // 100 in out:
            continue
        channel = number // 100
        if proxy is not None and channel not in proxy:
            continue
        online, detect = proxy.get(channel, (None, None)) if proxy is not None else (None, None)
        enabled = (_text(track, "Enable") or "").lower() == "true"
        out[channel] = _Channel(channel, number, enabled, online, detect)
    return [out[k] for k in sorted(out)]


async def _read(response: Any, limit: int) -> bytes:
    body = bytearray()
    while chunk := await response.content.read(READ_CHUNK):
        body += chunk
        if len(body) > limit:
            raise _Failed(f"answer larger than {limit} bytes")
    return bytes(body)


def _client_error(exc: Exception) -> str:
    import aiohttp

    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "connection closed by the NVR"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "broken answer"
    if isinstance(exc, aiohttp.ClientResponseError):
        return "malformed HTTP answer"
    return f"HTTP error: {type(exc).__name__}"
