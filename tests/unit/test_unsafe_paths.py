"""Files named by a user or a config are read bounded and only when they are regular files.

Before: a config path pointing at /dev/zero ended in MemoryError, a FIFO blocked
forever, and a huge file was read whole before being refused.  Each loader is
checked with a device, a FIFO, a symlink to a device and a sparse oversized file
(which costs no disk); ``tracemalloc`` shows the oversized file is never read.
"""

from __future__ import annotations

import os
import stat
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.config import MAX_CONFIG_BYTES, load_config
from edge.core.errors import BranchEdgeError, ConfigError, StoreError
from edge.core.files import (
    UnsafeFileError,
    create_private_file,
    open_private,
    private_dir,
    read_regular_file,
    write_private_bytes,
)
from edge.counter.policies import AuthError, load_policies
from edge.store.crypto import MAX_KEY_FILE_BYTES, read_key_file
from ui.state.config import load_pad_config


def fifo(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    os.mkfifo(path, 0o600)
    return path


def sparse(tmp_path: Path, name: str, size: int) -> Path:
    path = tmp_path / name
    with path.open("wb") as out:
        out.truncate(size)
    path.chmod(0o600)
    return path


def peak_bytes(call: Callable[[], object], error: type[Exception]) -> tuple[Exception, int]:
    """The error ``call`` raised and the peak memory Python allocated meanwhile."""
    tracemalloc.start()
    try:
        with pytest.raises(error) as caught:
            call()
        return caught.value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def targets(tmp_path: Path, name: str) -> dict[str, Path]:
    link = tmp_path / f"link-{name}"
    link.symlink_to("/dev/zero")
    return {"device": Path("/dev/zero"), "fifo": fifo(tmp_path, name), "symlink to a device": link}


LOADERS: dict[str, tuple[Callable[[Path], object], type[Exception]]] = {
    "edge config": (load_config, ConfigError),
    "pad config": (load_pad_config, ConfigError),
    "policy file": (load_policies, AuthError),
}


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_config_paths_to_devices_and_fifos_are_refused(loader: str, tmp_path: Path) -> None:
    load, error = LOADERS[loader]
    for path in targets(tmp_path, "x.toml").values():
        with pytest.raises(error, match="not a regular file"):
            load(path)


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_an_oversized_config_is_refused_without_being_read(loader: str, tmp_path: Path) -> None:
    load, error = LOADERS[loader]
    big = sparse(tmp_path, "big.toml", 100 * 1024 * 1024)
    err, peak = peak_bytes(lambda: load(big), error)
    assert "byte limit" in str(err)
    assert peak < 10 * MAX_CONFIG_BYTES


def test_pad_config_mqtt_file_pointing_at_a_device_is_refused(tmp_path: Path) -> None:
    pad = tmp_path / "pad.toml"
    pad.write_text('branch_id = "b1"\nmqtt_file = "/dev/zero"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="not a regular file"):
        load_pad_config(pad)


def test_key_files_are_bounded_and_regular(tmp_path: Path) -> None:
    for path in targets(tmp_path, "edge.key").values():
        with pytest.raises(StoreError, match="not a regular file"):
            read_key_file(path)
    big = sparse(tmp_path, "big.key", 100 * 1024 * 1024)
    err, peak = peak_bytes(lambda: read_key_file(big), StoreError)
    assert "byte limit" in str(err)
    assert peak < 1024 * 1024 + 10 * MAX_KEY_FILE_BYTES


def test_read_regular_file_reads_exactly_up_to_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert read_regular_file(path, 100) == b"x" * 100
    with pytest.raises(UnsafeFileError) as caught:
        read_regular_file(path, 99, "photo")
    assert caught.value.code == "too_large" and "photo" in str(caught.value)
    with pytest.raises(UnsafeFileError) as folder:
        read_regular_file(tmp_path, 100)
    assert folder.value.code == "is_a_folder"
    with pytest.raises(UnsafeFileError) as missing:
        read_regular_file(tmp_path / "absent", 100)
    assert missing.value.code == "missing"
    assert isinstance(missing.value, BranchEdgeError)


def test_private_files_and_folders_are_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o000)
    try:
        folder = private_dir(tmp_path / "a" / "b")
        created = create_private_file(tmp_path / "c" / "journal.db")
        with open_private(tmp_path / "d" / "report.csv") as out:
            out.write("name\n")
        loose = tmp_path / "loose.bin"
        loose.write_bytes(b"old")
        loose.chmod(0o644)
        write_private_bytes(loose, b"secret")
    finally:
        os.umask(old)
    for path in (folder, folder.parent, created.parent, tmp_path / "d"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    for path in (created, tmp_path / "d" / "report.csv", loose):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert loose.read_bytes() == b"secret"
