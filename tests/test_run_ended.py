"""Runs that end outside the workflow's own failure path, and the completion message of every run.

Step Functions sends "Step Functions Execution Status Change" events to EventBridge when an execution ends;
moto emits none. So the handler is driven here with that event as the Step Functions developer guide documents
it, and the same JSON is matched against the synthesized rule's pattern with moto's EventBridge pattern engine
(the one moto routes PutEvents with; moto's TestEventPattern API is not implemented). The buckets, the topic
and a queue subscribed to it are moto's.
"""
from __future__ import annotations

import copy
import json
import os
from unittest import mock

import boto3
import pytest

from redactor import naming
from tests import aws_support as aws

moto = pytest.importorskip("moto")
from moto import mock_aws  # noqa: E402
from moto.events.models import EventPattern  # noqa: E402

REGION, ACCOUNT = "us-east-1", "123456789012"
SM_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:WorkflowStateMachine8F1B1C15-AbCdEfGh1234"
KEY = "fleet/car 7/2026-12-05 dash cam.mp4"
OLDER, NEWER = "0062B1F3A8E5C7D9A1", "0062B1F3A8E5C7D9B7"  # S3 event sequencers of two uploads of KEY


def documented_event(status: str, name: str, run_input: dict, *, output: dict | None = None,
                     error: str | None = None, cause: str | None = None) -> dict:
    """The event as documented ("Step Functions Execution Status Change": input and output are JSON strings)."""
    arn = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{SM_ARN.rsplit(':', 1)[1]}:{name}"
    return {
        "version": "0", "id": "315c1398-40ff-a850-213b-158f73e60175",
        "detail-type": "Step Functions Execution Status Change", "source": "aws.states", "account": ACCOUNT,
        "time": "2026-12-05T19:42:21Z", "region": REGION, "resources": [arn],
        "detail": {
            "executionArn": arn, "stateMachineArn": SM_ARN, "name": name, "status": status,
            "startDate": 1796485314968, "stopDate": 1796485317576 if status != "RUNNING" else None,
            "input": json.dumps(run_input), "output": json.dumps(output) if output is not None else None,
            "inputDetails": {"included": True},
            "outputDetails": {"included": True} if output is not None else None,
            "error": error, "cause": cause,
        },
    }


def _run(sequencer: str, version: str) -> tuple[str, dict]:
    name = naming.execution_name("raw", KEY, version)
    return name, naming.execution_input("raw", KEY, version, sequencer, execution=name, etag="e", size=1)


@pytest.fixture(scope="module")
def rule_pattern():
    """The synthesized run-ended rule's pattern, its state machine reference resolved to SM_ARN."""
    template = aws.synthesized_once()[0]
    (sm,) = aws.resources(template, "AWS::StepFunctions::StateMachine")
    rule = template["Resources"][aws.logical_id_of(template, "AWS::Events::Rule", "/RunEndedRule/")]
    (target,) = rule["Properties"]["Targets"]
    record_failure, _ = aws.function_by_service(template, "record_failure")
    assert target["Arn"] == {"Fn::GetAtt": [record_failure, "Arn"]} and "Arn" in target["DeadLetterConfig"]
    pattern = copy.deepcopy(rule["Properties"]["EventPattern"])
    assert pattern["detail"]["stateMachineArn"] == [{"Ref": sm}]
    pattern["detail"]["stateMachineArn"] = [SM_ARN]
    return EventPattern.load(json.dumps(pattern))


@pytest.fixture
def ended():
    """(Record failure's module, the test's S3 client, read_messages()) with moto's S3, SNS and SQS."""
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        for b in ("work", "output"):
            s3.create_bucket(Bucket=b)
        s3.put_bucket_versioning(Bucket="output", VersioningConfiguration={"Status": "Enabled"})
        sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
        topic = sns.create_topic(Name="notifications")["TopicArn"]
        url = sqs.create_queue(QueueName="subscriber")["QueueUrl"]
        queue = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue, Attributes={"RawMessageDelivery": "true"})

        def messages() -> list[dict]:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            for m in got:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            return [json.loads(m["Body"]) for m in got]

        env = {"WORK_BUCKET": "work", "OUTPUT_BUCKET": "output", "NOTIFICATION_TOPIC_ARN": topic}
        with mock.patch.dict(os.environ, env):
            from common import s3 as common_s3

            common_s3.reset_client()
            handler = aws.load_handler("record_failure")
            yield handler, s3, messages
            common_s3.reset_client()


def _call(handler, event):
    return handler.handler(event, aws.FakeContext("redactor-record-failure"))


def _keys(s3, bucket, prefix=""):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


@pytest.mark.parametrize("status,error,cause,recorded_error", [
    ("TIMED_OUT", "States.Timeout", None, "States.Timeout"),
    ("ABORTED", None, None, "Aborted"),
    ("FAILED", "States.Runtime", "An error occurred while executing the state 'Stitch'", "States.Runtime"),
])
def test_a_run_ended_outside_the_workflow_gets_its_failure_record(ended, rule_pattern, status, error, cause,
                                                                  recorded_error):
    handler, s3, messages = ended
    name, run_input = _run(NEWER, "v2")
    event = documented_event(status, name, run_input, error=error, cause=cause)
    assert rule_pattern.matches_event(event)
    s3.put_object(Bucket="work", Key=f"{run_input['work_prefix']}parts/00000.mp4", Body=b"partial")

    message = _call(handler, event)
    record = json.loads(s3.get_object(Bucket="output", Key=f"failed/{KEY}.json")["Body"].read())
    assert record["status"] == status and record["error"] == recorded_error and record["execution"] == name
    assert record["source"] == {"bucket": "raw", "key": KEY, "version": "v2", "sequencer": NEWER}
    assert record["work_objects_deleted"] == 1 and _keys(s3, "work", "runs/") == []
    assert messages() == [message]
    assert message["status"] == status and message["failed_key"] == f"failed/{KEY}.json"
    assert message["output_key"] is None and message["source"]["key"] == KEY


def test_a_recorded_failure_is_kept_and_announced_once(ended, rule_pattern):
    """A run that went through Record failure: its record (with the segment's own error) stays as written."""
    handler, s3, messages = ended
    name, run_input = _run(NEWER, "v2")
    failure = {"key": KEY, "bucket": "raw", "version": "v2", "sequencer": NEWER, "execution": name,
               "work_prefix": run_input["work_prefix"],
               "error": {"Error": "InputError", "Cause": json.dumps({"errorMessage": "not a video"})}}
    assert _call(handler, failure)["failed_key"] == f"failed/{KEY}.json"
    written = s3.get_object(Bucket="output", Key=f"failed/{KEY}.json")["Body"].read()
    assert messages() == []  # the state writes the record; the run's end announces it

    event = documented_event("FAILED", name, run_input, error="InputError", cause="not a video")
    assert rule_pattern.matches_event(event)
    message = _call(handler, event)
    assert s3.get_object(Bucket="output", Key=f"failed/{KEY}.json")["Body"].read() == written
    assert messages() == [message] and message["status"] == "FAILED"
    assert message["failed_key"] == f"failed/{KEY}.json" and message["error"] == "InputError"


def test_a_finished_run_announces_its_output_and_reports(ended, rule_pattern):
    handler, s3, messages = ended
    name, run_input = _run(NEWER, "v2")
    output = {**run_input, "output": {"output_key": f"redacted/{KEY}", "report_key": f"redacted/{KEY}.report.json",
                                      "frames": 30, "bytes": 1000, "superseded": False}}
    event = documented_event("SUCCEEDED", name, run_input, output=output)
    assert rule_pattern.matches_event(event)
    message = _call(handler, event)
    assert messages() == [message]
    assert message == {
        "status": "SUCCEEDED", "execution": name,
        "source": {"bucket": "raw", "key": KEY, "version": "v2", "sequencer": NEWER}, "output_bucket": "output",
        "output_key": f"redacted/{KEY}", "report_key": f"redacted/{KEY}.report.json",
        "report_html_key": f"redacted/{KEY}.report.html", "failed_key": None, "error": None}
    assert _keys(s3, "output") == []


def test_an_older_upload_ending_last_leaves_no_failure_record_beside_newer_output(ended):
    handler, s3, messages = ended
    newer_name, newer_input = _run(NEWER, "v2")
    older_name, older_input = _run(OLDER, "v1")
    # the newer upload's run claimed the key (its Stitch did, before writing the outputs)
    from common import versions

    assert versions.claim("work", KEY, {"sequencer": NEWER, "version": "v2", "execution": newer_name,
                                        "status": "succeeded"}) == (True, None)
    message = _call(handler, documented_event("TIMED_OUT", older_name, older_input, error="States.Timeout"))
    assert message["status"] == "SUPERSEDED" and message["failed_key"] is None
    assert _keys(s3, "output", "failed/") == []
    assert messages() == [message]


def test_events_of_other_runs_do_not_match(rule_pattern):
    name, run_input = _run(NEWER, "v2")
    assert not rule_pattern.matches_event(documented_event("RUNNING", name, run_input))
    other = documented_event("FAILED", name, run_input, error="States.Runtime")
    other["detail"]["stateMachineArn"] = SM_ARN.replace("AbCdEfGh1234", "Other")
    assert not rule_pattern.matches_event(other)
