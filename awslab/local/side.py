"""What the local AWS notes on moto's objects beside moto's own attributes (its side state), one
dataclass per kind of object, every field's meaning said here, reached through one accessor.

``side(obj)`` is the object's note (its dataclass, made on first use); ``note(obj, field=value)``
changes it. The note is a frozen value, replaced whole by ``note``, never changed in place, because
moto copies its objects: a read replica is ``copy.copy`` of its source, a DB snapshot holds a copy of
its DB instance, a stopped cluster's answer is a copy of the cluster. A copy then holds the same
note, and a change to one object's must never become the other's (a replica's engine is not its
source's). The values a note holds are replaced, not mutated, for the same reason (the held dicts of
a backend's note excepted: backends are never copied).

It lives in the object's ``__dict__`` under ``_awslab`` (pickled with the object, so it survives a
restart). States saved before it (the same persistence FORMAT) hold the old form: one
``_awslab_<field>`` attribute per field. The accessor moves those into the note the first time it
reads the object, so an old state loads and behaves as it did. moto's restores copy an object's
``__dict__`` into the new object's arguments under their names without the first underscore: the
new one ignores ``awslab`` as it ignored every ``awslab_<field>``, and its note starts empty.

A StackSet operation is one of moto's dicts, not an object: its per-target results stay a key of
that dict (``_awslab_results``, patches/stackset_operations.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields, replace
from typing import Any

ATTR = "_awslab"
_OLD = "_awslab_"   # the prefix of the attributes a state saved before held, one per field


@dataclass(frozen=True)
class Side:
    """What every emulated resource may carry: its timeline, its going away, its engine."""

    phases: tuple = ()
    """(until, state) pairs on the local AWS's timeline (latency.now()): the transitional state it
    reports until each time (latency.start, latency.phase); empty once over."""
    gone_at: float | None = None
    """When a deleted resource that still shows (`deleting`, `terminated`) leaves its backend's
    dict (latency.ExpiringDict); None while it is not going away."""
    status: str | None = None
    """The status moto (or a patch) set, reported once no transitional one applies
    (patches/_base.status_property; a StackSet instance's own status; a stack's, cfn_lifecycle)."""
    engine_key: str | None = None
    """The key of the real engine (or job queue) behind it in the local AWS's engines (backing/);
    None when nothing real runs behind it."""


@dataclass(frozen=True)
class DbInstanceSide(Side):
    """An RDS DB instance's (a Multi-AZ DB cluster's member included)."""

    secondary_az: str | None = None
    """A Multi-AZ instance's standby's AZ (the one a failover moves it to), chosen once."""
    upgrade: tuple | None = None
    """(from version, to version, snapshot id) of a ModifyDBInstance engine upgrade the engines have
    still to carry out (patches/rds_versions -> backing/rds_upgrade, taken once)."""
    pending: Any = None
    """Its pending maintenance actions: {"of": its ARN, "actions": [...]} (patches/maintenance); the
    ARN says whose, since a replica starts as a copy of its source."""


@dataclass(frozen=True)
class DbClusterSide(Side):
    """A Multi-AZ DB cluster's (backing/rds_cluster: its engines)."""

    members: tuple = ()
    """Its member instances' identifiers, in the order their engines were made."""
    endpoints: Any = None
    """{member id: "address:port"} of each member's own endpoint."""
    writer: str | None = None
    """The member that writes now (a failover changes it)."""
    deleted: bool = False
    """Its engines are being removed (DeleteDBCluster): no more work is queued for them."""
    snapshot: str | None = None
    """The snapshot its engines are restored from (kept until they are, so a restart resumes it)."""
    to_time: Any = None
    """The time a point-in-time restore of it replays to (kept as ``snapshot`` is)."""


@dataclass(frozen=True)
class ReplicationGroupSide(Side):
    """An ElastiCache replication group's."""

    members: tuple = ()
    """Its member clusters' ids, the primary first (a failover swaps them)."""
    auth_token: str | None = None
    """Its AUTH token (moto keeps only whether one is set; a revived group's engines need it)."""


@dataclass(frozen=True)
class CacheClusterSide(Side):
    """An ElastiCache cache cluster's (a replication group's member, or one of its own)."""

    auth_token: str | None = None
    """The password its engine was started with."""
    node_endpoint: Any = None
    """{"address", "port"} of a group member's own node endpoint (moto gives members none)."""
    gone_when_seen: bool = False
    """Deleted with its group while nobody looked: it shows `deleting` once, then is gone."""


@dataclass(frozen=True)
class Ec2InstanceSide(Side):
    """An EC2 instance's."""

    terminated_at: float | None = None
    """When a terminating instance is `terminated` (timeline seconds)."""
    eni_free_at: float | None = None
    """When its network interfaces have drained: until then it holds its subnet and groups."""


@dataclass(frozen=True)
class StackInstanceSide(Side):
    """A StackSet instance's (``status``: its own, CURRENT / OUTDATED / INOPERABLE; None until an
    operation sets one)."""

    detailed: str | None = None
    """Its StackInstanceStatus.DetailedStatus (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED)."""
    reason: str | None = None
    """Why it failed, when it did."""
    operation: str | None = None
    """The last operation that touched it."""


@dataclass(frozen=True)
class StackSide(Side):
    """A CloudFormation stack's (``status``: the one moto set, read through cfn_lifecycle)."""

    calls_done: bool = False
    """Every create call returned: only its resources' stabilizing is left."""


@dataclass(frozen=True)
class Ec2BackendSide:
    """An EC2 backend's (one account and region)."""

    route_table_tokens: Any = None
    """{ClientToken: route table id} of CreateRouteTable calls (a retry gets the same table)."""


@dataclass(frozen=True)
class CacheBackendSide:
    """An ElastiCache backend's."""

    cache_parameter_groups: Any = None
    """{name: group} of its cache parameter groups (patches/cache_parameters: moto has none)."""


@dataclass(frozen=True)
class SsmBackendSide:
    """An SSM backend's."""

    to_run: tuple | None = None
    """A SendCommand's (command, region, script, timeout, refusal) to start once its answer is
    written (patches/ssm), taken once."""


# Which note each kind of moto object carries, by its class (a subclass takes its base's). Any
# other object on a timeline (a parameter group, a snapshot) carries the common ``Side``.
BY_CLASS: dict[str, type] = {
    "moto.rds.models:DBInstance": DbInstanceSide,
    "moto.rds.models:DBCluster": DbClusterSide,
    "moto.elasticache.models:ReplicationGroup": ReplicationGroupSide,
    "moto.elasticache.models:CacheCluster": CacheClusterSide,
    "moto.ec2.models.instances:Instance": Ec2InstanceSide,
    "moto.cloudformation.models:StackInstance": StackInstanceSide,
    "moto.cloudformation.models:Stack": StackSide,
    "moto.ec2.models:EC2Backend": Ec2BackendSide,
    "moto.elasticache.models:ElastiCacheBackend": CacheBackendSide,
    "moto.ssm.models:SimpleSystemManagerBackend": SsmBackendSide,
}
_by_type: dict[type, type] = {}
# Notes are replaced whole: a change is read, made and written under this lock, so two threads
# changing two fields of one note (a request, an engine's job) never lose one of them.
_lock = threading.RLock()


def kind_of(cls: type) -> type:
    """The note's dataclass for objects of ``cls``."""
    kind = _by_type.get(cls)
    if kind is None:
        kind = next((BY_CLASS[f"{c.__module__}:{c.__qualname__}"] for c in cls.__mro__
                     if f"{c.__module__}:{c.__qualname__}" in BY_CLASS), Side)
        _by_type[cls] = kind
    return kind


def side(obj) -> Any:
    """``obj``'s note (made, with what an older state held, on first use)."""
    d = getattr(obj, "__dict__", None)
    if d is None:
        return kind_of(type(obj))()
    held = d.get(ATTR)
    if held is None:
        with _lock:
            held = d.get(ATTR)
            if held is None:
                held = d[ATTR] = _first(d, kind_of(type(obj)))
    return held


def note(obj, **changes) -> Any:
    """Change ``obj``'s note (the fields named); the new note."""
    with _lock:
        new = replace(side(obj), **changes)
        obj.__dict__[ATTR] = new
    return new


def _first(d: dict, kind: type):
    """A new note, holding what a state saved before held as ``_awslab_<field>`` attributes (taken
    off the object: the note is their one place now)."""
    old = {}
    for f in fields(kind):
        if _OLD + f.name in d:
            value = d.pop(_OLD + f.name)
            old[f.name] = tuple(value) if isinstance(f.default, tuple) and isinstance(value, list) else value
    return kind(**old)

