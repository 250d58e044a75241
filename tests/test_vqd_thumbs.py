"""Thumbnails of the diagnosed frames: bounded in count and bytes, oldest evicted, atomic."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from probes.vqd.thumbs import THUMB_WIDTH, ThumbnailStore, thumbnail_name


def frame(seed: int, width: int = 640) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (width * 3 // 4, width, 3), dtype=np.uint8)


def test_thumbnails_are_small_jpegs_replaced_atomically(tmp_path: Path) -> None:
    store = ThumbnailStore(tmp_path / "thumbs", max_count=10, max_bytes=10 << 20)
    first = store.put("CAM-1", frame(1))
    second = store.put("CAM-1", frame(2))
    assert first == second == store.path("CAM-1")
    image = cv2.imread(str(second))
    assert image.shape[1] == THUMB_WIDTH and second.read_bytes()[:3] == b"\xff\xd8\xff"
    assert [p.name for p in (tmp_path / "thumbs").iterdir()] == ["CAM-1.jpg"]  # no partial file left
    assert store.path("CAM-2") is None
    assert thumbnail_name("../etc/passwd") == ".._etc_passwd.jpg"


def test_oldest_evicted_beyond_the_count_and_the_bytes(tmp_path: Path) -> None:
    store = ThumbnailStore(tmp_path, max_count=3, max_bytes=10 << 20)
    for i in range(5):
        path = store.put(f"C{i}", frame(i))
        os.utime(path, ns=(i * 10**9, i * 10**9))  # distinct ages on any file system
    assert sorted(p.name for p in tmp_path.iterdir()) == ["C2.jpg", "C3.jpg", "C4.jpg"]
    size = (tmp_path / "C4.jpg").stat().st_size
    small = ThumbnailStore(tmp_path, max_count=100, max_bytes=2 * size + size // 2)
    small.put("C5", frame(5))  # the newest stays even when it alone tips the balance
    left = sorted(p.name for p in tmp_path.iterdir())
    assert "C5.jpg" in left and len(left) == 2 and sum(p.stat().st_size for p in tmp_path.iterdir()) <= small.max_bytes


def test_bad_bounds_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ThumbnailStore(tmp_path, max_count=0, max_bytes=1)
