"""The CloudWatch dashboard in the synthesized template: its widgets, and every metric it shows is one that
really exists — AWS's own (Step Functions, Lambda, SQS) on this stack's resources, or a custom metric that a
handler emits with Powertools (its add_metric calls, under the namespace and service dimension the function's
environment gives Powertools)."""
from __future__ import annotations

import ast
import json

import pytest

from tests import aws_support as aws
from tests.aws_support import LAMBDAS, our_functions, resources


@pytest.fixture(scope="module")
def template():
    return aws.synthesized_once()[0]


def _metrics(widget) -> list[list]:
    return widget.get("properties", {}).get("metrics", [])


def _emitted() -> set[tuple[str, str, str]]:
    """(function folder, metric name) of every add_metric call in the handlers, read from their source."""
    out = set()
    for handler in sorted(LAMBDAS.glob("*/handler.py")):
        for node in ast.walk(ast.parse(handler.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_metric":
                name = next(k.value.value for k in node.keywords if k.arg == "name")
                out.add((handler.parent.name, name))
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("Logger", "Tracer", "Metrics"):
                raise AssertionError(f"{handler}: makes its own {node.func.id}; use common.obs (one per function)")
    # the handlers' one Metrics object (lambdas/common/obs.py): namespace and service come from the
    # environment (POWERTOOLS_*), not from the code
    made = [node for node in ast.walk(ast.parse((LAMBDAS / "common" / "obs.py").read_text()))
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Metrics"]
    assert len(made) == 1, "common/obs.py makes the handlers' one Metrics object"
    assert not made[0].args and not made[0].keywords, "common/obs.py: Metrics(...) overrides the environment"
    return out


def test_dashboard_shows_runs_output_speed_health_and_the_dlq(template):
    body = aws.dashboard_body(template)
    titles = {w["properties"].get("title") for w in body["widgets"] if w["type"] == "metric"}
    for needed in ("Runs started / succeeded / failed", "Videos redacted / failed, uploads started",
                   "Frames redacted", "Frames/s", "Segment duration (s)", "Lambda throttles per function",
                   "Lambda errors per function", "Starter DLQ depth (upload events not started)"):
        assert needed in titles, titles
    by_title = {w["properties"].get("title"): w for w in body["widgets"]}
    sm = next(iter(resources(template, "AWS::StepFunctions::StateMachine")))
    runs = {(m[0], m[1], m[3]) for m in _metrics(by_title["Runs started / succeeded / failed"])}
    assert {("AWS/States", n, f"<{sm}>") for n in ("ExecutionsStarted", "ExecutionsSucceeded",
                                                   "ExecutionsFailed")} <= runs
    # p50 and p99 of the segment duration
    stats = {m[-1]["stat"] for m in _metrics(by_title["Segment duration (s)"]) if m[1] == "SegmentSeconds"}
    assert {"p50", "p99"} <= stats
    # frames/s: math over the redact function's frames and segment seconds, ids defined in the same widget
    fps = _metrics(by_title["Frames/s"])
    exprs = [m[0]["expression"] for m in fps if isinstance(m[0], dict)]
    ids = {m[-1].get("id") for m in fps if isinstance(m[0], str)}
    assert "frames / PERIOD(frames)" in exprs and "frames / seconds" in exprs and {"frames", "seconds"} <= ids
    # throttles and errors for every one of the stack's functions
    fns = {f"<{lid}>" for lid in our_functions(template)}
    for title, metric in (("Lambda throttles per function", "Throttles"), ("Lambda errors per function", "Errors")):
        shown = {m[3] for m in _metrics(by_title[title]) if m[:3] == ["AWS/Lambda", metric, "FunctionName"]}
        assert shown == fns, (title, shown, fns)
    # the starter's DLQ (the upload rule's dead-letter target)
    rule = template["Resources"][aws.logical_id_of(template, "AWS::Events::Rule", "/UploadRule/")]
    dlq = rule["Properties"]["Targets"][0]["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    (depth,) = _metrics(by_title["Starter DLQ depth (upload events not started)"])
    assert depth[:3] == ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName"]
    assert depth[3] == f"<{dlq}>"


def test_custom_metrics_on_the_dashboard_are_the_ones_the_handlers_emit(template):
    env = {}  # service name -> the namespace its Powertools Metrics publish to
    for fn in our_functions(template).values():
        v = fn["Properties"]["Environment"]["Variables"]
        env[v["POWERTOOLS_SERVICE_NAME"]] = v["POWERTOOLS_METRICS_NAMESPACE"]
    emitted = set()
    for folder, name in _emitted():  # lambdas/<folder>/ is deployed with service name redactor-<folder>
        service = f"redactor-{folder.replace('_', '-')}"
        if service in env:
            emitted.add((env[service], name, service))
    assert ("Redactor", "FramesRedacted", "redactor-redact") in emitted
    shown = set()
    for w in aws.dashboard_body(template)["widgets"]:
        for m in _metrics(w):
            if isinstance(m[0], str) and not m[0].startswith("AWS/"):
                assert m[2] == "service", m  # Powertools' default dimension, and the only one the handlers set
                shown.add((m[0], m[1], m[3]))
    assert shown, "the dashboard shows custom metrics"
    assert shown <= emitted, f"not emitted by any handler: {sorted(shown - emitted)}"
    for needed in ("VideosRedacted", "VideosFailed", "FramesRedacted", "SegmentSeconds"):
        assert any(name == needed for _, name, _ in shown), needed


def test_dashboard_name_is_a_stack_output(template):
    (lid,) = resources(template, "AWS::CloudWatch::Dashboard")
    assert template["Outputs"]["DashboardName"]["Value"] == {"Ref": lid}
