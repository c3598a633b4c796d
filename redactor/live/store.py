"""Where a live stream's playlist, segments, records and staged chunks are kept: a local directory or an S3
prefix. Names are relative to the stream's root (``index.m3u8``, ``seg-000003-00.ts``, ``records/...``,
``.staged/...``).

The playlist is the only object rewritten, by compare-and-swap: ``read`` gives its bytes and an ETag,
``write_if`` writes only if the object still has that ETag (``None``: only if it does not exist yet) and
returns False otherwise (the caller re-reads and tries again). S3 does this with conditional writes
(``IfMatch`` / ``IfNoneMatch="*"``); the local directory with an advisory lock around the compare and the
atomic rename. Everything else is written once (segments, records) or is private work (``.staged/``).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path


class Store:
    """The interface (see the module docstring)."""

    label = "stream"  # where the stream is, for its report's title

    def read(self, name: str) -> tuple[bytes | None, str | None]:
        raise NotImplementedError

    def write_if(self, name: str, data: bytes, etag: str | None) -> bool:
        raise NotImplementedError

    def put_file(self, name: str, path: str) -> None:
        raise NotImplementedError

    def put_bytes(self, name: str, data: bytes) -> None:
        raise NotImplementedError

    def put_new(self, name: str, data: bytes) -> bool:
        """Write ``name`` only if it does not exist; False if it does."""
        raise NotImplementedError

    def get_file(self, name: str, dest: str) -> bool:
        raise NotImplementedError

    def delete(self, name: str) -> None:
        raise NotImplementedError

    def get(self, name: str) -> bytes | None:
        return self.read(name)[0]


class LocalStore(Store):
    """A directory (``redactor live ... -o OUTDIR``). Writes go to a hidden temporary file renamed into place,
    so a name holds a whole object or nothing."""

    def __init__(self, root: str):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, name: str) -> Path:
        return self.root / name

    @property
    def label(self) -> str:
        return str(self.root)

    def read(self, name):
        p = self._path(name)
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            return None, None
        return data, hashlib.sha256(data).hexdigest()

    @contextlib.contextmanager
    def _locked(self):
        import fcntl
        with open(self.root / ".lock", "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _replace(self, name: str, write) -> None:
        dest = self._path(name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.partial-", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def write_if(self, name, data, etag):
        with self._locked():
            if self.read(name)[1] != etag:
                return False
            self._replace(name, lambda f: f.write(data))
            return True

    def put_file(self, name, path):
        def copy(f):
            with open(path, "rb") as src:
                shutil.copyfileobj(src, f)
        self._replace(name, copy)

    def put_bytes(self, name, data):
        self._replace(name, lambda f: f.write(data))

    def put_new(self, name, data):
        with self._locked():
            if self._path(name).exists():
                return False
            self.put_bytes(name, data)
            return True

    def get_file(self, name, dest):
        try:
            shutil.copyfile(self._path(name), dest)
        except FileNotFoundError:
            return False
        return True

    def delete(self, name):
        with contextlib.suppress(FileNotFoundError):
            self._path(name).unlink()


class S3Store(Store):
    """``s3://bucket/prefix/`` with conditional writes (no lock: optimistic concurrency between writers in any
    number of processes)."""

    CONTENT_TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".ts": "video/mp2t", ".json": "application/json",
                     ".html": "text/html; charset=utf-8"}

    def __init__(self, bucket: str, prefix: str, client=None):
        if client is None:
            import boto3
            client = boto3.client("s3")
        self.bucket, self.prefix, self.client = bucket, prefix.rstrip("/") + "/", client

    def key(self, name: str) -> str:
        return self.prefix + name

    @property
    def label(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _extra(self, name: str) -> dict:
        ct = self.CONTENT_TYPES.get(os.path.splitext(name)[1])
        return {"ContentType": ct} if ct else {}

    @staticmethod
    def _code(e) -> str:
        return e.response.get("Error", {}).get("Code", "")

    def read(self, name):
        from botocore.exceptions import ClientError
        try:
            r = self.client.get_object(Bucket=self.bucket, Key=self.key(name))
        except ClientError as e:
            if self._code(e) in ("NoSuchKey", "404"):
                return None, None
            raise
        return r["Body"].read(), r["ETag"]

    def _put_conditional(self, name: str, data: bytes, condition: dict) -> bool:
        from botocore.exceptions import ClientError
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=data, **condition,
                                   **self._extra(name))
        except ClientError as e:
            # 412: the object changed (or exists); 409: a concurrent conditional write is in progress
            if self._code(e) in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise
        return True

    def write_if(self, name, data, etag):
        return self._put_conditional(name, data, {"IfMatch": etag} if etag else {"IfNoneMatch": "*"})

    def put_new(self, name, data):
        return self._put_conditional(name, data, {"IfNoneMatch": "*"})

    def put_file(self, name, path):
        with open(path, "rb") as f:
            self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=f.read(), **self._extra(name))

    def put_bytes(self, name, data):
        self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=data, **self._extra(name))

    def get_file(self, name, dest):
        data = self.get(name)
        if data is None:
            return False
        Path(dest).write_bytes(data)
        return True

    def delete(self, name):
        self.client.delete_object(Bucket=self.bucket, Key=self.key(name))
