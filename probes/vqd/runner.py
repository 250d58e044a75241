"""Video-quality diagnosis inside the frame check: the decoder's burst → diagnosis in a worker thread
→ a `video_quality` series of the rtsp_frame result. Imported only when vqd is enabled.

The image work runs on one worker thread of its own (OpenCV and NumPy release the GIL), so the
event loop never waits on it and at most one analysis runs at a time whatever the number of
ffmpeg processes. Each camera's reference frame (measures.Reference) is the first frame
without a fault, kept in memory and, with `reference_dir`, as <device id>.png. With a ThumbnailStore,
each check's first frame is also kept as the camera's thumbnail (probes/vqd/thumbs.py).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from monitor.core.model import Device
from probes.base import Series
from probes.vqd import measures
from probes.vqd.config import MEASUREMENT, VqdConfig
from probes.vqd.diagnose import Diagnosis, diagnose
from probes.vqd.thumbs import ThumbnailStore

log = logging.getLogger("fleetmon.vqd")
_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]")


class VqdRunner:
    """The diagnosis side of RtspFrameProbe for one daemon run; `close()` ends the worker."""

    def __init__(self, cfg: VqdConfig, thumbnails: ThumbnailStore | None = None) -> None:
        self.cfg = cfg
        self.thumbnails = thumbnails
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vqd")
        self._references: dict[str, measures.Reference] = {}

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)

    def _reference_path(self, device_id: str) -> Path | None:
        if self.cfg.reference_dir is None:
            return None
        return self.cfg.reference_dir / f"{_SAFE_ID.sub('_', device_id)}.png"

    def _reference(self, device_id: str) -> measures.Reference | None:
        ref = self._references.get(device_id)
        path = self._reference_path(device_id)
        if ref is None and path is not None and path.is_file():
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                ref = self._references[device_id] = measures.reference(measures.prepare(image))
        return ref

    def _analyse(self, device: Device, frames: list[np.ndarray], errors: int) -> tuple[Diagnosis, float]:
        started = time.thread_time()
        diagnosis = diagnose(frames, self._reference(device.id), self.cfg.thresholds_for(device), errors)
        if diagnosis.ok and device.id not in self._references:
            prepared = measures.prepare(frames[0])
            self._references[device.id] = measures.reference(prepared)
            path = self._reference_path(device.id)
            if path is not None:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(path), prepared.bgr)
                except OSError as exc:  # the diagnosis stands; the reference lives in memory
                    log.warning("cannot keep the reference frame of %s: %s", device.id, exc)
        if self.thumbnails is not None:
            try:
                self.thumbnails.put(device.id, frames[0])
            except OSError as exc:  # the diagnosis stands without its picture
                log.warning("cannot keep the thumbnail of %s: %s", device.id, exc)
        return diagnosis, (time.thread_time() - started) * 1000

    async def series(self, device: Device, frames: list[np.ndarray], errors: int) -> Series | None:
        """The `video_quality` series of a burst with `errors` decoding errors (mosaic,
        stutter), or None when no frame was decoded."""
        if not frames:
            return None
        loop = asyncio.get_running_loop()
        diagnosis, cpu_ms = await loop.run_in_executor(
            self._worker, self._analyse, device, frames, errors
        )
        fields: dict[str, float | int | bool | str] = {f"{k}_score": v for k, v in diagnosis.scores.items()}
        fields.update(faults=",".join(diagnosis.faults), picture_ok=diagnosis.ok, frames=len(frames),
                      analysis_ms=round(cpu_ms, 3))
        return Series(MEASUREMENT.name, {}, fields)
