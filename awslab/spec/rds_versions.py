"""The full engine versions RDS offers (MAJOR.MINOR) and the upgrades it allows between them, as
data with where each table comes from. Pure: the lab loader, the plan's judge of a version change
(spec/upgrades.py) and the local AWS (its DescribeDBEngineVersions, CreateDBInstance and
ModifyDBInstance) read here; catalog.DB_ENGINES keeps the majors and the minor a major alone picks.

``OFFERED``: the minors RDS creates today, for the majors a lab runs. Source: AWS's own API as AWS
publishes it in cfn-lint (aws-cloudformation/cfn-lint, AWS CloudFormation's linter) 1.58.0, the
newest on PyPI on 2026-12-06: ``src/cfnlint/data/schemas/extensions/aws_rds_dbinstance/
engine_version.json`` minus ``engine_version_deprecated.json``, both written by its
``scripts/update_schemas_from_aws_api.py`` from ``DescribeDBEngineVersions(IncludeAll=True)`` in
us-east-1 (a version whose ``Status`` is ``deprecated`` goes to the second file). Its newest version
stamp, ``8.0.46-rds.20260908``, dates the call after 2026-09-08. Left out: RDS Extended Support's
``-rds.YYYYMMDD`` builds (``13.23-rds.20260514``), which a lab does not name. MariaDB: that script
records deprecations for aurora, mysql and postgres only, so its MariaDB list still holds minors RDS
has deprecated since (AWS's MariaDB.Concepts.VersionMgmt page keeps a minor about a year): such a
minor passes here and RDS itself refuses it at `up` on --target aws.

``UPGRADE_TARGETS``: DescribeDBEngineVersions' ``ValidUpgradeTarget`` for RDS for PostgreSQL, rows
of AWS's table "Current source version / Upgrade targets" on
https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_UpgradeDBInstance.PostgreSQL.MajorVersion.html,
read (2026-12-06) from the copy docs.amazonaws.cn published of it when 17.5 was the newest version
it named. No copy naming 18.x could be reached (no internet here), so the table speaks for the
targets it knew, up to ``TABLE_HORIZON`` per major: a target newer than that (18.4, 17.10) is one
the table is silent about, and awslab refuses nothing on its account (RDS decides at `up`). Its
rows are kept as the page has them, including 16.8's, which lists no 16.x target.
"""

from __future__ import annotations

from awslab.spec.catalog import db_major, version_key

OFFERED_SOURCE = ("cfn-lint 1.58.0 (aws-cloudformation/cfn-lint): aws_rds_dbinstance/engine_version.json minus "
                  "engine_version_deprecated.json, from DescribeDBEngineVersions(IncludeAll=True), us-east-1, "
                  "after 2026-09-08")
UPGRADE_SOURCE = ("https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_UpgradeDBInstance.PostgreSQL.MajorVersion.html "
                  "(its table as published when 17.5 was the newest 17; read 2026-12-06)")

OFFERED: dict[str, dict[str, tuple[str, ...]]] = {
    "postgres": {
        "13": ("13.23",),
        "14": ("14.18", "14.19", "14.20", "14.21", "14.22", "14.23", "14.24"),
        "15": ("15.13", "15.14", "15.15", "15.16", "15.17", "15.18", "15.19"),
        "16": ("16.9", "16.10", "16.11", "16.12", "16.13", "16.14", "16.15"),
        "17": ("17.5", "17.6", "17.7", "17.8", "17.9", "17.10", "17.11"),
        "18": ("18.1", "18.2", "18.3", "18.4", "18.6"),
    },
    "mysql": {
        "8.0": ("8.0.42", "8.0.43", "8.0.44", "8.0.45", "8.0.46"),
        "8.4": ("8.4.5", "8.4.6", "8.4.7", "8.4.8", "8.4.9", "8.4.10", "8.4.11"),
    },
    "mariadb": {
        "10.6": ("10.6.5", "10.6.7", "10.6.8", "10.6.9", "10.6.10", "10.6.11", "10.6.12", "10.6.13", "10.6.14",
                 "10.6.15", "10.6.16", "10.6.17", "10.6.18", "10.6.19", "10.6.20", "10.6.21", "10.6.22", "10.6.23",
                 "10.6.24", "10.6.25", "10.6.27", "10.6.28"),
        "10.11": ("10.11.4", "10.11.5", "10.11.6", "10.11.7", "10.11.8", "10.11.9", "10.11.10", "10.11.11",
                  "10.11.13", "10.11.14", "10.11.15", "10.11.16", "10.11.18", "10.11.19"),
        "11.4": ("11.4.3", "11.4.4", "11.4.5", "11.4.7", "11.4.8", "11.4.9", "11.4.10", "11.4.12", "11.4.13"),
    },
}

_17 = ("17.5", "17.4", "17.3", "17.2", "17.1")
UPGRADE_TARGETS: dict[str, dict[str, tuple[str, ...]]] = {
    "postgres": {
        "17.4": ("17.5",),
        "17.3": ("17.5", "17.4"),
        "17.2": ("17.5", "17.4", "17.3"),
        "17.1": ("17.5", "17.4", "17.3", "17.2"),
        "16.9": ("17.5",),
        "16.8": ("17.5", "17.4"),
        "16.7": ("17.5", "17.4", "17.3", "16.8"),
        "16.6": ("17.5", "17.4", "17.3", "17.2", "16.8", "16.7"),
        "16.5": (*_17, "16.8", "16.7", "16.6"),
        "16.4": (*_17, "16.8", "16.7", "16.6", "16.5"),
        "16.3": (*_17, "16.8", "16.7", "16.6", "16.5", "16.4"),
        "16.2": (*_17, "16.8", "16.7", "16.6", "16.5", "16.4", "16.3"),
        "16.1": (*_17, "16.8", "16.7", "16.6", "16.5", "16.4", "16.3", "16.2"),
    },
}


def _horizon(engine: str) -> dict[str, str]:
    """The newest target the table names, per major: beyond it the table is silent."""
    out: dict[str, str] = {}
    for targets in UPGRADE_TARGETS.get(engine, {}).values():
        for t in targets:
            m = db_major(t)
            if m not in out or version_key(t) > version_key(out[m]):
                out[m] = t
    return out


TABLE_HORIZON = {engine: _horizon(engine) for engine in UPGRADE_TARGETS}


def is_major_only(version: str) -> bool:
    """"16" or "8.0": a major alone (RDS picks its minor); "16.14", "8.0.45": a full version."""
    return db_major(str(version)) == str(version)


def offered_minors(engine: str, major: str) -> tuple[str, ...]:
    return OFFERED.get(engine, {}).get(major, ())


def is_offered(engine: str, version: str) -> bool:
    """A full version RDS creates today (a major alone is the catalog's business)."""
    return str(version) in offered_minors(engine, db_major(str(version)))


def upgrade_targets(engine: str, source: str) -> tuple[str, ...] | None:
    """AWS's published upgrade targets from ``source`` (None: the table has no row for it)."""
    return UPGRADE_TARGETS.get(engine, {}).get(str(source))


def path_refusal(engine: str, source: str, target: str) -> str | None:
    """Why RDS does not upgrade ``source`` to ``target`` directly, by AWS's table; None when the
    table allows it or says nothing about it (no row for the source, a target newer than it knows)."""
    targets = upgrade_targets(engine, source)
    horizon = TABLE_HORIZON.get(engine, {}).get(db_major(str(target)))
    if targets is None or str(target) in targets or horizon is None \
            or version_key(str(target)) > version_key(horizon):
        return None
    same = [t for t in targets if db_major(t) == db_major(str(source))]
    step = (f"first upgrade to {max(same, key=version_key)}" if same
            else f"its upgrade targets from {source}: {', '.join(targets)}")
    return f"RDS does not upgrade {engine} {source} to {target} directly; {step}"
