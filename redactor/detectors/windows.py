"""Looking for known faces again in small windows around them (small-face tracking), for any local model.

``track_in_windows`` cuts a window ``2 * spread`` face sizes wide around each (predicted) box, turns it to
display orientation, scales it so the face spans ``face_px`` model pixels and hands it to the model: a few ms
per face instead of a whole fine pass. Only the window is converted from YUV, never the whole frame."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .base import EMPTY, boxes_from_display, nms


def _planes420(frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read-only numpy views (h, w) of a yuv420p frame's Y, U, V planes."""
    out = []
    for p in frame.planes[:3]:
        a = np.frombuffer(p, dtype=np.uint8).reshape(-1, p.line_size)[: p.height, : p.width]
        out.append(a)
    return out[0], out[1], out[2]


def track_in_windows(frame, boxes: np.ndarray, spread: np.ndarray | None, turns: int, face_px: float,
                     infer: Callable[[np.ndarray, int, int], np.ndarray]) -> np.ndarray:
    """Faces found (stored-frame px) in a window around each of ``boxes``. ``turns``: quarter turns to display
    orientation; ``infer(rgb, iw, ih)``: the model on an RGB image already at (ih, iw), boxes in its pixels."""
    import cv2

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
            crop = cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)
        else:
            crop = full[b:d, a:c]
        if turns:
            crop = np.rot90(crop, turns)
        ch, cw = crop.shape[:2]
        # the face is brought to face_px model pixels: upscaled when small, downscaled when larger
        scale = min(4.0, max(0.25, face_px / size))
        iw = max(32, int(math.ceil(cw * scale / 32) * 32))
        ih = max(32, int(math.ceil(ch * scale / 32) * 32))
        img = cv2.resize(np.ascontiguousarray(crop), (iw, ih), interpolation=cv2.INTER_LINEAR)
        found = infer(img, iw, ih)
        if len(found):
            found[:, [0, 2]] *= cw / iw
            found[:, [1, 3]] *= ch / ih
            found = boxes_from_display(found, turns, c - a, d - b)
            found[:, [0, 2]] += a
            found[:, [1, 3]] += b
            out.append(found)
    if not out:
        return EMPTY
    b = nms(np.concatenate(out), 0.3)
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, W)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, H)
    return b
