"""One chunk of a live stream through the engine: the whole chunk is redacted like a file (``redact_file``,
the local process pool) into MPEG-TS, every stream copied but the video, with the chunk's own timestamps.

Borders: the chunk is a whole file to the engine, so its first frame gets the coarse and the fine pass and its
last frame a fine pass (``Schedule.last_frame``); a face there is held and extrapolated up to the border
(docs/live.md, "Faces at chunk borders")."""
from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction

from ..config import Config
from ..errors import InputError
from ..hls import TS_HZ
from ..records import SourceInfo

# the engine's segments for a chunk: each starts with a keyframe, and the planner keeps them within 1.75x this
# (a cut moves up to half a segment to a source keyframe, a short tail joins the segment before it), so no
# stretch between the encoder's keyframes is longer than an HLS segment may be (hls.TARGET_SECONDS)
ENGINE_SEGMENT_SECONDS = 4.0


class ChunkError(InputError):
    """A chunk that cannot join the stream; ``record`` names its record kind (docs/live.md)."""

    kind = "ChunkError"

    def __init__(self, message: str, path: str | None = None, record: str = "failed"):
        super().__init__(message, path)
        self.record = record


@dataclass
class Redacted:
    path: str  # the redacted chunk (MPEG-TS)
    first: int  # its first frame, 90 kHz ticks
    end: int  # the end of its last frame, 90 kHz ticks
    identity: dict
    report: dict
    creation_time: str | None = None


def identity_of(info: SourceInfo) -> dict:
    """What every chunk of a stream shares: the container, the codecs and the picture size."""
    return {"container": info.container, "video": info.codec, "width": info.width, "height": info.height,
            "audio": [a.codec for a in info.audio]}


def ticks(t: Fraction) -> int:
    return round(t * TS_HZ)


def source_span(info: SourceInfo) -> tuple[int, int]:
    """(first frame, end of the last frame) of a chunk in 90 kHz ticks."""
    tb = Fraction(info.time_base)
    first = ticks(info.start_pts * tb)
    end = ticks(info.end_pts * tb) if info.end_pts is not None else first + round(info.duration * TS_HZ)
    return first, end


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def chunk_config(config: Config) -> Config:
    return dataclasses.replace(config, segment_seconds=min(float(config.segment_seconds), ENGINE_SEGMENT_SECONDS),
                               segment_max_seconds=0.0)


def creation_time(path: str) -> str | None:
    """The chunk's recorded ``creation_time`` tag (only read when the playlist is to carry the time of day)."""
    import av
    try:
        with av.open(path) as c:
            t = c.metadata.get("creation_time")
    except av.error.FFmpegError:
        return None
    return t or None


def arrival_time(path: str) -> str:
    t = datetime.fromtimestamp(os.path.getmtime(path), timezone.utc)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def redact_chunk(path: str, work_dir: str, config: Config, expect: dict | None = None, detector_factory=None,
                 seen: dict | None = None, max_seconds: float = 0.0, segments_runner=None) -> Redacted:
    """Redact ``path`` into ``work_dir/redacted.ts``. ``expect``: the stream's identity; a chunk that differs is
    refused before any frame is redacted (ChunkError, record ``mismatch``), and so is a chunk longer than
    ``max_seconds`` (record ``too-long``; 0: no limit). ``seen`` gets the chunk's ``info`` once it is probed (a
    failed chunk's duration still fills its gap). ``segments_runner``: see ``redact_file`` (the live function's
    fan-out, ``redactor.live.fanout``)."""
    from ..pipeline import redact_file
    seen = {} if seen is None else seen
    out = os.path.join(work_dir, "redacted.ts")

    def on_plan(plan):
        seen["info"] = plan.source
        ident = identity_of(plan.source)
        if expect is not None and ident != expect:
            differs = ", ".join(f"{k} {ident[k]} (the stream's: {expect.get(k)})" for k in ident
                                if ident[k] != expect.get(k))
            raise ChunkError(f"the chunk differs from the stream: {differs}", path, record="mismatch")
        if max_seconds and plan.source.duration > max_seconds:
            raise ChunkError(f"the chunk is {plan.source.duration:.1f} s long; chunks of at most {max_seconds:g} s "
                             "are redacted live", path, record="too-long")

    report = redact_file(path, out, chunk_config(config), on_plan=on_plan, detector_factory=detector_factory,
                         segments_runner=segments_runner)
    info = seen["info"]
    first, end = source_span(info)
    return Redacted(path=out, first=first, end=end, identity=identity_of(info), report=report)
