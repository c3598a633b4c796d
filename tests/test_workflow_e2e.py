"""End to end under moto: the synthesized state machine definition runs in moto's Step Functions interpreter
against moto S3, and every Lambda invocation is dispatched in-process to the real handler.

Assertions are on what lands in S3 (moto can report a Distributed Map as SUCCEEDED when a child failed).
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import traceback
from pathlib import Path
from unittest import mock

import boto3
import numpy as np
import pytest

from redactor import naming
from redactor.containers import CONTENT_TYPES
from tests import aws_support as aws
from tests.conftest import audio_packets, video_times

moto = pytest.importorskip("moto")
from moto import mock_aws  # noqa: E402
from moto.awslambda_simple.models import LambdaSimpleBackend  # noqa: E402

REGION = "us-east-1"
ACCOUNT = "123456789012"


def _fresh_moto_lock_in_forked_child() -> None:
    """Every in-process moto request takes moto's one global lock (``BackendDict.__getitem__`` ->
    ``_create_account_specific_backend``: ``with backend_lock``). The Redact handler forks its workers while other
    threads of this process make moto requests (the test polling the execution, the interpreter's Map threads);
    a fork in that instant copies the lock as held, and the worker's first S3 request waited forever: the e2e's
    4th Redact never returned (twice in ~20 runs; here once in 6 runs of 8 concurrent Redacts, gdb showed the
    worker in ``with backend_lock`` under ``head_object``). In a forked child no other thread exists, so the
    lock starts free there. (On Lambda a worker talks HTTP to S3; tests/test_deployed_runtime.py runs that.)"""
    from moto.core import base_backend

    base_backend.backend_lock = threading.RLock()


os.register_at_fork(after_in_child=_fresh_moto_lock_in_forked_child)
HANDLERS = ("start", "plan", "redact", "stitch", "record_failure", "faces",  # faces: detector=rekognition-video
            "live")  # live: -c live=true
FN_NAMES = {name: f"redactor-{name.replace('_', '-')}" for name in HANDLERS}


def _fake_zip() -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("handler.py", "def handler(event, context):\n    return event\n")
    return buf.getvalue()


def _has_function(template: dict, name: str) -> bool:
    try:
        aws.function_by_service(template, name)
        return True
    except KeyError:
        return False


class Pipeline:
    """The stack's resources recreated in moto, with the synthesized workflow definition."""

    def __init__(self, template: dict, model_path: str, tmp: Path, engine_env: dict[str, str]):
        self.template = template
        self.s3 = boto3.client("s3", region_name=REGION)
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.raw, self.work, self.output = "redactor-raw", "redactor-work", "redactor-output"
        for b in (self.raw, self.work, self.output):
            self.s3.create_bucket(Bucket=b)
        for b in (self.raw, self.output):
            self.s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="redactor-test", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "lambda.amazonaws.com"}}]}))["Role"]["Arn"]
        lam = boto3.client("lambda", region_name=REGION)
        subs = {}
        self.handlers = [n for n in HANDLERS if _has_function(template, n)]
        for name in self.handlers:
            arn = lam.create_function(FunctionName=FN_NAMES[name], Runtime="python3.13", Role=role,
                                      Handler="handler.handler", Code={"ZipFile": _fake_zip()},
                                      Architectures=["arm64"])["FunctionArn"]
            lid, _ = aws.function_by_service(template, name)
            subs[lid] = arn
        for name, bucket in (("Raw", self.raw), ("Work", self.work), ("Output", self.output)):
            subs[aws.logical_id_of(template, "AWS::S3::Bucket", f"/Storage/{name}/")] = bucket
        self.definition = aws.render_definition(template, subs)
        self.state_machine_arn = self.sfn.create_state_machine(
            name="redactor", definition=self.definition,
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/redactor-test", type="STANDARD")["stateMachineArn"]

        # the notification topic, with a queue subscribed to it (raw messages: the JSON the handler published)
        sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
        self.topic_arn = sns.create_topic(Name="redactor-notifications")["TopicArn"]
        self.notified_url = sqs.create_queue(QueueName="redactor-notified")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.notified_url,
                                             AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=queue_arn,
                      Attributes={"RawMessageDelivery": "true"})
        self.sqs = sqs

        # the functions' environment, as the stack sets it (plus test-sized engine settings)
        _, fn = aws.function_by_service(template, "redact")
        self.env = {
            "RAW_BUCKET": self.raw, "WORK_BUCKET": self.work, "OUTPUT_BUCKET": self.output,
            "STATE_MACHINE_ARN": self.state_machine_arn, "NOTIFICATION_TOPIC_ARN": self.topic_arn,
            **{k: v for k, v in fn["Properties"]["Environment"]["Variables"].items()
               if k.startswith("REDACTOR_") and isinstance(v, str)},
            "REDACTOR_MODEL_PATH": model_path,
            **engine_env,
        }
        self.modules = {}
        self.invocations: list[tuple[str, dict, str]] = []  # (handler, event, outcome)
        self.running_now: list[str] = []  # handlers in an invocation right now
        self.tmp = tmp

    @contextlib.contextmanager
    def running(self):
        with mock.patch.dict(os.environ, self.env):
            from common import s3 as common_s3
            from redactor import remote

            common_s3.reset_client()
            remote.reset()  # the engine's own S3 clients (sources read in place) belong to this mock too
            self.modules = {name: aws.load_handler(name) for name in self.handlers}
            with mock.patch.object(LambdaSimpleBackend, "invoke", self._invoke_factory()):
                yield self
            common_s3.reset_client()

    def _invoke_factory(self):
        pipeline = self
        by_name = {fn_name: handler for handler, fn_name in FN_NAMES.items()}
        # One invocation at a time per function, as a warm Lambda container serves one request at a time (moto
        # runs the Map's children in threads of this one process): no Redact forks its workers while a sibling
        # Redact is mid-call in another thread (see _fresh_moto_lock_in_forked_child for the lock that hung).
        container = {handler: threading.Lock() for handler in HANDLERS}

        def invoke(backend, function_name, qualifier, body, headers, response_headers):
            name = function_name.split(":function:")[-1].split(":")[0]
            handler = by_name[name]
            event = json.loads(body) if body else {}
            try:
                with container[handler]:
                    pipeline.running_now.append(handler)
                    try:
                        result = pipeline.modules[handler].handler(event, aws.FakeContext(name))
                    finally:
                        pipeline.running_now.remove(handler)
                pipeline.invocations.append((handler, event, "ok"))
                return json.dumps(result).encode()
            except Exception as e:  # noqa: BLE001 - reported to the interpreter like Lambda does
                pipeline.invocations.append((handler, event, f"{type(e).__name__}: {e}"))
                response_headers["x-amz-function-error"] = "Unhandled"
                return json.dumps({"errorType": type(e).__name__, "errorMessage": str(e),
                                   "stackTrace": traceback.format_tb(e.__traceback__)[-3:]}).encode()

        return invoke

    # -- driving the pipeline

    def upload(self, path: str, key: str) -> dict:
        self.s3.upload_file(path, self.raw, key)
        head = self.s3.head_object(Bucket=self.raw, Key=key)
        return {
            "version": "0", "id": "e2e-event", "detail-type": "Object Created", "source": "aws.s3",
            "account": ACCOUNT, "region": REGION, "resources": [f"arn:aws:s3:::{self.raw}"],
            "detail": {"version": "0", "bucket": {"name": self.raw},
                       "object": {"key": key, "size": head["ContentLength"], "etag": head["ETag"].strip('"'),
                                  "version-id": head.get("VersionId"), "sequencer": self.sequencer()},
                       "reason": "PutObject"},
        }

    def sequencer(self) -> str:
        """A realistic S3 event sequencer (18 hex digits), larger for every upload than the one before."""
        self._sequencer = max(getattr(self, "_sequencer", 0) + 1, time.time_ns())
        return f"00{self._sequencer:016X}"

    def deliver(self, event: dict) -> dict:
        """EventBridge -> starter (in-process, as the rule target would)."""
        return self.modules["start"].handler(event, aws.FakeContext(FN_NAMES["start"]))

    def wait(self, execution_arn: str, timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            d = self.sfn.describe_execution(executionArn=execution_arn)
            if d["status"] != "RUNNING":
                return d
            time.sleep(0.2)
        raise TimeoutError(f"execution still running after {timeout}s; invocations not returned: "
                           f"{self.running_now or 'none'}; returned: {[i[0] for i in self.invocations]}")

    def state_names(self, execution_arn: str) -> list[str]:
        events = self.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
        names = []
        for e in events:
            for k, v in e.items():
                if k.endswith("EventDetails") and isinstance(v, dict) and "name" in v and k.startswith("stateEntered"):
                    names.append(v["name"])
        return names

    def notifications(self) -> list[dict]:
        """The messages published to the notification topic since the last call."""
        out = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.notified_url, MaxNumberOfMessages=10).get("Messages", [])
            if not got:
                return out
            for m in got:
                out.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=self.notified_url, ReceiptHandle=m["ReceiptHandle"])

    def run_ended(self, execution_arn: str) -> dict:
        """What EventBridge delivers to Record failure when the execution has ended (Step Functions Execution
        Status Change, as documented), delivered to it; returns its result (the message it published)."""
        d = self.sfn.describe_execution(executionArn=execution_arn)
        return self.invoke_record_failure(status_change_event(d))

    def invoke_record_failure(self, event: dict) -> dict:
        return self.modules["record_failure"].handler(event, aws.FakeContext(FN_NAMES["record_failure"]))

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        return sorted(o["Key"] for o in self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))

    def get(self, bucket: str, key: str, dest: Path) -> Path:
        self.s3.download_file(bucket, key, str(dest))
        return dest

    def get_json(self, bucket: str, key: str):
        return json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def status_change_event(execution: dict) -> dict:
    """EventBridge's "Step Functions Execution Status Change" event for a DescribeExecution answer, in the shape
    the Step Functions developer guide documents (input and output as JSON strings, dates in epoch ms)."""
    def ms(t):
        return int(t.timestamp() * 1000) if t is not None else None

    arn = execution["executionArn"]
    return {
        "version": "0", "id": "315c1398-40ff-a850-213b-158f73e60175",
        "detail-type": "Step Functions Execution Status Change", "source": "aws.states", "account": ACCOUNT,
        "time": "2026-12-06T00:00:00Z", "region": REGION, "resources": [arn],
        "detail": {
            "executionArn": arn, "stateMachineArn": execution["stateMachineArn"], "name": execution["name"],
            "status": execution["status"], "startDate": ms(execution.get("startDate")),
            "stopDate": ms(execution.get("stopDate")), "input": execution.get("input"),
            "output": execution.get("output"), "inputDetails": {"included": True},
            "outputDetails": {"included": True} if execution.get("output") else None,
            "error": execution.get("error"), "cause": execution.get("cause"),
        },
    }


@pytest.fixture(scope="module")
def template():
    return aws.synthesized_once()[0]


@pytest.fixture
def pipeline(template, model_path, tmp_path):
    config = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    with mock_aws(config=config):
        p = Pipeline(template, model_path, tmp_path,
                     engine_env={"REDACTOR_SEGMENT_SECONDS": "0.5", "REDACTOR_WORKERS": "1"})
        with p.running():
            yield p


def _gray(path: str) -> list[np.ndarray]:
    import av

    with av.open(path) as c:
        return [f.to_ndarray(format="gray").astype(np.int16) for f in c.decode(video=0)]


def assert_faces_blurred(clip: dict, out: str) -> None:
    """Inside the ground-truth face boxes (their middle half) the output differs from the source far more than
    away from them (medians over the frames of ``clip``, testmedia's ground truth, that show a face)."""
    src, dst = _gray(clip["path"]), _gray(out)
    assert len(src) == len(dst) == clip["frames"]
    inside, outside = [], []
    for i, boxes in enumerate(clip["faces"]):
        if not boxes:
            continue
        mask = np.zeros(src[i].shape, bool)
        for x1, y1, x2, y2 in boxes:
            cx1, cy1 = int(x1 + (x2 - x1) * 0.25), int(y1 + (y2 - y1) * 0.25)
            cx2, cy2 = int(x1 + (x2 - x1) * 0.75), int(y1 + (y2 - y1) * 0.75)
            mask[cy1:cy2, cx1:cx2] = True
        diff = np.abs(src[i] - dst[i])
        inside.append(diff[mask].mean())
        far = np.ones_like(mask)
        for x1, y1, x2, y2 in boxes:
            w, h = x2 - x1, y2 - y1
            far[max(0, int(y1 - h)):int(y2 + h), max(0, int(x1 - w)):int(x2 + w)] = False
        outside.append(diff[far].mean())
    assert inside, "the clip has faces"
    assert np.median(inside) > 4 * max(np.median(outside), 0.5), (np.median(inside), np.median(outside))


def test_upload_with_a_face_is_redacted_end_to_end(pipeline, media, tmp_path):
    # keyframes at frames 10, 25, 40 (30 fps in 1/15360): the segments start at 333.33 ms, 833.33 ms and
    # 1333.33 ms, off whole milliseconds (an edit list in 1 ms ticks would move every later frame early)
    clip = media("e2e_face.mp4", width=320, height=240, seconds=2, audio="aac", faces=1, face_size=(70, 90),
                 keyframes=[10, 25, 40])
    key = "fleet/car 7/e2e_face.mp4"  # a space and folders, as real uploads have
    event = pipeline.upload(clip["path"], key)

    started = pipeline.deliver(event)
    assert started["status"] == "started"
    assert len(started["execution"]) <= 80
    done = pipeline.wait(started["executionArn"])
    assert done["status"] == "SUCCEEDED", done

    # a duplicated event starts no second run
    again = pipeline.deliver(event)
    assert again == {"status": "duplicate", "execution": started["execution"]}
    assert len(pipeline.sfn.list_executions(stateMachineArn=pipeline.state_machine_arn)["executions"]) == 1

    # every state a person sees in the console, and the Map fanned out to >= 2 children
    names = pipeline.state_names(started["executionArn"])
    for state in ("Plan segments", "Redact segments", "Stitch", "Done"):
        assert state in names, names
    assert "Record failure" not in names
    redacts = [inv for inv in pipeline.invocations if inv[0] == "redact"]
    assert len(redacts) >= 2 and all(outcome == "ok" for _, _, outcome in redacts), redacts
    segments_planned = {inv[1]["segment"]["index"] for inv in redacts}
    assert segments_planned == set(range(len(segments_planned)))

    # no per-frame data in state payloads: the largest state input/output stays small
    history = pipeline.sfn.get_execution_history(executionArn=started["executionArn"], maxResults=1000)["events"]
    biggest = max(len(v.get("input") or v.get("output") or "") for e in history for k, v in e.items()
                  if isinstance(v, dict))
    assert biggest < 4096, biggest

    # output + report in the output bucket, work area cleaned, no failure record
    assert pipeline.keys(pipeline.output) == [f"redacted/{key}", f"redacted/{key}.report.html",
                                              f"redacted/{key}.report.json"]
    assert pipeline.keys(pipeline.work, "runs/") == []
    out = pipeline.get(pipeline.output, f"redacted/{key}", tmp_path / "out.mp4")
    report = pipeline.get_json(pipeline.output, f"redacted/{key}.report.json")
    # the visual report beside them: an HTML page with thumbnails of this run's frames, timed in the JSON report
    page = pipeline.s3.get_object(Bucket=pipeline.output, Key=f"redacted/{key}.report.html")
    assert page["ContentType"].startswith("text/html")
    text = page["Body"].read().decode("utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<title>Redaction report: e2e_face.mp4</title>" in text
    assert text.count('data-frame="') >= 6 and "report_html" in report["timings"]
    assert report["counts"]["frames"] == clip["frames"]
    assert report["counts"]["segments"] == len(segments_planned)
    assert report["output"]["output"] == f"s3://{pipeline.output}/redacted/{key}"

    # frame-exact: same number of frames at the same timestamps; audio bit-identical
    assert video_times(str(out)) == video_times(clip["path"])
    assert audio_packets(str(out)) == audio_packets(clip["path"])
    assert audio_packets(str(out)), "the clip has audio"

    # the face is blurred: inside the ground-truth box the output differs far more from the source than outside
    assert_faces_blurred(clip, str(out))


def test_corrupt_upload_ends_in_record_failure(pipeline, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4096))
    key = "fleet/broken.mp4"
    started = pipeline.deliver(pipeline.upload(str(bad), key))
    done = pipeline.wait(started["executionArn"])
    assert done["status"] == "FAILED"
    names = pipeline.state_names(started["executionArn"])
    assert "Record failure" in names and "Stitch" not in names

    assert pipeline.keys(pipeline.output) == [f"failed/{key}.json"]
    record = pipeline.get_json(pipeline.output, f"failed/{key}.json")
    assert record["error"] == "InputError"
    assert record["source"]["key"] == key
    assert record["execution"] == started["execution"]
    assert "InputError" in json.dumps(record["cause"])
    assert pipeline.keys(pipeline.work, "runs/") == []


def test_failed_segment_is_recorded_and_never_stitched(pipeline, media, monkeypatch):
    """A segment worker that dies: whatever moto reports for the Map, no output lands, failure is recorded,
    partial parts are deleted."""
    clip = media("e2e_fail.mp4", width=320, height=240, seconds=2, audio="aac", faces=1, face_size=(70, 90))
    redact = pipeline.modules["redact"]
    real = redact.redactor.redact_segment

    def flaky(source, segment, config, work_dir, **kw):
        if segment.index == 1:
            from redactor.errors import WorkerError

            raise WorkerError("worker died (injected by the test)")
        return real(source, segment, config, work_dir, **kw)

    monkeypatch.setattr(redact.redactor, "redact_segment", flaky)
    key = "fleet/e2e_fail.mp4"
    started = pipeline.deliver(pipeline.upload(clip["path"], key))
    done = pipeline.wait(started["executionArn"])

    assert done["status"] == "FAILED"
    assert pipeline.keys(pipeline.output) == [f"failed/{key}.json"]
    record = pipeline.get_json(pipeline.output, f"failed/{key}.json")
    print("failure record:", json.dumps(record)[:600])
    # the segment's own error, not what it caused downstream (moto: StitchError; AWS: the Map's generic error)
    assert record["error"] == "WorkerError", record
    assert "worker died (injected by the test)" in json.dumps(record["cause"])
    assert record["failed_segment"] == 1 and record["segments_failed"] == [1]
    assert record["workflow_error"]["error"] != "WorkerError"
    assert done["error"] == "WorkerError" and "injected by the test" in done["cause"]  # the console's banner
    assert pipeline.keys(pipeline.work, "runs/") == []


def test_starter_ignores_other_buckets_and_missing_objects(pipeline):
    event = {"detail": {"bucket": {"name": "someone-else"}, "object": {"key": "a.mp4"}}}
    assert pipeline.deliver(event) == {"status": "ignored"}
    event = {"detail": {"bucket": {"name": pipeline.raw}, "object": {"key": "gone.mp4", "etag": "x"}}}
    assert pipeline.deliver(event)["status"] == "missing"
    assert pipeline.sfn.list_executions(stateMachineArn=pipeline.state_machine_arn)["executions"] == []


def test_starter_accepts_url_encoded_keys(pipeline, tmp_path):
    src = tmp_path / "x.mp4"
    src.write_bytes(b"not really a video")
    event = pipeline.upload(str(src), "dash cam/clip 1.mp4")
    event["detail"]["object"]["key"] = "dash+cam/clip+1.mp4"
    started = pipeline.deliver(event)
    assert started["status"] == "started"
    desc = pipeline.sfn.describe_execution(executionArn=started["executionArn"])
    assert json.loads(desc["input"])["key"] == "dash cam/clip 1.mp4"
    pipeline.wait(started["executionArn"])


# Every suffix the EventBridge rule accepts (stacks.settings.DEFAULT_SUFFIXES), as such a file usually is:
# (synth arguments, output key suffix appended, container the output must be)
SUFFIX_CASES = {
    ".mp4": (dict(audio="aac"), "", "mp4"),
    ".m4v": (dict(audio="aac"), "", "mp4"),
    ".mov": (dict(audio="aac"), "", "mov"),
    ".mkv": (dict(audio="opus"), "", "matroska"),
    ".ts": (dict(audio="aac"), "", "mpegts"),
    ".mts": (dict(audio="aac"), "", "mpegts"),  # AVCHD: 192-byte packets
    ".avi": (dict(audio="pcm", bframes=0), ".mov", "mov"),  # AVI keeps no timestamps; MOV holds PCM
    ".webm": (dict(audio="opus", codec="libvpx-vp9"), ".mkv", "matroska"),  # WebM cannot hold H.264
}


def test_suffix_cases_cover_every_accepted_suffix():
    from stacks.settings import DEFAULT_SUFFIXES

    assert sorted(SUFFIX_CASES) == sorted(DEFAULT_SUFFIXES)


@pytest.mark.parametrize("suffix", sorted(SUFFIX_CASES))
def test_every_accepted_suffix_is_redacted(pipeline, media, tmp_path, suffix):
    """A 1.2 s clip (two segments) of each accepted type: output in the container chosen for it, every frame at
    its source timestamp, audio bit-exact. 25 fps: frame times are whole milliseconds in every container."""
    import av

    synth_args, appended, container = SUFFIX_CASES[suffix]
    clip = media(f"sfx{suffix}", width=160, height=128, fps=25, seconds=1.2, faces=1, face_size=(40, 50),
                 **synth_args)
    key = f"uploads/clip{suffix.upper()}" if suffix == ".mts" else f"uploads/clip{suffix}"  # rule: any case
    done = pipeline.wait(pipeline.deliver(pipeline.upload(clip["path"], key))["executionArn"])
    assert done["status"] == "SUCCEEDED", (done, pipeline.invocations[-1:])
    out_key = f"redacted/{key}{appended}"
    assert pipeline.keys(pipeline.output) == sorted([out_key, f"redacted/{key}.report.json",
                                                     f"redacted/{key}.report.html"])
    out = pipeline.get(pipeline.output, out_key, tmp_path / f"out{suffix}{appended}")
    with av.open(str(out)) as c:
        assert container in c.format.name.split(","), c.format.name
        assert c.streams.video[0].codec_context.name == "h264"
    if suffix == ".mts":
        raw = out.read_bytes()
        assert len(raw) % 192 == 0 and raw[4] == 0x47 and raw[196] == 0x47  # 4-byte timestamp + TS packet
    assert len([i for i in pipeline.invocations if i[0] == "redact"]) == 2
    head = pipeline.s3.head_object(Bucket=pipeline.output, Key=naming.output_key(key))
    assert head["ContentType"] == CONTENT_TYPES[Path(naming.output_key(key)).suffix.lower()]
    assert video_times(str(out)) == video_times(clip["path"])
    assert audio_packets(str(out)) == audio_packets(clip["path"]) and audio_packets(str(out))


def test_a_key_too_long_for_its_outputs_is_refused_in_plan(pipeline, media):
    """S3 takes keys of up to 1,024 bytes, but redacted/<key>.report.html is 21 bytes longer: such an upload is
    refused in Plan before the video is read, and its failure record goes under a short hashed name that holds
    the key."""
    clip = media("short.mp4", width=160, height=128, fps=25, seconds=0.6, faces=0)
    key = "fleet/" + "é" * 400 + "/" + "x" * (1024 - 6 - 800 - 1 - 4 - 20) + ".mp4"  # 1,004 bytes
    assert len(key.encode()) == 1004 and naming.key_too_long(key)
    started = pipeline.deliver(pipeline.upload(clip["path"], key))
    assert pipeline.wait(started["executionArn"])["status"] == "FAILED"
    assert [i[0] for i in pipeline.invocations] == ["plan", "record_failure"], pipeline.invocations
    (failed,) = pipeline.keys(pipeline.output, "failed/")
    assert failed == naming.failed_key(key) and failed.startswith("failed/long-keys/") and len(failed) < 100
    record = pipeline.get_json(pipeline.output, failed)
    assert record["source"]["key"] == key and record["error"] == "InputError"
    assert "1004 bytes" in json.dumps(record["cause"]) and "at most 1003 bytes" in json.dumps(record["cause"])
    assert pipeline.keys(pipeline.output, "redacted/") == [] and pipeline.keys(pipeline.work, "runs/") == []


def test_audio_the_output_cannot_hold_fails_in_plan(pipeline, media):
    """An AVI with IMA ADPCM audio (dash cams write it): its .mov output cannot hold that audio, so the run
    fails in Plan, naming the reason, before any segment is redacted."""
    clip = media("adpcm.avi", width=160, height=128, fps=25, seconds=1.2, faces=0, audio="adpcm", bframes=0)
    key = "dashcam/adpcm.avi"
    started = pipeline.deliver(pipeline.upload(clip["path"], key))
    done = pipeline.wait(started["executionArn"])
    assert done["status"] == "FAILED"
    assert [i[0] for i in pipeline.invocations] == ["plan", "record_failure"], pipeline.invocations
    assert pipeline.keys(pipeline.output) == [f"failed/{key}.json"]
    record = pipeline.get_json(pipeline.output, f"failed/{key}.json")
    assert record["error"] == "InputError"
    cause = json.dumps(record["cause"])
    assert "adpcm_ima_wav" in cause and ".mov output" in cause, cause
    assert pipeline.keys(pipeline.work, "runs/") == []


def _open_in_worker(conn, url: str) -> None:
    from redactor import remote

    try:
        conn.send(remote.open_s3(url).size)
    finally:
        conn.close()


def test_a_worker_forked_while_another_thread_is_in_moto_reads_s3(tmp_path):
    """The e2e's hang, made certain: another thread is inside an in-process moto request (holding moto's global
    backend lock) at the instant the Redact handler forks a worker, and the worker then opens the upload. Before
    _fresh_moto_lock_in_forked_child the worker waited on its copy of the held lock forever."""
    import multiprocessing as mp

    from moto.core import base_backend
    from redactor import remote

    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="raw")
        s3.put_object(Bucket="raw", Key="a.mp4", Body=b"x" * 1000)
        remote.reset()
        remote.prepare_fork()  # as the Redact handler does at cold start
        inside, leave = threading.Event(), threading.Event()

        def in_moto_request():
            with base_backend.backend_lock:
                inside.set()
                leave.wait(60)

        threading.Thread(target=in_moto_request, daemon=True).start()
        assert inside.wait(10)
        ctx = mp.get_context("fork")
        parent, child = ctx.Pipe()
        worker = ctx.Process(target=_open_in_worker, args=(child, "s3://raw/a.mp4"), daemon=True)
        try:
            worker.start()
            child.close()
            answered = parent.poll(30)
            assert answered, "the forked worker hung on the moto lock it inherited held"
            assert parent.recv() == 1000
        finally:
            leave.set()
            worker.kill()
            worker.join(5)
            remote.reset()


def _stored_version(pipeline, key: str) -> str:
    """The raw version the current redacted output of ``key`` was made from (its report says)."""
    return pipeline.get_json(pipeline.output, naming.report_key(key))["source"]["version"]


def test_an_older_upload_finishing_last_leaves_the_newer_output_alone(pipeline, media, tmp_path):
    """Three uploads of one key, run newest first: the older good one finishes last and is superseded (the
    newer output stays), the oldest, corrupt one fails last and leaves no failure record beside it. Each run's end
    is announced once: SUCCEEDED, then SUPERSEDED twice."""
    clip = media("versions.mp4", width=160, height=128, fps=25, seconds=0.6, faces=1, face_size=(40, 50))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2048))
    key = "fleet/versions.mp4"
    oldest, older, newer = (pipeline.upload(p, key) for p in (str(bad), clip["path"], clip["path"]))
    seqs = [e["detail"]["object"]["sequencer"] for e in (oldest, older, newer)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3 and all(len(s) == 18 for s in seqs)
    runs = []
    for event, expected in ((newer, "SUCCEEDED"), (older, "SUCCEEDED"), (oldest, "FAILED")):
        started = pipeline.deliver(event)
        assert pipeline.wait(started["executionArn"])["status"] == expected, pipeline.invocations[-2:]
        runs.append(pipeline.run_ended(started["executionArn"]))
        assert _stored_version(pipeline, key) == newer["detail"]["object"]["version-id"]
    assert pipeline.keys(pipeline.output) == [f"redacted/{key}", f"redacted/{key}.report.html",
                                              f"redacted/{key}.report.json"]
    assert [r["status"] for r in runs] == ["SUCCEEDED", "SUPERSEDED", "SUPERSEDED"]
    assert pipeline.notifications() == runs
    assert pipeline.keys(pipeline.work, "runs/") == []


def test_an_older_upload_that_wrote_while_a_newer_one_claimed_the_key_withdraws_its_versions(pipeline, media,
                                                                                             monkeypatch):
    """The race: the older run checked the key's owner, then a newer upload's run claimed it while the older
    one was uploading its video. The older run removes exactly the object versions it wrote."""
    from common import versions

    clip = media("race.mp4", width=160, height=128, fps=25, seconds=0.6, faces=1, face_size=(40, 50))
    key = "fleet/race.mp4"
    older, newer = pipeline.upload(clip["path"], key), pipeline.upload(clip["path"], key)
    stitch = pipeline.modules["stitch"].stitching  # the step the handler calls (common/stitching.py)
    real = stitch.s3.upload_multipart

    def upload_while_newer_claims(*args, **kw):
        assert versions.claim(pipeline.work, key, {"sequencer": newer["detail"]["object"]["sequencer"],
                                                   "version": "newer", "execution": "newer",
                                                   "status": "stitching"})[0]
        return real(*args, **kw)

    monkeypatch.setattr(stitch.s3, "upload_multipart", upload_while_newer_claims)
    started = pipeline.deliver(older)
    assert pipeline.wait(started["executionArn"])["status"] == "SUCCEEDED"
    assert pipeline.run_ended(started["executionArn"])["status"] == "SUPERSEDED"
    versions_left = pipeline.s3.list_object_versions(Bucket=pipeline.output, Prefix="redacted/")
    assert versions_left.get("Versions", []) == [] and versions_left.get("DeleteMarkers", []) == []
    monkeypatch.setattr(stitch.s3, "upload_multipart", real)
    started = pipeline.deliver(newer)
    assert pipeline.wait(started["executionArn"])["status"] == "SUCCEEDED"
    assert _stored_version(pipeline, key) == newer["detail"]["object"]["version-id"]


def test_a_failed_upload_is_retried_from_its_retained_version_without_uploading_again(pipeline, media,
                                                                                      monkeypatch):
    """The run's name is derived from the upload, so starting it again is ExecutionAlreadyExists; a retry is a
    new execution named by naming.retry_execution_name, with the input naming.execution_input builds from the
    failure record (bucket, key, version, sequencer): what the starter builds for an upload."""
    clip = media("retry.mp4", width=160, height=128, fps=25, seconds=0.6, faces=1, face_size=(40, 50))
    redact = pipeline.modules["redact"]
    real = redact.redactor.redact_segment

    def dies(*args, **kw):
        from redactor.errors import WorkerError

        raise WorkerError("worker died (injected by the test)")

    monkeypatch.setattr(redact.redactor, "redact_segment", dies)
    key = "fleet/retry.mp4"
    event = pipeline.upload(clip["path"], key)
    started = pipeline.deliver(event)
    assert pipeline.wait(started["executionArn"])["status"] == "FAILED"
    source = pipeline.get_json(pipeline.output, f"failed/{key}.json")["source"]
    assert source["sequencer"] == event["detail"]["object"]["sequencer"]
    monkeypatch.setattr(redact.redactor, "redact_segment", real)

    assert pipeline.deliver(event)["status"] == "duplicate"  # the same name again: ExecutionAlreadyExists
    name = naming.retry_execution_name(source["bucket"], source["key"], source["version"], 1)
    retry_input = naming.execution_input(source["bucket"], source["key"], source["version"], source["sequencer"],
                                         execution=name)
    arn = pipeline.sfn.start_execution(stateMachineArn=pipeline.state_machine_arn, name=name,
                                       input=json.dumps(retry_input))["executionArn"]
    assert pipeline.wait(arn)["status"] == "SUCCEEDED"
    assert pipeline.keys(pipeline.output) == [f"redacted/{key}", f"redacted/{key}.report.html",
                                              f"redacted/{key}.report.json"]
    assert _stored_version(pipeline, key) == source["version"]
    assert pipeline.run_ended(arn)["status"] == "SUCCEEDED"
