"""`awslab drill --compare`: the two kinds of RDS Multi-AZ side by side, measured.

A Multi-AZ DB *instance* has one synchronous standby that serves nothing; a Multi-AZ DB *cluster*
has two readable standbys, a commit waits for either one (quorum), and its reader endpoint serves
reads. The drill measures both the same way: commit latency (p50/p95) on the writer, then a
numbered write load through the writer endpoint and a read load through the reader endpoint (the
instance has none: its standby serves nothing) while a failover is forced through the one executor
(as `awslab failover` does); every acknowledged write is checked afterwards, one by one.

The stack's own database is one side; the other is a temporary database of the other deployment
made in the stack's network (its subnet group and DB security group, tagged as the stack's so
`down` finds it if the drill is interrupted) and removed at the end without a final snapshot: it
holds only the drill's rows. The temporary side is the lab's database as the other deployment
would make it (the lab's class, storage and engine), with no backups or replicas.

So far a cluster stack is compared with a temporary Multi-AZ instance: an instance stack's subnet
group covers two AZs, and a cluster needs three (a third subnet and a subnet group of its own,
which the drill does not make yet); it is refused before anything is made.

On the local AWS every figure is measured on the real engines, through the stack's host. On AWS
the drill shows what the temporary database costs per hour and asks first (unless --yes); the
endpoints are private there and the load would have to run on the host through SSM, which the drill
does not do yet, so it measures only what the API shows: each failover from the call until the
database is available again.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any

from awslab import ui
from awslab.aws.parameters import db_family
from awslab.commands._common import confirm_real_account, local_profile, progress_run, raise_if_failed
from awslab.commands.drill import COMMITS, LOAD_AFTER_S, LOAD_BEFORE_S, Load, reconnecting, steady
from awslab.commands.lifecycle import stack_lab
from awslab.engine.context import Context
from awslab.engine.discovery import discover
from awslab.engine.executor import execute
from awslab.engine.plan import plan_down, plan_failover, plan_restore
from awslab.engine.run import Run
from awslab.errors import EXIT_OK, UsageError
from awslab.spec import pricing
from awslab.spec.model import Desired, Found
from awslab.verify import live, live_cluster

SCRATCH_SUFFIX = "-db-compare"
TABLE = "awslab_drill_compare"

# What AWS publishes, beside what the drill measures: (figure, source).
AWS_REFERENCE = {
    "instance_failover": ("60-120 s", "RDS User Guide, 'Failover process for Amazon RDS'"),
    "cluster_failover": ("typically under 35 s", "RDS User Guide, 'Multi-AZ DB cluster deployments'"),
    "cluster_commit": ("up to 2x faster than a Multi-AZ DB instance",
                       "RDS User Guide, 'Multi-AZ DB cluster deployments' (commits wait for one of two readers)"),
    "loss": ("0 for both", "a commit returns once a standby has it: the instance's one, either of the cluster's two"),
    "reads": ("instance: none (its standby serves nothing); cluster: its two readers, through the reader endpoint",
              "RDS User Guide, 'Multi-AZ deployments for high availability'"),
}


def scratch_name(stack: str) -> str:
    return f"{stack}{SCRATCH_SUFFIX}"


def drill_compare(ctx: Context, stack: str, *, output: str, progress: ui.Progress) -> int:
    run = progress_run(ctx, stack, "", progress)
    run.found.update(discover(run))
    cluster = run.found.get("db.cluster")
    if cluster is None:
        if "db.primary" in run.found:
            raise UsageError(f"stack {stack} is a Multi-AZ DB instance; drill --compare runs on a Multi-AZ DB cluster "
                             "stack for now (an instance stack's subnets cover two AZs, a cluster needs three)",
                             f"awslab up week6 --name {stack}-cluster --set database.deployment=cluster, then "
                             f"awslab drill --compare --name {stack}-cluster")
        raise UsageError(f"stack {stack} has no database to compare", "run `awslab up week6 --set database.deployment=cluster` first")
    raw = cluster.get("raw") or {}
    if (raw.get("Engine") or "postgres") != "postgres":
        raise UsageError(f"drill --compare measures PostgreSQL for now; {cluster.id} runs {raw.get('Engine')}",
                         "--set database.engine=postgres for this command")
    missing = [k for k in ("db.subnet-group", "sg.db", "host.instance") if k not in run.found]
    if missing:
        raise UsageError(f"stack {stack} has no {', '.join(missing)} to place the temporary instance in",
                         "run `awslab up week6 --set database.deployment=cluster` first")
    lab = stack_lab(ctx)
    # The lab's database as deployment=instance makes it: Multi-AZ, the lab's class; nothing to keep.
    database = replace(lab.database, deployment="instance", multi_az=True, read_replicas=0, backup_retention_days=0,
                       deletion_protection=False, iops=0,
                       storage_type=lab.database.storage_type if lab.database.storage_type in ("gp2", "gp3") else "gp3")
    name = scratch_name(stack)
    if ctx.is_local:
        mapping = live.endpoint_map(run, live.host_of(run.found))
        writer_ep, _ = live_cluster.endpoints(raw)
        live.require_engine(live.resolve(mapping, writer_ep["Address"], writer_ep["Port"]), "the cluster's writer endpoint")
    else:
        cost = pricing.database_lines(database)
        hourly, priced = pricing.total_hourly(cost)
        confirm_real_account(ctx, f"make {name} for the drill and remove it", [
            f"will create: RDS instance {name} ({database.engine} {database.instance_class}, Multi-AZ, "
            f"{database.allocated_storage_gib} GiB {database.storage_type}) in stack {stack}'s VPC, not public",
            f"extra cost while it exists: {pricing.format_money(hourly)}/hour" + ("" if priced else " and more (a size "
                                                                                    "not in awslab's price table)"),
            "it is deleted at the end without a final snapshot (it holds only the drill's rows)"])
    key = f"db.drill.{name}"
    try:
        scratch = _make_instance(run, stack, key, name, database)
        result = _measure(run, cluster, scratch)
    finally:
        _remove(ctx, stack, progress, key, name)
    result.update(stack=stack, temporary={"deployment": "instance", "id": name, "removed": True,
                                          "final_snapshot": False},
                  profile=local_profile(ctx) if ctx.is_local else None, aws_reference=AWS_REFERENCE)
    print_result(result, output)
    return EXIT_OK


def _make_instance(run: Run, stack: str, key: str, name: str, database) -> Found:
    """The temporary Multi-AZ instance, in the cluster's subnet group and DB security group. It takes
    RDS's default parameter group of its family (a cluster stack has no DB parameter group of its
    own; from PostgreSQL 15 the default requires TLS, as the lab's group does)."""
    ui.err(f"making {name}, a temporary Multi-AZ DB instance beside the cluster (removed at the end, "
           "without a final snapshot)")
    default = f"default.{db_family(database)}"
    run.found.setdefault("db.parameter-group", Found("db.parameter-group", "db-parameter-group", default, "available"))
    desired = Desired(key, "db-instance", name, (), {"database": database})
    raise_if_failed(execute(plan_restore(stack, desired, run.found), run), "drill --compare", run)
    return run.found[key]


def _remove(ctx: Context, stack: str, progress: ui.Progress, key: str, name: str) -> None:
    """Delete the temporary instance (no final snapshot: it holds only the drill's rows), on a run
    of its own: an interrupted run's steps are cancelled."""
    ui.err(f"removing {name} (no final snapshot: it held only the drill's rows)")
    cleanup = progress_run(ctx, stack, "", progress, skip_final_snapshot=True)
    found = {key: Found(key, "db-instance", name, "unknown")}
    raise_if_failed(execute(plan_down(stack, found), cleanup), "drill --compare cleanup", cleanup)


def _measure(run: Run, cluster: Found, scratch: Found) -> dict:
    if not run.ctx.is_local:
        return {side: {"failover_api_s": _failover(run, f)} for side, f in (("cluster", cluster), ("instance", scratch))}
    mapping = live.endpoint_map(run, live.host_of(run.found))   # again: the new instance's listener
    sides = {}
    for side, found in (("instance", scratch), ("cluster", cluster)):
        raw = found.get("raw") or {}
        if side == "cluster":
            writer_ep, reader_ep = live_cluster.endpoints(raw)
        else:
            writer_ep, reader_ep = raw.get("Endpoint") or {}, None
        writer = live.resolve(mapping, writer_ep.get("Address", ""), writer_ep.get("Port", 0))
        live.require_engine(writer, found.id)
        reader = live.resolve(mapping, reader_ep["Address"], reader_ep["Port"]) if reader_ep else None
        user, password = live.db_credentials(run, raw)
        database = raw.get("DBName") or raw.get("DatabaseName") or "postgres"
        sides[side] = _side(run, found, writer, reader, lambda a: live.pg_connect(a, user, password, database))
    return sides


def _failover(run: Run, found: Found) -> float:
    """The failover through the executor; how long the API took to say available again (s)."""
    t0 = time.monotonic()
    raise_if_failed(execute(plan_failover(run.stack, found), run), "failover", run)
    return round(time.monotonic() - t0, 3)


def _side(run: Run, found: Found, writer: live.Address, reader: live.Address | None, connect) -> dict[str, Any]:
    """Commit latency, then a failover under a write load (and a read load on the reader endpoint)."""
    connect_writer = lambda: connect(writer)  # noqa: E731
    conn = reconnecting(connect_writer)
    try:
        conn.run(f"DROP TABLE IF EXISTS {TABLE}")
        conn.run(f"CREATE TABLE {TABLE} (n int PRIMARY KEY, at timestamptz DEFAULT now())")
        times = []
        for n in range(COMMITS):   # each a commit of its own, acknowledged as the deployment acknowledges it
            t0 = time.perf_counter()
            conn.run(f"INSERT INTO {TABLE} (n) VALUES (:n)", n=-1 - n)
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        conn.close()
    times.sort()
    writes = Load(write=lambda c, n: c.run(f"INSERT INTO {TABLE} (n) VALUES (:n)", n=n), connect=connect_writer)
    reads = Load(write=lambda c, n: c.run(f"SELECT count(*) FROM {TABLE}"), connect=lambda: connect(reader)) if reader else None
    loads = [writes] + ([reads] if reads else [])
    threads = [threading.Thread(target=load.run, daemon=True) for load in loads]
    for t in threads:
        t.start()
    steady(writes, 0, LOAD_BEFORE_S)
    ui.err(f"forcing a failover of {found.id} under a write load" + (" and a read load on its reader endpoint" if reads else ""))
    started = time.time()
    api_s = _failover(run, found)
    steady(writes, len(writes.acked), LOAD_AFTER_S)
    for load in loads:
        load.stop.set()
    for t in threads:
        t.join(10)
    check = reconnecting(connect_writer)
    try:
        present = {r[0] for r in check.run(f"SELECT n FROM {TABLE} WHERE n > 0")}
        check.run(f"DROP TABLE IF EXISTS {TABLE}")
    finally:
        check.close()
    lost = sorted(n for n, _ in writes.acked if n not in present)
    downtime = writes.downtime(started)
    failures = [t for t in writes.errors if t >= started]
    back = next((t for _, t in writes.acked if failures and t > failures[0]), None)
    served = [t for _, t in reads.acked] if reads else []
    return {
        "id": found.id, "commit_ms_p50": round(times[len(times) // 2], 3),
        "commit_ms_p95": round(times[int(len(times) * 0.95)], 3), "commits": COMMITS,
        "writes_acknowledged": len(writes.acked), "acknowledged_writes_lost": len(lost), "lost": lost[:20],
        "downtime_s": round(downtime, 3), "failover_api_s": api_s,
        "reader_endpoint": reader.endpoint if reader else None, "reads_served": len(served),
        # Reads answered while no write was: the standbys served on through the writer's failover.
        "reads_during_outage": sum(1 for t in served if failures and failures[0] <= t <= (back or time.time())),
    }


def print_result(result: dict, output: str) -> None:
    if output == "json":
        ui.emit_json(result)
        return
    i, c, ref, tmp = result["instance"], result["cluster"], result["aws_reference"], result["temporary"]
    if "commit_ms_p50" not in c:   # on AWS: the API's figures only
        ui.emit(ui.table(["", "MULTI-AZ DB INSTANCE", "MULTI-AZ DB CLUSTER"], [
            ["database", f"{tmp['id']} (temporary)", "the stack's"],
            ["failover (API: call to available)", f"{i['failover_api_s']:.1f} s (AWS {ref['instance_failover'][0]})",
             f"{c['failover_api_s']:.1f} s (AWS {ref['cluster_failover'][0]})"]]))
        ui.emit("\nOn AWS the endpoints are private: commit latency, writes lost and reads served need a load run on "
                "the host through SSM, which drill does not do yet; `awslab drill --compare` on the local AWS measures them.")
    else:
        ratio = i["commit_ms_p50"] / c["commit_ms_p50"] if c["commit_ms_p50"] else float("inf")
        rows = [
            ["database", f"{i['id']} (temporary)", f"{c['id']} (the stack's)"],
            ["commit p50 / p95", f"{i['commit_ms_p50']:.2f} / {i['commit_ms_p95']:.2f} ms",
             f"{c['commit_ms_p50']:.2f} / {c['commit_ms_p95']:.2f} ms (AWS: {ref['cluster_commit'][0]})"],
            ["failover downtime", f"{i['downtime_s']:.2f} s (AWS {ref['instance_failover'][0]})",
             f"{c['downtime_s']:.2f} s (AWS {ref['cluster_failover'][0]})"],
            ["acknowledged writes lost", f"{i['acknowledged_writes_lost']} of {i['writes_acknowledged']} (AWS 0)",
             f"{c['acknowledged_writes_lost']} of {c['writes_acknowledged']} (AWS 0)"],
            ["reads served during the drill", "0 (its standby serves nothing)",
             f"{c['reads_served']} on the reader endpoint, {c['reads_during_outage']} while the writer was down"],
        ]
        ui.emit(ui.table(["", "MULTI-AZ DB INSTANCE", "MULTI-AZ DB CLUSTER"], rows))
        ui.emit(f"\nBoth kept every acknowledged write: a commit returned only once a standby had it (the instance's "
                f"one; either of the cluster's two). A cluster commit took {c['commit_ms_p50']:.2f} ms (p50) against "
                f"{i['commit_ms_p50']:.2f} ms for the instance (the instance's is {ratio:.1f}x the cluster's; AWS: up to 2x). The cluster's readers served "
                f"{c['reads_served']} reads through the reader endpoint during the drill; the instance's standby "
                "serves none. The local figures are faster than AWS's (no DNS change, no new host); the shape is the same.")
        ui.emit(f"Measured on {result['profile']['words']}; `awslab local start --latency realistic` puts AWS's "
                "cross-AZ round trip in every replication stream.")
    ui.emit(f"\n{tmp['id']}, the temporary Multi-AZ DB instance, was removed without a final snapshot: it held only "
            "the drill's rows.")
    ui.emit("AWS figures: " + "; ".join(f"{fig}: {src}" for fig, src in ref.values()))
