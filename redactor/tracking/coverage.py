"""Which boxes cover frame i, given detections on sampled frames (``cover_boxes``), and the three kinds of
detections a two-tier chunk combines (``Coverage``).

Detections exist for frames whose global index is a multiple of ``k`` (``detect_every``). Frame ``i`` is
covered by:
  * every box detected on a sampled frame ``j`` with ``|i - j| <= window`` (``window = hold + k - 1``), so
    with ``k = 1`` a detection covers ``hold`` frames before and after it, and with ``k > 1`` every frame
    between two samples gets the boxes of both samples around it (a face that appears between two samples
    is covered from the previous sample's frame onwards by the next sample's box); and
  * for faces matched between the two samples around ``i``, the box linearly interpolated to ``i``, which
    follows a moving face between its two sampled positions. Faces are paired greedily by centre distance
    plus a size term (a big and a small face crossing keep their own paths); a pairing almost as likely as
    the chosen one, and the pairing that each face's motion from the sample before predicts, are
    interpolated too (two faces of one size crossing cannot be told apart by position alone).
Everything depends only on global frame indices, never on where segments or chunks were cut.
"""
from __future__ import annotations

import numpy as np

from ..boxes import EMPTY
from .matching import SIZE_WEIGHT, greedy_pairs, match, pair_costs, rival_pairs

# Track boxes are paired between samples (interpolated, extrapolated) up to this many face sizes per frame
# apart: the tracker follows small faces this fast (measured: 20 px faces moving 95 px/frame in 4K).
TRACK_SPEED = 8.0


def _extrapolated(base: np.ndarray, other: np.ndarray, steps: float, k: int, speed: float = 4.0
                  ) -> list[np.ndarray]:
    """Boxes of ``base`` moved ``steps`` sample intervals along the motion from ``other`` (one interval away
    in the opposite direction) to ``base``, for each face matched between them."""
    if base is None or other is None or len(base) == 0 or len(other) == 0:
        return []
    pairs = match(other, base, max_dist=max(1.5, speed * k), size_weight=SIZE_WEIGHT)
    if not pairs:
        return []
    io, ib = map(list, zip(*pairs))
    return [(base[ib] + (base[ib] - other[io]) * steps).astype(np.float32)]


def _moved(a: np.ndarray, prev: np.ndarray | None, reach: float) -> np.ndarray | None:
    """Boxes of ``a`` moved on by one sample interval along their motion from ``prev`` (one interval
    earlier), for faces matched there; None when no face of ``a`` has a known motion."""
    if prev is None or len(prev) == 0 or len(a) == 0:
        return None
    pairs = match(prev, a, max_dist=reach, size_weight=SIZE_WEIGHT)
    if not pairs:
        return None
    out = a.copy()
    for ip, ia in pairs:
        out[ia, :4] += a[ia, :4] - prev[ip, :4]
    return out


def cover_boxes(i: int, dets: dict[int, np.ndarray], k: int, window: int, extrapolate: bool = False,
                speed: float = 4.0) -> np.ndarray:
    """Boxes covering frame ``i``. With ``extrapolate`` (the caller guarantees samples up to two intervals
    away are known), faces seen on only one of the two samples around ``i`` -- appearing, disappearing, or
    missed on one sample -- also follow their motion from the neighbouring sample instead of staying put,
    and so do faces after the last sample of the clip. ``speed``: the fastest motion, in face sizes per
    frame, that two samples are paired across (a wrong pair only adds blur: both ends stay covered)."""
    parts = [b for j, b in dets.items() if abs(j - i) <= window and len(b)]
    if k > 1 and i % k:
        s0 = i - i % k
        s1 = s0 + k
        t = (i - s0) / k
        a, b = dets.get(s0), dets.get(s1)
        pairs = []
        if a is not None and b is not None and len(a) and len(b):
            # a small face can move more than its size per frame; a wrong pair only adds blur (both ends stay covered)
            reach = max(1.5, speed * k)
            d, cost = pair_costs(a, b, SIZE_WEIGHT)
            pairs = greedy_pairs(d, cost, reach)
            both = pairs + rival_pairs(d, cost, pairs, reach)
            if extrapolate:
                # where the sample before s0 gives a face's velocity, pair it from where that velocity takes
                # it by s1 too (two faces crossing each other): both pairings are covered when they differ
                ahead = _moved(a, dets.get(s0 - k), reach)
                if ahead is not None:
                    moved = match(ahead, b, max_dist=reach, size_weight=SIZE_WEIGHT)
                    both += [p for p in moved if p not in both]
            if both:
                ia, ib = map(list, zip(*both))
                parts.append(((1 - t) * a[ia] + t * b[ib]).astype(np.float32))
        if extrapolate and a is not None:
            seen_a = {x for x, _ in pairs}
            lost = a[[x for x in range(len(a)) if x not in seen_a]] if len(a) else a
            parts += _extrapolated(lost, dets.get(s0 - k), t, k, speed)  # continues forward from s0
            if b is not None and len(b):
                seen_b = {y for _, y in pairs}
                new = b[[y for y in range(len(b)) if y not in seen_b]]
                parts += _extrapolated(new, dets.get(s1 + k), 1 - t, k, speed)  # comes backward from s1
    if not parts:
        return EMPTY
    return np.concatenate(parts)


class Coverage:
    """The detections a chunk has made so far, by global frame index, and the boxes that cover frame i:

    * coarse samples (every ``k``-th frame; a single-tier detector's samples): held, interpolated and, with a
      fine pass, extrapolated (``cover_boxes``);
    * small-face track boxes (every ``kt``-th frame, plus one frame after each fine pass), only those of
      frame i's own fine interval ``[mK, (m+1)K)``: tracks start afresh at each fine pass;
    * the small faces of the fine passes on either side of frame i (each held ``K - 1`` frames).
    """

    def __init__(self, schedule):
        self.schedule = schedule
        self.coarse: dict[int, np.ndarray] = {}
        self.tracked: dict[int, np.ndarray] = {}
        self.fine: dict[int, np.ndarray] = {}

    def add_tracked(self, j: int, boxes: np.ndarray) -> None:
        """More track boxes on frame j (faces followed back from a later frame)."""
        self.tracked[j] = np.concatenate([self.tracked[j], boxes]) if j in self.tracked else boxes

    def boxes(self, i: int) -> np.ndarray:
        s = self.schedule
        boxes = cover_boxes(i, self.coarse, s.every, s.window, extrapolate=bool(s.fine))
        if s.fine:
            m0 = i - i % s.fine
            local = {j: v for j, v in self.tracked.items() if m0 <= j < m0 + s.fine}
            more = [b for b in (cover_boxes(i, local, s.track, s.window_track, extrapolate=True, speed=TRACK_SPEED),
                                cover_boxes(i, self.fine, s.fine, s.window_fine)) if len(b)]
            if more:
                boxes = np.concatenate([boxes] + more) if len(boxes) else np.concatenate(more)
        return boxes

    def forget_before(self, i: int) -> None:
        """Drop what no frame from ``i - latency`` on can need any more."""
        s = self.schedule
        for j in [j for j in self.coarse if j < i - 2 * s.latency - s.every]:
            del self.coarse[j]
            self.tracked.pop(j, None)
        for j in [j for j in self.fine if j < i - 2 * s.latency - s.fine]:
            del self.fine[j]
