"""Unit tests run without a broker and without the face models.

A unit test that asks for the models, the face engine or a Mosquitto broker
fails at once with a message that says where it belongs (tests/integration);
so does one that starts a broker or loads an ONNX model some other way.
Photos (``data_dir``) are plain files and stay allowed.
"""

from __future__ import annotations

from typing import NoReturn

import pytest

WHY = "tests/unit needs no broker and no models: move this test to tests/integration"


def refuse(what: str) -> NoReturn:
    pytest.fail(f"{what} in a unit test. {WHY}", pytrace=False)


@pytest.fixture(scope="session")
def models_dir() -> NoReturn:
    refuse("the face models (models_dir)")


@pytest.fixture(scope="session")
def engine() -> NoReturn:
    refuse("the face engine (engine)")


@pytest.fixture
def mosquitto_broker() -> NoReturn:
    refuse("a Mosquitto broker (mosquitto_broker)")


@pytest.fixture(autouse=True)
def _no_broker_no_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same refusal for a test that starts a broker or a model session directly."""
    import onnxruntime

    from mqtt.embedded import EmbeddedBroker
    from tests.mqtt_fixtures import MosquittoBroker

    def no_mosquitto(*_args: object, **_kwargs: object) -> NoReturn:
        refuse("a Mosquitto broker (MosquittoBroker.start)")

    def no_embedded(*_args: object, **_kwargs: object) -> NoReturn:
        refuse("an MQTT broker (EmbeddedBroker)")

    def no_model(*_args: object, **_kwargs: object) -> NoReturn:
        refuse("an ONNX model (onnxruntime.InferenceSession)")

    monkeypatch.setattr(MosquittoBroker, "start", no_mosquitto)
    monkeypatch.setattr(EmbeddedBroker, "__init__", no_embedded)  # its constructor makes the event loop
    monkeypatch.setattr(onnxruntime, "InferenceSession", no_model)
