"""The measures of video-quality diagnosis: pure functions on decoded frames.

Every function takes arrays from `prepare` (BGR uint8 as OpenCV decodes, scaled down to at most
ANALYSIS_WIDTH so that scores do not depend on the camera's resolution) and returns one float
score where a larger value is worse. Blocks: the frame is cut into a GRID of blocks so that a
small overlay (the OSD clock, the channel name) moves only a few of them and the block
statistics (medians, shares) stay put.

Sources: blur after Crete, Dolmiere, Ladret, Nicolas, "The blur effect: perception and
estimation with a new no-reference perceptual blur metric", SPIE 6492 (2007); noise after
Immerkær, "Fast noise variance estimation", CVIU 64(2) 1996; colour cast without a reference
after the equivalent-circle method (Xu, Li et al., mean chroma offset D against the chroma
spread M in CIELAB), with one by a Theil-Sen line through the blocks' channel ratios (Sen,
JASA 63, 1968); moved camera by ORB features (Rublee et al., ICCV 2011) and a RANSAC
similarity.

The reference (`reference`): the camera's first frame without a fault, kept per camera. Most
measures compare against it (what this camera normally sees: a scene soft, dark, flat or
brown by nature is not a fault) and fall back to absolute measures without one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import cv2
import numpy as np

from probes.vqd.config import ANALYSIS_WIDTH

# The measures are many short OpenCV calls on a 480-px frame, run one check at a time on the
# frame check's worker thread: OpenCV's pool of a thread per core adds a tenth to their CPU
# (waking and waiting) and saves nothing the fleet needs (bench/vqd.py, docs/VQD.md).
cv2.setNumThreads(1)

GRID = (12, 16)  # block rows, block columns
BAR_BANDS = 6
CLIPPED = 250  # luma at or above: clipped white
BLACK_BLOCK = 16.0  # frozen: a block of lower mean luma is near black, its noise gone (`frozen`)
RECOLOURED = 0.25  # occlusion: a block's colour off the reference's prediction (log units, ×1.28)
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


@dataclass(frozen=True)
class Frame:
    """A frame ready for the measures: `bgr` uint8 H×W×3 and `gray` uint8 H×W, W ≤ ANALYSIS_WIDTH.
    What several measures derive from it is computed once, on first use (a reference's, once
    per camera): `texture` (block_texture), `block_luma` (block means of `gray`, float),
    `clipped` (share of pixels ≥ CLIPPED) and `clipped_blocks` (that share per block),
    `lab` (OpenCV's 8-bit CIELAB, H×W×3 uint8) and `chroma_blocks` (_chroma_blocks)."""

    bgr: np.ndarray
    gray: np.ndarray

    @cached_property
    def texture(self) -> np.ndarray:
        return block_texture(self.gray)

    @cached_property
    def block_luma(self) -> np.ndarray:
        return _block_sums_u8(self.gray) / _grid(*self.gray.shape)[2]

    @cached_property
    def clipped_blocks(self) -> np.ndarray:
        return _block_sums_u8((self.gray >= CLIPPED).view(np.uint8)) / _grid(*self.gray.shape)[2]

    @cached_property
    def clipped(self) -> float:
        return float((self.clipped_blocks * _grid(*self.gray.shape)[2]).sum()) / self.gray.size

    @cached_property
    def lab(self) -> np.ndarray:
        return cv2.cvtColor(self.bgr, cv2.COLOR_BGR2LAB)

    @cached_property
    def chroma_blocks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _chroma_blocks(self)


def prepare(image: np.ndarray) -> Frame:
    """A decoded image (H×W gray, H×W×3 BGR or H×W×4 BGRA, uint8) scaled down (INTER_AREA) to
    at most ANALYSIS_WIDTH pixels wide. Raises ValueError for anything else or a frame smaller
    than 64×48 (too small to judge)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError("a frame must be a uint8 array, H×W or H×W×3")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    elif image.shape[2] != 3:
        raise ValueError(f"a frame must have 1, 3 or 4 channels, not {image.shape[2]}")
    h, w = image.shape[:2]
    if w < 64 or h < 48:
        raise ValueError(f"frame too small to judge ({w}×{h}, at least 64×48)")
    if w > ANALYSIS_WIDTH:
        h = max(48, round(h * ANALYSIS_WIDTH / w))
        image = cv2.resize(image, (ANALYSIS_WIDTH, h), interpolation=cv2.INTER_AREA)
    image = np.ascontiguousarray(image)
    return Frame(image, cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))


@lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a frame of h×w: the first row and first column of each block of GRID, and the
    blocks' pixel counts (rows×cols, float32). One per frame size, kept: the measures take
    block means ~20 times per check."""
    rows, cols = GRID
    ys = np.linspace(0, h, rows + 1).astype(int)
    xs = np.linspace(0, w, cols + 1).astype(int)
    counts = np.outer(np.diff(ys), np.diff(xs)).astype(np.float32)
    for m in (ys, xs, counts):
        m.flags.writeable = False
    return ys[:-1], xs[:-1], counts


def _block_sums(values: np.ndarray, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Sum of `values` (H×W or H×W×C float) over each block of GRID (rows × columns [× C]) of a
    frame of `shape` (default values.shape). `values` may be a row or column shorter than the frame
    (differences between neighbours): the missing one counts 0."""
    ys, xs, _ = _grid(*(shape or values.shape)[:2])
    return np.add.reduceat(np.add.reduceat(values, ys, axis=0), xs, axis=1)


def _block_sums_u8(values: np.ndarray) -> np.ndarray:
    """`_block_sums` of uint8 `values` (H×W or H×W×C), as float32: summed as integers, without
    a float copy of the frame first (0.2–0.5 ms a frame less). The same numbers: a block of a
    frame up to 480 × 2000 (the decoders' bound) sums to less than 2²⁴, which float32 holds
    exactly, so both ways give every block's exact sum."""
    ys, xs, _ = _grid(*values.shape[:2])
    return np.add.reduceat(np.add.reduceat(values, ys, axis=0, dtype=np.int32), xs, axis=1).astype(np.float32)


def _block_means(values: np.ndarray) -> np.ndarray:
    return _block_sums(values) / _grid(*values.shape)[2]


def block_texture(gray: np.ndarray) -> np.ndarray:
    """Mean gradient magnitude (grey levels per pixel) of each block after a Gaussian (σ 1.5)
    that removes sensor noise: ≈0 for a covered lens or a flat screen, 3–30 for a scene."""
    smooth = cv2.GaussianBlur(gray, (0, 0), 1.5).astype(np.float32)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3) / 8
    return _block_means(np.sqrt(gx * gx + gy * gy))


def block_blur(gray: np.ndarray) -> np.ndarray:
    """Blur effect after Crete et al. (2007) of each block of GRID, 0 = sharp … 1 = fully blurred:
    the share of the grey-level variation between neighbours that survives a 9-tap box re-blur
    (a sharp edge loses most of it, a blurred one almost none); the worse of the two axes.
    Independent of contrast, so fog or a dim picture is not taken for blur by itself."""
    f = gray.astype(np.float32)
    scores = []
    for axis in (0, 1):
        b = cv2.blur(f, (1, 9) if axis == 0 else (9, 1))  # box across the axis of the difference
        d_f = np.abs(np.diff(f, axis=axis))
        d_b = np.abs(np.diff(b, axis=axis))
        v = np.maximum(0.0, d_f - d_b)
        s_f = _block_sums(d_f, gray.shape)
        s_v = _block_sums(v, gray.shape)
        scores.append((s_f - s_v) / np.maximum(s_f, 1e-6))
    return np.maximum(scores[0], scores[1])


SHARP = 0.43
"""The baseline blur effect when there is no reference frame. On the tuning split of
lab/vqd_data.py (its draw since 2026-12-05, first frames at 384 px and 640×360, 300 clean and
300 blurred) the BLUR_QUANTILE of the block blur effect is 0.36 on clean pictures (median;
0.60 at the 99th percentile) and ≥ 0.58 on blurred ones (1st percentile): the two overlap, and
0.43 puts the default threshold's boundary (0.311 of the sharpness lost ⇔ B ≈ 0.61) where
0.3 % of the clean and 1.3 % of the blurred fall on the wrong side (SHARP 0.38, the earlier
boundary B ≈ 0.57: 3.7 % and 0.7 %). On the earlier draw, 0.35, 0.56 and ≥ 0.57, with the
threshold 0.248 (0.39 with 0.292: the same boundary)."""
BLUR_QUANTILE = 0.7
"""Blocks judged by `blur`: the quantile over the textured blocks of their loss. Above the
median so that a few blocks kept sharp by an overlay (the OSD clock is drawn after the lens)
do not decide; below the top so that the soft edge of a close object (occlusion) does not."""


def blur(frame: Frame, ref: "Reference | None" = None, min_texture: float = 1.5) -> float:
    """Share of the sharpness lost, 0 = as sharp as the baseline … 1 = nothing sharp left: per
    block 1 − (1 − B) / (1 − B₀), with B the block's blur effect (`block_blur`) and B₀ the
    reference's in the same block (the camera's own sharpness: a scene soft by nature is not
    taken for defocus) or SHARP without a reference; the BLUR_QUANTILE over the blocks textured
    (≥ `min_texture`) in the frame and in the reference (flat sky or a covered part do not
    decide). A frame without such blocks scores 1."""
    textured = frame.texture >= min_texture
    if ref is not None:
        textured &= ref.texture >= min_texture
    if not textured.any():
        return 1.0
    b = block_blur(frame.gray)[textured]
    b0 = ref.blur[textured] if ref is not None else SHARP
    loss = 1.0 - (1.0 - b) / np.maximum(1e-3, 1.0 - b0)
    return float(np.clip(np.quantile(loss, BLUR_QUANTILE), 0.0, 1.0))


def _chroma_blocks(frame: Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per block of GRID: mean BGR (3×rows×cols, +1 so that ratios exist), mean CIELAB a* and b*
    (OpenCV's 8-bit Lab, centred on 0) — (bgr, a, b)."""
    counts = _grid(*frame.gray.shape)[2][..., None]
    bgr = (_block_sums_u8(frame.bgr) / counts).transpose(2, 0, 1) + 1.0  # all channels at once
    ab = _block_sums_u8(frame.lab[..., 1:]) / counts - 128
    return bgr, ab[..., 0], ab[..., 1]


def _percentiles(gray: np.ndarray) -> np.ndarray:
    """Luma at the quantiles 0.05, 0.15 … 0.95 (10 values, grey levels)."""
    cdf = np.cumsum(np.bincount(gray.ravel(), minlength=256)) / gray.size
    return np.searchsorted(cdf, np.arange(0.05, 0.96, 0.1)).astype(np.float64)


@dataclass(frozen=True, slots=True)
class Reference:
    """A camera's reference frame with what the measures compare against, computed once
    (`reference(frame)`): ORB features, the quadrants for `aligned`, block texture, block blur
    effect, block colour, luma percentiles, clipped share, p90 luma and the luma's cumulative
    distribution (`cdf`, 256 shares: cdf[v] of the pixels at or below v)."""

    frame: Frame
    keypoints: tuple
    descriptors: np.ndarray | None
    quadrants: tuple[np.ndarray, ...]
    texture: np.ndarray
    blur: np.ndarray
    bgr: np.ndarray
    a: np.ndarray
    b: np.ndarray
    percentiles: np.ndarray
    clipped: float
    p90: float
    cdf: np.ndarray


def _orb():
    return cv2.ORB_create(nfeatures=600, fastThreshold=10)


def reference(frame: Frame) -> Reference:
    """The reference of a camera from one of its frames without a fault (see Reference)."""
    keypoints, descriptors = _orb().detectAndCompute(frame.gray, None)
    bgr, a, b = frame.chroma_blocks
    cdf = np.cumsum(np.bincount(frame.gray.ravel(), minlength=256)) / frame.gray.size
    cdf.flags.writeable = False
    return Reference(frame, tuple(keypoints), descriptors, _quadrants(frame.gray), frame.texture,
                     block_blur(frame.gray), bgr, a, b,
                     _percentiles(frame.gray), float((frame.gray >= CLIPPED).mean()),
                     float(np.percentile(frame.gray, 90)), cdf)


def _is_grey(a: np.ndarray, b: np.ndarray, grey: float) -> bool:
    """No colour to speak of: mean and spread of the block chroma below `grey` (IR at night)."""
    return bool(np.hypot(a.mean(), b.mean()) < grey and np.sqrt(a.var() + b.var()) < grey)


GREY_SPREAD = 0.03
"""A reference is black-and-white when, besides a low CIELAB chroma (`_is_grey`), its
mid-tone blocks' log R/G and log B/G spread less than this (standard deviation): an infrared
picture has one ratio everywhere (0.001–0.022 on the grey photographs of lab/vqd_data.py),
while a colour scene that is dark, so low in CIELAB chroma (trees at dusk), still has its
blocks' colours apart (≥ 0.033 on the colour ones)."""


def _ref_is_grey(ref: "Reference", grey: float) -> bool:
    """The reference is a black-and-white (IR) picture: see GREY_SPREAD."""
    if not _is_grey(ref.a, ref.b, grey):
        return False
    mid = (ref.bgr.min(axis=0) > 20) & (ref.bgr.max(axis=0) < 240)
    if mid.sum() < 10:
        return True
    spread = max(np.std(np.log(ref.bgr[c][mid] / ref.bgr[1][mid])) for c in (2, 0))
    return bool(spread < GREY_SPREAD)


def _exposure_fit(frame: Frame, ref: Reference) -> tuple[float, float]:
    """(a, b) of the line frame luma = a·reference luma + b fitted to the luma percentiles
    5…95 that are not clipped: an exposure change scales (a), a veil of light adds (b).
    (1, 0) when fewer than three percentiles are unclipped."""
    pf = _percentiles(frame.gray)
    ok = pf < CLIPPED
    if ok.sum() < 3 or np.ptp(ref.percentiles[ok]) == 0:
        return 1.0, 0.0
    a, b = np.polyfit(ref.percentiles[ok], pf[ok], 1)
    return float(a), float(b)


def _colour_residual(frame: Frame, ref: Reference, textured: np.ndarray) -> np.ndarray:
    """Per block, how far its colour is from what the reference predicts there: the largest
    over B, G, R of |log frame − (k·log reference + o)|, with k and o fitted per channel
    (least squares) on the `textured` blocks, the scene still seen. An exposure or white
    balance change, a colour cast or a gamma change maps every block's colour by one such
    line per channel; a close object over part of the view puts its own colour there."""
    bgr, _, _ = frame.chroma_blocks
    lf, lr = np.log(bgr + 7.0), np.log(ref.bgr + 7.0)  # +8 in all: dark blocks' noise does not blow up
    out = np.zeros(textured.shape, np.float64)
    for c in range(3):
        x, y = lr[c][textured], lf[c][textured]
        k = float(np.clip(np.polyfit(x, y, 1)[0], 0.7, 1.4)) if len(x) >= 10 and np.ptp(x) > 0.3 else 1.0
        o = float(np.median(y - k * x)) if len(x) else float(np.median(lf[c] - lr[c]))
        out = np.maximum(out, np.abs(lf[c] - (k * lr[c] + o)))
    return out


def low_texture_share(frame: Frame, ref: Reference | None, flat: float = 1.0, was_textured: float = 2.0,
                      recoloured: float = RECOLOURED) -> float:
    """Share of the frame (0–1) in the largest 4-connected region of flat blocks (texture below
    `flat`) that are not what the camera normally sees there: a covered lens, a branch or a bag
    across it. Without a reference every flat block counts. With one, a flat block counts when
    the reference had texture there (≥ `was_textured`), or its colour is off what the reference
    predicts there by more than `recoloured` (`_colour_residual`, log units: a dark or green
    object over the sky); sky, a white wall or a still lake that are always flat, under any
    exposure, white balance or colour cast, do not count."""
    texture = frame.texture
    mask = texture < flat
    if ref is not None:
        changed = ref.texture >= was_textured
        changed |= _colour_residual(frame, ref, (texture >= 1.5) & (ref.texture >= 1.5)) > recoloured
        mask &= changed
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=4)
    if count <= 1:
        return 0.0
    sizes = np.bincount(labels.ravel())[1:]
    return float(sizes.max() / mask.size)


def frozen(frames: list[Frame], still: float = 0.5, black: float = BLACK_BLOCK, lit: float = 0.25) -> float:
    """Share of blocks (0–1) identical between consecutive frames taken seconds apart (mean
    absolute difference below `still` grey levels): a live camera's sensor noise changes every
    block, a frozen encoder repeats them; the OSD clock that keeps ticking on a frozen picture
    changes only the few blocks it covers. The share is of the blocks lit in both frames (mean
    luma ≥ `black`): in a near-black block the noise is clipped at black and the encoder's
    quantisation (or the scaling of a 640-px sub-stream to 480 px) averages the rest away, so it
    is identical in a live picture too and shows nothing either way. 0 when fewer than `lit`
    of the blocks are lit (a black picture: `dark` or `signal_loss` says what it is). The
    smallest share over the pairs; 0 for one frame."""
    if len(frames) < 2:
        return 0.0
    shares = []
    for a, b in zip(frames, frames[1:]):
        if a.gray.shape != b.gray.shape:
            shares.append(0.0)
            continue
        diff = cv2.absdiff(a.gray, b.gray)
        judged = np.minimum(a.block_luma, b.block_luma) >= black
        if judged.sum() < lit * judged.size:
            shares.append(0.0)
            continue
        shares.append(float((_block_sums_u8(diff)[judged] / _grid(*diff.shape)[2][judged] < still).mean()))
    return min(shares)


def luma(frame: Frame, ref: Reference | None = None) -> float:
    """Too dark, 0–1: 1 − p90/255 of the luminance histogram (BT.601 luma): even the brightest
    tenth of the picture is dark, a night picture without IR. With a reference, the smaller of
    that and 1 − p90/p90 of the reference: dark for a camera means dark in absolute terms AND
    much darker than it normally is, so a scene dark by nature (a street at night, a tunnel)
    whose reference is as dark is not a fault, and an infrared night picture, darker than a
    day reference but well lit, is not either."""
    cdf = np.cumsum(np.bincount(frame.gray.ravel(), minlength=256)) / frame.gray.size
    p90 = float(np.searchsorted(cdf, 0.90))
    dark = 1.0 - p90 / 255.0
    if ref is None:
        return dark
    return float(max(0.0, min(dark, 1.0 - p90 / max(1.0, ref.p90))))


def exposure_gain(frame: Frame, ref: Reference, textured: float = 1.5, floor: float = 16.0,
                  clipped: float = 0.05) -> float | None:
    """log of the exposure gain against the reference: the median over the blocks textured
    (≥ `textured`) in both pictures, not dark in the reference (mean luma > `floor`, where
    sensor noise clipped at black would lift the mean) and still unclipped in the frame (at most
    `clipped` of their pixels ≥ CLIPPED) of log(frame block luma / reference's). Blocks textured
    in both are the scene still seen: a cover over part of the view (flat) or a veil (which
    flattens) does not vote. A block partly clipped reads less than the gain (its clipped
    pixels stopped at white): on a bright scene under a gain wide open those were most of the
    blocks still textured, and the median read ×1.75 for ×3.85. None with fewer than 10 such
    blocks (then `clip_gain` and the clipped share speak)."""
    lum, ref_lum = frame.block_luma, ref.frame.block_luma
    ok = (frame.texture >= textured) & (ref.texture >= textured) & (ref_lum > floor)
    ok &= frame.clipped_blocks <= clipped
    if ok.sum() < 10:
        return None
    return float(np.median(np.log((lum[ok] + 1.0) / (ref_lum[ok] + 1.0))))


NEAR_WHITE = 230
"""`clip_gain` reads the gain at this luma (grey levels): near white rather than at CLIPPED, since
a pixel clipped in the camera's frame and averaged with its neighbours by the scaling to
ANALYSIS_WIDTH (or by JPEG) ends a little under white. Chosen on the tuning split of
lab/vqd_data.py at both sizes (230 against 250, 240 and 220: the most bright samples kept at
the shipped threshold, no more false positives than the others; docs/VQD.md)."""


def clip_gain(frame: Frame, ref: Reference, level: int = NEAR_WHITE, least: float = 0.02,
              floor: float = 16.0) -> float:
    """log of the gain that brings as much of the reference to `level` or above as the frame
    has there: with c the frame's share of pixels ≥ `level` and L the reference's luma at the
    quantile 1 − c (its brightest share c, by rank), log(level / L). A gain g lifts what was at
    level / g to `level`, whatever the scene, so this reads the gain where the blocks that would
    show it have clipped flat (a white suit, a pale façade under an iris wide open). 0 when the
    frame has less than `least` there or the reference had as much (L ≥ `level`); L at least
    `floor` (the reference's near-black says nothing of a gain)."""
    c = cv2.countNonZero(cv2.threshold(frame.gray, level - 1, 255, cv2.THRESH_BINARY)[1]) / frame.gray.size
    if c < least:
        return 0.0
    at = float(np.searchsorted(ref.cdf, 1.0 - c))  # the smallest v with cdf[v] ≥ 1 − c
    return float(np.log(level / max(at, floor))) if at < level else 0.0


RANK_AGREES = 1.4
"""bright trusts `clip_gain` only where the blocks still unclipped, when at least 10 can vote,
agree that the picture brightened by at least this much: the rank reading compares
histograms, so a view that changed (a pan onto the sky) reads as a gain there, while its
unclipped blocks read ×1.2. On the tuning split of lab/vqd_data.py (both draws, both sizes) the
same bright samples are kept at any agreement from ×1.3 to ×1.5, and two moved views of
`cv_leuven_a` (rank ×3.2 and ×2.6, blocks ×1.19 and ×1.23) are no longer too bright."""

GAIN_SCALE = 2.0
"""bright's gain terms are log(gain) / GAIN_SCALE: 0.5 at a gain of e ≈ 2.7×, 1 at e² ≈ 7.4×."""


def bright(frame: Frame, ref: Reference | None) -> float:
    """Too bright, 0–1: the largest of the light added to every pixel (glare, a washed-out
    veil), the share of pixels newly clipped white (an iris wide open), and the exposure gain
    against the reference, log(gain) / GAIN_SCALE, read two ways: from the blocks still
    unclipped (`exposure_gain`: an iris or gain wide open on a scene dark by nature brightens
    it severalfold before it clips anything) and from how much of the reference, by rank, now
    sits near white (`clip_gain`: on a scene bright by nature the same gain clips the blocks
    that would show it; trusted where the unclipped blocks agree, RANK_AGREES). The added light
    is the offset b/255 of the line frame = a·reference + b fitted to the luma percentiles 5…95
    that are not clipped (an exposure change scales, a veil adds); without a reference, the
    darkest twentieth p5/255 (a veil lifts the blacks). Clipped share: pixels ≥ CLIPPED beyond
    the reference's share (a white wall is white in both)."""
    clipped = frame.clipped
    if ref is None:
        return float(max(_percentiles(frame.gray)[0] / 255.0, clipped))
    _, lift = _exposure_fit(frame, ref)
    blocks = exposure_gain(frame, ref)
    rank = clip_gain(frame, ref) if blocks is None or blocks >= np.log(RANK_AGREES) else 0.0
    gain = max(blocks or 0.0, rank) / GAIN_SCALE
    return float(np.clip(max(lift / 255.0, clipped - ref.clipped, gain), 0.0, 1.0))


def chroma(frame: Frame) -> tuple[float, float, float, float]:
    """(log R/G, log B/G, D, M) of the mid-tone pixels: the grey-world channel ratios (an
    exposure change scales all channels alike and leaves them), and in CIELAB (OpenCV's 8-bit
    Lab, a* b* centred on 0) the distance D of the mean chroma from neutral and its spread
    M = √(var a* + var b*). An infrared black-and-white picture has D and M ≈ 0."""
    lab = frame.lab
    mid = cv2.inRange(lab, (26, 0, 0), (229, 255, 255))  # mid-tone: 25 < L < 230 (one pass, no copies)
    if cv2.countNonZero(mid) < 0.05 * mid.size:
        return 0.0, 0.0, 0.0, 0.0
    mean, std = cv2.meanStdDev(lab, mask=mid)
    a, b = mean[1, 0] - 128, mean[2, 0] - 128
    bgr = np.array(cv2.mean(frame.bgr, mask=mid)[:3]) + 1.0
    return (float(np.log(bgr[2] / bgr[1])), float(np.log(bgr[0] / bgr[1])), float(np.hypot(a, b)),
            float(np.hypot(std[1, 0], std[2, 0])))


def colour_cast(frame: Frame, ref: Reference | None, grey: float = 4.0) -> float:
    """Colour cast: how far the channel ratios moved, max |Δ log R/G|, |Δ log B/G| (0.3 ≈ one
    channel 35 % too strong). Against the camera's reference when both are in colour: per
    ratio, the offset of the line frame = k·reference fitted (Theil-Sen) over the mid-tone
    blocks (a cast shifts every block alike; a gamma or saturation change scales them, k; an
    object across part of the view or a brown scene by nature moves only its own blocks, and
    the medians ignore them). Otherwise against neutral (grey world), and only when the mean chroma
    offset D exceeds the chroma spread M (the equivalent-circle test: the whole picture pushed
    one way). A black-and-white picture (D and M below `grey`: infrared at night) scores 0:
    not a colour fault."""
    rg, bg, d, m = chroma(frame)
    if d < grey and m < grey:
        return 0.0
    if ref is not None and not _ref_is_grey(ref, grey):
        bgr, _, _ = frame.chroma_blocks
        mid = (bgr.min(axis=0) > 20) & (bgr.max(axis=0) < 240) & (ref.bgr.min(axis=0) > 20) & (ref.bgr.max(axis=0) < 240)
        if mid.sum() >= 0.1 * mid.size:
            offsets = []
            for c in (2, 0):  # R/G, B/G
                x, y = np.log(ref.bgr[c] / ref.bgr[1])[mid], np.log(bgr[c] / bgr[1])[mid]
                # A gamma or saturation change scales every block's ratio (slope k); a cast shifts
                # them all (offset). Theil-Sen (median of pairwise slopes) and a median offset,
                # so that an object across part of the view does not decide.
                i, j = np.triu_indices(len(x), 1)
                dx, dy = x[j] - x[i], y[j] - y[i]
                wide = np.abs(dx) > 0.05
                k = float(np.clip(np.median(dy[wide] / dx[wide]), 0.5, 2.0)) if wide.sum() >= 10 else 1.0
                offsets.append(abs(float(np.median(y - k * x))))
            return max(offsets)
    return max(abs(rg), abs(bg)) if d > m else 0.0


def noise(frames: list[Frame], quantile: float = 0.2) -> float:
    """Noise σ in grey levels, the `quantile` over blocks (the quietest blocks show the noise,
    not the scene). Spatial after Immerkær (1996) on the first frame; with a second frame of the
    same size also temporal, √(var of the difference / 2) per block, which a static scene's
    texture does not inflate; the smaller of the two (motion inflates only the temporal one,
    texture only the spatial one). Snow on an analogue line: 5–40."""
    gray = frames[0].gray.astype(np.float32)
    residual = np.abs(cv2.filter2D(gray, -1, _IMMERKAER, borderType=cv2.BORDER_REFLECT))
    spatial = float(np.quantile(_block_means(residual) * np.sqrt(np.pi / 2) / 6, quantile))
    if len(frames) < 2 or frames[1].gray.shape != frames[0].gray.shape:
        return spatial
    diff = gray - frames[1].gray.astype(np.float32)
    variance = _block_means(diff * diff) - _block_means(diff) ** 2
    temporal = float(np.quantile(np.sqrt(np.maximum(variance, 0) / 2), quantile))
    return min(spatial, temporal)


def signal_loss(frame: Frame, ref: Reference | None = None, tolerance: int = 3, follows: float = 0.5) -> float:
    """How much the frame is one solid colour or a colour-bar test pattern (0–1): the share of
    pixels within `tolerance` grey levels of the median luma, or, for colour bars (at least three
    sharp steps across the top band), of their column's median within each of BAR_BANDS
    horizontal bands. Encoders' "no video" screens are solid blue, black or grey with a little
    text, or colour bars. A camera's picture, however dark, still shows its scene: with a
    reference, a frame whose block luma follows the reference's (Pearson r ≥ `follows` over
    the inner block rows, the OSD rows left out) is a dark picture, not a lost signal, and
    scores 0 for the solid colour. A clipped white frame is glare (too bright), not a lost
    signal: a median above 230 scores 0."""
    gray = frame.gray
    median = int(np.median(gray[::4, ::4]))
    if median > 230:
        return 0.0
    uniform = cv2.countNonZero(cv2.inRange(gray, median - tolerance, median + tolerance)) / gray.size
    if ref is not None and uniform > 0.5:
        inner = frame.block_luma[1:-1].ravel()
        ref_inner = ref.frame.block_luma[1:-1].ravel()
        if inner.std() > 0 and ref_inner.std() > 0 and np.corrcoef(inner, ref_inner)[0, 1] >= follows:
            uniform = 0.0
    # Bars per horizontal band: SMPTE patterns change below two thirds of the height.
    bands = np.array_split(gray, BAR_BANDS, axis=0)
    top = np.median(bands[0][::2], axis=0)  # the other bands' medians only for a frame with bars
    jumps = np.abs(top[4:] - top[:-4]) > 20  # over 4 columns: the encoder softens edges
    if int((np.diff(jumps.astype(np.int8)) == 1).sum() + jumps[0]) < 3:  # runs of jumps = edges
        return uniform
    medians = [top, *(np.median(band[::2], axis=0) for band in bands[1:])]
    near = sum(int((np.abs(band - med.astype(np.int16)) <= tolerance).sum()) for band, med in zip(bands, medians))
    return max(uniform, near / gray.size)


ALIGNED_RESPONSE = 0.6
"""`aligned` trusts the quadrants' phase correlation when each peak is at least this (1 = the
same picture). On the tuning split of lab/vqd_data.py (1,500 samples, 384 px), the smallest
quadrant peak of a frame: clean ≥ 0.75 (median 0.93), moved ≤ 0.47 (a pan, a zoom or a turn
changes what each quadrant shows; median 0.03); 0.6 is midway, and every moved sample also
fails ALIGNED_MAX, so all of them go to ORB."""
ALIGNED_RESIDUAL_PX = 2.0
"""`aligned`: the four quadrants' shifts fit one similarity within this (pixels at
ANALYSIS_WIDTH), or the view is not one picture moved as a whole and ORB decides."""
ALIGNED_MAX = 0.025
"""`aligned` answers for a view displaced at most this share of the width (half of `moved`'s
default threshold when that was 0.050, a little over half of today's 0.045); a larger
displacement is measured by ORB."""
_QUADRANT_SCALE = 2  # the quadrants are correlated at half the analysis width: 120×68 px each at 480×270


def _quadrants(gray: np.ndarray) -> tuple[np.ndarray, ...]:
    """The four quadrants of `gray` scaled down by _QUADRANT_SCALE (INTER_AREA), float32, in
    the order top left, top right, bottom left, bottom right."""
    h, w = gray.shape
    small = cv2.resize(gray, (w // _QUADRANT_SCALE, h // _QUADRANT_SCALE), interpolation=cv2.INTER_AREA)
    small = small.astype(np.float32)
    qh, qw = small.shape[0] // 2, small.shape[1] // 2
    return tuple(small[i * qh:(i + 1) * qh, j * qw:(j + 1) * qw] for i in (0, 1) for j in (0, 1))


@lru_cache(maxsize=4)
def _hanning(width: int, height: int) -> np.ndarray:
    return cv2.createHanningWindow((width, height), cv2.CV_32F)


def _corner_shift(transform: np.ndarray, h: int, w: int) -> float:
    """Largest displacement of a frame corner under the 2×3 `transform`, share of the width."""
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], dtype=np.float64)
    shift = corners @ transform.T - corners[:, :2]
    return float(min(1.0, np.hypot(shift[:, 0], shift[:, 1]).max() / w))


def aligned(frame: Frame, ref: Reference) -> float | None:
    """`moved` without ORB for a view that is the reference's, barely displaced: each quadrant's
    shift by phase correlation (Kuglin & Hines 1975; OpenCV's phaseCorrelate, Hanning window)
    against the reference's same quadrant, a similarity fitted (least squares) to the four
    quadrant centres so shifted, and its largest corner displacement (share of the width), as
    `moved` measures it. None, for ORB to decide, unless every quadrant's peak is at least
    ALIGNED_RESPONSE, the shifts fit one similarity within ALIGNED_RESIDUAL_PX and the
    displacement is at most ALIGNED_MAX. ~0.5 ms against ~6 ms for ORB at 480 px."""
    h, w = frame.gray.shape
    quadrants = _quadrants(frame.gray)
    qh, qw = quadrants[0].shape
    window = _hanning(qw, qh)
    k = _QUADRANT_SCALE
    rows = []
    for index, (r, f) in enumerate(zip(ref.quadrants, quadrants)):
        (dx, dy), response = cv2.phaseCorrelate(r, f, window)
        if response < ALIGNED_RESPONSE:
            return None
        cx, cy = ((index % 2) + 0.5) * qw * k, ((index // 2) + 0.5) * qh * k
        rows.append((cx, cy, cx + dx * k, cy + dy * k))
    src_x, src_y, dst_x, dst_y = np.array(rows).T
    one, zero = np.ones(4), np.zeros(4)
    # x' = a·x − b·y + tx, y' = b·x + a·y + ty: 8 equations, 4 unknowns
    design = np.concatenate([np.c_[src_x, -src_y, one, zero], np.c_[src_y, src_x, zero, one]])
    target = np.concatenate([dst_x, dst_y])
    (a, b, tx, ty), *_ = np.linalg.lstsq(design, target, rcond=None)
    if np.abs(design @ (a, b, tx, ty) - target).max() > ALIGNED_RESIDUAL_PX * w / ANALYSIS_WIDTH:
        return None
    displaced = _corner_shift(np.array([[a, -b, tx], [b, a, ty]]), h, w)
    return displaced if displaced <= ALIGNED_MAX else None


def moved(frame: Frame, ref: Reference, min_inliers: int = 12) -> float:
    """How far the view moved from the camera's reference frame: the largest displacement of a
    frame corner under the similarity transform fitted (RANSAC) to ORB matches, as a share of
    the frame width (0.10 = a tenth of the picture; corners, so a zoom or a turn counts too).
    1.0 when the scene cannot be matched at all (fewer than `min_inliers` consistent matches):
    another scene. A view plainly the reference's, displaced at most ALIGNED_MAX, is measured
    by `aligned` instead (a twelfth of the CPU): the usual check of a camera that did not move."""
    if frame.gray.shape != ref.frame.gray.shape:
        return 1.0
    quick = aligned(frame, ref)
    if quick is not None:
        return quick
    kp_f, des_f = _orb().detectAndCompute(frame.gray, None)
    kp_r, des_r = ref.keypoints, ref.descriptors
    if des_r is None or des_f is None or len(kp_r) < min_inliers or len(kp_f) < min_inliers:
        return 1.0
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(des_r, des_f)
    if len(matches) < min_inliers:
        return 1.0
    src = np.float32([kp_r[m.queryIdx].pt for m in matches])
    dst = np.float32([kp_f[m.trainIdx].pt for m in matches])
    transform, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=3.0)
    if transform is None or inliers is None or int(inliers.sum()) < min_inliers:
        return 1.0
    h, w = frame.gray.shape
    return _corner_shift(transform, h, w)
