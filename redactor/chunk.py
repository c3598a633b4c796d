"""One chunk of a segment, in a worker process: decode -> detect -> cover -> redact -> encode.

A ``ChunkWorker`` opens the source itself, seeks to the keyframe before its chunk (minus context), decodes and
discards frames before it, so frames never travel through pipes. Which passes run on a frame is the
``Schedule``'s call (by global index); what the detections cover is ``tracking.Coverage``'s; small faces
between fine passes are followed by ``tracking.SmallFaceTracks`` (forward, every tracking step) and
``tracking.track_back`` (backwards through the buffered frames, for faces first seen later). A frame is
encoded once the frame ``schedule.latency`` later has been detected, so results depend on global indices only,
never on where chunks were cut. Any detector error fails the chunk closed: its part file is removed and
nothing is returned. A seek that lands past the chunk's first frame is retried by a fresh worker decoding
from the start.
"""
from __future__ import annotations

import collections
import os
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from . import blur
from .boxes import EMPTY, as_boxes, sizes
from .config import EncodingSettings, StyleSettings
from .errors import DetectionError, InputError, RedactorError, WorkerError
from .probe import open_input, parse_tb
from .records import Keyframe, SourceInfo
from .remux import exact_mov_options
from .report import frame_ranges
from .schedule import Passes, Schedule
from .tracking import Coverage, SmallFaceTracks, track_back

PROGRESS_EVERY = 8  # frames between progress messages to the parent


def encoder_format(info: SourceInfo) -> str:
    fmt = blur.working_format(info.pix_fmt, info.bit_depth)
    sx, sy, _ = blur.PLANAR[fmt]
    if (sx and info.width % 2) or (sy and info.height % 2):
        # x264 cannot encode subsampled chroma at odd sizes; 4:4:4 keeps every pixel and the exact size
        fmt = "yuv444p10le" if blur.PLANAR[fmt][2] > 8 else "yuv444p"
    return fmt


def open_encoder(path: str, info: SourceInfo, encoding, fmt: str, threads: int, color_range: int):
    """(container, stream): libx264 at ``encoding.crf``/``encoding.preset``, the source's time base and rate."""
    tb = parse_tb(info.time_base)
    out = av.open(path, "w", format="mp4", options=exact_mov_options(tb))  # a part's start stays exact
    try:
        rate = Fraction(info.fps).limit_denominator(1001) if info.fps > 0 else Fraction(30)
        params = "bframes=0"  # no B-frames: DTS == PTS, so independently encoded parts concatenate cleanly
        s = out.add_stream("libx264", rate=rate, options={
            "crf": str(encoding.crf), "preset": encoding.preset, "x264-params": params, "threads": str(threads)})
        s.width, s.height = info.width, info.height
        s.pix_fmt = fmt
        s.time_base = tb
        s.codec_context.time_base = tb
        if color_range:
            s.codec_context.color_range = color_range
    except BaseException:
        out.close()
        raise
    return out, s


@dataclass
class ChunkTask:
    """What a worker process is sent for one chunk: encode frames [start, end) of the source into ``out``,
    decoding [lo, lo + len(frame_pts)) from the keyframe ``seek``."""

    segment: int
    source: str
    info: SourceInfo
    schedule: Schedule
    style: StyleSettings
    encoding: EncodingSettings
    start: int
    end: int
    lo: int
    frame_pts: list[int]
    seek: Keyframe
    out: str
    threads: int = 1  # OpenCV's and x264's threads in the worker (``redact_segments`` shares the cores out)
    share: bool = False  # hand the detections at this chunk's start to the chunk ending there, take its own
    # end context's from the chunk starting there (through the pool, ``pool.Channel``), when available
    lend: int = 0  # the first ``lend`` frames are detected here but encoded by the chunk before, which gets the
    # detections from ``start`` on (``ChunkWorker.lend_coverage``) and covers them itself
    borrow: int = 0  # encode ``borrow`` frames past the end too, covered with the next chunk's detections (waits)


class PartEncoder:
    """The chunk's part file, opened at its first frame (whose colour range it keeps). As a context manager
    it removes the part when the block fails (fail closed: no partial output)."""

    def __init__(self, task: ChunkTask, fmt: str):
        self.task, self.fmt = task, fmt
        self.container = self.stream = None

    def __enter__(self) -> "PartEncoder":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or self.container is not None:
            self.abort()

    def encode(self, frame) -> None:
        if self.container is None:
            t = self.task
            self.container, self.stream = open_encoder(t.out, t.info, t.encoding, self.fmt, t.threads,
                                                       int(frame.color_range or 0))
        for pkt in self.stream.encode(frame):
            self.container.mux(pkt)

    def finish(self) -> None:
        if self.container is not None:
            for pkt in self.stream.encode():
                self.container.mux(pkt)
            self.container.close()
            self.container = None

    def abort(self) -> None:
        """Close and remove the part (fail closed: no partial output)."""
        if self.container is not None:
            try:
                self.container.close()
            except Exception:  # noqa: BLE001 - the part is removed anyway
                pass
            self.container = None
        Path(self.task.out).unlink(missing_ok=True)


class ChunkWorker:
    """The state of one pass over a chunk (see module doc); ``redact_chunk`` runs it."""

    def __init__(self, detector, task: ChunkTask, channel, encoder: PartEncoder):
        """``channel``: the pool's ``pool.Channel`` (progress, and the detections neighbouring chunks share)."""
        self.detector, self.task, self.channel, self.encoder = detector, task, channel, encoder
        info = task.info
        schedule = task.schedule
        if schedule.fine and not detector.two_tier(info.width, info.height):
            schedule = schedule.single_tier()
        self.schedule = schedule
        self.small_face = detector.coarse_min_face(info.width, info.height) if schedule.fine else 0.0
        self.fmt = encoder.fmt
        self.index = {p: task.lo + n for n, p in enumerate(task.frame_pts)}
        self.coverage = Coverage(schedule, info.width, info.height, self.small_face)
        self.tracks = SmallFaceTracks(self.small_face)
        self.pending: collections.deque = collections.deque()  # decoded frames waiting for their boxes
        self.records: dict[int, tuple[int, np.ndarray]] = {}  # frame -> (pts, boxes found on it)
        self.n_tracked: collections.Counter = collections.Counter()  # per frame: how many of them are track boxes
        self.redacted: list[int] = []  # frames of this chunk with at least one redacted region
        self.redacted_share: list[list] = []  # [frame, share of the picture its redacted regions cover]
        self.counters: collections.Counter = collections.Counter()
        self.stage: collections.Counter = collections.Counter()
        self.expected = task.lo
        self.unreported = 0
        # the channel to the neighbouring chunks, when this one shares detections with them
        self.neighbours = channel if task.share or task.lend or task.borrow else None
        if (task.lend or task.borrow) and self.neighbours is None:
            raise WorkerError("a chunk that hands frames over needs the pool's channel")
        if task.lend > schedule.latency + schedule.every:  # lend_coverage would hand over forgotten detections
            raise WorkerError(f"chunk [{task.start}, {task.end}): {task.lend} frames handed over, more than this "
                              f"schedule keeps detections for ({schedule.latency + schedule.every})", task.source)
        self.borrowed: dict = {}  # the next chunk's detections from this chunk's end on (Coverage's dicts)
        self.tail_shared = False
        self.decoded = 0  # frames out of the decoder, those before the chunk's first needed one included
        # the detections a chunk ending at this chunk's start needs (it would decode and detect them again)
        self.publish_keys = set(self.boundary_keys(task.start, task.end)) if self.neighbours and task.start else set()
        self.published: dict = {}
        self.shared_in = 0  # frames past the end whose detections came from the next chunk

    # ------------------------------------------------------------------------------------------ boundary
    def boundary_keys(self, cut: int, until: int) -> list[tuple[int, str]]:
        """(frame, pass) of every frame from ``cut`` (before ``until``) that a chunk ending at ``cut`` detects:
        the fine pass on the cut and the coarse samples after it whose boxes reach back over the cut. Which
        passes a chunk runs after its end does not depend on where it starts (``Schedule.passes``). Empty when
        any of them is a tracking step (a cut inside a fine interval: the track chain crosses it)."""
        s = self.schedule
        keys = []
        for i in range(cut, min(until, cut + s.context)):
            p = s.passes(i, cut - 1, cut, tracking=True)
            if p.track:
                return []
            if p:
                keys.append((i, "detect" if p.detect else "coarse"))
        return keys

    def tail_from_next_chunk(self) -> bool:
        """At the chunk's last frame: take the detections of the frames after it from the chunk that starts
        there, if it has published them all (the same detector on the same decoded frames: identical boxes),
        instead of decoding and detecting them again. False: decode and detect them here."""
        t = self.task
        keys = self.boundary_keys(t.end, t.lo + len(t.frame_pts))
        if not keys:
            return False
        got = self.neighbours.fetch(keys, wait=self.task.borrow > 0)  # it publishes them early: worth a wait
        if len(got) != len(keys):
            return False
        for i, kind in keys:
            self.detect(i, None, Passes(detect=kind == "detect", coarse=kind == "coarse"), given=got[(i, kind)])
        self.shared_in = len(keys)
        return True

    def borrow_coverage(self) -> None:
        """The next chunk's detections from this chunk's end on (coarse samples, track boxes, fine passes: what
        ``Coverage`` covers a frame with), for the frames past the end that this chunk encodes. It publishes
        them once it would have covered the last of those frames, about a fine interval into its run; wait.
        Together with this chunk's own detections before the end they cover those frames exactly as one chunk
        would, so the next chunk needs no detection (and no decoded frame) before the cut."""
        t = self.task
        got = self.neighbours.fetch([("coverage", t.end)], wait=True)
        if ("coverage", t.end) not in got:  # fail closed: never encode a frame without its boxes
            raise WorkerError(f"chunk [{t.start}, {t.end}): the next chunk did not hand over the detections that "
                              f"cover frames {t.end}-{t.end + t.borrow - 1}", t.source)
        self.borrowed = got[("coverage", t.end)]

    def lend_coverage(self) -> None:
        """Hand the chunk before this one the detections from this chunk's start on that cover the frames it
        encodes for this one (``lend``): called as the last of them would be covered here, when every frame up
        to ``latency`` after it has been detected, and before any of them is forgotten. Detections of frames
        after that are left out: a frame's boxes never depend on them (``Schedule.latency``)."""
        t, cov = self.task, self.coverage
        last = t.start + t.lend - 1 + self.schedule.latency
        self.neighbours.publish({("coverage", t.start): {
            name: {j: v for j, v in getattr(cov, name).items() if t.start <= j <= last}
            for name in ("coarse", "tracked", "fine")}})

    # ------------------------------------------------------------------------------------------ decode
    def _decoded(self, container, stream):
        it = container.decode(stream)
        while True:
            t1 = time.perf_counter()
            try:
                frame = next(it)
            except StopIteration:
                return
            except av.error.FFmpegError as e:
                raise InputError(f"decoding failed near frame {self.expected} ({e})", self.task.source) from None
            finally:
                self.stage["decode"] += time.perf_counter() - t1
            self.decoded += 1
            yield frame

    def redact_chunk(self, seek_pts: int | None) -> bool:
        """Decode, detect, redact and encode the chunk. False: the seek overshot the first frame (nothing
        was encoded; decode from the beginning with a fresh worker)."""
        t = self.task
        first_pts, last_pts = t.frame_pts[0], t.frame_pts[-1]
        with open_input(t.source) as container:
            vs = container.streams[t.info.video_index]
            vs.codec_context.thread_count = t.threads
            vs.thread_type = "AUTO"
            if seek_pts is not None:
                container.seek(seek_pts, stream=vs, backward=True, any_frame=False)
            for frame in self._decoded(container, vs):
                p = frame.pts
                if p is None or p < first_pts:
                    continue
                if p > last_pts:
                    break
                i = self.index.get(p)
                if i is None or i != self.expected:
                    if self.expected == t.lo and seek_pts is not None:
                        return False
                    raise InputError(f"frame with pts {p} decoded out of plan (expected frame {self.expected})",
                                     t.source)
                self.expected += 1
                if self.tail_shared:
                    self.pending.append((i, frame))  # a borrowed frame: its boxes came from the next chunk
                else:
                    self.take(i, frame)
                if i == t.end - 1 and self.neighbours is not None:
                    self.tail_shared = self.tail_from_next_chunk()
                    if t.borrow:
                        self.borrow_coverage()
                if self.tail_shared and i >= t.end + t.borrow - 1:
                    break  # the frames after these are the next chunk's: it decodes and checks them
                if self.expected == t.lo + len(t.frame_pts):
                    break  # the last planned frame: no need to decode the next one to see it has passed
            if not self.tail_shared and self.expected != t.lo + len(t.frame_pts):
                raise InputError(f"video ended after frame {self.expected - 1}; the plan expects "
                                 f"{t.lo + len(t.frame_pts) - 1} (file truncated or damaged)", t.source)
            while self.pending:
                self.emit(*self.pending.popleft())
        return True

    def take(self, i: int, frame) -> None:
        passes = self.schedule.passes(i, self.task.start, self.task.end, tracking=len(self.tracks) > 0)
        if passes:
            self.detect(i, frame, passes)
        self.pending.append((i, frame))
        latency = self.schedule.latency
        while self.pending and self.pending[0][0] + latency <= i:
            self.emit(*self.pending.popleft())
        self.coverage.forget_before(i)

    # ------------------------------------------------------------------------------------------ detect
    def detect(self, i: int, frame, passes, given: np.ndarray | None = None) -> None:
        """Run ``passes`` on frame i (``given``: the detector's boxes for its fine or coarse pass there,
        found by the next chunk; ``frame`` is then None and no tracking step is asked for)."""
        s, t, cov = self.schedule, self.task, self.coverage
        t1 = time.perf_counter()
        t_track = 0.0
        extra = EMPTY
        try:
            if given is not None:
                b = as_boxes(given)
            elif passes.detect:
                b = self.detector([frame])[0]
            else:
                b = as_boxes(self.detector.coarse([frame])[0]) if passes.coarse else EMPTY
            if given is None and not passes.detect:
                if passes.track:
                    t2 = time.perf_counter()
                    extra, fresh = self.tracks.step(self.detector, frame, i, b)
                    if len(fresh):
                        # small faces the coarse pass found first here: covered back to where they appeared
                        # (since the interval's fine pass)
                        extra = np.concatenate([extra, fresh])
                        self.follow_back(fresh, i, s.interval_start(i))
                    t_track = time.perf_counter() - t2
                    self.stage["track"] += t_track
        except RedactorError:
            raise
        except Exception as e:  # fail closed: no frame of this chunk is kept
            raise DetectionError(f"detector failed on frame {i} (pts {getattr(frame, 'pts', None)}): {type(e).__name__}: {e}",
                                 t.source) from e
        fine_pass = bool(s.fine) and passes.detect
        if given is None:
            self.stage["detect_fine" if fine_pass else "detect"] += time.perf_counter() - t1 - t_track
        b = as_boxes(b)
        if (i, "detect" if passes.detect else "coarse") in self.publish_keys:
            self.publish(i, "detect" if passes.detect else "coarse", b)
        cov.coarse[i] = b
        if s.fine and not passes.detect:
            cov.tracked[i] = extra
            if len(extra):
                b = np.concatenate([b, extra])
                if t.start <= i < t.end:
                    self.n_tracked[i] += len(extra)
        if fine_pass:
            self.fine_pass(i, b)
        if t.start <= i < t.end:
            self.counters["detected_frames"] += 1
            self.counters["faces"] += len(b)
            if len(b):
                self.counters["detected_with_faces"] += 1
                self.records[i] = (frame.pts, b)

    def publish(self, i: int, kind: str, b: np.ndarray) -> None:
        """Keep boxes a chunk ending at this chunk's start needs; hand them over once all are found."""
        self.published[(i, kind)] = b
        if len(self.published) == len(self.publish_keys):
            self.neighbours.publish(self.published)

    def fine_pass(self, i: int, b: np.ndarray) -> None:
        """Fine boxes are held until the next fine pass only where the coarse pass cannot follow them (small
        faces); those are also tracked through the interval that starts here."""
        s, t = self.schedule, self.task
        # not a box a second model doubted on its crop (scored < 0, ``detectors.crop_check``): never held
        small = b[(sizes(b) < self.small_face) & (b[:, 4] >= 0)] if len(b) else b
        self.coverage.fine[i] = small
        # small faces here that the forward tracks of the interval before do not explain are followed
        # backwards through it (they appeared, or were missed, since its fine pass)
        prev = s.interval_start(i - 1)
        if i > 0 and i > t.start and prev < t.end - 1 and len(small) and s.track > 1:
            t2 = time.perf_counter()
            self.follow_back(self.tracks.unexplained(small, i), i, prev)
            self.stage["track_back"] += time.perf_counter() - t2
        # a new interval's tracks start here afresh (velocity from the probe one frame on); its track boxes
        # start from these, so frames up to the first sample interpolate
        self.tracks.reseed(small, i)
        self.coverage.tracked[i] = small

    def follow_back(self, seeds: np.ndarray, i: int, after: int) -> None:
        """Track ``seeds`` (small faces found on frame i) back through the buffered frames down to the fine
        pass ``after`` that starts their interval (where that pass missed them): one frame back first to learn
        each face's velocity, then every tracking step."""
        s, t = self.schedule, self.task
        samples = [(j, f) for j, f in reversed(self.pending) if after <= j < i and (j % s.track == 0 or j == i - 1)]
        try:
            back = track_back(self.detector, samples, seeds, i, self.small_face)
        except Exception as e:  # fail closed
            raise DetectionError(f"detector failed tracking back from frame {i}: {type(e).__name__}: {e}",
                                 t.source) from e
        for j, bb in back.items():
            self.coverage.add_tracked(j, bb)
            if t.start <= j < t.end:
                pj, old = self.records.get(j, (t.frame_pts[j - t.lo], EMPTY))
                self.records[j] = (pj, np.concatenate([old, bb]))
                self.n_tracked[j] += len(bb)  # appended after the detector's own boxes

    # ------------------------------------------------------------------------------------------ emit
    def emit(self, i: int, frame) -> None:
        t = self.task
        if t.start <= i < t.start + t.lend:  # found here, encoded by the chunk before
            if i == t.start + t.lend - 1:
                self.lend_coverage()
            return
        if not (t.start <= i < t.end + t.borrow):
            return
        t1 = time.perf_counter()
        if i >= t.end:  # the next chunk's detections there (again: a fallback detection here may have replaced one)
            for name, found in self.borrowed.items():
                getattr(self.coverage, name).update(found)
        boxes = self.detector.blur_boxes(self.coverage.boxes(i), t.info.width, t.info.height)
        if frame.format.name != self.fmt:
            pts_, tb_ = frame.pts, frame.time_base
            frame = frame.reformat(format=self.fmt)
            frame.pts, frame.time_base = pts_, tb_
        if len(boxes):
            st = t.style
            frame, eb = blur.redact_frame(frame, boxes, st.style, st.mask, st.enlarge)
            if len(eb):
                self.counters["redacted_frames"] += 1
                self.redacted.append(i)
                self.redacted_share.append([i, round(blur.covered_share(eb, frame.width, frame.height), 4)])
        self.stage["redact"] += time.perf_counter() - t1
        t1 = time.perf_counter()
        self.encoder.encode(frame)
        self.stage["encode"] += time.perf_counter() - t1
        self.counters["frames"] += 1
        if self.counters["frames"] == 1:
            self.counters["first_pts"] = frame.pts
        self.counters["last_pts"] = frame.pts
        self.unreported += 1
        if self.unreported >= PROGRESS_EVERY:
            self.channel.progress(self.unreported)
            self.unreported = 0

    def result(self) -> dict:
        c = self.counters
        return {"frames": c["frames"], "first_pts": c["first_pts"], "last_pts": c["last_pts"],
                "detected_frames": c["detected_frames"], "detected_with_faces": c["detected_with_faces"],
                "faces": c["faces"],
                "redacted_frames": c["redacted_frames"],
                "detections": [{"frame": j, "pts": pj, "boxes": np.round(bj, 2).tolist(), "tracked": self.n_tracked[j]}
                               for j, (pj, bj) in sorted(self.records.items())],
                "redacted": frame_ranges(self.redacted),
                "redacted_share": self.redacted_share,
                "stage_seconds": dict(self.stage), "pid": os.getpid(),
                "detector_stats": {**self.detector.stats(), "boundary_frames_shared": self.shared_in,
                                   "frames_decoded": self.decoded}}


def run_chunk(detector, task: ChunkTask, channel) -> dict:
    """Worker body (``pool.WorkerPool``): one chunk -> an encoded MP4 part; ``detector`` is the worker
    process's own, built once; ``channel`` the pool's ``pool.Channel``."""
    try:
        import cv2
        cv2.setNumThreads(task.threads)
    except Exception:  # pragma: no cover
        pass
    detector.set_threads(task.threads)
    seek_pts = None if task.seek.frame == 0 else task.seek.pts
    with PartEncoder(task, encoder_format(task.info)) as encoder:
        worker = ChunkWorker(detector, task, channel, encoder)
        if not worker.redact_chunk(seek_pts):
            stage = worker.stage
            decoded = worker.decoded
            worker = ChunkWorker(detector, task, channel, encoder)  # the seek overshot: from the start
            worker.stage.update(stage)
            worker.decoded += decoded
            worker.redact_chunk(None)
        t1 = time.perf_counter()
        encoder.finish()
        worker.stage["encode"] += time.perf_counter() - t1
    if worker.unreported:
        channel.progress(worker.unreported)
    return worker.result()
