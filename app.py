#!/usr/bin/env python3
"""CDK app: one RedactorStack. Settings come from CDK context (defaults in cdk.json, override with -c)."""
import os

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from stacks.redactor_stack import RedactorStack

app = cdk.App()
RedactorStack(
    app, app.node.try_get_context("stack_name") or "Redactor",
    description="redactor: remove faces from uploaded car videos (S3 -> Step Functions -> Lambda)",
    env=cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")),
)
# cdk-nag v3 runs as a policy-validation plugin: an unacknowledged AwsSolutions finding fails the synth.
if str(app.node.try_get_context("nag")).lower() != "false":
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
app.synth()
