"""The hand-over at a cut between two chunks running side by side: how many frames past the cut the chunk
before encodes with the detections the chunk after makes (``hand_over``, ``balanced_hand_over``), where the chunk
after then starts decoding (``decode_from``), and the work-price model that balances the two (``chunk_work``,
``WORK_PRICES``). Only the balance depends on the prices, never a result.
"""
from __future__ import annotations

from .schedule import Schedule


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
