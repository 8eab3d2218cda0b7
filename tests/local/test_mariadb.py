"""RDS's MySQL family on a real MariaDB server (the system's mariadbd), tried as a new user would:
one MySQL stack (Multi-AZ, a replica) shared by the assertions: verify's live checks over TLS with
the managed password, `connect`'s mariadb line, the replica following, a forced failover under a
write load with every acknowledged row kept (semi-synchronous commits), a snapshot restored with
its data, a dropped table back from the binary logs, an OS patch applied as a failover with every
acknowledged row kept, `drill` and the demos in MySQL's SQL (`drill --maintenance` refusing the
engine in one line); and `--set database.engine=mariadb`."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import DRILL_SHAPE, drill_shape, system_binary

pytestmark = [pytest.mark.lifecycle, pytest.mark.engines]


@pytest.fixture(scope="module")
def mariadbd():
    return system_binary("mariadbd")


def _mariadb(line: str, sql: str) -> str:
    done = subprocess.run(f"{line} -N -B -e {json.dumps(sql)}", shell=True, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _session(awslab, engines, stack: str):
    """A PyMySQL session to the primary through the stack's host (as `connect` reaches it: the
    host's security groups decide), over TLS with the CA checked, with the managed password."""
    import boto3
    import pymysql

    from awslab.local.tls import client_context

    where = json.loads(awslab("connect", "db", "--name", stack, "--output", "json").out)
    rds = boto3.client("rds", endpoint_url=engines.endpoint_url, region_name="us-east-1")
    sm = boto3.client("secretsmanager", endpoint_url=engines.endpoint_url, region_name="us-east-1")
    arn = rds.describe_db_instances(DBInstanceIdentifier=f"{stack}-db")["DBInstances"][0]["MasterUserSecret"]["SecretArn"]
    secret = json.loads(sm.get_secret_value(SecretId=arn)["SecretString"])
    port = int(where["local_address"].split(":")[1])
    return lambda: pymysql.connect(host="127.0.0.1", port=port, user=secret["username"], password=secret["password"],
                                   database="lab", ssl=client_context(where["ca"]), autocommit=True, connect_timeout=2)


def test_mysql_on_mariadb__tls_password_replica_failover_snapshot_pitr(awslab, engines, engine_server, mariadbd, stack,
                                                                      monkeypatch):
    up = awslab("up", "week6", "--name", stack, "--set", "database.engine=mysql")
    assert up.code == 0, up.err
    assert "MySQL-compatible MariaDB 10.11 stands in for MySQL 8.0" in up.out, up.out[-600:]

    live = {r["id"]: r for r in json.loads(awslab("verify", "--name", stack, "--check", "live", "--output", "json").out)}
    assert {k: r["status"] for k, r in live.items() if "db" in k} == {"live.host-to-db": "PASS", "live.db.replica.1": "PASS"}
    assert "over TLSv1.3 (certificate verified)" in live["live.host-to-db"]["detail"]
    assert "without TLS was refused (require_secure_transport=1)" in live["live.host-to-db"]["detail"]
    assert "GTID replication" in live["live.db.replica.1"]["detail"]

    line = awslab("connect", "db", "--name", stack).out.strip()
    assert "--ssl-verify-server-cert" in line and "--defaults-extra-file=" in line
    _mariadb(line, "CREATE TABLE acked (n INT PRIMARY KEY); CREATE TABLE precious (n INT)")
    assert _mariadb(line, "SELECT CURRENT_USER()") .endswith("@%")
    grants = _mariadb(line, "SHOW GRANTS")
    assert "WITH GRANT OPTION" in grants and "SUPER" not in grants   # the master user as RDS makes it
    replica = awslab("connect", "replica", "--name", stack).out.strip()
    _mariadb(line, "INSERT INTO precious VALUES (1), (2), (3)")
    deadline = time.monotonic() + 10
    while _mariadb(replica, "SELECT COUNT(*) FROM precious") != "3":
        assert time.monotonic() < deadline, "the replica did not follow"
        time.sleep(0.05)

    # A forced failover under a write load: every commit the primary acknowledged is on the new one.
    connect = _session(awslab, engines, stack)
    acked, stop = [], threading.Event()

    def writer() -> None:
        n, conn = 0, None
        while not stop.is_set():
            n += 1
            try:
                conn = conn or connect()
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO acked VALUES (%s)", (n,))
                acked.append(n)
            except Exception:  # noqa: BLE001 - the failover drops the session: reconnect
                conn = None
                time.sleep(0.02)

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.5)
    failover = awslab("failover", "--name", stack)
    time.sleep(0.5)
    stop.set()
    thread.join(10)
    assert failover.code == 0, failover.err
    assert "not available for" in failover.out
    with connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT n FROM acked")
        kept = {row[0] for row in cur.fetchall()}
    assert len(acked) > 20 and not set(acked) - kept, f"{len(set(acked) - kept)} acknowledged rows lost"

    snap = awslab("snapshot", "--name", stack, "--output", "json")
    assert snap.code == 0, snap.err
    snap_id = next(s["id"] for s in json.loads(snap.out) if s["service"] == "db")
    time.sleep(1.1)
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    time.sleep(1.1)
    _mariadb(line, "DROP TABLE precious")
    assert awslab("restore", "--name", stack, "--to-time", when, "--as", f"{stack}-undo").code == 0
    assert awslab("restore", "--name", stack, snap_id, "--as", f"{stack}-snap").code == 0
    for name in (f"{stack}-undo", f"{stack}-snap"):
        back = awslab("connect", name, "--name", stack).out.strip()
        assert _mariadb(back, "SELECT COUNT(*) FROM precious") == "3", name

    # An OS patch applied for real (a failover to the standby, Multi-AZ), every acknowledged row kept;
    # then drill --maintenance (it reads PostgreSQL's own views) refuses the engine in one line, and
    # drill and the demos run on it.
    from conftest import engines_of, signed_post

    server, server_home = engine_server
    key = next(k for k, e in engines_of(server_home).items() if k.endswith(f".{stack}-db") and e.get("role") == "primary")
    before = engines_of(server_home)[key]["pid"]
    signed_post(server, server_home, "/awslab/maintenance/offer",
                json.dumps({"region": "us-east-1", "instances": [f"{stack}-db"]}).encode())
    applied = awslab("maintenance", "--name", stack, "--apply")
    assert applied.code == 0, applied.err
    assert f"{stack}-db: system-update applied" in applied.out, applied.out
    downtime = float(applied.out.split(f"{stack}-db: ", 1)[1].split("new connections failed for ", 1)[1].split(" s", 1)[0])
    assert 0 < downtime < 30, applied.out   # the failover's, measured through the host with PyMySQL
    assert engines_of(server_home)[key]["pid"] != before   # the old standby serves now
    with connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT n FROM acked")
        assert not set(acked) - {row[0] for row in cur.fetchall()}
    refused = awslab("drill", "--maintenance", "--name", stack)
    assert refused.code == 2 and "measures PostgreSQL for now" in refused.err and "runs mysql" in refused.err
    assert len(refused.err.strip().splitlines()) == 1, refused.err
    _drill_and_demos(awslab, stack, server, server_home, monkeypatch)
    assert awslab("down", "--name", stack, "--yes", "--skip-final-snapshot", "--delete-snapshots").code == 0


def _drill_and_demos(awslab, stack: str, server, server_home, monkeypatch) -> None:
    """`awslab drill` on the MySQL family: its JSON is PostgreSQL's; the standby's promise kept under a
    real failover; the Single-AZ commit had on an instance made beside the primary, then removed
    with its server (DeleteDBInstance stops a MySQL-family engine as a PostgreSQL one)."""
    from conftest import endpoint_map, engines_of, eventually

    from awslab.commands import drill as drill_module

    # The drill's own durations and counts, shortened (the CLI runs in this process): each property
    # below still shows, in about half the time.
    for name, value in (("LOAD_BEFORE_S", 0.3), ("LOAD_AFTER_S", 0.3), ("LAG_SAMPLE_S", 1.0), ("COMMITS", 50),
                        ("WARM_UP", 5), ("RYOW_TRIES", 5)):
        monkeypatch.setattr(drill_module, name, value)

    def replication() -> str:
        """Each of the stack's servers: its role, what it follows and how (for a failure's message:
        loaded runs twice found the replica not following after a failover)."""
        from awslab.local.engines import mariadb

        said = []
        for key, e in engines_of(server_home).items():
            if e.get("engine") == "mariadb" and f".{stack}-" in key:
                try:
                    rows = mariadb.run(Path(e["socket"]), "SHOW ALL SLAVES STATUS")
                except Exception as exc:  # noqa: BLE001 - a diagnostic
                    rows = [f"{type(exc).__name__}: {exc}"]
                said.append(f"{key} {e.get('role')} port {e.get('port')} follows {e.get('primary')}: {rows}")
        log = (server_home / "local" / "server.log").read_text()
        return "\n".join([*said, log[-3000:]])

    drill = awslab("drill", "--name", stack, "--output", "json")
    assert drill.code == 0, (drill.err, replication())
    result = json.loads(drill.out)
    assert drill_shape(result) == DRILL_SHAPE and result["engine"] == "mysql"
    m, r, k = result["multi_az"], result["read_replica"], result["commit"]
    assert m["writes_acknowledged"] > 50 and m["acknowledged_writes_lost"] == 0 and m["lost"] == []
    assert m["connections_dropped"] is True and 0 < m["downtime_s"] < 30
    assert "Seconds_Behind_Master" in result["aws_reference"]["replica_lag"][1]
    assert r["samples"] > 0 and r["lag_ms_max"] >= r["lag_ms_p95"] >= r["lag_ms_p50"] >= 0, (r, replication())
    assert r["lag_ms_p50"] % 1000 == 0   # ReplicaLag for MySQL is whole seconds
    assert r["visible_after_ms_max"] >= r["visible_after_ms_p50"] > 0
    assert 0 <= r["read_your_write_misses"] <= r["read_your_write_tries"] == 5
    assert k["multi_az_ms_p50"] > 0 and k["single_az_ms_p50"] > 0
    assert f"making {stack}-db-1az-commit" in drill.err and f"deleted    db.drill.{stack}-db-1az-commit" in drill.err
    assert f"{stack}-db-1az-commit" not in awslab("status", "--name", stack).out
    eventually(lambda: not [k for k in engines_of(server_home) if k.endswith(f".{stack}-db-1az-commit")])

    from awslab.commands.drill import print_result

    with contextlib.redirect_stdout(io.StringIO()) as text:
        print_result(result, "text")
    assert "semi-synchronous" in text.getvalue() and "ReplicaLag (Seconds_Behind_Master)" in text.getvalue()
    assert "MySQL-compatible MariaDB stands in for MySQL" in text.getvalue()

    # The demos' table and report in MySQL's SQL; every cached answer equals the database's (else exit 1).
    # cache-aside first, on 1,000 orders (it seeds what it asks for); caching then seeds its 200,000.
    aside = awslab("demo", "cache-aside", "--name", stack, "--requests", "10", "--reports", "2", "--rows", "1000",
                   "--output", "json")
    assert aside.code == 0, aside.err
    assert json.loads(aside.out)["rows"] == 1000 and json.loads(aside.out)["cache_aside"]["hit_ratio"] >= 0.8
    got = awslab("demo", "caching", "--name", stack, "--duration", "0.5", "--keys", "10", "--readers", "4",
                 "--output", "json")
    assert got.code == 0, got.err
    demo = json.loads(got.out)
    by = {s["strategy"]: s for s in demo["strategies"]}
    assert list(by) == ["database-only", "lazy-ttl", "write-through", "write-through-ttl", "lazy-ttl-jitter"]
    assert all(s["reads"] > 0 and s["p50_ms"] > 0 for s in by.values()) and by["write-through"]["stale_reads"] == 0
    assert by["database-only"]["db_reads"] == by["database-only"]["reads"] > 0 and by["database-only"]["hit_ratio"] == 0
    assert demo["stampede"]["single_flight"]["db_queries"] == 1 and demo["workload"]["rows"] == 200_000
    line = awslab("connect", "db", "--name", stack).out.strip()
    assert _mariadb(line, "SELECT COUNT(*) FROM awslab_demo_orders") == "200000"   # seeded in MySQL's SQL, exactly

    # The drill's failover left a new standby, replaying the primary's binary log (the demos' 200,000
    # orders too): the primary's commits wait for it again once it has received it, and the local AWS
    # says how far behind its apply is (what the next drill waits on).
    eventually(lambda: _mariadb(line, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_status'").endswith("ON"))
    primary = next(e for e in endpoint_map(server).values() if e.get("key", "").endswith(f".{stack}-db"))
    assert isinstance(primary.get("standby_lag_s"), float), primary


def test_mariadb_engine__its_own_version_single_az(awslab, engines, mariadbd, stack):
    up = awslab("up", "week6", "--name", stack, "--set", "database.engine=mariadb", "--set", "database.multi_az=false",
                "--set", "database.read_replicas=0")
    assert up.code == 0, up.err
    assert "MariaDB 10.11" in up.out and "runs for MariaDB 10.11" in up.out
    live = {r["id"]: r for r in json.loads(awslab("verify", "--name", stack, "--check", "live", "--output", "json").out)}
    assert live["live.host-to-db"]["status"] == "PASS", live["live.host-to-db"]
    refused = awslab("up", "week6", "--name", stack, "--set", "database.engine=mariadb",
                     "--set", "database.engine_version=11.4", "--dry-run")
    assert refused.code == 2 and "runs MariaDB 10.11" in refused.err
    assert awslab("down", "--name", stack, "--yes", "--skip-final-snapshot").code == 0


def test_mysql_failover__a_transaction_only_the_replica_received_survives_and_the_replica_follows(
        awslab, engines, engine_server, mariadbd, stack):
    """The primary crashes with a transaction in its binary log that its standby had not received
    (it committed asynchronously) but its read replica had: as on RDS, whose standby shares the
    primary's storage, the new primary has it, and the replica follows the new primary (without it,
    the replica held a GTID its new primary lacked and stopped: MariaDB's error 1236)."""
    from conftest import eventually, engines_of

    from awslab.local.engines import mariadb

    assert awslab("up", "week6", "--name", stack, "--set", "database.engine=mysql").code == 0
    server, server_home = engine_server
    found = engines_of(server_home)
    key = next(k for k, e in found.items() if k.endswith(f".{stack}-db") and e.get("role") == "primary")
    replica = next(k for k, e in found.items() if k.endswith(f".{stack}-db-replica-1"))
    sock = lambda k: Path(engines_of(server_home)[k]["socket"])  # noqa: E731 - sockets move with the roles
    mariadb.run(sock(f"{key}.standby"), "STOP SLAVE IO_THREAD")   # the standby receives nothing more
    mariadb.run(sock(key), "SET GLOBAL rpl_semi_sync_master_timeout = 100", "CREATE TABLE lab.only_replica (n int)",
                "INSERT INTO lab.only_replica VALUES (1)")   # acknowledged by no standby: asynchronous
    eventually(lambda: mariadb.run(sock(replica), "SELECT COUNT(*) FROM lab.only_replica")[0][0] == 1)
    assert awslab("failover", "--name", stack).code == 0

    eventually(lambda: engines_of(server_home)[key].get("status") == "available" and engines_of(server_home)[key]["pid"])
    assert mariadb.run(sock(key), "SELECT n FROM lab.only_replica") == [(1,)]   # on the new primary too
    mariadb.run(sock(key), "INSERT INTO lab.only_replica VALUES (2)")
    eventually(lambda: mariadb.run(sock(replica), "SELECT COUNT(*) FROM lab.only_replica")[0][0] == 2, within_s=20)
    status = mariadb.status(sock(replica), "SHOW SLAVE STATUS")
    assert (status.get("Slave_IO_Running"), status.get("Last_IO_Errno")) == ("Yes", 0), status
    assert awslab("down", "--name", stack, "--yes", "--skip-final-snapshot").code == 0
