"""Plan segments: probe the upload, write the full plan and the Map manifest to S3, return a small summary."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import redactor
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from common import naming, s3
from common.env import engine_config, require

ENV = require("RAW_BUCKET", "WORK_BUCKET")
CONFIG = engine_config()
logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    t0 = time.monotonic()
    bucket, key, version = event["bucket"], event["key"], event.get("version")
    prefix = naming.check_work_prefix(event["work_prefix"])
    with tempfile.TemporaryDirectory(prefix="plan-") as tmp:
        source = s3.download(bucket, key, Path(tmp) / Path(key).name, version)
        plan = redactor.plan(str(source), CONFIG)
    plan_dict = plan.to_dict()
    plan_dict["source"]["path"] = f"s3://{bucket}/{key}"
    s3.put_json(ENV["WORK_BUCKET"], naming.plan_key(prefix), plan_dict)
    s3.put_json(ENV["WORK_BUCKET"], naming.manifest_key(prefix), [seg.to_dict() for seg in plan.segments])
    seconds = round(time.monotonic() - t0, 3)
    logger.info("planned", extra={"key": key, "segments": len(plan.segments), "frames": plan.frame_count})
    metrics.add_metric(name="Segments", unit=MetricUnit.Count, value=len(plan.segments))
    metrics.add_metric(name="Frames", unit=MetricUnit.Count, value=plan.frame_count)
    return {"plan_key": naming.plan_key(prefix), "manifest_key": naming.manifest_key(prefix),
            "segments": len(plan.segments), "frames": plan.frame_count, "plan_seconds": seconds}
