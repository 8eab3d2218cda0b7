"""The lab's clients on this machine (psql, redis-cli): which to run, the one built with TLS first.

Used by awslab's own lines (``awslab connect``, verify) and by the instances of the local AWS
(local/shim.py), so a learner's client on the "host" is the same one awslab uses.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path


def _on_path(name: str) -> list[str]:
    """Every ``name`` on the PATH, in order (a venv's wheel client may shadow the system's)."""
    found = (Path(d) / name for d in os.environ.get("PATH", "").split(os.pathsep) if d)
    return [str(p) for p in found if p.is_file() and os.access(p, os.X_OK)]


@functools.lru_cache(maxsize=None)
def psql_with_tls() -> str | None:
    """A psql whose libpq has TLS: the engine wheel's when it has, else the PATH's."""
    import subprocess

    for candidate in dict.fromkeys((tool_path("psql"), *_on_path("psql"))):
        try:
            probe = subprocess.run([candidate, "host=127.0.0.1 port=1 sslmode=require connect_timeout=1", "-c", ""],
                                   capture_output=True, text=True, timeout=10, env={**os.environ, "PGPASSFILE": os.devnull})
        except (OSError, subprocess.SubprocessError):
            continue
        if "SSL support is not compiled in" not in probe.stderr:
            return candidate
    return None


@functools.lru_cache(maxsize=None)
def redis_cli_with_tls() -> str | None:
    """A redis-cli built with TLS (``--tls``): the engine wheel's when it is, else one on the PATH."""
    import subprocess

    names = (tool_path("redis-cli"), *(p for n in ("redis-cli", "redis6-cli", "valkey-cli") for p in _on_path(n)))
    for candidate in dict.fromkeys(names):
        try:
            probe = subprocess.run([candidate, "--tls", "--version"], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            continue
        if probe.returncode == 0:
            return candidate
    return None


def wheel_tool(name: str) -> str | None:
    """psql / redis-cli from the engine wheels, when installed."""
    try:
        if name == "psql":
            from awslab.local.engines import postgres_bindir

            candidate = postgres_bindir() / "psql"
        else:
            from awslab.local.engines import redis_server_path

            candidate = redis_server_path().with_name("redis-cli")
        if candidate.exists():
            return str(candidate)
    except Exception:  # noqa: BLE001 - no engine wheel
        pass
    return None


def tool_path(name: str) -> str:
    """psql / redis-cli: from the engine wheels when installed, else whatever is on PATH."""
    import shutil

    return wheel_tool(name) or shutil.which(name) or name
