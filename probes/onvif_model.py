"""What the ONVIF probe (probes.onvif) and its zeep side (probes._onvif_client) share, so that
neither imports the other: the probe's name and config (OnvifConfig) and the pure helpers on what
a camera reports (strip_userinfo, rtsp_uri, profile_size, pick_analysis_profile,
inventory_mismatch). Loads neither zeep nor onvif-zeep-async.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, model_validator

from monitor.core.config_base import SelectorConfig
from monitor.core.model import Device, Kind
from probes.accounts import CameraAccounts
from probes.base import ConfirmConfig
from probes.vqd.config import ANALYSIS_WIDTH

PROBE_NAME = "onvif"
"""The probe's name (probes.base.Probe.name): its config section, its results' `probe`."""


class OnvifConfig(CameraAccounts):
    """probes.onvif in config.yaml; the account fields (username, password_env/_file,
    credentials) are probes.accounts.CameraAccounts. Without an account, no camera is polled."""

    enabled: bool = True
    interval_s: Annotated[float, Field(ge=10, le=86_400)] = 300.0
    """Probe cycle: every camera is asked once per interval."""
    match: SelectorConfig = SelectorConfig(kind=[Kind.CAMERA])
    """Devices probed (those with an address)."""
    port: Annotated[int, Field(ge=1, le=65_535)] = 80
    """HTTP port of the device service (/onvif/device_service)."""
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    """Deadline of each SOAP call, whole response included."""
    max_response_bytes: Annotated[int, Field(ge=16_384, le=64 << 20)] = 1 << 20
    """Longest response read (decompressed); a longer one fails the probe."""
    media_refresh_s: Annotated[float, Field(ge=0, le=7 * 86_400)] = 3600.0
    """GetServices, GetProfiles and GetStreamUri at most this often per camera (0: every probe):
    stream URIs rarely change, and these calls are half of a probe's cost."""
    confirm: ConfirmConfig = ConfirmConfig()
    """Confirmation probing of a camera whose device service failed (probes.base.ConfirmConfig);
    off unless configured."""

    @model_validator(mode="after")
    def _confirm_fits(self) -> "OnvifConfig":
        self.confirm.check_fits(self.interval_s, self.timeout_s)  # a silent camera: its first call
        return self


def strip_userinfo(uri: str) -> str:
    """`uri` without user:password@ (cameras put their credentials in stream URIs)."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def rtsp_uri(uri: str) -> str:
    """`uri` without user:password@ when it is an rtsp:// URL with a host (and no port 0),
    else "" (a camera's malformed or non-RTSP answer)."""
    try:
        parts = urlsplit(uri.strip())
        ok = parts.scheme.lower() == "rtsp" and bool(parts.hostname) and parts.port != 0
    except ValueError:  # e.g. an unclosed [ or a port that is not a number
        return ""
    return strip_userinfo(uri.strip()) if ok else ""


MAX_SIDE = 16384
"""Pixels: a profile reporting a larger (or non-positive) width or height has no usable size."""


def profile_size(profile: Any) -> tuple[int, int] | None:
    """(width, height) in pixels of a GetProfiles tt:Profile (its VideoEncoderConfiguration
    Resolution, ONVIF Media Service §5.2 / onvif.xsd), or None when it has none, or one that
    is not two integers in 1..MAX_SIDE."""
    try:
        resolution = profile.VideoEncoderConfiguration.Resolution
        width, height = int(resolution.Width), int(resolution.Height)
    except (AttributeError, TypeError, ValueError):
        return None
    return (width, height) if 0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE else None


def pick_analysis_profile(sizes: Sequence[tuple[int, int] | None]) -> int:
    """Index of the profile the frame check reads (hint sub_stream_uri): the smallest in pixels
    whose video is at least ANALYSIS_WIDTH (probes/vqd: 480 px) wide, the earlier among equal
    sizes; 0 (the first profile, the main stream) when none is or `sizes` is empty. `sizes`:
    profile_size of each profile, in GetProfiles order. A CIF (352×288) sub-stream is below the
    analysis width, so such a camera is checked on its main stream."""
    best, best_pixels = 0, None
    for index, size in enumerate(sizes):
        if size is not None and size[0] >= ANALYSIS_WIDTH and (best_pixels is None or size[0] * size[1] < best_pixels):
            best, best_pixels = index, size[0] * size[1]
    return best


_INVENTORY = ("manufacturer", "model", "firmware", "serial")
# Point lists name brands in Chinese, devices report them in English over ONVIF.
_BRANDS = {
    "海康": "hikvision", "海康威视": "hikvision", "大华": "dahua", "浙江大华": "dahua", "宇视": "uniview",
    "华为": "huawei", "天地伟业": "tiandy", "科达": "kedacom", "萤石": "ezviz", "中维世纪": "jovision",
}


def _same(field: str, value: str, listed: str) -> bool:
    value, listed = value.strip().casefold(), listed.strip().casefold()
    if field == "manufacturer":
        value, listed = _BRANDS.get(value, value), _BRANDS.get(listed, listed)
    return value == listed


def inventory_mismatch(device: Device, reported: dict[str, str]) -> str:
    """'' when what the device reports agrees with the point list (trimmed, case-insensitive,
    Chinese brand names equal to their English ones, fields the point list leaves empty
    ignored), else e.g. 'firmware: V5.5.0 ≠ V5.7.1 (点位表)' (device value first),
    '; '-separated in a fixed order."""
    out = []
    for field in _INVENTORY:
        listed = (getattr(device, field) or "").strip()
        value = reported.get(field, "")
        if listed and not _same(field, value, listed):
            out.append(f"{field}: {value[:40]} ≠ {listed[:40]} (点位表)")
    return "; ".join(out)
