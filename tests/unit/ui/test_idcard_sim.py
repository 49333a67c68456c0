"""The reader simulator end to end: `branch-pad idcard read` over a real pty, with each fault."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.mqtt_fixtures import wait_until
from ui.devices.idcard import protocol
from ui.devices.idcard.card import CardReadError
from ui.devices.idcard.frames import Command
from ui.devices.idcard.protocol import FIND, ReaderSession, Timeouts
from ui.devices.idcard.reader import IdReader, ReaderEvent, open_transport, read_card
from ui.devices.idcard.samples import sample_cards, write_deck
from ui.devices.idcard.simulator import HidSimulator, PtySimulator, SimulatorError, load_cards
from ui.devices.idcard.transport import HidTransport, SerialTransport

TODAY = dt.date.today()


@pytest.fixture(scope="module")
def deck_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_deck(tmp_path_factory.mktemp("deck"), sample_cards(TODAY), remove_after=0.2)


@pytest.fixture
def sim(deck_file: Path) -> Iterator[PtySimulator]:
    with PtySimulator(load_cards(deck_file)) as simulator:
        yield simulator


def branch_pad(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ui.cli", "idcard", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_cli_reads_a_card_and_writes_its_photo(sim: PtySimulator, deck_file: Path, tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    result = branch_pad("read", "--port", sim.path, "--json", "--decoder", f"simulator:{deck_file}",
                        "--photo-out", str(photo), "--show-id-number")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    expected = sample_cards(TODAY)[0]
    assert out["card"]["id_number"] == expected.id_number
    assert out["card"]["name"] == expected.name
    assert out["card"]["masked_id"] == expected.masked_id
    assert out["valid"] is True and out["problems"] == []
    assert out["card"]["photo"] == str(photo)
    image = cv2.imdecode(np.frombuffer(photo.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (126, 102, 3)


def test_cli_text_output_masks_the_number_and_omits_the_photo(sim: PtySimulator) -> None:
    result = branch_pad("read", "--port", sim.path)
    assert result.returncode == 0, result.stderr
    card = sample_cards(TODAY)[0]
    assert card.masked_id in result.stdout
    assert card.id_number not in result.stdout
    assert "no photo decoder configured" in result.stdout


def test_successive_reads_walk_through_the_deck(sim: PtySimulator) -> None:
    expected = sample_cards(TODAY)
    got = []
    for _ in expected:
        got.append(read_card(sim.path, timeout=2.0).id_number)
    assert got == [c.id_number for c in expected]
    assert sim.sim.reads == len(expected)


def test_fingerprint_read_and_appended_address(tmp_path: Path) -> None:
    from dataclasses import replace

    cards = sample_cards(TODAY)[:2]
    moved = replace(cards[0], appended_address="迁入示例市示例区3号")
    deck = load_cards(write_deck(tmp_path, [moved, cards[1]], remove_after=0.3))
    deck.cards[0].fingerprint = True
    with PtySimulator(deck) as simulator:
        session = ReaderSession(SerialTransport(simulator.path))
        try:
            with_fp = session.read_card(wait=1.0, fingerprint=True)
            assert len(with_fp.fingerprint) == 1024
            assert session.read_appended_address() == "迁入示例市示例区3号"
            assert "fingerprint" not in json.dumps(with_fp.to_dict(), ensure_ascii=False)
            without_fp = session.read_card(wait=2.0, fingerprint=True)
            assert (without_fp.id_number, without_fp.fingerprint) == (cards[1].id_number, b"")
            assert session.read_appended_address() == ""
        finally:
            session.transport.close()


def test_hid_variant_reads_the_same_cards(deck_file: Path) -> None:
    deck = load_cards(deck_file)
    with HidSimulator(deck) as hid:
        card = read_card(hid.host_fd, timeout=2.0, decoder=deck.decoder(), hid=True)
    assert card.id_number == sample_cards(TODAY)[0].id_number
    assert card.photo_jpeg is not None


@pytest.mark.parametrize(("fault", "value", "code"), [
    ("no_card", 1.0, "no_card"),
    ("read_fail", 1.0, "read_failed"),
    ("auth_fail", 1.0, "sam_auth_failed"),
    ("sam_fail", 1.0, "sam_self_test_failed"),
    ("bad_checksum", 1.0, "bad_frame"),
    ("truncated", 1.0, "truncated"),
    ("slow", 1.0, "timeout"),
])
def test_each_fault_gives_its_clear_error(sim: PtySimulator, fault: str, value: float, code: str) -> None:
    sim.sim.set_fault(fault, value)
    result = branch_pad("read", "--port", sim.path, "--timeout", "0.3", "--json")
    assert result.returncode == 2
    out = json.loads(result.stdout)
    assert (out["ok"], out["error"]) == (False, code)
    assert result.stderr.startswith("branch-pad idcard: ")
    assert "Traceback" not in result.stderr


def test_slow_replies_within_the_timeouts_still_read(sim: PtySimulator) -> None:
    sim.sim.set_fault("slow", 0.2)
    assert read_card(sim.path, timeout=2.0).id_number == sample_cards(TODAY)[0].id_number


def test_line_noise_before_every_reply_is_skipped(sim: PtySimulator) -> None:
    sim.sim.set_fault("garbage")
    assert read_card(sim.path, timeout=2.0).id_number == sample_cards(TODAY)[0].id_number


def test_a_card_left_on_the_reader_is_not_read_twice(sim: PtySimulator) -> None:
    sim.sim.set_fault("card_not_removed")
    assert branch_pad("read", "--port", sim.path).returncode == 0
    result = branch_pad("read", "--port", sim.path, "--timeout", "0.5", "--json")
    assert result.returncode == 2
    assert json.loads(result.stdout)["error"] == "no_card"
    session = ReaderSession(SerialTransport(sim.path))
    try:
        sim.sim.place(1)  # a new card: readable once
        assert session.read_card(wait=1.0).card_type == " "
        with pytest.raises(CardReadError) as info:
            session.read_card(wait=0.3)
        assert info.value.code == "card_not_removed"
        assert "lift it off" in str(info.value)
    finally:
        session.transport.close()


def test_missing_port_is_a_clear_error(tmp_path: Path) -> None:
    result = branch_pad("read", "--port", str(tmp_path / "ttyNONE"), "--json")
    assert result.returncode == 2
    assert json.loads(result.stdout)["error"] == "port_unavailable"


def test_card_that_fails_validation_exits_1(tmp_path: Path) -> None:
    from dataclasses import replace

    expired = replace(sample_cards(TODAY)[0], valid_from="20000101", valid_to="20100101")
    with PtySimulator(load_cards(write_deck(tmp_path, [expired]))) as simulator:
        result = branch_pad("read", "--port", simulator.path, "--json")
    assert result.returncode == 1
    out = json.loads(result.stdout)
    assert [p["code"] for p in out["problems"]] == ["expired"]
    assert out["problems"][0]["message_zh"] == "证件已过有效期"


def test_bad_card_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "cards.toml"
    bad.write_text('[[cards]]\ntype = "martian"\n', encoding="utf-8")
    with pytest.raises(SimulatorError, match="card type"):
        load_cards(bad)
    bad.write_text('[faults]\nexplode = 1\n', encoding="utf-8")
    result = branch_pad("simulate", "--cards", str(bad))
    assert result.returncode == 2
    assert "unknown faults" in result.stderr


def test_samples_command_writes_a_deck_with_a_given_face(tmp_path: Path) -> None:
    face = tmp_path / "face.png"
    stripes = np.zeros((300, 200, 3), np.uint8)
    stripes[:, 100:] = 255  # left half black, right half white: survives crop and resize
    cv2.imwrite(str(face), stripes)
    result = branch_pad("samples", "--out", str(tmp_path / "deck"), "--photo", str(face), "--json")
    assert result.returncode == 0, result.stderr
    deck = load_cards(Path(json.loads(result.stdout)["cards_file"]))
    assert len(deck.cards) == len(sample_cards(TODAY))
    photo = cv2.imdecode(np.frombuffer(deck.decoder().decode(deck.cards[0].card.photo_wlt), np.uint8),
                         cv2.IMREAD_GRAYSCALE)
    assert photo.shape == (126, 102)
    assert photo[:, :40].mean() < 30 and photo[:, 62:].mean() > 225
    assert branch_pad("samples", "--out", str(tmp_path / "d2"), "--photo", str(tmp_path / "nope.jpg")
                      ).returncode == 2


def test_simulate_command_serves_a_pty_until_terminated(deck_file: Path) -> None:
    command = [sys.executable, "-m", "ui.cli", "idcard", "simulate", "--cards", str(deck_file), "--json"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            port = json.loads(proc.stdout.readline())["port"]
            card = read_card(port, timeout=3.0)
            assert card.id_number == sample_cards(TODAY)[0].id_number
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=10)
        assert proc.returncode == 0, stderr


def wait_event(reader: IdReader, kind: str, seconds: float = 5.0) -> ReaderEvent:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        event = reader.poll()
        if event is not None and event.kind == kind:
            return event
        time.sleep(0.02)
    raise AssertionError(f"no {kind} event within {seconds} s (status {reader.status})")


def counted_finds(sim: PtySimulator, monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """How many find-card commands the simulated reader has answered so far."""
    finds = 0
    handle = sim.sim.handle

    def counting(command: Command) -> bytes:
        nonlocal finds
        finds += (command.cmd, command.para) == (FIND.cmd, FIND.para)
        return handle(command)

    monkeypatch.setattr(sim.sim, "handle", counting)
    return lambda: finds


def test_poll_never_waits_for_the_worker() -> None:
    """poll() answers at once while the worker is stuck opening the port: were it to wait for
    the worker, it would return the error the worker reports once the valve opens."""
    inside, valve = threading.Event(), threading.Event()

    def stuck() -> SerialTransport:
        inside.set()
        valve.wait(60)
        raise OSError("the port is gone")

    reader = IdReader(stuck)
    reader.start()
    safety = threading.Timer(30, valve.set)
    safety.start()
    try:
        assert inside.wait(10)
        connecting = reader.poll()
        assert connecting is not None and connecting.status == "connecting"
        assert reader.poll() is None
        assert not valve.is_set()
    finally:
        safety.cancel()
        valve.set()
        reader.stop()


def test_polling_reader_reports_each_card_once(sim: PtySimulator, deck_file: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    sim.sim.set_fault("card_not_removed")
    finds = counted_finds(sim, monkeypatch)
    reader = IdReader(lambda: open_transport(sim.path), load_cards(deck_file).decoder(),
                      Timeouts(poll_interval=0.05))
    reader.start()
    try:
        first = wait_event(reader, "card")
        assert first.card is not None and first.card.photo_jpeg is not None
        # The card stays on the reader: five more looks at the field, and no second read.
        looked = finds()
        assert wait_until(lambda: finds() >= looked + 5, 10), "the reader stopped polling"
        events = list(iter(reader.poll, None))
        assert [e.kind for e in events if e.kind == "card"] == []
        assert sim.sim.reads == 1
        assert reader.status == "remove_card"
        sim.sim.set_fault("card_not_removed", 0)
        sim.sim.place(2)
        second = wait_event(reader, "card")
        assert second.card is not None and second.card.card_type == "J"
    finally:
        reader.stop()
    assert reader.status == "stopped"


def test_polling_reader_reports_errors_and_recovers(sim: PtySimulator) -> None:
    sim.sim.set_fault("read_fail")
    reader = IdReader(lambda: open_transport(sim.path), None, Timeouts(poll_interval=0.05))
    reader.start()
    try:
        error = wait_event(reader, "error")
        assert error.error is not None and error.error.code == "read_failed"
        sim.sim.set_fault("read_fail", 0)
        assert wait_event(reader, "card").card is not None
    finally:
        reader.stop()


def test_hid_transport_adds_back_preamble_and_length() -> None:
    import socket

    device, host = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    transport = HidTransport(host.detach())
    try:
        transport.write(bytes.fromhex("AAAAAA96690003200122"))
        assert device.recv(64) == bytes.fromhex("0003200122")
        device.send(bytes.fromhex("00009F0000000097"))
        assert transport.read(1.0) == bytes.fromhex("AAAAAA9669000800009F0000000097")
        assert transport.read(0.05) == b""
    finally:
        transport.close()
        device.close()


class ScriptedLine:
    """A serial line that delivers scripted chunks at set times after each write.

    Time is virtual: a read that waits ``timeout`` moves the line's clock on by that much,
    and the session under test reads the same clock (see ``on_the_line_clock``), so what is
    checked is when the session gives up, not how fast this machine is."""

    def __init__(self, script: list[tuple[float, bytes]]) -> None:
        self.script, self.sent = script, []
        self._queue: list[tuple[float, bytes]] = []
        self.now = self._start = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def write(self, frame: bytes) -> None:
        self.sent.append(frame)
        self._start, self._queue = self.now, list(self.script)

    def read(self, timeout: float) -> bytes:
        self.now += timeout
        due = [c for at, c in self._queue if self.now - self._start >= at]
        self._queue = [(at, c) for at, c in self._queue if self.now - self._start < at]
        return b"".join(due)

    def discard_input(self) -> None:
        self._queue = []

    def close(self) -> None:
        pass


def on_the_line_clock(line: ScriptedLine, monkeypatch: pytest.MonkeyPatch) -> ScriptedLine:
    monkeypatch.setattr(protocol, "time", line)
    return line


def test_noise_then_a_late_reply_is_not_mistaken_for_a_cut_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    from ui.devices.idcard.frames import Response

    line = on_the_line_clock(
        ScriptedLine([(0.0, b"\x13\x37\x00\xaa"), (0.8, Response(0x9F, bytes(4)).encode())]), monkeypatch)
    assert ReaderSession(line, Timeouts(find=2.0)).find() is True
    assert 0.8 <= line.now < 2.0  # the reply 0.8 s after the noise was waited for


def test_a_frame_that_stops_mid_way_fails_after_the_stall_not_the_full_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ui.devices.idcard.frames import Response

    line = on_the_line_clock(ScriptedLine([(0.0, Response(0x90, bytes(100)).encode()[:40])]), monkeypatch)
    with pytest.raises(CardReadError) as info:
        ReaderSession(line, Timeouts(read=5.0, stall=0.3)).read_blocks()
    assert info.value.code == "truncated"
    assert line.now < 1.0  # line seconds: given up after the 0.3 s stall, not the 5 s read timeout
