"""Box geometry shared by the detectors and the tracker: ``(n, 5)`` float32 arrays ``x1, y1, x2, y2, score``
in a frame's pixel coordinates (``x2``/``y2`` exclusive). Pure numpy, no model."""
from __future__ import annotations

import numpy as np

EMPTY = np.zeros((0, 5), dtype=np.float32)


def as_boxes(b) -> np.ndarray:
    """Any sequence of boxes as a float32 (n, 5) array."""
    return np.asarray(b, dtype=np.float32).reshape(-1, 5)


def sizes(b: np.ndarray) -> np.ndarray:
    """A face's size: the larger side of its box."""
    return np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])


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


def clip_boxes(b: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip boxes to the frame and drop those left with no area (entirely outside)."""
    if not len(b):
        return b
    b = b.copy()
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, width)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, height)
    keep = (b[:, 2] - b[:, 0] > 0.5) & (b[:, 3] - b[:, 1] > 0.5)
    return b[keep]
