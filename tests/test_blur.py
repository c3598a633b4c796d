"""Overlapping boxes are redacted as one cluster: exactly the union of their masks changes, nothing else."""
from __future__ import annotations

import numpy as np
import pytest

from redactor import blur


@pytest.mark.parametrize("mask", ["ellipse", "box"])
@pytest.mark.parametrize("style", ["blur", "pixelate", "solid"])
def test_cluster_redaction_covers_exactly_the_union_of_boxes(style, mask):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 256, (120, 160), dtype=np.uint8)
    u = rng.integers(0, 256, (60, 80), dtype=np.uint8)
    v = rng.integers(0, 256, (60, 80), dtype=np.uint8)
    planes = [y.copy(), u.copy(), v.copy()]
    # two overlapping boxes (one face seen by two samples) and a separate one
    boxes = np.array([[20, 20, 60, 70], [30, 26, 72, 74], [110, 40, 150, 90]])
    assert len(blur.clusters(boxes)) == 2
    blur.redact_planes(planes, boxes, "yuv420p", style, mask, full_range=False)
    want = np.zeros_like(y, dtype=bool)
    for x1, y1, x2, y2 in boxes:
        want[y1:y2, x1:x2] |= blur._ellipse_mask(x2 - x1, y2 - y1) if mask == "ellipse" else True
    changed = planes[0] != y
    assert not changed[~want].any(), "pixels outside every box changed"
    # noise is destroyed wherever a box covers it (a rare pixel may keep its value by chance)
    assert changed[want].mean() > 0.9
    # chroma changes only inside the boxes' chroma footprint
    cwant = np.zeros_like(u, dtype=bool)
    for x1, y1, x2, y2 in boxes:
        cwant[y1 // 2:-(-y2 // 2), x1 // 2:-(-x2 // 2)] = True
    assert not (planes[1] != u)[~cwant].any()


@pytest.mark.parametrize("fmt", ["yuv420p", "yuv420p10le", "yuv444p"])
def test_redaction_writes_through_padded_plane_views_only_inside_the_boxes(fmt):
    """Decoded planes are views into buffers with padded rows (PyAV's line_size): the masked write lands in
    the plane itself (8 and 16-bit), pixel for pixel what the boxes' union of masks selects from the style's
    output, and the padding and every pixel outside stay as they were."""
    sx, sy, bits = blur.PLANAR[fmt]
    dtype = np.uint8 if bits == 8 else np.uint16
    rng = np.random.default_rng(1)
    h, w = 90, 150
    bufs, planes = [], []
    for pi in range(3):
        ph, pw = (h, w) if pi == 0 else (h >> sy, w >> sx)
        buf = rng.integers(0, 1 << bits, (ph, pw + 13), dtype=dtype)  # 13 samples of padding per row
        bufs.append(buf)
        planes.append(buf[:, :pw])
    before = [b.copy() for b in bufs]
    # a cluster of two (one reaching past the right edge), a box alone, one past the bottom
    boxes = np.array([[10, 12, 50, 60], [30, 20, 80, 70], [100, 10, 160, 40], [120, 70, 140, 100]])
    blur.redact_planes(planes, boxes, fmt, "blur", "ellipse", full_range=False)
    for pi, (buf, old) in enumerate(zip(bufs, before)):
        fx, fy = (0, 0) if pi == 0 else (sx, sy)
        ph, pw = planes[pi].shape
        assert np.array_equal(buf[:, pw:], old[:, pw:]), "row padding written"
        want = np.zeros((ph, pw), bool)
        for x1, y1, x2, y2 in boxes:
            a, b, c, d = x1 >> fx, y1 >> fy, -(-x2 >> fx), -(-y2 >> fy)
            m = np.zeros((d - b, c - a), bool)
            m[...] = blur._ellipse_mask(c - a, d - b)
            want[b:min(d, ph), a:min(c, pw)] |= m[: min(d, ph) - b, : min(c, pw) - a]
        changed = buf[:, :pw] != old[:, :pw]
        assert not changed[~want].any(), f"plane {pi}: pixels outside every box changed"
        assert changed[want].mean() > 0.9, f"plane {pi}: the boxes were not redacted in the plane itself"
    # the same boxes on contiguous copies of the planes: the same pixels (the view changes nothing)
    flat = [old[:, : p.shape[1]].copy() for old, p in zip(before, planes)]
    blur.redact_planes(flat, boxes, fmt, "blur", "ellipse", full_range=False)
    assert all(np.array_equal(f, p) for f, p in zip(flat, planes))


def test_covered_share_counts_overlaps_once_and_nothing_outside_the_frame():
    # two boxes overlapping by 25 x 20 px and one hanging 30 px over two edges of a 100 x 100 frame
    boxes = np.array([[0, 0, 50, 40], [25, 20, 75, 60], [90, 90, 130, 130]])
    assert blur.covered_share(boxes, 100, 100) == pytest.approx((2000 + 2000 - 500 + 100) / 10000)
    assert blur.covered_share(np.zeros((0, 4)), 100, 100) == 0.0
    assert blur.covered_share(np.array([[-10, -10, 500, 500]]), 100, 100) == pytest.approx(1.0)
    rng = np.random.default_rng(3)  # against a painted mask: any boxes, fractional edges on a pixel grid
    for _ in range(50):
        b = rng.integers(-20, 140, (int(rng.integers(1, 8)), 4))
        b = np.concatenate([np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])], axis=1)
        want = np.zeros((90, 120), bool)
        for x1, y1, x2, y2 in b:
            want[max(0, y1):max(0, y2), max(0, x1):max(0, x2)] = True
        assert blur.covered_share(b, 120, 90) == pytest.approx(want.mean())
