"""``rekognition`` detector: Amazon Rekognition DetectFaces on every ``rekognition_every``-th frame.

Same interface as the local model (``detectors.base.Detector``, single-tier): called with decoded frames
(stored orientation), returns float32 ``(n, 5)`` boxes ``x1, y1, x2, y2, score`` in stored-frame pixels. The engine only calls it on
frames the ``Schedule`` samples (every ``rekognition_every``-th global index for this backend) and covers the
frames between samples with ``tracking.cover_boxes`` (boxes of both samples around a frame,
plus matched boxes interpolated), so skipped frames stay covered.

Each sampled frame is turned to display orientation (as CenterFace does), scaled and JPEG-encoded within the
API's limits, and sent as ``Image.Bytes``:

* at most 5 MB of bytes (JPEG quality is lowered, then the image shrunk, until it fits);
* both sides at least 80 px (tiny frames are upscaled);
* never more pixels than 1920x1080: Rekognition finds faces down to 40x40 px in a 1920x1080 image and asks
  for proportionally larger faces in larger images, so shrinking a 4K frame to 1080p loses no face it could
  have found, and anything smaller would. Frames at or below 1080p are sent at their own size.

Rekognition's ratio boxes are converted to pixels of the displayed frame, mapped back to the stored frame and
clipped to it (Rekognition returns boxes that extend past the image edge for faces cut by the border).

Errors: the client uses botocore's adaptive retry mode (client-side rate limiting + retries with backoff).
On top of that, a throttled request (``ThrottlingException``, ``ProvisionedThroughputExceededException``) that
botocore gave up on is retried here a few more rounds with exponential backoff and full jitter. Every throttled
response is counted (botocore's retries through a ``needs-retry`` event hook). Any other error, or throttling
that outlasts every round, raises ``DetectionError``: the engine then fails the segment closed and writes no
frame of it.
"""
from __future__ import annotations

import math
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np

from ..errors import THROTTLE_CODES, DetectionError
from .base import EMPTY, BaseDetector, boxes_from_display, clip_boxes, display_size, quarter_turns

MAX_IMAGE_BYTES = 5 * 1024 * 1024  # DetectFaces Image.Bytes limit
MIN_SIDE = 80  # Rekognition's minimum image width and height
MAX_PIXELS = 1920 * 1080  # above this Rekognition's 40 px minimum face grows proportionally (see module doc)
JPEG_QUALITY = 90
BOTO_MAX_ATTEMPTS = 8  # botocore attempts per request (adaptive mode)


def make_client(concurrency: int = 10):
    """A Rekognition client with adaptive retries. Create it in the process that uses it (after fork)."""
    import boto3
    from botocore.config import Config as BotoConfig

    pool = max(10, int(concurrency))
    return boto3.client("rekognition", config=BotoConfig(
        retries={"mode": "adaptive", "max_attempts": BOTO_MAX_ATTEMPTS}, max_pool_connections=pool))


def send_size(width: int, height: int) -> tuple[int, int]:
    """Size (display orientation) a width x height frame is sent at: >= 80 px sides, <= 1920x1080 pixels."""
    scale = 1.0
    if width * height > MAX_PIXELS:
        scale = math.sqrt(MAX_PIXELS / (width * height))
    scale = max(scale, MIN_SIDE / width, MIN_SIDE / height)
    return max(MIN_SIDE, int(round(width * scale))), max(MIN_SIDE, int(round(height * scale)))


def boxes_from_face_details(details: list[dict], width: float, height: float, threshold: float) -> np.ndarray:
    """Rekognition ``FaceDetails`` (ratio ``BoundingBox`` + ``Confidence`` 0-100) -> (n, 5) pixel boxes of a
    width x height image (not clipped). A face without a bounding box is an API contract break: raise."""
    rows = []
    for d in details:
        bb = d.get("BoundingBox")
        if not bb or any(k not in bb for k in ("Left", "Top", "Width", "Height")):
            raise DetectionError(f"Rekognition returned a face without a complete BoundingBox: {d!r:.200}")
        score = float(d.get("Confidence", 100.0)) / 100.0
        if score < threshold:
            continue
        x1, y1 = float(bb["Left"]) * width, float(bb["Top"]) * height
        rows.append((x1, y1, x1 + float(bb["Width"]) * width, y1 + float(bb["Height"]) * height, score))
    return np.asarray(rows, dtype=np.float32).reshape(-1, 5) if rows else EMPTY.copy()


class RekognitionDetector(BaseDetector):
    name = "rekognition"
    ROUNDS = 4  # tries of a throttled request after botocore's own retries
    BACKOFF_SECONDS = 1.0  # first round's backoff cap; doubles each round, full jitter
    MAX_BACKOFF_SECONDS = 20.0

    def __init__(self, settings, source=None, client=None):
        """``settings``: ``threshold``, ``rekognition_price_per_image``, ``rekognition_concurrency``;
        ``source``: the video's SourceInfo (rotation)."""
        self.client = client if client is not None else make_client(settings.rekognition_concurrency)
        self.turns = quarter_turns(source.rotation) if source else 0
        self.threshold = float(settings.threshold)
        self.price = float(settings.rekognition_price_per_image)
        self.concurrency = int(settings.rekognition_concurrency)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._counts = {"calls": 0, "throttles": 0, "images": 0}
        self._reported = dict(self._counts)
        # every attempt botocore makes (including its own retries) passes through needs-retry
        self.client.meta.events.register("needs-retry.rekognition.DetectFaces", self._on_attempt,
                                         unique_id=f"redactor-count-{id(self)}")

    # ------------------------------------------------------------------ counting
    def _on_attempt(self, response=None, caught_exception=None, **_kw):
        seen = getattr(self._local, "seen", None)
        if seen is None:
            return None
        seen["attempts"] += 1
        if response is not None:
            code = ((response[1] or {}).get("Error") or {}).get("Code")
            if code in THROTTLE_CODES:
                seen["throttles"] += 1
        return None  # never influences botocore's retry decision

    def _add(self, **kw):
        with self._lock:
            for k, v in kw.items():
                self._counts[k] += v

    def stats(self) -> dict:
        """Counts since the previous ``stats()`` call: the engine asks once per chunk and sums the chunks, and a
        worker process keeps its detector for several chunks."""
        with self._lock:
            d = {k: self._counts[k] - self._reported[k] for k in self._counts}
            self._reported = dict(self._counts)
        return {"rekognition_calls": d["calls"], "rekognition_throttles": d["throttles"],
                "rekognition_images": d["images"],
                "estimated_cost_usd": round(d["images"] * self.price, 6)}

    # ------------------------------------------------------------------ encoding
    def encode(self, frame) -> tuple[bytes, int, int]:
        """JPEG bytes of the frame in display orientation, and the display size (width, height) in
        source pixels that Rekognition's ratios refer to."""
        import cv2

        W, H = frame.width, frame.height
        dw, dh = display_size(W, H, self.turns)
        sw, sh = send_size(dw, dh)
        quality = JPEG_QUALITY
        while True:
            if self.turns % 2:
                img = frame.reformat(width=sh, height=sw, format="bgr24").to_ndarray()
            else:
                img = frame.reformat(width=sw, height=sh, format="bgr24").to_ndarray()
            if self.turns:
                img = np.ascontiguousarray(np.rot90(img, self.turns))
            ok, buf = cv2.imencode(".jpg", img, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
            if not ok:
                raise DetectionError("could not JPEG-encode the frame for Rekognition")
            if len(buf) <= MAX_IMAGE_BYTES:
                return buf.tobytes(), dw, dh
            if quality > 50:
                quality -= 15
            else:  # still too large (extreme noise): shrink, but never below 80 px
                sw, sh = max(MIN_SIDE, int(sw * 0.8)), max(MIN_SIDE, int(sh * 0.8))
                if (sw, sh) == (MIN_SIDE, MIN_SIDE):
                    raise DetectionError("frame does not fit Rekognition's 5 MB image limit")

    # ------------------------------------------------------------------ calling
    def _detect_faces(self, data: bytes) -> dict:
        from botocore.exceptions import BotoCoreError, ClientError

        for rnd in range(self.ROUNDS):
            self._local.seen = {"attempts": 0, "throttles": 0}
            try:
                resp = self.client.detect_faces(Image={"Bytes": data}, Attributes=["DEFAULT"])
            except ClientError as e:
                code = (e.response.get("Error") or {}).get("Code", "")
                seen = self._local.seen
                throttled = code in THROTTLE_CODES
                self._add(calls=max(seen["attempts"], 1),
                          throttles=max(seen["throttles"], 1 if throttled else 0))
                if not throttled:
                    raise DetectionError(f"Rekognition DetectFaces failed: {code}: "
                                         f"{(e.response.get('Error') or {}).get('Message', '')}") from e
                if rnd + 1 < self.ROUNDS:
                    cap = min(self.MAX_BACKOFF_SECONDS, self.BACKOFF_SECONDS * 2 ** rnd)
                    time.sleep(random.uniform(0, cap))
                continue
            except BotoCoreError as e:  # connection/timeouts after botocore's retries
                self._add(calls=max(self._local.seen["attempts"], 1), throttles=self._local.seen["throttles"])
                raise DetectionError(f"Rekognition DetectFaces failed: {type(e).__name__}: {e}") from e
            seen = self._local.seen
            self._add(calls=max(seen["attempts"], 1), throttles=seen["throttles"], images=1)
            return resp
        raise DetectionError(f"Rekognition DetectFaces still throttled after {self.ROUNDS} rounds of "
                             f"{BOTO_MAX_ATTEMPTS} attempts; raise the account's DetectFaces TPS quota or lower "
                             f"rekognition_concurrency / workers")

    def detect_frame(self, frame) -> np.ndarray:
        data, dw, dh = self.encode(frame)
        resp = self._detect_faces(data)
        b = boxes_from_face_details(resp.get("FaceDetails") or [], dw, dh, self.threshold)
        b = boxes_from_display(b, self.turns, frame.width, frame.height)
        return clip_boxes(b, frame.width, frame.height)

    def __call__(self, frames: Sequence) -> list[np.ndarray]:
        frames = list(frames)
        if len(frames) <= 1 or self.concurrency <= 1:
            return [self.detect_frame(f) for f in frames]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="rekognition")
        return list(self._pool.map(self.detect_frame, frames))  # first error propagates: fail closed

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
