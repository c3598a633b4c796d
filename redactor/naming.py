"""Names and S3 keys shared by the starter, the workflow, the handlers and the cloud client.

Work area (work bucket):  runs/<execution name>/plan.json, source.json, manifest.json, parts/NNNNN.<ext>,
                          detections/NNNNN.json, results/NNNNN.json, faces.json (rekognition-video)
Output bucket:            redacted/<key> (or <key>.mkv for .webm, <key>.mov for .avi: see
                          redactor.containers), redacted/<key>.report.json, redacted/<key>.report.html,
                          failed/<key>.json (failed/long-keys/<sha256 of key>.json when the key is too long
                          for its derived keys: see ``key_too_long``)
Version records (work bucket): versions/<sha256 of key>.json, which upload of the key owns its outputs (see
                          ``newer``)

Runs: one Step Functions execution per uploaded object version, named by ``execution_name``; a retry of the
same retained version runs as a new execution named by ``retry_execution_name``. Both take the input
``execution_input`` builds, so the starter and a client start identical runs.
"""
from __future__ import annotations

import hashlib
import re

from redactor.containers import output_name

RUNS_PREFIX = "runs/"
OUTPUT_PREFIX = "redacted/"
FAILED_PREFIX = "failed/"
LONG_KEYS_PREFIX = f"{FAILED_PREFIX}long-keys/"
VERSIONS_PREFIX = "versions/"
MAX_KEY_BYTES = 1024  # S3's limit on an object key (UTF-8)
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


def retry_execution_name(bucket: str, key: str, version: str | None, attempt: int) -> str:
    """The name of retry number ``attempt`` (1, 2, ...) of the upload ``version`` of ``key``: like
    ``execution_name`` but distinct from it and from every other attempt, so it never collides with the run
    that failed (a closed execution's name answers ExecutionAlreadyExists). Deterministic: a retry started
    twice with the same attempt number runs once; a client asks for attempt + 1 when that name exists."""
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError(f"retry attempt must be a whole number >= 1, not {attempt!r}")
    tag = f"-r{attempt}"
    name = execution_name(bucket, key, f"{version or ''}\0retry\0{attempt}")
    fragment, digest = name[: -_HASH_CHARS - 1], name[-_HASH_CHARS:]
    fragment = fragment[: MAX_EXECUTION_NAME - _HASH_CHARS - 1 - len(tag)]
    return f"{fragment}{tag}-{digest}"


def execution_input(bucket: str, key: str, version: str | None, sequencer: str | None, *, execution: str,
                    etag: str | None = None, size: int | None = None) -> dict:
    """The workflow's input for one run of ``key`` at ``version`` under the execution name ``execution``.

    ``sequencer`` is the S3 event's ``sequencer`` of that upload: the order of uploads of the same key (version
    ids have none); a run whose upload is older than the one that already owns the key's outputs leaves them
    alone (``newer``). A retry passes the failed run's own sequencer (kept in its failure record)."""
    return {"bucket": bucket, "key": key, "version": version, "sequencer": sequencer or "", "etag": etag or "",
            "size": int(size or 0), "work_prefix": work_prefix(execution)}


def sequencer_value(sequencer: str | None, width: int = 64) -> str:
    """A sort key for an S3 event ``sequencer``: hex digits, upper case, right-padded with zeros (S3's rule
    for comparing sequencers of different lengths). A missing sequencer sorts before every real one."""
    s = (sequencer or "").strip().upper()
    if s and not re.fullmatch(r"[0-9A-F]+", s):
        raise ValueError(f"S3 event sequencer {sequencer!r} is not hexadecimal")
    return s.ljust(max(width, len(s)), "0") if s else ""


def newer(a: str | None, b: str | None) -> bool:
    """Whether the upload with sequencer ``a`` happened after the one with ``b`` (same key)."""
    width = max(len(a or ""), len(b or ""), 1)
    return sequencer_value(a, width) > sequencer_value(b, width)


def version_record_key(key: str) -> str:
    """Work bucket: the record of which upload (sequencer, version, execution) owns ``key``'s outputs."""
    return f"{VERSIONS_PREFIX}{hashlib.sha256(key.encode()).hexdigest()}.json"


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


def _plain_failed_key(key: str) -> str:
    return f"{FAILED_PREFIX}{key}.json"


def key_too_long(key: str) -> bool:
    """Whether one of the keys derived from ``key`` (the redacted video, its reports, its failure record)
    would exceed S3's 1,024 bytes: such an upload is refused before any segment is redacted."""
    derived = (output_key(key), report_key(key), report_html_key(key), _plain_failed_key(key))
    return any(len(k.encode("utf-8")) > MAX_KEY_BYTES for k in derived)


def failed_key(key: str) -> str:
    """failed/<key>.json; for a key too long for that (``key_too_long``), failed/long-keys/<sha256>.json
    (the record itself holds the key)."""
    if key_too_long(key):
        return f"{LONG_KEYS_PREFIX}{hashlib.sha256(key.encode()).hexdigest()}.json"
    return _plain_failed_key(key)
