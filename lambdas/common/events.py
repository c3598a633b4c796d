"""The events the handlers get, parsed at the top of each handler: the S3 "Object Created" event EventBridge
delivers to Start, and what the workflow (stacks/workflow.py) passes the others. A missing or malformed field is
an EventError naming the function (and action) and the field, before any AWS call, never a bare KeyError or
AttributeError half-way through.

Why not Powertools' parser or data classes: the parser (``aws_lambda_powertools.utilities.parser``) needs pydantic,
a compiled package the deps layer does not carry (it would add several MB to every function, built per
architecture, for a few small records). The data classes need no pydantic but cover only the S3 event Start and
Live get (``S3EventBridgeNotificationEvent``) and the envelope of the run-ended event (``EventBridgeEvent``); the
workflow's own events (Plan, Redact, Stitch, Faces, Record failure) have none. They are lazy views: a missing field
is a KeyError when it is read and a field's type is never checked, so the checks here (present, non-empty, its
type, a sequencer's hex digits, a size that is not negative, a work prefix of the run's shape) would remain, and
the handlers would parse two ways instead of one."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from redactor.records import Segment

from redactor import naming


class EventError(ValueError):
    """The event lacks a field the workflow always passes, or the field has the wrong shape."""


WORKFLOW = "stacks/workflow.py passes it"
S3_EVENT = "S3's Object Created event carries it"


def field(event: Any, name: str, function: str, source: str = WORKFLOW) -> Any:
    """event[name], or EventError naming the function and the field. ``name`` may be a dotted path
    (``detail.object.key``): every object on the way must be there."""
    value = event
    for depth, part in enumerate(name.split(".")):
        if not isinstance(value, dict):
            where = "the event" if depth == 0 else f"the event's {'.'.join(name.split('.')[:depth])!r}"
            raise EventError(f"{function}: {where} is a {type(value).__name__}, not an object")
        value = value.get(part)
        if value is None or value == "":
            raise EventError(f"{function}: the event has no {name!r} ({source})")
    return value


def optional(obj: dict, name: str, function: str, kind: type = str, path: str | None = None) -> Any:
    """obj[name] if present (None if absent or null), else EventError if it is not a ``kind`` (``path``: the
    field's dotted name in the event, when ``obj`` is nested)."""
    value = obj.get(name)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        kinds = {str: "a string", int: "a whole number", dict: "an object"}
        raise EventError(f"{function}: the event's {(path or name)!r} is a {type(value).__name__}, "
                         f"not {kinds.get(kind, kind.__name__)}")
    return value


def text(event: Any, name: str, function: str, source: str = WORKFLOW) -> str:
    """A required string field."""
    value = field(event, name, function, source)
    if not isinstance(value, str):
        raise EventError(f"{function}: the event's {name!r} is a {type(value).__name__}, not a string")
    return value


def s3_sequencer(obj: dict, name: str, function: str, path: str | None = None) -> str | None:
    """An S3 event sequencer (hex digits) if present, else None; EventError if it is not one."""
    value = optional(obj, name, function, path=path)
    if not value:
        return None
    try:
        naming.sequencer_value(value)
    except ValueError as e:
        raise EventError(f"{function}: the event's {(path or name)!r}: {e}") from None
    return value



def work_prefix(event: Any, function: str) -> str:
    try:
        return naming.check_work_prefix(field(event, "work_prefix", function))
    except EventError:
        raise
    except ValueError as e:
        raise EventError(f"{function}: {e}") from None


@dataclass(frozen=True)
class Upload:
    """The run's upload and work area, as every task of the workflow gets them (``_run_keys``)."""
    bucket: str
    key: str
    version: str | None
    work_prefix: str
    sequencer: str | None = None  # the upload's S3 event sequencer (orders uploads of the key)

    @classmethod
    def from_event(cls, event: Any, function: str) -> "Upload":
        return cls(bucket=field(event, "bucket", function), key=field(event, "key", function),
                   version=event.get("version"), work_prefix=work_prefix(event, function),
                   sequencer=s3_sequencer(event, "sequencer", function))


@dataclass(frozen=True)
class ObjectCreated:
    """Start's event: S3's "Object Created" as EventBridge delivers it (``detail.bucket.name``,
    ``detail.object.key`` and optionally its ``version-id``, ``etag``, ``size`` and ``sequencer``)."""
    bucket: str
    key: str
    version: str | None
    etag: str | None
    size: int | None
    sequencer: str | None = None

    @classmethod
    def from_event(cls, event: Any, function: str = "start") -> "ObjectCreated":
        bucket = text(event, "detail.bucket.name", function, S3_EVENT)
        key = text(event, "detail.object.key", function, S3_EVENT)
        obj = event["detail"]["object"]
        version, etag = (optional(obj, name, function, path=f"detail.object.{name}")
                         for name in ("version-id", "etag"))
        size = optional(obj, "size", function, int, path="detail.object.size")
        if size is not None and size < 0:
            raise EventError(f"{function}: the event's 'detail.object.size' is negative ({size})")
        return cls(bucket=bucket, key=key, version=version or None, etag=etag or None, size=size,
                   sequencer=s3_sequencer(obj, "sequencer", function, "detail.object.sequencer"))


@dataclass(frozen=True)
class Failure:
    """Record failure's event, either way the workflow calls it (stacks/workflow.py): for one segment
    (``segment`` is its index: a Map child's Catch) or for the run (Plan, the Map or Stitch failed; ``segment``
    absent). ``error`` is the Catch's ``{"Error", "Cause"}``."""
    key: str | None
    work_prefix: str | None
    segment: int | None
    error: dict
    bucket: str | None = None
    version: str | None = None
    execution: str | None = None
    sequencer: str | None = None

    @classmethod
    def from_event(cls, event: Any, function: str = "record_failure") -> "Failure":
        if not isinstance(event, dict):
            raise EventError(f"{function}: the event is a {type(event).__name__}, not an object")
        segment = event.get("segment")
        action = f"{function} {'run' if segment is None else 'segment'}"
        if segment is not None:  # the child's own error: runs/<execution>/errors/NNNNN.json
            segment = optional(event, "segment", action, int)
            if segment < 0:
                raise EventError(f"{action}: the event's 'segment' is negative ({segment})")
            prefix = work_prefix(event, action)
            key = optional(event, "key", action)
        else:  # the run's failure: failed/<key>.json; the work area only when Plan got as far as naming it
            key = text(event, "key", action)
            prefix = work_prefix(event, action) if event.get("work_prefix") else None
        error = optional(event, "error", action, dict) or {}
        return cls(key=key, work_prefix=prefix, segment=segment, error=error,
                   bucket=optional(event, "bucket", action), version=optional(event, "version", action),
                   execution=optional(event, "execution", action),
                   sequencer=s3_sequencer(event, "sequencer", action))


def segment(event: Any, function: str) -> Segment:
    """The Map item's segment (redactor.records.Segment)."""
    raw = field(event, "segment", function)
    try:
        return Segment.from_dict(raw)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise EventError(f"{function}: the event's segment is malformed ({type(e).__name__}: {e})") from None


STATUS_CHANGE = "Step Functions Execution Status Change"
ENDED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def _json_text(detail: dict, name: str, function: str) -> dict | None:
    raw = detail.get(name)
    if raw is None:
        return None
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise EventError(f"{function}: the event's 'detail.{name}' is not JSON") from None
    if not isinstance(value, dict):
        raise EventError(f"{function}: the event's 'detail.{name}' is not a JSON object")
    return value


@dataclass(frozen=True)
class RunEnded:
    """EventBridge's "Step Functions Execution Status Change" for a run that ended (``ENDED``): its execution,
    status, error and cause, and the run's input (what ``naming.execution_input`` built) and output."""
    execution: str
    status: str
    run: Upload
    output: dict | None
    error: str | None
    cause: str | None

    @classmethod
    def from_event(cls, event: Any, function: str = "record_failure run-ended") -> "RunEnded":
        source = "EventBridge's Step Functions Execution Status Change event carries it"
        status = text(event, "detail.status", function, source)
        if status not in ENDED:
            raise EventError(f"{function}: the event's 'detail.status' {status!r} is not one of {', '.join(ENDED)}")
        detail = event["detail"]
        run_input = _json_text(detail, "input", function)
        if run_input is None:
            raise EventError(f"{function}: the event has no 'detail.input' ({source})")
        return cls(execution=text(event, "detail.name", function, source), status=status,
                   run=Upload.from_event(run_input, f"{function} (detail.input)"),
                   output=_json_text(detail, "output", function),
                   error=optional(detail, "error", function, path="detail.error"),
                   cause=optional(detail, "cause", function, path="detail.cause"))
