"""ONVIF probe (ONVIF Core and Media Service specifications, Profile S) on onvif-zeep-async 4.x.

One probe of one camera, each call bounded by `timeout_s`:

1. GetSystemDateAndTime (no credentials, ONVIF Core §8.3.12; with them if the device insists):
   the device clock against ours, corrected by half the round trip → clock_offset_s. The offset
   shifts the WS-Security `Created` time of every later call (onvif-zeep-async's dt_diff), so a
   camera whose clock drifted still accepts us: cameras refuse a Created outside ±5 min of
   *their* clock (OASIS WSS UsernameToken Profile 1.0 §3.1).
2. GetDeviceInformation (WS-Security UsernameToken, PasswordDigest): manufacturer, model,
   firmware, serial; compared with the point list → inventory_mismatch. Answered = `up`.
3. update_xaddrs (GetServices, else GetCapabilities), GetProfiles, GetStreamUri of the first
   profile (RTP-Unicast over RTSP) → profiles, stream_uri (user:password@ removed; the main
   stream, for the rtsp probe); GetStreamUri of the smallest profile at least 480 px wide
   (probes.vqd.config.ANALYSIS_WIDTH; probes.onvif_model.pick_analysis_profile) →
   sub_stream_uri, the sub-stream (子码流) the frame check reads: the first profile's URI when
   no other qualifies (no size, below 480 px as a CIF stream, a fault or a malformed URI).
   Failures here leave `up` true and the fields out (the device answered authenticated).

Safety against hostile or broken devices: every response is read through a transport that
stops at `max_response_bytes` and checks it is well-formed XML without a DTD or entities (a
strict lxml parse, no network, no entity resolution, no huge trees) before zeep sees it; zeep
itself runs with forbid_dtd/forbid_entities and without huge trees. Each call has an overall
deadline (asyncio.timeout), so a server dripping one byte per second is cut like a silent one.
Service addresses the device advertises are pinned to its own address (port and path kept):
a device must not steer our credentials elsewhere.

Cost: an ONVIFCamera (two aiohttp sessions, two zeep clients per service) is made per probe
and closed after it, so memory stays bounded by the probes running at once, not by the fleet;
the parsed WSDLs are cached by onvif-zeep-async for the whole process. zeep costs 7–15 ms of
CPU per probe in long synchronous stretches, so the probes run on an event loop of their own
thread (ZeepLoop), never on the daemon's; the media calls (half the cost) are made at most every
`media_refresh_s` per camera. zeep and onvif-zeep-async themselves (~8 MB of RSS) are loaded
only when the probe is entered: this module holds the probe and its fields, probes/onvif_model.py
the config and the pure helpers (shared with the client), and probes/_onvif_client.py everything
that needs those libraries (transport, camera, reasons, the calls), so importing fleetmon or
running ICMP only does not load them.

Public API: `OnvifConfig` (config model, probes.onvif in config.yaml; accounts: probes.accounts;
defined in probes.onvif_model), `OnvifProbe` (probes.base.Probe), `MEASUREMENT`.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Awaitable, Callable, ClassVar, TypeVar

from pydantic import SecretStr

from monitor.core.measurement import DEVICE_TAGS, FieldSpec, MeasurementSpec
from monitor.core.model import Basis, Device
from probes.base import ProbeResult
from probes.onvif_model import PROBE_NAME, OnvifConfig

_T = TypeVar("_T")

CLOSE_GRACE_S = 5.0
"""How long the worker waits at stop for cancelled probes to close their cameras."""

MAX_CALLS = 7
"""Most calls in one probe: GetSystemDateAndTime ×2 (without, then with credentials),
GetDeviceInformation, GetServices, GetCapabilities (fallback), GetProfiles, GetStreamUri."""

MEASUREMENT = MeasurementSpec(
    "onvif",
    "One ONVIF probe of one camera: clock, device information (vs the point list), first media profile.",
    DEVICE_TAGS,
    {
        "up": FieldSpec("boolean", "", "GetDeviceInformation answered with our credentials"),
        "response_ms": FieldSpec("float", "ms", "duration of the whole probe (all calls)"),
        "clock_offset_s": FieldSpec(
            "float", "s", "device UTC clock − fleetmon's, corrected by half the round trip (signed; ±0.5 s)"
        ),
        "clock_drift_s": FieldSpec("float", "s", "|clock_offset_s|"),
        "manufacturer": FieldSpec("string", "", "GetDeviceInformation Manufacturer"),
        "model": FieldSpec("string", "", "GetDeviceInformation Model"),
        "firmware": FieldSpec("string", "", "GetDeviceInformation FirmwareVersion"),
        "serial": FieldSpec("string", "", "GetDeviceInformation SerialNumber"),
        "inventory_mismatch": FieldSpec(
            "string", "", "'' or 'field: device value ≠ point-list value (点位表)', '; '-separated"
        ),
        "profiles": FieldSpec("integer", "", "media profiles (GetProfiles)"),
        "stream_uri": FieldSpec("string", "", "RTSP URI of the first profile, without user:password@"),
        "sub_stream_uri": FieldSpec(
            "string", "", "RTSP URI of the smallest profile ≥ 480 px wide (子码流), else of the first; no user:password@"
        ),
    },
)


# ---------------------------------------------------------------------------------------------
# The probe.


class ZeepLoop:
    """An event loop on a thread of its own for onvif-zeep-async. Building zeep clients and
    parsing SOAP costs about 15 ms of CPU per camera in long synchronous stretches (measured:
    event-loop stalls of several seconds with 1,850 cameras); on the daemon's loop that delays
    every ICMP reply and makes healthy links look dead. Here the interpreter switches threads
    every few ms (sys.getswitchinterval), so the daemon's loop keeps its pace."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="onvif", daemon=True)
        self._thread.start()

    async def run(self, coro: Awaitable[_T]) -> _T:
        """Run `coro` on the worker's loop; cancelling the caller cancels it there."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def stop(self) -> None:
        """Cancel what still runs there, stop the loop, join the thread (blocking).

        Probes whose callers were cancelled (the schedulers stop first) are cancelling already
        and closing their camera's sessions: they are not cancelled a second time, which would
        cut that close short and leak the sessions; they get CLOSE_GRACE_S to finish."""
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                if not task.cancelling():
                    task.cancel()
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=CLOSE_GRACE_S)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        self.loop.close()


class OnvifProbe:
    """The `onvif` probe (probes.base.Probe); see the module doc for the calls and the fields."""

    name: ClassVar[str] = PROBE_NAME
    Config: ClassVar[type[OnvifConfig]] = OnvifConfig
    measurements: ClassVar[tuple[MeasurementSpec, ...]] = (MEASUREMENT,)
    basis: ClassVar[Basis | None] = Basis.SERVICE
    # stream_uri for the RTSP checks, sub_stream_uri for the frame check (rtsp_frame `stream`);
    # serial for the work orders (a changed serial proposes a replacement: monitor.assess.serials).
    offers: ClassVar[tuple[str, ...]] = ("stream_uri", "sub_stream_uri", "serial")
    learns: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: OnvifConfig) -> None:
        self.cfg = cfg
        self._match = cfg.match.selector()
        self._accounts: dict[tuple, tuple[str, SecretStr] | None] = {}
        self._media_due: dict[str, float] = {}  # device id → monotonic time of its next media read

    async def __aenter__(self) -> "OnvifProbe":
        # zeep and onvif-zeep-async load here, not when fleetmon is imported: a daemon without
        # this probe does not pay their ~8 MB of RSS. Once, before the schedulers start (~0.1 s).
        from probes._onvif_client import probe_camera

        self._probe_camera: Callable[..., Awaitable[ProbeResult]] = probe_camera
        self._worker = ZeepLoop()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self._worker.stop)

    def wants(self, device: Device) -> bool:
        """Devices the config's `match` selects (cameras by default) that have an address and
        credentials: without them every probe would fail alike and the service online rate
        would read 0 % on a fleet whose ONVIF was simply not configured."""
        return device.address is not None and self._match.matches(device) and self.account(device) is not None

    def budget_s(self, device: Device) -> float:
        """Worst case of probe(): MAX_CALLS calls of timeout_s each, plus closing."""
        return MAX_CALLS * self.cfg.timeout_s + 0.5

    def account(self, device: Device) -> tuple[str, SecretStr] | None:
        """(username, password) for `device`: the defaults, then the last matching override."""
        key = (device.region, device.site, device.kind, device.tags)
        if key not in self._accounts:
            self._accounts[key] = self.cfg.account_for(device)
        return self._accounts[key]

    async def probe(self, device: Device) -> ProbeResult:
        """Ask the camera (see the module doc). Never raises for a dead, slow, hostile or
        misconfigured device: ok=False with a reason. Runs on the probe's own thread (ZeepLoop);
        cancelling it cancels the probe there."""
        return await self._worker.run(self._probe_camera(self.cfg, device, self.account(device), self._media_due))
