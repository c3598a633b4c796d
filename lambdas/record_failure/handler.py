"""Record failure, called two ways by the workflow:

* from inside a Map child (``event["segment"]`` is the segment index): write the segment's own error and cause to
  ``runs/<execution>/errors/NNNNN.json`` in the work bucket; the child then fails. (On AWS a failed child fails
  the Map with the generic ``States.ExceedToleratedFailureThreshold``; this file keeps the real reason.)
* at run level (Plan, the Map or Stitch failed): write ``failed/<key>.json`` (error + cause) to the output bucket
  and delete the run's work area. When a segment recorded its error, that error and cause are the run's (the
  error that reached this state is kept as ``workflow_error``). Returns the error and cause for the Fail state.
"""
from __future__ import annotations

import datetime as dt
import json

from common import obs, s3
from redactor import naming
from common.env import require
from common.events import Failure

ENV = require("WORK_BUCKET", "OUTPUT_BUCKET")


def segment_error_key(prefix: str, index: int) -> str:
    return f"{prefix}errors/{int(index):05d}.json"


def _cause_text(cause) -> str:
    """The Fail state's Cause must be a string: keep Step Functions' own string, else JSON of what we have."""
    if isinstance(cause, str):
        return cause
    return "unknown" if cause is None else json.dumps(cause, separators=(",", ":"))


def _record_segment(failure: Failure) -> dict:
    error = failure.error
    key = segment_error_key(failure.work_prefix, failure.segment)
    s3.put_json(ENV["WORK_BUCKET"], key, {"segment": failure.segment, "Error": error.get("Error", "Unknown"),
                                          "Cause": error.get("Cause")})
    obs.logger.error("segment failed", extra={"key": failure.key, "segment": failure.segment,
                                              "error": error.get("Error")})
    obs.metrics.add_metric(name="SegmentsFailed", unit=obs.MetricUnit.Count, value=1)
    return {"error_key": key}


def _segment_errors(prefix: str) -> list[dict]:
    """Errors recorded by failed segments of this run, lowest segment first."""
    keys = sorted(s3.list_keys(ENV["WORK_BUCKET"], f"{prefix}errors/"))
    return [s3.get_json(ENV["WORK_BUCKET"], k) for k in keys]


@obs.handler
def handler(event, context):
    failure = Failure.from_event(event)
    if failure.segment is not None:
        return _record_segment(failure)
    key, error, prefix = failure.key, failure.error, failure.work_prefix
    segment_errors = _segment_errors(prefix) if prefix else []
    reported = {"Error": error.get("Error", "Unknown"), "Cause": error.get("Cause")}
    first = segment_errors[0] if segment_errors else reported
    record = {
        "status": "FAILED",
        "source": {"bucket": failure.bucket, "key": key, "version": failure.version},
        "execution": failure.execution,
        "error": first.get("Error") or "Unknown",
        "cause": obs.parse_cause(first.get("Cause")),
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if segment_errors:
        record["failed_segment"] = first["segment"]
        record["segments_failed"] = [e["segment"] for e in segment_errors]
        record["workflow_error"] = {"error": reported["Error"], "cause": obs.parse_cause(reported["Cause"])}
    record["work_objects_deleted"] = s3.delete_prefix(ENV["WORK_BUCKET"], prefix) if prefix else 0
    failed_key = naming.failed_key(key)
    s3.put_json(ENV["OUTPUT_BUCKET"], failed_key, record)
    obs.logger.error("run failed", extra={"key": key, "error": record["error"],
                                          "work_objects_deleted": record["work_objects_deleted"]})
    obs.metrics.add_metric(name="VideosFailed", unit=obs.MetricUnit.Count, value=1)
    return {"failed_key": failed_key, "error": record["error"], "cause": _cause_text(first.get("Cause"))}
