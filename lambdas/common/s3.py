"""Small S3 helpers used by the handlers (one boto3 client per container)."""
from __future__ import annotations

import json
import os
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Iterator

import boto3
from botocore.config import Config as BotoConfig

_client = None
UPLOAD_PART = 16 * 1024 * 1024  # bytes per part of upload_multipart (S3: at least 5 MiB but the last)
UPLOAD_IN_FLIGHT = 8  # parts uploading at once (memory: at most this many parts read ahead of S3)
POOL = 32  # the client's HTTP connections (the concurrent upload and Stitch's concurrent small requests)


def client():
    global _client
    if _client is None:
        _client = boto3.client("s3", config=BotoConfig(retries={"max_attempts": 10, "mode": "adaptive"},
                                                       max_pool_connections=POOL))
    return _client


def reset_client() -> None:
    """Forget the cached client (tests start a fresh moto backend per test)."""
    global _client
    _client = None


def download(bucket: str, key: str, dest: str | os.PathLike, version: str | None = None) -> Path:
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    extra = {"VersionId": version} if version else None
    client().download_file(bucket, key, str(dest), ExtraArgs=extra)
    return dest


def get_to_file(bucket: str, key: str, dest: str | os.PathLike) -> Path:
    """A small object into a local file with one GET (download_file adds a HEAD and a transfer pool)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(client().get_object(Bucket=bucket, Key=key)["Body"].read())
    return dest


def upload(path: str | os.PathLike, bucket: str, key: str, content_type: str | None = None) -> int:
    extra = {"ContentType": content_type} if content_type else None
    client().upload_file(str(path), bucket, key, ExtraArgs=extra)
    return Path(path).stat().st_size


def upload_multipart(path: str | os.PathLike, bucket: str, key: str, content_type: str | None = None,
                     part_size: int | None = None, in_flight: int | None = None, written: dict | None = None) -> int:
    """Upload a file as one object: parts of ``part_size`` read in order and uploaded concurrently, at most
    ``in_flight`` at once (so at most that many parts are in memory). Any failure, here or in a part, aborts
    the multipart upload: the key never holds a partial object and no upload is left open. Returns the size;
    ``written`` (if given) gets the new object's VersionId (None in an unversioned bucket)."""
    part_size, in_flight = int(part_size or UPLOAD_PART), int(in_flight or UPLOAD_IN_FLIGHT)
    size = Path(path).stat().st_size
    extra = {"ContentType": content_type} if content_type else {}
    c = client()
    if size <= part_size:
        with open(path, "rb") as f:
            resp = c.put_object(Bucket=bucket, Key=key, Body=f.read(), **extra)
        if written is not None:
            written["VersionId"] = resp.get("VersionId")
        return size
    upload_id = c.create_multipart_upload(Bucket=bucket, Key=key, **extra)["UploadId"]
    try:
        done: list[dict] = []
        with open(path, "rb") as f, ThreadPoolExecutor(max_workers=in_flight,
                                                       thread_name_prefix="s3-upload") as pool:
            pending = set()

            def put(number: int, body: bytes) -> dict:
                etag = c.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body)["ETag"]
                return {"PartNumber": number, "ETag": etag}

            for number in range(1, -(-size // part_size) + 1):
                if len(pending) >= in_flight:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    done.extend(fut.result() for fut in finished)  # a failed part raises here
                body = f.read(part_size)
                pending.add(pool.submit(put, number, body))
            finished, _ = wait(pending)
            done.extend(fut.result() for fut in finished)
        if len(done) != -(-size // part_size):
            raise RuntimeError(f"uploaded {len(done)} parts of {-(-size // part_size)}")
        resp = c.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                           MultipartUpload={"Parts": sorted(done, key=lambda d: d["PartNumber"])})
        if written is not None:
            written["VersionId"] = resp.get("VersionId")
    except BaseException:
        try:
            c.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass
        raise
    return size


def put_json(bucket: str, key: str, data: Any) -> str | None:
    """Write ``data`` as JSON; returns the new object's VersionId (None in an unversioned bucket)."""
    return client().put_object(Bucket=bucket, Key=key, Body=json.dumps(data, separators=(",", ":")).encode(),
                               ContentType="application/json").get("VersionId")


def get_json(bucket: str, key: str) -> Any:
    return json.loads(client().get_object(Bucket=bucket, Key=key)["Body"].read())


def head(bucket: str, key: str, version: str | None = None) -> dict | None:
    kw = {"VersionId": version} if version else {}
    try:
        return client().head_object(Bucket=bucket, Key=key, **kw)
    except client().exceptions.ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def list_keys(bucket: str, prefix: str) -> Iterator[str]:
    for page in client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            yield obj["Key"]


def list_sizes(bucket: str, prefix: str) -> Iterator[tuple[str, int]]:
    """(key, size) of every object under prefix."""
    for page in client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            yield obj["Key"], int(obj["Size"])


def delete_prefix(bucket: str, prefix: str) -> int:
    """Delete every object under prefix (the work bucket is not versioned). Returns how many were deleted."""
    keys = list(list_keys(bucket, prefix))
    for i in range(0, len(keys), 1000):
        batch = [{"Key": k} for k in keys[i:i + 1000]]
        resp = client().delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        if resp.get("Errors"):
            raise RuntimeError(f"could not delete {len(resp['Errors'])} object(s) under s3://{bucket}/{prefix}: "
                               f"{resp['Errors'][0]}")
    return len(keys)
