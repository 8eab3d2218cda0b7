"""Engine versions on the local AWS: ModifyDBInstance EngineVersion refused as RDS refuses it and
made for real (pg_upgrade 16 -> 18, the rows kept); `plan`/`up` price an upgrade and refuse what AWS
or the local AWS cannot do, changing nothing; the cache reports the Redis it runs."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError
from conftest import endpoint_map, mutating, server_keys


def _db(aws, ident: str, **extra) -> dict:
    return aws("rds").create_db_instance(DBInstanceIdentifier=ident, Engine="postgres", EngineVersion="16",
                                         DBInstanceClass="db.t3.micro", AllocatedStorage=20, MasterUsername="labadmin",
                                         MasterUserPassword="a-long-password-1", **extra)["DBInstance"]


def _refused(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as exc:
        call()
    return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]


def test_modify_engine_version__refused_as_rds_refuses_then_upgraded_with_its_snapshot(aws, stack):
    rds = aws("rds")
    ident = f"{stack}-db"
    _db(aws, ident)
    modify = lambda **kw: rds.modify_db_instance(DBInstanceIdentifier=ident, ApplyImmediately=True, **kw)  # noqa: E731
    assert _refused(lambda: modify(EngineVersion="18")) == (
        "InvalidParameterCombination", "The AllowMajorVersionUpgrade flag must be present when upgrading to a new major version.")
    assert _refused(lambda: modify(EngineVersion="15", AllowMajorVersionUpgrade=True)) == (
        "InvalidParameterCombination", "Cannot find upgrade path from 16.14 to 15.")
    assert _refused(lambda: modify(EngineVersion="16.99")) == (
        "InvalidParameterCombination", "Cannot find upgrade target from 16.14 with requested version 16.99.")
    rds.create_db_parameter_group(DBParameterGroupName=f"{stack}-pg16", DBParameterGroupFamily="postgres16",
                                  Description="old family")
    code, message = _refused(lambda: modify(EngineVersion="18", AllowMajorVersionUpgrade=True,
                                            DBParameterGroupName=f"{stack}-pg16"))
    assert code == "InvalidParameterCombination" and "DBParameterGroupFamily postgres16 can't be used" in message
    assert rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]["EngineVersion"] == "16.14"

    done = modify(EngineVersion="18", AllowMajorVersionUpgrade=True)["DBInstance"]
    assert done["EngineVersion"] == "18.4"
    assert [g["DBParameterGroupName"] for g in done["DBParameterGroups"]] == ["default.postgres18"]
    snaps = rds.describe_db_snapshots(DBInstanceIdentifier=ident, SnapshotType="automated")["DBSnapshots"]
    assert any(s["DBSnapshotIdentifier"].startswith(f"rds:preupgrade-{ident}-16-14-to-18-4-") and s["EngineVersion"] == "16.14"
               for s in snaps)
    assert _refused(lambda: modify(EngineVersion="16")) == ("InvalidParameterCombination", "Cannot find upgrade path from 18.4 to 16.")
    rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)


def test_plan_and_up__upgrade_priced_and_made_refusals_change_nothing(awslab, local, aws, stack, api_calls):
    small = ["--name", stack, "--set", "database.multi_az=false", "--set", "database.read_replicas=0"]
    assert awslab("up", "week6", *small).code == 0
    plan = awslab("plan", "week6", *small, "--set", "database.engine_version=18", "--output", "json")
    step = next(s for s in json.loads(plan.out)["steps"] if s["key"] == "db.primary")
    assert step["action"] == "update" and step["changes"][0]["old"] == "16.14" and step["changes"][0]["new"] == "18"
    assert "AllowMajorVersionUpgrade" in step["changes"][0]["cost"] and "Single-AZ" in step["changes"][0]["cost"]

    api_calls.clear()
    for version, said in (("17", "the local AWS cannot run PostgreSQL 17"), ("15", "RDS cannot downgrade postgres 16.14 to 15")):
        for command in ("plan", "up"):
            refused = awslab(command, "week6", *small, "--set", f"database.engine_version={version}")
            assert refused.code == 2 and said in refused.err and len(refused.err.strip().splitlines()) == 1
    assert mutating(api_calls) == []

    up = awslab("up", "week6", *small, "--set", "database.engine_version=18")
    assert up.code == 0 and "updated    db.primary" in up.err, up.err
    db = aws("rds").describe_db_instances(DBInstanceIdentifier=f"{stack}-db")["DBInstances"][0]
    assert db["EngineVersion"] == "18.4"
    assert [g["DBParameterGroupName"] for g in db["DBParameterGroups"]] == [f"{stack}-db-postgres18"]
    groups = [g["DBParameterGroupName"] for g in aws("rds").describe_db_parameter_groups()["DBParameterGroups"]]
    assert f"{stack}-db" not in groups   # the old family's group is gone
    verified = awslab("verify", "--name", stack, "--check", "spec.db", "--output", "json")
    assert verified.code == 0, verified.out
    assert awslab("up", "week6", *small, "--set", "database.engine_version=18").err.count("(0 changed)") == 1
    assert awslab("down", "--name", stack, "--yes", "--skip-final-snapshot", "--delete-snapshots").code == 0


@pytest.mark.engines
def test_real_upgrade__16_to_18_keeps_the_rows_and_the_cache_reports_the_redis_it_runs(awslab, engines, engine_server, stack):
    import pg8000.native
    import redis

    server, home = engine_server
    keys = server_keys(home)
    client = lambda service: boto3.client(service, region_name="us-east-1", endpoint_url=server.endpoint_url, **keys)  # noqa: E731
    small = ["--name", stack, "--set", "database.multi_az=false", "--set", "database.read_replicas=0"]
    assert awslab("up", "week6", *small).code == 0
    rds, secrets = client("rds"), client("secretsmanager")

    def session():
        db = rds.describe_db_instances(DBInstanceIdentifier=f"{stack}-db")["DBInstances"][0]
        secret = json.loads(secrets.get_secret_value(SecretId=db["MasterUserSecret"]["SecretArn"])["SecretString"])
        port = endpoint_map(server)[f"{db['Endpoint']['Address']}:5432"]["engine_port"]
        return pg8000.native.Connection(secret["username"], host="127.0.0.1", port=port, database="lab",
                                        password=secret["password"], timeout=10)

    conn = session()
    conn.run("CREATE TABLE kept (n int)")
    conn.run("INSERT INTO kept VALUES (42)")
    conn.close()
    up = awslab("up", "week6", *small, "--set", "database.engine_version=18")
    assert up.code == 0, up.err
    conn = session()
    assert conn.run("SELECT version()")[0][0].startswith("PostgreSQL 18.4 ")
    assert conn.run("SELECT n FROM kept") == [[42]]
    conn.close()
    assert rds.describe_db_instances(DBInstanceIdentifier=f"{stack}-db")["DBInstances"][0]["EngineVersion"] == "18.4"

    # The cache: ElastiCache's version is the one its server runs (INFO server).
    reported = client("elasticache").describe_replication_groups(ReplicationGroupId=f"{stack}-cache")
    member = reported["ReplicationGroups"][0]["MemberClusters"][0]
    version = client("elasticache").describe_cache_clusters(CacheClusterId=member)["CacheClusters"][0]["EngineVersion"]
    endpoint = next(e for e in endpoint_map(server) if e.startswith(f"master.{stack}-cache."))
    token = secrets.get_secret_value(SecretId=f"awslab/{stack}/cache-auth-token")["SecretString"]
    running = redis.Redis(host="127.0.0.1", port=endpoint_map(server)[endpoint]["engine_port"], password=token,
                          protocol=2).info("server")["redis_version"]
    assert version == "6.2" and running.startswith(f"{version}."), (version, running)
    refused = awslab("plan", "week6", *small, "--set", "database.engine_version=18", "--set", "cache.engine_version=7.1")
    assert refused.code == 2 and f"the local AWS runs Redis {running}" in refused.err
    # (no `down`: the module's engine server and its engines go with the module)
