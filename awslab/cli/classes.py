"""`awslab class up/status/verify/down`: a stack per student (awslab.commands.classes), or an
account per student with --stackset (awslab.commands.stacksets).
"""

from __future__ import annotations

import os
import sys

import click

from awslab.cli._common import (
    lab_or_file,
    output_format,
    progress_for,
    setup_debug,
    stack_context,
    target_options,
)
from awslab.errors import UsageError


@click.group("class")
def class_group():
    """A stack per student: build, grade and remove a class's labs together.

    \b
    awslab class up week6 --count 10            s01 ... s10, stacks week6-s01 ...
    awslab class up week6 --roster students.csv  columns: student[,owner][,ttl|expires_at]
    awslab class status                          one line per student
    awslab class verify --csv grades.csv         the grade sheet (an autograder)
    awslab class verify --html grades.html       the same as a page, each student's diagram in it
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

    setup_debug(opts["debug"])
    output = output_format(opts["output"])
    lab, lab_file = lab_or_file(lab, lab_file)
    loaded = load_lab(lab, lab_file, overrides)
    name = classes.check_class_name(class_name or loaded.name)
    if stackset:
        from awslab.commands import stacksets

        if count is not None or roster or ttl or expires_at:
            raise UsageError("--count, --roster, --ttl and --expires-at do not apply with --stackset",
                             "the students are the accounts: --accounts A,B,... or --ou OU-ID")
        accs, ous, regs = stacksets.targets_from(accounts, ou, regions, max_concurrent, failure_tolerance)
        ctx = stack_context(opts, need_stack=False)
        regs = regs or [ctx.region]
        classes.remember_class(name)
        sys.exit(stacksets.class_up(ctx, loaded, name, accounts=accs, ous=ous, regions=regs, overrides=list(overrides),
                                    lab_file=os.path.abspath(lab_file) if lab_file else None,
                                    max_concurrent=max_concurrent, failure_tolerance=failure_tolerance, output=output,
                                    progress=progress_for(output)))
    if accounts or ou or regions:
        raise UsageError("--accounts, --ou and --regions go with --stackset", "add --stackset, or use --count/--roster")
    students = classes.students_from(name, count, roster)
    expires = expiry_from(ttl, expires_at)
    classes.check_concurrency(concurrency)
    ctx = stack_context(opts, need_stack=False)
    classes.remember_class(name)
    sys.exit(classes.class_up(ctx, loaded, name, students, lab_file=os.path.abspath(lab_file) if lab_file else None,
                              overrides=list(overrides), expires=expires, concurrency=concurrency, output=output,
                              progress=progress_for(output)))


@class_group.command("status")
@click.option("--class", "class_name", default=None, help="The class (default: the last class used).")
@click.option("--stackset", is_flag=True, default=False, help="The class's StackSet: one line per account.")
@target_options
def class_status(class_name, stackset, **opts):
    """One line per student: stack, owner, state, expiry, what it costs now."""
    from awslab.commands import classes

    setup_debug(opts["debug"])
    output = output_format(opts["output"])
    name = classes.remembered_class(class_name)
    if stackset:
        from awslab.commands import stacksets

        sys.exit(stacksets.class_status(stack_context(opts, need_stack=False), name, output))
    sys.exit(classes.class_status(stack_context(opts, need_stack=False), name, output))


@class_group.command("verify")
@click.option("--check", "checks", multiple=True, metavar="PREFIX", help="Only checks whose id starts with this.")
@click.option("--csv", "csv_path", default=None, type=click.Path(dir_okay=False), help="Also write the grade sheet as CSV.")
@click.option("--html", "html_path", default=None, type=click.Path(dir_okay=False),
              help="Also write the grade sheet as a page: a coloured cell per check group, each failure's evidence "
                   "and fix, each student's diagram.")
@click.option("--stackset", is_flag=True, default=False, help="The class's StackSet: grade each student account.")
@click.option("--role-name", default=None, help="With --stackset: the role to enter each account by (default: the "
                                                "StackSet's execution role; OrganizationAccountAccessRole for --ou).")
@_class_options
@target_options
def class_verify(checks, csv_path, html_path, stackset, role_name, class_name, concurrency, **opts):
    """Run `verify` on every student's stack and print the grade sheet: one row per student, one
    column per check group (passed/failed), and what failed. Exit 1 when any student fails a check.
    --html grades.html: the same sheet as a self-contained page, each student's diagram in it."""
    from awslab.commands import classes
    from awslab.commands.pages import check_out_path

    if html_path:
        check_out_path(html_path)

    setup_debug(opts["debug"])
    output = output_format(opts["output"])
    name = classes.remembered_class(class_name)
    classes.check_concurrency(concurrency)
    if stackset:
        from awslab.commands import stacksets

        sys.exit(stacksets.class_verify(stack_context(opts, need_stack=False), name, role_name=role_name,
                                        checks=tuple(checks), concurrency=concurrency, csv_path=csv_path, output=output,
                                        progress=progress_for(output), html_path=html_path))
    sys.exit(classes.class_verify(stack_context(opts, need_stack=False), name, checks=tuple(checks), concurrency=concurrency,
                                  csv_path=csv_path, output=output, progress=progress_for(output), html_path=html_path))


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

    setup_debug(opts["debug"])
    output = output_format(opts["output"])
    name = classes.remembered_class(class_name)
    if stackset:
        from awslab.commands import stacksets

        if skip_final_snapshot or delete_snapshots:
            raise UsageError("--skip-final-snapshot and --delete-snapshots do not apply with --stackset",
                             "the template keeps each primary DB's final snapshot (DeletionPolicy: Snapshot); "
                             "delete those in each account once they are not needed")
        stacksets.check_preferences(max_concurrent, failure_tolerance)
        sys.exit(stacksets.class_down(stack_context(opts, need_stack=False), name, max_concurrent=max_concurrent,
                                      failure_tolerance=failure_tolerance, output=output, progress=progress_for(output)))
    classes.check_concurrency(concurrency)
    sys.exit(classes.class_down(stack_context(opts, need_stack=False), name, concurrency=concurrency,
                                skip_final_snapshot=skip_final_snapshot, delete_snapshots=delete_snapshots,
                                output=output, progress=progress_for(output)))
