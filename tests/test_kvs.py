"""Kinesis Video Streams in (redactor/kvs.py): the consumer lands every fragment once, as fragment-aligned MP4
chunks, across ListFragments pages, restarts, racing consumers and stream faults.

moto gives the control plane (CreateStream, GetDataEndpoint, DeleteStream) and S3 (conditional writes
enforced); ListFragments and GetClip are answered by tests/kvs_fake.py with real MP4 clips (see its docstring
for what is faked). Time is a fake clock: the lag bound is checked in stream time, not as a timed assertion.
"""
from __future__ import annotations

import json
from fractions import Fraction

import av
import boto3
import pytest
from moto import mock_aws

from redactor import kvs
from tests.kvs_fake import FakeArchivedMedia

RAW, WORK, STREAM = "raw", "work", "cam-1"
T0 = 1_800_000_000.0  # the fake clock's start (s)
FPS = 10
OPTS = kvs.Options(clip_seconds=4, settle_seconds=2, flush_seconds=3, quiet_seconds=20, lease_seconds=30)
POLL = 2.0


class Clock:
    def __init__(self, t: float = T0):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """12 s at 10 fps, a keyframe every second (12 fragments of 1 s), AAC audio."""
    from testmedia import make_clip

    path = tmp_path_factory.mktemp("kvs") / "camera.mp4"
    make_clip(str(path), width=160, height=96, fps=FPS, seconds=12, gop=FPS, bframes=0, audio="aac", faces=0)
    return str(path)


@pytest.fixture
def aws():
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        for b in (RAW, WORK):
            s3.create_bucket(Bucket=b)
        kv = boto3.client("kinesisvideo", region_name="us-east-1")
        kv.create_stream(StreamName=STREAM, DataRetentionInHours=24)
        yield s3, kv


def make(clock, fake, s3, owner, opts=OPTS):
    archive = kvs.Archive(session=boto3.session.Session(region_name="us-east-1"), client_hook=fake.attach)
    return kvs.Consumer(archive, kvs.Store(s3, RAW, WORK), opts, clock=clock, owner=owner)


def run(consumer, clock, until, poll=POLL):
    out = kvs.StepResult(STREAM)
    while clock.t < until:
        out.add(consumer.step(STREAM))
        clock.t += poll
    return out


def chunks(s3):
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=RAW, Prefix=f"live/{STREAM}/").get("Contents", [])]
    return sorted(k for k in keys if k.endswith(".mp4"))


def records(s3):
    resp = s3.list_objects_v2(Bucket=WORK, Prefix=f"kvs/{STREAM}/records/")
    return [json.loads(s3.get_object(Bucket=WORK, Key=o["Key"])["Body"].read()) | {"key": o["Key"]}
            for o in resp.get("Contents", [])]


def assert_partition(s3, fragments):
    """The chunks are 0, 1, 2, ... and their fragment ranges cover the fragments once each, in order."""
    keys = chunks(s3)
    assert keys == [kvs.chunk_key(STREAM, i) for i in range(len(keys))]
    numbers = [f.number for f in fragments]
    covered = []
    for k in keys:
        meta = s3.head_object(Bucket=RAW, Key=k)["Metadata"]
        first, last = numbers.index(int(meta["kvs-first-fragment"])), numbers.index(int(meta["kvs-last-fragment"]))
        assert last - first + 1 == int(meta["kvs-fragments"])
        covered += numbers[first:last + 1]
    assert covered == numbers
    return keys


def frames(s3, key, tmp_path):
    path = tmp_path / key.replace("/", "_")
    path.write_bytes(s3.get_object(Bucket=RAW, Key=key)["Body"].read())
    with av.open(str(path)) as c:
        video = [Fraction(f.pts) * f.time_base for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        audio = sum(1 for p in c.demux(audio=0) if p.size)
    return video, audio


# ---------------------------------------------------------------- pure

def frag(i, length=1000, size=100, producer=None):
    return kvs.Fragment(number=100 + i, server_ms=10_000 + 1000 * i, producer_ms=producer or 10_000 + 1000 * i,
                        length_ms=length, size=size)


def test_clips_are_whole_fragments_cut_by_duration_count_bytes_and_gaps():
    opts = kvs.Options(clip_seconds=4, max_clip_bytes=1000, gap_ms=1000)
    assert [len(c) for c in kvs.cut_clips([frag(i) for i in range(10)], opts)] == [4, 4, 2]
    assert [len(c) for c in kvs.cut_clips([frag(i, length=10) for i in range(450)], opts.__class__(
        clip_seconds=600))] == [200, 200, 50]  # GetClip's 200 fragments
    assert [len(c) for c in kvs.cut_clips([frag(i, size=300) for i in range(5)], opts)] == [3, 2]  # bytes
    gap = [frag(0), frag(1), kvs.Fragment(102, 12_000, 20_000, 1000, 100), frag(3, producer=21_000)]
    assert [[f.number for f in c] for c in kvs.cut_clips(gap, opts)] == [[100, 101], [102, 103]]
    # unordered input (ListFragments does not order) gives the same clips
    assert kvs.cut_clips(list(reversed([frag(i) for i in range(10)])), opts) == kvs.cut_clips(
        [frag(i) for i in range(10)], opts)


def test_the_short_last_clip_waits_for_flush_seconds_without_a_new_fragment():
    opts = kvs.Options(clip_seconds=4, flush_seconds=3)
    fr = [frag(i) for i in range(6)]  # one full clip (4 s) and a 2 s tail ending at 16_000
    ready, held = kvs.ready_clips(fr, opts, hi_ms=18_999)
    assert [len(c) for c in ready] == [4] and [f.number for f in held] == [104, 105]
    ready, held = kvs.ready_clips(fr, opts, hi_ms=19_000)
    assert [len(c) for c in ready] == [4, 2] and held == []


# ---------------------------------------------------------------- following a stream

def test_every_fragment_lands_once_across_pages_and_a_consumer_restart(aws, source, tmp_path):
    """A follows the live stream, dies after writing a chunk but before clearing its claim; B starts after the
    stream ended, takes the claim over after its lease (the chunk is not written twice) and catches up through
    a backlog listed in >= 3 pages."""
    s3, _ = aws
    clock = Clock()
    fake = FakeArchivedMedia(clock, page=3)
    fragments = fake.add_media(STREAM, source, server_start_ms=round(T0 * 1000) + 1237)
    a = make(clock, fake, s3, "A")
    real_save = a.store.save

    def die_after_the_chunk(cursor, etag):
        if cursor.claim is None and chunks(s3):  # the clear after the first chunk was written
            raise RuntimeError("consumer A stopped")
        return real_save(cursor, etag)

    a.store.save = die_after_the_chunk
    with pytest.raises(RuntimeError):
        run(a, clock, T0 + 12)
    assert len(chunks(s3)) == 1  # written, but its claim is still in the cursor
    cursor, _ = kvs.Store(s3, RAW, WORK).load(STREAM)
    assert cursor.claim is not None and cursor.claim.owner == "A"

    clock.t = cursor.claim.claimed_ms / 1000 + 20  # within A's 30 s lease B leaves the stream alone
    b = make(clock, fake, s3, "B")
    assert b.step(STREAM).busy and len(chunks(s3)) == 1
    fake.calls.clear()
    clock.t = T0 + 45
    result = run(b, clock, T0 + 60)
    pages = [c for c in fake.calls if c[0] == "listFragments"]
    first_listing = next(i for i, c in enumerate(pages) if "NextToken" not in c[2])
    listing = [pages[first_listing]] + [c for c in pages[first_listing + 1:] if "NextToken" in c[2]]
    assert len(listing) >= 3, f"the backlog was listed in {len(listing)} pages"
    keys = assert_partition(s3, fragments)
    assert result.landed == keys[1:]  # the taken-over chunk (0) exists already: not landed again
    video = [frames(s3, k, tmp_path) for k in keys]
    assert sum(len(v) for v, _ in video) == 12 * FPS  # every frame once
    assert all(a_ > 0 for _, a_ in video)  # audio kept
    assert [r["error"] for r in records(s3)] == ["StreamQuiet"]  # the stream ended at T0 + 13


def test_racing_consumers_never_fetch_or_land_the_same_range(aws, source):
    """Two consumers poll the same stream in turn; once, B reads the cursor, A changes it, then B writes: B's
    conditional write fails (PreconditionFailed from S3) and B leaves the stream until its next poll."""
    s3, _ = aws
    clock = Clock()
    fake = FakeArchivedMedia(clock)
    fragments = fake.add_media(STREAM, source, server_start_ms=round(T0 * 1000) + 1237)
    a, b = make(clock, fake, s3, "A"), make(clock, fake, s3, "B")
    real_save, raced = b.store.save, []

    def save_after_a(cursor, etag):
        if not raced and cursor.claim is not None:
            raced.append(a.step(STREAM))  # A moves first
        return real_save(cursor, etag)

    b.store.save = save_after_a
    busy = 0
    while clock.t < T0 + 30:
        for c in (b, a):
            busy += c.step(STREAM).busy
        clock.t += 1.0
    assert raced and busy >= 1
    keys = assert_partition(s3, fragments)
    clips = [c for c in fake.calls if c[0] == "getClip"]
    assert len(clips) == len(keys)  # no range fetched twice


def test_lag_bound_in_stream_time(aws, source):
    """Each chunk lands at most settle + poll seconds after the end of its last fragment (a full clip) and
    flush + settle + poll after it (the stream's last, short clip): with clip_seconds, at most
    clip + settle + poll (+ one fragment) after the end of any fragment it holds."""
    s3, _ = aws
    clock = Clock()
    fake = FakeArchivedMedia(clock)
    fragments = fake.add_media(STREAM, source, server_start_ms=round(T0 * 1000) + 1237)
    result = run(make(clock, fake, s3, "A"), clock, T0 + 25)
    assert_partition(s3, fragments)
    assert len(result.lag_ms) == 3  # 4 + 4 + 4 s
    bound = (OPTS.settle_seconds + POLL) * 1000
    assert all(0 < lag <= bound for lag in result.lag_ms), result.lag_ms
    fake.fragments[STREAM] = fragments[:10]  # a stream that stops after 10 s: its last 2 s wait flush_seconds
    s3b = boto3.client("s3", region_name="us-east-1")
    for k in chunks(s3):
        s3b.delete_object(Bucket=RAW, Key=k)
    s3b.delete_object(Bucket=WORK, Key=kvs.cursor_key(STREAM))
    clock.t = T0
    result = run(make(clock, fake, s3, "C"), clock, T0 + 25)
    assert len(result.lag_ms) == 3 and result.lag_ms[-1] <= (OPTS.flush_seconds * 1000 + bound)


def test_a_quiet_stream_is_recorded_once_and_resumes(aws, source):
    s3, _ = aws
    clock = Clock()
    fake = FakeArchivedMedia(clock)
    first = fake.add_media(STREAM, source, server_start_ms=round(T0 * 1000) + 1237)
    consumer = make(clock, fake, s3, "A")
    run(consumer, clock, T0 + 60)  # the stream ended at T0 + 13; quiet after 20 s without a fragment
    quiet = [r for r in records(s3) if r["error"] == "StreamQuiet"]
    assert len(quiet) == 1 and kvs.Store(s3, RAW, WORK).load(STREAM)[0].state == "quiet"
    n = len(chunks(s3))
    second = fake.add_media(STREAM, source, server_start_ms=round((T0 + 70) * 1000))
    run(consumer, clock, T0 + 100)
    assert [r["error"] for r in records(s3)].count("StreamResumed") == 1
    assert len([r for r in records(s3) if r["error"] == "StreamQuiet"]) == 1
    assert len(chunks(s3)) > n
    assert_partition(s3, first + second)


def test_a_deleted_stream_is_recorded_ended_and_no_longer_polled(aws, source):
    s3, kv = aws
    clock = Clock()
    fake = FakeArchivedMedia(clock)
    fake.add_media(STREAM, source, server_start_ms=round(T0 * 1000) + 1237)
    consumer = make(clock, fake, s3, "A")
    run(consumer, clock, T0 + 8)
    landed = chunks(s3)
    arn = kv.describe_stream(StreamName=STREAM)["StreamInfo"]["StreamARN"]
    kv.delete_stream(StreamARN=arn)
    fake.deleted.add(STREAM)
    run(consumer, clock, T0 + 20)
    (rec,) = records(s3)
    assert rec["error"] == "StreamDeleted" and rec["kvs_error"] == "ResourceNotFoundException"
    assert s3.head_object(Bucket=RAW, Key=f"live/{STREAM}/END")  # the playlist's end marker
    fake.calls.clear()
    result = run(consumer, clock, T0 + 30)
    assert result.state == "deleted" and not fake.calls and chunks(s3) == landed


def test_a_clip_kvs_will_not_give_is_a_named_gap_and_a_throttled_one_is_retried(aws, source):
    s3, _ = aws
    clock = Clock()
    fake = FakeArchivedMedia(clock)
    fake.add_media(STREAM, source, server_start_ms=round(T0 * 1000) + 1237)
    fake.fail_clip = ["InvalidMediaFrameException", "ClientLimitExceededException"]
    run(make(clock, fake, s3, "A"), clock, T0 + 25)
    (rec,) = records(s3)
    assert rec["error"] == "ClipFailed" and rec["seq"] == 0 and rec["kvs_error"] == "InvalidMediaFrameException"
    assert rec["key"].endswith("seq-00000000-ClipFailed.json")
    assert chunks(s3) == [kvs.chunk_key(STREAM, i) for i in (1, 2)]  # 0 is a gap; 1 landed on its 2nd try


def test_a_lost_cursor_numbers_chunks_after_the_last_one_in_the_raw_bucket(aws, source):
    s3, _ = aws
    s3.put_object(Bucket=RAW, Key=kvs.chunk_key(STREAM, 41), Body=b"old")
    clock = Clock()
    fake = FakeArchivedMedia(clock)
    fake.add_media(STREAM, source, server_start_ms=round(T0 * 1000) + 1237)
    run(make(clock, fake, s3, "A"), clock, T0 + 12)
    assert chunks(s3)[:2] == [kvs.chunk_key(STREAM, 41), kvs.chunk_key(STREAM, 42)]
    assert s3.get_object(Bucket=RAW, Key=kvs.chunk_key(STREAM, 41))["Body"].read() == b"old"


def test_stream_names_and_options_are_checked():
    with pytest.raises(ValueError):
        kvs.check_stream_name("../other")
    with pytest.raises(ValueError):
        kvs.Options(max_clip_bytes=200 * 1024 * 1024)
    opts = kvs.Options.from_env({"KVS_CLIP_SECONDS": "6", "KVS_MAX_CLIP_BYTES": "1000", "OTHER": "x"})
    assert opts.clip_seconds == 6.0 and opts.max_clip_bytes == 1000


# ---------------------------------------------------------------- the Lambda

def test_lambda_follows_the_streams_in_its_parameter(aws, source, monkeypatch):
    """The scheduled handler reads the stream list from SSM (changed without a deploy), polls each stream
    until its run budget is spent (here once: the poll period is longer than the budget) and reports what it
    landed; ``-`` follows nothing."""
    import time

    from tests import aws_support

    s3, _ = aws
    ssm = boto3.client("ssm", region_name="us-east-1")
    ssm.put_parameter(Name="/redactor/kvs-streams", Type="String", Value=f" {STREAM} ,{STREAM}")
    for k, v in {"RAW_BUCKET": RAW, "WORK_BUCKET": WORK, "KVS_STREAMS_PARAMETER": "/redactor/kvs-streams",
                 "KVS_RUN_SECONDS": "20", "KVS_POLL_SECONDS": "30", "KVS_CLIP_SECONDS": "4", "KVS_BACKFILL_SECONDS": "60"}.items():
        monkeypatch.setenv(k, v)
    handler = aws_support.load_handler("kvs_consumer")
    from common import s3 as common_s3

    common_s3.reset_client()
    fake = FakeArchivedMedia(time.time)
    fake.add_media(STREAM, source, server_start_ms=round(time.time() * 1000) - 40_000)
    monkeypatch.setattr(handler, "make_archive", lambda: kvs.Archive(client_hook=fake.attach))
    out = handler.handler({}, aws_support.FakeContext("kvs_consumer"))
    assert out["streams"][STREAM]["landed"] == [kvs.chunk_key(STREAM, i) for i in range(3)]
    assert chunks(s3) == out["streams"][STREAM]["landed"]
    ssm.put_parameter(Name="/redactor/kvs-streams", Type="String", Value="-", Overwrite=True)
    fake.calls.clear()
    assert handler.handler({}, aws_support.FakeContext("kvs_consumer")) == {"streams": {}} and not fake.calls
    ssm.put_parameter(Name="/redactor/kvs-streams", Type="String", Value="../x", Overwrite=True)
    with pytest.raises(ValueError, match="not a Kinesis Video stream name"):
        handler.handler({}, aws_support.FakeContext("kvs_consumer"))


def test_a_poll_claims_no_new_clip_after_the_deadline(aws, source):
    """Catching up through a backlog, a poll stops claiming clips at the invocation's deadline; the next poll
    (or invocation) goes on from the first clip not claimed."""
    s3, _ = aws
    clock = Clock()
    fake = FakeArchivedMedia(clock)
    fragments = fake.add_media(STREAM, source, server_start_ms=round(T0 * 1000) + 1237)
    consumer = make(clock, fake, s3, "A", kvs.Options(clip_seconds=4, settle_seconds=2, backfill_seconds=5))
    consumer.step(STREAM)  # the cursor, from T0 - 5 s
    clock.t = T0 + 30  # the whole stream is there: 3 clips to take
    real_put = consumer.store.put_chunk

    def slow_put(*args):
        clock.t += 10  # each clip takes 10 s to land
        return real_put(*args)

    consumer.store.put_chunk = slow_put
    consumer.deadline = clock.t + 5
    assert len(consumer.step(STREAM).landed) == 1
    consumer.deadline = clock.t + 5
    assert len(consumer.step(STREAM).landed) == 1
    consumer.deadline = float("inf")
    assert len(consumer.step(STREAM).landed) == 1
    assert_partition(s3, fragments)


def test_a_stream_the_role_may_not_read_is_recorded_once_and_followed_when_it_may(aws, source):
    s3, _ = aws
    clock = Clock()
    fake = FakeArchivedMedia(clock)
    fragments = fake.add_media(STREAM, source, server_start_ms=round(T0 * 1000) + 1237)
    fake.denied.add(STREAM)
    consumer = make(clock, fake, s3, "A")
    result = run(consumer, clock, T0 + 10)
    assert result.state == "denied" and [r["error"] for r in records(s3)] == ["StreamNotPermitted"]
    assert not chunks(s3)
    fake.denied.clear()  # the policy is fixed: the next poll reads the stream, from where the cursor was
    run(consumer, clock, T0 + 30)
    assert sorted(r["error"] for r in records(s3)) == ["StreamNotPermitted", "StreamResumed"]
    assert_partition(s3, fragments)


def test_ranges_go_out_to_the_millisecond_with_a_botocore_that_sends_whole_seconds(aws, source, tmp_path,
                                                                                   monkeypatch):
    """botocore before 1.40-something serialized epoch-second timestamps as whole seconds (boto/botocore#3255):
    GetClip would then start a clip up to a second early and end it up to a second early. The Archive writes
    the exact values into the request; every frame lands once with such a serializer too."""
    import calendar

    import botocore.serialize

    monkeypatch.setattr(botocore.serialize.Serializer, "_timestamp_unixtimestamp",
                        lambda self, value: int(calendar.timegm(value.timetuple())))
    s3, _ = aws
    clock = Clock()
    fake = FakeArchivedMedia(clock)
    fragments = fake.add_media(STREAM, source, server_start_ms=round(T0 * 1000) + 1600)
    run(make(clock, fake, s3, "A"), clock, T0 + 30)
    keys = assert_partition(s3, fragments)
    assert sum(len(frames(s3, k, tmp_path)[0]) for k in keys) == 12 * FPS
    clips = [c[2]["ClipFragmentSelector"]["TimestampRange"] for c in fake.calls if c[0] == "getClip"]
    assert all(round(r["StartTimestamp"] * 1000) % 1000 == 600 for r in clips)
