"""Powertools helpers shared by the handlers (the Logger/Tracer/Metrics objects live in each handler module)."""
from __future__ import annotations

import json
from typing import Any


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

