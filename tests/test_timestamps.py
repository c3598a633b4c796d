"""Every output frame keeps its source timestamp exactly, whatever the time base, frame rate,
keyframe placement and segment/chunk borders, in every output container, through the same calls the local
pipeline and the Lambda Stitch make (plan -> redact segments with 2 workers -> stitch from the JSON records).

Each clip is built so that segment (or worker-chunk) borders fall on times that are not whole milliseconds
(asserted, so no case can pass by luck: an edit list in whole milliseconds rounds such a border down and
every later frame comes out early). Times are compared as exact Fractions, no tolerance. Matroska stores
milliseconds (FFmpeg's muxer has no finer timestamp scale): there the output must be each source time
rounded to the nearest millisecond, which is the source itself whenever the source is in whole milliseconds.
"""
from __future__ import annotations

import json
from fractions import Fraction

import av
import pytest

from redactor import Config, StitchError, plan, redact_file
from redactor.records import Plan, SegmentResult
from redactor.remux import exact_time_options, stitch
from redactor.chunking import chunk_counts, split_chunks
from redactor.segment import redact_segments

from .conftest import audio_packets

MS = Fraction(1, 1000)
TINY = dict(width=96, height=64, faces=1, face_size=(28, 32))

# name: (make_clip kwargs, segment seconds, output containers[, Config overrides])
CASES = {
    # the issue's clip, scaled down: 30 fps in 1/15360, keyframes every 25 frames (borders at 833.33 ms...)
    "tb15360_keys25.mp4": (dict(time_base="1/15360", seconds=2.5, keyframes=[25, 50], bframes=0, audio="aac"),
                           0.8, (".mp4", ".mov", ".mkv")),
    # 90 kHz ticks at NTSC 29.97 fps, one keyframe only: every border is a cut between keyframes
    "tb90000_ntsc_onekey.mov": (dict(time_base="1/90000", fps=30000 / 1001, seconds=2.0, keyframes=[]),
                                0.6, (".mov", ".mkv")),
    # 1/12800 at 30 fps: frame steps of 426/427 ticks; B-frames; keyframes off any regular grid
    "tb12800_irregular.mp4": (dict(time_base="1/12800", seconds=2.0, keyframes=[13, 29, 44], bframes=2),
                              0.5, (".mp4",)),
    # the NTSC rate's own time base (1001/30000), B-frames, the first frame not at 0 (an edit list)
    "ntsc_native_start.mp4": (dict(fps=30000 / 1001, seconds=2.0, keyframes=[10, 31], bframes=2,
                                   start=Fraction(1001, 3000)), 0.6, (".mp4",)),
    # variable frame rate in 90 kHz ticks, AAC (its first packet at -1024 samples)
    "vfr90k.mp4": (dict(vfr=True, seconds=2.5, keyframes=[9, 22], audio="aac"), 0.5, (".mp4", ".mkv")),
    # 1/1000 asked of an MP4 (stored as 1/16000: times are whole milliseconds, borders included)
    "tb1000.mp4": (dict(time_base="1/1000", seconds=2.0, keyframes=[11, 23, 37]), 0.5, (".mp4", ".mkv")),
    # trimmed without re-encoding: the first 7 frames (the first keyframe among them) lie before the edit
    # list's start, decoded as references but not shown (such a clip used to fail: "decoded out of plan")
    "trimmed_start.mp4": (dict(time_base="1/15360", seconds=2.0, keyframes=[10, 33], bframes=2, trim=7,
                               audio="aac"), 0.6, (".mp4", ".mkv")),
    # Matroska source (1 ms), VFR with Opus: exact in MKV, and in MP4 (1 ms divides its time scale)
    "vfr.mkv": (dict(vfr=True, seconds=2.0, keyframes=[7, 20], audio="opus"), 0.5, (".mkv", ".mp4")),
    # one long segment cut into 2 worker chunks at a non-millisecond frame (parts concatenated); without the
    # fine pass, chunks are cut mid-segment (with it, on multiples of 30 frames: whole milliseconds at 30 fps)
    "chunks_tb15360.mp4": (dict(time_base="1/15360", seconds=2.5, keyframes=[]), 60, (".mp4", ".mkv"),
                           dict(fine_every=0)),
}


def _times(path):
    """(sorted exact times of the shown video frames, video average rate, video duration in seconds: the
    stream's own when the container gives one (MP4/MOV), else from the first frame to the end of the last
    one)"""
    with av.open(path) as c:
        vs = c.streams.video[0]
        packets = sorted((Fraction(p.pts) * p.time_base, Fraction(p.duration or 0) * p.time_base)
                         for p in c.demux(vs) if p.pts is not None and not p.is_discard)
        times = [t for t, _ in packets]
        dur = Fraction(vs.duration) * vs.time_base if vs.duration else sum(packets[-1]) - times[0]
        return times, vs.average_rate, dur


def _ms(t: Fraction) -> Fraction:
    """What FFmpeg's muxer makes of time t in milliseconds (av_rescale_q: nearest, halves away from 0)."""
    q, r = divmod(t * 1000, 1)
    return (q + (1 if r >= Fraction(1, 2) else 0)) * MS


def _borders(p: Plan, cfg: Config) -> list[Fraction]:
    """Times of every segment and worker-chunk start after the first frame (what the workers cut at)."""
    tb = Fraction(p.source.time_base)
    counts = chunk_counts([s.frames for s in p.segments], cfg.effective_workers,
                          cfg.schedule_for(p.source.fps).context)
    out = []
    for s, per_seg in zip(p.segments, counts):
        for a, _, _ in split_chunks(s, per_seg, cfg.schedule.context, cfg.schedule.fine):
            if a:
                out.append(s.frame_pts[s.context_before + a - s.start_frame] * tb)
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_frame_keeps_its_source_time(name, media, model_path, tmp_path):
    kw, seg_seconds, outputs, *more = CASES[name]
    clip = media(f"ts_{name}", **TINY, **kw)
    src = clip["path"]
    cfg = Config(segment_seconds=seg_seconds, workers=2, model_path=model_path, **(more[0] if more else {}))
    p = plan(src, cfg)
    borders = _borders(p, cfg)
    # not by luck: at least one border falls between milliseconds (where millisecond rounding would show)
    assert any(t % MS for t in borders) or name == "tb1000.mp4" or name.endswith(".mkv"), borders
    assert len(borders) >= (1 if seg_seconds > 10 else 2)
    results = redact_segments(src, p.segments, cfg, str(tmp_path / "work"), source_info=p.source)
    # the Lambda Stitch gets the plan and the results back from JSON
    p2 = Plan.from_json(p.to_json())
    results2 = [SegmentResult.from_dict(json.loads(json.dumps(r.to_dict()))) for r in results]

    times, rate, dur = _times(src)
    assert len(times) == clip["frames"]
    whole_ms = all(t % MS == 0 for t in times)
    for ext in outputs:
        out = str(tmp_path / f"out{ext}")
        stitch(p2, results2, out, cfg)
        o_times, o_rate, o_dur = _times(out)
        if ext == ".mkv":
            # milliseconds: each source time to the nearest one (the source's own when it is in them)
            assert o_times == [_ms(t) for t in times]
            if whole_ms:
                assert o_times == times
            # audio too, and not shifted: AAC's priming packet before 0 stays before 0. (Further before 0 -- a
            # trimmed clip's hidden audio -- FFmpeg reads Matroska's negative times back a few ms off: -255
            # ms as -259. Those are never played; every packet is still there, bit-exact.)
            got, src_audio = audio_packets(out), audio_packets(src)
            assert [(n, b) for n, _, b in got] == [(n, b) for n, _, b in src_audio]
            assert [t for _, t, _ in got if t >= -MS * 21] == [_ms(t) for _, t, _ in src_audio if _ms(t) >= -MS * 21]
            # the frame rate is stored as whole nanoseconds per frame, read back as a ratio of numbers
            # up to 30000 (matroskadec): the source's rate as closely as that holds
            assert abs(o_rate / rate - 1) < Fraction(1, 10**6)
        else:
            bad = [(i, t, o) for i, (t, o) in enumerate(zip(times, o_times)) if t != o]
            assert len(o_times) == len(times) and not bad, f"{len(bad)} frames moved, first {bad[:1]}"
            assert o_dur == dur  # the video track lasts exactly as long (its last frame's duration kept)
            assert audio_packets(out) == audio_packets(src)
            # MP4/MOV store no rate: it is frames / track duration, so the source's whenever it is an MP4/MOV
            # (a Matroska source's rate is its nominal default duration, which MP4 cannot carry; a trimmed
            # source's counts the hidden frames before its edit list too)
            assert o_rate == len(times) / dur
            if clip["container"] in ("mp4", "mov") and not kw.get("trim"):
                assert o_rate == rate
    if len(results2) >= 3 and results2[1].frames == results2[2].frames:
        # fail closed: parts that do not hold the planned frames (here two swapped, same length, so every
        # record still matches) stop the stitch with a named error instead of writing frames out of place
        results2[1].part, results2[2].part = results2[2].part, results2[1].part
        with pytest.raises(StitchError, match="not the planned frame"):
            stitch(p2, results2, str(tmp_path / "swapped.mp4"), cfg)
        assert not list(tmp_path.glob("*swapped*"))


def test_pipeline_keeps_the_issue_clip_exact(media, model_path, tmp_path):
    """The whole local pipeline (redact_file) on the issue's shape: 1/15360, keyframes every 25 frames."""
    clip = media("ts_tb15360_keys25.mp4", **TINY, **CASES["tb15360_keys25.mp4"][0])
    out = str(tmp_path / "out.mp4")
    report = redact_file(clip["path"], out, Config(segment_seconds=0.8, workers=2, model_path=model_path))
    assert len(report["plan"]["segments"]) == 3
    assert _times(out) == _times(clip["path"])
    assert audio_packets(out) == audio_packets(clip["path"])


def test_mpegts_muxer_keeps_source_times(media, tmp_path):
    """MPEG-TS (1/90000 s) has no output type in stitch yet; the same muxer options must keep a 90 kHz
    source's video and AAC audio (first packet before 0) where they are, where the default moved them."""
    clip = media("ts_vfr90k.mp4", **TINY, **CASES["vfr90k.mp4"][0])

    def mux(out, options):
        with av.open(clip["path"]) as src, av.open(out, "w", format="mpegts", options=options) as dst:
            streams = {s.index: dst.add_stream_from_template(s) for s in (src.streams.video[0], src.streams.audio[0])}
            for pkt in src.demux(list(src.streams)):
                if pkt.size:
                    pkt.stream = streams[pkt.stream.index]
                    dst.mux(pkt)
        return _times(out)[0], [t for _, t, _ in audio_packets(out)]

    want = _times(clip["path"])[0], [t for _, t, _ in audio_packets(clip["path"])]
    assert want[1][0] < 0
    assert mux(str(tmp_path / "exact.ts"), exact_time_options("mpegts")) == want
    assert mux(str(tmp_path / "default.ts"), {}) != want
