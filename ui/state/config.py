"""The PAD's configuration file (``pad.toml``): who this tablet is and how it reaches the broker.

Example::

    branch_id = "b1"
    role = "rm"              # rm | teller | supervisor
    rm_id = "rm-1"           # the RM using this tablet (rm role); default: the device id
    language = "zh-CN"       # zh-CN | en
    sound = true
    mqtt_file = "devices/rm-1/mqtt.toml"   # the file `branch-edge provision` wrote

    [mqtt]                   # or inline the [mqtt] section instead of mqtt_file
    outbox_path = "/var/lib/branch-pad/outbox.db"

Keys of an inline ``[mqtt]`` section override those read from ``mqtt_file``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.core.errors import ConfigError, format_validation_error
from edge.core.files import UnsafeFileError, read_regular_file
from mqtt.config import MqttConfig

Role = Literal["rm", "teller", "supervisor"]
Language = Literal["zh-CN", "en"]
ID = r"^[A-Za-z0-9_-]{1,64}$"
MAX_CONFIG_BYTES = 1024 * 1024  # pad.toml and mqtt.toml are a few hundred bytes


class CounterConfig(BaseModel):
    """The counter terminal's devices (teller mode)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    idcard_port: str | None = Field(None, description="ID-card reader serial port, e.g. /dev/ttyUSB0")
    wlt_decoder: str | None = Field(None, description="vendor WLT photo library (path), if any")
    camera: str | None = Field(None, description="counter camera: USB index (\"0\") or a folder of images")


class PadConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    branch_id: str = Field(pattern=ID, description="the branch this PAD belongs to")
    role: Role = Field("rm", description="which page the app shows")
    rm_id: str | None = Field(None, pattern=ID, description="RM using this tablet; default: device id")
    language: Language = Field("zh-CN", description="the app's language (--language overrides)")
    sound: bool = Field(True, description="beep on a new arrival")
    expiry_check_s: float = Field(1.0, ge=0.1, le=60, description="how often expired arrivals drop out")
    mqtt_file: Path | None = Field(None, description="provisioned mqtt.toml to read [mqtt] from")
    journal_path: Path | None = Field(None, description="received messages kept for a restart; "
                                      "default: [mqtt] seen_ids_path with .journal.db")
    counter: CounterConfig = CounterConfig()
    mqtt: MqttConfig

    @property
    def device_id(self) -> str:
        return self.mqtt.device_id

    @property
    def effective_journal_path(self) -> Path:
        seen = self.mqtt.seen_ids_path
        if self.journal_path is not None or str(seen) == ":memory:":
            return self.journal_path or seen
        return seen.with_name(f"{seen.stem}.journal.db")

    @property
    def effective_rm_id(self) -> str:
        return self.rm_id or self.mqtt.device_id


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = read_regular_file(path, MAX_CONFIG_BYTES, "config file")
    except UnsafeFileError as err:
        raise ConfigError(str(err)) from err
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err


def parse_pad_config(
    data: dict[str, Any], source: str = "<pad config>", base: Path | None = None
) -> PadConfig:
    """Validate ``data``; a relative ``mqtt_file`` is read relative to ``base``."""
    data = dict(data)
    mqtt_file = data.get("mqtt_file")
    if isinstance(mqtt_file, str):
        path = Path(mqtt_file)
        if not path.is_absolute() and base is not None:
            path = base / path
        provisioned = _read_toml(path).get("mqtt", {})
        inline = data.get("mqtt", {})
        if not isinstance(provisioned, dict) or not isinstance(inline, dict):
            raise ConfigError(f"{source}: [mqtt] must be a table")
        data["mqtt"] = {**provisioned, **inline}
        data["mqtt_file"] = str(path)
    try:
        return PadConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: {format_validation_error(err)}") from err


def read_pad_tables(path: Path) -> dict[str, Any]:
    """pad.toml's tables, not yet checked (``branch-pad --demo`` replaces its ``[mqtt]``)."""
    return _read_toml(path)


def load_pad_config(path: Path) -> PadConfig:
    return parse_pad_config(_read_toml(path), str(path), path.parent)
