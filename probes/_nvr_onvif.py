"""The NVR probe's ONVIF Profile G path: recorders that are not Hikvision (Dahua 大华, Uniview 宇视,
Tiandy 天地伟业 …) answer ISAPI with 404 but implement ONVIF Profile G (ONVIF Recording Control
Service and Recording Search Service specifications). One poll of one recorder, each call bounded
by `timeout_s`, the whole by the probe's `deadline_s`:

1. GetSystemDateAndTime (device management): the recorder's clock → clock_offset_s; later calls
   are signed with it (WS-Security UsernameToken, as the ONVIF probe does: probes/_onvif_client.py).
2. GetServices: the Recording and Search services must be offered, else the reason says "no
   ONVIF Profile G" (the recorder needs ISAPI or another API: `api:` in probes.nvr).
3. GetRecordingSummary (search): answered with our account = the recorder's service is up.
4. GetRecordings (recording): one recording per channel, in the recorder's order; channel n is
   the n-th recording (tag `channel`).
5. GetRecordingJobs (recording): a recording with an Active job is switched on (`enabled`);
   a recorder that does not answer it has every recording counted as switched on.
6. GetRecordingInformation per recording (at most `max_in_flight` at once): EarliestRecording
   → retention_days (the recorder's now − oldest data), LatestRecording within
   `recording_window_s` of the recorder's now (or RecordingStatus "Recording" where no
   LatestRecording is given) → recording.

ONVIF has no standard disk health (tds:GetStorageConfigurations names storage, not its state),
so `nvr_disk` series and the disk fields are absent for these recorders; their `oldest` is UTC
with its offset (ISAPI's is the recorder's local time).

Same safety as the ONVIF probe: bounded, DTD-free responses; service addresses pinned to the
recorder's own address. Private to probes.nvr, imported when an NVR is polled over ONVIF (zeep
costs ~8 MB of RSS).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any, Awaitable, TypeVar

from pydantic import SecretStr

from monitor.core.model import Device
from probes._onvif_client import CallFailed, OnvifDevice, bounded_call, read_clock
from probes.base import FieldValue, Series

_T = TypeVar("_T")

NS_RECORDING = "http://www.onvif.org/ver10/recording/wsdl"
NS_SEARCH = "http://www.onvif.org/ver10/search/wsdl"
GONE = frozenset({"Removing", "Removed"})
"""RecordingStatus values of a recording being deleted: not a channel that should record."""


async def poll_profile_g(device: Device, account: tuple[str, SecretStr], *, port: int, timeout_s: float,
                         max_bytes: int, max_in_flight: int, window_s: float) -> tuple[bool, str | None, dict[str, FieldValue], list[Series]]:
    """(ok, reason, nvr fields, nvr_channel series) of one Profile G poll (module doc). ok is
    True once GetRecordingSummary answered with our account; later failures make the reason
    "partial: …". Never raises for a dead, slow, hostile or refusing recorder."""
    assert device.address is not None
    user, password = account[0], account[1].get_secret_value()
    camera = OnvifDevice(str(device.address), port, user, password, max_bytes, timeout_s)
    fields: dict[str, Any] = {"up": False}
    series: list[Series] = []
    try:
        ok, reason = await _poll(camera, fields, series, timeout_s, max_in_flight, window_s)
    finally:
        await camera.close()
    fields.pop("clock_drift_s", None)
    fields["up"] = ok
    return ok, reason, fields, series


async def _poll(camera: OnvifDevice, fields: dict[str, Any], series: list[Series], timeout_s: float,
                max_in_flight: int, window_s: float) -> tuple[bool, str | None]:
    def call(awaitable: Awaitable[_T]) -> Awaitable[_T]:
        return bounded_call(awaitable, timeout_s, True)

    try:
        devicemgmt = await camera.create_devicemgmt_service()
        await read_clock(camera, devicemgmt, fields, timeout_s, True)
        await call(camera.update_xaddrs())
        camera.pin_xaddrs()
        if not {NS_RECORDING, NS_SEARCH} <= set(camera.xaddrs):
            return False, "no ONVIF Profile G (GetServices offers no Recording and Search service)"
        search = await camera.create_search_service()
        await call(search.GetRecordingSummary())
    except CallFailed as failed:
        return False, failed.reason
    problems: list[str] = []
    try:
        recording = await camera.create_recording_service()
        items = await call(recording.GetRecordings()) or []
    except CallFailed as failed:
        return True, f"partial: GetRecordings: {failed.reason}"
    active: set[str] | None
    try:
        jobs = await call(recording.GetRecordingJobs()) or []
        active = {str(j.JobConfiguration.RecordingToken) for j in jobs if str(j.JobConfiguration.Mode) == "Active"}
    except CallFailed as failed:
        problems.append(f"GetRecordingJobs: {failed.reason}")
        active = None
    offset = dt.timedelta(seconds=fields.get("clock_offset_s", 0.0))
    now = dt.datetime.now(dt.UTC) + offset  # the recorder's now
    slots = asyncio.Semaphore(max_in_flight)

    async def information(token: str) -> Any:
        async with slots:
            return await call(search.GetRecordingInformation({"RecordingToken": token}))

    tokens = [str(item.RecordingToken) for item in items]
    answers = await asyncio.gather(*(information(t) for t in tokens), return_exceptions=True)
    recording_n = not_recording = 0
    retentions: list[float] = []
    for n, (token, answer) in enumerate(zip(tokens, answers, strict=True), 1):
        if isinstance(answer, CallFailed):
            problems.append(f"channel {n}: GetRecordingInformation: {answer.reason}")
            continue
        if isinstance(answer, BaseException):
            raise answer
        channel = _channel(answer, token in active if active is not None else True, now, window_s)
        recording_n += channel.get("recording") is True
        not_recording += channel["enabled"] is True and channel.get("recording") is False
        if isinstance(days := channel.get("retention_days"), float):
            retentions.append(days)
        series.append(Series("nvr_channel", {"channel": str(n)}, channel))
    fields.update(channels=len(tokens), channels_recording=recording_n, channels_not_recording=not_recording)
    if retentions:
        fields["min_retention_days"] = min(retentions)
    return True, f"partial: {'; '.join(problems)}" if problems else None


def _channel(info: Any, job_active: bool, now: dt.datetime, window_s: float) -> dict[str, FieldValue]:
    """nvr_channel fields of one tt:RecordingInformation."""
    status = str(getattr(info, "RecordingStatus", "") or "Unknown")
    fields: dict[str, FieldValue] = {"enabled": job_active and status not in GONE}
    earliest, latest = _utc(getattr(info, "EarliestRecording", None)), _utc(getattr(info, "LatestRecording", None))
    if latest is not None:
        fields["recording"] = now - latest <= dt.timedelta(seconds=window_s)
    else:
        fields["recording"] = status == "Recording" and earliest is not None
    if earliest is not None:
        fields["oldest"] = earliest.isoformat()
        fields["retention_days"] = round(max(0.0, (now - earliest).total_seconds()) / 86_400, 3)
    return fields


def _utc(value: object) -> dt.datetime | None:
    """An xs:dateTime from zeep as aware UTC (a naive one is read as UTC, as ONVIF times are)."""
    if not isinstance(value, dt.datetime):
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
