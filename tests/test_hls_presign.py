"""Private playback (redactor/hls_presign.py): the playlist's segment and init-section URIs become presigned S3
URLs that fetch the segments until they expire, re-signed on every playlist fetch, and a player (PyAV's HLS
demuxer) plays the served playlist from a private bucket in a moto server.

moto does not check a presigned URL's expiry (nor its signature unless IAM is switched on): ``ExpiryCheck``
puts S3's check in front of it (a URL past X-Amz-Date + X-Amz-Expires answers 403 AccessDenied "Request has
expired").
"""
from __future__ import annotations

import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import av
import pytest

from redactor import hls_presign as hp
from tests.aws_support import ctrl_c_reaches
from tests.moto_server import moto_server, _moto_server_session  # noqa: F401 - pytest fixtures

BUCKET, STREAM = "output", "cam-1"
PREFIX = f"live/{STREAM}/"


class ExpiryCheck:
    """WSGI middleware: S3's expiry check of presigned requests (query X-Amz-Date + X-Amz-Expires)."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        q = parse_qs(environ.get("QUERY_STRING", ""))
        if "X-Amz-Expires" in q:
            signed = datetime.strptime(q["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
            if time.time() > signed.timestamp() + int(q["X-Amz-Expires"][0]):
                body = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
                start_response("403 Forbidden", [("Content-Type", "application/xml"),
                                                 ("Content-Length", str(len(body)))])
                return [body]
        return self.app(environ, start_response)


@pytest.fixture
def s3(moto_server):  # noqa: F811
    wsgi = moto_server._server._server
    original = wsgi.app
    wsgi.app = ExpiryCheck(original)
    client = hp.s3_client(moto_server.client("s3").meta.region_name, endpoint_url=moto_server.endpoint)
    client.create_bucket(Bucket=BUCKET)
    client.put_public_access_block(Bucket=BUCKET, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    try:
        yield client, None
    finally:
        wsgi.app = original


@pytest.fixture(scope="module")
def hls(tmp_path_factory):
    """An fMP4 HLS stream (EXT-X-MAP + 1 s segments) of a 4 s 10 fps clip with audio, as the live path writes
    one: (directory, frames)."""
    from testmedia import make_clip

    root = tmp_path_factory.mktemp("hls")
    gt = make_clip(str(root / "src.mp4"), width=160, height=96, fps=10, seconds=4, gop=10, bframes=0,
                   audio="aac", faces=0)
    out = root / "stream"
    out.mkdir()
    with av.open(str(root / "src.mp4")) as src, av.open(str(out / "index.m3u8"), "w", format="hls", options={
            "hls_time": "1", "hls_playlist_type": "event", "hls_segment_type": "fmp4",
            "hls_fmp4_init_filename": "init.mp4", "hls_segment_filename": str(out / "seg%05d.m4s")}) as dst:
        mapping = {s.index: dst.add_stream_from_template(s) for s in src.streams if s.type in ("video", "audio")}
        for packet in src.demux(list(src.streams)):
            if packet.dts is None:
                continue
            packet.stream = mapping[packet.stream.index]
            dst.mux(packet)
    return out, gt["frames"]


def upload(client, directory: Path) -> list[str]:
    keys = []
    for f in sorted(directory.iterdir()):
        client.put_object(Bucket=BUCKET, Key=PREFIX + f.name, Body=f.read_bytes())
        keys.append(PREFIX + f.name)
    return keys


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def uris(playlist: str) -> list[str]:
    out = [line for line in playlist.splitlines() if line and not line.startswith("#")]
    out += [line.split('URI="')[1].split('"')[0] for line in playlist.splitlines() if 'URI="' in line]
    return out


# ---------------------------------------------------------------- the rewrite (pure)

def test_rewrite_signs_segments_and_the_map_and_nothing_else():
    text = ("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-MAP:URI=\"init.mp4\"\n"
            '#REDACTOR-CHUNK:{"seq": 1} URI="../cam-2/x.ts"\n'
            "#EXTINF:2.0,\nseg00000.m4s\n#EXT-X-DISCONTINUITY\n#EXTINF:2.0,\nsub/seg%2000001.m4s\n"
            "#EXTINF:2.0,\nhttps://cdn.example/x.ts\nlow.m3u8\n")
    out = hp.rewrite_playlist(text, PREFIX + "index.m3u8", lambda key: f"SIGNED({key})", PREFIX)
    assert out.splitlines() == [
        "#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-PLAYLIST-TYPE:EVENT", f'#EXT-X-MAP:URI="SIGNED({PREFIX}init.mp4)"',
        '#REDACTOR-CHUNK:{"seq": 1} URI="../cam-2/x.ts"',  # a comment: left alone
        "#EXTINF:2.0,", f"SIGNED({PREFIX}seg00000.m4s)", "#EXT-X-DISCONTINUITY", "#EXTINF:2.0,",
        f"SIGNED({PREFIX}sub/seg 00001.m4s)", "#EXTINF:2.0,", "https://cdn.example/x.ts", "low.m3u8"]


@pytest.mark.parametrize("uri", ["../cam-2/seg.ts", "../../redacted/a.mp4", "/live/cam-1/seg.ts",
                                 "s3://other/x.ts", "file:///etc/passwd", "."])
def test_rewrite_refuses_to_sign_anything_outside_the_stream(uri):
    with pytest.raises(hp.PlaylistError):
        hp.rewrite_playlist(f"#EXTM3U\n#EXTINF:1,\n{uri}\n", PREFIX + "index.m3u8", lambda k: k, PREFIX)
    with pytest.raises(hp.PlaylistError):
        hp.rewrite_playlist(f'#EXTM3U\n#EXT-X-MAP:URI="{uri}"\n', PREFIX + "index.m3u8", lambda k: k, PREFIX)


@pytest.mark.parametrize("path", ["/cam-1/index.m3u8", "/cam-1/low.m3u8?x=1"])
def test_served_paths(path):
    key, prefix = hp.playlist_key(path)
    assert prefix == PREFIX and key.startswith(PREFIX) and key.endswith(".m3u8")


@pytest.mark.parametrize("path", ["/", "/cam-1", "/cam-1/seg0.m4s", "/../x/index.m3u8", "/a/b/index.m3u8",
                                  "/%2e%2e/index.m3u8"])
def test_other_paths_are_not_served(path):
    with pytest.raises(hp.PlaylistError):
        hp.playlist_key(path)


# ---------------------------------------------------------------- against S3 (moto server)

def test_signed_urls_fetch_the_private_segments_until_they_expire(s3, hls):
    client, _ = s3
    directory, _ = hls
    upload(client, directory)
    server = hp.PlaylistServer(client, BUCKET, expires=10)
    base = server.start()
    try:
        status, body = get(f"{base}/{STREAM}/index.m3u8")
        assert status == 200
        links = uris(body.decode())
        assert len(links) == len(list(directory.glob("seg*.m4s"))) + 1  # the segments and the init section
        for link in links:
            assert parse_qs(urlsplit(link).query)["X-Amz-Expires"] == ["10"]
            key = urlsplit(link).path.split(f"/{BUCKET}/", 1)[1]
            assert get(link) == (200, (directory / key.rsplit("/", 1)[1]).read_bytes())
        time.sleep(11)  # the URLs expire...
        assert all(get(link)[0] == 403 for link in links)
        status, body = get(f"{base}/{STREAM}/index.m3u8")  # ...and the next playlist fetch signs them again
        assert all(get(link)[0] == 200 for link in uris(body.decode()))
        assert server.fetches == 2
        assert get(f"{base}/cam-2/index.m3u8")[0] == 404 and get(f"{base}/{STREAM}/seg00000.m4s")[0] == 404
        with pytest.raises(ValueError, match="SigV4"):
            hp.PlaylistServer(moto_server_client_sigv2(client), BUCKET)
    finally:
        server.stop()


def moto_server_client_sigv2(client):
    import boto3

    return boto3.client("s3", endpoint_url=client.meta.endpoint_url, region_name="us-east-1")


def test_pyav_plays_the_served_playlist(s3, hls):
    client, _ = s3
    directory, frames = hls
    upload(client, directory)
    server = hp.PlaylistServer(client, BUCKET, expires=30)
    base = server.start()
    try:
        with av.open(f"{base}/{STREAM}/index.m3u8", options={"live_start_index": "0"}) as c:
            assert c.format.name == "hls"
            assert c.streams.audio, "audio kept"
            video = [f.pts for f in c.decode(video=0)]
        assert len(video) == frames
        assert video == sorted(video) and len(set(video)) == len(video)
    finally:
        server.stop()


def test_the_command_prints_the_url_serves_it_and_stops_on_ctrl_c(s3, hls, moto_server):  # noqa: F811
    import os
    import signal
    import subprocess
    import sys

    client, _ = s3
    directory, _ = hls
    upload(client, directory)
    env = {**os.environ, **moto_server.env}
    proc = subprocess.Popen([sys.executable, "-m", "redactor.hls_presign", STREAM, "--bucket", BUCKET,
                             "--expires", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=str(Path(__file__).resolve().parent.parent),
                            preexec_fn=ctrl_c_reaches)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith(f"/{STREAM}/index.m3u8")
        status, body = get(url)
        assert status == 200 and all(get(link)[0] == 200 for link in uris(body.decode()))
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    bad = subprocess.run([sys.executable, "-m", "redactor.hls_presign", "..", "--bucket", BUCKET], env=env,
                         capture_output=True, text=True, timeout=60, cwd=str(Path(__file__).resolve().parent.parent))
    assert bad.returncode == 2 and "not a stream name" in bad.stderr


def test_cloud_play_finds_the_bucket_in_the_stack_and_re_signs_on_every_fetch(s3, hls, moto_server):  # noqa: F811
    """``redactor cloud play STREAM``: the output bucket from the stack's outputs (CloudFormation in moto),
    the URL printed, each playlist fetch signed afresh (new X-Amz-Date and signatures, every URL fetching its
    segment), Ctrl-C ends it; ``redactor cloud policy --live`` grants what it reads."""
    import json
    import os
    import signal
    import subprocess
    import sys

    from tests.test_cloud_client import create_stack

    client, _ = s3
    directory, _ = hls
    keys = upload(client, directory)
    create_stack(moto_server.client("cloudformation"), "RedactorLive", {
        "RawBucketName": "raw", "OutputBucketName": BUCKET, "AcceptedSuffixes": ".mp4", "MaxKeyBytes": "1024",
        "StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:redactor"})
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, **moto_server.env}
    proc = subprocess.Popen([sys.executable, "-m", "redactor", "cloud", "play", STREAM, "--expires", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=root,
                            preexec_fn=ctrl_c_reaches)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith(f"/{STREAM}/index.m3u8"), proc.stderr.read()
        fetches = []
        for _ in range(2):
            status, body = get(url)
            assert status == 200
            fetches.append(uris(body.decode()))
            time.sleep(1.1)  # X-Amz-Date has whole seconds
        for links in fetches:
            assert len(links) == len(keys) - 1  # every object but the playlist: the segments and the init section
            assert all(parse_qs(urlsplit(u).query)["X-Amz-Expires"] == ["60"] for u in links)
            assert all(get(u)[0] == 200 for u in links)
        assert not set(fetches[0]) & set(fetches[1])
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    policy = subprocess.run([sys.executable, "-m", "redactor", "cloud", "policy", "--live"], env=env, cwd=root,
                            capture_output=True, text=True, timeout=60)
    (play,) = [st for st in json.loads(policy.stdout)["Statement"] if st["Sid"] == "PlayLiveStreams"]
    assert play["Action"] == ["s3:GetObject"] and play["Resource"] == [f"arn:aws:s3:::{BUCKET}/live/*"]
