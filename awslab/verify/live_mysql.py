"""Talking to the MySQL family's engines behind the local AWS (MariaDB standing in for MySQL):
verify's live checks of the primary and its replicas, and `awslab connect`'s ``mariadb`` line.

TLS is the server's own here (the relay copies the bytes): a client checks the server's
certificate against the local AWS's CA as ``mariadb --ssl-ca=... --ssl-verify-server-cert`` does,
and a plain session is refused where the instance's parameter group sets
``require_secure_transport``. PyMySQL (pure Python, the engines extra) is the client."""

from __future__ import annotations

import os
import shlex
import shutil
import time
import uuid

from awslab.home.state import state_dir, write_private
from awslab.verify.live import Address, db_credentials, ms_since, replica_row, resolve, why_failed
from awslab.verify.results import FAIL, PASS, SKIP


def my_connect(addr: Address, user: str, password: str, database: str, *, plain: bool = False):
    """A session as ``mariadb --ssl-verify-server-cert`` opens it (``plain``: TLS turned off)."""
    import pymysql

    from awslab.local.tls import client_context

    tls = {"ssl_disabled": True} if plain else {"ssl": client_context(addr.ca)}
    return pymysql.connect(host=addr.host, port=addr.port, user=user, password=password, database=database or None,
                           connect_timeout=5, read_timeout=10, autocommit=True, **tls)


def _one(conn, sql: str, *args):
    with conn.cursor() as cur:
        cur.execute(sql, args or None)
        return cur.fetchall()


def check_db(run, primary: dict, replicas: list[tuple[str, dict]], mapping, database: str) -> list[tuple]:
    """(id, status, detail, hint) for the primary and each replica, as ``live_local.check_db`` for PostgreSQL."""
    ep = primary.get("Endpoint") or {}
    addr = resolve(mapping, ep.get("Address", ""), ep.get("Port", 0))
    info = (mapping or {}).get(addr.endpoint) or {}
    if not addr.usable:
        status = FAIL if addr.status == "failed" else SKIP
        out = [("live.host-to-db", status, f"{addr.endpoint}: {addr.reason or addr.status}", None)]
        # With no server on this machine every database check says so; else it waits for the primary.
        why = addr.reason if addr.status == "unavailable" and addr.reason else "needs the primary's engine"
        return out + [(f"live.{key}", SKIP, why, None) for key, _ in replicas]
    user, password = db_credentials(run, primary)
    t0 = time.perf_counter()
    try:
        conn = my_connect(addr, user, password, database)
        ((one, version, cipher),) = _one(conn, "SELECT 1, VERSION(), (SELECT VARIABLE_VALUE FROM "
                                         "information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_version')")
    except Exception as exc:  # noqa: BLE001 - any failure to log in is the finding
        why, hint = why_failed(exc, "see `awslab local status` and the server log")
        return [("live.host-to-db", FAIL, f"{addr.endpoint} (127.0.0.1:{addr.port}): login or SELECT 1 failed: {why}", hint),
                *[(f"live.{key}", SKIP, "needs a session on the primary (to write the row it reads back)", None)
                  for key, _ in replicas]]
    detail = (f"{addr.endpoint} -> 127.0.0.1:{addr.port}: login + SELECT 1 over {cipher or 'no TLS'} (certificate "
              f"verified) in {ms_since(t0)}; {info.get('stands_in') or 'MariaDB'} (server {version})")
    out = [("live.host-to-db", PASS if one == 1 and cipher else FAIL, detail, None)]
    try:
        my_connect(addr, user, password, database, plain=True).close()
        refused = False
    except Exception:  # noqa: BLE001 - any refusal counts
        refused = True
    if addr.tls == "required" and not refused:
        out[0] = ("live.host-to-db", FAIL, f"{addr.endpoint}: takes a connection without TLS, which RDS refuses with "
                  "require_secure_transport=1", "see the server log")
    elif addr.tls == "required":
        out[0] = (*out[0][:2], out[0][2] + "; a connection without TLS was refused (require_secure_transport=1)", None)
    try:
        marker = uuid.uuid4().hex
        _one(conn, "CREATE TABLE IF NOT EXISTS awslab_verify (marker varchar(64) PRIMARY KEY, "
                   "written timestamp(6) DEFAULT CURRENT_TIMESTAMP(6))")
        _one(conn, "INSERT INTO awslab_verify (marker) VALUES (%s)", marker)
        written = time.perf_counter()
        for key, replica in replicas:
            out.append(_replica_row(key, replica, mapping, user, password, database, marker, written))
        _one(conn, "DELETE FROM awslab_verify WHERE written < NOW() - INTERVAL 1 HOUR")
    finally:
        conn.close()
    return out


def _replica_row(key, replica, mapping, user, password, database, marker, written) -> tuple:
    def seen(conn) -> bool:
        has = _one(conn, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                         "AND TABLE_NAME = 'awslab_verify'")[0][0]
        return bool(has and _one(conn, "SELECT 1 FROM awslab_verify WHERE marker = %s", marker))

    def reported(conn, addr) -> str:
        # The master user may not run SHOW SLAVE STATUS on MariaDB 10.5+ (RDS gives it
        # mysql.rds_replica_status instead): the local AWS reads it as RDS's metric does.
        metric = ((mapping or {}).get(addr.endpoint) or {}).get("replica_lag_s")
        return (f"ReplicaLag as RDS reports it for MySQL (Seconds_Behind_Master): "
                f"{metric if metric is not None else '?'} s")
    return replica_row(key, replica, mapping, lambda addr: my_connect(addr, user, password, database), seen, reported,
                       written, replication=", GTID replication", doing="replicating")


def connect_lines(run, addr: Address, *, user: str, password: str, database: str, as_env: bool,
                  ident: str) -> tuple[list[str], str]:
    """A ``mariadb`` (or ``mysql``) line with the flags a learner types on AWS (``--ssl-ca``,
    ``--ssl-verify-server-cert``); the password in a 0600 option file of its own."""
    folder = state_dir() / "connect"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    optfile = folder / f"{ident}.my.cnf"
    write_private(optfile, f"[client]\npassword=\"{password.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}\"\n")
    tool = shutil.which("mariadb") or shutil.which("mysql")
    note = "" if tool else ("no mariadb / mysql client on this machine (Debian/Ubuntu: apt-get install mariadb-client); "
                            "the line names `mariadb`")
    tool = tool or "mariadb"
    if as_env:
        # The client reads no host or port from the environment but MYSQL_HOST / MYSQL_TCP_PORT.
        return [f"export MYSQL_HOST={addr.host}", f"export MYSQL_TCP_PORT={addr.port}", f"export MYSQL_USER={shlex.quote(user)}",
                f"export AWSLAB_MYSQL_DEFAULTS={shlex.quote(str(optfile))}",
                f"export AWSLAB_MYSQL_CA={shlex.quote(addr.ca)}"], note
    return [f"{shlex.quote(tool)} --defaults-extra-file={shlex.quote(str(optfile))} -h {addr.host} -P {addr.port} "
            f"-u {shlex.quote(user)} --ssl --ssl-ca={shlex.quote(addr.ca)} --ssl-verify-server-cert "
            f"{shlex.quote(database)}"], note
