"""What every face detector offers the chunk worker, and the geometry they share.

A detector is built once per worker process (``make_detector``) and called on decoded frames
(``av.VideoFrame``, stored orientation); every method returns float32 ``(n, 5)`` boxes ``x1, y1, x2, y2,
score`` in that frame's pixel coordinates. Any exception it raises fails the chunk closed.

Two kinds of detectors run behind one protocol:

* single-tier (an API, a faces file): ``detect`` on the sampled frames only; ``two_tier`` is False, so the
  worker never calls ``coarse`` or ``track``;
* two-tier (a local model): ``detect`` is the fine (small-face) pass, ``coarse`` a cheaper whole-frame pass,
  ``track`` a fine-scale look in windows around known small faces; ``two_tier(w, h)`` says whether that pays
  for frames of this size and ``coarse_min_face`` below which face size only the fine pass is trusted.

Backends subclass :class:`SingleTierDetector` (defaults for the single-tier case) and import nothing but this
module, ``redactor.boxes`` and the pure ``redactor.tracking`` code; only ``make_detector`` names backends.
"""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from ..boxes import EMPTY, as_boxes, clip_boxes, nms, sizes  # noqa: F401 - re-exported for backends


class Detector(Protocol):
    name: str

    def __call__(self, frames: Sequence) -> list[np.ndarray]:
        """The detector's full pass (the fine pass of a two-tier detector) on each frame."""

    def coarse(self, frames: Sequence) -> list[np.ndarray]:
        """Two-tier only: the cheap whole-frame pass (big and mid-size faces)."""

    def track(self, frame, boxes: np.ndarray, spread: np.ndarray | None = None) -> np.ndarray:
        """Two-tier only: faces found in windows ``spread`` face sizes around each of ``boxes``."""

    def two_tier(self, width: int, height: int) -> bool:
        """Whether frames of this stored size get the coarse pass + fine pass + tracking."""

    def coarse_min_face(self, width: int, height: int) -> float:
        """Face size (stored px) below which only the fine pass and tracking are trusted."""

    def set_threads(self, threads: int) -> None:
        """This worker's share of the cores."""

    def stats(self) -> dict:
        """Counters since the previous call (a worker reports once per chunk)."""


class SingleTierDetector:
    """Defaults of the protocol for a detector with one pass only."""

    name = "single-tier"

    def __call__(self, frames: Sequence) -> list[np.ndarray]:  # pragma: no cover - every backend overrides
        raise NotImplementedError

    def coarse(self, frames: Sequence) -> list[np.ndarray]:
        raise NotImplementedError(f"{self.name} has no coarse pass")

    def track(self, frame, boxes: np.ndarray, spread: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError(f"{self.name} does not track")

    def two_tier(self, width: int, height: int) -> bool:
        return False

    def coarse_min_face(self, width: int, height: int) -> float:
        return 0.0

    def set_threads(self, threads: int) -> None:
        return None

    def stats(self) -> dict:
        return {}


# ---------------------------------------------------------------------------------------------- rotation
def quarter_turns(rotation: int) -> int:
    """Number of counter-clockwise quarter turns that bring a stored frame to display orientation."""
    return (int(round(rotation / 90.0))) % 4


def display_size(width: int, height: int, turns: int) -> tuple[int, int]:
    """(width, height) of a stored width x height frame turned ``turns`` quarter turns."""
    return (height, width) if turns % 2 else (width, height)


def boxes_from_display(boxes: np.ndarray, turns: int, width: int, height: int) -> np.ndarray:
    """Map boxes found on ``np.rot90(stored, turns)`` back to stored-frame coordinates (width/height: stored)."""
    if turns == 0 or len(boxes) == 0:
        return boxes
    out = boxes.copy()
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    if turns == 1:  # display (xd, yd) <- stored (xs = W - yd, ys = xd)
        out[:, 0], out[:, 2] = width - y2, width - y1
        out[:, 1], out[:, 3] = x1, x2
    elif turns == 2:
        out[:, 0], out[:, 2] = width - x2, width - x1
        out[:, 1], out[:, 3] = height - y2, height - y1
    elif turns == 3:  # display (xd, yd) <- stored (xs = yd, ys = H - xd)
        out[:, 0], out[:, 2] = y1, y2
        out[:, 1], out[:, 3] = height - x2, height - x1
    return out
