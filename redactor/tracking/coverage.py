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
  * a face lost near the frame's edge, or found there first (``edge_boxes``): carried along its motion,
    clipped to the frame, until it has left the picture (or came in), and stretched to the edge it is near,
    for up to ``Schedule.carry`` frames.
Everything depends only on global frame indices, never on where segments or chunks were cut.
"""
from __future__ import annotations

import numpy as np

from ..boxes import EMPTY, sizes
from .matching import SIZE_WEIGHT, greedy_pairs, match, pair_costs, rival_pairs

# A face seen on one sample only may have moved this many (detector box) sizes per frame towards the edge it
# was near (the edge ground-truth clips: up to one head width per frame, two boxes of a turned face)
EDGE_SPEED = 2.0
EDGE_RATIO = 2.0  # a face paired with a box this many times smaller (or larger) was only partly seen there
# ... and one paired with a smaller box that touches the frame's edge: the detector saw the part of the face
# inside the picture (e.g. a 9x21 px box for a face 28 px wide with 21 px of it inside; a squeezed face leaving
# through the bottom boxed 22x25 px, eyes to chin, the frame before 26x29: its forehead stayed sharp)
EDGE_PART_RATIO = 1.0
# ... and a face with a known motion paired with a box further than this many face sizes from where that motion
# takes it was not seen there
EDGE_FOLLOW = 1.5
# ... and a carried face's box grows along its motion by this share of the distance it is carried (a half
# face entering through the bottom at 10 fps, 0.5 face width per frame, missed on the frame after its first 14
# rows showed, carried back two frames from where it was seen whole: its forehead above the carried box kept
# 33 % of its detail with a quarter-size margin alone)
CARRY_DRIFT = 0.25

# A box at least this share of the frame's short side spreads (held, interpolated, extrapolated, carried and
# stretched to the edge) only when a box is found within max(1.5, EDGE_SPEED * k) of its sizes on the sample
# before or after it (``confirmed``); else it covers its own frame and the frames up to the samples on either
# side only (held unmoved, or carried at the edge). One box the detector scores on a single sample (a fisheye
# clip's table top, 600 px at 2560x1920) then blurs those frames only, while a real face that big is found
# again on a neighbouring sample (at 5-30 fps it moves at most a few sizes between samples), or it crossed
# the picture within the frames it still covers
SPREAD_LARGE = 0.2

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
                speed: float = 4.0, bridge: bool = False, spread: dict[int, np.ndarray] | None = None
                ) -> np.ndarray:
    """Boxes covering frame ``i``. With ``extrapolate`` (the caller guarantees samples up to two intervals
    away are known), faces seen on only one of the two samples around ``i`` -- appearing, disappearing, or
    missed on one sample -- also follow their motion from the neighbouring sample instead of staying put,
    and so do faces after the last sample of the clip. ``speed``: the fastest motion, in face sizes per
    frame, that two samples are paired across (a wrong pair only adds blur: both ends stay covered). With
    ``bridge`` (samples one interval away are known), a face seen on the samples on either side of sample
    ``i`` but not on ``i`` itself is covered half way between them (``_bridged``). ``spread``: the boxes of
    each sample that may spread (default: all of ``dets``); only they are held, interpolated and extrapolated,
    while every box of ``dets`` gives the motion and may be bridged (seen on the samples on both sides)."""
    sp = dets if spread is None else spread
    parts = [b for j, b in sp.items() if abs(j - i) <= window and len(b)]
    if bridge and i % k == 0:
        parts += _bridged(i, dets, k, speed)
    if k > 1 and i % k:
        s0 = i - i % k
        s1 = s0 + k
        t = (i - s0) / k
        a, b = sp.get(s0), sp.get(s1)
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


def _bridged(i: int, dets: dict[int, np.ndarray], k: int, speed: float) -> list[np.ndarray]:
    """Faces paired between the samples on either side of sample ``i`` that sample ``i`` does not explain
    (the detector missed the face there: turned, half hidden; at 5-15 fps every frame is a sample, so nothing
    is interpolated over it): their box half way between the two (seen on two samples, any box may be)."""
    a, b = dets.get(i - k), dets.get(i + k)
    if a is None or b is None or not len(a) or not len(b):
        return []
    pairs = match(a, b, max_dist=max(1.5, speed * 2 * k), size_weight=SIZE_WEIGHT)
    if not pairs:
        return []
    ia, ib = map(list, zip(*pairs))
    mid = (0.5 * (a[ia] + b[ib])).astype(np.float32)
    c = dets.get(i)
    if c is not None and len(c):
        found = {x for x, _ in match(mid, c, max_dist=1.0, size_weight=SIZE_WEIGHT)}
        mid = mid[[x for x in range(len(mid)) if x not in found]]
    return [mid] if len(mid) else []


def _at_edge(b: np.ndarray, width: int, height: int) -> np.ndarray:
    """Whether each box reaches (within a pixel of) the frame's edge."""
    return (b[:, 0] <= 1) | (b[:, 1] <= 1) | (b[:, 2] >= width - 1) | (b[:, 3] >= height - 1)


def _centres(b: np.ndarray) -> np.ndarray:
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], 1)


def edge_boxes(i: int, dets: dict[int, np.ndarray], k: int, carry: int, width: int, height: int,
               min_size: float = 0.0, speed: float = 4.0, memo: dict | None = None,
               spread: dict[int, np.ndarray] | None = None) -> list[np.ndarray]:
    """Boxes of faces carried onto frame ``i`` at the frame's edge: a face on sample ``j`` (``0 < i - j <=
    carry``) that sample ``j + k`` does not pair (it left, or the detector missed a half-visible or turned
    face), or one on sample ``j`` (``0 < j - i <= carry``) that sample ``j - k`` does not pair (it came in),
    is carried from ``j`` towards ``i`` along its motion (from the sample on its other side; none known: it
    stays) while it is near an edge: where it would be on the sample that missed it lies within a face size
    of the edge (one face size per frame, ``EDGE_SPEED``, when its motion is unknown). Its box on frame i
    is stretched to every edge it is that near, and clipped to the frame; once it has wholly left the
    picture it is dropped. Faces smaller than ``min_size`` are left to the small-face tracks. ``memo``: a dict
    kept between calls on the same ``dets`` (``Coverage``): what sample ``j`` lost and how those faces moved
    does not depend on ``i``, so it is worked out once per sample and direction, not once per frame.
    ``spread``: the boxes of each sample that may be carried (default: all of ``dets``); every box of
    ``dets`` still counts as a face its sample saw, and gives the motion."""
    out = []
    reach = max(1.5, speed * k)
    for j, a in (dets if spread is None else spread).items():
        d = i - j
        if d == 0 or abs(d) > carry or not len(a):
            continue
        step = k if d > 0 else -k
        other = dets.get(j + step)  # the sample that did not see it (None: unknown, or beyond the video)
        if other is None:
            continue
        behind = dets.get(j - step)
        # a part seen at the edge (smaller than its pair there) carries the whole face onto the frames up to
        # that sample only; beyond it, the part's own box is carried as any other
        part_ok = abs(d) > k
        key = (j, step, part_ok, k, width, height, min_size, speed)
        hit = memo.get(key) if memo is not None else None
        if hit is not None and hit[0] is a and hit[1] is other and hit[2] is behind:
            lost = hit[3]
        else:
            lost = _lost(a, other, behind, part_ok, k, width, height, min_size, reach)
            if memo is not None:
                memo[key] = (a, other, behind, lost)
        if lost is None:
            continue
        faces, moves = lost
        w, h = faces[:, 2] - faces[:, 0], faces[:, 3] - faces[:, 1]
        s = np.maximum(w, h)
        for n, v in moves:
            # how near an edge counts: a face size from where the missing sample would have had it (k face
            # sizes from where it was, when its motion is unknown)
            near = s[n] if v is not None else s[n] * max(1.0, EDGE_SPEED * k)
            v = np.zeros(2, np.float32) if v is None else v
            at_miss = faces[n, :4] + np.tile(v * k, 2)
            gaps = np.array([at_miss[0], at_miss[1], width - at_miss[2], height - at_miss[3]])
            edges = gaps <= near
            if not edges.any():
                continue  # lost inside the picture: not the edge's doing
            box = _carried_box(faces[n], s[n], v, d, near, edges, width, height)
            if box is not None:
                out.append(box)
    return out


def _carried_box(face: np.ndarray, size: float, v: np.ndarray, d: int, near: float, edges: np.ndarray,
                 width: int, height: int) -> np.ndarray | None:
    """``edge_boxes``' box of one lost ``face`` (x1, y1, x2, y2, score; ``size`` its larger side) carried
    ``d`` frames along its motion ``v`` (px per frame) and stretched to the ``edges`` it is ``near``; None
    once it has wholly left the picture."""
    # a detector's box is the face's core: hair, ears and chin reach about half its size further, and
    # the carried face's position is a guess: its box grows by a quarter of its size on every side, and
    # along its motion by a share of the distance it is carried (its speed is measured between two boxes
    # of a face crossing the edge, a part of it on one: the guess drifts with every frame it is carried)
    m = size / 4
    x1, y1, x2, y2 = face[:4] + np.tile(v * abs(d), 2) + np.array([-m, -m, m, m])
    if x2 + 2 * m <= 0 or y2 + 2 * m <= 0 or x1 - 2 * m >= width or y1 - 2 * m >= height:
        return None  # it has left the picture (head and all, give or take its motion measured at the edge)
    dx, dy = CARRY_DRIFT * np.abs(v) * abs(d)
    x1, y1, x2, y2 = x1 - dx, y1 - dy, x2 + dx, y2 + dy
    # its motion along an axis whose edges it is not near is not trusted: a box cut by the edge it
    # crosses changes shape from one sample to the next, and its centre shifts sideways with it (e.g.
    # YuNet's box of a half face leaving through the bottom moved 10 px right per frame while the face
    # moved straight down); on that axis the box also covers where it was, unmoved
    if not (edges[0] or edges[2]):
        x1, x2 = min(x1, face[0] - m), max(x2, face[2] + m)
    if not (edges[1] or edges[3]):
        y1, y2 = min(y1, face[1] - m), max(y2, face[3] + m)
    cur = np.array([x1, y1, width - x2, height - y2]) <= near
    # stretched to the edges it is near; left partly outside (the redaction grows it, then clips it to
    # the frame), never dropped while part of it can still be in the picture
    x1 = min(x1, 0.0) if cur[0] and edges[0] else x1
    y1 = min(y1, 0.0) if cur[1] and edges[1] else y1
    x2 = max(x2, float(width)) if cur[2] and edges[2] else x2
    y2 = max(y2, float(height)) if cur[3] and edges[3] else y2
    # ... and at least a band of m inside the picture where it is leaving (clipped to it, not dropped)
    x1, y1 = min(x1, width - m), min(y1, height - m)
    x2, y2 = max(x2, m), max(y2, m)
    return np.array([[x1, y1, x2, y2, face[4]]], np.float32)


def _lost(a: np.ndarray, other: np.ndarray, behind: np.ndarray | None, part_ok: bool, k: int, width: int,
          height: int, min_size: float, reach: float) -> tuple[np.ndarray, list] | None:
    """``edge_boxes``' work on one sample: the faces of sample ``a`` that the sample ``other`` (one interval
    on, towards the frame) did not see, and each one's motion per frame (or None) from the sample ``behind``
    it; None when it lost none."""
    # a box less than half (or more than twice) the size is not the face seen whole: a part of it at the edge
    sa, so = sizes(a), sizes(other)
    ea, eo = _at_edge(a, width, height), _at_edge(other, width, height)

    def whole(x, y, ratio):  # both boxes show the face whole (none is a part of it cut by the edge)
        return max(sa[x], so[y]) <= ratio * min(sa[x], so[y])

    paired = match(a, other, max_dist=reach, size_weight=SIZE_WEIGHT)
    seen = {x for x, y in paired if whole(x, y, EDGE_RATIO) and
            (part_ok or whole(x, y, EDGE_PART_RATIO) or not (eo[y] if so[y] < sa[x] else ea[x]))}
    # a face whose motion is known is seen there only where its motion takes it (a face leaving through the
    # bottom, missed there, was paired with another face entering at the top, 5 face sizes away, seen with YuNet)
    ahead = _moved(a, behind, reach)
    if ahead is not None and seen:
        moved = {x for x, y in match(ahead, other, max_dist=EDGE_FOLLOW, size_weight=SIZE_WEIGHT)}
        known = {x for x in range(len(a)) if not np.array_equal(ahead[x], a[x])}
        seen -= {x for x in known if x not in moved}
    lost = [x for x in range(len(a)) if x not in seen and sizes(a[x:x + 1])[0] >= min_size]
    if not lost:
        return None
    faces = a[lost]
    # its motion (per frame, in the direction of d) from the sample on its other side; where two faces
    # there could each be it (faces crossing: matching.rival_pairs), it is carried along both
    moves = []
    if behind is not None and len(behind):
        d_, cost = pair_costs(behind, faces, SIZE_WEIGHT)
        pairs = greedy_pairs(d_, cost, reach)
        for ib, ia in pairs + rival_pairs(d_, cost, pairs, reach):
            moves.append((ia, (_centres(faces[ia:ia + 1])[0] - _centres(behind[ib:ib + 1])[0]) / k))
    moves += [(n, None) for n in range(len(faces)) if all(m[0] != n for m in moves)]
    return faces, moves


def confirmed(a: np.ndarray, before: np.ndarray | None, after: np.ndarray | None, k: int, short_side: float
              ) -> np.ndarray:
    """Which boxes of a sample may spread (``SPREAD_LARGE``): those smaller than ``SPREAD_LARGE`` of the
    frame's short side, and bigger ones paired with a box of the sample ``k`` frames ``before`` or ``after``
    (None: unknown) within ``max(1.5, EDGE_SPEED * k)`` of its sizes (of any size: a face crossing the edge is
    boxed whole on one sample and in part on the other). A box scored below 0 (a second model did not confirm
    it on its crop) never spreads."""
    ok = sizes(a) < SPREAD_LARGE * short_side if short_side else np.ones(len(a), bool)
    doubt = a[:, 4] < 0  # a second model did not confirm it on its crop (``detectors.crop_check``): never spreads
    ok &= ~doubt
    for other in (before, after):
        if (ok | doubt).all() or other is None or not len(other):
            continue
        for x, _ in match(a, other, max_dist=max(1.5, EDGE_SPEED * k), size_weight=SIZE_WEIGHT):
            ok[x] = not doubt[x]
    return ok


class Coverage:
    """The detections a chunk has made so far, by global frame index, and the boxes that cover frame i:

    * coarse samples (every ``k``-th frame; a single-tier detector's samples): held, interpolated and, with a
      fine pass, extrapolated (``cover_boxes``);
    * small-face track boxes (every ``kt``-th frame, plus one frame after each fine pass), only those of
      frame i's own fine interval ``[mK, (m+1)K)``: tracks start afresh at each fine pass;
    * the small faces of the fine passes on either side of frame i (each held ``K - 1`` frames).

    Coarse boxes of ``SPREAD_LARGE`` or more of the short side that no neighbouring sample confirms
    (``confirmed``) cover only the frames up to the samples on either side: held there unmoved, and carried
    at the edge no further (a face crossing a small frame in a few frames is seen on one sample only).
    """

    def __init__(self, schedule, width: int = 0, height: int = 0, small_face: float = 0.0):
        self.schedule = schedule
        self.size = (int(width), int(height))  # 0: no edge carry (unit tests of the other rules)
        self.small_face = small_face  # smaller faces are the small-face tracks' (edge carry: coarse faces only)
        self.coarse: dict[int, np.ndarray] = {}
        self.tracked: dict[int, np.ndarray] = {}
        self.fine: dict[int, np.ndarray] = {}
        self._edge_memo: dict = {}  # edge_boxes' work per coarse sample (it does not depend on the frame)
        self._alone_memo: dict = {}  # the same for the boxes that may not spread (``split``)
        self._split_memo: dict = {}  # per coarse sample: (its boxes, neighbours, spreading boxes, the others)

    def add_tracked(self, j: int, boxes: np.ndarray) -> None:
        """More track boxes on frame j (faces followed back from a later frame)."""
        self.tracked[j] = np.concatenate([self.tracked[j], boxes]) if j in self.tracked else boxes

    def split(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        """Coarse sample j's boxes that may spread, and the others (``confirmed``); the same arrays while
        the sample and its neighbours are unchanged (``edge_boxes``' memo keys on them)."""
        k = self.schedule.every
        a, before, after = self.coarse[j], self.coarse.get(j - k), self.coarse.get(j + k)
        hit = self._split_memo.get(j)
        if hit is not None and hit[0] is a and hit[1] is before and hit[2] is after:
            return hit[3], hit[4]
        ok = confirmed(a, before, after, k, min(self.size)) if len(a) else np.ones(0, bool)
        out = (a, EMPTY) if ok.all() else (a[ok], a[~ok])
        self._split_memo[j] = (a, before, after, *out)
        return out

    def boxes(self, i: int) -> np.ndarray:
        s = self.schedule
        spread, alone = {}, {}
        for j in self.coarse:
            spread[j], other = self.split(j)
            if len(other):
                alone[j] = other
        boxes = cover_boxes(i, self.coarse, s.every, s.window, extrapolate=bool(s.fine), bridge=True,
                            spread=spread)
        if alone:
            held = cover_boxes(i, alone, s.every, s.every - 1)
            if len(held):
                boxes = np.concatenate([boxes, held]) if len(boxes) else held
        if self.size[0] and self.size[1]:
            edge = edge_boxes(i, self.coarse, s.every, s.carry, *self.size, min_size=self.small_face,
                              memo=self._edge_memo, spread=spread)
            if alone:  # a face crossing a small frame fast is seen on one sample: carried to the next ones only
                edge += edge_boxes(i, self.coarse, s.every, s.every - 1, *self.size, min_size=self.small_face,
                                   memo=self._alone_memo, spread=alone)
            if edge:
                boxes = np.concatenate([boxes] + edge) if len(boxes) else np.concatenate(edge)
        if s.fine:
            m0 = i - i % s.fine
            local = {j: v for j, v in self.tracked.items() if m0 <= j < m0 + s.fine}
            more = [b for b in (cover_boxes(i, local, s.track, s.window_track, extrapolate=True, speed=TRACK_SPEED,
                                            bridge=True),
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
        for memo in (self._edge_memo, self._alone_memo):
            for key in [key for key in memo if key[0] not in self.coarse]:
                del memo[key]
        for j in [j for j in self._split_memo if j not in self.coarse]:
            del self._split_memo[j]
