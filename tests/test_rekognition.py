"""Rekognition backends without AWS: botocore's Stubber (responses in the real API's shape, validated against
botocore's service model), plus a fake HTTP layer where botocore's own retries must run.

* ``rekognition``: DetectFaces per sampled frame -- normal, no faces, throttled then success (in our backoff
  and in botocore's adaptive retries), persistent failure (fails the segment closed through the real engine),
  boxes partly outside the frame, rotation, JPEG limits, calls/throttles/cost in the report.
* ``rekognition-video``: StartFaceDetection token, status polling, GetFaceDetection pagination into the faces
  file, timestamp interpolation/hold in ``PrecomputedFacesDetector``, and the engine applying a faces file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import av
import boto3
import numpy as np
import pytest
from botocore.stub import ANY, Stubber

import redactor
from redactor import Config, detectors
from redactor.errors import DetectionError, InputError
from redactor.detectors.base import boxes_from_display
from redactor.detectors.precomputed import PrecomputedFacesDetector
from redactor.detectors.rekognition import MAX_IMAGE_BYTES, RekognitionDetector, send_size
from redactor.rekognition_video import (client_request_token, collect_faces, job_status, load_faces, report_fields,
                                        start_job)

CREDS = {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def rek_client(**kw):
    return boto3.client("rekognition", **CREDS, **kw)


def face_detail(left, top, width, height, confidence=99.98):
    """One FaceDetail as DetectFaces / GetFaceDetection return it with Attributes=DEFAULT."""
    return {
        "BoundingBox": {"Width": width, "Height": height, "Left": left, "Top": top},
        "Landmarks": [{"Type": "eyeLeft", "X": left + width * 0.3, "Y": top + height * 0.4},
                      {"Type": "eyeRight", "X": left + width * 0.7, "Y": top + height * 0.4},
                      {"Type": "nose", "X": left + width * 0.5, "Y": top + height * 0.6}],
        "Pose": {"Roll": 1.2, "Yaw": -3.4, "Pitch": 5.6},
        "Quality": {"Brightness": 80.1, "Sharpness": 60.2},
        "Confidence": confidence,
    }


def detect_faces_response(boxes_px, width, height):
    return {"FaceDetails": [face_detail(float(x1) / width, float(y1) / height, float(x2 - x1) / width,
                                        float(y2 - y1) / height) for x1, y1, x2, y2 in boxes_px]}


def throttle(stub, code="ThrottlingException"):
    stub.add_client_error("detect_faces", service_error_code=code, service_message="Rate exceeded",
                          http_status_code=400)


def frame(width=320, height=240):
    rng = np.random.default_rng(1)
    return av.VideoFrame.from_ndarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), format="rgb24")


class Capture:
    """An expected_params value that matches anything and keeps what was sent."""

    def __init__(self):
        self.values = []

    def __eq__(self, other):
        self.values.append(other)
        return True

    def __ne__(self, other):
        return not self.__eq__(other)


def detector(client, **cfg):
    d = RekognitionDetector(Config(detector="rekognition", **cfg), None, client=client)
    d.BACKOFF_SECONDS = 0.0
    return d


# ================================================================================== rekognition (DetectFaces)

def test_normal_response_becomes_pixel_boxes_and_is_billed():
    c = rek_client()
    image = Capture()
    with Stubber(c) as stub:
        stub.add_response("detect_faces", detect_faces_response([(40, 30, 110, 120)], 320, 240),
                          {"Image": image, "Attributes": ["DEFAULT"]})
        d = detector(c)
        (b,) = d([frame()])
        stub.assert_no_pending_responses()
    assert b.dtype == np.float32 and b.shape == (1, 5)
    np.testing.assert_allclose(b[0, :4], [40, 30, 110, 120], atol=0.01)
    assert b[0, 4] == pytest.approx(0.9998, abs=1e-4)
    # what was sent is a JPEG of the whole frame at its own size (<= 1080p, >= 80 px)
    sent = image.values[0]["Bytes"]
    assert sent[:3] == b"\xff\xd8\xff" and len(sent) <= MAX_IMAGE_BYTES
    import cv2
    assert cv2.imdecode(np.frombuffer(sent, np.uint8), cv2.IMREAD_COLOR).shape == (240, 320, 3)
    assert d.stats() == {"rekognition_calls": 1, "rekognition_throttles": 0, "rekognition_images": 1,
                         "estimated_cost_usd": 0.001}
    assert d.stats()["rekognition_calls"] == 0  # counts are per chunk (since the last stats())


def test_no_faces():
    c = rek_client()
    with Stubber(c) as stub:
        stub.add_response("detect_faces", {"FaceDetails": [], "OrientationCorrection": "ROTATE_0"})
        d = detector(c)
        (b,) = d([frame()])
    assert b.shape == (0, 5)
    assert d.stats()["rekognition_images"] == 1


def test_throttled_then_success_backs_off_and_counts():
    c = rek_client()
    with Stubber(c) as stub:
        throttle(stub)
        throttle(stub, "ProvisionedThroughputExceededException")
        stub.add_response("detect_faces", detect_faces_response([(10, 10, 60, 70)], 320, 240))
        d = detector(c)
        (b,) = d([frame()])
        stub.assert_no_pending_responses()
    assert len(b) == 1
    assert d.stats() == {"rekognition_calls": 3, "rekognition_throttles": 2, "rekognition_images": 1,
                         "estimated_cost_usd": 0.001}


def test_persistent_throttling_fails_closed():
    c = rek_client()
    with Stubber(c) as stub:
        for _ in range(RekognitionDetector.ROUNDS):
            throttle(stub)
        d = detector(c)
        with pytest.raises(DetectionError, match="still throttled"):
            d([frame()])
    s = d.stats()
    assert s["rekognition_throttles"] == RekognitionDetector.ROUNDS and s["rekognition_images"] == 0
    assert s["estimated_cost_usd"] == 0


def test_other_errors_fail_at_once():
    c = rek_client()
    with Stubber(c) as stub:
        stub.add_client_error("detect_faces", service_error_code="AccessDeniedException",
                              service_message="not authorized", http_status_code=403)
        d = detector(c)
        with pytest.raises(DetectionError, match="AccessDeniedException"):
            d([frame()])
        stub.assert_no_pending_responses()


def test_boxes_partly_outside_are_clipped_and_outside_dropped():
    c = rek_client()
    resp = {"FaceDetails": [face_detail(-0.1, 0.8, 0.3, 0.4),      # off the left and bottom edges
                            face_detail(0.9, -0.2, 0.2, 0.3),      # off the right and top edges
                            face_detail(1.2, 0.1, 0.1, 0.1),       # entirely outside: dropped
                            face_detail(0.4, 0.4, 0.1, 0.1, confidence=20.0)]}  # below threshold 0.35
    with Stubber(c) as stub:
        stub.add_response("detect_faces", resp)
        (b,) = detector(c)([frame()])
    np.testing.assert_allclose(b[:, :4], [[0, 192, 64, 240], [288, 0, 320, 24]], atol=0.01)


def test_rotated_source_is_sent_upright_and_mapped_back():
    """A 90-degree display rotation: Rekognition sees the upright (240x320) image; boxes return to stored px."""
    from redactor.records import SourceInfo

    info = SourceInfo(path="x", container="mp4", size_bytes=1, video_index=0, codec="h264", width=320,
                      height=240, pix_fmt="yuv420p", bit_depth=8, color_range=0, time_base="1/30",
                      frame_count=1, duration=1.0, fps=30.0, start_pts=0, rotation=90)
    c = rek_client()
    image = Capture()
    display_box = np.array([[20, 50, 120, 170, 0.99]], np.float32)  # in the 240x320 upright image
    with Stubber(c) as stub:
        stub.add_response("detect_faces", detect_faces_response([display_box[0, :4]], 240, 320),
                          {"Image": image, "Attributes": ANY})
        d = RekognitionDetector(Config(detector="rekognition"), info, client=c)
        (b,) = d([frame()])
    import cv2
    sent = cv2.imdecode(np.frombuffer(image.values[0]["Bytes"], np.uint8), cv2.IMREAD_COLOR)
    assert sent.shape == (320, 240, 3)
    want = boxes_from_display(display_box.copy(), 1, 320, 240)
    np.testing.assert_allclose(b[:, :4], want[:, :4], atol=0.05)


def test_send_size_limits():
    assert send_size(1920, 1080) == (1920, 1080)  # at the 40 px face floor: never shrunk
    assert send_size(640, 360) == (640, 360)  # small frames are not blown up needlessly
    assert send_size(3840, 2160) == (1920, 1080)  # 4K: shrinking loses nothing Rekognition could find
    w, h = send_size(60, 40)
    assert min(w, h) >= 80 and abs(w / h - 1.5) < 0.05  # tiny frames upscaled to the 80 px minimum


def test_concurrent_frames_keep_order():
    c = rek_client()
    with Stubber(c) as stub:
        for _ in range(4):
            stub.add_response("detect_faces", detect_faces_response([(10, 10, 60, 70)], 320, 240))
        d = detector(c, rekognition_concurrency=3)
        out = d([frame() for _ in range(4)])
        d.close()
    assert [len(b) for b in out] == [1, 1, 1, 1]
    assert d.stats()["rekognition_images"] == 4


class _Raw:
    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **_kw):
        yield self.body


def test_botocore_adaptive_retries_are_counted_via_the_event_hook():
    """No Stubber here: a fake HTTP layer answers 'throttled' once, then 200, so botocore's own adaptive
    retry runs (Stubber short-circuits before retries). The hook sees both attempts."""
    from botocore.awsrequest import AWSResponse
    from botocore.config import Config as BotoConfig

    c = rek_client(config=BotoConfig(retries={"mode": "adaptive", "max_attempts": 3}))
    answers = [(400, {"__type": "ThrottlingException", "message": "Rate exceeded"}),
               (200, detect_faces_response([(40, 30, 110, 120)], 320, 240))]
    sent = []

    def fake_send(request, **_kw):
        status, body = answers.pop(0)
        sent.append(request.url)
        return AWSResponse(request.url, status, {"Content-Type": "application/x-amz-json-1.1",
                                                 "x-amzn-RequestId": f"req-{len(sent)}"},
                           _Raw(json.dumps(body).encode()))

    c.meta.events.register("before-send.rekognition.DetectFaces", fake_send)
    d = detector(c)
    (b,) = d([frame()])
    assert len(b) == 1 and len(sent) == 2 and not answers
    assert d.stats() == {"rekognition_calls": 2, "rekognition_throttles": 1, "rekognition_images": 1,
                         "estimated_cost_usd": 0.001}


# ---------------------------------------------------------------------------------- through the real engine

def _inside_outside(src_path, out_path, faces):
    from tests.conftest import decode_gray

    src = [f.astype(np.int16) for f in decode_gray(src_path)]
    dst = [f.astype(np.int16) for f in decode_gray(out_path)]
    assert len(src) == len(dst)
    inside, outside = [], []
    for i, boxes in enumerate(faces):
        if not boxes:
            continue
        diff = np.abs(src[i] - dst[i])
        mask = np.zeros(diff.shape, bool)
        far = np.ones(diff.shape, bool)
        for x1, y1, x2, y2 in boxes:
            w, h = x2 - x1, y2 - y1
            mask[int(y1 + h * .25):int(y1 + h * .75), int(x1 + w * .25):int(x1 + w * .75)] = True
            far[max(0, int(y1 - h)):int(y2 + h), max(0, int(x1 - w)):int(x2 + w)] = False
        inside.append(diff[mask].mean())
        outside.append(diff[far].mean())
    return np.array(inside), np.array(outside)


@pytest.fixture
def clip(media):
    return media("rek_face.mp4", width=320, height=240, seconds=2, faces=1, face_size=(70, 90), audio="aac")


def _engine_config(**kw):
    return Config(detector="rekognition", workers=1, segment_seconds=10, **kw)


def test_engine_redacts_where_detectfaces_said_faces_are(clip, tmp_path, monkeypatch):
    c = rek_client()
    stub = Stubber(c)
    every = 5
    sampled = list(range(0, clip["frames"], every))
    sampled += [clip["frames"] - 1] if sampled[-1] != clip["frames"] - 1 else []  # the last frame is a sample too
    for n, i in enumerate(sampled):
        if n == 3:
            throttle(stub)  # one throttle mid-video: backed off, counted, still redacted
        stub.add_response("detect_faces", detect_faces_response(clip["faces"][i], clip["width"], clip["height"]),
                          {"Image": ANY, "Attributes": ["DEFAULT"]})
    stub.activate()
    def factory(config, source):  # runs in the forked worker: the stubbed client is inherited
        d = RekognitionDetector(config, source, client=c)
        d.BACKOFF_SECONDS = 0.0
        return d

    monkeypatch.setitem(detectors.FACTORIES, "rekognition", factory)
    out, rep = tmp_path / "out.mp4", tmp_path / "report.json"
    report = redactor.redact_file(clip["path"], str(out), _engine_config(rekognition_every=every),
                                  report_path=str(rep))
    # the engine's workers are forked: each consumed its own copy of the Stubber's queue, so the proof of what
    # was called is the report the workers' detectors filled in
    det = report["detector"]
    assert det["name"] == "rekognition"
    assert det["rekognition_images"] == len(sampled) == report["counts"]["detected_frames"]
    assert det["rekognition_calls"] == len(sampled) + 1 and det["rekognition_throttles"] == 1
    assert det["estimated_cost_usd"] == pytest.approx(len(sampled) * 0.001)
    assert json.loads(rep.read_text())["detector"] == det
    # every frame with a face is covered, including the 4 of every 5 never sent to Rekognition
    inside, outside = _inside_outside(clip["path"], str(out), clip["faces"])
    assert len(inside) == clip["frames"]
    assert inside.min() > 4 * max(np.median(outside), 0.5), (inside.min(), np.median(outside))


def test_engine_fails_closed_when_rekognition_keeps_failing(clip, tmp_path, monkeypatch):
    c = rek_client()
    stub = Stubber(c)
    stub.add_response("detect_faces", detect_faces_response(clip["faces"][0], 320, 240))
    for _ in range(RekognitionDetector.ROUNDS):
        throttle(stub)
    stub.activate()

    def factory(config, source):
        d = RekognitionDetector(config, source, client=c)
        d.BACKOFF_SECONDS = 0.0
        return d

    monkeypatch.setitem(detectors.FACTORIES, "rekognition", factory)
    out, rep = tmp_path / "out.mp4", tmp_path / "report.json"
    with pytest.raises(DetectionError, match="throttled"):
        redactor.redact_file(clip["path"], str(out), _engine_config(), report_path=str(rep))
    assert not out.exists() and not rep.exists()
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".mp4")]


def test_cli_accepts_rekognition_flags():
    from redactor.cli import build_parser

    a = build_parser().parse_args(["redact", "in.mp4", "-o", "out.mp4", "--detector", "rekognition",
                                   "--rekognition-every", "3"])
    assert a.detector == "rekognition" and a.rekognition_every == 3
    a = build_parser().parse_args(["redact", "in.mp4", "-o", "o.mp4", "--detector", "rekognition-video",
                                   "--faces", "f.json"])
    assert a.faces == "f.json"


# ================================================================================== rekognition-video

def test_start_job_is_idempotent_per_object_version():
    c = rek_client()
    token = client_request_token("raw", "fleet/a.mp4", "v1")
    assert token == client_request_token("raw", "fleet/a.mp4", "v1") and len(token) <= 64
    assert token != client_request_token("raw", "fleet/a.mp4", "v2")
    with Stubber(c) as stub:
        stub.add_response("start_face_detection", {"JobId": "job-1"}, {
            "Video": {"S3Object": {"Bucket": "raw", "Name": "fleet/a.mp4", "Version": "v1"}},
            "FaceAttributes": "DEFAULT", "ClientRequestToken": token, "JobTag": "run-1"})
        assert start_job(c, "raw", "fleet/a.mp4", "v1", job_tag="run-1") == "job-1"


def test_job_status_polls_with_a_one_result_page():
    c = rek_client()
    with Stubber(c) as stub:
        stub.add_response("get_face_detection", {"JobStatus": "IN_PROGRESS", "Faces": []},
                          {"JobId": "job-1", "MaxResults": 1})
        stub.add_response("get_face_detection", {"JobStatus": "FAILED", "StatusMessage": "Unsupported codec."},
                          {"JobId": "job-1", "MaxResults": 1})
        assert job_status(c, "job-1") == ("IN_PROGRESS", "")
        assert job_status(c, "job-1") == ("FAILED", "Unsupported codec.")


VIDEO_METADATA = {"Codec": "h264", "DurationMillis": 90000, "Format": "QuickTime / MOV", "FrameRate": 30.0,
                  "FrameHeight": 240, "FrameWidth": 320, "ColorRange": "LIMITED"}


def test_get_face_detection_pages_into_the_faces_file():
    c = rek_client()
    page1 = {"JobStatus": "SUCCEEDED", "VideoMetadata": VIDEO_METADATA, "NextToken": "tok-2",
             "Faces": [{"Timestamp": 0, "Face": face_detail(0.1, 0.1, 0.2, 0.3)},
                       {"Timestamp": 0, "Face": face_detail(0.6, 0.5, 0.2, 0.3, confidence=88.0)},
                       {"Timestamp": 200, "Face": face_detail(0.12, 0.1, 0.2, 0.3)}]}
    page2 = {"JobStatus": "SUCCEEDED", "VideoMetadata": VIDEO_METADATA,
             "Faces": [{"Timestamp": 400, "Face": face_detail(-0.05, 0.9, 0.2, 0.3)}]}
    with Stubber(c) as stub:
        stub.add_response("get_face_detection", page1, {"JobId": "job-1", "MaxResults": 1000})
        stub.add_response("get_face_detection", page2, {"JobId": "job-1", "MaxResults": 1000,
                                                        "NextToken": "tok-2"})
        data = collect_faces(c, "job-1")
        stub.assert_no_pending_responses()
    assert data["format"] == "redactor-faces/1" and data["job_id"] == "job-1"
    assert data["video"]["width"] == 320 and data["video"]["height"] == 240
    assert list(data["faces"]) == ["0", "200", "400"]
    assert data["faces"]["0"][1] == [0.6, 0.5, 0.8, 0.8, 0.88]
    assert data["faces"]["400"][0][:4] == [-0.05, 0.9, 0.15, 1.2]  # kept as given; clipped when applied
    assert data["summary"] == {"samples": 3, "faces": 4, "pages": 2, "video_minutes": 1.5}
    f = report_fields(data, 0.10)
    assert f["estimated_cost_usd"] == pytest.approx(0.15) and f["rekognition_video_minutes"] == 1.5


def test_collect_refuses_an_unfinished_job():
    c = rek_client()
    with Stubber(c) as stub:
        stub.add_response("get_face_detection", {"JobStatus": "IN_PROGRESS"})
        with pytest.raises(DetectionError, match="IN_PROGRESS"):
            collect_faces(c, "job-1")


class _Frame:
    def __init__(self, pts, width=320, height=240, tb="1/1000"):
        from fractions import Fraction
        self.pts, self.width, self.height, self.time_base = pts, width, height, Fraction(tb)


def _faces_file(tmp_path, faces, width=320, height=240):
    p = tmp_path / "faces.json"
    p.write_text(json.dumps({"format": "redactor-faces/1", "job_id": "j",
                             "video": {"width": width, "height": height, "duration_ms": 2000},
                             "faces": faces, "summary": {"samples": len(faces), "faces": 1, "pages": 1,
                                                         "video_minutes": 2000 / 60000}}))
    return str(p)


def _info(**kw):
    from redactor.records import SourceInfo
    base = dict(path="x", container="mov,mp4,m4a,3gp,3g2,mj2", size_bytes=1, video_index=0, codec="h264",
                width=320, height=240, pix_fmt="yuv420p", bit_depth=8, color_range=0, time_base="1/1000",
                frame_count=60, duration=2.0, fps=30.0, start_pts=0)
    base.update(kw)
    return SourceInfo(**base)


def test_precomputed_boxes_are_interpolated_held_and_clipped(tmp_path):
    faces = {"0": [[0.1, 0.1, 0.3, 0.4, 0.99]],
             "200": [[0.2, 0.1, 0.4, 0.4, 0.99], [0.9, 0.9, 1.1, 1.2, 0.99]],  # 2nd: new face, off the corner
             "1800": [[0.5, 0.5, 0.6, 0.6, 0.99]]}  # long gap before it: Rekognition saw nobody in between
    d = PrecomputedFacesDetector(Config(hold=2), _info(), load_faces(_faces_file(tmp_path, faces)))
    # half-way between 0 and 200 ms: both samples' boxes (held) + the matched face interpolated
    (b,) = d([_Frame(100)])
    xs = sorted(round(float(x)) for x in b[:, 0])
    assert xs == [32, 48, 64, 288]  # 0.1*320, interpolated 0.15*320, 0.2*320, the new face held back
    new = b[b[:, 0] > 250][0]
    np.testing.assert_allclose(new[:4], [288, 216, 320, 240], atol=0.01)  # clipped to the frame
    # a frame exactly on a sample is covered by it
    (b,) = d([_Frame(0)])
    assert any(abs(x - 32) < 0.01 for x in b[:, 0])
    # far from any sample (in the long gap): nothing is smeared over a second of "no face"
    (b,) = d([_Frame(1000)])
    assert len(b) == 0
    # just before the late sample: held (reach = sampling interval 200 ms + hold frames)
    (b,) = d([_Frame(1700)])
    assert len(b) == 1
    assert d.stats() == {"rekognition_video_frames": 4}


def test_precomputed_needs_a_faces_file(tmp_path, clip):
    with pytest.raises(DetectionError, match="faces"):
        detectors.make_detector(Config(detector="rekognition-video"), None)
    with pytest.raises(InputError, match="faces_path"):
        redactor.redact_file(clip["path"], str(tmp_path / "o.mp4"), Config(detector="rekognition-video"))


def test_engine_applies_a_faces_file_by_timestamp(clip, tmp_path):
    """Rekognition-like samples every 6th frame (200 ms at 30 fps): every frame with a face is redacted."""
    from fractions import Fraction
    tb = Fraction(clip["time_base"])
    w, h = clip["width"], clip["height"]
    faces = {}
    for i in range(0, clip["frames"], 6):
        ts = int(round(float((clip["pts"][i] - clip["pts"][0]) * tb) * 1000))
        faces[str(ts)] = [[x1 / w, y1 / h, x2 / w, y2 / h, 0.999] for x1, y1, x2, y2 in clip["faces"][i]]
    path = _faces_file(tmp_path, faces, w, h)
    out = tmp_path / "out.mp4"
    cfg = Config(detector="rekognition-video", workers=1, segment_seconds=1, faces_path=path)
    report = redactor.redact_file(clip["path"], str(out), cfg)
    assert report["detector"]["name"] == "rekognition-video"
    assert report["detector"]["rekognition_video_frames"] >= clip["frames"]
    assert report["detector"]["estimated_cost_usd"] == pytest.approx(2 / 60 * 0.10, abs=1e-5)
    inside, outside = _inside_outside(clip["path"], str(out), clip["faces"])
    assert len(inside) == clip["frames"]
    assert inside.min() > 4 * max(np.median(outside), 0.5), (inside.min(), np.median(outside))
