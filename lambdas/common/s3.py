"""Small S3 helpers used by the handlers (one boto3 client per container)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

import boto3
from botocore.config import Config as BotoConfig

_client = None


def client():
    global _client
    if _client is None:
        _client = boto3.client("s3", config=BotoConfig(retries={"max_attempts": 10, "mode": "adaptive"}))
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


def upload(path: str | os.PathLike, bucket: str, key: str, content_type: str | None = None) -> int:
    extra = {"ContentType": content_type} if content_type else None
    client().upload_file(str(path), bucket, key, ExtraArgs=extra)
    return Path(path).stat().st_size


def put_json(bucket: str, key: str, data: Any) -> None:
    client().put_object(Bucket=bucket, Key=key, Body=json.dumps(data, separators=(",", ":")).encode(),
                        ContentType="application/json")


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
