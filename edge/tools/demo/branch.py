"""The demo branch: enrol about 20 fictional customers from labelled photos,
then identify probe photos (their other photos, and strangers).

Names, customer numbers, tiers and RMs are invented.  The photos are of real people (LFW,
labelled by the person's name), so nothing the demo leaves behind names them: the photos it
uses are copied into its output folder under opaque names (``demo-photos/<customer id>/
p_0001.jpg``; strangers ``visitor-NN``), and the customers CSV, the lobby's CSV and ground
truth, the store and the summary refer only to those copies.  The printed table never shows a
real person's name either, and no financial data is invented here.

LFW carries no gender labels, so a name cannot be matched to the apparent gender of a
photo; the invented given names are ones used for both women and men.
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import unicodedata
from dataclasses import asdict, dataclass, replace
from datetime import date
from pathlib import Path

from edge.config import EdgeConfig
from edge.core.files import open_private, private_dir, write_private_bytes
from edge.core.gallery import Decision, Gallery
from edge.crm.portrait import PortraitBuilder
from edge.crm.records import CrmStore
from edge.enrol.enrolment import EnrolReport, enrol_folder
from edge.store.crypto import generate_key_file, load_key_ring
from edge.store.database import Store
from edge.tools.demo.crm import load_demo_crm
from edge.tools.demo.lobby import run_lobby_demo
from edge.vision.engine import FaceEngine
from edge.vision.gallery_index import make_gallery
from edge.vision.imageio import IMAGE_SUFFIXES, load_image

SURNAMES = [
    "王",
    "李",
    "张",
    "刘",
    "陈",
    "杨",
    "赵",
    "黄",
    "周",
    "吴",
    "徐",
    "孙",
    "胡",
    "朱",
    "高",
    "林",
    "何",
    "郭",
    "马",
    "罗",
]
# Given names used for both women and men (LFW has no gender labels to match a name to).
GIVEN_NAMES = [
    "子涵",
    "一诺",
    "安然",
    "欣然",
    "思源",
    "晨曦",
    "嘉禾",
    "乐天",
    "沐阳",
    "清和",
    "知秋",
    "雨辰",
    "晓阳",
    "书宁",
    "乐言",
    "亦凡",
    "以宁",
    "雨泽",
    "明澈",
    "若谷",
]
TIERS = ["私人银行", "财富管理", "贵宾"]
RMS = ["RM-01", "RM-02", "RM-03"]
VISITORS = 5  # customers who walk through the synthetic lobby
PHOTO_NAME = "p_{:04d}{}"  # a copied photo's opaque name (the _NNNN suffix is what the lobby video reads)


@dataclass(frozen=True)
class DemoCustomer:
    customer_id: str
    display_name: str
    tier: str
    assigned_rm: str
    enrol_photos: tuple[Path, ...]
    probe_photos: tuple[Path, ...]


@dataclass(frozen=True)
class Probe:
    number: int
    photo: Path
    truth: str | None  # customer id, or None for a stranger


@dataclass(frozen=True)
class ProbeResult:
    number: int
    truth: str | None
    decision: str | None
    score: float
    runner_up: float
    reason: str
    outcome: str


def _photos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def plan_demo_branch(
    faces_dir: Path, customers: int = 20, strangers: int = 10, seed: int = 2026
) -> tuple[list[DemoCustomer], list[Probe]]:
    """Seeded choice of identities: customers need 3+ photos (2 to enrol, the
    rest probe); strangers contribute one probe photo each."""
    folders = sorted(d for d in faces_dir.iterdir() if d.is_dir())
    rng = random.Random(seed)
    eligible = [d for d in folders if len(_photos(d)) >= 3]
    chosen = rng.sample(eligible, customers)
    others = rng.sample([d for d in folders if d not in chosen], strangers)
    people = []
    for i, folder in enumerate(chosen):
        photos = _photos(folder)
        people.append(
            DemoCustomer(
                customer_id=f"C2026{i + 1:05d}",
                display_name=SURNAMES[i % len(SURNAMES)] + GIVEN_NAMES[(i * 7) % len(GIVEN_NAMES)],
                tier=TIERS[i % len(TIERS)],
                assigned_rm=RMS[i % len(RMS)],
                enrol_photos=tuple(photos[:2]),
                probe_photos=tuple(photos[2:4]),
            )
        )
    probes: list[tuple[Path, str | None]] = [(p, c.customer_id) for c in people for p in c.probe_photos]
    probes += [(_photos(d)[0], None) for d in others]
    rng.shuffle(probes)
    return people, [Probe(i + 1, photo, truth) for i, (photo, truth) in enumerate(probes)]


def stage_customers(people: list[DemoCustomer], folder: Path, *, spare: bool = False) -> list[DemoCustomer]:
    """Copies of the customers' enrol photos (and with ``spare`` the first probe photo, which
    the lobby video shows) as ``folder/<customer id>/p_000N.jpg``, owner-only: no file name
    carries the real person's name.  The customers as they refer to the copies."""
    staged = []
    for person in people:
        shown = person.enrol_photos + (person.probe_photos[:1] if spare else ())
        copies = tuple(_copy(photo, folder / person.customer_id / PHOTO_NAME.format(n, photo.suffix.lower()))
                       for n, photo in enumerate(shown, 1))
        staged.append(replace(person, enrol_photos=copies[:len(person.enrol_photos)], probe_photos=()))
    return staged


def stage_strangers(folders: list[Path], folder: Path) -> None:
    """One photo of each stranger as ``folder/visitor-NN/p_0001.jpg``."""
    for n, source in enumerate(folders, 1):
        photo = _photos(source)[0]
        _copy(photo, folder / f"visitor-{n:02d}" / PHOTO_NAME.format(1, photo.suffix.lower()))


def _copy(photo: Path, target: Path) -> Path:
    private_dir(target.parent)  # faces: owner only
    write_private_bytes(target, photo.read_bytes())
    return target


def write_customers_csv(people: list[DemoCustomer], faces_dir: Path, path: Path) -> None:
    with open_private(path, newline="") as out:  # names beside face photos: owner only
        writer = csv.writer(out)
        writer.writerow(
            [
                "customer_id",
                "photo",
                "display_name",
                "tier",
                "assigned_rm",
                "consent_channel",
                "consent_time",
            ]
        )
        for c in people:
            for photo in c.enrol_photos:
                writer.writerow(
                    [
                        c.customer_id,
                        photo.relative_to(faces_dir).as_posix(),
                        c.display_name,
                        c.tier,
                        c.assigned_rm,
                        "demo-paper-form",
                        "2026-01-05T10:00:00+08:00",
                    ]
                )


def classify(truth: str | None, decision: Decision) -> str:
    if truth is None:
        return "stranger: not recognised" if decision.customer_id is None else "FALSE ALARM"
    if decision.customer_id == truth:
        return "recognised"
    return "missed" if decision.customer_id is None else "WRONG CUSTOMER"


def identify_probes(
    engine: FaceEngine, gallery: Gallery, cfg: EdgeConfig, probes: list[Probe]
) -> list[ProbeResult]:
    """The open-set decision for each probe photo."""
    results = []
    for probe in probes:
        observations = engine.analyze(load_image(probe.photo), max_faces=1)
        if not observations or observations[0].embedding is None:
            outcome = "no face (missed)" if probe.truth else "no face"
            results.append(ProbeResult(probe.number, probe.truth, None, 0.0, 0.0, "no_face", outcome))
            continue
        decision = gallery.identify(
            observations[0].embedding, cfg.recognition.threshold, cfg.recognition.margin
        )
        results.append(
            ProbeResult(
                probe.number,
                probe.truth,
                decision.customer_id,
                decision.best.score if decision.best else 0.0,
                decision.runner_up.score if decision.runner_up else 0.0,
                decision.reason,
                classify(probe.truth, decision),
            )
        )
    return results


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(width - _width(text), 0)


def format_table(results: list[ProbeResult], people: dict[str, DemoCustomer]) -> str:
    header = ["#", "photo of", "decision", "name", "tier", "score", "2nd", "result"]
    widths = [3, 12, 12, 8, 10, 6, 6, 24]
    lines = ["  ".join(_pad(h, w) for h, w in zip(header, widths, strict=True))]
    for r in results:
        who = people.get(r.decision or "")
        row = [
            str(r.number),
            r.truth or "stranger",
            r.decision or "unknown",
            who.display_name if who else "-",
            who.tier if who else "-",
            f"{r.score:.3f}",
            f"{r.runner_up:.3f}",
            r.outcome,
        ]
        lines.append("  ".join(_pad(c, w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


def summarise(
    results: list[ProbeResult], report: EnrolReport, threshold: float, margin: float
) -> dict[str, object]:
    mated = [r for r in results if r.truth]
    strangers = [r for r in results if not r.truth]
    return {
        "enrolment": {
            "accepted": report.count("accepted") + report.count("already_enrolled"),
            "rejected": report.count("rejected"),
            "reasons": report.reason_counts(),
        },
        "probes": len(results),
        "customers_recognised": sum(r.outcome == "recognised" for r in mated),
        "customer_probes": len(mated),
        "wrong_customer": sum(r.outcome == "WRONG CUSTOMER" for r in mated),
        "stranger_probes": len(strangers),
        "false_alarms": sum(r.outcome == "FALSE ALARM" for r in strangers),
        "threshold": threshold,
        "margin": margin,
    }


def open_demo_store(out: Path, cfg: EdgeConfig) -> Store:
    key_file = out / "demo-store.key"
    if not key_file.exists():
        generate_key_file(key_file)
    db = out / "demo.db"
    for stale in (db, db.with_name("demo.db-wal"), db.with_name("demo.db-shm")):
        stale.unlink(missing_ok=True)
    return Store.open(db, load_key_ring(cfg.store, key_file))


def run_demo(
    out: Path, faces_dir: Path, cfg: EdgeConfig, models_dir: Path | None = None
) -> dict[str, object]:
    private_dir(out)  # customer names, a key, face thumbnails: owner only
    people, probes = plan_demo_branch(faces_dir)
    photos = out / "demo-photos"
    shutil.rmtree(photos, ignore_errors=True)  # a previous run's copies
    csv_path = out / "demo-customers.csv"
    write_customers_csv(stage_customers(people, photos), photos, csv_path)
    engine = FaceEngine.from_config(cfg, models_dir)
    with open_demo_store(out, cfg) as store:
        report = enrol_folder(store, engine, cfg, photos, customers_csv=csv_path, actor="demo")
        ids, embeddings = store.load_templates(engine.pack_id, engine.embedding_size)
        gallery = make_gallery(engine.embedding_size, cfg.gallery.backend)
        gallery.add(ids, embeddings)
        results = identify_probes(engine, gallery, cfg, probes)
    summary = summarise(results, report, cfg.recognition.threshold, cfg.recognition.margin)
    print(f"Demo branch: {len(people)} fictional customers enrolled from {faces_dir}")
    print(f"enrolment: {summary['enrolment']}\n")
    print(format_table(results, {c.customer_id: c for c in people}))
    print(
        f"\n{summary['customers_recognised']}/{summary['customer_probes']} customer photos recognised, "
        f"{summary['wrong_customer']} wrong, {summary['false_alarms']}/{summary['stranger_probes']} "
        f"strangers falsely recognised "
        f"(threshold {cfg.recognition.threshold}, margin {cfg.recognition.margin})"
    )
    strangers = list(dict.fromkeys(p.photo.parent for p in probes if p.truth is None))
    summary["lobby"] = run_lobby(out, faces_dir, cfg, engine, people, strangers=strangers)
    report_json = {"summary": summary, "results": [asdict(r) for r in results]}
    summary_json = json.dumps(report_json, indent=2, ensure_ascii=False)
    write_private_bytes(out / "demo-summary.json", summary_json.encode("utf-8"))
    print(f"output: {out}/")
    return summary


def run_lobby(out: Path, faces_dir: Path, cfg: EdgeConfig, engine: FaceEngine,
              people: list[DemoCustomer], *, strangers: list[Path]) -> dict[str, object]:
    """The lobby leg: the daemon over a synthetic lobby video of the demo branch,
    arrivals with portraits from the fictional CRM, an RM PAD on the console and
    the PAD app saving each customer card.  The video is made from copies under opaque
    names: the customers who walk in and the strangers (not enrolled), nobody else."""
    lobby_faces = out / "lobby" / "faces"
    shutil.rmtree(lobby_faces, ignore_errors=True)
    stage_customers(people[:VISITORS], lobby_faces, spare=True)
    stage_strangers(strangers, lobby_faces)
    shutil.rmtree(out / "pad-cards", ignore_errors=True)  # a previous run's cards
    # The fictional CRM (holdings, risk level, maturities) behind the portraits.
    load_demo_crm(out / "demo.db", people, date.today(), out / "crm")
    keys = load_key_ring(cfg.store, out / "demo-store.key")
    portraits = PortraitBuilder(CrmStore.open(out / "demo.db"), cfg.crm)
    try:
        return run_lobby_demo(
            out / "lobby", lobby_faces, cfg, engine, customers_csv=out / "demo-customers.csv",
            visitors=VISITORS, strangers=min(3, len(strangers)),
            open_store=lambda: Store.open(out / "demo.db", keys, create=False),
            portraits=portraits, pad_cards=out / "pad-cards",
            background_video=default_background_video(faces_dir),
        )
    finally:
        portraits.close()


def default_background_video(faces_dir: Path) -> Path | None:
    video = faces_dir.parent / "video" / "royal_opera_house_walk_1080p.mp4"
    return video if video.is_file() else None


def default_faces_dir() -> Path:
    data = os.environ.get("BRANCH_EDGE_DATA")
    return (
        Path(data) / "faces" if data else Path(__file__).resolve().parents[4] / "shared" / "data" / "faces"
    )
