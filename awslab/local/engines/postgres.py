"""PostgreSQL's side: the settings every engine starts with, SCRAM verifiers, readiness, a copied data dir made standalone."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
from typing import Any
from pathlib import Path

from awslab.local.engines.base import HOST, EngineError
from awslab.local.engines.binaries import pg8000_library

# Settings every PostgreSQL engine starts with (the port is given on the command line, so a copy
# of a data dir, a replica or a restore, can run beside its source).
PG_CONF = """
# --- awslab ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
password_encryption = 'scram-sha-256'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = '128MB'
hot_standby = on
shared_buffers = '16MB'        # lab-sized databases (a class of thirty runs ninety servers)
# Dynamic shared memory in the data dir (pg_dynshmem), not in /dev/shm: a server that dies uncleanly
# (a failover's crash, a SIGKILL) leaves its segments behind, and there they go with the data dir
# instead of piling up in the machine's memory (1 MB per server start).
dynamic_shared_memory_type = mmap
# No logical replication in the lab: its launcher would be one idle process per server.
max_logical_replication_workers = 0
wal_retrieve_retry_interval = '1s'
# The role's own settings (archive, synchronous standby, recovery target), rewritten by awslab
# whenever the engine's role changes; a copy of a data dir (replica, snapshot) gets its own.
include_if_exists = 'awslab.conf'
"""
PG_HBA = """# awslab: TCP from this host only, SCRAM passwords, streaming replication allowed
host    all             all             127.0.0.1/32            scram-sha-256
host    replication     all             127.0.0.1/32            scram-sha-256
"""


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """PostgreSQL's stored form of a SCRAM-SHA-256 password (RFC 5802, 7677)."""
    import base64
    import hmac

    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"



def as_standalone(data: Path) -> None:
    """A copied data dir starts as a standalone primary: no standby signal, no pid file, no upstream."""
    for name in ("standby.signal", "recovery.signal", "postmaster.pid"):
        with contextlib.suppress(FileNotFoundError):
            (data / name).unlink()
    auto = data / "postgresql.auto.conf"
    if auto.exists():
        kept = [line for line in auto.read_text().splitlines(keepends=True)
                if not line.lstrip().startswith("primary_conninfo")]
        auto.write_text("".join(kept))


# RDS's ReplicaLag, as RDS computes it for PostgreSQL: now minus the time of the last transaction
# the replica replayed, or 0 when it has replayed everything it received.
REPLICA_LAG_SQL = ("SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
                   "ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) END")
ROLE_CONF = "awslab.conf"
STANDBY_NAME = "awslab_standby"   # the Multi-AZ standby's application_name, which the primary waits for
ARCHIVE_TIMEOUT_S = 2             # a segment is archived at most this long after it was written


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def role_conf(*, name: str, archive: Path | None, sync_standby: bool = False, quorum: str | None = None,
              recover_from: Path | None = None, recover_to: str | None = None) -> str:
    """The settings of one engine's role: its name (a standby's application_name), where its WAL
    is archived (``archive``/wal; none: discarded), whether commits wait for the Multi-AZ standby
    (or, ``quorum``, for the standbys that value of synchronous_standby_names names: a Multi-AZ DB
    cluster's), and for a point-in-time restore the archive to replay from and the time to stop at."""
    lines = [f"cluster_name = {_quoted(name)}", "archive_mode = on",
             f"archive_timeout = {ARCHIVE_TIMEOUT_S}"]
    if archive is not None:
        wal = shlex.quote(str(archive / "wal"))
        lines.append(f"archive_command = {_quoted(f'test ! -f {wal}/%f && cp %p {wal}/%f')}")
    else:
        lines.append("archive_command = 'true'")   # no backups: WAL is not kept
    lines.append(f"synchronous_standby_names = {_quoted(quorum or (STANDBY_NAME if sync_standby else ''))}")
    if recover_from is not None:
        src = shlex.quote(str(recover_from / "wal"))
        lines.append(f"restore_command = {_quoted(f'cp {src}/%f %p')}")
        lines.append("recovery_target_timeline = 'latest'")
        if recover_to:
            lines += [f"recovery_target_time = {_quoted(recover_to)}", "recovery_target_action = 'promote'"]
    return "# written by awslab for this engine's role\n" + "\n".join(lines) + "\n"


def quorum_of(names: list[str], count: int = 1) -> str:
    """synchronous_standby_names for a commit acknowledged once ``count`` of the standbys ``names``
    (their application_names) have flushed it: quorum commit, as a Multi-AZ DB cluster's writer waits
    for either of its two readers."""
    quoted = ", ".join('"' + n.replace('"', '""') + '"' for n in names)
    return f"ANY {count} ({quoted})"


def connect(port: int, user: str, password: str, *, database: str = "postgres", timeout: float = 10) -> Any:
    """A pg8000 connection to the engine itself, as ``user``. The engine speaks plain TCP on
    127.0.0.1 (an endpoint's TLS is the forwarder's), so no SSLRequest and no TLS context: building
    one loads the system's CA bundle, the most costly part of a local connection."""
    pg = pg8000_library()
    return pg.Connection(user, host=HOST, port=port, password=password, database=database, timeout=timeout,
                         ssl_context=False)


def pg_ready(port: int, user: str, password: str, catching_up: bool = False) -> bool:
    """Whether the server takes a SCRAM login now; False while it starts up or recovers, and, for a
    standby ``catching_up`` from an older image of its primary, while it has not yet replayed the
    password it is to take (its catalog is the image's until then)."""
    pg = pg8000_library()
    try:
        conn = connect(port, user, password, timeout=2)
    except pg.InterfaceError:
        return False
    except pg.DatabaseError as exc:
        code = exc.args[0].get("C") if exc.args and isinstance(exc.args[0], dict) else None
        if code == "57P03" or (catching_up and code == "28P01"):  # cannot_connect_now; the password not yet replayed
            return False
        raise EngineError(f"postgres on port {port} refused the login: {code}") from None
    conn.close()
    return True


def follow_port(data: Path, port: int) -> None:
    """Point a streaming replica's ``primary_conninfo`` at the primary's new port (after a restart
    the primary listens elsewhere)."""
    import re

    auto = data / "postgresql.auto.conf"
    lines = auto.read_text().splitlines(keepends=True)
    # A base backup of a promoted standby carries the standby's old line, and `pg_basebackup -R`
    # appends its own: PostgreSQL takes the last, and so does this (the others go).
    at = [i for i, line in enumerate(lines) if re.match(r"primary_conninfo\s*=", line)]
    # The value quotes its own quotes ('' around passfile=...): match within the line, not the quotes.
    last, n = re.subn(r"^(primary_conninfo\s*=[^\n]*?\bport=)\d+", rf"\g<1>{port}", lines[at[-1]] if at else "")
    if n != 1:
        raise ValueError(f"no primary_conninfo port in {auto}")
    lines[at[-1]] = last
    auto.write_text("".join(line for i, line in enumerate(lines) if i not in at[:-1]))


def query(port: int, user: str, password: str, sql: str, *, database: str = "postgres", timeout: float = 10) -> list:
    """Rows of one statement on the engine at ``port`` (as its superuser)."""
    conn = connect(port, user, password, database=database, timeout=timeout)
    try:
        return conn.run(sql) or []
    finally:
        conn.close()
