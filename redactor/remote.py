"""Videos in S3, read in place: ``s3://bucket/key?versionId=v`` opens as a seekable file object whose reads
are ranged GETs, so a process reads only the bytes its demuxer asks for (a segment worker: the container
index and its own frames; Stitch: the audio packets) and nothing is copied to local disk.

Reads are buffered: a read that continues where the previous GET ended fetches twice as much as that one
(read-ahead, from ``MIN_BLOCK`` up to ``MAX_BLOCK``); a jump elsewhere starts again at ``MIN_BLOCK``. The
last few fetched blocks are kept, so a demuxer going back and forth between an index and the data does not
fetch the same bytes twice. boto3 is imported only when an s3:// source is opened (the engine runs without
it); each process makes its own client (the worker processes are forked).
"""
from __future__ import annotations

import io
import os
import time
from urllib.parse import parse_qs, quote, unquote, urlsplit

from .errors import InputError

SCHEME = "s3://"
MIN_BLOCK = 256 * 1024
MAX_BLOCK = 2 * 1024 * 1024  # read-ahead past what a reader needs is at most this (per open reader)
CACHE_BLOCKS = 4
GET_ATTEMPTS = 4  # a broken response body is retried here (boto3 retries the request itself)


def is_remote(path) -> bool:
    return isinstance(path, str) and path.startswith(SCHEME)


def s3_url(bucket: str, key: str, version: str | None = None) -> str:
    """The engine's name for an S3 object (the key is URL-quoted, so any key round-trips)."""
    url = f"{SCHEME}{bucket}/{quote(key, safe='/')}"
    return f"{url}?versionId={quote(version, safe='')}" if version else url


def parse_s3_url(url: str) -> tuple[str, str, str | None]:
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or len(parts.path) < 2:
        raise InputError("not an s3://bucket/key address", url)
    version = parse_qs(parts.query).get("versionId", [None])[0]
    return parts.netloc, unquote(parts.path[1:]), version


_clients: dict[int, object] = {}
_spare: tuple[int, object] | None = None  # (pid, client) made for forked workers, never used by that pid


def _new_client():
    import boto3
    from botocore.config import Config as BotoConfig

    return boto3.client("s3", config=BotoConfig(retries={"max_attempts": 10, "mode": "adaptive"}))


def prepare_fork() -> None:
    """Make, in this process, the S3 client that the worker processes it forks will use (it never uses it
    itself, so a fork copies a client with no connection and nothing held). A worker then runs no client
    set-up (imports, session, loaders) after the fork, where a lock that another thread of the parent held at
    fork time would never be released. The Redact handler calls this at cold start."""
    global _spare
    _spare = (os.getpid(), _new_client())


def reset() -> None:
    """Forget every client (tests point boto3 at a fresh moto between runs)."""
    global _spare
    _clients.clear()
    _spare = None


def _client():
    """One S3 client per process (a forked worker must not share its parent's connections)."""
    pid = os.getpid()
    if pid not in _clients:
        _clients.clear()
        _clients[pid] = _spare[1] if _spare is not None and _spare[0] != pid else _new_client()
    return _clients[pid]


class RangeReader(io.RawIOBase):
    """A read-only, seekable file object over ``fetch(start, end_inclusive) -> bytes`` of a ``size``-byte
    object, with read-ahead (see the module docstring). ``requests`` / ``bytes_fetched`` count the GETs."""

    def __init__(self, fetch, size: int, name: str, min_block: int | None = None, max_block: int | None = None):
        super().__init__()
        self._fetch, self.size, self.name = fetch, int(size), name
        self.min_block, self.max_block = int(min_block or MIN_BLOCK), int(max_block or MAX_BLOCK)
        self._pos = 0
        self._blocks: list[tuple[int, bytes]] = []  # most recent last
        self._next_block = self.min_block
        self._seq_end = -1  # where the last GET ended: a read from here is sequential
        self.requests = 0
        self.bytes_fetched = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        pos = base + int(offset)
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def _block_at(self, pos: int) -> tuple[int, bytes] | None:
        for start, data in reversed(self._blocks):
            if start <= pos < start + len(data):
                return start, data
        return None

    def _load(self, pos: int, want: int) -> tuple[int, bytes]:
        if pos == self._seq_end:
            self._next_block = min(self.max_block, self._next_block * 2)
        else:
            self._next_block = self.min_block
        length = min(max(want, self._next_block), self.size - pos)
        data = self._fetch(pos, pos + length - 1)
        if len(data) != length:
            raise InputError(f"short read: asked bytes {pos}-{pos + length - 1}, got {len(data)} bytes "
                             f"(object changed or truncated?)", self.name)
        self.requests += 1
        self.bytes_fetched += length
        self._seq_end = pos + length
        self._blocks.append((pos, data))
        del self._blocks[:-CACHE_BLOCKS]
        return pos, data

    def read(self, n: int = -1) -> bytes:
        if self.closed:
            raise ValueError("read from a closed reader")
        if self._pos >= self.size:
            return b""
        if n is None or n < 0:
            n = self.size - self._pos
        hit = self._block_at(self._pos) or self._load(self._pos, n)
        start, data = hit
        off = self._pos - start
        out = data[off:off + n]
        self._pos += len(out)
        return out

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._blocks = []
        super().close()


def open_s3(url: str, **kw) -> RangeReader:
    """A RangeReader over an s3:// object; InputError naming the object if it is missing or unreadable."""
    bucket, key, version = parse_s3_url(url)
    client = _client()
    extra = {"VersionId": version} if version else {}
    try:
        head = client.head_object(Bucket=bucket, Key=key, **extra)
    except Exception as e:  # noqa: BLE001 - botocore's ClientError, named below
        code = getattr(e, "response", {}).get("Error", {}).get("Code", type(e).__name__)
        if code in ("404", "NoSuchKey", "NotFound", "NoSuchVersion"):
            raise InputError("no such object", url) from None
        raise InputError(f"cannot read the object ({code})", url) from None
    size = int(head["ContentLength"])
    if size == 0:
        raise InputError("file is empty (0 bytes)", url)
    etag = head.get("ETag")

    def fetch(start: int, end: int) -> bytes:
        for attempt in range(GET_ATTEMPTS):
            try:
                kw2 = dict(extra, IfMatch=etag) if etag and not version else extra
                body = client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end}", **kw2)["Body"]
                return body.read()
            except Exception as e:  # noqa: BLE001
                code = getattr(e, "response", {}).get("Error", {}).get("Code")
                if code or attempt == GET_ATTEMPTS - 1:  # an S3 error answer (already retried by boto3)
                    raise InputError(f"reading bytes {start}-{end} failed ({code or type(e).__name__}: {e})",
                                     url) from None
                time.sleep(0.2 * 2 ** attempt)  # a connection that broke mid-body
        raise AssertionError("unreachable")

    return RangeReader(fetch, size, url, **kw)


def size_of(path) -> int:
    """Size in bytes of a local file or an s3:// object."""
    if is_remote(path):
        with open_s3(path) as r:
            return r.size
    return os.path.getsize(path)
