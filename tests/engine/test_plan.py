"""Planning with no AWS at all: desired resources, create/keep/update, teardown order."""

from __future__ import annotations

from awslab.aws.kinds import KINDS
from awslab.aws.parameters import CACHE_PARAMETERS, DB_PARAMETERS, values
from awslab.aws.security_groups import desired_rules
from awslab.spec.model import CREATE, DELETE, KEEP, REPLACE, UPDATE, Found
from awslab.engine.plan import plan_down, plan_up
from awslab.spec.lab import load_lab
from awslab.spec.topology import desired


def _found_all(items):
    ids = {"network.vpc": "vpc-1", "network.igw": "igw-1", "network.subnet.public": "subnet-p"}
    out = {}
    for d in items:
        attrs = {}
        if d.kind == "vpc":
            attrs = {"tags": {"awslab:vpc-dns": "enabled"}}
        elif d.kind == "internet-gateway":
            attrs = {"vpcs": ["vpc-1"]}
        elif d.kind == "route-table":
            attrs = {"routes": {"0.0.0.0/0": "igw-1"}, "associations": {"subnet-p": "rtbassoc-1"}}
        elif d.kind == "security-group-rules":
            attrs = {"rules": desired_rules(d.spec)}
        elif d.kind == "instance-profile":
            attrs = {"roles": [d.name], "policies": list(d.spec["managed_policy_arns"]), "inline": ["awslab-read-lab-secrets"]}
        elif d.kind == "db-parameter-group":
            attrs = {"raw": values(DB_PARAMETERS[d.spec["database"].engine], d.spec["database"])}
        elif d.kind == "cache-parameter-group":
            attrs = {"raw": values(CACHE_PARAMETERS, d.spec["cache"])}
        out[d.key] = Found(d.key, d.kind, ids.get(d.key, d.name), "available", attrs=attrs)
    return out


def test_plan_up__a_vpc_whose_dns_settings_were_never_confirmed_is_completed():
    items = desired(load_lab("week6"), "s", "us-east-1")
    found = _found_all(items)
    found["network.vpc"].attrs["tags"] = {}   # killed between CreateVpc and ModifyVpcAttribute
    (step,) = [s for s in plan_up("s", items, found, KINDS).steps if s.action != KEEP]
    assert (step.key, step.action) == ("network.vpc", "update")


def test_desired__is_pure_and_names_derive_from_the_stack():
    lab = load_lab("week6")
    a, b = desired(lab, "one", "us-east-1"), desired(lab, "one", "us-east-1")
    assert a == b
    names = {d.key: d.name for d in desired(lab, "two", "eu-west-1")}
    assert names["db.primary"] == "two-db" and names["db.replica.1"] == "two-db-replica-1"
    assert names["cache.group"] == "two-cache" and names["host.profile"] == "awslab-two-eu-west-1-host"
    assert len(a) == 20   # with the two parameter groups


def test_desired__replica_count_follows_the_lab():
    keys = {d.key for d in desired(load_lab("week6", overrides=["database.read_replicas=2"]), "s", "us-east-1")}
    assert {"db.replica.1", "db.replica.2"} <= keys
    keys = {d.key for d in desired(load_lab("week6", overrides=["database.read_replicas=0"]), "s", "us-east-1")}
    assert not any(k.startswith("db.replica") for k in keys)


def test_plan_up__nothing_found__creates_everything_with_dependencies():
    items = desired(load_lab("week6"), "s", "us-east-1")
    plan = plan_up("s", items, {}, KINDS)
    assert {s.action for s in plan.steps} == {CREATE}
    deps = {s.key: s.deps for s in plan.steps}
    assert deps["db.replica.1"] == ("db.primary", "db.parameter-group")
    assert "db.parameter-group" in deps["db.primary"] and "cache.parameter-group" in deps["cache.group"]
    assert "cache.group" not in deps["db.primary"] and "db.primary" not in deps["cache.group"]
    assert set(deps["host.instance"]) >= {"sg.app", "host.profile", "network.subnet.public"}


def test_plan_up__everything_found__keeps_everything():
    items = desired(load_lab("week6"), "s", "us-east-1")
    plan = plan_up("s", items, _found_all(items), KINDS)
    assert {s.action for s in plan.steps} == {KEEP} and plan.mutating == ()


def test_plan_up__a_promoted_replica_holding_the_replica_name__is_shown_as_replace_never_created():
    items = desired(load_lab("week6"), "s", "us-east-1")
    found = _found_all(items)
    replica = found.pop("db.replica.1")
    found["db.promoted.s-db-replica-1"] = Found("db.promoted.s-db-replica-1", "db-instance", replica.id, "available")
    step = {s.key: s for s in plan_up("s", items, found, KINDS).steps}["db.replica.1"]
    assert step.action == REPLACE and "held by the stack's db.promoted.s-db-replica-1" in step.reason
    other = plan_up("s", items, {**found, "db.promoted.s-db-replica-1": Found(
        "db.promoted.s-db-replica-1", "db-instance", "another-name", "available")}, KINDS)
    assert {s.key: s for s in other.steps}["db.replica.1"].action == CREATE
    # A DB subnet group shares the primary's name, in another namespace: the primary is made.
    only_group = {"db.subnet-group": Found("db.subnet-group", "db-subnet-group", "s-db", "Complete")}
    assert {s.key: s for s in plan_up("s", items, only_group, KINDS).steps}["db.primary"].action == CREATE


def test_plan_up__half_made_resources__are_completed():
    items = desired(load_lab("week6", overrides=["host.ssh_cidr=203.0.113.10/32"]), "s", "us-east-1")
    found = _found_all(desired(load_lab("week6"), "s", "us-east-1"))
    found["network.igw"].attrs["vpcs"] = []
    plan = {s.key: s for s in plan_up("s", items, found, KINDS).steps}
    assert plan["network.igw"].action == UPDATE and "not attached" in plan["network.igw"].reason
    assert plan["sg.rules"].action == UPDATE and "tcp/22 from 203.0.113.10/32" in plan["sg.rules"].reason


def test_plan_up__a_rule_opened_by_hand__is_reported_as_not_declared():
    items = desired(load_lab("week6"), "s", "us-east-1")
    found = _found_all(items)
    from awslab.aws.security_groups import Rule

    found["sg.rules"].attrs["rules"] = found["sg.rules"].attrs["rules"] | {Rule("sg.db", "ingress", "tcp", 5432, 5432, "0.0.0.0/0")}
    step = next(s for s in plan_up("s", items, found, KINDS).steps if s.key == "sg.rules")
    assert step.action == UPDATE and "not declared sg.db ingress tcp/5432 from 0.0.0.0/0" in step.reason


def test_plan_down__deletes_dependents_first():
    items = desired(load_lab("week6"), "s", "us-east-1")
    plan = {s.key: s for s in plan_down("s", _found_all(items)).steps}
    assert {s.action for s in plan.values()} == {DELETE}
    # A step's deps are what must be deleted before it.
    assert "db.replica.1" in plan["db.primary"].deps
    assert {"db.primary", "db.replica.1"} <= set(plan["db.subnet-group"].deps) | set(plan["db.primary"].deps)
    assert "cache.group" in plan["cache.subnet-group"].deps and "cache.group" in plan["cache.auth-token"].deps
    assert "sg.rules" in plan["sg.app"].deps and "host.instance" in plan["sg.app"].deps
    assert "db.primary" in plan["sg.db"].deps and "cache.group" in plan["sg.cache"].deps
    assert "host.instance" in plan["host.profile"].deps
    assert "network.routes.public" in plan["network.igw"].deps
    assert {"network.igw", "network.subnet.public", "sg.app"} <= set(plan["network.vpc"].deps)


def test_plan_down__a_restored_cluster_goes_before_the_cluster_parameter_group_a_restored_instance_before_its_group():
    found = {k: Found(k, kind, k, "available") for k, kind in (
        ("db.cluster-parameter-group", "db-cluster-parameter-group"), ("db.parameter-group", "db-parameter-group"),
        ("db.subnet-group", "db-subnet-group"), ("db.restored.c", "db-cluster"), ("db.restored.i", "db-instance"))}
    plan = {s.key: s for s in plan_down("s", found).steps}
    assert plan["db.cluster-parameter-group"].deps == ("db.restored.c",)
    assert plan["db.parameter-group"].deps == ("db.restored.i",)
    assert set(plan["db.subnet-group"].deps) == {"db.restored.c", "db.restored.i"}


def test_plan_down__only_what_was_found():
    found = {"network.vpc": Found("network.vpc", "vpc", "vpc-1", "available"),
             "db.subnet-group": Found("db.subnet-group", "db-subnet-group", "s-db", "Complete")}
    plan = plan_down("s", found)
    assert [s.key for s in plan.steps] == ["db.subnet-group", "network.vpc"]
    assert all(s.deps == () for s in plan.steps)


def test_ownership__the_tagging_index_is_a_shortcut_never_the_last_word(monkeypatch):
    from awslab.aws import _common as tagging

    asked = []
    monkeypatch.setattr(tagging, "stack_arns", lambda run: frozenset({"arn:indexed"}))
    run = type("R", (), {"stack": "s"})()

    def tags_of(arn):
        asked.append(arn)
        return {"awslab:stack": "s"} if arn == "arn:fresh" else {"awslab:stack": "other"}

    assert tagging.owned(run, "arn:indexed", tags_of) and asked == []
    assert tagging.owned(run, "arn:fresh", tags_of)          # made seconds ago, not indexed yet
    assert not tagging.owned(run, "arn:foreign", tags_of)
    assert asked == ["arn:fresh", "arn:foreign"]


def test_plan_snapshot__the_copy_waits_for_the_db_snapshot_and_the_cache_snapshot_for_nothing():
    from awslab.engine.plan import plan_snapshot

    primary, group = Found("db.primary", "db-instance", "s-db", "available"), Found("cache.group", "replication-group", "s-cache", "available")
    steps = {s.key: s for s in plan_snapshot("s", "s-20261202-000000", "us-east-1", primary, group, copy_to="us-west-2").steps}
    assert set(steps) == {"snapshot.db.us-east-1.s-20261202-000000", "snapshot.db.us-west-2.s-20261202-000000",
                          "snapshot.cache.us-east-1.s-20261202-000000"}
    assert steps["snapshot.db.us-west-2.s-20261202-000000"].deps == ("snapshot.db.us-east-1.s-20261202-000000",)
    assert steps["snapshot.cache.us-east-1.s-20261202-000000"].deps == ()
    assert {s.action for s in steps.values()} == {CREATE}
    assert [s.key for s in plan_snapshot("s", "n", "us-east-1", None, group).steps] == ["snapshot.cache.us-east-1.n"]


def test_plan_restore__creates_once_then_keeps_what_a_rerun_finds():
    from awslab.spec.model import Desired
    from awslab.engine.plan import plan_restore

    d = Desired("db.restored.r1", "db-restore", "r1", (), {"snapshot": "snap"})
    assert plan_restore("s", d, {}).steps[0].action == CREATE
    made = Found("db.restored.r1", "db-instance", "r1", "creating")
    (step,) = plan_restore("s", d, {"db.restored.r1": made}).steps
    assert step.action == KEEP and step.found is made


def test_plan_delete_snapshots__leaves_automated_ones_to_their_instance():
    from awslab.engine.plan import plan_delete_snapshots

    snaps = [Found("a", "db-snapshot", "manual-1", "available", attrs={"type": "manual"}),
             Found("b", "db-snapshot", "rds:auto", "available", attrs={"type": "automated"}),
             Found("c", "db-snapshot-copy", "copy-1", "available", attrs={"type": "manual"})]
    steps = plan_delete_snapshots("s", snaps).steps
    assert [(s.key, s.kind, s.action) for s in steps] == [("a", "db-snapshot", DELETE), ("c", "db-snapshot", DELETE)]


def test_plan_failover__one_failover_step_on_the_target():
    from awslab.spec.model import FAILOVER, MUTATING_ACTIONS
    from awslab.engine.plan import plan_failover

    target = Found("db.primary", "db-instance", "s-db", "available")
    (step,) = plan_failover("s", target).steps
    assert (step.key, step.kind, step.action, step.found) == ("db.primary", "db-instance", FAILOVER, target)
    assert FAILOVER in MUTATING_ACTIONS


def test_plan_host_command__one_create_step_carrying_the_script_not_a_secret():
    from awslab.engine.plan import plan_host_command

    (step,) = plan_host_command("s", "i-0abc", "echo AWSLAB", "awslab verify s").steps
    assert (step.kind, step.action, step.deps) == ("host-command", CREATE, ())
    assert step.desired.spec == {"instance": "i-0abc", "script": "echo AWSLAB"}
    assert step.desired.name == "awslab verify s"


def test_plan_up__settings_aws_changes_in_place__update_with_old_and_new():
    items = desired(load_lab("week6"), "s", "us-east-1")
    found = _found_all(items)
    found["db.primary"] = Found("db.primary", "db-instance", "s-db", "available", attrs={"raw": {
        "MultiAZ": False, "DBInstanceClass": "db.t3.small", "AllocatedStorage": 50, "StorageType": "gp3",
        "BackupRetentionPeriod": 7, "DeletionProtection": False}})
    step = next(s for s in plan_up("s", items, found, KINDS).steps if s.key == "db.primary")
    # Storage only grows on AWS: 50 GiB found, 20 wanted is not a change `up` tries.
    assert (step.action, step.reason) == (UPDATE, "database.multi_az: false -> true; database.instance_class: "
                                                  "db.t3.small -> db.t3.micro")


def test_plan_up__fewer_replicas__the_extra_ones_deleted_and_a_moved_subnet_replaced():
    from awslab.spec.model import REPLACE

    items = desired(load_lab("week6"), "s", "us-east-1")
    found = _found_all(desired(load_lab("week6", overrides=["database.read_replicas=3"]), "s", "us-east-1"))
    found["network.subnet.private-a"] = Found("network.subnet.private-a", "subnet", "subnet-a", "available",
                                              attrs={"cidr": "10.60.10.0/24", "az": "us-east-1a", "vpc": "vpc-1"})
    found["network.subnet.private-b"] = Found("network.subnet.private-b", "subnet", "subnet-b", "available",
                                              attrs={"cidr": "10.60.11.0/24", "az": "us-east-1a", "vpc": "vpc-1"})
    plan = {s.key: s for s in plan_up("s", items, found, KINDS).steps}
    assert [(k, s.reason) for k, s in plan.items() if s.action == DELETE] == [
        ("db.replica.2", "database.read_replicas: 3 -> 1"), ("db.replica.3", "database.read_replicas: 3 -> 1")]
    assert plan["network.subnet.private-b"].action == REPLACE
    assert "must span two AZs" in plan["network.subnet.private-b"].reason
    assert plan["network.subnet.private-a"].action == KEEP
    assert REPLACE not in {s.action for s in plan_up("s", items, found, KINDS).mutating}


def test_a_set_setting_goes_from_the_lab_to_modify_db_instance_through_the_table_once(monkeypatch):
    """--set database.multi_az=false on a Multi-AZ primary: the plan carries a structured Change
    (setting, old, new, where the new value comes from), computed once; the executor hands exactly
    that change to ModifyDBInstance, not a diff made again (nor a string read back)."""
    from awslab.aws import database
    from awslab.commands.lifecycle import with_sources
    from awslab.engine import executor
    from awslab.spec import model

    lab = load_lab("week6", overrides=["database.multi_az=false"])
    items = desired(lab, "s", "us-east-1")
    found = _found_all(items)
    found["db.primary"] = Found("db.primary", "db-instance", "s-db", "available", attrs={"raw": {
        "MultiAZ": True, "DBInstanceClass": "db.t3.micro", "AllocatedStorage": 20, "StorageType": "gp3",
        "BackupRetentionPeriod": 7, "DeletionProtection": False}})
    diffs = []
    real_diff = model.changes_in_place
    monkeypatch.setattr(database, "changes_in_place", lambda *a: diffs.append(a[0]) or real_diff(*a))
    plan = with_sources(plan_up("s", items, found, KINDS), lab, ["database.multi_az=false"], [])
    step = next(s for s in plan.steps if s.key == "db.primary")
    assert step.action == UPDATE and step.changes == (model.Change("database.multi_az", True, False, "--set"),)
    assert step.reason == "database.multi_az: true -> false (--set)"

    sent = []

    class Rds:
        def modify_db_instance(self, **kw):
            sent.append(kw)

    class FakeRun:
        kinds = KINDS

        def client(self, service):
            assert service == "rds"
            return Rds()

        def record(self, f):
            self.recorded = f

    run = FakeRun()
    monkeypatch.setattr(database.DbInstance, "_probe", lambda self, run, ident, latest: lambda: "available")
    run.wait = lambda key, what, probe, done, failed, kind: probe()
    executor.run_step(run, step)
    assert sent == [{"DBInstanceIdentifier": "s-db", "ApplyImmediately": True, "MultiAZ": False}]
    assert diffs == [database.DB_SETTINGS]   # the diff was computed once, by the planner
    assert run.recorded.state == "available"
