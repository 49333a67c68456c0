"""A lobby camera the test directs: whoever the test puts in front of it, the daemon sees.

``Stage`` is a live camera (its source is a USB index, so the grabber reads at the camera's
pace and stamps frames with the clock) whose picture is a grey lobby wall with a real
customer photo pasted in the middle, or the empty wall.  The daemon runs unchanged around it:
grabber, watchdog, pipeline with the real models, visits, store, outbox and broker.  Tests
wait on what the daemon did (frames analysed, arrivals queued), never on the clock.
"""

from __future__ import annotations

import csv
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.config import EdgeConfig
from edge.enrol.enrolment import enrol_folder
from edge.store.database import open_configured

WALL = (480, 640, 3)
SCALE = 1.6  # a 250 px LFW photo becomes a face of about 60 px between the eyes
FPS = 20.0
# Real people (LFW) with four clear photos each: three are enrolled, the fourth walks in.
PEOPLE = {"C-REEVE": "Christopher_Reeve", "C-CLARK": "Helen_Clark"}


class Stage:
    """The picture a lobby camera sees; ``opener`` is what ``EdgeDaemon(opener=...)`` takes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._picture = np.full(WALL, 128, np.uint8)

    def show(self, photo: Path | None) -> None:
        """Put the person of ``photo`` in front of the camera (None: nobody)."""
        picture = np.full(WALL, 128, np.uint8)
        if photo is not None:
            face = cv2.imread(str(photo))
            face = cv2.resize(face, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_CUBIC)
            h, w = face.shape[:2]
            top, left = (WALL[0] - h) // 2, (WALL[1] - w) // 2
            picture[top:top + h, left:left + w] = face
        with self._lock:
            self._picture = picture

    def opener(self, cam: Any) -> _StageSource:
        return _StageSource(self)

    def picture(self) -> np.ndarray:
        with self._lock:
            return self._picture.copy()


class _StageSource:
    """The OpenCV ``VideoCapture`` methods the grabber uses, at ``FPS`` frames per second."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self.next_at = time.monotonic()

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return True

    def grab(self) -> bool:
        self.next_at += 1.0 / FPS
        delay = self.next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # a camera delivers at its own rate
        else:
            self.next_at = time.monotonic()
        return True

    def retrieve(self) -> tuple[bool, np.ndarray]:
        return True, self.stage.picture()

    def read(self) -> tuple[bool, np.ndarray]:
        return self.grab() and self.retrieve()[0], self.stage.picture()

    def get(self, prop: int) -> float:
        return FPS if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self) -> None:
        pass


def photos_of(data_dir: Path, customer_id: str) -> list[Path]:
    return sorted((data_dir / "faces" / PEOPLE[customer_id]).iterdir())


def walk_in_photo(data_dir: Path, customer_id: str) -> Path:
    """The photo the stage shows: not one of those enrolled."""
    return photos_of(data_dir, customer_id)[-1]


def enrol_people(cfg: EdgeConfig, engine: Any, data_dir: Path, folder: Path) -> None:
    """Enrol every customer of ``PEOPLE`` (consent recorded, a name, an RM) from three photos each."""
    photos = folder / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    sheet = folder / "customers.csv"
    with sheet.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "photo", "display_name", "tier", "assigned_rm",
                         "consent_channel", "consent_time"])
        for cid in PEOPLE:
            for photo in photos_of(data_dir, cid)[:3]:
                target = photos / cid / photo.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(photo, target)
                writer.writerow([cid, f"{cid}/{photo.name}", f"Customer {cid}", "private", "rm-1",
                                 "test-paper-form", "2026-01-05T10:00:00+08:00"])
    with open_configured(cfg.store, create=False) as store:
        report = enrol_folder(store, engine, cfg, photos, customers_csv=sheet, actor="test", progress=False)
    accepted = {row["customer_id"] for row in report.per_customer() if row["accepted"] >= 2}
    assert accepted == set(PEOPLE), report.to_dict()["reasons"]


def stage_camera(**overrides: Any) -> dict[str, Any]:
    return {"name": "lobby-1", "source": "0", "analyse_fps": 10.0, **overrides}
