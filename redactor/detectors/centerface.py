"""CenterFace (MIT), the local face model, run by ``runtime.make_net`` (OpenCV DNN or OpenVINO).

Two-tier: ``__call__`` is the fine pass (sized so a ``min_face`` face spans ``FINE_FACE`` model pixels; 4K
frames tiled), ``coarse`` one whole-frame inference at most ``coarse_width`` wide, ``track`` the fine scale
in windows around known small faces (``windows.py``). The inference size is picked from the frame size
(``plan_inference``): small frames are upscaled, large ones tiled, never silently skipped."""
from __future__ import annotations

import math

import numpy as np

from .base import EMPTY, SingleTierDetector, boxes_from_display, display_size, nms, quarter_turns
from .runtime import make_net
from .windows import track_in_windows


class CenterFace(SingleTierDetector):
    name = "centerface"
    OUTPUTS = ["537", "538", "539", "540"]
    FINE_FACE = 48.0  # model pixels a min_face face is scaled to in the fine pass (measured: 32 px finds 78 %)
    COARSE_RELIABLE_FACE = 40.0  # model px above which the coarse pass finds a face reliably

    def __init__(self, settings, source=None, model_path: str | None = None):
        """``settings``: the detection settings (``threshold``, ``min_face``, ``max_infer_width``,
        ``coarse_width``, ``model_path``, ``inference``); ``source``: the video's SourceInfo (rotation)."""
        import cv2

        from ..model import verified_model_path

        self.cv2 = cv2
        path = verified_model_path(model_path or settings.model_path)
        self.net = make_net(str(path), settings.inference, self.OUTPUTS)
        self.threshold = float(settings.threshold)
        self.min_face = float(settings.min_face)
        self.max_infer_width = int(settings.max_infer_width)
        self.coarse_width = int(settings.coarse_width)
        self.turns = quarter_turns(source.rotation) if source else 0
        self.calls = 0
        self._sizes: dict[tuple[int, int], tuple[int, int, list]] = {}

    @property
    def backend(self) -> str:
        return self.net.name

    def set_threads(self, threads: int) -> None:
        """Inference threads for this worker (the pool gives each worker its share of the cores)."""
        self.net.set_threads(threads)

    def stats(self) -> dict:
        """Inference calls since the last stats() call (a worker reports once per chunk)."""
        calls, self.calls = self.calls, 0
        return {"calls": calls, "backend_" + self.net.name: 1}

    def plan_inference(self, width: int, height: int, coarse: bool = False
                       ) -> tuple[int, int, list[tuple[int, int, int, int]]]:
        """(infer_w, infer_h, tiles) for a display-oriented frame of width x height. Tiles are source-pixel
        rectangles (x, y, w, h), each inferred at infer_w x infer_h.

        Fine pass: scaled so a ``min_face`` face spans ``FINE_FACE`` model pixels (small frames are
        upscaled, at most 3x), within a budget of ``max_infer_width`` x 1088 model pixels; frames wider than
        ``max_infer_width`` (4K) are tiled at their own resolution so their small faces are not shrunk away.
        Coarse pass: the whole frame in one inference at most ``coarse_width`` wide (big and mid-size faces).
        """
        key = (width, height, coarse)
        if key in self._sizes:
            return self._sizes[key]
        if coarse:
            iw = min(self.coarse_width, self.plan_inference(width, height)[0])
            iw = int(math.ceil(iw / 32) * 32)
            ih = int(math.ceil(height * iw / width / 32) * 32)
            self._sizes[key] = (iw, ih, [(0, 0, width, height)])
            return self._sizes[key]
        budget = self.max_infer_width * 1088
        scale = min(3.0, max(1.0, self.FINE_FACE / self.min_face))
        scale = max(1.0, min(scale, math.sqrt(budget / (width * height))))
        nx = max(1, math.ceil(width / self.max_infer_width - 1e-9))
        ny = max(1, math.ceil(height / 1088 - 1e-9)) if nx > 1 else 1
        tiles = []
        if nx == 1:
            tiles.append((0, 0, width, height))
            tw, th = width, height
        else:
            scale = 1.0
            ov = 0.08  # overlap so a face on a border is whole in one tile
            tw = math.ceil(width / (nx - (nx - 1) * ov))
            th = math.ceil(height / (ny - (ny - 1) * ov)) if ny > 1 else height
            for iy in range(ny):
                for ix in range(nx):
                    x = min(width - tw, round(ix * tw * (1 - ov)))
                    y = min(height - th, round(iy * th * (1 - ov))) if ny > 1 else 0
                    tiles.append((x, y, tw, th))
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

    def detect_rgb(self, img: np.ndarray, iw: int, ih: int, fixed: bool = True) -> np.ndarray:
        """img: RGB uint8 (h, w, 3) already at (ih, iw). Returns boxes in img pixels. ``fixed``: this input
        size recurs (whole frames, tiles), so a backend may specialise for it; track windows vary."""
        blob = self.cv2.dnn.blobFromImage(img, 1.0, (iw, ih), (0, 0, 0), swapRB=False, crop=False)
        heatmap, scale, offset = self.net.run(blob, fixed)
        self.calls += 1
        return self.decode(heatmap, scale, offset, self.threshold)

    @staticmethod
    def decode(heatmap, scale, offset, threshold) -> np.ndarray:
        hm = heatmap[0, 0]
        ys, xs = np.nonzero(hm > threshold)
        if len(ys) == 0:
            return EMPTY
        s0 = np.exp(scale[0, 0, ys, xs]) * 4
        s1 = np.exp(scale[0, 1, ys, xs]) * 4
        o0 = offset[0, 0, ys, xs]
        o1 = offset[0, 1, ys, xs]
        x1 = np.maximum(0, (xs + o1 + 0.5) * 4 - s1 / 2)
        y1 = np.maximum(0, (ys + o0 + 0.5) * 4 - s0 / 2)
        boxes = np.stack([x1, y1, x1 + s1, y1 + s0, hm[ys, xs]], axis=1).astype(np.float32)
        return nms(boxes, 0.3)

    def detect_frame(self, frame, coarse: bool = False) -> np.ndarray:
        W, H = frame.width, frame.height
        dw, dh = display_size(W, H, self.turns)
        iw, ih, tiles = self.plan_inference(dw, dh, coarse)
        if len(tiles) == 1:
            # one swscale call: scale + convert to RGB in C
            if self.turns:
                img = frame.reformat(width=ih if self.turns % 2 else iw, height=iw if self.turns % 2 else ih,
                                     format="rgb24").to_ndarray()
                img = np.ascontiguousarray(np.rot90(img, self.turns))
            else:
                img = frame.reformat(width=iw, height=ih, format="rgb24").to_ndarray()
            b = self.detect_rgb(img, iw, ih)
            if len(b):
                b[:, [0, 2]] *= dw / iw
                b[:, [1, 3]] *= dh / ih
        else:
            full = frame.to_ndarray(format="rgb24")
            if self.turns:
                full = np.rot90(full, self.turns)
            out = []
            for (x, y, tw, th) in tiles:
                tile = self.cv2.resize(full[y:y + th, x:x + tw], (iw, ih), interpolation=self.cv2.INTER_AREA
                                       if iw < tw else self.cv2.INTER_LINEAR)
                tb = self.detect_rgb(tile, iw, ih)
                if len(tb):
                    tb[:, [0, 2]] = tb[:, [0, 2]] * (tw / iw) + x
                    tb[:, [1, 3]] = tb[:, [1, 3]] * (th / ih) + y
                    out.append(tb)
            b = nms(np.concatenate(out), 0.3) if out else EMPTY
        b = boxes_from_display(b, self.turns, W, H)
        if len(b):
            b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, W)
            b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, H)
        return b

    def track(self, frame, boxes: np.ndarray, spread: np.ndarray | None = None) -> np.ndarray:
        """Follow known (small) faces: the fine scale in a window ``spread`` face sizes (default 2.5) around
        each (predicted) box (``windows.track_in_windows``). Returns the boxes found (frame px)."""
        return track_in_windows(frame, boxes, spread, self.turns, self.FINE_FACE,
                                lambda img, iw, ih: self.detect_rgb(img, iw, ih, fixed=False))

    def __call__(self, frames):
        """Fine pass (small faces)."""
        return [self.detect_frame(f) for f in frames]

    def coarse(self, frames):
        """Coarse pass: the whole frame at most ``coarse_width`` wide (faces above ~2-3 % of the width)."""
        return [self.detect_frame(f, coarse=True) for f in frames]
