"""Every place an outside image enters refuses an image bomb from its header, without decoding it:
the authorization request's JPEGs (edge), arrival thumbnails and escalation photos (PAD),
the card photo from a photo decoder and the simulator's card photos (PAD)."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt

import cv2
import numpy as np
import pytest

from edge.counter.verifier import BadImageError, decode_jpeg
from tests.image_bombs import BOMBS, jpeg_bomb
from ui.devices.idcard.card import CardReadError
from ui.devices.idcard.photo import SimulatorPhotoDecoder, card_sized_jpeg, to_jpeg
from ui.devices.idcard.reader import decode_photo
from ui.devices.idcard.samples import sample_cards
from ui.widgets.common import jpeg_pixmap


@pytest.fixture
def decoder_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = cv2.imdecode

    def spy(buf, flags):  # type: ignore[no-untyped-def]
        calls.append(len(buf))
        return real(buf, flags)

    monkeypatch.setattr(cv2, "imdecode", spy)
    return calls


@pytest.fixture
def face_jpeg(data_dir) -> bytes:
    return (data_dir / "faces_asia" / "Hitomi_Soga" / "Hitomi_Soga_0001.jpg").read_bytes()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_auth_request_images_are_sized_before_decoding(kind: str, decoder_calls: list[int]) -> None:
    with pytest.raises(BadImageError, match="too_large"):
        decode_jpeg(b64(BOMBS[kind]()))
    assert decoder_calls == []


def test_auth_request_takes_jpeg_only_and_still_decodes_a_real_one(face_jpeg: bytes) -> None:
    image = cv2.imdecode(np.frombuffer(face_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decode_jpeg(b64(face_jpeg)).shape == image.shape
    _, png = cv2.imencode(".png", image)
    with pytest.raises(BadImageError, match="not_an_image"):
        decode_jpeg(b64(png.tobytes()))


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_pad_thumbnails_are_sized_before_decoding(kind: str, qapp, decoder_calls: list[int]) -> None:
    assert jpeg_pixmap(b64(BOMBS[kind]()), 120) is None
    assert decoder_calls == []


def test_a_real_thumbnail_still_shows(qapp, face_jpeg: bytes) -> None:
    pixmap = jpeg_pixmap(b64(face_jpeg), 120)
    assert pixmap is not None and pixmap.width() == 120


class BombDecoder:
    """A photo decoder (vendor library) that returns a bomb instead of a 102x126 photo."""

    def decode(self, wlt: bytes) -> bytes:
        return jpeg_bomb()


def test_a_card_photo_decoder_returning_a_bomb_gives_a_photo_error(decoder_calls: list[int]) -> None:
    card = decode_photo(sample_cards(dt.date.today())[0], BombDecoder())
    assert card.photo_jpeg is None and "pixel limit" in card.photo_error
    assert decoder_calls == []


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_card_photo_conversions_are_sized_before_decoding(kind: str, decoder_calls: list[int]) -> None:
    for convert in (to_jpeg, card_sized_jpeg):
        with pytest.raises(CardReadError) as caught:
            convert(BOMBS[kind]())
        assert caught.value.code == "photo_decode"
    simulator = SimulatorPhotoDecoder([BOMBS[kind]()])
    with pytest.raises(CardReadError):
        simulator.decode(next(iter(simulator._images)))
    assert decoder_calls == []


def test_a_simulated_card_photo_still_decodes(face_jpeg: bytes) -> None:
    decoder = SimulatorPhotoDecoder()
    card = dataclasses.replace(sample_cards(dt.date.today())[0], photo_wlt=decoder.add(face_jpeg))
    card = decode_photo(card, decoder)
    assert card.photo_jpeg is not None and card.photo_error == ""
    image = cv2.imdecode(np.frombuffer(card.photo_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (126, 102, 3)
