"""Face detectors behind one protocol (``base.Detector``). ``make_detector`` is the only place that names the
backends: ``centerface`` and ``yunet`` (local models, two-tier), ``rekognition`` (DetectFaces per sampled frame) and
``rekognition-video`` (boxes from the workflow's video job, ``precomputed``). A backend module imports only
``base`` (and the pure box/tracking code), never another backend or this package.

Importing the package loads nothing heavy — no numpy, model, OpenCV or boto3 — because functions without the
vision layer (Stitch: no numpy there) import it for ``uses_faces_file``/``run_report_fields``; the protocol and
the backends are imported on first use (``make_detector``, or ``from redactor.detectors import CenterFace``).
``tests/test_deployed_runtime.py`` runs Stitch with only its own layers and fails if this imports numpy."""
from __future__ import annotations

import importlib

from ..errors import DetectionError

# public name -> module that defines it (imported on first use, PEP 562)
_LAZY = {"Detector": "base", "BaseDetector": "base", "CenterFace": "centerface", "YuNet": "yunet",
         "RekognitionDetector": "rekognition", "PrecomputedFacesDetector": "precomputed"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _rekognition_video(settings, source):
    from ..rekognition_video import load_faces
    from .precomputed import PrecomputedFacesDetector

    if not settings.faces_path:
        raise DetectionError("detector rekognition-video needs a faces file (faces_path): it is written by the "
                             "AWS workflow's face-detection job, or pass one with --faces")
    return PrecomputedFacesDetector(settings, source, load_faces(settings.faces_path))


def _backend(name: str):
    return lambda settings, source: __getattr__(name)(settings, source)


FACTORIES = {
    "centerface": _backend("CenterFace"),  # OpenCV is imported when one is built
    "yunet": _backend("YuNet"),  # likewise; the model is vendored (redactor/models/)
    "rekognition": _backend("RekognitionDetector"),  # boto3 likewise
    "rekognition-video": _rekognition_video,
}


# What the schedule needs to know of a backend before one is built (the plan computes schedules without numpy
# or OpenCV): the two-tier ones get a coarse pass, a fine pass every ``fine_ms`` and on the video's last frame,
# and small-face tracking (``schedule.Schedule``); the others are sampled every ``detect_every``/
# ``rekognition_every`` frames (single tier). Each worker may still fall back to single tier where the coarse
# pass would not pay (``Detector.two_tier(width, height)``: tiny frames).
TWO_TIER = frozenset({"centerface", "yunet"})


def is_two_tier(name: str) -> bool:
    """Whether the detector called ``name`` is a two-tier (coarse + fine + tracking) local model."""
    return name in TWO_TIER


# Each backend's own value of the detection settings that default to 0 ("the detector's own") in
# ``config.DetectionSettings``; a Config fills them in when it is made, so plans carry the values used.
# Measured: docs/detectors.md and docs/benchmarks.md.
# The Rekognition backends use CenterFace's values (only the threshold means anything to them).
OWN_SETTINGS = {
    "centerface": {"threshold": 0.35, "coarse_width": 960},
    "yunet": {"threshold": 0.35, "coarse_width": 640},  # measured: 1080p GT recall 0.990 at 960, 1.000 at 640
}


def own_defaults(name: str) -> dict:
    """The settings detector ``name`` uses where a Config leaves them 0."""
    return dict(OWN_SETTINGS.get(name, OWN_SETTINGS["centerface"]))


def uses_faces_file(settings) -> bool:
    """Whether the detector reads the run's faces file (``settings.faces_path``): ``rekognition-video``, whose
    boxes come from the workflow's video job. The Redact and Stitch adapters fetch that file for the run."""
    return settings.detector == "rekognition-video"


def run_report_fields(settings) -> dict:
    """What the detector records once per video in the report's ``detector`` section (beyond the per-segment
    counts): for ``rekognition-video`` its video job, minutes and cost, read from the run's faces file."""
    if not uses_faces_file(settings):
        return {}
    from ..rekognition_video import load_faces, report_fields

    return report_fields(load_faces(settings.faces_path), settings.rekognition_video_price_per_minute)


def make_detector(settings, source=None) -> Detector:
    """The detector ``settings.detector`` names, for a video described by ``source`` (SourceInfo). Built once
    in each worker process."""
    try:
        factory = FACTORIES[settings.detector]
    except KeyError:
        raise DetectionError(f"detector {settings.detector!r} cannot run per segment here") from None
    return factory(settings, source)
