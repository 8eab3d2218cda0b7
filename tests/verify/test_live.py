"""The real engines behind the local AWS, tried as a new user would: verify's live checks PASS with
measured latency and lag, `awslab connect` lines work in psql and redis-cli, a row survives
snapshot -> restore, the demo prints both distributions, and `down` / `local stop` leave no
engine process and no data behind.

These tests run their own local AWS with engines on (the shared one runs without, for speed).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import (
    endpoint_map,
    eventually,
    server_keys,
    shell,
)

from awslab.local.engines import pid_alive

pytestmark = [pytest.mark.lifecycle, pytest.mark.engines]


def test_engines__live_checks_connect_snapshot_restore_demo_and_down(awslab, engines, engine_server, stack):
    up = awslab("up", "week6", "--name", stack)
    assert up.code == 0, up.err

    verify = awslab("verify", "--name", stack, "--check", "live", "--output", "json")
    assert verify.code == 0, verify.out
    live = {r["id"]: r for r in json.loads(verify.out)}
    assert {k: r["status"] for k, r in live.items()} == {
        "live.host-to-db": "PASS", "live.db.replica.1": "PASS", "live.host-to-cache": "PASS", "live.cache-replica": "PASS"}
    assert "SELECT 1 over TLS (certificate verified) in" in live["live.host-to-db"]["detail"] and "(replica lag)" in live["live.db.replica.1"]["detail"]
    assert "(replication lag)" in live["live.cache-replica"]["detail"]

    status = awslab("status", "--name", stack)
    assert f"{stack}-db.aaaaaaaaaa.us-east-1.rds.amazonaws.com:5432 -> 127.0.0.1:" in status.out
    # The JSON carries what the text shows: where each real engine listens.
    records = {r["key"]: r for r in json.loads(awslab("status", "--name", stack, "--output", "json").out)["resources"]}
    local_db = records["db.primary"]["local_address"]
    assert local_db.startswith("127.0.0.1:") and f"-> {local_db}" in status.out
    as_json = json.loads(awslab("connect", "db", "--name", stack, "--output", "json").out)
    assert as_json["local_address"] == local_db and as_json["id"] == f"{stack}-db" and "psql" in as_json["lines"][0]

    db_line = awslab("connect", "db", "--name", stack)
    assert db_line.code == 0 and "PGPASSFILE=" in db_line.out
    assert shell(db_line.out.strip(), "-tAc", "'SELECT 1'") == "1"
    shell(db_line.out.strip(), "-c", "\"CREATE TABLE notes (t text); INSERT INTO notes VALUES ('before the snapshot')\"")
    replica_line = awslab("connect", "replica", "--name", stack).out.strip()
    cache_line = awslab("connect", "cache", "--name", stack).out.strip()
    assert shell(cache_line, "SET", "greeting", "hello") == "OK"

    secrets = _secrets(engines, stack)
    printed = db_line.out + replica_line + cache_line + verify.out + status.out
    assert all(s not in printed for s in secrets)
    passfile = Path(db_line.out.split("PGPASSFILE=")[1].split()[0])
    assert passfile.stat().st_mode & 0o777 == 0o600

    snap = awslab("snapshot", "--name", stack, "--output", "json")
    assert snap.code == 0, snap.err
    snap_id = json.loads(snap.out)[0]["id"]
    assert shell(replica_line, "-tAc", "'SELECT t FROM notes'") == "before the snapshot"
    shell(db_line.out.strip(), "-c", "\"INSERT INTO notes VALUES ('after the snapshot')\"")
    assert awslab("restore", snap_id, "--as", f"{stack}-r1", "--name", stack).code == 0
    assert awslab("restore", snap_id, "--cache", "--as", f"{stack}-c1", "--name", stack).code == 0
    r1 = awslab("connect", f"{stack}-r1", "--name", stack).out.strip()
    assert shell(r1, "-tAc", "'SELECT t FROM notes'") == "before the snapshot"
    # Each instance has its own password file: the primary's line still works after r1's was made.
    assert shell(db_line.out.strip(), "-tAc", "'SELECT count(*) FROM notes'") == "2"
    c1 = awslab("connect", f"{stack}-c1", "--name", stack).out.strip()
    assert shell(c1, "GET", "greeting") == "hello"
    assert shell(cache_line, "GET", "greeting") == "hello"

    demo = awslab("demo", "cache-aside", "--name", stack, "--requests", "60", "--rows", "20000", "--output", "json")
    assert demo.code == 0, demo.err
    result = json.loads(demo.out)
    assert result["direct"]["hit_ratio"] == 0 and result["cache_aside"]["hit_ratio"] > 0.5
    for side in ("direct", "cache_aside"):
        assert result[side]["requests"] == 60 and 0 < result[side]["p50_ms"] <= result[side]["p95_ms"]
    text = awslab("demo", "cache-aside", "--name", stack, "--requests", "30", "--rows", "20000")
    assert "HIT RATIO" in text.out and "P95 MS" in text.out and "faster" in text.out

    # No log or registry (the server's, each engine's) holds a password, the restored r1's included.
    secrets += _secrets(engines, stack, db=f"{stack}-r1")[:1]
    registry = json.loads((engine_server[1] / "local" / "engines" / "engines.json").read_text())["engines"]
    logs = [p for p in engine_server[1].rglob("*") if p.is_file() and p.suffix in (".log", ".json")
            and p.name != "secret.json"]   # the engines' own 0600 credentials (for replicas and restores)
    logs += [Path(e["log"]) for e in registry.values() if e.get("log")]
    leaked = [str(p) for p in logs for s in secrets if s in p.read_text(errors="replace")]
    assert len(logs) > 6 and leaked == []

    mine = {ep: info for ep, info in endpoint_map(engines).items() if stack in ep}
    assert len(mine) >= 6 and all(pid_alive(i["pid"]) for i in mine.values())
    dirs = _engine_dirs(engine_server[1], {i["key"] for i in mine.values()})
    assert dirs and all(d.exists() for d in dirs)
    down = awslab("down", "--name", stack, "--yes", "--delete-snapshots")
    assert down.code == 0, down.err
    eventually(lambda: not any(pid_alive(i["pid"]) for i in mine.values()))
    eventually(lambda: not any(d.exists() for d in dirs))
    assert not any(stack in ep for ep in endpoint_map(engines))


def _secrets(server, stack: str, db: str | None = None) -> list[str]:
    import boto3

    keys = server_keys(Path(os.environ["AWSLAB_HOME"]))   # the test's home points at the server
    sm = boto3.client("secretsmanager", endpoint_url=server.endpoint_url, region_name="us-east-1", **keys)
    rds = boto3.client("rds", endpoint_url=server.endpoint_url, region_name="us-east-1", **keys)
    db = rds.describe_db_instances(DBInstanceIdentifier=db or f"{stack}-db")["DBInstances"][0]
    password = json.loads(sm.get_secret_value(SecretId=db["MasterUserSecret"]["SecretArn"])["SecretString"])["password"]
    token = sm.get_secret_value(SecretId=f"awslab/{stack}/cache-auth-token")["SecretString"]
    assert len(password) >= 16 and password != "P@55w0rd!"
    return [password, token]


def _engine_dirs(home: Path, keys: set[str]) -> list[Path]:
    """The data dirs of the engines behind ``keys``, from the server's engine registry."""
    registry = json.loads((home / "local" / "engines" / "engines.json").read_text())["engines"]
    return [Path(registry[k]["dir"]) for k in keys if k in registry]


@pytest.fixture(scope="module", autouse=True)
def _no_mariadb_server():
    """This module's local AWS runs without MariaDB's server (as a machine without the package):
    the MySQL family is then the control plane only (tests/local/test_mariadb.py has the server)."""
    saved = os.environ.get("AWSLAB_MARIADBD")
    os.environ["AWSLAB_MARIADBD"] = "off"
    yield
    if saved is None:
        os.environ.pop("AWSLAB_MARIADBD", None)
    else:
        os.environ["AWSLAB_MARIADBD"] = saved


def test_a_mysql_lab__says_control_plane_only_everywhere_and_takes_admin(awslab, engines, stack):
    mysql = ["--set", "database.engine=mysql", "--set", "database.engine_version=8.0",
             "--set", "database.master_username=admin"]
    up = awslab("up", "week6", "--name", stack, *mysql)
    assert up.code == 0, up.err
    assert "runs mysql as a control plane only" in up.out and "Real PostgreSQL and Redis answer" not in up.out
    connect = awslab("connect", "db", "--name", stack)
    assert connect.code == 2 and "control plane only" in connect.err and "local stop" not in connect.err
    live = {r["id"]: r for r in json.loads(awslab("verify", "--name", stack, "--check", "live", "--output", "json").out)}
    assert {k: r["status"] for k, r in live.items() if k.startswith(("live.host-to-db", "live.db."))} == {
        "live.host-to-db": "SKIP", "live.db.replica.1": "SKIP"}
    assert all("control plane only" in r["detail"] for k, r in live.items() if "db" in k)
    assert live["live.host-to-cache"]["status"] == "PASS"
    failover = awslab("failover", "--name", stack)
    assert failover.code == 0 and "there is no server to fail over" in failover.out and "not available for" not in failover.out
    assert awslab("down", "--name", stack, "--yes", "--skip-final-snapshot").code == 0


def test_local_endpoints__any_instance_made_with_the_api_is_listed_with_its_local_address(awslab, engines, stack):
    """A learner who built the lab with the AWS CLI (no awslab stack) finds where its endpoints
    answer on this machine: `awslab local endpoints` lists every DB instance's and cache node's
    address with its local one (no password), and that address answers."""
    import socket

    import boto3

    rds = boto3.client("rds", region_name="us-east-1", endpoint_url=engines.endpoint_url,
                       aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                       aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"])
    # Reached from this machine as on AWS: public, with a group that admits this machine's address.
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=engines.endpoint_url,
                       aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                       aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"])
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    sg = ec2.create_security_group(GroupName=stack, Description="psql from this machine", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": "127.0.0.1/32"}]}])
    rds.create_db_instance(DBInstanceIdentifier=stack, Engine="postgres", DBInstanceClass="db.t3.micro",
                           AllocatedStorage=20, MasterUsername="labadmin", ManageMasterUserPassword=True,
                           PubliclyAccessible=True, VpcSecurityGroupIds=[sg])
    address = f"{stack}.aaaaaaaaaa.us-east-1.rds.amazonaws.com:5432"

    def listed() -> dict | None:
        rows = json.loads(awslab("local", "endpoints", "--output", "json").out)["endpoints"]
        row = next((r for r in rows if r["endpoint"] == address), None)
        return row if row and row["status"] == "available" else None

    eventually(lambda: listed() is not None, within_s=60)
    row = listed()
    assert row["role"] == "primary" and row["engine"] == "postgres" and row["tls"] == "required"
    host, port = row["local_address"].split(":")
    socket.create_connection((host, int(port)), timeout=5).close()
    text = awslab("local", "endpoints")
    assert text.code == 0 and address in text.out and row["local_address"] in text.out
    secret = rds.describe_db_instances(DBInstanceIdentifier=stack)["DBInstances"][0]["MasterUserSecret"]["SecretArn"]
    value = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=engines.endpoint_url,
                         aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                         aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"]).get_secret_value(SecretId=secret)
    assert json.loads(value["SecretString"])["password"] not in text.out
    rds.delete_db_instance(DBInstanceIdentifier=stack, SkipFinalSnapshot=True)
