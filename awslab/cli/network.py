"""`awslab connect`, `shell`, `flows`: reaching the stack through its network (awslab.commands.connect,
shell, flows).
"""

from __future__ import annotations

import sys

import click

from awslab.cli._common import begin, target_options


@click.command()
@click.argument("what", metavar="db|replica|reader|cache|NAME")
@click.option("--env", "as_env", is_flag=True, help="Print environment variables (PGHOST, PGPASSFILE, ...) instead of a command.")
@target_options
def connect(what, as_env, **opts):
    """Print a ready-to-run psql / redis-cli command for the stack's DB, replica or cache
    (or a restored instance or group of the stack, by its name). On a Multi-AZ DB cluster
    (database.deployment=cluster) db is its cluster (writer) endpoint and reader its reader
    endpoint, which reaches one of its readable standbys.

    The password never appears: it goes to a 0600 file in awslab's state directory (PGPASSFILE,
    REDISCLI_AUTH read from a file). The endpoints are private: on the local AWS the printed address
    goes through the stack's host, as SSM port forwarding does, so the host's security groups decide
    (a revoked rule makes it time out); on AWS it prints the SSM session to open on the host and the
    command to run there. Example: eval "$(awslab connect db --env)"
    """
    from awslab.commands.connect import connect as do_connect

    ctx, output = begin(opts)
    do_connect(ctx, ctx.stack, what, as_env, output)


@click.command()
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

    ctx, _ = begin(opts)
    sys.exit(do_shell(ctx, ctx.stack, instance, command))


@click.command()
@click.option("--rejected", is_flag=True, help="Only the connections the VPC dropped, each with its reason.")
@click.option("--since", default=None, metavar="DURATION", help="Only the last DURATION (30s, 10m, 2h).")
@target_options
def flows(rejected, since, **opts):
    """The stack's VPC Flow Logs records (version 2 format): every connection to its databases and
    caches on the local AWS, accepted or rejected, from the host or from this machine, with the
    rule that is missing beside each REJECT. Example: awslab flows --rejected --since 10m
    """
    from awslab.commands.flows import flows as do_flows, print_flows

    ctx, output = begin(opts)
    print_flows(ctx.stack, do_flows(ctx, ctx.stack, rejected=rejected, since=since), output)
