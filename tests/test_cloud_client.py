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

import json
import os
import queue
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
    sequencer increasing per event), on a thread of its own, after the request that created the object."""

    REASONS = {"Put": "PutObject", "Post": "PostObject", "Copy": "CopyObject",
               "CompleteMultipartUpload": "CompleteMultipartUpload"}

    def __init__(self, pipeline: Pipeline, template: dict):
        self.pipeline = pipeline
        (rule,) = aws.resources(template, "AWS::Events::Rule").values()
        pattern = rule["Properties"]["EventPattern"]
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
                                  "sequencer": f"{0x0061000000000000 + self._sequence:016X}"},
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
        """``redactor cloud ARGS`` in this process: (exit code, stdout, stderr)."""
        capsys.readouterr()
        code = cli.main(["cloud", *args])
        out, err = capsys.readouterr()
        return code, out, err

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
    shown = [tuple(int(x) for x in line.split("redacting ")[1].split(" segments")[0].split(" of "))
             for line in err.splitlines() if "redacting " in line]
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
