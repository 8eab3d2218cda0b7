"""The explicit map from a resource kind to the code that creates and deletes it.

Each handler has ``create(run, desired) -> Found`` and ``delete(run, found)``; optionally
``incomplete(desired, found, all_found) -> reason | None`` and ``complete(run, desired, found)``
for resources made in several calls, and ``ready(run, desired, found)`` for those that take time.
"""

from __future__ import annotations

from awslab.aws.cache import (
    AuthTokenSecret,
    CacheRestore,
    CacheSnapshot,
    CacheSubnetGroup,
    ReplicationGroup,
)
from awslab.aws.database import (
    DbInstance,
    DbReplica,
    DbRestore,
    DbSnapshot,
    DbSnapshotCopy,
    DbSubnetGroup,
)
from awslab.aws.host import HostCommand, Instance, InstanceProfile
from awslab.aws.network import InternetGateway, RouteTable, Subnet, Vpc
from awslab.aws.security_groups import SecurityGroup, SecurityGroupRules

KINDS = {h.kind: h for h in (
    Vpc(), InternetGateway(), Subnet(), RouteTable(), SecurityGroup(), SecurityGroupRules(),
    InstanceProfile(), Instance(), DbSubnetGroup(), DbInstance(), DbReplica(),
    CacheSubnetGroup(), AuthTokenSecret(), ReplicationGroup(),
    DbSnapshot(), DbSnapshotCopy(), CacheSnapshot(), DbRestore(), CacheRestore(), HostCommand(),
)}

# States in which a resource is usable as it is: a kept resource in any other state is waited for.
READY_STATES = {"available", "running", "attached", "Complete"}
