"""Video-quality rules: a fault per diagnosis the frame check's `video_quality` series reports,
titled in Chinese, cleared when a check no longer finds it, held when a check decoded nothing."""

from probes.base import ProbeResult, Series
from rules.families.vqd import VIDEO_QUALITY_RULES, VideoBlurRule, VideoFrozenRule, VideoMovedRule
from rules.registry import RULE_TYPES
from tests.test_rules_values import NOW, engine, view


def frame_check(device_id: str, faults: str, **scores: float) -> ProbeResult:
    fields = {f"{k}_score": v for k, v in scores.items()} | {"faults": faults, "picture_ok": not faults}
    return ProbeResult(device_id, "rtsp_frame", NOW, True, None, {"up": True}, (Series("video_quality", {}, fields),))


def test_every_diagnosis_has_a_registered_rule_type():
    from probes.vqd.diagnose import DIAGNOSES

    assert {cls.diagnosis for cls in VIDEO_QUALITY_RULES} == set(DIAGNOSES)
    assert all(RULE_TYPES[cls.model_fields["type"].default] is cls for cls in VIDEO_QUALITY_RULES)


def test_faults_raised_titled_and_resolved():
    e = engine(VideoBlurRule(name="blur"), VideoFrozenRule(name="frozen"), VideoMovedRule(name="moved"))
    e.observe(frame_check("C1", "blur,frozen", blur=0.81, frozen=0.99))
    e.observe(frame_check("C2", "", blur=0.41))
    out = e.evaluate(view(), set())
    assert set(out) == {("blur", "device:C1"), ("frozen", "device:C1")}
    assert out[("blur", "device:C1")].title == "摄像机S1C1画面模糊（评分0.81）"
    assert out[("frozen", "device:C1")].title == "摄像机S1C1画面冻结（评分0.99）"
    e.observe(frame_check("C1", "", blur=0.45, frozen=0.02))
    assert e.evaluate(view(), set(out)) == {}


def test_a_check_without_frames_holds_the_fault():
    e = engine(VideoBlurRule(name="blur"))
    e.observe(frame_check("C1", "blur", blur=0.8))
    key = ("blur", "device:C1")
    assert key in e.evaluate(view(), set())
    e.observe(ProbeResult("C1", "rtsp_frame", NOW, False, "timeout (no frame within 15 s)", {"up": False}))
    assert e.evaluate(view(), {key})[key].held
