"""PostgreSQL instances of ``Engines``: a primary (a copy of the template, or initdb), a
streaming read replica (from its primary's cold image, or pg_basebackup), a restore from a
snapshot, a replica promoted; and what every PostgreSQL part uses: the role's settings, a query,
a reload."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from awslab.local.engines import template
from awslab.local.engines.accounts import RunAs
from awslab.local.engines.base import HOST, START_TIMEOUT_S, EngineError
from awslab.local.engines.binaries import pg8000_library, pg_major
from awslab.local.engines.children import run_tool
from awslab.local.engines.core import EngineCore
from awslab.local.engines.files import chown_tree, remove_tree, slug, write_private_for
from awslab.local.engines.postgres import (
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

log = logging.getLogger("awslab.local.engines")
# A standby or replica starts from its primary's cold image while the primary is at most this many
# 1 MB WAL segments past it (wal_keep_size keeps 128 of them), else from a pg_basebackup.
COLD_FOLLOW_MAX_SEGMENTS = 32


class PostgresInstances(EngineCore):
    """PostgreSQL primaries, read replicas, restores from a snapshot and promotions."""

    def start_postgres(self, key: str, *, user: str, password: str, dbname: str = "postgres",
                       major: str | None = None, backups: bool = False) -> dict[str, Any]:
        """A new primary: a copy of the home's template for this version, user and database (see
        ``template``; initdb where no template can serve), its own password set, replication-ready
        config, started; with ``backups``, its WAL archived and a first base backup taken."""
        bindir = self._postgres_bindir(major)
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

    def _role_conf(self, entry: dict[str, Any], *, sync: bool = False, quorum: str | None = None,
                   recover_from: Path | None = None, recover_to: str | None = None) -> None:
        name = STANDBY_NAME if entry.get("role") == "standby" else slug(entry["key"])
        archive = Path(entry["backups"]) if entry.get("backups") else None
        write_private_for(Path(entry["datadir"]) / ROLE_CONF,
                          role_conf(name=name, archive=archive, sync_standby=sync, quorum=quorum,
                                    recover_from=recover_from, recover_to=recover_to), self.who())

    def _query(self, entry: dict[str, Any], sql: str, **kw: Any) -> list:
        secret = self._load_secret(Path(entry["dir"]))
        return query(entry["port"], secret["user"], secret["password"], sql, **kw)

    def _reload(self, entry: dict[str, Any]) -> None:
        self._query(entry, "SELECT pg_reload_conf()")

    def _wait_streaming(self, entry: dict[str, Any], name: str, what: str, timeout_s: float) -> None:
        """Until the follower whose application_name is ``name`` (``what``, for the error) streams
        from ``entry``: only then may commits wait for it."""
        deadline = time.monotonic() + timeout_s
        while not self._query(entry, "SELECT 1 FROM pg_stat_replication WHERE application_name = "
                                     f"'{name}' AND state = 'streaming'"):
            if time.monotonic() > deadline:
                raise EngineError(f"{what} did not stream within {timeout_s:.0f} s")
            time.sleep(0.05)

    def replica_lag(self, key: str) -> float | None:
        """Seconds behind its primary, as RDS's ReplicaLag computes it: now minus the time of the
        last transaction the replica replayed (0 when it has replayed all it received)."""
        entry = self._running(key, "postgres")
        rows = self._query(entry, REPLICA_LAG_SQL)
        return None if not rows or rows[0][0] is None else float(rows[0][0])
