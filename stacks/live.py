"""Live streams (docs/live.md): one function redacts each chunk uploaded to the raw bucket under
``live/<stream>/`` (its first segment with its own process pool, the others by the file workflow's Redact
function, invoked synchronously) and publishes it as HLS under ``live/<stream>/`` in the output bucket; an
EventBridge rule for that prefix invokes it (the file workflow's starter ignores these keys), and a schedule rule
invokes it every minute to end idle streams (context ``live_idle_seconds``; no rule when 0). Its IAM is its own:
the raw bucket's ``live/*`` (read, list), the output bucket's ``live/*`` (GetObject, PutObject, DeleteObject, list: a missing
playlist must answer 404, not 403), the work bucket's ``runs/live-*`` (the Redact function's staging: write the
source facts, read its results, delete them all, list them to delete them) and lambda:InvokeFunction on the
Redact function alone. The Redact function needs nothing beyond its file-workflow grants: it reads the raw
bucket and ``runs/*/source.json`` and writes ``runs/*``."""
from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, Size, Validations
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from . import access
from .functions import ROOT, RUNTIMES, Functions, retention
from .layout import FUNCTION_LAYERS, MODEL_PATH_ON_LAMBDA
from .settings import Settings
from .storage import Storage, removal_policy

LIVE_PREFIX = "live/"
MEMORY_MB = 3008  # what a new account allows; 10240 is the optional fast setting (bench/cloud.py)
TIMEOUT_SECONDS = 900
EPHEMERAL_MB = 2048
GAP_WAIT_SECONDS = 30  # a chunk waits this long for an earlier one before declaring it a gap ...
BUSY_WAIT_SECONDS = 600  # ... or this long when the earlier one has arrived and is being redacted
END_WAIT_SECONDS = 600  # END waits this long for each chunk uploaded before it
# Redact invokes at once per chunk (one segment each): with the live function itself, a chunk uses at most
# FANOUT_WIDTH + 1 concurrent executions (a new account has 10)
FANOUT_WIDTH = 4
# s of video: a longer chunk is refused (a too-long record and a gap). What the fan-out redacts within the
# function's timeout, with the busy wait to spare (bench/cloud.py's live model: 1080p30 at 3008 MB)
MAX_CHUNK_SECONDS = 600
STAGING = "runs/live-*"  # the work bucket's keys of the Redact function's staging (redactor.live.fanout)
SWEEP_MINUTES = 1  # the idle sweep's schedule


class Live(Construct):
    def __init__(self, scope: Construct, cid: str, *, settings: Settings, storage: Storage,
                 functions: Functions) -> None:
        super().__init__(scope, cid)
        self.log_group = log_group = logs.LogGroup(self, "LiveLogs", retention=retention(settings.log_retention_days),
                                  removal_policy=removal_policy(settings))
        self.function = lambda_.Function(
            self, "Live",
            description="Redact one live chunk into HLS segments and publish it in its stream's playlist",
            runtime=RUNTIMES[settings.python_version],
            architecture=lambda_.Architecture.ARM_64,
            handler="handler.handler",
            code=lambda_.Code.from_asset(str(ROOT / "lambdas" / "live"), exclude=["__pycache__", "*.pyc"]),
            layers=[functions.layers[name] for name in FUNCTION_LAYERS["redact"]],
            memory_size=MEMORY_MB,
            timeout=Duration.seconds(TIMEOUT_SECONDS),
            ephemeral_storage_size=Size.mebibytes(EPHEMERAL_MB),
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            environment={"POWERTOOLS_SERVICE_NAME": "redactor-live", "POWERTOOLS_METRICS_NAMESPACE": "Redactor",
                         "POWERTOOLS_LOG_LEVEL": "INFO", "RAW_BUCKET": storage.raw.bucket_name,
                         "OUTPUT_BUCKET": storage.output.bucket_name, "LIVE_GAP_WAIT": str(GAP_WAIT_SECONDS),
                         "LIVE_BUSY_WAIT": str(BUSY_WAIT_SECONDS),
                         "LIVE_END_WAIT": str(END_WAIT_SECONDS), "LIVE_MAX_CHUNK_SECONDS": str(MAX_CHUNK_SECONDS),
                         "LIVE_IDLE_SECONDS": str(settings.live_idle_seconds),
                         "WORK_BUCKET": storage.work.bucket_name, "REDACT_FUNCTION": functions.redact.function_name,
                         "REDACT_TIMEOUT": str(settings.redact_timeout_seconds),
                         "LIVE_FANOUT_WIDTH": str(FANOUT_WIDTH),
                         **settings.engine_environment, "REDACTOR_MODEL_PATH": MODEL_PATH_ON_LAMBDA},
        )
        access.read(storage.raw, self.function, f"{LIVE_PREFIX}*")
        access.list_bucket(storage.raw, self.function, f"{LIVE_PREFIX}*")
        # the playlist, segments and records: read at their current version, written whole by PutObject
        access.read(storage.output, self.function, f"{LIVE_PREFIX}*", versions=False)
        access.write(storage.output, self.function, f"{LIVE_PREFIX}*", multipart=False)
        access.delete(storage.output, self.function, f"{LIVE_PREFIX}*")
        access.list_bucket(storage.output, self.function, f"{LIVE_PREFIX}*")
        self._fan_out(storage, functions)

        self.dead_letters = sqs.Queue(self, "LiveDeadLetters", enforce_ssl=True,
                                      encryption=sqs.QueueEncryption.SQS_MANAGED, retention_period=Duration.days(14))
        self.rule = events.Rule(
            self, "ChunkRule",
            description="Redact every live chunk (and END) uploaded under live/ in the raw bucket",
            event_pattern=events.EventPattern(
                source=["aws.s3"], detail_type=["Object Created"],
                detail={"bucket": {"name": [storage.raw.bucket_name]},
                        "object": {"key": [{"prefix": LIVE_PREFIX}]}}),
            targets=[targets.LambdaFunction(self.function, dead_letter_queue=self.dead_letters, retry_attempts=4,
                                            max_event_age=Duration.hours(1))],
        )
        self.sweep_rule = events.Rule(
            self, "IdleSweep", schedule=events.Schedule.rate(Duration.minutes(SWEEP_MINUTES)),
            description=f"End live streams idle for {settings.live_idle_seconds} s (EXT-X-ENDLIST)",
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)],
        ) if settings.live_idle_seconds else None
        self._acknowledge(storage)

    def _fan_out(self, storage: Storage, functions: Functions) -> None:
        """Invoke the Redact function (it alone) and stage its segments under ``runs/live-*`` in the work bucket."""
        self.function.add_to_role_policy(iam.PolicyStatement(actions=["lambda:InvokeFunction"],
                                                             resources=[functions.redact.function_arn]))
        access.write(storage.work, self.function, STAGING, multipart=False)
        access.read(storage.work, self.function, STAGING, versions=False)
        access.delete(storage.work, self.function, STAGING)
        access.list_bucket(storage.work, self.function, STAGING)

    def add_widgets(self, dashboard: cw.Dashboard) -> None:
        """The live function on the operations dashboard: chunks (published, failed, duplicate, conflict,
        after END), its time per chunk (download to playlist; p50, p99, max) and its Lambda health: totals over
        every stream (no per-stream metric dimension: stream names are unbounded). Per stream: a Logs Insights
        table of the function's "chunk" log lines (chunks by status, time per chunk p50/p99/max)."""
        period = Duration.minutes(5)

        def emitted(name: str, stat: str = "Sum", label: str | None = None) -> cw.Metric:
            return cw.Metric(namespace="Redactor", metric_name=name, statistic=stat, period=period,
                             dimensions_map={"service": "redactor-live"}, label=label or name)
        dashboard.add_widgets(
            cw.GraphWidget(title="Live chunks", width=8, left=[
                emitted("LiveChunksPublished", label="published"), emitted("LiveChunksFailed", label="gap or late"),
                emitted("LiveChunksDuplicate", label="duplicate"), emitted("LiveChunksConflict", label="conflict"),
                emitted("LiveChunksAfterEnd", label="after END"),
                emitted("LiveStreamsEndedIdle", label="streams ended idle"),
                emitted("LiveSweepErrors", label="idle checks failed"),
                emitted("LiveSegmentsFallback", label="segments redacted here (invokes failed)")]),
            cw.GraphWidget(title="Live chunk time, download to playlist (s)", width=8, left=[
                emitted("LiveChunkSeconds", stat=stat, label=stat) for stat in ("p50", "p99", "Maximum")]),
            cw.GraphWidget(title="Live function errors / throttles", width=8, left=[
                self.function.metric_errors(period=period, statistic="Sum", label="errors"),
                self.function.metric_throttles(period=period, statistic="Sum", label="throttles"),
                self.dead_letters.metric_approximate_number_of_messages_visible(
                    period=period, statistic="Maximum", label="chunk events not delivered (DLQ)")]),
            cw.LogQueryWidget(title="Live chunks per stream (download to playlist, s)", width=24, height=6,
                              log_group_names=[self.log_group.log_group_name], query_lines=[
                                  'filter message = "chunk"',
                                  "stats count(*) as chunks, pct(chunk_seconds, 50) as p50_s, "
                                  "pct(chunk_seconds, 99) as p99_s, max(chunk_seconds) as max_s by stream, status",
                                  "sort stream asc, status asc", "limit 100"]))

    def _acknowledge(self, storage: Storage) -> None:
        def ack(rule: str, reason: str, findings=(None,)):
            for f in findings:
                Validations.of(self).acknowledge(Acknowledgment(
                    id=f"AwsSolutions::{rule}" + (f"[{f}]" if f else ""), reason=reason))
        stack = self.function.stack

        def arn(bucket) -> str:
            return f"<{stack.resolve(stack.get_logical_id(bucket.node.default_child))}.Arn>"
        ack("AwsSolutions-IAM4", "AWSLambdaBasicExecutionRole only lets the function write its own CloudWatch "
            "Logs streams.", ["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"])
        ack("AwsSolutions-IAM5", "Objects are scoped to the live/ prefix of the raw and output buckets (stream "
            "names are only known at run time) and to runs/live-* of the work bucket (one staging area per chunk); "
            "X-Ray takes no resource (Resource::*).",
            [f"Resource::{arn(storage.raw)}/live/*", f"Resource::{arn(storage.output)}/live/*",
             f"Resource::{arn(storage.work)}/{STAGING}", "Resource::*"])
        ack("AwsSolutions-L1", "Pinned to the Python version the arm64 layers are built and tested for.")
        ack("AwsSolutions-SQS3", "This queue is the dead-letter queue of the chunk rule's target; it needs none "
            "itself.")
