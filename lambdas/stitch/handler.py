"""Stitch: check every planned part, remux parts + the original audio into the output bucket, write the report
beside it, then clean the run's work area (the step itself: common/stitching.py). Returns the output keys, the
frame count and size, and whether a newer upload of the key superseded this run."""
from __future__ import annotations

import time

from common import obs, stitching
from common.env import engine_config, require
from common.events import Upload

ENV = require("RAW_BUCKET", "WORK_BUCKET", "OUTPUT_BUCKET")
CONFIG = engine_config()
BUCKETS = stitching.Buckets(work=ENV["WORK_BUCKET"], output=ENV["OUTPUT_BUCKET"])


@obs.handler
def handler(event, context):
    t0 = time.monotonic()
    upload = Upload.from_event(event, "stitch")
    obs.logger.append_keys(key=upload.key)
    plan_seconds = float((event.get("plan") or {}).get("plan_seconds") or 0.0)
    run = stitching.Run(upload, event.get("execution"), BUCKETS, CONFIG, plan_seconds)
    done = stitching.stitch_run(run, started=t0)
    if not done.superseded:
        obs.metrics.add_metric(name="VideosRedacted", unit=obs.MetricUnit.Count, value=1)
        obs.metrics.add_metric(name="OutputBytes", unit=obs.MetricUnit.Bytes, value=done.bytes)
    return done.to_dict()
