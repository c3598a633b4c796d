"""``rekognition-video`` detector: one Amazon Rekognition Video face-detection job per stored video.

The AWS workflow starts ``StartFaceDetection`` on the uploaded S3 object (idempotent ``ClientRequestToken``),
waits for it, pages through ``GetFaceDetection`` and writes a *faces file* to the work bucket before the
segments fan out; each segment then applies those boxes by timestamp with
``detectors.precomputed.PrecomputedFacesDetector`` (this module is the job and the file format only).

Faces file (JSON)::

    {"format": "redactor-faces/1", "job_id": "...",
     "video": {"width": 1920, "height": 1080, "duration_ms": 60000, "frame_rate": 30.0, ...},  # VideoMetadata
     "faces": {"<timestamp ms>": [[x1, y1, x2, y2, confidence 0-1], ...], ...},  # ratios of the frame
     "summary": {"samples": .., "faces": .., "pages": .., "video_minutes": ..}}

How the boxes are applied per frame: ``detectors/precomputed.py``.

This module imports nothing heavy at the top: the workflow's small face-detection Lambda uses its job helpers
without numpy/OpenCV/PyAV.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .errors import THROTTLE_CODES, DetectionError, InputError  # noqa: F401 - THROTTLE_CODES: the faces Lambda

FORMAT = "redactor-faces/1"
MAX_RESULTS = 1000  # GetFaceDetection page size (API maximum)
# Rekognition Video stored-video limits (https://docs.aws.amazon.com/rekognition/latest/dg/limits.html)
SUPPORTED_CODECS = ("h264",)
MAX_VIDEO_BYTES = 10 * 1024 ** 3
MAX_VIDEO_SECONDS = 6 * 3600


# ---------------------------------------------------------------------------------------------- the job
def check_source(info) -> None:
    """Refuse, before anything is billed, a video Rekognition Video cannot read (H.264 in MP4/MOV only)."""
    container = str(info.container or "")
    if not ({"mp4", "mov"} & set(container.split(","))):
        raise InputError(f"detector rekognition-video needs an MP4 or MOV file, this is {container!r}; "
                         f"use detector centerface or rekognition", info.path)
    if info.codec not in SUPPORTED_CODECS:
        raise InputError(f"detector rekognition-video needs H.264 video, this is {info.codec!r}; "
                         f"use detector centerface or rekognition", info.path)
    if info.size_bytes > MAX_VIDEO_BYTES or info.duration > MAX_VIDEO_SECONDS:
        raise InputError("detector rekognition-video takes videos up to 10 GB and 6 hours", info.path)


def client_request_token(bucket: str, key: str, version: str | None) -> str:
    """Idempotency token for StartFaceDetection (<= 64 of [A-Za-z0-9-_]): the same object version always gets
    the same token, so a retried start returns the same JobId instead of a second billed job."""
    return hashlib.sha256("\0".join(["faces-v1", bucket, key, version or ""]).encode()).hexdigest()[:64]


def start_job(client, bucket: str, key: str, version: str | None, job_tag: str | None = None) -> str:
    s3obj = {"Bucket": bucket, "Name": key}
    if version:
        s3obj["Version"] = version
    kw: dict[str, Any] = {"Video": {"S3Object": s3obj}, "FaceAttributes": "DEFAULT",
                          "ClientRequestToken": client_request_token(bucket, key, version)}
    if job_tag:
        kw["JobTag"] = job_tag[:1024]
    return client.start_face_detection(**kw)["JobId"]


def job_status(client, job_id: str) -> tuple[str, str]:
    """(JobStatus, StatusMessage) with a one-result page (cheap poll)."""
    resp = client.get_face_detection(JobId=job_id, MaxResults=1)
    return resp["JobStatus"], resp.get("StatusMessage", "")


def collect_faces(client, job_id: str, threshold: float = 0.0, max_results: int = MAX_RESULTS) -> dict:
    """Page through GetFaceDetection of a SUCCEEDED job into the faces-file dict."""
    faces: dict[int, list[list[float]]] = {}
    video: dict = {}
    token = None
    pages = count = 0
    while True:
        kw = {"JobId": job_id, "MaxResults": max_results}
        if token:
            kw["NextToken"] = token
        resp = client.get_face_detection(**kw)
        pages += 1
        if resp.get("JobStatus") != "SUCCEEDED":
            raise DetectionError(f"face detection job {job_id} is {resp.get('JobStatus')}: "
                                 f"{resp.get('StatusMessage', '')}")
        meta = resp.get("VideoMetadata") or {}
        if meta and not video:
            video = {"width": meta.get("FrameWidth"), "height": meta.get("FrameHeight"),
                     "duration_ms": meta.get("DurationMillis"), "frame_rate": meta.get("FrameRate"),
                     "codec": meta.get("Codec"), "format": meta.get("Format")}
        for item in resp.get("Faces") or []:
            face = item.get("Face") or {}
            bb = face.get("BoundingBox") or {}
            if "Timestamp" not in item or any(k not in bb for k in ("Left", "Top", "Width", "Height")):
                raise DetectionError(f"face detection job {job_id}: a face without Timestamp or BoundingBox")
            conf = float(face.get("Confidence", 100.0)) / 100.0
            if conf < threshold:
                continue
            l, t = float(bb["Left"]), float(bb["Top"])
            faces.setdefault(int(item["Timestamp"]), []).append(
                [round(l, 6), round(t, 6), round(l + float(bb["Width"]), 6), round(t + float(bb["Height"]), 6),
                 round(conf, 4)])
            count += 1
        token = resp.get("NextToken")
        if not token:
            break
    duration_ms = float(video.get("duration_ms") or 0)
    return {"format": FORMAT, "job_id": job_id, "video": video,
            "faces": {str(t): faces[t] for t in sorted(faces)},
            "summary": {"samples": len(faces), "faces": count, "pages": pages,
                        "video_minutes": round(duration_ms / 60000.0, 4)}}


def report_fields(data: dict, price_per_minute: float) -> dict:
    """What the report's ``detector`` section records for a video job: the job, what it found and its cost."""
    s = data.get("summary") or {}
    minutes = float(s.get("video_minutes") or 0.0)
    return {"rekognition_video_job": data.get("job_id"), "rekognition_video_minutes": minutes,
            "rekognition_video_samples": int(s.get("samples") or 0),
            "rekognition_video_faces": int(s.get("faces") or 0),
            "rekognition_video_pages": int(s.get("pages") or 0),
            "estimated_cost_usd": round(minutes * float(price_per_minute), 6),
            "price_per_video_minute_usd": float(price_per_minute)}


def load_faces(path: str) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise DetectionError(f"cannot read the faces file ({e})", path) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("faces"), dict):
        raise DetectionError(f"not a {FORMAT} faces file", path)
    return data
