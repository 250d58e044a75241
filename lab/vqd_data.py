"""A labelled set for video-quality diagnosis: real photographs from scikit-image
(`skimage.data`) and from Debian's opencv-doc (OpenCV's samples), seen through a simulated
surveillance camera and degraded with one defect each at realistic strengths, or left clean.

Photographs. scikit-image 0.26 (every real camera scene it ships; public domain or CC0 per its
data README): tuning `camera` (Cameraman, grey), `coffee`, `coins` (grey), `grass` (grey
texture), `motorcycle_left`, `motorcycle_right` (stereo pair, one scene); held-out
`astronaut`, `chelsea` (a cat), `rocket` (a launch pad at dusk), `brick` (grey), `gravel`
(grey). Left out: microscopy, astronomy, scans, drawings, `clock_motion` (motion-blurred on
purpose) and the 200-px chessboards. opencv-doc (`cv_*`, read from OPENCV_SAMPLES, the street
and building scenes a surveillance camera sees): tuning a building, the Leuven street pair
(one street, both in tuning), an aerial view, a gym (grey), a potted plant, three street
scenes; held-out another aerial view, three other street scenes, a palace, a stadium, a
desk (grey), a graffiti wall. The grey ones stand for infrared black-and-white night
pictures (no chroma: must not read as a colour cast).

The camera (`_camera`): a random crop of 65–85 % of the photograph, 384 px wide (4:3 or 16:9),
exposure gain 0.75–1.25, gamma 0.85–1.15, white balance ±4 %, sensor noise σ 0.8–3 grey levels,
an OSD clock (top left, ticking between frames) and a channel name, JPEG quality 60–90. Each
sample is a burst of two frames three seconds apart plus a reference frame of the same view
taken at another time (gain 0.7–1.3, vibration ≤ 0.5 % of the width). With `size` (e.g.
640×360, a sub-stream's 16:9 frame) the same samples are rendered at that size instead (each
sample's own seed; `sample`): the crop enlarged or reduced to it (a 4:3 draw's middle 16:9
band), noise, OSD and JPEG at that size; the measures then scale them down to ANALYSIS_WIDTH
as they do a decoded frame.

Defects (`DEFECTS`), each applied to the scene of both frames:
- blur: defocus, Gaussian σ 0.6–1.4 % of the width (2.3–5.4 px), half of them fogged too
  (contrast down 20–40 %);
- occlusion: a close, out-of-focus object (dark, green or skin-coloured blob with a soft edge,
  faint texture) from one border covering 25–70 % of the frame;
- frozen: the second frame repeats the first (sensor noise included); only the OSD clock ticks;
- dark: exposure gain 0.06–0.15 (a night picture without IR);
- bright: gain 3.5–6 with clipping (iris open), or a veil of +150…200 (glare, washed out);
- cast: one channel gain 1.35–1.8 or the others 0.55–0.75 (white balance lost, IR-cut filter
  stuck);
- noise: snow, Gaussian σ 12–35 plus 0–2 % salt and pepper;
- signal_loss: solid black, blue or grey, or 75 % colour bars, with or without "NO VIDEO" text;
- moved: the crop window panned by 12–35 % of its width, or zoomed 1.3–1.6×, or turned 8–20°.

`samples(split, per_photo, seed)` yields `Sample`s; deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

OPENCV_SAMPLES = Path("/usr/share/doc/opencv-doc/examples")
"""Debian's opencv-doc (Makefile APT_PKGS): OpenCV's sample photographs, Apache-2.0/BSD per
/usr/share/doc/opencv-doc/copyright; read in place, never copied into the repository."""
_CV_PHOTOS = {
    "cv_building": "data/building.jpg", "cv_leuven_a": "data/leuvenA.jpg", "cv_leuven_b": "data/leuvenB.jpg",
    "cv_aerial_1": "data/aero1.jpg", "cv_aerial_3": "data/aero3.jpg", "cv_basketball": "data/basketball1.png",
    "cv_plant": "alphamat/input_images/plant.jpg", "cv_street_1": "text/scenetext01.jpg",
    "cv_street_2": "text/scenetext02.jpg", "cv_street_3": "text/scenetext03.jpg",
    "cv_street_4": "text/scenetext04.jpg", "cv_street_5": "text/scenetext05.jpg",
    "cv_street_6": "text/scenetext06.jpg", "cv_palace": "data/home.jpg", "cv_stadium": "data/messi5.jpg",
    "cv_desk": "data/box_in_scene.png", "cv_graffiti": "data/graf1.png",
}
TUNING = ("camera", "coffee", "coins", "grass", "motorcycle_left", "motorcycle_right",
          "cv_building", "cv_leuven_a", "cv_leuven_b", "cv_aerial_1", "cv_basketball", "cv_plant", "cv_street_1",
          "cv_street_3", "cv_street_5")
HELD_OUT = ("astronaut", "chelsea", "rocket", "brick", "gravel",
            "cv_aerial_3", "cv_street_2", "cv_street_4", "cv_street_6", "cv_palace", "cv_stadium", "cv_desk",
            "cv_graffiti")
DEFECTS = ("blur", "occlusion", "frozen", "dark", "bright", "cast", "noise", "signal_loss", "moved")
LABELS = ("clean", *DEFECTS)
WIDTH = 384


@dataclass(frozen=True, slots=True)
class Sample:
    photo: str
    label: str  # "clean" or one of DEFECTS
    frames: tuple[np.ndarray, ...]  # BGR uint8, three seconds apart
    reference: np.ndarray  # BGR uint8, the same view at another time


def photo(name: str) -> np.ndarray:
    """The photograph as BGR uint8. Raises FileNotFoundError naming the Debian package when an
    OpenCV sample is missing."""
    import skimage.data

    if name in _CV_PHOTOS:
        path = OPENCV_SAMPLES / _CV_PHOTOS[name]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
        if image is None:
            raise FileNotFoundError(f"{path}: install Debian's opencv-doc (Makefile APT_PKGS) for photograph {name}")
        return image
    if name.startswith("motorcycle_"):
        left, right, _ = skimage.data.stereo_motorcycle()
        image = left if name.endswith("left") else right
    else:
        image = getattr(skimage.data, name)()
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2BGR)


@dataclass(frozen=True, slots=True)
class _View:
    cx: float  # crop centre, source pixels
    cy: float
    cw: float  # crop width, source pixels
    angle: float  # degrees
    aspect: float  # height / width of the output
    flip: bool


def _render(src: np.ndarray, view: _View, width: int = WIDTH) -> np.ndarray:
    """The crop of `src` seen by `view`, `width` px wide (area-averaged, bicubic when rotated
    or enlarged)."""
    h_out = round(width * view.aspect)
    scale = width / view.cw
    m = cv2.getRotationMatrix2D((view.cx, view.cy), view.angle, scale)
    m[0, 2] += width / 2 - view.cx
    m[1, 2] += h_out / 2 - view.cy
    if scale < 1 and view.angle == 0:  # plain downscale: crop then INTER_AREA keeps it sharp
        x0, y0 = view.cx - view.cw / 2, view.cy - view.cw * view.aspect / 2
        crop = src[max(0, round(y0)): round(y0 + view.cw * view.aspect), max(0, round(x0)): round(x0 + view.cw)]
        out = cv2.resize(crop, (width, h_out), interpolation=cv2.INTER_AREA)
    else:
        out = cv2.warpAffine(src, m, (width, h_out), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return out[:, ::-1] if view.flip else out


def _base_view(src: np.ndarray, rng: np.random.Generator, aspect_is: float | None = None) -> _View:
    """A crop of 65–85 % of `src`, 4:3 or 16:9 at random; with `aspect_is` (a size's height /
    width) the same crop's centre and width at that aspect (a 16:9 frame of a 4:3 draw is its
    middle band), narrowed only where that aspect would not fit in `src`."""
    h, w = src.shape[:2]
    aspect = float(rng.choice([0.75, 0.5625]))
    cw = min(w, h / aspect) * rng.uniform(0.65, 0.85)
    ch = cw * aspect
    cx = rng.uniform(cw / 2, w - cw / 2)
    cy = rng.uniform(ch / 2, h - ch / 2)
    flip = bool(rng.integers(2))
    if aspect_is is not None and aspect_is != aspect:
        aspect = aspect_is
        cw = min(cw, h / aspect)
        cy = float(np.clip(cy, cw * aspect / 2, h - cw * aspect / 2))
    return _View(cx, cy, cw, 0.0, aspect, flip)


def _moved_view(src: np.ndarray, view: _View, rng: np.random.Generator) -> _View:
    h, w = src.shape[:2]
    how = rng.choice(["pan", "zoom", "turn"])
    if how == "zoom":
        return _View(view.cx, view.cy, view.cw / rng.uniform(1.3, 1.6), 0.0, view.aspect, view.flip)
    if how == "turn":
        return _View(view.cx, view.cy, view.cw, float(rng.choice([-1, 1]) * rng.uniform(8, 20)), view.aspect, view.flip)
    shift = view.cw * rng.uniform(0.12, 0.35)
    angle = rng.uniform(0, 2 * np.pi)
    cx = float(np.clip(view.cx + shift * np.cos(angle), 0, w))
    cy = float(np.clip(view.cy + shift * np.sin(angle), 0, h))
    if np.hypot(cx - view.cx, cy - view.cy) < 0.12 * view.cw:  # against the border: zoom instead
        return _View(view.cx, view.cy, view.cw / 1.45, 0.0, view.aspect, view.flip)
    return _View(cx, cy, view.cw, 0.0, view.aspect, view.flip)  # borders reflected (as a wall would be)


@dataclass(frozen=True, slots=True)
class _Exposure:
    gain: float
    gamma: float
    wb: tuple[float, float, float]
    sigma: float
    quality: int


def _exposure(rng: np.random.Generator, gain: tuple[float, float] = (0.75, 1.25)) -> _Exposure:
    return _Exposure(
        rng.uniform(*gain), rng.uniform(0.85, 1.15), tuple(rng.uniform(0.96, 1.04, 3)), rng.uniform(0.8, 3.0),
        int(rng.integers(60, 91)),
    )


def _osd(image: np.ndarray, second: int) -> None:
    """The OSD clock (top left) and channel name (bottom right), white with a dark outline."""
    h, w = image.shape[:2]
    text = f"2026-12-05 14:{second // 60 % 60:02d}:{second % 60:02d}"
    for colour, thick in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(image, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, thick, cv2.LINE_AA)
        cv2.putText(image, "CAM 01", (w - 70, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, thick, cv2.LINE_AA)


def _sensor(scene: np.ndarray, exp: _Exposure, pixels: np.random.Generator) -> np.ndarray:
    """Exposure, gamma, white balance and sensor noise (drawn from `pixels`) on a float scene
    (0–255) → uint8."""
    x = np.clip(scene * exp.gain, 0, 255) / 255.0
    x = 255.0 * x ** exp.gamma * np.array(exp.wb)
    x = x + pixels.normal(0, exp.sigma, x.shape)
    return np.clip(x, 0, 255).astype(np.uint8)


def _encode(image: np.ndarray, second: int, quality: int) -> np.ndarray:
    image = image.copy()
    _osd(image, second)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def _occluder(shape: tuple[int, ...], rng: np.random.Generator,
              pixels: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(alpha H×W 0–1, colour H×W×3): a soft blob from one border covering 25–70 %; its
    faint texture drawn from `pixels`, the rest from `rng`."""
    h, w = shape[:2]
    target = rng.uniform(0.25, 0.70)
    side = rng.integers(4)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # An ellipse centred beyond a border; its radius grown until it covers the target share.
    centre = {0: (w * rng.uniform(0.2, 0.8), -h * 0.1), 1: (w * 1.1, h * rng.uniform(0.2, 0.8)),
              2: (w * rng.uniform(0.2, 0.8), h * 1.1), 3: (-w * 0.1, h * rng.uniform(0.2, 0.8))}[int(side)]
    ratio = rng.uniform(0.6, 1.6)
    dist = np.hypot((xx - centre[0]) / ratio, yy - centre[1])
    radius = float(np.quantile(dist, target))
    alpha = cv2.GaussianBlur((dist < radius).astype(np.float32), (0, 0), w * 0.02)
    base = np.array({0: (20, 20, 20), 1: (40, 90, 50), 2: (120, 150, 200)}[int(rng.integers(3))], np.float32)
    base = base * rng.uniform(0.6, 1.3)
    texture = cv2.GaussianBlur(pixels.normal(0, 25, (h, w)).astype(np.float32), (0, 0), w * 0.03)
    colour = np.clip(base + texture[..., None], 0, 255)
    return alpha[..., None], colour


def _signal_loss(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    h, w = shape[:2]
    kind = rng.choice(["black", "blue", "grey", "bars"])
    if kind == "bars":
        bars = np.array([(191, 191, 191), (0, 191, 191), (191, 191, 0), (0, 191, 0), (191, 0, 191), (0, 0, 191),
                         (191, 0, 0)], np.float32)  # BGR: white yellow cyan green magenta red blue
        image = bars[np.minimum((np.arange(w) * 7) // w, 6)][None].repeat(h, 0)
    else:
        colour = {"black": (rng.uniform(0, 12),) * 3, "blue": (rng.uniform(180, 255), rng.uniform(0, 40), 0),
                  "grey": (rng.uniform(100, 160),) * 3}[str(kind)]
        image = np.empty((h, w, 3), np.float32)
        image[:] = colour
    image = image.astype(np.uint8)
    if rng.integers(2):
        cv2.putText(image, "NO VIDEO", (w // 2 - 60, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
    return image.astype(np.float32)


def _degrade(label: str, scene: np.ndarray, exp: _Exposure, rng: np.random.Generator,
             pixels: np.random.Generator) -> tuple[np.ndarray, _Exposure]:
    """The defect applied to the scene (float) and the exposure (choices and strengths from
    `rng`, arrays of the frame's size from `pixels`)."""
    w = scene.shape[1]
    if label == "blur":
        scene = cv2.GaussianBlur(scene, (0, 0), w * rng.uniform(0.006, 0.014))
        if rng.integers(2):
            fog = rng.uniform(0.2, 0.4)
            scene = scene * (1 - fog) + 200 * fog
    elif label == "occlusion":
        alpha, colour = _occluder(scene.shape, rng, pixels)
        scene = scene * (1 - alpha) + colour * alpha
    elif label == "dark":
        exp = _Exposure(rng.uniform(0.06, 0.15), exp.gamma, exp.wb, exp.sigma, exp.quality)
    elif label == "bright":
        if rng.integers(2):
            exp = _Exposure(rng.uniform(3.5, 6.0), exp.gamma, exp.wb, exp.sigma, exp.quality)
        else:
            veil = rng.uniform(150, 200)
            scene = scene * (255 - veil) / 255 + veil
    elif label == "cast":
        channel = int(rng.integers(3))
        gains = np.ones(3)
        if rng.integers(2):
            gains[channel] = rng.uniform(1.35, 1.8)
        else:
            gains[:] = rng.uniform(0.55, 0.75)
            gains[channel] = 1.0
        scene = scene * gains
    elif label == "signal_loss":
        scene = _signal_loss(scene.shape, rng)
        exp = _Exposure(1.0, 1.0, (1.0, 1.0, 1.0), rng.uniform(0, 1.5), exp.quality)
    return scene, exp


def _snow(image: np.ndarray, rng: np.random.Generator, pixels: np.random.Generator) -> np.ndarray:
    sigma, share = rng.uniform(12, 35), rng.uniform(0, 0.02)
    x = image.astype(np.float32) + pixels.normal(0, sigma, image.shape)
    x = np.clip(x, 0, 255).astype(np.uint8)
    pepper = pixels.random(image.shape[:2]) < share
    x[pepper] = pixels.choice([0, 255], size=(int(pepper.sum()), 1))
    return x


def sample(name: str, src: np.ndarray, label: str, seed: int, size: tuple[int, int] | None = None) -> Sample:
    """One labelled sample of photograph `src` (see the module docstring), drawn from `seed`;
    `size` (width, height): the camera's frames at that size instead of WIDTH px wide, 4:3 or
    16:9. The same `seed` gives the same sample at every size: every choice and strength (the
    crop, the exposures, the defect and how strong, the moved view) comes from one generator
    whose number of draws does not depend on the size, and the arrays of the frame's size
    (sensor noise, snow, a cover's texture) from a second one, so they cannot shift the first.
    Only the aspect is the size's (its draw made all the same), and with it the crop's width."""
    rng, pixels = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    width = WIDTH if size is None else size[0]
    view = _base_view(src, rng, None if size is None else size[1] / size[0])
    ref_view = _View(view.cx + rng.uniform(-1, 1) * 0.005 * view.cw, view.cy + rng.uniform(-1, 1) * 0.005 * view.cw,
                     view.cw, 0.0, view.aspect, view.flip)
    ref_exp = _exposure(rng, (0.7, 1.3))
    reference = _encode(_sensor(_render(src, ref_view, width).astype(np.float32), ref_exp, pixels),
                        int(rng.integers(3600)), int(rng.integers(60, 91)))
    if label == "moved":
        view = _moved_view(src, view, rng)
    scene = _render(src, view, width).astype(np.float32)
    exp = _exposure(rng)
    scene, exp = _degrade(label, scene, exp, rng, pixels)
    second = int(rng.integers(3600))
    first = _sensor(scene, exp, pixels)
    if label == "noise":
        first = _snow(first, rng, pixels)
    frames = [_encode(first, second, exp.quality)]
    if label == "frozen":
        frames.append(_encode(first, second + 3, exp.quality))
    else:
        again = _Exposure(exp.gain * rng.uniform(0.99, 1.01), exp.gamma, exp.wb, exp.sigma, exp.quality)
        nxt = _sensor(scene, again, pixels)
        if label == "noise":
            nxt = _snow(nxt, rng, pixels)
        frames.append(_encode(nxt, second + 3, exp.quality))
    return Sample(name, label, tuple(frames), reference)


def samples(split: tuple[str, ...], per_photo: int, seed: int = 17,
            size: tuple[int, int] | None = None) -> Iterator[Sample]:
    """`per_photo` samples of every label for every photograph of `split` (`size`: sample's).
    Each sample's own seed is drawn from `seed` before the size applies: the same samples, in
    the same order, at every size."""
    rng = np.random.default_rng(seed)
    for name in split:
        src = photo(name)
        for _ in range(per_photo):
            for label in LABELS:
                yield sample(name, src, label, int(rng.integers(2**63)), size)


# --- evaluation (shared by bench/vqd.py and tests/test_vqd_quality.py) -----------------------


@dataclass(frozen=True, slots=True)
class Scored:
    photo: str
    label: str
    scores: dict[str, float]
    cpu_s: float  # CPU seconds of one check: prepare the burst + every measure (reference ready)
    ref_cpu_s: float  # CPU seconds of taking the reference (once per camera, not per check)


def score_all(split: tuple[str, ...], per_photo: int, seed: int = 17,
              size: tuple[int, int] | None = None) -> list[Scored]:
    """Every sample of `split` (at `size`: sample's) scored by probes.vqd.diagnose.scores
    (with its reference); frames wider than ANALYSIS_WIDTH are scaled down to it first, as
    the frame check's decoder does."""
    import time

    from probes.vqd import measures
    from probes.vqd.diagnose import scores

    out = []
    for s in samples(split, per_photo, seed, size):
        t0 = time.process_time()
        ref = measures.reference(measures.prepare(s.reference))
        t1 = time.process_time()
        frames = [measures.prepare(f) for f in s.frames]
        found = scores(frames, ref)
        out.append(Scored(s.photo, s.label, found, time.process_time() - t1, t1 - t0))
    return out


def choose_threshold(scored: list[Scored], diagnosis: str, max_fpr: float = 0.005) -> tuple[float, float, float]:
    """(threshold, TPR, FPR) on the ROC of `diagnosis` over `scored`: positives are its
    samples, negatives every sample of another label whose fault hides it by design (a lost
    signal hides darkness: SUPPRESSED_BY; a moved view hides the measures against the
    reference: DISPLACED_HIDES). The operating point is the best TPR with FPR ≤ `max_fpr`; of
    the thresholds giving it, the one midway between the lowest positive kept and the highest
    negative below it, so that it has the widest margin on both sides and the fewest false
    alarms."""
    from probes.vqd.diagnose import DISPLACED_HIDES, SUPPRESSED_BY

    hidden = {*SUPPRESSED_BY[diagnosis], *(("moved",) if diagnosis in DISPLACED_HIDES else ())}
    pos = np.array([s.scores[diagnosis] for s in scored if s.label == diagnosis])
    neg = np.array([s.scores[diagnosis] for s in scored
                    if s.label != diagnosis and s.label not in hidden and diagnosis in s.scores])
    allowed = int(np.floor(max_fpr * len(neg)))
    top = np.sort(neg)[::-1]
    high_neg = top[allowed] if allowed < len(top) else -np.inf  # the highest negative kept below
    above = pos[pos > high_neg]
    if len(above):
        low_pos = above.min()  # same TPR anywhere in (highest negative below low_pos, low_pos]
        below = neg[neg < low_pos]
        threshold = float((max(below.max(), high_neg) + low_pos) / 2) if len(below) else float(low_pos)
    else:
        threshold = float(high_neg + 1e-6)
    return threshold, float((pos >= threshold).mean()), float((neg >= threshold).mean())


@dataclass(frozen=True, slots=True)
class Quality:
    diagnosis: str
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def quality(scored: list[Scored], thresholds) -> tuple[list[Quality], float]:
    """Per diagnosis of DEFECTS: true and false positives and misses of the full verdict
    (probes.vqd.diagnose.judge, suppression included); and the share of clean samples with
    any fault (false alarms)."""
    from probes.vqd.diagnose import judge

    verdicts = [(s.label, set(judge(s.scores, thresholds))) for s in scored]
    table = []
    for d in DEFECTS:
        tp = sum(1 for label, faults in verdicts if label == d and d in faults)
        fp = sum(1 for label, faults in verdicts if label != d and d in faults)
        fn = sum(1 for label, faults in verdicts if label == d and d not in faults)
        table.append(Quality(d, tp, fp, fn))
    clean = [faults for label, faults in verdicts if label == "clean"]
    return table, sum(1 for f in clean if f) / max(1, len(clean))
