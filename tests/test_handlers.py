"""Unit tests of the handler helpers that need no AWS at all (naming, prefixes, env validation)."""
from __future__ import annotations

import re

import pytest

from tests import aws_support  # noqa: F401  (puts lambdas/ on sys.path)
from common import naming
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
