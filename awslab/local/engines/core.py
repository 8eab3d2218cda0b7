"""What every part of ``Engines`` stands on: where an engine's files live, its key claimed in the
registry before any work, its process launched on a free port and waited for, its secret kept
beside it. Each part (``pg_instances``, ``pg_backups``, ``pg_standby``, ``redis_nodes``,
``snapshots``, ``lifecycle``) is a subclass of ``EngineCore``, and ``Engines`` all of them: a
method whose name starts with ``_`` belongs to that one class, shared by its parts; the rest of
awslab calls only the public ones."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from awslab.local.engines.accounts import RunAs, reachable_by, run_as
from awslab.local.engines.base import (
    HOST,
    PORT_ATTEMPTS,
    SECRET_FILE,
    START_TIMEOUT_S,
    TOOL_TIMEOUT_S,
    EngineError,
)
from awslab.local.engines.children import adopt, child_env, free_port, is_ours, tail, terminate
from awslab.local.engines.files import (
    copy_runnable,
    exclusive,
    make_dir,
    remove_tree,
    slug,
    wheel_package_of,
    write_private_for,
)
from awslab.local.engines.registry import Registry
from awslab.local.processes import proc_stat

log = logging.getLogger("awslab.local.engines")
ENGINES_DIR_ENV = "AWSLAB_ENGINES_DIR"
DEFAULT_ENGINES_DIR = "/var/lib/awslab/engines"


class EngineCore:
    """The registry, the run-as user and the directories of the engines under ``root``."""

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
        # by backing/core.py), or, when it gives none, straight at the primary's port.
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
            command, as_who = who.command(argv(port))
            with open(log_path, "ab") as out:
                proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                        cwd=data, env=child_env(), start_new_session=True, umask=0o077, **as_who)
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

    def alive(self, key: str) -> bool:
        """The engine ``key`` is registered available and its process is the one we started."""
        entry = self.get(key)
        return bool(entry and entry.get("status") == "available" and is_ours(entry))


class _PortTaken(Exception):
    """The engine exited because its port was bound by someone else first."""
