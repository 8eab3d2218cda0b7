"""`awslab up`, `plan`, `status`, `verify`, `down`: a stack's life, forwarded to
awslab.commands.lifecycle.
"""

from __future__ import annotations

import contextlib
import sys

import click

from awslab.cli._common import begin, lab_or_file, mutating, one_at_a_time, progress_for, target_options


@click.command()
@click.argument("lab", required=False)
@click.option("--lab-file", type=click.Path(dir_okay=False), default=None, help="A lab TOML file instead of a shipped lab.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a lab setting, e.g. --set database.multi_az=false (repeatable).")
@click.option("--dry-run", is_flag=True, help="Show the plan; change nothing.")
@click.option("--owner", default=None, help="Who the stack is for (default when it is made: your AWS identity; "
              "on the local AWS, your user name).")
@click.option("--ttl", default=None, metavar="DURATION", help="Expire the stack after this long (4h, 90m, 2d; "
              "`none` removes an expiry); `awslab sweep` removes expired stacks.")
@click.option("--expires-at", default=None, metavar="TIME", help="Expire the stack at this RFC 3339 time "
              "(2026-12-03T18:00:00Z).")
@click.option("--class", "class_name", default=None, hidden=True)   # set by `awslab class up`
@mutating
@target_options
def up(lab, lab_file, overrides, dry_run, owner, ttl, expires_at, class_name, **opts):
    """Create the lab's resources that are missing, change in place what differs from the lab, and
    wait until they are usable.

    LAB is a shipped lab's name (week6) or a lab file's path (./mylab.toml). Running it again
    changes nothing. Example: awslab up week6 --set host.ssh_cidr=203.0.113.10/32

    On the local AWS resources are ready in seconds (latency profile `instant`); for AWS's own
    durations (an RDS instance in about 15 minutes), scaled down: awslab local start --latency
    realistic --time-scale 0.01
    """
    from awslab.commands.lifecycle import lab_record, up as do_up
    from awslab.commands.stacks import check_owner, expiry_from
    from awslab.spec.lab import load_lab

    lab, lab_file = lab_or_file(lab, lab_file)
    loaded = load_lab(lab, lab_file, overrides)
    expires = expiry_from(ttl, expires_at)
    check_owner(owner)
    ctx, output = begin(opts, lab=loaded)
    record = lab_record(loaded, lab_file, overrides)
    with contextlib.nullcontext() if dry_run else one_at_a_time(ctx, "up", opts):
        code = do_up(ctx, loaded, ctx.stack, dry_run=dry_run, output=output, progress=progress_for(output), lab_record=record,
                     owner=owner, expires=expires, class_name=class_name)
    sys.exit(code)


@click.command()
@click.argument("lab", required=False)
@click.option("--lab-file", type=click.Path(dir_okay=False), default=None, help="A lab TOML file instead of a shipped lab.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a lab setting (repeatable).")
@target_options
def plan(lab, lab_file, overrides, **opts):
    """Show what `up` would create, update in place, delete, replace or keep, and why. Changes nothing.

    Example: awslab plan week6 --set database.read_replicas=0
    """
    from awslab.commands.lifecycle import lab_record, up as do_up
    from awslab.spec.lab import load_lab

    lab, lab_file = lab_or_file(lab, lab_file)
    loaded = load_lab(lab, lab_file, overrides)
    ctx, output = begin(opts, lab=loaded)
    record = lab_record(loaded, lab_file, overrides)
    sys.exit(do_up(ctx, loaded, ctx.stack, dry_run=True, output=output, progress=progress_for(output), lab_record=record))


@click.command()
@target_options
def status(**opts):
    """Every resource of the stack, its state and age. Example: awslab status --name week6"""
    from awslab.commands.status import status as do_status

    ctx, output = begin(opts)
    sys.exit(do_status(ctx, ctx.stack, output, progress_for(output)))


@click.command()
@click.option("--check", "checks", multiple=True, metavar="ID",
              help="Run only checks whose id starts with ID (repeatable), e.g. --check path --check security.db")
@click.option("--lab-file", type=click.Path(dir_okay=False), default=None, help="Compare with this lab file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Compare with this lab setting (repeatable).")
@click.option("--diagram-to", type=click.Path(dir_okay=False), default=None, hidden=True,
              help="Also draw the stack as an SVG in this file (for `class verify --html`).")
@target_options
def verify(checks, lab_file, overrides, diagram_to, **opts):
    """Check that the stack is there, as specified, reachable from the host, and secure.

    Each check has an id, a status (PASS/FAIL/WARN/SKIP), the evidence, and for a FAIL a fix.
    Exit 0 when nothing FAILs, 1 otherwise. Example: awslab verify --check path --output json
    """
    from awslab.commands.lifecycle import check_ids, stack_lab, verify as do_verify

    ctx, output = begin(opts)
    loaded = stack_lab(ctx, lab_file, overrides)
    check_ids(checks)
    sys.exit(do_verify(ctx, ctx.stack, loaded, checks=tuple(checks), output=output, progress=progress_for(output),
                       diagram_to=diagram_to))


@click.command()
@click.option("--skip-final-snapshot", is_flag=True, help="Delete the primary DB without a final snapshot.")
@click.option("--delete-snapshots", is_flag=True,
              help="Also delete the stack's manual, final and copied snapshots (and take no final snapshot).")
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; change nothing.")
@mutating
@target_options
def down(skip_final_snapshot, delete_snapshots, dry_run, **opts):
    """Delete everything tagged with the stack, in reverse dependency order.

    Takes a final snapshot of the primary database unless --skip-final-snapshot, keeps the stack's
    snapshots unless --delete-snapshots, and ends by listing what it kept and its monthly cost.
    Running it again is a quiet success. Example: awslab down --yes
    """
    from awslab.commands.lifecycle import down as do_down

    ctx, output = begin(opts)
    with contextlib.nullcontext() if dry_run else one_at_a_time(ctx, "down", opts):
        code = do_down(ctx, ctx.stack, skip_final_snapshot=skip_final_snapshot, dry_run=dry_run,
                       output=output, progress=progress_for(output), delete_snapshots=delete_snapshots)
    sys.exit(code)
