"""The tested runtime is the deployed runtime: every function runs the way Lambda runs it, end to end.

Each function of the synthesized stack runs in its own fresh interpreter (CPython at the stack's runtime version
when this machine has it), a warm container kept for the whole run, whose import path holds only:

* the function's code asset exactly as synthesized into the cloud assembly (what deploys as /var/task),
* its layers in the template's order: the engine layer as synthesized, and the pip layers built for this
  machine from the same pinned ``layers/requirements-*.txt`` (``layers/build.py --host``, same trimming, so
  no boto3 in them and no OpenVINO: the model runs in OpenCV DNN, as on Lambda), the model at its layer path,
* the standard library and what the Lambda runtime provides (boto3/botocore, ``tests/lambda_runtime.py``),

with no /dev/shm semaphores (creating one fails with errno 38, as on Lambda), the function's environment from the
template, and AWS reached over HTTP: moto in server mode. The synthesized state machine runs in moto's
interpreter; each Lambda invocation goes to the function's container. A real generated clip with a face and
audio comes out redacted, frame-exact, with its report. Any import that only works because the dev venv has the
package fails this test (the container reports what it loaded and from where).
"""
from __future__ import annotations

import contextlib
import functools
import json
import tempfile
from pathlib import Path
from unittest import mock

import pytest

from tests import aws_support as aws
from tests import iam_enforced
from tests import lambda_runtime as lr
from tests.conftest import audio_packets, video_times
from tests.moto_server import _moto_server_session, moto_server  # noqa: F401 - fixtures

moto = pytest.importorskip("moto")
from moto.awslambda_simple.models import LambdaSimpleBackend  # noqa: E402

from tests.test_workflow_e2e import FN_NAMES, Pipeline, assert_faces_blurred  # noqa: E402

pytestmark = pytest.mark.slow

#: The local-model detectors a deployment can choose (CDK context ``detector`` -> REDACTOR_DETECTOR): the
#: default (cdk.json) first, then the other one, selected the way a user selects it.
DEFAULT_DETECTOR = aws.cdk_context()["detector"]
DETECTORS = [DEFAULT_DETECTOR] + [d for d in ("centerface", "yunet") if d != DEFAULT_DETECTOR]


@functools.lru_cache(maxsize=None)
def _synthesized(detector: str) -> tuple[dict, Path]:
    """The stack as `cdk synth -c detector=...` makes it (the default's synth is shared with the other tests)."""
    if detector == DEFAULT_DETECTOR:
        return aws.synthesized_once()
    assembly, _ = aws.synth(tempfile.mkdtemp(prefix=f"redactor-cdk-{detector}-"), nag=False, detector=detector)
    return assembly.get_stack_by_name("Redactor").template, Path(assembly.directory)


@pytest.fixture(scope="module")
def runtime():
    """(interpreter, host layers, runtime dir): built once, cached under layers/build/host-*/ by recipe hash."""
    python = lr.find_python(aws.cdk_context()["python_version"])
    built = lr.build_runtime(lr.python_version(python))
    return python, built


def _layer_name(template: dict, ref: dict) -> str:
    path = template["Resources"][ref["Ref"]]["Metadata"]["aws:cdk:path"]  # .../Functions/VisionLayer/Resource
    return path.split("/")[-2].removesuffix("Layer").lower()


def _asset(assembly: Path, resource: dict) -> Path:
    return assembly / resource["Metadata"]["aws:asset:path"]


def _iam_names(template: dict, buckets: dict[str, str], functions: dict[str, str], state_machine_arn: str,
               topic_arn: str) -> dict:
    subs = iam_enforced.stack_names(template, buckets)
    for handler, fn_name in functions.items():
        lid, _ = aws.function_by_service(template, handler)
        subs[lid] = fn_name
        subs[f"{lid}.Arn"] = f"arn:aws:lambda:{iam_enforced.REGION}:{iam_enforced.ACCOUNT}:function:{fn_name}"
    (sm_lid,) = aws.resources(template, "AWS::StepFunctions::StateMachine")
    subs[sm_lid] = state_machine_arn
    subs[aws.logical_id_of(template, "AWS::SNS::Topic", "/Notifications/")] = topic_arn
    return subs


class DeployedPipeline(Pipeline):
    """The stack's resources in moto (server mode), each function in its own Lambda-like container, running
    with credentials of its own role from the template (``iam``: the roles in moto's IAM, see
    tests/iam_enforced.py; enforced while the ``deployed`` fixture runs)."""

    def __init__(self, template: dict, assembly: Path, server, runtime, tmp: Path, engine_env: dict[str, str]):
        super().__init__(template, "unused", tmp, engine_env)
        python, built = runtime
        (sm_lid,) = aws.resources(template, "AWS::StepFunctions::StateMachine")
        subs = _iam_names(template, {"Raw": self.raw, "Work": self.work, "Output": self.output},
                          {h: FN_NAMES[h] for h in self.handlers}, self.state_machine_arn, self.topic_arn)
        self.iam = iam_enforced.EnforcedIAM(server, template, subs)
        self.roles = {h: iam_enforced.role_of(aws.function_by_service(template, h)[1]) for h in self.handlers}
        self.roles["state_machine"] = iam_enforced.role_of(template["Resources"][sm_lid])
        self.credentials = {h: self.iam.credentials(role) for h, role in self.roles.items()}
        # the test's own calls (uploads, checks) as a principal allowed everything
        self.s3, self.sfn, self.sqs = (server.client(svc, **self.iam.driver) for svc in ("s3", "stepfunctions", "sqs"))
        self.containers: dict[str, lr.Container] = {}
        #: handler -> predicate on the event: those invocations time out (Lambda's own error, no code runs)
        self.time_out: dict = {}
        self.layer_names: dict[str, list[str]] = {}
        try:
            for name in self.handlers:
                _, fn = aws.function_by_service(template, name)
                props = fn["Properties"]
                names = [_layer_name(template, ref) for ref in props.get("Layers", [])]
                self.layer_names[name] = names
                layers = [_asset(assembly, template["Resources"][ref["Ref"]]) if n == "engine" else built["layers"][n]
                          for n, ref in zip(names, props.get("Layers", []))]
                env = iam_enforced.resolve(props["Environment"]["Variables"], subs)
                env.update(server.env)
                env.update(self.credentials[name])  # the function's own role, assumed
                if any(k.startswith("REDACTOR_") for k in env):  # the engine's functions: test-sized settings
                    env.update(engine_env)
                self.containers[name] = lr.Container(
                    FN_NAMES[name], python, _asset(assembly, fn), layers, built["runtime"], env, tmp / name,
                    memory_mb=props.get("MemorySize", 128), timeout_s=props.get("Timeout", 900))
        except BaseException:
            self.close()
            raise

    def close(self):
        for c in self.containers.values():
            c.close()

    def invoke_factory(self):
        def timed_out(handler: str, event: dict) -> None:
            predicate = self.time_out.get(handler)
            if predicate and predicate(event):  # the platform's answer: the code never returned
                raise lr.FunctionError({"errorType": "Sandbox.Timedout",
                                        "errorMessage": "Task timed out after 900.00 seconds"})

        return lr.serve(self.containers, FN_NAMES, self.invocations, before=timed_out)

    def deliver(self, event: dict) -> dict:
        """EventBridge -> the starter's container."""
        return self.containers["start"].invoke(event)

    def invoke_record_failure(self, event: dict) -> dict:
        """EventBridge (the run-ended rule) -> Record failure's container."""
        return self.containers["record_failure"].invoke(event)


@pytest.fixture(params=DETECTORS)
def deployed(request, moto_server, runtime, tmp_path, monkeypatch):  # noqa: F811 - the fixture
    template, assembly = _synthesized(request.param)
    moto_server.configure({"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}})
    # moto's Step Functions interpreter calls Lambda and S3 back over HTTP on localhost:$MOTO_PORT
    monkeypatch.setenv("MOTO_PORT", moto_server.endpoint.rsplit(":", 1)[1])
    p = DeployedPipeline(template, assembly, moto_server, runtime, tmp_path / "lambda",
                         engine_env={"REDACTOR_SEGMENT_SECONDS": "0.5"})
    p.detector = request.param
    with _enforced(p, moto_server, monkeypatch, interpreter=True):
        yield p


@functools.lru_cache(maxsize=None)
def _synthesized_live() -> tuple[dict, Path]:
    """The stack as `cdk synth -c live=true` makes it."""
    assembly, _ = aws.synth(tempfile.mkdtemp(prefix="redactor-cdk-live-"), nag=False, live=True)
    return assembly.get_stack_by_name("Redactor").template, Path(assembly.directory)


@pytest.fixture
def deployed_live(moto_server, runtime, tmp_path, monkeypatch):  # noqa: F811 - the fixture
    """The stack with live on, every function in its deployed runtime under its own role; segments of 1 s."""
    template, assembly = _synthesized_live()
    moto_server.configure({"lambda": {"use_docker": False}})
    p = DeployedPipeline(template, assembly, moto_server, runtime, tmp_path / "lambda",
                         engine_env={"REDACTOR_SEGMENT_SECONDS": "1"})
    with _enforced(p, moto_server, monkeypatch, interpreter=False):
        yield p


@contextlib.contextmanager
def _enforced(p: DeployedPipeline, server, monkeypatch, interpreter: bool):
    """The test's own calls as the driver principal, Lambda's invocations served by the containers, moto
    authorizing every request (and the Step Functions interpreter under the state machine's role)."""
    for k, v in p.iam.driver.items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(mock.patch.object(LambdaSimpleBackend, "invoke", p.invoke_factory()))
            if interpreter:
                stack.enter_context(iam_enforced.interpreter_as(p.credentials["state_machine"], server.endpoint))
            stack.enter_context(p.iam.enforced())
            yield p
    finally:
        p.close()


def test_every_function_runs_in_its_deployed_runtime_end_to_end(deployed, media, tmp_path):
    """Once per local detector: the default, and the other one chosen as a deployment chooses it (CDK context
    ``detector`` -> the functions' REDACTOR_DETECTOR). YuNet's model is not in the vision layer: it is package
    data of the engine layer, found there, checked by SHA-256 and loaded by OpenCV DNN in the redact
    function's workers (a missing or unloadable model fails the segment closed: no output)."""
    from redactor.model import YUNET_SHA256, sha256_file

    p = deployed
    detector = p.detector
    for name in ("plan", "redact", "stitch"):  # the synthesized functions carry the choice
        env = aws.function_by_service(p.template, name)[1]["Properties"]["Environment"]["Variables"]
        assert env["REDACTOR_DETECTOR"] == detector, (name, env)
    # the containers hold what the template says, and none of them failed to initialise
    assert p.layer_names["redact"] == ["deps", "engine", "ffmpeg", "vision"]
    assert "report" in p.layer_names["stitch"]  # Pillow, for the HTML report
    not_ready = {n: c.log_tail() for n, c in p.containers.items() if not c.ready}
    assert not not_ready, f"functions that failed to import in their deployed runtime: {not_ready}"

    clip = media("deployed.mp4", width=320, height=240, seconds=1.0, audio="aac", faces=1, face_size=(70, 90))
    key = "fleet/car 7/deployed.mp4"
    # a first upload whose second segment times out: the failure paths run under their roles too
    p.time_out["redact"] = lambda event: event["segment"]["index"] == 1
    failed = p.wait(_start(p, clip["path"], key)["executionArn"])
    _assert_nothing_denied(p)
    assert failed["status"] == "FAILED", failed
    record = p.get_json(p.output, f"failed/{key}.json")
    assert record["error"] == "Sandbox.Timedout" and record["failed_segment"] == 1, record
    announced = [p.run_ended(failed["executionArn"])]  # EventBridge's run-ended event -> its message
    assert announced[0]["status"] == "FAILED" and announced[0]["failed_key"] == f"failed/{key}.json"
    assert p.keys(p.work, "runs/") == [], "the failed run's work area is deleted"
    # the same key uploaded again: redacted, and the earlier failure record removed
    p.time_out.clear()
    first_run = len(p.invocations)
    done = p.wait(_start(p, clip["path"], key)["executionArn"])
    logs = {n: c.log_tail(1500) for n, c in p.containers.items()}
    _assert_nothing_denied(p)
    assert done["status"] == "SUCCEEDED", (done, p.invocations, logs)
    announced.append(p.run_ended(done["executionArn"]))
    assert announced[1]["status"] == "SUCCEEDED" and announced[1]["output_key"] == f"redacted/{key}"
    assert p.notifications() == announced

    assert p.keys(p.output) == [f"redacted/{key}", f"redacted/{key}.report.html", f"redacted/{key}.report.json"]
    assert p.keys(p.work, "runs/") == []
    assert p.s3.head_object(Bucket=p.output, Key=f"redacted/{key}")["ContentType"] == "video/mp4"
    out = p.get(p.output, f"redacted/{key}", tmp_path / "out.mp4")
    report = p.get_json(p.output, f"redacted/{key}.report.json")
    assert video_times(str(out)) == video_times(clip["path"])
    assert audio_packets(str(out)) == audio_packets(clip["path"]) and audio_packets(str(out))
    assert report["counts"]["frames"] == clip["frames"] and report["counts"]["segments"] >= 2
    assert report["counts"]["faces"] > 0, report["counts"]
    assert_faces_blurred(clip, str(out))
    # the detector the deployment chose ran, in the inference runtime the layer really has: OpenCV DNN
    # (OpenVINO is not in the layer)
    assert report["detector"]["name"] == detector, report["detector"]
    assert report["detector"].get("backend_opencv", 0) > 0 and "backend_openvino" not in report["detector"]
    # the vendored YuNet model is where the engine looks for it in the redact function's /opt (engine layer)
    yunet = p.containers["redact"].opt / "python" / "redactor" / "models" / "yunet_n_dynamic.onnx"
    assert yunet.is_file() and sha256_file(yunet) == YUNET_SHA256, yunet

    # warm containers: one interpreter per function served all of its invocations
    redacts = [i for i in p.invocations[first_run:] if i[0] == "redact"]
    assert len(redacts) == report["counts"]["segments"] and all(o == "ok" for *_, o in redacts), p.invocations
    assert p.containers["redact"].proc.poll() is None

    # nothing was imported from outside the function's own path (task, its layers, stdlib, runtime)
    for name, c in p.containers.items():
        stats = c.stats()
        assert stats["outside"] == [], (name, stats["outside"])
        assert "openvino" not in stats["modules"], name
        assert stats["semaphore"].startswith("OSError: [Errno 38]"), (name, stats["semaphore"])
    assert "cv2" in p.containers["redact"].stats()["modules"]

    # every S3 grant of every role was needed by a call the run made (mutation check, see _unneeded_grants)
    unneeded, allowed = _unneeded_grants(p)
    assert unneeded == [], f"S3 grants no call of the run needs (least privilege): {unneeded}"
    assert allowed == set(NOT_EXERCISED), f"NOT_EXERCISED lists grants the run does use: {set(NOT_EXERCISED) - allowed}"


def _assert_nothing_denied(p: DeployedPipeline) -> None:
    denied = "\n".join(f"{c.role} {c.action} {c.resource}" for c in p.iam.denied())
    errors = sorted({i[2] for i in p.invocations if i[2] != "ok"})
    assert not denied, f"denied by the functions' own roles:\n{denied}\nthe functions' errors: {errors}"


def _start(p: DeployedPipeline, path: str, key: str) -> dict:
    try:
        started = p.deliver(p.upload(path, key))
    except lr.FunctionError as e:
        raise AssertionError(f"{e}; denied: {p.iam.denied()}") from None
    assert started["status"] == "started", started
    return started


#: S3 grants no call of the end-to-end run makes, each with the reason it stays: (function, action, resource
#: in the form <bucket>/<pattern>, bucket being raw, work or output)
NOT_EXERCISED = {
    ("*", "s3:AbortMultipartUpload", "*"): "aborts an upload that failed part-way (boto3's transfer manager, "
                                           "upload_multipart), so no part is left stored and billed",
    ("*", "s3:GetObject", "raw/*"): "reads the upload when its event carries no version id (the bucket's "
                                    "versioning suspended); with one, HeadObject and GetObject need only "
                                    "GetObjectVersion",
    ("start", "s3:ListBucket", "raw"): "HeadObject of a key deleted before its event arrives answers 404, "
                                       "not 403, only with ListBucket (the starter then reports it missing)",
    ("stitch", "s3:DeleteObjectVersion", "output/redacted/*"): "deletes the versions it wrote when its reports "
                                                                "cannot be written, or when a newer upload of the "
                                                                "key claimed it meanwhile",
}


def _unneeded_grants(p: DeployedPipeline) -> tuple[list[str], set]:
    """The mutation check (``iam_enforced.unneeded_grants``) over every role of the run, NOT_EXERCISED allowed."""
    return iam_enforced.unneeded_grants(p.iam, p.roles, {p.raw: "raw", p.work: "work", p.output: "output"},
                                        NOT_EXERCISED)


#: the live function's grants this run does not need, each exercised by tests/test_live_iam.py's run (END by
#: the idle sweep, records, a chunk read without a version id)
LIVE_ELSEWHERE = {
    ("live", "s3:GetObject", "raw/live/*"): "reads a chunk whose event carries no version id",
    ("live", "s3:ListBucket", "raw"): "the idle sweep lists the streams (tests/test_live_iam.py)",
    ("live", "s3:ListBucket", "output"): "the idle sweep, and a missing playlist's 404 (tests/test_live_iam.py)",
}


def test_a_live_chunk_fans_out_in_the_deployed_runtimes_under_their_own_roles(deployed_live, media, tmp_path):
    """The live function in its own runtime and role plans a chunk, redacts its first segment with its pool and
    invokes the Redact function (its own runtime and role) for the others, staging under ``runs/live-*``; the
    playlist plays every frame with the audio, the staging is gone, and each fan-out grant of the live role is
    needed by a call of the run."""
    from .test_live import assert_continuous, hls

    p = deployed_live
    assert p.layer_names["live"] == p.layer_names["redact"]
    not_ready = {n: c.log_tail() for n, c in p.containers.items() if not c.ready}
    assert not not_ready, f"functions that failed to import in their deployed runtime: {not_ready}"
    clip = media("live-fan.mp4", width=192, height=144, fps=10, seconds=3.0, gop=10, bframes=0, audio="aac",
                 faces=1, face_size=(40, 50))

    def deliver(key: str, body: bytes) -> dict:
        version = p.s3.put_object(Bucket=p.raw, Key=key, Body=body)["VersionId"]
        event = {"detail-type": "Object Created", "source": "aws.s3",
                 "detail": {"bucket": {"name": p.raw}, "object": {"key": key, "version-id": version}}}
        try:
            return p.containers["live"].invoke(event)
        except lr.FunctionError as e:
            raise AssertionError(f"{e}\n{p.containers['live'].log_tail()}") from None

    out = deliver("live/cam/000000.mp4", open(clip["path"], "rb").read())
    _assert_nothing_denied(p)
    assert out["status"] == "published", (out, p.containers["live"].log_tail())
    fanned = [(e["segment"]["index"], o) for h, e, o in p.invocations if h == "redact"]
    assert fanned and all(o == "ok" for _, o in fanned) and 0 not in {i for i, _ in fanned}, p.invocations
    assert deliver("live/cam/END", b"")["status"] == "ended"
    _assert_nothing_denied(p)
    assert p.keys(p.work, "runs/") == [], "the chunk's staging is deleted"
    local = tmp_path / "hls"
    local.mkdir()
    for k in p.keys(p.output, "live/cam/"):
        if k.endswith((".m3u8", ".ts")):
            p.get(p.output, k, local / k.rsplit("/", 1)[1])
    got = hls(local / "index.m3u8")
    assert len(got["video"]) == clip["frames"] and got["audio"], len(got["video"])
    assert_continuous(got["video"], 10)
    for name in ("live", "redact"):
        assert p.containers[name].stats()["outside"] == [], name
    unneeded, used = iam_enforced.unneeded_grants(
        p.iam, {"live": p.roles["live"]}, {p.raw: "raw", p.work: "work", p.output: "output"},
        {**NOT_EXERCISED, **LIVE_ELSEWHERE})
    assert unneeded == [], f"grants of the live role no call of the run needs: {unneeded}"
    invokes = [c for c in p.iam.calls_by(p.roles["live"], s3_only=False) if c.action == "lambda:InvokeFunction"]
    assert invokes and all(c.allowed for c in invokes), invokes
