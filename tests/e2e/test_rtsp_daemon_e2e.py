"""End to end from an IP camera: the synthetic lobby is served over RTSP on loopback (GStreamer's
RTSP server, with a password) and the daemon pulls it, as at a branch; arrivals reach a PAD
over the real Mosquitto.  With a substream, detection runs on the small stream and the small
faces are cropped from the main stream, opened for them."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import EdgeConfig
from edge.enrol.enrolment import enrol_folder
from edge.lobby.daemon import EdgeDaemon
from edge.store.database import open_configured
from edge.tools.synth import SynthSpec, generate_lobby, write_consenting_customers
from tests.daemon_fixtures import edge_client, edge_config, store_opener
from tests.e2e.test_daemon_e2e import Subscriber
from tests.mqtt_fixtures import wait_until
from tests.rtsp_fixtures import rtsp_camera

USER, PASSWORD = "operator", "lobby-Cam#2026"


@pytest.fixture(scope="module")
def lobby(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("rtsp-lobby")
    truth = generate_lobby(data_dir / "faces", out / "lobby.mp4", out / "truth.json", enrolled=3, strangers=2,
                           spec=SynthSpec(seconds=12.0, fps=10.0), seed=7,
                           background_video=data_dir / "video" / "royal_opera_house_walk_1080p.mp4")
    return out / "lobby.mp4", truth, write_consenting_customers(truth, out / "customers.csv")


@pytest.fixture
def broker(provisioned_branch, mosquitto_broker):
    mosquitto_broker(provisioned_branch)
    return provisioned_branch


def enrolled(tmp_path: Path, prov, engine, lobby, data_dir: Path, *, camera: dict[str, object]) -> EdgeConfig:
    _, truth, customers = lobby
    cfg = edge_config(tmp_path, prov, [camera])
    with open_configured(cfg.store, create=False) as store:
        report = enrol_folder(store, engine, cfg, data_dir / "faces", customers_csv=customers, actor="test")
    wanted = {p["customer_id"] for p in truth["people"] if p["enrolled"]}
    assert {row["customer_id"] for row in report.per_customer() if row["accepted"]} == wanted
    return cfg


def run_until_every_customer_arrived(cfg: EdgeConfig, engine, prov, tmp_path: Path, truth) -> EdgeDaemon:
    wanted = sorted(p["customer_id"] for p in truth["people"] if p["enrolled"])
    pad = Subscriber(prov, tmp_path)
    daemon = EdgeDaemon(cfg, engine, store_opener(cfg), edge_client(cfg))
    daemon.start()
    try:
        # The camera loops the walk: each customer is announced once (one visit), strangers never.
        assert wait_until(lambda: sorted(set(pad.customers())) == wanted, 240), \
            (pad.customers(), daemon.cameras[0].snapshot(), daemon.worker.pipeline.stats())
    finally:
        daemon.stop()
        pad.close()
    assert sorted(pad.customers()) == wanted  # once each
    assert all(arrival.camera_id == "lobby-1" for arrival, _ in pad.received)
    return daemon


def test_daemon_recognises_customers_pulled_from_an_rtsp_camera(
        tmp_path: Path, broker, engine, lobby, data_dir: Path, *, rtsp_cameras) -> None:
    video, truth, _ = lobby
    server = rtsp_camera(rtsp_cameras, video, streams={"main": (960, 540)}, user=USER, password=PASSWORD,
                         auth="digest")
    camera = {"name": "lobby-1", "source": server.url("main"), "analyse_fps": 10.0}
    cfg = enrolled(tmp_path, broker, engine, lobby, data_dir, camera=camera)
    daemon = run_until_every_customer_arrived(cfg, engine, broker, tmp_path, truth)
    assert daemon.final_status is not None
    assert daemon.final_status.cameras[0].last_error == ""


def test_substream_is_analysed_and_small_faces_are_cropped_from_the_main_stream(
        tmp_path: Path, broker, engine, lobby, data_dir: Path, *, rtsp_cameras) -> None:
    video, truth, _ = lobby
    # The substream is a quarter of the main stream: most faces there are too small to embed.
    server = rtsp_camera(rtsp_cameras, video, streams={"main": (960, 540), "sub": (480, 270)},
                         user=USER, password=PASSWORD)
    camera = {"name": "lobby-1", "source": server.url("main"), "substream": server.url("sub"),
              "analyse_fps": 10.0, "main_crop_below_px": 32.0}
    cfg = enrolled(tmp_path, broker, engine, lobby, data_dir, camera=camera)
    daemon = run_until_every_customer_arrived(cfg, engine, broker, tmp_path, truth)
    snap = daemon.cameras[0].snapshot()
    assert (snap["width"], snap["height"]) == (480, 270)  # detection and tracking ran on the substream
    stats = daemon.worker.pipeline.stats()
    assert stats["main_crops"] > 0 and stats["main_fetches"] > 0, stats
    main = snap["main"]
    assert main["opens"] >= 1 and main["fetches"] >= 1, main
    assert (main["width"], main["height"]) == (960, 540)
