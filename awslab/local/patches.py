"""awslab's layer over moto: make the local AWS behave like AWS where it matters to the lab.

Loaded by the local server process (``awslab.local.server``) and so by the test fixtures, never by
the CLI itself (the CLI starts quickly). Pinned to the moto version range in pyproject.toml: the
patches wrap moto's backends by method name. Durations come from ``latency.py``.

Every row of shared/MOTO-GAPS.md, and what the local AWS does about it:

| MOTO-GAPS row | status |
|---|---|
| RDS `available` at once; never `creating`/`backing-up`/`modifying`/`rebooting` | closed: `_rds_states` (latency profile) |
| DB snapshot `available` at once | closed: `_rds_states` |
| ElastiCache group `available` at once | closed: `_elasticache_states` |
| EC2 `running` on first describe | closed: `_ec2_states` (`pending` first) |
| `delete_db_instance` removes the instance at once | closed: `_rds_states` (`deleting`, then gone) |
| ElastiCache deletes never finish, id never freed | closed: `_elasticache_states` (`deleting`, then gone, id free) |
| state manager knows no RDS/ElastiCache/EC2 model | closed: awslab's own timelines replace it |
| `delete_cache_subnet_group` not implemented | closed: `_cache_subnet_group_delete` (refused while in use) |
| `elasticache.test_failover` not implemented | closed: `_elasticache_failover` (the replica becomes primary) |
| (found here) a point-in-time restore comes back as a read replica of its source | closed: `_rds_answers` |
| network insights, SSM run command (no-op), pricing | left: awslab does not call network insights or pricing; verify treats SSM's empty output as no connection |
| `reboot_db_instance(ForceFailover=True)` a no-op, accepted on Single-AZ | closed: `_rds_answers` (AZs swap; Single-AZ refused) |
| no `SecondaryAvailabilityZone` | closed: `_rds_answers` (the other AZ of the subnet group) |
| `KmsKeyId` is a literal | left: awslab does not read it |
| `create_cache_cluster` without endpoints | left: awslab makes replication groups only |
| cache cluster `SecurityGroups` not echoed | closed: `_elasticache_members` |
| replication group of 2 yields 1 member; members not visible as cache clusters | closed: `_elasticache_members` (N members, each a cache cluster with the group's security groups; `ModifyReplicationGroup` takes `SecurityGroupIds`) |
| `/moto-api/data.json` fails with RDS | left: awslab does not use it |
| IAM managed policies not loaded | closed: the server sets `MOTO_IAM_LOAD_MANAGED_POLICIES` |
| unknown AMI/class/version, short password, bad group accepted | partly closed: `_rds_rejects` and `_elasticache_rejects` refuse unknown DB classes, node types and engine versions (tables above); AMIs, passwords and groups left (awslab resolves the AMI from SSM, lets RDS manage the password, and passes only groups it made) |
| `MasterUserPassword` with `ManageMasterUserPassword` accepted | closed: `_rds_rejects` |
| delete without a final-snapshot choice accepted | closed: `_rds_states` (its delete wrapper) |
| final snapshot id on a read replica accepted | closed: `_rds_states` (its delete wrapper) |
| in-use DB subnet group deletable | closed: `_in_use_deletes` (`InvalidDBSubnetGroupStateFault`) |
| in-use security group deletable | closed: `_in_use_deletes` (`DependencyViolation`, ENIs drain after termination) |
| subnet with an instance deletable | closed: `_in_use_deletes` |
| `AuthToken` without transit encryption accepted | closed: `_elasticache_rejects` |
| cache cluster without a subnet group | left: awslab always gives one |
| restores ignore `False` overrides | closed: `_rds_answers` |
| (found here) `modify_db_subnet_group` makes the group vanish | closed: `_rds_answers` |
| (found here) `create_db_subnet_group` silently replaces an existing group | closed: `_rds_answers` (`DBSubnetGroupAlreadyExists`) |
| (found here) the tagging API leaves out DB subnet groups | closed: `_rds_answers` |
| restore time unused | partly: with engines on (`backing.py`) a restore carries real data, a point-in-time restore the source's data as of the request (no WAL archive is kept) |
| replica shares and deletes the primary's secret | closed: `_rds_states` (a replica's delete leaves it) |
| the tagging API's action checked as `tagging:GetResources` | closed: `_iam_action_names` (AWS's action is `tag:GetResources`) |
| (found here) enforcement matches statements' resources and conditions against values moto does not have, denying least-privilege policies | closed: `_iam_action_names` (action level, as MOTO-GAPS describes) |
| terminated instances listed forever | closed: `_ec2_states` (gone after the retention of the profile, default at once) |
| (found here) an RDS-managed master secret holds user `admin` and a fixed password | closed: `_rds_answers` (the master user name and a random password, as AWS) |
| (found here) `RemoveRoleFromInstanceProfile` of a role the profile does not hold: HTTP 500 | closed: `_iam_answers` (`NoSuchEntity`) |
| (found here) `ClientToken` of `RunInstances` and `CreateRouteTable` ignored: a retried create makes a second one | closed: `_ec2_client_tokens` (the same token returns the first result) |
"""

from __future__ import annotations

import functools
import os
import time

from awslab.local import latency
from awslab.spec.catalog import DB_ENGINES


def backing_state(obj) -> str | None:
    """'creating' while a real engine behind ``obj`` is still starting (see backing.py)."""
    if getattr(obj, "_awslab_engine_key", None) is None:
        return None
    from awslab.local import backing

    return backing.busy_state(obj)

_applied = False

DB_CLASSES = {f"db.{fam}.{size}" for fam in ("t3", "t4g") for size in ("micro", "small", "medium", "large", "xlarge", "2xlarge")} | {
    f"db.{fam}.{size}" for fam in ("m5", "m6g", "m6i", "m7g", "r5", "r6g", "r6i", "r7g")
    for size in ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge")}
# The majors are awslab.spec.catalog's (one fact); the classes and node types above are the exact
# offering the emulated AWS accepts, where the catalog holds only the pattern awslab checks early.
DB_MAJOR_VERSIONS = {engine: facts["versions"] for engine, facts in DB_ENGINES.items()}
CACHE_NODE_TYPES = {f"cache.{fam}.{size}" for fam in ("t3", "t4g") for size in ("micro", "small", "medium")} | {
    f"cache.{fam}.{size}" for fam in ("m5", "m6g", "m7g", "r5", "r6g", "r7g")
    for size in ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge")}
REDIS_VERSIONS = ("6.0", "6.2", "7.0", "7.1")


def apply() -> None:
    """Apply every patch once (idempotent). Must run before the first request is served."""
    global _applied
    if _applied:
        return
    # moto reads this when its IAM backend is first created; AWS always has the managed policies.
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    _rds_states()
    _rds_rejects()
    _rds_answers()
    _rds_managed_secret()
    _elasticache_members()
    _elasticache_states()
    _elasticache_failover()
    _elasticache_rejects()
    _cache_subnet_group_delete()
    _ec2_states()
    _ec2_client_tokens()
    _in_use_deletes()
    _iam_action_names()
    _iam_answers()
    _iam_managed_policies_in_one_partition()
    _applied = True


def _status_property(cls, attr: str = "_awslab_status"):
    """Replace ``cls.status`` with one that reports the object's transitional state first."""

    def get(self):
        return latency.phase(self) or backing_state(self) or getattr(self, attr, None)

    def put(self, value):
        setattr(self, attr, value)

    cls.status = property(get, put)


def _linger(obj, transition: str, final_state: str) -> bool:
    """Keep a deleted resource visible in ``final_state``'s predecessor until its timeline ends."""
    end = latency.start(obj, transition)
    obj.status = final_state
    if end <= time.monotonic():
        return False
    obj._awslab_gone_at = end
    return True


def _wrap_init_dicts(cls, *names: str) -> None:
    orig = cls.__init__

    @functools.wraps(orig)
    def __init__(self, *a, **kw):
        orig(self, *a, **kw)
        for name in names:
            setattr(self, name, latency.ExpiringDict(getattr(self, name)))

    cls.__init__ = __init__


def _rds_error(code: str, message: str):
    from moto.rds.exceptions import RDSClientError

    return RDSClientError(code, message)


# --- RDS ---------------------------------------------------------------------------------------

def _rds_states() -> None:
    from moto.rds.models import DBInstance, DBSnapshot, RDSBackend

    _status_property(DBInstance)
    _status_property(DBSnapshot)
    _wrap_init_dicts(RDSBackend, "databases")

    def timeline(method, transition_of):
        orig = getattr(RDSBackend, method)

        @functools.wraps(orig)
        def wrapper(self, *a, **kw):
            result = orig(self, *a, **kw)
            latency.start(result, transition_of(result))
            return result

        setattr(RDSBackend, method, wrapper)

    timeline("create_db_instance", lambda db: "rds.create.multi_az" if db.multi_az else "rds.create")
    timeline("create_db_instance_read_replica", lambda db: "rds.replica")
    timeline("restore_db_instance_from_db_snapshot", lambda db: "rds.restore")
    timeline("restore_db_instance_to_point_in_time", lambda db: "rds.restore")
    timeline("modify_db_instance", lambda db: "rds.modify")
    timeline("create_db_snapshot", lambda snap: "rds.snapshot")

    orig_replica = RDSBackend.create_db_instance_read_replica

    @functools.wraps(orig_replica)
    def create_db_instance_read_replica(self, db_kwargs):
        source = self.databases.get(db_kwargs.get("source_db_instance_identifier"))
        if source is not None:
            if source.status != "available":
                raise _rds_error("InvalidDBInstanceState",
                                 f"DB Instance {source.db_instance_identifier} is not in an available state.")
            if not source.backup_retention_period:
                raise _rds_error("InvalidDBInstanceState",
                                 "Automated backups are not enabled for this database instance. To enable automated "
                                 "backups, use ModifyDBInstance to set the backup retention period to a non-zero value.")
        return orig_replica(self, db_kwargs)

    RDSBackend.create_db_instance_read_replica = create_db_instance_read_replica

    orig_delete = RDSBackend.delete_db_instance

    @functools.wraps(orig_delete)
    def delete_db_instance(self, db_instance_identifier, final_db_snapshot_identifier=None,
                           skip_final_snapshot=False, delete_automated_backups=True):
        db = self.databases.get(db_instance_identifier)
        if db is not None and getattr(db, "_awslab_gone_at", None) is not None:
            raise _rds_error("InvalidDBInstanceState", f"Instance {db_instance_identifier} is already being deleted.")
        if db is not None and db.status in ("creating", "backing-up", "modifying", "rebooting"):
            raise _rds_error("InvalidDBInstanceState",
                             f"Instance {db_instance_identifier} is currently {db.status}; wait until it is available.")
        if db is not None:
            # AWS insists on an explicit final-snapshot choice and refuses one for a replica.
            if not skip_final_snapshot and not final_db_snapshot_identifier:
                raise _rds_error("InvalidParameterCombination",
                                 "FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is specified.")
            if db.is_replica and final_db_snapshot_identifier and not skip_final_snapshot:
                raise _rds_error("InvalidParameterValue",
                                 "FinalDBSnapshotIdentifier can not be specified when deleting a replica instance")
            if db.is_replica:
                # moto hands the replica the primary's secret object; AWS gives replicas none.
                db.manage_master_user_password = False
        deleted = orig_delete(self, db_instance_identifier, final_db_snapshot_identifier,
                              skip_final_snapshot, delete_automated_backups)
        if _linger(deleted, "rds.delete", "deleting"):
            dict.__setitem__(self.databases, db_instance_identifier, deleted)
        return deleted

    RDSBackend.delete_db_instance = delete_db_instance


def _rds_rejects() -> None:
    """What AWS refuses and moto accepts, refused with AWS's codes and messages."""
    from moto.rds.models import RDSBackend

    orig_create = RDSBackend.create_db_instance

    @functools.wraps(orig_create)
    def create_db_instance(self, db_kwargs):
        if db_kwargs.get("master_user_password") and db_kwargs.get("manage_master_user_password"):
            raise _rds_error("InvalidParameterCombination",
                             "Can't specify both MasterUserPassword and ManageMasterUserPassword.")
        engine, version, klass = db_kwargs.get("engine"), str(db_kwargs.get("engine_version") or ""), db_kwargs.get("db_instance_class")
        if engine in DB_MAJOR_VERSIONS:
            if version and not any(version == v or version.startswith(v + ".") for v in DB_MAJOR_VERSIONS[engine]):
                raise _rds_error("InvalidParameterCombination", f"Cannot find version {version} for {engine}")
            if klass and klass not in DB_CLASSES:
                raise _rds_error("InvalidParameterCombination",
                                 f"RDS does not support creating a DB instance with the following combination: "
                                 f"DBInstanceClass={klass}, Engine={engine}, EngineVersion={version or 'default'}, "
                                 f"LicenseModel={'postgresql-license' if engine == 'postgres' else 'general-public-license'}. "
                                 "For supported combinations of instance class and database engine version, see the documentation.")
        return orig_create(self, db_kwargs)

    RDSBackend.create_db_instance = create_db_instance


def _rds_managed_secret() -> None:
    """The secret RDS makes for ManageMasterUserPassword holds the master user name and a random
    password (moto: user 'admin', password 'P@55w0rd!' for every database)."""
    import json
    import secrets as token_source

    from moto.rds.models import MasterUserSecret

    def secret_string(self) -> str:
        user = getattr(self.resource, "master_username", None) or "postgres"
        return json.dumps({"username": user, "password": token_source.token_urlsafe(24)})

    MasterUserSecret._generate_secret_string = secret_string


def _rds_answers() -> None:
    """Answers moto gets wrong where awslab (or a learner) reads them."""
    from moto.rds.models import DBInstance, RDSBackend
    from moto.rds.responses import RDSResponse

    def secondary_az(self):
        if not self.multi_az:
            return None
        if getattr(self, "_awslab_secondary_az", None) is None:
            zones = []
            group = getattr(self, "db_subnet_group", None)
            for subnet in getattr(group, "subnets", None) or []:
                zones.append(getattr(subnet, "availability_zone", None))
            others = sorted({z for z in zones if z and z != self.availability_zone})
            self._awslab_secondary_az = others[0] if others else (
                f"{self.region}b" if self.availability_zone != f"{self.region}b" else f"{self.region}a")
        return self._awslab_secondary_az

    DBInstance.secondary_availability_zone = property(secondary_az)

    def reboot_db_instance(self, db_instance_identifier, force_failover=False):
        db = self.describe_db_instances(db_instance_identifier)[0]
        if db.status != "available":
            raise _rds_error("InvalidDBInstanceState", f"Instance {db_instance_identifier} is not in available state.")
        if force_failover:
            if not db.multi_az:
                raise _rds_error("InvalidParameterCombination",
                                 "Reboot with failover is only possible on a Multi-AZ DB instance.")
            standby = secondary_az(db)
            db._awslab_secondary_az, db.availability_zone = db.availability_zone, standby
        latency.start(db, "rds.reboot")
        return db

    def reboot_handler(self):
        force = str(self.params.get("ForceFailover", "false")).lower() == "true"
        from moto.core.responses import ActionResult

        return ActionResult({"DBInstance": self.backend.reboot_db_instance(self.params.get("DBInstanceIdentifier"), force)})

    RDSBackend.reboot_db_instance = reboot_db_instance
    RDSResponse.reboot_db_instance = reboot_handler

    orig_modify_group = RDSBackend.modify_db_subnet_group

    @functools.wraps(orig_modify_group)
    def modify_db_subnet_group(self, subnet_name, description, subnets):
        # moto pops the group and never puts it back: a modified group vanished.
        group = orig_modify_group(self, subnet_name, description, subnets)
        self.subnet_groups[subnet_name] = group
        return group

    RDSBackend.modify_db_subnet_group = modify_db_subnet_group

    orig_create_group = RDSBackend.create_subnet_group

    @functools.wraps(orig_create_group)
    def create_subnet_group(self, subnet_name, *a, **kw):
        # moto silently replaced an existing group (someone else's, tags and all).
        if subnet_name in self.subnet_groups:
            raise _rds_error("DBSubnetGroupAlreadyExists", f"The DB subnet group '{subnet_name}' already exists.")
        return orig_create_group(self, subnet_name, *a, **kw)

    RDSBackend.create_subnet_group = create_subnet_group

    orig_tagged = RDSBackend.iter_tagged_resources

    @functools.wraps(orig_tagged)
    def iter_tagged_resources(self):
        # The tagging API lists DB subnet groups (rds:subgrp) on AWS; moto leaves them out.
        from moto.core.resource_tagging import TaggedResource

        yield from orig_tagged(self)
        for group in list(self.subnet_groups.values()):
            yield TaggedResource(arn=group.arn, tags={t["Key"]: t["Value"] for t in group.get_tags()}, resource_type="rds:subgrp")

    RDSBackend.iter_tagged_resources = iter_tagged_resources

    # Restores: moto applies only truthy overrides, so MultiAZ=False or DeletionProtection=False
    # come back as the snapshot's True.
    for method in ("restore_db_instance_from_db_snapshot", "restore_db_instance_to_point_in_time"):
        orig = getattr(RDSBackend, method)

        def wrapper(self, *a, __orig=orig, method=method, **kw):
            restored = __orig(self, *a, **kw)
            overrides = a[-1] if a and hasattr(a[-1], "get") else kw.get("overrides", {})
            for key in ("multi_az", "deletion_protection", "publicly_accessible", "copy_tags_to_snapshot",
                        "auto_minor_version_upgrade"):
                if overrides.get(key) is False:
                    setattr(restored, key, False)
            # A point-in-time restore's SourceDBInstanceIdentifier made moto treat the new instance
            # as a read replica of the source; it is an independent instance.
            if method == "restore_db_instance_to_point_in_time" and getattr(restored, "source_db_instance_identifier", None):
                source = self.databases.get(restored.source_db_instance_identifier)
                if source is not None and restored.db_instance_identifier in getattr(source, "replicas", []):
                    source.replicas.remove(restored.db_instance_identifier)
                restored.is_replica = False
                restored.source_db_instance_identifier = None
            return restored

        setattr(RDSBackend, method, functools.wraps(orig)(wrapper))


# --- ElastiCache -------------------------------------------------------------------------------

def _elasticache_states() -> None:
    from moto.elasticache.models import (
        CacheCluster,
        ElastiCacheBackend,
        ReplicationGroup,
    )

    _status_property(ReplicationGroup)
    _wrap_init_dicts(ElastiCacheBackend, "replication_groups", "cache_clusters")

    orig_create = ElastiCacheBackend.create_replication_group

    @functools.wraps(orig_create)
    def create_replication_group(self, *a, **kw):
        group = orig_create(self, *a, **kw)
        latency.start(group, "elasticache.create")
        return group

    ElastiCacheBackend.create_replication_group = create_replication_group

    orig_rg = ElastiCacheBackend.delete_replication_group
    orig_cc = ElastiCacheBackend.delete_cache_cluster

    @functools.wraps(orig_rg)
    def delete_replication_group(self, replication_group_id, retain_primary_cluster):
        from moto.elasticache.exceptions import ElastiCacheException

        existing = self.replication_groups.get(replication_group_id)
        if existing is not None and existing.status != "available":
            class InvalidReplicationGroupState(ElastiCacheException):
                code = "InvalidReplicationGroupState"

            raise InvalidReplicationGroupState(f"Replication group {replication_group_id} is not in available state.")
        # Every member goes with the group (moto forgets the primary's id during its delete).
        members = [cid for cid, c in dict.items(self.cache_clusters)
                   if getattr(c, "replication_group_id", None) == replication_group_id]
        group = orig_rg(self, replication_group_id, retain_primary_cluster)
        _untag(self, group)
        if _linger(group, "elasticache.delete", "deleting"):
            for member in members:
                cluster = self.cache_clusters.get(member)
                if cluster is not None:
                    cluster._awslab_gone_at = group._awslab_gone_at
        else:
            self.replication_groups.pop(replication_group_id, None)
            for member in members:
                self.cache_clusters.pop(member, None)
        return group

    @functools.wraps(orig_cc)
    def delete_cache_cluster(self, cache_cluster_id):
        cluster = orig_cc(self, cache_cluster_id)
        _untag(self, cluster)
        end = latency.start(cluster, "elasticache.delete")
        if end > time.monotonic():
            cluster._awslab_gone_at = end
        else:
            self.cache_clusters.pop(cache_cluster_id, None)
        return cluster

    ElastiCacheBackend.delete_replication_group = delete_replication_group
    ElastiCacheBackend.delete_cache_cluster = delete_cache_cluster
    _ = CacheCluster


def _untag(backend, resource) -> None:
    arn = getattr(resource, "arn", None)
    if arn:
        backend.tagging_service.delete_all_tags_for_resource(arn)


def _elasticache_members() -> None:
    """A group of NumCacheClusters=N has N members, each visible as a cache cluster carrying the
    group's security groups (where AWS reports them), and the groups can be changed."""
    import inspect

    from moto.elasticache.models import CacheCluster, ElastiCacheBackend
    from moto.elasticache.responses import ElastiCacheResponse

    cluster_params = [p for p in inspect.signature(CacheCluster.__init__).parameters if p != "self"]
    # DescribeCacheClusters reports a cluster's VPC security groups as SecurityGroups; moto omits them.
    CacheCluster.security_groups = property(
        lambda self: [{"SecurityGroupId": g, "Status": "active"} for g in (self.security_group_ids or [])])
    orig_create = ElastiCacheBackend.create_replication_group

    @functools.wraps(orig_create)
    def create_replication_group(self, *a, **kw):
        if kw.get("num_cache_clusters") and not kw.get("replicas_per_node_group") and not kw.get("num_node_groups"):
            # moto builds cluster-mode-disabled members from ReplicasPerNodeGroup only.
            kw["replicas_per_node_group"] = kw["num_cache_clusters"] - 1
        group = orig_create(self, *a, **kw)
        members = [m for ng in group.node_groups for m in ng.get("node_group_members", [])]
        for member in members:
            args = dict.fromkeys(cluster_params)
            args.update(account_id=self.account_id, region_name=self.region_name,
                        cache_cluster_id=member["cache_cluster_id"], cache_node_type=group.cache_node_type,
                        replication_group_id=group.replication_group_id, engine=group.engine,
                        engine_version=group.engine_version, cache_subnet_group_name=group.cache_subnet_group_name,
                        preferred_availability_zone=member.get("preferred_availability_zone"),
                        transit_encryption_enabled=group.transit_encryption_enabled, port=group.port,
                        security_group_ids=list(group.security_group_ids or []), tags=[],
                        log_delivery_configurations=[])
            self.cache_clusters[member["cache_cluster_id"]] = CacheCluster(**args)
        return group

    ElastiCacheBackend.create_replication_group = create_replication_group

    orig_modify = ElastiCacheResponse.modify_replication_group

    @functools.wraps(orig_modify)
    def modify_replication_group(self):
        result = orig_modify(self)
        groups = self._get_param("SecurityGroupIds")
        if groups is not None:
            backend = self.elasticache_backend
            group = backend.replication_groups[self._get_param("ReplicationGroupId")]
            group.security_group_ids = list(groups)
            for member in group.member_clusters:
                cluster = backend.cache_clusters.get(member)
                if cluster is not None:
                    cluster.security_group_ids = list(groups)
        return result

    ElastiCacheResponse.modify_replication_group = modify_replication_group


def _elasticache_failover() -> None:
    """TestFailover: the group is `modifying` for a while, then a replica is the primary."""
    from moto.core.responses import ActionResult
    from moto.elasticache.exceptions import (
        ElastiCacheException,
        ReplicationGroupNotFound,
    )
    from moto.elasticache.models import ElastiCacheBackend
    from moto.elasticache.responses import ElastiCacheResponse

    class InvalidReplicationGroupState(ElastiCacheException):
        code = "InvalidReplicationGroupState"

    def test_failover(self, replication_group_id, node_group_id):
        group = self.replication_groups.get(replication_group_id)
        if group is None:
            raise ReplicationGroupNotFound(replication_group_id)
        if group.status != "available" or group.automatic_failover != "enabled":
            raise InvalidReplicationGroupState(
                f"Replication group {replication_group_id} must be available with automatic failover enabled.")
        for ng in group.node_groups:
            if ng.get("node_group_id") != node_group_id:
                continue
            members = ng.get("node_group_members", [])
            if len(members) < 2:
                raise InvalidReplicationGroupState("There is no replica to fail over to.")
            old = next(m for m in members if m.get("current_role") == "primary")
            new = next(m for m in members if m is not old)
            old["current_role"], new["current_role"] = "replica", "primary"
            group.primary_cluster_id = new["cache_cluster_id"]
        latency.start(group, "elasticache.failover")
        return group

    def handler(self):
        group = self.elasticache_backend.test_failover(self._get_param("ReplicationGroupId"), self._get_param("NodeGroupId"))
        return ActionResult({"ReplicationGroup": group})

    ElastiCacheBackend.test_failover = test_failover
    ElastiCacheResponse.test_failover = handler


def _elasticache_rejects() -> None:
    from moto.elasticache.exceptions import (
        InvalidParameterCombinationException,
        InvalidParameterValueException,
    )
    from moto.elasticache.models import ElastiCacheBackend

    orig = ElastiCacheBackend.create_replication_group

    @functools.wraps(orig)
    def create_replication_group(self, *a, **kw):
        if kw.get("auth_token") and not kw.get("transit_encryption_enabled"):
            raise InvalidParameterValueException(
                "The AUTH token is only supported when encryption-in-transit is enabled")
        node_type, version = kw.get("cache_node_type"), kw.get("engine_version")
        if node_type and node_type not in CACHE_NODE_TYPES:
            raise InvalidParameterValueException(f"Invalid Cache Node Type: {node_type}")
        if version and (kw.get("engine") or "redis") == "redis" and not any(
                version == v or version.startswith(v + ".") for v in REDIS_VERSIONS):
            raise InvalidParameterCombinationException(f"Cannot find version {version} for redis")
        return orig(self, *a, **kw)

    ElastiCacheBackend.create_replication_group = create_replication_group


def _cache_subnet_group_delete() -> None:
    """moto has no DeleteCacheSubnetGroup. AWS refuses while a cluster uses the group."""
    from moto.core.responses import EmptyResult
    from moto.elasticache.exceptions import (
        CacheSubnetGroupNotFound,
        ElastiCacheException,
    )
    from moto.elasticache.models import ElastiCacheBackend
    from moto.elasticache.responses import ElastiCacheResponse

    class CacheSubnetGroupInUse(ElastiCacheException):
        code = "CacheSubnetGroupInUse"

        def __init__(self, name: str) -> None:
            super().__init__(f"Cache subnet group {name} is currently in use by a cache cluster.")

    def delete_cache_subnet_group(self, cache_subnet_group_name):
        group = self.cache_subnet_groups.get(cache_subnet_group_name)
        if group is None:
            raise CacheSubnetGroupNotFound(cache_subnet_group_name)
        users = [*self.replication_groups.values(), *self.cache_clusters.values()]
        if any(getattr(u, "cache_subnet_group_name", None) == cache_subnet_group_name for u in users):
            raise CacheSubnetGroupInUse(cache_subnet_group_name)
        del self.cache_subnet_groups[cache_subnet_group_name]
        _untag(self, group)

    def handler(self):
        self.elasticache_backend.delete_cache_subnet_group(self._get_param("CacheSubnetGroupName"))
        return EmptyResult()

    ElastiCacheBackend.delete_cache_subnet_group = delete_cache_subnet_group
    ElastiCacheResponse.delete_cache_subnet_group = handler


# --- EC2 ---------------------------------------------------------------------------------------

STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}


def _ec2_states() -> None:
    """`pending` before `running`; `shutting-down` before `terminated`; then gone after a while."""
    from moto.ec2.models.instances import Instance, InstanceBackend, InstanceState

    def current(self) -> str:
        return latency.phase(self) or self._state.name

    Instance.state = property(current)
    Instance.state_code = property(lambda self: STATE_CODES.get(current(self), self._state.code))
    Instance.instance_state = property(lambda self: InstanceState(current(self), STATE_CODES.get(current(self), 0)))
    _wrap_init_dicts(InstanceBackend, "reservations")

    orig_run = InstanceBackend.run_instances

    @functools.wraps(orig_run)
    def run_instances(self, *a, **kw):
        reservation = orig_run(self, *a, **kw)
        for inst in reservation.instances:
            latency.start(inst, "ec2.run")
        return reservation

    orig_terminate = InstanceBackend.terminate_instances

    @functools.wraps(orig_terminate)
    def terminate_instances(self, instance_ids):
        result = orig_terminate(self, instance_ids)
        now = time.monotonic()
        lat = latency.current()
        for inst, _ in result:
            latency.start(inst, "ec2.terminate")
            inst._awslab_terminated_at = now + lat.seconds("ec2.terminate")
            inst._awslab_eni_free_at = inst._awslab_terminated_at + lat.seconds("ec2.eni-drain")
            inst._awslab_gone_at = inst._awslab_terminated_at + lat.seconds("ec2.terminated-retention")
        for reservation in list(dict.values(self.reservations)):
            gone = [getattr(i, "_awslab_gone_at", None) for i in reservation.instances]
            if gone and all(g is not None for g in gone):
                reservation._awslab_gone_at = max(gone)
                if reservation._awslab_gone_at <= now:
                    for i in reservation.instances:
                        self.tags.pop(i.id, None)
        return result

    InstanceBackend.run_instances = run_instances
    InstanceBackend.terminate_instances = terminate_instances


def _ec2_client_tokens() -> None:
    """A request repeated with the same ``ClientToken`` returns what the first one made, as on AWS
    (botocore fills the token in once per call, so its own retries repeat it)."""
    from moto.core.responses import ActionResult
    from moto.ec2.responses.instances import InstanceResponse
    from moto.ec2.responses.route_tables import RouteTables

    orig_run = InstanceResponse.run_instances

    @functools.wraps(orig_run)
    def run_instances(self):
        token = self._get_param("ClientToken")
        if token:
            for reservation in dict.values(self.ec2_backend.reservations):
                if reservation.instances and all(i.client_token == token for i in reservation.instances):
                    return ActionResult(reservation)
        return orig_run(self)

    InstanceResponse.run_instances = run_instances

    orig_create_rt = RouteTables.create_route_table

    @functools.wraps(orig_create_rt)
    def create_route_table(self):
        token = self._get_param("ClientToken")
        made = self.ec2_backend.__dict__.setdefault("_awslab_route_table_tokens", {})
        if token and made.get(token) in self.ec2_backend.route_tables:
            return ActionResult({"RouteTable": self.ec2_backend.route_tables[made[token]]})
        result = orig_create_rt(self)
        if token:
            made[token] = result.result["RouteTable"].id
        return result

    RouteTables.create_route_table = create_route_table


def _instance_in_use(inst, now: float) -> bool:
    """An instance holds its subnet and groups until its network interfaces have drained."""
    free_at = getattr(inst, "_awslab_eni_free_at", None)
    if free_at is not None:
        return now < free_at
    return inst._state.name not in ("terminated",)


def _instance_group_ids(inst) -> set[str]:
    ids = {g.id for g in (getattr(inst, "security_groups", None) or []) if hasattr(g, "id")}
    for nic in getattr(inst, "nics", {}).values():
        ids |= {g.id for g in getattr(nic, "group_set", [])}
    return ids


def _in_use_deletes() -> None:
    """Deleting what is still in use fails as on AWS."""
    from moto.ec2.exceptions import DependencyViolationError
    from moto.ec2.models.security_groups import SecurityGroupBackend
    from moto.ec2.models.subnets import SubnetBackend
    from moto.elasticache.models import elasticache_backends
    from moto.rds.models import RDSBackend, rds_backends

    def instances(ec2):
        return [i for r in dict.values(ec2.reservations) for i in r.instances]

    orig_sg = SecurityGroupBackend.delete_security_group

    @functools.wraps(orig_sg)
    def delete_security_group(self, name=None, group_id=None):
        group = self.get_security_group_from_id(group_id) if group_id else None
        if group is not None:
            now = time.monotonic()
            in_use = any(group.id in _instance_group_ids(i) and _instance_in_use(i, now) for i in instances(self))
            for groups in self.groups.values():
                for other in groups.values():
                    if other.id == group.id:
                        continue
                    for rule in [*other.ingress_rules, *other.egress_rules]:
                        if (rule.source_group or {}).get("GroupId") == group.id:
                            in_use = True
            rds = rds_backends[self.account_id][self.region_name]
            in_use |= any(group.id in (db.vpc_security_group_ids or []) for db in rds.databases.values())
            cache = elasticache_backends[self.account_id][self.region_name]
            in_use |= any(group.id in (getattr(c, "security_group_ids", None) or [])
                          for c in [*cache.replication_groups.values(), *cache.cache_clusters.values()])
            if in_use:
                raise DependencyViolationError(f"resource {group.id} has a dependent object")
        return orig_sg(self, name=name, group_id=group_id)

    SecurityGroupBackend.delete_security_group = delete_security_group

    orig_subnet = SubnetBackend.delete_subnet

    @functools.wraps(orig_subnet)
    def delete_subnet(self, subnet_id):
        now = time.monotonic()
        if any(getattr(i, "subnet_id", None) == subnet_id and _instance_in_use(i, now) for i in instances(self)):
            raise DependencyViolationError(f"The subnet '{subnet_id}' has dependencies and cannot be deleted.")
        return orig_subnet(self, subnet_id)

    SubnetBackend.delete_subnet = delete_subnet

    orig_dbsg = RDSBackend.delete_subnet_group

    @functools.wraps(orig_dbsg)
    def delete_subnet_group(self, subnet_name):
        users = [db.db_instance_identifier for db in self.databases.values()
                 if getattr(db, "_db_subnet_group_name", None) == subnet_name]
        if users:
            raise _rds_error("InvalidDBSubnetGroupStateFault",
                             f"Cannot delete the subnet group '{subnet_name}' because at least one database instance: "
                             f"{users[0]} is still using it.")
        return orig_dbsg(self, subnet_name)

    RDSBackend.delete_subnet_group = delete_subnet_group


def _iam_answers() -> None:
    """Removing a role an instance profile does not hold is NoSuchEntity on AWS (moto: a crash)."""
    from moto.iam.exceptions import NoSuchEntity
    from moto.iam.models import IAMBackend

    orig = IAMBackend.remove_role_from_instance_profile

    @functools.wraps(orig)
    def remove_role_from_instance_profile(self, profile_name, role_name):
        profile = self.get_instance_profile(profile_name)
        if not any(r.name == role_name for r in profile.roles):
            raise NoSuchEntity(f"The role with name {role_name} cannot be found in instance profile {profile_name}.")
        return orig(self, profile_name, role_name)

    IAMBackend.remove_role_from_instance_profile = remove_role_from_instance_profile


def _iam_managed_policies_in_one_partition() -> None:
    """Start-up speed, not a gap: the first request that names an access key makes moto build an
    IAM backend for each of its six partitions, each parsing AWS's ~1,300 managed policies (about
    0.7 s of the local AWS's start). The local AWS serves the ``aws`` partition only; the others
    start without them."""
    from moto.iam.models import IAMBackend

    orig = IAMBackend._init_aws_policies

    @functools.wraps(orig)
    def _init_aws_policies(self):
        return orig(self) if self.region_name == "aws" else []

    IAMBackend._init_aws_policies = _init_aws_policies


def _iam_action_names() -> None:
    """With IAM enforcement on, moto names an action by the request's signing name; AWS's IAM
    prefix differs for the tagging API (`tag:`), so a real policy would be refused locally.

    moto knows neither the resource a request touches (it passes "*") nor most condition keys, so
    a least-privilege statement (resource ARNs, tag conditions) never matched and everything was
    denied. The local AWS checks identity policies at the action level only, as MOTO-GAPS says it
    can: an Allow or Deny whose actions match decides, whatever its Resource and Condition.
    Resource scoping and conditions are checked statically (parliament), not here."""
    from moto.iam.access_control import (
        IAMPolicyStatement,
        IAMRequestBase,
        PermissionResult,
    )

    orig_permitted = IAMPolicyStatement.is_action_permitted

    @functools.wraps(orig_permitted)
    def is_action_permitted(self, action, resource="*", principal=None, incoming_condition_values=None):
        if principal is not None or resource != "*" or "Action" not in self._statement:
            return orig_permitted(self, action, resource, principal, incoming_condition_values)
        if not self._check_element_matches("Action", action):
            return PermissionResult.NEUTRAL
        return PermissionResult.PERMITTED if self._statement["Effect"] == "Allow" else PermissionResult.DENIED

    IAMPolicyStatement.is_action_permitted = is_action_permitted

    prefixes = {"tagging": "tag"}
    orig = IAMRequestBase.__init__

    @functools.wraps(orig)
    def __init__(self, *a, **kw):
        orig(self, *a, **kw)
        service, _, action = self._action.partition(":")
        if service in prefixes:
            self._action = f"{prefixes[service]}:{action}"

    IAMRequestBase.__init__ = __init__
