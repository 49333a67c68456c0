"""`branch-edge doctor` as a new user meets it: `--db` names the store to check, and a
config without `[mqtt] host` (the demo's embedded broker) is said so, not probed."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.cli import main
from edge.config import StoreConfig
from edge.store.database import open_configured

KEY = "22" * 32


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BRANCH_EDGE_KEY", KEY)
    return tmp_path


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP port on loopback that would see the doctor's probe if it made one."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    sock.setblocking(False)
    yield sock
    sock.close()


def doctor(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, dict[str, str]]]:
    code = main(["doctor", "--models", "/nonexistent-models", "--json", *argv])
    report = json.loads(capsys.readouterr().out)
    return code, {c["name"]: c for c in report["checks"]}


def test_no_mqtt_host_means_the_embedded_broker_and_nothing_is_probed(
        folder: Path, listener: socket.socket, capsys: pytest.CaptureFixture[str]) -> None:
    port = listener.getsockname()[1]
    config = folder / "edge.toml"
    config.write_text(f"[mqtt]\nport = {port}\n", encoding="utf-8")  # a port, but no host
    _, checks = doctor(capsys, "--config", str(config))
    broker = checks["broker"]
    assert broker["status"] == "warn", broker
    assert "embedded" in broker["detail"] and "no broker probed" in broker["detail"]
    assert "[mqtt] host" in broker["fix"]
    with pytest.raises(BlockingIOError):  # doctor has returned: a probe would be queued by now
        listener.accept()


def test_db_option_checks_that_store(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store_path = folder / "elsewhere" / "branch.db"
    store_path.parent.mkdir()
    open_configured(StoreConfig(path=store_path)).close()
    code, checks = doctor(capsys, "--db", str(store_path))
    assert code == 1  # no models, no cameras: the store is what this test looks at
    assert checks["store"]["status"] == "ok", checks["store"]
    assert str(store_path) in checks["store"]["detail"]


def test_db_option_on_a_missing_file_fails_the_store_check_and_creates_nothing(
        folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = sorted(p.name for p in folder.iterdir())
    _, checks = doctor(capsys, "--db", "missing.db")
    assert checks["store"]["status"] == "fail"
    assert "missing.db" in checks["store"]["detail"]
    assert sorted(p.name for p in folder.iterdir()) == before
