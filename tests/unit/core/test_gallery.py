"""The gallery: open-set decision rules, top-k grouping, removal, int8 codes, backends.

Plain arrays and Hypothesis properties; no timings (speed is the bench's job).
"""

from __future__ import annotations

import subprocess
import sys
import typing

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edge.config import GalleryConfig
from edge.core.gallery import (
    CustomerScore,
    ExactIndex,
    Gallery,
    GalleryError,
    Int8Quantiser,
    best_per_owner,
    decide,
    normalise_rows,
)
from edge.tools.bench.gallery import DataSpec, make_data
from edge.vision.faiss_index import Int8Index
from edge.vision.gallery_index import BACKENDS, make_gallery

DIM = 16


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force_best(ids: list[str], vectors: np.ndarray, query: np.ndarray) -> dict[str, float]:
    """Each customer's best cosine, computed the slow obvious way."""
    q = query / np.linalg.norm(query)
    best: dict[str, float] = {}
    for cid, v in zip(ids, vectors, strict=True):
        score = float(v @ q / np.linalg.norm(v))
        best[cid] = max(best.get(cid, -2.0), score)
    return best


def small_gallery(backend: str, rng: np.random.Generator, customers: int = 40,
                  per: int = 3) -> tuple[Gallery, list[str], np.ndarray]:
    ids = [f"C{i:03d}" for i in range(customers) for _ in range(per)]
    vectors = unit(rng, len(ids))
    gallery = make_gallery(DIM, backend)
    gallery.add(ids, vectors)
    return gallery, ids, vectors


# --- the open-set rule -------------------------------------------------------------

def test_decide_reasons_on_plain_values() -> None:
    a, b = CustomerScore("A", 0.75), CustomerScore("B", 0.5)
    assert decide([], 0.5, 0.1).reason == "empty_gallery"
    assert decide([CustomerScore("A", 0.25), b], 0.5, 0.1).reason == "below_threshold"
    assert decide([a, CustomerScore("B", 0.7)], 0.5, 0.1).reason == "ambiguous"
    accepted = decide([a, b], 0.5, 0.1)
    assert (accepted.reason, accepted.customer_id, accepted.gap) == ("accepted", "A", 0.25)
    # Boundaries are inclusive: score == threshold and gap == margin are accepted.
    assert decide([CustomerScore("A", 0.5), CustomerScore("B", 0.25)], 0.5, 0.25).accepted
    # A lone customer has no runner-up to be confused with.
    lone = decide([a], 0.5, 0.1)
    assert lone.accepted and lone.runner_up is None and lone.gap is None


def test_unknown_people_carry_no_customer_id() -> None:
    ambiguous = decide([CustomerScore("A", 0.8), CustomerScore("B", 0.79)], 0.5, 0.05)
    assert ambiguous.customer_id is None and not ambiguous.accepted
    assert ambiguous.best == CustomerScore("A", 0.8)  # kept for debugging, never as identity


@pytest.mark.parametrize(("threshold", "margin"), [(1.5, 0.1), (-1.1, 0.1), (0.5, -0.1), (0.5, 2.5)])
def test_decide_rejects_rules_out_of_range(threshold: float, margin: float) -> None:
    with pytest.raises(GalleryError):
        decide([CustomerScore("A", 0.9)], threshold, margin)


ranked_lists = st.lists(st.floats(-1.0, 1.0, allow_nan=False), max_size=6).map(
    lambda scores: [CustomerScore(f"C{i}", s) for i, s in enumerate(sorted(scores, reverse=True))])


@given(ranked=ranked_lists, threshold=st.floats(-1.0, 1.0), margin=st.floats(0.0, 2.0))
def test_decide_follows_threshold_and_margin(ranked: list[CustomerScore], threshold: float,
                                             margin: float) -> None:
    decision = decide(ranked, threshold, margin)
    if not ranked:
        assert decision.reason == "empty_gallery"
        return
    best = ranked[0].score
    clears_margin = len(ranked) == 1 or best - ranked[1].score >= margin
    assert decision.accepted == (best >= threshold and clears_margin)
    if best < threshold:
        assert decision.reason == "below_threshold"
    elif not clears_margin:
        assert decision.reason == "ambiguous"
    assert decision.customer_id == (ranked[0].customer_id if decision.accepted else None)
    if decision.runner_up is not None:
        assert decision.runner_up.customer_id != ranked[0].customer_id


@given(pairs=st.lists(st.tuples(st.integers(-2, 8), st.floats(-1.0, 1.0, allow_nan=False)), max_size=30))
def test_best_per_owner_keeps_each_owners_best(pairs: list[tuple[int, float]]) -> None:
    owners = [o for o, _ in pairs]
    scores = [s for _, s in pairs]
    grouped = best_per_owner(np.array(scores), np.array(owners, dtype=np.int64))
    expected = {o: max(s for oo, s in pairs if oo == o) for o in set(owners) if o >= 0}
    assert dict(grouped) == pytest.approx(expected)
    assert len(grouped) == len(expected)  # one entry per owner
    assert [s for _, s in grouped] == sorted((s for _, s in grouped), reverse=True)


# --- search and identify over real indexes ----------------------------------------

@pytest.mark.parametrize("backend", ["exact", "int8"])
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), customers=st.integers(2, 12), per=st.integers(1, 4))
def test_search_matches_brute_force_per_customer(backend: str, seed: int, customers: int, per: int) -> None:
    rng = np.random.default_rng(seed)
    gallery, ids, vectors = small_gallery(backend, rng, customers, per)
    query = unit(rng, 1)[0]
    expected = brute_force_best(ids, vectors, query)
    found = gallery.search(query, k=customers)
    # Enough templates are fetched to always see a second customer.
    assert len({c.customer_id for c in found}) == len(found) >= 2
    if backend == "exact":
        order = sorted(expected, key=lambda c: -expected[c])
        assert [c.customer_id for c in found] == order[: len(found)]
    # int8 may swap customers within its error bound, but its scores stay close.
    tolerance = 1e-5 if backend == "exact" else 0.02
    for hit in found:
        assert hit.score == pytest.approx(expected[hit.customer_id], abs=tolerance)


def test_runner_up_is_the_best_other_customer_even_with_many_close_templates() -> None:
    rng = np.random.default_rng(7)
    query = unit(rng, 1)[0]
    # Customer A has 15 templates all closer to the query than anyone else: a plain
    # top-10 would see only A and miss the runner-up entirely.
    close = normalise_rows(query + 0.05 * rng.standard_normal((15, DIM)).astype(np.float32), DIM)
    others = unit(rng, 30)
    ids = ["A"] * 15 + [f"B{i % 10}" for i in range(30)]
    gallery = Gallery(DIM)
    gallery.add(ids, np.vstack([close, others]))
    decision = gallery.identify(query, threshold=0.5, margin=0.05, k=10)
    expected = brute_force_best(ids, np.vstack([close, others]), query)
    runner = max((c for c in expected if c != "A"), key=lambda c: expected[c])
    assert decision.best is not None and decision.best.customer_id == "A"
    assert decision.runner_up is not None and decision.runner_up.customer_id == runner
    assert decision.runner_up.score == pytest.approx(expected[runner], abs=1e-5)


def test_identify_batch_equals_single_queries() -> None:
    rng = np.random.default_rng(3)
    gallery, _, vectors = small_gallery("exact", rng)
    queries = normalise_rows(vectors[::7] + 0.3 * unit(rng, len(vectors[::7])), DIM)
    single = [gallery.identify(q, 0.6, 0.05) for q in queries]
    batch = gallery.identify_batch(queries, 0.6, 0.05)
    assert [(d.reason, d.customer_id) for d in batch] == [(d.reason, d.customer_id) for d in single]
    # Same scores up to BLAS rounding (matrix-vector vs matrix-matrix products).
    assert [d.best.score for d in batch if d.best] == pytest.approx([d.best.score for d in single if d.best])
    assert {d.reason for d in single} >= {"accepted"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_gallery_knows_nobody(backend: str) -> None:
    gallery = make_gallery(DIM, backend)
    assert gallery.search(np.ones(DIM)) == []
    assert gallery.identify(np.ones(DIM), 0.4, 0.05).reason == "empty_gallery"
    assert len(gallery) == 0 and gallery.customers == frozenset()


# --- removal ------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_removal_leaves_nothing_of_the_customer(backend: str) -> None:
    rng = np.random.default_rng(11)
    gallery, ids, vectors = small_gallery(backend, rng, customers=60, per=4)
    gone = vectors[[i for i, c in enumerate(ids) if c == "C005"]]
    assert gallery.remove("C005") == 4
    assert len(gallery) == len(ids) - 4
    assert "C005" not in gallery.customers
    for template in gone:  # even its own templates as queries find somebody else
        assert all(hit.customer_id != "C005" for hit in gallery.search(template, k=100))
        assert gallery.identify(template, 0.3, 0.0).customer_id != "C005"
    assert gallery.remove("C005") == 0 and gallery.remove("nobody") == 0
    gallery.add(["C005"], gone[:1])  # re-enrolment after erasure works
    assert gallery.search(gone[0], k=1)[0].customer_id == "C005"


def test_exact_removal_zeroes_the_freed_rows() -> None:
    rng = np.random.default_rng(12)
    gallery, ids, vectors = small_gallery("exact", rng, customers=10, per=3)
    gallery.remove("C002")
    stored = gallery.index._vectors  # type: ignore[attr-defined]
    gone = vectors[[i for i, c in enumerate(ids) if c == "C002"]]
    assert not any(np.allclose(row, v) for row in stored for v in gone)
    assert np.count_nonzero(np.linalg.norm(stored, axis=1)) == len(ids) - 3


def test_int8_removal_drops_the_codes() -> None:
    rng = np.random.default_rng(13)
    gallery, ids, _ = small_gallery("int8", rng, customers=10, per=3)
    index = gallery.index
    assert isinstance(index, Int8Index)
    before = index.codes()
    removed_rows = [i for i, c in enumerate(ids) if c == "C004"]
    gallery.remove("C004")
    after = index.codes()
    assert after.shape == (len(ids) - 3, DIM)
    assert np.array_equal(after, np.delete(before, removed_rows, axis=0))


# --- int8 codes -----------------------------------------------------------------------

finite_rows = hnp.arrays(np.float32, st.tuples(st.integers(1, 20), st.just(8)),
                         elements=st.floats(-1.0, 1.0, width=32))


@given(x=finite_rows)
def test_int8_round_trip_error_is_at_most_half_a_step(x: np.ndarray) -> None:
    quantiser = Int8Quantiser.fit(x)
    assert quantiser.covers(x)
    codes = quantiser.encode(x)
    assert codes.dtype == np.int8 and np.abs(codes.astype(int)).max() <= 127
    error = np.abs(quantiser.decode(codes) - x)
    assert np.all(error <= quantiser.scale / 2 + 1e-7)


@given(x=finite_rows, q=hnp.arrays(np.float32, 8, elements=st.floats(-1.0, 1.0, width=32)))
def test_int8_score_error_is_within_the_bound(x: np.ndarray, q: np.ndarray) -> None:
    quantiser = Int8Quantiser.fit(x)
    approx = quantiser.decode(quantiser.encode(x)) @ q
    assert np.all(np.abs(approx - x @ q) <= quantiser.score_error_bound(q) + 1e-5)


def test_int8_index_scores_are_the_decoded_codes() -> None:
    rng = np.random.default_rng(5)
    gallery, _, vectors = small_gallery("int8", rng, customers=50, per=2)
    index = gallery.index
    assert isinstance(index, Int8Index) and index.quantiser is not None
    query = unit(rng, 1)
    scores, _ = index.search(query, len(vectors))
    expected = np.sort(index.quantiser.decode(index.quantiser.encode(vectors)) @ query[0])[::-1]
    assert np.allclose(scores[0], expected, atol=1e-5)
    assert np.max(np.abs(scores[0] - np.sort(vectors @ query[0])[::-1])) <= \
        index.quantiser.score_error_bound(query[0])


def test_int8_widens_its_scale_for_a_value_out_of_range() -> None:
    rng = np.random.default_rng(6)
    small = unit(rng, 20) * np.r_[np.full(DIM - 1, 1.0), 0.01].astype(np.float32)
    gallery = make_gallery(DIM, "int8")
    gallery.add([f"S{i}" for i in range(20)], small)
    spike = np.zeros(DIM, np.float32)
    spike[-1] = 1.0  # far outside the last dimension's fitted range
    gallery.add(["SPIKE"], spike[None])
    top = gallery.search(spike, k=1)[0]
    assert top.customer_id == "SPIKE" and top.score == pytest.approx(1.0, abs=0.01)


# --- ivf ------------------------------------------------------------------------------

def test_ivf_agrees_with_exact_on_a_seeded_face_like_set() -> None:
    data = make_data(DataSpec(size=6000, dim=64, per_customer=5, n_accuracy=300, n_latency=1, seed=1))
    exact, ivf = make_gallery(64, "exact"), make_gallery(64, "ivf")
    for gallery in (exact, ivf):
        gallery.add(data.customer_ids, data.templates)
    assert ivf.index.nlist == 153 and ivf.index.nprobe == 26  # type: ignore[attr-defined]
    exact_top = [d.best.customer_id for d in exact.identify_batch(data.mated, 0.5, 0.05) if d.best]
    ivf_top = [d.best.customer_id for d in ivf.identify_batch(data.mated, 0.5, 0.05) if d.best]
    assert exact_top == data.mated_truth  # the synthetic data is easy for exact search...
    agreement = np.mean([a == b for a, b in zip(exact_top, ivf_top, strict=True)])
    assert agreement >= 0.98  # ...and ivf probing 1/6 of its lists finds almost all of it


# --- bad input ------------------------------------------------------------------------

@pytest.mark.parametrize(("ids", "vectors", "message"), [
    (["A"], np.ones((1, DIM + 1)), "dimension"),
    (["A"], np.full((1, DIM), np.nan), "NaN"),
    (["A"], np.zeros((1, DIM)), "zero vector"),
    (["A", "B"], np.ones((1, DIM)), "2 customer ids for 1"),
    ([""], np.ones((1, DIM)), "non-empty"),
])
def test_bad_input_is_rejected_and_loses_nothing(ids: list[str], vectors: np.ndarray, message: str) -> None:
    gallery = Gallery(DIM)
    gallery.add(["KEEP"], np.ones((1, DIM)))
    with pytest.raises(GalleryError, match=message):
        gallery.add(ids, vectors)
    assert len(gallery) == 1 and gallery.customers == {"KEEP"}


def test_unknown_backend_and_bad_dimension_are_rejected() -> None:
    with pytest.raises(GalleryError, match="backend"):
        make_gallery(DIM, "hnsw")
    with pytest.raises(GalleryError, match="options"):
        make_gallery(DIM, "exact", nlist=4)
    for bad in (0, 5000):
        with pytest.raises(GalleryError, match="dimension"):
            Gallery(bad)
        with pytest.raises(GalleryError, match="dimension"):
            make_gallery(bad, "int8")


def test_the_gallery_searches_the_index_it_is_given() -> None:
    index = Int8Index(DIM)
    gallery = Gallery(DIM, index)
    assert gallery.index is index
    rng = np.random.default_rng(9)
    gallery.add(["A", "B"], unit(rng, 2))
    assert len(index) == 2 and index.codes().shape == (2, DIM)  # the templates went to that index
    assert isinstance(Gallery(DIM).index, ExactIndex)  # without one: exact search


def test_an_index_of_another_dimension_or_already_filled_is_refused() -> None:
    with pytest.raises(GalleryError, match="dimension 16"):
        Gallery(DIM, ExactIndex(DIM + 1))
    filled = ExactIndex(DIM)
    filled.add(np.arange(1, dtype=np.int64), unit(np.random.default_rng(2), 1))
    with pytest.raises(GalleryError, match="empty"):
        Gallery(DIM, filled)


def test_the_configured_backends_are_the_ones_the_builder_knows() -> None:
    assert typing.get_args(GalleryConfig.model_fields["backend"].annotation) == BACKENDS


def test_an_exact_gallery_does_not_load_faiss() -> None:
    code = ("import sys; from edge.vision.gallery_index import make_gallery; make_gallery(8); "
            "print('faiss' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
