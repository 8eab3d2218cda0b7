"""verify's live checks on real AWS: a script run on the host through SSM Run Command connects to
the DB and the cache (TCP, then SELECT 1 and AUTH + PING over TLS where the clients are
installed), reading the two secrets with the host's own role, so no secret travels in the
command or its history. The command is one executor step (kind ``host-command`` in aws/host.py),
waited for like any other; its output is parsed into results; no connection, no PASS."""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import ClientError

from awslab.engine.executor import execute
from awslab.engine.plan import plan_host_command
from awslab.engine.run import Run
from awslab.spec.lab import Lab
from awslab.verify.checks import World
from awslab.verify.results import FAIL, PASS, SKIP, WARN, Result


@dataclass(frozen=True)
class LiveTarget:
    name: str                # "db" or "cache"
    host: str
    port: int
    secret_arn: str | None   # read on the host itself; only the ARN travels in the command
    engine: str = "postgres"
    user: str = ""
    database: str = ""


def live_script(targets: list[LiveTarget], region: str, logins: bool = True) -> str:
    """A shell script for the host: per target a TCP connect, then (``logins``) a login (SELECT 1 /
    AUTH + PING over TLS) where the client and the AWS CLI are installed. Secrets are fetched on the
    host with its own role and kept in environment variables (never on a command line, never
    printed). The targets are checked at the same time (each in a subshell: the AWS CLI's start
    dominates a login). Each step prints one line ``AWSLAB <name> <step> OK <ms> | FAIL | NOCLIENT``."""
    lines = ["#!/bin/bash", "ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }"]
    if logins:
        lines += [f"secret() {{ aws --region {region} secretsmanager get-secret-value --secret-id \"$1\" --query SecretString --output text; }}",
                  "has() { command -v \"$1\" >/dev/null && command -v aws >/dev/null; }"]
    for t in targets:
        lines.append("(")
        lines.append(f"s=$(date +%s%N); if timeout 5 bash -c '</dev/tcp/{t.host}/{t.port}' 2>/dev/null; "
                     f"then echo \"AWSLAB {t.name} tcp OK $(ms $s)\"; else echo \"AWSLAB {t.name} tcp FAIL\"; fi")
        if logins:
            lines.append(_login_line(t))
        lines.append(") &")
    lines.append("wait")
    return "\n".join(lines) + "\n"


def _login_line(t: LiveTarget) -> str:
    """The script's login to ``t`` (a line of bash): the secret read on the host, then its client."""
    if t.name in ("db", "reader") and t.engine == "postgres":
        # A cluster's reader endpoint must reach a standby: pg_is_in_recovery() is true there.
        sql, want = ("SELECT pg_is_in_recovery()", "t") if t.name == "reader" else ("SELECT 1", "1")
        return (
            "if has psql; then "
            f"export PGPASSWORD=\"$(secret '{t.secret_arn}' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"password\"])')\"; "
            f"s=$(date +%s%N); r=$(psql \"host={t.host} port={t.port} user={t.user} dbname={t.database} sslmode=require connect_timeout=5\" -tAc '{sql}' 2>/dev/null); "
            f"unset PGPASSWORD; [ \"$r\" = {want} ] && echo \"AWSLAB {t.name} login OK $(ms $s)\" || echo \"AWSLAB {t.name} login FAIL\"; "
            f"else echo \"AWSLAB {t.name} login NOCLIENT\"; fi")
    if t.name == "db":
        return (
            "if has mysql; then "
            f"export MYSQL_PWD=\"$(secret '{t.secret_arn}' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"password\"])')\"; "
            f"s=$(date +%s%N); r=$(mysql -h {t.host} -P {t.port} -u {t.user} --ssl -N -e 'SELECT 1' 2>/dev/null); "
            f"unset MYSQL_PWD; [ \"$r\" = 1 ] && echo \"AWSLAB db login OK $(ms $s)\" || echo \"AWSLAB db login FAIL\"; "
            "else echo \"AWSLAB db login NOCLIENT\"; fi")
    return (
        "cli=$(command -v redis6-cli || command -v redis-cli || command -v valkey-cli); if [ -n \"$cli\" ] && has aws; then "
        f"export REDISCLI_AUTH=\"$(secret '{t.secret_arn}')\"; s=$(date +%s%N); "
        f"r=$($cli --tls -h {t.host} -p {t.port} PING 2>/dev/null); unset REDISCLI_AUTH; "
        "[ \"$r\" = PONG ] && echo \"AWSLAB cache login OK $(ms $s)\" || echo \"AWSLAB cache login FAIL\"; "
        "else echo \"AWSLAB cache login NOCLIENT\"; fi")


def parse_live(output: str, name: str, login: str, logins: bool = True) -> tuple[str, str]:
    """(status, detail) for one target from the script's output. PASS needs a real connection.
    ``logins`` False: the script tried none (``live_script``'s), the TCP connect decides."""
    steps: dict[str, list[str]] = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "AWSLAB" and parts[1] == name:
            steps[parts[2]] = parts[3:]
    tcp, auth = steps.get("tcp"), steps.get("login")
    if not tcp:
        return FAIL, "no answer from the host's check"
    if tcp[0] != "OK":
        return FAIL, "TCP connect failed or timed out (5 s)"
    detail = f"TCP connect {tcp[1]} ms"
    if not logins:
        return PASS, detail
    if not auth or auth[0] == "NOCLIENT":
        return PASS, f"{detail}; {login} not tried (client not installed on the host)"
    if auth[0] != "OK":
        return FAIL, f"{detail}, but {login} failed"
    return PASS, f"{detail}, {login} {auth[1]} ms"


def live_targets(w: World, lab: Lab) -> list[LiveTarget]:
    """What the host's script connects to: the primary DB (or a Multi-AZ DB cluster's writer and
    reader endpoints) and the cache's primary endpoint, those that have an address yet."""
    db, group, token = w.raw("db.primary"), w.raw("cache.group"), w.found.get("cache.auth-token")
    cluster = w.raw("db.cluster") if db is None else None
    targets = []
    if db and (db.get("Endpoint") or {}).get("Address"):
        targets.append(LiveTarget("db", db["Endpoint"]["Address"], lab.database.port,
                                  (db.get("MasterUserSecret") or {}).get("SecretArn"), lab.database.engine,
                                  lab.database.master_username, lab.database.database_name))
    elif cluster and cluster.get("Endpoint"):   # a Multi-AZ DB cluster: its writer and its reader endpoint
        for name, address in (("db", cluster["Endpoint"]), ("reader", cluster.get("ReaderEndpoint"))):
            targets.append(LiveTarget(name, address, lab.database.port, (cluster.get("MasterUserSecret") or {}).get("SecretArn"),
                                      lab.database.engine, lab.database.master_username, lab.database.database_name))
    if group:
        ep = ((group.get("NodeGroups") or [{}])[0].get("PrimaryEndpoint") or {})
        if ep.get("Address"):
            targets.append(LiveTarget("cache", ep["Address"], lab.cache.port, token.get("arn") if token else None))
    return targets


PROBES = {"db": ("live.host-to-db", "SELECT 1"), "reader": ("live.db-reader", "SELECT pg_is_in_recovery() (true: a standby)"),
          "cache": ("live.host-to-cache", "AUTH + PING over TLS")}


def run_live(run: Run, w: World, lab: Lab, targets: list[LiveTarget] | None = None,
             logins: bool = True) -> list[Result]:
    """Connect from the host through SSM Run Command (one executor step); no secret travels in the
    command. ``targets``: only these (the local target's, those with an engine behind them), one
    result each; by default the stack's, and the DB's and the cache's results whatever is missing.
    ``logins``: ``live_script``'s."""
    inst = w.raw("host.instance")
    chosen = live_targets(w, lab) if targets is None else targets
    if inst is None or not chosen:
        return [Result("live.host-to-db", SKIP, "needs the host and the database"),
                Result("live.host-to-cache", SKIP, "needs the host and the cache")]
    names = [t.name for t in chosen] if targets is not None else \
        ["db", *(["reader"] if any(t.name == "reader" for t in chosen) else []), "cache"]
    plan = plan_host_command(w.stack, inst["InstanceId"], live_script(chosen, w.region, logins),
                             f"awslab verify {w.stack}")
    outcome = execute(plan, run)
    if outcome.failed:
        exc = next(iter(outcome.failed.values()))
        if not isinstance(exc, ClientError):
            raise exc
        # A refusal (permissions, agent offline) is a WARN with AWS's reason.
        if exc.operation_name == "SendCommand":
            reason, hint = f"SSM Run Command refused: {exc}", "is the SSM agent online? (aws ssm describe-instance-information)"
        else:
            reason, hint = f"SSM refused to return the result: {exc}", "check the permissions for ssm:GetCommandInvocation"
        return [Result(PROBES[name][0], WARN, reason, hint) for name in names]
    done = run.found[plan.steps[0].key]
    cmd, status, output = done.id, done.state, done.get("output")
    out = []
    for name in names:
        cid, login = PROBES[name]
        verdict, detail = parse_live(output, name, login, logins)
        out.append(Result(cid, verdict, f"{detail} (SSM command {cmd}: {status})",
                          None if verdict == PASS else f"check path.app-to-{'db' if name == 'reader' else name} and the network ACLs; the output is in "
                          f"`aws ssm get-command-invocation --command-id {cmd} --instance-id {inst['InstanceId']}`"))
    return out
