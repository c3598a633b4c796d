"""S3 sources read in place (redactor.remote) against moto in server mode: real HTTP range requests, and the
bytes the server really sent counted per object."""
from __future__ import annotations

import json
import os
import tempfile
import threading
import time

import pytest

from redactor import remote
from redactor.errors import InputError
from tests.moto_server import _moto_server_session, moto_server  # noqa: F401  (fixtures)
from tests import aws_support  # noqa: F401,E402  (puts lambdas/ on the path)
# lambdas/common, imported while collecting: a test run later puts bench/ (which has a common.py too) first on
# the path (tests/test_cloud_model.py loads bench/cloud.py)
from common import s3 as common_s3  # noqa: E402

pytest.importorskip("moto")
BUCKET = "io-test"


@pytest.fixture
def s3(moto_server):  # noqa: F811
    client = moto_server.client("s3")
    client.create_bucket(Bucket=BUCKET)
    remote.reset()  # the reader's client is made after AWS_ENDPOINT_URL points at the server
    yield client
    remote.reset()


def test_reader_fetches_only_the_ranges_asked_for(s3, moto_server):  # noqa: F811
    data = os.urandom(3 * 1024 * 1024 + 17)
    key = "dir/a file+name.bin"  # characters that need quoting
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    url = remote.s3_url(BUCKET, key)
    assert remote.parse_s3_url(url) == (BUCKET, key, None)

    moto_server.reset_log()
    with remote.open_s3(url) as r:
        assert r.size == len(data)
        r.seek(2_000_000)
        assert r.read(1000) == data[2_000_000:2_001_000]
        r.seek(-10, os.SEEK_END)
        assert r.read() == data[-10:]
    sent = moto_server.bytes_read(BUCKET, key)
    assert sent <= 2 * remote.MIN_BLOCK, sent  # two small ranged GETs, not the object
    ranges = [q.range for q in moto_server.requests(BUCKET, key, "GET")]
    assert len(ranges) == 2 and all(rg and rg.startswith("bytes=") for rg in ranges), ranges

    # a sequential read gets everything right with growing read-ahead (few requests), nothing fetched twice
    moto_server.reset_log()
    with remote.open_s3(url) as r:
        chunks = []
        while True:
            b = r.read(32 * 1024)
            if not b:
                break
            chunks.append(b)
        assert r.requests <= 6, r.requests
    assert b"".join(chunks) == data
    assert moto_server.bytes_read(BUCKET, key) == len(data)


def test_reader_names_missing_and_empty_objects(s3):
    with pytest.raises(InputError, match="no such object") as e:
        remote.open_s3(remote.s3_url(BUCKET, "nope.mp4"))
    assert e.value.path == f"s3://{BUCKET}/nope.mp4"
    s3.put_object(Bucket=BUCKET, Key="empty.mp4", Body=b"")
    with pytest.raises(InputError, match="empty"):
        remote.open_s3(remote.s3_url(BUCKET, "empty.mp4"))


class _PeakDisk:
    """Samples the bytes under a directory (every few ms, in a thread): the peak the handlers used there."""

    def __init__(self, root):
        self.root, self.peak, self._stop = str(root), 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _size(self) -> int:
        total = 0
        for d, _, files in os.walk(self.root):
            for f in files:
                try:
                    total += os.path.getsize(os.path.join(d, f))
                except OSError:
                    pass
        return total

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._size())
            time.sleep(0.003)

    def __enter__(self):
        self.peak = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._stop.clear()


def _segment_spans(path: str, segments: list[dict]) -> list[int]:
    """Bytes of the file a segment's frames (with their context and the keyframe before them) occupy."""
    import av

    with av.open(path) as c:
        vs = c.streams.video[0]
        pkts = sorted(((p.pts, p.pos, p.size, p.is_keyframe) for p in c.demux(vs) if p.size), key=lambda x: x[0])
    spans = []
    for seg in segments:
        lo, hi = seg["start_frame"] - seg["context_before"], seg["end_frame"] + seg["context_after"]
        key = max(i for i in range(lo + 1) if pkts[i][3])
        window = pkts[key:hi]
        spans.append(max(p[1] + p[2] for p in window) - min(p[1] for p in window))
    return spans


def _bytes_to_open(path: str) -> int:
    """What opening the file through the reader costs (header, index, FFmpeg's probing)."""
    from redactor.probe import BUFFER
    import av

    data = open(path, "rb").read()
    r = remote.RangeReader(lambda a, b: data[a:b + 1], len(data), path)
    with av.open(r, "r", buffer_size=BUFFER):
        return r.bytes_fetched


@pytest.fixture
def handlers(moto_server, model_path, tmp_path, monkeypatch):  # noqa: F811
    """plan / redact / stitch loaded as Lambda loads them, talking to the moto server over HTTP, with their
    temporary directories under tmp_path/tmp."""
    from tests import aws_support as aws

    env = {"RAW_BUCKET": "raw", "WORK_BUCKET": "work", "OUTPUT_BUCKET": "out", "REDACTOR_WORKERS": "1",
           "REDACTOR_SEGMENT_SECONDS": "4", "REDACTOR_MODEL_PATH": model_path,
           "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_NAMESPACE": "RedactorTest"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s3 = moto_server.client("s3")
    for b in ("raw", "work", "out"):
        s3.create_bucket(Bucket=b)
    s3.put_bucket_versioning(Bucket="raw", VersioningConfiguration={"Status": "Enabled"})
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    common_s3.reset_client()
    remote.reset()
    mods = {name: aws.load_handler(name) for name in ("plan", "redact", "stitch")}
    yield mods, s3, tmp, aws.FakeContext
    common_s3.reset_client()
    remote.reset()


def test_handlers_read_only_what_they_need_and_keep_tmp_small(handlers, moto_server, media, monkeypatch):  # noqa: F811
    """Plan, each Redact and Stitch on a 4-segment clip: bytes sent by S3 per handler, peak bytes in /tmp.

    The reader's blocks are scaled down with the clip: the defaults (256 KiB growing to 2 MiB) are sized for
    real segments of megabytes; this clip's segments are ~300 kB, so blocks of 16-64 KiB keep the same
    proportion (the forked workers inherit the patched values)."""
    monkeypatch.setattr(remote, "MIN_BLOCK", 16 * 1024)
    monkeypatch.setattr(remote, "MAX_BLOCK", 64 * 1024)
    mods, s3, tmp, ctx = handlers
    # segments of 100 frames, much longer than the context a worker decodes on each side (30 frames with
    # the default settings), as real 10 s segments are
    clip = media("io_16s.mp4", width=160, height=128, fps=25, seconds=16, gop=25, audio="aac", faces=1,
                 face_size=(40, 50), crf=0)
    size = os.path.getsize(clip["path"])
    key = "cam/io_16s.mp4"
    s3.upload_file(clip["path"], "raw", key)
    version = s3.head_object(Bucket="raw", Key=key)["VersionId"]
    run = {"bucket": "raw", "key": key, "version": version, "work_prefix": "runs/io-test/"}

    moto_server.reset_log()
    with _PeakDisk(tmp) as disk:
        planned = mods["plan"].handler(dict(run), ctx("plan"))
    plan_read, plan_tmp = moto_server.bytes_read("raw", key), disk.peak
    segments = moto_server.client("s3").get_object(Bucket="work", Key="runs/io-test/manifest.json")["Body"].read()
    segments = json.loads(segments)
    assert planned["segments"] == len(segments) == 4

    redact_read, redact_tmp = [], []
    for seg in segments:
        moto_server.reset_log()
        with _PeakDisk(tmp) as disk:
            mods["redact"].handler(dict(run, segment=seg), ctx("redact"))
        redact_read.append(moto_server.bytes_read("raw", key))
        redact_tmp.append(disk.peak)
    parts = {k["Key"]: k["Size"] for k in s3.list_objects_v2(Bucket="work", Prefix="runs/io-test/parts/")["Contents"]}

    moto_server.reset_log()
    with _PeakDisk(tmp) as disk:
        out = mods["stitch"].handler(dict(run, plan=planned), ctx("stitch"))
    stitch_read, stitch_tmp = moto_server.bytes_read("raw", key), disk.peak
    stitch_parts_read = moto_server.bytes_read("work")
    print(f"source {size} B; plan read {plan_read} B, tmp peak {plan_tmp} B; redact read {redact_read}, "
          f"tmp peaks {redact_tmp}; parts {sorted(parts.values())}; stitch read source {stitch_read} B, "
          f"work {stitch_parts_read} B, tmp peak {stitch_tmp} B, output {out['bytes']} B")

    # Plan: one pass over the file (it needs every frame's timestamp), nothing on disk
    assert plan_read <= 1.05 * size + 300_000, (plan_read, size)
    assert plan_tmp == 0
    # Redact: each segment reads the index and its own byte range (from the keyframe before its context
    # frames to the last context frame after it), plus read-ahead; before, every container read the file
    spans = _segment_spans(clip["path"], segments)
    opened = _bytes_to_open(clip["path"])
    for seg, got, span in zip(segments, redact_read, spans):
        assert got <= span + opened + 4 * remote.MAX_BLOCK, (seg["index"], got, span, opened)
    assert min(redact_read) < 0.5 * size and sum(redact_read) < 2.2 * size, (redact_read, size)
    # only its own part(s) on disk: far less than the source
    assert max(redact_tmp) < 2.2 * max(parts.values()) + 200_000, (redact_tmp, parts)
    # Stitch: no source, no parts on disk: the output (and the small detection sidecars) only
    assert stitch_tmp < out["bytes"] + max(parts.values()) + 200_000, (stitch_tmp, out["bytes"])
    assert stitch_read < 1.1 * size, (stitch_read, size)  # one pass for the audio packets, no download
    assert moto_server.client("s3").head_object(Bucket="out", Key=f"redacted/{key}")["ContentLength"] == out["bytes"]


# ---------------------------------------------------------------------------------------------------------------
# Concurrent S3 I/O (Plan's and Stitch's reads, Stitch's upload): every request below pays an injected latency at
# the server, which also counts how many requests of each kind were under way at once.

class _Latency:
    """WSGI middleware: each request waits ``delay`` seconds before moto answers; ``peak[(method, bucket)]`` is
    the most requests of that method on that bucket that were under way at once (the body is sent inside)."""

    def __init__(self, app, delay: float):
        self.app, self.delay = app, delay
        self.lock = threading.Lock()
        self.now: dict = {}
        self.peak: dict = {}

    def __call__(self, environ, start_response):
        bucket = environ.get("PATH_INFO", "/").lstrip("/").split("/")[0]
        kind = (environ.get("REQUEST_METHOD", ""), bucket)
        with self.lock:
            self.now[kind] = self.now.get(kind, 0) + 1
            self.peak[kind] = max(self.peak.get(kind, 0), self.now[kind])
        try:
            time.sleep(self.delay)
            return list(self.app(environ, start_response))
        finally:
            with self.lock:
                self.now[kind] -= 1

    def reset(self):
        with self.lock:
            self.peak = {}


@pytest.fixture
def slow(moto_server):  # noqa: F811
    """The moto server with 30 ms added to every request (S3's time to first byte, about)."""
    wsgi = moto_server._server._server
    inner = wsgi.app
    wsgi.app = _Latency(inner, 0.03)
    try:
        yield wsgi.app
    finally:
        wsgi.app = inner


def _small_blocks(monkeypatch, kib: int = 64):
    """The reader's blocks scaled down with the test's objects (the defaults are sized for real videos)."""
    monkeypatch.setattr(remote, "MIN_BLOCK", 16 * 1024)
    monkeypatch.setattr(remote, "MAX_BLOCK", kib * 1024)
    monkeypatch.setattr(remote, "STREAM_BLOCK", kib * 1024)


def test_a_sequential_read_keeps_a_bounded_number_of_gets_in_flight(s3, slow, moto_server, monkeypatch):  # noqa: F811
    _small_blocks(monkeypatch)
    data = os.urandom(5 * 1024 * 1024 + 333)
    s3.put_object(Bucket=BUCKET, Key="big.bin", Body=data)
    url = remote.s3_url(BUCKET, "big.bin")
    times = {}
    for ahead in (0, 6):
        moto_server.reset_log()
        slow.reset()
        t0 = time.perf_counter()
        with remote.open_s3(url, ahead=ahead) as r:
            got = []
            while True:
                b = r.read(32 * 1024)  # as FFmpeg's avio asks
                if not b:
                    break
                got.append(b)
            peak = r.peak_in_flight
        times[ahead] = time.perf_counter() - t0
        assert b"".join(got) == data  # in order, every byte
        assert moto_server.bytes_read(BUCKET, "big.bin") == len(data)  # nothing fetched twice
        if ahead:
            # concurrency happened, within the bound, as the server saw it
            assert 3 <= slow.peak[("GET", BUCKET)] <= ahead and peak <= ahead, (slow.peak, peak)
        else:
            assert slow.peak[("GET", BUCKET)] == 1 and peak == 1
    print(f"5 MiB at 30 ms per GET, 64 KiB blocks: one GET at a time {times[0]:.2f} s, 6 ahead {times[6]:.2f} s")
    assert times[6] < times[0] / 2, times


def test_read_ahead_memory_stays_flat_and_a_jump_drops_the_window(monkeypatch):
    """What a streaming reader holds is bounded by its window whatever the object's size, and a seek out of
    the window starts over with small blocks (no more GETs of the old window are asked)."""
    size = 40 * 1024 * 1024
    asked = []

    def fetch(a, b):
        asked.append((a, b))
        return bytes(b - a + 1)
    r = remote.RangeReader(fetch, size, "mem", min_block=64 * 1024, max_block=256 * 1024, ahead=4,
                           stream_block=512 * 1024)
    peak = 0
    while r.tell() < size // 2:
        assert r.read(65536)
        held = sum(len(d) for _, d in r._blocks) + len(r._window) * r.stream_block
        peak = max(peak, held)
    assert peak <= (remote.CACHE_BLOCKS + 4) * 512 * 1024, peak
    assert max(b for _, b in asked) < size // 2 + 5 * 512 * 1024  # not far past what was read
    r.seek(1000)
    n_before = len(asked)
    assert r.read(10) == bytes(10)
    assert asked[n_before] == (1000, 1000 + 64 * 1024 - 1)  # a new small block where the demuxer jumped
    assert not r._window
    r.close()


def test_prefetcher_hands_out_whole_objects_in_order_with_bounded_memory(s3, slow, monkeypatch):  # noqa: F811
    sizes = [300_000, 123_457, 700_001, 50_000, 2_500_000, 420_000, 90_000]  # the 2.5 MB one is "too large"
    objs = []
    for i, n in enumerate(sizes):
        body = os.urandom(n)
        s3.put_object(Bucket=BUCKET, Key=f"parts/{i:05d}.mp4", Body=body)
        objs.append((remote.s3_url(BUCKET, f"parts/{i:05d}.mp4"), body))
    budget, block = 1_000_000, 128 * 1024
    with remote.Prefetcher([(u, len(b)) for u, b in objs], budget=budget, whole_max=1_000_000, block=block,
                           workers=5) as pf:
        for i, (u, body) in enumerate(objs):
            got = pf.get(i)
            if len(body) > 1_000_000:
                assert got is None  # read in place when its turn comes
            else:
                assert got == body and pf.get(i) is got  # asking again costs nothing
            time.sleep(0.05)  # the remux of this part: the prefetcher works meanwhile
        assert pf.peak_buffered <= budget, pf.peak_buffered
        assert 2 <= slow.peak[("GET", BUCKET)] <= 5 and pf.peak_in_flight <= 5, (slow.peak, pf.peak_in_flight)
        with pytest.raises(ValueError):
            pf.get(0)


def test_prefetcher_reports_a_failed_get_naming_the_object(s3):
    s3.put_object(Bucket=BUCKET, Key="a.mp4", Body=b"x" * 1000)
    gone = remote.s3_url(BUCKET, "gone.mp4")
    with remote.Prefetcher([(remote.s3_url(BUCKET, "a.mp4"), 1000), (gone, 1000)]) as pf:
        assert pf.get(0) == b"x" * 1000
        with pytest.raises(InputError) as e:
            pf.get(1)
    assert e.value.path == gone


def test_plan_reads_the_upload_concurrently_and_plans_what_a_local_read_plans(s3, slow, moto_server, media,  # noqa: F811
                                                                                 monkeypatch):
    from redactor import Config, plan

    _small_blocks(monkeypatch)
    clip = media("io_plan.mp4", width=320, height=180, fps=25, seconds=12, gop=25, audio="aac", faces=1,
                 face_size=(40, 50), crf=10)
    size = os.path.getsize(clip["path"])
    s3.upload_file(clip["path"], BUCKET, "up/io_plan.mp4")
    cfg = Config(segment_seconds=3)
    want = plan(clip["path"], cfg).to_dict()
    moto_server.reset_log()
    slow.reset()
    got = plan(remote.s3_url(BUCKET, "up/io_plan.mp4"), cfg).to_dict()
    for d in (want, got):
        d["source"].pop("path")
    assert got == want  # the same frames, keyframes and segments, frame for frame
    fetched = moto_server.bytes_read(BUCKET, "up/io_plan.mp4")
    print(f"plan: {size} B upload, fetched {fetched} B, at most {slow.peak[('GET', BUCKET)]} GETs at once")
    assert slow.peak[("GET", BUCKET)] >= 3, slow.peak
    assert fetched <= 1.2 * size + 300_000, (fetched, size)


def test_multipart_upload_is_concurrent_and_bounded(s3, slow, tmp_path):
    s3_mod = common_s3
    s3_mod.reset_client()
    data = os.urandom(6 * 5 * 1024 * 1024 + 12345)  # 7 parts of S3's smallest size
    path = tmp_path / "out.mp4"
    path.write_bytes(data)
    slow.reset()
    assert s3_mod.upload_multipart(path, BUCKET, "redacted/out.mp4", part_size=5 * 1024 * 1024, in_flight=3) \
        == len(data)
    assert s3.get_object(Bucket=BUCKET, Key="redacted/out.mp4")["Body"].read() == data  # parts in order
    assert 2 <= slow.peak[("PUT", BUCKET)] <= 3, slow.peak
    s3_mod.reset_client()


def _fail_part(client, number: int, monkeypatch) -> None:
    """The client's UploadPart of part ``number`` fails as a broken connection does."""
    real = client.upload_part

    def flaky(**kw):
        if kw["PartNumber"] == number:
            raise ConnectionError("network gone")
        return real(**kw)
    monkeypatch.setattr(client, "upload_part", flaky)


def test_a_failed_upload_part_leaves_no_object_and_no_open_upload(s3, tmp_path, monkeypatch):
    """The privacy invariant on the way out: an upload that fails part-way is aborted, so the output key
    never holds a partial video and S3 keeps no parts of it."""
    s3_mod = common_s3
    s3_mod.reset_client()
    path = tmp_path / "out.mp4"
    path.write_bytes(os.urandom(4 * 5 * 1024 * 1024))
    _fail_part(s3_mod.client(), 3, monkeypatch)
    with pytest.raises(ConnectionError):
        s3_mod.upload_multipart(path, BUCKET, "redacted/out.mp4", part_size=5 * 1024 * 1024, in_flight=2)
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="redacted/")
    assert not s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads"), "an upload was left open"
    s3_mod.reset_client()


def _plan_and_redact(mods, s3, ctx, media, name: str):
    clip = media(name, width=160, height=128, fps=25, seconds=12, gop=25, audio="aac", faces=1,
                 face_size=(40, 50), crf=0)
    key = f"cam/{name}"
    s3.upload_file(clip["path"], "raw", key)
    version = s3.head_object(Bucket="raw", Key=key)["VersionId"]
    run = {"bucket": "raw", "key": key, "version": version, "work_prefix": "runs/io-stitch/"}
    planned = mods["plan"].handler(dict(run), ctx("plan"))
    segments = json.loads(s3.get_object(Bucket="work", Key="runs/io-stitch/manifest.json")["Body"].read())
    for seg in segments:
        mods["redact"].handler(dict(run, segment=seg), ctx("redact"))
    return clip, run, planned


def _small_upload_parts(monkeypatch, mods):
    """Multipart uploads of 64 KiB parts (moto's minimum part size lowered to match), so a test clip's output
    is uploaded in several parts."""
    import moto.s3.models

    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", 64 * 1024)
    monkeypatch.setattr(common_s3, "UPLOAD_PART", 64 * 1024)
    return common_s3


def test_stitch_reads_parts_concurrently_and_writes_what_a_local_stitch_writes(handlers, slow, moto_server, media,  # noqa: F811
                                                                               monkeypatch, tmp_path):
    """Stitch at 30 ms per request: the records, sidecars and parts are fetched concurrently, the output is a
    concurrent multipart upload, and the video is byte for byte what the engine's stitch writes from the same
    parts on local disk (order kept)."""
    from redactor import stitch
    from redactor.records import Plan, SegmentResult

    _small_blocks(monkeypatch, kib=32)
    mods, s3, tmp, ctx = handlers
    _small_upload_parts(monkeypatch, mods)
    monkeypatch.setattr(remote, "PREFETCH_BYTES", 200 * 1024)  # a few parts ahead, not all of them
    # this clip's audio is chunked every video frame (FFmpeg's muxer), 10-40 kB apart: fetch it alone anyway
    monkeypatch.setattr(remote, "PLANNED_GAP", 0)
    clip, run, planned = _plan_and_redact(mods, s3, ctx, media, "io_stitch.mp4")
    assert planned["segments"] >= 3

    # the plan and parts as they are now (a successful stitch deletes the work area), for a local stitch below
    local = tmp_path / "local"
    local.mkdir()
    plan = Plan.from_dict(json.loads(s3.get_object(Bucket="work", Key="runs/io-stitch/plan.json")["Body"].read()))
    results = []
    for seg in plan.segments:
        rec = json.loads(s3.get_object(Bucket="work", Key=f"runs/io-stitch/results/{seg.index:05d}.json")["Body"].read())
        res = SegmentResult.from_dict(rec["result"])
        part = local / os.path.basename(res.part)
        s3.download_file("work", res.part, str(part))
        res.part = str(part)
        results.append(res)

    made = []

    class Spy(remote.Prefetcher):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            made.append(self)
    monkeypatch.setattr(remote, "Prefetcher", Spy)
    slow.reset()
    moto_server.reset_log()
    t0 = time.perf_counter()
    out = mods["stitch"].handler(dict(run, plan=planned), ctx("stitch"))
    took = time.perf_counter() - t0
    peak = dict(slow.peak)
    stitch_log = moto_server.requests("raw")
    print(f"stitch at 30 ms per request: {took:.2f} s; requests at once {peak}; prefetcher peak "
          f"{made[0].peak_buffered} B buffered, {made[0].peak_in_flight} GETs")
    assert peak[("GET", "work")] >= 3, peak  # records, sidecars and parts fetched concurrently
    assert peak[("PUT", "out")] >= 2, peak  # the output's parts uploaded concurrently
    assert made[0].peak_buffered <= 200 * 1024 and made[0].requests >= len(plan.segments)
    # the upload's audio: its samples only (an MP4: the index says where), not the whole file again
    audio = _sample_bytes(clip["path"], "audio")
    upload_read = sum(r.bytes_out for r in stitch_log if r.path == f"/raw/{run['key']}" and r.method == "GET")
    print(f"stitch read {upload_read} B of the {os.path.getsize(clip['path'])} B upload (audio samples {audio} B)")
    assert upload_read < 0.5 * os.path.getsize(clip["path"]), (upload_read, audio)

    plan.source.path = clip["path"]
    mine = stitch(plan, results, str(local / "out.mp4"), mods["stitch"].CONFIG)
    body = s3.get_object(Bucket="out", Key=out["output_key"])["Body"].read()
    assert out["frames"] == mine.frames == plan.frame_count
    assert body == (local / "out.mp4").read_bytes()  # every part in its place, every byte


def test_a_stitch_whose_upload_fails_leaves_no_output_and_no_open_upload(handlers, media, monkeypatch):
    """The privacy invariant: Stitch failing while uploading the redacted video (here its 3rd part) leaves no
    object at the output key, no report, and no open multipart upload holding some of its parts."""
    mods, s3, tmp, ctx = handlers
    common_s3 = _small_upload_parts(monkeypatch, mods)
    _, run, planned = _plan_and_redact(mods, s3, ctx, media, "io_abort.mp4")
    _fail_part(common_s3.client(), 3, monkeypatch)
    with pytest.raises(ConnectionError):
        mods["stitch"].handler(dict(run, plan=planned), ctx("stitch"))
    assert "Contents" not in s3.list_objects_v2(Bucket="out"), "something was written to the output bucket"
    assert not s3.list_multipart_uploads(Bucket="out").get("Uploads"), "an upload was left open"


def _sample_bytes(path: str, kind: str, keyframes_only: bool = False) -> int:
    """Bytes of an MP4's samples of one kind (from its index)."""
    import av

    with av.open(path) as c:
        return sum(e.size for st in c.streams if st.type == kind for e in st.index_entries
                   if e.is_keyframe or not keyframes_only)


@pytest.mark.parametrize("name,kw", [
    ("bframes.mp4", dict(bframes=2, audio="aac")),
    ("trimmed.mp4", dict(bframes=2, audio="aac", trim=5)),  # an edit list: frames before it are discarded
    ("vfr.mov", dict(vfr=True, audio="aac")),
    ("opus.mp4", dict(audio="opus", bframes=0)),
    ("silent.mp4", dict(bframes=2)),
])
def test_plan_of_an_mp4_fetches_its_keyframes_and_plans_the_same(s3, moto_server, media, monkeypatch, name, kw):  # noqa: F811
    """MP4/MOV: every frame's timestamp comes from the index, so Plan fetches the keyframes' samples (their flag
    is confirmed from the data) and serves every other sample as zeros: the same plan, frame for frame, as a
    local read of every byte, for a fraction of the bytes."""
    from redactor import Config, plan, probe

    _small_blocks(monkeypatch, kib=32)
    clip = media(f"idx_{name}", width=320, height=180, fps=30, seconds=12, gop=60, faces=1, face_size=(40, 50),
                 crf=12, **kw)
    size = os.path.getsize(clip["path"])
    key = f"up/{name}"
    s3.upload_file(clip["path"], BUCKET, key)
    cfg = Config(segment_seconds=3)
    want = plan(clip["path"], cfg).to_dict()
    want["source"].pop("path")
    fetched = {}
    for indexed in (False, True):
        monkeypatch.setattr(probe, "INDEXED_READS", indexed)
        moto_server.reset_log()
        got = plan(remote.s3_url(BUCKET, key), cfg).to_dict()
        got["source"].pop("path")
        assert got == want, indexed
        fetched[indexed] = moto_server.bytes_read(BUCKET, key)
    keyframes = _sample_bytes(clip["path"], "video", keyframes_only=True)
    print(f"{name}: {size} B, keyframes {keyframes} B; plan fetched {fetched[False]} B reading every byte, "
          f"{fetched[True]} B indexed")
    assert fetched[False] >= size
    # the keyframes, the index (twice: the first frame is decoded from a fresh open) and what FFmpeg reads while
    # opening the file (its stream probing: more for a variable frame rate)
    assert keyframes < fetched[True] < 0.6 * size, fetched


def test_a_fragmented_mp4_is_read_in_full_and_plans_the_same(s3, moto_server, media, tmp_path, monkeypatch):  # noqa: F811
    """A fragmented MP4 (moof boxes) may list its samples only as its fragments are read: no indexed reads."""
    import av

    from redactor import Config, plan

    _small_blocks(monkeypatch, kib=32)
    clip = media("idx_frag_src.mp4", width=320, height=180, fps=30, seconds=6, gop=30, audio="aac", faces=1,
                 face_size=(40, 50), crf=12)
    frag = str(tmp_path / "frag.mp4")
    with av.open(clip["path"]) as src, av.open(frag, "w", format="mp4",
                                               options={"movflags": "frag_keyframe+empty_moov"}) as out:
        streams = {st.index: out.add_stream_from_template(st) for st in src.streams}
        for pkt in src.demux():
            if pkt.dts is not None:
                pkt.stream = streams[pkt.stream.index]
                out.mux(pkt)
    s3.upload_file(frag, BUCKET, "up/frag.mp4")
    cfg = Config(segment_seconds=2)
    want = plan(frag, cfg).to_dict()
    moto_server.reset_log()
    got = plan(remote.s3_url(BUCKET, "up/frag.mp4"), cfg).to_dict()
    for d in (want, got):
        d["source"].pop("path")
    assert got == want
    assert moto_server.bytes_read(BUCKET, "up/frag.mp4") >= os.path.getsize(frag)
