"""Buckets: raw (input), work (manifests + segment parts), output (redacted videos, reports, failures), and the
server-access-log bucket they all log to."""
from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from .settings import Settings


def removal_policy(settings: Settings) -> RemovalPolicy:
    """Buckets and log groups: ``retain`` keeps them (and their data) when the stack is deleted or a resource is
    replaced, but not when the stack's *first* deploy rolls back (CloudFormation ``RetainExceptOnCreate``): a
    failed first deploy in a new account leaves no empty buckets or log groups behind."""
    return RemovalPolicy.DESTROY if settings.removal_policy == "destroy" else RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE


class Storage(Construct):
    def __init__(self, scope: Construct, cid: str, *, settings: Settings) -> None:
        super().__init__(scope, cid)
        removal = removal_policy(settings)
        common = dict(
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=removal,
        )
        self.access_logs = s3.Bucket(
            self, "AccessLogs", **common,
            lifecycle_rules=[s3.LifecycleRule(id="expire-access-logs",
                                              expiration=Duration.days(settings.access_log_retention_days))],
        )

        raw_rules = [
            s3.LifecycleRule(id="abort-incomplete-uploads", abort_incomplete_multipart_upload_after=Duration.days(1)),
            s3.LifecycleRule(id="expire-old-versions", noncurrent_version_expiration=Duration.days(1),
                             expired_object_delete_marker=True),
        ]
        if settings.raw_retention_days > 0:
            raw_rules.append(s3.LifecycleRule(id="expire-raw-uploads",
                                              expiration=Duration.days(settings.raw_retention_days)))
        # versioned so every upload (even of identical bytes under the same key) has its own version id,
        # which names its execution: re-uploads run again, duplicated events do not.
        self.raw = s3.Bucket(
            self, "Raw", **common, versioned=True, event_bridge_enabled=True,
            server_access_logs_bucket=self.access_logs, server_access_logs_prefix="raw/",
            lifecycle_rules=raw_rules,
        )
        work_rules = [
            s3.LifecycleRule(id="expire-work-data", prefix="runs/",
                             expiration=Duration.days(settings.work_retention_days)),
            s3.LifecycleRule(id="abort-incomplete-uploads", abort_incomplete_multipart_upload_after=Duration.days(1)),
        ]
        if settings.raw_retention_days > 0:  # a version record outlives every upload (and retry) it orders
            work_rules.append(s3.LifecycleRule(id="expire-version-records", prefix="versions/",
                                               expiration=Duration.days(settings.raw_retention_days + 1)))
        self.work = s3.Bucket(
            self, "Work", **common,
            server_access_logs_bucket=self.access_logs, server_access_logs_prefix="work/",
            lifecycle_rules=work_rules,
        )
        self.output = s3.Bucket(
            self, "Output", **common, versioned=True,
            server_access_logs_bucket=self.access_logs, server_access_logs_prefix="output/",
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-noncurrent-outputs",
                                 noncurrent_version_expiration=Duration.days(settings.output_noncurrent_days),
                                 abort_incomplete_multipart_upload_after=Duration.days(1)),
            ],
        )
