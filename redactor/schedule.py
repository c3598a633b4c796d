"""Which detection passes run on frame i, and how much context a cut needs (all by *global* frame index, so
results never depend on where segments or chunks were cut).

The periods are set in time and turned into frames from the source's frame rate (``frames_in``, from the
plan's ``source.fps``, so every segment and worker derives the same schedule): the coarse pass every
``detect_ms`` (100 ms: every 3rd frame at 30 fps, every 2nd at 20-29 fps, every frame below 20 fps),
the fine pass every ``fine_ms`` and small-face tracking every ``track_ms``; ``detect_every``, ``fine_every``
and ``track_every`` fix them in frames instead.

* ``every`` (k): the coarse pass of a two-tier detector, or a single-tier detector's samples, runs on frames
  whose index is a multiple of k (``detect_every``; ``rekognition_ms`` / ``rekognition_every`` for the
  DetectFaces backend; 1 for boxes looked up by timestamp), and a single-tier detector's also on the video's
  last frame (a face that appears after the last multiple of k is found there, e.g. at a live chunk's end);
* ``fine`` (K, a multiple of k; 0 = single tier): the fine (small-face) pass runs on multiples of K and on the
  video's last frame;
* ``track`` (kt, dividing k): between fine passes, small faces are tracked every kt frames, and once more one
  frame after each fine pass to learn their velocity.

A frame is covered by the coarse samples within ``window`` (held) and ``reach`` (interpolated/extrapolated),
by faces carried out of (or back into) the picture from samples within ``edge_reach`` (``carry`` frames on
from where a face near the edge was lost), by the fine passes on either side of it and by the track boxes of
its own fine interval (tracking.Coverage); so a frame can be encoded ``latency`` frames after it was decoded,
and a cut needs ``context`` frames read on each side.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from .detectors import is_two_tier  # numpy-free: which backends are two-tier, without building one

REFERENCE_FPS = 30.0  # the frame rate ``Config.schedule`` describes (a clip's own: ``Config.schedule_for(fps)``)
EDGE_SAMPLES = 3  # a face lost near the frame's edge is carried on this many coarse samples (until it has left)
MAX_EVERY = 30  # frames: the longest coarse period (``detect_ms`` at a very high frame rate)
MAX_FINE = 600  # frames: the longest fine period
MAX_REKOGNITION = 300  # frames: the longest DetectFaces sampling period (``rekognition_ms``)


def frames_in(ms: float, fps: float, most: int) -> int:
    """The most whole frames of a ``fps`` video that fit in ``ms`` milliseconds (at least 1, at most ``most``).
    Rates within 0.5 % of a round one count as it (29.97 fps: 3 frames in 100 ms, as at 30 fps); an unknown
    rate counts as 30 fps."""
    fps = float(fps) if fps and fps > 0 else REFERENCE_FPS
    return max(1, min(int(most), math.floor(float(ms) * fps / 1000.0 * 1.005 + 1e-9)))


@dataclass(frozen=True)
class Passes:
    """The passes one frame gets (none of them: the frame is decoded and covered, not detected)."""

    detect: bool = False  # the detector's full pass (the fine pass of a two-tier one)
    coarse: bool = False  # two-tier: the coarse pass
    track: bool = False  # two-tier: a small-face tracking step

    def __bool__(self) -> bool:
        return self.detect or self.coarse or self.track


NONE = Passes()


@dataclass(frozen=True)
class Schedule:
    every: int  # k
    fine: int = 0  # K, 0 = single tier
    track: int = 0  # kt (0: = every)
    hold: int = 0  # a detection also covers this many frames before and after it
    last_frame: int = -1  # the video's last frame (it gets a fine pass too); -1 = not in this range

    def __post_init__(self):
        if not self.track:
            object.__setattr__(self, "track", self.every)

    @classmethod
    def from_settings(cls, settings, fps: float = REFERENCE_FPS) -> "Schedule":
        """The schedule detection ``settings`` ask for on a ``fps`` video (the plan's ``source.fps``): two-tier
        (a fine period) for the backends ``detectors.TWO_TIER`` names, before a built detector says whether
        the coarse pass pays for this frame size (``Detector.two_tier``, in the chunk worker)."""
        if settings.detector == "rekognition-video":
            k = 1  # boxes looked up by timestamp: every frame
        elif settings.detector == "rekognition":
            k = int(settings.rekognition_every) or frames_in(settings.rekognition_ms, fps, MAX_REKOGNITION)
        else:
            k = int(settings.detect_every) or frames_in(settings.detect_ms, fps, MAX_EVERY)
        fine = 0
        every_fine = int(settings.fine_every)
        if every_fine < 0:  # from fine_ms (0 ms = off)
            every_fine = frames_in(settings.fine_ms, fps, MAX_FINE) if float(settings.fine_ms) > 0 else 0
        if every_fine and is_two_tier(settings.detector):
            fine = max(k, -(-every_fine // k) * k)  # rounded up to a multiple of k
        track = int(settings.track_every)
        if not track and float(settings.track_ms) > 0:
            track = frames_in(settings.track_ms, fps, k)
        if track:
            track = max(d for d in range(1, k + 1) if k % d == 0 and d <= track)  # a step dividing k
        return cls(every=k, fine=fine, track=track or k, hold=int(settings.hold))

    def single_tier(self) -> "Schedule":
        return dataclasses.replace(self, fine=0)

    def ending_at(self, last_frame: int) -> "Schedule":
        return dataclasses.replace(self, last_frame=last_frame)

    # ------------------------------------------------------------------------------------------ distances
    @property
    def window(self) -> int:
        """A coarse sample's boxes cover this many frames on each side (hold + k - 1)."""
        return self.hold + self.every - 1

    @property
    def window_track(self) -> int:
        return self.hold + self.track - 1

    @property
    def window_fine(self) -> int:
        """Fine boxes cover every frame up to the fine passes on either side."""
        return self.fine - 1 if self.fine else 0

    @property
    def reach(self) -> int:
        """Coarse samples this far from a frame shape its boxes (held, interpolated, extrapolated)."""
        return self.window + self.every

    @property
    def carry(self) -> int:
        """A face lost near the frame's edge is carried this many frames on (and one that came in, back)."""
        return EDGE_SAMPLES * self.every

    @property
    def edge_reach(self) -> int:
        """Coarse samples this far from a frame can carry a face onto it (the sample that saw it last, and the
        one before for its motion)."""
        return self.carry + self.every

    @property
    def latency(self) -> int:
        """A frame's boxes are known once the frame this many frames later has been detected."""
        if self.fine:
            return max(self.reach, self.window_fine, self.edge_reach)
        return max(self.window, self.edge_reach)

    @property
    def context(self) -> int:
        """Frames of context a worker reads on each side of its range so results do not depend on cuts: the
        coarse samples that shape a frame's boxes (hold + 2k - 1 away; faces carried at the edge: up to
        ``edge_reach``), the fine passes around it (K - 1) and the start of its fine interval, where its
        small-face tracks begin."""
        return max(self.hold + 2 * self.every, self.fine, self.edge_reach)

    def span(self, start: int, end: int) -> tuple[int, int]:
        """[lo, hi): the frames a chunk encoding [start, end) must decode: its own and the context frames that
        get a pass (``passes``) -- for this schedule and its single-tier form, which a worker falls back to
        when the coarse pass does not pay for the frame size. Context frames without a pass are neither
        detected nor encoded, so a chunk need not decode them (up to ``context`` on each side would)."""
        variants = [self, self.single_tier()] if self.fine else [self]
        ctx = self.context

        def needed(i):
            return any(v.passes(i, start, end, tracking=True) for v in variants)

        lo = next((i for i in range(max(0, start - ctx), start) if needed(i)), start)
        hi = next((i + 1 for i in range(end + ctx - 1, end - 1, -1) if needed(i)), end)
        return lo, hi

    # ------------------------------------------------------------------------------------------ frames
    def is_fine(self, i: int) -> bool:
        return not self.fine or i % self.fine == 0 or i == self.last_frame

    def interval_start(self, i: int) -> int:
        """The fine pass that starts frame i's fine interval (i itself without a fine pass)."""
        return i - i % self.fine if self.fine else i

    def passes(self, i: int, start: int, end: int, tracking: bool) -> Passes:
        """The passes frame i gets in a chunk that encodes [start, end): only where a result can reach the
        chunk's frames (coarse samples within ``reach``, fine passes within ``K - 1``, and the small-face
        track chain of every fine interval that holds a chunk frame, from its start). ``tracking``: small-face
        tracks are alive (the velocity probe one frame after a fine pass needs some)."""
        k, K = self.every, self.fine
        if not K:  # the video's last frame is a sample too: a face there is not left to the hold of the one before
            r = max(self.window, self.edge_reach)
            sampled = i % k == 0 or i == self.last_frame
            return Passes(detect=True) if sampled and start - r <= i < end + r else NONE
        if self.is_fine(i):
            return Passes(detect=True) if start - self.window_fine <= i < end + self.window_fine else NONE
        chain = self.interval_start(start) <= i and self.interval_start(i) < end
        # one frame after a fine pass, its small faces are looked for again to learn their velocity
        probe = chain and self.track > 1 and i % K == 1 and tracking
        r = max(self.reach, self.edge_reach)
        coarse = i % k == 0 and (start - r <= i < end + r or chain)
        track = chain and (i % self.track == 0 or probe)
        return Passes(coarse=coarse, track=track) if coarse or track else NONE
