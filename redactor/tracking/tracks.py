"""Small-face tracks: faces below the coarse pass's reliable size, followed between fine passes by looking for
each again in a small window around where its motion predicts it (``Detector.track``).

* ``SmallFaceTracks`` holds one fine interval's tracks (box, velocity, samples missed) and the frame of the
  last step: ``reseed`` at each fine pass (a new interval's tracks start from its small faces), ``step`` every
  tracking step (faces found in their windows continue, lost ones are carried on their predicted path for
  ``MAX_MISSES`` steps, small faces the coarse pass found that no track explains start new tracks),
  ``unexplained`` (fine-pass faces the forward tracks do not predict).
* ``track_back`` follows faces backwards through buffered frames (faces that appeared, or were missed, since
  the fine pass that starts their interval).

Pure code: the detector is passed in (a fake one in the unit tests).
"""
from __future__ import annotations

import numpy as np

from ..boxes import EMPTY, as_boxes, sizes
from .matching import match

MAX_MISSES = 2  # a small-face track not found again is carried on its predicted path this many samples
# Track windows, in face sizes from the predicted centre to the window's edge: a face whose velocity is known
# is looked for within TRACK_SPREAD, one without (new, or lost last time) within SEARCH_SPREAD. The window is
# inferred with the face at the fine pass's scale, so its cost grows with the square of the spread.
TRACK_SPREAD = 2.5
SEARCH_SPREAD = 4.0
TRACK_GROWN = 1.5  # a track ends once its face is this many times the coarse pass's cut-off
PAIR_DIST = 4.5  # face sizes: what a window finds this near a track's prediction continues it (``match``)


def track_step(detector, frame, tracks, velocity, misses, k: int, small_face: float, coarse: np.ndarray):
    """One tracking step for small faces, k frames after the last one. Returns (boxes to cover on this
    frame, tracks, velocity, misses, fresh): faces found in the tracks' windows, plus lost tracks carried on
    their predicted path. Small faces the coarse pass found that no track explains start new tracks
    (``fresh``)."""
    found = EMPTY
    pred = tracks.copy()
    if len(tracks):
        pred[:, 0:4] += np.tile(velocity * k, 2)
        spread = np.where((misses == 0) & np.any(velocity != 0, axis=1), TRACK_SPREAD, SEARCH_SPREAD)
        found = as_boxes(detector.track(frame, pred, spread))
    # a track ends once its face has grown well past the coarse pass's cut-off (hysteresis: a face near the
    # cut-off measured a little larger in one window must not lose its track and come back as a new one)
    # (not a box a second model doubted on its crop, ``detectors.crop_check``: it covers its own frame only)
    small = found[(sizes(found) < TRACK_GROWN * small_face) & (found[:, 4] >= 0)] if len(found) else found
    pairs = match(pred, small, max_dist=PAIR_DIST)  # anything found in its window continues the track
    got = {a for a, _ in pairs}
    vel = np.zeros((len(small), 2), np.float32)
    for a, bi in pairs:
        ca = (tracks[a, 0:2] + tracks[a, 2:4]) / 2
        cb = (small[bi, 0:2] + small[bi, 2:4]) / 2
        # a carried track's box is already its prediction: add back the motion assumed while it was lost
        vel[bi] = ((cb - ca) + velocity[a] * k * misses[a]) / (k * (misses[a] + 1))
    new_t, new_v, new_m = [small], [vel], [np.zeros(len(small), np.int32)]
    # a lost track is carried on its predicted path while that stays in the picture
    cx, cy = (pred[:, 0] + pred[:, 2]) / 2, (pred[:, 1] + pred[:, 3]) / 2
    inside = (cx >= 0) & (cy >= 0) & (cx < frame.width) & (cy < frame.height)
    lost = [a for a in range(len(tracks)) if a not in got and misses[a] < MAX_MISSES and inside[a]]
    carried = pred[lost]
    if lost:
        new_t.append(carried)
        new_v.append(velocity[lost])
        new_m.append(misses[lost] + 1)
    # small faces the coarse pass found that no track covers yet become tracks too
    # (not a box a second model doubted on its crop, ``detectors.crop_check``: it covers its own sample only)
    csmall = coarse[(sizes(coarse) < small_face) & (coarse[:, 4] >= 0)] if len(coarse) else coarse
    known = np.concatenate(new_t)
    seen = {bi for _, bi in match(known, csmall, max_dist=1.0)}
    fresh = csmall[[j for j in range(len(csmall)) if j not in seen]]
    if len(fresh):
        new_t.append(fresh)
        new_v.append(np.zeros((len(fresh), 2), np.float32))
        new_m.append(np.zeros(len(fresh), np.int32))
    cover = np.concatenate([found, carried]) if len(carried) else found
    return cover, np.concatenate(new_t), np.concatenate(new_v), np.concatenate(new_m), fresh


def track_back(detector, samples: list, seeds: np.ndarray, seed_frame: int, small_face: float) -> dict:
    """Follow ``seeds`` (small faces found on ``seed_frame`` that no forward track explains: faces that
    appeared, or were lost, since the previous fine pass) backwards through ``samples`` [(frame index,
    frame)], newest first, until every track is lost. Returns {frame index: boxes}."""
    out = {}
    tracks = SmallFaceTracks(small_face)
    tracks.reseed(as_boxes(seeds), seed_frame)
    for j, frame in samples:
        if not len(tracks):
            break
        cover, _ = tracks.step(detector, frame, j, EMPTY, backwards=True)
        if len(cover):
            out[j] = cover
    return out


class SmallFaceTracks:
    """The small-face tracks of one fine interval (see module doc)."""

    def __init__(self, small_face: float):
        self.small_face = small_face
        self.reseed(EMPTY, 0)

    def __len__(self) -> int:
        return len(self.boxes)

    def reseed(self, boxes: np.ndarray, i: int) -> None:
        """Start afresh from ``boxes`` (a fine pass's small faces on frame i), velocities unknown."""
        self.boxes = boxes
        self.velocity = np.zeros((len(boxes), 2), np.float32)
        self.misses = np.zeros(len(boxes), np.int32)
        self.last = i

    def step(self, detector, frame, i: int, coarse: np.ndarray, backwards: bool = False
             ) -> tuple[np.ndarray, np.ndarray]:
        """One tracking step on frame i: (boxes covering frame i, fresh small faces from ``coarse``)."""
        gap = self.last - i if backwards else i - self.last
        cover, self.boxes, self.velocity, self.misses, fresh = track_step(
            detector, frame, self.boxes, self.velocity, self.misses, gap, self.small_face, coarse)
        self.last = i
        return cover, fresh

    def unexplained(self, boxes: np.ndarray, i: int) -> np.ndarray:
        """The faces in ``boxes`` (frame i) that no live track's prediction explains."""
        ok = self.misses == 0
        pred = self.boxes[ok].copy()
        pred[:, 0:4] += np.tile(self.velocity[ok] * (i - self.last), 2)
        known = {bi for _, bi in match(pred, boxes, max_dist=2.0)}
        return boxes[[x for x in range(len(boxes)) if x not in known]]
