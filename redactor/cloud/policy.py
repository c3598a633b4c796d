"""The IAM policy a user of ``redactor cloud`` needs for one deployment: ``redactor cloud policy`` prints it,
to attach to the user's role or group (its object grants are scoped to the stack's buckets and prefixes)."""
from __future__ import annotations

from .. import naming
from .stack import Deployment


def client_policy(dep: Deployment, live: bool = False) -> dict:
    """``live``: and ``redactor cloud play`` (read the live streams' playlists and segments, which its
    presigned URLs then read with the same permission)."""
    arn = dep.state_machine_arn.split(":")  # arn:<partition>:states:<region>:<account>:stateMachine:<name>
    partition = arn[1]
    raw, output = (f"arn:{partition}:s3:::{b}" for b in (dep.raw_bucket, dep.output_bucket))
    executions = dep.state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":*"
    map_runs = dep.state_machine_arn.replace(":stateMachine:", ":mapRun:", 1) + "/*"

    def allow(sid: str, actions: list[str], resources: list[str], **extra) -> dict:
        return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources, **extra}

    play = [allow("PlayLiveStreams", ["s3:GetObject"], [f"{output}/{naming.LIVE_PREFIX}*"])] if live else []
    return {"Version": "2012-10-17", "Statement": [
        # finding the stack without its name lists the region's stacks: DescribeStacks takes no narrower scope
        allow("FindTheStack", ["cloudformation:DescribeStacks"], ["*"]),
        allow("Upload", ["s3:PutObject", "s3:AbortMultipartUpload"], [f"{raw}/*"]),
        allow("ReadUploads", ["s3:GetObject", "s3:GetObjectVersion"], [f"{raw}/*"]),
        allow("ListUploads", ["s3:ListBucket", "s3:ListBucketMultipartUploads"], [raw]),
        # fetch reads the outputs by version (the one whose report names the upload); status the failure record
        allow("ReadOutputs", ["s3:GetObjectVersion"], [f"{output}/{naming.OUTPUT_PREFIX}*"]),
        allow("ReadFailures", ["s3:GetObject"], [f"{output}/{naming.FAILED_PREFIX}*"]),
        allow("ListOutputVersions", ["s3:ListBucketVersions"], [output],
              Condition={"StringLike": {"s3:prefix": [f"{naming.OUTPUT_PREFIX}*"]}}),
        allow("FollowRuns", ["states:DescribeExecution", "states:ListMapRuns"], [executions]),
        allow("FollowMapRuns", ["states:DescribeMapRun"], [map_runs]),
        allow("Retry", ["states:StartExecution"], [dep.state_machine_arn]),
        *play,
    ]}
