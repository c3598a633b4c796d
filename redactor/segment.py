"""Redact planned segments: build each segment's chunk tasks (``chunking`` cuts them, ``handover`` balances
neighbours), run them in the worker pool (``chunk.py``), join each segment's chunk parts into its part file and
detections sidecar. Any chunk's failure fails the run: every part is removed and nothing is returned.
"""
from __future__ import annotations

import collections
import json
import os
import time
from pathlib import Path

from .chunk import ChunkTask, run_chunk
from .chunking import chunk_counts, dispatch_order, split_chunks
from .config import Config, usable_cores
from .detectors import make_detector
from .errors import InputError
from .handover import WORK_PRICES, balanced_hand_over, decode_from, hand_over
from .pool import WorkerPool
from .records import Segment, SegmentResult, SourceInfo
from .report import merge_ranges
from .remux import concat_video
from .schedule import Schedule


def chunk_tasks(source: str, segment: Segment, config: Config, info: SourceInfo, work: Path,
                workers: int, all_at_once: bool = False) -> list[ChunkTask]:
    """The chunk tasks of one segment cut for ``workers`` processes. ``all_at_once``: every task of the run has
    a process of its own from the start, so a chunk may wait for the one after it: neighbours then hand frames
    over at the cut (``hand_over``)."""
    # the video's last frame gets a fine pass too: small faces there are tracked back from it
    last_frame = segment.end_frame - 1 if segment.end_pts is None else -1
    schedule = Schedule.from_settings(config.detection, info.fps).ending_at(last_frame)  # the plan's rate
    ctx = schedule.context
    chunks = split_chunks(segment, workers, ctx, schedule.fine)
    lo_global = segment.start_frame - segment.context_before
    part = work / f"part-{segment.index:05d}.mp4"
    tasks = []
    keys = sorted(segment.keyframes, key=lambda k: k.frame)
    most = [hand_over(schedule, a, (a, b)) if all_at_once and ci else 0 for ci, (a, b, _) in enumerate(chunks)]
    prices = WORK_PRICES.get(config.detection.detector, WORK_PRICES["centerface"])
    key_frames = [k.frame for k in keys]
    lent = [0] * len(chunks)
    for ci in range(1, len(chunks)):  # each cut balanced in turn (two chunks: exactly)
        if most[ci]:
            lent[ci] = balanced_hand_over(schedule, prices, key_frames, chunks[ci - 1][:2], chunks[ci][:2],
                                          lent[ci - 1], most[ci], lo_global)
    for ci, (a, b, seek) in enumerate(chunks):
        borrow = lent[ci + 1] if ci + 1 < len(chunks) else 0
        # only the context frames that get a pass are decoded (Schedule.span; up to ctx on each side)
        hi = schedule.span(a, b)[1]
        lo = max(lo_global, decode_from(schedule, a, b, lent[ci]))
        hi = min(segment.end_frame + segment.context_after, max(hi, b + borrow))
        seek = next((k for k in reversed(keys) if k.frame <= lo), seek)  # the keyframe before the first one
        tasks.append(ChunkTask(
            segment=segment.index, source=str(source), info=info, schedule=schedule, style=config.redaction,
            encoding=config.encoding,
            start=a, end=b, lo=lo, frame_pts=segment.frame_pts[lo - lo_global: hi - lo_global], seek=seek,
            lend=lent[ci], borrow=borrow,
            out=str(work / f"part-{segment.index:05d}-{ci:02d}.mp4") if len(chunks) > 1 else str(part)))
    return tasks


def planned_settings(config: Config, segments: list[Segment]) -> Config:
    """``config`` with the detection settings the segments were planned with (older plans carry none: then
    ``config``'s own). Segments of one run share them; mixing plans is refused."""
    plans = {json.dumps(s.detection, sort_keys=True) for s in segments if s.detection}
    if len(plans) > 1:
        raise InputError("segments planned with different detection settings cannot be redacted together")
    return config.with_detection(next(s.detection for s in segments if s.detection)) if plans else config


def redact_segments(source: str, segments: list[Segment], config: Config, work_dir: str,
                    detector_factory=None, progress=None, source_info: SourceInfo | None = None
                    ) -> list[SegmentResult]:
    """Redact several segments with one pool (each worker loads the model once for all of them)."""
    config = planned_settings(config, segments)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    if source_info is None:
        from .probe import probe
        source_info = probe(source)[0]
    workers = config.effective_workers
    # segments are already a unit of parallel work: split them into chunks only as far as that shortens the
    # run (each chunk border costs context frames decoded and detected again), largest chunks first
    ctx = Schedule.from_settings(config.detection, source_info.fps).context
    counts = chunk_counts([seg.frames for seg in segments], workers, ctx)
    all_at_once = 1 < sum(counts) <= workers  # every chunk gets a process of its own from the start
    per_segment = [chunk_tasks(source, seg, config, source_info, work, n, all_at_once)
                   for seg, n in zip(segments, counts)]
    tasks = [t for ts in per_segment for t in ts]
    order = dispatch_order([(t.start, t.end) for t in tasks])
    threads = max(1, usable_cores() // min(workers, len(tasks)))
    for t in tasks:
        t.threads = threads
        # chunks running side by side hand each other the detections at their cuts (ChunkWorker.boundary_keys)
        t.share = workers > 1 and len(tasks) > 1
    factory = detector_factory or make_detector
    t0 = time.perf_counter()
    try:
        with WorkerPool(min(workers, len(tasks)), run_chunk, lambda: factory(config, source_info)) as pool:
            done = pool.run([tasks[n] for n in order], progress)
        results = [None] * len(tasks)
        for n, r in zip(order, done):
            results[n] = r
    except BaseException:
        for t in tasks:
            Path(t.out).unlink(missing_ok=True)
        raise
    wall = time.perf_counter() - t0
    out = []
    pos = 0
    try:
        for seg, ts in zip(segments, per_segment):
            rs = results[pos:pos + len(ts)]
            pos += len(ts)
            out.append(_assemble(source, seg, ts, rs, source_info, work, wall * seg.frames / max(
                1, sum(s.frames for s in segments))))
    except BaseException:
        for t in tasks:
            Path(t.out).unlink(missing_ok=True)
        for r in out:
            Path(r.part).unlink(missing_ok=True)
        raise
    return out


def redact_segment(source: str, segment: Segment, config: Config, work_dir: str, detector_factory=None,
                   progress=None, source_info: SourceInfo | None = None) -> SegmentResult:
    return redact_segments(source, [segment], config, work_dir, detector_factory, progress, source_info)[0]


def _assemble(source, segment: Segment, tasks: list[ChunkTask], results: list[dict], info: SourceInfo, work: Path,
              wall: float) -> SegmentResult:
    part = work / f"part-{segment.index:05d}.mp4"
    det_path = work / f"detections-{segment.index:05d}.json"
    if len(tasks) > 1:
        try:
            concat_video([t.out for t in tasks], str(part), segment_index=segment.index)
        finally:
            for t in tasks:
                Path(t.out).unlink(missing_ok=True)
    frames = sum(r["frames"] for r in results)
    if frames != segment.frames:
        part.unlink(missing_ok=True)
        raise InputError(f"segment {segment.index}: decoded {frames} frames, planned {segment.frames}", source)
    detections = [d for r in results for d in r["detections"]]
    redacted = merge_ranges([rg for r in results for rg in r["redacted"]])
    stage = collections.Counter()
    dstats: dict = {}
    for r in results:
        stage.update(r["stage_seconds"])
        for k, v in r["detector_stats"].items():
            if isinstance(v, (int, float)):
                dstats[k] = dstats.get(k, 0) + v
    tmp = det_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"segment": segment.index, "time_base": info.time_base, "frames": detections,
                               "redacted": redacted,
                               "redacted_share": [x for r in results for x in r.get("redacted_share", [])]}))
    os.replace(tmp, det_path)
    return SegmentResult(
        index=segment.index, part=str(part), detections=str(det_path), frames=frames,
        first_pts=results[0]["first_pts"], last_pts=results[-1]["last_pts"],
        detected_frames=sum(r["detected_frames"] for r in results),
        detected_with_faces=sum(r["detected_with_faces"] for r in results),
        faces=sum(r["faces"] for r in results),
        redacted_frames=sum(r["redacted_frames"] for r in results),
        workers=len(tasks), wall_seconds=round(wall, 4),
        stage_seconds={k: round(v, 4) for k, v in stage.items()}, detector_stats=dstats)
