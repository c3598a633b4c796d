"""Face detectors behind one interface.

A detector is a callable over decoded frames (``av.VideoFrame``, stored orientation) returning, for each
frame, a float32 array of shape (n, 5): ``x1, y1, x2, y2, score`` in that frame's pixel coordinates.
Any exception it raises fails the segment closed. Backends are registered by name in ``FACTORIES``;
``make_detector(config, source_info)`` builds one (inside each worker process, once).
"""
from __future__ import annotations

import math
from typing import Callable, Protocol, Sequence

import numpy as np

from .config import Config
from .errors import DetectionError, ModelError
from .records import SourceInfo

EMPTY = np.zeros((0, 5), dtype=np.float32)


class Detector(Protocol):
    name: str

    def __call__(self, frames: Sequence["av.VideoFrame"]) -> list[np.ndarray]: ...  # noqa: F821

    def stats(self) -> dict: ...


# ---------------------------------------------------------------------------------------------- geometry
def rotate_k(rotation: int) -> int:
    """Number of counter-clockwise quarter turns that bring a stored frame to display orientation."""
    return (int(round(rotation / 90.0))) % 4


def boxes_from_display(boxes: np.ndarray, k: int, width: int, height: int) -> np.ndarray:
    """Map boxes found on ``np.rot90(stored, k)`` back to stored-frame coordinates (width/height: stored)."""
    if k == 0 or len(boxes) == 0:
        return boxes
    out = boxes.copy()
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    if k == 1:  # display (xd, yd) <- stored (xs = W - yd, ys = xd)
        out[:, 0], out[:, 2] = width - y2, width - y1
        out[:, 1], out[:, 3] = x1, x2
    elif k == 2:
        out[:, 0], out[:, 2] = width - x2, width - x1
        out[:, 1], out[:, 3] = height - y2, height - y1
    elif k == 3:  # display (xd, yd) <- stored (xs = yd, ys = H - xd)
        out[:, 0], out[:, 2] = y1, y2
        out[:, 1], out[:, 3] = height - x2, height - x1
    return out


def _planes420(frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read-only numpy views (h, w) of a yuv420p frame's Y, U, V planes."""
    out = []
    for p in frame.planes[:3]:
        a = np.frombuffer(p, dtype=np.uint8).reshape(-1, p.line_size)[: p.height, : p.width]
        out.append(a)
    return out[0], out[1], out[2]


def nms(boxes: np.ndarray, iou: float = 0.3) -> np.ndarray:
    if len(boxes) <= 1:
        return boxes
    x1, y1, x2, y2, s = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-s)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        xx1 = np.maximum(x1[i], x1[order[1:]])
        yy1 = np.maximum(y1[i], y1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        yy2 = np.minimum(y2[i], y2[order[1:]])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        ov = inter / (areas[i] + areas[order[1:]] - inter + 1e-9)
        order = order[1:][ov < iou]
    return boxes[keep]


# ---------------------------------------------------------------------------------------------- inference
class OpenCVNet:
    """The model in OpenCV DNN (always available: OpenCV is a core dependency)."""

    name = "opencv"

    def __init__(self, path: str, outputs: list[str]):
        import cv2

        self.net = cv2.dnn.readNetFromONNX(path)
        self.outputs = outputs  # OpenCV 5 wants every output named

    def set_threads(self, threads: int) -> None:
        import cv2

        cv2.setNumThreads(max(1, int(threads)))

    def run(self, blob: np.ndarray, fixed: bool = True) -> tuple[np.ndarray, ...]:
        self.net.setInput(blob)
        return tuple(self.net.forward(self.outputs)[:3])


class OpenVINONet:
    """The same ONNX model in OpenVINO's CPU runtime: 2.2-2.6x faster than OpenCV DNN per inference on this
    machine (README "Speed"). Whole-frame sizes get a model compiled for their exact shape; track windows
    (sizes vary) share one dynamic-shape compilation. Threads are not pinned to cores, so several worker
    processes share a machine."""

    name = "openvino"
    MAX_FIXED = 8

    def __init__(self, path: str, outputs: list[str]):
        import openvino as ov

        self.ov = ov
        self.core = ov.Core()
        self.model = self.core.read_model(path)
        self.outputs = outputs[:3]
        self.threads = 1
        self._compiled: dict = {}

    def set_threads(self, threads: int) -> None:
        threads = max(1, int(threads))
        if threads != self.threads:
            self.threads = threads
            self._compiled.clear()

    def _request(self, shape: tuple | None):
        req = self._compiled.get(shape)
        if req is None:
            if shape is not None and sum(1 for s in self._compiled if s is not None) >= self.MAX_FIXED:
                return self._request(None)
            model = self.model.clone()
            dims = list(shape) if shape is not None else [1, 3, -1, -1]
            model.reshape({model.inputs[0]: self.ov.PartialShape(dims)})
            compiled = self.core.compile_model(model, "CPU", {
                "INFERENCE_NUM_THREADS": self.threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
                "ENABLE_CPU_PINNING": False})
            req = (compiled.create_infer_request(), [compiled.output(n) for n in self.outputs])
            self._compiled[shape] = req
        return req

    def run(self, blob: np.ndarray, fixed: bool = True) -> tuple[np.ndarray, ...]:
        request, outs = self._request(tuple(blob.shape) if fixed else None)
        result = request.infer({0: blob})
        return tuple(result[o] for o in outs)


BACKENDS = {"opencv": OpenCVNet, "openvino": OpenVINONet}


def openvino_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def make_net(path: str, inference: str, outputs: list[str]):
    """The inference backend for ``inference`` (auto: OpenVINO when installed, else OpenCV DNN)."""
    if inference == "auto":
        inference = "openvino" if openvino_available() else "opencv"
    if inference == "openvino" and not openvino_available():
        raise ModelError("inference=openvino but the openvino package is not installed "
                         "(pip install openvino, or use inference=opencv)")
    return BACKENDS[inference](path, outputs)


# ---------------------------------------------------------------------------------------------- CenterFace
class CenterFace:
    """CenterFace (MIT), run by OpenVINO or OpenCV DNN (``make_net``). The inference size is picked from the frame size (see
    ``plan_inference``): small frames are upscaled, large ones tiled, never silently skipped."""

    name = "centerface"
    OUTPUTS = ["537", "538", "539", "540"]
    FINE_FACE = 48.0  # model pixels a min_face face is scaled to in the fine pass (measured: 32 px finds 78 %)

    def __init__(self, config: Config, source: SourceInfo | None = None, model_path: str | None = None):
        import cv2

        from .model import verified_model_path

        self.cv2 = cv2
        path = verified_model_path(model_path or config.model_path)
        self.net = make_net(str(path), config.inference, self.OUTPUTS)
        self.threshold = float(config.threshold)
        self.min_face = float(config.min_face)
        self.max_infer_width = int(config.max_infer_width)
        self.coarse_width = int(config.coarse_width)
        self.k = rotate_k(source.rotation) if source else 0
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

    COARSE_RELIABLE_FACE = 40.0  # model px above which the coarse pass finds a face reliably

    def coarse_min_face(self, width: int, height: int) -> float:
        """Face width (stored-frame px) below which only the fine pass is trusted to find a face."""
        dw, dh = (height, width) if self.k % 2 else (width, height)
        cw, _, _ = self.plan_inference(dw, dh, coarse=True)
        return self.COARSE_RELIABLE_FACE * dw / cw

    def two_tier(self, width: int, height: int) -> bool:
        """Whether the coarse pass is cheaper than the fine one for frames of this (stored) size."""
        dw, dh = (height, width) if self.k % 2 else (width, height)
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
        dw, dh = (H, W) if self.k % 2 else (W, H)
        iw, ih, tiles = self.plan_inference(dw, dh, coarse)
        if len(tiles) == 1:
            # one swscale call: scale + convert to RGB in C
            if self.k:
                img = frame.reformat(width=ih if self.k % 2 else iw, height=iw if self.k % 2 else ih,
                                     format="rgb24").to_ndarray()
                img = np.ascontiguousarray(np.rot90(img, self.k))
            else:
                img = frame.reformat(width=iw, height=ih, format="rgb24").to_ndarray()
            b = self.detect_rgb(img, iw, ih)
            if len(b):
                b[:, [0, 2]] *= dw / iw
                b[:, [1, 3]] *= dh / ih
        else:
            full = frame.to_ndarray(format="rgb24")
            if self.k:
                full = np.rot90(full, self.k)
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
        b = boxes_from_display(b, self.k, W, H)
        if len(b):
            b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, W)
            b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, H)
        return b


    def track(self, frame, boxes: np.ndarray, spread: np.ndarray | None = None) -> np.ndarray:
        """Follow known (small) faces: detect at fine scale only in a window around each (predicted) box.

        Each window spans ``2 * spread`` face sizes (default 2.5) around the box's centre, scaled so the face
        spans ``FINE_FACE`` model pixels: a few ms per face instead of a whole fine pass. Returns the boxes
        found (frame px)."""
        if len(boxes) == 0:
            return EMPTY
        W, H = frame.width, frame.height
        fmt = frame.format.name
        if fmt in ("yuv420p", "yuvj420p"):
            planes, full = _planes420(frame), None
        else:
            planes, full = None, frame.to_ndarray(format="rgb24")
        out = []
        boxes = np.asarray(boxes, dtype=np.float32)
        spread = np.full(len(boxes), 2.5, np.float32) if spread is None else np.asarray(spread)[: len(boxes)]
        for (x1, y1, x2, y2), sp in zip(boxes[:, :4], spread):
            size = max(x2 - x1, y2 - y1, 4.0)
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            half = float(sp) * size
            a, b = int(max(0, cx - half)) & ~1, int(max(0, cy - half)) & ~1
            c, d = min(W, int(cx + half) + 1) & ~1, min(H, int(cy + half) + 1) & ~1
            if c - a < 4 or d - b < 4:
                continue
            if planes is not None:  # convert only the window, not the whole frame
                y, u, v = planes
                i420 = np.concatenate([y[b:d, a:c].ravel(), u[b // 2:d // 2, a // 2:c // 2].ravel(),
                                       v[b // 2:d // 2, a // 2:c // 2].ravel()]).reshape((d - b) * 3 // 2, c - a)
                crop = self.cv2.cvtColor(i420, self.cv2.COLOR_YUV2RGB_I420)
            else:
                crop = full[b:d, a:c]
            if self.k:
                crop = np.rot90(crop, self.k)
            ch, cw = crop.shape[:2]
            # the face is brought to FINE_FACE model pixels: upscaled when small, downscaled when larger
            scale = min(4.0, max(0.25, self.FINE_FACE / size))
            iw = max(32, int(math.ceil(cw * scale / 32) * 32))
            ih = max(32, int(math.ceil(ch * scale / 32) * 32))
            img = self.cv2.resize(np.ascontiguousarray(crop), (iw, ih), interpolation=self.cv2.INTER_LINEAR)
            found = self.detect_rgb(img, iw, ih, fixed=False)
            if len(found):
                found[:, [0, 2]] *= cw / iw
                found[:, [1, 3]] *= ch / ih
                found = boxes_from_display(found, self.k, c - a, d - b)
                found[:, [0, 2]] += a
                found[:, [1, 3]] += b
                out.append(found)
        if not out:
            return EMPTY
        b = nms(np.concatenate(out), 0.3)
        b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, W)
        b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, H)
        return b

    def __call__(self, frames):
        """Fine pass (small faces)."""
        return [self.detect_frame(f) for f in frames]

    def coarse(self, frames):
        """Coarse pass: the whole frame at most ``coarse_width`` wide (faces above ~2-3 % of the width)."""
        return [self.detect_frame(f, coarse=True) for f in frames]


def _centerface(config: Config, source: SourceInfo | None):
    return CenterFace(config, source)


def _rekognition(config: Config, source: SourceInfo | None):
    from .rekognition import RekognitionDetector  # optional backend (needs boto3)
    return RekognitionDetector(config, source)


FACTORIES: dict[str, Callable[[Config, SourceInfo | None], Detector]] = {
    "centerface": _centerface,
    "rekognition": _rekognition,
    "rekognition-video": lambda c, s: __import__("redactor.rekognition_video", fromlist=["make"]).make(c, s),
}


def make_detector(config: Config, source: SourceInfo | None = None) -> Detector:
    try:
        factory = FACTORIES[config.detector]
    except KeyError:
        raise DetectionError(f"detector {config.detector!r} cannot run per segment here") from None
    return factory(config, source)
