"""`awslab stacks` and `sweep`: every stack of the account, and removing the expired ones
(awslab.commands.stacks).
"""

from __future__ import annotations

import sys

import click

from awslab.cli._common import output_format, progress_for, setup_debug, stack_context, target_options


@click.command("stacks")
@click.option("--all-regions", is_flag=True, help="Every region of the account, not only the current one.")
@target_options
def stacks_cmd(all_regions, **opts):
    """Every awslab stack in the region: lab, owner, created, expiry, resources, state, what it costs
    now (priced from what exists) and the snapshots it keeps; and snapshots of stacks that are gone.

    Example: awslab stacks --all-regions -o json
    """
    from awslab.commands import stacks as st

    setup_debug(opts["debug"])
    output = output_format(opts["output"])
    ctx = stack_context(opts, need_stack=False)
    regions = st.regions_of(ctx, all_regions)
    rows, orphans = st.list_stacks(ctx, regions)
    st.print_stacks(rows, orphans, output, regions)


@click.command()
@click.option("--dry-run", is_flag=True, help="List what would be removed; change nothing.")
@click.option("--snapshots-older-than", default=None, metavar="DURATION",
              help="Also delete awslab's manual and final snapshots older than this (e.g. 30d).")
@click.option("--all-regions", is_flag=True, help="Every region of the account, not only the current one.")
@target_options
def sweep(dry_run, snapshots_older_than, all_regions, **opts):
    """Remove every expired stack (`up --ttl`/`--expires-at`), as `down` does: final snapshot kept.

    Safe from cron on several machines at once (a stack is claimed before it is removed). Exit 0
    when everything due was removed (or nothing was due), 1 when a removal failed.
    Example: awslab sweep --dry-run; awslab sweep --snapshots-older-than 30d --yes
    """
    from awslab.commands import stacks as st
    from awslab.commands.sweep import sweep as do_sweep

    setup_debug(opts["debug"])
    output = output_format(opts["output"])
    if snapshots_older_than:
        st.parse_duration(snapshots_older_than, "--snapshots-older-than")
    ctx = stack_context(opts, need_stack=False)
    sys.exit(do_sweep(ctx, st.regions_of(ctx, all_regions), dry_run=dry_run,
                      snapshots_older_than=snapshots_older_than, output=output, progress=progress_for(output)))
