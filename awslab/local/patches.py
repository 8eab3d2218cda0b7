"""awslab's layer over moto: close the gaps between moto and AWS that matter to the lab.

Loaded by the local server process (``awslab.local.server``) and by the test fixtures, never by the
CLI itself, so the CLI starts quickly. Each patch names the row of shared/MOTO-GAPS.md it closes.
Pinned to the moto version in pyproject.toml: the patches wrap moto's backends by method name.

| MOTO-GAPS row                                                         | here                         |
|-----------------------------------------------------------------------|------------------------------|
| ElastiCache deletes never finish, ids never freed                     | closed: `_finish_cache_deletes` |
| `delete_cache_subnet_group` not implemented                           | closed: `_cache_subnet_group_delete` (in-use refused as on AWS) |
| IAM managed policies not loaded (SSM core policy attach fails)        | closed: the server sets `MOTO_IAM_LOAD_MANAGED_POLICIES` |
| `delete_db_instance` with neither snapshot option accepted            | closed: `_rds_delete_rules` |
| final snapshot id on a read replica accepted                          | closed: `_rds_delete_rules` |
| deleting a replica deletes the primary's managed secret               | closed: `_rds_delete_rules` |
| terminated instances listed (and tagged) forever                      | closed: `_purge_terminated_instances` (AWS: about an hour; here `AWSLAB_LOCAL_TERMINATED_RETENTION_S`, default 0) |
| everything else in MOTO-GAPS.md                                       | open: awslab's own code is written to AWS's rules (see the issue on local fidelity) |
"""

from __future__ import annotations

import functools
import os

_applied = False


def apply() -> None:
    """Apply every patch once (idempotent). Must run before the first request is served."""
    global _applied
    if _applied:
        return
    # moto reads this when its IAM backend is first created; AWS always has the managed policies.
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    _finish_cache_deletes()
    _cache_subnet_group_delete()
    _rds_delete_rules()
    _purge_terminated_instances()
    _applied = True


def _finish_cache_deletes() -> None:
    """moto leaves deleted replication groups and clusters in 'deleting' forever; AWS removes them.

    The delete call still answers with status 'deleting' (as AWS does); the next describe finds
    nothing and the id can be reused.
    """
    from moto.elasticache.models import ElastiCacheBackend

    orig_rg = ElastiCacheBackend.delete_replication_group
    orig_cc = ElastiCacheBackend.delete_cache_cluster

    @functools.wraps(orig_rg)
    def delete_replication_group(self, replication_group_id, retain_primary_cluster):
        group = orig_rg(self, replication_group_id, retain_primary_cluster)
        self.replication_groups.pop(replication_group_id, None)
        for member in list(getattr(group, "member_clusters", []) or []):
            self.cache_clusters.pop(member, None)
        _untag(self, group)
        return group

    @functools.wraps(orig_cc)
    def delete_cache_cluster(self, cache_cluster_id):
        cluster = orig_cc(self, cache_cluster_id)
        self.cache_clusters.pop(cache_cluster_id, None)
        _untag(self, cluster)
        return cluster

    ElastiCacheBackend.delete_replication_group = delete_replication_group
    ElastiCacheBackend.delete_cache_cluster = delete_cache_cluster


def _untag(backend, resource) -> None:
    arn = getattr(resource, "arn", None)
    if arn:
        backend.tagging_service.delete_all_tags_for_resource(arn)


def _cache_subnet_group_delete() -> None:
    """moto has no DeleteCacheSubnetGroup. AWS refuses while a cluster uses the group."""
    from moto.core.responses import EmptyResult
    from moto.elasticache.exceptions import CacheSubnetGroupNotFound, ElastiCacheException
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


def _rds_delete_rules() -> None:
    """AWS insists on an explicit final-snapshot choice, refuses one for a replica, and deleting a
    replica leaves the primary's RDS-managed secret alone (moto shares and deletes it)."""
    from moto.rds.exceptions import InvalidParameterCombination, InvalidParameterValue
    from moto.rds.models import RDSBackend

    orig = RDSBackend.delete_db_instance

    @functools.wraps(orig)
    def delete_db_instance(self, db_instance_identifier, final_db_snapshot_identifier=None,
                           skip_final_snapshot=False, delete_automated_backups=True):
        db = self.databases.get(db_instance_identifier)
        if db is not None:
            if not skip_final_snapshot and not final_db_snapshot_identifier:
                raise InvalidParameterCombination(
                    "FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is specified.")
            if db.is_replica and final_db_snapshot_identifier and not skip_final_snapshot:
                raise InvalidParameterValue(
                    "FinalDBSnapshotIdentifier can not be specified when deleting a replica instance")
            if db.is_replica:
                # The replica's "secret" is the primary's object in moto: don't let it go with the replica.
                db.manage_master_user_password = False
        return orig(self, db_instance_identifier, final_db_snapshot_identifier,
                    skip_final_snapshot, delete_automated_backups)

    RDSBackend.delete_db_instance = delete_db_instance


def _purge_terminated_instances() -> None:
    """AWS forgets a terminated instance (and its tags) after about an hour; moto never does.

    The local AWS keeps it for ``AWSLAB_LOCAL_TERMINATED_RETENTION_S`` seconds (default 0: gone
    from the next request on), so a stack's teardown leaves nothing tagged behind.
    """
    import threading

    from moto.ec2.models.instances import InstanceBackend

    orig = InstanceBackend.terminate_instances

    def purge(backend, instance_ids: list[str]) -> None:
        for res_id, reservation in list(backend.reservations.items()):
            reservation.instances = [i for i in reservation.instances if i.id not in instance_ids]
            if not reservation.instances:
                backend.reservations.pop(res_id, None)
        for iid in instance_ids:
            backend.tags.pop(iid, None)

    @functools.wraps(orig)
    def terminate_instances(self, instance_ids):
        result = orig(self, instance_ids)
        ids = [inst.id for inst, _ in result]
        retention = float(os.environ.get("AWSLAB_LOCAL_TERMINATED_RETENTION_S", "0"))
        if retention <= 0:
            purge(self, ids)
        else:
            timer = threading.Timer(retention, purge, args=(self, ids))
            timer.daemon = True
            timer.start()
        return result

    InstanceBackend.terminate_instances = terminate_instances
