"""``branch-edge bench pipeline``: our lobby pipeline against the plain insightface loop.

Same run, same frames, same model files: every decoded frame goes to (a) our
:class:`edge.lobby.pipeline.LobbyPipeline` and (b) insightface's ``FaceAnalysis.get`` built
over the pack's detector and recognizer (detect, align and embed every face of
every frame), whose embeddings are identified per face with the same gallery,
threshold and margin.  Decoding is timed once and added to both for the
end-to-end numbers.  With ``--truth`` (a ``branch-edge synth lobby`` ground truth)
the identification recall and false identities of both are reported.

``--cameras N`` measures capacity instead: N decoders paced at the video's native
rate (a real camera), each analysed at ``--analyse-fps`` by one shared pipeline;
it reports the analysed fps each camera got and the frame-to-result latency, and,
with ``--truth``, the time from the first frame where an enrolled face reaches
the minimum size to its recognition (p50/p95).

``--substream WxH`` gives each camera a substream as IP cameras have one (made from the
video with ffmpeg, ``--codec`` h264 or h265).  Without ``--cameras`` it compares, on the
same frames, the main stream analysed alone, the substream alone, and the substream with
small faces cropped from the main stream opened on demand (``--main-open-s`` after the
first ask, closed ``--main-linger-s`` after the last): recall, CPU per video second of
decoding each stream and of analysis, and how often the main stream was needed.  With
``--cameras N`` it measures capacity: N substreams decoded at their native rate, each
camera's main stream decoded only while the pipeline asks for it; decode (substream,
main stream) and analysis CPU are reported apart, with the main-stream fetches counted.
``--decode-cost`` measures only the CPU of decoding the video as H.264 and as H.265.
Every report carries the machine's load average (other work skews the figures).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.commands.argtypes import bounded_float, bounded_int
from edge.config import EdgeConfig, load_config
from edge.core.errors import BranchEdgeError
from edge.core.gallery import Gallery
from edge.lobby.capture import AnalysisClock
from edge.lobby.pipeline import LobbyPipeline
from edge.store.database import open_configured
from edge.tools.synth import SynthSpec, first_seen_at_size, people_from_truth
from edge.vision.engine import FaceEngine
from edge.vision.gallery_index import make_gallery
from edge.vision.imageio import load_image
from models.pack import resolve_models_dir


class BenchError(BranchEdgeError):
    """The benchmark cannot run with these inputs."""


@dataclass
class Meter:
    """Wall and process CPU seconds spent in one stage."""

    wall: float = 0.0
    cpu: float = 0.0
    identified: set[str] = field(default_factory=set)
    recognitions: int = 0

    def timed(self, fn: Any, *args: Any) -> Any:
        w, c = time.perf_counter(), time.process_time()
        result = fn(*args)
        self.wall += time.perf_counter() - w
        self.cpu += time.process_time() - c
        return result


def open_video(path: Path) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise BenchError(f"cannot open video {path}")
    return cap


def insightface_app(engine: FaceEngine, cfg: EdgeConfig, models_dir: Path | None) -> Any:
    """insightface's FaceAnalysis over a folder holding links to our two model files."""
    # Lazy: `branch-edge --help` imports every bench module, insightface is slow to import.
    from insightface.app import FaceAnalysis  # noqa: PLC0415

    pack = engine.pack
    if pack.one("detector").kind != "scrfd":
        raise BenchError(f"pack {pack.id!r}: the insightface baseline needs an SCRFD detector")
    root = resolve_models_dir(pack, models_dir, cfg.models.dir)
    folder = Path(tempfile.mkdtemp(prefix="bench-insightface-"))
    for role in ("detector", "recognizer"):
        spec = pack.one(role)
        (folder / spec.file).symlink_to((root / spec.file).resolve())
    app = FaceAnalysis(name=str(folder), allowed_modules=["detection", "recognition"],
                       providers=["CPUExecutionProvider"])
    app.prepare(ctx_id=-1, det_size=(640, 640), det_thresh=cfg.detection.score_threshold)
    return app


def build_gallery(engine: FaceEngine, cfg: EdgeConfig, args: argparse.Namespace,
                  truth: dict[str, Any] | None) -> Gallery:
    gallery = make_gallery(engine.embedding_size, cfg.gallery.backend)
    if args.gallery is not None:
        with open_configured(cfg.store, args.gallery, args.key_file, create=False) as store:
            ids, vectors = store.load_templates(engine.pack_id, engine.embedding_size)
        if ids:
            gallery.add(ids, vectors)
    if truth is not None:
        faces = Path(truth["faces_dir"]) if args.faces is None else args.faces
        for person in truth["people"]:
            for photo in person["enrol_photos"]:
                add_photo(gallery, engine, faces / photo, person["customer_id"])
    add_distractors(gallery, engine, args, truth)
    return gallery


def add_distractors(gallery: Gallery, engine: FaceEngine, args: argparse.Namespace,
                    truth: dict[str, Any] | None) -> None:
    """Customers nobody in the video is: a gallery of realistic size for the decision."""
    data = os.environ.get("BRANCH_EDGE_DATA")
    faces = args.faces or (Path(truth["faces_dir"]) if truth else Path(data) / "faces" if data else None)
    if not args.distractors or faces is None or not faces.is_dir():
        return
    shown = {p["label"] for p in truth["people"]} if truth else set()
    folders = [d for d in sorted(faces.iterdir()) if d.is_dir() and d.name not in shown]
    for folder in folders[: args.distractors]:
        photos = sorted(p for p in folder.iterdir() if p.is_file())
        if photos:
            add_photo(gallery, engine, photos[0], f"D{len(gallery):05d}")


def add_photo(gallery: Gallery, engine: FaceEngine, path: Path, customer_id: str) -> None:
    observations = engine.analyze(load_image(path), max_faces=1)
    if observations and observations[0].embedding is not None:
        gallery.add([customer_id], observations[0].embedding[None, :])


def baseline_frame(app: Any, gallery: Gallery, cfg: EdgeConfig, frame: np.ndarray) -> list[str]:
    with warnings.catch_warnings():  # insightface 2.1 calls a deprecated scikit-image API per face
        warnings.simplefilter("ignore", FutureWarning)
        faces = app.get(frame)
    if not faces or not len(gallery):
        return []
    embeddings = np.stack([f.normed_embedding for f in faces])
    rec = cfg.recognition
    decisions = gallery.identify_batch(embeddings, rec.threshold, rec.margin)
    return [d.customer_id for d in decisions if d.customer_id is not None]


def compare(video: Path, engine: FaceEngine, app: Any, gallery: Gallery, cfg: EdgeConfig, *,
            max_frames: int) -> tuple[dict[str, Meter], int, float, dict[str, int]]:
    cap = open_video(video)
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    pipeline = LobbyPipeline(engine, gallery, cfg)
    meters = {"decode": Meter(), "ours": Meter(), "baseline": Meter()}
    frames = 0
    while frames < max_frames:
        ok, frame = meters["decode"].timed(cap.read)
        if not ok:
            break
        for rec in meters["ours"].timed(pipeline.process, "bench", frame, frames / fps):
            meters["ours"].identified.add(rec.customer_id)
            meters["ours"].recognitions += 1
        found = meters["baseline"].timed(baseline_frame, app, gallery, cfg, frame)
        meters["baseline"].identified.update(found)
        meters["baseline"].recognitions += len(found)
        frames += 1
    cap.release()
    if frames == 0:
        raise BenchError(f"{video}: no frame could be decoded")
    return meters, frames, fps, pipeline.stats()


def side_report(meter: Meter, decode: Meter, frames: int, video_s: float,
                enrolled: set[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "fps_end_to_end": round(frames / (meter.wall + decode.wall), 2),
        "fps_excluding_decode": round(frames / meter.wall, 2),
        "cpu_s_per_video_s": round((meter.cpu + decode.cpu) / video_s, 3),
        "cpu_s_per_video_s_excluding_decode": round(meter.cpu / video_s, 3),
        "recognitions": meter.recognitions,
        "recognitions_per_frame": round(meter.recognitions / frames, 4),
        "distinct_identified": len(meter.identified),
    }
    if enrolled is not None:
        out["recall"] = round(len(meter.identified & enrolled) / len(enrolled), 4) if enrolled else None
        out["false_identities"] = len(meter.identified - enrolled)
    return out


def comparison_report(video: Path, meters: dict[str, Meter], *, frames: int, fps: float,
                      stats: dict[str, int], gallery: Gallery,
                      truth: dict[str, Any] | None) -> dict[str, Any]:
    video_s = frames / fps
    enrolled = {p["customer_id"] for p in truth["people"] if p["enrolled"]} if truth else None
    decode = meters["decode"]
    ours = side_report(meters["ours"], decode, frames, video_s, enrolled)
    base = side_report(meters["baseline"], decode, frames, video_s, enrolled)
    ratio = {
        "end_to_end": round(ours["fps_end_to_end"] / base["fps_end_to_end"], 2),
        "excluding_decode": round(ours["fps_excluding_decode"] / base["fps_excluding_decode"], 2),
        "cpu": round(base["cpu_s_per_video_s"] / ours["cpu_s_per_video_s"], 2),
    }
    targets = {"end_to_end_2x": ratio["end_to_end"] >= 2.0,
               "excluding_decode_3x": ratio["excluding_decode"] >= 3.0}
    if enrolled is not None:
        targets["recall_not_lower"] = (ours["recall"] or 0) >= (base["recall"] or 0)
    return {
        "bench": "pipeline", "date": datetime.now(UTC).strftime("%Y-%m-%d"), "video": video.name,
        "frames": frames, "video_seconds": round(video_s, 2), "gallery_templates": len(gallery),
        "decode": {"fps": round(frames / decode.wall, 2),
                   "cpu_s_per_video_s": round(decode.cpu / video_s, 3)},
        "ours": {**ours, "pipeline_stats": stats}, "baseline": base, "ratio": ratio, "targets": targets,
    }


# -- capacity and time to notify ----------------------------------------------------

@dataclass
class Latest:
    frame: np.ndarray
    captured: float  # monotonic time the frame was decoded
    loop_start: float  # monotonic time this pass over the file started (paced)
    seq: int


class PacedCamera(threading.Thread):
    """Decodes every frame of a looped file at its native rate; only the newest is kept."""

    def __init__(self, video: Path, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.video, self.stop = video, stop
        self.latest: Latest | None = None
        self.decoded = 0
        self.index = 0  # position in the file: a main stream follows it
        self.cpu = 0.0  # this thread's CPU seconds (decoding)
        self.video_fps = 0.0

    def run(self) -> None:
        seq, cpu = 0, time.thread_time()
        while not self.stop.is_set():
            cap = open_video(self.video)
            fps = self.video_fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
            start, self.index = time.monotonic(), 0
            while not self.stop.is_set():
                delay = start + self.index / fps - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                ok, frame = cap.read()
                if not ok:
                    break
                self.latest = Latest(frame, time.monotonic(), start, seq)
                seq, self.index, self.decoded = seq + 1, self.index + 1, self.decoded + 1
            cap.release()
        self.cpu = time.thread_time() - cpu


class OnDemandMain(threading.Thread):
    """A camera's main stream beside its substream (``PacedCamera``): decoded only while the
    pipeline asked for it within ``linger_s``; opened at the substream's position (a seek:
    what a camera's wait for a key frame costs), following it frame by frame."""

    def __init__(self, video: Path, sub: PacedCamera, stop: threading.Event, *, below_px: float,
                 linger_s: float) -> None:
        super().__init__(daemon=True)
        self.video, self.sub, self.stop, self.below_px, self.linger_s = video, sub, stop, below_px, linger_s
        self.latest: Latest | None = None
        self.asked_at: float | None = None
        self.decoded = self.opens = self.fetches = self.misses = 0
        self.open_s = 0.0
        self.cpu = 0.0

    def frame(self, ts: float) -> np.ndarray | None:
        self.asked_at = time.monotonic()
        latest = self.latest
        if latest is None or abs(latest.captured - ts) > 0.5:
            self.misses += 1
            return None
        self.fetches += 1
        return latest.frame

    def run(self) -> None:
        cpu = time.thread_time()
        cap: cv2.VideoCapture | None = None
        position, last = 0, time.monotonic()
        while not self.stop.wait(0.01):
            now = time.monotonic()
            if cap is not None:
                self.open_s += now - last
            last = now
            wanted = self.asked_at is not None and now - self.asked_at <= self.linger_s
            if cap is not None and not wanted:
                cap.release()
                cap, self.latest = None, None
            if not wanted:
                continue
            if cap is None:
                cap, position = open_video(self.video), self.sub.index
                cap.set(cv2.CAP_PROP_POS_FRAMES, position)
                self.opens += 1
            while position < self.sub.index or (position > self.sub.index + 2):
                if position > self.sub.index + 2:  # the substream looped: so does the main stream
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    position = 0
                    continue
                ok, frame = cap.read()
                if not ok:
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    position = 0
                    break
                position, self.decoded = position + 1, self.decoded + 1
                self.latest = Latest(frame, time.monotonic(), 0.0, position)
        if cap is not None:
            cap.release()
        self.cpu = time.thread_time() - cpu


@dataclass
class CameraMeter:
    analysed: int = 0
    latencies: list[float] = field(default_factory=list)
    notify: list[float] = field(default_factory=list)


def analyse_loop(name: str, camera: PacedCamera, pipeline: LobbyPipeline, *, period: float,
                 min_size_s: dict[str, float], meter: CameraMeter, stop: threading.Event,
                 main: OnDemandMain | None = None) -> None:
    last_seq, due = -1, time.monotonic()
    while not stop.is_set():
        due = max(due + period, time.monotonic() - period)
        latest = camera.latest
        if latest is not None and latest.seq != last_seq:
            last_seq = latest.seq
            recognitions = pipeline.process(name, latest.frame, latest.captured, main)
            now = time.monotonic()
            meter.analysed += 1
            meter.latencies.append(now - latest.captured)
            for rec in recognitions:
                if rec.customer_id in min_size_s:
                    meter.notify.append(now - (latest.loop_start + min_size_s[rec.customer_id]))
        time.sleep(max(0.0, due - time.monotonic()))


def percentile_ms(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 1) if values else None


def measured_min_size(truth: dict[str, Any], engine: FaceEngine, faces: Path,
                      min_interocular_px: float) -> dict[str, float]:
    """When each enrolled walker's face reaches the minimum size, from the
    interocular distance measured on the very photo the video shows."""
    spec = SynthSpec(**truth["spec"])
    people = people_from_truth(truth)
    out = {}
    for person in people:
        observations = engine.analyze(load_image(faces / person.video_photo), max_faces=1, embed=False)
        if person.customer_id and observations:
            ratio = observations[0].quality.interocular_px / truth["head_window_width"]
            when = first_seen_at_size(person, people, spec, ratio, min_interocular_px)
            if when is not None:
                out[person.customer_id] = when
    return out


# The projection leaves this share of the cores for the rest (MQTT, store, the OS, scheduling).
HEADROOM = 0.9


def projected_capacity(sources: list[PacedCamera], mains: list[OnDemandMain], meters: list[CameraMeter], *,
                       wall: float, decode_sub: float, decode_main: float, analysis: float,
                       analyse_fps: float) -> dict[str, Any]:
    """Cameras this machine's cores would sustain at ``analyse_fps``, from the CPU each decoded and
    each analysed frame cost in this run: unlike the fps reached, it holds when other work
    shares the machine (CPU time per frame rises a little under contention: conservative)."""
    decoded = sum(s.decoded for s in sources)
    analysed = sum(m.analysed for m in meters)
    if not decoded or not analysed:
        return {}
    native_fps = decoded / wall / len(sources) if wall else 0.0
    fps_of_video = max((s.video_fps for s in sources), default=native_fps)
    per_decoded, per_analysed = decode_sub / decoded, analysis / analysed
    main_share = decode_main / wall / len(sources) if mains and wall else 0.0
    per_camera = per_decoded * fps_of_video + per_analysed * analyse_fps + main_share
    cores = os.cpu_count() or 1
    return {"cpu_ms_per_decoded_frame": round(per_decoded * 1000, 3),
            "cpu_ms_per_analysed_frame": round(per_analysed * 1000, 2),
            "main_stream_cores_per_camera": round(main_share, 3),
            "cores_per_camera": round(per_camera, 3), "stream_fps": round(fps_of_video, 2),
            "cores": cores, "headroom": HEADROOM,
            "cameras": int(cores * HEADROOM / per_camera) if per_camera else None}


@dataclass(frozen=True)
class Substream:
    """The substream a capacity run decodes, and the main stream it crops small faces from."""

    video: Path
    main: Path
    below_px: float
    linger_s: float


def run_capacity(video: Path, pipeline: LobbyPipeline, *, cameras: int, seconds: float,
                 analyse_fps: float, min_size_s: dict[str, float] | None,
                 substream: Substream | None = None) -> dict[str, Any]:
    min_size_s = min_size_s or {}
    stop = threading.Event()
    sources = [PacedCamera(substream.video if substream else video, stop) for _ in range(cameras)]
    mains = [OnDemandMain(substream.main, s, stop, below_px=substream.below_px, linger_s=substream.linger_s)
             for s in sources] if substream else []
    meters = [CameraMeter() for _ in range(cameras)]
    workers = [threading.Thread(target=analyse_loop, daemon=True,
                                args=(f"cam{i + 1}", sources[i], pipeline),
                                kwargs={"period": 1.0 / analyse_fps, "min_size_s": min_size_s,
                                        "meter": meters[i], "stop": stop,
                                        "main": mains[i] if mains else None}) for i in range(cameras)]
    load = os.getloadavg()
    wall, cpu = time.perf_counter(), time.process_time()
    for thread in sources + mains + workers:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in sources + mains + workers:
        thread.join(timeout=5)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    report = capacity_report(substream.video if substream else video, meters, sources, wall=wall, cpu=cpu,
                             analyse_fps=analyse_fps, with_truth=bool(min_size_s))
    decode_sub = sum(s.cpu for s in sources)
    decode_main = sum(m.cpu for m in mains)
    report["cpu_cores"] = {"decode": round(decode_sub / wall, 3),
                           "decode_main_stream": round(decode_main / wall, 3),
                           "analysis": round((cpu - decode_sub - decode_main) / wall, 3),
                           "total": round(cpu / wall, 3)}
    report["projected"] = projected_capacity(sources, mains, meters, wall=wall, decode_sub=decode_sub,
                                             decode_main=decode_main, analysis=cpu - decode_sub - decode_main,
                                             analyse_fps=analyse_fps)
    report["load_average_before"] = [round(x, 2) for x in load]
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if substream is not None:
        report["main_stream"] = {
            "video": substream.main.name, "crop_below_px": substream.below_px,
            "opens": sum(m.opens for m in mains), "fetches": sum(m.fetches for m in mains),
            "misses": sum(m.misses for m in mains), "frames_decoded": sum(m.decoded for m in mains),
            "open_fraction": round(sum(m.open_s for m in mains) / (wall * len(mains)), 3)}
        report["pipeline_stats"] = {k: v for k, v in pipeline.stats().items() if k.startswith("main_")}
    return report


def capacity_report(video: Path, meters: list[CameraMeter], sources: list[PacedCamera], *,
                    wall: float, cpu: float, analyse_fps: float, with_truth: bool) -> dict[str, Any]:
    fps = [round(m.analysed / wall, 2) for m in meters]
    latencies = [x for m in meters for x in m.latencies]
    report: dict[str, Any] = {
        "bench": "pipeline-capacity", "date": datetime.now(UTC).strftime("%Y-%m-%d"), "video": video.name,
        "cameras": len(meters), "seconds": round(wall, 2), "target_fps": analyse_fps,
        "decoded_fps": [round(s.decoded / wall, 2) for s in sources], "analysed_fps": fps,
        "sustained": min(fps) >= 0.9 * analyse_fps,
        "frame_to_result_ms": {"p50": percentile_ms(latencies, 50), "p95": percentile_ms(latencies, 95)},
        "cpu_cores_busy": round(cpu / wall, 2),
    }
    if with_truth:
        notify = [x for m in meters for x in m.notify]
        report["time_to_recognition_ms"] = {"count": len(notify), "p50": percentile_ms(notify, 50),
                                            "p95": percentile_ms(notify, 95)}
    return report


# -- substreams and codecs ------------------------------------------------------------

ENCODERS = {"h264": ["-c:v", "libx264"], "h265": ["-c:v", "libx265", "-x265-params", "log-level=error"]}


def frame_size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit() and 16 <= int(width) <= 8192 and 16 <= int(height) <= 8192):
        raise argparse.ArgumentTypeError(f"{text!r}: expected WIDTHxHEIGHT, e.g. 1280x720")
    return int(width) // 2 * 2, int(height) // 2 * 2


def encode_stream(video: Path, out: Path, *, size: tuple[int, int] | None, codec: str) -> Path:
    """``video`` re-encoded as a camera would send it: ``codec``, one key frame a second."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise BenchError("ffmpeg is needed to make the substream (apt-get install ffmpeg)")
    fps = open_video(video).get(cv2.CAP_PROP_FPS) or 25.0
    scale = ["-vf", f"scale={size[0]}:{size[1]}"] if size else []
    command = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-i", str(video), "-an", *scale,
               *ENCODERS[codec], "-preset", "veryfast", "-crf", "23", "-g", str(round(fps)),
               "-pix_fmt", "yuv420p", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"ffmpeg could not encode {video.name} as {codec}: {done.stderr.strip()[-300:]}")
    return out


def video_size(video: Path) -> tuple[int, int]:
    cap = open_video(video)
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        cap.release()


def decode_cost(video: Path, min_seconds: float = 10.0) -> dict[str, Any]:
    """CPU seconds per video second to decode ``video`` (looped to at least ``min_seconds``)."""
    frames, cpu, fps = 0, 0.0, 25.0
    while frames == 0 or frames / fps < min_seconds:
        cap = open_video(video)
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        started = time.process_time()
        while cap.grab():  # decoded, not converted to BGR: what a camera's stream costs
            frames += 1
        cpu += time.process_time() - started
        cap.release()
    width, height = video_size(video)
    return {"size": f"{width}x{height}", "fps": round(fps, 2), "frames": frames,
            "cpu_s_per_video_s": round(cpu / (frames / fps), 3),
            "ms_per_frame": round(cpu / frames * 1000, 2)}


class SimulatedMain:
    """The main stream as the pipeline sees it, frame-locked to the substream (offline): opened
    on the first ask, with frames from ``open_s`` later, closed ``linger_s`` after the last ask."""

    def __init__(self, below_px: float, open_s: float, linger_s: float) -> None:
        self.below_px, self.open_s, self.linger_s = below_px, open_s, linger_s
        self.current: np.ndarray | None = None
        self.now = 0.0
        self.opened_at: float | None = None
        self.asked_at = -1e9
        self.opens = self.fetches = self.misses = self.decoded = 0

    def tick(self, now: float, frame: np.ndarray) -> None:
        """One frame of the main stream goes by (decoded only while it is open)."""
        self.now, self.current = now, frame
        if self.opened_at is not None and now - self.asked_at > self.linger_s:
            self.opened_at = None
        if self.opened_at is not None:
            self.decoded += 1

    def frame(self, ts: float) -> np.ndarray | None:
        self.asked_at = self.now
        if self.opened_at is None:
            self.opened_at, self.opens = self.now, self.opens + 1
        if self.now - self.opened_at < self.open_s:
            self.misses += 1
            return None
        self.fetches += 1
        return self.current


def compare_substream(main_video: Path, sub_video: Path, engine: FaceEngine, gallery: Gallery, *,
                      cfg: EdgeConfig, args: argparse.Namespace,
                      truth: dict[str, Any] | None) -> dict[str, Any]:
    """The main stream alone, the substream alone, the substream with main-stream crops: same frames."""
    main_cap, sub_cap = open_video(main_video), open_video(sub_video)
    fps = main_cap.get(cv2.CAP_PROP_FPS) or 25.0
    pipelines = {mode: LobbyPipeline(engine, gallery, cfg) for mode in ("main", "sub", "sub+main")}
    meters = {mode: Meter() for mode in (*pipelines, "decode_main", "decode_sub")}
    main = SimulatedMain(args.main_crop_below_px, args.main_open_s, args.main_linger_s)
    clock, frames, analysed = AnalysisClock(), 0, 0
    load = os.getloadavg()
    while frames < args.max_frames:
        ok_main, main_frame = meters["decode_main"].timed(main_cap.read)
        ok_sub, sub_frame = meters["decode_sub"].timed(sub_cap.read)
        if not (ok_main and ok_sub):
            break
        ts = frames / fps
        frames += 1
        main.tick(ts, main_frame)
        if not clock.due("bench", ts, args.analyse_fps):
            continue
        analysed += 1
        for mode, image, source in (("main", main_frame, None), ("sub", sub_frame, None),
                                    ("sub+main", sub_frame, main)):
            for rec in meters[mode].timed(pipelines[mode].process, "bench", image, ts, source):
                meters[mode].identified.add(rec.customer_id)
                meters[mode].recognitions += 1
    main_cap.release()
    sub_cap.release()
    if frames == 0:
        raise BenchError(f"{main_video}: no frame could be decoded")
    video_s = frames / fps
    enrolled = {p["customer_id"] for p in truth["people"] if p["enrolled"]} if truth else None
    decode = {"main": meters["decode_main"].cpu / video_s, "sub": meters["decode_sub"].cpu / video_s}
    open_fraction = main.decoded / frames
    modes: dict[str, Any] = {}
    for mode, pipeline in pipelines.items():
        meter = meters[mode]
        stats = pipeline.stats()
        analysis = meter.cpu / video_s
        decoding = decode["main"] if mode == "main" else decode["sub"] + (
            open_fraction * decode["main"] if mode == "sub+main" else 0.0)
        row: dict[str, Any] = {
            "analysis_cpu_s_per_video_s": round(analysis, 3), "decode_cpu_s_per_video_s": round(decoding, 3),
            "cpu_s_per_video_s": round(analysis + decoding, 3), "embeds": stats["embeds"],
            "recognitions": meter.recognitions, "distinct_identified": len(meter.identified)}
        if enrolled is not None:
            row["recall"] = round(len(meter.identified & enrolled) / len(enrolled), 4) if enrolled else None
            row["false_identities"] = len(meter.identified - enrolled)
        if mode == "sub+main":
            row["main_stream"] = {"opens": main.opens, "fetches": main.fetches, "misses": main.misses,
                                  "crops": stats["main_crops"], "open_fraction": round(open_fraction, 3)}
        modes[mode] = row
    width, height = video_size(main_video)
    sub_w, sub_h = video_size(sub_video)
    return {"bench": "pipeline-substream", "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "video": main_video.name, "main": f"{width}x{height}", "substream": f"{sub_w}x{sub_h}",
            "frames": frames, "analysed_frames": analysed, "video_seconds": round(video_s, 2),
            "analyse_fps": args.analyse_fps, "crop_below_px": args.main_crop_below_px,
            "main_open_s": args.main_open_s, "main_linger_s": args.main_linger_s,
            "decode_cpu_s_per_video_s": {k: round(v, 3) for k, v in decode.items()},
            "modes": modes, "load_average": [round(x, 2) for x in load]}


# -- command -----------------------------------------------------------------------

def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("pipeline", help="lobby pipeline vs the plain insightface loop; capacity")
    parser.add_argument("--video", type=Path, required=True, help="video file (e.g. the opera walk)")
    parser.add_argument("--gallery", type=Path, help="store database whose templates form the gallery")
    parser.add_argument("--key-file", type=Path, help="store key file (else config / BRANCH_EDGE_KEY)")
    parser.add_argument("--truth", type=Path, help="ground truth of `synth lobby`: enrol its customers, "
                        "report recall and time to recognition")
    parser.add_argument("--faces", type=Path,
                        help="faces folder of the truth's photos (default: as recorded)")
    parser.add_argument("--distractors", type=bounded_int(0, 100_000), default=50,
                        help="also enrol the first photo of this many other identities of --faces "
                             "(default 50; faces from the truth or $BRANCH_EDGE_DATA/faces)")
    parser.add_argument("--max-frames", type=bounded_int(1, 1_000_000), default=100_000,
                        help="comparison mode: stop after this many frames (default 100000)")
    parser.add_argument("--cameras", type=bounded_int(0, 64), default=0,
                        help="capacity mode: this many paced copies of the video (default 0: comparison)")
    parser.add_argument("--seconds", type=bounded_float(1.0, 3600.0), default=20.0,
                        help="capacity mode: how long to run (default 20)")
    parser.add_argument("--analyse-fps", type=bounded_float(0.5, 60.0), default=10.0,
                        help="capacity mode: analysed frames per second per camera (default 10)")
    parser.add_argument("--substream", type=frame_size,
                        help="WxH: give each camera a substream of this size (made from the video with "
                             "ffmpeg); compares main / substream / substream + main-stream crops, or, "
                             "with --cameras, measures capacity on substreams")
    parser.add_argument("--codec", choices=sorted(ENCODERS),
                        help="re-encode the streams as h264 or h265 (default: the video as it is; with "
                             "--substream, h264)")
    parser.add_argument("--main-crop-below-px", type=bounded_float(0.0, 400.0), default=32.0,
                        help="substream: faces with closer eyes (substream px) are cropped from the main "
                             "stream (default 32; 0 = never)")
    parser.add_argument("--main-linger-s", type=bounded_float(0.0, 3600.0), default=10.0,
                        help="substream: the main stream closes this long after the last ask (default 10)")
    parser.add_argument("--main-open-s", type=bounded_float(0.0, 30.0), default=1.0,
                        help="substream comparison: the main stream gives frames this long after it is "
                             "opened (connect and first key frame; default 1)")
    parser.add_argument("--decode-cost", action="store_true",
                        help="only measure the CPU of decoding the video as H.264 and H.265 (and the "
                             "substream size, with --substream)")
    parser.add_argument("--config", type=Path,
                        help="edge TOML config (default: $BRANCH_EDGE_CONFIG, else built-in)")
    parser.add_argument("--models", type=Path,
                        help="folder with the ONNX files (default: models.dir / $BRANCH_EDGE_MODELS)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run_command)


def load_truth(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        truth = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise BenchError(f"cannot read ground truth {path}: {err}") from err
    if not isinstance(truth, dict) or not isinstance(truth.get("people"), list):
        raise BenchError(f"{path}: not a `synth lobby` ground truth (no people list)")
    return truth


def run_decode_cost(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    sizes: list[tuple[int, int] | None] = [None] + ([args.substream] if args.substream else [])
    rows = []
    load = os.getloadavg()
    for size in sizes:
        for codec in sorted(ENCODERS):
            name = f"{codec}-{'x'.join(map(str, size)) if size else 'main'}.mp4"
            rows.append({"codec": codec, **decode_cost(encode_stream(args.video, work / name, size=size,
                                                                     codec=codec))})
    return {"bench": "decode-cost", "date": datetime.now(UTC).strftime("%Y-%m-%d"), "video": args.video.name,
            "threads": cv2.getNumThreads(), "streams": rows, "load_average": [round(x, 2) for x in load]}


def run_command(args: argparse.Namespace) -> int:
    if not args.video.is_file():
        raise BenchError(f"video {args.video} does not exist")
    with tempfile.TemporaryDirectory(prefix="bench-streams-") as folder:
        report = bench(args, Path(folder))
    print(json.dumps(report, indent=None if args.json else 2))
    return 0


def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    if args.decode_cost:
        return run_decode_cost(args, work)
    video = args.video
    if args.codec and not args.substream:
        video = encode_stream(args.video, work / f"main-{args.codec}.mp4", size=None, codec=args.codec)
    cfg = load_config(args.config)
    truth = load_truth(args.truth)
    engine = FaceEngine.from_config(cfg, args.models)
    gallery = build_gallery(engine, cfg, args, truth)
    substream = None
    if args.substream:
        codec = args.codec or "h264"
        main = encode_stream(args.video, work / f"main-{codec}.mp4", size=None, codec=codec)
        sub = encode_stream(args.video, work / f"sub-{codec}.mp4", size=args.substream, codec=codec)
        if not args.cameras:
            return compare_substream(main, sub, engine, gallery, cfg=cfg, args=args, truth=truth)
        substream = Substream(sub, main, args.main_crop_below_px, args.main_linger_s)
    if args.cameras:
        min_size = measured_min_size(truth, engine, args.faces or Path(truth["faces_dir"]),
                                     cfg.quality.min_interocular_px) if truth else None
        report = run_capacity(video, LobbyPipeline(engine, gallery, cfg), cameras=args.cameras,
                              seconds=args.seconds, analyse_fps=args.analyse_fps, min_size_s=min_size,
                              substream=substream)
        report["intra_op_threads"] = cfg.runtime.intra_op_threads
        report["codec"] = args.codec or ("h264" if args.substream else "as recorded")
    else:
        app = insightface_app(engine, cfg, args.models)
        meters, frames, fps, stats = compare(args.video, engine, app, gallery, cfg,
                                             max_frames=args.max_frames)
        report = comparison_report(args.video, meters, frames=frames, fps=fps, stats=stats, gallery=gallery,
                                   truth=truth)
    return report
