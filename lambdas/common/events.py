"""The events the workflow (stacks/workflow.py) passes the handlers, parsed at the top of each handler: a missing
or malformed field is an EventError naming the function and the field, never a bare KeyError half-way through."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redactor.records import Segment

from common import naming


class EventError(ValueError):
    """The event lacks a field the workflow always passes, or the field has the wrong shape."""


def field(event: Any, name: str, function: str) -> Any:
    """event[name], or EventError naming the function and the field."""
    if not isinstance(event, dict):
        raise EventError(f"{function}: the event is a {type(event).__name__}, not an object")
    value = event.get(name)
    if value is None or value == "":
        raise EventError(f"{function}: the event has no {name!r} (stacks/workflow.py passes it)")
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

    @classmethod
    def from_event(cls, event: Any, function: str) -> "Upload":
        return cls(bucket=field(event, "bucket", function), key=field(event, "key", function),
                   version=event.get("version"), work_prefix=work_prefix(event, function))


def segment(event: Any, function: str) -> Segment:
    """The Map item's segment (redactor.records.Segment)."""
    raw = field(event, "segment", function)
    try:
        return Segment.from_dict(raw)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise EventError(f"{function}: the event's segment is malformed ({type(e).__name__}: {e})") from None
