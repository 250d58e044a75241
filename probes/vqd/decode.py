"""The frame check's burst decoded in this process with PyAV (FFmpeg's libraries, in the wheel).

`grab(url, limits, cancelled)` → `Burst`: opens the RTSP URL (TCP interleaved, video only),
reads packets, decodes key frames only (`skip_frame NONKEY`, no loop filter: a key frame
needs no reference, and the deblocking filter is a third of H.264's decode time for a
picture whose blur is measured against the same camera's own reference), keeps the first key
frame and the next one ≥ `gap_s` later (to within half a frame interval: camera clocks jitter),
each scaled by libswscale to ANALYSIS_WIDTH wide, then stops. Replaces an ffmpeg child per
check, whose start alone cost 64–68 ms of CPU (bench/vqd_lab.py).

Paced reading: between the two key frames a live stream is read only to find the second one,
and a thread woken for each RTP packet (FFmpeg reads RTSP/TCP three reads per RTP packet, each
after a poll) spent most of the check's CPU on the wake-ups themselves, cold caches and all:
profiled on a 640×360 25-fps sub-stream, 21 ms of CPU for the 4 s between its key frames
without decoding anything. Once a read has had to wait (level with the live stream), the
reading pauses for PACE_S, or less when the stream would gather more than PACE_BYTES in the
socket meanwhile (its byte rate so far), then reads what gathered in one go: 6 ms for the same
4 s. The pause is well inside TCP's receive window, so the camera is not held back; files are
read without pauses. `frame_ms` may then be late by up to one pause (a session that opens
mid-GOP waits for its first key frame paced too).

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
PACE_S = 0.5  # longest pause of the reading, once level with a live stream (module docstring)
PACE_BYTES = 32 << 10  # … shorter for a stream that would gather more than this meanwhile
CAUGHT_UP_S = 0.001  # a read that waited longer than this (beyond its own CPU) found the socket empty


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
    `reason`: why no frame (None when one was decoded); `cpu_ms`: this thread's CPU; `times`:
    each frame's presentation time, seconds of stream time (0 where the stream has none)."""

    frames: list[np.ndarray] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
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


def pause_s(received: int, elapsed_s: float, left_s: float) -> float:
    """Seconds to pause a paced reading that has `received` bytes of stream in `elapsed_s`
    seconds, with `left_s` seconds left before its deadline: PACE_S, or the time the stream
    takes to bring PACE_BYTES at that rate if shorter, never beyond the deadline (≤ 0: none)."""
    rate = received / max(elapsed_s, 1e-3)
    return min(PACE_S, PACE_BYTES / max(rate, 1.0), left_s)


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
    asked = time.monotonic()  # when the latest read began
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
        # Timestamps stay integers in the stream's time base: PyAV gives each packet's time base
        # as a Python Fraction, and a Fraction or two per packet cost more CPU than the rest of
        # the loop (profiled on a 25-fps stream); float seconds also made "more than three frame
        # intervals" true of exactly three (0.12 > 3 × 0.039999…).
        base = stream.time_base
        tick_s = float(base) if base else 1 / 90_000
        gap = limits.gap_s / tick_s
        step = 1.0 / tick_s  # the shortest decoding-time step seen (the frame interval); 1 s until seen
        first_t: int | None = None  # the first kept frame's presentation time
        last_t: int | None = None  # the latest presentation time seen
        last_dts: int | None = None

        def apart(t: int) -> bool:
            """`t` is the gap after the first frame, to within half a frame interval (a camera's
            clock stamps a key frame 2 s later as 1.999 s as readily as 2.001 s)."""
            assert first_t is not None
            return t - first_t >= gap - min(step, 0.1 / tick_s) / 2

        paced = url.startswith(("rtsp://", "rtsps://"))
        packets = container.demux(stream)
        opened_at = read_at = asked = time.monotonic()
        caught_up = False
        while True:
            if caught_up:
                # Level with the live stream: let PACE_BYTES of it (at most PACE_S) gather in the
                # socket, then read them in one go. Woken for each RTP packet instead, the thread
                # spent more CPU on waking (cold caches, three reads per RTP packet) than on the
                # packets (profiled: 21 → 6 ms for 4 s of a 25-fps stream at 0.5 s).
                pause = pause_s(burst.received_bytes - RTSP_EXCHANGE, read_at - opened_at, deadline - read_at)
                if pause > 0 and cancelled.wait(pause):  # cancelled meanwhile: no further read
                    burst.reason = burst.reason or "timeout"
                    break
            asked, cpu = time.monotonic(), time.thread_time()
            packet = next(packets, None)
            read_at = time.monotonic()
            if packet is None:
                break
            # Blocked in the read (its wall time beyond its CPU time): the stream is live and read up to now.
            caught_up = paced and (read_at - asked) - (time.thread_time() - cpu) > CAUGHT_UP_S
            if cancelled.is_set() or read_at >= deadline:
                burst.reason = burst.reason or "timeout"
                break
            # The session's first access unit may be cut short (a media server or NVR joined
            # mid-frame, or its first RTP packets gone while the session was being set up: the
            # lab's GStreamer server cuts a fresh media's first key frame in half): damage there
            # is the session's start, not the camera's, and its picture is not analysed.
            size = packet.size
            opening = size > 0 and burst.packet_bytes == 0
            if size:
                burst.packet_bytes += size
                burst.received_bytes += _wire_bytes(size)
            if packet.is_corrupt and not opening:
                burst.decode_errors += 1
            pts, dts = packet.pts, packet.dts
            if pts is not None:
                last_t = pts if last_t is None else max(last_t, pts)
            if dts is not None:  # decoding order: monotonic, B-frames or not
                if last_dts is not None and dts > last_dts:
                    if dts - last_dts > GAP_FACTOR * step:
                        burst.decode_errors += 1
                    step = min(step, dts - last_dts)
                last_dts = dts
            if limits.max_bytes is not None and burst.received_bytes > limits.max_bytes:
                burst.over_budget = True
                break
            if limits.keyframes_only and size and (not packet.is_keyframe or (
                    first_t is not None and last_t is not None and not apart(last_t))):
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
                t = frame.pts if frame.pts is not None else (last_t or 0)
                if first_t is not None and not apart(t):
                    continue
                if first_t is None:
                    first_t = t
                    burst.frame_ms = (time.monotonic() - t0) * 1000
                burst.frames.append(_scaled(frame))
                burst.times.append(t * tick_s)
                if len(burst.frames) >= limits.frames:
                    return
    except (av.error.FFmpegError, OSError) as exc:
        if not burst.frames:
            burst.reason = _reason(exc, time.monotonic() - asked, limits.read_s)
    finally:
        container.close()


_scalers = threading.local()  # one libswscale context per worker thread, kept between grabs


def _scaled(frame) -> np.ndarray:
    """The frame as BGR, ANALYSIS_WIDTH wide at most (libswscale's area filter, as ffmpeg's), on
    this thread: libswscale's default starts a thread per core for each new scaler, which cost
    4 ms of this thread's CPU and 10 ms of the process's per 640×360 frame, 0.65 ms on one; the
    thread's scaler kept for the next frame of the same size and format, 0.4 ms."""
    from av.video.reformatter import VideoReformatter

    width = min(ANALYSIS_WIDTH, frame.width)
    height = max(2, round(frame.height * width / frame.width / 2) * 2)
    if height > MAX_HEIGHT:
        height = MAX_HEIGHT
    scaler = getattr(_scalers, "scaler", None)
    if scaler is None:
        scaler = _scalers.scaler = VideoReformatter()
    return scaler.reformat(frame, width=width, height=height, format="bgr24", interpolation="AREA",
                           threads=1).to_ndarray()
