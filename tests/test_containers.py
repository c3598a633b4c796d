"""The output container rule (redactor.containers) in the local CLI: an output the chosen container cannot
hold is a named error before any frame is redacted, and every output suffix the rule allows really works."""
from __future__ import annotations

import os

import pytest

from redactor import cli
from redactor.containers import output_name
from tests.conftest import audio_packets, video_times


def test_output_names_per_input():
    assert output_name("a/b.mp4") == "a/b.mp4"
    assert output_name("a/b.MTS") == "a/b.MTS"
    assert output_name("a/b.webm") == "a/b.webm.mkv"
    assert output_name("a/b.avi") == "a/b.avi.mov"
    assert output_name("a/b.flv") == "a/b.flv.mp4"


class _NoRedaction:
    """Fails the test if any segment is redacted (the error must come before any work)."""

    def __init__(self, *a, **k):
        raise AssertionError("a segment was redacted before the output was refused")


@pytest.mark.parametrize("name,why", [("out.webm", "WebM holds only VP8/VP9/AV1"), ("out.avi", "AVI stores no"),
                                      ("out.gif", "use one of"), ("out", "(none)")])
def test_cli_refuses_an_output_suffix_it_cannot_write(media, tmp_path, capsys, monkeypatch, name, why):
    from redactor import pipeline

    clip = media("c_small.mp4", width=160, height=128, fps=25, seconds=0.4, faces=0, audio="aac")
    monkeypatch.setattr(pipeline, "make_plan", _NoRedaction)  # refused before even probing the input
    out = tmp_path / name
    code = cli.main(["redact", clip["path"], "-o", str(out), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "InputError" in err and name in err and why in err and len(err.splitlines()) == 1
    assert os.listdir(tmp_path) == []


def test_cli_refuses_audio_the_output_cannot_hold_before_redacting(media, tmp_path, capsys, monkeypatch):
    from redactor import pipeline

    clip = media("c_adpcm.avi", width=160, height=128, fps=25, seconds=0.4, faces=0, audio="adpcm", bframes=0)
    monkeypatch.setattr(pipeline, "redact_segments", _NoRedaction)
    out = tmp_path / "c_adpcm.mov"
    code = cli.main(["redact", clip["path"], "-o", str(out), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "c_adpcm.avi" in err and "adpcm_ima_wav" in err and ".mov output" in err, err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("src,out", [("c_ts.ts", "o.ts"), ("c_m2ts.mts", "o.mts"), ("c_mp3.avi", "o.mov")])
def test_cli_writes_the_new_output_types_exactly(media, model_path, tmp_path, src, out):
    args = dict(audio="mp3", bframes=0) if src.endswith(".avi") else dict(audio="aac")
    clip = media(src, width=160, height=128, fps=25, seconds=1.0, faces=0, **args)
    dest = tmp_path / out
    assert cli.main(["redact", clip["path"], "-o", str(dest), "--workers", "1", "--segment-seconds", "0.5",
                     "--model", model_path, "-q"]) == 0
    assert video_times(str(dest)) == video_times(clip["path"])
    assert audio_packets(str(dest)) == audio_packets(clip["path"]) and audio_packets(str(dest))


def _x264_part(path, width: int, height: int, frames: int = 3) -> str:
    import av
    import numpy as np
    with av.open(str(path), "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(np.full((height, width, 3), 40 * i, np.uint8), format="rgb24")
            for pkt in s.encode(f):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    return str(path)


def test_parts_with_different_codec_parameters_are_not_joined(tmp_path):
    """concat_video (a segment's chunks) refuses a part whose SPS/PPS differ from the first part's, naming
    the segment and the part, and leaves no output."""
    from redactor.errors import StitchError
    from redactor.remux import concat_video
    a, b = _x264_part(tmp_path / "a.mp4", 64, 64), _x264_part(tmp_path / "b.mp4", 96, 64)
    out = tmp_path / "joined.mp4"
    with pytest.raises(StitchError, match="segment 3: part has different codec parameters") as e:
        concat_video([a, b], str(out), segment_index=3)
    assert e.value.path == b and sorted(os.listdir(tmp_path)) == ["a.mp4", "b.mp4"]  # no output, no temp file
    concat_video([a, a], str(out), segment_index=3)
    assert out.stat().st_size > 0


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".ts", ".mkv"])
def test_concat_and_stitch_open_inputs_for_packets_only_and_write_the_same_bytes(media, tmp_path, monkeypatch,
                                                                                 suffix):
    """The parent's serial work after the last chunk: ``concat_video`` opens each chunk part once, for packets
    only; ``stitch`` opens the first part (its stream template) and a local source for packets only too, except
    for Matroska output (its track headers take what a decoded frame tells). Either way the files are byte for
    byte what opening every input for decoding writes."""
    from redactor import Config, plan, remux
    from redactor.probe import PACKETS_ONLY
    from redactor.segment import redact_segments
    from tests.test_schedule_tracks import FakeTwoTier
    clip = media("c_join.mp4", width=160, height=128, fps=25, seconds=2.0, faces=2, face_size=(14, 40),
                 audio="aac", gop=12)
    cfg = Config(workers=2, segment_seconds=60, fine_every=12, detect_every=3, hold=1)
    p = plan(clip["path"], cfg)
    opened = []
    real_open = remux.open_input

    def spy(path, *a, **kw):
        opened.append((os.path.basename(path), kw.get("options")))
        return real_open(path, *a, **kw)
    monkeypatch.setattr(remux, "open_input", spy)
    (r,) = redact_segments(clip["path"], p.segments, cfg, str(tmp_path / "work"),
                           detector_factory=lambda c, s: FakeTwoTier(clip), source_info=p.source)
    assert r.workers == 2 and opened == [("part-00000-00.mp4", PACKETS_ONLY), ("part-00000-01.mp4", PACKETS_ONLY)]
    opened.clear()
    out = tmp_path / f"out{suffix}"
    remux.stitch(p, [r], str(out), cfg)
    full = suffix == ".mkv"
    assert opened[:2] == [("c_join.mp4", None if full else PACKETS_ONLY),
                          ("part-00000.mp4", None if full else PACKETS_ONLY)]
    # every input opened for decoding, as before: the same bytes
    monkeypatch.setattr(remux, "PACKETS_ONLY", None)
    ref = tmp_path / f"ref{suffix}"
    remux.stitch(p, [r], str(ref), cfg)
    assert out.read_bytes() == ref.read_bytes()
    parts = [str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")]
    for part in parts:
        _x264_part(part, 64, 64)
    monkeypatch.setattr(remux, "PACKETS_ONLY", PACKETS_ONLY)
    remux.concat_video(parts, str(tmp_path / "cat.mp4"))
    monkeypatch.setattr(remux, "PACKETS_ONLY", None)
    remux.concat_video(parts, str(tmp_path / "cat-ref.mp4"))
    assert (tmp_path / "cat.mp4").read_bytes() == (tmp_path / "cat-ref.mp4").read_bytes()
