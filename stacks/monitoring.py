"""Alarms on failed/timed-out runs and on events the starter could not handle, and the operations dashboard."""
from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

# What the handlers emit (Powertools Metrics: namespace POWERTOOLS_METRICS_NAMESPACE, dimension "service" =
# POWERTOOLS_SERVICE_NAME, both set in functions.py); tests/test_dashboard.py checks these against the
# handlers' add_metric calls and the functions' environment in the template.
METRICS_NAMESPACE = "Redactor"


def service_name(function: str) -> str:
    return f"redactor-{function.replace('_', '-')}"


class Monitoring(Construct):
    def __init__(self, scope: Construct, cid: str, *, state_machine: sfn.StateMachine,
                 starter_dlq: sqs.Queue, functions: dict[str, lambda_.Function] | None = None,
                 run_event_dlq: sqs.Queue | None = None) -> None:
        super().__init__(scope, cid)
        five_min = Duration.minutes(5)
        self.failed = cw.Alarm(
            self, "RunsFailed", alarm_description="A redaction run failed (see failed/<key>.json)",
            metric=state_machine.metric_failed(period=five_min, statistic="Sum"),
            threshold=1, evaluation_periods=1, treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD)
        self.timed_out = cw.Alarm(
            self, "RunsTimedOut", alarm_description="A redaction run timed out",
            metric=state_machine.metric_timed_out(period=five_min, statistic="Sum"),
            threshold=1, evaluation_periods=1, treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD)
        self.dead_letters = cw.Alarm(
            self, "UploadsNotStarted", alarm_description="Upload events the starter could not handle (DLQ)",
            metric=starter_dlq.metric_approximate_number_of_messages_visible(period=five_min, statistic="Max"),
            threshold=1, evaluation_periods=1, treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD)
        self.run_events_lost = None if run_event_dlq is None else cw.Alarm(
            self, "RunEndsNotRecorded",
            alarm_description="Run-ended events Record failure did not process: no failure record or message (DLQ)",
            metric=run_event_dlq.metric_approximate_number_of_messages_visible(period=five_min, statistic="Max"),
            threshold=1, evaluation_periods=1, treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD)
        self.dashboard = self._dashboard(state_machine, starter_dlq, functions or {}) if functions else None

    def _dashboard(self, sm: sfn.StateMachine, dlq: sqs.Queue, functions: dict[str, lambda_.Function]
                   ) -> cw.Dashboard:
        """"Is it keeping up?" on one page: runs, output, speed, Lambda health, the starter's DLQ."""
        period = Duration.minutes(5)

        def emitted(name: str, function: str, stat: str = "Sum", label: str | None = None) -> cw.Metric:
            return cw.Metric(namespace=METRICS_NAMESPACE, metric_name=name, statistic=stat, period=period,
                             dimensions_map={"service": service_name(function)}, label=label or name)

        frames = emitted("FramesRedacted", "redact", label="frames redacted")
        seconds = emitted("SegmentSeconds", "redact", label="segment seconds (sum)")
        per_fn = sorted(functions.items())
        d = cw.Dashboard(self, "Dashboard", dashboard_name=f"{Stack.of(self).stack_name}-operations",
                         default_interval=Duration.hours(6))
        d.add_widgets(cw.TextWidget(markdown=(
            "## Redactor operations\nRuns (Step Functions), what they produced, how fast, and whether Lambda "
            "or the upload trigger is in trouble. Custom metrics: namespace `Redactor`, dimension `service` = "
            "the function's Powertools service name."), width=24, height=2))
        d.add_widgets(
            cw.GraphWidget(title="Runs started / succeeded / failed", width=12, left=[
                sm.metric_started(period=period, statistic="Sum", label="started"),
                sm.metric_succeeded(period=period, statistic="Sum", label="succeeded"),
                sm.metric_failed(period=period, statistic="Sum", label="failed"),
                sm.metric_timed_out(period=period, statistic="Sum", label="timed out")]),
            cw.GraphWidget(title="Videos redacted / failed, uploads started", width=12, left=[
                emitted("VideosRedacted", "stitch", label="videos redacted"),
                emitted("VideosFailed", "record_failure", label="videos failed"),
                emitted("SegmentsFailed", "record_failure", label="segments failed"),
                emitted("ExecutionsStarted", "start", label="runs started by the starter"),
                emitted("DuplicateEvents", "start", label="duplicate upload events")]))
        d.add_widgets(
            cw.GraphWidget(title="Frames redacted", width=8, left=[
                frames, emitted("Frames", "plan", label="frames planned")]),
            cw.GraphWidget(title="Frames/s", width=8, left=[
                cw.MathExpression(expression="frames / PERIOD(frames)", using_metrics={"frames": frames},
                                  label="all segments (per second of wall clock)", period=period),
                cw.MathExpression(expression="frames / seconds", using_metrics={
                    "frames": frames, "seconds": seconds}, label="per segment Lambda", period=period)]),
            cw.GraphWidget(title="Segment duration (s)", width=8, left=[
                emitted("SegmentSeconds", "redact", stat="p50", label="p50"),
                emitted("SegmentSeconds", "redact", stat="p99", label="p99"),
                emitted("SegmentSeconds", "redact", stat="Maximum", label="max")]))
        d.add_widgets(
            cw.GraphWidget(title="Lambda throttles per function", width=8, left=[
                fn.metric_throttles(period=period, statistic="Sum", label=name) for name, fn in per_fn]),
            cw.GraphWidget(title="Lambda errors per function", width=8, left=[
                fn.metric_errors(period=period, statistic="Sum", label=name) for name, fn in per_fn]),
            cw.GraphWidget(title="Starter DLQ depth (upload events not started)", width=8, left=[
                dlq.metric_approximate_number_of_messages_visible(period=period, statistic="Maximum",
                                                                  label="messages")]))
        d.add_widgets(cw.AlarmStatusWidget(title="Alarms", width=24, height=3,
                                           alarms=[self.failed, self.timed_out, self.dead_letters]))
        return d
