"""Where an upload is: its object version in the raw bucket, its run (the Step Functions execution named by
redactor.naming from bucket, key and version, or the latest retry of it), the Distributed Map's item counts
and, for a failure, the error and cause from failed/<key>.json."""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from .. import naming
from .aws import error_code
from .errors import NotUploaded
from .stack import Deployment

FAILED_STATUSES = ("FAILED", "TIMED_OUT", "ABORTED")
MAX_RETRIES_LOOKED_UP = 50


@dataclass(frozen=True)
class Upload:
    """One object version in the raw bucket."""
    key: str
    version: str | None
    etag: str
    size: int
    modified: dt.datetime

    @property
    def run_id(self) -> str | None:
        """What the starter names the run from: the version id, or the ETag in an unversioned bucket."""
        return self.version or self.etag


def find_upload(s3, dep: Deployment, key: str, version: str | None = None) -> Upload:
    """The latest version of ``key`` in the raw bucket (or ``version``); NotUploaded if there is none."""
    kw = {"VersionId": version} if version else {}
    try:
        head = s3.head_object(Bucket=dep.raw_bucket, Key=key, **kw)
    except Exception as e:  # noqa: BLE001
        if error_code(e) in ("404", "NoSuchKey", "NoSuchVersion", "400", "InvalidArgument"):
            what = f"version {version} of {key}" if version else key
            raise NotUploaded(f"{what} is not in s3://{dep.raw_bucket} (never uploaded, deleted or expired)",
                              key) from None
        raise
    v = head.get("VersionId")
    return Upload(key=key, version=None if v in (None, "null") else v, etag=head["ETag"].strip('"'),
                  size=int(head.get("ContentLength") or 0), modified=head["LastModified"])


@dataclass
class RunState:
    upload: Upload
    state: str  # queued | planning | redacting | stitching | done | superseded | failed
    elapsed: float
    execution: dict | None = None  # DescribeExecution
    done_items: int | None = None
    total_items: int | None = None
    error: str | None = None
    cause: str | None = None
    outputs: list[str] = field(default_factory=list)
    attempts: int = 0  # retries started after the first run

    @property
    def finished(self) -> bool:
        return self.state in ("done", "superseded", "failed")

    def detail(self) -> str:
        if self.state == "redacting":
            if self.total_items is None:
                return "redacting (reading the segment list)"
            return f"redacting {self.done_items} of {self.total_items} segments"
        if self.state == "failed":
            return f"failed: {self.error}: {self.cause}"
        if self.state == "queued":
            return "queued (uploaded; no run started yet)"
        if self.state == "superseded":
            return "superseded (a newer upload of the key owns its outputs)"
        return self.state

    @property
    def elapsed_text(self) -> str:
        return _duration(self.elapsed)

    def line(self) -> str:
        return f"{self.upload.key}: {self.detail()} ({self.elapsed_text})"


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    m, s = divmod(seconds, 60)
    return f"{m}m{s:02d}s" if m < 60 else f"{m // 60}h{m % 60:02d}m"


def _describe(sfn, arn: str) -> dict | None:
    try:
        return sfn.describe_execution(executionArn=arn)
    except Exception as e:  # noqa: BLE001
        if error_code(e) in ("ExecutionDoesNotExist", "ResourceNotFound"):
            return None
        raise


def latest_execution(sfn, dep: Deployment, upload: Upload) -> tuple[dict | None, int]:
    """(the newest run of this upload version, the number of retries started): the first run is named by
    naming.execution_name, retry n by naming.retry_execution_name(..., n)."""
    first = _describe(sfn, dep.execution_arn(naming.execution_name(dep.raw_bucket, upload.key, upload.run_id)))
    if first is None:
        return None, 0
    latest, attempts = first, 0
    for attempt in range(1, MAX_RETRIES_LOOKED_UP + 1):
        name = naming.retry_execution_name(dep.raw_bucket, upload.key, upload.version, attempt)
        found = _describe(sfn, dep.execution_arn(name))
        if found is None:
            break
        latest, attempts = found, attempt
    return latest, attempts


def _map_counts(sfn, execution_arn: str) -> tuple[str, int, int] | None:
    """(status, items succeeded, items in total) of the execution's latest Map Run, None before it starts."""
    runs = sfn.list_map_runs(executionArn=execution_arn).get("mapRuns") or []
    if not runs:
        return None
    latest = max(runs, key=lambda r: str(r.get("startDate")))
    try:
        d = sfn.describe_map_run(mapRunArn=latest["mapRunArn"])
    except Exception as e:  # noqa: BLE001
        if error_code(e) == "ResourceNotFound":
            return None
        raise
    counts = d.get("itemCounts") or {}
    return d.get("status", ""), int(counts.get("succeeded") or 0), int(counts.get("total") or 0)


def one_line(text) -> str:
    """A cause (string, or the decoded Lambda error) on one line."""
    if isinstance(text, dict):
        text = text.get("errorMessage") or text.get("message") or json.dumps(text, separators=(",", ":"))
    text = " ".join(str(text if text is not None else "no cause recorded").split())
    return text if len(text) <= 400 else text[:397] + "..."


def failure(s3, dep: Deployment, upload: Upload, execution: dict) -> tuple[str, str]:
    """(error, cause) of a failed run: from failed/<key>.json when it is this run's record, else the
    execution's own (a run stopped by hand, or one that failed before recording)."""
    try:
        body = s3.get_object(Bucket=dep.output_bucket, Key=naming.failed_key(upload.key))["Body"].read()
        record = json.loads(body)
    except Exception as e:  # noqa: BLE001
        if error_code(e) not in ("NoSuchKey", "404", "AccessDenied") and not isinstance(e, ValueError):
            raise
        record = None
    if record and record.get("execution") == execution.get("name"):
        return str(record.get("error") or "Unknown"), one_line(record.get("cause"))
    return execution.get("error") or execution.get("status", "FAILED"), one_line(execution.get("cause"))


def _superseded(execution: dict) -> bool:
    """Whether Stitch left the key's outputs to a newer upload of it (the workflow's ``$.output.superseded``)."""
    try:
        flag = ((json.loads(execution.get("output") or "{}") or {}).get("output") or {}).get("superseded")
    except (ValueError, AttributeError):
        return False
    return flag is True or str(flag).lower() == "true"


def run_state(s3, sfn, dep: Deployment, upload: Upload) -> RunState:
    now = dt.datetime.now(dt.timezone.utc)
    execution, attempts = latest_execution(sfn, dep, upload)
    if execution is None:
        return RunState(upload, "queued", (now - upload.modified).total_seconds())
    stop = execution.get("stopDate") or now
    state = RunState(upload, "planning", (stop - execution["startDate"]).total_seconds(), execution,
                     attempts=attempts)
    status = execution["status"]
    if status == "SUCCEEDED" and _superseded(execution):
        state.state = "superseded"
    elif status == "SUCCEEDED":
        state.state = "done"
        state.outputs = [naming.output_key(upload.key), naming.report_key(upload.key),
                         naming.report_html_key(upload.key)]
    elif status in FAILED_STATUSES:
        state.state = "failed"
        state.error, state.cause = failure(s3, dep, upload, execution)
    else:
        counts = _map_counts(sfn, execution["executionArn"])
        if counts is not None:
            map_status, done, total = counts
            state.state = "stitching" if map_status == "SUCCEEDED" else "redacting"
            if total:  # 0 while the Map Run is still reading the segment list
                state.done_items, state.total_items = done, total
    return state
