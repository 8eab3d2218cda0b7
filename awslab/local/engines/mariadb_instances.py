"""MariaDB instances of ``Engines`` (behind RDS's ``mysql`` and ``mariadb``): a primary (a copy of
the home's template data dir, made once by ``mariadb-install-db``), its own port, TLS from the
home's CA, ``require_secure_transport`` as the instance's parameter group sets it, the master user
as RDS creates it; a follower (a read replica, or the Multi-AZ standby) that replays its primary's
binary log from the start over GTID replication; a restore from a snapshot or to a point in time,
which replays binary logs into a fresh copy of the template.

Every server keeps its binary logs (they are its backups): a snapshot is its closed binary logs
and the GTID position they end at; a point-in-time restore replays the source's binary logs up to
the time asked (``mariadb-binlog --stop-datetime``).

This class comes first among ``Engines``' parts: the generic operations it overrides (``resume``,
``snapshot``, ``repoint``, ``restore_window``, ``replica_lag``) handle a MariaDB entry here and hand
anything else to the PostgreSQL and Redis parts (``super()``)."""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from awslab.local.engines import mariadb
from awslab.local.engines.base import HOST, SNAPSHOT_META, START_TIMEOUT_S, TOOL_TIMEOUT_S, EngineError
from awslab.local.engines.children import child_env, run_tool, tail
from awslab.local.engines.files import chown_tree, exclusive, make_dir, remove_tree, write_private_for
from awslab.local.engines.mariadb_replication import MariadbReplication

log = logging.getLogger("awslab.local.engines")
ENGINE = "mariadb"


class MariadbInstances(MariadbReplication):
    """MariaDB primaries, followers, restores; and the generic operations for MariaDB entries."""

    # --- the template ---

    def _mariadb_template(self) -> Path:
        """The home's template data dir for this mariadbd (made once, under a lock)."""
        server = mariadb.mariadbd_path()
        top = self.base() / "_templates" / f"mariadb-{mariadb.server_version(str(server)) or 'unknown'}"
        data = top / "data"
        make_dir(top.parent, 0o711)
        with exclusive(top.parent / f".{top.name}.lock"):
            if (top / ".complete").exists():
                return data
            remove_tree(top)
            make_dir(top, 0o711)
            make_dir(data, 0o700, self.who())
            make_dir(top / "tmp", 0o700, self.who())
            conf = top / "bootstrap.cnf"
            conf.write_text(mariadb.BASE_CONF.split("# Binary logs")[0] + f"tmpdir = {top / 'tmp'}\n")
            conf.chmod(0o644)
            started = time.monotonic()
            run_tool([str(mariadb.tool("mariadb-install-db")), f"--defaults-file={conf}", f"--datadir={data}",
                      f"--user={self.who().name}", "--auth-root-authentication-method=socket", "--skip-test-db",
                      "--skip-name-resolve"], who=None, log_path=top / "install.log", cwd=top)
            (top / ".complete").touch()
            log.info("MariaDB template data dir made in %.2f s (%s)", time.monotonic() - started, data)
        return data

    # --- a new server ---

    def start_mariadb(self, key: str, *, user: str, password: str, dbname: str = "", engine_version: str = "",
                      require_tls: bool = False, tls_source: Path | None = None, role: str = "primary",
                      primary: str | None = None, repl_password: str | None = None) -> dict[str, Any]:
        """A new MariaDB server from the template: the master user with ``password`` (a hash in a
        private init file), the lab's database, TLS with the home's certificate; a follower of
        ``primary`` for role ``replica`` or ``standby``."""
        server = mariadb.mariadbd_path()
        mariadb.pymysql_library()
        template = self._mariadb_template()
        repl_password = repl_password or secrets.token_urlsafe(24)
        entry = self._reserve(key, engine=ENGINE, role=role, user=user, dbname=dbname, server=str(server),
                              version=mariadb.server_version(str(server)), engine_version=engine_version,
                              server_id=secrets.randbelow(2 ** 31 - 2) + 1, require_tls=require_tls,
                              primary=primary, created=time.time())
        started = time.monotonic()
        with self._starting(key):
            data, engine_dir = Path(entry["datadir"]), Path(entry["dir"])
            for item in template.iterdir():
                (shutil.copytree(item, data / item.name) if item.is_dir() else shutil.copy2(item, data / item.name))
            chown_tree(data, self.who())
            make_dir(engine_dir / "run", 0o700, self.who())
            make_dir(self.base() / "_sockets", 0o700, self.who())
            entry = self.registry.update(key, socket=str(mariadb.socket_path(engine_dir, self.base() / "_sockets")),
                                         tls=str(self._mariadb_tls(engine_dir, tls_source)) if tls_source else None)
            self._save_secret(engine_dir, {"user": user, "password": password, "repl_password": repl_password,
                                           "dbname": dbname})
            init = data / "awslab-init.sql"
            write_private_for(init, mariadb.users_sql(user, password, repl_password, dbname), self.who())
            try:
                entry = self._launch_mariadb(key, init=init)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    init.unlink()
            if primary:
                self._follow(entry, primary)
        log.info("mariadb %s %r ready on %s:%d in %.2f s", role, key, HOST, entry["port"], time.monotonic() - started)
        return entry

    def _mariadb_tls(self, engine_dir: Path, source: Path) -> Path:
        """The home's endpoint certificate, key and CA, copied where the engine user reads them."""
        target = engine_dir / "tls"
        make_dir(target, 0o700, self.who())
        for name in ("server.pem", "server.key", "ca.pem"):
            write_private_for(target / name, (source / name).read_text(), self.who())
        return target

    def _write_conf(self, entry: dict[str, Any]) -> Path:
        conf = Path(entry["dir"]) / "my.cnf"
        text = mariadb.server_conf(socket=Path(entry["socket"]), tmpdir=Path(entry["dir"]) / "run",
                                   server_id=entry["server_id"],
                                   tls_dir=Path(entry["tls"]) if entry.get("tls") else None,
                                   require_tls=bool(entry.get("require_tls")), role=entry.get("role", "primary"))
        write_private_for(conf, text, self.who())
        return conf

    def _launch_mariadb(self, key: str, init: Path | None = None) -> dict[str, Any]:
        entry = self.get(key) or {}
        conf = self._write_conf(entry)
        server = str(self._runnable(Path(entry["server"])))
        socket = Path(entry["socket"])
        with contextlib.suppress(FileNotFoundError):
            socket.unlink()   # left by a server that did not stop cleanly

        def argv(port: int) -> list[str]:
            extra = [f"--init-file={init}"] if init is not None else []
            return [server, f"--defaults-file={conf}", f"--datadir={entry['datadir']}", f"--port={port}",
                    f"--user={self.who().name}", *extra]

        return self._launch(key, argv, self.who(), lambda port: mariadb.ready(socket))

    # --- the generic operations, for MariaDB entries ---

    def _is_mariadb(self, key: str) -> bool:
        return (self.get(key) or {}).get("engine") == ENGINE

    def resume(self, key: str) -> dict[str, Any]:
        if not self._is_mariadb(key):
            return super().resume(key)
        entry = self.get(key) or {}
        if self.alive(key):
            return entry
        if not self.resumable(key):
            raise EngineError(f"engine {key!r} has no data to resume from ({entry.get('status')})")
        self.registry.update(key, status="starting", pid=None, port=None,
                             last_port=entry.get("port") or entry.get("last_port"))
        with self._starting(key):
            entry = self._launch_mariadb(key)
            if entry.get("role") in ("replica", "standby") and entry.get("primary") and self.alive(entry["primary"]):
                self._follow(entry, entry["primary"], again=True)
        log.info("mariadb %r resumed on %s:%d", key, HOST, entry["port"])
        return entry

    def repoint(self, key: str) -> None:
        entry = self.get(key)
        if not entry or entry.get("engine") != ENGINE:
            return super().repoint(key)
        if not entry.get("primary"):
            return None
        if self.alive(key):
            self._follow(entry, entry["primary"], again=True)
        else:
            self.resume(key)
        return None

    def snapshot(self, key: str, snapshot: str) -> Path:
        """A MariaDB snapshot: the server's binary logs up to now (closed by FLUSH BINARY LOGS) and
        the GTID position they end at; a restore replays them into a fresh server."""
        if not self._is_mariadb(key):
            return super().snapshot(key, snapshot)
        entry = self._running(key, ENGINE)
        path = self._snapshot_path(snapshot)
        if path.exists():
            raise EngineError(f"engine snapshot {snapshot!r} already exists")
        make_dir(self.snapshots_dir, 0o700)
        make_dir(path, 0o700)
        try:
            socket = Path(entry["socket"])
            rows = mariadb.run(socket, "FLUSH BINARY LOGS", "SELECT @@gtid_binlog_pos")
            logs = [row[0] for row in mariadb.run(socket, "SHOW BINARY LOGS")][:-1]   # the last one is new, empty
            (path / "binlog").mkdir(mode=0o700)
            for name in logs:
                shutil.copyfile(Path(entry["datadir"]) / name, path / "binlog" / name)
            self._save_secret(path, self._load_secret(Path(entry["dir"])))
            meta = {"engine": ENGINE, "source": key, "created": time.time(), "gtid": rows[0][0] if rows else "",
                    "binlogs": logs, **{k: entry.get(k) for k in ("user", "dbname", "version", "engine_version")}}
            (path / SNAPSHOT_META).write_text(json.dumps(meta, indent=2))
        except BaseException:
            remove_tree(path)
            raise
        return path

    def restore_window(self, key: str) -> tuple[float, float] | None:
        """A MariaDB instance's window: from its creation (its binary logs start there) to now."""
        entry = self.get(key)
        if not entry or entry.get("engine") != ENGINE:
            return super().restore_window(key)
        if not entry.get("backups"):
            return None
        return float(entry.get("window_start") or entry.get("created") or time.time()), time.time() - 1

    # --- restores ---

    def restore_mariadb(self, key: str, *, snapshot: str, password: str | None = None, require_tls: bool = False,
                        tls_source: Path | None = None, backups: bool = True) -> dict[str, Any]:
        """A new server from a snapshot: the template, then the snapshot's binary logs replayed."""
        snap = self._snapshot_path(snapshot, must_exist=True)
        meta = self._snapshot_meta(snap, ENGINE)
        secret = self._load_secret(snap)
        files = [snap / "binlog" / name for name in meta.get("binlogs", [])]
        return self._replayed(key, secret, password, meta, files, None, require_tls, tls_source, backups,
                              snapshot=snapshot)

    def restore_mariadb_to_time(self, key: str, *, source: str, when: float | None, password: str | None = None,
                                require_tls: bool = False, tls_source: Path | None = None,
                                backups: bool = True) -> dict[str, Any]:
        """RestoreDBInstanceToPointInTime: the source's binary logs (its backups) replayed into a
        fresh server up to ``when`` (None: all of them)."""
        src = self._running(source, ENGINE)
        socket = Path(src["socket"])
        mariadb.run(socket, "FLUSH BINARY LOGS")
        files = [Path(src["datadir"]) / row[0] for row in mariadb.run(socket, "SHOW BINARY LOGS")]
        secret = self._load_secret(Path(src["dir"]))
        return self._replayed(key, secret, password, src, files, when, require_tls, tls_source, backups)

    def _replayed(self, key: str, secret: dict[str, str], password: str | None, facts: dict[str, Any],
                  files: list[Path], when: float | None, require_tls: bool, tls_source: Path | None,
                  backups: bool, **fields: Any) -> dict[str, Any]:
        entry = self.start_mariadb(key, user=secret["user"], password=password or secret["password"],
                                   dbname=secret.get("dbname") or facts.get("dbname") or "",
                                   engine_version=facts.get("engine_version") or "", require_tls=require_tls,
                                   tls_source=tls_source)
        started = time.monotonic()
        with self._starting(key):
            self._replay(entry, files, when)
            entry = self.registry.update(key, backups=backups, window_start=time.time(), **fields)
        log.info("mariadb %r restored (%d binary logs replayed%s) in %.2f s", key, len(files),
                 f" up to {time.strftime('%H:%M:%S', time.gmtime(when))} UTC" if when else "",
                 time.monotonic() - started)
        return entry

    def _replay(self, entry: dict[str, Any], files: list[Path], when: float | None, after: str | None = None) -> None:
        """``mariadb-binlog`` of ``files`` (up to ``when``; past the GTID position ``after``) piped
        into the server as its admin."""
        if not files:
            return
        log_path = Path(entry["log"])
        stop = [f"--stop-datetime={time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(when))}"] if when else []
        start = [f"--start-position={after}", "--skip-gtid-strict-mode"] if after else []
        dump = subprocess.Popen([str(mariadb.tool("mariadb-binlog")), *stop, *start, *map(str, files)],
                                stdout=subprocess.PIPE, stderr=open(log_path, "ab"), env=child_env())
        try:
            load = subprocess.run([str(mariadb.tool("mariadb")), f"--socket={entry['socket']}",
                                   f"--user={mariadb.os_user()}", "--binary-mode"], stdin=dump.stdout,
                                  capture_output=True, env=child_env(), timeout=TOOL_TIMEOUT_S)
        finally:
            if dump.stdout is not None:
                dump.stdout.close()
            dump.wait(timeout=START_TIMEOUT_S)
        if load.returncode != 0 or dump.returncode != 0:
            with open(log_path, "ab") as out:
                out.write(load.stdout + load.stderr)
            raise EngineError(f"replaying binary logs into {entry['key']!r} failed; see {log_path}: {tail(log_path)}")
