"""The JSON report's account of how much of each frame is redacted (``redacted_area`` and its counts)."""
from __future__ import annotations

import json

from redactor.records import SegmentResult
from redactor.report import LARGE_REDACTION_PCT, load_redacted_share, redacted_area


def test_redacted_area_counts_and_lists_the_frames_over_each_threshold():
    shares = {0: 0.05, 1: 0.2, 2: 0.2001, 3: 0.5, 4: 0.93, 5: 1.0, 9: 0.51}
    area = redacted_area(shares, 10)
    assert LARGE_REDACTION_PCT == (20, 50) and area["thresholds_pct"] == [20, 50]
    assert area["frames_over_20_pct"] == 5 and area["ranges_over_20_pct"] == [[2, 6], [9, 10]]
    assert area["frames_over_50_pct"] == 3 and area["ranges_over_50_pct"] == [[4, 6], [9, 10]]
    assert area["large_frames"] == [[2, 20.0], [3, 50.0], [4, 93.0], [5, 100.0], [9, 51.0]]
    assert area["max_pct"] == 100.0 and area["max_frame"] == 5
    assert area["mean_pct"] == round(100 * sum(shares.values()) / 10, 2)  # frames with nothing redacted count 0


def test_redacted_area_of_a_video_with_nothing_redacted():
    area = redacted_area({}, 25)
    assert area["frames_over_20_pct"] == area["frames_over_50_pct"] == 0
    assert area["max_pct"] == area["mean_pct"] == 0.0 and area["max_frame"] is None and area["large_frames"] == []


def test_shares_are_read_from_every_segments_sidecar(tmp_path):
    results = []
    for k, rows in enumerate([[[0, 0.1], [3, 0.7]], [[10, 0.25]]]):
        p = tmp_path / f"detections-{k}.json"
        p.write_text(json.dumps({"segment": k, "frames": [], "redacted": [], "redacted_share": rows}))
        results.append(SegmentResult(index=k, part="", detections=str(p), frames=10, first_pts=0, last_pts=9,
                                     detected_frames=0, detected_with_faces=0, faces=0, redacted_frames=len(rows),
                                     workers=1, wall_seconds=0.0, stage_seconds={}, detector_stats={}))
    assert load_redacted_share(results) == {0: 0.1, 3: 0.7, 10: 0.25}
