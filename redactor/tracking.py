"""Which boxes cover frame i, given detections on sampled frames.

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

EMPTY = np.zeros((0, 5), dtype=np.float32)
# between samples, faces are paired by centre distance plus this much per unit of |log(size ratio)|: two faces
# of different sizes crossing each other (measured: 109 px and 62 px faces) keep their own paths
SIZE_WEIGHT = 3.0
# ... and where another pairing costs at most this much more, it is interpolated too (faces crossing)
AMBIGUOUS = 0.5


def _costs(a: np.ndarray, b: np.ndarray, size_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """(centre distance in face sizes, pairing cost) for every pair of boxes in a x b."""
    ca = np.stack([(a[:, 0] + a[:, 2]) / 2, (a[:, 1] + a[:, 3]) / 2], 1)
    cb = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], 1)
    sa = np.maximum(np.maximum(a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]), 1.0)  # degenerate boxes count as 1 px
    sb = np.maximum(np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]), 1.0)
    d = np.linalg.norm(ca[:, None, :] - cb[None, :, :], axis=2) / np.maximum(sa[:, None], sb[None, :])
    if not size_weight:
        return d, d
    return d, d + size_weight * np.abs(np.log(sa[:, None] / sb[None, :]))


def match(a: np.ndarray, b: np.ndarray, max_dist: float = 1.5, size_weight: float = 0.0) -> list[tuple[int, int]]:
    """Greedy one-to-one matching of boxes a (n,>=4) and b (m,>=4) by centre distance relative to size
    (nearest pairs first; pairs further apart than ``max_dist`` face sizes are not the same face). With
    ``size_weight``, a pair's cost also grows by that much per unit of |log(size ratio)|, so two faces of
    different sizes that cross each other between samples are not swapped."""
    if len(a) == 0 or len(b) == 0:
        return []
    return _greedy(*_costs(a, b, size_weight), max_dist)


def _greedy(d: np.ndarray, cost: np.ndarray, max_dist: float) -> list[tuple[int, int]]:
    """One-to-one pairs, cheapest first, at most ``max_dist`` face sizes apart."""
    pairs = []
    used_a, used_b = set(), set()
    for flat in np.argsort(cost, axis=None, kind="stable"):
        ia, ib = np.unravel_index(flat, d.shape)
        if d[ia, ib] > max_dist or ia in used_a or ib in used_b:
            continue
        used_a.add(ia)
        used_b.add(ib)
        pairs.append((int(ia), int(ib)))
    return pairs


def rival_pairs(d: np.ndarray, cost: np.ndarray, pairs: list[tuple[int, int]], max_dist: float,
                margin: float = AMBIGUOUS) -> list[tuple[int, int]]:
    """Pairs not in ``pairs`` that are almost as likely (cost within ``margin`` of the chosen pair of either
    end; ``d``, ``cost`` from ``_costs``): two faces of about the same size crossing between samples cannot be
    told apart by position, so both pairings are covered (a wrong one only adds blur)."""
    if not pairs:
        return []
    best_a = np.full(cost.shape[0], np.inf)
    best_b = np.full(cost.shape[1], np.inf)
    for ia, ib in pairs:
        best_a[ia] = best_b[ib] = cost[ia, ib]
    ok = (d <= max_dist) & (cost <= np.minimum(best_a[:, None], best_b[None, :]) + margin)
    for ia, ib in pairs:
        ok[ia, ib] = False
    return [(int(x), int(y)) for x, y in zip(*np.nonzero(ok))]


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
            d, cost = _costs(a, b, SIZE_WEIGHT)
            pairs = _greedy(d, cost, reach)
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
