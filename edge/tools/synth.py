"""Synthetic lobby video with ground truth, composed from labelled face photos.

People walk toward the camera over a lobby background: each is a head (an LFW
photo's face region under a soft elliptical mask) on a plain torso, growing from
far to near, drifting sideways, with motion blur while they move fast, a global
lighting change over time, a pillar that partly hides whoever passes behind it,
and several people in view at once.  Enrolled people appear with a photo that is
*not* one of their enrolment photos, so recognising them is a real test.

The ground truth (JSON) says who enters when, and whether they are enrolled:
``people[i] = {label, customer_id|null, enrolled, video_photo, enrol_photos,
enter_s, exit_s, min_size_s}``; ``min_size_s`` is the first frame where the face
has reached the quality gate's minimum interocular distance (estimated from the
head width) and is not hidden by the pillar or a nearer walker.
"""

from __future__ import annotations

import csv
import json
import math
import random
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.core.errors import BranchEdgeError

# LFW photos are 250x250 with the face centred; this window holds the head.
LFW_NAME = re.compile(r"_\d{4}\.jpg$")
HEAD_WINDOW = (slice(40, 215), slice(50, 200))  # rows, cols: 175 x 150
HEAD_ASPECT = 175 / 150
# A grey pillar (fraction of the width) that hides whoever walks behind it.
PILLAR_X, PILLAR_WIDTH = 0.62, 0.045
# A face with this much of its central region covered counts as not visible.
OCCLUDED_FRACTION = 0.25
# Interocular distance over head width in HEAD_WINDOW (LFW eyes ~40 px apart).
IOD_PER_HEAD_WIDTH = 0.27
MIN_INTEROCULAR_PX = 20.0
# Enrolment photos per synthetic customer (all their other LFW photos, up to this).
ENROL_PHOTOS = 4


Picked = tuple[str, str | None, list[Path], Path]  # label, customer id, enrol photos, video photo


class SynthError(BranchEdgeError):
    """The generator cannot build the requested video (missing photos, bad CSV...)."""


@dataclass(frozen=True)
class Person:
    label: str
    customer_id: str | None
    video_photo: str
    enrol_photos: tuple[str, ...]
    enter_s: float
    exit_s: float
    min_size_s: float | None
    x0: float  # horizontal path, fraction of the width
    x1: float
    blur: bool
    gain: float

    @property
    def enrolled(self) -> bool:
        return self.customer_id is not None


@dataclass(frozen=True)
class SynthSpec:
    width: int = 960
    height: int = 540
    fps: float = 12.0
    seconds: float = 16.0
    walk_s: float = 5.0
    head_min: int = 36  # head width in px when entering, and when leaving
    head_max: int = 150


def lfw_photos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if LFW_NAME.search(p.name))


def pick_people(faces_dir: Path, enrolled: int, strangers: int, seed: int) -> list[Picked]:
    """(label, customer id, enrol photos, video photo): enrolled need 2+ LFW photos."""
    folders = sorted(d for d in faces_dir.iterdir() if d.is_dir() and lfw_photos(d))
    rng = random.Random(seed)
    eligible = [d for d in folders if len(lfw_photos(d)) >= 2]
    if len(eligible) < enrolled or len(folders) < enrolled + strangers:
        raise SynthError(f"{faces_dir}: not enough LFW identities for "
                         f"{enrolled} enrolled + {strangers} strangers")
    chosen = rng.sample(eligible, enrolled)
    others = rng.sample([d for d in folders if d not in chosen], strangers)
    people: list[Picked] = []
    for i, d in enumerate(chosen):
        photos = lfw_photos(d)
        people.append((d.name, f"C2026{i + 1:05d}", photos[:-1][:ENROL_PHOTOS], photos[-1]))
    people += [(d.name, None, [], lfw_photos(d)[0]) for d in others]
    rng.shuffle(people)
    return people


def people_from_csv(faces_dir: Path, csv_path: Path, strangers: int, seed: int) -> list[Picked]:
    """Enrolled people from a customers CSV (customer_id, photo relative to faces_dir);
    each appears in the video with another LFW photo of the same folder."""
    try:
        with csv_path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as err:
        raise SynthError(f"cannot read {csv_path}: {err.strerror}") from err
    enrol: dict[str, list[Path]] = {}
    for row in rows:
        if not row.get("customer_id") or not row.get("photo"):
            raise SynthError(f"{csv_path}: every row needs customer_id and photo")
        enrol.setdefault(row["customer_id"], []).append(faces_dir / row["photo"])
    people: list[Picked] = []
    for cid, photos in enrol.items():
        spare = [p for p in lfw_photos(photos[0].parent) if p not in photos]
        if not spare:
            raise SynthError(f"{cid}: no photo left in {photos[0].parent} for the video")
        people.append((photos[0].parent.name, cid, photos, spare[0]))
    used = {p[0] for p in people}
    rng = random.Random(seed)
    pool = [d for d in sorted(faces_dir.iterdir()) if d.is_dir() and d.name not in used and lfw_photos(d)]
    people += [(d.name, None, [], lfw_photos(d)[0]) for d in rng.sample(pool, min(strangers, len(pool)))]
    rng.shuffle(people)
    return people


def schedule(picked: list[Picked], spec: SynthSpec, faces_dir: Path,
             seed: int) -> list[Person]:
    """Entries spread over the video so that walks overlap (several people at once)."""
    rng = random.Random(seed + 1)
    last_start = max(spec.seconds - spec.walk_s - 0.5, 0.0)
    step = last_start / max(len(picked) - 1, 1)
    out = []
    for i, (label, cid, enrol, photo) in enumerate(picked):
        enter = round(min(i * step + rng.uniform(0, 0.3), last_start), 3)
        x0 = rng.uniform(0.15, 0.85)
        out.append(Person(
            label, cid, photo.relative_to(faces_dir).as_posix(),
            tuple(p.relative_to(faces_dir).as_posix() for p in enrol),
            enter, round(enter + spec.walk_s, 3), None,
            x0, min(max(x0 + rng.uniform(-0.25, 0.25), 0.1), 0.9),
            rng.random() < 0.5, rng.uniform(0.8, 1.15),
        ))
    return [replace(p, min_size_s=first_seen_at_size(p, out, spec)) for p in out]


def lobby_background(spec: SynthSpec, video: Path | None) -> np.ndarray:
    """A real lobby frame, blurred so no real face in it is detectable; else a gradient."""
    frame = None
    if video is not None and video.is_file():
        cap = cv2.VideoCapture(str(video))
        ok, frame = cap.read()
        cap.release()
        frame = frame if ok else None
    if frame is None:
        ramp = np.linspace(90, 200, spec.height, dtype=np.float32)[:, None, None]
        frame = np.broadcast_to(ramp * np.array([0.9, 1.0, 1.1], np.float32), (spec.height, spec.width, 3))
        return np.ascontiguousarray(frame.astype(np.uint8))
    frame = cv2.resize(frame, (spec.width, spec.height), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(frame, (0, 0), 9)


@dataclass
class Sprite:
    head: np.ndarray  # float32 BGR
    alpha: np.ndarray  # float32 0..1
    torso: tuple[int, int, int]


def load_sprite(path: Path, rng: random.Random) -> Sprite:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None or image.shape[:2] != (250, 250):
        raise SynthError(f"{path}: not a readable 250x250 LFW photo")
    head = image[HEAD_WINDOW].astype(np.float32)
    h, w = head.shape[:2]
    mask = np.zeros((h, w), np.float32)
    cv2.ellipse(mask, (w // 2, h // 2), (int(w * 0.42), int(h * 0.47)), 0, 0, 360, 1.0, -1)
    alpha = np.asarray(cv2.GaussianBlur(mask, (0, 0), 4), dtype=np.float32)
    torso = (rng.randint(20, 120), rng.randint(20, 120), rng.randint(20, 120))
    return Sprite(head, alpha, torso)


def paste(frame: np.ndarray, patch: np.ndarray, alpha: np.ndarray, x: int, y: int) -> None:
    """Alpha-blend ``patch`` at (x, y) into the float frame, clipped at the edges."""
    h, w = alpha.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, frame.shape[1]), min(y + h, frame.shape[0])
    if x0 >= x1 or y0 >= y1:
        return
    a = alpha[y0 - y:y1 - y, x0 - x:x1 - x, None]
    region = frame[y0:y1, x0:x1]
    region[:] = region * (1 - a) + patch[y0 - y:y1 - y, x0 - x:x1 - x] * a


def motion_blur(image: np.ndarray, length: int) -> np.ndarray:
    if length < 2:
        return image
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    return cv2.filter2D(image, -1, kernel)


def head_width(person: Person, spec: SynthSpec, t: float) -> float:
    p = (t - person.enter_s) / (person.exit_s - person.enter_s)
    return spec.head_min * math.pow(spec.head_max / spec.head_min, p)


Rect = tuple[float, float, float, float]


def layout(person: Person, spec: SynthSpec, t: float) -> tuple[Rect, Rect]:
    """(head, torso) rectangles of a walker at time t, in frame pixels."""
    p = (t - person.enter_s) / (person.exit_s - person.enter_s)
    width = head_width(person, spec, t)
    height = width * HEAD_ASPECT
    cx = (person.x0 + (person.x1 - person.x0) * p) * spec.width
    top = spec.height * (0.32 - 0.12 * p)
    head = (cx - width / 2, top, cx + width / 2, top + height)
    torso = (cx - 0.85 * width, top + 0.9 * height, cx + 0.85 * width, float(spec.height))
    return head, torso


def pillar_rect(spec: SynthSpec) -> Rect:
    x = spec.width * PILLAR_X
    return (x, 0.0, x + spec.width * PILLAR_WIDTH, float(spec.height))


def draw_person(frame: np.ndarray, person: Person, sprite: Sprite, spec: SynthSpec, t: float) -> None:
    (hx, hy, hx2, _), (tx, ty, tx2, _) = layout(person, spec, t)
    scale = (hx2 - hx) / sprite.head.shape[1]
    head = cv2.resize(sprite.head, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(sprite.alpha, (head.shape[1], head.shape[0]))
    colour = tuple(float(c) for c in sprite.torso)
    cv2.rectangle(frame, (int(tx), int(ty)), (int(tx2), spec.height), colour, -1)
    p = (t - person.enter_s) / (person.exit_s - person.enter_s)
    if person.blur and 0.2 < p < 0.6:  # a quick stride: horizontal smear
        head = motion_blur(head, max(2, int((hx2 - hx) / 18)))
    paste(frame, head * person.gain, alpha, int(hx), int(hy))


def draw_pillar(frame: np.ndarray, spec: SynthSpec) -> None:
    x, _, x2, _ = pillar_rect(spec)
    frame[:, int(x):int(x2)] = (150.0, 160.0, 170.0)


def overlap_fraction(face: Rect, other: Rect) -> float:
    ix = max(0.0, min(face[2], other[2]) - max(face[0], other[0]))
    iy = max(0.0, min(face[3], other[3]) - max(face[1], other[1]))
    area = (face[2] - face[0]) * (face[3] - face[1])
    return ix * iy / area if area > 0 else 1.0


def occluded(person: Person, people: list[Person], spec: SynthSpec, t: float) -> bool:
    """Whether a quarter or more of the face is hidden by the pillar or by a nearer walker."""
    head, _ = layout(person, spec, t)
    w, h = head[2] - head[0], head[3] - head[1]
    face = (head[0] + 0.2 * w, head[1] + 0.2 * h, head[2] - 0.2 * w, head[3] - 0.15 * h)
    blockers = [pillar_rect(spec)]
    for other in people:
        if other is not person and other.enter_s <= t < other.exit_s and \
                head_width(other, spec, t) > head_width(person, spec, t):
            blockers.extend(layout(other, spec, t))
    return any(overlap_fraction(face, b) >= OCCLUDED_FRACTION for b in blockers)


def first_seen_at_size(person: Person, people: list[Person], spec: SynthSpec,
                       iod_per_head_width: float = IOD_PER_HEAD_WIDTH,
                       min_interocular_px: float = MIN_INTEROCULAR_PX) -> float | None:
    """Time of the first frame where the face is at least the minimum size and not hidden
    (None: never).  ``iod_per_head_width`` is a typical LFW value unless measured."""
    first = math.ceil(person.enter_s * spec.fps - 1e-9)
    for index in range(first, math.ceil(person.exit_s * spec.fps)):
        t = index / spec.fps
        big = head_width(person, spec, t) * iod_per_head_width >= min_interocular_px
        if big and not occluded(person, people, spec, t):
            return round(t, 3)
    return None


def people_from_truth(truth: dict[str, Any]) -> list[Person]:
    fields = set(Person.__dataclass_fields__)
    return [Person(**{**{k: v for k, v in p.items() if k in fields},
                      "enrol_photos": tuple(p["enrol_photos"])}) for p in truth["people"]]


def render(people: list[Person], sprites: dict[str, Sprite], background: np.ndarray, spec: SynthSpec,
           out: Path) -> int:
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"mp4v"), spec.fps, (spec.width, spec.height))
    if not writer.isOpened():
        raise SynthError(f"cannot write video {out}")
    frames = round(spec.seconds * spec.fps)
    base = background.astype(np.float32)
    for i in range(frames):
        t = i / spec.fps
        frame = base.copy()
        visible = [p for p in people if p.enter_s <= t < p.exit_s]
        for person in sorted(visible, key=lambda p: head_width(p, spec, t)):  # near ones on top
            draw_person(frame, person, sprites[person.video_photo], spec, t)
        draw_pillar(frame, spec)
        light = 1.0 + 0.22 * math.sin(2 * math.pi * t / 9.0)
        writer.write(np.clip(frame * light, 0, 255).astype(np.uint8))
    writer.release()
    return frames


def generate_lobby(faces_dir: Path, out: Path, truth_path: Path, *, enrolled: int = 3, strangers: int = 2,
                   customers_csv: Path | None = None, spec: SynthSpec = SynthSpec(), seed: int = 7,
                   background_video: Path | None = None) -> dict[str, object]:
    if not faces_dir.is_dir():
        raise SynthError(f"faces folder {faces_dir} does not exist")
    picked = (people_from_csv(faces_dir, customers_csv, strangers, seed) if customers_csv
              else pick_people(faces_dir, enrolled, strangers, seed))
    people = schedule(picked, spec, faces_dir, seed)
    rng = random.Random(seed + 2)
    sprites = {p.video_photo: load_sprite(faces_dir / p.video_photo, rng) for p in people}
    frames = render(people, sprites, lobby_background(spec, background_video), spec, out)
    truth = {
        "video": out.name, "faces_dir": str(faces_dir), "width": spec.width, "height": spec.height,
        "fps": spec.fps, "frames": frames, "seconds": spec.seconds, "seed": seed,
        "min_interocular_px": MIN_INTEROCULAR_PX, "spec": asdict(spec),
        "head_window_width": HEAD_WINDOW[1].stop - HEAD_WINDOW[1].start,
        "people": [{**asdict(p), "enrolled": p.enrolled} for p in people],
    }
    text = json.dumps(truth, indent=2)
    truth_path.write_text(text + "\n", encoding="utf-8")
    return dict(json.loads(text))  # exactly what a reader of the file gets


def write_consenting_customers(truth: dict[str, Any], path: Path, *, name_prefix: str = "Customer",
                               tier: str = "private", rm: str = "RM-01",
                               channel: str = "test-paper-form") -> Path:
    """The video's enrolled people as consenting customers (fictional names from their
    ids, a tier and an RM) in the CSV format of ``branch-edge enrol --customers``."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["customer_id", "photo", "display_name", "tier", "assigned_rm",
                         "consent_channel", "consent_time"])
        for person in truth["people"]:
            for photo in person["enrol_photos"] if person["enrolled"] else ():
                writer.writerow([person["customer_id"], photo, f"{name_prefix} {person['customer_id'][-2:]}",
                                 tier, rm, channel, "2026-01-05T10:00:00+08:00"])
    return path


def write_customers_csv(truth: dict[str, object], path: Path) -> None:
    """The enrolled people as a customers CSV for ``branch-edge enrol``."""
    people = truth["people"]
    assert isinstance(people, list)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["customer_id", "photo", "display_name"])
        for p in people:
            for photo in p["enrol_photos"]:
                writer.writerow([p["customer_id"], photo, p["label"].replace("_", " ")])
