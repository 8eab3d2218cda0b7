"""An engine version changed on an existing instance: what AWS does to make it, or why it refuses.

RDS upgrades a DB instance in place (ModifyDBInstance EngineVersion): a major version only with
AllowMajorVersionUpgrade, and never back down. What it costs, from AWS's own pages:

- a major upgrade of RDS for PostgreSQL takes a snapshot first, then runs pg_upgrade with the
  instance down; a Multi-AZ instance upgrades its primary and standby at the same time (no
  failover hides the downtime); its in-Region read replicas are upgraded with it
  (USER_UpgradeDBInstance.PostgreSQL.MajorVersion.html);
- a minor upgrade restarts the engine; on a Multi-AZ instance both servers at once as well
  (USER_UpgradeDBInstance.Upgrading.html); an RDS for PostgreSQL instance's read replicas are
  upgraded first, then their source (USER_UpgradeDBInstance.PostgreSQL.html, "Minor version
  upgrades": "you must first upgrade all of the read replicas before you upgrade the source");
- RDS upgrades only along its upgrade paths (DescribeDBEngineVersions' ValidUpgradeTarget; AWS's
  table in spec/rds_versions.py): a target it does not list is refused, naming the step first.

Pure: the plan calls it through the engine version's setting (aws/database.DB_SETTINGS).
"""

from __future__ import annotations

from typing import Any

from awslab.errors import UsageError
from awslab.spec import rds_versions
from awslab.spec.catalog import DB_ENGINES, db_major, version_key

SOURCE = "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_UpgradeDBInstance.PostgreSQL.MajorVersion.html"


def is_major(old: str, new: str) -> bool:
    return db_major(old) != db_major(new)


def engine_version_change(old: Any, new: Any, db: Any) -> str:
    """What changing ``db``'s engine version from ``old`` to ``new`` costs; a downgrade refused."""
    old, new = str(old), str(new)
    if version_key(new) < version_key(old):
        raise UsageError(f"database.engine_version: RDS cannot downgrade {db.engine} {old} to {new} "
                         "(it upgrades in place, never back); nothing was changed",
                         f"keep {old} (--set database.engine_version={old}); an older version needs a new instance "
                         "(`awslab down`, then `awslab up` with it, the data moved with pg_dump)")
    target = DB_ENGINES.get(db.engine, {}).get("default_minors", {}).get(new, new)   # a major alone: its minor
    why = rds_versions.path_refusal(db.engine, old, target)
    if why:
        raise UsageError(f"database.engine_version: {why}; nothing was changed",
                         f"--set database.engine_version={why.rsplit(' ', 1)[-1]} first"
                         if "first upgrade to" in why else "choose one of those targets")
    servers = "both Multi-AZ servers at once (no failover hides it)" if db.multi_az else "the Single-AZ server"
    if not is_major(old, new):
        replicas = ""
        if db.engine == "postgres" and db.read_replicas:
            replicas = f"; the read replica{'s' if db.read_replicas > 1 else ''} first, as RDS requires"
        return f"minor upgrade: an engine restart of {servers}{replicas}"
    replicas = ""
    if db.engine == "postgres" and db.read_replicas:
        replicas = f", the read replica{'s' if db.read_replicas > 1 else ''} upgraded with it"
    return (f"major upgrade (AllowMajorVersionUpgrade, a parameter group of the new family): a snapshot first, "
            f"then downtime while it upgrades {servers}{replicas}")
