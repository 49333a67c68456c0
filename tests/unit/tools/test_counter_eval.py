"""The counter's 1:1 arithmetic without models: card colour, pairs, frame fusion, the burst."""

from __future__ import annotations

import numpy as np

from edge.counter.matching import RECIPE, MatchRecipe, balance_colour, is_monochrome, prepare_card, to_grey
from edge.tools import counter_eval as ce


def warm_faded(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    photo = rng.integers(0, 256, (126, 102, 3)).astype(np.float32)
    aged = photo.mean() + 0.75 * (photo - photo.mean()) + np.array([-12.0, 0.0, 12.0])
    return photo.astype(np.uint8), np.clip(aged, 0, 255).astype(np.uint8)


def test_colour_balance_undoes_a_yellowed_faded_card_photo():
    photo, aged = warm_faded()
    fixed = balance_colour(aged)
    channel_means = fixed.reshape(-1, 3).mean(axis=0)
    assert np.ptp(channel_means) < np.ptp(aged.reshape(-1, 3).mean(axis=0)) / 4  # the cast is gone
    assert fixed.std() > aged.std()  # the contrast is back
    assert np.abs(fixed.astype(float) - photo).mean() < np.abs(aged.astype(float) - photo).mean()


def test_a_monochrome_card_is_recognised_and_not_recoloured_but_upscaled():
    _, aged = warm_faded()
    grey = to_grey(aged)
    assert is_monochrome(grey) and not is_monochrome(aged)
    prepared = prepare_card(grey, MatchRecipe(card_upscale=2.0, card_colour="balance"))
    assert prepared.shape == (252, 204, 3) and is_monochrome(prepared)
    assert np.array_equal(prepare_card(aged, RECIPE), aged)  # the counter's recipe leaves it as it is


def test_counter_pairs_are_ordered_every_genuine_and_a_seeded_impostor_sample():
    labels = ["a", "a", "a", "b", "b", "c"]
    everything = ce.counter_pairs(labels, 10**6, seed=1)
    assert everything.genuine.sum() == 3 * 2 + 2 * 1  # ordered, never a photo with itself
    assert (~everything.genuine).sum() == 6 * 5 - 8
    assert not np.any(everything.card == everything.live)
    some = ce.counter_pairs(labels, 5, seed=1)
    assert (~some.genuine).sum() == 5 and some.genuine.sum() == 8
    assert np.array_equal(some.card, ce.counter_pairs(labels, 5, seed=1).card)
    labels_arr = np.asarray(labels)
    assert np.all((labels_arr[some.card] == labels_arr[some.live]) == some.genuine)


def test_frames_are_fused_best_quality_first_and_unusable_ones_are_skipped():
    d = 4
    emb = np.zeros((1, ce.BURST, 2, d), np.float32)
    for k in range(ce.BURST):
        emb[0, k, :, k % d] = 1.0  # frame k points along axis k
    quality = np.array([[0.2, np.nan, 0.9, 0.5, 0.1]])
    one, ok = ce.burst_template(emb, quality, frames=1, best_of=5, flip=True)
    assert ok[0] and np.argmax(one[0]) == 2  # the sharpest usable frame
    two, _ = ce.burst_template(emb, quality, frames=2, best_of=5, flip=False)
    assert np.allclose(two[0], np.array([0, 0, 1, 1]) / np.sqrt(2))  # frames 2 and 3
    _, none = ce.burst_template(emb, np.full((1, ce.BURST), np.nan), frames=3, best_of=3, flip=True)
    assert not none[0]


def test_the_simulated_burst_is_seeded_and_every_frame_differs():
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 256, (120, 100, 3)).astype(np.uint8)
    first, again = ce.simulate_burst(photo, 3, seed=7), ce.simulate_burst(photo, 3, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert all(f.shape == photo.shape for f in first)
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first[0], photo)
