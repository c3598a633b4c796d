"""The KVS consumer in the stack (stacks/kvs.py): absent by default, and with context kvs_streams a scheduled,
least-privilege function whose synth passes cdk-nag (every finding acknowledged with a reason)."""
from __future__ import annotations

import pytest

from tests import aws_support as aws
from tests.aws_support import function_by_service, logical_id_of, resources

STREAMS = ("cam-1", "fleet-*")


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    """Synthesized with cdk-nag on (an unacknowledged finding fails the synth): (template, its file)."""
    outdir = tmp_path_factory.mktemp("cdk")
    assembly, _ = aws.synth(str(outdir), nag=True, kvs_streams=list(STREAMS))
    return assembly.get_stack_by_name("Redactor").template, outdir / "Redactor.template.json"


@pytest.fixture(scope="module")
def template(synthesized):
    return synthesized[0]


def statements(template):
    _, fn = function_by_service(template, "kvs_consumer")
    role = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    return [st for pol in resources(template, "AWS::IAM::Policy").values()
            if {"Ref": role} in pol["Properties"]["Roles"] for st in pol["Properties"]["PolicyDocument"]["Statement"]]


def as_list(x):
    return x if isinstance(x, list) else [x]


def render(value) -> str:
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        return "".join(render(p) for p in value["Fn::Join"][1])
    if "Ref" in value:
        return f"<{value['Ref']}>"
    if "Fn::GetAtt" in value:
        return f"<{value['Fn::GetAtt'][0]}.{value['Fn::GetAtt'][1]}>"
    raise AssertionError(value)


def test_the_default_stack_has_no_consumer():
    from stacks.settings import Settings

    assert Settings().kvs_streams == () and not Settings().kvs_enabled


def test_schedule_is_disabled_by_default_and_targets_the_consumer(template):
    lid, fn = function_by_service(template, "kvs_consumer")
    rule_id = logical_id_of(template, "AWS::Events::Rule", "/Kvs/Schedule/")
    rule = template["Resources"][rule_id]["Properties"]
    assert rule["State"] == "DISABLED" and rule["ScheduleExpression"] == "rate(1 minute)"
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": [lid, "Arn"]}
    p = fn["Properties"]
    assert p["Timeout"] > int(p["Environment"]["Variables"]["KVS_RUN_SECONDS"]) > 60  # invocations overlap
    assert p["Architectures"] == ["arm64"] and p["TracingConfig"] == {"Mode": "Active"}
    param = logical_id_of(template, "AWS::SSM::Parameter", "/Kvs/Streams/")
    assert template["Resources"][param]["Properties"]["Value"] == "cam-1"  # the exact names; prefixes are allowed
    assert p["Environment"]["Variables"]["KVS_STREAMS_PARAMETER"] == {"Ref": param}


def test_the_consumer_may_read_only_its_streams_and_write_only_its_prefixes(template):
    st = statements(template)
    kvs = [s for s in st if any(a.startswith("kinesisvideo:") for a in as_list(s["Action"]))]
    assert len(kvs) == 1
    assert sorted(as_list(kvs[0]["Action"])) == ["kinesisvideo:GetClip", "kinesisvideo:GetDataEndpoint",
                                                 "kinesisvideo:ListFragments"]
    assert sorted(render(r) for r in as_list(kvs[0]["Resource"])) == [
        "arn:<AWS::Partition>:kinesisvideo:us-east-1:123456789012:stream/cam-1/*",
        "arn:<AWS::Partition>:kinesisvideo:us-east-1:123456789012:stream/fleet-*/*"]
    raw = logical_id_of(template, "AWS::S3::Bucket", "/Storage/Raw/")
    work = logical_id_of(template, "AWS::S3::Bucket", "/Storage/Work/")
    output = logical_id_of(template, "AWS::S3::Bucket", "/Storage/Output/")
    puts = sorted(render(r) for s in st if "s3:PutObject" in as_list(s["Action"]) for r in as_list(s["Resource"]))
    assert puts == [f"<{raw}.Arn>/live/*", f"<{work}.Arn>/kvs/*"]
    gets = sorted(render(r) for s in st if "s3:GetObject" in as_list(s["Action"]) for r in as_list(s["Resource"]))
    assert gets == [f"<{work}.Arn>/kvs/*"]
    assert not any(output in render(r) for s in st for r in as_list(s["Resource"]))  # the output bucket: no
    assert not any(a == "s3:DeleteObject" or a.endswith("*") for s in st for a in as_list(s["Action"]))
    listing = {render(s["Resource"]): s.get("Condition") for s in st if "s3:ListBucket" in as_list(s["Action"])}
    # the work bucket's: unconditioned, so that GetObject of a cursor not yet written answers 404 (S3 evaluates
    # ListBucket for that request, which has no s3:prefix)
    assert listing == {f"<{raw}.Arn>": {"StringLike": {"s3:prefix": ["live/*"]}}, f"<{work}.Arn>": None}
    (ssm,) = [s for s in st if "ssm:GetParameter" in as_list(s["Action"])]
    assert as_list(ssm["Action"]) == ["ssm:GetParameter"]


def test_kvs_enabled_and_bad_stream_names(tmp_path):
    from stacks.settings import Settings, SettingsError

    assembly, _ = aws.synth(str(tmp_path), nag=False, kvs_streams="cam-1", kvs_enabled="true")
    t = assembly.get_stack_by_name("Redactor").template
    rule_id = logical_id_of(t, "AWS::Events::Rule", "/Kvs/Schedule/")
    assert t["Resources"][rule_id]["Properties"]["State"] == "ENABLED"
    for bad in ("*", "a/b", "x" * 257):
        with pytest.raises(SettingsError, match="kvs_streams"):
            Settings(kvs_streams=(bad,))


def test_the_dashboard_shows_what_the_consumer_emits(template):
    """Every custom metric on the dashboard's KVS row is one the handler emits (its add_metric calls)."""
    import ast
    import json

    from tests.aws_support import LAMBDAS

    emitted = {k.value.value for node in ast.walk(ast.parse((LAMBDAS / "kvs_consumer" / "handler.py").read_text()))
               if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_metric"
               for k in node.keywords if k.arg == "name"}
    (dash,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    body = dash["Properties"]["DashboardBody"]
    text = "".join(p if isinstance(p, str) else "0" for p in body["Fn::Join"][1]) if isinstance(body, dict) else body
    widgets = [w for w in json.loads(text)["widgets"] if w["properties"].get("title", "").startswith("KVS in")]
    shown = {m[1] for w in widgets for m in w["properties"]["metrics"]
             if isinstance(m[0], str) and m[0] == "Redactor"}
    assert len(widgets) == 4 and shown and shown <= emitted, (shown, emitted)
    assert {"KvsChunksLanded", "KvsLagSeconds", "KvsStreamQuiet", "KvsStreamDeleted", "KvsClipFailed"} <= shown


def test_cfn_lint_has_no_errors(synthesized):
    import subprocess
    import sys

    _, path = synthesized
    proc = subprocess.run([sys.executable, "-m", "cfnlint", "--format", "parseable", str(path)],
                          capture_output=True, text=True, timeout=600)
    errors = [line for line in proc.stdout.splitlines() if ":E" in line]
    assert path.is_file() and proc.returncode & 2 == 0 and not errors, proc.stdout + proc.stderr
