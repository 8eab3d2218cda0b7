"""database.deployment: the Multi-AZ DB cluster's lab checks (RDS's rules, refused before any
call with one line naming the fix) and its place in the topology and the plan. Pure: no AWS."""

from __future__ import annotations

import pytest

from awslab.errors import LabError
from awslab.spec.lab import load_lab
from awslab.spec.pricing import estimate
from awslab.spec.topology import desired

CLUSTER = "database.deployment=cluster"


@pytest.mark.parametrize("overrides, key, words", [
    (["database.engine=mysql", "database.engine_version=8.0", "database.deployment=bogus"], "database.deployment",
     "unknown deployment"),
    ([CLUSTER, "network.availability_zones=us-east-1a,us-east-1b"], "network.availability_zones", "needs three AZs"),
    ([CLUSTER, "database.cluster_instance_class=db.t3.micro"], "database.cluster_instance_class", "not a class RDS offers"),
    ([CLUSTER, "database.storage_type=gp2"], "database.storage_type", "does not take gp2"),
    ([CLUSTER, "database.storage_type=io1", "database.allocated_storage_gib=100"], "database.iops", "needs Iops"),
    ([CLUSTER, "database.iops=3000"], "database.iops", "baseline"),
    ([CLUSTER, "database.multi_az=false"], "database.multi_az", "always Multi-AZ"),
    ([CLUSTER, "database.read_replicas=3"], "database.read_replicas", "two readable standbys"),
    (["database.iops=1000"], "database.iops", "cluster's storage only"),
])
def test_cluster__what_rds_refuses_is_refused_naming_the_key(overrides, key, words):
    with pytest.raises(LabError) as caught:
        load_lab("week6", overrides=overrides)
    assert caught.value.key == key and words in str(caught.value), str(caught.value)
    assert caught.value.hint


def test_cluster__an_engine_without_a_multi_az_db_cluster_is_refused():
    from awslab.spec import deployment

    lab = load_lab("week6", overrides=[CLUSTER])
    # MariaDB (or Oracle, SQL Server, Db2) has a Multi-AZ instance but no Multi-AZ DB cluster.
    from dataclasses import replace

    with pytest.raises(LabError, match="no Multi-AZ DB cluster for mariadb"):
        deployment.validate(replace(lab, database=replace(lab.database, engine="mariadb")))


def test_cluster__io1_with_iops_in_range_is_taken():
    lab = load_lab("week6", overrides=[CLUSTER, "database.storage_type=io1", "database.allocated_storage_gib=100",
                                        "database.iops=1000"])
    assert lab.database.iops == 1000


def test_cluster__topology_has_a_third_subnet_the_cluster_and_its_group_and_no_instance_or_replica():
    keys = {d.key: d for d in desired(load_lab("week6", overrides=[CLUSTER]), "s", "us-east-1")}
    assert {"network.subnet.private-c", "db.cluster", "db.cluster-parameter-group"} <= set(keys)
    assert not {"db.primary", "db.parameter-group"} & set(keys) and not any(k.startswith("db.replica.") for k in keys)
    assert keys["network.subnet.private-c"].spec["az_index"] == 2
    assert keys["db.subnet-group"].spec["subnets"][-1] == "network.subnet.private-c"
    assert keys["db.cluster"].deps == ("db.subnet-group", "db.cluster-parameter-group", "sg.db")
    instance = {d.key for d in desired(load_lab("week6"), "s", "us-east-1")}
    assert "network.subnet.private-c" not in instance and "db.cluster" not in instance and "db.primary" in instance


def test_cluster__costs_three_instances_of_its_class():
    line = next(l for l in estimate(load_lab("week6", overrides=[CLUSTER])) if l.item.startswith("RDS postgres"))
    assert "db.m6gd.large Multi-AZ DB cluster (3 instances)" in line.item


def test_cli__bad_cluster_input_exits_2_with_one_line_before_any_call(awslab, api_calls):
    result = awslab("plan", "week6", "--set", CLUSTER, "--set", "database.cluster_instance_class=db.t3.micro")
    assert result.code == 2 and api_calls == []
    assert len(result.err.strip().splitlines()) <= 2 and "database.cluster_instance_class" in result.err, result.err


def test_export__a_cluster_is_written_as_a_cluster_not_as_an_instance(awslab):
    result = awslab("export", "cloudformation", "week6", "--set", CLUSTER)
    assert result.code == 0 and "Type: AWS::RDS::DBCluster\n" in result.out, result.err
    assert "AWS::RDS::DBInstance" not in result.out and "SourceDBInstanceIdentifier" not in result.out
