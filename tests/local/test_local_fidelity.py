"""The local AWS behaves like AWS where awslab and learners depend on it: one test per closed
gap of shared/MOTO-GAPS.md (the table is awslab/local/patches/GAPS.md)."""

from __future__ import annotations

import json
import re
import time

import pytest
from botocore.exceptions import ClientError

from awslab.local import latency as lat


def _code(exc_info) -> str:
    return exc_info.value.response["Error"]["Code"]


# A transition the test must see from its first state on lasts this long: more than the local AWS
# takes to answer under the suite's load (a create answered in 12 ms on an idle machine took over
# 0.3 s once with four workers on two cores, and a 0.3 s "creating" was over before it was seen).
SEEN_S = 1.0


def _poll(fn, want, timeout=20.0):
    seen = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = fn()
        if not seen or seen[-1] != value:
            seen.append(value)
        if value == want:
            return seen
        time.sleep(0.02)
    raise AssertionError(f"never reached {want}: {seen}")


def _db(aws, ident, **extra):
    args = dict(DBInstanceIdentifier=ident, Engine="postgres", EngineVersion="16", DBInstanceClass="db.t3.micro",
                AllocatedStorage=20, MasterUsername="labadmin", ManageMasterUserPassword=True, BackupRetentionPeriod=1)
    args.update(extra)
    return aws("rds").create_db_instance(**args)["DBInstance"]


def _db_state(aws, ident):
    try:
        return aws("rds").describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]["DBInstanceStatus"]
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "DBInstanceNotFound"
        return "<gone>"


def _network(aws):
    ec2 = aws("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    a = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    b = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.2.0/24", AvailabilityZone="us-east-1b")["Subnet"]["SubnetId"]
    return vpc, [a, b]


# --- profiles -----------------------------------------------------------------------------------

def test_latency_profiles__instant_is_empty_realistic_scales_explicit_overrides():
    assert lat.parse("instant").phases("rds.create") == []
    real = lat.parse("realistic", 0.01).phases("rds.create.multi_az")
    assert [s for s, _ in real] == ["creating", "backing-up"] and sum(d for _, d in real) == pytest.approx(9.6)
    explicit = lat.parse("rds.create=5,ec2.run=1")
    assert sum(d for _, d in explicit.phases("rds.create")) == pytest.approx(5) and explicit.phases("elasticache.create") == []
    mixed = lat.parse("realistic,ec2.run=5", 0.01)
    assert mixed.seconds("ec2.run") == pytest.approx(5) and mixed.seconds("rds.delete") == pytest.approx(3)
    with pytest.raises(ValueError, match="unknown latency 'rds.creat'"):
        lat.parse("rds.creat=5")


def test_local_start__sets_and_reports_the_latency_of_the_running_server(awslab, local, latency):
    out = awslab("local", "start", "--latency", "realistic", "--time-scale", "0.5").out
    assert "already running" in out and "latency realistic x0.5" in out
    bad = awslab("local", "start", "--latency", "sometimes")
    assert bad.code == 2 and "unknown latency 'sometimes'" in bad.err


# --- states that take time ----------------------------------------------------------------------

def test_rds__create_passes_through_creating_and_backing_up(aws, stack, latency):
    latency("rds.create=1.5")
    created = _db(aws, stack)
    assert created["DBInstanceStatus"] == "creating"
    assert _poll(lambda: _db_state(aws, stack), "available") == ["creating", "backing-up", "available"]
    aws("rds").delete_db_instance(DBInstanceIdentifier=stack, SkipFinalSnapshot=True)


def test_rds__delete_is_deleting_then_gone_and_a_second_delete_is_refused(aws, stack, latency):
    _db(aws, stack)
    latency(f"rds.delete={SEEN_S}")
    rds = aws("rds")
    assert rds.delete_db_instance(DBInstanceIdentifier=stack, SkipFinalSnapshot=True)["DBInstance"]["DBInstanceStatus"] == "deleting"
    with pytest.raises(ClientError) as again:
        rds.delete_db_instance(DBInstanceIdentifier=stack, SkipFinalSnapshot=True)
    assert _code(again) == "InvalidDBInstanceState"
    assert _poll(lambda: _db_state(aws, stack), "<gone>") == ["deleting", "<gone>"]
    _db(aws, stack)  # the id is free again
    rds.delete_db_instance(DBInstanceIdentifier=stack, SkipFinalSnapshot=True)


def test_rds__snapshot_is_creating_first(aws, stack, latency):
    _db(aws, stack)
    latency("rds.snapshot=0.4")
    rds = aws("rds")
    assert rds.create_db_snapshot(DBInstanceIdentifier=stack, DBSnapshotIdentifier=f"{stack}-s")["DBSnapshot"]["Status"] == "creating"
    _poll(lambda: rds.describe_db_snapshots(DBSnapshotIdentifier=f"{stack}-s")["DBSnapshots"][0]["Status"], "available")
    rds.delete_db_instance(DBInstanceIdentifier=stack, SkipFinalSnapshot=True)


def test_rds__a_replica_waits_for_an_available_source_with_backups(aws, stack, latency):
    latency("rds.create=2")
    _db(aws, stack)
    with pytest.raises(ClientError) as not_ready:
        aws("rds").create_db_instance_read_replica(DBInstanceIdentifier=f"{stack}-r", SourceDBInstanceIdentifier=stack)
    assert _code(not_ready) == "InvalidDBInstanceState"
    latency("instant")
    _db(aws, f"{stack}-nb", BackupRetentionPeriod=0)
    with pytest.raises(ClientError) as no_backups:
        aws("rds").create_db_instance_read_replica(DBInstanceIdentifier=f"{stack}-r", SourceDBInstanceIdentifier=f"{stack}-nb")
    assert _code(no_backups) == "InvalidDBInstanceState" and "Automated backups are not enabled" in str(no_backups.value)


def test_elasticache__create_is_creating_delete_is_deleting_then_the_id_is_free(aws, stack, latency):
    latency(f"elasticache.create={SEEN_S},elasticache.delete={SEEN_S}")
    ec = aws("elasticache")
    args = dict(ReplicationGroupId=stack, ReplicationGroupDescription="d", Engine="redis", CacheNodeType="cache.t3.micro")
    assert ec.create_replication_group(**args)["ReplicationGroup"]["Status"] == "creating"

    def state():
        try:
            return ec.describe_replication_groups(ReplicationGroupId=stack)["ReplicationGroups"][0]["Status"]
        except ClientError as exc:
            return "<gone>" if exc.response["Error"]["Code"] == "ReplicationGroupNotFoundFault" else "?"

    assert _poll(state, "available") == ["creating", "available"]
    assert ec.delete_replication_group(ReplicationGroupId=stack)["ReplicationGroup"]["Status"] == "deleting"
    with pytest.raises(ClientError) as taken:
        ec.create_replication_group(**args)
    assert _code(taken) == "ReplicationGroupAlreadyExists"
    assert _poll(state, "<gone>") == ["deleting", "<gone>"]
    latency("instant")
    ec.create_replication_group(**args)
    ec.delete_replication_group(ReplicationGroupId=stack)


def test_ec2__pending_then_running_shutting_down_then_terminated(aws, latency):
    # Each state lasts a second: long enough for a describe on a loaded 2-core machine to see it
    # (at 0.3 s one run's first describe came after `pending` had passed).
    latency("ec2.run=1,ec2.terminate=1,ec2.terminated-retention=1")
    ec2 = aws("ec2")
    inst = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)["Instances"][0]
    assert inst["State"]["Name"] == "pending"

    def state():
        res = ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": [inst["InstanceId"]]}])["Reservations"]
        return res[0]["Instances"][0]["State"]["Name"] if res else "<gone>"

    assert _poll(state, "running") == ["pending", "running"]
    ec2.terminate_instances(InstanceIds=[inst["InstanceId"]])
    assert _poll(state, "<gone>") == ["shutting-down", "terminated", "<gone>"]


# --- deletes that finish, and ids freed ----------------------------------------------------------

def test_elasticache_delete__finishes_and_frees_the_id(aws, stack):
    ec = aws("elasticache")
    _, subnets = _network(aws)
    ec.create_cache_subnet_group(CacheSubnetGroupName=stack, CacheSubnetGroupDescription="d", SubnetIds=subnets)
    args = dict(ReplicationGroupId=stack, ReplicationGroupDescription="d", Engine="redis",
                CacheNodeType="cache.t3.micro", CacheSubnetGroupName=stack)
    ec.create_replication_group(**args)
    with pytest.raises(ClientError) as in_use:
        ec.delete_cache_subnet_group(CacheSubnetGroupName=stack)
    assert _code(in_use) == "CacheSubnetGroupInUse"
    assert ec.delete_replication_group(ReplicationGroupId=stack)["ReplicationGroup"]["Status"] == "deleting"
    with pytest.raises(ClientError) as gone:
        ec.describe_replication_groups(ReplicationGroupId=stack)
    assert _code(gone) == "ReplicationGroupNotFoundFault"
    ec.create_replication_group(**args)
    ec.delete_replication_group(ReplicationGroupId=stack)
    ec.delete_cache_subnet_group(CacheSubnetGroupName=stack)
    assert not [g for g in ec.describe_cache_subnet_groups()["CacheSubnetGroups"] if g["CacheSubnetGroupName"] == stack]


# --- Run Command ----------------------------------------------------------------------------------

def test_ssm__a_command_runs_on_the_instances_it_names_and_on_no_other(awslab, aws, local_server, stack):
    """Two labs' hosts in one region: a command sent to one runs there alone (moto ran every
    command on every instance of the region, each verify's script on every student's host)."""
    from conftest import eventually, host_of

    for name in (stack, f"{stack}b"):
        up = awslab("up", "week6", "--name", name, "--set", "database.read_replicas=0")
        assert up.code == 0, up.err
    mine, other = host_of(awslab, stack), host_of(awslab, f"{stack}b")
    ssm = aws("ssm")
    sent = ssm.send_command(InstanceIds=[mine], DocumentName="AWS-RunShellScript",
                            Parameters={"commands": ["echo ran"]})
    command = sent["Command"]
    assert (command["InstanceIds"], command["TargetCount"]) == ([mine], 1), command

    def invocations() -> list[dict]:
        return ssm.list_command_invocations(CommandId=command["CommandId"])["CommandInvocations"]

    eventually(lambda: {i["Status"] for i in invocations()} == {"Success"}, within_s=30)
    assert [i["InstanceId"] for i in invocations()] == [mine]
    listed = ssm.list_commands(CommandId=command["CommandId"])["Commands"][0]
    assert (listed["InstanceIds"], listed["TargetCount"], listed["CompletedCount"]) == ([mine], 1, 1), listed
    assert ssm.list_command_invocations(InstanceId=other)["CommandInvocations"] == []
    instances = local_server[1] / "local" / "instances"
    assert (instances / mine / "ssm" / command["CommandId"]).is_dir()
    assert not (instances / other / "ssm" / command["CommandId"]).exists()
    for name in (stack, f"{stack}b"):
        assert awslab("down", "--name", name, "--yes", "--skip-final-snapshot").code == 0


# --- in-use deletes fail ------------------------------------------------------------------------

def test_security_group__in_use_by_a_rule_an_instance_a_db_or_a_cache__cannot_be_deleted(aws, stack):
    ec2 = aws("ec2")
    vpc, subnets = _network(aws)
    group = lambda n: ec2.create_security_group(GroupName=f"{stack}-{n}", Description=n, VpcId=vpc)["GroupId"]  # noqa: E731
    app, db, cache, ref = group("app"), group("db"), group("cache"), group("ref")
    ec2.authorize_security_group_ingress(GroupId=ref, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1, "UserIdGroupPairs": [{"GroupId": app}]}])
    inst = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, SubnetId=subnets[0], SecurityGroupIds=[app])
    iid = inst["Instances"][0]["InstanceId"]
    _db(aws, stack, VpcSecurityGroupIds=[db])
    aws("elasticache").create_replication_group(ReplicationGroupId=stack, ReplicationGroupDescription="d",
                                                Engine="redis", CacheNodeType="cache.t3.micro", SecurityGroupIds=[cache])
    for gid in (app, db, cache):
        with pytest.raises(ClientError) as info:
            ec2.delete_security_group(GroupId=gid)
        assert _code(info) == "DependencyViolation" and f"resource {gid} has a dependent object" in str(info.value)
    with pytest.raises(ClientError) as subnet:
        ec2.delete_subnet(SubnetId=subnets[0])
    assert _code(subnet) == "DependencyViolation"
    ec2.revoke_security_group_ingress(GroupId=ref, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1, "UserIdGroupPairs": [{"GroupId": app}]}])
    ec2.terminate_instances(InstanceIds=[iid])
    aws("rds").delete_db_instance(DBInstanceIdentifier=stack, SkipFinalSnapshot=True)
    aws("elasticache").delete_replication_group(ReplicationGroupId=stack)
    for gid in (app, db, cache, ref):
        ec2.delete_security_group(GroupId=gid)
    ec2.delete_subnet(SubnetId=subnets[0])


def test_security_group__network_interfaces_drain_after_termination(aws, stack, latency):
    latency(f"ec2.eni-drain={SEEN_S}")
    ec2 = aws("ec2")
    vpc, subnets = _network(aws)
    gid = ec2.create_security_group(GroupName=stack, Description="d", VpcId=vpc)["GroupId"]
    iid = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, SubnetId=subnets[0],
                            SecurityGroupIds=[gid])["Instances"][0]["InstanceId"]
    ec2.terminate_instances(InstanceIds=[iid])
    with pytest.raises(ClientError) as draining:
        ec2.delete_security_group(GroupId=gid)
    assert _code(draining) == "DependencyViolation"
    time.sleep(SEEN_S + 0.1)
    ec2.delete_security_group(GroupId=gid)


def test_db_subnet_group__in_use_until_its_last_instance_is_gone(aws, stack, latency):
    _, subnets = _network(aws)
    rds = aws("rds")
    rds.create_db_subnet_group(DBSubnetGroupName=stack, DBSubnetGroupDescription="d", SubnetIds=subnets)
    _db(aws, stack, DBSubnetGroupName=stack)
    latency(f"rds.delete={SEEN_S}")
    rds.delete_db_instance(DBInstanceIdentifier=stack, SkipFinalSnapshot=True)
    with pytest.raises(ClientError) as in_use:
        rds.delete_db_subnet_group(DBSubnetGroupName=stack)
    assert _code(in_use) == "InvalidDBSubnetGroupStateFault"
    assert re.search(f"at least one database instance: {stack} is still using it", str(in_use.value))
    _poll(lambda: _db_state(aws, stack), "<gone>")
    rds.delete_db_subnet_group(DBSubnetGroupName=stack)


# --- what AWS rejects, rejected -----------------------------------------------------------------

@pytest.mark.parametrize("extra, code, fragment", [
    ({"MasterUserPassword": "a-long-password-1"}, "InvalidParameterCombination", "Can't specify both"),
    ({"DBInstanceClass": "db.bogus.huge"}, "InvalidParameterCombination", "DBInstanceClass=db.bogus.huge"),
    ({"EngineVersion": "99.9"}, "InvalidParameterCombination", "Cannot find version 99.9 for postgres"),
])
def test_rds_create__what_aws_rejects_is_rejected(aws, stack, extra, code, fragment):
    with pytest.raises(ClientError) as info:
        _db(aws, stack, **extra)
    assert _code(info) == code and fragment in str(info.value)


def test_rds_delete__requires_a_snapshot_choice_and_refuses_one_for_a_replica(aws, stack):
    rds = aws("rds")
    _db(aws, stack)
    rds.create_db_instance_read_replica(DBInstanceIdentifier=f"{stack}-r", SourceDBInstanceIdentifier=stack)
    with pytest.raises(ClientError) as neither:
        rds.delete_db_instance(DBInstanceIdentifier=stack)
    assert _code(neither) == "InvalidParameterCombination"
    assert "FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is specified" in str(neither.value)
    with pytest.raises(ClientError) as replica_snapshot:
        rds.delete_db_instance(DBInstanceIdentifier=f"{stack}-r", FinalDBSnapshotIdentifier=f"{stack}-r-final")
    assert _code(replica_snapshot) == "InvalidParameterValue"
    secret_arn = rds.describe_db_instances(DBInstanceIdentifier=stack)["DBInstances"][0]["MasterUserSecret"]["SecretArn"]
    rds.delete_db_instance(DBInstanceIdentifier=f"{stack}-r", SkipFinalSnapshot=True)
    assert aws("secretsmanager").describe_secret(SecretId=secret_arn)["ARN"] == secret_arn
    rds.delete_db_instance(DBInstanceIdentifier=stack, SkipFinalSnapshot=True)


def test_elasticache__an_auth_token_needs_transit_encryption(aws, stack):
    with pytest.raises(ClientError) as info:
        aws("elasticache").create_replication_group(ReplicationGroupId=stack, ReplicationGroupDescription="d",
                                                    Engine="redis", CacheNodeType="cache.t3.micro", AuthToken="a" * 32)
    assert _code(info) == "InvalidParameterValue" and "encryption-in-transit" in str(info.value)


# --- moto's wrong answers, fixed where awslab reads them ----------------------------------------

def _subnet_group(aws, name):
    _, subnets = _network(aws)
    aws("rds").create_db_subnet_group(DBSubnetGroupName=name, DBSubnetGroupDescription="d", SubnetIds=subnets)
    return name


def test_rds_multi_az__has_a_secondary_az_and_a_forced_failover_swaps_them(aws, stack):
    rds = aws("rds")
    _db(aws, stack, MultiAZ=True, DBSubnetGroupName=_subnet_group(aws, stack))
    before = rds.describe_db_instances(DBInstanceIdentifier=stack)["DBInstances"][0]
    primary, standby = before["AvailabilityZone"], before["SecondaryAvailabilityZone"]
    assert {primary, standby} == {"us-east-1a", "us-east-1b"}
    rds.reboot_db_instance(DBInstanceIdentifier=stack, ForceFailover=True)
    after = rds.describe_db_instances(DBInstanceIdentifier=stack)["DBInstances"][0]
    assert (after["AvailabilityZone"], after["SecondaryAvailabilityZone"]) == (standby, primary)
    rds.delete_db_instance(DBInstanceIdentifier=stack, SkipFinalSnapshot=True)


def test_rds_single_az__has_no_secondary_and_refuses_a_forced_failover(aws, stack):
    rds = aws("rds")
    _db(aws, stack)
    assert "SecondaryAvailabilityZone" not in rds.describe_db_instances(DBInstanceIdentifier=stack)["DBInstances"][0]
    with pytest.raises(ClientError) as info:
        rds.reboot_db_instance(DBInstanceIdentifier=stack, ForceFailover=True)
    assert _code(info) == "InvalidParameterCombination"
    rds.reboot_db_instance(DBInstanceIdentifier=stack)  # a plain reboot is fine
    rds.delete_db_instance(DBInstanceIdentifier=stack, SkipFinalSnapshot=True)


def test_rds_restore__false_overrides_are_applied(aws, stack):
    rds = aws("rds")
    _db(aws, stack, MultiAZ=True, DeletionProtection=True)
    rds.create_db_snapshot(DBInstanceIdentifier=stack, DBSnapshotIdentifier=f"{stack}-s")
    restored = rds.restore_db_instance_from_db_snapshot(DBInstanceIdentifier=f"{stack}-r", DBSnapshotIdentifier=f"{stack}-s",
                                                        MultiAZ=False, DeletionProtection=False)["DBInstance"]
    assert restored["MultiAZ"] is False and restored["DeletionProtection"] is False
    rds.modify_db_instance(DBInstanceIdentifier=stack, DeletionProtection=False, ApplyImmediately=True)
    for ident in (stack, f"{stack}-r"):
        rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)


@pytest.mark.parametrize("extra, code, fragment", [
    ({"CacheNodeType": "cache.bogus.huge"}, "InvalidParameterValue", "Invalid Cache Node Type: cache.bogus.huge"),
    ({"EngineVersion": "99.9"}, "InvalidParameterCombination", "Cannot find version 99.9 for redis"),
])
def test_elasticache_create__unknown_node_types_and_versions_are_rejected(aws, stack, extra, code, fragment):
    args = dict(ReplicationGroupId=stack, ReplicationGroupDescription="d", Engine="redis", CacheNodeType="cache.t3.micro")
    args.update(extra)
    with pytest.raises(ClientError) as info:
        aws("elasticache").create_replication_group(**args)
    assert _code(info) == code and fragment in str(info.value)


def test_elasticache_members__one_per_cache_cluster_each_with_the_groups_security_groups(aws, stack):
    ec2, ec = aws("ec2"), aws("elasticache")
    vpc, subnets = _network(aws)
    sg1 = ec2.create_security_group(GroupName=f"{stack}-1", Description="d", VpcId=vpc)["GroupId"]
    sg2 = ec2.create_security_group(GroupName=f"{stack}-2", Description="d", VpcId=vpc)["GroupId"]
    ec.create_cache_subnet_group(CacheSubnetGroupName=stack, CacheSubnetGroupDescription="d", SubnetIds=subnets)
    group = ec.create_replication_group(
        ReplicationGroupId=stack, ReplicationGroupDescription="d", Engine="redis", CacheNodeType="cache.t3.micro",
        NumCacheClusters=2, PreferredCacheClusterAZs=["us-east-1a", "us-east-1b"], AutomaticFailoverEnabled=True,
        CacheSubnetGroupName=stack, SecurityGroupIds=[sg1])["ReplicationGroup"]
    assert group["MemberClusters"] == [f"{stack}-001", f"{stack}-002"]
    clusters = ec.describe_cache_clusters()["CacheClusters"]
    mine = {c["CacheClusterId"]: c for c in clusters if c.get("ReplicationGroupId") == stack}
    assert set(mine) == {f"{stack}-001", f"{stack}-002"}
    assert {c["PreferredAvailabilityZone"] for c in mine.values()} == {"us-east-1a", "us-east-1b"}
    assert all([g["SecurityGroupId"] for g in c["SecurityGroups"]] == [sg1] for c in mine.values())
    ec.modify_replication_group(ReplicationGroupId=stack, SecurityGroupIds=[sg2], ApplyImmediately=True)
    member = ec.describe_cache_clusters(CacheClusterId=f"{stack}-001")["CacheClusters"][0]
    assert [g["SecurityGroupId"] for g in member["SecurityGroups"]] == [sg2]
    ec.delete_replication_group(ReplicationGroupId=stack)
    assert not [c for c in ec.describe_cache_clusters()["CacheClusters"] if c.get("ReplicationGroupId") == stack]
    ec.delete_cache_subnet_group(CacheSubnetGroupName=stack)


def test_rds_modify_db_subnet_group__keeps_the_group(aws, stack):
    rds = aws("rds")
    _, subnets = _network(aws)
    rds.create_db_subnet_group(DBSubnetGroupName=stack, DBSubnetGroupDescription="d", SubnetIds=subnets[:1] + subnets[1:])
    rds.modify_db_subnet_group(DBSubnetGroupName=stack, SubnetIds=subnets)
    assert rds.describe_db_subnet_groups(DBSubnetGroupName=stack)["DBSubnetGroups"][0]["DBSubnetGroupName"] == stack
    rds.delete_db_subnet_group(DBSubnetGroupName=stack)


def test_tagging_api__lists_db_subnet_groups(aws, stack):
    _, subnets = _network(aws)
    arn = aws("rds").create_db_subnet_group(DBSubnetGroupName=stack, DBSubnetGroupDescription="d", SubnetIds=subnets,
                                            Tags=[{"Key": "awslab:stack", "Value": stack}])["DBSubnetGroup"]["DBSubnetGroupArn"]
    found = aws("resourcegroupstaggingapi").get_resources(TagFilters=[{"Key": "awslab:stack", "Values": [stack]}])
    assert [r["ResourceARN"] for r in found["ResourceTagMappingList"]] == [arn]
    aws("rds").delete_db_subnet_group(DBSubnetGroupName=stack)


def test_rds_create_db_subnet_group__an_existing_name_is_refused_not_replaced(aws, stack):
    rds = aws("rds")
    _, subnets = _network(aws)
    rds.create_db_subnet_group(DBSubnetGroupName=stack, DBSubnetGroupDescription="first", SubnetIds=subnets)
    with pytest.raises(ClientError) as info:
        rds.create_db_subnet_group(DBSubnetGroupName=stack, DBSubnetGroupDescription="second", SubnetIds=subnets)
    assert _code(info) == "DBSubnetGroupAlreadyExists"
    assert rds.describe_db_subnet_groups(DBSubnetGroupName=stack)["DBSubnetGroups"][0]["DBSubnetGroupDescription"] == "first"
    rds.delete_db_subnet_group(DBSubnetGroupName=stack)


def test_the_aws_cli_view_of_a_lab__db_tags_host_groups_and_a_revoke_without_description(awslab, aws, stack):
    """What a learner checks with the AWS CLI: the DB instance's tags through the tag calls, the
    host's groups on the instance, and a rule revoked by protocol, port and source alone."""
    assert awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0").code == 0
    rds, ec2 = aws("rds"), aws("ec2")
    db = rds.describe_db_instances(DBInstanceIdentifier=f"{stack}-db")["DBInstances"][0]
    tags = {t["Key"]: t["Value"] for t in rds.list_tags_for_resource(ResourceName=db["DBInstanceArn"])["TagList"]}
    assert tags["awslab:stack"] == stack and tags["awslab:resource"] == "db.primary"
    rds.add_tags_to_resource(ResourceName=db["DBInstanceArn"], Tags=[{"Key": "owner", "Value": "alice"}])
    listed = rds.list_tags_for_resource(ResourceName=db["DBInstanceArn"])["TagList"]
    assert {"Key": "owner", "Value": "alice"} in listed

    groups = {g["GroupName"]: g["GroupId"] for g in ec2.describe_security_groups(
        Filters=[{"Name": "tag:awslab:stack", "Values": [stack]}])["SecurityGroups"]}
    (inst,) = [i for r in ec2.describe_instances(Filters=[{"Name": "tag:awslab:stack", "Values": [stack]}])["Reservations"]
               for i in r["Instances"] if i["State"]["Name"] != "terminated"]
    assert [g["GroupId"] for g in inst["SecurityGroups"]] == [groups[f"{stack}-app"]]

    ec2.revoke_security_group_ingress(GroupId=groups[f"{stack}-cache"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379, "UserIdGroupPairs": [{"GroupId": groups[f"{stack}-app"]}]}])
    cache_sg = ec2.describe_security_groups(GroupIds=[groups[f"{stack}-cache"]])["SecurityGroups"][0]
    assert [p for p in cache_sg["IpPermissions"] if p.get("FromPort") == 6379] == []
    verify = json.loads(awslab("verify", "--name", stack, "--check", "path", "--output", "json").out)
    assert {c["id"]: c["status"] for c in verify}["path.app-to-cache"] == "FAIL"
    assert awslab("down", "--name", stack, "--yes", "--skip-final-snapshot").code == 0


def test_rds__an_instance_without_a_version_gets_a_current_one_and_its_snapshot_restores(aws, stack):
    rds = aws("rds")
    rds.create_db_instance(DBInstanceIdentifier=stack, Engine="postgres", DBInstanceClass="db.t3.micro",
                           MasterUsername="lab", MasterUserPassword="a-long-password-1", AllocatedStorage=20)
    version = rds.describe_db_instances(DBInstanceIdentifier=stack)["DBInstances"][0]["EngineVersion"]
    assert int(version.split(".")[0]) >= 13
    rds.create_db_snapshot(DBInstanceIdentifier=stack, DBSnapshotIdentifier=f"{stack}-s")
    rds.restore_db_instance_from_db_snapshot(DBInstanceIdentifier=f"{stack}-r", DBSnapshotIdentifier=f"{stack}-s")
    for ident in (stack, f"{stack}-r"):
        rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)


# --- found by the conformance run (.ci/conformance: moto's own tests with the layer) -----------

def test_ec2__a_terminated_instance_stays_listed_as_terminated_with_its_tags_for_the_retention(aws, stack):
    """As on AWS (for about an hour; the profile's time scale shortens it), under `instant` too, so
    the `instance_terminated` waiter and describes by id work; the tagging API, what a stack still
    holds, leaves it out."""
    ec2 = aws("ec2")
    tag = {"Key": "awslab:stack", "Value": stack}
    iid = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, InstanceType="t3.micro",
                            TagSpecifications=[{"ResourceType": "instance", "Tags": [tag]}])["Instances"][0]["InstanceId"]
    ec2.terminate_instances(InstanceIds=[iid])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    (inst,) = [i for r in ec2.describe_instances(InstanceIds=[iid])["Reservations"] for i in r["Instances"]]
    assert inst["State"] == {"Code": 48, "Name": "terminated"} and tag in inst["Tags"]
    by_tag = ec2.describe_instances(Filters=[{"Name": "tag:awslab:stack", "Values": [stack]}])["Reservations"]
    assert [i["State"]["Name"] for r in by_tag for i in r["Instances"]] == ["terminated"]
    tagging = aws("resourcegroupstaggingapi")
    assert tagging.get_resources(TagFilters=[{"Key": "awslab:stack", "Values": [stack]}])["ResourceTagMappingList"] == []


def test_ec2__terminated_retention__an_hour_scaled_by_the_profile_or_explicit():
    from awslab.local.patches.ec2 import terminated_retention

    assert terminated_retention(lat.parse("instant")) == pytest.approx(3600)
    assert terminated_retention(lat.parse("realistic", 0.01)) == pytest.approx(36)
    assert terminated_retention(lat.parse("realistic,ec2.terminated-retention=0.5", 0.01)) == pytest.approx(0.5)


def test_rds__db_identifiers_are_case_insensitive_as_on_aws(aws, stack):
    rds = aws("rds")
    _db(aws, stack.upper())
    for ident in (stack, stack.upper(), stack.capitalize()):
        assert rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]["DBInstanceIdentifier"] == stack
    arn = rds.describe_db_instances(DBInstanceIdentifier=stack)["DBInstances"][0]["DBInstanceArn"]
    rds.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "owner", "Value": "alice"}])
    assert {"Key": "owner", "Value": "alice"} in rds.list_tags_for_resource(ResourceName=arn)["TagList"]
    with pytest.raises(ClientError) as twice:
        _db(aws, stack.capitalize())
    assert _code(twice) == "DBInstanceAlreadyExists"
    assert rds.delete_db_instance(DBInstanceIdentifier=stack.upper(), SkipFinalSnapshot=True)["DBInstance"][
        "DBInstanceIdentifier"] == stack
    assert _db_state(aws, stack) == "<gone>"


def test_rds__a_protected_instance_is_refused_before_the_final_snapshot_choice(aws, stack):
    rds = aws("rds")
    _db(aws, stack, DeletionProtection=True)
    for choice in ({}, {"SkipFinalSnapshot": True}):
        with pytest.raises(ClientError) as protected:
            rds.delete_db_instance(DBInstanceIdentifier=stack, **choice)
        assert _code(protected) == "InvalidParameterCombination"
        assert "Cannot delete protected DB Instance" in str(protected.value)
    rds.modify_db_instance(DBInstanceIdentifier=stack, DeletionProtection=False, ApplyImmediately=True)
    rds.delete_db_instance(DBInstanceIdentifier=stack, SkipFinalSnapshot=True)


def test_elasticache__a_deleted_cache_cluster_is_seen_deleting_then_gone_and_its_id_free(aws, stack):
    ec = aws("elasticache")
    args = dict(CacheClusterId=stack, Engine="memcached", CacheNodeType="cache.t3.micro", NumCacheNodes=1)
    ec.create_cache_cluster(**args)
    ec.delete_cache_cluster(CacheClusterId=stack)
    assert ec.describe_cache_clusters(CacheClusterId=stack)["CacheClusters"][0]["CacheClusterStatus"] == "deleting"
    with pytest.raises(ClientError) as gone:
        ec.describe_cache_clusters(CacheClusterId=stack)
    assert _code(gone) == "CacheClusterNotFound"
    ec.create_cache_cluster(**args)
    ec.delete_cache_cluster(CacheClusterId=stack)


def test_iam__managed_policies_are_parsed_once_and_each_backend_owns_its_copies():
    """In-process (the server does the same in its own): moto builds an IAM backend per account and
    at every reset; the policies are parsed once, but an attachment, a tag or a default version
    changed in one account never shows in another, and the state's save/load keeps the count."""
    from awslab.local import patches, persistence

    patches.apply()
    from moto.iam.models import AWSManagedPolicy, IAMBackend, iam_backends

    arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
    mine, other = iam_backends["210987654321"]["global"], IAMBackend("aws", "123456789012")
    ours, theirs = mine.managed_policies[arn], other.managed_policies[arn]
    assert type(ours) is AWSManagedPolicy and ours is not theirs
    assert (ours.account_id, theirs.account_id) == ("210987654321", "123456789012")
    assert ours.versions[0].document is theirs.versions[0].document   # parsed once, not per backend
    assert ours.versions[0] is not theirs.versions[0]
    assert IAMBackend("aws-cn", "123456789012").managed_policies == {}   # the local AWS serves `aws` only

    mine.create_role("r", "{}", "/", None, "", [], None)
    mine.attach_role_policy(arn, "r")
    mine.tag_policy(arn, [{"Key": "team", "Value": "db"}])
    ours.versions[0].is_default = False
    assert (ours.attachment_count, theirs.attachment_count) == (1, 0)
    assert theirs.tags == {} and theirs.versions[0].is_default is True

    saved = persistence.dumps({"role": mine.get_role("r")})
    ours.attachment_count = 0
    role = persistence.loads(saved)["role"]
    assert role.managed_policies[arn] is ours and ours.attachment_count == 1
    assert IAMBackend("aws", "210987654321").managed_policies[arn].attachment_count == 0   # a reset starts clean

    # A backend copies the policies only when something reads them (moto makes one per account
    # seen and per reset, most never read): made, saved and loaded without a copy, then copied
    # on the first read, moto's two names for them the same objects.
    fresh = IAMBackend("aws", "333333333333")
    assert type(fresh.__dict__["managed_policies"]).__name__ == "_Deferred"
    loaded = persistence.loads(persistence.dumps({"iam": fresh}))["iam"]
    assert type(loaded.__dict__["managed_policies"]).__name__ == "_Deferred"
    copy = loaded.managed_policies[arn]
    assert type(copy) is AWSManagedPolicy and copy.account_id == "333333333333" and copy.attachment_count == 0
    assert copy is not ours and copy.versions[0].document is ours.versions[0].document
    assert {p.arn: p for p in loaded.aws_managed_policies} == loaded.managed_policies
    assert len(loaded.managed_policies) > 1000
    loaded.create_role("r", "{}", "/", None, "", [], None)
    loaded.attach_role_policy(arn, "r")
    assert copy.attachment_count == 1 and ours.attachment_count == 1


# --- found by the conformance run, second pass: the final-snapshot rule is the API's -----------

def test_rds_delete__an_aurora_member_needs_no_final_snapshot_choice(aws, stack):
    rds = aws("rds")
    rds.create_db_cluster(DBClusterIdentifier=stack, Engine="aurora-postgresql", MasterUsername="labadmin",
                          MasterUserPassword="a-long-password-1")
    rds.create_db_instance(DBInstanceIdentifier=f"{stack}-1", DBClusterIdentifier=stack, Engine="aurora-postgresql",
                           DBInstanceClass="db.r6g.large")
    assert rds.delete_db_instance(DBInstanceIdentifier=f"{stack}-1")["DBInstance"]["DBInstanceIdentifier"] == f"{stack}-1"
    assert _db_state(aws, f"{stack}-1") == "<gone>"
    rds.delete_db_cluster(DBClusterIdentifier=stack, SkipFinalSnapshot=True)


def test_rds_create__a_cluster_member_of_another_engine_is_refused_for_its_engine_first(aws, stack):
    rds = aws("rds")
    rds.create_db_cluster(DBClusterIdentifier=stack, Engine="aurora-postgresql", MasterUsername="labadmin",
                          MasterUserPassword="a-long-password-1")
    with pytest.raises(ClientError) as info:
        rds.create_db_instance(DBInstanceIdentifier=f"{stack}-1", DBClusterIdentifier=stack, Engine="postgres",
                               EngineVersion="12.14", DBInstanceClass="db.r6g.large")
    assert _code(info) == "InvalidParameterCombination"
    assert "(postgres) doesn't match the engine name of your DB cluster (aurora-postgresql)" in str(info.value)
    rds.delete_db_cluster(DBClusterIdentifier=stack, SkipFinalSnapshot=True)


def test_cloudformation__an_instance_gets_a_day_of_backups_its_replica_is_made_and_the_stack_deletes(aws, stack):
    """CloudFormation's BackupRetentionPeriod defaults to 1, so a template's replica is allowed; deleting
    the stack deletes its instances by their DeletionPolicy, with no final-snapshot choice asked."""
    props = {"Engine": "postgres", "EngineVersion": "16", "DBInstanceClass": "db.t3.micro", "AllocatedStorage": "20",
             "MasterUsername": "labadmin", "MasterUserPassword": "a-long-password-1"}
    template = {"Resources": {
        "Primary": {"Type": "AWS::RDS::DBInstance", "Properties": {**props, "DBInstanceIdentifier": f"{stack}-p"}},
        "Replica": {"Type": "AWS::RDS::DBInstance", "Properties": {
            "SourceDBInstanceIdentifier": {"Ref": "Primary"}, "DBInstanceClass": "db.t3.micro"}}}}
    cfn, rds = aws("cloudformation"), aws("rds")
    cfn.create_stack(StackName=stack, TemplateBody=json.dumps(template))
    made = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in cfn.describe_stack_resources(StackName=stack)["StackResources"]}
    primary = rds.describe_db_instances(DBInstanceIdentifier=made["Primary"])["DBInstances"][0]
    assert primary["BackupRetentionPeriod"] == 1
    assert primary["ReadReplicaDBInstanceIdentifiers"] == [made["Replica"]]
    cfn.delete_stack(StackName=stack)
    _poll(lambda: {_db_state(aws, ident) for ident in made.values()} <= {"deleting", "<gone>"}, True)


def test_cloudformation__delete_stack_runs_until_its_last_resource_is_gone_replicas_first(aws, stack, latency):
    """DeleteStack answers at once and the stack stays listed (DELETE_IN_PROGRESS) while its
    resources go: the read replica before its source, the security group once the DB using it is
    gone (moto gave up at that dependency and dropped the stack record, leaving them all)."""
    latency("rds.delete=2")
    ec2 = aws("ec2")
    vpc, subnets = _network(aws)
    props = {"Engine": "postgres", "EngineVersion": "16", "DBInstanceClass": "db.t3.micro", "AllocatedStorage": "20",
             "MasterUsername": "labadmin", "MasterUserPassword": "a-long-password-1"}
    template = {"Resources": {
        "Group": {"Type": "AWS::EC2::SecurityGroup", "Properties": {"GroupDescription": "db", "VpcId": vpc}},
        "Subnets": {"Type": "AWS::RDS::DBSubnetGroup", "Properties": {"DBSubnetGroupDescription": "db",
                                                                        "SubnetIds": subnets}},
        "Primary": {"Type": "AWS::RDS::DBInstance", "DeletionPolicy": "Delete", "Properties": {
            **props, "DBInstanceIdentifier": f"{stack}-p", "DBSubnetGroupName": {"Ref": "Subnets"},
            "VPCSecurityGroups": [{"Ref": "Group"}]}},
        "Replica": {"Type": "AWS::RDS::DBInstance", "DeletionPolicy": "Delete", "Properties": {
            "SourceDBInstanceIdentifier": {"Ref": "Primary"}, "DBInstanceClass": "db.t3.micro",
            "DBInstanceIdentifier": f"{stack}-r"}}}}
    cfn = aws("cloudformation")
    cfn.create_stack(StackName=stack, TemplateBody=json.dumps(template))
    _poll(lambda: cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"], "CREATE_COMPLETE")
    group = next(r["PhysicalResourceId"] for r in cfn.describe_stack_resources(StackName=stack)["StackResources"]
                 if r["LogicalResourceId"] == "Group")
    cfn.delete_stack(StackName=stack)
    assert cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"] == "DELETE_IN_PROGRESS"
    replica_first = _poll(lambda: (_db_state(aws, f"{stack}-r"), _db_state(aws, f"{stack}-p")), ("<gone>", "<gone>"))
    assert ("available", "deleting") not in replica_first and ("available", "<gone>") not in replica_first, replica_first

    def listed() -> str:
        try:
            return cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
        except ClientError:
            return "<gone>"

    _poll(listed, "<gone>")
    assert [s["StackStatus"] for s in cfn.list_stacks()["StackSummaries"] if s["StackName"] == stack] == ["DELETE_COMPLETE"]
    assert not ec2.describe_security_groups(Filters=[{"Name": "group-id", "Values": [group]}])["SecurityGroups"]


# --- found by the AWS CLI smoke test (tests/local/test_awscli.py) -------------------------------

def test_rds__a_major_version_becomes_its_current_minor_and_copies_keep_it(aws, stack):
    from awslab.local.patches._base import DB_CURRENT_MINORS, DB_MAJOR_VERSIONS

    assert {e: set(m) for e, m in DB_CURRENT_MINORS.items()} == {e: set(v) for e, v in DB_MAJOR_VERSIONS.items()}
    rds = aws("rds")
    made = _db(aws, stack)
    assert made["EngineVersion"] == DB_CURRENT_MINORS["postgres"]["16"]
    assert made["DBParameterGroups"][0]["DBParameterGroupName"] == "default.postgres16"
    rds.create_db_instance_read_replica(DBInstanceIdentifier=f"{stack}-r", SourceDBInstanceIdentifier=stack)
    snap = rds.create_db_snapshot(DBInstanceIdentifier=stack, DBSnapshotIdentifier=f"{stack}-s")["DBSnapshot"]
    restored = rds.restore_db_instance_from_db_snapshot(DBInstanceIdentifier=f"{stack}-x",
                                                        DBSnapshotIdentifier=f"{stack}-s")["DBInstance"]
    replica = rds.describe_db_instances(DBInstanceIdentifier=f"{stack}-r")["DBInstances"][0]
    assert {replica["EngineVersion"], snap["EngineVersion"], restored["EngineVersion"]} == {made["EngineVersion"]}
    explicit = _db(aws, f"{stack}-e", EngineVersion="15.13")
    assert explicit["EngineVersion"] == "15.13"   # a full version RDS offers is kept as asked
    for ident in (f"{stack}-r", stack, f"{stack}-x", f"{stack}-e"):
        rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)


def test_rds__encrypted_without_a_key_is_the_regions_aws_rds_key_on_instances_copies_and_snapshots(aws, stack):
    rds, kms = aws("rds"), aws("kms")
    made = _db(aws, stack, StorageEncrypted=True)
    other = _db(aws, f"{stack}-2", StorageEncrypted=True)
    key = kms.describe_key(KeyId="alias/aws/rds")["KeyMetadata"]["Arn"]
    assert re.fullmatch(r"arn:aws:kms:us-east-1:\d{12}:key/[0-9a-f-]{36}", key)
    assert made["KmsKeyId"] == other["KmsKeyId"] == key
    rds.create_db_instance_read_replica(DBInstanceIdentifier=f"{stack}-r", SourceDBInstanceIdentifier=stack)
    snap = rds.create_db_snapshot(DBInstanceIdentifier=stack, DBSnapshotIdentifier=f"{stack}-s")["DBSnapshot"]
    replica = rds.describe_db_instances(DBInstanceIdentifier=f"{stack}-r")["DBInstances"][0]
    assert replica["KmsKeyId"] == snap["KmsKeyId"] == key
    for ident in (f"{stack}-r", stack, f"{stack}-2"):
        rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)


def test_rds__a_read_replica_reports_replicating_until_promoted(aws, stack):
    rds = aws("rds")
    _db(aws, stack)
    rds.create_db_instance_read_replica(DBInstanceIdentifier=f"{stack}-r", SourceDBInstanceIdentifier=stack)
    dbs = {d["DBInstanceIdentifier"]: d for d in rds.describe_db_instances()["DBInstances"]}
    assert dbs[f"{stack}-r"]["StatusInfos"] == [{"StatusType": "read replication", "Normal": True, "Status": "replicating"}]
    assert "StatusInfos" not in dbs[stack]
    rds.promote_read_replica(DBInstanceIdentifier=f"{stack}-r")
    assert "StatusInfos" not in rds.describe_db_instances(DBInstanceIdentifier=f"{stack}-r")["DBInstances"][0]
    for ident in (f"{stack}-r", stack):
        rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)


def test_elasticache__reader_endpoint_members_as_their_group_their_nodes_and_node_snapshots(aws, stack):
    ec = aws("elasticache")
    ec.create_replication_group(
        ReplicationGroupId=stack, ReplicationGroupDescription="d", Engine="redis", CacheNodeType="cache.t3.micro",
        NumCacheClusters=2, PreferredCacheClusterAZs=["us-east-1a", "us-east-1b"], AutomaticFailoverEnabled=True,
        TransitEncryptionEnabled=True, AuthToken="a" * 32, AtRestEncryptionEnabled=True)
    (shard,) = ec.describe_replication_groups(ReplicationGroupId=stack)["ReplicationGroups"][0]["NodeGroups"]
    domain = shard["PrimaryEndpoint"]["Address"].removeprefix("master.")
    assert shard["ReaderEndpoint"] == {"Address": f"replica.{domain}", "Port": 6379}

    plain = {c["CacheClusterId"]: c for c in ec.describe_cache_clusters()["CacheClusters"]
             if c.get("ReplicationGroupId") == stack}
    shown = {c["CacheClusterId"]: c for c in ec.describe_cache_clusters(ShowCacheNodeInfo=True)["CacheClusters"]
             if c.get("ReplicationGroupId") == stack}
    assert sorted(shown) == [f"{stack}-001", f"{stack}-002"]
    for name, cluster in shown.items():
        assert (cluster["AuthTokenEnabled"], cluster["AtRestEncryptionEnabled"]) == (True, True)
        assert "CacheNodes" not in plain[name]   # only when asked for, as on AWS
        (node,) = cluster["CacheNodes"]
        assert node.pop("CacheNodeCreateTime") == cluster["CacheClusterCreateTime"]
        assert node == {
            "CacheNodeId": "0001", "CacheNodeStatus": "available", "Endpoint": {"Address": f"{name}.{domain}", "Port": 6379},
            "ParameterGroupStatus": "in-sync", "CustomerAvailabilityZone": cluster["PreferredAvailabilityZone"]}

    ec.create_snapshot(ReplicationGroupId=stack, SnapshotName=f"{stack}-s")
    (node_snap,) = ec.describe_snapshots(SnapshotName=f"{stack}-s")["Snapshots"][0]["NodeSnapshots"]
    assert (node_snap["CacheClusterId"], node_snap["NodeGroupId"], node_snap["CacheNodeId"]) == (f"{stack}-002", "0001", "0001")
    assert node_snap["CacheNodeCreateTime"] <= node_snap["SnapshotCreateTime"] and node_snap["CacheSize"].endswith(" MB")
    ec.delete_snapshot(SnapshotName=f"{stack}-s")
    ec.delete_replication_group(ReplicationGroupId=stack)


def test_rds__a_replica_under_a_taken_identifier_is_refused_and_the_instance_kept(aws, stack):
    rds = aws("rds")
    for ident in (stack, f"{stack}-other"):
        rds.create_db_instance(DBInstanceIdentifier=ident, Engine="postgres", DBInstanceClass="db.t3.micro",
                               MasterUsername="labadmin", MasterUserPassword="a-long-enough-password",
                               AllocatedStorage=20, BackupRetentionPeriod=1)
    with pytest.raises(ClientError) as taken:
        rds.create_db_instance_read_replica(DBInstanceIdentifier=f"{stack}-other", SourceDBInstanceIdentifier=stack)
    assert _code(taken) == "DBInstanceAlreadyExists"
    kept = rds.describe_db_instances(DBInstanceIdentifier=f"{stack}-other")["DBInstances"][0]
    assert "ReadReplicaSourceDBInstanceIdentifier" not in kept


def test_rds__deleting_a_source_promotes_its_replica_which_then_deletes_cleanly(aws, stack):
    rds = aws("rds")
    rds.create_db_instance(DBInstanceIdentifier=stack, Engine="postgres", DBInstanceClass="db.t3.micro",
                           MasterUsername="labadmin", MasterUserPassword="a-long-enough-password",
                           AllocatedStorage=20, BackupRetentionPeriod=1)
    rds.create_db_instance_read_replica(DBInstanceIdentifier=f"{stack}-r", SourceDBInstanceIdentifier=stack)
    rds.delete_db_instance(DBInstanceIdentifier=stack, SkipFinalSnapshot=True)
    replica = rds.describe_db_instances(DBInstanceIdentifier=f"{stack}-r")["DBInstances"][0]
    assert "ReadReplicaSourceDBInstanceIdentifier" not in replica and not replica.get("StatusInfos")
    rds.delete_db_instance(DBInstanceIdentifier=f"{stack}-r", SkipFinalSnapshot=True)
    assert _db_state(aws, f"{stack}-r") in ("deleting", "<gone>")


def test_rds__a_replica_and_its_promotion_own_no_secret_so_deleting_it_keeps_the_sources(aws, stack):
    """A managed master secret belongs to one instance and goes only with it: a replica (and the
    instance it is promoted to) reports none, and deleting it, promoted or not, leaves the source's."""
    rds, sm = aws("rds"), aws("secretsmanager")
    _db(aws, stack)
    arn = rds.describe_db_instances(DBInstanceIdentifier=stack)["DBInstances"][0]["MasterUserSecret"]["SecretArn"]
    for name in (f"{stack}-r", f"{stack}-p"):
        rds.create_db_instance_read_replica(DBInstanceIdentifier=name, SourceDBInstanceIdentifier=stack)
        assert "MasterUserSecret" not in rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]
    rds.promote_read_replica(DBInstanceIdentifier=f"{stack}-p")
    assert "MasterUserSecret" not in rds.describe_db_instances(DBInstanceIdentifier=f"{stack}-p")["DBInstances"][0]
    for name in (f"{stack}-p", f"{stack}-r"):
        rds.delete_db_instance(DBInstanceIdentifier=name, SkipFinalSnapshot=True)
        assert sm.describe_secret(SecretId=arn)["ARN"] == arn and "DeletedDate" not in sm.describe_secret(SecretId=arn)
    assert rds.describe_db_instances(DBInstanceIdentifier=stack)["DBInstances"][0]["MasterUserSecret"]["SecretArn"] == arn
    # Its own, when asked for: a promoted instance may manage its password from then on.
    rds.create_db_instance_read_replica(DBInstanceIdentifier=f"{stack}-q", SourceDBInstanceIdentifier=stack)
    rds.promote_read_replica(DBInstanceIdentifier=f"{stack}-q")
    own = rds.modify_db_instance(DBInstanceIdentifier=f"{stack}-q", ManageMasterUserPassword=True,
                                 ApplyImmediately=True)["DBInstance"]["MasterUserSecret"]["SecretArn"]
    assert own != arn
    rds.delete_db_instance(DBInstanceIdentifier=f"{stack}-q", SkipFinalSnapshot=True)
    assert "DeletedDate" not in sm.describe_secret(SecretId=arn)
    rds.delete_db_instance(DBInstanceIdentifier=stack, SkipFinalSnapshot=True)


# --- found by a sequence of restores: a listing longer than a page made every later save fail ----

def test_tagging__a_listing_longer_than_a_page_leaves_nothing_a_save_cannot_hold():
    """In-process, as the server runs it: moto kept a generator for every pagination token, the
    last page's included, so every save after a long listing failed and the state was lost at the
    next stop. Tokens are freed when used, a saved backend holds none, and one from before the
    save is expired afterwards, as an AWS token is after 15 minutes."""
    from awslab.local import patches, persistence

    patches.apply()
    from moto.core.exceptions import ServiceException
    from moto.ec2.models import ec2_backends
    from moto.resourcegroupstaggingapi.models import resourcegroupstaggingapi_backends

    account, region = "310987654321", "eu-west-1"
    ec2 = ec2_backends[account][region]
    vpc = ec2.create_vpc("10.9.0.0/16")
    for i in range(60):
        ec2.create_security_group(f"g{i}", "d", vpc_id=vpc.id, tags={"awslab:stack": "long"})
    tagging = resourcegroupstaggingapi_backends[account][region]
    filters = [{"Key": "awslab:stack", "Values": ["long"]}]

    token, first = tagging.get_resources(tag_filters=filters)
    assert token and len(first) == 50
    last_token, rest = tagging.get_resources(pagination_token=token, tag_filters=filters)
    assert last_token is None and len(rest) == 10 and tagging._pages == {}   # the last page freed it

    half, _ = tagging.get_resources(tag_filters=filters)   # a listing left half-way, as a crashed client leaves it
    saved = persistence.dumps({"tagging": tagging})   # raised "cannot pickle 'generator' object" before
    loaded = persistence.loads(saved)["tagging"]
    assert loaded._pages == {}
    with pytest.raises(ServiceException) as expired:
        loaded.get_resources(pagination_token=half, tag_filters=filters)
    assert expired.value.code == "PaginationTokenExpiredException"
    assert len(tagging.get_resources(pagination_token=half, tag_filters=filters)[1]) == 10   # live: still valid


# --- what Ansible's rds_instance reads on its second run, as RDS answers it ----------------------

def test_rds_instance_fields__own_ids_gp3_baseline_ca_and_a_replicas_own_time_and_backups(aws, stack):
    rds = aws("rds")
    small = _db(aws, stack, StorageType="gp3", BackupRetentionPeriod=7)
    large = _db(aws, f"{stack}-l", StorageType="gp3", AllocatedStorage=400)
    gp2 = _db(aws, f"{stack}-g", StorageType="gp2")
    assert (small["Iops"], small["StorageThroughput"]) == (3000, 125)   # gp3 below 400 GiB
    assert (large["Iops"], large["StorageThroughput"]) == (12000, 500)
    assert "Iops" not in gp2 and "StorageThroughput" not in gp2
    assert len({small["DbiResourceId"], large["DbiResourceId"], gp2["DbiResourceId"]}) == 3
    assert re.fullmatch(r"db-[A-Z2-7]{26}", small["DbiResourceId"])
    assert small["CACertificateIdentifier"] == "rds-ca-rsa2048-g1"
    assert small["CertificateDetails"]["CAIdentifier"] == "rds-ca-rsa2048-g1"
    assert small["CertificateDetails"]["ValidTill"].year == 2061
    _poll(lambda: _db_state(aws, stack), "available")
    time.sleep(0.01)
    replica = rds.create_db_instance_read_replica(DBInstanceIdentifier=f"{stack}-r", SourceDBInstanceIdentifier=stack)
    replica = replica["DBInstance"]
    assert replica["DbiResourceId"] != small["DbiResourceId"]
    assert replica["InstanceCreateTime"] > small["InstanceCreateTime"]
    assert replica["BackupRetentionPeriod"] == 0 and replica["MultiAZ"] is False   # RDS: backups off on a new replica
    source = rds.describe_db_instances(DBInstanceIdentifier=stack)["DBInstances"][0]
    assert source["BackupRetentionPeriod"] == 7 and source["DbiResourceId"] == small["DbiResourceId"]
    _poll(lambda: _db_state(aws, f"{stack}-r"), "available")
    rds.promote_read_replica(DBInstanceIdentifier=f"{stack}-r")
    _poll(lambda: _db_state(aws, f"{stack}-r"), "available")
    promoted = rds.describe_db_instances(DBInstanceIdentifier=f"{stack}-r")["DBInstances"][0]
    assert promoted["BackupRetentionPeriod"] == 1   # PromoteReadReplica's default

    certs = rds.describe_certificates()
    assert certs["DefaultCertificateForNewLaunches"] == "rds-ca-rsa2048-g1"
    assert {c["CertificateIdentifier"] for c in certs["Certificates"]} == {
        "rds-ca-rsa2048-g1", "rds-ca-rsa4096-g1", "rds-ca-ecc384-g1"}
    one = rds.describe_certificates(CertificateIdentifier="rds-ca-ecc384-g1")["Certificates"]
    assert [c["CertificateIdentifier"] for c in one] == ["rds-ca-ecc384-g1"] and one[0]["CertificateType"] == "CA"
    with pytest.raises(ClientError) as missing:
        rds.describe_certificates(CertificateIdentifier="rds-ca-2015")
    assert _code(missing) == "CertificateNotFound"
    for ident in (f"{stack}-r", stack, f"{stack}-l", f"{stack}-g"):
        rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)


def test_cloudformation__create_complete_only_once_every_instance_is_available(aws, stack, latency):
    """CloudFormation waits for each resource to stabilize: the stack reads CREATE_IN_PROGRESS while
    its DB instance is `creating`, then CREATE_COMPLETE (with its event) once it is available."""
    latency("rds.create=3")
    props = {"Engine": "postgres", "EngineVersion": "16", "DBInstanceClass": "db.t3.micro", "AllocatedStorage": "20",
             "MasterUsername": "labadmin", "MasterUserPassword": "a-long-password-1", "DBInstanceIdentifier": stack}
    cfn = aws("cloudformation")
    cfn.create_stack(StackName=stack, TemplateBody=json.dumps(
        {"Resources": {"Db": {"Type": "AWS::RDS::DBInstance", "Properties": props}}}))

    def stack_and_db():
        return cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"], _db_state(aws, stack)

    assert stack_and_db() == ("CREATE_IN_PROGRESS", "creating")
    seen = _poll(stack_and_db, ("CREATE_COMPLETE", "available"), timeout=30)
    assert ("CREATE_COMPLETE", "creating") not in seen, seen
    events = [e["ResourceStatus"] for e in cfn.describe_stack_events(StackName=stack)["StackEvents"]
              if e["LogicalResourceId"] == stack]
    assert events.count("CREATE_COMPLETE") == 1
    cfn.delete_stack(StackName=stack)


def test_cloudformation__getatt_with_a_dotted_attribute_in_the_short_and_string_forms(aws, stack):
    """`!GetAtt Db.Endpoint.Address` splits at the first dot only, as CloudFormation does (moto split
    it at every dot, and every DescribeStacks of the stack failed); so does the string form."""
    template = f"""
Resources:
  Db:
    Type: AWS::RDS::DBInstance
    Properties:
      DBInstanceIdentifier: {stack}
      Engine: postgres
      EngineVersion: "16"
      DBInstanceClass: db.t3.micro
      AllocatedStorage: "20"
      MasterUsername: labadmin
      MasterUserPassword: a-long-password-1
Outputs:
  Address:
    Value: !GetAtt Db.Endpoint.Address
  Port:
    Value:
      Fn::GetAtt: Db.Endpoint.Port
  Listed:
    Value: !GetAtt [Db, Endpoint.Address]
"""
    cfn = aws("cloudformation")
    cfn.create_stack(StackName=stack, TemplateBody=template)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName=stack)["Stacks"][0]["Outputs"]}
    address = aws("rds").describe_db_instances(DBInstanceIdentifier=stack)["DBInstances"][0]["Endpoint"]["Address"]
    assert outputs == {"Address": address, "Port": "5432", "Listed": address}
    cfn.delete_stack(StackName=stack)


def test_cloudformation__a_roles_managed_policies_are_attached_so_ssm_manages_its_instance(aws, stack):
    """`AWS::IAM::Role`'s `ManagedPolicyArns` are attached (moto dropped them): the lab's host role,
    made by a template or a StackSet, carries AmazonSSMManagedInstanceCore, as `awslab up` attaches it."""
    template = f"""
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties:
      RoleName: {stack}-host
      AssumeRolePolicyDocument:
        Statement: [{{Effect: Allow, Principal: {{Service: ec2.amazonaws.com}}, Action: "sts:AssumeRole"}}]
      ManagedPolicyArns: [arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore]
"""
    cfn = aws("cloudformation")
    cfn.create_stack(StackName=stack, TemplateBody=template)
    attached = aws("iam").list_attached_role_policies(RoleName=f"{stack}-host")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AmazonSSMManagedInstanceCore"]
    cfn.delete_stack(StackName=stack)   # detached first, as CloudFormation does: DeleteRole refuses it attached
    deadline = time.monotonic() + 30
    while f"{stack}-host" in [r["RoleName"] for r in aws("iam").list_roles()["Roles"]]:
        assert time.monotonic() < deadline, cfn.describe_stacks(StackName=stack)["Stacks"][0].get("StackStatusReason")
        time.sleep(0.1)


def test_state__amazon_amis_are_not_saved_but_come_back_as_they_were_with_the_accounts_own(monkeypatch):
    """In-process, as the server saves: Amazon's AMIs (and their snapshots) are left out of the
    saved state and made again at load, each snapshot under the id it had; an account's own AMI,
    its snapshot and its tags are saved as they are."""
    import boto3
    from moto import mock_aws

    from awslab.local import patches, persistence

    patches.apply()
    monkeypatch.delenv("AWS_ENDPOINT_URL")   # moto's in-process mock answers, no server
    with mock_aws():
        from moto.ec2.models import ec2_backends

        ec2 = boto3.client("ec2", region_name="eu-west-1")
        backend = ec2_backends["123456789012"]["eu-west-1"]
        amazon = next(a for a in backend.amis.values() if a.owner_alias == "amazon")
        run = ec2.run_instances(ImageId=amazon.id, MinCount=1, MaxCount=1, InstanceType="t3.micro")
        own = ec2.create_image(InstanceId=run["Instances"][0]["InstanceId"], Name="mine",
                               TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": "k", "Value": "v"}]}])["ImageId"]
        before = {i: (a.owner_alias, a.ebs_snapshot.id) for i, a in backend.amis.items()}
        snapshots = set(backend.snapshots)

        saved = persistence.dumps(persistence.snapshot())
        assert amazon.name and amazon.name.encode() not in saved and b"mine" in saved
        persistence.restore(persistence.loads(saved))
        loaded = ec2_backends["123456789012"]["eu-west-1"]
        assert loaded is not backend
        assert {i: (a.owner_alias, a.ebs_snapshot.id) for i, a in loaded.amis.items()} == before
        assert set(loaded.snapshots) == snapshots
        assert all(a.ec2_backend is loaded for a in loaded.amis.values())
        image = ec2.describe_images(ImageIds=[own])["Images"][0]
        assert image["Name"] == "mine" and image["Tags"] == [{"Key": "k", "Value": "v"}]
        assert ec2.describe_images(ImageIds=[amazon.id])["Images"][0]["OwnerId"] == amazon.owner_id


# --- speed patches: what moto redid on every key and request, done once --------------------------

def test_kms__a_symmetric_key_makes_no_private_key_until_one_is_used_and_an_asymmetric_key_signs():
    """In-process: moto made an RSA 2048 key for every KMS key (the aws/rds key of each account and
    region among them); a symmetric key now holds none until something reads it, saves and loads
    without one, and an RSA key still signs and verifies."""
    from awslab.local import patches, persistence

    patches.apply()
    from moto.kms.models import KmsBackend

    kms = KmsBackend("us-east-1", "210987654321")
    arn = kms.describe_key("alias/aws/rds").arn   # made at its first mention, as moto does
    key = kms.keys[arn.rsplit("/", 1)[1]]
    assert key.key_spec == "SYMMETRIC_DEFAULT" and key.private_key.made is None
    again = persistence.loads(persistence.dumps({"key": key}))["key"]
    assert again.private_key.made is None and again.id == key.id

    signer = kms.create_key(None, "SIGN_VERIFY", "RSA_2048", "signs", None)
    _, signature, algorithm = kms.sign(signer.id, b"lab", "RSASSA_PSS_SHA_256")
    assert kms.verify(signer.id, b"lab", signature, algorithm)[1] is True
    assert kms.verify(signer.id, b"lab!", signature, algorithm)[1] is False


def test_dispatch__a_response_class_lists_its_methods_once(monkeypatch):
    """In-process: moto looks up the action's handler among the class's methods on every request;
    the list is made once per class (and a caller's change to it is its own)."""
    import inspect

    from awslab.local import patches

    patches.apply()
    from moto.core import responses
    from moto.rds.responses import RDSResponse

    first = responses.method_names_from_class(RDSResponse)
    assert "describe_db_instances" in first
    assert sorted(first) == sorted(n for n, _ in inspect.getmembers(RDSResponse, inspect.isfunction))
    first.append("not_a_method")
    listed, getmembers = [], inspect.getmembers
    monkeypatch.setattr(inspect, "getmembers", lambda *a, **kw: listed.append(a[0]) or getmembers(*a, **kw))
    assert "not_a_method" not in responses.method_names_from_class(RDSResponse)
    assert listed == []   # not listed again


def test_serializer__answers_what_moto_answers_with_each_members_names_worked_out_once(monkeypatch):
    """In-process: the serializer's names for a member (its key, the model's name, the class's and
    the shape's prefixes cut, moto's ``Meta`` aliases, each in two spellings) are worked out once
    per class, shape and key, and the answer is moto's own, byte for byte, response transformers
    included: objects and dicts, found and absent members, lists of structures."""
    from datetime import datetime, timezone

    from awslab.local import patches

    patches.apply()
    from moto.core.serialize import QuerySerializer, ResponseSerializer, XFormedAttributePicker
    from moto.core.utils import get_service_model

    from awslab.local.patches import _patch, core

    (ours,) = [p for p in _patch.registry.patches() if "moto-serializer-aliases" in p.gaps]
    model = get_service_model("rds")

    class DBInstance:   # a model object: snake_case attributes, one under the class's prefix cut
        class Meta:
            serialization_aliases = {"Engine": "engine_name"}

        def __init__(self, name: str) -> None:
            self.identifier, self.engine_name, self.db_instance_status = name, "postgres", "available"
            self.engine = "not-this-one"   # the Meta alias comes first
            self.allocated_storage, self.multi_az = 20, True
            self.instance_create_time = datetime(2026, 12, 7, tzinfo=timezone.utc)
            self.vpc_security_groups = [{"VpcSecurityGroupId": "sg-1", "Status": "active"}]

    result = {"DBInstances": [DBInstance("one"), {"DBInstanceIdentifier": "two", "Engine": "mysql"}, DBInstance("three")],
              "Marker": "m"}
    transformers = {"DBInstance.DBInstanceStatus": lambda status: status and status.upper()}

    def answer() -> str:
        picker = XFormedAttributePicker(response_transformers=transformers)
        return QuerySerializer(model.operation_model("DescribeDBInstances"), value_picker=picker).serialize(result)["body"]

    core._keys.clear()
    patched = answer()
    assert core._keys and patched == answer()   # the names, once worked out, give the same answer
    monkeypatch.setattr(ResponseSerializer, "get_value", ours.original)
    assert patched == answer()
    monkeypatch.undo()
    monkeypatch.setattr(core, "KEYS_MAX", 5)   # bounded: an error's shape is made for each answer
    core._keys.clear()
    assert answer() == patched and 0 < len(core._keys) <= 5
    for want in ("<DBInstanceIdentifier>one</DBInstanceIdentifier>", "<Engine>postgres</Engine>", "<Engine>mysql</Engine>",
                 "<DBInstanceStatus>AVAILABLE</DBInstanceStatus>", "<MultiAZ>true</MultiAZ>", "<VpcSecurityGroupId>sg-1<"):
        assert want in patched, (want, patched)


def test_xml_answers__written_directly_byte_for_byte_as_xmltodict_writes_them(monkeypatch):
    """In-process: every XML answer moto's serializer writes in a small lab (EC2's, RDS's,
    ElastiCache's, IAM's, errors among them) comes out of the direct writer exactly as xmltodict
    writes it, and a document the writer leaves alone (pretty, a comment, a name xmltodict
    refuses) is xmltodict's, its errors included."""
    import boto3
    import pytest
    import xmltodict
    from botocore.exceptions import ClientError
    from moto import mock_aws

    from awslab.local import patches
    from awslab.local.patches import core

    patches.apply()
    assert core._writes_as_xmltodict()
    original = xmltodict.unparse.__wrapped__
    compared = []

    def checked(input_dict, full_document, short):
        mine = direct(input_dict, full_document, short)
        compared.append((full_document, short))
        assert mine == original(input_dict, full_document=full_document, short_empty_elements=short)
        return mine

    direct = core._direct
    monkeypatch.setattr(core, "_direct", checked)
    monkeypatch.delenv("AWS_ENDPOINT_URL")   # moto's in-process mock answers, no server
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/24", AvailabilityZone=f"us-east-1{z}")["Subnet"]["SubnetId"]
                   for i, z in enumerate("ab")]
        group = ec2.create_security_group(GroupName="g", Description="a <lab> & its group", VpcId=vpc)["GroupId"]
        ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": group}]}])
        ec2.describe_security_groups(GroupIds=[group])
        ec2.describe_vpcs()
        rds = boto3.client("rds", region_name="us-east-1")
        rds.create_db_subnet_group(DBSubnetGroupName="sg", DBSubnetGroupDescription="d", SubnetIds=subnets)
        rds.create_db_instance(DBInstanceIdentifier="db", Engine="postgres", DBInstanceClass="db.t3.micro",
                               MasterUsername="u", ManageMasterUserPassword=True, AllocatedStorage=20,
                               DBSubnetGroupName="sg", VpcSecurityGroupIds=[group], MultiAZ=True,
                               Tags=[{"Key": "note", "Value": "<&>\"'"}])
        assert rds.describe_db_instances()["DBInstances"][0]["TagList"] == [{"Key": "note", "Value": "<&>\"'"}]
        with pytest.raises(ClientError, match="DBInstanceNotFound"):
            rds.describe_db_instances(DBInstanceIdentifier="nope")
        cache = boto3.client("elasticache", region_name="us-east-1")
        cache.create_cache_subnet_group(CacheSubnetGroupName="c", CacheSubnetGroupDescription="d", SubnetIds=subnets)
        cache.describe_cache_subnet_groups()
        boto3.client("iam", region_name="us-east-1").list_roles()
    assert len(compared) >= 12 and {short for _, short in compared} == {True}
    assert {full for full, _ in compared} == {True, False}   # EC2's documents and the Query protocol's bodies
    # Left to xmltodict: what the writer does not do, said in xmltodict's words.
    assert xmltodict.unparse({"a": {"b": "1"}}, pretty=True) == original({"a": {"b": "1"}}, pretty=True)
    assert xmltodict.unparse({"a": {"#comment": "c", "b": "1"}}) == original({"a": {"#comment": "c", "b": "1"}})
    with pytest.raises(ValueError, match="whitespace not allowed"):
        xmltodict.unparse({"a b": "1"})
    with pytest.raises(ValueError, match="Document must have exactly one root"):
        xmltodict.unparse({"a": "1", "b": "2"})


def test_error_answers__each_services_error_table_is_built_once_and_errors_answer_as_before(monkeypatch):
    """In-process: moto built a service's whole table of error shapes for every error it answered;
    it is built once per service, and the errors still answer with their codes and messages."""
    import boto3
    import pytest
    from botocore.exceptions import ClientError
    from moto import mock_aws
    from moto.core import errors

    from awslab.local import patches

    patches.apply()
    built = []
    make = errors.ErrorLookupFactory._create_error_lut
    monkeypatch.setattr(errors.ErrorLookupFactory, "_create_error_lut",
                        staticmethod(lambda model: built.append(model.service_name) or make(model)))
    monkeypatch.delenv("AWS_ENDPOINT_URL")   # moto's in-process mock answers, no server
    with mock_aws():
        rds = boto3.client("rds", region_name="us-east-1")
        for _ in range(3):
            with pytest.raises(ClientError) as missing:
                rds.describe_db_instances(DBInstanceIdentifier="nope")
            assert missing.value.response["Error"]["Code"] == "DBInstanceNotFound"
            assert "nope" in missing.value.response["Error"]["Message"]
        with pytest.raises(ClientError) as ec2_missing:
            boto3.client("ec2", region_name="us-east-1").describe_vpcs(VpcIds=["vpc-00000000"])
        assert ec2_missing.value.response["Error"]["Code"] == "InvalidVpcID.NotFound"
    assert built.count("rds") <= 1 and built.count("ec2") <= 1, built


def test_request_path__routes_matched_once_a_request_hosts_looked_up_once_and_request_ids_drawn_at_once(monkeypatch):
    """In-process: moto matched each request against its service's routes four times, each host
    against every service's URL patterns, and drew each 52-character request id a character at a
    time; each is done once now, and the answers are as before."""
    import random
    import re

    import boto3
    from moto import mock_aws
    from moto.core import routing
    from moto.moto_api._internal import mock_random
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    from awslab.local import patches
    from awslab.local.patches import core

    patches.apply()
    matched = []
    match = routing.ServiceOperationRouter.match
    monkeypatch.setattr(routing.ServiceOperationRouter, "match", lambda self, request: matched.append(1) or match(self, request))
    monkeypatch.delenv("AWS_ENDPOINT_URL")   # moto's in-process mock answers, no server
    with mock_aws():
        rds = boto3.client("rds", region_name="us-east-1")
        answer = rds.describe_db_instances()
        assert answer["DBInstances"] == [] and len(matched) == 1, matched   # moto alone: 4
        ids = {rds.describe_db_instances()["ResponseMetadata"]["RequestId"] for _ in range(5)}
        assert len(ids) == 5 and all(re.fullmatch(r"[A-Za-z0-9]{52}", i) for i in ids), ids
        assert len(matched) == 6
        ec2 = boto3.client("ec2", region_name="us-east-1")
        assert ec2.describe_vpcs()["Vpcs"]   # the default VPC: another service, matched once too
        assert len(matched) == 7

    # One draw of moto's generator, reproducible under its seed, moto's alphabet and cases.
    draws = []
    choice = random.Random.choice
    monkeypatch.setattr(random.Random, "choice", lambda self, seq: draws.append(1) or choice(self, seq))

    def three() -> list[str]:
        mock_random.seed(7)
        return [mock_random.get_random_string(length=52), mock_random.get_random_string(include_digits=False),
                mock_random.get_random_string(length=12, lower_case=True)]

    try:
        first = three()
        assert three() == first
    finally:
        mock_random.seed()   # moto's randomness as it was for the tests after this one
    assert draws == []   # moto alone: a call per character
    assert re.fullmatch(r"[A-Za-z0-9]{52}", first[0]) and re.fullmatch(r"[A-Za-z]{20}", first[1])
    assert re.fullmatch(r"[a-z0-9]{12}", first[2])

    # A host is matched against the URL patterns once; what is kept is what moto finds.
    looked = []
    app = DomainDispatcherApplication(lambda service: None)
    patterns = app.backend_url_patterns
    app.backend_url_patterns = [(name, _Counting(pattern, looked)) for name, pattern in patterns]
    core._backend_for_host.clear()
    hosts = ["rds.us-east-1.amazonaws.com", "ec2.eu-west-1.amazonaws.com", "elasticache.us-west-2.amazonaws.com"]
    first_pass = [app.get_backend_for_host(h) for h in hosts]
    after_first = len(looked)
    assert [app.get_backend_for_host(h) for h in hosts * 3] == first_pass * 3
    assert len(looked) == after_first > 0
    assert first_pass == ["rds", "ec2", "elasticache"]


class _Counting:
    """A compiled pattern that counts its matches."""

    def __init__(self, pattern, seen: list) -> None:
        self._pattern, self._seen = pattern, seen

    def match(self, text: str):
        self._seen.append(text)
        return self._pattern.match(text)
