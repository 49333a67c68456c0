"""``hq.toml``: head office's settings.

    [hq]
    db = "hq.db"                      # registry: customers, templates (encrypted), branches,
                                      # packages, erasures and their acknowledgements
    data_key = "hq-data.key"          # 32-byte key (hex) for templates at rest, mode 0600
    signing_key = "hq-signing.key"    # Ed25519 private key (PEM, 0600): signs gallery packages
    packages_dir = "packages"
    model_pack = "default"            # the embedding contract packages are built for
    resend_s = 30.0                   # unacknowledged erasures and packages are sent again

    [mqtt]                            # the central broker (mqtt.config.MqttConfig)
    host = "mqtt.hq.example"
    device_id = "hq-app"

    [postgres]
    dsn = "postgresql://collector@db.hq.example/branch_fleet"
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hq.errors import HqError
from mqtt.config import MqttConfig
from mqtt.files import read_bounded


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HqSection(Section):
    db: Path = Field(Path("hq.db"), description="head office's registry (SQLite)")
    data_key: Path = Field(Path("hq-data.key"), description="32-byte hex key for templates at rest (0600)")
    signing_key: Path = Field(Path("hq-signing.key"), description="Ed25519 private key signing packages")
    packages_dir: Path = Field(Path("packages"), description="built gallery packages")
    model_pack: str = Field("default", description="model pack id (or manifest path) of the contract")
    models_dir: Path | None = Field(None, description="the pack's ONNX files (default: BRANCH_EDGE_MODELS)")
    resend_s: float = Field(30.0, ge=0.05, le=86_400.0, description="unacknowledged messages sent again")


class PostgresSection(Section):
    dsn: str = Field("", description="libpq connection string of the data platform's database")


class HqConfig(Section):
    hq: HqSection = HqSection()
    mqtt: MqttConfig = MqttConfig(device_id="hq-app")
    postgres: PostgresSection = PostgresSection()


def load_hq_config(path: Path | None) -> HqConfig:
    if path is None:
        return HqConfig()
    try:
        data = tomllib.loads(read_bounded(path, 1024 * 1024, "config file").decode("utf-8"))
    except OSError as err:
        raise HqError(f"cannot read {path}: {err}") from err
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise HqError(f"{path}: not valid TOML: {err}") from err
    try:
        return HqConfig.model_validate(data)
    except ValidationError as err:
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        raise HqError(f"{path}: {detail}") from err
