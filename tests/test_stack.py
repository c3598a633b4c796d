"""Assertions on the synthesized CloudFormation template (no hashed logical ids), cdk-nag and cfn-lint."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from tests import aws_support as aws
from tests.aws_support import ROOT, function_by_service, logical_id_of, our_functions, resources

FUNCTIONS = ("start", "plan", "redact", "stitch", "record_failure")


@pytest.fixture(scope="module")
def template():
    return aws.synthesized_once()[0]


@pytest.fixture(scope="module")
def definition(template):
    subs = {lid: f"<{lid}>" for lid in template["Resources"]}
    return json.loads(aws.render_definition(template, subs))


def bucket_id(template, name):
    return logical_id_of(template, "AWS::S3::Bucket", f"/Storage/{name}/")


def statements_of_function(template, name):
    _, fn = function_by_service(template, name)
    role = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    out = []
    for pol in resources(template, "AWS::IAM::Policy").values():
        if {"Ref": role} in pol["Properties"]["Roles"]:
            out += pol["Properties"]["PolicyDocument"]["Statement"]
    return out


def as_list(x):
    return x if isinstance(x, list) else [x]


# ---------------------------------------------------------------- functions

def test_five_functions_arm64_current_python_traced_with_log_retention(template):
    fns = our_functions(template)
    assert len(fns) == 5
    services = sorted(f["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] for f in fns.values())
    assert services == sorted(f"redactor-{n.replace('_', '-')}" for n in FUNCTIONS)
    log_groups = resources(template, "AWS::Logs::LogGroup")
    for fn in fns.values():
        p = fn["Properties"]
        assert p["Architectures"] == ["arm64"]
        assert p["Runtime"] == "python3.13"
        assert p["TracingConfig"] == {"Mode": "Active"}
        assert p["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"] == "Redactor"
        lg = p["LoggingConfig"]["LogGroup"]["Ref"]
        assert log_groups[lg]["Properties"]["RetentionInDays"] == 30
        assert p["LoggingConfig"]["LogFormat"] == "JSON"


def test_defaults_deploy_in_a_new_account(template, definition):
    """A new account's Lambda memory quota is 3008 MB and its concurrency ~10: no default exceeds either."""
    for lid, fn in our_functions(template).items():
        assert fn["Properties"]["MemorySize"] <= 3008, lid
    _, redact = function_by_service(template, "redact")
    assert redact["Properties"]["MemorySize"] == 3008  # 2 vCPUs: the engine's pool uses both
    assert definition["States"]["Redact segments"]["MaxConcurrency"] <= 8  # leaves room for plan/stitch/starter


def test_function_sizes_and_engine_settings_come_from_context(template):
    ctx = aws.cdk_context()
    _, redact = function_by_service(template, "redact")
    p = redact["Properties"]
    assert p["MemorySize"] == ctx["redact_memory_mb"]
    assert p["Timeout"] == ctx["redact_timeout_seconds"]
    assert p["EphemeralStorage"] == {"Size": ctx["redact_ephemeral_mb"]}
    env = p["Environment"]["Variables"]
    assert env["REDACTOR_SEGMENT_SECONDS"] == str(ctx["segment_seconds"])
    assert env["REDACTOR_DETECTOR"] == "yunet" and env["REDACTOR_STYLE"] == "blur"
    assert env["REDACTOR_DROP_AUDIO"] == "false" and env["REDACTOR_KEEP_METADATA"] == "false"
    assert env["REDACTOR_MODEL_PATH"] == "/opt/model/centerface.onnx"
    _, stitch = function_by_service(template, "stitch")
    assert stitch["Properties"]["MemorySize"] == ctx["stitch_memory_mb"]
    assert stitch["Properties"]["EphemeralStorage"] == {"Size": ctx["stitch_ephemeral_mb"]}


def test_layers_per_function(template):
    layers = resources(template, "AWS::Lambda::LayerVersion")
    by_desc = {}
    for lid, layer in layers.items():
        assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
        assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
        by_desc[lid] = layer["Properties"]["Description"]
    names = {lid: d.split()[0] for lid, d in by_desc.items()}

    def layer_kinds(name):
        _, fn = function_by_service(template, name)
        return sorted(by_desc[ref["Ref"]] for ref in fn["Properties"]["Layers"])

    assert any("PyAV" in d for d in layer_kinds("stitch"))
    assert not any("OpenCV" in d for d in layer_kinds("stitch"))
    assert any("OpenCV" in d for d in layer_kinds("redact")) and any("PyAV" in d for d in layer_kinds("redact"))
    assert not any("PyAV" in d or "OpenCV" in d for d in layer_kinds("start"))
    # Pillow (the HTML report) only in Stitch, which writes the report
    assert any("Pillow" in d for d in layer_kinds("stitch")) and not any("Pillow" in d for d in layer_kinds("redact"))
    assert len(names) == 5


def test_starter_knows_the_state_machine(template):
    _, start = function_by_service(template, "start")
    sm = logical_id_of(template, "AWS::StepFunctions::StateMachine", "/Workflow/StateMachine/")
    assert start["Properties"]["Environment"]["Variables"]["STATE_MACHINE_ARN"] == {"Ref": sm}


# ---------------------------------------------------------------- storage

def test_all_buckets_private_tls_only_encrypted(template):
    buckets = resources(template, "AWS::S3::Bucket")
    assert len(buckets) == 4  # raw, work, output, access logs
    policies = {p["Properties"]["Bucket"]["Ref"]: p for p in resources(template, "AWS::S3::BucketPolicy").values()}
    for lid, b in buckets.items():
        p = b["Properties"]
        assert p["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True}
        assert p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
        assert p["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
        deny_tls = [s for s in policies[lid]["Properties"]["PolicyDocument"]["Statement"]
                    if s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")
                    == "false"]
        assert deny_tls, f"{lid} does not enforce TLS"
        assert p.get("LifecycleConfiguration", {}).get("Rules"), f"{lid} has no lifecycle"


def test_retained_data_survives_the_stack_but_not_a_failed_first_deploy(template):
    """removal_policy=retain keeps buckets and log groups when the stack is deleted or a resource replaced, but a
    first deploy that rolls back deletes what it created (RetainExceptOnCreate): no stranded empty buckets."""
    kept = {**resources(template, "AWS::S3::Bucket"), **resources(template, "AWS::Logs::LogGroup")}
    # 4 buckets; the 5 functions' log groups, the workflow's and that of CDK's bucket-notifications function
    assert len(kept) == 4 + 7
    for lid, r in kept.items():
        assert r["DeletionPolicy"] == "RetainExceptOnCreate", lid
        assert r["UpdateReplacePolicy"] == "Retain", lid


def test_removal_policy_destroy_deletes_buckets_and_log_groups(tmp_path):
    assembly, _ = aws.synth(str(tmp_path), nag=False, removal_policy="destroy")
    t = assembly.get_stack_by_name("Redactor").template
    for lid, r in {**resources(t, "AWS::S3::Bucket"), **resources(t, "AWS::Logs::LogGroup")}.items():
        assert r["DeletionPolicy"] == "Delete", lid


def test_server_access_logs_and_lifecycles(template):
    logs_id = bucket_id(template, "AccessLogs")
    for name, prefix in (("Raw", "raw/"), ("Work", "work/"), ("Output", "output/")):
        p = template["Resources"][bucket_id(template, name)]["Properties"]
        assert p["LoggingConfiguration"] == {"DestinationBucketName": {"Ref": logs_id},
                                             "LogFilePrefix": prefix}
    work = template["Resources"][bucket_id(template, "Work")]["Properties"]
    assert {"ExpirationInDays": 2, "Status": "Enabled"}.items() <= work["LifecycleConfiguration"]["Rules"][0].items()
    raw = template["Resources"][bucket_id(template, "Raw")]["Properties"]
    assert any(r.get("ExpirationInDays") == 30 for r in raw["LifecycleConfiguration"]["Rules"])
    assert raw["VersioningConfiguration"] == {"Status": "Enabled"}
    output = template["Resources"][bucket_id(template, "Output")]["Properties"]
    assert output["VersioningConfiguration"] == {"Status": "Enabled"}
    assert "VersioningConfiguration" not in work


def test_raw_bucket_sends_events_to_eventbridge(template):
    (notif,) = [r for r in template["Resources"].values() if r["Type"] == "Custom::S3BucketNotifications"]
    assert notif["Properties"]["BucketName"] == {"Ref": bucket_id(template, "Raw")}
    assert notif["Properties"]["NotificationConfiguration"] == {"EventBridgeConfiguration": {}}


# ---------------------------------------------------------------- trigger

def test_eventbridge_rule_filters_video_uploads_of_the_raw_bucket(template):
    rule = template["Resources"][logical_id_of(template, "AWS::Events::Rule", "/UploadRule/")]
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.s3"]
    assert pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["bucket"] == {"name": [{"Ref": bucket_id(template, "Raw")}]}
    suffixes = [k["suffix"]["equals-ignore-case"] for k in pattern["detail"]["object"]["key"]]
    assert ".mp4" in suffixes and ".mov" in suffixes and ".mkv" in suffixes
    (target,) = rule["Properties"]["Targets"]
    start_id, _ = function_by_service(template, "start")
    assert target["Arn"] == {"Fn::GetAtt": [start_id, "Arn"]}
    assert "Arn" in target["DeadLetterConfig"]
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 8


def test_starter_failures_go_to_the_same_dead_letter_queue(template):
    """The rule's DLQ only gets undeliverable events; a starter that raises (StartExecution throttled or denied)
    must land in the same queue (Lambda's on-failure destination), which the UploadsNotStarted alarm watches."""
    dlq = logical_id_of(template, "AWS::SQS::Queue", "/StarterDeadLetters/")
    rule = template["Resources"][logical_id_of(template, "AWS::Events::Rule", "/UploadRule/")]
    assert rule["Properties"]["Targets"][0]["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [dlq, "Arn"]}
    start_id, _ = function_by_service(template, "start")
    (config,) = resources(template, "AWS::Lambda::EventInvokeConfig").values()
    p = config["Properties"]
    assert p["FunctionName"] == {"Ref": start_id}
    assert p["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": [dlq, "Arn"]}
    assert p["MaximumRetryAttempts"] == 2
    sends = [s for s in statements_of_function(template, "start") if "sqs:SendMessage" in as_list(s["Action"])]
    assert sends and all(s["Resource"] == {"Fn::GetAtt": [dlq, "Arn"]} for s in sends)
    (alarm,) = [a for a in resources(template, "AWS::CloudWatch::Alarm").values()
                if "could not handle" in a["Properties"]["AlarmDescription"]]
    assert alarm["Properties"]["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq, "QueueName"]}}]


# ---------------------------------------------------------------- workflow

def test_state_machine_standard_traced_logged(template):
    (sm,) = resources(template, "AWS::StepFunctions::StateMachine").values()
    p = sm["Properties"]
    assert p["StateMachineType"] == "STANDARD"
    assert p["TracingConfiguration"] == {"Enabled": True}
    assert p["LoggingConfiguration"]["Level"] == "ALL"


def test_workflow_log_group_honours_log_retention_days(template):
    sm = logical_id_of(template, "AWS::StepFunctions::StateMachine", "/Workflow/StateMachine/")
    (dest,) = template["Resources"][sm]["Properties"]["LoggingConfiguration"]["Destinations"]
    lg = dest["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    assert template["Resources"][lg]["Properties"]["RetentionInDays"] == aws.cdk_context()["log_retention_days"]


def test_workflow_structure(definition, template):
    states = definition["States"]
    assert definition["StartAt"] == "Plan segments"
    assert set(states) == {"Plan segments", "Redact segments", "Stitch", "Done", "Record failure", "Failed"}
    assert states["Plan segments"]["Next"] == "Redact segments"
    assert states["Redact segments"]["Next"] == "Stitch"
    assert states["Stitch"]["Next"] == "Done"
    assert states["Done"]["Type"] == "Succeed"
    assert states["Record failure"]["Next"] == "Failed"
    assert states["Failed"]["Type"] == "Fail"
    for name in ("Plan segments", "Redact segments", "Stitch"):
        assert states[name]["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error",
                                          "Next": "Record failure"}]
    for name, lambda_name in (("Plan segments", "plan"), ("Stitch", "stitch"), ("Record failure", "record_failure")):
        fid, _ = function_by_service(template, lambda_name)
        assert states[name]["Parameters"]["FunctionName"] == f"<{fid}>"


def test_a_failed_segment_records_its_own_error(definition, template):
    """Inside each Map child: any error of Redact segment -> Record segment failure (writes the error and cause to
    runs/<execution>/errors/) -> Segment failed (carries them). Record failure returns the recorded error and
    cause, and the run's Fail state shows those, not the Map's generic States.ExceedToleratedFailureThreshold."""
    inner = definition["States"]["Redact segments"]["ItemProcessor"]
    assert inner["StartAt"] == "Redact segment"
    assert set(inner["States"]) == {"Redact segment", "Record segment failure", "Segment failed"}
    assert inner["States"]["Redact segment"]["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Record segment failure"}]
    record = inner["States"]["Record segment failure"]
    fid, _ = function_by_service(template, "record_failure")
    assert record["Parameters"]["FunctionName"] == f"<{fid}>"
    assert record["Parameters"]["Payload"] == {"key.$": "$.key", "work_prefix.$": "$.work_prefix",
                                               "segment.$": "$.segment.index", "error.$": "$.error"}
    assert record["ResultPath"] is None and record["Next"] == "Segment failed"
    assert inner["States"]["Segment failed"] == {"Type": "Fail", "ErrorPath": "$.error.Error",
                                                 "CausePath": "$.error.Cause",
                                                 "Comment": inner["States"]["Segment failed"]["Comment"]}
    states = definition["States"]
    assert states["Record failure"]["ResultSelector"] == {"failed_key.$": "$.Payload.failed_key",
                                                          "error.$": "$.Payload.error", "cause.$": "$.Payload.cause"}
    assert states["Failed"]["ErrorPath"] == "$.failure.error" and states["Failed"]["CausePath"] == "$.failure.cause"


def test_distributed_map_reads_manifest_from_s3(definition, template):
    m = definition["States"]["Redact segments"]
    assert m["Type"] == "Map"
    assert m["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert m["ItemReader"]["Resource"] == "arn:aws:states:::s3:getObject"
    assert m["ItemReader"]["ReaderConfig"] == {"InputType": "JSON"}
    assert m["ItemReader"]["Parameters"] == {"Bucket": f"<{bucket_id(template, 'Work')}>",
                                             "Key.$": "$.plan.manifest_key"}
    assert m["MaxConcurrency"] == aws.cdk_context()["max_concurrency"]
    # zero tolerated failures is AWS's default; an explicit 0 breaks moto's parser
    assert not any(k.startswith("ToleratedFailure") for k in m)
    assert m["ItemSelector"]["segment.$"] == "$$.Map.Item.Value"
    assert m["ResultPath"] is None  # the Map's results never come back into the state
    inner = m["ItemProcessor"]["States"]["Redact segment"]
    rid, _ = function_by_service(template, "redact")
    assert inner["Parameters"]["FunctionName"] == f"<{rid}>"
    assert set(inner["ResultSelector"]) == {"index.$", "frames.$"}


def _expected_wait_seconds(retry):
    """Mean total wait of a retrier that is exhausted: full jitter waits uniform(0, min(interval*rate^n, cap))."""
    cap = retry.get("MaxDelaySeconds", float("inf"))
    return sum(min(retry["IntervalSeconds"] * retry["BackoffRate"] ** n, cap) / 2 for n in range(retry["MaxAttempts"]))


def test_lambda_retries_with_backoff_and_jitter(definition):
    """Every Lambda task: a throttle is retried for about an hour (capped backoff, full jitter) before it can fail a
    run; other Lambda service errors a few times; engine errors never."""
    states = dict(definition["States"])
    inner = states["Redact segments"]["ItemProcessor"]["States"]
    states["Redact segment"] = inner["Redact segment"]
    states["Record segment failure"] = inner["Record segment failure"]
    for name in ("Plan segments", "Redact segment", "Record segment failure", "Stitch", "Record failure"):
        throttle, transient = states[name]["Retry"]
        assert throttle["ErrorEquals"] == ["Lambda.TooManyRequestsException"], name
        assert throttle["JitterStrategy"] == "FULL" and throttle["BackoffRate"] == 2
        assert throttle["IntervalSeconds"] == 2 and throttle["MaxDelaySeconds"] == 60
        assert throttle["MaxAttempts"] == 120
        assert 45 * 60 <= _expected_wait_seconds(throttle) <= 90 * 60, _expected_wait_seconds(throttle)
        assert "Lambda.ServiceException" in transient["ErrorEquals"]
        assert "Lambda.TooManyRequestsException" not in transient["ErrorEquals"]
        assert "States.ALL" not in transient["ErrorEquals"]
        assert transient["JitterStrategy"] == "FULL" and transient["MaxAttempts"] >= 3


def test_state_payloads_carry_only_keys_and_counts(definition):
    states = definition["States"]
    assert set(states["Plan segments"]["ResultSelector"]) == {
        "plan_key.$", "manifest_key.$", "segments.$", "frames.$", "plan_seconds.$"}
    assert set(states["Stitch"]["ResultSelector"]) == {"output_key.$", "report_key.$", "frames.$", "bytes.$",
                                                       "superseded.$"}


# ---------------------------------------------------------------- IAM

def test_no_wildcard_actions_anywhere(template):
    """No Allow of "*" or "service:*" (the buckets' TLS-only policies *deny* s3:* over plain HTTP)."""
    for lid, pol in [*resources(template, "AWS::IAM::Policy").items(),
                     *resources(template, "AWS::S3::BucketPolicy").items()]:
        for st in pol["Properties"]["PolicyDocument"]["Statement"]:
            if st["Effect"] == "Deny":
                assert st.get("Condition"), f"{lid}: unconditional deny"
                continue
            for action in as_list(st["Action"]):
                assert action != "*" and not action.endswith(":*"), f"{lid}: {action}"
    for lid, role in resources(template, "AWS::IAM::Role").items():
        for pol in role["Properties"].get("Policies", []):
            for st in pol["PolicyDocument"]["Statement"]:
                for action in as_list(st["Action"]):
                    assert action != "*" and not action.endswith(":*"), f"{lid}: {action}"


def _object_resources(template, statements, bucket_name, verb):
    """Object ARNs (as strings with <bucket>) that statements allow `verb` on, for one bucket."""
    bid = bucket_id(template, bucket_name)
    out = set()
    for st in statements:
        if st["Effect"] != "Allow" or not any(a.startswith(verb) for a in as_list(st["Action"])):
            continue
        for res in as_list(st["Resource"]):
            if isinstance(res, dict) and "Fn::Join" in res:
                parts = res["Fn::Join"][1]
                if parts and parts[0] == {"Fn::GetAtt": [bid, "Arn"]}:
                    out.add("".join(p if isinstance(p, str) else "<bucket>" for p in parts))
            elif res == {"Fn::GetAtt": [bid, "Arn"]}:
                out.add("<bucket>")
    return out


def test_each_function_writes_only_its_prefixes(template):
    stm = {n: statements_of_function(template, n) for n in FUNCTIONS}
    assert _object_resources(template, stm["plan"], "Work", "s3:PutObject") == {"<bucket>/runs/*"}
    assert _object_resources(template, stm["redact"], "Work", "s3:PutObject") == {"<bucket>/runs/*"}
    assert _object_resources(template, stm["stitch"], "Output", "s3:PutObject") == {"<bucket>/redacted/*"}
    assert _object_resources(template, stm["stitch"], "Work", "s3:DeleteObject") == {"<bucket>/runs/*"}
    assert _object_resources(template, stm["record_failure"], "Output", "s3:PutObject") == {"<bucket>/failed/*"}
    assert _object_resources(template, stm["record_failure"], "Work", "s3:DeleteObject") == {"<bucket>/runs/*"}
    # nobody writes to the raw bucket; the starter and Record failure never write to the work area
    for name in FUNCTIONS:
        assert not _object_resources(template, stm[name], "Raw", "s3:PutObject"), name
        assert not _object_resources(template, stm[name], "Raw", "s3:DeleteObject"), name
    for name in ("start", "plan", "redact"):
        assert not _object_resources(template, stm[name], "Output", "s3:PutObject"), name
    assert not _object_resources(template, stm["start"], "Work", "s3:")


EXACT_S3_ACTIONS = {"s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:AbortMultipartUpload",
                    "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:ListBucket"}


def test_s3_grants_name_exact_actions(template):
    """No s3:GetObject*, s3:GetBucket*, s3:List*, s3:PutObjectRetention, ...: only what the handlers call."""
    seen = set()
    for lid, pol in resources(template, "AWS::IAM::Policy").items():
        for st in pol["Properties"]["PolicyDocument"]["Statement"]:
            for action in as_list(st["Action"]):
                if not action.startswith("s3:"):
                    continue
                assert "*" not in action, f"{lid}: {action}"
                if "NotificationsHandler" in lid:  # CDK's own handler: turns EventBridge delivery on
                    assert action == "s3:PutBucketNotification", f"{lid}: {action}"
                    continue
                assert action in EXACT_S3_ACTIONS, f"{lid}: {action}"
                seen.add(action)
    assert seen == EXACT_S3_ACTIONS


def test_state_machine_reads_only_the_runs_of_the_work_bucket(template):
    sm = logical_id_of(template, "AWS::StepFunctions::StateMachine", "/Workflow/StateMachine/")
    role = template["Resources"][sm]["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    s3_statements = [st for pol in resources(template, "AWS::IAM::Policy").values()
                     if {"Ref": role} in pol["Properties"]["Roles"]
                     for st in pol["Properties"]["PolicyDocument"]["Statement"]
                     if any(a.startswith("s3:") for a in as_list(st["Action"]))]
    assert [as_list(st["Action"]) for st in s3_statements] == [["s3:GetObject"]]
    assert _object_resources(template, s3_statements, "Work", "s3:GetObject") == {"<bucket>/runs/*"}


def test_listing_and_stale_failure_removal_are_scoped(template):
    stm = {n: statements_of_function(template, n) for n in FUNCTIONS}
    # (verbs match as prefixes: s3:DeleteObject includes s3:DeleteObjectVersion) a run deletes only the versions
    # it wrote under redacted/ (a newer upload of the key won, or its reports failed)
    assert _object_resources(template, stm["stitch"], "Output", "s3:DeleteObject") == {
        "<bucket>/redacted/*", "<bucket>/failed/*"}
    assert _object_resources(template, stm["stitch"], "Output", "s3:DeleteObjectVersion") == {"<bucket>/redacted/*"}
    (listing,) = [s for s in stm["stitch"] if "s3:ListBucket" in as_list(s["Action"])
                  and s["Resource"] == {"Fn::GetAtt": [bucket_id(template, "Output"), "Arn"]}]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["failed/*"]}}
    assert _object_resources(template, stm["record_failure"], "Work", "s3:PutObject") == {
        "<bucket>/runs/*/errors/*", "<bucket>/versions/*"}
    for name in ("plan", "redact"):
        assert not any("s3:ListBucket" in as_list(s["Action"]) for s in stm[name]), name


def test_only_the_starter_may_start_runs(template):
    sm = logical_id_of(template, "AWS::StepFunctions::StateMachine", "/Workflow/StateMachine/")
    start_stmts = [s for s in statements_of_function(template, "start") if "states:StartExecution" in as_list(s["Action"])]
    assert start_stmts and all(s["Resource"] == {"Ref": sm} for s in start_stmts)
    for name in ("plan", "redact", "stitch", "record_failure"):
        assert not any(a.startswith("states:") for s in statements_of_function(template, name)
                       for a in as_list(s["Action"]))


# ---------------------------------------------------------------- cdk-nag, cfn-lint, app

def test_cdk_nag_acknowledgements_all_have_reasons():
    """The synth ran with AwsSolutionsChecks as a validation plugin: any unacknowledged finding fails it.
    Here: each acknowledgement names an AwsSolutions rule and gives a real reason."""
    import aws_cdk as cdk

    import tempfile
    from stacks.redactor_stack import RedactorStack

    app = cdk.App(context=aws.cdk_context(placeholder_layers=True), outdir=tempfile.mkdtemp())
    stack = RedactorStack(app, "Redactor")
    acks = {}
    for node in stack.node.find_all():
        for entry in node.node.metadata:
            if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                acks.update(entry.data)  # {rule id: reason}
    assert len(acks) >= 10
    for rule, reason in acks.items():
        assert rule.startswith("AwsSolutions::AwsSolutions-"), rule
        assert len(reason) > 40, (rule, reason)
    # nothing blanket: IAM5 is acknowledged finding by finding, never as a whole rule
    assert "AwsSolutions::AwsSolutions-IAM5" not in acks


def test_cdk_nag_fails_synth_on_an_unacknowledged_finding(tmp_path):
    """Proof the plugin is live: an extra unencrypted-by-policy queue without acknowledgement breaks synth."""
    import aws_cdk as cdk
    from aws_cdk import aws_sqs as sqs
    from cdk_nag import AwsSolutionsChecks

    from stacks.redactor_stack import RedactorStack

    app = cdk.App(context=aws.cdk_context(placeholder_layers=True), outdir=str(tmp_path))
    stack = RedactorStack(app, "Redactor")
    sqs.Queue(stack, "Unsafe")
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(Exception, match="AwsSolutions-SQS"):
        app.synth()


def test_cfn_lint_has_no_errors():
    _, outdir = aws.synthesized_once()
    path = outdir / "Redactor.template.json"
    proc = subprocess.run([sys.executable, "-m", "cfnlint", "--format", "parseable", str(path)],
                          capture_output=True, text=True)
    errors = [line for line in proc.stdout.splitlines() if ":E" in line or line.split(":")[-2:-1] == ["E"]]
    assert proc.returncode & 2 == 0 and not errors, proc.stdout + proc.stderr


def test_settings_defaults_match_cdk_json():
    """app.py run without the CLI (no cdk.json) must behave like `cdk synth`."""
    from stacks.settings import Settings

    ctx = aws.cdk_context()
    defaults = Settings()
    for f in dataclasses.fields(Settings):
        if f.name == "extra":
            continue
        assert f.name in ctx, f"{f.name} missing from cdk.json"
        value = getattr(defaults, f.name)
        assert (list(value) if isinstance(value, tuple) else value) == ctx[f.name], f.name


def test_settings_from_cli_strings_and_validation():
    from stacks.settings import Settings, SettingsError

    given = {"segment_seconds": "5", "max_concurrency": "7", "drop_audio": "true", "video_suffixes": ".mp4,.mov",
             "removal_policy": "destroy"}
    s = Settings.from_context(given.get)
    assert s.segment_seconds == 5.0 and s.max_concurrency == 7 and s.drop_audio is True
    assert s.video_suffixes == (".mp4", ".mov") and s.removal_policy == "destroy"
    assert s.engine_environment["REDACTOR_DROP_AUDIO"] == "true"
    for bad in ({"max_concurrency": "0"}, {"style": "paint"}, {"redact_timeout_seconds": "1000"},
                {"drop_audio": "maybe"}, {"log_retention_days": "31"}):
        with pytest.raises(SettingsError):
            Settings.from_context(bad.get)


def test_old_inference_context_openvino_is_refused_with_the_reason():
    """``-c inference=...`` was never a stack setting (the Lambdas always ran OpenCV DNN, the layer's only
    runtime) and still sets nothing; but an old ``inference=openvino`` is refused with the engine's named
    error (OpenVINO was removed on 2026-12-03) rather than silently ignored."""
    from stacks.settings import Settings, SettingsError

    for ok in ("opencv", "auto"):
        env = Settings.from_context({"inference": ok}.get).engine_environment
        assert not any("INFERENCE" in k for k in env)
    with pytest.raises(SettingsError, match=r"context setting inference='openvino': OpenVINO was removed on 2026-12-03"):
        Settings.from_context({"inference": "openvino"}.get)


def test_context_overrides_reach_the_template(tmp_path):
    assembly, _ = aws.synth(str(tmp_path), nag=False, max_concurrency=3, segment_seconds=4, style="pixelate",
                            redact_memory_mb=10240, log_retention_days=7)
    t = assembly.get_stack_by_name("Redactor").template
    assert {lg["Properties"]["RetentionInDays"] for lg in resources(t, "AWS::Logs::LogGroup").values()} == {7}
    d = json.loads(aws.render_definition(t, {lid: lid for lid in t["Resources"]}))
    assert d["States"]["Redact segments"]["MaxConcurrency"] == 3
    _, redact = function_by_service(t, "redact")
    env = redact["Properties"]["Environment"]["Variables"]
    assert env["REDACTOR_SEGMENT_SECONDS"] == "4" and env["REDACTOR_STYLE"] == "pixelate"
    assert redact["Properties"]["MemorySize"] == 10240  # the fast setting, once the account's quota allows it


def test_app_py_synthesizes_like_the_cli(tmp_path):
    """Run app.py the way `cdk synth` does (CDK_OUTDIR + CDK_CONTEXT_JSON), offline, no Docker."""
    import os

    env = dict(os.environ, CDK_OUTDIR=str(tmp_path),
               CDK_CONTEXT_JSON=json.dumps(aws.cdk_context(placeholder_layers=True)))
    proc = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    t = json.loads((tmp_path / "Redactor.template.json").read_text())
    assert len(our_functions(t)) == 5


# ---------------------------------------------------------------- Rekognition detectors (IAM only when selected)

def _rekognition_actions(template):
    """{function name: sorted rekognition:* actions its role may call}, for every function in the template."""
    out = {}
    for name in (*FUNCTIONS, "faces"):
        try:
            stm = statements_of_function(template, name)
        except KeyError:
            continue
        out[name] = sorted(a for s in stm if s["Effect"] == "Allow" for a in as_list(s["Action"])
                           if a.startswith("rekognition:"))
    return out


def _synth_detector(tmp_path_factory, detector):
    assembly, _ = aws.synth(str(tmp_path_factory.mktemp(detector)), nag=True, detector=detector,
                            face_poll_seconds=7)  # cdk-nag runs: an unacknowledged finding fails this synth
    t = assembly.get_stack_by_name("Redactor").template
    return t, json.loads(aws.render_definition(t, {lid: f"<{lid}>" for lid in t["Resources"]}))


@pytest.fixture(scope="module")
def rekognition_stack(tmp_path_factory):
    return _synth_detector(tmp_path_factory, "rekognition")


@pytest.fixture(scope="module")
def rekognition_video_stack(tmp_path_factory):
    return _synth_detector(tmp_path_factory, "rekognition-video")


def test_default_detector_has_no_rekognition_permissions(template):
    assert all(actions == [] for actions in _rekognition_actions(template).values())
    assert "rekognition" not in json.dumps(template["Resources"]).lower().replace("redactor", "")


def test_rekognition_detector_adds_only_detect_faces_to_redact(rekognition_stack):
    template, definition = rekognition_stack
    assert _rekognition_actions(template) == {"start": [], "plan": [], "redact": ["rekognition:DetectFaces"],
                                              "stitch": [], "record_failure": []}
    (st,) = [s for s in statements_of_function(template, "redact") if "rekognition:DetectFaces" in as_list(s["Action"])]
    assert st["Resource"] == "*"  # DetectFaces has no resource-level permissions
    _, redact = function_by_service(template, "redact")
    env = redact["Properties"]["Environment"]["Variables"]
    assert env["REDACTOR_DETECTOR"] == "rekognition" and env["REDACTOR_REKOGNITION_EVERY"] == "0"  # 0: from rekognition_ms
    assert set(definition["States"]) == {"Plan segments", "Redact segments", "Stitch", "Done", "Record failure",
                                         "Failed"}


def test_rekognition_video_adds_the_job_states_and_its_function(rekognition_video_stack):
    template, definition = rekognition_video_stack
    assert len(our_functions(template)) == 6
    assert _rekognition_actions(template) == {
        "start": [], "plan": [], "redact": [], "stitch": [], "record_failure": [],
        "faces": ["rekognition:GetFaceDetection", "rekognition:StartFaceDetection"]}
    stm = statements_of_function(template, "faces")
    # Rekognition Video reads the upload with the caller's permissions; the faces file is all it writes
    assert "<bucket>/*" in _object_resources(template, stm, "Raw", "s3:GetObject")
    assert _object_resources(template, stm, "Work", "s3:PutObject") == {"<bucket>/runs/*/faces.json"}
    assert _object_resources(template, stm, "Work", "s3:GetObject") - {"<bucket>"} == {"<bucket>/runs/*/plan.json"}
    assert not _object_resources(template, stm, "Output", "s3:")
    assert "<bucket>/runs/*/faces.json" in _object_resources(
        template, statements_of_function(template, "redact"), "Work", "s3:GetObject")

    s = definition["States"]
    fid, faces = function_by_service(template, "faces")
    assert faces["Properties"]["Layers"] and faces["Properties"]["Architectures"] == ["arm64"]
    assert s["Plan segments"]["Next"] == "Start face detection"
    assert s["Start face detection"]["Next"] == "Wait for face detection"
    assert s["Wait for face detection"] == {"Type": "Wait", "Seconds": 7, "Next": "Check face detection",
                                            "Comment": s["Wait for face detection"]["Comment"]}
    assert s["Check face detection"]["Next"] == "Face detection finished?"
    choice = s["Face detection finished?"]
    assert choice["Choices"] == [{"Variable": "$.faces_status.status", "StringEquals": "SUCCEEDED",
                                  "Next": "Save face detections"}]
    assert choice["Default"] == "Wait for face detection"
    assert s["Save face detections"]["Next"] == "Redact segments"
    for name, action in (("Start face detection", "start"), ("Check face detection", "check"),
                         ("Save face detections", "save")):
        st = s[name]
        assert st["Parameters"]["FunctionName"] == f"<{fid}>"
        assert st["Parameters"]["Payload"]["action"] == action
        assert st["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Record failure"}]
        assert any(r["ErrorEquals"] == ["RekognitionThrottled"] and r["JitterStrategy"] == "FULL"
                   for r in st["Retry"])
    # only keys and counts in the state: job id, faces key, counts
    assert set(s["Save face detections"]["ResultSelector"]) == {"job_id.$", "faces_key.$", "samples.$", "faces.$",
                                                                 "video_minutes.$"}


def test_rekognition_settings_validation():
    from stacks.settings import Settings, SettingsError

    s = Settings.from_context({"detector": "rekognition", "rekognition_every": "3"}.get)
    assert s.engine_environment["REDACTOR_REKOGNITION_EVERY"] == "3"
    assert "REDACTOR_REKOGNITION_EVERY" not in Settings().engine_environment
    for bad in ({"rekognition_every": "-1"}, {"face_poll_seconds": "0"}, {"detector": "aws"}):
        with pytest.raises(SettingsError):
            Settings.from_context(bad.get)


# ---------------------------------------------------------------- runs that end, CDK's own functions

def test_every_run_end_reaches_record_failure_and_the_topic_is_a_stack_output(template):
    topic = logical_id_of(template, "AWS::SNS::Topic", "/Notifications/")
    assert template["Outputs"]["NotificationTopicArn"]["Value"] == {"Ref": topic}
    assert template["Resources"][topic]["Properties"]["KmsMasterKeyId"]  # encrypted (AWS managed key)
    record_failure_id, fn = function_by_service(template, "record_failure")
    assert fn["Properties"]["Environment"]["Variables"]["NOTIFICATION_TOPIC_ARN"] == {"Ref": topic}
    rule = template["Resources"][logical_id_of(template, "AWS::Events::Rule", "/RunEndedRule/")]["Properties"]
    assert rule["EventPattern"]["detail"]["status"] == ["SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"]
    (target,) = rule["Targets"]
    dlq = logical_id_of(template, "AWS::SQS::Queue", "/RunEventDeadLetters/")
    assert target["Arn"] == {"Fn::GetAtt": [record_failure_id, "Arn"]}
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [dlq, "Arn"]}
    for name in ("StarterDeadLetterQueueUrl", "RunEventDeadLetterQueueUrl"):
        assert name in template["Outputs"], name
    alarms = [a["Properties"] for a in resources(template, "AWS::CloudWatch::Alarm").values()]
    assert any(d["Name"] == "QueueName" and d["Value"] == {"Fn::GetAtt": [dlq, "QueueName"]}
               for a in alarms for d in a.get("Dimensions", [])), "no alarm on the run-event dead letters"


def test_cdk_helper_functions_log_with_the_stacks_retention(template):
    """CDK's own functions (the bucket-notifications handler) get a log group of the stack's retention, made
    before the function first runs (the custom resource that runs it depends on it)."""
    helpers = [lid for lid, r in resources(template, "AWS::Lambda::Function").items()
               if r["Properties"].get("Handler") != "handler.handler"]
    assert helpers
    groups = {json.dumps(r["Properties"].get("LogGroupName"), sort_keys=True): (lid, r["Properties"])
              for lid, r in resources(template, "AWS::Logs::LogGroup").items()}
    (notifications,) = [r for r in template["Resources"].values() if r["Type"] == "Custom::S3BucketNotifications"]
    for helper in helpers:
        name = json.dumps({"Fn::Join": ["", ["/aws/lambda/", {"Ref": helper}]]}, sort_keys=True)
        assert name in groups, helper
        lid, props = groups[name]
        assert props["RetentionInDays"] == aws.cdk_context()["log_retention_days"]
        assert lid in notifications["DependsOn"]
