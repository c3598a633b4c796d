"""The live function's fan-out (docs/live.md, "Splitting a chunk"): a chunk's planned segments (the engine's
planner: the same segment records the file workflow's Map gives the Redact function) are redacted side by side.
This function's own process pool takes the first segment, then the last ones still waiting; the Redact
function takes the others, one synchronous Invoke per segment from a thread each, at most ``width`` at once,
with the Redact handler's own event and staging (``runs/<name>/source.json`` in the work bucket in, its part,
detections sidecar and result record out). A throttled or failed invoke is tried again after a backoff, then its
segment is redacted here. A segment that fails here fails the chunk (a gap: nothing of it is published). The
staged objects (``runs/live-<token>/``) are deleted however the chunk ends; the work bucket's expiry of
``runs/`` removes what a function killed outright leaves."""
from __future__ import annotations

import collections
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .. import naming
from ..errors import RedactorError
from ..records import SegmentResult
from ..segment import redact_segments

STAGE_PREFIX = f"{naming.RUNS_PREFIX}live-"  # the live function's staging in the work bucket (its IAM scope)


class RemoteSegmentError(RedactorError):
    """The Redact function did not return a complete segment (throttled, failed, or its result is missing)."""

    kind = "RemoteSegmentError"


@dataclass(frozen=True)
class Target:
    """Where the segments go: the Redact function, the work bucket it stages in, and the chunk it reads."""
    function: str
    work_bucket: str
    bucket: str
    key: str
    version: str | None = None


@dataclass
class FanOut:
    """A ``segments_runner`` for ``redact_file`` (``redact_segments``'s signature): ``s3`` and ``invoker`` are
    boto3 clients (S3 and Lambda). ``log``: per segment, where it was redacted and why."""
    s3: object
    invoker: object
    target: Target
    width: int = 4  # invokes at once per chunk
    attempts: int = 3  # invokes per segment before it is redacted here
    backoff: float = 0.5  # s before the second attempt; doubled for each one after it
    sleep: object = time.sleep
    deadline: float | None = None  # time.monotonic() by which the segments must be redacted (None: no limit)
    log: list = field(default_factory=list)
    rate: float | None = None  # s per frame of this function's pool, measured on its own segments

    def __call__(self, source, segments, config, work_dir, detector_factory=None, progress=None,
                 source_info=None) -> list[SegmentResult]:
        def local(segs, why):
            self.in_time(segs)
            self.log += [(s.index, "local", why) for s in segs]
            t0 = time.monotonic()
            out = redact_segments(source, segs, config, work_dir, detector_factory=detector_factory,
                                  source_info=source_info)
            self.rate = (time.monotonic() - t0) / max(1, sum(s.frames for s in segs))
            return out
        if len(segments) < 2 or self.width < 1:
            return local(list(segments), "one segment")
        prefix = f"{STAGE_PREFIX}{uuid.uuid4().hex}/"
        try:
            self.s3.put_object(Bucket=self.target.work_bucket, Key=naming.source_key(prefix),
                               Body=json.dumps(source_info.to_dict()).encode())
            return self._run(prefix, list(segments), Path(work_dir), local)
        finally:
            self.clean(prefix)

    def _run(self, prefix: str, segments: list, work: Path, local) -> list[SegmentResult]:
        """Segment 0 here, the rest from a queue: invoking threads take from its front, this function from its
        back once its own segment is done; segments whose invokes all failed are redacted here last."""
        work.mkdir(parents=True, exist_ok=True)
        waiting = collections.deque(segments[1:])
        done: dict[int, SegmentResult] = {}
        failed: list = []
        lock = threading.Lock()

        def invoking():
            while True:
                try:
                    seg = waiting.popleft()
                except IndexError:
                    return
                result = self.remote(prefix, seg, work)
                with lock:
                    if result is None:
                        failed.append(seg)
                    else:
                        done[seg.index] = result
        threads = [threading.Thread(target=invoking, name=f"live-fanout-{n}", daemon=True)
                   for n in range(min(self.width, len(waiting)))]
        for t in threads:
            t.start()
        try:
            mine = [segments[0]]
            while mine:
                done.update({r.index: r for r in local(mine, "own share")})
                try:
                    mine = [waiting.pop()]
                except IndexError:
                    mine = []
        finally:
            waiting.clear()  # a failure here: the threads take nothing more
            for t in threads:
                t.join()
        if failed:
            done.update({r.index: r for r in local(sorted(failed, key=lambda s: s.index), "fallback")})
        return [done[s.index] for s in segments]

    def in_time(self, segs: list) -> None:
        """Refuse to start redacting ``segs`` here when, at the rate measured on this function's own segments,
        they would end after the deadline (the chunk fails now, its staging deleted, instead of the function
        timing out)."""
        if self.deadline is None or self.rate is None:
            return
        need = self.rate * sum(s.frames for s in segs)
        if time.monotonic() + need > self.deadline:
            raise RemoteSegmentError(f"{len(segs)} segment(s) left to redact here need about {need:.0f} s, more "
                                     "than the function has left")

    def remote(self, prefix: str, seg, work: Path) -> SegmentResult | None:
        """Segment ``seg`` by the Redact function, its part and sidecar fetched into ``work``; None once every
        attempt failed (throttled, an error, a missing or short result)."""
        t = self.target
        event = {"bucket": t.bucket, "key": t.key, "version": t.version, "work_prefix": prefix,
                 "segment": seg.to_dict()}
        why = ""
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                resp = self.invoker.invoke(FunctionName=t.function, Payload=json.dumps(event).encode())
                body = resp["Payload"].read()
                if resp.get("FunctionError"):
                    raise RemoteSegmentError(f"the Redact function failed: {body[:300]!r}")
                result = self.fetch(prefix, seg, work)
                self.log.append((seg.index, "remote", f"attempt {attempt + 1}"))
                return result
            except Exception as e:  # noqa: BLE001 - any failure: try again, then redact it here
                why = f"{type(e).__name__}: {e}"[:300]
        self.log.append((seg.index, "failed remote", why))
        return None

    def fetch(self, prefix: str, seg, work: Path) -> SegmentResult:
        """The segment's result record, part and detections sidecar (written by the Redact function)."""
        bucket = self.target.work_bucket
        record = json.loads(self.s3.get_object(Bucket=bucket, Key=naming.result_key(prefix, seg.index))["Body"]
                            .read())
        result = SegmentResult.from_dict(record["result"])
        if result.index != seg.index or result.frames != seg.frames:
            raise RemoteSegmentError(f"segment {seg.index}: the result has {result.frames} frames of segment "
                                     f"{result.index}, planned {seg.frames}")
        part = work / f"part-{seg.index:05d}{Path(result.part).suffix}"
        part.write_bytes(self.s3.get_object(Bucket=bucket, Key=result.part)["Body"].read())
        if part.stat().st_size != int(record["part_bytes"]):
            raise RemoteSegmentError(f"segment {seg.index}: its part is {part.stat().st_size} bytes, "
                                     f"{record['part_bytes']} written")
        det = work / f"detections-{seg.index:05d}.json"
        det.write_bytes(self.s3.get_object(Bucket=bucket, Key=result.detections)["Body"].read())
        result.part, result.detections = str(part), str(det)
        return result

    def clean(self, prefix: str) -> None:
        """Delete everything staged under ``prefix`` (source facts, parts, sidecars, results)."""
        bucket = self.target.work_bucket
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys = [{"Key": o["Key"]} for o in page.get("Contents") or []]
            if keys:
                self.s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
