"""Live chunk: S3 "Object Created" for ``live/<stream>/<sequence>.<ext>`` in the raw bucket (via EventBridge)
-> the chunk planned and redacted here, its first segment by this function's process pool and the others by
the Redact function (synchronous invokes, ``redactor.live.fanout``; no state machine) -> its HLS segments and
its place in ``live/<stream>/index.m3u8`` in the output bucket (docs/live.md), published in order by
conditional writes. ``live/<stream>/END`` ends the stream once every chunk uploaded before it has
its place (or the end wait has passed).

Once per chunk, whatever the event deliveries: the first delivery claims the sequence number with the chunk's
content hash (``.claims/<seq>.json``, written only if absent); a delivery of the same content is a duplicate,
of other content a conflict record. A chunk arriving after the stream ended gets an after-end record; a chunk
longer than ``LIVE_MAX_CHUNK_SECONDS`` is refused before any frame is redacted (a ``too-long`` record and a gap).

A scheduled event (EventBridge, every minute) sweeps the streams: one with no chunk uploaded and nothing
published for ``LIVE_IDLE_SECONDS``, and no chunk still being redacted, gets ``EXT-X-ENDLIST`` like END.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import time
from functools import lru_cache
from urllib.parse import unquote_plus

from common import obs, s3
from common.env import engine_config, require
from common.events import ObjectCreated
from redactor import naming
from redactor.hls import Playlist
from redactor.live import LiveSettings, Publisher, S3Store, process_chunk
from redactor.live.publish import claim_name
from redactor.live.chunk import sha256_of
from redactor.live.fanout import FanOut, Target
from redactor.live.source import END

ENV = require("RAW_BUCKET", "OUTPUT_BUCKET")
CONFIG = engine_config()
SEQUENCE = re.compile(r"^(\d{1,12})\.[A-Za-z0-9]{1,5}$")


PUBLISH_RESERVE = 60  # s of the function's time kept for publishing once the chunk's segments are redacted
CLAIM_EXPIRES = 900  # s: a claim this old whose chunk is neither staged nor listed was a failed attempt
clock = time.time  # the idle sweep's clock (tests move it)


def settings(gap_wait: float | None = None, busy_wait: float | None = None) -> LiveSettings:
    return LiveSettings(gap_wait=float(gap_wait if gap_wait is not None else os.environ.get("LIVE_GAP_WAIT", 30)),
                        busy_wait=float(busy_wait if busy_wait is not None else os.environ.get("LIVE_BUSY_WAIT", 600)),
                        program_date_time=os.environ.get("LIVE_PROGRAM_DATE_TIME", "") == "true",
                        keep_metadata=CONFIG.keep_metadata,
                        max_chunk_seconds=float(os.environ.get("LIVE_MAX_CHUNK_SECONDS", 0)))


def publisher(stream: str, gap_wait: float | None = None, busy_wait: float | None = None) -> Publisher:
    return Publisher(S3Store(ENV["OUTPUT_BUCKET"], f"{naming.LIVE_PREFIX}{stream}", s3.client()),
                     settings(gap_wait, busy_wait))


@lru_cache(maxsize=1)
def invoker():
    """The Lambda client for the Redact invokes: no retries of its own (FanOut retries, then redacts the segment
    here), and a read timeout as long as the Redact function may run."""
    import boto3
    from botocore.config import Config
    return boto3.client("lambda", config=Config(read_timeout=int(os.environ.get("REDACT_TIMEOUT", 900)) + 10,
                                                retries={"total_max_attempts": 1, "mode": "standard"}))


def fan_out(key: str, version: str | None, remaining_s: float) -> FanOut | None:
    """The chunk's segments fanned out to the Redact function (None when none is configured: the pool alone),
    all redacted ``PUBLISH_RESERVE`` s before the function's own time (``remaining_s``) runs out."""
    function = os.environ.get("REDACT_FUNCTION")
    if not function:
        return None
    return FanOut(s3.client(), invoker(), Target(function, os.environ["WORK_BUCKET"], ENV["RAW_BUCKET"], key,
                                                 version), width=int(os.environ.get("LIVE_FANOUT_WIDTH", 4)),
                  deadline=time.monotonic() + remaining_s - PUBLISH_RESERVE)


def claim(pub: Publisher, seq: int, name: str, sha: str) -> str | None:
    """None if this delivery owns chunk ``seq``; else "duplicate" or "conflict" (recorded). The same content
    claimed more than ``CLAIM_EXPIRES`` s ago and neither staged nor listed is taken again (the attempt that
    claimed it ended without a result: a timeout, a crash)."""
    key = claim_name(seq)
    mine = json.dumps({"name": name, "sha256": sha, "time": time.time()}).encode()
    if pub.store.put_new(key, mine):
        return None
    data, etag = pub.store.read(key)
    first = json.loads(data or b"{}")
    if first.get("sha256") == sha:
        stale = time.time() - float(first.get("time", 0)) > CLAIM_EXPIRES and pub.staged(seq) is None and \
            pub.playlist()[0].entry(seq) is None
        return None if stale and pub.store.write_if(key, mine, etag) else "duplicate"
    pub.record(name, "conflict", {"sequence": seq, "gap": False,
                                  "error": f"sequence {seq} was taken by {first.get('name')} with other content "
                                           f"(sha256 {str(first.get('sha256'))[:12]}..., now {sha[:12]}...)"})
    return "conflict"


def take_chunk(stream: str, name: str, seq: int, key: str, version: str | None, remaining_s: float) -> dict:
    pub = publisher(stream)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="live-") as work:
        local = os.path.join(work, name)
        s3.download(ENV["RAW_BUCKET"], key, local, version)
        sha = sha256_of(local)
        taken = claim(pub, seq, name, sha)
        if taken == "duplicate":
            obs.metrics.add_metric(name="LiveChunksDuplicate", unit=obs.MetricUnit.Count, value=1)
        elif taken == "conflict":
            obs.metrics.add_metric(name="LiveChunksConflict", unit=obs.MetricUnit.Count, value=1)
        if taken is not None:
            return {"status": taken, "stream": stream, "sequence": seq}
        if pub.playlist()[0].ended:
            pub.record(name, "after-end", {"sequence": seq, "gap": False, "error": "uploaded after END"})
            obs.metrics.add_metric(name="LiveChunksAfterEnd", unit=obs.MetricUnit.Count, value=1)
            return {"status": "after-end", "stream": stream, "sequence": seq}
        runner = fan_out(key, version, remaining_s)
        out = process_chunk(pub, local, seq, name, CONFIG, sha=sha, segments_runner=runner)
    seconds = time.perf_counter() - t0
    obs.metrics.add_metric(name="LiveChunkSeconds", unit=obs.MetricUnit.Seconds, value=seconds)
    if runner and (fallbacks := sum(1 for _, _, why in runner.log if why == "fallback")):
        obs.metrics.add_metric(name="LiveSegmentsFallback", unit=obs.MetricUnit.Count, value=fallbacks)
    if out.status == "published":
        obs.metrics.add_metric(name="LiveChunksPublished", unit=obs.MetricUnit.Count, value=1)
    else:
        obs.metrics.add_metric(name="LiveChunksFailed", unit=obs.MetricUnit.Count, value=1)
    obs.logger.info("chunk", extra={"stream": stream, "sequence": seq, "status": out.status,
                                    "chunk_seconds": round(seconds, 3),
                                    "redact_seconds": round(out.redact_seconds, 3), "error": out.error,
                                    "segments": runner.log if runner else None})
    return {"status": out.status, "stream": stream, "sequence": seq, "record": out.record}


def end_stream(stream: str) -> dict:
    """Every chunk uploaded before END gets its place (waiting up to LIVE_END_WAIT s for each one still being
    redacted), then EXT-X-ENDLIST."""
    pub = publisher(stream, gap_wait=float(os.environ.get("LIVE_END_WAIT", 600)))
    seqs = [int(m.group(1)) for k in s3.list_keys(ENV["RAW_BUCKET"], f"{naming.LIVE_PREFIX}{stream}/")
            if (m := SEQUENCE.match(k.rsplit("/", 1)[1]))]
    if seqs:
        pub.publish(max(seqs))
    pl = pub.end()
    obs.logger.info("stream ended", extra={"stream": stream, "chunks": len(pl.chunks)})
    return {"status": "ended", "stream": stream, "chunks": len(pl.chunks)}


# ------------------------------------------------------------------------------------------ the idle timeout
def streams() -> list[str]:
    """Every stream with anything in the output bucket (``live/<stream>/``)."""
    names = []
    for page in s3.client().get_paginator("list_objects_v2").paginate(
            Bucket=ENV["OUTPUT_BUCKET"], Prefix=naming.LIVE_PREFIX, Delimiter="/"):
        names += [p["Prefix"][len(naming.LIVE_PREFIX):-1] for p in page.get("CommonPrefixes") or []]
    return names


def uploads(stream: str) -> dict[int, float]:
    """Sequence number -> upload time (epoch s) of every chunk of ``stream`` in the raw bucket."""
    out = {}
    for page in s3.client().get_paginator("list_objects_v2").paginate(
            Bucket=ENV["RAW_BUCKET"], Prefix=f"{naming.LIVE_PREFIX}{stream}/"):
        for obj in page.get("Contents") or []:
            if m := SEQUENCE.match(obj["Key"].rsplit("/", 1)[1]):
                out[int(m.group(1))] = max(out.get(int(m.group(1)), 0.0), obj["LastModified"].timestamp())
    return out


def idle_for(stream: str, now: float) -> tuple[float, dict] | None:
    """(seconds since the stream's last activity: a chunk uploaded or its playlist written, the chunks
    uploaded) for a stream whose playlist is open and none of whose unlisted chunks is being redacted (claimed
    less than CLAIM_EXPIRES ago); None otherwise."""
    key = f"{naming.LIVE_PREFIX}{stream}/index.m3u8"
    try:
        obj = s3.client().get_object(Bucket=ENV["OUTPUT_BUCKET"], Key=key)
    except s3.client().exceptions.NoSuchKey:
        return None  # nothing published yet: the first chunk's writer is still at work
    pl = Playlist.parse(obj["Body"].read().decode())
    if pl.ended:
        return None
    uploaded = uploads(stream)
    store = S3Store(ENV["OUTPUT_BUCKET"], f"{naming.LIVE_PREFIX}{stream}", s3.client())
    for seq in (n for n in uploaded if n >= pl.next_seq):
        claimed = store.get(claim_name(seq))
        if claimed and now - float(json.loads(claimed).get("time", 0)) < CLAIM_EXPIRES:
            return None
    return now - max([obj["LastModified"].timestamp(), *uploaded.values()]), uploaded


def sweep() -> dict:
    """End every stream idle for LIVE_IDLE_SECONDS: each chunk uploaded and not listed becomes a gap at
    once (none of them is being redacted), then EXT-X-ENDLIST, by the same conditional writes as END. A
    stream that cannot be checked (logged, metric LiveSweepErrors) is left for the next sweep."""
    limit, now = float(os.environ["LIVE_IDLE_SECONDS"]), clock()
    ended, errors = [], []
    for stream in streams():
        try:
            found = idle_for(stream, now)
        except Exception:  # noqa: BLE001 - one stream's fault (a damaged playlist, a denied read) stops no other
            obs.logger.exception("idle check failed", extra={"stream": stream})
            obs.metrics.add_metric(name="LiveSweepErrors", unit=obs.MetricUnit.Count, value=1)
            errors.append(stream)
            continue
        if found is None or found[0] <= limit:
            continue
        idle, uploaded = found
        pub = publisher(stream, gap_wait=0, busy_wait=0)
        if uploaded:
            pub.publish(max(uploaded))
        pl = pub.end()
        pub.record("stream", "idle", {"gap": False, "idle_seconds": round(idle, 1), "limit_seconds": limit,
                                      "chunks": len(pl.chunks)})
        obs.metrics.add_metric(name="LiveStreamsEndedIdle", unit=obs.MetricUnit.Count, value=1)
        obs.logger.info("stream ended: idle", extra={"stream": stream, "idle_seconds": round(idle, 1),
                                                     "chunks": len(pl.chunks)})
        ended.append(stream)
    return {"status": "swept", "ended": ended, "errors": errors}


@obs.handler
def handler(event, context):
    if isinstance(event, dict) and event.get("detail-type") == "Scheduled Event":
        return sweep()
    created = ObjectCreated.from_event(event, "live")
    key = unquote_plus(created.key)
    parts = naming.live_parts(key) if created.bucket == ENV["RAW_BUCKET"] else None
    if parts is None:
        obs.logger.warning("not a live chunk key; ignored", extra={"key": key})
        return {"status": "ignored", "key": key}
    stream, name = parts
    obs.logger.append_keys(stream=stream, sequence=None)
    if name == END:
        return end_stream(stream)
    m = SEQUENCE.match(name)
    if m is None:
        obs.logger.warning("not <sequence>.<ext>; ignored", extra={"key": key})
        return {"status": "ignored", "key": key}
    obs.logger.append_keys(stream=stream, sequence=int(m.group(1)))
    return take_chunk(stream, name, int(m.group(1)), key, created.version,
                      context.get_remaining_time_in_millis() / 1000.0)


