"""The command line: thin Click commands that parse and check input, resolve the Context and forward
to the plain functions of awslab.commands (lifecycle, recovery, demo) and awslab.verify.live
(connect); errors become one line and an exit code here.

Heavy imports (boto3, moto) happen inside the commands, so ``awslab --help`` starts quickly.
Exit codes: 0 success, 1 an operation failed, 2 bad input (nothing created), 130 interrupted.

It is one module of about 600 lines on purpose: it is declarations (options, help, the check of
each input), no logic, and ``awslab --help`` then imports one file, and every option is defined in
one place a reader can scan.
"""

from __future__ import annotations

import contextlib
import os
import sys

import click

from awslab import __version__
from awslab.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    AwslabError,
    UsageError,
)

OUTPUTS = ("text", "json")


def target_options(f):
    """The options every command that talks to AWS takes (after the command name, as people type them)."""
    opts = [
        click.option("--target", type=click.Choice(["local", "aws"]), default=None,
                     help="local (default): the embedded local AWS; aws: your account via the credential chain. [env AWSLAB_TARGET]"),
        click.option("--profile", default=None, help="AWS profile for --target aws. [env AWSLAB_PROFILE, AWS_PROFILE]"),
        click.option("--region", default=None, help="AWS region. [env AWSLAB_REGION, AWS_REGION, AWS_DEFAULT_REGION]"),
        click.option("--endpoint-url", default=None, help="Send AWS calls to this URL (another emulator). [env AWSLAB_ENDPOINT_URL]"),
        click.option("--assume-role", default=None, metavar="ROLE_ARN",
                     help="Act in another account through this IAM role (a student's, to grade it). [env AWSLAB_ASSUME_ROLE]"),
        click.option("--name", "stack", default=None, help="Stack name (default: the lab's name, or the last stack used). [env AWSLAB_STACK]"),
        click.option("--output", "-o", type=click.Choice(OUTPUTS), default=None, help="Result format on stdout. [env AWSLAB_OUTPUT]"),
        click.option("--yes", "-y", is_flag=True, default=False, help="Do not ask before changing a real AWS account."),
        click.option("--debug", is_flag=True, default=False, help="Show tracebacks and AWS requests."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def mutating(f):
    """A command that changes the stack: one at a time per stack (engine/locks.py)."""
    return click.option("--no-wait", is_flag=True, default=False,
                        help="If another awslab command is changing this stack, exit 1 naming it instead of waiting.")(f)


def _one_at_a_time(ctx, command: str, opts: dict):
    """The stack's lock for ``command`` (waits, or with --no-wait refuses, while another holds it)."""
    from awslab.engine.locks import stack_lock

    return stack_lock(ctx.target, ctx.region, ctx.stack, command, wait=not opts.get("no_wait"),
                      say=lambda line: click.echo(f"awslab: {line}", err=True))


def _output(value: str | None) -> str:
    value = value or os.environ.get("AWSLAB_OUTPUT") or "text"
    if value not in OUTPUTS:
        raise UsageError(f"unknown output format '{value}'", "use text or json")
    return value


def _setup_debug(debug: bool) -> None:
    if debug or os.environ.get("AWSLAB_DEBUG") == "1":
        os.environ["AWSLAB_DEBUG"] = "1"
        import logging

        # awslab's own request log (awslab/engine/context.py): operation and parameter names, never
        # values or bodies, which can carry the AUTH token. botocore's loggers stay quiet for that reason.
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
        logging.getLogger("awslab").setLevel(logging.DEBUG)


def _begin(opts: dict, lab=None):
    """What every command on a stack does first: debug logging, the output format, the Context
    (for `up`/`plan` of ``lab``, its stack defaults to the lab's name)."""
    _setup_debug(opts["debug"])
    output = _output(opts["output"])
    lab_name = (opts.get("stack") or os.environ.get("AWSLAB_STACK") or lab.name) if lab is not None else None
    return _context(opts, lab_name=lab_name), output


def _context(opts: dict, lab_name: str | None = None, need_stack: bool = True, start_local: bool = True):
    """The command's Context (commands/_common.resolve_context: which stack, which account)."""
    from awslab.commands._common import resolve_context

    return resolve_context(opts, lab_name=lab_name, need_stack=need_stack, start_local=start_local,
                           command=click.get_current_context().info_name)


def _lab_or_file(lab: str | None, lab_file: str | None) -> tuple[str | None, str | None]:
    """LAB names a shipped lab; one that is a path (``./mylab.toml``, ``../labs/week6``) is a lab
    file, as --lab-file (never the shipped lab its name ends with)."""
    if lab is None or ("/" not in lab and os.sep not in lab and not lab.endswith(".toml")):
        return lab, lab_file
    if lab_file is not None:
        raise UsageError(f"both a lab file as LAB ({lab}) and --lab-file {lab_file}", "give one of them")
    path = lab if lab.endswith(".toml") or not os.path.isfile(lab + ".toml") else lab + ".toml"
    if not os.path.isfile(path):
        raise UsageError(f"lab file not found: {lab}", "give the path of a TOML lab file, or a shipped lab's name "
                         "(the shipped labs: `awslab up --help`)")
    return None, path


def _progress(output: str):
    from awslab.ui import Progress

    return Progress()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="awslab")
def cli() -> None:
    """awslab: build the week-6 AWS databases lab, check it, snapshot it, and remove it, safely.

    \b
    awslab up week6          build the lab on the embedded local AWS (no account needed)
    awslab status            what exists now
    awslab down              remove it all (keeps a final DB snapshot)
    awslab up week6 --target aws --profile me --region eu-west-1   the same on your account
    """


@cli.command()
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

    lab, lab_file = _lab_or_file(lab, lab_file)
    loaded = load_lab(lab, lab_file, overrides)
    expires = expiry_from(ttl, expires_at)
    check_owner(owner)
    ctx, output = _begin(opts, lab=loaded)
    record = lab_record(loaded, lab_file, overrides)
    with contextlib.nullcontext() if dry_run else _one_at_a_time(ctx, "up", opts):
        code = do_up(ctx, loaded, ctx.stack, dry_run=dry_run, output=output, progress=_progress(output), lab_record=record,
                     owner=owner, expires=expires, class_name=class_name)
    sys.exit(code)


@cli.command()
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

    lab, lab_file = _lab_or_file(lab, lab_file)
    loaded = load_lab(lab, lab_file, overrides)
    ctx, output = _begin(opts, lab=loaded)
    record = lab_record(loaded, lab_file, overrides)
    sys.exit(do_up(ctx, loaded, ctx.stack, dry_run=True, output=output, progress=_progress(output), lab_record=record))


@cli.command()
@target_options
def status(**opts):
    """Every resource of the stack, its state and age. Example: awslab status --name week6"""
    from awslab.commands.lifecycle import status as do_status

    ctx, output = _begin(opts)
    sys.exit(do_status(ctx, ctx.stack, output, _progress(output)))


@cli.command("stacks")
@click.option("--all-regions", is_flag=True, help="Every region of the account, not only the current one.")
@target_options
def stacks_cmd(all_regions, **opts):
    """Every awslab stack in the region: lab, owner, created, expiry, resources, state, what it costs
    now (priced from what exists) and the snapshots it keeps; and snapshots of stacks that are gone.

    Example: awslab stacks --all-regions -o json
    """
    from awslab.commands import stacks as st

    _setup_debug(opts["debug"])
    output = _output(opts["output"])
    ctx = _context(opts, need_stack=False)
    regions = st.regions_of(ctx, all_regions)
    rows, orphans = st.list_stacks(ctx, regions)
    st.print_stacks(rows, orphans, output, regions)


@cli.command()
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

    _setup_debug(opts["debug"])
    output = _output(opts["output"])
    if snapshots_older_than:
        st.parse_duration(snapshots_older_than, "--snapshots-older-than")
    ctx = _context(opts, need_stack=False)
    sys.exit(st.sweep(ctx, st.regions_of(ctx, all_regions), dry_run=dry_run,
                      snapshots_older_than=snapshots_older_than, output=output, progress=_progress(output)))


@cli.group()
def export():
    """The lab in another tool's terms."""


@export.command("cloudformation")
@click.argument("lab", required=False)
@click.option("--lab-file", type=click.Path(dir_okay=False), default=None, help="A lab TOML file instead of a shipped lab.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a lab setting (repeatable).")
@click.option("--name", "stack", default=None, help="The awslab stack name the template defaults to (default: the lab's).")
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False), default=None, help="Write to FILE instead of stdout.")
def export_cloudformation(lab, lab_file, overrides, stack, out):
    """A CloudFormation template (YAML) of the same lab: every resource named and tagged as awslab
    does, so `awslab status/verify/snapshot/down --name STACK` work on a stack deployed from it.

    Example: awslab export cloudformation week6 | cfn-lint -
    """
    from awslab.commands.export import export_cloudformation as do_export
    from awslab.spec.lab import load_lab

    lab, lab_file = _lab_or_file(lab, lab_file)
    do_export(load_lab(lab, lab_file, overrides), stack, overrides, lab_file, out)


@cli.group("class")
def class_group():
    """A stack per student: build, grade and remove a class's labs together.

    \b
    awslab class up week6 --count 10            s01 ... s10, stacks week6-s01 ...
    awslab class up week6 --roster students.csv  columns: student[,owner][,ttl|expires_at]
    awslab class status                          one line per student
    awslab class verify --csv grades.csv         the grade sheet (an autograder)
    awslab class down                            remove them all (final snapshots kept)

    \b
    An account per student (CloudFormation StackSets, the lab's exported template):
    awslab class up week6 --stackset --accounts 111122223333,444455556666 [--regions ...]
    awslab class up week6 --stackset --ou ou-ab12-cd34ef56   service-managed, every account of the OU
    awslab class verify --stackset / status --stackset / down --stackset
    """


def _stackset_options(f):
    f = click.option("--failure-tolerance", default=0, show_default=True, type=int,
                     help="With --stackset: failed accounts per region before StackSets stops there.")(f)
    f = click.option("--max-concurrent", default=4, show_default=True, type=int,
                     help="With --stackset: accounts deployed at a time.")(f)
    return click.option("--stackset", is_flag=True, default=False,
                        help="An AWS account per student: the class is a CloudFormation StackSet (awslab-<class>).")(f)


def _class_options(f):
    f = click.option("--class", "class_name", default=None,
                     help="The class (default: the lab's name for `class up`, then the last class used).")(f)
    return click.option("--concurrency", default=4, show_default=True, type=int,
                        help="How many students' stacks to work on at a time.")(f)


@class_group.command("up")
@click.argument("lab", required=False)
@click.option("--lab-file", type=click.Path(dir_okay=False), default=None, help="A lab TOML file instead of a shipped lab.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a lab setting for every student.")
@click.option("--count", type=int, default=None, help="Students s01 ... sNN.")
@click.option("--roster", type=click.Path(dir_okay=False), default=None,
              help="A CSV with a 'student' column (and optionally owner, ttl or expires_at).")
@click.option("--ttl", default=None, metavar="DURATION", help="Every stack expires after this long (e.g. 8h).")
@click.option("--expires-at", default=None, metavar="TIME", help="Every stack expires at this RFC 3339 time.")
@click.option("--accounts", default=None, metavar="A,B,...", help="With --stackset: the students' AWS account ids.")
@click.option("--ou", default=None, metavar="OU-ID", help="With --stackset: every account of this organizational unit.")
@click.option("--regions", default=None, metavar="R1,R2", help="With --stackset: the regions (default: --region's).")
@_stackset_options
@_class_options
@target_options
def class_up(lab, lab_file, overrides, count, roster, ttl, expires_at, accounts, ou, regions, stackset, max_concurrent,
             failure_tolerance, class_name, concurrency, **opts):
    """Build one stack of LAB per student, --concurrency at a time; rerun to converge or retry.

    With --stackset, one stack per student account instead, through a CloudFormation StackSet."""
    from awslab.commands import classes
    from awslab.commands.stacks import expiry_from
    from awslab.spec.lab import load_lab

    _setup_debug(opts["debug"])
    output = _output(opts["output"])
    lab, lab_file = _lab_or_file(lab, lab_file)
    loaded = load_lab(lab, lab_file, overrides)
    name = classes.check_class_name(class_name or loaded.name)
    if stackset:
        from awslab.commands import stacksets

        if count is not None or roster or ttl or expires_at:
            raise UsageError("--count, --roster, --ttl and --expires-at do not apply with --stackset",
                             "the students are the accounts: --accounts A,B,... or --ou OU-ID")
        accs, ous, regs = stacksets.targets_from(accounts, ou, regions, max_concurrent, failure_tolerance)
        ctx = _context(opts, need_stack=False)
        regs = regs or [ctx.region]
        classes.remember_class(name)
        sys.exit(stacksets.class_up(ctx, loaded, name, accounts=accs, ous=ous, regions=regs, overrides=list(overrides),
                                    lab_file=os.path.abspath(lab_file) if lab_file else None,
                                    max_concurrent=max_concurrent, failure_tolerance=failure_tolerance, output=output,
                                    progress=_progress(output)))
    if accounts or ou or regions:
        raise UsageError("--accounts, --ou and --regions go with --stackset", "add --stackset, or use --count/--roster")
    students = classes.students_from(name, count, roster)
    expires = expiry_from(ttl, expires_at)
    classes.check_concurrency(concurrency)
    ctx = _context(opts, need_stack=False)
    classes.remember_class(name)
    sys.exit(classes.class_up(ctx, loaded, name, students, lab_file=os.path.abspath(lab_file) if lab_file else None,
                              overrides=list(overrides), expires=expires, concurrency=concurrency, output=output,
                              progress=_progress(output)))


@class_group.command("status")
@click.option("--class", "class_name", default=None, help="The class (default: the last class used).")
@click.option("--stackset", is_flag=True, default=False, help="The class's StackSet: one line per account.")
@target_options
def class_status(class_name, stackset, **opts):
    """One line per student: stack, owner, state, expiry, what it costs now."""
    from awslab.commands import classes

    _setup_debug(opts["debug"])
    output = _output(opts["output"])
    name = classes.remembered_class(class_name)
    if stackset:
        from awslab.commands import stacksets

        sys.exit(stacksets.class_status(_context(opts, need_stack=False), name, output))
    sys.exit(classes.class_status(_context(opts, need_stack=False), name, output))


@class_group.command("verify")
@click.option("--check", "checks", multiple=True, metavar="PREFIX", help="Only checks whose id starts with this.")
@click.option("--csv", "csv_path", default=None, type=click.Path(dir_okay=False), help="Also write the grade sheet as CSV.")
@click.option("--stackset", is_flag=True, default=False, help="The class's StackSet: grade each student account.")
@click.option("--role-name", default=None, help="With --stackset: the role to enter each account by (default: the "
                                                "StackSet's execution role; OrganizationAccountAccessRole for --ou).")
@_class_options
@target_options
def class_verify(checks, csv_path, stackset, role_name, class_name, concurrency, **opts):
    """Run `verify` on every student's stack and print the grade sheet: one row per student, one
    column per check group (passed/failed), and what failed. Exit 1 when any student fails a check."""
    from awslab.commands import classes

    _setup_debug(opts["debug"])
    output = _output(opts["output"])
    name = classes.remembered_class(class_name)
    classes.check_concurrency(concurrency)
    if stackset:
        from awslab.commands import stacksets

        sys.exit(stacksets.class_verify(_context(opts, need_stack=False), name, role_name=role_name,
                                        checks=tuple(checks), concurrency=concurrency, csv_path=csv_path, output=output,
                                        progress=_progress(output)))
    sys.exit(classes.class_verify(_context(opts, need_stack=False), name, checks=tuple(checks), concurrency=concurrency,
                                  csv_path=csv_path, output=output, progress=_progress(output)))


@class_group.command("down")
@click.option("--skip-final-snapshot", is_flag=True, help="Delete the primary DBs without final snapshots.")
@click.option("--delete-snapshots", is_flag=True, help="Also delete each stack's snapshots.")
@_stackset_options
@_class_options
@target_options
def class_down(skip_final_snapshot, delete_snapshots, stackset, max_concurrent, failure_tolerance, class_name,
               concurrency, **opts):
    """Remove every student's stack (as `down`: a final snapshot of each primary DB unless asked not to)."""
    from awslab.commands import classes

    _setup_debug(opts["debug"])
    output = _output(opts["output"])
    name = classes.remembered_class(class_name)
    if stackset:
        from awslab.commands import stacksets

        if skip_final_snapshot or delete_snapshots:
            raise UsageError("--skip-final-snapshot and --delete-snapshots do not apply with --stackset",
                             "the template keeps each primary DB's final snapshot (DeletionPolicy: Snapshot); "
                             "delete those in each account once they are not needed")
        stacksets.check_preferences(max_concurrent, failure_tolerance)
        sys.exit(stacksets.class_down(_context(opts, need_stack=False), name, max_concurrent=max_concurrent,
                                      failure_tolerance=failure_tolerance, output=output, progress=_progress(output)))
    classes.check_concurrency(concurrency)
    sys.exit(classes.class_down(_context(opts, need_stack=False), name, concurrency=concurrency,
                                skip_final_snapshot=skip_final_snapshot, delete_snapshots=delete_snapshots,
                                output=output, progress=_progress(output)))


@cli.command()
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

    ctx, output = _begin(opts)
    with contextlib.nullcontext() if dry_run else _one_at_a_time(ctx, "down", opts):
        code = do_down(ctx, ctx.stack, skip_final_snapshot=skip_final_snapshot, dry_run=dry_run,
                       output=output, progress=_progress(output), delete_snapshots=delete_snapshots)
    sys.exit(code)


@cli.command()
@click.option("--copy-to-region", default=None, metavar="REGION", help="Also copy the DB snapshot to this region.")
@click.option("--kms-key", default=None, help="KMS key in the destination region for an encrypted copy (default: its RDS key).")
@mutating
@target_options
def snapshot(copy_to_region, kms_key, **opts):
    """Manual snapshots of the primary DB and the cache, named <stack>-<UTC time>, tagged with the stack.

    Waits until they are available and prints their ids, sizes and monthly cost.
    Example: awslab snapshot --copy-to-region us-west-2
    """
    from awslab.commands.lifecycle import stack_lab
    from awslab.commands.recovery import snapshot as do_snapshot

    ctx, output = _begin(opts)
    with _one_at_a_time(ctx, "snapshot", opts):
        code = do_snapshot(ctx, ctx.stack, stack_lab(ctx), copy_to=copy_to_region, kms_key=kms_key,
                           output=output, progress=_progress(output))
    sys.exit(code)


@cli.command()
@target_options
def snapshots(**opts):
    """The stack's manual, automated and final snapshots (DB and cache, every region it copied to)."""
    from awslab.commands.recovery import snapshots as do_snapshots

    ctx, output = _begin(opts)
    sys.exit(do_snapshots(ctx, ctx.stack, output=output, progress=_progress(output)))


@cli.command()
@click.argument("snapshot_id", required=False)
@click.option("--as", "as_name", default=None, metavar="NAME", help="Identifier of the new instance or group (default <stack>-restored).")
@click.option("--to-time", default=None, metavar="ISO-8601|latest",
              help="Restore the primary to this point in time from its automated backups instead of a snapshot.")
@click.option("--cache", "from_cache", is_flag=True, help="Restore the cache snapshot of that name (the DB's is the default).")
@mutating
@target_options
def restore(snapshot_id, as_name, to_time, from_cache, **opts):
    """A new DB instance (or cache replication group) from one of the stack's snapshots.

    It lands in the stack's subnet group and security group, encrypted and not public, and joins
    the stack. `awslab snapshot` names its DB and cache snapshots alike: add --cache for the cache's.
    Examples: awslab restore week6-20261127-143000 --as restored;
    awslab restore --to-time 2026-11-27T14:30:00Z --as before-the-mistake
    """
    from awslab.commands.lifecycle import stack_lab
    from awslab.commands.recovery import restore as do_restore

    ctx, output = _begin(opts)
    with _one_at_a_time(ctx, "restore", opts):
        code = do_restore(ctx, ctx.stack, stack_lab(ctx), snapshot_id=snapshot_id, as_name=as_name,
                          to_time=to_time, output=output, progress=_progress(output), from_cache=from_cache)
    sys.exit(code)


@cli.command()
@click.option("--cache", "on_cache", is_flag=True, help="Fail over the cache's primary node instead of the database.")
@mutating
@target_options
def failover(on_cache, **opts):
    """Force a failover of the Multi-AZ primary (reboot with failover) and show the AZ before and after.

    Refused on a Single-AZ instance. Example: awslab failover; awslab failover --cache
    """
    from awslab.commands.recovery import failover as do_failover

    ctx, output = _begin(opts)
    with _one_at_a_time(ctx, "failover", opts):
        code = do_failover(ctx, ctx.stack, on_cache=on_cache, output=output, progress=_progress(output))
    sys.exit(code)


@cli.command()
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

    ctx, output = _begin(opts)
    with _one_at_a_time(ctx, "maintenance", opts):
        code = do_maintenance(ctx, ctx.stack, offer=offer, apply_now=apply_now, output=output)
    sys.exit(code)


@cli.command()
@mutating
@target_options
def drill(**opts):
    """Measure availability against performance on the local AWS's real engines.

    A numbered write load runs through the primary while a Multi-AZ failover is forced (downtime,
    acknowledged writes lost, connections dropped); the read replica's lag is sampled under load
    and read-your-own-write misses counted; then a cache failover under load (keys lost). Prints
    the three side by side with AWS's figures. Local target only. Example: awslab drill -o json
    """
    from awslab.commands.drill import drill as do_drill

    ctx, output = _begin(opts)
    with _one_at_a_time(ctx, "drill", opts):
        code = do_drill(ctx, ctx.stack, output=output, progress=_progress(output))
    sys.exit(code)


@cli.command()
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

    ctx, output = _begin(opts)
    with _one_at_a_time(ctx, "promote", opts):
        code = do_promote(ctx, ctx.stack, stack_lab(ctx), replica=replica, output=output,
                          progress=_progress(output))
    sys.exit(code)


@cli.command()
@click.argument("what", metavar="db|replica|cache|NAME")
@click.option("--env", "as_env", is_flag=True, help="Print environment variables (PGHOST, PGPASSFILE, ...) instead of a command.")
@target_options
def connect(what, as_env, **opts):
    """Print a ready-to-run psql / redis-cli command for the stack's DB, replica or cache
    (or a restored instance or group of the stack, by its name).

    The password never appears: it goes to a 0600 file in awslab's state directory (PGPASSFILE,
    REDISCLI_AUTH read from a file). The endpoints are private: on the local AWS the printed address
    goes through the stack's host, as SSM port forwarding does, so the host's security groups decide
    (a revoked rule makes it time out); on AWS it prints the SSM session to open on the host and the
    command to run there. Example: eval "$(awslab connect db --env)"
    """
    from awslab.commands.connect import connect as do_connect

    ctx, output = _begin(opts)
    do_connect(ctx, ctx.stack, what, as_env, output)


@cli.command()
@click.argument("instance", required=False, metavar="[INSTANCE]")
@click.option("--command", "-c", "command", default=None, metavar="LINE", help="Run LINE on the instance and exit with its code.")
@target_options
def shell(instance, command, **opts):
    """A shell on the stack's EC2 host (or INSTANCE), as `aws ssm start-session` opens on AWS.

    On the local AWS the shell runs on this machine as the instance: its own directory, the lab's
    clients first on the PATH, the endpoints' AWS names resolved to what the instance sees, so
    `psql -h <DB endpoint>` works as written and its security groups decide. On AWS it runs
    `aws ssm start-session` (the Session Manager plugin must be installed).
    Example: awslab shell -c "psql 'host=week6-db.aaaaaaaaaa.us-east-1.rds.amazonaws.com ...' -c 'select 1'"
    """
    from awslab.commands.shell import shell as do_shell

    ctx, _ = _begin(opts)
    sys.exit(do_shell(ctx, ctx.stack, instance, command))


@cli.command()
@click.option("--rejected", is_flag=True, help="Only the connections the VPC dropped, each with its reason.")
@click.option("--since", default=None, metavar="DURATION", help="Only the last DURATION (30s, 10m, 2h).")
@target_options
def flows(rejected, since, **opts):
    """The stack's VPC Flow Logs records (version 2 format): every connection to its databases and
    caches on the local AWS, accepted or rejected, from the host or from this machine, with the
    rule that is missing beside each REJECT. Example: awslab flows --rejected --since 10m
    """
    from awslab.commands.flows import flows as do_flows, print_flows

    ctx, output = _begin(opts)
    print_flows(ctx.stack, do_flows(ctx, ctx.stack, rejected=rejected, since=since), output)


@cli.group()
def demo():
    """Demonstrations on the lab's real engines (local AWS)."""


@demo.command("cache-aside")
@click.option("--requests", "n_requests", default=300, show_default=True, type=click.IntRange(10, 100000),
              help="Requests in the workload.")
@click.option("--rows", default=200000, show_default=True, type=click.IntRange(1000, 10000000), help="Orders to seed.")
@click.option("--reports", default=20, show_default=True, type=click.IntRange(1, 1000), help="Distinct reports asked for.")
@target_options
def demo_cache_aside(n_requests, rows, reports, **opts):
    """Measure an expensive query straight from PostgreSQL and through a Redis cache-aside layer.

    Prints the hit ratio and p50/p95 latency of both, and what they show.
    Example: awslab demo cache-aside --requests 500
    """
    from awslab.commands._common import new_run
    from awslab.commands.demo import cache_aside, print_result

    ctx, output = _begin(opts)
    print_result(cache_aside(new_run(ctx, ctx.stack), requests=n_requests, rows=rows, reports=reports), output)


@demo.command("caching")
@click.option("--duration", default=3.0, show_default=True, type=click.FloatRange(0.5, 60),
              help="Seconds each strategy runs the workload.")
@click.option("--writes", default=10, show_default=True, type=click.IntRange(0, 50), help="Percent of requests that write.")
@click.option("--ttl", default=2, show_default=True, type=click.IntRange(1, 3600), help="TTL in seconds, where one is set.")
@click.option("--keys", default=50, show_default=True, type=click.IntRange(2, 10000), help="Distinct reports (Zipf-skewed).")
@click.option("--readers", default=16, show_default=True, type=click.IntRange(2, 64),
              help="Concurrent readers of the hot key in the stampede.")
@click.option("--strategy", "strategies", multiple=True, metavar="NAME",
              help="Run only this strategy (repeatable): database-only, lazy-ttl, write-through, write-through-ttl, "
                   "lazy-ttl-jitter.")
@click.option("--eviction", is_flag=True,
              help="Instead: fill the cache past its memory under eviction policies set by a cache parameter group.")
@click.option("--policy", "policies", multiple=True, metavar="NAME",
              help="With --eviction, this maxmemory-policy (repeatable; default volatile-lru, allkeys-lru, noeviction).")
@target_options
def demo_caching(duration, writes, ttl, keys, readers, strategies, eviction, policies, **opts):
    """Measure ElastiCache's caching strategies side by side on the lab's database and cache.

    The same Zipf-skewed stream of reads and writes runs through each strategy; the table shows
    read latency p50/p95/p99, hit ratio, database reads per second, stale reads (versioned
    values), memory and evictions; then a hot key's stampede with and without single-flight, and
    what TTL jitter does to expiries. Example: awslab demo caching --duration 5 --writes 20
    """
    from awslab.commands._common import new_run
    from awslab.commands.caching import STRATEGIES, Workload, caching, print_result

    if eviction:
        from awslab.commands.eviction import EVICTION_POLICIES, eviction as fill, print_eviction

        ctx, output = _begin(opts)
        print_eviction(fill(new_run(ctx, ctx.stack), tuple(policies) or EVICTION_POLICIES), output)
        return
    if policies:
        raise UsageError("--policy goes with --eviction", "awslab demo caching --eviction --policy allkeys-lfu")
    work = Workload(duration_s=duration, writes_pct=writes, ttl_s=ttl, keys=keys, readers=readers,
                    strategies=tuple(strategies) or STRATEGIES)
    work.check()
    ctx, output = _begin(opts)
    print_result(caching(new_run(ctx, ctx.stack), work), output)


@demo.command("redis")
@click.argument("cases", nargs=-1, metavar="[CASE]...")
@target_options
def demo_redis(cases, **opts):
    """Run what ElastiCache for Redis is used for on the lab's cache, each with what it did.

    CASE: session, leaderboard, rate-limit, messaging (default: all).
    Example: awslab demo redis leaderboard messaging
    """
    from awslab.commands._common import new_run
    from awslab.commands.redis_demo import CASES, check_cases, print_result, redis_uses

    check_cases(cases)
    ctx, output = _begin(opts)
    print_result(redis_uses(new_run(ctx, ctx.stack), tuple(cases) or CASES), output)


@cli.command()
@click.option("--check", "checks", multiple=True, metavar="ID",
              help="Run only checks whose id starts with ID (repeatable), e.g. --check path --check security.db")
@click.option("--lab-file", type=click.Path(dir_okay=False), default=None, help="Compare with this lab file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Compare with this lab setting (repeatable).")
@target_options
def verify(checks, lab_file, overrides, **opts):
    """Check that the stack is there, as specified, reachable from the host, and secure.

    Each check has an id, a status (PASS/FAIL/WARN/SKIP), the evidence, and for a FAIL a fix.
    Exit 0 when nothing FAILs, 1 otherwise. Example: awslab verify --check path --output json
    """
    from awslab.commands.lifecycle import check_ids, stack_lab, verify as do_verify

    ctx, output = _begin(opts)
    loaded = stack_lab(ctx, lab_file, overrides)
    check_ids(checks)
    sys.exit(do_verify(ctx, ctx.stack, loaded, checks=tuple(checks), output=output, progress=_progress(output)))


@cli.command()
@click.argument("lab", required=False, default="week6")
@click.option("--stackset", is_flag=True, default=False,
              help="The policy for `awslab class ... --stackset` in the StackSet's administrator account instead.")
def policy(lab, stackset):
    """Print the least-privilege IAM policy (JSON) that runs every awslab command on LAB.

    Paste it into IAM for the people running the lab. Example: awslab policy week6 > policy.json
    """
    from awslab.spec.lab import load_lab
    from awslab.spec.policies import lab_policy, render, stackset_policy

    loaded = load_lab(lab)
    click.echo(render(stackset_policy() if stackset else lab_policy(loaded.name)), nl=False)


@cli.group()
def local():
    """The embedded local AWS (a moto server on 127.0.0.1 that awslab manages)."""


@local.command("start")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port to listen on (default: any free port).")
@click.option("--latency", default=None, metavar="PROFILE",
              help="instant (default: moto's speed), realistic (AWS's typical durations), or TRANSITION=SECONDS,... "
                   "e.g. rds.create=5,ec2.run=1. Applies to resources made from then on.")
@click.option("--time-scale", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Multiply the realistic durations, e.g. 0.01 for a 15-minute RDS creation in 9 seconds.")
@click.option("--engines/--no-engines", default=None,
              help="Real PostgreSQL and Redis behind RDS and ElastiCache (default: on). [env AWSLAB_LOCAL_ENGINES=on|off]")
def local_start(port, latency, time_scale, engines):
    """Start the local AWS (or report the one already running, changing its latency if asked).

    Example: awslab local start --latency realistic --time-scale 0.01
    """
    from awslab.commands import local_aws

    local_aws.start(port, latency, time_scale, engines)


@local.command("stop")
def local_stop():
    """Stop the local AWS that awslab started. Everything in it (stacks, snapshots, the databases'
    and caches' data) is kept and comes back with the next command or `awslab local start`;
    `awslab local reset` throws it away."""
    from awslab.commands import local_aws

    local_aws.stop()


@local.command("reset")
@click.option("--yes", is_flag=True, help="Do not ask.")
def local_reset(yes):
    """Stop the local AWS and delete everything it holds: every stack, snapshot and the databases'
    and caches' data. Asks first."""
    from awslab.commands import local_aws

    local_aws.reset(yes)


@local.command("endpoints")
@click.option("--output", "-o", type=click.Choice(OUTPUTS), default=None)
def local_endpoints(output):
    """Where each endpoint of the local AWS answers on this machine: every DB instance's and cache
    node's AWS address (awslab's stacks or anything made with the AWS CLI, CloudFormation or an
    SDK), the local address a client connects to, its role, TLS and status. Passwords are not here:
    each endpoint still asks its own. These addresses are the endpoints as seen from outside every
    VPC (this machine, 127.0.0.1): a private DB or any cache times out there, as on AWS; reach them
    through an instance (`awslab connect`, `awslab shell`), or make the DB publicly accessible in a
    public subnet with a rule for 127.0.0.1. Example: psql "host=127.0.0.1 port=PORT ..." after
    reading the PORT of your instance's address."""
    from awslab.commands import local_aws

    data = local_aws.endpoints()
    local_aws.print_endpoints(data, _output(output))


@local.command("env")
def local_env():
    """Print the shell lines that point the AWS CLI (or any SDK) at the local AWS, starting it if
    needed: its endpoint, region, and its keys through an owner-only credentials file (the keys are
    never printed).

    Example: eval "$(awslab local env)" && aws ec2 describe-vpcs
    """
    from awslab.commands import local_aws

    local_aws.env()


@local.command("status")
@click.option("--output", "-o", type=click.Choice(OUTPUTS), default=None)
def local_status(output):
    """Is the local AWS running, and at which endpoint (for the AWS CLI or any SDK)."""
    from awslab.commands import local_aws

    server, failure = local_aws.status()
    local_aws.print_status(server, failure, _output(output))


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and map errors to one clear line and an exit code."""
    args = list(argv if argv is not None else sys.argv[1:])
    if not args:   # `awslab` alone: the help, as from --help (not a usage error)
        args = ["--help"]
    argv = args
    debug = os.environ.get("AWSLAB_DEBUG") == "1" or "--debug" in args
    try:
        cli.main(args=argv, prog_name="awslab", standalone_mode=False)
    except click.exceptions.Abort:
        executor = sys.modules.get("awslab.engine.executor")
        click.echo("aborted" if executor is not None and executor.changes_started() else "aborted: nothing was changed",
                   err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.UsageError as exc:
        where = f"awslab {exc.ctx.command_path.split(' ', 1)[1]}" if exc.ctx and " " in exc.ctx.command_path else "awslab"
        click.echo(f"error: {exc.format_message()} (see `{where} --help`)", err=True)
        sys.exit(EXIT_USAGE)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(EXIT_USAGE if exc.exit_code == 2 else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo(_interrupted_line(), err=True)
        sys.exit(EXIT_INTERRUPTED)
    except AwslabError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        click.echo(_one_line(exc.message, exc.hint), err=True)
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - anything unexpected still gets one clear line
        code, message, hint = _classify(exc)
        if debug:
            import traceback

            traceback.print_exc()
        click.echo(_one_line(message, hint), err=True)
        sys.exit(code)


def _interrupted_line() -> str:
    executor = sys.modules.get("awslab.engine.executor")
    if executor is None or not executor.changes_started():
        return "interrupted before any change: nothing was changed"
    return "interrupted; rerun the same command to pick up where it stopped"


def _one_line(message: str, hint: str | None) -> str:
    """One clear line: the problem, then what to do about it."""
    text = f"error: {message}" + (f" (hint: {hint})" if hint else "")
    return " ".join(text.split())


def _classify(exc: Exception) -> tuple[int, str, str]:
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ReadTimeoutError,
    )

    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return EXIT_USAGE, "no AWS credentials found for --target aws", (
            "run `aws configure` (or `aws sso login`) and pass --profile, or set AWS_PROFILE, "
            "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    if isinstance(exc, NoRegionError):
        return EXIT_USAGE, "no AWS region set", "pass --region or set AWS_REGION"
    if isinstance(exc, (ConnectionError, ReadTimeoutError)):
        # Mid-command (the endpoint answered when the command began): what was done is kept.
        return EXIT_FAILED, f"lost the connection to AWS: {exc}", "check your network, then rerun the same command"
    if isinstance(exc, ClientError):
        from awslab.commands._common import describe_error

        return EXIT_FAILED, describe_error(exc), "see the AWS message above; rerun with --debug for details"
    return EXIT_FAILED, f"unexpected {type(exc).__name__}: {exc}", "rerun with --debug and report it if it persists"


if __name__ == "__main__":  # pragma: no cover
    main()
