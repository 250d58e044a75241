"""The frame check's burst decoded in this process with PyAV (FFmpeg's libraries, in the wheel).

`grab(url, limits, cancelled)` → `Burst`: opens the RTSP URL (TCP interleaved, video only),
reads packets, decodes key frames only (`skip_frame NONKEY`, no loop filter: a key frame
needs no reference, and the deblocking filter is a third of H.264's decode time for a
picture whose blur is measured against the same camera's own reference), keeps the first key
frame and the next one ≥ `gap_s` later, each scaled by libswscale to ANALYSIS_WIDTH wide,
then stops. Replaces an ffmpeg child per check, whose start alone cost 64–68 ms of CPU
(bench/vqd_lab.py).

Bounds, all checked between packets and inside every blocking call (PyAV's `timeout=(open,
read)` installs FFmpeg's interrupt callback): `timeout_s` for the whole grab, `read_s` for
one read; `max_bytes` (the bytes received, estimated below) stops the reading, the frames
decoded by then are kept; a stream larger than `max_pixels` is refused before its first
frame is decoded (its size comes from the SDP's SPS), so an 8K camera costs the 50 MB of a
decoded key frame at most; `cancelled` (a threading.Event) stops it between packets.

Bytes received: the RTSP demuxer's socket lives inside libavformat, among the daemon's many,
and cameras behind one NVR share its address, so no kernel count can be tied to one check.
The count is the packets' sizes plus the RTP-over-TCP framing each one came in: per RTP
packet 4 bytes of interleaving ($, channel, length, RFC 2326 §10.12) and 12 of RTP header
(RFC 3550), a packet per RTP_PAYLOAD bytes (RFC 6184 FU-A, 2 bytes of FU header in place of
the 4-byte start code FFmpeg writes), plus the RTSP exchange. bench/vqd_lab.py compares it
with the kernel's count of the same socket.

Decoding errors (stutter, mosaic): packets or frames FFmpeg flags corrupt (it conceals damaged
slices and flags the frame), packets it refuses (InvalidDataError), and gaps in the decoding
timestamps longer than GAP_FACTOR frame intervals (frames lost on the way). Not the session's
first access unit: joined mid-frame, it may be cut short; its damage is neither counted nor
its concealed picture analysed.

Where it runs: on a worker thread of the frame check (probes/rtsp.py, `max_concurrency` of
them); FFmpeg's reading, decoding and scaling release the GIL, so the event loop keeps
running. A thread, not a process pool: no frame copied between processes and no process to
start; the price is that a crash inside FFmpeg's decoder would take the daemon with it (the
ffmpeg decoder, `decoder: ffmpeg`, isolates it, at six times the CPU).

The URL carries the credentials: it is never logged nor put in a reason (FFmpeg's errors
name it, so only their type is used), and FFmpeg's own log stays off (PyAV's default).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from probes.vqd.measures import ANALYSIS_WIDTH

RTP_PAYLOAD = 1400  # bytes of NAL data per RTP packet (GStreamer's and the cameras' MTU choice)
RTP_FRAMING = 4 + 12 - 2  # interleaving + RTP header, less the start code's surplus over the FU header
RTSP_EXCHANGE = 2000  # OPTIONS … PLAY and their answers with the SDP, both ways: ~1–2 kB
GAP_FACTOR = 3.0  # a gap in the decoding timestamps of more than this many frame intervals is a loss
MAX_HEIGHT = 2000  # a frame taller than this after scaling to ANALYSIS_WIDTH is refused


@dataclass(frozen=True)
class Limits:
    timeout_s: float
    """Whole grab: connect, RTSP, the burst."""
    read_s: float
    """One blocking read or connect (FFmpeg's interrupt callback)."""
    gap_s: float
    """Seconds of stream time between the burst's two frames."""
    max_bytes: int | None
    """Bytes received (estimate, module docstring) after which reading stops; None: no bound."""
    probe_bytes: int
    """FFmpeg's probesize: bytes read to find the stream's parameters."""
    max_pixels: int
    """A stream whose frame is larger is refused before decoding."""
    keyframes_only: bool = True
    frames: int = 2


@dataclass
class Burst:
    """What one grab got. `frames`: BGR uint8 arrays ≤ ANALYSIS_WIDTH wide; `width`/`height`:
    the camera's frame size (None before the stream's parameters were known); `frame_ms`:
    from the start to the first decoded frame; `received_bytes`: estimated TCP payload;
    `reason`: why no frame (None when one was decoded); `cpu_ms`: this thread's CPU."""

    frames: list[np.ndarray] = field(default_factory=list)
    width: int | None = None
    height: int | None = None
    frame_ms: float = 0.0
    packet_bytes: int = 0
    received_bytes: int = 0
    decode_errors: int = 0
    over_budget: bool = False
    reason: str | None = None
    cpu_ms: float = 0.0


def _reason(exc: BaseException, waited_s: float, limit_s: float) -> str:
    """Our reason for FFmpeg's error: by its type only (its message names the URL). FFmpeg
    reports an interrupt by the timeout as whatever its caller made of it (InvalidDataError
    from the RTSP demuxer), so a call that lasted its whole limit is a timeout."""
    import av.error

    if waited_s >= 0.95 * limit_s:
        return "timeout"
    if isinstance(exc, av.error.HTTPUnauthorizedError):
        return "401 Unauthorized"
    if isinstance(exc, av.error.HTTPNotFoundError):
        return "404 Not Found"
    if isinstance(exc, av.error.HTTPError):  # 4xx/5xx: av gives its class, not the code
        return "RTSP error"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (TimeoutError, av.error.ExitError)):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno is not None and exc.errno in (113, 101):  # EHOSTUNREACH, ENETUNREACH
        return "host unreachable"
    return "no frame decoded"


def _wire_bytes(size: int) -> int:
    return size + RTP_FRAMING * (1 + size // RTP_PAYLOAD)


def grab(url: str, limits: Limits, cancelled: threading.Event) -> Burst:
    """The burst of `url` within `limits` (module docstring). Never raises for what the
    stream does: the reason is in the Burst."""
    cpu0, t0 = time.thread_time(), time.monotonic()
    burst = Burst()
    try:
        _grab(url, limits, cancelled, burst, t0)
    finally:
        burst.cpu_ms = (time.thread_time() - cpu0) * 1000
    if not burst.frames and burst.reason is None:
        burst.reason = "no frame decoded"
    return burst


def _grab(url: str, limits: Limits, cancelled: threading.Event, burst: Burst, t0: float) -> None:
    import av
    import av.error

    options = {
        "rtsp_transport": "tcp", "allowed_media_types": "video", "probesize": str(limits.probe_bytes),
        # What the SDP's SPS does not say (pix_fmt) is found in the first frames: 0.1 s of
        # stream, not FFmpeg's default 5 s (0 would mean that default), each frame decoded whole.
        "analyzeduration": "100000", "fpsprobesize": "0",
    }
    # Finding the stream's parameters decodes its first frames with a decoder of its own: whole,
    # deblocked, on a thread per core (at 1080p ~25 ms, a third of the grab's CPU), for what the
    # SPS already says (size, pixel format: H.264's parser reads them). Key frames only, one
    # thread, no loop filter there too: the open then decodes nothing the burst needs.
    probing = {"threads": "1", "skip_loop_filter": "all", "skip_frame": "nonkey"} if limits.keyframes_only else {}
    deadline = t0 + limits.timeout_s
    try:  # the open timeout bounds connecting, the RTSP exchange and finding the stream's parameters
        container = av.open(url, options=options, timeout=(limits.timeout_s, limits.read_s),
                            stream_options=[probing] if probing else None)
    except (av.error.FFmpegError, OSError) as exc:
        burst.reason = _reason(exc, time.monotonic() - t0, limits.timeout_s)
        return
    burst.received_bytes = RTSP_EXCHANGE
    try:
        if not container.streams.video:
            burst.reason = "no video stream"
            return
        stream = container.streams.video[0]
        ctx = stream.codec_context
        ctx.thread_count = 1  # two key frames: frame threads would cost CPU and memory for nothing
        if limits.keyframes_only:
            ctx.skip_frame = "NONKEY"
        ctx.options = {"skip_loop_filter": "all"} if limits.keyframes_only else {}
        if ctx.width and ctx.height:
            burst.width, burst.height = ctx.width, ctx.height
            if ctx.width * ctx.height > limits.max_pixels:
                burst.reason = f"frame of {ctx.width}×{ctx.height} is larger than {limits.max_pixels:,} pixels"
                return
        first_t: float | None = None
        last_t: float | None = None  # the latest presentation time seen
        last_dts: float | None = None
        step = 1.0  # the shortest decoding-time step seen: the frame interval
        read_at = time.monotonic()
        for packet in container.demux(stream):
            read_at = time.monotonic()
            if cancelled.is_set() or read_at >= deadline:
                burst.reason = burst.reason or "timeout"
                break
            # The session's first access unit may be cut short (a media server or NVR joined
            # mid-frame, or its first RTP packets gone while the session was being set up: the
            # lab's GStreamer server cuts a fresh media's first key frame in half): damage there
            # is the session's start, not the camera's, and its picture is not analysed.
            opening = packet.size > 0 and burst.packet_bytes == 0
            if packet.size:
                burst.packet_bytes += packet.size
                burst.received_bytes += _wire_bytes(packet.size)
            if packet.is_corrupt and not opening:
                burst.decode_errors += 1
            if packet.time_base is not None:
                if packet.pts is not None:
                    t = float(packet.pts * packet.time_base)
                    last_t = t if last_t is None else max(last_t, t)
                if packet.dts is not None:  # decoding order: monotonic, B-frames or not
                    dts = float(packet.dts * packet.time_base)
                    if last_dts is not None and dts > last_dts:
                        if dts - last_dts > GAP_FACTOR * step:
                            burst.decode_errors += 1
                        step = min(step, dts - last_dts)
                    last_dts = dts
            if limits.max_bytes is not None and burst.received_bytes > limits.max_bytes:
                burst.over_budget = True
                break
            if limits.keyframes_only and packet.size and (not packet.is_keyframe or (
                    first_t is not None and last_t is not None and last_t - first_t < limits.gap_s)):
                continue  # skipped by the decoder anyway, or a key frame inside the gap: not needed
            try:
                decoded = ctx.decode(packet)
                if limits.keyframes_only and not decoded:
                    # A stream with B-frames makes H.264 hold each picture back until the next
                    # ones arrive (reordering), seconds of stream later with key frames alone:
                    # drained now, then reset for the next key frame (the SPS/PPS are kept).
                    decoded = ctx.decode(None)
                    ctx.flush_buffers()
            except av.error.InvalidDataError:
                if not opening:
                    burst.decode_errors += 1
                continue
            if opening and any(frame.is_corrupt for frame in decoded):
                ctx.flush_buffers()  # nor what the decoder holds back of the cut unit
                continue
            for frame in decoded:
                if frame.is_corrupt:
                    burst.decode_errors += 1
                if burst.width is None:
                    burst.width, burst.height = frame.width, frame.height
                    if frame.width * frame.height > limits.max_pixels:
                        burst.reason = (f"frame of {frame.width}×{frame.height} is larger than "
                                        f"{limits.max_pixels:,} pixels")
                        return
                # The stream's first packet may come without a timestamp (RTP's first, before RTCP
                # has mapped the clock): it is then the latest packet's time, or the start.
                t = float(frame.time) if frame.time is not None else (last_t or 0.0)
                if first_t is not None and t - first_t < limits.gap_s:
                    continue
                if first_t is None:
                    first_t = t
                    burst.frame_ms = (time.monotonic() - t0) * 1000
                burst.frames.append(_scaled(frame))
                if len(burst.frames) >= limits.frames:
                    return
    except (av.error.FFmpegError, OSError) as exc:
        if not burst.frames:
            burst.reason = _reason(exc, time.monotonic() - read_at, limits.read_s)
    finally:
        container.close()


def _scaled(frame) -> np.ndarray:
    """The frame as BGR, ANALYSIS_WIDTH wide at most (libswscale's area filter, as ffmpeg's)."""
    width = min(ANALYSIS_WIDTH, frame.width)
    height = max(2, round(frame.height * width / frame.width / 2) * 2)
    if height > MAX_HEIGHT:
        height = MAX_HEIGHT
    return frame.reformat(width=width, height=height, format="bgr24", interpolation="AREA").to_ndarray()
