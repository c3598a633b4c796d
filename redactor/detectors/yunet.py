"""YuNet-n (Apache-2.0, libfacedetection.train), a small local face model vendored with the engine
(``redactor/models/``, SHA-256 checked at load), run by OpenCV DNN (``yunet_net.YuNetNet``: ``cv2.FaceDetectorYN``'s
network and decoding, without its target request; the runtime the Lambda layer has). 4-5x cheaper per inference than CenterFace at the same input size, and it finds faces of
~8-10 model pixels without upscaling (measured: docs/detectors.md).

Passes (the protocol of ``base.Detector``; every input is BGR with sides rounded to multiples of 32):

* ``__call__`` (fine): the whole frame scaled so a ``min_face`` face spans ``FINE_FACE`` model pixels (at the
  default ``min_face`` 16: 2x, never more than 3x), within a ``max_infer_width`` x 1088
  budget; wider frames (4K) are tiled at their own resolution (``base.TwoTierModel.plan_inference``, as CenterFace);
* ``coarse``: the whole frame in one inference at most ``coarse_width`` wide, and, when that shrinks the frame,
  at most ``COARSE_SHORT_SIDE`` (288) px on its short side, so it needs no large-face pass;
* ``track``: the fine scale in windows around known small faces (``windows.track_in_windows``); a face its
  window misses is looked for once more in a tighter window (``LOOK_GROW`` / 2 face sizes, at ``LOOK_FACE``);
* the fine pass's small boxes that score under the threshold from ``LOOK_LOW`` get a second, closer look
  (``second_look``): faces too small or too bent for the fine pass's scale;
* large faces: YuNet's boxes come out undersized for faces above ~300 model pixels and it misses them above
  ~600 (measured on the astronaut: 0.7x at 600, nothing at 900), so every pass whose input can hold such a face
  also looks at the whole frame at most ``LARGE_SIDE`` model pixels (and half the pass's) on its short side; a box of the full-size
  pass that lies mostly inside a larger box of that pass is replaced by it, and one above ``LARGE_FACE`` model
  pixels that no box of that pass overlaps is dropped (out of YuNet's range, such boxes are table tops, hands
  and ceilings as often as faces; the large-face pass sees a real one at a size YuNet is sure of).
"""
from __future__ import annotations

import math

import numpy as np

from ..boxes import widen_turned
from ..tracking.matching import match
from ..tracking.tracks import PAIR_DIST
from .base import EMPTY, TwoTierModel, boxes_from_display, display_size, nms
from .crop_check import CropCheck, best_overlapping
from .windows import track_in_windows
from .yunet_net import YuNetNet


def _up32(x: float) -> int:
    return max(32, int(math.ceil(x / 32) * 32))


class YuNet(TwoTierModel):
    name = "yunet"
    FINE_FACE = 32.0  # model px a min_face face is scaled to in the fine pass (2x at min_face 16; measured on
    # synth crops 18-28 px wide, faces ~10-15 px: 24 missed 3/60, 32 none; CenterFace needs 48, 3x)
    COARSE_RELIABLE_FACE = 24.0  # model px above which the coarse pass finds a face reliably
    # the coarse pass upscales at most 2x (a half face 62 px high scores 0.19-0.28 at 1x, 0.83-0.85 at 2x;
    # docs/detectors.md): 480x270 is two-tier (coarse 640x384, fine 960x544), 320x180
    # single tier at 640x384
    COARSE_UPSCALE = 2.0
    # a coarse pass that shrinks the frame is at most 288 px (LARGE_SIDE) on its short side: no face in it can
    # exceed LARGE_FACE, so it needs no large-face pass (1080p: 512x288 costs ~13 ms on 1 thread; 640x384 would need
    # a 320x192 large-face pass too, ~24 ms together); frames it upscales (< 640 wide) are unchanged
    COARSE_SHORT_SIDE = 288
    LARGE_FACE = 300.0  # model px above which YuNet's boxes come out undersized (and above ~600 it misses)
    LARGE_SIDE = 288  # the large-face pass infers the whole frame at most this many px on its short side
    REPLACE_ABOVE = 100.0  # full-pass boxes at least this big (model px) may be replaced by a large-pass box
    CONFIRM_OVERLAP = 0.5  # a large-pass box confirms a full-pass box it overlaps by this share of the smaller
    NMS = 0.3
    PIXELS = "bgr24"
    # box width per unit of height (measured: frontal faces in the shared clips 0.73-0.86, the astronaut 0.80,
    # generated 0.85-0.87; generated squeezed faces 0.59-0.62, half 0.50-0.56 with the landmarks 0.08-0.14 of the
    # box right of centre, a real profile 0.73 with 0.26): boxes narrower than NARROW_ASPECT, with lopsided
    # landmarks, or at the image's edge (cut by it) are widened to FRONTAL_ASPECT (``boxes.widen_turned``)
    FRONTAL_ASPECT = 0.9
    NARROW_ASPECT = 0.7
    # the blur of a face whose box spans at most BLUR_TALL_BELOW[0] px of the coarse pass's input is BLUR_TALL
    # times as tall as the box, tapering to 1 at BLUR_TALL_BELOW[1] (``blur_boxes``): YuNet's boxes of faces
    # that small in its input are shorter than CenterFace's on the same faces (1080p coarse samples, faces 40-55
    # model px: CenterFace/YuNet height 1.01-1.21, mean ~1.08; widths 0.92-1.02; at 60-220 px as tall), and
    # the blur left big moving faces' foreheads and chins partly sharp between samples (vs_deface.py's 1080p
    # clip: GT 0.9958, deface 0.9983, CenterFace 1.000). Only the blur grows: detection, tracking and pairing
    # see YuNet's own boxes (taller detector boxes make the tracker lose a half-hidden face: test_yunet.py);
    # 1.15 still left one face at 0.267 of its detail on that clip, 1.2 none (GT 1.000). Tuned with the 640-wide
    # 1080p coarse pass (faces up to 192 px grown, tapering to 288); with the 512-wide one (COARSE_SHORT_SIDE)
    # the same coarse-px bounds reach faces up to 240 px, tapering to 360, as they are smaller in its input
    BLUR_TALL = 1.2
    BLUR_TALL_BELOW = (64.0, 96.0)
    # boxes of at least CropCheck.MIN_FACE display px (at the frame's edge too), found by a pass or in a tracking
    # window, are shown to CenterFace on their crop (a vase, a vest, a cat's face found again on every sample:
    # ``crop_check``); one it does not confirm is dropped (DROP_DOUBTED off: kept, doubted, blurred on its own
    # sample interval and never spread)
    # a second, closer look at small faces (``look_bgr``, ``second_look``; ``track``): a fine-pass box under
    # LOOK_BELOW model px scoring from LOOK_LOW to the threshold (the LOOK_MAX best of an inference) is looked at
    # again on its surroundings (LOOK_GROW times its size, square), scaled so it spans LOOK_FACE model px, and
    # stands where YuNet finds it there from the threshold up (a box overlapping LOOK_OVERLAP of the smaller);
    # a tracked face its window misses is looked for once more in a window of LOOK_GROW / 2 face sizes at
    # LOOK_FACE. Measured on a generated fisheye scene (faces bent by the warp on gravel): its 24 px face scores
    # 0.1-0.34 at the fine pass's 1.3x and 0.7-0.9 looked at closer; its 16 px face, boxed 8 px, is found by the
    # close window on frames the 2.5-size window misses. What is found goes through the crop check like any box
    LOOK = True
    LOOK_LOW = 0.1
    LOOK_BELOW = 64.0
    LOOK_FACE = 32.0
    LOOK_GROW = 3.0
    LOOK_OVERLAP = 0.3
    LOOK_MAX = 24
    CROP_CHECK = True
    DROP_DOUBTED = True

    def __init__(self, settings, source=None, model_path: str | None = None):
        """``settings``: the detection settings (``threshold``, ``min_face``, ``max_infer_width``,
        ``coarse_width``); ``source``: the video's SourceInfo (rotation). ``model_path``: another copy of the
        model (default: the vendored one); it must have the vendored model's SHA-256."""
        import cv2

        from ..model import verified_yunet_path

        self.cv2 = cv2
        path = verified_yunet_path(model_path)
        self.threshold = float(settings.threshold)
        self.low = min(self.threshold, self.LOOK_LOW)
        self.net = YuNetNet(str(path), (320, 320), self.threshold, self.NMS, 5000)
        self._input = (320, 320)
        self.look_side = _up32(self.LOOK_FACE * self.LOOK_GROW)
        self.look_net = YuNetNet(str(path), (self.look_side, self.look_side), self.threshold, self.NMS, 5000)
        self.looking = False
        self.looks = 0
        self.init_geometry(settings, source)
        self.calls = 0
        self.crop_check = (CropCheck(getattr(settings, "model_path", None), self.DROP_DOUBTED) if self.CROP_CHECK
                           else None)

    def large_size(self, width: int, height: int, scale: float) -> tuple[int, int]:
        """Model size of the large-face pass for a display-oriented width x height frame whose full pass
        runs at ``scale`` model px per frame px: its short side at most ``LARGE_SIDE`` and at most half the
        full pass's (a face that filled the full pass's short side is at most half that size here)."""
        s = min(self.LARGE_SIDE, min(width, height) * scale / 2) / min(width, height)
        return _up32(width * s), _up32(height * s)

    # ------------------------------------------------------------------------------------------ inference
    def detect_bgr(self, img: np.ndarray, low: bool = False) -> np.ndarray:
        """Faces on a BGR uint8 image (sides multiples of 32), boxes in its pixels; ``low``: from ``LOOK_LOW``
        up, else from the threshold."""
        h, w = img.shape[:2]
        if (w, h) != self._input:
            self.net.setInputSize((w, h))
            self._input = (w, h)
        self.net.score_threshold = self.low if low else self.threshold  # decoding and NMS skip the rest
        _, faces = self.net.detect(img)
        self.calls += 1
        return self.to_boxes(faces, w, h)

    def to_boxes(self, faces: np.ndarray | None, w: int, h: int) -> np.ndarray:
        """YuNet's faces (rows of x, y, w, h, 5 landmarks, score) on a w x h input as boxes (x0, y0, x1, y1,
        score), turned and cut faces widened (``boxes.widen_turned``)."""
        if faces is None or len(faces) == 0:
            return EMPTY
        b = np.empty((len(faces), 5), np.float32)
        b[:, 0:2] = faces[:, 0:2]
        b[:, 2:4] = faces[:, 0:2] + faces[:, 2:4]
        b[:, 4] = faces[:, -1]
        if self.FRONTAL_ASPECT:  # faces[:, 4:14]: 5 landmarks (x, y)
            m = 0.1 * np.maximum(faces[:, 2], faces[:, 3])  # at (or within a tenth of its size of) the edge
            cut = (b[:, 0] < m) | (b[:, 1] < m) | (b[:, 2] > w - m) | (b[:, 3] > h - m)
            b = widen_turned(b, faces[:, 4:14:2], self.FRONTAL_ASPECT, self.NARROW_ASPECT, cut=cut)
        return b

    def infer_image(self, img: np.ndarray, iw: int, ih: int) -> np.ndarray:
        return self.look_bgr(img) if self.looking else self.detect_bgr(img)

    def look_bgr(self, img: np.ndarray) -> np.ndarray:
        """``detect_bgr`` with a ``second_look`` at each box under ``LOOK_BELOW`` model px that scores from
        ``LOOK_LOW`` to the threshold."""
        b = self.detect_bgr(img, low=True)
        sure = b[:, 4] >= self.threshold
        small = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) < self.LOOK_BELOW
        ask = b[~sure & small]
        ask = ask[np.argsort(-ask[:, 4], kind="stable")[:self.LOOK_MAX]]
        found = [f for f in (self.second_look(img, x) for x in ask) if f is not None]
        return np.concatenate([b[sure], np.array(found, np.float32)]) if found else b[sure]

    def second_look(self, img: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        """YuNet again on the surroundings of ``box`` (img px, scored under the threshold), scaled so the box
        spans ``LOOK_FACE`` model px: its box there (img px) when it scores from the threshold up, else None."""
        size = max(box[2] - box[0], box[3] - box[1], 1.0)
        n = max(1, int(round(self.look_side * size / self.LOOK_FACE)))  # img px the look's input covers
        x0 = int(round((box[0] + box[2] - n) / 2))
        y0 = int(round((box[1] + box[3] - n) / 2))
        h, w = img.shape[:2]
        sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x0 + n), min(h, y0 + n)
        crop = np.zeros((n, n, 3), np.uint8)
        crop[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = img[sy0:sy1, sx0:sx1]
        look = self.cv2.resize(crop, (self.look_side, self.look_side), interpolation=self.cv2.INTER_LINEAR)
        _, faces = self.look_net.detect(look)
        self.looks += 1
        k = self.look_side / n  # look px per img px
        b = (box[:4] - np.array([x0, y0, x0, y0], np.float32)) * k
        hit = best_overlapping(b, self.to_boxes(faces, self.look_side, self.look_side), self.LOOK_OVERLAP)
        if hit is None:
            return None
        return np.array([hit[0] / k + x0, hit[1] / k + y0, hit[2] / k + x0, hit[3] / k + y0, hit[4]], np.float32)

    def detect_frame(self, frame, coarse: bool = False) -> np.ndarray:
        """``TwoTierModel.detect_frame``; the fine pass's small boxes under the threshold get a ``second_look``."""
        self.looking = self.LOOK and not coarse
        try:
            return super().detect_frame(frame, coarse)
        finally:
            self.looking = False

    def more_boxes(self, frame, boxes: np.ndarray, scale: float, dw: int, dh: int) -> np.ndarray:
        """Add the large-face pass when the full pass (``scale`` model px per frame px) could hold a face
        above ``LARGE_FACE`` model px; full-pass boxes mostly inside a larger large-pass box give way, and
        full-pass boxes above ``LARGE_FACE`` model px that no large-pass box confirms are dropped."""
        if min(dw, dh) * scale <= self.LARGE_FACE:
            return boxes
        lw, lh = self.large_size(dw, dh, scale)
        looking, self.looking = self.looking, False  # the large-face pass: no face in it is small
        large = self.infer_whole(frame, lw, lh, dw, dh)
        self.looking = looking
        if not len(boxes):
            return large
        side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) * scale
        ix = np.clip(np.minimum(boxes[:, None, 2], large[None, :, 2]) -
                     np.maximum(boxes[:, None, 0], large[None, :, 0]), 0, None)
        iy = np.clip(np.minimum(boxes[:, None, 3], large[None, :, 3]) -
                     np.maximum(boxes[:, None, 1], large[None, :, 1]), 0, None)
        area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[:, None]
        larea = ((large[:, 2] - large[:, 0]) * (large[:, 3] - large[:, 1]))[None, :]
        inside = (ix * iy >= 0.6 * np.maximum(area, 1e-6)) & (larea > area)
        # YuNet is out of its range above LARGE_FACE model px (undersized boxes; table tops, hands and
        # ceilings of a fisheye kitchen clip scored 0.36-0.74 as faces 490-650 px wide): such a box stands
        # only where the large-face pass, which sees that face at a size YuNet is sure of, finds it too
        # (overlapping at least half of the smaller box)
        shared = ix * iy >= self.CONFIRM_OVERLAP * np.minimum(area, larea)
        unconfirmed = (side > self.LARGE_FACE) & ~shared.any(axis=1)
        boxes = boxes[~(((side >= self.REPLACE_ABOVE) & inside.any(axis=1)) | unconfirmed)]
        return nms(np.concatenate([boxes, large]), self.NMS) if len(large) else boxes

    def checked_boxes(self, frame, boxes: np.ndarray, dw: int, dh: int, kind: str = "pass") -> np.ndarray:
        """Boxes (display px of a dw x dh frame) less those CenterFace does not confirm on their crop
        (``CropCheck.check``)."""
        if self.crop_check is None or not len(boxes):
            return boxes
        return self.crop_check.check(lambda w, h: np.ascontiguousarray(self.display_pixels(frame, w, h)[:, :, ::-1]),
                                     boxes, dw, dh, kind)

    def blur_boxes(self, boxes: np.ndarray, width: int, height: int) -> np.ndarray:
        """Boxes of faces small in the coarse pass's input made ``BLUR_TALL`` times as tall about their centre
        (in display orientation: a quarter-turned stored frame grows along x), for the blur only."""
        if self.BLUR_TALL == 1.0 or not len(boxes):
            return boxes
        dw, dh = display_size(width, height, self.turns)
        cw = self.plan_inference(dw, dh, coarse=True)[0]
        ax = 0 if self.turns % 2 else 1
        b = np.array(boxes, dtype=np.float32, copy=True)
        h = b[:, ax + 2] - b[:, ax]
        lo, hi = self.BLUR_TALL_BELOW
        g = (self.BLUR_TALL - 1.0) / 2 * h * np.clip((hi - h * cw / dw) / (hi - lo), 0.0, 1.0)
        b[:, ax] -= g
        b[:, ax + 2] += g
        return b

    def track(self, frame, boxes: np.ndarray, spread: np.ndarray | None = None) -> np.ndarray:
        """Follow known small faces: the fine scale in a window around each (``windows.track_in_windows``,
        which hands RGB: flipped to BGR here). What a window finds is crop-checked like a pass's boxes: a
        window several face sizes wide around a face finds the textures beside it too (a vase of flowers behind
        a head), and each would start a track of its own."""
        def bgr(img, iw, ih):
            return self.detect_bgr(np.ascontiguousarray(img[:, :, ::-1]))

        found = track_in_windows(frame, boxes, spread, self.turns, self.FINE_FACE, bgr)
        if self.LOOK and len(boxes):
            # a face its window missed (nothing found there continues its track): looked for once more in a
            # window of LOOK_GROW / 2 face sizes, the face at LOOK_FACE model px
            paired = {a for a, _ in match(boxes, found, max_dist=PAIR_DIST)} if len(found) else set()
            lost = np.asarray([a for a in range(len(boxes)) if a not in paired], np.int64)
            if len(lost):
                again = track_in_windows(frame, np.asarray(boxes)[lost], np.full(len(lost), self.LOOK_GROW / 2),
                                         self.turns, self.LOOK_FACE, bgr)
                self.looks += len(lost)
                found = nms(np.concatenate([found, again]), self.NMS) if len(again) else found
        if not len(found):
            return found
        W, H = frame.width, frame.height
        dw, dh = display_size(W, H, self.turns)
        shown = boxes_from_display(found, (4 - self.turns) % 4, dw, dh)  # stored -> display: the inverse turn
        return boxes_from_display(self.checked_boxes(frame, shown, dw, dh, "track"), self.turns, W, H)
