"""ElastiCache cache parameter groups (moto has none): Create, Describe (groups and parameters),
Modify, Reset, Delete, the default groups per family, and the group a replication group or a
cache cluster uses (``CacheParameterGroupName`` at create and modify, ``CacheParameterGroup`` in
DescribeCacheClusters). What awslab applies to the real servers (backing/) is read from here:
``effective(backend, name)``.

Part of awslab's layer over moto (its patches name the rows of ``GAPS.md`` they close)."""

from __future__ import annotations

from typing import Any

from awslab.local.patches._patch import patch
from awslab.local.side import note, side

# The Redis parameters awslab knows (name: default, data type, allowed values, description), as
# DescribeCacheParameters lists them for the redis6.x / redis7 families. Others are refused.
EVICTION = ("volatile-lru,allkeys-lru,volatile-lfu,allkeys-lfu,volatile-random,allkeys-random,volatile-ttl,"
            "noeviction")
PARAMETERS: dict[str, tuple[str, str, str, str]] = {
    "maxmemory-policy": ("volatile-lru", "string", EVICTION, "Max memory policy."),
    "maxmemory-samples": ("3", "integer", "1-", "Max memory samples."),
    "reserved-memory-percent": ("25", "integer", "0-100", "The percent of memory to reserve for non-cache memory usage."),
    "timeout": ("0", "integer", "0,20-", "Close connection if client is idle for a given number of seconds."),
    "tcp-keepalive": ("300", "integer", "0-", "If non-zero, send ACKs every given number of seconds."),
    "notify-keyspace-events": ("", "string", "", "The keyspace events for Redis to notify Pub/Sub subscribers on."),
    "lfu-log-factor": ("10", "integer", "1-", "The log factor for incrementing key counter for LFU eviction policy."),
    "lfu-decay-time": ("1", "integer", "0-", "The amount of time in minutes to decrement the key counter for LFU."),
}
FAMILIES = ("redis6.x", "redis7", "valkey7", "valkey8")
APPLIED = ("maxmemory-policy", "maxmemory-samples", "timeout", "tcp-keepalive", "notify-keyspace-events",
           "lfu-log-factor", "lfu-decay-time")   # CONFIG SET on the servers (backing/)


def _errors():
    from moto.elasticache.exceptions import ElastiCacheException, InvalidParameterValueException

    class CacheParameterGroupNotFound(ElastiCacheException):
        code = "CacheParameterGroupNotFound"

    class CacheParameterGroupAlreadyExists(ElastiCacheException):
        code = "CacheParameterGroupAlreadyExists"

    class InvalidCacheParameterGroupState(ElastiCacheException):
        code = "InvalidCacheParameterGroupState"

    return (CacheParameterGroupNotFound, CacheParameterGroupAlreadyExists, InvalidCacheParameterGroupState,
            InvalidParameterValueException)


def groups(backend) -> dict[str, dict[str, Any]]:
    """The region's parameter groups, the default one per family included (made on first use)."""
    held = side(backend).cache_parameter_groups
    if held is None:
        held = note(backend, cache_parameter_groups={}).cache_parameter_groups
    for family in FAMILIES:
        name = f"default.{family}"
        if name not in held:
            held[name] = _group(backend, name, family, f"Default parameter group for {family}", default=True)
    return held


def _group(backend, name: str, family: str, description: str, default: bool = False) -> dict[str, Any]:
    return {"name": name, "family": family, "description": description, "values": {}, "default": default,
            "arn": f"arn:aws:elasticache:{backend.region_name}:{backend.account_id}:parametergroup:{name}"}


def effective(backend, name: str | None) -> dict[str, str]:
    """The parameters of group ``name`` (None: the default for Redis 7) as the server must have them."""
    group = groups(backend).get(name or "default.redis7") or groups(backend)["default.redis7"]
    return {p: group["values"].get(p, spec[0]) for p, spec in PARAMETERS.items()}


def users(backend, name: str) -> list[Any]:
    """The replication groups and cache clusters that use group ``name``."""
    return [g for g in list(backend.replication_groups.values()) if getattr(g, "cache_parameter_group_name", None) == name] + \
        [c for c in list(backend.cache_clusters.values())
         if getattr(c, "cache_parameter_group_name", None) == name and not getattr(c, "replication_group_id", None)]


def _describe(group: dict) -> dict:
    return {"CacheParameterGroupName": group["name"], "CacheParameterGroupFamily": group["family"],
            "Description": group["description"], "IsGlobal": False, "ARN": group["arn"]}


def _check_value(name: str, value: str) -> None:
    *_, invalid = _errors()
    if name not in PARAMETERS:
        raise invalid(f"Unknown parameter: {name}")
    default, kind, allowed, _ = PARAMETERS[name]
    if kind == "string" and allowed and value not in allowed.split(","):
        raise invalid(f"Invalid value for parameter {name}: {value}. Allowed values: {allowed}")
    if kind == "integer":
        try:
            n = int(value)
        except ValueError:
            raise invalid(f"Invalid value for parameter {name}: {value}") from None
        lows = [int(part.split("-")[0]) for part in allowed.split(",") if part.split("-")[0].isdigit()]
        if lows and n < min(lows):
            raise invalid(f"Invalid value for parameter {name}: {value}. Allowed values: {allowed}")


CACHE_RESPONSE = "moto.elasticache.responses:ElastiCacheResponse"
GAP = "cache-parameter-groups"


def _group_or_fail(backend, name: str) -> dict:
    not_found, *_ = _errors()
    group = groups(backend).get(name)
    if group is None:
        raise not_found(f"CacheParameterGroup {name} not found.")
    return group


def _pairs(resp) -> list[tuple[str, str]]:
    raw = resp._get_param("ParameterNameValues") or []
    if isinstance(raw, dict):
        raw = raw.get("ParameterNameValue") or []
    return [(p.get("ParameterName"), str(p.get("ParameterValue", ""))) for p in raw]


def _result(value: dict):
    from moto.core.responses import ActionResult

    return ActionResult(value)


def create_group(backend, name: str, family: str, description: str, tags: list[dict] | None = None,
                 values: dict[str, str] | None = None) -> dict[str, Any]:
    """A new group as CreateCacheParameterGroup makes it (its tags with it), with ``values`` set as
    ModifyCacheParameterGroup would (CloudFormation's ``Properties``); AWS's refusals."""
    _, exists, _, invalid = _errors()
    if name in groups(backend):
        raise exists(f"Parameter group {name} already exists.")
    if family not in FAMILIES:
        raise invalid(f"Unknown cache parameter group family: {family}")
    for key, value in (values or {}).items():
        _check_value(key, str(value))
    group = _group(backend, name, family, description)
    group["values"].update({k: str(v) for k, v in (values or {}).items()})
    groups(backend)[name] = group
    if tags:
        backend.tagging_service.tag_resource(group["arn"], tags)
    return group


def delete_group(backend, name: str) -> None:
    """DeleteCacheParameterGroup: refused for a default group and one in use; its tags go with it."""
    _, _, in_use, invalid = _errors()
    group = _group_or_fail(backend, name)
    if group["default"]:
        raise invalid("Default parameter groups cannot be deleted.")
    if users(backend, name):
        raise in_use(f"Cache parameter group {name} is in use by a cache cluster or replication group.")
    groups(backend).pop(name)
    backend.tagging_service.delete_all_tags_for_resource(group["arn"])


def _tags(resp) -> list[dict]:
    raw = resp._get_param("Tags") or []
    if isinstance(raw, dict):
        raw = raw.get("Tag") or []
    return [{"Key": t.get("Key"), "Value": t.get("Value", "")} for t in raw]


@patch(CACHE_RESPONSE, gap=GAP, phase="services", kind="add")
def create_cache_parameter_group(self):
    group = create_group(self.elasticache_backend, self._get_param("CacheParameterGroupName"),
                         self._get_param("CacheParameterGroupFamily"), self._get_param("Description") or "", _tags(self))
    return _result({"CacheParameterGroup": _describe(group)})


# A parameter group's ARN is a taggable resource (ListTagsForResource, AddTagsToResource): moto's
# check of an ARN knows clusters, snapshots, subnet groups, replication groups and users only.
@patch("moto.elasticache.models:ElastiCacheBackend", "list_tags_for_resource", gap="cache-parameter-group-tags",
       phase="services")
def parameter_group_tags(original, self, arn: str):
    if ":parametergroup:" in arn:
        name = arn.rpartition(":parametergroup:")[2]
        if groups(self).get(name, {}).get("arn") != arn:
            from moto.elasticache.exceptions import InvalidARNFault

            raise InvalidARNFault(arn)
        return self.tagging_service.list_tags_for_resource(arn)
    return original(self, arn)


@patch(CACHE_RESPONSE, gap=GAP, phase="services", kind="add")
def describe_cache_parameter_groups(self):
    backend = self.elasticache_backend
    name = self._get_param("CacheParameterGroupName")
    found = [_group_or_fail(backend, name)] if name else list(groups(backend).values())
    return _result({"CacheParameterGroups": [_describe(g) for g in found]})


@patch(CACHE_RESPONSE, gap=GAP, phase="services", kind="add")
def describe_cache_parameters(self):
    group = _group_or_fail(self.elasticache_backend, self._get_param("CacheParameterGroupName"))
    source = self._get_param("Source")
    params = []
    for name, (default, kind, allowed, description) in PARAMETERS.items():
        user = name in group["values"]
        if source == "user" and not user:
            continue
        entry = {"ParameterName": name, "ParameterValue": group["values"].get(name, default),
                 "Description": description, "Source": "user" if user else "system", "DataType": kind,
                 "IsModifiable": True, "MinimumEngineVersion": "2.8.6", "ChangeType": "immediate"}
        if allowed:
            entry["AllowedValues"] = allowed
        params.append(entry)
    return _result({"Parameters": params, "CacheNodeTypeSpecificParameters": []})


@patch(CACHE_RESPONSE, gap=GAP, phase="services", kind="add")
def modify_cache_parameter_group(self):
    *_, invalid = _errors()
    backend = self.elasticache_backend
    group = _group_or_fail(backend, self._get_param("CacheParameterGroupName"))
    if group["default"]:
        raise invalid("Default parameter groups cannot be modified.")
    changes = _pairs(self)
    if not changes:
        raise invalid("At least one parameter name and value must be specified.")
    for name, value in changes:
        _check_value(name, value)
    group["values"].update(changes)
    _changed(backend, group["name"])
    return _result({"CacheParameterGroupName": group["name"]})


@patch(CACHE_RESPONSE, gap=GAP, phase="services", kind="add")
def reset_cache_parameter_group(self):
    *_, invalid = _errors()
    backend = self.elasticache_backend
    group = _group_or_fail(backend, self._get_param("CacheParameterGroupName"))
    if group["default"]:
        raise invalid("Default parameter groups cannot be modified.")
    if str(self._get_param("ResetAllParameters", "false")).lower() == "true":
        group["values"].clear()
    else:
        for name, _ in _pairs(self):
            group["values"].pop(name, None)
    _changed(backend, group["name"])
    return _result({"CacheParameterGroupName": group["name"]})


@patch(CACHE_RESPONSE, gap=GAP, phase="services", kind="add")
def delete_cache_parameter_group(self):
    from moto.core.responses import EmptyResult

    delete_group(self.elasticache_backend, self._get_param("CacheParameterGroupName"))
    return EmptyResult()


# A group's or cluster's parameter group: refused when unknown, the default for its family when none.
@patch("moto.elasticache.models:ElastiCacheBackend", "create_replication_group", gap=GAP, phase="services")
@patch("moto.elasticache.models:ElastiCacheBackend", "create_cache_cluster", gap=GAP, phase="services")
def with_parameter_group(original, self, *a, **kw):
    name = kw.get("cache_parameter_group_name")
    if name:
        _group_or_fail(self, name)
    made = original(self, *a, **kw)
    if not name:
        made.cache_parameter_group_name = f"default.{_family(kw.get('engine'), kw.get('engine_version'))}"
    for member in list(getattr(made, "member_clusters", None) or []):   # a group's members use its group
        cluster = self.cache_clusters.get(member)
        if cluster is not None:
            cluster.cache_parameter_group_name = made.cache_parameter_group_name
    return made


@patch(CACHE_RESPONSE, "modify_replication_group", gap=GAP, phase="services")
def modify_replication_group(original, self):
    name = self._get_param("CacheParameterGroupName")
    backend = self.elasticache_backend
    if name:
        _group_or_fail(backend, name)
    result = original(self)
    if name:
        group = backend.replication_groups[self._get_param("ReplicationGroupId")]
        group.cache_parameter_group_name = name
        for member in group.member_clusters:
            cluster = backend.cache_clusters.get(member)
            if cluster is not None:
                cluster.cache_parameter_group_name = name
        _applied(backend, group)
    return result


@patch("moto.elasticache.models:CacheCluster", gap=GAP, phase="services", kind="add")
@property
def cache_parameter_group(self) -> dict:
    return {"CacheParameterGroupName": getattr(self, "cache_parameter_group_name", None) or "default.redis7",
            "ParameterApplyStatus": "in-sync", "CacheNodeIdsToReboot": []}


def _family(engine: str | None, version: str | None) -> str:
    if (engine or "redis") == "valkey":
        return "valkey8" if (version or "8").startswith("8") else "valkey7"
    return "redis6.x" if (version or "7").startswith("6") else "redis7"


# backing/ sets these: called when a group's values change, or a replication group takes a group.
on_changed: list = []


def _changed(backend, name: str) -> None:
    for user in users(backend, name):
        _applied(backend, user)


def _applied(backend, resource) -> None:
    for hook in on_changed:
        hook(backend, resource)
