"""`awslab snapshot`, `snapshots`, `restore`, `failover`, `promote`, `maintenance`, `drill`: backups,
recovery and availability (awslab.commands.recovery, maintenance, drill).
"""

from __future__ import annotations

import sys

import click

from awslab.cli._common import begin, mutating, one_at_a_time, progress_for, target_options


@click.command()
@click.option("--copy-to-region", default=None, metavar="REGION", help="Also copy the DB snapshot to this region.")
@click.option("--kms-key", default=None, help="KMS key in the destination region for an encrypted copy (default: its RDS key).")
@mutating
@target_options
def snapshot(copy_to_region, kms_key, **opts):
    """Manual snapshots of the primary DB and the cache, named <stack>-<UTC time>, tagged with the stack.

    On a cluster stack the DB's is a DB cluster snapshot (not copied to another region yet).
    Waits until they are available and prints their ids, sizes and monthly cost.
    Example: awslab snapshot --copy-to-region us-west-2
    """
    from awslab.commands.lifecycle import stack_lab
    from awslab.commands.recovery import snapshot as do_snapshot

    ctx, output = begin(opts)
    with one_at_a_time(ctx, "snapshot", opts):
        code = do_snapshot(ctx, ctx.stack, stack_lab(ctx), copy_to=copy_to_region, kms_key=kms_key,
                           output=output, progress=progress_for(output))
    sys.exit(code)


@click.command()
@target_options
def snapshots(**opts):
    """The stack's manual, automated and final snapshots (DB and cache, every region it copied to)."""
    from awslab.commands.recovery import snapshots as do_snapshots

    ctx, output = begin(opts)
    sys.exit(do_snapshots(ctx, ctx.stack, output=output, progress=progress_for(output)))


@click.command()
@click.argument("snapshot_id", required=False)
@click.option("--as", "as_name", default=None, metavar="NAME",
              help="Identifier of the new instance, cluster or group (default <stack>-restored, <stack>-pitr).")
@click.option("--to-time", default=None, metavar="ISO-8601|latest",
              help="Restore the primary to this point in time from its automated backups instead of a snapshot.")
@click.option("--cache", "from_cache", is_flag=True, help="Restore the cache snapshot of that name (the DB's is the default).")
@mutating
@target_options
def restore(snapshot_id, as_name, to_time, from_cache, **opts):
    """A new DB instance (or cache replication group) from one of the stack's snapshots.

    It lands in the stack's subnet group and security group, encrypted and not public, and joins
    the stack. `awslab snapshot` names its DB and cache snapshots alike: add --cache for the cache's.
    On a cluster stack a new Multi-AZ DB cluster, from a DB cluster snapshot or the stack's
    cluster at a point in time, with the lab's class and storage.
    Examples: awslab restore week6-20261127-143000 --as restored;
    awslab restore --to-time 2026-11-27T14:30:00Z --as before-the-mistake
    """
    from awslab.commands.lifecycle import stack_lab
    from awslab.commands.recovery import restore as do_restore

    ctx, output = begin(opts)
    with one_at_a_time(ctx, "restore", opts):
        code = do_restore(ctx, ctx.stack, stack_lab(ctx), snapshot_id=snapshot_id, as_name=as_name,
                          to_time=to_time, output=output, progress=progress_for(output), from_cache=from_cache)
    sys.exit(code)


@click.command()
@click.option("--cache", "on_cache", is_flag=True, help="Fail over the cache's primary node instead of the database.")
@mutating
@target_options
def failover(on_cache, **opts):
    """Force a failover of the Multi-AZ primary (reboot with failover) and show the AZ before and after.

    Refused on a Single-AZ instance. Example: awslab failover; awslab failover --cache
    """
    from awslab.commands.recovery import failover as do_failover

    ctx, output = begin(opts)
    with one_at_a_time(ctx, "failover", opts):
        code = do_failover(ctx, ctx.stack, on_cache=on_cache, output=output, progress=progress_for(output))
    sys.exit(code)


@click.command()
@click.argument("replica", required=False)
@mutating
@target_options
def promote(replica, **opts):
    """Promote a read replica to a standalone, writable instance (PromoteReadReplica).

    It stops following the primary, keeps its endpoint and its data, gets automated backups of
    its own, and stays in the stack. REPLICA defaults to the stack's only replica.
    Example: awslab promote; awslab promote week6-db-replica-1
    """
    from awslab.commands.lifecycle import stack_lab
    from awslab.commands.recovery import promote as do_promote

    ctx, output = begin(opts)
    with one_at_a_time(ctx, "promote", opts):
        code = do_promote(ctx, ctx.stack, stack_lab(ctx), replica=replica, output=output,
                          progress=progress_for(output))
    sys.exit(code)


@click.command()
@click.option("--offer", is_flag=True, help="Local AWS: offer an OS update (system-update) on each DB instance.")
@click.option("--apply", "apply_now", is_flag=True,
              help="Apply the pending actions now and measure what each cost its clients.")
@mutating
@target_options
def maintenance(offer, apply_now, **opts):
    """The stack's pending RDS maintenance (DescribePendingMaintenanceActions), and applying it.

    --apply: ApplyPendingMaintenanceAction (immediate) on each, with how long new connections
    failed: a Multi-AZ instance patches its standby, fails over, then patches the old primary; a
    Single-AZ one restarts. Example: awslab maintenance --offer; awslab maintenance --apply
    """
    from awslab.commands.maintenance import maintenance as do_maintenance

    ctx, output = begin(opts)
    with one_at_a_time(ctx, "maintenance", opts):
        code = do_maintenance(ctx, ctx.stack, offer=offer, apply_now=apply_now, output=output)
    sys.exit(code)


@click.command()
@click.option("--report", is_flag=True, default=False,
              help="Also keep the figures (the write load's timeline, the lag) for the next `awslab report`.")
@click.option("--maintenance", "patching", is_flag=True,
              help="Instead: the same OS patch on a temporary Single-AZ instance and the Multi-AZ primary, side by side.")
@click.option("--compare", is_flag=True,
              help="Instead: the stack's Multi-AZ database against a temporary one of the other deployment "
                   "(instance / cluster) made beside it, side by side.")
@mutating
@target_options
def drill(report, patching, compare, **opts):
    """Measure availability against performance on the local AWS's real engines.

    A numbered write load runs through the primary while a Multi-AZ failover is forced (downtime,
    acknowledged writes lost, connections dropped); the read replica's lag is sampled under load
    and read-your-own-write misses counted; then a cache failover under load (keys lost). Prints
    the three side by side with AWS's figures. --maintenance: an OS patch (system-update) applied
    at once to the Multi-AZ primary and to a Single-AZ instance made beside it (and removed), each
    under a write load: downtime, connections dropped, acknowledged writes lost, which server
    restarted when. Local target only. --compare: the two kinds of Multi-AZ side by side, the
    stack's database and a temporary one of the other deployment (a Multi-AZ DB instance beside a
    cluster, a Multi-AZ DB cluster beside an instance) made in its network and removed at the end
    without a final snapshot: commit latency p50/p95, failover downtime, acknowledged writes lost,
    reads served during the drill, beside AWS's figures; on AWS it shows the temporary database's
    hourly cost and asks first (--yes to skip), and measures each failover through the API.
    Example: awslab drill -o json; awslab drill --maintenance; awslab drill --compare
    (`awslab drill --report`: `awslab report` then charts the failover drill's figures)
    """
    from awslab.commands.drill import drill as do_drill
    from awslab.commands.drill_compare import drill_compare
    from awslab.commands.drill_maintenance import drill_maintenance

    if compare and (patching or report):
        raise click.UsageError(f"--compare is a drill of its own; drop {'--maintenance' if patching else '--report'}")
    ctx, output = begin(opts)
    with one_at_a_time(ctx, "drill", opts):
        if compare:
            code = drill_compare(ctx, ctx.stack, output=output, progress=progress_for(output))
        elif patching:
            if report:
                raise click.UsageError("--report keeps the failover drill's figures; drop it with --maintenance")
            code = drill_maintenance(ctx, ctx.stack, output=output, progress=progress_for(output))
        else:
            code = do_drill(ctx, ctx.stack, output=output, progress=progress_for(output), report=report)
    sys.exit(code)
