"""``redactor cloud`` against the synthesized stack's resources in a moto server, through the real workflow.

The harness recreates what ``cdk deploy`` would make (tests/test_workflow_e2e.py's Pipeline: the buckets, the
synthesized state machine run by moto's interpreter, every Lambda invocation dispatched to the real handler), a
CloudFormation stack whose outputs are the synthesized template's outputs with the resources' names filled in,
and the one thing moto cannot do: deliver S3's "Object Created" event through EventBridge to the starter. For
that it watches moto's own S3 notifications and hands the starter exactly the event S3 would send, for the keys
the synthesized upload rule matches, and nothing more. Only the client acts: the test body starts no execution
and moves no object.
"""
from __future__ import annotations

import fnmatch
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from unittest import mock
from urllib.parse import quote_plus

import pytest

from redactor import cli, naming
from tests import aws_support as aws
from tests.conftest import audio_packets, video_times
from tests.moto_server import _moto_server_session, moto_server  # noqa: F401 - fixtures

moto = pytest.importorskip("moto")
from moto.s3 import notifications as s3_notifications  # noqa: E402
from moto.stepfunctions.parser import models as sfn_models  # noqa: E402

from tests.test_workflow_e2e import Pipeline, assert_faces_blurred  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
STACK = "Redactor"


class S3Events:
    """S3 -> EventBridge -> the upload rule -> the starter, as AWS delivers it: for every object created in
    the raw bucket whose key the synthesized rule matches, the starter gets S3's "Object Created" event (its
    sequencer larger for every upload, as S3's is for uploads of one key), on a thread of its own, after the
    request that created the object."""

    REASONS = {"Put": "PutObject", "Post": "PostObject", "Copy": "CopyObject",
               "CompleteMultipartUpload": "CompleteMultipartUpload"}

    def __init__(self, pipeline: Pipeline, template: dict):
        self.pipeline = pipeline
        rule = template["Resources"][aws.logical_id_of(template, "AWS::Events::Rule", "/UploadRule/")]
        pattern = rule["Properties"]["EventPattern"]
        assert pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"], pattern
        self.suffixes = [s["suffix"]["equals-ignore-case"].lower() for s in pattern["detail"]["object"]["key"]]
        self.queue: queue.Queue = queue.Queue()
        self.delivered: list[tuple[dict, dict]] = []  # (event, what the starter returned)
        self.errors: list[str] = []
        self._sequence = 0
        self._thread = threading.Thread(target=self._deliver, daemon=True, name="eventbridge")
        self._real = s3_notifications.send_event

    def _send_event(self, account_id, event_name, bucket, key):
        self._real(account_id, event_name, bucket, key)
        kind = str(getattr(event_name, "value", event_name))
        if bucket.name != self.pipeline.raw or not kind.startswith("s3:ObjectCreated:"):
            return
        if not key.name.lower().endswith(tuple(self.suffixes)):
            return
        self._sequence += 1
        self.queue.put({
            "version": "0", "id": f"event-{self._sequence}", "detail-type": "Object Created", "source": "aws.s3",
            "account": account_id, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "region": bucket.region_name, "resources": [f"arn:aws:s3:::{bucket.name}"],
            "detail": {"version": "0", "bucket": {"name": bucket.name},
                       "object": {"key": quote_plus(key.name, safe="/"), "size": key.size,
                                  "etag": key.etag.strip('"'), "version-id": key.version_id,
                                  "sequencer": self.pipeline.sequencer()},
                       "request-id": f"REQ{self._sequence:013d}", "requester": account_id,
                       "source-ip-address": "127.0.0.1", "reason": self.REASONS[kind.rsplit(":", 1)[1]]},
        })

    def _deliver(self):
        while (event := self.queue.get()) is not None:
            try:
                self.delivered.append((event, self.pipeline.deliver(event)))
            except Exception as e:  # noqa: BLE001 - kept for the test to report
                self.errors.append(f"{type(e).__name__}: {e}")

    def __enter__(self):
        self._patch = mock.patch.object(s3_notifications, "send_event", self._send_event)
        self._patch.start()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._patch.stop()
        self.queue.put(None)
        self._thread.join(30)


def stack_outputs(template: dict, subs: dict[str, str]) -> dict[str, str]:
    """The synthesized template's outputs with each resource reference replaced by the resource's name in
    moto (what CloudFormation would show after a deploy)."""
    def value(v):
        if isinstance(v, str):
            return v
        if "Ref" in v:
            return subs.get(v["Ref"], v["Ref"])
        if "Fn::GetAtt" in v:
            return subs.get(v["Fn::GetAtt"][0], ".".join(v["Fn::GetAtt"]))
        raise AssertionError(f"unexpected output value {v}")
    return {k: value(o["Value"]) for k, o in template["Outputs"].items()}


def create_stack(cfn, name: str, outputs: dict[str, str]) -> None:
    """A stack whose outputs are ``outputs`` (the real template cannot be deployed into moto)."""
    body = {"Resources": {"Marker": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": f"{name}-marker"}}},
            "Outputs": {k: {"Value": v} for k, v in outputs.items()}}
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(body))


class Cloud:
    def __init__(self, pipeline: Pipeline, events: S3Events, server, outputs: dict[str, str]):
        self.p, self.events, self.server, self.outputs = pipeline, events, server, outputs

    def run(self, capsys, *args: str) -> tuple[int, str, str]:
        """``redactor cloud ARGS`` in this process: (exit code, stdout, stderr), without the lines the
        in-process handlers print meanwhile (Powertools' JSON logs and metrics; the client prints no JSON)."""
        capsys.readouterr()
        code = cli.main(["cloud", *args])
        out, err = capsys.readouterr()
        return code, *("".join(line for line in text.splitlines(keepends=True) if not line.startswith('{"'))
                       for text in (out, err))

    def executions(self) -> list[dict]:
        return self.p.sfn.list_executions(stateMachineArn=self.p.state_machine_arn)["executions"]

    def settle(self, timeout: float = 300) -> None:
        """Every event delivered and every run finished (so nothing runs on into the next test)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.events.queue.empty() and all(e["status"] != "RUNNING" for e in self.executions()):
                return
            time.sleep(0.1)
        raise TimeoutError("runs still going")


@pytest.fixture(scope="module")
def template():
    return aws.synthesized_once()[0]


@pytest.fixture
def cloud(moto_server, template, model_path, tmp_path, monkeypatch):  # noqa: F811 - the fixture
    moto_server.configure({"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}})
    monkeypatch.setenv("MOTO_PORT", moto_server.endpoint.rsplit(":", 1)[1])
    for k in ("REDACTOR_STACK", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    p = Pipeline(template, model_path, tmp_path / "lambda",
                 engine_env={"REDACTOR_SEGMENT_SECONDS": "0.5", "REDACTOR_WORKERS": "1"})
    subs = {aws.logical_id_of(template, "AWS::S3::Bucket", f"/Storage/{name}/"): bucket
            for name, bucket in (("Raw", p.raw), ("Work", p.work), ("Output", p.output))}
    (sm_lid,) = aws.resources(template, "AWS::StepFunctions::StateMachine")
    subs[sm_lid] = p.state_machine_arn
    outputs = stack_outputs(template, subs)
    create_stack(moto_server.client("cloudformation"), STACK, outputs)
    with p.running(), S3Events(p, template) as events:
        c = Cloud(p, events, moto_server, outputs)
        try:
            yield c
        finally:
            c.settle()
    assert not events.errors, events.errors


def _map_counts_spy():
    """Every (succeeded, total) DescribeMapRun returned, recorded inside moto."""
    seen: list[tuple[int, int]] = []
    real = sfn_models.StepFunctionsParserBackend.describe_map_run

    def spy(self, map_run_arn):
        d = real(self, map_run_arn)
        seen.append((d["itemCounts"]["succeeded"], d["itemCounts"]["total"]))
        return d
    return seen, mock.patch.object(sfn_models.StepFunctionsParserBackend, "describe_map_run", spy)


def test_the_stack_outputs_what_the_client_reads(template):
    from redactor.cloud.stack import NEEDED
    from stacks.settings import DEFAULT_SUFFIXES

    outputs = template["Outputs"]
    assert set(NEEDED) <= set(outputs), sorted(outputs)
    assert outputs["AcceptedSuffixes"]["Value"].split(",") == sorted(DEFAULT_SUFFIXES)
    longest = int(outputs["MaxKeyBytes"]["Value"])
    assert not naming.key_too_long("k" * (longest - 4) + ".mp4")
    assert naming.key_too_long("k" * (longest - 3) + ".mp4")


def _decoded(path: str):
    import av
    import numpy as np

    with av.open(path) as c:
        return [f.to_ndarray(format="gray").astype(np.int16) for f in c.decode(video=0)]


def test_submit_wait_fetch_gives_the_local_clis_video(cloud, media, model_path, tmp_path, capsys):
    """One upload, followed from the client to the end: the progress is the Map Run's item counts (at least two
    values between none and all, each one DescribeMapRun returned), and the fetched video is the local CLI's:
    the same frames at the same timestamps, bit-exact audio, the same detections."""
    import numpy as np

    clip = media("cloud_face.mp4", width=320, height=240, seconds=2, audio="aac", faces=1, face_size=(70, 90),
                 keyframes=[10, 25, 40])
    seen, spy = _map_counts_spy()
    with spy:
        code, out, err = cloud.run(capsys, "submit", clip["path"], "--key", "fleet/car 7", "--wait",
                                   "--interval", "0.05")
    key = "fleet/car 7/cloud_face.mp4"
    assert code == 0, (out, err)
    version = cloud.p.s3.head_object(Bucket=cloud.p.raw, Key=key)["VersionId"]
    name = naming.execution_name(cloud.p.raw, key, version)
    assert f"-> s3://{cloud.p.raw}/{key} (version {version})" in out and f"run:     {name}" in out
    assert f"#/v2/executions/details/{cloud.p.state_machine_arn.replace(':stateMachine:', ':execution:')}:{name}" in out
    assert f"{key}: done in" in out and f"s3://{cloud.p.output}/redacted/{key}" in out

    # progress: "redacting n of m segments" lines, read from DescribeMapRun
    shown = [(int(n), int(m)) for n, m in re.findall(r"^fleet/car 7/cloud_face\.mp4: redacting (\d+) of (\d+) "
                                                       r"segments$", err, re.M)]
    segments = len([i for i in cloud.p.invocations if i[0] == "redact"])
    assert segments >= 3 and all(m == segments for _, m in shown), (shown, segments)
    intermediate = {n for n, m in shown if 0 < n < m}
    assert len(intermediate) >= 2, err
    assert set(shown) <= set(seen), (shown, seen)

    code, out, err = cloud.run(capsys, "fetch", key, "-o", str(tmp_path / "got"))
    assert code == 0, err
    got = tmp_path / "got" / "redacted" / key
    html = tmp_path / "got" / "redacted" / f"{key}.report.html"
    assert f"HTML report, to open in a browser: {html.resolve().as_uri()}" in out
    report = json.loads((tmp_path / "got" / "redacted" / f"{key}.report.json").read_text())
    assert report["source"]["version"] == version
    assert html.read_text().startswith("<!DOCTYPE html>")
    assert sorted(os.listdir(got.parent)) == sorted([got.name, html.name, f"{got.name}.report.json"])

    local = tmp_path / "local.mp4"
    assert cli.main(["redact", clip["path"], "-o", str(local), "--report", str(tmp_path / "local.json"),
                     "--detector", report["detector"]["name"], "--model", model_path, "--workers", "1", "-q"]) == 0
    local_report = json.loads((tmp_path / "local.json").read_text())
    assert video_times(str(got)) == video_times(str(local)) == video_times(clip["path"])
    assert audio_packets(str(got)) == audio_packets(str(local)) and audio_packets(str(got))
    assert [d["frame"] for d in report["detections"]] == [d["frame"] for d in local_report["detections"]]
    assert report["redacted_ranges"] == local_report["redacted_ranges"]
    assert_faces_blurred(clip, str(got))
    # pixels: the cuts differ (x264 encodes each segment on its own), so within its rounding, not bit-exact
    diffs = [np.abs(a - b).mean() for a, b in zip(_decoded(str(got)), _decoded(str(local)))]
    assert max(diffs) < 3, diffs


def test_a_truncated_upload_shows_failed_with_the_named_error(cloud, media, tmp_path, capsys):
    clip = media("cloud_cut.mp4", width=160, height=128, fps=25, seconds=1.2, audio="aac", faces=0)
    data = Path(clip["path"]).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    code, out, err = cloud.run(capsys, "submit", str(cut), clip["path"])
    assert code == 0, err
    code, out, err = cloud.run(capsys, "wait", "cut.mp4", "cloud_cut.mp4", "--interval", "0.05")
    record = cloud.p.get_json(cloud.p.output, "failed/cut.mp4.json")
    assert code == 4 and record["error"] == "InputError", (code, err, record)
    assert err.splitlines()[-1].startswith("redactor: RunFailed: cut.mp4: InputError: "), err
    assert out.startswith("cloud_cut.mp4: done in ")

    code, out, err = cloud.run(capsys, "status", "--all")  # a table for several
    rows = [re.split(r"  +", line, maxsplit=2) for line in out.splitlines()]
    assert code == 4 and rows[0] == ["KEY", "ELAPSED", "STATE"], out
    assert rows[1][0] == "cloud_cut.mp4" and rows[1][2] == "done", out
    assert rows[2][0] == "cut.mp4" and rows[2][2].startswith("failed: InputError: "), out

    code, out, err = cloud.run(capsys, "status", "cut.mp4")
    assert code == 4
    assert out.startswith("cut.mp4: failed: InputError: ") and record["cause"]["errorMessage"][:60] in out, out
    code, out, err = cloud.run(capsys, "fetch", "cut.mp4", "-o", str(tmp_path / "got"))
    assert code == 4 and err.startswith("redactor: RunFailed: cut.mp4: InputError: "), err
    assert not (tmp_path / "got").exists()


def test_retry_of_a_failed_run_ends_in_success(cloud, media, tmp_path, capsys, monkeypatch):
    """A segment fails on purpose in the first run; retry runs the same object version again (a new
    execution, nothing uploaded) and it succeeds; status and fetch then follow the retry."""
    from redactor.errors import WorkerError

    clip = media("cloud_retry.mp4", width=160, height=128, fps=25, seconds=1.2, audio="aac", faces=1,
                 face_size=(40, 50))
    redact = cloud.p.modules["redact"]
    real, failed = redact.redactor.redact_segment, []

    def fail_once(source, segment, config, work_dir, **kw):
        if segment.index == 1 and not failed:
            failed.append(segment.index)
            raise WorkerError("worker died (injected by the test)")
        return real(source, segment, config, work_dir, **kw)

    monkeypatch.setattr(redact.redactor, "redact_segment", fail_once)
    code, out, err = cloud.run(capsys, "submit", clip["path"], "--wait", "--interval", "0.05")
    assert code == 4 and "redactor: RunFailed: cloud_retry.mp4: WorkerError: worker died (injected" in err, err
    puts = len(cloud.server.requests(cloud.p.raw, "cloud_retry.mp4", "PUT"))

    from redactor.cloud import commands

    def redacts() -> int:
        return len([i for i in cloud.p.invocations if i[0] == "redact"])

    monkeypatch.setattr(commands, "_show", lambda a: True)  # as on a terminal: a progress bar per run
    before = redacts()
    code, out, err = cloud.run(capsys, "retry", "cloud_retry.mp4", "--wait", "--interval", "0.05")
    assert code == 0, err
    segments = str(redacts() - before)
    bars = re.findall(r"cloud_retry\.mp4: +\d+%\|[^|]*\| (\d+)/(\d+) \[[^\]]*, ([a-z]+)\]", err)
    assert (segments, segments, "done") in bars, err
    assert any(int(n) < int(m) for n, m, state in bars if state == "redacting"), err
    version = cloud.p.s3.head_object(Bucket=cloud.p.raw, Key="cloud_retry.mp4")["VersionId"]
    retry_name = naming.retry_execution_name(cloud.p.raw, "cloud_retry.mp4", version, 1)
    assert f"attempt 1): {retry_name}" in out and "cloud_retry.mp4: done in" in out, out
    assert len(cloud.server.requests(cloud.p.raw, "cloud_retry.mp4", "PUT")) == puts  # nothing uploaded
    names = sorted(e["name"] for e in cloud.executions())
    assert names == sorted([naming.execution_name(cloud.p.raw, "cloud_retry.mp4", version), retry_name])
    assert cloud.p.keys(cloud.p.output, "failed/") == []

    code, out, err = cloud.run(capsys, "status", "cloud_retry.mp4")
    assert (code, out.split(" (")[0]) == (0, "cloud_retry.mp4: done"), (out, err)
    code, out, err = cloud.run(capsys, "retry", "cloud_retry.mp4")
    assert code == 2 and err == "redactor: RetryRefused: cloud_retry.mp4: nothing to retry: its run succeeded\n"
    code, out, err = cloud.run(capsys, "fetch", "cloud_retry.mp4", "-o", str(tmp_path))
    assert code == 0, err
    got = tmp_path / "redacted" / "cloud_retry.mp4"
    assert video_times(str(got)) == video_times(clip["path"])
    assert audio_packets(str(got)) == audio_packets(clip["path"])


def test_each_error_is_one_named_line_with_the_clis_exit_code(cloud, media, tmp_path, capsys, monkeypatch):
    clip = media("cloud_err.mp4", width=160, height=128, fps=25, seconds=0.4, audio=None, faces=0)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video")

    def error(*args) -> tuple[int, str]:
        code, out, err = cloud.run(capsys, *args)
        assert out == "" and len(err.splitlines()) == 1, (out, err)
        return code, err.strip()

    # bad input -> 2, refused before anything is uploaded
    assert error("submit", clip["path"], str(notes)) == (
        2, f"redactor: InputError: {notes}: .txt is not a video type stack {STACK} redacts (it takes "
           f"{cloud.outputs['AcceptedSuffixes'].replace(',', ', ')})")
    code, line = error("submit", clip["path"], "--key", "k" * 1000)
    assert code == 2 and line.startswith(f"redactor: InputError: {clip['path']}: the key is 1014 bytes; stack "
                                         f"{STACK} takes keys of at most 1003 bytes"), line
    assert error("submit", clip["path"], clip["path"]) == (
        2, f"redactor: InputError: {clip['path']}: two of the files would be uploaded as "
           f"s3://{cloud.p.raw}/cloud_err.mp4")
    assert error("submit", str(tmp_path / "gone.mp4")) == (2, f"redactor: InputError: {tmp_path / 'gone.mp4'}: "
                                                              "no such file")
    assert cloud.p.keys(cloud.p.raw) == []
    assert error("status", "never/uploaded.mp4") == (
        2, f"redactor: NotUploaded: never/uploaded.mp4: never/uploaded.mp4 is not in s3://{cloud.p.raw} (never "
           "uploaded, deleted or expired)")
    assert error("wait", "never.mp4")[0] == error("fetch", "never.mp4")[0] == error("retry", "never.mp4")[0] == 2

    # setup -> 3: no such stack, several stacks, no credentials
    assert error("status", "a.mp4", "--stack", "Nope") == (
        3, "redactor: StackNotFound: no stack Nope in us-east-1: check --stack/REDACTOR_STACK and the region")
    monkeypatch.setenv("REDACTOR_STACK", "AlsoNope")
    assert error("status", "a.mp4")[1].startswith("redactor: StackNotFound: no stack AlsoNope in us-east-1")
    monkeypatch.delenv("REDACTOR_STACK")
    create_stack(cloud.server.client("cloudformation"), "RedactorStaging", cloud.outputs)
    assert error("status", "a.mp4") == (
        3, "redactor: SeveralStacks: 2 redactor stacks in us-east-1 (Redactor, RedactorStaging): choose one "
           "with --stack or REDACTOR_STACK")
    assert error("status", "never.mp4", "--stack", "RedactorStaging")[0] == 2  # the flag chooses
    assert error("status", "a.mp4", "--region", "eu-west-1") == (
        3, "redactor: StackNotFound: no redactor stack in eu-west-1: deploy it ('cdk deploy'), or pass --stack or "
           "set REDACTOR_STACK (and the region, if it is elsewhere)")
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(k)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code, line = error("submit", clip["path"])
    assert code == 3 and line.startswith("redactor: NoCredentials: no usable AWS credentials"), line
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION")
    assert error("status", "a.mp4")[1].startswith("redactor: NoRegion: no AWS region")


class _HeldParts:
    """WSGI middleware on the moto server: the first UploadPart goes through, every later one waits until
    ``release`` (a slow network, so that Ctrl-C lands mid-upload)."""

    def __init__(self, app):
        self.app, self.parts, self.lock = app, 0, threading.Lock()
        self.release = threading.Event()

    def __call__(self, environ, start_response):
        query = environ.get("QUERY_STRING", "")
        if environ.get("REQUEST_METHOD") == "PUT" and "partNumber=" in query and "uploadId=" in query:
            with self.lock:
                self.parts += 1
                first = self.parts == 1
            if not first:
                self.release.wait(60)
        return self.app(environ, start_response)


def interrupted_submit(cloud, path: Path, *args: str) -> tuple[int, str, str]:
    """``redactor cloud submit PATH --key trips ARGS`` in a process of its own, sent SIGINT (Ctrl-C) once the
    first part of its multipart upload is stored: (exit code, stdout, stderr)."""
    wsgi = cloud.server._server._server
    held = _HeldParts(wsgi.app)
    wsgi.app = held
    try:
        proc = subprocess.Popen([sys.executable, "-m", "redactor", "cloud", "submit", str(path), "--key", "trips",
                                 *args], cwd=ROOT, env=os.environ.copy(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                preexec_fn=aws.ctrl_c_reaches)
        deadline = time.monotonic() + 60
        while not any(r.status == 200 for r in cloud.server.requests(cloud.p.raw, f"trips/{path.name}", "PUT")
                      if "partNumber=" in r.query):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        threading.Timer(0.5, held.release.set).start()  # the parts under way come back; nothing else is sent
        out, err = proc.communicate(timeout=60)
    finally:
        held.release.set()
        wsgi.app = held.app
    return proc.returncode, out, err


def test_ctrl_c_mid_upload_aborts_the_multipart_upload(cloud, tmp_path, capsys):
    big = tmp_path / "long drive.mp4"
    big.write_bytes(os.urandom(40 * 1024 * 1024))  # three parts of at most 16 MiB
    code, out, err = interrupted_submit(cloud, big)
    assert code == 130, (out, err)
    assert err.strip() == (
        f"redactor: Interrupted: {big}: multipart upload aborted; nothing was stored at "
        f"s3://{cloud.p.raw}/trips/long drive.mp4; run submit again to upload it"), err
    s3 = cloud.p.s3
    assert s3.list_multipart_uploads(Bucket=cloud.p.raw).get("Uploads", []) == []
    assert s3.list_object_versions(Bucket=cloud.p.raw).get("Versions", []) == []
    assert any(r.method == "DELETE" and "uploadId=" in r.query
               for r in cloud.server.requests(cloud.p.raw, "trips/long drive.mp4"))
    assert cloud.events.delivered == [] and cloud.executions() == []

    # running submit again starts cleanly: one complete object (not a video: the run it starts fails)
    code, out, err = cloud.run(capsys, "submit", str(big), "--key", "trips", "-q")
    assert code == 0, err
    assert s3.head_object(Bucket=cloud.p.raw, Key="trips/long drive.mp4")["ContentLength"] == big.stat().st_size


def test_fetch_gives_the_outputs_of_the_requested_version(cloud, media, tmp_path, capsys):
    """Two uploads of one key: fetch means the latest, --version the other; each video comes with the reports
    of its own run (the report names the version; the output bucket keeps the earlier run's files)."""
    first = media("cloud_v1.mp4", width=160, height=128, fps=25, seconds=0.8, audio="aac", faces=0)
    second = media("cloud_v2.mp4", width=160, height=128, fps=25, seconds=1.2, audio="aac", faces=0)
    assert video_times(first["path"]) != video_times(second["path"])  # outputs that cannot be mistaken
    versions = []
    upload = tmp_path / "up" / "drive.mp4"
    upload.parent.mkdir()
    for clip in (first, second):
        upload.write_bytes(Path(clip["path"]).read_bytes())
        code, out, err = cloud.run(capsys, "submit", str(upload), "--wait", "--interval", "0.05", "-q")
        assert code == 0, err
        versions.append(out.split("(version ")[1].split(")")[0])
    assert versions[0] != versions[1]

    for version, clip, where in ((None, second, "latest"), (versions[0], first, "v1")):
        args = ["fetch", "drive.mp4", "-o", str(tmp_path / where)] + (["--version", version] if version else [])
        code, out, err = cloud.run(capsys, *args)
        assert code == 0, err
        got = tmp_path / where / "redacted" / "drive.mp4"
        report = json.loads(got.with_name("drive.mp4.report.json").read_text())
        assert report["source"]["version"] == (version or versions[1])
        assert video_times(str(got)) == video_times(clip["path"])
        assert f"created {report['created']}" in got.with_name("drive.mp4.report.html").read_text()
    code, out, err = cloud.run(capsys, "fetch", "drive.mp4", "--version", "3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY")
    assert code == 2 and err.startswith("redactor: NotUploaded: drive.mp4: version 3HL4kqtJlcpXroDTDmJ-rmSpXd3dI")


def _as_principal(cloud, policy: dict, tmp_path: Path, monkeypatch):
    """moto's IAM with two principals: "video-team", holding only ``policy``, as the profile the client is
    run with, and the test's own principal (allowed everything) for the pipeline's side (handlers, events,
    moto's interpreter). Returns the recorder of moto's authorization decisions."""
    from tests import iam_enforced

    recorder = iam_enforced.EnforcedIAM(cloud.server, {"Resources": {}}, {})
    iam = cloud.server.client("iam")
    iam.create_user(UserName="video-team")
    iam.put_user_policy(UserName="video-team", PolicyName="redactor-cloud",
                        PolicyDocument=json.dumps(iam_enforced.for_moto(policy)))
    key = iam.create_access_key(UserName="video-team")["AccessKey"]
    recorder._keys[key["AccessKeyId"]] = "video-team"
    (tmp_path / "credentials").write_text(f"[video-team]\naws_access_key_id = {key['AccessKeyId']}\n"
                                          f"aws_secret_access_key = {key['SecretAccessKey']}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    for k in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    for k, v in recorder.driver.items():
        monkeypatch.setenv(k, v)
    import boto3

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # its credentials were resolved once, from the old ones
    monkeypatch.setattr(iam_enforced, "iam_action", _iam_action(iam_enforced.iam_action))
    return recorder


#: moto names these S3 requests by their operation; IAM authorizes them as these actions
OPERATION_ACTIONS = {"s3:CreateMultipartUpload": "s3:PutObject", "s3:UploadPart": "s3:PutObject",
                     "s3:CompleteMultipartUpload": "s3:PutObject",
                     "s3:ListMultipartUploads": "s3:ListBucketMultipartUploads",
                     "s3:ListObjectVersions": "s3:ListBucketVersions"}


def _iam_action(real):
    def iam_action(action: str, query: dict) -> str:
        if action == "s3:GetObject" and "versionId" in query:  # AWS: a chosen version needs GetObjectVersion
            return "s3:GetObjectVersion"
        return real(OPERATION_ACTIONS.get(action, action), query)
    return iam_action


def test_the_printed_policy_is_all_the_client_needs(cloud, media, tmp_path, capsys, monkeypatch):
    """Every command, run as a principal that holds only what ``redactor cloud policy`` prints, under moto's
    IAM enforcement (S3 calls judged by action and resource; other services' by action, their resources
    matched here): each works, and every S3 grant of the policy is needed by one of the calls."""
    from tests import iam_enforced

    code, out, err = cloud.run(capsys, "policy")
    assert code == 0, err
    policy = json.loads(out)
    statements = policy["Statement"]
    recorder = _as_principal(cloud, policy, tmp_path, monkeypatch)
    clip = media("cloud_iam.mp4", width=160, height=128, fps=25, seconds=0.8, audio="aac", faces=0)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(Path(clip["path"]).read_bytes()[:2000])
    big = tmp_path / "big.mp4"
    big.write_bytes(os.urandom(40 * 1024 * 1024))
    me, waiting = ("--profile", "video-team"), ("--interval", "0.05", "-q")
    with cloud.p.running(), \
            iam_enforced.interpreter_as({**recorder.driver, "AWS_SESSION_TOKEN": None}, cloud.server.endpoint), \
            recorder.enforced():  # the handlers start cold again, as the test's own principal
        results = [cloud.run(capsys, "submit", clip["path"], str(cut), "--wait", *waiting, *me)[0],
                   cloud.run(capsys, "status", "--all", *me)[0],
                   cloud.run(capsys, "fetch", "cloud_iam.mp4", "-o", str(tmp_path / "got"), *me)[0],
                   cloud.run(capsys, "retry", "cut.mp4", "--wait", *waiting, *me)[0],
                   interrupted_submit(cloud, big, *me)[0]]
        mine = recorder.calls_by("video-team", s3_only=False)
    assert results == [4, 4, 0, 4, 130], (results, [c for c in mine if not c.allowed])
    assert (tmp_path / "got" / "redacted" / "cloud_iam.mp4").is_file()
    assert mine and all(c.allowed for c in mine), [c for c in mine if not c.allowed]
    s3_calls = [c for c in mine if c.action.startswith("s3:")]
    assert all(iam_enforced.permits(statements, c) for c in s3_calls)
    assert iam_enforced.unneeded("video-team", statements, s3_calls) == []
    assert {c.action for c in s3_calls} >= {"s3:PutObject", "s3:AbortMultipartUpload", "s3:ListBucket",
                                            "s3:ListBucketVersions", "s3:GetObjectVersion", "s3:GetObject"}

    # the other services' calls: their actions are in the policy, on the resources they were made on
    executions = [e["executionArn"] for e in cloud.executions()]
    map_runs = [m["mapRunArn"] for e in executions for m in cloud.p.sfn.list_map_runs(executionArn=e)["mapRuns"]]
    resources = {"states:DescribeExecution": executions, "states:ListMapRuns": executions,
                 "states:DescribeMapRun": map_runs, "states:StartExecution": [cloud.p.state_machine_arn],
                 "cloudformation:DescribeStacks": ["*"]}
    assert {c.action for c in mine if not c.action.startswith("s3:")} == set(resources)
    for action, arns in resources.items():
        (st,) = [st for st in statements if action in st["Action"]]
        assert arns and all(any(fnmatch.fnmatchcase(a, r) for r in st["Resource"]) for a in arns), (action, arns)


class _Executions:
    """A Step Functions client that knows only DescribeExecution of the given executions (by name)."""

    def __init__(self, executions: dict[str, dict]):
        self.executions = executions

    def describe_execution(self, executionArn):
        from botocore.exceptions import ClientError

        name = executionArn.rsplit(":", 1)[1]
        if name not in self.executions:
            raise ClientError({"Error": {"Code": "ExecutionDoesNotExist", "Message": name}}, "DescribeExecution")
        return {"name": name, "executionArn": executionArn, **self.executions[name]}


def test_status_follows_the_latest_retry_and_tells_a_superseded_run():
    """The run of an upload version is its latest retry when there is one; a run that succeeded but left the
    key's outputs to a newer upload (Stitch's ``superseded``) is not shown as done."""
    import datetime as dt

    from redactor.cloud.runs import Upload, run_state
    from redactor.cloud.stack import Deployment

    dep = Deployment("Redactor", "us-east-1", "raw", "out", "arn:aws:states:us-east-1:1:stateMachine:sm",
                     (".mp4",), 1003)
    up = Upload("a.mp4", "v1", "e", 1, dt.datetime.now(dt.timezone.utc))
    t0 = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=90)
    first, retry = naming.execution_name("raw", "a.mp4", "v1"), naming.retry_execution_name("raw", "a.mp4", "v1", 1)
    ended = {"startDate": t0, "stopDate": t0 + dt.timedelta(seconds=30)}
    superseded = {**ended, "status": "SUCCEEDED", "output": json.dumps({"output": {"superseded": True}})}
    done = {**ended, "status": "SUCCEEDED", "output": json.dumps({"output": {"superseded": False}})}
    failed = {**ended, "status": "FAILED", "error": "WorkerError", "cause": "worker died"}

    state = run_state(None, _Executions({first: failed, retry: superseded}), dep, up)
    assert (state.state, state.attempts, state.execution["name"]) == ("superseded", 1, retry)
    assert state.line() == "a.mp4: superseded (a newer upload of the key owns its outputs) (30s)"
    state = run_state(None, _Executions({first: done}), dep, up)
    assert (state.state, state.attempts, state.outputs[0]) == ("done", 0, "redacted/a.mp4")
    assert run_state(None, _Executions({}), dep, up).state == "queued"
