"""verify's spec checks for a Multi-AZ DB cluster (``database.deployment = "cluster"``): the same
ids as the instance's (spec.db.engine, class, storage, multi-az, backups), read from the cluster's
settings (aws/db_cluster.CLUSTER_SETTINGS) and its members: three DB instances, one writer, in
three AZs. Pure functions of the World, as every check.
"""

from __future__ import annotations

from awslab.aws.db_cluster import CLUSTER_SETTINGS
from awslab.spec.deployment import CLUSTER_MEMBERS
from awslab.spec.lab import Lab
from awslab.verify.results import FAIL, PASS, SKIP, Result


def _as_lab(check: str, raw: dict, d) -> bool:
    compared = [s for s in CLUSTER_SETTINGS if s.check == check]
    return all(s.seen(raw, d) == s.wanted(d) for s in compared)


def _spec(cid: str, ok: bool, have: str, want: str, hint: str, control: str | None = None) -> Result:
    return Result(cid, PASS, have, None, control) if ok else Result(cid, FAIL, f"{have}; the lab asks for {want}", hint, control)


def spec_checks(w, lab: Lab) -> list[Result]:
    d = lab.database
    cluster = w.raw("db.cluster")
    if cluster is None:
        return [Result(f"spec.db.{n}", SKIP, "needs the Multi-AZ DB cluster (db.cluster)") for n in
                ("engine", "class", "storage", "multi-az", "backups")]
    ident = cluster.get("DBClusterIdentifier", "the cluster")
    modify = f"aws rds modify-db-cluster --db-cluster-identifier {ident} --apply-immediately"
    members = w.found["db.cluster"].get("members") or []
    writers = [m["DBInstanceIdentifier"] for m in cluster.get("DBClusterMembers", []) if m.get("IsClusterWriter")]
    azs = {m.get("AvailabilityZone") for m in members} - {None}
    out = [
        _spec("spec.db.engine", cluster.get("Engine") == d.engine and _as_lab("spec.db.engine", cluster, d),
              f"{cluster.get('Engine')} {cluster.get('EngineVersion')}", f"{d.engine} {d.engine_version}",
              "an engine change needs a new cluster: `awslab down` then `awslab up`"),
        _spec("spec.db.class", _as_lab("spec.db.class", cluster, d), cluster.get("DBClusterInstanceClass", "?"),
              d.cluster_instance_class, f"{modify} --db-cluster-instance-class {d.cluster_instance_class}"),
        _spec("spec.db.storage", _as_lab("spec.db.storage", cluster, d),
              f"{cluster.get('AllocatedStorage')} GiB {cluster.get('StorageType')}"
              + (f" {cluster['Iops']} IOPS" if cluster.get("Iops") else ""),
              f"{d.allocated_storage_gib} GiB {d.storage_type}",
              f"{modify} --storage-type {d.storage_type} --allocated-storage {d.allocated_storage_gib}"),
        _spec("spec.db.multi-az", len(members) == CLUSTER_MEMBERS and len(azs) == CLUSTER_MEMBERS and len(writers) == 1,
              f"Multi-AZ DB cluster: {len(members)} DB instances in {len(azs)} AZs, writer {', '.join(writers) or 'none'}",
              "a writer and two readable standbys in three AZs",
              "RDS makes the members itself: wait for them, or recreate the cluster (`awslab down`, `awslab up`)", "RDS.15"),
        _spec("spec.db.backups", _as_lab("spec.db.backups", cluster, d),
              f"backups kept {cluster.get('BackupRetentionPeriod', 0)} days", f"{d.backup_retention_days} days",
              f"{modify} --backup-retention-period {d.backup_retention_days}", "RDS.11"),
    ]
    return out


def parameter_group_users(w) -> dict[str, list]:
    """Which DB cluster parameter group the cluster uses (for spec.db.parameters)."""
    cluster = w.raw("db.cluster")
    return {"db.cluster": [cluster.get("DBClusterParameterGroup")]} if cluster else {}
