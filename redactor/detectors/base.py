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

Backends subclass :class:`BaseDetector` (defaults for the single-tier case) and import nothing but this
module, ``redactor.boxes`` and the pure ``redactor.tracking`` code; only ``make_detector`` names backends.
"""
from __future__ import annotations

import math
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

    def blur_boxes(self, boxes: np.ndarray, width: int, height: int) -> np.ndarray:
        """The regions to blur for the boxes covering a frame of this stored size (after all tracking)."""


class BaseDetector:
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

    def blur_boxes(self, boxes: np.ndarray, width: int, height: int) -> np.ndarray:
        """The regions to blur for the boxes that cover a width x height (stored) frame: the boxes themselves,
        unless a model's boxes sit tighter on the face than the blur needs (``YuNet``)."""
        return boxes


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


# ---------------------------------------------------------------------------------------------- tiling
def tile_grid(width: int, height: int, max_width: int, max_height: int = 1088, overlap: float = 0.08
              ) -> list[tuple[int, int, int, int]]:
    """Source-pixel rectangles (x, y, w, h) of equal size covering a width x height frame: the frame itself
    when it is at most ``max_width`` wide, else a grid of tiles at most that wide (and ``max_height`` high)
    overlapping by ``overlap`` so a face on a border is whole in one tile."""
    nx = max(1, math.ceil(width / max_width - 1e-9))
    if nx == 1:
        return [(0, 0, width, height)]
    ny = max(1, math.ceil(height / max_height - 1e-9))
    tw = math.ceil(width / (nx - (nx - 1) * overlap))
    th = math.ceil(height / (ny - (ny - 1) * overlap)) if ny > 1 else height
    return [(min(width - tw, round(ix * tw * (1 - overlap))),
             min(height - th, round(iy * th * (1 - overlap))) if ny > 1 else 0, tw, th)
            for iy in range(ny) for ix in range(nx)]


class TwoTierModel(BaseDetector):
    """What the local models share: the model size each pass infers a frame at (``plan_inference``) and
    whether the coarse pass pays (``two_tier``). A subclass sets ``FINE_FACE`` (model px a ``min_face`` face is
    scaled to in the fine pass) and ``COARSE_RELIABLE_FACE`` (model px above which its coarse pass finds a face
    reliably) and calls ``init_geometry``."""

    FINE_FACE: float
    COARSE_RELIABLE_FACE: float
    COARSE_UPSCALE = 3.0  # the coarse pass scales a frame up at most this much (never more than the fine pass)
    COARSE_SHORT_SIDE = 0  # > 0: a coarse pass that shrinks the frame is at most this many px on its short side

    backend = "opencv"  # the inference runtime, OpenCV DNN (the Lambda layer's; reported as backend_opencv)

    def set_threads(self, threads: int) -> None:
        """Inference threads for this worker (the pool gives each worker its share of the cores)."""
        self.cv2.setNumThreads(max(1, int(threads)))

    def stats(self) -> dict:
        """Inference calls since the last stats() call (a worker reports once per chunk); a subclass sets
        ``cv2`` and counts ``calls``."""
        calls, self.calls = self.calls, 0
        return {"calls": calls, "backend_" + self.backend: 1}

    def init_geometry(self, settings, source) -> None:
        self.min_face = float(settings.min_face)
        self.max_infer_width = int(settings.max_infer_width)
        self.coarse_width = int(settings.coarse_width)
        self.turns = quarter_turns(source.rotation) if source else 0
        self._sizes: dict[tuple[int, int, bool], tuple[int, int, list]] = {}
        self._reformatters: dict[tuple[int, int], object] = {}

    def plan_inference(self, width: int, height: int, coarse: bool = False
                       ) -> tuple[int, int, list[tuple[int, int, int, int]]]:
        """(infer_w, infer_h, tiles) for a display-oriented frame of width x height. Tiles are source-pixel
        rectangles (x, y, w, h), each inferred at infer_w x infer_h.

        Fine pass: scaled so a ``min_face`` face spans ``FINE_FACE`` model pixels (small frames are
        upscaled, at most 3x), within a budget of ``max_infer_width`` x 1088 model pixels; frames wider than
        ``max_infer_width`` (4K) are tiled at their own resolution so their small faces are not shrunk away.
        A ``min_face`` above ``FINE_FACE`` shrinks the frame instead, where the whole frame then fits the budget
        (else: the tiles at its own resolution, as before).
        Coarse pass: the whole frame in one inference at most ``coarse_width`` wide (big and mid-size faces),
        upscaled at most ``COARSE_UPSCALE`` times; one that shrinks the frame is also at most
        ``COARSE_SHORT_SIDE`` px on its short side (a model's choice: YuNet, so no face in it is too big for it).
        """
        key = (width, height, coarse)
        if key in self._sizes:
            return self._sizes[key]
        if coarse:
            iw = min(self.coarse_width, self.plan_inference(width, height)[0], width * self.COARSE_UPSCALE)
            iw = int(math.ceil(iw / 32) * 32)
            if self.COARSE_SHORT_SIDE and iw < width:  # shrinking: the short side at most COARSE_SHORT_SIDE
                short = self.COARSE_SHORT_SIDE * width / min(width, height)
                iw = min(iw, max(32, int(math.floor(short / 32) * 32)))
            ih = int(math.ceil(height * iw / width / 32) * 32)
            self._sizes[key] = (iw, ih, [(0, 0, width, height)])
            return self._sizes[key]
        budget = self.max_infer_width * 1088
        want = min(3.0, self.FINE_FACE / self.min_face)
        if want < 1.0 and width * want * height * want <= budget:
            # a min_face above FINE_FACE: the smallest face wanted still spans FINE_FACE model px with the
            # whole frame shrunk (1080p at min_face 64 with YuNet: 960x544, ~1/4 of the 1920x1088 pass's cost)
            iw = max(32, int(math.ceil(width * want / 32) * 32))
            ih = max(32, int(math.ceil(height * want / 32) * 32))
            self._sizes[key] = (iw, ih, [(0, 0, width, height)])
            return self._sizes[key]
        scale = min(3.0, max(1.0, want))
        scale = max(1.0, min(scale, math.sqrt(budget / (width * height))))
        tiles = tile_grid(width, height, self.max_infer_width, 1088)
        tw, th = tiles[0][2], tiles[0][3]
        if len(tiles) > 1:
            scale = 1.0  # 4K: tiles at the frame's own resolution so its small faces are not shrunk away
        iw = int(math.ceil(tw * scale / 32) * 32)
        ih = int(math.ceil(th * scale / 32) * 32)
        if scale > 1.0 and iw * ih > budget:  # rounding up went over the budget (1080p -> 1952 wide)
            iw = max(32, int(math.floor(tw * scale / 32) * 32))
        self._sizes[key] = (iw, ih, tiles)
        return self._sizes[key]

    def coarse_min_face(self, width: int, height: int) -> float:
        """Face width (stored-frame px) below which only the fine pass is trusted to find a face."""
        dw, dh = display_size(width, height, self.turns)
        cw, _, _ = self.plan_inference(dw, dh, coarse=True)
        return self.COARSE_RELIABLE_FACE * dw / cw

    def two_tier(self, width: int, height: int) -> bool:
        """Whether the coarse pass is cheaper than the fine one for frames of this (stored) size."""
        dw, dh = display_size(width, height, self.turns)
        fw, fh, ft = self.plan_inference(dw, dh)
        cw, ch, _ = self.plan_inference(dw, dh, coarse=True)
        return cw * ch < 0.7 * fw * fh * len(ft)

    # ------------------------------------------------------------------------------------------ passes
    PIXELS = "rgb24"  # the model's input pixel format

    def infer_image(self, img: np.ndarray, iw: int, ih: int) -> np.ndarray:  # pragma: no cover - overridden
        """The model on ``img`` (``PIXELS``, already at (ih, iw)); boxes in its pixels."""
        raise NotImplementedError

    def more_boxes(self, frame, boxes: np.ndarray, scale: float, dw: int, dh: int) -> np.ndarray:
        """A model's extra pass on a frame whose pass ran at ``scale`` model px per display px (default:
        none); ``boxes`` and the result are in display px of a dw x dh frame."""
        return boxes

    def pixels(self, frame, width: int, height: int) -> np.ndarray:
        """The frame scaled to width x height in ``PIXELS`` (one swscale call: scale + convert in C). One
        reformatter per output size keeps its swscale context (``frame.reformat`` builds one per call: ~1 ms
        at 1080p, as much as the scaling itself for a coarse or large-face pass); the pixels are the same."""
        r = self._reformatters.get((width, height))
        if r is None:
            from av.video.reformatter import VideoReformatter
            r = self._reformatters[(width, height)] = VideoReformatter()
        return r.reformat(frame, width=width, height=height, format=self.PIXELS).to_ndarray()

    def display_pixels(self, frame, iw: int, ih: int) -> np.ndarray:
        """The whole frame turned to display orientation and scaled to iw x ih, in ``PIXELS``."""
        if self.turns:
            img = self.pixels(frame, ih if self.turns % 2 else iw, iw if self.turns % 2 else ih)
            return np.ascontiguousarray(np.rot90(img, self.turns))
        return self.pixels(frame, iw, ih)

    def checked_boxes(self, frame, boxes: np.ndarray, dw: int, dh: int) -> np.ndarray:
        """A model's second look at a pass's boxes (display px of a dw x dh frame; default: none)."""
        return boxes

    def infer_whole(self, frame, iw: int, ih: int, dw: int, dh: int) -> np.ndarray:
        """The whole frame, turned to display orientation and scaled to iw x ih in one swscale call (scale +
        convert in C); boxes in display px of a dw x dh frame."""
        b = self.infer_image(self.display_pixels(frame, iw, ih), iw, ih)
        if len(b):
            b[:, [0, 2]] *= dw / iw
            b[:, [1, 3]] *= dh / ih
        return b

    def detect_frame(self, frame, coarse: bool = False) -> np.ndarray:
        """The fine (or coarse) pass on one frame: boxes in stored-frame px."""
        W, H = frame.width, frame.height
        dw, dh = display_size(W, H, self.turns)
        iw, ih, tiles = self.plan_inference(dw, dh, coarse)
        if len(tiles) == 1:
            b = self.infer_whole(frame, iw, ih, dw, dh)
        else:
            full = self.pixels(frame, frame.width, frame.height)
            if self.turns:
                full = np.rot90(full, self.turns)
            out = []
            for (x, y, tw, th) in tiles:
                tile = self.cv2.resize(full[y:y + th, x:x + tw], (iw, ih), interpolation=self.cv2.INTER_AREA
                                       if iw < tw else self.cv2.INTER_LINEAR)
                tb = self.infer_image(tile, iw, ih)
                if len(tb):
                    tb[:, [0, 2]] = tb[:, [0, 2]] * (tw / iw) + x
                    tb[:, [1, 3]] = tb[:, [1, 3]] * (th / ih) + y
                    out.append(tb)
            b = nms(np.concatenate(out), 0.3) if out else EMPTY
        b = self.more_boxes(frame, b, iw / tiles[0][2], dw, dh)
        b = self.checked_boxes(frame, b, dw, dh)
        b = boxes_from_display(b, self.turns, W, H)
        if len(b):
            b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, W)
            b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, H)
        return b

    def __call__(self, frames):
        """Fine pass (small faces; a model's ``more_boxes`` too)."""
        return [self.detect_frame(f) for f in frames]

    def coarse(self, frames):
        """Coarse pass: the whole frame in one inference at most ``coarse_width`` wide (big and mid-size faces)."""
        return [self.detect_frame(f, coarse=True) for f in frames]
