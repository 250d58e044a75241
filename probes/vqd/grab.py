"""Frames for video-quality diagnosis: a burst from a stream with ffmpeg, or an image file.

`ffmpeg_output_args(cfg)`: what follows `-i URL` so that ffmpeg writes the burst as PPM frames
to stdout: the first decoded frame and the next one `burst_gap_s` later (select filter), scaled
down inside ffmpeg to at most ANALYSIS_WIDTH pixels wide, so however large the camera's frame
(8K) only ≤ 480 × 2000 × 3 bytes per frame reach this process. `read_ppm_frames` parses them
with the same bound; `decode_errors` counts what the decoder reported on stderr.
`read_image(path, max_pixels)` reads a file, refusing it before decoding when its header says
it is larger than max_pixels, and decoding JPEGs at a reduced scale when large.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import cv2
import numpy as np

from probes.vqd.config import VqdConfig
from probes.vqd.measures import ANALYSIS_WIDTH

MAX_HEIGHT = 2000  # a frame taller than this after scaling to ANALYSIS_WIDTH is refused
_DECODE_ERRORS = re.compile(  # a decoder's own line ("[h264 @ 0x…] …"), not a file name that says "corrupt"
    rb"^\[(?:h264|hevc|mjpeg|mpeg4|mpeg2video) @ 0x[0-9a-f]+\] .*(?:error while decoding|concealing \d+ DC|corrupt|"
    rb"Invalid NAL|Missing reference|missing picture|co located POCs unavailable|Invalid level prefix|"
    rb"out of range intra chroma pred mode)", re.I)


class FrameError(ValueError):
    """The frames could not be read; the message is the reason."""


def ffmpeg_input_args(cfg: VqdConfig) -> list[str]:
    """Options that go before `-i`: one decoder and one filter thread (ffmpeg's default starts a
    thread per core for frame threading, which costs CPU and memory for the two frames of a
    burst; bench/vqd_lab.py measures it), and only key frames when configured."""
    return ["-threads", "1", "-filter_threads", "1", *(["-skip_frame", "nokey"] if cfg.keyframes_only else [])]


def ffmpeg_output_args(cfg: VqdConfig) -> list[str]:
    gap = f"{cfg.burst_gap_s:g}"
    video_filter = (
        f"select='isnan(prev_selected_t)+gte(t-prev_selected_t\\,{gap})',"
        f"scale=w='min({ANALYSIS_WIDTH}\\,iw)':h=-2:flags=area"
    )
    return ["-map", "0:v:0", "-vf", video_filter, "-vsync", "vfr", "-frames:v", "2",
            "-f", "image2pipe", "-c:v", "ppm", "-pix_fmt", "rgb24", "-"]


_PPM_HEADER = re.compile(rb"P6\s+(\d+)\s+(\d+)\s+255\s")


async def read_ppm_frames(stream: asyncio.StreamReader, limit: int = 2) -> list[np.ndarray]:
    """Up to `limit` PPM (P6, 8-bit) frames from `stream` as BGR arrays, then the rest of the
    stream is read and dropped. Raises FrameError for a frame larger than ANALYSIS_WIDTH ×
    MAX_HEIGHT or garbage."""
    frames: list[np.ndarray] = []
    buffer = bytearray()
    while len(frames) < limit:
        m = _PPM_HEADER.match(buffer)
        if m is None:
            if len(buffer) > 64:
                raise FrameError("ffmpeg wrote something other than PPM frames")
            chunk = await stream.read(64 - len(buffer) if buffer else 64)
            if not chunk:
                break
            buffer += chunk
            continue
        width, height = int(m[1]), int(m[2])
        if not (0 < width <= ANALYSIS_WIDTH and 0 < height <= MAX_HEIGHT):
            raise FrameError(f"frame of {width}×{height} after scaling is out of bounds")
        size = width * height * 3
        del buffer[: m.end()]
        while len(buffer) < size:
            chunk = await stream.read(min(1 << 20, size - len(buffer)))
            if not chunk:
                return frames  # a truncated frame is not judged
            buffer += chunk
        rgb = np.frombuffer(bytes(buffer[:size]), np.uint8).reshape(height, width, 3)
        frames.append(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        del buffer[:size]
    while await stream.read(65536):
        pass
    return frames


def decode_errors(stderr: bytes) -> int:
    """Lines in ffmpeg's stderr where the decoder reported damage (mosaic, stutter)."""
    return sum(1 for line in stderr.splitlines() if _DECODE_ERRORS.search(line))


def read_image(path: Path, max_pixels: int) -> np.ndarray:
    """The image at `path` as BGR uint8. Raises FrameError with the reason: unreadable, not an
    image, larger than `max_pixels` (checked from the header, before decoding)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
            kind = image.format
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise FrameError(f"{path}: not a readable image ({type(exc).__name__})") from None
    if width * height > max_pixels:
        raise FrameError(f"{path}: {width}×{height} is larger than {max_pixels:,} pixels")
    flag = cv2.IMREAD_COLOR
    if kind == "JPEG" and width > 4 * ANALYSIS_WIDTH:  # libjpeg scales while decoding: a fraction of the memory
        flag = cv2.IMREAD_REDUCED_COLOR_4
    data = np.fromfile(path, np.uint8)
    decoded = cv2.imdecode(data, flag)
    if decoded is None:
        raise FrameError(f"{path}: the image data is corrupt")
    return decoded
