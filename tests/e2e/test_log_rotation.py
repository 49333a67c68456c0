"""Log files: rotated at ``[logging] max_bytes`` keeping ``backups`` files, stderr
reduced to warnings, and a full daemon run over enrolled customers leaves no name
or customer id in any record at INFO or above (ids of events and visits only)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.lobby.daemon import EdgeDaemon
from edge.logging_setup import configure_logging
from tests.daemon_fixtures import edge_client, store_opener
from tests.e2e.test_daemon_e2e import enrolled_branch, lobby, running_broker  # noqa: F401  (fixtures)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def records(folder: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(folder.glob("edge.log*"))
            for line in path.read_text(encoding="utf-8").splitlines()]


def test_file_rotates_and_stderr_keeps_warnings_only(tmp_path: Path, restore_logging) -> None:
    stderr = io.StringIO()
    configure_logging("INFO", "text", stderr, file=tmp_path / "logs" / "edge.log", max_bytes=1000, backups=2)
    log = logging.getLogger("edge.test")
    for i in range(60):
        log.info("event %d", i, extra={"event_id": f"e-{i}"})
    log.warning("camera down")
    files = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert files == ["edge.log", "edge.log.1", "edge.log.2"]  # older ones deleted
    assert all((tmp_path / "logs" / f).stat().st_size <= 1000 for f in files)
    assert "event 59" in (tmp_path / "logs" / "edge.log.1").read_text() + \
        (tmp_path / "logs" / "edge.log").read_text()
    assert stderr.getvalue().count("\n") == 1 and "camera down" in stderr.getvalue()


@pytest.mark.usefixtures("restore_logging")
def test_daemon_logs_rotate_and_name_nobody(
        tmp_path: Path, provisioned_branch, running_broker, engine, lobby) -> None:  # noqa: F811
    _, truth, customers_csv = lobby
    cfg = enrolled_branch(tmp_path, provisioned_branch, engine, lobby, running_broker)
    configure_logging("INFO", "json", io.StringIO(), file=tmp_path / "logs" / "edge.log",
                      max_bytes=1000, backups=20)
    daemon = EdgeDaemon(cfg, engine, store_opener(cfg), edge_client(cfg), exit_when_sources_end=True)
    assert daemon.run() == 0
    assert daemon.worker.arrivals == 3
    assert (tmp_path / "logs" / "edge.log.1").exists()  # it rotated
    logged = records(tmp_path / "logs")
    assert sum(r["msg"] == "arrival queued" for r in logged) == 3  # nothing lost in rotation
    assert all(r["level"] in ("INFO", "WARNING", "ERROR") for r in logged)
    text = "\n".join(json.dumps(r, ensure_ascii=False) for r in logged)
    people = truth["people"]
    secrets = {p["customer_id"] for p in people if p["enrolled"]} | {p["label"] for p in people}
    secrets |= {p["label"].replace("_", " ") for p in people}
    secrets |= {row.split(",")[2] for row in customers_csv.read_text().splitlines()[1:]}  # display names
    assert not [s for s in secrets if s in text]
