"""`awslab local start/stop/reset/endpoints/env/status`: the embedded local AWS
(awslab.commands.local_aws).
"""

from __future__ import annotations

import click

from awslab.cli._common import OUTPUTS, output_format


@click.group()
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
    local_aws.print_endpoints(data, output_format(output))


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
    local_aws.print_status(server, failure, output_format(output))
