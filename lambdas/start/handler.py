"""Starter: S3 "Object Created" event (via EventBridge) -> one Step Functions execution per object version.

The execution name is derived from bucket, key and version id (or ETag), so a duplicated event gets
``ExecutionAlreadyExists`` from Step Functions, which is success here: the run already exists.
"""
from __future__ import annotations

import json
import os
from urllib.parse import unquote_plus

from common import clients, obs, s3
from redactor import naming
from common.env import require
from common.events import ObjectCreated

ENV = require("STATE_MACHINE_ARN", "RAW_BUCKET")


def sfn():
    return clients.client("stepfunctions")


def _resolve_key(bucket: str, key: str, version: str | None):
    """EventBridge may deliver a URL-encoded key; use whichever spelling exists."""
    for candidate in dict.fromkeys([key, unquote_plus(key)]):
        meta = s3.head(bucket, candidate, version)
        if meta is not None:
            return candidate, meta
    return None, None


@obs.handler
def handler(event, context):
    created = ObjectCreated.from_event(event)
    if created.bucket != ENV["RAW_BUCKET"]:
        obs.logger.warning("ignoring event that is not about the raw bucket", extra={"bucket": created.bucket})
        return {"status": "ignored"}
    if naming.is_live_key(created.key):  # a live stream's chunk: the live function takes it (docs/live.md)
        obs.logger.info("live chunk: not a file upload", extra={"key": created.key})
        return {"status": "ignored", "key": created.key}
    bucket, version = created.bucket, created.version
    key, meta = _resolve_key(bucket, created.key, version)
    if key is None:
        obs.logger.warning("object is gone; nothing to do", extra={"key": created.key})
        obs.metrics.add_metric(name="ObjectMissing", unit=obs.MetricUnit.Count, value=1)
        return {"status": "missing", "key": created.key}
    version = version or meta.get("VersionId")
    if version == "null":
        version = None
    etag = (created.etag or meta.get("ETag") or "").strip('"')
    name = naming.execution_name(bucket, key, version or etag)
    run_input = naming.execution_input(bucket, key, version, created.sequencer, execution=name, etag=etag,
                                       size=int(created.size or meta.get("ContentLength") or 0))
    try:
        resp = sfn().start_execution(stateMachineArn=ENV["STATE_MACHINE_ARN"], name=name,
                                     input=json.dumps(run_input))
    except sfn().exceptions.ExecutionAlreadyExists:
        obs.logger.info("duplicate event: execution already exists", extra={"execution": name})
        obs.metrics.add_metric(name="DuplicateEvents", unit=obs.MetricUnit.Count, value=1)
        return {"status": "duplicate", "execution": name}
    obs.logger.info("started", extra={"execution": name, "key": key})
    obs.metrics.add_metric(name="ExecutionsStarted", unit=obs.MetricUnit.Count, value=1)
    return {"status": "started", "execution": name, "executionArn": resp["executionArn"]}
