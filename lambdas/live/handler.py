"""Live chunk: S3 "Object Created" for ``live/<stream>/<sequence>.<ext>`` in the raw bucket (via EventBridge)
-> the chunk redacted here, with this function's process pool (no Map, no separate plan and stitch) -> its
HLS segments and its place in ``live/<stream>/index.m3u8`` in the output bucket (docs/live.md), published in
order by conditional writes. ``live/<stream>/END`` ends the stream once every chunk uploaded before it has
its place (or the end wait has passed).

Once per chunk, whatever the event deliveries: the first delivery claims the sequence number with the chunk's
content hash (``.claims/<seq>.json``, written only if absent); a delivery of the same content is a duplicate,
of other content a conflict record. A chunk arriving after the stream ended gets an after-end record.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import time
from urllib.parse import unquote_plus

from common import obs, s3
from common.env import engine_config, require
from common.events import ObjectCreated
from redactor import naming
from redactor.live import LiveSettings, Publisher, S3Store, process_chunk
from redactor.live.publish import claim_name
from redactor.live.chunk import sha256_of
from redactor.live.source import END

ENV = require("RAW_BUCKET", "OUTPUT_BUCKET")
CONFIG = engine_config()
SEQUENCE = re.compile(r"^(\d{1,12})\.[A-Za-z0-9]{1,5}$")


CLAIM_EXPIRES = 900  # s: a claim this old whose chunk is neither staged nor listed was a failed attempt


def settings(gap_wait: float | None = None) -> LiveSettings:
    return LiveSettings(gap_wait=float(gap_wait if gap_wait is not None else os.environ.get("LIVE_GAP_WAIT", 30)),
                        busy_wait=float(os.environ.get("LIVE_BUSY_WAIT", 600)),
                        program_date_time=os.environ.get("LIVE_PROGRAM_DATE_TIME", "") == "true",
                        keep_metadata=CONFIG.keep_metadata)


def publisher(stream: str, gap_wait: float | None = None) -> Publisher:
    return Publisher(S3Store(ENV["OUTPUT_BUCKET"], f"{naming.LIVE_PREFIX}{stream}", s3.client()), settings(gap_wait))


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


def take_chunk(stream: str, name: str, seq: int, key: str, version: str | None) -> dict:
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
        out = process_chunk(pub, local, seq, name, CONFIG, sha=sha)
    obs.metrics.add_metric(name="LiveChunkSeconds", unit=obs.MetricUnit.Seconds, value=time.perf_counter() - t0)
    if out.status == "published":
        obs.metrics.add_metric(name="LiveChunksPublished", unit=obs.MetricUnit.Count, value=1)
    else:
        obs.metrics.add_metric(name="LiveChunksFailed", unit=obs.MetricUnit.Count, value=1)
    obs.logger.info("chunk", extra={"stream": stream, "sequence": seq, "status": out.status,
                                    "redact_seconds": round(out.redact_seconds, 3), "error": out.error})
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


@obs.handler
def handler(event, context):
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
    return take_chunk(stream, name, int(m.group(1)), key, created.version)


