"""Backups and disaster-recovery practice: snapshot, snapshots, restore, failover, promote.

The commands' logic, as plain functions the CLI forwards to. Snapshots, copies and restores are
steps run by the one executor (kinds in aws/database.py and aws/cache.py), and so is a failover
(its one step planned by engine/plan.plan_failover). Everything made here carries the stack's
tags, so `down` sees it.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from awslab import ui
from awslab.aws import cache, database, db_cluster, db_snapshots, network
from awslab.commands._common import (
    confirm_real_account,
    local_profile,
    progress_run,
    raise_if_failed,
    snapshots_monthly,
    took,
)
from awslab.home import state
from awslab.engine.context import Context, check_region
from awslab.engine.discovery import discover
from awslab.engine.executor import execute
from awslab.spec.model import CREATE, Desired, Found
from awslab.engine.plan import plan_failover, plan_promote, plan_restore, plan_snapshot
from awslab.engine.run import Run
from awslab.errors import EXIT_OK, OperationError, OwnershipError, UsageError
from awslab.spec.lab import Lab
from awslab.spec.tags import TAG_COPY_REGIONS, owned_by

IDENTIFIER_RULE = "a letter first, then letters, digits or hyphens; no '--' and no trailing '-'"


def valid_identifier(text: str, max_len: int) -> bool:
    """AWS's rule for DB instance and snapshot identifiers (and cache snapshot names)."""
    return (0 < len(text) <= max_len and bool(re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", text))
            and "--" not in text and not text.endswith("-"))


def snapshot_name(stack: str, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return f"{stack}-{now:%Y%m%d-%H%M%S}"


def copy_regions(stack: str, found: dict[str, Found]) -> set[str]:
    """Where the stack's snapshots were copied to: its VPC's tag (any machine sees it) and this
    home's record of it (which outlives the VPC, for a stack already half removed)."""
    vpc = found.get("network.vpc")
    tagged = ((vpc.attrs.get("tags") or {}).get(TAG_COPY_REGIONS, "") if vpc else "").split()
    return set(tagged) | set((state.load_stack_record(stack) or {}).get("copy_regions", []))


def find_snapshots(run: Run, found: dict[str, Found]) -> list[Found]:
    """The stack's DB and cache snapshots in its region and every region it copied to."""
    instances = [f.id for f in found.values() if f.kind in ("db-instance", "db-replica")]
    regions = [run.ctx.region] + sorted(copy_regions(run.stack, found) - {run.ctx.region})
    return (db_snapshots.discover_snapshots(run, regions, instances) + cache.discover_snapshots(run)
            + db_cluster.discover_snapshots(run))


def _snapshot_rows(snaps: list[Found]) -> list[list[str]]:
    rows = []
    for s in sorted(snaps, key=lambda s: (s.get("region"), s.kind, s.id)):
        kind = "final" if "-final-" in s.id else (s.get("type") or "manual")
        size = s.get("size_gib")
        rows.append([s.kind.split("-")[0], s.id, kind, s.get("region"), ui.age(s.created), f"{size:g} GiB" if size else "-", s.state])
    return rows


def print_snapshots(snaps: list[Found], output: str, stack: str, region: str) -> None:
    if output == "json":
        ui.emit_json([{"service": s.kind.split("-")[0], "id": s.id, "type": "final" if "-final-" in s.id else s.get("type"),
                       "region": s.get("region"), "size_gib": s.get("size_gib"), "status": s.state,
                       "created": s.created.isoformat() if s.created else None} for s in snaps])
        return
    if not snaps:
        ui.emit(f"stack {stack}: no snapshots")
        return
    ui.emit(ui.table(["SERVICE", "SNAPSHOT", "TYPE", "REGION", "AGE", "SIZE", "STATUS"], _snapshot_rows(snaps)))
    paid = [s for s in snaps if s.get("type") != "automated"]
    ui.emit(f"\n{len(snaps)} snapshots; the manual and final ones cost "
            f"{snapshots_monthly(paid, region)} until deleted (automated backups up to the DB's size are free)")


def snapshot(ctx: Context, stack: str, lab: Lab, *, copy_to: str | None, kms_key: str | None, output: str,
             progress: ui.Progress) -> int:
    """Manual snapshots of the primary DB (or the stack's Multi-AZ DB cluster) and the cache,
    optionally copied to another region."""
    if copy_to is not None and copy_to == ctx.region:
        raise UsageError(f"--copy-to-region {copy_to} is the stack's own region", "name another region, e.g. us-west-2")
    if copy_to is not None:
        check_region(copy_to, "--copy-to-region")
    run = progress_run(ctx, stack, lab.name, progress)
    run.found.update(discover(run))
    primary, group = run.found.get("db.primary") or run.found.get("db.cluster"), run.found.get("cache.group")
    if primary is None and group is None:
        raise UsageError(f"stack {stack} has no database or cache to snapshot", f"run `awslab up {lab.name}` first")
    if copy_to is not None and primary is not None and primary.kind == "db-cluster":
        raise UsageError("--copy-to-region: awslab does not copy a DB cluster snapshot to another region yet",
                         "snapshot without it, then: aws rds copy-db-cluster-snapshot (run in the destination region)")
    name = snapshot_name(stack)
    if not valid_identifier(name, 255):
        raise UsageError(f"snapshot name '{name}' breaks AWS's identifier rules", IDENTIFIER_RULE)
    plan = plan_snapshot(stack, name, ctx.region, primary, group, copy_to=copy_to, kms_key=kms_key)
    steps = plan.steps
    confirm_real_account(ctx, f"take {len(steps)} snapshots of stack {stack}",
                          [f"will create: {s.kind} {s.desired.name}" + (f" in {s.desired.spec['region']}" if s.kind.endswith("copy") else "")
                           for s in steps])
    if copy_to:   # recorded before the copy exists: a copy is never made that `down` cannot find
        regions = sorted(copy_regions(stack, run.found) | {copy_to})
        record = state.load_stack_record(stack) or {"lab": lab.name}
        state.save_stack_record(stack, {**record, "copy_regions": regions})
        vpc = run.found.get("network.vpc")
        if vpc is not None:
            network.tag_vpc(run, vpc.id, {TAG_COPY_REGIONS: " ".join(regions)})
            vpc.attrs.setdefault("tags", {})[TAG_COPY_REGIONS] = " ".join(regions)
    outcome = execute(plan, run)
    raise_if_failed(outcome, "snapshot", run)
    made = [run.found[s.key] for s in steps if s.key in run.found]
    print_snapshots(made, output, stack, ctx.region)
    return EXIT_OK


def snapshots(ctx: Context, stack: str, *, output: str, progress: ui.Progress) -> int:
    """Manual, automated and final snapshots of the stack, in every region it copied to."""
    run = progress_run(ctx, stack, "", progress)
    print_snapshots(find_snapshots(run, discover(run)), output, stack, ctx.region)
    return EXIT_OK


def parse_time(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--to-time '{text}' is not an ISO-8601 time", "e.g. 2026-11-27T14:30:00Z, or latest") from None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def restore(ctx: Context, stack: str, lab: Lab, *, snapshot_id: str | None, as_name: str | None, to_time: str | None,
            output: str, progress: ui.Progress, from_cache: bool = False) -> int:
    """A new DB instance (or replication group) from a snapshot, or the primary at a point in time;
    on a cluster stack a new Multi-AZ DB cluster from a DB cluster snapshot, or the stack's cluster
    at a point in time."""
    if (snapshot_id is None) == (to_time is None):
        raise UsageError("give a SNAPSHOT_ID or --to-time, not both and not neither",
                         "awslab restore week6-20261127-143000 --as restored, or awslab restore --to-time latest")
    if as_name is not None and not valid_identifier(as_name, 40):
        raise UsageError(f"--as '{as_name}' is not a valid identifier", f"1-40 characters: {IDENTIFIER_RULE}")
    if to_time is not None and to_time != "latest":
        when = parse_time(to_time)
        if when > datetime.now(timezone.utc):
            raise UsageError(f"--to-time {when:%Y-%m-%dT%H:%M:%SZ} is in the future", "give a past time, or latest")
    run = progress_run(ctx, stack, lab.name, progress)
    run.found.update(discover(run))
    missing = [k for k in ("db.subnet-group", "sg.db", "cache.subnet-group", "sg.cache") if k not in run.found]
    if missing:
        raise UsageError(f"stack {stack} has no {', '.join(missing)} to restore into", f"run `awslab up {lab.name}` first")
    if to_time is not None:
        primary = run.found.get("db.primary") or run.found.get("db.cluster")
        if primary is None:
            raise UsageError(f"stack {stack} has no primary DB to restore to a point in time")
        on_cluster = primary.kind == "db-cluster"   # RestoreDBClusterToPointInTime: a new cluster
        earliest, latest = (db_cluster if on_cluster else database).restore_window(run, primary.id)
        spec_time = None
        if to_time != "latest":
            when = parse_time(to_time)
            if not earliest <= when <= latest:
                raise UsageError(f"--to-time {when:%Y-%m-%dT%H:%M:%SZ} is outside the restorable window "
                                 f"{earliest:%Y-%m-%dT%H:%M:%SZ} .. {latest:%Y-%m-%dT%H:%M:%SZ}", "pick a time inside it")
            spec_time = when
        name = as_name or f"{stack}-pitr"
        origin = f"{primary.id}@{'latest' if spec_time is None else f'{spec_time:%Y-%m-%dT%H:%M:%SZ}'}"
        key, kind, spec = f"db.restored.{name}", "db-cluster-restore" if on_cluster else "db-restore", {
            "source": primary.id, "time": spec_time, "database": lab.database, "origin": origin}
    else:
        # `awslab snapshot` names the DB and the cache snapshot alike: the DB's unless --cache.
        db_snap = None if from_cache else db_snapshots.find_snapshot(run, snapshot_id)
        cluster_snap = None if from_cache or db_snap else db_cluster.find_snapshot(run, snapshot_id)
        cache_snap = None if db_snap or cluster_snap else cache.find_snapshot(run, snapshot_id)
        if db_snap is None and cluster_snap is None and cache_snap is None:
            raise UsageError(f"unknown snapshot '{snapshot_id}' in {ctx.region}", "list them with `awslab snapshots`")
        name = as_name or f"{stack}-restored"
        if db_snap is not None:
            if not owned_by(db_snapshots.snapshot_tags(run, db_snap), stack):
                raise OwnershipError(f"DB snapshot {snapshot_id} is not stack {stack}'s", "awslab restores only its own snapshots")
            key, kind, spec = f"db.restored.{name}", "db-restore", {"snapshot": snapshot_id, "database": lab.database,
                                                                     "origin": snapshot_id}
        elif cluster_snap is not None:
            if not owned_by(db_cluster.snapshot_tags(run, cluster_snap), stack):
                raise OwnershipError(f"DB cluster snapshot {snapshot_id} is not stack {stack}'s",
                                     "awslab restores only its own snapshots")
            if "db.cluster-parameter-group" not in run.found:
                raise UsageError(f"stack {stack} has no DB cluster parameter group for a cluster restored from {snapshot_id}",
                                 f"a cluster stack has one: awslab up {lab.name} --set database.deployment=cluster")
            key, kind, spec = f"db.restored.{name}", "db-cluster-restore", {"snapshot": snapshot_id, "database": lab.database,
                                                                             "origin": snapshot_id}
        else:
            if not owned_by(cache.tags_of(run, cache_snap["ARN"]), stack):
                raise OwnershipError(f"cache snapshot {snapshot_id} is not stack {stack}'s", "awslab restores only its own snapshots")
            key, kind, spec = f"cache.restored.{name}", "cache-restore", {"snapshot": snapshot_id, "cache": lab.cache,
                                                                          "azs": lab.network.availability_zones,
                                                                          "origin": snapshot_id}
    existing = next((f for f in run.found.values()
                     if f.id == name and f.kind in ("db-instance", "db-replica", "db-cluster", "replication-group")), None)
    if existing is not None and existing.key != key:
        raise UsageError(f"{name} is already the stack's {existing.key}", "choose another name with --as")
    if existing is not None and existing.get("restored_from") not in (None, spec["origin"]):
        # A rerun of the same restore adopts it; another source under that name is AWS's refusal.
        what = "db-cluster" if existing.kind == "db-cluster" else "db-instance"
        raise OperationError(f"{'DBClusterAlreadyExistsFault' if what == 'db-cluster' else 'DBInstanceAlreadyExists'}: "
                             f"{name} already exists, restored from {existing.get('restored_from')}, not from {spec['origin']}",
                             f"choose another name with --as, or delete that one alone first: aws rds "
                             f"delete-{what} --{what}-identifier {name} --skip-final-snapshot "
                             f"(`awslab down` would remove the whole stack)")
    plan = plan_restore(stack, Desired(key, kind, name, (), spec), run.found)
    step = plan.steps[0]
    if step.action == CREATE:
        confirm_real_account(ctx, f"restore {snapshot_id or 'the primary at ' + to_time} as {name}",
                              [f"will create: {kind.split('-')[0]} {name} in stack {stack}'s VPC (not public, encrypted)"])
    outcome = execute(plan, run)
    raise_if_failed(outcome, "restore", run)
    made = run.found[key]
    endpoint = f"{made.get('endpoint')}:{made.get('port')}" if made.get("endpoint") else "-"
    if output == "json":
        ui.emit_json({"stack": stack, "key": key, "id": made.id, "state": made.state, "endpoint": endpoint,
                      "created": step.action == CREATE, "seconds": round(outcome.elapsed_s, 1),
                      **({"latency_profile": {k: v for k, v in local_profile(ctx).items() if k in ("profile", "time_scale", "explicit")}}
                         if ctx.is_local else {})})
    else:
        transition = {"db-restore": "rds.restore", "db-cluster-restore": "rds.cluster.create"}.get(kind, "elasticache.create")
        how = (f"restored in {took(ctx, outcome.elapsed_s, transition)}"
               if step.action == CREATE else "already there")
        ui.emit(f"{made.id} is {made.state} ({how}); endpoint {endpoint}")
        ui.emit(f"it is part of stack {stack}: `awslab verify` checks it, `awslab down` removes it")
    return EXIT_OK


def failover(ctx: Context, stack: str, *, on_cache: bool, output: str, progress: ui.Progress) -> int:
    """A forced failover of the Multi-AZ primary (or of the cache's primary node)."""
    run = progress_run(ctx, stack, "", progress)
    found = discover(run)
    cluster = not on_cache and "db.cluster" in found   # a Multi-AZ DB cluster: FailoverDBCluster
    key = "cache.group" if on_cache else "db.cluster" if cluster else "db.primary"
    target = found.get(key)
    if target is None:
        raise UsageError(f"stack {stack} has no {key} to fail over", "run `awslab up` first")
    (cache.check_failover if on_cache else db_cluster.check_failover if cluster else database.check_failover)(run, target.id)
    confirm_real_account(ctx, f"fail over {target.id}", [f"will fail over {target.id} (a brief outage)"])
    no_server = None if on_cache or cluster or not ctx.is_local else _no_db_server(run, target)
    outcome = execute(plan_failover(stack, target), run)
    raise_if_failed(outcome, "failover", run)
    done = run.found[key].get("failover")
    if on_cache:
        result = {"resource": target.id, "primary_before": done["primary_before"], "primary_after": done["primary_after"],
                  "seconds": round(done["seconds"], 1)}
        text = f"{target.id}: primary node {done['primary_before']} -> {done['primary_after']}; available again after {done['seconds']:.1f}s"
    elif cluster:
        result = {"resource": target.id, "writer_before": done["writer_before"], "writer_after": done["writer_after"],
                  "az_before": done["az_before"], "az_after": done["az_after"], "seconds_unavailable": round(done["seconds"], 1)}
        text = (f"{target.id}: writer {done['writer_before']} ({done['az_before']}) -> {done['writer_after']} "
                f"({done['az_after']}); not available for {done['seconds']:.1f}s by polling")
    else:
        result = {"resource": target.id, "az_before": done["az_before"], "az_after": done["az_after"],
                  "standby_az": done["standby_az"], "seconds_unavailable": round(done["seconds"], 1)}
        text = (f"{target.id}: primary AZ {result['az_before']} -> {result['az_after']} "
                f"(standby now in {result['standby_az']}); not available for {done['seconds']:.1f}s by polling")
        if no_server:   # no outage to measure: nothing ran behind the endpoint
            del result["seconds_unavailable"]
            result["no_server"] = no_server
            text = (f"{target.id}: primary AZ {result['az_before']} -> {result['az_after']} in the control plane; "
                    f"there is no server to fail over ({no_server}), so no outage to measure")
    if ctx.is_local:   # a duration says what produced it, beside what AWS takes
        prof = local_profile(ctx)
        result["latency_profile"] = {k: prof[k] for k in ("profile", "time_scale", "explicit")}
        text += (f" (on {prof['words']}; AWS takes "
                 + ("about a minute (TestFailover)" if on_cache else "typically under 35 s for a Multi-AZ DB cluster "
                    "(RDS User Guide)" if cluster else "60-120 s (RDS User Guide)") + ")")
    if output == "json":
        ui.emit_json(result)
    else:
        ui.emit(text)
    return EXIT_OK




def promote(ctx: Context, stack: str, lab: Lab, *, replica: str | None, output: str, progress: ui.Progress) -> int:
    """PromoteReadReplica: a read replica of the stack becomes a standalone, writable instance with
    its own automated backups; it keeps its endpoint and stays in the stack (``down`` removes it,
    with a final snapshot)."""
    run = progress_run(ctx, stack, lab.name, progress)
    found = discover(run)
    replicas = {f.id: f for k, f in found.items() if k.startswith("db.replica.")}
    if replica is None and len(replicas) == 1:
        replica = next(iter(replicas))
    target = replicas.get(replica or "")
    if target is None:
        others = [f.id for f in found.values() if f.kind == "db-instance"]
        if replica in others:
            raise UsageError(f"{replica} is not a read replica: there is nothing to promote",
                             f"promote one of the stack's replicas: {', '.join(sorted(replicas)) or 'none'}")
        raise UsageError(f"stack {stack} has no read replica {replica or ''}".rstrip(),
                         f"name one of: {', '.join(sorted(replicas))}" if replicas else
                         f"the lab makes one: awslab up {lab.name} --set database.read_replicas=1")
    confirm_real_account(ctx, f"promote {target.id}", [f"will make {target.id} a standalone instance: it stops "
                                                        "following the primary, takes writes and keeps its own backups"])
    outcome = execute(plan_promote(stack, target, lab.database.backup_retention_days), run)
    raise_if_failed(outcome, "promote", run)
    made = run.found[f"db.promoted.{target.id}"]
    result = {"stack": stack, "id": made.id, "state": made.state, "promoted_from": target.get("source"),
              "endpoint": f"{made.get('endpoint')}:{made.get('port')}"}
    if output == "json":
        ui.emit_json(result)
    else:
        ui.emit(f"{made.id} is a standalone instance now ({made.state}, in {took(ctx, outcome.elapsed_s, 'rds.promote')}); "
                "it no longer follows "
                f"{result['promoted_from'] or 'its primary'}, takes writes, and keeps its endpoint {result['endpoint']}")
        ui.emit(f"it stays in stack {stack}: `awslab down` removes it with a final snapshot; "
                f"`awslab up` makes a new replica only once the name {made.id} is free")
    return EXIT_OK


def _no_db_server(run, target) -> str | None:
    """Why no real server runs behind a DB primary on the local AWS (None: one does)."""
    from awslab.verify import live

    ep = (target.get("raw") or {}).get("Endpoint") or {}
    addr = live.resolve(live.endpoint_map(run), ep.get("Address", ""), ep.get("Port", 0))
    if addr.status != "unavailable":
        return None
    return addr.reason or "no engine behind its endpoint"
