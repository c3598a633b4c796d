"""Record failure: write failed/<key>.json (error + cause) to the output bucket and delete the run's partial
parts from the work area. The workflow then ends in its Fail state."""
from __future__ import annotations

import datetime as dt

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from common import naming, s3
from common.env import require
from common.obs import parse_cause

ENV = require("WORK_BUCKET", "OUTPUT_BUCKET")
logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    key = event["key"]
    error = event.get("error") or {}
    record = {
        "status": "FAILED",
        "source": {"bucket": event.get("bucket"), "key": key, "version": event.get("version")},
        "execution": event.get("execution"),
        "error": error.get("Error", "Unknown"),
        "cause": parse_cause(error.get("Cause")),
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    deleted = 0
    prefix = event.get("work_prefix")
    if prefix:
        deleted = s3.delete_prefix(ENV["WORK_BUCKET"], naming.check_work_prefix(prefix))
    record["work_objects_deleted"] = deleted
    failed_key = naming.failed_key(key)
    s3.put_json(ENV["OUTPUT_BUCKET"], failed_key, record)
    logger.error("run failed", extra={"key": key, "error": record["error"], "work_objects_deleted": deleted})
    metrics.add_metric(name="VideosFailed", unit=MetricUnit.Count, value=1)
    return {"failed_key": failed_key, "error": record["error"]}
