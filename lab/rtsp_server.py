"""The lab's RTSP server: GStreamer's GstRtspServer with two Hikvision-style mounts.

Run with Debian's /usr/bin/python3 (the project's venv python cannot import `gi`):

    /usr/bin/python3 lab/rtsp_server.py --bind 127.0.0.1 --port 8554 [--auth none|basic|digest
        --user admin --password-file FILE]

Mounts (shared media: however many clients DESCRIBE a mount, one pipeline serves them):
- /Streaming/Channels/101: H.264 (videotestsrc ! x264enc tune=zerolatency), 320x240, 5 fps;
- /Streaming/Channels/102: MJPEG (RTP/JPEG, RFC 2435), 320x240, 5 fps.
Any other path gets 404 Not Found (GStreamer's own answer). With --auth basic or digest every
mount needs the one account (RFC 7617 Basic or RFC 2617 Digest as GStreamer implements it).

Picture defects (issue 17, video-quality diagnosis): with `--scene PNG` (repeatable; photographs
SCENE_SIZE large, lab/vqd_streams.py writes them) both mounts show a photograph instead of the
colour bars, SCENE_W×SCENE_H at 5 fps, as a camera sees it: a window of the photograph, light
sensor noise, an OSD clock. Each camera address picks a scene (CRC-32 of the address) and, from
the JSON object in `--defects FILE` ({"address": "defect"}), one of DEFECTS applied to its
picture; the URL stays the camera's. SIGHUP re-reads the file: new sessions get the new picture
(a defect removed = the stream switched back). Media are shared per scene, defect and mount.

`--file PATH=FILE` (repeatable) also mounts an H.264 MP4 file at PATH, played from its start to
each client (hostile streams in tests: an 8K picture, damaged slices).

Prints `READY <port>` on stdout once listening; errors go to stderr and exit non-zero.
Stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import zlib

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

WIDTH, HEIGHT, FPS = 320, 240, 5
_SOURCE = f"videotestsrc is-live=true ! video/x-raw,width={WIDTH},height={HEIGHT},framerate={FPS}/1"
MOUNTS = {
    "/Streaming/Channels/101": (
        f"( {_SOURCE} ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={FPS} "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    ),
    # jpegenc needs planar YUV; videotestsrc's default may be another format (LAB.md).
    "/Streaming/Channels/102": (
        f"( {_SOURCE} ! videoconvert ! video/x-raw,format=I420 ! jpegenc quality=50 ! rtpjpegpay name=pay0 pt=26 )"
    ),
}
SCENE_W, SCENE_H = 480, 360  # the camera's picture
SCENE_SIZE = (600, 450)  # the photograph; the view is a SCENE_W×SCENE_H window of it
DEFECTS = ("clean", "blur", "dark", "bright", "cast", "occlusion", "frozen", "noise", "moved", "signal_loss")
_NOISE, _SNOW = 0.02, 0.35  # alpha of the snow blended in: sensor noise (σ ≈ 1.5), an analogue line's snow
_ENCODERS = {
    # A constant quantiser: a repeated picture encodes to the same key frame (bitrate control would vary it).
    "/Streaming/Channels/101": (f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={FPS} pass=quant quantizer=20 "
                                "! rtph264pay name=pay0 pt=96 config-interval=1"),
    "/Streaming/Channels/102": "jpegenc quality=50 ! rtpjpegpay name=pay0 pt=26",
}


def _solid(argb: int, width: int = SCENE_W, height: int = SCENE_H) -> str:
    return (f"videotestsrc pattern=solid-color foreground-color={argb:#010x} is-live=true "
            f"! video/x-raw,width={width},height={height},framerate={FPS}/1")


def picture(scene: str, defect: str) -> str:
    """The launch text of a camera's raw picture (I420, SCENE_W×SCENE_H, FPS) showing `scene`
    (a PNG) with `defect`; the element named `view` puts out the scene before any blending.
    Raises KeyError for a defect not in DEFECTS."""
    if defect not in DEFECTS:
        raise KeyError(defect)
    if defect == "signal_loss":  # an encoder's "no video" screen: solid blue with a line of text
        return (f"{_solid(0xFF1030C0)} ! textoverlay name=view text=\"NO VIDEO\" font-desc=\"Sans 14\" "
                "! videoconvert ! video/x-raw,format=I420")
    dx, dy = SCENE_SIZE[0] - SCENE_W, SCENE_SIZE[1] - SCENE_H
    left, top = (0, 0) if defect == "moved" else (dx // 2, dy // 2)  # moved: the view panned up-left
    if defect == "cast":  # white balance lost: a gain per channel, written beside the scene
        scene = scene.removesuffix(".png") + ".cast.png"  # (lab/vqd_streams.py cast_scene)
    source = (f"filesrc location=\"{scene}\" ! pngdec ! videoconvert ! videoscale "
              f"! video/x-raw,format=AYUV,width={SCENE_SIZE[0]},height={SCENE_SIZE[1]} "
              f"! imagefreeze is-live=true ! video/x-raw,framerate={FPS}/1 "
              f"! videocrop name=view left={left} right={dx - left} top={top} bottom={dy - top}")
    chains: list[str] = []  # branches into compositors, before the picture's own chain

    def blend(tail: str, name: str, overlay: str, alpha: float, xpos: int = 0) -> str:
        chains.extend([f"{tail} ! {name}.sink_0", f"{overlay} ! {name}.sink_1"])
        return f"compositor name={name} sink_1::alpha={alpha} sink_1::xpos={xpos} ! video/x-raw,format=AYUV"

    tail = source
    if defect == "blur":  # defocus or a fogged lens: Gaussian σ 3 px (0.6 % of the width)
        tail += " ! gaussianblur sigma=3"
    elif defect == "dark":  # a night picture without IR
        tail += " ! videobalance brightness=-0.05 contrast=0.3"
    elif defect == "bright":  # iris open, glare
        tail += " ! videobalance brightness=0.6 contrast=0.6"
    elif defect == "occlusion":  # a close dark object across 45 % of the frame from the right border
        width = SCENE_W * 45 // 100
        tail = blend(tail, "cover", _solid(0xFF3A3026, width), 1.0, SCENE_W - width)
    # The sensor's noise changes every frame; a frozen encoder repeats one. The frozen picture
    # goes through the compositor too (alpha 0): alone, imagefreeze's live branch stalled at times.
    snow = f"videotestsrc pattern=snow is-live=true ! video/x-raw,width={SCENE_W},height={SCENE_H},framerate={FPS}/1"
    tail = blend(tail, "sensor", snow, {"frozen": 0.0, "noise": _SNOW}.get(defect, _NOISE))
    clock = 'clockoverlay time-format="%Y-%m-%d %H:%M:%S"'
    return " ".join([*chains, f"{tail} ! videoconvert ! {clock} ! videoconvert ! video/x-raw,format=I420"])

FIRST_FRAMES = 3  # frames of a picture pipeline passed, once its view runs, before its channel is served
ROLE = "user"
BACKLOG = 4096  # the benchmark connects to thousands of addresses at once; GStreamer's default is 5


class Pictures:
    """What each camera address shows: the scenes (PNG paths) and the defects file's map
    {address: defect}. No scenes: every address shows the colour bars (MOUNTS)."""

    def __init__(self, scenes: list[str], defects_file: str | None) -> None:
        self.scenes, self.defects_file = scenes, defects_file
        self.defects: dict[str, str] = {}
        self._running: dict[str, Gst.Pipeline] = {}  # scene|defect → its picture's pipeline
        self._lock = threading.Lock()  # medias are created in the server's client threads
        self.load()

    def load(self) -> None:
        """(Re-)read the defects file; a bad file keeps the previous map and says why on stderr."""
        if self.defects_file is None:
            return
        try:
            with open(self.defects_file, encoding="utf-8") as f:
                loaded = json.load(f)
            if not isinstance(loaded, dict) or not all(d in DEFECTS for d in loaded.values()):
                raise ValueError(f"want {{address: one of {', '.join(DEFECTS)}}}")
        except (OSError, ValueError) as exc:
            print(f"defects file {self.defects_file}: {exc}", file=sys.stderr, flush=True)
            return
        self.defects = {str(k).strip("[]"): v for k, v in loaded.items()}

    def scene_of(self, host: str) -> str:
        """The scene (PNG path) a camera address shows: CRC-32 of the address; needs scenes."""
        return self.scenes[zlib.crc32(host.strip("[]").encode()) % len(self.scenes)]

    def stand_ins(self) -> list[str]:
        """An address showing each scene clean (127.0.0.x; the map's own addresses not used):
        preparing their media at start means no clean picture's media starts at a camera's
        first DESCRIBE, when its intervideosrc sends black before the channel's first frame."""
        found: dict[str, str] = {}
        for i in range(2, 255 if self.scenes else 2):
            host = f"127.0.0.{i}"
            if host not in self.defects:
                found.setdefault(self.scene_of(host), host)
        return list(found.values())

    def key(self, host: str, path: str) -> str:
        host = host.strip("[]")
        if not self.scenes:
            return path
        return f"{self.scene_of(host)}|{self.defects.get(host, 'clean')}|{path}"

    def launch(self, key: str) -> str:
        """The media's launch text: the camera's picture channel (`channel`) encoded."""
        if not self.scenes:
            return MOUNTS[key]
        scene, defect, path = key.split("|")
        channel = self.channel(scene, defect)
        # timeout: a late frame of the picture's pipeline is repeated, not replaced by black
        source = (f"intervideosrc channel=\"{channel}\" timeout=5000000000 ! video/x-raw,width={SCENE_W},height={SCENE_H},"
                  f"framerate={FPS}/1 ! videoconvert ! video/x-raw,format=I420")
        return f"( {source} ! {_ENCODERS[path]} )"

    def warm(self) -> None:
        """Start the picture channel of every scene clean and of every defect in the map, so that
        a camera's first session finds its picture running (at a fleet's first check, every
        camera at once, the channels would otherwise start together on a loaded machine and
        stall: a repeated frame reads as a frozen picture)."""
        for scene in self.scenes:
            self.channel(scene, "clean")
        for host, defect in self.defects.items():
            self.channel(self.scene_of(host), defect)

    def channel(self, scene: str, defect: str) -> str:
        """The intervideo channel showing `scene` with `defect`, its pipeline started on first use.
        A camera's picture runs in a pipeline of its own that never stops (`_running`), fed to
        the media through intervideosink/src: a media pipeline is paused whenever its last client
        leaves, and restarted, its compositors would show their checkerboard background until the
        photograph's branch catches up. Returns once the channel shows the picture (or after 20 s,
        said on stderr)."""
        channel = f"{scene}|{defect}"
        with self._lock:
            if channel in self._running:
                return channel
            pipeline = Gst.parse_launch(f"{picture(scene, defect)} ! intervideosink name=out channel=\"{channel}\"")
            # Until the picture's first frames reach the channel, intervideosrc sends black
            # (read as a lost signal by a client that connects at once), and until the
            # photograph is decoded the live compositors put out their checkerboard with the
            # snow and the clock (read as a cover, a lost signal or a moved camera): count the
            # frames passed only once the view has put one out, however long that takes.
            shown, view_started, frames = threading.Event(), threading.Event(), [0]

            def started(_pad: Gst.Pad, _info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
                view_started.set()
                return Gst.PadProbeReturn.REMOVE

            def count(_pad: Gst.Pad, _info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
                if not view_started.is_set():
                    return Gst.PadProbeReturn.OK
                frames[0] += 1
                if frames[0] < FIRST_FRAMES:
                    return Gst.PadProbeReturn.OK
                shown.set()
                return Gst.PadProbeReturn.REMOVE

            pipeline.get_by_name("view").get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, started)
            pipeline.get_by_name("out").get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, count)
            pipeline.set_state(Gst.State.PLAYING)
            if not shown.wait(20):
                print(f"picture {channel}: no frame within 20 s", file=sys.stderr, flush=True)
            self._running[channel] = pipeline
            return channel


class _SharedFactory(GstRtspServer.RTSPMediaFactory):
    """One media per mount (and, with scenes, per scene and defect), whatever host and port the
    client's URL names (GStreamer's default key includes the URL's port, and thousands of lab
    addresses or a test relay would otherwise get pipelines of their own)."""

    def __init__(self, pictures: Pictures) -> None:
        super().__init__()
        self.pictures = pictures

    def do_gen_key(self, url: GstRtsp.RTSPUrl) -> str:
        return self.pictures.key(url.host or "", url.abspath)

    def do_create_element(self, url: GstRtsp.RTSPUrl) -> Gst.Element:
        return Gst.parse_launch(self.pictures.launch(self.do_gen_key(url)))


def keep_prepared(server: GstRtspServer.RTSPServer, pictures: Pictures,
                  held: dict[str, GstRtspServer.RTSPMedia]) -> None:
    """Prepare each shared media a camera of `pictures` (or 127.0.0.1, or each scene clean) uses once, and hold it in
    `held` (key → media). GStreamer unprepares a shared media when its last client goes (every
    DESCRIBE-only client does), and a DESCRIBE arriving while it unprepares gets 503 Service
    Unavailable; a held prepare count keeps the pipeline running."""
    mounts = server.get_mount_points()
    for path in MOUNTS:
        for host in ["127.0.0.1", *pictures.stand_ins(), *pictures.defects]:
            key = pictures.key(host, path)
            if key in held:
                continue
            literal = f"[{host}]" if ":" in host else host
            _, url = GstRtsp.RTSPUrl.parse(f"rtsp://{literal}:{server.get_bound_port()}{path}")
            factory, _ = mounts.match(path)
            media = factory.construct(url)
            # Prepared in a media thread of the server's pool, as for a client (prepare() in this
            # thread would wait for a preroll that this thread's not-yet-running loop must deliver).
            thread = server.get_thread_pool().get_thread(GstRtspServer.RTSPThreadType.MEDIA, GstRtspServer.RTSPContext())
            if media is None or not media.prepare(thread):
                raise RuntimeError(f"cannot prepare the media of {path} ({key})")
            held[key] = media


def build_server(bind: str, port: int, auth: str, user: str | None, password: str | None,
                 pictures: Pictures, files: dict[str, str] | None = None) -> GstRtspServer.RTSPServer:
    server = GstRtspServer.RTSPServer()
    server.set_address(bind)
    server.set_service(str(port))
    server.set_backlog(BACKLOG)
    permissions = None
    if auth != "none":
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", ROLE)
        rtsp_auth = GstRtspServer.RTSPAuth()
        if auth == "basic":
            rtsp_auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
            rtsp_auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        else:
            rtsp_auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
            rtsp_auth.add_digest(user, password, token)
        server.set_auth(rtsp_auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role(ROLE, "media.factory.access", True)
        permissions.add_permission_for_role(ROLE, "media.factory.construct", True)
    mounts = server.get_mount_points()
    for path, file in (files or {}).items():
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(f"( filesrc location=\"{file}\" ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 "
                           "config-interval=1 )")
        if permissions is not None:
            factory.set_permissions(permissions)
        mounts.add_factory(path, factory)
    for path in MOUNTS:
        factory = _SharedFactory(pictures)
        factory.set_shared(True)
        if permissions is not None:
            factory.set_permissions(permissions)
        mounts.add_factory(path, factory)
    return server


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--auth", choices=["none", "basic", "digest"], default="none")
    parser.add_argument("--user")
    parser.add_argument("--password-file")
    parser.add_argument("--scene", action="append", default=[], help="PNG of a scene (repeatable)")
    parser.add_argument("--defects", help="JSON {address: defect}, re-read on SIGHUP")
    parser.add_argument("--file", action="append", default=[], metavar="PATH=FILE", help="mount an H.264 MP4 file")
    args = parser.parse_args(argv)
    password = None
    if args.auth != "none":
        if not args.user or not args.password_file:
            parser.error("--auth basic/digest needs --user and --password-file")
        with open(args.password_file, encoding="utf-8") as f:
            password = f.read().strip()
    Gst.init(None)
    pictures = Pictures(args.scene, args.defects)
    files = dict(item.split("=", 1) for item in args.file)
    server = build_server(args.bind, args.port, args.auth, args.user, password, pictures, files)
    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        print(f"cannot listen on {args.bind}:{args.port}", file=sys.stderr)
        return 1
    held: dict[str, GstRtspServer.RTSPMedia] = {}  # for the server's lifetime
    pictures.warm()
    keep_prepared(server, pictures, held)

    def reload() -> bool:
        pictures.load()
        pictures.warm()
        keep_prepared(server, pictures, held)
        print("RELOADED", flush=True)
        return True  # keep the handler

    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGHUP, reload)
    print(f"READY {server.get_bound_port()}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
