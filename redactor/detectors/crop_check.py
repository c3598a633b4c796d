"""A second model on the crop: CenterFace (``centerface.CenterFace.decode``, the same network and decoding) asked
about one box of another detector at a time, on the box's surroundings scaled to a small input.

YuNet scores textures it finds again on every sample (a vase of flowers, a table edge, a patterned vest, a cat's
face, hands) 0.36-0.88 as faces, and finds them again on their own crops just as surely; CenterFace scores most
of them under 0.2 there, the rest under 0.6, and the faces of 16 px and up beside them 0.66-0.93. A box
CenterFace does not confirm on its crop (``CropCheck.sure_of``) is dropped (``drop``). Kept instead, it is
marked by a negative score (``DOUBTED``, ``doubted``): blurred on its own sample but never spread
(``tracking.coverage.confirmed``), starting no small-face track (``tracking.tracks``) and not held from a fine
pass (``chunk``). Any error here propagates: the segment fails like on any detector error."""
from __future__ import annotations

import numpy as np

from ..boxes import sizes
from ..tracking.matching import SIZE_WEIGHT, match
from .centerface import CenterFace

DOUBTED = -1.0  # the score a doubted box carries (its own score is not needed downstream)


def doubted(boxes: np.ndarray) -> np.ndarray:
    """Which boxes a crop check did not confirm (``CropCheck.check``)."""
    return boxes[:, 4] < 0 if len(boxes) else np.zeros(0, bool)


def best_overlapping(b: np.ndarray, found: np.ndarray, share: float,
                     centre_in: np.ndarray | None = None) -> np.ndarray | None:
    """The best-scored box of ``found`` (rows x0, y0, x1, y1, score) that overlaps the box ``b`` by at least
    ``share`` of the smaller of the two; with ``centre_in`` (x0, y0, x1, y1), only one whose centre lies in it.
    None when none does."""
    if not len(found):
        return None
    ix = np.clip(np.minimum(b[2], found[:, 2]) - np.maximum(b[0], found[:, 0]), 0, None)
    iy = np.clip(np.minimum(b[3], found[:, 3]) - np.maximum(b[1], found[:, 1]), 0, None)
    area = (b[2] - b[0]) * (b[3] - b[1])
    farea = (found[:, 2] - found[:, 0]) * (found[:, 3] - found[:, 1])
    ok = ix * iy >= share * np.minimum(area, farea)
    if centre_in is not None:
        cx, cy = (found[:, 0] + found[:, 2]) / 2, (found[:, 1] + found[:, 3]) / 2
        ok &= (cx >= centre_in[0]) & (cx <= centre_in[2]) & (cy >= centre_in[1]) & (cy <= centre_in[3])
    hit = np.nonzero(ok)[0]
    return found[hit[np.argmax(found[hit, 4])]] if len(hit) else None


class CropCheck:
    """CenterFace on a ``SIDE`` x ``SIDE`` crop around each box of at least ``MIN_FACE`` display px: the box grown
    ``GROW`` times about its centre (square); confirmed where a CenterFace box of score >= ``SCORE`` overlaps
    at least ``OVERLAP`` of the smaller of the two, its centre in the box (``score_box``: a face beside the box,
    overlapping its corner, is not its face)."""

    MIN_FACE = 8.0  # display px, half the engine's min_face: smaller boxes are never checked
    GROW = 2.0
    SIDE = 160  # the crop's model px: a box is 80 of them
    SCORE = 0.2
    # a box of at least SPREAD_FROM display px needs SPREAD_SCORE: CenterFace scores the faces it sees filling
    # their crop 0.66-0.93, the textures YuNet takes for faces (a vase of peonies, 30-60 px) 0.2-0.54. Smaller
    # boxes come out blurred on their crop and score lower (true faces of 8-11 px: 0.25-0.73), so they need
    # SCORE only. A face CenterFace finds under SURE_SHARE of the box's size is small in its crop (a loose box
    # around a smaller face: 0.58 for a 110 px face boxed 233 px): it is asked about again on its own crop
    SPREAD_SCORE = 0.6
    SPREAD_FROM = 16.0
    SURE_SHARE = 0.5
    # a box within a tenth of its size of the frame's edge is checked too (CHECK_EDGE), from SCORE: a face cut by
    # the edge shows only part of itself. Its crop is mirrored beyond the left and right edges, so a face cut in
    # half there is a whole face again (the astronaut's: 0.0 on a black-padded crop, 0.74 mirrored); a face cut
    # by the top or bottom edge keeps its eyes, nose and mouth, and is confirmed on black (0.68-0.92). A face
    # CenterFace finds under SURE_SHARE of an edge box's size is asked about again all the same: cut, a face is
    # no smaller on its crop (a cat's face cut by the top edge, boxed 129 px, held a 34 px blob scored 0.2)
    CHECK_EDGE = True
    OVERLAP = 0.3
    # a box paired with a face CenterFace confirmed in the last check (of the same frame size), at most SAME_FACE
    # of its sizes away, is confirmed without a new call, up to REASK - 1 checks in a row
    SAME_FACE = 2.5  # faces crossing a 1080p frame in about a second move two sizes per sample
    REASK = 6  # a face is asked about again on every REASK-th check that finds it
    # ... and within SAME_SIZE times its size: a face 2.5 sizes from a vase of flowers is not the vase
    SAME_SIZE = 1.5

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

    def crop(self, img: np.ndarray, box: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray, tuple] | None:
        """The ``SIDE`` x ``SIDE`` crop around ``box`` (display px) of ``img`` (the display frame scaled by
        ``scale``), the box in its px, and where the crop lies (x0, y0 in ``img`` px, crop px per ``img`` px);
        None when the crop misses the picture. Beyond the picture's left and right edges the crop is the picture
        mirrored, above and below it black."""
        cx, cy = (box[0] + box[2]) / 2 * scale, (box[1] + box[3]) / 2 * scale
        half = max(box[2] - box[0], box[3] - box[1]) * scale * self.GROW / 2
        x0, y0 = int(round(cx - half)), int(round(cy - half))
        side = max(1, int(round(2 * half)))
        crop = np.zeros((side, side, 3), np.uint8)  # above and below the picture: black
        h, w = img.shape[:2]
        sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
        if sx1 <= sx0 or sy1 <= sy0:
            return None
        # beyond its left and right edges, the picture mirrored: a face cut there in half is a face again
        crop[sy0 - y0:sy1 - y0] = np.pad(img[sy0:sy1, sx0:sx1], ((0, 0), (sx0 - x0, x0 + side - sx1), (0, 0)),
                                         mode="symmetric")
        crop = self.cv2.resize(crop, (self.SIDE, self.SIDE), interpolation=self.cv2.INTER_AREA
                               if side > self.SIDE else self.cv2.INTER_LINEAR)
        k = self.SIDE / side  # crop model px per crop px
        return crop, np.array([(box[0] * scale - x0) * k, (box[1] * scale - y0) * k,
                               (box[2] * scale - x0) * k, (box[3] * scale - y0) * k], np.float32), (x0, y0, k)

    def score_box(self, img: np.ndarray, box: np.ndarray, scale: float) -> tuple[float | None, np.ndarray | None]:
        """CenterFace on the crop of ``box`` (display px) from the RGB display image ``img`` (the display frame
        scaled by ``scale``): its best score for a face overlapping the box with its centre in it, from ``SCORE``
        up (0: none), and that face (display px); (None, None) when the crop misses the picture."""
        c = self.crop(img, box, scale)
        if c is None:
            return None, None
        crop, b, (x0, y0, k) = c
        # the face must be this box's: its centre inside the box, or beyond the picture's edge where the box
        # touches it (a face cut there is whole on the mirrored crop, its centre on the edge)
        h, w = img.shape[:2]
        m = 0.1 * max(box[2] - box[0], box[3] - box[1]) * scale
        at = (box[0] * scale <= m, box[1] * scale <= m, box[2] * scale >= w - m, box[3] * scale >= h - m)
        centre = np.where(at, [0.0, 0.0, self.SIDE, self.SIDE], b).astype(np.float32)
        face = self.centerface_face(crop, b, centre)
        if face is None:
            return 0.0, None
        return float(face[4]), np.array([(face[0] / k + x0) / scale, (face[1] / k + y0) / scale,
                                         (face[2] / k + x0) / scale, (face[3] / k + y0) / scale, face[4]], np.float32)

    def sure_of(self, img: np.ndarray, box: np.ndarray, score: float, face: np.ndarray | None, scale: float,
                edge: bool = False) -> bool:
        """Whether CenterFace's ``face`` (display px, scored ``score``; its centre in the box, ``score_box``) on the
        crop of ``box`` confirms it: a box under ``SPREAD_FROM`` px from ``SCORE``, a larger one from
        ``SPREAD_SCORE``, one at the frame's edge (``edge``) from ``SCORE``; but a face under ``SURE_SHARE`` of the
        box's size (a loose box around a smaller face, small in its crop; at the edge too) is asked about again on
        its own crop, and needs no more than ``SCORE`` if it is under ``SPREAD_FROM`` px."""
        size = max(box[2] - box[0], box[3] - box[1])
        if score < self.SCORE:
            return False
        if size >= self.SPREAD_FROM:
            fsize = max(face[2] - face[0], face[3] - face[1])
            if fsize < self.SURE_SHARE * size:  # at the edge too: a face cut there is no smaller on its crop
                return fsize < self.SPREAD_FROM or (self.score_box(img, face, scale)[0] or 0.0) >= self.SPREAD_SCORE
        return size < self.SPREAD_FROM or edge or score >= self.SPREAD_SCORE

    def centerface_face(self, crop: np.ndarray, b: np.ndarray, centre: np.ndarray | None = None) -> np.ndarray | None:
        """CenterFace's best-scored face (crop px, score) overlapping ``b`` on the RGB ``crop`` (``SIDE`` px
        square), from ``SCORE`` up, its centre in ``centre`` (x0, y0, x1, y1; default: anywhere); None when it
        finds none."""
        if self.net is None:
            self.net = self.cv2.dnn.readNetFromONNX(str(self._path))
        blob = self.cv2.dnn.blobFromImage(crop, 1.0, (self.SIDE, self.SIDE), (0, 0, 0), swapRB=False, crop=False)
        self.net.setInput(blob)
        heatmap, sc, offset, _ = self.net.forward(CenterFace.OUTPUTS)
        self.calls += 1
        return best_overlapping(b, CenterFace.decode(heatmap, sc, offset, self.SCORE), self.OVERLAP, centre)

    def seen_before(self, boxes: np.ndarray, dw: int, dh: int, kind: str) -> np.ndarray:
        """How many checks in a row each of ``boxes`` has gone unasked, as the face CenterFace confirmed in the
        last check of this ``kind`` on a dw x dh frame that it pairs with one to one, nearest first, at most
        ``SAME_FACE`` of their sizes apart (``tracking.matching.match``); -1: no such face, or asked about
        ``REASK`` checks ago."""
        seen = np.full(len(boxes), -1)
        known = self.known.get(kind)
        if known is not None and known[:2] == (dw, dh):
            ratio = sizes(boxes)[:, None] / np.maximum(sizes(known[2]), 1.0)[None, :]
            for x, y in match(boxes, known[2], max_dist=self.SAME_FACE, size_weight=SIZE_WEIGHT):
                if known[3][y] + 1 < self.REASK and 1 / self.SAME_SIZE <= ratio[x, y] <= self.SAME_SIZE:
                    seen[x] = known[3][y] + 1
        return seen

    def check(self, image, boxes: np.ndarray, dw: int, dh: int, kind: str = "pass") -> np.ndarray:
        """``boxes`` (display px of a dw x dh frame) less those of at least ``MIN_FACE`` px that CenterFace does
        not confirm on their crop (``sure_of``; without ``drop``: kept and scored ``DOUBTED``).
        ``image(width, height)``: the RGB display frame at that size. A box ``seen_before`` in the last check of
        this ``kind`` is confirmed without a call (a pass and a tracking step look for other faces on the same
        frames, so each keeps its own)."""
        s = sizes(boxes)
        m = 0.1 * s
        inner = (boxes[:, 0] > m) & (boxes[:, 1] > m) & (boxes[:, 2] < dw - m) & (boxes[:, 3] < dh - m)
        if not self.CHECK_EDGE:
            s = np.where(inner, s, 0.0)  # boxes at the edge kept as found
        unasked = self.seen_before(boxes, dw, dh, kind)
        sure = (s >= self.MIN_FACE) & (unasked >= 0)
        ask = np.nonzero((s >= self.MIN_FACE) & ~sure)[0]
        out, gone = boxes.copy(), np.zeros(len(boxes), bool)
        if len(ask):
            # the crops need no more than SIDE px across: the frame is scaled down so the smallest one is that big
            scale = min(1.0, self.SIDE / (float(s[ask].min()) * self.GROW))
            iw, ih = max(1, int(round(dw * scale))), max(1, int(round(dh * scale)))
            img = image(iw, ih)
            for n in ask:
                score, face = self.score_box(img, boxes[n], iw / dw)
                sure[n] = score is not None and self.sure_of(img, boxes[n], score, face, iw / dw, not inner[n])
                if not sure[n]:
                    out[n, 4] = DOUBTED
                    gone[n] = score is not None and self.drop
        self.known[kind] = (dw, dh, boxes[sure], np.maximum(unasked, 0)[sure])
        return out[~gone]
