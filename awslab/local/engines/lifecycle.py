"""Stopping and resuming ``Engines``: an engine stopped for good, halted with its data kept
and resumed on it (across restarts of the local AWS, and a reboot: ``restart``), a replica
repointed at its primary, and the registry reconciled with the processes that really run (strays
reaped, every engine stopped)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from awslab.local.engines.base import HOST, EngineError
from awslab.local.engines.children import is_ours, terminate
from awslab.local.engines.core import EngineCore
from awslab.local.engines.files import remove_tree, write_private_for
from awslab.local.engines.postgres import follow_port
from awslab.local.engines.redis_server import redis_conf, redis_ready, redis_save
from awslab.local.processes import cmdline, parent_pid, proc_stat

log = logging.getLogger("awslab.local.engines")
# An engine's command -> its engine name in the registry (what ``terminate`` stops it as).
STRAY_COMMANDS = {"postgres": "postgres", "redis-server": "redis", "mariadbd": "mariadb"}
HALT_AT_ONCE = 16   # engines stopped at a time (each a signal, then a wait for its shutdown checkpoint)


class EngineLifecycle(EngineCore):
    """Engines stopped, halted and resumed, restarted, repointed; strays reaped."""

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
        """``halt`` every engine, the replicas and standbys first, then the rest; each group at once
        (one after the other, a home of 30 stacks' 180 engines took longer to stop than ``local
        stop`` waits for the server, which was then killed with half of them still running). The
        keys halted."""
        entries = self.entries()
        followers = [k for k, e in entries.items() if e.get("role") in ("replica", "standby")]
        rest = [k for k in entries if k not in followers]
        for group in (followers, rest):
            if len(group) < 2:
                for key in group:
                    self.halt(key)
                continue
            with ThreadPoolExecutor(max_workers=min(HALT_AT_ONCE, len(group)), thread_name_prefix="halt") as pool:
                for done in [pool.submit(self.halt, key) for key in group]:
                    done.result()
        return followers + rest

    def followers(self, key: str) -> list[str]:
        """The replicas of ``key`` whose process runs (they follow its port)."""
        return [k for k, e in self.entries().items() if e.get("primary") == key and self.alive(k)]

    def restart(self, key: str, pause: Callable[[], None] | None = None) -> dict[str, Any]:
        """A reboot: the server stops (its connections cut), ``pause``, and starts again on its data."""
        self.halt(key)
        if pause is not None:
            pause()
        return self.resume(key)

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
        postgres / redis-server / mariadbd processes whose working dir is under ours are touched."""
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
            top = not any(w in cmdline(parent_pid(pid) or 0) for w in STRAY_COMMANDS)
            engine = next((e for w, e in STRAY_COMMANDS.items() if w in cmd), None)
            if top and engine and any(cwd.startswith(b) for b in bases):
                stat = proc_stat(pid)
                if terminate({"pid": pid, "engine": engine, "started": stat[1] if stat else None}):
                    log.warning("stopped stray %s pid %d (in %s, in no entry)", cmd.split()[0], pid, cwd)
                    stopped.append(pid)
        return stopped

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
