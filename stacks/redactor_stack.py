"""The redactor stack: storage, functions, workflow, trigger and monitoring, with cdk-nag suppressions."""
from __future__ import annotations

import json

from aws_cdk import Acknowledgment, CfnOutput, Duration, Fn, Stack, Token, Validations
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from redactor import naming

from .functions import Functions, retention
from .monitoring import Monitoring
from .settings import Settings
from .storage import Storage, removal_policy
from .workflow import Workflow


def max_key_bytes() -> int:
    """The longest upload key whose derived keys (redactor.naming: the video, its reports, its failure record)
    all fit S3's key limit."""
    longest = max(len(f("").encode()) for f in (naming.output_key, naming.report_key, naming.report_html_key,
                                                naming.failed_key))
    return naming.MAX_KEY_BYTES - longest


class RedactorStack(Stack):
    def __init__(self, scope: Construct, cid: str, *, settings: Settings | None = None, **kwargs) -> None:
        super().__init__(scope, cid, **kwargs)
        self.settings = settings or Settings.from_context(self.node.try_get_context)
        self.storage = Storage(self, "Storage", settings=self.settings)
        self.functions = Functions(self, "Functions", settings=self.settings, storage=self.storage)
        self.workflow = Workflow(self, "Workflow", settings=self.settings, storage=self.storage,
                                 functions=self.functions)
        sm = self.workflow.state_machine
        self.functions.start.add_environment("STATE_MACHINE_ARN", sm.state_machine_arn)
        sm.grant_start_execution(self.functions.start)

        # S3 "Object Created" (EventBridge) for video suffixes -> starter
        self.starter_dlq = sqs.Queue(self, "StarterDeadLetters", enforce_ssl=True,
                                     encryption=sqs.QueueEncryption.SQS_MANAGED,
                                     retention_period=Duration.days(14))
        suffixes = sorted(set(self.settings.video_suffixes))
        self.upload_rule = events.Rule(
            self, "UploadRule",
            description="Start a redaction run for every video uploaded to the raw bucket",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [self.storage.raw.bucket_name]},
                    "object": {"key": [{"suffix": {"equals-ignore-case": s}} for s in suffixes]},
                },
            ),
            targets=[targets.LambdaFunction(self.functions.start, dead_letter_queue=self.starter_dlq,
                                            retry_attempts=8, max_event_age=Duration.hours(6))],
        )
        # The rule's DLQ only receives events EventBridge could not deliver. When the starter itself fails
        # (StartExecution throttled or denied, ...), Lambda retries the async event twice and then sends a record
        # to the same queue, so the UploadsNotStarted alarm sees both.
        self.functions.start.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.starter_dlq), retry_attempts=2,
            max_event_age=Duration.hours(6))
        self._run_ended()
        self._helper_logs()
        self.monitoring = Monitoring(self, "Monitoring", state_machine=sm, starter_dlq=self.starter_dlq,
                                     functions=self.functions.all, run_event_dlq=self.run_event_dlq)

        CfnOutput(self, "RawBucketName", value=self.storage.raw.bucket_name,
                  description="Upload videos here (s3://<this>/<any key>.mp4)")
        CfnOutput(self, "OutputBucketName", value=self.storage.output.bucket_name,
                  description="redacted/<key>, redacted/<key>.report.json, failed/<key>.json")
        CfnOutput(self, "WorkBucketName", value=self.storage.work.bucket_name)
        CfnOutput(self, "StateMachineArn", value=sm.state_machine_arn)
        # what `redactor cloud` (redactor/cloud/stack.py) reads to refuse, before uploading, what this
        # deployment would not redact
        CfnOutput(self, "AcceptedSuffixes", value=",".join(suffixes),
                  description="Key suffixes the upload rule starts a run for (any letter case)")
        CfnOutput(self, "MaxKeyBytes", value=str(max_key_bytes()),
                  description="Longest upload key (UTF-8 bytes) whose redacted/ and failed/ keys fit S3's limit")
        CfnOutput(self, "NotificationTopicArn", value=self.notifications.topic_arn,
                  description="Subscribe here: one message per upload when its run ends (status, output, report and "
                              "failure keys)")
        CfnOutput(self, "StarterDeadLetterQueueUrl", value=self.starter_dlq.queue_url,
                  description="Upload events the starter could not turn into a run (the event is in the message)")
        CfnOutput(self, "RunEventDeadLetterQueueUrl", value=self.run_event_dlq.queue_url,
                  description="Run-ended events Record failure could not handle (the event is in the message)")
        CfnOutput(self, "DashboardName", value=self.monitoring.dashboard.dashboard_name,
                  description="CloudWatch dashboard: runs, output, frames/s, segment times, Lambda health, DLQ")
        self._suppressions()

    def _run_ended(self) -> None:
        """Every run's end (Step Functions Execution Status Change) -> Record failure: the failure record of a run
        that timed out, was aborted or failed outside the workflow's Catch, and one completion message per run on
        the notification topic."""
        fn, sm = self.functions.record_failure, self.workflow.state_machine
        self.notifications = sns.Topic(
            self, "Notifications", display_name="redactor runs", enforce_ssl=True,
            master_key=kms.Alias.from_alias_name(self, "SnsManagedKey", "alias/aws/sns"))
        fn.add_environment("NOTIFICATION_TOPIC_ARN", self.notifications.topic_arn)
        fn.add_to_role_policy(iam.PolicyStatement(actions=["sns:Publish"], resources=[self.notifications.topic_arn]))
        self.run_event_dlq = sqs.Queue(self, "RunEventDeadLetters", enforce_ssl=True,
                                       encryption=sqs.QueueEncryption.SQS_MANAGED, retention_period=Duration.days(14))
        self.run_ended_rule = events.Rule(
            self, "RunEndedRule",
            description="Record runs that timed out, were aborted or failed outside the workflow; notify every end",
            event_pattern=events.EventPattern(
                source=["aws.states"], detail_type=["Step Functions Execution Status Change"],
                detail={"stateMachineArn": [sm.state_machine_arn],
                        "status": ["SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"]}),
            targets=[targets.LambdaFunction(fn, dead_letter_queue=self.run_event_dlq, retry_attempts=8,
                                            max_event_age=Duration.hours(6))],
        )

    def _helper_logs(self) -> None:
        """CDK's own bucket-notifications function writes to /aws/lambda/<its name>: that log group, made here
        first (before the function runs) with the stack's retention instead of never expiring."""
        handler = self.node.try_find_child("BucketNotificationsHandler050a0587b7544547bf325f094a3db834")
        if handler is None:
            return
        function = handler.node.find_child("Resource")
        self.helper_logs = logs.LogGroup(
            self, "BucketNotificationsHandlerLogs", retention=retention(self.settings.log_retention_days),
            log_group_name=Fn.join("", ["/aws/lambda/", function.ref]),
            removal_policy=removal_policy(self.settings))
        notifications = self.storage.raw.node.find_child("Notifications").node.default_child
        notifications.node.add_dependency(self.helper_logs)

    def _logical_id(self, construct) -> str:
        return self.resolve(self.get_logical_id(construct.node.default_child))

    def _ack(self, scope, rule: str, reason: str, findings=(None,)) -> None:
        """Acknowledge (cdk-nag v3) one AwsSolutions rule, or the listed findings of it, with a reason."""
        for finding in findings:
            rid = f"AwsSolutions::{rule}" + (f"[{finding}]" if finding else "")
            Validations.of(scope).acknowledge(Acknowledgment(id=rid, reason=reason))

    def _suppressions(self) -> None:
        """Every cdk-nag finding this stack accepts, each with its reason (see README, "Serverless on AWS")."""
        raw, work, output = (self._logical_id(b) for b in (self.storage.raw, self.storage.work, self.storage.output))
        fns = self.functions
        self._ack(self.starter_dlq, "AwsSolutions-SQS3",
                  "This queue is the dead-letter queue of the upload rule's target; it needs none itself.")
        self._ack(self.run_event_dlq, "AwsSolutions-SQS3",
                  "This queue is the dead-letter queue of the run-ended rule's target; it needs none itself.")
        basic_role = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
        self._ack(fns, "AwsSolutions-IAM4", "AWSLambdaBasicExecutionRole only lets a function write its own "
                  "CloudWatch Logs streams.", [basic_role])
        handler = self.node.try_find_child("BucketNotificationsHandler050a0587b7544547bf325f094a3db834")
        if handler is not None:
            self._ack(handler, "AwsSolutions-IAM4", "CDK's own handler that turns on EventBridge delivery for the "
                      "raw bucket; it only needs to write its logs.", [basic_role])
        self._ack(fns, "AwsSolutions-L1", "Pinned to the Python version the arm64 layers are built and tested "
                  "for (context python_version, layers/build.py --python).")
        rekognition = {"rekognition": " Rekognition's DetectFaces (detector=rekognition, redact function only)",
                       "rekognition-video": " Rekognition's StartFaceDetection/GetFaceDetection (detector="
                                            "rekognition-video, faces function only)"}.get(self.settings.detector, "")
        self._ack(fns, "AwsSolutions-IAM5",
                  "Objects are scoped to one bucket and, for the work and output buckets, to the key prefix the "
                  "function owns (runs/, redacted/, failed/, versions/, runs/*/source.json, runs/*/faces.json). "
                  "X-Ray's PutTraceSegments/"
                  f"PutTelemetryRecords{' and' + rekognition if rekognition else ''} take no resource "
                  "(Resource::*).",
                  [f"Resource::<{raw}.Arn>/*", f"Resource::<{work}.Arn>/runs/*", f"Resource::<{work}.Arn>/runs/*/errors/*",
                   f"Resource::<{work}.Arn>/runs/*/source.json",
                   *([f"Resource::<{work}.Arn>/runs/*/plan.json", f"Resource::<{work}.Arn>/runs/*/faces.json"]
                     if fns.faces is not None else []),
                   f"Resource::<{output}.Arn>/redacted/*", f"Resource::<{output}.Arn>/failed/*",
                   f"Resource::<{work}.Arn>/versions/*", "Resource::*"])
        sm = self.workflow.state_machine
        sm_id = self._logical_id(sm)
        sm_name = json.dumps({"Fn::Select": [6, {"Fn::Split": [":", {"Ref": sm_id}]}]}, separators=(",", ":"))
        region = "<AWS::Region>" if Token.is_unresolved(self.region) else self.region
        account = "<AWS::AccountId>" if Token.is_unresolved(self.account) else self.account
        execution = f"Resource::arn:<AWS::Partition>:states:{region}:{account}:execution:{sm_name}"
        self._ack(self.workflow, "AwsSolutions-IAM5",
                  "Step Functions invokes the functions' versions (<arn>:*), writes X-Ray traces (no resource "
                  "scope), manages its own Distributed Map child executions, and reads the segment manifests "
                  "under runs/ of the work bucket (their keys are only known at run time).",
                  [*(f"Resource::<{self._logical_id(f)}.Arn>:*" for f in (fns.plan, fns.redact, fns.stitch,
                                                                           fns.record_failure, fns.faces) if f),
                   "Resource::*", f"{execution}/RedactSegments:*", f"{execution}:*",
                   f"Resource::<{work}.Arn>/runs/*"])
