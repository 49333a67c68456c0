"""faiss-backed template indexes for the gallery's ``int8`` and ``ivf`` backends.

Both implement ``edge.core.gallery.TemplateIndex``.  faiss only does the scanning:

* ``Int8Index`` holds the codes of ``Int8Quantiser`` (one scale per dimension) in a
  faiss ``IndexScalarQuantizer``.  faiss's 8-bit codec reconstructs
  ``vmin + vdiff * (code + 0.5) / 255``; with ``vmin = -127.5 * scale`` and
  ``vdiff = 255 * scale`` that is exactly ``scale * (code - 127)``, i.e. our int8
  code, so scores equal ``q . quantiser.decode(quantiser.encode(x))``.
  (faiss 1.15.1's "direct" 8-bit codecs return zero inner products, so they are not used.)
* ``IvfIndex`` is ``IndexIVFScalarQuantizer`` (8-bit residual codes, inner product),
  trained on its first batch: ``nlist`` ~ 2 sqrt(n) lists, ``nprobe`` = nlist / 6 by
  default (tuned at one million templates, see ``docs/readme/gallery.md``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import faiss
import numpy as np

from edge.core.gallery import F32, I64, GalleryError, Int8Quantiser

# faiss k-means wants at least this many training points per list.
MIN_POINTS_PER_LIST = 39
TRAIN_POINTS_PER_LIST = 100  # k-means sample; faiss advises 39 to 256 per list
DEFAULT_PROBE_FRACTION = 1 / 6


@contextmanager
def threads_for(n_queries: int) -> Iterator[None]:
    """One OpenMP thread for a single query (faiss would use one anyway, but waking
    the idle pool costs milliseconds on a busy 2-core PC); all threads for batches."""
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1 if n_queries == 1 else previous)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


class Int8Index:
    """Exact scan over int8 codes (per-dimension scale) stored by faiss."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.quantiser: Int8Quantiser | None = None
        self._index = self._empty_index(None)
        self._ids = np.zeros(0, np.int64)  # row position -> template id

    def _empty_index(self, quantiser: Int8Quantiser | None) -> faiss.IndexScalarQuantizer:
        index = faiss.IndexScalarQuantizer(self.dim, faiss.ScalarQuantizer.QT_8bit,
                                           faiss.METRIC_INNER_PRODUCT)
        if quantiser is not None:
            trained = np.concatenate([-127.5 * quantiser.scale, 255.0 * quantiser.scale]).astype(np.float32)
            faiss.copy_array_to_vector(trained, index.sq.trained)
            index.is_trained = True
        return index

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def nbytes(self) -> int:
        return int(self._index.ntotal * self._index.code_size + self._ids.nbytes + 8 * self.dim)

    def add(self, ids: I64, vectors: F32) -> None:
        if self.quantiser is None:
            self.quantiser = Int8Quantiser.fit(vectors)
            self._index = self._empty_index(self.quantiser)
        elif not self.quantiser.covers(vectors):
            self._requantise(self.quantiser.widened(vectors))
        self._index.add(np.ascontiguousarray(vectors, np.float32))
        self._ids = np.concatenate([self._ids, ids.astype(np.int64)])

    def _requantise(self, quantiser: Int8Quantiser) -> None:
        """Re-encode what is held with a wider scale (rare: a value out of range)."""
        held = self._index.reconstruct_n(0, self._index.ntotal) if len(self) else None
        self.quantiser = quantiser
        self._index = self._empty_index(quantiser)
        if held is not None:
            self._index.add(held)

    def remove(self, ids: I64) -> None:
        gone = np.isin(self._ids, ids)
        if gone.any():
            self._index.remove_ids(faiss.IDSelectorBatch(np.flatnonzero(gone).astype(np.int64)))
            self._ids = self._ids[~gone]

    def search(self, queries: F32, k: int) -> tuple[F32, I64]:
        with threads_for(len(queries)):
            scores, rows = self._index.search(np.ascontiguousarray(queries, np.float32), min(k, len(self)))
        return scores.astype(np.float32), np.where(rows >= 0, self._ids[np.clip(rows, 0, None)], -1)

    def codes(self) -> np.ndarray:
        """The int8 codes held, row by row (for tests and audits)."""
        raw = faiss.vector_to_array(self._index.codes).reshape(len(self), self.dim)
        return (raw.astype(np.int16) - 127).astype(np.int8)


def auto_nlist(n: int) -> int:
    """About 2 * sqrt(n) lists, but never fewer than 39 training points per list."""
    return max(1, min(round(2 * math.sqrt(n)), n // MIN_POINTS_PER_LIST))


class IvfIndex:
    """faiss IVF over 8-bit residual codes; lists are trained on the first batch."""

    def __init__(self, dim: int, nlist: int = 0, nprobe: int = 0) -> None:
        if nlist < 0 or nprobe < 0:
            raise GalleryError("nlist and nprobe must be positive (0 = automatic)")
        self.dim, self.nlist, self.nprobe = dim, nlist, nprobe
        self._coarse: faiss.IndexFlatIP | None = None  # must outlive the IVF index
        self._index: faiss.IndexIVFScalarQuantizer | None = None

    def __len__(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)

    @property
    def nbytes(self) -> int:
        if self._index is None:
            return 0
        per_template = self._index.code_size + 8  # code + int64 id in the inverted list
        return int(self._index.ntotal * per_template + self.nlist * self.dim * 4 + 8 * self.dim)

    def add(self, ids: I64, vectors: F32) -> None:
        if self._index is None:
            self._train(vectors)
        assert self._index is not None
        self._index.add_with_ids(np.ascontiguousarray(vectors, np.float32), ids.astype(np.int64))

    def _train(self, vectors: F32) -> None:
        self.nlist = min(self.nlist or auto_nlist(len(vectors)), len(vectors))
        self.nprobe = min(self.nprobe or math.ceil(self.nlist * DEFAULT_PROBE_FRACTION), self.nlist)
        self._coarse = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFScalarQuantizer(self._coarse, self.dim, self.nlist,
                                              faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        sample_size = min(len(vectors), self.nlist * TRAIN_POINTS_PER_LIST)
        sample = np.random.default_rng(0).choice(len(vectors), sample_size, replace=False)
        index.train(np.ascontiguousarray(vectors[np.sort(sample)], np.float32))
        index.nprobe = self.nprobe
        self._index = index

    def remove(self, ids: I64) -> None:
        if self._index is not None and len(ids):
            self._index.remove_ids(faiss.IDSelectorBatch(ids.astype(np.int64)))

    def search(self, queries: F32, k: int) -> tuple[F32, I64]:
        assert self._index is not None
        with threads_for(len(queries)):
            scores, ids = self._index.search(np.ascontiguousarray(queries, np.float32), min(k, len(self)))
        return scores.astype(np.float32), ids.astype(np.int64)


def make_faiss_index(backend: str, dim: int, **options: float) -> Int8Index | IvfIndex:
    if backend == "int8":
        if options:
            raise GalleryError(f"the int8 backend takes no options, got {sorted(options)}")
        return Int8Index(dim)
    if backend == "ivf":
        unknown = set(options) - {"nlist", "nprobe"}
        if unknown:
            raise GalleryError(f"unknown ivf options {sorted(unknown)}")
        return IvfIndex(dim, int(options.get("nlist", 0)), int(options.get("nprobe", 0)))
    raise GalleryError(f"unknown faiss backend {backend!r}")
