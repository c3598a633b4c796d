"""Redact one segment (one Distributed Map item, or one segment of a live chunk the live function fans out,
``redactor.live.fanout``): the engine's worker pool uses every vCPU of the function.
Each worker reads the upload in place (ranged GETs): the container index and its own frames, never the file.

Writes the part, its detections sidecar and finally results/NNNNN.json (the commit marker Stitch checks).
Returns only the index and frame count, so the Map's collected output stays tiny.
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import redactor
from redactor.detectors import uses_faces_file
from redactor.records import Segment, SourceInfo
from redactor.remote import prepare_fork, s3_url

from common import events, obs, s3
from redactor import naming
from common.env import engine_config, require

ENV = require("RAW_BUCKET", "WORK_BUCKET")
CONFIG = engine_config()
prepare_fork()  # the S3 client the forked workers read the upload with, made before any fork
_info_cache: dict = {}  # warm containers often get several segments of the same upload
_faces_cache: dict = {}  # rekognition-video: the run's faces file


def _source_info(prefix: str) -> SourceInfo:
    """The upload's probed facts, written by Plan (so no container probes the whole video again)."""
    key = naming.source_key(prefix)
    if _info_cache.get("key") != key:
        _info_cache.update(key=key, info=SourceInfo.from_dict(s3.get_json(ENV["WORK_BUCKET"], key)))
    return _info_cache["info"]


def _config(prefix: str):
    """The engine settings for this run, with the run's faces file when the detector reads one (cached)."""
    if not uses_faces_file(CONFIG):
        return CONFIG
    key = naming.faces_key(prefix)
    if _faces_cache.get("key") != key or not Path(_faces_cache.get("path", "")).is_file():
        d = _faces_cache.get("dir") or tempfile.mkdtemp(prefix="faces-")
        _faces_cache.update(key=key, dir=d, path=str(s3.download(ENV["WORK_BUCKET"], key, Path(d) / "faces.json")))
    return dataclasses.replace(CONFIG, faces_path=_faces_cache["path"])


@obs.handler
def handler(event, context):
    run = events.Upload.from_event(event, "redact")
    bucket, key, version, prefix = run.bucket, run.key, run.version, run.work_prefix
    segment = events.segment(event, "redact")
    obs.logger.append_keys(segment=segment.index, key=key)
    source = s3_url(bucket, key, version)  # read in place: the index and this segment's frames only
    with tempfile.TemporaryDirectory(prefix="segment-") as work:
        result = redactor.redact_segment(source, segment, _config(prefix), work, source_info=_source_info(prefix))
        part_key = naming.part_key(prefix, segment.index, Path(result.part).suffix)
        det_key = naming.detections_key(prefix, segment.index)
        part_bytes = s3.upload(result.part, ENV["WORK_BUCKET"], part_key)
        s3.upload(result.detections, ENV["WORK_BUCKET"], det_key, "application/json")
    result.part, result.detections = part_key, det_key
    s3.put_json(ENV["WORK_BUCKET"], naming.result_key(prefix, segment.index),
                {"result": result.to_dict(), "part_bytes": part_bytes})
    obs.logger.info("segment redacted", extra={"frames": result.frames, "faces": result.faces,
                                               "seconds": result.wall_seconds})
    obs.metrics.add_metric(name="FramesRedacted", unit=obs.MetricUnit.Count, value=result.frames)
    obs.metrics.add_metric(name="FacesDetected", unit=obs.MetricUnit.Count, value=result.faces)
    obs.metrics.add_metric(name="SegmentSeconds", unit=obs.MetricUnit.Seconds, value=result.wall_seconds)
    return {"index": segment.index, "frames": result.frames}
