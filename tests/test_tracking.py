"""The coverage rules the speed-ups rely on (detect on a subset of frames, carry boxes between them)."""
import numpy as np
import pytest

from redactor.boxes import EMPTY

from redactor.tracking import Coverage, cover_boxes, match


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


def test_faces_of_different_sizes_crossing_between_samples_keep_their_paths():
    """Measured on the throughput clip: a 110 px and a 62 px face pass each other between two samples;
    nearest-centre pairing swapped them and left the frames in between uncovered."""
    k, hold = 3, 2
    big0, big3 = (1341, 742), (1453, 702)     # big face moving right
    small0, small3 = (1454, 791), (1329, 734)  # small face moving left, ending near the big one's start
    dets = {0: np.array([_box(*big0, s=110), _box(*small0, s=62)], np.float32),
            3: np.array([_box(*big3, s=110), _box(*small3, s=62)], np.float32)}
    for i in (1, 2):
        t = i / k
        cover = cover_boxes(i, dets, k, hold + k - 1)
        for (x0, y0), (x1, y1), s in ((big0, big3, 110), (small0, small3, 62)):
            cx, cy = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
            # a box of the face's own size centred on its true position
            assert any(abs((b[0] + b[2]) / 2 - cx) < 2 and abs((b[1] + b[3]) / 2 - cy) < 2 and
                       abs((b[2] - b[0]) - s) < 2 for b in cover), (i, s)
    # plain nearest-centre pairing (no size term) would swap them
    assert sorted(match(dets[0], dets[3], max_dist=12)) == [(0, 1), (1, 0)]


def test_faces_of_one_size_crossing_follow_their_motion():
    """Two 60 px faces pass each other between samples 3 and 6 (40 px/frame each way): by position alone
    the nearer pairing swaps them; their motion from the sample before keeps each on its own path."""
    k, hold = 3, 2

    def p(t):
        return 300 + 40 * t, 500

    def q(t):
        return 580 - 40 * t, 520
    dets = {s: np.array([_box(*p(s), s=60), _box(*q(s), s=60)], np.float32) for s in (0, 3, 6, 9)}
    assert sorted(match(dets[3], dets[6], max_dist=12, size_weight=3.0)) == [(0, 1), (1, 0)]  # swapped
    for i in (4, 5):
        cover = cover_boxes(i, dets, k, hold + k - 1, extrapolate=True)
        for cx, cy in (p(i), q(i)):
            assert any(abs((b[0] + b[2]) / 2 - cx) < 2 and abs((b[1] + b[3]) / 2 - cy) < 2 for b in cover), (i, cx)


def test_fast_faces_crossing_lanes_are_covered_on_both_pairings():
    """#15: two faces cross a 320x180 picture each way at a face width per frame, 30 fps (k = 3), each seen on
    two samples only (3 and 6), in an upper and a lower lane. Pairing by distance alone joins the lanes (cost
    3.3 against 4.2 and 5.8 for the true paths), so frames 4 and 5 got boxes moving up and down between the
    lanes and both faces, 56 px further along each frame, were left sharp. Every pairing at most twice as
    costly as the chosen one is interpolated too."""
    from redactor.tracking.coverage import cover_boxes as cover
    a = np.array([[69, 27, 97, 72, 0.7], [243, 127, 262, 155, 0.7]], np.float32)  # sample 3 (boxes CenterFace gave)
    b = np.array([[75, 126, 94, 156, 0.7], [237, 32, 265, 70, 0.6]], np.float32)  # sample 6
    dets = {0: np.zeros((0, 5), np.float32), 3: a, 6: b, 9: np.zeros((0, 5), np.float32)}
    for i, upper, lower in ((4, 139, 197), (5, 195, 141)):  # ground-truth face centres (x), lanes y 45 / 135
        boxes = cover(i, dets, 3, 4, extrapolate=True)
        assert _covers(boxes, upper - 10, 45) and _covers(boxes, lower, 141), (i, boxes)
    # a static crowd is not cross-interpolated: pairings are only widened where the chosen one moves faces far
    crowd = np.array([_box(100, 50), _box(130, 50), _box(160, 50)], np.float32)
    assert len(cover(1, {0: crowd, 3: crowd + np.float32([1, 0, 1, 0, 0])}, 3, 4)) == 3 + 3 + 3


def _greedy_reference(d, cost, max_dist):
    """Cheapest-first one-to-one pairing written the slow, obvious way (every cell, in cost order)."""
    pairs, used_a, used_b = [], set(), set()
    for flat in np.argsort(cost, axis=None, kind="stable"):
        ia, ib = np.unravel_index(flat, d.shape)
        if d[ia, ib] > max_dist or ia in used_a or ib in used_b:
            continue
        used_a.add(ia)
        used_b.add(ib)
        pairs.append((int(ia), int(ib)))
    return pairs


def test_pairing_is_cheapest_first_one_to_one_within_reach():
    """pair_costs/greedy_pairs (the hot path of coverage, written for speed) on random crowds: the centre
    distance in face sizes and the size term are the definition's values to the bit, and the pairs are those
    of the obvious cheapest-first loop (ties broken in order, far pairs left out)."""
    from redactor.tracking.matching import SIZE_WEIGHT, greedy_pairs, pair_costs
    rng = np.random.default_rng(7)
    for trial in range(300):
        n, m = rng.integers(1, 9, 2)
        a = np.array([_box(*rng.uniform(0, 200, 2), s=rng.uniform(5, 60)) for _ in range(n)], np.float32)
        b = np.array([_box(*rng.uniform(0, 200, 2), s=rng.uniform(5, 60)) for _ in range(m)], np.float32)
        if trial % 5 == 0:  # exact ties: the same boxes on both sides
            k = min(n, m)
            b[:k] = a[:k]
        d, cost = pair_costs(a, b, SIZE_WEIGHT)
        ca, cb = (a[:, :2] + a[:, 2:4]) / 2, (b[:, :2] + b[:, 2:4]) / 2
        sa = np.maximum(np.maximum(a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]), 1.0)
        sb = np.maximum(np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]), 1.0)
        want = np.linalg.norm(ca[:, None, :] - cb[None, :, :], axis=2) / np.maximum(sa[:, None], sb[None, :])
        assert d.tobytes() == want.tobytes()
        assert cost.tobytes() == (want + SIZE_WEIGHT * np.abs(np.log(sa[:, None] / sb[None, :]))).tobytes()
        reach = float(rng.choice([0.5, 1.5, 12.0]))
        got = greedy_pairs(d, cost, reach)
        assert got == _greedy_reference(d, cost, reach)
        assert len({x for x, _ in got}) == len(got) == len({y for _, y in got})  # one to one
        assert all(d[x, y] <= reach for x, y in got)


def _area(boxes: np.ndarray, width: int, height: int) -> float:
    """Pixels inside the union of ``boxes`` clipped to a width x height frame."""
    m = np.zeros((height, width), bool)
    for x1, y1, x2, y2 in np.clip(boxes[:, :4], 0, [width, height, width, height]).astype(int):
        m[y1:y2, x1:x2] = True
    return float(m.sum())


@pytest.mark.parametrize("k", [1, 3])
def test_one_false_large_box_covers_its_own_sample_interval_only(monkeypatch, k):
    """One box 600 px wide at the bottom edge of a 2560x1920 frame, found on one sample only (a table top a
    fisheye clip's fine pass scored as a face): it covers the frames up to the samples on either side and no
    other -- never held beyond them, nor carried past them. Every frame is a sample below 20 fps (k = 1, the
    fisheye clip's 10 fps): it covers its own frame, where the redacted area is the box's own (600 x 600 px),
    and nothing else. At 30 fps (k = 3) it is also carried at the edge onto the two frames on either side (a
    face crossing a small frame in four frames is seen on one sample only), and on no further frame. The same
    box seen on the next sample too (a face 600 px wide) is held, carried and stretched to the edge as before;
    and without the rule the lone box is too."""
    from redactor.schedule import Schedule
    from redactor.tracking import coverage

    W, H = 2560, 1920
    s = Schedule(every=k, fine=0, track=k, hold=2)
    box = np.array([[1000, 1320, 1600, 1920, 0.6]], np.float32)
    n = 10 * k

    def run(dets):
        cov = Coverage(s, W, H)
        cov.coarse.update({j: dets.get(j, EMPTY) for j in range(0, n, k)})
        return [cov.boxes(i) for i in range(n)]

    lone = run({5 * k: box})
    np.testing.assert_array_equal(lone[5 * k], box)  # its own frame: the box itself
    for i, b in enumerate(lone):
        assert (len(b) > 0) == (abs(i - 5 * k) < k), (i, b)  # its sample interval only
    if k == 1:
        assert max(_area(b, W, H) for b in lone) == 600 * 600
    moved = box + np.array([[0, 60, 0, 60, 0]], np.float32)
    twice = run({5 * k: box, 6 * k: moved})
    monkeypatch.setattr(coverage, "SPREAD_LARGE", 10.0)  # nothing is large: every box spreads
    assert all(np.array_equal(a, b) for a, b in zip(twice, run({5 * k: box, 6 * k: moved})))
    assert sum(len(b) > 0 for b in twice) > 2 * k + 1  # held and carried past its samples
    spread = run({5 * k: box})
    assert sum(len(b) > 0 for b in spread) > 2 * k - 1 and max(_area(b, W, H) for b in spread) > 600 * 600


@pytest.mark.parametrize("k", [1, 3])
def test_a_box_found_on_every_sample_that_the_crop_check_doubts_covers_its_own_samples_only(k):
    """A mid-size box (80 px in a 1280x960 frame, under ``SPREAD_LARGE``) found on every other sample: a face
    (scored as found) is held and interpolated over the samples that missed it; the same box doubted by the
    second model on its crop (scored below 0, ``detectors.crop_check``) covers the frames up to the samples
    on either side of each sample that found it, and no frame further."""
    from redactor.schedule import Schedule

    W, H = 1280, 960
    s = Schedule(every=k, fine=0, track=k, hold=2)
    n = 12 * k
    seen = range(0, n, 4 * k)  # found on samples 0, 4, 8 (in sample units); missed in between

    def run(score):
        cov = Coverage(s, W, H)
        box = np.array([[600, 400, 680, 480, score]], np.float32)
        cov.coarse.update({j: (box if j in seen else EMPTY) for j in range(0, n, k)})
        return [cov.boxes(i) for i in range(n)]

    face, doubted = run(0.8), run(-1.0)
    for i in range(n):
        near = min(abs(i - j) for j in seen) < k
        assert (len(doubted[i]) > 0) == near, (i, doubted[i])
        assert len(face[i]) >= len(doubted[i])
    assert sum(len(b) > 0 for b in face) > sum(len(b) > 0 for b in doubted)
