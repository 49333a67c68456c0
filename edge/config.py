"""Typed configuration, loaded from one TOML file.

Every section is a pydantic model with bounds, so a bad value is reported with
the dotted key and the allowed range (``recognition.threshold: Input should be
less than or equal to 1``).  Defaults are the documented, measured ones.  Every
field's description goes into the generated reference (docs/reference/configuration.md,
``make docs``), so a new key needs one.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.core.errors import ConfigError, format_validation_error
from edge.core.files import UnsafeFileError, read_regular_file
from models.pack import ModelPackError, load_pack
from mqtt.config import MqttConfig


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelsConfig(Section):
    dir: Path | None = Field(None, description="folder holding the ONNX files of the pack")
    pack: str = Field("default", description="pack id, or a path to a pack manifest (.toml)")


class RuntimeConfig(Section):
    device: Literal["cpu", "gpu", "auto"] = Field(
        "auto", description="gpu: fail when no GPU provider; auto: GPU when present"
    )
    intra_op_threads: int = Field(0, ge=0, le=64, description="0 = one per core")
    inter_op_threads: int = Field(1, ge=1, le=16, description="threads running independent graph nodes")
    graph_optimization: Literal["disabled", "basic", "extended", "all"] = Field(
        "all", description="ONNX Runtime graph optimisation level")
    gpu_device_id: int = Field(0, ge=0, le=15, description="which GPU, when the device is a GPU")


class DetectionConfig(Section):
    input_size: int = Field(640, ge=128, le=1920, multiple_of=32, description="detector input side (photos)")
    score_threshold: float = Field(0.5, ge=0.05, le=0.99, description="faces scoring below are dropped")
    nms_threshold: float = Field(0.4, ge=0.1, le=0.9, description="IoU above which overlapping boxes merge")
    max_faces: int = Field(32, ge=1, le=256, description="faces kept per image, primary first")
    # Tight face crops (ID photos, 160x160 portraits) need context around the
    # face before SCRFD finds it (docs/design/face-engine.md).
    pad_retry: bool = Field(True, description="no face found: retry once with a black border (tight crops)")


class QualityConfig(Section):
    min_det_score: float = Field(0.6, ge=0.0, le=1.0, description="lower detector scores: low_det_score")
    min_interocular_px: float = Field(20.0, ge=4.0, le=400.0, description="closer eyes: too_small")
    min_blur: float = Field(30.0, ge=0.0, le=10_000.0, description="Laplacian variance, 112x112 crop")
    max_yaw_deg: float = Field(40.0, ge=5.0, le=90.0, description="head turned further: extreme_pose")
    max_pitch_deg: float = Field(35.0, ge=5.0, le=90.0, description="head tilted further: extreme_pose")


class RecognitionConfig(Section):
    threshold: float = Field(
        0.442, ge=-1.0, le=1.0,
        description="cosine; default: the model pack's threshold calibrated on faces_asia",
    )
    margin: float = Field(0.05, ge=0.0, le=1.0, description="best minus runner-up customer")
    batch_size: int = Field(16, ge=1, le=256, description="faces embedded per recognizer call")


class LivenessConfig(Section):
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="mean live probability")


class GalleryConfig(Section):
    backend: Literal["exact", "int8", "ivf"] = Field(
        "exact", description="template search: exact float32, int8 codes, or faiss IVF (huge galleries)")
    top_k: int = Field(10, ge=2, le=100, description="templates fetched per search (at least one more "
                       "than any customer holds is fetched anyway)")


class StoreConfig(Section):
    path: Path = Field(Path("branch-edge.db"), description="the branch's SQLite store (--db overrides)")
    key_file: Path | None = Field(None, description="32-byte key file (hex or raw), mode 0600")
    key_env: str = Field("BRANCH_EDGE_KEY", description="environment variable with the hex key")
    old_key_files: list[Path] = Field(
        default_factory=list, max_length=8,
        description="older keys (0600 files): decrypt only, while `keys rotate` re-encrypts")


class EnrolConfig(Section):
    review: Literal["off", "standard", "strict"] = Field(
        "standard", description="how closely each photo is reviewed (--review overrides)")
    require_liveness: bool = Field(False, description="reject photos under liveness.threshold (live photos)")
    max_templates_per_customer: int = Field(10, ge=1, le=100, description="the best photos by quality stay")
    # A second face this large (area relative to the largest) that the detector is sure
    # of (score >= quality.min_det_score) makes a photo ambiguous: "several_faces".
    several_faces_area_ratio: float = Field(
        0.25, ge=0.0, le=1.0, description="a second face this large, relative to the main one: several_faces")


class TrackingConfig(Section):
    iou_threshold: float = Field(0.25, ge=0.01, le=0.95, description="min IoU to continue a track")
    max_missed_s: float = Field(1.0, ge=0.0, le=30.0, description="a track survives misses this long")


class DecisionConfig(Section):
    min_frames: int = Field(3, ge=1, le=50, description="agreeing good frames before accepting")
    max_embeds_per_track: int = Field(12, ge=1, le=500, description="then the track stays unknown")
    give_up_margin: float = Field(
        0.2, ge=0.0, le=2.0, description="unknown early when the best is this far below the threshold")
    window: int = Field(8, ge=1, le=100, description="most recent embedded frames aggregated")
    top_k: int = Field(5, ge=2, le=100, description="customers kept per frame")
    recheck_s: float = Field(0.5, ge=0.1, le=60.0, description="decided tracks: re-embed this often")
    same_person_similarity: float = Field(
        0.3, ge=-1.0, le=1.0, description="a re-check below this: another person took over the track")


class VisitsConfig(Section):
    absence_s: float = Field(300.0, ge=1.0, le=86_400.0, description="unseen this long ends a visit")
    cooldown_s: float = Field(600.0, ge=0.0, le=86_400.0, description="no new arrival sooner")


class LobbyConfig(Section):
    detect_size: int = Field(640, ge=128, le=1920, multiple_of=32, description="SCRFD input side")
    footfall_counting: bool = Field(False, description="count unknown visitors (counts only)")
    # Video faces are small and upscaled to 112x112, so they are softer than enrolment
    # photos; the track decision (several agreeing frames) guards against poor frames.
    min_blur: float = Field(15.0, ge=0.0, le=10_000.0, description="replaces quality.min_blur here")


class AuthConfig(Section):
    enabled: bool = Field(False, description="serve counter authorization requests")
    policies: Path | None = Field(
        None, description="policy TOML (default: the shipped edge/counter/policies.toml)")


class FleetConfig(Section):
    enabled: bool = Field(False, description="take erasures and gallery packages from head office over MQTT")
    hq_public_key: Path | None = Field(
        None, description="head office's Ed25519 public key (PEM): gallery packages must be signed by it")
    branch_key: Path | None = Field(
        None, description="this branch's X25519 private key (PEM, mode 0600; `branch-edge fleet keygen`)")
    state_dir: Path = Field(Path("fleet-state"), description="partial packages received over MQTT")
    counts_interval_s: float = Field(
        300.0, ge=1.0, le=86_400.0, description="arrival counts and purchase links sent this often")


class CameraConfig(Section):
    name: str = Field(..., pattern=r"^[A-Za-z0-9_-]{1,64}$", description="camera id in arrivals")
    # repr=False: a URL may carry the camera's password (rtsp://user:password@host/...).
    source: str = Field(..., min_length=1, repr=False,
                        description="video file, rtsp:// URL or USB index (\"0\"); with a substream: "
                                    "the camera's main (high-resolution) stream")
    substream: str | None = Field(
        None, min_length=1, repr=False,
        description="rtsp: the camera's low-resolution stream; detection and tracking run on it, and "
                    "only small faces are cropped from the main stream (opened while they are seen)")
    main_crop_below_px: float = Field(
        32.0, ge=0.0, le=400.0,
        description="substream: a face whose eyes are closer than this (substream pixels) is cropped "
                    "from the main stream; 0 = never")
    main_linger_s: float = Field(
        10.0, ge=0.0, le=3600.0, description="substream: the main stream stays open this long after "
                                            "the last small face")
    username: str | None = Field(
        None, min_length=1, max_length=128, description="rtsp: user name, when the URL has none")
    password_file: Path | None = Field(
        None, description="rtsp: file holding the camera's password (mode 0600), instead of the URL")
    password_env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$",
        description="rtsp: environment variable holding the camera's password, instead of the URL")
    loop: bool = Field(False, description="files: start again at the end")
    pace: Literal["native", "fast"] = Field(
        "native", description="files: native frame rate, or fast = as fast as analysed (no drops)"
    )
    analyse_fps: float = Field(10.0, gt=0.0, le=60.0, description="frames analysed per second")
    role: Literal["lobby", "counter"] = Field(
        "lobby", description="counter: frames serve authorization requests, never lobby recognition"
    )
    rtsp_listen: bool = Field(False, description="rtsp: wait for the camera to push (RECORD)")
    rtsp_transport: Literal["tcp", "udp"] = Field("tcp", description="rtsp: transport of the stream")
    open_timeout_s: float = Field(10.0, ge=0.5, le=120.0, description="opening the source may take this long")
    read_timeout_s: float = Field(5.0, ge=0.5, le=120.0, description="one blocking read may take this long")
    stale_after_s: float = Field(5.0, ge=0.2, le=600.0, description="no new frame this long: restart")
    backoff_min_s: float = Field(1.0, ge=0.05, le=600.0, description="first restart delay, then doubled")
    backoff_max_s: float = Field(60.0, ge=0.1, le=3600.0, description="longest restart delay")

    @model_validator(mode="after")
    def _check_backoff(self) -> CameraConfig:
        if self.backoff_max_s < self.backoff_min_s:
            raise ValueError("backoff_max_s must be >= backoff_min_s")
        return self

    @model_validator(mode="after")
    def _check_credentials(self) -> CameraConfig:
        """Messages name keys only: the URLs may hold a password."""
        rtsp = [s for s in (self.source, self.substream) if s is not None]
        networked = all(s.lower().startswith(("rtsp://", "rtsps://")) for s in rtsp)
        if self.substream is not None and not networked:
            raise ValueError("substream: needs rtsp:// URLs for both source and substream")
        if self.password_file is not None and self.password_env is not None:
            raise ValueError("password_file and password_env: give one of them")
        secret = self.password_file is not None or self.password_env is not None
        if (secret or self.username) and not networked:
            raise ValueError("username, password_file and password_env apply to rtsp:// sources only")
        if secret and any(_url_password(s) for s in rtsp):
            raise ValueError("password_file / password_env: the URL already carries a password; "
                             "remove it from the URL")
        return self


def _url_password(url: str) -> bool:
    """Whether an rtsp URL carries a password (``user:password@``)."""
    netloc = url.partition("://")[2].partition("/")[0]
    return "@" in netloc and ":" in netloc.rpartition("@")[0]


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="records below this level are dropped; customer ids only at DEBUG")
    format: Literal["text", "json"] = Field("text", description="json: one JSON object per line")
    file: Path | None = Field(None, description="also log here, rotated; stderr then gets WARNING+")
    max_bytes: int = Field(10_000_000, ge=1_000, le=10_000_000_000, description="rotate at this size")
    backups: int = Field(5, ge=1, le=100, description="rotated files kept (file.1 ... file.N)")


class MetricsConfig(Section):
    """Prometheus endpoint (docs/operations/metrics.md)."""

    enabled: bool = Field(True, description="serve /metrics while the daemon runs")
    bind: str = Field("127.0.0.1", min_length=1, description="address; 0.0.0.0 exposes it on the LAN")
    port: int = Field(9108, ge=0, le=65535, description="0 = any free port (tests)")


class DaemonConfig(Section):
    status_interval_s: float = Field(30.0, ge=1.0, le=3600.0, description="device status period")
    gallery_check_s: float = Field(2.0, ge=0.1, le=600.0, description="store re-read for erasures")


class RetentionConfig(Section):
    """What is deleted when (edge.store.retention; docs/operations/retention.md)."""

    live_captures_h: float = Field(24.0, gt=0.0, le=720.0, description="live face images kept at most")
    audit_days: int = Field(1825, ge=0, le=36_500, description="audit entries kept; 0 = forever")
    interval_s: float = Field(3600.0, ge=1.0, le=86_400.0, description="the daemon purges this often")


class CrmConfig(Section):
    """Portrait, recommendations and outcome linking (docs/design/portrait.md)."""

    path: Path | None = Field(None, description="CRM tables' database; default: the store's file")
    language: Literal["zh-CN", "en"] = Field("zh-CN", description="language of reasons on the PAD")
    recommendations: int = Field(3, ge=1, le=10, description="products per arrival")
    segments: int = Field(6, ge=2, le=30, description="customer segments (k-means clusters)")
    maturity_days: int = Field(30, ge=1, le=180, description="raise maturities this many days ahead")
    birthday_days: int = Field(7, ge=1, le=31, description="raise birthdays this many days ahead")
    assessment_warning_days: int = Field(30, ge=0, le=365, description="raise assessments expiring this soon")
    idle_balance: float = Field(500_000.0, ge=0.0, le=1e10, description="current account, CNY")
    attribution_days: int = Field(90, ge=1, le=730, description="purchase after a visit counts")


class EdgeConfig(Section):
    branch_id: str = Field("demo-branch", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
                           description="this branch: its topics live under bank/v1/branch/{branch_id}/")
    models: ModelsConfig = ModelsConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    detection: DetectionConfig = DetectionConfig()
    quality: QualityConfig = QualityConfig()
    recognition: RecognitionConfig = RecognitionConfig()
    liveness: LivenessConfig = LivenessConfig()
    gallery: GalleryConfig = GalleryConfig()
    store: StoreConfig = StoreConfig()
    enrol: EnrolConfig = EnrolConfig()
    mqtt: MqttConfig = MqttConfig()
    crm: CrmConfig = CrmConfig()
    cameras: tuple[CameraConfig, ...] = ()
    logging: LoggingConfig = LoggingConfig()
    metrics: MetricsConfig = MetricsConfig()
    daemon: DaemonConfig = DaemonConfig()
    retention: RetentionConfig = RetentionConfig()
    tracking: TrackingConfig = TrackingConfig()
    decision: DecisionConfig = DecisionConfig()
    visits: VisitsConfig = VisitsConfig()
    lobby: LobbyConfig = LobbyConfig()
    auth: AuthConfig = AuthConfig()
    fleet: FleetConfig = FleetConfig()

    @model_validator(mode="before")
    @classmethod
    def _pack_threshold(cls, data: Any) -> Any:
        """Without an explicit ``[recognition] threshold``, use the one calibrated
        for the configured pack: thresholds belong to the model and population."""
        if not isinstance(data, dict):
            return data
        recognition = data.get("recognition") or {}
        if not isinstance(recognition, dict) or "threshold" in recognition:
            return data
        models = data.get("models") or {}
        pack_name = str(models.get("pack", "default")) if isinstance(models, dict) else "default"
        try:
            pack = load_pack(pack_name)
        except ModelPackError as err:
            raise ValueError(f"models.pack: {err}") from err
        if pack.threshold is None:
            raise ValueError(f"recognition.threshold: pack {pack.id!r} has no calibrated threshold; "
                             "set one (see `branch-edge calibrate`)")
        return {**data, "recognition": {**recognition, "threshold": pack.threshold}}


def parse_config(data: dict[str, object], source: str = "<config>") -> EdgeConfig:
    try:
        return EdgeConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: {format_validation_error(err)}") from err


# A config file is a few kilobytes; a path to a device or a huge file is refused, not read.
MAX_CONFIG_BYTES = 1024 * 1024


def load_config(path: Path | None) -> EdgeConfig:
    """Load ``path``; ``None`` means ``BRANCH_EDGE_CONFIG`` or the built-in defaults."""
    if path is None:
        env = os.environ.get("BRANCH_EDGE_CONFIG")
        if not env:
            return EdgeConfig()
        path = Path(env)
    try:
        raw = read_regular_file(path, MAX_CONFIG_BYTES, "config file")
    except UnsafeFileError as err:
        raise ConfigError(str(err)) from err
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err
    return parse_config(data, str(path))
