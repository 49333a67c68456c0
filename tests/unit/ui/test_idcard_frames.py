"""GA/T 467 frame codec: the research test vectors, the streaming receiver, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ui.devices.idcard.frames import PREAMBLE, Command, FrameError, FrameReceiver, Response, decode_frame
from ui.devices.idcard.protocol import (
    FIND,
    READ_APPENDED_ADDRESS,
    READ_BASE,
    READ_WITH_FINGERPRINT,
    RESET_SAM,
    SAM_ID,
    SAM_STATUS,
    SELECT,
    format_sam_id,
    split_read_data,
)

COMMAND_VECTORS = [
    (RESET_SAM, "AAAAAA9669000310FFEC"),
    (SAM_STATUS, "AAAAAA9669000311FFED"),
    (SAM_ID, "AAAAAA9669000312FFEE"),
    (FIND, "AAAAAA96690003200122"),
    (SELECT, "AAAAAA96690003200221"),
    (READ_BASE, "AAAAAA96690003300132"),
    (READ_APPENDED_ADDRESS, "AAAAAA96690003300330"),
    (READ_WITH_FINGERPRINT, "AAAAAA96690003301023"),
    (Command(0x61, 0xFF, b"\x50"), "AAAAAA9669000461FF50CA"),
]
RESPONSE_VECTORS = [
    (Response(0x9F, bytes(4)), "AAAAAA9669000800009F0000000097"),
    (Response(0x90, bytes(8)), "AAAAAA9669000C00009000000000000000009C"),
    (Response(0x80), "AAAAAA9669000400008084"),
    (Response(0x81), "AAAAAA9669000400008185"),
    (Response(0x41), "AAAAAA9669000400004145"),
    (Response(0x90), "AAAAAA9669000400009094"),
]


@pytest.mark.parametrize(("command", "hex_frame"), COMMAND_VECTORS)
def test_command_frames_match_the_vectors(command: Command, hex_frame: str) -> None:
    assert command.encode() == bytes.fromhex(hex_frame)
    assert Command.decode_body(decode_frame(bytes.fromhex(hex_frame))) == command


@pytest.mark.parametrize(("response", "hex_frame"), RESPONSE_VECTORS)
def test_response_frames_match_the_vectors(response: Response, hex_frame: str) -> None:
    assert response.encode() == bytes.fromhex(hex_frame)
    assert Response.decode_body(decode_frame(bytes.fromhex(hex_frame))) == response


def test_read_replies_have_the_documented_headers_and_sizes() -> None:
    base = Response(0x90, b"\x01\x00\x04\x00" + bytes(256 + 1024)).encode()
    assert base.hex().upper().startswith("AAAAAA96690508000090" + "01000400")
    assert len(base) == 1295
    with_fp = Response(0x90, b"\x01\x00\x04\x00\x04\x00" + bytes(256 + 2048)).encode()
    assert with_fp.hex().upper().startswith("AAAAAA9669090A000090" + "010004000400")
    assert len(with_fp) == 2321
    text, photo, fp = split_read_data(decode_frame(with_fp)[3:], fingerprint=True)
    assert (len(text), len(photo), len(fp)) == (256, 1024, 1024)


def test_read_data_whose_length_words_disagree_is_rejected() -> None:
    from ui.devices.idcard.card import CardReadError

    with pytest.raises(CardReadError) as info:
        split_read_data(b"\x01\x00\x04\x00" + bytes(1000), fingerprint=False)
    assert info.value.code == "length_error"


@pytest.mark.parametrize(("frame", "reason"), [
    (bytes.fromhex("AAAAAA9669000400009095"), "checksum"),
    (bytes.fromhex("AAAAAA9669000500009094"), "length"),
    (bytes.fromhex("AAAAAA9769000400009094"), "AA AA AA 96 69"),
    (bytes.fromhex("AAAAAA9669"), "shorter"),
])
def test_decode_frame_rejects_damaged_frames(frame: bytes, reason: str) -> None:
    with pytest.raises(FrameError, match=reason):
        decode_frame(frame)


def test_receiver_resynchronises_after_garbage_and_a_bad_checksum() -> None:
    good = Response(0x9F, bytes(4)).encode()
    bad = bytearray(Response(0x90, b"xyz").encode())
    bad[-1] ^= 1
    stream = b"\x13\x37\xaa\xaa" + bytes(bad) + PREAMBLE + b"\xff\xff" + good + b"\xaa\xaa\xaa\x96"
    receiver = FrameReceiver()
    bodies = [body for i in range(0, len(stream), 3) for body in receiver.feed(stream[i:i + 3])]
    assert [Response.decode_body(b) for b in bodies] == [Response(0x9F, bytes(4))]
    assert receiver.rejected == 2


def test_sam_id_is_formatted_like_the_vendors() -> None:
    raw = (5).to_bytes(2, "little") + (1).to_bytes(2, "little") + (20230101).to_bytes(4, "little") \
        + (12345).to_bytes(4, "little") + (4294967295).to_bytes(4, "little")
    assert format_sam_id(raw) == "05-01-20230101-0000012345-4294967295"


responses = st.builds(Response, st.integers(0, 255), st.binary(max_size=300))
noise = st.binary(max_size=64).map(lambda b: b.replace(b"\xaa", b"\x55"))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(noise, responses), max_size=6), st.integers(1, 50))
def test_every_frame_between_noise_is_recovered_in_any_chunking(
        items: list[tuple[bytes, Response]], chunk: int) -> None:
    stream = b"".join(n + r.encode() for n, r in items)
    receiver = FrameReceiver()
    bodies = [b for i in range(0, len(stream), chunk) for b in receiver.feed(stream[i:i + chunk])]
    assert [Response.decode_body(b) for b in bodies] == [r for _, r in items]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.integers(1, 64))
def test_garbage_never_crashes_and_only_whole_frames_come_out(data: bytes, chunk: int) -> None:
    receiver = FrameReceiver()
    for i in range(0, len(data), chunk):
        for body in receiver.feed(data[i:i + chunk]):
            length = (len(body) + 1).to_bytes(2, "big")
            frame = PREAMBLE + length + body
            frame += bytes([__import__("functools").reduce(lambda a, b: a ^ b, length + body, 0)])
            assert decode_frame(frame) == body
            assert frame in data
