"""Snapshots, restore and failover through the CLI on the local AWS."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest
from conftest import mutating, stack_tagged

from awslab.commands.recovery import snapshot_name, valid_identifier

pytestmark = pytest.mark.lifecycle


def _json(result):
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_identifiers__aws_rules_checked_before_any_call():
    assert snapshot_name("week6", datetime(2026, 11, 27, 14, 30, 5, tzinfo=timezone.utc)) == "week6-20261127-143005"
    assert valid_identifier("restored", 40) and valid_identifier("a1-b2", 40)
    for bad in ("", "1abc", "a--b", "a-", "a_b", "a" * 41, "é"):
        assert not valid_identifier(bad, 40), bad


def test_snapshot_restore_down__snapshots_are_kept_then_deleted_on_request(awslab, aws, local, stack):
    assert awslab("up", "week6", "--name", stack).code == 0
    made = _json(awslab("snapshot", "--name", stack, "--output", "json"))
    assert {(s["service"], s["type"]) for s in made} == {("db", "manual"), ("cache", "manual")}
    name = made[0]["id"]
    assert name.startswith(f"{stack}-") and all(s["status"] == "available" for s in made)
    listed = _json(awslab("snapshots", "--name", stack, "--output", "json"))
    assert {(s["service"], s["id"]) for s in listed} >= {("db", name), ("cache", name)}
    assert any(s["type"] == "automated" for s in listed)

    restored = _json(awslab("restore", name, "--name", stack, "--as", f"{stack}-r", "--output", "json"))
    assert restored["created"] and restored["state"] == "available"
    again = _json(awslab("restore", name, "--name", stack, "--as", f"{stack}-r", "--output", "json"))
    assert not again["created"]
    # The same name from another source is AWS's refusal, not "already there".
    other = awslab("restore", "--to-time", "latest", "--name", stack, "--as", f"{stack}-r")
    assert other.code == 1 and f"DBInstanceAlreadyExists: {stack}-r already exists, restored from {name}" in other.err
    # The hint removes that instance alone, never the whole stack.
    assert f"aws rds delete-db-instance --db-instance-identifier {stack}-r" in other.err
    assert "`awslab down` would remove the whole stack" in other.err
    rds = aws("rds")
    mine = [d for d in rds.describe_db_instances()["DBInstances"] if d["DBInstanceIdentifier"] == f"{stack}-r"]
    assert len(mine) == 1
    db = mine[0]
    tags = {t["Key"]: t["Value"] for t in db["TagList"]}
    assert tags["awslab:stack"] == stack and tags["awslab:resource"] == f"db.restored.{stack}-r"
    assert not db["PubliclyAccessible"] and db["StorageEncrypted"] and not db.get("ReadReplicaSourceDBInstanceIdentifier")
    assert db["MasterUserSecret"]["SecretArn"]
    assert db["DBSubnetGroup"]["DBSubnetGroupName"] == f"{stack}-db"
    assert _json(awslab("verify", "--name", stack, "--check", "path", "--output", "json"))[0]["status"] == "PASS"

    down = awslab("down", "--name", stack, "--yes")
    assert down.code == 0, down.err
    # Before it deletes anything, down names the stack and what it will keep, with the cost.
    first = down.err.splitlines()[0]
    assert f"stack {stack} on the local AWS: deleting" in first
    assert f"a final snapshot of {stack}-db, {stack}-r (40 GiB" in first
    assert "2 snapshots already taken (about $" in first
    assert not [d for d in rds.describe_db_instances()["DBInstances"] if d["DBInstanceIdentifier"].startswith(stack)]
    assert "kept 4 snapshots" in down.out  # db + cache manual, and two final ones (primary and restored)
    left = stack_tagged(aws, stack)
    assert left and all(":snapshot:" in a for a in left)

    gone = awslab("down", "--name", stack, "--yes", "--delete-snapshots")
    assert gone.code == 0, gone.err
    assert stack_tagged(aws, stack) == []
    assert _json(awslab("snapshots", "--name", stack, "--output", "json")) == []


def test_snapshot_copy__lands_tagged_in_the_other_region_and_is_listed(awslab, aws, local, stack):
    assert awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0").code == 0
    made = _json(awslab("snapshot", "--name", stack, "--copy-to-region", "us-west-2", "--output", "json"))
    copy = next(s for s in made if s["region"] == "us-west-2")
    west = aws("rds", "us-west-2").describe_db_snapshots(DBSnapshotIdentifier=copy["id"])["DBSnapshots"][0]
    assert {t["Key"]: t["Value"] for t in west["TagList"]}["awslab:stack"] == stack and west["Status"] == "available"
    listed = _json(awslab("snapshots", "--name", stack, "--output", "json"))
    assert ("us-west-2", copy["id"]) in {(s["region"], s["id"]) for s in listed}
    # Every region's listing shows the copy once, as the stack's (not also as a removed stack's), and
    # counts its cost once.
    every = _json(awslab("stacks", "--all-regions", "--output", "json"))
    row = next(r for r in every["stacks"] if r["stack"] == stack)
    assert ("us-west-2", copy["id"]) in {(s["region"], s["id"]) for s in row["snapshots"]}
    assert not [s for s in every["orphaned_snapshots"] if s["stack"] == stack]
    # Each snapshot priced in its own region: the original at us-east-1's price, the copy not priced
    # (no source in awslab's table gives Oregon's snapshot price), never at us-east-1's.
    monthly = {(s["region"], s["service"]): s["monthly_usd"] for s in row["snapshots"]}
    assert monthly[("us-east-1", "db")] == pytest.approx(20 * 0.095) and monthly[("us-west-2", "db")] is None
    # A rerun of `up`, then this home's record of the stack lost (another machine, a new home):
    # `down` still finds the copy, from the stack's own tags, and removes it.
    assert awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0").code == 0
    from awslab.home.state import stack_record_path

    stack_record_path(stack).unlink()
    down = awslab("down", "--name", stack, "--yes", "--delete-snapshots")
    assert down.code == 0, down.err
    assert not [s for s in aws("rds", "us-west-2").describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]
                if s["DBSnapshotIdentifier"] == copy["id"]]
    assert stack_tagged(aws, stack) == [] and stack_tagged(aws, stack, "us-west-2") == []
    assert aws("rds", "us-west-2").describe_db_snapshots(SnapshotType="manual")["DBSnapshots"] == [
        s for s in aws("rds", "us-west-2").describe_db_snapshots(SnapshotType="manual")["DBSnapshots"] if stack not in s["DBSnapshotIdentifier"]]


def test_restore_cache_snapshot__a_new_group_from_it(awslab, aws, local, stack):
    assert awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0").code == 0
    name = next(s["id"] for s in _json(awslab("snapshot", "--name", stack, "--output", "json")) if s["service"] == "cache")
    restored = _json(awslab("restore", name, "--cache", "--name", stack, "--as", f"{stack}-rc", "--output", "json"))
    assert restored["key"] == f"cache.restored.{stack}-rc" and restored["state"] == "available"
    assert restored["seconds"] >= 0 and restored["latency_profile"]["profile"] == "instant"
    group = aws("elasticache").describe_replication_groups(ReplicationGroupId=f"{stack}-rc")["ReplicationGroups"][0]
    assert group["TransitEncryptionEnabled"] and group["AtRestEncryptionEnabled"]
    status = awslab("status", "--name", stack)
    assert f"cache.restored.{stack}-rc" in status.out
    assert awslab("down", "--name", stack, "--yes", "--delete-snapshots").code == 0
    assert stack_tagged(aws, stack) == []


def test_point_in_time__latest_makes_an_independent_instance(awslab, aws, local, stack):
    assert awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0").code == 0
    made = awslab("restore", "--to-time", "latest", "--name", stack, "--as", f"{stack}-pitr")
    db = aws("rds").describe_db_instances(DBInstanceIdentifier=f"{stack}-pitr")["DBInstances"][0]
    assert made.code == 0 and not db.get("ReadReplicaSourceDBInstanceIdentifier")
    # A duration says what produced it and what AWS takes (a restore is a new instance: minutes).
    assert re.search(r"\(restored in \d+\.\ds \(on the local AWS's `instant` latency profile; AWS takes about 12 min\)\)",
                     made.out), made.out
    assert awslab("down", "--name", stack, "--yes", "--delete-snapshots").code == 0


def test_failover__db_az_swaps_and_cache_primary_moves(awslab, aws, local, stack):
    assert awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0").code == 0
    db = _json(awslab("failover", "--name", stack, "--output", "json"))
    assert db["az_before"] != db["az_after"] and db["standby_az"] == db["az_before"]
    assert db["seconds_unavailable"] >= 0
    cache = _json(awslab("failover", "--name", stack, "--cache", "--output", "json"))
    assert cache["primary_before"] != cache["primary_after"]
    assert awslab("down", "--name", stack, "--yes", "--skip-final-snapshot").code == 0


@pytest.mark.parametrize("args, fragment", [
    (["restore", "no-such-snapshot"], "unknown snapshot 'no-such-snapshot'"),
    (["restore", "whatever", "--as", "bad--name"], "--as 'bad--name' is not a valid identifier"),
    (["restore", "--to-time", "2999-01-01T00:00:00Z"], "is in the future"),
    (["restore", "--to-time", "2001-01-01T00:00:00Z"], "outside the restorable window"),
    (["restore", "--to-time", "yesterday"], "is not an ISO-8601 time"),
    (["restore"], "give a SNAPSHOT_ID or --to-time"),
    (["snapshot", "--copy-to-region", "us-east-1"], "is the stack's own region"),
    (["snapshot", "--copy-to-region", "mars-1"], "--copy-to-region mars-1: no such AWS region"),
    (["failover"], "is Single-AZ"),
])
def test_bad_input__exits_2_with_one_line_and_creates_nothing(awslab, local, stack, api_calls, args, fragment):
    assert awslab("up", "week6", "--name", stack, "--set", "database.multi_az=false", "--set", "database.read_replicas=0").code == 0
    api_calls.clear()
    result = awslab(*args, "--name", stack)
    assert result.code == 2, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.err
    assert mutating(api_calls) == []
    awslab("down", "--name", stack, "--yes", "--skip-final-snapshot")
