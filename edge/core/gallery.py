"""The gallery: enrolled face templates in memory, top-k search, open-set decision.

Public API (everything else is an implementation detail)::

    gallery = Gallery(dim=128)                       # exact float32 search
    gallery = Gallery(dim=128, index=some_index)     # any TemplateIndex of that dimension
    gallery.add(["C001", "C001", "C002"], embeddings)   # one customer id per row
    gallery.remove("C001")                           # -> number of templates removed
    gallery.search(query, k=10)                      # -> [CustomerScore], best per customer
    gallery.identify(query, threshold=0.43, margin=0.05)   # -> Decision
    gallery.search_batch(queries, k) / gallery.identify_batch(queries, threshold, margin)
    len(gallery)        # templates held
    gallery.customers   # frozenset of customer ids held
    gallery.nbytes      # bytes of the index's own arrays

Embeddings are L2-normalised on the way in (queries too), so scores are cosine
similarities.  Open-set rule: accept the best customer only when its score is at
least ``threshold`` **and** it beats the best score of a *different* customer (the
runner-up) by at least ``margin``; otherwise the person is unknown, with the reason
``below_threshold`` or ``ambiguous``.

Backends (the ``TemplateIndex`` searched): ``exact`` is a float32 numpy matrix (exact,
the default for a branch); ``int8`` scans int8 codes with a per-dimension scale (a
quarter of the memory, score error bounded by ``Int8Quantiser.score_error_bound``);
``ivf`` is a faiss inverted-file index over 8-bit codes, for galleries of about a
million templates built in one batch (approximate; its agreement with exact search is
measured by ``branch-edge bench gallery``).  The core holds only the exact one; the
faiss backends live in ``edge.vision.faiss_index`` and are passed in by the caller
that knows faiss: ``edge.vision.gallery_index.make_gallery(dim, backend)`` builds a
gallery from the configuration's backend name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

Reason = Literal["accepted", "below_threshold", "ambiguous", "empty_gallery"]

F32 = NDArray[np.float32]
I64 = NDArray[np.int64]

# Largest int8 code used; -128 is left out so that the code range is symmetric.
INT8_MAX = 127
# Below this a per-dimension scale is treated as zero-range (all values ~0).
MIN_SCALE = 1e-12
# Score matrices of batched exact search are built in chunks of about this many floats.
EXACT_CHUNK_FLOATS = 1 << 23


class GalleryError(ValueError):
    """Bad input to the gallery (shape, dimension, non-finite or zero vectors, ids)."""


@dataclass(frozen=True)
class CustomerScore:
    customer_id: str
    score: float


@dataclass(frozen=True)
class Decision:
    """Outcome of one open-set identification."""

    reason: Reason
    best: CustomerScore | None
    runner_up: CustomerScore | None
    threshold: float
    margin: float

    @property
    def accepted(self) -> bool:
        return self.reason == "accepted"

    @property
    def customer_id(self) -> str | None:
        """The identified customer, or None for an unknown person."""
        return self.best.customer_id if self.accepted and self.best else None

    @property
    def gap(self) -> float | None:
        """Best minus runner-up score (None when there is no runner-up)."""
        if self.best is None or self.runner_up is None:
            return None
        return self.best.score - self.runner_up.score


def check_dim(dim: int) -> int:
    if not 1 <= dim <= 4096:
        raise GalleryError(f"embedding dimension must be within [1, 4096], got {dim}")
    return dim


def check_rule(threshold: float, margin: float) -> None:
    if not -1.0 <= threshold <= 1.0:
        raise GalleryError(f"threshold must be within [-1, 1], got {threshold}")
    if not 0.0 <= margin <= 2.0:
        raise GalleryError(f"margin must be within [0, 2], got {margin}")


def decide(ranked: Sequence[CustomerScore], threshold: float, margin: float) -> Decision:
    """Open-set decision over customers ranked best first (one entry per customer).

    A gallery with a single candidate customer has no runner-up; the margin rule is
    then satisfied (nobody else to confuse the person with).
    """
    check_rule(threshold, margin)
    best = ranked[0] if ranked else None
    runner_up = ranked[1] if len(ranked) > 1 else None
    reason: Reason
    if best is None:
        reason = "empty_gallery"
    elif best.score < threshold:
        reason = "below_threshold"
    elif runner_up is not None and best.score - runner_up.score < margin:
        reason = "ambiguous"
    else:
        reason = "accepted"
    return Decision(reason, best, runner_up, threshold, margin)


def best_per_owner(scores: ArrayLike, owners: ArrayLike) -> list[tuple[int, float]]:
    """Group top-k template hits by owner: each owner's best score, best first.

    ``owners`` are customer indices; negative ones (padding, removed) are skipped.
    Ties keep the order of first appearance, so the result is deterministic.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    o = np.asarray(owners, dtype=np.int64).ravel()
    if s.shape != o.shape:
        raise GalleryError("scores and owners must have the same length")
    best: dict[int, float] = {}
    for owner, score in zip(o.tolist(), s.tolist(), strict=True):
        if owner >= 0 and (owner not in best or score > best[owner]):
            best[owner] = score
    return sorted(best.items(), key=lambda item: -item[1])


def top_k(scores: F32, k: int) -> tuple[F32, I64]:
    """Row-wise top-k of a (n, m) score matrix: (scores, column indices), best first."""
    n, m = scores.shape
    k = min(k, m)
    if k <= 0:
        return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < m else np.tile(np.arange(m), (n, 1))
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    return (np.take_along_axis(part_scores, order, axis=1).astype(np.float32),
            np.take_along_axis(part, order, axis=1).astype(np.int64))


def normalise_rows(vectors: ArrayLike, dim: int) -> F32:
    """Validate an (n, dim) or (dim,) array and return L2-normalised float32 rows."""
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != dim:
        raise GalleryError(f"expected vectors of dimension {dim}, got shape {np.shape(vectors)}")
    if not np.all(np.isfinite(x)):
        raise GalleryError("vectors contain NaN or infinite values")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms <= 1e-12):
        raise GalleryError("a zero vector cannot be normalised")
    return np.ascontiguousarray(x / norms, dtype=np.float32)


@dataclass(frozen=True)
class Int8Quantiser:
    """Symmetric int8 codes with one scale per dimension: ``x ~ scale * code``.

    For values within range (``covers``) the round-trip error of each component is
    at most ``scale / 2``; a score ``q . x`` is then off by at most
    ``score_error_bound(q)``.  Out-of-range values are clipped.
    """

    scale: F32 = field(repr=False)

    @classmethod
    def fit(cls, vectors: F32, headroom: float = 1.25) -> Int8Quantiser:
        """Scale so that ``headroom`` times each dimension's largest magnitude fits."""
        if headroom < 1.0:
            raise GalleryError("headroom must be at least 1")
        peak = np.abs(np.asarray(vectors, dtype=np.float32)).max(axis=0) if len(vectors) else None
        if peak is None:
            raise GalleryError("cannot fit a quantiser on no vectors")
        scale = np.maximum(peak * np.float32(headroom) / INT8_MAX, MIN_SCALE)
        return cls(scale.astype(np.float32))

    def covers(self, vectors: F32) -> bool:
        return bool(np.all(np.abs(vectors) <= self.scale * INT8_MAX))

    def encode(self, vectors: F32) -> NDArray[np.int8]:
        codes = np.rint(np.asarray(vectors, dtype=np.float32) / self.scale)
        clipped: NDArray[np.int8] = np.clip(codes, -INT8_MAX, INT8_MAX).astype(np.int8)
        return clipped

    def decode(self, codes: NDArray[np.int8]) -> F32:
        return (codes.astype(np.float32) * self.scale).astype(np.float32)

    def widened(self, vectors: F32, headroom: float = 1.25) -> Int8Quantiser:
        """A quantiser covering both the current range and ``vectors``."""
        return Int8Quantiser(np.maximum(self.scale, Int8Quantiser.fit(vectors, headroom).scale))

    def score_error_bound(self, query: F32) -> float:
        return float(np.abs(query).astype(np.float64) @ self.scale.astype(np.float64) / 2.0)


class TemplateIndex(Protocol):
    """What the gallery needs from a backend: templates keyed by int64 template id."""

    @property
    def dim(self) -> int: ...

    def add(self, ids: I64, vectors: F32) -> None: ...

    def remove(self, ids: I64) -> None: ...

    def search(self, queries: F32, k: int) -> tuple[F32, I64]:
        """(scores, ids), each (n, k), best first; missing entries have id -1."""
        ...

    def __len__(self) -> int: ...

    @property
    def nbytes(self) -> int: ...


class ExactIndex:
    """Float32 rows in a growable numpy matrix; brute-force inner product."""

    def __init__(self, dim: int) -> None:
        self._vectors = np.zeros((0, dim), np.float32)
        self._ids = np.zeros(0, np.int64)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def dim(self) -> int:
        return int(self._vectors.shape[1])

    @property
    def nbytes(self) -> int:
        return int(self._vectors.nbytes + self._ids.nbytes)

    def add(self, ids: I64, vectors: F32) -> None:
        end = self._size + len(ids)
        if end > len(self._ids):
            self._grow(max(end, len(self._ids) * 3 // 2))
        self._vectors[self._size:end] = vectors
        self._ids[self._size:end] = ids
        self._size = end

    def _grow(self, capacity: int) -> None:
        vectors = np.zeros((capacity, self._vectors.shape[1]), np.float32)
        ids = np.full(capacity, -1, np.int64)
        vectors[: self._size] = self._vectors[: self._size]
        ids[: self._size] = self._ids[: self._size]
        self._vectors, self._ids = vectors, ids

    def remove(self, ids: I64) -> None:
        keep = ~np.isin(self._ids[: self._size], ids)
        kept = int(keep.sum())
        self._vectors[:kept] = self._vectors[: self._size][keep]
        self._ids[:kept] = self._ids[: self._size][keep]
        # Zero the freed rows: nothing of a removed template stays in memory.
        self._vectors[kept: self._size] = 0.0
        self._ids[kept: self._size] = -1
        self._size = kept

    def search(self, queries: F32, k: int) -> tuple[F32, I64]:
        n, k = len(queries), min(k, self._size)
        scores, ids = np.zeros((n, k), np.float32), np.full((n, k), -1, np.int64)
        chunk = max(1, EXACT_CHUNK_FLOATS // max(self._size, 1))
        matrix = self._vectors[: self._size]
        for start in range(0, n, chunk):
            block = queries[start: start + chunk] @ matrix.T
            s, cols = top_k(block, k)
            scores[start: start + chunk], ids[start: start + chunk] = s, self._ids[: self._size][cols]
        return scores, ids


class Gallery:
    """Templates of enrolled customers (several each) with open-set identification.

    ``index`` is the template index to search (an empty one of dimension ``dim``);
    without it the gallery searches exactly with an :class:`ExactIndex`.
    """

    def __init__(self, dim: int, index: TemplateIndex | None = None) -> None:
        check_dim(dim)
        if index is not None and (index.dim != dim or len(index)):
            raise GalleryError(f"the index must be empty and of dimension {dim}")
        self.dim = dim
        self._index: TemplateIndex = index if index is not None else ExactIndex(dim)
        self._owner = np.zeros(0, np.int32)  # template id -> customer index, -1 once removed
        self._next_id = 0
        self._names: list[str] = []  # customer index -> id
        self._index_of: dict[str, int] = {}
        self._count: dict[int, int] = {}  # customer index -> templates held
        self._max_per_customer = 0

    def __len__(self) -> int:
        return len(self._index)

    @property
    def customers(self) -> frozenset[str]:
        return frozenset(self._names[i] for i in self._count)

    @property
    def index(self) -> TemplateIndex:
        """The backend index (for its parameters, e.g. ivf ``nlist``/``nprobe``)."""
        return self._index

    @property
    def nbytes(self) -> int:
        """Bytes of the index and of the template-to-customer map (not the id strings)."""
        return int(self._index.nbytes + self._owner.nbytes)

    def add(self, customer_ids: Sequence[str], embeddings: ArrayLike) -> None:
        """Add one template per row; ``customer_ids[i]`` owns ``embeddings[i]``."""
        vectors = normalise_rows(embeddings, self.dim)
        if len(customer_ids) != len(vectors):
            raise GalleryError(f"{len(customer_ids)} customer ids for {len(vectors)} embeddings")
        if not all(isinstance(c, str) and c for c in customer_ids):
            raise GalleryError("customer ids must be non-empty strings")
        owners = np.fromiter((self._customer_index(c) for c in customer_ids), np.int32, len(vectors))
        ids = np.arange(self._next_id, self._next_id + len(vectors), dtype=np.int64)
        self._index.add(ids, vectors)
        self._remember(ids, owners)

    def _customer_index(self, customer_id: str) -> int:
        index = self._index_of.get(customer_id)
        if index is None:
            index = self._index_of[customer_id] = len(self._names)
            self._names.append(customer_id)
        return index

    def _remember(self, ids: I64, owners: NDArray[np.int32]) -> None:
        end = self._next_id + len(ids)
        if end > len(self._owner):
            grown = np.full(max(end, len(self._owner) * 3 // 2), -1, np.int32)
            grown[: len(self._owner)] = self._owner
            self._owner = grown
        self._owner[ids] = owners
        self._next_id = end
        added, counts = np.unique(owners, return_counts=True)
        for owner, count in zip(added.tolist(), counts.tolist(), strict=True):
            self._count[owner] = self._count.get(owner, 0) + count
            self._max_per_customer = max(self._max_per_customer, self._count[owner])

    def remove(self, customer_id: str) -> int:
        """Remove every template of ``customer_id``; returns how many there were."""
        index = self._index_of.get(customer_id)
        if index is None or index not in self._count:
            return 0
        ids = np.flatnonzero(self._owner[: self._next_id] == index).astype(np.int64)
        self._index.remove(ids)
        self._owner[ids] = -1
        del self._count[index]
        # Forget the id itself too; the index slot is never reused.
        del self._index_of[customer_id]
        self._names[index] = ""
        self._max_per_customer = max(self._count.values(), default=0)
        return len(ids)

    def search_batch(self, queries: ArrayLike, k: int = 10) -> list[list[CustomerScore]]:
        """Best score per customer among the top templates, best first, per query.

        At least ``max templates per customer + 1`` templates are fetched so that an
        exact search always sees the runner-up customer.
        """
        q = normalise_rows(queries, self.dim)
        if len(self._index) == 0:
            return [[] for _ in range(len(q))]
        fetch = max(k, self._max_per_customer + 1)
        scores, ids = self._index.search(q, fetch)
        owners = np.where(ids >= 0, self._owner[np.clip(ids, 0, None)], -1)
        return [
            [CustomerScore(self._names[o], s) for o, s in best_per_owner(row_s, row_o)[:k]]
            for row_s, row_o in zip(scores, owners, strict=True)
        ]

    def search(self, query: ArrayLike, k: int = 10) -> list[CustomerScore]:
        return self.search_batch(np.reshape(np.asarray(query, np.float32), (1, -1)), k)[0]

    def identify_batch(self, queries: ArrayLike, threshold: float, margin: float,
                       k: int = 10) -> list[Decision]:
        check_rule(threshold, margin)
        return [decide(ranked, threshold, margin) for ranked in self.search_batch(queries, max(k, 2))]

    def identify(self, query: ArrayLike, threshold: float, margin: float, k: int = 10) -> Decision:
        return self.identify_batch(np.reshape(np.asarray(query, np.float32), (1, -1)), threshold,
                                   margin, k)[0]
