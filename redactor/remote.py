"""Videos in S3, read in place: ``s3://bucket/key?versionId=v`` opens as a seekable file object whose reads
are ranged GETs, so a process reads only the bytes its demuxer asks for (a segment worker: the container
index and its own frames; Stitch: the audio packets) and nothing is copied to local disk.

Reads are buffered: a read that continues where the previous GET ended fetches twice as much as that one
(read-ahead, from ``MIN_BLOCK`` up to ``MAX_BLOCK``); a jump elsewhere starts again at ``MIN_BLOCK``. The
last few fetched blocks are kept, so a demuxer going back and forth between an index and the data does not
fetch the same bytes twice. boto3 is imported only when an s3:// source is opened (the engine runs without
it); each process makes its own client (the worker processes are forked).

Concurrent read-ahead (``ahead=N``, used by Plan and Stitch, which read whole objects front to back): once a
reader has read sequentially up to ``MAX_BLOCK`` blocks, it keeps up to N GETs of ``STREAM_BLOCK`` bytes in
flight ahead of the demuxer (threads of the reader's own pool), in order, so a long read is bound by the
network's throughput, not by one request's latency after another. The blocks ahead are bounded (N x
``STREAM_BLOCK``), so memory stays flat whatever the object's size; a jump out of the window drops them and
starts again with small blocks. Forking processes (Redact's workers) do not use it: no thread of a reader
is alive in a process that forks. ``Prefetcher`` fetches a list of whole objects (Stitch's parts) in order the
same way, a bounded number of bytes ahead of the one being read.
"""
from __future__ import annotations

import bisect
import io
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, quote, unquote, urlsplit

from .errors import InputError

SCHEME = "s3://"
MIN_BLOCK = 256 * 1024
MAX_BLOCK = 2 * 1024 * 1024  # read-ahead past what a reader needs is at most this (per open reader)
CACHE_BLOCKS = 4
GET_ATTEMPTS = 4  # a broken response body is retried here (boto3 retries the request itself)
STREAM_BLOCK = 4 * 1024 * 1024  # one GET of a concurrent read-ahead
STREAM_AHEAD = 8  # GETs in flight ahead of a streaming reader (Plan, Stitch): at most 32 MiB ahead
PREFETCH_BYTES = 64 * 1024 * 1024  # Stitch's parts fetched ahead of the one being remuxed
PREFETCH_WHOLE_MAX = 32 * 1024 * 1024  # a larger part is read in place (streaming reader) when its turn comes
PLANNED_AHEAD = 32  # planned reads (plan_reads: an MP4's sample ranges) in flight at once
PLANNED_BYTES = 32 * 1024 * 1024  # ... and the bytes they hold together
# planned ranges closer than this are fetched as one (the bytes between cost less than a request: at 32 GETs in
# flight a request's 30 ms is ~1 ms of wall, 128 KiB at ~150 MB/s): an FFmpeg-muxed MP4's audio, chunked every
# video frame, is then read whole; a camera's, chunked every ~0.8 s, is fetched alone
PLANNED_GAP = 128 * 1024
POOL_CONNECTIONS = 40  # the client's HTTP connection pool (boto3's default of 10 would queue the read-ahead)


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

    return boto3.client("s3", config=BotoConfig(retries={"max_attempts": 10, "mode": "adaptive"},
                                                 max_pool_connections=POOL_CONNECTIONS))


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


class _CountedGets:
    """Ranged GETs from any thread, checked (a short answer is an InputError) and counted: ``requests`` and
    ``bytes_fetched`` answered, ``peak_in_flight`` the most that were under way at once."""

    def _init_counts(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0
        self.peak_in_flight = 0
        self.requests = 0
        self.bytes_fetched = 0

    def _counted_get(self, fetch, start: int, length: int, name: str) -> bytes:
        with self._lock:
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        try:
            data = fetch(start, start + length - 1)
        finally:
            with self._lock:
                self._in_flight -= 1
        if len(data) != length:
            raise InputError(f"short read: asked bytes {start}-{start + length - 1}, got {len(data)} bytes "
                             f"(object changed or truncated?)", name)
        with self._lock:
            self.requests += 1
            self.bytes_fetched += length
        return data


class RangeReader(_CountedGets, io.RawIOBase):
    """A read-only, seekable file object over ``fetch(start, end_inclusive) -> bytes`` of a ``size``-byte
    object, with read-ahead (see the module docstring). ``requests`` / ``bytes_fetched`` count the GETs;
    ``ahead`` > 0 turns on the concurrent read-ahead of a sequential read (``peak_in_flight``: the most GETs
    that were under way at once)."""

    def __init__(self, fetch, size: int, name: str, min_block: int | None = None, max_block: int | None = None,
                 ahead: int = 0, stream_block: int | None = None):
        super().__init__()
        self._fetch, self.size, self.name = fetch, int(size), name
        self.min_block, self.max_block = int(min_block or MIN_BLOCK), int(max_block or MAX_BLOCK)
        self.ahead, self.stream_block = max(0, int(ahead)), int(stream_block or STREAM_BLOCK)
        self._pos = 0
        self._blocks: list[tuple[int, bytes]] = []  # most recent last
        self._next_block = self.min_block
        self._seq_end = -1  # where the last GET ended: a read from here is sequential
        self._origin = -1  # streaming: where block 0 of the window grid starts (-1: not streaming)
        self._window: dict[int, object] = {}  # streaming: block number -> Future of its bytes
        self._pool: ThreadPoolExecutor | None = None
        self._planned: list[tuple[int, int]] = []  # plan_reads: (start, length) pieces the demuxer will read
        self._planned_starts: list[int] = []
        self._pwin: dict[int, object] = {}  # plan_reads: piece number -> Future of its bytes
        self._holes: list[tuple[int, int]] = []  # plan_reads: [start, end) served as zeros, never fetched
        self._hole_starts: list[int] = []
        self.zero_bytes = 0  # bytes served from holes
        self._init_counts()

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

    def _get(self, pos: int, length: int) -> bytes:
        """One GET (any thread), checked and counted."""
        return self._counted_get(self._fetch, pos, length, self.name)

    def _keep(self, pos: int, data: bytes) -> tuple[int, bytes]:
        self._blocks.append((pos, data))
        del self._blocks[:-CACHE_BLOCKS]
        return pos, data

    # ---- concurrent read-ahead (streaming) ----
    def _stream_span(self, k: int) -> tuple[int, int]:
        start = self._origin + k * self.stream_block
        return start, min(self.stream_block, self.size - start)

    def _fill(self, first: int) -> None:
        """Keep blocks first .. first + ahead - 1 requested (those inside the object)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.ahead, thread_name_prefix="s3-read-ahead")
        for k in range(first, first + self.ahead):
            start, length = self._stream_span(k)
            if length <= 0:
                break
            if k not in self._window:
                self._window[k] = self._pool.submit(self._get, start, length)

    # ---- planned reads (the demuxer's sample ranges, known from the container's index) ----
    def plan_reads(self, keep, holes=()) -> None:
        """The byte ranges ``[start, end)`` the demuxer will read next, in order (e.g. samples listed by an MP4's
        index): fetched ahead concurrently, ``ahead`` GETs of at most ``stream_block`` in flight. ``holes``:
        ranges whose content does not matter to the reader (it never decodes them): served as zeros, never
        fetched. Reads elsewhere (the container's own boxes) are fetched as usual."""
        self._stop_streaming()
        pieces = []
        for a, b in _merged(keep, gap=PLANNED_GAP):
            while a < b:
                n = min(self.stream_block, b - a)
                pieces.append((a, n))
                a += n
        self._planned, self._planned_starts = pieces, [a for a, _ in pieces]
        self._holes = _merged(holes)
        self._hole_starts = [a for a, _ in self._holes]
        if pieces:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = ThreadPoolExecutor(max_workers=PLANNED_AHEAD, thread_name_prefix="s3-planned")

    def _hole_end(self, pos: int) -> int | None:
        i = bisect.bisect_right(self._hole_starts, pos) - 1
        if i >= 0 and pos < self._holes[i][1]:
            return self._holes[i][1]
        return None

    def _planned_load(self, pos: int) -> tuple[int, bytes] | None:
        i = bisect.bisect_right(self._planned_starts, pos) - 1
        if i < 0 or pos >= self._planned[i][0] + self._planned[i][1]:
            return None
        for old in [j for j in self._pwin if j < i]:  # passed over: not needed any more
            self._pwin.pop(old).cancel()
        self._pfill(i)
        data = self._pwin.pop(i).result()  # a failed GET raises its InputError here
        self._pfill(i + 1)
        return self._keep(self._planned[i][0], data)

    def _pfill(self, first: int) -> None:
        """Pieces first, first + 1, ... requested: at most PLANNED_AHEAD of them, PLANNED_BYTES together (a
        sample range may be small: more of them are in flight than of a contiguous read's blocks)."""
        held = sum(self._planned[j][1] for j in self._pwin)
        j = first
        while j < len(self._planned) and j - first < PLANNED_AHEAD:
            if j not in self._pwin:
                if held and held + self._planned[j][1] > PLANNED_BYTES:
                    break
                self._pwin[j] = self._pool.submit(self._get, *self._planned[j])
                held += self._planned[j][1]
            j += 1

    def _stop_streaming(self) -> None:
        for fut in self._window.values():
            fut.cancel()  # one already under way finishes in its thread and is dropped
        self._window.clear()
        self._origin = -1

    def _stream_load(self, pos: int) -> tuple[int, bytes] | None:
        """The streamed block holding ``pos`` (waiting for it if needed), or None if pos is outside the window."""
        k = (pos - self._origin) // self.stream_block
        fut = self._window.get(k) if pos >= self._origin else None
        if fut is None:
            return None
        for old in [j for j in self._window if j < k]:  # skipped over: not needed any more
            self._window.pop(old).cancel()
        data = fut.result()  # a failed GET raises its InputError here, in the reader's thread
        del self._window[k]
        self._fill(k + 1)
        self._seq_end = self._stream_span(k)[0] + len(data)
        return self._keep(self._stream_span(k)[0], data)

    def _load(self, pos: int, want: int) -> tuple[int, bytes]:
        if self._planned:
            hit = self._planned_load(pos)
            if hit is not None:
                return hit
            # elsewhere (the container's boxes, samples the index did not list): GETs growing while sequential,
            # never past the next planned range
            self._next_block = (min(self.max_block, self._next_block * 2) if pos == self._seq_end
                                else self.min_block)
            length = min(max(min(want, self.max_block), self._next_block), self.size - pos)
            nxt = bisect.bisect_right(self._planned_starts, pos)
            if nxt < len(self._planned):
                length = max(1, min(length, self._planned[nxt][0] - pos))
            data = self._get(pos, length)
            self._seq_end = pos + length
            return self._keep(pos, data)
        if self._origin >= 0:
            hit = self._stream_load(pos)
            if hit is not None:
                return hit
            self._stop_streaming()  # a jump out of the window
            self._next_block = self.min_block
        if pos == self._seq_end:
            if self.ahead and self._next_block >= self.max_block:  # a long sequential read: stream it
                self._origin = pos
                self._fill(0)
                return self._stream_load(pos)
            self._next_block = min(self.max_block, self._next_block * 2)
        else:
            self._next_block = self.min_block
        length = min(max(min(want, self.max_block), self._next_block), self.size - pos)  # FFmpeg may ask 16 MiB
        data = self._get(pos, length)
        self._seq_end = pos + length
        return self._keep(pos, data)

    def read(self, n: int = -1) -> bytes:
        if self.closed:
            raise ValueError("read from a closed reader")
        if self._pos >= self.size:
            return b""
        if n is None or n < 0:
            n = self.size - self._pos
        if self._holes:
            end = self._hole_end(self._pos)
            if end is not None:
                n = min(n, end - self._pos, self.size - self._pos)
                self._pos += n
                self.zero_bytes += n
                return bytes(n)
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
        self._stop_streaming()
        for fut in self._pwin.values():
            fut.cancel()
        self._pwin.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)  # no thread left (a process may fork next)
            self._pool = None
        self._blocks = []
        super().close()


def _merged(ranges, gap: int = 0) -> list[tuple[int, int]]:
    """Sorted ``[start, end)`` ranges, overlapping ones joined, and those at most ``gap`` bytes apart."""
    out: list[list[int]] = []
    for a, b in sorted((int(a), int(b)) for a, b in ranges if b > a):
        if out and a <= out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _ranged_fetch(client, bucket: str, key: str, extra: dict, url: str):
    """``fetch(start, end_inclusive) -> bytes`` of one object (thread-safe: boto3 clients are)."""
    def fetch(start: int, end: int) -> bytes:
        for attempt in range(GET_ATTEMPTS):
            try:
                body = client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end}", **extra)["Body"]
                return body.read()
            except Exception as e:  # noqa: BLE001
                code = getattr(e, "response", {}).get("Error", {}).get("Code")
                if code or attempt == GET_ATTEMPTS - 1:  # an S3 error answer (already retried by boto3)
                    raise InputError(f"reading bytes {start}-{end} failed ({code or type(e).__name__}: {e})",
                                     url) from None
                time.sleep(0.2 * 2 ** attempt)  # a connection that broke mid-body
        raise AssertionError("unreachable")
    return fetch


def open_s3(url: str, **kw) -> RangeReader:
    """A RangeReader over an s3:// object; InputError naming the object if it is missing or unreadable.
    ``kw``: RangeReader's (``ahead=N``: concurrent read-ahead of a sequential read)."""
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
    get_kw = dict(extra, IfMatch=etag) if etag and not version else extra
    return RangeReader(_ranged_fetch(client, bucket, key, get_kw, url), size, url, **kw)


class Prefetcher(_CountedGets):
    """Whole objects ``(s3 url, size)``, handed out in order by ``get(i)``, fetched ahead with concurrent
    ranged GETs: at most ``budget`` bytes requested and not yet handed out, at most ``workers`` GETs at once.
    An object larger than ``whole_max`` is not fetched (``get`` answers None: read it in place). ``get`` may
    ask for the same object again (the last one is kept) or skip forward, never go back."""

    def __init__(self, objects, budget: int | None = None, whole_max: int | None = None,
                 block: int | None = None, workers: int | None = None):
        from collections import deque

        self.objects = [(u, int(n)) for u, n in objects]
        self.budget, self.whole_max = int(budget or PREFETCH_BYTES), int(whole_max or PREFETCH_WHOLE_MAX)
        self.block = int(block or STREAM_BLOCK)
        self._pool = ThreadPoolExecutor(max_workers=int(workers or STREAM_AHEAD), thread_name_prefix="s3-prefetch")
        self._fetchers: dict[str, object] = {}
        self._queue = deque()  # (object, offset, length, Future), in order
        self._next = (0, 0)  # the next block to request: (object, offset)
        self._buffered = 0
        self._current: tuple[int, bytes | None] = (-1, None)
        self._init_counts()
        self.peak_buffered = 0

    def _fetch(self, url: str, start: int, length: int) -> bytes:
        return self._counted_get(self._fetchers[url], start, length, url)

    def _fill(self) -> None:
        while self._next[0] < len(self.objects):
            i, off = self._next
            url, size = self.objects[i]
            if size > self.whole_max or off >= size:
                self._next = (i + 1, 0)
                continue
            length = min(self.block, size - off)
            if self._buffered and self._buffered + length > self.budget:
                return
            if url not in self._fetchers:
                bucket, key, version = parse_s3_url(url)
                self._fetchers[url] = _ranged_fetch(_client(), bucket, key,
                                                    {"VersionId": version} if version else {}, url)
            self._queue.append((i, off, length, self._pool.submit(self._fetch, url, off, length)))
            self._buffered += length
            self.peak_buffered = max(self.peak_buffered, self._buffered)
            self._next = (i, off + length)

    def get(self, i: int) -> bytes | None:
        if i == self._current[0]:
            return self._current[1]
        if i < self._current[0]:
            raise ValueError(f"object {i} was already passed (at {self._current[0]})")
        self._current = (i, None)
        while self._queue and self._queue[0][0] < i:  # skipped objects
            _, _, length, fut = self._queue.popleft()
            fut.cancel()
            self._buffered -= length
        if self._next[0] < i:
            self._next = (i, 0)
        url, size = self.objects[i]
        if size > self.whole_max:
            self._fill()
            return None
        pieces, got = [], 0
        while got < size:
            if not self._queue or self._queue[0][0] != i:
                self._fill()
            _, _, length, fut = self._queue.popleft()
            self._buffered -= length
            pieces.append(fut.result())  # a failed GET raises its InputError here
            got += length
            self._fill()
        data = b"".join(pieces)
        self._current = (i, data)
        return data

    def close(self) -> None:
        for _, _, _, fut in self._queue:
            fut.cancel()
        self._queue.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._current = (-1, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def size_of(path) -> int:
    """Size in bytes of a local file or an s3:// object."""
    if is_remote(path):
        with open_s3(path) as r:
            return r.size
    return os.path.getsize(path)
