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
    from common import s3 as common_s3

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
