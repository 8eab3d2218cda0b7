"""A Multi-AZ DB cluster on real PostgreSQL engines, tried as a learner would with the AWS API: a
commit is acknowledged once either reader has it (one reader down costs nothing, both down and a
commit waits), the reader endpoint spreads over both readers and refuses writes, a failover drops
open sessions and promotes the most caught-up reader with every acknowledged row, the old writer
comes back as a reader, the cluster survives a restart of the local AWS, and its final snapshot's
data is kept when it is deleted (a cluster restored from it has every row). A mysql cluster says it
is control plane only."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from conftest import _home, endpoint_map, engines_of, eventually, private_server, server_keys

pytestmark = [pytest.mark.lifecycle, pytest.mark.engines]
REFUSED_WRITE = "cannot execute INSERT in a read-only transaction"


def _clients(server, home: Path):
    keys = server_keys(home)
    return {s: boto3.client(s, region_name="us-east-1", endpoint_url=server.endpoint_url, **keys)
            for s in ("ec2", "rds", "secretsmanager")}


def _open_network(c: dict, name: str) -> tuple[str, str]:
    """A subnet group over three AZs of the default VPC and a group that admits this machine."""
    ec2, rds = c["ec2"], c["rds"]
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    subnets = {s["AvailabilityZone"]: s["SubnetId"] for s in ec2.describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "default-for-az", "Values": ["true"]}])["Subnets"]}
    rds.create_db_subnet_group(DBSubnetGroupName=name, DBSubnetGroupDescription="three AZs",
                               SubnetIds=[subnets[f"us-east-1{z}"] for z in "abc"])
    sg = ec2.create_security_group(GroupName=name, Description="psql from this machine", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": "127.0.0.1/32"}]}])
    return name, sg


def _available(rds, ident: str) -> bool:
    cluster = rds.describe_db_clusters(DBClusterIdentifier=ident)["DBClusters"][0]
    members = rds.describe_db_instances(Filters=[{"Name": "db-cluster-id", "Values": [ident]}])["DBInstances"]
    return cluster["Status"] == "available" and {m["DBInstanceStatus"] for m in members} == {"available"}


def _writer(rds, ident: str) -> str:
    members = rds.describe_db_clusters(DBClusterIdentifier=ident)["DBClusters"][0]["DBClusterMembers"]
    return next(m["DBInstanceIdentifier"] for m in members if m["IsClusterWriter"])


class Cluster:
    """The cluster's endpoints as this machine reaches them (the local AWS's map), and sessions on them."""

    def __init__(self, server, rds, ident: str, password: str) -> None:
        self.server, self.rds, self.ident, self.password = server, rds, ident, password
        described = rds.describe_db_clusters(DBClusterIdentifier=ident)["DBClusters"][0]
        self.writer_ep = f"{described['Endpoint']}:{described['Port']}"
        self.reader_ep = f"{described['ReaderEndpoint']}:{described['Port']}"
        self.members = {db["DBInstanceIdentifier"]: f"{db['Endpoint']['Address']}:{db['Endpoint']['Port']}"
                        for db in rds.describe_db_instances(Filters=[{"Name": "db-cluster-id", "Values": [ident]}])["DBInstances"]}

    def info(self, endpoint: str) -> dict:
        return endpoint_map(self.server).get(endpoint) or {}

    def serving(self) -> bool:
        return all(self.info(e).get("status") == "available" for e in (self.writer_ep, self.reader_ep, *self.members.values()))

    def session(self, endpoint: str):
        import pg8000.native

        # PostgreSQL 16: TLS required (rds.force_ssl=1); the endpoint's tunnel speaks it for a plain client.
        return pg8000.native.Connection("labadmin", host="127.0.0.1", port=int(self.info(endpoint)["tunnel_port"]),
                                        password=self.password, database="postgres", timeout=10, ssl_context=False)

    def rows(self, endpoint: str) -> list:
        conn = self.session(endpoint)
        try:
            return conn.run("SELECT n FROM orders ORDER BY n")
        finally:
            conn.close()


def _reaches(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.3).close()
        return True
    except OSError:
        return False


def _walreceiver(standby_pid: int) -> int:
    from awslab.local.processes import cmdline, parent_pid

    return next(int(p) for p in os.listdir("/proc") if p.isdigit() and parent_pid(int(p)) == standby_pid
                and "walreceiver" in cmdline(int(p)))


@contextlib.contextmanager
def _paused(*pids: int):
    """The standbys' walreceivers stopped: they receive nothing and acknowledge nothing."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):   # let go, and gone with its writer since
                os.kill(pid, signal.SIGCONT)


def test_cluster__quorum_commit_reader_endpoint_failover_restart_and_final_snapshot(tmp_path):
    home = tmp_path / "home"
    with private_server(home, engines=True) as server:
        c = _clients(server, home)
        rds, ident = c["rds"], "labdb"
        group, sg = _open_network(c, "lab3az")
        asked = time.monotonic()
        made = rds.create_db_cluster(DBClusterIdentifier=ident, Engine="postgres", EngineVersion="16",
                                     DBClusterInstanceClass="db.m6gd.large", AllocatedStorage=20, StorageType="gp3",
                                     MasterUsername="labadmin", ManageMasterUserPassword=True, DBSubnetGroupName=group,
                                     VpcSecurityGroupIds=[sg], PubliclyAccessible=True)["DBCluster"]
        # The control plane says nothing is ready before the engines are: a member reads `creating`
        # until its engine serves (under load the engines, about a second's work, can be done before
        # the test's next request: then its endpoint already serves).
        members = rds.describe_db_instances(Filters=[{"Name": "db-cluster-id", "Values": [ident]}])["DBInstances"]
        serving = {e for e, info in endpoint_map(server).items() if info.get("status") == "available"}
        said = {m["DBInstanceIdentifier"]: m["DBInstanceStatus"] for m in members}
        early = [m["DBInstanceIdentifier"] for m in members if m["DBInstanceStatus"] != "creating"
                 and f"{(m.get('Endpoint') or {}).get('Address')}:{(m.get('Endpoint') or {}).get('Port')}" not in serving]
        assert made["Status"] == "creating" and set(said.values()) <= {"creating", "available"} and not early, (
            made["Status"], said, early, f"{time.monotonic() - asked:.2f} s after the request", endpoint_map(server),
            (home / "local" / "server.log").read_text()[-4000:])
        eventually(lambda: _available(rds, ident), within_s=90)
        secret = c["secretsmanager"].get_secret_value(SecretId=made["MasterUserSecret"]["SecretArn"])
        cl = Cluster(server, rds, ident, json.loads(secret["SecretString"])["password"])
        eventually(cl.serving, within_s=30)
        writer = _writer(rds, ident)
        assert writer == f"{ident}-instance-1"
        standbys = sorted(m for m in cl.members if m != writer)

        # Quorum commit: ANY one of the two readers acknowledges a commit.
        w = cl.session(cl.writer_ep)
        assert w.run("SELECT pg_is_in_recovery()") == [[False]]
        assert w.run("SELECT sync_state, count(*) FROM pg_stat_replication GROUP BY 1") == [["quorum", 2]]
        w.run("CREATE TABLE orders (n int PRIMARY KEY)")
        w.run("BEGIN")
        w.run("INSERT INTO orders VALUES (1)")
        before_commit = w.run("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn")[0][0]
        w.run("COMMIT")
        received = []
        for s in standbys:   # at commit, one reader at least has flushed it
            conn = cl.session(cl.members[s])
            received.append(conn.run("SELECT pg_last_wal_receive_lsn() - '0/0'::pg_lsn")[0][0])
            conn.close()
        assert max(received) >= before_commit
        eventually(lambda: all(cl.rows(cl.members[s]) == [[1]] for s in standbys))

        pids = {s: cl.info(cl.members[s])["pid"] for s in standbys}
        receivers = {s: _walreceiver(pids[s]) for s in standbys}
        with _paused(receivers[standbys[0]]):   # one reader down: commits go on
            started = time.monotonic()
            w.run("INSERT INTO orders VALUES (2)")
            assert time.monotonic() - started < 5   # a commit held for the paused reader would wait until it came back
        with ThreadPoolExecutor(1) as pool:
            with _paused(*receivers.values()):   # both down: a commit waits
                commit = pool.submit(w.run, "INSERT INTO orders VALUES (3)")
                watch = cl.session(cl.writer_ep)
                eventually(lambda: watch.run("SELECT wait_event FROM pg_stat_activity WHERE query LIKE "
                                             "'INSERT INTO orders%'") == [["SyncRep"]], within_s=5)
                time.sleep(1)
                assert not commit.done()
            commit.result(timeout=10)   # a reader back: the commit is acknowledged
        watch.close()
        for n in range(4, 101):   # each acknowledged before the next
            w.run("INSERT INTO orders VALUES (:n)", n=n)

        # The reader endpoint: both readers by turns, read-only.
        seen = set()
        for _ in range(4):
            r = cl.session(cl.reader_ep)
            (recovery, port), = r.run("SELECT pg_is_in_recovery(), inet_server_port()")
            assert recovery is True
            seen.add(port)
            with pytest.raises(Exception, match=REFUSED_WRITE):
                r.run("INSERT INTO orders VALUES (0)")
            r.close()
        assert seen == {cl.info(cl.members[s])["engine_port"] for s in standbys}

        # The VPC decides as for an instance: without the rule that admits this machine, every
        # endpoint of the cluster drops its connections (the client times out).
        admit = [{"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": "127.0.0.1/32"}]}]
        c["ec2"].revoke_security_group_ingress(GroupId=sg, IpPermissions=admit)
        ports = [cl.info(e)["port"] for e in (cl.writer_ep, cl.reader_ep, *cl.members.values())]
        eventually(lambda: not any(_reaches(p) for p in ports), within_s=10)
        c["ec2"].authorize_security_group_ingress(GroupId=sg, IpPermissions=admit)
        eventually(lambda: all(_reaches(p) for p in ports), within_s=10)

        # A failover: the open session drops, the writer endpoint reaches the promoted reader with
        # every acknowledged row, the other reader follows it, the old writer comes back as a reader.
        after = rds.failover_db_cluster(DBClusterIdentifier=ident)["DBCluster"]
        new_writer = next(m["DBInstanceIdentifier"] for m in after["DBClusterMembers"] if m["IsClusterWriter"])
        assert new_writer in standbys
        with pytest.raises(Exception):
            w.run("SELECT 1")
        eventually(lambda: _available(rds, ident) and cl.serving(), within_s=90)
        assert _writer(rds, ident) == new_writer
        w = cl.session(cl.writer_ep)
        assert w.run("SELECT pg_is_in_recovery()") == [[False]]
        assert w.run("SELECT count(*), max(n) FROM orders") == [[100, 100]]
        assert cl.info(cl.writer_ep)["engine_port"] == cl.info(cl.members[new_writer])["engine_port"]
        eventually(lambda: w.run("SELECT sync_state, count(*) FROM pg_stat_replication GROUP BY 1") == [["quorum", 2]],
                   within_s=30)
        w.run("INSERT INTO orders VALUES (101)")
        eventually(lambda: all(cl.rows(cl.members[m])[-1] == [101] for m in cl.members))
        r = cl.session(cl.reader_ep)
        assert r.run("SELECT pg_is_in_recovery()") == [[True]]
        r.close()
        old = cl.session(cl.members[writer])   # the old writer, a reader now
        assert old.run("SELECT pg_is_in_recovery()") == [[True]]
        old.close()
        w.close()

        # A mysql cluster: its control plane only, said where its endpoints are listed.
        rds.create_db_cluster(DBClusterIdentifier="labmy", Engine="mysql", DBClusterInstanceClass="db.m6gd.large",
                              AllocatedStorage=20, StorageType="gp3", MasterUsername="labadmin",
                              MasterUserPassword="longenough1", DBSubnetGroupName=group)
        mysql = endpoint_map(server)
        mine = [e for k, e in mysql.items() if k.startswith("labmy")]
        assert len(mine) == 5 and all(e["status"] == "unavailable" and "control plane only" in e["reason"] for e in mine)

        # A restart of the local AWS: the engines come back on their data, in their roles.
        with _home(home):
            from awslab.local import manager

            manager.stop()
            server = manager.start(engines=True)
        cl.server = server
        c = _clients(server, home)
        rds = cl.rds = c["rds"]
        eventually(lambda: cl.serving() and _available(rds, ident), within_s=90)
        w = cl.session(cl.writer_ep)
        assert w.run("SELECT pg_is_in_recovery(), count(*) FROM orders GROUP BY 1") == [[False, 101]]
        eventually(lambda: w.run("SELECT sync_state, count(*) FROM pg_stat_replication GROUP BY 1") == [["quorum", 2]],
                   within_s=30)
        # A commit only the other reader acknowledged (the one asked for below had its WAL receiver
        # stopped, let go a second into the failover request), then a failover to the reader asked
        # for (the first writer, a reader since): the writer again, with that commit. (The writer
        # stops as in a switchover, its WAL flushed to the member asked for first: CI once lost
        # such a commit when the writer crashed before it had been sent there.)
        receiver = _walreceiver(cl.info(cl.members[writer])["pid"])
        with _paused(receiver):
            w.run("INSERT INTO orders VALUES (102)")
            threading.Timer(1.0, os.kill, (receiver, signal.SIGCONT)).start()
            rds.failover_db_cluster(DBClusterIdentifier=ident, TargetDBInstanceIdentifier=writer)
        eventually(lambda: _available(rds, ident) and cl.serving(), within_s=90)
        assert _writer(rds, ident) == writer
        w = cl.session(cl.writer_ep)
        assert w.run("SELECT pg_is_in_recovery(), count(*) FROM orders GROUP BY 1") == [[False, 102]]
        eventually(lambda: w.run("SELECT sync_state, count(*) FROM pg_stat_replication GROUP BY 1") == [["quorum", 2]],
                   within_s=30)

        # A point-in-time restore, across both failovers and the restart: the cluster's archive is
        # its own, whichever member writes; a row committed after the time asked for is not there.
        mark = time.time()
        time.sleep(0.5)
        w.run("INSERT INTO orders VALUES (103)")
        w.close()
        time.sleep(2)   # the restorable window trails the present by the archive interval
        with pytest.raises(ClientError, match="InvalidRestoreFault"):   # before the cluster was made
            rds.restore_db_cluster_to_point_in_time(DBClusterIdentifier="labpit", SourceDBClusterIdentifier=ident,
                                                    RestoreToTime=datetime(2020, 1, 1, tzinfo=timezone.utc))
        latest = rds.describe_db_clusters(DBClusterIdentifier=ident)["DBClusters"][0]["LatestRestorableTime"]
        assert latest.timestamp() >= mark
        pit = rds.restore_db_cluster_to_point_in_time(
            DBClusterIdentifier="labpit", SourceDBClusterIdentifier=ident, DBSubnetGroupName=group,
            RestoreToTime=datetime.fromtimestamp(mark, timezone.utc), VpcSecurityGroupIds=[sg],
            PubliclyAccessible=True)["DBCluster"]
        eventually(lambda: _available(rds, "labpit"), within_s=90)
        secret = c["secretsmanager"].get_secret_value(SecretId=pit["MasterUserSecret"]["SecretArn"])
        past = Cluster(server, rds, "labpit", json.loads(secret["SecretString"])["password"])
        eventually(past.serving, within_s=30)
        assert past.rows(past.writer_ep)[-1] == [102] and len(past.rows(past.writer_ep)) == 102
        eventually(lambda: len(past.rows(past.reader_ep)) == 102)
        rds.delete_db_cluster(DBClusterIdentifier="labpit", SkipFinalSnapshot=True)

        # Deleted with a final snapshot: the engines go, the snapshot's data stays.
        rds.delete_db_cluster(DBClusterIdentifier=ident, FinalDBSnapshotIdentifier="labdb-final")
        keys = [f"rds.us-east-1.{m}" for m in cl.members]
        eventually(lambda: not set(keys) & set(engines_of(home)), within_s=60)
        snap = home / "local" / "engines" / "snapshots" / "rds.us-east-1.labdb-final"
        assert json.loads((snap / "snapshot.json").read_text())["source"] == f"rds.us-east-1.{writer}"   # the writer's data
        assert cl.writer_ep not in endpoint_map(server)

        # A new cluster restored from that snapshot: every row, on its writer and its readers.
        restored = rds.restore_db_cluster_from_snapshot(
            DBClusterIdentifier="labdb2", SnapshotIdentifier="labdb-final", Engine="postgres",
            DBClusterInstanceClass="db.m6gd.large", DBSubnetGroupName=group, VpcSecurityGroupIds=[sg],
            PubliclyAccessible=True)["DBCluster"]
        assert restored["Status"] == "creating"
        eventually(lambda: _available(rds, "labdb2"), within_s=90)
        # Its own managed master password, as a restored instance has (the secret of the deleted cluster went with it).
        secret = c["secretsmanager"].get_secret_value(SecretId=restored["MasterUserSecret"]["SecretArn"])
        again = Cluster(server, rds, "labdb2", json.loads(secret["SecretString"])["password"])
        eventually(again.serving, within_s=30)
        assert len(again.rows(again.writer_ep)) == 103
        eventually(lambda: len(again.rows(again.reader_ep)) == 103)
        rds.delete_db_cluster(DBClusterIdentifier="labdb2", SkipFinalSnapshot=True)
