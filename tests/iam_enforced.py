"""The synthesized stack's IAM roles, created in moto's IAM and enforced (moto's "IAM-like access control").

Each role of the template (its trust policy and every AWS::IAM::Policy attached to it, with CloudFormation's
intrinsic functions resolved to the test's buckets, functions and state machine) becomes a role in moto's IAM;
``credentials(role)`` assumes it through STS. While ``enforced()`` is active, moto authorizes every request
(``/moto-api/reset-auth`` with 0 unauthenticated actions: the server's ``INITIAL_NO_AUTH_ACTION_COUNT``) and
every authorization moto makes is recorded as a :class:`Call` (who, action, resource, the listing's prefix,
allowed or not), so a test can show which calls each role made and that each statement is needed.

What moto does not enforce, and how it is handled here:

* non-S3 actions are authorized against ``Resource: *`` only: in moto's copy of a policy, a statement whose
  actions are all outside S3 gets ``Resource: *`` (its action is still enforced; its resource scope is proved
  by a static check of the template, ``tests/test_iam.py``);
* conditions other than StringEquals are ignored (the ``s3:prefix`` narrowing of ListBucket): each recorded
  listing's prefix is checked against the statement offline (``permits``);
* bucket policies and AWS managed policies (AWSLambdaBasicExecutionRole only lets a function write its logs,
  which no code here calls) are not evaluated;
* a call moto never sees (a test's fake endpoint answers it, e.g. KVS archived media) is judged offline,
  against the role's resolved statements with its real resource, by ``EnforcedIAM.authorize``.
"""
from __future__ import annotations

import contextlib
import copy
import fnmatch
import json
import threading
from dataclasses import dataclass
from urllib.parse import parse_qs

ACCOUNT = "123456789012"
REGION = "us-east-1"
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::URLSuffix": "amazonaws.com"}


def resolve(value, subs: dict[str, str]):
    """``value`` with Ref / Fn::GetAtt (Arn) / Fn::Join / Fn::Select / Fn::Split resolved; ``subs`` maps a
    logical id to its Ref value, and ``<logical id>.Arn`` to its ARN."""
    if isinstance(value, list):
        return [resolve(v, subs) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Ref":
            return PSEUDO.get(arg) or subs[arg]
        if fn == "Fn::GetAtt":
            return subs[f"{arg[0]}.{arg[1]}"]
        if fn == "Fn::Join":
            return arg[0].join(resolve(p, subs) for p in arg[1])
        if fn == "Fn::Select":
            return resolve(arg[1], subs)[int(arg[0])]
        if fn == "Fn::Split":
            return resolve(arg[1], subs).split(arg[0])
    return {k: resolve(v, subs) for k, v in value.items()}


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def role_of(resource: dict) -> str:
    """The logical id of a function's or state machine's role (its Role / RoleArn is Fn::GetAtt [role, Arn])."""
    props = resource["Properties"]
    return (props.get("Role") or props["RoleArn"])["Fn::GetAtt"][0]


def policies_of(template: dict, role_lid: str) -> dict[str, dict]:
    """Every AWS::IAM::Policy attached to the role: policy logical id -> its document (unresolved)."""
    return {lid: r["Properties"]["PolicyDocument"] for lid, r in template["Resources"].items()
            if r["Type"] == "AWS::IAM::Policy" and {"Ref": role_lid} in r["Properties"].get("Roles", [])}


def is_s3(statement: dict) -> bool:
    return all(a.startswith("s3:") for a in as_list(statement.get("Action", [])))


def for_moto(document: dict) -> dict:
    """The document as moto's IAM gets it: non-S3 statements on ``Resource: *`` (see the module doc)."""
    doc = copy.deepcopy(document)
    for st in as_list(doc["Statement"]):
        if not is_s3(st):
            st["Resource"] = "*"
    return doc


def iam_action(action: str, query: dict) -> str:
    """The IAM action AWS authorizes for a request that moto names ``action`` (moto names a HEAD of an object
    s3:HeadObject; AWS authorizes it as s3:GetObject, or s3:GetObjectVersion with a versionId, as it does a
    GET, which moto names s3:GetObject whatever its query; moto names Lambda's Invoke and S3's ListObjectsV2
    by their operations: IAM's actions are lambda:InvokeFunction and s3:ListBucket)."""
    if action == "lambda:Invoke":
        return "lambda:InvokeFunction"
    if action in ("s3:ListObjects", "s3:ListObjectsV2"):
        return "s3:ListBucket"
    if action in ("s3:HeadObject", "s3:GetObject"):
        return "s3:GetObjectVersion" if "versionId" in query else "s3:GetObject"
    return action


def deleted_keys(body: bytes) -> list[str]:
    """The keys of a DeleteObjects request body."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(body)
    return [el.text or "" for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Key"]


@dataclass(frozen=True)
class Call:
    role: str  # the role's name in moto (its logical id), or the access key of a non-role caller
    action: str  # e.g. s3:GetObject
    resource: str  # e.g. arn:aws:s3:::redactor-work/runs/x/source.json
    prefix: str | None  # ListBucket: the listing's prefix
    allowed: bool


def permits(statements: list[dict], call: Call) -> bool:
    """Whether an identity policy made of ``statements`` allows ``call`` (moto's own evaluator, plus the
    ``s3:prefix`` StringLike condition of ListBucket, which moto ignores). A non-S3 call moto recorded (on
    ``Resource: *``) is judged as moto judged it: against the statements as moto holds them (``for_moto``)."""
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult

    if call.resource == "*" and not call.action.startswith("s3:"):  # moto's authorization of a non-S3 call
        statements = as_list(for_moto({"Statement": statements})["Statement"])
    allowed = False
    for st in statements:
        result = IAMPolicyStatement(st).is_action_permitted(call.action, call.resource)
        if result == PermissionResult.DENIED:
            return False
        if result == PermissionResult.PERMITTED and _prefix_matches(st, call):
            allowed = True
    return allowed


def _prefix_matches(statement: dict, call: Call) -> bool:
    patterns = statement.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
    if patterns is None:
        return True
    return call.prefix is not None and any(fnmatch.fnmatchcase(call.prefix, p) for p in as_list(patterns))


class EnforcedIAM:
    """The template's roles in moto's IAM (resolved with ``subs``), assumable, and a recorder of moto's
    authorization decisions while ``enforced()``."""

    def __init__(self, server, template: dict, subs: dict[str, str]):
        self.server = server
        self.template = template
        self.iam = server.client("iam")
        self.sts = server.client("sts")
        self.documents: dict[str, dict[str, dict]] = {}  # role -> policy logical id -> resolved document
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._keys: dict[str, str] = {}  # access key id -> role
        roles = {lid for lid, r in template["Resources"].items() if r["Type"] == "AWS::IAM::Role"}
        for role in sorted(roles):
            props = template["Resources"][role]["Properties"]
            self.iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(
                resolve(props["AssumeRolePolicyDocument"], subs)))
            self.documents[role] = {}
            for policy, doc in policies_of(template, role).items():
                resolved = resolve(doc, subs)
                self.documents[role][policy] = resolved
                self.iam.put_role_policy(RoleName=role, PolicyName=policy,
                                         PolicyDocument=json.dumps(for_moto(resolved)))
        user = self.iam.create_user(UserName="test-driver")["User"]["UserName"]
        self.iam.put_user_policy(UserName=user, PolicyName="everything", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = self.iam.create_access_key(UserName=user)["AccessKey"]
        #: the test's own principal (set-up, checks): allowed everything, and not one of the stack's roles
        self.driver = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}

    def credentials(self, role: str) -> dict[str, str]:
        """The role assumed through STS, as a process's environment variables."""
        c = self.sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{role}", RoleSessionName=f"test-{role}"[:64],
                                 DurationSeconds=43200)["Credentials"]
        self._keys[c["AccessKeyId"]] = role
        return {"AWS_ACCESS_KEY_ID": c["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": c["SecretAccessKey"],
                "AWS_SESSION_TOKEN": c["SessionToken"], "AWS_SECURITY_TOKEN": c["SessionToken"]}

    def authorize(self, request, action: str, resource: str) -> bool:
        """A call moto never sees (a test's fake endpoint answers it: ``request`` is the botocore request about
        to be sent) judged offline against the role that signed it, as the template resolved it (resource
        scoping included), and recorded like moto's decisions."""
        auth = request.headers.get("Authorization") or b""
        key = (auth.decode() if isinstance(auth, bytes) else auth).partition("Credential=")[2].partition("/")[0]
        role = self._keys.get(key, key)
        allowed = role in self.documents and permits(self.statements(role), Call(role, action, resource, None, True))
        with self._lock:
            self.calls.append(Call(role, action, resource, None, allowed))
        return allowed

    def statements(self, role: str) -> list[dict]:
        return [st for doc in self.documents[role].values() for st in as_list(doc["Statement"])]

    def calls_by(self, role: str, s3_only: bool = True) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.role == role and (not s3_only or c.action.startswith("s3:"))]

    def denied(self) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if not c.allowed]

    @contextlib.contextmanager
    def enforced(self):
        """moto authorizes every request from here on (recorded in ``calls``); off again on exit."""
        from unittest import mock

        from moto.iam.access_control import IAMRequestBase

        recorder = self
        original = IAMRequestBase.check_action_permitted

        def record(call: Call) -> None:
            with recorder._lock:
                recorder.calls.append(call)

        def check_one(request, resource, action, prefix):
            key = getattr(request._access_key, "_access_key_id", "?")
            call = Call(recorder._keys.get(key, key), action, resource, prefix, False)
            request._action = action
            try:
                original(request, resource)
            except Exception:
                record(call)
                raise
            record(Call(**{**call.__dict__, "allowed": True}))

        def check(request, resource):
            query = parse_qs(request._path.partition("?")[2], keep_blank_values=True)
            if request._action == "s3:DeleteObjects":  # AWS authorizes s3:DeleteObject on each key
                for key in deleted_keys(request._body):
                    check_one(request, f"{resource}/{key}", "s3:DeleteObject", None)
                return
            check_one(request, resource, iam_action(request._action, query), (query.get("prefix") or [None])[0])

        with mock.patch.object(IAMRequestBase, "check_action_permitted", check):
            self.server.set_auth(0)
            try:
                yield self
            finally:
                self.server.set_auth(float("inf"))


@contextlib.contextmanager
def interpreter_as(credentials: dict[str, str], endpoint: str):
    """moto's Step Functions interpreter calls S3 (the Map's ItemReader) and Lambda with a fixed access key
    that is no IAM principal: make it use ``credentials`` (the state machine role's) instead."""
    import sys
    from unittest import mock

    import boto3
    from botocore.config import Config

    import importlib

    base = "moto.stepfunctions.parser.asl.component.state.exec"
    for name in ("state_task.lambda_eval_utils", "state_map.item_reader.eval.resource_eval_s3",
                 "state_map.result_writer.resource_eval.resource_eval_s3",
                 "state_task.service.state_task_service_unsupported"):
        importlib.import_module(f"{base}.{name}")

    def boto_client_for(region, service, state_credentials=None):
        return boto3.client(service, region_name=region, endpoint_url=endpoint,
                            aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
                            aws_session_token=credentials["AWS_SESSION_TOKEN"],
                            config=Config(parameter_validation=False, retries={"total_max_attempts": 1},
                                          connect_timeout=60, read_timeout=900))

    users = [m for name, m in list(sys.modules.items())
             if name.startswith("moto.stepfunctions.parser") and hasattr(m, "boto_client_for")]
    with contextlib.ExitStack() as stack:
        for module in users:
            stack.enter_context(mock.patch.object(module, "boto_client_for", boto_client_for))
        yield


@dataclass(frozen=True)
class Grant:
    """One action on one resource of one statement of one role's policies."""
    role: str
    statement: int  # index in the role's statements (``EnforcedIAM.statements``)
    action: str
    resource: str

    def __str__(self) -> str:
        return f"{self.role}: {self.action} on {self.resource}"


def grants(role: str, statements: list[dict], s3_only: bool = True) -> list[Grant]:
    """Every (action, resource) pair each S3 statement (``s3_only`` False: each statement) allows: CDK merges
    statements that share their actions or their resources, so a statement is judged pair by pair."""
    return [Grant(role, i, a, r)
            for i, st in enumerate(statements) if st.get("Effect") == "Allow" and (is_s3(st) or not s3_only)
            for a in as_list(st["Action"]) for r in as_list(st["Resource"])]


def without(statements: list[dict], grant: Grant) -> list[dict]:
    """The statements with ``grant`` taken out: its statement split into the pairs it allows, that pair dropped."""
    out = []
    for i, st in enumerate(statements):
        if i != grant.statement:
            out.append(st)
            continue
        for a in as_list(st["Action"]):
            for r in as_list(st["Resource"]):
                if (a, r) != (grant.action, grant.resource):
                    out.append({**st, "Action": a, "Resource": r})
    return out


def unneeded(role: str, statements: list[dict], calls: list[Call], s3_only: bool = True) -> list[Grant]:
    """The role's S3 grants (``s3_only`` False: all its grants) whose removal denies none of ``calls`` (the
    role's recorded, allowed calls)."""
    return [g for g in grants(role, statements, s3_only)
            if not any(permits(statements, c) and not permits(without(statements, g), c) for c in calls)]


def unneeded_grants(iam: EnforcedIAM, roles: dict[str, str], buckets: dict[str, str], allowlist,
                    s3_only: bool = True) -> tuple[list[str], set]:
    """The mutation check over ``roles`` (a function's label -> its role): for every grant of every role (each
    resource on its own), take it out and evaluate the calls that role made in the enforced run with moto's own
    policy evaluator; a grant whose removal denies none of them is unneeded, unless ``allowlist`` names it as
    (label, action, resource), ("*", action, resource) or ("*", action, "*"), resources written
    <bucket label>/<pattern> (``buckets``: bucket name -> label). Returns (the unneeded grants, the allowlist entries used); also checks that the
    offline evaluation allows every call moto allowed (the two agree)."""
    names = {f"arn:aws:s3:::{bucket}": label for bucket, label in buckets.items()}

    def short(resource: str) -> str:
        bucket, _, rest = resource.partition("/")
        return names.get(bucket, bucket) + (f"/{rest}" if rest else "")

    out, used = [], set()
    for label, role in roles.items():
        statements = iam.statements(role)
        calls = [c for c in iam.calls_by(role, s3_only) if c.allowed]
        assert all(permits(statements, c) for c in calls), label
        for grant in unneeded(role, statements, calls, s3_only):
            entry = next((e for e in ((label, grant.action, short(grant.resource)),
                                      ("*", grant.action, short(grant.resource)), ("*", grant.action, "*"))
                          if e in allowlist), None)
            if entry:
                used.add(entry)
            else:
                out.append(f"{label}: {grant.action} on {short(grant.resource)}")
    return out, used


class Names(dict):
    """Logical id -> Ref value, ``<logical id>.Arn`` -> ARN, for ``resolve``: the test's own resources, and for
    any other resource of the template (a queue, a topic, a parameter) a name and ARN of its own."""

    def __missing__(self, ref: str) -> str:
        lid, _, attr = ref.partition(".")
        return f"arn:aws:test:{REGION}:{ACCOUNT}:{lid}" if attr else lid


def stack_names(template: dict, buckets: dict[str, str]) -> Names:
    """``Names`` with the stack's buckets (construct name, e.g. Raw -> the test's bucket), every role's ARN and a
    state machine's Ref (its ARN: a policy takes it apart)."""
    from tests import aws_support

    subs = Names()
    for name, bucket in buckets.items():
        lid = aws_support.logical_id_of(template, "AWS::S3::Bucket", f"/Storage/{name}/")
        subs[lid], subs[f"{lid}.Arn"] = bucket, f"arn:aws:s3:::{bucket}"
    for lid in aws_support.resources(template, "AWS::IAM::Role"):
        subs[f"{lid}.Arn"] = f"arn:aws:iam::{ACCOUNT}:role/{lid}"
    for lid in aws_support.resources(template, "AWS::StepFunctions::StateMachine"):
        subs[lid] = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{lid}"
    return subs
