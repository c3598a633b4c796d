"""Stitch encoded parts into the output by remuxing (no re-encode), with the source's audio copied bit-exact.

Checks every planned part is there and complete before writing; writes to a temporary file beside the
output and renames it into place, so the output path never holds a partial file.
"""
from __future__ import annotations

import contextlib
import heapq
import io
import math
import os
import time
from fractions import Fraction
from pathlib import Path

import av

from . import remote
from .config import Config
from .containers import M2TS_SUFFIXES, OUTPUT_FORMATS, WHY_NOT, supported_outputs
from .errors import InputError, StitchError
from .probe import PACKETS_ONLY, open_input, parse_tb, plan_reads_for_streams
from .records import Plan, SegmentResult, SourceInfo, StitchResult

# tags that are not personal and keep a file usable (e.g. audio language); everything else is removed
SAFE_STREAM_TAGS = {"language"}
# MPEG-TS carries these audio codecs in standard stream types (the muxer would accept any codec as private
# data that players do not play)
TS_AUDIO = {"aac", "aac_latm", "mp3", "mp2", "mp1", "ac3", "eac3", "opus", "dts", "truehd"}


def output_format(path: str) -> str:
    """The muxer for an output path (see redactor.containers); InputError naming the path otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        why = WHY_NOT.get(suffix, f"use one of {supported_outputs()}")
        raise InputError(f"unsupported output type {suffix or '(none)'}: {why}", path)
    return OUTPUT_FORMATS[suffix]


def _muxer_options(path: str, fmt: str, keep_metadata: bool) -> dict:
    if keep_metadata:  # mp4/mov write arbitrary keys (make, model...) only as mdta items
        opts = {"movflags": "use_metadata_tags"} if fmt in ("mp4", "mov") else {}
    else:  # bitexact: no encoder/creation tags written by the muxer itself
        opts = {"fflags": "+bitexact"}
    if fmt == "mpegts":
        opts["mpegts_copyts"] = "1"  # the source's timestamps as they are (no shift)
        if Path(path).suffix.lower() in M2TS_SUFFIXES:
            opts["mpegts_m2ts_mode"] = "1"
    return opts


def check_output(info: SourceInfo, output: str, config: Config | None = None) -> str:
    """Refuse, before any work, an output the chosen container cannot hold: the source's audio streams
    (copied bit-exact) beside an H.264 video. Tries the real muxer on an in-memory file with the source's
    first audio packets, header to trailer (some refusals come only at the trailer). Returns the muxer."""
    config = config or Config()
    fmt = output_format(output)
    if config.drop_audio or not info.audio:
        return fmt
    where = f"{Path(output).suffix.lower()} output ({fmt})"
    if fmt == "mpegts":  # the TS muxer accepts any codec as private data: check the standard ones
        bad = [a for a in info.audio if a.codec not in TS_AUDIO]
        if bad:
            raise InputError(f"the {where} cannot carry audio stream {bad[0].index} ({bad[0].codec}); "
                             f"drop the audio or upload it in .mkv/.mov", info.path)
        return fmt
    codecs = ", ".join(f"stream {a.index}: {a.codec}" for a in info.audio)

    def refused(e: Exception) -> InputError:
        return InputError(f"the {where} cannot hold the source's audio ({codecs}): the {fmt} muxer refuses it "
                          f"({_first_line(e)}); drop the audio or upload it in .mkv", info.path)

    with open_input(info.path) as source:
        streams = [source.streams[a.index] for a in info.audio]
        first_error = None  # the muxer's own refusal, reported even if closing the output fails after it
        try:
            with av.open(io.BytesIO(), "w", format=fmt) as out:  # closing it writes the trailer
                try:
                    _mux_sample(out, source, streams)
                except (ValueError, av.error.FFmpegError) as e:
                    first_error = e
                    raise
        except (ValueError, av.error.FFmpegError) as e:
            raise refused(first_error or e) from None
    return fmt


def _mux_sample(out, source, streams) -> None:
    """An H.264 stream beside copies of ``streams``, with up to 4 of each one's first packets, into ``out``."""
    vs = out.add_stream("libx264", rate=30)
    vs.width, vs.height, vs.pix_fmt = 64, 64, "yuv420p"
    outs = {}
    for s in streams:
        outs[s.index] = out.add_stream_from_template(s)
        outs[s.index].time_base = s.time_base
    out.start_encoding()
    muxed = dict.fromkeys(outs, 0)
    for n, pkt in enumerate(source.demux(streams)):
        if min(muxed.values()) >= 4 or n > 400:
            break
        if pkt.size and pkt.dts is not None and muxed[pkt.stream.index] < 4:
            muxed[pkt.stream.index] += 1
            pkt.stream = outs[pkt.stream.index]
            out.mux(pkt)


def _first_line(e: Exception) -> str:
    return str(e).splitlines()[0][:160] if str(e) else type(e).__name__


def exact_time_options(fmt: str, *time_bases) -> dict:
    """Muxer options for output format ``fmt`` that keep the source's timestamps (``time_bases``: the
    video's, then the audio streams'): an exact movie time scale for MP4/MOV (``exact_mov_options``); for
    Matroska and MPEG-TS, no shift of every stream when audio starts before 0 (AAC's priming packet at -1024
    samples made the muxer move the whole file 21 ms later; both store the negative time as it is). What a
    container cannot represent stays rounded: Matroska keeps milliseconds, MPEG-TS 1/90000 s."""
    if fmt in ("mp4", "mov"):
        return exact_mov_options(*time_bases)
    if fmt in ("matroska", "webm", "mpegts"):
        return {"avoid_negative_ts": "disabled"}
    return {}


def exact_mov_options(*time_bases) -> dict:
    """Muxer options that keep every timestamp of these stream time bases exact in an MP4/MOV file.

    The mov muxer stores a track that does not start at 0 (a part after a segment border, a source whose
    first frame is not at 0) with an edit list whose delay is counted in the *movie* time scale, 1000 by
    default: the start would be rounded down to whole milliseconds and every frame after it read back
    early. A movie time scale that every stream's ticks divide keeps it exact."""
    scale = 1
    for den in [Fraction(tb).denominator for tb in time_bases] + [1000]:  # the video's first: it has priority
        lcm = scale * den // math.gcd(scale, den)
        if lcm <= 2**31 - 1:  # the option is an int
            scale = lcm
    return {"movie_timescale": str(scale)}


def _temp_path(output: str) -> str:
    p = Path(output)
    return str(p.with_name(f".{p.stem}.partial-{os.getpid()}{p.suffix}"))


# a part's frame may be stored this far from its planned time (a container's rounding: Matroska and the
# mov muxer's default edit lists store milliseconds); anything further is a part that does not fit the plan
PART_TIME_SLACK = Fraction(1, 1000)


def _video_packets(parts: list[str], planned: list[list[int]] | None = None, time_base: Fraction | None = None,
                   end_pts: int | None = None, open_part=None, where: str = "stitch"):
    """(time, 0, packet) for every video packet of ``parts`` in order. With ``planned`` (each part's source
    pts, presentation order, in ``time_base``), every packet is given its frame's source timestamp and the
    duration up to the next frame (the last one: up to ``end_pts``, the source's end, when known), whatever
    the part's container stored: the output's timestamps come from the source, never through a part's
    rounding. Parts have no B-frames, so decode order is presentation order. One part is open
    at a time; a part may be an s3:// object (``open_part(n, part)`` opens it: see ``stitch``). Every part
    must have the first part's codec parameters (SPS/PPS; ``where`` names the join in the error)."""
    open_part = open_part or (lambda n, part: open_input(part))
    extradata = None
    nxt = None
    if planned is not None:
        flat = [p for ps in planned for p in ps] + [end_pts]
        nxt = iter(flat[1:])
    for n, part in enumerate(parts):
        with open_part(n, part) as c:
            vs = c.streams.video[0]
            ed = bytes(vs.codec_context.extradata or b"")
            if extradata is None:
                extradata = ed
            elif ed != extradata:
                raise StitchError(f"{where}: part has different codec parameters (SPS/PPS) from the first part",
                                  part)
            k = 0
            for pkt in c.demux(vs):
                if pkt.size == 0 and pkt.pts is None:
                    continue
                if planned is not None:
                    want = planned[n][k] if k < len(planned[n]) else None
                    got = pkt.pts * pkt.time_base if pkt.pts is not None else None
                    if want is None or got is None or abs(got - want * time_base) > PART_TIME_SLACK or \
                            pkt.dts != pkt.pts:
                        planned_at = "none: too many frames" if want is None else f"{float(want * time_base):.6f} s"
                        raise StitchError(f"part frame {k} (pts {pkt.pts}, dts {pkt.dts}, time base {pkt.time_base})"
                                          f" is not the planned frame ({planned_at})", part)
                    following = next(nxt)
                    pkt.time_base = time_base
                    pkt.pts = pkt.dts = want
                    if following is not None and following > want:
                        pkt.duration = following - want
                    elif pkt.duration:
                        pkt.duration = round(pkt.duration * vs.time_base / time_base)
                k += 1
                yield (float(pkt.dts * pkt.time_base) if pkt.dts is not None else 0.0, 0, pkt)
            if planned is not None and k != len(planned[n]):
                raise StitchError(f"part has {k} frames, the plan has {len(planned[n])}", part)


def _check_parts(parts: list[str]):
    """Every local part exists and is not empty (their codec parameters are checked as they are read:
    ``_video_packets``)."""
    for p in parts:
        if not remote.is_remote(p) and (not os.path.isfile(p) or os.path.getsize(p) == 0):
            raise StitchError("part is missing or empty", p)


def concat_video(parts: list[str], output: str, segment_index: int = 0) -> None:
    """Concatenate video-only MP4 parts (same encoder settings) into one MP4, packets copied. Each part is
    opened once, for its packets only (the first also as the stream's template; the output is byte for byte
    what a template opened for decoding gives): opening a 1080p part for decoding decodes a frame and starts
    the decoder (~20-40 ms each here), and this runs in the parent after the segment's last chunk, where
    nothing else runs."""
    _check_parts(parts)
    tmp = _temp_path(output)
    try:
        with open_input(parts[0], options=PACKETS_ONLY) as first:
            tb = first.streams.video[0].time_base
            with av.open(tmp, "w", format="mp4", options=exact_mov_options(tb)) as out:
                ovs = out.add_stream_from_template(first.streams.video[0])
                ovs.time_base = tb

                def open_part(n, part):
                    return contextlib.nullcontext(first) if n == 0 else open_input(part, options=PACKETS_ONLY)
                for _, _, pkt in _video_packets(parts, open_part=open_part, where=f"segment {segment_index}"):
                    pkt.stream = ovs
                    out.mux(pkt)
        os.replace(tmp, output)
    except BaseException:
        _unlink(tmp)
        raise


def _unlink(p):
    try:
        os.unlink(p)
    except FileNotFoundError:
        pass


def verify_parts(plan: Plan, parts: list[SegmentResult]) -> list[SegmentResult]:
    by_index = {}
    for r in parts:
        if r is None:
            raise StitchError("a segment produced no result (its worker failed)")
        by_index[r.index] = r
    missing = [s.index for s in plan.segments if s.index not in by_index]
    if missing:
        raise StitchError(f"segment part(s) missing: {missing[:10]}", plan.source.path)
    ordered = [by_index[s.index] for s in plan.segments]
    for s, r in zip(plan.segments, ordered):
        if r.frames != s.frames or r.first_pts != s.start_pts:
            raise StitchError(f"segment {s.index} is incomplete: {r.frames}/{s.frames} frames, first pts "
                              f"{r.first_pts} (planned {s.start_pts})", r.part)
        if not remote.is_remote(r.part) and (not os.path.isfile(r.part) or os.path.getsize(r.part) == 0):
            raise StitchError(f"segment {s.index} part file is missing or empty", r.part)
    return ordered


def _part_opener(part_paths: list[str], part_sizes: list[int] | None):
    """(open_part(n, path, template=False), close): parts that are s3:// objects come from a
    ``remote.Prefetcher`` (fetched ahead, in order, with concurrent ranged GETs, a bounded number of bytes
    ahead); a part too large for it is read in place with concurrent read-ahead; local parts are opened as
    files. A part is opened for its packets only (no frame decoded), except as a template that needs one."""
    if not any(remote.is_remote(p) for p in part_paths):
        return (lambda n, part, template=False: open_input(part, options=None if template else PACKETS_ONLY)
                ), (lambda: None)
    sizes = list(part_sizes) if part_sizes is not None else [remote.size_of(p) if remote.is_remote(p) else 0
                                                             for p in part_paths]
    fetcher = remote.Prefetcher([(p, n) for p, n in zip(part_paths, sizes) if remote.is_remote(p)])
    slot = {}  # position in part_paths -> position among the remote parts
    for n, p in enumerate(part_paths):
        if remote.is_remote(p):
            slot[n] = len(slot)

    def open_part(n: int, part: str, template: bool = False):
        options = None if template else PACKETS_ONLY  # a stream template that needs a decoded frame
        if n not in slot:
            return open_input(part, options=options)
        data = fetcher.get(slot[n])
        if data is None:
            return open_input(part, read_ahead=remote.STREAM_AHEAD, options=options)
        return open_input(part, data=data, options=options)
    return open_part, fetcher.close


def stitch(plan: Plan, parts: list[SegmentResult], output: str, config: Config | None = None,
           part_sizes: list[int] | None = None) -> StitchResult:
    """Remux the parts (in plan order) and the source's audio into ``output``. ``part_sizes`` (bytes, in
    plan order; s3:// parts only, e.g. from Stitch's records) spare a HEAD per part."""
    config = config or Config()
    t0 = time.perf_counter()
    fmt = output_format(output)
    ordered = verify_parts(plan, parts)
    part_paths = [r.part for r in ordered]
    if part_sizes is not None:
        by_index = {r.index: n for r, n in zip(parts, part_sizes)}
        part_sizes = [by_index[r.index] for r in ordered]
    open_part, close_parts = _part_opener(part_paths, part_sizes)
    try:
        return _stitch(plan, ordered, part_paths, open_part, output, fmt, config, t0)
    finally:
        close_parts()


def _stitch(plan, ordered, part_paths, open_part, output, fmt, config, t0) -> StitchResult:
    src = plan.source
    tmp = _temp_path(output)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    n_video = n_audio = 0
    removed: list[str] = []
    try:
        opts = _muxer_options(output, fmt, config.keep_metadata)
        opts.update(exact_time_options(fmt, src.time_base, *(() if config.drop_audio else (
            a.time_base for a in src.audio if a.time_base))))
        # an input opened before a later open fails is still closed (with), and the output's trailer is
        # written whenever it was opened. The first part (the stream's template) and a local source (audio
        # demuxed, nothing decoded) open for packets only -- a 1080p open for decoding costs ~20-40 ms here, on
        # the run's serial path -- except for Matroska, whose track headers take what only a decoded frame
        # tells (the other outputs are byte for byte the same either way). An s3:// source opens for decoding:
        # probing it without a decoded frame read 1.04 of a 1.55 MB upload instead of under half (tests/test_s3_io.py).
        decoded = fmt == "matroska"
        source_options = None if decoded or remote.is_remote(src.path) else PACKETS_ONLY
        with open_input(src.path, read_ahead=remote.STREAM_AHEAD, options=source_options) as source, \
                open_part(0, part_paths[0], template=decoded) as first, \
                av.open(tmp, "w", format=fmt, options=opts) as out:
            ovs = out.add_stream_from_template(first.streams.video[0])
            if fmt in ("mp4", "mov"):
                ovs.time_base = parse_tb(src.time_base)
            rate = source.streams[src.video_index].average_rate
            if rate:  # Matroska writes it as the track's default frame duration (else 1 / the part's tick)
                ovs.codec_context.framerate = rate
            if src.display_matrix:
                ovs.set_display_matrix(src.display_matrix)
            elif src.rotation:
                ovs.set_display_rotation(src.rotation)
            audio_in = [] if config.drop_audio else [source.streams[a.index] for a in src.audio]
            plan_reads_for_streams(source, audio_in)  # an MP4/MOV upload: its audio samples only are fetched
            audio_out = {}
            for s in audio_in:
                o = out.add_stream_from_template(s)
                o.time_base = s.time_base
                for k, v in s.metadata.items():
                    if config.keep_metadata or k in SAFE_STREAM_TAGS:
                        o.metadata[k] = v
                audio_out[s.index] = o
            if config.keep_metadata:
                for k, v in source.metadata.items():
                    out.metadata[k] = v
                for k, v in source.streams[src.video_index].metadata.items():
                    ovs.metadata[k] = v
            else:
                removed = list(src.metadata_keys)
                removed = [k for k in removed if not any(
                    k == f"stream{i}:{t}" for i in audio_out for t in SAFE_STREAM_TAGS)]

            def audio_packets():
                if not audio_in:
                    return
                for pkt in source.demux(audio_in):
                    if pkt.size == 0 and pkt.pts is None:
                        continue
                    ts = pkt.dts if pkt.dts is not None else pkt.pts
                    yield (float(ts * pkt.time_base) if ts is not None else 0.0, 1, pkt)

            planned = [s.frame_pts[s.context_before:s.context_before + s.frames] for s in plan.segments]
            video = _video_packets(part_paths, planned, parse_tb(src.time_base), src.end_pts, open_part)
            merged = heapq.merge(video, audio_packets(), key=lambda x: (x[0], x[1]))
            for _, kind, pkt in merged:
                if kind == 0:
                    pkt.stream = ovs
                    n_video += 1
                else:
                    pkt.stream = audio_out[pkt.stream.index]
                    n_audio += 1
                out.mux(pkt)
        if n_video != src.frame_count:
            raise StitchError(f"wrote {n_video} video packets, the source has {src.frame_count} frames", output)
        os.replace(tmp, output)
    except BaseException:
        _unlink(tmp)
        raise
    return StitchResult(output=str(output), frames=n_video, video_packets=n_video, audio_packets=n_audio,
                        audio_streams=0 if config.drop_audio else len(src.audio), removed_metadata=removed,
                        bytes=os.path.getsize(output), wall_seconds=round(time.perf_counter() - t0, 4))
