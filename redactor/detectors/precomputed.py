"""``rekognition-video`` detector: boxes from a faces file (``redactor-faces/1``, written by the workflow's
Rekognition Video job, see ``rekognition_video.py``), looked up by each frame's timestamp.

Rekognition only lists timestamps at which it found a face, at its own sampling rate (not every frame), and
``Timestamp`` "is not guaranteed to be accurate to the individual frame". A frame at time ``t`` therefore gets:

* the boxes of the last sample at or before ``t`` and of the first sample after ``t`` (each *held* up to
  ``reach`` ms away from its timestamp), and
* for faces matched between those two samples (centre distance, ``tracking.match``), the box linearly
  interpolated to ``t``.

``reach`` is the sampling interval estimated from the file (lower median gap between consecutive timestamps,
clamped to [1 frame, 1 s]; 0.5 s when there is a single timestamp) plus ``hold`` frames, so every frame between
two samples of a visible face is covered by both, while a face is not smeared over seconds in which
Rekognition sampled and saw nobody. Single-tier: the schedule runs it on every frame.
"""
from __future__ import annotations

import bisect
from fractions import Fraction

import numpy as np

from ..tracking.matching import match
from .base import EMPTY, BaseDetector, boxes_from_display, clip_boxes, display_size, quarter_turns


class PrecomputedFacesDetector(BaseDetector):
    """Boxes from a parsed faces file, by frame timestamp. Stored-frame pixels, clipped."""

    name = "rekognition-video"
    DEFAULT_INTERVAL_MS = 500.0
    MAX_INTERVAL_MS = 1000.0

    def __init__(self, settings, source, data: dict):
        """``settings``: ``threshold``, ``hold``; ``source``: the video's SourceInfo; ``data``: the faces file
        (``rekognition_video.load_faces``)."""
        self.summary = data.get("summary") or {}
        thr = float(settings.threshold)
        items = sorted((int(t), v) for t, v in data["faces"].items())
        self.times = [t for t, _ in items]
        self.boxes = []
        for _, v in items:
            b = np.asarray(v, dtype=np.float32).reshape(-1, 5)
            self.boxes.append(b[b[:, 4] >= thr])
        self.width, self.height = (source.width, source.height) if source else (None, None)
        self.start_pts = int(source.start_pts) if source else 0
        self.tb = Fraction(source.time_base) if source else None
        fps = float(source.fps) if source and source.fps else 30.0
        frame_ms = 1000.0 / fps
        turns = quarter_turns(source.rotation) if source else 0
        video = data.get("video") or {}
        vw, vh = video.get("width"), video.get("height")
        if turns % 2 and source and (vw, vh) == (source.width, source.height) and vw != vh:
            turns = 0  # Rekognition reported the stored frame's size: its boxes are in stored orientation
        self.turns = turns
        gaps = sorted(b - a for a, b in zip(self.times, self.times[1:]) if b > a)
        if gaps:
            interval = min(self.MAX_INTERVAL_MS, max(frame_ms, float(gaps[(len(gaps) - 1) // 2])))
        else:
            interval = self.DEFAULT_INTERVAL_MS
        self.reach_ms = interval + int(settings.hold) * frame_ms + 0.5 * frame_ms
        self.frames = 0
        self._reported = 0

    def stats(self) -> dict:
        n, self._reported = self.frames - self._reported, self.frames
        return {"rekognition_video_frames": n}

    def ratio_boxes_at(self, t_ms: float):
        """(n, 5) ratio boxes (Rekognition's orientation) covering time t_ms."""
        i = bisect.bisect_right(self.times, t_ms) - 1
        a = self.boxes[i] if i >= 0 and t_ms - self.times[i] <= self.reach_ms else None
        j = i + 1
        b = self.boxes[j] if j < len(self.times) and self.times[j] - t_ms <= self.reach_ms else None
        parts = [x for x in (a, b) if x is not None and len(x)]
        if a is not None and b is not None and len(a) and len(b) and self.times[j] > self.times[i]:
            f = (t_ms - self.times[i]) / (self.times[j] - self.times[i])
            pairs = match(a, b)
            if pairs:
                ia, ib = map(list, zip(*pairs))
                parts.append(((1 - f) * a[ia] + f * b[ib]).astype(np.float32))
        if not parts:
            return EMPTY
        return np.concatenate(parts)

    def detect_frame(self, frame):
        W, H = frame.width, frame.height
        tb = self.tb if self.tb is not None else frame.time_base
        t_ms = float((frame.pts - self.start_pts) * tb) * 1000.0
        b = self.ratio_boxes_at(t_ms).copy()
        self.frames += 1
        if not len(b):
            return b
        dw, dh = display_size(W, H, self.turns)
        b[:, [0, 2]] *= dw
        b[:, [1, 3]] *= dh
        b = boxes_from_display(b, self.turns, W, H)
        return clip_boxes(b, W, H)

    def __call__(self, frames):
        return [self.detect_frame(f) for f in frames]
