"""Config of video-quality diagnosis: `probes.rtsp_frame.vqd` in config.yaml. Loads no OpenCV.

Each diagnosis has a score (probes/vqd/measures.py: larger is worse) and a threshold; a score
at or above its threshold is a fault. The defaults were chosen on the ROC of the tuning split
of lab/vqd_data.py rendered at its native 384 px and at a sub-stream's 640×360 together (a camera
can be read at either; bench/vqd.py prints the choice and the held-out precision and recall).
`overrides` change thresholds for the cameras their selector picks (first match wins), e.g.
a camera facing a lake (flat, so occlusion needs more) or a tunnel (dark by nature).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from monitor.core.config_base import SelectorConfig, Strict
from monitor.core.measurement import DEVICE_TAGS, FieldSpec, MeasurementSpec
from monitor.core.model import Device

Share = Annotated[float, Field(gt=0, le=1)]

ANALYSIS_WIDTH = 480
"""Pixels: frames are scaled down to this width before the measures (probes/vqd/measures.py),
so scores do not depend on the camera's resolution. Here, without OpenCV, because the ONVIF
probe picks the frame check's sub-stream by it (probes/_onvif_client.py pick_analysis_profile)."""


class Thresholds(Strict):
    """A fault when the score reaches the threshold. Units: blur share of the sharpness lost
    (Crete blur effect against the reference), occlusion share of the frame, frozen share of
    identical lit blocks, dark 1 − p90/255 (and against the reference), bright light added / 255,
    share newly clipped or log(exposure gain) / 2, cast |Δ log channel ratio|, noise σ grey levels, signal_loss
    share of a solid colour or bars, moved share of the width, decode_errors per burst.
    Measures and the ROC choice: probes/vqd/measures.py, bench/vqd.py, docs/VQD.md."""

    blur: Share = 0.311
    occlusion: Share = 0.107
    frozen: Share = 0.954
    dark: Share = 0.730
    bright: Share = 0.431
    cast: Annotated[float, Field(gt=0, le=5)] = 0.135
    noise: Annotated[float, Field(gt=0, le=128)] = 3.13
    signal_loss: Share = 0.879
    moved: Share = 0.045
    decode_errors: Annotated[int, Field(ge=1)] = 1


class ThresholdsOverride(Strict):
    """Thresholds for the cameras `match` picks; a field left out keeps the default."""

    match: SelectorConfig
    blur: Share | None = None
    occlusion: Share | None = None
    frozen: Share | None = None
    dark: Share | None = None
    bright: Share | None = None
    cast: Annotated[float, Field(gt=0, le=5)] | None = None
    noise: Annotated[float, Field(gt=0, le=128)] | None = None
    signal_loss: Share | None = None
    moved: Share | None = None
    decode_errors: Annotated[int, Field(ge=1)] | None = None


class VqdConfig(Strict):
    """Video-quality diagnosis on the frames the frame check (rtsp_frame) pulls."""

    enabled: bool = False
    thresholds: Thresholds = Thresholds()
    overrides: list[ThresholdsOverride] = []
    burst_gap_s: Annotated[float, Field(ge=1, le=30)] = 2.0
    """Seconds between the two frames of the burst (frozen picture, noise): the stream is read
    this long longer, so bytes per check ≈ probesize + gap × bitrate. With key frames only, the
    second frame is the first key frame this long after the first (to within half a frame
    interval): cameras send one every 2 s (a GOP of 50 at 25 fps) by default, so 2 s reads one
    GOP where 3 s read two. Two seconds still show the OSD clock ticking on a frozen picture."""
    keyframes_only: bool = True
    """Decode only key frames (FFmpeg's skip_frame nokey, both decoders): a fraction of the
    CPU; decoding errors are then counted on key frames only."""
    reference_dir: Path | None = None
    """Where each camera's reference frame (moved camera, occlusion, colour) is kept as
    <device id>.png; None keeps them in memory only. The first frame without a fault becomes
    the reference; delete the file (or restart without a directory) to take a new one."""
    max_pixels: Annotated[int, Field(ge=64 * 48, le=200_000_000)] = 40_000_000
    """Larger images are refused by `fleetmon probe vqd IMAGE` before decoding (8K is 33 MP),
    and larger streams by the PyAV decoder before their first frame (the size from the SDP)."""

    def thresholds_for(self, device: Device | None) -> Thresholds:
        """The thresholds of `device`: the first override whose selector matches, else the defaults."""
        if device is None:
            return self.thresholds
        for override in self.overrides:
            if override.match.selector().matches(device):
                changed = override.model_dump(exclude={"match"}, exclude_none=True)
                return self.thresholds.model_copy(update=changed)
        return self.thresholds


_SCORE_FIELDS = {
    "signal_loss": ("", "share of the frame in one solid colour or colour bars (no video screen); 0 for the "
                        "solid colour when the frame still follows the reference scene"),
    "dark": ("", "1 − p90 luma / 255, and at most 1 − p90 / reference p90: dark and darker than usual"),
    "bright": ("", "light added to every pixel / 255 (exposure fit to the reference), share newly clipped white, "
                   "or log(exposure gain against the reference) / 2"),
    "blur": ("", "share of the sharpness lost against the reference, per block (Crete et al. 2007), 0.7 quantile"),
    "occlusion": ("", "share of the frame in the largest flat region that is not what the reference shows there"),
    "frozen": ("", "share of the lit blocks (mean luma ≥ 16) identical between two frames burst_gap_s apart"),
    "cast": ("", "max |offset of log R/G, log B/G| against the reference's blocks (or the grey world)"),
    "noise": ("grey levels", "noise σ, the quietest fifth of the blocks (spatial and temporal)"),
    "moved": ("", "largest displacement of a frame corner against the reference frame, share of the width"),
    "decode_errors": ("", "decoder errors (concealed macroblocks, missing references) in the burst"),
}
MEASUREMENT = MeasurementSpec(
    "video_quality",
    "Video-quality diagnosis (视频质量诊断) of the frames one frame check (rtsp_frame) decoded, when "
    "probes.rtsp_frame.vqd is enabled; a score ≥ its threshold is a fault (probes/vqd/config.py).",
    DEVICE_TAGS,
    {
        **{f"{name}_score": FieldSpec("float", unit, text) for name, (unit, text) in _SCORE_FIELDS.items()},
        "faults": FieldSpec("string", "", "the faults found, comma-separated (blur,occlusion,…); empty = picture normal"),
        "picture_ok": FieldSpec("boolean", "", "no fault found (画面正常)"),
        "frames": FieldSpec("integer", "", "frames analysed"),
        "analysis_ms": FieldSpec("float", "ms", "CPU time of the analysis (worker thread)"),
    },
)
