"""Live mode (docs/live.md): chunks redacted into HLS, checked by opening ``index.m3u8`` through FFmpeg's HLS
demuxer (every frame, timestamps continuous, audio kept); the playlist's order under concurrent writers on S3
(moto) with an injected ``PreconditionFailed``; bad chunks; faces at chunk borders (ground-truth pixels)."""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from redactor import Config
from redactor.cli import main
from redactor.hls import PLAYLIST, TARGET_SECONDS, TS_HZ, ChunkEntry, Playlist, cut_points, gap_durations
from redactor.live import LiveSettings, LocalStore, LocalStream, Publisher, S3Store, run_directory, run_stream
from redactor.live.chunk import Redacted, identity_of, source_span
from redactor.live.source import natural_key, watch_directory

from .conftest import audio_packets, decode_gray


def clip(path, seconds=1.5, fps=10, seed=0, width=192, height=144, audio="aac", **kw):
    from testmedia import make_clip
    return make_clip(str(path), width=width, height=height, fps=fps, seconds=seconds, audio=audio, seed=seed,
                     bframes=0, face_size=(40, 50), **kw)


def old(path, age=10.0):
    """Date a file ``age`` s back (complete, as far as the watcher can tell)."""
    t = time.time() - age
    os.utime(path, (t, t))


def hls(index: str) -> dict:
    """Everything FFmpeg's HLS demuxer reads from ``index``: video pts (90 kHz, sorted), audio packets."""
    video, audio = [], []
    with av.open(str(index)) as c:
        for p in c.demux():
            if p.size == 0 or p.pts is None:
                continue
            if p.stream.type == "video":
                video.append(p.pts)
            elif p.stream.type == "audio":
                audio.append(raw_aac(bytes(p)))
    return {"video": sorted(video), "audio": audio}


def raw_aac(frame: bytes) -> bytes:
    """An AAC frame without its ADTS header (MPEG-TS carries AAC in ADTS, MP4 without it)."""
    if len(frame) > 7 and frame[0] == 0xFF and frame[1] & 0xF0 == 0xF0:
        return frame[7 if frame[1] & 1 else 9:]
    return frame


def assert_continuous(pts: list[int], fps: int):
    steps = {b - a for a, b in zip(pts, pts[1:])}
    assert steps == {TS_HZ // fps}, steps


def entries(out) -> list[tuple[int, str]]:
    return [(c.seq, c.status) for c in Playlist.parse((Path(out) / PLAYLIST).read_text()).chunks]


# ----------------------------------------------------------------------------------------------- playlist
def test_segments_are_cut_at_keyframes_within_the_target():
    s = TS_HZ
    assert cut_points([0, 2 * s, 4 * s, 8 * s], 12 * s) == [0, 8 * s]  # the first keyframe 6 s or more in
    assert cut_points([0, 5 * s, 9 * s], 14 * s) == [0, 9 * s]
    assert cut_points([0, 4 * s, 11 * s], 15 * s) == [0, 4 * s, 11 * s]  # 11 s would be too long: cut at 4
    assert cut_points([0], 3 * s) == [0]
    with pytest.raises(ValueError, match="longer than a segment"):
        cut_points([0, 11 * s], 12 * s)


def test_the_playlist_marks_gaps_only_where_a_chunk_failed_and_keeps_the_time_of_day_out():
    p = Playlist()
    p.append(ChunkEntry(0, "0.mp4", "ok", [6 * TS_HZ, 4 * TS_HZ], "a"))
    p.append(ChunkEntry(1, "1.mp4", "gap", [10 * TS_HZ], None, "failed"))
    p.append(ChunkEntry(2, "2.mp4", "ok", [3 * TS_HZ], "c", program_date_time="2026-01-01T00:00:00.000Z"))
    p.ended = True
    text = p.render()
    lines = [ln for ln in text.splitlines() if not ln.startswith("#REDACTOR")]
    assert lines[:6] == ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{TARGET_SECONDS}",
                         "#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-PLAYLIST-TYPE:EVENT", "#EXT-X-INDEPENDENT-SEGMENTS"]
    assert lines[6:] == ["#EXTINF:6.000000,", "seg-000000-00.ts", "#EXTINF:4.000000,", "seg-000000-01.ts",
                         "#EXT-X-DISCONTINUITY", "#EXT-X-GAP", "#EXTINF:10.000000,", "gap-000001.ts",
                         "#EXT-X-DISCONTINUITY", "#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00.000Z",
                         "#EXTINF:3.000000,", "seg-000002-00.ts", "#EXT-X-ENDLIST"]
    back = Playlist.parse(text)
    assert back == p and back.next_time == p.next_time == (10 + 23) * TS_HZ
    p.chunks[2].program_date_time = None
    assert "PROGRAM-DATE-TIME" not in p.render()


def test_the_watcher_takes_complete_chunks_in_natural_order_and_ends_at_end(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("10.mp4", "2.mp4", "1.ts", "notes.txt", ".3.mp4.partial"):
        (src / name).write_bytes(b"x")
        old(src / name)
    (src / "11.mp4").write_bytes(b"still being written")  # fresh: not complete yet
    ticks = iter(range(1000))
    w = watch_directory(str(src), settle=5, poll=0, clock=lambda: next(ticks), sleep=lambda s: None)
    got = [next(w) for _ in range(3)]
    assert [(e, Path(p).name) for e, p in got] == [("chunk", "1.ts"), ("chunk", "2.mp4"), ("chunk", "10.mp4")]
    (src / "0.mp4").write_bytes(b"x")
    old(src / "0.mp4")
    (src / "2.mp4").write_bytes(b"y")
    old(src / "2.mp4", 9)
    old(src / "11.mp4", 20)
    (src / "END").write_bytes(b"")
    old(src / "END", 8)
    (src / "12.mp4").write_bytes(b"x")
    old(src / "12.mp4", 7)  # written after END
    rest = [(e, Path(p).name) for e, p in w]
    # 11.mp4 completes while the scan that took 10.mp4 goes on; the next scan sees the rest
    assert rest == [("chunk", "11.mp4"), ("late", "0.mp4"), ("again", "2.mp4"), ("after-end", "12.mp4")]
    assert natural_key("a9b") < natural_key("a10b")


def test_the_watcher_ends_after_idle_seconds(tmp_path):
    now = [0.0]

    def sleep(s):
        now[0] += 1.0
    w = watch_directory(str(tmp_path), idle=5, poll=1, clock=lambda: now[0], sleep=sleep)
    assert list(w) == [] and now[0] == 5.0


# ------------------------------------------------------------------------------------------ end to end
def test_a_directory_of_chunks_plays_as_one_stream_with_every_frame_and_its_audio(tmp_path, model_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    clips = [clip(src / "1.mp4", 2.0, seed=1), clip(src / "2.mp4", 13.0, fps=10, seed=2),
             clip(src / "10.mp4", 1.0, seed=3)]
    for c in clips:
        old(c["path"])
    (src / "END").write_bytes(b"")
    assert main(["live", str(src), "-o", str(out), "--workers", "1", "--model", model_path, "--idle", "60",
                 "-q"]) == 0
    text = (out / PLAYLIST).read_text()
    assert text.rstrip().endswith("#EXT-X-ENDLIST") and "GAP" not in text and "DISCONTINUITY" not in text
    assert "PROGRAM-DATE-TIME" not in text
    pl = Playlist.parse(text)
    assert [(c.seq, c.name, c.status) for c in pl.chunks] == [(0, "1.mp4", "ok"), (1, "2.mp4", "ok"),
                                                              (2, "10.mp4", "ok")]
    assert [len(c.durations) for c in pl.chunks] == [1, 2, 1]  # 13 s: split at an encoder keyframe
    assert all(d <= TARGET_SECONDS * TS_HZ for c in pl.chunks for d in c.durations)
    got = hls(out / PLAYLIST)
    assert len(got["video"]) == sum(c["frames"] for c in clips) == 160
    assert_continuous(got["video"], 10)
    assert got["audio"] == [p for c in clips for _, _, p in audio_packets(c["path"])]  # bit-exact, in order
    assert sorted(os.listdir(out)) == ["index.m3u8", "records", "report.html"] + sorted(
        u for c in pl.chunks for u in c.uris())
    assert sorted(os.listdir(out / "records")) == ["1.mp4.report.json", "10.mp4.report.json", "2.mp4.report.json"]


def test_a_gap_longer_than_the_target_duration_is_listed_in_parts_within_it():
    """A long chunk refused or lost keeps its duration on the timeline, but no playlist entry may be longer
    than EXT-X-TARGETDURATION."""
    p = Playlist()
    p.append(ChunkEntry(0, "0.mp4", "ok", [4 * TS_HZ], "a"))
    p.append(ChunkEntry(1, "1.mp4", "gap", gap_durations(25 * TS_HZ), None, "too-long"))
    p.append(ChunkEntry(2, "2.mp4", "ok", [4 * TS_HZ], "c"))
    text = p.render()
    lines = [ln for ln in text.splitlines() if not ln.startswith("#REDACTOR")][6:]
    assert lines == ["#EXTINF:4.000000,", "seg-000000-00.ts", "#EXT-X-DISCONTINUITY",
                     "#EXT-X-GAP", "#EXTINF:10.000000,", "gap-000001-00.ts",
                     "#EXT-X-GAP", "#EXTINF:10.000000,", "gap-000001-01.ts",
                     "#EXT-X-GAP", "#EXTINF:5.000000,", "gap-000001-02.ts",
                     "#EXT-X-DISCONTINUITY", "#EXTINF:4.000000,", "seg-000002-00.ts"]
    assert Playlist.parse(text) == p and p.next_time == (10 + 33) * TS_HZ
    assert gap_durations(10 * TS_HZ) == [10 * TS_HZ] and gap_durations(3) == [3]


def test_bad_chunks_get_records_and_gaps_and_nothing_of_them_is_published(tmp_path, model_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    a = clip(src / "1.mp4", seed=1)
    full = clip(tmp_path / "full.mp4", seed=2)
    (src / "2.mp4").write_bytes(Path(full["path"]).read_bytes()[: os.path.getsize(full["path"]) * 2 // 5])
    clip(src / "3.mkv", seed=3)  # another container than the stream's
    clip(src / "4.mp4", seed=4, codec="mpeg4")  # another codec
    shutil.copy(a["path"], src / "5.mp4")  # the same chunk again
    e = clip(src / "6.mp4", seed=6)
    clip(src / "7.mp4", seed=7)
    (src / "END").write_bytes(b"")
    for n, name in enumerate(["1.mp4", "2.mp4", "3.mkv", "4.mp4", "5.mp4", "6.mp4", "END", "7.mp4"]):
        old(src / name, 30 - n)
    assert main(["live", str(src), "-o", str(out), "--workers", "1", "--model", model_path, "-q"]) == 0
    assert entries(out) == [(0, "ok"), (1, "gap"), (2, "gap"), (3, "gap"), (4, "ok")]
    records = {n: json.loads((out / "records" / n).read_text()) for n in os.listdir(out / "records")}
    assert sorted(records) == ["1.mp4.report.json", "2.mp4.failed.json", "3.mkv.mismatch.json",
                               "4.mp4.mismatch.json", "5.mp4.duplicate.json", "6.mp4.report.json",
                               "7.mp4.after-end.json"]
    assert "not a readable video" in records["2.mp4.failed.json"]["error"]
    assert "matroska" in records["3.mkv.mismatch.json"]["error"]
    assert "video mpeg4 (the stream's: h264)" in records["4.mp4.mismatch.json"]["error"]
    assert records["2.mp4.failed.json"]["gap"] and not records["5.mp4.duplicate.json"]["gap"]
    text = (out / PLAYLIST).read_text()
    assert text.count("#EXT-X-GAP") == 3 and text.count("#EXT-X-DISCONTINUITY") == 4  # before each, after
    assert sorted(p.name for p in out.glob("*.ts")) == ["seg-000000-00.ts", "seg-000004-00.ts"]
    assert not (out / ".staged").exists()
    got = hls(out / PLAYLIST)  # the demuxer skips the gaps' entries
    assert len(got["video"]) == a["frames"] + e["frames"]
    # the stream's report: every chunk with a place, in order, from the playlist and the records
    summary, chunks = report_tables(out / "report.html")
    assert summary["published"] == "2" and summary["gaps"] == "3 (failed 1, mismatch 2)"
    assert summary["frames published"] == str(a["frames"] + e["frames"])
    assert [(r[1], r[4]) for r in chunks] == [("1.mp4", "ok"), ("2.mp4", "gap (failed)"), ("3.mkv", "gap (mismatch)"),
                                              ("4.mp4", "gap (mismatch)"), ("6.mp4", "ok")]
    assert chunks[0][6] == str(a["frames"]) and chunks[4][6] == str(e["frames"])
    assert "not a readable video" in chunks[1][12] and "matroska" in chunks[2][12]
    assert [r[2] for r in chunks] == ["0:00.00", "0:01.50", "0:03.00", "0:04.50", "0:06.00"]


def report_tables(path) -> tuple[dict, list[list[str]]]:
    return report_tables_of(Path(path).read_text())


def report_tables_of(page: str) -> tuple[dict, list[list[str]]]:
    """The stream report's summary (name -> value) and its chunks table's rows (cells as text)."""
    assert "default-src 'none'" in page
    tables = [[[html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<t[dh]>(.*?)</t[dh]>", tr)]
               for tr in re.findall(r"<tr>(.*?)</tr>", t)] for t in re.findall(r"<table>(.*?)</table>", page)]
    return {k: v for k, v in tables[0]}, tables[-1][1:]


def test_a_chunk_name_taken_again_is_processed_once_or_is_a_conflict(tmp_path, model_path):
    """... and, asked for, the chunk's recorded time is its segments' EXT-X-PROGRAM-DATE-TIME."""
    out = tmp_path / "out"
    one = clip(tmp_path / "a.mp4", seed=1, metadata={"creation_time": "2026-01-02T03:04:05.000000Z"})
    other = clip(tmp_path / "b.mp4", seed=2)
    stream = LocalStream(Publisher(LocalStore(str(out)), LiveSettings(program_date_time=True)),
                         Config(workers=1, model_path=model_path))
    assert stream.take(one["path"], "7.mp4").status == "published"
    assert stream.take(one["path"], "7.mp4").status == "duplicate"
    assert stream.take(other["path"], "7.mp4").status == "conflict"
    assert entries(out) == [(0, "ok")]
    rec = json.loads((out / "records" / "7.mp4.conflict.json").read_text())
    assert rec["kind"] == "conflict" and "other content" in rec["error"]
    assert Playlist.parse((out / PLAYLIST).read_text()).chunks[0].sha256 == stream.taken["7.mp4"]
    assert "#EXT-X-PROGRAM-DATE-TIME:2026-01-02T03:04:05.000000Z\n" in (out / PLAYLIST).read_text()


def test_a_file_read_at_its_native_rate_is_cut_into_chunks_at_its_keyframes(tmp_path, model_path):
    src = clip(tmp_path / "in.mp4", seconds=3.0, fps=10, keyframes=[10, 20])
    out = tmp_path / "out"
    stream = LocalStream(Publisher(LocalStore(str(out))), Config(workers=1, model_path=model_path))
    run_stream(stream, src["path"], chunk_seconds=1.0, native_rate=True)
    assert entries(out) == [(0, "ok"), (1, "ok"), (2, "ok")]
    got = hls(out / PLAYLIST)
    assert len(got["video"]) == 30
    assert_continuous(got["video"], 10)
    assert len(got["audio"]) == len(audio_packets(src["path"]))


def test_an_interrupted_stream_leaves_no_staged_chunk_and_no_end(tmp_path, monkeypatch):
    import redactor.live.run as run
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    (src / "1.mp4").write_bytes(b"x")
    old(src / "1.mp4")

    def interrupted(pub, path, seq, name, *a, **k):
        pub.store.put_bytes(".staged/000000.ts", b"redacted, not yet listed")
        raise KeyboardInterrupt
    monkeypatch.setattr(run, "process_chunk", interrupted)
    stream = LocalStream(Publisher(LocalStore(str(out))), Config(workers=1))
    with pytest.raises(KeyboardInterrupt):
        run_directory(stream, str(src), idle=5, settle=0)
    assert sorted(os.listdir(out)) == []


def test_a_source_that_is_not_a_video_or_an_ended_outdir_is_refused(tmp_path, capsys):
    missing = tmp_path / "nothing.mp4"
    assert main(["live", str(missing), "-o", str(tmp_path / "a"), "-q"]) == 2
    assert "cannot open it as a video file or stream" in capsys.readouterr().err
    ended = Playlist()
    ended.ended = True
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / PLAYLIST).write_text(ended.render())
    assert main(["live", str(tmp_path), "-o", str(tmp_path / "b"), "-q"]) == 2
    assert "has ended" in capsys.readouterr().err


# ------------------------------------------------------------------------------- S3: concurrent writers
BUCKET = "live-out"


class FlakyFirstPut:
    """An S3 client (one per writer, as each Lambda has its own) whose first conditional write of the playlist
    fails with PreconditionFailed, as when another writer got there first. moto's in-process S3 is not safe
    for requests at the same time (two writes of one key: a body read after it was replaced), where S3 handles
    each request atomically: ``atomic`` (one, shared) makes each request one step, as in S3. Between requests
    the writers interleave freely; the code under test has no lock of its own."""

    def __init__(self, client, atomic: threading.Lock):
        self.client, self.atomic, self.failed = client, atomic, False

    def __getattr__(self, name):
        return getattr(self.client, name)

    def put_object(self, **kw):
        from botocore.exceptions import ClientError
        if ("IfMatch" in kw or "IfNoneMatch" in kw) and kw["Key"].endswith(PLAYLIST) and not self.failed:
            self.failed = True
            raise ClientError({"Error": {"Code": "PreconditionFailed", "Message": "injected"}}, "PutObject")
        with self.atomic:
            return self.client.put_object(**kw)

    def get_object(self, **kw):
        import io
        with self.atomic:
            r = self.client.get_object(**kw)
            return {**r, "Body": io.BytesIO(r["Body"].read())}

    def delete_object(self, **kw):
        with self.atomic:
            return self.client.delete_object(**kw)


def staged_chunk(path) -> Redacted:
    from redactor.probe import probe
    info = probe(str(path))[0]
    first, end = source_span(info)
    return Redacted(path=str(path), first=first, end=end, identity=identity_of(info), report={})


@pytest.fixture
def s3():
    moto = pytest.importorskip("moto")
    import boto3
    with moto.mock_aws():
        c = boto3.client("s3", region_name="us-east-1")
        c.create_bucket(Bucket=BUCKET)
        yield c


def test_moto_enforces_the_conditional_writes_the_store_relies_on(s3):
    store = S3Store(BUCKET, "live/cam", s3)
    assert store.read(PLAYLIST) == (None, None)
    assert store.write_if(PLAYLIST, b"one", None)
    assert not store.write_if(PLAYLIST, b"two", None)  # IfNoneMatch="*": exists
    data, etag = store.read(PLAYLIST)
    assert data == b"one" and not store.write_if(PLAYLIST, b"two", '"stale"')
    assert store.write_if(PLAYLIST, b"two", etag) and store.get(PLAYLIST) == b"two"


def test_concurrent_writers_on_s3_publish_every_chunk_once_and_in_order(s3, tmp_path):
    """Six chunks finish at once, in reverse order, each published by its own writer (thread, client, store),
    every writer's first playlist write refused: the playlist lists all six in order, continuous."""
    import boto3
    chunks = [clip(tmp_path / f"{n}.ts", seconds=1.0 + n / 10, seed=n) for n in range(6)]
    atomic = threading.Lock()
    settings = LiveSettings(gap_wait=60, poll=0.01)
    clients = [boto3.client("s3", region_name="us-east-1") for _ in chunks]  # one per writer, as per Lambda
    pubs = [Publisher(S3Store(BUCKET, "live/cam", FlakyFirstPut(c, atomic)), settings) for c in clients]
    for n, (pub, c) in enumerate(zip(pubs, chunks)):
        pub.stage_ok(n, f"{n}.ts", f"sha{n}", staged_chunk(c["path"]))
    results, start = {}, threading.Barrier(len(chunks))

    def writer(n):
        start.wait()
        results[n] = pubs[n].publish(n)
    threads = [threading.Thread(target=writer, args=(n,)) for n in reversed(range(len(chunks)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    # a writer's first playlist write is refused (one that finds its chunk already listed writes none)
    assert sum(p.store.client.failed for p in pubs) >= len(pubs) // 2
    records = {o["Key"]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
               for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="live/cam/records/").get("Contents", [])}
    assert [(results[n].seq, results[n].status) for n in range(6)] == [(n, "ok") for n in range(6)], records
    pubs[0].end()
    store = S3Store(BUCKET, "live/cam", s3)
    pl = Playlist.parse(store.get(PLAYLIST).decode())
    assert [(c.seq, c.sha256) for c in pl.chunks] == [(n, f"sha{n}") for n in range(6)] and pl.ended
    local = tmp_path / "copy"
    local.mkdir()
    for key in [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="live/cam/")["Contents"]]:
        assert ".staged" not in key
        (local / key.rsplit("/", 1)[1]).write_bytes(store.get(key.rsplit("/", 1)[1]))
    got = hls(local / PLAYLIST)
    assert len(got["video"]) == sum(c["frames"] for c in chunks)
    assert_continuous(got["video"], 10)


def test_a_chunk_that_never_comes_is_a_gap_after_the_wait_and_late_if_it_comes(s3, tmp_path, model_path):
    from redactor.live import process_chunk
    chunks = [clip(tmp_path / f"{n}.ts", seconds=1.0, seed=n) for n in range(3)]
    settings = LiveSettings(gap_wait=0.2, poll=0.01)
    pub = Publisher(S3Store(BUCKET, "live/cam", s3), settings)
    pub.stage_ok(0, "0.ts", "sha0", staged_chunk(chunks[0]["path"]))
    pub.stage_ok(2, "2.ts", "sha2", staged_chunk(chunks[2]["path"]))
    assert pub.publish(2).status == "ok"
    assert [(c.seq, c.status, c.reason) for c in pub.playlist()[0].chunks] == [
        (0, "ok", None), (1, "gap", "missing"), (2, "ok", None)]
    assert json.loads(pub.store.get("records/000001.missing.json"))["gap"]
    late = process_chunk(pub, chunks[1]["path"], 1, "1.ts", Config(workers=1, model_path=model_path))
    assert late.status == "late" and pub.store.get("records/1.ts.late.json")
    assert pub.store.get(".staged/000001.ts") is None and len(pub.playlist()[0].chunks) == 3


def test_a_chunk_being_redacted_is_waited_for_longer_than_one_that_never_came(s3, tmp_path):
    """An earlier chunk that has been claimed (it arrived and is being redacted) gets the busy wait, one never
    claimed the gap wait (a fake clock: one second per look)."""
    from redactor.live.publish import claim_name
    chunks = [clip(tmp_path / f"{n}.ts", seconds=1.0, seed=n) for n in range(4)]
    now = [0.0]

    def sleep(s):
        now[0] += 1.0
    pub = Publisher(S3Store(BUCKET, "live/cam", s3), LiveSettings(gap_wait=5, busy_wait=50, poll=1),
                    clock=lambda: now[0], sleep=sleep)
    for n in (0, 2, 3):
        pub.stage_ok(n, f"{n}.ts", f"sha{n}", staged_chunk(chunks[n]["path"]))
    pub.store.put_bytes(claim_name(1), b'{"sha256": "sha1"}')
    assert pub.publish(2).status == "ok" and 50 <= now[0] < 55
    pub.store.delete(claim_name(1))
    assert "within 50 s" in json.loads(pub.store.get("records/000001.missing.json"))["error"]
    pub.unstage(3)
    now[0] = 0.0
    pub.stage_ok(4, "4.ts", "sha4", staged_chunk(chunks[3]["path"]))
    assert pub.publish(4).status == "ok" and 5 <= now[0] < 10  # 3 was never claimed: the gap wait
    assert [(c.seq, c.status) for c in pub.playlist()[0].chunks] == [
        (0, "ok"), (1, "gap"), (2, "ok"), (3, "gap"), (4, "ok")]


# ---------------------------------------------------------------------------------------- chunk borders
def border_paths(fps: int, n: int, width: int, face: int):
    """Per-chunk face paths (two chunks of ``n`` frames): face 0 enters through the left edge in the last half
    second of chunk 0 and crosses on into chunk 1; face 1 appears whole on the last 2 frames of chunk 0 only;
    face 2 is visible on the first 2 frames of chunk 1 only."""
    half = fps // 2
    step = max(4, (width + face) // (half + fps // 2))  # px per frame: across the picture in about a second
    enter = [None] * (n - half) + [(-face + step * (i + 1), 20) for i in range(half)]
    cont = [(-face + step * (half + i + 1), 20) if -face + step * (half + i + 1) < width else None for i in range(n)]
    last_two = [None] * (n - 2) + [(width // 2, 80)] * 2
    first_two = [(width // 3, 70)] * 2 + [None] * (n - 2)
    return [[enter, last_two, [None] * n], [cont, [None] * n, first_two]]


@pytest.mark.parametrize("fps", [10, 30])
def test_faces_at_chunk_borders_are_blurred_on_every_frame(fps, tmp_path, model_path):
    from testmedia import make_clip

    from .test_low_fps_edges import MIN_VISIBLE, SHARP_KEEP, hf_energy
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    n, width, face = 2 * fps, 320, 56
    truth = []
    for k, paths in enumerate(border_paths(fps, n, width, face)):
        c = make_clip(str(src / f"{k}.mp4"), width=width, height=180, fps=fps, seconds=n / fps, faces=3,
                      face_size=(face, face), paths=paths, looks=["frontal", "frontal", "frontal"], seed=k,
                      bframes=0)
        old(c["path"])
        truth.append(c)
    (src / "END").write_bytes(b"")
    stream = LocalStream(Publisher(LocalStore(str(out))), Config(workers=1, model_path=model_path))
    run_directory(stream, str(src), settle=0)
    assert entries(out) == [(0, "ok"), (1, "ok")]
    shown = decode_gray(str(out / PLAYLIST))
    sharp = [f for c in truth for f in decode_gray(c["path"])]
    boxes = [b for c in truth for b in c["faces"]]
    assert len(shown) == len(sharp) == len(boxes) == 2 * n
    border = [n - fps // 2 - 1, n + 2]  # the frames around the border the faces are on
    visible, leaks = 0, []
    for i, frame_boxes in enumerate(boxes):
        for b in frame_boxes:
            if min(b[2] - b[0], b[3] - b[1]) < MIN_VISIBLE:
                continue
            visible += border[0] <= i < border[1]
            kept = hf_energy(shown[i], b) / max(hf_energy(sharp[i], b), 1e-6)
            if kept >= SHARP_KEEP:
                leaks.append((i, b, round(kept, 2)))
    assert visible >= fps // 2 + 4 and leaks == []
