"""Redact planned segments: split each into chunks, run the chunks in the worker pool (``chunk.py``), join
each segment's chunk parts into its part file and detections sidecar.

Chunks are cut on fine-pass frames (a chunk's small-face tracks start at the fine pass that begins each of its
fine intervals) and read ``Schedule.context`` frames of context on each side, so results do not depend on
where segments or chunks were cut. Any chunk's failure fails the run: every part is removed and nothing is
returned.
"""
from __future__ import annotations

import collections
import json
import os
import time
from pathlib import Path

from .chunk import ChunkTask, run_chunk
from .config import Config, usable_cores
from .detectors import make_detector
from .errors import InputError
from .pool import WorkerPool
from .records import Keyframe, Segment, SegmentResult, SourceInfo
from .report import merge_ranges
from .remux import concat_video
from .schedule import Schedule

MIN_CHUNK_FRAMES = 12


def split_chunks(segment: Segment, workers: int, ctx: int, period: int = 0) -> list[tuple[int, int, Keyframe]]:
    """[(start, end, seek_keyframe)] covering the segment. With a fine pass every ``period`` frames, cuts fall
    on fine-pass frames: a chunk's small-face tracks start at the fine pass that begins each of its fine
    intervals, so a cut there costs one duplicated fine pass and a few coarse samples, not a track chain.
    Without one, starts snap to keyframes when one is close (less decoding from the keyframe before)."""
    n = segment.frames
    # a chunk decodes ctx frames of context on each side: keep chunks at least twice that long
    count = max(1, min(workers, n // max(MIN_CHUNK_FRAMES, 2 * ctx)))
    keys = sorted(segment.keyframes, key=lambda k: k.frame)
    key_idx = [k.frame for k in keys]
    bounds = [segment.start_frame]
    for c in range(1, count):
        ideal = segment.start_frame + round(c * n / count)
        if period:
            near = [round(ideal / period) * period + d * period for d in (0, -1, 1)]
            near = [f for f in near if bounds[-1] < f < segment.end_frame]
        else:
            near = [f for f in key_idx if abs(f - ideal) <= n / count / 4 and bounds[-1] < f < segment.end_frame]
        cut = min(near, key=lambda f: abs(f - ideal)) if near else ideal
        if cut > bounds[-1]:
            bounds.append(cut)
    bounds.append(segment.end_frame)
    chunks = []
    for a, b in zip(bounds, bounds[1:]):
        need = max(0, a - ctx)
        seek = keys[0]
        for k in keys:
            if k.frame <= need:
                seek = k
        chunks.append((a, b, seek))
    return chunks


def chunk_counts(frames: list[int], workers: int, ctx: int) -> list[int]:
    """How many chunks to split each segment (``frames`` frames each) into for ``workers`` processes: the
    fewest that give the shortest estimated run, the chunks handed out largest first (each extra chunk
    counted ``ctx`` frames longer, for the context it reads). One segment on two workers: two chunks; three
    equal segments on two: one of them split in two (a worker would otherwise redact two whole segments
    while the other idles after one)."""
    most = [max(1, n // max(MIN_CHUNK_FRAMES, 2 * ctx)) for n in frames]  # chunks at least twice the context
    workers = max(1, workers)

    def makespan(counts):
        loads = [0.0] * workers
        for size in sorted((n / c + (ctx if c > 1 else 0) for n, c in zip(frames, counts) for _ in range(c)),
                           reverse=True):
            loads[loads.index(min(loads))] += size
        return max(loads)

    counts = [1] * len(frames)
    best = makespan(counts)
    while True:
        options = [(makespan(cs), cs) for j in range(len(frames)) if counts[j] < most[j]
                   for cs in [counts[:j] + [counts[j] + 1] + counts[j + 1:]]]
        if not options:
            return counts
        span, cs = min(options, key=lambda o: o[0])
        if span >= best:
            return counts
        best, counts = span, cs


def dispatch_order(ranges: list[tuple[int, int]]) -> list[int]:
    """The order the pool hands chunks ([start, end) frame ranges) out in: largest first (the estimate of
    ``chunk_counts``); among equal ones the later first, so the chunk after a cut has usually published its
    detections there by the time the chunk before it gets to the cut (``ChunkWorker.tail_from_next_chunk``)."""
    return sorted(range(len(ranges)), key=lambda n: (ranges[n][0] - ranges[n][1], -ranges[n][0]))


def hand_over(schedule: Schedule, cut: int, after: tuple[int, int]) -> int:
    """Frames after a cut that the chunk before it encodes, covering them with its own detections before the
    cut and those the chunk ``after`` = [start, end) makes from the cut on (it still detects them): as many as
    a frame's boxes can reach back over the cut (``edge_reach``), so the chunk after needs no frame before the
    cut (``decode_from``). Only on a cut the chunks share detections at (a fine-pass frame), and few enough that
    the chunk after has covered them about halfway through its own frames (at most ``latency``: the chunk
    after still holds every detection they need when it hands them over)."""
    if schedule.fine and cut % schedule.fine:
        return 0
    return max(0, min(schedule.edge_reach, schedule.latency, (after[1] - after[0] - schedule.latency) // 2))


def decode_from(schedule: Schedule, start: int, end: int, lend: int) -> int:
    """The first frame a chunk encoding [start + lend, end) and detecting from ``start`` on must decode: the
    first context frame that gets a pass for the frames it encodes (``Schedule.span``), and never a frame before
    that. So with a full hand-over (``hand_over``: the chunk before covers the ``lend`` frames itself) it is the
    cut: decoding begins at the keyframe before the cut -- at the cut itself where that is a keyframe (short
    keyframe intervals: phones, dashcams) -- instead of before the context."""
    return min(start, schedule.span(start + lend, end)[0])


# What a chunk's work costs, per unit, in decoded frames (bench/scaling.py --chunk-model prices them on this
# machine): YuNet at 1080p on one core, quiet: decode 4.3 ms a frame, redact + encode 28.5, coarse pass 26,
# fine pass 192, a track window ~10; CenterFace's passes cost ~4-5x YuNet's. Only the balance of the chunks at a
# cut depends on them (``balanced_hand_over``), never a result. YuNet's coarse price is that of a 640x384 pass
# with its large-face pass; its 512x288 coarse pass alone costs ~14 ms in the pipeline (~3 decoded frames), so
# the price is high by about half: it tilts the balance slightly towards handing over fewer frames.
WORK_PRICES = {"yunet": {"decode": 1.0, "encode": 6.6, "coarse": 6.0, "fine": 45.0, "track": 2.3},
               "centerface": {"decode": 1.0, "encode": 6.6, "coarse": 25.0, "fine": 230.0, "track": 8.0}}


def chunk_work(schedule: Schedule, prices: dict, seek: int, lo: int, hi: int, start: int, end: int, lend: int,
               borrow: int, shares: bool) -> float:
    """The estimated cost of a chunk (``WORK_PRICES``): the frames it decodes from ``seek``, the passes the
    ``Schedule`` runs on them (those past the end are taken from the next chunk when it ``shares``), the frames
    it encodes."""
    last = end if shares else hi
    decoded = (end + borrow if shares else hi) - seek
    fine = coarse = track = 0
    for i in range(lo, last):
        p = schedule.passes(i, start, end, tracking=True)
        fine += p.detect
        coarse += p.coarse and not p.detect
        track += p.track
    return (prices["decode"] * decoded + prices["encode"] * (end + borrow - start - lend) + prices["fine"] * fine
            + prices["coarse"] * coarse + prices["track"] * track)


def balanced_hand_over(schedule: Schedule, prices: dict, keys: list[int], before: tuple[int, int],
                       after: tuple[int, int], lend_before: int, most: int, lo_global: int = 0) -> int:
    """How many frames past the cut between chunks ``before`` and ``after`` ([start, end) each) the chunk
    before encodes (0..``most``): the count that makes the longer of the two shortest by ``chunk_work`` (the
    chunk after decodes from the keyframe before what it needs, ``decode_from``; of equal ones, the larger
    count: less work in all). ``keys``: the segment's keyframes (frame numbers, sorted)."""
    (a0, b0), (a, b) = before, after

    def seek_for(lo):
        return max([k for k in keys if k <= lo], default=keys[0] if keys else lo)

    def costs(n):
        lo0 = max(lo_global, decode_from(schedule, a0, b0, lend_before))
        lo1 = max(lo_global, decode_from(schedule, a, b, n))
        hi0, hi1 = schedule.span(a0, b0)[1], schedule.span(a, b)[1]
        w0 = chunk_work(schedule, prices, seek_for(lo0), lo0, max(hi0, b0 + n), a0, b0, lend_before, n, True)
        w1 = chunk_work(schedule, prices, seek_for(lo1), lo1, hi1, a, b, n, 0, True)
        return max(w0, w1), w0 + w1
    return min(range(most + 1), key=lambda n: (*costs(n), -n))


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
    threads = max(1, usable_cores() // min(workers, len(chunks)))
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
            threads=threads, lend=lent[ci], borrow=borrow,
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
