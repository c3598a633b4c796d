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
    return boxes[nms_keep(boxes, iou)]


def nms_keep(boxes: np.ndarray, iou: float = 0.3) -> np.ndarray:
    """Indices of the boxes non-maximum suppression keeps (highest score first)."""
    if len(boxes) <= 1:
        return np.arange(len(boxes))
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
    return np.asarray(keep, dtype=np.intp)


def clip_boxes(b: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip boxes to the frame and drop those left with no area (entirely outside)."""
    if not len(b):
        return b
    b = b.copy()
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, width)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, height)
    keep = (b[:, 2] - b[:, 0] > 0.5) & (b[:, 3] - b[:, 1] > 0.5)
    return b[keep]


def widen_turned(boxes: np.ndarray, landmarks_x: np.ndarray | None, aspect: float, narrow: float | None = None,
                 lopsided: float = 0.2, cut: np.ndarray | None = None) -> np.ndarray:
    """A face boxed narrower than a frontal one (width/height below ``narrow``, default ``aspect``), or whose
    landmarks lie to one side of its box (their mean ``lopsided`` / 2 of the box width or more off centre), is
    a head turned away, a profile or a face partly hidden: the detector boxed the part it saw (a profile's eye,
    nose and mouth) or the whole face it imagines about the visible part's edge (a face half hidden), and the
    rest of the head reaches past the box's side. Such boxes are widened to ``aspect`` (a frontal face's box
    shape): on the side away from the landmarks where they lie off centre (a profile: the cheek and ear are on
    the side away from the nose; all of the widening at ``lopsided`` of the box width off centre, half of it
    half way), else on both sides (a half-hidden face's landmarks are centred on the imagined face: the side is
    unknown). So is a box at the image's edge (``cut``): the face is cut by it, and the shape of
    what is left says nothing of how the head is turned. ``landmarks_x``: (n, m) landmark x coordinates in the
    boxes' pixels, or None. Returns new boxes (height and score unchanged; other boxes as they were)."""
    if not len(boxes):
        return boxes
    b = boxes.copy()
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    off = np.zeros(len(b), np.float32)
    if landmarks_x is not None and len(landmarks_x):
        off = (landmarks_x.mean(axis=1) - (b[:, 0] + b[:, 2]) / 2) / np.maximum(w, 1e-6)
    turned = (w < (aspect if narrow is None else narrow) * h) | (np.abs(off) >= lopsided / 2)
    if cut is not None:
        turned |= cut
    extra = np.where(turned, np.maximum(aspect * h - w, 0.0), 0.0)
    if not extra.any():
        return b
    # share of the widening that goes to the left: 0.5 (both sides) for centred landmarks, all of it when they
    # lie ``lopsided`` or more right of the centre (the nose points right: cheek and ear are left), none when left
    left = np.clip(0.5 + 0.5 * off / lopsided, 0.0, 1.0)
    b[:, 0] -= extra * left
    b[:, 2] += extra * (1.0 - left)
    return b
