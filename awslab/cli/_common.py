"""What every family of commands shares: the target options, the stack's lock, and resolving what
a command acts on (debug logging, the output format, the Context, a LAB argument that is a path).

Click and the standard library only at import time: whatever reaches further is imported inside
the function that needs it, so ``awslab --help`` stays quick.
"""

from __future__ import annotations

import os
import sys

import click

from awslab.errors import UsageError

OUTPUTS = ("text", "json")


def target_options(f):
    """The options every command that talks to AWS takes (after the command name, as people type them)."""
    return _target_options(f, output=True)


def target_options_without_output(f):
    """The target options of a command whose result is not text or JSON (`diagram`: its own
    --format, and -o for the file it writes)."""
    return _target_options(f, output=False)


def _target_options(f, output: bool):
    opts = [
        click.option("--target", type=click.Choice(["local", "aws"]), default=None,
                     help="local (default): the embedded local AWS; aws: your account via the credential chain. [env AWSLAB_TARGET]"),
        click.option("--profile", default=None, help="AWS profile for --target aws. [env AWSLAB_PROFILE, AWS_PROFILE]"),
        click.option("--region", default=None, help="AWS region. [env AWSLAB_REGION, AWS_REGION, AWS_DEFAULT_REGION]"),
        click.option("--endpoint-url", default=None, help="Send AWS calls to this URL (another emulator). [env AWSLAB_ENDPOINT_URL]"),
        click.option("--assume-role", default=None, metavar="ROLE_ARN",
                     help="Act in another account through this IAM role (a student's, to grade it). [env AWSLAB_ASSUME_ROLE]"),
        click.option("--name", "stack", default=None, help="Stack name (default: the lab's name, or the last stack used). [env AWSLAB_STACK]"),
        *([click.option("--output", "-o", type=click.Choice(OUTPUTS), default=None,
                        help="Result format on stdout. [env AWSLAB_OUTPUT]")] if output else []),
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


def one_at_a_time(ctx, command: str, opts: dict):
    """The stack's lock for ``command`` (waits, or with --no-wait refuses, while another holds it)."""
    from awslab.engine.locks import stack_lock

    return stack_lock(ctx.target, ctx.region, ctx.stack, command, wait=not opts.get("no_wait"),
                      say=lambda line: click.echo(f"awslab: {line}", err=True))


def output_format(value: str | None) -> str:
    """--output, else AWSLAB_OUTPUT, else text; refused when it is neither text nor json."""
    value = value or os.environ.get("AWSLAB_OUTPUT") or "text"
    if value not in OUTPUTS:
        raise UsageError(f"unknown output format '{value}'", "use text or json")
    return value


def setup_debug(debug: bool) -> None:
    """--debug (or AWSLAB_DEBUG=1): tracebacks, and awslab's request log on stderr."""
    if debug or os.environ.get("AWSLAB_DEBUG") == "1":
        os.environ["AWSLAB_DEBUG"] = "1"
        import logging

        # awslab's own request log (awslab/engine/context.py): operation and parameter names, never
        # values or bodies, which can carry the AUTH token. botocore's loggers stay quiet for that reason.
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
        logging.getLogger("awslab").setLevel(logging.DEBUG)


def begin(opts: dict, lab=None):
    """What every command on a stack does first: debug logging, the output format, the Context
    (for `up`/`plan` of ``lab``, its stack defaults to the lab's name)."""
    setup_debug(opts["debug"])
    output = output_format(opts["output"])
    lab_name = (opts.get("stack") or os.environ.get("AWSLAB_STACK") or lab.name) if lab is not None else None
    return stack_context(opts, lab_name=lab_name), output


def stack_context(opts: dict, lab_name: str | None = None, need_stack: bool = True, start_local: bool = True):
    """The command's Context (commands/_common.resolve_context: which stack, which account)."""
    from awslab.commands._common import resolve_context

    return resolve_context(opts, lab_name=lab_name, need_stack=need_stack, start_local=start_local,
                           command=click.get_current_context().info_name)


def lab_or_file(lab: str | None, lab_file: str | None) -> tuple[str | None, str | None]:
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


def progress_for(output: str):
    """The progress lines a command's events go to (stderr, whatever the output format)."""
    from awslab.ui import Progress

    return Progress()
