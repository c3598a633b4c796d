"""The opt-in functions run under their own synthesized roles with IAM enforced: the live function
(``-c live=true``, lambdas/live) and the KVS consumer (``-c kvs_streams=...``, lambdas/kvs_consumer).

The stack is synthesized with both on (a real CDK synth); its roles go into moto's IAM and each function's
handler runs in this process with the environment the template gives it and credentials of its own role,
assumed through STS, while moto authorizes every request (tests/iam_enforced.py, the harness of
tests/test_deployed_runtime.py). A denied call fails the run; then the mutation check: each (action, resource)
pair of the role's statements taken out in turn must deny a call the run made, unless listed with its reason.

The KVS consumer's archived-media calls (ListFragments, GetClip) go to tests/kvs_fake.py, which moto never
sees: each is judged offline against the consumer's role as the template resolved it, with the stream's real
ARN (so the stream scoping is enforced too), and recorded like moto's decisions. GetDataEndpoint and
ssm:GetParameter reach moto, which enforces their actions (on ``Resource: *``: moto does not scope non-S3
actions); GetDataEndpoint is also judged offline with the stream's ARN.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pytest

from tests import aws_support as aws
from tests import iam_enforced
from tests.moto_server import _moto_server_session, moto_server  # noqa: F401 - fixtures

pytest.importorskip("moto")

RAW, WORK, OUTPUT = "redactor-raw", "redactor-work", "redactor-output"
BUCKETS = {"Raw": RAW, "Work": WORK, "Output": OUTPUT}
LABELS = {RAW: "raw", WORK: "work", OUTPUT: "output"}
#: the functions run here, each under its own role: their names for ``aws_support.function_by_service``
FUNCTIONS = ("live", "kvs_consumer")
KVS_STREAMS = ("cam-1", "fleet-*")  # -c kvs_streams: an exact name and a prefix


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    assembly, _ = aws.synth(str(tmp_path_factory.mktemp("cdk")), nag=False, live=True, kvs_streams=list(KVS_STREAMS))
    return assembly.get_stack_by_name("Redactor").template


@dataclass
class Enforced:
    iam: iam_enforced.EnforcedIAM
    template: dict
    subs: iam_enforced.Names
    roles: dict[str, str]  # function -> its role (logical id, the role's name in moto)
    server: object

    def client(self, service: str):
        """The test's own client (set-up, checks): a principal allowed everything."""
        return self.server.client(service, **self.iam.driver)

    def load(self, name: str, monkeypatch, **overrides: str):
        """The function's handler, imported with its environment from the template (``overrides``: test-sized
        settings) and credentials of its own role."""
        import boto3

        from common import s3 as common_s3

        _, fn = aws.function_by_service(self.template, name)
        env = iam_enforced.resolve(fn["Properties"]["Environment"]["Variables"], self.subs)
        for k, v in {**env, **overrides, **self.iam.credentials(self.roles[name])}.items():
            monkeypatch.setenv(k, v)
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # no client keeps an earlier principal
        common_s3.reset_client()
        return aws.load_handler(name)

    def denied(self) -> str:
        return "\n".join(f"{c.role} {c.action} {c.resource}" for c in self.iam.denied())


@pytest.fixture
def enforced(moto_server, template):  # noqa: F811 - the fixture
    s3 = moto_server.client("s3")
    for bucket in BUCKETS.values():  # as storage.py makes them: versioned
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    subs = iam_enforced.stack_names(template, BUCKETS)
    e = Enforced(iam_enforced.EnforcedIAM(moto_server, template, subs), template, subs,
                 {name: iam_enforced.role_of(aws.function_by_service(template, name)[1]) for name in FUNCTIONS},
                 moto_server)
    yield e
    from common import s3 as common_s3

    common_s3.reset_client()


# ------------------------------------------------------------------------------------------------ live

#: grants no call of a run makes, each with the reason it stays: (function or *, action, resource), an S3
#: resource written <bucket label>/<pattern>
TRACING = {
    ("*", "xray:PutTraceSegments", "*"): "X-Ray tracing (Active): the function's segments; tracing is off here",
    ("*", "xray:PutTelemetryRecords", "*"): "X-Ray tracing (Active); tracing is off here",
}
#: a chunk of one segment (this run's) is not fanned out: the fan-out's grants are each shown needed in
#: tests/test_deployed_runtime.py (the live and Redact functions in their deployed runtimes and roles)
FAN_OUT = "the fan-out of a chunk's segments to the Redact function (tests/test_deployed_runtime.py)"
LIVE_NOT_EXERCISED = {
    **TRACING,
    ("live", "s3:GetObject", "raw/live/*"): "reads a chunk whose event carries no version id (the bucket's "
                                            "versioning suspended); with one, the read needs GetObjectVersion",
    **{("live", action, resource): FAN_OUT for action, resource in (
        ("s3:PutObject", "work/runs/live-*"), ("s3:GetObject", "work/runs/live-*"),
        ("s3:DeleteObject", "work/runs/live-*"), ("s3:ListBucket", "work"))},
    ("*", "lambda:InvokeFunction", "*"): FAN_OUT,  # the live role's only Lambda grant: the Redact function
}


def _chunk_event(key: str, version: str | None) -> dict:
    obj = {"key": key, **({"version-id": version} if version else {})}
    return {"detail-type": "Object Created", "source": "aws.s3",
            "detail": {"bucket": {"name": RAW}, "object": obj}}


def test_the_live_function_runs_under_its_own_role(enforced, monkeypatch, tmp_path, model_path):
    """Chunks published, a duplicate delivery, a conflict and a failed chunk (records), END, a chunk after END,
    and the idle sweep ending another stream: every call allowed by the live role, and every grant of it (S3's
    and the others) needed by one of them."""
    from .test_live import clip

    e = enforced
    mod = e.load("live", monkeypatch, REDACTOR_WORKERS="1", REDACTOR_MODEL_PATH=model_path, LIVE_GAP_WAIT="120",
                 LIVE_END_WAIT="120", LIVE_IDLE_SECONDS="300")
    ctx = aws.FakeContext("redactor-live")
    s3 = e.client("s3")
    clips = [clip(tmp_path / f"{n}.mp4", seconds=1.0, seed=n)["path"] for n in range(3)]

    def upload(key: str, path: str | None = None, body: bytes | None = None) -> dict:
        body = open(path, "rb").read() if path else body
        return _chunk_event(key, s3.put_object(Bucket=RAW, Key=key, Body=body).get("VersionId"))

    with e.iam.enforced():
        statuses = [mod.handler(upload(f"live/cam/{n:06d}.mp4", clips[n]), ctx)["status"] for n in range(2)]
        again = _chunk_event("live/cam/000001.mp4", s3.head_object(Bucket=RAW, Key="live/cam/000001.mp4")["VersionId"])
        statuses.append(mod.handler(again, ctx)["status"])  # the same delivery again
        statuses.append(mod.handler(upload("live/cam/000002.mp4", body=b"not a video"), ctx)["status"])
        statuses.append(mod.handler(upload("live/cam/000001.mp4", clips[2]), ctx)["status"])  # other content
        ended = mod.handler(upload("live/cam/END", body=b""), ctx)
        statuses.append(mod.handler(upload("live/cam/000003.mp4", clips[2]), ctx)["status"])
        # a second stream goes idle: one chunk published, the next uploaded and never delivered
        statuses.append(mod.handler(upload("live/idle/000000.mp4", clips[0]), ctx)["status"])
        upload("live/idle/000001.mp4", clips[1])
        monkeypatch.setattr(mod, "clock", lambda: time.time() + 1000)
        swept = mod.handler({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}, ctx)
    assert not e.denied(), f"denied by the live function's own role:\n{e.denied()}"
    assert statuses == ["published", "published", "duplicate", "gap", "conflict", "after-end", "published"]
    assert ended == {"status": "ended", "stream": "cam", "chunks": 3}
    assert swept == {"status": "swept", "ended": ["idle"], "errors": []}
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=OUTPUT, Prefix="live/")["Contents"]]
    records = sorted(k.split("/records/")[1] for k in keys if "/records/" in k)
    assert [r for r in records if "000002" in r or "000001.mp4.conflict" in r or "after-end" in r or "idle" in r] \
        == ["000001.mp4.conflict.json", "000002.mp4.failed.json", "000003.mp4.after-end.json", "stream.idle.json"]
    for stream in ("cam", "idle"):
        text = s3.get_object(Bucket=OUTPUT, Key=f"live/{stream}/index.m3u8")["Body"].read().decode()
        assert text.rstrip().endswith("#EXT-X-ENDLIST"), (stream, text)

    unneeded, used = iam_enforced.unneeded_grants(e.iam, {"live": e.roles["live"]}, LABELS, LIVE_NOT_EXERCISED,
                                                  s3_only=False)
    assert unneeded == [], f"grants of the live role no call of the run needs (least privilege): {unneeded}"
    assert used == set(LIVE_NOT_EXERCISED), f"allowlisted grants the run does use: {set(LIVE_NOT_EXERCISED) - used}"


# ------------------------------------------------------------------------------------------------ KVS consumer

KVS_NOT_EXERCISED = {
    **TRACING,
    ("kvs_consumer", "s3:ListBucket", "work"): "a GetObject of a cursor not yet written answers 404 (NoSuchKey), "
                                               "not 403, only with ListBucket on the bucket (moto answers 404 "
                                               "whatever the policy)",
}
STREAM_ARN = f"arn:aws:kinesisvideo:{iam_enforced.REGION}:{iam_enforced.ACCOUNT}:stream/{{}}/0"


class StreamPolicy:
    """Judges the consumer's KVS calls offline with each stream's ARN (``EnforcedIAM.authorize``): GetDataEndpoint
    before it goes to moto (which judges it again, on ``Resource: *``), ListFragments and GetClip before the
    fake answers them. A denied call gets KVS's AccessDeniedException."""

    def __init__(self, iam: iam_enforced.EnforcedIAM, fake, arns: dict[str, str]):
        self.iam, self.fake, self.arns = iam, fake, arns

    def _judge(self, request, **_):
        body = json.loads(request.body or b"{}")
        operation = request.url.rsplit("/", 1)[-1]
        stream = body.get("StreamName", "")
        action = f"kinesisvideo:{operation[0].upper()}{operation[1:]}"
        if not self.iam.authorize(request, action, self.arns.get(stream, STREAM_ARN.format(stream))):
            return self.fake._error(403, "AccessDeniedException", f"not authorized: {action} on {stream}")
        return None

    def archive(self):
        """kvs.Archive with the judge on its control-plane client and on each archived-media client (ahead of
        the fake)."""
        import boto3

        from redactor import kvs

        session = boto3.session.Session()
        session.events.register_first("before-send.kinesis-video", self._judge)

        def attach(client):
            client.meta.events.register_first("before-send.kinesis-video-archived-media", self._judge)
            self.fake.attach(client)
        return kvs.Archive(session=session, client_hook=attach)


def test_the_kvs_consumer_runs_under_its_own_role(enforced, monkeypatch, tmp_path):
    """Two streams in its scope land chunks (cam-1, and fleet-7 by the fleet-* prefix), one in its scope that
    KVS does not have is recorded deleted with its end marker, one outside its scope is recorded not permitted;
    a second invocation resumes from the cursors. Every other call is allowed by the consumer's role, and every
    grant of it (S3's and the others) is needed by one of them."""
    from testmedia import make_clip

    from redactor import kvs
    from tests.kvs_fake import FakeArchivedMedia

    e = enforced
    source = str(tmp_path / "camera.mp4")
    make_clip(source, width=160, height=96, fps=10, seconds=12, gop=10, bframes=0, audio="aac", faces=0)
    param = aws.logical_id_of(e.template, "AWS::SSM::Parameter", "/Kvs/Streams/")
    e.client("ssm").put_parameter(Name=e.subs[param], Type="String", Value="cam-1,fleet-7,fleet-9,other-1")
    kv = e.client("kinesisvideo")
    arns = {name: kv.create_stream(StreamName=name, DataRetentionInHours=24)["StreamARN"]
            for name in ("cam-1", "fleet-7", "other-1")}
    fake = FakeArchivedMedia(time.time)
    for name in arns:
        fake.add_media(name, source, server_start_ms=round(time.time() * 1000) - 40_000)
    policy = StreamPolicy(e.iam, fake, arns)
    mod = e.load("kvs_consumer", monkeypatch, KVS_RUN_SECONDS="20", KVS_POLL_SECONDS="30", KVS_CLIP_SECONDS="4",
                 KVS_BACKFILL_SECONDS="60")
    monkeypatch.setattr(mod, "make_archive", policy.archive)
    ctx = aws.FakeContext("redactor-kvs-consumer")
    with e.iam.enforced():
        runs = [mod.handler({}, ctx)["streams"] for _ in range(2)]
    denied = [c for c in e.iam.denied() if "/other-1/" not in c.resource]
    assert not denied, f"denied by the consumer's own role: {denied}"
    assert {c.action for c in e.iam.denied()} == {"kinesisvideo:GetDataEndpoint"}  # other-1, offline
    first = runs[0]
    for name in ("cam-1", "fleet-7"):
        assert first[name]["landed"] == [kvs.chunk_key(name, i) for i in range(3)], first[name]
    assert first["fleet-9"]["state"] == "deleted" and first["other-1"]["state"] == "denied", first
    assert [r.rsplit("-", 1)[1] for r in first["fleet-9"]["records"] + first["other-1"]["records"]] == [
        "StreamDeleted.json", "StreamNotPermitted.json"]
    assert {n: s["state"] for n, s in runs[1].items()} == {"cam-1": "following", "fleet-7": "following",
                                                           "fleet-9": "deleted", "other-1": "denied"}
    s3 = e.client("s3")
    assert s3.head_object(Bucket=RAW, Key="live/fleet-9/END")["ContentLength"] == 0
    calls = [c for c in e.iam.calls_by(e.roles["kvs_consumer"], s3_only=False) if c.allowed]
    judged = {(c.action, c.resource.rsplit("/", 2)[-2]) for c in calls if c.action.startswith("kinesisvideo:")
              and c.resource != "*"}
    assert {("kinesisvideo:ListFragments", "fleet-7"), ("kinesisvideo:GetClip", "cam-1")} <= judged, judged
    # moto itself authorized these against the role (on Resource: *)
    assert {"kinesisvideo:GetDataEndpoint", "ssm:GetParameter"} <= {c.action for c in calls if c.resource == "*"}

    unneeded, used = iam_enforced.unneeded_grants(e.iam, {"kvs_consumer": e.roles["kvs_consumer"]}, LABELS,
                                                  KVS_NOT_EXERCISED, s3_only=False)
    assert unneeded == [], f"grants of the consumer's role no call of the run needs (least privilege): {unneeded}"
    assert used == set(KVS_NOT_EXERCISED), f"allowlisted grants the run does use: {set(KVS_NOT_EXERCISED) - used}"
