"""The daemon's Prometheus endpoint: scraped over HTTP while the real daemon runs a
synthetic lobby of enrolled customers; the counters and histograms follow what the
daemon did, the endpoint is local only, and it goes away with the daemon."""

from __future__ import annotations

import logging
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge.lobby.daemon import EdgeDaemon
from tests.daemon_fixtures import edge_client, edge_config, store_opener
from tests.e2e.test_daemon_e2e import enrolled_branch, lobby, running_broker  # noqa: F401  (fixtures)
from tests.mqtt_fixtures import wait_until


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_counters_and_latencies_follow_the_daemon(
        tmp_path: Path, provisioned_branch, running_broker, engine, lobby) -> None:  # noqa: F811
    cfg = enrolled_branch(tmp_path, provisioned_branch, engine, lobby, running_broker, metrics={"port": 0})
    daemon = EdgeDaemon(cfg, engine, store_opener(cfg), edge_client(cfg), exit_when_sources_end=True)
    daemon.start()
    try:
        assert daemon.metrics_server is not None
        assert daemon.metrics_server.server.server_address[0] == "127.0.0.1"
        port = daemon.metrics_server.port
        first = scrape(port)
        assert wait_until(daemon.sources_done, 90)
        last = scrape(port)
    finally:
        daemon.stop()
    camera = (("camera", "lobby-1"),)
    analysed = daemon.worker.analysed["lobby-1"]
    assert first.get(("branch_edge_arrivals_total", camera), 0) == 0
    assert last[("branch_edge_frames_analysed_total", camera)] == analysed > 50
    assert last[("branch_edge_pipeline_frames_total", ())] == analysed
    assert last[("branch_edge_faces_detected_total", ())] > first[("branch_edge_faces_detected_total", ())]
    assert last[("branch_edge_decisions_total", (("outcome", "customer"),))] >= 3
    assert last[("branch_edge_arrivals_total", camera)] == daemon.worker.arrivals == 3
    assert last[("branch_edge_arrival_publish_seconds_count", ())] == 3
    assert last[("branch_edge_frame_to_result_seconds_count", ())] == analysed
    assert 0 < last[("branch_edge_frame_to_result_seconds_sum", ())] < analysed * 5
    assert ("branch_edge_outbox_depth", ()) in last
    assert last[("process_open_fds", ())] > 10 and last[("process_resident_memory_bytes", ())] > 1e8
    with pytest.raises(urllib.error.URLError):  # closed with the daemon
        scrape(port)
    assert not [t.name for t in daemon.threads() if t.is_alive()]


def test_a_taken_port_is_logged_and_recognition_goes_on(
        tmp_path: Path, provisioned_branch, mosquitto_broker, engine, caplog) -> None:
    from tests.integration.test_capture import write_video

    mosquitto_broker(provisioned_branch)
    video = write_video(tmp_path / "v.mp4", 20, fps=10, size=(320, 240))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = edge_config(tmp_path, provisioned_branch,
                          [{"name": "lobby-1", "source": str(video), "loop": True, "analyse_fps": 5}],
                          metrics={"port": port})
        daemon = EdgeDaemon(cfg, engine, store_opener(cfg), edge_client(cfg))
        with caplog.at_level(logging.ERROR, logger="edge.lobby.daemon"):
            daemon.start()
            try:
                assert wait_until(lambda: daemon.worker.analysed["lobby-1"] > 2, 15)
                assert daemon.metrics_server is None
            finally:
                daemon.stop()
    assert any("metrics endpoint not started" in r.getMessage() for r in caplog.records)


def test_disabled_metrics_open_no_port(tmp_path: Path, provisioned_branch, engine) -> None:
    cfg = edge_config(tmp_path, provisioned_branch, [], metrics={"enabled": False, "port": 0})
    daemon = EdgeDaemon(cfg, engine, store_opener(cfg), edge_client(cfg))
    daemon._start_metrics()
    assert daemon.metrics_server is None
