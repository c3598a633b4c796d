"""Tests for testmedia (the test-media generator): the generated media must really have the properties the ground truth claims."""
from fractions import Fraction

import numpy as np
import pytest

av = pytest.importorskip("av")
pytest.importorskip("skimage")

from testmedia import face_image, main, make_bad_inputs, make_clip  # noqa: E402

SMALL = dict(width=320, height=180, seconds=1.0, face_size=(50, 60))


def _packets(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [(p.pts, p.dts, p.is_keyframe) for p in c.demux(s) if p.size]


def _decode(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = [(f.pts, f.width, f.height, f.format.name, f.rotation) for f in c.decode(s)]
        return frames, s.time_base


def _check_basic(gt, pix_fmt=None):
    frames, time_base = _decode(gt["path"])
    assert len(frames) == gt["frames"] == len(gt["faces"]) == len(gt["pts"])
    assert [f[0] for f in frames] == gt["pts"]
    assert Fraction(gt["time_base"]) == time_base
    assert all(f[1] == gt["width"] and f[2] == gt["height"] for f in frames)
    if pix_fmt:
        assert frames[0][3] == pix_fmt
    for boxes in gt["faces"]:
        for x1, y1, x2, y2 in boxes:
            assert 0 <= x1 < x2 <= gt["width"] and 0 <= y1 < y2 <= gt["height"]
    return frames


def test_face_image_is_a_face_crop():
    img = face_image()
    assert img.dtype == np.uint8 and img.ndim == 3 and 150 < img.shape[0] < 200 and 140 < img.shape[1] < 180


def test_default_h264_bframes_faces_and_pixels(tmp_path):
    gt = make_clip(tmp_path / "a.mp4", faces=2, seed=1, **SMALL)
    frames = _check_basic(gt, "yuv420p")
    assert gt["frames"] == 30 and len(gt["faces"][0]) == 2
    pk = _packets(gt["path"])
    assert any(p != d for p, d, _ in pk), "no B-frame reordering"
    # the pasted face is really there: decoded pixels inside the box correlate with the face crop
    with av.open(gt["path"]) as c:
        f = next(c.decode(video=0)).to_ndarray(format="rgb24").astype(np.float32)
    x1, y1, x2, y2 = gt["faces"][0][1]
    from testmedia.synth import _resize
    ref = _resize(face_image(), y2 - y1, x2 - x1)
    got = f[y1:y2, x1:x2]
    corr = np.corrcoef(ref.mean(2).ravel(), got.mean(2).ravel())[0, 1]
    assert corr > 0.9
    # faces move
    assert gt["faces"][0] != gt["faces"][-1]
    # background moves and is not flat
    assert f.std() > 20


def test_no_bframes_and_gop(tmp_path):
    gt = make_clip(tmp_path / "g.mp4", bframes=0, gop=10, **SMALL)
    _check_basic(gt)
    pk = _packets(gt["path"])
    assert all(p == d for p, d, _ in pk)
    assert [i for i, (_, _, k) in enumerate(pk) if k] == [0, 10, 20]


def test_keyframes_only_first(tmp_path):
    gt = make_clip(tmp_path / "k.mp4", keyframes_only_first=True, **dict(SMALL, seconds=3.0))
    _check_basic(gt)
    pk = _packets(gt["path"])
    assert len(pk) == 90
    assert [k for _, _, k in pk] == [True] + [False] * 89


@pytest.mark.skipif("libx265" not in av.codec.codecs_available, reason="no libx265")
def test_hevc_mkv(tmp_path):
    gt = make_clip(tmp_path / "h.mkv", codec="libx265", **SMALL)
    _check_basic(gt, "yuv420p")
    with av.open(gt["path"]) as c:
        assert c.streams.video[0].codec_context.name == "hevc"
        assert c.format.name.startswith("matroska")


def test_10bit(tmp_path):
    gt = make_clip(tmp_path / "t.mp4", pix_fmt="yuv420p10le", **SMALL)
    _check_basic(gt, "yuv420p10le")


def test_full_range_mov(tmp_path):
    gt = make_clip(tmp_path / "j.mov", pix_fmt="yuvj420p", **SMALL)
    _check_basic(gt)
    with av.open(gt["path"]) as c:
        f = next(c.decode(video=0))
        assert f.format.name == "yuvj420p" or f.color_range == 2
        assert "mov" in c.format.name


def test_odd_dimensions_use_444(tmp_path):
    gt = make_clip(tmp_path / "o.mp4", width=321, height=181, seconds=0.5, face_size=(40, 50))
    assert gt["pix_fmt"] == "yuv444p"
    _check_basic(gt, "yuv444p")


def test_vfr(tmp_path):
    gt = make_clip(tmp_path / "v.mp4", vfr=True, **dict(SMALL, seconds=2.0))
    _check_basic(gt)
    assert gt["time_base"] == "1/90000"
    d = np.diff(gt["pts"])
    assert len(set(d.tolist())) > 5
    assert d.min() >= 3000 * 0.99 and d.max() <= 7500 * 1.01  # 1/fps .. 2.5/fps at 1/90000


@pytest.mark.parametrize("deg", [90, 180, 270])
def test_rotation_roundtrip(tmp_path, deg):
    gt = make_clip(tmp_path / f"r{deg}.mp4", rotation=deg, **dict(SMALL, seconds=0.3))
    frames = _check_basic(gt)
    assert frames[0][4] % 360 == deg


@pytest.mark.parametrize("audio,suffix,codec", [("aac", ".mp4", "aac"), ("opus", ".mkv", "opus"),
                                                ("opus", ".mp4", "opus"), ("aac", ".mov", "aac")])
def test_audio(tmp_path, audio, suffix, codec):
    gt = make_clip(tmp_path / f"a{suffix}", audio=audio, **SMALL)
    _check_basic(gt)
    with av.open(gt["path"]) as c:
        assert len(c.streams.audio) == 1
        a = c.streams.audio[0]
        assert a.codec_context.name == codec and a.codec_context.sample_rate == 48000
        assert a.codec_context.channels == 2
        n = 0
        peak = 0.0
        for f in c.decode(a):
            x = f.to_ndarray()
            n += f.samples
            peak = max(peak, float(np.abs(x).max()))
        assert abs(n / 48000 - 1.0) < 0.1 and peak > 0.1


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv"])
def test_metadata(tmp_path, suffix):
    md = {"location": "+48.8566+002.3522/", "make": "Acme", "model": "Dashcam 3",
          "creation_time": "2024-01-01T00:00:00Z"}
    gt = make_clip(tmp_path / f"m{suffix}", metadata=md, **dict(SMALL, seconds=0.3))
    with av.open(gt["path"]) as c:
        tags = {k.lower(): v for k, v in c.metadata.items()}
    assert tags.get("location") == md["location"]
    assert tags.get("make") == "Acme" and tags.get("model") == "Dashcam 3"
    assert tags.get("creation_time", "").startswith("2024-01-01T00:00:00")


def test_bad_inputs(tmp_path):
    bad = make_bad_inputs(tmp_path)
    assert set(bad) == {"empty", "random", "truncated", "audio_only", "text"}
    for name in ("empty", "random", "truncated", "text"):
        with pytest.raises((av.FFmpegError, ValueError, IndexError, StopIteration)):
            with av.open(bad[name]) as c:
                s = c.streams.video[0]
                n = sum(1 for _ in c.decode(s))
                if n == 0:
                    raise ValueError("no frames")
    with av.open(bad["audio_only"]) as c:
        assert len(c.streams.video) == 0 and c.streams.audio[0].codec_context.name == "aac"


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli.mp4"
    assert main([str(out), "--width", "160", "--height", "96", "--seconds", "0.5", "--faces", "2",
                 "--face-size", "30", "40", "--audio", "aac"]) == 0
    line = capsys.readouterr().out.strip()
    assert len(line.splitlines()) == 1 and "160x96" in line and "2 moving face(s)" in line, line
    assert main([str(out), "--width", "160", "--height", "96", "--seconds", "0.5", "--json"]) == 0
    assert '"frames": 15' in capsys.readouterr().out and out.stat().st_size > 0


def test_scene_clip_faces_are_where_the_ground_truth_says(tmp_path):
    """Textured scene with a close hand and objects: each face of the asked widths sits in its box (the pixels
    there correlate with the face crop), and hands/objects never cover a face."""
    from testmedia import scene_clip
    from testmedia.synth import _resize
    sizes = (16, 24, 40)
    gt = scene_clip(tmp_path / "s.mp4", width=320, height=240, fps=10, seconds=0.3, face_sizes=sizes, hands=1, seed=2)
    with av.open(gt["path"]) as c:
        frames = [f.to_ndarray(format="rgb24").astype(np.float32) for f in c.decode(video=0)]
    assert len(frames) == gt["frames"] == len(gt["faces"]) == 3
    for img, boxes in zip(frames, gt["faces"]):
        assert [x2 - x1 for x1, _, x2, _ in boxes] == list(sizes)
        for x1, y1, x2, y2 in boxes:
            ref = _resize(face_image(), y2 - y1, x2 - x1).mean(2).ravel()
            assert np.corrcoef(ref, img[y1:y2, x1:x2].mean(2).ravel())[0, 1] > 0.8


def test_scene_clip_fisheye_warps_faces_and_their_boxes_alike(tmp_path):
    from testmedia.scene import fisheye_maps, scene_clip
    mx, my = fisheye_maps(200, 100, 0.6)
    assert abs(mx[50, 100] - 99.5) < 1 and abs(mx[0, 0]) < 1e-3 and abs(mx[99, 199] - 199) < 1e-3  # corners stay
    assert 100 < mx[50, 150] < 145  # half way out, the picture shows what lies nearer the middle: magnified
    flat = scene_clip(tmp_path / "a.mp4", width=320, height=240, seconds=0.1, face_sizes=(40, 60), hands=0, seed=1)
    warped = scene_clip(tmp_path / "b.mp4", width=320, height=240, seconds=0.1, face_sizes=(40, 60), hands=0,
                        seed=1, fisheye=0.6)
    assert len(warped["faces"][0]) == 2 and warped["faces"][0] != flat["faces"][0]
    mx, my = fisheye_maps(320, 240, 0.6)
    for (x1, y1, x2, y2), (a1, b1, a2, b2) in zip(warped["faces"][0], flat["faces"][0]):
        # the warped box bounds exactly the pixels that show a point of the flat face (to a pixel)
        ys, xs = np.nonzero((mx >= a1) & (mx < a2) & (my >= b1) & (my < b2))
        assert abs(xs.min() - x1) <= 1 and abs(ys.min() - y1) <= 1
        assert abs(xs.max() + 1 - x2) <= 1 and abs(ys.max() + 1 - y2) <= 1
    with av.open(warped["path"]) as c:
        img = next(c.decode(video=0)).to_ndarray(format="rgb24").astype(np.float32)
    with av.open(flat["path"]) as c:
        ref = next(c.decode(video=0)).to_ndarray(format="rgb24").astype(np.float32)
    import cv2
    again = cv2.remap(ref, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    assert np.abs(img - again).mean() < 8  # the warped clip is the flat scene through the same lens


def test_scene_clip_face_cores_are_the_central_part_of_each_face(tmp_path):
    from testmedia import scene_clip
    gt = scene_clip(tmp_path / "c.mp4", width=320, height=240, seconds=0.1, face_sizes=(40, 60), hands=0, seed=1)
    for (x1, y1, x2, y2), (a1, b1, a2, b2) in zip(gt["faces"][0], gt["cores"][0]):
        assert x1 < a1 < a2 < x2 and y1 < b1 < b2 < y2
        assert abs((a2 - a1) - 0.6 * (x2 - x1)) <= 2 and abs((b2 - b1) - 0.6 * (y2 - y1)) <= 2
        assert abs((a1 + a2) - (x1 + x2)) <= 2 and abs((b1 + b2) - (y1 + y2)) <= 2
