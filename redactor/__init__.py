"""redactor: remove faces from videos, frame-exact and fail-closed.

Public engine API (importable without AWS):

    from redactor import Config, plan, redact_segment, stitch, redact_file
    p = plan("in.mp4", Config())                       # probe + keyframe-aligned segments  -> Plan
    r = redact_segment("in.mp4", p.segments[0], cfg, work_dir)  # one segment -> SegmentResult (part + sidecar)
    s = stitch(p, [r, ...], "out.mp4", cfg)              # remux parts + original audio -> StitchResult
    report = redact_file("in.mp4", "out.mp4", cfg, report_path="r.json")  # all of the above, locally
"""
from .config import Config
from .errors import (ConfigError, DetectionError, InputError, ModelError, RedactorError, StitchError,
                     WorkerError)
from .records import AudioStreamInfo, Keyframe, Plan, Segment, SegmentResult, SourceInfo, StitchResult

__version__ = "0.1.0"


from .pipeline import redact_file  # noqa: E402
from .probe import plan  # noqa: E402
from .segment import redact_segment, redact_segments  # noqa: E402
from .stitch import stitch  # noqa: E402  (binds the function over the submodule attribute of the same name)

__all__ = ["Config", "plan", "redact_segment", "redact_segments", "stitch", "redact_file", "Plan", "Segment", "SegmentResult",
           "SourceInfo", "StitchResult", "AudioStreamInfo", "Keyframe", "RedactorError", "InputError",
           "ConfigError", "ModelError", "DetectionError", "WorkerError", "StitchError"]
