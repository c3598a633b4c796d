"""No face left behind at low frame rates and at the frame's edge (#15), and a summary that counts what it says."""
from __future__ import annotations

import re

from redactor import Config, redact_file
from redactor.cli import summary

from .test_schedule_tracks import FakeTwoTier


# ------------------------------------------------------------------------------------------------ CLI summary
def test_summary_counts_faces_on_detection_frames_only(media, tmp_path):
    """A small face that jumps to a new place one frame before each coarse sample is found there by the
    coarse pass, no track explains it, so it is followed back onto the frame before (not a detection frame):
    frames with boxes outnumber detection frames. The summary ("faces found on X of Y detection frames") must
    count detection frames, so X <= Y (it said "20 of 18")."""
    clip = media("count.mp4", width=320, height=240, seconds=1.0, faces=0)
    truth = {"pts": clip["pts"], "faces": [[[40.0 + 60 * ((i + 1) // 3 % 4), 100.0, 60.0 + 60 * ((i + 1) // 3 % 4),
                                             120.0]] for i in range(clip["frames"])]}

    class CoarseSeesSmall(FakeTwoTier):
        def coarse(self, frames):  # the coarse pass also finds faces below its reliable size, as CenterFace's does
            return [self._at(f) for f in frames]

    cfg = Config(workers=1, detect_every=3, fine_every=12)
    report = redact_file(clip["path"], str(tmp_path / "out.mp4"), cfg,
                         detector_factory=lambda c, s: CoarseSeesSmall(truth))
    c = report["counts"]
    assert c["frames_with_boxes"] == len(report["detections"]) > c["detected_frames"]  # the old count
    found, of = map(int, re.search(r"faces found on (\d+) of (\d+) detection frames", summary(report)).groups())
    assert of == c["detected_frames"]
    assert found == of  # the face is on every frame, and every pass finds it
