"""Redact regions of a decoded frame in place, directly on its planar YUV planes.

Working on the planes (not a full-frame RGB copy) keeps every unredacted pixel bit-identical to the decoded
source and costs work only inside the regions. Only regions are touched, on a frame made writable first
(decoded frames share buffers with the decoder's reference frames).
"""
from __future__ import annotations

import functools
import math

import cv2
import numpy as np

# formats we redact on directly (planar YUV, 8 or 16-bit little endian); anything else is converted first
PLANAR = {
    "yuv420p": (1, 1, 8), "yuvj420p": (1, 1, 8), "yuv422p": (1, 0, 8), "yuvj422p": (1, 0, 8),
    "yuv444p": (0, 0, 8), "yuvj444p": (0, 0, 8),
    "yuv420p10le": (1, 1, 10), "yuv422p10le": (1, 0, 10), "yuv444p10le": (0, 0, 10),
    "yuv420p12le": (1, 1, 12), "yuv422p12le": (1, 0, 12), "yuv444p12le": (0, 0, 12),
}


def working_format(pix_fmt: str, bit_depth: int) -> str:
    """The planar format frames are redacted and encoded in (libx264 supports all of PLANAR up to 10 bit)."""
    if pix_fmt in PLANAR and PLANAR[pix_fmt][2] <= 10:
        return pix_fmt
    if bit_depth > 8:
        return "yuv420p10le"
    if pix_fmt.startswith(("yuvj", "gbrp", "rgb", "bgr")) or "444" in pix_fmt:
        return "yuv444p" if "444" in pix_fmt or pix_fmt.startswith(("gbrp", "rgb", "bgr")) else "yuv420p"
    return "yuv420p"


def plane_views(frame) -> list[np.ndarray]:
    """Writable numpy views (h, w) of the frame's planes (uint8 or uint16)."""
    fmt = frame.format.name
    _, _, bits = PLANAR[fmt]
    dtype = np.uint8 if bits == 8 else np.dtype("<u2")
    out = []
    for p in frame.planes[:3]:
        itemsize = np.dtype(dtype).itemsize
        a = np.frombuffer(p, dtype=dtype)
        a = a.reshape(-1, p.line_size // itemsize)[: p.height, : p.width]
        out.append(a)
    return out


def expand_boxes(boxes: np.ndarray, factor: float, width: int, height: int, clip: bool = True) -> np.ndarray:
    """Grow boxes by ``factor`` about their centre (at least by a small fixed margin), clip to the frame, int.
    Boxes with no area in the frame are dropped; with ``clip=False`` the others keep their full extent (a face
    crossing the frame's edge is masked by its whole ellipse, cut off by the edge)."""
    if len(boxes) == 0:
        return np.zeros((0, 4), dtype=np.int32)
    b = np.asarray(boxes, dtype=np.float32)[:, :4]
    cx = (b[:, 0] + b[:, 2]) / 2
    cy = (b[:, 1] + b[:, 3]) / 2
    # small faces get at least a fixed margin (6 px, or 0.5 % of the frame width on large frames): it covers
    # detector jitter and a few frames of motion, and costs nothing visible
    margin = 2 * max(6.0, 0.005 * width)
    w = np.maximum((b[:, 2] - b[:, 0]) * factor, (b[:, 2] - b[:, 0]) + margin)
    h = np.maximum((b[:, 3] - b[:, 1]) * factor, (b[:, 3] - b[:, 1]) + margin)
    full = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    full = np.stack([np.floor(full[:, 0]), np.floor(full[:, 1]), np.ceil(full[:, 2]), np.ceil(full[:, 3])], axis=1)
    out = full.copy()
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height)
    keep = (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])
    return (out if clip else full)[keep].astype(np.int32)


def covered_share(boxes: np.ndarray, width: int, height: int) -> float:
    """Share (0..1) of a width x height frame inside the union of ``boxes`` (n, >=4; the parts outside the
    frame do not count): how much of the picture a frame's redacted regions cover, overlaps counted once."""
    if len(boxes) == 0 or width <= 0 or height <= 0:
        return 0.0
    b = np.asarray(boxes, dtype=np.float64)[:, :4].copy()
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, width)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, height)
    xs, ys = np.unique(b[:, [0, 2]]), np.unique(b[:, [1, 3]])
    if len(xs) < 2 or len(ys) < 2:
        return 0.0
    cx, cy = (xs[:-1] + xs[1:]) / 2, (ys[:-1] + ys[1:]) / 2  # one point inside each cell of the boxes' grid
    covered = ((cx[None, :, None] > b[:, 0, None, None]) & (cx[None, :, None] < b[:, 2, None, None]) &
               (cy[None, None, :] > b[:, 1, None, None]) & (cy[None, None, :] < b[:, 3, None, None])).any(axis=0)
    return float((np.diff(xs)[:, None] * np.diff(ys)[None, :])[covered].sum() / (width * height))


@functools.lru_cache(maxsize=4096)
def _ellipse_mask(w: int, h: int) -> np.ndarray:
    """The ellipse inscribed in a w x h box (bool, read-only: shared between calls)."""
    yy, xx = np.ogrid[:h, :w]
    cx, cy = (w - 1) / 2, (h - 1) / 2
    rx, ry = max(w / 2, 0.5), max(h / 2, 0.5)
    m = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0
    m.flags.writeable = False
    return m


def _blur_roi(roi: np.ndarray, size: int) -> np.ndarray:
    # strength scales with the face: kernel ~ 1/3 of the region, two box passes ~ a wide Gaussian;
    # the result keeps only the region's average tones, so a large face is unrecognisable too
    k = max(3, (size // 3) | 1)
    out = cv2.blur(roi, (k, k), borderType=cv2.BORDER_REPLICATE)
    return cv2.blur(out, (k, k), borderType=cv2.BORDER_REPLICATE)


def _pixelate_roi(roi: np.ndarray, size: int) -> np.ndarray:
    h, w = roi.shape
    blocks = 6  # at most ~6 blocks across a face: no features survive
    bw = max(1, math.ceil(w / max(1, round(w * blocks / max(size, 1)))))
    small = cv2.resize(roi, (max(1, w // bw), max(1, h // bw)), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def clusters(boxes: np.ndarray) -> list[np.ndarray]:
    """Group (int) boxes whose rectangles touch or overlap: a frame's boxes come from several samples,
    interpolation and tracks, so one face is usually covered by several near-identical boxes. Groups come in
    the order of their first box, each with its boxes in their order."""
    n = len(boxes)
    parent = list(range(n))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    x1, y1, x2, y2 = (boxes[:, j] for j in range(4))
    touch = (x1[:, None] <= x2[None, :]) & (x1[None, :] <= x2[:, None]) & \
        (y1[:, None] <= y2[None, :]) & (y1[None, :] <= y2[:, None])
    ii, jj = np.nonzero(np.triu(touch, 1))
    for i, j in zip(ii.tolist(), jj.tolist()):
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[ri] = rj
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return [boxes[idx] for idx in groups.values()]


def _paste(roi: np.ndarray, new: np.ndarray, where: np.ndarray) -> None:
    """``roi[where] = new[where]`` in place (``roi`` a view into a plane). cv2.copyTo does it ~8x faster than
    ``np.copyto(..., where=)``; should OpenCV not write into the view itself, numpy does it."""
    out = cv2.copyTo(new, where.view(np.uint8), roi)
    if out is not roi and not np.shares_memory(out, roi):  # pragma: no cover - OpenCV wrote a copy
        np.copyto(roi, new, where=where)


def redact_planes(planes: list[np.ndarray], boxes: np.ndarray, fmt: str, style: str, mask: str,
                  full_range: bool) -> None:
    """Apply the style to each (already expanded, int) box on all planes, in place.

    Overlapping boxes are done together: the style is computed once over the cluster's bounding region
    (blur/pixel size from its largest face) and written through the union of the boxes' masks, which is
    exactly the area the boxes cover one by one, at a fraction of the cost. Boxes may reach past the plane's
    edges: their masks are cut off there (an ellipse keeps its shape up to the edge)."""
    sx, sy, bits = PLANAR[fmt]
    maxv = (1 << bits) - 1
    for group in clusters(np.asarray(boxes, dtype=np.int64).reshape(-1, 4)):
        g = group.tolist()  # Python ints: this loop runs per box and plane, numpy scalars cost more here
        gx1, gy1 = min(b[0] for b in g), min(b[1] for b in g)
        gx2, gy2 = max(b[2] for b in g), max(b[3] for b in g)
        size = max(max(b[2] - b[0], b[3] - b[1]) for b in g)
        for pi, plane in enumerate(planes):
            if pi == 0:
                fx, fy, s = 0, 0, size
            else:
                fx, fy, s = sx, sy, max(1, size >> sx)
            ph, pw = plane.shape
            a, b = max(0, gx1 >> fx), max(0, gy1 >> fy)
            c, d = min(pw, -(-gx2 >> fx)), min(ph, -(-gy2 >> fy))
            roi = plane[b:d, a:c]
            if roi.size == 0:
                continue
            if style == "blur":
                new = _blur_roi(roi, s)
            elif style == "pixelate":
                new = _pixelate_roi(roi, s)
            else:  # solid: black
                if pi == 0:
                    v = 0 if full_range else (16 << (bits - 8))
                else:
                    v = 1 << (bits - 1)
                new = np.full_like(roi, min(v, maxv))
            if len(g) == 1 and (a, b, c, d) == (gx1 >> fx, gy1 >> fy, -(-gx2 >> fx), -(-gy2 >> fy)):
                # the region is the box itself, inside the plane: no union to build
                if mask == "ellipse":
                    _paste(roi, new, _ellipse_mask(roi.shape[1], roi.shape[0]))
                else:
                    roi[...] = new
                continue
            rh, rw = roi.shape
            m = np.zeros((rh, rw), dtype=bool)
            for (x1, y1, x2, y2) in g:
                ba, bb = (x1 >> fx) - a, (y1 >> fy) - b
                bc, bd = -(-x2 >> fx) - a, -(-y2 >> fy) - b
                if bc <= ba or bd <= bb:
                    continue
                # the box's part inside the plane
                ca, cb, cc, cd = max(ba, 0), max(bb, 0), min(bc, rw), min(bd, rh)
                if cc <= ca or cd <= cb:
                    continue
                if mask == "ellipse":
                    m[cb:cd, ca:cc] |= _ellipse_mask(bc - ba, bd - bb)[cb - bb:cd - bb, ca - ba:cc - ba]
                else:
                    m[cb:cd, ca:cc] = True
            _paste(roi, new, m)


def redact_frame(frame, boxes: np.ndarray, style: str, mask: str, enlarge: float):
    """Return a frame (possibly a writable copy) with boxes redacted. ``boxes`` (n, >=4) in frame pixels."""
    whole = expand_boxes(boxes, enlarge, frame.width, frame.height, clip=False)  # masks cut off by the edges
    eb = whole.copy()  # the same boxes clipped to the frame (one expansion per frame, not two)
    eb[:, [0, 2]] = np.clip(eb[:, [0, 2]], 0, frame.width)
    eb[:, [1, 3]] = np.clip(eb[:, [1, 3]], 0, frame.height)
    if len(eb) == 0:
        return frame, eb
    frame.make_writable()
    full_range = int(frame.color_range or 0) == 2 or frame.format.name.startswith("yuvj")
    redact_planes(plane_views(frame), whole, frame.format.name, style, mask, full_range)
    return frame, eb
