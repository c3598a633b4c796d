"""detector=rekognition-video end to end under moto: the definition synthesized with that context runs in moto's
Step Functions interpreter (Start face detection -> Wait/Check loop -> Save face detections -> Map -> Stitch);
every Lambda runs in-process (see test_workflow_e2e). moto has no StartFaceDetection/GetFaceDetection, so the
faces function's Rekognition client is a botocore Stubber with responses in the real API's shape, consumed in
the order the workflow makes the calls (the Stubber also checks each request's parameters).
"""
from __future__ import annotations

import json
import tempfile
from fractions import Fraction

import boto3
import numpy as np
import pytest
from botocore.stub import ANY, Stubber

from tests import aws_support as aws
from tests.test_rekognition import VIDEO_METADATA, _inside_outside, face_detail
from tests.test_workflow_e2e import Pipeline

moto = pytest.importorskip("moto")
from moto import mock_aws  # noqa: E402


@pytest.fixture(scope="module")
def video_template():
    assembly, _ = aws.synth(tempfile.mkdtemp(prefix="redactor-cdk-rv-"), nag=True, detector="rekognition-video",
                            face_poll_seconds=1)
    return assembly.get_stack_by_name("Redactor").template


@pytest.fixture
def pipeline(video_template, model_path, tmp_path):
    config = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    with mock_aws(config=config):
        p = Pipeline(video_template, model_path, tmp_path,
                     engine_env={"REDACTOR_SEGMENT_SECONDS": "0.5", "REDACTOR_WORKERS": "1"})
        assert p.env["REDACTOR_DETECTOR"] == "rekognition-video"
        with p.running():
            rek = boto3.client("rekognition", region_name="us-east-1")
            stub = Stubber(rek)
            stub.activate()
            p.modules["faces"]._rekognition = rek
            p.rekognition = stub
            yield p
            stub.deactivate()


def _pages(clip, every=6, split=5):
    """GetFaceDetection pages for the clip's ground truth, sampled every `every` frames (200 ms at 30 fps)."""
    tb = Fraction(clip["time_base"])
    w, h = clip["width"], clip["height"]
    faces = []
    for i in range(0, clip["frames"], every):
        ts = int(round(float((clip["pts"][i] - clip["pts"][0]) * tb) * 1000))
        for x1, y1, x2, y2 in clip["faces"][i]:
            faces.append({"Timestamp": ts, "Face": face_detail(float(x1) / w, float(y1) / h, float(x2 - x1) / w,
                                                               float(y2 - y1) / h)})
    meta = dict(VIDEO_METADATA, DurationMillis=int(clip["frames"] * 1000 / 30), FrameWidth=w, FrameHeight=h)
    return [{"JobStatus": "SUCCEEDED", "VideoMetadata": meta, "Faces": faces[:split], "NextToken": "page-2"},
            {"JobStatus": "SUCCEEDED", "VideoMetadata": meta, "Faces": faces[split:]}], len(faces)


def test_video_job_then_segments_apply_its_boxes(pipeline, media, tmp_path):
    from redactor.rekognition_video import client_request_token

    clip = media("rv_face.mp4", width=320, height=240, seconds=2, audio="aac", faces=1, face_size=(70, 90))
    key = "fleet/car 9/rv_face.mp4"
    event = pipeline.upload(clip["path"], key)
    version = event["detail"]["object"]["version-id"]
    stub = pipeline.rekognition
    stub.add_response("start_face_detection", {"JobId": "job-42"}, {
        "Video": {"S3Object": {"Bucket": pipeline.raw, "Name": key, "Version": version}},
        "FaceAttributes": "DEFAULT", "ClientRequestToken": client_request_token(pipeline.raw, key, version),
        "JobTag": ANY})
    stub.add_response("get_face_detection", {"JobStatus": "IN_PROGRESS"}, {"JobId": "job-42", "MaxResults": 1})
    stub.add_response("get_face_detection", {"JobStatus": "SUCCEEDED", "VideoMetadata": VIDEO_METADATA},
                      {"JobId": "job-42", "MaxResults": 1})
    pages, n_faces = _pages(clip)
    stub.add_response("get_face_detection", pages[0], {"JobId": "job-42", "MaxResults": 1000})
    stub.add_response("get_face_detection", pages[1], {"JobId": "job-42", "MaxResults": 1000,
                                                       "NextToken": "page-2"})

    started = pipeline.deliver(event)
    done = pipeline.wait(started["executionArn"])
    assert done["status"] == "SUCCEEDED", (done, pipeline.invocations[-3:])
    stub.assert_no_pending_responses()

    names = pipeline.state_names(started["executionArn"])
    order = ["Plan segments", "Start face detection", "Wait for face detection", "Check face detection",
             "Face detection finished?", "Save face detections", "Redact segments", "Stitch", "Done"]
    assert [n for n in names if n in order and n not in ("Wait for face detection", "Check face detection",
                                                         "Face detection finished?")] == \
        ["Plan segments", "Start face detection", "Save face detections", "Redact segments", "Stitch", "Done"]
    assert names.count("Check face detection") == 2  # polled until SUCCEEDED
    assert names.count("Wait for face detection") == 2
    assert "Record failure" not in names
    faces_calls = [inv for inv in pipeline.invocations if inv[0] == "faces"]
    assert [inv[1]["action"] for inv in faces_calls] == ["start", "check", "check", "save"]
    assert all(outcome == "ok" for *_, outcome in faces_calls)
    assert len([inv for inv in pipeline.invocations if inv[0] == "redact"]) >= 2

    # the report carries the video job and its cost; the work area (with faces.json) is cleaned
    report = pipeline.get_json(pipeline.output, f"redacted/{key}.report.json")
    det = report["detector"]
    assert det["name"] == "rekognition-video" and det["rekognition_video_job"] == "job-42"
    assert det["rekognition_video_faces"] == n_faces and det["rekognition_video_pages"] == 2
    assert det["estimated_cost_usd"] == pytest.approx(det["rekognition_video_minutes"] * 0.10)
    assert det["rekognition_video_frames"] >= clip["frames"]
    assert pipeline.keys(pipeline.work, "runs/") == []

    # every frame with a face is blurred, also those between Rekognition's samples
    out = pipeline.get(pipeline.output, f"redacted/{key}", tmp_path / "out.mp4")
    inside, outside = _inside_outside(clip["path"], str(out), clip["faces"])
    assert len(inside) == clip["frames"]
    assert inside.min() > 4 * max(np.median(outside), 0.5), (inside.min(), np.median(outside))


def test_failed_video_job_is_recorded_and_nothing_is_redacted(pipeline, media):
    clip = media("rv_fail.mp4", width=320, height=240, seconds=1, faces=1, face_size=(70, 90))
    key = "fleet/rv_fail.mp4"
    stub = pipeline.rekognition
    stub.add_response("start_face_detection", {"JobId": "job-bad"})
    stub.add_response("get_face_detection", {"JobStatus": "FAILED", "StatusMessage": "Unsupported codec/format."},
                      {"JobId": "job-bad", "MaxResults": 1})
    started = pipeline.deliver(pipeline.upload(clip["path"], key))
    done = pipeline.wait(started["executionArn"])
    assert done["status"] == "FAILED"
    stub.assert_no_pending_responses()
    names = pipeline.state_names(started["executionArn"])
    assert "Record failure" in names and "Redact segments" not in names and "Save face detections" not in names
    assert pipeline.keys(pipeline.output) == [f"failed/{key}.json"]
    record = pipeline.get_json(pipeline.output, f"failed/{key}.json")
    assert record["error"] == "FaceDetectionFailed"
    assert "Unsupported codec" in json.dumps(record["cause"])
    assert pipeline.keys(pipeline.work, "runs/") == []


def test_video_rekognition_cannot_read_is_refused_before_any_job(pipeline, media):
    """An MKV upload: the start step refuses it from the plan; Rekognition is never called (no stubbed reply)."""
    clip = media("rv.mkv", width=320, height=240, seconds=1, faces=1, face_size=(70, 90))
    key = "fleet/rv.mkv"
    started = pipeline.deliver(pipeline.upload(clip["path"], key))
    done = pipeline.wait(started["executionArn"])
    assert done["status"] == "FAILED"
    record = pipeline.get_json(pipeline.output, f"failed/{key}.json")
    assert record["error"] == "InputError" and "MP4 or MOV" in json.dumps(record["cause"])
    pipeline.rekognition.assert_no_pending_responses()
