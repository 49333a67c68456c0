"""Reader faults the protocol did not plan for: every one is a clean CardReadError with exit 2,
the polling reader (and the teller page above it) survives and reconnects, and the
reader is a serial device, never a network URL.

The simulator answers on a real pseudo-terminal; the parser is fuzzed through a
scripted in-memory line so that only its own error can come out.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ui.devices.idcard.card import CardReadError, IdCard, encode_text
from ui.devices.idcard.frames import PREAMBLE, Response, xor
from ui.devices.idcard.protocol import ReaderSession, Timeouts
from ui.devices.idcard.reader import IdReader, backoff_delay, open_transport, read_card
from ui.devices.idcard.samples import sample_cards, write_deck
from ui.devices.idcard.simulator import SHORT_REPLY, PtySimulator, load_cards
from ui.devices.idcard.transport import ALLOW_URLS_ENV, SerialTransport

TODAY = dt.date.today()


@pytest.fixture(scope="module")
def deck_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_deck(tmp_path_factory.mktemp("deck"), sample_cards(TODAY), remove_after=0.2)


@pytest.fixture
def sim(deck_file: Path) -> Iterator[PtySimulator]:
    with PtySimulator(load_cards(deck_file)) as simulator:
        yield simulator


def branch_pad(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ui.cli", "idcard", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def events_until(reader: IdReader, wanted: str, seconds: float = 20.0) -> list:
    """Every event up to and including the first of kind ``wanted`` (a condition wait)."""
    seen, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        event = reader.poll()
        if event is None:
            time.sleep(0.02)
            continue
        seen.append(event)
        if event.kind == wanted:
            return seen
    raise AssertionError(f"no {wanted} event within {seconds} s; saw {[e.status for e in seen]}")


# --- a well-formed frame too short for its status ---------------------------------------------


def test_a_short_reply_is_a_clean_error_with_exit_2(sim: PtySimulator) -> None:
    sim.sim.set_fault("short_reply")
    result = branch_pad("read", "--port", sim.path, "--json", "--timeout", "1")
    assert result.returncode == 2, result.stderr
    out = json.loads(result.stdout)
    assert (out["ok"], out["error"]) == (False, "bad_reply")
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("branch-pad idcard: The reader's answer was malformed")
    with pytest.raises(CardReadError) as caught:
        read_card(sim.path, timeout=1.0)
    assert caught.value.code == "bad_reply"


def test_the_polling_reader_survives_a_short_reply_and_reads_the_next_card(sim: PtySimulator) -> None:
    sim.sim.set_fault("short_reply")
    reader = IdReader(lambda: open_transport(sim.path), None, Timeouts(poll_interval=0.05))
    reader.start()
    try:
        first = events_until(reader, "error")[-1]
        assert first.error is not None and first.error.code == "bad_reply"
        events_until(reader, "error")  # it reconnected and met the fault again: the thread lives
        assert reader.running and reader.failures >= 2
        sim.sim.set_fault("short_reply", 0)
        card = events_until(reader, "card")[-1].card
        assert card is not None and card.id_number == sample_cards(TODAY)[0].id_number
    finally:
        reader.stop()


class ExplodingLine:
    """A transport whose read raises something no reader code expects."""

    def __init__(self) -> None:
        self.closed = False

    def write(self, frame: bytes) -> None:
        pass

    def read(self, timeout: float) -> bytes:
        raise RuntimeError("driver bug")

    def discard_input(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True
        raise OSError("already gone")


def test_an_unexpected_exception_is_reported_logged_once_and_retried(
        sim: PtySimulator, caplog: pytest.LogCaptureFixture) -> None:
    lines: list[object] = []

    def factory():  # type: ignore[no-untyped-def]
        lines.append(ExplodingLine() if len(lines) < 3 else open_transport(sim.path))
        return lines[-1]

    reader = IdReader(factory, None, Timeouts(poll_interval=0.01))
    reader.start()
    try:
        seen = events_until(reader, "card")
    finally:
        reader.stop()
    errors = [e.error for e in seen if e.kind == "error"]
    assert [e.code for e in errors] == ["reader_fault"] * 3
    assert "RuntimeError" in str(errors[0])
    assert sum("RuntimeError" in r.getMessage() for r in caplog.records) == 1
    assert all(line.closed for line in lines[:3])  # type: ignore[attr-defined]


def test_backoff_doubles_from_the_poll_interval_to_a_cap() -> None:
    assert [backoff_delay(n, 0.1) for n in (1, 2, 3, 4)] == [0.1, 0.2, 0.4, 0.8]
    assert backoff_delay(7, 0.1) == 5.0 and backoff_delay(10_000, 0.1) == 5.0


# --- the teller page shows the error and recovers ---------------------------------------------


@pytest.mark.qt_log_ignore("does not support propagateSizeHints")
def test_the_teller_page_shows_a_reader_fault_and_then_the_card(qtbot, sim: PtySimulator) -> None:
    from ui.bridge import PadBridge
    from ui.pages.base import PageContext
    from ui.pages.teller import TellerPage
    from ui.state.config import PadConfig
    from ui.state.i18n import Texts
    from ui.widgets.screen import Metrics

    config = PadConfig.model_validate({"branch_id": "b1", "role": "teller",
                                       "mqtt": {"device_id": "teller-1"}})
    context = PageContext(config, PadBridge(), lambda _m: None, Texts("en"), Metrics(96))
    sim.sim.set_fault("short_reply")
    reader = IdReader(lambda: open_transport(sim.path), None, Timeouts(poll_interval=0.05))
    page = TellerPage(context, reader=reader)
    qtbot.addWidget(page)
    try:
        shown = "read failed: The reader's answer was malformed"
        qtbot.waitUntil(lambda: shown in page.reader_label.text(), timeout=20_000)
        seen = reader.failures
        qtbot.waitUntil(lambda: reader.failures >= seen + 2, timeout=20_000)  # it keeps retrying
        assert shown in page.reader_label.text()  # the reason stays on screen while it reconnects
        sim.sim.set_fault("short_reply", 0)
        qtbot.waitUntil(lambda: page.card is not None, timeout=20_000)
        assert page.card is not None and page.card.id_number == sample_cards(TODAY)[0].id_number
        assert reader.running
    finally:
        page.close_devices()


# --- serial ports only ---------------------------------------------------------------------


@pytest.mark.parametrize("port", ["socket://127.0.0.1:9", "rfc2217://127.0.0.1:9", "loop://",
                                  "spy://loop://", "hwgrep://.*", "alt://loop://?class=Serial"])
def test_network_and_virtual_urls_are_refused(port: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOW_URLS_ENV, raising=False)
    with pytest.raises(CardReadError, match="network URL") as caught:
        open_transport(port)
    assert caught.value.code == "bad_port"
    result = branch_pad("read", "--port", port, "--timeout", "0.2")
    assert result.returncode == 2 and "network URL" in result.stderr


def test_a_url_is_opened_only_when_a_test_allows_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW_URLS_ENV, "1")
    transport = SerialTransport("loop://")
    try:
        transport.write(b"ping")
        assert transport.read(1.0) == b"ping"
    finally:
        transport.close()


# --- fuzzing the reply parser ------------------------------------------------------------------


def frame(body: bytes) -> bytes:
    length = (len(body) + 1).to_bytes(2, "big")
    return PREAMBLE + length + body + bytes([xor(length + body)])


class ScriptedReader:
    """An in-memory line: each command is answered with the next scripted reply bytes."""

    def __init__(self, replies: list[bytes]) -> None:
        self.replies, self.pending = list(replies), b""

    def write(self, frame: bytes) -> None:
        self.pending = self.replies.pop(0) if self.replies else b""

    def read(self, timeout: float) -> bytes:
        data, self.pending = self.pending, b""
        return data

    def discard_input(self) -> None:
        pass

    def close(self) -> None:
        pass


FAST = Timeouts(find=0.01, select=0.01, read=0.01, fingerprint=0.01, sam=0.01, poll_interval=0.0, stall=0.0)
CARD: IdCard = sample_cards(TODAY)[0]
GOOD = [Response(0x9F, bytes(4)).encode(), Response(0x90, bytes(8)).encode()]


def read_body(data: bytes) -> bytes:
    return bytes([0, 0, 0x90]) + data


def length_words(text: bytes, photo: bytes) -> bytes:
    return len(text).to_bytes(2, "big") + len(photo).to_bytes(2, "big") + text + photo


REPLY = st.one_of(
    st.binary(max_size=40).map(frame),  # any well-formed frame: short bodies, odd statuses
    st.binary(max_size=60),  # line noise
    st.binary(max_size=300).map(lambda d: frame(read_body(d))),  # OK status, any read data
    st.tuples(st.binary(min_size=256, max_size=256), st.binary(max_size=64)).map(
        lambda tp: frame(read_body(length_words(*tp)))),  # consistent lengths, random text block
    st.just(SHORT_REPLY),
)


@given(replies=st.lists(REPLY, min_size=0, max_size=4), prefix=st.integers(0, 2))
def test_any_reply_sequence_gives_a_card_or_a_card_read_error(replies: list[bytes], prefix: int) -> None:
    session = ReaderSession(ScriptedReader(GOOD[:prefix] + replies), FAST)
    try:
        card = session.read_card(wait=0.0)
    except CardReadError as err:
        refusal = err
    else:
        assert isinstance(card, IdCard)
        return
    assert refusal.code and str(refusal)


@given(data=st.data())
def test_mutated_text_blocks_give_a_card_or_a_card_read_error(data: st.DataObject) -> None:
    block = bytearray(encode_text(data.draw(st.sampled_from(sample_cards(TODAY)))))
    for _ in range(data.draw(st.integers(1, 12))):
        block[data.draw(st.integers(0, len(block) - 1))] = data.draw(st.integers(0, 255))
    reply = frame(read_body(length_words(bytes(block), b"")))
    session = ReaderSession(ScriptedReader([*GOOD, reply]), FAST)
    with contextlib.suppress(CardReadError):
        session.read_card(wait=0.0)


def test_a_port_whose_other_end_went_away_is_a_clean_port_error() -> None:
    """A pseudo-terminal whose other end has closed fails a flush with termios.error, not OSError."""
    import os

    master, slave = os.openpty()
    transport = SerialTransport(os.ttyname(slave), 115200)
    os.close(slave)
    os.close(master)
    try:
        with pytest.raises(CardReadError) as err:
            transport.discard_input()
        assert err.value.code == "port_unavailable"
    finally:
        transport.close()
