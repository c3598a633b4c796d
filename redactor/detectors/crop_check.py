"""A second model on the crop: CenterFace (``centerface.CenterFace.decode``, the same network and decoding) asked
about one box of another detector at a time, on the box's surroundings scaled to a small input.

YuNet scores textures it finds again on every sample (a vase of flowers, a table edge, a patterned vest, a cat's
face, hands) 0.36-0.88 as faces, and finds them again on their own crops just as surely; CenterFace scores most
of them under 0.2 there, and the faces beside them 0.57-0.92. A box CenterFace does not confirm on its crop is
dropped (``drop``). Kept instead, it is marked by a negative score (``DOUBTED``, ``doubted``): blurred on its own sample
but never spread (``tracking.coverage.confirmed``), starting no small-face track (``tracking.tracks``) and not
held from a fine pass (``chunk``). Any error here propagates: the segment fails like on any detector error."""
from __future__ import annotations

import numpy as np

from ..boxes import sizes
from ..tracking.matching import SIZE_WEIGHT, match
from .centerface import CenterFace

DOUBTED = -1.0  # the score a doubted box carries (its own score is not needed downstream)


def doubted(boxes: np.ndarray) -> np.ndarray:
    """Which boxes a crop check did not confirm (``CropCheck.check``)."""
    return boxes[:, 4] < 0 if len(boxes) else np.zeros(0, bool)


def overlaps(b: np.ndarray, found: np.ndarray, share: float) -> bool:
    """Whether a box of ``found`` (rows x0, y0, x1, y1, ...) overlaps the box ``b`` by at least ``share`` of the
    smaller of the two."""
    if not len(found):
        return False
    ix = np.clip(np.minimum(b[2], found[:, 2]) - np.maximum(b[0], found[:, 0]), 0, None)
    iy = np.clip(np.minimum(b[3], found[:, 3]) - np.maximum(b[1], found[:, 1]), 0, None)
    area = (b[2] - b[0]) * (b[3] - b[1])
    farea = (found[:, 2] - found[:, 0]) * (found[:, 3] - found[:, 1])
    return bool((ix * iy >= share * np.minimum(area, farea)).any())


class CropCheck:
    """CenterFace on a ``SIDE`` x ``SIDE`` crop around each box of at least ``MIN_FACE`` display px: the box grown
    ``GROW`` times about its centre (square); confirmed where a CenterFace box of score >= ``SCORE`` overlaps
    at least ``OVERLAP`` of the smaller of the two."""

    MIN_FACE = 8.0  # display px, half the engine's min_face: smaller boxes are never checked
    GROW = 2.0
    SIDE = 160  # the crop's model px: a box is 80 of them
    SCORE = 0.2
    OVERLAP = 0.3
    # a box paired with a face CenterFace confirmed in the last check (of the same frame size), at most SAME_FACE
    # of its sizes away, is confirmed without a new call, up to REASK - 1 checks in a row
    SAME_FACE = 2.5  # faces crossing a 1080p frame in about a second move two sizes per sample
    REASK = 6  # a face is asked about again on every REASK-th check that finds it

    def __init__(self, model_path: str | None = None, drop: bool = True):
        """``model_path``: the CenterFace model (default: ``model.default_centerface_path``). It is checked here,
        when the detector is built, so a missing or corrupt one is a setup error on every video, faces or not.
        ``drop``: a box CenterFace does not confirm is dropped (False: kept, ``DOUBTED``)."""
        import cv2

        from ..model import verified_centerface_path

        self.cv2 = cv2
        self._path = verified_centerface_path(model_path)
        self.net = None
        self.calls = 0
        # per kind of check (a detection pass's boxes, a tracking step's): (dw, dh, the boxes confirmed in the
        # last check of that kind, how many checks in a row each went unasked)
        self.known: dict[str, tuple[int, int, np.ndarray, np.ndarray]] = {}
        self.drop = drop

    def crop(self, img: np.ndarray, box: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray] | None:
        """The ``SIDE`` x ``SIDE`` crop around ``box`` (display px) of ``img`` (the display frame scaled by
        ``scale``), black beyond the picture, and the box in its px; None when the crop misses the picture."""
        cx, cy = (box[0] + box[2]) / 2 * scale, (box[1] + box[3]) / 2 * scale
        half = max(box[2] - box[0], box[3] - box[1]) * scale * self.GROW / 2
        x0, y0 = int(round(cx - half)), int(round(cy - half))
        side = max(1, int(round(2 * half)))
        crop = np.zeros((side, side, 3), np.uint8)  # outside the picture: black
        h, w = img.shape[:2]
        sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
        if sx1 <= sx0 or sy1 <= sy0:
            return None
        crop[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = img[sy0:sy1, sx0:sx1]
        crop = self.cv2.resize(crop, (self.SIDE, self.SIDE), interpolation=self.cv2.INTER_AREA
                               if side > self.SIDE else self.cv2.INTER_LINEAR)
        k = self.SIDE / side  # crop model px per crop px
        return crop, np.array([(box[0] * scale - x0) * k, (box[1] * scale - y0) * k,
                               (box[2] * scale - x0) * k, (box[3] * scale - y0) * k], np.float32)

    def confirms(self, img: np.ndarray, box: np.ndarray, scale: float) -> bool:
        """Whether CenterFace finds a face on the crop of ``box`` (display px) from the RGB display image ``img``
        (the display frame scaled by ``scale``)."""
        c = self.crop(img, box, scale)
        return c is not None and self.centerface_finds(*c)

    def centerface_finds(self, crop: np.ndarray, b: np.ndarray) -> bool:
        """Whether CenterFace finds a face overlapping ``b`` on the RGB ``crop`` (``SIDE`` px square)."""
        if self.net is None:
            self.net = self.cv2.dnn.readNetFromONNX(str(self._path))
        blob = self.cv2.dnn.blobFromImage(crop, 1.0, (self.SIDE, self.SIDE), (0, 0, 0), swapRB=False, crop=False)
        self.net.setInput(blob)
        heatmap, sc, offset, _ = self.net.forward(CenterFace.OUTPUTS)
        self.calls += 1
        return overlaps(b, CenterFace.decode(heatmap, sc, offset, self.SCORE), self.OVERLAP)

    def seen_before(self, boxes: np.ndarray, dw: int, dh: int, kind: str) -> np.ndarray:
        """How many checks in a row each of ``boxes`` has gone unasked, as the face CenterFace confirmed in the
        last check of this ``kind`` on a dw x dh frame that it pairs with one to one, nearest first, at most
        ``SAME_FACE`` of their sizes apart (``tracking.matching.match``); -1: no such face, or asked about
        ``REASK`` checks ago."""
        seen = np.full(len(boxes), -1)
        known = self.known.get(kind)
        if known is not None and known[:2] == (dw, dh):
            for x, y in match(boxes, known[2], max_dist=self.SAME_FACE, size_weight=SIZE_WEIGHT):
                if known[3][y] + 1 < self.REASK:
                    seen[x] = known[3][y] + 1
        return seen

    def check(self, image, boxes: np.ndarray, dw: int, dh: int, kind: str = "pass") -> np.ndarray:
        """``boxes`` (display px of a dw x dh frame) less those of at least ``MIN_FACE`` px, clear of the frame's
        edge, that CenterFace does not confirm on their crop (without ``drop``: kept and scored ``DOUBTED``).
        ``image(width, height)``: the RGB display frame at that size. A box ``seen_before`` in the last check of
        this ``kind`` is confirmed without a call (a pass and a tracking step look for other faces on the same
        frames, so each keeps its own)."""
        # a box at the frame's edge (within a tenth of its size) is never checked: a face cut by the edge, half
        # in the picture, is no face to CenterFace on its crop (the astronaut's half face: 0.1); dropped, such a
        # box leaks that face, and kept doubted it is not carried to the frame before it (docs/detectors.md)
        s = sizes(boxes)
        m = 0.1 * s
        inner = (boxes[:, 0] > m) & (boxes[:, 1] > m) & (boxes[:, 2] < dw - m) & (boxes[:, 3] < dh - m)
        unasked = self.seen_before(boxes, dw, dh, kind)
        sure = (s >= self.MIN_FACE) & inner & (unasked >= 0)
        ask = np.nonzero((s >= self.MIN_FACE) & inner & ~sure)[0]
        out, gone = boxes.copy(), np.zeros(len(boxes), bool)
        if len(ask):
            # the crops need no more than SIDE px across: the frame is scaled down so the smallest one is that big
            scale = min(1.0, self.SIDE / (float(s[ask].min()) * self.GROW))
            iw, ih = max(1, int(round(dw * scale))), max(1, int(round(dh * scale)))
            img = image(iw, ih)
            for n in ask:
                c = self.crop(img, boxes[n], iw / dw)
                sure[n] = c is not None and self.centerface_finds(*c)
                if not sure[n]:
                    out[n, 4] = DOUBTED
                    gone[n] = c is not None and self.drop
        self.known[kind] = (dw, dh, boxes[sure], np.maximum(unasked, 0)[sure])
        return out[~gone]
