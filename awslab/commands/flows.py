"""`awslab flows`: the stack's VPC Flow Logs records, as the local AWS's relay wrote them.

Every new connection to an RDS or ElastiCache endpoint of the local AWS is decided by the VPC
(local/network.py) and becomes one record in VPC Flow Logs' version 2 format, with the reason
beside each REJECT in the words of verify's path checks. Real AWS delivers flow logs to
CloudWatch Logs or S3 only where you created them: there this command says so.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from datetime import datetime, timezone

from awslab.commands._common import new_run
from awslab.commands.stacks import parse_duration
from awslab.engine.context import Context
from awslab.engine.discovery import discover
from awslab.errors import OperationError, UsageError
from awslab.local.network import V2_FIELDS, v2_line

FLOWS_PATH = "/awslab/flows"   # also in local/server.py


def flows(ctx: Context, stack: str, *, rejected: bool, since: str | None) -> dict:
    """{"vpc", "since", "records"}: the stack's flow records, oldest first."""
    start = time.time() - parse_duration(since, "--since").total_seconds() if since else 0.0
    if not ctx.is_local and not (ctx.endpoint_url or "").startswith("http://127.0.0.1"):
        raise UsageError("flow records are kept by the local AWS only",
                         "on AWS: aws ec2 create-flow-logs --resource-type VPC ... then read them in CloudWatch Logs")
    run = new_run(ctx, stack)
    vpc = discover(run).get("network.vpc")
    if vpc is None:
        raise OperationError(f"stack {stack} has no VPC: no flow to show", "run `awslab up` first")
    try:
        records = vpc_records(ctx, vpc.id, start, "REJECT" if rejected else None)
    except (OSError, ValueError) as exc:
        raise OperationError(f"could not read the local AWS's flow records: {exc}") from None
    if not records:
        what = "rejected connection" if rejected else "connection"
        raise UsageError(f"no {what} to or from {vpc.id} (stack {stack})"
                         + (f" in the last {since}" if since else ""),
                         "connect first (`awslab connect db`), or widen --since" if since else "connect first (`awslab connect db`)")
    return {"vpc": vpc.id, "since": datetime.fromtimestamp(start, timezone.utc).isoformat() if since else None,
            "records": records}


def vpc_records(ctx: Context, vpc_id: str, since: float = 0.0, action: str | None = None) -> list[dict]:
    """The local AWS's flow records of one VPC, oldest first (OSError/ValueError if unreadable)."""
    query = {"since": f"{since:.0f}", "vpc": vpc_id, **({"action": action} if action else {})}
    url = f"{ctx.endpoint_url}{FLOWS_PATH}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read()).get("flows", [])


def observed(ctx: Context, found: dict) -> list[dict]:
    """What the diagram and the report draw beside verify's verdicts: the stack's flow records on
    the local AWS; none elsewhere (AWS keeps flow logs only where you made them) or if unreadable."""
    vpc = found.get("network.vpc")
    if vpc is None or not ctx.is_local:
        return []
    try:
        return vpc_records(ctx, vpc.id)
    except (OSError, ValueError):
        return []


def lines(records: list[dict]) -> list[str]:
    """Each record in Flow Logs' default format, a REJECT followed by its reason."""
    out = [" ".join(V2_FIELDS)]
    for r in records:
        out.append(v2_line(r))
        if r.get("action") == "REJECT" and r.get("reason"):
            out.append(f"  # {r.get('endpoint', '')}: {r['reason']}")
    return out


def print_flows(stack: str, got: dict, output: str) -> None:
    """The records on stdout: JSON with the stack's name, or one line each (and each REJECT's reason)."""
    import click

    if output == "json":
        from awslab.ui import emit_json

        emit_json({"stack": stack, **got})
        return
    for line in lines(got["records"]):
        click.echo(line)
