"""`awslab export cloudformation`, `awslab policy` and `awslab engines`: the lab as documents other
tools read (a CloudFormation template, IAM policies) and the catalogue of engines, made without any
AWS call.
"""

from __future__ import annotations

import click

from awslab.cli._common import lab_or_file


@click.group()
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

    lab, lab_file = lab_or_file(lab, lab_file)
    do_export(load_lab(lab, lab_file, overrides), stack, overrides, lab_file, out)


@click.command()
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


@click.command()
@click.option("--output", "-o", type=click.Choice(("text", "json")), default=None, help="Result format on stdout.")
def engines(output):
    """The engines RDS offers: versions, Multi-AZ (instance, DB cluster), read replicas, Blue/Green,
    with AWS's sources; which a lab runs (--set database.engine=) and what the local AWS runs."""
    from awslab.cli._common import output_format
    from awslab.commands.engines import show

    raise SystemExit(show(output_format(output)))
