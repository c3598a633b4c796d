"""What moto's IAM cannot enforce, proved on the synthesized template instead (the deployed-runtime test runs
every function under its own role with moto enforcing the rest: tests/test_deployed_runtime.py).

moto authorizes non-S3 actions against ``Resource: *`` only and ignores the ``s3:prefix`` condition, so: the
state machine alone may be started, by the starter and by itself (its Distributed Map); only the workflow's
functions may be invoked, by the state machine alone; listings of the work and output buckets are narrowed to
the prefixes the functions own; no action is a wildcard; every function has a role of its own.
"""
from __future__ import annotations

import pytest

from tests import aws_support as aws
from tests.iam_enforced import as_list, role_of


@pytest.fixture(scope="module", params=["default", "rekognition-video"])
def template(request, tmp_path_factory):
    """The default stack, and the one with the most functions and grants (detector=rekognition-video)."""
    if request.param == "default":
        return aws.synthesized_once()[0]
    assembly, _ = aws.synth(str(tmp_path_factory.mktemp("cdk")), nag=True, detector=request.param)
    return assembly.get_stack_by_name("Redactor").template


def _statements(template: dict, role: str | None = None) -> list[dict]:
    return [st for r in aws.resources(template, "AWS::IAM::Policy").values()
            if role is None or {"Ref": role} in r["Properties"]["Roles"]
            for st in as_list(r["Properties"]["PolicyDocument"]["Statement"])]


def _granting(template: dict, action: str) -> list[tuple[str, dict]]:
    return [(r["Properties"]["Roles"][0]["Ref"], st) for r in aws.resources(template, "AWS::IAM::Policy").values()
            for st in as_list(r["Properties"]["PolicyDocument"]["Statement"]) if action in as_list(st["Action"])]


def _bucket(template: dict, name: str) -> str:
    return aws.logical_id_of(template, "AWS::S3::Bucket", f"/Storage/{name}/")


def test_no_policy_grants_a_wildcard_action(template):
    wild = [a for st in _statements(template) for a in as_list(st.get("Action", [])) if "*" in a]
    assert wild == []
    assert all("NotAction" not in st and "NotResource" not in st for st in _statements(template))


def test_every_function_and_the_state_machine_have_a_role_of_their_own(template):
    roles = [role_of(fn) for fn in aws.our_functions(template).values()]
    roles += [role_of(sm) for sm in aws.resources(template, "AWS::StepFunctions::StateMachine").values()]
    assert len(roles) == len(set(roles)) == len(aws.our_functions(template)) + 1


def test_only_the_state_machine_may_be_started_and_only_by_the_starter_and_itself(template):
    (sm,) = aws.resources(template, "AWS::StepFunctions::StateMachine")
    start_role = role_of(aws.function_by_service(template, "start")[1])
    grants = _granting(template, "states:StartExecution")
    assert {role for role, _ in grants} == {start_role, role_of(template["Resources"][sm])}
    assert all(st["Resource"] == {"Ref": sm} for _, st in grants), grants


def test_only_the_workflow_functions_may_be_invoked_and_only_by_the_state_machine(template):
    (sm,) = aws.resources(template, "AWS::StepFunctions::StateMachine")
    functions = sorted(aws.our_functions(template))
    allowed = [{"Fn::GetAtt": [lid, "Arn"]} for lid in functions]
    allowed += [{"Fn::Join": ["", [{"Fn::GetAtt": [lid, "Arn"]}, ":*"]]} for lid in functions]
    grants = _granting(template, "lambda:InvokeFunction")
    assert {role for role, _ in grants} == {role_of(template["Resources"][sm])}
    resources = [r for _, st in grants for r in as_list(st["Resource"])]
    assert resources and all(r in allowed for r in resources), resources
    start = aws.function_by_service(template, "start")[0]
    assert {"Fn::GetAtt": [start, "Arn"]} not in resources, "the state machine never invokes the starter"


def test_only_record_failure_may_publish_and_only_to_the_notification_topic(template):
    topic = aws.logical_id_of(template, "AWS::SNS::Topic", "/Notifications/")
    grants = _granting(template, "sns:Publish")
    assert {role for role, _ in grants} == {role_of(aws.function_by_service(template, "record_failure")[1])}
    assert all(st["Resource"] == {"Ref": topic} for _, st in grants), grants


def test_listings_are_narrowed_to_the_prefixes_the_functions_own(template):
    """s3:prefix conditions (moto ignores them): the work bucket's listings only under runs/, the output
    bucket's only under failed/; the raw bucket's ListBucket (the starter's, for a 404 on a missing key) is the
    only one without a prefix."""
    work, output, raw = (_bucket(template, n) for n in ("Work", "Output", "Raw"))
    start_role = role_of(aws.function_by_service(template, "start")[1])
    seen = set()
    for role, st in _granting(template, "s3:ListBucket"):
        (bucket,) = [r["Fn::GetAtt"][0] for r in as_list(st["Resource"])]
        prefixes = st.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
        if bucket == raw:
            assert role == start_role and prefixes is None, (role, st)
        else:
            assert prefixes == {work: ["runs/*"], output: ["failed/*"]}[bucket], (role, st)
            assert set(st["Condition"]) == {"StringLike"}, st
        seen.add(bucket)
    assert seen == {raw, work, output}


def test_object_grants_stay_inside_the_prefixes_each_bucket_gives_out(template):
    """Objects: the raw bucket's uploads (any key), the work bucket's runs/ and versions/, the output bucket's
    redacted/ and failed/ (no grant on a whole work or output bucket's objects)."""
    allowed = {_bucket(template, "Raw"): ("/*",), _bucket(template, "Work"): ("/runs/", "/versions/"),
               _bucket(template, "Output"): ("/redacted/", "/failed/")}
    for st in _statements(template):
        if not all(a.startswith("s3:") for a in as_list(st["Action"])) or as_list(st["Action"]) == ["s3:ListBucket"]:
            continue
        for r in as_list(st["Resource"]):
            if "Fn::Join" not in r:
                continue  # the bucket notifications handler's PutBucketNotification on the raw bucket itself
            (arn, suffix) = r["Fn::Join"][1]
            bucket = arn["Fn::GetAtt"][0]
            assert bucket in allowed and suffix.startswith(allowed[bucket]), (st, suffix)
