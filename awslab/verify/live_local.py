"""verify's live checks on the local target, from the stack's host as on AWS.

The host's own connections decide a live check: verify sends the host the script it runs there on
AWS (verify/ssm.py ``live_script``: bash's ``/dev/tcp`` to each endpoint's AWS name), one SendCommand
per verify. The local AWS's SSM Run Command really runs it on the instance (local/instances.py),
whose bash and clients resolve the endpoints' names to the instance's view of them, where the VPC
decides (local/network.py): a revoked rule makes the host's connect time out, and the check FAILs
with the SSM command's id in its evidence. No connection from the host, no PASS.

While the host's command runs, the deeper checks connect from the host's view in Python (the host's
listeners, so the same VPC decides): a login over TLS, verified, and a connection without TLS
refused where TLS is required, a row written on the primary and read back on each replica with the
lag, a key SET on the cache and read on its replica, a cluster's reader endpoint refusing a write
(``live_mysql``, ``live_cluster`` for those engines). Their findings are added to the host's
evidence; a FAIL of theirs fails the check too.

The script's logins (secrets read by the AWS CLI on the host, then psql / mysql / redis-cli) are left
out here (``HOST_LOGINS``): they cost ~1.2 s of CPU per verify (the AWS CLI's start, twice), against
~0.1 s for the TCP connects, and the deeper checks log in through the same path anyway. A learner's
own ``aws ssm send-command`` runs them as written (tests/local/test_network.py proves the whole
script there).
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from awslab.engine.run import Run
from awslab.spec.lab import Lab
from awslab.verify import live_cluster, live_mysql, ssm
from awslab.verify.checks import World
from awslab.verify.live import (REPLICATION_BOUND_S, cache_token, clients_missing, db_credentials, endpoint_map,
                                has_table, host_of, ms_since, pg_connect, plain_refused, redis_connect, replica_row,
                                resolve, tls_verdict, tls_words, why_failed)
from awslab.verify.results import FAIL, PASS, SKIP, WARN, Result

HOST_LOGINS = False   # the host's script logs in too (True: as on AWS, ~1.2 s of CPU more per verify)


def check_local(run: Run, w: World, lab: Lab) -> list[Result]:
    """The stack's live checks: the host's script through SSM Run Command (on the endpoints that have
    an engine behind them) and, at the same time, the deeper checks from the host's view."""
    missing = clients_missing()
    mapping = endpoint_map(run, host_of(w.found))
    if missing or mapping is None:
        reason = missing or "this endpoint keeps no map of real engines (not awslab's local AWS)"
        return [Result("live.host-to-db", SKIP, reason), Result("live.host-to-cache", SKIP, reason)]
    # An endpoint with no engine (none yet, or control plane only) says so in the deeper checks' words.
    targets = [t for t in ssm.live_targets(w, lab) if resolve(mapping, t.host, t.port).usable]
    if not targets or w.raw("host.instance") is None:
        return deeper_checks(run, w, lab, mapping)
    with ThreadPoolExecutor(1, thread_name_prefix="verify-host") as pool:
        on_host = pool.submit(ssm.run_live, run, w, lab, targets, HOST_LOGINS)
        deeper = deeper_checks(run, w, lab, mapping)
        return merged(on_host.result(), deeper)


def merged(on_host: list[Result], deeper: list[Result]) -> list[Result]:
    """One result per check: the host's connection decides, the deeper check adds its evidence (and
    FAILs a check whose host connection passed when it finds more wrong, e.g. TLS not required)."""
    host = {r.id: r for r in on_host}
    out = []
    for r in deeper:
        h = host.pop(r.id, None)
        if h is None:
            out.append(r)
        elif h.status == PASS and r.status == FAIL:
            out.append(Result(r.id, FAIL, f"{r.detail}; from the host: {h.detail}", r.hint))
        elif h.status == PASS:
            out.append(Result(r.id, PASS, f"from the host: {h.detail}; " + r.detail if r.status == PASS else h.detail))
        else:   # FAIL (no connection from the host) or WARN (SSM refused the command)
            hint = h.hint if h.status == WARN or not r.hint else f"{r.hint}; {h.hint}" if h.hint else r.hint
            out.append(Result(r.id, h.status, f"from the host: {h.detail}; from the host's view: {r.detail}", hint))
    return out + list(host.values())


def deeper_checks(run: Run, w: World, lab: Lab, mapping: dict) -> list[Result]:
    """Connect from the host's view to the engines the local AWS runs behind the stack's endpoints
    (the host's security groups and subnet decide, as on AWS)."""
    out: list[Result] = []
    db = w.raw("db.primary")
    if db is None and w.raw("db.cluster") is not None:
        # Its members' engines run only for postgres: a mysql cluster's endpoints say "control plane only".
        out += [Result(*row) for row in live_cluster.check_cluster(run, w.raw("db.cluster"), mapping,
                                                                    lab.database.database_name)]
    elif db is None:
        out.append(Result("live.host-to-db", SKIP, "needs the primary DB (db.primary)"))
    elif lab.database.engine not in ("postgres", "mysql", "mariadb"):
        # Every live check of the database says why it did not run: the primary's and each replica's.
        why = f"the local AWS runs no real engine for {lab.database.engine}: control plane only"
        out.append(Result("live.host-to-db", SKIP, why))
        out += [Result(f"live.{k}", SKIP, why) for k, _ in w.dbs() if k.startswith("db.replica.")]
    else:
        replicas = [(k, raw) for k, raw in w.dbs() if k.startswith("db.replica.")]
        checker = check_db if lab.database.engine == "postgres" else live_mysql.check_db
        out += [Result(*row) for row in checker(run, db, replicas, mapping, lab.database.database_name)]
    group, token = w.raw("cache.group"), w.found.get("cache.auth-token")
    if group is None:
        out.append(Result("live.host-to-cache", SKIP, "needs the cache (cache.group)"))
    else:
        out += [Result(*row) for row in check_cache(run, group, token.id if token else None, mapping)]
    return out


def check_db(run: Run, primary: dict, replicas: list[tuple[str, dict]], mapping, database: str) -> list[tuple]:
    """(id, status, detail, hint) for the primary and each replica: SELECT 1, then a marker row
    written on the primary and read back on each replica, with the lag measured."""
    ep = primary.get("Endpoint") or {}
    addr = resolve(mapping, ep.get("Address", ""), ep.get("Port", 0))
    if not addr.usable:
        status = FAIL if addr.status == "failed" else SKIP
        out = [("live.host-to-db", status, f"{addr.endpoint}: {addr.reason or addr.status}", None)]
        return out + [(f"live.{key}", SKIP, "needs the primary's engine", None) for key, _ in replicas]
    user, password = db_credentials(run, primary)
    t0 = time.perf_counter()
    try:
        conn = pg_connect(addr, user, password, database)
        (one,) = conn.run("SELECT 1")[0]
    except Exception as exc:  # noqa: BLE001 - any failure to log in is the finding
        why, hint = why_failed(exc, "see `awslab local status` and the server log")
        return [("live.host-to-db", FAIL, f"{addr.endpoint} (127.0.0.1:{addr.port}): login or SELECT 1 failed: {why}", hint),
                *[(f"live.{key}", SKIP, "needs a session on the primary (to write the row it reads back)", None)
                  for key, _ in replicas]]
    out = [("live.host-to-db", PASS if one == 1 else FAIL,
            f"{addr.endpoint} -> 127.0.0.1:{addr.port}: login + SELECT 1{tls_words(addr)} in {ms_since(t0)}", None)]
    out[0] = tls_verdict(out[0], addr, lambda: pg_connect(addr, user, password, database, plain=True).close())
    try:
        marker = uuid.uuid4().hex
        conn.run("CREATE TABLE IF NOT EXISTS awslab_verify (marker text PRIMARY KEY, written timestamptz DEFAULT now())")
        conn.run("INSERT INTO awslab_verify (marker) VALUES (:m)", m=marker)
        written = time.perf_counter()
        for key, replica in replicas:
            out.append(_replica_row(key, replica, mapping, user, password, database, marker, written))
        conn.run("DELETE FROM awslab_verify WHERE written < now() - interval '1 hour'")
    finally:
        conn.close()
    return out


def _replica_row(key, replica, mapping, user, password, database, marker, written) -> tuple:
    def reported(conn, addr) -> str:
        from awslab.local.engines.postgres import REPLICA_LAG_SQL

        (metric,) = conn.run(REPLICA_LAG_SQL)[0]
        return f"ReplicaLag as RDS computes it (now - last replayed transaction): {float(metric or 0):.3f} s"
    return replica_row(key, replica, mapping, lambda addr: pg_connect(addr, user, password, database),
                       lambda conn: bool(has_table(conn) and conn.run("SELECT 1 FROM awslab_verify WHERE marker = :m",
                                                                      m=marker)),
                       reported, written, doing="streaming")


def check_cache(run: Run, group: dict, token_secret: str | None, mapping) -> list[tuple]:
    """AUTH + PING on the primary; SET there and GET on the replica, with the lag measured."""
    ng = (group.get("NodeGroups") or [{}])[0]
    primary_ep, reader_ep = ng.get("PrimaryEndpoint") or {}, ng.get("ReaderEndpoint") or {}
    if not reader_ep:   # a replica member's own endpoint will do
        replicas = [m for m in ng.get("NodeGroupMembers", []) if m.get("CurrentRole") == "replica"]
        reader_ep = (replicas[0].get("ReadEndpoint") or {}) if replicas else {}
    addr = resolve(mapping, primary_ep.get("Address", ""), primary_ep.get("Port", 0))
    if not addr.usable or not token_secret:
        why = addr.reason or addr.status if not addr.usable else "no AUTH token secret"
        return [("live.host-to-cache", FAIL if addr.status == "failed" else SKIP, f"{addr.endpoint}: {why}", None),
                ("live.cache-replica", SKIP, "needs the primary's engine", None)]
    token = cache_token(run, token_secret)
    import redis

    t0 = time.perf_counter()
    client = redis_connect(addr, token)
    try:
        pong = client.ping()
    except redis.exceptions.RedisError as exc:
        why, hint = why_failed(exc)
        return [("live.host-to-cache", FAIL, f"{addr.endpoint}: AUTH + PING failed: {why}", hint),
                ("live.cache-replica", SKIP, "needs the primary's engine", None)]
    out = [("live.host-to-cache", PASS if pong else FAIL,
            f"{addr.endpoint} -> 127.0.0.1:{addr.port}: AUTH + PING{tls_words(addr)} in {ms_since(t0)}", None)]
    if addr.tls == "required":
        if plain_refused(addr, lambda: redis_connect(addr, token, plain=True, socket_timeout=2).ping()):
            out[0] = (*out[0][:2], out[0][2] + "; a plain connection was refused (in-transit encryption)", None)
        else:
            out[0] = ("live.host-to-cache", FAIL, f"{addr.endpoint}: takes a connection without TLS although the "
                      "group has in-transit encryption", "see the server log")
    reader = resolve(mapping, reader_ep.get("Address", ""), reader_ep.get("Port", 0))
    if not reader.usable:
        out.append(("live.cache-replica", SKIP, f"{reader.endpoint}: {reader.reason or reader.status}", None))
        return out
    marker = uuid.uuid4().hex
    client.set(f"awslab:verify:{marker}", "1", ex=60)
    written = time.perf_counter()
    replica = redis_connect(reader, token)
    try:
        while replica.get(f"awslab:verify:{marker}") is None:
            if time.perf_counter() - written > REPLICATION_BOUND_S:
                out.append(("live.cache-replica", FAIL, f"a key SET on the primary was not on the replica after "
                            f"{REPLICATION_BOUND_S:.0f} s", "see the server log"))
                return out
            time.sleep(0.005)
        out.append(("live.cache-replica", PASS, f"{reader.endpoint} -> 127.0.0.1:{reader.port}: a key SET on the primary "
                    f"was readable here after {(time.perf_counter() - written) * 1000:.1f} ms (replication lag)", None))
    finally:
        replica.close()
        client.close()
    return out
