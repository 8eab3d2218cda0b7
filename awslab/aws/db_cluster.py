"""RDS: a Multi-AZ DB cluster (``database.deployment = "cluster"``), its DB cluster parameter
group and its cluster snapshots.

CreateDBCluster with a DB instance class makes a Multi-AZ DB cluster (not Aurora): RDS itself
creates its three DB instances, a writer and two readable standbys in three AZs of the subnet
group, and gives the cluster a writer endpoint and a reader endpoint (spread over the standbys).
Its members belong to the cluster (discovery in aws/database.py skips them: they are made,
failed over and deleted through the cluster), so the cluster is the stack's one DB resource. Like
the primary it is encrypted, never public, its master password managed by RDS in Secrets Manager,
its tags copied to its snapshots; DeleteDBCluster keeps a final DB cluster snapshot.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

from botocore.exceptions import ClientError

from awslab.aws._common import owned, snapshot_ready, stack_arns, utc
from awslab.aws.database import AS_FOR_A_CLUSTER
from awslab.aws.parameters import DB_PARAMETERS, ParameterGroup, db_family, values
from awslab.engine import waiting
from awslab.engine.run import NOT_VISIBLE_GRACE_S, Run, create_or_adopt
from awslab.errors import OperationError, UsageError
from awslab.spec import cfn, pricing
from awslab.spec.catalog import db_major, version_as_lab
from awslab.spec.deployment import iops_argument
from awslab.spec.model import Change, Desired, Found, Setting, changes_in_place, modify_arguments, parameters
from awslab.spec.tags import TAG_RESOURCE, TAG_RESTORED_FROM, from_tag_list, origin_tags, owned_by
from awslab.spec.topology import names

FAILED_STATES = {"failed", "incompatible-parameters", "incompatible-network", "inaccessible-encryption-credentials",
                 "storage-full", "incompatible-restore"}
_NOT_FOUND = {"DBClusterNotFoundFault"}
_group_in_use = waiting.retry_eventual({"InvalidDBParameterGroupState"}, within_s=15 * 60)

# The cluster's settings with their AWS names (CreateDBCluster, DescribeDBClusters, AWS::RDS::DBCluster),
# read by create, the export (``export``) and verify's spec checks. The engine
# version and the class go into the template by hand, as for the instance (a minor version; a
# parameter); Iops is spec/deployment.iops_argument's (the same name in both).
CLUSTER_SETTINGS = (
    Setting("database.engine", "engine", create=("Engine",), describe="Engine", cfn=("Engine",)),
    Setting("database.engine_version", "engine_version", create=("EngineVersion",), describe="EngineVersion",
            check="spec.db.engine", read=db_major, read_for=version_as_lab),
    Setting("database.cluster_instance_class", "cluster_instance_class", create=("DBClusterInstanceClass",),
            modify=("DBClusterInstanceClass",), describe="DBClusterInstanceClass", check="spec.db.class"),
    Setting("database.allocated_storage_gib", "allocated_storage_gib", create=("AllocatedStorage",),
            modify=("AllocatedStorage",), describe="AllocatedStorage", cfn=("AllocatedStorage",),
            check="spec.db.storage", grows_only=True),
    Setting("database.storage_type", "storage_type", create=("StorageType",), describe="StorageType",
            cfn=("StorageType",), check="spec.db.storage"),
    *AS_FOR_A_CLUSTER,
    Setting("database.database_name", "database_name", create=("DatabaseName",), describe="DatabaseName",
            cfn=("DatabaseName",)),
    Setting("database.port", "port", create=("Port",), cfn=("Port",)),
    # RDS's weekly window, as for the instance (spec/windows.py); left empty, RDS picks one.
    Setting("database.maintenance_window", "maintenance_window", create=("PreferredMaintenanceWindow",),
            modify=("PreferredMaintenanceWindow",), describe="PreferredMaintenanceWindow",
            cfn=("PreferredMaintenanceWindow",), read=str.lower, optional=True),
)


def _cluster_attrs(cluster: dict, members: list[dict]) -> dict:
    return {
        "raw": cluster, "arn": cluster.get("DBClusterArn"), "engine": cluster.get("Engine"),
        "engine_version": cluster.get("EngineVersion"), "class": cluster.get("DBClusterInstanceClass"),
        "multi_az": True, "endpoint": cluster.get("Endpoint"), "reader_endpoint": cluster.get("ReaderEndpoint"),
        "port": cluster.get("Port"), "secret_arn": (cluster.get("MasterUserSecret") or {}).get("SecretArn"),
        "storage_gib": cluster.get("AllocatedStorage"), "deletion_protection": cluster.get("DeletionProtection"),
        "writer": next((m["DBInstanceIdentifier"] for m in cluster.get("DBClusterMembers", []) if m.get("IsClusterWriter")),
                       None),
        "members": members,   # the member DB instances as DescribeDBInstances shows them
        "restored_from": from_tag_list(cluster.get("TagList")).get(TAG_RESTORED_FROM),
    }


def _members(run: Run, cluster: dict) -> list[dict]:
    ids = [m["DBInstanceIdentifier"] for m in cluster.get("DBClusterMembers", [])]
    if not ids:
        return []
    rds = run.client("rds")
    return [db for page in rds.get_paginator("describe_db_instances").paginate(
        Filters=[{"Name": "db-cluster-id", "Values": [cluster["DBClusterIdentifier"]]}]) for db in page["DBInstances"]]


def discover(run: Run) -> list[Found]:
    """The stack's Multi-AZ DB cluster and its parameter group. Only a stack whose tagged ARNs
    (one GetResources for the whole discovery) hold a cluster pays a DescribeDBClusters: an
    instance stack's no-op `up` sends none (a cluster not yet listed there is adopted by `up`'s
    create, as every kind is)."""
    rds = run.client("rds")
    out: list[Found] = []
    arns = stack_arns(run)
    idents = sorted(arn.rsplit(":", 1)[-1] for arn in arns if ":cluster:" in arn)
    for ident in idents:
        try:
            clusters = rds.describe_db_clusters(DBClusterIdentifier=ident)["DBClusters"]
        except rds.exceptions.DBClusterNotFoundFault:
            continue
        for cluster in clusters:
            tags = from_tag_list(cluster.get("TagList"))
            if not owned_by(tags, run.stack):
                continue
            key = tags.get(TAG_RESOURCE) or f"db.{cluster['DBClusterIdentifier']}"
            out.append(Found(key, "db-cluster", cluster["DBClusterIdentifier"], cluster["Status"],
                             created=cluster.get("ClusterCreateTime"), attrs=_cluster_attrs(cluster, _members(run, cluster))))
    if not idents and not any(":cluster-pg:" in arn for arn in arns):
        return out
    name = names(run.stack, run.ctx.region)["db.cluster-parameter-group"]
    group = DbClusterParameterGroup().find(run, "db.cluster-parameter-group", name, arns)
    return out + ([group] if group is not None else [])


class DbCluster:
    kind = "db-cluster"
    capabilities = frozenset({"cost", "export", "failover", "final-snapshot", "ready", "settings"})

    def estimate(self, d: Desired, region: str) -> list[pricing.Line]:
        return pricing.database_lines(d.spec["database"], region) + [
            pricing.secret_line("DB master password (managed by RDS)", region)]

    def priced(self, f: Found, region: str) -> list[pricing.Line]:
        """Three instances of its class, each with the cluster's storage, and its master password."""
        return pricing.db_lines(f"RDS {f.get('engine')} {f.get('class')} Multi-AZ DB cluster (3 instances)",
                                f.get("engine") or "", f.get("class") or "", (f.get("raw") or {}).get("StorageType", "io1"),
                                f.get("storage_gib") or 0, 3, region) + [
            pricing.secret_line("DB master password (managed by RDS)", region)]
    # What the progress line says it waits for; the transition whose AWS duration `restore` quotes.
    what = "RDS DB cluster"

    def export(self, x: cfn.ExportFor) -> cfn.Export | None:
        """The Multi-AZ DB cluster (``database.deployment = "cluster"``) in place of the DB instance and
        its replicas (its two readable standbys serve reads), from the table `up` creates it from and
        the Iops it sends (io1/io2 need them); what awslab always sets (managed password, never public,
        tags copied to snapshots, a final snapshot on delete) set as ``create`` sets it. Its outputs:
        the writer endpoint (``DbEndpoint``, as the instance's), the reader endpoint, the master secret."""
        d = x.lab.database
        if not x.cluster:
            return None
        cluster = {"Type": "AWS::RDS::DBCluster", "DeletionPolicy": "Snapshot", "UpdateReplacePolicy": "Snapshot",
                   "Properties": {
                       "DBClusterIdentifier": x.name("db.cluster"), **parameters(CLUSTER_SETTINGS, d, "cfn"),
                       **iops_argument(d), "EngineVersion": cfn.minor(d.engine, d.engine_version),
                       "DBClusterInstanceClass": cfn.ref("DbClusterInstanceClass"),
                       "CopyTagsToSnapshot": True, "ManageMasterUserPassword": True, "PubliclyAccessible": False,
                       "DBSubnetGroupName": cfn.ref("DbSubnetGroup"),
                       "DBClusterParameterGroupName": cfn.ref("DbClusterParameterGroup"),
                       "VpcSecurityGroupIds": [cfn.group_id("DbSecurityGroup")], "Tags": cfn.tags("db.cluster", x.lab)}}
        if not iops_argument(d):
            # cfn-lint's E3692 asks every Multi-AZ DB cluster for Iops, after CreateDBCluster's reference
            # ("required to create a Multi-AZ DB cluster"); RDS refuses Iops on gp3 under 400 GiB, whose
            # baseline is set by no one (spec/deployment.py). Told so here, for this resource only.
            cluster["Metadata"] = {"cfn-lint": {"config": {"ignore_checks": ["E3692"]}}}
        return cfn.Export({"DbCluster": cluster}, {
            "DbEndpoint": {"Value": {"Fn::GetAtt": ["DbCluster", "Endpoint.Address"]}},
            "DbReaderEndpoint": {"Value": {"Fn::GetAtt": ["DbCluster", "ReadEndpoint.Address"]}},
            "DbMasterSecretArn": {"Value": {"Fn::GetAtt": ["DbCluster", "MasterUserSecret.SecretArn"]}}})

    def _probe(self, run: Run, ident: str, latest: dict):
        rds = run.client("rds")
        return waiting.status_probe(lambda: rds.describe_db_clusters(DBClusterIdentifier=ident)["DBClusters"][0],
                                    "Status", _NOT_FOUND, latest)

    def create(self, run: Run, d: Desired) -> Found:
        db = d.spec["database"]
        rds = run.client("rds")
        cluster = create_or_adopt(
            run, f"RDS DB cluster {d.name}",
            lambda: rds.create_db_cluster(
                DBClusterIdentifier=d.name, **parameters(CLUSTER_SETTINGS, db, "create"), **iops_argument(db),
                # drill --compare's temporary cluster on an instance stack: RDS's default group of its
                # family, and a subnet group of its own over three AZs (the stack's covers two).
                DBClusterParameterGroupName=d.spec.get("parameter_group") or run.ref("db.cluster-parameter-group").id,
                DBSubnetGroupName=run.ref(d.spec.get("subnet_group", "db.subnet-group")).id,
                VpcSecurityGroupIds=[run.ref("sg.db").id],
                PubliclyAccessible=False, ManageMasterUserPassword=True, CopyTagsToSnapshot=True,
                Tags=run.tag_list(d.key, d.name))["DBCluster"],
            "DBClusterAlreadyExistsFault",
            lambda: rds.describe_db_clusters(DBClusterIdentifier=d.name)["DBClusters"][0],
            lambda c: from_tag_list(c.get("TagList")))
        return self.ready(run, d, Found(d.key, self.kind, d.name, cluster["Status"], attrs=_cluster_attrs(cluster, [])))

    def ready(self, run: Run, d: Desired | None, f: Found) -> Found:
        """The cluster available, and its writer and two readers with it."""
        latest: dict = {}
        probe = waiting.visible_within(self._probe(run, f.id, latest), NOT_VISIBLE_GRACE_S, run.clock)
        state = run.wait(f.key, f"{self.what} {f.id}", probe, done={"available"},
                         failed=FAILED_STATES | {waiting.GONE, "deleting"}, kind="db-instance")
        members: list[dict] = []

        def members_ready() -> str:
            members[:] = _members(run, latest)
            busy = [m["DBInstanceIdentifier"] for m in members if m["DBInstanceStatus"] != "available"]
            return "available" if members and not busy else "creating"

        run.wait(f.key, f"the members of RDS DB cluster {f.id}", members_ready, done={"available"}, kind="db-instance")
        return replace(f, state=state, attrs={**f.attrs, **_cluster_attrs(latest, members)})

    def changes(self, d: Desired, f: Found) -> tuple[Change, ...]:
        """The settings ModifyDBCluster changes in place that differ from the lab (CLUSTER_SETTINGS:
        the members' class, storage, backups, deletion protection, the maintenance window)."""
        return changes_in_place(CLUSTER_SETTINGS, d.spec["database"], f.get("raw") or {})

    def apply(self, run: Run, d: Desired, f: Found, changes: tuple[Change, ...]) -> Found:
        """ModifyDBCluster with the planned changes, applied now (as `up` promises): RDS changes all
        three members (a class change one reader at a time, then a failover to one of them); then
        wait for the cluster and its members. io1/io2 storage takes its Iops with the new size."""
        args = modify_arguments(CLUSTER_SETTINGS, changes)
        if {"AllocatedStorage", "StorageType"} & set(args):
            args.update(iops_argument(d.spec["database"]))
        run.client("rds").modify_db_cluster(DBClusterIdentifier=f.id, ApplyImmediately=True, **args)
        return self.ready(run, d, f)

    def final_snapshot_id(self, run: Run, f: Found) -> str | None:
        if run.options.get("skip_final_snapshot"):
            return None
        return f"{f.id}-final-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"

    def delete(self, run: Run, f: Found) -> None:
        """DeleteDBCluster deletes its members too; a final DB cluster snapshot is kept."""
        rds = run.client("rds")
        latest: dict = {}
        probe = self._probe(run, f.id, latest)
        state = run.wait(f.key, f"RDS DB cluster {f.id} to be deletable", probe,
                         done={"available", "deleting", waiting.GONE, "failed", "storage-full",
                               "incompatible-parameters", "incompatible-network", "inaccessible-encryption-credentials"},
                         kind="db-instance")
        if state == waiting.GONE:
            return
        if state != "deleting":
            if latest.get("DeletionProtection"):
                raise OperationError(f"RDS DB cluster {f.id} has deletion protection on",
                                     f"turn it off first: aws rds modify-db-cluster --db-cluster-identifier {f.id} "
                                     "--no-deletion-protection --apply-immediately")
            snapshot = self.final_snapshot_id(run, f)
            args = {"FinalDBSnapshotIdentifier": snapshot} if snapshot else {"SkipFinalSnapshot": True}
            try:
                rds.delete_db_cluster(DBClusterIdentifier=f.id, **args)
            except ClientError as exc:
                code = waiting.error_code(exc)
                if code in _NOT_FOUND:
                    return
                if code != "InvalidDBClusterStateFault":
                    raise
            if snapshot:
                run.on_event("note", key=f.key, text=f"final cluster snapshot {snapshot}")
        run.wait(f.key, f"RDS DB cluster {f.id} to be deleted", probe, done={waiting.GONE}, kind="db-instance")

    def failover(self, run: Run, f: Found) -> Found:
        """FailoverDBCluster: a reader becomes the writer; waited for until the cluster is available
        with the new writer. The result in attrs["failover"]."""
        rds = run.client("rds")
        before = rds.describe_db_clusters(DBClusterIdentifier=f.id)["DBClusters"][0]
        writer_before = _cluster_attrs(before, [])["writer"]
        started = run.clock.now()
        rds.failover_db_cluster(DBClusterIdentifier=f.id)
        latest: dict = {}
        status = self._probe(run, f.id, latest)

        def switched() -> str:
            state = status()
            writer = _cluster_attrs(latest, [])["writer"]
            return "failing-over" if state == "available" and writer in (None, writer_before) else state

        state = run.wait(f.key, f"RDS DB cluster {f.id} to fail over", switched, done={"available"},
                         failed=FAILED_STATES | {waiting.GONE}, kind="db-instance")
        members = _members(run, latest)
        azs = {m["DBInstanceIdentifier"]: m.get("AvailabilityZone") for m in members}
        writer_after = _cluster_attrs(latest, members)["writer"]
        result = {"writer_before": writer_before, "writer_after": writer_after, "az_before": azs.get(writer_before),
                  "az_after": azs.get(writer_after), "seconds": run.clock.now() - started}
        return replace(f, state=state, attrs={**f.attrs, **_cluster_attrs(latest, members), "failover": result})


def check_failover(run: Run, ident: str) -> None:
    """Refuse, before anything is sent, a failover AWS would refuse: the cluster not available."""
    cluster = run.client("rds").describe_db_clusters(DBClusterIdentifier=ident)["DBClusters"][0]
    if len(cluster.get("DBClusterMembers", [])) < 2:
        raise UsageError(f"{ident} has no reader to fail over to", "wait for its members, then retry")
    if cluster["Status"] != "available":
        raise OperationError(f"{ident} is {cluster['Status']}; a failover needs it available", "wait, then retry")


class DbClusterParameterGroup(ParameterGroup):
    """The cluster's engine settings (rds.force_ssl / require_secure_transport) live in a DB cluster
    parameter group, which applies to every member; the instance's DB parameter group is not used."""

    kind = "db-cluster-parameter-group"
    capabilities = frozenset({"export", "settings"})
    section, service, arn_part, not_found = "database", "rds", ":cluster-pg:", "DBParameterGroupNotFound"
    name_field = "DBClusterParameterGroupName"

    def export(self, x: cfn.ExportFor) -> cfn.Export | None:
        d = x.lab.database
        if not x.cluster:
            return None
        return cfn.Export({"DbClusterParameterGroup": {"Type": "AWS::RDS::DBClusterParameterGroup", "Properties": {
            "DBClusterParameterGroupName": x.name("db.cluster-parameter-group"), "Family": db_family(d),
            "Description": cfn.sub(f"awslab {cfn.STACK}: the DB cluster's parameters"),
            "Parameters": values(DB_PARAMETERS[d.engine], d), "Tags": cfn.tags("db.cluster-parameter-group", x.lab)}}})

    def _table(self, d: Desired) -> tuple[Setting, ...]:
        return DB_PARAMETERS[d.spec["database"].engine]

    def _describe(self, client, name: str) -> dict | None:
        groups = client.describe_db_cluster_parameter_groups(DBClusterParameterGroupName=name)["DBClusterParameterGroups"]
        return groups[0] if groups else None

    def _arn(self, group: dict) -> str:
        return group["DBClusterParameterGroupArn"]

    def _parameters(self, client, name: str) -> dict[str, str]:
        out, marker = {}, None
        while True:
            page = client.describe_db_cluster_parameters(DBClusterParameterGroupName=name, Source="user",
                                                         **({"Marker": marker} if marker else {}))
            out.update({p["ParameterName"]: p.get("ParameterValue") for p in page["Parameters"]
                        if p.get("Source", "user") == "user"})
            marker = page.get("Marker")
            if not marker:
                return out

    def create(self, run: Run, d: Desired) -> Found:
        return self._create(run, d, lambda rds: rds.create_db_cluster_parameter_group(
            DBClusterParameterGroupName=d.name, DBParameterGroupFamily=db_family(d.spec["database"]),
            Description=f"awslab {run.stack}: the DB cluster's parameters", Tags=run.tag_list(d.key, d.name),
        )["DBClusterParameterGroup"], "DBParameterGroupAlreadyExists")

    def _modify(self, run: Run, name: str, parameters: dict[str, str]) -> None:
        run.client("rds").modify_db_cluster_parameter_group(DBClusterParameterGroupName=name, Parameters=[
            {"ParameterName": k, "ParameterValue": v, "ApplyMethod": "immediate"} for k, v in parameters.items()])

    def delete(self, run: Run, f: Found) -> None:
        with waiting.ignoring("DBParameterGroupNotFound"):
            _group_in_use(run.client("rds").delete_db_cluster_parameter_group)(DBClusterParameterGroupName=f.id)


# --- cluster snapshots ------------------------------------------------------------------------

_SNAPSHOT_NOT_FOUND = {"DBClusterSnapshotNotFoundFault"}


def _snapshot_attrs(snap: dict, region: str) -> dict:
    return {"raw": snap, "region": region, "type": snap.get("SnapshotType"), "size_gib": snap.get("AllocatedStorage"),
            "cluster": snap.get("DBClusterIdentifier"), "encrypted": snap.get("StorageEncrypted"),
            "arn": snap.get("DBClusterSnapshotArn")}


def discover_snapshots(run: Run) -> list[Found]:
    """The stack's manual and final DB cluster snapshots (tagged: the cluster copies its tags)."""
    rds = run.client("rds")
    out = []
    for page in rds.get_paginator("describe_db_cluster_snapshots").paginate(SnapshotType="manual"):
        for snap in page["DBClusterSnapshots"]:
            tags = from_tag_list(snap.get("TagList"))
            if owned_by(tags, run.stack) or (not tags and owned(run, snap["DBClusterSnapshotArn"], lambda arn: from_tag_list(
                    rds.list_tags_for_resource(ResourceName=arn)["TagList"]))):
                out.append(Found(f"snapshot.db-cluster.{run.ctx.region}.{snap['DBClusterSnapshotIdentifier']}",
                                 "db-cluster-snapshot", snap["DBClusterSnapshotIdentifier"], snap["Status"],
                                 created=snap.get("SnapshotCreateTime"), attrs=_snapshot_attrs(snap, run.ctx.region)))
    return out


class DbClusterSnapshot:
    kind = "db-cluster-snapshot"
    capabilities = frozenset({"cost", "ready"})

    def estimate(self, d: Desired, region: str) -> list[pricing.Line]:
        return []   # its size is known once it is taken: then ``priced``

    def priced(self, f: Found, region: str) -> list[pricing.Line]:
        return [pricing.snapshot_line(f"RDS cluster snapshot {f.id}", "db", f.get("size_gib"), f.get("region") or region)]

    def create(self, run: Run, d: Desired) -> Found:
        """CreateDBClusterSnapshot of the stack's cluster, tagged with the stack as the instance's
        manual snapshot is (Tags given here are the snapshot's, not the cluster's copied ones)."""
        rds = run.client("rds")
        snap = create_or_adopt(
            run, f"DB cluster snapshot {d.name}",
            lambda: rds.create_db_cluster_snapshot(DBClusterIdentifier=d.spec["cluster"], DBClusterSnapshotIdentifier=d.name,
                                                   Tags=run.tag_list(d.key))["DBClusterSnapshot"],
            "DBClusterSnapshotAlreadyExistsFault",
            lambda: rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=d.name)["DBClusterSnapshots"][0],
            lambda snap: snapshot_tags(run, snap))
        return self.ready(run, d, Found(d.key, self.kind, d.name, snap["Status"], attrs=_snapshot_attrs(snap, run.ctx.region)))

    def ready(self, run: Run, d: Desired | None, f: Found) -> Found:
        rds = run.client("rds")
        return snapshot_ready(run, f, f"DB cluster snapshot {f.id}",
                              lambda: rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=f.id)["DBClusterSnapshots"][0],
                              "Status", _SNAPSHOT_NOT_FOUND, {"failed", waiting.GONE},
                              lambda snap: _snapshot_attrs(snap, run.ctx.region))

    def delete(self, run: Run, f: Found) -> None:
        with waiting.ignoring(*_SNAPSHOT_NOT_FOUND):
            run.client("rds").delete_db_cluster_snapshot(DBClusterSnapshotIdentifier=f.id)


def find_snapshot(run: Run, snapshot_id: str) -> dict | None:
    return waiting.unless_missing(lambda: run.client("rds").describe_db_cluster_snapshots(
        DBClusterSnapshotIdentifier=snapshot_id)["DBClusterSnapshots"][0], *_SNAPSHOT_NOT_FOUND, "InvalidParameterValue")


def snapshot_tags(run: Run, snap: dict) -> dict[str, str]:
    tags = from_tag_list(snap.get("TagList"))
    return tags or from_tag_list(run.client("rds").list_tags_for_resource(ResourceName=snap["DBClusterSnapshotArn"])["TagList"])


def restore_window(run: Run, ident: str) -> tuple[datetime, datetime]:
    """(earliest, latest) restorable times of a cluster's automated backups, as DescribeDBClusters
    gives them (an emulator without EarliestRestorableTime: the cluster's creation)."""
    cluster = run.client("rds").describe_db_clusters(DBClusterIdentifier=ident)["DBClusters"][0]
    earliest = cluster.get("EarliestRestorableTime") or cluster.get("ClusterCreateTime")
    latest = cluster.get("LatestRestorableTime")
    if latest is None or earliest is None or not cluster.get("BackupRetentionPeriod"):
        raise OperationError(f"{ident} has no automated backups to restore from",
                             f"aws rds modify-db-cluster --db-cluster-identifier {ident} --backup-retention-period 7 "
                             "--apply-immediately")
    return utc(earliest), utc(latest)


class DbClusterRestore(DbCluster):
    """A new Multi-AZ DB cluster from a DB cluster snapshot (or the stack's cluster at a point in
    time) in the stack's network. RDS takes none of the source's class, storage, subnet group or
    security groups for a Multi-AZ DB cluster: each is given, from the lab and the stack, as for
    the stack's own cluster. It joins the stack (its tags), so verify and down see it."""

    kind = "db-cluster-restore"
    capabilities = DbCluster.capabilities - {"export"}
    what = "restored RDS DB cluster"
    export = None   # made by `restore`, not part of the lab's template

    def create(self, run: Run, d: Desired) -> Found:
        db = d.spec["database"]
        common = dict(DBClusterInstanceClass=db.cluster_instance_class, StorageType=db.storage_type, **iops_argument(db),
                      DBSubnetGroupName=run.ref("db.subnet-group").id, VpcSecurityGroupIds=[run.ref("sg.db").id],
                      DBClusterParameterGroupName=run.ref("db.cluster-parameter-group").id,
                      PubliclyAccessible=False, DeletionProtection=False, CopyTagsToSnapshot=True,
                      Tags=run.tag_list(d.key, d.name) + origin_tags(d))
        rds = run.client("rds")
        if d.spec.get("snapshot"):
            call = lambda: rds.restore_db_cluster_from_snapshot(  # noqa: E731
                DBClusterIdentifier=d.name, SnapshotIdentifier=d.spec["snapshot"], Engine=db.engine, **common)["DBCluster"]
        else:
            when = {"UseLatestRestorableTime": True} if d.spec["time"] is None else {"RestoreToTime": d.spec["time"]}
            call = lambda: rds.restore_db_cluster_to_point_in_time(  # noqa: E731
                DBClusterIdentifier=d.name, SourceDBClusterIdentifier=d.spec["source"], **when, **common)["DBCluster"]
        cluster = create_or_adopt(run, f"restored RDS DB cluster {d.name}", call, "DBClusterAlreadyExistsFault",
                                  lambda: rds.describe_db_clusters(DBClusterIdentifier=d.name)["DBClusters"][0],
                                  lambda c: from_tag_list(c.get("TagList")))
        return self.ready(run, d, Found(d.key, DbCluster.kind, d.name, cluster["Status"], attrs=_cluster_attrs(cluster, [])))
