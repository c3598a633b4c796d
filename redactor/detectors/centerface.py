"""CenterFace (MIT), the local face model, run by OpenCV DNN (``cv2.dnn``, the runtime the Lambda layer has and
the engine's only one).

Two-tier: ``__call__`` is the fine pass (sized so a ``min_face`` face spans ``FINE_FACE`` model pixels; 4K
frames tiled), ``coarse`` one whole-frame inference at most ``coarse_width`` wide, ``track`` the fine scale
in windows around known small faces (``windows.py``). The inference size is picked from the frame size
(``plan_inference``): small frames are upscaled, large ones tiled, never silently skipped."""
from __future__ import annotations

import numpy as np

from ..boxes import nms_keep, widen_turned
from .base import EMPTY, TwoTierModel
from .windows import track_in_windows


class CenterFace(TwoTierModel):
    name = "centerface"
    OUTPUTS = ["537", "538", "539", "540"]
    FINE_FACE = 48.0  # model pixels a min_face face is scaled to in the fine pass (measured: 32 px finds 78 %)
    COARSE_RELIABLE_FACE = 40.0  # model px above which the coarse pass finds a face reliably
    # box width per unit of height (measured: frontal faces in the shared clips 0.76-0.91, median 0.80, the
    # astronaut 0.74-0.76, generated 0.80-0.84; generated half faces 0.58-0.72, squeezed 0.62-0.68, a real
    # profile 0.71-0.82 with its landmarks 0.2-0.25 of the box off centre): boxes narrower than NARROW_ASPECT,
    # with lopsided landmarks, or at the image's edge (cut by it) are widened to FRONTAL_ASPECT (``boxes.widen_turned``;
    # docs/architecture.md, coverage)
    FRONTAL_ASPECT = 0.9
    NARROW_ASPECT = 0.75

    def __init__(self, settings, source=None, model_path: str | None = None):
        """``settings``: the detection settings (``threshold``, ``min_face``, ``max_infer_width``,
        ``coarse_width``, ``model_path``); ``source``: the video's SourceInfo (rotation)."""
        import cv2

        from ..model import verified_centerface_path

        self.cv2 = cv2
        path = verified_centerface_path(model_path or settings.model_path)
        self.net = cv2.dnn.readNetFromONNX(str(path))
        self.threshold = float(settings.threshold)
        self.init_geometry(settings, source)
        self.calls = 0

    def detect_rgb(self, img: np.ndarray, iw: int, ih: int) -> np.ndarray:
        """img: RGB uint8 (h, w, 3) already at (ih, iw). Returns boxes in img pixels."""
        blob = self.cv2.dnn.blobFromImage(img, 1.0, (iw, ih), (0, 0, 0), swapRB=False, crop=False)
        self.net.setInput(blob)
        heatmap, scale, offset, landmarks = self.net.forward(self.OUTPUTS)  # OpenCV 5 wants every output named
        self.calls += 1
        return self.decode(heatmap, scale, offset, self.threshold, landmarks, self.FRONTAL_ASPECT, self.NARROW_ASPECT)

    def infer_image(self, img: np.ndarray, iw: int, ih: int) -> np.ndarray:
        return self.detect_rgb(img, iw, ih)

    @staticmethod
    def decode(heatmap, scale, offset, threshold, landmarks=None, aspect: float = 0.0, narrow: float | None = None
               ) -> np.ndarray:
        """Boxes (model px) from the model's maps; with ``aspect``, boxes narrower than a frontal face's are
        widened (``boxes.widen_turned``, towards the side away from the ``landmarks`` where they are lopsided)."""
        hm = heatmap[0, 0]
        ys, xs = np.nonzero(hm > threshold)
        if len(ys) == 0:
            return EMPTY
        s0 = np.exp(scale[0, 0, ys, xs]) * 4
        s1 = np.exp(scale[0, 1, ys, xs]) * 4
        o0 = offset[0, 0, ys, xs]
        o1 = offset[0, 1, ys, xs]
        x0 = (xs + o1 + 0.5) * 4 - s1 / 2
        y0 = (ys + o0 + 0.5) * 4 - s0 / 2
        x1, y1 = np.maximum(0, x0), np.maximum(0, y0)
        boxes = np.stack([x1, y1, x1 + s1, y1 + s0, hm[ys, xs]], axis=1).astype(np.float32)
        keep = nms_keep(boxes, 0.3)
        boxes = boxes[keep]
        if aspect:
            lx = None
            if landmarks is not None:  # 5 points (x, y) relative to the box: channels 2j (y) and 2j+1 (x)
                lx = landmarks[0, 1::2][:, ys[keep], xs[keep]].T * s1[keep, None] + x1[keep, None]
            ih, iw = hm.shape[0] * 4, hm.shape[1] * 4  # the model input's size
            m = 0.1 * np.maximum(s0, s1)  # at (or within a tenth of its size of) the edge: cut by it
            cut = (x0 < m) | (y0 < m) | (x0 + s1 > iw - m) | (y0 + s0 > ih - m)
            boxes = widen_turned(boxes, lx, aspect, narrow, cut=cut[keep])
        return boxes

    def track(self, frame, boxes: np.ndarray, spread: np.ndarray | None = None) -> np.ndarray:
        """Follow known (small) faces: the fine scale in a window ``spread`` face sizes (default 2.5) around
        each (predicted) box (``windows.track_in_windows``). Returns the boxes found (frame px)."""
        return track_in_windows(frame, boxes, spread, self.turns, self.FINE_FACE, self.detect_rgb)
