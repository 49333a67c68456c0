"""Gallery packages received over MQTT in chunks, kept on disk until whole (resumable).

Every chunk names its package (digest, size, chunk count), so chunks may come in any order,
twice, or across restarts of the daemon: each one is checked (its own digest, its length,
its place) and written as one file under ``<state>/<package sha256>/``; the package is put
together when the last piece is there and must have the announced digest.  At most
:data:`MAX_IN_PROGRESS` packages are kept half-received; the oldest beyond that is dropped
(head office sends it again).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import shutil
from pathlib import Path

from mqtt.files import create_private, private_dir, read_bounded
from mqtt.messages import GALLERY_CHUNK_BYTES, GalleryChunk
from mqtt.package import MAX_PACKAGE_BYTES

MAX_IN_PROGRESS = 4


class ChunkError(ValueError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def chunk_count(size: int) -> int:
    return -(-size // GALLERY_CHUNK_BYTES)


class Assembler:
    def __init__(self, folder: Path, max_bytes: int = MAX_PACKAGE_BYTES) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        private_dir(folder)

    def add(self, chunk: GalleryChunk) -> bytes | None:
        """Keep ``chunk``; the whole package's bytes once every chunk is there, else None.

        Raises:
            ChunkError: the chunk contradicts itself or what came before (dropped), or the
                whole package does not have its announced digest (every piece dropped).
        """
        self._check(chunk)
        data = self._decode(chunk)
        where = self.folder / chunk.package_sha256
        manifest = {"version": chunk.package_version, "size": chunk.size, "chunks": chunk.chunk_count}
        if where.is_dir():
            if json.loads(read_bounded(where / "manifest.json", 4096, "manifest")) != manifest:
                raise ChunkError("inconsistent", "chunk's package description differs from earlier chunks")
        else:
            self._make_room()
            private_dir(where)
            _write(where / "manifest.json", json.dumps(manifest).encode())
        _write(where / f"{chunk.index:06d}.part", data)
        if self.missing(chunk.package_sha256):
            return None
        whole = b"".join(read_bounded(where / f"{i:06d}.part", GALLERY_CHUNK_BYTES, "chunk")
                         for i in range(chunk.chunk_count))
        if hashlib.sha256(whole).hexdigest() != chunk.package_sha256:
            self.discard(chunk.package_sha256)
            raise ChunkError("digest_mismatch", "the reassembled package does not have its announced digest")
        return whole

    def missing(self, package_sha256: str) -> list[int]:
        where = self.folder / package_sha256
        try:
            manifest = json.loads(read_bounded(where / "manifest.json", 4096, "manifest"))
        except (OSError, ValueError):
            return []
        have = {int(p.stem) for p in where.glob("*.part") if p.stem.isdigit()}
        return [i for i in range(int(manifest["chunks"])) if i not in have]

    def in_progress(self) -> list[str]:
        return sorted(p.name for p in self.folder.iterdir() if p.is_dir())

    def discard(self, package_sha256: str) -> None:
        shutil.rmtree(self.folder / package_sha256, ignore_errors=True)

    def _check(self, chunk: GalleryChunk) -> None:
        if not 0 < chunk.size <= self.max_bytes:
            raise ChunkError("too_large", f"package of {chunk.size} bytes is outside 1..{self.max_bytes}")
        if chunk.chunk_count != chunk_count(chunk.size) or not 0 <= chunk.index < chunk.chunk_count:
            raise ChunkError("bad_chunk", "chunk count or index does not fit the package size")
        if chunk.package_version < 1:
            raise ChunkError("bad_chunk", "package version must be positive")

    def _decode(self, chunk: GalleryChunk) -> bytes:
        try:
            data = base64.b64decode(chunk.data_b64, validate=True)
        except (binascii.Error, ValueError) as err:
            raise ChunkError("bad_chunk", "chunk data is not base64") from err
        last = chunk.index == chunk.chunk_count - 1
        expected = chunk.size - GALLERY_CHUNK_BYTES * (chunk.chunk_count - 1) if last else GALLERY_CHUNK_BYTES
        if len(data) != expected or hashlib.sha256(data).hexdigest() != chunk.chunk_sha256:
            raise ChunkError("bad_chunk", "chunk length or digest does not match")
        return data

    def _make_room(self) -> None:
        folders = sorted((p for p in self.folder.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        for old in folders[:max(0, len(folders) - MAX_IN_PROGRESS + 1)]:
            shutil.rmtree(old, ignore_errors=True)


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    create_private(tmp)
    with tmp.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
