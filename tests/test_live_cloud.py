"""The live function (lambdas/live/handler.py) under moto: chunks uploaded to ``live/<stream>/`` in the raw
bucket become HLS under ``live/<stream>/`` in the output bucket, in order whatever order they finish in; a
repeated delivery is processed once, other content under a taken number is a conflict, a chunk after END is
recorded; the file workflow's starter ignores live keys; the stack wires the function to that prefix only."""
from __future__ import annotations

import json
import threading
import time

import pytest

from tests import aws_support

from .test_live import assert_continuous, clip, hls

pytest.importorskip("moto")
RAW, OUT = "raw-live", "out-live"


def event(key: str, bucket: str = RAW) -> dict:
    return {"detail": {"bucket": {"name": bucket}, "object": {"key": key}}}


@pytest.fixture
def live(monkeypatch, model_path):
    import boto3
    import moto
    with moto.mock_aws():
        c = boto3.client("s3", region_name="us-east-1")
        for b in (RAW, OUT):
            c.create_bucket(Bucket=b)
        for k, v in {"RAW_BUCKET": RAW, "OUTPUT_BUCKET": OUT, "LIVE_GAP_WAIT": "120", "LIVE_END_WAIT": "120",
                     "REDACTOR_WORKERS": "1", "REDACTOR_MODEL_PATH": model_path}.items():
            monkeypatch.setenv(k, v)
        from common import s3 as common_s3
        common_s3.reset_client()
        mod = aws_support.load_handler("live")
        yield mod, c
        common_s3.reset_client()


def test_start_ignores_live_chunks(monkeypatch):
    monkeypatch.setenv("RAW_BUCKET", "raw")
    monkeypatch.setenv("STATE_MACHINE_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:redactor")
    start = aws_support.load_handler("start")
    monkeypatch.setattr(start, "sfn", lambda: pytest.fail("a live chunk starts no file run"))
    monkeypatch.setattr(start.s3, "head", lambda *a: pytest.fail("a live chunk starts no file run"))
    ctx = aws_support.FakeContext("redactor-start")
    assert start.handler(event("live/cam/000001.mp4", "raw"), ctx)["status"] == "ignored"


def test_chunks_uploaded_out_of_order_play_in_order_once_each(live, tmp_path):
    mod, s3 = live
    ctx = aws_support.FakeContext("redactor-live")
    clips = [clip(tmp_path / f"{n}.mp4", seconds=1.5, seed=n) for n in range(3)]
    uploaded, listed, results = {}, {}, {}

    def upload(n, path=None):
        key = f"live/cam/{n:06d}.mp4"
        s3.put_object(Bucket=RAW, Key=key, Body=open(path or clips[n]["path"], "rb").read())
        uploaded[n] = time.perf_counter()
        return key

    def run(n):
        results[n] = mod.handler(event(upload(n)), ctx)
        listed[n] = time.perf_counter()

    # chunk 1 arrives and finishes first: it waits for chunk 0, whose writer publishes both
    first = threading.Thread(target=run, args=(1,))
    first.start()
    while "Contents" not in s3.list_objects_v2(Bucket=OUT, Prefix="live/cam/.staged/000001.json"):
        assert first.is_alive()
        time.sleep(0.05)
    run(0)
    first.join(300)
    run(2)
    assert [results[n]["status"] for n in range(3)] == ["published"] * 3
    for n in range(3):
        print(f"chunk {n}: listed {listed[n] - uploaded[n]:.2f} s after its upload (moto, 1 worker)")
    again = mod.handler(event(f"live/cam/{1:06d}.mp4"), ctx)  # the same delivery again
    assert again["status"] == "duplicate"
    # a claim of the same content whose attempt ended without a result (timed out long ago): taken again
    stale = json.loads(s3.get_object(Bucket=OUT, Key="live/cam/.claims/000002.json")["Body"].read())
    s3.put_object(Bucket=OUT, Key="live/cam/.claims/000003.json", Body=json.dumps({**stale, "time": 0}))
    s3.put_object(Bucket=RAW, Key="live/cam/000003.mp4", Body=open(clips[2]["path"], "rb").read())
    assert mod.handler(event("live/cam/000003.mp4"), ctx)["status"] == "published"
    other = clip(tmp_path / "other.mp4", seed=9)
    assert mod.handler(event(upload(2, other["path"])), ctx)["status"] == "conflict"
    s3.put_object(Bucket=RAW, Key="live/cam/END", Body=b"")
    assert mod.handler(event("live/cam/END"), ctx) == {"status": "ended", "stream": "cam", "chunks": 4}
    assert mod.handler(event(upload(4, other["path"])), ctx)["status"] == "after-end"

    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=OUT, Prefix="live/cam/")["Contents"]]
    assert not [k for k in keys if "/.staged/" in k]
    assert sorted(k.split("/", 2)[2] for k in keys if "/records/" in k) == [
        "records/000000.mp4.report.json", "records/000001.mp4.report.json", "records/000002.mp4.conflict.json",
        "records/000002.mp4.report.json", "records/000003.mp4.report.json", "records/000004.mp4.after-end.json"]
    local = tmp_path / "hls"
    local.mkdir()
    for k in keys:
        if k.endswith((".m3u8", ".ts")):
            (local / k.rsplit("/", 1)[1]).write_bytes(s3.get_object(Bucket=OUT, Key=k)["Body"].read())
    text = (local / "index.m3u8").read_text()
    assert text.rstrip().endswith("#EXT-X-ENDLIST") and "GAP" not in text
    got = hls(local / "index.m3u8")
    assert len(got["video"]) == sum(c["frames"] for c in clips) + clips[2]["frames"]
    assert_continuous(got["video"], 10)
    conflict = json.loads(s3.get_object(Bucket=OUT, Key="live/cam/records/000002.mp4.conflict.json")["Body"].read())
    assert "other content" in conflict["error"]


def test_the_stack_routes_live_keys_to_the_live_function_only(tmp_path):
    """With ``-c live=true``: one live function, the rule for ``live/`` targets it, its IAM is on live/* only
    (the synth runs cdk-nag: every finding of the construct is acknowledged with its reason)."""
    _, stack = aws_support.synth(str(tmp_path / "cdk.out"), nag=True, live=True)
    template = __import__("aws_cdk").assertions.Template.from_stack(stack).to_json()
    fns = {k: v for k, v in aws_support.resources(template, "AWS::Lambda::Function").items()
           if "redactor-live" == v["Properties"].get("Environment", {}).get("Variables", {}).get(
               "POWERTOOLS_SERVICE_NAME")}
    assert len(fns) == 1
    (fid, fn), = fns.items()
    assert fn["Properties"]["MemorySize"] == 3008 and fn["Properties"]["Timeout"] == 900
    rules = aws_support.resources(template, "AWS::Events::Rule")
    live_rules = [r for r in rules.values() if r["Properties"]["EventPattern"]["detail"]["object"]["key"] ==
                  [{"prefix": "live/"}]]
    assert len(live_rules) == 1 and live_rules[0]["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [fid, "Arn"]}
    policies = json.dumps([p for p in aws_support.resources(template, "AWS::IAM::Policy").values()
                           if any(r.get("Ref") == fn["Properties"]["Role"]["Fn::GetAtt"][0]
                                  for r in p["Properties"]["Roles"])])
    assert "/live/*" in policies and "/redacted/*" not in policies and "/runs/*" not in policies
    (dash,) = aws_support.resources(template, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dash["Properties"]["DashboardBody"])
    handler = (aws_support.LAMBDAS / "live" / "handler.py").read_text()
    for metric in ("LiveChunksPublished", "LiveChunksFailed", "LiveChunkSeconds", "LiveChunksConflict"):
        assert f'\\"{metric}\\"' in body and f'name="{metric}"' in handler, metric  # shown and emitted
    assert "Live chunk time, download to playlist (s)" in body
