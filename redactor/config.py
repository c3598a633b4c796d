"""Validated settings shared by the CLI, the Lambda handlers and CDK context."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from .detectors import own_defaults  # numpy-free
from .errors import ConfigError
from .schedule import REFERENCE_FPS, Schedule

STYLES = ("blur", "pixelate", "solid")
MASKS = ("ellipse", "box")
DETECTORS = ("centerface", "yunet", "rekognition", "rekognition-video")
# the inference runtime of the local models: OpenCV DNN only, the Lambda layer's (what is tested is what is
# deployed); "auto" is accepted and means opencv. Asking for OpenVINO is a named ConfigError saying why it is
# not a runtime: a run that silently changed runtime would not be the run that was asked for.
INFERENCE = ("opencv", "auto")
REMOVED_INFERENCE = {
    "openvino": "OpenVINO is not supported: YuNet in OpenCV DNN is 2.3-3.0x "
                "cheaper per inference than CenterFace in OpenVINO, and the Lambda layer cannot carry OpenVINO "
                "(over the 250 MB limit) (docs/detectors.md). The only runtime "
                "is OpenCV DNN: use inference=opencv (the default) or leave the setting out",
}
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def _coerce(name: str, default, v):
    """``v`` as the type of the field's ``default`` (bool, int, float; others as given): a named ConfigError
    when it is not one."""
    try:
        if isinstance(default, bool):
            if isinstance(v, str):
                return v.strip().lower() in ("1", "true", "yes", "on")
            return v if isinstance(v, bool) else bool(v)
        if isinstance(default, int) and v is not None and not (type(v) is int):
            return int(v)
        if isinstance(default, float) and v is not None and not (type(v) is float):
            return float(v)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name}={v!r}: not a valid {type(default).__name__}") from None
    return v


def _check(group, name: str, ok: bool, why: str) -> None:
    if not ok:
        raise ConfigError(f"setting {name}={getattr(group, name)!r}: {why}")


@dataclass(frozen=True)
class DetectionSettings:
    """What decides which frames are detected and which boxes come out. The plan is made with these and
    carries them (every Segment record holds a copy): Redact applies the plan's, not its own environment's."""

    detector: str = "yunet"
    threshold: float = 0.0  # detection score threshold; 0 = the detector's own (detectors.own_defaults)
    hold: int = 2  # a detection also covers this many frames before and after
    # detection periods in time, turned into frames from the source's frame rate (schedule.frames_in):
    detect_ms: float = 100.0  # coarse detection period (every 3rd frame at 30 fps, every frame at 10 fps)
    fine_ms: float = 1000.0  # fine (small-face) detection period, rounded up to coarse periods; 0 = off
    track_ms: float = 0.0  # small-face tracking step; 0 = the coarse period
    # ... or fixed in frames (by global index), overriding the periods in time:
    detect_every: int = 0  # coarse detection on every k-th frame; 0 = from detect_ms
    fine_every: int = -1  # fine detection every K-th frame (a multiple of k); 0 = off, -1 = from fine_ms
    track_every: int = 0  # small-face tracking step in frames, dividing k; 0 = from track_ms
    coarse_width: int = 0  # the coarse pass infers the whole frame at most this wide; 0 = the detector's own
    min_face: int = 16  # smallest face width (px) the fine pass is sized for (smaller = more upscaling; above
    # the model's FINE_FACE, 32 px for YuNet / 48 CenterFace, the fine pass shrinks the frame: faster, and blind
    # below it)
    max_infer_width: int = 1920  # the fine pass's budget: frames wider than this are tiled
    rekognition_ms: float = 200.0  # per-frame Rekognition backend: sampling period (every 6th frame at 30 fps)
    rekognition_every: int = 0  # ... or every k-th frame, overriding rekognition_ms; 0 = from rekognition_ms

    def resolved(self) -> "DetectionSettings":
        """These settings with every 0 that means "the detector's own" replaced by that detector's value."""
        own = own_defaults(self.detector) if self.detector in DETECTORS else {}
        return dataclasses.replace(self, **{k: v for k, v in own.items() if not getattr(self, k)})

    def check(self) -> None:
        _check(self, "detector", self.detector in DETECTORS, f"must be one of {', '.join(DETECTORS)}")
        _check(self, "threshold", float(self.threshold) == 0 or 0.01 <= float(self.threshold) <= 0.99,
               "must be 0 (the detector's own) or between 0.01 and 0.99")
        _check(self, "hold", 0 <= int(self.hold) <= 60, "must be between 0 and 60 frames")
        _check(self, "detect_ms", 1 <= float(self.detect_ms) <= 10000, "must be between 1 and 10000 ms")
        _check(self, "fine_ms", 0 <= float(self.fine_ms) <= 60000, "must be 0 (off) or up to 60000 ms")
        _check(self, "track_ms", 0 <= float(self.track_ms) <= 10000,
               "must be 0 (= the coarse period) or up to 10000 ms")
        _check(self, "detect_every", 0 <= int(self.detect_every) <= 30, "must be 0 (from detect_ms) or 1..30")
        _check(self, "fine_every", -1 <= int(self.fine_every) <= 600,
               "must be -1 (from fine_ms), 0 (off) or up to 600 frames")
        t, k = int(self.track_every), int(self.detect_every)
        _check(self, "track_every", t >= 0 and not (t and k and k % t),
               "must be 0 (from track_ms) or divide detect_every")
        _check(self, "coarse_width", int(self.coarse_width) == 0 or 160 <= int(self.coarse_width) <= 3840,
               "must be 0 (the detector's own) or between 160 and 3840")
        _check(self, "min_face", 4 <= int(self.min_face) <= 512, "must be between 4 and 512 px")
        _check(self, "rekognition_ms", 1 <= float(self.rekognition_ms) <= 10000, "must be between 1 and 10000 ms")
        _check(self, "rekognition_every", 0 <= int(self.rekognition_every) <= 300,
               "must be 0 (from rekognition_ms) or 1..300")


@dataclass(frozen=True)
class StyleSettings:
    """How a covered face is hidden."""

    style: str = "blur"
    mask: str = "ellipse"
    enlarge: float = 1.3  # box enlargement factor (each side grows by (enlarge-1)/2 of the box size)

    def check(self) -> None:
        _check(self, "style", self.style in STYLES, f"must be one of {', '.join(STYLES)}")
        _check(self, "mask", self.mask in MASKS, f"must be one of {', '.join(MASKS)}")
        _check(self, "enlarge", 1.0 <= float(self.enlarge) <= 4.0, "must be between 1.0 and 4.0")


@dataclass(frozen=True)
class EncodingSettings:
    """The output: video encoder, and what is copied from the source."""

    crf: int = 20
    preset: str = "veryfast"
    keep_metadata: bool = False
    drop_audio: bool = False

    def check(self) -> None:
        _check(self, "crf", 0 <= int(self.crf) <= 51, "must be between 0 and 51")
        _check(self, "preset", self.preset in PRESETS, f"must be one of {', '.join(PRESETS)}")


@dataclass(frozen=True)
class RuntimeSettings:
    """Where and how this process runs (may differ between machines of one run without changing results),
    prices for the report, and per-run inputs."""

    segment_seconds: float = 10.0
    # Plan may lengthen segments up to this when the run's fan-out cannot run them all at once anyway (fewer,
    # longer segments in as many waves: less per-segment overhead, cheaper and no slower; see probe.plan);
    # 0 = segments of segment_seconds exactly
    segment_max_seconds: float = 0.0
    fanout: int = 0  # segments the run redacts at once (the stack's Map max_concurrency); 0 = unknown
    workers: int = 0  # 0 = usable cores
    model_path: str | None = None
    # the local models' runtime: opencv (OpenCV DNN, what the Lambda layer runs), the only one; "auto" is
    # read as opencv; "openvino" is a ConfigError saying why (REMOVED_INFERENCE)
    inference: str = "opencv"
    rekognition_concurrency: int = 4  # DetectFaces requests in flight at once per worker process
    rekognition_price_per_image: float = 0.001  # USD, public list price for the first 1M images/month
    rekognition_video_price_per_minute: float = 0.10  # USD per minute of stored video (StartFaceDetection)
    faces_path: str | None = None  # rekognition-video: faces JSON from GetFaceDetection (rekognition_video)

    def check(self) -> None:
        _check(self, "segment_seconds", 0.5 <= float(self.segment_seconds) <= 3600, "must be between 0.5 and 3600")
        _check(self, "segment_max_seconds", 0 <= float(self.segment_max_seconds) <= 3600,
               "must be between 0 (segments of segment_seconds) and 3600")
        _check(self, "fanout", 0 <= int(self.fanout) <= 10000, "must be 0 (unknown) or 1..10000")
        _check(self, "workers", 0 <= int(self.workers) <= 256, "must be 0 (all usable cores) or 1..256")
        removed = REMOVED_INFERENCE.get(str(self.inference).strip().lower())
        _check(self, "inference", removed is None, removed or "")
        _check(self, "inference", self.inference in INFERENCE, f"must be one of {', '.join(INFERENCE)}")
        _check(self, "rekognition_concurrency", 1 <= int(self.rekognition_concurrency) <= 64,
               "must be between 1 and 64")
        for name in ("rekognition_price_per_image", "rekognition_video_price_per_minute"):
            _check(self, name, 0 <= float(getattr(self, name)) <= 100, "must be a price in USD between 0 and 100")


GROUPS = {"detection": DetectionSettings, "redaction": StyleSettings, "encoding": EncodingSettings,
          "runtime": RuntimeSettings}

# Config: every group's fields side by side (one flat, validated, immutable record for the CLI, REDACTOR_*
# variables and CDK context; the groups' defaults are its defaults); ``config.detection`` etc. give the groups
_Flat = dataclasses.make_dataclass("_Flat", [(f.name, f.type, dataclasses.field(default=f.default))
                                             for g in GROUPS.values() for f in dataclasses.fields(g)],
                                   namespace={"__post_init__": lambda self: self.validate()}, frozen=True)


class Config(_Flat):
    """All settings, flat: ``Config(crf=18, detect_ms=200)``, ``Config.from_dict``, ``Config.from_env``.
    Validated on construction, by each group's ``check``; detection settings left 0 ("the detector's own":
    ``threshold``, ``coarse_width``) are then filled in from the detector's defaults, so a Config, and the
    plan made with it, always holds the values used."""

    def validate(self) -> "Config":
        for f in dataclasses.fields(self):  # "1.4" (a string from a CLI, an environment, JSON) -> 1.4
            v = getattr(self, f.name)
            c = _coerce(f.name, f.default, v)
            if c is not v:
                object.__setattr__(self, f.name, c)
        for name in GROUPS:
            getattr(self, name).check()
        for k, v in dataclasses.asdict(self._group(DetectionSettings).resolved()).items():
            if getattr(self, k) != v:
                object.__setattr__(self, k, v)
        if self.inference == "auto":  # the runtime auto picks: OpenCV DNN, the only one (INFERENCE)
            object.__setattr__(self, "inference", "opencv")
        return self

    def _group(self, cls):
        return cls(**{f.name: getattr(self, f.name) for f in dataclasses.fields(cls)})

    @property
    def detection(self) -> DetectionSettings:
        return self._group(DetectionSettings)

    @property
    def redaction(self) -> StyleSettings:
        return self._group(StyleSettings)

    @property
    def encoding(self) -> EncodingSettings:
        return self._group(EncodingSettings)

    @property
    def runtime(self) -> RuntimeSettings:
        return self._group(RuntimeSettings)

    def with_detection(self, detection: dict[str, Any]) -> "Config":
        """These settings with the detection settings ``detection`` (a plan's) instead of their own."""
        unknown = set(detection) - {f.name for f in dataclasses.fields(DetectionSettings)}
        if unknown:
            raise ConfigError(f"unknown detection setting(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **dataclasses.asdict(Config.from_dict(dict(detection)).detection))

    @property
    def effective_workers(self) -> int:
        return int(self.workers) or usable_cores()

    def schedule_for(self, fps: float) -> Schedule:
        """Which passes run on which frames of a ``fps`` video (``schedule.Schedule``), from these settings."""
        return Schedule.from_settings(self.detection, fps)

    @property
    def schedule(self) -> Schedule:
        """The schedule at 30 fps (``schedule.REFERENCE_FPS``); a clip's own is ``schedule_for(source.fps)``."""
        return self.schedule_for(REFERENCE_FPS)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Config":
        data = dict(data or {})
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
        return cls(**data)  # values are coerced to their fields' types by validate

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
