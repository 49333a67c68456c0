"""tests/unit refuses the models, the face engine and brokers (see tests/unit/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import RuntimeConfig
from mqtt.embedded import EmbeddedBroker
from tests.mqtt_fixtures import MosquittoBroker


@pytest.mark.parametrize("fixture", ["models_dir", "engine", "mosquitto_broker"])
def test_asking_for_models_or_a_broker_fails_and_says_where_the_test_belongs(
        request: pytest.FixtureRequest, fixture: str) -> None:
    with pytest.raises(pytest.fail.Exception, match="move this test to tests/integration"):
        request.getfixturevalue(fixture)


def test_starting_a_broker_directly_fails(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match="Mosquitto broker"):
        MosquittoBroker(tmp_path / "mosquitto.conf", 1883, tmp_path / "log").start()
    with pytest.raises(pytest.fail.Exception, match="MQTT broker"):
        EmbeddedBroker().start()


def test_loading_a_model_directly_fails(tmp_path: Path) -> None:
    from edge.vision.session import create_session

    with pytest.raises(pytest.fail.Exception, match="ONNX model"):
        create_session(tmp_path / "model.onnx", RuntimeConfig())
