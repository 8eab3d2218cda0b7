"""A Multi-AZ DB cluster on the local AWS, against RDS's shapes: CreateDBCluster's refusals with
RDS's errors, the three members (one writer, three AZs, listed by DescribeDBInstances with the
cluster's id), the writer and reader endpoints, creating -> available on the timeline, failover,
DeleteDBCluster's final-snapshot choice; then the lab's own lifecycle: up, verify, failover, down
with a final DB cluster snapshot. Control plane only here (the shared server runs no engines;
test_db_cluster_engines.py has the cluster on real PostgreSQL)."""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError

from conftest import tags_of


def _network(aws, name: str, zones: str) -> None:
    ec2, rds = aws("ec2"), aws("rds")
    vpc = ec2.create_vpc(CidrBlock="10.70.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.70.{i}.0/24", AvailabilityZone=f"us-east-1{z}")["Subnet"]["SubnetId"]
               for i, z in enumerate(zones)]
    rds.create_db_subnet_group(DBSubnetGroupName=name, DBSubnetGroupDescription="t", SubnetIds=subnets)


def _code(call) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"]


@pytest.mark.lifecycle
def test_api__refusals_members_endpoints_states_failover_and_final_snapshot(aws, stack, latency):
    rds = aws("rds")
    _network(aws, f"{stack}-3", "abc")
    _network(aws, f"{stack}-2", "ab")
    ok = dict(Engine="postgres", EngineVersion="16", DBClusterInstanceClass="db.m6gd.large", AllocatedStorage=20,
              StorageType="gp3", MasterUsername="labadmin", ManageMasterUserPassword=True, CopyTagsToSnapshot=True,
              DBSubnetGroupName=f"{stack}-3", Tags=[{"Key": "awslab:stack", "Value": stack}])

    def create(**changes):
        return lambda: rds.create_db_cluster(DBClusterIdentifier=f"{stack}-bad", **{**ok, **changes})

    assert _code(create(DBSubnetGroupName=f"{stack}-2")) == "DBSubnetGroupDoesNotCoverEnoughAZs"
    assert _code(create(DBClusterInstanceClass="db.t3.micro")) == "InvalidParameterCombination"
    assert _code(create(StorageType="gp2")) == "InvalidParameterCombination"
    assert _code(create(StorageType="io1", AllocatedStorage=100)) == "InvalidParameterCombination"   # no Iops
    assert _code(create(Engine="mariadb")) == "InvalidParameterValue"
    assert _code(create(MasterUserPassword="longenough1")) == "InvalidParameterCombination"

    latency("rds.cluster.create=1.2,rds.cluster.failover=0.6,rds.delete=0.6")
    made = rds.create_db_cluster(DBClusterIdentifier=stack, **ok)["DBCluster"]
    assert made["Status"] == "creating" and made["EngineVersion"] == "16.14"
    assert made["Endpoint"].startswith(f"{stack}.cluster-") and made["ReaderEndpoint"].startswith(f"{stack}.cluster-ro-")
    members = {m["DBInstanceIdentifier"]: m for m in made["DBClusterMembers"]}
    assert sorted(members) == [f"{stack}-instance-{i}" for i in (1, 2, 3)]
    assert [i for i, m in members.items() if m["IsClusterWriter"]] == [f"{stack}-instance-1"]
    instances = rds.describe_db_instances(Filters=[{"Name": "db-cluster-id", "Values": [stack]}])["DBInstances"]
    assert {db["DBClusterIdentifier"] for db in instances} == {stack}
    assert len({db["AvailabilityZone"] for db in instances}) == 3
    assert {db["DBInstanceClass"] for db in instances} == {"db.m6gd.large"}
    assert {db["DBInstanceStatus"] for db in instances} == {"creating"}
    assert _code(lambda: rds.failover_db_cluster(DBClusterIdentifier=stack)) == "InvalidDBClusterStateFault"
    time.sleep(1.3)
    described = rds.describe_db_clusters(DBClusterIdentifier=stack)["DBClusters"][0]
    assert described["Status"] == "available" and described["MultiAZ"] is True
    assert described["StorageType"] == "gp3" and described["DBClusterInstanceClass"] == "db.m6gd.large"

    after = rds.failover_db_cluster(DBClusterIdentifier=stack)["DBCluster"]
    assert [m["DBInstanceIdentifier"] for m in after["DBClusterMembers"] if m["IsClusterWriter"]] != [f"{stack}-instance-1"]
    assert rds.describe_db_clusters(DBClusterIdentifier=stack)["DBClusters"][0]["Status"] == "failing-over"
    assert _code(lambda: rds.stop_db_cluster(DBClusterIdentifier=stack)) == "InvalidDBClusterStateFault"
    time.sleep(0.7)
    # DeleteDBCluster asks for the final-snapshot choice, as DeleteDBInstance does; the members go with it.
    assert _code(lambda: rds.delete_db_cluster(DBClusterIdentifier=stack)) == "InvalidParameterCombination"
    rds.delete_db_cluster(DBClusterIdentifier=stack, FinalDBSnapshotIdentifier=f"{stack}-final")
    assert rds.describe_db_clusters(DBClusterIdentifier=stack)["DBClusters"][0]["Status"] == "deleting"
    assert rds.describe_db_instances(Filters=[{"Name": "db-cluster-id", "Values": [stack]}])["DBInstances"] == []
    snap = rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=f"{stack}-final")["DBClusterSnapshots"][0]
    assert tags_of(snap["TagList"])["awslab:stack"] == stack   # CopyTagsToSnapshot
    time.sleep(0.7)
    assert _code(lambda: rds.describe_db_clusters(DBClusterIdentifier=stack)) == "DBClusterNotFoundFault"
    # Restored from that snapshot (its cluster's password was managed: moto failed on it): three new
    # members, a managed secret of its own.
    restored = rds.restore_db_cluster_from_snapshot(DBClusterIdentifier=f"{stack}-r", SnapshotIdentifier=f"{stack}-final",
                                                    Engine="postgres")["DBCluster"]
    assert restored["Status"] == "creating" and restored["DBClusterInstanceClass"] == "db.m6gd.large"
    assert sorted(m["DBInstanceIdentifier"] for m in restored["DBClusterMembers"]) == [f"{stack}-r-instance-{i}" for i in (1, 2, 3)]
    assert restored["MasterUserSecret"]["SecretArn"] != made["MasterUserSecret"]["SecretArn"]
    rds.delete_db_cluster(DBClusterIdentifier=f"{stack}-r", SkipFinalSnapshot=True)


@pytest.mark.lifecycle
def test_lab__up_cluster_verify_failover_then_down_keeps_a_final_cluster_snapshot(awslab, aws, stack):
    up = awslab("up", "week6", "--name", stack, "--set", "database.deployment=cluster")
    assert up.code == 0, up.err[-2000:]
    assert "db.cluster" in up.out and "cluster-ro-" in up.out and "db.primary" not in up.out
    cluster = aws("rds").describe_db_clusters(DBClusterIdentifier=f"{stack}-db")["DBClusters"][0]
    assert cluster["DBClusterParameterGroup"] == f"{stack}-db-cluster" and cluster["StorageEncrypted"]
    assert cluster["MasterUserSecret"]["SecretArn"] and cluster["PubliclyAccessible"] is False

    verify = awslab("verify", "--name", stack, "--output", "json")
    results = {r["id"]: r for r in json.loads(verify.out)}
    assert verify.code == 0, [r for r in results.values() if r["status"] == "FAIL"]
    assert results["spec.db.multi-az"]["status"] == "PASS" and "3 DB instances in 3 AZs" in results["spec.db.multi-az"]["detail"]
    assert results["spec.db.parameters"]["status"] == "PASS" and results["inventory.db.cluster"]["status"] == "PASS"
    assert results["path.app-to-db"]["detail"].startswith("3 DB instance(s)")
    assert results["live.host-to-db"]["status"] == "SKIP"

    again = awslab("plan", "week6", "--name", stack, "--set", "database.deployment=cluster", "--output", "json")
    assert again.code == 0 and json.loads(again.out)["counts"] == {"keep": 20}, again.out

    # A setting RDS changes in place (ModifyDBCluster): planned as an update, applied by `up` to the
    # cluster and its three members, and verify's spec check passes on it (it was kept as it was).
    bigger = ("--set", "database.deployment=cluster", "--set", "database.cluster_instance_class=db.m6gd.xlarge")
    planned = awslab("plan", "week6", "--name", stack, *bigger)
    assert "database.cluster_instance_class: db.m6gd.large -> db.m6gd.xlarge" in planned.out, planned.out
    assert awslab("up", "week6", "--name", stack, *bigger).code == 0
    rds = aws("rds")
    assert rds.describe_db_clusters(DBClusterIdentifier=f"{stack}-db")["DBClusters"][0]["DBClusterInstanceClass"] == "db.m6gd.xlarge"
    members = rds.describe_db_instances(Filters=[{"Name": "db-cluster-id", "Values": [f"{stack}-db"]}])["DBInstances"]
    assert [m["DBInstanceClass"] for m in members] == ["db.m6gd.xlarge"] * 3
    checked = {r["id"]: r["status"] for r in json.loads(awslab("verify", "--name", stack, "--output", "json").out)}
    assert checked["spec.db.class"] == "PASS"

    failover = awslab("failover", "--name", stack, "--output", "json")
    assert failover.code == 0, failover.err[-1500:]
    moved = json.loads(failover.out)
    assert moved["writer_before"] == f"{stack}-db-instance-1" and moved["writer_after"] != moved["writer_before"]
    assert moved["az_before"] != moved["az_after"]

    down = awslab("down", "--name", stack, "--yes")
    assert down.code == 0, down.err[-1500:]
    assert f"{stack}-db-final-" in down.out + down.err
    finals = [s for s in aws("rds").describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"]
              if s["DBClusterSnapshotIdentifier"].startswith(f"{stack}-db-final-")]
    assert len(finals) == 1
    gone = awslab("down", "--name", stack, "--delete-snapshots", "--yes")
    assert gone.code == 0, gone.err[-1500:]


@pytest.mark.lifecycle
def test_api__what_a_deleting_cluster_uses_stays_in_use_until_it_is_gone(aws, stack, latency):
    """Its subnet group, security group and DB cluster parameter group are refused as RDS and EC2
    refuse them while the cluster reads `deleting` (its members are gone at once); a stack's
    delete retries them until the cluster is, as CloudFormation deletes them after it."""
    ec2, rds = aws("ec2"), aws("rds")
    _network(aws, stack, "abc")
    vpc = rds.describe_db_subnet_groups(DBSubnetGroupName=stack)["DBSubnetGroups"][0]["VpcId"]
    sg = ec2.create_security_group(GroupName=stack, Description="t", VpcId=vpc)["GroupId"]
    rds.create_db_cluster_parameter_group(DBClusterParameterGroupName=stack, DBParameterGroupFamily="postgres16",
                                          Description="t")
    rds.create_db_cluster(DBClusterIdentifier=stack, Engine="postgres", EngineVersion="16",
                          DBClusterInstanceClass="db.m6gd.large", AllocatedStorage=20, StorageType="gp3",
                          MasterUsername="labadmin", ManageMasterUserPassword=True, DBSubnetGroupName=stack,
                          VpcSecurityGroupIds=[sg], DBClusterParameterGroupName=stack)
    latency("rds.delete=0.6")
    rds.delete_db_cluster(DBClusterIdentifier=stack, SkipFinalSnapshot=True)
    deletes = [lambda: rds.delete_db_subnet_group(DBSubnetGroupName=stack), lambda: ec2.delete_security_group(GroupId=sg),
               lambda: rds.delete_db_cluster_parameter_group(DBClusterParameterGroupName=stack)]
    assert [_code(d) for d in deletes] == ["InvalidDBSubnetGroupStateFault", "DependencyViolation",
                                           "InvalidDBParameterGroupState"]
    time.sleep(0.7)
    assert _code(lambda: rds.describe_db_clusters(DBClusterIdentifier=stack)) == "DBClusterNotFoundFault"
    for delete in deletes:
        delete()
