"""redactor: remove faces from videos, frame-exact and fail-closed.

Public engine API (importable without AWS):

    from redactor import Config, plan, redact_segment, stitch, redact_file
    p = plan("in.mp4", Config())                       # probe + keyframe-aligned segments  -> Plan
    r = redact_segment("in.mp4", p.segments[0], cfg, work_dir)  # one segment -> SegmentResult (part + sidecar)
    s = stitch(p, [r, ...], "out.mp4", cfg)              # remux parts + original audio -> StitchResult
    report = redact_file("in.mp4", "out.mp4", cfg, report_path="r.json")  # all of the above, locally
    # + report_html_path="r.html": the visual report (redactor/report_html.py)
"""
from .config import Config
from .errors import (ConfigError, DetectionError, InputError, ModelError, RedactorError, StitchError,
                     WorkerError)
from .records import AudioStreamInfo, Keyframe, Plan, Segment, SegmentResult, SourceInfo, StitchResult

__version__ = "0.1.0"


# Lazy wrappers keep ``import redactor`` light (records/config/errors only): the Lambda starter and
# failure recorder import it without PyAV/OpenCV layers.
def plan(source, config=None):
    from .probe import plan as _plan
    return _plan(source, config)


def redact_segment(source, segment, config, work_dir, detector_factory=None, progress=None, source_info=None):
    from .segment import redact_segment as _rs
    return _rs(source, segment, config, work_dir, detector_factory=detector_factory, progress=progress,
               source_info=source_info)


def redact_segments(source, segments, config, work_dir, detector_factory=None, progress=None, source_info=None):
    from .segment import redact_segments as _rs
    return _rs(source, segments, config, work_dir, detector_factory=detector_factory, progress=progress,
               source_info=source_info)


def stitch(plan, parts, output, config=None):
    from .remux import stitch as _stitch
    return _stitch(plan, parts, output, config)


def redact_file(source, output, config=None, report_path=None, detector_factory=None, progress=None,
                report_html_path=None):
    from .pipeline import redact_file as _rf
    return _rf(source, output, config, report_path=report_path, detector_factory=detector_factory,
               progress=progress, report_html_path=report_html_path)


__all__ = ["Config", "plan", "redact_segment", "redact_segments", "stitch", "redact_file", "Plan", "Segment", "SegmentResult",
           "SourceInfo", "StitchResult", "AudioStreamInfo", "Keyframe", "RedactorError", "InputError",
           "ConfigError", "ModelError", "DetectionError", "WorkerError", "StitchError"]
