"""The measures of video-quality diagnosis: pure functions on decoded frames.

Every function takes arrays from `prepare` (BGR uint8 as OpenCV decodes, scaled down to at most
ANALYSIS_WIDTH so that scores do not depend on the camera's resolution) and returns one float
score where a larger value is worse. Blocks: the frame is cut into a GRID of blocks so that a
small overlay (the OSD clock, the channel name) moves only a few of them and the block
statistics (medians, shares) stay put.

Sources: blur after Crete, Dolmiere, Ladret, Nicolas, "The blur effect: perception and
estimation with a new no-reference perceptual blur metric", SPIE 6492 (2007); noise after
Immerkær, "Fast noise variance estimation", CVIU 64(2) 1996; colour cast after the
equivalent-circle method (Xu, Li et al., mean chroma offset D against the chroma spread M in
CIELAB); moved camera by ORB features (Rublee et al., ICCV 2011) and a RANSAC similarity.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

ANALYSIS_WIDTH = 480
GRID = (12, 16)  # block rows, block columns
BAR_BANDS = 6
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame ready for the measures: `bgr` uint8 H×W×3 and `gray` uint8 H×W, W ≤ ANALYSIS_WIDTH."""

    bgr: np.ndarray
    gray: np.ndarray


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


def _block_sums(values: np.ndarray) -> np.ndarray:
    """Sum of `values` (H×W float) over each block of GRID (rows × columns)."""
    rows, cols = GRID
    h, w = values.shape
    ys = np.linspace(0, h, rows + 1).astype(int)
    xs = np.linspace(0, w, cols + 1).astype(int)
    return np.add.reduceat(np.add.reduceat(values, ys[:-1], axis=0), xs[:-1], axis=1)


def _block_means(values: np.ndarray) -> np.ndarray:
    return _block_sums(values) / _block_sums(np.ones_like(values))


def block_texture(gray: np.ndarray) -> np.ndarray:
    """Mean gradient magnitude (grey levels per pixel) of each block after a Gaussian (σ 1.5)
    that removes sensor noise: ≈0 for a covered lens or a flat screen, 3–30 for a scene."""
    smooth = cv2.GaussianBlur(gray, (0, 0), 1.5).astype(np.float32)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3) / 8
    return _block_means(np.sqrt(gx * gx + gy * gy))


def blur(frame: Frame, min_texture: float = 1.5) -> float:
    """Blur effect after Crete et al. (2007), 0 = sharp … 1 = fully blurred, the median over
    textured blocks (those with at least `min_texture`, so that flat sky, a covered part of the
    lens or an OSD overlay do not decide). A frame without textured blocks scores 1."""
    f = frame.gray.astype(np.float32)
    scores = []
    for axis in (0, 1):
        ksize = (1, 9) if axis == 0 else (9, 1)  # 9-tap box across the axis of the difference
        b = cv2.blur(f, ksize[::-1] if axis == 0 else ksize)
        d_f = np.abs(np.diff(f, axis=axis))
        d_b = np.abs(np.diff(b, axis=axis))
        v = np.maximum(0.0, d_f - d_b)
        pad = ((0, 1), (0, 0)) if axis == 0 else ((0, 0), (0, 1))
        s_f = _block_sums(np.pad(d_f, pad))
        s_v = _block_sums(np.pad(v, pad))
        scores.append((s_f - s_v) / np.maximum(s_f, 1e-6))
    per_block = np.maximum(scores[0], scores[1])
    textured = block_texture(frame.gray) >= min_texture
    return float(np.median(per_block[textured])) if textured.any() else 1.0


def low_texture_share(frame: Frame, reference: Frame | None, flat: float = 1.0, was_textured: float = 2.0) -> float:
    """Share of the frame (0–1) in the largest 4-connected region of flat blocks (texture below
    `flat`): a covered lens, a branch or a bag across it. With a reference frame of this camera
    only blocks that had texture there (≥ `was_textured`) count, so sky, a white wall or a
    still lake that are always flat are not taken for a cover."""
    texture = block_texture(frame.gray)
    mask = texture < flat
    if reference is not None and reference.gray.shape == frame.gray.shape:
        mask &= block_texture(reference.gray) >= was_textured
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=4)
    if count <= 1:
        return 0.0
    sizes = np.bincount(labels.ravel())[1:]
    return float(sizes.max() / mask.size)


def frozen(frames: list[Frame], still: float = 0.5) -> float:
    """Share of blocks (0–1) identical between consecutive frames taken seconds apart (mean
    absolute difference below `still` grey levels): a live camera's sensor noise changes every
    block, a frozen encoder repeats them; the OSD clock that keeps ticking on a frozen picture
    changes only the few blocks it covers. The smallest share over the pairs; 0 for one frame."""
    if len(frames) < 2:
        return 0.0
    shares = []
    for a, b in zip(frames, frames[1:]):
        if a.gray.shape != b.gray.shape:
            shares.append(0.0)
            continue
        diff = cv2.absdiff(a.gray, b.gray).astype(np.float32)
        shares.append(float((_block_means(diff) < still).mean()))
    return min(shares)


def luma(frame: Frame) -> tuple[float, float]:
    """(dark, bright) from the luminance histogram (BT.601 luma 0–255): dark = 1 − p90/255
    (even the brightest tenth of the picture is dark: a night picture without IR); bright =
    p50/255, the median (half the picture near white: an open iris, glare, a washed-out
    picture)."""
    hist = cv2.calcHist([frame.gray], [0], None, [256], [0, 256]).ravel()
    cdf = np.cumsum(hist) / hist.sum()
    p50, p90 = int(np.searchsorted(cdf, 0.50)), int(np.searchsorted(cdf, 0.90))
    return 1.0 - p90 / 255.0, p50 / 255.0


def chroma(frame: Frame) -> tuple[float, float, float, float]:
    """(log R/G, log B/G, D, M) of the mid-tone pixels: the grey-world channel ratios (an
    exposure change scales all channels alike and leaves them), and in CIELAB (OpenCV's 8-bit
    Lab, a* b* centred on 0) the distance D of the mean chroma from neutral and its spread
    M = √(var a* + var b*). An infrared black-and-white picture has D and M ≈ 0."""
    lab = cv2.cvtColor(frame.bgr, cv2.COLOR_BGR2LAB)
    mid = (lab[..., 0] > 25) & (lab[..., 0] < 230)
    if mid.sum() < 0.05 * mid.size:
        return 0.0, 0.0, 0.0, 0.0
    a = lab[..., 1][mid].astype(np.float32) - 128
    b = lab[..., 2][mid].astype(np.float32) - 128
    bgr = frame.bgr[mid].astype(np.float64).mean(axis=0) + 1.0
    return (float(np.log(bgr[2] / bgr[1])), float(np.log(bgr[0] / bgr[1])), float(np.hypot(a.mean(), b.mean())),
            float(np.sqrt(a.var() + b.var())))


def colour_cast(frame: Frame, reference: Frame | None, grey: float = 4.0) -> float:
    """Colour cast: how far the grey-world channel ratios moved, max |Δ log R/G|, |Δ log B/G|
    (0.3 ≈ one channel 35 % too strong). Against the camera's reference frame when both are in
    colour, so a scene brown or green by nature is no cast; otherwise against neutral, and only
    when the mean chroma offset D exceeds the chroma spread M (the equivalent-circle test: the
    whole picture pushed one way). A black-and-white picture (D and M below `grey`: infrared
    at night) scores 0: not a colour fault."""
    rg, bg, d, m = chroma(frame)
    if d < grey and m < grey:
        return 0.0
    if reference is not None:
        ref_rg, ref_bg, ref_d, ref_m = chroma(reference)
        if ref_d >= grey or ref_m >= grey:
            return max(abs(rg - ref_rg), abs(bg - ref_bg))
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


def signal_loss(frame: Frame, tolerance: int = 3) -> float:
    """How much the frame is one solid colour or a colour-bar test pattern (0–1): the share of
    pixels within `tolerance` grey levels of the median luma, or, for colour bars (at least three
    sharp steps across the top band), of their column's median within each of BAR_BANDS
    horizontal bands. Encoders' "no video" screens are
    solid blue, black or grey with a little text, or colour bars; a camera's picture, however
    dark, keeps some structure and sensor noise. A clipped white frame is glare (too bright),
    not a lost signal: a median above 230 scores 0."""
    gray = frame.gray
    median = int(np.median(gray[::4, ::4]))
    if median > 230:
        return 0.0
    uniform = float((np.abs(gray.astype(np.int16) - median) <= tolerance).mean())
    # Bars per horizontal band: SMPTE patterns change below two thirds of the height.
    bands = np.array_split(gray, BAR_BANDS, axis=0)
    medians = [np.median(band[::2], axis=0) for band in bands]
    jumps = np.abs(medians[0][4:] - medians[0][:-4]) > 20  # over 4 columns: the encoder softens edges
    if int((np.diff(jumps.astype(np.int8)) == 1).sum() + jumps[0]) < 3:  # runs of jumps = edges
        return uniform
    near = sum(int((np.abs(band - med.astype(np.int16)) <= tolerance).sum()) for band, med in zip(bands, medians))
    return max(uniform, near / gray.size)


@dataclass(frozen=True, slots=True)
class Reference:
    """A camera's reference frame with its ORB features, computed once (`reference(frame)`)."""

    frame: Frame
    keypoints: tuple
    descriptors: np.ndarray | None


def _orb():
    return cv2.ORB_create(nfeatures=600, fastThreshold=10)


def reference(frame: Frame) -> Reference:
    keypoints, descriptors = _orb().detectAndCompute(frame.gray, None)
    return Reference(frame, tuple(keypoints), descriptors)


def moved(frame: Frame, ref: Reference, min_inliers: int = 12) -> float:
    """How far the view moved from the camera's reference frame: the largest displacement of a
    frame corner under the similarity transform fitted (RANSAC) to ORB matches, as a share of
    the frame width (0.10 = a tenth of the picture; corners, so a zoom or a turn counts too).
    1.0 when the scene cannot be matched at all (fewer than `min_inliers` consistent matches):
    another scene."""
    if frame.gray.shape != ref.frame.gray.shape:
        return 1.0
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
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], dtype=np.float64)
    shift = corners @ transform.T - corners[:, :2]
    return float(min(1.0, np.hypot(shift[:, 0], shift[:, 1]).max() / w))
