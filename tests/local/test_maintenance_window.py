"""RDS's maintenance window on the local AWS: a next-maintenance action applied, for real, when the
window arrives; AWS's window rules and refusals; `awslab drill --maintenance`, Single-AZ against
Multi-AZ under the same OS patch. One stack for all of it (the suite's time is short)."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.exceptions import ClientError
from conftest import server_keys

from awslab.spec import windows

@pytest.mark.parametrize("window, backup, said", [
    ("Sun:23:45-Mon:00:15", None, None),   # AWS's own example, across the week's end
    ("sat:22:00-sun:02:00", "03:00-03:30", None),
    ("sun:05:00-sun:05:10", None, "The maintenance window must be at least 30 minutes."),
    ("mon:05:00", None, "Invalid maintenance window format: mon:05:00. Should be specified as a range"),
    ("xyz:05:00-xyz:05:30", None, "Invalid day:hour:minute value: xyz:05:00-xyz:05:30"),
    ("mon:24:00-tue:00:30", None, "Invalid day:hour:minute value"),
    ("mon:05:00-tue:06:00", None, "Maintenance window must be less than 24 hours."),
    ("tue:02:50-tue:03:20", "03:00-03:30", "The backup window and maintenance window must not overlap."),
])
def test_window_rules__as_aws_words_them(window, backup, said):
    got = windows.error(window, backup)
    assert (got is None) if said is None else (got or "").startswith(said)


def _window_starting(at: datetime, backup: str | None) -> tuple[str, datetime]:
    """A 30-minute window starting at ``at`` (or later, clear of the daily backup window)."""
    while True:
        end = at + timedelta(minutes=30)
        window = f"{at:%a}:{at:%H:%M}-{end:%a}:{end:%H:%M}".lower()
        if windows.error(window, backup) is None:
            return window, at
        at += timedelta(minutes=40)


@pytest.mark.engines
def test_maintenance_window__applies_opted_in_patch_when_it_arrives_and_drill_compares_single_and_multi_az(
        awslab, engines, engine_server, stack):
    from awslab.local import manager

    server, home = engine_server
    rds = boto3.client("rds", region_name="us-east-1", endpoint_url=engines.endpoint_url, **server_keys(home))
    assert awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0").code == 0
    ident = f"{stack}-db"
    db = rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]
    arn = db["DBInstanceArn"]

    # awslab's own input: a bad window is one line, exit 2, nothing changed; a good one is set in place.
    bad = awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0",
                 "--set", "database.maintenance_window=sun:05:00-sun:05:10")
    assert bad.code == 2 and "at least 30 minutes" in bad.err and len(bad.err.strip().splitlines()) == 1
    assert rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]["PreferredMaintenanceWindow"] == \
        db["PreferredMaintenanceWindow"]
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    window, opens = _window_starting(now + timedelta(minutes=10), db.get("PreferredBackupWindow"))
    set_it = ["--set", "database.read_replicas=0", "--set", f"database.maintenance_window={window.upper()}"]
    assert f"database.maintenance_window: {db['PreferredMaintenanceWindow']} -> {window}" in \
        awslab("plan", "week6", "--name", stack, *set_it).out
    assert awslab("up", "week6", "--name", stack, *set_it).code == 0
    assert rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]["PreferredMaintenanceWindow"] == window
    assert awslab("verify", "--name", stack, *set_it, "--check", "spec.db.maintenance-window").code == 0

    # AWS's answers through the API: the window's rules, an action not pending, a stopped instance.
    def refused(call, **kw) -> tuple[str, str]:
        with pytest.raises(ClientError) as caught:
            call(**kw)
        return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]

    assert refused(rds.modify_db_instance, DBInstanceIdentifier=ident, PreferredMaintenanceWindow="sun:05:00-sun:05:10") \
        == ("InvalidParameterValue", "The maintenance window must be at least 30 minutes.")
    assert refused(rds.apply_pending_maintenance_action, ResourceIdentifier=arn, ApplyAction="system-update",
                   OptInType="next-maintenance") == ("InvalidParameterCombination",
                                                     f"There is no pending system-update action for {arn}")
    assert awslab("maintenance", "--name", stack, "--offer").code == 0
    rds.stop_db_instance(DBInstanceIdentifier=ident)
    assert refused(rds.apply_pending_maintenance_action, ResourceIdentifier=arn, ApplyAction="system-update",
                   OptInType="next-maintenance")[0] == "InvalidDBInstanceState"
    rds.start_db_instance(DBInstanceIdentifier=ident)

    # Opted in for the window, which arrives ~2 s later (a week scaled so): applied for real then.
    until_s = (opens - datetime.now(timezone.utc)).total_seconds()
    manager.set_latency(server, f"instant,rds.maintenance-window={2.0 * windows.WEEK_MIN * 60 / until_s:.3f}")
    try:
        opted = time.monotonic()
        detail = rds.apply_pending_maintenance_action(ResourceIdentifier=arn, ApplyAction="system-update",
                                                      OptInType="next-maintenance")["ResourcePendingMaintenanceActions"]
        detail = detail["PendingMaintenanceActionDetails"][0]
        assert detail["OptInStatus"] == "next-maintenance" and detail["CurrentApplyDate"] == opens
        assert "AutoAppliedAfterDate" not in detail   # an optional update: applied only when opted in
        while rds.describe_pending_maintenance_actions(ResourceIdentifier=arn)["PendingMaintenanceActions"]:
            assert time.monotonic() - opted < 30, "the window never applied the patch"
            time.sleep(0.2)
        assert time.monotonic() - opted > 1.5   # at the window, not at once
    finally:
        manager.set_latency(server, "instant")
    log = (home / "local" / "server.log").read_text()
    steps = [log.rfind(f"maintenance window {window} of {ident}: applying system-update")] + [
        log.rfind(f"{ident}.aaaaaaaaaa.us-east-1.rds.amazonaws.com:5432: {what}")
        for what in ("patching the standby first", "failing over to the patched standby",
                     "patching the old primary, back as the standby")]
    assert all(s >= 0 for s in steps) and steps == sorted(steps), steps

    # The same OS patch on a Single-AZ instance and on the Multi-AZ primary, side by side.
    nothing = awslab("drill", "--maintenance", "--name", f"{stack}x")
    assert nothing.code == 2 and "has no primary DB" in nothing.err and len(nothing.err.strip().splitlines()) == 1
    drilled = awslab("drill", "--maintenance", "--name", stack, "-o", "json")
    assert drilled.code == 0, drilled.err
    result = json.loads(drilled.out)
    one, multi = result["single_az"], result["multi_az"]
    assert result["scaled"]["time_scale"] == 0.01 and result["aws_reference"]["multi_az"][0]
    assert multi["acknowledged_writes_lost"] == 0 and multi["writes_acknowledged"] > 50
    assert one["acknowledged_writes_lost"] == 0 and one["server_restarted"] and multi["server_restarted"]
    assert one["connections_dropped"] >= 1 and multi["connections_dropped"] >= 1
    assert one["downtime_s"] > 2 * multi["downtime_s"] > 0, (one, multi)
    assert [e["server"] for e in multi["events"]] == ["standby", "primary", "old primary"]   # standby first
    assert one["downtime_s"] >= 0.9 * result["scaled"]["os_reboot_s"]
    with pytest.raises(ClientError):   # the temporary instance is gone
        rds.describe_db_instances(DBInstanceIdentifier=one["instance"])
