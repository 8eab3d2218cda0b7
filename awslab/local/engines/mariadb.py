"""MariaDB's side of the MySQL-family engines: finding ``mariadbd`` (no wheel ships one: the
system's package, ``apt-get install mariadb-server`` on Debian/Ubuntu), the settings every server
starts with, the users RDS makes, passwords as MariaDB stores them, and the unix-socket session
through which awslab itself administers a server (as RDS keeps ``rdsadmin``@``localhost``).

RDS for MySQL and RDS for MariaDB both answer behind such a server: MySQL-compatible MariaDB 10.11
stands in for MySQL 8.0 (the wire protocol, SQL, GTID replication, semi-synchronous commits and
binary logs a lab uses are MariaDB's; MySQL 8's own features such as roles' syntax differ).

Passwords never reach a command line, a log or the registry: a new server creates its users from
an init file in its private data dir that holds their password *hashes* (deleted once it runs),
and replication credentials are given over the admin socket (kept in the replica's private
``master.info``)."""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
from pathlib import Path
from typing import Any

from awslab.local.engines.base import EngineUnavailable
from awslab.local.engines.binaries import said_version

MARIADBD_ENV = "AWSLAB_MARIADBD"   # a mariadbd to use, or "off": the control plane only
INSTALL_HINT = "install MariaDB's server (Debian/Ubuntu: apt-get install mariadb-server)"
SYSTEM_DIRS = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/usr/local/mysql/bin")
REPL_USER = "rdsrepladmin"   # the user replicas and the Multi-AZ standby replicate as (RDS's own name)
SOCKET_MAX = 100             # sun_path holds 108 bytes

# The master user's privileges as RDS for MariaDB grants them (docs: "Master user account privileges").
MASTER_PRIVILEGES = ("SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, RELOAD, PROCESS, REFERENCES, INDEX, ALTER, "
                     "SHOW DATABASES, CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, REPLICATION CLIENT, CREATE VIEW, "
                     "SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, CREATE USER, EVENT, TRIGGER, REPLICATION SLAVE")

# Lab-sized servers: a class of thirty runs ninety of them.
BASE_CONF = """[mariadbd]
# --- awslab: the settings every MariaDB engine starts with (the port on the command line) ---
bind-address = 127.0.0.1
skip-name-resolve
performance_schema = OFF
innodb_buffer_pool_size = 16M
innodb_log_file_size = 8M
innodb_data_file_path = ibdata1:4M:autoextend
innodb_autoextend_increment = 1
table_open_cache = 200
open_files_limit = 1024
max_connections = 151
# Binary logs, GTIDs and the row format RDS uses; kept (never purged here): they are the
# instance's backups (point-in-time restore) and what a new replica replays from.
log_bin = binlog
binlog_format = ROW
log_slave_updates = ON
binlog_expire_logs_seconds = 0
sync_binlog = 1
innodb_flush_log_at_trx_commit = 1
gtid_strict_mode = ON
# Lossless semi-synchronous replication (a commit is acknowledged once the standby has it), on
# when the instance has a Multi-AZ standby.
rpl_semi_sync_master_wait_point = AFTER_SYNC
rpl_semi_sync_master_timeout = 10000
"""


def mariadbd_path() -> Path:
    """The MariaDB server binary: ``AWSLAB_MARIADBD``, else ``mariadbd`` on PATH or in the system's dirs."""
    wanted = os.environ.get(MARIADBD_ENV)
    if wanted == "off":
        raise EngineUnavailable(f"MariaDB's server is turned off ({MARIADBD_ENV}=off)")
    candidates = [wanted] if wanted else [shutil.which("mariadbd"), *(f"{d}/mariadbd" for d in SYSTEM_DIRS)]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return Path(c)
    raise EngineUnavailable(f"MariaDB's server (mariadbd) not found: {INSTALL_HINT}")


def tool(name: str) -> Path:
    """A MariaDB program beside the server (mariadb-install-db, mariadb-binlog, mariadb)."""
    server = mariadbd_path()
    for d in (server.parent, server.parent.parent / "bin", *map(Path, SYSTEM_DIRS)):
        if (d / name).is_file() and os.access(d / name, os.X_OK):
            return d / name
    found = shutil.which(name)
    if found:
        return Path(found)
    raise EngineUnavailable(f"{name} not found beside {server}: {INSTALL_HINT}")


@functools.cache
def server_version(path: str | None = None) -> str:
    """'10.11.19' for the mariadbd at hand ('' when it cannot say)."""
    try:
        out = said_version(Path(path) if path else mariadbd_path())
    except EngineUnavailable:
        return ""
    match = re.search(r"Ver (\d+\.\d+\.\d+)", out)
    return match.group(1) if match else ""


def available() -> str | None:
    """The server's version when this machine can run MariaDB engines, else None."""
    try:
        mariadbd_path()
    except EngineUnavailable:
        return None
    return server_version() or None


def stand_in(engine: str, engine_version: str) -> str:
    """How the local AWS says what runs behind a MySQL-family instance."""
    from awslab.spec.catalog import db_major

    version = ".".join(server_version().split(".")[:2]) or "?"
    if engine == "mysql":
        return f"MySQL-compatible MariaDB {version} stands in for MySQL {db_major(engine_version)}"
    return f"MariaDB {server_version() or version} runs for MariaDB {db_major(engine_version)}"


def pymysql_library() -> Any:
    try:
        import pymysql
    except ImportError:
        raise EngineUnavailable("the MySQL client PyMySQL is not installed: pip install 'awslab[engines]'") from None
    return pymysql


def native_hash(password: str) -> str:
    """MariaDB's stored form of a mysql_native_password password: '*' + SHA1(SHA1(password))."""
    return "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()


def quote(text: str) -> str:
    """A SQL string literal (standard SQL quoting; the servers run with NO_BACKSLASH_ESCAPES off)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def users_sql(user: str, password: str, repl_password: str, dbname: str) -> str:
    """The statements that make a new server RDS's: the master user (from anywhere, RDS's
    privileges, WITH GRANT OPTION), the lab's database, the replication user; not binlogged (every
    server of an instance runs the same at its first start)."""
    return "\n".join([
        "SET sql_log_bin = 0;",
        f"CREATE OR REPLACE USER {quote(user)}@'%' IDENTIFIED BY PASSWORD {quote(native_hash(password))};",
        f"GRANT {MASTER_PRIVILEGES} ON *.* TO {quote(user)}@'%' WITH GRANT OPTION;",
        f"CREATE OR REPLACE USER {quote(REPL_USER)}@'%' IDENTIFIED BY PASSWORD {quote(native_hash(repl_password))};",
        f"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO {quote(REPL_USER)}@'%';",
        *([f"CREATE DATABASE IF NOT EXISTS {ident(dbname)};"] if dbname else []),
        "SET sql_log_bin = 1;",
    ]) + "\n"


def server_conf(*, socket: Path, tmpdir: Path, server_id: int, tls_dir: Path | None, require_tls: bool,
                role: str) -> str:
    """The whole option file of one server in its role (rewritten whenever the role changes); its
    temporary files in a dir of its own (TMPDIR may be one the engine user cannot write)."""
    lines = [BASE_CONF, "# --- this server ---", f"socket = {socket}", f"tmpdir = {tmpdir}", f"server_id = {server_id}"]
    if tls_dir is not None:
        lines += [f"ssl_cert = {tls_dir / 'server.pem'}", f"ssl_key = {tls_dir / 'server.key'}",
                  f"ssl_ca = {tls_dir / 'ca.pem'}"]
    lines.append(f"require_secure_transport = {'ON' if require_tls else 'OFF'}")
    if role in ("replica", "standby"):
        # RDS's replicas are read-only ({TrueIfReplica}); the master user cannot write there.
        lines += ["read_only = ON", "skip_slave_start = OFF"]
    if role == "standby":
        lines.append("rpl_semi_sync_slave_enabled = ON")
    return "\n".join(lines) + "\n"


def socket_path(engine_dir: Path, short_dir: Path) -> Path:
    """Where a server's admin socket lives: a dir of its engine dir that the engine user owns
    (``run``), or, when that path is too long for a socket, ``short_dir`` (the engines' own dir
    for sockets), else /tmp, under a name from the engine dir's hash."""
    path = engine_dir / "run" / "mysqld.sock"
    if len(str(path)) <= SOCKET_MAX:
        return path
    name = f"mariadb-{hashlib.sha256(str(engine_dir).encode()).hexdigest()[:16]}.sock"
    return short_dir / name if len(str(short_dir / name)) <= SOCKET_MAX else Path("/tmp") / f"awslab-{name}"


def os_user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def admin(socket: Path, *, timeout: float = 10) -> Any:
    """A session as this process's OS user through the server's socket (unix_socket authentication,
    as ``mariadb-install-db`` made that user): awslab's own, never reachable over TCP."""
    pymysql = pymysql_library()
    return pymysql.connect(unix_socket=str(socket), user=os_user(), connect_timeout=timeout, autocommit=True)


def run(socket: Path, *statements: str) -> list[tuple]:
    """The rows of the last of ``statements``, run on one admin session."""
    conn = admin(socket)
    try:
        with conn.cursor() as cur:
            rows: list[tuple] = []
            for sql in statements:
                cur.execute(sql)
                rows = list(cur.fetchall() or [])
            return rows
    finally:
        conn.close()


def status(socket: Path, sql: str) -> dict[str, Any]:
    """The one row of a SHOW ... STATUS statement as a dict ({} when none)."""
    conn = admin(socket)
    try:
        with conn.cursor(pymysql_library().cursors.DictCursor) as cur:
            cur.execute(sql)
            return dict(cur.fetchone() or {})
    finally:
        conn.close()


def ready(socket: Path) -> bool:
    """The server takes awslab's admin session (False while it starts)."""
    pymysql = pymysql_library()
    if not socket.exists():
        return False
    try:
        admin(socket, timeout=2).close()
    except pymysql.err.OperationalError:
        return False
    return True
