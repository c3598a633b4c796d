"""Names and S3 keys shared by the starter, the workflow, the handlers and the cloud client.

Work area (work bucket):  runs/<execution name>/plan.json, source.json, manifest.json, parts/NNNNN.<ext>,
                          detections/NNNNN.json, results/NNNNN.json, faces.json (rekognition-video)
Output bucket:            redacted/<key> (or <key>.mkv for .webm, <key>.mov for .avi: see
                          redactor.containers), redacted/<key>.report.json, redacted/<key>.report.html,
                          failed/<key>.json
"""
from __future__ import annotations

import hashlib
import re

from redactor.containers import output_name

RUNS_PREFIX = "runs/"
OUTPUT_PREFIX = "redacted/"
FAILED_PREFIX = "failed/"
MAX_EXECUTION_NAME = 80
_HASH_CHARS = 24


def execution_name(bucket: str, key: str, version_or_etag: str | None) -> str:
    """Deterministic Step Functions execution name: readable key fragment + hash of bucket/key/version.

    Only [A-Za-z0-9_-], at most 80 characters. The same object version always gives the same name, so a
    duplicated event is answered by ExecutionAlreadyExists instead of a second run.
    """
    digest = hashlib.sha256("\0".join([bucket, key, version_or_etag or ""]).encode()).hexdigest()[:_HASH_CHARS]
    base = key.rsplit("/", 1)[-1]
    fragment = re.sub(r"[^A-Za-z0-9_-]+", "-", base).strip("-_")
    fragment = fragment[: MAX_EXECUTION_NAME - _HASH_CHARS - 1] or "video"
    return f"{fragment}-{digest}"


def work_prefix(execution: str) -> str:
    return f"{RUNS_PREFIX}{execution}/"


def check_work_prefix(prefix: str) -> str:
    if not (prefix.startswith(RUNS_PREFIX) and prefix.endswith("/") and len(prefix) > len(RUNS_PREFIX) + 1
            and ".." not in prefix):
        raise ValueError(f"work prefix {prefix!r} is not runs/<name>/")
    return prefix


def plan_key(prefix: str) -> str:
    return f"{prefix}plan.json"


def source_key(prefix: str) -> str:
    """The probed facts of the upload (SourceInfo), small: what each Redact container needs to decode."""
    return f"{prefix}source.json"


def manifest_key(prefix: str) -> str:
    return f"{prefix}manifest.json"


def faces_key(prefix: str) -> str:
    """rekognition-video: the GetFaceDetection results of the run's video job (redactor.rekognition_video)."""
    return f"{prefix}faces.json"


def part_key(prefix: str, index: int, ext: str) -> str:
    return f"{prefix}parts/{index:05d}{ext}"


def detections_key(prefix: str, index: int) -> str:
    return f"{prefix}detections/{index:05d}.json"


def result_key(prefix: str, index: int) -> str:
    return f"{prefix}results/{index:05d}.json"


def output_key(key: str) -> str:
    """The redacted video's key: the upload's key, with a suffix appended when its container cannot hold
    the output (redactor.containers: .webm -> .webm.mkv, .avi -> .avi.mov)."""
    return f"{OUTPUT_PREFIX}{output_name(key)}"


def report_key(key: str) -> str:
    return f"{OUTPUT_PREFIX}{key}.report.json"


def report_html_key(key: str) -> str:
    """The visual report (redactor/report_html.py) beside the video and its JSON report."""
    return f"{OUTPUT_PREFIX}{key}.report.html"


def failed_key(key: str) -> str:
    return f"{FAILED_PREFIX}{key}.json"


# ------------------------------------------------------------------------------------------------ live streams
LIVE_PREFIX = "live/"  # raw bucket: live/<stream>/<sequence>.<ext> (chunks) and live/<stream>/END; output
# bucket: live/<stream>/index.m3u8 + segments (docs/live.md). The file workflow's starter ignores these keys.


def is_live_key(key: str) -> bool:
    return key.startswith(LIVE_PREFIX)


def live_parts(key: str) -> tuple[str, str] | None:
    """(stream, name) of a raw-bucket key ``live/<stream>/<name>``; None for any other key."""
    if not is_live_key(key):
        return None
    rest = key[len(LIVE_PREFIX):].split("/")
    if len(rest) != 2 or not rest[0] or not rest[1]:
        return None
    return rest[0], rest[1]
