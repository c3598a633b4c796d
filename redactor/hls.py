"""HLS for the live mode: MPEG-TS segments cut from a redacted chunk, and the stream's EVENT playlist.

Layout and rules: docs/live.md. A segment starts at a keyframe the encoder wrote and lasts at most
``TARGET_SECONDS``; every timestamp of a chunk is shifted onto the stream's timeline (``offset``), so the
stream plays as one. The playlist carries the writer's own state in ``#REDACTOR-`` comment lines (players
ignore them), so one conditional write of ``index.m3u8`` updates the stream at once.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from fractions import Fraction

TS_HZ = 90000  # MPEG-TS clock
TARGET_SECONDS = 10  # EXT-X-TARGETDURATION: the same for every stream, no segment is longer
PREFERRED_SECONDS = 6  # a segment ends at the first keyframe at least this long after its start
TIMELINE_START = 10 * TS_HZ  # the stream's first frame (MPEG-TS cannot store the audio's priming before 0)
PLAYLIST = "index.m3u8"
STREAM_TAG = "#REDACTOR-STREAM:"
CHUNK_TAG = "#REDACTOR-CHUNK:"


def segment_name(chunk: int, part: int) -> str:
    return f"seg-{chunk:06d}-{part:02d}.ts"


def gap_name(chunk: int, part: int | None = None) -> str:
    return f"gap-{chunk:06d}.ts" if part is None else f"gap-{chunk:06d}-{part:02d}.ts"


def gap_durations(total: int, cap: int = TARGET_SECONDS * TS_HZ) -> list[int]:
    """A gap of ``total`` ticks as entries of at most ``cap`` (no entry may exceed the target duration)."""
    parts = [cap] * (total // cap) + ([total % cap] if total % cap else [])
    return parts or [total]


def cut_points(keys: list[int], end: int, prefer: int = PREFERRED_SECONDS * TS_HZ,
               cap: int = TARGET_SECONDS * TS_HZ) -> list[int]:
    """Start times of the segments (a subset of the keyframe times ``keys``, sorted, the first one first): a
    segment ends at the first keyframe ``prefer`` or more after its start, or earlier at the last keyframe
    that keeps it within ``cap`` of its start. ValueError if a stretch between keyframes is longer than
    ``cap`` (the encoder's keyframes are closer than that: ``redactor.live.chunk.ENGINE_SEGMENT_SECONDS``)."""
    starts = [keys[0]]
    for n, k in enumerate(keys[1:], 1):
        following = keys[n + 1] if n + 1 < len(keys) else end
        if k - starts[-1] >= prefer or following - starts[-1] > cap:
            starts.append(k)
    for a, b in zip(starts, starts[1:] + [end]):
        if b - a > cap:
            raise ValueError(f"{(b - a) / TS_HZ:.3f} s between keyframes at {a / TS_HZ:.3f} s: longer than a "
                             f"segment may be ({cap / TS_HZ:g} s)")
    return starts


def _video_keys(path: str) -> list[int]:
    import av
    with av.open(path) as c:
        vs = c.streams.video[0]
        tb = vs.time_base
        return sorted(round(Fraction(p.pts) * tb * TS_HZ) for p in c.demux(vs)
                      if p.pts is not None and p.size and p.is_keyframe)


def _open_segment(path: str, template_streams, keep_metadata: bool):
    import av
    opts = {"mpegts_copyts": "1", "avoid_negative_ts": "disabled"}
    if not keep_metadata:
        opts["fflags"] = "+bitexact"  # no encoder tags, and the same bytes for the same packets
    out = av.open(path, "w", format="mpegts", options=opts)
    streams = {}
    for s in template_streams:
        streams[s.index] = out.add_stream_from_template(s)
    return out, streams


@dataclass
class SegmentFile:
    name: str
    path: str
    start: int  # 90 kHz ticks on the stream's timeline
    duration: int  # 90 kHz ticks


def write_segments(redacted: str, chunk: int, first: int, end: int, offset: int, out_dir: str,
                   keep_metadata: bool = False) -> list[SegmentFile]:
    """Cut ``redacted`` (an MPEG-TS file: the engine's output for one chunk, every stream copied) into
    segments in ``out_dir``, every timestamp shifted by ``offset`` ticks. ``first`` / ``end``: the chunk's
    first frame and the end of its last frame (ticks, before the shift). Each segment starts at a keyframe;
    audio packets go to the segment open when they are read (audio never splits a segment)."""
    import av
    starts = cut_points(_video_keys(redacted), end)
    if starts[0] != first:
        raise ValueError(f"{redacted}: the first frame ({first}) is not a keyframe ({starts[0]})")
    bounds = starts + [end]
    files = [SegmentFile(segment_name(chunk, n), os.path.join(out_dir, segment_name(chunk, n)),
                         a + offset, b - a) for n, (a, b) in enumerate(zip(bounds, bounds[1:]))]
    with av.open(redacted) as src:
        keep = [src.streams.video[0]] + list(src.streams.audio)
        vindex = keep[0].index
        n, (out, streams) = 0, _open_segment(files[0].path, keep, keep_metadata)
        try:
            for pkt in src.demux(keep):
                if pkt.size == 0 and pkt.pts is None:
                    continue
                if pkt.stream.index == vindex and pkt.is_keyframe and n + 1 < len(starts) and \
                        round(Fraction(pkt.pts) * pkt.time_base * TS_HZ) >= starts[n + 1]:
                    out.close()
                    n += 1
                    out, streams = _open_segment(files[n].path, keep, keep_metadata)
                shift = round(Fraction(offset, TS_HZ) / pkt.time_base)
                pkt.pts = pkt.pts + shift if pkt.pts is not None else None
                pkt.dts = pkt.dts + shift if pkt.dts is not None else None
                pkt.stream = streams[pkt.stream.index]
                out.mux(pkt)
        finally:
            out.close()
    if n + 1 != len(files):
        raise ValueError(f"{redacted}: wrote {n + 1} segments, planned {len(files)}")
    return files


# --------------------------------------------------------------------------------------------- the playlist
@dataclass
class ChunkEntry:
    """One chunk's place in the playlist: its segments (``status`` "ok") or a gap."""

    seq: int
    name: str
    status: str  # "ok" | "gap"
    durations: list[int]  # ticks: each segment's (ok) or the gap's one
    sha256: str | None = None
    reason: str | None = None  # a gap's record kind (failed, mismatch, missing)
    program_date_time: str | None = None

    def uris(self) -> list[str]:
        if self.status == "gap":
            if len(self.durations) == 1:
                return [gap_name(self.seq)]
            return [gap_name(self.seq, n) for n in range(len(self.durations))]
        return [segment_name(self.seq, n) for n in range(len(self.durations))]

    @property
    def duration(self) -> int:
        return sum(self.durations)


@dataclass
class Playlist:
    """The stream as published: its chunks in order, where the next one starts, the stream's format (from
    its first published chunk) and whether it has ended."""

    chunks: list[ChunkEntry] = field(default_factory=list)
    next_time: int = TIMELINE_START
    identity: dict | None = None
    ended: bool = False
    first_seq: int = 0

    @property
    def next_seq(self) -> int:
        return self.chunks[-1].seq + 1 if self.chunks else self.first_seq

    def entry(self, seq: int) -> ChunkEntry | None:
        for c in self.chunks:
            if c.seq == seq:
                return c
        return None

    def last_duration(self) -> int:
        for c in reversed(self.chunks):
            if c.status == "ok":
                return c.duration
        return TARGET_SECONDS * TS_HZ

    def append(self, entry: ChunkEntry) -> None:
        if entry.seq != self.next_seq:
            raise ValueError(f"chunk {entry.seq} is not next ({self.next_seq})")
        if self.ended:
            raise ValueError("the stream has ended")
        self.chunks.append(entry)
        self.next_time += entry.duration

    def render(self) -> str:
        state = {"next_time": self.next_time, "identity": self.identity, "first_seq": self.first_seq}
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{TARGET_SECONDS}",
                 "#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-PLAYLIST-TYPE:EVENT", "#EXT-X-INDEPENDENT-SEGMENTS",
                 STREAM_TAG + json.dumps(state, sort_keys=True)]
        after_gap = False
        for c in self.chunks:
            lines.append(CHUNK_TAG + json.dumps(asdict(c), sort_keys=True))
            if c.status == "gap":
                lines.append("#EXT-X-DISCONTINUITY")
                for d, uri in zip(c.durations, c.uris()):
                    lines += ["#EXT-X-GAP", f"#EXTINF:{d / TS_HZ:.6f},", uri]
                after_gap = True
                continue
            if after_gap:
                lines.append("#EXT-X-DISCONTINUITY")
                after_gap = False
            if c.program_date_time:
                lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{c.program_date_time}")
            for d, uri in zip(c.durations, c.uris()):
                lines += [f"#EXTINF:{d / TS_HZ:.6f},", uri]
        if self.ended:
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str) -> "Playlist":
        """The playlist ``render`` wrote (its state lines; the rest follows from them)."""
        p = cls()
        for line in text.splitlines():
            if line.startswith(STREAM_TAG):
                state = json.loads(line[len(STREAM_TAG):])
                p.identity, p.first_seq = state.get("identity"), int(state.get("first_seq", 0))
            elif line.startswith(CHUNK_TAG):
                p.chunks.append(ChunkEntry(**json.loads(line[len(CHUNK_TAG):])))
            elif line.strip() == "#EXT-X-ENDLIST":
                p.ended = True
        p.next_time = TIMELINE_START + sum(c.duration for c in p.chunks)
        return p

