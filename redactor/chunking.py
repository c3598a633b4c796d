"""Where a segment is cut into chunks for the worker pool, how many chunks each segment of a run gets, and the
order the pool hands them out in.

Chunks are cut on fine-pass frames (a chunk's small-face tracks start at the fine pass that begins each of its
fine intervals) and read ``Schedule.context`` frames of context on each side, so results do not depend on
where segments or chunks were cut.
"""
from __future__ import annotations

from .records import Keyframe, Segment

MIN_CHUNK_FRAMES = 12


def most_chunks(frames: int, ctx: int) -> int:
    """The most chunks ``frames`` frames are cut into: a chunk decodes ``ctx`` frames of context on each side,
    so it is kept at least twice that long (and at least ``MIN_CHUNK_FRAMES``)."""
    return max(1, frames // max(MIN_CHUNK_FRAMES, 2 * ctx))


def split_chunks(segment: Segment, workers: int, ctx: int, period: int = 0) -> list[tuple[int, int, Keyframe]]:
    """[(start, end, seek_keyframe)] covering the segment. With a fine pass every ``period`` frames, cuts fall
    on fine-pass frames: a chunk's small-face tracks start at the fine pass that begins each of its fine
    intervals, so a cut there costs one duplicated fine pass and a few coarse samples, not a track chain.
    Without one, starts snap to keyframes when one is close (less decoding from the keyframe before)."""
    n = segment.frames
    count = min(max(1, workers), most_chunks(n, ctx))
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
    most = [most_chunks(n, ctx) for n in frames]
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
