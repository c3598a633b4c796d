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

from .test_live import assert_continuous, clip, hls, report_tables_of

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
    page = s3.get_object(Bucket=OUT, Key="live/cam/report.html")  # the stream's report, made at its end
    assert page["ContentType"].startswith("text/html")
    summary, chunks = report_tables_of(page["Body"].read().decode())
    assert summary["published"] == "4" and summary["stream"] == "ended (EXT-X-ENDLIST)"
    assert [r[1] for r in chunks] == ["000000.mp4", "000001.mp4", "000002.mp4", "000003.mp4"]


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
    live_rules = [r for r in rules.values() if r["Properties"].get("EventPattern", {}).get("detail", {}).get(
        "object", {}).get("key") == [{"prefix": "live/"}]]
    assert len(live_rules) == 1 and live_rules[0]["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [fid, "Arn"]}
    sweeps = [r for r in rules.values() if r["Properties"].get("ScheduleExpression") == "rate(1 minute)" and
              r["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [fid, "Arn"]}]
    assert len(sweeps) == 1 and sweeps[0]["Properties"]["State"] == "ENABLED"
    env = fn["Properties"]["Environment"]["Variables"]
    assert env["LIVE_IDLE_SECONDS"] == "300" and env["LIVE_MAX_CHUNK_SECONDS"] == "600"
    # the default detector (yunet) checks its boxes with CenterFace: the model the vision layer carries
    assert env["REDACTOR_DETECTOR"] == "yunet" and env["REDACTOR_MODEL_PATH"] == "/opt/model/centerface.onnx"
    redact_id, _ = aws_support.function_by_service(template, "redact")
    assert env["REDACT_FUNCTION"] == {"Ref": redact_id}
    mine = [p for p in aws_support.resources(template, "AWS::IAM::Policy").values()
            if any(r.get("Ref") == fn["Properties"]["Role"]["Fn::GetAtt"][0] for r in p["Properties"]["Roles"])]
    policies = json.dumps(mine)
    assert "/live/*" in policies and "/redacted/*" not in policies and "/runs/*" not in policies
    assert "/runs/live-*" in policies  # the fan-out's staging in the work bucket, nothing else of it
    statements = [st for p in mine for st in p["Properties"]["PolicyDocument"]["Statement"]]
    invoke = [st for st in statements if "lambda:InvokeFunction" in json.dumps(st["Action"])]
    assert invoke == [{"Action": "lambda:InvokeFunction", "Effect": "Allow",
                       "Resource": {"Fn::GetAtt": [redact_id, "Arn"]}}], invoke  # the Redact function alone
    (dash,) = aws_support.resources(template, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dash["Properties"]["DashboardBody"])
    handler = (aws_support.LAMBDAS / "live" / "handler.py").read_text()
    for metric in ("LiveChunksPublished", "LiveChunksFailed", "LiveChunkSeconds", "LiveChunksConflict",
                   "LiveStreamsEndedIdle", "LiveSweepErrors", "LiveSegmentsFallback"):
        assert f'\\"{metric}\\"' in body and f'name="{metric}"' in handler, metric  # shown and emitted
    assert "Live chunk time, download to playlist (s)" in body
    # per stream: a Logs Insights table over the function's own log group, of the fields its "chunk" line logs
    (widget,) = [w for w in aws_support.dashboard_body(template)["widgets"] if w["type"] == "log"]
    query = widget["properties"]["query"]
    assert query.startswith("SOURCE '<") and 'filter message = "chunk"' in query
    for field in ("chunk_seconds", "stream", "status"):
        assert field in query and f'"{field}": ' in handler, field


def test_live_idle_seconds_0_leaves_ending_to_end(tmp_path):
    """``-c live_idle_seconds=0``: no sweep rule (only END ends a stream); other values are checked."""
    from stacks.settings import Settings, SettingsError
    _, stack = aws_support.synth(str(tmp_path / "cdk.out"), nag=False, live=True, live_idle_seconds=0)
    template = __import__("aws_cdk").assertions.Template.from_stack(stack).to_json()
    assert not [r for r in aws_support.resources(template, "AWS::Events::Rule").values()
                if r["Properties"].get("ScheduleExpression") == "rate(1 minute)"]
    for bad in (30, 86401, -1):
        with pytest.raises(SettingsError, match="live_idle_seconds"):
            Settings(live_idle_seconds=bad)


def playlist_text(s3, stream: str = "cam") -> str:
    return s3.get_object(Bucket=OUT, Key=f"live/{stream}/index.m3u8")["Body"].read().decode()


def test_an_idle_stream_is_ended_by_the_sweep_but_not_while_a_chunk_is_being_redacted(live, tmp_path, monkeypatch):
    """The scheduled sweep (a fake clock): a stream with no upload and no publish for LIVE_IDLE_SECONDS gets
    EXT-X-ENDLIST, unless a chunk of it is claimed and unlisted (being redacted) and its claim has not expired;
    then that chunk is a gap, a chunk arriving afterwards is after-end, and a stream already ended is left
    alone, as is a stream whose playlist cannot be read (the others are swept). The playlist's writes race a
    chunk's: the first conditional write of the sweep fails."""
    mod, s3 = live
    monkeypatch.setenv("LIVE_IDLE_SECONDS", "300")
    ctx = aws_support.FakeContext("redactor-live")
    sweep = {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}
    a, b = clip(tmp_path / "a.mp4", seed=1), clip(tmp_path / "b.mp4", seed=2)
    for stream in ("cam", "done"):
        s3.put_object(Bucket=RAW, Key=f"live/{stream}/000000.mp4", Body=open(a["path"], "rb").read())
        assert mod.handler(event(f"live/{stream}/000000.mp4"), ctx)["status"] == "published"
    s3.put_object(Bucket=RAW, Key="live/done/END", Body=b"")
    assert mod.handler(event("live/done/END"), ctx)["status"] == "ended"
    ended_before = playlist_text(s3, "done")
    # chunk 1 of cam arrived and is being redacted (claimed, not listed)
    s3.put_object(Bucket=RAW, Key="live/cam/000001.mp4", Body=open(b["path"], "rb").read())
    s3.put_object(Bucket=OUT, Key="live/cam/.claims/000001.json",
                  Body=json.dumps({"name": "000001.mp4", "sha256": "x", "time": time.time()}))
    s3.put_object(Bucket=OUT, Key="live/bad/index.m3u8", Body=b"#EXTM3U\n#REDACTOR-CHUNK:{damaged\n")
    t0 = time.time()
    for later, expect in ((100, []), (400, []), (1000, ["cam"]), (2000, [])):
        monkeypatch.setattr(mod, "clock", lambda: t0 + later)
        if later == 1000:
            lost = fail_first_playlist_write(monkeypatch)
        assert mod.handler(sweep, ctx) == {"status": "swept", "ended": expect, "errors": ["bad"]}, later
        assert ("#EXT-X-ENDLIST" in playlist_text(s3)) == (later >= 1000)
    assert lost == [1]
    pl = __import__("redactor.hls", fromlist=["Playlist"]).Playlist.parse(playlist_text(s3))
    assert [(c.seq, c.status, c.reason) for c in pl.chunks] == [(0, "ok", None), (1, "gap", "missing")]
    record = json.loads(s3.get_object(Bucket=OUT, Key="live/cam/records/stream.idle.json")["Body"].read())
    assert record["kind"] == "idle" and record["idle_seconds"] > 300 and record["limit_seconds"] == 300
    assert playlist_text(s3, "done") == ended_before
    s3.put_object(Bucket=RAW, Key="live/cam/000002.mp4", Body=open(b["path"], "rb").read())
    assert mod.handler(event("live/cam/000002.mp4"), ctx)["status"] == "after-end"
    assert "Contents" in s3.list_objects_v2(Bucket=OUT, Prefix="live/cam/records/000002.mp4.after-end.json")


def fail_first_playlist_write(monkeypatch) -> list[int]:
    """The next conditional write of a playlist answers PreconditionFailed once (another writer got in first:
    the playlist is re-read and the write tried again). Returns a list that counts the failures."""
    from redactor.live.store import S3Store
    real, failed = S3Store.write_if, []

    def write_if(self, name, data, etag):
        if name == "index.m3u8" and not failed:
            failed.append(1)
            return False
        return real(self, name, data, etag)
    monkeypatch.setattr(S3Store, "write_if", write_if)
    return failed


def test_a_chunk_too_long_for_the_function_is_refused_as_a_gap(live, tmp_path, monkeypatch):
    """Longer than LIVE_MAX_CHUNK_SECONDS: a too-long record and a gap as long as the chunk, before any frame
    is redacted; the stream goes on."""
    mod, s3 = live
    ctx = aws_support.FakeContext("redactor-live")
    long, short = clip(tmp_path / "long.mp4", seconds=2.0, seed=1), clip(tmp_path / "short.mp4", seed=2)
    monkeypatch.setenv("LIVE_MAX_CHUNK_SECONDS", "1.8")
    monkeypatch.setattr(mod, "process_chunk", refusing_before_redaction(mod.process_chunk))
    for n, c in enumerate((long, short)):
        s3.put_object(Bucket=RAW, Key=f"live/cam/{n:06d}.mp4", Body=open(c["path"], "rb").read())
    assert mod.handler(event("live/cam/000000.mp4"), ctx)["status"] == "gap"
    assert mod.handler(event("live/cam/000001.mp4"), ctx)["status"] == "published"
    record = json.loads(s3.get_object(Bucket=OUT, Key="live/cam/records/000000.mp4.too-long.json")["Body"].read())
    assert record["gap"] and "2.0 s long; chunks of at most 1.8 s" in record["error"], record
    text = playlist_text(s3)
    assert "#EXT-X-GAP\n#EXTINF:2.000000,\ngap-000000.ts" in text and "seg-000001-00.ts" in text
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=OUT, Prefix="live/cam/")["Contents"]]
    assert not [k for k in keys if k.startswith("live/cam/seg-000000")]


def refusing_before_redaction(process_chunk):
    """process_chunk where the engine's redaction of chunk 0 fails the test once its plan is made."""
    def run(pub, path, seq, name, config, *a, **kw):
        if seq != 0:
            return process_chunk(pub, path, seq, name, config, *a, **kw)
        from redactor import pipeline
        real = pipeline.redact_file

        def redact_file(src, out, cfg, on_plan=None, **kws):
            return real(src, out, cfg, on_plan=lambda plan: (on_plan(plan), pytest.fail("redacted")), **kws)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(pipeline, "redact_file", redact_file)
            return process_chunk(pub, path, seq, name, config, *a, **kw)
    return run
