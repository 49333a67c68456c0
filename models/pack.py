"""Model packs: a TOML manifest naming each ONNX file with its role, digest,
input spec, preprocessing and licence.

Loading a pack verifies every digest before any model is handed to ONNX
Runtime.  A manifest may leave ``sha256`` empty where nobody can know it in
advance (insightface's own ``buffalo_*`` downloads): the digest is then pinned
on first verified use in a state file and checked on every later load, with a
warning at pinning time, never skipped silently.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

PACKS_DIR = Path(__file__).resolve().parent / "packs"
# A "verifier" is a second recognizer used only for the counter's 1:1 check: its cosine is
# averaged with the recognizer's (the lobby's 1:N search uses the recognizer alone).
Role = Literal["detector", "recognizer", "verifier", "liveness"]
ROLES: tuple[Role, ...] = ("detector", "recognizer", "verifier", "liveness")
Color = Literal["RGB", "BGR"]
COLORS: tuple[Color, ...] = ("RGB", "BGR")
RECOGNIZER_KINDS = ("arcface", "sface")
KINDS = {"detector": ("scrfd", "yunet"), "recognizer": RECOGNIZER_KINDS, "verifier": RECOGNIZER_KINDS,
         "liveness": ("minifasnet",)}
# May a bank use the weights commercially?  "yes": the licence permits it; "no": research
# only; "review": unclear or needing legal review (the default for a file that does not say).
CommercialUse = Literal["yes", "review", "no"]
COMMERCIAL_USES: tuple[CommercialUse, ...] = ("yes", "review", "no")


class ModelPackError(RuntimeError):
    """A pack manifest is invalid, or a model file is missing or not the expected one."""


@dataclass(frozen=True)
class ModelSpec:
    role: Role
    kind: str
    file: str
    sha256: str
    licence: str
    research_only: bool
    input_size: tuple[int, int]
    color: Color
    mean: float
    std: float
    embedding_size: int = 0
    crop_scale: float = 0.0
    live_index: int = 1
    commercial_use: CommercialUse = "review"


@dataclass(frozen=True)
class ModelPack:
    id: str
    name: str
    description: str
    models: tuple[ModelSpec, ...]
    subdir: str = ""
    default_root: str = ""
    # Calibrated cosine threshold for this pack's recognizer, or None when the
    # pack has not been calibrated (the config must then set one).
    threshold: float | None = None
    # The counter's 1:1 thresholds (card photo vs live frames, the fused score of
    # edge.counter.matching) by false-accept rate ("1e-3" -> cosine), calibrated with
    # `branch-edge evaluate --degrade card`; empty when the pack has not been calibrated.
    counter_thresholds: dict[str, float] = field(default_factory=dict)
    manifest: Path = field(default=Path(), compare=False)

    def by_role(self, role: Role) -> list[ModelSpec]:
        return [m for m in self.models if m.role == role]

    def one(self, role: Role) -> ModelSpec:
        found = self.by_role(role)
        if len(found) != 1:
            raise ModelPackError(f"pack {self.id!r} has {len(found)} {role} models, expected 1")
        return found[0]

    @property
    def embedding_size(self) -> int:
        return self.one("recognizer").embedding_size

    @property
    def commercial_use(self) -> CommercialUse:
        """The pack's verdict: the least permissive of its files' ("no" > "review" > "yes")."""
        return max((m.commercial_use for m in self.models), key=COMMERCIAL_USES.index)


@dataclass(frozen=True)
class FileCheck:
    spec: ModelSpec
    path: Path
    status: Literal["ok", "pinned", "newly-pinned", "missing", "mismatch"]
    actual_sha256: str
    expected_sha256: str

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "pinned", "newly-pinned")


def available_packs() -> list[str]:
    return sorted(p.stem for p in PACKS_DIR.glob("*.toml"))


def _require(table: dict[str, object], key: str, where: str) -> object:
    if key not in table:
        raise ModelPackError(f"{where}: missing key {key!r}")
    return table[key]


def _number(raw: dict[str, object], key: str, default: float, where: str) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ModelPackError(f"{where}: {key} must be a number, got {value!r}")
    return float(value)


def _integer(raw: dict[str, object], key: str, default: int, where: str) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelPackError(f"{where}: {key} must be an integer, got {value!r}")
    return value


def _parse_model(raw: dict[str, object], where: str) -> ModelSpec:
    role = str(_require(raw, "role", where))
    if role not in ROLES:
        raise ModelPackError(f"{where}: role must be one of {', '.join(ROLES)}, got {role!r}")
    kind = str(_require(raw, "kind", where))
    if kind not in KINDS[role]:
        raise ModelPackError(f"{where}: kind for {role} must be one of {KINDS[role]}, got {kind!r}")
    size = _require(raw, "input_size", where)
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
        raise ModelPackError(f"{where}: input_size must be [width, height]")
    color = str(raw.get("color", "RGB"))
    if color not in COLORS:
        raise ModelPackError(f"{where}: color must be RGB or BGR, got {color!r}")
    digest = str(raw.get("sha256", "")).lower()
    if digest and (len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest)):
        raise ModelPackError(f"{where}: sha256 must be 64 hex digits or empty")
    if kind == "sface" and not digest:
        # Its graph is patched in memory at load (edge.vision.recognizer.SFaceRecognizer):
        # only ever the bytes of the one file the manifest names by digest.
        raise ModelPackError(f"{where}: an sface model needs its sha256 (its graph is patched at load)")
    research_only = bool(raw.get("research_only", False))
    commercial = str(raw.get("commercial_use", "no" if research_only else "review"))
    if commercial not in COMMERCIAL_USES or (research_only and commercial != "no"):
        raise ModelPackError(f"{where}: commercial_use must be one of {', '.join(COMMERCIAL_USES)} "
                             f"(\"no\" for a research-only file), got {commercial!r}")
    spec = ModelSpec(
        role=role,
        kind=kind,
        file=str(_require(raw, "file", where)),
        sha256=digest,
        licence=str(_require(raw, "licence", where)),
        research_only=research_only,
        input_size=(int(size[0]), int(size[1])),
        color=color,
        mean=_number(raw, "mean", 0.0, where),
        std=_number(raw, "std", 1.0, where),
        embedding_size=_integer(raw, "embedding_size", 0, where),
        crop_scale=_number(raw, "crop_scale", 0.0, where),
        live_index=_integer(raw, "live_index", 1, where),
        commercial_use=commercial,
    )
    if role in ("recognizer", "verifier") and spec.embedding_size <= 0:
        raise ModelPackError(f"{where}: a {role} needs embedding_size > 0")
    if role == "liveness" and spec.crop_scale <= 0:
        raise ModelPackError(f"{where}: a liveness model needs crop_scale > 0")
    return spec


def parse_pack(data: dict[str, object], manifest: Path) -> ModelPack:
    head = data.get("pack")
    if not isinstance(head, dict):
        raise ModelPackError(f"{manifest}: missing [pack] table")
    raw_models = data.get("model")
    if not isinstance(raw_models, list) or not raw_models:
        raise ModelPackError(f"{manifest}: no [[model]] entries")
    models = tuple(_parse_model(m, f"{manifest} model #{i + 1}") for i, m in enumerate(raw_models))
    threshold = head.get("threshold")
    if threshold is not None and not (isinstance(threshold, float) and -1.0 <= threshold <= 1.0):
        raise ModelPackError(f"{manifest}: [pack] threshold must be a cosine between -1.0 and 1.0")
    pack = ModelPack(
        threshold=threshold,
        counter_thresholds=_counter_thresholds(head.get("counter_thresholds", {}), manifest),
        id=str(_require(head, "id", str(manifest))),
        name=str(head.get("name", "")),
        description=str(head.get("description", "")),
        models=models,
        subdir=str(head.get("subdir", "")),
        default_root=str(head.get("default_root", "")),
        manifest=manifest,
    )
    pack.one("detector")
    pack.one("recognizer")
    return pack


FAR_KEY = re.compile(r"[1-9]e-[1-9]")


def _counter_thresholds(raw: object, manifest: Path) -> dict[str, float]:
    """``counter_thresholds = { "1e-3" = 0.41, ... }``: a cosine per false-accept rate."""
    where = f"{manifest}: [pack] counter_thresholds"
    if not isinstance(raw, dict):
        raise ModelPackError(f"{where} must be a table of rate = cosine")
    out: dict[str, float] = {}
    for key, value in raw.items():
        if not FAR_KEY.fullmatch(key):
            raise ModelPackError(f"{where}: key {key!r} must be a rate written like \"1e-3\"")
        if isinstance(value, bool) or not isinstance(value, int | float) or not -1.0 <= value <= 1.0:
            raise ModelPackError(f"{where}: {key} must be a cosine between -1.0 and 1.0, got {value!r}")
        out[key] = float(value)
    return out


def load_pack(name_or_path: str) -> ModelPack:
    """A shipped pack by id (``default``, ``fast`` …) or a manifest path."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = PACKS_DIR / f"{name_or_path}.toml"
        if not path.exists():
            known = ", ".join(available_packs())
            raise ModelPackError(f"unknown model pack {name_or_path!r}; shipped packs: {known}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ModelPackError(f"cannot read pack manifest {path}: {err.strerror}") from err
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ModelPackError(f"{path}: not valid TOML: {err}") from err
    return parse_pack(data, path)


def resolve_models_dir(pack: ModelPack, cli_dir: Path | None, config_dir: Path | None) -> Path:
    """``--models DIR``, then ``BRANCH_EDGE_MODELS``, then the config file, then the pack's default."""
    env = os.environ.get("BRANCH_EDGE_MODELS")
    for candidate in (cli_dir, Path(env) if env else None, config_dir):
        if candidate is not None:
            root = candidate.expanduser()
            nested = root / pack.subdir if pack.subdir else root
            return nested if pack.subdir and nested.is_dir() else root
    if pack.default_root:
        return (Path(pack.default_root).expanduser() / pack.subdir).resolve()
    raise ModelPackError(
        "no models folder: pass --models DIR, set BRANCH_EDGE_MODELS, or set [models] dir in the config"
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def state_dir() -> Path:
    env = os.environ.get("BRANCH_EDGE_STATE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "branch-edge"


class DigestPins:
    """Digests recorded on first verified use, for manifests that cannot know them."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or state_dir() / "pinned-digests.json"

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            raise ModelPackError(f"digest pin file {self.path} is unreadable: {err}") from err
        if not isinstance(data, dict):
            raise ModelPackError(f"digest pin file {self.path} is not a JSON object")
        return {str(k): str(v) for k, v in data.items()}

    @staticmethod
    def key(pack: ModelPack, spec: ModelSpec) -> str:
        return f"{pack.id}/{spec.file}"

    def get(self, pack: ModelPack, spec: ModelSpec) -> str:
        return self._read().get(self.key(pack, spec), "")

    def record(self, pack: ModelPack, spec: ModelSpec, digest: str) -> None:
        pins = self._read()
        pins[self.key(pack, spec)] = digest
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(pins, indent=2, sort_keys=True), encoding="utf-8")
        tmp.replace(self.path)


def check_file(pack: ModelPack, spec: ModelSpec, models_dir: Path, pins: DigestPins) -> FileCheck:
    path = models_dir / spec.file
    expected = spec.sha256 or pins.get(pack, spec)
    if not path.is_file():
        return FileCheck(spec, path, "missing", "", expected)
    actual = sha256_file(path)
    if not expected:
        return FileCheck(spec, path, "newly-pinned", actual, "")
    if actual != expected:
        return FileCheck(spec, path, "mismatch", actual, expected)
    return FileCheck(spec, path, "ok" if spec.sha256 else "pinned", actual, expected)


def verify_pack(pack: ModelPack, models_dir: Path, pins: DigestPins | None = None) -> list[FileCheck]:
    """Digest check of every file, without raising (for ``models verify``)."""
    pins = pins or DigestPins()
    return [check_file(pack, spec, models_dir, pins) for spec in pack.models]


def describe_failure(check: FileCheck) -> str:
    if check.status == "missing":
        want = check.expected_sha256 or "(digest pinned on first use)"
        return f"model file {check.path} is missing (expected sha256 {want})"
    return (
        f"model file {check.path} has sha256 {check.actual_sha256}, "
        f"expected {check.expected_sha256}: wrong or corrupted file"
    )


def require_verified(pack: ModelPack, models_dir: Path, pins: DigestPins | None = None) -> list[FileCheck]:
    """Verify every digest; raise naming the file and the expected digest on any failure."""
    checks = verify_pack(pack, models_dir, pins)
    failures = [describe_failure(c) for c in checks if not c.ok]
    if failures:
        raise ModelPackError("; ".join(failures))
    return checks


def pin_new_digests(pack: ModelPack, checks: list[FileCheck], pins: DigestPins | None = None) -> None:
    """Record digests of files that loaded and matched their declared signature."""
    pins = pins or DigestPins()
    for check in checks:
        if check.status == "newly-pinned":
            log.warning(
                "pinning sha256 %s for %s (pack %s): the manifest has no digest, later loads must match",
                check.actual_sha256, check.spec.file, pack.id,
            )
            pins.record(pack, check.spec, check.actual_sha256)
