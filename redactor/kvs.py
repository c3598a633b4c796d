"""Kinesis Video Streams in: follow KVS streams and land fragment-aligned MP4 clips as live chunks.

For each followed stream the consumer lists the stream's fragments by server timestamp (``ListFragments``,
paginated, sorted here because KVS does not order them), cuts them into clips of whole fragments (about
``clip_seconds`` each, at most 200 fragments and ``max_clip_bytes``, cut at a gap in the producer's timeline),
fetches each clip as one MP4 (``GetClip`` over the clip's first..last server timestamp, both inclusive) and
writes it to the raw bucket as ``live/<stream>/<seq>.mp4`` (``seq``: 0, 1, 2, ... zero-padded to 8 digits), the
chunk the live path redacts.

Nothing is skipped or taken twice. Each stream has one cursor object in the work bucket
(``kvs/<stream>/cursor.json``): the last fragment taken, the next sequence number, the stream's state, and the
clip being landed (the claim). Every change of the cursor is a conditional write (``IfNoneMatch="*"`` to create,
``IfMatch=<ETag>`` to update): a consumer first claims a clip (advancing the cursor past it), then fetches and
writes it (``IfNoneMatch="*"``: a chunk is never replaced), then clears the claim. A consumer that loses a write
race stops working on that stream until its next poll; a claim left by a consumer that stopped half-way is taken
over after ``lease_seconds`` and landed again under the same key (the existing chunk wins), so a restart in the
middle neither skips the clip nor lands it twice.

A fragment is only taken once its server timestamp is ``settle_seconds`` old (ListFragments is eventually
consistent: KVS says results are typically there within a second of the fragment being persisted, which is
the end of the fragment). The last clip of a listing is landed when it is full, or when the stream has had no
new fragment for ``flush_seconds`` (a paused or ended stream does not hold its last seconds back).

Per-stream records (JSON, ``kvs/<stream>/records/``), each named by its ``error``: ``StreamQuiet`` (no
fragment for ``quiet_seconds``; ``StreamResumed`` when fragments come again), ``StreamDeleted`` (the stream is
gone: the consumer stops following it and writes the stream's end marker ``live/<stream>/END``),
``StreamNotPermitted`` (the consumer's role may not read it; it is tried again every poll, and
``StreamResumed`` follows when it can be read), ``ClipFailed`` (a claimed clip KVS will not
give: its sequence number is then a gap, never re-used).

The AWS calls are behind two small classes (``Archive`` for KVS, ``Store`` for S3) so tests can give real MP4
clips from a fake archived-media endpoint.
"""
from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

CHUNK_PREFIX = "live/"
CURSOR_PREFIX = "kvs/"
END_MARKER = "END"
MAX_CLIP_FRAGMENTS = 200  # GetClip's limit
GETCLIP_BYTES = 100 * 1024 * 1024  # GetClip's limit on a clip's media
LIST_PAGE = 1000  # ListFragments' MaxResults upper limit
STREAM_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,256}$")
SEQ_DIGITS = 8
# GetClip errors that will not go away by retrying the same range: the clip becomes a gap (ClipFailed)
PERMANENT_CLIP_ERRORS = frozenset({
    "ResourceNotFoundException", "NoDataRetentionException", "UnsupportedStreamMediaTypeException",
    "MissingCodecPrivateDataException", "InvalidCodecPrivateDataException", "InvalidMediaFrameException",
    "InvalidArgumentException"})
DENIED = frozenset({"AccessDeniedException", "NotAuthorizedException", "AccessDenied"})


class KvsError(Exception):
    """A KVS call failed; ``code`` is AWS's error code (e.g. ``ResourceNotFoundException``)."""

    def __init__(self, code: str, message: str = ""):
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code


class Conflict(Exception):
    """A conditional write lost: another consumer changed the cursor (or the chunk exists)."""


@dataclass(frozen=True)
class Fragment:
    number: int  # KVS's fragment number: increases with ingestion order
    server_ms: int  # server timestamp (start of the fragment), ms since the epoch
    producer_ms: int
    length_ms: int
    size: int

    @classmethod
    def from_api(cls, d: dict) -> "Fragment":
        return cls(number=int(d["FragmentNumber"]), server_ms=_ms(d["ServerTimestamp"]),
                   producer_ms=_ms(d["ProducerTimestamp"]), length_ms=int(d.get("FragmentLengthInMilliseconds", 0)),
                   size=int(d.get("FragmentSizeInBytes", 0)))


def _ms(value: Any) -> int:
    if isinstance(value, datetime):
        return round(value.timestamp() * 1000)
    return round(float(value) * 1000)


def to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms // 1000, tz=timezone.utc).replace(microsecond=ms % 1000 * 1000)


@dataclass(frozen=True)
class Options:
    clip_seconds: float = 10.0  # a clip is cut once its fragments cover this much
    settle_seconds: float = 5.0  # a fragment is taken once its server timestamp is this old
    flush_seconds: float = 10.0  # a short last clip is landed after this without a new fragment
    quiet_seconds: float = 60.0  # no fragment for this long: a StreamQuiet record
    lease_seconds: float = 30.0  # another consumer's unfinished claim is taken over after this
    backfill_seconds: float = 0.0  # a stream followed for the first time starts this far before now
    list_window_seconds: float = 600.0  # one poll lists at most this span of server time (catching up)
    max_clip_bytes: int = 90 * 1024 * 1024  # fragment bytes per clip (GetClip allows 100 MB of media)
    gap_ms: int = 1000  # a jump in producer time larger than this between fragments starts a new clip

    def __post_init__(self):
        if not 0 < self.clip_seconds <= 600:
            raise ValueError("clip_seconds must be in (0, 600]")
        if self.settle_seconds < 0 or self.flush_seconds < 0 or self.quiet_seconds <= 0:
            raise ValueError("settle_seconds and flush_seconds must be >= 0, quiet_seconds > 0")
        if not 0 < self.max_clip_bytes <= GETCLIP_BYTES:
            raise ValueError(f"max_clip_bytes must be in (0, {GETCLIP_BYTES}]")

    @classmethod
    def from_env(cls, env: dict[str, str]) -> "Options":
        names = {f"KVS_{n.upper()}": n for n in cls.__dataclass_fields__}
        kwargs = {}
        for var, name in names.items():
            if env.get(var):
                kind = type(getattr(cls, name))
                kwargs[name] = kind(float(env[var])) if kind is int else kind(env[var])
        return cls(**kwargs)


@dataclass(frozen=True)
class Claim:
    """The clip a consumer is landing: sequence number, its fragments' range, who claimed it and when."""
    seq: int
    first_ms: int
    last_ms: int
    first_fragment: str
    last_fragment: str
    fragments: int
    duration_ms: int
    owner: str
    claimed_ms: int
    last_length_ms: int = 0
    attempts: int = 0


@dataclass(frozen=True)
class Cursor:
    stream: str
    next_seq: int
    from_ms: int  # the next listing starts here (inclusive)
    after_fragment: str = "0"  # the last fragment taken (fragments numbered up to it are done)
    seen_ms: int = 0  # end (server time) of the newest fragment seen
    state: str = "following"  # following | quiet | deleted | denied
    claim: Claim | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Cursor":
        claim = d.get("claim")
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__ and k != "claim"}
        return cls(**known, claim=Claim(**claim) if claim else None)


def check_stream_name(name: str) -> str:
    if not isinstance(name, str) or not STREAM_NAME.match(name):
        raise ValueError(f"{name!r} is not a Kinesis Video stream name ([A-Za-z0-9_.-], 1-256 characters)")
    return name


def chunk_key(stream: str, seq: int) -> str:
    return f"{CHUNK_PREFIX}{stream}/{seq:0{SEQ_DIGITS}d}.mp4"


def cursor_key(stream: str) -> str:
    return f"{CURSOR_PREFIX}{stream}/cursor.json"


def record_key(stream: str, name: str, ident: str) -> str:
    """``kvs/<stream>/records/<ident>-<name>.json``: ident is ``seq-<seq>`` for a clip, the time (ms) for the
    stream."""
    return f"{CURSOR_PREFIX}{stream}/records/{ident}-{name}.json"


def chunk_seq(key: str, stream: str) -> int | None:
    """The sequence number of ``live/<stream>/<digits>.mp4``, else None."""
    m = re.fullmatch(re.escape(f"{CHUNK_PREFIX}{stream}/") + r"(\d+)\.mp4", key)
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------- clips (pure)

def cut_clips(fragments: Iterable[Fragment], opts: Options) -> list[list[Fragment]]:
    """Consecutive runs of fragments (sorted by ingestion), each closed once it covers ``clip_seconds``, reaches
    200 fragments or ``max_clip_bytes``, or before a gap in producer time. The last run may be short."""
    clips: list[list[Fragment]] = []
    run: list[Fragment] = []
    for f in sorted(fragments, key=lambda f: (f.number, f.server_ms)):
        if run:
            prev = run[-1]
            gap = f.producer_ms - (prev.producer_ms + prev.length_ms)
            if (abs(gap) > opts.gap_ms or len(run) >= MAX_CLIP_FRAGMENTS
                    or sum(x.size for x in run) + f.size > opts.max_clip_bytes):
                clips.append(run)
                run = []
        run.append(f)
        if sum(x.length_ms for x in run) >= opts.clip_seconds * 1000:
            clips.append(run)
            run = []
    if run:
        clips.append(run)
    return clips


def is_full(clip: list[Fragment], opts: Options) -> bool:
    return (sum(f.length_ms for f in clip) >= opts.clip_seconds * 1000 or len(clip) >= MAX_CLIP_FRAGMENTS
            or sum(f.size for f in clip) >= opts.max_clip_bytes)


def ready_clips(fragments: list[Fragment], opts: Options, hi_ms: int) -> tuple[list[list[Fragment]], list[Fragment]]:
    """(clips to land now, the fragments held back). Every clip but the last is ready; the last too when it is
    full, or when the listing (complete up to ``hi_ms``) shows no fragment for ``flush_seconds`` after it (the
    stream paused or stopped: its last seconds are not held back)."""
    clips = cut_clips(fragments, opts)
    if not clips:
        return [], []
    last = clips[-1]
    end_ms = last[-1].server_ms + last[-1].length_ms
    if is_full(last, opts) or hi_ms - end_ms >= opts.flush_seconds * 1000:
        return clips, []
    return clips[:-1], last


# ---------------------------------------------------------------- AWS adapters

class Archive:
    """KVS through boto3: GetDataEndpoint (control plane), ListFragments and GetClip (archived media).

    Timestamps go out to the millisecond, whatever the botocore: older botocore releases serialize epoch-second
    timestamps as whole seconds (boto/botocore#3255, exactly these two calls), which would make GetClip's range
    start up to a second early (the previous clip's last fragment again) and end up to a second early (the
    clip's last fragment missing). A ``before-call`` handler writes the exact values into the serialized
    request."""

    def __init__(self, session=None, client_hook: Callable | None = None):
        import boto3

        self.session = session or boto3.session.Session()
        self.client_hook = client_hook  # tests: called with each archived-media client made
        self._kv = None
        self._media: dict[tuple[str, str], Any] = {}
        self._range_ms: tuple[int, int] | None = None  # the range of the call being made

    def _exact_range(self, params, **_):
        """before-call: the request's TimestampRange to the millisecond (self._range_ms)."""
        if self._range_ms is None or not params.get("body"):
            return
        body = json.loads(params["body"])
        for selector in ("FragmentSelector", "ClipFragmentSelector"):
            rng = (body.get(selector) or {}).get("TimestampRange")
            if rng is not None:
                rng["StartTimestamp"], rng["EndTimestamp"] = (ms / 1000 for ms in self._range_ms)
        params["body"] = json.dumps(body).encode()

    def _call(self, fn, **kw):
        from botocore.exceptions import ClientError

        try:
            return fn(**kw)
        except ClientError as e:
            err = e.response.get("Error", {})
            raise KvsError(err.get("Code") or "ClientError", err.get("Message", "")) from None

    def media(self, stream: str, api: str):
        if (stream, api) not in self._media:
            if self._kv is None:
                self._kv = self.session.client("kinesisvideo")
            endpoint = self._call(self._kv.get_data_endpoint, StreamName=stream, APIName=api)["DataEndpoint"]
            client = self.session.client("kinesis-video-archived-media", endpoint_url=endpoint)
            client.meta.events.register("before-call.kinesis-video-archived-media", self._exact_range)
            if self.client_hook:
                self.client_hook(client)
            self._media[(stream, api)] = client
        return self._media[(stream, api)]

    def exists(self, stream: str) -> bool:
        self._media = {k: v for k, v in self._media.items() if k[0] != stream}
        try:
            self.media(stream, "LIST_FRAGMENTS")
        except KvsError as e:
            if e.code == "ResourceNotFoundException":
                return False
            raise
        return True

    def list_fragments(self, stream: str, start_ms: int, end_ms: int) -> list[Fragment]:
        client = self.media(stream, "LIST_FRAGMENTS")
        selector = {"FragmentSelectorType": "SERVER_TIMESTAMP",
                    "TimestampRange": {"StartTimestamp": to_datetime(start_ms), "EndTimestamp": to_datetime(end_ms)}}
        out, token = [], None
        self._range_ms = (start_ms, end_ms)
        try:
            while True:
                kw = {"NextToken": token} if token else {"FragmentSelector": selector}
                page = self._call(client.list_fragments, StreamName=stream, MaxResults=LIST_PAGE, **kw)
                out += [Fragment.from_api(f) for f in page.get("Fragments", [])]
                token = page.get("NextToken")
                if not token:
                    return out
        finally:
            self._range_ms = None

    def get_clip(self, stream: str, first_ms: int, last_ms: int) -> bytes:
        client = self.media(stream, "GET_CLIP")
        end_ms = last_ms if last_ms > first_ms else first_ms + 1  # EndTimestamp must be later than the start
        selector = {"FragmentSelectorType": "SERVER_TIMESTAMP",
                    "TimestampRange": {"StartTimestamp": to_datetime(first_ms), "EndTimestamp": to_datetime(end_ms)}}
        self._range_ms = (first_ms, end_ms)
        try:
            resp = self._call(client.get_clip, StreamName=stream, ClipFragmentSelector=selector)
        finally:
            self._range_ms = None
        return resp["Payload"].read()


class Store:
    """S3: the cursors and records (work bucket) and the chunks (raw bucket), every write conditional."""

    def __init__(self, s3, raw_bucket: str, work_bucket: str):
        self.s3, self.raw, self.work = s3, raw_bucket, work_bucket

    def _precondition(self, e) -> bool:
        return e.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict", "412")

    def load(self, stream: str) -> tuple[Cursor | None, str | None]:
        try:
            obj = self.s3.get_object(Bucket=self.work, Key=cursor_key(stream))
        except self.s3.exceptions.NoSuchKey:
            return None, None
        return Cursor.from_dict(json.loads(obj["Body"].read())), obj["ETag"]

    def save(self, cursor: Cursor, etag: str | None) -> str:
        """Write the cursor if it is still the version read (``etag``; None: only if there is none)."""
        from botocore.exceptions import ClientError

        cond = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            resp = self.s3.put_object(Bucket=self.work, Key=cursor_key(cursor.stream), ContentType="application/json",
                                      Body=json.dumps(cursor.to_dict(), separators=(",", ":")).encode(), **cond)
        except ClientError as e:
            if self._precondition(e):
                raise Conflict(cursor.stream) from None
            raise
        return resp["ETag"]

    def put_chunk(self, key: str, body: bytes, metadata: dict[str, str]) -> bool:
        """Write a chunk unless the key exists. True if written, False if it was already there."""
        from botocore.exceptions import ClientError

        try:
            self.s3.put_object(Bucket=self.raw, Key=key, Body=body, ContentType="video/mp4", Metadata=metadata,
                               IfNoneMatch="*")
        except ClientError as e:
            if self._precondition(e):
                return False
            raise
        return True

    def last_seq(self, stream: str) -> int | None:
        """The highest sequence number among the stream's chunks in the raw bucket (a lost cursor resumes after
        it, so a new chunk never lands under an old chunk's key)."""
        best = None
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.raw,
                                                                   Prefix=f"{CHUNK_PREFIX}{stream}/")
        for page in pages:
            for obj in page.get("Contents", []):
                seq = chunk_seq(obj["Key"], stream)
                if seq is not None and (best is None or seq > best):
                    best = seq
        return best

    def record(self, stream: str, name: str, ident: str, detail: dict) -> str:
        key = record_key(stream, name, ident)
        body = {"error": name, "stream": stream, **detail}
        self.s3.put_object(Bucket=self.work, Key=key, Body=json.dumps(body, indent=1).encode(),
                           ContentType="application/json")
        return key

    def end_marker(self, stream: str) -> None:
        self.put_chunk(f"{CHUNK_PREFIX}{stream}/{END_MARKER}", b"", {"reason": "kvs-stream-deleted"})


# ---------------------------------------------------------------- the consumer

@dataclass
class StepResult:
    stream: str
    landed: list[str] = field(default_factory=list)  # chunk keys written
    records: list[str] = field(default_factory=list)
    lag_ms: list[int] = field(default_factory=list)  # per landed clip: landing time - end of its last fragment
    state: str = "following"
    busy: bool = False  # another consumer holds this stream's claim, or won a cursor write
    errors: list[str] = field(default_factory=list)  # failed polls (tried again at the next poll)

    def add(self, other: "StepResult") -> None:
        self.landed += other.landed
        self.records += other.records
        self.lag_ms += other.lag_ms
        self.errors += other.errors
        self.state, self.busy = other.state, other.busy


class Consumer:
    """Follows streams: ``step(stream)`` does one poll of one stream; ``follow(streams, deadline)`` polls them
    all every ``poll_seconds`` until ``deadline`` (time.time())."""

    def __init__(self, archive: Archive, store: Store, opts: Options | None = None,
                 clock: Callable[[], float] = time.time, owner: str | None = None):
        self.archive, self.store = archive, store
        self.opts = opts or Options()
        self.clock = clock
        self.owner = owner or uuid.uuid4().hex[:12]
        self.deadline = float("inf")  # no new clip is claimed after this (time.time()); follow() sets it

    def now_ms(self) -> int:
        return round(self.clock() * 1000)

    def follow(self, streams: list[str], deadline: float, poll_seconds: float = 2.0,
               sleep: Callable[[float], None] = time.sleep) -> dict[str, StepResult]:
        totals = {s: StepResult(s) for s in streams}
        self.deadline = deadline
        while True:
            for s in streams:
                try:
                    totals[s].add(self.step(s))
                except Exception as e:  # noqa: BLE001 - one stream's failure must not stop the others
                    totals[s].errors.append(f"{type(e).__name__}: {e}")
            if self.clock() + poll_seconds >= deadline:
                return totals
            sleep(poll_seconds)

    def step(self, stream: str) -> StepResult:
        check_stream_name(stream)
        result = StepResult(stream)
        try:
            cur, etag = self._cursor(stream)
            result.state = cur.state
            if cur.state == "deleted":
                return result
            if cur.claim is not None:
                cur, etag = self._finish_claim(cur, etag, result)
                if cur is None:
                    return result
            self._poll(cur, etag, result)
        except Conflict:
            result.busy = True
        return result

    def _cursor(self, stream: str) -> tuple[Cursor, str]:
        cur, etag = self.store.load(stream)
        if cur is not None:
            return cur, etag
        now = self.now_ms()
        last = self.store.last_seq(stream)
        cur = Cursor(stream=stream, next_seq=0 if last is None else last + 1,
                     from_ms=now - round(self.opts.backfill_seconds * 1000), seen_ms=now)
        return cur, self.store.save(cur, None)

    def _poll(self, cur: Cursor, etag: str, result: StepResult) -> None:
        now = self.now_ms()
        settled = now - round(self.opts.settle_seconds * 1000)
        hi = min(settled, cur.from_ms + round(self.opts.list_window_seconds * 1000))
        if hi <= cur.from_ms:
            return
        try:
            listed = self.archive.list_fragments(cur.stream, cur.from_ms, hi)
        except KvsError as e:
            self._stream_error(cur, etag, e, result)
            return
        fresh = sorted((f for f in listed if f.number > int(cur.after_fragment) and cur.from_ms <= f.server_ms <= hi),
                       key=lambda f: f.number)
        cur, etag = self._track_activity(cur, etag, fresh, now, result)
        ready, held = ready_clips(fresh, self.opts, hi)
        for n, clip in enumerate(ready):
            if self.clock() >= self.deadline:  # the rest waits for the next poll (this one's time is up)
                held = [f for c in ready[n:] for f in c] + held
                break
            cur, etag = self._claim(cur, etag, clip)
            cur, etag = self._finish_claim(cur, etag, result)
            if cur is None:
                return
        if hi < settled:  # catching up: the next listing starts at the first fragment not taken yet
            start = held[0].server_ms if held else hi + 1
            if start > cur.from_ms:
                etag = self.store.save(replace(cur, from_ms=start), etag)

    def _track_activity(self, cur: Cursor, etag: str, fresh: list[Fragment], now: int,
                        result: StepResult) -> tuple[Cursor, str]:
        """StreamQuiet once no fragment came for ``quiet_seconds``; StreamResumed when one comes again. The
        newest fragment seen is kept in memory and saved with the next cursor write."""
        if fresh:
            seen = max(cur.seen_ms, max(f.server_ms + f.length_ms for f in fresh))
            was = cur.state
            cur = replace(cur, seen_ms=seen, state="following")
            if was in ("quiet", "denied"):
                etag = self.store.save(cur, etag)
                result.records.append(self.store.record(cur.stream, "StreamResumed", str(now), {
                    "at_ms": now, "first_fragment_ms": min(f.server_ms for f in fresh)}))
        elif cur.state == "following" and now - cur.seen_ms >= self.opts.quiet_seconds * 1000:
            cur = replace(cur, state="quiet")
            etag = self.store.save(cur, etag)  # first: only the consumer that wins the write records it
            result.records.append(self.store.record(cur.stream, "StreamQuiet", str(now), {
                "at_ms": now, "last_fragment_end_ms": cur.seen_ms, "quiet_seconds": self.opts.quiet_seconds,
                "message": f"no fragment for {(now - cur.seen_ms) / 1000:.0f} s; still followed"}))
        result.state = cur.state
        return cur, etag

    def _claim(self, cur: Cursor, etag: str, clip: list[Fragment]) -> tuple[Cursor, str]:
        first, last = clip[0], clip[-1]
        claim = Claim(seq=cur.next_seq, first_ms=first.server_ms, last_ms=last.server_ms,
                      first_fragment=str(first.number), last_fragment=str(last.number), fragments=len(clip),
                      duration_ms=sum(f.length_ms for f in clip), owner=self.owner, claimed_ms=self.now_ms(),
                      last_length_ms=last.length_ms)
        cur = replace(cur, claim=claim, next_seq=cur.next_seq + 1, after_fragment=str(last.number),
                      from_ms=last.server_ms + 1)
        return cur, self.store.save(cur, etag)

    def _finish_claim(self, cur: Cursor, etag: str, result: StepResult) -> tuple[Cursor | None, str | None]:
        """Land the claimed clip (unless another consumer holds it within its lease) and clear the claim.
        Returns (None, None) when this consumer should leave the stream until its next poll."""
        claim = cur.claim
        now = self.now_ms()
        if claim.owner != self.owner and now - claim.claimed_ms < self.opts.lease_seconds * 1000:
            result.busy = True
            return None, None
        if claim.owner != self.owner:  # take the claim over: only one consumer may
            claim = replace(claim, owner=self.owner, claimed_ms=now)
            cur = replace(cur, claim=claim)
            etag = self.store.save(cur, etag)
        try:
            body = self.archive.get_clip(cur.stream, claim.first_ms, claim.last_ms)
        except KvsError as e:
            return self._clip_error(cur, etag, e, result)
        meta = {"kvs-stream": cur.stream, "kvs-first-fragment": claim.first_fragment,
                "kvs-last-fragment": claim.last_fragment, "kvs-fragments": str(claim.fragments),
                "kvs-duration-ms": str(claim.duration_ms)}
        key = chunk_key(cur.stream, claim.seq)
        if self.store.put_chunk(key, body, meta):
            result.landed.append(key)
            result.lag_ms.append(self.now_ms() - (claim.last_ms + claim.last_length_ms))
        cur = replace(cur, claim=None)
        return cur, self.store.save(cur, etag)

    def _clip_error(self, cur: Cursor, etag: str, e: KvsError, result: StepResult):
        """A transient error leaves the claim for the next poll (at most 5 attempts); a permanent one, or the
        5th, makes the clip a gap with a ClipFailed record (StreamDeleted if the stream is gone)."""
        claim = cur.claim
        if e.code not in PERMANENT_CLIP_ERRORS and claim.attempts + 1 < 5:
            self.store.save(replace(cur, claim=replace(claim, attempts=claim.attempts + 1)), etag)
            result.errors.append(str(e))
            return None, None
        if e.code == "ResourceNotFoundException" and not self.archive.exists(cur.stream):
            self._stream_error(cur, etag, e, result)
            return None, None
        result.records.append(self.store.record(cur.stream, "ClipFailed", f"seq-{claim.seq:0{SEQ_DIGITS}d}", {
            "seq": claim.seq, "chunk": chunk_key(cur.stream, claim.seq), "kvs_error": e.code, "message": str(e),
            "fragments": [claim.first_fragment, claim.last_fragment], "server_ms": [claim.first_ms, claim.last_ms],
            "attempts": claim.attempts + 1}))
        cur = replace(cur, claim=None)
        return cur, self.store.save(cur, etag)

    def _stream_error(self, cur: Cursor, etag: str, e: KvsError, result: StepResult) -> None:
        """The stream is gone (StreamDeleted: it is no longer followed and its end marker is written) or not
        readable (StreamNotPermitted); any other error is raised (the next poll tries again)."""
        if e.code == "ResourceNotFoundException" and self.archive.exists(cur.stream):
            raise e  # the stream is there: a passing answer
        if e.code == "ResourceNotFoundException":
            state, name = "deleted", "StreamDeleted"
        elif e.code in DENIED:
            state, name = "denied", "StreamNotPermitted"
        else:
            raise e
        result.state = state
        if cur.state == state:  # recorded when it started
            return
        now = self.now_ms()
        self.store.save(replace(cur, state=state, claim=None), etag)
        if state == "deleted":
            self.store.end_marker(cur.stream)
        result.records.append(self.store.record(cur.stream, name, str(now), {
            "at_ms": now, "kvs_error": e.code, "message": str(e), "next_seq": cur.next_seq,
            "unlanded_clip": asdict(cur.claim) if cur.claim else None}))
