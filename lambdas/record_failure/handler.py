"""Record failure, called two ways by the workflow:

* from inside a Map child (``event["segment"]`` is the segment index): write the segment's own error and cause to
  ``runs/<execution>/errors/NNNNN.json`` in the work bucket; the child then fails. (On AWS a failed child fails
  the Map with the generic ``States.ExceedToleratedFailureThreshold``; this file keeps the real reason.)
* at run level (Plan, the Map or Stitch failed): write ``failed/<key>.json`` (error + cause) to the output bucket
  and delete the run's work area. When a segment recorded its error, that error and cause are the run's (the
  error that reached this state is kept as ``workflow_error``). Returns the error and cause for the Fail state.

And by EventBridge, for every run that ended (Step Functions Execution Status Change: SUCCEEDED, FAILED,
TIMED_OUT, ABORTED): a run that timed out, was aborted or failed outside the workflow's Catch gets the
``failed/<key>.json`` no state wrote, its work area deleted; and every ended run publishes one completion message
(output, report and failure keys) to the notification topic.

A run whose upload is older than the one that owns the key's outputs (lambdas/common/versions.py) writes no
failure record: the newer upload's outputs or record stand.
"""
from __future__ import annotations

import datetime as dt
import json

from common import clients, obs, s3, versions
from redactor import naming
from common.env import require
from common.events import STATUS_CHANGE, Failure, RunEnded

ENV = require("WORK_BUCKET", "OUTPUT_BUCKET", "NOTIFICATION_TOPIC_ARN")


def sns():
    return clients.client("sns")


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


def _claim(key: str, sequencer: str | None, version: str | None, execution: str | None) -> tuple[bool, dict | None]:
    claimed, found = versions.claim(ENV["WORK_BUCKET"], key, {
        "sequencer": sequencer or "", "version": version, "execution": execution, "status": "failed"})
    if not claimed:
        obs.logger.warning("a newer upload of the key owns its outputs: no failure record", extra={"newer": found})
    return claimed, found


def _run_failed(failure: Failure) -> dict:
    key, error, prefix = failure.key, failure.error, failure.work_prefix
    segment_errors = _segment_errors(prefix) if prefix else []
    reported = {"Error": error.get("Error", "Unknown"), "Cause": error.get("Cause")}
    first = segment_errors[0] if segment_errors else reported
    record = {
        "status": "FAILED",
        "source": {"bucket": failure.bucket, "key": key, "version": failure.version, "sequencer": failure.sequencer},
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
    claimed, _ = _claim(key, failure.sequencer, failure.version, failure.execution)
    if claimed:
        s3.put_json(ENV["OUTPUT_BUCKET"], failed_key, record)
    obs.logger.error("run failed", extra={"key": key, "error": record["error"], "recorded": claimed,
                                          "work_objects_deleted": record["work_objects_deleted"]})
    obs.metrics.add_metric(name="VideosFailed", unit=obs.MetricUnit.Count, value=1)
    return {"failed_key": failed_key if claimed else "", "error": record["error"],
            "cause": _cause_text(first.get("Cause"))}


def _record_ended(ended: RunEnded) -> tuple[str, str | None]:
    """A run that ended without success: its failure record unless a state wrote it or a newer upload owns the
    key. Returns (the status to notify, the failure record's key or None)."""
    run = ended.run
    deleted = s3.delete_prefix(ENV["WORK_BUCKET"], run.work_prefix)
    claimed, found = _claim(run.key, run.sequencer, run.version, ended.execution)
    if not claimed:
        return "SUPERSEDED", None
    failed_key = naming.failed_key(run.key)
    if found and found.get("execution") == ended.execution and found.get("status") == "failed":
        return ended.status, failed_key  # Record failure wrote it, with the segment's own error
    s3.put_json(ENV["OUTPUT_BUCKET"], failed_key, {
        "status": ended.status,
        "source": {"bucket": run.bucket, "key": run.key, "version": run.version, "sequencer": run.sequencer},
        "execution": ended.execution,
        "error": ended.error or {"TIMED_OUT": "States.Timeout", "ABORTED": "Aborted"}.get(ended.status, "Unknown"),
        "cause": obs.parse_cause(ended.cause),
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "work_objects_deleted": deleted,
    })
    obs.logger.error("run ended without a failure record: recorded", extra={"key": run.key, "status": ended.status})
    obs.metrics.add_metric(name="VideosFailed", unit=obs.MetricUnit.Count, value=1)
    return ended.status, failed_key


def _run_ended(event: dict) -> dict:
    ended = RunEnded.from_event(event)
    run, status, failed_key = ended.run, ended.status, None
    if status == "SUCCEEDED":
        if ((ended.output or {}).get("output") or {}).get("superseded"):
            status = "SUPERSEDED"
    else:
        status, failed_key = _record_ended(ended)
    done = status == "SUCCEEDED"
    message = {"status": status, "execution": ended.execution,
               "source": {"bucket": run.bucket, "key": run.key, "version": run.version, "sequencer": run.sequencer},
               "output_bucket": ENV["OUTPUT_BUCKET"],
               "output_key": naming.output_key(run.key) if done else None,
               "report_key": naming.report_key(run.key) if done else None,
               "report_html_key": naming.report_html_key(run.key) if done else None,
               "failed_key": failed_key, "error": None if done else ended.error}
    sns().publish(TopicArn=ENV["NOTIFICATION_TOPIC_ARN"], Subject=f"redactor: run {status}",
                  Message=json.dumps(message), MessageAttributes={
                      "status": {"DataType": "String", "StringValue": status}})
    obs.logger.info("run ended", extra={"status": status, "key": run.key, "execution": ended.execution})
    return message


@obs.handler
def handler(event, context):
    if isinstance(event, dict) and event.get("detail-type") == STATUS_CHANGE:
        return _run_ended(event)
    failure = Failure.from_event(event)
    if failure.segment is not None:
        return _record_segment(failure)
    return _run_failed(failure)
