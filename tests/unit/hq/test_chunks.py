"""A branch putting a package together from chunks (edge.fleet.chunks): any order, twice,
across restarts; a chunk that contradicts itself or the others is refused, and a package
that does not have its announced digest is dropped whole."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest

from edge.fleet.chunks import MAX_IN_PROGRESS, Assembler, ChunkError
from hq.packages import chunks
from mqtt.messages import GALLERY_CHUNK_BYTES, GalleryChunk


def package(size: int = 3 * GALLERY_CHUNK_BYTES + 100) -> bytes:
    return os.urandom(size)


def test_any_order_twice_and_after_a_restart(tmp_path):
    data = package()
    pieces = chunks("b1", data, 1)
    assert len(pieces) == 4
    first = Assembler(tmp_path)
    assert first.add(pieces[3]) is None and first.add(pieces[3]) is None
    assert first.missing(pieces[0].package_sha256) == [0, 1, 2]
    assert first.add(pieces[1]) is None
    again = Assembler(tmp_path)  # the daemon restarted: what came before is on disk
    assert again.missing(pieces[0].package_sha256) == [0, 2]
    assert again.add(pieces[0]) is None
    assert again.add(pieces[2]) == data


def with_(chunk: GalleryChunk, **changes) -> GalleryChunk:
    return GalleryChunk(**{**chunk.__dict__, **changes})


@pytest.mark.parametrize("changes", [
    {"chunk_count": 7}, {"index": 9}, {"size": 0}, {"chunk_sha256": "0" * 64},
    {"data_b64": "not base64!"}, {"package_version": 0},
    {"data_b64": base64.b64encode(b"short").decode(), "chunk_sha256": hashlib.sha256(b"short").hexdigest()},
])
def test_a_chunk_that_contradicts_itself_is_refused(tmp_path, changes):
    piece = chunks("b1", package(), 1)[0]
    with pytest.raises(ChunkError):
        Assembler(tmp_path).add(with_(piece, **changes))


def test_chunks_of_one_package_must_agree(tmp_path):
    pieces = chunks("b1", package(), 1)
    assembler = Assembler(tmp_path)
    assembler.add(pieces[0])
    with pytest.raises(ChunkError) as err:
        assembler.add(with_(pieces[1], package_version=2))
    assert err.value.reason == "inconsistent"


def test_a_package_without_its_announced_digest_is_dropped_whole(tmp_path):
    data = package(2 * GALLERY_CHUNK_BYTES)
    liar = "f" * 64
    assembler = Assembler(tmp_path)
    pieces = [with_(c, package_sha256=liar) for c in chunks("b1", data, 1)]
    assembler.add(pieces[0])
    with pytest.raises(ChunkError) as err:
        assembler.add(pieces[1])
    assert err.value.reason == "digest_mismatch"
    assert assembler.in_progress() == []


def test_at_most_a_few_packages_wait_half_received(tmp_path):
    assembler = Assembler(tmp_path)
    for n in range(MAX_IN_PROGRESS + 3):
        assembler.add(chunks("b1", package(2 * GALLERY_CHUNK_BYTES), n + 1)[0])
    assert len(assembler.in_progress()) == MAX_IN_PROGRESS
    assert all((tmp_path / p).stat().st_mode & 0o077 == 0 for p in assembler.in_progress())
