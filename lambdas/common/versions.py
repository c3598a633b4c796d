"""Which upload of a key owns its outputs, when several versions of the key run at once.

The work bucket's ``versions/<sha256 of key>.json`` (``naming.version_record_key``) holds the S3 event
``sequencer`` of the upload whose run last claimed the key, with its version, execution and status. A run
claims the key before it writes an output or a failure record; the claim is refused when a newer upload (a larger
sequencer, ``naming.newer``) holds it: that run is superseded and leaves the key's outputs alone. Every write of
the record is conditional (If-None-Match / If-Match on its ETag), so two runs claiming at once are ordered.
"""
from __future__ import annotations

import json

from botocore.exceptions import ClientError

from redactor import naming

from . import s3

CONFLICTS = ("PreconditionFailed", "ConditionalRequestConflict")
ATTEMPTS = 50


def _conflict(e: ClientError) -> bool:
    return e.response.get("Error", {}).get("Code") in CONFLICTS


def claim(bucket: str, key: str, run: dict) -> tuple[bool, dict | None]:
    """Record ``run`` ({"sequencer", "version", "execution", "status"}) as the owner of ``key``'s outputs unless
    a newer upload owns them. Returns (claimed, the record found before: None when there was none)."""
    record_key = naming.version_record_key(key)
    body = json.dumps({"key": key, **run}, separators=(",", ":")).encode()
    put = dict(Bucket=bucket, Key=record_key, Body=body, ContentType="application/json")
    try:
        s3.client().put_object(**put, IfNoneMatch="*")  # the first run of the key (no read of a missing key)
        return True, None
    except ClientError as e:
        if not _conflict(e):
            raise
    for _ in range(ATTEMPTS):
        got = s3.client().get_object(Bucket=bucket, Key=record_key)
        current = json.loads(got["Body"].read())
        if naming.newer(current.get("sequencer"), run.get("sequencer")):
            return False, current
        try:
            s3.client().put_object(**put, IfMatch=got["ETag"])
            return True, current
        except ClientError as e:
            if not _conflict(e):
                raise
    raise RuntimeError(f"could not claim s3://{bucket}/{record_key}: {ATTEMPTS} conflicting writes")
