"""``[mqtt]`` configuration section (also embedded in ``EdgeConfig.mqtt``).

``branch-edge provision`` writes a ready ``mqtt.toml`` with this section for
every device it provisions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mqtt.codec import DEFAULT_MAX_PAYLOAD
from mqtt.files import check_secret_mode
from mqtt.ratelimit import DEFAULT_BURST, DEFAULT_RATE_PER_S


class MqttConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str | None = Field(
        None, description="broker host; empty: the demo starts the embedded loopback broker"
    )
    port: int = Field(8883, ge=1, le=65535, description="broker port (TLS)")
    protocol: Literal["3.1.1", "5"] = Field("3.1.1", description="MQTT protocol version")
    device_id: str = Field("edge", pattern=r"^[A-Za-z0-9_-]{1,64}$", description="this device")
    client_id: str | None = Field(None, max_length=64, description="default: device_id")
    username: str | None = Field(None, max_length=64, description="default: device_id when TLS")
    password_file: Path | None = Field(None, description="file holding the password (mode 0600)")
    ca_file: Path | None = Field(None, description="CA certificate; set it to turn TLS on")
    cert_file: Path | None = Field(None, description="this device's client certificate")
    key_file: Path | None = Field(None, description="this device's private key (mode 0600)")
    keepalive_s: int = Field(30, ge=5, le=600, description="seconds between keep-alive pings")
    reconnect_min_s: float = Field(0.5, ge=0.05, le=60, description="first reconnect delay, then doubled")
    reconnect_max_s: float = Field(30.0, ge=0.1, le=600, description="longest reconnect delay")
    outbox_path: Path = Field(Path("mqtt-outbox.db"), description="SQLite outbox (':memory:' ok)")
    seen_ids_path: Path = Field(Path("mqtt-seen.db"), description="SQLite de-duplication store")
    seen_ids_ttl_s: float = Field(7 * 86400, ge=60, le=90 * 86400, description="ids remembered this long")
    seen_ids_max: int = Field(200_000, ge=1000, le=10_000_000, description="at most this many ids kept")
    max_payload_bytes: int = Field(DEFAULT_MAX_PAYLOAD, ge=1024, le=16 * 1024 * 1024,
                                   description="larger payloads are rejected before parsing")
    max_inflight: int = Field(50, ge=1, le=1000, description="unacknowledged QoS 1 publishes")
    roster_file: Path | None = Field(
        None, description="the branch roster (roster.json from `branch-edge provision`): each device's "
        "role and staff member; names of RMs, tellers and supervisors in messages are checked against it")
    device_rate_per_s: float = Field(
        DEFAULT_RATE_PER_S, gt=0, le=100_000,
        description="messages per second accepted from one device (claims, outcomes, requests, "
        "decisions, status); beyond its burst the excess is dropped and counted (rate_limited)")
    device_burst: int = Field(
        DEFAULT_BURST, ge=1, le=1_000_000,
        description="messages one device may send at once (an outbox drained after an outage)")

    @model_validator(mode="after")
    def _check_pairs(self) -> MqttConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if self.cert_file is not None and self.ca_file is None:
            raise ValueError("a client certificate needs ca_file (TLS)")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self

    @property
    def tls(self) -> bool:
        return self.ca_file is not None

    @property
    def effective_client_id(self) -> str:
        return self.client_id or self.device_id

    def read_password(self) -> str | None:
        """The password, from a file only its owner may read (else :class:`~mqtt.files.SecretFileError`)."""
        if self.password_file is None:
            return None
        check_secret_mode(self.password_file, "MQTT password file")
        return self.password_file.read_text(encoding="utf-8").strip()
