"""What the commands share: the Context a command acts in (its stack from the flags, the
environment or the last one used), the run a command starts, asking before a real account
changes, the one error line per failed step, the order resources are listed in, and what
snapshots cost."""

from __future__ import annotations

import os
import sys
from typing import Any

from botocore.exceptions import ClientError, EndpointConnectionError

from awslab import ui
from awslab.aws.kinds import KINDS
from awslab.engine.context import Context
from awslab.engine.executor import Outcome
from awslab.spec.model import Found
from awslab.engine.run import Run
from awslab.engine.waiting import error_code, error_message
from awslab.errors import OperationError, UsageError
from awslab.spec import pricing
from awslab.spec.tags import STACK_NAME_RULE, valid_stack_name
from awslab.spec.topology import EDGES

ORDER = {k: i for i, k in enumerate(EDGES)}


def check_stack_name(stack: str) -> str:
    if not valid_stack_name(stack):
        raise UsageError(f"invalid stack name '{stack}'", f"use {STACK_NAME_RULE}")
    return stack


def resolve_context(opts: dict, *, lab_name: str | None = None, need_stack: bool = True, start_local: bool = True,
                    command: str = "") -> Context:
    """The Context of a command whose target options are ``opts`` (as the command line parsed
    them): the stack is --name, else AWSLAB_STACK, else ``lab_name`` (`up`/`plan` of a lab), else
    the last stack used (refused once `down` removed it, except by ``command`` `down` itself)."""
    from awslab.home import state
    from awslab.engine.context import resolve
    from awslab.local.manager import THIS_HOME

    remembered = state.load_current_context()
    stack = opts.get("stack") or os.environ.get("AWSLAB_STACK") or lab_name or remembered.get("stack")
    if need_stack and not stack:
        raise UsageError("no stack given and none remembered",
                         "pass --name STACK (`awslab stacks` lists them), or run `awslab up LAB` first")
    named = opts.get("stack") or os.environ.get("AWSLAB_STACK") or lab_name
    if (need_stack and not named and stack and remembered.get("removed") == stack
            and command != "down"):
        raise UsageError(f"the last stack used, {stack}, was removed by `awslab down`",
                         f"pass --name STACK (`awslab stacks` lists them), or `awslab up {remembered.get('lab') or 'LAB'}` "
                         "to build it again")
    if stack:
        check_stack_name(stack)
    if lab_name and remembered.get("stack") != stack:
        # `up`/`plan` of another stack start from the defaults (local), not the last stack's account.
        remembered = {}
    if opts.get("profile") is None and os.environ.get("AWS_PROFILE") and (opts.get("target") or remembered.get("target")) == "aws":
        opts["profile"] = os.environ["AWS_PROFILE"]
    ctx = resolve(opts.get("target"), opts.get("region"), opts.get("profile"), opts.get("endpoint_url"),
                  stack=stack, yes=opts.get("yes", False), remembered=remembered, start_local=start_local,
                  role_arn=opts.get("assume_role"), local=THIS_HOME)
    return ctx


def order_key(key: str) -> tuple[int, str]:
    """Resources in the dependency table's order (replicas with db.replica)."""
    return (ORDER.get("db.replica" if key.startswith("db.replica.") else key, len(ORDER)), key)


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        op = exc.operation_name
        return f"AWS refused {op}: {error_code(exc)}: {error_message(exc)}"
    return getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"


def progress_run(ctx: Context, stack: str, lab_name: str, progress: ui.Progress, **options: Any) -> Run:
    """A run whose events go to the progress lines."""
    return Run(ctx=ctx, stack=stack, lab_name=lab_name, on_event=progress, options=options, kinds=KINDS)


def discovered(ctx: Context, stack: str, progress: ui.Progress, nothing_to: str) -> tuple[Run, dict[str, Found]]:
    """A progress run and what discovery finds of ``stack``; none of it is bad input (exit 2):
    ``nothing to <nothing_to>``."""
    from awslab.engine.discovery import discover

    run = progress_run(ctx, stack, "", progress)
    found = discover(run)
    if not found:
        raise UsageError(f"stack {stack} has no resources on {ctx.target} ({ctx.region}): nothing to {nothing_to}",
                         "`awslab stacks` lists the stacks here; `awslab up LAB` builds one")
    return run, found


def new_run(ctx: Context, stack: str) -> Run:
    """A run for commands that only read and connect (connect, demo): no progress lines."""
    return Run(ctx=ctx, stack=stack, lab_name="", kinds=KINDS)


def confirm_real_account(ctx: Context, what: str, lines: list[str]) -> None:
    """On a real account, say where and what, and ask (unless --yes). Without a terminal, refuse."""
    if ctx.is_local:
        return
    ident = ctx.client("sts").get_caller_identity()
    ui.err(f"AWS account {ident['Account']} ({ident['Arn']}), region {ctx.region}:")
    for line in lines:
        ui.err(f"  {line}")
    if ctx.yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"not confirmed: {what} needs --yes when there is no terminal to ask on",
                         "rerun with --yes once you have checked the account and region above")
    import click

    if not click.confirm(f"{what}?", default=False, err=True):
        raise UsageError("cancelled; nothing was changed")


def raise_if_failed(outcome: Outcome, verb: str, run: Run) -> None:
    """One error line (and hint) per failed step, then what the stack has now."""
    if outcome.ok:
        return
    for key, exc in outcome.failed.items():
        ui.err(f"error: {key}: {describe_error(exc)}")
        hint = getattr(exc, "hint", None)
        if hint:
            ui.err(f"  hint: {hint}")
    remaining = ", ".join(sorted(run.found, key=order_key)) or "nothing"
    hint = "fix the cause above, then rerun the same command"
    if run.ctx.is_local and any(isinstance(e, EndpointConnectionError) for e in outcome.failed.values()):
        hint = ("the local AWS stopped answering (killed, or out of memory?): rerun the same command; it starts the "
                "local AWS again with its saved state and completes the stack")
    raise OperationError(f"{verb} did not finish: {len(outcome.failed)} failed, {len(outcome.blocked)} not started; "
                         f"the stack now has: {remaining}", hint)


def lab_cost(lab, ctx: Context) -> list[pricing.Line]:
    """What ``lab`` costs per hour once up in the context's region: each resource it wants priced
    by its kind's handler."""
    return pricing.estimate(lab, ctx.region, KINDS, ctx.stack or "lab")


def snapshot_cost(snaps: list[Found], region: str) -> list[pricing.Line]:
    """What keeping these snapshots costs, each priced by its kind's handler in its own region
    (a copy in another region at that region's price): hourly lines, ``pricing.monthly`` adds them up."""
    return [line for s in snaps if s.kind in KINDS and KINDS.can(s.kind, "cost") for line in KINDS[s.kind].priced(s, region)]


def snapshots_monthly(snaps: list[Found], region: str) -> str:
    """What keeping these snapshots costs per month, in words ('about $1.90/month', or what is not priced where)."""
    return pricing.say(snapshot_cost(snaps, region), "", per="month", about=True)


def child_command(ctx: Context, *argv: str) -> list[str]:
    """An awslab command line on the same target, region and credentials as ``ctx`` (class and
    sweep run each stack's `up`/`verify`/`down` as a process of its own: its output, its failure,
    its lock)."""
    return [sys.executable, "-m", "awslab", *child_args(ctx, *argv)]


def child_args(ctx: Context, *argv: str) -> list[str]:
    """``child_command``'s arguments after ``python -m awslab``."""
    args = [*argv, "--target", ctx.target, "--region", ctx.region]
    if ctx.profile:
        args += ["--profile", ctx.profile]
    if ctx.endpoint_url and not ctx.is_local:
        args += ["--endpoint-url", ctx.endpoint_url]
    if ctx.role_arn:
        args += ["--assume-role", ctx.role_arn]
    return args


def local_profile(ctx: Context) -> dict:
    """The local AWS's latency profile, what produced a command's figures (durations, round trips):
    {"profile", "time_scale", "explicit", "cross_az_round_trip_ms", "words"}."""
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(f"{ctx.endpoint_url}/awslab/health", timeout=5) as resp:
            got = json.loads(resp.read()).get("latency") or {}
    except (OSError, ValueError):
        got = {}
    from awslab.local.latency import Latency

    explicit = got.get("explicit") or {}
    profile, scale = got.get("profile", "instant"), got.get("time_scale", 1.0)
    rtt = Latency(profile, scale, explicit).round_trip("net.cross-az")
    words = f"the local AWS's `{profile}` latency profile" + (f" at time scale {scale:g}" if profile != "instant" else "")
    if explicit:
        words += f" with {', '.join(f'{k}={v:g}' for k, v in sorted(explicit.items()))}"
    return {"profile": profile, "time_scale": scale, "explicit": explicit, "cross_az_round_trip_ms": round(rtt * 1000, 3),
            "words": words}


def took(ctx: Context, seconds: float, transition: str | None = None) -> str:
    """A measured duration with what produced it: on the local AWS its latency profile, and what
    AWS takes for ``transition`` (the realistic profile's figure, local/latency.py); on AWS the
    bare figure."""
    text = f"{seconds:.1f}s"
    if not ctx.is_local:
        return text
    text += f" (on {local_profile(ctx)['words']}"
    if transition is not None:
        from awslab.local.latency import REALISTIC

        typical = sum(s for _, s in REALISTIC[transition])
        text += f"; AWS takes about {typical / 60:.0f} min"
    return text + ")"
