"""`awslab shell [INSTANCE]`: a shell on the stack's EC2 host, what `aws ssm start-session` gives.

On the local AWS the shell runs on this machine *as the instance* (local/instances.py): in its
own directory, with the lab's clients first on the PATH, so `psql -h <the DB's endpoint>` and
`redis-cli --tls -h <the cache's endpoint>` work as written on AWS and every connection comes
from the instance (its security groups and subnet decide). On AWS it runs `aws ssm start-session`
(the AWS CLI and the Session Manager plugin must be installed; it says so when they are not).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request

from awslab.commands._common import new_run
from awslab.engine.context import Context
from awslab.engine.discovery import discover
from awslab.errors import OperationError, UsageError

READY_PATH = "/awslab/instances/ready"   # also in local/server.py
PLUGIN_HINT = ("install the AWS CLI v2 and the Session Manager plugin: "
               "https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-working-with-install-plugin.html")


def target_instance(ctx: Context, stack: str, instance: str | None) -> tuple[str, dict]:
    """(instance id, its describe record): the one asked for, else the stack's host; refused when
    it does not exist or is not running (what SSM refuses too)."""
    run = new_run(ctx, stack)
    if instance is None:
        host = discover(run).get("host.instance")
        if host is None:
            raise UsageError(f"stack {stack} has no EC2 host to open a shell on", "run `awslab up` first")
        instance = host.id
    try:
        got = run.client("ec2").describe_instances(InstanceIds=[instance])
        record = got["Reservations"][0]["Instances"][0]
    except Exception as exc:  # noqa: BLE001 - InvalidInstanceID.NotFound / Malformed
        raise UsageError(f"no EC2 instance {instance} in {ctx.region}", "`awslab status` names the stack's host") from exc
    state = record.get("State", {}).get("Name")
    if state != "running":
        raise OperationError(f"{instance} is {state}: SSM reaches running instances only (TargetNotConnected)",
                             "start it: aws ec2 start-instances --instance-ids " + instance)
    return instance, record


def shell(ctx: Context, stack: str, instance: str | None, command: str | None) -> int:
    iid, record = target_instance(ctx, stack, instance)
    if not ctx.is_local:
        if not shutil.which("aws") or not shutil.which("session-manager-plugin"):
            raise UsageError("`awslab shell` on AWS opens an SSM session: the AWS CLI or its Session Manager "
                             "plugin is not installed", PLUGIN_HINT)
        argv = ["aws", "ssm", "start-session", "--target", iid, "--region", ctx.region]
        if ctx.profile:
            argv += ["--profile", ctx.profile]
        return subprocess.call(argv)
    from awslab.local import manager
    from awslab.local.instances import SESSION_RC, environment

    server, _ = manager.ensure_running()
    req = manager.signed_request(f"{server.endpoint_url}{READY_PATH}?{urllib.parse.urlencode({'id': iid})}", "POST", b"",
                                 {"Content-Type": "text/plain"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            home = json.loads(resp.read())["home"]
    except (OSError, ValueError, KeyError) as exc:
        raise OperationError(f"the local AWS could not open {iid}: {exc}") from None
    from pathlib import Path

    env = environment(Path(home), iid, ctx.region)
    address = record.get("PrivateIpAddress", "")
    name = f"ip-{address.replace('.', '-')}" if address else iid
    env["PS1"] = env["AWSLAB_PS1"] = f"[ec2-user@{name} ({iid}) \\W]$ "
    if command is not None:
        from awslab.local.shim import dev_tcp

        return subprocess.call(["bash", "-c", dev_tcp(command, Path(home))], cwd=home, env=env)
    print(f"Starting session on {iid} (the local AWS runs it on this machine as the instance; exit to end it).",
          flush=True)
    # Its rcfile moves a typed /dev/tcp/<endpoint name>/<port> to the instance's view (instances.py).
    code = subprocess.call(["bash", "--rcfile", str(Path(home) / SESSION_RC), "-i"], cwd=home, env=env)
    print(f"Exiting session on {iid}.", flush=True)
    return code
