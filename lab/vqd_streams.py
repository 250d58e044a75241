"""The lab's picture defects (issue 17): the scenes the RTSP server shows and which cameras show
which defect.

`write_scenes(folder)` writes SCENES, real photographs from scikit-image (`skimage.data`, public
domain or CC0 per its data README), as PNGs of rtsp_server.SCENE_SIZE for
`RtspServer(scenes=...)`: one in colour, two grey (an infrared night picture). They are photographs
the shipped thresholds judge clean before a camera has a reference frame; many colourful ones
(coffee, chelsea) read as a colour cast then, and a wide flat sky (rocket) as a cover. `pick_defects(camera_ids, per_defect, seed)`
chooses, with the seed, `per_defect` cameras for each defect of STREAM_DEFECTS: the lab's
ground truth {camera id: defect}.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Sequence

SCENES = ("astronaut", "gravel", "camera")
STREAM_DEFECTS = ("blur", "dark", "bright", "cast", "occlusion", "frozen", "noise", "moved", "signal_loss")
SCENE_SIZE = (600, 450)  # = lab/rtsp_server.py SCENE_SIZE (that file runs under Debian's python)
CAST_GAINS = (1.45, 1.0, 0.7)  # R, G, B: within lab/vqd_data.py's cast strengths (×1.35–1.8, ×0.55–0.75)


def write_scenes(folder: Path) -> list[Path]:
    """SCENES as PNG files SCENE_SIZE large in `folder` (created); returns their paths."""
    import cv2
    import numpy as np
    import skimage.data

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in SCENES:
        rgb = getattr(skimage.data, name)()
        if rgb.ndim == 2:
            rgb = cv2.cvtColor(rgb, cv2.COLOR_GRAY2RGB)
        h, w = rgb.shape[:2]
        scale = max(SCENE_SIZE[0] / w, SCENE_SIZE[1] / h)  # cover the size, then crop the centre
        big = cv2.resize(rgb, (round(w * scale + 0.5), round(h * scale + 0.5)), interpolation=cv2.INTER_AREA)
        y, x = (big.shape[0] - SCENE_SIZE[1]) // 2, (big.shape[1] - SCENE_SIZE[0]) // 2
        crop = big[y: y + SCENE_SIZE[1], x: x + SCENE_SIZE[0]]
        path = folder / f"{name}.png"
        cv2.imwrite(str(path), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
        paths.append(path)
        # The cast defect's picture: white balance lost is a gain per channel (red up, blue down:
        # the warm cast of a camera stuck on its tungsten preset), texture untouched; GStreamer
        # has no per-channel gain element, so the server reads this sibling file instead.
        cast = np.clip(crop.astype(np.float32) * CAST_GAINS, 0, 255).astype(np.uint8)
        cv2.imwrite(str(cast_scene(path)), cv2.cvtColor(cast, cv2.COLOR_RGB2BGR))
    return paths


def cast_scene(path: Path) -> Path:
    """The file of `path`'s scene with the cast defect (rtsp_server.picture reads the same name)."""
    return path.with_suffix(".cast.png")


def pick_defects(camera_ids: Sequence[str], per_defect: int = 1, seed: int = 0,
                 defects: Sequence[str] = STREAM_DEFECTS) -> dict[str, str]:
    """{camera id: defect} for `per_defect` cameras per defect, drawn with `seed` from
    `camera_ids` (as many as there are when fewer)."""
    rng = random.Random(f"vqd-{seed}")
    picked = rng.sample(list(camera_ids), min(len(camera_ids), per_defect * len(defects)))
    return {camera: defects[i // per_defect] for i, camera in enumerate(picked)}
