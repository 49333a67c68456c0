"""Helpers shared by the daemon, doctor and end-to-end tests: a keyed store, an
edge config pointing at a provisioned Mosquitto, and a TOML writer for the CLI."""

from __future__ import annotations

import queue
from pathlib import Path
from typing import Any

from edge.config import EdgeConfig, parse_config
from edge.store.crypto import generate_key_file
from edge.store.database import Store, open_configured
from mqtt.client import BranchClient, Identity
from mqtt.messages import Message
from mqtt.provision.run import ProvisionResult
from mqtt.receiver import Receiver
from tests.mqtt_fixtures import client_config


def edge_config(tmp_path: Path, prov: ProvisionResult, cameras: list[dict[str, Any]],
                **sections: dict[str, Any]) -> EdgeConfig:
    """Config for device edge-1 of ``prov`` with a fresh keyed store under ``tmp_path``."""
    key = tmp_path / "store.key"
    if not key.exists():
        generate_key_file(key)
    mqtt = client_config(prov, "edge-1", tmp_path / "edge-state")
    data: dict[str, Any] = {
        "branch_id": prov.branch_id,
        "store": {"path": str(tmp_path / "edge.db"), "key_file": str(key)},
        "mqtt": mqtt.model_dump(mode="json"),
        "cameras": cameras,
        "daemon": {"status_interval_s": 1.0, "gallery_check_s": 0.2},
    }
    data.update(sections)
    cfg = parse_config(data)
    with open_configured(cfg.store):  # create it
        pass
    return cfg


def store_opener(cfg: EdgeConfig):  # -> Callable[[], Store]
    def open_store() -> Store:
        return open_configured(cfg.store, create=False)

    return open_store


def edge_client(cfg: EdgeConfig) -> BranchClient:
    return BranchClient(cfg.mqtt, Identity(cfg.branch_id, cfg.mqtt.device_id, "edge", "test"))


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def write_toml(cfg: EdgeConfig, path: Path) -> Path:
    """The config as TOML (the sections the daemon tests use)."""
    data = cfg.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    lines = [f"branch_id = {toml_value(cfg.branch_id)}"]
    for name, section in data.items():
        if name in ("branch_id", "cameras"):
            continue
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in section.items()]
    for camera in data.get("cameras", []):
        lines.append("[[cameras]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in camera.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def next_message(receiver: Receiver, kind: type[Message], timeout: float,
                 accept: Any = None) -> Any:
    """The next message of ``kind`` (passing ``accept``) the receiver gets, or None."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            message = receiver.queue.get(timeout=0.1).message
        except queue.Empty:
            continue
        if isinstance(message, kind) and (accept is None or accept(message)):
            return message
    return None
