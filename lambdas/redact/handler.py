"""Redact one segment (one Distributed Map item): the engine's worker pool uses every vCPU of the function.

Writes the part, its detections sidecar and finally results/NNNNN.json (the commit marker Stitch checks).
Returns only the index and frame count, so the Map's collected output stays tiny.
"""
from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

import redactor
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from redactor.records import Segment

from common import naming, s3
from common.env import engine_config, require

ENV = require("RAW_BUCKET", "WORK_BUCKET")
CONFIG = engine_config()
logger = Logger()
tracer = Tracer()
metrics = Metrics()
_source_cache: dict = {}  # warm containers often get several segments of the same upload
_faces_cache: dict = {}  # rekognition-video: the run's faces file


def _source(bucket: str, key: str, version: str | None) -> Path:
    ident = (bucket, key, version)
    cached = _source_cache.get("ident") == ident and Path(_source_cache["path"])
    if cached and cached.is_file():
        return cached
    if _source_cache.get("dir"):
        shutil.rmtree(_source_cache["dir"], ignore_errors=True)
    d = tempfile.mkdtemp(prefix="source-")
    path = s3.download(bucket, key, Path(d) / Path(key).name, version)
    _source_cache.update(ident=ident, path=str(path), dir=d)
    return path


def _config(prefix: str):
    """The engine settings for this run: for rekognition-video, the run's faces file (cached per run)."""
    if CONFIG.detector != "rekognition-video":
        return CONFIG
    key = naming.faces_key(prefix)
    if _faces_cache.get("key") != key or not Path(_faces_cache.get("path", "")).is_file():
        d = _faces_cache.get("dir") or tempfile.mkdtemp(prefix="faces-")
        _faces_cache.update(key=key, dir=d, path=str(s3.download(ENV["WORK_BUCKET"], key, Path(d) / "faces.json")))
    return dataclasses.replace(CONFIG, faces_path=_faces_cache["path"])


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    bucket, key, version = event["bucket"], event["key"], event.get("version")
    prefix = naming.check_work_prefix(event["work_prefix"])
    segment = Segment.from_dict(event["segment"])
    logger.append_keys(segment=segment.index, key=key)
    source = _source(bucket, key, version)
    with tempfile.TemporaryDirectory(prefix="segment-") as work:
        result = redactor.redact_segment(str(source), segment, _config(prefix), work)
        part_key = naming.part_key(prefix, segment.index, Path(result.part).suffix)
        det_key = naming.detections_key(prefix, segment.index)
        part_bytes = s3.upload(result.part, ENV["WORK_BUCKET"], part_key)
        s3.upload(result.detections, ENV["WORK_BUCKET"], det_key, "application/json")
    result.part, result.detections = part_key, det_key
    s3.put_json(ENV["WORK_BUCKET"], naming.result_key(prefix, segment.index),
                {"result": result.to_dict(), "part_bytes": part_bytes})
    logger.info("segment redacted", extra={"frames": result.frames, "faces": result.faces,
                                           "seconds": result.wall_seconds})
    metrics.add_metric(name="FramesRedacted", unit=MetricUnit.Count, value=result.frames)
    metrics.add_metric(name="FacesDetected", unit=MetricUnit.Count, value=result.faces)
    metrics.add_metric(name="SegmentSeconds", unit=MetricUnit.Seconds, value=result.wall_seconds)
    return {"index": segment.index, "frames": result.frames}
