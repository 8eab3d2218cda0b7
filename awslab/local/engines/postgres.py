"""PostgreSQL's side: the settings every engine starts with, SCRAM verifiers, readiness, a copied data dir made standalone."""

from __future__ import annotations

import contextlib
import hashlib
import os
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
shared_buffers = '32MB'
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


def pg_ready(port: int, user: str, password: str) -> bool:
    """Whether the server takes a SCRAM login now; False while it starts up or recovers."""
    pg = pg8000_library()
    try:
        conn = pg.Connection(user, host=HOST, port=port, password=password, database="postgres", timeout=2)
    except pg.InterfaceError:
        return False
    except pg.DatabaseError as exc:
        code = exc.args[0].get("C") if exc.args and isinstance(exc.args[0], dict) else None
        if code == "57P03":  # cannot_connect_now: starting up / not yet consistent
            return False
        raise EngineError(f"postgres on port {port} refused the login: {code}") from None
    conn.close()
    return True


def follow_port(data: Path, port: int) -> None:
    """Point a streaming replica's ``primary_conninfo`` at the primary's new port (after a restart
    the primary listens elsewhere)."""
    import re

    auto = data / "postgresql.auto.conf"
    text = auto.read_text()
    # The value quotes its own quotes ('' around passfile=...): match within the line, not the quotes.
    changed, n = re.subn(r"^(primary_conninfo\s*=[^\n]*?\bport=)\d+", rf"\g<1>{port}", text, flags=re.M)
    if n != 1:
        raise ValueError(f"no primary_conninfo port in {auto}")
    auto.write_text(changed)
