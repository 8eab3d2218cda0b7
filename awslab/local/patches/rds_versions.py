"""RDS: an engine version changed in place (ModifyDBInstance EngineVersion), as RDS takes it.

moto sets any EngineVersion it is given: a downgrade, a version RDS never offered, a new major
without AllowMajorVersionUpgrade, a parameter group of the old family. RDS refuses each with
InvalidParameterCombination and these messages (as its API answers them); a version it accepts is
the minor it runs (a major alone: its current minor), and RDS first takes an automated snapshot
(``rds:preupgrade-...``), shows ``upgrading`` meanwhile (the backing's label while pg_upgrade
runs), and upgrades the instance's read replicas with it. The local AWS refuses too what it has no
server for (``local/offering.py``): no API here reports a version the engine behind it does not run.

Part of awslab's layer over moto (its patches name the rows of ``GAPS.md`` they close)."""

from __future__ import annotations

from datetime import datetime, timezone

from awslab.local.patches._base import DB_CURRENT_MINORS
from awslab.local.patches._patch import patch
from awslab.spec.catalog import db_major, version_key

RDS_BACKEND = "moto.rds.models:RDSBackend"


def rds_error(code: str, message: str):
    from moto.rds.exceptions import RDSClientError

    return RDSClientError(code, message)


def invalid(message: str):
    return rds_error("InvalidParameterCombination", message)


def target_version(engine: str, current: str, asked: str) -> str:
    """The minor RDS moves to when asked ``asked`` (a major alone: its current minor; never one
    lower than the instance runs), or AWS's refusal."""
    minors = DB_CURRENT_MINORS.get(engine, {})
    if asked in minors:
        target = minors[asked]
        if db_major(target) == db_major(current) and version_key(target) <= version_key(current):
            return current   # RDS moves to the default minor only when the current one is lower
    elif asked in minors.values() or asked == current:
        target = asked
    else:
        raise invalid(f"Cannot find upgrade target from {current} with requested version {asked}.")
    if version_key(target) < version_key(current):
        if db_major(target) != db_major(current):
            raise invalid(f"Cannot find upgrade path from {current} to {asked}.")
        raise invalid(f"Cannot upgrade {engine} from {current} to {target}")
    return target


def _check_group(backend, db, group_name: str | None, family: str) -> str | None:
    """The instance's parameter group after the upgrade: a custom one must be of the new family
    (RDS names it in its refusal); a default one becomes the new family's default."""
    name = group_name or getattr(db, "db_parameter_group_name", None)
    if not name or name.startswith("default."):
        return f"default.{family}"
    group = backend.db_parameter_groups.get(name)
    have = getattr(group, "family", None)
    if have and have != family:
        raise invalid(f"The parameter group {name} with DBParameterGroupFamily {have} can't be used for this "
                      f"instance. Use a parameter group with DBParameterGroupFamily {family}.")
    return name


def _local_refusal(engine: str, version: str) -> str | None:
    from awslab.local.backing import hooks

    if hooks.current is None:   # no engines: the control plane alone, as it says everywhere
        return None
    from awslab.local import offering

    return offering.db_refusal(engine, version)


@patch(RDS_BACKEND, "modify_db_instance", gap="rds-engine-upgrade", phase="rejects")
def modify_db_instance(original, self, db_instance_identifier, db_kwargs):
    asked = db_kwargs.get("engine_version")
    db = self.databases.get(db_instance_identifier)
    if not asked or db is None or db.engine not in DB_CURRENT_MINORS:
        return original(self, db_instance_identifier, db_kwargs)
    current = str(db.engine_version)
    target = target_version(db.engine, current, str(asked))
    kwargs = {k: v for k, v in db_kwargs.items() if k != "engine_version"}
    if target == current:
        return original(self, db_instance_identifier, kwargs)
    if db.status != "available":
        raise rds_error("InvalidDBInstanceState", "Database instance is not in available state.")
    major = db_major(target) != db_major(current)
    if major and str(db_kwargs.get("allow_major_version_upgrade", "")).lower() not in ("true", "1"):
        raise invalid("The AllowMajorVersionUpgrade flag must be present when upgrading to a new major version.")
    family = f"{db.engine}{db_major(target)}"
    group = _check_group(self, db, db_kwargs.get("db_parameter_group_name"), family) if major else None
    why = _local_refusal(db.engine, target)
    if why:
        raise invalid(f"Cannot upgrade {db.engine} from {current} to {target}: {why}.")
    # RDS's snapshot before an upgrade (automated, kept with the instance's backups).
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d-%H-%M")
    snapshot = (f"rds:preupgrade-{db.db_instance_identifier}-{current.replace('.', '-')}-to-"
                f"{target.replace('.', '-')}-{stamp}")
    self.create_auto_snapshot(db.db_instance_identifier, snapshot)
    db._awslab_upgrade = (current, target, snapshot)   # for the backing: the engines' upgrade
    modified = original(self, db_instance_identifier, {**kwargs, "engine_version": target})
    if group:   # set here: moto's modify knows no default group until one is described (made lazily)
        modified.db_parameter_group_name = group
    # Its in-Region read replicas are upgraded with it (RDS for PostgreSQL).
    for ident in list(getattr(db, "replicas", None) or []):
        replica = self.databases.get(ident.split(":")[-1])
        if replica is not None:
            replica.engine_version = target
    return modified
