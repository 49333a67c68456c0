"""A test IP camera: serves a video over RTSP on loopback, as a branch's cameras do.

Run with the *system* Python (GStreamer's RTSP server comes as Debian packages:
``gir1.2-gst-rtsp-server-1.0``, ``python3-gi``, GStreamer's good/bad/ugly plugins and
``gstreamer1.0-libav``; ``make test`` installs them), not the project's virtual environment::

    /usr/bin/python3 tests/rtsp_camera_server.py --video lobby.mp4 --port 8554 \
        --user admin --password secret --stream main=1920x1080 --stream sub=1280x720 --codec h264

Each ``--stream NAME=WxH`` is served at ``rtsp://127.0.0.1:PORT/NAME``, encoded on the fly
(x264 or x265) from the video's frames, looped for ever, paced at ``--fps``; all streams
show the same moment of the video, whenever a client opens them (a main stream and its
substream).  Clients pick
TCP or UDP transport.  With ``--user``/``--password`` every request needs basic auth
(``--auth digest``: digest auth, as most cameras ask).

Control, as a camera misbehaves:

* SIGUSR1 stalls every stream (connections stay open, the server keeps answering RTSP,
  no frame flows); SIGUSR2 lets frames flow again;
* SIGTERM / SIGKILL: the camera is gone (start it again: it reboots).

It prints one JSON line per event on stdout: ``ready`` (with the port), ``client``
(a client connected), ``stalled``, ``flowing``.  Its frames come from the video through
ffmpeg (JPEG files in a temporary folder), so any video ffmpeg reads will do.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

SENSOR = "sensor"
ENCODERS = {
    "h264": ("x264enc tune=zerolatency speed-preset=ultrafast bitrate={kbps} key-int-max={gop} "
             "! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=1"),
    "h265": ("x265enc tune=zerolatency speed-preset=ultrafast bitrate={kbps} key-int-max={gop} "
             "! rtph265pay name=pay0 pt=96 config-interval=1"),
}


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def extract_frames(video: Path, folder: Path, fps: float, seconds: float | None) -> int:
    """The video's frames as high-quality JPEG files 00000.jpg ... at ``fps``."""
    command = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", str(video), "-an",
               "-vf", f"fps={fps}", "-q:v", "2", "-start_number", "0"]
    if seconds:
        command += ["-t", str(seconds)]
    subprocess.run([*command, str(folder / "%05d.jpg")], check=True)
    count = len(list(folder.glob("*.jpg")))
    if count == 0:
        raise SystemExit(f"{video}: no frame extracted")
    return count


def sensor_line(frames: Path, fps: float) -> str:
    """The camera's sensor: the video's frames, looped, at ``fps`` on the clock, into a channel
    every stream reads its newest frame from (so a main stream and its substream show the same
    moment, whenever each was opened)."""
    return (f"multifilesrc location={frames}/%05d.jpg index=0 loop=true "
            f"caps=image/jpeg,framerate={round(fps * 1000)}/1000 ! jpegdec ! videoconvert "
            f"! video/x-raw,format=I420 ! intervideosink channel={SENSOR} sync=true")


def launch_line(fps: float, size: tuple[int, int], codec: str) -> str:
    """One stream: the sensor's newest frame, scaled, encoded; the valve drops frames while
    the camera "stalls"."""
    width, height = size
    kbps = max(256, width * height * 4 // 1000)  # ~4 bits per pixel-second / 1000
    gop = max(1, round(fps))  # a key frame every second, as cameras default to
    return (f"( intervideosrc channel={SENSOR} timeout={10**18} "
            f"! video/x-raw,framerate={round(fps * 1000)}/1000 ! videoconvert ! videoscale "
            f"! video/x-raw,format=I420,width={width},height={height} "
            f"! valve name=stall drop=false ! " + ENCODERS[codec].format(kbps=kbps, gop=gop) + " )")


class Camera:
    def __init__(self, args: argparse.Namespace, frames: Path) -> None:
        self.sensor = Gst.parse_launch(sensor_line(frames, args.fps))
        self.sensor.set_state(Gst.State.PLAYING)
        self.stalled = False
        self.valves: list[Gst.Element] = []
        self.server = GstRtspServer.RTSPServer()
        self.server.set_address("127.0.0.1")
        self.server.set_service(str(args.port))
        mounts = self.server.get_mount_points()
        for name, size in args.stream:
            factory = GstRtspServer.RTSPMediaFactory()
            factory.set_launch(launch_line(args.fps, size, args.codec))
            # One pipeline per client, as a camera encodes per session: a client's teardown
            # never races the next client's setup (a shared media answers 503 meanwhile).
            factory.set_shared(False)
            factory.connect("media-configure", self._configured)
            if args.user:
                role = ("user, media.factory.access=(boolean)true, "
                        "media.factory.construct=(boolean)true")
                factory.add_role_from_structure(Gst.Structure.from_string(role)[0])
            mounts.add_factory(f"/{name}", factory)
        if args.user:
            auth = GstRtspServer.RTSPAuth()
            token = GstRtspServer.RTSPToken()
            token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
            if args.auth == "digest":
                auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
                auth.add_digest(args.user, args.password, token)
            else:
                auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
            self.server.set_auth(auth)
        self.server.connect("client-connected", lambda *_: emit("client"))

    def _configured(self, _factory: object, media: GstRtspServer.RTSPMedia) -> None:
        valve = media.get_element().get_by_name("stall")
        if valve is not None:
            valve.set_property("drop", self.stalled)
            self.valves.append(valve)
            media.connect("unprepared", lambda *_: self.valves.remove(valve))

    def stall(self, stalled: bool) -> bool:
        self.stalled = stalled
        for valve in self.valves:
            valve.set_property("drop", stalled)
        emit("stalled" if stalled else "flowing")
        return GLib.SOURCE_CONTINUE


def stream_arg(text: str) -> tuple[str, tuple[int, int]]:
    name, _, size = text.partition("=")
    width, _, height = size.partition("x")
    if not name.isidentifier() or not width.isdigit() or not height.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=WIDTHxHEIGHT")
    return name, (int(width) // 2 * 2, int(height) // 2 * 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stream", type=stream_arg, action="append", default=[],
                        help="NAME=WxH, served at /NAME (repeatable; default lobby=640x360)")
    parser.add_argument("--codec", choices=sorted(ENCODERS), default="h264")
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, help="use only the video's first seconds")
    parser.add_argument("--user", default="")
    parser.add_argument("--password", default="")
    parser.add_argument("--auth", choices=("basic", "digest"), default="basic")
    args = parser.parse_args()
    args.stream = args.stream or [("lobby", (640, 360))]
    Gst.init(None)
    folder = Path(tempfile.mkdtemp(prefix="rtsp-camera-"))
    try:
        frames = extract_frames(args.video, folder, args.fps, args.seconds)
        camera = Camera(args, folder)
        loop = GLib.MainLoop()
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGUSR1, camera.stall, True)
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGUSR2, camera.stall, False)
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, loop.quit)
        if camera.server.attach(None) == 0:
            emit("error", message=f"cannot listen on 127.0.0.1:{args.port}")
            return 1
        emit("ready", port=args.port, frames=frames, streams=[n for n, _ in args.stream])
        loop.run()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
