"""RDS: DB instances and snapshots that take time and say no as RDS does, versions and keys as RDS shows them, restores that honour their overrides, Multi-AZ and failover, replication status, the managed master secret.

Part of awslab's layer over moto (its patches name the rows of ``GAPS.md`` they close)."""

from __future__ import annotations

import base64
import hashlib
import secrets

from awslab.local import latency
from awslab.local.backing.keys import HOME_ACCOUNT
from awslab.local.patches._base import (
    DB_CLASSES,
    DB_CURRENT_MINORS,
    DB_MAJOR_VERSIONS,
    init_dicts,
    linger,
    status_property,
)
from awslab.local.patches._patch import patch
from awslab.local.side import note, side


def rds_error(code: str, message: str):
    from moto.rds.exceptions import RDSClientError

    return RDSClientError(code, message)


RDS_BACKEND = "moto.rds.models:RDSBackend"
RDS_RESPONSE = "moto.rds.responses:RDSResponse"
DB_INSTANCE = "moto.rds.models:DBInstance"


# --- states: instances and snapshots pass through theirs ----------------------------------------

patch(DB_INSTANCE, "status", gap="rds-instance-states", phase="states", kind="add")(status_property())
patch("moto.rds.models:DBSnapshot", "status", gap="rds-snapshot-states", phase="states", kind="add")(status_property())
patch(RDS_BACKEND, "__init__", gap=("rds-delete-states", "rds-case-insensitive-ids", "rds-resource-map"),
      phase="states")(init_dicts("databases"))


def _timeline(method: str, transition_of, gap: str) -> None:
    """``method``'s result starts its timeline (``transition_of(result)``) on the latency profile."""

    def timeline(original, self, *a, **kw):
        result = original(self, *a, **kw)
        latency.start(result, transition_of(result))
        return result

    patch(RDS_BACKEND, method, gap=gap, phase="states")(timeline)


_timeline("create_db_instance", lambda db: "rds.create.multi_az" if db.multi_az else "rds.create", "rds-instance-states")
_timeline("create_db_instance_read_replica", lambda db: "rds.replica", "rds-instance-states")
_timeline("restore_db_instance_from_db_snapshot", lambda db: "rds.restore", "rds-instance-states")
_timeline("restore_db_instance_to_point_in_time", lambda db: "rds.restore", "rds-instance-states")
_timeline("modify_db_instance", lambda db: "rds.modify", "rds-modify-states")
_timeline("create_db_snapshot", lambda snap: "rds.snapshot", "rds-snapshot-states")


@patch(RDS_BACKEND, gap=("rds-replica-secret", "rds-instance-fields"), phase="states")
def create_db_instance_read_replica(original, self, db_kwargs):
    from moto.core.utils import iso_8601_datetime_with_milliseconds

    source = self.databases.get(db_kwargs.get("source_db_instance_identifier"))
    if source is not None:
        if source.status != "available":
            raise rds_error("InvalidDBInstanceState",
                             f"DB Instance {source.db_instance_identifier} is not in an available state.")
        if not source.backup_retention_period:
            raise rds_error("InvalidDBInstanceState",
                             "Automated backups are not enabled for this database instance. To enable automated "
                             "backups, use ModifyDBInstance to set the backup retention period to a non-zero value.")
    replica = original(self, db_kwargs)
    # moto's replica is a shallow copy of its source, secret object included: deleting the replica
    # (or the instance it is promoted to) then deleted the source's secret. On AWS a replica
    # manages no password of its own (ModifyDBInstance can turn that on once promoted), and has
    # its own resource id, creation time and backups (off unless asked, as RDS creates replicas).
    _own_no_secret(replica)
    replica.dbi_resource_id = new_resource_id()
    replica.created = replica.instance_create_time = iso_8601_datetime_with_milliseconds()
    replica.backup_retention_period = int(db_kwargs.get("backup_retention_period") or 0)
    return replica


@patch(RDS_BACKEND, gap=("rds-delete-states", "rds-delete-source-promotes-replicas", "rds-replica-secret"),
       phase="states")
def delete_db_instance(original, self, db_instance_identifier, final_db_snapshot_identifier=None,
                       skip_final_snapshot=False, delete_automated_backups=True):
    db = self.databases.get(db_instance_identifier)
    if db is not None:
        _refuse_delete(db, db_instance_identifier)
        secret = getattr(db, "master_user_secret", None)
        if secret is not None and any(getattr(other, "master_user_secret", None) is secret
                                      for other in self.databases.values() if other is not db):
            # A state saved before replicas were given no secret: the secret is another's.
            _own_no_secret(db)
        if not db.is_replica:
            # AWS promotes the read replicas of a deleted source to standalone instances; moto
            # left them pointing at it, and their own delete then failed half-way.
            for ident in list(getattr(db, "replicas", None) or []):
                replica = self.databases.get(ident)
                if replica is not None:
                    replica.is_replica, replica.source_db_instance_identifier = False, None
            db.replicas = []
    deleted = original(self, db_instance_identifier, final_db_snapshot_identifier,
                       skip_final_snapshot, delete_automated_backups)
    if linger(deleted, "rds.delete", "deleting"):
        self.databases[db_instance_identifier] = deleted   # case-insensitive, as the identifier
    return deleted


# The final-snapshot choice is asked of whoever sends DeleteDBInstance, so it is checked on the
# request (moto's response handler), not in the backend method: moto's CloudFormation (where
# the stack's DeletionPolicy decides) and DeleteBlueGreenDeployment (which deletes its green
# instances itself) call that method too, and AWS asks neither of them.
@patch(RDS_RESPONSE, "delete_db_instance", phase="states",
       gap=("rds-final-snapshot-choice", "rds-replica-final-snapshot", "rds-deletion-protection-first",
            "rds-final-snapshot-request-only"))
def delete_db_instance_request(original, self):
    ident = self.params.get("DBInstanceIdentifier")
    db = self.backend.databases.get(ident) if ident else None
    if db is not None:
        _refuse_delete(db, ident)   # AWS's order: these refusals come before the choice's
        _final_snapshot_choice(db, self.params.get("FinalDBSnapshotIdentifier"),
                               str(self.params.get("SkipFinalSnapshot", "false")).lower() == "true")
    return original(self)


@patch(RDS_RESPONSE, "create_db_instance_read_replica", gap="rds-replica-id-in-use", phase="states")
def create_db_instance_read_replica_request(original, self):
    # moto replaced an existing instance (data, tags and all) with the new replica. Checked on
    # the request: moto's CloudFormation makes its replicas through the backend method.
    if self.params.get("DBInstanceIdentifier") in self.backend.databases:
        raise rds_error("DBInstanceAlreadyExists", "DB instance already exists")
    return original(self)


# CloudFormation's DBInstance (its default backup retention included): patches/cloudformation.py.


def _refuse_delete(db, ident: str) -> None:
    """What AWS refuses of any delete of ``db``: one already deleting, one in transition, a protected one."""
    if side(db).gone_at is not None:
        raise rds_error("InvalidDBInstanceState", f"Instance {ident} is already being deleted.")
    if db.status in ("creating", "backing-up", "modifying", "rebooting"):
        raise rds_error("InvalidDBInstanceState", f"Instance {ident} is currently {db.status}; wait until it is available.")
    # AWS refuses a protected instance first, whatever the final-snapshot choice.
    if db.deletion_protection:
        raise rds_error("InvalidParameterCombination",
                         "Cannot delete protected DB Instance, please disable deletion protection and try again.")


def _final_snapshot_choice(db, final_snapshot: str | None, skip: bool) -> None:
    """DeleteDBInstance needs an explicit final-snapshot choice, and refuses one for a replica. An
    Aurora cluster member has no choice to make (the cluster holds the data and its own choice)."""
    if getattr(db, "db_cluster_identifier", None):
        return
    if not skip and not final_snapshot:
        raise rds_error("InvalidParameterCombination",
                         "FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is specified.")
    if db.is_replica and final_snapshot and not skip:
        raise rds_error("InvalidParameterValue",
                         "FinalDBSnapshotIdentifier can not be specified when deleting a replica instance")


# --- rejects: what AWS refuses and moto accepts, with AWS's codes and messages ------------------

# What RDS picks when CreateDBInstance names no version: a current one (moto's are retired: 9.3.3,
# 5.6.21, which the version check below, as AWS, would then refuse on a restore).
DEFAULT_VERSIONS = {"postgres": DB_CURRENT_MINORS["postgres"]["16"], "mysql": DB_CURRENT_MINORS["mysql"]["8.0"],
                    "mariadb": DB_CURRENT_MINORS["mariadb"]["10.11"]}


@patch(DB_INSTANCE, gap="rds-default-version", phase="rejects", kind="derive")
def default_engine_versions(original: dict) -> dict:
    original.update(DEFAULT_VERSIONS)
    return original


@patch(RDS_BACKEND, gap=("unknown-classes-versions", "rds-password-and-managed", "rds-cluster-engine-first",
                         "rds-engine-minor"), phase="rejects")
def create_db_instance(original, self, db_kwargs):
    """A version named by its major alone becomes the minor RDS picks for it (``DB_CURRENT_MINORS``)."""
    from moto.rds.exceptions import InvalidDBInstanceEngine

    if db_kwargs.get("master_user_password") and db_kwargs.get("manage_master_user_password"):
        raise rds_error("InvalidParameterCombination",
                         "Can't specify both MasterUserPassword and ManageMasterUserPassword.")
    engine, version, klass = db_kwargs.get("engine"), str(db_kwargs.get("engine_version") or ""), db_kwargs.get("db_instance_class")
    # An instance joining a cluster must have the cluster's engine: AWS says so before anything
    # about the version (which is the cluster's).
    cluster = self.clusters.get(db_kwargs.get("db_cluster_identifier") or "")
    if cluster is not None and engine != cluster.engine:
        raise InvalidDBInstanceEngine(str(engine), str(cluster.engine))
    if engine in DB_MAJOR_VERSIONS:
        from awslab.local.patches import rds_versions

        if version and (not any(version == v or version.startswith(v + ".") for v in DB_MAJOR_VERSIONS[engine])
                        or rds_versions.unoffered(engine, version)):
            raise rds_error("InvalidParameterCombination", f"Cannot find version {version} for {engine}")
        if klass and klass not in DB_CLASSES:
            raise rds_error("InvalidParameterCombination",
                             f"RDS does not support creating a DB instance with the following combination: "
                             f"DBInstanceClass={klass}, Engine={engine}, EngineVersion={version or 'default'}, "
                             f"LicenseModel={'postgresql-license' if engine == 'postgres' else 'general-public-license'}. "
                             "For supported combinations of instance class and database engine version, see the documentation.")
        if version in DB_CURRENT_MINORS.get(engine, {}) and cluster is None:
            db_kwargs = {**db_kwargs, "engine_version": rds_versions.picked_version(engine, version)}
        elif version and cluster is None:
            # A full version: with engines, one the local AWS runs (the API never says another).
            why = rds_versions.local_refusal(engine, version)
            if why:
                raise rds_error("InvalidParameterCombination", f"Cannot create {engine} {version}: {why}.")
    return original(self, db_kwargs)


MOTO_DEFAULT_KMS_KEY = "default_kms_key_id"


def aws_rds_key_arn(account_id: str, region: str) -> str:
    """The ARN of the account's aws/rds key in ``region`` (made by KMS when first asked, as on AWS)."""
    from moto.kms.models import kms_backends

    return kms_backends[account_id][region].describe_key("alias/aws/rds").arn


def _own_no_secret(db) -> None:
    """The instance manages no master secret (and never deletes one), leaving any it shared as it is."""
    db.manage_master_user_password = False
    db.__dict__.pop("master_user_secret", None)


# --- answers: what moto gets wrong where awslab (or a learner) reads it -------------------------

@patch("moto.rds.models:MasterUserSecret", "_generate_secret_string", gap="rds-managed-secret-value", phase="answers",
       kind="replace")
def secret_string(self) -> str:
    """The secret RDS makes for ManageMasterUserPassword holds the master user name and a random
    password (moto: user 'admin', password 'P@55w0rd!' for every database)."""
    import json
    import secrets as token_source

    user = getattr(self.resource, "master_username", None) or "postgres"
    return json.dumps({"username": user, "password": token_source.token_urlsafe(24)})


@patch(DB_INSTANCE, gap="rds-secondary-az", phase="answers", kind="add")
@property
def secondary_availability_zone(self):
    return _secondary_az(self)


def _secondary_az(db):
    if not db.multi_az:
        return None
    if side(db).secondary_az is None:
        zones = []
        group = getattr(db, "db_subnet_group", None)
        for subnet in getattr(group, "subnets", None) or []:
            zones.append(getattr(subnet, "availability_zone", None))
        others = sorted({z for z in zones if z and z != db.availability_zone})
        note(db, secondary_az=others[0] if others else (
            f"{db.region}b" if db.availability_zone != f"{db.region}b" else f"{db.region}a"))
    return side(db).secondary_az


# An endpoint's middle label is RDS's per account and region (moto: "aaaaaaaaaa" everywhere, so
# two accounts' "lab-db" had one address). The home's account keeps moto's, which its stacks
# already carry; every other account (a StackSet's targets) gets its own.
@patch(DB_INSTANCE, gap="rds-endpoint-per-account", phase="answers", kind="derive")
def address(original: property) -> property:
    def get(self):
        if self.account_id == HOME_ACCOUNT:
            return original.fget(self)
        label = base64.b32encode(hashlib.sha256(f"{self.account_id}/{self.region}".encode()).digest()).decode()
        return f"{self.db_instance_identifier}.{label[:12].lower()}.{self.region}.rds.amazonaws.com"

    return property(get)


# An encrypted instance given no KmsKeyId is encrypted with the account's AWS managed key of the
# region, aws/rds, and shows its ARN (moto: the literal "default_kms_key_id"); snapshots,
# replicas and restores take the instance's. The key is moto's KMS's own (alias/aws/rds).
@patch(DB_INSTANCE, gap="rds-kms-key", phase="answers", kind="derive")
def kms_key_id(original: property) -> property:
    def set_kms_key_id(self, value):
        if value == MOTO_DEFAULT_KMS_KEY:
            value = aws_rds_key_arn(self.account_id, self.region)
        self._kms_key_id = value

    return original.setter(set_kms_key_id)


@patch(DB_INSTANCE, gap="rds-replica-status-infos", phase="answers", kind="add")
@property
def status_infos(self):
    # A read replica reports its replication (moto: nothing); once it runs, it is replicating.
    if not self.is_replica or self.status in ("creating", "deleting"):
        return None
    return [{"StatusType": "read replication", "Normal": True, "Status": "replicating"}]


@patch(RDS_BACKEND, gap="rds-force-failover", phase="answers", kind="replace")
def reboot_db_instance(self, db_instance_identifier, force_failover=False):
    db = self.describe_db_instances(db_instance_identifier)[0]
    if db.status != "available":
        raise rds_error("InvalidDBInstanceState", f"Instance {db_instance_identifier} is not in available state.")
    if force_failover:
        if not db.multi_az:
            raise rds_error("InvalidParameterCombination",
                             "Reboot with failover is only possible on a Multi-AZ DB instance.")
        standby = _secondary_az(db)
        note(db, secondary_az=db.availability_zone)
        db.availability_zone = standby
    latency.start(db, "rds.failover" if force_failover else "rds.reboot")
    return db


@patch(RDS_RESPONSE, "reboot_db_instance", gap="rds-force-failover", phase="answers", kind="replace")
def reboot_handler(self):
    force = str(self.params.get("ForceFailover", "false")).lower() == "true"
    from moto.core.responses import ActionResult

    return ActionResult({"DBInstance": self.backend.reboot_db_instance(self.params.get("DBInstanceIdentifier"), force)})


@patch(RDS_BACKEND, gap="rds-promote-non-replica", phase="answers")
def promote_read_replica(original, self, db_kwargs):
    # moto accepted any instance and left the promoted one listed as its source's replica.
    ident = db_kwargs.get("db_instance_identifier")
    db = self.describe_db_instances(ident)[0]
    if not db.is_replica:
        raise rds_error("InvalidDBInstanceState", f"DB Instance {ident} is not a read replica.")
    if db.status != "available":
        raise rds_error("InvalidDBInstanceState", f"Instance {ident} is not in available state.")
    source = self.databases.get((db.source_db_instance_identifier or "").split(":")[-1])
    if source is not None and ident in getattr(source, "replicas", []):
        source.replicas.remove(ident)
    promoted = original(self, db_kwargs)
    promoted.source_db_instance_identifier = None
    latency.start(promoted, "rds.promote")
    return promoted


@patch(RDS_BACKEND, gap="rds-subnet-group-modify", phase="answers")
def modify_db_subnet_group(original, self, subnet_name, description, subnets):
    # moto pops the group and never puts it back: a modified group vanished.
    group = original(self, subnet_name, description, subnets)
    self.subnet_groups[subnet_name] = group
    return group


@patch(RDS_BACKEND, gap="rds-subnet-group-exists", phase="answers")
def create_subnet_group(original, self, subnet_name, *a, **kw):
    # moto silently replaced an existing group (someone else's, tags and all).
    if subnet_name in self.subnet_groups:
        raise rds_error("DBSubnetGroupAlreadyExists", f"The DB subnet group '{subnet_name}' already exists.")
    return original(self, subnet_name, *a, **kw)


@patch(RDS_BACKEND, gap="rds-subnet-group-tagging", phase="answers")
def iter_tagged_resources(original, self):
    # The tagging API lists DB subnet groups (rds:subgrp) on AWS; moto leaves them out.
    from moto.core.resource_tagging import TaggedResource

    yield from original(self)
    for group in list(self.subnet_groups.values()):
        yield TaggedResource(arn=group.arn, tags={t["Key"]: t["Value"] for t in group.get_tags()}, resource_type="rds:subgrp")


# Restores: moto applies only truthy overrides, so MultiAZ=False or DeletionProtection=False
# come back as the snapshot's True.
RESTORE_FALSE_OVERRIDES = ("multi_az", "deletion_protection", "publicly_accessible", "copy_tags_to_snapshot",
                           "auto_minor_version_upgrade")


def _false_overrides(restored, a, kw) -> None:
    overrides = a[-1] if a and hasattr(a[-1], "get") else kw.get("overrides", {})
    for key in RESTORE_FALSE_OVERRIDES:
        if overrides.get(key) is False:
            setattr(restored, key, False)


@patch(RDS_BACKEND, gap="rds-restore-false-overrides", phase="answers")
def restore_db_instance_from_db_snapshot(original, self, *a, **kw):
    restored = original(self, *a, **kw)
    _false_overrides(restored, a, kw)
    return restored


@patch(RDS_BACKEND, gap=("rds-restore-false-overrides", "rds-pit-restore-replica"), phase="answers")
def restore_db_instance_to_point_in_time(original, self, *a, **kw):
    restored = original(self, *a, **kw)
    _false_overrides(restored, a, kw)
    # A point-in-time restore's SourceDBInstanceIdentifier made moto treat the new instance
    # as a read replica of the source; it is an independent instance.
    if getattr(restored, "source_db_instance_identifier", None):
        source = self.databases.get(restored.source_db_instance_identifier)
        if source is not None and restored.db_instance_identifier in getattr(source, "replicas", []):
            source.replicas.remove(restored.db_instance_identifier)
        restored.is_replica = False
        restored.source_db_instance_identifier = None
    return restored


# RDS's CAs (DescribeCertificates): new instances take rds-ca-rsa2048-g1. Valid from May 2021 for
# 40 years (RSA 2048) and 100 years (RSA 4096, ECC 384), as RDS's documentation lists them.
CA_CERTIFICATES = (("rds-ca-rsa2048-g1", "2061-05-25T23:34:57Z"), ("rds-ca-rsa4096-g1", "2121-05-25T23:38:57Z"),
                   ("rds-ca-ecc384-g1", "2121-05-25T23:34:57Z"))
DEFAULT_CA = "rds-ca-rsa2048-g1"
GP3_BASELINE = {"small": (3000, 125), "large": (12000, 500)}   # IOPS, MiB/s; "large" from 400 GiB


def new_resource_id() -> str:
    """A DbiResourceId as RDS makes them: ``db-`` and 26 base32 characters, one per instance."""
    return "db-" + base64.b32encode(secrets.token_bytes(20)).decode()[:26]


# What a DB instance shows of itself that clients read (Ansible's rds_instance compares them on its
# second run): its own DbiResourceId (moto: one constant for all), gp3's baseline IOPS and
# throughput, the CA it was given and its validity (CertificateDetails); DescribeCertificates. (A
# read replica's own id, time and backups are set where it is made, in ``states`` above.)

@patch(DB_INSTANCE, "__init__", gap="rds-instance-fields", phase="answers")
def instance_init(original, self, *a, **kw):
    original(self, *a, **kw)
    self.dbi_resource_id = new_resource_id()
    if self.ca_certificate_identifier == "rds-ca-default":
        self.ca_certificate_identifier = DEFAULT_CA


@patch(RDS_BACKEND, "promote_read_replica", gap="rds-instance-fields", phase="answers")
def promote_with_backups(original, self, db_kwargs):
    if db_kwargs.get("backup_retention_period") is None:   # PromoteReadReplica's default: 1 day
        db_kwargs = {**db_kwargs, "backup_retention_period": 1}
    return original(self, db_kwargs)


def _baseline(db, which: int):
    # Read from the instance's own fields: moto's __init__ reads iops before it has a storage type.
    own = db.__dict__
    if own.get("_storage_type") != "gp3" or own.get("engine") not in DB_MAJOR_VERSIONS:
        return None
    return GP3_BASELINE["large" if int(own.get("_allocated_storage") or 0) >= 400 else "small"][which]


def _stored(name: str, which: int) -> property:
    """The value the instance was given, else gp3's baseline (``which``: 0 IOPS, 1 throughput)."""

    def get(self):
        value = self.__dict__.get(name)
        return value if value is not None else _baseline(self, which)

    def put(self, value):
        self.__dict__[name] = value

    return property(get, put)


patch(DB_INSTANCE, "iops", gap="rds-instance-fields", phase="answers", kind="add")(_stored("iops", 0))
patch(DB_INSTANCE, "storage_throughput", gap="rds-instance-fields", phase="answers",
      kind="replace")(_stored("storage_throughput", 1))


@patch(DB_INSTANCE, gap="rds-instance-fields", phase="answers", kind="add")
@property
def certificate_details(self):
    from datetime import datetime

    valid_till = dict(CA_CERTIFICATES).get(self.ca_certificate_identifier)
    if valid_till is None:
        return None
    return {"CAIdentifier": self.ca_certificate_identifier,
            "ValidTill": datetime.fromisoformat(valid_till.replace("Z", "+00:00"))}


@patch(RDS_RESPONSE, gap="rds-instance-fields", phase="answers", kind="add")
def describe_certificates(self):
    from datetime import datetime

    from moto.core.responses import ActionResult

    wanted = self._get_param("CertificateIdentifier")
    if wanted and wanted not in dict(CA_CERTIFICATES):
        raise rds_error("CertificateNotFound", f"Certificate {wanted} not found.")
    certs = [{"CertificateIdentifier": ident, "CertificateType": "CA",
              "Thumbprint": hashlib.sha1(ident.encode()).hexdigest(),   # noqa: S324 - a label, not security
              "ValidFrom": datetime.fromisoformat("2021-05-25T23:34:57+00:00"),
              "ValidTill": datetime.fromisoformat(till.replace("Z", "+00:00")),
              "CertificateArn": f"arn:aws:rds:{self.region}::cert:{ident}", "CustomerOverride": False}
             for ident, till in CA_CERTIFICATES if not wanted or ident == wanted]
    return ActionResult({"DefaultCertificateForNewLaunches": DEFAULT_CA, "Certificates": certs})

