"""ElastiCache: replication groups whose members are real cache clusters (with their nodes) and a reader endpoint, deletes that finish, TestFailover, refusals AWS makes, cache subnet group deletes, node snapshots.

Part of awslab's layer over moto (its patches name the rows of ``GAPS.md`` they close)."""

from __future__ import annotations

import functools

from awslab.local import latency
from awslab.local.patches._base import (
    CACHE_NODE_TYPES,
    REDIS_VERSIONS,
    init_dicts,
    linger,
    status_property,
)
from awslab.local.patches._patch import patch
from awslab.local.side import note, side

CACHE_BACKEND = "moto.elasticache.models:ElastiCacheBackend"
CACHE_RESPONSE = "moto.elasticache.responses:ElastiCacheResponse"
CACHE_CLUSTER = "moto.elasticache.models:CacheCluster"


# --- states: groups pass through theirs; deletes finish and free the id ----------------------------

patch("moto.elasticache.models:ReplicationGroup", "status", gap="cache-group-states", phase="states",
      kind="add")(status_property())
patch(CACHE_BACKEND, "__init__", gap="cache-deletes-finish", phase="states")(
    init_dicts("replication_groups", "cache_clusters"))


@patch(CACHE_BACKEND, "create_replication_group", gap="cache-group-states", phase="states")
def create_replication_group_timeline(original, self, *a, **kw):
    group = original(self, *a, **kw)
    latency.start(group, "elasticache.create")
    return group


def _group_state_error(message: str) -> Exception:
    """AWS's InvalidReplicationGroupState, as one of moto's ElastiCache errors."""
    from moto.elasticache.exceptions import ElastiCacheException

    class InvalidReplicationGroupState(ElastiCacheException):
        code = "InvalidReplicationGroupState"

    return InvalidReplicationGroupState(message)


@patch(CACHE_BACKEND, gap="cache-deletes-finish", phase="states")
def delete_replication_group(original, self, replication_group_id, retain_primary_cluster):
    existing = self.replication_groups.get(replication_group_id)
    if existing is not None and existing.status != "available":
        raise _group_state_error(f"Replication group {replication_group_id} is not in available state.")
    # Every member goes with the group (moto forgets the primary's id during its delete).
    members = [cid for cid, c in dict.items(self.cache_clusters)
               if getattr(c, "replication_group_id", None) == replication_group_id]
    group = original(self, replication_group_id, retain_primary_cluster)
    _untag(self, group)
    if linger(group, "elasticache.delete", "deleting"):
        for member in members:
            cluster = self.cache_clusters.get(member)
            if cluster is not None:
                note(cluster, gone_at=side(group).gone_at)
    else:
        self.replication_groups.pop(replication_group_id, None)
        for member in members:
            self.cache_clusters.pop(member, None)
    return group


@patch(CACHE_BACKEND, gap="cache-deletes-finish", phase="states")
def delete_cache_cluster(original, self, cache_cluster_id):
    cluster = original(self, cache_cluster_id)
    _untag(self, cluster)
    end, now = latency.start(cluster, "elasticache.delete"), latency.now()
    if end > now:
        note(cluster, gone_at=end)
    else:
        # With no time to spend deleting (instant), the cluster still answers `deleting` once, as
        # a describe right after the delete always does on AWS; then it is gone and its id free.
        note(cluster, gone_when_seen=True, gone_at=now + UNSEEN_DELETING_S)
    return cluster


@patch(CACHE_BACKEND, gap="cache-deletes-finish", phase="states")
def describe_cache_clusters(original, self, *a, **kw):
    clusters = original(self, *a, **kw)
    for cluster in clusters:
        if side(cluster).gone_when_seen:
            note(cluster, gone_at=latency.now())   # shown `deleting` this once
    return clusters


# Under `instant`, the longest a deleted cache cluster that nobody describes keeps its id.
UNSEEN_DELETING_S = 5.0


def _untag(backend, resource) -> None:
    arn = getattr(resource, "arn", None)
    if arn:
        backend.tagging_service.delete_all_tags_for_resource(arn)


# --- objects: a group's members are cache clusters with their nodes; a cluster's node has an endpoint

# DescribeCacheClusters reports a cluster's VPC security groups as SecurityGroups; moto omits them.
@patch(CACHE_CLUSTER, gap="cache-cluster-security-groups", phase="objects", kind="add")
@property
def security_groups(self):
    return [{"SecurityGroupId": g, "Status": "active"} for g in (self.security_group_ids or [])]


# ... and its (EC2-Classic) cache security groups, an empty list in a VPC, never absent (Ansible's
# elasticache module reads it on every run).
@patch(CACHE_CLUSTER, gap="cache-cluster-security-groups", phase="objects", kind="add")
@property
def cache_security_groups(self):
    return [{"CacheSecurityGroupName": n, "Status": "active"} for n in (self.cache_security_group_names or [])]


@patch(CACHE_BACKEND, "create_replication_group", gap=("cache-group-members", "cache-reader-endpoint",
                                                       "cache-cluster-endpoints"), phase="objects")
def create_replication_group_members(original, self, *a, **kw):
    """A group of NumCacheClusters=N has N members, each visible as a cache cluster carrying the
    group's security groups (where AWS reports them), AUTH and encryption settings and, with
    ShowCacheNodeInfo, its node. The group shows its reader endpoint."""
    from moto.elasticache.models import CacheCluster

    if kw.get("num_cache_clusters") and not kw.get("replicas_per_node_group") and not kw.get("num_node_groups"):
        # moto builds cluster-mode-disabled members from ReplicasPerNodeGroup only.
        kw["replicas_per_node_group"] = kw["num_cache_clusters"] - 1
    group = original(self, *a, **kw)
    members = [m for ng in group.node_groups for m in ng.get("node_group_members", [])]
    for member in members:
        args = dict.fromkeys(_cluster_params())
        args.update(account_id=self.account_id, region_name=self.region_name,
                    cache_cluster_id=member["cache_cluster_id"], cache_node_type=group.cache_node_type,
                    replication_group_id=group.replication_group_id, engine=group.engine,
                    engine_version=group.engine_version, cache_subnet_group_name=group.cache_subnet_group_name,
                    preferred_availability_zone=member.get("preferred_availability_zone"),
                    transit_encryption_enabled=group.transit_encryption_enabled, port=group.port,
                    security_group_ids=list(group.security_group_ids or []), tags=[],
                    log_delivery_configurations=[])
        cluster = CacheCluster(**args)
        # AWS shows a member's AUTH and at-rest encryption as its group's (moto: off, absent).
        cluster.auth_token_enabled = group.auth_token_enabled
        cluster.at_rest_encryption_enabled = group.at_rest_encryption_enabled
        note(cluster, node_endpoint={"address": f"{member['cache_cluster_id']}.{_domain(group)}", "port": group.port})
        self.cache_clusters[member["cache_cluster_id"]] = cluster
    for ng in group.node_groups:
        if ng.get("primary_endpoint_address"):
            # Cluster mode disabled: AWS shows the reader endpoint (replica.<group domain>); moto
            # keeps its address (which backing/ publishes) but shows none.
            address = ng.setdefault("reader_endpoint_address", f"replica.{_domain(group)}")
            ng["reader_endpoint"] = {"address": address, "port": group.port}
    return group


@functools.cache
def _cluster_params() -> tuple[str, ...]:
    """moto's CacheCluster's constructor parameters."""
    import inspect

    from moto.elasticache.models import CacheCluster

    return tuple(p for p in inspect.signature(CacheCluster.__init__).parameters if p != "self")


@patch(CACHE_RESPONSE, "modify_replication_group", gap="cache-group-members", phase="objects")
def modify_replication_group_groups(original, self):
    """The group's security groups can be changed (``SecurityGroupIds``), its members' with it."""
    result = original(self)
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


@patch(CACHE_RESPONSE, "describe_cache_clusters", gap="cache-cluster-endpoints", phase="objects")
def describe_cache_clusters_nodes(original, self):
    result = original(self)
    if str(self._get_param("ShowCacheNodeInfo", False)).lower() == "true":
        clusters = result.result["CacheClusters"]
        result.result["CacheClusters"] = [_WithNode(c) if side(c).node_endpoint is not None else c
                                          for c in clusters]
    return result


@patch(CACHE_BACKEND, gap=("cache-cluster-endpoints", "cache-auth-token-transit", "unknown-classes-versions"),
       phase="objects")
def create_cache_cluster(original, self, *a, **kw):
    """A cache cluster of its own (CreateCacheCluster without a replication group): its one node
    has an endpoint, ``<id>.<6 characters>.0001.<region short>.cache.amazonaws.com``, shown with
    ShowCacheNodeInfo (moto: no CacheNodes), and backing/ starts a Redis behind it. AWS's
    refusals as for a group (AUTH without transit encryption, unknown node types and versions)."""
    import random
    import string

    _refuse(kw)
    cluster = original(self, *a, **kw)
    if not getattr(cluster, "replication_group_id", None) and cluster.engine == "redis":
        suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=6))
        note(cluster, node_endpoint={
            "address": f"{cluster.cache_cluster_id}.{suffix}.0001.{region_short(self.region_name)}.cache.amazonaws.com",
            "port": cluster.port})
    return cluster


def region_short(region: str) -> str:
    """us-east-1 -> use1, ap-southeast-2 -> apse2, eu-central-1 -> euc1: the part of ElastiCache's
    endpoint names that says the region."""
    words = {"north": "n", "south": "s", "east": "e", "west": "w", "central": "c", "northeast": "ne",
             "southeast": "se", "northwest": "nw", "southwest": "sw"}
    parts = region.split("-")
    if len(parts) != 3:
        return region.replace("-", "")
    return parts[0] + words.get(parts[1], parts[1][:1]) + parts[2]


def _refuse(kw: dict) -> None:
    from moto.elasticache.exceptions import (
        InvalidParameterCombinationException,
        InvalidParameterValueException,
    )

    if kw.get("auth_token") and not kw.get("transit_encryption_enabled"):
        raise InvalidParameterValueException("The AUTH token is only supported when encryption-in-transit is enabled")
    node_type, version = kw.get("cache_node_type"), kw.get("engine_version")
    if node_type and node_type not in CACHE_NODE_TYPES:
        raise InvalidParameterValueException(f"Invalid Cache Node Type: {node_type}")
    if version and (kw.get("engine") or "redis") == "redis" and not any(
            version == v or version.startswith(v + ".") for v in REDIS_VERSIONS):
        raise InvalidParameterCombinationException(f"Cannot find version {version} for redis")
    from awslab.local.backing import hooks

    if version and hooks.current is not None:   # with engines: never a version the server behind it does not run
        from awslab.local import offering

        why = offering.cache_refusal(kw.get("engine") or "redis", str(version))
        if why:
            raise InvalidParameterCombinationException(f"Cannot find version {version} for redis: {why}")


# --- rejects: AWS's refusals of a group (a cluster's are made in create_cache_cluster above) -------

@patch(CACHE_BACKEND, "create_replication_group", gap=("cache-auth-token-transit", "unknown-classes-versions"),
       phase="rejects")
def create_replication_group_refusals(original, self, *a, **kw):
    _refuse(kw)
    return original(self, *a, **kw)


def _domain(group) -> str:
    """<group>.<id>.<region short>.cache.amazonaws.com, the suffix of every endpoint of ``group``."""
    ng = group.node_groups[0] if group.node_groups else {}
    address = ng.get("primary_endpoint_address") or getattr(group, "configuration_endpoint", {}).get("address", "")
    return address.split(".", 1)[1]


class _WithNode:
    """A group member as DescribeCacheClusters shows it with ShowCacheNodeInfo: with its one node
    (moto: no CacheNodes), whose endpoint is the member's own, <member>.<group domain>."""

    def __init__(self, cluster) -> None:
        self._cluster = cluster

    def __getattr__(self, name):
        return getattr(self._cluster, name)

    @property
    def cache_nodes(self) -> list[dict]:
        c = self._cluster
        return [{"CacheNodeId": "0001", "CacheNodeStatus": c.cache_cluster_status,
                 "CacheNodeCreateTime": c.cache_cluster_create_time,
                 "Endpoint": {"Address": side(c).node_endpoint["address"], "Port": side(c).node_endpoint["port"]},
                 "ParameterGroupStatus": "in-sync", "CustomerAvailabilityZone": c.preferred_availability_zone}]


# --- answers: what moto leaves out where a learner reads it, and the calls it lacks ---------------

@patch(CACHE_BACKEND, gap="cache-node-snapshots", phase="answers")
def create_snapshot(original, self, snapshot_name, replication_group_id=None, cache_cluster_id=None, *a, **kw):
    """A snapshot's NodeSnapshots."""
    from moto.core.utils import utcnow

    snap = original(self, snapshot_name, replication_group_id, cache_cluster_id, *a, **kw)
    # AWS describes what a snapshot holds, one entry per node group (of a single cluster: its
    # node); a group's is taken from a replica where it has one, as ElastiCache prefers.
    taken = utcnow()
    group = self.replication_groups.get(replication_group_id) if replication_group_id else None
    if group is not None:
        nodes = []
        for ng in group.node_groups:
            members = ng.get("node_group_members", [])
            source = next((m for m in members if m.get("current_role") == "replica"), members[0] if members else None)
            if source is None:
                continue
            cluster = self.cache_clusters.get(source["cache_cluster_id"])
            nodes.append(_node_snapshot(cluster, taken, cache_cluster_id=source["cache_cluster_id"],
                                        node_group_id=ng.get("node_group_id")))
        snap.node_snapshots = nodes
    elif cache_cluster_id:
        snap.node_snapshots = [_node_snapshot(self.cache_clusters.get(cache_cluster_id), taken)]
    return snap


def _node_snapshot(cluster, taken, cache_cluster_id=None, node_group_id=None) -> dict:
    entry = {"CacheNodeId": "0001", "CacheSize": "0 MB",   # the control plane knows no data size
             "CacheNodeCreateTime": getattr(cluster, "cache_cluster_create_time", None),
             "SnapshotCreateTime": taken}
    if cache_cluster_id:
        entry.update(CacheClusterId=cache_cluster_id, NodeGroupId=node_group_id)
    return entry


@patch(CACHE_BACKEND, gap="cache-test-failover", phase="answers", kind="add")
def test_failover(self, replication_group_id, node_group_id):
    """TestFailover: the group is `modifying` for a while, then a replica is the primary."""
    from moto.elasticache.exceptions import ReplicationGroupNotFound

    group = self.replication_groups.get(replication_group_id)
    if group is None:
        raise ReplicationGroupNotFound(replication_group_id)
    if group.status != "available" or group.automatic_failover != "enabled":
        raise _group_state_error(
            f"Replication group {replication_group_id} must be available with automatic failover enabled.")
    for ng in group.node_groups:
        if ng.get("node_group_id") != node_group_id:
            continue
        members = ng.get("node_group_members", [])
        if len(members) < 2:
            raise _group_state_error("There is no replica to fail over to.")
        old = next(m for m in members if m.get("current_role") == "primary")
        new = next(m for m in members if m is not old)
        old["current_role"], new["current_role"] = "replica", "primary"
        group.primary_cluster_id = new["cache_cluster_id"]
    latency.start(group, "elasticache.failover")
    return group


@patch(CACHE_RESPONSE, "test_failover", gap="cache-test-failover", phase="answers", kind="add")
def test_failover_request(self):
    from moto.core.responses import ActionResult

    group = self.elasticache_backend.test_failover(self._get_param("ReplicationGroupId"), self._get_param("NodeGroupId"))
    return ActionResult({"ReplicationGroup": group})


def _subnet_group_in_use(name: str) -> Exception:
    from moto.elasticache.exceptions import ElastiCacheException

    class CacheSubnetGroupInUse(ElastiCacheException):
        code = "CacheSubnetGroupInUse"

    return CacheSubnetGroupInUse(f"Cache subnet group {name} is currently in use by a cache cluster.")


@patch(CACHE_BACKEND, gap="cache-subnet-group-delete", phase="answers", kind="add")
def delete_cache_subnet_group(self, cache_subnet_group_name):
    """moto has no DeleteCacheSubnetGroup. AWS refuses while a cluster uses the group."""
    from moto.elasticache.exceptions import CacheSubnetGroupNotFound

    group = self.cache_subnet_groups.get(cache_subnet_group_name)
    if group is None:
        raise CacheSubnetGroupNotFound(cache_subnet_group_name)
    users = [*self.replication_groups.values(), *self.cache_clusters.values()]
    if any(getattr(u, "cache_subnet_group_name", None) == cache_subnet_group_name for u in users):
        raise _subnet_group_in_use(cache_subnet_group_name)
    del self.cache_subnet_groups[cache_subnet_group_name]
    _untag(self, group)


@patch(CACHE_RESPONSE, "delete_cache_subnet_group", gap="cache-subnet-group-delete", phase="answers", kind="add")
def delete_cache_subnet_group_request(self):
    from moto.core.responses import EmptyResult

    self.elasticache_backend.delete_cache_subnet_group(self._get_param("CacheSubnetGroupName"))
    return EmptyResult()
