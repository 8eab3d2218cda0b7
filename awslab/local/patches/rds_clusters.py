"""RDS: Multi-AZ DB clusters (CreateDBCluster with a DB instance class, engine postgres or mysql)
as RDS makes them. moto keeps such a cluster with no DB instance at all, available at once,
refuses to delete it only when it has members, and takes any class, storage or subnet group.

RDS itself creates the cluster's three DB instances (``<cluster>-instance-1`` the writer, then two
readers), one in each of three AZs of the subnet group; DescribeDBInstances lists them with the
cluster's identifier, DescribeDBClusters lists them as DBClusterMembers (IsClusterWriter). The
cluster and its members are ``creating`` on the latency timeline (``rds.cluster.create``); a
failover is ``failing-over`` (``rds.cluster.failover``) while a reader becomes the writer;
DeleteDBCluster deletes the members with the cluster (a final DB cluster snapshot, tagged as the
cluster, unless SkipFinalSnapshot), ``deleting`` for ``rds.delete``; RestoreDBClusterFromSnapshot
restores one made with a managed master password (moto failed on it). Requests RDS refuses are
refused with its errors: an engine with no Multi-AZ DB cluster, a class or a storage type the
cluster does not take, Iops missing for io1/io2, a subnet group over fewer than three AZs, a
stop (not supported for Multi-AZ DB clusters).

Part of awslab's layer over moto (its patches name the rows of ``GAPS.md`` they close)."""

from __future__ import annotations

from awslab.local import latency
from awslab.local.patches._base import DB_CURRENT_MINORS, DB_MAJOR_VERSIONS, backing_state, init_dicts, linger
from awslab.local.patches._patch import patch
from awslab.local.patches.rds import RDS_BACKEND, RDS_RESPONSE, rds_error
from awslab.spec.deployment import CLUSTER_MEMBERS, CLUSTER_STORAGE, IOPS_PER_GIB, multi_az_cluster

DB_CLUSTER = "moto.rds.models:DBCluster"


def is_multi_az_cluster(cluster) -> bool:
    """A Multi-AZ DB cluster (not Aurora): made with a DB instance class."""
    return multi_az_cluster(cluster.engine, getattr(cluster, "db_cluster_instance_class", None))


def _cluster_status(self):
    # A Multi-AZ DB cluster's: the timeline and the engines decide. Any other (Aurora, Neptune) is
    # left as moto has it: "creating" once, then "available".
    own = self._status
    if not is_multi_az_cluster(self):
        if own == "creating":
            self._status = "available"
        return own
    return latency.phase(self) or backing_state(self) or ("available" if own == "creating" else own)


def _set_cluster_status(self, value):
    self._status = value


patch(DB_CLUSTER, "status", gap="rds-cluster-states", phase="states", kind="replace")(
    property(_cluster_status, _set_cluster_status))


# The clusters dict lingers a deleted cluster in "deleting" (an ExpiringDict; rds.py does the same
# for DB instances in an earlier phase).
patch(RDS_BACKEND, "__init__", gap="rds-cluster-states", phase="rejects")(init_dicts("clusters"))


def _subnet_azs(backend, group_name: str | None) -> set[str]:
    group = backend.subnet_groups.get(group_name or "") if group_name else None
    # moto's ``subnets`` is the describe's dicts; the EC2 subnets themselves are in ``_subnets``.
    return {getattr(s, "availability_zone", None) for s in (getattr(group, "_subnets", None) or [])} - {None}


def _refuse_cluster(backend, kw: dict) -> None:
    """RDS's refusals for a Multi-AZ DB cluster request (CreateDBCluster's, its documented constraints)."""
    engine, klass = kw.get("engine"), kw.get("db_cluster_instance_class")
    # StorageType defaults to io1 for a Multi-AZ DB cluster (the API reference's "Default").
    storage, allocated, iops = kw.get("storage_type") or "io1", kw.get("allocated_storage"), kw.get("iops")
    if kw.get("master_user_password") and kw.get("manage_master_user_password"):
        raise rds_error("InvalidParameterCombination", "Can't specify both MasterUserPassword and ManageMasterUserPassword.")
    if engine not in ("postgres", "mysql"):
        raise rds_error("InvalidParameterValue", f"Multi-AZ DB clusters are not available for the {engine} engine.")
    version = str(kw.get("engine_version") or "")
    if version and not any(version == v or version.startswith(v + ".") for v in DB_MAJOR_VERSIONS.get(engine, ())):
        raise rds_error("InvalidParameterCombination", f"Cannot find version {version} for {engine}")
    if not klass:
        raise rds_error("InvalidParameterValue", "DBClusterInstanceClass is required to create a Multi-AZ DB cluster.")
    if klass.startswith("db.t"):   # no burstable class runs a Multi-AZ DB cluster (its class list)
        raise rds_error("InvalidParameterCombination",
                        f"RDS does not support creating a DB cluster with the following combination: DBClusterInstanceClass="
                        f"{klass}, Engine={engine}, EngineVersion={version or 'default'}. For supported combinations of "
                        "instance class and database engine version, see the documentation.")
    if not allocated:
        raise rds_error("InvalidParameterValue", "AllocatedStorage is required to create a Multi-AZ DB cluster.")
    if storage not in CLUSTER_STORAGE:
        raise rds_error("InvalidParameterCombination",
                        f"Invalid storage type for Multi-AZ DB clusters: {storage}. Valid values: io1, io2, gp3.")
    lo, hi = CLUSTER_STORAGE[storage]
    if not lo <= int(allocated) <= hi:
        raise rds_error("InvalidParameterValue", f"Invalid storage size for {storage}: {allocated} GiB (from {lo} to {hi}).")
    if storage in IOPS_PER_GIB:
        low, high = IOPS_PER_GIB[storage]
        if not iops:
            raise rds_error("InvalidParameterCombination", f"Iops is required for {storage} storage.")
        if not low * int(allocated) <= int(iops) <= high * int(allocated):
            raise rds_error("InvalidParameterCombination",
                            f"The IOPS to storage ratio must be between {low:g} and {high:g} for {storage}.")
    elif iops and int(allocated) < 400:
        raise rds_error("InvalidParameterCombination",
                        "You can't specify IOPS or storage throughput for engine " f"{engine} and a storage size less than 400.")
    azs = _subnet_azs(backend, kw.get("db_subnet_group_name"))
    if len(azs) < CLUSTER_MEMBERS:
        raise rds_error("DBSubnetGroupDoesNotCoverEnoughAZs",
                        "The DB subnet group doesn't meet Availability Zone (AZ) coverage requirement. Current AZ coverage: "
                        f"{', '.join(sorted(azs)) or 'none'}. Add subnets to cover at least 3 AZs.")


@patch(RDS_BACKEND, gap=("rds-cluster-members", "rds-cluster-refusals", "rds-cluster-states"), phase="rejects")
def create_db_cluster(original, self, kwargs):
    if not kwargs.get("db_cluster_instance_class") or kwargs.get("engine") not in ("postgres", "mysql"):
        # Not a Multi-AZ DB cluster request (Aurora, Neptune, or no instance class): as moto has it.
        return original(self, kwargs)
    _refuse_cluster(self, kwargs)
    from awslab.local.patches import rds_versions

    version = str(kwargs.get("engine_version") or "")
    if rds_versions.unoffered(kwargs["engine"], version):
        raise rds_error("InvalidParameterCombination", f"Cannot find version {version} for {kwargs['engine']}")
    if version in DB_CURRENT_MINORS.get(kwargs["engine"], {}):   # a major alone: the minor it runs here
        kwargs = {**kwargs, "engine_version": rds_versions.picked_version(kwargs["engine"], version)}
    elif version and rds_versions.cluster_refusal(kwargs["engine"], version):
        raise rds_error("InvalidParameterCombination", f"Cannot create {kwargs['engine']} {version}: "
                        f"{rds_versions.cluster_refusal(kwargs['engine'], version)}.")
    kwargs = {**kwargs, "storage_type": kwargs.get("storage_type") or "io1",
              "availability_zones": sorted(_subnet_azs(self, kwargs.get("db_subnet_group_name")))[:CLUSTER_MEMBERS]}
    cluster = original(self, kwargs)
    latency.start(cluster, "rds.cluster.create")
    make_members(self, cluster)
    return cluster


def make_members(backend, cluster) -> list:
    """The cluster's writer and two readers, one per AZ, as RDS creates them (not through
    CreateDBInstance: no engine of their own is started for them by the instance hooks)."""
    from moto.rds.models import DBInstanceClustered

    members = []
    for i, az in enumerate(cluster.availability_zones[:CLUSTER_MEMBERS], start=1):
        ident = f"{cluster.db_cluster_identifier}-instance-{i}"
        member = DBInstanceClustered(
            backend=backend, db_cluster_identifier=cluster.db_cluster_identifier, db_instance_identifier=ident,
            engine=cluster.engine, db_instance_class=cluster.db_cluster_instance_class, availability_zone=az,
            db_subnet_group_name=cluster.db_subnet_group_name, vpc_security_group_ids=list(cluster.vpc_security_group_ids),
            storage_type=cluster.storage_type, iops=cluster.iops, storage_encrypted=cluster.storage_encrypted,
            publicly_accessible=cluster.publicly_accessible, port=cluster.port, master_username=cluster.master_username,
            tags=[], promotion_tier=1)
        member.is_cluster_writer = i == 1
        latency.start(member, "rds.cluster.create")
        backend.databases[ident] = member
        members.append(member)
    return members


@patch(RDS_RESPONSE, "delete_db_cluster", gap="rds-cluster-final-snapshot", phase="rejects")
def delete_db_cluster_request(original, self):
    ident = self.params.get("DBClusterIdentifier")
    cluster = self.backend.clusters.get(ident) if ident else None
    if cluster is not None and is_multi_az_cluster(cluster):
        skip = str(self.params.get("SkipFinalSnapshot", "false")).lower() == "true"
        final = self.params.get("FinalDBSnapshotIdentifier")
        if cluster.status == "deleting":
            raise rds_error("InvalidDBClusterStateFault", f"Cluster {ident} is already being deleted.")
        if not skip and not final:
            raise rds_error("InvalidParameterCombination",
                            "FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is specified.")
        if skip and final:
            raise rds_error("InvalidParameterCombination",
                            "FinalDBSnapshotIdentifier can not be specified when deleting a cluster with SkipFinalSnapshot.")
    return original(self)


@patch(RDS_BACKEND, gap=("rds-cluster-members", "rds-cluster-states"), phase="rejects")
def delete_db_cluster(original, self, cluster_identifier, snapshot_name=None):
    cluster = self.clusters.get(cluster_identifier)
    if cluster is None or not is_multi_az_cluster(cluster):
        return original(self, cluster_identifier, snapshot_name)
    if cluster.deletion_protection:
        raise rds_error("InvalidParameterCombination",
                        "Cannot delete protected Cluster, please disable deletion protection and try again.")
    members = [m.db_instance_identifier for m in cluster.members]
    for ident in members:   # a Multi-AZ DB cluster's members go with it (moto: refused while it has any)
        dict.pop(self.databases, ident.lower(), None)
        dict.pop(self.databases, ident, None)
    deleted = original(self, cluster_identifier, snapshot_name)
    if linger(deleted, "rds.delete", "deleting"):
        self.clusters[cluster_identifier] = deleted
    return deleted


@patch(RDS_BACKEND, gap="rds-cluster-failover", phase="rejects")
def failover_db_cluster(original, self, db_cluster_identifier, target_db_instance_identifier=None):
    cluster = self.clusters.get(db_cluster_identifier)
    if cluster is not None and is_multi_az_cluster(cluster) and cluster.status != "available":
        raise rds_error("InvalidDBClusterStateFault",
                        f"DbCluster {db_cluster_identifier} is in {cluster.status} state but expected it to be available.")
    result = original(self, db_cluster_identifier, target_db_instance_identifier)
    if is_multi_az_cluster(result):
        latency.start(result, "rds.cluster.failover")
    return result


@patch(DB_CLUSTER, "get_cfg", gap="rds-cluster-restore", phase="answers")
def get_cfg(original, self):
    """What RestoreDBClusterFromSnapshot copies of the snapshot's cluster: moto reads a master
    password that a cluster made with ManageMasterUserPassword never had (HTTP 500); the restored
    cluster makes a managed secret of its own, and takes none of the local AWS's own note on it
    (``_awslab``, local/side.py: the engines' members and writer; the restored cluster's are its own)."""
    self.__dict__.setdefault("_master_user_password", None)
    cfg = original(self)
    return {k: v for k, v in cfg.items() if not k.startswith("_awslab") and k != "master_user_secret"}


@patch(RDS_BACKEND, gap="rds-cluster-refusals", phase="rejects")
def delete_db_cluster_parameter_group(original, self, db_cluster_parameter_group_name):
    """Refused while a DB cluster uses the group, one being deleted included (a stack's delete
    retries it until the cluster is gone, as CloudFormation deletes the group after the cluster)."""
    users = [c.db_cluster_identifier for c in self.clusters.values()
             if str(getattr(c, "parameter_group", "")).lower() == str(db_cluster_parameter_group_name).lower()]
    if users:
        raise rds_error("InvalidDBParameterGroupState",
                        f"One or more database clusters are still members of this parameter group "
                        f"{db_cluster_parameter_group_name}, so the group cannot be deleted (first: {users[0]}).")
    return original(self, db_cluster_parameter_group_name)


@patch(RDS_BACKEND, gap="rds-cluster-refusals", phase="rejects")
def stop_db_cluster(original, self, cluster_identifier):
    cluster = self.clusters.get(cluster_identifier)
    if cluster is not None and is_multi_az_cluster(cluster):
        raise rds_error("InvalidDBClusterStateFault", "Stopping and starting Multi-AZ DB clusters isn't supported.")
    return original(self, cluster_identifier)


@patch(RDS_BACKEND, gap=("rds-cluster-members", "rds-cluster-states"), phase="rejects")
def modify_db_cluster(original, self, kwargs):
    """ModifyDBCluster on a Multi-AZ DB cluster changes its members too, as RDS does (their class
    and storage are the cluster's: DescribeDBInstances shows the new ones); the cluster and its
    members are ``modifying`` for the profile's ``rds.modify``. moto changed the cluster alone and
    answered ``available`` at once."""
    ident = kwargs.get("new_db_cluster_identifier") or kwargs["db_cluster_identifier"]   # moto overwrites it
    result = original(self, kwargs)
    cluster = self.clusters.get(ident)
    if cluster is None or not is_multi_az_cluster(cluster):
        return result
    changed = {"db_instance_class": kwargs.get("db_cluster_instance_class"),
               "allocated_storage": kwargs.get("allocated_storage"), "storage_type": kwargs.get("storage_type"),
               "iops": kwargs.get("iops")}
    if any(v is not None for v in changed.values()):
        ident = cluster.db_cluster_identifier
        for member in [db for db in list(self.databases.values()) if getattr(db, "db_cluster_identifier", None) == ident]:
            for attr, value in changed.items():
                if value is not None:
                    setattr(member, attr, value)
            latency.start(member, "rds.modify")
        latency.start(cluster, "rds.modify")
    return result
