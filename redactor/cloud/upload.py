"""Upload one file to the raw bucket: boto3's managed transfer (multipart above the threshold, parts in
parallel) with a progress bar. Ctrl-C aborts the multipart upload this call created, so nothing that looks
complete is left behind (S3 only shows an object once its multipart upload is completed, and only a completed
object starts a run); running the upload again starts from the beginning."""
from __future__ import annotations

import os
import signal
import sys
import threading
from dataclasses import dataclass

from .errors import Interrupted

PART_BYTES = 16 * 1024 * 1024  # S3: 5 MiB to 5 GiB a part, at most 10,000 parts
MAX_PARTS = 10_000


@dataclass(frozen=True)
class Uploaded:
    key: str
    version: str | None
    etag: str
    size: int


def transfer_config(size: int, part_bytes: int = PART_BYTES):
    from boto3.s3.transfer import TransferConfig

    part = max(part_bytes, -(-size // MAX_PARTS))
    return TransferConfig(multipart_threshold=part, multipart_chunksize=part, max_concurrency=4)


def progress_bar(size: int, label: str, enabled: bool):
    """(callback(bytes), close()): a tqdm byte bar on stderr, or nothing."""
    if not enabled:
        return (lambda n: None), (lambda: None)
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return (lambda n: None), (lambda: None)
    bar = tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=label, file=sys.stderr,
               dynamic_ncols=True, leave=False)
    lock = threading.Lock()

    def update(n: int) -> None:
        with lock:
            bar.update(n)
    return update, bar.close


class _Watch:
    """Records what this upload's S3 calls created/returned (botocore after-call events on the client)."""

    def __init__(self, s3, key: str):
        self.s3, self.key = s3, key
        self.upload_ids: list[str] = []
        self.result: dict = {}
        self._handlers = [("after-call.s3.CreateMultipartUpload", self._created),
                          ("after-call.s3.CompleteMultipartUpload", self._finished),
                          ("after-call.s3.PutObject", self._finished)]

    def _created(self, parsed=None, **kw):
        if parsed and parsed.get("Key") == self.key and parsed.get("UploadId"):
            self.upload_ids.append(parsed["UploadId"])

    def _finished(self, parsed=None, http_response=None, **kw):
        if parsed and getattr(http_response, "status_code", 500) < 300:
            self.result = dict(parsed)

    def __enter__(self):
        for event, handler in self._handlers:
            self.s3.meta.events.register(event, handler)
        return self

    def __exit__(self, *exc):
        for event, handler in self._handlers:
            self.s3.meta.events.unregister(event, handler)


def abort(s3, bucket: str, key: str, upload_ids: list[str]) -> int | None:
    """Abort the given multipart uploads (already aborted ones are fine); returns how many are still listed
    (a part under way when its upload is aborted can leave it listed), None if the listing failed."""
    for upload_id in upload_ids:
        try:
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception:  # noqa: BLE001 - NoSuchUpload: s3transfer's own cleanup got there first
            pass
    try:
        listed = s3.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads") or []
    except Exception:  # noqa: BLE001 - not allowed to list: the aborts above are all that can be done
        return None
    return sum(1 for u in listed if u["Key"] == key and u["UploadId"] in upload_ids)


def upload(s3, path: str, bucket: str, key: str, show_progress: bool) -> Uploaded:
    size = os.path.getsize(path)
    update, close = progress_bar(size, os.path.basename(path), show_progress)
    watch = _Watch(s3, key)
    try:
        with watch:
            s3.upload_file(path, bucket, key, Config=transfer_config(size), Callback=update)
    except KeyboardInterrupt:
        close()
        if watch.result:
            raise Interrupted(f"interrupted after the upload completed: s3://{bucket}/{key} is stored and its run "
                              "starts as usual", path) from None
        previous = _ignore_sigint()
        try:
            left = abort(s3, bucket, key, watch.upload_ids)
        finally:
            _restore_sigint(previous)
        what = (f"multipart upload aborted{f' ({left} still listed: abort it by hand)' if left else ''}"
                if watch.upload_ids else "upload stopped")
        raise Interrupted(f"{what}; nothing was stored at s3://{bucket}/{key}; run submit again to upload it",
                          path) from None
    finally:
        close()
    version = watch.result.get("VersionId")
    return Uploaded(key=key, version=None if version in (None, "null") else version,
                    etag=str(watch.result.get("ETag") or "").strip('"'), size=size)


def _ignore_sigint():
    if threading.current_thread() is threading.main_thread():
        return signal.signal(signal.SIGINT, signal.SIG_IGN)
    return None


def _restore_sigint(previous) -> None:
    if previous is not None:
        signal.signal(signal.SIGINT, previous)
