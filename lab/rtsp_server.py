"""The lab's RTSP server: GStreamer's GstRtspServer with two Hikvision-style mounts.

Run with Debian's /usr/bin/python3 (the project's venv python cannot import `gi`):

    /usr/bin/python3 lab/rtsp_server.py --bind 127.0.0.1 --port 8554 [--auth none|basic|digest
        --user admin --password-file FILE]

Mounts (shared media: however many clients DESCRIBE a mount, one pipeline serves them):
- /Streaming/Channels/101: H.264 (videotestsrc ! x264enc tune=zerolatency), 320x240, 5 fps;
- /Streaming/Channels/102: MJPEG (RTP/JPEG, RFC 2435), 320x240, 5 fps.
Any other path gets 404 Not Found (GStreamer's own answer). With --auth basic or digest every
mount needs the one account (RFC 7617 Basic or RFC 2617 Digest as GStreamer implements it).

Prints `READY <port>` on stdout once listening; errors go to stderr and exit non-zero.
Stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys

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
ROLE = "user"
BACKLOG = 4096  # the benchmark connects to thousands of addresses at once; GStreamer's default is 5


class _SharedFactory(GstRtspServer.RTSPMediaFactory):
    """One media per mount, whatever host and port the client's URL names (GStreamer's default
    key includes the URL's port, and thousands of lab addresses or a test relay would otherwise
    get pipelines of their own)."""

    def do_gen_key(self, url: GstRtsp.RTSPUrl) -> str:
        return url.abspath


def keep_prepared(server: GstRtspServer.RTSPServer) -> list[GstRtspServer.RTSPMedia]:
    """Prepare each mount's shared media once and hold it. GStreamer unprepares a shared media
    when its last client goes (every DESCRIBE-only client does), and a DESCRIBE arriving while it
    unprepares gets 503 Service Unavailable; a held prepare count keeps the pipeline running."""
    held = []
    mounts = server.get_mount_points()
    for path in MOUNTS:
        _, url = GstRtsp.RTSPUrl.parse(f"rtsp://127.0.0.1:{server.get_bound_port()}{path}")
        factory, _ = mounts.match(path)
        media = factory.construct(url)
        # Prepared in a media thread of the server's pool, as for a client (prepare() in this
        # thread would wait for a preroll that this thread's not-yet-running loop must deliver).
        thread = server.get_thread_pool().get_thread(GstRtspServer.RTSPThreadType.MEDIA, GstRtspServer.RTSPContext())
        if media is None or not media.prepare(thread):
            raise RuntimeError(f"cannot prepare the media of {path}")
        held.append(media)
    return held


def build_server(bind: str, port: int, auth: str, user: str | None, password: str | None) -> GstRtspServer.RTSPServer:
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
    for path, launch in MOUNTS.items():
        factory = _SharedFactory()
        factory.set_launch(launch)
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
    args = parser.parse_args(argv)
    password = None
    if args.auth != "none":
        if not args.user or not args.password_file:
            parser.error("--auth basic/digest needs --user and --password-file")
        with open(args.password_file, encoding="utf-8") as f:
            password = f.read().strip()
    Gst.init(None)
    server = build_server(args.bind, args.port, args.auth, args.user, password)
    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        print(f"cannot listen on {args.bind}:{args.port}", file=sys.stderr)
        return 1
    held = keep_prepared(server)  # noqa: F841 (held for the server's lifetime)
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, loop.quit)
    print(f"READY {server.get_bound_port()}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
