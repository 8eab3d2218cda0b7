"""`up` converges: a stack made with other settings is changed the AWS way (ModifyDBInstance, a
replica added or deleted, a revoked rule granted again), `plan` shows each change Terraform-style
with where its value comes from, and a second `up` is a no-op. What AWS cannot change in place
(a subnet's AZ) is shown as `replace` and `up` refuses, changing nothing; AZs the region does not
have are bad input."""

from __future__ import annotations

import json

import pytest
from conftest import mutating

pytestmark = pytest.mark.lifecycle

# (lab setting, value the stack is made with, the lab's value, plan action on the resource,
#  resource key, the mutating AWS calls `up` makes)
CASES = [
    ("database.multi_az", "false", "true", "update", "db.primary", [("rds", "ModifyDBInstance")]),
    ("database.instance_class", "db.t3.small", "db.t3.micro", "update", "db.primary", [("rds", "ModifyDBInstance")]),
    ("database.backup_retention_days", "3", "7", "update", "db.primary", [("rds", "ModifyDBInstance")]),
    ("database.allocated_storage_gib", "20", "30", "update", "db.primary", [("rds", "ModifyDBInstance")]),
    ("database.read_replicas", "2", "1", "delete", "db.replica.2", [("rds", "DeleteDBInstance")]),
    ("database.read_replicas", "0", "1", "create", "db.replica.1", [("rds", "CreateDBInstanceReadReplica")]),
    ("cache.node_type", "cache.t3.small", "cache.t3.micro", "update", "cache.group",
     [("elasticache", "ModifyReplicationGroup")]),
    ("cache.automatic_failover", "false", "true", "update", "cache.group", [("elasticache", "ModifyReplicationGroup")]),
    # The parameter groups' settings: the group changed in place, the instances keep using it.
    ("database.force_ssl", "false", "true", "update", "db.parameter-group", [("rds", "ModifyDBParameterGroup")]),
    ("cache.maxmemory_policy", "allkeys-lru", "volatile-lru", "update", "cache.parameter-group",
     [("elasticache", "ModifyCacheParameterGroup")]),
]


@pytest.mark.parametrize("setting,old,new,action,key,calls", CASES, ids=[f"{c[0]}:{c[1]}->{c[2]}" for c in CASES])
def test_up_converges_a_changed_setting(awslab, local, stack, api_calls, setting, old, new, action, key, calls):
    made = awslab("up", "week6", "--name", stack, "--set", f"{setting}={old}")
    assert made.code == 0, made.err
    # The lab's default storage is the smallest: a larger size comes from this command's --set.
    lab = ["--set", f"{setting}={new}"] if setting == "database.allocated_storage_gib" else []

    plan = awslab("plan", "week6", "--name", stack, *lab, "--output", "json")
    steps = {s["key"]: s for s in json.loads(plan.out)["steps"]}
    assert steps[key]["action"] == action
    if action != "create":
        assert f"{setting}: {old} -> {new}" in steps[key]["reason"]
        where = "(--set)" if lab else f"the stack's last `up` had --set {setting}={old}"
        assert where in steps[key]["reason"], steps[key]["reason"]
    # Besides the resource, the stack's record on its VPC says which --set the stack is built with now.
    changed = {s["key"]: s["reason"] for s in json.loads(plan.out)["steps"] if s["action"] != "keep"}
    assert set(changed) == {key, "network.vpc"}
    assert changed["network.vpc"] == f"stack record: overrides {json.dumps([f'{setting}={new}'], separators=(',', ':')) if lab else '(none)'}"

    api_calls.clear()
    up = awslab("up", "week6", "--name", stack, *lab)
    assert up.code == 0, up.err
    assert sorted(mutating(api_calls)) == sorted(calls + [("ec2", "CreateTags" if lab else "DeleteTags")])
    verify = awslab("verify", "--name", stack, "--output", "json")
    assert verify.code == 0, [c for c in json.loads(verify.out) if c["status"] == "FAIL"]

    api_calls.clear()
    again = awslab("up", "week6", "--name", stack, *lab)
    assert again.code == 0 and "(0 changed)" in again.err
    assert mutating(api_calls) == []
    assert awslab("down", "--name", stack, "--yes", "--skip-final-snapshot").code == 0


def test_up_grants_a_revoked_rule_again(awslab, aws, stack, api_calls):
    assert awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0").code == 0
    ec2 = aws("ec2")
    groups = {g["GroupName"]: g for g in ec2.describe_security_groups(
        Filters=[{"Name": "tag:awslab:stack", "Values": [stack]}])["SecurityGroups"]}
    cache_sg = next(g for n, g in groups.items() if n.endswith("cache"))
    app_sg = next(g for n, g in groups.items() if n.endswith("app"))
    rule = next(p for p in cache_sg["IpPermissions"] if p.get("FromPort") == 6379
                and [g["GroupId"] for g in p.get("UserIdGroupPairs", [])] == [app_sg["GroupId"]])
    ec2.revoke_security_group_ingress(GroupId=cache_sg["GroupId"], IpPermissions=[rule])
    plan = json.loads(awslab("plan", "week6", "--name", stack, "--set", "database.read_replicas=0", "--output", "json").out)
    assert [(s["key"], s["action"]) for s in plan["steps"] if s["action"] != "keep"] == [("sg.rules", "update")]
    api_calls.clear()
    assert awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0").code == 0
    assert mutating(api_calls) == [("ec2", "AuthorizeSecurityGroupIngress")]
    assert awslab("verify", "--name", stack).code == 0
    assert awslab("down", "--name", stack, "--yes", "--skip-final-snapshot").code == 0


def test_a_subnet_in_another_az__replace_shown_and_up_refuses_changing_nothing(awslab, local, stack, api_calls):
    made = awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0",
                  "--set", "network.availability_zones=us-east-1a,us-east-1b")
    assert made.code == 0, made.err
    moved = ["--set", "database.read_replicas=0", "--set", "network.availability_zones=us-east-1a,us-east-1c"]
    plan = json.loads(awslab("plan", "week6", "--name", stack, *moved, "--output", "json").out)
    replace = [(s["key"], s["reason"]) for s in plan["steps"] if s["action"] == "replace"]
    assert replace == [("network.subnet.private-b", "in us-east-1b, the lab wants us-east-1c (AWS cannot move a subnet)")]
    api_calls.clear()
    up = awslab("up", "week6", "--name", stack, *moved)
    assert up.code == 1 and "nothing was changed" in up.err and "awslab down" in up.err
    assert mutating(api_calls) == []
    assert awslab("down", "--name", stack, "--yes", "--skip-final-snapshot").code == 0


def test_an_az_the_region_does_not_have__bad_input_nothing_created(awslab, local, stack, api_calls):
    bad = awslab("up", "week6", "--name", stack, "--set", "network.availability_zones=us-east-1a,us-east-1z")
    assert bad.code == 2 and "us-east-1z is not an availability zone of us-east-1" in bad.err
    assert len(bad.err.strip().splitlines()) == 1
    assert mutating(api_calls) == []


def test_a_changed_cache_replica_count__shown_as_replace_and_up_refuses(awslab, local, stack, api_calls):
    assert awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0", "--set", "cache.replicas=2").code == 0
    plan = json.loads(awslab("plan", "week6", "--name", stack, "--set", "database.read_replicas=0", "--output", "json").out)
    record, step = [s for s in plan["steps"] if s["action"] != "keep"]
    assert (record["key"], record["reason"]) == ("network.vpc", 'stack record: overrides ["database.read_replicas=0"]')
    assert (step["key"], step["action"]) == ("cache.group", "replace") and "cache.replicas: 2 -> 1" in step["reason"]
    api_calls.clear()
    up = awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0")
    assert up.code == 1 and "nothing was changed" in up.err and mutating(api_calls) == []
    assert awslab("down", "--name", stack, "--yes", "--skip-final-snapshot").code == 0
