"""The engine on real (generated) video: plan, frame-exactness, audio, faces, borders, fail-closed, pool."""
from __future__ import annotations

import json
import os
from fractions import Fraction

import av
import numpy as np
import pytest

from redactor import Config, plan, redact_file
from redactor.detectors import CenterFace, BaseDetector
from redactor.probe import probe
from redactor.records import Plan

from .conftest import audio_packets, decode_gray, no_partial_files, video_times

VARIANTS = {
    # name: make_clip kwargs
    "bframes_aac.mp4": dict(width=320, height=240, seconds=2.0, bframes=3, gop=12, audio="aac", faces=1),
    "vfr.mkv": dict(width=320, height=180, seconds=2.0, vfr=True, audio="opus", faces=1),
    "odd_dims.mp4": dict(width=321, height=181, seconds=1.5, faces=1, face_size=(50, 60)),
    "rotated90.mov": dict(width=320, height=240, seconds=1.5, rotation=90, audio="aac", faces=1),
    "single_keyframe.mp4": dict(width=320, height=240, seconds=3.0, keyframes_only_first=True, bframes=2),
    "tenbit.mp4": dict(width=320, height=240, seconds=1.5, pix_fmt="yuv420p10le", faces=1),
    "hevc_opus.mkv": dict(width=320, height=240, seconds=1.5, codec="libx265", audio="opus", faces=1),
    "fullrange.mov": dict(width=320, height=240, seconds=1.5, pix_fmt="yuvj420p", faces=1),
}


def _cfg(model_path, **kw):
    base = dict(segment_seconds=0.5, workers=2, model_path=model_path)
    base.update(kw)
    return Config(**base)


def test_plan_is_keyframe_aligned_and_round_trips(media):
    clip = media("gop.mp4", width=320, height=240, seconds=4.0, gop=15, bframes=2)
    p = plan(clip["path"], Config(segment_seconds=1.0))
    assert p.source.frame_count == clip["frames"] == 120
    assert [s.start_frame for s in p.segments] == [0, 30, 60, 90]
    assert all(s.keyframe_aligned for s in p.segments)
    assert p.segments[-1].end_frame == 120 and p.segments[0].end_pts == p.segments[1].start_pts
    # contiguous cover of every frame, each with its own timestamps plus context
    assert all(a.end_frame == b.start_frame for a, b in zip(p.segments, p.segments[1:]))
    assert p.segments[1].frame_pts[p.segments[1].context_before] == clip["pts"][30]
    again = Plan.from_json(json.dumps(p.to_dict()))
    assert again == p


def test_sparse_keyframes_still_cut_to_target_length(media):
    clip = media("single_keyframe.mp4", **VARIANTS["single_keyframe.mp4"])
    p = plan(clip["path"], Config(segment_seconds=1.0))
    assert len(p.segments) == 3 and p.keyframes == 1
    assert not p.segments[1].keyframe_aligned
    assert [k.frame for k in p.segments[2].keyframes] == [0]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_output_is_frame_exact_with_audio_copied(name, media, model_path, tmp_path):
    clip = media(name, **VARIANTS[name])
    out = str(tmp_path / ("out" + os.path.splitext(name)[1]))
    report = redact_file(clip["path"], out, _cfg(model_path), report_path=str(tmp_path / "r.json"))
    assert video_times(out) == video_times(clip["path"])
    assert len(video_times(out)) == clip["frames"]
    src_audio = audio_packets(clip["path"])
    assert audio_packets(out) == src_audio
    if VARIANTS[name].get("audio"):
        assert src_audio, "the generated clip must have audio"
    with av.open(out) as c, av.open(clip["path"]) as s:
        assert c.streams.video[0].codec_context.name == "h264"
        assert (c.streams.video[0].width, c.streams.video[0].height) == (clip["width"], clip["height"])
        f_out, f_src = next(c.decode(video=0)), next(s.decode(video=0))
        assert f_out.rotation == f_src.rotation
        if "10" in f_src.format.name:
            assert "10" in f_out.format.name
    assert report["counts"]["frames"] == clip["frames"]
    assert json.loads((tmp_path / "r.json").read_text())["source"]["frame_count"] == clip["frames"]
    assert not no_partial_files(tmp_path)


def test_metadata_is_stripped_unless_kept(media, model_path, tmp_path):
    meta = {"location": "+48.8566+002.3522/", "make": "Acme", "model": "Dashcam 3"}
    clip = media("meta.mp4", width=320, height=240, seconds=1.0, faces=0, metadata=meta)
    out = str(tmp_path / "out.mp4")
    report = redact_file(clip["path"], out, _cfg(model_path))
    with av.open(out) as c:
        tags = dict(c.metadata)
        tags.update(c.streams.video[0].metadata)
    assert not {"location", "make", "model", "encoder", "creation_time"} & set(tags)
    assert {"format:location", "format:make", "format:model"} <= set(report["removed_metadata"])
    kept = str(tmp_path / "kept.mp4")
    redact_file(clip["path"], kept, _cfg(model_path, keep_metadata=True))
    with av.open(kept) as c:
        assert c.metadata.get("make") == "Acme"


def _face_blurred(src, out, box, shrink=0.25):
    """True if the centre of ``box`` changed a lot (blurred) between source and output frames."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    a, b = int(x1 + w * shrink), int(y1 + h * shrink)
    c, d = int(x2 - w * shrink), int(y2 - h * shrink)
    s = src[b:d, a:c].astype(np.float32)
    o = out[b:d, a:c].astype(np.float32)
    # blur removes detail: the output's local gradients collapse compared to the source's
    grad = lambda im: np.abs(np.diff(im, axis=1)).mean() + np.abs(np.diff(im, axis=0)).mean()  # noqa: E731
    return grad(o) < 0.5 * grad(s)


def test_astronaut_faces_are_covered(media, model_path, tmp_path):
    clip = media("astronaut.mp4", width=640, height=360, seconds=2.0, faces=2, face_size=(70, 110),
                 audio="aac")
    out = str(tmp_path / "out.mp4")
    report = redact_file(clip["path"], out, _cfg(model_path, mask="box"))
    src, dst = decode_gray(clip["path"]), decode_gray(out)
    # every ground-truth face is blurred on every frame
    misses = [(i, box) for i, boxes in enumerate(clip["faces"]) for box in boxes
              if not _face_blurred(src[i], dst[i], box)]
    assert not misses, f"faces left visible: {misses[:5]}"
    # every detection lies inside the redacted region: its pixels changed, and far from faces nothing did
    for d in report["detections"]:
        for x1, y1, x2, y2, score in d["boxes"]:
            assert _face_blurred(src[d["frame"]], dst[d["frame"]], (x1, y1, x2, y2), shrink=0.1)
    assert report["counts"]["frames_with_faces"] >= 0.95 * report["counts"]["detected_frames"]
    assert report["counts"]["redacted_frames"] == clip["frames"]
    # away from faces the output is the source up to encoding noise
    mask = np.ones_like(src[0], dtype=bool)
    for box in clip["faces"][10]:
        x1, y1, x2, y2 = box
        w, h = x2 - x1, y2 - y1
        mask[max(0, int(y1 - h)):int(y2 + h), max(0, int(x1 - w)):int(x2 + w)] = False
    diff = np.abs(src[10].astype(int) - dst[10].astype(int))[mask].mean()
    assert diff < 4.0


def test_small_faces_in_small_frames_are_detected(media, model_path, tmp_path):
    clip = media("small.mp4", width=480, height=270, seconds=1.0, faces=2, face_size=(16, 20))
    d = CenterFace(Config(model_path=model_path), probe(clip["path"])[0])
    hits = total = 0
    with av.open(clip["path"]) as c:
        for i, f in enumerate(c.decode(video=0)):
            boxes = d([f])[0]
            for gx1, gy1, gx2, gy2 in clip["faces"][i]:
                total += 1
                cx, cy = (gx1 + gx2) / 2, (gy1 + gy2) / 2
                hits += any(b[0] <= cx <= b[2] and b[1] <= cy <= b[3] for b in boxes)
    assert hits / total >= 0.9, f"small faces found {hits}/{total}"


def test_rotated_frames_are_detected_in_display_orientation(model_path):
    """A portrait phone video stores faces sideways; detection must run on the display-oriented image."""
    from skimage import data
    img = data.astronaut()  # upright face
    sideways = np.ascontiguousarray(np.rot90(img, -1))  # stored rotated clockwise, display = rot90 ccw
    frame = av.VideoFrame.from_ndarray(sideways, format="rgb24").reformat(format="yuv420p")
    info = type("I", (), {"rotation": 90})()
    det = CenterFace(Config(model_path=model_path), info)
    boxes = det([frame])[0]
    assert len(boxes) >= 1
    # the astronaut's face centre (display coords ~ (225, 115) in 512x512) maps back to stored coords
    x1, y1, x2, y2, _ = boxes[np.argmax(boxes[:, 4])]
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    assert abs(cx - (512 - 115)) < 40 and abs(cy - 225) < 40


def test_segment_borders_make_no_difference(media, model_path, tmp_path):
    clip = media("astronaut_borders.mp4", width=480, height=270, seconds=2.0, faces=2, face_size=(40, 60),
                 gop=10)
    one = redact_file(clip["path"], str(tmp_path / "one.mp4"), _cfg(model_path, segment_seconds=60, workers=1))
    many = redact_file(clip["path"], str(tmp_path / "many.mp4"), _cfg(model_path, segment_seconds=0.5,
                                                                     workers=2))
    assert len(many["plan"]["segments"]) >= 3 and len(one["plan"]["segments"]) == 1
    assert one["detections"] == many["detections"]
    a, b = decode_gray(str(tmp_path / "one.mp4")), decode_gray(str(tmp_path / "many.mp4"))
    assert len(a) == len(b) == clip["frames"]


class _FailingDetector(BaseDetector):
    name = "failing"

    def __init__(self, fail_at_call):
        self.calls = 0
        self.fail_at_call = fail_at_call

    def __call__(self, frames):
        self.calls += 1
        if self.calls >= self.fail_at_call:
            raise RuntimeError("inference backend crashed")
        return [np.zeros((0, 5), np.float32) for _ in frames]


def test_fail_closed_cli_exits_nonzero_and_writes_nothing(media, tmp_path, monkeypatch, capsys):
    from redactor import cli, detectors
    clip = media("failclosed.mp4", width=320, height=240, seconds=2.0, faces=1, audio="aac")
    monkeypatch.setitem(detectors.FACTORIES, Config().detector, lambda cfg, info: _FailingDetector(fail_at_call=7))
    out = tmp_path / "out.mp4"
    report = tmp_path / "r.json"
    code = cli.main(["redact", clip["path"], "-o", str(out), "--report", str(report), "--workers", "2",
                     "--segment-seconds", "0.5", "-q"])
    err = capsys.readouterr().err
    assert code == 4
    assert "DetectionError" in err and "failclosed.mp4" in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not report.exists()
    assert os.listdir(tmp_path) == []


def test_pool_works_without_semaphores(media, model_path, tmp_path, monkeypatch):
    """Lambda has no /dev/shm: creating a semaphore fails with ENOSYS (errno 38). The pool must not need one."""
    import _multiprocessing
    import multiprocessing
    import multiprocessing.synchronize

    def no_semaphores(*a, **k):
        raise OSError(38, "Function not implemented")
    monkeypatch.setattr(_multiprocessing, "SemLock", no_semaphores)
    with pytest.raises(OSError):
        multiprocessing.get_context("fork").Lock()
    with pytest.raises(OSError):
        multiprocessing.get_context("fork").Queue()
    clip = media("pool.mp4", width=320, height=240, seconds=2.0, faces=1, face_size=(70, 90))
    from redactor.segment import redact_segments
    cfg = _cfg(model_path, workers=2, fine_every=6, segment_seconds=60)  # short context so a 2 s clip splits into 2 chunks
    p = plan(clip["path"], cfg)
    results = redact_segments(clip["path"], p.segments, cfg, str(tmp_path), source_info=p.source)
    assert results[0].workers == 2 and results[0].frames == clip["frames"]
    assert results[0].faces > 0
    out = str(tmp_path / "out.mp4")
    redact_file(clip["path"], out, cfg)
    assert video_times(out) == video_times(clip["path"])


def test_pool_uses_separate_processes(media, model_path, tmp_path):
    from redactor.chunk import run_chunk
    from redactor.segment import chunk_tasks
    from redactor.pool import WorkerPool
    clip = media("pool.mp4", width=320, height=240, seconds=2.0, faces=1, face_size=(70, 90))
    cfg = _cfg(model_path, workers=2, fine_every=6, segment_seconds=60)
    p = plan(clip["path"], cfg)
    tasks = chunk_tasks(clip["path"], p.segments[0], cfg, p.source, tmp_path, 2)
    assert len(tasks) == 2
    with WorkerPool(2, run_chunk, lambda: CenterFace(cfg, p.source)) as pool:
        res = pool.run(tasks)
    pids = {r["pid"] for r in res}
    assert len(pids) == 2 and os.getpid() not in pids
    assert sum(r["frames"] for r in res) == clip["frames"]


def test_pool_tasks_hand_each_other_results_without_waiting():
    """``Channel.publish`` / ``fetch`` through the parent: a task gets what an earlier task of the same run
    published, and an empty answer (never a wait) for what nobody has published yet; a new run starts empty."""
    from redactor.pool import WorkerPool

    def body(state, task, channel):
        channel.progress(1)
        if task[0] == "publish":
            channel.publish({task[1]: os.getpid()})
            return os.getpid()
        return channel.fetch(task[1])

    seen = []
    with WorkerPool(1, body) as pool:
        res = pool.run([("fetch", ["a"]), ("publish", "a"), ("fetch", ["a", "b"])], seen.append)
        assert res[0] == {} and res[2] == {"a": res[1]} and sum(seen) == 3
        assert pool.run([("fetch", ["a"])]) == [{}]


def test_a_pool_task_can_wait_for_what_a_running_task_publishes_and_never_hangs():
    """``fetch(wait=True)``: answered once another running task has published it; when every running task is
    waiting (nobody left to publish), answered with what there is instead of hanging."""
    import time

    from redactor.pool import WorkerPool

    def body(state, task, channel):
        if task[0] == "publish":
            time.sleep(0.3)
            channel.publish({task[1]: "here"})
            return None
        t0 = time.monotonic()
        return channel.fetch(task[1], wait=True), time.monotonic() - t0

    with WorkerPool(2, body) as pool:
        (got, waited), _ = pool.run([("wait", ["k"]), ("publish", "k")])
        assert got == {"k": "here"} and waited >= 0.2
        (got, _), = pool.run([("wait", ["nobody"])])
        assert got == {}


@pytest.mark.parametrize("bad", ["empty", "random", "truncated", "audio_only", "text"])
def test_bad_inputs_get_named_errors(bad, tmp_path, capsys):
    from redactor import cli
    from testmedia import make_bad_inputs
    inputs = make_bad_inputs(str(tmp_path / "in"))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "out.mp4"
    code = cli.main(["redact", inputs[bad], "-o", str(out), "--report", str(out_dir / "r.json"), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and os.path.basename(inputs[bad]) in err and "InputError" in err
    assert os.listdir(out_dir) == []
    # probe gives the same named error
    assert cli.main(["probe", inputs[bad]]) == 2


@pytest.mark.parametrize("detector", [[], ["--detector", "centerface"]], ids=["default", "centerface"])
def test_missing_model_is_a_named_setup_error(media, tmp_path, capsys, monkeypatch, detector):
    """Both local detectors need the CenterFace model (the default checks its boxes with it): a missing or
    corrupt one, given with --model or $REDACTOR_MODEL_PATH, is exit 3 naming the file, on a clip with a face
    and on one without (the model is checked when the detector is built, not when a box needs it)."""
    from redactor import cli
    clips = [media("pool.mp4", width=320, height=240, seconds=2.0, faces=1, face_size=(70, 90))["path"],
             media("empty.mp4", width=320, height=240, seconds=1.0, faces=0)["path"]]
    bogus = tmp_path / "centerface.onnx"
    bogus.write_bytes(b"not a model")
    for clip in clips:
        for model in (str(tmp_path / "missing.onnx"), str(bogus)):
            for how in ("flag", "env"):
                monkeypatch.delenv("REDACTOR_MODEL_PATH", raising=False)
                if how == "env":
                    monkeypatch.setenv("REDACTOR_MODEL_PATH", model)
                code = cli.main(["redact", clip, "-o", str(tmp_path / "o.mp4"), *detector, "-q",
                                 *(["--model", model] if how == "flag" else [])])
                err = capsys.readouterr().err
                assert code == 3 and "fetch-model" in err and "ModelError" in err and model in err, (clip, how, err)
                assert not (tmp_path / "o.mp4").exists()


def test_output_timestamps_match_in_seconds(media, model_path, tmp_path):
    clip = media("vfr.mkv", **VARIANTS["vfr.mkv"])
    out = str(tmp_path / "out.mkv")
    redact_file(clip["path"], out, _cfg(model_path))
    tb = Fraction(clip["time_base"])
    assert video_times(out) == [p * tb for p in clip["pts"]]


def test_the_runtime_is_the_one_the_lambda_runs(model_path):
    """What is tested is what is deployed: the Lambda layer has OpenCV DNN only, and so has the engine:
    CenterFace runs in cv2.dnn and reports it, and nothing imports OpenVINO even where it is installed."""
    import sys

    from skimage import data
    assert Config().inference == "opencv"
    det = CenterFace(Config(model_path=model_path))
    img = np.ascontiguousarray(data.astronaut()[:, :, :3])
    found = det.detect_rgb(img, 512, 512)  # the astronaut photo is 512x512
    assert len(found) >= 1 and det.backend == "opencv"
    assert det.stats() == {"calls": 1, "backend_opencv": 1}
    assert "openvino" not in sys.modules


def test_inference_auto_from_old_configs_is_opencv():
    """``inference=auto`` (in scripts, configs and REDACTOR_INFERENCE) is accepted; OpenCV DNN is the only
    runtime, so the Config holds what runs."""
    assert Config(inference="auto").inference == "opencv"
    assert Config.from_dict({"inference": "auto"}).inference == "opencv"
    assert Config.from_env({"REDACTOR_INFERENCE": "auto"}).inference == "opencv"
    assert Config(inference="opencv").inference == "opencv"


def test_asking_for_openvino_says_why_not(media, tmp_path, capsys):
    """``inference=openvino`` (a Config, JSON settings, REDACTOR_INFERENCE, ``--inference openvino``)
    is refused with a ConfigError that says OpenVINO is not supported, why and what to use instead: a run
    that silently changed runtime would not be the run that was asked for."""
    from redactor import cli
    from redactor.errors import ConfigError
    for make in (lambda: Config(inference="openvino"), lambda: Config.from_dict({"inference": "openvino"}),
                 lambda: Config.from_env({"REDACTOR_INFERENCE": "OpenVINO"})):
        with pytest.raises(ConfigError) as e:
            make()
        msg = str(e.value)
        assert msg.startswith("setting inference=")
        assert "OpenVINO is not supported" in msg and "use inference=opencv" in msg
        assert "2.3-3.0x cheaper" in msg and "250 MB" in msg  # why
    clip = media("pool.mp4", width=320, height=240, seconds=2.0, faces=1, face_size=(70, 90))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code = cli.main(["redact", clip["path"], "-o", str(out_dir / "o.mp4"), "--report", str(out_dir / "r.json"),
                     "--inference", "openvino", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "ConfigError" in err and "OpenVINO is not supported" in err
    assert os.listdir(out_dir) == []


def test_unknown_inference_backend_is_a_config_error():
    from redactor.errors import ConfigError
    with pytest.raises(ConfigError, match="inference='cuda': must be one of opencv, auto"):
        Config(inference="cuda")


def test_a_config_cannot_be_changed_once_made():
    """A Config is validated when it is made, so it cannot be changed afterwards (``dataclasses.replace``
    makes a new, validated one)."""
    import dataclasses

    from redactor.errors import ConfigError

    c = Config(crf=18)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.crf = 60
    assert dataclasses.replace(c, crf=19).crf == 19 and c.crf == 18
    with pytest.raises(ConfigError):
        dataclasses.replace(c, crf=60)


def test_settings_given_as_strings_are_their_fields_types():
    """Config(enlarge="1.4") must not stay a string (the worker would crash on it): every way in (keywords,
    from_dict, replace) gives the field's type, or a named ConfigError."""
    import dataclasses

    from redactor.errors import ConfigError
    c = Config(enlarge="1.4", hold="3", drop_audio="false")
    assert (c.enlarge, c.hold, c.drop_audio) == (1.4, 3, False)
    assert type(c.enlarge) is float and type(c.hold) is int
    assert type(dataclasses.replace(c, enlarge="2").enlarge) is float
    assert Config.from_dict({"enlarge": "1.5"}).enlarge == 1.5
    with pytest.raises(ConfigError, match="enlarge='wide'"):
        Config(enlarge="wide")
    with pytest.raises(ConfigError, match="hold"):
        Config.from_dict({"hold": "two"})


def test_track_step_must_divide_the_detection_period():
    from redactor.errors import ConfigError
    assert Config().schedule.track == Config().schedule.every == 3  # at 30 fps
    assert Config(detect_every=6, track_every=3).schedule.track == 3
    with pytest.raises(ConfigError, match="track_every"):
        Config(detect_every=6, track_every=4)


def test_chunks_cut_on_fine_passes_and_change_nothing(media, model_path, tmp_path):
    """Two workers on one segment cut it on a fine-pass frame; small-face tracks are local to their fine
    interval, so the chunked run detects and covers exactly what one worker does."""
    from redactor.chunking import split_chunks
    clip = media("chunks_small.mp4", width=960, height=540, seconds=2.0, faces=4, face_size=(18, 36), gop=25)
    one_cfg = _cfg(model_path, workers=1, segment_seconds=60, fine_every=12)
    two_cfg = _cfg(model_path, workers=2, segment_seconds=60, fine_every=12)
    p = plan(clip["path"], two_cfg)
    chunks = split_chunks(p.segments[0], 2, two_cfg.schedule.context, two_cfg.schedule.fine)
    assert len(chunks) == 2 and chunks[1][0] % 12 == 0 and chunks[1][2].frame <= chunks[1][0] - 12
    one = redact_file(clip["path"], str(tmp_path / "one.mp4"), one_cfg)
    two = redact_file(clip["path"], str(tmp_path / "two.mp4"), two_cfg)
    assert one["detections"] == two["detections"]
    # the clip really exercises the small-face tracker: boxes below the coarse pass's cut-off on frames
    # that are not fine-pass frames
    small = CenterFace(two_cfg, p.source).coarse_min_face(960, 540)
    tracked = [d for d in one["detections"] if d["frame"] % 12 and
               any(max(b[2] - b[0], b[3] - b[1]) < small for b in d["boxes"])]
    assert len(tracked) >= 5
    a, b = decode_gray(str(tmp_path / "one.mp4")), decode_gray(str(tmp_path / "two.mp4"))
    assert len(a) == len(b) == clip["frames"]


def test_small_faces_appearing_between_fine_passes_are_covered_from_their_first_frame(media, model_path, tmp_path):
    """Two small (18-22 px), fast faces enter at frame 31, between the fine passes at 24 and 48. One is first
    found by the coarse pass a few frames later, the other only by the fine pass at 48; both are tracked
    back, so every frame from 31 on has both faces blurred (pixel check on the ground truth)."""
    import cv2
    clip = media("appear.mp4", width=960, height=540, seconds=2.0, faces=2, face_size=(18, 22),
                 appear=[31, 31], seed=5, gop=30)
    out = str(tmp_path / "out.mp4")
    redact_file(clip["path"], out, _cfg(model_path, workers=1, segment_seconds=60, fine_every=24))
    src, dst = decode_gray(clip["path"]), decode_gray(out)
    assert len(clip["faces"][30]) == 0 and len(clip["faces"][31]) == 2

    def sharpness(img, box):
        x1, y1, x2, y2 = box
        w, h = x2 - x1, y2 - y1
        crop = img[y1 + h // 5:y2 - h // 5, x1 + w // 5:x2 - w // 5].astype(np.float32)
        return float(np.abs(cv2.Laplacian(crop, cv2.CV_32F)).mean())
    kept = [[round(sharpness(dst[i], b) / max(1e-6, sharpness(src[i], b)), 2) for b in clip["faces"][i]]
            for i in range(31, clip["frames"])]
    assert max(max(r) for r in kept) < 0.25, kept
