"""ElastiCache's hooks: each Redis replication group's or cache cluster's real servers made (or
restored from a snapshot), configured as its parameter group says, failed over, snapshotted and
deleted with it; a restarted server's caches given their servers back."""

from __future__ import annotations

import functools
import logging
import secrets

from awslab.local import tls
from awslab.local.backing import hooks
from awslab.local.backing.core import Backing
from awslab.local.backing.keys import place, snap_key
from awslab.local.network import Owner
from awslab.local.side import note, side

log = logging.getLogger("awslab.local.backing")


def _group_endpoints(group) -> tuple[str | None, str | None]:
    ng = (group.node_groups or [{}])[0]
    primary, reader = ng.get("primary_endpoint_address"), ng.get("reader_endpoint_address")
    return (f"{primary}:{group.port}" if primary else None, f"{reader}:{group.port}" if reader else None)


def _member_endpoint(group, member: str) -> str:
    """A member's own read endpoint, as DescribeReplicationGroups lists it: <member>.<group domain>."""
    primary = (group.node_groups or [{}])[0].get("primary_endpoint_address") or ""
    return f"{member}.{primary.split('.', 1)[-1]}:{group.port}"


def _secure_group(b: Backing, group) -> None:
    """In-transit encryption: every endpoint of the group speaks TLS (TransitEncryptionMode
    ``preferred`` takes plain clients too, ``required``, the default, does not)."""
    primary_ep, reader_ep = _group_endpoints(group)
    endpoints = [e for e in (primary_ep, reader_ep) if e]
    endpoints += [_member_endpoint(group, m) for m in (side(group).members or group.member_clusters or [])]
    mode = None
    if getattr(group, "transit_encryption_enabled", False):
        mode = tls.OPTIONAL if getattr(group, "transit_encryption_mode", None) == "preferred" else tls.REQUIRED
    b.secure("redis", mode, *endpoints, owner=_group_owner(group),
             open_auth=None if getattr(group, "auth_token_enabled", False) else side(group).auth_token)


def _group_owner(group) -> Owner:
    _, _, _, region, account, _ = group.arn.split(":", 5)
    return ("cache", account, region, group.replication_group_id)


def _cluster_endpoint(cluster) -> str | None:
    """A cache cluster of its own's node endpoint (None: a group's member, or not Redis)."""
    node = side(cluster).node_endpoint
    if node is None or getattr(cluster, "replication_group_id", None):
        return None
    return f"{node['address']}:{node['port']}"


def _secure_cluster(b: Backing, cluster, account: str, region: str) -> None:
    mode = tls.REQUIRED if getattr(cluster, "transit_encryption_enabled", False) else None
    b.secure("redis", mode, _cluster_endpoint(cluster), owner=("cache", account, region, cluster.cache_cluster_id),
             open_auth=None if getattr(cluster, "auth_token_enabled", False) else side(cluster).auth_token)


# A node type's memory (MiB, as AWS lists it) divided by this: one machine runs a class's caches.
CACHE_NODE_MIB = {"cache.t2.micro": 555, "cache.t3.micro": 512, "cache.t4g.micro": 512, "cache.t3.small": 1403,
                  "cache.t4g.small": 1403, "cache.t3.medium": 3164, "cache.t4g.medium": 3164, "cache.m5.large": 6533,
                  "cache.m6g.large": 6533, "cache.m7g.large": 6533, "cache.r6g.large": 13312, "cache.r7g.large": 13312}
CACHE_MEMORY_SCALE = 64


def _cache_settings(backend, resource) -> dict[str, str]:
    """What the servers of a replication group or cache cluster run with: its parameter group's
    values, and ``maxmemory`` from its node type (less ``reserved-memory-percent``), scaled down."""
    from awslab.local.patches import cache_parameters

    params = cache_parameters.effective(backend, getattr(resource, "cache_parameter_group_name", None))
    settings = {p: params[p] for p in cache_parameters.APPLIED}
    mib = CACHE_NODE_MIB.get(getattr(resource, "cache_node_type", None) or "", 512)
    usable = mib * (100 - int(params["reserved-memory-percent"])) / 100 / CACHE_MEMORY_SCALE
    settings["maxmemory"] = str(int(usable * 1024 * 1024))
    return settings


def _configure_cache(b: Backing, backend, resource) -> None:
    """Its servers set as its parameter group says (after whatever engine work is queued for them)."""
    if getattr(resource, "replication_group_id", None) and hasattr(resource, "member_clusters"):
        members = list(side(resource).members) or list(resource.member_clusters or [])
    elif _cluster_endpoint(resource) is not None:
        members = [resource.cache_cluster_id]
    else:
        return
    settings = _cache_settings(backend, resource)
    for member in members:
        key = _member_key(backend.account_id, backend.region_name, member)
        # A parameter change leaves the cache available (immediate parameters): the label is the
        # queued work's, if any (a creation goes on reading `creating`).
        b.submit(key, functools.partial(_set_redis, b, key, settings),
                 label=b.label(key) if b.busy(key) else "available")


def _set_redis(b: Backing, key: str, settings: dict[str, str]) -> None:
    if b.engines.alive(key):
        b.engines.configure_redis(key, settings)


def _member_key(account: str, region: str, member: str) -> str:
    return f"cache.{place(account, region)}.{member}"


def install() -> None:
    """Hook the servers to moto's ElastiCache backend (``enable`` calls it after RDS's)."""
    from moto.elasticache.models import ElastiCacheBackend

    b = hooks.current
    assert b is not None

    def created(self, group, *a, **kw) -> None:
        token = kw.get("auth_token") or getattr(group, "auth_token", None) or ""
        if not token:
            # Without AUTH the engine would be open to anything on this machine; awslab always sets one.
            token = secrets.token_urlsafe(24)
        note(group, auth_token=token)   # moto keeps only "enabled"; a revived group's engines need it
        members = list(group.member_clusters or [])
        if not members:
            return
        primary_ep, reader_ep = _group_endpoints(group)
        first = _member_key(self.account_id, self.region_name, members[0])
        note(group, engine_key=first, members=tuple(members))
        _secure_group(b, group)
        snapshot = kw.get("snapshot_name")
        if snapshot:
            snap = snap_key("elasticache", self.account_id, self.region_name, snapshot)
            start = functools.partial(b.engines.restore_redis, first, snapshot=snap, password=token)
        else:
            start = functools.partial(b.engines.start_redis, first, password=token)
        b.start_engine(primary_ep, first, start, aliases=[_member_endpoint(group, members[0])],
                       after=f"snapshot:{snap_key('elasticache', self.account_id, self.region_name, snapshot)}" if snapshot else None)
        for i, member in enumerate(members[1:]):
            key = _member_key(self.account_id, self.region_name, member)
            endpoints = ([reader_ep] if i == 0 and reader_ep else []) + [_member_endpoint(group, member)]
            b.start_engine(endpoints[0], key, functools.partial(b.engines.start_redis_replica, key, primary=first,
                                                                password=token),
                           after=first, role="replica", aliases=endpoints[1:])
        _configure_cache(b, self, group)

    def cluster_created(self, cluster, *a, **kw) -> None:
        """A cache cluster of its own: one Redis behind its node's endpoint (AUTH as asked; without
        one, the relay authenticates for the client)."""
        endpoint = _cluster_endpoint(cluster)
        if endpoint is None:
            return
        key = _member_key(self.account_id, self.region_name, cluster.cache_cluster_id)
        password = kw.get("auth_token") or side(cluster).auth_token or secrets.token_urlsafe(24)
        note(cluster, auth_token=password, engine_key=key)
        _secure_cluster(b, cluster, self.account_id, self.region_name)
        snapshot = kw.get("snapshot_name") or getattr(cluster, "snapshot_name", None)
        if snapshot:
            snap = snap_key("elasticache", self.account_id, self.region_name, snapshot)
            start = functools.partial(b.engines.restore_redis, key, snapshot=snap, password=password)
        else:
            start = functools.partial(b.engines.start_redis, key, password=password)
        b.start_engine(endpoint, key, start, after=f"snapshot:{snap}" if snapshot else None)
        _configure_cache(b, self, cluster)

    def cluster_deleted(self, cluster, cache_cluster_id, *a, **kw) -> None:
        endpoint = _cluster_endpoint(cluster)
        if endpoint is not None:
            b.stop_engine(_member_key(self.account_id, self.region_name, cache_cluster_id), endpoint)

    def deleted(self, group, replication_group_id, *a, **kw) -> None:
        members = list(side(group).members) or list(group.member_clusters or [])
        primary_ep, reader_ep = _group_endpoints(group)
        for member in reversed(members):
            key = _member_key(self.account_id, self.region_name, member)
            b.stop_engine(key, *[e for e in (primary_ep, reader_ep, _member_endpoint(group, member)) if e])

    def snapshot_created(self, snap, snapshot_name, replication_group_id=None, cache_cluster_id=None, *a, **kw) -> None:
        group = self.replication_groups.get(replication_group_id) if replication_group_id else None
        key = side(group).engine_key if group is not None else None
        if key is None and cache_cluster_id:
            key = _member_key(self.account_id, self.region_name, cache_cluster_id)
        if key is None:
            return
        name = snap_key("elasticache", self.account_id, self.region_name, snapshot_name)
        note(snap, engine_key=key)
        b.submit(key, lambda: b.engines.snapshot(key, name) if b.engines.get(key) else None, alias=f"snapshot:{name}")

    def snapshot_deleted(self, snap, snapshot_name, *a, **kw) -> None:
        b.engines.delete_snapshot(snap_key("elasticache", self.account_id, self.region_name, snapshot_name))

    def failed_over(self, result, replication_group_id, node_group_id, *a, **kw) -> None:
        group = self.replication_groups.get(replication_group_id)
        members = side(group).members if group is not None else ()
        if group is None or not members or len(members) < 2:
            return
        old, new = _member_key(self.account_id, self.region_name, members[0]), _member_key(self.account_id, self.region_name, members[1])
        primary_ep, reader_ep = _group_endpoints(group)

        def swap() -> None:
            b.engines.promote_redis(new)
            b.engines.follow_redis(old, primary=new)
            # The primary endpoint follows the new primary, the reader the old one; clients of both drop.
            for endpoint, key, role in ((primary_ep, new, "primary"), (reader_ep, old, "replica")):
                if endpoint and endpoint in b.roles:
                    b.forwarder.drop(endpoint)
                    b.publish_engine(endpoint, key, role)

        note(group, members=(members[1], members[0], *members[2:]), engine_key=new)
        b.submit(new, swap, after=old, label="modifying")

    def revive(b: Backing) -> set[str]:
        from moto.elasticache.models import elasticache_backends

        claimed = set()
        for backend, region, cluster in hooks.live(elasticache_backends, "cache_clusters"):
            endpoint = _cluster_endpoint(cluster)
            if endpoint is None or side(cluster).gone_at is not None:
                continue
            key = _member_key(backend.account_id, region, cluster.cache_cluster_id)
            claimed.add(key)
            _secure_cluster(b, cluster, backend.account_id, region)
            b.revive(key, [endpoint], functools.partial(cluster_created, backend, cluster))
            _configure_cache(b, backend, cluster)
        for backend, region, group in hooks.live(elasticache_backends, "replication_groups"):
            members = list(side(group).members) or list(group.member_clusters or [])
            if not members:
                continue
            keys = [_member_key(backend.account_id, region, m) for m in members]
            claimed |= set(keys)
            _secure_group(b, group)
            if b.reconciling and (b.busy(keys[0]) or b.engines.alive(keys[0])):
                pass   # the primary runs: only its replicas may need bringing back (below)
            elif not b.engines.resumable(keys[0]) and (b.engines.get(keys[0]) or {}).get("status") != "available":
                for key in keys:   # no primary to resume: the group's engines are made again
                    b.engines.stop(key)
                created(backend, group, auth_token=side(group).auth_token)
                continue
            primary_ep, reader_ep = _group_endpoints(group)
            for i, (member, key) in enumerate(zip(members, keys)):
                own = _member_endpoint(group, member)
                endpoints = [e for e in ([primary_ep] if i == 0 else [reader_ep] if i == 1 else []) if e] + [own]
                fresh = functools.partial(b.start_engine, endpoints[0], key, functools.partial(
                    b.engines.start_redis_replica, key, primary=keys[0], password=side(group).auth_token or ""),
                    after=keys[0], role="replica", aliases=endpoints[1:])
                b.revive(key, endpoints, fresh, role="primary" if i == 0 else "replica",
                         after=None if i == 0 else keys[0])
            _configure_cache(b, backend, group)
        return claimed

    from awslab.local.patches import cache_parameters

    cache_parameters.on_changed.append(lambda backend, resource: _configure_cache(b, backend, resource))
    hooks.revivers.append(revive)
    for method, hook in (("create_replication_group", created), ("delete_replication_group", deleted),
                         ("create_cache_cluster", cluster_created), ("delete_cache_cluster", cluster_deleted),
                         ("create_snapshot", snapshot_created), ("delete_snapshot", snapshot_deleted),
                         ("test_failover", failed_over)):
        hooks.after(ElastiCacheBackend, method, hook)
