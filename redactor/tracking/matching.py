"""Pairing boxes between two frames: greedy one-to-one matching by centre distance relative to face size
(plus a size term), and the near-equal rival pairings of faces that cross. Pure numpy."""
from __future__ import annotations

import numpy as np

# between samples, faces are paired by centre distance plus this much per unit of |log(size ratio)|: two faces
# of different sizes crossing each other (measured: 109 px and 62 px faces) keep their own paths
SIZE_WEIGHT = 3.0
# ... and where another pairing costs at most this much more, it is interpolated too (faces crossing)
AMBIGUOUS = 0.5
# ... or at most this share more: where even the chosen pairing moves faces far, a crossing pairing that moves
# them twice as far is as plausible (e.g. two faces crossing a 320 px frame at a face width per frame, 30 fps,
# seen on two coarse samples: the greedy pairing jumps lanes at cost 3.3, the true one costs 4.2 and 5.8)
AMBIGUOUS_SHARE = 1.0


def pair_costs(a: np.ndarray, b: np.ndarray, size_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """(centre distance in face sizes, pairing cost) for every pair of boxes in a x b."""
    # written out per coordinate (no stacked centres, no linalg.norm): the same float operations in the same
    # order, so the same values to the bit, at a third of the cost (this runs ~25 times per frame)
    dx = (a[:, 0] + a[:, 2]) / 2
    dx = dx[:, None] - ((b[:, 0] + b[:, 2]) / 2)[None, :]
    dy = (a[:, 1] + a[:, 3]) / 2
    dy = dy[:, None] - ((b[:, 1] + b[:, 3]) / 2)[None, :]
    sa = np.maximum(np.maximum(a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]), 1.0)  # degenerate boxes count as 1 px
    sb = np.maximum(np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]), 1.0)
    d = np.sqrt(dx * dx + dy * dy) / np.maximum(sa[:, None], sb[None, :])
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
    return greedy_pairs(*pair_costs(a, b, size_weight), max_dist)


def greedy_pairs(d: np.ndarray, cost: np.ndarray, max_dist: float) -> list[tuple[int, int]]:
    """One-to-one pairs, cheapest first, at most ``max_dist`` face sizes apart."""
    pairs = []
    n, m = d.shape
    order = np.argsort(cost, axis=None, kind="stable")
    near = order[~(d.ravel()[order] > max_dist)].tolist()  # candidates in cost order (a NaN distance is not "far")
    used_a, used_b = set(), set()
    for flat in near:
        ia, ib = divmod(flat, m)
        if ia in used_a or ib in used_b:
            continue
        used_a.add(ia)
        used_b.add(ib)
        pairs.append((ia, ib))
        if len(pairs) == n or len(pairs) == m:
            break  # every box of one side is paired: nothing is left to pair
    return pairs


def rival_pairs(d: np.ndarray, cost: np.ndarray, pairs: list[tuple[int, int]], max_dist: float,
                margin: float = AMBIGUOUS, share: float = AMBIGUOUS_SHARE) -> list[tuple[int, int]]:
    """Pairs not in ``pairs`` that are almost as likely (cost within ``margin``, or ``share`` of it, of the
    chosen pair of either end, whichever is more; ``d``, ``cost`` from ``pair_costs``): two faces of about the
    same size crossing between samples cannot be told apart by position, so both pairings are covered (a wrong
    one only adds blur)."""
    if not pairs:
        return []
    best_a = np.full(cost.shape[0], np.inf)
    best_b = np.full(cost.shape[1], np.inf)
    for ia, ib in pairs:
        best_a[ia] = best_b[ib] = cost[ia, ib]
    best = np.minimum(best_a[:, None], best_b[None, :])
    ok = (d <= max_dist) & (cost <= best + np.maximum(margin, share * best))
    for ia, ib in pairs:
        ok[ia, ib] = False
    return [(int(x), int(y)) for x, y in zip(*np.nonzero(ok))]
