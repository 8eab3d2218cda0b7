"""`awslab drill --maintenance`: what the same OS patch costs a Single-AZ and a Multi-AZ instance,
measured side by side on the local AWS's real engines.

The stack's Multi-AZ primary and a temporary Single-AZ instance made beside it (the primary's
settings, in the stack's subnets and security group, tagged as the stack's, so `down` would find it;
always deleted at the end, Ctrl-C too) each get a numbered write load through their endpoint, as
the stack's host reaches them; the local AWS offers both an OS update (``system-update``) and the
drill applies it to both at once (ApplyPendingMaintenanceAction, ``immediate``). Then, per instance:
how long writes failed (the downtime), how many open connections were dropped, every acknowledged
write checked row by row, and which server restarted when, read from the servers themselves (a
server's ``pg_postmaster_start_time()``; the Multi-AZ standby's ``backend_start`` on the primary).

RDS patches a Multi-AZ instance's standby first, fails over to it, then patches the old primary:
the downtime is the failover's. A Single-AZ instance is offline while its OS is patched. On the
local AWS the patch's steps take the latency profile's durations (``rds.os-update``,
``rds.failover``); on ``instant``, which has none, AWS's durations at ``TIME_SCALE`` instead, said
in the output, so the two figures are AWS's, scaled alike, plus what the real engines take.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from awslab import ui
from awslab.commands._common import local_profile, progress_run
from awslab.commands.drill import LOAD_AFTER_S, LOAD_BEFORE_S, Load, multi_az_primary, reconnecting, steady
from awslab.commands.maintenance import APPLY_TIMEOUT_S, offer_update, wait_applied
from awslab.commands.single_az import require_room, single_az_beside
from awslab.engine.context import Context
from awslab.engine.discovery import discover
from awslab.engine.run import Run
from awslab.errors import EXIT_OK, UsageError
from awslab.local.latency import realistic_seconds
from awslab.spec.model import Found
from awslab.verify import live

ACTION = "system-update"
TIME_SCALE = 0.01          # AWS's durations, scaled, when the local AWS runs `instant`
SCRATCH_SUFFIX = "-db-1az-patch"
STANDBY_BACK_S = 15.0      # the most the drill waits to see the patched old primary stream again

AWS_REFERENCE = {
    "multi_az": ("a failover, about 60 s (60-120 s)",
                 "RDS User Guide, 'Maintaining a DB instance': a Multi-AZ instance's standby is patched, it "
                 "is promoted, then the old primary is patched; 'Failover process for Amazon RDS': 60-120 s"),
    "single_az": ("offline for minutes while the OS is patched",
                  "RDS User Guide, 'Maintaining a DB instance' / 'Applying updates to a DB instance': "
                  "required OS patching takes the instance offline"),
    "multi_az_loss": ("0", "synchronous replication: a commit returns once the standby has it"),
}


@dataclass
class Side:
    """One instance under the patch: its endpoint, its load, what was seen of its servers."""
    label: str
    ident: str
    arn: str
    connect: object
    load: Load | None = None
    started_before: datetime | None = None
    events: list[dict] = field(default_factory=list)


def scratch_name(stack: str) -> str:
    return f"{stack}{SCRATCH_SUFFIX}"


def drill_maintenance(ctx: Context, stack: str, *, output: str, progress: ui.Progress) -> int:
    if not ctx.is_local:
        raise UsageError("awslab drill --maintenance measures the local AWS's real engines; it is local-only",
                         "on AWS: awslab maintenance --apply, and CloudWatch's metrics of the instance")
    run = progress_run(ctx, stack, "", progress)
    run.found.update(discover(run))
    primary = multi_az_primary(run.found, stack, "awslab drill --maintenance", "patch",
                               "the drill compares it with a Multi-AZ instance")
    live.require_postgres(primary.get("raw") or {}, "awslab drill --maintenance")
    require_room(run, stack)
    raw = primary.get("raw") or {}
    live.require_engine(live.resolve(live.endpoint_map(run, live.host_of(run.found)), raw["Endpoint"]["Address"],
                                     raw["Endpoint"]["Port"]), "the database")
    profile = local_profile(ctx)
    # `instant` gives the patch's steps no time: AWS's, scaled, so the two figures stay comparable.
    bare = profile["profile"] == "instant" and not {"rds.os-update", "rds.failover"} & set(profile["explicit"])
    time_scale = TIME_SCALE if bare else None
    with single_az_beside(run, progress, primary, scratch_name(stack), "drill --maintenance") as scratch:
        result = _measure(run, primary, scratch, time_scale)
    result.update(stack=stack, profile=profile, action=ACTION, aws_reference=AWS_REFERENCE,
                  scaled=None if time_scale is None else {
                      "time_scale": time_scale,
                      "os_reboot_s": round(realistic_seconds("rds.os-update", time_scale), 3),
                      "failover_s": round(realistic_seconds("rds.failover", time_scale), 3)})
    print_result(result, output)
    return EXIT_OK


def _side(run: Run, label: str, found: Found, mapping) -> Side:
    raw = found.get("raw") or {}
    addr = live.resolve(mapping, raw["Endpoint"]["Address"], raw["Endpoint"]["Port"])
    live.require_engine(addr, found.id)
    user, password = live.db_credentials(run, raw)
    database = raw.get("DBName") or "postgres"
    return Side(label, found.id, raw["DBInstanceArn"], lambda: live.pg_connect(addr, user, password, database))


def _one(connect, sql: str):
    conn = reconnecting(connect)
    try:
        rows = conn.run(sql)
    finally:
        conn.close()
    return rows


def _measure(run: Run, primary: Found, scratch: Found, time_scale: float | None) -> dict:
    mapping = live.endpoint_map(run, live.host_of(run.found))   # again: the new instance's listener
    sides = [_side(run, "single_az", scratch, mapping), _side(run, "multi_az", primary, mapping)]
    offer_update(run, [s.ident for s in sides], time_scale=time_scale)
    threads = []
    for s in sides:
        _one(s.connect, "DROP TABLE IF EXISTS awslab_drill_patch")
        _one(s.connect, "CREATE TABLE awslab_drill_patch (n int PRIMARY KEY, at timestamptz DEFAULT now())")
        s.started_before = _one(s.connect, "SELECT pg_postmaster_start_time()")[0][0]
        s.load = Load(write=lambda c, n: c.run("INSERT INTO awslab_drill_patch (n) VALUES (:n)", n=n), connect=s.connect)
        threads.append(threading.Thread(target=s.load.run, daemon=True))
        threads[-1].start()
    for s in sides:
        steady(s.load, 0, LOAD_BEFORE_S)
    ui.err(f"applying the OS patch ({ACTION}) to {' and '.join(s.ident for s in sides)} at once, under load")
    rds = run.client("rds")
    started = time.time()
    for s in sides:
        rds.apply_pending_maintenance_action(ResourceIdentifier=s.arn, ApplyAction=ACTION, OptInType="immediate")
    deadline = time.monotonic() + APPLY_TIMEOUT_S
    for s in sides:
        wait_applied(run, s.arn, s.ident, ACTION, deadline)
    for s in sides:
        steady(s.load, len(s.load.acked), LOAD_AFTER_S)
        s.load.stop.set()
    for t in threads:
        t.join(10)
    return {s.label: _judge(s, started) for s in sides}


def _at(when: datetime, started: float) -> float:
    return round(when.timestamp() - started, 3)


def _judge(s: Side, started: float) -> dict:
    """What the load and the servers say of the patch on one instance."""
    load = s.load
    assert load is not None
    present = {r[0] for r in _one(s.connect, "SELECT n FROM awslab_drill_patch")}
    lost = sorted(n for n, _ in load.acked if n not in present)
    failures = [t for t in load.errors if t >= started]
    restarted = _one(s.connect, "SELECT pg_postmaster_start_time()")[0][0]
    events = []
    if s.label == "multi_az":
        # The primary now is the old standby: its server started when it was patched, before the failover.
        events.append({"server": "standby", "what": "back from its patch (clients unaffected)", "at_s": _at(restarted, started)})
        if failures:
            events.append({"server": "primary", "what": "failover: the patched standby takes over", "at_s": round(failures[0] - started, 3)})
        back = _standby_back(s)
        if back is not None:
            events.append({"server": "old primary", "what": "patched, back as the standby", "at_s": _at(back, started)})
    else:
        if failures:
            events.append({"server": "instance", "what": "down for the OS patch", "at_s": round(failures[0] - started, 3)})
        events.append({"server": "instance", "what": "back from its patch, serving again", "at_s": _at(restarted, started)})
    _one(s.connect, "DROP TABLE IF EXISTS awslab_drill_patch")
    return {"instance": s.ident, "writes_acknowledged": len(load.acked), "acknowledged_writes_lost": len(lost),
            "lost": lost[:20], "connections_dropped": len(failures), "downtime_s": round(load.downtime(started), 3),
            "server_restarted": restarted > s.started_before, "events": sorted(events, key=lambda e: e["at_s"])}


def _standby_back(s: Side) -> datetime | None:
    """When the synchronous standby (the patched old primary) began streaming from the new primary."""
    deadline = time.monotonic() + STANDBY_BACK_S
    while time.monotonic() < deadline:
        rows = _one(s.connect, "SELECT max(backend_start) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum')")
        if rows and rows[0][0] is not None:
            return rows[0][0]
        time.sleep(0.1)
    return None


def print_result(result: dict, output: str) -> None:
    if output == "json":
        ui.emit_json(result)
        return
    one, multi, ref, scaled = result["single_az"], result["multi_az"], result["aws_reference"], result["scaled"]
    how = result["profile"]["words"]
    if scaled:
        how += (f"; the patch's steps took AWS's durations x{scaled['time_scale']:g} (`instant` has none): the OS "
                f"reboot {scaled['os_reboot_s']:g} s, the failover {scaled['failover_s']:g} s")

    def timeline(side: dict) -> str:
        return "; ".join(f"{e['server']} {e['what']} at +{e['at_s']:.2f} s" for e in side["events"]) or "-"

    rows = [
        ["instance", one["instance"] + " (temporary)", multi["instance"]],
        ["downtime", f"{one['downtime_s']:.2f} s (AWS: {ref['single_az'][0]})", f"{multi['downtime_s']:.2f} s (AWS: {ref['multi_az'][0]})"],
        ["connections dropped", str(one["connections_dropped"]), str(multi["connections_dropped"])],
        ["acknowledged writes lost", f"{one['acknowledged_writes_lost']} of {one['writes_acknowledged']}",
         f"{multi['acknowledged_writes_lost']} of {multi['writes_acknowledged']} (AWS: {ref['multi_az_loss'][0]})"],
    ]
    ui.emit(f"OS patch ({result['action']}) applied at once to both, under a numbered write load ({how}).\n")
    ui.emit(ui.table(["", "SINGLE-AZ", "MULTI-AZ"], rows))
    ui.emit(f"\nSingle-AZ: {timeline(one)}.")
    ui.emit(f"Multi-AZ: {timeline(multi)}.")
    ratio = one["downtime_s"] / multi["downtime_s"] if multi["downtime_s"] else float("inf")
    ui.emit(f"\nThe Single-AZ instance was down {one['downtime_s']:.2f} s, {ratio:.1f}x the Multi-AZ instance's "
            f"{multi['downtime_s']:.2f} s: RDS patched the Multi-AZ standby while the primary served, so its clients "
            "lost only the failover, and no acknowledged write (synchronous commit).")
    ui.emit("\nAWS figures: " + "; ".join(f"{fig}: {src}" for fig, src in ref.values()))
