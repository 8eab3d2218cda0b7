"""Redis's side: its config (the AUTH password in a private file), a client, readiness and SAVE."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from awslab.local.engines.base import HOST, START_TIMEOUT_S, EngineError
from awslab.local.engines.binaries import redis_library


@contextlib.contextmanager
def redis_client(port: int, password: str) -> Iterator[Any]:
    """A plain RESP2 client with no retries: our callers poll themselves, and redis-py's default backoff would
    add seconds to every probe that finds the server not yet listening."""
    redis = redis_library()
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis(host=HOST, port=port, password=password, socket_timeout=10, socket_connect_timeout=2,
                         protocol=2, retry=Retry(NoBackoff(), 0))
    try:
        yield client
    finally:
        client.close()


def redis_ready(port: int, password: str) -> bool:
    redis = redis_library()
    try:
        with redis_client(port, password) as client:
            return bool(client.ping())
    except redis.exceptions.AuthenticationError as exc:
        raise EngineError(f"redis on port {port} refused the password: {exc}") from None
    except redis.exceptions.ConnectionError:  # not listening yet, or still loading its RDB
        return False


def redis_save(port: int, password: str) -> None:
    """SAVE, waiting out a background save already running (a replica's full sync, a BGSAVE of the user)."""
    redis = redis_library()
    deadline = time.monotonic() + START_TIMEOUT_S
    with redis_client(port, password) as client:
        while True:
            try:
                client.save()
                return
            except redis.exceptions.ResponseError as exc:
                if "in progress" not in str(exc) or time.monotonic() > deadline:
                    raise EngineError(f"redis on port {port} could not SAVE: {exc}") from None
            time.sleep(0.05)


def redis_conf(data: Path, password: str, replicaof: int | None) -> str:
    """redis.conf (0600, in the private data dir: the only place the password is at rest besides secret.json)."""
    lines = [
        f"bind {HOST}", "protected-mode yes", "daemonize no", 'logfile ""', f"dir {redis_quote(str(data))}",
        # Saved to dump.rdb within a second of a change, so the data outlives the process (a stop of
        # the local AWS, a reboot); a SAVE in flight is waited for by redis_save.
        "dbfilename dump.rdb", "appendonly no", "save 1 1",
        # Replicas sync over the socket at once: no 5 s diskless delay, no BGSAVE that would make SAVE fail.
        "repl-diskless-sync yes", "repl-diskless-sync-delay 0",
        f"requirepass {redis_quote(password)}", f"masterauth {redis_quote(password)}",
    ]
    if replicaof is not None:
        lines += [f"replicaof {HOST} {replicaof}", "replica-read-only yes"]
    return "\n".join(lines) + "\n"


def redis_quote(text: str) -> str:
    """A redis.conf double-quoted string: any byte outside printable ASCII as \\xHH."""
    out = []
    for byte in text.encode():
        char = chr(byte)
        out.append("\\" + char if char in '"\\' else char if 32 <= byte < 127 else f"\\x{byte:02x}")
    return '"' + "".join(out) + '"'
