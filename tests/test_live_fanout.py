"""The live function's fan-out end to end under moto: a chunk uploaded to ``live/<stream>/`` is planned by the
live function, its first segment redacted by its own process pool and the others by the Redact function's
handler (lambdas/redact/handler.py, run in-process where moto's Lambda would run it: LambdaSimpleBackend.invoke),
with both functions' configuration taken from the synthesized stack; the playlist is opened with FFmpeg's HLS
demuxer. A throttled Redact function leaves the segment to the live function; a segment that fails everywhere
makes the chunk a gap. Either way nothing is left in the work bucket."""
from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
import time
from unittest import mock

import pytest

from tests import aws_support

from .test_live import assert_continuous, clip, hls

pytest.importorskip("moto")
from moto.awslambda.exceptions import LambdaClientError  # noqa: E402
from moto.awslambda_simple.models import LambdaSimpleBackend  # noqa: E402

from tests.test_workflow_e2e import _fresh_moto_lock_in_forked_child  # noqa: E402,F401 - its fork hook

REGION, ACCOUNT = "us-east-1", "123456789012"
RAW, WORK, OUT = "raw-fan", "work-fan", "out-fan"
REDACT = "redactor-redact"


def event(key: str, bucket: str = RAW) -> dict:
    return {"detail": {"bucket": {"name": bucket}, "object": {"key": key}}}


@functools.lru_cache(maxsize=1)
def live_template() -> dict:
    """The stack as ``cdk synth -c live=true`` makes it (cdk-nag on)."""
    import tempfile
    _, stack = aws_support.synth(tempfile.mkdtemp(prefix="redactor-cdk-live-"), nag=True, live=True)
    return __import__("aws_cdk").assertions.Template.from_stack(stack).to_json()


def stack_env(service: str) -> dict:
    """The function's environment as the synthesized stack sets it (strings only: references are the test's)."""
    _, fn = aws_support.function_by_service(live_template(), service)
    return {k: v for k, v in fn["Properties"]["Environment"]["Variables"].items() if isinstance(v, str)}


class Throttled(LambdaClientError):
    code = 429

    def __init__(self):
        super().__init__("TooManyRequestsException", "Rate Exceeded.")


class Cloud:
    """moto S3 + Lambda with the live and Redact handlers; ``behaviour(n)`` decides the n-th Redact invoke:
    "run" (the real handler), "throttle" (429) or "fail" (the handler's error)."""

    def __init__(self, model_path: str):
        import boto3
        self.s3 = boto3.client("s3", region_name=REGION)
        for b in (RAW, WORK, OUT):
            self.s3.create_bucket(Bucket=b)
        lam = boto3.client("lambda", region_name=REGION)
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="fan", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        from tests.test_workflow_e2e import _fake_zip
        lam.create_function(FunctionName=REDACT, Runtime="python3.12", Role=role, Handler="handler.handler",
                            Code={"ZipFile": _fake_zip()})
        live, redact = stack_env("live"), stack_env("redact")
        assert live["REDACT_TIMEOUT"] == "900" and int(live["LIVE_FANOUT_WIDTH"]) >= 1
        engine = {k: v for k, v in live.items() if k.startswith("REDACTOR_")}
        assert engine == {k: v for k, v in redact.items() if k.startswith("REDACTOR_")}, "one engine config"
        self.env = {**{k: v for k, v in live.items() if k.startswith(("LIVE_", "REDACT_TIMEOUT", "POWERTOOLS"))},
                    **engine, "RAW_BUCKET": RAW, "WORK_BUCKET": WORK, "OUTPUT_BUCKET": OUT,
                    "REDACT_FUNCTION": REDACT, "LIVE_GAP_WAIT": "120", "REDACTOR_WORKERS": "1",
                    "REDACTOR_MODEL_PATH": model_path, "AWS_DEFAULT_REGION": REGION}
        self.behaviour = lambda n: "run"
        self.invokes: list[tuple[int, str]] = []  # (segment index, what happened)
        self.lock = threading.Lock()  # one Redact at a time: a warm container serves one request at a time

    @contextlib.contextmanager
    def running(self):
        with mock.patch.dict(os.environ, self.env):
            from common import s3 as common_s3
            from redactor import remote
            common_s3.reset_client()
            remote.reset()
            self.live, self.redact = aws_support.load_handler("live"), aws_support.load_handler("redact")
            with mock.patch.object(LambdaSimpleBackend, "invoke", self._invoke):
                yield self
            common_s3.reset_client()

    def _invoke(self, function_name, qualifier, body, headers, response_headers):
        request = json.loads(body)
        index = request["segment"]["index"]
        what = self.behaviour(len(self.invokes))
        self.invokes.append((index, what))
        if what == "throttle":
            raise Throttled()
        try:
            if what == "fail":
                raise RuntimeError("the segment's container ran out of memory")
            with self.lock:
                return json.dumps(self.redact.handler(request, aws_support.FakeContext(REDACT))).encode()
        except Exception as e:  # noqa: BLE001 - reported like Lambda reports a handler's error
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": type(e).__name__, "errorMessage": str(e)}).encode()

    def upload(self, n: int, path: str) -> str:
        key = f"live/cam/{n:06d}.mp4"
        self.s3.put_object(Bucket=RAW, Key=key, Body=open(path, "rb").read())
        return key

    def staged(self) -> list[str]:
        return [o["Key"] for o in self.s3.list_objects_v2(Bucket=WORK).get("Contents") or []]

    def end(self) -> None:
        """END: the playlist gets EXT-X-ENDLIST (FFmpeg's HLS demuxer waits for more of an open one)."""
        self.s3.put_object(Bucket=RAW, Key="live/cam/END", Body=b"")
        assert self.live.handler(event("live/cam/END"), aws_support.FakeContext("redactor-live"))["status"] == "ended"

    def download_hls(self, dest) -> str:
        dest.mkdir()
        for o in self.s3.list_objects_v2(Bucket=OUT, Prefix="live/cam/")["Contents"]:
            if o["Key"].endswith((".m3u8", ".ts")):
                (dest / o["Key"].rsplit("/", 1)[1]).write_bytes(
                    self.s3.get_object(Bucket=OUT, Key=o["Key"])["Body"].read())
        return str(dest / "index.m3u8")


@pytest.fixture
def cloud(model_path):
    import moto
    with moto.mock_aws(config={"lambda": {"use_docker": False}}):
        yield Cloud(model_path)


def chunks(tmp_path, count: int = 2) -> list[dict]:
    """10 s chunks (10 fps, keyframes every 2 s, AAC): the planner makes several segments of each."""
    return [clip(tmp_path / f"{n}.mp4", seconds=10.0, seed=n, gop=20) for n in range(count)]


def test_a_chunk_is_fanned_out_to_the_redact_function_and_plays_whole(cloud, tmp_path):
    clips = chunks(tmp_path)
    ctx = aws_support.FakeContext("redactor-live")
    with cloud.running():
        for n, c in enumerate(clips):
            key = cloud.upload(n, c["path"])
            t0 = time.perf_counter()
            out = cloud.live.handler(event(key), ctx)
            print(f"chunk {n} (10 s): listed {time.perf_counter() - t0:.2f} s after its upload "
                  f"(moto, fan-out, 1 worker, 1 Redact at a time)")
            assert out["status"] == "published", out
        cloud.end()
    remote = [i for i, what in cloud.invokes if what == "run"]
    assert remote and 0 not in remote, cloud.invokes  # segment 0 is the live function's own
    assert not cloud.staged()
    got = hls(cloud.download_hls(tmp_path / "hls"))
    assert len(got["video"]) == sum(c["frames"] for c in clips)
    assert_continuous(got["video"], 10)
    assert got["audio"], "the chunk's audio is kept"


def no_waits(cloud: Cloud, monkeypatch, slept: list) -> None:
    """The fan-out's backoff recorded instead of slept."""
    real = cloud.live.fan_out

    def fan_out(*a):
        runner = real(*a)
        runner.sleep = slept.append
        return runner
    monkeypatch.setattr(cloud.live, "fan_out", fan_out)


def test_a_throttled_redact_function_leaves_the_segments_to_the_live_function(cloud, tmp_path, monkeypatch):
    clips = chunks(tmp_path, 1)
    cloud.behaviour = lambda n: "throttle"
    from redactor.live import fanout
    slept = []
    with cloud.running():
        no_waits(cloud, monkeypatch, slept)
        out = cloud.live.handler(event(cloud.upload(0, clips[0]["path"])), aws_support.FakeContext("redactor-live"))
        cloud.end()
    assert out["status"] == "published", out
    attempts = fanout.FanOut.attempts
    assert len(cloud.invokes) == attempts * len({i for i, _ in cloud.invokes}), (len(cloud.invokes), cloud.invokes)
    assert sorted(set(slept)) == [0.5, 1.0] and len(slept) == (attempts - 1) * len({i for i, _ in cloud.invokes})
    assert not cloud.staged()
    got = hls(cloud.download_hls(tmp_path / "hls"))
    assert len(got["video"]) == clips[0]["frames"]
    assert_continuous(got["video"], 10)


def test_a_segment_that_fails_everywhere_makes_the_chunk_a_gap(cloud, tmp_path, monkeypatch):
    """The Redact function fails every attempt and the live function's own redaction of the segment fails too:
    the chunk is a gap, no frame of it is published, nothing staged is left; the next chunk plays."""
    clips = chunks(tmp_path)
    from redactor.live import fanout
    real = fanout.redact_segments

    def local(source, segs, *a, **kw):
        if "000000" in source and any(s.index > 0 for s in segs):
            raise fanout.RemoteSegmentError("the fallback failed too")
        return real(source, segs, *a, **kw)
    monkeypatch.setattr(fanout, "redact_segments", local)
    ctx = aws_support.FakeContext("redactor-live")
    with cloud.running():
        no_waits(cloud, monkeypatch, [])
        cloud.behaviour = lambda n: "fail"
        assert cloud.live.handler(event(cloud.upload(0, clips[0]["path"])), ctx)["status"] == "gap"
        cloud.behaviour = lambda n: "run"
        assert cloud.live.handler(event(cloud.upload(1, clips[1]["path"])), ctx)["status"] == "published"
        cloud.end()
    assert not cloud.staged()
    keys = [o["Key"] for o in cloud.s3.list_objects_v2(Bucket=OUT, Prefix="live/cam/")["Contents"]]
    assert not [k for k in keys if k.startswith(("live/cam/seg-000000", "live/cam/.staged/"))], keys
    record = json.loads(cloud.s3.get_object(Bucket=OUT, Key="live/cam/records/000000.mp4.failed.json")["Body"]
                        .read())
    assert record["gap"] and "fallback failed" in record["error"], record
    got = hls(cloud.download_hls(tmp_path / "hls"))
    assert len(got["video"]) == clips[1]["frames"]


def test_segments_that_would_end_after_the_functions_time_make_the_chunk_a_gap_at_once(cloud, tmp_path,
                                                                                       monkeypatch):
    """Every invoke throttled and too little of the function's time left for the live function to redact the
    segments itself (at the rate of its own segment 0): the chunk fails before the function would time out, a
    gap with its record, nothing of it published, nothing left staged."""
    clips = chunks(tmp_path, 1)
    cloud.behaviour = lambda n: "throttle"
    with cloud.running():
        no_waits(cloud, monkeypatch, [])
        ctx = aws_support.FakeContext("redactor-live")
        monkeypatch.setattr(cloud.live, "PUBLISH_RESERVE", ctx.get_remaining_time_in_millis() / 1000 - 0.2)
        assert cloud.live.handler(event(cloud.upload(0, clips[0]["path"])), ctx)["status"] == "gap"
    record = json.loads(cloud.s3.get_object(Bucket=OUT, Key="live/cam/records/000000.mp4.failed.json")["Body"]
                        .read())
    assert record["gap"] and "more than the function has left" in record["error"], record
    assert not cloud.staged()
    keys = [o["Key"] for o in cloud.s3.list_objects_v2(Bucket=OUT, Prefix="live/cam/")["Contents"]]
    assert not [k for k in keys if k.startswith(("live/cam/seg-", "live/cam/.staged/"))], keys
