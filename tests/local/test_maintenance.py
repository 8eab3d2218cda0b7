"""RDS maintenance on the local AWS: pending actions as RDS lists them, applied for real."""

from __future__ import annotations

import json
import ssl
import threading
import time
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from conftest import server_keys

pytestmark = [pytest.mark.engines]


def _session(awslab, stack: str):
    """A session to the stack's primary as `awslab connect db --env` gives it (through the host)."""
    import pg8000.native

    env = dict(line.removeprefix("export ").split("=", 1) for line in
               awslab("connect", "db", "--name", stack, "--env").out.splitlines())
    env = {k: v.strip("'") for k, v in env.items()}
    password = Path(env["PGPASSFILE"]).read_text().strip().split(":")[-1]
    return lambda: pg8000.native.Connection(env["PGUSER"], host="127.0.0.1", port=int(env["PGPORT"]),
                                            database=env["PGDATABASE"], password=password, timeout=5,
                                            ssl_context=ssl.create_default_context(cafile=env["PGSSLROOTCERT"]))


def test_maintenance__multi_az_patches_the_standby_first_fails_over_and_loses_no_acknowledged_write(
        awslab, engines, engine_server, stack):
    from awslab.commands.drill import Load

    assert awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0").code == 0
    rds = boto3.client("rds", region_name="us-east-1", endpoint_url=engines.endpoint_url, **server_keys(engine_server[1]))
    assert "no pending maintenance" in awslab("maintenance", "--name", stack).out
    offered = awslab("maintenance", "--name", stack, "--offer")
    assert offered.code == 0 and f"{stack}-db" in offered.out and "system-update" in offered.out
    arn = rds.describe_db_instances(DBInstanceIdentifier=f"{stack}-db")["DBInstances"][0]["DBInstanceArn"]
    listed = rds.describe_pending_maintenance_actions(ResourceIdentifier=arn)["PendingMaintenanceActions"]
    assert [(p["ResourceIdentifier"], [d["Action"] for d in p["PendingMaintenanceActionDetails"]]) for p in listed] == \
        [(arn, ["system-update"])]

    # AWS's answers to what cannot be applied; opting in for the window and out again.
    def refused(**kw) -> str:
        with pytest.raises(ClientError) as caught:
            rds.apply_pending_maintenance_action(ResourceIdentifier=arn, **kw)
        return caught.value.response["Error"]["Code"]

    assert refused(ApplyAction="system-update", OptInType="whenever") == "InvalidParameterValue"
    assert refused(ApplyAction="db-upgrade", OptInType="immediate") == "InvalidParameterCombination"
    from awslab.local import manager

    manager.set_latency(engine_server[0], "instant,rds.maintenance-window=604800")   # the window a real week away
    later = rds.apply_pending_maintenance_action(ResourceIdentifier=arn, ApplyAction="system-update",
                                                 OptInType="next-maintenance")["ResourcePendingMaintenanceActions"]
    detail = later["PendingMaintenanceActionDetails"][0]
    assert detail["OptInStatus"] == "next-maintenance" and detail["CurrentApplyDate"].strftime("%a %H:%M") == "Wed 06:38"
    undone = rds.apply_pending_maintenance_action(ResourceIdentifier=arn, ApplyAction="system-update",
                                                  OptInType="undo-opt-in")["ResourcePendingMaintenanceActions"]
    assert undone["PendingMaintenanceActionDetails"][0]["OptInStatus"] == "none"
    manager.set_latency(engine_server[0], "instant")

    # Applied now, under a numbered write load: every acknowledged row is there afterwards.
    connect = _session(awslab, stack)
    first = connect()
    first.run("CREATE TABLE maint (n int PRIMARY KEY)")
    first.close()
    load = Load(write=lambda c, n: c.run("INSERT INTO maint VALUES (:n)", n=n), connect=connect)
    writer = threading.Thread(target=load.run, daemon=True)
    writer.start()
    time.sleep(0.5)
    applied = awslab("maintenance", "--name", stack, "--apply", "--output", "json")
    time.sleep(0.3)
    load.stop.set()
    writer.join(10)
    assert applied.code == 0, applied.err
    (done,) = json.loads(applied.out)["applied"]
    assert done["multi_az"] is True and done["action"] == "system-update" and done["probes"] > 0
    check = connect()
    present = {r[0] for r in check.run("SELECT n FROM maint")}
    check.close()
    assert len(load.acked) > 50 and [n for n, _ in load.acked if n not in present] == []
    assert rds.describe_pending_maintenance_actions(ResourceIdentifier=arn)["PendingMaintenanceActions"] == []
    # The standby was patched before the failover, the old primary after it, as RDS orders them.
    log = (engine_server[1] / "local" / "server.log").read_text()
    steps = [log.rfind(f"{stack}-db.aaaaaaaaaa.us-east-1.rds.amazonaws.com:5432: {what}")
             for what in ("patching the standby first", "failing over to the patched standby",
                          "patching the old primary, back as the standby")]
    assert all(s >= 0 for s in steps) and steps == sorted(steps), steps
    # Still Multi-AZ with a standby that has every row: a forced failover loses none.
    assert awslab("failover", "--name", stack).code == 0
    check = connect()
    assert {r[0] for r in check.run("SELECT n FROM maint")} >= {n for n, _ in load.acked}
    check.close()


def test_maintenance__single_az_restarts_and_nothing_pending_is_refused(awslab, engines, stack):
    assert awslab("up", "week6", "--name", stack, "--set", "database.multi_az=false").code == 0
    nothing = awslab("maintenance", "--name", stack, "--apply")
    assert nothing.code == 2 and "no pending maintenance" in nothing.err and len(nothing.err.strip().splitlines()) == 1
    assert awslab("maintenance", "--name", stack, "--offer").code == 0
    applied = awslab("maintenance", "--name", stack, "--apply", "--output", "json")
    assert applied.code == 0, applied.err
    applied = {a["instance"]: a for a in json.loads(applied.out)["applied"]}
    assert sorted(applied) == [f"{stack}-db", f"{stack}-db-replica-1"]   # the replica is patched too
    for done in applied.values():
        # The server restarted: new connections failed while it was down, then came back (the
        # replica's probe logs in as its source's master user).
        assert done["multi_az"] is False and done["failed_probes"] > 0 and done["downtime_s"] > 0
        assert done["failed_probes"] < done["probes"]
    assert awslab("verify", "--name", stack, "--check", "live").code == 0   # the replica still follows
    text = awslab("maintenance", "--name", stack)
    assert "no pending maintenance" in text.out
