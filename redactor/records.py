"""Typed, JSON-serialisable records passed between pipeline stages.

These are exactly what travels between the Step Functions states (or is written to S3 as a manifest), so
they hold keys, counts and small lists only -- never per-frame data (that goes to a detections sidecar file).
Every record round-trips through ``to_dict()`` / ``from_dict()`` and ``json``.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from typing import Any


class Record:
    """Mixin: dataclass <-> plain dict (recursively), ignoring unknown keys for forward compatibility."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[arg-type]

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), **kw)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name not in data:
                continue
            kwargs[f.name] = _coerce(hints[f.name], data[f.name])
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str):
        return cls.from_dict(json.loads(text))


def _coerce(tp, value):
    if value is None:
        return None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        for a in args:
            if a is type(None):
                continue
            return _coerce(a, value)
    if origin is list and args:
        return [_coerce(args[0], v) for v in value]
    if isinstance(tp, type) and issubclass(tp, Record):
        return tp.from_dict(value)
    return value


@dataclass
class AudioStreamInfo(Record):
    index: int
    codec: str
    sample_rate: int | None = None
    channels: int | None = None
    packets: int = 0
    time_base: str = ""


@dataclass
class SourceInfo(Record):
    path: str
    container: str
    size_bytes: int
    video_index: int
    codec: str
    width: int
    height: int
    pix_fmt: str
    bit_depth: int
    color_range: int
    time_base: str  # "num/den" of the video stream
    frame_count: int
    duration: float  # seconds, from first frame pts to end of last frame
    fps: float  # average frame rate (frame_count / duration)
    start_pts: int
    rotation: int = 0  # counter-clockwise degrees, as PyAV's VideoFrame.rotation
    display_matrix: list[int] | None = None
    profile: str | None = None
    audio: list[AudioStreamInfo] = field(default_factory=list)
    other_streams: int = 0
    metadata_keys: list[str] = field(default_factory=list)  # container + stream tags present in the source
    variable_frame_rate: bool = False
    end_pts: int | None = None  # where the last frame ends: its pts + its duration (None: unknown)


@dataclass
class Keyframe(Record):
    frame: int  # global frame index (presentation order)
    pts: int


@dataclass
class Segment(Record):
    """A contiguous range of frames [start_frame, end_frame) in presentation order."""

    index: int
    start_frame: int
    end_frame: int
    start_pts: int
    end_pts: int | None  # pts of the first frame after this segment (None for the last one)
    keyframe_aligned: bool
    # keyframes a worker may seek to: the last keyframe at/before (start_frame - context) and those inside
    keyframes: list[Keyframe] = field(default_factory=list)
    frame_pts: list[int] = field(default_factory=list)  # pts of frames [start_frame - ctx_before, end_frame + ctx_after)
    context_before: int = 0  # how many frames of frame_pts precede start_frame
    context_after: int = 0  # how many frames of frame_pts follow end_frame - 1
    # the detection settings the plan was made with (config.DetectionSettings as a dict): Redact applies these,
    # so a redeploy between Plan and Redact cannot change the schedule the context above was sized for
    detection: dict[str, Any] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return self.end_frame - self.start_frame


@dataclass
class Plan(Record):
    source: SourceInfo
    segments: list[Segment]
    settings: dict[str, Any]
    keyframes: int = 0  # number of keyframes in the source
    target_segment_frames: int = 0
    segment_seconds: float = 0.0  # the segment length planned (settings' segment_seconds, or longer: see below)
    segment_choice: str = ""  # why: "fixed", or how the fan-out made Plan lengthen them (probe.segment_length)

    @property
    def frame_count(self) -> int:
        return self.source.frame_count


@dataclass
class SegmentResult(Record):
    index: int
    part: str  # path (or S3 key) of the encoded part
    detections: str  # path (or S3 key) of the per-frame detections sidecar (JSON)
    frames: int
    first_pts: int
    last_pts: int
    detected_frames: int  # frames on which the detector ran
    faces: int  # boxes found by the detector (on detected frames inside the segment)
    redacted_frames: int  # frames with at least one redacted region
    workers: int
    wall_seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)  # summed over workers: decode/detect/redact/encode
    detector_stats: dict[str, Any] = field(default_factory=dict)  # e.g. calls, throttles, cost for API detectors
    detected_with_faces: int = 0  # detected frames (inside the segment) on which faces were found


@dataclass
class StitchResult(Record):
    output: str
    frames: int
    video_packets: int
    audio_packets: int
    audio_streams: int
    removed_metadata: list[str]
    bytes: int
    wall_seconds: float
