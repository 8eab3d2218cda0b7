"""The command line: thin Click commands that parse and check input, resolve the Context and forward
to the plain functions of awslab.commands; errors become one line and an exit code here (``main``).

One module per command family, as awslab/commands/ has: lifecycle (up, plan, status, verify,
down), diagram (the stack drawn), report (the stack's page), stacks (stacks, sweep), classes (class ...), recovery (snapshot,
snapshots, restore, failover, promote, maintenance, drill), network (connect, shell, flows), demo (demo ...), export
(export cloudformation, policy), local (local ...); the options they share and the resolving of
what a command acts on are in _common. This module holds the ``awslab`` group, which the families'
commands are added to, and ``main``, the console script's entry point.

Heavy imports (boto3, moto, awslab.commands) happen inside the commands, so ``awslab --help``
imports only Click, awslab.errors and these declarations, and starts quickly.
Exit codes: 0 success, 1 an operation failed, 2 bad input (nothing created), 130 interrupted.
"""

from __future__ import annotations

import os
import sys

import click

from awslab import __version__
from awslab.cli import classes, demo, diagram, export, lifecycle, local, network, recovery, report, stacks
from awslab.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    AwslabError,
)
from awslab.home import process


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


for command in (lifecycle.up, lifecycle.plan, lifecycle.status, lifecycle.verify, diagram.diagram, report.report, lifecycle.down,
                stacks.stacks_cmd, stacks.sweep, export.export, export.policy, export.engines, classes.class_group,
                recovery.snapshot, recovery.snapshots, recovery.restore, recovery.failover, recovery.promote,
                recovery.maintenance, recovery.drill, network.connect, network.shell, network.flows,
                demo.demo, local.local):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and map errors to one clear line and an exit code."""
    process.collect_less_often()
    process.skip_collection_at_exit()
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
