"""``rekognition-video`` detector: one Amazon Rekognition Video face-detection job per stored video.

The AWS workflow starts ``StartFaceDetection`` on the uploaded S3 object (idempotent ``ClientRequestToken``),
waits for it, pages through ``GetFaceDetection`` and writes a *faces file* to the work bucket before the
segments fan out; each segment then applies those boxes by timestamp with ``PrecomputedFacesDetector``.

Faces file (JSON)::

    {"format": "redactor-faces/1", "job_id": "...",
     "video": {"width": 1920, "height": 1080, "duration_ms": 60000, "frame_rate": 30.0, ...},  # VideoMetadata
     "faces": {"<timestamp ms>": [[x1, y1, x2, y2, confidence 0-1], ...], ...},  # ratios of the frame
     "summary": {"samples": .., "faces": .., "pages": .., "video_minutes": ..}}

Rekognition only lists timestamps at which it found a face, at its own sampling rate (not every frame), and
``Timestamp`` "is not guaranteed to be accurate to the individual frame". A frame at time ``t`` therefore gets:

* the boxes of the last sample at or before ``t`` and of the first sample after ``t`` (each *held* up to
  ``reach`` ms away from its timestamp), and
* for faces matched between those two samples (centre distance, ``tracking.match``), the box linearly
  interpolated to ``t``.

``reach`` is the sampling interval estimated from the file (lower median gap between consecutive timestamps,
clamped to [1 frame, 1 s]; 0.5 s when there is a single timestamp) plus ``hold`` frames, so every frame between
two samples of a visible face is covered by both, while a face is not smeared over seconds in which
Rekognition sampled and saw nobody.

This module imports nothing heavy at the top: the workflow's small face-detection Lambda uses its job helpers
without numpy/OpenCV/PyAV.
"""
from __future__ import annotations

import bisect
import hashlib
import json
from pathlib import Path
from typing import Any

from .errors import DetectionError, InputError

FORMAT = "redactor-faces/1"
THROTTLE_CODES = frozenset({"ThrottlingException", "ProvisionedThroughputExceededException"})
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


# ---------------------------------------------------------------------------------------------- the detector
class PrecomputedFacesDetector:
    """Boxes from a faces file, by frame timestamp (see module doc). Stored-frame pixels, clipped."""

    name = "rekognition-video"
    DEFAULT_INTERVAL_MS = 500.0
    MAX_INTERVAL_MS = 1000.0

    def __init__(self, config, source, faces_path: str):
        import numpy as np

        from .detectors import rotate_k
        from .probe import parse_tb

        self.np = np
        data = load_faces(faces_path)
        self.summary = data.get("summary") or {}
        thr = float(config.threshold)
        items = sorted((int(t), v) for t, v in data["faces"].items())
        self.times = [t for t, _ in items]
        self.boxes = []
        for _, v in items:
            b = np.asarray(v, dtype=np.float32).reshape(-1, 5)
            self.boxes.append(b[b[:, 4] >= thr])
        self.width, self.height = (source.width, source.height) if source else (None, None)
        self.start_pts = int(source.start_pts) if source else 0
        self.tb = parse_tb(source.time_base) if source else None
        fps = float(source.fps) if source and source.fps else 30.0
        frame_ms = 1000.0 / fps
        k = rotate_k(source.rotation) if source else 0
        video = data.get("video") or {}
        vw, vh = video.get("width"), video.get("height")
        if k % 2 and source and (vw, vh) == (source.width, source.height) and vw != vh:
            k = 0  # Rekognition reported the stored frame's size: its boxes are in stored orientation
        self.k = k
        gaps = sorted(b - a for a, b in zip(self.times, self.times[1:]) if b > a)
        if gaps:
            interval = min(self.MAX_INTERVAL_MS, max(frame_ms, float(gaps[(len(gaps) - 1) // 2])))
        else:
            interval = self.DEFAULT_INTERVAL_MS
        self.reach_ms = interval + int(config.hold) * frame_ms + 0.5 * frame_ms
        self.frames = 0
        self._reported = 0

    def stats(self) -> dict:
        n, self._reported = self.frames - self._reported, self.frames
        return {"rekognition_video_frames": n}

    def ratio_boxes_at(self, t_ms: float):
        """(n, 5) ratio boxes (Rekognition's orientation) covering time t_ms."""
        from .tracking import match

        np = self.np
        i = bisect.bisect_right(self.times, t_ms) - 1
        a = self.boxes[i] if i >= 0 and t_ms - self.times[i] <= self.reach_ms else None
        j = i + 1
        b = self.boxes[j] if j < len(self.times) and self.times[j] - t_ms <= self.reach_ms else None
        parts = [x for x in (a, b) if x is not None and len(x)]
        if a is not None and b is not None and len(a) and len(b) and self.times[j] > self.times[i]:
            f = (t_ms - self.times[i]) / (self.times[j] - self.times[i])
            pairs = match(a, b)
            if pairs:
                ia, ib = map(list, zip(*pairs))
                parts.append(((1 - f) * a[ia] + f * b[ib]).astype(np.float32))
        if not parts:
            return np.zeros((0, 5), dtype=np.float32)
        return np.concatenate(parts)

    def detect_frame(self, frame):
        from .detectors import boxes_from_display
        from .rekognition import clip_boxes

        W, H = frame.width, frame.height
        tb = self.tb if self.tb is not None else frame.time_base
        t_ms = float((frame.pts - self.start_pts) * tb) * 1000.0
        b = self.ratio_boxes_at(t_ms).copy()
        self.frames += 1
        if not len(b):
            return b
        dw, dh = (H, W) if self.k % 2 else (W, H)
        b[:, [0, 2]] *= dw
        b[:, [1, 3]] *= dh
        b = boxes_from_display(b, self.k, W, H)
        return clip_boxes(b, W, H)

    def __call__(self, frames):
        return [self.detect_frame(f) for f in frames]


def make(config, source):
    """``detectors.FACTORIES["rekognition-video"]``: needs ``config.faces_path`` (the workflow sets it)."""
    if not config.faces_path:
        raise DetectionError("detector rekognition-video needs a faces file (faces_path): it is written by the "
                             "AWS workflow's face-detection job, or pass one with --faces")
    return PrecomputedFacesDetector(config, source, config.faces_path)
