"""`awslab report`: the stack's page; forwarded to awslab.commands.report."""

from __future__ import annotations

import sys

import click

from awslab.cli._common import progress_for, setup_debug, stack_context, target_options_without_output


@click.command()
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False), default="report.html", show_default=True,
              help="The page to write.")
@target_options_without_output
def report(out, **opts):
    """Write one self-contained page for the stack as it is now: the diagram, verify's results by
    group with their evidence and fixes, the cost now, the snapshots and their monthly cost, and
    the charts of `awslab drill --report` and `awslab demo caching --report` once they have run.
    No script, font or URL: it opens offline and prints.

    \b
    awslab report                        report.html in this folder
    awslab drill --report && awslab report -o lab.html   with the failover's timeline
    """
    from awslab.commands.pages import check_out_path
    from awslab.commands.report import report as do_report

    check_out_path(out)   # an unwritable file is refused before any AWS call
    setup_debug(opts["debug"])
    ctx = stack_context(opts)
    sys.exit(do_report(ctx, ctx.stack, out, progress_for("text")))
