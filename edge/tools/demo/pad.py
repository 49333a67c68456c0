"""The PAD in the demo: a ``branch-pad`` process that saves the card of every arrival.

The edge starts the PAD app as a separate process (``python -m ui.cli``) and never
imports ui: the two programs share only the MQTT contract.

``make demo`` (edge/tools/demo/branch.py) uses it like this::

    with demo_broker(cfg.mqtt) as bus:
        pad = PadProcess.start(bus, branch_id, out / "pad", out / "pad-cards", count=len(arrivals))
        pad.wait_connected()          # its broker session exists from here on
        ... publish the arrivals as the edge ...
        cards = pad.finish()           # PNG paths, one per arrival

The window opens on the display when there is one, offscreen otherwise.  On a display
it stays open after the arrivals (``interactive``): the demo waits for it to be closed
(:meth:`PadProcess.wait_closed`), keeping its broker up meanwhile.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from mqtt.client import SUBSCRIBED_LINE
from mqtt.config import MqttConfig

# the PAD hears arrivals once the broker has acknowledged its subscriptions
CONNECTED_LINE = SUBSCRIBED_LINE
LOG_TAIL = 12  # lines of the PAD's own log shown when it cannot start


def has_display(env: dict[str, str]) -> bool:
    """A window can be shown: a display is set and Qt is not told to draw offscreen."""
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")) and (
        env.get("QT_QPA_PLATFORM", "") not in ("offscreen", "minimal"))


def write_pad_config(bus: MqttConfig, branch_id: str, state: Path, *, device_id: str = "pad-rm-demo",
                     language: str = "zh-CN", rm_id: str = "RM-01") -> Path:
    """A pad.toml for RM ``rm_id``'s PAD on ``bus`` (the demo's broker: loopback, no TLS)."""
    state.mkdir(parents=True, exist_ok=True)
    lines = [f'branch_id = "{branch_id}"', 'role = "rm"', f'rm_id = "{rm_id}"', f'language = "{language}"',
             "sound = false",
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
    interactive: bool = False
    _connected: threading.Event = field(default_factory=threading.Event)
    log: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    @classmethod
    def start(cls, bus: MqttConfig, branch_id: str, state: Path, cards: Path, *, count: int,
              language: str = "zh-CN") -> PadProcess:
        """With a display the window stays open until closed; without one the PAD exits after
        saving ``count`` cards."""
        config = write_pad_config(bus, branch_id, state, language=language)
        env = dict(os.environ)
        interactive = has_display(env)
        args = [sys.executable, "-m", "ui.cli", "--config", str(config), "--screenshots", str(cards),
                "--log-level", "INFO"]
        if not interactive:
            env["QT_QPA_PLATFORM"] = "offscreen"
            args += ["--exit-after", str(count)]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        pad = cls(proc, cards, interactive)
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
        """True once connected; False when it exits first or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while not self._connected.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                return self._connected.is_set()
        return True

    def failure(self) -> str:
        """Why it did not start, from its exit status and the end of its own log."""
        code = self.proc.poll()
        if code is None:
            status = "did not connect to the demo's broker"
        elif code < 0:
            status = f"was killed by signal {signal.Signals(-code).name}"
        else:
            status = f"exited with status {code}"
        if self._reader is not None:
            self._reader.join(2)
        tail = [line for line in self.log if CONNECTED_LINE not in line][-LOG_TAIL:]
        return "\n".join([f"the PAD app {status}", *(f"  | {line}" for line in tail)])

    def wait_closed(self) -> None:
        """Wait for the window to be closed; Ctrl-C closes it."""
        try:
            self.proc.wait()
        except KeyboardInterrupt:
            self.proc.terminate()
            self.proc.wait(10)

    def finish(self, timeout: float = 30.0) -> list[Path]:
        """Wait for the PAD to save every card and exit (stop it when it stays open); the PNGs
        it wrote."""
        try:
            if self.interactive:
                self.proc.terminate()
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        if self._reader is not None:
            self._reader.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return sorted(self.cards.glob("card-*.png"))
