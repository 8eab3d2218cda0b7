"""A Multi-AZ DB cluster stack (``database.deployment = "cluster"``) on real engines, used as a
learner uses it: verify's live checks write through the writer endpoint and read through the
reader endpoint (a standby, which refuses a write) from the stack's host, and time out once the DB
security group's rule is revoked; `awslab connect reader` reaches a standby; `awslab drill
--compare` measures the cluster against a temporary Multi-AZ DB instance made beside it and
removes that instance. One `up` serves every check (the suite is CPU-bound)."""

from __future__ import annotations

import json
import os

import boto3
import pytest
from conftest import shell

pytestmark = [pytest.mark.lifecycle, pytest.mark.engines]


def _client(server, service: str):
    return boto3.client(service, region_name="us-east-1", endpoint_url=server.endpoint_url,
                        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"])


def _instances(rds, stack: str) -> list[str]:
    """The stack's DB instances that are not the cluster's members (a drill's temporary one)."""
    return [db["DBInstanceIdentifier"] for db in rds.describe_db_instances()["DBInstances"]
            if db["DBInstanceIdentifier"].startswith(stack) and not db.get("DBClusterIdentifier")]


def _live(awslab, stack: str) -> dict:
    verify = awslab("verify", "--name", stack, "--check", "live", "--output", "json")
    return {r["id"]: r for r in json.loads(verify.out)}


def test_cluster__live_checks_connect_reader_drill_compare_and_a_revoked_rule(awslab, engines, stack):
    up = awslab("up", "week6", "--name", stack, "--set", "database.deployment=cluster")
    assert up.code == 0, up.err[-2000:]
    rds, ec2 = _client(engines, "rds"), _client(engines, "ec2")

    # verify: a row written and read back through the writer endpoint, over TLS; the reader
    # endpoint a standby that has the row and refuses a write.
    live = _live(awslab, stack)
    writer, reader = live["live.host-to-db"], live["live.db-reader"]
    assert (writer["status"], reader["status"]) == ("PASS", "PASS"), (writer, reader)
    assert "(writer endpoint)" in writer["detail"] and "over TLS (certificate verified)" in writer["detail"]
    assert "a connection without TLS was refused" in writer["detail"]
    assert "pg_is_in_recovery() true" in reader["detail"] and "a write was refused (read-only transaction)" in reader["detail"]
    assert "readable here after" in reader["detail"] and "cluster-ro-" in reader["detail"]

    # connect: db is the writer endpoint, reader a readable standby; replica names the reader.
    db_line, reader_line = (awslab("connect", w, "--name", stack) for w in ("db", "reader"))
    assert db_line.code == 0 and reader_line.code == 0, db_line.err + reader_line.err
    assert shell(db_line.out.strip(), "-tAc", "'SELECT pg_is_in_recovery()'") == "f"
    assert shell(reader_line.out.strip(), "-tAc", "'SELECT pg_is_in_recovery()'") == "t"
    assert shell(db_line.out.strip(), "-tAc", "'SELECT 1'") == "1"   # the writer's file survives the reader's
    as_json = json.loads(awslab("connect", "reader", "--name", stack, "--output", "json").out)
    assert as_json["id"] == f"{stack}-db" and ".cluster-ro-" in as_json["endpoint"]
    replica = awslab("connect", "replica", "--name", stack)
    assert replica.code == 2 and "awslab connect reader" in replica.err

    # verify on AWS runs a script on the host through SSM: the same two endpoints, as the host reaches them.
    from awslab.verify.ssm import LiveTarget, live_script, parse_live

    cluster = rds.describe_db_clusters(DBClusterIdentifier=f"{stack}-db")["DBClusters"][0]
    secret = cluster["MasterUserSecret"]["SecretArn"]
    targets = [LiveTarget(n, cluster[k], cluster["Port"], secret, "postgres", cluster["MasterUsername"], cluster["DatabaseName"])
               for n, k in (("db", "Endpoint"), ("reader", "ReaderEndpoint"))]
    out = _on_host(engines, stack, live_script(targets, "us-east-1"))
    assert parse_live(out, "db", "SELECT 1")[0] == "PASS" and "AWSLAB db login OK" in out, out
    assert parse_live(out, "reader", "SELECT pg_is_in_recovery()")[0] == "PASS" and "AWSLAB reader login OK" in out, out

    # drill --compare: bad input first (one line, exit 2, nothing made), then the two side by side.
    bad = awslab("drill", "--compare", "--maintenance", "--name", stack)
    assert bad.code == 2 and "--compare is a drill of its own" in bad.err and _instances(rds, stack) == []
    plain = awslab("drill", "--name", stack)   # the instance's drill names the one for a cluster
    assert plain.code == 2 and f"awslab drill --compare --name {stack}" in plain.err
    # On a real account it says what the temporary instance costs and asks (no terminal here: refused).
    on_aws = awslab("drill", "--compare", "--name", stack, "--target", "aws", "--endpoint-url", engines.endpoint_url)
    assert on_aws.code == 2 and "not confirmed" in on_aws.err and _instances(rds, stack) == []
    assert "extra cost while it exists: $0.0" in on_aws.err and "/hour" in on_aws.err and "without a final snapshot" in on_aws.err
    drill = awslab("drill", "--compare", "--name", stack, "--output", "json")
    assert drill.code == 0, drill.err[-3000:]
    result = json.loads(drill.out)
    assert {"stack", "instance", "cluster", "temporary", "profile", "aws_reference"} <= set(result)
    i, c = result["instance"], result["cluster"]
    for side in (i, c):
        assert side["writes_acknowledged"] > 50 and side["acknowledged_writes_lost"] == 0 and side["lost"] == []
        assert 0 < side["commit_ms_p50"] <= side["commit_ms_p95"] and 0 < side["downtime_s"] < 60
    assert c["reads_served"] > 0 and i["reads_served"] == 0 and i["reader_endpoint"] is None
    assert ".cluster-ro-" in c["reader_endpoint"] and c["id"] == f"{stack}-db"
    assert result["temporary"] == {"deployment": "instance", "id": f"{stack}-db-compare", "removed": True,
                                   "final_snapshot": False, "also_made": []}
    assert "without a final snapshot" in drill.err
    assert _instances(rds, stack) == [] and not rds.describe_db_snapshots(DBInstanceIdentifier=f"{stack}-db-compare")["DBSnapshots"]
    assert awslab("status", "--name", stack).out.count("db-compare") == 0
    from awslab.commands.drill_compare import print_result

    text = _printed(print_result, result)
    assert "MULTI-AZ DB INSTANCE" in text and "MULTI-AZ DB CLUSTER" in text and "AWS 60-120 s" in text
    assert "typically under 35 s" in text and "up to 2x faster" in text and "removed without a final snapshot" in text

    # The VPC decides as on AWS: without the DB group's rule for the host's group, both endpoints time out.
    groups = {g["GroupName"]: g["GroupId"] for g in ec2.describe_security_groups(
        Filters=[{"Name": "tag:awslab:stack", "Values": [stack]}])["SecurityGroups"]}
    rule = [{"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": groups[f"{stack}-app"]}]}]
    ec2.revoke_security_group_ingress(GroupId=groups[f"{stack}-db"], IpPermissions=rule)
    live = _live(awslab, stack)
    for check in ("live.host-to-db", "live.db-reader"):
        assert live[check]["status"] == "FAIL" and "timed out after 5 s" in live[check]["detail"], live[check]
        assert "awslab flows --rejected" in live[check]["hint"]

    printed = "".join(r.out + r.err for r in (db_line, reader_line, drill, bad)) + json.dumps(live)
    password = json.loads(_client(engines, "secretsmanager").get_secret_value(SecretId=secret)["SecretString"])["password"]
    assert password not in printed
    assert awslab("down", "--name", stack, "--yes", "--skip-final-snapshot").code == 0


def _on_host(server, stack: str, script: str) -> str:
    """``script`` run on the stack's host through SSM Run Command; its standard output."""
    import time

    ec2, ssm = _client(server, "ec2"), _client(server, "ssm")
    host = ec2.describe_instances(Filters=[{"Name": "tag:awslab:stack", "Values": [stack]},
                                           {"Name": "instance-state-name", "Values": ["running"]}])
    host = host["Reservations"][0]["Instances"][0]["InstanceId"]
    sent = ssm.send_command(InstanceIds=[host], DocumentName="AWS-RunShellScript",
                            Parameters={"commands": script.splitlines()[1:]})["Command"]
    deadline = time.monotonic() + 60
    while (got := ssm.get_command_invocation(CommandId=sent["CommandId"], InstanceId=host))["Status"] in ("Pending", "InProgress"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return got["StandardOutputContent"]


def _printed(print_result, result: dict) -> str:
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()) as text:
        print_result(result, "text")
    return text.getvalue()


def test_instance_stack__drill_compare_makes_a_temporary_cluster_with_a_third_subnet_and_removes_it_all(
        awslab, engines, stack):
    assert awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0").code == 0
    rds, ec2 = _client(engines, "rds"), _client(engines, "ec2")
    subnets = {s["SubnetId"] for s in ec2.describe_subnets(Filters=[{"Name": "tag:awslab:stack", "Values": [stack]}])["Subnets"]}
    drill = awslab("drill", "--compare", "--name", stack, "--output", "json")
    assert drill.code == 0, drill.err[-3000:]
    result = json.loads(drill.out)
    i, c, tmp = result["instance"], result["cluster"], result["temporary"]
    assert (tmp["deployment"], tmp["id"], c["id"], i["id"]) == ("cluster", f"{stack}-db-compare", f"{stack}-db-compare", f"{stack}-db")
    assert tmp["also_made"][0].startswith("subnet-") and tmp["also_made"][1] == f"{stack}-db-compare-subnets"
    assert i["acknowledged_writes_lost"] == 0 and c["acknowledged_writes_lost"] == 0
    assert c["reads_served"] > 0 and i["reads_served"] == 0
    # The cluster, its subnet group and the third subnet are gone; the stack is as `up` left it.
    assert not [cl for cl in rds.describe_db_clusters()["DBClusters"] if cl["DBClusterIdentifier"].startswith(stack)]
    assert not [g for g in rds.describe_db_subnet_groups()["DBSubnetGroups"] if g["DBSubnetGroupName"] == f"{stack}-db-compare-subnets"]
    assert {s["SubnetId"] for s in ec2.describe_subnets(Filters=[{"Name": "tag:awslab:stack", "Values": [stack]}])["Subnets"]} == subnets
    again = awslab("plan", "week6", "--name", stack, "--set", "database.read_replicas=0", "--output", "json")
    assert set(json.loads(again.out)["counts"]) == {"keep"}, again.out
    from awslab.commands.drill_compare import print_result

    text = _printed(print_result, result)
    assert f"{stack}-db-compare (temporary)" in text and f"{stack}-db (the stack's)" in text
    assert f"the temporary Multi-AZ DB cluster (with {tmp['also_made'][0]}, {stack}-db-compare-subnets, made for it)" in text

    # An interrupted drill leaves its subnet group tagged as the stack's: `down` finds it and removes it.
    private = [sn["SubnetId"] for sn in ec2.describe_subnets(Filters=[{"Name": "tag:awslab:stack", "Values": [stack]}])["Subnets"]
               if {"Key": "awslab:resource", "Value": "network.subnet.private-a"} in sn["Tags"]
               or {"Key": "awslab:resource", "Value": "network.subnet.private-b"} in sn["Tags"]]
    rds.create_db_subnet_group(DBSubnetGroupName=f"{stack}-db-compare-subnets", DBSubnetGroupDescription="left",
                               SubnetIds=private, Tags=[{"Key": "awslab:stack", "Value": stack},
                                                        {"Key": "awslab:resource", "Value": f"db.drill.{stack}-db-compare.subnet-group"}])
    assert awslab("down", "--name", stack, "--yes", "--skip-final-snapshot").code == 0
    assert not [g for g in rds.describe_db_subnet_groups()["DBSubnetGroups"] if g["DBSubnetGroupName"].startswith(stack)]
