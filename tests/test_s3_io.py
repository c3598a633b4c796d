"""S3 sources read in place (redactor.remote) against moto in server mode: real HTTP range requests, and the
bytes the server really sent counted per object."""
from __future__ import annotations

import os

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
    remote._clients.clear()  # the reader's client is made after AWS_ENDPOINT_URL points at the server
    yield client
    remote._clients.clear()


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
