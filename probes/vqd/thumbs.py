"""A thumbnail of each camera's latest diagnosed frame, on disk with bounds: JPEG files
<device id>.jpg in one folder, at most THUMB_WIDTH px wide, written atomically (a temporary
file renamed over the old one, so a reader never sees half a picture), the oldest evicted
(by modification time) while the folder holds more than `max_count` files or `max_bytes`.

For the phone page and the WeCom image message of a video-quality fault (the image message
takes a JPG or PNG of at most 2 MB: a thumbnail is a few tens of kB).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # OpenCV and NumPy load only where thumbnails are written, not where they are read
    import numpy as np

THUMB_WIDTH = 320
JPEG_QUALITY = 70
_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]")


def thumbnail_name(device_id: str) -> str:
    """The file name of a device's thumbnail: characters outside [A-Za-z0-9._-] become _."""
    return f"{_SAFE_ID.sub('_', device_id)}.jpg"


class ThumbnailStore:
    """`put(device_id, bgr)` keeps the frame's thumbnail; `path(device_id)` finds it. Not
    thread-safe: one writer (the diagnosis worker thread)."""

    def __init__(self, folder: Path, max_count: int, max_bytes: int) -> None:
        if max_count < 1 or max_bytes < 1:
            raise ValueError("max_count and max_bytes must be at least 1")
        self.folder, self.max_count, self.max_bytes = folder, max_count, max_bytes

    def path(self, device_id: str) -> Path | None:
        found = self.folder / thumbnail_name(device_id)
        return found if found.is_file() else None

    def put(self, device_id: str, bgr: np.ndarray) -> Path:
        """Write the thumbnail of `bgr` (uint8 H×W×3) for `device_id`, then evict the oldest
        beyond the bounds. Raises OSError when the folder cannot be written."""
        import cv2

        h, w = bgr.shape[:2]
        if w > THUMB_WIDTH:
            bgr = cv2.resize(bgr, (THUMB_WIDTH, max(1, round(h * THUMB_WIDTH / w))), interpolation=cv2.INTER_AREA)
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise OSError("JPEG encoding failed")
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / thumbnail_name(device_id)
        fd, partial = tempfile.mkstemp(dir=self.folder, prefix=".thumb-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data.tobytes())
            os.replace(partial, target)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
        self._evict(keep=target)
        return target

    def _evict(self, keep: Path) -> None:
        files = []
        for entry in os.scandir(self.folder):
            if entry.name.endswith(".jpg") and entry.is_file():
                st = entry.stat()
                files.append((st.st_mtime_ns, st.st_size, Path(entry.path)))
        files.sort()  # oldest first
        count, total = len(files), sum(size for _, size, _ in files)
        for _, size, path in files:
            if count <= self.max_count and total <= self.max_bytes:
                break
            if path == keep:
                continue
            path.unlink(missing_ok=True)
            count, total = count - 1, total - size
