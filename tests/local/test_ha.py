"""High availability and recovery on the local AWS, on real engines, tried as a learner would:
a Multi-AZ failover drops the open connection, keeps the endpoint's address and every committed
row, and a new standby rejoins synchronously; a point-in-time restore to before a DROP brings the
table back; a promoted replica stops following and takes writes; a cache failover moves the
primary endpoint to the new primary; bad input is refused with exit 2 and nothing changed.
"""

from __future__ import annotations

import json
import shlex
import ssl
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import DRILL_SHAPE, drill_shape, endpoint_map, eventually, private_server

pytestmark = [pytest.mark.lifecycle, pytest.mark.engines]


def _env(awslab, stack: str, what: str) -> dict[str, str]:
    out = awslab("connect", what, "--name", stack, "--env")
    assert out.code == 0, out.err
    env = {}
    for line in out.out.strip().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value if "$(" in value else (shlex.split(value) or [""])[0]
    return env


def pg(awslab, stack: str, what: str = "db"):
    """A psycopg-style connection (pg8000) made from what `awslab connect --env` prints."""
    import pg8000.native

    env = _env(awslab, stack, what)
    password = Path(env["PGPASSFILE"]).read_text().strip().split(":", 4)[4]
    # As libpq reads PGSSLMODE: verify-full with the root certificate given, disable without TLS.
    tls = ssl.create_default_context(cafile=env["PGSSLROOTCERT"]) if env["PGSSLMODE"] == "verify-full" else False
    return pg8000.native.Connection(env["PGUSER"], host=env["PGHOST"], port=int(env["PGPORT"]), password=password,
                                    database=env["PGDATABASE"], timeout=10, ssl_context=tls)


def redis_conn(awslab, stack: str):
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    env = _env(awslab, stack, "cache")
    token = Path(env["REDISCLI_AUTH"].split("cat ")[1].rstrip(')"').strip("'\"")).read_text()
    # One connection, never silently remade: a dropped connection shows as an error.
    tls = {"ssl": True, "ssl_ca_certs": env["REDIS_CACERT"]} if "REDIS_CACERT" in env else {}
    return redis.Redis(host=env["REDIS_HOST"], port=int(env["REDIS_PORT"]), password=token, socket_timeout=5,
                       single_connection_client=True, retry=Retry(NoBackoff(), 0), **tls)


def _timeline(conn) -> int:
    return int(conn.run("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)")[0][0], 16)


def test_failover__drops_open_connections_keeps_the_address_every_committed_row_and_a_sync_standby(awslab, engines, stack):
    assert awslab("up", "week6", "--name", stack).code == 0
    db_address = json.loads(awslab("connect", "db", "--name", stack, "--output", "json").out)["local_address"]
    conn = pg(awslab, stack)
    assert conn.run("SELECT application_name, sync_state FROM pg_stat_replication "
                    "WHERE application_name = 'awslab_standby'") == [["awslab_standby", "sync"]]
    conn.run("CREATE TABLE orders (n int PRIMARY KEY)")
    for n in range(1, 201):   # each acknowledged (committed) before the next
        conn.run("INSERT INTO orders VALUES (:n)", n=n)
    before = {e["key"]: e for e in endpoint_map(engines).values() if e.get("role") == "primary" and "rds" in e.get("key", "")}
    assert len(before) == 1
    timeline = _timeline(conn)

    failover = awslab("failover", "--name", stack, "--output", "json")
    assert failover.code == 0, failover.err
    with pytest.raises(Exception):   # the connection that was open is gone, as on RDS
        conn.run("SELECT 1")

    again = pg(awslab, stack)   # the same address answers, served by the promoted standby
    assert json.loads(awslab("connect", "db", "--name", stack, "--output", "json").out)["local_address"] == db_address
    assert again.run("SELECT count(*), max(n) FROM orders") == [[200, 200]]
    assert again.run("SELECT pg_is_in_recovery()") == [[False]]
    assert _timeline(again) == timeline + 1   # a promotion happened: a new timeline began at the failover
    after = {e["key"]: e for e in endpoint_map(engines).values() if e.get("role") == "primary" and "rds" in e.get("key", "")}
    assert [e["pid"] for e in after.values()] != [e["pid"] for e in before.values()]
    # The old primary comes back as the new standby, and commits wait for it again.
    eventually(lambda: again.run("SELECT sync_state FROM pg_stat_replication WHERE application_name = "
                                 "'awslab_standby'") == [["sync"]], within_s=30)
    again.run("INSERT INTO orders VALUES (201)")
    # The read replica follows the new primary.
    replica = pg(awslab, stack, "replica")
    eventually(lambda: replica.run("SELECT count(*) FROM orders") == [[201]], within_s=30)
    # `status` shows its lag as RDS's ReplicaLag computes it.
    records = {r["key"]: r for r in json.loads(awslab("status", "--name", stack, "--output", "json").out)["resources"]}
    assert records["db.replica.1"]["replica_lag_s"] >= 0 and "replica_lag_s" not in records["db.primary"]

    # The cache: TestFailover moves the primary endpoint to the promoted replica; open clients drop.
    cache = redis_conn(awslab, stack)
    cache.set("greeting", "hello")
    role_before = cache.execute_command("ROLE")[0]
    assert awslab("failover", "--cache", "--name", stack).code == 0
    with pytest.raises(Exception):
        cache.ping()
    fresh = redis_conn(awslab, stack)
    assert fresh.get("greeting") == b"hello" and role_before == b"master" and fresh.execute_command("ROLE")[0] == b"master"
    fresh.set("after", "failover")   # the primary endpoint takes writes: it reaches the new primary

    # Single-AZ: the standby goes; a failover is then refused with exit 2, nothing changed.
    assert awslab("up", "week6", "--name", stack, "--set", "database.multi_az=false").code == 0
    eventually(lambda: pg(awslab, stack).run("SELECT count(*) FROM pg_stat_replication WHERE application_name = "
                                             "'awslab_standby'") == [[0]], within_s=30)
    refused = awslab("failover", "--name", stack)
    assert refused.code == 2 and "Single-AZ" in refused.err and len(refused.err.strip().splitlines()) <= 2
    # Multi-AZ again: a standby is built, commits wait for it again, and a failover works.
    assert awslab("up", "week6", "--name", stack).code == 0
    eventually(lambda: pg(awslab, stack).run("SELECT sync_state FROM pg_stat_replication WHERE application_name = "
                                             "'awslab_standby'") == [["sync"]], within_s=30)
    assert awslab("failover", "--name", stack).code == 0
    assert pg(awslab, stack).run("SELECT count(*) FROM orders") == [[201]]


def test_point_in_time_restore_and_promotion__a_dropped_table_comes_back_and_a_replica_goes_its_own_way(
        awslab, engines, stack):
    assert awslab("up", "week6", "--name", stack).code == 0
    conn = pg(awslab, stack)
    conn.run("CREATE TABLE precious (n int)")
    conn.run("INSERT INTO precious SELECT generate_series(1, 500)")
    time.sleep(0.5)
    noted = datetime.now(timezone.utc)
    time.sleep(0.5)
    conn.run("DROP TABLE precious")   # the mistake
    when = noted.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    future = awslab("restore", "--name", stack, "--to-time", "2099-01-01T00:00:00Z", "--as", "nope")
    assert future.code == 2 and "in the future" in future.err
    early = awslab("restore", "--name", stack, "--to-time", "2020-01-01T00:00:00Z", "--as", "nope")
    assert early.code == 2 and "outside the restorable window" in early.err

    def restored() -> bool:   # LatestRestorableTime trails the present by the archive interval
        result = awslab("restore", "--name", stack, "--to-time", when, "--as", "undo")
        assert result.code in (0, 2), result.err
        return result.code == 0
    eventually(restored, within_s=20)
    undo = pg(awslab, stack, "undo")
    assert undo.run("SELECT count(*), sum(n) FROM precious") == [[500, 125250]]
    assert conn.run("SELECT to_regclass('precious')") == [[None]]   # the source still has the mistake

    # Promotion: the replica refuses writes, then takes them and no longer follows the primary.
    replica = pg(awslab, stack, "replica")
    with pytest.raises(Exception, match="read-only"):
        replica.run("CREATE TABLE mine (n int)")
    not_a_replica = awslab("promote", f"{stack}-db", "--name", stack)
    assert not_a_replica.code == 2 and "not a read replica" in not_a_replica.err
    promoted = awslab("promote", "--name", stack, "--output", "json")
    assert promoted.code == 0, promoted.err
    result = json.loads(promoted.out)
    assert result["promoted_from"] == f"{stack}-db"
    mine = pg(awslab, stack, result["id"])
    mine.run("CREATE TABLE mine (n int)")
    mine.run("INSERT INTO mine VALUES (1)")
    conn.run("CREATE TABLE after_promotion (n int)")
    time.sleep(1.0)
    assert mine.run("SELECT to_regclass('after_promotion')") == [[None]]
    status = json.loads(awslab("status", "--name", stack, "--output", "json").out)["resources"]
    keys = {r["key"] for r in status}
    assert f"db.promoted.{result['id']}" in keys and not any(k.startswith("db.replica.") for k in keys)
    # The promoted instance keeps the replica's name: `up` will not make a second one under it.
    again = awslab("up", "week6", "--name", stack)
    assert again.code == 1 and "is held by the stack's db.promoted." in again.err and "nothing was changed" in again.err
    assert awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0").code == 0

    down = awslab("down", "--name", stack, "--yes")
    assert down.code == 0, down.err


CROSS_AZ_S = 0.004   # a cross-AZ round trip four times AWS's, to stand out of this machine's noise


def _commit_difference_ms(awslab, stack: str, commits: int = 100) -> float:
    """p50 of a commit on the primary as it is, minus as it would be alone (synchronous_commit=local)."""
    import ssl
    import statistics

    import pg8000.native

    env = dict(line.removeprefix("export ").split("=", 1) for line in
               awslab("connect", "db", "--name", stack, "--env").out.splitlines())
    env = {k: v.strip("'") for k, v in env.items()}
    password = Path(env["PGPASSFILE"]).read_text().strip().split(":")[-1]
    conn = pg8000.native.Connection(env["PGUSER"], host="127.0.0.1", port=int(env["PGPORT"]), database=env["PGDATABASE"],
                                    password=password, ssl_context=ssl.create_default_context(cafile=env["PGSSLROOTCERT"]))
    conn.run("CREATE TABLE IF NOT EXISTS commits (n int)")
    p50 = {}
    for mode in ("on", "local"):
        conn.run(f"SET synchronous_commit = {mode}")
        times = []
        for _ in range(commits):
            t0 = time.perf_counter()
            conn.run("INSERT INTO commits VALUES (1)")
            times.append((time.perf_counter() - t0) * 1000)
        p50[mode] = statistics.median(times)
    conn.close()
    return p50["on"] - p50["local"]


def test_drill__zero_acknowledged_writes_lost_on_multi_az_a_measured_downtime_and_lag(awslab, engines, stack):
    from awslab.local import manager

    # The distance between AZs in the data path: every replication stream crosses a link that
    # carries the round trip; a Multi-AZ commit waits for it, a commit alone does not.
    manager.set_latency(engines, f"net.cross-az={CROSS_AZ_S},net.same-az={CROSS_AZ_S}")
    try:
        _drill_under(awslab, stack)
    finally:
        manager.set_latency(engines, "instant")


def _drill_under(awslab, stack: str) -> None:
    assert awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0").code == 0
    refused = awslab("drill", "--name", stack)
    assert refused.code == 2 and "no read replica" in refused.err
    assert awslab("up", "week6", "--name", stack).code == 0

    drill = awslab("drill", "--name", stack, "--output", "json")
    assert drill.code == 0, drill.err
    result = json.loads(drill.out)
    assert drill_shape(result) == DRILL_SHAPE and result["engine"] == "postgres"   # the MySQL family's too
    m, r, c = result["multi_az"], result["read_replica"], result["cache_replica"]
    k = result["commit"]
    assert 0.8 * CROSS_AZ_S * 1000 <= k["difference_ms_p50"] <= 5 * CROSS_AZ_S * 1000, k
    assert result["profile"]["cross_az_round_trip_ms"] == CROSS_AZ_S * 1000
    # The replica trails by the distance: the primary sees its writes replayed a round trip later at
    # least (under load, never 0 as a receive-equals-replay ReplicaLag reads).
    assert r["lag_ms_p50"] >= 0.8 * CROSS_AZ_S * 1000, r
    assert r["visible_after_ms_max"] >= r["visible_after_ms_p50"] >= 0
    # Synchronous commit: every acknowledged write is there after the failover, checked row by row.
    assert m["writes_acknowledged"] > 50 and m["acknowledged_writes_lost"] == 0 and m["lost"] == []
    assert m["connections_dropped"] is True and 0 < m["downtime_s"] < 30
    assert m["synchronous"] is True and m["serves_reads"] is False
    assert r["synchronous"] is False and r["samples"] > 10 and r["lag_ms_max"] >= r["lag_ms_p95"] >= r["lag_ms_p50"] >= 0
    assert 0 <= r["read_your_write_misses"] <= r["read_your_write_tries"]
    assert c["writes_acknowledged"] > 50 and c["connections_dropped"] is True
    assert 0 <= c["acknowledged_writes_lost"] <= c["writes_acknowledged"]
    # The standby rebuilt after the failover streams across the AZs too (its base backup carried
    # the promoted standby's old upstream line: the link must still be the one it follows).
    def rebuilt() -> bool:
        return _commit_difference_ms(awslab, stack, commits=30) >= 0.8 * CROSS_AZ_S * 1000
    eventually(rebuilt, within_s=20)
    # The text the learner reads, rendered from the same measurement (a second drill would only
    # repeat the failover).
    import contextlib
    import io

    from awslab.commands.drill import print_result

    with contextlib.redirect_stdout(io.StringIO()) as text:
        print_result(result, "text")
    assert "MULTI-AZ STANDBY" in text.getvalue() and "AWS 60-120 s" in text.getvalue()
    assert ("the difference is the synchronous round trip to the standby's AZ (4.00 ms on this profile) and the "
            "standby's own write") in text.getvalue()
    assert f"missed {r['read_your_write_misses']} of {r['read_your_write_tries']}" in text.getvalue()


def test_backup_windows__base_backups_taken_and_pruned_by_retention_and_restores_before_the_window_refused(
        tmp_path, aws_sandbox):
    """A backup window of 2 s (explicit latency) and a retention of one window: new base backups
    keep coming, old ones go, the restorable window's start moves, and RDS refuses a time before it."""
    import boto3
    from botocore.exceptions import ClientError
    from conftest import server_keys

    home = tmp_path / "windows-home"
    with private_server(home, engines=True, latency="rds.backup-window=2") as server:
        rds = boto3.client("rds", region_name="us-east-1", endpoint_url=server.endpoint_url, **server_keys(home))
        rds.create_db_instance(DBInstanceIdentifier="w", Engine="postgres", DBInstanceClass="db.t3.micro",
                               MasterUsername="labadmin", MasterUserPassword="a-long-enough-password",
                               AllocatedStorage=20, BackupRetentionPeriod=1)
        rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier="w", WaiterConfig={"Delay": 0.5})
        created = rds.describe_db_instances(DBInstanceIdentifier="w")["DBInstances"][0]["InstanceCreateTime"]
        engines = json.loads((home / "local" / "engines" / "engines.json").read_text())["engines"]
        base = Path(engines["rds.us-east-1.w"]["backups"]) / "base"

        def window():
            return rds.describe_db_instance_automated_backups(DBInstanceIdentifier="w")[
                "DBInstanceAutomatedBackups"][0]["RestoreWindow"]
        eventually(lambda: (window()["EarliestTime"] - created).total_seconds() > 2, within_s=30)
        assert 1 <= len(list(base.iterdir())) <= 3   # pruned, not piling up
        earliest = window()["EarliestTime"]
        with pytest.raises(ClientError) as refused:
            rds.restore_db_instance_to_point_in_time(SourceDBInstanceIdentifier="w", TargetDBInstanceIdentifier="old",
                                                     RestoreTime=created)
        assert refused.value.response["Error"]["Code"] == "InvalidRestoreFault"
        assert earliest.strftime("%Y-%m-%dT%H:%M:%S") in refused.value.response["Error"]["Message"]

        # Deleting a source promotes its read replica (AWS's rule): standalone, its server writable.
        rds.create_db_instance_read_replica(DBInstanceIdentifier="w-r", SourceDBInstanceIdentifier="w")
        rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier="w-r", WaiterConfig={"Delay": 0.5})
        rds.delete_db_instance(DBInstanceIdentifier="w", SkipFinalSnapshot=True)
        assert "ReadReplicaSourceDBInstanceIdentifier" not in rds.describe_db_instances(
            DBInstanceIdentifier="w-r")["DBInstances"][0]

        def promoted() -> bool:
            entries = json.loads((home / "local" / "engines" / "engines.json").read_text())["engines"]
            return entries["rds.us-east-1.w-r"].get("role") == "primary" and "rds.us-east-1.w" not in entries
        eventually(promoted, within_s=30)


def test_rds_delete__an_instance_with_an_engine_reads_deleting_until_gone_never_creating(engines, engine_server, stack):
    """While its engine is snapshotted and stopped, a deleted instance is `deleting` (it read
    `creating`: the engine's teardown jobs carried the creation's label)."""
    import boto3
    from botocore.exceptions import ClientError
    from conftest import server_keys

    server, home = engine_server
    rds = boto3.client("rds", region_name="us-east-1", endpoint_url=server.endpoint_url, **server_keys(home))
    rds.create_db_instance(DBInstanceIdentifier=stack, Engine="postgres", DBInstanceClass="db.t3.micro",
                           AllocatedStorage=20, MasterUsername="labadmin", ManageMasterUserPassword=True,
                           BackupRetentionPeriod=1)

    def state() -> str:
        try:
            return rds.describe_db_instances(DBInstanceIdentifier=stack)["DBInstances"][0]["DBInstanceStatus"]
        except ClientError:
            return "<gone>"

    eventually(lambda: state() == "available")
    deleted = rds.delete_db_instance(DBInstanceIdentifier=stack, FinalDBSnapshotIdentifier=f"{stack}-final")
    seen = [deleted["DBInstance"]["DBInstanceStatus"]]
    while seen[-1] != "<gone>":
        seen.append(state())
    assert set(seen) <= {"deleting", "<gone>"} and seen[0] == "deleting", seen
    rds.delete_db_snapshot(DBSnapshotIdentifier=f"{stack}-final")
