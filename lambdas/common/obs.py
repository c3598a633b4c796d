"""Observability shared by the handlers: one Powertools Logger, Tracer and Metrics per function, and
``@obs.handler``, the one decorator every handler uses (log context, X-Ray, flushed metrics).

Namespace and service come from the function's environment (POWERTOOLS_METRICS_NAMESPACE and
POWERTOOLS_SERVICE_NAME, set by the stack), never from code: a Lambda runs one handler per process, so the
objects made here are that function's own.
"""
from __future__ import annotations

import json
from typing import Any, Callable

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

__all__ = ["MetricUnit", "error_record", "handler", "logger", "metrics", "parse_cause", "tracer"]

logger = Logger()
tracer = Tracer()
metrics = Metrics()


def handler(fn: Callable) -> Callable:
    """The Lambda entry point, observed: Logger.inject_lambda_context (the invocation's context in every log
    line), Tracer.capture_lambda_handler (an X-Ray subsegment; disabled by POWERTOOLS_TRACE_DISABLED) and
    Metrics.log_metrics (the invocation's add_metric calls flushed as one EMF record, even when it raises)."""
    return logger.inject_lambda_context(tracer.capture_lambda_handler(metrics.log_metrics(fn)))


def error_record(exc: BaseException) -> dict[str, Any]:
    """A JSON-able description of an error: the engine's own to_dict() when it has one."""
    to_dict = getattr(exc, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return {"errorType": type(exc).__name__, "message": str(exc)}


def parse_cause(cause: Any) -> Any:
    """Step Functions passes a Lambda error's Cause as a JSON string; decode it when possible."""
    if isinstance(cause, str):
        try:
            return json.loads(cause)
        except ValueError:
            return cause
    return cause
