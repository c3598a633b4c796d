"""Probe a source with PyAV and plan keyframe-aligned segments (demux only; one frame is decoded to check
that the video really decodes and to read rotation / pixel format)."""
from __future__ import annotations

import bisect
import dataclasses
import io
import math
import os
from fractions import Fraction

import av

from . import remote
from .config import Config
from .errors import InputError
from .records import AudioStreamInfo, Keyframe, Plan, Segment, SourceInfo

# for a container only demuxed (packets copied, never decoded): opening it decodes no frame (FFmpeg's stream
# probing decodes one otherwise: 16 ms of a 1080p part's 20 ms open here); its streams then lack the pixel format
PACKETS_ONLY = {"skip_frame": "all"}
BUFFER = 32 * 1024  # FFmpeg's I/O buffer over a remote reader (forward seeks shorter than about twice this read through)


def _tb(s) -> str:
    return f"{s.numerator}/{s.denominator}"


def parse_tb(s: str) -> Fraction:
    num, den = s.split("/")
    return Fraction(int(num), int(den))


def open_input(path: str, read_ahead: int = 0, data: bytes | None = None, options: dict | None = None):
    """Open a media file (a local path, or an s3:// object read in place with ranged GETs: see
    redactor.remote), turning every failure into a named InputError. ``read_ahead``: GETs an s3:// reader
    keeps in flight ahead of a sequential read (0: none; only in processes that do not fork). ``data``: the
    object's bytes, already fetched (``path`` then only names it). ``options``: FFmpeg's (container and
    decoders), e.g. ``PACKETS_ONLY``."""
    if data is not None or remote.is_remote(path):
        reader = io.BytesIO(data) if data is not None else remote.open_s3(path, ahead=read_ahead)
        try:
            container = av.open(reader, "r", metadata_errors="ignore", buffer_size=BUFFER, options=options)
        except (av.error.InvalidDataError, av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
            reader.close()
            raise InputError(f"not a readable video container ({_short(e)})", path) from None
        return _Opened(container, reader)
    if not os.path.exists(path):
        raise InputError("no such file", path)
    if os.path.isdir(path):
        raise InputError("is a directory, not a video file", path)
    if os.path.getsize(path) == 0:
        raise InputError("file is empty (0 bytes)", path)
    try:
        return av.open(path, "r", metadata_errors="ignore", options=options)
    except (av.error.InvalidDataError, av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"not a readable video container ({_short(e)})", path) from None


class _Opened:
    """A container read from a file object: closing it closes the reader too (PyAV leaves a file object
    open, and a reader with read-ahead has threads to end)."""

    def __init__(self, container, reader):
        self._container, self._reader = container, reader

    def __getattr__(self, name):
        return getattr(self._container, name)

    def close(self) -> None:
        try:
            self._container.close()
        finally:
            self._reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# MP4/MOV keep an index of every sample (position, size, sync flag) in the moov, read when the file is opened.
# Reading such a file in place, Plan and Stitch tell the reader which byte ranges the demuxer will read, so
# that it fetches those ahead concurrently and nothing else (remote.RangeReader.plan_reads):
# * Plan needs every frame's timestamp but the data of none but the sync samples (FFmpeg's H.264/HEVC parser
#   confirms the keyframe flag from the data: on a zero-filled sample it finds none). Every other sample (and
#   the audio, whose packets are only counted) is served as zeros: the timestamps, durations, edit-list
#   discards and packet counts come from the index alone. Measured on the MP4/MOV test media: the same plan,
#   frame for frame, from 0.1-1.2 % of the file instead of all of it (tests/test_s3_io.py).
# * Stitch copies the upload's audio: it fetches the audio samples only (the video's are served as zeros).
INDEXED_FORMATS = {"mov,mp4,m4a,3gp,3g2,mj2"}
INDEXED_VIDEO = {"h264", "hevc"}  # no decoder state is needed to flag a sync sample
ZERO_SAFE_AUDIO = {"aac", "opus", "alac"}  # demuxed without a parser: zero-filled packets count the same
INDEXED_READS = True  # False: read every byte as before


def _indexed_reader(container):
    """The s3:// reader under ``container`` if it is an MP4/MOV whose sample index was read whole when it was
    opened, else None. A fragmented MP4 (moof boxes; its streams report no sample count) may list samples only
    as its fragments are read: it is read in full. (A sample the index does not list is read for real anyway:
    only listed ones are served as zeros.)"""
    reader = getattr(container, "_reader", None)
    if not INDEXED_READS or not isinstance(reader, remote.RangeReader):
        return None
    if container.format.name not in INDEXED_FORMATS:
        return None
    if any(not st.frames for st in container.streams if st.type in ("video", "audio")):
        return None
    return reader


def plan_reads_for_probe(container, vs, audio_streams) -> bool:
    """Plan's reads of an indexed container: the video's sync samples fetched, every other sample of the
    demuxed streams served as zeros. False (nothing changed) where that does not hold."""
    reader = _indexed_reader(container)
    if reader is None or vs.codec_context.name not in INDEXED_VIDEO:
        return False
    if any((a.codec_context.name if a.codec_context else None) not in ZERO_SAFE_AUDIO for a in audio_streams):
        return False
    entries = vs.index_entries
    if not entries:
        return False
    keep, holes = [], []
    for e in entries:
        (keep if e.is_keyframe else holes).append((e.pos, e.pos + e.size))
    if not keep:
        return False
    for a in audio_streams:
        holes.extend((e.pos, e.pos + e.size) for e in a.index_entries)
    _discard_others(container, [vs] + list(audio_streams))
    reader.plan_reads(keep, holes)
    return True


def _discard_others(container, streams) -> None:
    """The demuxer skips the samples of every other stream instead of reading them (PyAV's demux(streams)
    only filters what was read)."""
    wanted = {st.index for st in streams}
    for st in container.streams:
        if st.index not in wanted:
            st.discard = av.stream.Discard.all


def plan_reads_for_streams(container, streams) -> bool:
    """Reads of an indexed container demuxed for ``streams`` only (Stitch's audio): their samples fetched
    ahead concurrently, nothing else."""
    reader = _indexed_reader(container)
    if reader is None or not streams:
        return False
    keep = [(e.pos, e.pos + e.size) for st in streams for e in st.index_entries]
    if not keep:
        return False
    wanted = {st.index for st in streams}
    # the other streams' samples: zeros (FFmpeg reads through the short distances between an interleaved
    # file's audio chunks rather than seeking; what it reads there is never used)
    holes = [(e.pos, e.pos + e.size) for st in container.streams if st.index not in wanted for e in st.index_entries]
    _discard_others(container, streams)
    reader.plan_reads(keep, holes)
    return True


def _short(e: Exception) -> str:
    msg = str(e).split(";")[0]
    if ":" in msg and "'" in msg:  # drop FFmpeg's repetition of the path
        msg = msg.split(":")[0] if msg.startswith("[Errno") else msg
    return msg.strip()[:160]


def _video_stream(container, path):
    videos = [s for s in container.streams.video
              if not (s.disposition & av.stream.Disposition.attached_pic)]
    if not videos:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise InputError(f"no video stream (streams found: {', '.join(kinds)})", path)
    # the default / first video stream is the one we redact; others would leak, so refuse them
    if len(videos) > 1:
        raise InputError(f"{len(videos)} video streams; only single-video-stream files are supported", path)
    return videos[0]


def _bit_depth(pix_fmt: str) -> int:
    try:
        fmt = av.VideoFormat(pix_fmt)
        return max(c.bits for c in fmt.components)
    except Exception:  # pragma: no cover - exotic formats
        return 8


def _demux_timestamps(container, vs, audio_streams: list, path: str) -> tuple[list[int], list[int], dict, int]:
    """Every shown video frame's pts (sorted), the keyframes' pts (sorted), the audio packets per stream and the
    duration of the frame presented last, from the packets alone (nothing decoded). InputError when unusable."""
    pts_list: list[int] = []
    key_pts: list[int] = []
    audio_packets: dict[int, int] = {}
    last_dur = 0
    last_pts = -2**63
    missing_pts = 0
    try:
        for pkt in container.demux([vs] + audio_streams):
            if pkt.size == 0 and pkt.pts is None:
                continue  # flush packet
            if pkt.stream.index != vs.index:
                audio_packets[pkt.stream.index] = audio_packets.get(pkt.stream.index, 0) + 1
            elif pkt.pts is None:
                missing_pts += 1
            elif not pkt.is_discard:
                # (a discarded packet lies before the start of an MP4 edit list, a clip trimmed without
                # re-encoding: decoded only as a reference for the frames after it, never shown, not a frame)
                if pkt.pts > last_pts:  # the duration of the frame presented last (B-frames: not
                    last_pts, last_dur = pkt.pts, pkt.duration or 0  # the last packet demuxed)
                pts_list.append(pkt.pts)
                if pkt.is_keyframe:
                    key_pts.append(pkt.pts)
    except av.error.FFmpegError as e:
        raise InputError(f"file is damaged or truncated while reading packets ({_short(e)})", path) from None
    if missing_pts:
        raise InputError(f"{missing_pts} video packets have no timestamps (raw elementary stream?); "
                         f"remux into MP4/MKV first", path)
    if not pts_list:
        raise InputError("video stream has no frames", path)
    pts_list.sort()
    if len(set(pts_list)) != len(pts_list):
        raise InputError("video stream has duplicate frame timestamps", path)
    if not key_pts:
        raise InputError("video stream has no keyframe", path)
    key_pts.sort()
    return pts_list, key_pts, audio_packets, last_dur


def _display_matrix(frame) -> list[int] | None:
    """The frame's display matrix (rotation/flip side data) as 9 ints, or None."""
    try:
        from av.sidedata.sidedata import Type as SDType
        sd = frame.side_data.get(SDType.DISPLAYMATRIX) if hasattr(frame.side_data, "get") else None
        if sd is not None:
            import struct
            return list(struct.unpack("<9i", bytes(sd)))
    except Exception:
        pass
    return None


def probe(source: str) -> tuple[SourceInfo, list[int], list[int]]:
    """Return (SourceInfo, sorted frame pts, keyframe pts). Raises InputError for anything unusable."""
    path = str(source)
    with open_input(path, read_ahead=remote.STREAM_AHEAD) as container:  # Plan does not fork
        vs = _video_stream(container, path)
        if vs.codec_context is None or vs.codec_context.name is None:
            raise InputError("video codec is not supported by this build of FFmpeg", path)
        audio_streams = [s for s in container.streams.audio]
        indexed = remote.is_remote(path) and plan_reads_for_probe(container, vs, audio_streams)
        pts_list, key_pts, audio_packets, last_dur = _demux_timestamps(container, vs, audio_streams, path)

        # decode the first frame: proves the stream decodes and gives rotation/pix_fmt/colour range (after an
        # indexed read, from a fresh open: the samples read were zeros)
        first, profile = _first_frame(open_input(path) if indexed else container, path, seek=not indexed)
        if first is None:
            raise InputError("video stream decodes to no frames (damaged or truncated)", path)
        tb = vs.time_base
        if last_dur <= 0 and len(pts_list) > 1:
            last_dur = pts_list[-1] - pts_list[-2]
        duration = float((pts_list[-1] - pts_list[0] + max(last_dur, 0)) * tb)
        deltas = {b - a for a, b in zip(pts_list, pts_list[1:])}
        vfr = len(deltas) > 1 and (max(deltas) - min(deltas)) > max(1, min(deltas) // 50)
        keys = [f"format:{k}" for k in container.metadata] + [
            f"stream{s.index}:{k}" for s in container.streams for k in s.metadata]
        info = SourceInfo(
            path=path,
            container=container.format.name,
            size_bytes=remote.size_of(path),
            video_index=vs.index,
            codec=vs.codec_context.name,
            profile=profile,
            width=first.width,
            height=first.height,
            pix_fmt=first.format.name,
            bit_depth=_bit_depth(first.format.name),
            color_range=int(first.color_range or 0),
            time_base=_tb(tb),
            frame_count=len(pts_list),
            duration=duration,
            fps=(len(pts_list) / duration) if duration > 0 else 0.0,
            start_pts=pts_list[0],
            rotation=int(first.rotation or 0),
            display_matrix=_display_matrix(first),
            audio=[AudioStreamInfo(index=s.index, codec=s.codec_context.name if s.codec_context else "unknown",
                                   sample_rate=getattr(s.codec_context, "sample_rate", None),
                                   channels=getattr(s.codec_context, "channels", None),
                                   packets=audio_packets.get(s.index, 0), time_base=_tb(s.time_base))
                   for s in audio_streams],
            other_streams=len(container.streams) - 1 - len(audio_streams),
            metadata_keys=keys,
            variable_frame_rate=bool(vfr),
            end_pts=_end_pts(vs, pts_list, last_dur),
        )
        return info, pts_list, key_pts


def _first_frame(container, path: str, seek: bool):
    """The video's first decoded frame (None if none decodes) and the stream's profile once decoding started;
    InputError if decoding fails."""
    try:
        if seek:
            try:
                container.seek(0)
            except av.error.FFmpegError:
                pass
        vs = _video_stream(container, path)
        try:
            for frame in container.decode(vs):
                return frame, vs.profile
        except av.error.FFmpegError as e:
            raise InputError(f"video does not decode ({_short(e)})", path) from None
        return None, vs.profile
    finally:
        if not seek:
            container.close()


def _end_pts(vs, pts_list: list[int], last_dur: int) -> int:
    """Where the video ends, in its time base: the demuxer's own account of the stream (MP4's track duration
    after its start) when it gives one, else the last frame's pts + its packet's duration."""
    if vs.duration and vs.start_time is not None and vs.start_time + vs.duration > pts_list[-1]:
        return vs.start_time + vs.duration
    return pts_list[-1] + max(last_dur, 0)


# a lengthened segment holds at most as many pixels as this many seconds of 1080p30 times segment_max_seconds
# / 60 (a 4K30 video's longest segment is a quarter of a 1080p30 one's): Redact's time per segment, bounded by
# its timeout, grows with the pixels, not the seconds
REFERENCE_PIXEL_RATE = 1920 * 1080 * 30


def segment_length(duration: float, config: Config, pixel_rate: float = REFERENCE_PIXEL_RATE
                   ) -> tuple[float, str]:
    """(seconds, why) of the segments to plan. ``segment_seconds`` unless the settings allow longer segments
    (``segment_max_seconds``) and the fan-out (``fanout``) is known: then the longest segments, at most the
    maximum (scaled down for videos of more pixels per second than 1080p30), that keep the number of waves
    of segments at the fan-out what it is with the longest allowed, e.g. 1 h at 8 at once and at most 60 s:
    8 waves either way, 64 segments of 56.25 s instead of 360 of 10 s in 45 waves. A fan-out that runs
    every short segment at once keeps them short (the wall time would grow)."""
    base, most, fanout = float(config.segment_seconds), float(config.segment_max_seconds), int(config.fanout)
    if most <= base or fanout <= 0 or duration <= 0:
        return base, "fixed"
    most = max(base, most * min(1.0, REFERENCE_PIXEL_RATE / max(1.0, pixel_rate)))
    waves = math.ceil(duration / (fanout * most))
    chosen = min(most, max(base, round(duration / (fanout * waves) * 1.01, 3)))  # 1 %: keyframe cuts drift
    if chosen <= base:
        return base, f"fixed: {fanout} at once run every {base:g} s segment in one wave"
    return chosen, (f"lengthened: {duration:.0f} s at {fanout} at once, at most {most:g} s a segment: {waves} "
                    f"wave(s) of segments of {chosen:g} s instead of {math.ceil(duration / (fanout * base))} of "
                    f"{base:g} s")


def plan(source: str, config: Config | None = None) -> Plan:
    config = config or Config()
    info, pts, key_pts = probe(source)
    tb = parse_tb(info.time_base)
    n = len(pts)
    index_of = {p: i for i, p in enumerate(pts)}
    keyframes = [Keyframe(frame=index_of[k], pts=k) for k in key_pts if k in index_of]
    key_frames_idx = [k.frame for k in keyframes]
    if not key_frames_idx or key_frames_idx[0] != 0:
        # the first frame in presentation order must be decodable from a keyframe at or before it
        keyframes.insert(0, Keyframe(frame=0, pts=pts[0]))
        key_frames_idx.insert(0, 0)

    seg_seconds, choice = segment_length(info.duration, config, info.width * info.height * (info.fps or 30.0))
    seg_len_ticks = Fraction(seg_seconds) / tb
    target_frames = max(1, round(n * seg_seconds / info.duration)) if info.duration > 0 else n
    # cut points: for each multiple of the target length, the nearest keyframe if one lies within half a
    # segment; otherwise cut at the frame itself (not keyframe-aligned: the worker decodes from the
    # previous keyframe and discards the frames before its start)
    cuts = [0]
    t = pts[0] + seg_len_ticks
    while True:
        i = bisect.bisect_left(pts, t)
        if i >= n:
            break
        # nearest keyframe to frame i
        j = bisect.bisect_left(key_frames_idx, i)
        cand = [key_frames_idx[x] for x in (j - 1, j) if 0 <= x < len(key_frames_idx)]
        best = min(cand, key=lambda f: abs(pts[f] - pts[i])) if cand else None
        if best is not None and abs(pts[best] - pts[i]) <= seg_len_ticks / 2 and best > cuts[-1]:
            cut = best
        else:
            cut = i
        if cut <= cuts[-1]:
            cut = cuts[-1] + 1
        # don't leave a tiny tail segment (< 1/4 target): merge it into the previous one
        if (pts[-1] - pts[cut]) < seg_len_ticks / 4:
            break
        cuts.append(cut)
        t = pts[cut] + seg_len_ticks
    cuts.append(n)

    ctx = config.schedule_for(info.fps).context  # the schedule follows the source's frame rate
    detection = dataclasses.asdict(config.detection)
    key_set = set(key_frames_idx)
    segments = []
    for si, (a, b) in enumerate(zip(cuts, cuts[1:])):
        lo = max(0, a - ctx)
        hi = min(n, b + ctx)
        # last keyframe at or before lo, plus keyframes inside (lo, b)
        j = bisect.bisect_right(key_frames_idx, lo) - 1
        ks = [keyframes[j]] + [k for k in keyframes[j + 1:] if k.frame < b]
        segments.append(Segment(
            index=si, start_frame=a, end_frame=b, start_pts=pts[a], end_pts=pts[b] if b < n else None,
            keyframe_aligned=a in key_set, keyframes=ks, frame_pts=pts[lo:hi],
            context_before=a - lo, context_after=hi - b, detection=detection))
    return Plan(source=info, segments=segments, settings=config.to_dict(), keyframes=len(keyframes),
                target_segment_frames=int(target_frames), segment_seconds=seg_seconds, segment_choice=choice)
