"""Which deployed redactor stack to use, and what it accepts, from its CloudFormation outputs.

The stack is the one named by ``--stack``, else by ``REDACTOR_STACK``, else the only stack in the account and
region with the redactor's outputs. What the pipeline accepts (suffixes, key length) comes from those outputs,
i.e. from what was deployed, never from a local cdk.json.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import PurePosixPath

from .. import naming
from ..errors import InputError
from .aws import error_code
from .errors import SeveralStacks, SetupError, StackNotFound

STACK_ENV = "REDACTOR_STACK"
#: The outputs that mark a stack as a redactor stack, and the ones the client needs (stacks/redactor_stack.py)
MARKERS = ("RawBucketName", "OutputBucketName", "StateMachineArn")
NEEDED = (*MARKERS, "AcceptedSuffixes", "MaxKeyBytes")
LIVE = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE",
        "UPDATE_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS",
        "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "IMPORT_ROLLBACK_COMPLETE")


@dataclass(frozen=True)
class Deployment:
    stack: str
    region: str
    raw_bucket: str
    output_bucket: str
    state_machine_arn: str
    suffixes: tuple[str, ...]
    max_key_bytes: int

    @classmethod
    def from_outputs(cls, stack: str, region: str, outputs: dict[str, str]) -> "Deployment":
        missing = [k for k in NEEDED if not outputs.get(k)]
        if missing:
            raise SetupError(f"stack {stack} in {region} lacks the output(s) {', '.join(missing)}: it was deployed "
                             "from an older redactor; run 'cdk deploy' again")
        try:
            max_key = int(outputs["MaxKeyBytes"])
        except ValueError:
            raise SetupError(f"stack {stack}: output MaxKeyBytes={outputs['MaxKeyBytes']!r} is not a number") from None
        suffixes = tuple(s.strip().lower() for s in outputs["AcceptedSuffixes"].split(",") if s.strip())
        return cls(stack=stack, region=region, raw_bucket=outputs["RawBucketName"],
                   output_bucket=outputs["OutputBucketName"], state_machine_arn=outputs["StateMachineArn"],
                   suffixes=suffixes, max_key_bytes=max_key)

    def execution_arn(self, name: str) -> str:
        return self.state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + name

    def console_url(self, execution_arn: str) -> str:
        return (f"https://{self.region}.console.aws.amazon.com/states/home?region={self.region}"
                f"#/v2/executions/details/{execution_arn}")

    def check_key(self, key: str, path: str | None = None) -> None:
        """InputError for a key the deployed pipeline would not redact: a suffix its upload rule does not start
        a run for, or a key too long for the keys derived from it (redactor.naming)."""
        suffix = PurePosixPath(key).suffix.lower()
        if suffix not in self.suffixes:
            raise InputError(f"{suffix or 'no suffix'} is not a video type stack {self.stack} redacts "
                             f"(it takes {', '.join(self.suffixes)})", path or key)
        size = len(key.encode("utf-8"))
        if size > self.max_key_bytes or naming.key_too_long(key):
            raise InputError(f"the key is {size} bytes; stack {self.stack} takes keys of at most "
                             f"{self.max_key_bytes} bytes (its outputs' keys must fit S3's {naming.MAX_KEY_BYTES})",
                             path or key)


def _outputs(stack: dict) -> dict[str, str]:
    return {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs") or []}


def discover(cfn, region: str, name: str | None = None) -> Deployment:
    """The deployment named (flag, then environment), else the only redactor stack in the region."""
    name = name or os.environ.get(STACK_ENV) or None
    if name:
        try:
            (stack,) = cfn.describe_stacks(StackName=name)["Stacks"]
        except Exception as e:  # noqa: BLE001 - CloudFormation's "does not exist" is a ValidationError
            if error_code(e) == "ValidationError":
                raise StackNotFound(f"no stack {name} in {region}: check --stack/{STACK_ENV} and the region") from None
            raise
        outputs = _outputs(stack)
        if not all(outputs.get(k) for k in MARKERS):
            raise StackNotFound(f"stack {name} in {region} is not a redactor stack (no {', '.join(MARKERS)} outputs)")
        return Deployment.from_outputs(stack["StackName"], region, outputs)
    found = []
    for page in cfn.get_paginator("describe_stacks").paginate():
        for stack in page["Stacks"]:
            outputs = _outputs(stack)
            if stack.get("StackStatus") in LIVE and all(outputs.get(k) for k in MARKERS):
                found.append((stack["StackName"], outputs))
    if not found:
        raise StackNotFound(f"no redactor stack in {region}: deploy it ('cdk deploy'), or pass --stack or set "
                            f"{STACK_ENV} (and the region, if it is elsewhere)")
    if len(found) > 1:
        names = ", ".join(sorted(n for n, _ in found))
        raise SeveralStacks(f"{len(found)} redactor stacks in {region} ({names}): choose one with --stack or "
                            f"{STACK_ENV}")
    return Deployment.from_outputs(found[0][0], region, found[0][1])
