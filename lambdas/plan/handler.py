"""Plan segments: probe the upload in place (ranged GETs, nothing copied to /tmp), check that the output
container can hold it (before any segment is paid for), write the plan, the source facts and the Map manifest
to S3, return a small summary."""
from __future__ import annotations

import time

import redactor
from redactor.errors import InputError
from redactor.remote import s3_url
from redactor.remux import check_output

from common import obs, s3
from redactor import naming
from common.events import Upload
from common.env import engine_config, require

ENV = require("RAW_BUCKET", "WORK_BUCKET")
CONFIG = engine_config()


@obs.handler
def handler(event, context):
    t0 = time.monotonic()
    run = Upload.from_event(event, "plan")
    bucket, key, version, prefix = run.bucket, run.key, run.version, run.work_prefix
    if naming.key_too_long(key):  # refused before the upload is even probed: no segment is paid for
        longest = naming.MAX_KEY_BYTES - len(naming.report_html_key(""))
        raise InputError(f"the key is {len(key.encode())} bytes: its redacted video and reports "
                         f"({naming.report_html_key('<key>')}) would exceed S3's {naming.MAX_KEY_BYTES}-byte key "
                         f"limit; upload it under a key of at most {longest} bytes")
    plan = redactor.plan(s3_url(bucket, key, version), CONFIG)  # InputError -> Record failure
    check_output(plan.source, naming.output_key(key), CONFIG)  # e.g. audio the output container cannot hold
    s3.put_json(ENV["WORK_BUCKET"], naming.plan_key(prefix), plan.to_dict())
    s3.put_json(ENV["WORK_BUCKET"], naming.source_key(prefix), plan.source.to_dict())
    s3.put_json(ENV["WORK_BUCKET"], naming.manifest_key(prefix), [seg.to_dict() for seg in plan.segments])
    seconds = round(time.monotonic() - t0, 3)
    obs.logger.info("planned", extra={"key": key, "segments": len(plan.segments), "frames": plan.frame_count})
    obs.metrics.add_metric(name="Segments", unit=obs.MetricUnit.Count, value=len(plan.segments))
    obs.metrics.add_metric(name="Frames", unit=obs.MetricUnit.Count, value=plan.frame_count)
    return {"plan_key": naming.plan_key(prefix), "manifest_key": naming.manifest_key(prefix),
            "segments": len(plan.segments), "frames": plan.frame_count, "plan_seconds": seconds}
