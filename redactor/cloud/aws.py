"""boto3 the usual way (credentials, region and profile from the environment, ~/.aws or flags) and AWS errors
turned into the client's named one-line errors."""
from __future__ import annotations

import contextlib
import os

from .errors import AccessDenied, AwsError, NoCredentials, NoRegion, SetupError

BAD_CREDENTIALS = frozenset({"UnrecognizedClientException", "InvalidClientTokenId", "InvalidAccessKeyId",
                             "SignatureDoesNotMatch", "ExpiredToken", "ExpiredTokenException",
                             "InvalidSignatureException", "AuthFailure"})
DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403"})  # 403: a HEAD's


class Aws:
    """The clients one command uses, from one boto3 session."""

    def __init__(self, region: str | None = None, profile: str | None = None):
        try:
            import boto3
        except ImportError:
            raise SetupError("boto3 is not installed: pip install 'redactor[cloud]' (or '.[cloud]' in a checkout)") from None
        with translated():
            # AWS_REGION as the other SDKs and the CLI read it (botocore itself reads AWS_DEFAULT_REGION)
            self.session = boto3.session.Session(region_name=region or os.environ.get("AWS_REGION") or None,
                                                 profile_name=profile)
        if not self.session.region_name:
            raise NoRegion("no AWS region: set AWS_REGION or AWS_DEFAULT_REGION, run 'aws configure', or pass "
                           "--region")
        self.region = self.session.region_name
        self._clients: dict[str, object] = {}

    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = self.session.client(service)
        return self._clients[service]

    @property
    def s3(self):
        return self.client("s3")

    @property
    def sfn(self):
        return self.client("stepfunctions")

    @property
    def cfn(self):
        return self.client("cloudformation")


def error_code(e: BaseException) -> str:
    return (getattr(e, "response", None) or {}).get("Error", {}).get("Code", "")


def translate(e: Exception) -> Exception:
    """A botocore exception as the client's named error (anything else unchanged)."""
    from botocore import exceptions as bx

    if isinstance(e, (bx.NoCredentialsError, bx.PartialCredentialsError, bx.ProfileNotFound,
                      bx.CredentialRetrievalError)):
        return NoCredentials(f"no usable AWS credentials ({e}): run 'aws configure' or 'aws sso login', or set "
                             "AWS_PROFILE")
    if isinstance(e, bx.NoRegionError):
        return NoRegion("no AWS region: set AWS_REGION or AWS_DEFAULT_REGION, or pass --region")
    if isinstance(e, (bx.EndpointConnectionError, bx.ConnectTimeoutError)):
        return SetupError(f"cannot reach AWS ({e}): check the region and the network")
    if isinstance(e, bx.ClientError):
        code = error_code(e)
        message = (e.response.get("Error", {}).get("Message") or str(e)).replace("\n", " ")
        if code in BAD_CREDENTIALS:
            return NoCredentials(f"AWS refused the credentials ({code}: {message})")
        if code in DENIED:
            return AccessDenied(f"{e.operation_name} was denied ({message}): the credentials need the "
                                "policy 'redactor cloud policy' prints")
        return AwsError(f"{e.operation_name}: {code}: {message}")
    if isinstance(e, bx.BotoCoreError):
        return AwsError(f"{type(e).__name__}: {e}")
    return e


@contextlib.contextmanager
def translated():
    """Run AWS calls; a botocore error leaves as the client's named error."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 - only botocore's are translated, the rest re-raised as is
        new = translate(e)
        if new is e:
            raise
        raise new from None
