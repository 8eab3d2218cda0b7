"""`awslab drill --compare`: the two kinds of RDS Multi-AZ side by side, measured.

A Multi-AZ DB *instance* has one synchronous standby that serves nothing; a Multi-AZ DB *cluster*
has two readable standbys, a commit waits for either one (quorum), and its reader endpoint serves
reads. The drill measures both the same way: commit latency (p50/p95) on the writer, then a
numbered write load through the writer endpoint and a read load through the reader endpoint (the
instance has none: its standby serves nothing) while a failover is forced through the one executor
(as `awslab failover` does); every acknowledged write is checked afterwards, one by one.

The stack's own database is one side; the other is a temporary database of the other deployment
made in the stack's network (its VPC and DB security group), tagged as the stack's so `down` finds
it if the drill is interrupted, and removed at the end without a final snapshot: it holds only the
drill's rows. It is the lab's database as the other deployment would make it (the lab's engine,
class and storage), with no replicas. On a cluster stack that is a Multi-AZ DB instance in the
stack's subnet group. On an instance stack it is a Multi-AZ DB cluster, which needs three AZs where
the stack's subnet group covers two: the drill also makes the third private subnet a cluster stack
has (``private-c``) and a subnet group of its own over the three, and removes them after it.

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
from awslab.spec.deployment import CLUSTER_STORAGE
from awslab.spec.model import Desired, Found
from awslab.spec.topology import CLUSTER_SUBNET, PRIVATE_SUBNETS, names
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
    own = run.found.get("db.cluster") or run.found.get("db.primary")
    if own is None:
        raise UsageError(f"stack {stack} has no database to compare", "run `awslab up week6` first")
    on_cluster = own.kind == "db-cluster"
    raw = own.get("raw") or {}
    if (raw.get("Engine") or "postgres") != "postgres":
        raise UsageError(f"drill --compare measures PostgreSQL for now; {own.id} runs {raw.get('Engine')}",
                         "--set database.engine=postgres for this command")
    if not on_cluster and not own.get("multi_az"):
        raise UsageError(f"{own.id} is Single-AZ: drill --compare measures the two kinds of Multi-AZ",
                         "awslab up week6 --set database.multi_az=true")
    needed = ("db.subnet-group", "sg.db", "host.instance") + (() if on_cluster else PRIVATE_SUBNETS + ("network.vpc",))
    missing = [k for k in needed if k not in run.found]
    if missing:
        raise UsageError(f"stack {stack} has no {', '.join(missing)} to place the temporary database in",
                         "run `awslab up week6` first")
    lab = stack_lab(ctx)
    if not on_cluster and lab.network.availability_zones:
        raise UsageError(f"the lab names two AZs ({', '.join(lab.network.availability_zones)}); the temporary Multi-AZ "
                         "DB cluster needs a third", "drop network.availability_zones: the region's first three are taken")
    other = "instance" if on_cluster else "cluster"
    database = other_database(lab.database, other)
    name = scratch_name(stack)
    if ctx.is_local:
        mapping = live.endpoint_map(run, live.host_of(run.found))
        ep = live_cluster.endpoints(raw)[0] if on_cluster else raw.get("Endpoint") or {}
        live.require_engine(live.resolve(mapping, ep.get("Address", ""), ep.get("Port", 0)), f"{own.id}'s writer")
    else:
        costs = pricing.database_lines(database, ctx.region)
        klass = database.instance_class if other == "instance" else database.cluster_instance_class
        confirm_real_account(ctx, f"make {name} for the drill and remove it", [
            f"will create: RDS Multi-AZ DB {other} {name} ({database.engine} {klass}, {database.allocated_storage_gib} "
            f"GiB {database.storage_type}) in stack {stack}'s VPC, not public"
            + ("" if on_cluster else f", with a third private subnet ({lab.network.cluster_subnet_cidr}) and a DB "
               "subnet group over three AZs"),
            f"extra cost while it exists: {pricing.say(costs, ctx.region)}",
            "it is deleted at the end without a final snapshot (it holds only the drill's rows)"])
    made: list[Found] = []   # what the drill made, in order: removed in reverse
    try:
        if on_cluster:
            scratch = _make_instance(run, stack, name, database, made)
            result = _measure(run, cluster=own, instance=scratch)
        else:
            scratch = _make_cluster(run, stack, name, database, lab.network, made)
            result = _measure(run, cluster=scratch, instance=own)
    finally:
        _remove(ctx, stack, progress, run, made)
    result.update(stack=stack, temporary={"deployment": other, "id": name, "removed": True, "final_snapshot": False,
                                          "also_made": [f.id for f in made if f.key != f"db.drill.{name}"]},
                  profile=local_profile(ctx) if ctx.is_local else None, aws_reference=AWS_REFERENCE)
    print_result(result, output)
    return EXIT_OK


def other_database(d, deployment: str):
    """The lab's database (``lab.database``) as ``deployment`` would make it, for a drill: Multi-AZ,
    no replicas, nothing protected; a cluster keeps a day of backups (RDS takes no less for one) and
    gp3 storage (an instance lab's io1 would need Iops a cluster's rules check)."""
    if deployment == "instance":
        return replace(d, deployment="instance", multi_az=True, read_replicas=0, backup_retention_days=0,
                       deletion_protection=False, iops=0, storage_type=d.storage_type if d.storage_type in ("gp2", "gp3") else "gp3")
    return replace(d, deployment="cluster", multi_az=True, read_replicas=0, backup_retention_days=1, deletion_protection=False,
                   iops=0, storage_type="gp3", allocated_storage_gib=max(d.allocated_storage_gib, CLUSTER_STORAGE["gp3"][0]))


def _made(run: Run, stack: str, desired: Desired, made: list[Found]) -> Found:
    """``desired`` made through the one executor; listed for removal before it is asked for (an
    interrupted create is removed too: "not found" on delete is done)."""
    made.append(Found(desired.key, desired.kind, desired.name, "unknown"))
    raise_if_failed(execute(plan_restore(stack, desired, run.found), run), "drill --compare", run)
    made[-1] = run.found[desired.key]
    return made[-1]


def _make_instance(run: Run, stack: str, name: str, database, made: list[Found]) -> Found:
    """The temporary Multi-AZ instance, in the cluster's subnet group and DB security group. It takes
    RDS's default parameter group of its family (a cluster stack has no DB parameter group of its
    own; from PostgreSQL 15 the default requires TLS, as the lab's group does)."""
    ui.err(f"making {name}, a temporary Multi-AZ DB instance beside the cluster (removed at the end, "
           "without a final snapshot)")
    return _made(run, stack, Desired(f"db.drill.{name}", "db-instance", name, (), {
        "database": database, "parameter_group": f"default.{db_family(database)}"}), made)


def _make_cluster(run: Run, stack: str, name: str, database, network, made: list[Found]) -> Found:
    """The temporary Multi-AZ DB cluster: the third private subnet a cluster stack has, a DB subnet
    group over the three private subnets, then the cluster in it and the stack's DB security group,
    with RDS's default DB cluster parameter group of its family."""
    ui.err(f"making {name}, a temporary Multi-AZ DB cluster beside the instance, with a third private subnet "
           "and a subnet group over three AZs (all removed at the end, without a final snapshot)")
    names_ = names(stack, run.ctx.region)
    if CLUSTER_SUBNET not in run.found:
        _made(run, stack, Desired(CLUSTER_SUBNET, "subnet", names_[CLUSTER_SUBNET], (), {
            "cidr": network.cluster_subnet_cidr, "az_index": 2, "public": False, "azs": ()}), made)
    group = f"db.drill.{name}.subnet-group"
    _made(run, stack, Desired(group, "db-subnet-group", f"{name}-subnets", (), {"subnets": PRIVATE_SUBNETS + (CLUSTER_SUBNET,)}),
          made)
    return _made(run, stack, Desired(f"db.drill.{name}", "db-cluster", name, (), {
        "database": database, "subnet_group": group, "parameter_group": f"default.{db_family(database)}"}), made)


def _remove(ctx: Context, stack: str, progress: ui.Progress, run: Run, made: list[Found]) -> None:
    """Delete what the drill made, newest first (the database before its subnet group before the
    subnet), with no final snapshot: it holds only the drill's rows. On runs of their own: an
    interrupted run's steps are cancelled."""
    for f in reversed(made):
        if f.kind == "subnet" and not f.id.startswith("subnet-"):
            continue   # never made (no id): `down` finds one made meanwhile by its tags
        ui.err(f"removing {f.id}" + (" (no final snapshot: it held only the drill's rows)"
                                     if f.kind in ("db-instance", "db-cluster") else ""))
        cleanup = progress_run(ctx, stack, "", progress, skip_final_snapshot=True)
        found = {f.key: Found(f.key, f.kind, f.id, "unknown")}
        raise_if_failed(execute(plan_down(stack, found), cleanup), "drill --compare cleanup", cleanup)


def _measure(run: Run, *, cluster: Found, instance: Found) -> dict:
    if not run.ctx.is_local:
        return {side: {"id": f.id, "failover_api_s": _failover(run, f)} for side, f in (("cluster", cluster), ("instance", instance))}
    mapping = live.endpoint_map(run, live.host_of(run.found))   # again: the new database's listeners
    sides = {}
    for side, found in (("instance", instance), ("cluster", cluster)):
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
        sides[side] = _side(run, found, writer, reader, lambda a, u=user, p=password, d=database: live.pg_connect(a, u, p, d))
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
    whose = {side: f"{result[side]['id']} (" + ("temporary" if tmp["deployment"] == side else "the stack's") + ")"
             for side in ("instance", "cluster")}
    if "commit_ms_p50" not in c:   # on AWS: the API's figures only
        ui.emit(ui.table(["", "MULTI-AZ DB INSTANCE", "MULTI-AZ DB CLUSTER"], [
            ["database", whose["instance"], whose["cluster"]],
            ["failover (API: call to available)", f"{i['failover_api_s']:.1f} s (AWS {ref['instance_failover'][0]})",
             f"{c['failover_api_s']:.1f} s (AWS {ref['cluster_failover'][0]})"]]))
        ui.emit("\nOn AWS the endpoints are private: commit latency, writes lost and reads served need a load run on "
                "the host through SSM, which drill does not do yet; `awslab drill --compare` on the local AWS measures them.")
    else:
        ratio = i["commit_ms_p50"] / c["commit_ms_p50"] if c["commit_ms_p50"] else float("inf")
        rows = [
            ["database", whose["instance"], whose["cluster"]],
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
    also = f" (with {', '.join(tmp['also_made'])}, made for it)" if tmp["also_made"] else ""
    ui.emit(f"\n{tmp['id']}, the temporary Multi-AZ DB {tmp['deployment']}{also}, was removed without a final "
            "snapshot: it held only the drill's rows.")
    ui.emit("AWS figures: " + "; ".join(f"{fig}: {src}" for fig, src in ref.values()))
