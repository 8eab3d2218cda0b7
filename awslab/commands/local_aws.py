"""`awslab local ...`: the embedded local AWS (a moto server on 127.0.0.1 that awslab manages),
started, stopped, reset, and what it offers: its endpoints, the shell lines for the AWS CLI, its
status. The server itself is awslab/local/; these functions only drive its manager and print.

None of them imports boto3 or botocore, so `awslab local status` and `local env` start quickly.
"""

from __future__ import annotations

import sys

import click

from awslab.errors import OperationError, UsageError


def start(port: int, latency: str | None, time_scale: float | None, engines: bool | None) -> None:
    """Start the local AWS (or report the one running, changing its latency if asked): one line."""
    from awslab.local import latency as lat
    from awslab.local import manager

    if latency is not None:
        try:
            lat.parse(latency)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if time_scale is not None and latency is None:
        latency = "realistic"
    if port:
        check_port_free(port)
    server, started = manager.ensure_running(port, latency, time_scale, engines)
    now = manager.get_latency(server)
    scale = f" x{now['time_scale']:g}" if now["profile"] == "realistic" else ""
    explicit = f" {now['explicit']}" if now["explicit"] else ""
    click.echo(f"local AWS {'started' if started else 'already running'}: {server.endpoint_url} (pid {server.pid}; "
               f"latency {now['profile']}{scale}{explicit})")


def check_port_free(port: int) -> None:
    """Refuse a --port another process holds on 127.0.0.1 (the running local AWS's own is fine)."""
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            from awslab.local import manager

            running = manager.find()
            if running is None or running.port != port:
                raise UsageError(f"port {port} on 127.0.0.1 is already in use", "choose another --port, or omit it for any free port") from None


def stop() -> None:
    """Stop the local AWS, saying whether its state was kept (exit 1 when it was not)."""
    from awslab.local import manager

    stopped = manager.stop()
    failure = manager.unsaved() if stopped else None
    if failure is not None:   # never "kept" when it is not: exit 1, saying what was lost
        raise OperationError(f"local AWS stopped (pid {stopped.pid}), but {manager.unsaved_line(failure)}: "
                             "changes made after that are lost",
                             f"see its log: {manager.local_dir() / 'server.log'}")
    click.echo(f"local AWS stopped (pid {stopped.pid}); its stacks and data are kept for the next start"
               if stopped else "local AWS was not running")


def reset(yes: bool) -> None:
    """Stop the local AWS and delete all it holds, after asking (unless ``yes``; never without a terminal)."""
    from awslab.local import manager

    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("local reset deletes every local stack and its data; refusing without a terminal",
                             "pass --yes to confirm")
        click.confirm(f"Delete every stack, snapshot and database/cache data of the local AWS in {manager.local_dir()}?",
                      abort=True)
    stopped = manager.reset()
    click.echo(f"local AWS reset{f' (stopped pid {stopped.pid})' if stopped else ''}: every local stack and its data "
               "deleted")


def endpoints() -> dict:
    """What the local AWS (started if needed) says of its endpoints: {"engines", "endpoints"}."""
    import json as _json
    import urllib.request

    from awslab.local import manager
    from awslab.local.server import ENDPOINTS_PATH

    server, _ = manager.ensure_running()
    with urllib.request.urlopen(server.endpoint_url + ENDPOINTS_PATH, timeout=10) as resp:
        return _json.loads(resp.read())


def print_endpoints(data: dict, output: str) -> None:
    """Where each endpoint answers on this machine: a table, or JSON."""
    rows = [{"endpoint": name, "local_address": f"{info.get('host')}:{info.get('port')}" if info.get("port") else None,
             "role": info.get("role"), "engine": info.get("engine"), "status": info.get("status"),
             "tls": info.get("tls") or None,
             "tunnel": f"{info.get('host')}:{info['tunnel_port']}" if info.get("tunnel_port") else None}
            for name, info in sorted(data.get("endpoints", {}).items())]
    if output == "json":
        from awslab.ui import emit_json

        emit_json({"engines": data.get("engines"), "endpoints": rows})
        return
    if data.get("engines") != "on":
        click.echo("the local AWS runs without engines (started with --no-engines): no endpoint answers")
        return
    if not rows:
        click.echo("no DB instance or cache node on the local AWS yet")
        return
    from awslab import ui

    click.echo(ui.table(["ENDPOINT", "LOCAL ADDRESS", "ROLE", "ENGINE", "TLS", "STATUS"],
                        [[r["endpoint"], r["local_address"] or "-", r["role"] or "-", r["engine"] or "-",
                          r["tls"] or "-", r["status"] or "-"] for r in rows]))
    if any(r["tunnel"] for r in rows):
        click.echo("\na TLS-only endpoint also has a plain tunnel for clients built without TLS: "
                   "`awslab local endpoints -o json` lists it")


def env() -> None:
    """Print the shell lines that point the AWS CLI at the local AWS (starting it if needed)."""
    import shlex

    from awslab.local import manager
    from awslab.local.auth import PROFILE, PROFILE_FILE

    server, _ = manager.ensure_running()
    from awslab.engine.context import DEFAULT_LOCAL_REGION

    for line in (f"export AWS_ENDPOINT_URL={shlex.quote(server.endpoint_url)}",
                 f"export AWS_SHARED_CREDENTIALS_FILE={shlex.quote(str(manager.local_dir() / PROFILE_FILE))}",
                 f"export AWS_PROFILE={PROFILE}",
                 f"export AWS_REGION={DEFAULT_LOCAL_REGION}",
                 f"export AWS_DEFAULT_REGION={DEFAULT_LOCAL_REGION}",   # what the AWS CLI v1 reads
                 "unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_DEFAULT_PROFILE",
                 '# the AWS CLI v1 sends rds (and sqs) in us-east-1 to AWS itself: add --endpoint-url "$AWS_ENDPOINT_URL"'):
        click.echo(line)


def status():
    """(the running local AWS or None, why its last save failed or None)."""
    from awslab.local import manager

    server = manager.find()
    return server, manager.unsaved() if server else None


def print_status(server, failure: dict | None, output: str) -> None:
    """Whether the local AWS runs, at which endpoint, and whether its last save failed."""
    from awslab.local import manager

    if output == "json":
        from awslab.ui import emit_json

        emit_json({"running": bool(server), "endpoint_url": server.endpoint_url if server else None,
                   "pid": server.pid if server else None, "log": str(server.log) if server else None,
                   "unsaved": failure})
        return
    if server is None:
        click.echo("local AWS is not running (it starts on first use, or with `awslab local start`)")
        return
    click.echo(f"local AWS running: {server.endpoint_url} (pid {server.pid}, log {server.log})")
    if failure is not None:
        click.echo(f"  WARNING: {manager.unsaved_line(failure)}")
    click.echo('  with the AWS CLI: eval "$(awslab local env)" && aws ec2 describe-vpcs')
