"""Unit tests of the handler helpers that need no AWS at all (naming, prefixes, env validation)."""
from __future__ import annotations

import json
import re

import pytest

from tests import aws_support  # noqa: F401  (puts lambdas/ on sys.path)
from redactor import naming
from common.env import EnvironmentError_, require
from common.obs import error_record, parse_cause


def test_execution_name_is_deterministic_short_and_safe():
    a = naming.execution_name("raw", "fleet/car 7/2024-05-01 dash cam (front).MP4", "v1")
    assert a == naming.execution_name("raw", "fleet/car 7/2024-05-01 dash cam (front).MP4", "v1")
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,80}", a), a
    assert a.startswith("2024-05-01-dash-cam-front-MP4-")
    assert naming.execution_name("raw", "k.mp4", "v2") != naming.execution_name("raw", "k.mp4", "v1")
    assert naming.execution_name("raw2", "k.mp4", "v1") != naming.execution_name("raw", "k.mp4", "v1")
    long = naming.execution_name("raw", "x/" + "é" * 10 + "a" * 300 + ".mp4", "etag")
    assert len(long) <= 80 and re.fullmatch(r"[A-Za-z0-9_-]+", long)
    assert naming.execution_name("raw", "dir/ü.mp4", None).startswith("mp4-")
    assert naming.execution_name("raw", "dir/.../", None).startswith("video-")


def test_retry_names_are_distinct_deterministic_and_safe():
    first = naming.execution_name("raw", "fleet/car 7/a.mp4", "v1")
    retries = [naming.retry_execution_name("raw", "fleet/car 7/a.mp4", "v1", n) for n in (1, 2, 10, 999)]
    assert len({first, *retries}) == 5
    assert retries[0] == naming.retry_execution_name("raw", "fleet/car 7/a.mp4", "v1", 1)
    assert retries[0] != naming.retry_execution_name("raw", "fleet/car 7/a.mp4", "v2", 1)
    assert retries[0].startswith("a-mp4-r1-") and retries[3].startswith("a-mp4-r999-")
    long = naming.retry_execution_name("raw", "x/" + "a" * 300 + ".mp4", "v1", 12345)
    assert len(long) == 80 and re.fullmatch(r"[A-Za-z0-9_-]+", long) and "-r12345-" in long
    for bad in (0, -1, 1.5, True, "1"):
        with pytest.raises(ValueError):
            naming.retry_execution_name("raw", "k.mp4", "v1", bad)


def test_execution_input_is_what_the_starter_and_a_retry_send():
    name = naming.retry_execution_name("raw", "a/b.mp4", "v1", 2)
    got = naming.execution_input("raw", "a/b.mp4", "v1", "0062B1F3A8E5C7D9A1", execution=name, etag="e", size=7)
    assert got == {"bucket": "raw", "key": "a/b.mp4", "version": "v1", "sequencer": "0062B1F3A8E5C7D9A1",
                   "etag": "e", "size": 7, "work_prefix": f"runs/{name}/"}
    assert naming.execution_input("raw", "k", None, None, execution="n")["sequencer"] == ""


def test_sequencers_order_uploads_of_a_key_as_s3_documents():
    older, newer = "0055AED6DCD90281E5", "0055AED6DCD90281E6"
    assert naming.newer(newer, older) and not naming.newer(older, newer) and not naming.newer(older, older)
    # different lengths: the shorter is right-padded with zeros before comparing
    assert naming.newer("0055AED6DCD90281E6", "0055AED6DCD90281E") and not naming.newer("0055AED6DCD9028",
                                                                                        "0055AED6DCD90280")
    assert naming.newer("0055aed6dcd90281e6", older)  # case does not matter
    assert naming.newer(older, None) and naming.newer(older, "") and not naming.newer(None, older)
    with pytest.raises(ValueError):
        naming.sequencer_value("not-hex")
    assert naming.version_record_key("a/b.mp4") != naming.version_record_key("a/c.mp4")
    assert re.fullmatch(r"versions/[0-9a-f]{64}\.json", naming.version_record_key("é" * 900))


def test_keys_too_long_for_their_outputs_get_a_short_failure_record():
    fits = "k/" + "a" * (1024 - len("redacted/") - len(".report.html") - 2)
    assert len(naming.report_html_key(fits).encode()) == 1024 and not naming.key_too_long(fits)
    assert naming.failed_key(fits) == f"failed/{fits}.json"
    too_long = fits + "a"
    assert naming.key_too_long(too_long) and naming.key_too_long("é" * 502)  # bytes, not characters
    hashed = naming.failed_key(too_long)
    assert re.fullmatch(r"failed/long-keys/[0-9a-f]{64}\.json", hashed) and hashed != naming.failed_key(fits + "b")


def test_keys_and_prefix_checks():
    p = naming.work_prefix("run-1")
    assert p == "runs/run-1/" and naming.check_work_prefix(p) == p
    for bad in ("runs/", "other/x/", "runs/../x/", "runs/x"):
        with pytest.raises(ValueError):
            naming.check_work_prefix(bad)
    assert naming.part_key(p, 3, ".mp4") == "runs/run-1/parts/00003.mp4"
    assert naming.result_key(p, 12) == "runs/run-1/results/00012.json"
    assert naming.faces_key(p) == "runs/run-1/faces.json"
    assert naming.output_key("a/b.mp4") == "redacted/a/b.mp4"
    assert naming.report_key("a/b.mp4") == "redacted/a/b.mp4.report.json"
    assert naming.failed_key("a/b.mp4") == "failed/a/b.mp4.json"


def test_env_validation_names_what_is_missing(monkeypatch):
    monkeypatch.setenv("X_ONE", "1")
    monkeypatch.delenv("X_TWO", raising=False)
    assert require("X_ONE") == {"X_ONE": "1"}
    with pytest.raises(EnvironmentError_, match="X_TWO"):
        require("X_ONE", "X_TWO")


def test_handler_fails_at_cold_start_without_its_environment(monkeypatch):
    for k in ("RAW_BUCKET", "WORK_BUCKET", "OUTPUT_BUCKET"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(EnvironmentError_, match="WORK_BUCKET"):
        aws_support.load_handler("record_failure")


def test_error_helpers():
    from redactor.errors import InputError

    assert error_record(InputError("not a video", "x.mp4"))["errorType"] == "InputError"
    assert error_record(ValueError("boom")) == {"errorType": "ValueError", "message": "boom"}
    assert parse_cause('{"a": 1}') == {"a": 1} and parse_cause("plain") == "plain"


def test_every_handler_is_observed_through_common_obs():
    """The six entry points take their Logger/Tracer/Metrics and decorators from common.obs, once each."""
    import ast

    handlers = sorted(aws_support.LAMBDAS.glob("*/handler.py"))
    assert len(handlers) == 6, handlers
    for path in handlers:
        tree = ast.parse(path.read_text())
        (entry,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "handler"]
        assert [ast.unparse(d) for d in entry.decorator_list] == ["obs.handler"], path


def test_a_malformed_event_is_refused_naming_the_function_and_field(monkeypatch):
    """Events are parsed into records first: a missing field is an EventError naming it, not a KeyError."""
    from common.events import EventError

    for k in ("RAW_BUCKET", "WORK_BUCKET", "OUTPUT_BUCKET"):
        monkeypatch.setenv(k, k.lower())
    ok = {"bucket": "raw", "key": "a.mp4", "work_prefix": "runs/a-0123/"}
    for name in ("plan", "redact", "stitch"):
        handler = aws_support.load_handler(name).handler
        ctx = aws_support.FakeContext(f"redactor-{name}")
        for missing in ("bucket", "key", "work_prefix"):
            with pytest.raises(EventError, match=f"{name}: the event has no '{missing}'"):
                handler({k: v for k, v in ok.items() if k != missing}, ctx)
    redact = aws_support.load_handler("redact").handler
    with pytest.raises(EventError, match="redact: the event has no 'segment'"):
        redact(ok, aws_support.FakeContext("redactor-redact"))
    with pytest.raises(EventError, match="redact: the event's segment is malformed"):
        redact({**ok, "segment": {"index": 0}}, aws_support.FakeContext("redactor-redact"))
    with pytest.raises(EventError, match="work prefix"):
        redact({**ok, "work_prefix": "elsewhere/"}, aws_support.FakeContext("redactor-redact"))
    faces = aws_support.load_handler("faces").handler
    for action in ("check", "save"):
        with pytest.raises(EventError, match=f"faces {action}: the event has no 'job_id'"):
            faces({**ok, "action": action}, aws_support.FakeContext("redactor-faces"))
    with pytest.raises(EventError, match="faces start: the event has no 'key'"):
        faces({"action": "start", "bucket": "raw", "work_prefix": ok["work_prefix"]}, aws_support.FakeContext("f"))


def test_no_handler_branches_on_the_detector_name():
    """Which detector needs what is the engine's (redactor.detectors): handlers ask it, never compare names."""
    import ast

    for path in sorted(aws_support.LAMBDAS.glob("*/handler.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            assert not (isinstance(node, ast.Attribute) and node.attr == "detector"), \
                f"{path}:{node.lineno}: reads .detector"


def test_start_refuses_a_malformed_s3_event_naming_the_field(monkeypatch):
    """Start parses S3's Object Created event first: a missing or mistyped field is an EventError naming it (the
    old handler took an event without detail/bucket/key as 'ignored' and a non-numeric size as a ValueError),
    before any AWS call. Another bucket's well-formed event is still ignored."""
    from common.events import EventError

    monkeypatch.setenv("RAW_BUCKET", "raw")
    monkeypatch.setenv("STATE_MACHINE_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:redactor")
    start = aws_support.load_handler("start")
    monkeypatch.setattr(start, "sfn", lambda: pytest.fail("no AWS call for a malformed event"))
    monkeypatch.setattr(start.s3, "head", lambda *a: pytest.fail("no AWS call for a malformed event"))
    ctx = aws_support.FakeContext("redactor-start")
    obj = {"key": "a.mp4", "size": 10, "etag": "e", "version-id": "v"}
    for event, missing in (({}, "detail.bucket.name"),
                           ({"detail": {"object": obj}}, "detail.bucket.name"),
                           ({"detail": {"bucket": {}, "object": obj}}, "detail.bucket.name"),
                           ({"detail": {"bucket": {"name": "raw"}}}, "detail.object.key"),
                           ({"detail": {"bucket": {"name": "raw"}, "object": {"size": 10}}}, "detail.object.key"),
                           ({"detail": {"bucket": {"name": "raw"}, "object": {"key": ""}}}, "detail.object.key")):
        with pytest.raises(EventError, match=f"start: the event has no '{missing}'"):
            start.handler(event, ctx)
    bad = {"detail": {"bucket": {"name": "raw"}, "object": {"key": "a.mp4", "size": "big"}}}
    with pytest.raises(EventError, match="start: the event's 'detail.object.size' is a str, not a whole number"):
        start.handler(bad, ctx)
    bad = {"detail": {"bucket": {"name": "raw"}, "object": {"key": ["a.mp4"]}}}
    with pytest.raises(EventError, match="start: the event's 'detail.object.key' is a list, not a string"):
        start.handler(bad, ctx)
    bad = {"detail": {"bucket": {"name": "raw"}, "object": {"key": "a.mp4", "version-id": 7}}}
    with pytest.raises(EventError, match="start: the event's 'detail.object.version-id' is a int, not a string"):
        start.handler(bad, ctx)
    with pytest.raises(EventError, match="start: the event's 'detail' is a str, not an object"):
        start.handler({"detail": "x"}, ctx)
    other = {"detail": {"bucket": {"name": "someone-else"}, "object": {"key": "a.mp4"}}}
    assert start.handler(other, ctx) == {"status": "ignored"}


def test_record_failure_refuses_a_malformed_event_naming_the_action_and_field(monkeypatch):
    """Both ways the workflow calls Record failure are parsed first (the old handler raised KeyError for a
    missing key/work_prefix, ValueError for a non-numeric segment, AttributeError for an error that is not an
    object), before any S3 call."""
    from common.events import EventError

    monkeypatch.setenv("WORK_BUCKET", "work")
    monkeypatch.setenv("OUTPUT_BUCKET", "output")
    monkeypatch.setenv("NOTIFICATION_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:notifications")
    rf = aws_support.load_handler("record_failure")
    for name in ("put_json", "get_json", "list_keys", "delete_prefix"):
        monkeypatch.setattr(rf.s3, name, lambda *a, **k: pytest.fail("no S3 call for a malformed event"))
    ctx = aws_support.FakeContext("redactor-record-failure")
    prefix = "runs/a-0123/"
    error = {"Error": "InputError", "Cause": "{}"}
    cases = [
        ({"key": "a.mp4", "segment": 2, "error": error},
         "record_failure segment: the event has no 'work_prefix'"),
        ({"key": "a.mp4", "segment": "two", "work_prefix": prefix, "error": error},
         "record_failure segment: the event's 'segment' is a str, not a whole number"),
        ({"key": "a.mp4", "segment": -1, "work_prefix": prefix, "error": error},
         "record_failure segment: the event's 'segment' is negative"),
        ({"key": "a.mp4", "segment": 2, "work_prefix": "elsewhere/", "error": error},
         "record_failure segment: .*work prefix"),
        ({"key": "a.mp4", "segment": 2, "work_prefix": prefix, "error": "boom"},
         "record_failure segment: the event's 'error' is a str, not an object"),
        ({"bucket": "raw", "work_prefix": prefix, "error": error},
         "record_failure run: the event has no 'key'"),
        ({"bucket": "raw", "key": "a.mp4", "work_prefix": "runs/../x/", "error": error},
         "record_failure run: .*work prefix"),
        ({"bucket": "raw", "key": "a.mp4", "work_prefix": prefix, "error": ["InputError"]},
         "record_failure run: the event's 'error' is a list, not an object"),
        ({"bucket": "raw", "key": "a.mp4", "execution": 5, "error": error},
         "record_failure run: the event's 'execution' is a int, not a string"),
        ("not an event", "record_failure: the event is a str, not an object"),
    ]
    # EventBridge's run-ended event: the execution's status, name and input are required
    run_input = json.dumps({"bucket": "raw", "key": "a.mp4", "work_prefix": prefix, "sequencer": "00AB"})

    def ended(**detail):
        return {"detail-type": "Step Functions Execution Status Change", "source": "aws.states",
                "detail": {"status": "TIMED_OUT", "name": "a-0123", "input": run_input, **detail}}

    cases += [
        (ended(status="RUNNING"), "record_failure run-ended: the event's 'detail.status' 'RUNNING' is not one of"),
        (ended(name=None), "record_failure run-ended: the event has no 'detail.name'"),
        (ended(input=None), "record_failure run-ended: the event has no 'detail.input'"),
        (ended(input="{not json"), "record_failure run-ended: the event's 'detail.input' is not JSON"),
        (ended(input=json.dumps({"bucket": "raw", "key": "a.mp4"})),
         r"record_failure run-ended \(detail.input\): the event has no 'work_prefix'"),
        (ended(input=run_input.replace("00AB", "zz")), "sequencer"),
    ]
    monkeypatch.setattr(rf, "sns", lambda: pytest.fail("no message for a malformed event"))
    for event, message in cases:
        with pytest.raises(EventError, match=message):
            rf.handler(event, ctx)
