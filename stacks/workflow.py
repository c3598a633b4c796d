"""The Standard workflow: Plan segments -> Redact segments (Distributed Map) -> Stitch -> Done, every failure
caught into Record failure -> Failed. State payloads carry keys and counts only."""
from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from .functions import Functions, retention
from .settings import Settings
from .storage import Storage, removal_policy

# Lambda service errors worth retrying a few times (with exponential backoff and full jitter)
LAMBDA_TRANSIENT_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.ClientExecutionTimeoutException",
]
# Throttling (the account's concurrent executions are all in use) is retried for about an hour: 2 s doubling to
# at most 60 s, full jitter (each wait is uniform in [0, that]), 120 attempts: ~58 min on average, >= 50 min
# in 99.5 % of cases. A throttled task waits in Step Functions (no Lambda is billed) until capacity frees up.
LAMBDA_THROTTLED = "Lambda.TooManyRequestsException"
THROTTLE_RETRY = {"interval_seconds": 2, "backoff_rate": 2.0, "max_delay_seconds": 60, "max_attempts": 120}
TRANSIENT_RETRY = {"interval_seconds": 2, "backoff_rate": 2.0, "max_delay_seconds": 60, "max_attempts": 6}

STATE_NAMES = ("Plan segments", "Redact segments", "Redact segment", "Stitch", "Done", "Record failure",
               "Failed")
# inside each Map child: a failed segment records its own error and cause, then fails the child
SEGMENT_FAILURE_STATE_NAMES = ("Record segment failure", "Segment failed")
# only with detector=rekognition-video
FACE_STATE_NAMES = ("Start face detection", "Wait for face detection", "Check face detection",
                    "Face detection finished?", "Save face detections")
# raised by lambdas/faces when Rekognition still throttles after botocore's adaptive retries
REKOGNITION_THROTTLED = "RekognitionThrottled"


def _retry(task: tasks.LambdaInvoke) -> tasks.LambdaInvoke:
    for errors, policy in (([LAMBDA_THROTTLED], THROTTLE_RETRY), (LAMBDA_TRANSIENT_ERRORS, TRANSIENT_RETRY)):
        task.add_retry(errors=errors, interval=Duration.seconds(policy["interval_seconds"]),
                       max_attempts=policy["max_attempts"], backoff_rate=policy["backoff_rate"],
                       max_delay=Duration.seconds(policy["max_delay_seconds"]), jitter_strategy=sfn.JitterType.FULL)
    return task


class RunsManifestReader(sfn.S3JsonItemReader):
    """The Map's item reader, allowed to read only ``runs/*`` of the work bucket (CDK's own grants ``<bucket>/*``
    because the manifest key is only known at run time)."""

    def __init__(self, *, bucket: s3.IBucket, key: str) -> None:
        super().__init__(bucket=bucket, key=key)
        self._work_bucket = bucket

    def provide_policy_statements(self) -> list[iam.PolicyStatement]:
        return [iam.PolicyStatement(actions=["s3:GetObject"], resources=[self._work_bucket.arn_for_objects("runs/*")])]


def _run_keys() -> dict:
    return {
        "bucket": sfn.JsonPath.string_at("$.bucket"),
        "key": sfn.JsonPath.string_at("$.key"),
        "version": sfn.JsonPath.string_at("$.version"),
        "work_prefix": sfn.JsonPath.string_at("$.work_prefix"),
        "sequencer": sfn.JsonPath.string_at("$.sequencer"),  # orders uploads of the key (lambdas/common/versions.py)
        "execution": sfn.JsonPath.string_at("$$.Execution.Name"),
    }


class Workflow(Construct):
    def __init__(self, scope: Construct, cid: str, *, settings: Settings, storage: Storage,
                 functions: Functions) -> None:
        super().__init__(scope, cid)
        plan = self._plan(functions)
        redact_all = self._redact_all(settings, storage, functions)
        stitch = self._stitch(functions)
        on_failure = self._on_failure(functions)
        for state in (plan, redact_all, stitch):
            state.add_catch(on_failure, errors=["States.ALL"], result_path="$.error")

        done = sfn.Succeed(self, "Done", comment="Redacted video and report are in the output bucket")
        if functions.faces is None:
            definition = plan.next(redact_all).next(stitch).next(done)
        else:
            first_face_state = self._face_detection(settings, functions, on_failure, redact_all)
            definition = plan.next(first_face_state)
            redact_all.next(stitch).next(done)

        self.log_group = logs.LogGroup(self, "WorkflowLogs", retention=retention(settings.log_retention_days),
                                       removal_policy=removal_policy(settings))
        self.state_machine = sfn.StateMachine(
            self, "StateMachine",
            comment="redactor: remove faces from an uploaded video",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            state_machine_type=sfn.StateMachineType.STANDARD,
            timeout=Duration.hours(12),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
        )

    def _plan(self, functions: Functions) -> tasks.LambdaInvoke:
        return _retry(tasks.LambdaInvoke(
            self, "Plan segments",
            comment="Probe the upload, write the segment manifest to the work bucket; output = keys + counts",
            lambda_function=functions.plan,
            payload=sfn.TaskInput.from_object(_run_keys()),
            retry_on_service_exceptions=False,
            result_selector={
                "plan_key": sfn.JsonPath.string_at("$.Payload.plan_key"),
                "manifest_key": sfn.JsonPath.string_at("$.Payload.manifest_key"),
                "segments": sfn.JsonPath.number_at("$.Payload.segments"),
                "frames": sfn.JsonPath.number_at("$.Payload.frames"),
                "plan_seconds": sfn.JsonPath.number_at("$.Payload.plan_seconds"),
            },
            result_path="$.plan",
        ))

    def _redact_all(self, settings: Settings, storage: Storage, functions: Functions) -> sfn.DistributedMap:
        """The Distributed Map over the manifest, one Redact segment child per segment."""
        redact_one = _retry(tasks.LambdaInvoke(
            self, "Redact segment",
            comment="Redact one segment with every vCPU; the part goes to the work bucket",
            lambda_function=functions.redact,
            payload=sfn.TaskInput.from_json_path_at("$"),
            retry_on_service_exceptions=False,
            result_selector={"index": sfn.JsonPath.number_at("$.Payload.index"),
                             "frames": sfn.JsonPath.number_at("$.Payload.frames")},
        ))
        redact_one.add_catch(self._segment_failure(functions), errors=["States.ALL"], result_path="$.error")
        redact_all = sfn.DistributedMap(
            self, "Redact segments",
            comment="One child per segment from the S3 manifest; no failure tolerated",
            item_reader=RunsManifestReader(bucket=storage.work, key=sfn.JsonPath.string_at("$.plan.manifest_key")),
            item_selector={
                "segment": sfn.JsonPath.object_at("$$.Map.Item.Value"),
                "bucket": sfn.JsonPath.string_at("$.bucket"),
                "key": sfn.JsonPath.string_at("$.key"),
                "version": sfn.JsonPath.string_at("$.version"),
                "work_prefix": sfn.JsonPath.string_at("$.work_prefix"),
            },
            max_concurrency=settings.max_concurrency,
            map_execution_type=sfn.StateMachineType.STANDARD,
            label="RedactSegments",
            result_path=sfn.JsonPath.DISCARD,
        )
        redact_all.item_processor(redact_one)
        return redact_all

    def _segment_failure(self, functions: Functions) -> sfn.IChainable:
        """A Map child's catch. On AWS a failed child fails the Map with the generic
        States.ExceedToleratedFailureThreshold; so the segment's own error (DetectionError, InputError, a throttle
        that outlasted its retries, ...) is written to runs/<execution>/errors/NNNNN.json, where Record failure
        finds it, and the child fails with it."""
        record_segment_failure = _retry(tasks.LambdaInvoke(
            self, "Record segment failure",
            comment="Write runs/<execution>/errors/NNNNN.json with the segment's error and cause",
            lambda_function=functions.record_failure,
            payload=sfn.TaskInput.from_object({
                "key": sfn.JsonPath.string_at("$.key"),
                "work_prefix": sfn.JsonPath.string_at("$.work_prefix"),
                "segment": sfn.JsonPath.number_at("$.segment.index"),
                "error": sfn.JsonPath.object_at("$.error"),
            }),
            retry_on_service_exceptions=False,
            result_path=sfn.JsonPath.DISCARD,
        ))
        segment_failed = sfn.Fail(self, "Segment failed", comment="This segment failed with the error shown",
                                  error_path="$.error.Error", cause_path="$.error.Cause")
        return record_segment_failure.next(segment_failed)

    def _stitch(self, functions: Functions) -> tasks.LambdaInvoke:
        return _retry(tasks.LambdaInvoke(
            self, "Stitch",
            comment="Check every planned part, remux parts + original audio into the output bucket, report beside it",
            lambda_function=functions.stitch,
            payload=sfn.TaskInput.from_object({**_run_keys(), "plan": sfn.JsonPath.object_at("$.plan")}),
            retry_on_service_exceptions=False,
            result_selector={
                "output_key": sfn.JsonPath.string_at("$.Payload.output_key"),
                "report_key": sfn.JsonPath.string_at("$.Payload.report_key"),
                "frames": sfn.JsonPath.number_at("$.Payload.frames"),
                "bytes": sfn.JsonPath.number_at("$.Payload.bytes"),
                "superseded": sfn.JsonPath.string_at("$.Payload.superseded"),  # a newer upload owns the outputs
            },
            result_path="$.output",
        ))

    def _on_failure(self, functions: Functions) -> sfn.IChainable:
        """Record failure -> Failed: where every state of the run goes on an error it did not retry away."""
        record_failure = _retry(tasks.LambdaInvoke(
            self, "Record failure",
            comment="Write failed/<key>.json with the error and cause (a failed segment's own, when one failed), "
                    "delete the run's partial parts",
            lambda_function=functions.record_failure,
            payload=sfn.TaskInput.from_object({**_run_keys(), "error": sfn.JsonPath.object_at("$.error")}),
            retry_on_service_exceptions=False,
            result_selector={"failed_key": sfn.JsonPath.string_at("$.Payload.failed_key"),
                             "error": sfn.JsonPath.string_at("$.Payload.error"),
                             "cause": sfn.JsonPath.string_at("$.Payload.cause")},
            result_path="$.failure",
        ))
        failed = sfn.Fail(self, "Failed", comment="The run failed; see failed/<key>.json in the output bucket",
                          error_path="$.failure.error", cause_path="$.failure.cause")
        return record_failure.next(failed)

    def _face_detection(self, settings: Settings, functions: Functions, on_failure: sfn.IChainable,
                        then: sfn.IChainable) -> sfn.IChainable:
        """detector=rekognition-video: Start face detection -> Wait -> Check (loop until SUCCEEDED) -> Save face
        detections -> ``then`` (the Map). A FAILED job or any error goes to Record failure."""

        def task(name: str, comment: str, payload: dict, result_selector: dict, result_path: str):
            t = _retry(tasks.LambdaInvoke(
                self, name, comment=comment, lambda_function=functions.faces,
                payload=sfn.TaskInput.from_object(payload), retry_on_service_exceptions=False,
                result_selector=result_selector, result_path=result_path))
            t.add_retry(errors=[REKOGNITION_THROTTLED], interval=Duration.seconds(5), max_attempts=6,
                        backoff_rate=2.0, max_delay=Duration.seconds(120), jitter_strategy=sfn.JitterType.FULL)
            t.add_catch(on_failure, errors=["States.ALL"], result_path="$.error")
            return t

        job_id = sfn.JsonPath.string_at("$.faces.job_id")
        start = task("Start face detection",
                     "Rekognition Video StartFaceDetection on the upload (idempotent ClientRequestToken)",
                     {**_run_keys(), "action": "start"},
                     {"job_id": sfn.JsonPath.string_at("$.Payload.job_id")}, "$.faces")
        wait = sfn.Wait(self, "Wait for face detection", comment="Rekognition Video works on the whole video",
                        time=sfn.WaitTime.duration(Duration.seconds(settings.face_poll_seconds)))
        check = task("Check face detection", "GetFaceDetection status (one result); FAILED -> Record failure",
                     {"action": "check", "job_id": job_id},
                     {"status": sfn.JsonPath.string_at("$.Payload.status")}, "$.faces_status")
        save = task("Save face detections",
                    "Page through GetFaceDetection, write runs/<execution>/faces.json for the segments",
                    {**_run_keys(), "action": "save", "job_id": job_id},
                    {"job_id": sfn.JsonPath.string_at("$.Payload.job_id"),
                     "faces_key": sfn.JsonPath.string_at("$.Payload.faces_key"),
                     "samples": sfn.JsonPath.number_at("$.Payload.samples"),
                     "faces": sfn.JsonPath.number_at("$.Payload.faces"),
                     "video_minutes": sfn.JsonPath.number_at("$.Payload.video_minutes")}, "$.faces")
        finished = sfn.Choice(self, "Face detection finished?")
        finished.when(sfn.Condition.string_equals("$.faces_status.status", "SUCCEEDED"), save.next(then))
        finished.otherwise(wait)
        start.next(wait).next(check).next(finished)
        return start
