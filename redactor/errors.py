"""Named errors. Every error carries the file it is about and says what is wrong in one line.

Exit codes (CLI): 2 = bad input or usage, 3 = setup (model missing/corrupt), 4 = internal/detection failure.
"""
from __future__ import annotations

# AWS error codes that mean "throttled, try again later" (Rekognition image and video APIs)
THROTTLE_CODES = frozenset({"ThrottlingException", "ProvisionedThroughputExceededException"})


class RedactorError(Exception):
    """Base class. ``path`` names the file the error is about (may be None)."""

    exit_code = 4
    kind = "InternalError"

    def __init__(self, message: str, path: str | None = None):
        self.path = str(path) if path is not None else None
        self.message = message
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{where}{self.message}"

    def to_dict(self) -> dict:
        return {"errorType": self.kind, "path": self.path, "message": self.message}


class InputError(RedactorError):
    """The input is not a video we can redact (empty, not a video, truncated, audio only...)."""

    exit_code = 2
    kind = "InputError"


class ConfigError(RedactorError):
    """A setting is out of range or unknown."""

    exit_code = 2
    kind = "ConfigError"


class ModelError(RedactorError):
    """The face model is missing or corrupt: run the setup command."""

    exit_code = 3
    kind = "ModelError"


class DetectionError(RedactorError):
    """Detection failed for a frame: the segment fails closed (no frame of it is written)."""

    exit_code = 4
    kind = "DetectionError"


class WorkerError(RedactorError):
    """A worker process died or reported an error."""

    exit_code = 4
    kind = "WorkerError"


class StitchError(RedactorError):
    """Parts are missing, incomplete or inconsistent with the plan."""

    exit_code = 4
    kind = "StitchError"
