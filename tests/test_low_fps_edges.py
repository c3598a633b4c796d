"""No face left behind at low frame rates and at the frame's edge (#15), and a summary that counts what it says."""
from __future__ import annotations

import re

import pytest

from redactor import Config, plan, redact_file
from redactor.cli import summary
from redactor.schedule import Schedule, frames_in

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


# ------------------------------------------------------------------------------------------------ schedule in time
@pytest.mark.parametrize("fps,every,fine", [(5, 1, 5), (10, 1, 10), (12, 1, 12), (15, 1, 15), (24000 / 1001, 2, 24),
                                            (25, 2, 26), (30000 / 1001, 3, 30), (30, 3, 30), (50, 5, 50), (60, 6, 60),
                                            (0, 3, 30)])
def test_the_default_schedule_samples_every_100_ms_in_whole_frames(fps, every, fine):
    """Coarse detection every 100 ms, fine every second, in whole frames of the source's rate: exactly today's
    schedule at 30 (and 29.97) fps, every frame below 20 fps; an unknown rate counts as 30 fps."""
    s = Schedule.from_settings(Config().detection, fps)
    assert (s.every, s.fine, s.track) == (every, fine, every)
    assert frames_in(100, fps, 30) == every


def test_frame_settings_still_fix_the_schedule_in_frames():
    assert Schedule.from_settings(Config(detect_every=3).detection, 10).every == 3
    assert Schedule.from_settings(Config(fine_every=0).detection, 10).fine == 0
    assert Schedule.from_settings(Config(fine_ms=0).detection, 30).fine == 0
    assert Schedule.from_settings(Config(detect_ms=200, track_ms=70).detection, 30).track == 2  # divides k=6
    assert Schedule.from_settings(Config(detect_ms=1000).detection, 60).every == 30  # bounded in frames


def test_a_10_fps_plan_is_detected_on_every_frame(media, tmp_path):
    """The plan's frame rate decides the schedule in every segment: a 10 fps clip cut into 0.5 s segments is
    detected on every frame (it was every 3rd: 300 ms between samples), and its segments read the context
    the 10 fps schedule needs."""
    from .test_schedule_tracks import FakeTwoTier
    clip = media("ten_fps.mp4", width=320, height=240, fps=10, seconds=2.0, faces=2, face_size=(40, 60), seed=3)
    cfg = Config(workers=2, segment_seconds=0.5)
    p = plan(clip["path"], cfg)
    assert len(p.segments) == 4
    assert p.segments[2].context_before == Schedule.from_settings(cfg.detection, 10).context == 10  # 30 at 30 fps
    report = redact_file(clip["path"], str(tmp_path / "out.mp4"), cfg,
                         detector_factory=lambda c, s: FakeTwoTier(clip))
    assert report["counts"]["detected_frames"] == clip["frames"] == 20
