"""The two kinds of RDS Multi-AZ deployment, and what RDS requires of the second.

``database.deployment = "instance"`` (the default) is a Multi-AZ DB *instance*: a primary and one
synchronous standby that serves nothing, plus the lab's read replicas. ``"cluster"`` is a Multi-AZ
DB *cluster*: CreateDBCluster makes a writer and two readable standbys in three AZs, a commit is
acknowledged once one standby has it, and the cluster has a writer endpoint and a reader endpoint.
Pure: the lab loader calls ``validate`` before any AWS call; the topology reads ``is_cluster``.

What RDS requires, each fact with its page:
- engines: MySQL and PostgreSQL only (not MariaDB, Oracle, SQL Server, Db2):
  https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/Concepts.RDS_Fea_Regions_DB-eng.Feature.MultiAZDBClusters.html
- three AZs: "The DB subnet group that you choose for the DB cluster must cover at least three
  Availability Zones": https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/create-multi-az-db-cluster.html
- storage io1, io2 or gp3, with Iops for io1/io2 (0.5 to 50 per GiB for io1; CreateDBCluster's
  Iops and StorageType): https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBCluster.html
- classes: the instance classes of "Instance class availability for Multi-AZ DB clusters" (no
  burstable db.t* class): https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/multi-az-db-clusters-concepts.html
- no stop and start, no copy of its snapshots:
  https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/multi-az-db-clusters-concepts.Limitations.html
"""

from __future__ import annotations

import re

from awslab.errors import LabError

DEPLOYMENTS = ("instance", "cluster")
CLUSTER_ENGINES = ("postgres", "mysql")
CLUSTER_MEMBERS = 3                 # a writer and two readable standbys, one per AZ
CLUSTER_CLASS_RE = re.compile(
    r"^db\.(m5d|m6gd|m6id|m6idn|r5d|r6gd|r6id|r6idn|x2iedn|c6gd|m5|m6g|m6i|m7g|r5|r6g|r6i|r7g)\."
    r"(large|xlarge|[0-9]+xlarge)$")
# GiB a Multi-AZ DB cluster's storage type takes, and its Iops per GiB (io*) where Iops is required.
CLUSTER_STORAGE = {"io1": (100, 65536), "io2": (100, 65536), "gp3": (20, 65536)}
IOPS_PER_GIB = {"io1": (0.5, 50), "io2": (0.5, 1000)}
GP3_IOPS_FROM_GIB = 400             # gp3 below this has its baseline (3,000 IOPS), set by no one
SOURCES = {
    "engines": "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/Concepts.RDS_Fea_Regions_DB-eng.Feature.MultiAZDBClusters.html",
    "azs": "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/create-multi-az-db-cluster.html",
    "api": "https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBCluster.html",
    "classes": "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/multi-az-db-clusters-concepts.html",
    "limits": "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/multi-az-db-clusters-concepts.Limitations.html",
}


def is_cluster(database) -> bool:
    return database.deployment == "cluster"


def multi_az_cluster(engine: str | None, instance_class: str | None) -> bool:
    """Whether a DB cluster is a Multi-AZ DB cluster (not Aurora): one made with a DB instance class."""
    return bool(instance_class) and not str(engine).startswith("aurora")


def instance_replicas(database) -> int:
    """Read replicas made as DB instances: a cluster's reads go to its readable standbys instead."""
    return 0 if is_cluster(database) else database.read_replicas


def iops_argument(database) -> dict[str, int]:
    """The Iops CreateDBCluster takes for the lab's storage: required for io1/io2, for gp3 only from 400 GiB."""
    if database.iops:
        return {"Iops": database.iops}
    return {}


def validate(lab) -> None:
    """RDS's rules for the lab's deployment; LabError naming the key and the fix."""
    src, d, n = lab.source, lab.database, lab.network
    if d.deployment not in DEPLOYMENTS:
        raise LabError(src, "database.deployment", f"unknown deployment '{d.deployment}'",
                       "instance (a Multi-AZ DB instance: one standby that serves nothing) or cluster "
                       "(a Multi-AZ DB cluster: a writer and two readable standbys in three AZs)")
    if not is_cluster(d):
        if d.iops:
            raise LabError(src, "database.iops", "awslab sets Iops for a Multi-AZ DB cluster's storage only",
                           "set database.iops=0, or database.deployment=cluster")
        return
    key = "database.deployment"
    if d.engine not in CLUSTER_ENGINES:
        raise LabError(src, key, f"RDS has no Multi-AZ DB cluster for {d.engine} (MySQL and PostgreSQL only)",
                       f"--set database.engine=postgres, or database.deployment=instance ({SOURCES['engines']})")
    if not d.multi_az:
        raise LabError(src, "database.multi_az", "a Multi-AZ DB cluster is always Multi-AZ (three AZs)",
                       "drop database.multi_az=false, or use database.deployment=instance")
    if n.availability_zones and len(set(n.availability_zones)) < CLUSTER_MEMBERS:
        raise LabError(src, "network.availability_zones",
                       f"a Multi-AZ DB cluster needs three AZs, the lab names {len(set(n.availability_zones))}",
                       "name three different AZs, or none to take the region's first three")
    if not CLUSTER_CLASS_RE.match(d.cluster_instance_class):
        raise LabError(src, "database.cluster_instance_class",
                       f"'{d.cluster_instance_class}' is not a class RDS offers for Multi-AZ DB clusters",
                       f"e.g. db.m6gd.large or db.r6gd.large; no burstable db.t* class ({SOURCES['classes']})")
    if d.storage_type not in CLUSTER_STORAGE:
        raise LabError(src, "database.storage_type", f"a Multi-AZ DB cluster does not take {d.storage_type} storage",
                       f"one of: {', '.join(CLUSTER_STORAGE)}")
    lo, hi = CLUSTER_STORAGE[d.storage_type]
    if not lo <= d.allocated_storage_gib <= hi:
        raise LabError(src, "database.allocated_storage_gib",
                       f"a Multi-AZ DB cluster's {d.storage_type} takes {lo} to {hi} GiB, not {d.allocated_storage_gib}")
    if d.storage_type in IOPS_PER_GIB:
        low, high = IOPS_PER_GIB[d.storage_type]
        if not low * d.allocated_storage_gib <= d.iops <= high * d.allocated_storage_gib or d.iops < 1000:
            raise LabError(src, "database.iops", f"{d.storage_type} needs Iops of 1000 or more and {low:g} to {high:g} "
                           f"per GiB ({d.allocated_storage_gib} GiB), not {d.iops}",
                           f"e.g. --set database.iops={max(1000, int(low * d.allocated_storage_gib))}")
    elif d.iops and d.allocated_storage_gib < GP3_IOPS_FROM_GIB:
        raise LabError(src, "database.iops", f"gp3 under {GP3_IOPS_FROM_GIB} GiB has its baseline 3,000 IOPS, set by no one",
                       "set database.iops=0")
    if d.read_replicas > CLUSTER_MEMBERS - 1:
        raise LabError(src, "database.read_replicas",
                       f"a Multi-AZ DB cluster serves reads on its two readable standbys; {d.read_replicas} read "
                       "replicas of a cluster awslab does not make",
                       "set database.read_replicas to 2 or fewer (the standbys serve them), or deployment=instance")
