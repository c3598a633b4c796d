"""Alarms on failed/timed-out runs and on events the starter could not handle."""
from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct


class Monitoring(Construct):
    def __init__(self, scope: Construct, cid: str, *, state_machine: sfn.StateMachine,
                 starter_dlq: sqs.Queue) -> None:
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
