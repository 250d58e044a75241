"""Video-quality diagnosis inside the frame check, on real streams: the GStreamer RTSP server of
the lab (its videotestsrc sends SMPTE colour bars: an encoder's "no video" screen) decoded by
PyAV in the daemon's process (decoder pyav) and by Debian's ffmpeg (decoder ffmpeg), and the
hostile inputs: a stream that never sends a frame, an 8K frame, a corrupt frame."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from lab.rtsp import RtspServer
from probes._sockdiag import received_bytes
from probes.rtsp import RtspFrameConfig, RtspFrameProbe
from probes.vqd.config import MEASUREMENT, VqdConfig
from probes.vqd.decode import PACE_BYTES, PACE_S, Limits, grab, pause_s
from probes.vqd.diagnose import DIAGNOSES
from probes.vqd.grab import FrameError, decode_errors, read_image
from tests.plugins.factories import device

camera = partial(device, address="127.0.0.1", site="s1", region="r1")
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs Debian's ffmpeg")
DECODERS = [pytest.param("pyav"), pytest.param("ffmpeg", marks=needs_ffmpeg)]


@pytest.fixture(scope="module")
def plain() -> Iterator[RtspServer]:
    with RtspServer() as server:
        yield server


@pytest.mark.peer
@pytest.mark.parametrize("decoder", DECODERS)
async def test_burst_diagnosed_in_the_frame_check(plain: RtspServer, tmp_path: Path, decoder: str) -> None:
    vqd = VqdConfig(enabled=True, burst_gap_s=1.0, keyframes_only=False, reference_dir=tmp_path)
    async with RtspFrameProbe(RtspFrameConfig(port=plain.port, vqd=vqd, decoder=decoder)) as probe:
        result = await probe.probe(camera())
    assert result.ok, result.reason
    assert ("decode_cpu_ms" in result.fields) is (decoder == "pyav")
    (series,) = result.series
    assert series.measurement == MEASUREMENT.name
    assert set(series.fields) <= set(MEASUREMENT.fields)
    assert series.fields["frames"] == 2 and series.fields["analysis_ms"] > 0
    assert all(f"{d}_score" in series.fields for d in DIAGNOSES if d != "moved")  # moved: no reference yet
    assert series.fields["picture_ok"] is (series.fields["faults"] == "")
    assert (result.fields["width"], result.fields["height"]) == (320, 240)  # the camera's, not the scaled
    # Only a picture without faults becomes the camera's reference.
    assert [p.name for p in tmp_path.iterdir()] == (["cam-1.png"] if series.fields["picture_ok"] else [])


@pytest.mark.peer
@pytest.mark.parametrize("decoder", DECODERS)
async def test_stream_that_never_sends_a_frame_is_bounded(decoder: str) -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cfg = RtspFrameConfig(port=port, timeout_s=6.0, vqd=VqdConfig(enabled=True, burst_gap_s=1.0), decoder=decoder)
    loop = asyncio.get_running_loop()
    async with RtspFrameProbe(cfg) as probe:
        started = loop.time()
        result = await probe.probe(camera())
        elapsed = loop.time() - started
    server.close()
    for w in accepted:
        w.close()
    assert (result.ok, result.reason, result.series) == (False, "timeout (no frame within 6 s)", ())
    assert elapsed < probe.budget_s(camera())


def _ffmpeg_h264(path: Path, size: str, seconds: float = 1.0) -> None:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=5", "-t", str(seconds),
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "5", "-y", str(path)],
        check=True, timeout=120,
    )


@pytest.mark.peer
@needs_ffmpeg
def test_8k_frame_reaches_us_scaled(tmp_path: Path) -> None:
    """ffmpeg scales inside its process: an 8K stream yields frames at most 480 px wide here."""
    from probes.vqd.grab import ffmpeg_output_args

    src = tmp_path / "8k.mp4"
    _ffmpeg_h264(src, "7680x4320", 0.4)
    cmd = ["ffmpeg", "-v", "error", "-i", str(src), *ffmpeg_output_args(VqdConfig(burst_gap_s=1.0))]
    out = subprocess.run(cmd, capture_output=True, check=True, timeout=120).stdout
    assert out.startswith(b"P6\n480 270\n255\n")
    assert len(out) <= 2 * (480 * 270 * 3 + 20)


def _limits(**changes: object) -> Limits:
    base = dict(timeout_s=60.0, read_s=30.0, gap_s=1.0, max_bytes=None, probe_bytes=2_000_000,
                max_pixels=40_000_000)
    return Limits(**{**base, **changes})  # type: ignore[arg-type]


@pytest.mark.peer
@needs_ffmpeg
def test_8k_frame_scaled_by_pyav_or_refused(tmp_path: Path) -> None:
    """PyAV scales in libswscale: an 8K stream yields 480 × 270 frames and reports its own size;
    with max_pixels below 8K it is refused before a frame is decoded."""
    src = tmp_path / "8k.mp4"
    _ffmpeg_h264(src, "7680x4320", 1.4)
    burst = grab(str(src), _limits(), threading.Event())
    assert burst.reason is None and (burst.width, burst.height) == (7680, 4320)
    assert [f.shape for f in burst.frames] == [(270, 480, 3)] * 2
    refused = grab(str(src), _limits(max_pixels=8_000_000), threading.Event())
    assert (refused.frames, refused.reason) == ([], "frame of 7680×4320 is larger than 8,000,000 pixels")


@pytest.mark.peer
@needs_ffmpeg
def test_pyav_burst_with_b_frames_stops_at_the_second_key_frame(tmp_path: Path) -> None:
    """With B-frames H.264 holds a picture back until later ones arrive; with key frames alone
    that is seconds of stream. The grab drains each key frame: it reads up to the key frame
    1 s after the first (plus what the demuxer holds), not the stream's next GOPs."""
    import av

    src = tmp_path / "bframes.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-t", "6",
                    "-c:v", "libx264", "-preset", "veryfast", "-bf", "3", "-g", "25", "-pix_fmt", "yuv420p",
                    "-y", str(src)], check=True, timeout=120)
    with av.open(str(src)) as container:
        assert container.streams.video[0].codec_context.has_b_frames
        upto = sum(p.size for p in container.demux(video=0) if p.dts is not None and p.dts * p.time_base < 1.5)
    burst = grab(str(src), _limits(gap_s=1.0), threading.Event())
    assert (len(burst.frames), burst.decode_errors) == (2, 0)
    assert burst.packet_bytes <= upto, (burst.packet_bytes, upto)


def _sub_stream(folder: Path, drop: int = 0) -> Path:
    """5 s of a camera's sub-stream as the frame check reads it by default: 640×360, 25 fps, a
    key frame every 2 s (at 0, 2 and 4 s), 512 kbit/s, with B-frames and the sensor's noise
    (small P-frames; their guessed decoding timestamps tripped the stutter count on every
    check before they were compared as integers); `drop` > 0 removes the first frames,
    so that the stream opens mid-GOP (its first key frame then comes at 2 s)."""
    src = folder / "sub.mp4"
    if not src.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-t", "5",
                        "-vf", "noise=alls=6:allf=t", "-c:v", "libx264", "-preset", "veryfast", "-bf", "3",
                        "-b:v", "512k", "-maxrate", "512k", "-bufsize", "512k",
                        "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
                        "-movflags", "+faststart", "-y", str(src)], check=True, timeout=120)
    if not drop:
        return src
    cut = folder / f"sub-from-{drop}.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), "-c", "copy", "-bsf:v", f"noise=drop=lt(n\\,{drop})",
                    "-movflags", "+faststart", "-y", str(cut)], check=True, timeout=120)
    return cut


@pytest.mark.peer
@needs_ffmpeg
def test_pyav_burst_on_a_sub_stream_reads_one_gop(tmp_path: Path) -> None:
    """Over RTSP, on a 25-fps stream with a key frame every 2 s: with a gap of 2 s the burst is
    the first key frame and the next one, 2 s later (not 4 s: one GOP read, not two), from a
    GOP-aligned start and from a start mid-GOP (non-key frames first, skipped unread by the
    decoder). RTSP carries no decoding timestamps and FFmpeg guesses them at the start of a
    B-frame stream (… 10800, 21600, 18000 …, 90 kHz): a step of exactly three frame intervals
    is no stutter (in float seconds 0.12 > 3 × 0.039999… was, on every check)."""
    aligned, mid = _sub_stream(tmp_path), _sub_stream(tmp_path, drop=20)
    with RtspServer(files={"/sub": aligned, "/mid": mid}) as server:
        for mount in ("/sub", "/mid"):
            burst = grab(server.url(mount), _limits(gap_s=2.0), threading.Event())
            assert burst.reason is None, (mount, burst.reason)
            assert [f.shape for f in burst.frames] == [(270, 480, 3)] * 2
            assert burst.times[1] - burst.times[0] == pytest.approx(2.0, abs=0.005), (mount, burst.times)
            assert burst.decode_errors == 0, mount
            assert burst.packet_bytes < aligned.stat().st_size * 0.7  # ≈ 2 s of the 5, not 4


@pytest.mark.peer
@needs_ffmpeg
def test_pyav_gap_holds_to_within_half_a_frame(tmp_path: Path) -> None:
    """The second key frame is the first at least the gap after the first, to within half a
    frame interval (0.02 s at 25 fps): a camera clock that stamps 2 s as 1.99 s still gives
    one GOP; a gap longer than that waits for the next key frame."""
    src = _sub_stream(tmp_path)
    for gap, apart in ((1.985, 2.0), (2.015, 2.0), (2.03, 4.0)):
        burst = grab(str(src), _limits(gap_s=gap), threading.Event())
        assert burst.times[1] - burst.times[0] == pytest.approx(apart, abs=0.005), (gap, burst.times)


def test_kept_scaler_follows_the_frame_size() -> None:
    """The worker thread's libswscale context is kept between frames: frames of other sizes
    (cameras of another resolution on the same thread) come out as a fresh scaler makes them."""
    import av

    from probes.vqd.decode import _scaled

    rng = np.random.default_rng(3)
    sizes = [(360, 640), (1080, 1920), (360, 640), (240, 320), (1080, 1920)]
    frames = [av.VideoFrame.from_ndarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), format="rgb24")
              for h, w in sizes]
    for frame, (h, w) in zip(frames, sizes):
        kept = _scaled(frame)
        fresh = frame.reformat(width=min(480, w), height=kept.shape[0], format="bgr24", interpolation="AREA",
                               threads=1).to_ndarray()
        assert kept.shape == (round(h * min(480, w) / w / 2) * 2, min(480, w), 3)
        assert np.array_equal(kept, fresh)


@pytest.mark.peer
def test_paced_grab_stops_when_cancelled(plain: RtspServer) -> None:
    """A grab pausing between reads of a live stream (gap 20 s: it is level with the stream
    most of the time) stops within a pause of being cancelled, its first frame kept."""
    cancelled = threading.Event()
    result: list = []
    thread = threading.Thread(target=lambda: result.append(grab(plain.url(), _limits(gap_s=20.0), cancelled)))
    thread.start()
    try:
        thread.join(3.0)  # the first key frame within a second (5 fps, one a second), then paced
        assert thread.is_alive()
        cancelled.set()
        thread.join(PACE_S + 1.5)  # the pause it is in, one more read at most
        assert not thread.is_alive()
    finally:
        cancelled.set()
        thread.join()
    (burst,) = result
    assert (len(burst.frames), burst.reason) == (1, "timeout")


def test_paced_reading_pause() -> None:
    """The pause of a paced reading: PACE_S for a slow stream, shorter for one that would gather
    more than PACE_BYTES meanwhile, never past the deadline."""
    assert pause_s(64_000, 1.0, 10.0) == PACE_S  # a 512 kbit/s sub-stream: 32 kB in 0.5 s
    fast = pause_s(500_000, 1.0, 10.0)  # a 4 Mbit/s main stream
    assert fast == pytest.approx(PACE_BYTES / 500_000) and fast < PACE_S
    assert pause_s(64_000, 1.0, 0.1) == 0.1
    assert pause_s(64_000, 1.0, -0.5) <= 0  # past the deadline: no pause
    assert pause_s(0, 0.0, 10.0) == PACE_S  # nothing yet: the longest pause, still bounded


@pytest.mark.peer
@needs_ffmpeg
def test_pyav_counts_corrupt_frames(tmp_path: Path) -> None:
    """Damaged slices: FFmpeg conceals them and flags the frame corrupt; PyAV's grab counts it.
    The same stream undamaged counts none."""
    src = tmp_path / "ok.h264"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "2",
                    "-c:v", "libx264", "-preset", "ultrafast", "-f", "h264", "-y", str(src)], check=True, timeout=60)
    data = bytearray(src.read_bytes())
    rng = np.random.default_rng(1)
    for pos in rng.integers(_nal_starts(data)[4], len(data), 40):  # after the first access unit (SPS … IDR)
        data[pos] ^= 0xFF
    bad = tmp_path / "bad.h264"
    bad.write_bytes(bytes(data))
    every_frame = _limits(keyframes_only=False, gap_s=1.9)
    assert grab(str(src), every_frame, threading.Event()).decode_errors == 0
    assert grab(str(bad), every_frame, threading.Event()).decode_errors > 0


def _nal_starts(data: bytes | bytearray) -> list[int]:
    """Offsets of the NAL unit headers in H.264 Annex B `data` (after each 00 00 01)."""
    return [i + 3 for i in range(len(data) - 3) if data[i:i + 3] == b"\x00\x00\x01"]


def _cut_key_frame(data: bytes, which: int) -> bytes:
    """`data` (H.264 Annex B) with the `which`-th IDR slice (0-based) cut to half its length,
    as a session that lost the end of a key frame gets it."""
    starts = _nal_starts(data)
    idr = [i for i in starts if data[i] & 0x1F == 5][which]
    end = next(i for i in starts if i > idr)
    return data[:idr + (end - idr) // 2] + data[end:]


@pytest.mark.peer
@needs_ffmpeg
def test_a_session_opening_on_a_cut_key_frame_is_no_decoding_error(tmp_path: Path) -> None:
    """A stream joined mid-frame (a media server, the lab's GStreamer server on a fresh media)
    opens on a cut key frame: it is skipped, neither counted nor analysed, and the burst starts
    at the next key frame; the same cut later in the stream is the camera's and counted."""
    src = tmp_path / "ok.h264"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "2",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "5", "-f", "h264", "-y", str(src)],
                   check=True, timeout=60)
    data = src.read_bytes()
    opening, later = tmp_path / "opening.h264", tmp_path / "later.h264"
    opening.write_bytes(_cut_key_frame(data, 0))
    later.write_bytes(_cut_key_frame(data, 3))
    limits = _limits(gap_s=0.0, frames=3)  # (a raw H.264 file has no timestamps): consecutive key frames
    clean = grab(str(src), limits, threading.Event())
    cut = grab(str(opening), limits, threading.Event())
    assert (cut.decode_errors, len(cut.frames)) == (0, 3)
    # The next key frame's picture, whole (the decoder's state after the skipped unit leaves
    # differences of a deblocking filter's size, 2.7 levels; the cut frame itself differs by 16).
    assert np.abs(cut.frames[0].astype(int) - clean.frames[1]).mean() < 4
    assert np.array_equal(cut.frames[1], clean.frames[2])
    every = _limits(gap_s=1.9, keyframes_only=False)
    assert grab(str(src), every, threading.Event()).decode_errors == 0
    assert grab(str(later), every, threading.Event()).decode_errors > 0


@needs_ffmpeg
@pytest.mark.peer
def test_corrupt_stream_counts_decode_errors(tmp_path: Path) -> None:
    src = tmp_path / "ok.h264"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "2",
                    "-c:v", "libx264", "-preset", "ultrafast", "-f", "h264", "-y", str(src)], check=True, timeout=60)
    data = bytearray(src.read_bytes())
    rng = np.random.default_rng(1)
    for pos in rng.integers(2000, len(data), 40):  # bytes flipped in the slices, headers spared
        data[pos] ^= 0xFF
    bad = tmp_path / "bad.h264"
    bad.write_bytes(bytes(data))
    clean = subprocess.run(["ffmpeg", "-i", str(src), "-f", "null", "-"], capture_output=True, timeout=60).stderr
    damaged = subprocess.run(["ffmpeg", "-i", str(bad), "-f", "null", "-"], capture_output=True, timeout=60).stderr
    assert decode_errors(clean) == 0
    assert decode_errors(damaged) > 0


def test_image_files_hostile(tmp_path: Path) -> None:
    import cv2

    corrupt = tmp_path / "corrupt.jpg"
    ok, data = cv2.imencode(".jpg", np.full((240, 320, 3), 128, np.uint8))
    corrupt.write_bytes(data.tobytes()[:200])
    with pytest.raises(FrameError, match="corrupt|not a readable image"):
        read_image(corrupt, 40_000_000)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(FrameError, match="not a readable image"):
        read_image(text, 40_000_000)
    big = tmp_path / "8k.png"
    cv2.imwrite(str(big), np.zeros((4320, 7680), np.uint8))
    with pytest.raises(FrameError, match="larger than"):
        read_image(big, 8_000_000)  # refused from the header, before decoding
    assert read_image(big, 40_000_000).shape == (4320, 7680, 3)


def _mp4(path: Path, size: str, seconds: float) -> Path:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=5", "-t", str(seconds),
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "5", "-pix_fmt", "yuv420p", "-movflags", "+faststart",
         "-y", str(path)],
        check=True, timeout=180,
    )
    return path


@pytest.mark.peer
@needs_ffmpeg
@pytest.mark.parametrize("decoder", ["pyav", "ffmpeg"])
async def test_hostile_streams_through_the_frame_check(tmp_path: Path, decoder: str) -> None:
    """The daemon's path (RtspFrameProbe with vqd) on an 8K stream and on one with damaged
    slices: within the probe's budget, frames that reach this process at most 480 px wide, and
    a reason or the damage counted."""
    big = _mp4(tmp_path / "8k.mp4", "7680x4320", 2.2)
    good = _mp4(tmp_path / "ok.mp4", "640x360", 4.0)
    data = bytearray(good.read_bytes())
    moov_end = data.find(b"mdat") + 8  # faststart: the index first, then the slices
    rng = np.random.default_rng(7)
    for pos in rng.integers(moov_end + 4000, len(data), 60):
        data[pos] ^= 0xFF
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    with RtspServer(files={"/8k": big, "/bad": bad}) as server:
        loop = asyncio.get_running_loop()
        for mount in ("/8k", "/bad"):
            cfg = RtspFrameConfig(port=server.port, url_template=f"rtsp://{{host}}:{{port}}{mount}", timeout_s=20.0,
                                  max_check_bytes=None, vqd=VqdConfig(enabled=True, burst_gap_s=1.0), decoder=decoder)
            async with RtspFrameProbe(cfg) as probe:
                started = loop.time()
                result = await probe.probe(camera())
                elapsed = loop.time() - started
            assert elapsed < probe.budget_s(camera())
            if mount == "/8k":
                assert result.ok, result.reason
                assert (result.fields["width"], result.fields["height"]) == (7680, 4320)  # the camera's size, reported
                (series,) = result.series
                assert series.fields["frames"] == 2  # scaled by the decoder: two 480 × 270 frames reached us
            else:
                assert (result.ok and result.series[0].fields["decode_errors_score"] >= 1) or (
                    result.reason in ("no frame decoded", "timeout (no frame within 20 s)")), (result.reason, result.series)


@pytest.mark.peer
@needs_ffmpeg
async def test_byte_budget_stops_ffmpeg_and_reports_the_bytes(tmp_path: Path) -> None:
    """max_check_bytes holds: the 8K stream (≈ 15 MB in two seconds) is cut near the budget and
    what the check received is reported; a budget it fits in lets it through untouched."""
    big = _mp4(tmp_path / "8k.mp4", "7680x4320", 2.2)
    with RtspServer(files={"/8k": big}) as server:
        for budget in (1_000_000, 64_000_000):
            cfg = RtspFrameConfig(port=server.port, url_template="rtsp://{host}:{port}/8k", timeout_s=20.0,
                                  max_check_bytes=budget, vqd=VqdConfig(enabled=True, burst_gap_s=1.0),
                                  decoder="ffmpeg")
            async with RtspFrameProbe(cfg) as probe:
                result = await probe.probe(camera())
            received = result.fields["received_bytes"]
            if budget == 1_000_000:
                assert result.fields["over_budget"] is True
                assert budget < received < budget + 3_000_000  # cut at the next look, 0.2 s later
                assert result.ok or result.reason.startswith("byte budget exceeded")
            else:
                assert result.ok and "over_budget" not in result.fields
                # Sampled every 0.2 s: the last look sees most of the 15 MB, not the final packets.
                assert received > 10_000_000 and result.fields["bytes"] > 10_000_000


class _KernelCount:
    """The TCP payload this process's sockets have received, the kernel's count
    (probes._sockdiag), sampled every 10 ms on a thread: the largest sample, a floor of the
    final count (the socket is gone once the grab closes it)."""

    def __init__(self) -> None:
        self.seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.seen = max(self.seen, received_bytes(os.getpid()) or 0)

    def __enter__(self) -> "_KernelCount":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.peer
@needs_ffmpeg
async def test_pyav_byte_count_and_budget_against_the_kernel(tmp_path: Path) -> None:
    """PyAV's count of the bytes received (packets + RTP/TCP framing) against the kernel's
    count of the same socket (this test process holds no other TCP socket): on the lab's live
    stream within 10 % of it; a 1 MB budget stops the 8K stream (≈ 15 MB, served faster than
    real time) at the access unit that crosses it, and the kernel's count stays far below the
    stream's 15 MB (what arrived in the socket's buffer before it was closed)."""
    big = _mp4(tmp_path / "8k.mp4", "7680x4320", 2.2)
    with RtspServer(files={"/8k": big}) as server:
        for mount, budget in (("/Streaming/Channels/101", None), ("/8k", 1_000_000)):
            cfg = RtspFrameConfig(port=server.port, url_template=f"rtsp://{{host}}:{{port}}{mount}", timeout_s=20.0,
                                  max_check_bytes=budget, vqd=VqdConfig(enabled=True, burst_gap_s=3.0))
            with _KernelCount() as kernel:
                async with RtspFrameProbe(cfg) as probe:
                    result = await probe.probe(camera())
            counted = result.fields["received_bytes"]
            if budget is None:
                assert result.ok, result.reason
                assert "over_budget" not in result.fields
                assert abs(counted - kernel.seen) <= 0.1 * kernel.seen, (counted, kernel.seen)
            else:
                assert result.fields["over_budget"] is True
                assert budget < counted < budget + 3_000_000  # one 8K access unit at most beyond it
                assert kernel.seen < 8_000_000, kernel.seen


@pytest.mark.peer
async def test_pyav_keeps_the_password_out_of_reasons_and_logs(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """FFmpeg's errors name the URL with its userinfo: PyAV's grab maps them by type only."""
    secret = "s3cr3t-Pa55"
    monkeypatch.setenv("FM_TEST_VQD_PW", secret)
    caplog.set_level(logging.DEBUG)
    with RtspServer(auth="digest", user="admin", password="right-one") as server:
        cfg = RtspFrameConfig(port=server.port, username="admin", password_env="FM_TEST_VQD_PW", timeout_s=8.0,
                              vqd=VqdConfig(enabled=True, burst_gap_s=1.0))
        async with RtspFrameProbe(cfg) as probe:
            result = await probe.probe(camera())
    assert (result.ok, result.reason) == (False, "401 Unauthorized")
    assert secret not in repr(result) and secret not in caplog.text
