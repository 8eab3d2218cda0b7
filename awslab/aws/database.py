"""RDS: the DB subnet group, the primary instance and its read replicas.

The primary is Multi-AZ (as the lab says), encrypted, never public, with backups kept, its master
password managed by RDS in Secrets Manager (awslab never sees it), and tags copied to its
snapshots, so the final snapshot ``down`` takes stays recognisably the stack's. Replicas are made
after the primary is available and deleted before it (a primary deleted first would promote them).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

from botocore.exceptions import ClientError

from awslab.aws._common import owned, stack_arns, utc
from awslab.aws.parameters import drop_db_group, upgrade_group
from awslab.spec.model import (
    Change,
    Desired,
    Found,
    Setting,
    changes_in_place,
    modify_arguments,
    parameters,
)
from awslab.engine.run import NOT_VISIBLE_GRACE_S, Run, create_or_adopt
from awslab.engine.waiting import (
    GONE,
    error_code,
    ignoring,
    retry_eventual,
    status_probe,
    unless_missing,
    visible_within,
)
from awslab.errors import OperationError, UsageError
from awslab.spec import cfn, pricing
from awslab.spec.catalog import db_major, version_as_lab
from awslab.spec.upgrades import engine_version_change, is_major
from awslab.spec.tags import (
    TAG_RESOURCE,
    TAG_RESTORED_FROM,
    from_tag_list,
    origin_tags,
    owned_by,
)
from awslab.spec.topology import PRIVATE_SUBNETS, names

FAILED_STATES = {"failed", "incompatible-parameters", "incompatible-network", "incompatible-restore",
                 "inaccessible-encryption-credentials", "storage-full", "restore-error"}
# The subnet group stays "in use" until its last instance is fully gone.
_subnet_group_in_use = retry_eventual({"InvalidDBSubnetGroupStateFault"}, within_s=15 * 60)


def discover(run: Run) -> list[Found]:
    rds = run.client("rds")
    out: list[Found] = []
    for page in rds.get_paginator("describe_db_instances").paginate():
        for db in page["DBInstances"]:
            tags = from_tag_list(db.get("TagList"))
            if not owned_by(tags, run.stack) or db.get("DBClusterIdentifier"):
                continue   # a Multi-AZ DB cluster's members are its own (aws/db_cluster.py)
            key = tags.get(TAG_RESOURCE) or f"db.{db['DBInstanceIdentifier']}"
            out.append(Found(key, "db-replica" if db.get("ReadReplicaSourceDBInstanceIdentifier") else "db-instance",
                             db["DBInstanceIdentifier"], db["DBInstanceStatus"], created=db.get("InstanceCreateTime"),
                             attrs=_db_attrs(db)))
    name = names(run.stack, run.ctx.region)["db.subnet-group"]
    # The lab's group by its name; any other the stack tagged (drill --compare's temporary one over
    # three AZs) through the tagging API, so that `down` after an interrupted drill removes it too.
    others = sorted(arn.rsplit(":", 1)[-1] for arn in stack_arns(run) if ":subgrp:" in arn)
    for ident in [name, *(o for o in others if o != name)]:
        group = unless_missing(lambda: rds.describe_db_subnet_groups(DBSubnetGroupName=ident)["DBSubnetGroups"][0],
                               "DBSubnetGroupNotFoundFault")
        if not group or not owned(run, group["DBSubnetGroupArn"], lambda arn: tags_of(run, arn)):
            continue
        key = "db.subnet-group" if ident == name else \
            tags_of(run, group["DBSubnetGroupArn"]).get(TAG_RESOURCE) or f"db.subnet-group.{ident}"
        out.append(Found(key, "db-subnet-group", ident, group.get("SubnetGroupStatus", "Complete"),
                         attrs={"arn": group["DBSubnetGroupArn"], "vpc": group.get("VpcId"), "raw": group,
                                "subnets": [s["SubnetIdentifier"] for s in group.get("Subnets", [])]}))
    return out


def tags_of(run: Run, arn: str) -> dict[str, str]:
    return from_tag_list(run.client("rds").list_tags_for_resource(ResourceName=arn)["TagList"])


def _db_attrs(db: dict) -> dict:
    endpoint = db.get("Endpoint") or {}
    return {
        "raw": db,
        "arn": db.get("DBInstanceArn"), "engine": db.get("Engine"), "engine_version": db.get("EngineVersion"),
        "class": db.get("DBInstanceClass"), "multi_az": db.get("MultiAZ"), "az": db.get("AvailabilityZone"),
        "endpoint": endpoint.get("Address"), "port": endpoint.get("Port"),
        "secret_arn": (db.get("MasterUserSecret") or {}).get("SecretArn"),
        "source": db.get("ReadReplicaSourceDBInstanceIdentifier"),
        "restored_from": from_tag_list(db.get("TagList")).get(TAG_RESTORED_FROM),
        "storage_gib": db.get("AllocatedStorage"), "deletion_protection": db.get("DeletionProtection"),
    }


class DbSubnetGroup:
    kind = "db-subnet-group"
    capabilities = frozenset({"export"})

    def export(self, x: cfn.ExportFor) -> cfn.Export:
        return cfn.Export({"DbSubnetGroup": {"Type": "AWS::RDS::DBSubnetGroup", "Properties": {
            "DBSubnetGroupName": x.name("db.subnet-group"), "DBSubnetGroupDescription": cfn.sub(f"awslab {cfn.STACK}: RDS"),
            "SubnetIds": [cfn.ref(cfn.LOGICAL[key]) for key in x.private_subnets], "Tags": cfn.tags("db.subnet-group", x.lab)}}})

    def create(self, run: Run, d: Desired) -> Found:
        rds = run.client("rds")
        # Two private subnets; three for a Multi-AZ DB cluster (topology's spec names them).
        subnets = [run.ref(k).id for k in d.spec.get("subnets", PRIVATE_SUBNETS)]
        group = create_or_adopt(
            run, f"DB subnet group {d.name}",
            lambda: rds.create_db_subnet_group(
                DBSubnetGroupName=d.name,
                DBSubnetGroupDescription=f"awslab {run.stack}: private subnets in {'three' if len(subnets) == 3 else 'two'} AZs",
                SubnetIds=subnets, Tags=run.tag_list(d.key, d.name))["DBSubnetGroup"],
            "DBSubnetGroupAlreadyExists",
            lambda: rds.describe_db_subnet_groups(DBSubnetGroupName=d.name)["DBSubnetGroups"][0],
            lambda g: tags_of(run, g["DBSubnetGroupArn"]))
        return Found(d.key, self.kind, d.name, group.get("SubnetGroupStatus", "Complete"),
                     attrs={"arn": group.get("DBSubnetGroupArn"), "subnets": subnets})

    def delete(self, run: Run, f: Found) -> None:
        with ignoring("DBSubnetGroupNotFoundFault"):
            _subnet_group_in_use(run.client("rds").delete_db_subnet_group)(DBSubnetGroupName=f.id)


class _DbBase:
    kind = "db-instance"
    capabilities = frozenset({"cost", "final-snapshot", "ready"})

    def priced(self, f: Found, region: str) -> list[pricing.Line]:
        """Its hours and storage (twice when Multi-AZ: the standby), and the master password RDS
        manages for a primary (a replica has none of its own)."""
        raw = f.get("raw") or {}
        lines = pricing.db_lines(f"RDS {f.get('engine')} {f.get('class')} {'Multi-AZ' if f.get('multi_az') else 'Single-AZ'}",
                                 f.get("engine") or "", f.get("class") or "", raw.get("StorageType", "gp3"),
                                 f.get("storage_gib") or 0, 2 if f.get("multi_az") else 1, region)
        if f.kind == "db-instance" and f.get("secret_arn"):
            lines.append(pricing.secret_line("DB master password (managed by RDS)", region))
        return lines

    def _probe(self, run: Run, ident: str, latest: dict):
        rds = run.client("rds")
        return status_probe(lambda: rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0],
                            "DBInstanceStatus", {"DBInstanceNotFound"}, latest)

    def ready(self, run: Run, d: Desired | None, f: Found) -> Found:
        latest: dict = {}
        probe = visible_within(self._probe(run, f.id, latest), NOT_VISIBLE_GRACE_S, run.clock)
        state = run.wait(f.key, f"RDS instance {f.id}", probe, done={"available"},
                         failed=FAILED_STATES | {GONE, "deleting"}, kind=self.kind)
        return replace(f, state=state, attrs={**f.attrs, **_db_attrs(latest)})

    def _create(self, run: Run, d: Desired, call) -> Found:
        """Create (or, after a crash, adopt this stack's own instance of that name), then wait."""
        rds = run.client("rds")
        db = create_or_adopt(run, f"RDS instance {d.name}", lambda: call()["DBInstance"], "DBInstanceAlreadyExists",
                             lambda: rds.describe_db_instances(DBInstanceIdentifier=d.name)["DBInstances"][0],
                             lambda db: from_tag_list(db.get("TagList")))
        return self.ready(run, d, Found(d.key, self.kind, d.name, db["DBInstanceStatus"], attrs=_db_attrs(db)))

    def final_snapshot_id(self, run: Run, f: Found) -> str | None:
        return None

    def delete(self, run: Run, f: Found) -> None:
        rds = run.client("rds")
        latest: dict = {}
        probe = self._probe(run, f.id, latest)
        # AWS refuses to delete an instance that is still being created or modified; wait for it.
        state = run.wait(f.key, f"RDS instance {f.id} to be deletable", probe,
                         done={"available", "deleting", GONE, "stopped", "storage-full", "failed",
                               "incompatible-parameters", "incompatible-network", "inaccessible-encryption-credentials"},
                         kind=self.kind)
        if state == GONE:
            return
        if state != "deleting":
            if latest.get("DeletionProtection"):
                raise OperationError(f"RDS instance {f.id} has deletion protection on",
                                     f"turn it off first: aws rds modify-db-instance --db-instance-identifier {f.id} --no-deletion-protection --apply-immediately")
            snapshot = self.final_snapshot_id(run, f)
            args = {"FinalDBSnapshotIdentifier": snapshot} if snapshot else {"SkipFinalSnapshot": True}
            try:
                rds.delete_db_instance(DBInstanceIdentifier=f.id, DeleteAutomatedBackups=True, **args)
            except ClientError as exc:
                code = error_code(exc)
                if code == "DBInstanceNotFound":
                    return
                if code != "InvalidDBInstanceState":
                    raise
            if snapshot:
                run.on_event("note", key=f.key, text=f"final snapshot {snapshot}")
        run.wait(f.key, f"RDS instance {f.id} to be deleted", probe, done={GONE}, kind=self.kind)


# The settings a DB instance and a Multi-AZ DB cluster carry under the same AWS names (CreateDBInstance's
# and CreateDBCluster's parameters, ModifyDB*'s, the describe fields, the CloudFormation properties)
# and the same verify check: declared once, in both tables at the same place (db_cluster.py).
AS_FOR_A_CLUSTER = (
    Setting("database.backup_retention_days", "backup_retention_days", create=("BackupRetentionPeriod",),
            modify=("BackupRetentionPeriod",), describe="BackupRetentionPeriod", cfn=("BackupRetentionPeriod",),
            check="spec.db.backups"),
    Setting("database.deletion_protection", "deletion_protection", create=("DeletionProtection",),
            modify=("DeletionProtection",), describe="DeletionProtection", cfn=("DeletionProtection",)),
    Setting("database.storage_encrypted", "storage_encrypted", create=("StorageEncrypted",),
            describe="StorageEncrypted", cfn=("StorageEncrypted",)),
    Setting("database.master_username", "master_username", create=("MasterUsername",), describe="MasterUsername",
            cfn=("MasterUsername",)),
)

# The primary's settings, each declared once with its AWS names (spec/model.Setting): create
# reads the create parameters, `up`'s in-place diff the modify ones (in this order), the export
# the CloudFormation properties, verify the checks. Storage only grows on AWS: a smaller size is
# drift verify reports, never a change `up` tries. The engine's version, the class and the storage
# size go into the template by hand (a minor version, a template parameter, a string).
DB_SETTINGS = (
    Setting("database.engine", "engine", create=("Engine",), describe="Engine", cfn=("Engine",)),
    # The lab names a major or a full version; RDS shows the minor it runs, read as its major when
    # the lab names a major alone. Another version is an upgrade in place (spec/upgrades.py: what
    # it costs; a downgrade or a path RDS does not take refused before anything changes).
    Setting("database.engine_version", "engine_version", create=("EngineVersion",), modify=("EngineVersion",),
            describe="EngineVersion", check="spec.db.engine", read=db_major, read_for=version_as_lab,
            judge=engine_version_change),
    Setting("database.multi_az", "multi_az", create=("MultiAZ",), modify=("MultiAZ",), describe="MultiAZ",
            cfn=("MultiAZ",), check="spec.db.multi-az"),
    Setting("database.instance_class", "instance_class", create=("DBInstanceClass",), modify=("DBInstanceClass",),
            describe="DBInstanceClass", check="spec.db.class"),
    Setting("database.allocated_storage_gib", "allocated_storage_gib", create=("AllocatedStorage",),
            modify=("AllocatedStorage",), describe="AllocatedStorage", check="spec.db.storage", grows_only=True),
    Setting("database.storage_type", "storage_type", create=("StorageType",), modify=("StorageType",),
            describe="StorageType", cfn=("StorageType",), check="spec.db.storage"),
    *AS_FOR_A_CLUSTER,
    Setting("database.database_name", "database_name", create=("DBName",), describe="DBName", cfn=("DBName",)),
    Setting("database.port", "port", create=("Port",)),
    # RDS's weekly window (spec/windows.py: AWS's rules), when maintenance opted in for it is applied.
    Setting("database.maintenance_window", "maintenance_window", create=("PreferredMaintenanceWindow",),
            modify=("PreferredMaintenanceWindow",), describe="PreferredMaintenanceWindow",
            cfn=("PreferredMaintenanceWindow",), check="spec.db.maintenance-window", read=str.lower, optional=True),
)


class DbInstance(_DbBase):
    kind = "db-instance"
    capabilities = frozenset({"cost", "export", "failover", "final-snapshot", "ready", "settings"})

    def estimate(self, d: Desired, region: str) -> list[pricing.Line]:
        return pricing.database_lines(d.spec["database"], region) + [
            pricing.secret_line("DB master password (managed by RDS)", region)]

    def export(self, x: cfn.ExportFor) -> cfn.Export | None:
        """The primary from its settings table, a final snapshot kept on delete (none for a cluster's lab)."""
        d = x.lab.database
        if x.cluster:
            return None
        return cfn.Export({"Db": {
            "Type": "AWS::RDS::DBInstance", "DeletionPolicy": "Snapshot", "UpdateReplacePolicy": "Snapshot",
            "Properties": {
                "DBInstanceIdentifier": x.name("db.primary"), **parameters(DB_SETTINGS, d, "cfn"),
                "EngineVersion": cfn.minor(d.engine, d.engine_version),
                "DBInstanceClass": cfn.ref("DbInstanceClass"), "AllocatedStorage": str(d.allocated_storage_gib),
                "CopyTagsToSnapshot": True, "ManageMasterUserPassword": True, "PubliclyAccessible": False,
                "DBSubnetGroupName": cfn.ref("DbSubnetGroup"), "DBParameterGroupName": cfn.ref("DbParameterGroup"),
                "VPCSecurityGroups": [cfn.group_id("DbSecurityGroup")], "Tags": cfn.tags("db.primary", x.lab)}}},
            {"DbEndpoint": {"Value": {"Fn::GetAtt": ["Db", "Endpoint.Address"]}},
             "DbMasterSecretArn": {"Value": {"Fn::GetAtt": ["Db", "MasterUserSecret.SecretArn"]}}})

    def create(self, run: Run, d: Desired) -> Found:
        db = d.spec["database"]
        return self._create(run, d, lambda: run.client("rds").create_db_instance(
            DBInstanceIdentifier=d.name, **parameters(DB_SETTINGS, db, "create"),
            # A temporary instance (drill --compare on a cluster stack) names RDS's default group of its family.
            DBParameterGroupName=d.spec.get("parameter_group") or run.ref("db.parameter-group").id,
            PubliclyAccessible=False, ManageMasterUserPassword=True, CopyTagsToSnapshot=True,
            DBSubnetGroupName=run.ref("db.subnet-group").id, VpcSecurityGroupIds=[run.ref("sg.db").id],
            Tags=run.tag_list(d.key, d.name),
        ))

    def changes(self, d: Desired, f: Found) -> tuple[Change, ...]:
        """The settings AWS changes in place that differ from the lab (DB_SETTINGS)."""
        return changes_in_place(DB_SETTINGS, d.spec["database"], f.get("raw") or {})

    def apply(self, run: Run, d: Desired, f: Found, changes: tuple[Change, ...]) -> Found:
        """ModifyDBInstance with the planned changes, applied now (as `up` promises); then wait for it.
        A new major version is allowed explicitly and brings a parameter group of its family."""
        rds = run.client("rds")
        args = modify_arguments(DB_SETTINGS, changes)
        upgrade = next((c for c in changes if c.setting == "database.engine_version"), None)
        previous_group = None
        if upgrade is not None and is_major(str(upgrade.old), str(upgrade.new)):
            previous_group, group = upgrade_group(run, d, f)
            args.update(AllowMajorVersionUpgrade=True, DBParameterGroupName=group)
        elif upgrade is not None and d.spec["database"].engine == "postgres":
            # A minor upgrade of RDS for PostgreSQL: its read replicas first, then their source.
            for replica, _ in self._replicas(run, f):
                rds.modify_db_instance(DBInstanceIdentifier=replica.id, EngineVersion=upgrade.new, ApplyImmediately=True)
                self._wait_applied(run, replica, (upgrade,))
        rds.modify_db_instance(DBInstanceIdentifier=f.id, ApplyImmediately=True, **args)
        done = self._wait_applied(run, f, changes)
        if previous_group is not None:
            self._replicas_to_group(run, f, args["DBParameterGroupName"])
            drop_db_group(run, previous_group, keep=args["DBParameterGroupName"])
        return done

    def _replicas_to_group(self, run: Run, f: Found, group: str) -> None:
        """RDS upgrades the read replicas with their primary: once they are back, each takes the
        new family's group too (the old one can then go)."""
        rds = run.client("rds")
        for replica, db in self._replicas(run, f):
            self.ready(run, None, replica)
            if group not in [g.get("DBParameterGroupName") for g in db.get("DBParameterGroups", [])]:
                rds.modify_db_instance(DBInstanceIdentifier=replica.id, DBParameterGroupName=group,
                                       ApplyImmediately=True)
                self._wait_applied(run, replica, ())

    def _replicas(self, run: Run, f: Found) -> list[tuple[Found, dict]]:
        """The read replicas of ``f`` as RDS lists them, each with what DescribeDBInstances says."""
        out = []
        for page in run.client("rds").get_paginator("describe_db_instances").paginate():
            for db in page["DBInstances"]:
                if db.get("ReadReplicaSourceDBInstanceIdentifier") not in (f.id, f.get("arn")):
                    continue
                key = from_tag_list(db.get("TagList")).get(TAG_RESOURCE) or f"db.{db['DBInstanceIdentifier']}"
                out.append((Found(key, "db-replica", db["DBInstanceIdentifier"], db["DBInstanceStatus"]), db))
        return out

    def _wait_applied(self, run: Run, f: Found, changes: tuple[Change, ...]) -> Found:
        latest: dict = {}
        status = self._probe(run, f.id, latest)

        def applied() -> str:
            # Right after the call AWS may still say "available" with the change pending.
            state = status()
            return "modifying" if state == "available" and latest.get("PendingModifiedValues") else state

        state = run.wait(f.key, f"RDS instance {f.id} to apply {', '.join(c.setting for c in changes)}", applied,
                         done={"available"},
                         failed=FAILED_STATES | {GONE}, kind=self.kind)
        return replace(f, state=state, attrs={**f.attrs, **_db_attrs(latest)})

    def final_snapshot_id(self, run: Run, f: Found) -> str | None:
        if run.options.get("skip_final_snapshot"):
            return None
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        return f"{f.id}-final-{stamp}"


    def failover(self, run: Run, f: Found) -> Found:
        """Reboot with failover and wait until available; the result in attrs["failover"]."""
        rds = run.client("rds")
        before = rds.describe_db_instances(DBInstanceIdentifier=f.id)["DBInstances"][0]
        started = run.clock.now()
        rds.reboot_db_instance(DBInstanceIdentifier=f.id, ForceFailover=True)
        latest: dict = {}
        state = run.wait(f.key, f"RDS instance {f.id} to fail over", self._probe(run, f.id, latest), done={"available"},
                         failed=FAILED_STATES, kind=self.kind)
        result = {"az_before": before.get("AvailabilityZone"), "az_after": latest.get("AvailabilityZone"),
                  "standby_az": latest.get("SecondaryAvailabilityZone"), "seconds": run.clock.now() - started}
        return replace(f, state=state, attrs={**f.attrs, **_db_attrs(latest), "failover": result})


class DbReplica(_DbBase):
    kind = "db-replica"
    capabilities = frozenset({"cost", "export", "final-snapshot", "promote", "ready"})

    def estimate(self, d: Desired, region: str) -> list[pricing.Line]:
        return pricing.replica_lines(d.spec["database"], int(d.key.rsplit(".", 1)[1]), region)

    def export(self, x: cfn.ExportFor) -> cfn.Export | None:
        """Each read replica, deleted with the stack (it holds no data of its own)."""
        if x.cluster:
            return None
        resources, outputs = {}, {}
        for i in range(1, x.lab.database.read_replicas + 1):
            resources[f"DbReplica{i}"] = {
                "Type": "AWS::RDS::DBInstance", "DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete", "Properties": {
                    "DBInstanceIdentifier": x.replica_name(i), "SourceDBInstanceIdentifier": cfn.ref("Db"),
                    "DBInstanceClass": cfn.ref("DbInstanceClass"), "DBParameterGroupName": cfn.ref("DbParameterGroup"),
                    "PubliclyAccessible": False, "VPCSecurityGroups": [cfn.group_id("DbSecurityGroup")],
                    "Tags": cfn.tags(f"db.replica.{i}", x.lab)}}
            outputs[f"DbReplica{i}Endpoint"] = {"Value": {"Fn::GetAtt": [f"DbReplica{i}", "Endpoint.Address"]}}
        return cfn.Export(resources, outputs)

    def create(self, run: Run, d: Desired) -> Found:
        db = d.spec["database"]
        return self._create(run, d, lambda: run.client("rds").create_db_instance_read_replica(
            DBInstanceIdentifier=d.name, SourceDBInstanceIdentifier=run.ref("db.primary").id,
            DBInstanceClass=db.instance_class, PubliclyAccessible=False, MultiAZ=False,
            DBParameterGroupName=run.ref("db.parameter-group").id,
            # Same-region replicas land in the VPC only when given a subnet group.
            DBSubnetGroupName=run.ref("db.subnet-group").id, VpcSecurityGroupIds=[run.ref("sg.db").id],
            CopyTagsToSnapshot=True, Tags=run.tag_list(d.key, d.name),
        ))


    def promote(self, run: Run, d: Desired, f: Found) -> Found:
        """PromoteReadReplica, waited for; then tagged as the standalone instance it now is
        (``d.key``, and where it came from), so discovery and ``down`` treat it as one."""
        rds = run.client("rds")
        source = f.get("source")
        if f.get("source"):
            rds.promote_read_replica(DBInstanceIdentifier=f.id, BackupRetentionPeriod=d.spec["retention"])
        latest: dict = {}
        probe = self._probe(run, f.id, latest)
        state = run.wait(f.key, f"RDS instance {f.id} to be promoted", probe, done={"available"},
                         failed=FAILED_STATES | {GONE}, kind=self.kind)
        arn = latest.get("DBInstanceArn") or f.get("arn")
        rds.add_tags_to_resource(ResourceName=arn, Tags=[
            {"Key": TAG_RESOURCE, "Value": d.key},
            {"Key": TAG_RESTORED_FROM, "Value": f"promoted:{source or f.get('restored_from', '')}"}])
        return Found(d.key, "db-instance", f.id, state, created=f.created, attrs=_db_attrs(latest))


# --- restores, failover (snapshots: db_snapshots.py) -------------------------------------------------------

def restore_window(run: Run, ident: str) -> tuple[datetime, datetime]:
    """(earliest, latest) restorable times of an instance's automated backups."""
    rds = run.client("rds")
    db = rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]
    latest = db.get("LatestRestorableTime")
    earliest = None
    for backup in rds.describe_db_instance_automated_backups(DBInstanceIdentifier=ident).get("DBInstanceAutomatedBackups", []):
        window = backup.get("RestoreWindow") or {}
        if window.get("EarliestTime"):
            earliest = window["EarliestTime"] if earliest is None else min(earliest, window["EarliestTime"])
    earliest = earliest or db.get("InstanceCreateTime")
    if latest is None or earliest is None or not db.get("BackupRetentionPeriod"):
        raise OperationError(f"{ident} has no automated backups to restore from",
                             f"aws rds modify-db-instance --db-instance-identifier {ident} --backup-retention-period 7")
    return utc(earliest), utc(latest)


class DbRestore(DbInstance):
    """A new instance from a snapshot (or a point in time) in the stack's network, with the lab's
    security settings; it joins the stack, so verify and down see it."""

    kind = "db-restore"
    capabilities = frozenset({"cost", "failover", "final-snapshot", "ready", "settings"})

    def estimate(self, d: Desired, region: str) -> list[pricing.Line]:   # Single-AZ, whatever the lab's primary is
        return super().estimate(replace(d, spec={**d.spec, "database": replace(d.spec["database"], multi_az=False)}), region)

    export = None   # made by `restore`, not part of the lab's template

    def create(self, run: Run, d: Desired) -> Found:
        db = d.spec["database"]
        # A restore does not carry the source's managed password over: ask RDS to manage a new one.
        common = dict(DBInstanceClass=db.instance_class, DBSubnetGroupName=run.ref("db.subnet-group").id,
                      VpcSecurityGroupIds=[run.ref("sg.db").id], PubliclyAccessible=False, MultiAZ=False,
                      DeletionProtection=False, CopyTagsToSnapshot=True, ManageMasterUserPassword=True,
                      Tags=run.tag_list(d.key, d.name) + origin_tags(d))
        rds = run.client("rds")
        if d.spec.get("snapshot"):
            call = lambda: rds.restore_db_instance_from_db_snapshot(  # noqa: E731
                DBInstanceIdentifier=d.name, DBSnapshotIdentifier=d.spec["snapshot"], **common)
        else:
            when = {"UseLatestRestorableTime": True} if d.spec["time"] is None else {"RestoreTime": d.spec["time"]}
            call = lambda: rds.restore_db_instance_to_point_in_time(  # noqa: E731
                SourceDBInstanceIdentifier=d.spec["source"], TargetDBInstanceIdentifier=d.name, **when, **common)
        return replace(self._create(run, d, call), kind="db-instance")


def check_failover(run: Run, ident: str) -> None:
    """Refuse, before anything is sent, a failover AWS would refuse: Single-AZ, or not available."""
    db = run.client("rds").describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]
    if not db.get("MultiAZ"):
        raise UsageError(f"{ident} is Single-AZ: there is no standby to fail over to",
                         "a Multi-AZ instance has one: --set database.multi_az=true, or "
                         f"aws rds modify-db-instance --db-instance-identifier {ident} --multi-az --apply-immediately")
    if db["DBInstanceStatus"] != "available":
        raise OperationError(f"{ident} is {db['DBInstanceStatus']}; a failover needs it available", "wait, then retry")
