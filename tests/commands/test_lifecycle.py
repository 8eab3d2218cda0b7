"""The whole lifecycle through the real CLI against the real local AWS server, checked with boto3."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from conftest import ec2_tagged, interrupt_when, mutating, stack_tagged, tags_of

pytestmark = pytest.mark.lifecycle


def test_up_status_down__builds_the_lab_as_specified_and_leaves_only_the_final_snapshot(awslab, aws, stack):
    up = awslab("up", "week6", "--name", stack, "--output", "json")
    assert up.code == 0, up.err
    summary = json.loads(up.out)
    assert {r["key"] for r in summary["resources"]} >= {"network.vpc", "db.primary", "db.replica.1", "cache.group", "host.instance"}
    assert summary["estimated_hourly_usd"] > 0

    ec2_items = ec2_tagged(aws, stack)
    (vpc,) = ec2_items["vpcs"]
    assert vpc["CidrBlock"] == "10.60.0.0/16"
    assert tags_of(vpc["Tags"])["awslab:lab"] == "week6"
    subnets = {tags_of(s["Tags"])["awslab:resource"]: s for s in ec2_items["subnets"]}
    assert subnets["network.subnet.public"]["CidrBlock"] == "10.60.0.0/24"
    private_azs = {subnets[k]["AvailabilityZone"] for k in ("network.subnet.private-a", "network.subnet.private-b")}
    assert len(private_azs) == 2
    (igw,) = ec2_items["igws"]
    assert igw["Attachments"][0]["VpcId"] == vpc["VpcId"]
    (rt,) = ec2_items["route_tables"]
    assert any(r.get("DestinationCidrBlock") == "0.0.0.0/0" and r.get("GatewayId") == igw["InternetGatewayId"] for r in rt["Routes"])
    assert [a["SubnetId"] for a in rt["Associations"] if a.get("SubnetId")] == [subnets["network.subnet.public"]["SubnetId"]]

    groups = {tags_of(g["Tags"])["awslab:resource"]: g for g in ec2_items["groups"]}
    app, db_sg, cache_sg = groups["sg.app"], groups["sg.db"], groups["sg.cache"]
    assert app["GroupName"] == f"{stack}-app"
    assert app["IpPermissions"] == []  # no SSH unless asked
    (db_in,) = db_sg["IpPermissions"]
    assert (db_in["FromPort"], db_in["ToPort"]) == (5432, 5432)
    assert [p["GroupId"] for p in db_in["UserIdGroupPairs"]] == [app["GroupId"]] and db_in["IpRanges"] == []
    (cache_in,) = cache_sg["IpPermissions"]
    assert (cache_in["FromPort"], [p["GroupId"] for p in cache_in["UserIdGroupPairs"]]) == (6379, [app["GroupId"]])
    egress = {(p.get("FromPort"), tuple(g["GroupId"] for g in p["UserIdGroupPairs"]), tuple(r["CidrIp"] for r in p["IpRanges"]))
              for p in app["IpPermissionsEgress"]}
    assert egress == {(5432, (db_sg["GroupId"],), ()), (6379, (cache_sg["GroupId"],), ()), (443, (), ("0.0.0.0/0",))}

    (inst,) = ec2_items["instances"]
    assert inst["InstanceType"] == "t3.micro"
    assert inst["MetadataOptions"]["HttpTokens"] == "required"
    assert inst["SubnetId"] == subnets["network.subnet.public"]["SubnetId"]
    profile = aws("iam").get_instance_profile(InstanceProfileName=f"awslab-{stack}-us-east-1-host")["InstanceProfile"]
    assert inst["IamInstanceProfile"]["Arn"] == profile["Arn"]
    role = profile["Roles"][0]["RoleName"]
    attached = [p["PolicyArn"] for p in aws("iam").list_attached_role_policies(RoleName=role)["AttachedPolicies"]]
    assert attached == ["arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"]

    rds = aws("rds")
    primary = rds.describe_db_instances(DBInstanceIdentifier=f"{stack}-db")["DBInstances"][0]
    assert (primary["Engine"], primary["EngineVersion"].split(".")[0]) == ("postgres", "16")
    assert primary["DBInstanceClass"] == "db.t3.micro" and primary["AllocatedStorage"] == 20
    assert primary["StorageType"] == "gp3" and primary["MultiAZ"] and primary["StorageEncrypted"]
    assert primary["BackupRetentionPeriod"] == 7 and not primary["PubliclyAccessible"]
    assert primary["MasterUserSecret"]["SecretArn"] and not primary["DeletionProtection"]
    assert [g["VpcSecurityGroupId"] for g in primary["VpcSecurityGroups"]] == [db_sg["GroupId"]]
    assert tags_of(primary["TagList"])["awslab:stack"] == stack
    replica = rds.describe_db_instances(DBInstanceIdentifier=f"{stack}-db-replica-1")["DBInstances"][0]
    assert replica["ReadReplicaSourceDBInstanceIdentifier"] == f"{stack}-db"
    assert not replica["PubliclyAccessible"]

    ec = aws("elasticache")
    group = ec.describe_replication_groups(ReplicationGroupId=f"{stack}-cache")["ReplicationGroups"][0]
    assert group["AutomaticFailover"] == "enabled" and group["CacheNodeType"] == "cache.t3.micro"
    assert group["TransitEncryptionEnabled"] and group["AtRestEncryptionEnabled"] and group["AuthTokenEnabled"]
    assert tags_of(ec.list_tags_for_resource(ResourceName=group["ARN"])["TagList"])["awslab:stack"] == stack

    status = awslab("status")  # no --name: the remembered stack
    assert status.code == 0, status.err
    for key in ("network.vpc", "sg.rules", "host.instance", "db.primary", "db.replica.1", "cache.group"):
        assert key in status.out
    assert f"stack {stack}" in status.out and "20 resources" in status.out

    down = awslab("down", "--yes")
    assert down.code == 0, down.err
    assert "kept 1 snapshot," in down.out and "-final-" in down.out
    assert all(not v for v in ec2_tagged(aws, stack).values())
    leftovers = stack_tagged(aws, stack)
    assert len(leftovers) == 1 and ":snapshot:" in leftovers[0], leftovers
    snap = rds.describe_db_snapshots(DBSnapshotIdentifier=leftovers[0].split(":")[-1])["DBSnapshots"][0]
    assert snap["DBInstanceIdentifier"] == f"{stack}-db"
    with pytest.raises(aws("iam").exceptions.NoSuchEntityException):
        aws("iam").get_instance_profile(InstanceProfileName=f"awslab-{stack}-us-east-1-host")

    again = awslab("down", "--yes")
    assert again.code == 0 and "nothing to delete" in again.err


def test_up_twice__second_run_sends_no_mutating_request(awslab, local, stack, api_calls):
    assert awslab("up", "week6", "--name", stack).code == 0
    api_calls.clear()
    second = awslab("up", "week6", "--name", stack)
    assert second.code == 0, second.err
    assert mutating(api_calls) == []
    # Discovery reads each area once, not once per resource: 15 calls for the 18 resources of
    # before, and one more per parameter group (its parameters; the group itself and its tags come
    # from the tagging index that discovery reads anyway).
    assert len(api_calls) <= 17, sorted(api_calls)
    assert awslab("down", "--yes", "--skip-final-snapshot").code == 0


def test_down__spares_untagged_and_foreign_resources(awslab, aws, stack):
    other = stack + "x"
    ec2 = aws("ec2")
    untagged_vpc = ec2.create_vpc(CidrBlock="10.60.0.0/16")["Vpc"]["VpcId"]
    # Same names awslab would use, no tags: a look-alike that must survive.
    sg = ec2.create_security_group(GroupName=f"{stack}-app", Description="not awslab's", VpcId=untagged_vpc)["GroupId"]
    assert awslab("up", "week6", "--name", other).code == 0
    assert awslab("up", "week6", "--name", stack).code == 0

    assert awslab("down", "--name", stack, "--yes").code == 0

    assert ec2.describe_vpcs(VpcIds=[untagged_vpc])["Vpcs"]
    assert ec2.describe_security_groups(GroupIds=[sg])["SecurityGroups"]
    assert aws("rds").describe_db_instances(DBInstanceIdentifier=f"{other}-db")["DBInstances"]
    assert len([a for a in stack_tagged(aws, other) if ":snapshot:" not in a]) >= 10
    assert awslab("down", "--name", other, "--yes", "--skip-final-snapshot").code == 0


def test_dry_run_and_plan__show_the_plan_and_create_nothing(awslab, aws, stack, api_calls):
    plan = awslab("plan", "week6", "--name", stack)
    assert plan.code == 0, plan.err
    assert "create  db.replica.1" in plan.out and "20 to create" in plan.out
    dry = awslab("up", "week6", "--name", stack, "--dry-run", "--output", "json")
    steps = json.loads(dry.out)["steps"]
    assert {s["action"] for s in steps} == {"create"}
    assert next(s for s in steps if s["key"] == "db.replica.1")["depends_on"] == ["db.primary", "db.parameter-group"]
    assert mutating(api_calls) == []
    assert stack_tagged(aws, stack) == []


def test_secrets__never_printed_logged_nor_written_to_the_state_dir(awslab, aws, local, stack, aws_sandbox):
    # Real processes, so every byte they write (logging included) is captured.
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "awslab", *args], capture_output=True, text=True, timeout=300)

    outputs = [cli("up", "week6", "--name", stack, "--debug"), cli("status", "--output", "json", "--debug")]
    assert outputs[0].returncode == 0, outputs[0].stderr
    assert "CreateReplicationGroup" in outputs[0].stderr  # the debug log did run
    sm = aws("secretsmanager")
    token = sm.get_secret_value(SecretId=f"awslab/{stack}/cache-auth-token")["SecretString"]
    primary = aws("rds").describe_db_instances(DBInstanceIdentifier=f"{stack}-db")["DBInstances"][0]
    password = json.loads(sm.get_secret_value(SecretId=primary["MasterUserSecret"]["SecretArn"])["SecretString"])["password"]
    outputs.append(cli("down", "--yes", "--debug"))
    files = "".join(p.read_text(errors="replace") for p in aws_sandbox.rglob("*") if p.is_file())
    for secret in (token, password):
        assert len(secret) >= 8
        for result in outputs:
            assert secret not in result.stdout + result.stderr
        assert secret not in files


def _events(progress: str) -> list[tuple[float, str, str]]:
    """(seconds, verb, resource key) for each progress line."""
    out = []
    for line in progress.splitlines():
        m = re.match(r"\[\s*([\d.]+)s\] (\S+)\s+(\S+?):?\s", line)
        if m:
            out.append((float(m.group(1)), m.group(2), m.group(3)))
    return out


def _first(events, verb, key):
    return next(t for t, v, k in events if v == verb and k == key)


def test_realistic_latency__up_waits_in_dependency_order_and_down_sees_deleting(awslab, aws, stack, latency, api_calls):
    latency("realistic", 0.005)
    up = awslab("up", "week6", "--name", stack)
    assert up.code == 0, up.err
    ev = _events(up.err)
    db_states = [line for line in up.err.splitlines() if "waiting" in line and "db.primary" in line]
    assert any("is creating" in line for line in db_states) and any("is backing-up" in line for line in db_states), db_states
    # The replica starts only once the primary is available.
    assert _first(ev, "creating", "db.replica.1") >= _first(ev, "created", "db.primary")
    # Host, database and cache progress at the same time.
    for a, b in (("db.primary", "cache.group"), ("db.primary", "host.instance"), ("cache.group", "host.instance")):
        assert _first(ev, "creating", a) < _first(ev, "created", b) and _first(ev, "creating", b) < _first(ev, "created", a)

    latency("realistic,ec2.eni-drain=1.5", 0.005)
    api_calls.clear()
    down = awslab("down", "--yes")
    assert down.code == 0, down.err
    assert re.search(r"waiting\s+db.primary: .* is deleting", down.err) and re.search(r"waiting\s+cache.group: .* is deleting", down.err)
    # The host's network interface drains after termination: its group's delete is retried until it succeeds.
    assert [op for _, op in api_calls].count("DeleteSecurityGroup") > 3
    # As on AWS, the terminated host stays visible for a while (the profile's retention); nothing else is left.
    leftovers = stack_tagged(aws, stack)
    hosts = [a.rsplit("/", 1)[1] for a in leftovers if ":instance/" in a]
    assert [a for a in leftovers if ":instance/" not in a and ":snapshot:" not in a] == []
    assert len([a for a in leftovers if ":snapshot:" in a]) == 1
    if hosts:
        states = [i["State"]["Name"] for r in aws("ec2").describe_instances(InstanceIds=hosts)["Reservations"] for i in r["Instances"]]
        assert set(states) == {"terminated"}


def test_ctrl_c_during_up__stops_cleanly_says_what_was_in_flight_and_a_rerun_converges(awslab, aws, local, stack, latency):
    latency("realistic", 0.01)
    code, err = interrupt_when(["up", "week6", "--name", stack], lambda line: "waiting" in line and "db.primary" in line)
    assert code == 130, err
    assert "in flight:" in err and "db.primary" in err.split("in flight:")[-1]
    assert "rerun the same command" in err
    latency("instant")
    again = awslab("up", "week6", "--name", stack)
    assert again.code == 0, again.err
    rds = aws("rds")
    mine = [d for d in rds.describe_db_instances()["DBInstances"] if d["DBInstanceIdentifier"].startswith(f"{stack}-")]
    assert sorted(d["DBInstanceIdentifier"] for d in mine) == [f"{stack}-db", f"{stack}-db-replica-1"]
    vpcs = aws("ec2").describe_vpcs(Filters=[{"Name": "tag:awslab:stack", "Values": [stack]}])["Vpcs"]
    assert len(vpcs) == 1
    assert awslab("down", "--name", stack, "--yes", "--skip-final-snapshot").code == 0


def test_up__a_look_alike_with_the_stacks_name_but_not_its_tags_is_refused_and_left_alone(awslab, aws, local, stack):
    ec2, rds = aws("ec2"), aws("rds")
    vpc = ec2.create_vpc(CidrBlock="10.70.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.70.{i}.0/24", AvailabilityZone=f"us-east-1{z}")["Subnet"]["SubnetId"]
               for i, z in ((1, "a"), (2, "b"))]
    rds.create_db_subnet_group(DBSubnetGroupName=f"{stack}-db", DBSubnetGroupDescription="someone else's", SubnetIds=subnets)
    up = awslab("up", "week6", "--name", stack)
    assert up.code == 1
    assert f"DB subnet group {stack}-db exists but is not stack {stack}'s" in up.err
    group = rds.describe_db_subnet_groups(DBSubnetGroupName=f"{stack}-db")["DBSubnetGroups"][0]
    assert group["DBSubnetGroupDescription"] == "someone else's" and group["VpcId"] == vpc
    assert awslab("down", "--name", stack, "--yes").code == 0
    assert rds.describe_db_subnet_groups(DBSubnetGroupName=f"{stack}-db")["DBSubnetGroups"]


def test_plan__the_cost_is_the_regions__and_what_no_source_prices_there_is_named(awslab, local, stack):
    """Issue 25: us-east-1, sa-east-1 and ap-southeast-2 all said $0.115/hour."""
    def plan(region):
        out = awslab("plan", "week6", "--name", stack, "--region", region, "--output", "json")
        assert out.code == 0, out.err
        return json.loads(out.out)

    virginia, sao_paulo = plan("us-east-1"), plan("sa-east-1")
    assert virginia["estimated_hourly_usd"] == 0.1148 and virginia["cost_complete"] and virginia["not_priced"] == []
    assert sao_paulo["estimated_hourly_usd"] > virginia["estimated_hourly_usd"] and not sao_paulo["cost_complete"]
    assert "EBS gp3 8 GiB (host)" in sao_paulo["not_priced"] and "EC2 t3.micro host" not in sao_paulo["not_priced"]
    text = awslab("plan", "week6", "--name", stack, "--region", "ap-southeast-2").out
    assert "estimated cost once up in ap-southeast-2: $" in text and "(not priced in ap-southeast-2: EBS gp3 8 GiB" in text
