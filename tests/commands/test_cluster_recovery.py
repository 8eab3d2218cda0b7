"""`awslab snapshot`, `snapshots`, `restore` and `down` on a Multi-AZ DB cluster stack, on real
engines: a manual DB cluster snapshot tagged as the stack's, a new cluster restored from it and one
restored to a point in time before a mistake (each with the table back, through its own writer
endpoint), bad input refused before anything is made, and `down` removing the restored clusters
while keeping their final snapshots. One `up` and the fewest clusters the proofs need (the suite
is CPU-bound)."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone

import boto3
import pytest
from conftest import shell, stack_tagged

pytestmark = [pytest.mark.lifecycle, pytest.mark.engines]


def _json(result):
    assert result.code == 0, result.err[-3000:]
    return json.loads(result.out)


def _clusters(rds, stack: str) -> list[str]:
    return sorted(c["DBClusterIdentifier"] for c in rds.describe_db_clusters()["DBClusters"]
                  if c["DBClusterIdentifier"].startswith(stack))


def _cluster_snapshots(rds, stack: str) -> list[str]:
    return sorted(s["DBClusterSnapshotIdentifier"] for s in rds.describe_db_cluster_snapshots()["DBClusterSnapshots"]
                  if s["DBClusterSnapshotIdentifier"].startswith(stack))


def _client(server, service: str):
    return boto3.client(service, region_name="us-east-1", endpoint_url=server.endpoint_url,
                        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"])


def _sql(awslab, stack: str, what: str, sql: str) -> str:
    line = awslab("connect", what, "--name", stack)
    assert line.code == 0, line.err
    return shell(line.out.strip(), "-tAc", f"'{sql}'")


def test_cluster_snapshot_restore_pitr_and_down(awslab, engines, stack):
    up = awslab("up", "week6", "--name", stack, "--set", "database.deployment=cluster")
    assert up.code == 0, up.err[-2000:]
    rds = _client(engines, "rds")
    _sql(awslab, stack, "db", "CREATE TABLE precious AS SELECT 42 AS n")

    # status: each member of the cluster, the writer first, each reader with its replica lag
    # (RDS's ReplicaLag per reader, from its standby's engine here).
    status = _json(awslab("status", "--name", stack, "--output", "json"))
    members = next(r for r in status["resources"] if r["key"] == "db.cluster")["members"]
    assert [m["role"] for m in members] == ["writer", "reader", "reader"] and len({m["az"] for m in members}) == 3
    assert "replica_lag_s" not in members[0] and all(0 <= m["replica_lag_s"] < 30 for m in members[1:]), members
    assert all(m["engine_status"] == "available" and m["endpoint"] for m in members)
    text = awslab("status", "--name", stack).out
    assert text.count("cluster reader") == 2 and text.count("(replica lag ") == 2, text

    # Bad input: one line, exit 2, nothing made.
    for args, words in (
        (("restore", "nope-snap"), "unknown snapshot 'nope-snap'"),
        (("restore", "--to-time", "2999-01-01T00:00:00Z"), "is in the future"),
        (("restore", "--to-time", "2020-01-01T00:00:00Z"), "is outside the restorable window"),
        (("snapshot", "--copy-to-region", "us-west-2"), "does not copy a DB cluster snapshot"),
    ):
        bad = awslab(*args, "--name", stack)
        assert bad.code == 2 and words in bad.err and len(bad.err.strip().splitlines()) <= 2, (args, bad.err)
    assert _clusters(rds, stack) == [f"{stack}-db"]
    # The window starts where the cluster's backups do (its first base backup), as RDS reports it.
    own = rds.describe_db_clusters(DBClusterIdentifier=f"{stack}-db")["DBClusters"][0]
    assert own["ClusterCreateTime"] <= own["EarliestRestorableTime"] <= own["LatestRestorableTime"]
    assert _cluster_snapshots(rds, stack) == []

    # snapshot: a manual DB cluster snapshot (and the cache's), tagged as the stack's, available.
    made = _json(awslab("snapshot", "--name", stack, "--output", "json"))
    assert {(s["service"], s["type"]) for s in made} == {("db", "manual"), ("cache", "manual")}
    name = made[0]["id"]
    assert all(s["status"] == "available" for s in made)
    snap = rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=name)["DBClusterSnapshots"][0]
    assert snap["DBClusterIdentifier"] == f"{stack}-db"
    tags = {t["Key"]: t["Value"] for t in rds.list_tags_for_resource(ResourceName=snap["DBClusterSnapshotArn"])["TagList"]}
    assert tags["awslab:stack"] == stack and tags["awslab:resource"] == f"snapshot.db-cluster.us-east-1.{name}"
    listed = awslab("snapshots", "--name", stack)
    assert listed.code == 0 and name in listed.out and "/month until deleted" in listed.out
    row = next(s for s in _json(awslab("snapshots", "--name", stack, "--output", "json"))
               if s["id"] == name and s["service"] == "db")
    assert row["type"] == "manual" and row["size_gib"] == 20

    # The mistake, after a moment worth returning to (whole seconds: let one pass first).
    time.sleep(1.2)
    before = datetime.now(timezone.utc).replace(microsecond=0)
    time.sleep(1.2)
    _sql(awslab, stack, "db", "DROP TABLE precious")
    deadline = time.monotonic() + 60   # the archive trails the present by a couple of seconds
    while rds.describe_db_clusters(DBClusterIdentifier=f"{stack}-db")["DBClusters"][0]["LatestRestorableTime"] < before:
        assert time.monotonic() < deadline, "LatestRestorableTime never passed the noted time"
        time.sleep(0.5)

    # restore SNAPSHOT: a new Multi-AZ DB cluster in the stack's network, the table back through its writer.
    restored = _json(awslab("restore", name, "--name", stack, "--as", f"{stack}-snap", "--output", "json"))
    assert restored["created"] and restored["state"] == "available" and restored["key"] == f"db.restored.{stack}-snap"
    assert _sql(awslab, stack, f"{stack}-snap", "SELECT n FROM precious") == "42"
    cluster = rds.describe_db_clusters(DBClusterIdentifier=f"{stack}-snap")["DBClusters"][0]
    ctags = {t["Key"]: t["Value"] for t in cluster["TagList"]}
    assert ctags["awslab:stack"] == stack and ctags["awslab:resource"] == f"db.restored.{stack}-snap"
    assert cluster["DBSubnetGroup"] == f"{stack}-db" and not cluster.get("PubliclyAccessible")
    assert cluster["DBClusterInstanceClass"] == "db.m6gd.large" and len(cluster["DBClusterMembers"]) == 3
    assert {g["VpcSecurityGroupId"] for g in cluster["VpcSecurityGroups"]} == {
        c["VpcSecurityGroups"][0]["VpcSecurityGroupId"]
        for c in rds.describe_db_clusters(DBClusterIdentifier=f"{stack}-db")["DBClusters"]}
    again = _json(awslab("restore", name, "--name", stack, "--as", f"{stack}-snap", "--output", "json"))
    assert not again["created"]
    other = awslab("restore", "--to-time", "latest", "--name", stack, "--as", f"{stack}-snap")   # another source, that name
    assert other.code == 1 and f"DBClusterAlreadyExistsFault: {stack}-snap already exists, restored from {name}" in other.err
    assert f"aws rds delete-db-cluster --db-cluster-identifier {stack}-snap" in other.err

    # restore --to-time: the stack's cluster as it was before the drop, as a new cluster.
    pit = awslab("restore", "--to-time", f"{before:%Y-%m-%dT%H:%M:%SZ}", "--name", stack, "--as", f"{stack}-pit")
    assert pit.code == 0, pit.err[-3000:]
    assert f"{stack}-pit is available (restored in" in pit.out and "`awslab down` removes it" in pit.out
    assert _sql(awslab, stack, f"{stack}-pit", "SELECT n FROM precious") == "42"
    assert _sql(awslab, stack, "db", "SELECT to_regclass($$precious$$) IS NULL") == "t"   # still gone on the stack's own
    # They are the stack's: verify's paths and security checks take in their members too (3 clusters x 3).
    checked = {r["id"]: r for r in _json(awslab("verify", "--name", stack, "--check", "path", "--check", "security",
                                                "--output", "json"))}
    assert all(r["status"] == "PASS" for r in checked.values()), checked
    assert checked["path.app-to-db"]["detail"].startswith("9 DB instance(s)")
    assert checked["security.db-not-public"]["detail"] == "9 DB instance(s) private"

    # down: every cluster of the stack, each keeping its final snapshot; the manual ones kept too.
    down = awslab("down", "--name", stack, "--yes")
    assert down.code == 0, down.err[-3000:]
    assert f"a final snapshot of {stack}-db, {stack}-pit, {stack}-snap" in down.err.splitlines()[0]
    assert _clusters(rds, stack) == []
    finals = [s.split("-final-")[0] for s in _cluster_snapshots(rds, stack) if "-final-" in s]
    assert finals == [f"{stack}-db", f"{stack}-pit", f"{stack}-snap"]
    assert "kept 5 snapshots" in down.out   # the cluster's and the cache's manual ones, three final ones
    left = stack_tagged(lambda service: _client(engines, service), stack)
    assert left and all(":snapshot:" in a or ":cluster-snapshot:" in a for a in left), left
