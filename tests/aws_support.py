"""Helpers for the AWS-side tests: synthesize the stack once, load handlers, run the workflow under moto."""
from __future__ import annotations

import functools
import importlib.util
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

ROOT = Path(__file__).resolve().parent.parent
LAMBDAS = ROOT / "lambdas"
for p in (str(ROOT), str(LAMBDAS)):
    if p not in sys.path:
        sys.path.insert(0, p)

# moto + Powertools outside Lambda (only defaults: a developer's own settings win)
for _k, _v in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SECURITY_TOKEN": "testing",
               "AWS_SESSION_TOKEN": "testing", "POWERTOOLS_TRACE_DISABLED": "true",
               "POWERTOOLS_METRICS_NAMESPACE": "RedactorTest"}.items():
    os.environ.setdefault(_k, _v)


def cdk_context(**overrides) -> dict:
    ctx = json.loads((ROOT / "cdk.json").read_text())["context"]
    ctx.update(overrides)
    return ctx


def synth(outdir: str, nag: bool = True, **overrides):
    """Synthesize the stack like `cdk synth` does (cdk.json context + overrides). Returns (assembly, stack)."""
    import aws_cdk as cdk
    from cdk_nag import AwsSolutionsChecks

    from stacks.redactor_stack import RedactorStack

    ctx = cdk_context(**{"placeholder_layers": True, "aws:cdk:enable-asset-metadata": True,
                         "aws:cdk:enable-path-metadata": True, **overrides})
    app = cdk.App(context=ctx, outdir=outdir)
    stack = RedactorStack(app, "Redactor", env=cdk.Environment(account="123456789012", region="us-east-1"))
    if nag:
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app.synth(), stack


def resources(template: dict, rtype: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == rtype}


def our_functions(template: dict) -> dict[str, dict]:
    """Logical id -> resource for the five redactor functions (not CDK's own helper functions)."""
    return {k: v for k, v in resources(template, "AWS::Lambda::Function").items()
            if v["Properties"].get("Handler") == "handler.handler"}


def function_by_service(template: dict, name: str) -> tuple[str, dict]:
    service = f"redactor-{name.replace('_', '-')}"
    for lid, fn in our_functions(template).items():
        if fn["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == service:
            return lid, fn
    raise KeyError(name)


def logical_id_of(template: dict, rtype: str, path_fragment: str) -> str:
    """Find a resource's logical id by its construct path (aws:cdk:path metadata), not by its hash."""
    for lid, r in template["Resources"].items():
        if r["Type"] == rtype and path_fragment in r.get("Metadata", {}).get("aws:cdk:path", ""):
            return lid
    raise KeyError(path_fragment)


def load_handler(name: str):
    """Import lambdas/<name>/handler.py under a unique module name (each function has its own handler.py), as a
    fresh container does: with no AWS client made yet (``common.clients``)."""
    from common import clients

    clients.client.cache_clear()
    module_name = f"redactor_lambda_{name}"
    sys.modules.pop(module_name, None)
    spec = importlib.util.spec_from_file_location(module_name, LAMBDAS / name / "handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[module_name] = module
    return module


class FakeContext:
    def __init__(self, name: str):
        self.function_name = name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        self.aws_request_id = "00000000-0000-0000-0000-000000000000"
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "test"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def dashboard_body(template) -> dict:
    """The dashboard body with every CloudFormation token replaced by "<logical id>"."""
    (dash,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    body = dash["Properties"]["DashboardBody"]
    if isinstance(body, dict):
        sep, parts = body["Fn::Join"]
        body = sep.join(p if isinstance(p, str) else f"<{p.get('Ref') or p['Fn::GetAtt'][0]}>" for p in parts)
    return json.loads(body)


def render_definition(template: dict, substitutions: dict[str, str]) -> str:
    """The state machine's DefinitionString with every CloudFormation token replaced.

    substitutions maps a logical id (Ref / Fn::GetAtt Arn) to its concrete value; AWS::Partition -> aws.
    """
    (sm,) = resources(template, "AWS::StepFunctions::StateMachine").values()
    body = sm["Properties"]["DefinitionString"]
    if isinstance(body, str):
        return body
    sep, parts = body["Fn::Join"]
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif "Ref" in part:
            ref = part["Ref"]
            out.append({"AWS::Partition": "aws", "AWS::Region": "us-east-1",
                        "AWS::AccountId": "123456789012"}.get(ref) or substitutions[ref])
        elif "Fn::GetAtt" in part:
            out.append(substitutions[part["Fn::GetAtt"][0]])
        else:
            raise AssertionError(f"unexpected token in definition: {part}")
    return sep.join(out)


@functools.lru_cache(maxsize=1)
def synthesized_once():
    """One synth per test session (placeholder layers, cdk-nag on): (template, assembly dir). Under pytest the
    temporary directory is pytest's own (``conftest.temporary_files_under_pytest``)."""
    import tempfile

    outdir = tempfile.mkdtemp(prefix="redactor-cdk-out-")
    assembly, _stack = synth(outdir)
    return assembly.get_stack_by_name("Redactor").template, Path(assembly.directory)


def ctrl_c_reaches():
    """``preexec_fn`` of a child process a test sends SIGINT, as Ctrl-C on a terminal would: SIGINT back at its
    default. A suite started in the background of a shell without job control inherits SIGINT ignored, and so
    would every child: Python would install no KeyboardInterrupt handler there and the signal would do nothing."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
