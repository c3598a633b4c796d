"""The cloud client's named errors, on the local CLI's exit-code scheme (redactor/errors.py): 2 bad input,
3 setup (credentials, region, the deployed stack), 4 the run failed or produced nothing to fetch."""
from __future__ import annotations

from ..errors import InputError, RedactorError


class SetupError(RedactorError):
    """AWS cannot be used as configured: fix the credentials, region or stack, then run the command again."""

    exit_code = 3
    kind = "SetupError"


class NoCredentials(SetupError):
    kind = "NoCredentials"


class NoRegion(SetupError):
    kind = "NoRegion"


class AccessDenied(SetupError):
    kind = "AccessDenied"


class StackNotFound(SetupError):
    kind = "StackNotFound"


class SeveralStacks(SetupError):
    kind = "SeveralStacks"


class NotUploaded(InputError):
    """The key (or that version of it) is not in the raw bucket."""

    kind = "NotUploaded"


class RetryRefused(InputError):
    """The upload cannot be run again: it did not fail, or its retained version is gone."""

    kind = "RetryRefused"


class RunFailed(RedactorError):
    """The run ended in failure; the message holds its error and cause (failed/<key>.json)."""

    exit_code = 4
    kind = "RunFailed"


class NotFinished(RedactorError):
    """The run has not produced its output yet (queued or running)."""

    exit_code = 4
    kind = "NotFinished"


class ReportMismatch(RedactorError):
    """The output bucket holds no output of the requested upload version (or its files disagree)."""

    exit_code = 4
    kind = "ReportMismatch"


class AwsError(RedactorError):
    """An AWS call failed for a reason none of the others name."""

    exit_code = 4
    kind = "AwsError"


class Interrupted(RedactorError):
    """Ctrl-C: what was under way was cleaned up (a multipart upload aborted)."""

    exit_code = 130
    kind = "Interrupted"
