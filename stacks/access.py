"""S3 permissions by exact action (CDK's grant_read/grant_put/grant_delete add ``s3:GetObject*``,
``s3:GetBucket*``, ``s3:List*``, ``s3:PutObjectRetention``, ... which no handler calls).

What the handlers call, and the action each needs:
  HeadObject / GetObject (ranged too, presigned too)  -> s3:GetObject (+ s3:GetObjectVersion with a VersionId)
  PutObject / multipart upload                        -> s3:PutObject (+ s3:AbortMultipartUpload to abort one)
  DeleteObject / DeleteObjects                        -> s3:DeleteObject
  DeleteObject with a VersionId                       -> s3:DeleteObjectVersion
  ListObjectsV2 (and a 404 instead of 403 on a missing key) -> s3:ListBucket on the bucket
"""
from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3

READ = ("s3:GetObject", "s3:GetObjectVersion")
WRITE = ("s3:PutObject", "s3:AbortMultipartUpload")
DELETE = ("s3:DeleteObject",)
DELETE_VERSION = ("s3:DeleteObjectVersion",)
LIST = ("s3:ListBucket",)


def _allow(grantee: iam.IGrantable, actions, resources, conditions=None) -> None:
    iam.Grant.add_to_principal(grantee=grantee, actions=list(actions), resource_arns=list(resources),
                               conditions=conditions)


def read(bucket: s3.IBucket, grantee: iam.IGrantable, pattern: str = "*", versions: bool = True) -> None:
    """GetObject, and GetObjectVersion unless ``versions`` is False (an unversioned bucket: no reader names a
    version)."""
    _allow(grantee, READ if versions else READ[:1], [bucket.arn_for_objects(pattern)])


def write(bucket: s3.IBucket, grantee: iam.IGrantable, pattern: str, multipart: bool = True) -> None:
    """PutObject, and AbortMultipartUpload unless ``multipart`` is False (a writer that only calls PutObject
    has no multipart upload to abort)."""
    _allow(grantee, WRITE if multipart else WRITE[:1], [bucket.arn_for_objects(pattern)])


def delete(bucket: s3.IBucket, grantee: iam.IGrantable, pattern: str) -> None:
    _allow(grantee, DELETE, [bucket.arn_for_objects(pattern)])


def delete_versions(bucket: s3.IBucket, grantee: iam.IGrantable, pattern: str) -> None:
    """Delete given versions of objects (a run removes exactly the versions it wrote)."""
    _allow(grantee, DELETE_VERSION, [bucket.arn_for_objects(pattern)])


def read_write(bucket: s3.IBucket, grantee: iam.IGrantable, pattern: str) -> None:
    """GetObject + PutObject on one small record (no GetObjectVersion: it is always read at its current version)."""
    _allow(grantee, ("s3:GetObject", "s3:PutObject"), [bucket.arn_for_objects(pattern)])


def list_bucket(bucket: s3.IBucket, grantee: iam.IGrantable, prefix: str | None = None) -> None:
    """ListBucket on the bucket; with ``prefix`` only listings whose Prefix matches it (s3:prefix)."""
    conditions = {"StringLike": {"s3:prefix": [prefix]}} if prefix else None
    _allow(grantee, LIST, [bucket.bucket_arn], conditions)
