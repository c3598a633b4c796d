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
