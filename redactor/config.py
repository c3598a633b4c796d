"""Validated settings shared by the CLI, the Lambda handlers and CDK context."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .schedule import Schedule

STYLES = ("blur", "pixelate", "solid")
MASKS = ("ellipse", "box")
DETECTORS = ("centerface", "rekognition", "rekognition-video")
INFERENCE = ("auto", "openvino", "opencv")
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class Config:
    segment_seconds: float = 10.0
    workers: int = 0  # 0 = usable cores
    detector: str = "centerface"
    threshold: float = 0.35
    style: str = "blur"
    mask: str = "ellipse"
    enlarge: float = 1.3  # box enlargement factor (each side grows by (enlarge-1)/2 of the box size)
    hold: int = 2  # a detection also covers this many frames before and after
    detect_every: int = 3  # coarse detection on every k-th frame (global index); tracking bridges the gap
    fine_every: int = 30  # fine (small-face) detection every K-th frame, K a multiple of detect_every; 0 = off
    track_every: int = 0  # small-face tracking step in frames, dividing detect_every; 0 = detect_every
    coarse_width: int = 960  # the coarse pass infers the whole frame at most this wide
    min_face: int = 16  # smallest face width (px) the fine pass is sized for (smaller = more upscaling)
    max_infer_width: int = 1920  # the fine pass's budget: frames wider than this are tiled
    crf: int = 20
    preset: str = "veryfast"
    keep_metadata: bool = False
    drop_audio: bool = False
    model_path: str | None = None
    inference: str = "auto"  # CenterFace runtime: auto = OpenVINO when installed, else OpenCV DNN
    rekognition_every: int = 5  # sample every k-th frame for the per-frame Rekognition backend
    rekognition_price_per_image: float = 0.001  # USD, public list price for the first 1M images/month
    rekognition_concurrency: int = 4  # DetectFaces requests in flight at once per worker process
    rekognition_video_price_per_minute: float = 0.10  # USD per minute of stored video (StartFaceDetection)
    faces_path: str | None = None  # rekognition-video: faces JSON from GetFaceDetection (rekognition_video)

    def __post_init__(self):
        self.validate()

    def validate(self) -> "Config":
        def bad(name, why):
            raise ConfigError(f"setting {name}={getattr(self, name)!r}: {why}")

        if not (0.5 <= float(self.segment_seconds) <= 3600):
            bad("segment_seconds", "must be between 0.5 and 3600")
        if int(self.workers) < 0 or int(self.workers) > 256:
            bad("workers", "must be 0 (all usable cores) or 1..256")
        if self.detector not in DETECTORS:
            bad("detector", f"must be one of {', '.join(DETECTORS)}")
        if self.inference not in INFERENCE:
            bad("inference", f"must be one of {', '.join(INFERENCE)}")
        if not (0.01 <= float(self.threshold) <= 0.99):
            bad("threshold", "must be between 0.01 and 0.99")
        if self.style not in STYLES:
            bad("style", f"must be one of {', '.join(STYLES)}")
        if self.mask not in MASKS:
            bad("mask", f"must be one of {', '.join(MASKS)}")
        if not (1.0 <= float(self.enlarge) <= 4.0):
            bad("enlarge", "must be between 1.0 and 4.0")
        if not (0 <= int(self.hold) <= 60):
            bad("hold", "must be between 0 and 60 frames")
        if not (1 <= int(self.detect_every) <= 30):
            bad("detect_every", "must be between 1 and 30")
        if not (0 <= int(self.fine_every) <= 600):
            bad("fine_every", "must be 0 (off) or up to 600 frames")
        if int(self.track_every) < 0 or (int(self.track_every) and int(self.detect_every) % int(self.track_every)):
            bad("track_every", "must be 0 (= detect_every) or divide detect_every")
        if not (160 <= int(self.coarse_width) <= 3840):
            bad("coarse_width", "must be between 160 and 3840")
        if not (4 <= int(self.min_face) <= 512):
            bad("min_face", "must be between 4 and 512 px")
        if not (0 <= int(self.crf) <= 51):
            bad("crf", "must be between 0 and 51")
        if self.preset not in PRESETS:
            bad("preset", f"must be one of {', '.join(PRESETS)}")
        if not (1 <= int(self.rekognition_every) <= 300):
            bad("rekognition_every", "must be between 1 and 300")
        if not (1 <= int(self.rekognition_concurrency) <= 64):
            bad("rekognition_concurrency", "must be between 1 and 64")
        for name in ("rekognition_price_per_image", "rekognition_video_price_per_minute"):
            if not (0 <= float(getattr(self, name)) <= 100):
                bad(name, "must be a price in USD between 0 and 100")
        return self

    @property
    def effective_workers(self) -> int:
        return int(self.workers) or usable_cores()

    @property
    def schedule(self):
        """Which passes run on which frames (``schedule.Schedule``), from these settings."""
        return Schedule.from_settings(self)

    @property
    def context_frames(self) -> int:
        """Frames of context a worker reads on each side of its range (``Schedule.context``)."""
        return self.schedule.context

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Config":
        data = dict(data or {})
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
        kwargs = {}
        for k, v in data.items():
            default = names[k].default
            try:
                if isinstance(default, bool):
                    if isinstance(v, str):
                        v = v.strip().lower() in ("1", "true", "yes", "on")
                    else:
                        v = bool(v)
                elif isinstance(default, int) and v is not None:
                    v = int(v)
                elif isinstance(default, float) and v is not None:
                    v = float(v)
            except (TypeError, ValueError):
                raise ConfigError(f"setting {k}={v!r}: not a valid {type(default).__name__}") from None
            kwargs[k] = v
        return cls(**kwargs)

    @classmethod
    def from_env(cls, environ=None, prefix: str = "REDACTOR_") -> "Config":
        """Settings from environment variables, e.g. REDACTOR_SEGMENT_SECONDS=10 (used by the Lambdas)."""
        environ = os.environ if environ is None else environ
        names = {f.name for f in dataclasses.fields(cls)}
        data = {}
        for key, value in environ.items():
            if key.startswith(prefix):
                name = key[len(prefix):].lower()
                if name in names:
                    data[name] = value
        return cls.from_dict(data)
