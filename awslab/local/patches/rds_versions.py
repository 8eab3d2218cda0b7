"""RDS: an engine version changed in place (ModifyDBInstance EngineVersion), as RDS takes it.

moto sets any EngineVersion it is given: a downgrade, a version RDS never offered, a new major
without AllowMajorVersionUpgrade, a parameter group of the old family. RDS refuses each with
InvalidParameterCombination and these messages (as its API answers them); a version it accepts is
the minor it runs (a major alone: its current minor), and RDS first takes an automated snapshot
(``rds:preupgrade-...``), shows ``upgrading`` meanwhile (the backing's label while pg_upgrade
runs), and upgrades the instance's read replicas with it. The local AWS refuses too what it has no
server for (``local/offering.py``): no API here reports a version the engine behind it does not run.

A full version (``16.15``) is one RDS offers (``spec/rds_versions.OFFERED``) reached along RDS's
upgrade paths (AWS's table, ``spec/rds_versions.UPGRADE_TARGETS``); a major alone becomes the minor
the local AWS runs of it, so the API says what runs. ``DescribeDBEngineVersions`` (moto has none)
answers from the same data: the versions RDS offers for the engines a lab runs, each with its
``ValidUpgradeTarget`` from AWS's table, or, for a version the table has no row for, the later
versions RDS offers that ModifyDBInstance takes here (with engines: those it has a server of).

Part of awslab's layer over moto (its patches name the rows of ``GAPS.md`` they close)."""

from __future__ import annotations

from datetime import datetime, timezone

from awslab.local.patches._base import DB_CURRENT_MINORS
from awslab.local.patches._patch import patch
from awslab.local.side import note
from awslab.spec import rds_versions
from awslab.spec.catalog import DB_ENGINES, RDS_ENGINES, db_major, version_key

RDS_BACKEND = "moto.rds.models:RDSBackend"
RDS_RESPONSE = "moto.rds.responses:RDSResponse"


def rds_error(code: str, message: str):
    from moto.rds.exceptions import RDSClientError

    return RDSClientError(code, message)


def invalid(message: str):
    return rds_error("InvalidParameterCombination", message)


def picked_version(engine: str, asked: str) -> str:
    """The version an instance asked ``asked`` runs: a major alone becomes the minor the local AWS
    runs of it (with engines: the API reports the server's version), else the one RDS picks
    (``DB_CURRENT_MINORS``); a full version stays as asked."""
    minors = DB_CURRENT_MINORS.get(engine, {})
    if asked not in minors:
        return asked
    from awslab.local import offering
    from awslab.local.backing import hooks

    running = (offering.local_versions(engine) or {}).get(asked) if hooks.current is not None else None
    return running or minors[asked]


def unoffered(engine: str, version: str) -> bool:
    """A full version RDS does not offer (a major alone is checked against the majors)."""
    return (engine in rds_versions.OFFERED and bool(version) and not rds_versions.is_major_only(version)
            and not rds_versions.is_offered(engine, version))


def target_version(engine: str, current: str, asked: str) -> str:
    """The minor RDS moves to when asked ``asked`` (a major alone: its current minor; never one
    lower than the instance runs; only along RDS's upgrade paths), or AWS's refusal."""
    if asked in DB_CURRENT_MINORS.get(engine, {}):
        target = picked_version(engine, asked)
        if db_major(target) == db_major(current) and version_key(target) <= version_key(current):
            return current   # RDS moves to the default minor only when the current one is lower
    elif asked == current or rds_versions.is_offered(engine, asked):
        target = asked
    else:
        raise invalid(f"Cannot find upgrade target from {current} with requested version {asked}.")
    if version_key(target) < version_key(current):
        if db_major(target) != db_major(current):
            raise invalid(f"Cannot find upgrade path from {current} to {asked}.")
        raise invalid(f"Cannot upgrade {engine} from {current} to {target}")
    if rds_versions.path_refusal(engine, current, target):
        raise invalid(f"Cannot find upgrade path from {current} to {target}.")
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


def local_refusal(engine: str, version: str) -> str | None:
    from awslab.local.backing import hooks

    if hooks.current is None:   # no engines: the control plane alone, as it says everywhere
        return None
    from awslab.local import offering

    return offering.db_refusal(engine, version)


def cluster_refusal(engine: str, version: str) -> str | None:
    """Why a Multi-AZ DB cluster cannot run ``version`` here (with engines: ``offering``)."""
    from awslab.local import offering
    from awslab.local.backing import hooks

    return offering.cluster_refusal(engine, version) if hooks.current is not None else None


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
    why = local_refusal(db.engine, target)
    if why:
        raise invalid(f"Cannot upgrade {db.engine} from {current} to {target}: {why}.")
    # RDS's snapshot before an upgrade (automated, kept with the instance's backups).
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d-%H-%M")
    snapshot = (f"rds:preupgrade-{db.db_instance_identifier}-{current.replace('.', '-')}-to-"
                f"{target.replace('.', '-')}-{stamp}")
    self.create_auto_snapshot(db.db_instance_identifier, snapshot)
    note(db, upgrade=(current, target, snapshot))   # for the backing: the engines' upgrade
    modified = original(self, db_instance_identifier, {**kwargs, "engine_version": target})
    if group:   # set here: moto's modify knows no default group until one is described (made lazily)
        modified.db_parameter_group_name = group
    # Its in-Region read replicas are upgraded with it (RDS for PostgreSQL).
    for ident in list(getattr(db, "replicas", None) or []):
        replica = self.databases.get(ident.split(":")[-1])
        if replica is not None:
            replica.engine_version = target
    return modified


# --- DescribeDBEngineVersions (moto: "not implemented") -------------------------------------------

def valid_upgrade_targets(engine: str, version: str) -> list[str]:
    """RDS's ValidUpgradeTarget for ``version``: AWS's table where it has a row (the targets RDS
    still offers), else the later versions RDS offers that ModifyDBInstance takes here (with
    engines, those the local AWS has a server of)."""
    row = rds_versions.upgrade_targets(engine, version)
    if row is not None:
        return [t for t in row if rds_versions.is_offered(engine, t)]
    offered = sorted((v for minors in rds_versions.OFFERED[engine].values() for v in minors), key=version_key)
    return [t for t in offered if version_key(t) > version_key(version)
            and rds_versions.path_refusal(engine, version, t) is None and local_refusal(engine, t) is None]


def engine_version_entry(engine: str, version: str) -> dict:
    major = db_major(version)
    name = next(e["name"] for e in RDS_ENGINES if e["engine"] == engine)
    targets = [{"Engine": engine, "EngineVersion": t, "Description": f"{name} {t}",
                "AutoUpgrade": False, "IsMajorVersionUpgrade": db_major(t) != major}
               for t in valid_upgrade_targets(engine, version)]
    return {"Engine": engine, "EngineVersion": version, "DBParameterGroupFamily": f"{engine}{major}",
            "DBEngineDescription": name, "DBEngineVersionDescription": f"{name} {version}",
            "ValidUpgradeTarget": targets, "Status": "available", "SupportsReadReplica": True,
            "SupportedEngineModes": ["provisioned"], "SupportsLogExportsToCloudwatchLogs": True}


@patch(RDS_RESPONSE, gap="rds-engine-versions", phase="answers", kind="add")
def describe_db_engine_versions(self):
    """The versions RDS offers (spec/rds_versions.py), filtered as the API filters them."""
    from moto.core.responses import ActionResult

    engine, version = self.params.get("Engine"), self.params.get("EngineVersion")
    family, default_only = self.params.get("DBParameterGroupFamily"), str(self.params.get("DefaultOnly")).lower() == "true"
    if engine and engine not in rds_versions.OFFERED:
        return ActionResult({"DBEngineVersions": []})
    out = []
    for eng, majors in rds_versions.OFFERED.items():
        if engine and eng != engine:
            continue
        for major, minors in majors.items():
            for v in minors:
                if (version and version not in (v, major)) or (family and family != f"{eng}{major}"):
                    continue
                if default_only and v != picked_version(eng, major if version else DB_ENGINES[eng]["default_version"]):
                    continue
                out.append(engine_version_entry(eng, v))
    return ActionResult({"DBEngineVersions": out})
