"""failed/<key>.json carries the real reason and never outlives a later success.

* On AWS a failed Distributed Map child fails the Map with the generic ``States.ExceedToleratedFailureThreshold``;
  moto instead reports the Map as SUCCEEDED (see tests/test_workflow_e2e.py, where Stitch then fails). So the AWS
  path is driven here through the real Record failure handler with the documented shapes: the child's Catch
  output (a Lambda error: ``Error`` = the exception's type, ``Cause`` = the JSON error string) and the Map's
  ``States.ExceedToleratedFailureThreshold`` reaching the run-level Catch.
* A stale ``failed/<key>.json`` is removed by a later successful run of the same key (moto workflow).
"""
from __future__ import annotations

import json
import os
from unittest import mock

import boto3
import pytest

from tests import aws_support as aws
from tests.test_workflow_e2e import Pipeline

moto = pytest.importorskip("moto")
from moto import mock_aws  # noqa: E402

PREFIX = "runs/drive-0123456789abcdef01234567/"


def _lambda_error(error_type: str, message: str) -> dict:
    """What a Lambda task's Catch puts at ResultPath for an unhandled exception (Error + Cause as a string)."""
    return {"Error": error_type, "Cause": json.dumps({"errorType": error_type, "errorMessage": message,
                                                       "stackTrace": ["  File \"/var/task/handler.py\" ..."]})}


@pytest.fixture
def record_failure():
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        for b in ("work", "output"):
            s3.create_bucket(Bucket=b)
        topic = boto3.client("sns", region_name="us-east-1").create_topic(Name="notifications")["TopicArn"]
        with mock.patch.dict(os.environ, {"WORK_BUCKET": "work", "OUTPUT_BUCKET": "output",
                                          "NOTIFICATION_TOPIC_ARN": topic}):
            from common import s3 as common_s3

            common_s3.reset_client()
            yield aws.load_handler("record_failure"), s3
            common_s3.reset_client()


def test_map_failure_on_aws_reports_the_segment_error(record_failure):
    handler, s3 = record_failure
    ctx = aws.FakeContext("redactor-record-failure")
    s3.put_object(Bucket="work", Key=f"{PREFIX}parts/00000.mp4", Body=b"partial")
    # two children fail; each child's Catch -> Record segment failure (payload as the state machine builds it)
    for index, error in ((3, _lambda_error("DetectionError", "segment 3: the model returned NaN boxes")),
                         (5, _lambda_error("Lambda.TooManyRequestsException", "Rate Exceeded."))):
        out = handler.handler({"key": "fleet/drive.mp4", "work_prefix": PREFIX, "segment": index, "error": error},
                              ctx)
        assert out == {"error_key": f"{PREFIX}errors/{index:05d}.json"}
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="output").get("Contents", [])] == []

    # the Map fails with the generic error; the run-level Catch hands it to Record failure
    generic = {"Error": "States.ExceedToleratedFailureThreshold",
               "Cause": "The specified tolerated failure threshold was exceeded"}
    out = handler.handler({"bucket": "raw", "key": "fleet/drive.mp4", "version": "v1", "work_prefix": PREFIX,
                           "execution": "drive-0123456789abcdef01234567", "error": generic}, ctx)
    assert out["failed_key"] == "failed/fleet/drive.mp4.json"
    # what the Fail state shows: the first failed segment's own error and cause (a string, as Fail needs)
    assert out["error"] == "DetectionError"
    assert isinstance(out["cause"], str) and "NaN boxes" in out["cause"]

    record = json.loads(s3.get_object(Bucket="output", Key=out["failed_key"])["Body"].read())
    assert record["error"] == "DetectionError"
    assert record["cause"]["errorMessage"] == "segment 3: the model returned NaN boxes"
    assert record["failed_segment"] == 3 and record["segments_failed"] == [3, 5]
    assert record["workflow_error"] == {"error": "States.ExceedToleratedFailureThreshold",
                                        "cause": "The specified tolerated failure threshold was exceeded"}
    assert record["source"] == {"bucket": "raw", "key": "fleet/drive.mp4", "version": "v1", "sequencer": None}
    assert s3.list_objects_v2(Bucket="work", Prefix="runs/").get("KeyCount") == 0  # parts and error files deleted


def test_failure_without_a_segment_error_keeps_the_state_error(record_failure):
    handler, s3 = record_failure
    out = handler.handler({"bucket": "raw", "key": "a.mp4", "work_prefix": PREFIX,
                           "error": _lambda_error("InputError", "a.mp4: not a video")},
                          aws.FakeContext("redactor-record-failure"))
    assert out["error"] == "InputError" and "not a video" in out["cause"]
    record = json.loads(s3.get_object(Bucket="output", Key="failed/a.mp4.json")["Body"].read())
    assert record["error"] == "InputError" and "workflow_error" not in record and "failed_segment" not in record


@pytest.fixture
def pipeline(model_path, tmp_path):
    config = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    with mock_aws(config=config):
        p = Pipeline(aws.synthesized_once()[0], model_path, tmp_path,
                     engine_env={"REDACTOR_SEGMENT_SECONDS": "1", "REDACTOR_WORKERS": "1"})
        with p.running():
            yield p


def test_successful_rerun_removes_the_stale_failure_record(pipeline, media, tmp_path):
    key = "fleet/retry.mp4"
    bad = tmp_path / "retry.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2048))
    first = pipeline.deliver(pipeline.upload(str(bad), key))
    assert pipeline.wait(first["executionArn"])["status"] == "FAILED"
    assert pipeline.keys(pipeline.output) == [f"failed/{key}.json"]

    clip = media("retry_ok.mp4", width=160, height=120, seconds=1, audio=None, faces=0)
    second = pipeline.deliver(pipeline.upload(clip["path"], key))  # a new version of the same key
    assert second["execution"] != first["execution"]
    assert pipeline.wait(second["executionArn"])["status"] == "SUCCEEDED"
    outputs = pipeline.keys(pipeline.output)
    assert f"failed/{key}.json" not in outputs, outputs
    assert {f"redacted/{key}", f"redacted/{key}.report.json"} <= set(outputs)
    assert all(k.startswith(f"redacted/{key}") for k in outputs), outputs


def test_handler_flushes_its_metrics_and_logs_with_the_invocation_context(record_failure, capsys, monkeypatch):
    """common.obs.handler: the add_metric calls leave as one EMF record under the environment's namespace and
    service; log lines carry the Lambda context (inject_lambda_context)."""
    import sys

    from common import obs

    handler, _s3 = record_failure
    monkeypatch.setattr(obs.logger.registered_handler, "stream", sys.stdout)  # the Logger kept the stdout of its import
    handler.handler({"key": "a.mp4", "work_prefix": PREFIX, "segment": 2, "error": _lambda_error("X", "boom")},
                    aws.FakeContext("redactor-record-failure"))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    (emf,) = [rec for rec in lines if "_aws" in rec]
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == os.environ["POWERTOOLS_METRICS_NAMESPACE"]
    assert [m["Name"] for m in directive["Metrics"]] == ["SegmentsFailed"] and emf["SegmentsFailed"] == [1.0]
    (log,) = [rec for rec in lines if rec.get("message") == "segment failed"]
    assert log["function_name"] == "redactor-record-failure" and log["segment"] == 2
