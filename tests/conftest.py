"""Shared fixtures: where the real models and photos are, and one face engine
per test session (loading the ONNX models takes about a second)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from edge.config import EdgeConfig

REPO = Path(__file__).resolve().parent.parent

# Property tests run the same examples on every machine and never fail on timing:
# CI runs on a busy 2-core machine, where generation is slow and a deadline is noise.
settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("explore", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("BRANCH_EDGE_HYPOTHESIS", "ci"))


def timing_sensitive(test: object) -> str | None:
    """Why a property test's own @settings would make it fail on a slow machine, or None."""
    own = getattr(test, "_hypothesis_internal_use_settings", None)
    if own is None:
        return None
    if own.deadline is not None:
        return f"sets a deadline ({own.deadline})"
    if HealthCheck.too_slow not in own.suppress_health_check:
        return "suppresses health checks but not HealthCheck.too_slow"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test's @settings replaces the profile's: it must keep what makes CI timing-proof."""
    problems = [f"{item.nodeid}: {why}" for item in items
                if (why := timing_sensitive(getattr(item, "obj", None)))]
    if problems:
        raise pytest.UsageError("property tests must not depend on the machine's speed:\n"
                                + "\n".join(sorted(set(problems))))

# Real-Mosquitto fixtures (mosquitto_broker, provisioned_branch) and the RTSP camera (rtsp_cameras)
# for every test module.
pytest_plugins = ("tests.mqtt_fixtures", "tests.rtsp_fixtures")


def _shared(env: str, default: str) -> Path:
    path = Path(os.environ.get(env) or REPO.parent / "shared" / default)
    if not path.is_dir():
        pytest.exit(f"{env} is not set and {path} does not exist: the tests need the real "
                    f"models and photos (see README 'Tests')", returncode=3)
    return path


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return _shared("BRANCH_EDGE_MODELS", "models")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _shared("BRANCH_EDGE_DATA", "data")


@pytest.fixture(autouse=True, scope="session")
def _isolated_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # Digest pins and other state must not leak into the developer's home;
    # the environment is given back as it was when the session ends.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BRANCH_EDGE_STATE_DIR", str(tmp_path_factory.mktemp("state")))
        patch.delenv("BRANCH_EDGE_CONFIG", raising=False)
        yield


@pytest.fixture(scope="session")
def edge_config() -> EdgeConfig:
    return EdgeConfig()


@pytest.fixture(scope="session")
def engine(models_dir: Path, edge_config: EdgeConfig):  # -> FaceEngine
    from edge.vision.engine import FaceEngine

    return FaceEngine.from_config(edge_config, models_dir)
