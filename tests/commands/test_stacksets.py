"""A class on CloudFormation StackSets: the local AWS's StackSets behave as AWS's (operations that
take their time within their preferences, a result per account, roles checked, final snapshots),
and `awslab class up/status/verify/down --stackset` deploys, grades and removes a class of
accounts on them."""

from __future__ import annotations

import json
import time
import uuid
from types import SimpleNamespace

import boto3
import pytest
from botocore.exceptions import ClientError
from conftest import server_keys

A, B, C, D = "111111111111", "222222222222", "333333333333", "444444444444"
EXECUTION = "AWSCloudFormationStackSetExecutionRole"
ADMIN = "AWSCloudFormationStackSetAdministrationRole"
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                            "Principal": {"Service": "cloudformation.amazonaws.com"}}]})


def _into(server, keys: dict, account: str, role: str = "OrganizationAccountAccessRole"):
    sts = boto3.client("sts", region_name="us-east-1", endpoint_url=server.endpoint_url, **keys)
    c = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/{role}", RoleSessionName="test")["Credentials"]
    session = boto3.Session(aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                            aws_session_token=c["SessionToken"], region_name="us-east-1")
    return SimpleNamespace(client=lambda service: session.client(service, endpoint_url=server.endpoint_url))


def _roles(aws, server, keys, accounts) -> None:
    try:
        aws("iam").create_role(RoleName=ADMIN, AssumeRolePolicyDocument=TRUST)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "EntityAlreadyExists"
    for a in accounts:
        iam = _into(server, keys, a).client("iam")
        try:
            iam.create_role(RoleName=EXECUTION, AssumeRolePolicyDocument=TRUST)
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "EntityAlreadyExists"


def _template(name: str, db: bool = False) -> str:
    resources = {
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.9.0.0/16"}},
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"RoleName": name, "AssumeRolePolicyDocument": json.loads(TRUST)}},
    }
    if db:
        resources["Db"] = {"Type": "AWS::RDS::DBInstance", "DeletionPolicy": "Snapshot", "Properties": {
            "DBInstanceIdentifier": f"{name}-db", "Engine": "postgres", "DBInstanceClass": "db.t3.micro",
            "AllocatedStorage": "20", "MasterUsername": "labadmin", "ManageMasterUserPassword": True}}
    return json.dumps({"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources})


def _wait(cfn, name: str, op: str, within_s: float = 60.0) -> dict:
    deadline = time.monotonic() + within_s
    while True:
        found = cfn.describe_stack_set_operation(StackSetName=name, OperationId=op)["StackSetOperation"]
        if found["Status"] not in ("RUNNING", "STOPPING") or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _results(cfn, name: str, op: str) -> dict[str, tuple[str, str]]:
    rows = cfn.list_stack_set_operation_results(StackSetName=name, OperationId=op)["Summaries"]
    return {r["Account"]: (r["Status"], r.get("StatusReason") or "") for r in rows}


def _instances(cfn, name: str) -> dict[str, tuple[str, str]]:
    rows = cfn.list_stack_instances(StackSetName=name)["Summaries"]
    return {r["Account"]: (r["Status"], r["StackInstanceStatus"]["DetailedStatus"]) for r in rows}


@pytest.mark.lifecycle
def test_local_stacksets__preferences_tolerance_roles_and_a_result_per_account(aws, local, local_server):
    keys = server_keys(local_server[1])
    cfn = aws("cloudformation")
    name, role = f"ss-{uuid.uuid4().hex[:8]}", f"r-{uuid.uuid4().hex[:8]}"
    _roles(aws, local, keys, [A, B, C])   # D has no execution role
    _into(local, keys, B).client("iam").create_role(RoleName=role, AssumeRolePolicyDocument=TRUST)   # B's stack fails
    cfn.create_stack_set(StackSetName=name, TemplateBody=_template(role), Capabilities=["CAPABILITY_NAMED_IAM"],
                         Tags=[{"Key": "awslab:class", "Value": name}])
    with pytest.raises(ClientError, match="NameAlreadyExistsException"):
        cfn.create_stack_set(StackSetName=name, TemplateBody=_template(role))

    # One at a time, no failure tolerated: A succeeds, B fails, C is never tried.
    op = cfn.create_stack_instances(StackSetName=name, Accounts=[A, B, C], Regions=["us-east-1"],
                                    OperationPreferences={"MaxConcurrentCount": 1, "FailureToleranceCount": 0})["OperationId"]
    assert _wait(cfn, name, op)["Status"] == "FAILED"
    results = _results(cfn, name, op)
    assert results[A] == ("SUCCEEDED", "")
    assert results[B][0] == "FAILED" and role in results[B][1] and "already exists" in results[B][1]
    assert results[C] == ("CANCELLED", "Cancelled since failure tolerance has exceeded")
    assert _instances(cfn, name) == {A: ("CURRENT", "SUCCEEDED"), B: ("OUTDATED", "FAILED"), C: ("OUTDATED", "CANCELLED")}
    with pytest.raises(ClientError, match="OperationIdAlreadyExistsException"):
        cfn.create_stack_instances(StackSetName=name, Accounts=[C], Regions=["us-east-1"], OperationId=op)

    # The stack in A: named as StackSets names it, tagged with the StackSet's tags, its resources made.
    stacks = _into(local, keys, A).client("cloudformation").describe_stacks()["Stacks"]
    mine = [s for s in stacks if s["StackName"].startswith(f"StackSet-{name}-")]
    assert [s["StackStatus"] for s in mine] == ["CREATE_COMPLETE"]
    assert {t["Key"]: t["Value"] for t in mine[0]["Tags"]} == {"awslab:class": name}
    assert _into(local, keys, A).client("iam").get_role(RoleName=role)["Role"]["RoleName"] == role

    # The conflict gone, a rerun (soft mode, three at a time, D without its role, one failure
    # tolerated) retries B and C, leaves A alone, and D fails with AWS's reason.
    _into(local, keys, B).client("iam").delete_role(RoleName=role)
    op = cfn.create_stack_instances(StackSetName=name, Accounts=[A, B, C, D], Regions=["us-east-1"],
                                    OperationPreferences={"MaxConcurrentCount": 3, "FailureToleranceCount": 1,
                                                          "ConcurrencyMode": "SOFT_FAILURE_TOLERANCE"})["OperationId"]
    assert _wait(cfn, name, op)["Status"] == "SUCCEEDED", _results(cfn, name, op)   # one failure, within the tolerance
    results = _results(cfn, name, op)
    assert A not in results and results[B] == results[C] == ("SUCCEEDED", "")
    assert results[D] == ("FAILED", f"Account {D} should have '{EXECUTION}' role with trust relationship to Role "
                                    f"'{ADMIN}'.")
    assert _instances(cfn, name) == {A: ("CURRENT", "SUCCEEDED"), B: ("CURRENT", "SUCCEEDED"),
                                     C: ("CURRENT", "SUCCEEDED"), D: ("OUTDATED", "FAILED")}
    with pytest.raises(ClientError, match="StackSetNotEmptyException"):
        cfn.delete_stack_set(StackSetName=name)

    # Delete: RetainStacks keeps A's stack (detached), the others' go with their resources.
    op = cfn.delete_stack_instances(StackSetName=name, Accounts=[A], Regions=["us-east-1"], RetainStacks=True)["OperationId"]
    assert _wait(cfn, name, op)["Status"] == "SUCCEEDED"
    op = cfn.delete_stack_instances(StackSetName=name, Accounts=[B, C, D], Regions=["us-east-1"],
                                    RetainStacks=False, OperationPreferences={"MaxConcurrentCount": 3})["OperationId"]
    assert _wait(cfn, name, op)["Status"] == "SUCCEEDED" and _instances(cfn, name) == {}
    assert _into(local, keys, A).client("iam").get_role(RoleName=role)
    with pytest.raises(ClientError, match="NoSuchEntity"):
        _into(local, keys, B).client("iam").get_role(RoleName=role)
    cfn.delete_stack_set(StackSetName=name)
    assert name not in [s["StackSetName"] for s in cfn.list_stack_sets(Status="ACTIVE")["Summaries"]]


@pytest.mark.lifecycle
def test_local_stacksets__an_operation_takes_its_time_refuses_a_second_and_stops(aws, local, local_server, latency):
    keys = server_keys(local_server[1])
    cfn = aws("cloudformation")
    name = f"ss-{uuid.uuid4().hex[:8]}"
    _roles(aws, local, keys, [A, B, C])
    latency("rds.create=3")
    cfn.create_stack_set(StackSetName=name, TemplateBody=_template(f"r-{uuid.uuid4().hex[:8]}", db=True),
                         Capabilities=["CAPABILITY_NAMED_IAM"])
    t0 = time.monotonic()
    op = cfn.create_stack_instances(StackSetName=name, Accounts=[A, B, C], Regions=["us-east-1"],
                                    OperationPreferences={"MaxConcurrentCount": 1})["OperationId"]
    assert time.monotonic() - t0 < 2.0   # answered at once, as AWS answers
    assert cfn.describe_stack_set_operation(StackSetName=name, OperationId=op)["StackSetOperation"]["Status"] == "RUNNING"
    with pytest.raises(ClientError, match="OperationInProgressException"):
        cfn.create_stack_instances(StackSetName=name, Accounts=[C], Regions=["us-east-1"])
    with pytest.raises(ClientError, match="OperationInProgressException"):
        cfn.delete_stack_set(StackSetName=name)
    cfn.stop_stack_set_operation(StackSetName=name, OperationId=op)
    assert _wait(cfn, name, op)["Status"] == "STOPPED"
    results = _results(cfn, name, op)
    assert results[A] == ("SUCCEEDED", "")   # the one running when asked to stop finishes (its DB available)
    assert results[B] == results[C] == ("CANCELLED", "Operation stopped")
    assert time.monotonic() - t0 >= 3.0

    # The DB of each account has its own endpoint address; deleting the stack keeps a final snapshot.
    latency("instant")
    op = cfn.create_stack_instances(StackSetName=name, Accounts=[B], Regions=["us-east-1"])["OperationId"]
    assert _wait(cfn, name, op)["Status"] == "SUCCEEDED"
    address = {a: _into(local, keys, a).client("rds").describe_db_instances()["DBInstances"] for a in (A, B)}
    ends = {a: [d["Endpoint"]["Address"] for d in dbs if d["DBInstanceIdentifier"].endswith("-db")] for a, dbs in address.items()}
    assert len(ends[A]) == len(ends[B]) == 1 and ends[A] != ends[B]
    op = cfn.delete_stack_instances(StackSetName=name, Accounts=[A, B, C], Regions=["us-east-1"], RetainStacks=False)["OperationId"]
    assert _wait(cfn, name, op)["Status"] == "SUCCEEDED"
    snaps = _into(local, keys, A).client("rds").describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]
    finals = [s["DBSnapshotIdentifier"] for s in snaps if s["DBSnapshotIdentifier"].startswith(f"stackset-{name}-")]
    assert len(finals) == 1 and "-snapshot-db-" in finals[0]   # <stack>-snapshot-<logical id>-<suffix>
    cfn.delete_stack_set(StackSetName=name)


def test_local_stacksets__an_account_waits_for_its_multi_az_db_cluster_as_for_an_instance(monkeypatch):
    """An account's stack is SUCCEEDED only once its databases are available: a Multi-AZ DB cluster
    (the exported template's, database.deployment=cluster) among them."""
    from awslab.local.patches import stackset_targets
    from awslab.local.patches.cfn_db_cluster import DbCluster

    monkeypatch.setattr(DbCluster, "status", property(lambda self: "creating"))
    stack = SimpleNamespace(resource_map={"DbCluster": DbCluster("alice-db")})
    assert stackset_targets._not_ready(stack) == ["alice-db (creating)"]
    monkeypatch.setattr(DbCluster, "status", property(lambda self: "available"))
    assert stackset_targets._not_ready(stack) == []


def test_local_stacksets__an_operation_whose_worker_is_gone_reads_failed_not_running():
    from awslab.local.patches import stacksets

    op = {"OperationId": "gone", "Status": "RUNNING", "EndTimestamp": None,
          "_awslab_results": {f"{A}/us-east-1": {"Status": "SUCCEEDED", "StatusReason": None},
                              f"{B}/us-east-1": {"Status": "RUNNING", "StatusReason": None}}}
    assert stacksets.alive(op) is False
    assert op["Status"] == "FAILED" and op["EndTimestamp"] is not None
    assert op["_awslab_results"][f"{A}/us-east-1"]["Status"] == "SUCCEEDED"
    assert op["_awslab_results"][f"{B}/us-east-1"] == {
        "Status": "FAILED", "StatusReason": "The operation stopped with the local AWS; run it again"}


BAD = {
    "no targets": ((), "give --accounts A,B,... or --ou OU-ID"),
    "both": (("--accounts", A, "--ou", "ou-ab12-cd34ef56"), "give --accounts A,B,... or --ou OU-ID"),
    "short account": (("--accounts", "12345"), "'12345' is not an AWS account id"),
    "twice": (("--accounts", f"{A},{A}"), "listed twice"),
    "bad ou": (("--ou", "engineering"), "'engineering' is not an organizational unit id"),
    "bad region": (("--accounts", A, "--regions", "mars-1"), "'mars-1' is not a region name"),
    "concurrency": (("--accounts", A, "--max-concurrent", "0"), "--max-concurrent 0 is out of range"),
    "count": (("--accounts", A, "--count", "3"), "--count, --roster, --ttl and --expires-at do not apply"),
}


@pytest.mark.parametrize("args,says", BAD.values(), ids=BAD.keys())
def test_class_up_stackset__bad_input_exit_2_one_line_nothing_made(awslab, local, aws, args, says):
    klass = f"c{uuid.uuid4().hex[:6]}"
    out = awslab("class", "up", "week6", "--stackset", "--class", klass, *args)
    assert out.code == 2 and says in out.err and len(out.err.strip().splitlines()) <= 2, out.err
    assert f"awslab-{klass}" not in [s["StackSetName"] for s in aws("cloudformation").list_stack_sets()["Summaries"]]


def test_class_stackset__flags_that_do_not_go_together(awslab, local):
    assert "go with --stackset" in awslab("class", "up", "week6", "--count", "2", "--accounts", A).err
    down = awslab("class", "down", "--stackset", "--class", "nope", "--skip-final-snapshot")
    assert down.code == 2 and "do not apply with --stackset" in down.err
    bad = awslab("verify", "--name", "x", "--assume-role", "admin")
    assert bad.code == 2 and "--assume-role admin is not a role ARN" in bad.err


@pytest.mark.lifecycle
@pytest.mark.engines
def test_class_on_stacksets__two_accounts_up_graded_rerun_and_down(awslab, engines, tmp_path):
    from awslab.local.manager import credentials

    klass = f"c{uuid.uuid4().hex[:6]}"
    up = awslab("class", "up", "week6", "--stackset", "--accounts", f"{A},{B}", "--class", klass,
                "--max-concurrent", "2", "--output", "json")
    assert up.code == 0, up.err
    doc = json.loads(up.out)
    assert doc["stackset"] == f"awslab-{klass}" and doc["failed"] == 0
    assert {(r["account"], r["status"]) for r in doc["accounts"]} == {(A, "CURRENT"), (B, "CURRENT")}
    assert f"up account {A} us-east-1: SUCCEEDED" in up.err and f"up account {B} us-east-1: SUCCEEDED" in up.err
    assert "StackSet role(s)" in up.err   # the local AWS's accounts get the two roles a real organisation has

    status = awslab("class", "status", "--stackset", "--class", klass)
    assert status.code == 0 and "2 of 2 accounts CURRENT" in status.out

    # A student breaks the lab in their own account (B): only B fails, on what was broken.
    keys = credentials()
    ec2 = _into(engines, keys, B, EXECUTION).client("ec2")
    groups = {g["GroupName"]: g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    ec2.revoke_security_group_ingress(GroupId=groups[f"{klass}-db"], IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": groups[f"{klass}-app"]}]}])
    csv_path = tmp_path / "grades.csv"
    graded = awslab("class", "verify", "--stackset", "--class", klass, "--csv", str(csv_path), "--output", "json")
    assert graded.code == 1, graded.err
    sheet = {r["student"]: r for r in json.loads(graded.out)["students"]}
    assert sheet[A]["grade"] == "PASS" and sheet[A]["failed"] == 0 and sheet[A]["live"] == "4/0"
    assert sheet[B]["grade"] == "FAIL" and [f.split(":")[0] for f in sheet[B]["failures"]] == ["path.app-to-db", "live.host-to-db"]
    assert csv_path.read_text().count("\n") == 3
    # The student's own view, from their account: the same lab, read from its tags.
    mine = awslab("verify", "--name", klass, "--assume-role", f"arn:aws:iam::{A}:role/{EXECUTION}", "--output", "json")
    assert mine.code == 0 and {r["status"] for r in json.loads(mine.out)} == {"PASS"}

    again = awslab("class", "up", "week6", "--stackset", "--accounts", f"{A},{B}", "--class", klass)
    assert again.code == 0 and "every account already has its stack" in again.err
    assert "updating" not in again.err   # the same template: no StackSet update

    down = awslab("class", "down", "--stackset", "--class", klass, "--output", "json")
    assert down.code == 0, down.err
    assert json.loads(down.out)["stackset_deleted"] is True
    assert {r["result"] for r in json.loads(down.out)["accounts"]} == {"removed"}
    for account in (A, B):
        inside = _into(engines, keys, account, EXECUTION)
        assert not [v for v in inside.client("ec2").describe_vpcs()["Vpcs"] if not v.get("IsDefault")]
        snaps = inside.client("rds").describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]
        assert [s["DBInstanceIdentifier"] for s in snaps] == [f"{klass}-db"]   # the final snapshot, kept
        tags = {t["Key"]: t["Value"] for t in snaps[0].get("TagList", [])}
        assert tags.get("awslab:stack") == klass
    assert awslab("class", "down", "--stackset", "--class", klass).code == 0   # nothing left: a no-op


@pytest.mark.lifecycle
def test_class_on_stacksets__an_organizational_unit_service_managed(awslab, local, aws):
    org = aws("organizations")
    try:
        org.create_organization(FeatureSet="ALL")
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "AlreadyInOrganizationException"
    root = org.list_roots()["Roots"][0]["Id"]
    ou = org.create_organizational_unit(ParentId=root, Name=f"ou{uuid.uuid4().hex[:6]}")["OrganizationalUnit"]["Id"]
    members = []
    for n in range(2):
        made = org.create_account(Email=f"s{n}-{ou}@example.com", AccountName=f"s{n}")["CreateAccountStatus"]["AccountId"]
        org.move_account(AccountId=made, SourceParentId=root, DestinationParentId=ou)
        members.append(made)
    klass = f"c{uuid.uuid4().hex[:6]}"
    up = awslab("class", "up", "week6", "--stackset", "--ou", ou, "--class", klass, "--output", "json")
    assert up.code == 0, up.err
    assert {(r["account"], r["status"]) for r in json.loads(up.out)["accounts"]} == {(m, "CURRENT") for m in members}
    assert "created (service-managed)" in up.err and "[2]" in up.err   # no total: an OU's accounts come as found
    described = aws("cloudformation").describe_stack_set(StackSetName=f"awslab-{klass}")["StackSet"]
    assert described["PermissionModel"] == "SERVICE_MANAGED"
    graded = awslab("class", "verify", "--stackset", "--class", klass, "--check", "inventory", "--output", "json")
    assert graded.code == 0 and sorted(r["student"] for r in json.loads(graded.out)["students"]) == sorted(members)
    wrong = awslab("class", "up", "week6", "--stackset", "--accounts", A, "--class", klass)
    assert wrong.code == 2 and "deploys to OUs, not accounts" in wrong.err
    down = awslab("class", "down", "--stackset", "--class", klass)
    assert down.code == 0 and "the StackSet is deleted" in down.out


@pytest.mark.lifecycle
def test_class_on_stacksets__a_changed_setting_updates_each_account_in_place_or_says_why_not(awslab, local, aws):
    from awslab.local.manager import credentials

    klass = f"c{uuid.uuid4().hex[:6]}"
    assert awslab("class", "up", "week6", "--stackset", "--accounts", f"{A},{B}", "--class", klass).code == 0
    keys = credentials()
    # A changed setting updates the StackSet and each account's stack in place; the lab read back
    # from the tags is the new one, and verify still passes. A change the local AWS does not make in
    # place fails each account with the reason, and leaves the stacks as they were.
    changed = awslab("class", "up", "week6", "--stackset", "--accounts", f"{A},{B}", "--class", klass,
                     "--set", "database.backup_retention_days=3", "--set", "database.instance_class=db.t3.small")
    assert changed.code == 0, changed.err
    assert f"update account {A} us-east-1: SUCCEEDED" in changed.err and f"update account {B} us-east-1: SUCCEEDED" in changed.err
    dbs = _into(local, keys, A, EXECUTION).client("rds").describe_db_instances(DBInstanceIdentifier=f"{klass}-db")
    assert (dbs["DBInstances"][0]["BackupRetentionPeriod"], dbs["DBInstances"][0]["DBInstanceClass"]) == (3, "db.t3.small")
    refused = awslab("class", "up", "week6", "--stackset", "--accounts", f"{A},{B}", "--class", klass,
                     "--set", "database.backup_retention_days=3", "--set", "database.instance_class=db.t3.small",
                     "--set", "host.instance_type=t3.small", "--output", "json")
    assert refused.code == 1
    rows = {r["account"]: r for r in json.loads(refused.out)["accounts"]}
    assert {r["status"] for r in rows.values()} == {"OUTDATED"} and "AWS::EC2::Instance Host" in rows[A]["reason"]
    stacks = _into(local, keys, A, EXECUTION).client("cloudformation").describe_stacks()["Stacks"]
    assert [st["StackStatus"] for st in stacks if st["StackName"].startswith(f"StackSet-awslab-{klass}-")] == [
        "UPDATE_COMPLETE"]   # the refused update changed nothing
    mine = awslab("verify", "--name", klass, "--assume-role", f"arn:aws:iam::{A}:role/{EXECUTION}", "--check", "spec",
                  "--output", "json")
    assert mine.code == 0 and {r["status"] for r in json.loads(mine.out)} == {"PASS"}   # the lab read from the tags
    assert "database.backup_retention_days=3" in _vpc_tag(_into(local, keys, A, EXECUTION), klass)
    assert awslab("class", "down", "--stackset", "--class", klass).code == 0


def _vpc_tag(inside, klass: str) -> str:
    vpcs = inside.client("ec2").describe_vpcs(Filters=[{"Name": "tag:awslab:stack", "Values": [klass]}])["Vpcs"]
    return {t["Key"]: t["Value"] for t in vpcs[0]["Tags"]}["awslab:overrides"]

