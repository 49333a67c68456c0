"""Fuzzing every parser that takes outside input (issue 8, "Input hardening").

Each test feeds random or mutated input to one parser and states the only
outcomes allowed: a parsed value, or the parser's own user-facing error.  Any
other exception (KeyError, TypeError, RecursionError, csv.Error ...) fails the
test: the CLI would print a traceback instead of a one-line message.

Already fuzzed elsewhere (not repeated here):
MQTT payloads (tests/unit/mqtt/test_mqtt_contract.py, random bytes and corrupted fields),
ID-card reader frames (tests/unit/ui/test_idcard_frames.py, tests/unit/ui/test_idcard_card.py),
policy *data* (tests/unit/core/test_auth_policy.py; here the policy *file* text).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.config import load_config
from edge.core.errors import ConfigError, ImageError
from edge.counter.policies import AuthError, load_policies
from edge.crm.importer import REQUIRED, import_file
from edge.crm.records import KINDS, CrmError, CrmStore
from edge.vision.imageio import decode_image, encode_jpeg
from models.pack import PACKS_DIR, ModelPackError, parse_pack
from ui.state.config import load_pad_config

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# TOML-ish text: real keys and section names of our files mixed with TOML syntax and junk.
TOML_TOKENS = st.sampled_from([
    "[", "]", "[[", "]]", "=", '"', "'", "\n", " ", ".", ",", "{", "}", "#", "-", "1", "0.5", "1e9",
    "true", "false", "nan", "inf", "-inf", "1979-05-27", "07:32:00", '"""', "\\u00e9", "\x00", "é",
    "mqtt", "cameras", "camera", "store", "path", "port", "host", "branch_id", "pack", "model",
    "role", "file", "sha256", "id", "scenario", "defaults", "match_threshold", "threshold",
    "escalation_timeout_s", "request_ttl_s", "device_id", "rm_id", "counter", "language", "url",
    "detector", "recognizer", "input_size", "embedding_size", "99999999999999999999", "-1",
])
TOML_TEXT = st.lists(TOML_TOKENS, max_size=60).map("".join) | st.text(max_size=200)


def mutate(text: str, data: st.DataObject) -> str:
    """A valid file with a few characters replaced, deleted or inserted."""
    chars = list(text)
    for _ in range(data.draw(st.integers(1, 6))):
        where = data.draw(st.integers(0, max(len(chars) - 1, 0)))
        action = data.draw(st.sampled_from(["replace", "delete", "insert"]))
        token = data.draw(TOML_TOKENS)
        if action == "delete" and chars:
            del chars[where]
        elif action == "replace" and chars:
            chars[where] = token
        else:
            chars.insert(where, token)
    return "".join(chars)


def outcome(call: Callable[[], object], allowed: type[Exception]) -> object:
    """The call's result, or the allowed error it raised (any other exception propagates)."""
    try:
        return call()
    except allowed as err:
        return err


def assert_clear(result: object) -> None:
    """An error outcome must carry a message the CLI can print on one line."""
    if isinstance(result, Exception):
        assert str(result).strip()


def write_bytes(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- config files -------------------------------------------------------------------------


@FUZZ
@given(text=TOML_TEXT)
def test_edge_config_text_gives_a_config_or_a_config_error(tmp_path: Path, text: str) -> None:
    """Random TOML-ish text as ``edge.toml``: a config or ConfigError, never another exception."""
    path = write_bytes(tmp_path, "edge.toml", text.encode("utf-8", "surrogatepass"))
    assert_clear(outcome(lambda: load_config(path), ConfigError))


@FUZZ
@given(data=st.binary(max_size=300))
def test_edge_config_bytes_that_are_not_utf8_are_a_config_error(tmp_path: Path, data: bytes) -> None:
    """Random bytes as ``edge.toml`` (mostly not UTF-8): ConfigError, never UnicodeDecodeError."""
    assert_clear(outcome(lambda: load_config(write_bytes(tmp_path, "edge.toml", data)), ConfigError))


@FUZZ
@given(text=TOML_TEXT)
def test_pad_config_text_gives_a_config_or_a_config_error(tmp_path: Path, text: str) -> None:
    """Random TOML-ish text as the PAD's ``pad.toml``: PadConfig or ConfigError only
    (an ``mqtt_file`` it names that is missing or bad is a ConfigError too)."""
    path = write_bytes(tmp_path, "pad.toml", text.encode("utf-8", "surrogatepass"))
    assert_clear(outcome(lambda: load_pad_config(path), ConfigError))


def test_pad_config_naming_a_folder_or_a_bad_mqtt_file_is_a_config_error(tmp_path: Path) -> None:
    """``mqtt_file`` pointing at a folder, at invalid TOML or at a non-table ``mqtt`` key:
    each a ConfigError that names the problem."""
    (tmp_path / "bad.toml").write_text("mqtt = [", encoding="utf-8")
    (tmp_path / "scalar.toml").write_text("mqtt = 3", encoding="utf-8")
    for target in ("sub", "bad.toml", "scalar.toml"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        pad = write_bytes(tmp_path, "pad.toml", f'mqtt_file = "{target}"\n'.encode())
        with pytest.raises(ConfigError):
            load_pad_config(pad)


SHIPPED_POLICY = Path(__file__).resolve().parents[2] / "edge" / "counter" / "policies.toml"


@FUZZ
@given(data=st.data())
def test_policy_file_mutations_load_or_are_an_auth_error(tmp_path: Path, data: st.DataObject) -> None:
    """The shipped ``policies.toml`` with random edits: Policies or AuthError, nothing else."""
    text = mutate(SHIPPED_POLICY.read_text(encoding="utf-8"), data)
    path = write_bytes(tmp_path, "policies.toml", text.encode("utf-8", "surrogatepass"))
    assert_clear(outcome(lambda: load_policies(path), AuthError))


@FUZZ
@given(data=st.binary(max_size=200))
def test_policy_file_of_random_bytes_is_an_auth_error(tmp_path: Path, data: bytes) -> None:
    """Random bytes as the policy file: AuthError (not UnicodeDecodeError)."""
    assert_clear(outcome(lambda: load_policies(write_bytes(tmp_path, "policies.toml", data)), AuthError))


PACK_TEXTS = [p.read_text(encoding="utf-8") for p in sorted(PACKS_DIR.glob("*.toml"))]


@FUZZ
@given(data=st.data())
def test_model_pack_manifest_mutations_parse_or_are_a_pack_error(data: st.DataObject) -> None:
    """A shipped model-pack manifest with random edits, parsed as TOML and handed to
    ``parse_pack``: a ModelPack or ModelPackError, never KeyError/TypeError/ValueError."""
    text = mutate(data.draw(st.sampled_from(PACK_TEXTS)), data)
    try:
        manifest = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return  # load_pack turns this into ModelPackError; the parser never sees it
    assert_clear(outcome(lambda: parse_pack(manifest, Path("fuzzed.toml")), ModelPackError))


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@FUZZ
@given(head=st.dictionaries(st.text(max_size=10), JSONISH, max_size=6),
       models=st.lists(st.dictionaries(st.text(max_size=10), JSONISH, max_size=8), max_size=3))
def test_model_pack_of_random_tables_is_a_pack_error(head: dict, models: list) -> None:
    """Arbitrary ``[pack]`` and ``[[model]]`` tables: ModelPackError, never another exception."""
    manifest = {"pack": head, "model": models}
    assert_clear(outcome(lambda: parse_pack(manifest, Path("fuzzed.toml")), ModelPackError))


# --- CRM imports ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crm(tmp_path_factory: pytest.TempPathFactory) -> CrmStore:
    store = CrmStore.open(tmp_path_factory.mktemp("crm") / "crm.db")
    yield store
    store.close()


CSV_CELL = st.text(max_size=30) | st.sampled_from(
    ["", "C1", "2026-01-01", "2026-13-45", "1,000", "-5", "nan", "inf", "1e400", "贵宾", "C3", "RM-01",
     '"', '""', "\r", "\n", ";", "x" * 300])


@FUZZ
@given(kind=st.sampled_from(KINDS), data=st.data())
def test_csv_rows_of_garbage_are_rejected_row_by_row(crm: CrmStore, tmp_path: Path, kind: str,
                                                      data: st.DataObject) -> None:
    """A CSV file with the right header and random rows: never an exception; every row
    is either applied or rejected with at least one reason."""
    width = len(REQUIRED[kind])
    rows = data.draw(st.lists(st.lists(CSV_CELL, min_size=0, max_size=width + 2), max_size=6))
    text = ",".join(REQUIRED[kind]) + "\n" + "\n".join(",".join(r) for r in rows)
    path = write_bytes(tmp_path, f"{kind}.csv", text.encode("utf-8", "surrogatepass"))
    report = import_file(crm, kind, path)
    assert all(r.reasons for r in report.rejected)
    assert len(report.rejected) + report.inserted + report.updated + report.unchanged == report.rows


@FUZZ
@given(kind=st.sampled_from(KINDS), data=st.binary(max_size=400))
def test_random_bytes_as_a_crm_file_are_a_crm_error_or_rejected_rows(crm: CrmStore, tmp_path: Path,
                                                                      kind: str, data: bytes) -> None:
    """Random bytes as ``.csv`` and ``.json``: CrmError (unreadable / wrong columns /
    not JSON) or a report; never UnicodeDecodeError, csv.Error or another exception."""
    for suffix in (".csv", ".json"):
        path = write_bytes(tmp_path, f"{kind}{suffix}", data)
        assert_clear(outcome(lambda p=path: import_file(crm, kind, p), CrmError))


@FUZZ
@given(kind=st.sampled_from(KINDS), records=st.lists(JSONISH, max_size=6))
def test_json_records_of_any_shape_are_rejected_not_crashed(crm: CrmStore, tmp_path: Path, kind: str,
                                                            records: list) -> None:
    """A JSON array of arbitrary values (objects with random keys, nested lists, nulls,
    floats): a report whose rejected rows all carry reasons."""
    path = write_bytes(tmp_path, f"{kind}.json", json.dumps(records).encode())
    report = import_file(crm, kind, path)
    assert all(r.reasons for r in report.rejected)
    assert len(report.rejected) + report.inserted + report.updated + report.unchanged == len(records)


def test_crm_edge_cases_found_by_fuzzing_are_user_errors(crm: CrmStore, tmp_path: Path) -> None:
    """A CSV cell larger than the csv module's field limit and JSON nested deeper than
    the recursion limit are CrmError (before the fix: csv.Error and RecursionError)."""
    header = ",".join(REQUIRED["customers"])
    huge = write_bytes(tmp_path, "big.csv", f'{header}\nC1,"{"x" * 200_000}"\n'.encode())
    with pytest.raises(CrmError, match=r"big\.csv"):
        import_file(crm, "customers", huge)
    deep = write_bytes(tmp_path, "deep.json", b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(CrmError, match=r"deep\.json"):
        import_file(crm, "customers", deep)


# --- images --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_jpeg(data_dir: Path) -> bytes:
    path = next(iter(sorted((data_dir / "faces_asia").glob("*/*.jpg"))))
    return path.read_bytes()


@FUZZ
@given(data=st.binary(max_size=2000))
def test_random_bytes_decode_to_an_image_error(data: bytes) -> None:
    """Random bytes (sometimes behind a JPEG/PNG/BMP magic number): ImageError or an
    HxWx3 uint8 array, never a cv2.error or another exception."""
    for prefix in (b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"RIFF"):
        try:
            image = decode_image(prefix + data)
        except ImageError:
            continue
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_real_jpeg_decodes_or_is_an_image_error(real_jpeg: bytes, data: st.DataObject) -> None:
    """A real face JPEG with random bytes overwritten, a cut, or a spliced block: an
    image or ImageError only."""
    buf = bytearray(real_jpeg)
    for _ in range(data.draw(st.integers(1, 20))):
        buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        buf = buf[: data.draw(st.integers(0, len(buf)))]
    try:
        image = decode_image(bytes(buf))
    except ImageError:
        return
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8


def test_decompression_bomb_header_is_refused() -> None:
    """A small PNG/JPEG whose header claims a huge canvas: ImageError (too large or
    corrupt), not a memory blow-up."""
    jpeg = bytearray(encode_jpeg(np.zeros((8, 8, 3), np.uint8)))
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5: sof + 9] = (60000).to_bytes(2, "big") * 2  # 60000 x 60000 pixels
    with pytest.raises(ImageError):
        decode_image(bytes(jpeg))
