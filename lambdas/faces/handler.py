"""Face detection job (detector rekognition-video): one Amazon Rekognition Video job per uploaded video.

The workflow calls this function three ways (``event["action"]``):

* ``start``  -- checks the plan (H.264 in MP4/MOV, <= 10 GB, <= 6 h: refused before anything is billed), then
  ``StartFaceDetection`` on the raw object version with an idempotent ``ClientRequestToken`` (a retried
  start returns the same JobId) -> ``{job_id}``.
* ``check``  -- ``GetFaceDetection`` with one result -> ``{status}``; a FAILED job raises ``FaceDetectionFailed``
  (the workflow records the failure).
* ``save``   -- pages through ``GetFaceDetection`` and writes ``runs/<execution>/faces.json`` to the work
  bucket -> ``{faces_key, samples, faces, video_minutes}``; the segments read it.

Rekognition Video reads the S3 object with the *caller's* permissions, so this function's role has
``s3:GetObject`` on the raw bucket; no role is passed to Rekognition (no SNS notification channel: the workflow
polls with a Wait loop).
"""
from __future__ import annotations

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError
from redactor import rekognition_video as rv
from redactor.records import Plan

from common import events, obs, s3
from redactor import naming
from common.env import engine_config, require

ENV = require("RAW_BUCKET", "WORK_BUCKET")
CONFIG = engine_config()
_rekognition = None


class FaceDetectionFailed(Exception):
    """The Rekognition Video job ended FAILED (its StatusMessage says why)."""


class RekognitionThrottled(Exception):
    """Rekognition throttled us beyond botocore's retries; the workflow retries this state with backoff."""


def rekognition():
    global _rekognition
    if _rekognition is None:
        _rekognition = boto3.client("rekognition",
                                    config=BotoConfig(retries={"mode": "adaptive", "max_attempts": 8}))
    return _rekognition


def _call(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except ClientError as e:
        code = (e.response.get("Error") or {}).get("Code")
        if code in rv.THROTTLE_CODES:
            obs.metrics.add_metric(name="RekognitionThrottles", unit=obs.MetricUnit.Count, value=1)
            raise RekognitionThrottled(f"{code}: {e}") from e
        raise


def _start(event):
    run = events.Upload.from_event(event, "faces start")
    plan = Plan.from_dict(s3.get_json(ENV["WORK_BUCKET"], naming.plan_key(run.work_prefix)))
    rv.check_source(plan.source)
    job_id = _call(rv.start_job, rekognition(), run.bucket, run.key, run.version, job_tag=event.get("execution"))
    obs.logger.info("face detection started", extra={"job_id": job_id, "key": run.key})
    obs.metrics.add_metric(name="FaceDetectionJobs", unit=obs.MetricUnit.Count, value=1)
    return {"job_id": job_id}


def _check(event):
    job_id = events.field(event, "job_id", "faces check")
    status, message = _call(rv.job_status, rekognition(), job_id)
    if status == "FAILED":
        raise FaceDetectionFailed(f"Rekognition face detection job {job_id} failed: {message}")
    return {"status": status}


def _save(event):
    prefix = events.work_prefix(event, "faces save")
    job_id = events.field(event, "job_id", "faces save")
    data = _call(rv.collect_faces, rekognition(), job_id)
    key = naming.faces_key(prefix)
    s3.put_json(ENV["WORK_BUCKET"], key, data)
    summary = data["summary"]
    obs.logger.info("face detections saved", extra={"faces_key": key, **summary})
    obs.metrics.add_metric(name="RekognitionVideoMinutes", unit=obs.MetricUnit.Count, value=summary["video_minutes"])
    return {"job_id": job_id, "faces_key": key, "samples": summary["samples"], "faces": summary["faces"],
            "video_minutes": summary["video_minutes"]}


ACTIONS = {"start": _start, "check": _check, "save": _save}


@obs.handler
def handler(event, context):
    action = event.get("action")
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r} (expected start, check or save)")
    obs.logger.append_keys(action=action, key=event.get("key"))
    return ACTIONS[action](event)
