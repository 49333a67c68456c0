"""The PAD in the demo: a ``branch-pad`` process that saves the card of every arrival.

The edge starts the PAD app as a separate process (``python -m ui.cli``) and never
imports ui: the two programs share only the MQTT contract.

``make demo`` (edge/tools/demo/branch.py) uses it like this::

    with demo_broker(cfg.mqtt) as bus:
        pad = PadProcess.start(bus, branch_id, out / "pad", out / "pad-cards", count=len(arrivals))
        pad.wait_connected()          # its broker session exists from here on
        ... publish the arrivals as the edge ...
        cards = pad.finish()           # PNG paths, one per arrival

The window opens on the display when there is one, offscreen otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from mqtt.config import MqttConfig

CONNECTED_LINE = "connected to broker"


def write_pad_config(bus: MqttConfig, branch_id: str, state: Path, device_id: str = "pad-rm-demo",
                     language: str = "zh-CN") -> Path:
    """A pad.toml for an RM PAD on ``bus`` (the demo's broker: loopback, no TLS)."""
    state.mkdir(parents=True, exist_ok=True)
    lines = [f'branch_id = "{branch_id}"', 'role = "rm"', f'language = "{language}"', "sound = false",
             "[mqtt]", f'host = "{bus.host or "127.0.0.1"}"', f"port = {bus.port}",
             f'device_id = "{device_id}"', f'client_id = "{device_id}-{branch_id}"',
             f'outbox_path = "{state / "pad-outbox.db"}"', f'seen_ids_path = "{state / "pad-seen.db"}"',
             "reconnect_min_s = 0.1", "reconnect_max_s = 2.0"]
    path = state / "pad.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass
class PadProcess:
    proc: subprocess.Popen[str]
    cards: Path
    _connected: threading.Event = field(default_factory=threading.Event)
    log: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    @classmethod
    def start(cls, bus: MqttConfig, branch_id: str, state: Path, cards: Path, *, count: int,
              language: str = "zh-CN") -> PadProcess:
        config = write_pad_config(bus, branch_id, state, language=language)
        args = [sys.executable, "-m", "ui.cli", "--config", str(config), "--screenshots", str(cards),
                "--exit-after", str(count), "--log-level", "INFO"]
        env = dict(os.environ)
        if not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
            env.setdefault("QT_QPA_PLATFORM", "offscreen")  # a window when there is a display
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        pad = cls(proc, cards)
        pad._reader = threading.Thread(target=pad._read_log, name="pad-log", daemon=True)
        pad._reader.start()
        return pad

    def _read_log(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line.rstrip())
            if CONNECTED_LINE in line:
                self._connected.set()

    def wait_connected(self, timeout: float = 20.0) -> bool:
        return self._connected.wait(timeout)

    def finish(self, timeout: float = 30.0) -> list[Path]:
        """Wait for the PAD to save every card and exit; the PNGs it wrote."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        if self._reader is not None:
            self._reader.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return sorted(self.cards.glob("card-*.png"))
