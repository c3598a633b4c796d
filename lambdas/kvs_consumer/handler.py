"""KVS consumer: invoked every minute by an EventBridge schedule (stacks/kvs.py), follows the Kinesis Video
streams listed in an SSM parameter and lands their clips in the raw bucket as ``live/<stream>/<seq>.mp4``
(redactor/kvs.py does the work).

Each invocation polls every stream every ``KVS_POLL_SECONDS`` for ``KVS_RUN_SECONDS`` (longer than the
schedule's period, so the next invocation starts before this one ends: there is always a consumer polling, and
the cursors' conditional writes keep two of them from taking the same fragments). Started and stopped without a
deploy: enable or disable the schedule rule; follow other streams by changing the parameter (comma-separated
names; ``-`` for none). The role may only read the streams the stack names (context ``kvs_streams``).
"""
from __future__ import annotations

import os
import time
from collections import Counter

from common import clients, obs, s3
from common.env import require
from redactor import kvs

ENV = require("RAW_BUCKET", "WORK_BUCKET", "KVS_STREAMS_PARAMETER")
RUN_SECONDS = float(os.environ.get("KVS_RUN_SECONDS", "75"))
POLL_SECONDS = float(os.environ.get("KVS_POLL_SECONDS", "2"))
MARGIN_SECONDS = 10.0  # stop polling this long before the function's timeout
OPTIONS = kvs.Options.from_env(os.environ)


def ssm():
    return clients.client("ssm")


def streams() -> list[str]:
    """The streams to follow: the parameter's comma-separated names (``-`` or empty: none), each checked."""
    value = ssm().get_parameter(Name=ENV["KVS_STREAMS_PARAMETER"])["Parameter"]["Value"]
    names = [n.strip() for n in value.split(",") if n.strip() and n.strip() != "-"]
    return [kvs.check_stream_name(n) for n in dict.fromkeys(names)]


def make_archive() -> kvs.Archive:
    return kvs.Archive()


@obs.handler
def handler(event, context):
    names = streams()
    obs.metrics.add_metric(name="KvsStreamsFollowed", unit=obs.MetricUnit.Count, value=len(names))
    if not names:
        obs.logger.info("no stream to follow", extra={"parameter": ENV["KVS_STREAMS_PARAMETER"]})
        return {"streams": {}}
    budget = min(RUN_SECONDS, context.get_remaining_time_in_millis() / 1000 - MARGIN_SECONDS)
    consumer = kvs.Consumer(make_archive(), kvs.Store(s3.client(), ENV["RAW_BUCKET"], ENV["WORK_BUCKET"]), OPTIONS)
    totals = consumer.follow(names, deadline=time.time() + max(0.0, budget), poll_seconds=POLL_SECONDS)
    summary = {}
    for name, t in totals.items():
        summary[name] = {"landed": t.landed, "records": t.records, "state": t.state, "errors": t.errors[-5:]}
        obs.metrics.add_metric(name="KvsChunksLanded", unit=obs.MetricUnit.Count, value=len(t.landed))
        for lag in t.lag_ms:
            obs.metrics.add_metric(name="KvsLagSeconds", unit=obs.MetricUnit.Seconds, value=lag / 1000)
        records = Counter(key.rsplit("-", 1)[-1].removesuffix(".json") for key in t.records)
        obs.metrics.add_metric(name="KvsStreamQuiet", unit=obs.MetricUnit.Count, value=records["StreamQuiet"])
        obs.metrics.add_metric(name="KvsStreamDeleted", unit=obs.MetricUnit.Count, value=records["StreamDeleted"])
        obs.metrics.add_metric(name="KvsStreamNotPermitted", unit=obs.MetricUnit.Count,
                               value=records["StreamNotPermitted"])
        obs.metrics.add_metric(name="KvsClipFailed", unit=obs.MetricUnit.Count, value=records["ClipFailed"])
        if t.errors:
            obs.metrics.add_metric(name="KvsPollErrors", unit=obs.MetricUnit.Count, value=len(t.errors))
            obs.logger.warning("polls failed", extra={"stream": name, "errors": t.errors[-5:]})
        if t.landed or t.records:
            obs.logger.info("stream followed", extra={"stream": name, **summary[name]})
    return {"streams": summary}
