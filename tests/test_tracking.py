"""The coverage rules the speed-ups rely on (detect on a subset of frames, carry boxes between them)."""
import numpy as np

from redactor.tracking import cover_boxes, match


def _box(cx, cy, s=20, score=0.9):
    return [cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2, score]


def _covers(boxes, cx, cy):
    return any(b[0] <= cx <= b[2] and b[1] <= cy <= b[3] for b in boxes)


def test_moving_face_is_followed_between_samples():
    k, hold = 6, 2
    # a face moving 10 px/frame to the right, detected on frames 0 and 6 only
    dets = {0: np.array([_box(100, 50)], np.float32), 6: np.array([_box(160, 50)], np.float32)}
    for i in range(0, 7):
        cover = cover_boxes(i, dets, k, hold + k - 1)
        assert _covers(cover, 100 + 10 * i, 50), f"frame {i} uncovered"
    # the interpolated box sits on the face, not only the two end boxes
    mid = cover_boxes(3, dets, k, hold + k - 1)
    assert any(abs((b[0] + b[2]) / 2 - 130) < 1 for b in mid)


def test_face_appearing_between_samples_is_covered_from_its_first_frame():
    k, hold = 5, 2
    # no face at sample 0; the face enters at frame 2 and is first detected at sample 5 (slow mover)
    dets = {0: np.zeros((0, 5), np.float32), 5: np.array([_box(200, 80)], np.float32)}
    for i in range(2, 6):
        assert _covers(cover_boxes(i, dets, k, hold + k - 1), 200 - (5 - i), 80)


def test_face_leaving_is_held_after_its_last_detection():
    k, hold = 3, 2
    dets = {0: np.array([_box(50, 50)], np.float32), 3: np.zeros((0, 5), np.float32),
            6: np.zeros((0, 5), np.float32)}
    assert _covers(cover_boxes(2, dets, k, hold + k - 1), 50, 50)
    assert _covers(cover_boxes(4, dets, k, hold + k - 1), 50, 50)  # hold + k - 1 = 4 frames after
    assert not _covers(cover_boxes(5, dets, k, hold + k - 1), 50, 50)


def test_fine_tier_bridges_a_small_face_between_fine_passes():
    K, hold = 30, 2
    fine = {0: np.array([_box(300, 100, s=12)], np.float32), 30: np.array([_box(330, 100, s=12)], np.float32)}
    for i in range(31):
        assert _covers(cover_boxes(i, fine, K, hold + K - 1), 300 + i, 100), i


def test_match_pairs_nearby_faces_only():
    a = np.array([_box(100, 100), _box(400, 100)], np.float32)
    b = np.array([_box(405, 102), _box(110, 98), _box(900, 500)], np.float32)
    assert sorted(match(a, b)) == [(0, 1), (1, 0)]


def test_face_missed_on_one_sample_follows_its_motion_back_from_the_next_ones():
    """A moving face first detected on sample 3 (missed on sample 0) is covered on frames 1-2 where it really
    is, extrapolated back from its motion between samples 3 and 6 (two-tier mode)."""
    k, hold = 3, 2
    pos = lambda i: 100 + 12 * i  # noqa: E731 - 12 px/frame, box 20 px: held boxes alone would miss it
    dets = {0: np.zeros((0, 5), np.float32), 3: np.array([_box(pos(3), 50)], np.float32),
            6: np.array([_box(pos(6), 50)], np.float32)}
    for i in (1, 2):
        assert not _covers(cover_boxes(i, dets, k, hold + k - 1), pos(i), 50)
        assert _covers(cover_boxes(i, dets, k, hold + k - 1, extrapolate=True), pos(i), 50)


def test_face_after_the_last_sample_is_extrapolated():
    k, hold = 3, 2
    pos = lambda i: 100 + 12 * i  # noqa: E731
    dets = {24: np.array([_box(pos(24), 50)], np.float32), 27: np.array([_box(pos(27), 50)], np.float32)}
    for i in (28, 29):  # the clip ends at 29: no sample 30
        assert _covers(cover_boxes(i, dets, k, hold + k - 1, extrapolate=True), pos(i), 50)
