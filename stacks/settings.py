"""Deployment settings read from CDK context (defaults live in cdk.json; override with ``-c name=value``)."""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any

from redactor.config import Config, DetectionSettings, EncodingSettings, RuntimeSettings, StyleSettings
from redactor.errors import ConfigError

DEFAULT_SUFFIXES = (".mp4", ".mov", ".mkv", ".m4v", ".avi", ".webm", ".ts", ".mts")


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    # engine (passed to the Lambdas as REDACTOR_* environment variables; defaults: the engine's own)
    segment_seconds: float = RuntimeSettings.segment_seconds
    # Plan lengthens segments up to this when max_concurrency cannot run them all at once (0 = never; the
    # choice is in each plan: plan.json segment_seconds / segment_choice)
    segment_max_seconds: float = 60.0
    detector: str = DetectionSettings.detector
    style: str = StyleSettings.style
    drop_audio: bool = EncodingSettings.drop_audio
    keep_metadata: bool = EncodingSettings.keep_metadata
    # detector=rekognition: DetectFaces on every k-th frame, 0 = every 200 ms (REDACTOR_REKOGNITION_EVERY)
    rekognition_every: int = DetectionSettings.rekognition_every
    # workflow
    face_poll_seconds: int = 20  # detector=rekognition-video: Wait between GetFaceDetection status checks
    max_concurrency: int = 8  # parallel redact Lambdas per video: fits a new account's 10 concurrent executions
    video_suffixes: tuple[str, ...] = DEFAULT_SUFFIXES
    # functions
    python_version: str = "3.13"
    plan_memory_mb: int = 1769
    plan_timeout_seconds: int = 300
    plan_ephemeral_mb: int = 10240
    redact_memory_mb: int = 3008  # 2 vCPUs: a new account's Lambda memory quota; 10240 (6 vCPUs) is the fast setting
    redact_timeout_seconds: int = 900
    redact_ephemeral_mb: int = 10240
    stitch_memory_mb: int = 3008
    stitch_timeout_seconds: int = 900
    stitch_ephemeral_mb: int = 10240
    small_memory_mb: int = 256  # starter and Record failure
    log_retention_days: int = 30
    # storage
    raw_retention_days: int = 30  # 0 = keep raw uploads forever
    work_retention_days: int = 2
    output_noncurrent_days: int = 90
    access_log_retention_days: int = 365
    removal_policy: str = "retain"  # retain | destroy
    # Kinesis Video Streams in (stacks/kvs.py): the streams the consumer may read (names; "prefix*" for every stream
    # whose name starts with prefix). Empty: no consumer. Which of them it follows is an SSM parameter, set to
    # the exact names here at deploy; kvs_enabled is the schedule rule's state at deploy.
    kvs_streams: tuple[str, ...] = ()
    kvs_enabled: bool = False
    kvs_clip_seconds: float = 10.0
    # live streams (stacks/live.py, with -c live=true): a stream with no chunk uploaded and nothing published
    # for this long gets EXT-X-ENDLIST (checked every minute); 0 = only END ends a stream
    live_idle_seconds: int = 300
    # build
    placeholder_layers: bool = False  # synth with empty layers (tests); never deploy that
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        def bad(name, why):
            raise SettingsError(f"context {name}={getattr(self, name)!r}: {why}")

        try:  # the engine's settings follow the engine's own rules (one place: redactor/config.py)
            Config(segment_seconds=self.segment_seconds, detector=self.detector, style=self.style,
                   rekognition_every=self.rekognition_every, segment_max_seconds=self.segment_max_seconds,
                   fanout=self.max_concurrency)
        except ConfigError as e:
            raise SettingsError(f"context {e}") from None
        if not 1 <= self.face_poll_seconds <= 3600:
            bad("face_poll_seconds", "must be between 1 and 3600 seconds")
        if not 1 <= self.max_concurrency <= 10000:
            bad("max_concurrency", "must be between 1 and 10000 (Distributed Map limit)")
        if self.python_version not in ("3.12", "3.13"):
            bad("python_version", "must be 3.12 or 3.13 (the layers are built for it)")
        for name in ("plan_memory_mb", "redact_memory_mb", "stitch_memory_mb", "small_memory_mb"):
            if not 128 <= getattr(self, name) <= 10240:
                bad(name, "must be between 128 and 10240 MB")
        for name in ("plan_timeout_seconds", "redact_timeout_seconds", "stitch_timeout_seconds"):
            if not 10 <= getattr(self, name) <= 900:
                bad(name, "must be between 10 and 900 seconds (Lambda limit)")
        for name in ("plan_ephemeral_mb", "redact_ephemeral_mb", "stitch_ephemeral_mb"):
            if not 512 <= getattr(self, name) <= 10240:
                bad(name, "must be between 512 and 10240 MB")
        if self.log_retention_days not in (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
                                           1096, 1827, 2192, 2557, 2922, 3288, 3653):
            bad("log_retention_days", "must be a CloudWatch Logs retention value (e.g. 7, 30, 90, 365)")
        if self.raw_retention_days < 0:
            bad("raw_retention_days", "must be >= 0 (0 keeps raw uploads)")
        if not 1 <= self.work_retention_days <= 30:
            bad("work_retention_days", "must be between 1 and 30")
        if self.output_noncurrent_days < 1 or self.access_log_retention_days < 1:
            bad("output_noncurrent_days", "retention days must be >= 1")
        if self.removal_policy not in ("retain", "destroy"):
            bad("removal_policy", "must be retain or destroy")
        for name in self.kvs_streams:
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,256}|[A-Za-z0-9_.-]{1,255}\*", name):
                bad("kvs_streams", f"{name!r} is not a Kinesis Video stream name (or a name prefix ending in *)")
        if not 1 <= self.kvs_clip_seconds <= 600:
            bad("kvs_clip_seconds", "must be between 1 and 600 seconds")
        if self.live_idle_seconds != 0 and not 60 <= self.live_idle_seconds <= 86400:
            bad("live_idle_seconds", "must be 0 (no idle timeout) or between 60 and 86400 seconds")
        if not self.video_suffixes or not all(s.startswith(".") for s in self.video_suffixes):
            bad("video_suffixes", "must be a non-empty list like [\".mp4\", \".mov\"]")

    @property
    def engine_environment(self) -> dict[str, str]:
        env = {
            "REDACTOR_SEGMENT_SECONDS": _num(self.segment_seconds),
            "REDACTOR_SEGMENT_MAX_SECONDS": _num(self.segment_max_seconds),
            "REDACTOR_FANOUT": str(self.max_concurrency),  # the Map's: Plan sizes the segments for it
            "REDACTOR_DETECTOR": self.detector,
            "REDACTOR_STYLE": self.style,
            "REDACTOR_DROP_AUDIO": "true" if self.drop_audio else "false",
            "REDACTOR_KEEP_METADATA": "true" if self.keep_metadata else "false",
        }
        if self.detector == "rekognition":
            env["REDACTOR_REKOGNITION_EVERY"] = str(self.rekognition_every)
        return env

    @classmethod
    def from_context(cls, get) -> "Settings":
        """``get(name)`` returns the context value or None (``node.try_get_context``)."""
        inference = get("inference")  # not a stack setting: the Lambdas always ran OpenCV DNN, their layer's only
        if inference is not None:     # runtime; an old -c inference=openvino gets the engine's named error
            try:
                Config(inference=inference)
            except ConfigError as e:
                raise SettingsError(f"context {e}") from None
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name == "extra":
                continue
            value = get(f.name)
            if value is None:
                continue
            kwargs[f.name] = _coerce(f.name, f.default, value)
        return cls(**kwargs)


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def _coerce(name: str, default: Any, value: Any) -> Any:
    """Context from ``-c name=value`` arrives as a string; from cdk.json as JSON."""
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.strip().lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return value.strip().lower() in ("true", "1", "yes")
            return bool(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, tuple):
            if isinstance(value, str):
                value = json.loads(value) if value.strip().startswith("[") else value.split(",")
            return tuple(str(v).strip() for v in value)
        return str(value)
    except (TypeError, ValueError):
        raise SettingsError(f"context {name}={value!r}: not a valid {type(default).__name__}") from None
