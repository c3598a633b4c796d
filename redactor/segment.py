"""Redact one planned segment: decode exactly its frames, detect, cover, blur, encode H.264 (libx264).

The segment is split into one chunk per worker process. Each worker opens the source itself, seeks to the
keyframe before its chunk (minus context), decodes and discards frames before it, so frames never travel
through pipes. Detection is two-tier (see README "Speed"): a coarse whole-frame pass on frames whose *global*
index is a multiple of ``detect_every`` (k) and a fine small-face pass on multiples of ``fine_every`` (K);
between fine passes, the small faces the fine pass found are tracked every k frames in windows around them.
A frame is covered by every coarse detection within ``hold + k - 1`` frames of it, plus boxes interpolated
or extrapolated from the samples around it (``tracking.py``); by the fine boxes of the fine passes on either
side of it; and by the small-face track boxes of its own fine interval ``[mK, (m+1)K)`` (tracks start afresh
at each fine pass). So a frame is encoded only once the next fine pass after it has run, chunks are cut on
fine-pass frames, and everything depends on global indices: results do not depend on where segments or
chunks were cut. Any detector error fails the chunk, and with it the segment: its part file is removed and
nothing is returned.
"""
from __future__ import annotations

import collections
import json
import os
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from . import blur
from .config import Config, usable_cores
from .detectors import make_detector
from .errors import DetectionError, InputError, RedactorError
from .pool import WorkerPool
from .remux import _unlink, concat_video, exact_mov_options
from .probe import open_input, parse_tb
from .records import Keyframe, Segment, SegmentResult, SourceInfo
from .report import frame_ranges, merge_ranges
from .tracking import cover_boxes, match

MIN_CHUNK_FRAMES = 12
EMPTY5 = np.zeros((0, 5), dtype=np.float32)


def encoder_format(info: SourceInfo) -> str:
    fmt = blur.working_format(info.pix_fmt, info.bit_depth)
    sx, sy, _ = blur.PLANAR[fmt]
    if (sx and info.width % 2) or (sy and info.height % 2):
        # x264 cannot encode subsampled chroma at odd sizes; 4:4:4 keeps every pixel and the exact size
        fmt = "yuv444p10le" if blur.PLANAR[fmt][2] > 8 else "yuv444p"
    return fmt


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


def _chunk_tasks(source: str, segment: Segment, config: Config, info: SourceInfo, work: Path,
                 workers: int) -> list[dict]:
    chunks = split_chunks(segment, workers, config.context_frames, config.fine_period)
    threads = max(1, usable_cores() // min(workers, len(chunks)))
    lo_global = segment.start_frame - segment.context_before
    part = work / f"part-{segment.index:05d}.mp4"
    tasks = []
    for ci, (a, b, seek) in enumerate(chunks):
        lo = max(lo_global, a - config.context_frames)
        hi = min(segment.end_frame + segment.context_after, b + config.context_frames)
        tasks.append({
            "segment": segment.index, "source": str(source), "info": info, "config": config,
            "start": a, "end": b, "lo": lo, "frame_pts": segment.frame_pts[lo - lo_global: hi - lo_global],
            "seek": seek, "threads": threads,
            # the video's last frame gets a fine pass too: small faces there are tracked back from it
            "last_frame": segment.end_frame - 1 if segment.end_pts is None else -1,
            "out": str(work / f"part-{segment.index:05d}-{ci:02d}.mp4") if len(chunks) > 1 else str(part),
        })
    return tasks


def redact_segments(source: str, segments: list[Segment], config: Config, work_dir: str,
                    detector_factory=None, progress=None, source_info: SourceInfo | None = None
                    ) -> list[SegmentResult]:
    """Redact several segments with one pool (each worker loads the model once for all of them)."""
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    if source_info is None:
        from .probe import probe
        source_info = probe(source)[0]
    workers = config.effective_workers
    # segments are already a unit of parallel work: split each into chunks only as far as needed to give
    # every worker something (each chunk border costs context frames decoded and detected twice)
    per_seg = max(1, -(-workers // max(1, len(segments))))
    per_segment = [_chunk_tasks(source, seg, config, source_info, work, per_seg) for seg in segments]
    tasks = [t for ts in per_segment for t in ts]
    threads = max(1, usable_cores() // min(workers, len(tasks)))
    for t in tasks:
        t["threads"] = threads
    factory = detector_factory or make_detector
    t0 = time.perf_counter()
    try:
        with WorkerPool(min(workers, len(tasks)), run_chunk, lambda: factory(config, source_info)) as pool:
            results = pool.run(tasks, progress)
    except BaseException:
        for t in tasks:
            _unlink(t["out"])
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
            _unlink(t["out"])
        for r in out:
            _unlink(r.part)
        raise
    return out


def redact_segment(source: str, segment: Segment, config: Config, work_dir: str, detector_factory=None,
                   progress=None, source_info: SourceInfo | None = None) -> SegmentResult:
    return redact_segments(source, [segment], config, work_dir, detector_factory, progress, source_info)[0]


def _assemble(source, segment: Segment, tasks: list[dict], results: list[dict], info: SourceInfo, work: Path,
              wall: float) -> SegmentResult:
    part = work / f"part-{segment.index:05d}.mp4"
    det_path = work / f"detections-{segment.index:05d}.json"
    if len(tasks) > 1:
        try:
            concat_video([t["out"] for t in tasks], str(part), segment_index=segment.index)
        finally:
            for t in tasks:
                _unlink(t["out"])
    frames = sum(r["frames"] for r in results)
    if frames != segment.frames:
        _unlink(part)
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
                               "redacted": redacted}))
    os.replace(tmp, det_path)
    return SegmentResult(
        index=segment.index, part=str(part), detections=str(det_path), frames=frames,
        first_pts=results[0]["first_pts"], last_pts=results[-1]["last_pts"],
        detected_frames=sum(r["detected_frames"] for r in results),
        faces=sum(r["faces"] for r in results),
        redacted_frames=sum(r["redacted_frames"] for r in results),
        workers=len(tasks), wall_seconds=round(wall, 4),
        stage_seconds={k: round(v, 4) for k, v in stage.items()}, detector_stats=dstats)


def _open_encoder(path: str, info: SourceInfo, config: Config, fmt: str, threads: int, color_range: int):
    tb = parse_tb(info.time_base)
    out = av.open(path, "w", format="mp4", options=exact_mov_options(tb))  # a part's start stays exact
    rate = Fraction(info.fps).limit_denominator(1001) if info.fps > 0 else Fraction(30)
    params = "bframes=0"  # no B-frames: DTS == PTS, so independently encoded parts concatenate cleanly
    s = out.add_stream("libx264", rate=rate, options={
        "crf": str(config.crf), "preset": config.preset, "x264-params": params, "threads": str(threads)})
    s.width, s.height = info.width, info.height
    s.pix_fmt = fmt
    s.time_base = tb
    s.codec_context.time_base = tb
    if color_range:
        s.codec_context.color_range = color_range
    return out, s


MAX_MISSES = 2  # a small-face track not found again is carried on its predicted path this many samples
# Track windows, in face sizes from the predicted centre to the window's edge: a face whose velocity is known
# is looked for within TRACK_SPREAD, one without (new, or lost last time) within SEARCH_SPREAD. The window is
# inferred with the face at the fine pass's scale, so its cost grows with the square of the spread.
TRACK_SPREAD = 2.5
SEARCH_SPREAD = 4.0
# Track boxes are paired between samples (interpolated, extrapolated) up to this many face sizes per frame
# apart: the tracker follows small faces this fast (measured: 20 px faces moving 95 px/frame in 4K).
TRACK_SPEED = 8.0
TRACK_GROWN = 1.5  # a track ends once its face is this many times the coarse pass's cut-off


def _track_step(detector, frame, tracks, velocity, misses, k: int, small_face: float, coarse: np.ndarray):
    """One tracking step for small faces, k frames after the last one. Returns (boxes to cover on this
    frame, tracks, velocity, misses, fresh): faces found in the tracks' windows, plus lost tracks carried on
    their predicted path. Small faces the coarse pass found that no track explains start new tracks
    (``fresh``)."""
    found = EMPTY5
    pred = tracks.copy()
    if len(tracks):
        pred[:, 0:4] += np.tile(velocity * k, 2)
        spread = np.where((misses == 0) & np.any(velocity != 0, axis=1), TRACK_SPREAD, SEARCH_SPREAD)
        found = np.asarray(detector.track(frame, pred, spread), dtype=np.float32).reshape(-1, 5)
    size = np.maximum(found[:, 2] - found[:, 0], found[:, 3] - found[:, 1])
    # a track ends once its face has grown well past the coarse pass's cut-off (hysteresis: a face near the
    # cut-off measured a little larger in one window must not lose its track and come back as a new one)
    small = found[size < TRACK_GROWN * small_face]
    pairs = match(pred, small, max_dist=4.5)  # anything found in its window continues the track
    got = {a for a, _ in pairs}
    vel = np.zeros((len(small), 2), np.float32)
    for a, bi in pairs:
        ca = (tracks[a, 0:2] + tracks[a, 2:4]) / 2
        cb = (small[bi, 0:2] + small[bi, 2:4]) / 2
        # a carried track's box is already its prediction: add back the motion assumed while it was lost
        vel[bi] = ((cb - ca) + velocity[a] * k * misses[a]) / (k * (misses[a] + 1))
    new_t, new_v, new_m = [small], [vel], [np.zeros(len(small), np.int32)]
    # a lost track is carried on its predicted path while that stays in the picture
    cx, cy = (pred[:, 0] + pred[:, 2]) / 2, (pred[:, 1] + pred[:, 3]) / 2
    inside = (cx >= 0) & (cy >= 0) & (cx < frame.width) & (cy < frame.height)
    lost = [a for a in range(len(tracks)) if a not in got and misses[a] < MAX_MISSES and inside[a]]
    carried = pred[lost]
    if lost:
        new_t.append(carried)
        new_v.append(velocity[lost])
        new_m.append(misses[lost] + 1)
    # small faces the coarse pass found that no track covers yet become tracks too
    csize = np.maximum(coarse[:, 2] - coarse[:, 0], coarse[:, 3] - coarse[:, 1]) if len(coarse) else coarse[:, 0]
    csmall = coarse[csize < small_face] if len(coarse) else coarse
    known = np.concatenate(new_t)
    seen = {bi for _, bi in match(known, csmall, max_dist=1.0)}
    fresh = csmall[[j for j in range(len(csmall)) if j not in seen]]
    if len(fresh):
        new_t.append(fresh)
        new_v.append(np.zeros((len(fresh), 2), np.float32))
        new_m.append(np.zeros(len(fresh), np.int32))
    cover = np.concatenate([found, carried]) if len(carried) else found
    return cover, np.concatenate(new_t), np.concatenate(new_v), np.concatenate(new_m), fresh


def _track_back(detector, samples: list, seeds: np.ndarray, seed_frame: int, small_face: float) -> dict:
    """Follow ``seeds`` (small faces a fine pass found on ``seed_frame`` that no forward track explains:
    faces that appeared, or were lost, since the previous fine pass) backwards through ``samples``
    [(frame index, frame)], newest first, until every track is lost. Returns {frame index: boxes}."""
    out = {}
    tracks = np.asarray(seeds, np.float32).reshape(-1, 5)
    velocity = np.zeros((len(tracks), 2), np.float32)
    misses = np.zeros(len(tracks), np.int32)
    last = seed_frame
    for j, frame in samples:
        if not len(tracks):
            break
        cover, tracks, velocity, misses, _ = _track_step(detector, frame, tracks, velocity, misses, last - j,
                                                         small_face, EMPTY5)
        last = j
        if len(cover):
            out[j] = cover
    return out


def run_chunk(detector, task: dict, progress) -> dict:
    """Worker body: one chunk [start, end) of a segment -> an encoded MP4 part (runs in a worker process;
    ``detector`` is the worker's own, built once)."""
    cfg: Config = task["config"]
    info: SourceInfo = task["info"]
    start, end, lo = task["start"], task["end"], task["lo"]
    pts_list: list[int] = task["frame_pts"]
    threads = int(task["threads"])
    try:
        import cv2
        cv2.setNumThreads(threads)
    except Exception:  # pragma: no cover
        pass
    if hasattr(detector, "set_threads"):
        detector.set_threads(threads)
    stage = collections.Counter()
    fmt = encoder_format(info)
    index = {p: lo + i for i, p in enumerate(pts_list)}
    index_pts = {lo + i: p for i, p in enumerate(pts_list)}
    first_pts, last_pts = pts_list[0], pts_list[-1]
    k = cfg.sample_every
    K = cfg.fine_period
    two_tier = bool(K) and hasattr(detector, "coarse") and hasattr(detector, "two_tier") and \
        detector.two_tier(info.width, info.height)
    if not two_tier:
        K = 0
    small_face = detector.coarse_min_face(info.width, info.height) if K else 0.0
    window = int(cfg.hold) + k - 1
    kt = cfg.track_period  # small-face tracking step (divides k)
    window_t = int(cfg.hold) + kt - 1
    # fine boxes cover every frame up to the fine passes on either side (the two around a frame both reach it)
    window_fine = K - 1 if K else 0
    # coarse samples this far from a frame shape its boxes (held, interpolated, extrapolated)
    reach = window + k
    latency = max(reach, window_fine) if K else window
    # small-face tracks are local to a fine interval [mK, (m+1)K): they start from the fine pass at mK and
    # cover only frames of that interval, so a chunk runs the chains of the intervals it overlaps and nothing
    # before them (results still do not depend on where chunks were cut)
    base = start - start % K if K else start
    last_frame = int(task.get("last_frame", -1))
    fine: dict[int, np.ndarray] = {}
    tdets: dict[int, np.ndarray] = {}
    tracks = EMPTY5
    velocity = np.zeros((0, 2), np.float32)
    misses = np.zeros(0, np.int32)
    last_track = 0
    dets: dict[int, np.ndarray] = {}
    det_records: dict[int, tuple[int, np.ndarray]] = {}
    n_tracked: collections.Counter = collections.Counter()  # per frame: how many of its boxes are track boxes
    redacted: list[int] = []  # frames of this chunk with at least one redacted region
    counters = collections.Counter()
    pending: collections.deque = collections.deque()
    out = ostream = None
    emitted_since = 0

    def emit(i: int, frame):
        nonlocal out, ostream, emitted_since
        if not (start <= i < end):
            return
        t1 = time.perf_counter()
        boxes = cover_boxes(i, dets, k, window, extrapolate=bool(K))
        if K:
            m0 = i - i % K
            local = {j: v for j, v in tdets.items() if m0 <= j < m0 + K}
            more = [b for b in (cover_boxes(i, local, kt, window_t, extrapolate=True, speed=TRACK_SPEED),
                                cover_boxes(i, fine, K, window_fine)) if len(b)]
            if more:
                boxes = np.concatenate([boxes] + more) if len(boxes) else np.concatenate(more)
        if frame.format.name != fmt:
            pts_, tb_ = frame.pts, frame.time_base
            frame = frame.reformat(format=fmt)
            frame.pts, frame.time_base = pts_, tb_
        if len(boxes):
            frame, eb = blur.redact_frame(frame, boxes, cfg.style, cfg.mask, cfg.enlarge)
            if len(eb):
                counters["redacted_frames"] += 1
                redacted.append(i)
        stage["redact"] += time.perf_counter() - t1
        t1 = time.perf_counter()
        if out is None:
            out, ostream = _open_encoder(task["out"], info, cfg, fmt, threads, int(frame.color_range or 0))
        for pkt in ostream.encode(frame):
            out.mux(pkt)
        stage["encode"] += time.perf_counter() - t1
        counters["frames"] += 1
        if counters["frames"] == 1:
            counters["first_pts"] = frame.pts
        counters["last_pts"] = frame.pts
        emitted_since += 1
        if emitted_since >= 8:
            progress(emitted_since)
            emitted_since = 0

    def follow_back(seeds: np.ndarray, i: int, after: int) -> None:
        """Track ``seeds`` (small faces found on frame i) back through the buffered frames down to the fine
        pass ``after`` that starts their interval (where that pass missed them): one frame back first to learn
        each face's velocity, then every kt-th frame (the tracking step)."""
        samples = [(j, f) for j, f in reversed(pending) if after <= j < i and (j % kt == 0 or j == i - 1)]
        try:
            back = _track_back(detector, samples, seeds, i, small_face)
        except Exception as e:  # fail closed
            raise DetectionError(f"detector failed tracking back from frame {i}: {type(e).__name__}: {e}",
                                 task["source"]) from e
        for j, bb in back.items():
            tdets[j] = np.concatenate([tdets[j], bb]) if j in tdets else bb
            if start <= j < end:
                pj, old = det_records.get(j, (index_pts[j], EMPTY5))
                det_records[j] = (pj, np.concatenate([old, bb]))
                n_tracked[j] += len(bb)  # appended after the detector's own boxes

    def decode_all(seek_pts: int | None):
        nonlocal tracks, velocity, misses, last_track
        container = open_input(task["source"])
        try:
            vs = container.streams[info.video_index]
            vs.codec_context.thread_count = threads
            vs.thread_type = "AUTO"
            if seek_pts is not None:
                container.seek(seek_pts, stream=vs, backward=True, any_frame=False)
            expected = lo
            it = container.decode(vs)
            while True:
                t1 = time.perf_counter()
                try:
                    frame = next(it)
                except StopIteration:
                    break
                except av.error.FFmpegError as e:
                    raise InputError(f"decoding failed near frame {expected} ({e})", task["source"]) from None
                finally:
                    stage["decode"] += time.perf_counter() - t1
                p = frame.pts
                if p is None or p < first_pts:
                    continue
                if p > last_pts:
                    break
                i = index.get(p)
                if i is None or i != expected:
                    if expected == lo and seek_pts is not None:
                        return False  # the seek overshot: decode from the beginning instead
                    raise InputError(f"frame with pts {p} decoded out of plan (expected frame {expected})",
                                     task["source"])
                expected += 1
                is_fine = not K or i % K == 0 or i == last_frame
                # Detect only where a result can reach this chunk's frames (context frames further out are
                # decoded, not detected): coarse samples within ``reach``, fine passes within K - 1, and the
                # small-face track chain of every fine interval that holds a chunk frame (from its start).
                chain = bool(K) and base <= i and i - i % K < end
                # one frame after a fine pass, its small faces are looked for again to learn their velocity
                probe_here = chain and kt > 1 and i % K == 1 and len(tracks) > 0
                if not K:
                    run = i % k == 0 and start - window <= i < end + window
                elif is_fine:
                    run = start - window_fine <= i < end + window_fine
                else:
                    run = (i % k == 0 and (start - reach <= i < end + reach or chain)) or probe_here or \
                        (chain and i % kt == 0)
                if run:
                    t1 = time.perf_counter()
                    t_track = 0.0
                    try:
                        if not K:
                            b = detector([frame])[0]
                        elif is_fine:
                            b = detector([frame])[0]
                        else:
                            if i % k == 0:
                                b = np.asarray(detector.coarse([frame])[0], np.float32).reshape(-1, 5)
                            else:  # velocity probe, or a tracking step between coarse samples
                                b = EMPTY5
                            extra = EMPTY5
                            if chain:
                                t2 = time.perf_counter()
                                extra, tracks, velocity, misses, fresh = _track_step(
                                    detector, frame, tracks, velocity, misses, i - last_track, small_face, b)
                                last_track = i
                                if len(fresh):
                                    # small faces the coarse pass found first here: covered back to where
                                    # they appeared (since the interval's fine pass)
                                    extra = np.concatenate([extra, fresh])
                                    follow_back(fresh, i, i - i % K)
                                t_track = time.perf_counter() - t2
                                stage["track"] += t_track
                    except RedactorError:
                        raise
                    except Exception as e:  # fail closed: no frame of this chunk is kept
                        raise DetectionError(f"detector failed on frame {i} (pts {p}): {type(e).__name__}: {e}",
                                             task["source"]) from e
                    stage["detect_fine" if K and is_fine else "detect"] += time.perf_counter() - t1 - t_track
                    b = np.asarray(b, dtype=np.float32).reshape(-1, 5)
                    dets[i] = b
                    if K and not is_fine:
                        tdets[i] = extra
                        if len(extra):
                            b = np.concatenate([b, extra])
                            if start <= i < end:
                                n_tracked[i] += len(extra)
                    if K and is_fine:
                        # fine boxes are held until the next fine pass only where the coarse pass cannot
                        # follow them (small faces); big faces are followed by the coarse pass every k frames.
                        # The small ones are also tracked (fine-scale windows around them) every k frames.
                        size = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
                        fine[i] = b[size < small_face]
                        # small faces here that the forward tracks of the interval before do not explain are
                        # followed backwards through it (they appeared, or were missed, since its fine pass)
                        prev = (i - 1) - (i - 1) % K
                        if i > 0 and i > start and prev < end - 1 and len(fine[i]) and kt > 1:
                            t2 = time.perf_counter()
                            ok = misses == 0
                            pred = tracks[ok].copy()
                            pred[:, 0:4] += np.tile(velocity[ok] * (i - last_track), 2)
                            known = {bi for _, bi in match(pred, fine[i], max_dist=2.0)}
                            seeds = fine[i][[x for x in range(len(fine[i])) if x not in known]]
                            follow_back(seeds, i, prev)
                            stage["track_back"] += time.perf_counter() - t2
                        # a new interval's tracks start here afresh (velocity from the probe one frame on);
                        # its track boxes start from these, so frames up to the first sample interpolate
                        tracks = fine[i]
                        tdets[i] = fine[i]
                        velocity = np.zeros((len(tracks), 2), np.float32)
                        misses = np.zeros(len(tracks), np.int32)
                        last_track = i
                    counters["detected_frames"] += 1 if start <= i < end else 0
                    if start <= i < end:
                        counters["faces"] += len(b)
                        if len(b):
                            det_records[i] = (p, b)
                pending.append((i, frame))
                while pending and pending[0][0] + latency <= i:
                    emit(*pending.popleft())
                for j in [j for j in dets if j < i - 2 * latency - k]:
                    del dets[j]
                    tdets.pop(j, None)
                for j in [j for j in fine if j < i - 2 * latency - K]:
                    del fine[j]
            if expected != lo + len(pts_list):
                raise InputError(f"video ended after frame {expected - 1}; the plan expects "
                                 f"{lo + len(pts_list) - 1} (file truncated or damaged)", task["source"])
            while pending:
                emit(*pending.popleft())
            return True
        finally:
            container.close()

    try:
        seek = task["seek"]
        seek_pts = None if seek.frame == 0 else seek.pts
        if not decode_all(seek_pts):
            pending.clear()
            dets.clear()
            tdets.clear()
            fine.clear()
            tracks, velocity, misses = EMPTY5, np.zeros((0, 2), np.float32), np.zeros(0, np.int32)
            last_track = 0
            det_records.clear()
            n_tracked.clear()
            redacted.clear()
            counters.clear()
            decode_all(None)
        t1 = time.perf_counter()
        if out is not None:
            for pkt in ostream.encode():
                out.mux(pkt)
            out.close()
            out = None
        stage["encode"] += time.perf_counter() - t1
    except BaseException:
        if out is not None:
            try:
                out.close()
            except Exception:
                pass
        _unlink(task["out"])
        raise
    if emitted_since:
        progress(emitted_since)
    stats = detector.stats() if hasattr(detector, "stats") else {}
    return {"frames": counters["frames"], "first_pts": counters["first_pts"], "last_pts": counters["last_pts"],
            "detected_frames": counters["detected_frames"], "faces": counters["faces"],
            "redacted_frames": counters["redacted_frames"],
            "detections": [{"frame": j, "pts": pj, "boxes": np.round(bj, 2).tolist(), "tracked": n_tracked[j]}
                           for j, (pj, bj) in sorted(det_records.items())],
            "redacted": frame_ranges(redacted),
            "stage_seconds": dict(stage), "detector_stats": stats, "pid": os.getpid()}
