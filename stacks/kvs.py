"""Kinesis Video Streams in: the consumer function (lambdas/kvs_consumer), its one-minute schedule rule
(disabled unless context ``kvs_enabled``; enable or disable it to start or stop following, no deploy), the SSM
parameter naming the streams it follows, and its least-privilege role: GetDataEndpoint, ListFragments and
GetClip on the streams context ``kvs_streams`` names, PutObject on ``live/*`` of the raw bucket (the chunks and
a deleted stream's end marker), ListBucket there under ``live/`` (a lost cursor resumes after the last chunk),
read/write of its cursors and records under ``kvs/`` of the work bucket, and ListBucket on the work bucket (so
that a cursor not yet written answers 404, not 403).

Only made when ``kvs_streams`` is set (stacks/redactor_stack.py).
"""
from __future__ import annotations

from aws_cdk import ArnFormat, CfnOutput, Duration, Stack, Token
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from . import access
from .functions import ROOT, RUNTIMES, retention
from .settings import Settings
from .storage import Storage, removal_policy

SCHEDULE_MINUTES = 1
TIMEOUT_SECONDS = 90  # each invocation polls for RUN_SECONDS, past the next scheduled one (they overlap)
RUN_SECONDS = 75
MEMORY_MB = 512  # a clip of up to 90 MB is held in memory between GetClip and PutObject
LAYERS = ("deps", "engine")


def stream_arn(scope: Construct, name: str) -> str:
    """The ARN pattern of a stream (``name`` may end in ``*``): stream/<name>/<creation time>."""
    return Stack.of(scope).format_arn(service="kinesisvideo", resource="stream", resource_name=f"{name}/*",
                                      arn_format=ArnFormat.SLASH_RESOURCE_NAME)


class KvsConsumer(Construct):
    def __init__(self, scope: Construct, cid: str, *, settings: Settings, storage: Storage,
                 layers: dict[str, lambda_.LayerVersion]) -> None:
        super().__init__(scope, cid)
        self.streams = tuple(settings.kvs_streams)
        exact = [n for n in settings.kvs_streams if not n.endswith("*")]
        self.parameter = ssm.StringParameter(
            self, "Streams", string_value=",".join(exact) or "-",
            description="Kinesis Video streams the redactor follows (comma-separated names, - for none)")
        self.function = self._function(settings, storage, layers)
        self.rule = events.Rule(
            self, "Schedule", enabled=settings.kvs_enabled,
            description="Run the KVS consumer every minute (enable to follow the streams, disable to stop)",
            schedule=events.Schedule.rate(Duration.minutes(SCHEDULE_MINUTES)),
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)])
        self._grant(settings, storage)
        CfnOutput(self, "KvsScheduleRuleName", value=self.rule.rule_name,
                  description="aws events enable-rule / disable-rule --name <this>: start or stop following")
        CfnOutput(self, "KvsStreamsParameterName", value=self.parameter.parameter_name,
                  description="aws ssm put-parameter --overwrite --name <this> --value cam1,cam2: what to follow")

    def _function(self, settings: Settings, storage: Storage, layers) -> lambda_.Function:
        log_group = logs.LogGroup(self, "ConsumerLogs", retention=retention(settings.log_retention_days),
                                  removal_policy=removal_policy(settings))
        return lambda_.Function(
            self, "Consumer",
            description="Follow Kinesis Video streams: land fragment-aligned clips as live/<stream>/<seq>.mp4",
            runtime=RUNTIMES[settings.python_version], architecture=lambda_.Architecture.ARM_64,
            handler="handler.handler",
            code=lambda_.Code.from_asset(str(ROOT / "lambdas" / "kvs_consumer"), exclude=["__pycache__", "*.pyc"]),
            layers=[layers[name] for name in LAYERS], memory_size=MEMORY_MB,
            timeout=Duration.seconds(TIMEOUT_SECONDS), tracing=lambda_.Tracing.ACTIVE, log_group=log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            environment={
                "POWERTOOLS_SERVICE_NAME": "redactor-kvs-consumer",
                "POWERTOOLS_METRICS_NAMESPACE": "Redactor",
                "POWERTOOLS_LOG_LEVEL": "INFO",
                "RAW_BUCKET": storage.raw.bucket_name, "WORK_BUCKET": storage.work.bucket_name,
                "KVS_STREAMS_PARAMETER": self.parameter.parameter_name,
                "KVS_RUN_SECONDS": str(RUN_SECONDS),
                "KVS_CLIP_SECONDS": str(settings.kvs_clip_seconds),
            })

    def _grant(self, settings: Settings, storage: Storage) -> None:
        fn = self.function
        fn.add_to_role_policy(iam.PolicyStatement(
            sid="FollowStreams",
            actions=["kinesisvideo:GetDataEndpoint", "kinesisvideo:ListFragments", "kinesisvideo:GetClip"],
            resources=[stream_arn(self, n) for n in settings.kvs_streams]))
        fn.add_to_role_policy(iam.PolicyStatement(
            sid="ReadStreamList", actions=["ssm:GetParameter"], resources=[self.parameter.parameter_arn]))
        # every object is written whole by PutObject, and a cursor read at its current version
        access.write(storage.raw, fn, "live/*", multipart=False)
        access.list_bucket(storage.raw, fn, "live/*")
        access.read(storage.work, fn, "kvs/*", versions=False)
        access.write(storage.work, fn, "kvs/*", multipart=False)
        # a missing cursor must answer 404 (NoSuchKey), not 403: S3 decides that by s3:ListBucket on the bucket,
        # evaluated for the GetObject request, which has no s3:prefix (a prefix condition would not match)
        access.list_bucket(storage.work, fn)

    def add_to_dashboard(self, dashboard: cw.Dashboard) -> None:
        """A row on the operations dashboard: chunks landed, lag, stream records, the function's health."""
        period = Duration.minutes(5)

        def emitted(name: str, stat: str = "Sum", label: str | None = None) -> cw.Metric:
            return cw.Metric(namespace="Redactor", metric_name=name, statistic=stat, period=period,
                             dimensions_map={"service": "redactor-kvs-consumer"}, label=label or name)

        fn = self.function
        dashboard.add_widgets(
            cw.GraphWidget(title="KVS in: chunks landed", width=6, left=[
                emitted("KvsChunksLanded", label="chunks landed"),
                emitted("KvsStreamsFollowed", stat="Maximum", label="streams followed")]),
            cw.GraphWidget(title="KVS in: lag (s, end of fragment to chunk)", width=6, left=[
                emitted("KvsLagSeconds", stat=s, label=s) for s in ("p50", "p99", "Maximum")]),
            cw.GraphWidget(title="KVS in: stream records", width=6, left=[
                emitted("KvsStreamQuiet", label="StreamQuiet"), emitted("KvsStreamDeleted", label="StreamDeleted"),
                emitted("KvsStreamNotPermitted", label="StreamNotPermitted"),
                emitted("KvsClipFailed", label="ClipFailed"), emitted("KvsPollErrors", label="failed polls")]),
            cw.GraphWidget(title="KVS in: consumer function", width=6, left=[
                fn.metric_errors(period=period, statistic="Sum", label="errors"),
                fn.metric_throttles(period=period, statistic="Sum", label="throttles")]))

    def acknowledge(self, ack, raw_id: str, work_id: str, basic_role: str) -> None:
        """The cdk-nag findings this construct accepts (``ack``: RedactorStack._ack; the buckets' logical ids)."""
        stack = Stack.of(self)
        region = "<AWS::Region>" if Token.is_unresolved(stack.region) else stack.region
        account = "<AWS::AccountId>" if Token.is_unresolved(stack.account) else stack.account
        streams = [f"Resource::arn:<AWS::Partition>:kinesisvideo:{region}:{account}:stream/{n}/*"
                   for n in self.streams]
        ack(self, "AwsSolutions-IAM5",
            "A stream's ARN ends in its creation time (stream/<name>/*), and a name may be a prefix (<prefix>*); "
            "the chunks and the cursors are objects under one prefix each (live/* of the raw bucket, kvs/* of the "
            "work bucket); X-Ray's PutTraceSegments/PutTelemetryRecords take no resource (Resource::*).",
            [*streams, f"Resource::<{raw_id}.Arn>/live/*", f"Resource::<{work_id}.Arn>/kvs/*", "Resource::*"])
        ack(self, "AwsSolutions-IAM4", "AWSLambdaBasicExecutionRole only lets the function write its own "
            "CloudWatch Logs streams.", [basic_role])
        ack(self, "AwsSolutions-L1", "Pinned to the Python version the arm64 layers are built and tested for "
            "(context python_version).")
