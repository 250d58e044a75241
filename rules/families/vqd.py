"""Video-quality rules (视频质量诊断): one rule type per diagnosis of probes/vqd, on the
`video_quality` series of the frame check (rtsp_frame with `vqd.enabled`). The probe judges
(score against the camera's threshold, faults that hide others); a rule holds while its
diagnosis is in the latest check's `faults` and clears when a check no longer finds it. A check
that decoded no frame reports no series: a firing fault is held, not resolved (video_down
speaks for a camera without video)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Mapping

from monitor.core.config_base import SelectorConfig
from monitor.core.model import Device, Kind
from rules.base import Facts
from rules.families.values import Described, _ValueRule
from rules.model import Severity

_NAMES = {
    "video_signal_loss": ("signal_loss", "无信号", "no video signal"),
    "video_dark": ("dark", "画面过暗", "picture too dark"),
    "video_bright": ("bright", "画面过亮", "picture too bright"),
    "video_blur": ("blur", "画面模糊", "picture blurred"),
    "video_occlusion": ("occlusion", "画面遮挡", "picture occluded"),
    "video_frozen": ("frozen", "画面冻结", "picture frozen"),
    "video_cast": ("cast", "偏色", "colour cast"),
    "video_noise": ("noise", "画面噪声", "noisy picture"),
    "video_moved": ("moved", "镜头移位", "camera moved off its view"),
    "video_decode_errors": ("decode_errors", "花屏卡顿", "mosaic or stutter"),
}
TITLES = {
    "zh": {t: "{kind}{name}" + zh + "（评分{score:.2f}）" for t, (_, zh, _) in _NAMES.items()},
    "en": {t: "{kind} {name}: " + en + " (score {score:.2f})" for t, (_, _, en) in _NAMES.items()},
}


class _VideoQualityRule(_ValueRule):
    measurement, fields = "video_quality", ("faults",)
    titles = TITLES
    diagnosis: ClassVar[str]
    match: SelectorConfig = SelectorConfig(kind=[Kind.CAMERA])
    severity: Severity = Severity.MINOR

    def flag(self, fields: Mapping[str, Any]) -> bool:
        return self.diagnosis in str(fields.get("faults", "")).split(",")

    def describe(self, facts: Facts, device: Device, fields: Mapping[str, Any], value: float | None) -> Described:
        return self.type, {"score": float(fields.get(f"{self.diagnosis}_score", 0.0))}, ()


class VideoSignalLossRule(_VideoQualityRule):
    diagnosis = "signal_loss"
    type: Literal["video_signal_loss"] = "video_signal_loss"
    severity: Severity = Severity.MAJOR


class VideoDarkRule(_VideoQualityRule):
    diagnosis = "dark"
    type: Literal["video_dark"] = "video_dark"


class VideoBrightRule(_VideoQualityRule):
    diagnosis = "bright"
    type: Literal["video_bright"] = "video_bright"


class VideoBlurRule(_VideoQualityRule):
    diagnosis = "blur"
    type: Literal["video_blur"] = "video_blur"


class VideoOcclusionRule(_VideoQualityRule):
    diagnosis = "occlusion"
    type: Literal["video_occlusion"] = "video_occlusion"
    severity: Severity = Severity.MAJOR


class VideoFrozenRule(_VideoQualityRule):
    diagnosis = "frozen"
    type: Literal["video_frozen"] = "video_frozen"
    severity: Severity = Severity.MAJOR


class VideoCastRule(_VideoQualityRule):
    diagnosis = "cast"
    type: Literal["video_cast"] = "video_cast"


class VideoNoiseRule(_VideoQualityRule):
    diagnosis = "noise"
    type: Literal["video_noise"] = "video_noise"


class VideoMovedRule(_VideoQualityRule):
    diagnosis = "moved"
    type: Literal["video_moved"] = "video_moved"


class VideoDecodeErrorsRule(_VideoQualityRule):
    diagnosis = "decode_errors"
    type: Literal["video_decode_errors"] = "video_decode_errors"


VIDEO_QUALITY_RULES: tuple[type[_VideoQualityRule], ...] = (
    VideoSignalLossRule, VideoDarkRule, VideoBrightRule, VideoBlurRule, VideoOcclusionRule, VideoFrozenRule,
    VideoCastRule, VideoNoiseRule, VideoMovedRule, VideoDecodeErrorsRule,
)
