"""IoU tracker (pure): identities persist across frames and brief misses."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.core.tracker import IouTracker, iou

coords = st.floats(0, 1000, allow_nan=False)
boxes = st.tuples(coords, coords, st.floats(1, 300), st.floats(1, 300)).map(
    lambda b: (b[0], b[1], b[0] + b[2], b[1] + b[3]))


@given(boxes, boxes)
def test_iou_is_symmetric_and_bounded(a, b):
    assert 0.0 <= iou(a, b) <= 1.0
    assert abs(iou(a, b) - iou(b, a)) < 1e-9
    assert abs(iou(a, a) - 1.0) < 1e-9



def test_iou_of_boxes_without_area_is_zero_not_a_division_by_zero() -> None:
    point = (5.0, 5.0, 5.0, 5.0)
    assert iou(point, point) == 0.0  # zero union: nothing to overlap
    assert iou((0.0, 0.0, 0.0, 10.0), (0.0, 0.0, 0.0, 10.0)) == 0.0  # zero width
    assert iou((0.0, 0.0, 10.0, 0.0), (5.0, 0.0, 20.0, 0.0)) == 0.0  # zero height
    assert iou((10.0, 10.0, 0.0, 0.0), (10.0, 10.0, 0.0, 0.0)) == 0.0  # inverted corners
    # A union below one pixel is still a union: the same tiny box overlaps itself fully.
    tiny = (0.0, 0.0, 0.5, 0.5)
    assert iou(tiny, tiny) == 1.0
    assert iou(tiny, (0.25, 0.0, 0.75, 0.5)) == 0.125 / 0.375

@given(start=boxes, step=st.tuples(st.floats(-0.3, 0.3), st.floats(-0.3, 0.3)), grow=st.floats(0, 0.03),
       frames=st.integers(2, 40))
def test_a_face_moving_smoothly_keeps_one_track(start, step, grow, frames):
    """Per frame it moves up to 30 % of its width and grows up to 6 %."""
    tracker = IouTracker(iou_threshold=0.25, max_missed_s=1.0)
    ids = set()
    x1, y1, x2, y2 = start
    for i in range(frames):
        width = x2 - x1
        box = (x1, y1, x2, y2)
        x1, y1 = x1 + step[0] * width - grow * width, y1 + step[1] * width - grow * width
        x2, y2 = x2 + step[0] * width + grow * width, y2 + step[1] * width + grow * width
        ids.update(tracker.update([box], i * 0.1).assignments)
    assert len(ids) == 1


@settings(max_examples=50)
@given(st.lists(st.lists(boxes, max_size=6), min_size=1, max_size=20))
def test_each_track_takes_at_most_one_detection_per_frame(frames):
    tracker = IouTracker()
    for i, dets in enumerate(frames):
        update = tracker.update(dets, i * 0.1)
        assert len(update.assignments) == len(dets)
        assert len(set(update.assignments)) == len(dets)
        assert set(update.assignments) <= set(tracker.tracks)
        assert not set(update.ended) & set(tracker.tracks)


def test_two_people_crossing_paths_keep_their_identities():
    tracker = IouTracker()
    a_ids, b_ids = set(), set()
    for i in range(20):
        a = (100 + 10 * i, 100, 160 + 10 * i, 160)
        b = (500 - 10 * i, 300, 560 - 10 * i, 360)  # same height band would cross; this one passes below
        first, second = tracker.update([a, b], i * 0.1).assignments
        a_ids.add(first)
        b_ids.add(second)
    assert len(a_ids) == 1
    assert len(b_ids) == 1
    assert a_ids != b_ids


def test_a_track_survives_a_brief_miss_and_ends_after_a_long_one():
    tracker = IouTracker(max_missed_s=0.5)
    box = (100.0, 100.0, 150.0, 150.0)
    (first,) = tracker.update([box], 0.0).assignments
    assert tracker.update([], 0.3).ended == []
    assert tracker.update([box], 0.4).assignments == [first]  # back after a 0.4 s gap
    update = tracker.update([], 1.0)
    assert update.ended == [first]
    assert tracker.update([box], 1.1).assignments != [first]


def test_a_fast_face_is_followed():
    # 35 px per frame on a 50 px box: consecutive boxes overlap by IoU 0.18 only.
    tracker = IouTracker(iou_threshold=0.25)
    first = tracker.update([(0.0, 0.0, 50.0, 50.0)], 0.0).assignments[0]
    second = tracker.update([(35.0, 0.0, 85.0, 50.0)], 0.1)
    assert second.assignments == [first]
    assert second.uncertain == [first]  # matched on proximity: who it is must be re-checked
    ids = {tracker.update([(35.0 * i, 0.0, 35.0 * i + 50, 50.0)], i * 0.1).assignments[0]
           for i in range(2, 10)}
    assert ids == {first}


def test_overlapping_continuations_are_certain_unless_the_size_jumps():
    tracker = IouTracker()
    (tid,) = tracker.update([(0.0, 0.0, 50.0, 50.0)], 0.0).assignments
    assert tracker.update([(5.0, 0.0, 55.0, 50.0)], 0.1).uncertain == []
    # The near face left; the smaller one it hid is matched (IoU 0.36) but flagged.
    update = tracker.update([(5.0, 0.0, 35.0, 30.0)], 0.2)
    assert update.assignments == [tid]
    assert update.uncertain == [tid]


def test_a_far_away_face_is_a_new_track():
    tracker = IouTracker()
    (first,) = tracker.update([(0.0, 0.0, 50.0, 50.0)], 0.0).assignments
    second, third = tracker.update([(200.0, 0.0, 250.0, 50.0), (0.0, 0.0, 50.0, 50.0)], 0.1).assignments
    assert third == first
    assert second != first
